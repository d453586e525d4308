//! Helpers for the end-to-end daemon tests (`tests/daemon_*.rs`): a real bare Git remote in a
//! tempdir with a working clone the test commits to with the `git` CLI, a fleet with unique
//! fleet and network names, the `plugsync run` daemon as a child process (killed with SIGTERM
//! on drop), the Docker containers it made (removed on drop, by label only), polling with
//! timeouts, the status branch read straight from the bare repository, and signed webhooks.
//!
//! Docker is reached through the `docker` CLI for observation and cleanup (so `Drop` needs no
//! runtime) and through bollard once, to check the engine and build the echo images. These
//! tests need a Docker engine and fail loudly (never skip) when there is none.

use plugsync::status::{FleetStatus, PluginStatus};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const V1: &str = "1.0.0";
pub const V2: &str = "1.1.0";
pub const V3: &str = "1.2.0";

pub use crate::workspace_root;

pub use crate::plugsync_bin;

// ---------------------------------------------------------------------------------------------
// Docker

static DOCKER_READY: OnceLock<()> = OnceLock::new();

/// Checks the engine (panics without one) and builds `plugsync/echo-plugin:{1.0.0,1.1.0,1.2.0}`
/// once per test binary.
pub fn ensure_docker() {
    DOCKER_READY.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let docker = bollard::Docker::connect_with_local_defaults()
                .expect("cannot configure a Docker client (DOCKER_HOST / socket): these tests need Docker");
            let docker = docker
                .negotiate_version()
                .await
                .expect("Docker engine unreachable: these tests need a running Docker daemon");
            docker.ping().await.expect("Docker engine does not answer ping: these tests need Docker");
            let t = Instant::now();
            plugsync::images::ensure_echo_images(&docker, workspace_root(), &[V1, V2, V3])
                .await
                .unwrap_or_else(|e| panic!("building the echo plugin images failed: {e}"));
            eprintln!("echo images ready in {:?}", t.elapsed());
        });
    });
}

pub fn docker_cli(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the docker CLI (these tests need Docker)")
}

/// One container of a fleet as `docker ps -a` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub state: String,
    pub plugin: String,
    pub version: String,
}

/// Every container labelled `plugsync.fleet=<fleet>`, any state.
pub fn containers(fleet: &str) -> Vec<Container> {
    let out = docker_cli(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label=plugsync.fleet={fleet}"),
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Label \"plugsync.plugin\"}}\t{{.Label \"plugsync.version\"}}",
    ]);
    assert!(out.status.success(), "docker ps failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut list: Vec<Container> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Container {
                id: f[0].into(),
                name: f.get(1).copied().unwrap_or("").into(),
                state: f.get(2).copied().unwrap_or("").into(),
                plugin: f.get(3).copied().unwrap_or("").into(),
                version: f.get(4).copied().unwrap_or("").into(),
            }
        })
        .collect();
    list.sort_by(|a, b| (&a.plugin, &a.name).cmp(&(&b.plugin, &b.name)));
    list
}

