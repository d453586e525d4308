//! Rollout strategies as pure state machines: (target, instances, state, now) → (actions,
//! new state, outcome). The executor applies the actions, observes again and asks for the
//! next step, so a rollout is a sequence of small, recomputable decisions.

pub mod ab_test;
pub mod blue_green;
pub mod canary;
pub mod direct;
pub mod evidence;
pub mod rolling;

pub use evidence::{AbResult, Control, Evidence, Variant, Verdict};

use crate::model::{Plugin, Strategy};
use crate::plan::{Instance, InstanceSpec, Slot, SlotTarget};
use crate::traffic::SlotShare;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the executor must do next.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Start `count` new instances of `spec` in `slot`, not yet serving unless `serve`:
    /// when nothing of the plugin serves, joining traffic at once costs no one anything and
    /// saves Docker a disconnect/reconnect per instance.
    Start { slot: Slot, spec: Box<InstanceSpec>, hash: String, count: u32, serve: bool },
    /// Give a ready instance the plugin's alias.
    Serve { instance: String },
    /// Take an instance out of traffic, stop and remove it.
    Retire { instance: String },
    /// Take an instance out of traffic but keep it running (instant switch back).
    Unserve { instance: String },
    /// Stop an instance but keep it (blue-green `keepPreviousEnvironment`).
    Park { instance: String },
    /// Behind the router: each slot's exact share of the plugin's traffic, whatever the
    /// instance counts. Held until the rollout ends.
    Split { shares: Vec<SlotShare> },
}

/// The router's split between the slot serving now and the new one (canary, variant B,
/// green).
pub(crate) fn split(main: Slot, side: Slot, side_percent: f64) -> Action {
    Action::Split {
        shares: vec![
            SlotShare { slot: main, percent: 100.0 - side_percent },
            SlotShare { slot: side, percent: side_percent },
        ],
    }
}

/// How one plugin's change ended: the one name for a pass's result per plugin (a strategy's
/// last [`Outcome`], or the executor's word when it did not run).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Ending {
    Converged,
    RolledBack {
        reason: String,
    },
    Failed {
        reason: String,
    },
    Skipped {
        reason: String,
    },
    /// A progressive rollout waits for a person.
    Paused {
        reason: String,
    },
}

impl Ending {
    /// The word for metrics labels and alerts: converged|rolled_back|failed|skipped|paused.
    pub fn label(&self) -> &'static str {
        match self {
            Ending::Converged => "converged",
            Ending::RolledBack { .. } => "rolled_back",
            Ending::Failed { .. } => "failed",
            Ending::Skipped { .. } => "skipped",
            Ending::Paused { .. } => "paused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// Not done; ask again after `recheck` (or sooner when something changes).
    Progress {
        recheck: Duration,
        note: String,
    },
    Converged,
    /// The new version failed and the previous one serves again.
    RolledBack {
        reason: String,
    },
    /// Neither the new nor the previous version could be brought up.
    Failed {
        reason: String,
    },
    /// Waiting for a person: `plugsync rollout promote|abort|resume`.
    Paused {
        reason: String,
    },
}

/// The previous version, remembered so a failed rollout can restore it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Previous {
    pub spec: InstanceSpec,
    pub hash: String,
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RolloutState {
    pub started_ms: Option<u64>,
    /// When the instances now starting were started (health-check timeout runs from here).
    pub batch_started_ms: Option<u64>,
    /// Earliest time the next batch may start (`waitBetweenBatches`).
    pub next_batch_ms: Option<u64>,
    pub previous: Option<Previous>,
    /// Set once the rollout failed and is being undone.
    pub rollback_reason: Option<String>,
    /// When the rollback began (the previous version's readiness deadline runs from here).
    pub rollback_started_ms: Option<u64>,
    /// Progressive strategies: index of the current step.
    pub step: usize,
    /// When the current step's layout was reached (its evaluation runs from here).
    pub step_started_ms: Option<u64>,
    /// Analysis window: the executor restarts metric collection whenever this changes.
    pub window: u32,
    /// Slots whose metrics the current window collects.
    pub watch: Vec<Slot>,
    /// Smoke tests wanted on the instances of this slot.
    pub smoke: Option<Slot>,
    /// Why the rollout waits for a person.
    pub paused: Option<String>,
    /// A person asked for full promotion.
    pub promoted: bool,
    /// The outcome a finishing rollout reports (e.g. "A won: …").
    pub note: Option<String>,
    /// When a progressive strategy began converging like a creation (its readiness deadline).
    pub settle_started_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub actions: Vec<Action>,
    pub state: RolloutState,
    pub outcome: Outcome,
}

/// Everything a strategy decides from. `instances` are this slot's (Direct, Rolling) or the
/// whole plugin's (progressive strategies), with readiness probed.
pub struct StepInput<'a> {
    pub target: &'a SlotTarget,
    pub instances: &'a [Instance],
    pub state: &'a RolloutState,
    pub now_ms: u64,
    /// Analysis and smoke-test results for `state.window`.
    pub evidence: &'a Evidence,
    /// A person's command received since the last step.
    pub control: Option<Control>,
}

