//! The daemon's HTTP API (axum): health, `/metrics`, status, rollout commands, Git webhooks.
//!
//! Reads are open; rollout commands need `Authorization: Bearer <api_token>` and are refused
//! when no token is configured. The server never reconciles itself: it wakes the daemon through
//! [`ServerState::trigger`] and hands commands over [`ServerState::commands`].

pub mod dashboard;
pub mod events;
pub mod webhook;

use crate::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify, RwLock};
use webhook::{EventKind, WebhookError};

/// A rollout command from the API, for the daemon loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Retry { plugin: String },
    Promote { plugin: String },
    Abort { plugin: String },
    Pause { plugin: String },
    Resume { plugin: String },
}

impl Command {
    /// `action` as in the URL (`promote|abort|pause|resume|retry`); `None` if unknown.
    pub fn parse(action: &str, plugin: &str) -> Option<Command> {
        let plugin = plugin.to_string();
        Some(match action {
            "retry" => Command::Retry { plugin },
            "promote" => Command::Promote { plugin },
            "abort" => Command::Abort { plugin },
            "pause" => Command::Pause { plugin },
            "resume" => Command::Resume { plugin },
            _ => return None,
        })
    }

    pub fn plugin(&self) -> &str {
        match self {
            Command::Retry { plugin }
            | Command::Promote { plugin }
            | Command::Abort { plugin }
            | Command::Pause { plugin }
            | Command::Resume { plugin } => plugin,
        }
    }

    pub fn action(&self) -> &'static str {
        match self {
            Command::Retry { .. } => "retry",
            Command::Promote { .. } => "promote",
            Command::Abort { .. } => "abort",
            Command::Pause { .. } => "pause",
            Command::Resume { .. } => "resume",
        }
    }
}

#[derive(Clone)]
pub struct ServerState {
    /// The branch the daemon follows, e.g. `main`; a full ref (`refs/tags/prod`) is matched as is.
    pub branch: String,
    /// When set, unsigned or wrongly signed hooks get 401.
    pub webhook_secret: Option<String>,
    /// Bearer token for `/api/v1/...` POSTs; when `None` (or empty), POSTs are refused (401).
    pub api_token: Option<String>,
    /// `notify_one()` when a push for `branch` is accepted.
    pub trigger: Arc<Notify>,
    pub commands: mpsc::Sender<Command>,
    /// Latest status document; the daemon writes it.
    pub status: Arc<RwLock<Value>>,
    pub metrics: Arc<Metrics>,
    /// With leader election: whether this replica leads (a follower cannot act on commands).
    pub leading: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The live event stream (`/api/v1/events`).
    pub events: Arc<crate::events::EventBus>,
    /// The fleet as the daemon last loaded it (the dashboard's metadata).
    pub fleet: SharedFleet,
    /// The status branch's last commits (the dashboard's history).
    pub history: crate::status::history::SharedHistory,
}

/// The fleet as the daemon last loaded it; `None` before the first load.
pub type SharedFleet = Arc<RwLock<Option<Arc<crate::model::Loaded>>>>;

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret or the token.
        f.debug_struct("ServerState")
            .field("branch", &self.branch)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "<set>"))
            .field("api_token", &self.api_token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// GitHub caps deliveries at 25 MB; axum's default limit (2 MB) would reject big pushes.
const WEBHOOK_BODY_LIMIT: usize = 25 * 1024 * 1024;

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/plugins/{id}", get(plugin))
        .route("/api/v1/plugins/{id}/rollout/{action}", post(rollout))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/reconcile", post(reconcile_now))
        .route("/hooks/git", post(git_hook).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)))
        .merge(dashboard::routes())
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    if state.webhook_secret.as_deref().is_none_or(str::is_empty) {
        tracing::warn!("no webhook secret configured: Git webhooks are accepted unverified");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn metrics(State(st): State<ServerState>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE))], st.metrics.render())
        .into_response()
}

async fn status(State(st): State<ServerState>) -> Response {
    Json(st.status.read().await.clone()).into_response()
}

async fn plugin(State(st): State<ServerState>, Path(id): Path<String>) -> Response {
    let doc = st.status.read().await;
    let found = match doc.get("plugins") {
        Some(Value::Object(map)) => map.get(&id).cloned(),
        // Also accept a list of plugin documents carrying their own name.
        Some(Value::Array(list)) => {
            list.iter().find(|p| ["name", "id"].iter().any(|k| p.get(*k).and_then(Value::as_str) == Some(&id))).cloned()
        }
        _ => None,
    };
    match found {
        Some(p) => Json(p).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown plugin '{id}'")),
    }
}

/// `Some(token)` from `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(message: &str) -> Response {
    let mut resp = error(StatusCode::UNAUTHORIZED, message);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// `Err(401)` unless the request carries the API token (refused when none is configured).
