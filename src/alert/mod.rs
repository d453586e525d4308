//! Drift and rollout notifications: log, generic JSON webhook, Slack-compatible incoming
//! webhook, Alertmanager v2 — de-duplicated, with resolve.
//!
//! - [`incidents`] (pure): findings per (fleet, plugin, alert name) → at most one Firing
//!   alert per incident, a reminder every `repeat_interval`, one Resolved alert when the
//!   findings are gone; [`rollout`] turns a rollout event into a one-off alert.
//! - [`channels`]: the request body of each delivery format (pure, table-tested) and the HTTP
//!   send.
//! - [`dispatch`]: [`Dispatcher::send`] never blocks the caller; one task per channel delivers
//!   in order from a bounded queue, retrying with exponential back-off.
//!
//! The daemon keeps one [`Incidents`] (it is `&mut`, not shared) and one
//! `Arc<`[`Dispatcher`]`>`; every tick it calls [`Incidents::observe`] per plugin and hands
//! each returned alert to [`Dispatcher::send`].

pub mod channels;
pub mod dispatch;
pub mod incidents;

pub use channels::Channel;
pub use dispatch::{ChannelStats, Dispatcher, DispatcherOptions};
pub use incidents::{rollout, Incidents};

use crate::model::config::AlertsConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Alert name of a plugin whose running state differs from Git.
pub const DRIFT: &str = "PlugsyncDrift";
/// Alert name of a plugin whose drift keeps coming back.
pub const FLAPPING: &str = "PlugsyncFlapping";
/// Alert name of rollout events.
pub const ROLLOUT: &str = "PlugsyncRollout";

/// Reminder interval when the fleet config sets no `alerts.repeatInterval` (Alertmanager's
/// own default `repeat_interval`).
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// `alerts.repeatInterval` of the fleet config, else [`DEFAULT_REPEAT_INTERVAL`].
pub fn repeat_interval(config: &AlertsConfig) -> Duration {
    config.repeat_interval.map(|span| span.as_duration()).unwrap_or(DEFAULT_REPEAT_INTERVAL)
}

/// Whether the condition an alert reports still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One notification, as every channel receives it. The generic webhook gets exactly this,
/// serialised in camelCase with RFC 3339 timestamps.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub fleet: String,
    pub plugin: String,
    /// [`DRIFT`], [`FLAPPING`] or [`ROLLOUT`].
    pub name: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    pub summary: String,
    pub details: Vec<String>,
    pub state: AlertState,
    /// When the incident opened (the same on reminders and on the resolve).
    #[serde(serialize_with = "rfc3339")]
    pub starts_at: DateTime<Utc>,
    /// Resolved: when it was resolved. Firing: when it expires on its own (rollout failures),
    /// or `None` while it lasts until resolved.
    #[serde(serialize_with = "rfc3339_opt")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Extra labels (for Alertmanager, beside alertname, fleet, plugin and severity); rollout
    /// alerts carry `event`.
    pub labels: BTreeMap<String, String>,
}

/// One drift finding, as much as an alert needs of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingSummary {
    /// What differs, e.g. `image`, `replicas`, `env`, `missing`.
    pub kind: String,
    /// The instance (container or pod) it was seen on; may be empty.
    pub instance: String,
    /// A sentence a person can read.
    pub text: String,
}

/// What happened to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutEventKind {
    Started,
    Step,
    Promoted,
    RolledBack,
    Failed,
}

