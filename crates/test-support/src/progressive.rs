//! Helpers for the progressive-delivery tests (`tests/progressive_*.rs`): canary, blue-green
//! and A/B rollouts against the real Docker engine, with traffic from the `http-probe` client
//! container on the fleet network, driven either by the library `Reconciler` (one pass) or by
//! the `plugsync run` daemon as a child process (people's commands, restarts, SIGKILL).
//!
//! Built on [`crate::docker`] (TestFleet, cleanup guard, `watch`, `ProbeClient`) and
//! [`crate::daemon`] (bare Git remote, daemon child process, status branch).
//!
//! Everything here is timed on the wall clock (seconds since the Unix epoch, as `f64`), so the
//! reconciler's narration, `observe` polls and the client container's log lines (Docker's own
//! timestamps, same host clock) can be put on one time line.

use crate::daemon::{self as common_daemon, Daemon, DaemonOptions, Repo};
use crate::docker::{self as common, PluginDef, ProbeClient, TestFleet, Watch};
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures_util::StreamExt;
use plugsync::backend::docker::DockerBackend;
use plugsync::backend::Backend;
use plugsync::plan::{DesiredHealth, Instance, Slot};
use plugsync::reconcile::{Reconciler, Report};
use plugsync::status::PluginStatus;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The API token the daemon tests give `plugsync run`.
pub const TOKEN: &str = "progressive-test-token";

/// Seconds since the Unix epoch.
pub fn wall() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Policies

/// Inline Canary policy (built-in analysis), YAML flow mapping for `PluginDef::rollout`.
pub fn canary(steps: &str, period: &str, auto_rollback: bool, max_surge: u32, max_error_rate: f64) -> String {
    format!(
        "{{strategy: Canary, canaryConfig: {{steps: {steps}, evaluationPeriod: {period}, autoRollback: {auto_rollback}, \
         maxSurge: {max_surge}, thresholds: {{maxErrorRate: {max_error_rate}}}}}, analysis: {{minSamples: 10}}}}"
    )
}

/// Inline BlueGreen policy (built-in analysis, `maxErrorRate` 5 %).
pub fn blue_green(warmup: &str, switchover: &str, monitoring: &str, smoke: &str) -> String {
    format!(
        "{{strategy: BlueGreen, blueGreenConfig: {{warmupPeriod: {warmup}, switchoverType: {switchover}, gradualSteps: [50, 100], \
         monitoringPeriod: {monitoring}, keepPreviousEnvironment: false, smokeTests: {smoke}, thresholds: {{maxErrorRate: 0.05}}}}, \
         analysis: {{minSamples: 10}}}}"
    )
}

// ---------------------------------------------------------------------------------------------
// Narration on the wall clock

/// The reconciler's narration with wall-clock times, echoed to stderr.
pub struct Story {
    tag: String,
    start: f64,
    pub lines: Mutex<Vec<(f64, String)>>,
}

impl Story {
    pub fn new(tag: &str) -> Story {
        Story { tag: tag.into(), start: wall(), lines: Mutex::new(Vec::new()) }
    }
    pub fn push(&self, line: &str) {
        let t = wall();
        eprintln!("[{}] {:>7.2}s {line}", self.tag, t - self.start);
        self.lines.lock().unwrap().push((t, line.to_string()));
    }
    /// Time of the first line containing `needle`.
    pub fn first(&self, needle: &str) -> Option<f64> {
        self.lines.lock().unwrap().iter().find(|(_, l)| l.contains(needle)).map(|(t, _)| *t)
    }
    pub fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(t, l)| format!("{:>7.2}s {l}", t - self.start))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// The client container's log, timestamped

#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    /// `(time, ok, fail, addresses of the last DNS answer)` per STATS line (every 250 ms).
    pub stats: Vec<(f64, u64, u64, BTreeSet<String>)>,
    /// `(time, address, why)` per failed request.
    pub fails: Vec<(f64, String, String)>,
}

