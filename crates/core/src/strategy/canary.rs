//! Canary on plain Docker: new instances join the plugin's alias beside the stable ones, so
//! the canary's share of traffic is its share of instances (as Argo Rollouts does without a
//! mesh). Stable instances of the old version are added (up to `maxSurge`) when a step needs a
//! finer weight. Each step holds for `evaluationPeriod` while analysis runs; a failed verdict
//! rolls back (`autoRollback`) or pauses for a person. After the last step the new version
//! replaces the stable instances start-first.

use super::{
    apply_control, is_ready, progress, remember_previous, retire_side_slots, roll_back, settle, Action, Outcome,
    SlotStrategy, Step, StepInput, Verdict,
};
use crate::model::policy::{canary_layout as layout, CanaryConfig};
use crate::plan::{Instance, Slot};
use std::time::Duration;

pub struct Canary {
    pub config: CanaryConfig,
    pub health_check_timeout: Duration,
}

pub(crate) fn is_main(slot: Slot) -> bool {
    matches!(slot, Slot::Stable | Slot::Blue | Slot::Green)
}

/// A copy of `input` restricted to some instances (for the shared convergence helpers).
pub(crate) fn restricted<'a>(input: &StepInput<'a>, instances: &'a [Instance]) -> StepInput<'a> {
    StepInput {
        target: input.target,
        instances,
        state: input.state,
        now_ms: input.now_ms,
        evidence: input.evidence,
        control: input.control,
    }
}

impl Canary {
    /// Stable surge, canary instances and the weight reached at a step. Behind the router the
    /// weight is exact and the canary keeps one instance count for the whole rollout (enough
    /// for its largest step's share of the load): a count that changed between steps would
    /// move sticky sessions back to stable.
    fn layout(&self, t: &crate::plan::SlotTarget, steps: &[f64], weight: f64) -> (u32, u32, f64) {
        if !t.spec.routed {
            return layout(t.replicas, weight, self.config.max_surge.unwrap_or(0));
        }
        let largest = steps.iter().copied().filter(|w| *w < 100.0).fold(0.0, f64::max);
        let canaries = (f64::from(t.replicas) * largest / 100.0).ceil() as u32;
        (0, canaries.clamp(1, t.replicas.max(1)), weight)
    }

    fn period_ms(&self) -> u64 {
        self.config.evaluation_ms()
    }

    fn fail(&self, input: &StepInput, mut state: super::RolloutState, reason: String) -> Step {
        if self.config.auto_rollback {
            state.rollback_reason = Some(reason);
            return roll_back(input, state, self.health_check_timeout);
        }
        state.paused = Some(reason.clone());
        Step { actions: Vec::new(), state, outcome: Outcome::Paused { reason } }
    }
}