fn authorize(st: &ServerState, headers: &HeaderMap, what: &str) -> Result<(), Response> {
    let Some(expected) = st.api_token.as_deref().filter(|t| !t.is_empty()) else {
        tracing::warn!(what, "command refused: no API token configured");
        return Err(unauthorized("commands are disabled: no API token configured"));
    };
    match bearer(headers) {
        Some(given) if webhook::constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => {
            tracing::warn!(what, "command refused: wrong bearer token");
            Err(unauthorized("invalid bearer token"))
        }
        None => {
            tracing::warn!(what, "command refused: no bearer token");
            Err(unauthorized("missing Authorization: Bearer <token>"))
        }
    }
}

/// `POST /api/v1/reconcile`: a pass now (the daemon fetches first), as a webhook would.
async fn reconcile_now(State(st): State<ServerState>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorize(&st, &headers, "reconcile now") {
        return refused;
    }
    st.trigger.notify_one();
    tracing::info!("reconcile requested through the API");
    (StatusCode::ACCEPTED, Json(json!({ "triggered": true }))).into_response()
}

async fn rollout(
    State(st): State<ServerState>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    // Authenticate before anything else, so unauthenticated callers learn nothing.
    if let Err(refused) = authorize(&st, &headers, &format!("{action} {id}")) {
        return refused;
    }
    let Some(command) = Command::parse(&action, &id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown rollout action '{action}' (promote|abort|pause|resume|retry)"),
        );
    };
    if st.leading.as_ref().is_some_and(|l| !l.load(std::sync::atomic::Ordering::Relaxed)) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this replica is not the leader: send the command to the replica holding the leader Lease",
        );
    }
    match st.commands.try_send(command) {
        Ok(()) => {
            tracing::info!(plugin = %id, %action, "rollout command accepted");
            (StatusCode::ACCEPTED, Json(json!({ "accepted": true, "plugin": id, "action": action }))).into_response()
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(plugin = %id, %action, "rollout command refused: queue full");
            error(StatusCode::SERVICE_UNAVAILABLE, "command queue is full, try again")
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::error!(plugin = %id, %action, "rollout command refused: daemon loop is gone");
            error(StatusCode::SERVICE_UNAVAILABLE, "daemon is not accepting commands")
        }
    }
}

/// Whether a push to `git_ref` concerns the followed `branch`.
pub fn ref_matches(branch: &str, git_ref: &str) -> bool {
    if branch.starts_with("refs/") {
        git_ref == branch
    } else {
        git_ref.strip_prefix("refs/heads/") == Some(branch)
    }
}

async fn git_hook(State(st): State<ServerState>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = st.webhook_secret.as_deref().filter(|s| !s.is_empty());
    let (provider, _) = webhook::detect(&headers);
    let event = match webhook::receive(&headers, &body, secret) {
        Ok(event) => event,
        Err(e) => {
            st.metrics.webhook(provider.as_str(), e.metric_label());
            return match e {
                WebhookError::Unauthorized(why) => {
                    tracing::warn!(%provider, reason = why, "webhook rejected: unauthorized");
                    error(StatusCode::UNAUTHORIZED, "invalid or missing webhook signature")
                }
                WebhookError::Invalid(why) => {
                    tracing::warn!(%provider, reason = %why, "webhook rejected: invalid payload");
                    error(StatusCode::BAD_REQUEST, why)
                }
            };
        }
    };
    match &event.kind {
        EventKind::Ping => {
            st.metrics.webhook(provider.as_str(), "ignored");
            tracing::info!(%provider, "webhook ping");
            (StatusCode::OK, "pong").into_response()
        }
        EventKind::Other(name) => {
            st.metrics.webhook(provider.as_str(), "ignored");
            tracing::info!(%provider, event = %name, "webhook ignored: not a push");
            (StatusCode::ACCEPTED, Json(json!({ "triggered": false, "ref": null, "event": name }))).into_response()
        }
        EventKind::Push => {
            let triggered = ref_matches(&st.branch, &event.git_ref);
            if triggered {
                st.trigger.notify_one();
            }
            st.metrics.webhook(provider.as_str(), if triggered { "accepted" } else { "ignored" });
            tracing::info!(
                %provider,
                git_ref = %event.git_ref,
                after = event.after.as_deref().unwrap_or("-"),
                repository = event.repository.as_deref().unwrap_or("-"),
                branch = %st.branch,
                verified = secret.is_some(),
                triggered,
                "webhook push"
            );
            (StatusCode::ACCEPTED, Json(json!({ "triggered": triggered, "ref": event.git_ref }))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_matching() {
        for (branch, git_ref, want) in [
            ("main", "refs/heads/main", true),
            ("main", "refs/heads/main2", false),
            ("main", "refs/heads/feature/main", false),
            ("main", "refs/tags/main", false),
            ("release/1.x", "refs/heads/release/1.x", true),
            ("refs/tags/prod", "refs/tags/prod", true),
            ("refs/tags/prod", "refs/heads/prod", false),
            ("refs/heads/main", "refs/heads/main", true),
        ] {
            assert_eq!(ref_matches(branch, git_ref), want, "{branch} vs {git_ref}");
        }
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn commands_round_trip() {
        for action in ["promote", "abort", "pause", "resume", "retry"] {
            let c = Command::parse(action, "crm").unwrap();
            assert_eq!((c.action(), c.plugin()), (action, "crm"));
        }
        assert_eq!(Command::parse("delete", "crm"), None);
    }
}
