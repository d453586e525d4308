//! Table tests of the pure strategies: each case is (instances, state, now) → actions, outcome.

use super::direct::Direct;
use super::rolling::Rolling;
use super::*;
use crate::model::policy::{BatchSize, RollingConfig};
use crate::model::Span;
pub(crate) use crate::plan::fixtures::{inst, spec};
use crate::plan::SlotTarget;

fn target(version: &str, replicas: u32) -> SlotTarget {
    let spec = spec(version);
    SlotTarget { slot: Slot::Stable, hash: spec.hash(), spec, replicas }
}

/// `n` instances of `version`: ready and serving as told.
fn instances(version: &str, n: usize, ready: bool, serving: bool, tag: &str) -> Vec<Instance> {
    (0..n).map(|i| inst(version, Slot::Stable, ready, serving, &format!("{tag}{i}"))).collect()
}

/// One running instance of `version` in `slot`.
fn rolling(batch: BatchSize, parallel: u32, wait_secs: u64) -> Rolling {
    Rolling {
        config: RollingConfig {
            batch_size: batch,
            wait_between_batches: Span::from_secs(wait_secs),
            health_check_timeout: Span::from_secs(10),
            max_parallel_batches: parallel,
        },
    }
}

fn step(s: &dyn SlotStrategy, t: &SlotTarget, i: &[Instance], state: &RolloutState, now_ms: u64) -> Step {
    s.step(&StepInput { target: t, instances: i, state, now_ms, evidence: &Evidence::default(), control: None })
}

fn starts(step: &Step) -> u32 {
    step.actions.iter().map(|a| if let Action::Start { count, .. } = a { *count } else { 0 }).sum()
}

fn retired(step: &Step) -> Vec<&str> {
    step.actions
        .iter()
        .filter_map(|a| if let Action::Retire { instance } = a { Some(instance.as_str()) } else { None })
        .collect()
}

fn served(step: &Step) -> Vec<&str> {
    step.actions
        .iter()
        .filter_map(|a| if let Action::Serve { instance } = a { Some(instance.as_str()) } else { None })
        .collect()
}