impl SlotStrategy for Canary {
    // Long: one decision per rollout phase in order (settle, layout, evaluation, promotion); split, the order would hide.
    fn step(&self, input: &StepInput) -> Step {
        let t = input.target;
        let mut state = input.state.clone();
        let main: Vec<Instance> = input.instances.iter().filter(|i| is_main(i.slot)).cloned().collect();
        let old: Vec<&Instance> = main.iter().filter(|i| i.spec_hash != t.hash).collect();
        let canary: Vec<&Instance> =
            input.instances.iter().filter(|i| i.slot == Slot::Canary && i.spec_hash == t.hash).collect();
        let mut actions = retire_side_slots(input, Some(Slot::Canary));
        if old.is_empty() {
            // Nothing to protect: creation, scaling, repair, or the end of a promotion.
            return settle(input, &main, &canary, actions, state, self.health_check_timeout);
        }
        remember_previous(&restricted(input, &main), &mut state);
        if let Some(prev) = &mut state.previous {
            prev.replicas = t.replicas; // surge instances are temporary
        }
        apply_control(&mut state, input.control);
        if state.rollback_reason.is_some() {
            return roll_back(input, state, self.health_check_timeout);
        }
        let steps = self.config.step_percentages();
        // A restarted daemon finds where the rollout was from what runs: new-spec stable
        // instances mean a promotion was under way; otherwise the first step whose canary
        // count covers the running canaries is evaluated again (never skipped).
        if state.started_ms.is_none() {
            state.started_ms = Some(input.now_ms);
            if main.iter().any(|i| i.spec_hash == t.hash && i.is_running()) {
                state.promoted = true;
            } else if state.step == 0 && !canary.is_empty() {
                let running = canary.iter().filter(|i| i.is_running()).count() as u32;
                state.step =
                    steps.iter().position(|w| *w >= 100.0 || self.layout(t, &steps, *w).1 >= running).unwrap_or(0);
            }
        }
        let promoting = state.promoted || steps.get(state.step).is_none_or(|w| *w >= 100.0);
        if promoting {
            return promote(input, state, &main, &old, &canary, actions, self.health_check_timeout);
        }
        let weight = steps[state.step];
        let (surge, wanted_canary, achieved) = self.layout(t, &steps, weight);
        if t.spec.routed {
            actions.push(super::split(Slot::Stable, Slot::Canary, weight));
        }
        let Some(prev) = state.previous.clone() else {
            return Step {
                actions,
                state,
                outcome: Outcome::Failed { reason: "the running version has no recorded spec".into() },
            };
        };
        // Lay out this step: canary instances and stable surge, each serving once ready.
        let mut starting = false;
        let layout_of = |instances: &[&Instance],
                         wanted: u32,
                         actions: &mut Vec<Action>,
                         slot: Slot,
                         spec: &crate::plan::InstanceSpec,
                         hash: &str|
         -> bool {
            let live: Vec<&&Instance> = instances.iter().filter(|i| i.is_running()).collect();
            actions.extend(
                instances.iter().filter(|i| !i.is_running()).map(|i| Action::Retire { instance: i.id.clone() }),
            );
            if (live.len() as u32) < wanted {
                actions.push(Action::Start {
                    slot,
                    spec: Box::new(spec.clone()),
                    hash: hash.to_string(),
                    count: wanted - live.len() as u32,
                    serve: false,
                });
                return true;
            }
            let mut extra: Vec<&&Instance> = live.clone();
            extra.sort_by_key(|i| (is_ready(i), i.serving));
            actions.extend(
                extra.iter().take(live.len() - wanted as usize).map(|i| Action::Retire { instance: i.id.clone() }),
            );
            false
        };
        starting |= layout_of(&canary, wanted_canary, &mut actions, Slot::Canary, &t.spec, &t.hash);
        starting |= layout_of(&old, t.replicas + surge, &mut actions, Slot::Stable, &prev.spec, &prev.hash);
        let all: Vec<&Instance> = canary.iter().chain(old.iter()).copied().filter(|i| i.is_running()).collect();
        // Stable (and surge) instances join traffic first; the canary only once they all
        // serve, so its share never exceeds the step's weight.
        let stable_serving = old.iter().filter(|i| is_ready(i) && i.serving).count() as u32;
        actions.extend(
            old.iter()
                .filter(|i| i.is_running() && is_ready(i) && !i.serving)
                .map(|i| Action::Serve { instance: i.id.clone() }),
        );
        if stable_serving >= t.replicas + surge {
            actions.extend(
                canary
                    .iter()
                    .filter(|i| i.is_running() && is_ready(i) && !i.serving)
                    .map(|i| Action::Serve { instance: i.id.clone() }),
            );
        }
        if starting {
            state.batch_started_ms = Some(input.now_ms);
        }
        // A canary that never gets ready fails the step; a stable instance that is not ready
        // is waited for (so the canary's share stays within the step) but is no verdict on
        // the new version.
        let canary_not_ready = canary.iter().filter(|i| i.is_running() && !is_ready(i)).count();
        let stable_not_ready = old.iter().filter(|i| i.is_running() && !is_ready(i)).count();
        let since = *state.batch_started_ms.get_or_insert(input.now_ms);
        let overdue = input.now_ms.saturating_sub(since) > self.health_check_timeout.as_millis() as u64;
        let not_ready = canary_not_ready + if overdue { 0 } else { stable_not_ready };
        if starting || not_ready > 0 {
            if overdue && canary_not_ready > 0 {
                let reason = format!("canary {} not ready after {:?}", t.spec.version, self.health_check_timeout);
                state.rollback_reason = Some(reason);
                return roll_back(input, state, self.health_check_timeout);
            }
            let note = format!("canary step {} of {}: {weight} % requested, {achieved:.0} % achieved ({wanted_canary} of {} instances), starting", state.step + 1, steps.len(), t.replicas + surge + wanted_canary);
            return Step { actions, state, outcome: progress(note) };
        }
        if all.iter().any(|i| is_ready(i) && !i.serving) {
            return Step { actions, state, outcome: progress("canary step: ready instances joining traffic") };
        }
        if let Some(reason) = &state.paused {
            let reason = reason.clone();
            return Step { actions, state, outcome: Outcome::Paused { reason } };
        }
        let started = match state.step_started_ms {
            Some(s) => s,
            None => {
                state.step_started_ms = Some(input.now_ms);
                state.window += 1;
                state.watch = vec![Slot::Canary];
                input.now_ms
            }
        };
        let elapsed = input.now_ms.saturating_sub(started);
        let note = |what: &str| {
            format!(
                "canary {weight} % (achieved {achieved:.0} %, {wanted_canary} of {} instances): {what}",
                t.replicas + surge + wanted_canary
            )
        };
        match input.evidence.verdict(state.window, Slot::Canary) {
            Some(Verdict::Fail { reason }) => {
                let reason = format!("canary at {achieved:.0} %: {reason}");
                self.fail(input, state, reason)
            }
            Some(Verdict::Pass { summary }) if elapsed >= self.period_ms() => {
                state.note = Some(format!("{weight} % passed ({summary})"));
                state.step += 1;
                state.step_started_ms = None;
                Step { actions, state, outcome: progress(note("passed, next step")) }
            }
            Some(Verdict::Inconclusive { reason }) if elapsed >= 3 * self.period_ms() => {
                let reason = format!("analysis inconclusive for 3 evaluation periods: {reason}");
                self.fail(input, state, reason)
            }
            _ => Step { actions, state, outcome: progress(note("evaluating")) },
        }
    }
}

