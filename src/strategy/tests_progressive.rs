//! Table tests of the progressive strategies (Canary, BlueGreen, AbTest): each case is
//! (instances, state, evidence, control, now) → actions, state, outcome. No I/O: the
//! end-to-end walks simulate the executor (apply actions, probe readiness, gather evidence
//! for `state.window`) on a vector of instances.

use super::ab_test::{b_instances, AbTest};
use super::blue_green::BlueGreen;
use super::canary::{layout, Canary};
use super::*;
use crate::model::policy::{AbConfig, BlueGreenConfig, CanaryConfig, Switchover, TrafficSplit};
use crate::model::Span;
use crate::plan::{RunState, SlotTarget};
use std::collections::{BTreeMap, BTreeSet};

const TIMEOUT: Duration = Duration::from_secs(10);
const EPS: f64 = 1e-9;

// ---------------------------------------------------------------------------------------
// Helpers (extending tests.rs with slots, evidence and controls).

use super::tests::spec;

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

/// One running instance of `version` in `slot`.
fn inst(version: &str, slot: Slot, ready: bool, serving: bool, id: &str) -> Instance {
    let s = spec(version);
    Instance {
        id: id.into(),
        name: id.into(),
        plugin: "p".into(),
        slot,
        version: version.into(),
        spec_hash: s.hash(),
        spec: Some(s),
        revision: "r".into(),
        state: RunState::Running,
        serving,
        address: None,
        ready: Some(ready),
        oom_killed: false,
        restart_count: 0,
        runtime: None,
    }
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
            Action::Start { .. } => continue,
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
                Action::Start { .. } | Action::Serve { .. } => {}
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

// ---------------------------------------------------------------------------------------
// Canary

fn canary(steps: Vec<f64>, max_surge: u32, period_secs: u64, auto_rollback: bool) -> Canary {
    Canary {
        config: CanaryConfig {
            steps: Some(steps),
            evaluation_period: Some(Span::from_secs(period_secs)),
            auto_rollback,
            max_surge: Some(max_surge),
            ..Default::default()
        },
        health_check_timeout: TIMEOUT,
    }
}

/// Replicas 3, steps 20/40/60/100 with one surge instance: layouts (1 surge, 1 canary, 20 %),
/// (0, 2, 40 %), (1, 6, 60 %): every step a different canary count.
fn canary_surge() -> Canary {
    canary(vec![20.0, 40.0, 60.0, 100.0], 1, 60, true)
}

/// Replicas 3, steps 25/50/100 and no surge: layouts (0, 1, 25 %), (0, 3, 50 %).
fn canary_plain(auto_rollback: bool) -> Canary {
    canary(vec![25.0, 50.0, 100.0], 0, 60, auto_rollback)
}

#[test]
fn canary_layout_table() {
    // (stable, weight, maxSurge) → (surge, canary, achieved %)
    let cases: &[(u32, f64, u32, (u32, u32, f64))] = &[
        (3, 25.0, 0, (0, 1, 25.0)),
        (4, 25.0, 0, (0, 1, 20.0)), // largest weight not above 25
        (4, 50.0, 0, (0, 4, 50.0)),
        (4, 50.0, 2, (0, 4, 50.0)), // a tie prefers fewer instances
        (3, 20.0, 1, (1, 1, 20.0)), // surge makes the exact weight reachable
        (3, 40.0, 1, (0, 2, 40.0)),
        (3, 60.0, 1, (1, 6, 60.0)),
        (4, 30.0, 2, (1, 2, 200.0 / 7.0)), // 28.6 % beats 20 % and 25 %
        (2, 10.0, 8, (7, 1, 10.0)),
        (1, 50.0, 0, (0, 1, 50.0)),
        (10, 10.0, 0, (0, 1, 100.0 / 11.0)),
        // No layout reaches the weight: one canary beside all stable and the whole surge.
        (2, 10.0, 0, (0, 1, 100.0 / 3.0)),
        (3, 10.0, 2, (2, 1, 100.0 / 6.0)),
        (4, 10.0, 0, (0, 1, 20.0)),
        // 100 %: as many canary instances as stable ones, no surge.
        (4, 100.0, 3, (0, 4, 100.0)),
        (0, 100.0, 0, (0, 1, 100.0)),
    ];
    for &(stable, weight, surge, (es, ec, ea)) in cases {
        let (s, c, a) = layout(stable, weight, surge);
        assert_eq!((s, c), (es, ec), "layout({stable}, {weight}, {surge}) = {:?}", (s, c, a));
        assert!((a - ea).abs() < 1e-6, "layout({stable}, {weight}, {surge}): achieved {a}, expected {ea}");
    }
}

#[test]
fn canary_layout_never_exceeds_the_weight_when_a_layout_exists() {
    for stable in 1..=8u32 {
        for max_surge in 0..=4u32 {
            for w in 1..100u32 {
                let weight = f64::from(w);
                let (s, c, a) = layout(stable, weight, max_surge);
                let ctx = format!("layout({stable}, {weight}, {max_surge}) = ({s}, {c}, {a})");
                assert!(s <= max_surge && c >= 1, "{ctx}");
                assert!(
                    (a - f64::from(c) * 100.0 / f64::from(stable + s + c)).abs() < EPS,
                    "{ctx}: achieved is not the real share"
                );
                // Brute force within the same bound on canary instances (20 × stable).
                let best = (0..=max_surge)
                    .flat_map(|bs| (1..=stable * 20).map(move |bc| f64::from(bc) * 100.0 / f64::from(stable + bs + bc)))
                    .filter(|x| *x <= weight + EPS)
                    .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
                match best {
                    Some(best) => {
                        assert!(a <= weight + EPS, "{ctx}: above the step weight");
                        assert!((a - best).abs() < EPS, "{ctx}: {best} % was reachable");
                    }
                    None => {
                        assert_eq!((s, c), (max_surge, 1), "{ctx}: the fallback is one canary beside the whole surge")
                    }
                }
            }
        }
    }
}

#[test]
fn canary_creation_converges_like_rolling() {
    let strategy = canary_surge();
    let t = target("2.0.0", 3);
    struct Case {
        name: &'static str,
        instances: Vec<Instance>,
        starts: Vec<(Slot, String, u32)>,
        serves: Vec<&'static str>,
        retires: Vec<&'static str>,
        converged: bool,
    }
    let cases = vec![
        Case {
            name: "nothing runs: start all",
            instances: vec![],
            starts: vec![(Slot::Stable, "2.0.0".into(), 3)],
            serves: vec![],
            retires: vec![],
            converged: false,
        },
        Case {
            name: "ready instances serve",
            instances: group("2.0.0", Slot::Stable, 3, true, false, "n"),
            starts: vec![],
            serves: vec!["n0", "n1", "n2"],
            retires: vec![],
            converged: false,
        },
        Case {
            name: "pending instances wait",
            instances: group("2.0.0", Slot::Stable, 3, false, false, "n"),
            starts: vec![],
            serves: vec![],
            retires: vec![],
            converged: false,
        },
        Case {
            name: "all serving: converged",
            instances: group("2.0.0", Slot::Stable, 3, true, true, "n"),
            starts: vec![],
            serves: vec![],
            retires: vec![],
            converged: true,
        },
        Case {
            name: "repair: one missing",
            instances: group("2.0.0", Slot::Stable, 2, true, true, "n"),
            starts: vec![(Slot::Stable, "2.0.0".into(), 1)],
            serves: vec![],
            retires: vec![],
            converged: false,
        },
        Case {
            name: "scale down",
            instances: group("2.0.0", Slot::Stable, 5, true, true, "n"),
            starts: vec![],
            serves: vec![],
            retires: vec!["n0", "n1"],
            converged: false,
        },
        Case {
            name: "leftover canary and foreign slots go",
            instances: [
                group("2.0.0", Slot::Stable, 3, true, true, "n"),
                group("2.0.0", Slot::Canary, 1, true, true, "c"),
                group("1.0.0", Slot::Canary, 1, true, true, "oc"),
                group("2.0.0", Slot::B, 1, true, true, "b"),
            ]
            .concat(),
            starts: vec![],
            serves: vec![],
            retires: vec!["b0", "c0", "oc0"],
            converged: true,
        },
    ];
    for c in cases {
        let s = go(&strategy, &t, &c.instances, &RolloutState::default(), 1_000);
        assert_eq!(starts(&s), c.starts, "{}: {:?}", c.name, s.actions);
        assert_eq!(sorted(served(&s)), c.serves, "{}: {:?}", c.name, s.actions);
        assert_eq!(sorted(retired(&s)), c.retires, "{}: {:?}", c.name, s.actions);
        assert_eq!(s.outcome == Outcome::Converged, c.converged, "{}: {:?}", c.name, s.outcome);
        assert!(s.state.previous.is_none(), "{}: creation has no previous version", c.name);
        assert_no_duplicates(&s, c.name);
    }
}

#[test]
fn canary_first_step_starts_canary_and_surge() {
    let t = target("2.0.0", 3);
    let old = group("1.0.0", Slot::Stable, 3, true, true, "old");
    let s = go(&canary_surge(), &t, &old, &RolloutState::default(), 7_000);
    assert_eq!(
        starts(&s),
        vec![(Slot::Canary, "2.0.0".into(), 1), (Slot::Stable, "1.0.0".into(), 1)],
        "{:?}",
        s.actions
    );
    assert!(retired(&s).is_empty() && served(&s).is_empty(), "{:?}", s.actions);
    assert_eq!(s.state.previous, Some(previous("1.0.0", 3)));
    assert_eq!(s.state.batch_started_ms, Some(7_000));
    assert_eq!((s.state.step, s.state.window, s.state.step_started_ms), (0, 0, None));
    assert_eq!(kind(&s.outcome), "progress");
    // Without surge: only the canary.
    let s = go(&canary_plain(true), &t, &old, &RolloutState::default(), 7_000);
    assert_eq!(starts(&s), vec![(Slot::Canary, "2.0.0".into(), 1)], "{:?}", s.actions);
}

#[test]
fn canary_serves_ready_instances_and_starts_the_window_once_the_layout_serves() {
    let strategy = canary_surge();
    let t = target("2.0.0", 3);
    let base = RolloutState { previous: Some(previous("1.0.0", 3)), batch_started_ms: Some(0), ..Default::default() };
    struct Case {
        name: &'static str,
        instances: Vec<Instance>,
        starts: Vec<(Slot, String, u32)>,
        serves: Vec<&'static str>,
        window: bool,
    }
    let old3 = || group("1.0.0", Slot::Stable, 3, true, true, "old");
    let cases = vec![
        Case {
            name: "surge ready, canary pending",
            instances: [
                old3(),
                vec![
                    inst("1.0.0", Slot::Stable, true, false, "surge"),
                    inst("2.0.0", Slot::Canary, false, false, "c0"),
                ],
            ]
            .concat(),
            starts: vec![],
            serves: vec!["surge"],
            window: false,
        },
        Case {
            name: "canary ready, not yet serving",
            instances: [
                old3(),
                vec![inst("1.0.0", Slot::Stable, true, true, "surge"), inst("2.0.0", Slot::Canary, true, false, "c0")],
            ]
            .concat(),
            starts: vec![],
            serves: vec!["c0"],
            window: false,
        },
        Case {
            name: "surge missing",
            instances: [old3(), vec![inst("2.0.0", Slot::Canary, true, true, "c0")]].concat(),
            starts: vec![(Slot::Stable, "1.0.0".into(), 1)],
            serves: vec![],
            window: false,
        },
        Case {
            name: "canary missing",
            instances: [old3(), vec![inst("1.0.0", Slot::Stable, true, true, "surge")]].concat(),
            starts: vec![(Slot::Canary, "2.0.0".into(), 1)],
            serves: vec![],
            window: false,
        },
        Case {
            name: "layout ready and serving",
            instances: [
                old3(),
                vec![inst("1.0.0", Slot::Stable, true, true, "surge"), inst("2.0.0", Slot::Canary, true, true, "c0")],
            ]
            .concat(),
            starts: vec![],
            serves: vec![],
            window: true,
        },
    ];
    for c in cases {
        let s = go(&strategy, &t, &c.instances, &base, 5_000);
        assert_eq!(starts(&s), c.starts, "{}: {:?}", c.name, s.actions);
        assert_eq!(sorted(served(&s)), c.serves, "{}: {:?}", c.name, s.actions);
        assert!(retired(&s).is_empty(), "{}: {:?}", c.name, s.actions);
        assert_eq!(kind(&s.outcome), "progress", "{}", c.name);
        assert_eq!(s.state.step, 0, "{}", c.name);
        if c.window {
            assert_eq!(s.state.window, 1, "{}", c.name);
            assert_eq!(s.state.watch, vec![Slot::Canary], "{}", c.name);
            assert_eq!(s.state.step_started_ms, Some(5_000), "{}", c.name);
        } else {
            assert_eq!((s.state.window, s.state.step_started_ms), (0, None), "{}: window started too early", c.name);
            assert!(s.state.watch.is_empty(), "{}", c.name);
        }
    }
}

/// Canary at step 0 (25 %) of `canary_plain`, evaluating since 0 in window 1.
fn canary_evaluating() -> (Vec<Instance>, RolloutState) {
    let instances =
        [group("1.0.0", Slot::Stable, 3, true, true, "old"), group("2.0.0", Slot::Canary, 1, true, true, "c")].concat();
    let state = RolloutState {
        previous: Some(previous("1.0.0", 3)),
        batch_started_ms: Some(0),
        step_started_ms: Some(0),
        window: 1,
        watch: vec![Slot::Canary],
        ..Default::default()
    };
    (instances, state)
}

#[test]
fn canary_evaluation_table() {
    let t = target("2.0.0", 3);
    let (instances, state) = canary_evaluating();
    struct Case {
        name: &'static str,
        auto_rollback: bool,
        now: u64,
        evidence: Evidence,
        outcome: &'static str,
        step: usize,
        retires: Vec<&'static str>,
        reason: &'static str,
    }
    let cases = vec![
        Case {
            name: "no verdict yet",
            auto_rollback: true,
            now: 30_000,
            evidence: Evidence::default(),
            outcome: "progress",
            step: 0,
            retires: vec![],
            reason: "evaluating",
        },
        Case {
            name: "no verdict for a long time",
            auto_rollback: true,
            now: 600_000,
            evidence: Evidence::default(),
            outcome: "progress",
            step: 0,
            retires: vec![],
            reason: "evaluating",
        },
        Case {
            name: "pass before the evaluation period",
            auto_rollback: true,
            now: 59_999,
            evidence: pass(1, Slot::Canary),
            outcome: "progress",
            step: 0,
            retires: vec![],
            reason: "evaluating",
        },
        Case {
            name: "pass after the evaluation period",
            auto_rollback: true,
            now: 60_000,
            evidence: pass(1, Slot::Canary),
            outcome: "progress",
            step: 1,
            retires: vec![],
            reason: "next step",
        },
        Case {
            name: "pass of an older window",
            auto_rollback: true,
            now: 120_000,
            evidence: pass(0, Slot::Canary),
            outcome: "progress",
            step: 0,
            retires: vec![],
            reason: "evaluating",
        },
        Case {
            name: "pass of another slot",
            auto_rollback: true,
            now: 120_000,
            evidence: pass(1, Slot::Stable),
            outcome: "progress",
            step: 0,
            retires: vec![],
            reason: "evaluating",
        },
        Case {
            name: "fail with autoRollback",
            auto_rollback: true,
            now: 10_000,
            evidence: fail(1, Slot::Canary),
            outcome: "rolledBack",
            step: 0,
            retires: vec!["c0"],
            reason: "canary at 25 %: error rate 7 %",
        },
        Case {
            name: "fail without autoRollback",
            auto_rollback: false,
            now: 10_000,
            evidence: fail(1, Slot::Canary),
            outcome: "paused",
            step: 0,
            retires: vec![],
            reason: "canary at 25 %: error rate 7 %",
        },
        Case {
            name: "fail of an older window",
            auto_rollback: true,
            now: 10_000,
            evidence: fail(0, Slot::Canary),
            outcome: "progress",
            step: 0,
            retires: vec![],
            reason: "evaluating",
        },
        Case {
            name: "inconclusive for 1 period",
            auto_rollback: true,
            now: 60_000,
            evidence: inconclusive(1, Slot::Canary),
            outcome: "progress",
            step: 0,
            retires: vec![],
            reason: "evaluating",
        },
        Case {
            name: "inconclusive for < 3 periods",
            auto_rollback: true,
            now: 179_999,
            evidence: inconclusive(1, Slot::Canary),
            outcome: "progress",
            step: 0,
            retires: vec![],
            reason: "evaluating",
        },
        Case {
            name: "inconclusive for 3 periods, autoRollback",
            auto_rollback: true,
            now: 180_000,
            evidence: inconclusive(1, Slot::Canary),
            outcome: "rolledBack",
            step: 0,
            retires: vec!["c0"],
            reason: "inconclusive for 3 evaluation periods",
        },
        Case {
            name: "inconclusive for 3 periods, no autoRollback",
            auto_rollback: false,
            now: 180_000,
            evidence: inconclusive(1, Slot::Canary),
            outcome: "paused",
            step: 0,
            retires: vec![],
            reason: "inconclusive for 3 evaluation periods",
        },
    ];
    for c in cases {
        let s = run(&canary_plain(c.auto_rollback), &t, &instances, &state, c.now, &c.evidence, None);
        assert_eq!(kind(&s.outcome), c.outcome, "{}: {:?}", c.name, s.outcome);
        assert!(reason(&s.outcome).contains(c.reason), "{}: {:?}", c.name, s.outcome);
        assert_eq!(s.state.step, c.step, "{}", c.name);
        assert_eq!(sorted(retired(&s)), c.retires, "{}: {:?}", c.name, s.actions);
        assert!(starts(&s).is_empty() && served(&s).is_empty(), "{}: {:?}", c.name, s.actions);
        assert_eq!(s.state.window, 1, "{}: the window only changes with the step", c.name);
        match c.outcome {
            "progress" if c.step == 1 => {
                assert_eq!(s.state.step_started_ms, None, "{}", c.name);
                assert_eq!(s.state.note.as_deref(), Some("25 % passed (ok)"), "{}", c.name);
            }
            "progress" => assert_eq!(s.state.step_started_ms, Some(0), "{}", c.name),
            "paused" => assert_eq!(s.state.paused.as_deref(), Some(reason(&s.outcome)), "{}", c.name),
            "rolledBack" => assert!(s.state.rollback_reason.is_some(), "{}", c.name),
            _ => {}
        }
    }
}

#[test]
fn canary_next_step_lays_out_before_evaluating() {
    // Step 0 passed: step 1 (50 %) wants 3 canary instances.
    let t = target("2.0.0", 3);
    let (instances, mut state) = canary_evaluating();
    state.step = 1;
    state.step_started_ms = None;
    let s = go(&canary_plain(true), &t, &instances, &state, 70_000);
    assert_eq!(starts(&s), vec![(Slot::Canary, "2.0.0".into(), 2)], "{:?}", s.actions);
    assert_eq!((s.state.step, s.state.window, s.state.batch_started_ms), (1, 1, Some(70_000)));
    let mut more = instances.clone();
    more.extend(group("2.0.0", Slot::Canary, 2, true, true, "d"));
    let s = go(&canary_plain(true), &t, &more, &s.state, 75_000);
    assert!(s.actions.is_empty(), "{:?}", s.actions);
    assert_eq!((s.state.step, s.state.window, s.state.step_started_ms), (1, 2, Some(75_000)));
}

#[test]
fn canary_rollback_retires_the_canary_once_the_previous_version_carries_the_traffic() {
    let t = target("2.0.0", 3);
    // With a surge instance: the previous version already carries the traffic, so the
    // failing canary leaves first (its share must never grow) and the surge after it.
    let mut world = [
        group("1.0.0", Slot::Stable, 3, true, true, "old"),
        vec![inst("1.0.0", Slot::Stable, true, true, "surge")],
        group("2.0.0", Slot::Canary, 1, true, true, "c"),
    ]
    .concat();
    let state = RolloutState {
        previous: Some(previous("1.0.0", 3)),
        batch_started_ms: Some(0),
        step_started_ms: Some(0),
        window: 1,
        watch: vec![Slot::Canary],
        ..Default::default()
    };
    let s = run(&canary_surge(), &t, &world, &state, 5_000, &fail(1, Slot::Canary), None);
    assert_eq!(kind(&s.outcome), "progress", "{:?}", s.outcome);
    assert_eq!(retired(&s), vec!["c0"], "the failing canary leaves first: {:?}", s.actions);
    world.retain(|i| i.id != "c0");
    let s = go(&canary_surge(), &t, &world, &s.state, 6_000);
    assert_eq!(retired(&s).len(), 1, "then one surplus stable instance: {:?}", s.actions);
    assert!(
        matches!(&s.outcome, Outcome::RolledBack { reason } if reason.starts_with("canary at 20 %")),
        "{:?}",
        s.outcome
    );

    // One stable instance died meanwhile: it comes back before the canary goes.
    let mut world =
        [group("1.0.0", Slot::Stable, 2, true, true, "old"), group("2.0.0", Slot::Canary, 1, true, true, "c")].concat();
    let s = run(&canary_plain(true), &t, &world, &state, 5_000, &Evidence::default(), Some(Control::Abort));
    assert_eq!(starts(&s), vec![(Slot::Stable, "1.0.0".into(), 1)], "{:?}", s.actions);
    assert!(retired(&s).is_empty(), "{:?}", s.actions);
    assert_eq!(kind(&s.outcome), "progress");
    world.push(inst("1.0.0", Slot::Stable, false, false, "back"));
    let s = go(&canary_plain(true), &t, &world, &s.state, 6_000);
    assert!(retired(&s).is_empty() && served(&s).is_empty(), "{:?}", s.actions);
    world.last_mut().unwrap().ready = Some(true);
    let s = go(&canary_plain(true), &t, &world, &s.state, 7_000);
    assert_eq!(served(&s), vec!["back"]);
    assert!(retired(&s).is_empty(), "{:?}", s.actions);
    world.last_mut().unwrap().serving = true;
    let s = go(&canary_plain(true), &t, &world, &s.state, 8_000);
    assert_eq!(retired(&s), vec!["c0"]);
    assert!(matches!(&s.outcome, Outcome::RolledBack { reason } if reason == "aborted by a person"), "{:?}", s.outcome);
}

#[test]
fn canary_paused_by_a_failure_then_controls() {
    let t = target("2.0.0", 3);
    let strategy = canary_plain(false);
    let (instances, state) = canary_evaluating();
    let paused = run(&strategy, &t, &instances, &state, 10_000, &fail(1, Slot::Canary), None);
    assert_eq!(kind(&paused.outcome), "paused");
    // Stays paused without a person.
    let again = run(&strategy, &t, &instances, &paused.state, 20_000, &fail(1, Slot::Canary), None);
    assert_eq!(kind(&again.outcome), "paused");
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    // Resume: a new evaluation window; the old failure no longer counts.
    let resumed = run(&strategy, &t, &instances, &paused.state, 30_000, &fail(1, Slot::Canary), Some(Control::Resume));
    assert_eq!(kind(&resumed.outcome), "progress", "{:?}", resumed.outcome);
    assert_eq!(
        (resumed.state.paused.clone(), resumed.state.window, resumed.state.step_started_ms, resumed.state.step),
        (None, 2, Some(30_000), 0)
    );
    // Promote while paused: promotion starts.
    let promoted = run(&strategy, &t, &instances, &paused.state, 30_000, &Evidence::default(), Some(Control::Promote));
    assert_eq!(starts(&promoted), vec![(Slot::Stable, "2.0.0".into(), 3)]);
    assert!(promoted.state.promoted && promoted.state.paused.is_none());
    // Abort while paused: rollback.
    let aborted = run(&strategy, &t, &instances, &paused.state, 30_000, &Evidence::default(), Some(Control::Abort));
    assert_eq!(retired(&aborted), vec!["c0"]);
    assert!(
        matches!(&aborted.outcome, Outcome::RolledBack { reason } if reason == "aborted by a person"),
        "{:?}",
        aborted.outcome
    );
}

#[test]
fn canary_controls_table() {
    let t = target("2.0.0", 3);
    let (instances, state) = canary_evaluating();
    let paused_state = RolloutState { paused: Some("paused by a person".into()), ..state.clone() };
    struct Case {
        name: &'static str,
        state: RolloutState,
        control: Control,
        outcome: &'static str,
        starts: Vec<(Slot, String, u32)>,
        retires: Vec<&'static str>,
        check: fn(&RolloutState) -> bool,
    }
    let cases = vec![
        Case {
            name: "pause",
            state: state.clone(),
            control: Control::Pause,
            outcome: "paused",
            starts: vec![],
            retires: vec![],
            check: |s| s.paused.as_deref() == Some("paused by a person") && s.window == 1,
        },
        Case {
            name: "resume",
            state: paused_state.clone(),
            control: Control::Resume,
            outcome: "progress",
            starts: vec![],
            retires: vec![],
            check: |s| s.paused.is_none() && s.window == 2 && s.step_started_ms == Some(30_000) && s.step == 0,
        },
        Case {
            name: "abort",
            state: state.clone(),
            control: Control::Abort,
            outcome: "rolledBack",
            starts: vec![],
            retires: vec!["c0"],
            check: |s| s.rollback_reason.as_deref() == Some("aborted by a person"),
        },
        Case {
            name: "abort while paused",
            state: paused_state.clone(),
            control: Control::Abort,
            outcome: "rolledBack",
            starts: vec![],
            retires: vec!["c0"],
            check: |s| s.paused.is_none(),
        },
        Case {
            name: "promote",
            state: state.clone(),
            control: Control::Promote,
            outcome: "progress",
            starts: vec![(Slot::Stable, "2.0.0".into(), 3)],
            retires: vec![],
            check: |s| s.promoted && s.batch_started_ms == Some(30_000),
        },
    ];
    for c in cases {
        let s = run(&canary_plain(true), &t, &instances, &c.state, 30_000, &Evidence::default(), Some(c.control));
        assert_eq!(kind(&s.outcome), c.outcome, "{}: {:?}", c.name, s.outcome);
        assert_eq!(starts(&s), c.starts, "{}: {:?}", c.name, s.actions);
        assert_eq!(sorted(retired(&s)), c.retires, "{}: {:?}", c.name, s.actions);
        assert!((c.check)(&s.state), "{}: {:?}", c.name, s.state);
    }
}

#[test]
fn canary_promotes_after_the_last_step() {
    let t = target("2.0.0", 3);
    let strategy = canary_plain(true);
    // Step 1 (50 %: 3 old + 3 canary) passed: the next step is 100 %.
    let mut world =
        [group("1.0.0", Slot::Stable, 3, true, true, "old"), group("2.0.0", Slot::Canary, 3, true, true, "c")].concat();
    let state = RolloutState {
        previous: Some(previous("1.0.0", 3)),
        batch_started_ms: Some(0),
        step: 2,
        window: 2,
        watch: vec![Slot::Canary],
        ..Default::default()
    };
    let s = go(&strategy, &t, &world, &state, 100_000);
    assert_eq!(starts(&s), vec![(Slot::Stable, "2.0.0".into(), 3)], "{:?}", s.actions);
    assert!(retired(&s).is_empty(), "{:?}", s.actions);
    assert_eq!(s.state.batch_started_ms, Some(100_000));
    world.extend(group("2.0.0", Slot::Stable, 3, false, false, "n"));
    let s = go(&strategy, &t, &world, &s.state, 101_000);
    assert!(s.actions.is_empty(), "pending promotion does nothing: {:?}", s.actions);
    assert_eq!(kind(&s.outcome), "progress");
    for i in world.iter_mut().filter(|i| i.id.starts_with('n')) {
        i.ready = Some(true);
    }
    let s = go(&strategy, &t, &world, &s.state, 102_000);
    assert_eq!(sorted(served(&s)), vec!["n0", "n1", "n2"]);
    assert!(retired(&s).is_empty(), "old retired before the new stable serves: {:?}", s.actions);
    for i in world.iter_mut().filter(|i| i.id.starts_with('n')) {
        i.serving = true;
    }
    let s = go(&strategy, &t, &world, &s.state, 103_000);
    assert_eq!(sorted(retired(&s)), vec!["c0", "c1", "c2", "old0", "old1", "old2"]);
    assert_eq!(kind(&s.outcome), "progress");
    world.retain(|i| i.id.starts_with('n'));
    let s = go(&strategy, &t, &world, &s.state, 104_000);
    assert!(s.actions.is_empty(), "{:?}", s.actions);
    assert_eq!(s.outcome, Outcome::Converged);
}

#[test]
fn canary_promotion_not_ready_rolls_back() {
    let t = target("2.0.0", 3);
    let world = [
        group("1.0.0", Slot::Stable, 3, true, true, "old"),
        group("2.0.0", Slot::Canary, 1, true, true, "c"),
        group("2.0.0", Slot::Stable, 3, false, false, "n"),
    ]
    .concat();
    let state = RolloutState {
        previous: Some(previous("1.0.0", 3)),
        batch_started_ms: Some(0),
        promoted: true,
        ..Default::default()
    };
    let within = go(&canary_plain(true), &t, &world, &state, 10_000);
    assert_eq!(kind(&within.outcome), "progress");
    let s = go(&canary_plain(true), &t, &world, &state, 10_001);
    assert!(matches!(&s.outcome, Outcome::RolledBack { reason } if reason.contains("not ready")), "{:?}", s.outcome);
    let r = retired(&s);
    assert!(!r.iter().any(|id| id.starts_with("old")), "{:?}", s.actions);
    for id in ["c0", "n0", "n1", "n2"] {
        assert!(r.contains(&id), "{id} stays: {:?}", s.actions);
    }
}

#[test]
fn canary_restart_resumes_at_the_step_its_instances_show() {
    let t = target("2.0.0", 3);
    // (step k, stable instances incl. surge, canary instances) of `canary_surge`.
    for (k, stable, canaries) in [(0usize, 4usize, 1usize), (1, 3, 2), (2, 4, 6)] {
        let world = [
            group("1.0.0", Slot::Stable, stable, true, true, "old"),
            group("2.0.0", Slot::Canary, canaries, true, true, "c"),
        ]
        .concat();
        let s = go(&canary_surge(), &t, &world, &RolloutState::default(), 50_000);
        assert_eq!(s.state.step, k, "step {k}: {:?}", s.state);
        assert!(s.actions.is_empty(), "step {k}: the layout is already right: {:?}", s.actions);
        assert_eq!(
            (s.state.window, s.state.watch.clone(), s.state.step_started_ms),
            (1, vec![Slot::Canary], Some(50_000)),
            "step {k}"
        );
        assert_eq!(s.state.previous, Some(previous("1.0.0", 3)), "step {k}: surge is not the previous replica count");
        assert_eq!(kind(&s.outcome), "progress");
    }
}

#[test]
fn canary_never_ready_rolls_back_after_the_health_check_timeout() {
    let t = target("2.0.0", 3);
    let world =
        [group("1.0.0", Slot::Stable, 3, true, true, "old"), group("2.0.0", Slot::Canary, 1, false, false, "c")]
            .concat();
    let state = RolloutState { previous: Some(previous("1.0.0", 3)), batch_started_ms: Some(0), ..Default::default() };
    let within = go(&canary_plain(true), &t, &world, &state, 10_000);
    assert_eq!(kind(&within.outcome), "progress");
    assert!(within.actions.is_empty(), "{:?}", within.actions);
    let s = go(&canary_plain(true), &t, &world, &state, 10_001);
    assert_eq!(retired(&s), vec!["c0"]);
    assert!(starts(&s).is_empty() && served(&s).is_empty());
    assert!(
        matches!(&s.outcome, Outcome::RolledBack { reason } if reason == "canary 2.0.0 not ready after 10s"),
        "{:?}",
        s.outcome
    );
    // Without autoRollback as well: an instance that never starts is not a matter of opinion.
    let s = go(&canary_plain(false), &t, &world, &state, 10_001);
    assert_eq!(kind(&s.outcome), "rolledBack", "{:?}", s.outcome);
}

#[test]
fn canary_rollback_retires_each_instance_once() {
    let t = target("2.0.0", 3);
    let state = RolloutState { previous: Some(previous("1.0.0", 3)), batch_started_ms: Some(0), ..Default::default() };
    // Step 0 of steps [40, 100] wants 2 canary instances; one serves, one never gets ready.
    let strategy = canary(vec![40.0, 100.0], 0, 60, true);
    let world = [
        group("1.0.0", Slot::Stable, 3, true, true, "old"),
        vec![inst("2.0.0", Slot::Canary, true, true, "c0"), inst("2.0.0", Slot::Canary, false, false, "c1")],
    ]
    .concat();
    let s = go(&strategy, &t, &world, &state, 10_001);
    assert_eq!(kind(&s.outcome), "rolledBack", "{:?}", s.outcome);
    assert_no_duplicates(&s, "canary timeout");
    // Promotion whose new stable instances never get ready.
    let world = [
        group("1.0.0", Slot::Stable, 3, true, true, "old"),
        group("2.0.0", Slot::Canary, 1, true, true, "c"),
        group("2.0.0", Slot::Stable, 3, false, false, "n"),
    ]
    .concat();
    let promoted = RolloutState { promoted: true, ..state };
    let s = go(&strategy, &t, &world, &promoted, 10_001);
    assert_eq!(kind(&s.outcome), "rolledBack", "{:?}", s.outcome);
    assert_no_duplicates(&s, "promotion timeout");
}

#[test]
fn canary_first_step_is_evaluated_not_skipped() {
    let defaults =
        Canary { config: CanaryConfig { auto_rollback: true, ..Default::default() }, health_check_timeout: TIMEOUT };
    let same_count = canary(vec![20.0, 25.0, 50.0, 100.0], 1, 60, true);
    for (name, strategy, replicas) in [
        ("default steps 10..100, replicas 4", &defaults, 4u32),
        ("steps 20/25/50/100, maxSurge 1, replicas 3", &same_count, 3),
    ] {
        let t = target("2.0.0", replicas);
        let mut world = World::new(group("1.0.0", Slot::Stable, replicas as usize, true, true, "old"));
        let mut state = RolloutState::default();
        for n in 0..20u64 {
            world.probe();
            let s = go(strategy, &t, &world.instances, &state, n * 1_000);
            world.remove(&s.actions);
            world.add(&s.actions);
            state = s.state;
            if state.window == 1 {
                break;
            }
            assert_eq!(state.step, 0, "{name}: call {n} left step 0 before it was evaluated");
        }
        assert_eq!((state.window, state.step), (1, 0), "{name}: the first window must evaluate step 0");
    }
}

#[test]
fn canary_unready_stable_instance_does_not_roll_back_a_ready_canary() {
    let t = target("2.0.0", 3);
    let (mut world, state) = canary_evaluating();
    // Five minutes into the evaluation one stable instance fails a readiness probe.
    world[2].ready = Some(false);
    let s = go(&canary_plain(true), &t, &world, &state, 300_000);
    assert!(
        !matches!(s.outcome, Outcome::RolledBack { .. } | Outcome::Failed { .. }),
        "a ready, serving canary was rolled back because a stable instance is unready: {:?} {:?}",
        s.outcome,
        s.actions
    );
}

#[test]
fn canary_restart_during_promotion_does_not_reevaluate_with_the_new_version_serving() {
    let t = target("2.0.0", 3);
    // Step 1 layout of `canary_surge` (3 old + 2 canary) plus the promotion's 3 new stable
    // instances, all serving: the daemon restarted before retiring the old version.
    let world = [
        group("1.0.0", Slot::Stable, 3, true, true, "old"),
        group("2.0.0", Slot::Canary, 2, true, true, "c"),
        group("2.0.0", Slot::Stable, 3, true, true, "n"),
    ]
    .concat();
    let s = go(&canary_surge(), &t, &world, &RolloutState::default(), 50_000);
    let r = retired(&s);
    let promotion_continues = ["old0", "old1", "old2", "c0", "c1"].iter().all(|id| r.contains(id));
    let extra_new_retired = ["n0", "n1", "n2"].iter().all(|id| r.contains(id));
    assert!(
        promotion_continues || extra_new_retired,
        "5 of 8 serving instances run the new version while the canary is evaluated at step {}: {:?} {:?}",
        s.state.step,
        s.actions,
        s.outcome
    );
}

#[test]
fn canary_ready_but_unserved_at_the_deadline_is_served_not_rolled_back() {
    let t = target("2.0.0", 3);
    let world = [group("1.0.0", Slot::Stable, 3, true, true, "old"), group("2.0.0", Slot::Canary, 1, true, false, "c")]
        .concat();
    let state = RolloutState { previous: Some(previous("1.0.0", 3)), batch_started_ms: Some(0), ..Default::default() };
    let s = go(&canary_plain(true), &t, &world, &state, 10_001);
    assert_eq!(served(&s), vec!["c0"], "{:?} {:?}", s.actions, s.outcome);
    assert_eq!(kind(&s.outcome), "progress", "{:?}", s.outcome);
}

#[test]
fn canary_rollback_scale_down_retires_the_unserved_surplus() {
    let t = target("2.0.0", 3);
    // Abort while step 0 comes up: the surge instance just got ready, the canary is not
    // serving yet.
    let world = [
        group("1.0.0", Slot::Stable, 3, true, true, "old"),
        vec![inst("1.0.0", Slot::Stable, true, false, "surge")],
        group("2.0.0", Slot::Canary, 1, false, false, "c"),
    ]
    .concat();
    let state = RolloutState { previous: Some(previous("1.0.0", 3)), batch_started_ms: Some(0), ..Default::default() };
    let s = run(&canary_surge(), &t, &world, &state, 5_000, &Evidence::default(), Some(Control::Abort));
    let mut w = World::new(world.clone());
    w.remove(&s.actions);
    assert!(w.ready_serving() >= 3, "only {} ready serving while {:?} apply", w.ready_serving(), s.actions);
    assert_no_duplicates(&s, "rollback scale-down");
}

#[test]
fn canary_end_to_end_never_drops_capacity_nor_exceeds_the_step_weight() {
    let steps = [20.0, 40.0, 60.0, 100.0];
    let strategy = canary_surge();
    let t = target("2.0.0", 3);
    let mut world = World::new(group("1.0.0", Slot::Stable, 3, true, true, "old"));
    let mut state = RolloutState::default();
    let mut evaluated = Vec::new();
    // The executor steps again right after acting: well within the health-check timeout.
    for n in 0..400u64 {
        let now = n * 5_000;
        world.probe();
        let evidence =
            if state.watch.contains(&Slot::Canary) { pass(state.window, Slot::Canary) } else { Evidence::default() };
        let s = run(&strategy, &t, &world.instances, &state, now, &evidence, None);
        assert_no_duplicates(&s, &format!("call {n}"));
        world.remove(&s.actions);
        assert!(
            world.ready_serving() >= 3,
            "call {n}: only {} ready serving after removals: {:?}",
            world.ready_serving(),
            s.actions
        );
        world.add(&s.actions);
        assert!(world.ready_serving() >= 3, "call {n}: only {} ready serving", world.ready_serving());
        if s.state.window != state.window {
            evaluated.push(s.state.step);
        }
        let weight = steps[s.state.step.min(steps.len() - 1)];
        if !s.state.promoted && weight < 100.0 {
            let serving = world.serving();
            let canaries = serving.iter().filter(|i| i.slot == Slot::Canary).count();
            let share = canaries as f64 * 100.0 / serving.len() as f64;
            assert!(
                share <= weight + EPS,
                "call {n}: canary serves {share:.1} % at step {} ({weight} %)",
                s.state.step
            );
        }
        state = s.state;
        match s.outcome {
            Outcome::Converged => {
                assert_eq!(evaluated, vec![0, 1, 2], "every step below 100 % gets its own window");
                assert_eq!(world.instances.len(), 3);
                assert!(
                    world
                        .instances
                        .iter()
                        .all(|i| i.version == "2.0.0" && i.slot == Slot::Stable && i.serving && is_ready(i)),
                    "{:?}",
                    world.instances
                );
                return;
            }
            Outcome::Progress { .. } => {}
            other => panic!("call {n}: {other:?}"),
        }
    }
    panic!("the canary did not converge: {state:?}");
}

// ---------------------------------------------------------------------------------------
// Blue-green

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

const WARMING: usize = 0;
const SMOKE: usize = 1;
const SWITCH: usize = 2;

/// Regression (CI of session 1): a daemon killed between stopping and removing blue left a
/// stopped blue behind; with `keepPreviousEnvironment: false` the plan saw it as a change and
/// the strategy as converged, so every pass planned, did nothing and committed status.
#[test]
fn blue_green_stopped_leftover_is_retired_unless_the_previous_environment_is_kept() {
    let t = target("2.0.0", 2);
    let world = [vec![parked("1.0.0", Slot::Blue, "p0")], group("2.0.0", Slot::Green, 2, true, true, "n")].concat();
    let s = go(&bg(bg_config()), &t, &world, &RolloutState::default(), 0);
    assert_eq!(retired(&s), vec!["p0"]);
    let kept = bg(BlueGreenConfig { keep_previous_environment: true, ..bg_config() });
    let s = go(&kept, &t, &world, &RolloutState::default(), 0);
    assert_eq!(s.outcome, Outcome::Converged);
    assert!(s.actions.is_empty(), "{:?}", s.actions);
}

#[test]
fn blue_green_creation_converges_and_leaves_parked_instances() {
    let t = target("2.0.0", 2);
    let strategy = bg(BlueGreenConfig { keep_previous_environment: true, ..bg_config() });
    let s = go(&strategy, &t, &[parked("1.0.0", Slot::Blue, "p0")], &RolloutState::default(), 0);
    assert_eq!(starts(&s), vec![(Slot::Stable, "2.0.0".into(), 2)]);
    assert!(retired(&s).is_empty(), "{:?}", s.actions);
    let world = [vec![parked("1.0.0", Slot::Blue, "p0")], group("2.0.0", Slot::Stable, 2, true, false, "n")].concat();
    let s = go(&strategy, &t, &world, &RolloutState::default(), 0);
    assert_eq!(served(&s), vec!["n0", "n1"]);
    let world = [vec![parked("1.0.0", Slot::Blue, "p0")], group("2.0.0", Slot::Stable, 2, true, true, "n")].concat();
    let s = go(&strategy, &t, &world, &RolloutState::default(), 0);
    assert_eq!(s.outcome, Outcome::Converged);
    assert!(s.actions.is_empty(), "{:?}", s.actions);
}

#[test]
fn blue_green_green_starts_in_the_other_slot() {
    let t = target("2.0.0", 2);
    for (active, green) in [(Slot::Stable, Slot::Green), (Slot::Blue, Slot::Green), (Slot::Green, Slot::Blue)] {
        let world = group("1.0.0", active, 2, true, true, "b");
        let s = go(&bg(bg_config()), &t, &world, &RolloutState::default(), 4_000);
        assert_eq!(starts(&s), vec![(green, "2.0.0".into(), 2)], "active {active:?}");
        assert!(retired(&s).is_empty() && served(&s).is_empty() && unserved(&s).is_empty(), "{:?}", s.actions);
        assert_eq!(s.state.batch_started_ms, Some(4_000));
        assert_eq!(kind(&s.outcome), "progress");
        // Partly started: only the missing ones.
        let mut partly = world.clone();
        partly.push(inst("2.0.0", green, false, false, "g0"));
        let s = go(&bg(bg_config()), &t, &partly, &RolloutState::default(), 4_000);
        assert_eq!(starts(&s), vec![(green, "2.0.0".into(), 1)], "active {active:?}");
    }
}

#[test]
fn blue_green_unready_green_switches_back_after_the_timeout() {
    let t = target("2.0.0", 2);
    let world =
        [group("1.0.0", Slot::Stable, 2, true, true, "b"), group("2.0.0", Slot::Green, 2, false, false, "g")].concat();
    let state = RolloutState { batch_started_ms: Some(0), ..Default::default() };
    let within = go(&bg(bg_config()), &t, &world, &state, 10_000);
    assert_eq!(kind(&within.outcome), "progress");
    assert!(within.actions.is_empty(), "{:?}", within.actions);
    let s = go(&bg(bg_config()), &t, &world, &state, 10_001);
    assert_eq!(retired(&s), vec!["g0", "g1"]);
    assert!(served(&s).is_empty() && unserved(&s).is_empty(), "{:?}", s.actions);
    assert!(
        matches!(&s.outcome, Outcome::RolledBack { reason } if reason == "green 2.0.0 not ready after 10s"),
        "{:?}",
        s.outcome
    );
}

#[test]
fn blue_green_warmup_and_smoke_request_table() {
    let t = target("2.0.0", 2);
    let world =
        [group("1.0.0", Slot::Stable, 2, true, true, "b"), group("2.0.0", Slot::Green, 2, true, false, "g")].concat();
    struct Case {
        name: &'static str,
        warmup: Option<u64>,
        smoke_tests: bool,
        step_started: Option<u64>,
        now: u64,
        step: usize,
        smoke: Option<Slot>,
        window: u32,
    }
    let cases = [
        Case {
            name: "warmup starts when green is ready",
            warmup: Some(30),
            smoke_tests: true,
            step_started: None,
            now: 5_000,
            step: WARMING,
            smoke: None,
            window: 0,
        },
        Case {
            name: "warmup holds",
            warmup: Some(30),
            smoke_tests: true,
            step_started: Some(5_000),
            now: 34_999,
            step: WARMING,
            smoke: None,
            window: 0,
        },
        Case {
            name: "warmup over: smoke tests requested",
            warmup: Some(30),
            smoke_tests: true,
            step_started: Some(5_000),
            now: 35_000,
            step: SMOKE,
            smoke: Some(Slot::Green),
            window: 1,
        },
        Case {
            name: "warmup over, no smoke tests configured",
            warmup: Some(30),
            smoke_tests: false,
            step_started: Some(5_000),
            now: 35_000,
            step: SMOKE,
            smoke: None,
            window: 1,
        },
        Case {
            name: "no warmup",
            warmup: None,
            smoke_tests: true,
            step_started: None,
            now: 5_000,
            step: SMOKE,
            smoke: Some(Slot::Green),
            window: 1,
        },
    ];
    for c in cases {
        let config = BlueGreenConfig {
            warmup_period: c.warmup.map(Span::from_secs),
            smoke_tests: if c.smoke_tests { vec!["/smoke".into()] } else { vec![] },
            ..bg_config()
        };
        let state = RolloutState { batch_started_ms: Some(0), step_started_ms: c.step_started, ..Default::default() };
        let s = go(&bg(config), &t, &world, &state, c.now);
        assert!(s.actions.is_empty(), "{}: {:?}", c.name, s.actions);
        assert_eq!(kind(&s.outcome), "progress", "{}", c.name);
        assert_eq!((s.state.step, s.state.smoke, s.state.window), (c.step, c.smoke, c.window), "{}", c.name);
        if c.step == WARMING {
            assert_eq!(s.state.step_started_ms, Some(c.step_started.unwrap_or(c.now)), "{}", c.name);
        } else {
            assert_eq!(s.state.step_started_ms, None, "{}", c.name);
        }
    }
    // Smoke tests are run on the new slot: Blue when green-slot instances serve.
    let other =
        [group("1.0.0", Slot::Green, 2, true, true, "b"), group("2.0.0", Slot::Blue, 2, true, false, "g")].concat();
    let s = go(&bg(bg_config()), &t, &other, &RolloutState::default(), 0);
    assert_eq!(s.state.smoke, Some(Slot::Blue));
    // Without smoke tests the smoke phase passes at once.
    let config = BlueGreenConfig { smoke_tests: vec![], ..bg_config() };
    let state = RolloutState { step: SMOKE, window: 1, ..Default::default() };
    let s = go(&bg(config), &t, &world, &state, 1_000);
    assert_eq!((s.state.step, s.state.smoke), (SWITCH, None));
    assert!(s.actions.is_empty(), "{:?}", s.actions);
}

#[test]
fn blue_green_smoke_table() {
    let t = target("2.0.0", 2);
    let world =
        [group("1.0.0", Slot::Stable, 2, true, true, "b"), group("2.0.0", Slot::Green, 2, true, false, "g")].concat();
    let state = RolloutState {
        batch_started_ms: Some(0),
        step: SMOKE,
        window: 1,
        smoke: Some(Slot::Green),
        ..Default::default()
    };
    struct Case {
        name: &'static str,
        evidence: Evidence,
        outcome: &'static str,
        step: usize,
        retires: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "no result yet",
            evidence: Evidence::default(),
            outcome: "progress",
            step: SMOKE,
            retires: vec![],
        },
        Case {
            name: "result of an older window",
            evidence: smoke(0, Ok(())),
            outcome: "progress",
            step: SMOKE,
            retires: vec![],
        },
        Case {
            name: "stale failure is ignored",
            evidence: smoke(0, Err("GET /smoke 500 on g0".into())),
            outcome: "progress",
            step: SMOKE,
            retires: vec![],
        },
        Case { name: "smoke ok", evidence: smoke(1, Ok(())), outcome: "progress", step: SWITCH, retires: vec![] },
        Case {
            name: "smoke failed",
            evidence: smoke(1, Err("GET /smoke 500 on g0".into())),
            outcome: "rolledBack",
            step: SMOKE,
            retires: vec!["g0", "g1"],
        },
    ];
    for c in cases {
        let s = run(&bg(bg_config()), &t, &world, &state, 10_000, &c.evidence, None);
        assert_eq!(kind(&s.outcome), c.outcome, "{}: {:?}", c.name, s.outcome);
        assert_eq!(s.state.step, c.step, "{}", c.name);
        assert_eq!(retired(&s), c.retires, "{}: {:?}", c.name, s.actions);
        assert!(
            served(&s).is_empty() && unserved(&s).is_empty(),
            "{}: green never serves before its smoke tests pass: {:?}",
            c.name,
            s.actions
        );
        if c.step == SWITCH {
            assert_eq!(s.state.smoke, None, "{}", c.name);
        }
        if c.outcome == "rolledBack" {
            assert_eq!(reason(&s.outcome), "smoke test failed: GET /smoke 500 on g0");
        }
    }
}

