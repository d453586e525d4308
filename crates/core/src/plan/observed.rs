//! What runs on the backend, rebuilt from plugsync's labels alone.

use super::spec::{InstanceSpec, Slot};
use serde::Serialize;
use std::net::IpAddr;

/// Labels every object plugsync creates carries (DESIGN.md).
pub mod labels {
    pub const FLEET: &str = "plugsync.fleet";
    pub const PLUGIN: &str = "plugsync.plugin";
    pub const VERSION: &str = "plugsync.version";
    pub const REVISION: &str = "plugsync.revision";
    pub const SPEC_HASH: &str = "plugsync.spec-hash";
    pub const SLOT: &str = "plugsync.slot";
    /// The normalised spec (JSON, secret sources only), so a plan can say what changed.
    pub const SPEC: &str = "plugsync.spec";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Removing,
}

impl RunState {
    pub fn parse(text: &str) -> RunState {
        match text {
            "running" => RunState::Running,
            "restarting" => RunState::Restarting,
            "paused" => RunState::Paused,
            "exited" => RunState::Exited,
            "dead" => RunState::Dead,
            "removing" => RunState::Removing,
            _ => RunState::Created,
        }
    }
}

/// One instance plugsync owns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// Backend id (container id).
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub slot: Slot,
    pub version: String,
    pub spec_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<InstanceSpec>,
    pub revision: String,
    pub state: RunState,
    /// Carries the plugin id as network alias (receives traffic).
    pub serving: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Readiness as last probed; `None` = not probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    pub oom_killed: bool,
    pub restart_count: u32,
    /// The image the engine runs, by content (`sha256:…`; Kubernetes' `imageID`), where it tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// What the engine says the instance really runs with (for drift), where it tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
}

/// One field where an instance departs from its spec: `memory` found `128Mi`, expected `64Mi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub field: &'static str,
    pub found: String,
    pub expected: String,
}

impl std::fmt::Display for Departure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field {
            "env" => write!(f, "env {} (expected {})", self.found, self.expected),
            field => write!(f, "{field} {} (expected {})", self.found, self.expected),
        }
    }
}

/// The instance's configuration as the engine reports it now, normalised so that what
/// plugsync itself applied compares equal to its spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Runtime {
    /// Image reference, `docker.io/library/` and a default `:latest` spelled out.
    pub image: String,
    /// Only the variables the spec names (the image's own defaults are not drift).
    pub env: std::collections::BTreeMap<String, String>,
    pub nano_cpus: Option<i64>,
    pub memory: Option<i64>,
    /// Attached to the fleet network at all.
    pub on_network: bool,
    /// The engine's state word (`running`, `exited`, `restarting`, …).
    pub status: String,
    pub exit_code: Option<i64>,
}

impl Instance {
    pub fn is_running(&self) -> bool {
        self.state == RunState::Running
    }

    /// What in the engine's view departs from the spec the instance was started with (a
    /// `docker update`, a container made by hand with copied labels): such an instance is
    /// replaced, not trusted. Empty when the engine does not tell (Kubernetes) or all match.
    pub fn departures(&self) -> Vec<Departure> {
        let (Some(spec), Some(r)) = (&self.spec, &self.runtime) else { return Vec::new() };
        let mut out = Vec::new();
        let mut differ = |field: &'static str, found: String, expected: String| {
            if found != expected {
                out.push(Departure { field, found, expected });
            }
        };
        differ("image", r.image.clone(), crate::model::image::normalise(&spec.image));
        for (k, v) in &spec.env {
            let found = r.env.get(k).map(|f| format!("{k}={f}")).unwrap_or_else(|| format!("{k} unset"));
            differ("env", found, format!("{k}={v}"));
        }
        let cpu = |c: Option<i64>| c.map(|n| format!("{}m", n / 1_000_000)).unwrap_or_else(|| "unlimited".into());
        let memory = |m: Option<i64>| {
            m.map(|b| crate::model::Memory::from_bytes(b.max(0) as u64).to_string())
                .unwrap_or_else(|| "unlimited".into())
        };
        differ("cpu", cpu(r.nano_cpus), cpu(spec.cpu.map(|c| c.nano_cpus())));
        differ("memory", memory(r.memory), memory(spec.memory.map(|m| m.bytes() as i64)));
        out
    }

    /// Which of several equal instances go first when some must: those departing from their
    /// spec, then unready, then not serving, then by name (the strategies and drift agree).
    pub fn retire_order(&self) -> (bool, bool, bool, String) {
        let ready = self.is_running() && self.ready == Some(true);
        (self.departures().is_empty(), ready && self.serving, ready, self.name.clone())
    }
}

/// Everything of one fleet on the backend.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub instances: Vec<Instance>,
    /// The fleet's router replicas (Docker with `traffic.router: haproxy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<RouterReplica>,
    /// The fleet's edge gateway containers (`traffic.gateway`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<GatewayContainer>,
    /// Plugins the engine could not tell about this time (an error other than "no such
    /// object"), with why: nothing is planned, repaired or pruned for them.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unobserved: std::collections::BTreeMap<String, String>,
}

/// The edge gateway as the engine shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct GatewayContainer {
    pub name: String,
    pub running: bool,
    /// `address:port` it publishes.
    pub published: String,
}

/// One router replica as the engine shows it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RouterReplica {
    pub name: String,
    pub running: bool,
    /// The aliases it holds on the fleet network (the plugins it routes).
    pub aliases: Vec<String>,
    /// Per plugin, each slot's share of its traffic (percent) as the replica's weights give
    /// it now; empty when the replica could not be asked.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub shares: std::collections::BTreeMap<String, Vec<(Slot, f64)>>,
}

impl Observed {
    pub fn of_plugin<'a>(&'a self, plugin: &'a str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.instances.iter().filter(move |i| i.plugin == plugin)
    }

    pub fn plugins(&self) -> std::collections::BTreeSet<&str> {
        self.instances.iter().map(|i| i.plugin.as_str()).collect()
    }
}