/// The new version replaces the main instances start-first, then the previous version and
/// the trial instances (canary, B) go.
pub(crate) fn promote(
    input: &StepInput,
    mut state: super::RolloutState,
    main: &[Instance],
    old: &[&Instance],
    trial: &[&Instance],
    mut actions: Vec<Action>,
    timeout: Duration,
) -> Step {
    let t = input.target;
    let fresh: Vec<&Instance> = main.iter().filter(|i| i.spec_hash == t.hash && i.is_running()).collect();
    actions.extend(
        main.iter()
            .filter(|i| i.spec_hash == t.hash && !i.is_running())
            .map(|i| Action::Retire { instance: i.id.clone() }),
    );
    if (fresh.len() as u32) < t.replicas {
        let missing = t.replicas - fresh.len() as u32;
        actions.push(Action::Start {
            slot: Slot::Stable,
            spec: Box::new(t.spec.clone()),
            hash: t.hash.clone(),
            count: missing,
            serve: false,
        });
        state.batch_started_ms = Some(input.now_ms);
        return Step {
            actions,
            state,
            outcome: progress(format!("promoting {}: starting {missing} stable instance(s)", t.spec.version)),
        };
    }
    actions
        .extend(fresh.iter().filter(|i| is_ready(i) && !i.serving).map(|i| Action::Serve { instance: i.id.clone() }));
    let serving = fresh.iter().filter(|i| is_ready(i) && i.serving).count() as u32;
    if serving < t.replicas {
        let since = *state.batch_started_ms.get_or_insert(input.now_ms);
        if input.now_ms.saturating_sub(since) > timeout.as_millis() as u64 {
            state.rollback_reason = Some(format!("promoted {} not ready after {timeout:?}", t.spec.version));
            return roll_back(input, state, timeout);
        }
        return Step {
            actions,
            state,
            outcome: progress(format!("promoting {}: {serving} of {} ready", t.spec.version, t.replicas)),
        };
    }
    actions.extend(old.iter().chain(trial.iter()).map(|i| Action::Retire { instance: i.id.clone() }));
    Step { actions, state, outcome: progress(format!("promoted {}: retiring the previous version", t.spec.version)) }
}
