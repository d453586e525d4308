//! The fleet's router on Docker: HAProxy replicas on the fleet network, each holding every
//! routed plugin's alias, configured from the pure [`crate::traffic`] room. Weight changes go
//! and servers coming and going go through the runtime API (no reload); a change of health
//! path or stickiness rewrites the configuration and reloads seamlessly (SIGUSR2 to HAProxy's
//! master: the listeners stay open, the old worker finishes its requests); a change of the
//! alias set (a plugin routed or not any more) replaces replicas start-first. A replica
//! that died or was removed is replaced on the next sync (drift healed like any instance).

use super::haproxy_container::HaproxyContainers;
use super::BackendError;
use crate::traffic::haproxy::{self, Command, RouterPorts};
use crate::traffic::{needs_reload, Route};
use bollard::models::{EndpointSettings, HostConfig};
use bollard::Docker;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Label carrying the fleet a router replica belongs to.
pub const ROUTER_LABEL: &str = "plugsync.router";
/// Label carrying the aliases a replica was connected with (they cannot change in place).
const ALIASES_LABEL: &str = "plugsync.router.aliases";
/// How long a replica out of DNS keeps its address for clients that resolved it just before.
const DNS_DRAIN: Duration = Duration::from_millis(1500);

/// Which routes a sync brings: all of them, or one plugin's (a rollout's step).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every routed plugin, and the fleet's edge gateway as its settings say (none: no gateway).
    Fleet {
        gateway: Option<&'a crate::model::routing::Gateway>,
    },
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
    /// What the edge gateway did, when the fleet has one.
    pub gateway: super::gateway::GatewaySynced,
}

impl Synced {
    pub fn changed(&self) -> bool {
        self.created + self.replaced + self.removed + self.reloaded + self.runtime_updates > 0
            || self.gateway != super::gateway::GatewaySynced::Unchanged
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
    engine: HaproxyContainers,
    replicas: u32,
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
            engine: HaproxyContainers { docker, network, image, ports: RouterPorts::default() },
            replicas: replicas.max(1),
            applied: tokio::sync::Mutex::new(None),
            pending: tokio::sync::Mutex::new(Vec::new()),
            known: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    // Long: one sync in its order (merge, remove-all, reconfigure, create, replace); split, the order would hide.
    /// Brings the fleet's router to `routes` (all routed plugins, or one plugin's for `scope`).
    pub async fn sync(&self, fleet: &str, routes: Vec<Route>, scope: Scope<'_>) -> Result<Synced, BackendError> {
        let mut known = self.known.lock().await;
        match scope {
            Scope::Fleet { .. } => *known = routes.into_iter().map(|r| (r.plugin.clone(), r)).collect(),
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
        let config = haproxy::config(&wanted, &self.engine.ports);
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
                self.engine.upload(&replica.id, &config).await?;
                self.engine.signal(&replica.id, "SIGUSR2").await?;
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
            let answer = match runtime(address, self.engine.ports.api, &command.text).await {
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
            let mut stream = self.engine.docker.logs(&replica.id, Some(options));
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
                (true, Some(address)) => runtime(address, self.engine.ports.api, "show servers state")
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
        let listed = self.engine.list(format!("{ROUTER_LABEL}={fleet}"), "list the router replicas of fleet").await?;
        Ok(listed
            .into_iter()
            .map(|mut c| Replica {
                aliases: c.labels.remove(ALIASES_LABEL).unwrap_or_default(),
                id: c.id,
                name: c.name,
                running: c.running,
                address: c.address,
            })
            .collect())
    }

    /// Creates a replica holding `aliases`, gives it `config`, starts it and, once it answers
    /// its health check, lets it join DNS under the routed plugins' names.
    async fn create(&self, fleet: &str, routes: &[Route], config: &str, aliases: &str) -> Result<(), BackendError> {
        let name = format!("plugsync-router-{fleet}-{}", super::name_suffix());
        let labels = HashMap::from([
            (ROUTER_LABEL.to_string(), fleet.to_string()),
            (ALIASES_LABEL.to_string(), aliases.to_string()),
        ]);
        // No alias yet: a replica enters DNS only once it answers.
        let (id, address) = self.engine.start(&name, labels, (HostConfig::default(), Vec::new()), config).await?;
        let aliases = routes.iter().map(|r| r.plugin.clone()).collect();
        if let Err(e) = self.rejoin(&id, Some(aliases), Some(address)).await {
            self.engine.soft_stop(&id, false).await;
            return Err(self.engine.refused("connect", &name, e));
        }
        tracing::info!(replica = %name, "router replica started");
        Ok(())
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
        self.engine.docker.disconnect_network(&self.engine.network, disconnect).await?;
        let endpoint = EndpointSettings {
            aliases,
            ipam_config: address
                .map(|ip| EndpointIpamConfig { ipv4_address: Some(ip.to_string()), ..Default::default() }),
            ..Default::default()
        };
        let connect = NetworkConnectRequest { container: id.to_string(), endpoint_config: Some(endpoint) };
        self.engine.docker.connect_network(&self.engine.network, connect).await
    }

    /// Takes a replica out of DNS but keeps its address for a drain (clients that resolved
    /// the alias a moment ago still reach it), then lets it finish what it accepted (soft
    /// stop) and removes it.
    async fn stop(&self, replica: &Replica) {
        if replica.running && self.rejoin(&replica.id, None, replica.address).await.is_ok() {
            tokio::time::sleep(DNS_DRAIN).await;
        }
        self.engine.soft_stop(&replica.id, replica.running).await;
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
