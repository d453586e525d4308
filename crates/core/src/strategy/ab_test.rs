//! A/B testing: variant A (the running version) and B (the manifest's) serve side by side,
//! weighted by instance count per `trafficSplit`; after `testDuration` the decision metrics
//! pick a winner. B promoted (`autoPromote`, or by a person); A winning keeps A, and the
//! revision is recorded as not to be retried.

use super::canary::{is_main, promote};
use super::{
    apply_control, is_ready, progress, remember_previous, retire_side_slots, settle, Action, Control, Outcome,
    SlotStrategy, Step, StepInput, Variant,
};
use crate::model::policy::AbConfig;
use crate::plan::{Instance, Slot};
use std::time::Duration;

pub struct AbTest {
    pub config: AbConfig,
    pub health_check_timeout: Duration,
}

impl AbTest {
    /// A stays: B goes, and so does any new-spec main instance of an interrupted promotion.
    fn keep_a(
        &self,
        input: &StepInput,
        b: &[&Instance],
        mut actions: Vec<Action>,
        mut state: super::RolloutState,
        reason: String,
    ) -> Step {
        let promoted = input.instances.iter().filter(|i| is_main(i.slot) && i.spec_hash == input.target.hash);
        actions.extend(b.iter().copied().chain(promoted).map(|i| Action::Retire { instance: i.id.clone() }));
        state.rollback_reason = Some(reason.clone());
        Step { actions, state, outcome: Outcome::RolledBack { reason } }
    }
}

impl SlotStrategy for AbTest {
    // Long: the A/B test's phases in order (start B, serve the split, decide, promote or keep A).
    fn step(&self, input: &StepInput) -> Step {
        let t = input.target;
        let mut state = input.state.clone();
        let main: Vec<Instance> = input.instances.iter().filter(|i| is_main(i.slot)).cloned().collect();
        let a: Vec<&Instance> = main.iter().filter(|i| i.spec_hash != t.hash && i.is_running()).collect();
        let b: Vec<&Instance> = input.instances.iter().filter(|i| i.slot == Slot::B && i.spec_hash == t.hash).collect();
        let mut actions = retire_side_slots(input, Some(Slot::B));
        if a.is_empty() {
            return settle(input, &main, &b, actions, state, self.health_check_timeout);
        }
        remember_previous(&super::canary::restricted(input, &main), &mut state);
        apply_control(&mut state, input.control);
        if input.control == Some(Control::Promote) {
            state.note.get_or_insert_with(|| "B promoted by a person".into());
        }
        if let Some(reason) = state.rollback_reason.clone() {
            return self.keep_a(input, &b, actions, state, reason);
        }
        if state.promoted {
            let old: Vec<&Instance> = main.iter().filter(|i| i.spec_hash != t.hash).collect();
            return promote(input, state, &main, &old, &b, actions, self.health_check_timeout);
        }
        // Behind the router the split is exact: B runs as many instances as A.
        let routed = t.spec.routed;
        let wanted = if routed { a.len() as u32 } else { self.config.traffic_split.b_instances(a.len() as u32) };
        let split = &self.config.traffic_split;
        if routed {
            actions.push(super::split(
                Slot::Stable,
                Slot::B,
                split.b * 100.0 / (split.a + split.b).max(f64::MIN_POSITIVE),
            ));
        }
        let live: Vec<&Instance> = b.iter().copied().filter(|i| i.is_running()).collect();
        actions.extend(b.iter().filter(|i| !i.is_running()).map(|i| Action::Retire { instance: i.id.clone() }));
        if (live.len() as u32) < wanted {
            actions.push(Action::Start {
                slot: Slot::B,
                spec: Box::new(t.spec.clone()),
                hash: t.hash.clone(),
                count: wanted - live.len() as u32,
                serve: false,
            });
            state.batch_started_ms = Some(input.now_ms);
            return Step {
                actions,
                state,
                outcome: progress(format!("starting variant B ({}): {wanted} instance(s)", t.spec.version)),
            };
        }
        actions.extend(
            live.iter().filter(|i| is_ready(i) && !i.serving).map(|i| Action::Serve { instance: i.id.clone() }),
        );
        if live.iter().all(|i| is_ready(i)) && live.iter().any(|i| !i.serving) {
            return Step { actions, state, outcome: progress("variant B joining traffic") };
        }
        if live.iter().any(|i| !is_ready(i)) {
            let since = *state.batch_started_ms.get_or_insert(input.now_ms);
            if input.now_ms.saturating_sub(since) > self.health_check_timeout.as_millis() as u64 {
                let reason = format!("variant B {} not ready after {:?}", t.spec.version, self.health_check_timeout);
                return self.keep_a(input, &b, actions, state, reason);
            }
            return Step { actions, state, outcome: progress("variant B joining traffic") };
        }
        if let Some(reason) = state.paused.clone() {
            return Step { actions, state, outcome: Outcome::Paused { reason } };
        }
        let achieved = match routed {
            true => split.b * 100.0 / (split.a + split.b).max(f64::MIN_POSITIVE),
            false => f64::from(wanted) * 100.0 / f64::from(wanted + a.len() as u32),
        };
        let started = match state.step_started_ms {
            Some(s) => s,
            None => {
                state.step_started_ms = Some(input.now_ms);
                state.window += 1;
                state.watch = vec![a[0].slot, Slot::B];
                input.now_ms
            }
        };
        let duration = self.config.test_duration.map(|d| d.0).unwrap_or(Duration::from_secs(60)).as_millis() as u64;
        let elapsed = input.now_ms.saturating_sub(started);
        let testing =
            progress(format!("A/B test: B takes {achieved:.0} % ({wanted} of {} instances)", wanted + a.len() as u32));
        if elapsed < duration {
            return Step { actions, state, outcome: testing };
        }
        let Some(result) = input.evidence.ab.clone().filter(|_| input.evidence.window == state.window) else {
            return Step { actions, state, outcome: testing };
        };
        if result.inconclusive {
            if elapsed < 3 * duration {
                return Step { actions, state, outcome: testing };
            }
            return self.keep_a(input, &b, actions, state, format!("A/B inconclusive, A stays: {}", result.summary));
        }
        match result.winner {
            Some(Variant::B) if self.config.auto_promote => {
                state.promoted = true;
                state.note = Some(format!("B won: {}", result.summary));
                Step { actions, state, outcome: progress(format!("B won ({}); promoting", result.summary)) }
            }
            Some(Variant::B) => {
                let reason = format!("B won ({}); promote or abort", result.summary);
                state.paused = Some(reason.clone());
                Step { actions, state, outcome: Outcome::Paused { reason } }
            }
            Some(Variant::A) => self.keep_a(input, &b, actions, state, format!("A won: {}", result.summary)),
            None => self.keep_a(input, &b, actions, state, format!("no clear winner, A stays: {}", result.summary)),
        }
    }
}
