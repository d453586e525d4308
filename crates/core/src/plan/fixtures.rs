//! Specs and instances for logic tests, of this crate and of the rooms at the edges (the
//! `fixtures` feature, enabled for the main crate's tests only). Not for production use.

use super::{Instance, InstanceSpec, RunState, Slot};

/// The spec of plugin `p` at `version`.
pub fn spec(version: &str) -> InstanceSpec {
    InstanceSpec {
        plugin: "p".into(),
        version: version.into(),
        image: format!("echo:{version}"),
        command: None,
        args: None,
        env: Default::default(),
        secret_env: Default::default(),
        cpu: None,
        memory: None,
        cpu_reservation: None,
        memory_reservation: None,
        port: 8080,
        liveness: "/health/live".into(),
        readiness: "/health/ready".into(),
        routed: false,
    }
}

/// An instance of plugin `p` at `version`, running, ready and serving as told.
pub fn inst(version: &str, slot: Slot, ready: bool, serving: bool, id: &str) -> Instance {
    let s = spec(version);
    Instance {
        id: id.into(),
        name: id.into(),
        plugin: "p".into(),
        slot,
        version: version.into(),
        spec_hash: s.hash(),
        spec: Some(s),
        revision: "r".into(),
        state: RunState::Running,
        serving,
        address: None,
        ready: Some(ready),
        oom_killed: false,
        restart_count: 0,
        image_id: None,
        runtime: None,
    }
}
