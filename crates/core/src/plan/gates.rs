//! The gates between "Git and the engine differ" and "plugsync acts": admission, rollouts that
//! already failed, sync windows and prune holds. Pure: the caller passes `now` and what it
//! knows (the status book, a force-push), so `plan`, `reconcile --once` and the daemon all
//! print and execute the same decision.

use super::{ChangeKind, Plan, Refusal};
use crate::model::admission::Refusal as AdmissionRefusal;
use crate::model::Fleet;
use chrono::{DateTime, Utc};

/// A rollout recorded as failed on the status branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRollout {
    pub plugin: String,
    /// Spec the rollout drove to: the hold lasts while Git still asks for it.
    pub spec_hash: String,
    pub version: String,
    pub revision: String,
    pub reason: String,
    pub at: String,
}

/// What besides Git and the engine decides a pass.
#[derive(Debug, Clone)]
pub struct Gates {
    pub now: DateTime<Utc>,
    /// Plugins the admission policy refuses.
    pub admission: Vec<AdmissionRefusal>,
    /// Failed rollouts from the status book.
    pub failed: Vec<FailedRollout>,
    /// Plugins someone asked to retry although their spec failed.
    pub retry: Vec<String>,
    /// Why nothing may be pruned now (a force-push), if so.
    pub prune_hold: Option<String>,
}

impl Gates {
    pub fn at(now: DateTime<Utc>) -> Self {
        Gates { now, admission: Vec::new(), failed: Vec::new(), retry: Vec::new(), prune_hold: None }
    }

    /// The failed rollouts whose spec Git still asks for, as (plugin, reason).
    pub fn failed_holds(&self, fleet: &Fleet) -> Vec<(String, String)> {
        self.failed
            .iter()
            .filter(|f| !self.retry.contains(&f.plugin))
            .filter(|f| fleet.plugins.get(&f.plugin).is_some_and(|p| super::spec::combined_hash(p) == f.spec_hash))
            .map(|f| {
                (
                    f.plugin.clone(),
                    format!(
                        "version {} failed at {} on {} ({}); change its spec in Git or retry it \
                         (`plugsync rollout retry {}`, or `reconcile --once --retry {}`)",
                        f.version,
                        crate::model::short_revision(&f.revision),
                        f.at,
                        f.reason,
                        f.plugin,
                        f.plugin
                    ),
                )
            })
            .collect()
    }
}

