//! Rollouts against the real Docker engine: a start-first rolling update, a never-ready
//! version rolled back without a single failed request, and Direct restoring the previous
//! version.
//!
//! Traffic is measured from INSIDE the fleet network: a client container (the std-only
//! `tests/fixtures/docker/http-probe`, built static and packaged `FROM scratch`) resolves the
//! plugin's alias through Docker's embedded DNS before every request, exactly as a plugin
//! calling `http://<id>:8080` would, and counts the answers.
//!
//! Needs a Docker engine; fails loudly (never skips) without one.

use plugsync_test_support::docker as common;

use common::*;
use plugsync::plan::{ChangeKind, DesiredHealth, Instance};
use plugsync::reconcile::{Ending, Report};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn ids(instances: &[Instance]) -> BTreeSet<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}

fn ips(instances: &[Instance]) -> BTreeSet<String> {
    instances.iter().filter_map(|i| i.address).map(|a| a.to_string()).collect()
}

/// Runs one reconcile of the fleet dir while polling `observe` for `plugin` every ~100 ms.
async fn reconcile_watched(
    fleet: &TestFleet,
    backend: &plugsync::backend::docker::DockerBackend,
    plugin: &str,
) -> (Report, Watch) {
    let local = fleet.load();
    let stop = AtomicBool::new(false);
    let run = async {
        let report = fleet.reconcile_loaded(backend, &local, DesiredHealth::Complete).await;
        stop.store(true, Ordering::SeqCst);
        report
    };
    tokio::join!(run, watch(backend, &fleet.name, plugin, &stop))
}

/// 7. Version bump, Rolling batchSize 1: start-first (4 instances at some point, never more),
/// never fewer than 3 running and serving, ending with 3 instances of the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_is_start_first_and_keeps_capacity() {
    let t0 = Instant::now();
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("rolling").await;
    let web = PluginDef::new("web", V1).replicas(3).rollout(&rolling(1, "0s", "30s"));
    fleet.plugin(&web);
    let backend = fleet.backend().await;
    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "{:#?}", report.results);
    let old = fleet.observe(&backend, Some("web")).await;
    assert_eq!(old.len(), 3);
    assert!(old.iter().all(|i| i.serving && i.is_running() && i.version == V1), "{old:#?}");
    let client = ProbeClient::start(&docker, &fleet, "web").await;
    let before = client.stats(&docker).await;

    fleet.plugin(&web.clone().version(V2));
    let (report, watched) = reconcile_watched(&fleet, &backend, "web").await;
    let timeline = watched.timeline.join("\n");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    // What a client on the network saw during the update: nothing failed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = client.stats(&docker).await;
    let failures_during = after.fail - before.fail;
    eprintln!(
        "[{}] client during rolling update: {} ok, {} failed; failures: {:#?}",
        fleet.name,
        after.ok - before.ok,
        after.fail - before.fail,
        after.failures
    );

    assert_eq!(report.results.len(), 1, "{:#?}", report.results);
    assert_eq!(report.results[0].kind, ChangeKind::Update);
    assert_eq!(report.results[0].result, Ending::Converged, "timeline:\n{timeline}");
    assert!(watched.polls >= 5, "too few polls ({}) to judge the rollout:\n{timeline}", watched.polls);
    assert!(
        watched.min_serving.unwrap_or(0) >= 3,
        "running+serving instances dropped to {:?} (< 3 replicas) during the rolling update:\n{timeline}",
        watched.min_serving
    );
    // Start-first: a new instance runs beside the 3 serving old ones before any old one goes.
    let start_first = watched.snapshots.iter().any(|(_, s)| {
        let serving = s.iter().filter(|i| i.is_running() && i.serving).count();
        let running = s.iter().filter(|i| i.is_running()).count();
        running >= 4 && serving >= 3
    });
    assert!(start_first, "never saw 4 instances at once (start-first):\n{timeline}");
    // batchSize 1: never more than one new instance waiting outside traffic, never more than
    // replicas + 1 in traffic.
    for (t, s) in &watched.snapshots {
        let new_waiting = s.iter().filter(|i| i.version == V2 && i.is_running() && !i.serving).count();
        let serving = s.iter().filter(|i| i.is_running() && i.serving).count();
        assert!(
            new_waiting <= 1,
            "t={t:.2}s: {new_waiting} new instances starting at once with batchSize 1:\n{timeline}"
        );
        assert!(serving <= 4, "t={t:.2}s: {serving} instances serving (replicas 3, batch 1):\n{timeline}");
    }

    let new = fleet.observe(&backend, Some("web")).await;
    assert_eq!(new.len(), 3, "{new:#?}");
    assert!(new.iter().all(|i| i.serving && i.is_running() && i.version == V2), "{new:#?}");
    assert!(ids(&new).is_disjoint(&ids(&old)), "old containers remain");
    for i in &new {
        assert_eq!(root_json(i).await["version"], V2, "{}", i.name);
    }
    assert!(fleet.plan(&backend, DesiredHealth::Complete).await.no_changes());
    // Docker's DNS follows within moments: the alias resolves to exactly the new instances.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resolved: BTreeSet<String> = client.stats(&docker).await.ips.into_iter().collect();
        if resolved == ips(&new) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "5 s after the update, web resolves to {resolved:?}, not the new instances {:?}",
            ips(&new)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        failures_during, 0,
        "a client on the network saw failed requests during the rolling update: {:#?}\ntimeline:\n{timeline}",
        after.failures
    );
    eprintln!("test took {:?}", t0.elapsed());
}

