//! Metrics from a Prometheus server: instant queries (`GET /api/v1/query`).
//!
//! A policy's `analysis.prometheus.queries` maps a metric name to PromQL. The names the
//! analysis knows are `errorRate` and `successRate` (fractions from 0 to 1, like every rate
//! in the fleet format), `latency` (p99 in ms),
//! `throughput` (requests per second) and `requests` (requests in the evaluation window,
//! which lets the minimum-sample check apply); any other name is a custom metric for A/B
//! decisions. The PromQL may contain the placeholders `{{plugin}}`, `{{slot}}` and
//! `{{version}}` (blanks inside the braces allowed), replaced by the values being analysed,
//! escaped for a double-quoted PromQL string:
//!
//! ```text
//! errorRate: sum(rate(http_requests_total{plugin="{{plugin}}",slot="{{slot}}",code=~"5.."}[1m]))
//!          / sum(rate(http_requests_total{plugin="{{plugin}}",slot="{{slot}}"}[1m]))
//! ```
//!
//! An empty result or NaN (no traffic: 0/0) is `None`, never 0.

use super::counters::SlotMetrics;
use super::{error_chain, AnalysisError};
use crate::model::policy::PrometheusSource;
use crate::plan::Slot;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Query names [`PrometheusProvider::slot_metrics`] understands.
pub const KNOWN_QUERIES: [&str; 5] = ["errorRate", "successRate", "latency", "throughput", "requests"];

#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusProvider {
    /// Base URL of the server, e.g. `http://prometheus:9090` (a path prefix is kept).
    pub url: String,
    /// Metric name → PromQL template.
    pub queries: BTreeMap<String, String>,
}

impl From<&PrometheusSource> for PrometheusProvider {
    fn from(source: &PrometheusSource) -> Self {
        PrometheusProvider { url: source.url.clone(), queries: source.queries.clone() }
    }
}

impl PrometheusProvider {
    pub fn new(url: impl Into<String>, queries: BTreeMap<String, String>) -> Self {
        PrometheusProvider { url: url.into(), queries }
    }

    /// Runs the query named `name` with its placeholders replaced from `vars`.
    /// `Ok(None)`: Prometheus answered with no sample (or NaN).
    pub async fn query(
        &self,
        client: &reqwest::Client,
        name: &str,
        vars: &BTreeMap<&str, String>,
    ) -> Result<Option<f64>, AnalysisError> {
        let template = self.queries.get(name).ok_or_else(|| AnalysisError::UnknownQuery {
            name: name.to_string(),
            known: if self.queries.is_empty() {
                "none".to_string()
            } else {
                self.queries.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
            },
        })?;
        let promql = render_query(template, vars)
            .map_err(|placeholder| AnalysisError::Placeholder { name: name.to_string(), placeholder })?;
        self.instant(client, &promql).await
    }

    /// Runs one PromQL expression as an instant query.
    pub async fn instant(&self, client: &reqwest::Client, promql: &str) -> Result<Option<f64>, AnalysisError> {
        let url = query_url(&self.url, promql)
            .map_err(|detail| AnalysisError::InvalidUrl { url: self.url.clone(), detail })?;
        let unreachable = |e: reqwest::Error| AnalysisError::PrometheusRequest {
            url: self.url.clone(),
            query: promql.to_string(),
            detail: if e.is_timeout() {
                format!("no answer within {} s", QUERY_TIMEOUT.as_secs())
            } else {
                error_chain(&e)
            },
        };
        let response = client
            .get(url)
            .header("Accept", "application/json")
            .timeout(QUERY_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable)?;
        parse_response(&body).map_err(|detail| AnalysisError::PrometheusQuery {
            url: self.url.clone(),
            query: promql.to_string(),
            detail: if status.is_success() { detail } else { format!("HTTP {}: {detail}", status.as_u16()) },
        })
    }

