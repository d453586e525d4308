//! Delivery formats: the log (a `tracing` event), a generic JSON webhook, a Slack-compatible
//! incoming webhook and Alertmanager's v2 API. The request bodies are built by pure
//! functions; [`deliver`] sends one alert over HTTP.

use super::{format_time, Alert, AlertError, AlertState, RolloutEventKind, ROLLOUT};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Most detail lines a Slack message or an Alertmanager description carries; the rest is
/// counted (`… and 12 more`). The generic webhook always gets them all.
pub const MAX_DETAIL_LINES: usize = 20;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// A `tracing` event per alert (always on).
    Log,
    /// `POST url` with the [`Alert`] as JSON.
    Webhook { url: String },
    /// `POST url` with `{"text": …}` (Slack, Mattermost, Rocket.Chat incoming webhooks).
    Slack { url: String },
    /// `POST {url}/api/v2/alerts` with a one-element array of postable alerts.
    Alertmanager { url: String },
}

impl Channel {
    /// The `channel` label of the metrics: log|webhook|slack|alertmanager.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Log => "log",
            Channel::Webhook { .. } => "webhook",
            Channel::Slack { .. } => "slack",
            Channel::Alertmanager { .. } => "alertmanager",
        }
    }

    /// The URL requests go to (empty for the log).
    pub fn endpoint(&self) -> String {
        match self {
            Channel::Log => String::new(),
            Channel::Webhook { url } | Channel::Slack { url } => url.clone(),
            Channel::Alertmanager { url } => alertmanager_endpoint(url),
        }
    }

    /// Rejects URLs that cannot work: unparsable, or not http(s) with a host.
    pub fn check(&self) -> Result<(), AlertError> {
        let (channel, url) = match self {
            Channel::Log => return Ok(()),
            Channel::Webhook { url } | Channel::Slack { url } | Channel::Alertmanager { url } => (self.kind(), url),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| AlertError::InvalidUrl {
            channel,
            url: url.clone(),
            detail: e.to_string(),
        })?;
        match parsed.scheme() {
            "http" | "https" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
            "http" | "https" => Err(AlertError::InvalidUrl { channel, url: url.clone(), detail: "no host".into() }),
            other => Err(AlertError::InvalidUrl {
                channel,
                url: url.clone(),
                detail: format!("scheme {other}:// is not http:// or https://"),
            }),
        }
    }
}

/// `{base}/api/v2/alerts`, tolerating a trailing slash on the base URL.
pub fn alertmanager_endpoint(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// What the sender knows beyond the alert: how long a Firing alert without `ends_at` stays
/// active in Alertmanager unless sent again, and an optional base URL of plugsync's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerContext {
    /// Firing alerts without `ends_at` are posted with `endsAt = now + firing_ttl`, longer
    /// than the reminder interval, so that Alertmanager keeps them active between reminders
    /// (left empty, it would resolve them after its `resolve_timeout`, 5 min by default) and
    /// still resolves them if plugsync stops for good.
    pub firing_ttl: Duration,
    /// e.g. `http://plugsync.example:8080`: `generatorURL` becomes
    /// `{base}/api/v1/plugins/{plugin}`.
    pub generator_url: Option<String>,
}

/// Writes the alert to the log: error for critical Firing alerts, warn for other Firing ones,
/// info for Resolved and info alerts.
pub fn log(alert: &Alert) {
    let details = alert.details.join("; ");
    let (fleet, plugin, name, state) = (&alert.fleet, &alert.plugin, &alert.name, alert.state.as_str());
    match (alert.state, alert.severity.as_str()) {
        (AlertState::Firing, "critical") => {
            tracing::error!(fleet, plugin, alertname = name, state, details, "{}", alert.summary)
        }
        (AlertState::Firing, "info") | (AlertState::Resolved, _) => {
            tracing::info!(fleet, plugin, alertname = name, state, details, "{}", alert.summary)
        }
        (AlertState::Firing, _) => {
            tracing::warn!(fleet, plugin, alertname = name, state, details, "{}", alert.summary)
        }
    }
}

