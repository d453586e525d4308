//! The fleet's edge gateway on Docker: one HAProxy container publishing `traffic.gateway.port`,
//! configured from the pure [`crate::traffic::gateway`] room. It forwards each base path to its
//! plugin's name, which the router holds, so it changes only when the base paths do: then its
//! configuration is uploaded and reloaded seamlessly (SIGUSR2). It cannot start first like the
//! router's replicas (two containers cannot publish one port), so a change of the published
//! address replaces it stop-first; one that died is replaced on the next sync.

use super::haproxy_container::HaproxyContainers;
use super::BackendError;
use crate::model::routing::Gateway;
use crate::traffic::gateway::{self as pure, LISTEN_PORT};
use crate::traffic::haproxy::RouterPorts;
use crate::traffic::Route;
use bollard::models::{HostConfig, PortBinding};
use bollard::Docker;
use std::collections::HashMap;

/// Label carrying the fleet a gateway belongs to.
pub const GATEWAY_LABEL: &str = "plugsync.gateway";
/// Label carrying where it publishes (`address:port`): a published port cannot change in place.
const PUBLISHED_LABEL: &str = "plugsync.gateway.published";

/// `address:port`, as the gateway's label keeps it.
pub fn published(settings: &Gateway) -> String {
    std::net::SocketAddr::new(settings.address, settings.port).to_string()
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GatewaySynced {
    /// Nothing to do: it runs with this configuration already, or none is needed.
    #[default]
    Unchanged,
    Created,
    /// A new configuration, reloaded without dropping a request.
    Reloaded,
    /// It published elsewhere, or had died: a new one replaced it.
    Replaced,
    Removed,
}

impl GatewaySynced {
    /// The metric's kind; `None` when nothing changed.
    pub fn kind(self) -> Option<&'static str> {
        match self {
            GatewaySynced::Unchanged => None,
            GatewaySynced::Created => Some("created"),
            GatewaySynced::Reloaded => Some("reloaded"),
            GatewaySynced::Replaced => Some("replaced"),
            GatewaySynced::Removed => Some("removed"),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            GatewaySynced::Unchanged => "unchanged",
            GatewaySynced::Created => "started",
            GatewaySynced::Reloaded => "reloaded with new base paths",
            GatewaySynced::Replaced => "replaced",
            GatewaySynced::Removed => "removed: no routed plugin has a base path",
        }
    }
}

/// A gateway container as the engine shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Container {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// `address:port` it publishes.
    pub published: String,
}

pub struct EdgeGateway {
    engine: HaproxyContainers,
    router_replicas: u32,
    /// The configuration the running gateway was given by this process; `None` after a
    /// restart, which makes the first sync reload.
    applied: tokio::sync::Mutex<Option<String>>,
}

impl EdgeGateway {
    pub fn new(docker: Docker, network: String, image: String, router_replicas: u32) -> Self {
        EdgeGateway {
            engine: HaproxyContainers { docker, network, image, ports: RouterPorts::default() },
            router_replicas,
            applied: tokio::sync::Mutex::new(None),
        }
    }

    /// Brings the fleet's gateway to `settings` and `routes` (every routed plugin's): present
    /// while the fleet asks for one and a routed plugin has a base path, configured for exactly
    /// those.
    pub async fn sync(
        &self,
        fleet: &str,
        settings: Option<&Gateway>,
        routes: &[Route],
    ) -> Result<GatewaySynced, BackendError> {
        let entries = pure::entries(routes);
        let found = self.containers(fleet).await?;
        let mut applied = self.applied.lock().await;
        let Some(settings) = settings.filter(|_| !entries.is_empty()) else {
            for c in &found {
                self.engine.soft_stop(&c.id, c.running).await;
            }
            *applied = None;
            return Ok(if found.is_empty() { GatewaySynced::Unchanged } else { GatewaySynced::Removed });
        };
        let config = pure::config(&entries, &self.engine.ports, self.router_replicas);
        let published = published(settings);
        let (keep, leave): (Vec<&Container>, Vec<&Container>) =
            found.iter().partition(|c| c.running && c.published == published);
        // Stop-first: whatever held the port must be gone before a new one publishes it.
        for c in leave.iter().chain(keep.iter().skip(1)) {
            self.engine.soft_stop(&c.id, c.running).await;
        }
        if let Some(current) = keep.first() {
            if applied.as_deref() == Some(config.as_str()) {
                return Ok(GatewaySynced::Unchanged);
            }
            self.engine.upload(&current.id, &config).await?;
            self.engine.signal(&current.id, "SIGUSR2").await?;
            *applied = Some(config);
            tracing::info!(gateway = %current.name, paths = entries.len(), "gateway reloaded");
            return Ok(GatewaySynced::Reloaded);
        }
        self.create(fleet, settings, &config).await?;
        *applied = Some(config);
        Ok(if found.is_empty() { GatewaySynced::Created } else { GatewaySynced::Replaced })
    }

    async fn create(&self, fleet: &str, settings: &Gateway, config: &str) -> Result<(), BackendError> {
        let name = format!("plugsync-gateway-{fleet}-{}", super::name_suffix());
        let labels = HashMap::from([
            (GATEWAY_LABEL.to_string(), fleet.to_string()),
            (PUBLISHED_LABEL.to_string(), published(settings)),
        ]);
        let port = format!("{LISTEN_PORT}/tcp");
        let binding =
            PortBinding { host_ip: Some(settings.address.to_string()), host_port: Some(settings.port.to_string()) };
        let host = HostConfig {
            port_bindings: Some(HashMap::from([(port.clone(), Some(vec![binding]))])),
            ..Default::default()
        };
        self.engine.start(&name, labels, (host, vec![port]), config).await?;
        tracing::info!(gateway = %name, published = %published(settings), "gateway started");
        Ok(())
    }

    /// The fleet's gateway as the plan sees it.
    pub async fn observe(&self, fleet: &str) -> Result<Vec<crate::plan::observed::GatewayContainer>, BackendError> {
        let found = self.containers(fleet).await?;
        Ok(found
            .into_iter()
            .map(|c| crate::plan::observed::GatewayContainer {
                name: c.name,
                running: c.running,
                published: c.published,
            })
            .collect())
    }

    /// The fleet's gateway containers, running or not.
    async fn containers(&self, fleet: &str) -> Result<Vec<Container>, BackendError> {
        let listed = self.engine.list(format!("{GATEWAY_LABEL}={fleet}"), "list the gateway of fleet").await?;
        Ok(listed
            .into_iter()
            .map(|mut c| Container {
                published: c.labels.remove(PUBLISHED_LABEL).unwrap_or_default(),
                id: c.id,
                name: c.name,
                running: c.running,
            })
            .collect())
    }
}
