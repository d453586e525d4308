//! The daemon's live events, one stream for the dashboard and the CLI (`GET /api/v1/events`):
//! the status document after every pass, each rollout's progress at every step of the executor
//! (step, split, verdicts with the metric values behind them), and the narration's lines.
//!
//! Publishing never waits: a slow subscriber misses events (and is told so) rather than
//! slowing a reconcile. A new subscriber first gets the latest status and every rollout in
//! flight, so it starts from the whole picture.

use crate::model::Plugin;
use crate::plan::Slot;
use crate::strategy::{Evidence, Outcome, RolloutState, Verdict};
use crate::traffic::SlotShare;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it misses some.
const BACKLOG: usize = 1024;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// The status document after a pass (what `GET /api/v1/status` returns).
    Status { status: Value },
    /// One rollout's progress.
    Rollout(RolloutLive),
    /// One line of the reconciler's narration.
    Log { at: String, line: String },
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Status { .. } => "status",
            Event::Rollout(_) => "rollout",
            Event::Log { .. } => "log",
        }
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Progressing,
    Paused,
    Converged,
    RolledBack,
    Failed,
}

impl Phase {
    /// Converged, rolled back or failed: the rollout is over.
    pub fn is_final(self) -> bool {
        !matches!(self, Phase::Progressing | Phase::Paused)
    }

    pub fn word(self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Converged => "converged",
            Phase::RolledBack => "rolled back",
            Phase::Failed => "failed",
        }
    }
}

/// A rollout as a person watches it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutLive {
    pub plugin: String,
    /// The slot the rollout drives (`stable` for the whole plugin's progressive rollouts).
    pub slot: Slot,
    pub strategy: String,
    pub version: String,
    /// The target spec hash: one rollout is (plugin, target).
    pub target: String,
    /// Index of the current step in `steps`.
    pub step: usize,
    /// The strategy's steps as weights, percent (Canary, Gradual blue-green); empty for the
    /// others.
    pub steps: Vec<f64>,
    /// The traffic split in force behind the router; empty with DNS.
    pub shares: Vec<SlotShare>,
    pub phase: Phase,
    /// What the strategy says it is doing, or why it ended or paused.
    pub note: String,
    /// Per watched slot: the verdict and the metric values it was judged on.
    pub verdicts: BTreeMap<Slot, SlotVerdict>,
    /// An A/B test's comparison so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ab: Option<AbLive>,
    pub started_ms: Option<u64>,
    /// When the current step's layout was reached: its evaluation runs from here.
    pub step_started_ms: Option<u64>,
    /// How long a step is evaluated (Canary), milliseconds.
    pub step_period_ms: Option<u64>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotVerdict {
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: &'static str,
    pub text: String,
    pub requests: Option<f64>,
    pub error_rate: Option<f64>,
    pub success_rate: Option<f64>,
    pub p99_ms: Option<f64>,
    pub throughput: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AbLive {
    pub winner: Option<String>,
    pub inconclusive: bool,
    pub summary: String,
}

/// What one step of the executor tells the watchers.
pub struct StepReport<'a> {
    pub plugin: &'a Plugin,
    pub slot: Slot,
    pub target: &'a str,
    pub state: &'a RolloutState,
    pub evidence: &'a Evidence,
    pub outcome: &'a Outcome,
    pub shares: Vec<SlotShare>,
    pub now_ms: u64,
}

impl RolloutLive {
    pub fn from_step(r: &StepReport) -> RolloutLive {
        let (phase, note) = match r.outcome {
            Outcome::Progress { note, .. } => (Phase::Progressing, note.clone()),
            Outcome::Converged => (Phase::Converged, "converged".into()),
            Outcome::RolledBack { reason } => (Phase::RolledBack, reason.clone()),
            Outcome::Failed { reason } => (Phase::Failed, reason.clone()),
            Outcome::Paused { reason } => (Phase::Paused, reason.clone()),
        };
        let verdicts = r
            .evidence
            .verdicts
            .iter()
            .filter(|_| r.evidence.window == r.state.window)
            .map(|(slot, v)| (*slot, slot_verdict(v, r.evidence.metrics.get(slot))))
            .collect();
        RolloutLive {
            plugin: r.plugin.id.clone(),
            slot: r.slot,
            strategy: r.plugin.strategy.to_string(),
            version: r.plugin.manifest.version.clone(),
            target: r.target.chars().take(12).collect(),
            step: r.state.step,
            steps: steps(r.plugin),
            shares: r.shares.clone(),
            phase,
            note,
            verdicts,
            ab: r.evidence.ab.as_ref().map(|ab| AbLive {
                winner: ab.winner.map(|w| format!("{w:?}")),
                inconclusive: ab.inconclusive,
                summary: ab.summary.clone(),
            }),
            started_ms: r.state.started_ms,
            step_started_ms: r.state.step_started_ms,
            step_period_ms: (r.plugin.strategy == crate::model::policy::Strategy::Canary)
                .then(|| r.plugin.policy.canary_config.as_ref().map(|c| c.evaluation_ms()))
                .flatten(),
            at_ms: r.now_ms,
        }
    }
}

fn slot_verdict(v: &Verdict, m: Option<&crate::analysis::SlotMetrics>) -> SlotVerdict {
    let verdict = match v {
        Verdict::Pass { .. } => "pass",
        Verdict::Fail { .. } => "fail",
        Verdict::Inconclusive { .. } => "inconclusive",
    };
    SlotVerdict {
        verdict,
        text: v.text().to_string(),
        requests: m.filter(|m| m.requests_counted).map(|m| m.requests),
        error_rate: m.and_then(|m| m.error_rate),
        success_rate: m.and_then(|m| m.success_rate),
        p99_ms: m.and_then(|m| m.p99_ms),
        throughput: m.and_then(|m| m.throughput),
    }
}

