//! The Kubernetes backend against the real cluster of `../shared/k8s` (`.ci/run` starts it):
//! the example fleet converges with limits and probes as declared and a second pass applies
//! nothing (in a handful of list calls); a rolling bump keeps ready serving pods at the
//! floor; a never-ready version is rolled back; pruning removes only what plugsync owns.
//!
//! Ignored unless asked for (`.ci/run` runs them with `--include-ignored`); fails without a cluster.

use plugsync_test_support::docker as common;
use plugsync_test_support::k8s as common_k8s;

use common::{direct, rolling, PluginDef, V1, V2};
use common_k8s::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::PostParams;
use plugsync::backend::Backend;
use plugsync::model::{Cpu, Memory};
use plugsync::reconcile::Ending;
use std::time::{Duration, Instant};

fn all_converged(report: &plugsync::reconcile::Report) -> bool {
    report.results.iter().all(|r| r.result == Ending::Converged)
}

/// The example fleet (examples/fleet, six plugins, one of them a versioned canary) on
/// Kubernetes: every Deployment Ready with the manifest's limits, reservations and probes;
/// the Service selects serving pods; PLUGIN_CONFIG comes from a ConfigMap. A second pass
/// plans and applies nothing, in a few list calls.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_fleet_converges_and_a_second_pass_applies_nothing() {
    let cluster = Cluster::connect("kex").await;
    // auth's secretEnv reads it on the plugsync host; it must reach the pod through a Secret.
    // SAFETY: set before the backend reads it, and no other thread of this test reads env.
    unsafe { std::env::set_var("PLUGSYNC_EXAMPLE_AUTH_KEY", "k8s-test-signing-key") };
    cluster.ensure_echo_images(&["1.0.0", "1.1.0", "2.3.0"]).await;
    let fleet = K8sFleet::new(&cluster);
    plugsync::source::dir::copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet"),
        fleet.path(),
    )
    .expect("copy the example fleet");
    fleet.write(
        "plugsync.yaml",
        &format!(
            "fleet: {}\nenvironment: Production\nbackend:\n  type: kubernetes\n  namespace: {}\n",
            fleet.name, cluster.namespace
        ),
    );
    let backend = cluster.backend().await;
    let t = Instant::now();
    let report = fleet.reconcile(&backend).await;
    let took = t.elapsed();
    assert!(all_converged(&report), "{report:#?}\n{}", fleet.narration());
    eprintln!(
        "[{}] MEASURED example fleet converged on Kubernetes in {took:?} ({} API requests)",
        fleet.name,
        backend.requests()
    );

    // Through the API: every Deployment Ready, limits, reservations and probes as declared.
    let local = fleet.load();
    let deployments = cluster.deployments().await;
    for plugin in local.loaded.fleet.plugins.values() {
        let mine: Vec<&Deployment> = deployments
            .iter()
            .filter(|d| d.metadata.labels.as_ref().and_then(|l| l.get("plugsync.plugin")) == Some(&plugin.id))
            .collect();
        assert!(!mine.is_empty(), "no Deployment for {}", plugin.id);
        let replicas: i32 = mine.iter().map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)).sum();
        let ready: i32 = mine.iter().map(|d| d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)).sum();
        assert_eq!(ready, replicas, "{}: {ready} of {replicas} ready", plugin.id);
        for d in &mine {
            let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
            let c = &pod.containers[0];
            let resources = c.resources.clone().unwrap_or_default();
            let limit = |k: &str| resources.limits.as_ref().and_then(|l| l.get(k)).map(|q| q.0.clone());
            let request = |k: &str| resources.requests.as_ref().and_then(|l| l.get(k)).map(|q| q.0.clone());
            let declared = &plugin.manifest.runtime;
            assert_eq!(
                limit("cpu").and_then(|q| Cpu::parse(&q)).map(Cpu::millis),
                declared.resources.cpu.map(Cpu::millis),
                "{} cpu limit",
                plugin.id
            );
            assert_eq!(
                limit("memory").and_then(|q| Memory::parse(&q)).map(Memory::bytes),
                declared.resources.memory.map(Memory::bytes),
                "{} memory limit",
                plugin.id
            );
            if let Some(reserved) = declared.reservations.memory {
                assert_eq!(
                    request("memory").and_then(|q| Memory::parse(&q)).map(Memory::bytes),
                    Some(reserved.bytes())
                );
            }
            if let Some(reserved) = declared.reservations.cpu {
                assert_eq!(request("cpu").and_then(|q| Cpu::parse(&q)).map(Cpu::millis), Some(reserved.millis()));
            }
            let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
                p.as_ref().and_then(|p| p.http_get.as_ref()).and_then(|h| h.path.clone())
            };
            assert_eq!(path(&c.readiness_probe).as_deref(), Some(plugin.manifest.api.readiness.as_str()));
            assert_eq!(path(&c.liveness_probe).as_deref(), Some(plugin.manifest.api.liveness.as_str()));
            let name = d.metadata.name.clone().unwrap_or_default();
            let template = serde_json::to_string(pod).expect("pod spec json");
            assert!(!template.contains("k8s-test-signing-key"), "a secret value is in Deployment {name}");
            for var in plugin.manifest.secret_env.keys() {
                let env = c.env.clone().unwrap_or_default();
                let from = env.iter().find(|e| &e.name == var).and_then(|e| e.value_from.clone());
                let secret = from.and_then(|f| f.secret_key_ref).map(|r| r.name).expect("secretKeyRef");
                let stored = cluster.api::<k8s_openapi::api::core::v1::Secret>().get(&secret).await.expect("secret");
                assert!(stored.data.unwrap_or_default().contains_key(var), "{secret} holds {var}");
            }
            if !plugin.manifest.config.is_null() {
                let cm = cluster.api::<ConfigMap>().get(&format!("{name}-config")).await.expect("config map");
                let data = cm.data.unwrap_or_default();
                assert_eq!(data.get("PLUGIN_CONFIG"), Some(&plugin.manifest.config.to_string()), "{name}");
            }
        }
        let service = cluster.api::<Service>().get(&plugin.id.replace('_', "-")).await.expect("service");
        let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
        assert_eq!(selector.get("plugsync.serving").map(String::as_str), Some("true"), "{}", plugin.id);
        let pods = cluster.pods(&format!("plugsync.plugin={}", plugin.id)).await;
        assert_eq!(ready_serving(&pods) as i32, replicas, "{}: ready serving pods", plugin.id);
    }

    // A second pass: nothing to do, a handful of list calls.
    let before = backend.requests();
    let t = Instant::now();
    let again = fleet.reconcile(&backend).await;
    let requests = backend.requests() - before;
    eprintln!(
        "[{}] MEASURED no-change reconcile on Kubernetes: {requests} API requests in {:?}",
        fleet.name,
        t.elapsed()
    );
    assert!(again.plan.no_changes(), "second pass plans changes: {:#?}", again.plan);
    assert!(requests <= 4, "a no-change pass should be a few list calls, made {requests}");
    assert!(fleet.plan(&backend).await.no_changes());
}

