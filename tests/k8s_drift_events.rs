//! Drift on Kubernetes is seen as fast as on Docker: the daemon watches the fleet's
//! Deployments and Pods, so a Deployment scaled by hand or a pod deleted wakes a drift check at
//! once, although the poll interval is a minute. Prints the measured latencies.
//!
//! Ignored unless asked for (`.ci/run` runs them with `--include-ignored`); fails without a cluster.

use plugsync_test_support::daemon as common_daemon;
use plugsync_test_support::docker as common;
use plugsync_test_support::k8s as common_k8s;

use common::{direct, PluginDef, V1};
use common_daemon::{Daemon, DaemonOptions, Repo};
use common_k8s::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use std::time::{Duration, Instant};

/// The periodic pass: nothing below this can come from it.
const INTERVAL: &str = "60s";

async fn metric_sum(base: &str, prefix: &str) -> f64 {
    let url = format!("{base}/metrics");
    let Ok(response) = plugsync::tls::http_client().get(&url).timeout(Duration::from_secs(5)).send().await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

async fn wait_until(
    what: &str,
    timeout: Duration,
    daemon: &mut Daemon,
    mut check: impl AsyncFnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !check().await {
        daemon.assert_alive();
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; log:\n{}",
            daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    started.elapsed()
}

#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_on_kubernetes_is_reported_within_seconds_of_the_change() {
    let cluster = Cluster::connect("kdrift").await;
    cluster.ensure_echo_images(&[V1]).await;
    let ns = cluster.namespace.clone();
    let repo = Repo::new();
    repo.write(
        "plugsync.yaml",
        &format!("fleet: {ns}\nbackend:\n  type: kubernetes\n  namespace: {ns}\ndrift: alert\n"),
    );
    let mut web = PluginDef::new("web", V1).rollout(&direct("60s"));
    web.cpu = None;
    repo.write("plugins/web/plugin.yaml", &web.yaml());
    repo.commit_push("web 1.0.0");

    let kubeconfig = cluster.kubeconfig();
    let options = DaemonOptions::new(repo.url(), INTERVAL)
        .arg("--backend")
        .arg("kubernetes")
        .arg("--namespace")
        .arg(&ns)
        .env("KUBECONFIG", &kubeconfig);
    let mut daemon = tokio::task::block_in_place(|| Daemon::start(&ns, &format!("{ns}-unused"), options));
    let converged = wait_until("web ACTIVE in status", Duration::from_secs(120), &mut daemon, async || {
        tokio::task::block_in_place(|| repo.status_active("web", V1))
    })
    .await;
    eprintln!("[{ns}] web converged in {converged:?}");
    // Let the pod's own start-up events settle: what follows must be the only change.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let findings = "plugsync_drift_findings{";
    let base = daemon.base_url();

    // (1) Scaled by hand.
    let deployments: kube::Api<Deployment> = cluster.api();
    let scale = serde_json::json!({"spec": {"replicas": 2}});
    let changed = Instant::now();
    deployments.patch("web-stable", &PatchParams::default(), &Patch::Merge(&scale)).await.expect("scale web-stable");
    wait_until("the scale-up reported as drift in /metrics", Duration::from_secs(30), &mut daemon, async || {
        metric_sum(&base, findings).await > 0.0
    })
    .await;
    let scaled = changed.elapsed();
    eprintln!("[{ns}] FIGURE drift after a hand scale-up reported in {scaled:?} (poll interval {INTERVAL})");
    assert!(
        scaled < Duration::from_secs(10),
        "drift took {scaled:?}: it waited for the poll, not the watch; log:\n{}",
        daemon.log_tail()
    );
    // The watch woke the check: the Deployment's own event is in the log.
    assert!(daemon.log().contains("engine event kind=\"deployment\""), "{}", daemon.log_tail());

    // Back to what Git says: the finding resolves as fast.
    let scale = serde_json::json!({"spec": {"replicas": 1}});
    let changed = Instant::now();
    deployments.patch("web-stable", &PatchParams::default(), &Patch::Merge(&scale)).await.expect("scale back");
    wait_until("the drift to resolve", Duration::from_secs(30), &mut daemon, async || {
        metric_sum(&base, findings).await == 0.0
    })
    .await;
    eprintln!("[{ns}] FIGURE drift resolved {:?} after scaling back", changed.elapsed());

    // (2) A pod deleted: the daemon wakes and checks at once (the ReplicaSet replaces it).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pods: kube::Api<Pod> = cluster.api();
    let pod = cluster.pods("plugsync.plugin=web").await.into_iter().find_map(|p| p.metadata.name).expect("web's pod");
    let passes = metric_sum(&base, "plugsync_reconcile_duration_seconds_count").await;
    let changed = Instant::now();
    pods.delete(&pod, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete pod");
    wait_until("a pass woken by the pod's deletion", Duration::from_secs(30), &mut daemon, async || {
        metric_sum(&base, "plugsync_reconcile_duration_seconds_count").await > passes
    })
    .await;
    let woke = changed.elapsed();
    eprintln!("[{ns}] FIGURE a drift check finished {woke:?} after a pod was deleted (poll interval {INTERVAL})");
    assert!(woke < Duration::from_secs(10), "the pass came {woke:?} later: the poll, not the watch");
    assert!(daemon.log().contains(&pod), "the log names the deleted pod {pod}:\n{}", daemon.log_tail());
}
