//! Shared helpers for the Kubernetes tests: the cluster of `.ci/k8s-cluster` (started by
//! `.ci/run`), a namespace per test removed on drop, the echo images built into the node's
//! Docker, and API reads the assertions use.
//!
//! Every Kubernetes test is `#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]`, so
//! plain `cargo test` says it did not run them; `.ci/run` runs them with `--include-ignored`,
//! and a missing or unreachable cluster fails them (never a silent pass).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use plugsync::backend::kubernetes::KubernetesBackend;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where `cluster.sh` keeps the admin kubeconfig and the node's Docker socket.
const STATE: &str = "/var/lib/plugsync-k8s";

pub const HOW_TO_RUN: &str = "start the cluster with `.ci/k8s-cluster up` (wraps ../shared/k8s/cluster.sh), \
     then run with KUBECONFIG=/var/lib/plugsync-k8s/admin.kubeconfig \
     PLUGSYNC_K8S_DOCKER_HOST=unix:///var/lib/plugsync-k8s/run/docker.sock";

/// The kubeconfig and node Docker endpoint, or `None` when no cluster is configured. Sets `KUBECONFIG` for the backend when only the default state dir has it.
fn locate() -> Option<(String, String)> {
    let kubeconfig = std::env::var("KUBECONFIG").ok().filter(|k| Path::new(k).is_file()).or_else(|| {
        let default = format!("{STATE}/admin.kubeconfig");
        Path::new(&default).is_file().then_some(default)
    });
    let docker = std::env::var("PLUGSYNC_K8S_DOCKER_HOST")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("unix://{STATE}/run/docker.sock"));
    kubeconfig.map(|k| (k, docker))
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Test namespaces (`t-<tag>-<pid>`) of test processes that no longer run are deleted (a run
/// killed mid-test leaves its pods holding the node's CPU), and terminating ones are waited
/// for, so this test's pods are not left Pending for want of CPU.
async fn reap_stale_namespaces(client: &kube::Client) {
    let api: Api<Namespace> = Api::all(client.clone());
    let Ok(all) = api.list(&ListParams::default()).await else { return };
    for ns in &all.items {
        let Some(name) = ns.metadata.name.as_deref() else { continue };
        let pid = name.strip_prefix("t-").and_then(|rest| rest.rsplit('-').next()).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("removing namespace {name} left by test process {pid}, which no longer runs");
                let _ = api.delete(name, &DeleteParams::default()).await;
            }
        }
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(90) {
        let Ok(all) = api.list(&ListParams::default()).await else { return };
        let terminating: Vec<String> = all
            .items
            .iter()
            .filter(|n| n.metadata.name.as_deref().is_some_and(|n| n.starts_with("t-")))
            .filter(|n| n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"))
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        if terminating.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A namespace of its own on the cluster, deleted (with everything in it) on drop.
pub struct Cluster {
    /// One test at a time on the single-node cluster: parallel pod start-ups on 2 cores
    /// turn readiness timeouts into noise.
    _turn: tokio::sync::MutexGuard<'static, ()>,
    pub namespace: String,
    pub client: kube::Client,
    pub node_docker: bollard::Docker,
}

impl Cluster {
    /// Connects (failing without a cluster) and creates namespace `t-<tag>-<pid>`.
    pub async fn connect(tag: &str) -> Cluster {
        let Some((kubeconfig, docker_host)) = locate() else {
            panic!("no Kubernetes cluster configured: {HOW_TO_RUN}");
        };
        // SAFETY of the test process: set before any thread reads it (kube reads it on connect).
        unsafe { std::env::set_var("KUBECONFIG", &kubeconfig) };
        let client = match kube::Client::try_default().await {
            Ok(c) if c.apiserver_version().await.is_ok() => c,
            other => {
                let why = other.err().map(|e| e.to_string()).unwrap_or_else(|| "the API server does not answer".into());
                panic!("Kubernetes cluster unreachable ({kubeconfig}): {why}; {HOW_TO_RUN}");
            }
        };
        let node_docker = bollard::Docker::connect_with_socket(
            docker_host.trim_start_matches("unix://"),
            60,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("node docker client");
        let node_docker = node_docker.negotiate_version().await.unwrap_or_else(|e| {
            panic!("the cluster's node Docker at {docker_host} does not answer: {e}; {HOW_TO_RUN}")
        });
        let namespace = format!("t-{tag}-{}", std::process::id());
        let turn = TURN.lock().await;
        reap_stale_namespaces(&client).await;
        let cluster = Cluster { _turn: turn, namespace, client, node_docker };
        cluster.delete_namespace_and_wait().await;
        let api: Api<Namespace> = Api::all(cluster.client.clone());
        let body: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": cluster.namespace}})).expect("namespace");
        api.create(&PostParams::default(), &body).await.expect("create test namespace");
        // The service account controller must have made `default` before pods can be created.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(cluster.client.clone(), &cluster.namespace);
        let t = Instant::now();
        while sa.get_opt("default").await.ok().flatten().is_none() {
            assert!(t.elapsed() < Duration::from_secs(30), "no default service account in {}", cluster.namespace);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
    }

    async fn delete_namespace_and_wait(&self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        if api.get_opt(&self.namespace).await.ok().flatten().is_none() {
            return;
        }
        let _ = api.delete(&self.namespace, &DeleteParams::default()).await;
        let t = Instant::now();
        while api.get_opt(&self.namespace).await.ok().flatten().is_some() && t.elapsed() < Duration::from_secs(90) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The echo images (and any versions asked for) in the node's Docker.
    pub async fn ensure_echo_images(&self, versions: &[&str]) {
        let t = Instant::now();
        plugsync::images::ensure_echo_images(&self.node_docker, crate::workspace_root(), versions)
            .await
            .unwrap_or_else(|e| panic!("building the echo images into the cluster's Docker failed: {e}"));
        eprintln!("[{}] echo images {versions:?} in the node's Docker in {:?}", self.namespace, t.elapsed());
    }

    pub async fn backend(&self) -> KubernetesBackend {
        KubernetesBackend::connect(Some(&self.namespace)).await.expect("connect the Kubernetes backend")
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn deployments(&self) -> Vec<Deployment> {
        self.api::<Deployment>().list(&ListParams::default()).await.expect("list deployments").items
    }

    pub async fn pods(&self, selector: &str) -> Vec<Pod> {
        self.api::<Pod>().list(&ListParams::default().labels(selector)).await.expect("list pods").items
    }

    /// The kubeconfig path, for plugsync processes the test starts.
    pub fn kubeconfig(&self) -> String {
        std::env::var("KUBECONFIG").unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let namespace = self.namespace.clone();
        // Drop cannot await and the runtime may be unwinding: a private one on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let client = kube::Client::try_default().await.ok()?;
                // Pods first, without grace: namespace deletion waits for every pod to end.
                let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                let now = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
                let _ = pods.delete_collection(&now, &ListParams::default()).await;
                let api: Api<Namespace> = Api::all(client);
                api.delete(&namespace, &DeleteParams::default()).await.ok()?;
                eprintln!("[{namespace}] cleanup: namespace deleted");
                Some(())
            })
        })
        .join();
    }
}

/// Pods whose containers are ready and that carry `plugsync.serving=true`.
pub fn ready_serving(pods: &[Pod]) -> usize {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata.labels.as_ref().and_then(|l| l.get("plugsync.serving")).map(String::as_str) == Some("true")
        })
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

pub fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str)
}