/// Rolling 1.0.0 → 1.1.0 over 3 replicas, batch 1: the pods that are Ready and serving never
/// drop below 3 (start-first), watched through the API every 100 ms.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_bump_never_drops_below_the_floor() {
    let cluster = Cluster::connect("kroll").await;
    cluster.ensure_echo_images(&[V1, V2]).await;
    let fleet = K8sFleet::new(&cluster);
    let web = PluginDef::new("web", V1).replicas(3).rollout(&rolling(1, "0s", "30s"));
    fleet.plugin(&web);
    let backend = cluster.backend().await;
    assert!(all_converged(&fleet.reconcile(&backend).await));

    fleet.plugin(&web.clone().version(V2));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, api) = (stop.clone(), cluster.api::<k8s_openapi::api::core::v1::Pod>());
        tokio::spawn(async move {
            let mut seen: Vec<(f64, usize, usize)> = Vec::new();
            let t0 = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(pods) = api.list(&kube::api::ListParams::default().labels("plugsync.plugin=web")).await {
                    let v2 = pods.items.iter().filter(|p| label(p, "plugsync.version") == Some(V2)).count();
                    let n = ready_serving(&pods.items);
                    if n < 3 {
                        eprintln!("dip: {}", describe_pods(&pods.items));
                    }
                    seen.push((t0.elapsed().as_secs_f64(), n, v2));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        })
    };
    let report = fleet.reconcile(&backend).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.await.expect("watcher");
    assert!(all_converged(&report), "{report:#?}\n{}", fleet.narration());
    let floor = seen.iter().map(|s| s.1).min().unwrap_or(0);
    eprintln!(
        "[{}] MEASURED rolling on Kubernetes: {} polls, fewest ready serving pods {floor}",
        fleet.name,
        seen.len()
    );
    assert!(seen.len() > 10, "the watch ran: {seen:?}");
    assert!(floor >= 3, "ready serving pods fell below 3: {seen:?}");
    let pods = cluster.pods("plugsync.plugin=web").await;
    let live: Vec<_> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|p| label(p, "plugsync.version") == Some(V2)), "all pods run 1.1.0");
    let names: Vec<String> = cluster.deployments().await.into_iter().filter_map(|d| d.metadata.name).collect();
    assert_eq!(names.len(), 1, "the old Deployment is gone: {names:?}");
    assert!(fleet.plan(&backend).await.no_changes());
}

