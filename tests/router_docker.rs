//! The managed router on the real Docker engine, driven by plugsync itself (`traffic: {router:
//! haproxy}`), requests sent through the router's replicas:
//!
//! - the router appears with the first routed plugin: two replicas, each holding the alias;
//! - a canary beside three stable instances gets exactly its step's weight (10, 25, 50 %:
//!   2,000 requests each within ±2 points), with one canary instance count for the rollout;
//! - two more plugins rolled out at the same time, `stickyBy: header:X-Correlation-Id` and
//!   `stickyBy: header:X-Tenant-ID` in their own manifests: 500 ids × 5 requests per step, no
//!   id sees two versions at one weight, none moves from canary back to stable as the weight
//!   rises, and the share of ids on the canary is within ±3 points of the weight;
//! - zero failed requests from a keep-alive client through the whole rollout;
//! - a replica killed is replaced on the next pass; the router leaves with the last plugin;
//! - clients on the fleet network resolving the alias through Docker's DNS: a router replica
//!   killed under load costs at most the requests already sent to it, and plugsync replaces
//!   it; a reconfiguration that replaces both replicas (a second plugin routed) fails none;
//! - a plugin exposing no metrics at all (`NO_METRICS=1`) gets verdicts from the router's own
//!   log: a canary answering 10 % errors is rolled back within one evaluation period, a
//!   healthy one is promoted.
//!
//! Needs Docker and Debian's haproxy (the router image is built around it); fails loudly.

use plugsync_test_support::docker::{PluginDef, V1, V2};
use plugsync_test_support::progressive::canary;
use plugsync_test_support::routed::*;

use plugsync::backend::Backend;
use plugsync::plan::router::RouterAction;
use plugsync::plan::DesiredHealth;
use plugsync::reconcile::Ending;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sticky plugins: id, the header their sessions are keyed by, how their keys look.
const STICKY: [(&str, &str, &str); 2] = [("ids", "X-Correlation-Id", "corr-"), ("tenants", "X-Tenant-ID", "tenant-")];

/// Which of 500 keys landed on the canary of `plugin` (5 requests each; every key saw one
/// version, asserted).
async fn sticky_keys(
    client: &reqwest::Client,
    router: std::net::IpAddr,
    (plugin, header, prefix): (&str, &str, &str),
    weight: f64,
) -> BTreeMap<usize, bool> {
    let mut keys = BTreeMap::new();
    for id in 0..500 {
        let value = format!("{prefix}{id}");
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(version(client, router, plugin, Some((header, &value))).await == V2);
        }
        assert!(seen.iter().all(|c| *c == seen[0]), "{plugin}: {header} {value} saw two versions at {weight} %");
        keys.insert(id, seen[0]);
    }
    keys
}