/// One strategy: one file implementing this trait.
pub trait SlotStrategy {
    fn step(&self, input: &StepInput) -> Step;
}

/// The executor for a plugin's strategy. Strategies not built yet roll like Rolling with
/// batches of one, the safest behaviour available, and say so in their notes.
pub fn for_plugin(plugin: &Plugin) -> Box<dyn SlotStrategy + Send + Sync> {
    let rolling = plugin.policy.rolling_config.clone().unwrap_or_default();
    let timeout = rolling.health_check_timeout.0;
    let policy = &plugin.policy;
    match plugin.strategy {
        // A BotMatrix fixed canary already says where traffic goes: roll each slot.
        _ if plugin.canary.is_some() => Box::new(rolling::Rolling { config: rolling }),
        Strategy::Direct => Box::new(direct::Direct { health_check_timeout: timeout }),
        Strategy::Rolling => Box::new(rolling::Rolling { config: rolling }),
        Strategy::Canary => Box::new(canary::Canary {
            config: policy.canary_config.clone().unwrap_or_default(),
            health_check_timeout: timeout,
        }),
        Strategy::BlueGreen => Box::new(blue_green::BlueGreen {
            config: policy.blue_green_config.clone().unwrap_or_default(),
            health_check_timeout: timeout,
        }),
        Strategy::ABTesting => Box::new(ab_test::AbTest {
            config: policy.ab_config.clone().unwrap_or_default(),
            health_check_timeout: timeout,
        }),
    }
}

/// Whether the strategy sees the whole plugin (all slots) rather than one slot.
pub fn is_progressive(plugin: &Plugin) -> bool {
    plugin.canary.is_none() && matches!(plugin.strategy, Strategy::Canary | Strategy::BlueGreen | Strategy::ABTesting)
}

/// How often the executor looks again while a strategy waits.
pub const POLL: Duration = Duration::from_millis(200);

pub(crate) fn progress(note: impl Into<String>) -> Outcome {
    Outcome::Progress { recheck: POLL, note: note.into() }
}

pub(crate) fn is_ready(i: &Instance) -> bool {
    i.is_running() && i.ready == Some(true)
}

/// Remembers the version being replaced: the most common stale spec among the instances.
pub(crate) fn remember_previous(input: &StepInput, state: &mut RolloutState) {
    if state.previous.is_some() {
        return;
    }
    let mut counts: Vec<(&String, u32, Option<&InstanceSpec>)> = Vec::new();
    for i in input.instances.iter().filter(|i| i.spec_hash != input.target.hash && i.is_running()) {
        match counts.iter_mut().find(|(h, _, _)| **h == i.spec_hash) {
            Some(entry) => entry.1 += 1,
            None => counts.push((&i.spec_hash, 1, i.spec.as_ref())),
        }
    }
    if let Some((hash, replicas, Some(spec))) = counts.into_iter().max_by_key(|(_, n, _)| *n) {
        state.previous = Some(Previous { spec: spec.clone(), hash: hash.clone(), replicas });
    }
}

