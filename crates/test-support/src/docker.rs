//! Shared helpers for the Docker integration tests (`docker_reconcile`, `docker_rollout`):
//! a fleet directory in a tempdir with a unique fleet and network name, a guard that removes
//! everything the test created on the engine (even when the test panics), plugin manifests,
//! narration capture, plain HTTP from the host to an instance, and the `http-probe` client
//! container (tests/fixtures/docker/http-probe) that reaches a plugin through Docker's DNS.
//!
//! These tests need a Docker engine and fail loudly (never skip) when there is none.

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use plugsync::backend::docker::DockerBackend;
use plugsync::backend::Backend;
use plugsync::plan::{DesiredHealth, Instance, Plan};
use plugsync::reconcile::{Reconciler, Report};
use plugsync::source::LocalFleet;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Echo image versions the tests use (all the same image; `ECHO_VERSION` tells them apart).
pub const V1: &str = "1.0.0";
pub const V2: &str = "1.1.0";
pub const VERSIONS: [&str; 2] = [V1, V2];

/// Image of the DNS-resolving HTTP client (tests/fixtures/docker/http-probe).
pub const PROBE_IMAGE: &str = "plugsync/test-client:latest";

pub use crate::workspace_root;

/// The local engine, API version negotiated. Panics (never skips) without one.
pub async fn docker() -> Docker {
    let docker = Docker::connect_with_local_defaults()
        .expect("cannot configure a Docker client (DOCKER_HOST / socket): these tests need Docker");
    let docker =
        docker.negotiate_version().await.expect("Docker engine unreachable: these tests need a running Docker daemon");
    docker.ping().await.expect("Docker engine does not answer ping: these tests need Docker");
    docker
}

static ECHO_IMAGES: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
static PROBE_BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Builds `plugsync/echo-plugin:{1.0.0,1.1.0}` once per test binary.
pub async fn ensure_echo_images(docker: &Docker) {
    ECHO_IMAGES
        .get_or_init(|| async {
            let t = Instant::now();
            plugsync::images::ensure_echo_images(docker, workspace_root(), &VERSIONS)
                .await
                .unwrap_or_else(|e| panic!("building the echo plugin images failed: {e}"));
            eprintln!("echo images ready in {:?}", t.elapsed());
        })
        .await;
}

/// Builds the `http-probe` client (std only, static) and its `FROM scratch` image once.
pub async fn ensure_probe_image(docker: &Docker) {
    PROBE_BUILT
        .get_or_init(|| async {
            let t = Instant::now();
            let binary = tokio::task::spawn_blocking(build_probe_binary).await.expect("join");
            let sha = plugsync::images::file_sha256(&binary).expect("hash the probe binary");
            let current = docker
                .inspect_image(PROBE_IMAGE)
                .await
                .ok()
                .and_then(|i| i.config)
                .and_then(|c| c.labels)
                .and_then(|l| l.get(plugsync::images::BINARY_SHA_LABEL).cloned())
                .is_some_and(|s| s == sha);
            if !current {
                let labels = BTreeMap::from([(
                    "plugsync.image-source".to_string(),
                    "tests/fixtures/docker/http-probe".to_string(),
                )]);
                plugsync::images::build_scratch_image(docker, &binary, PROBE_IMAGE, &labels)
                    .await
                    .unwrap_or_else(|e| panic!("building {PROBE_IMAGE} failed: {e}"));
            }
            eprintln!("probe image ready in {:?}", t.elapsed());
        })
        .await;
}

