//! Canary rollouts against the real Docker engine, with traffic from the `http-probe` client
//! container on the fleet network (so the built-in analysis has requests to judge):
//!
//! - a canary answering 30 % errors is rolled back within one evaluation period and never
//!   takes more traffic than its step;
//! - a healthy canary walks 25 % → 50 % → 100 %;
//! - with `autoRollback: false` the failing canary pauses at its step (daemon, status branch)
//!   until `promote` or `abort` arrives through the HTTP API.
//!
//! Traffic share on plain Docker is instance-weighted (serving instances carrying the alias),
//! so "weight" here is canary serving instances / all serving instances, polled every ~100 ms.
//!
//! Needs Docker (and `git` for the daemon tests); fails loudly without them.
//! Run with `--test-threads=1`: the timings are measured.

use plugsync_test_support::daemon as common_daemon;
use plugsync_test_support::docker as common;
use plugsync_test_support::progressive as common_progressive;

use common::{PluginDef, TestFleet, Watch, V1, V2};
use common_progressive::*;
use plugsync::backend::docker::DockerBackend;
use plugsync::plan::{Instance, Slot};
use plugsync::reconcile::{Ending, Report};
use plugsync::status::Lifecycle;
use std::time::{Duration, Instant};

const EPS: f64 = 1e-6;

fn is_canary_of(i: &Instance, version: &str) -> bool {
    i.slot == Slot::Canary && i.version == version
}

/// The failing-canary run shared by the two tests below: `web` at V1 (1 replica, maxSurge 2),
/// then V2 answering 30 % errors; steps [25, 50, 100], evaluation period 4 s, maxErrorRate 5 %.
struct FailingCanary {
    report: Report,
    watched: Watch,
    story: Story,
    /// Wall time the watch started (its snapshot times are relative to it).
    w0: f64,
    period: f64,
    fleet: TestFleet,
    backend: DockerBackend,
}

async fn failing_canary(tag: &str) -> FailingCanary {
    let period = 4.0;
    let web = PluginDef::new("web", V1).rollout(&canary("[25, 50, 100]", "4s", true, 2, 0.05));
    let (docker, fleet, backend, client) = setup(tag, &web).await;
    fleet.plugin(&web.clone().version(V2).env("ERROR_RATE", "0.3"));
    let story = Story::new(&fleet.name);
    let (report, watched, w0) = reconcile_watched(&fleet, &backend, &story, "web").await;
    eprintln!("[{}] timeline:\n{}", fleet.name, watched.timeline.join("\n"));
    let log = ClientLog::read(&docker, &client).await;
    let (ok, failed) = log.counts_between(w0, wall());
    eprintln!("[{}] client during the rollout: {ok} ok, {failed} failed (the canary answers 30 % errors)", fleet.name);
    FailingCanary { report, watched, story, w0, period, fleet, backend }
}

/// 1. ERROR_RATE 0.3 at the first step (25 %): rolled back within one evaluation period (4 s),
/// measured from the canary's first serving poll to the first poll where it no longer serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_canary_is_rolled_back_within_one_evaluation_period() {
    let t0 = Instant::now();
    let FailingCanary { report, watched, story, w0, period, fleet, backend } = failing_canary("pcfail").await;
    let timeline = watched.timeline.join("\n");
    assert_eq!(report.results.len(), 1, "{:#?}", report.results);
    let reason = match &report.results[0].result {
        Ending::RolledBack { reason } => reason.clone(),
        other => panic!("expected a rollback, got {other:?}\nnarration:\n{}\ntimeline:\n{timeline}", story.text()),
    };
    assert!(reason.contains("error rate"), "the rollback names the error rate: {reason}");
    assert!(watched.polls >= 10, "too few polls ({}):\n{timeline}", watched.polls);
    for (t, s) in &watched.snapshots {
        assert!(!serving(s).is_empty(), "t={t:.2}s: nothing serves\n{timeline}");
    }
    let serves = |s: &Vec<Instance>| s.iter().any(|i| is_canary_of(i, V2) && i.serving && i.is_running());
    let first = watched
        .snapshots
        .iter()
        .find(|(_, s)| serves(s))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("the canary never served:\n{timeline}"));
    let out = watched
        .snapshots
        .iter()
        .find(|(t, s)| *t > first && !serves(s))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("the canary never left traffic:\n{timeline}"));
    let decided = story.first("rolling back").or(story.first("web: rolled back")).expect("narrated rollback") - w0;
    let ended = story.first("web: rolled back").expect("narrated rollback") - w0;
    let latency = out - first;
    let max_share = watched.snapshots.iter().map(|(_, s)| share(s, |i| i.version == V2)).fold(0.0, f64::max);
    eprintln!(
        "[{}] MEASURED canary rollback: canary serving at {first:.2}s, rollback decided ≈{decided:.2}s, canary out of traffic at {out:.2}s \
         → {latency:.2}s (evaluation period {period}s); RolledBack reported at {ended:.2}s; max canary share {max_share:.0} %",
        fleet.name
    );
    assert!(latency < period + 1.0, "rollback took {latency:.2}s from the canary's first serving poll (evaluation period {period}s):\n{timeline}\n{}", story.text());
    let now = fleet.observe(&backend, Some("web")).await;
    assert_eq!(now.len(), 1, "only the stable instance is left: {}", layout(&now));
    assert!(
        now.iter().all(|i| i.version == V1 && i.slot == Slot::Stable && i.serving && i.is_running()),
        "{}",
        layout(&now)
    );
    eprintln!("test took {:?}", t0.elapsed());
}

