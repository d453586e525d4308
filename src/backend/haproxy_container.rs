//! HAProxy containers on the fleet network, as the router's replicas and the edge gateway both
//! run them: the image (built here when it is the local one), a configuration uploaded before
//! the start and on every reload, signals to HAProxy's master, readiness, soft stop.

use super::BackendError;
use crate::traffic::haproxy::RouterPorts;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
    UploadToContainerOptions,
};
use bollard::Docker;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub(super) const ENGINE: &str = "Docker";
/// How long a new container may take to answer its health check.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a container being replaced keeps serving what it already accepted.
const SOFT_STOP: Duration = Duration::from_secs(5);

pub(super) struct HaproxyContainers {
    pub docker: Docker,
    pub network: String,
    pub image: String,
    pub ports: RouterPorts,
}

/// One container as a listing shows it.
pub(super) struct Listed {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub address: Option<IpAddr>,
    pub labels: HashMap<String, String>,
}

impl HaproxyContainers {
    /// Containers labelled `label`, running or not; `what` names them in an error.
    pub(super) async fn list(&self, label: String, what: &'static str) -> Result<Vec<Listed>, BackendError> {
        let filters = HashMap::from([("label".to_string(), vec![label.clone()])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let listed = self.docker.list_containers(Some(options)).await.map_err(|e| self.refused(what, &label, e))?;
        Ok(listed
            .into_iter()
            .filter_map(|c| {
                Some(Listed {
                    id: c.id?,
                    name: c.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').into(),
                    running: c.state.is_some_and(|s| s.to_string() == "running"),
                    address: c
                        .network_settings
                        .and_then(|n| n.networks)
                        .and_then(|mut n| n.remove(&self.network))
                        .and_then(|e| e.ip_address)
                        .and_then(|ip| ip.parse().ok()),
                    labels: c.labels.unwrap_or_default(),
                })
            })
            .collect())
    }

    pub(super) fn refused(&self, action: &'static str, subject: &str, e: bollard::errors::Error) -> BackendError {
        match e {
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                BackendError::Refused { engine: ENGINE, action, subject: subject.to_string(), detail: message }
            }
            other => BackendError::Unreachable { engine: ENGINE, endpoint: "docker".into(), detail: other.to_string() },
        }
    }

    pub(super) async fn ensure_image(&self) -> Result<(), BackendError> {
        if self.docker.inspect_image(&self.image).await.is_ok() {
            return Ok(());
        }
        if self.image == crate::images::ROUTER_IMAGE {
            return crate::images::build_router_image(&self.docker).await.map_err(|e| BackendError::Refused {
                engine: ENGINE,
                action: "build router image",
                subject: self.image.clone(),
                detail: e.to_string(),
            });
        }
        use futures_util::StreamExt;
        let options = bollard::query_parameters::CreateImageOptions {
            from_image: Some(self.image.clone()),
            ..Default::default()
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(step) = pull.next().await {
            step.map_err(|e| self.refused("pull router image", &self.image, e))?;
        }
        Ok(())
    }

    pub(super) async fn upload(&self, id: &str, config: &str) -> Result<(), BackendError> {
        let archive = crate::images::router_config_archive(config).map_err(|e| BackendError::Refused {
            engine: ENGINE,
            action: "pack router configuration",
            subject: id.to_string(),
            detail: e.to_string(),
        })?;
        let options = UploadToContainerOptions { path: "/".into(), ..Default::default() };
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(|e| self.refused("upload router configuration", id, e))
    }

    pub(super) async fn signal(&self, id: &str, signal: &str) -> Result<(), BackendError> {
        let options = KillContainerOptions { signal: signal.to_string() };
        self.docker.kill_container(id, Some(options)).await.map_err(|e| self.refused("signal router", id, e))
    }

    /// Waits until a new replica answers its health check; its address on the fleet network.
    pub(super) async fn wait_ready(&self, id: &str, name: &str) -> Result<IpAddr, BackendError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let client = crate::tls::http_client();
        loop {
            let inspect =
                self.docker.inspect_container(id, None).await.map_err(|e| self.refused("inspect", name, e))?;
            let address = inspect
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|mut n| n.remove(&self.network))
                .and_then(|e| e.ip_address)
                .filter(|ip| !ip.is_empty());
            if let Some(ip) = address.and_then(|ip| ip.parse::<IpAddr>().ok()) {
                let url = format!("http://{ip}:{}/healthz", self.ports.stats);
                let answered = client.get(&url).timeout(Duration::from_millis(500)).send().await;
                if answered.is_ok_and(|r| r.status().is_success()) {
                    return Ok(ip);
                }
            }
            if Instant::now() > deadline {
                return Err(BackendError::Refused {
                    engine: ENGINE,
                    action: "start",
                    subject: name.to_string(),
                    detail: format!("no answer on /healthz after {READY_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a container named `name` on the fleet network (no alias yet), gives it
    /// `config`, starts it and waits until it answers; its address. `host` adds to the
    /// container's host settings (published ports, with the ports they publish in `exposed`,
    /// e.g. `8000/tcp`). Removed again if any step fails.
    pub(super) async fn start(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        (host, exposed): (HostConfig, Vec<String>),
        config: &str,
    ) -> Result<(String, IpAddr), BackendError> {
        self.ensure_image().await?;
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                restart_policy: Some(bollard::models::RestartPolicy {
                    name: Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..host
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(self.network.clone(), EndpointSettings::default())])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.to_string()), ..Default::default() };
        let created =
            self.docker.create_container(Some(options), body).await.map_err(|e| self.refused("create", name, e))?;
        let started = async {
            self.upload(&created.id, config).await?;
            self.docker.start_container(&created.id, None).await.map_err(|e| self.refused("start", name, e))?;
            self.wait_ready(&created.id, name).await
        };
        match started.await {
            Ok(address) => Ok((created.id, address)),
            Err(e) => {
                let remove = RemoveContainerOptions { force: true, ..Default::default() };
                let _ = self.docker.remove_container(&created.id, Some(remove)).await;
                Err(e)
            }
        }
    }

    /// Lets a container finish what it accepted (HAProxy's soft stop), then removes it.
    pub(super) async fn soft_stop(&self, id: &str, running: bool) {
        if running {
            let _ = self.signal(id, "SIGUSR1").await;
            let deadline = Instant::now() + SOFT_STOP;
            while Instant::now() < deadline {
                let running = self
                    .docker
                    .inspect_container(id, None)
                    .await
                    .ok()
                    .and_then(|i| i.state)
                    .and_then(|s| s.running)
                    .unwrap_or(false);
                if !running {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let remove = RemoveContainerOptions { force: true, ..Default::default() };
        let _ = self.docker.remove_container(id, Some(remove)).await;
    }
}
