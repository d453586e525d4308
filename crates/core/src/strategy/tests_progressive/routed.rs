//! Behind the managed router (`traffic.router: haproxy`, `InstanceSpec.routed`): the canary
//! states its exact share with a fixed instance count, Direct switches start-first in one
//! step, A/B runs as many B instances as A with the exact split. End-to-end walks apply each
//! step the way the executor does behind the router.

use super::*;
use crate::plan::InstanceSpec;
use crate::traffic::SlotShare;

fn routed_spec(version: &str) -> InstanceSpec {
    InstanceSpec { routed: true, ..spec(version) }
}

fn rtarget(version: &str, replicas: u32) -> SlotTarget {
    let spec = routed_spec(version);
    SlotTarget { slot: Slot::Stable, hash: spec.hash(), spec, replicas }
}

/// An instance of the routed spec at `version` (its hash is the routed spec's).
fn rinst(version: &str, slot: Slot, ready: bool, serving: bool, id: &str) -> Instance {
    let spec = routed_spec(version);
    Instance { spec_hash: spec.hash(), spec: Some(spec), ..inst(version, slot, ready, serving, id) }
}

fn rgroup(version: &str, slot: Slot, n: usize, serving: bool, tag: &str) -> Vec<Instance> {
    (0..n).map(|i| rinst(version, slot, true, serving, &format!("{tag}{i}"))).collect()
}

/// The shares of the (only) Split among `actions`.
fn split_of(actions: &[Action]) -> Option<Vec<SlotShare>> {
    let splits: Vec<&Vec<SlotShare>> =
        actions.iter().filter_map(|a| if let Action::Split { shares } = a { Some(shares) } else { None }).collect();
    assert!(splits.len() <= 1, "more than one Split in {actions:?}");
    splits.first().map(|s| (*s).clone())
}

fn share(shares: &[SlotShare], slot: Slot) -> f64 {
    shares.iter().filter(|s| s.slot == slot).map(|s| s.percent).sum()
}

/// The executor behind the router, simulated on top of [`World`]: the split and the instances
/// joining traffic go first, the ones leaving after (one route sync moves traffic from one set
/// to the other, see `act` in the reconciler). A started instance is ready at the next probe,
/// unless its version is `slow`: the k-th one started is then ready `delays[k]` ms after it
/// started (the last delay for later ones; `None`: never).
struct Sim {
    world: World,
    /// Per slow instance: when it started and its readiness delay.
    born: BTreeMap<String, (u64, Option<u64>)>,
    slow: Option<(&'static str, &'static [Option<u64>])>,
    split: Option<Vec<SlotShare>>,
}

impl Sim {
    fn new(instances: Vec<Instance>) -> Sim {
        Sim { world: World::new(instances), born: BTreeMap::new(), slow: None, split: None }
    }

    fn probe(&mut self, now: u64) {
        for i in self.world.instances.iter_mut().filter(|i| i.is_running()) {
            i.ready = Some(match self.born.get(&i.id) {
                Some((born, delay)) => delay.is_some_and(|d| now >= born + d),
                None => true,
            });
        }
    }

    /// Applies `actions` at `now`; returns the fewest ready, serving instances seen meanwhile.
    fn apply(&mut self, actions: &[Action], now: u64) -> usize {
        if let Some(shares) = split_of(actions) {
            self.split = Some(shares);
        }
        for a in actions {
            if let Action::Start { slot, spec, hash, count, serve } = a {
                assert!(spec.routed, "a routed rollout starts a DNS spec: {spec:?}");
                assert_eq!(*hash, spec.hash(), "Start carries the hash of its spec");
                for _ in 0..*count {
                    let id = format!("{}-{}-{}", slot.as_str(), spec.version, self.world.next);
                    self.world.next += 1;
                    let mut i = rinst(&spec.version, *slot, false, *serve, &id);
                    i.spec = Some((**spec).clone());
                    if let Some((_, delays)) = self.slow.filter(|(v, _)| *v == spec.version) {
                        let k = self.born.len().min(delays.len() - 1);
                        self.born.insert(id, (now, delays[k]));
                    }
                    self.world.instances.push(i);
                }
            }
        }
        let rest: Vec<Action> = actions.iter().filter(|a| !matches!(a, Action::Start { .. })).cloned().collect();
        self.world.add(&rest);
        let joined = self.world.ready_serving();
        self.world.remove(&rest);
        joined.min(self.world.ready_serving())
    }

    fn count(&self, pick: impl Fn(&Instance) -> bool) -> usize {
        self.world.instances.iter().filter(|i| i.is_running() && pick(i)).count()
    }

