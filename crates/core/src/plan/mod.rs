//! Desired vs observed → a plan: per plugin, what to do and why. Pure: no I/O, no clock.

pub mod drift;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod gates;
pub mod heal;
pub mod observed;
pub mod render;
pub mod router;
pub mod spec;

pub use observed::{Instance, Observed, RunState};
pub use spec::{InstanceSpec, Slot, SlotTarget};

use crate::model::{Fleet, Strategy};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
    Scale,
    Repair,
    Remove,
}

impl ChangeKind {
    pub fn verb(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Scale => "scale",
            ChangeKind::Repair => "repair",
            ChangeKind::Remove => "remove",
        }
    }
}

/// What happens to one plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub plugin: String,
    pub kind: ChangeKind,
    pub strategy: Strategy,
    pub reasons: Vec<String>,
    /// Dependencies that must be converged first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// A removal plugsync will not do, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    pub plugins: Vec<String>,
    pub reason: String,
}

/// The plan is a value: build it, print it, apply it item by item.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub fleet: String,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
    /// Plugins left exactly as they run because the manifest says `suspended`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<String>,
    /// Changes not started now: outside a sync window, or a revision that already failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Held>,
    /// Plugins the admission policy refuses: left exactly as they run (not created, updated
    /// or removed), each with the rule it breaks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admission: Vec<crate::model::admission::Refusal>,
    /// Plugins the engine could not be read for: nothing is changed for them this pass.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unobserved: Vec<Unobserved>,
    /// What the pass does to the fleet's router, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<router::RouterChange>,
    /// What the pass does to the fleet's edge gateway, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<router::RouterChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unobserved {
    pub plugin: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub plugin: String,
    pub kind: ChangeKind,
    pub reason: String,
}

impl Plan {
    pub fn no_changes(&self) -> bool {
        self.changes.is_empty() && self.router.is_none() && self.gateway.is_none()
    }

    /// Takes the refused plugins' changes out of the plan (their dependents still run: what
    /// runs of a refused plugin stays) and records why.
    pub fn refuse_admission(&mut self, refusals: Vec<crate::model::admission::Refusal>) {
        for r in &refusals {
            if let Some(index) = self.changes.iter().position(|c| c.plugin == r.plugin) {
                let change = self.changes.remove(index);
                self.held.push(Held { plugin: change.plugin, kind: change.kind, reason: r.to_string() });
            }
        }
        self.admission.extend(refusals);
    }

    /// Moves `plugin`'s change to `held` with a reason; its dependents are held with it.
    pub fn hold(&mut self, plugin: &str, reason: &str) {
        let mut holding = vec![plugin.to_string()];
        while let Some(id) = holding.pop() {
            let Some(index) = self.changes.iter().position(|c| c.plugin == id) else { continue };
            let change = self.changes.remove(index);
            let why =
                if change.plugin == plugin { reason.to_string() } else { format!("waits for {plugin}: {reason}") };
            self.held.push(Held { plugin: change.plugin.clone(), kind: change.kind, reason: why });
            holding.extend(self.changes.iter().filter(|c| c.after.contains(&change.plugin)).map(|c| c.plugin.clone()));
        }
    }
}

/// Whether the desired state could be read completely. A fleet with errors never prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredHealth {
    Complete,
    HasErrors,
}

// Long: per plugin compare, then the prune guards in order of precedence.

