//! HA leader election on the real Kubernetes cluster of `../shared/k8s`: two `plugsync run`
//! replicas follow one Git repository and elect a leader with a `coordination.k8s.io/v1`
//! Lease. Exactly one holds the Lease and applies (its log narrates the rollout, the other's
//! says nothing about applying and it finishes no reconcile pass); `kill -9` of the leader
//! hands the Lease to the other replica once it expires (measured against lease duration +
//! retry period), and the new leader applies the next commit.
//!
//! Ignored unless asked for (`.ci/run` runs them with `--include-ignored`); fails without a cluster.

use plugsync_test_support::daemon as common_daemon;
use plugsync_test_support::docker as common;
use plugsync_test_support::k8s as common_k8s;

use common::{direct, PluginDef, V1, V2};
use common_daemon::{free_port, Repo};
use common_k8s::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LEASE: &str = "plugsync-leader";
const LEASE_DURATION: Duration = Duration::from_secs(4);
/// What `LeaseConfig::new` derives: the holder renews and followers look every duration / 5.
const RETRY: Duration = Duration::from_millis(800);
/// Scheduling and API latency on a loaded 2-core host.
const SLACK: Duration = Duration::from_secs(1);

/// Log lines only a replica that applies writes (narration, results, status pushes).
const APPLY_MARKERS: [&str; 7] = [
    "became leader",
    "web: create",
    "web: update",
    "web: converged",
    "plugin done",
    "status pushed",
    "reconcile failed",
];

// ---------------------------------------------------------------------------------------------
// One `plugsync run` replica

