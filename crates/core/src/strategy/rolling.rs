//! Rolling: replace instances batch by batch, start-first: a batch of new instances starts,
//! becomes ready and serves before as many old ones retire, so the number of ready serving
//! instances never drops. A batch that is not ready within `healthCheckTimeout` rolls every
//! updated batch back.

use super::{
    converge_same_spec, is_ready, progress, remember_previous, roll_back, Action, Outcome, SlotStrategy, Step,
    StepInput,
};
use crate::model::policy::RollingConfig;
use crate::plan::Instance;

pub struct Rolling {
    pub config: RollingConfig,
}

impl SlotStrategy for Rolling {
    // Long: a batch's life in order (repair, start, wait ready, serve, retire, next batch).
    fn step(&self, input: &StepInput) -> Step {
        let timeout = self.config.health_check_timeout.0;
        let mut state = input.state.clone();
        let t = input.target;
        if state.rollback_reason.is_some() {
            return roll_back(input, state, timeout);
        }
        remember_previous(input, &mut state);
        let stale: Vec<&Instance> = input.instances.iter().filter(|i| i.spec_hash != t.hash).collect();
        let mut actions = Vec::new();
        if stale.is_empty() {
            // Creation, scaling or repair: nothing old to protect.
            return match converge_same_spec(input, &t.spec, &t.hash, t.replicas, &mut actions) {
                None => Step { actions, state, outcome: Outcome::Converged },
                Some(outcome) => self.watch_timeout(input, state, actions, outcome),
            };
        }
        let fresh: Vec<&Instance> =
            input.instances.iter().filter(|i| i.spec_hash == t.hash && i.is_running()).collect();
        // A fresh instance that died is a failed batch, not something to retry quietly.
        if let Some(dead) = input.instances.iter().find(|i| i.spec_hash == t.hash && !i.is_running()) {
            state.rollback_reason = Some(
                format!("instance {} of version {} is {:?}", dead.name, t.spec.version, dead.state).to_lowercase(),
            );
            return roll_back(input, state, timeout);
        }
        let ready_fresh: Vec<&Instance> = fresh.iter().copied().filter(|i| is_ready(i)).collect();
        actions.extend(ready_fresh.iter().filter(|i| !i.serving).map(|i| Action::Serve { instance: i.id.clone() }));
        if !actions.is_empty() {
            // Retire old instances only once their replacements really serve.
            return Step { actions, state, outcome: progress("putting ready instances into traffic") };
        }
        let pending = fresh.len() - ready_fresh.len();
        // Retire as many old instances as ready new ones replace (never fewer serving).
        let live_stale: Vec<&Instance> = stale.iter().copied().filter(|i| i.is_running()).collect();
        let excess = (ready_fresh.len() + live_stale.len()).saturating_sub(t.replicas as usize);
        let mut retiring: Vec<&Instance> = stale.iter().copied().filter(|i| !i.is_running()).collect();
        let mut by_readiness = live_stale.clone();
        by_readiness.sort_by_key(|i| (is_ready(i), i.serving, i.name.clone()));
        retiring.extend(by_readiness.into_iter().take(excess));
        actions.extend(retiring.iter().map(|i| Action::Retire { instance: i.id.clone() }));
        if excess > 0 && !self.config.wait_between_batches.0.is_zero() {
            state.next_batch_ms = Some(input.now_ms + self.config.wait_between_batches.0.as_millis() as u64);
        }
        if pending > 0 {
            let outcome = progress(format!(
                "batch: {pending} instance(s) of {} starting, {} of {} done",
                t.spec.version,
                ready_fresh.len(),
                t.replicas
            ));
            return self.watch_timeout(input, state, actions, outcome);
        }
        let remaining_stale = live_stale.len().saturating_sub(excess);
        if remaining_stale == 0 && ready_fresh.len() as u32 >= t.replicas {
            return Step { actions, state, outcome: Outcome::Converged };
        }
        if state.next_batch_ms.is_some_and(|at| input.now_ms < at) {
            let outcome = progress(format!("waiting between batches ({} of {} done)", ready_fresh.len(), t.replicas));
            return Step { actions, state, outcome };
        }
        let per_batch = self.config.batch_size.instances(t.replicas) * self.config.max_parallel_batches.max(1);
        let to_start = per_batch.min(t.replicas.saturating_sub(fresh.len() as u32));
        if to_start > 0 {
            actions.push(Action::Start {
                slot: t.slot,
                spec: Box::new(t.spec.clone()),
                hash: t.hash.clone(),
                count: to_start,
                serve: false,
            });
            state.batch_started_ms = Some(input.now_ms);
            state.next_batch_ms = None;
        } else {
            // Enough new instances for the target: the remaining old ones go.
            actions.extend(live_stale.iter().skip(excess).map(|i| Action::Retire { instance: i.id.clone() }));
        }
        let outcome = progress(format!(
            "rolling {} → {}: {} of {} done",
            version_of(&stale),
            t.spec.version,
            ready_fresh.len(),
            t.replicas
        ));
        Step { actions, state, outcome }
    }
}

impl Rolling {
    fn watch_timeout(
        &self,
        input: &StepInput,
        mut state: super::RolloutState,
        actions: Vec<Action>,
        outcome: Outcome,
    ) -> Step {
        let timeout = self.config.health_check_timeout.0;
        if actions.iter().any(|a| matches!(a, Action::Start { .. })) || state.batch_started_ms.is_none() {
            state.batch_started_ms = Some(input.now_ms);
        }
        let waited = input.now_ms.saturating_sub(state.batch_started_ms.unwrap_or(input.now_ms));
        if waited > timeout.as_millis() as u64 {
            state.rollback_reason = Some(format!(
                "version {} not ready after {}",
                input.target.spec.version, self.config.health_check_timeout
            ));
            return roll_back(input, state, timeout);
        }
        Step { actions, state, outcome }
    }
}

fn version_of(instances: &[&Instance]) -> String {
    instances.first().map(|i| i.version.clone()).unwrap_or_default()
}
