//! `plugsync run`: follow a branch, reconcile on every poll, push webhook, file change or
//! schedule, and record the outcome on the status branch.

use super::leader::Transition;
use super::requeue::Failure;
use super::tasks;
use crate::backend::any::{AnyBackend, BackendChoice};
use crate::backend::Backend;
use crate::metrics::Metrics;
use crate::model::{self, Environment, FileSet, Fleet};
use crate::plan::gates::{self, Gates};
use crate::plan::{spec::combined_hash, DesiredHealth, Plan};
use crate::reconcile::{Reconciler, Report, RolloutMemory};
use crate::server::{self, Command, ServerState};
use crate::source::git::{GitCache, GitError, GitRemote};
use crate::status::{self, render::PassRecord, PluginStatus};
use crate::strategy::Control;
use git2::Oid;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, RwLock};

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub remote: GitRemote,
    /// Fleet folder inside the repository.
    pub path: Option<String>,
    pub cache_dir: PathBuf,
    /// Overrides `interval` of plugsync.yaml.
    pub interval: Option<Duration>,
    pub listen: Option<SocketAddr>,
    pub webhook_secret: Option<String>,
    pub api_token: Option<String>,
    pub environment: Option<Environment>,
    pub backend: BackendChoice,
    /// Watch the remote's directory for commits when it is a local path.
    pub watch: bool,
    /// Elect a leader among replicas with this Lease (Kubernetes); only the leader applies.
    pub lease: Option<super::leader::LeaseConfig>,
    /// Guard rails from outside the fleet repo; refused plugins are left as they run.
    pub admission: crate::model::admission::AdmissionPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error("listening on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Task(String),
    #[error(transparent)]
    TaskEnded(#[from] tasks::TaskEnded),
}

mod start;
mod status_book;

/// The revision a tick works from, and what went wrong reading it.
struct Refreshed {
    /// The tip read (the last one read when a fetch failed).
    tip: Option<Oid>,
    /// For status and `/api`: fetch failures, unreadable revisions, a withheld prune.
    errors: Vec<String>,
    /// The fleet at `tip` may be incomplete: nothing is pruned from it.
    degraded: bool,
    /// The fetch failed (the loop backs off).
    fetch_failed: bool,
}

impl Refreshed {
    fn degraded(tip: Option<Oid>, error: String) -> Self {
        Refreshed { tip, errors: vec![error], degraded: true, fetch_failed: false }
    }
}

/// What the daemon knows between ticks.
struct Daemon {
    config: DaemonConfig,
    cache: Arc<Mutex<GitCache>>,
    /// Fleet files at `revision`.
    files: FileSet,
    revision: Option<Oid>,
    last_good: Option<(Oid, Arc<model::Loaded>)>,
    statuses: BTreeMap<String, PluginStatus>,
    status_branch: String,
    backend: Option<(String, Arc<AnyBackend>)>,
    metrics: Arc<Metrics>,
    shared_status: Arc<RwLock<serde_json::Value>>,
    /// The status branch's last commits, for the dashboard.
    history: status::history::SharedHistory,
    /// The fleet as last loaded, for the dashboard.
    shared_fleet: crate::server::SharedFleet,
    events: Arc<crate::events::EventBus>,
    /// Plugins whose failed rollout someone asked to retry.
    retry: Arc<Mutex<Vec<String>>>,
    memory: Arc<RolloutMemory>,
    /// Drift heals done lately, per plugin (ms since the epoch: back-off, flap limit), and
    /// what the engine's events said.
    heals: BTreeMap<String, Vec<u64>>,
    causes: super::drift::Causes,
    /// Alert channels of the fleet's `alerts:` (rebuilt when it changes).
    notifier: Option<super::drift::Notifier>,
    /// The engine connection whose event stream is followed.
    events_for: Option<String>,
    trigger: Arc<Notify>,
    /// Whether this replica may apply (always, without a Lease), read as transitions.
    leadership: super::leader::Leadership,
    /// Failed ticks in a row: the wait before the next one grows.
    backoff: super::requeue::Backoff,
    /// Status commits not yet on the remote (replayed until a push succeeds).
    pending_status: Vec<status::StatusCommit>,
    /// Set by a force-push: nothing is pruned until an ordinary push follows.
    prune_hold: Option<String>,
    /// The status branch `statuses` were read from.
    statuses_from: Option<String>,
    /// The fleet as loaded at a revision.
    loaded: Option<(Option<Oid>, Arc<model::Loaded>)>,
    /// Parsed files of earlier revisions: a push that changes one file parses one file.
    parse_cache: model::ParseCache,
}

/// Runs until `shutdown` resolves; the tick in flight finishes first.
// Long: wiring of the loop's tasks and the loop itself; the tasks are in `start`.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let cache = {
        let dir = config.cache_dir.clone();
        let remote = config.remote.clone();
        blocking(move || GitCache::open(&dir, remote)).await??
    };
    let metrics = Arc::new(Metrics::new());
    let trigger = Arc::new(Notify::new());
    let (commands_tx, commands) = mpsc::channel::<Command>(16);
    let events = Arc::new(crate::events::EventBus::default());
    let memory = Arc::new(RolloutMemory::with_events(events.clone()));
    let shared_fleet = crate::server::SharedFleet::default();
    let retry = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut essential = tasks::Essential::default();
    start::commands(&mut essential, commands, memory.clone(), retry.clone(), trigger.clone());
    let shared_status = Arc::new(RwLock::new(serde_json::json!({"plugins": {}})));
    let history = status::history::SharedHistory::default();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let leader = start::election(&config, &mut essential, &trigger, &stop_rx).await?;
    if let Some(address) = config.listen {
        let state = ServerState {
            branch: config.remote.reference.clone(),
            webhook_secret: config.webhook_secret.clone(),
            api_token: config.api_token.clone(),
            trigger: trigger.clone(),
            commands: commands_tx.clone(),
            status: shared_status.clone(),
            history: history.clone(),
            metrics: metrics.clone(),
            leading: leader.as_ref().map(|(flag, _, _)| flag.clone()),
            events: events.clone(),
            fleet: shared_fleet.clone(),
        };
        start::server(address, state, &mut essential, &stop_rx).await?;
    }
    let _watcher = if config.watch { watch_local(&config.remote.url, trigger.clone()) } else { None };
    let mut daemon = Daemon {
        cache: Arc::new(Mutex::new(cache)),
        files: FileSet::new(),
        revision: None,
        last_good: None,
        statuses: BTreeMap::new(),
        status_branch: "plugsync/status".into(),
        backend: None,
        metrics,
        shared_status,
        history,
        shared_fleet,
        events,
        retry,
        memory,
        pending_status: Vec::new(),
        prune_hold: None,
        statuses_from: None,
        loaded: None,
        parse_cache: model::ParseCache::default(),
        leadership: super::leader::Leadership::new(leader.as_ref().map(|(flag, _, _)| flag.clone())),
        backoff: Default::default(),
        heals: BTreeMap::new(),
        notifier: None,
        causes: Default::default(),
        events_for: None,
        trigger: trigger.clone(),
        config,
    };
    loop {
        let interval = daemon.tick().await;
        let next_cron = daemon.until_next_schedule();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::time::sleep(next_cron) => tracing::info!("scheduled full reconcile"),
            _ = trigger.notified() => tracing::info!("woken by a push or a command"),
            ended = essential.ended() => {
                tracing::error!(error = %ended, "an essential task ended");
                return Err(DaemonError::TaskEnded(ended));
            }
            _ = stop_rx.wait_for(|s| *s) => {
                tracing::info!("shutting down");
                if let Some((flag, client, lease)) = &leader {
                    // Hand the Lease over now rather than make the next leader wait it out.
                    if flag.load(std::sync::atomic::Ordering::Relaxed) {
                        super::leader::release(client, lease).await;
                    }
                }
                return Ok(());
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| DaemonError::Task(e.to_string()))
}

