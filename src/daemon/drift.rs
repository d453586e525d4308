//! The daemon's side of drift: which planned repairs are drift (Git unchanged since plugsync
//! last applied the plugin) and what the plugin's `drift:` policy says about them — `alert`
//! holds them, `heal` lets the strategy re-apply, with exponential back-off and a flap limit —
//! plus the Docker event stream that makes a check happen the moment a container dies.

use crate::model::{DriftMode, Fleet, Healing};
use crate::plan::spec::combined_hash;
use crate::plan::{ChangeKind, Plan};
use crate::status::PluginStatus;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What the policy decides about one plugin's drift repair now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Heal,
    /// `drift: alert`: reported, not repaired.
    Alert,
    /// Healed recently: the next heal waits this long.
    Backoff(Duration),
    /// Too many heals in the window: healing stopped.
    Flapping,
}

/// Pure: the decision from the plugin's mode, its recent heals and the fleet's `healing`
/// settings: the first heal at once, the n-th `backoff × 2^(n-2)` after the last one, none
/// once `flapLimit` heals happened within `flapWindow`.
pub fn decide(mode: DriftMode, recent: &[Instant], now: Instant, healing: &Healing) -> Gate {
    if mode == DriftMode::Alert {
        return Gate::Alert;
    }
    let in_window: Vec<&Instant> = recent.iter().filter(|t| now.duration_since(**t) < healing.flap_window.0).collect();
    if in_window.len() >= healing.flap_limit as usize {
        return Gate::Flapping;
    }
    if let Some(last) = in_window.iter().max() {
        let wait = healing.backoff.0 * 2u32.saturating_pow(in_window.len().saturating_sub(1) as u32);
        let since = now.duration_since(**last);
        if since < wait {
            return Gate::Backoff(wait - since);
        }
    }
    Gate::Heal
}

/// Heals done, per plugin, and which plugins flap.
#[derive(Default)]
pub struct Healer {
    heals: BTreeMap<String, Vec<Instant>>,
}

impl Healer {
    /// Holds the plan's drift repairs the policy does not allow now; returns the plugins
    /// that are flapping (for an alert).
    pub fn gate(&mut self, plan: &mut Plan, fleet: &Fleet, statuses: &BTreeMap<String, PluginStatus>) -> Vec<String> {
        let now = Instant::now();
        let mut flapping = Vec::new();
        for change in plan.changes.clone() {
            let Some(plugin) = fleet.plugins.get(&change.plugin) else { continue };
            // A Create of a plugin already applied at this spec: every instance vanished.
            let repair =
                matches!(change.kind, ChangeKind::Repair | ChangeKind::Scale | ChangeKind::Update | ChangeKind::Create);
            let applied = statuses.get(&plugin.id).and_then(|s| s.applied.as_deref());
            // Git still says what plugsync last applied: the difference is drift.
            if !repair || applied != Some(combined_hash(plugin).as_str()) {
                continue;
            }
            let mode = plugin.manifest.drift.unwrap_or(fleet.config.drift);
            let healing = fleet.config.healing;
            let recent = self.heals.entry(plugin.id.clone()).or_default();
            recent.retain(|t| now.duration_since(*t) < healing.flap_window.0);
            match decide(mode, recent, now, &healing) {
                Gate::Heal => recent.push(now),
                Gate::Alert => plan
                    .hold(&plugin.id, "drift (drift: alert): reported, not repaired; set `drift: heal` to repair it"),
                Gate::Backoff(wait) => plan.hold(
                    &plugin.id,
                    &format!("drift: healed {} time(s) lately; next heal in {wait:.1?}", recent.len()),
                ),
                Gate::Flapping => {
                    plan.hold(
                        &plugin.id,
                        &format!("flapping: {} heals within {}; healing stopped", recent.len(), healing.flap_window),
                    );
                    flapping.push(plugin.id.clone());
                }
            }
        }
        flapping
    }
}

/// What the engine's event stream said last about each container (by name), so a finding can
/// say when and by what action.
pub type Causes = Arc<Mutex<BTreeMap<String, String>>>;

