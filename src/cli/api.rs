//! The daemon's HTTP API as the CLI reads it (`get`, `rollout status`): a small client whose
//! errors name the URL and what was expected, and the documents it answers with
//! (`GET /api/v1/status`, the `rollout` events of `GET /api/v1/events`), read leniently:
//! fields a newer daemon adds are ignored, fields an older one lacks take their defaults.

use plugsync::status::{Lifecycle, PluginStatus};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one plain request (not the event stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "cannot reach the plugsync daemon: GET {url}: {cause} (expected its HTTP API there; \
         is `plugsync run` listening at that address? set --server or PLUGSYNC_SERVER)"
    )]
    Unreachable { url: String, cause: String },
    #[error("GET {url} answered {code}: {body} (expected 200 with {expected})")]
    Status { url: String, code: u16, body: String, expected: &'static str },
    #[error(
        "unknown plugin {plugin:?}: GET {url} answered 404 (expected 200 with its status); \
         the daemon's fleet has: {known}"
    )]
    UnknownPlugin { url: String, plugin: String, known: String },
    #[error(
        "no status yet: GET {url} has no plugins (expected the status document the daemon \
         writes after its first reconcile pass; try again once it has finished one)"
    )]
    NoStatusYet { url: String },
    #[error("GET {url}: the answer is not {expected}: {source}")]
    Decode {
        url: String,
        expected: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("reading GET {url}: {cause}")]
    Read { url: String, cause: String },
    #[error("GET {url}: an event line longer than {limit} bytes (expected server-sent events)")]
    LineTooLong { url: String, limit: usize },
    #[error("GET {url}: the daemon closed the event stream (expected it to stay open)")]
    StreamClosed { url: String },
}