impl RolloutEventKind {
    /// The value of the `event` label: started|step|promoted|rolled_back|failed.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutEventKind::Started => "started",
            RolloutEventKind::Step => "step",
            RolloutEventKind::Promoted => "promoted",
            RolloutEventKind::RolledBack => "rolled_back",
            RolloutEventKind::Failed => "failed",
        }
    }

    /// Parses [`RolloutEventKind::as_str`] back.
    pub fn parse(text: &str) -> Option<RolloutEventKind> {
        [Self::Started, Self::Step, Self::Promoted, Self::RolledBack, Self::Failed]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// Why a notification could not be delivered, or a channel not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("{channel} URL `{url}` is invalid: {detail}")]
    InvalidUrl { channel: &'static str, url: String, detail: String },
    #[error("the alert dispatcher must be created inside a Tokio runtime")]
    NoRuntime,
    #[error("building the HTTP client for alerts failed: {detail}")]
    Client { detail: String },
    #[error("encoding the {channel} request failed: {detail}")]
    Encode { channel: &'static str, detail: String },
    #[error("{channel} at {url} unreachable: {detail}")]
    Request { channel: &'static str, url: String, detail: String },
    #[error("{channel} at {url} answered HTTP {status}{}", colon_prefixed(.body))]
    Status { channel: &'static str, url: String, status: u16, body: String },
}

impl AlertError {
    /// A receiver that rejects the request itself (4xx other than 408 and 429) will reject
    /// it again: such a delivery is dropped instead of retried, so it cannot block the
    /// channel's queue forever.
    pub fn is_permanent(&self) -> bool {
        match self {
            AlertError::Status { status, .. } => (400..500).contains(status) && *status != 408 && *status != 429,
            AlertError::Encode { .. } => true,
            _ => false,
        }
    }

    /// A short, fixed label for logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            AlertError::InvalidUrl { .. } => "config",
            AlertError::NoRuntime | AlertError::Client { .. } => "setup",
            AlertError::Encode { .. } => "encode",
            AlertError::Request { .. } => "unreachable",
            AlertError::Status { .. } => "status",
        }
    }
}

fn colon_prefixed(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-01-02T03:04:05.000Z` (what Alertmanager
/// answers with, too).
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*at))
}

fn rfc3339_opt<S: serde::Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&format_time(*at)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::duration::Span;
    use chrono::TimeZone;

    #[test]
    fn alert_serialises_in_camel_case_with_rfc3339_times() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid time");
        let alert = Alert {
            fleet: "prod".into(),
            plugin: "crm".into(),
            name: DRIFT.into(),
            severity: "warning".into(),
            summary: "s".into(),
            details: vec!["d".into()],
            state: AlertState::Resolved,
            starts_at: at,
            ends_at: Some(at),
            labels: BTreeMap::from([("event".to_string(), "step".to_string())]),
        };
        let json = serde_json::to_value(&alert).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({
                "fleet": "prod", "plugin": "crm", "name": "PlugsyncDrift", "severity": "warning",
                "summary": "s", "details": ["d"], "state": "resolved",
                "startsAt": "2026-01-02T03:04:05.000Z", "endsAt": "2026-01-02T03:04:05.000Z",
                "labels": {"event": "step"}
            })
        );
        let firing = Alert { state: AlertState::Firing, ends_at: None, ..alert };
        let json = serde_json::to_value(&firing).expect("serialise");
        assert_eq!(json["state"], "firing");
        assert_eq!(json["endsAt"], serde_json::Value::Null);
    }

    #[test]
    fn rollout_kinds_round_trip_and_match_serde() {
        for kind in [
            RolloutEventKind::Started,
            RolloutEventKind::Step,
            RolloutEventKind::Promoted,
            RolloutEventKind::RolledBack,
            RolloutEventKind::Failed,
        ] {
            assert_eq!(RolloutEventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).expect("serialise"), kind.as_str());
        }
        assert_eq!(RolloutEventKind::parse("rolledBack"), None);
    }

    #[test]
    fn permanent_errors_are_client_errors_except_timeout_and_rate_limit() {
        let status = |status| AlertError::Status { channel: "webhook", url: "u".into(), status, body: String::new() };
        for (code, permanent) in [(400, true), (404, true), (408, false), (429, false), (500, false), (503, false)] {
            assert_eq!(status(code).is_permanent(), permanent, "HTTP {code}");
        }
        assert_eq!(status(400).to_string(), "webhook at u answered HTTP 400");
        let with_body = AlertError::Status { channel: "slack", url: "u".into(), status: 503, body: "busy".into() };
        assert_eq!(with_body.to_string(), "slack at u answered HTTP 503: busy");
        let refused = AlertError::Request { channel: "slack", url: "u".into(), detail: "refused".into() };
        assert!(!refused.is_permanent());
    }

    #[test]
    fn repeat_interval_defaults_to_four_hours() {
        assert_eq!(repeat_interval(&AlertsConfig::default()), DEFAULT_REPEAT_INTERVAL);
        let config = AlertsConfig { repeat_interval: Some(Span::from_secs(90)), ..AlertsConfig::default() };
        assert_eq!(repeat_interval(&config), Duration::from_secs(90));
    }
}