/// 8. A version that never becomes ready is rolled back: the old containers (same ids) keep
/// serving, the new ones are gone, and a client on the network sees zero failed requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_version_is_rolled_back_without_failed_requests() {
    let t0 = Instant::now();
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("rollback").await;
    let api = PluginDef::new("api", V1).replicas(2).rollout(&rolling(1, "0s", "5s"));
    fleet.plugin(&api);
    let backend = fleet.backend().await;
    assert!(fleet.reconcile(&backend).await.succeeded());
    let old = fleet.observe(&backend, Some("api")).await;
    assert_eq!(old.len(), 2);
    let client = ProbeClient::start(&docker, &fleet, "api").await;
    let before = client.stats(&docker).await;
    assert_eq!(before.fail, 0, "failures before the rollout even started: {before:?}");

    fleet.plugin(&api.clone().version(V2).env("NEVER_READY", "1"));
    let started = Instant::now();
    let (report, watched) = reconcile_watched(&fleet, &backend, "api").await;
    let took = started.elapsed();
    let timeline = watched.timeline.join("\n");
    assert_eq!(report.results.len(), 1, "{:#?}", report.results);
    let reason = match &report.results[0].result {
        Ending::RolledBack { reason } => reason.clone(),
        other => panic!("expected RolledBack, got {other:?}\ntimeline:\n{timeline}"),
    };
    assert!(reason.contains(V2) && reason.contains("not ready"), "reason: {reason}");
    assert!(!report.succeeded());
    assert!(took >= Duration::from_secs(5), "rolled back after {took:?}, before healthCheckTimeout 5s");

    let now = fleet.observe(&backend, Some("api")).await;
    assert_eq!(ids(&now), ids(&old), "the old instances must be the ones still running: {now:#?}");
    assert!(now.iter().all(|i| i.serving && i.is_running() && i.version == V1), "{now:#?}");
    let leftovers: Vec<String> = inspect_fleet(&docker, &fleet.name)
        .await
        .into_iter()
        .filter(|c| c.config.as_ref().and_then(|c| c.labels.as_ref()).is_some_and(|l| l["plugsync.version"] == V2))
        .filter_map(|c| c.name)
        .collect();
    assert!(leftovers.is_empty(), "containers of the failed version remain: {leftovers:?}");
    assert!(
        watched.min_serving.unwrap_or(0) >= 2,
        "serving instances dropped to {:?}:\n{timeline}",
        watched.min_serving
    );
    assert_eq!(
        watched.versions_serving,
        BTreeSet::from([V1.to_string()]),
        "a never-ready instance got traffic:\n{timeline}"
    );
    for i in &now {
        assert_eq!(root_json(i).await["version"], V1);
    }

    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = client.stats(&docker).await;
    let during = after.ok - before.ok;
    eprintln!("[{}] client during the failed rollout: {during} ok, {} failed", fleet.name, after.fail);
    assert_eq!(after.fail, 0, "requests failed during the rollout: {:#?}\ntimeline:\n{timeline}", after.failures);
    assert!(during >= 50, "the client made only {during} requests during a {took:?} rollout: {after:?}");
    assert_eq!(
        after.ips.iter().cloned().collect::<BTreeSet<_>>(),
        ips(&old),
        "DNS must still resolve api to the old instances"
    );
    eprintln!("test took {:?}", t0.elapsed());
}

/// 9. Direct with a never-ready version: the previous version is restored and serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_never_ready_restores_previous_version() {
    let t0 = Instant::now();
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("direct").await;
    let svc = PluginDef::new("svc", V1).replicas(2).rollout(&direct("5s"));
    fleet.plugin(&svc);
    let backend = fleet.backend().await;
    assert!(fleet.reconcile(&backend).await.succeeded());
    let old = fleet.observe(&backend, Some("svc")).await;
    assert_eq!(old.len(), 2);
    let spec_hash = old[0].spec_hash.clone();

    fleet.plugin(&svc.clone().version(V2).env("NEVER_READY", "1"));
    let (report, watched) = reconcile_watched(&fleet, &backend, "svc").await;
    let timeline = watched.timeline.join("\n");
    assert_eq!(report.results.len(), 1, "{:#?}", report.results);
    match &report.results[0].result {
        Ending::RolledBack { reason } => assert!(reason.contains(V2), "reason: {reason}"),
        other => panic!("expected RolledBack, got {other:?}\ntimeline:\n{timeline}"),
    }
    assert!(watched.max_running >= 2, "{timeline}");
    assert!(!watched.versions_serving.contains(V2), "the never-ready version got traffic:\n{timeline}");

    let now = fleet.observe(&backend, Some("svc")).await;
    assert_eq!(now.len(), 2, "{now:#?}");
    for i in &now {
        assert!(i.serving && i.is_running(), "{i:?}");
        assert_eq!(i.version, V1, "{i:?}");
        assert_eq!(i.spec_hash, spec_hash, "restored instances must carry the previous spec: {i:?}");
        assert_eq!(root_json(i).await["version"], V1, "{}", i.name);
    }
    let leftovers: Vec<String> = inspect_fleet(&docker, &fleet.name)
        .await
        .into_iter()
        .filter(|c| c.config.as_ref().and_then(|c| c.labels.as_ref()).is_some_and(|l| l["plugsync.version"] == V2))
        .filter_map(|c| c.name)
        .collect();
    assert!(leftovers.is_empty(), "containers of the failed version remain: {leftovers:?}");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    eprintln!("test took {:?}", t0.elapsed());
}