/// The generic webhook's body: the alert itself.
pub fn webhook_body(alert: &Alert) -> Result<Value, AlertError> {
    serde_json::to_value(alert).map_err(|e| AlertError::Encode { channel: "webhook", detail: e.to_string() })
}

/// The Slack-compatible body: `{"text": slack_text(alert)}`.
pub fn slack_body(alert: &Alert) -> Value {
    json!({ "text": slack_text(alert) })
}

/// A readable Slack message (mrkdwn, `&`, `<`, `>` escaped):
///
/// ```text
/// :rotating_light: [FIRING] plugin crm: 3 drift findings (env, image, replicas)
/// • image on crm-1: …
/// _fleet prod · PlugsyncDrift · warning · since 2026-03-01T12:00:00.000Z_
/// ```
pub fn slack_text(alert: &Alert) -> String {
    let (emoji, tag) = slack_marker(alert);
    let mut text = format!("{emoji} [{tag}] {}", escape_slack(&alert.summary));
    for line in capped(&alert.details) {
        text.push_str("\n• ");
        text.push_str(&escape_slack(&line));
    }
    let when = match (alert.state, alert.ends_at) {
        _ if alert.name == ROLLOUT => format!("at {}", format_time(alert.starts_at)),
        (AlertState::Resolved, Some(end)) => format!("ended {}", format_time(end)),
        _ => format!("since {}", format_time(alert.starts_at)),
    };
    text.push_str(&format!(
        "\n_fleet {} · {} · {} · {when}_",
        escape_slack(&alert.fleet),
        escape_slack(&alert.name),
        escape_slack(&alert.severity)
    ));
    text
}

fn slack_marker(alert: &Alert) -> (&'static str, &'static str) {
    let event =
        if alert.name == ROLLOUT { alert.labels.get("event").and_then(|e| RolloutEventKind::parse(e)) } else { None };
    match (event, alert.state) {
        (Some(RolloutEventKind::Started), _) => (":arrow_forward:", "ROLLOUT STARTED"),
        (Some(RolloutEventKind::Step), _) => (":arrow_right:", "ROLLOUT STEP"),
        (Some(RolloutEventKind::Promoted), _) => (":white_check_mark:", "PROMOTED"),
        (Some(RolloutEventKind::RolledBack), _) => (":rotating_light:", "ROLLED BACK"),
        (Some(RolloutEventKind::Failed), _) => (":rotating_light:", "ROLLOUT FAILED"),
        (None, AlertState::Firing) => (":rotating_light:", "FIRING"),
        (None, AlertState::Resolved) => (":white_check_mark:", "RESOLVED"),
    }
}

