//! The Docker engine backend (bollard). Instances are containers on the fleet's network;
//! serving instances carry the plugin id as network alias.

use super::gateway::EdgeGateway;
use super::router::{HaproxyRouter, Scope, Synced};
use super::{Backend, BackendError, StartRequest};
use crate::plan::drift::Squatter;
use crate::plan::observed::labels;
use crate::plan::observed::Runtime;
use crate::plan::{Instance, InstanceSpec, Observed, RunState, Slot};
use crate::traffic::Route;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;
use futures_util::future::join_all;
use std::collections::HashMap;

const ENGINE: &str = "Docker";
/// How long a retired instance keeps its address after leaving DNS before it stops.
const DRAIN: std::time::Duration = std::time::Duration::from_millis(1500);
/// The same behind the router: no client resolved the instance; the executor took it out of
/// the router's configuration before, and this covers requests the router sent just before.
const ROUTED_DRAIN: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether an instance sits behind the router (which takes it out of traffic by itself).
fn is_routed(instance: &Instance) -> bool {
    instance.spec.as_ref().is_some_and(|s| s.routed)
}

pub struct DockerBackend {
    docker: Docker,
    endpoint: String,
    network: String,
    router: HaproxyRouter,
    /// The edge gateway, when the fleet's `traffic.gateway` asks for one.
    gateway: EdgeGateway,
}