/// Direct to a version whose readiness never passes: rolled back, 1.0.0 serves again, and no
/// Deployment of 1.1.0 is left.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_version_is_rolled_back() {
    let cluster = Cluster::connect("knever").await;
    cluster.ensure_echo_images(&[V1, V2]).await;
    let fleet = K8sFleet::new(&cluster);
    let web = PluginDef::new("web", V1).replicas(2).rollout(&direct("20s"));
    fleet.plugin(&web);
    let backend = cluster.backend().await;
    assert!(all_converged(&fleet.reconcile(&backend).await));

    fleet.plugin(&web.clone().version(V2).env("NEVER_READY", "1"));
    let report = fleet.reconcile(&backend).await;
    match &report.results[0].result {
        Ending::RolledBack { reason } => assert!(reason.contains("ready"), "{reason}"),
        other => panic!("expected a rollback, got {other:?}\n{}", fleet.narration()),
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let observed = backend.observe(&fleet.name, Some("web")).await.expect("observe").instances;
    assert_eq!(observed.len(), 2, "{observed:#?}");
    assert!(observed.iter().all(|i| i.version == V1 && i.serving), "{observed:#?}");
    let versions: Vec<String> = cluster
        .deployments()
        .await
        .iter()
        .filter_map(|d| d.metadata.labels.as_ref().and_then(|l| l.get("plugsync.version")).cloned())
        .collect();
    assert_eq!(versions, vec![V1.to_string()], "only the 1.0.0 Deployment is left");
}

/// Removing a plugin from Git deletes its Deployment, Service and ConfigMap, and nothing else:
/// a Deployment nobody labelled, a Service of the same name pattern and another fleet's
/// labelled Deployment in the namespace all survive. A plugsync object name held by a foreign
/// object is refused, not taken over.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_removes_only_what_plugsync_owns() {
    let cluster = Cluster::connect("kprune").await;
    cluster.ensure_echo_images(&[V1]).await;
    let fleet = K8sFleet::new(&cluster);
    let keep = PluginDef::new("keep", V1);
    let gone = PluginDef::new("gone_one", V1).config("{greeting: hi}");
    fleet.plugin(&keep);
    fleet.plugin(&gone);
    fleet.write(
        "plugsync.yaml",
        &format!(
            "fleet: {}\nbackend: {{type: kubernetes, namespace: {}}}\nmaxPruneFraction: 0.5\n",
            fleet.name, cluster.namespace
        ),
    );
    // Foreign objects: unlabelled, another fleet's, and one squatting a name plugsync wants.
    let foreign = |name: &str, labels: serde_json::Value| -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": format!("plugsync/echo-plugin:{V1}")}]}},
            },
        }))
        .expect("deployment")
    };
    let api = cluster.api::<Deployment>();
    for (name, labels) in [
        ("hand-made", serde_json::json!({})),
        ("other-fleet", serde_json::json!({"plugsync.fleet": "other", "plugsync.plugin": "gone_one"})),
        ("squat-stable", serde_json::json!({"team": "someone"})),
    ] {
        api.create(&PostParams::default(), &foreign(name, labels)).await.expect("create foreign deployment");
    }
    let backend = cluster.backend().await;
    assert!(all_converged(&fleet.reconcile(&backend).await), "{}", fleet.narration());
    assert!(cluster.api::<ConfigMap>().get_opt("gone-one-stable-config").await.expect("get").is_some());

    fleet.remove_plugin("gone_one");
    let report = fleet.reconcile(&backend).await;
    assert!(all_converged(&report), "{report:#?}");
    tokio::time::sleep(Duration::from_secs(2)).await; // garbage collection of owned objects
    let names: Vec<String> = cluster.deployments().await.into_iter().filter_map(|d| d.metadata.name).collect();
    assert!(names.contains(&"hand-made".to_string()) && names.contains(&"other-fleet".to_string()), "{names:?}");
    assert!(names.contains(&"squat-stable".to_string()) && names.contains(&"keep-stable".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("gone-one")), "{names:?}");
    assert!(cluster.api::<Service>().get_opt("gone-one").await.expect("get").is_none(), "its Service is gone");
    assert!(
        cluster.api::<ConfigMap>().get_opt("gone-one-stable-config").await.expect("get").is_none(),
        "its ConfigMap is gone"
    );
    assert!(cluster.api::<Service>().get_opt("keep").await.expect("get").is_some());

    // A plugin whose Deployment name is held by a foreign object: refused with the reason.
    fleet.plugin(&PluginDef::new("squat", V1));
    let report = fleet.reconcile(&backend).await;
    let squat = report.results.iter().find(|r| r.plugin == "squat").expect("squat result");
    match &squat.result {
        Ending::Failed { reason } => assert!(reason.contains("not plugsync's"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let squatter = api.get("squat-stable").await.expect("squatter");
    assert_eq!(squatter.spec.and_then(|s| s.replicas), Some(0), "the foreign Deployment is untouched");
}
