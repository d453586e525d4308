//! Blue-green: the new version (green) starts beside the serving one (blue) without traffic,
//! warms up, passes its smoke tests, then takes the alias (at once, or in steps); blue keeps
//! running through `monitoringPeriod` so a failed verdict switches back at once. Serving
//! always grows before it shrinks, so the alias never points at nothing.

use super::canary::is_main;
use super::{
    apply_control, is_ready, progress, retire_side_slots, settle, Action, Outcome, SlotStrategy, Step, StepInput,
    Verdict,
};
use crate::model::policy::{BlueGreenConfig, Switchover};
use crate::plan::{Instance, Slot};
use std::time::Duration;

pub struct BlueGreen {
    pub config: BlueGreenConfig,
    pub health_check_timeout: Duration,
}

/// Where a blue-green rollout is. Stored as `state.step` (0 warming, 1 smoke tests, 2 + n
/// the n-th switch step) so a restarted daemon reads what an earlier one wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warming,
    Smoke,
    /// Green takes the n-th switch step's share of traffic.
    Switch(usize),
}

impl Phase {
    pub fn of(step: usize) -> Phase {
        match step {
            0 => Phase::Warming,
            1 => Phase::Smoke,
            n => Phase::Switch(n - 2),
        }
    }

    // Long: blue-green's phases in order (create, start green, ready, warm up, smoke tests); the switch is `switching`.

    pub fn step(self) -> usize {
        match self {
            Phase::Warming => 0,
            Phase::Smoke => 1,
            Phase::Switch(n) => n + 2,
        }
    }
}

/// The instances of a blue-green rollout by role.
struct Sides<'a> {
    /// Running the older spec (blue), serving or not.
    active: Vec<&'a Instance>,
    /// Stopped older instances kept for an instant switch back.
    parked: Vec<&'a Instance>,
    /// The new spec (green), running or not.
    green: Vec<&'a Instance>,
    /// Running green instances.
    live: Vec<&'a Instance>,
}

impl BlueGreen {
    fn ms(d: Option<crate::model::Span>, default: Duration) -> u64 {
        d.map(|s| s.0).unwrap_or(default).as_millis() as u64
    }

    /// Percentages of traffic green takes, ending at 100.
    fn switch_steps(&self) -> Vec<f64> {
        match self.config.switchover_type {
            Switchover::Instant => vec![100.0],
            Switchover::Gradual => {
                let mut steps = self.config.gradual_steps.clone().unwrap_or_else(|| vec![50.0, 100.0]);
                if steps.last().is_none_or(|l| *l < 100.0) {
                    steps.push(100.0);
                }
                steps
            }
        }
    }