/// The weights a plugin's strategy steps through.
fn steps(plugin: &Plugin) -> Vec<f64> {
    use crate::model::policy::Strategy;
    match plugin.strategy {
        Strategy::Canary => plugin.policy.canary_config.as_ref().map(|c| c.step_percentages()).unwrap_or_default(),
        Strategy::BlueGreen => {
            plugin.policy.blue_green_config.as_ref().and_then(|c| c.gradual_steps.clone()).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// An event as published: one copy shared by every subscriber, serialized once however many
/// watch it. (Copied and serialized per subscriber, the status document of a 1,000-plugin
/// fleet made a pass 35 times slower with 100 watchers: `cargo bench --bench dashboard`.)
#[derive(Debug, Clone)]
pub struct Published(Arc<(Event, OnceLock<String>)>);

impl Published {
    pub fn new(event: Event) -> Published {
        Published(Arc::new((event, OnceLock::new())))
    }

    pub fn event(&self) -> &Event {
        &self.0 .0
    }

    /// The event as JSON (with its `type`), serialized by the first subscriber that asks.
    pub fn json(&self) -> &str {
        self.0 .1.get_or_init(|| {
            serde_json::to_string(&self.0 .0)
                .unwrap_or_else(|e| serde_json::json!({"type": "error", "error": e.to_string()}).to_string())
        })
    }
}

impl std::ops::Deref for Published {
    type Target = Event;
    fn deref(&self) -> &Event {
        self.event()
    }
}

/// The daemon's event stream: publish from anywhere, subscribe from the HTTP server.
pub struct EventBus {
    tx: broadcast::Sender<Published>,
    latest_status: Mutex<Option<Published>>,
    rollouts: Mutex<BTreeMap<String, RolloutLive>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus { tx: broadcast::channel(BACKLOG).0, latest_status: Mutex::new(None), rollouts: Mutex::default() }
    }
}

impl EventBus {
    pub fn status(&self, status: Value) {
        let published = Published::new(Event::Status { status });
        if let Ok(mut latest) = self.latest_status.lock() {
            *latest = Some(published.clone());
        }
        let _ = self.tx.send(published);
    }

    /// A rollout's progress; sent only when something a watcher sees changed.
    pub fn rollout(&self, live: RolloutLive) {
        if let Ok(mut rollouts) = self.rollouts.lock() {
            let unchanged =
                rollouts.get(&live.plugin).is_some_and(|old| RolloutLive { at_ms: live.at_ms, ..old.clone() } == live);
            if unchanged {
                return;
            }
            rollouts.insert(live.plugin.clone(), live.clone());
        }
        let _ = self.tx.send(Published::new(Event::Rollout(live)));
    }

    pub fn log(&self, line: &str) {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let _ = self.tx.send(Published::new(Event::Log { at, line: line.to_string() }));
    }

    /// The latest rollout of every plugin that had one since the daemon started.
    pub fn rollouts(&self) -> BTreeMap<String, RolloutLive> {
        self.rollouts.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// A new subscriber: what it should see first (the latest status, every rollout known),
    /// and the stream from now on.
    pub fn subscribe(&self) -> (Vec<Published>, broadcast::Receiver<Published>) {
        let receiver = self.tx.subscribe();
        let mut first: Vec<Published> = Vec::new();
        if let Some(status) = self.latest_status.lock().ok().and_then(|s| s.clone()) {
            first.push(status);
        }
        first.extend(self.rollouts().into_values().map(|live| Published::new(Event::Rollout(live))));
        (first, receiver)
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(plugin: &str, step: usize, at_ms: u64) -> RolloutLive {
        RolloutLive {
            plugin: plugin.into(),
            slot: Slot::Stable,
            strategy: "Canary".into(),
            version: "1.1.0".into(),
            target: "abc".into(),
            step,
            steps: vec![10.0, 50.0, 100.0],
            shares: Vec::new(),
            phase: Phase::Progressing,
            note: String::new(),
            verdicts: BTreeMap::new(),
            ab: None,
            started_ms: Some(1),
            step_started_ms: Some(1),
            step_period_ms: Some(6000),
            at_ms,
        }
    }

    #[test]
    fn a_subscriber_starts_from_the_whole_picture_and_sees_only_changes() {
        let bus = EventBus::default();
        bus.status(serde_json::json!({"revision": "r1"}));
        bus.rollout(live("crm", 0, 1));
        let (first, mut receiver) = bus.subscribe();
        let names: Vec<&str> = first.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["status", "rollout"]);
        // The same step again, later: nothing a watcher would see changed.
        bus.rollout(live("crm", 0, 2));
        bus.rollout(live("crm", 1, 3));
        bus.log("crm [stable]: canary 50 %");
        let mut got = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            got.push(event);
        }
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(got[0].event(), Event::Rollout(l) if l.step == 1));
        assert!(matches!(got[1].event(), Event::Log { line, .. } if line.starts_with("crm")));
        assert!(got[0].json().starts_with(r#"{"type":"rollout""#), "{}", got[0].json());
        assert_eq!(bus.rollouts()["crm"].step, 1);
    }

    #[test]
    fn events_serialize_with_their_type() {
        let value = serde_json::to_value(Event::Rollout(live("crm", 1, 3))).unwrap_or_default();
        assert_eq!(value["type"], "rollout");
        assert_eq!(value["plugin"], "crm");
        assert_eq!(value["phase"], "progressing");
        assert_eq!(value["steps"], serde_json::json!([10.0, 50.0, 100.0]));
    }
}
