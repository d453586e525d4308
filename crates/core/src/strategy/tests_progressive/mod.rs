//! Table tests of the progressive strategies (Canary, BlueGreen, AbTest): each case is
//! (instances, state, evidence, control, now) → actions, state, outcome. No I/O: the
//! end-to-end walks simulate the executor (apply actions, probe readiness, gather evidence
//! for `state.window`) on a vector of instances.

use super::ab_test::AbTest;
use super::blue_green::BlueGreen;
use super::canary::Canary;
use super::*;
use crate::model::policy::canary_layout as layout;
use crate::model::policy::{AbConfig, BlueGreenConfig, CanaryConfig, Switchover, TrafficSplit};
use crate::model::Span;
use crate::plan::{RunState, SlotTarget};
use std::collections::{BTreeMap, BTreeSet};

mod ab_test;
mod blue_green;
mod canary;
mod routed;

const TIMEOUT: Duration = Duration::from_secs(10);
const EPS: f64 = 1e-9;

// ---------------------------------------------------------------------------------------
// Helpers (extending tests.rs with slots, evidence and controls).

use super::tests::{inst, spec};

fn hash(version: &str) -> String {
    spec(version).hash()
}

fn target(version: &str, replicas: u32) -> SlotTarget {
    let spec = spec(version);
    SlotTarget { slot: Slot::Stable, hash: spec.hash(), spec, replicas }
}

fn previous(version: &str, replicas: u32) -> Previous {
    Previous { spec: spec(version), hash: hash(version), replicas }
}

/// `n` instances `{tag}0..{tag}{n-1}`.
fn group(version: &str, slot: Slot, n: usize, ready: bool, serving: bool, tag: &str) -> Vec<Instance> {
    (0..n).map(|i| inst(version, slot, ready, serving, &format!("{tag}{i}"))).collect()
}

fn parked(version: &str, slot: Slot, id: &str) -> Instance {
    let mut i = inst(version, slot, false, false, id);
    i.state = RunState::Exited;
    i
}

fn run(
    s: &dyn SlotStrategy,
    t: &SlotTarget,
    i: &[Instance],
    state: &RolloutState,
    now_ms: u64,
    evidence: &Evidence,
    control: Option<Control>,
) -> Step {
    s.step(&StepInput { target: t, instances: i, state, now_ms, evidence, control })
}

fn go(s: &dyn SlotStrategy, t: &SlotTarget, i: &[Instance], state: &RolloutState, now_ms: u64) -> Step {
    run(s, t, i, state, now_ms, &Evidence::default(), None)
}

/// (slot, version, count) of every Start.
fn starts(step: &Step) -> Vec<(Slot, String, u32)> {
    step.actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { slot, spec, hash, count, .. } => {
                assert_eq!(*hash, spec.hash(), "Start carries the hash of its spec");
                Some((*slot, spec.version.clone(), *count))
            }
            _ => None,
        })
        .collect()
}

fn ids(step: &Step, pick: fn(&Action) -> Option<&String>) -> Vec<&str> {
    step.actions.iter().filter_map(|a| pick(a).map(|s| s.as_str())).collect()
}

fn retired(step: &Step) -> Vec<&str> {
    ids(step, |a| if let Action::Retire { instance } = a { Some(instance) } else { None })
}

fn served(step: &Step) -> Vec<&str> {
    ids(step, |a| if let Action::Serve { instance } = a { Some(instance) } else { None })
}

fn unserved(step: &Step) -> Vec<&str> {
    ids(step, |a| if let Action::Unserve { instance } = a { Some(instance) } else { None })
}

fn parks(step: &Step) -> Vec<&str> {
    ids(step, |a| if let Action::Park { instance } = a { Some(instance) } else { None })
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v
}

/// Every instance is the subject of at most one action per step (the executor applies a
/// step's actions concurrently).
fn assert_no_duplicates(step: &Step, context: &str) {
    let mut seen = BTreeSet::new();
    for a in &step.actions {
        let id = match a {
            Action::Serve { instance }
            | Action::Retire { instance }
            | Action::Unserve { instance }
            | Action::Park { instance } => instance,
            Action::Start { .. } | Action::Split { .. } => continue,
        };
        assert!(seen.insert(id.clone()), "{context}: {id} appears twice in {:?}", step.actions);
    }
}

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Progress { .. } => "progress",
        Outcome::Converged => "converged",
        Outcome::RolledBack { .. } => "rolledBack",
        Outcome::Failed { .. } => "failed",
        Outcome::Paused { .. } => "paused",
    }
}

