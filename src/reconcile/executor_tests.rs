//! Logic tests of the executor against `InMemoryBackend`, an engine kept in memory that
//! stands in for logic tests only (every integration test keeps the real engine): dependency
//! order, the concurrency limit, an engine outage inside the grace, a refusal, losing the Lease
//! mid-pass, pause and resume. Readiness is probed over real HTTP, at a local server every
//! instance's address points at.

use super::*;
use crate::backend::{Backend, BackendError, StartRequest};
use crate::model::{load, FileSet, Fleet};
use crate::plan::{Instance, Observed, RunState, Slot};
use crate::strategy::Control;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Calls {
    /// `start plugin version`, `retire plugin version`, … in the order they happened.
    log: Vec<String>,
    starting: usize,
    most_starting: usize,
}

/// Instances in a list. `start` takes `start_delay`; the next `outage` observes fail as an
/// unreachable engine; `refuse_starts` refuses every start; after `depose_after` starts the
/// Lease flag is cleared.
struct InMemoryBackend {
    instances: Mutex<Vec<Instance>>,
    calls: Mutex<Calls>,
    address: IpAddr,
    start_delay: Duration,
    outage: AtomicUsize,
    refuse_starts: AtomicBool,
    depose_after: Option<(usize, Arc<AtomicBool>)>,
    next_id: AtomicUsize,
}

impl InMemoryBackend {
    fn new(address: IpAddr) -> Self {
        InMemoryBackend {
            instances: Mutex::default(),
            calls: Mutex::default(),
            address,
            start_delay: Duration::from_millis(20),
            outage: AtomicUsize::new(0),
            refuse_starts: AtomicBool::new(false),
            depose_after: None,
            next_id: AtomicUsize::new(0),
        }
    }

    fn log(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.log.clone()).unwrap_or_default()
    }

    fn note(&self, line: String) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.log.push(line);
        }
    }

    fn running(&self, plugin: &str) -> Vec<(Slot, String, bool)> {
        let instances = self.instances.lock().map(|i| i.clone()).unwrap_or_default();
        instances
            .iter()
            .filter(|i| i.plugin == plugin && i.is_running())
            .map(|i| (i.slot, i.version.clone(), i.serving))
            .collect()
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Instance)) -> Result<(), BackendError> {
        let mut instances = self.instances.lock().map_err(|_| unreachable("poisoned"))?;
        match instances.iter_mut().find(|i| i.id == id) {
            Some(instance) => {
                change(instance);
                Ok(())
            }
            None => Err(BackendError::Refused {
                engine: "memory",
                action: "change",
                subject: id.into(),
                detail: "no such instance".into(),
            }),
        }
    }
}

fn unreachable(detail: &str) -> BackendError {
    BackendError::Unreachable { engine: "memory", endpoint: "memory".into(), detail: detail.into() }
}

impl Backend for InMemoryBackend {
    async fn prepare(&self, _fleet: &str) -> Result<(), BackendError> {
        Ok(())
    }

    async fn observe(&self, _fleet: &str, plugin: Option<&str>) -> Result<Observed, BackendError> {
        if self.outage.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(unreachable("the engine is restarting"));
        }
        let instances = self.instances.lock().map_err(|_| unreachable("poisoned"))?;
        let instances = instances.iter().filter(|i| plugin.is_none_or(|p| i.plugin == p)).cloned().collect();
        Ok(Observed { instances, ..Default::default() })
    }

    async fn start(&self, request: StartRequest<'_>) -> Result<Instance, BackendError> {
        if self.refuse_starts.load(Ordering::SeqCst) {
            return Err(BackendError::Refused {
                engine: "memory",
                action: "start",
                subject: request.spec.plugin.clone(),
                detail: "no space left on device".into(),
            });
        }
        if let Ok(mut calls) = self.calls.lock() {
            calls.starting += 1;
            calls.most_starting = calls.most_starting.max(calls.starting);
        }
        tokio::time::sleep(self.start_delay).await;
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let spec = request.spec;
        let instance = Instance {
            id: format!("{}-{n}", spec.plugin),
            name: format!("{}-{}-{n}", request.fleet, spec.plugin),
            plugin: spec.plugin.clone(),
            slot: request.slot,
            version: spec.version.clone(),
            spec_hash: request.hash.to_string(),
            spec: Some(spec.clone()),
            revision: request.revision.to_string(),
            state: RunState::Running,
            serving: request.serve,
            address: Some(self.address),
            ready: None,
            oom_killed: false,
            restart_count: 0,
            image_id: None,
            runtime: None,
        };
        if let Ok(mut instances) = self.instances.lock() {
            instances.push(instance.clone());
        }
        let started = if let Ok(mut calls) = self.calls.lock() {
            calls.starting -= 1;
            calls.log.push(format!("start {} {}", spec.plugin, spec.version));
            calls.log.iter().filter(|l| l.starts_with("start ")).count()
        } else {
            0
        };
        if let Some((after, leading)) = &self.depose_after {
            if started >= *after {
                leading.store(false, Ordering::SeqCst);
            }
        }
        Ok(instance)
    }

    async fn serve(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        self.update(&instance.id, |i| i.serving = true)
    }

    async fn unserve(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        self.update(&instance.id, |i| i.serving = false)
    }

    async fn park(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        self.update(&instance.id, |i| {
            i.serving = false;
            i.state = RunState::Exited;
        })
    }

    async fn retire(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        if let Ok(mut instances) = self.instances.lock() {
            instances.retain(|i| i.id != instance.id);
        }
        self.note(format!("retire {} {}", instance.plugin, instance.version));
        Ok(())
    }
}