#[test]
fn blue_green_instant_switch_serves_green_before_blue_leaves() {
    let t = target("2.0.0", 2);
    let strategy = bg(bg_config());
    let mut world =
        [group("1.0.0", Slot::Stable, 2, true, true, "b"), group("2.0.0", Slot::Green, 2, true, false, "g")].concat();
    let state = RolloutState { batch_started_ms: Some(0), step: SWITCH, window: 1, ..Default::default() };
    let s = go(&strategy, &t, &world, &state, 10_000);
    assert_eq!(served(&s), vec!["g0", "g1"]);
    assert!(
        unserved(&s).is_empty() && retired(&s).is_empty(),
        "blue left in the same step green joined: {:?}",
        s.actions
    );
    for i in world.iter_mut().filter(|i| i.id.starts_with('g')) {
        i.serving = true;
    }
    let s = go(&strategy, &t, &world, &s.state, 11_000);
    assert_eq!(unserved(&s), vec!["b0", "b1"]);
    assert!(served(&s).is_empty() && retired(&s).is_empty(), "{:?}", s.actions);
    for i in world.iter_mut().filter(|i| i.id.starts_with('b')) {
        i.serving = false;
    }
    // Monitoring: a new window watching green.
    let s = go(&strategy, &t, &world, &s.state, 12_000);
    assert!(s.actions.is_empty(), "{:?}", s.actions);
    assert_eq!((s.state.window, s.state.watch.clone(), s.state.step_started_ms), (2, vec![Slot::Green], Some(12_000)));
    let monitoring = s.state;
    let early = run(&strategy, &t, &world, &monitoring, 71_999, &pass(2, Slot::Green), None);
    assert!(early.actions.is_empty() && kind(&early.outcome) == "progress", "{:?}", early.actions);
    let no_verdict = run(&strategy, &t, &world, &monitoring, 500_000, &Evidence::default(), None);
    assert!(no_verdict.actions.is_empty() && kind(&no_verdict.outcome) == "progress", "{:?}", no_verdict.actions);
    let stale = run(&strategy, &t, &world, &monitoring, 500_000, &pass(1, Slot::Green), None);
    assert!(stale.actions.is_empty(), "a verdict of an older window counts: {:?}", stale.actions);
    let done = run(&strategy, &t, &world, &monitoring, 72_000, &pass(2, Slot::Green), None);
    assert_eq!(retired(&done), vec!["b0", "b1"]);
    assert!(parks(&done).is_empty());
    assert_eq!(done.state.note.as_deref(), Some("ok"));
    world.retain(|i| i.id.starts_with('g'));
    let s = go(&strategy, &t, &world, &done.state, 73_000);
    assert_eq!(s.outcome, Outcome::Converged);
    assert!(s.actions.is_empty(), "{:?}", s.actions);
}