    /// The metrics of one slot from the configured queries (`errorRate`, `successRate`,
    /// `latency`, `throughput`, `requests`); the ones not configured stay `None`. When only
    /// one of errorRate/successRate is configured the other is derived (100 − x).
    /// `requests_counted` is true only with a `requests` query; `seconds` is 0 (the
    /// window is whatever the PromQL says).
    pub async fn slot_metrics(
        &self,
        client: &reqwest::Client,
        plugin: &str,
        slot: Slot,
        version: &str,
    ) -> Result<SlotMetrics, AnalysisError> {
        let vars = vars(plugin, slot, version);
        let mut m = SlotMetrics::default();
        let get = |name: &'static str| {
            let vars = &vars;
            async move {
                if self.queries.contains_key(name) {
                    self.query(client, name, vars).await
                } else {
                    Ok(None)
                }
            }
        };
        // The queries answer fractions, like every rate in the fleet format; metrics are percent.
        let error_rate = get("errorRate").await?.map(|f| f * 100.0);
        let success_rate = get("successRate").await?.map(|f| f * 100.0);
        m.p99_ms = get("latency").await?;
        m.throughput = get("throughput").await?;
        let requests = get("requests").await?;
        m.error_rate = error_rate.or(success_rate.map(|s| 100.0 - s));
        m.success_rate = success_rate.or(error_rate.map(|e| 100.0 - e));
        if self.queries.contains_key("requests") {
            m.requests_counted = true;
            m.requests = requests.unwrap_or(0.0).max(0.0);
            m.errors = m.error_rate.map_or(0.0, |e| m.requests * e / 100.0);
        }
        Ok(m)
    }

    /// The configured custom metrics (names not in [`KNOWN_QUERIES`]) for one slot, for
    /// [`super::verdict::ab_decide`]'s `extra`.
    pub async fn custom_metrics(
        &self,
        client: &reqwest::Client,
        plugin: &str,
        slot: Slot,
        version: &str,
    ) -> Result<BTreeMap<String, Option<f64>>, AnalysisError> {
        let vars = vars(plugin, slot, version);
        let mut out = BTreeMap::new();
        for name in self.queries.keys().filter(|n| !KNOWN_QUERIES.contains(&n.as_str())) {
            out.insert(name.clone(), self.query(client, name, &vars).await?);
        }
        Ok(out)
    }
}

fn vars(plugin: &str, slot: Slot, version: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("plugin", plugin.to_string()),
        ("slot", slot.as_str().to_string()),
        ("version", version.to_string()),
    ])
}

/// Replaces `{{name}}` (or `{{ name }}`) with `vars[name]`, escaped for a PromQL string
/// (`\` and `"`). `Err(placeholder)` names the first placeholder without a value.
pub fn render_query(template: &str, vars: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!("{{{{{}", clip(after)));
        };
        let key = after[..close].trim();
        let value = vars.get(key).ok_or_else(|| format!("{{{{{}}}}}", &after[..close]))?;
        out.push_str(&value.replace('\\', "\\\\").replace('"', "\\\""));
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn clip(s: &str) -> String {
    s.chars().take(20).collect()
}

/// `{base}/api/v1/query?query=<promql, URL-encoded>`.
pub fn query_url(base: &str, promql: &str) -> Result<reqwest::Url, String> {
    let mut url =
        reqwest::Url::parse(&format!("{}/api/v1/query", base.trim_end_matches('/'))).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not http", url.scheme()));
    }
    url.query_pairs_mut().append_pair("query", promql);
    Ok(url)
}

