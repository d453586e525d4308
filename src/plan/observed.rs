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
    /// What the engine says the instance really runs with (for drift), where it tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
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
}

/// Everything of one fleet on the backend.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub instances: Vec<Instance>,
}

impl Observed {
    pub fn of_plugin<'a>(&'a self, plugin: &'a str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.instances.iter().filter(move |i| i.plugin == plugin)
    }

    pub fn plugins(&self) -> std::collections::BTreeSet<&str> {
        self.instances.iter().map(|i| i.plugin.as_str()).collect()
    }
}