fn reason(o: &Outcome) -> &str {
    match o {
        Outcome::Progress { note, .. } => note,
        Outcome::Converged => "",
        Outcome::RolledBack { reason } | Outcome::Failed { reason } | Outcome::Paused { reason } => reason,
    }
}

fn verdict(window: u32, slot: Slot, v: Verdict) -> Evidence {
    Evidence { window, verdicts: BTreeMap::from([(slot, v)]), ..Default::default() }
}

fn pass(window: u32, slot: Slot) -> Evidence {
    verdict(window, slot, Verdict::Pass { summary: "ok".into() })
}

fn fail(window: u32, slot: Slot) -> Evidence {
    verdict(window, slot, Verdict::Fail { reason: "error rate 7 %".into() })
}

fn inconclusive(window: u32, slot: Slot) -> Evidence {
    verdict(window, slot, Verdict::Inconclusive { reason: "3 requests".into() })
}

fn smoke(window: u32, result: Result<(), String>) -> Evidence {
    Evidence { window, smoke: Some(result), ..Default::default() }
}

fn ab_result(window: u32, winner: Option<Variant>, inconclusive: bool) -> Evidence {
    Evidence {
        window,
        ab: Some(AbResult { winner, inconclusive, summary: "errorRate 0.1 % vs 0.4 %".into() }),
        ..Default::default()
    }
}

/// The executor, simulated: a started instance is running but unready, and ready from the
/// next probe on.
struct World {
    instances: Vec<Instance>,
    next: usize,
}

impl World {
    fn new(instances: Vec<Instance>) -> World {
        World { instances, next: 0 }
    }

    /// Readiness probing before a step: everything running answers.
    fn probe(&mut self) {
        for i in self.instances.iter_mut().filter(|i| i.is_running()) {
            i.ready = Some(true);
        }
    }

    /// Retire, Unserve, Park: what takes capacity away. Applied before `add` so the check in
    /// between sees the worst moment of the executor's concurrent apply.
    fn remove(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Retire { instance } => self.instances.retain(|i| &i.id != instance),
                Action::Unserve { instance } => {
                    self.instances.iter_mut().filter(|i| &i.id == instance).for_each(|i| i.serving = false)
                }
                Action::Park { instance } => self.instances.iter_mut().filter(|i| &i.id == instance).for_each(|i| {
                    i.serving = false;
                    i.state = RunState::Exited;
                    i.ready = Some(false);
                }),
                Action::Start { .. } | Action::Serve { .. } | Action::Split { .. } => {}
            }
        }
    }

    /// Start, Serve.
    fn add(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Start { slot, spec, hash, count, .. } => {
                    for _ in 0..*count {
                        let mut i = inst(&spec.version, *slot, false, false, &format!("n{}", self.next));
                        assert_eq!(i.spec_hash, *hash);
                        i.id = format!("{}-{}-{}", slot.as_str(), spec.version, self.next);
                        i.name = i.id.clone();
                        self.next += 1;
                        self.instances.push(i);
                    }
                }
                Action::Serve { instance } => {
                    let i =
                        self.instances.iter_mut().find(|i| &i.id == instance).expect("serve of an unknown instance");
                    assert!(is_ready(i), "serve of an unready instance {instance}");
                    i.serving = true;
                }
                _ => {}
            }
        }
    }

    fn serving(&self) -> Vec<&Instance> {
        self.instances.iter().filter(|i| i.is_running() && i.serving).collect()
    }

    fn ready_serving(&self) -> usize {
        self.serving().iter().filter(|i| is_ready(i)).count()
    }
}

/// The blue-green policy most cases start from (also used by the creation cases).
fn bg_config() -> BlueGreenConfig {
    BlueGreenConfig {
        warmup_period: None,
        switchover_type: Switchover::Instant,
        gradual_steps: None,
        monitoring_period: Some(Span::from_secs(60)),
        keep_previous_environment: false,
        smoke_tests: vec!["/smoke".into()],
        thresholds: Default::default(),
    }
}

fn bg(config: BlueGreenConfig) -> BlueGreen {
    BlueGreen { config, health_check_timeout: TIMEOUT }
}