pub fn plan(fleet: &Fleet, observed: &Observed, desired: DesiredHealth) -> Plan {
    let mut changes = Vec::new();
    let mut suspended = Vec::new();
    let unobserved: Vec<Unobserved> = observed
        .unobserved
        .iter()
        .map(|(plugin, why)| Unobserved {
            plugin: plugin.clone(),
            reason: format!("the engine could not tell what runs ({why}); nothing changes for it this pass"),
        })
        .collect();
    for plugin in fleet.plugins.values() {
        if plugin.manifest.suspended {
            suspended.push(plugin.id.clone());
            continue;
        }
        if observed.unobserved.contains_key(&plugin.id) {
            continue;
        }
        let instances: Vec<&Instance> = observed.of_plugin(&plugin.id).collect();
        let targets = spec::slot_targets(plugin);
        // Blue-green may keep the previous environment stopped for an instant switch back.
        let keeps_parked = plugin.strategy == Strategy::BlueGreen
            && plugin.policy.blue_green_config.as_ref().is_some_and(|c| c.keep_previous_environment);
        if let Some((kind, reasons)) = compare(&targets, &instances, keeps_parked) {
            let after = plugin.manifest.depends_on.iter().filter(|d| fleet.plugins.contains_key(*d)).cloned().collect();
            let mut reasons = reasons;
            if kind == ChangeKind::Update {
                reasons.extend(progressive_note(plugin));
            }
            changes.push(Change { plugin: plugin.id.clone(), kind, strategy: plugin.strategy, reasons, after });
        }
    }
    let mut refused = Vec::new();
    let gone: Vec<String> = observed
        .plugins()
        .into_iter()
        .filter(|p| !fleet.plugins.contains_key(*p) && !observed.unobserved.contains_key(*p))
        .map(str::to_string)
        .collect();
    if !gone.is_empty() {
        let running = observed.plugins().len();
        let fraction = gone.len() as f64 / running.max(1) as f64;
        let limit = fleet.config.max_prune_fraction;
        let refusal = if desired == DesiredHealth::HasErrors {
            Some(
                "the fleet has validation errors; plugsync never prunes from a revision it could not read completely"
                    .to_string(),
            )
        } else if !fleet.config.prune {
            Some("prune is off in plugsync.yaml".to_string())
        } else if fraction > limit {
            Some(format!(
                "this revision would remove {} of {running} running plugins ({:.0} %), more than maxPruneFraction {:.0} %",
                gone.len(),
                fraction * 100.0,
                limit * 100.0
            ))
        } else {
            None
        };
        match refusal {
            Some(reason) => refused.push(Refusal { plugins: gone, reason }),
            None => changes.extend(gone.into_iter().map(|plugin| Change {
                plugin,
                kind: ChangeKind::Remove,
                strategy: Strategy::Direct,
                reasons: vec!["removed from Git".into()],
                after: Vec::new(),
            })),
        }
    }
    Plan {
        fleet: fleet.config.fleet.clone(),
        changes: order(changes),
        refused,
        suspended,
        held: Vec::new(),
        unobserved,
        admission: Vec::new(),
        router: router::change(fleet, &observed.routers),
        gateway: router::gateway_change(fleet, &observed.gateways),
    }
}

/// What traffic a progressive rollout will really give the new version on a replica-weighted
/// backend (1 canary of 4 instances is 25 %, whatever the step says).
fn progressive_note(plugin: &crate::model::Plugin) -> Option<String> {
    if plugin.canary.is_some() {
        return None;
    }
    let replicas = plugin.manifest.replicas;
    let routed = plugin.routing.is_routed();
    match plugin.strategy {
        Strategy::Canary => {
            let config = plugin.policy.canary_config.clone().unwrap_or_default();
            let surge = config.max_surge.unwrap_or(0);
            let steps: Vec<String> = config
                .step_percentages()
                .iter()
                .map(|w| {
                    let (s, c, achieved) = crate::model::policy::canary_layout(replicas, *w, surge);
                    if routed || (achieved - w).abs() < 0.5 {
                        format!("{w}%")
                    } else {
                        format!("{w}% (achieved {achieved:.0}%: {c} of {})", replicas + s + c)
                    }
                })
                .collect();
            let exact = if routed { " (exact weights at the router)" } else { "" };
            Some(format!("canary steps {}{exact}", steps.join(" → ")))
        }
        Strategy::ABTesting if routed => {
            let split = plugin.policy.ab_config.clone().unwrap_or_default().traffic_split;
            Some(format!("A/B split {}/{} at the router (exact)", split.a, split.b))
        }
        Strategy::ABTesting => {
            let config = plugin.policy.ab_config.clone().unwrap_or_default();
            let b = config.traffic_split.b_instances(replicas);
            Some(format!(
                "A/B split {}/{} requested, B gets {:.0}% ({b} of {} instances)",
                config.traffic_split.a,
                config.traffic_split.b,
                f64::from(b) * 100.0 / f64::from(b + replicas),
                b + replicas
            ))
        }
        _ => None,
    }
}