impl ClientLog {
    /// Everything the client logged so far, with Docker's timestamps.
    pub async fn read(docker: &Docker, client: &ProbeClient) -> ClientLog {
        let options = LogsOptions { stdout: true, stderr: true, timestamps: true, ..Default::default() };
        let mut stream = docker.logs(&client.id, Some(options));
        let mut text = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(out) => text.push_str(&String::from_utf8_lossy(out.as_ref())),
                Err(e) => panic!("read the client's logs: {e}"),
            }
        }
        let mut log = ClientLog::default();
        for line in text.lines() {
            let Some((ts, rest)) = line.split_once(' ') else { continue };
            let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else { continue };
            let t = t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9;
            if let Some(fields) = rest.strip_prefix("STATS ") {
                let (mut ok, mut fail, mut ips) = (0, 0, BTreeSet::new());
                for field in fields.split(' ') {
                    match field.split_once('=') {
                        Some(("ok", v)) => ok = v.parse().unwrap_or(0),
                        Some(("fail", v)) => fail = v.parse().unwrap_or(0),
                        Some(("ips", v)) => ips = v.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
                        _ => {}
                    }
                }
                log.stats.push((t, ok, fail, ips));
            } else if let Some(fields) = rest.strip_prefix("FAIL ") {
                let mut parts = fields.splitn(3, ' ');
                let _n = parts.next();
                let ip = parts.next().unwrap_or("-").to_string();
                let why = parts.next().unwrap_or("").to_string();
                log.fails.push((t, ip, why));
            }
        }
        log
    }

    /// Requests answered / failed between `from` and `to` (from the STATS counters).
    pub fn counts_between(&self, from: f64, to: f64) -> (u64, u64) {
        let at = |t: f64| self.stats.iter().rev().find(|s| s.0 <= t).map(|s| (s.1, s.2)).unwrap_or((0, 0));
        let (ok0, fail0) = at(from);
        let (ok1, _) = at(to);
        let fails = self.fails.iter().filter(|f| f.0 > from && f.0 <= to).count() as u64;
        (ok1.saturating_sub(ok0), fails.max(at(to).1.saturating_sub(fail0)))
    }

    pub fn fails_between(&self, from: f64, to: f64) -> Vec<&(f64, String, String)> {
        self.fails.iter().filter(|f| f.0 > from && f.0 <= to).collect()
    }

    /// Every address the client's DNS answers named after `from`.
    pub fn addresses_since(&self, from: f64) -> BTreeSet<String> {
        self.stats.iter().filter(|s| s.0 >= from).flat_map(|s| s.3.iter().cloned()).collect()
    }
}

/// Starts the client container hammering `http://<alias>:8080/` (common::ProbeClient).
pub async fn start_client(docker: &Docker, fleet: &TestFleet, alias: &str) -> ProbeClient {
    ProbeClient::start(docker, fleet, alias).await
}

// ---------------------------------------------------------------------------------------------
// One reconcile pass (library), watched

/// A fleet with `def` converged (one reconcile pass of the fleet dir), and the client
/// container hammering `http://<def.id>:8080/`.
pub async fn setup(tag: &str, def: &PluginDef) -> (Docker, TestFleet, DockerBackend, ProbeClient) {
    let docker = common::docker().await;
    common::ensure_echo_images(&docker).await;
    let fleet = TestFleet::new(tag).await;
    fleet.plugin(def);
    let backend = fleet.backend().await;
    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "initial reconcile: {:#?}", report.results);
    let client = start_client(&docker, &fleet, &def.id).await;
    (docker, fleet, backend, client)
}

/// One reconcile pass of the fleet dir as it is now, narrated into `story`, while
/// `common::watch` polls `observe(plugin)`. Returns the report, the polls and the wall time
/// the watch started (its snapshot times are relative to it).
pub async fn reconcile_watched(
    fleet: &TestFleet,
    backend: &DockerBackend,
    story: &Story,
    plugin: &str,
) -> (Report, Watch, f64) {
    let local = fleet.load();
    let stop = AtomicBool::new(false);
    let narrate = |line: &str| story.push(line);
    let run = async {
        let t = Instant::now();
        let report = Reconciler::new(backend, &local.loaded.fleet, &local.revision, &narrate)
            .run(DesiredHealth::Complete)
            .await
            .expect("reconcile run");
        eprintln!("[{}] reconcile took {:?}", fleet.name, t.elapsed());
        stop.store(true, Ordering::SeqCst);
        report
    };
    let t0 = wall();
    let (report, watched) = tokio::join!(run, common::watch(backend, &fleet.name, plugin, &stop));
    (report, watched, t0)
}

/// Wall time of the first snapshot (after `after`, watch-relative) where `pick` holds.
pub fn first_poll(watched: &Watch, after: f64, pick: impl Fn(&[Instance]) -> bool) -> Option<f64> {
    watched.snapshots.iter().find(|(t, s)| *t >= after && pick(s)).map(|(t, _)| *t)
}

// ---------------------------------------------------------------------------------------------
// Layouts