/// Wakes the daemon when a local repository's refs change (a commit or a push into it).
fn watch_local(url: &str, trigger: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    if !path.exists() {
        return None;
    }
    let git_dir = if path.join(".git").is_dir() { path.join(".git") } else { path };
    let root = git_dir.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Our own status pushes move refs/heads/plugsync/…: they must never wake a reconcile.
        let relevant = |p: &std::path::PathBuf| {
            let inside = p.strip_prefix(&root).unwrap_or(p).to_string_lossy().to_string();
            !inside.starts_with("objects") && !inside.contains("plugsync/") && !inside.ends_with("plugsync")
        };
        // Only writes count: notify also reports our own fetch opening the repository's files.
        let writes = |e: &notify::Event| {
            matches!(e.kind, notify::EventKind::Create(_) | notify::EventKind::Modify(_) | notify::EventKind::Remove(_))
        };
        if event.is_ok_and(|e| writes(&e) && e.paths.iter().any(relevant)) {
            trigger.notify_one();
        }
    })
    .ok()?;
    for sub in ["refs", "HEAD", "packed-refs"] {
        let _ = watcher.watch(&git_dir.join(sub), notify::RecursiveMode::Recursive);
    }
    Some(watcher)
}

impl Daemon {
    fn until_next_schedule(&self) -> Duration {
        let config = self.last_good.as_ref().map(|(_, good)| &good.fleet.config);
        let Some((schedule, zone)) = config.and_then(|c| Some((c.schedule.clone()?, c.time_zone.clone()))) else {
            return Duration::from_secs(86_400 * 365);
        };
        let now = chrono::Utc::now();
        let next = crate::model::windows::parse_zone(zone.as_deref(), &schedule)
            .and_then(|zone| crate::model::windows::next_scheduled(&schedule, zone, now));
        match next {
            Ok(next) => (next - now).to_std().unwrap_or(Duration::from_secs(1)),
            Err(e) => {
                tracing::warn!(error = %e, "schedule ignored");
                Duration::from_secs(86_400 * 365)
            }
        }
    }