/// Green (2.0.0) took the alias, blue (1.0.0, Stable slot) is out of traffic, monitoring runs
/// in window 3 since 0.
fn bg_monitoring() -> (Vec<Instance>, RolloutState) {
    let world =
        [group("1.0.0", Slot::Stable, 2, true, false, "b"), group("2.0.0", Slot::Green, 2, true, true, "g")].concat();
    let state = RolloutState {
        batch_started_ms: Some(0),
        step: SWITCH,
        step_started_ms: Some(0),
        window: 3,
        watch: vec![Slot::Green],
        ..Default::default()
    };
    (world, state)
}

#[test]
fn blue_green_monitoring_table() {
    let t = target("2.0.0", 2);
    let (world, state) = bg_monitoring();
    struct Case {
        name: &'static str,
        now: u64,
        evidence: Evidence,
        serves: Vec<&'static str>,
        retires: Vec<&'static str>,
        reason: Option<&'static str>,
    }
    let cases = vec![
        Case {
            name: "pass before the monitoring period",
            now: 59_999,
            evidence: pass(3, Slot::Green),
            serves: vec![],
            retires: vec![],
            reason: None,
        },
        Case {
            name: "pass after the monitoring period",
            now: 60_000,
            evidence: pass(3, Slot::Green),
            serves: vec![],
            retires: vec!["b0", "b1"],
            reason: None,
        },
        Case {
            name: "fail: blue serves again first",
            now: 1_000,
            evidence: fail(3, Slot::Green),
            serves: vec!["b0", "b1"],
            retires: vec![],
            reason: Some("green at 100 %: error rate 7 %"),
        },
        Case {
            name: "fail of an older window",
            now: 1_000,
            evidence: fail(2, Slot::Green),
            serves: vec![],
            retires: vec![],
            reason: None,
        },
        Case {
            name: "inconclusive < 3 periods",
            now: 179_999,
            evidence: inconclusive(3, Slot::Green),
            serves: vec![],
            retires: vec![],
            reason: None,
        },
        Case {
            name: "inconclusive ≥ 3 periods",
            now: 180_000,
            evidence: inconclusive(3, Slot::Green),
            serves: vec!["b0", "b1"],
            retires: vec![],
            reason: Some("analysis inconclusive: 3 requests"),
        },
    ];
    for c in cases {
        let s = run(&bg(bg_config()), &t, &world, &state, c.now, &c.evidence, None);
        assert_eq!(served(&s), c.serves, "{}: {:?}", c.name, s.actions);
        assert_eq!(retired(&s), c.retires, "{}: {:?}", c.name, s.actions);
        assert!(unserved(&s).is_empty() && parks(&s).is_empty(), "{}: {:?}", c.name, s.actions);
        assert_eq!(kind(&s.outcome), "progress", "{}: {:?}", c.name, s.outcome);
        assert_eq!(s.state.rollback_reason.as_deref(), c.reason, "{}", c.name);
        assert_eq!(s.state.window, 3, "{}", c.name);
    }
}