    /// Green takes switch step `n`'s share: serving grows first, blue shrinks after, then the
    /// step is monitored and passed, failed (switch back) or the rollout finishes.
    #[allow(clippy::too_many_arguments)]
    // Long: grow green, shrink blue, monitor, pass or switch back: one step of traffic in order.
    fn switching(
        &self,
        input: &StepInput,
        mut state: super::RolloutState,
        mut actions: Vec<Action>,
        sides: &Sides,
        new_slot: Slot,
        n: usize,
        elapsed: u64,
    ) -> Step {
        let t = input.target;
        let steps = self.switch_steps();
        let index = n.min(steps.len() - 1);
        let weight = steps[index];
        // Behind the router both sides serve whole and the router splits exactly.
        let routed = t.spec.routed && weight < 100.0;
        if routed {
            let blue = sides.active.first().map_or(Slot::Stable, |i| i.slot);
            actions.push(super::split(blue, new_slot, weight));
        }
        // Green grows to the step's share of the replicas (replica-weighted).
        let green_serving = if weight >= 100.0 || routed {
            sides.live.len()
        } else {
            ((f64::from(t.replicas) * weight / 100.0).floor() as usize).clamp(1, sides.live.len())
        };
        // Grow green first; shrink blue only once green serves.
        let mut by_name = sides.live.clone();
        by_name.sort_by_key(|i| (!i.serving, i.name.clone()));
        let serve: Vec<Action> = by_name
            .iter()
            .take(green_serving)
            .filter(|i| !i.serving)
            .map(|i| Action::Serve { instance: i.id.clone() })
            .collect();
        if !serve.is_empty() {
            actions.extend(serve);
            state.step_started_ms = None;
            return Step { actions, state, outcome: progress(format!("switching {weight} % of traffic to green")) };
        }
        // Blue shrinks as green grows, but never below what keeps green at or under
        // the step's weight.
        let blue_serving = if weight >= 100.0 {
            0
        } else if routed {
            sides.active.len()
        } else {
            let floor = (green_serving as f64 * (100.0 - weight) / weight).ceil() as usize;
            (t.replicas as usize).saturating_sub(green_serving).max(floor).min(sides.active.len())
        };
        let serving_blue: Vec<&&Instance> = sides.active.iter().filter(|i| i.serving).collect();
        if serving_blue.len() > blue_serving {
            actions.extend(
                serving_blue
                    .iter()
                    .take(serving_blue.len() - blue_serving)
                    .map(|i| Action::Unserve { instance: i.id.clone() }),
            );
            state.step_started_ms = None;
            return Step { actions, state, outcome: progress(format!("green serves {weight} %; blue leaves traffic")) };
        }
        if state.watch != vec![new_slot] || state.step_started_ms == Some(input.now_ms) {
            state.window += 1;
            state.watch = vec![new_slot];
        }
        let monitoring = Self::ms(self.config.monitoring_period, Duration::ZERO);
        let verdict = input.evidence.verdict(state.window, new_slot).cloned();
        match verdict {
            Some(Verdict::Fail { reason }) => {
                return self.switch_back(&sides.active, &sides.green, state, format!("green at {weight} %: {reason}"))
            }
            Some(Verdict::Inconclusive { reason }) if elapsed >= 3 * monitoring.max(1) => {
                return self.switch_back(&sides.active, &sides.green, state, format!("analysis inconclusive: {reason}"))
            }
            _ => {}
        }
        let passed = matches!(verdict, Some(Verdict::Pass { .. })) || monitoring == 0;
        if (elapsed < monitoring || !passed) && !state.promoted {
            return Step { actions, state, outcome: progress(format!("green serves {weight} %: monitoring")) };
        }
        if index + 1 < steps.len() {
            state.step = Phase::Switch(index + 1).step();
            state.step_started_ms = None;
            return Step { actions, state, outcome: progress(format!("green {weight} % passed")) };
        }
        // Done: blue goes, or is parked for an instant manual rollback.
        if self.config.keep_previous_environment {
            actions.extend(sides.active.iter().map(|i| Action::Park { instance: i.id.clone() }));
            actions.extend(sides.parked.iter().map(|i| Action::Retire { instance: i.id.clone() }));
        } else {
            actions.extend(
                sides.active.iter().chain(sides.parked.iter()).map(|i| Action::Retire { instance: i.id.clone() }),
            );
        }
        if let Some(Verdict::Pass { summary }) = verdict {
            state.note = Some(summary);
        }
        Step { actions, state, outcome: progress("green took over; retiring blue") }
    }

    /// Switch back at once: blue serves first, then green goes.
    fn switch_back(
        &self,
        active: &[&Instance],
        green: &[&Instance],
        mut state: super::RolloutState,
        reason: String,
    ) -> Step {
        state.rollback_reason = Some(reason.clone());
        let mut actions: Vec<Action> =
            active.iter().filter(|i| !i.serving).map(|i| Action::Serve { instance: i.id.clone() }).collect();
        if !actions.is_empty() {
            return Step { actions, state, outcome: progress("switching back to the previous version") };
        }
        actions.extend(green.iter().map(|i| Action::Retire { instance: i.id.clone() }));
        Step { actions, state, outcome: Outcome::RolledBack { reason } }
    }
}