    /// Fetches and reads the new revision; problems keep the last good state.
    async fn refresh(&mut self) -> Refreshed {
        let cache = self.cache.clone();
        let fetched = blocking(move || tasks::lock(&cache).fetch()).await;
        let tip = match fetched {
            Ok(Ok(tip)) => {
                self.metrics.git_fetch(true);
                tip
            }
            Ok(Err(e)) => {
                self.metrics.git_fetch(false);
                tracing::warn!(error = %e, "fetch failed; keeping the last good state");
                let mut refreshed = Refreshed::degraded(self.revision, format!("fetch failed: {e}"));
                refreshed.fetch_failed = true;
                return refreshed;
            }
            Err(e) => return Refreshed::degraded(self.revision, e.to_string()),
        };
        if Some(tip) == self.revision {
            return self.current(tip);
        }
        self.loaded = None; // the files change below
        let cache = self.cache.clone();
        let (previous, mut files, subdir) = (self.revision, std::mem::take(&mut self.files), self.config.path.clone());
        let read = blocking(move || {
            let cache = tasks::lock(&cache);
            let rewritten = previous.is_some_and(|p| !cache.is_ancestor(p, tip));
            let result = match previous {
                Some(p) if !rewritten => cache.update(&mut files, p, tip, subdir.as_deref()).map(|_| files),
                _ => cache.read_tree(tip, subdir.as_deref()),
            };
            (result, rewritten)
        })
        .await;
        match read {
            Ok((Ok(files), rewritten)) => {
                self.files = files;
                self.revision = Some(tip);
                if rewritten {
                    self.prune_hold = Some(format!(
                        "history rewritten: {} is not an ancestor of {tip} (force-push); applying without pruning until the next ordinary push",
                        previous.map(|r| r.to_string()).unwrap_or_default()
                    ));
                } else if previous.is_some() {
                    // An ordinary push on top: what Git says is deliberate again.
                    self.prune_hold = None;
                }
                self.current(tip)
            }
            Ok((Err(e), _)) => {
                tracing::warn!(error = %e, "cannot read the new revision; keeping the last good state");
                self.revision = None; // force a full read next time
                Refreshed::degraded(Some(tip), format!("cannot read {tip}: {e}"))
            }
            Err(e) => Refreshed::degraded(Some(tip), e.to_string()),
        }
    }

