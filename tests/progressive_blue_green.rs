//! Blue-green rollouts against the real Docker engine, with the `http-probe` client container
//! resolving the plugin's alias through Docker's DNS and sending `GET /` every 20 ms:
//!
//! - green failing its smoke test never receives a request;
//! - the switch (Instant, Gradual) loses no request;
//! - green failing during monitoring is switched back at once (measured from the failing
//!   verdict to the moment the client only reaches blue).
//!
//! Needs Docker; fails loudly without it. Run with `--test-threads=1`: timings are measured.

use plugsync_test_support::docker as common;
use plugsync_test_support::progressive as common_progressive;

use common::{PluginDef, V1, V2};
use common_progressive::*;
use plugsync::plan::Instance;
use plugsync::reconcile::Ending;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn addresses(instances: &[Instance], version: &str) -> BTreeSet<String> {
    instances.iter().filter(|i| i.version == version).filter_map(|i| i.address).map(|a| a.to_string()).collect()
}

/// Every address any instance of `version` had during the watch.
fn addresses_seen(watched: &common::Watch, version: &str) -> BTreeSet<String> {
    watched.snapshots.iter().flat_map(|(_, s)| addresses(s, version)).collect()
}

/// 4. Green answers 500 to everything (ERROR_RATE 1.0) and the smoke test is `GET /`: the
/// smoke test fails, green is removed, and it never carried the alias — the client saw no
/// failure and DNS never named a green address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_failing_its_smoke_test_never_receives_traffic() {
    let t0 = Instant::now();
    let web = PluginDef::new("web", V1).replicas(2).rollout(&blue_green("1s", "Instant", "2s", "[/]"));
    let (docker, fleet, backend, client) = setup("pbsmoke", &web).await;
    fleet.plugin(&web.clone().version(V2).env("ERROR_RATE", "1.0"));
    let story = Story::new(&fleet.name);
    let (report, watched, w0) = reconcile_watched(&fleet, &backend, &story, "web").await;
    let timeline = watched.timeline.join("\n");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = ClientLog::read(&docker, &client).await;

    let reason = match &report.results[0].result {
        Ending::RolledBack { reason } => reason.clone(),
        other => panic!("expected a rollback, got {other:?}\n{}", story.text()),
    };
    assert!(reason.contains("smoke test"), "the rollback names the smoke test: {reason}");
    let green = addresses_seen(&watched, V2);
    assert!(!green.is_empty(), "green was started (and seen by the watch):\n{timeline}");
    for (t, s) in &watched.snapshots {
        assert!(
            !s.iter().any(|i| i.version == V2 && i.serving),
            "t={t:.2}s: green carries the alias: {}\n{timeline}",
            layout(s)
        );
        assert!(serving(s).len() >= 2, "t={t:.2}s: blue lost capacity: {}\n{timeline}", layout(s));
    }
    let (ok, failed) = log.counts_between(w0, wall());
    let seen = log.addresses_since(w0);
    eprintln!(
        "[{}] MEASURED smoke-test rollback: client {ok} ok, {failed} failed; DNS named {seen:?}; green had {green:?}",
        fleet.name
    );
    assert_eq!(failed, 0, "the client got failures (green answers 500): {:?}", log.fails_between(w0, wall()));
    assert!(ok > 50, "the client kept getting answers: {ok}");
    assert!(seen.is_disjoint(&green), "DNS named a green address {green:?}: {seen:?}");
    let now = fleet.observe(&backend, Some("web")).await;
    assert!(now.len() == 2 && now.iter().all(|i| i.version == V1 && i.serving && i.is_running()), "{}", layout(&now));
    eprintln!("test took {:?}", t0.elapsed());
}