#[test]
fn blue_green_switch_back_serves_blue_then_retires_green() {
    let t = target("2.0.0", 2);
    let (mut world, state) = bg_monitoring();
    let s = run(&bg(bg_config()), &t, &world, &state, 1_000, &fail(3, Slot::Green), None);
    assert_eq!(served(&s), vec!["b0", "b1"]);
    assert!(retired(&s).is_empty(), "green retired before blue serves: {:?}", s.actions);
    for i in world.iter_mut().filter(|i| i.id.starts_with('b')) {
        i.serving = true;
    }
    // The failure is remembered: no evidence needed any more.
    let s = go(&bg(bg_config()), &t, &world, &s.state, 2_000);
    assert_eq!(retired(&s), vec!["g0", "g1"]);
    assert!(served(&s).is_empty());
    assert!(
        matches!(&s.outcome, Outcome::RolledBack { reason } if reason == "green at 100 %: error rate 7 %"),
        "{:?}",
        s.outcome
    );
}

#[test]
fn blue_green_keep_previous_environment_parks_blue_and_retires_older_parked() {
    let t = target("2.0.0", 2);
    let strategy = bg(BlueGreenConfig { keep_previous_environment: true, ..bg_config() });
    let (mut world, state) = bg_monitoring();
    world.push(parked("0.9.0", Slot::Blue, "p0"));
    let s = run(&strategy, &t, &world, &state, 60_000, &pass(3, Slot::Green), None);
    assert_eq!(parks(&s), vec!["b0", "b1"]);
    assert_eq!(retired(&s), vec!["p0"]);
    assert!(served(&s).is_empty() && unserved(&s).is_empty(), "{:?}", s.actions);
    assert_eq!(kind(&s.outcome), "progress");
    world.retain(|i| i.id != "p0");
    for i in world.iter_mut().filter(|i| i.id.starts_with('b')) {
        i.state = RunState::Exited;
        i.ready = Some(false);
    }
    let s = go(&strategy, &t, &world, &s.state, 61_000);
    assert_eq!(s.outcome, Outcome::Converged);
    assert!(s.actions.is_empty(), "the parked environment stays: {:?}", s.actions);
}

