//! Canary and blue-green on the real Kubernetes cluster, through the same strategy state
//! machines as on Docker: the canary runs in its own Deployment behind the plugin's Service
//! (replica-weighted, the plan says which weight is really achieved) and is rolled back on a
//! bad error rate; blue-green starts green in its own Deployment, switches the Service's
//! endpoints, keeps (or removes) blue, and never lets a green failing its smoke test serve.
//!
//! Traffic comes from a test client that follows the Service's Endpoints (the cluster has no
//! kube-proxy), so the built-in analysis scrapes real request counters from the pods.
//! Ignored unless asked for (`.ci/run` runs them with `--include-ignored`); fails without a cluster.

use plugsync_test_support::docker as common;
use plugsync_test_support::k8s as common_k8s;

use common::{PluginDef, V1, V2};
use common_k8s::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use plugsync::backend::Backend;
use plugsync::reconcile::Ending;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn canary(steps: &str, max_error_rate: f64) -> String {
    format!(
        "{{strategy: Canary, canaryConfig: {{steps: {steps}, evaluationPeriod: 3s, autoRollback: true, \
         thresholds: {{maxErrorRate: {max_error_rate}}}}}, rollingConfig: {{healthCheckTimeout: 30s}}, analysis: {{minSamples: 10}}}}"
    )
}

fn blue_green(smoke: &str, keep: bool) -> String {
    format!(
        "{{strategy: BlueGreen, blueGreenConfig: {{warmupPeriod: 1s, switchoverType: Instant, monitoringPeriod: 2s, \
         keepPreviousEnvironment: {keep}, smokeTests: {smoke}, thresholds: {{maxErrorRate: 0.05}}}}, \
         rollingConfig: {{healthCheckTimeout: 30s}}, analysis: {{minSamples: 10}}}}"
    )
}

/// One poll: Deployment names, and per pod (version, slot, serving).
type Seen = (BTreeSet<String>, Vec<(String, String, bool)>);

/// What the API showed every 100 ms while a reconcile ran.
struct ApiWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Seen>>,
}

impl ApiWatch {
    fn start(cluster: &Cluster) -> ApiWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let (pods, deployments, s) = (cluster.api::<Pod>(), cluster.api::<Deployment>(), stop.clone());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let all = ListParams::default();
                let (p, d) = tokio::join!(pods.list(&all), deployments.list(&all));
                if let (Ok(p), Ok(d)) = (p, d) {
                    let names = d.items.into_iter().filter_map(|d| d.metadata.name).collect();
                    let pods = p
                        .items
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .map(|p| {
                            (
                                label(p, "plugsync.version").unwrap_or("?").to_string(),
                                label(p, "plugsync.slot").unwrap_or("?").to_string(),
                                label(p, "plugsync.serving") == Some("true"),
                            )
                        })
                        .collect();
                    seen.push((names, pods));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        });
        ApiWatch { stop, task }
    }

    async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("watch task")
    }
}

async fn setup(tag: &str, web: &PluginDef) -> (Cluster, K8sFleet, plugsync::backend::kubernetes::KubernetesBackend) {
    let cluster = Cluster::connect(tag).await;
    cluster.ensure_echo_images(&[V1, V2]).await;
    let fleet = K8sFleet::new(&cluster);
    fleet.plugin(web);
    let backend = cluster.backend().await;
    let report = fleet.reconcile(&backend).await;
    assert_eq!(report.results[0].result, Ending::Converged, "{}", fleet.narration());
    (cluster, fleet, backend)
}

/// A good canary (3 stable replicas, steps 10 % → 100 %): the plan says 10 % is really 25 %
/// (1 canary among 4 pods); a `web-canary` Deployment with one serving pod runs beside
/// `web-stable` during the step; the rollout converges to 1.1.0 everywhere.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_runs_in_its_own_deployment_and_promotes() {
    let web = PluginDef::new("web", V1).replicas(3).rollout(&canary("[10, 100]", 0.05));
    let (cluster, fleet, backend) = setup("kcan", &web).await;
    let client = EndpointsClient::start(&cluster, "web", 8080, Duration::from_millis(20));
    fleet.plugin(&web.clone().version(V2));
    let plan = fleet.plan(&backend).await;
    let reasons = plan.changes[0].reasons.join("; ");
    assert!(reasons.contains("10% (achieved 25%: 1 of 4)"), "the plan names the achieved weight: {reasons}");

    let watch = ApiWatch::start(&cluster);
    let t = Instant::now();
    let report = fleet.reconcile(&backend).await;
    let took = t.elapsed();
    let seen = watch.stop().await;
    assert_eq!(report.results[0].result, Ending::Converged, "{}", fleet.narration());
    let canary_serving = seen.iter().any(|(names, pods)| {
        names.contains("web-canary")
            && pods.iter().filter(|p| p.1 == "canary" && p.2).count() == 1
            && pods.iter().filter(|p| p.1 == "stable" && p.2).count() == 3
    });
    assert!(canary_serving, "a serving canary pod beside 3 stable ones was seen: {:?}", seen.last());
    let (ok, failed) = client.counts();
    eprintln!("[{}] MEASURED canary on Kubernetes: converged in {took:?}; client {ok} ok, {failed} failed", fleet.name);
    assert!(ok > 50, "the client got answers: {ok}");
    let now = backend.observe(&fleet.name, Some("web")).await.expect("observe").instances;
    assert_eq!(now.len(), 3);
    assert!(now.iter().all(|i| i.version == V2 && i.serving), "{now:#?}");
    assert!(fleet.plan(&backend).await.no_changes());
}