// Long: one rollout observed step by step; the steps share the router and the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_behind_the_router_gets_exact_sticky_weights_without_failed_requests() {
    let (docker, fleet, _, story) = routed_fleet("rtr").await;
    let web = PluginDef::new("web", V1).replicas(3).rollout(&canary("[10, 25, 50, 100]", "20s", true, 0, 0.05));
    let sticky_defs = STICKY.map(|(id, header, _)| (PluginDef { id: id.into(), ..web.clone() }, header));
    let write_sticky = |version: &str| {
        for (def, header) in &sticky_defs {
            let yaml = def.clone().version(version).yaml();
            fleet.write(
                &format!("plugins/{}/plugin.yaml", def.id),
                &format!("{yaml}traffic:\n  stickyBy: header:{header}\n"),
            );
        }
    };
    fleet.plugin(&web);
    write_sticky(V1);
    let backend = fleet.backend().await;
    let router_action = |plan: plugsync::plan::Plan| plan.router.map(|r| r.action);
    let plan = fleet.plan(&backend, DesiredHealth::Complete).await;
    assert_eq!(router_action(plan.clone()), Some(RouterAction::Create), "{}", plugsync::plan::render::text(&plan));
    assert_eq!(reconcile(&fleet, &backend, &story).await, vec![Ending::Converged; 3], "{}", story.text());

    // The router appeared with the first routed plugin: two replicas holding its alias.
    let routers = replicas(&docker, &fleet).await;
    assert_eq!(routers.len(), 2, "router replicas: {routers:?}");
    let holds = |aliases: &Vec<String>| ["web", "ids", "tenants"].iter().all(|a| aliases.contains(&a.to_string()));
    assert!(routers.iter().all(|(_, ip, aliases)| ip.is_some() && holds(aliases)), "{routers:?}");
    let router = routers[0].1.expect("router address");
    let client = plugsync::tls::http_client();
    assert_eq!(version(&client, router, "web", None).await, V1);

    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let loader = load(router, "web", stop.clone(), ok.clone(), failed.clone());
    fleet.plugin(&web.clone().version(V2));
    write_sticky(V2);
    let rollout = {
        let (fleet_ref, backend_ref, story_ref) = (&fleet, &backend, &story);
        async move { reconcile(fleet_ref, backend_ref, story_ref).await }
    };
    let measure = async {
        let mut previous: [BTreeMap<usize, bool>; 2] = Default::default();
        let mut measured = Vec::new();
        for weight in [10.0, 25.0, 50.0] {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let at = |w: Option<f64>| w.is_some_and(|w| (w - weight).abs() < 1.0);
                if at(canary_weight(router, "web").await)
                    && at(canary_weight(router, "ids").await)
                    && at(canary_weight(router, "tenants").await)
                {
                    break;
                }
                assert!(Instant::now() < deadline, "the router never reached {weight} %:\n{}", story.text());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The router's own counters: the load client's requests land in the same rotation.
            let (canary_before, all_before) = served(router, "web").await;
            for _ in 0..2000 {
                version(&client, router, "web", None).await;
            }
            let (canary_after, all_after) = served(router, "web").await;
            // Counters only fall when servers leave: the step ended under the measurement.
            assert!(all_after >= all_before, "the rollout left {weight} % while it was measured:\n{}", story.text());
            let landed = all_after - all_before;
            assert!(landed >= 2000, "{landed} requests counted at {weight} %");
            let share = (canary_after - canary_before) as f64 * 100.0 / landed as f64;
            let (corr, tenants) = tokio::join!(
                sticky_keys(&client, router, STICKY[0], weight),
                sticky_keys(&client, router, STICKY[1], weight)
            );
            let still = |w: Option<f64>| w.is_some_and(|w| (w - weight).abs() < 1.0);
            for plugin in ["ids", "tenants"] {
                let now = canary_weight(router, plugin).await;
                assert!(still(now), "{plugin} left {weight} % while it was measured ({now:?}):\n{}", story.text());
            }
            let mut sticky_shares = Vec::new();
            for ((keys, before), (plugin, header, _)) in [corr, tenants].into_iter().zip(&mut previous).zip(STICKY) {
                let back: Vec<usize> =
                    before.iter().filter(|(id, was)| **was && !keys[*id]).map(|(id, _)| *id).collect();
                assert!(back.is_empty(), "{plugin}: keys moved from canary back to stable at {weight} %: {back:?}");
                let sticky_share = keys.values().filter(|c| **c).count() as f64 / 5.0;
                eprintln!(
                    "MEASURED at {weight} %: {share:.2} % of {landed} requests to web; {sticky_share:.1} % of 500 {header} \
                     keys on {plugin}'s canary"
                );
                sticky_shares.push((plugin, sticky_share));
                *before = keys;
            }
            measured.push((weight, share, sticky_shares));
        }
        measured
    };
    let (endings, measured) = tokio::join!(rollout, measure);
    stop.store(true, Ordering::Relaxed);
    loader.await.expect("load task");
    assert_eq!(endings, vec![Ending::Converged; 3], "{}", story.text());
    for (weight, share, sticky_shares) in measured {
        assert!((share - weight).abs() <= 2.0, "{share:.2} % of requests on canary at {weight} %");
        for (plugin, sticky_share) in sticky_shares {
            assert!(
                (sticky_share - weight).abs() <= 3.0,
                "{plugin}: {sticky_share:.1} % of keys on canary at {weight} %"
            );
        }
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("MEASURED keep-alive load during the rollout: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "requests failed during the rollout ({ok} ok)");
    assert!(ok > 1000, "the load ran ({ok} requests)");
    // On the measuring client's idle keep-alive connection: servers changed without a reload.
    assert_eq!(version(&client, router, "web", None).await, V2);
    let instances = backend.observe(&fleet.name, Some("web")).await.expect("observe").instances;
    assert_eq!(instances.len(), 3, "three V2 instances remain: {instances:?}");

    // A replica killed is replaced on the next pass (drift of the router healed), as planned.
    assert_eq!(router_action(fleet.plan(&backend, DesiredHealth::Complete).await), None);
    docker.kill_container(&routers[1].0, None).await.expect("kill a router replica");
    let plan = fleet.plan(&backend, DesiredHealth::Complete).await;
    assert_eq!(router_action(plan.clone()), Some(RouterAction::Heal), "{}", plugsync::plan::render::text(&plan));
    reconcile(&fleet, &backend, &story).await;
    let after = replicas(&docker, &fleet).await;
    assert_eq!(after.len(), 2, "{after:?}\n{}", story.text());
    assert!(after.iter().all(|(id, ip, _)| ip.is_some() && id != &routers[1].0), "{after:?}");

    // The router leaves with the last routed plugin.
    fleet.remove_plugin("web");
    fleet.remove_plugin("ids");
    fleet.remove_plugin("tenants");
    reconcile(&fleet, &backend, &story).await;
    assert!(replicas(&docker, &fleet).await.is_empty(), "{}", story.text());
}

/// Two plugins that expose no metrics, rolled out at once under load: one canary answers 10 %
/// errors, the other is healthy. The router's log is all analysis has.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_router_judges_a_plugin_that_exposes_no_metrics() {
    let (docker, fleet, backend, story) = routed_fleet("rtra").await;
    let period = 6.0;
    let policy = canary("[50, 100]", "6s", true, 0, 0.05);
    let bad = PluginDef::new("bad", V1).replicas(2).env("NO_METRICS", "1").rollout(&policy);
    let good = PluginDef { id: "good".into(), ..bad.clone() };
    fleet.plugin(&bad);
    fleet.plugin(&good);
    assert_eq!(reconcile(&fleet, &backend, &story).await, vec![Ending::Converged; 2], "{}", story.text());
    let router = replicas(&docker, &fleet).await.first().and_then(|r| r.1).expect("a router replica");
    let metrics = plugsync::tls::http_client()
        .get(format!("http://{router}:8080/metrics"))
        .header("Host", "good:8080")
        .send()
        .await
        .expect("GET /metrics through the router");
    assert_eq!(metrics.status().as_u16(), 404, "the plugin exposes no metrics");

    let stop = Arc::new(AtomicBool::new(false));
    let counters = || (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let ((bad_ok, bad_failed), (good_ok, good_failed)) = (counters(), counters());
    let loaders = [
        load(router, "bad", stop.clone(), bad_ok.clone(), bad_failed.clone()),
        load(router, "good", stop.clone(), good_ok.clone(), good_failed.clone()),
    ];
    fleet.plugin(&bad.clone().version(V2).env("ERROR_RATE", "0.1"));
    fleet.plugin(&good.clone().version(V2));
    let endings = reconcile(&fleet, &backend, &story).await;
    stop.store(true, Ordering::Relaxed);
    for loader in loaders {
        loader.await.expect("load task");
    }
    eprintln!(
        "MEASURED load: bad {} ok {} failed (its canary answers 10 % errors), good {} ok {} failed",
        bad_ok.load(Ordering::Relaxed),
        bad_failed.load(Ordering::Relaxed),
        good_ok.load(Ordering::Relaxed),
        good_failed.load(Ordering::Relaxed)
    );
    let text = story.text();
    let reason = match &endings[..] {
        [Ending::RolledBack { reason }, Ending::Converged] => reason.clone(),
        other => panic!("expected bad rolled back and good promoted, got {other:?}\n{text}"),
    };
    assert!(reason.contains("error rate"), "the rollback names the error rate: {reason}");
    let evaluating = story.first("bad [stable]: canary 50 %").expect("bad's canary was evaluated");
    let rolled_back = story.first("bad: rolled back").expect("bad rolled back");
    eprintln!(
        "MEASURED bad's canary rolled back {:.2} s after its evaluation began (period {period} s)",
        rolled_back - evaluating
    );
    assert!(rolled_back - evaluating <= period, "rolled back after {:.2} s\n{text}", rolled_back - evaluating);
    assert!(story.first("good [stable]: canary 50 %").is_some() && text.contains("passed"), "{text}");
    assert_eq!(good_failed.load(Ordering::Relaxed), 0, "the healthy plugin failed requests");
    let versions = |id: &'static str| {
        let backend = &backend;
        let fleet = &fleet;
        async move {
            let observed = backend.observe(&fleet.name, Some(id)).await.expect("observe").instances;
            observed.into_iter().map(|i| i.version).collect::<Vec<_>>()
        }
    };
    assert_eq!(versions("bad").await, vec![V1.to_string(); 2], "bad is back on V1");
    assert_eq!(versions("good").await, vec![V2.to_string(); 2], "good is on V2");
}