    fn assert_only(&self, version: &str, replicas: usize, context: &str) {
        let all = &self.world.instances;
        assert_eq!(all.len(), replicas, "{context}: {all:?}");
        assert!(
            all.iter().all(|i| i.version == version && i.slot == Slot::Stable && i.serving && is_ready(i)),
            "{context}: {all:?}"
        );
    }
}

fn routed_canary(steps: &[f64]) -> Canary {
    Canary {
        config: CanaryConfig {
            steps: Some(steps.to_vec()),
            evaluation_period: Some(Span::from_secs(60)),
            auto_rollback: true,
            // Ignored behind the router: the weight is exact without extra stable instances.
            max_surge: Some(2),
            ..Default::default()
        },
        health_check_timeout: TIMEOUT,
    }
}

#[test]
fn routed_canary_splits_exactly_with_a_fixed_canary_count() {
    // (replicas, steps, canary instances for the whole rollout)
    let table: [(u32, &[f64], usize); 6] = [
        (3, &[10.0, 25.0, 50.0, 100.0], 2), // ceil(3 × 50 %)
        (4, &[20.0, 40.0, 100.0], 2),       // ceil(4 × 40 %)
        (1, &[10.0, 50.0, 100.0], 1),
        (5, &[5.0, 10.0, 100.0], 1), // at least one
        (3, &[90.0, 100.0], 3),      // ceil(2.7), capped at the replicas
        (2, &[30.0, 60.0, 100.0], 2),
    ];
    for (replicas, steps, canaries) in table {
        let name = format!("replicas {replicas}, steps {steps:?}");
        let strategy = routed_canary(steps);
        let t = rtarget("2.0.0", replicas);
        let mut sim = Sim::new(rgroup("1.0.0", Slot::Stable, replicas as usize, true, "old"));
        let mut state = RolloutState::default();
        let (mut evaluated, mut canary_started) = (Vec::new(), 0u32);
        let mut converged = false;
        for n in 0..400u64 {
            let now = n * 5_000;
            sim.probe(now);
            let evidence = if state.watch.contains(&Slot::Canary) {
                pass(state.window, Slot::Canary)
            } else {
                Evidence::default()
            };
            let s = run(&strategy, &t, &sim.world.instances, &state, now, &evidence, None);
            let ctx = format!("{name}, call {n} (step {})", state.step);
            assert_no_duplicates(&s, &ctx);
            let stepping = !state.promoted && state.step < steps.len() - 1;
            match split_of(&s.actions) {
                Some(shares) => {
                    assert!(stepping, "{ctx}: Split outside the steps: {:?}", s.actions);
                    let w = steps[state.step];
                    assert!((share(&shares, Slot::Canary) - w).abs() < EPS, "{ctx}: {shares:?} at {w} %");
                    assert!((share(&shares, Slot::Stable) - (100.0 - w)).abs() < EPS, "{ctx}: {shares:?}");
                    assert_eq!(shares.len(), 2, "{ctx}: {shares:?}");
                }
                None => assert!(!stepping, "{ctx}: a step without its Split: {:?}", s.actions),
            }
            for (slot, version, count) in starts(&s) {
                match slot {
                    Slot::Canary => canary_started += count,
                    _ => assert!(
                        slot == Slot::Stable && version == "2.0.0",
                        "{ctx}: surge or stray start {slot:?} {version} × {count}"
                    ),
                }
            }
            let canary_ids: Vec<&str> =
                sim.world.instances.iter().filter(|i| i.slot == Slot::Canary).map(|i| i.id.as_str()).collect();
            let serves_canary = served(&s).iter().any(|id| canary_ids.contains(id));
            let before = sim.split.clone();
            let fewest = sim.apply(&s.actions, now);
            if serves_canary {
                let held = sim.split.as_ref().map_or(0.0, |shares| share(shares, Slot::Canary));
                assert!(held > 0.0, "{ctx}: the canary serves without a Split for it (held before: {before:?})");
            }
            if stepping && sim.count(|i| i.slot == Slot::Canary && i.serving) > 0 {
                let held = sim.split.as_ref().map_or(0.0, |shares| share(shares, Slot::Canary));
                assert!((held - steps[state.step]).abs() < EPS, "{ctx}: the canary serves at {held} %");
            }
            assert!(fewest >= replicas as usize, "{ctx}: only {fewest} ready serving: {:?}", s.actions);
            assert!(
                sim.count(|i| i.version == "1.0.0") <= replicas as usize,
                "{ctx}: surge stable instances: {:?}",
                sim.world.instances
            );
            assert!(sim.count(|i| i.slot == Slot::Canary) <= canaries, "{ctx}: {:?}", sim.world.instances);
            if s.state.window != state.window {
                evaluated.push(s.state.step);
                let running = sim.count(|i| i.slot == Slot::Canary && i.serving && is_ready(i));
                assert_eq!(
                    running, canaries,
                    "{ctx}: serving canary instances when step {} is evaluated",
                    s.state.step
                );
            }
            state = s.state;
            match s.outcome {
                Outcome::Converged => {
                    converged = true;
                    break;
                }
                Outcome::Progress { .. } => {}
                other => panic!("{ctx}: {other:?}"),
            }
        }
        assert!(converged, "{name}: the canary did not converge: {state:?}");
        assert_eq!(canary_started, canaries as u32, "{name}: the canary count changed between steps");
        let below_100: Vec<usize> = (0..steps.len() - 1).collect();
        assert_eq!(evaluated, below_100, "{name}: every step below 100 % gets its own window");
        sim.assert_only("2.0.0", replicas as usize, &name);
        assert!(sim.world.instances.iter().all(|i| i.spec.as_ref().is_some_and(|s| s.routed)), "{name}");
    }
}

