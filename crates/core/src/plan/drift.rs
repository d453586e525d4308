//! Drift: where what runs departs from what plugsync applied for the current Git spec. Pure:
//! the caller passes the observed instances (with the engine's own view of each, normalised,
//! and readiness probed) and the plugins whose state is intentional.
//!
//! A plugin whose instances carry an older spec is not drifting: Git changed and the plan
//! says so. Only instances of the current spec are compared, field by field, with the spec
//! they were started from, so a fleet plugsync itself just applied has no findings.

use super::observed::{Instance, Observed, RunState};
use super::spec::{slot_targets, SlotTarget};
use crate::model::{Fleet, Strategy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    Missing,
    Stopped,
    OomKilled,
    Restarting,
    Unhealthy,
    Extra,
    ImageChanged,
    EnvChanged,
    LimitsChanged,
    AliasLost,
    Foreign,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::Stopped => "stopped",
            DriftKind::OomKilled => "oom-killed",
            DriftKind::Restarting => "restarting",
            DriftKind::Unhealthy => "unhealthy",
            DriftKind::Extra => "extra",
            DriftKind::ImageChanged => "image-changed",
            DriftKind::EnvChanged => "env-changed",
            DriftKind::LimitsChanged => "limits-changed",
            DriftKind::AliasLost => "alias-lost",
            DriftKind::Foreign => "foreign",
        }
    }
}

/// One departure, with what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: DriftKind,
    pub plugin: String,
    /// Instance (container) name; empty for a count (`missing`).
    pub instance: String,
    pub expected: String,
    pub found: String,
    /// When and by what, where the engine's event stream told (`docker stop at 12:01:02`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at =
            if self.instance.is_empty() { self.plugin.clone() } else { format!("{}/{}", self.plugin, self.instance) };
        write!(f, "{at}: {}: expected {}, found {}", self.kind.as_str(), self.expected, self.found)?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

/// A container that holds a name of the fleet's but carries none of plugsync's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Squatter {
    pub name: String,
    pub plugin: String,
}

/// Compares what runs with the fleet. `intentional` names plugins (with why) whose state is
/// deliberate: suspended, held after a rollback, a rollout in flight or paused. `applied`
/// names plugins known to have been applied at their current spec (the daemon's status): for
/// those, no instance at all is drift, not a plugin never created.
pub fn detect(
    fleet: &Fleet,
    observed: &Observed,
    intentional: &BTreeMap<String, String>,
    squatters: &[Squatter],
    applied: &std::collections::BTreeSet<String>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for plugin in fleet.plugins.values() {
        // Unobserved (an engine error): nothing known, so nothing is drift.
        if plugin.manifest.suspended
            || intentional.contains_key(&plugin.id)
            || observed.unobserved.contains_key(&plugin.id)
        {
            continue;
        }
        let instances: Vec<&Instance> = observed.of_plugin(&plugin.id).collect();
        let targets = slot_targets(plugin);
        let keeps_parked = plugin.strategy == Strategy::BlueGreen
            && plugin.policy.blue_green_config.as_ref().is_some_and(|c| c.keep_previous_environment);
        let parked = |i: &Instance| keeps_parked && !i.is_running() && !targets.iter().any(|t| t.hash == i.spec_hash);
        // Instances of an older spec: Git moved on and the plan says so; not drift.
        let pending = instances.iter().any(|i| !parked(i) && !targets.iter().any(|t| t.hash == i.spec_hash));
        if instances.is_empty() && applied.contains(&plugin.id) {
            let wanted: u32 = targets.iter().map(|t| t.replicas).sum();
            findings.push(Finding {
                kind: DriftKind::Missing,
                plugin: plugin.id.clone(),
                instance: String::new(),
                expected: format!("{wanted} instance(s) of {}", plugin.versions().join(" + ")),
                found: "none: every instance is gone".into(),
                cause: None,
            });
            continue;
        }
        if instances.is_empty() || pending {
            continue;
        }
        for t in &targets {
            let current: Vec<&Instance> =
                instances.iter().copied().filter(|i| t.owns(i.slot) && i.spec_hash == t.hash).collect();
            findings.extend(current.iter().flat_map(|i| of_instance(&plugin.id, i)));
            let have = current.len() as u32;
            if have < t.replicas {
                findings.push(Finding {
                    kind: DriftKind::Missing,
                    plugin: plugin.id.clone(),
                    instance: String::new(),
                    expected: format!("{} instance(s) of {} in {}", t.replicas, t.spec.version, t.slot),
                    found: format!("{have}"),
                    cause: None,
                });
            } else if have > t.replicas {
                findings.extend(surplus(&plugin.id, t, &current));
            }
        }
        for i in instances.iter().filter(|i| !parked(i) && !targets.iter().any(|t| t.owns(i.slot))) {
            findings.push(Finding {
                kind: DriftKind::Extra,
                plugin: plugin.id.clone(),
                instance: i.name.clone(),
                expected: "no instance in this slot".into(),
                found: format!("{} {} in {}", i.version, format!("{:?}", i.state).to_lowercase(), i.slot),
                cause: None,
            });
        }
    }
    findings.extend(squatters.iter().filter(|s| fleet.plugins.contains_key(&s.plugin)).map(|s| Finding {
        kind: DriftKind::Foreign,
        plugin: s.plugin.clone(),
        instance: s.name.clone(),
        expected: "names of the fleet used only by plugsync's own containers".into(),
        found: "a container without plugsync's labels".into(),
        cause: None,
    }));
    findings.sort_by(|a, b| (&a.plugin, a.kind, &a.instance).cmp(&(&b.plugin, b.kind, &b.instance)));
    findings
}