/// Compares one plugin's desired slots with its instances.
fn compare(targets: &[SlotTarget], instances: &[&Instance], keeps_parked: bool) -> Option<(ChangeKind, Vec<String>)> {
    if instances.is_empty() {
        let total: u32 = targets.iter().map(|t| t.replicas).sum();
        let versions: Vec<String> = targets.iter().map(|t| t.spec.version.clone()).collect();
        return Some((ChangeKind::Create, vec![format!("new plugin: {} × {}", total, versions.join(" + "))]));
    }
    let mut kind: Option<ChangeKind> = None;
    let mut reasons = Vec::new();
    let bump = |k: ChangeKind, kind: &mut Option<ChangeKind>| {
        *kind = Some(kind.map_or(k, |old| old.min(k)));
    };
    for t in targets {
        let in_slot: Vec<&&Instance> = instances
            .iter()
            .filter(|i| t.owns(i.slot) && !(keeps_parked && i.spec_hash != t.hash && !i.is_running()))
            .collect();
        let current: Vec<&&Instance> = in_slot.iter().copied().filter(|i| i.spec_hash == t.hash).collect();
        let stale: Vec<&&Instance> = in_slot.iter().copied().filter(|i| i.spec_hash != t.hash).collect();
        if let Some(old) = stale.first() {
            let diff = match &old.spec {
                Some(old_spec) => t.spec.differences(old_spec),
                None => vec![format!("version {} → {}", old.version, t.spec.version)],
            };
            let prefix = if t.slot == Slot::Stable { String::new() } else { format!("{}: ", t.slot) };
            reasons.extend(diff.into_iter().map(|d| format!("{prefix}{d}")));
            bump(ChangeKind::Update, &mut kind);
        }
        let running_current = current.iter().filter(|i| i.is_running()).count() as u32;
        let down: Vec<&&&Instance> = current.iter().filter(|i| !i.is_running()).collect();
        for i in &down {
            reasons.push(format!("instance {} is {:?}", i.name, i.state).to_lowercase());
            bump(ChangeKind::Repair, &mut kind);
        }
        // Changed behind plugsync's back, or running out of traffic: repaired by a pass.
        for i in current.iter().filter(|i| i.is_running()) {
            let departures = i.departures();
            if !departures.is_empty() {
                let what: Vec<String> = departures.iter().map(ToString::to_string).collect();
                reasons.push(format!("instance {}: {}", i.name, what.join(", ")));
                bump(ChangeKind::Repair, &mut kind);
            } else if !i.serving && stale.is_empty() {
                reasons.push(format!("instance {} is out of traffic", i.name));
                bump(ChangeKind::Repair, &mut kind);
            }
        }
        if stale.is_empty() && running_current + down.len() as u32 != t.replicas {
            let have = running_current + down.len() as u32;
            reasons.push(format!("{}replicas {have} → {}", slot_prefix(t.slot), t.replicas));
            bump(ChangeKind::Scale, &mut kind);
        }
    }
    let extra: BTreeMap<Slot, usize> =
        instances.iter().filter(|i| !targets.iter().any(|t| t.owns(i.slot))).fold(BTreeMap::new(), |mut m, i| {
            *m.entry(i.slot).or_default() += 1;
            m
        });
    for (slot, n) in extra {
        reasons.push(format!("{slot}: {n} instance(s) of a rollout in flight or no longer wanted"));
        bump(ChangeKind::Update, &mut kind);
    }
    kind.map(|k| (k, reasons))
}

fn slot_prefix(slot: Slot) -> String {
    if slot == Slot::Stable {
        String::new()
    } else {
        format!("{slot} ")
    }
}

/// Dependencies first (stable topological order by id), removals last.
fn order(changes: Vec<Change>) -> Vec<Change> {
    let (removals, mut rest): (Vec<Change>, Vec<Change>) =
        changes.into_iter().partition(|c| c.kind == ChangeKind::Remove);
    let mut ordered: Vec<Change> = Vec::new();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let in_plan: BTreeSet<String> = rest.iter().map(|c| c.plugin.clone()).collect();
    while !rest.is_empty() {
        let ready = rest.iter().position(|c| c.after.iter().all(|d| placed.contains(d) || !in_plan.contains(d)));
        // A cycle cannot pass validation; if one slips through, keep going in id order.
        let next = rest.remove(ready.unwrap_or(0));
        placed.insert(next.plugin.clone());
        ordered.push(next);
    }
    ordered.extend(removals);
    ordered
}

#[cfg(test)]
mod tests;
