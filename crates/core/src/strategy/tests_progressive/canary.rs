//! Canary: layout, evaluation, controls, rollback, restart and end-to-end walks.

// Over 600 lines: the canary's table tests and end-to-end walks, one strategy's whole behaviour in one place.

use super::*;

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
