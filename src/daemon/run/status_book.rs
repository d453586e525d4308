//! The daemon's status book: read from the status branch, updated by every pass and drift
//! check, pushed (and kept until a push succeeds).

use super::*;

/// Status commits kept for an unreachable remote before they are folded into one.
const PENDING_LIMIT: usize = 64;

impl Daemon {
    pub(super) async fn load_statuses(&mut self) {
        let cache = self.cache.clone();
        let branch = self.status_branch.clone();
        let read = move || -> Result<_, crate::source::git::GitError> {
            let cache = tasks::lock(&cache);
            let Some(tip) = cache.fetch_branch(&branch)? else { return Ok((BTreeMap::new(), Vec::new())) };
            let history = status::history::read(&cache, tip, status::history::KEPT);
            Ok((status::read_at(&cache, tip).1, history))
        };
        match blocking(read).await {
            Ok(Ok((statuses, history))) => {
                *self.history.write().await = history;
                // Rollouts in flight when the last daemon stopped (or was killed) resume.
                for (plugin, status) in &statuses {
                    if let Some(r) = &status.rollout {
                        self.memory.remember(plugin, &r.target, &r.to_state());
                    }
                }
                self.statuses = statuses;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "status branch unreadable; starting without it"),
            Err(e) => tracing::warn!(error = %e, "status read task failed"),
        }
    }

    /// Plugins whose status says they were applied at the spec Git has now.
    pub(super) fn applied_now(&self, fleet: &Fleet) -> std::collections::BTreeSet<String> {
        fleet
            .plugins
            .values()
            .filter(|p| self.statuses.get(&p.id).and_then(|s| s.applied.as_deref()) == Some(combined_hash(p).as_str()))
            .map(|p| p.id.clone())
            .collect()
    }

    /// What the engine's event stream said about each finding's instance.
    pub(super) fn with_causes(
        &self,
        mut findings: Vec<crate::plan::drift::Finding>,
    ) -> Vec<crate::plan::drift::Finding> {
        {
            let causes = tasks::lock(&self.causes);
            for f in findings.iter_mut().filter(|f| !f.instance.is_empty()) {
                f.cause = causes.get(&f.instance).cloned();
            }
        }
        findings
    }

    /// Drift found by a check: metrics, log events, status commits.
    pub(super) async fn record_drift(&mut self, findings: Vec<crate::plan::drift::Finding>, now: &str) {
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        for f in &findings {
            *counts.entry((f.plugin.clone(), f.kind.as_str().to_string())).or_default() += 1;
        }
        self.metrics.set_drift(&counts.into_iter().map(|((p, k), n)| (p, k, n)).collect::<Vec<_>>());
        for f in &findings {
            tracing::warn!(plugin = %f.plugin, kind = f.kind.as_str(), instance = %f.instance, "drift: {f}");
        }
        let (statuses, commits) = status::drift::drift_commits(&self.statuses, &findings, now);
        if !commits.is_empty() {
            self.statuses = statuses;
            self.pending_status.extend(commits);
            self.push_status().await;
        }
    }

    /// No valid revision was ever read: say so in `status/fleet.yaml`, touch nothing else.
    pub(super) async fn record_invalid(&mut self, fleet: &str, revision: &str, errors: &[String]) {
        let status = status::FleetStatus {
            fleet: fleet.to_string(),
            revision: revision.to_string(),
            plugins: self.statuses.iter().map(|(k, v)| (k.clone(), v.state)).collect(),
            errors: errors.to_vec(),
            held: Vec::new(),
            router: None,
        };
        let short = crate::model::short_revision(revision);
        let first = errors.first().cloned().unwrap_or_default();
        self.pending_status.push(status::StatusCommit {
            message: format!("fleet {fleet}: INVALID revision {short}: {first}"),
            files: vec![("status/fleet.yaml".into(), Some(status::render::to_yaml(&status).into_bytes()))],
        });
        self.push_status().await;
    }

    pub(super) async fn push_status(&mut self) {
        let cache = self.cache.clone();
        let branch = self.status_branch.clone();
        let commits = self.pending_status.clone();
        let write = move || {
            let cache = tasks::lock(&cache);
            let outcome = status::write(&cache, &branch, &commits)?;
            // The dashboard's history, read while the clone is at hand (the new tip is ours).
            let history = outcome.commits.last().map(|tip| status::history::read(&cache, *tip, status::history::KEPT));
            Ok::<_, crate::source::git::GitError>((outcome, history))
        };
        match blocking(write).await {
            Ok(Ok((outcome, history))) => {
                self.pending_status.clear();
                if let Some(history) = history {
                    *self.history.write().await = history;
                }
                if !outcome.commits.is_empty() {
                    tracing::info!(commits = outcome.commits.len(), retries = outcome.retries, "status pushed");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "status not written; kept for the next tick"),
            Err(e) => tracing::warn!(error = %e, "status task failed; kept for the next tick"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record(
        &mut self,
        fleet: &Fleet,
        revision: &str,
        report: &Report,
        targets: &BTreeMap<String, String>,
        observed: &crate::plan::Observed,
        errors: &[String],
        now: &str,
    ) {
        let rollouts = self.memory.all();
        let record = PassRecord {
            fleet,
            revision,
            plan: &report.plan,
            results: &report.results,
            target_hashes: targets,
            observed,
            errors,
            now,
            rollouts: &rollouts,
        };
        let (statuses, commits) = status::render::pass_commits(&record, &self.statuses);
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for s in statuses.values() {
            *counts.entry(format!("{:?}", s.state).to_uppercase()).or_default() += 1;
        }
        self.metrics.set_plugins(&counts.into_iter().collect::<Vec<_>>());
        let document = serde_json::json!({
            "fleet": fleet.config.fleet,
            "revision": revision,
            "at": now,
            "errors": errors,
            "plugins": statuses,
            "plan": report.plan,
        });
        *self.shared_status.write().await = document.clone();
        self.events.status(document);
        self.statuses = statuses;
        self.pending_status.extend(commits);
        if self.pending_status.len() > PENDING_LIMIT {
            // The remote has been away a while: keep the latest content of each file in one
            // commit rather than an ever-growing queue.
            let mut files: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
            for commit in self.pending_status.drain(..) {
                files.extend(commit.files);
            }
            self.pending_status.push(status::StatusCommit {
                message: format!("fleet {}: status while the remote was unreachable", fleet.config.fleet),
                files: files.into_iter().collect(),
            });
        }
        self.push_status().await;
    }
}