/// A canary answering 500 to half its requests fails its analysis and is rolled back: only
/// 1.0.0 pods remain and the canary Deployment is gone.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_canary_is_rolled_back() {
    let web = PluginDef::new("web", V1).replicas(2).rollout(&canary("[50, 100]", 0.05));
    let (cluster, fleet, backend) = setup("kcanbad", &web).await;
    let _client = EndpointsClient::start(&cluster, "web", 8080, Duration::from_millis(20));
    fleet.plugin(&web.clone().version(V2).env("ERROR_RATE", "0.5"));
    let report = fleet.reconcile(&backend).await;
    match &report.results[0].result {
        Ending::RolledBack { reason } => assert!(reason.contains("error rate"), "{reason}"),
        other => panic!("expected a rollback, got {other:?}\n{}", fleet.narration()),
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now = backend.observe(&fleet.name, Some("web")).await.expect("observe").instances;
    assert!(now.len() == 2 && now.iter().all(|i| i.version == V1 && i.serving), "{now:#?}");
    let names: Vec<String> = cluster.deployments().await.into_iter().filter_map(|d| d.metadata.name).collect();
    assert_eq!(names, vec!["web-stable".to_string()], "the canary Deployment is gone");
}

/// Blue-green keeping the previous environment: green starts in `web-green`, takes the
/// Service's endpoints, and blue stays as a Deployment scaled to zero with its parked count;
/// the next plan sees nothing to do.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_the_service_and_parks_blue() {
    let web = PluginDef::new("web", V1).replicas(2).rollout(&blue_green("[/health/ready]", true));
    let (cluster, fleet, backend) = setup("kbg", &web).await;
    let client = EndpointsClient::start(&cluster, "web", 8080, Duration::from_millis(20));
    fleet.plugin(&web.clone().version(V2));
    let watch = ApiWatch::start(&cluster);
    let report = fleet.reconcile(&backend).await;
    let seen = watch.stop().await;
    assert_eq!(report.results[0].result, Ending::Converged, "{}", fleet.narration());
    assert!(seen.iter().any(|(names, _)| names.contains("web-green")), "green ran in web-green");
    for (_, pods) in &seen {
        let serving = pods.iter().filter(|p| p.2).count();
        assert!(serving >= 2, "the Service always had 2 serving pods: {pods:?}");
    }
    let (ok, failed) = client.counts();
    eprintln!("[{}] MEASURED blue-green on Kubernetes: client {ok} ok, {failed} failed", fleet.name);
    let api = cluster.api::<Deployment>();
    let blue = api.get("web-stable").await.expect("blue Deployment kept");
    assert_eq!(blue.spec.as_ref().and_then(|s| s.replicas), Some(0));
    let parked = blue.metadata.annotations.unwrap_or_default().get("plugsync.parked").cloned();
    assert_eq!(parked.as_deref(), Some("2"), "blue is parked with its 2 replicas");
    let now = backend.observe(&fleet.name, Some("web")).await.expect("observe").instances;
    assert_eq!(now.iter().filter(|i| i.version == V2 && i.serving).count(), 2, "{now:#?}");
    assert!(fleet.plan(&backend).await.no_changes(), "a parked blue is not a change");
}

/// Green answering 500 to everything fails its smoke test (`GET /`): it never carries the
/// serving label, blue keeps serving, and green's Deployment is removed.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_failing_its_smoke_test_never_serves() {
    let web = PluginDef::new("web", V1).replicas(2).rollout(&blue_green("[/]", false));
    let (cluster, fleet, backend) = setup("kbgbad", &web).await;
    fleet.plugin(&web.clone().version(V2).env("ERROR_RATE", "1.0"));
    let watch = ApiWatch::start(&cluster);
    let report = fleet.reconcile(&backend).await;
    let seen = watch.stop().await;
    match &report.results[0].result {
        Ending::RolledBack { reason } => assert!(reason.contains("smoke test"), "{reason}"),
        other => panic!("expected a rollback, got {other:?}\n{}", fleet.narration()),
    }
    assert!(seen.iter().any(|(_, pods)| pods.iter().any(|p| p.0 == V2)), "green was started");
    for (_, pods) in &seen {
        assert!(!pods.iter().any(|p| p.0 == V2 && p.2), "green served: {pods:?}");
        assert!(pods.iter().filter(|p| p.0 == V1 && p.2).count() >= 2, "blue lost capacity: {pods:?}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names: Vec<String> = cluster.deployments().await.into_iter().filter_map(|d| d.metadata.name).collect();
    assert_eq!(names, vec!["web-stable".to_string()], "green's Deployment is gone");
}