fn escape_slack(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most [`MAX_DETAIL_LINES`] lines, the last one counting the rest.
fn capped(details: &[String]) -> Vec<String> {
    if details.len() <= MAX_DETAIL_LINES {
        return details.to_vec();
    }
    let keep = MAX_DETAIL_LINES - 1;
    let mut lines = details[..keep].to_vec();
    lines.push(format!("… and {} more", details.len() - keep));
    lines
}

/// Alertmanager's v2 postable alerts for `alerts`, sent at `now`:
/// `labels` = the alert's labels (names sanitised to `[a-zA-Z_][a-zA-Z0-9_]*`, empty values
/// left out) plus `alertname`, `fleet`, `plugin`, `severity` (which win);
/// `annotations` = `summary` and, when there are details, `description` (one per line); `startsAt`;
/// `endsAt` = `ends_at` (Resolved without one: `now`; Firing without one: `now + firing_ttl`);
/// `generatorURL` when configured.
pub fn alertmanager_body(alerts: &[Alert], now: DateTime<Utc>, context: &AlertmanagerContext) -> Value {
    let ttl = TimeDelta::from_std(context.firing_ttl).unwrap_or(TimeDelta::MAX);
    Value::Array(
        alerts
            .iter()
            .map(|alert| {
                let mut labels = Map::new();
                for (name, value) in &alert.labels {
                    if !value.is_empty() {
                        labels.insert(label_name(name), Value::String(value.clone()));
                    }
                }
                for (name, value) in [
                    ("alertname", &alert.name),
                    ("fleet", &alert.fleet),
                    ("plugin", &alert.plugin),
                    ("severity", &alert.severity),
                ] {
                    labels.insert(name.to_string(), Value::String(value.clone()));
                }
                let ends_at = match (alert.ends_at, alert.state) {
                    (Some(end), _) => end,
                    (None, AlertState::Resolved) => now,
                    (None, AlertState::Firing) => now.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC),
                };
                let mut body = Map::new();
                body.insert("labels".into(), Value::Object(labels));
                let mut annotations = Map::new();
                annotations.insert("summary".into(), Value::String(alert.summary.clone()));
                if !alert.details.is_empty() {
                    annotations.insert("description".into(), Value::String(capped(&alert.details).join("\n")));
                }
                body.insert("annotations".into(), Value::Object(annotations));
                body.insert("startsAt".into(), Value::String(format_time(alert.starts_at)));
                body.insert("endsAt".into(), Value::String(format_time(ends_at.max(alert.starts_at))));
                if let Some(base) = &context.generator_url {
                    let url = format!("{}/api/v1/plugins/{}", base.trim_end_matches('/'), alert.plugin);
                    body.insert("generatorURL".into(), Value::String(url));
                }
                Value::Object(body)
            })
            .collect(),
    )
}

