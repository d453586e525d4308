//! Status documents and the commits that record them. Pure: the caller passes `now`.

use crate::model::Fleet;
use crate::plan::{ChangeKind, Observed, Plan};
use crate::reconcile::{Ending, PluginResult};
use crate::strategy::RolloutState;
use std::collections::BTreeMap;

pub use super::book::*;
use super::StatusCommit;

/// What one reconcile pass produced, for status.
pub struct PassRecord<'a> {
    pub fleet: &'a Fleet,
    pub revision: &'a str,
    pub plan: &'a Plan,
    pub results: &'a [PluginResult],
    /// Spec hash each changed plugin was driven to (for `failed.specHash`).
    pub target_hashes: &'a BTreeMap<String, String>,
    pub observed: &'a Observed,
    pub errors: &'a [String],
    pub now: &'a str,
    /// Rollouts in flight: plugin → (target hash, state).
    pub rollouts: &'a BTreeMap<String, (String, RolloutState)>,
}

fn short(revision: &str) -> &str {
    crate::model::short_revision(revision)
}

fn slots(observed: &Observed, plugin: &str) -> BTreeMap<String, SlotStatus> {
    let mut out: BTreeMap<String, SlotStatus> = BTreeMap::new();
    for i in observed.of_plugin(plugin).filter(|i| i.is_running()) {
        let entry = out.entry(i.slot.to_string()).or_insert(SlotStatus {
            version: i.version.clone(),
            instances: 0,
            digest: i.image_id.clone(),
        });
        entry.instances += 1;
    }
    out
}

/// More plugin changes than this in one pass are recorded in a single commit.
const BULK: usize = 20;