impl DockerBackend {
    /// Connects to `host` (`unix:///…`, `tcp://…`) or the local default (honouring
    /// DOCKER_HOST), negotiating the API version with the engine.
    pub async fn connect(host: Option<&str>, network: String) -> Result<Self, BackendError> {
        let endpoint = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let unreachable =
            |detail: String| BackendError::Unreachable { engine: ENGINE, endpoint: endpoint.clone(), detail };
        let docker = match host {
            Some(h) if h.starts_with("unix://") => Docker::connect_with_socket(h, 30, bollard::API_DEFAULT_VERSION),
            Some(h) => Docker::connect_with_http(h, 30, bollard::API_DEFAULT_VERSION),
            None => Docker::connect_with_local_defaults(),
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let docker = docker.negotiate_version().await.map_err(|e| unreachable(e.to_string()))?;
        docker.ping().await.map_err(|e| unreachable(e.to_string()))?;
        let router = HaproxyRouter::new(docker.clone(), network.clone(), default_router_image(), 2);
        let gateway = EdgeGateway::new(docker.clone(), network.clone(), default_router_image(), 2);
        Ok(DockerBackend { docker, endpoint, network, router, gateway })
    }

    /// The fleet's router settings (`traffic:`): its image, replica count and edge gateway.
    pub fn with_router(mut self, traffic: &crate::model::routing::FleetTraffic) -> Self {
        self.router =
            HaproxyRouter::new(self.docker.clone(), self.network.clone(), traffic.image.clone(), traffic.replicas);
        self.gateway =
            EdgeGateway::new(self.docker.clone(), self.network.clone(), traffic.image.clone(), traffic.replicas);
        self
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    fn refused(&self, action: &'static str, subject: impl Into<String>, e: bollard::errors::Error) -> BackendError {
        match e {
            bollard::errors::Error::DockerResponseServerError { status_code: 404, .. } => {
                BackendError::NotFound { engine: ENGINE, action, subject: subject.into(), source: Box::new(e) }
            }
            bollard::errors::Error::DockerResponseServerError { status_code, .. } if status_code >= 500 => {
                BackendError::Engine { engine: ENGINE, action, subject: subject.into(), source: Box::new(e) }
            }
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                BackendError::Refused { engine: ENGINE, action, subject: subject.into(), detail: message }
            }
            other => {
                BackendError::Unreachable { engine: ENGINE, endpoint: self.endpoint.clone(), detail: other.to_string() }
            }
        }
    }

    /// Creates the fleet network once; an existing network of that name is used as is.
    /// The network gets an explicit subnet (the one Docker would pick) so an instance can
    /// leave or join traffic while keeping its address: see [`DockerBackend::retire`].
    pub async fn ensure_network(&self, fleet: &str) -> Result<(), BackendError> {
        if self.docker.inspect_network(&self.network, None).await.is_ok() {
            return Ok(());
        }
        let labels = Some(HashMap::from([(labels::FLEET.to_string(), fleet.to_string())]));
        let request = |ipam| NetworkCreateRequest {
            name: self.network.clone(),
            driver: Some("bridge".into()),
            labels: labels.clone(),
            ipam,
            ..Default::default()
        };
        // Let Docker choose a free subnet, then pin it.
        let created = self.docker.create_network(request(None)).await;
        let picked = match created {
            Ok(_) => self
                .docker
                .inspect_network(&self.network, None)
                .await
                .ok()
                .and_then(|n| n.ipam)
                .and_then(|i| i.config)
                .and_then(|c| c.into_iter().next()),
            // Lost a race with a concurrent creator: fine.
            Err(_) if self.docker.inspect_network(&self.network, None).await.is_ok() => return Ok(()),
            Err(e) => return Err(self.refused("create network", &self.network, e)),
        };
        let Some(config) = picked.filter(|c| c.subnet.is_some()) else { return Ok(()) };
        let _ = self.docker.remove_network(&self.network).await;
        let ipam = Ipam {
            config: Some(vec![IpamConfig { subnet: config.subnet, gateway: config.gateway, ..Default::default() }]),
            ..Default::default()
        };
        match self.docker.create_network(request(Some(ipam))).await {
            Ok(_) => Ok(()),
            Err(_) if self.docker.inspect_network(&self.network, None).await.is_ok() => Ok(()),
            Err(e) => Err(self.refused("create network", &self.network, e)),
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, BackendError> {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.refused("inspect container", id, e))
    }

    fn instance(&self, inspect: ContainerInspectResponse) -> Option<Instance> {
        instance_of(inspect, &self.network)
    }
}

/// An instance rebuilt from what Docker says of a container (labels, state, network), pure.
/// Labels and state are outside input: anything unexpected gives `None` or defaults.
pub fn instance_of(inspect: ContainerInspectResponse, network: &str) -> Option<Instance> {
    let config = inspect.config?;
    let image = config.image.clone().unwrap_or_default();
    let env = config.env.clone().unwrap_or_default();
    let host = inspect.host_config.clone().unwrap_or_default();
    let label = config.labels?;
    let get = |k: &str| label.get(k).cloned().unwrap_or_default();
    let state = inspect.state.unwrap_or_default();
    let status = state.status.map(|s| s.to_string()).unwrap_or_default();
    let endpoint = inspect.network_settings.and_then(|n| n.networks).and_then(|mut n| n.remove(network));
    let plugin = get(labels::PLUGIN);
    let routed = routed_alias(&plugin);
    let serving =
        endpoint.as_ref().and_then(|e| e.aliases.as_ref()).is_some_and(|a| a.contains(&plugin) || a.contains(&routed));
    let on_network = endpoint.is_some();
    let address = endpoint.and_then(|e| e.ip_address).filter(|ip| !ip.is_empty()).and_then(|ip| ip.parse().ok());
    let mut run_state = RunState::parse(&status);
    if run_state == RunState::Running && address.is_none() {
        // Running but on no fleet network (a crash between detach and attach): nobody can
        // reach it, so it is as good as dead and gets replaced.
        run_state = RunState::Dead;
    }
    let spec = serde_json::from_str::<InstanceSpec>(&get(labels::SPEC)).ok();
    let runtime = Runtime {
        image: crate::model::image::normalise(&image),
        // Only what the spec sets: the image's own ENV is not drift, secrets never shown.
        env: env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| spec.as_ref().is_some_and(|s| s.env.contains_key(*k)))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        nano_cpus: host.nano_cpus.filter(|n| *n > 0),
        memory: host.memory.filter(|m| *m > 0),
        on_network,
        status: status.clone(),
        exit_code: state.exit_code,
    };
    Some(Instance {
        id: inspect.id?,
        name: inspect.name.unwrap_or_default().trim_start_matches('/').to_string(),
        slot: Slot::parse(&get(labels::SLOT)).unwrap_or(Slot::Stable),
        version: get(labels::VERSION),
        spec_hash: get(labels::SPEC_HASH),
        spec,
        revision: get(labels::REVISION),
        state: run_state,
        serving,
        address,
        ready: None,
        oom_killed: state.oom_killed.unwrap_or(false),
        restart_count: inspect.restart_count.unwrap_or(0).max(0) as u32,
        image_id: inspect.image.filter(|i| !i.is_empty()),
        runtime: Some(runtime),
        plugin,
    })
}

impl DockerBackend {
    /// Connects with or without the alias, keeping `address` when the network allows it.
    async fn attach(
        &self,
        id: &str,
        alias: Option<&str>,
        address: Option<std::net::IpAddr>,
    ) -> Result<(), BackendError> {
        let endpoint = |address: Option<std::net::IpAddr>| EndpointSettings {
            aliases: alias.map(|a| vec![a.to_string()]),
            ipam_config: address
                .map(|ip| EndpointIpamConfig { ipv4_address: Some(ip.to_string()), ..Default::default() }),
            ..Default::default()
        };
        let connect =
            |address| NetworkConnectRequest { container: id.to_string(), endpoint_config: Some(endpoint(address)) };
        match self.docker.connect_network(&self.network, connect(address)).await {
            Ok(()) => Ok(()),
            // A network without a pinned subnet cannot keep the address: take a new one.
            Err(_) if address.is_some() => self
                .docker
                .connect_network(&self.network, connect(None))
                .await
                .map_err(|e| self.refused("connect", id, e)),
            Err(e) => Err(self.refused("connect", id, e)),
        }
    }