#[test]
fn rolling_table() {
    struct Case {
        name: &'static str,
        strategy: Rolling,
        replicas: u32,
        old: usize,
        new_ready_serving: usize,
        new_ready_unserved: usize,
        new_pending: usize,
        starts: u32,
        retires: usize,
        serves: usize,
        converged: bool,
    }
    let cases = [
        Case {
            name: "creation starts all at once",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 3,
            old: 0,
            new_ready_serving: 0,
            new_ready_unserved: 0,
            new_pending: 0,
            starts: 3,
            retires: 0,
            serves: 0,
            converged: false,
        },
        Case {
            name: "creation serves ready instances",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 2,
            old: 0,
            new_ready_serving: 0,
            new_ready_unserved: 2,
            new_pending: 0,
            starts: 0,
            retires: 0,
            serves: 2,
            converged: false,
        },
        Case {
            name: "creation done",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 2,
            old: 0,
            new_ready_serving: 2,
            new_ready_unserved: 0,
            new_pending: 0,
            starts: 0,
            retires: 0,
            serves: 0,
            converged: true,
        },
        Case {
            name: "update starts one batch first",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 3,
            old: 3,
            new_ready_serving: 0,
            new_ready_unserved: 0,
            new_pending: 0,
            starts: 1,
            retires: 0,
            serves: 0,
            converged: false,
        },
        Case {
            name: "percent batch",
            strategy: rolling(BatchSize::Percent(50), 1, 0),
            replicas: 4,
            old: 4,
            new_ready_serving: 0,
            new_ready_unserved: 0,
            new_pending: 0,
            starts: 2,
            retires: 0,
            serves: 0,
            converged: false,
        },
        Case {
            name: "parallel batches",
            strategy: rolling(BatchSize::Count(1), 2, 0),
            replicas: 4,
            old: 4,
            new_ready_serving: 0,
            new_ready_unserved: 0,
            new_pending: 0,
            starts: 2,
            retires: 0,
            serves: 0,
            converged: false,
        },
        Case {
            name: "pending batch keeps every old instance",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 3,
            old: 3,
            new_ready_serving: 0,
            new_ready_unserved: 0,
            new_pending: 1,
            starts: 0,
            retires: 0,
            serves: 0,
            converged: false,
        },
        Case {
            name: "ready batch serves, then as many old retire",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 3,
            old: 3,
            new_ready_serving: 1,
            new_ready_unserved: 0,
            new_pending: 0,
            starts: 1,
            retires: 1,
            serves: 0,
            converged: false,
        },
        Case {
            name: "ready unserved new gets traffic but old stays until it serves",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 3,
            old: 3,
            new_ready_serving: 0,
            new_ready_unserved: 1,
            new_pending: 0,
            starts: 0,
            retires: 0,
            serves: 1,
            converged: false,
        },
        Case {
            name: "last old instance goes",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 3,
            old: 1,
            new_ready_serving: 3,
            new_ready_unserved: 0,
            new_pending: 0,
            starts: 0,
            retires: 1,
            serves: 0,
            converged: true,
        },
        Case {
            name: "scale down",
            strategy: rolling(BatchSize::Count(1), 1, 0),
            replicas: 1,
            old: 0,
            new_ready_serving: 3,
            new_ready_unserved: 0,
            new_pending: 0,
            starts: 0,
            retires: 2,
            serves: 0,
            converged: false,
        },
    ];
    for c in cases {
        let t = target("2.0.0", c.replicas);
        let mut all = instances("1.0.0", c.old, true, true, "old");
        all.extend(instances("2.0.0", c.new_ready_serving, true, true, "rs"));
        all.extend(instances("2.0.0", c.new_ready_unserved, true, false, "ru"));
        all.extend(instances("2.0.0", c.new_pending, false, false, "np"));
        let state = RolloutState { batch_started_ms: Some(0), ..Default::default() };
        let s = step(&c.strategy, &t, &all, &state, 1_000);
        assert_eq!(starts(&s), c.starts, "{}: starts {:?}", c.name, s.actions);
        assert_eq!(retired(&s).len(), c.retires, "{}: retires {:?}", c.name, s.actions);
        if c.old > 0 {
            assert!(retired(&s).iter().all(|id| id.starts_with("old")), "{}: retired new instances", c.name);
        }
        assert_eq!(served(&s).len(), c.serves, "{}: serves {:?}", c.name, s.actions);
        assert_eq!(s.outcome == Outcome::Converged, c.converged, "{}: {:?}", c.name, s.outcome);
    }
}

#[test]
fn rolling_never_has_fewer_ready_serving_than_before() {
    // Walk a whole rollout by simulating the executor: every start becomes ready next step.
    let strategy = rolling(BatchSize::Count(2), 1, 0);
    let t = target("2.0.0", 5);
    let mut world = instances("1.0.0", 5, true, true, "old");
    let mut state = RolloutState::default();
    let mut next = 0;
    for now in 0..50u64 {
        let s = step(&strategy, &t, &world, &state, now * 100);
        for a in &s.actions {
            match a {
                Action::Start { count, .. } => {
                    for _ in 0..*count {
                        let mut i = instances("2.0.0", 1, true, false, "new").remove(0);
                        i.id = format!("new{next}");
                        next += 1;
                        world.push(i);
                    }
                }
                Action::Serve { instance } => {
                    world.iter_mut().filter(|i| &i.id == instance).for_each(|i| i.serving = true)
                }
                Action::Retire { instance } => world.retain(|i| &i.id != instance),
                other => panic!("rolling never does {other:?}"),
            }
        }
        let ready_serving = world.iter().filter(|i| i.serving && i.ready == Some(true)).count();
        assert!(ready_serving >= 5, "step {now}: only {ready_serving} serving: {world:?}");
        state = s.state;
        if s.outcome == Outcome::Converged {
            assert!(world.iter().all(|i| i.version == "2.0.0") && world.len() == 5);
            return;
        }
    }
    panic!("rollout did not converge");
}

