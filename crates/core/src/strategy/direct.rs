//! Direct: replace every instance at once (stop-first, like Kubernetes' Recreate), wait for
//! readiness, and restore the previous version when the new one never becomes ready.
//! Behind the router it is start-first instead: the new instances start beside the old ones,
//! and once all are ready the router moves to them in one step, so no request meets a gap.

use super::{converge_same_spec, remember_previous, roll_back, Action, Outcome, SlotStrategy, Step, StepInput};
use std::time::Duration;

pub struct Direct {
    pub health_check_timeout: Duration,
}

impl Direct {
    /// The whole switch while old instances still run: start the new ones, wait until all
    /// are ready, then serve them and retire the old ones together. `None` once nothing old
    /// runs (the usual convergence takes over).
    fn start_first(&self, input: &StepInput, state: &mut super::RolloutState) -> Option<Step> {
        let t = input.target;
        let old: Vec<&crate::plan::Instance> =
            input.instances.iter().filter(|i| i.spec_hash != t.hash && i.is_running()).collect();
        if old.is_empty() {
            return None;
        }
        let new: Vec<&crate::plan::Instance> =
            input.instances.iter().filter(|i| i.spec_hash == t.hash && i.is_running()).collect();
        let mut actions: Vec<Action> = input
            .instances
            .iter()
            .filter(|i| !i.is_running())
            .map(|i| Action::Retire { instance: i.id.clone() })
            .collect();
        if (new.len() as u32) < t.replicas {
            actions.push(Action::Start {
                slot: t.slot,
                spec: Box::new(t.spec.clone()),
                hash: t.hash.clone(),
                count: t.replicas - new.len() as u32,
                serve: false,
            });
            state.batch_started_ms = Some(input.now_ms);
            return Some(Step {
                actions,
                state: state.clone(),
                outcome: super::progress("starting the new version beside the old"),
            });
        }
        if new.iter().any(|i| !super::is_ready(i)) {
            let since = *state.batch_started_ms.get_or_insert(input.now_ms);
            if input.now_ms.saturating_sub(since) > self.health_check_timeout.as_millis() as u64 {
                state.rollback_reason =
                    Some(format!("version {} not ready after {:?}", t.spec.version, self.health_check_timeout));
                return Some(roll_back(input, state.clone(), self.health_check_timeout));
            }
            return Some(Step {
                actions,
                state: state.clone(),
                outcome: super::progress("waiting for the new version"),
            });
        }
        actions.extend(new.iter().filter(|i| !i.serving).map(|i| Action::Serve { instance: i.id.clone() }));
        actions.extend(old.iter().map(|i| Action::Retire { instance: i.id.clone() }));
        Some(Step { actions, state: state.clone(), outcome: super::progress("switching to the new version") })
    }
}

impl SlotStrategy for Direct {
    fn step(&self, input: &StepInput) -> Step {
        let mut state = input.state.clone();
        let t = input.target;
        if state.rollback_reason.is_some() {
            return roll_back(input, state, self.health_check_timeout);
        }
        remember_previous(input, &mut state);
        if t.spec.routed {
            if let Some(step) = self.start_first(input, &mut state) {
                return step;
            }
        }
        let mut actions: Vec<Action> = input
            .instances
            .iter()
            .filter(|i| i.spec_hash != t.hash)
            .map(|i| Action::Retire { instance: i.id.clone() })
            .collect();
        let before = actions.len();
        let pending = converge_same_spec(input, &t.spec, &t.hash, t.replicas, &mut actions);
        if actions[before..].iter().any(|a| matches!(a, Action::Start { .. })) || state.batch_started_ms.is_none() {
            state.batch_started_ms = Some(input.now_ms);
        }
        match pending {
            None => Step { actions, state, outcome: Outcome::Converged },
            Some(outcome) => {
                let waited = input.now_ms.saturating_sub(state.batch_started_ms.unwrap_or(input.now_ms));
                if waited > self.health_check_timeout.as_millis() as u64 {
                    state.rollback_reason =
                        Some(format!("version {} not ready after {:?}", t.spec.version, self.health_check_timeout));
                    return roll_back(input, state, self.health_check_timeout);
                }
                Step { actions, state, outcome }
            }
        }
    }
}
