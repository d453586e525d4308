//! Every strategy behind the managed router under keep-alive load, on the real engine: a
//! blue-green Instant switch and the switch back, a Gradual one (50 % exact at the router), an A/B test started and B promoted, a
//! Rolling and a Direct update, all at once — and not one request fails. Each plugin has its
//! own keep-alive client sending through the router (its answers counted: anything but a
//! 2xx, or no answer, is a failure).
//!
//! Needs Docker and Debian's haproxy; fails loudly.

use plugsync_test_support::docker::{direct, rolling, PluginDef, V1, V2};
use plugsync_test_support::progressive::blue_green;
use plugsync_test_support::routed::*;

use plugsync::reconcile::Ending;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const AB: &str = "{strategy: ABTesting, abConfig: {trafficSplit: {A: 50, B: 50}, testDuration: 4s, \
                  decisionMetrics: [latency], autoPromote: true, winnerThreshold: 0.1}, analysis: {minSamples: 10}}";

struct Load {
    plugin: &'static str,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_fails_through_any_strategy_behind_the_router() {
    let (docker, fleet, backend, story) = routed_fleet("rtrs").await;
    let bg = PluginDef::new("bg", V1).replicas(2).rollout(&blue_green("1s", "Instant", "3s", "[/health]"));
    // Gradual: 50 % then 100 %, exact at the router with both sides serving whole.
    let grad = PluginDef::new("grad", V1).replicas(1).rollout(&blue_green("1s", "Gradual", "3s", "[/health]"));
    // A answers 30 ms slower: B wins on latency and is promoted.
    let ab = PluginDef::new("ab", V1).replicas(2).env("LATENCY_MS", "120").rollout(AB);
    let roll = PluginDef::new("roll", V1).replicas(3).rollout(&rolling(1, "0s", "30s"));
    let recreate = PluginDef::new("recreate", V1).replicas(2).rollout(&direct("30s"));
    for def in [&bg, &grad, &ab, &roll, &recreate] {
        fleet.plugin(def);
    }
    assert_eq!(reconcile(&fleet, &backend, &story).await, vec![Ending::Converged; 5], "{}", story.text());
    let router = replicas(&docker, &fleet).await.first().and_then(|r| r.1).expect("a router replica");

    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<Load> = ["bg", "grad", "ab", "roll", "recreate"]
        .into_iter()
        .map(|plugin| Load { plugin, ok: Arc::default(), failed: Arc::default() })
        .collect();
    let tasks: Vec<_> =
        loads.iter().map(|l| load(router, l.plugin, stop.clone(), l.ok.clone(), l.failed.clone())).collect();
    let started = Instant::now();

    fleet.plugin(&bg.clone().version(V2));
    fleet.plugin(&grad.clone().version(V2));
    fleet.plugin(&PluginDef { env: Vec::new(), ..ab.clone().version(V2) });
    fleet.plugin(&roll.clone().version(V2));
    fleet.plugin(&recreate.clone().version(V2));
    let endings = reconcile(&fleet, &backend, &story).await;
    assert_eq!(endings, vec![Ending::Converged; 5], "{}", story.text());
    // The switch back: blue-green to V1 again.
    fleet.plugin(&bg);
    assert_eq!(reconcile(&fleet, &backend, &story).await, vec![Ending::Converged], "{}", story.text());

    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
    let seconds = started.elapsed().as_secs_f64();
    let total: u64 = loads.iter().map(|l| l.ok.load(Ordering::Relaxed) + l.failed.load(Ordering::Relaxed)).sum();
    for l in &loads {
        eprintln!(
            "MEASURED {}: {} ok, {} failed",
            l.plugin,
            l.ok.load(Ordering::Relaxed),
            l.failed.load(Ordering::Relaxed)
        );
    }
    eprintln!("MEASURED keep-alive load: {total} requests in {seconds:.1} s ({:.0}/s)", total as f64 / seconds);
    let text = story.text();
    assert!(text.contains("ab") && text.contains("promot"), "B was promoted:\n{text}");
    for l in &loads {
        assert_eq!(l.failed.load(Ordering::Relaxed), 0, "{} failed requests:\n{text}", l.plugin);
    }
    assert!(total as f64 / seconds >= 200.0, "the load stayed at 200 requests/s or more");
    let observed = |id: &'static str| {
        let (backend, fleet) = (&backend, &fleet);
        async move {
            use plugsync::backend::Backend;
            let instances = backend.observe(&fleet.name, Some(id)).await.expect("observe").instances;
            instances.into_iter().map(|i| i.version).collect::<Vec<_>>()
        }
    };
    assert_eq!(observed("bg").await, vec![V1.to_string(); 2]);
    assert_eq!(observed("grad").await, vec![V2.to_string()]);
    assert_eq!(observed("ab").await, vec![V2.to_string(); 2]);
    assert_eq!(observed("roll").await, vec![V2.to_string(); 3]);
    assert_eq!(observed("recreate").await, vec![V2.to_string(); 2]);
}