/// Records the engine's last word on `instance` (the map stays bounded).
pub fn note_cause(causes: &Causes, instance: String, cause: String) {
    let mut map = super::tasks::lock(causes);
    map.insert(instance, cause);
    if map.len() > 1000 {
        let first = map.keys().next().cloned().unwrap_or_default();
        map.remove(&first);
    }
}

/// Follows Docker's events for the fleet's containers and its network: records each as the
/// cause of what follows and wakes the daemon at once. Reconnects after errors.
pub fn watch_docker(docker: bollard::Docker, fleet: String, network: String, causes: Causes, wake: Arc<Notify>) {
    use futures_util::StreamExt;
    // A panic in here (a malformed event, say) restarts the watch instead of ending it.
    super::tasks::restarting("docker events", Duration::from_secs(1), move || {
        let (docker, fleet, network, causes, wake) =
            (docker.clone(), fleet.clone(), network.clone(), causes.clone(), wake.clone());
        async move {
            loop {
                let filters = std::collections::HashMap::from([
                    ("type".to_string(), vec!["container".to_string(), "network".to_string()]),
                    (
                        "event".to_string(),
                        [
                            "die",
                            "oom",
                            "stop",
                            "kill",
                            "destroy",
                            "update",
                            "pause",
                            "health_status",
                            "disconnect",
                            "connect",
                        ]
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    ),
                ]);
                let options = bollard::query_parameters::EventsOptions { filters: Some(filters), ..Default::default() };
                let mut stream = docker.events(Some(options));
                while let Some(event) = stream.next().await {
                    let Ok(event) = event else { break };
                    let action = event.action.unwrap_or_default();
                    let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
                    let (container, ours) = if attributes.contains_key("type") || attributes.contains_key("container") {
                        // A network event: ours when it is the fleet's network.
                        let name = attributes.get("name").cloned().unwrap_or_default();
                        (attributes.get("container").cloned().unwrap_or_default(), name == network)
                    } else {
                        let name = attributes.get("name").cloned().unwrap_or_default();
                        let fleet_label = attributes.get(crate::plan::observed::labels::FLEET);
                        (name.clone(), fleet_label == Some(&fleet) || name.starts_with(&format!("{fleet}-")))
                    };
                    if !ours {
                        continue;
                    }
                    let at = event
                        .time
                        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                        .map(|t| t.format("%H:%M:%S").to_string())
                        .unwrap_or_default();
                    tracing::info!(%action, %container, "engine event");
                    note_cause(&causes, container, format!("docker {action} at {at}"));
                    wake.notify_one();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
}

/// Drift, flapping and rollout events to the fleet's alert channels: one alert when an
/// incident opens, one when it resolves, reminders after `repeatInterval`; delivery in the
/// background, never blocking the loop.
pub struct Notifier {
    config: crate::model::config::AlertsConfig,
    tls: crate::model::config::TlsConfig,
    dispatcher: crate::alert::Dispatcher,
    incidents: crate::alert::Incidents,
}

impl Notifier {
    /// Built for `config`; an unusable channel (a bad URL, an unreadable CA bundle)
    /// is reported and the log channel alone is used.
    pub fn new(
        config: &crate::model::config::AlertsConfig,
        tls: &crate::model::config::TlsConfig,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Notifier {
        let options = crate::alert::DispatcherOptions {
            ca_bundles: crate::tls::extra_bundles(tls.ca_bundle.as_deref()),
            ..crate::alert::DispatcherOptions::for_config(config)
        };
        let made = crate::alert::Dispatcher::with_options(config, Some(metrics.clone()), options);
        let dispatcher = made.unwrap_or_else(|e| {
            tracing::error!(error = %e, "alert channels unusable; alerts go to the log only");
            crate::alert::Dispatcher::new(&Default::default(), Some(metrics)).expect("the log channel needs no URL")
        });
        let incidents = crate::alert::Incidents::new(crate::alert::repeat_interval(config));
        Notifier { config: config.clone(), tls: tls.clone(), dispatcher, incidents }
    }

    pub fn is_for(&self, config: &crate::model::config::AlertsConfig, tls: &crate::model::config::TlsConfig) -> bool {
        self.config == *config && self.tls == *tls
    }

    /// Findings of one check over the whole fleet (every plugin, clean ones too, so open
    /// incidents resolve), and the plugins whose healing stopped.
    pub fn drift(&mut self, fleet: &Fleet, findings: &[crate::plan::drift::Finding], flapping: &[String]) {
        use crate::alert::{FindingSummary, DRIFT, FLAPPING};
        let now = chrono::Utc::now();
        let name = &fleet.config.fleet;
        let mut plugins: Vec<String> = fleet.plugins.keys().cloned().collect();
        plugins.extend(self.incidents.open().filter(|(f, _, _)| *f == name.as_str()).map(|(_, p, _)| p.to_string()));
        plugins.sort();
        plugins.dedup();
        for plugin in &plugins {
            let mine: Vec<FindingSummary> = findings
                .iter()
                .filter(|f| f.plugin == *plugin)
                .map(|f| FindingSummary {
                    kind: f.kind.as_str().into(),
                    instance: f.instance.clone(),
                    text: format!(
                        "expected {}, found {}{}",
                        f.expected,
                        f.found,
                        f.cause.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
                    ),
                })
                .collect();
            for alert in self.incidents.observe(name, plugin, DRIFT, &mine, now) {
                self.dispatcher.send(alert);
            }
            let flaps: Vec<FindingSummary> = flapping
                .iter()
                .filter(|p| *p == plugin)
                .map(|p| FindingSummary {
                    kind: "flapping".into(),
                    instance: String::new(),
                    text: format!("{p} keeps drifting; healing stopped until the flap window passes"),
                })
                .collect();
            for alert in self.incidents.observe(name, plugin, FLAPPING, &flaps, now) {
                self.dispatcher.send(alert);
            }
        }
    }

    /// Rollout events of a pass: started (for each planned update), then how it ended.
    pub fn rollouts(&self, fleet: &str, report: &crate::reconcile::Report) {
        use crate::alert::RolloutEventKind as Kind;
        use crate::reconcile::Ending;
        let now = chrono::Utc::now();
        for r in &report.results {
            let Some(change) = report.plan.changes.iter().find(|c| c.plugin == r.plugin) else { continue };
            if change.kind != ChangeKind::Update {
                continue;
            }
            let reasons = change.reasons.join("; ");
            let (kind, text) = match &r.result {
                Ending::Converged => (Kind::Promoted, format!("{}: rolled out ({reasons})", r.plugin)),
                Ending::RolledBack { reason } => (Kind::RolledBack, format!("{}: rolled back: {reason}", r.plugin)),
                Ending::Failed { reason } => (Kind::Failed, format!("{}: rollout failed: {reason}", r.plugin)),
                Ending::Paused { reason } => (Kind::Step, format!("{}: rollout paused: {reason}", r.plugin)),
                Ending::Skipped { .. } => continue,
            };
            self.dispatcher.send(crate::alert::rollout(
                fleet,
                &r.plugin,
                Kind::Started,
                &format!("{}: rollout started ({reasons})", r.plugin),
                now,
            ));
            self.dispatcher.send(crate::alert::rollout(fleet, &r.plugin, kind, &text, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        let now = Instant::now();
        let ago = |s: u64| now - Duration::from_secs(s);
        let cases: Vec<(DriftMode, Vec<Instant>, Gate)> = vec![
            (DriftMode::Alert, vec![], Gate::Alert),
            (DriftMode::Heal, vec![], Gate::Heal),
            // One heal 1 s ago: the second waits 2 s after it.
            (DriftMode::Heal, vec![ago(1)], Gate::Backoff(Duration::from_secs(1))),
            (DriftMode::Heal, vec![ago(3)], Gate::Heal),
            // Two heals: the third waits 4 s after the last.
            (DriftMode::Heal, vec![ago(10), ago(3)], Gate::Backoff(Duration::from_secs(1))),
            (DriftMode::Heal, vec![ago(500), ago(400), ago(300), ago(200), ago(100)], Gate::Flapping),
            // Heals older than the window are forgotten.
            (DriftMode::Heal, vec![ago(5000), ago(4000), ago(3000), ago(2000), ago(1000)], Gate::Heal),
        ];
        for (mode, recent, want) in cases {
            assert_eq!(decide(mode, &recent, now, &Healing::default()), want, "{mode:?} {recent:?}");
        }
    }
}