/// A local HTTP server answering 200 to every path: the readiness endpoint of every instance.
async fn healthy_endpoint() -> (IpAddr, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let address = listener.local_addr().expect("local address");
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address.ip(), address.port())
}

/// (id, version, extra manifest lines) → a fleet whose instances answer on `port`.
fn fleet(config: &str, port: u16, plugins: &[(&str, &str, &str)]) -> Fleet {
    let mut files = FileSet::new();
    files.insert("plugsync.yaml".into(), format!("fleet: mem\n{config}").into_bytes());
    for (id, version, extra) in plugins {
        let direct = "rollout: {strategy: Direct, rollingConfig: {healthCheckTimeout: 5s}}\n";
        let rollout = if extra.contains("rollout:") { "" } else { direct };
        let text = format!(
            "id: {id}\nversion: {version}\nruntime:\n  image: echo:{version}\napi:\n  port: {port}\n{rollout}{extra}"
        );
        files.insert(format!("plugins/{id}/plugin.yaml"), text.into_bytes());
    }
    let loaded = load(&files, None);
    assert!(loaded.is_valid(), "{:?}", loaded.errors().map(ToString::to_string).collect::<Vec<_>>());
    loaded.fleet
}

async fn pass(backend: &InMemoryBackend, fleet: &Fleet) -> Report {
    let quiet = |_: &str| {};
    Reconciler::new(backend, fleet, "r1", &quiet).run(DesiredHealth::Complete).await.expect("pass")
}

fn endings(report: &Report) -> Vec<(String, Ending)> {
    report.results.iter().map(|r| (r.plugin.clone(), r.result.clone())).collect()
}

#[tokio::test]
async fn dependencies_converge_before_their_dependents() {
    let (address, port) = healthy_endpoint().await;
    let backend = InMemoryBackend::new(address);
    let fleet = fleet(
        "concurrency: 4\n",
        port,
        &[("web", "1.0.0", "dependsOn: [api]\n"), ("api", "1.0.0", "dependsOn: [db]\n"), ("db", "1.0.0", "")],
    );
    let report = pass(&backend, &fleet).await;
    assert!(report.succeeded(), "{:?}", endings(&report));
    assert_eq!(backend.log(), ["start db 1.0.0", "start api 1.0.0", "start web 1.0.0"]);
}

#[tokio::test]
async fn no_more_plugins_converge_at_once_than_the_concurrency_limit() {
    let (address, port) = healthy_endpoint().await;
    let mut backend = InMemoryBackend::new(address);
    backend.start_delay = Duration::from_millis(150);
    let ids = ["a", "b", "c", "d", "e", "f"];
    let plugins: Vec<(&str, &str, &str)> = ids.iter().map(|id| (*id, "1.0.0", "")).collect();
    let report = pass(&backend, &fleet("concurrency: 2\n", port, &plugins)).await;
    assert!(report.succeeded(), "{:?}", endings(&report));
    let most = backend.calls.lock().map(|c| c.most_starting).unwrap_or_default();
    assert_eq!(most, 2, "two plugins at a time, in parallel");
}

