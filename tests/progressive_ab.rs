//! A/B testing under `plugsync run` against the real Docker engine: variant B (the pushed
//! version) answers 100 ms slower than A; with `decisionMetrics: [latency]` and
//! `winnerThreshold: 10` A wins, B goes, the status branch records the outcome ("A won") as a
//! failed rollout, and the revision is not retried on the next passes.
//!
//! Traffic comes from the `http-probe` client container on the fleet network.
//! Needs Docker and `git`; fails loudly without them.

use plugsync_test_support::daemon as common_daemon;
use plugsync_test_support::docker as common;
use plugsync_test_support::progressive as common_progressive;

use common::{PluginDef, V1, V2};
use common_daemon::{wait_for, wait_ticks, CreateWatch};
use common_progressive::*;
use plugsync::plan::Slot;
use plugsync::status::Lifecycle;
use std::time::{Duration, Instant};

const AB: &str =
    "{strategy: ABTesting, abConfig: {trafficSplit: {A: 50, B: 50}, testDuration: 3s, decisionMetrics: [latency], \
                  autoPromote: true, winnerThreshold: 0.1}, analysis: {minSamples: 10}}";

/// 7. A slower B (LATENCY_MS=100) loses: A stays, status says "A won", no retry.
#[test]
fn slower_b_loses_a_stays_and_the_revision_is_not_retried() {
    let t0 = Instant::now();
    let web = PluginDef::new("web", V1).rollout(AB);
    let rig = Rig::start("pab", &web);
    let creates = CreateWatch::start(&rig.fleet.name);
    let watch = BgWatch::start(&rig.fleet.name, &rig.fleet.network, "web", false);
    let slow = web.clone().version(V2).env("LATENCY_MS", "100");
    let pushed_at = Instant::now();
    let w0 = wall();
    let revision = rig.push(&slow, "web 1.1.0, 100 ms slower");
    let took = wait_for(
        "web ROLLED_BACK with A (1.0.0) alone serving",
        Duration::from_secs(60),
        || {
            settled_at(&rig.observe("web"), &web)
                && rig.status("web").is_some_and(|s| s.state == Lifecycle::RolledBack && s.failed.is_some())
        },
        || rig.context("web"),
    );
    let polls = watch.stop();
    eprintln!(
        "[{}] decided {took:?} after the push ({:?}); layouts:\n{}",
        rig.fleet.name,
        pushed_at.elapsed(),
        poll_timeline(&polls, w0)
    );
    let status = rig.status("web").unwrap();
    eprintln!("status/web.yaml:\n{}", rig.status_text("web"));
    let failed = status.failed.clone().unwrap();
    assert!(failed.reason.contains("A won"), "failed.reason says A won: {failed:?}");
    assert!(failed.reason.contains("latency"), "and why (latency): {failed:?}");
    assert!(status.last_error.as_deref().is_some_and(|e| e.contains("A won")), "lastError: {:?}", status.last_error);
    assert_eq!(failed.revision, revision, "the failed revision is the pushed one");
    assert!(status.rollout.is_none(), "no rollout left in progress: {:?}", status.rollout);
    // B served beside A at the split (1 of 2 serving instances), and nothing else did.
    let b_share =
        polls.iter().map(|p| share(&p.instances, |i| i.slot == Slot::B && i.version == V2)).fold(0.0, f64::max);
    assert!((b_share - 50.0).abs() < 1e-6, "B took 50 % of the serving instances at most and at least once: {b_share}");
    for p in &polls {
        assert!(!serving(&p.instances).is_empty(), "t={:.2}s: nothing serves", p.t - w0);
    }
    let b_starts = creates.count("web", V2);
    assert_eq!(b_starts, 1, "one B instance was started: {:?}", creates.seen.lock().unwrap());

    // Later passes leave it alone: held, not retried (4 passes and at least 4 s).
    let since = Instant::now();
    wait_ticks(&rig.daemon, 4, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(4).saturating_sub(since.elapsed()));
    assert_eq!(creates.count("web", V2), b_starts, "the lost A/B test was retried: {:?}", creates.seen.lock().unwrap());
    assert!(settled_at(&rig.observe("web"), &web), "A keeps serving alone: {}", layout(&rig.observe("web")));
    let held = rig.repo.fleet_status().map(|f| f.held).unwrap_or_default();
    assert!(held.iter().any(|h| h.starts_with("web")), "status/fleet.yaml lists web as held: {held:?}");
    assert_eq!(rig.status("web").unwrap().state, Lifecycle::RolledBack);
    let log = rig.client_log();
    let (ok, failed) = log.counts_between(w0, wall());
    eprintln!(
        "[{}] MEASURED A/B: decided in {took:?}; client {ok} ok, {failed} failed; reason: {}",
        rig.fleet.name,
        failed_reason(&rig)
    );
    eprintln!("test took {:?}", t0.elapsed());
}

fn failed_reason(rig: &Rig) -> String {
    rig.status("web").and_then(|s| s.failed).map(|f| f.reason).unwrap_or_default()
}