fn surplus(plugin: &str, t: &SlotTarget, current: &[&Instance]) -> Vec<Finding> {
    // The ones a reconcile would retire (the strategies use the same order).
    let mut sorted: Vec<&&Instance> = current.iter().collect();
    sorted.sort_by_key(|i| i.retire_order());
    sorted
        .into_iter()
        .take(current.len() - t.replicas as usize)
        .map(|i| Finding {
            kind: DriftKind::Extra,
            plugin: plugin.into(),
            instance: i.name.clone(),
            expected: format!("{} instance(s) in {}", t.replicas, t.slot),
            found: format!("{}", current.len()),
            cause: None,
        })
        .collect()
}

fn of_instance(plugin: &str, i: &Instance) -> Vec<Finding> {
    let finding = |kind, expected: String, found: String| Finding {
        kind,
        plugin: plugin.into(),
        instance: i.name.clone(),
        expected,
        found,
        cause: None,
    };
    let runtime = i.runtime.clone().unwrap_or_default();
    let exit = runtime
        .exit_code
        .filter(|_| matches!(runtime.status.as_str(), "exited" | "dead" | "restarting"))
        .map(|c| format!(" (exit code {c})"))
        .unwrap_or_default();
    match i.state {
        RunState::Running => {}
        RunState::Restarting => {
            return vec![finding(
                DriftKind::Restarting,
                "running".into(),
                format!("restarting in a loop, {} restart(s){exit}", i.restart_count),
            )]
        }
        _ if i.oom_killed => {
            return vec![finding(DriftKind::OomKilled, "running".into(), format!("killed for memory{exit}"))]
        }
        // Docker reports a running container on no fleet network as dead: it lost the alias.
        RunState::Dead if runtime.status == "running" && !runtime.on_network => {
            return vec![finding(
                DriftKind::AliasLost,
                format!("on the fleet network as {plugin}"),
                "on no fleet network".into(),
            )]
        }
        other => {
            let state = if runtime.status.is_empty() { format!("{other:?}").to_lowercase() } else { runtime.status };
            return vec![finding(DriftKind::Stopped, "running".into(), format!("{state}{exit}"))];
        }
    }
    let mut out = Vec::new();
    for d in i.departures() {
        let kind = match d.field {
            "image" => DriftKind::ImageChanged,
            "env" => DriftKind::EnvChanged,
            _ => DriftKind::LimitsChanged,
        };
        let label = if matches!(d.field, "cpu" | "memory") { format!("{} ", d.field) } else { String::new() };
        out.push(finding(kind, format!("{label}{}", d.expected), format!("{label}{}", d.found)));
    }
    if !i.serving {
        out.push(finding(DriftKind::AliasLost, format!("serving as {plugin}"), "running but out of traffic".into()));
    }
    if i.ready == Some(false) {
        out.push(finding(DriftKind::Unhealthy, "ready".into(), "readiness probe failing".into()));
    }
    out
}

#[cfg(test)]
#[path = "drift_tests.rs"]
mod tests;
