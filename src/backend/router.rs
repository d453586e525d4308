//! The fleet's router on Docker: HAProxy replicas on the fleet network, each holding every
//! routed plugin's alias, configured from the pure [`crate::traffic`] room. Weight changes go
//! and servers coming and going go through the runtime API (no reload); a change of health
//! path or stickiness rewrites the configuration and reloads seamlessly (SIGUSR2 to HAProxy's
//! master: the listeners stay open, the old worker finishes its requests); a change of the
//! alias set (a plugin routed or not any more) replaces replicas start-first. A replica
//! that died or was removed is replaced on the next sync (drift healed like any instance).

use super::BackendError;
use crate::traffic::haproxy::{self, Command, RouterPorts};
use crate::traffic::{needs_reload, Route};
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
    UploadToContainerOptions,
};
use bollard::Docker;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ENGINE: &str = "Docker";
/// Label carrying the fleet a router replica belongs to.
pub const ROUTER_LABEL: &str = "plugsync.router";
/// Label carrying the aliases a replica was connected with (they cannot change in place).
const ALIASES_LABEL: &str = "plugsync.router.aliases";
/// How long a new replica may take to answer its health check.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a replica out of DNS keeps its address for clients that resolved it just before.
const DNS_DRAIN: Duration = Duration::from_millis(1500);
/// How long a replica being replaced keeps serving what it already accepted.
const SOFT_STOP: Duration = Duration::from_secs(5);

/// Which routes a sync brings: all of them, or one plugin's (a rollout's step).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Fleet,
    Plugin(&'a str),
}

/// What a sync did, for the narrator, tracing and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    pub created: u32,
    pub replaced: u32,
    pub removed: u32,
    pub reloaded: u32,
    pub runtime_updates: u32,
    /// Replicas running after the sync.
    pub running: u32,
}

impl Synced {
    pub fn changed(&self) -> bool {
        self.created + self.replaced + self.removed + self.reloaded + self.runtime_updates > 0
    }
}

/// One router replica as Docker shows it.
struct Replica {
    id: String,
    name: String,
    running: bool,
    address: Option<IpAddr>,
    aliases: String,
}

pub struct HaproxyRouter {
    docker: Docker,
    network: String,
    image: String,
    replicas: u32,
    ports: RouterPorts,
    /// Routes the running replicas were last given by this process; empty after a restart,
    /// which makes the first sync reload (the replicas' configuration is unknown then).
    applied: tokio::sync::Mutex<Option<Vec<Route>>>,
    /// Deletions of servers that still held connections, tried again at the next sync.
    pending: tokio::sync::Mutex<Vec<Command>>,
    known: tokio::sync::Mutex<BTreeMap<String, Route>>,
}

