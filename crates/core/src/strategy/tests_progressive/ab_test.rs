//! A/B testing: split, decision, promotion of the winner, controls.

use super::*;

fn ab(a: f64, b: f64, auto_promote: bool) -> AbTest {
    AbTest {
        config: AbConfig {
            variant_a: None,
            variant_b: None,
            traffic_split: TrafficSplit { a, b },
            test_duration: Some(Span::from_secs(60)),
            decision_metrics: vec!["errorRate".into(), "latency".into()],
            auto_promote,
            winner_threshold: crate::model::Rate::ZERO,
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
        assert_eq!(TrafficSplit { a: sa, b: sb }.b_instances(a), expected, "b_instances({a}, {sa}/{sb})");
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