/// 1'. Same run: at no poll — rollback included — did the failing canary hold more than its
/// step's 25 % of the serving instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_canary_never_exceeds_its_step_weight_even_while_rolling_back() {
    let FailingCanary { report, watched, story, .. } = failing_canary("pcweight").await;
    let timeline = watched.timeline.join("\n");
    assert!(matches!(report.results[0].result, Ending::RolledBack { .. }), "{:?}\n{}", report.results, story.text());
    for (t, s) in &watched.snapshots {
        let share = share(s, |i| i.version == V2);
        assert!(
            share <= 25.0 + EPS,
            "t={t:.2}s: the canary serves {share:.1} % of the instances at the 25 % step: {}\n{timeline}\n{}",
            layout(s),
            story.text()
        );
    }
}

/// 2. A healthy canary walks every step to 100 %: the new version's share of the serving
/// instances only grows, passes 25 % and 50 %, and ends with every instance at the new
/// version in slot stable, no canary left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_canary_walks_every_step_to_full_promotion() {
    let t0 = Instant::now();
    let web = PluginDef::new("web", V1).rollout(&canary("[25, 50, 100]", "2s", true, 2, 0.05));
    let (docker, fleet, backend, client) = setup("pcwalk", &web).await;
    fleet.plugin(&web.clone().version(V2));
    let story = Story::new(&fleet.name);
    let (report, watched, w0) = reconcile_watched(&fleet, &backend, &story, "web").await;
    let timeline = watched.timeline.join("\n");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    assert_eq!(report.results.len(), 1, "{:#?}", report.results);
    assert_eq!(report.results[0].result, Ending::Converged, "narration:\n{}\ntimeline:\n{timeline}", story.text());

    let new_share: Vec<u32> =
        dedup(watched.snapshots.iter().map(|(_, s)| share(s, |i| i.version == V2).round() as u32));
    let canary_share: Vec<u32> =
        dedup(watched.snapshots.iter().map(|(_, s)| share(s, |i| is_canary_of(i, V2)).round() as u32));
    eprintln!(
        "[{}] MEASURED weights seen by polling: new version {new_share:?} %, canary slot {canary_share:?} %",
        fleet.name
    );
    let notes: Vec<String> =
        story.lines.lock().unwrap().iter().map(|(_, l)| l.clone()).filter(|l| l.contains("achieved")).collect();
    eprintln!("[{}] step notes:\n  {}", fleet.name, dedup(notes).join("\n  "));

    let pos = |w: u32| new_share.iter().position(|x| *x == w);
    let (p25, p50, p100) = (pos(25), pos(50), pos(100));
    assert!(
        p25.is_some() && p50.is_some() && p100.is_some(),
        "the new version's share passed 25, 50 and 100 %: {new_share:?}\n{timeline}"
    );
    assert!(p25 < p50 && p50 < p100, "in order 25 → 50 → 100: {new_share:?}");
    assert!(
        new_share.windows(2).all(|w| w[0] <= w[1]),
        "the new version's share only grows: {new_share:?}\n{timeline}"
    );
    // Each step's bound holds until the step passed.
    let passed: Vec<f64> = story
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.contains("passed, next step"))
        .map(|(t, _)| t - w0)
        .collect();
    assert!(passed.len() >= 2, "two steps passed before the promotion: {}", story.text());
    for (t, s) in &watched.snapshots {
        let bound = if *t < passed[0] {
            25.0
        } else if *t < passed[1] {
            50.0
        } else {
            100.0
        };
        let c = share(s, |i| is_canary_of(i, V2));
        assert!(
            c <= bound + EPS,
            "t={t:.2}s: canary at {c:.1} % > {bound} % before its step passed: {}\n{timeline}",
            layout(s)
        );
        assert!(!serving(s).is_empty(), "t={t:.2}s: nothing serves\n{timeline}");
    }

    let now = fleet.observe(&backend, Some("web")).await;
    assert_eq!(now.len(), 1, "{}", layout(&now));
    assert!(
        now.iter().all(|i| i.version == V2 && i.slot == Slot::Stable && i.serving && i.is_running()),
        "{}",
        layout(&now)
    );
    let log = ClientLog::read(&docker, &client).await;
    let (ok, failed) = log.counts_between(w0, wall());
    eprintln!(
        "[{}] client during the rollout: {ok} ok, {failed} failed: {:?}",
        fleet.name,
        log.fails_between(w0, wall())
    );
    eprintln!("test took {:?}", t0.elapsed());
}

