//! The daemon's side of drift: the Docker event stream that makes a check happen the moment a
//! container dies, and the alerts for drift and rollouts. Which repairs the `drift:` policy
//! allows is a gate of the plan (`plan::gates`, `plan::heal`).

use crate::model::Fleet;
use crate::plan::ChangeKind;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

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
