//! The engine chosen at run time (`backend:` in plugsync.yaml or `--backend`): the trait
//! returns `impl Future`, so the choice is an enum that forwards each call.

use super::docker::DockerBackend;
use super::kubernetes::KubernetesBackend;
use super::{Backend, BackendError, StartRequest};
use crate::model::{BackendKind, FleetConfig};
use crate::plan::{Instance, Observed};

pub enum AnyBackend {
    Docker(DockerBackend),
    Kubernetes(KubernetesBackend),
}

/// Overrides from the command line or environment, over `backend:` in plugsync.yaml.
#[derive(Debug, Clone, Default)]
pub struct BackendChoice {
    pub kind: Option<BackendKind>,
    pub docker_host: Option<String>,
    pub namespace: Option<String>,
}

impl BackendChoice {
    pub fn kind(&self, config: &FleetConfig) -> BackendKind {
        self.kind.unwrap_or(config.backend.kind)
    }

    /// What identifies the connection: a fleet whose answer changes needs a new one.
    pub fn key(&self, config: &FleetConfig) -> String {
        match self.kind(config) {
            BackendKind::Docker => format!(
                "docker {} {}",
                self.docker_host.as_deref().or(config.backend.host.as_deref()).unwrap_or("-"),
                config.docker_network()
            ),
            BackendKind::Kubernetes => format!("kubernetes {}", self.namespace(config).unwrap_or("-")),
        }
    }

    fn namespace<'a>(&'a self, config: &'a FleetConfig) -> Option<&'a str> {
        self.namespace.as_deref().or(config.backend.namespace.as_deref())
    }

    pub async fn connect(&self, config: &FleetConfig) -> Result<AnyBackend, BackendError> {
        Ok(match self.kind(config) {
            BackendKind::Docker => {
                let host = self.docker_host.as_deref().or(config.backend.host.as_deref());
                AnyBackend::Docker(
                    DockerBackend::connect(host, config.docker_network()).await?.with_router(&config.traffic),
                )
            }
            BackendKind::Kubernetes => {
                AnyBackend::Kubernetes(KubernetesBackend::connect(self.namespace(config)).await?)
            }
        })
    }
}

macro_rules! forward {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBackend::Docker($b) => $call.await,
            AnyBackend::Kubernetes($b) => $call.await,
        }
    };
}

impl Backend for AnyBackend {
    async fn prepare(&self, fleet: &str) -> Result<(), BackendError> {
        forward!(self, b => b.prepare(fleet))
    }

    async fn observe(&self, fleet: &str, plugin: Option<&str>) -> Result<Observed, BackendError> {
        forward!(self, b => b.observe(fleet, plugin))
    }

    async fn start(&self, request: StartRequest<'_>) -> Result<Instance, BackendError> {
        forward!(self, b => b.start(request))
    }

    async fn start_many(&self, request: StartRequest<'_>, count: u32) -> Result<(), BackendError> {
        forward!(self, b => b.start_many(request, count))
    }

    async fn serve(&self, fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        forward!(self, b => b.serve(fleet, instance))
    }

    async fn unserve(&self, fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        forward!(self, b => b.unserve(fleet, instance))
    }

    async fn park(&self, fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        forward!(self, b => b.park(fleet, instance))
    }

    async fn squatters(&self, fleet: &str) -> Result<Vec<crate::plan::drift::Squatter>, BackendError> {
        forward!(self, b => b.squatters(fleet))
    }

    async fn retire(&self, fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        forward!(self, b => b.retire(fleet, instance))
    }

    async fn router_log(&self, fleet: &str, since_ms: u64) -> Result<Vec<String>, BackendError> {
        forward!(self, b => b.router_log(fleet, since_ms))
    }

    async fn route(
        &self,
        fleet: &str,
        routes: Vec<crate::traffic::Route>,
        scope: super::router::Scope<'_>,
    ) -> Result<super::router::Synced, BackendError> {
        forward!(self, b => b.route(fleet, routes, scope))
    }
}