fn build_probe_binary() -> PathBuf {
    let root = workspace_root();
    let manifest = root.join("tests/fixtures/docker/http-probe/Cargo.toml");
    let target_dir = root.join("target").join("http-probe");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--offline", "--release", "--target", "x86_64-unknown-linux-gnu", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .stdin(Stdio::null())
        .output()
        .expect("run cargo to build the http-probe client");
    assert!(
        output.status.success(),
        "building tests/fixtures/docker/http-probe failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = target_dir.join("x86_64-unknown-linux-gnu/release/http-probe");
    assert!(binary.is_file(), "http-probe binary missing at {}", binary.display());
    binary
}

// ---------------------------------------------------------------------------------------------
// Cleanup

/// What a test created on the engine. Removed on drop, even when the test panicked: extra
/// containers (by id), then every container labelled `plugsync.fleet=<fleet>`, then the
/// fleet network. Nothing else is ever touched.
pub struct Cleanup {
    fleet: String,
    network: String,
    extra_containers: Mutex<Vec<String>>,
}

impl Cleanup {
    pub fn new(fleet: &str, network: &str) -> Self {
        Cleanup { fleet: fleet.into(), network: network.into(), extra_containers: Mutex::new(Vec::new()) }
    }

    /// Registers a container the test made itself (not labelled with our fleet).
    pub fn track_container(&self, id: &str) {
        self.extra_containers.lock().unwrap().push(id.to_string());
    }

    async fn run(fleet: &str, network: &str, extra: &[String]) -> Vec<String> {
        let mut notes = Vec::new();
        let docker = docker().await;
        let force = || RemoveContainerOptions { force: true, v: true, ..Default::default() };
        for id in extra {
            match docker.remove_container(id, Some(force())).await {
                Ok(()) => notes.push(format!("removed extra container {id}")),
                Err(e) => notes.push(format!("extra container {id}: {e}")),
            }
        }
        let mut routers = list_labelled(&docker, &format!("plugsync.router={fleet}")).await;
        routers.extend(list_labelled(&docker, &format!("plugsync.gateway={fleet}")).await);
        for c in list_fleet_containers(&docker, fleet).await.into_iter().chain(routers) {
            let id = c.id.unwrap_or_default();
            match docker.remove_container(&id, Some(force())).await {
                Ok(()) => notes.push(format!("removed {}", c.names.unwrap_or_default().join(","))),
                Err(e) => notes.push(format!("could not remove {id}: {e}")),
            }
        }
        if docker.inspect_network(network, None).await.is_ok() {
            match docker.remove_network(network).await {
                Ok(()) => notes.push(format!("removed network {network}")),
                Err(e) => notes.push(format!("could not remove network {network}: {e}")),
            }
        }
        notes
    }

    /// Removes leftovers of a previous run with the same names (same pid) before starting.
    pub async fn pre_clean(&self) {
        let extra = Vec::new();
        for note in Cleanup::run(&self.fleet, &self.network, &extra).await {
            eprintln!("[{}] pre-clean: {note}", self.fleet);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let fleet = self.fleet.clone();
        let network = self.network.clone();
        let extra = self.extra_containers.lock().map(|v| v.clone()).unwrap_or_default();
        // Drop cannot await, and the test's runtime may be unwinding: a private runtime on
        // its own thread, with its own connection.
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let notes = rt.block_on(Cleanup::run(&fleet, &network, &extra));
            for note in notes {
                eprintln!("[{fleet}] cleanup: {note}");
            }
            Ok::<_, std::io::Error>(())
        })
        .join();
        if !matches!(joined, Ok(Ok(()))) {
            eprintln!(
                "[{}] cleanup FAILED: remove containers labelled plugsync.fleet={} and network {} by hand",
                self.fleet, self.fleet, self.network
            );
        }
    }
}

pub async fn list_fleet_containers(docker: &Docker, fleet: &str) -> Vec<bollard::models::ContainerSummary> {
    list_labelled(docker, &format!("plugsync.fleet={fleet}")).await
}

/// Every container (running or not) carrying `label` (`key=value`).
pub async fn list_labelled(docker: &Docker, label: &str) -> Vec<bollard::models::ContainerSummary> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    docker.list_containers(Some(options)).await.expect("list containers")
}