/// New statuses after a pass, and the commits that record what changed.
// Long: one commit per outcome kind of a pass, in the order people read them in `git log`.
pub fn pass_commits(
    record: &PassRecord,
    previous: &BTreeMap<String, PluginStatus>,
) -> (BTreeMap<String, PluginStatus>, Vec<StatusCommit>) {
    let mut statuses = previous.clone();
    let mut commits = Vec::new();
    let results: BTreeMap<&str, &PluginResult> = record.results.iter().map(|r| (r.plugin.as_str(), r)).collect();
    let changes: BTreeMap<&str, &crate::plan::Change> =
        record.plan.changes.iter().map(|c| (c.plugin.as_str(), c)).collect();
    let mut ids: Vec<&String> = record.fleet.plugins.keys().collect();
    ids.extend(previous.keys().filter(|k| !record.fleet.plugins.contains_key(*k)));
    for id in ids {
        let desired = record.fleet.plugins.get(id);
        let old = previous.get(id);
        let mut status = old.cloned().unwrap_or(PluginStatus {
            plugin: id.clone(),
            state: Lifecycle::Registered,
            desired_version: None,
            strategy: None,
            revision: None,
            slots: BTreeMap::new(),
            last_change: None,
            failed: None,
            last_error: None,
            rollout: None,
            applied: None,
            drift: None,
        });
        status.desired_version = desired.map(|p| p.versions().join(" + "));
        status.strategy = desired.map(|p| p.strategy.to_string());
        status.slots = slots(record.observed, id);
        status.rollout = record.rollouts.get(id).map(|(target, state)| RolloutProgress::from_state(target, state));
        let mut message = None;
        match (changes.get(id.as_str()), results.get(id.as_str())) {
            (Some(change), Some(result)) => {
                let (state, verb) = match (&result.result, change.kind) {
                    (Ending::Converged, ChangeKind::Remove) => (Lifecycle::Uninstalled, "converged"),
                    (Ending::Converged, ChangeKind::Create) => (Lifecycle::Active, "converged"),
                    (Ending::Converged, _) => (Lifecycle::Active, "converged"),
                    (Ending::RolledBack { .. }, _) => (Lifecycle::RolledBack, "rolled back"),
                    (Ending::Failed { .. }, _) => (Lifecycle::Failed, "failed"),
                    (Ending::Skipped { .. }, _) => (status.state, "skipped"),
                    (Ending::Paused { .. }, _) => (Lifecycle::Installing, "paused"),
                };
                let reason = match &result.result {
                    Ending::RolledBack { reason }
                    | Ending::Failed { reason }
                    | Ending::Skipped { reason }
                    | Ending::Paused { reason } => Some(reason.clone()),
                    Ending::Converged => None,
                };
                status.state = state;
                status.last_error = reason.clone();
                status.last_change = Some(LastChange {
                    kind: change.kind.verb().into(),
                    result: verb.into(),
                    reasons: change.reasons.clone(),
                    revision: record.revision.into(),
                    at: record.now.into(),
                });
                match &result.result {
                    Ending::Converged => {
                        status.revision = Some(record.revision.into());
                        status.failed = None;
                        status.applied = desired.map(crate::plan::spec::combined_hash);
                    }
                    Ending::RolledBack { reason } | Ending::Failed { reason } => {
                        status.failed = Some(FailedRollout {
                            revision: record.revision.into(),
                            version: status.desired_version.clone().unwrap_or_default(),
                            spec_hash: record.target_hashes.get(id).cloned().unwrap_or_default(),
                            reason: reason.clone(),
                            at: record.now.into(),
                        });
                    }
                    Ending::Skipped { .. } | Ending::Paused { .. } => {}
                }
                let detail = match (&result.result, reason) {
                    (Ending::Converged, _) => change.reasons.join("; "),
                    (_, Some(r)) => r,
                    _ => String::new(),
                };
                message = Some(format!(
                    "{id}: {} {} ({detail})",
                    state_word(status.state),
                    status.desired_version.clone().unwrap_or_default()
                ));
            }
            _ => {
                let held = record.plan.held.iter().any(|h| h.plugin == *id);
                if let (Some(plugin), false) = (desired, held) {
                    // Nothing to change: what runs is what Git says.
                    status.applied = Some(crate::plan::spec::combined_hash(plugin));
                }
                if let Some(plugin) = desired {
                    if plugin.manifest.suspended {
                        status.state = Lifecycle::Disabled;
                    } else if status.state == Lifecycle::Registered && !status.slots.is_empty() {
                        status.state = Lifecycle::Active;
                        status.revision.get_or_insert_with(|| record.revision.to_string());
                    }
                }
            }
        }
        if old != Some(&status) {
            let text = to_yaml(&status);
            let message = message.unwrap_or_else(|| format!("{id}: {}", state_word(status.state)));
            commits.push(StatusCommit { message, files: vec![(format!("status/{id}.yaml"), Some(text.into_bytes()))] });
            statuses.insert(id.clone(), status);
        }
    }
    // A first pass over a large fleet (or a mass change) is one commit, not thousands: each
    // commit rewrites the status tree, so thousands of them cost minutes.
    if commits.len() > BULK {
        let count = commits.len();
        let files = commits.iter().flat_map(|c| c.files.clone()).collect();
        let sample: Vec<&str> = commits.iter().take(3).map(|c| c.message.as_str()).collect();
        commits = vec![StatusCommit {
            message: format!("{count} plugins changed status: {}; …", sample.join("; ")),
            files,
        }];
    }
    let fleet = FleetStatus {
        fleet: record.fleet.config.fleet.clone(),
        revision: record.revision.into(),
        plugins: statuses.iter().map(|(k, v)| (k.clone(), v.state)).collect(),
        errors: record.errors.to_vec(),
        held: record.plan.held.iter().map(|h| format!("{}: {}", h.plugin, h.reason)).collect(),
        router: router_line(&record.observed.routers, &record.observed.gateways),
    };
    let active = fleet.plugins.values().filter(|s| **s == Lifecycle::Active).count();
    let mut message = format!(
        "fleet {}: {} at {} ({} of {} active)",
        fleet.fleet,
        if record.errors.is_empty() { "reconciled" } else { "INVALID revision" },
        short(record.revision),
        active,
        fleet.plugins.len()
    );
    if let Some(e) = record.errors.first() {
        message.push_str(&format!(": {e}"));
    }
    commits
        .push(StatusCommit { message, files: vec![("status/fleet.yaml".into(), Some(to_yaml(&fleet).into_bytes()))] });
    (statuses, commits)
}

/// The router replicas in one line for a person, `None` when the fleet has none.
fn router_line(
    replicas: &[crate::plan::observed::RouterReplica],
    gateways: &[crate::plan::observed::GatewayContainer],
) -> Option<String> {
    let first = replicas.first()?;
    let running = replicas.iter().filter(|r| r.running).count();
    let mut line = format!("{running} of {} replicas running, routing {}", replicas.len(), first.aliases.join(", "));
    if let Some(gateway) = gateways.first() {
        let state = if gateway.running { "publishes" } else { "NOT RUNNING, publishing" };
        line += &format!("; gateway {state} {}", gateway.published);
    }
    Some(line)
}

fn state_word(state: Lifecycle) -> String {
    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::router_line;
    use crate::plan::observed::{GatewayContainer, RouterReplica};

    #[test]
    fn the_router_in_one_line() {
        let replica = |running| RouterReplica {
            name: "r".into(),
            running,
            aliases: vec!["crm".into(), "web".into()],
            shares: Default::default(),
        };
        assert_eq!(router_line(&[], &[]), None);
        assert_eq!(
            router_line(&[replica(true), replica(false)], &[]).as_deref(),
            Some("1 of 2 replicas running, routing crm, web")
        );
        let gateway = GatewayContainer { name: "g".into(), running: true, published: "0.0.0.0:8088".into() };
        assert_eq!(
            router_line(&[replica(true)], &[gateway]).as_deref(),
            Some("1 of 1 replicas running, routing crm, web; gateway publishes 0.0.0.0:8088")
        );
    }
}
