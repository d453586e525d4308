//! The gates between "Git and the engine differ" and "plugsync acts": admission, rollouts that
//! already failed, sync windows, drift repairs the `drift:` policy holds, and prune holds.
//! Pure: the caller passes `now` and what it knows (the status book, recent heals, a
//! force-push), so `plan`, `reconcile --once` and the daemon all print and execute the same
//! decision.

use super::heal::{decide, HealGate};
use super::{ChangeKind, Plan, Refusal};
use crate::model::admission::Refusal as AdmissionRefusal;
use crate::model::Fleet;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

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
    /// Plugin → the spec hash plugsync last brought to converged (status `applied`): a planned
    /// change while Git still says this is drift.
    pub applied: BTreeMap<String, String>,
    /// Plugin → its recent drift heals (ms since the Unix epoch), for back-off and flapping.
    pub heals: BTreeMap<String, Vec<u64>>,
}

/// What the gates let through that the caller must remember or report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gated {
    /// Plugins whose drift is repaired in this pass (a heal to remember).
    pub healing: Vec<String>,
    /// Plugins whose drift keeps coming back: healing stopped (an alert).
    pub flapping: Vec<String>,
}

impl Gates {
    pub fn at(now: DateTime<Utc>) -> Self {
        Gates {
            now,
            admission: Vec::new(),
            failed: Vec::new(),
            retry: Vec::new(),
            prune_hold: None,
            applied: BTreeMap::new(),
            heals: BTreeMap::new(),
        }
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
pub fn apply(plan: &mut Plan, fleet: &Fleet, gates: &Gates) -> Gated {
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
    let gated = heal_gates(plan, fleet, gates);
    if let Some(reason) = &gates.prune_hold {
        let (removals, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut plan.changes).into_iter().partition(|c| c.kind == ChangeKind::Remove);
        plan.changes = rest;
        if !removals.is_empty() {
            plan.refused
                .push(Refusal { plugins: removals.into_iter().map(|c| c.plugin).collect(), reason: reason.clone() });
        }
    }
    gated
}

/// Holds the drift repairs the `drift:` policy does not allow now.
fn heal_gates(plan: &mut Plan, fleet: &Fleet, gates: &Gates) -> Gated {
    let now_ms = gates.now.timestamp_millis().max(0) as u64;
    let mut gated = Gated::default();
    for change in plan.changes.clone() {
        let Some(plugin) = fleet.plugins.get(&change.plugin) else { continue };
        // A Create of a plugin already applied at this spec: every instance vanished.
        let repair =
            matches!(change.kind, ChangeKind::Repair | ChangeKind::Scale | ChangeKind::Update | ChangeKind::Create);
        // Git still says what plugsync last applied: the difference is drift.
        if !repair || gates.applied.get(&plugin.id) != Some(&super::spec::combined_hash(plugin)) {
            continue;
        }
        let mode = plugin.manifest.drift.unwrap_or(fleet.config.drift);
        let healing = &fleet.config.healing;
        let recent = gates.heals.get(&plugin.id).map(Vec::as_slice).unwrap_or_default();
        let counted = super::heal::still_counted(recent, now_ms, healing).len();
        match decide(mode, recent, now_ms, healing) {
            HealGate::Heal => gated.healing.push(plugin.id.clone()),
            HealGate::Alert => {
                plan.hold(&plugin.id, "drift (drift: alert): reported, not repaired; set `drift: heal` to repair it")
            }
            HealGate::Backoff(wait) => {
                plan.hold(&plugin.id, &format!("drift: healed {counted} time(s) lately; next heal in {wait:.1?}"))
            }
            HealGate::Flapping => {
                let reason = format!("flapping: {counted} heals within {}; healing stopped", healing.flap_window);
                plan.hold(&plugin.id, &reason);
                gated.flapping.push(plugin.id.clone());
            }
        }
    }
    gated
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
    fn drift_repairs_follow_the_drift_policy() {
        let now_ms = now().timestamp_millis() as u64;
        // (fleet config, heals of api so far) → api's change applied, or held with a reason.
        let cases: [(&str, Vec<u64>, Result<(), &str>); 4] = [
            ("fleet: f\ndrift: heal\n", vec![], Ok(())),
            ("fleet: f\ndrift: alert\n", vec![], Err("drift (drift: alert): reported, not repaired")),
            ("fleet: f\ndrift: heal\n", vec![now_ms - 1000], Err("drift: healed 1 time(s) lately; next heal in")),
            (
                "fleet: f\ndrift: heal\n",
                (1..=5).map(|i| now_ms - i * 60_000).collect(),
                Err("flapping: 5 heals within"),
            ),
        ];
        for (config, heals, want) in cases {
            let fleet = fleet(config);
            let mut plan = empty_plan(&fleet);
            let mut gates = Gates::at(now());
            // Everything was applied at the spec Git has: every planned change is drift.
            gates.applied =
                fleet.plugins.values().map(|p| (p.id.clone(), crate::plan::spec::combined_hash(p))).collect();
            gates.heals.insert("api".into(), heals);
            let gated = apply(&mut plan, &fleet, &gates);
            let api_held = plan.held.iter().find(|h| h.plugin == "api").map(|h| h.reason.clone());
            match want {
                Ok(()) => {
                    assert!(api_held.is_none(), "{config}: {api_held:?}");
                    assert!(gated.healing.contains(&"api".to_string()), "{config}: {gated:?}");
                }
                Err(reason) => {
                    let held = api_held.unwrap_or_default();
                    assert!(held.contains(reason), "{config}: {held:?} lacks {reason:?}");
                    assert_eq!(gated.flapping.contains(&"api".to_string()), reason.starts_with("flapping"));
                }
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