/// 1b. The step's weight also holds when the stable surge comes up slower than the canary
/// (old version with READY_DELAY_MS=2000): the canary may only join traffic once enough
/// stable instances serve beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_share_holds_while_the_stable_surge_warms_up() {
    let t0 = Instant::now();
    let web =
        PluginDef::new("web", V1).env("READY_DELAY_MS", "2000").rollout(&canary("[25, 100]", "2s", true, 2, 0.05));
    let (_docker, fleet, backend, _client) = setup("pcsurge", &web).await;
    let mut next = web.clone().version(V2);
    next.env.retain(|(k, _)| k != "READY_DELAY_MS");
    fleet.plugin(&next);
    let story = Story::new(&fleet.name);
    let (report, watched, w0) = reconcile_watched(&fleet, &backend, &story, "web").await;
    let timeline = watched.timeline.join("\n");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    assert_eq!(report.results[0].result, Ending::Converged, "{}", story.text());
    let promoting = story.first("passed, next step").map(|t| t - w0).unwrap_or(f64::MAX);
    for (t, s) in &watched.snapshots {
        if *t >= promoting {
            break;
        }
        let c = share(s, |i| is_canary_of(i, V2));
        assert!(c <= 25.0 + EPS, "t={t:.2}s: canary at {c:.1} % at the 25 % step: {}\n{timeline}", layout(s));
    }
    eprintln!("test took {:?}", t0.elapsed());
}

/// 1c. A canary that never gets ready (NEVER_READY=1) beside a stable surge: after the
/// health-check timeout the canary goes and the previous version serves — a rollback, whose
/// status must not claim the previous version failed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_canary_with_a_surge_is_rolled_back_not_failed() {
    let t0 = Instant::now();
    let policy =
        "{strategy: Canary, canaryConfig: {steps: [25, 100], evaluationPeriod: 2s, autoRollback: true, maxSurge: 2, \
                  thresholds: {maxErrorRate: 0.05}}, rollingConfig: {healthCheckTimeout: 4s}, analysis: {minSamples: 10}}";
    let web = PluginDef::new("web", V1).rollout(policy);
    let (_docker, fleet, backend, _client) = setup("pcnever", &web).await;
    fleet.plugin(&web.clone().version(V2).env("NEVER_READY", "1"));
    let story = Story::new(&fleet.name);
    let (report, watched, _) = reconcile_watched(&fleet, &backend, &story, "web").await;
    let timeline = watched.timeline.join("\n");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    let now = fleet.observe(&backend, Some("web")).await;
    eprintln!("[{}] MEASURED never-ready canary: {:?}; left {}", fleet.name, report.results[0].result, layout(&now));
    assert!(settled_at(&now, &web), "the previous version serves alone: {}", layout(&now));
    match &report.results[0].result {
        Ending::RolledBack { reason } => assert!(reason.contains("not ready"), "{reason}"),
        other => panic!("expected RolledBack, got {other:?}\n{}", story.text()),
    }
    eprintln!("test took {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Pause, promote, abort (daemon)

/// A `web` at V1 under the daemon, then V2 with 30 % errors and `autoRollback: false`: waits
/// until the status branch shows the rollout paused, checks the canary holds its step over
/// three more passes. Returns the rig and the bad definition.
fn paused_canary(tag: &str) -> (Rig, PluginDef) {
    let web = PluginDef::new("web", V1).rollout(&canary("[25, 50, 100]", "3s", false, 2, 0.05));
    let rig = Rig::start(tag, &web);
    let bad = web.clone().version(V2).env("ERROR_RATE", "0.3");
    let pushed = Instant::now();
    rig.push(&bad, "web 1.1.0 answering 30 % errors");
    let paused = |s: &plugsync::status::PluginStatus| s.rollout.as_ref().is_some_and(|r| r.paused.is_some());
    let took = common_daemon::wait_for(
        "status/web.yaml to show the rollout paused",
        Duration::from_secs(60),
        || rig.status("web").is_some_and(|s| paused(&s)),
        || rig.context("web"),
    );
    let status = rig.status("web").unwrap();
    eprintln!(
        "[{}] paused {took:?} after the push ({:?} since); status/web.yaml:\n{}",
        rig.fleet.name,
        pushed.elapsed(),
        rig.status_text("web")
    );
    assert_eq!(status.state, Lifecycle::Installing, "a paused rollout is still installing: {status:?}");
    let why = status.rollout.as_ref().and_then(|r| r.paused.clone()).unwrap();
    assert!(why.contains("error rate"), "the pause says why: {why}");
    assert!(
        status.last_error.as_deref().is_some_and(|e| e.contains("error rate")),
        "lastError: {:?}",
        status.last_error
    );

    // The canary holds its step (25 %: one canary beside three stable) over more passes.
    let before = rig.observe("web");
    let canaries: Vec<String> = before.iter().filter(|i| is_canary_of(i, V2)).map(|i| i.id.clone()).collect();
    assert_eq!(canaries.len(), 1, "one canary at 25 %: {}", layout(&before));
    let c = share(&before, |i| i.version == V2);
    assert!((c - 25.0).abs() < EPS, "the paused canary serves 25 % of the instances: {}", layout(&before));
    // Three more passes and at least 3 s (more than the 1 s poll interval, whatever wakes it).
    let held_since = Instant::now();
    common_daemon::wait_ticks(&rig.daemon, 3, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3).saturating_sub(held_since.elapsed()));
    let after = rig.observe("web");
    let still: Vec<String> = after.iter().filter(|i| is_canary_of(i, V2) && i.serving).map(|i| i.id.clone()).collect();
    assert_eq!(still, canaries, "the paused canary stays as it was: {} → {}", layout(&before), layout(&after));
    assert!((share(&after, |i| i.version == V2) - 25.0).abs() < EPS, "{}", layout(&after));
    assert!(rig.status("web").is_some_and(|s| paused(&s)), "still paused: {}", rig.status_text("web"));
    eprintln!(
        "[{}] paused layout held over 3 passes and {:?}: {}",
        rig.fleet.name,
        held_since.elapsed(),
        layout(&after)
    );
    (rig, bad)
}