/// A `plugsync run` child process with its own identity (POD_NAME), port, cache and log.
/// Drop kills it (SIGKILL) and waits, so nothing outlives a failed test; a panicking test
/// prints its log.
struct Replica {
    name: String,
    port: u16,
    child: Option<Child>,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn start(name: &str, repo_url: &str, namespace: &str, kubeconfig: &str) -> Replica {
        let dir = tempfile::Builder::new().prefix(&format!("plugsync-{name}-")).tempdir().expect("tempdir");
        let log_path = dir.path().join("daemon.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let port = free_port();
        let cache = dir.path().join("cache");
        let mut command = Command::new(env!("CARGO_BIN_EXE_plugsync"));
        command
            .args(["run", "--repo", repo_url, "--branch", "main", "--interval", "1s"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--cache-dir", cache.to_str().expect("utf-8 tempdir")])
            .args(["--backend", "kubernetes", "--namespace", namespace])
            .args(["--leader-lease", LEASE, "--lease-duration", "4s"]);
        // Nothing from the environment of whoever runs the tests may change the replica.
        for (key, _) in std::env::vars() {
            if key.starts_with("PLUGSYNC_") {
                command.env_remove(key);
            }
        }
        command
            .env("POD_NAME", name)
            .env("KUBECONFIG", kubeconfig)
            .env("PLUGSYNC_LOG", "info")
            .env("PLUGSYNC_API_TOKEN", API_TOKEN)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let child = command.spawn().expect("spawn plugsync run");
        Replica { name: name.to_string(), port, child: Some(child), log_path, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Lines of the log carrying any of the apply markers.
    fn apply_lines(&self) -> Vec<String> {
        self.log().lines().filter(|l| APPLY_MARKERS.iter().any(|m| l.contains(m))).map(str::to_string).collect()
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("try_wait")) {
            panic!("{} exited with {status}; log:\n{}", self.name, self.log_tail(80));
        }
    }

    /// SIGTERM: a clean shutdown, then reap.
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// `POST /api/v1/plugins/web/rollout/retry` with the token: the HTTP status.
    async fn rollout_retry(&self) -> Option<u16> {
        let url = format!("http://127.0.0.1:{}/api/v1/plugins/web/rollout/retry", self.port);
        let response = plugsync::tls::http_client().post(&url).bearer_auth(API_TOKEN).send().await.ok()?;
        Some(response.status().as_u16())
    }

    /// SIGKILL (what `Child::kill` sends), then reap.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn get(&self, path: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let response = plugsync::tls::http_client().get(&url).timeout(Duration::from_secs(5)).send().await.ok()?;
        response.status().is_success().then_some(())?;
        response.text().await.ok()
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/healthz").await.is_none() {
            self.assert_alive();
            assert!(Instant::now() < deadline, "{} never answered /healthz; log:\n{}", self.name, self.log_tail(80));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of one sample line of `/metrics` (0 when absent).
    async fn metric(&self, sample: &str) -> u64 {
        let text = self.get("/metrics").await.unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Reconcile passes this replica finished (a follower finishes none).
    async fn passes(&self) -> u64 {
        self.metric("plugsync_reconcile_duration_seconds_count").await
    }

    /// Successful fetches of the fleet repository (a follower polls too).
    async fn fetches(&self) -> u64 {
        self.metric("plugsync_git_fetch_total{result=\"success\"}").await
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("----- {} log -----\n{}\n----- end of {} log -----", self.name, self.log_tail(80), self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the cluster

const API_TOKEN: &str = "leader-test-token";

/// The Lease in plain numbers (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq)]
struct LeaseView {
    holder: Option<String>,
    renew_ms: Option<i64>,
    acquire_ms: Option<i64>,
    transitions: i32,
    duration_s: i32,
}

async fn lease(api: &Api<Lease>) -> Option<LeaseView> {
    let lease = api.get_opt(LEASE).await.ok()??;
    let spec = lease.spec.unwrap_or_default();
    Some(LeaseView {
        holder: spec.holder_identity,
        renew_ms: spec.renew_time.map(|t| t.0.as_millisecond()),
        acquire_ms: spec.acquire_time.map(|t| t.0.as_millisecond()),
        transitions: spec.lease_transitions.unwrap_or(0),
        duration_s: spec.lease_duration_seconds.unwrap_or(0),
    })
}

fn wall_ms() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_millisecond()
}

/// `Ok(())` when web runs exactly one ready, serving pod of `version` from one ready
/// Deployment of that version; else what is there.
async fn web_runs(cluster: &Cluster, version: &str) -> Result<Vec<Deployment>, String> {
    let selector = ListParams::default().labels("plugsync.plugin=web");
    let deployments = cluster.api::<Deployment>().list(&selector).await.map_err(|e| e.to_string())?.items;
    let pods = cluster.api::<Pod>().list(&selector).await.map_err(|e| e.to_string())?.items;
    let describe = || {
        let deps: Vec<String> = deployments
            .iter()
            .map(|d| {
                format!(
                    "{} v{} ready {}/{}",
                    d.metadata.name.as_deref().unwrap_or("?"),
                    d.metadata.labels.as_ref().and_then(|l| l.get("plugsync.version")).map_or("?", String::as_str),
                    d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
                    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
                )
            })
            .collect();
        format!("deployments: [{}]; pods: [{}]", deps.join(", "), describe_pods(&pods))
    };
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let ok = deployments.len() == 1
        && deployments.iter().all(|d| {
            d.metadata.labels.as_ref().and_then(|l| l.get("plugsync.version")).map(String::as_str) == Some(version)
                && d.spec.as_ref().and_then(|s| s.replicas) == Some(1)
                && d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1)
        })
        && pods.len() == 1
        && live.iter().all(|p| label(p, "plugsync.version") == Some(version))
        && ready_serving(&pods) == 1;
    if ok {
        Ok(deployments)
    } else {
        Err(describe())
    }
}

/// `Ok` when the status branch says web is ACTIVE at `version`; panics at once when it says
/// the rollout failed (waiting on would only time out).
fn web_active(repo: &Repo, version: &str) -> Result<(), String> {
    use plugsync::status::Lifecycle;
    let text = || repo.status_text("status/web.yaml").unwrap_or_default();
    match repo.plugin_status("web") {
        Some(s) if s.desired_version.as_deref() == Some(version) && s.state == Lifecycle::Active => Ok(()),
        Some(s)
            if s.desired_version.as_deref() == Some(version)
                && matches!(s.state, Lifecycle::Failed | Lifecycle::RolledBack) =>
        {
            panic!("web {version} did not converge; status/web.yaml:\n{}", text())
        }
        _ => Err(format!("status/web.yaml: {}", text())),
    }
}

/// The `/health` answer of web's pod, straight to its IP (pod IPs are reachable here).
async fn web_health(cluster: &Cluster) -> Result<String, String> {
    let pods = cluster.api::<Pod>().list(&ListParams::default().labels("plugsync.plugin=web")).await;
    let pods = pods.map_err(|e| e.to_string())?.items;
    let pod = pods.iter().find(|p| p.metadata.deletion_timestamp.is_none()).ok_or("no live web pod")?;
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).ok_or("web pod has no IP")?;
    let port = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .map(|p| p.container_port)
        .unwrap_or(8080);
    let url = format!("http://{ip}:{port}/health");
    let response = plugsync::tls::http_client()
        .get(&url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    response.text().await.map_err(|e| format!("GET {url}: {e}"))
}

/// Polls `check` every 100 ms until it returns `Ok`; panics with its last `Err` on timeout.
async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(v) => return (v, started.elapsed()),
            Err(e) => e,
        };
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------

/// Two replicas, one Lease: exactly one leads and applies; `kill -9` of the leader hands the
/// Lease to the other within lease duration + retry period (the Lease is not taken while it
/// is live), and the new leader applies the next Git commit.
#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_a_killed_leader_is_replaced_within_the_lease() {
    let test_started = Instant::now();
    let cluster = Cluster::connect("klead").await;
    cluster.ensure_echo_images(&[V1, V2]).await;
    let ns = cluster.namespace.clone();
    let leases: Api<Lease> = cluster.api();

    // A real Git remote holding the fleet: web, 1 replica of 1.0.0, Direct. No CPU limit
    // (hence no CPU request): other tests' pods may have booked the node's 2 CPUs, and this
    // test is about who applies, not about scheduling.
    let repo = Repo::new();
    repo.write("plugsync.yaml", &format!("fleet: {ns}\nbackend:\n  type: kubernetes\n  namespace: {ns}\n"));
    let mut web = PluginDef::new("web", V1).rollout(&direct("60s"));
    web.cpu = None;
    repo.write("plugins/web/plugin.yaml", &web.yaml());
    repo.commit_push("web 1.0.0");

    // Two replicas at once (the Lease does not exist yet: they race to create it).
    let kubeconfig = cluster.kubeconfig();
    let mut replicas = [
        Replica::start("replica-a", &repo.url(), &ns, &kubeconfig),
        Replica::start("replica-b", &repo.url(), &ns, &kubeconfig),
    ];
    for r in replicas.iter_mut() {
        r.wait_healthy().await;
    }

    // (1) Exactly one leader, and the plugin converges.
    let names: Vec<String> = replicas.iter().map(|r| r.name.clone()).collect();
    let (first, _) = wait_until("a replica to hold the Lease", Duration::from_secs(30), async || {
        let l = lease(&leases).await.ok_or("no Lease yet")?;
        match &l.holder {
            Some(h) if names.contains(h) => Ok(l),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await;
    let leader_name = first.holder.clone().expect("holder");
    let li = replicas.iter().position(|r| r.name == leader_name).expect("leader is a replica");
    let fi = 1 - li;
    eprintln!("[{ns}] {leader_name} holds Lease {LEASE} (duration {}s)", first.duration_s);
    assert_eq!(first.duration_s, LEASE_DURATION.as_secs() as i32, "leaseDurationSeconds: {first:?}");

    let (deployments, took) =
        wait_until("web 1.0.0 ready on the cluster and ACTIVE in status", Duration::from_secs(120), async || {
            let deployments = web_runs(&cluster, V1).await?;
            web_active(&repo, V1)?;
            Ok(deployments)
        })
        .await;
    let names_of = |ds: &[Deployment]| ds.iter().filter_map(|d| d.metadata.name.clone()).collect::<Vec<_>>();
    assert_eq!(names_of(&deployments), vec!["web-stable".to_string()], "web 1.0.0 is Deployment web-stable");
    eprintln!("[{ns}] web 1.0.0 converged ({took:?} after the Lease was held)");
    let health =
        wait_until("web's pod to answer /health", Duration::from_secs(20), async || web_health(&cluster).await).await.0;
    assert!(health.contains(&format!("\"version\":\"{V1}\"")), "web pod /health: {health}");

    // Both replicas keep polling for a while: the leader keeps renewing, nobody else takes it.
    let before = lease(&leases).await.expect("lease");
    tokio::time::sleep(LEASE_DURATION / 2 + RETRY).await;
    let after = lease(&leases).await.expect("lease");
    for r in replicas.iter_mut() {
        r.assert_alive();
    }
    assert_eq!(after.holder.as_deref(), Some(leader_name.as_str()), "the leader keeps the Lease: {after:?}");
    assert_eq!(after.transitions, 0, "no transitions while the leader lives: {after:?}");
    assert!(after.renew_ms > before.renew_ms, "the leader renews: {before:?} → {after:?}");

    let (leader, follower) = (&replicas[li], &replicas[fi]);
    let leader_log = leader.log();
    let follower_log = follower.log();
    assert_eq!(leader_log.matches("became leader").count(), 1, "{leader_name} became leader once:\n{leader_log}");
    for needle in ["web: create", "web: converged", "status pushed"] {
        assert!(leader_log.contains(needle), "the leader's log says {needle:?}:\n{leader_log}");
    }
    assert!(
        follower_log.contains("leader election on") && follower_log.contains(&follower.name),
        "{} runs the election:\n{follower_log}",
        follower.name
    );
    let applied_by_follower = follower.apply_lines();
    assert!(
        applied_by_follower.is_empty(),
        "the follower {} logged applying:\n{}",
        follower.name,
        applied_by_follower.join("\n")
    );
    let (leader_passes, follower_passes) = (leader.passes().await, follower.passes().await);
    assert!(leader_passes >= 1, "the leader finished reconcile passes");
    assert_eq!(follower_passes, 0, "the follower finished no reconcile pass");
    let follower_fetches = follower.fetches().await;
    assert!(follower_fetches >= 2, "the follower keeps polling Git (fetches: {follower_fetches})");
    let follower_status = follower.get("/api/v1/status").await.unwrap_or_default();
    assert!(!follower_status.contains("\"web\""), "the follower reports no plugin state: {follower_status}");
    eprintln!(
        "[{ns}] leader {leader_name}: {leader_passes} passes, {} apply lines; follower {}: {follower_fetches} fetches, \
         {follower_passes} passes, no apply lines",
        leader.apply_lines().len(),
        follower.name
    );

    // (2) kill -9 the leader; the follower takes the Lease once it has expired.
    let follower_name = replicas[fi].name.clone();
    let mut last = lease(&leases).await.expect("lease");
    replicas[li].kill9();
    let killed = Instant::now();
    let killed_ms = wall_ms();
    let deadline = LEASE_DURATION + RETRY + SLACK;
    let taken = loop {
        if let Some(l) = lease(&leases).await {
            if l.holder.as_deref() == Some(follower_name.as_str()) {
                break l;
            }
            // The dead leader's last renewal (one may still land from a request in flight).
            if l.holder == last.holder && l.renew_ms > last.renew_ms {
                last = l;
            }
        }
        assert!(
            killed.elapsed() < deadline + Duration::from_secs(20),
            "{follower_name} never took the Lease; last seen {last:?}\n{}",
            replicas[fi].log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let failover = killed.elapsed();
    let last_renew = last.renew_ms.expect("renewTime");
    let acquired = taken.acquire_ms.expect("acquireTime");
    let expired_after_kill = last_renew + LEASE_DURATION.as_millis() as i64 - killed_ms;
    let noticed_after_expiry = acquired - (last_renew + LEASE_DURATION.as_millis() as i64);
    eprintln!(
        "[{ns}] MEASURED leader failover: {failover:?} from kill -9 of {leader_name} to {follower_name} holding Lease {LEASE} \
         (bound {deadline:?} = duration {LEASE_DURATION:?} + retry {RETRY:?} + slack {SLACK:?}); the Lease expired \
         {expired_after_kill} ms after the kill and was taken {noticed_after_expiry} ms after expiry"
    );
    assert!(failover < deadline, "failover took {failover:?}, more than {deadline:?}; {last:?} → {taken:?}");
    assert!(
        acquired >= last_renew + LEASE_DURATION.as_millis() as i64,
        "the Lease was taken while live: renewed at {last_renew}, taken at {acquired}"
    );
    assert_eq!(taken.transitions, 1, "one transition: {taken:?}");

    // The new leader says so and starts reconciling; nothing else changes on the cluster.
    let new_leader = &replicas[fi];
    let (_, first_pass) = wait_until("the new leader's first reconcile pass", Duration::from_secs(20), async || {
        let n = new_leader.passes().await;
        if n > 0 && new_leader.log().contains("became leader") {
            Ok(n)
        } else {
            Err(format!("{n} passes; log:\n{}", new_leader.log_tail(20)))
        }
    })
    .await;
    eprintln!("[{ns}] MEASURED new leader's first reconcile pass: {:?} after kill -9", failover + first_pass);
    web_runs(&cluster, V1).await.unwrap_or_else(|e| panic!("web 1.0.0 still runs after failover: {e}"));

    // (3) A version bump pushed after the failover: the new leader applies it.
    repo.write("plugins/web/plugin.yaml", &web.clone().version(V2).yaml());
    let pushed = Instant::now();
    repo.commit_push("web 1.1.0");
    let (deployments, took) =
        wait_until("web 1.1.0 ready on the cluster and ACTIVE in status", Duration::from_secs(120), async || {
            let deployments = web_runs(&cluster, V2).await?;
            web_active(&repo, V2)?;
            Ok(deployments)
        })
        .await;
    eprintln!(
        "[{ns}] MEASURED 1.1.0 applied by the new leader {follower_name} in {took:?} after the push ({:?}); Deployments {:?}",
        pushed.elapsed(),
        names_of(&deployments)
    );
    let health = wait_until("web's 1.1.0 pod to answer /health", Duration::from_secs(20), async || {
        let h = web_health(&cluster).await?;
        if h.contains(&format!("\"version\":\"{V2}\"")) {
            Ok(h)
        } else {
            Err(h)
        }
    })
    .await
    .0;
    eprintln!("[{ns}] web pod /health: {health}");
    let new_log = replicas[fi].log();
    assert!(new_log.contains("web: update"), "the new leader's log narrates the update:\n{new_log}");
    assert!(!replicas[li].log().contains("web: update"), "the killed leader applied nothing after its death");
    let now = lease(&leases).await.expect("lease");
    assert_eq!(now.holder.as_deref(), Some(follower_name.as_str()), "{follower_name} still leads: {now:?}");
    assert_eq!(now.transitions, 1, "{now:?}");
    replicas[fi].assert_alive();

    // (4) A rollout command sent to a follower is refused (it could not act on it); a leader
    // shutting down cleanly hands the Lease over at once instead of letting it run out.
    let mut third = Replica::start("replica-c", &repo.url(), &ns, &kubeconfig);
    wait_until("replica-c to follow", Duration::from_secs(20), async || {
        if third.log().contains("leader election on") {
            Ok(())
        } else {
            Err(third.log_tail(5))
        }
    })
    .await;
    assert_eq!(third.rollout_retry().await, Some(503), "a follower refuses rollout commands");
    assert_eq!(replicas[fi].rollout_retry().await, Some(202), "the leader accepts them");
    let stopping = Instant::now();
    replicas[fi].terminate();
    let (_, handover) = wait_until("replica-c to take the released Lease", Duration::from_secs(10), async || {
        let now = lease(&leases).await.ok_or("no lease")?;
        if now.holder.as_deref() == Some("replica-c") {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    let since_sigterm = stopping.elapsed();
    eprintln!(
        "[{ns}] MEASURED graceful handover: replica-c leads {since_sigterm:?} after SIGTERM to the leader ({handover:?} after it exited)"
    );
    // Without the release the Lease would run for its 4 s after the last renewal.
    assert!(since_sigterm < Duration::from_secs(4), "the Lease was handed over, not waited out: {since_sigterm:?}");
    third.assert_alive();
    eprintln!("[{ns}] k8s leader test took {:?}", test_started.elapsed());
}