/// The ids of `plugin`'s containers among `containers`.
pub fn container_ids(
    containers: &[bollard::models::ContainerSummary],
    plugin: &str,
) -> std::collections::BTreeSet<String> {
    containers
        .iter()
        .filter(|c| c.labels.as_ref().and_then(|l| l.get("plugsync.plugin")).map(String::as_str) == Some(plugin))
        .filter_map(|c| c.id.clone())
        .collect()
}

/// Every container of `fleet` (all states), inspected, in name order.
pub async fn inspect_fleet(docker: &Docker, fleet: &str) -> Vec<ContainerInspectResponse> {
    let mut out = Vec::new();
    for c in list_fleet_containers(docker, fleet).await {
        let id = c.id.unwrap_or_default();
        out.push(docker.inspect_container(&id, None::<InspectContainerOptions>).await.expect("inspect container"));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

// ---------------------------------------------------------------------------------------------
// Fleet directory

/// One plugin manifest, written as YAML.
#[derive(Clone, Debug)]
pub struct PluginDef {
    pub id: String,
    pub version: String,
    pub replicas: u32,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub reserve_cpu: Option<String>,
    pub reserve_memory: Option<String>,
    pub env: Vec<(String, String)>,
    /// YAML flow mapping, e.g. `{greeting: hello, limits: {n: 3}}`.
    pub config: Option<String>,
    pub depends_on: Vec<String>,
    /// YAML flow mapping of the inline rollout policy.
    pub rollout: Option<String>,
}

impl PluginDef {
    pub fn new(id: &str, version: &str) -> Self {
        PluginDef {
            id: id.into(),
            version: version.into(),
            replicas: 1,
            cpu: Some("250m".into()),
            memory: Some("64Mi".into()),
            reserve_cpu: None,
            reserve_memory: None,
            env: Vec::new(),
            config: None,
            depends_on: Vec::new(),
            rollout: None,
        }
    }
    pub fn replicas(mut self, n: u32) -> Self {
        self.replicas = n;
        self
    }
    pub fn memory(mut self, m: &str) -> Self {
        self.memory = Some(m.into());
        self
    }
    pub fn reservations(mut self, cpu: &str, memory: &str) -> Self {
        self.reserve_cpu = Some(cpu.into());
        self.reserve_memory = Some(memory.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn config(mut self, flow: &str) -> Self {
        self.config = Some(flow.into());
        self
    }
    pub fn depends_on(mut self, id: &str) -> Self {
        self.depends_on.push(id.into());
        self
    }
    pub fn rollout(mut self, flow: &str) -> Self {
        self.rollout = Some(flow.into());
        self
    }
    /// Same plugin at another version (image tag and ECHO_VERSION follow).
    pub fn version(mut self, v: &str) -> Self {
        self.version = v.into();
        self
    }

    pub fn yaml(&self) -> String {
        let mut y = format!(
            "id: {}\nversion: {}\nruntime:\n  image: plugsync/echo-plugin:{}\n",
            self.id, self.version, self.version
        );
        let res = |cpu: &Option<String>, mem: &Option<String>| {
            let mut parts = Vec::new();
            if let Some(c) = cpu {
                parts.push(format!("cpu: {c}"));
            }
            if let Some(m) = mem {
                parts.push(format!("memory: {m}"));
            }
            parts.join(", ")
        };
        if self.cpu.is_some() || self.memory.is_some() {
            y += &format!("  resources: {{ {} }}\n", res(&self.cpu, &self.memory));
        }
        if self.reserve_cpu.is_some() || self.reserve_memory.is_some() {
            y += &format!("  reservations: {{ {} }}\n", res(&self.reserve_cpu, &self.reserve_memory));
        }
        y += &format!("replicas: {}\nenv:\n  ECHO_VERSION: \"{}\"\n", self.replicas, self.version);
        for (k, v) in &self.env {
            y += &format!("  {k}: \"{v}\"\n");
        }
        if let Some(c) = &self.config {
            y += &format!("config: {c}\n");
        }
        if !self.depends_on.is_empty() {
            y += &format!("dependsOn: [{}]\n", self.depends_on.join(", "));
        }
        if let Some(r) = &self.rollout {
            y += &format!("rollout: {r}\n");
        }
        y
    }
}

/// Inline Rolling policy.
pub fn rolling(batch: u32, wait: &str, timeout: &str) -> String {
    format!("{{strategy: Rolling, rollingConfig: {{batchSize: {batch}, waitBetweenBatches: {wait}, healthCheckTimeout: {timeout}, maxParallelBatches: 1}}}}")
}

/// Inline Direct policy (its health-check timeout lives in rollingConfig).
pub fn direct(timeout: &str) -> String {
    format!("{{strategy: Direct, rollingConfig: {{healthCheckTimeout: {timeout}}}}}")
}

/// A fleet directory with a unique fleet and network name, and the cleanup of both.
/// Field order matters: `cleanup` drops before `dir`.
pub struct TestFleet {
    pub name: String,
    pub network: String,
    pub cleanup: Cleanup,
    pub dir: tempfile::TempDir,
    pub narration: Narration,
}

impl TestFleet {
    /// `t-<tag>-<pid>` on network `ps-<tag>-<pid>`; leftovers of the same names are removed.
    pub async fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let name = format!("t-{tag}-{pid}");
        let network = format!("ps-{tag}-{pid}");
        let cleanup = Cleanup::new(&name, &network);
        cleanup.pre_clean().await;
        let fleet = TestFleet {
            dir: tempfile::tempdir().expect("tempdir"),
            cleanup,
            narration: Narration::new(&name),
            name,
            network,
        };
        fleet.write(
            "plugsync.yaml",
            &format!("fleet: {}\nbackend:\n  type: docker\n  network: {}\n", fleet.name, fleet.network),
        );
        fleet
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 tempdir")
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub fn plugin(&self, def: &PluginDef) {
        self.write(&format!("plugins/{}/plugin.yaml", def.id), &def.yaml());
    }

    pub fn remove_plugin(&self, id: &str) {
        std::fs::remove_dir_all(self.dir.path().join("plugins").join(id)).expect("remove plugin folder");
    }

    /// Loads the fleet directory; panics with the diagnostics when it does not validate.
    pub fn load(&self) -> LocalFleet {
        let local = plugsync::source::load_dir(self.path(), None).expect("load fleet dir");
        assert!(
            local.loaded.is_valid(),
            "test fleet does not validate:\n{}",
            local.loaded.errors().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
        );
        local
    }

    /// Loads without asserting validity.
    pub fn load_any(&self) -> LocalFleet {
        plugsync::source::load_dir(self.path(), None).expect("load fleet dir")
    }

    /// The backend for this fleet, with the router settings of its `plugsync.yaml`.
    pub async fn backend(&self) -> DockerBackend {
        DockerBackend::connect(None, self.network.clone())
            .await
            .unwrap_or_else(|e| panic!("connect to Docker: {e} — these tests need a running Docker daemon"))
            .with_router(&self.load_any().loaded.fleet.config.traffic)
    }

    pub async fn plan(&self, backend: &DockerBackend, desired: DesiredHealth) -> Plan {
        let local = self.load_any();
        let narrate = |line: &str| self.narration.push(line);
        Reconciler::new(backend, &local.loaded.fleet, &local.revision, &narrate).plan(desired).await.expect("plan")
    }

    /// One reconcile pass of the directory as it is now (must validate).
    pub async fn reconcile(&self, backend: &DockerBackend) -> Report {
        let local = self.load();
        self.reconcile_loaded(backend, &local, DesiredHealth::Complete).await
    }

    pub async fn reconcile_loaded(
        &self,
        backend: &DockerBackend,
        local: &LocalFleet,
        desired: DesiredHealth,
    ) -> Report {
        let narrate = |line: &str| self.narration.push(line);
        let t = Instant::now();
        let report = Reconciler::new(backend, &local.loaded.fleet, &local.revision, &narrate)
            .run(desired)
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

    pub async fn observe(&self, backend: &DockerBackend, plugin: Option<&str>) -> Vec<Instance> {
        backend.observe(&self.name, plugin).await.expect("observe").instances
    }

    /// `plugsync ARGS` with the local engine.
    pub fn cli(&self, args: &[&str]) -> Output {
        plugsync_cli(args)
    }
}

pub fn plugsync_cli(args: &[&str]) -> Output {
    Command::new(crate::plugsync_bin())
        .args(args)
        .env_remove("PLUGSYNC_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run the plugsync binary")
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// Narration

/// The reconciler's narration, timestamped, echoed to stderr.
pub struct Narration {
    fleet: String,
    start: Instant,
    lines: Mutex<Vec<(Duration, String)>>,
}

impl Narration {
    pub fn new(fleet: &str) -> Self {
        Narration { fleet: fleet.into(), start: Instant::now(), lines: Mutex::new(Vec::new()) }
    }
    pub fn push(&self, line: &str) {
        let at = self.start.elapsed();
        eprintln!("[{}] {:>7.2}s {line}", self.fleet, at.as_secs_f64());
        self.lines.lock().unwrap().push((at, line.to_string()));
    }
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().iter().map(|(_, l)| l.clone()).collect()
    }
    /// Index of the first line starting with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.lines().iter().position(|l| l.starts_with(prefix))
    }
}

// ---------------------------------------------------------------------------------------------
// Watching a rollout

/// What a poll of `observe` every ~100 ms saw while a reconcile ran.
#[derive(Debug, Default, Clone)]
pub struct Watch {
    pub polls: u32,
    /// Fewest instances that were running and serving at once.
    pub min_serving: Option<usize>,
    /// Most instances running at once.
    pub max_running: usize,
    /// Versions ever seen serving.
    pub versions_serving: std::collections::BTreeSet<String>,
    /// One line per poll: `t=1.20s running=4 serving=3 [ad73ea9d:1.0.0* c031f85a:1.1.0 ...]`
    /// (`*` = serving).
    pub timeline: Vec<String>,
    /// Every poll's instances, with seconds since the watch started.
    pub snapshots: Vec<(f64, Vec<Instance>)>,
}

/// Polls `observe(fleet, plugin)` until `stop` is set.
pub async fn watch(backend: &DockerBackend, fleet: &str, plugin: &str, stop: &AtomicBool) -> Watch {
    let mut w = Watch::default();
    let start = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if let Ok(observed) = backend.observe(fleet, Some(plugin)).await {
            let running = observed.instances.iter().filter(|i| i.is_running()).count();
            let serving: Vec<&Instance> = observed.instances.iter().filter(|i| i.is_running() && i.serving).collect();
            w.polls += 1;
            w.max_running = w.max_running.max(running);
            w.min_serving = Some(w.min_serving.map_or(serving.len(), |m| m.min(serving.len())));
            w.versions_serving.extend(serving.iter().map(|i| i.version.clone()));
            let detail: Vec<String> = observed
                .instances
                .iter()
                .map(|i| format!("{}:{}{}", &i.id[..8], i.version, if i.serving { "*" } else { "" }))
                .collect();
            w.timeline.push(format!(
                "t={:.2}s running={running} serving={} [{}]",
                start.elapsed().as_secs_f64(),
                serving.len(),
                detail.join(" ")
            ));
            w.snapshots.push((start.elapsed().as_secs_f64(), observed.instances.clone()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w
}

// ---------------------------------------------------------------------------------------------
// HTTP from the host to one instance

pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One plain HTTP/1.1 GET on a fresh connection to `ip:8080`.
pub async fn http_get(ip: std::net::IpAddr, path: &str) -> std::io::Result<Response> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect((ip, 8080)).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}:8080\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad response: {text:?}"));
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        Ok(Response { status, body: body.to_string() })
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "GET timed out")))
}

/// `GET /` on an instance, parsed; panics unless 200 + JSON.
pub async fn root_json(instance: &Instance) -> serde_json::Value {
    let ip =
        instance.address.unwrap_or_else(|| panic!("instance {} has no address on the fleet network", instance.name));
    let r = http_get(ip, "/").await.unwrap_or_else(|e| panic!("GET / on {} ({ip}): {e}", instance.name));
    assert_eq!(r.status, 200, "GET / on {}: {}", instance.name, r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET / on {}: not JSON ({e}): {}", instance.name, r.body))
}

// ---------------------------------------------------------------------------------------------
// The client container

/// The `http-probe` container: GETs `http://<alias>:8080/` every 20 ms through Docker's DNS
/// from inside the fleet network. Registered with the fleet's cleanup.
pub struct ProbeClient {
    pub id: String,
}

#[derive(Debug, Clone, Default)]
pub struct ProbeStats {
    pub ok: u64,
    pub fail: u64,
    pub ips: Vec<String>,
    pub failures: Vec<String>,
}

impl ProbeClient {
    pub async fn start(docker: &Docker, fleet: &TestFleet, alias: &str) -> ProbeClient {
        ensure_probe_image(docker).await;
        let name = format!("{}-client-{alias}", fleet.name);
        let body = ContainerCreateBody {
            image: Some(PROBE_IMAGE.into()),
            cmd: Some(vec![alias.into(), "8080".into(), "/".into(), "20".into()]),
            // No plugsync.fleet label: plugsync must neither see nor touch it.
            labels: Some(HashMap::from([("plugsync-test.role".to_string(), "client".to_string())])),
            host_config: Some(HostConfig { network_mode: Some(fleet.network.clone()), ..Default::default() }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created = docker.create_container(Some(options), body).await.expect("create the client container");
        fleet.cleanup.track_container(&created.id);
        docker.start_container(&created.id, None).await.expect("start the client container");
        let client = ProbeClient { id: created.id };
        // Wait until it has answers flowing.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = client.stats(docker).await;
            if s.ok >= 5 {
                eprintln!("[{}] client {name} is up: {s:?}", fleet.name);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the client container never got 5 answers from http://{alias}:8080/: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        client
    }

    /// The latest `STATS` line and every `FAIL` line so far.
    pub async fn stats(&self, docker: &Docker) -> ProbeStats {
        let options = LogsOptions { stdout: true, stderr: true, ..Default::default() };
        let mut stream = docker.logs(&self.id, Some(options));
        let mut text = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(out) => text.push_str(&String::from_utf8_lossy(out.as_ref())),
                Err(e) => panic!("read the client's logs: {e}"),
            }
        }
        let mut stats = ProbeStats::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("STATS ") {
                for field in rest.split(' ') {
                    match field.split_once('=') {
                        Some(("ok", v)) => stats.ok = v.parse().unwrap_or(0),
                        Some(("fail", v)) => stats.fail = v.parse().unwrap_or(0),
                        Some(("ips", v)) => {
                            stats.ips = v.split(',').filter(|s| !s.is_empty()).map(String::from).collect()
                        }
                        _ => {}
                    }
                }
            } else if line.starts_with("FAIL ") {
                stats.failures.push(line.to_string());
            }
        }
        // FAIL lines are printed at once, STATS only every 250 ms.
        stats.fail = stats.fail.max(stats.failures.len() as u64);
        stats
    }
}

/// `(seconds, nanos)` of a Docker RFC 3339 timestamp (`2024-05-01T10:11:12.5Z`), for ordering.
pub fn created_key(ts: &str) -> (String, u32) {
    let ts = ts.trim_end_matches('Z');
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    (secs.to_string(), frac.parse().unwrap_or(0))
}