/// Applies every gate to `plan`: what stays in `changes` is exactly what will be done.
pub fn apply(plan: &mut Plan, fleet: &Fleet, gates: &Gates) {
    plan.refuse_admission(gates.admission.clone());
    for (plugin, reason) in gates.failed_holds(fleet) {
        plan.hold(&plugin, &reason);
    }
    let windowed: Vec<(String, String)> = plan
        .changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Remove)
        .filter_map(|c| {
            // A broken window fails validation; here it cannot hold anything.
            let decision = crate::model::windows::rollouts_allowed(&fleet.config.windows, &c.plugin, gates.now).ok()?;
            (!decision.allowed).then(|| (c.plugin.clone(), format!("sync window: {}", decision.reason)))
        })
        .collect();
    for (plugin, reason) in windowed {
        plan.hold(&plugin, &reason);
    }
    if let Some(reason) = &gates.prune_hold {
        let (removals, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut plan.changes).into_iter().partition(|c| c.kind == ChangeKind::Remove);
        plan.changes = rest;
        if !removals.is_empty() {
            plan.refused
                .push(Refusal { plugins: removals.into_iter().map(|c| c.plugin).collect(), reason: reason.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileSet;

    fn fleet(config: &str) -> Fleet {
        let mut files = FileSet::new();
        files.insert("plugsync.yaml".into(), config.as_bytes().to_vec());
        for (id, deps) in [("api", "[]"), ("web", "[api]"), ("cron", "[]")] {
            let (path, text) = super::super::tests::manifest(id, "1.0.0", &format!("dependsOn: {deps}\n"));
            files.insert(path, text);
        }
        let loaded = crate::model::load(&files, None);
        assert!(loaded.is_valid(), "{:?}", loaded.errors().map(|d| d.to_string()).collect::<Vec<_>>());
        loaded.fleet
    }

    fn empty_plan(fleet: &Fleet) -> Plan {
        super::super::plan(fleet, &crate::plan::Observed::default(), super::super::DesiredHealth::Complete)
    }

    fn now() -> DateTime<Utc> {
        "2026-12-04T12:30:00Z".parse().unwrap_or_default()
    }

    fn held(plan: &Plan) -> Vec<(String, String)> {
        plan.held.iter().map(|h| (h.plugin.clone(), h.reason.clone())).collect()
    }

    #[test]
    fn table_of_gates() {
        struct Case {
            name: &'static str,
            config: &'static str,
            failed: &'static [&'static str],
            retry: &'static [&'static str],
            applied: &'static [&'static str],
            held: &'static [(&'static str, &'static str)],
        }
        let plain = "fleet: f\n";
        let deny_api =
            "fleet: f\nwindows:\n  - kind: deny\n    schedule: \"0 12 * * *\"\n    duration: 2h\n    plugins: [api]\n";
        let allow_night = "fleet: f\nwindows:\n  - kind: allow\n    schedule: \"0 22 * * *\"\n    duration: 1h\n";
        let cases = [
            Case {
                name: "no gate",
                config: plain,
                failed: &[],
                retry: &[],
                applied: &["api", "web", "cron"],
                held: &[],
            },
            Case {
                name: "failed rollout holds it and its dependents",
                config: plain,
                failed: &["api"],
                retry: &[],
                applied: &["cron"],
                held: &[("api", "version 1.0.0 failed at"), ("web", "waits for api: version 1.0.0 failed")],
            },
            Case {
                name: "retry lifts the failed hold",
                config: plain,
                failed: &["api"],
                retry: &["api"],
                applied: &["api", "web", "cron"],
                held: &[],
            },
            Case {
                name: "deny window names its end",
                config: deny_api,
                failed: &[],
                retry: &[],
                applied: &["cron"],
                held: &[
                    ("api", "sync window: deny window '0 12 * * *' for 2h active until 2026-12-04T14:00Z"),
                    ("web", "waits for api: sync window"),
                ],
            },
            Case {
                name: "outside allow windows names the next opening",
                config: allow_night,
                failed: &[],
                retry: &[],
                applied: &[],
                held: &[("api", "opens at 2026-12-04T22:00Z"), ("cron", "opens at"), ("web", "waits for api")],
            },
        ];
        for case in cases {
            let fleet = fleet(case.config);
            let mut plan = empty_plan(&fleet);
            let mut gates = Gates::at(now());
            gates.retry = case.retry.iter().map(|s| s.to_string()).collect();
            gates.failed = case
                .failed
                .iter()
                .map(|id| FailedRollout {
                    plugin: id.to_string(),
                    spec_hash: crate::plan::spec::combined_hash(&fleet.plugins[*id]),
                    version: "1.0.0".into(),
                    revision: "abcdef1234567".into(),
                    reason: "error rate 10 % > 5 %".into(),
                    at: "2026-12-04T11:00:00Z".into(),
                })
                .collect();
            apply(&mut plan, &fleet, &gates);
            let mut applied: Vec<&str> = plan.changes.iter().map(|c| c.plugin.as_str()).collect();
            applied.sort();
            let mut want: Vec<&str> = case.applied.to_vec();
            want.sort();
            assert_eq!(applied, want, "{}", case.name);
            let mut got = held(&plan);
            got.sort();
            assert_eq!(got.len(), case.held.len(), "{}: {got:?}", case.name);
            for ((plugin, reason), (want_plugin, want_reason)) in got.iter().zip(case.held) {
                assert_eq!(plugin, want_plugin, "{}", case.name);
                assert!(reason.contains(want_reason), "{}: {reason:?} lacks {want_reason:?}", case.name);
            }
        }
    }

    #[test]
    fn a_failed_hold_ends_when_the_spec_changes() {
        let fleet = fleet("fleet: f\n");
        let mut gates = Gates::at(now());
        gates.failed = vec![FailedRollout {
            plugin: "cron".into(),
            spec_hash: "an older spec".into(),
            version: "0.9.0".into(),
            revision: "abc".into(),
            reason: "unhealthy".into(),
            at: "2026-12-04T11:00:00Z".into(),
        }];
        assert!(gates.failed_holds(&fleet).is_empty());
    }

    #[test]
    fn a_prune_hold_turns_removals_into_a_refusal() {
        let fleet = fleet("fleet: f\n");
        let mut plan = empty_plan(&fleet);
        plan.changes.push(super::super::Change {
            plugin: "old".into(),
            kind: ChangeKind::Remove,
            strategy: crate::model::Strategy::Direct,
            reasons: vec!["removed from Git".into()],
            after: Vec::new(),
        });
        let mut gates = Gates::at(now());
        gates.prune_hold = Some("history rewritten (force-push)".into());
        apply(&mut plan, &fleet, &gates);
        assert!(plan.changes.iter().all(|c| c.kind != ChangeKind::Remove));
        assert_eq!(
            plan.refused,
            vec![Refusal { plugins: vec!["old".into()], reason: "history rewritten (force-push)".into() }]
        );
    }
}