#[test]
fn blue_green_gradual_steps() {
    let t = target("2.0.0", 4);
    let strategy = bg(BlueGreenConfig {
        switchover_type: Switchover::Gradual,
        gradual_steps: Some(vec![25.0, 50.0]),
        ..bg_config()
    });
    let mut world = World::new(
        [group("1.0.0", Slot::Stable, 4, true, true, "b"), group("2.0.0", Slot::Green, 4, true, false, "g")].concat(),
    );
    let mut state = RolloutState { batch_started_ms: Some(0), step: SWITCH, window: 1, ..Default::default() };
    let mut seen = Vec::new();
    for n in 1..100u64 {
        world.probe();
        let evidence =
            if state.watch.contains(&Slot::Green) { pass(state.window, Slot::Green) } else { Evidence::default() };
        let s = run(&strategy, &t, &world.instances, &state, n * 20_000, &evidence, None);
        assert!(served(&s).is_empty() || unserved(&s).is_empty(), "serve and unserve in one step: {:?}", s.actions);
        world.remove(&s.actions);
        assert!(!world.serving().is_empty(), "call {n}: the alias is empty");
        world.add(&s.actions);
        if s.state.window != state.window {
            let green = world.serving().iter().filter(|i| i.version == "2.0.0").count();
            let blue = world.serving().iter().filter(|i| i.version == "1.0.0").count();
            seen.push((s.state.step - SWITCH, green, blue));
        }
        state = s.state;
        if s.outcome == Outcome::Converged {
            assert_eq!(
                seen,
                vec![(0, 1, 3), (1, 2, 2), (2, 4, 0)],
                "(switch step, green serving, blue serving) per monitoring window"
            );
            assert!(world.instances.iter().all(|i| i.version == "2.0.0"));
            return;
        }
        assert_eq!(kind(&s.outcome), "progress", "{:?}", s.outcome);
    }
    panic!("gradual switch did not finish: {state:?}");
}