/// A valid Prometheus label name: invalid characters become `_`, a leading digit gets a `_`
/// in front, an empty name becomes `_`.
fn label_name(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Sends `alert` to one channel: one HTTP request (the client carries the timeouts), Ok on a
/// 2xx answer. The log channel writes the log line.
pub async fn deliver(
    client: &reqwest::Client,
    channel: &Channel,
    alert: &Alert,
    now: DateTime<Utc>,
    context: &AlertmanagerContext,
) -> Result<(), AlertError> {
    let body = match channel {
        Channel::Log => {
            log(alert);
            return Ok(());
        }
        Channel::Webhook { .. } => webhook_body(alert)?,
        Channel::Slack { .. } => slack_body(alert),
        Channel::Alertmanager { .. } => alertmanager_body(std::slice::from_ref(alert), now, context),
    };
    let url = channel.endpoint();
    let kind = channel.kind();
    let response = client.post(&url).json(&body).send().await.map_err(|e| AlertError::Request {
        channel: kind,
        url: url.clone(),
        detail: error_chain(&e),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let body: String = text.chars().take(300).collect();
    Err(AlertError::Status { channel: kind, url, status: status.as_u16(), body: body.trim().to_string() })
}

/// The error and its sources, e.g. `error sending request: client error (Connect): tcp
/// connect error: Connection refused (os error 111)`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{incidents, DRIFT};
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("valid time")
    }

    fn drift(state: AlertState, details: usize) -> Alert {
        Alert {
            fleet: "prod".into(),
            plugin: "crm".into(),
            name: DRIFT.into(),
            severity: "warning".into(),
            summary: "plugin crm: 3 drift findings (env, image, replicas)".into(),
            details: (0..details).map(|i| format!("image on crm-{i}: runs <old> & wrong")).collect(),
            state,
            starts_at: t0(),
            ends_at: (state == AlertState::Resolved).then(|| t0() + TimeDelta::minutes(5)),
            labels: BTreeMap::new(),
        }
    }

    fn context() -> AlertmanagerContext {
        AlertmanagerContext { firing_ttl: Duration::from_secs(3600), generator_url: None }
    }

    #[test]
    fn slack_text_table() {
        let failed = incidents::rollout("prod", "crm", RolloutEventKind::Failed, "never ready", t0());
        let promoted = incidents::rollout("prod", "crm", RolloutEventKind::Promoted, "1.1.0", t0());
        let started = incidents::rollout("prod", "crm", RolloutEventKind::Started, "1.0.0 → 1.1.0", t0());
        let cases = [
            (
                drift(AlertState::Firing, 1),
                ":rotating_light: [FIRING] plugin crm: 3 drift findings (env, image, replicas)\n\
                 • image on crm-0: runs &lt;old&gt; &amp; wrong\n\
                 _fleet prod · PlugsyncDrift · warning · since 2026-03-01T12:00:00.000Z_",
            ),
            (
                drift(AlertState::Resolved, 0),
                ":white_check_mark: [RESOLVED] plugin crm: 3 drift findings (env, image, replicas)\n\
                 _fleet prod · PlugsyncDrift · warning · ended 2026-03-01T12:05:00.000Z_",
            ),
            (
                failed,
                ":rotating_light: [ROLLOUT FAILED] plugin crm: rollout failed: never ready\n\
                 _fleet prod · PlugsyncRollout · critical · at 2026-03-01T12:00:00.000Z_",
            ),
            (
                promoted,
                ":white_check_mark: [PROMOTED] plugin crm: rollout promoted: 1.1.0\n\
                 _fleet prod · PlugsyncRollout · info · at 2026-03-01T12:00:00.000Z_",
            ),
            (
                started,
                ":arrow_forward: [ROLLOUT STARTED] plugin crm: rollout started: 1.0.0 → 1.1.0\n\
                 _fleet prod · PlugsyncRollout · info · at 2026-03-01T12:00:00.000Z_",
            ),
        ];
        for (alert, want) in cases {
            assert_eq!(slack_text(&alert), want);
            assert_eq!(slack_body(&alert), json!({ "text": want }));
        }
    }

    #[test]
    fn long_detail_lists_are_capped_for_people() {
        let text = slack_text(&drift(AlertState::Firing, 50));
        assert_eq!(text.matches("\n• ").count(), MAX_DETAIL_LINES);
        assert!(text.contains("\n• … and 31 more\n"), "{text}");
        let body = alertmanager_body(&[drift(AlertState::Firing, 50)], t0(), &context());
        let description = body[0]["annotations"]["description"].as_str().unwrap_or_default();
        assert_eq!(description.lines().count(), MAX_DETAIL_LINES);
        assert_eq!(
            webhook_body(&drift(AlertState::Firing, 50)).expect("json")["details"].as_array().map(Vec::len),
            Some(50)
        );
    }

    #[test]
    fn alertmanager_body_table() {
        let now = t0() + TimeDelta::minutes(2);
        let mut odd_labels = drift(AlertState::Firing, 0);
        odd_labels.labels = BTreeMap::from([
            ("plugin".to_string(), "spoofed".to_string()),
            ("app.kubernetes.io/name".to_string(), "crm".to_string()),
            ("9lives".to_string(), "x".to_string()),
            ("empty".to_string(), String::new()),
        ]);
        let rolled_back = incidents::rollout("prod", "crm", RolloutEventKind::RolledBack, "error rate 4%", t0());
        let cases = [
            (
                "firing without end: now + ttl",
                drift(AlertState::Firing, 2),
                None,
                json!([{
                    "labels": {"alertname": "PlugsyncDrift", "fleet": "prod", "plugin": "crm", "severity": "warning"},
                    "annotations": {
                        "summary": "plugin crm: 3 drift findings (env, image, replicas)",
                        "description": "image on crm-0: runs <old> & wrong\nimage on crm-1: runs <old> & wrong"
                    },
                    "startsAt": "2026-03-01T12:00:00.000Z",
                    "endsAt": "2026-03-01T13:02:00.000Z"
                }]),
            ),
            (
                "resolved: endsAt = resolve time, generatorURL from the base",
                drift(AlertState::Resolved, 0),
                Some("http://plugsync:8080/"),
                json!([{
                    "labels": {"alertname": "PlugsyncDrift", "fleet": "prod", "plugin": "crm", "severity": "warning"},
                    "annotations": {"summary": "plugin crm: 3 drift findings (env, image, replicas)"},
                    "startsAt": "2026-03-01T12:00:00.000Z",
                    "endsAt": "2026-03-01T12:05:00.000Z",
                    "generatorURL": "http://plugsync:8080/api/v1/plugins/crm"
                }]),
            ),
            (
                "rollout failure: its own endsAt, event label",
                rolled_back,
                None,
                json!([{
                    "labels": {
                        "alertname": "PlugsyncRollout", "event": "rolled_back", "fleet": "prod", "plugin": "crm",
                        "severity": "critical"
                    },
                    "annotations": {"summary": "plugin crm: rollout rolled back: error rate 4%"},
                    "startsAt": "2026-03-01T12:00:00.000Z",
                    "endsAt": "2026-03-01T12:10:00.000Z"
                }]),
            ),
            (
                "labels sanitised, fixed labels win, empty values left out",
                odd_labels,
                None,
                json!([{
                    "labels": {
                        "_9lives": "x", "alertname": "PlugsyncDrift", "app_kubernetes_io_name": "crm",
                        "fleet": "prod", "plugin": "crm", "severity": "warning"
                    },
                    "annotations": {"summary": "plugin crm: 3 drift findings (env, image, replicas)"},
                    "startsAt": "2026-03-01T12:00:00.000Z",
                    "endsAt": "2026-03-01T13:02:00.000Z"
                }]),
            ),
        ];
        for (name, alert, generator, want) in cases {
            let context = AlertmanagerContext { generator_url: generator.map(str::to_string), ..context() };
            assert_eq!(alertmanager_body(&[alert], now, &context), want, "{name}");
        }
    }

    #[test]
    fn resolved_without_end_ends_now_and_end_never_precedes_start() {
        let mut alert = drift(AlertState::Resolved, 0);
        alert.ends_at = None;
        let now = t0() + TimeDelta::seconds(7);
        assert_eq!(alertmanager_body(&[alert.clone()], now, &context())[0]["endsAt"], "2026-03-01T12:00:07.000Z");
        let before_start = t0() - TimeDelta::seconds(7);
        assert_eq!(alertmanager_body(&[alert], before_start, &context())[0]["endsAt"], "2026-03-01T12:00:00.000Z");
    }

    #[test]
    fn channel_urls_are_checked() {
        let cases = [
            (Channel::Log, Ok(())),
            (Channel::Webhook { url: "http://127.0.0.1:9000/hook".into() }, Ok(())),
            (Channel::Alertmanager { url: "http://alertmanager:9093".into() }, Ok(())),
            (Channel::Slack { url: "https://hooks.slack.com/services/T/B/X".into() }, Ok(())),
            (Channel::Webhook { url: "not a url".into() }, Err("invalid")),
            (Channel::Webhook { url: "ftp://host/x".into() }, Err("ftp://")),
        ];
        for (channel, want) in cases {
            match (channel.check(), want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{channel:?}: {e}"),
                (got, want) => panic!("{channel:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn endpoints() {
        for (base, want) in [
            ("http://am:9093", "http://am:9093/api/v2/alerts"),
            ("http://am:9093/", "http://am:9093/api/v2/alerts"),
            ("http://proxy/am/", "http://proxy/am/api/v2/alerts"),
        ] {
            assert_eq!(Channel::Alertmanager { url: base.into() }.endpoint(), want);
        }
        assert_eq!(Channel::Slack { url: "http://s/x".into() }.endpoint(), "http://s/x");
        assert_eq!(Channel::Log.endpoint(), "");
    }
}