#[test]
fn routed_direct_switches_start_first_in_one_step_or_rolls_back() {
    struct Case {
        name: &'static str,
        /// How long each new 2.0.0 instance takes to get ready (None: never).
        ready_after_ms: &'static [Option<u64>],
        outcome: &'static str,
        /// The version left serving.
        left: &'static str,
    }
    let cases = [
        Case { name: "ready at the next probe", ready_after_ms: &[Some(0)], outcome: "converged", left: "2.0.0" },
        Case { name: "ready within the timeout", ready_after_ms: &[Some(8_000)], outcome: "converged", left: "2.0.0" },
        Case { name: "never ready", ready_after_ms: &[None], outcome: "rolledBack", left: "1.0.0" },
        Case {
            name: "one ready at once, the other within the timeout",
            ready_after_ms: &[Some(0), Some(9_000)],
            outcome: "converged",
            left: "2.0.0",
        },
        Case { name: "one never ready", ready_after_ms: &[Some(0), None], outcome: "rolledBack", left: "1.0.0" },
    ];
    let timeout_ms = TIMEOUT.as_millis() as u64;
    for c in cases {
        let strategy = super::super::direct::Direct { health_check_timeout: TIMEOUT };
        let t = rtarget("2.0.0", 2);
        let mut sim = Sim::new(rgroup("1.0.0", Slot::Stable, 2, true, "old"));
        sim.slow = Some(("2.0.0", c.ready_after_ms));
        let mut state = RolloutState::default();
        let mut switches = 0;
        let mut ended = None;
        for n in 0..60u64 {
            let now = n * 1_000;
            sim.probe(now);
            let s = go(&strategy, &t, &sim.world.instances, &state, now);
            let ctx = format!("{}, {now} ms", c.name);
            assert_no_duplicates(&s, &ctx);
            assert!(split_of(&s.actions).is_none(), "{ctx}: Direct needs no split: {:?}", s.actions);
            for a in &s.actions {
                if let Action::Start { spec, serve, .. } = a {
                    assert_eq!(spec.version, "2.0.0", "{ctx}");
                    assert!(!serve, "{ctx}: the new version joins traffic before it is ready");
                }
            }
            let old: Vec<&str> =
                sim.world.instances.iter().filter(|i| i.version == "1.0.0").map(|i| i.id.as_str()).collect();
            if !served(&s).is_empty() {
                switches += 1;
                let new: Vec<&str> =
                    sim.world.instances.iter().filter(|i| i.version == "2.0.0").map(|i| i.id.as_str()).collect();
                assert_eq!(sorted(served(&s)), sorted(new), "{ctx}: every new instance joins at once");
                assert_eq!(sorted(retired(&s)), sorted(old.clone()), "{ctx}: the old ones leave in the same step");
            } else {
                assert!(retired(&s).iter().all(|id| !old.contains(id)), "{ctx}: old retired alone: {:?}", s.actions);
            }
            let fewest = sim.apply(&s.actions, now);
            assert!(fewest >= 2, "{ctx}: only {fewest} ready serving while {:?} apply", s.actions);
            let serving: BTreeSet<&str> = sim.world.serving().iter().map(|i| i.version.as_str()).collect();
            assert_eq!(serving.len(), 1, "{ctx}: both versions serve after the step: {:?}", sim.world.instances);
            state = s.state;
            if !matches!(s.outcome, Outcome::Progress { .. }) {
                if kind(&s.outcome) == "rolledBack" {
                    assert!(now > timeout_ms, "{}: rolled back at {now} ms, before the timeout", c.name);
                    assert!(now <= timeout_ms + 1_000, "{}: rolled back only at {now} ms", c.name);
                    assert!(reason(&s.outcome).contains("not ready"), "{}: {:?}", c.name, s.outcome);
                }
                ended = Some(s.outcome);
                break;
            }
        }
        let outcome = ended.unwrap_or_else(|| panic!("{}: no end: {state:?}", c.name));
        assert_eq!(kind(&outcome), c.outcome, "{}: {outcome:?}", c.name);
        assert_eq!(switches, usize::from(c.left == "2.0.0"), "{}: switch steps", c.name);
        sim.assert_only(c.left, 2, c.name);
        if c.left == "1.0.0" {
            let ids: Vec<&str> = sim.world.instances.iter().map(|i| i.id.as_str()).collect();
            assert_eq!(sorted(ids), vec!["old0", "old1"], "{}: the old instances kept serving", c.name);
        }
    }
}