/// 3a. `autoRollback: false`: the failing canary pauses; `promote` through the API takes the
/// new version to 100 %.
#[test]
fn paused_canary_is_promoted_through_the_api() {
    let t0 = Instant::now();
    let (rig, bad) = paused_canary("pcpromote");
    // A wrong token changes nothing.
    let url = format!("{}/api/v1/plugins/web/rollout/promote", rig.daemon.base_url());
    let (code, _) = common_daemon::http_post(&url, &[("Authorization", "Bearer wrong".into())], b"");
    assert_eq!(code, 401);
    let asked = Instant::now();
    let (code, body) = rig.command("web", "promote");
    assert_eq!(code, 202, "promote accepted: {body}");
    let took = rig.wait_active(&bad, Duration::from_secs(60));
    let now = rig.observe("web");
    assert!(now.iter().all(|i| i.slot == Slot::Stable && i.version == V2), "{}", layout(&now));
    let status = rig.status("web").unwrap();
    assert!(
        status.rollout.is_none() && status.failed.is_none(),
        "a finished rollout leaves no progress nor failure: {}",
        rig.status_text("web")
    );
    eprintln!(
        "[{}] MEASURED promote → 100 % in {took:?} ({:?} after the POST); test took {:?}",
        rig.fleet.name,
        asked.elapsed(),
        t0.elapsed()
    );
}

/// 3b. Same pause; `abort` through the API rolls back to the previous version.
#[test]
fn paused_canary_is_aborted_through_the_api() {
    let t0 = Instant::now();
    let (rig, _bad) = paused_canary("pcabort");
    let asked = Instant::now();
    let (code, body) = rig.command("web", "abort");
    assert_eq!(code, 202, "abort accepted: {body}");
    let v1 = PluginDef::new("web", V1);
    let took = common_daemon::wait_for(
        "web back at 1.0.0 alone and ROLLED_BACK in status",
        Duration::from_secs(60),
        || settled_at(&rig.observe("web"), &v1) && rig.status("web").is_some_and(|s| s.state == Lifecycle::RolledBack),
        || rig.context("web"),
    );
    let status = rig.status("web").unwrap();
    let failed = status.failed.clone().expect("failed: recorded");
    assert!(failed.reason.contains("aborted"), "the failure says it was aborted: {failed:?}");
    assert!(failed.version.contains(V2), "{failed:?}");
    eprintln!(
        "[{}] MEASURED abort → rolled back in {took:?} ({:?} after the POST); test took {:?}",
        rig.fleet.name,
        asked.elapsed(),
        t0.elapsed()
    );
}