/// 5. The switch from blue to green loses no request from the client hammering the alias.
async fn switch_loses_no_request(tag: &str, switchover: &str) {
    let t0 = Instant::now();
    let web = PluginDef::new("web", V1).replicas(2).rollout(&blue_green("1s", switchover, "2s", "[/health/ready]"));
    let (docker, fleet, backend, client) = setup(tag, &web).await;
    fleet.plugin(&web.clone().version(V2));
    let story = Story::new(&fleet.name);
    let (report, watched, w0) = reconcile_watched(&fleet, &backend, &story, "web").await;
    let timeline = watched.timeline.join("\n");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = ClientLog::read(&docker, &client).await;
    assert_eq!(report.results[0].result, Ending::Converged, "{}", story.text());

    let green_serves =
        first_poll(&watched, 0.0, |s| s.iter().any(|i| i.version == V2 && i.serving)).expect("green served");
    let blue_out = first_poll(&watched, green_serves, |s| !s.iter().any(|i| i.version == V1 && i.serving))
        .expect("blue left traffic");
    let shares: Vec<u32> = dedup(watched.snapshots.iter().map(|(_, s)| share(s, |i| i.version == V2).round() as u32));
    let (ok, failed) = log.counts_between(w0, wall());
    eprintln!(
        "[{}] MEASURED {switchover} switch: green first served at {green_serves:.2}s, blue out of traffic at {blue_out:.2}s ({:.2}s); \
         green share by poll {shares:?} %; reconcile {:.2}s; client {ok} ok, {failed} failed",
        fleet.name,
        blue_out - green_serves,
        watched.snapshots.last().map(|(t, _)| *t).unwrap_or(0.0)
    );
    for (t, s) in &watched.snapshots {
        assert!(serving(s).len() >= 2, "t={t:.2}s: fewer than 2 instances serve: {}\n{timeline}", layout(s));
    }
    if switchover == "Gradual" {
        assert!(shares.contains(&50), "a gradual switch serves green at 50 % first: {shares:?}\n{timeline}");
    }
    let mut lost: Vec<String> = Vec::new();
    for (t, ip, why) in log.fails_between(w0, wall()) {
        lost.push(format!("t={:.2}s {ip} {why}; DNS answers around the connect (t-1 s):", t - w0));
        lost.extend(
            log.stats
                .iter()
                .filter(|s| (s.0 - (t - 1.0)).abs() < 0.8)
                .map(|s| format!("    t={:.2}s ips={:?}", s.0 - w0, s.3)),
        );
    }
    assert_eq!(failed, 0, "requests lost during the {switchover} switch (client times; a connect times out after 1 s): {lost:#?}\n{}\ntimeline:\n{timeline}", story.text());
    assert!(ok > 100, "the client kept getting answers: {ok}");
    let now = fleet.observe(&backend, Some("web")).await;
    assert!(now.len() == 2 && now.iter().all(|i| i.version == V2 && i.serving && i.is_running()), "{}", layout(&now));
    // Docker's DNS names exactly the green instances.
    let green = addresses(&now, V2);
    let resolved = log.stats.last().map(|s| s.3.clone()).unwrap_or_default();
    assert_eq!(resolved, green, "the alias resolves to the green instances");
    eprintln!("test took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_switch_loses_no_request() {
    switch_loses_no_request("pbinstant", "Instant").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gradual_switch_loses_no_request() {
    switch_loses_no_request("pbgradual", "Gradual").await;
}

/// 6. Green answers 50 % errors: the monitoring verdict fails after the switch and blue takes
/// the alias back at once. Measured: from green taking traffic and from the failing verdict
/// (the "switching back" narration) to the moment the client only reaches blue again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_green_is_switched_back_at_once() {
    let t0 = Instant::now();
    let web = PluginDef::new("web", V1).rollout(&blue_green("0s", "Instant", "4s", "[/health/ready]"));
    let (docker, fleet, backend, client) = setup("pbback", &web).await;
    let blue = addresses(&fleet.observe(&backend, Some("web")).await, V1);
    fleet.plugin(&web.clone().version(V2).env("ERROR_RATE", "0.5"));
    let story = Story::new(&fleet.name);
    let (report, watched, w0) = reconcile_watched(&fleet, &backend, &story, "web").await;
    let timeline = watched.timeline.join("\n");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let log = ClientLog::read(&docker, &client).await;
    let reason = match &report.results[0].result {
        Ending::RolledBack { reason } => reason.clone(),
        other => panic!("expected a switch back, got {other:?}\n{}", story.text()),
    };
    assert!(reason.contains("error rate"), "{reason}");
    let green = addresses_seen(&watched, V2);

    let green_in =
        first_poll(&watched, 0.0, |s| s.iter().any(|i| i.version == V2 && i.serving)).expect("green took traffic") + w0;
    let verdict = story.first("switching back").expect("narrated switch back");
    // The client's last answer from green, and the first DNS answer after which only blue is named.
    let last_green_fail = log.fails.iter().filter(|f| green.contains(&f.1)).map(|f| f.0).fold(0.0, f64::max);
    let first_green_fail = log.fails.iter().filter(|f| green.contains(&f.1)).map(|f| f.0).fold(f64::MAX, f64::min);
    let only_blue = log
        .stats
        .iter()
        .enumerate()
        .filter(|(_, s)| s.0 > green_in)
        .find(|(n, _)| log.stats[*n..].iter().all(|s| s.3.is_subset(&blue) && !s.3.is_empty()))
        .map(|(_, s)| s.0)
        .expect("the client ends up naming blue only");
    let back = only_blue.max(last_green_fail);
    eprintln!(
        "[{}] MEASURED blue-green switch back: green took traffic at +0.00s (first green 500 seen by the client at +{:.2}s), \
         failing verdict at +{:.2}s, last green answer at +{:.2}s, client resolves blue only from +{:.2}s → {:.2}s after the verdict, \
         {:.2}s after green took traffic; RolledBack reported at +{:.2}s",
        fleet.name,
        first_green_fail - green_in,
        verdict - green_in,
        last_green_fail - green_in,
        only_blue - green_in,
        back - verdict,
        back - green_in,
        story.first("web: rolled back").unwrap_or(f64::NAN) - green_in
    );
    for (t, s) in &watched.snapshots {
        assert!(!serving(s).is_empty(), "t={t:.2}s: nothing serves\n{timeline}");
    }
    assert!(back - verdict < 3.0, "the client reached green for {:.2}s after the failing verdict", back - verdict);
    let now = fleet.observe(&backend, Some("web")).await;
    assert!(now.len() == 1 && now.iter().all(|i| i.version == V1 && i.serving && i.is_running()), "{}", layout(&now));
    assert_eq!(addresses(&now, V1), blue, "blue is the same instance, switched back (not restarted)");
    eprintln!("test took {:?}", t0.elapsed());
}
