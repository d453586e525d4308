//! Where instances run. One trait; one module per engine (`docker`, `kubernetes`), and
//! `any` to pick one at run time.

pub mod any;
pub mod docker;
pub mod gateway;
mod haproxy_container;
pub mod kubernetes;
pub mod probe;
pub mod router;

use crate::plan::drift::Squatter;
use crate::plan::{Instance, InstanceSpec, Observed, Slot};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot reach the {engine} engine at {endpoint}: {detail} (is it running? set DOCKER_HOST or backend.host to point elsewhere)")]
    Unreachable { engine: &'static str, endpoint: String, detail: String },
    #[error("{engine} refused to {action} {subject}: {detail}")]
    Refused { engine: &'static str, action: &'static str, subject: String, detail: String },
    /// The engine says the object does not exist (HTTP 404): gone, not an engine fault.
    #[error("{engine} has no {subject} to {action}")]
    NotFound {
        engine: &'static str,
        action: &'static str,
        subject: String,
        #[source]
        source: EngineCause,
    },
    /// The engine failed (HTTP 5xx, a broken answer): nothing is known about the object.
    #[error("{engine} failed to {action} {subject}: {source}")]
    Engine {
        engine: &'static str,
        action: &'static str,
        subject: String,
        #[source]
        source: EngineCause,
    },
    #[error("secretEnv {name}: {detail}")]
    Secret { name: String, detail: String },
}

/// The engine client's own error, kept as the source.
pub type EngineCause = Box<dyn std::error::Error + Send + Sync>;

/// Secret values resolved at apply time. Debug never shows them.
#[derive(Clone, Default)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys().map(|k| format!("{k}=<redacted>"))).finish()
    }
}

/// What starting one instance needs besides its spec.
#[derive(Debug, Clone)]
pub struct StartRequest<'a> {
    pub fleet: &'a str,
    pub revision: &'a str,
    pub slot: Slot,
    pub spec: &'a InstanceSpec,
    pub hash: &'a str,
    pub secrets: &'a SecretValues,
    /// Join traffic at once (nothing of the plugin serves yet).
    pub serve: bool,
}

/// A container engine or orchestrator plugsync drives. Implementations touch only what
/// carries their fleet's labels; an `Err` means the engine refused or could not be reached,
/// and nothing was half-done that `observe` would not show.
pub trait Backend: Send + Sync {
    /// Creates what the fleet shares (Docker: its network). Idempotent.
    fn prepare(&self, fleet: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Everything of `fleet` that runs, rebuilt from labels; only `plugin`'s when given.
    fn observe(&self, fleet: &str, plugin: Option<&str>)
        -> impl Future<Output = Result<Observed, BackendError>> + Send;
    /// Starts one instance, not yet serving traffic.
    fn start(&self, request: StartRequest<'_>) -> impl Future<Output = Result<Instance, BackendError>> + Send;
    /// Starts `count` instances of one spec (one scale-up where the engine groups them).
    fn start_many(
        &self,
        request: StartRequest<'_>,
        count: u32,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        async move {
            let starts = (0..count).map(|_| self.start(request.clone()));
            futures_util::future::join_all(starts).await.into_iter().try_for_each(|r| r.map(|_| ()))
        }
    }
    /// Puts a ready instance into traffic (network alias / Service selector).
    fn serve(&self, fleet: &str, instance: &Instance) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Takes an instance out of traffic but leaves it running (and reachable at its address).
    fn unserve(&self, fleet: &str, instance: &Instance) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Stops an instance and keeps it for an instant switch back.
    fn park(&self, fleet: &str, instance: &Instance) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Containers holding a name of the fleet's without plugsync's labels (drift: foreign).
    fn squatters(&self, _fleet: &str) -> impl Future<Output = Result<Vec<Squatter>, BackendError>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Brings the fleet's router to `routes` (every routed plugin's, or one plugin's for
    /// `scope`). Engines that route by themselves (Kubernetes Services) have nothing to do.
    fn route(
        &self,
        _fleet: &str,
        _routes: Vec<crate::traffic::Route>,
        _scope: router::Scope<'_>,
    ) -> impl Future<Output = Result<router::Synced, BackendError>> + Send {
        async { Ok(router::Synced::default()) }
    }
    /// The router's per-request log lines since `since_ms` (Unix epoch ms); none where the
    /// engine routes by itself.
    fn router_log(
        &self,
        _fleet: &str,
        _since_ms: u64,
    ) -> impl Future<Output = Result<Vec<String>, BackendError>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Takes an instance out of traffic, stops and removes it.
    fn retire(&self, fleet: &str, instance: &Instance) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// Six hex digits that make a container name unique (time, process, counter mixed).
pub(crate) fn name_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mixed =
        (nanos as u64 ^ (u64::from(std::process::id()) << 32)).wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    format!("{:06x}", mixed & 0xff_ffff)
}