/// Plugin → sorted versions of its running containers.
pub fn running(fleet: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in containers(fleet).into_iter().filter(|c| c.state == "running") {
        out.entry(c.plugin).or_default().push(c.version);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Whether exactly `replicas` containers of `plugin` exist, all running `version`.
pub fn plugin_runs(fleet: &str, plugin: &str, version: &str, replicas: usize) -> bool {
    let mine: Vec<Container> = containers(fleet).into_iter().filter(|c| c.plugin == plugin).collect();
    mine.len() == replicas && mine.iter().all(|c| c.state == "running" && c.version == version)
}

pub fn inspect(id: &str) -> serde_json::Value {
    let out = docker_cli(&["inspect", id]);
    assert!(out.status.success(), "docker inspect {id}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("docker inspect JSON");
    v[0].clone()
}

/// Removes every container labelled with the fleet, then the network. Touches nothing else.
pub fn remove_fleet(fleet: &str, network: &str) {
    let ids: Vec<String> = containers(fleet).into_iter().map(|c| c.id).collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids.iter().map(String::as_str));
        let out = docker_cli(&args);
        if !out.status.success() {
            eprintln!("[{fleet}] cleanup: docker rm: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let exists = docker_cli(&["network", "inspect", network]).status.success();
    if exists {
        let out = docker_cli(&["network", "rm", network]);
        if !out.status.success() {
            eprintln!("[{fleet}] cleanup: docker network rm {network}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// Records every container created for a fleet (`docker events`), from now on.
pub struct CreateWatch {
    child: Child,
    pub seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl CreateWatch {
    pub fn start(fleet: &str) -> CreateWatch {
        let mut child = Command::new("docker")
            .args([
                "events",
                "--filter",
                "type=container",
                "--filter",
                "event=create",
                "--filter",
                &format!("label=plugsync.fleet={fleet}"),
                "--format",
                "{{index .Actor.Attributes \"plugsync.plugin\"}} {{index .Actor.Attributes \"plugsync.version\"}}",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker events");
        let stdout = child.stdout.take().expect("events stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.split_whitespace();
                let plugin = parts.next().unwrap_or("").to_string();
                let version = parts.next().unwrap_or("").to_string();
                sink.lock().unwrap().push((plugin, version));
            }
        });
        // `docker events` subscribes asynchronously: give it a moment before anything happens.
        std::thread::sleep(Duration::from_millis(300));
        CreateWatch { child, seen }
    }

    pub fn count(&self, plugin: &str, version: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|(p, v)| p == plugin && v == version).count()
    }
}

impl Drop for CreateWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Git

pub fn git_in(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args([
            "-c",
            "user.name=Plugsync Test",
            "-c",
            "user.email=test@plugsync.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::null())
        .output()
        .expect("run git")
}

pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = git_in(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare remote (`<tmp>/remote.git`) and a working clone (`<tmp>/work`) on branch `main`.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Repo {
    pub fn new() -> Repo {
        Repo::with_prefix(".tmp")
    }

    /// The tempdir's name starts with `prefix` (for path-dependent behaviour).
    pub fn with_prefix(prefix: &str) -> Repo {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir");
        let bare = dir.path().join("remote.git");
        let work = dir.path().join("work");
        git_ok(dir.path(), &["init", "-q", "--bare", "--initial-branch=main", bare.to_str().unwrap()]);
        git_ok(dir.path(), &["init", "-q", "--initial-branch=main", work.to_str().unwrap()]);
        git_ok(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Repo { dir, bare, work }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    pub fn git(&self, args: &[&str]) -> String {
        git_ok(&self.work, args)
    }

    pub fn bare_git(&self, args: &[&str]) -> Output {
        let mut all = vec!["--git-dir", self.bare.to_str().unwrap()];
        all.extend_from_slice(args);
        git_in(self.dir.path(), &all)
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.work.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub fn remove(&self, relative: &str) {
        self.git(&["rm", "-q", "-r", relative]);
    }

    /// `git add -A && git commit && git push origin main`; returns the new commit.
    pub fn commit_push(&self, message: &str) -> String {
        self.commit(message);
        self.push();
        self.head()
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.head()
    }

    pub fn push(&self) {
        self.git(&["push", "-q", "origin", "main"]);
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// `git show plugsync/status:<path>` on the bare remote.
    pub fn status_text(&self, path: &str) -> Option<String> {
        self.branch_text("plugsync/status", path)
    }

    /// `git show <branch>:<path>` on the bare remote.
    pub fn branch_text(&self, branch: &str, path: &str) -> Option<String> {
        let out = self.bare_git(&["show", &format!("{branch}:{path}")]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn plugin_status(&self, id: &str) -> Option<PluginStatus> {
        self.plugin_status_on("plugsync/status", id)
    }

    pub fn plugin_status_on(&self, branch: &str, id: &str) -> Option<PluginStatus> {
        let text = self.branch_text(branch, &format!("status/{id}.yaml"))?;
        Some(serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("status/{id}.yaml does not parse: {e}\n{text}")))
    }

    pub fn fleet_status(&self) -> Option<FleetStatus> {
        let text = self.status_text("status/fleet.yaml")?;
        Some(serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("status/fleet.yaml does not parse: {e}\n{text}")))
    }

    /// Subjects of the status branch, newest first (empty when it does not exist).
    pub fn status_subjects(&self) -> Vec<String> {
        let out = self.bare_git(&["log", "--format=%s", "plugsync/status"]);
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    /// Full messages of the status branch, newest first.
    pub fn status_messages(&self) -> String {
        let out = self.bare_git(&["log", "--format=%B%x00", "plugsync/status"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status_commit_count(&self) -> usize {
        self.status_subjects().len()
    }

    /// Whether the plugin's status says ACTIVE at `version`.
    pub fn status_active(&self, id: &str, version: &str) -> bool {
        self.plugin_status(id).is_some_and(|s| {
            s.state == plugsync::status::Lifecycle::Active && s.desired_version.as_deref() == Some(version)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Fleet files

/// `plugsync.yaml` for a Development fleet (Direct by default) on its own network.
pub fn fleet_yaml(fleet: &str, network: &str) -> String {
    format!("fleet: {fleet}\nenvironment: Development\nbackend:\n  type: docker\n  network: {network}\n")
}

/// One echo-plugin manifest; `extra` is appended verbatim (top-level YAML keys).
pub fn plugin_yaml(id: &str, version: &str, env: &[(&str, &str)], extra: &str) -> String {
    let mut y = format!(
        "id: {id}\nversion: {version}\nruntime:\n  image: plugsync/echo-plugin:{version}\n  resources: {{ cpu: 250m, memory: 64Mi }}\nreplicas: 1\nenv:\n  ECHO_VERSION: \"{version}\"\n"
    );
    for (k, v) in env {
        y += &format!("  {k}: \"{v}\"\n");
    }
    y += extra;
    y
}

pub fn plugin_path(id: &str) -> String {
    format!("plugins/{id}/plugin.yaml")
}

/// Unique names: fleet `d-<tag>-<pid>`, network `psd-<tag>-<pid>`.
pub fn names(tag: &str) -> (String, String) {
    let pid = std::process::id();
    (format!("d-{tag}-{pid}"), format!("psd-{tag}-{pid}"))
}

// ---------------------------------------------------------------------------------------------
// The daemon

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `plugsync run` as a child process. Drop sends SIGTERM, waits, then removes the fleet's
/// containers and network (nothing else).
pub struct Daemon {
    child: Option<Child>,
    pub port: u16,
    pub fleet: String,
    pub network: String,
    pub log_path: PathBuf,
    pub cache: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

pub struct DaemonOptions<'a> {
    pub url: String,
    pub interval: &'a str,
    pub env: Vec<(&'a str, &'a str)>,
    pub extra_args: Vec<&'a str>,
}

impl<'a> DaemonOptions<'a> {
    pub fn new(url: String, interval: &'a str) -> Self {
        DaemonOptions { url, interval, env: Vec::new(), extra_args: Vec::new() }
    }
    pub fn env(mut self, k: &'a str, v: &'a str) -> Self {
        self.env.push((k, v));
        self
    }
    pub fn arg(mut self, a: &'a str) -> Self {
        self.extra_args.push(a);
        self
    }
}

impl Daemon {
    /// Removes leftovers of the same names, then starts the daemon.
    pub fn start(fleet: &str, network: &str, options: DaemonOptions) -> Daemon {
        ensure_docker();
        remove_fleet(fleet, network);
        let cache = tempfile::tempdir().expect("cache tempdir");
        let log_path = cache.path().join("daemon.log");
        let port = free_port();
        let mut args: Vec<String> =
            ["run", "--repo", &options.url, "--branch", "main", "--listen"].iter().map(|s| s.to_string()).collect();
        args.push(format!("127.0.0.1:{port}"));
        args.push("--cache-dir".into());
        args.push(cache.path().join("cache").to_str().expect("utf-8 tempdir").into());
        args.push("--interval".into());
        args.push(options.interval.into());
        args.extend(options.extra_args.iter().map(|s| s.to_string()));
        let env = options.env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut daemon =
            Daemon { child: None, port, fleet: fleet.into(), network: network.into(), log_path, cache, args, env };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("log file");
        let mut command = Command::new(plugsync_bin());
        command
            .args(&self.args)
            .env("PLUGSYNC_LOG", "plugsync=info")
            .env("NO_COLOR", "1")
            .env_remove("PLUGSYNC_WEBHOOK_SECRET")
            .env_remove("PLUGSYNC_API_TOKEN")
            .env_remove("PLUGSYNC_REPO")
            .env_remove("PLUGSYNC_CACHE_DIR")
            .env_remove("PLUGSYNC_INTERVAL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().expect("spawn plugsync run"));
        self.wait_healthy();
    }

    /// Stops the daemon (SIGTERM) and starts it again with the same arguments, cache and
    /// port; containers stay as they are.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last 60 lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let skipped = lines.len().saturating_sub(60);
        let mut out = if skipped > 0 { format!("[… {skipped} earlier log lines]\n") } else { String::new() };
        out.push_str(&lines[skipped..].join("\n"));
        out
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Panics with the log when the daemon exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.as_mut().expect("child").try_wait().expect("try_wait") {
            panic!("plugsync run exited with {status}; log:\n{}", self.log_tail());
        }
    }

    fn wait_healthy(&self) {
        let url = format!("{}/healthz", self.base_url());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http_get(&url).is_some_and(|(code, _)| code == 200) {
                return;
            }
            if Instant::now() > deadline {
                panic!("plugsync run never answered {url}; log:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    eprintln!("[{}] daemon did not stop on SIGTERM within 15 s; killing", self.fleet);
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("----- daemon log ({}) -----\n{}\n----- end of daemon log -----", self.fleet, self.log_tail());
        }
        remove_fleet(&self.fleet, &self.network);
    }
}

// ---------------------------------------------------------------------------------------------
// Polling and HTTP

/// Polls `check` every 100 ms until it holds; panics with `what` and `context()` on timeout.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
    context: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the plugin runs `version` on Docker and its status says ACTIVE at `version`.
pub fn wait_converged(repo: &Repo, daemon: &Daemon, id: &str, version: &str, timeout: Duration) -> Duration {
    wait_for(
        &format!("{id} at {version} running and ACTIVE in status"),
        timeout,
        || plugin_runs(&daemon.fleet, id, version, 1) && repo.status_active(id, version),
        || {
            format!(
                "containers: {:#?}\nstatus/{id}.yaml:\n{}\nstatus/fleet.yaml:\n{}\ndaemon log:\n{}",
                containers(&daemon.fleet),
                repo.status_text(&format!("status/{id}.yaml")).unwrap_or_default(),
                repo.status_text("status/fleet.yaml").unwrap_or_default(),
                daemon.log_tail()
            )
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

pub fn http_get(url: &str) -> Option<(u16, String)> {
    runtime().block_on(async {
        let r = plugsync::tls::http_client().get(url).timeout(Duration::from_secs(5)).send().await.ok()?;
        let code = r.status().as_u16();
        Some((code, r.text().await.unwrap_or_default()))
    })
}

pub fn http_post(url: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    runtime().block_on(async {
        let mut request = plugsync::tls::http_client().post(url).timeout(Duration::from_secs(10)).body(body.to_vec());
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let r = request.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let code = r.status().as_u16();
        (code, r.text().await.unwrap_or_default())
    })
}

/// `sha256=<hex hmac-sha256(secret, body)>`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A GitHub push event body for `main` at `after`.
pub fn push_body(after: &str) -> Vec<u8> {
    format!("{{\"ref\":\"refs/heads/main\",\"after\":\"{after}\"}}").into_bytes()
}

/// Runs the plugsync CLI (not the daemon) and returns its output.
pub fn plugsync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(plugsync_bin());
    command.args(args).stdin(Stdio::null()).env_remove("PLUGSYNC_API_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run plugsync")
}

/// Sum of the samples of metric `name` (any labels) whose line contains `labels` ("" = all),
/// from the daemon's `/metrics`.
pub fn metric(daemon: &Daemon, name: &str, labels: &str) -> f64 {
    let (code, text) = http_get(&format!("{}/metrics", daemon.base_url())).expect("GET /metrics");
    assert_eq!(code, 200, "GET /metrics: {text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// How many reconcile passes the daemon has finished.
pub fn ticks(daemon: &Daemon) -> u64 {
    metric(daemon, "plugsync_reconcile_duration_seconds_count", "") as u64
}

/// Waits until the daemon has finished `n` more passes than now.
pub fn wait_ticks(daemon: &Daemon, n: u64, timeout: Duration) {
    let start = ticks(daemon);
    wait_for(&format!("{n} more reconcile passes"), timeout, || ticks(daemon) >= start + n, || daemon.log_tail());
}