    /// `tip` read as it is; a force-push's prune hold is reported, and applied as a gate.
    fn current(&self, tip: Oid) -> Refreshed {
        Refreshed {
            tip: Some(tip),
            errors: self.prune_hold.iter().cloned().collect(),
            degraded: false,
            fetch_failed: false,
        }
    }

    /// One full cycle; returns how long to sleep before the next poll.
    async fn tick(&mut self) -> Duration {
        let Refreshed { tip, errors, degraded, fetch_failed } = self.refresh().await;
        let fetch = fetch_failed.then_some(Failure::Fetch);
        if !self.may_apply() {
            // A follower keeps its clone current and writes nothing: the leader applies.
            let interval = self.interval(self.last_good.as_ref().map(|(_, good)| &good.fleet));
            return self.requeue(fetch, interval);
        }
        let (failure, interval) = self.apply_revision(tip, errors, degraded, fetch).await;
        self.requeue(failure, interval)
    }

    /// The wait before the next tick: the interval, or a growing back-off after failures
    /// (shown in `/metrics`; a webhook, a command or an engine event still wakes it sooner).
    fn requeue(&mut self, failure: Option<Failure>, interval: Duration) -> Duration {
        let wait = self.backoff.next(failure, interval, super::requeue::jitter());
        let failures = self.backoff.failures();
        self.metrics.set_backoff(failures, (failures > 0).then_some(wait));
        if let Some(failure) = failure {
            tracing::warn!(failure = failure.label(), failures, ?wait, "tick failed; backing off");
        }
        wait
    }

    /// Loads the revision (or keeps the last good one), reconciles it and records the pass.
    async fn apply_revision(
        &mut self,
        tip: Option<Oid>,
        mut errors: Vec<String>,
        degraded: bool,
        mut failure: Option<Failure>,
    ) -> (Option<Failure>, Duration) {
        let started = Instant::now();
        if failure.is_some() && self.backoff.failures() >= 1 {
            let interval = self.interval(self.last_good.as_ref().map(|(_, good)| &good.fleet));
            let next = super::requeue::delay(self.backoff.failures() + 1, interval, 0.5);
            errors.push(format!("{} failures in a row; retrying in about {next:.0?}", self.backoff.failures() + 1));
        }
        // The same revision loads to the same fleet: parse it once, not on every poll (and
        // share it, not copy it: a fleet of 10,000 plugins is worth no copy per tick).
        let loaded = match &self.loaded {
            Some((at, loaded)) if *at == tip && tip.is_some() => loaded.clone(),
            _ => {
                let loaded = Arc::new(model::load_cached(&self.files, self.config.environment, &mut self.parse_cache));
                self.loaded = Some((tip, loaded.clone()));
                // The dashboard shows what runs: an invalid revision changes nothing there.
                if loaded.is_valid() {
                    *self.shared_fleet.write().await = Some(loaded.clone());
                }
                loaded
            }
        };
        let revision = tip.map(|t| t.to_string()).unwrap_or_default();
        let (applied, desired) = if loaded.is_valid() && !self.files.is_empty() {
            if let Some(t) = tip {
                self.last_good = Some((t, loaded.clone()));
            }
            (loaded.clone(), if degraded { DesiredHealth::HasErrors } else { DesiredHealth::Complete })
        } else {
            errors.extend(loaded.errors().map(|d| d.to_string()));
            match &self.last_good {
                Some((_, good)) => (good.clone(), DesiredHealth::HasErrors),
                None => {
                    tracing::warn!(errors = errors.len(), "no valid revision yet; nothing to apply");
                    self.record_invalid(&loaded.fleet.config.fleet, &revision, &errors).await;
                    return (failure, self.interval(None));
                }
            }
        };
        let fleet = &applied.fleet;
        let ok = match self.reconcile(fleet, &revision, desired, &errors).await {
            Ok(report) => report.succeeded(),
            Err(e) => {
                if matches!(e, DaemonError::Backend(crate::backend::BackendError::Unreachable { .. })) {
                    failure = failure.or(Some(Failure::Engine));
                }
                errors.push(e.to_string());
                tracing::error!(error = %e, "reconcile failed");
                false
            }
        };
        self.metrics.reconcile(ok && errors.is_empty(), started.elapsed().as_secs_f64());
        if ok {
            self.metrics.set_last_applied(chrono::Utc::now().timestamp() as f64);
        }
        (failure, self.interval(Some(fleet)))
    }