fn ab(a: f64, b: f64) -> AbTest {
    AbTest {
        config: AbConfig {
            variant_a: None,
            variant_b: None,
            traffic_split: TrafficSplit { a, b },
            test_duration: Some(Span::from_secs(60)),
            decision_metrics: vec!["errorRate".into()],
            auto_promote: true,
            winner_threshold: crate::model::Rate::ZERO,
        },
        health_check_timeout: TIMEOUT,
    }
}

#[test]
fn routed_ab_runs_as_many_b_as_a_with_the_exact_split() {
    // (A instances, trafficSplit A/B, Split percent for A (stable) and B)
    let table: [(usize, f64, f64, f64, f64); 6] = [
        (2, 80.0, 20.0, 80.0, 20.0),
        (3, 50.0, 50.0, 50.0, 50.0),
        (4, 75.0, 25.0, 75.0, 25.0),
        (1, 90.0, 10.0, 90.0, 10.0),
        (3, 30.0, 70.0, 30.0, 70.0),
        (2, 3.0, 1.0, 75.0, 25.0), // normalised by A + B
    ];
    for (a, sa, sb, want_a, want_b) in table {
        let name = format!("{a} A at {sa}/{sb}");
        let strategy = ab(sa, sb);
        // The DNS spec weights by instance count and needs no split: the routed flag decides.
        let dns = go(
            &strategy,
            &target("2.0.0", a as u32),
            &group("1.0.0", Slot::Stable, a, true, true, "a"),
            &RolloutState::default(),
            0,
        );
        assert!(split_of(&dns.actions).is_none(), "{name}: DNS split {:?}", dns.actions);
        let t = rtarget("2.0.0", a as u32);
        let mut sim = Sim::new(rgroup("1.0.0", Slot::Stable, a, true, "a"));
        let mut state = RolloutState::default();
        let mut converged = false;
        for n in 0..100u64 {
            let now = n * 5_000;
            sim.probe(now);
            let evidence = ab_result(state.window, Some(Variant::B), false);
            let s = run(&strategy, &t, &sim.world.instances, &state, now, &evidence, None);
            let ctx = format!("{name}, call {n}");
            assert_no_duplicates(&s, &ctx);
            if n == 0 {
                assert_eq!(starts(&s), vec![(Slot::B, "2.0.0".to_string(), a as u32)], "{ctx}: B count = A count");
            }
            match split_of(&s.actions) {
                Some(shares) => {
                    assert!(!state.promoted, "{ctx}: Split while promoting");
                    assert_eq!(shares.iter().map(|s| s.slot).collect::<Vec<_>>(), vec![Slot::Stable, Slot::B]);
                    assert!((share(&shares, Slot::Stable) - want_a).abs() < EPS, "{ctx}: {shares:?}");
                    assert!((share(&shares, Slot::B) - want_b).abs() < EPS, "{ctx}: {shares:?}");
                }
                None => assert!(state.promoted, "{ctx}: the test runs without its Split: {:?}", s.actions),
            }
            let fewest = sim.apply(&s.actions, now);
            assert!(fewest >= a, "{ctx}: only {fewest} ready serving");
            if !state.promoted {
                assert!(sim.count(|i| i.slot == Slot::B) <= a, "{ctx}: {:?}", sim.world.instances);
            }
            if sim.count(|i| i.slot == Slot::B && i.serving) > 0 {
                assert!(sim.split.as_ref().is_some_and(|s| share(s, Slot::B) > 0.0), "{ctx}: B serves unsplit");
            }
            state = s.state;
            match s.outcome {
                Outcome::Converged => {
                    converged = true;
                    break;
                }
                Outcome::Progress { .. } => {}
                other => panic!("{ctx}: {other:?}"),
            }
        }
        assert!(converged, "{name}: did not converge: {state:?}");
        assert!(state.window >= 1, "{name}: the test never ran its window");
        sim.assert_only("2.0.0", a, &name);
    }
}