    async fn detach(&self, id: &str) -> Result<(), BackendError> {
        let request = NetworkDisconnectRequest { container: id.to_string(), force: Some(true) };
        self.docker.disconnect_network(&self.network, request).await.map_err(|e| self.refused("disconnect", id, e))
    }
}

/// Unique enough container-name suffix without a random-number crate.
fn default_router_image() -> String {
    crate::model::routing::FleetTraffic::default().image
}

/// The alias a serving instance behind the router carries: the router holds the plugin's
/// own, and finds its servers by address. Plugin ids have no dots, so it names no plugin.
pub fn routed_alias(plugin: &str) -> String {
    format!("served.{plugin}")
}

/// The alias that puts `spec`'s instance into traffic.
fn serving_alias(spec: &InstanceSpec) -> String {
    if spec.routed {
        routed_alias(&spec.plugin)
    } else {
        spec.plugin.clone()
    }
}

fn create_body(request: &StartRequest<'_>, network: &str) -> ContainerCreateBody {
    let spec = request.spec;
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(request.secrets.0.iter().map(|(k, v)| format!("{k}={v}")));
    let spec_json = serde_json::to_string(spec).unwrap_or_default();
    let labels = HashMap::from([
        (labels::FLEET.to_string(), request.fleet.to_string()),
        (labels::PLUGIN.to_string(), spec.plugin.clone()),
        (labels::VERSION.to_string(), spec.version.clone()),
        (labels::REVISION.to_string(), request.revision.to_string()),
        (labels::SPEC_HASH.to_string(), request.hash.to_string()),
        (labels::SLOT.to_string(), request.slot.as_str().to_string()),
        (labels::SPEC.to_string(), spec_json),
    ]);
    let host_config = HostConfig {
        nano_cpus: spec.cpu.map(|c| c.nano_cpus()),
        memory: spec.memory.map(|m| m.bytes() as i64),
        memory_reservation: spec.memory_reservation.map(|m| m.bytes() as i64),
        // Docker has no CPU reservation; relative shares are its closest equivalent.
        cpu_shares: spec.cpu_reservation.map(|c| ((c.millis() * 1024) / 1000).max(2) as i64),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        network_mode: Some(network.to_string()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(env),
        entrypoint: spec.command.clone(),
        cmd: spec.args.clone(),
        labels: Some(labels),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_string(),
                EndpointSettings { aliases: request.serve.then(|| vec![serving_alias(spec)]), ..Default::default() },
            )])),
        }),
        ..Default::default()
    }
}

impl Backend for DockerBackend {
    async fn prepare(&self, fleet: &str) -> Result<(), BackendError> {
        self.ensure_network(fleet).await
    }