/// Applies a person's command to a progressive rollout; an abort becomes a rollback.
pub(crate) fn apply_control(state: &mut RolloutState, control: Option<Control>) {
    match control {
        Some(Control::Abort) => {
            state.rollback_reason = Some("aborted by a person".into());
            state.paused = None;
        }
        Some(Control::Pause) => state.paused = Some("paused by a person".into()),
        Some(Control::Resume) => {
            state.paused = None;
            state.step_started_ms = None;
        }
        Some(Control::Promote) => {
            state.promoted = true;
            state.paused = None;
        }
        None => {}
    }
}

/// Retire actions for instances in side slots (canary, a, b) other than `trial`'s
/// instances of the target spec: leftovers of an earlier rollout.
pub(crate) fn retire_side_slots(input: &StepInput, trial: Option<Slot>) -> Vec<Action> {
    input
        .instances
        .iter()
        .filter(|i| !canary::is_main(i.slot) && !(Some(i.slot) == trial && i.spec_hash == input.target.hash))
        .map(|i| Action::Retire { instance: i.id.clone() })
        .collect()
}

/// Nothing older runs: converge the main instances like a creation (and drop `trial`).
/// Instances that are not ready within `timeout` of the first pending step fail the
/// rollout (what runs stays; a creation that never comes up must not hold the pass forever).
pub(crate) fn settle(
    input: &StepInput,
    main: &[Instance],
    trial: &[&Instance],
    mut actions: Vec<Action>,
    mut state: RolloutState,
    timeout: Duration,
) -> Step {
    let t = input.target;
    let sub = canary::restricted(input, main);
    let pending = converge_same_spec(&sub, &t.spec, &t.hash, t.replicas, &mut actions);
    actions.extend(trial.iter().map(|i| Action::Retire { instance: i.id.clone() }));
    let Some(outcome) = pending else {
        return Step { outcome: Outcome::Converged, actions, state };
    };
    let since = *state.settle_started_ms.get_or_insert(input.now_ms);
    if input.now_ms.saturating_sub(since) > timeout.as_millis() as u64 {
        let ready = main.iter().filter(|i| i.spec_hash == t.hash && is_ready(i)).count();
        let reason = format!("{ready} of {} instance(s) of {} ready after {timeout:?}", t.replicas, t.spec.version);
        return Step { outcome: Outcome::Failed { reason }, actions: Vec::new(), state };
    }
    Step { outcome, actions, state }
}

/// Brings a slot to `replicas` ready, serving instances of `hash` without touching the rest:
/// creation, scaling and repair share this. Returns `None` when it has nothing to do.
pub(crate) fn converge_same_spec(
    input: &StepInput,
    spec: &InstanceSpec,
    hash: &str,
    replicas: u32,
    all_actions: &mut Vec<Action>,
) -> Option<Outcome> {
    let mut actions = Vec::new();
    let outcome = converge_into(input, spec, hash, replicas, &mut actions);
    all_actions.extend(actions);
    outcome
}

fn converge_into(
    input: &StepInput,
    spec: &InstanceSpec,
    hash: &str,
    replicas: u32,
    actions: &mut Vec<Action>,
) -> Option<Outcome> {
    let fresh: Vec<&Instance> = input.instances.iter().filter(|i| i.spec_hash == hash).collect();
    // An instance the engine reports changed behind plugsync's back (limits, image, env) is
    // replaced like a dead one.
    let (live, dead): (Vec<&Instance>, Vec<&Instance>) =
        fresh.iter().partition(|i| i.is_running() && i.departures().is_empty());
    actions.extend(dead.iter().map(|i| Action::Retire { instance: i.id.clone() }));
    let ready: Vec<&Instance> = live.iter().copied().filter(|i| is_ready(i)).collect();
    let live_count = live.len() as u32;
    if live_count > replicas {
        // Surplus: unready first, then ready but not serving, serving ones last, so traffic
        // never shrinks while something else joins it.
        let mut surplus: Vec<&Instance> = live.clone();
        surplus.sort_by_key(|i| i.retire_order());
        let n = (live_count - replicas) as usize;
        actions.extend(surplus.iter().take(n).map(|i| Action::Retire { instance: i.id.clone() }));
        return Some(progress(format!("scaling down by {n}")));
    }
    actions.extend(ready.iter().filter(|i| !i.serving).map(|i| Action::Serve { instance: i.id.clone() }));
    if live_count < replicas {
        actions.push(Action::Start {
            slot: input.target.slot,
            spec: Box::new(spec.clone()),
            hash: hash.to_string(),
            count: replicas - live_count,
            serve: input.instances.iter().all(|i| !i.serving),
        });
        return Some(progress(format!("starting {} instance(s)", replicas - live_count)));
    }
    if (ready.len() as u32) < replicas {
        return Some(progress(format!("{} of {replicas} ready", ready.len())));
    }
    if !actions.is_empty() {
        return Some(progress("serving ready instances"));
    }
    None
}

