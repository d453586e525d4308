//! Issue 10, defect 7: rollout waits are measured from one clock origin across passes and
//! restarts. Each "pass" below is a fresh reading of an injected clock, and the rollout state
//! crosses passes the way the daemon carries it (memory) or a restart does (serialised).

use super::{Clock, SystemClock};
use crate::model::policy::{BatchSize, RollingConfig};
use crate::model::Span;
use crate::plan::fixtures::{inst, spec};
use crate::plan::{Instance, Slot, SlotTarget};
use crate::strategy::rolling::Rolling;
use crate::strategy::{Action, Evidence, RolloutState, SlotStrategy, StepInput};
use std::sync::atomic::{AtomicU64, Ordering};

/// A clock the test moves by hand, starting at an epoch-like instant.
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn defect_7_wait_between_batches_spans_passes_and_restarts() {
    let rolling = Rolling {
        config: RollingConfig {
            batch_size: BatchSize::Count(1),
            wait_between_batches: Span::from_secs(30),
            health_check_timeout: Span::from_secs(60),
            max_parallel_batches: 1,
        },
    };
    let new = spec("2.0.0");
    let target = SlotTarget { slot: Slot::Stable, hash: new.hash(), spec: new, replicas: 2 };
    let t0 = 1_796_000_000_000;
    let clock = ManualClock(AtomicU64::new(t0));
    let step = |instances: &[Instance], state: &RolloutState| {
        let input = StepInput {
            target: &target,
            instances,
            state,
            now_ms: clock.now_ms(),
            evidence: &Evidence::default(),
            control: None,
        };
        rolling.step(&input)
    };
    let starts = |actions: &[Action]| actions.iter().any(|a| matches!(a, Action::Start { .. }));

    // Pass 1 at t0: the first new instance serves, one old one is retired, the wait begins.
    let instance = |version: &str, id: &str| inst(version, Slot::Stable, true, true, id);
    let first =
        step(&[instance("2.0.0", "n1"), instance("1.0.0", "o1"), instance("1.0.0", "o2")], &RolloutState::default());
    assert_eq!(first.state.next_batch_ms, Some(t0 + 30_000), "{first:?}");
    let after_first = [instance("2.0.0", "n1"), instance("1.0.0", "o1")];

    // (pass, seconds after t0, carried through a restart, starts the next batch)
    let table = [
        ("pass 2", 10, false, false),
        ("pass 3", 29, true, false),
        ("pass 4", 31, false, true),
        ("restart", 31, true, true),
    ];
    for (name, seconds, restarted, proceeds) in table {
        clock.0.store(t0 + seconds * 1000, Ordering::SeqCst);
        let state = if restarted {
            let persisted = serde_json::to_string(&first.state).expect("state serialises");
            serde_json::from_str(&persisted).expect("state reads back")
        } else {
            first.state.clone()
        };
        let next = step(&after_first, &state);
        assert_eq!(starts(&next.actions), proceeds, "{name} at t0+{seconds}s: {:?}", next.outcome);
    }
}

#[test]
fn the_system_clock_counts_from_the_unix_epoch() {
    // One origin for every pass and every process: two readings from two clocks agree to
    // within moments and are far from a per-pass origin near zero.
    let (a, b) = (SystemClock.now_ms(), SystemClock.now_ms());
    assert!(a > 1_700_000_000_000 && b >= a && b - a < 1_000, "{a} {b}");
}