    async fn observe(&self, fleet: &str, plugin: Option<&str>) -> Result<Observed, BackendError> {
        let mut selectors = vec![format!("{}={fleet}", labels::FLEET)];
        selectors.extend(plugin.map(|p| format!("{}={p}", labels::PLUGIN)));
        let filters = HashMap::from([("label".to_string(), selectors)]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.refused("list containers of fleet", fleet, e))?;
        let listed: Vec<(String, String)> = summaries
            .into_iter()
            .filter_map(|s| {
                let plugin = s.labels.as_ref().and_then(|l| l.get(labels::PLUGIN)).cloned().unwrap_or_default();
                Some((s.id?, plugin))
            })
            .collect();
        let inspected = join_all(listed.iter().map(|(id, _)| self.inspect(id))).await;
        let mut observed = Observed::default();
        for (result, (_, plugin)) in inspected.into_iter().zip(listed) {
            match result {
                Ok(i) => observed.instances.extend(self.instance(i)),
                // Removed between list and inspect: it is gone, which is what observe reports.
                Err(BackendError::NotFound { .. }) => {}
                // Anything else says nothing about the container: its plugin is unobserved
                // this pass, and nothing is planned for it.
                Err(e @ (BackendError::Engine { .. } | BackendError::Refused { .. })) => {
                    tracing::warn!(plugin, error = %e, "instance could not be inspected");
                    observed.unobserved.entry(plugin).or_insert_with(|| e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        observed.instances.sort_by(|a, b| (&a.plugin, &a.name).cmp(&(&b.plugin, &b.name)));
        if plugin.is_none() {
            observed.routers = self.router.observe(fleet).await?;
            observed.gateways = self.gateway.observe(fleet).await?;
        }
        Ok(observed)
    }

    async fn start(&self, request: StartRequest<'_>) -> Result<Instance, BackendError> {
        let name = format!("{}-{}-{}-{}", request.fleet, request.spec.plugin, request.slot, super::name_suffix());
        let body = create_body(&request, &self.network);
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.refused("create container", &name, e))?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = self
                .docker
                .remove_container(&created.id, Some(RemoveContainerOptions { force: true, ..Default::default() }))
                .await;
            return Err(self.refused("start container", &name, e));
        }
        let inspected = self.inspect(&created.id).await?;
        self.instance(inspected).ok_or_else(|| BackendError::Refused {
            engine: ENGINE,
            action: "report",
            subject: name,
            detail: "the new container has no labels".into(),
        })
    }

    async fn squatters(&self, fleet: &str) -> Result<Vec<Squatter>, BackendError> {
        // Names plugsync gives: `<fleet>-<plugin>-<slot>-<suffix>`.
        let filters = HashMap::from([("name".to_string(), vec![format!("^/{fleet}-")])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.refused("list containers named after fleet", fleet, e))?;
        Ok(found
            .into_iter()
            // Any plugsync container (this fleet's or another's, e.g. fleet `<fleet>-eu`) is no squatter.
            .filter(|c| c.labels.as_ref().is_none_or(|l| !l.contains_key(labels::FLEET)))
            .filter_map(|c| {
                let name = c.names?.into_iter().next()?.trim_start_matches('/').to_string();
                let rest = name.strip_prefix(&format!("{fleet}-"))?;
                let mut parts: Vec<&str> = rest.rsplitn(3, '-').collect();
                let plugin = parts.pop().filter(|_| parts.len() == 2)?.to_string();
                Slot::parse(parts[1])?;
                Some(Squatter { name, plugin })
            })
            .collect())
    }

    async fn route(&self, fleet: &str, routes: Vec<Route>, scope: Scope<'_>) -> Result<Synced, BackendError> {
        // A pass over the whole fleet brings the gateway too; a rollout's step never changes
        // a base path, and the gateway forwards by name, so weights need nothing from it.
        let gateway = match scope {
            Scope::Fleet { gateway } => Some((gateway, routes.clone())),
            Scope::Plugin(_) => None,
        };
        let mut synced = self.router.sync(fleet, routes, scope).await?;
        if let Some((settings, routes)) = gateway {
            synced.gateway = self.gateway.sync(fleet, settings, &routes).await?;
        }
        Ok(synced)
    }

    async fn router_log(&self, fleet: &str, since_ms: u64) -> Result<Vec<String>, BackendError> {
        self.router.log_since(fleet, since_ms).await
    }

    async fn serve(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        // Docker cannot add an alias to a connected endpoint: reconnect with it, same address.
        self.detach(&instance.id).await?;
        let alias = instance.spec.as_ref().map_or_else(|| instance.plugin.clone(), serving_alias);
        self.attach(&instance.id, Some(&alias), instance.address).await
    }

    async fn unserve(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        self.detach(&instance.id).await?;
        self.attach(&instance.id, None, instance.address).await
    }

    async fn park(&self, fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        if instance.serving && is_routed(instance) {
            // The router sends it nothing any more: requests in flight finish, then the mark goes.
            tokio::time::sleep(ROUTED_DRAIN).await;
            self.unserve(fleet, instance).await?;
        } else if instance.serving {
            self.unserve(fleet, instance).await?;
            tokio::time::sleep(DRAIN).await;
        }
        let stop = StopContainerOptions { t: Some(5), ..Default::default() };
        self.docker
            .stop_container(&instance.id, Some(stop))
            .await
            .map_err(|e| self.refused("stop container", &instance.name, e))
    }

    async fn retire(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        if instance.serving && instance.is_running() && is_routed(instance) {
            // The router sends it nothing any more: requests in flight finish.
            tokio::time::sleep(ROUTED_DRAIN).await;
        } else if instance.serving && instance.is_running() {
            // Out of DNS first but still reachable at its address, so clients that resolved
            // the alias a moment ago and requests in flight finish; then it stops.
            if self.detach(&instance.id).await.is_ok() {
                let _ = self.attach(&instance.id, None, instance.address).await;
                tokio::time::sleep(DRAIN).await;
            }
        }
        let stop = StopContainerOptions { t: Some(5), ..Default::default() };
        let _ = self.docker.stop_container(&instance.id, Some(stop)).await;
        let remove = RemoveContainerOptions { force: true, ..Default::default() };
        match self.docker.remove_container(&instance.id, Some(remove)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.refused("remove container", &instance.name, e)),
        }
    }
}