impl HaproxyRouter {
    pub fn new(docker: Docker, network: String, image: String, replicas: u32) -> Self {
        HaproxyRouter {
            docker,
            network,
            image,
            replicas: replicas.max(1),
            ports: RouterPorts::default(),
            applied: tokio::sync::Mutex::new(None),
            pending: tokio::sync::Mutex::new(Vec::new()),
            known: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    fn refused(&self, action: &'static str, subject: &str, e: bollard::errors::Error) -> BackendError {
        match e {
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                BackendError::Refused { engine: ENGINE, action, subject: subject.to_string(), detail: message }
            }
            other => BackendError::Unreachable { engine: ENGINE, endpoint: "docker".into(), detail: other.to_string() },
        }
    }

    // Long: one sync in its order (merge, remove-all, reconfigure, create, replace); split, the order would hide.
    /// Brings the fleet's router to `routes` (all routed plugins, or one plugin's for `scope`).
    pub async fn sync(&self, fleet: &str, routes: Vec<Route>, scope: Scope<'_>) -> Result<Synced, BackendError> {
        let mut known = self.known.lock().await;
        match scope {
            Scope::Fleet => *known = routes.into_iter().map(|r| (r.plugin.clone(), r)).collect(),
            Scope::Plugin(plugin) => {
                known.remove(plugin);
                known.extend(routes.into_iter().map(|r| (r.plugin.clone(), r)));
            }
        }
        let wanted: Vec<Route> = known.values().cloned().collect();
        let mut synced = Synced::default();
        let replicas = self.replicas(fleet).await?;
        if wanted.is_empty() {
            futures_util::future::join_all(replicas.iter().map(|r| self.stop(r))).await;
            synced.removed += replicas.len() as u32;
            *self.applied.lock().await = None;
            return Ok(synced);
        }
        let aliases = alias_key(&wanted);
        let config = haproxy::config(&wanted, &self.ports);
        let (current, stale): (Vec<&Replica>, Vec<&Replica>) =
            replicas.iter().partition(|r| r.running && r.address.is_some() && r.aliases == aliases);
        let mut applied = self.applied.lock().await;
        let reload = applied.as_ref().is_none_or(|old| needs_reload(old, &wanted));
        let mut pending = self.pending.lock().await;
        let mut commands: Vec<Command> = std::mem::take(&mut *pending);
        // Nothing changed since the last sync (most passes): no command at all.
        if let (false, Some(old)) = (reload, applied.as_ref().filter(|old| **old != wanted)) {
            commands.extend(haproxy::runtime_commands(old, &wanted));
        }
        for replica in &current {
            let address = replica.address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            let refused = match reload {
                true => None,
                false => self.send(replica, address, &commands, &mut pending).await,
            };
            if reload || refused.is_some() {
                if let Some(why) = refused {
                    tracing::warn!(replica = %replica.name, %why, "runtime API refused a change; reloading instead");
                }
                self.upload(&replica.id, &config).await?;
                self.signal(&replica.id, "SIGUSR2").await?;
                synced.reloaded += 1;
            } else if !commands.is_empty() {
                synced.runtime_updates += 1;
            }
        }
        pending.dedup();
        let missing = (self.replicas as usize).saturating_sub(current.len());
        for _ in 0..missing {
            self.create(fleet, &wanted, &config, &aliases).await?;
            synced.created += 1;
        }
        // Replaced replicas go only once their successors answer (start-first).
        let surplus = current.len().saturating_sub(self.replicas as usize);
        let leaving = stale.iter().chain(current.iter().take(surplus));
        futures_util::future::join_all(leaving.map(|r| self.stop(r))).await;
        synced.replaced += stale.len() as u32;
        synced.removed += surplus as u32;
        synced.created = synced.created.saturating_sub(synced.replaced);
        synced.running = (current.len() - surplus + missing) as u32;
        *applied = Some(wanted);
        Ok(synced)
    }

    /// Sends `commands` to one replica, one connection each. A deletion that must wait for
    /// connections to finish goes to `pending`; any other refusal is returned.
    async fn send(
        &self,
        replica: &Replica,
        address: IpAddr,
        commands: &[Command],
        pending: &mut Vec<Command>,
    ) -> Option<String> {
        for command in commands {
            let answer = match runtime(address, self.ports.api, &command.text).await {
                Ok(answer) => answer,
                Err(e) => return Some(format!("{}: {e}", command.text)),
            };
            match answer_of(&answer) {
                Answer::Done => {}
                Answer::Busy if command.may_wait => pending.push(command.clone()),
                Answer::Busy | Answer::Refused => {
                    return Some(format!("{} on {}: {}", command.text, replica.name, answer.trim()))
                }
            }
        }
        None
    }

    /// Request lines the fleet's router replicas logged since `since_ms` (Unix epoch ms),
    /// timestamps (Docker's) removed.
    pub async fn log_since(&self, fleet: &str, since_ms: u64) -> Result<Vec<String>, BackendError> {
        use futures_util::StreamExt;
        let mut lines = Vec::new();
        for replica in self.replicas(fleet).await? {
            let options = bollard::query_parameters::LogsOptions {
                stdout: true,
                timestamps: true,
                since: i32::try_from(since_ms / 1000).unwrap_or(i32::MAX),
                ..Default::default()
            };
            let mut stream = self.docker.logs(&replica.id, Some(options));
            while let Some(chunk) = stream.next().await {
                // A replica removed meanwhile has nothing more to say.
                let Ok(chunk) = chunk else { break };
                let text = chunk.to_string();
                lines.extend(text.lines().filter_map(|line| {
                    let (stamp, rest) = line.split_once(' ')?;
                    let at = chrono::DateTime::parse_from_rfc3339(stamp).ok()?.timestamp_millis();
                    (u64::try_from(at).ok()? >= since_ms).then(|| rest.to_string())
                }));
            }
        }
        Ok(lines)
    }

    /// The fleet's router replicas as the plan sees them.
    pub async fn observe(&self, fleet: &str) -> Result<Vec<crate::plan::observed::RouterReplica>, BackendError> {
        let mut out = Vec::new();
        for r in self.replicas(fleet).await? {
            // Its weights as it applies them; a replica that cannot answer shows none.
            let shares = match (r.running, r.address) {
                (true, Some(address)) => runtime(address, self.ports.api, "show servers state")
                    .await
                    .map(|answer| haproxy::shares_from_state(&answer))
                    .unwrap_or_default(),
                _ => Default::default(),
            };
            out.push(crate::plan::observed::RouterReplica {
                name: r.name,
                running: r.running && r.address.is_some(),
                aliases: r.aliases.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect(),
                shares,
            });
        }
        Ok(out)
    }

    /// The fleet's router replicas, running or not.
    async fn replicas(&self, fleet: &str) -> Result<Vec<Replica>, BackendError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{ROUTER_LABEL}={fleet}")])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.refused("list router replicas of fleet", fleet, e))?;
        Ok(listed
            .into_iter()
            .filter_map(|c| {
                let id = c.id?;
                let name = c.names.and_then(|n| n.into_iter().next()).unwrap_or_default();
                let running = c.state.is_some_and(|s| s.to_string() == "running");
                let address = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(&self.network))
                    .and_then(|e| e.ip_address)
                    .and_then(|ip| ip.parse().ok());
                let aliases = c.labels.and_then(|mut l| l.remove(ALIASES_LABEL)).unwrap_or_default();
                Some(Replica { id, name: name.trim_start_matches('/').to_string(), running, address, aliases })
            })
            .collect())
    }

    /// Creates a replica holding `aliases`, gives it `config`, starts it and waits until it
    /// answers its health check.
    async fn create(&self, fleet: &str, routes: &[Route], config: &str, aliases: &str) -> Result<(), BackendError> {
        self.ensure_image().await?;
        let name = format!("plugsync-router-{fleet}-{}", super::name_suffix());
        let labels = HashMap::from([
            (ROUTER_LABEL.to_string(), fleet.to_string()),
            (ALIASES_LABEL.to_string(), aliases.to_string()),
        ]);
        // No alias yet: a replica enters DNS only once it answers (see below).
        let endpoint = EndpointSettings::default();
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                restart_policy: Some(bollard::models::RestartPolicy {
                    name: Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(self.network.clone(), endpoint)])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created =
            self.docker.create_container(Some(options), body).await.map_err(|e| self.refused("create", &name, e))?;
        let started = async {
            self.upload(&created.id, config).await?;
            self.docker.start_container(&created.id, None).await.map_err(|e| self.refused("start", &name, e))?;
            let address = self.wait_ready(&created.id, &name).await?;
            let aliases = routes.iter().map(|r| r.plugin.clone()).collect();
            self.rejoin(&created.id, Some(aliases), Some(address)).await.map_err(|e| self.refused("connect", &name, e))
        };
        if let Err(e) = started.await {
            let remove = RemoveContainerOptions { force: true, ..Default::default() };
            let _ = self.docker.remove_container(&created.id, Some(remove)).await;
            return Err(e);
        }
        tracing::info!(replica = %name, "router replica started");
        Ok(())
    }

    async fn ensure_image(&self) -> Result<(), BackendError> {
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

    async fn upload(&self, id: &str, config: &str) -> Result<(), BackendError> {
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

    async fn signal(&self, id: &str, signal: &str) -> Result<(), BackendError> {
        let options = KillContainerOptions { signal: signal.to_string() };
        self.docker.kill_container(id, Some(options)).await.map_err(|e| self.refused("signal router", id, e))
    }

    /// Reconnects a replica to the fleet network with `aliases` (none: out of DNS), keeping
    /// its address: Docker cannot change an endpoint's aliases in place.
    async fn rejoin(
        &self,
        id: &str,
        aliases: Option<Vec<String>>,
        address: Option<IpAddr>,
    ) -> Result<(), bollard::errors::Error> {
        use bollard::models::{EndpointIpamConfig, NetworkConnectRequest, NetworkDisconnectRequest};
        let disconnect = NetworkDisconnectRequest { container: id.to_string(), force: Some(true) };
        self.docker.disconnect_network(&self.network, disconnect).await?;
        let endpoint = EndpointSettings {
            aliases,
            ipam_config: address
                .map(|ip| EndpointIpamConfig { ipv4_address: Some(ip.to_string()), ..Default::default() }),
            ..Default::default()
        };
        let connect = NetworkConnectRequest { container: id.to_string(), endpoint_config: Some(endpoint) };
        self.docker.connect_network(&self.network, connect).await
    }

    /// Waits until a new replica answers its health check; its address on the fleet network.
    async fn wait_ready(&self, id: &str, name: &str) -> Result<IpAddr, BackendError> {
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
                    action: "start router",
                    subject: name.to_string(),
                    detail: format!("no answer on /healthz after {READY_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes a replica out of DNS but keeps its address for a drain (clients that resolved
    /// the alias a moment ago still reach it), then lets it finish what it accepted (soft
    /// stop) and removes it.
    async fn stop(&self, replica: &Replica) {
        if replica.running {
            if self.rejoin(&replica.id, None, replica.address).await.is_ok() {
                tokio::time::sleep(DNS_DRAIN).await;
            }
            let _ = self.signal(&replica.id, "SIGUSR1").await;
            let deadline = Instant::now() + SOFT_STOP;
            while Instant::now() < deadline {
                let running = self
                    .docker
                    .inspect_container(&replica.id, None)
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
        let _ = self.docker.remove_container(&replica.id, Some(remove)).await;
        tracing::info!(replica = %replica.name, "router replica removed");
    }
}

/// The aliases a replica must hold, as one label value.
fn alias_key(routes: &[Route]) -> String {
    routes.iter().map(|r| r.plugin.as_str()).collect::<Vec<_>>().join(",")
}

enum Answer {
    Done,
    /// Not now: a server still holds connections.
    Busy,
    Refused,
}

/// What HAProxy's answer to one command means. Success is silence or one of its fixed
/// sentences; a server already added or already gone is what was asked for.
fn answer_of(answer: &str) -> Answer {
    let answer = answer.trim();
    let done =
        ["New server registered.", "Server deleted.", "Already exists a server with the same name", "No such server"];
    if answer.is_empty() || done.iter().any(|d| answer.starts_with(d)) {
        Answer::Done
    } else if answer.contains("still") || answer.contains("connections") {
        Answer::Busy
    } else {
        Answer::Refused
    }
}

/// Sends one runtime API command and returns HAProxy's answer.
async fn runtime(address: IpAddr, port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect((address, port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "runtime API did not answer"))??;
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut answer))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "runtime API did not finish"))??;
    Ok(answer)
}