#[test]
fn blue_green_gradual_share_does_not_exceed_the_step_weight() {
    for replicas in [1u32, 3] {
        let t = target("2.0.0", replicas);
        let strategy = bg(BlueGreenConfig {
            switchover_type: Switchover::Gradual,
            gradual_steps: Some(vec![50.0, 100.0]),
            ..bg_config()
        });
        let mut world = World::new(
            [
                group("1.0.0", Slot::Stable, replicas as usize, true, true, "b"),
                group("2.0.0", Slot::Green, replicas as usize, true, false, "g"),
            ]
            .concat(),
        );
        let mut state = RolloutState { batch_started_ms: Some(0), step: SWITCH, window: 1, ..Default::default() };
        for n in 1..10u64 {
            let s = go(&strategy, &t, &world.instances, &state, n * 1_000);
            world.remove(&s.actions);
            world.add(&s.actions);
            let serving = world.serving();
            let green = serving.iter().filter(|i| i.version == "2.0.0").count();
            let share = green as f64 * 100.0 / serving.len() as f64;
            assert!(
                share <= 50.0 + EPS,
                "replicas {replicas}, call {n}: green serves {share:.0} % at the 50 % step ({green} of {})",
                serving.len()
            );
            state = s.state;
            if !state.watch.is_empty() {
                break; // monitoring the 50 % step
            }
        }
        assert_eq!(state.watch, vec![Slot::Green], "replicas {replicas}: never reached monitoring");
    }
}

#[test]
fn blue_green_controls() {
    let t = target("2.0.0", 2);
    // Abort while green is still warming up: green never served, blue untouched.
    let warming =
        [group("1.0.0", Slot::Stable, 2, true, true, "b"), group("2.0.0", Slot::Green, 2, true, false, "g")].concat();
    let state = RolloutState { batch_started_ms: Some(0), step_started_ms: Some(0), ..Default::default() };
    let s = run(&bg(bg_config()), &t, &warming, &state, 1_000, &Evidence::default(), Some(Control::Abort));
    assert_eq!(retired(&s), vec!["g0", "g1"]);
    assert!(served(&s).is_empty() && unserved(&s).is_empty());
    assert!(matches!(&s.outcome, Outcome::RolledBack { reason } if reason == "aborted by a person"), "{:?}", s.outcome);
    // Abort during monitoring: blue serves again first, then green goes.
    let (mut world, monitoring) = bg_monitoring();
    let s = run(&bg(bg_config()), &t, &world, &monitoring, 1_000, &Evidence::default(), Some(Control::Abort));
    assert_eq!(served(&s), vec!["b0", "b1"]);
    assert!(retired(&s).is_empty(), "{:?}", s.actions);
    for i in world.iter_mut().filter(|i| i.id.starts_with('b')) {
        i.serving = true;
    }
    let s = go(&bg(bg_config()), &t, &world, &s.state, 2_000);
    assert_eq!(retired(&s), vec!["g0", "g1"]);
    assert!(matches!(&s.outcome, Outcome::RolledBack { reason } if reason == "aborted by a person"), "{:?}", s.outcome);
    // Pause once green is ready; resume restarts the phase clock.
    let config = BlueGreenConfig { warmup_period: Some(Span::from_secs(30)), ..bg_config() };
    let s = run(&bg(config.clone()), &t, &warming, &state, 1_000, &Evidence::default(), Some(Control::Pause));
    assert!(matches!(&s.outcome, Outcome::Paused { reason } if reason == "paused by a person"), "{:?}", s.outcome);
    assert!(s.actions.is_empty());
    let resumed = run(&bg(config.clone()), &t, &warming, &s.state, 40_000, &Evidence::default(), Some(Control::Resume));
    assert_eq!(
        (resumed.state.step, resumed.state.step_started_ms, resumed.state.paused.clone()),
        (WARMING, Some(40_000), None)
    );
    // Promote skips the warmup (not the smoke tests).
    let s = run(&bg(config), &t, &warming, &state, 1_000, &Evidence::default(), Some(Control::Promote));
    assert_eq!((s.state.step, s.state.smoke, s.state.promoted), (SMOKE, Some(Slot::Green), true));
}

#[test]
fn blue_green_restart_with_green_serving_skips_the_smoke_tests() {
    let t = target("2.0.0", 2);
    let strategy = bg(BlueGreenConfig { warmup_period: Some(Span::from_secs(30)), ..bg_config() });
    let world =
        [group("1.0.0", Slot::Stable, 2, true, true, "b"), group("2.0.0", Slot::Green, 2, true, true, "g")].concat();
    let s = go(&strategy, &t, &world, &RolloutState::default(), 50_000);
    assert_eq!(s.state.step, SWITCH);
    assert_eq!(s.state.smoke, None, "smoke tests re-run on a green that already serves");
    assert_eq!(unserved(&s), vec!["b0", "b1"]);
    assert!(served(&s).is_empty() && retired(&s).is_empty(), "{:?}", s.actions);
    // Green present but not serving yet: warmup (and smoke tests) again, from the start.
    let world =
        [group("1.0.0", Slot::Stable, 2, true, true, "b"), group("2.0.0", Slot::Green, 2, true, false, "g")].concat();
    let s = go(&strategy, &t, &world, &RolloutState::default(), 50_000);
    assert_eq!((s.state.step, s.state.step_started_ms), (WARMING, Some(50_000)));
}