/// A fleet directory whose plugsync.yaml points at the test namespace.
pub struct K8sFleet {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub narration: std::sync::Mutex<Vec<String>>,
}

impl K8sFleet {
    pub fn new(cluster: &Cluster) -> K8sFleet {
        let fleet = K8sFleet {
            name: cluster.namespace.clone(),
            dir: tempfile::tempdir().expect("tempdir"),
            narration: Default::default(),
        };
        fleet.write(
            "plugsync.yaml",
            &format!("fleet: {}\nbackend:\n  type: kubernetes\n  namespace: {}\n", fleet.name, cluster.namespace),
        );
        fleet
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub fn plugin(&self, def: &crate::docker::PluginDef) {
        self.write(&format!("plugins/{}/plugin.yaml", def.id), &def.yaml());
    }

    pub fn remove_plugin(&self, id: &str) {
        std::fs::remove_dir_all(self.dir.path().join("plugins").join(id)).expect("remove plugin folder");
    }

    pub fn load(&self) -> plugsync::source::LocalFleet {
        let local = plugsync::source::load_dir(self.path(), None).expect("load fleet dir");
        assert!(
            local.loaded.is_valid(),
            "test fleet does not validate:\n{}",
            local.loaded.errors().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
        );
        local
    }

    pub async fn plan(&self, backend: &KubernetesBackend) -> plugsync::plan::Plan {
        let local = self.load();
        let quiet = |_: &str| {};
        plugsync::reconcile::Reconciler::new(backend, &local.loaded.fleet, &local.revision, &quiet)
            .plan(plugsync::plan::DesiredHealth::Complete)
            .await
            .expect("plan")
    }

    pub async fn reconcile(&self, backend: &KubernetesBackend) -> plugsync::reconcile::Report {
        let local = self.load();
        let narrate = |line: &str| {
            eprintln!("[{}] {line}", self.name);
            self.narration.lock().expect("narration").push(line.to_string());
        };
        let t = Instant::now();
        let report = plugsync::reconcile::Reconciler::new(backend, &local.loaded.fleet, &local.revision, &narrate)
            .run(plugsync::plan::DesiredHealth::Complete)
            .await
            .expect("reconcile run");
        eprintln!(
            "[{}] reconcile took {:?}: {:?}",
            self.name,
            t.elapsed(),
            report.results.iter().map(|r| (&r.plugin, r.kind, &r.result)).collect::<Vec<_>>()
        );
        report
    }

    pub fn narration(&self) -> String {
        self.narration.lock().expect("narration").join("\n")
    }
}

/// Sends `GET /` round-robin to the ready addresses of a Service's Endpoints every `every`,
/// as a client behind kube-proxy would (this cluster has no kube-proxy, so the test plays it).
/// Counts answers per status class; stops when dropped.
pub struct EndpointsClient {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub counts: std::sync::Arc<std::sync::Mutex<(u64, u64)>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EndpointsClient {
    pub fn start(cluster: &Cluster, service: &str, port: u16, every: Duration) -> EndpointsClient {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counts = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64)));
        let api: Api<k8s_openapi::api::core::v1::Endpoints> = cluster.api();
        let (service, s, c) = (service.to_string(), stop.clone(), counts.clone());
        let task = tokio::spawn(async move {
            let http = plugsync::tls::builder().timeout(Duration::from_secs(2)).build().expect("client");
            let mut n = 0usize;
            let mut addresses: Vec<String> = Vec::new();
            let mut refreshed = Instant::now() - Duration::from_secs(1);
            while !s.load(Ordering::Relaxed) {
                if refreshed.elapsed() > Duration::from_millis(200) {
                    refreshed = Instant::now();
                    if let Ok(Some(e)) = api.get_opt(&service).await {
                        addresses = e
                            .subsets
                            .unwrap_or_default()
                            .into_iter()
                            .flat_map(|s| s.addresses.unwrap_or_default())
                            .map(|a| a.ip)
                            .collect();
                    }
                }
                if !addresses.is_empty() {
                    n += 1;
                    let ip = &addresses[n % addresses.len()];
                    let ok = match http.get(format!("http://{ip}:{port}/")).send().await {
                        Ok(r) => r.status().is_success(),
                        Err(_) => false,
                    };
                    let mut counts = c.lock().expect("counts");
                    if ok {
                        counts.0 += 1;
                    } else {
                        counts.1 += 1;
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        EndpointsClient { stop, counts, task: Some(task) }
    }

    pub fn counts(&self) -> (u64, u64) {
        *self.counts.lock().expect("counts")
    }
}

impl Drop for EndpointsClient {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// `name version serving ready [terminating]` per pod, for failure messages.
pub fn describe_pods(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone()))
                .unwrap_or_default();
            format!(
                "{} v{} serving={} ready={ready}{}",
                p.metadata.name.as_deref().unwrap_or("?"),
                label(p, "plugsync.version").unwrap_or("?"),
                label(p, "plugsync.serving").unwrap_or("-"),
                if p.metadata.deletion_timestamp.is_some() { " terminating" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