/// The value of an instant query's answer: the first sample of a vector, or a scalar.
/// `Ok(None)` for an empty vector or NaN. `Err` carries Prometheus' own error text.
pub fn parse_response(body: &str) -> Result<Option<f64>, String> {
    let json: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        let start: String = body.chars().take(120).collect();
        format!("answer is not JSON ({e}): {start:?}")
    })?;
    match json.get("status").and_then(|s| s.as_str()) {
        Some("success") => {}
        Some("error") => {
            let kind = json.get("errorType").and_then(|s| s.as_str()).unwrap_or("error");
            let text = json.get("error").and_then(|s| s.as_str()).unwrap_or("no message");
            return Err(format!("{kind}: {text}"));
        }
        _ => return Err("answer has no `status` (is this a Prometheus API?)".into()),
    }
    let data = json.get("data").ok_or("answer has no `data`")?;
    let result = data.get("result").ok_or("answer has no `data.result`")?;
    let point = match data.get("resultType").and_then(|t| t.as_str()) {
        Some("vector") => {
            let samples = result.as_array().ok_or("`data.result` of a vector is not a list")?;
            let Some(first) = samples.first() else {
                return Ok(None);
            };
            if samples.len() > 1 {
                tracing::debug!(series = samples.len(), "Prometheus query returned several series; using the first");
            }
            first.get("value").ok_or("vector sample has no `value`")?
        }
        Some("scalar") => result,
        Some(other) => {
            return Err(format!("result type `{other}` is not a vector or scalar (use an instant vector query)"))
        }
        None => return Err("answer has no `data.resultType`".into()),
    };
    let text = point
        .as_array()
        .and_then(|p| p.get(1))
        .and_then(|v| v.as_str())
        .ok_or("sample value is not [timestamp, \"value\"]")?;
    let value = super::parse::parse_value(text).ok_or_else(|| format!("sample value `{text}` is not a number"))?;
    Ok((!value.is_nan()).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let vars = BTreeMap::from([
            ("plugin", "crm".to_string()),
            ("slot", "canary".to_string()),
            ("version", "1.2.0".to_string()),
        ]);
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("up", Ok("up")),
            ("x{plugin=\"{{plugin}}\",slot=\"{{ slot }}\"}", Ok("x{plugin=\"crm\",slot=\"canary\"}")),
            ("{{version}}{{version}}", Ok("1.2.01.2.0")),
            ("rate(x{a=\"b\"}[1m])", Ok("rate(x{a=\"b\"}[1m])")),
            ("x{t=\"{{tenant}}\"}", Err("{{tenant}}")),
            ("x{t=\"{{plugin\"}", Err("{{plugin\"}")),
        ];
        for (template, want) in cases {
            assert_eq!(
                render_query(template, &vars).as_deref(),
                want.map_err(|e| e.to_string()).as_deref(),
                "{template}"
            );
        }
        let evil = BTreeMap::from([("plugin", "a\"b\\c".to_string())]);
        assert_eq!(render_query("{{plugin}}", &evil).unwrap(), "a\\\"b\\\\c");
    }

    #[test]
    fn urls() {
        let u = query_url("http://127.0.0.1:9090/", "sum(rate(x{code=~\"5..\"}[30s])) * 100").unwrap();
        assert_eq!(u.path(), "/api/v1/query");
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(pairs, vec![("query".into(), "sum(rate(x{code=~\"5..\"}[30s])) * 100".into())]);
        assert!(!u.as_str().contains(' '));
        assert_eq!(query_url("http://h/prom", "up").unwrap().path(), "/prom/api/v1/query");
        assert!(query_url("not a url", "up").is_err());
        assert!(query_url("ftp://h", "up").unwrap_err().contains("ftp"));
    }

    #[test]
    fn responses() {
        let cases: &[(&str, Result<Option<f64>, &str>)] = &[
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"30.5"]}]}}"#,
                Ok(Some(30.5)),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#,
                Ok(Some(1.0)),
            ),
            (r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#, Ok(None)),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#,
                Ok(None),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"+Inf"]}]}}"#,
                Ok(Some(f64::INFINITY)),
            ),
            (r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#, Ok(Some(42.0))),
            (r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#, Err("result type `matrix`")),
            (r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#, Err("result type `string`")),
            (
                r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#,
                Err("bad_data: 1:5: parse error"),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#,
                Err("`abc` is not a number"),
            ),
            (r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#, Err("no `value`")),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,2]}]}}"#,
                Err("not [timestamp"),
            ),
            (r#"{"status":"success"}"#, Err("no `data`")),
            (r#"{"foo":1}"#, Err("no `status`")),
            ("<html>502 Bad Gateway</html>", Err("not JSON")),
            ("", Err("not JSON")),
        ];
        for (body, want) in cases {
            let got = parse_response(body);
            match (&got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{body}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{body}: {g:?} lacks {w:?}"),
                _ => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }
}
