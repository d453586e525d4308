//! One reconcile pass: observe, plan, and drive every change through its plugin's strategy,
//! dependencies first, independent plugins in parallel, one failure never aborting the others.

pub mod analyst;
mod memory;
mod routing;

pub use memory::RolloutMemory;

use crate::backend::gateway::GatewaySynced;
use crate::backend::probe;
use crate::backend::router::{Scope, Synced};
use crate::backend::{Backend, BackendError, SecretValues, StartRequest};
use crate::events::{RolloutLive, StepReport};
use crate::model::{Fleet, Plugin, SecretSource};
use crate::plan::drift::{self, Finding};
use crate::plan::{self, Change, ChangeKind, DesiredHealth, Instance, Plan, Slot, SlotTarget};
use crate::strategy::{self, Action, Outcome, StepInput};
use crate::traffic::{SlotShare, Splits};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tracing::Instrument;

pub use crate::strategy::Ending;

#[derive(Debug, Clone, Serialize)]
pub struct PluginResult {
    pub plugin: String,
    pub kind: ChangeKind,
    pub result: Ending,
    pub millis: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plan: Plan,
    pub results: Vec<PluginResult>,
    /// What the pass did to the fleet's router (`None`: it could not be synced, or this
    /// replica does not lead).
    #[serde(skip)]
    pub router: Option<Synced>,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        self.plan.refused.is_empty() && self.results.iter().all(|r| r.result == Ending::Converged)
    }
}

#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod executor_tests;

/// Where rollout timestamps come from. Rollout state outlives a pass (and, through the status
/// branch, the process), so every reading must share one origin: the Unix epoch.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The host's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// Receives one line per notable step, for people watching (`reconcile`, `demo`).
pub type Narrator<'a> = &'a (dyn Fn(&str) + Sync);

pub struct Reconciler<'a, B: Backend> {
    pub backend: &'a B,
    pub fleet: &'a Fleet,
    pub revision: &'a str,
    pub narrate: Narrator<'a>,
    client: reqwest::Client,
    clock: &'a dyn Clock,
    memory: Option<&'a RolloutMemory>,
    /// Cleared when this replica loses its Lease: it stops applying at the next step.
    leading: Option<&'a std::sync::atomic::AtomicBool>,
    /// Plugins known applied at their current spec (drift: none left is "missing").
    applied: Option<&'a std::collections::BTreeSet<String>>,
    /// Traffic splits of this pass when no memory outlives it.
    own_splits: std::sync::Mutex<Splits>,
}

impl<'a, B: Backend> Reconciler<'a, B> {
    pub fn new(backend: &'a B, fleet: &'a Fleet, revision: &'a str, narrate: Narrator<'a>) -> Self {
        Reconciler {
            backend,
            fleet,
            revision,
            narrate,
            client: probe::client(&crate::tls::extra_bundles(fleet.config.tls.ca_bundle.as_deref())),
            clock: &SystemClock,
            memory: None,
            leading: None,
            applied: None,
            own_splits: Default::default(),
        }
    }

    /// Rollouts' splits behind the router: the daemon's memory's, else this pass's.
    fn splits(&self) -> &std::sync::Mutex<Splits> {
        self.memory.map_or(&self.own_splits, |m| &m.splits)
    }