    /// Heals let through this pass count towards the next back-off and the flap limit.
    fn remember_heals(&mut self, healing: &[String], fleet: &Fleet, gates: &Gates) {
        let now_ms = gates.now.timestamp_millis().max(0) as u64;
        for plugin in healing {
            self.heals.entry(plugin.clone()).or_default().push(now_ms);
        }
        let healing = &fleet.config.healing;
        for recent in self.heals.values_mut() {
            *recent = crate::plan::heal::still_counted(recent, now_ms, healing);
        }
        self.heals.retain(|_, recent| !recent.is_empty());
    }

    /// Whether this replica leads (always, without a Lease), acting on a change: on becoming
    /// leader it rereads status (the previous leader may have left a rollout in flight), on
    /// losing it drops status commits not pushed yet (the new leader's are newer).
    fn may_apply(&mut self) -> bool {
        let transition = self.leadership.look();
        match transition {
            Transition::Gained => self.statuses_from = None,
            Transition::Lost => self.pending_status.clear(),
            Transition::Leading | Transition::Following => {}
        }
        transition.may_apply()
    }

    fn interval(&self, fleet: Option<&Fleet>) -> Duration {
        self.config
            .interval
            .or_else(|| fleet.map(|f| f.config.interval.0))
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_millis(100))
    }

    async fn backend(&mut self, fleet: &Fleet) -> Result<Arc<AnyBackend>, DaemonError> {
        let key = self.config.backend.key(&fleet.config);
        if let Some((k, backend)) = &self.backend {
            if *k == key {
                return Ok(backend.clone());
            }
        }
        let backend = Arc::new(self.config.backend.connect(&fleet.config).await?);
        if self.events_for.as_ref() != Some(&key) {
            // A container dying or a Deployment scaled by hand wakes the daemon at once; the
            // poll stays the safety net.
            let (fleet_name, causes, wake) = (fleet.config.fleet.clone(), self.causes.clone(), self.trigger.clone());
            match backend.as_ref() {
                AnyBackend::Docker(docker) => super::drift::watch_docker(
                    docker.docker().clone(),
                    fleet_name,
                    docker.network().to_string(),
                    causes,
                    wake,
                ),
                AnyBackend::Kubernetes(k8s) => {
                    super::kube_events::watch(k8s.client().clone(), k8s.namespace(), &fleet_name, causes, wake)
                }
            }
            self.events_for = Some(key.clone());
        }
        self.backend = Some((key, backend.clone()));
        Ok(backend)
    }

    // Long: one pass in order (gates, apply, alerts, metrics, status, drift); each part is a call.

    async fn reconcile(
        &mut self,
        fleet: &Fleet,
        revision: &str,
        desired: DesiredHealth,
        errors: &[String],
    ) -> Result<Report, DaemonError> {
        if self.statuses_from.as_deref() != Some(fleet.config.status_branch.as_str()) {
            // The status branch is named in plugsync.yaml: read it once the fleet is known.
            self.status_branch = fleet.config.status_branch.clone();
            self.load_statuses().await;
            self.statuses_from = Some(self.status_branch.clone());
        }
        let now = chrono::Utc::now();
        let mut gates = Gates::at(now);
        gates.retry = std::mem::take(&mut *tasks::lock(&self.retry));
        gates.failed = status::failed_rollouts(&self.statuses);
        gates.prune_hold = self.prune_hold.clone();
        gates.applied = status::applied_specs(&self.statuses);
        gates.heals = self.heals.clone();
        gates.admission = crate::model::admission::admit(&self.config.admission, fleet);
        crate::model::admission::locate(&mut gates.admission, &self.files);
        let backend = self.backend(fleet).await?;
        let events = self.events.clone();
        let narrate = move |line: &str| {
            tracing::info!("{line}");
            events.log(line);
        };
        let memory = self.memory.clone();
        let applied = self.applied_now(fleet);
        let mut reconciler =
            Reconciler::new(backend.as_ref(), fleet, revision, &narrate).with_memory(&memory).with_applied(&applied);
        let leading = self.leadership.flag();
        if let Some(flag) = leading.as_deref() {
            reconciler = reconciler.with_leadership(flag);
        }
        let mut plan: Plan = reconciler.plan(desired).await?;
        let gated = gates::apply(&mut plan, fleet, &gates);
        self.remember_heals(&gated.healing, fleet, &gates);
        for r in &plan.admission {
            tracing::warn!(plugin = %r.plugin, rule = %r.rule, "{r}; left as it runs");
        }
        let held = gates.failed_holds(fleet);
        let flapping = gated.flapping;
        if !flapping.is_empty() {
            tracing::warn!(plugins = ?flapping, "drift keeps coming back: healing stopped");
        }
        let targets: BTreeMap<String, String> = plan
            .changes
            .iter()
            .filter_map(|c| fleet.plugins.get(&c.plugin).map(|p| (c.plugin.clone(), combined_hash(p))))
            .collect();
        let report = reconciler.apply_plan(plan).await?;
        if self.notifier.as_ref().is_none_or(|n| !n.is_for(&fleet.config.alerts, &fleet.config.tls)) {
            self.notifier =
                Some(super::drift::Notifier::new(&fleet.config.alerts, &fleet.config.tls, self.metrics.clone()));
        }
        if let Some(notifier) = &self.notifier {
            notifier.rollouts(&fleet.config.fleet, &report);
        }
        for r in &report.results {
            self.metrics.plugin_change(r.kind.verb(), r.result.label());
        }
        if let Some(synced) = &report.router {
            self.metrics.router(synced);
        }
        if !self.may_apply() {
            tracing::warn!("lost the leader Lease during the pass; the new leader records status");
            return Ok(report);
        }
        let observed = backend.observe(&fleet.config.fleet, None).await?;
        self.record(
            fleet,
            revision,
            &report,
            &targets,
            &observed,
            errors,
            &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
        .await;
        // Intentional states are not drift: a held failed rollout, a rollout in flight.
        let mut intentional: BTreeMap<String, String> = held.into_iter().collect();
        intentional.extend(self.memory.all().into_keys().map(|p| (p, "rollout in flight".to_string())));
        // Drift is checked on the instances just observed for the status (no third observe).
        match reconciler.detect_in(observed, None, &intentional).await {
            Ok(findings) => {
                let findings = self.with_causes(findings);
                if let Some(notifier) = self.notifier.as_mut() {
                    notifier.drift(fleet, &findings, &flapping);
                }
                self.record_drift(findings, &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).await
            }
            Err(e) => tracing::warn!(error = %e, "drift check failed"),
        }
        Ok(report)
    }
}