/// Undoes a failed rollout: brings the previous spec back to its replica count (start-first),
/// then retires everything else in the slot.
pub(crate) fn roll_back(input: &StepInput, mut state: RolloutState, timeout: Duration) -> Step {
    let reason = state.rollback_reason.clone().unwrap_or_default();
    // The deadline for the previous version runs from the moment the rollback began.
    let began = *state.rollback_started_ms.get_or_insert(input.now_ms);
    let mut actions = Vec::new();
    let Some(prev) = state.previous.clone() else {
        // Nothing to restore (the plugin was new): remove what failed.
        actions.extend(input.instances.iter().map(|i| Action::Retire { instance: i.id.clone() }));
        return Step { actions, state, outcome: Outcome::Failed { reason } };
    };
    let failed: Vec<&Instance> = input.instances.iter().filter(|i| i.spec_hash != prev.hash).collect();
    let prev_serving = input.instances.iter().filter(|i| i.spec_hash == prev.hash && is_ready(i) && i.serving).count();
    if prev_serving as u32 >= prev.replicas && !failed.is_empty() {
        // The previous version carries the traffic on its own: the failed version leaves
        // first, before any surplus of the previous one, so its share never grows.
        actions.extend(failed.iter().map(|i| Action::Retire { instance: i.id.clone() }));
        let prev_live = input.instances.iter().filter(|i| i.spec_hash == prev.hash && i.is_running()).count();
        let outcome = if prev_live as u32 > prev.replicas {
            // Surplus (canary surge) goes on the next step, after the failed version left.
            progress(format!("rolling back to {}: retiring {}", prev.spec.version, input.target.spec.version))
        } else {
            Outcome::RolledBack { reason }
        };
        return Step { actions, state, outcome };
    }
    // Instances of the failed version that never became ready serve nobody: drop them now.
    actions.extend(
        failed.iter().filter(|i| !(is_ready(i) && i.serving)).map(|i| Action::Retire { instance: i.id.clone() }),
    );
    let pending = converge_same_spec(input, &prev.spec, &prev.hash, prev.replicas, &mut actions);
    let only_trimming = failed.is_empty() && actions.iter().all(|a| matches!(a, Action::Retire { .. }));
    match pending {
        // What is left is a surplus of the previous version: done once it goes.
        Some(_) if only_trimming && prev_serving as u32 >= prev.replicas => {
            Step { actions, state, outcome: Outcome::RolledBack { reason } }
        }
        Some(_) => {
            let prev_ready = input.instances.iter().filter(|i| i.spec_hash == prev.hash && is_ready(i)).count();
            if prev_ready < prev.replicas as usize && input.now_ms.saturating_sub(began) > timeout.as_millis() as u64 {
                let outcome = Outcome::Failed {
                    reason: format!(
                        "{reason}; the previous version {} did not become ready again either",
                        prev.spec.version
                    ),
                };
                return Step { actions, state, outcome };
            }
            Step { actions, state, outcome: progress(format!("rolling back to {}", prev.spec.version)) }
        }
        None => {
            actions.extend(failed.iter().map(|i| Action::Retire { instance: i.id.clone() }));
            let mut seen = std::collections::BTreeSet::new();
            actions.retain(|a| !matches!(a, Action::Retire { instance } if !seen.insert(instance.clone())));
            Step { actions, state, outcome: Outcome::RolledBack { reason } }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_progressive;