    /// Where rollout time comes from (tests pass a clock they move by hand).
    pub fn with_clock(mut self, clock: &'a dyn Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Rollout state and people's commands that outlive one pass (the daemon's).
    pub fn with_memory(mut self, memory: &'a RolloutMemory) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Applies only while `leading` holds (leader election among replicas).
    pub fn with_leadership(mut self, leading: &'a std::sync::atomic::AtomicBool) -> Self {
        self.leading = Some(leading);
        self
    }

    /// Plugins status says were applied at their current spec (for drift).
    pub fn with_applied(mut self, applied: &'a std::collections::BTreeSet<String>) -> Self {
        self.applied = Some(applied);
        self
    }

    /// Why this replica must stop applying, if it must.
    fn deposed(&self) -> Option<Ending> {
        let lost = self.leading.is_some_and(|l| !l.load(std::sync::atomic::Ordering::Relaxed));
        lost.then(|| Ending::Skipped { reason: "this replica lost its leader Lease; the new leader continues".into() })
    }

    fn name(&self) -> &str {
        &self.fleet.config.fleet
    }

    pub async fn plan(&self, desired: DesiredHealth) -> Result<Plan, BackendError> {
        let observed = self.backend.observe(self.name(), None).await?;
        Ok(plan::plan(self.fleet, &observed, desired))
    }

    /// Plans and applies. `Err` only when the backend cannot be reached at all.
    pub async fn run(&self, desired: DesiredHealth) -> Result<Report, BackendError> {
        let span = tracing::info_span!("reconcile", fleet = %self.name(), revision = %self.revision);
        async {
            let plan = self.plan(desired).await?;
            self.apply_plan(plan).await
        }
        .instrument(span)
        .await
    }

    /// Applies a plan made earlier (and perhaps trimmed by the caller: windows, holds).
    pub async fn apply_plan(&self, plan: Plan) -> Result<Report, BackendError> {
        if plan.changes.is_empty() {
            let router = self.heal_router().await;
            return Ok(Report { plan, results: Vec::new(), router });
        }
        self.backend.prepare(self.name()).await?;
        let results = self.apply(&plan).await;
        let router = self.heal_router().await;
        Ok(Report { plan, results, router })
    }

    async fn apply(&self, plan: &Plan) -> Vec<PluginResult> {
        let limit = self.fleet.config.concurrency.max(1) as usize;
        let in_plan: BTreeSet<&str> = plan.changes.iter().map(|c| c.plugin.as_str()).collect();
        let mut waiting: Vec<&Change> = plan.changes.iter().collect();
        let mut done: BTreeMap<String, PluginResult> = BTreeMap::new();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < limit {
                let ready = waiting
                    .iter()
                    .position(|c| c.after.iter().all(|d| !in_plan.contains(d.as_str()) || done.contains_key(d)));
                let Some(index) = ready else { break };
                let change = waiting.remove(index);
                let failed_dep =
                    change.after.iter().find(|d| done.get(*d).is_some_and(|r| r.result != Ending::Converged));
                if let Some(dep) = failed_dep {
                    let reason = format!("dependency {dep} did not converge");
                    (self.narrate)(&format!("{}: skipped, {reason}", change.plugin));
                    done.insert(
                        change.plugin.clone(),
                        PluginResult {
                            plugin: change.plugin.clone(),
                            kind: change.kind,
                            result: Ending::Skipped { reason },
                            millis: 0,
                        },
                    );
                    continue;
                }
                running.push(self.apply_change(change));
            }
            match running.next().await {
                Some(result) => {
                    done.insert(result.plugin.clone(), result);
                }
                None if waiting.is_empty() => break,
                None => {
                    // Only dependents of something never scheduled remain: should not happen.
                    let change = waiting.remove(0);
                    running.push(self.apply_change(change));
                }
            }
        }
        plan.changes.iter().filter_map(|c| done.remove(&c.plugin)).collect()
    }

    async fn apply_change(&self, change: &Change) -> PluginResult {
        let started = Instant::now();
        let span = tracing::info_span!("plugin", plugin = %change.plugin, kind = ?change.kind);
        let result = async {
            (self.narrate)(&format!("{}: {} ({})", change.plugin, change.kind.verb(), change.reasons.join("; ")));
            let result = match (change.kind, self.fleet.plugins.get(&change.plugin)) {
                (ChangeKind::Remove, _) | (_, None) => self.remove(&change.plugin).await,
                (_, Some(plugin)) => self.converge(plugin).await,
            };
            let line = match &result {
                Ending::Converged => format!("{}: converged", change.plugin),
                Ending::RolledBack { reason } => format!("{}: rolled back ({reason})", change.plugin),
                Ending::Failed { reason } => format!("{}: FAILED ({reason})", change.plugin),
                Ending::Skipped { reason } => format!("{}: skipped ({reason})", change.plugin),
                Ending::Paused { reason } => format!("{}: PAUSED ({reason})", change.plugin),
            };
            (self.narrate)(&line);
            tracing::info!(result = ?result, "plugin done");
            result
        }
        .instrument(span)
        .await;
        PluginResult {
            plugin: change.plugin.clone(),
            kind: change.kind,
            result,
            millis: started.elapsed().as_millis() as u64,
        }
    }

    async fn remove(&self, plugin: &str) -> Ending {
        let observed = match self.backend.observe(self.name(), Some(plugin)).await {
            Ok(o) => o,
            Err(e) => return Ending::Failed { reason: e.to_string() },
        };
        // Behind the router: out of its configuration before the instances stop.
        if observed.instances.iter().any(|i| i.spec.as_ref().is_some_and(|s| s.routed)) {
            if let Err(e) = self.backend.route(self.name(), Vec::new(), Scope::Plugin(plugin)).await {
                return Ending::Failed { reason: e.to_string() };
            }
        }
        for instance in &observed.instances {
            if let Some(skipped) = self.deposed() {
                return skipped;
            }
            if let Err(e) = self.backend.retire(self.name(), instance).await {
                return Ending::Failed { reason: e.to_string() };
            }
        }
        Ending::Converged
    }

    // Long: the executor's step loop (observe, evidence, step, act, remember) with its outage handling.

    async fn converge(&self, plugin: &Plugin) -> Ending {
        let secrets = match resolve_secrets(plugin) {
            Ok(s) => s,
            Err(e) => return Ending::Failed { reason: e.to_string() },
        };
        let targets = plan::spec::slot_targets(plugin);
        let strategy = strategy::for_plugin(plugin);
        let whole_plugin = strategy::is_progressive(plugin);
        for target in &targets {
            let mut state = self.memory.and_then(|m| m.state(&plugin.id, &target.hash)).unwrap_or_default();
            let mut analyst = analyst::Analyst::new(plugin, &self.client, self.backend, self.name());
            let mut last_note = String::new();
            let mut unreachable_since: Option<Instant> = None;
            loop {
                let instances = match self.observe_probed(&plugin.id, |slot| whole_plugin || target.owns(slot)).await {
                    Ok(i) => i,
                    Err(e) if outlasts(&e, &mut unreachable_since) => {
                        tracing::warn!(error = %e, "engine unreachable; the step is retried");
                        tokio::time::sleep(strategy::POLL).await;
                        continue;
                    }
                    Err(e) => return Ending::Failed { reason: e.to_string() },
                };
                unreachable_since = None;
                let now_ms = self.clock.now_ms();
                let evidence = analyst.evidence(&state, &instances, now_ms).await;
                let control = self.memory.and_then(|m| m.take_control(&plugin.id));
                let input =
                    StepInput { target, instances: &instances, state: &state, now_ms, evidence: &evidence, control };
                let step = strategy.step(&input);
                // A split is re-stated every step; only a change of instances is news.
                let acted = step.actions.iter().any(|a| !matches!(a, Action::Split { .. }));
                if let Some(skipped) = self.deposed() {
                    return skipped;
                }
                match self.act(plugin, &step.actions, &instances, &secrets).await {
                    Ok(()) => {}
                    // The step is recomputed from what runs once the engine answers again.
                    Err(e) if outlasts(&e, &mut unreachable_since) => {
                        tracing::warn!(error = %e, "engine unreachable; the step is retried");
                        tokio::time::sleep(strategy::POLL).await;
                        continue;
                    }
                    Err(e) => return Ending::Failed { reason: e.to_string() },
                }
                state = step.state;
                if let Some(m) = self.memory {
                    m.remember(&plugin.id, &target.hash, &state);
                    let shares = self.splits().lock().ok().and_then(|s| s.get(&plugin.id).cloned()).unwrap_or_default();
                    m.publish(RolloutLive::from_step(&StepReport {
                        plugin,
                        slot: target.slot,
                        target: &target.hash,
                        state: &state,
                        evidence: &evidence,
                        outcome: &step.outcome,
                        shares,
                        now_ms,
                    }));
                }
                let finished =
                    matches!(step.outcome, Outcome::Converged | Outcome::RolledBack { .. } | Outcome::Failed { .. });
                if let (Some(m), true) = (self.memory, finished) {
                    m.forget(&plugin.id);
                }
                if finished {
                    self.set_split(&plugin.id, &[]);
                }
                match step.outcome {
                    Outcome::Converged => break,
                    Outcome::RolledBack { reason } => return Ending::RolledBack { reason },
                    Outcome::Failed { reason } => return Ending::Failed { reason },
                    Outcome::Paused { reason } => return Ending::Paused { reason },
                    Outcome::Progress { recheck, note } => {
                        tracing::debug!(%note, "step");
                        if note != last_note {
                            (self.narrate)(&format!("{} [{}]: {note}", plugin.id, target.slot));
                            last_note = note;
                        }
                        if !acted {
                            tokio::time::sleep(recheck).await;
                        }
                    }
                }
            }
        }
        // Slots the plugin no longer has (a removed canary folder) go last.
        let wanted: Vec<&SlotTarget> = targets.iter().collect();
        match self.backend.observe(self.name(), Some(&plugin.id)).await {
            Ok(observed) => {
                let leftovers: Vec<Action> = observed
                    .instances
                    .iter()
                    .filter(|i| !wanted.iter().any(|t| t.owns(i.slot)))
                    .map(|i| Action::Retire { instance: i.id.clone() })
                    .collect();
                if let Err(e) = self.act(plugin, &leftovers, &observed.instances, &secrets).await {
                    return Ending::Failed { reason: e.to_string() };
                }
                // The rollout's split is gone: the router goes back to even shares.
                if let Err(e) = self.sync_routes(Some(&plugin.id)).await {
                    return Ending::Failed { reason: e.to_string() };
                }
                Ending::Converged
            }
            Err(e) => Ending::Failed { reason: e.to_string() },
        }
    }

    /// The plugin's instances in the slots `wanted` selects, readiness probed on each running one.
    async fn observe_probed(&self, plugin: &str, wanted: impl Fn(Slot) -> bool) -> Result<Vec<Instance>, BackendError> {
        let observed = self.backend.observe(self.name(), Some(plugin)).await?;
        let mut instances: Vec<Instance> = observed.instances.into_iter().filter(|i| wanted(i.slot)).collect();
        self.probe_readiness(&mut instances).await;
        Ok(instances)
    }

    async fn probe_readiness(&self, instances: &mut [Instance]) {
        let probes = instances.iter().map(|i| async {
            match (&i.spec, i.is_running()) {
                (Some(spec), true) => {
                    probe::http_ok(&self.client, i, spec.port, &spec.readiness, Duration::from_millis(800)).await
                }
                _ => false,
            }
        });
        let results = futures_util::future::join_all(probes).await;
        for (instance, ready) in instances.iter_mut().zip(results) {
            // An engine that knows readiness itself (Kubernetes) has a say too.
            instance.ready = Some(ready && instance.ready != Some(false));
        }
    }

    /// Drift of the fleet (or one plugin) as it runs now: observed, readiness probed, compared
    /// with the current spec. `intentional` names plugins whose state is deliberate.
    pub async fn detect(
        &self,
        plugin: Option<&str>,
        intentional: &BTreeMap<String, String>,
    ) -> Result<Vec<Finding>, BackendError> {
        let observed = self.backend.observe(self.name(), plugin).await?;
        self.detect_in(observed, plugin, intentional).await
    }

    /// [`Self::detect`] on instances the caller observed already (the daemon's pass has).
    pub async fn detect_in(
        &self,
        mut observed: crate::plan::Observed,
        plugin: Option<&str>,
        intentional: &BTreeMap<String, String>,
    ) -> Result<Vec<Finding>, BackendError> {
        let squatters = self.backend.squatters(self.name()).await?;
        self.probe_readiness(&mut observed.instances).await;
        let squatters: Vec<_> = squatters.into_iter().filter(|s| plugin.is_none_or(|p| s.plugin == p)).collect();
        let none = std::collections::BTreeSet::new();
        let mut findings = drift::detect(self.fleet, &observed, intentional, &squatters, self.applied.unwrap_or(&none));
        if let Some(p) = plugin {
            findings.retain(|f| f.plugin == p);
        }
        Ok(findings)
    }

    async fn act_all(
        &self,
        actions: &[Action],
        instances: &[Instance],
        secrets: &SecretValues,
    ) -> Result<(), BackendError> {
        let by_id: BTreeMap<&str, &Instance> = instances.iter().map(|i| (i.id.as_str(), i)).collect();
        let mut work = FuturesUnordered::new();
        for action in actions {
            match action {
                Action::Start { slot, spec, hash, count, serve } => {
                    let request = StartRequest {
                        fleet: self.name(),
                        revision: self.revision,
                        slot: *slot,
                        spec,
                        hash,
                        secrets,
                        serve: *serve,
                    };
                    work.push(Box::pin(self.backend.start_many(request, *count))
                        as std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BackendError>> + Send + '_>>);
                }
                Action::Serve { instance } => {
                    if let Some(i) = by_id.get(instance.as_str()) {
                        work.push(Box::pin(self.backend.serve(self.name(), i)));
                    }
                }
                Action::Retire { instance } => {
                    if let Some(i) = by_id.get(instance.as_str()) {
                        work.push(Box::pin(self.backend.retire(self.name(), i)));
                    }
                }
                Action::Unserve { instance } => {
                    if let Some(i) = by_id.get(instance.as_str()) {
                        work.push(Box::pin(self.backend.unserve(self.name(), i)));
                    }
                }
                Action::Park { instance } => {
                    if let Some(i) = by_id.get(instance.as_str()) {
                        work.push(Box::pin(self.backend.park(self.name(), i)));
                    }
                }
                // Only the router splits traffic (handled in `act`).
                Action::Split { .. } => {}
            }
        }
        let mut first_error = None;
        while let Some(result) = work.next().await {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// How long a rollout waits out an engine that stopped answering (a restarting API server
/// or Docker daemon) before it fails.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(45);

/// Whether `error` is an outage still inside [`UNREACHABLE_GRACE`] (and starts the clock).
fn outlasts(error: &BackendError, since: &mut Option<Instant>) -> bool {
    if !matches!(error, BackendError::Unreachable { .. }) {
        return false;
    }
    since.get_or_insert_with(Instant::now).elapsed() < UNREACHABLE_GRACE
}

/// Resolves `secretEnv` on this host. The values go to the backend call and nowhere else.
pub fn resolve_secrets(plugin: &Plugin) -> Result<SecretValues, BackendError> {
    let mut values = BTreeMap::new();
    for (name, source) in &plugin.manifest.secret_env {
        let value = match source {
            SecretSource::FromEnv(var) => std::env::var(var).map_err(|_| BackendError::Secret {
                name: name.clone(),
                detail: format!("environment variable {var} is not set on the plugsync host"),
            })?,
            SecretSource::FromFile(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| BackendError::Secret { name: name.clone(), detail: format!("cannot read {path}: {e}") })?,
        };
        values.insert(name.clone(), value);
    }
    Ok(SecretValues(values))
}
