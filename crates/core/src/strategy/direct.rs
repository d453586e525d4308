//! Direct: replace every instance at once (stop-first, like Kubernetes' Recreate), wait for
//! readiness, and restore the previous version when the new one never becomes ready.

use super::{converge_same_spec, remember_previous, roll_back, Action, Outcome, SlotStrategy, Step, StepInput};
use std::time::Duration;

pub struct Direct {
    pub health_check_timeout: Duration,
}

impl SlotStrategy for Direct {
    fn step(&self, input: &StepInput) -> Step {
        let mut state = input.state.clone();
        let t = input.target;
        if state.rollback_reason.is_some() {
            return roll_back(input, state, self.health_check_timeout);
        }
        remember_previous(input, &mut state);
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
