//! Blue-green: warm-up, smoke tests, switchover, monitoring, rollback and parking.

// Over 600 lines: blue-green's table tests and end-to-end walks, one strategy's whole behaviour in one place.

use super::*;

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