/// `stable 1.0.0×3* canary 1.1.0×1*` (`*` = all serving, `~` = some serving, `!` = some not
/// running), grouped by slot and version.
pub fn layout(instances: &[Instance]) -> String {
    let mut groups: Vec<((Slot, String), Vec<&Instance>)> = Vec::new();
    for i in instances {
        let key = (i.slot, i.version.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    groups
        .iter()
        .map(|((slot, version), members)| {
            let serving = members.iter().filter(|i| i.serving && i.is_running()).count();
            let mark = if serving == members.len() {
                "*"
            } else if serving > 0 {
                "~"
            } else {
                ""
            };
            let stopped = if members.iter().any(|i| !i.is_running()) { "!" } else { "" };
            format!("{slot} {version}×{}{mark}{stopped}", members.len())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Running, serving instances.
pub fn serving(instances: &[Instance]) -> Vec<&Instance> {
    instances.iter().filter(|i| i.is_running() && i.serving).collect()
}

/// Percent of the serving instances that match `pick` (0 when nothing serves).
pub fn share(instances: &[Instance], pick: impl Fn(&Instance) -> bool) -> f64 {
    let s = serving(instances);
    if s.is_empty() {
        return 0.0;
    }
    s.iter().filter(|i| pick(i)).count() as f64 * 100.0 / s.len() as f64
}

/// Consecutive duplicates removed.
pub fn dedup<T: PartialEq + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in items {
        if out.last() != Some(&x) {
            out.push(x);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Background observation (daemon tests: the daemon is a child process, the test is sync)

/// One poll of `observe`: wall time, instances, and how many serving instances answered
/// `GET /health/ready` with 200 right then.
#[derive(Debug, Clone)]
pub struct Poll {
    pub t: f64,
    pub instances: Vec<Instance>,
    pub ready_serving: usize,
}

/// Polls `observe(fleet, plugin)` about every 100 ms on its own thread (own runtime), probing
/// the serving instances' readiness, until dropped or `stop`ped.
pub struct BgWatch {
    stop: Arc<AtomicBool>,
    pub polls: Arc<Mutex<Vec<Poll>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BgWatch {
    pub fn start(fleet: &str, network: &str, plugin: &str, probe_ready: bool) -> BgWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(Mutex::new(Vec::new()));
        let (fleet, network, plugin) = (fleet.to_string(), network.to_string(), plugin.to_string());
        let (stop2, polls2) = (stop.clone(), polls.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let backend = DockerBackend::connect(None, network).await.expect("connect to Docker");
                while !stop2.load(Ordering::SeqCst) {
                    if let Ok(observed) = backend.observe(&fleet, Some(&plugin)).await {
                        let t = wall();
                        let ready_serving = if probe_ready {
                            let probes = serving(&observed.instances).into_iter().filter_map(|i| i.address).map(
                                |ip| async move {
                                    matches!(common::http_get(ip, "/health/ready").await, Ok(r) if r.status == 200)
                                },
                            );
                            futures_util::future::join_all(probes).await.into_iter().filter(|ok| *ok).count()
                        } else {
                            serving(&observed.instances).len()
                        };
                        polls2.lock().unwrap().push(Poll { t, instances: observed.instances, ready_serving });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        });
        BgWatch { stop, polls, thread: Some(thread) }
    }

    pub fn snapshot(&self) -> Vec<Poll> {
        self.polls.lock().unwrap().clone()
    }

    pub fn last(&self) -> Option<Poll> {
        self.polls.lock().unwrap().last().cloned()
    }

    /// Stops polling and returns every poll.
    pub fn stop(mut self) -> Vec<Poll> {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BgWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One line per poll whose layout differs from the previous one.
pub fn poll_timeline(polls: &[Poll], t0: f64) -> String {
    let mut out = Vec::new();
    let mut last = String::new();
    for p in polls {
        let l = format!("{} (ready serving {})", layout(&p.instances), p.ready_serving);
        if l != last {
            out.push(format!("  {:>7.2}s {l}", p.t - t0));
            last = l;
        }
    }
    out.join("\n")
}

// ---------------------------------------------------------------------------------------------
// The daemon rig: TestFleet names and cleanup, a Git remote, `plugsync run`, the client

/// A fleet driven by `plugsync run` (common_daemon::Daemon) from a bare Git remote, with the
/// client container on its network. Fields drop in order: daemon, client, fleet (removes
/// every container of the fleet, the client and the network), repo, runtime.
pub struct Rig {
    pub daemon: Daemon,
    pub client: Option<ProbeClient>,
    pub fleet: TestFleet,
    pub repo: Repo,
    pub docker: Docker,
    pub rt: tokio::runtime::Runtime,
}

impl Rig {
    /// Pushes `def` (plus `plugsync.yaml`), starts the daemon (interval 1 s, API token
    /// [`TOKEN`]), waits until `def` runs and is ACTIVE, then starts the client on `def.id`.
    pub fn start(tag: &str, def: &PluginDef) -> Rig {
        common_daemon::ensure_docker();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let docker = rt.block_on(common::docker());
        let fleet = rt.block_on(TestFleet::new(tag));
        let repo = Repo::new();
        repo.write("plugsync.yaml", &common_daemon::fleet_yaml(&fleet.name, &fleet.network));
        repo.write(&common_daemon::plugin_path(&def.id), &def.yaml());
        repo.commit_push(&format!("{} {}", def.id, def.version));
        let daemon = Daemon::start(
            &fleet.name,
            &fleet.network,
            DaemonOptions::new(repo.url(), "1s").env("PLUGSYNC_API_TOKEN", TOKEN),
        );
        let mut rig = Rig { daemon, client: None, fleet, repo, docker, rt };
        rig.wait_active(def, Duration::from_secs(60));
        let client = rig.rt.block_on(ProbeClient::start(&rig.docker, &rig.fleet, &def.id));
        rig.client = Some(client);
        rig
    }

    pub fn push(&self, def: &PluginDef, message: &str) -> String {
        self.repo.write(&common_daemon::plugin_path(&def.id), &def.yaml());
        self.repo.commit_push(message)
    }

    pub fn status(&self, id: &str) -> Option<PluginStatus> {
        self.repo.plugin_status(id)
    }

    pub fn status_text(&self, id: &str) -> String {
        self.repo.status_text(&format!("status/{id}.yaml")).unwrap_or_else(|| "(none)".into())
    }

    pub fn observe(&self, plugin: &str) -> Vec<Instance> {
        let network = self.fleet.network.clone();
        let fleet = self.fleet.name.clone();
        let plugin = plugin.to_string();
        self.rt.block_on(async move {
            let backend = DockerBackend::connect(None, network).await.expect("connect to Docker");
            backend.observe(&fleet, Some(&plugin)).await.expect("observe").instances
        })
    }

    pub fn client_log(&self) -> ClientLog {
        let client = self.client.as_ref().expect("client started");
        self.rt.block_on(ClientLog::read(&self.docker, client))
    }

    /// Context for a failure message: containers, status, daemon log tail.
    pub fn context(&self, id: &str) -> String {
        format!(
            "layout: {}\nstatus/{id}.yaml:\n{}\ndaemon log (without the wake-up lines):\n{}",
            layout(&self.observe(id)),
            self.status_text(id),
            self.log_tail(60)
        )
    }

    /// The daemon log's last `n` lines, without "woken by a push or a command".
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.daemon.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("woken by a push or a command")).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `POST /api/v1/plugins/{id}/rollout/{action}` with the bearer token.
    pub fn command(&self, id: &str, action: &str) -> (u16, String) {
        let url = format!("{}/api/v1/plugins/{id}/rollout/{action}", self.daemon.base_url());
        common_daemon::http_post(&url, &[("Authorization", format!("Bearer {TOKEN}"))], b"")
    }

    /// Exactly `def.replicas` containers of `def.id`, all running and serving `def.version`
    /// with `def`'s env, and the status ACTIVE at that version.
    pub fn is_active(&self, def: &PluginDef) -> bool {
        settled_at(&self.observe(&def.id), def) && self.repo.status_active(&def.id, &def.version)
    }

    pub fn wait_active(&self, def: &PluginDef, timeout: Duration) -> Duration {
        common_daemon::wait_for(
            &format!("{} at {} running, serving and ACTIVE", def.id, def.version),
            timeout,
            || self.is_active(def),
            || self.context(&def.id),
        )
    }

    /// SIGKILL: no shutdown, no status written for the pass in flight.
    pub fn kill9(&self) {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &self.daemon.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL {} failed", self.daemon.pid());
    }
}

/// Whether `instances` are exactly `def.replicas` running, serving instances of `def`
/// (version and every env value of the manifest).
pub fn settled_at(instances: &[Instance], def: &PluginDef) -> bool {
    instances.len() == def.replicas as usize
        && instances.iter().all(|i| i.is_running() && i.serving && matches_def(i, def))
}

/// Whether the instance runs `def`: same version and the manifest's env values.
pub fn matches_def(i: &Instance, def: &PluginDef) -> bool {
    i.version == def.version
        && i.spec.as_ref().is_some_and(|s| {
            def.env.iter().all(|(k, v)| s.env.get(k) == Some(v)) && s.env.get("ECHO_VERSION") == Some(&def.version)
        })
}