#[test]
fn rolling_waits_between_batches() {
    let strategy = rolling(BatchSize::Count(1), 1, 30);
    let t = target("2.0.0", 2);
    let mut all = instances("1.0.0", 2, true, true, "old");
    all.extend(instances("2.0.0", 1, true, true, "new"));
    let s = step(&strategy, &t, &all, &RolloutState::default(), 1_000);
    assert_eq!(retired(&s), vec!["old0"]);
    assert_eq!(s.state.next_batch_ms, Some(31_000));
    all.retain(|i| i.id != "old0");
    let early = step(&strategy, &t, &all, &s.state, 20_000);
    assert_eq!(starts(&early), 0, "{:?}", early.actions);
    let later = step(&strategy, &t, &all, &s.state, 31_000);
    assert_eq!(starts(&later), 1);
}

#[test]
fn rolling_times_out_and_rolls_back() {
    let strategy = rolling(BatchSize::Count(1), 1, 0);
    let t = target("2.0.0", 2);
    let mut all = instances("1.0.0", 2, true, true, "old");
    all.extend(instances("2.0.0", 1, false, false, "bad"));
    let state = RolloutState { batch_started_ms: Some(0), ..Default::default() };
    let within = step(&strategy, &t, &all, &state, 9_000);
    assert!(matches!(within.outcome, Outcome::Progress { .. }));
    assert!(retired(&within).is_empty());
    let s = step(&strategy, &t, &all, &within.state, 10_001);
    assert_eq!(retired(&s), vec!["bad0"], "{:?}", s.actions);
    assert!(
        matches!(&s.outcome, Outcome::RolledBack { reason } if reason.contains("not ready after 10s")),
        "{:?}",
        s.outcome
    );
}

#[test]
fn rolling_back_restores_retired_old_instances() {
    // One batch already replaced an old instance, the next one failed: the old version must
    // come back to 2 instances before the new ones go.
    let strategy = rolling(BatchSize::Count(1), 1, 0);
    let t = target("2.0.0", 2);
    let old = spec("1.0.0");
    let mut all = instances("1.0.0", 1, true, true, "old");
    all.extend(instances("2.0.0", 1, true, true, "good"));
    all.extend(instances("2.0.0", 1, false, false, "bad"));
    let state = RolloutState {
        batch_started_ms: Some(0),
        previous: Some(Previous { hash: old.hash(), spec: old, replicas: 2 }),
        ..Default::default()
    };
    let s = step(&strategy, &t, &all, &state, 20_000);
    assert_eq!(starts(&s), 1, "{:?}", s.actions);
    assert_eq!(retired(&s), vec!["bad0"], "the serving new instance stays until old ones are back");
    all.retain(|i| i.id != "bad0");
    all.extend(instances("1.0.0", 1, true, true, "back"));
    let done = step(&strategy, &t, &all, &s.state, 21_000);
    assert_eq!(retired(&done), vec!["good0"]);
    assert!(matches!(done.outcome, Outcome::RolledBack { .. }));
}

#[test]
fn direct_replaces_everything_and_restores_on_failure() {
    let direct = Direct { health_check_timeout: std::time::Duration::from_secs(5) };
    let t = target("2.0.0", 2);
    let old = instances("1.0.0", 2, true, true, "old");
    let first = step(&direct, &t, &old, &RolloutState::default(), 0);
    assert_eq!(retired(&first), vec!["old0", "old1"]);
    assert_eq!(starts(&first), 2);
    assert!(first.state.previous.as_ref().is_some_and(|p| p.spec.version == "1.0.0" && p.replicas == 2));
    let stuck = instances("2.0.0", 2, false, false, "new");
    let waiting = step(&direct, &t, &stuck, &first.state, 4_000);
    assert!(matches!(waiting.outcome, Outcome::Progress { .. }));
    let failed = step(&direct, &t, &stuck, &waiting.state, 6_000);
    assert_eq!(retired(&failed), vec!["new0", "new1"]);
    assert_eq!(starts(&failed), 2, "previous version restarted");
    let restored = instances("1.0.0", 2, true, true, "back");
    let done = step(&direct, &t, &restored, &failed.state, 7_000);
    assert!(matches!(done.outcome, Outcome::RolledBack { .. }), "{:?}", done.outcome);
}