/// A DNS-resolving client on the fleet network (fresh connection per request, every 20 ms)
/// while a router replica is killed, healed, and both replicas are replaced start-first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn router_replicas_die_and_are_replaced_under_load() {
    let (docker, fleet, backend, story) = routed_fleet("rtrk").await;
    let web = PluginDef::new("web", V1).replicas(2);
    fleet.plugin(&web);
    assert_eq!(reconcile(&fleet, &backend, &story).await, vec![Ending::Converged], "{}", story.text());
    let client = plugsync_test_support::progressive::start_client(&docker, &fleet, "web").await;
    let before = replicas(&docker, &fleet).await;
    assert_eq!(before.len(), 2, "{before:?}");
    let stats = client.stats(&docker).await;
    assert_eq!(stats.ips.len(), 2, "the alias resolves to both replicas: {stats:?}");

    // Kill one replica: requests already on their way to it fail; the DNS drops it.
    docker.kill_container(&before[0].0, None).await.expect("kill a router replica");
    let killed = Instant::now();
    let mut after_kill = client.stats(&docker).await;
    while after_kill.ok < stats.ok + 50 && killed.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after_kill = client.stats(&docker).await;
    }
    eprintln!("MEASURED 50 answers by the surviving replica {:?} after the kill", killed.elapsed());
    reconcile(&fleet, &backend, &story).await;
    // The client may sit out a 3 s connect timeout on the dead address before it resolves again.
    let healing = Instant::now();
    let mut healed = client.stats(&docker).await;
    while healed.ips.len() < 2 && healing.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        healed = client.stats(&docker).await;
    }
    assert_eq!(replicas(&docker, &fleet).await.len(), 2, "{}", story.text());
    eprintln!(
        "MEASURED one router replica killed under load: {} of {} requests failed ({:?}); {} more answered after the heal",
        after_kill.fail - stats.fail,
        after_kill.ok + after_kill.fail - stats.ok - stats.fail,
        after_kill.failures.iter().skip(stats.failures.len()).collect::<Vec<_>>(),
        healed.ok - after_kill.ok,
    );
    assert!(after_kill.ok >= stats.ok + 50, "the other replica kept serving: {stats:?} → {after_kill:?}");
    assert_eq!(healed.ips.len(), 2, "the alias resolves to two replicas again: {healed:?}");

    // A second routed plugin: both replicas are replaced (new aliases), start-first.
    fleet.plugin(&PluginDef::new("other", V1));
    let t = Instant::now();
    reconcile(&fleet, &backend, &story).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reconfigured = client.stats(&docker).await;
    let now = replicas(&docker, &fleet).await;
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now
        .iter()
        .all(|(id, _, aliases)| aliases.contains(&"other".to_string()) && !before.iter().any(|b| &b.0 == id)));
    eprintln!(
        "MEASURED router replicas replaced in {:?} under load: {} requests answered, {} failed",
        t.elapsed(),
        reconfigured.ok - healed.ok,
        reconfigured.fail - healed.fail
    );
    assert_eq!(
        reconfigured.fail, healed.fail,
        "requests failed while the replicas were replaced: {:?}",
        reconfigured.failures
    );
}