/// The daemon at `base` (e.g. `http://127.0.0.1:8080`).
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(server: &str) -> Api {
        Api { client: plugsync::tls::http_client(), base: server.trim_end_matches('/').to_string() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` → the code and the JSON body (a body that is not JSON, on a code other
    /// than 200, comes back as `{"error": text}`).
    async fn get_json(&self, path: &str, expected: &'static str) -> Result<(u16, serde_json::Value), ApiError> {
        let url = self.url(path);
        let response = self
            .client
            .get(&url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| ApiError::Unreachable { url: url.clone(), cause: causes(&e) })?;
        let code = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| ApiError::Read { url: url.clone(), cause: causes(&e) })?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok((code, value)),
            Err(source) if code == 200 => Err(ApiError::Decode { url, expected, source }),
            Err(_) => {
                let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                Ok((code, serde_json::json!({ "error": text })))
            }
        }
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> Result<StatusDoc, ApiError> {
        let expected = "the status document (JSON: fleet, revision, at, plugins …)";
        let (code, value) = self.get_json("/api/v1/status", expected).await?;
        if code != 200 {
            return Err(self.status_error("/api/v1/status", code, &value, expected));
        }
        let url = self.url("/api/v1/status");
        if value.get("plugins").is_none() {
            return Err(ApiError::NoStatusYet { url });
        }
        serde_json::from_value(value).map_err(|source| ApiError::Decode { url, expected, source })
    }

    /// `GET /api/v1/plugins/{id}`: the plugin's status; 404 → [`ApiError::UnknownPlugin`].
    pub async fn plugin(&self, id: &str) -> Result<PluginStatus, ApiError> {
        let path = format!("/api/v1/plugins/{id}");
        let expected = "the plugin's status (JSON)";
        let (code, value) = self.get_json(&path, expected).await?;
        match code {
            200 => serde_json::from_value(value).map_err(|source| ApiError::Decode {
                url: self.url(&path),
                expected,
                source,
            }),
            404 => {
                let doc = self.status().await?;
                let known: Vec<&str> = doc.plugins.keys().map(String::as_str).collect();
                let known = if known.is_empty() { "no plugins".to_string() } else { known.join(", ") };
                Err(ApiError::UnknownPlugin { url: self.url(&path), plugin: id.to_string(), known })
            }
            _ => Err(self.status_error(&path, code, &value, expected)),
        }
    }

    fn status_error(&self, path: &str, code: u16, value: &serde_json::Value, expected: &'static str) -> ApiError {
        let body = value.get("error").and_then(|e| e.as_str()).unwrap_or_default().to_string();
        ApiError::Status { url: self.url(path), code, body, expected }
    }
}

/// `GET /api/v1/status`: what the daemon wrote after its last pass.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StatusDoc {
    pub fleet: String,
    pub revision: String,
    /// When the pass started (RFC 3339).
    pub at: String,
    pub errors: Vec<String>,
    pub plugins: BTreeMap<String, PluginStatus>,
    pub plan: PlanDoc,
}

impl StatusDoc {
    /// `at` in milliseconds since the Unix epoch.
    pub fn at_ms(&self) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(&self.at).ok().map(|t| t.timestamp_millis())
    }

    /// Why the plan held `plugin`'s change, if it did.
    pub fn held(&self, plugin: &str) -> Option<&str> {
        self.plan.held.iter().find(|h| h.plugin == plugin).map(|h| h.reason.as_str())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PlanDoc {
    pub held: Vec<HeldDoc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HeldDoc {
    pub plugin: String,
    pub reason: String,
}

/// Where a rollout is (the `phase` of a `rollout` event).
pub use plugsync::events::Phase;

/// One `rollout` event of `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutEvent {
    pub plugin: String,
    #[serde(default)]
    pub slot: String,
    #[serde(default)]
    pub strategy: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub step: usize,
    #[serde(default)]
    pub steps: Vec<f64>,
    #[serde(default)]
    pub shares: Vec<ShareDoc>,
    pub phase: Phase,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub verdicts: BTreeMap<String, VerdictDoc>,
    #[serde(default)]
    pub ab: Option<AbDoc>,
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// When the current step began, as the daemon counts (its evaluation runs from here).
    #[serde(default)]
    pub step_started_ms: Option<u64>,
    /// How long a step is evaluated (Canary).
    #[serde(default)]
    pub step_period_ms: Option<u64>,
    #[serde(default)]
    pub at_ms: u64,
}

impl RolloutEvent {
    /// The weight of the current step, percent (`None` without steps or past the last).
    pub fn weight(&self) -> Option<f64> {
        self.steps.get(self.step).copied()
    }

    /// "step 2/3 50%", or "" for strategies without steps.
    pub fn step_label(&self) -> String {
        match self.weight() {
            Some(w) => format!("step {}/{} {}%", self.step + 1, self.steps.len(), number(w)),
            None if !self.steps.is_empty() => format!("all {} steps passed", self.steps.len()),
            None => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ShareDoc {
    pub slot: String,
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerdictDoc {
    pub verdict: String,
    #[serde(default)]
    pub text: String,
    pub requests: Option<f64>,
    pub error_rate: Option<f64>,
    pub success_rate: Option<f64>,
    pub p99_ms: Option<f64>,
    pub throughput: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AbDoc {
    pub winner: Option<String>,
    #[serde(default)]
    pub inconclusive: bool,
    #[serde(default)]
    pub summary: String,
}

/// One event of the stream, typed.
#[derive(Debug, Clone)]
pub enum DaemonEvent {
    Status(Box<StatusDoc>),
    Rollout(Box<RolloutEvent>),
    Log {
        line: String,
    },
    /// The subscriber fell behind and missed this many events.
    Lagged(String),
    /// An event this CLI does not know (a newer daemon).
    Other,
}

/// The rollout to show beside `doc`: `event` when it is newer than the pass `doc` records
/// (a rollout running in the pass under way, or one that ended after it started).
pub fn newer_rollout<'a>(doc: &StatusDoc, event: Option<&'a RolloutEvent>) -> Option<&'a RolloutEvent> {
    let event = event?;
    match doc.at_ms() {
        Some(at) if (event.at_ms as i64) < at => None,
        _ => Some(event),
    }
}

/// An error and its sources, `: `-separated (reqwest's own message hides "connection refused").
pub fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text += &format!(": {more}");
        }
        source = s.source();
    }
    text
}

/// The lifecycle word as the status branch spells it (`ACTIVE`, `ROLLED_BACK` …).
pub fn lifecycle_word(state: Lifecycle) -> String {
    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// `25`, `12.5`: a percentage without a useless `.0`.
pub fn number(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}