#[test]
fn blue_green_end_to_end_alias_never_empty() {
    for (name, config) in [
        ("instant", BlueGreenConfig { warmup_period: Some(Span::from_secs(30)), ..bg_config() }),
        (
            "gradual",
            BlueGreenConfig {
                switchover_type: Switchover::Gradual,
                gradual_steps: Some(vec![25.0, 50.0]),
                ..bg_config()
            },
        ),
        ("instant, keep previous", BlueGreenConfig { keep_previous_environment: true, ..bg_config() }),
        (
            "gradual, no smoke tests, no monitoring",
            BlueGreenConfig {
                switchover_type: Switchover::Gradual,
                smoke_tests: vec![],
                monitoring_period: None,
                keep_previous_environment: true,
                ..bg_config()
            },
        ),
    ] {
        let strategy = bg(config.clone());
        let mut world = World::new(group("1.0.0", Slot::Stable, 4, true, true, "v1-"));
        let mut now = 0;
        // Two rollouts: 1.0.0 (stable slot) → 2.0.0 (green) → 3.0.0 (blue).
        for (version, green_slot) in [("2.0.0", Slot::Green), ("3.0.0", Slot::Blue)] {
            let t = target(version, 4);
            let mut state = RolloutState::default();
            let mut smoke_seen = false;
            let mut done = false;
            for n in 0..200 {
                now += 10_000;
                world.probe();
                let mut evidence = Evidence { window: state.window, ..Default::default() };
                if state.smoke.is_some() {
                    evidence.smoke = Some(Ok(()));
                    smoke_seen = true;
                }
                for slot in &state.watch {
                    evidence.verdicts.insert(*slot, Verdict::Pass { summary: "ok".into() });
                }
                let s = run(&strategy, &t, &world.instances, &state, now, &evidence, None);
                let ctx = format!("{name}, {version}, call {n}");
                assert_no_duplicates(&s, &ctx);
                for (slot, v, _) in starts(&s) {
                    assert_eq!((slot, v.as_str()), (green_slot, version), "{ctx}");
                }
                world.remove(&s.actions);
                assert!(!world.serving().is_empty(), "{ctx}: the alias is empty after {:?}", s.actions);
                world.add(&s.actions);
                let green_serving = world.serving().iter().any(|i| i.version == version);
                if green_serving {
                    assert!(s.state.step >= SWITCH, "{ctx}: green serves before its smoke tests");
                    assert!(smoke_seen || config.smoke_tests.is_empty(), "{ctx}: smoke tests never ran");
                }
                state = s.state;
                match s.outcome {
                    Outcome::Converged => {
                        done = true;
                        break;
                    }
                    Outcome::Progress { .. } => {}
                    other => panic!("{ctx}: {other:?}"),
                }
            }
            assert!(done, "{name}: {version} did not converge");
            let running: Vec<&Instance> = world.instances.iter().filter(|i| i.is_running()).collect();
            assert!(
                running.len() == 4 && running.iter().all(|i| i.version == version && i.serving && i.slot == green_slot),
                "{name}: {:?}",
                world.instances
            );
            let kept: BTreeSet<&str> =
                world.instances.iter().filter(|i| !i.is_running()).map(|i| i.version.as_str()).collect();
            if config.keep_previous_environment {
                let prev = if version == "2.0.0" { "1.0.0" } else { "2.0.0" };
                assert_eq!(kept, BTreeSet::from([prev]), "{name}: exactly the previous environment is parked");
            } else {
                assert!(kept.is_empty(), "{name}: {kept:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A/B testing

fn ab(a: f64, b: f64, auto_promote: bool) -> AbTest {
    AbTest {
        config: AbConfig {
            variant_a: None,
            variant_b: None,
            traffic_split: TrafficSplit { a, b },
            test_duration: Some(Span::from_secs(60)),
            decision_metrics: vec!["errorRate".into(), "latency".into()],
            auto_promote,
            winner_threshold: 0.0,
        },
        health_check_timeout: TIMEOUT,
    }
}

#[test]
fn ab_b_instances_table() {
    // (A instances, split A/B) → B instances
    let cases: &[(u32, f64, f64, u32)] = &[
        (4, 50.0, 50.0, 4),
        (4, 75.0, 25.0, 1),
        (4, 25.0, 75.0, 12),
        (5, 60.0, 40.0, 3),
        (10, 80.0, 20.0, 3), // 2.5 rounds up: 23 % is nearer 20 % than 16.7 %
        (3, 90.0, 10.0, 1),  // at least one
        (2, 70.0, 30.0, 1),
        (1, 50.0, 50.0, 1),
        (0, 50.0, 50.0, 1),
        (3, 0.0, 100.0, 3),
        (0, 0.0, 100.0, 1),
    ];
    for &(a, sa, sb, expected) in cases {
        assert_eq!(b_instances(a, &TrafficSplit { a: sa, b: sb }), expected, "b_instances({a}, {sa}/{sb})");
    }
}

#[test]
fn ab_creation_converges() {
    let t = target("2.0.0", 2);
    let s = go(&ab(50.0, 50.0, false), &t, &[], &RolloutState::default(), 0);
    assert_eq!(starts(&s), vec![(Slot::Stable, "2.0.0".into(), 2)]);
    let world =
        [group("2.0.0", Slot::Stable, 2, true, true, "n"), group("2.0.0", Slot::B, 1, true, true, "b")].concat();
    let s = go(&ab(50.0, 50.0, false), &t, &world, &RolloutState::default(), 0);
    assert_eq!(retired(&s), vec!["b0"]);
    assert_eq!(s.outcome, Outcome::Converged);
}

#[test]
fn ab_starts_b_in_slot_b() {
    let t = target("2.0.0", 4);
    let a = group("1.0.0", Slot::Stable, 4, true, true, "a");
    for (sa, sb, count) in [(50.0, 50.0, 4), (75.0, 25.0, 1), (80.0, 20.0, 1)] {
        let s = go(&ab(sa, sb, false), &t, &a, &RolloutState::default(), 3_000);
        assert_eq!(starts(&s), vec![(Slot::B, "2.0.0".into(), count)], "{sa}/{sb}");
        assert!(retired(&s).is_empty() && served(&s).is_empty());
        assert_eq!(s.state.batch_started_ms, Some(3_000));
        assert_eq!(kind(&s.outcome), "progress");
    }
    // A leftover B of another version goes; a missing one is topped up.
    let world =
        [a.clone(), vec![inst("1.5.0", Slot::B, true, true, "old-b"), inst("2.0.0", Slot::B, true, true, "b0")]]
            .concat();
    let s = go(&ab(50.0, 50.0, false), &t, &world, &RolloutState::default(), 3_000);
    assert_eq!(retired(&s), vec!["old-b"]);
    assert_eq!(starts(&s), vec![(Slot::B, "2.0.0".into(), 3)]);
}

#[test]
fn ab_b_joins_traffic_then_the_window_watches_a_and_b() {
    let t = target("2.0.0", 2);
    let state = RolloutState { batch_started_ms: Some(0), ..Default::default() };
    let joining =
        [group("1.0.0", Slot::Stable, 2, true, true, "a"), group("2.0.0", Slot::B, 2, true, false, "b")].concat();
    let s = go(&ab(50.0, 50.0, false), &t, &joining, &state, 5_000);
    assert_eq!(served(&s), vec!["b0", "b1"]);
    assert_eq!((s.state.window, s.state.step_started_ms), (0, None));
    let pending =
        [group("1.0.0", Slot::Stable, 2, true, true, "a"), group("2.0.0", Slot::B, 2, false, false, "b")].concat();
    let s = go(&ab(50.0, 50.0, false), &t, &pending, &state, 5_000);
    assert!(s.actions.is_empty());
    assert_eq!(s.state.window, 0);
    for a_slot in [Slot::Stable, Slot::Green] {
        let world = [group("1.0.0", a_slot, 2, true, true, "a"), group("2.0.0", Slot::B, 2, true, true, "b")].concat();
        let s = go(&ab(50.0, 50.0, false), &t, &world, &state, 5_000);
        assert!(s.actions.is_empty(), "{:?}", s.actions);
        assert_eq!(
            (s.state.window, s.state.watch.clone(), s.state.step_started_ms),
            (1, vec![a_slot, Slot::B], Some(5_000))
        );
        assert!(reason(&s.outcome).contains("B takes 50 %"), "{:?}", s.outcome);
    }
}

#[test]
fn ab_b_never_ready_keeps_a() {
    let t = target("2.0.0", 2);
    let world =
        [group("1.0.0", Slot::Stable, 2, true, true, "a"), group("2.0.0", Slot::B, 2, false, false, "b")].concat();
    let state = RolloutState { batch_started_ms: Some(0), ..Default::default() };
    let within = go(&ab(50.0, 50.0, true), &t, &world, &state, 10_000);
    assert_eq!(kind(&within.outcome), "progress");
    let s = go(&ab(50.0, 50.0, true), &t, &world, &state, 10_001);
    assert_eq!(retired(&s), vec!["b0", "b1"]);
    assert!(
        matches!(&s.outcome, Outcome::RolledBack { reason } if reason == "variant B 2.0.0 not ready after 10s"),
        "{:?}",
        s.outcome
    );
}

/// A (1.0.0, 2 instances) and B (2.0.0, 2 instances) serve; the test runs since 0 in window 1.
fn ab_testing() -> (Vec<Instance>, RolloutState) {
    let world =
        [group("1.0.0", Slot::Stable, 2, true, true, "a"), group("2.0.0", Slot::B, 2, true, true, "b")].concat();
    let state = RolloutState {
        batch_started_ms: Some(0),
        step_started_ms: Some(0),
        window: 1,
        watch: vec![Slot::Stable, Slot::B],
        ..Default::default()
    };
    (world, state)
}

#[test]
fn ab_decision_table() {
    let t = target("2.0.0", 2);
    let (world, state) = ab_testing();
    struct Case {
        name: &'static str,
        auto_promote: bool,
        now: u64,
        evidence: Evidence,
        outcome: &'static str,
        reason: &'static str,
        retires: Vec<&'static str>,
        promoted: bool,
    }
    let cases = vec![
        Case {
            name: "winner before testDuration",
            auto_promote: true,
            now: 59_999,
            evidence: ab_result(1, Some(Variant::B), false),
            outcome: "progress",
            reason: "A/B test",
            retires: vec![],
            promoted: false,
        },
        Case {
            name: "A winning before testDuration",
            auto_promote: true,
            now: 59_999,
            evidence: ab_result(1, Some(Variant::A), false),
            outcome: "progress",
            reason: "A/B test",
            retires: vec![],
            promoted: false,
        },
        Case {
            name: "no result after testDuration",
            auto_promote: true,
            now: 60_000,
            evidence: Evidence::default(),
            outcome: "progress",
            reason: "A/B test",
            retires: vec![],
            promoted: false,
        },
        Case {
            name: "result of an older window",
            auto_promote: true,
            now: 60_000,
            evidence: ab_result(0, Some(Variant::B), false),
            outcome: "progress",
            reason: "A/B test",
            retires: vec![],
            promoted: false,
        },
        Case {
            name: "B wins, autoPromote",
            auto_promote: true,
            now: 60_000,
            evidence: ab_result(1, Some(Variant::B), false),
            outcome: "progress",
            reason: "B won",
            retires: vec![],
            promoted: true,
        },
        Case {
            name: "B wins, no autoPromote",
            auto_promote: false,
            now: 60_000,
            evidence: ab_result(1, Some(Variant::B), false),
            outcome: "paused",
            reason: "B won (errorRate 0.1 % vs 0.4 %); promote or abort",
            retires: vec![],
            promoted: false,
        },
        Case {
            name: "A wins",
            auto_promote: true,
            now: 60_000,
            evidence: ab_result(1, Some(Variant::A), false),
            outcome: "rolledBack",
            reason: "A won: errorRate 0.1 % vs 0.4 %",
            retires: vec!["b0", "b1"],
            promoted: false,
        },
        Case {
            name: "no winner",
            auto_promote: true,
            now: 60_000,
            evidence: ab_result(1, None, false),
            outcome: "rolledBack",
            reason: "no clear winner, A stays",
            retires: vec!["b0", "b1"],
            promoted: false,
        },
        Case {
            name: "inconclusive < 3 durations",
            auto_promote: true,
            now: 179_999,
            evidence: ab_result(1, None, true),
            outcome: "progress",
            reason: "A/B test",
            retires: vec![],
            promoted: false,
        },
        Case {
            name: "inconclusive with a winner < 3 durations",
            auto_promote: true,
            now: 60_000,
            evidence: ab_result(1, Some(Variant::B), true),
            outcome: "progress",
            reason: "A/B test",
            retires: vec![],
            promoted: false,
        },
        Case {
            name: "inconclusive ≥ 3 durations",
            auto_promote: true,
            now: 180_000,
            evidence: ab_result(1, None, true),
            outcome: "rolledBack",
            reason: "A/B inconclusive, A stays",
            retires: vec!["b0", "b1"],
            promoted: false,
        },
    ];
    for c in cases {
        let s = run(&ab(50.0, 50.0, c.auto_promote), &t, &world, &state, c.now, &c.evidence, None);
        assert_eq!(kind(&s.outcome), c.outcome, "{}: {:?}", c.name, s.outcome);
        assert!(reason(&s.outcome).starts_with(c.reason), "{}: {:?}", c.name, s.outcome);
        assert_eq!(retired(&s), c.retires, "{}: {:?}", c.name, s.actions);
        assert!(starts(&s).is_empty() && served(&s).is_empty(), "{}: {:?}", c.name, s.actions);
        assert!(!retired(&s).iter().any(|id| id.starts_with('a')), "{}: A retired", c.name);
        assert_eq!(s.state.promoted, c.promoted, "{}", c.name);
        match c.outcome {
            "paused" => assert_eq!(s.state.paused.as_deref(), Some(reason(&s.outcome)), "{}", c.name),
            "rolledBack" => assert_eq!(s.state.rollback_reason.as_deref(), Some(reason(&s.outcome)), "{}", c.name),
            _ => {}
        }
        if c.promoted {
            assert_eq!(s.state.note.as_deref(), Some("B won: errorRate 0.1 % vs 0.4 %"));
        }
    }
}

#[test]
fn ab_promotion_by_a_person_and_automatically() {
    let t = target("2.0.0", 2);
    let (world, state) = ab_testing();
    // B won without autoPromote: paused until a person promotes.
    let paused = run(&ab(50.0, 50.0, false), &t, &world, &state, 60_000, &ab_result(1, Some(Variant::B), false), None);
    assert_eq!(kind(&paused.outcome), "paused");
    let still = go(&ab(50.0, 50.0, false), &t, &world, &paused.state, 70_000);
    assert_eq!(kind(&still.outcome), "paused");
    assert!(still.actions.is_empty());
    let promoted =
        run(&ab(50.0, 50.0, false), &t, &world, &paused.state, 80_000, &Evidence::default(), Some(Control::Promote));
    assert!(promoted.state.promoted && promoted.state.paused.is_none());
    assert_eq!(promoted.state.note.as_deref(), Some("B promoted by a person"));
    // Automatic: the step after the decision starts the promotion.
    let auto = run(&ab(50.0, 50.0, true), &t, &world, &state, 60_000, &ab_result(1, Some(Variant::B), false), None);
    for (name, strategy, from) in [
        ("by a person", ab(50.0, 50.0, false), paused.state.clone()),
        ("autoPromote", ab(50.0, 50.0, true), auto.state.clone()),
    ] {
        let control = (name == "by a person").then_some(Control::Promote);
        let mut world = world.clone();
        let s = run(&strategy, &t, &world, &from, 80_000, &Evidence::default(), control);
        assert_eq!(starts(&s), vec![(Slot::Stable, "2.0.0".into(), 2)], "{name}");
        assert!(retired(&s).is_empty(), "{name}: {:?}", s.actions);
        world.extend(group("2.0.0", Slot::Stable, 2, false, false, "n"));
        let s = go(&strategy, &t, &world, &s.state, 81_000);
        assert!(s.actions.is_empty(), "{name}: {:?}", s.actions);
        for i in world.iter_mut().filter(|i| i.id.starts_with('n')) {
            i.ready = Some(true);
        }
        let s = go(&strategy, &t, &world, &s.state, 82_000);
        assert_eq!(served(&s), vec!["n0", "n1"], "{name}");
        assert!(retired(&s).is_empty(), "{name}: {:?}", s.actions);
        for i in world.iter_mut().filter(|i| i.id.starts_with('n')) {
            i.serving = true;
        }
        let s = go(&strategy, &t, &world, &s.state, 83_000);
        assert_eq!(sorted(retired(&s)), vec!["a0", "a1", "b0", "b1"], "{name}");
        world.retain(|i| i.id.starts_with('n'));
        let s = go(&strategy, &t, &world, &s.state, 84_000);
        assert_eq!(s.outcome, Outcome::Converged, "{name}");
        assert!(s.actions.is_empty(), "{name}: {:?}", s.actions);
    }
}

#[test]
fn ab_controls() {
    let t = target("2.0.0", 2);
    let (world, state) = ab_testing();
    let s = run(&ab(50.0, 50.0, true), &t, &world, &state, 10_000, &Evidence::default(), Some(Control::Abort));
    assert_eq!(retired(&s), vec!["b0", "b1"]);
    assert!(
        matches!(&s.outcome, Outcome::RolledBack { reason } if reason.starts_with("aborted by a person")),
        "{:?}",
        s.outcome
    );
    // Abort before B even started.
    let a = group("1.0.0", Slot::Stable, 2, true, true, "a");
    let s = run(&ab(50.0, 50.0, true), &t, &a, &RolloutState::default(), 0, &Evidence::default(), Some(Control::Abort));
    assert!(s.actions.is_empty() && kind(&s.outcome) == "rolledBack");
    // Pause and resume: a new window.
    let s = run(&ab(50.0, 50.0, true), &t, &world, &state, 10_000, &Evidence::default(), Some(Control::Pause));
    assert!(matches!(&s.outcome, Outcome::Paused { reason } if reason == "paused by a person"), "{:?}", s.outcome);
    let s = run(&ab(50.0, 50.0, true), &t, &world, &s.state, 20_000, &Evidence::default(), Some(Control::Resume));
    assert_eq!((s.state.paused.clone(), s.state.window, s.state.step_started_ms), (None, 2, Some(20_000)));
    // A remembered rollback reason keeps A on later steps.
    let undone = RolloutState { rollback_reason: Some("A won: x".into()), ..state };
    let s = go(&ab(50.0, 50.0, true), &t, &world, &undone, 30_000);
    assert_eq!(retired(&s), vec!["b0", "b1"]);
    assert!(matches!(&s.outcome, Outcome::RolledBack { reason } if reason == "A won: x"));
}

#[test]
fn ab_ready_but_unserved_b_at_the_deadline_is_served() {
    let t = target("2.0.0", 2);
    let world =
        [group("1.0.0", Slot::Stable, 2, true, true, "a"), group("2.0.0", Slot::B, 2, true, false, "b")].concat();
    let state = RolloutState { batch_started_ms: Some(0), ..Default::default() };
    let s = go(&ab(50.0, 50.0, true), &t, &world, &state, 10_001);
    assert_eq!(served(&s), vec!["b0", "b1"], "{:?} {:?}", s.actions, s.outcome);
    assert_eq!(kind(&s.outcome), "progress", "{:?}", s.outcome);
}

#[test]
fn ab_promotion_not_ready_keeps_a() {
    let t = target("2.0.0", 2);
    let (mut world, mut state) = ab_testing();
    state.promoted = true;
    world.extend(group("2.0.0", Slot::Stable, 2, false, false, "n"));
    let within = go(&ab(50.0, 50.0, true), &t, &world, &state, 10_000);
    assert_eq!(kind(&within.outcome), "progress");
    let s = go(&ab(50.0, 50.0, true), &t, &world, &state, 10_001);
    let r = retired(&s);
    assert!(
        !r.contains(&"a0") && !r.contains(&"a1"),
        "A (the version that serves) retired: {:?} {:?}",
        s.actions,
        s.outcome
    );
    assert!(r.contains(&"n0") && r.contains(&"n1"), "{:?}", s.actions);
    assert_eq!(kind(&s.outcome), "rolledBack", "{:?}", s.outcome);
}

#[test]
fn ab_abort_during_promotion_retires_the_promoted_instances() {
    let t = target("2.0.0", 2);
    let (mut world, mut state) = ab_testing();
    state.promoted = true;
    world.push(inst("2.0.0", Slot::Stable, true, true, "n0"));
    world.push(inst("2.0.0", Slot::Stable, false, false, "n1"));
    let s = run(&ab(50.0, 50.0, true), &t, &world, &state, 5_000, &Evidence::default(), Some(Control::Abort));
    assert_eq!(kind(&s.outcome), "rolledBack", "{:?}", s.outcome);
    let r = retired(&s);
    assert!(!r.contains(&"a0") && !r.contains(&"a1"), "{:?}", s.actions);
    for id in ["b0", "b1", "n0", "n1"] {
        assert!(r.contains(&id), "{id} keeps running after 'A stays': {:?}", s.actions);
    }
}

/// A progressive strategy creating a plugin whose instances never become ready fails after
/// the health-check timeout instead of holding the pass forever (seen on a loaded cluster).
#[test]
fn progressive_creation_that_never_becomes_ready_fails_after_the_timeout() {
    let t = target("2.0.0", 2);
    let strategy = bg(bg_config());
    let world = group("2.0.0", Slot::Stable, 2, false, false, "n");
    let first = go(&strategy, &t, &world, &RolloutState::default(), 1_000);
    assert_eq!(kind(&first.outcome), "progress");
    assert_eq!(first.state.settle_started_ms, Some(1_000));
    let later = go(&strategy, &t, &world, &first.state, 1_000 + TIMEOUT.as_millis() as u64 + 1);
    match later.outcome {
        Outcome::Failed { reason } => assert!(reason.contains("0 of 2"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(later.actions.is_empty(), "what runs stays: {:?}", later.actions);
}