#[tokio::test]
async fn an_engine_outage_inside_the_grace_is_waited_out_and_a_refusal_fails_at_once() {
    let (address, port) = healthy_endpoint().await;
    let backend = InMemoryBackend::new(address);
    let fleet = fleet("", port, &[("api", "1.0.0", "")]);
    let quiet = |_: &str| {};
    let reconciler = Reconciler::new(&backend, &fleet, "r1", &quiet);
    let plan = reconciler.plan(DesiredHealth::Complete).await.expect("plan");
    backend.outage.store(3, Ordering::SeqCst);
    let report = reconciler.apply_plan(plan).await.expect("pass");
    assert_eq!(endings(&report), [("api".to_string(), Ending::Converged)]);
    assert_eq!(backend.outage.load(Ordering::SeqCst), 0, "the outage was met and waited out");

    let fleet = self::fleet("", port, &[("api", "1.0.0", ""), ("web", "1.0.0", "")]);
    backend.refuse_starts.store(true, Ordering::SeqCst);
    let report = pass(&backend, &fleet).await;
    match &endings(&report)[..] {
        [(plugin, Ending::Failed { reason })] => {
            assert_eq!(plugin, "web");
            assert!(reason.contains("no space left on device"), "{reason}");
        }
        other => panic!("web fails with the engine's reason: {other:?}"),
    }
}

#[tokio::test]
async fn a_replica_that_loses_the_lease_mid_pass_stops_applying() {
    let (address, port) = healthy_endpoint().await;
    let leading = Arc::new(AtomicBool::new(true));
    let mut backend = InMemoryBackend::new(address);
    backend.depose_after = Some((1, leading.clone()));
    let fleet = fleet("concurrency: 1\n", port, &[("a", "1.0.0", ""), ("b", "1.0.0", ""), ("c", "1.0.0", "")]);
    let quiet = |_: &str| {};
    let report = Reconciler::new(&backend, &fleet, "r1", &quiet)
        .with_leadership(&leading)
        .run(DesiredHealth::Complete)
        .await
        .expect("pass");
    assert_eq!(backend.log(), ["start a 1.0.0"], "nothing is started after the Lease is lost");
    for (plugin, ending) in endings(&report) {
        match ending {
            Ending::Skipped { reason } => assert!(reason.contains("lost its leader Lease"), "{plugin}: {reason}"),
            other => panic!("{plugin}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_paused_blue_green_waits_with_green_beside_blue_and_resumes_to_green() {
    let (address, port) = healthy_endpoint().await;
    let backend = InMemoryBackend::new(address);
    let report = pass(&backend, &fleet("", port, &[("web", "1.0.0", "")])).await;
    assert!(report.succeeded(), "{:?}", endings(&report));

    let blue_green = "rollout: {strategy: BlueGreen, blueGreenConfig: {switchoverType: Instant}}\n";
    let v2 = fleet("", port, &[("web", "2.0.0", blue_green)]);
    assert_eq!(v2.plugins["web"].strategy, crate::model::Strategy::BlueGreen);
    let memory = RolloutMemory::default();
    memory.push_control("web", Control::Pause);
    let quiet = |_: &str| {};
    let report = Reconciler::new(&backend, &v2, "r2", &quiet)
        .with_memory(&memory)
        .run(DesiredHealth::Complete)
        .await
        .expect("pass");
    assert!(matches!(&endings(&report)[..], [(_, Ending::Paused { .. })]), "{:?}", endings(&report));
    let mut running = backend.running("web");
    running.sort_by_key(|(_, version, _)| version.clone());
    assert_eq!(running.len(), 2, "blue and green run side by side: {running:?}");
    assert_eq!((running[0].1.as_str(), running[0].2), ("1.0.0", true), "blue serves: {running:?}");
    assert_eq!((running[1].1.as_str(), running[1].2), ("2.0.0", false), "green waits: {running:?}");

    memory.push_control("web", Control::Resume);
    let report = Reconciler::new(&backend, &v2, "r2", &quiet)
        .with_memory(&memory)
        .run(DesiredHealth::Complete)
        .await
        .expect("pass");
    assert_eq!(endings(&report), [("web".to_string(), Ending::Converged)]);
    let running = backend.running("web");
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!((running[0].1.as_str(), running[0].2), ("2.0.0", true), "green took over: {running:?}");
}
