//! What one instance of a plugin must look like, derived from the manifest; its hash is the
//! `plugsync.spec-hash` label that tells whether a running instance is current.

use crate::model::{Cpu, Memory, Plugin, PluginManifest, SecretSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Which group of instances of a plugin: the current version, a canary, blue/green, A/B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    Stable,
    Canary,
    Blue,
    Green,
    A,
    B,
}

impl Slot {
    /// Every slot, in the order sticky splits give them bucket ranges.
    pub const ALL: [Slot; 6] = [Slot::Stable, Slot::Canary, Slot::Blue, Slot::Green, Slot::A, Slot::B];

    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Stable => "stable",
            Slot::Canary => "canary",
            Slot::Blue => "blue",
            Slot::Green => "green",
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    pub fn parse(text: &str) -> Option<Slot> {
        Slot::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The normalised desired spec of one instance. Secret *sources* are part of it, secret
/// values never are (they are resolved by the backend call that starts the instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    pub plugin: String,
    pub version: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, SecretSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_reservation: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<Memory>,
    pub port: u16,
    pub liveness: String,
    pub readiness: String,
    /// Behind the fleet's router (`traffic.router: haproxy`): a serving instance carries the
    /// router's private alias, not the plugin's. Absent (false) from the hash of DNS specs, so
    /// their hashes stay what earlier versions computed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routed: bool,
}

impl InstanceSpec {
    pub fn from_manifest(m: &PluginManifest) -> InstanceSpec {
        let mut env = m.env.clone();
        if !m.config.is_null() {
            env.insert("PLUGIN_CONFIG".into(), m.config.to_string());
        }
        InstanceSpec {
            plugin: m.id.clone(),
            version: m.version.clone(),
            image: m.runtime.image.clone(),
            command: m.runtime.command.clone(),
            args: m.runtime.args.clone(),
            env,
            secret_env: m.secret_env.clone(),
            cpu: m.runtime.resources.cpu,
            memory: m.runtime.resources.memory,
            cpu_reservation: m.runtime.reservations.cpu,
            memory_reservation: m.runtime.reservations.memory,
            port: m.api.port,
            liveness: m.api.liveness.clone(),
            readiness: m.api.readiness.clone(),
            routed: false,
        }
    }

    /// Short stable hash of the spec (serde_json with sorted maps is canonical here).
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// Human differences from `old` to `self`: "image a → b", "memory 512Mi → 1Gi".
    pub fn differences(&self, old: &InstanceSpec) -> Vec<String> {
        let mut out = Vec::new();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "unlimited".into());
        if self.image != old.image {
            out.push(format!("image {} → {}", old.image, self.image));
        } else if self.version != old.version {
            out.push(format!("version {} → {}", old.version, self.version));
        }
        let pairs = [
            ("cpu", old.cpu.map(|c| c.to_string()), self.cpu.map(|c| c.to_string())),
            ("memory", old.memory.map(|c| c.to_string()), self.memory.map(|c| c.to_string())),
            (
                "cpu reservation",
                old.cpu_reservation.map(|c| c.to_string()),
                self.cpu_reservation.map(|c| c.to_string()),
            ),
            (
                "memory reservation",
                old.memory_reservation.map(|c| c.to_string()),
                self.memory_reservation.map(|c| c.to_string()),
            ),
        ];
        for (name, before, after) in pairs {
            if before != after {
                out.push(format!("{name} {} → {}", opt(before), opt(after)));
            }
        }
        let keys = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| -> Vec<String> {
            let mut k: Vec<String> = a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
                .collect();
            k.sort();
            k.dedup();
            k
        };
        let changed: Vec<String> = keys(&self.env, &old.env).into_iter().filter(|k| k != "PLUGIN_CONFIG").collect();
        if !changed.is_empty() {
            out.push(format!("env {} changed", changed.join(", ")));
        }
        if self.env.get("PLUGIN_CONFIG") != old.env.get("PLUGIN_CONFIG") {
            out.push("config changed".into());
        }
        if self.secret_env != old.secret_env {
            out.push("secretEnv sources changed".into());
        }
        if self.command != old.command || self.args != old.args {
            out.push("command/args changed".into());
        }
        if self.port != old.port || self.liveness != old.liveness || self.readiness != old.readiness {
            out.push("api port/health paths changed".into());
        }
        if self.routed != old.routed {
            out.push(if self.routed { "traffic moves behind the router" } else { "traffic moves to DNS" }.into());
        }
        if out.is_empty() && self != old {
            out.push("spec changed".into());
        }
        out
    }
}

impl SlotTarget {
    /// Whether instances in `slot` count towards this target: the main target owns the
    /// stable, blue and green slots (blue-green moves the plugin between them).
    pub fn owns(&self, slot: Slot) -> bool {
        match self.slot {
            Slot::Stable | Slot::Blue | Slot::Green => matches!(slot, Slot::Stable | Slot::Blue | Slot::Green),
            other => other == slot,
        }
    }
}

/// One slot of a plugin as desired: the spec and how many instances run it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotTarget {
    pub slot: Slot,
    pub spec: InstanceSpec,
    pub hash: String,
    pub replicas: u32,
}

/// A plugin's desired slots. A BotMatrix fixed canary is weighted by instance count: the
/// canary gets the fewest instances (at least one) that come closest to its weight.
pub fn slot_targets(plugin: &Plugin) -> Vec<SlotTarget> {
    let target = |slot, m: &PluginManifest, replicas| {
        let mut spec = InstanceSpec::from_manifest(m);
        spec.routed = plugin.routing.is_routed();
        SlotTarget { slot, hash: spec.hash(), spec, replicas }
    };
    let replicas = plugin.manifest.replicas;
    match &plugin.canary {
        None => vec![target(Slot::Stable, &plugin.manifest, replicas)],
        // Behind the router the weight is exact whatever the count: one canary instance.
        Some(c) if plugin.routing.is_routed() => {
            vec![target(Slot::Stable, &plugin.manifest, replicas), target(Slot::Canary, &c.manifest, 1)]
        }
        Some(c) => {
            let canary = fixed_canary_instances(replicas, c.weight);
            vec![target(Slot::Stable, &plugin.manifest, replicas), target(Slot::Canary, &c.manifest, canary)]
        }
    }
}

/// Canary instances beside `stable` ones so that canary/(stable+canary) is nearest `weight`.
pub fn fixed_canary_instances(stable: u32, weight: f64) -> u32 {
    if weight <= 0.0 || stable == 0 {
        return 0;
    }
    if weight >= 100.0 {
        return stable;
    }
    let exact = f64::from(stable) * weight / (100.0 - weight);
    (exact.round() as u32).max(1)
}

/// One hash for all of a plugin's slots and replica counts: what a failed rollout is
/// remembered by, and what status says was last applied.
pub fn combined_hash(plugin: &Plugin) -> String {
    slot_targets(plugin).iter().map(|t| format!("{}x{}", t.hash, t.replicas)).collect::<Vec<_>>().join("+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_instance_counts() {
        assert_eq!(fixed_canary_instances(1, 10.0), 1);
        assert_eq!(fixed_canary_instances(9, 10.0), 1);
        assert_eq!(fixed_canary_instances(3, 25.0), 1);
        assert_eq!(fixed_canary_instances(2, 50.0), 2);
        assert_eq!(fixed_canary_instances(2, 0.0), 0);
    }
}