impl SlotStrategy for BlueGreen {
    fn step(&self, input: &StepInput) -> Step {
        let t = input.target;
        let mut state = input.state.clone();
        let main: Vec<Instance> = input.instances.iter().filter(|i| is_main(i.slot)).cloned().collect();
        let active: Vec<&Instance> = main.iter().filter(|i| i.spec_hash != t.hash && i.is_running()).collect();
        let parked: Vec<&Instance> = main.iter().filter(|i| i.spec_hash != t.hash && !i.is_running()).collect();
        let green: Vec<&Instance> = main.iter().filter(|i| i.spec_hash == t.hash).collect();
        let mut actions = retire_side_slots(input, None);
        if active.is_empty() {
            // Nothing serves an older version: create, scale or repair. A stopped older
            // instance stays only when the policy keeps the previous environment; otherwise
            // it is what a crash between stop and remove left behind.
            if !self.config.keep_previous_environment {
                actions.extend(parked.iter().map(|i| Action::Retire { instance: i.id.clone() }));
            }
            return settle(input, &main, &[], actions, state, self.health_check_timeout);
        }
        let new_slot = if active.iter().any(|i| i.slot == Slot::Green) { Slot::Blue } else { Slot::Green };
        apply_control(&mut state, input.control);
        if let Some(reason) = state.rollback_reason.clone() {
            return self.switch_back(&active, &green, state, reason);
        }
        let live: Vec<&Instance> = green.iter().copied().filter(|i| i.is_running()).collect();
        actions.extend(green.iter().filter(|i| !i.is_running()).map(|i| Action::Retire { instance: i.id.clone() }));
        // A restarted daemon finds green already serving: it is past the smoke tests.
        if Phase::of(state.step) == Phase::Warming && state.step_started_ms.is_none() && live.iter().any(|i| i.serving)
        {
            state.step = Phase::Switch(0).step();
        }
        if (live.len() as u32) < t.replicas {
            actions.push(Action::Start {
                slot: new_slot,
                spec: Box::new(t.spec.clone()),
                hash: t.hash.clone(),
                count: t.replicas - live.len() as u32,
                serve: false,
            });
            state.batch_started_ms = Some(input.now_ms);
            return Step {
                actions,
                state,
                outcome: progress(format!(
                    "starting {} green instance(s) of {}",
                    t.replicas - live.len() as u32,
                    t.spec.version
                )),
            };
        }
        if live.iter().any(|i| !is_ready(i)) {
            let since = *state.batch_started_ms.get_or_insert(input.now_ms);
            if input.now_ms.saturating_sub(since) > self.health_check_timeout.as_millis() as u64 {
                let reason = format!("green {} not ready after {:?}", t.spec.version, self.health_check_timeout);
                return self.switch_back(&active, &green, state, reason);
            }
            return Step { actions, state, outcome: progress("waiting for green to be ready") };
        }
        if let Some(reason) = state.paused.clone() {
            return Step { actions, state, outcome: Outcome::Paused { reason } };
        }
        let started = *state.step_started_ms.get_or_insert(input.now_ms);
        let elapsed = input.now_ms.saturating_sub(started);
        match Phase::of(state.step) {
            Phase::Warming => {
                if elapsed < Self::ms(self.config.warmup_period, Duration::ZERO) && !state.promoted {
                    return Step { actions, state, outcome: progress("green warming up") };
                }
                state.step = Phase::Smoke.step();
                state.step_started_ms = None;
                state.window += 1;
                state.smoke = (!self.config.smoke_tests.is_empty()).then_some(new_slot);
                Step { actions, state, outcome: progress("running smoke tests on green") }
            }
            Phase::Smoke => {
                if state.smoke.is_some() {
                    match input.evidence.smoke.as_ref().filter(|_| input.evidence.window == state.window) {
                        None => return Step { actions, state, outcome: progress("running smoke tests on green") },
                        Some(Err(reason)) => {
                            let reason = format!("smoke test failed: {reason}");
                            return self.switch_back(&active, &green, state, reason);
                        }
                        Some(Ok(())) => {}
                    }
                }
                state.smoke = None;
                state.step = Phase::Switch(0).step();
                state.step_started_ms = None;
                Step { actions, state, outcome: progress("smoke tests passed; switching") }
            }
            Phase::Switch(n) => {
                let sides = Sides { active, parked, green, live };
                self.switching(input, state, actions, &sides, new_slot, n, elapsed)
            }
        }
    }
}

#[cfg(test)]
mod phase_tests {
    use super::Phase;

    #[test]
    fn phases_are_stored_as_the_steps_earlier_daemons_wrote() {
        for (step, phase) in [
            (0, Phase::Warming),
            (1, Phase::Smoke),
            (2, Phase::Switch(0)),
            (3, Phase::Switch(1)),
            (7, Phase::Switch(5)),
        ] {
            assert_eq!(Phase::of(step), phase);
            assert_eq!(phase.step(), step);
        }
    }
}
