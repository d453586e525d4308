//! The Kubernetes backend (kube). An instance is a pod of a Deployment that holds one plugin,
//! slot and spec (`<id>-stable`, `<id>-canary`, …; a second spec in a slot during a rollout
//! gets `<id>-<slot>-<hash>`). Starting instances scales that Deployment up; retiring one
//! deletes that very pod and scales its Deployment down in the same breath, so the
//! ReplicaSet replaces nothing and picks no other pod. Traffic is the pod label
//! `plugsync.serving`, which the plugin's Service selects: the strategies decide per pod,
//! exactly as they decide per container on Docker, so every strategy runs unchanged.
//!
//! Pods the ReplicaSet has not created yet are reported as starting instances ("seats"), so
//! a strategy never starts them twice; blue-green's parked environment is a count on its
//! Deployment (scaled to zero, spec kept), reported as stopped instances.

// Over 600 lines: the Backend trait for Kubernetes, one engine call per method; object builders are in objects.rs.

pub mod objects;

use super::{Backend, BackendError, StartRequest};
use crate::plan::observed::labels;
use crate::plan::{Instance, InstanceSpec, Observed, RunState, Slot};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use objects::{MEMBER, PARKED, SERVING};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const ENGINE: &str = "Kubernetes";
const MANAGER: &str = "plugsync";
/// How long a retiring pod stays out of the Service's endpoints before it is deleted.
const DRAIN: Duration = Duration::from_millis(1000);
/// How long the ReplicaSet controller gets to release a pod leaving it.
const RELEASE_WAIT: Duration = Duration::from_secs(15);
/// Optimistic-concurrency retries on a Deployment another writer changed meanwhile.
const CONFLICT_RETRIES: usize = 20;
/// Instance-id prefixes of what is not a pod: a replica the ReplicaSet has yet to create,
/// and a parked replica of a blue-green previous environment.
const SEAT: &str = "seat:";
const PARKED_SEAT: &str = "parked:";

pub struct KubernetesBackend {
    client: kube::Client,
    namespace: String,
    endpoint: String,
    requests: AtomicU64,
}

impl KubernetesBackend {
    /// Connects with the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the in-cluster
    /// service account, and checks the API server answers. `namespace` overrides the
    /// context's namespace.
    pub async fn connect(namespace: Option<&str>) -> Result<Self, BackendError> {
        let unreachable =
            |endpoint: String, detail: String| BackendError::Unreachable { engine: ENGINE, endpoint, detail };
        let config = kube::Config::infer()
            .await
            .map_err(|e| unreachable("(no kubeconfig or in-cluster config)".into(), e.to_string()))?;
        let endpoint = config.cluster_url.to_string();
        let namespace = namespace.map(str::to_string).unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| unreachable(endpoint.clone(), e.to_string()))?;
        client.apiserver_version().await.map_err(|e| unreachable(endpoint.clone(), e.to_string()))?;
        Ok(KubernetesBackend { client, namespace, endpoint, requests: AtomicU64::new(1) })
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// API requests made so far (for the no-change cost in the benchmarks and the logs).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        self.requests.fetch_add(1, Ordering::Relaxed);
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn refused(&self, action: &'static str, subject: impl Into<String>, e: kube::Error) -> BackendError {
        let subject = format!("{} in namespace {}", subject.into(), self.namespace);
        match e {
            kube::Error::Api(ref status) if status.code == 404 => {
                BackendError::NotFound { engine: ENGINE, action, subject, source: Box::new(e) }
            }
            kube::Error::Api(ref status) if status.code >= 500 => {
                BackendError::Engine { engine: ENGINE, action, subject, source: Box::new(e) }
            }
            kube::Error::Api(status) => BackendError::Refused {
                engine: ENGINE,
                action,
                subject,
                detail: format!("{} ({})", status.message, status.code),
            },
            other => {
                BackendError::Unreachable { engine: ENGINE, endpoint: self.endpoint.clone(), detail: other.to_string() }
            }
        }
    }

    /// Server-side apply of one object plugsync owns, after checking that an object of that
    /// name, if any, is plugsync's: a foreign object is never taken over.
    async fn apply_owned<K>(&self, name: &str, fleet: &str, body: serde_json::Value) -> Result<K, BackendError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let kind = K::kind(&Default::default()).to_string();
        let api: Api<K> = self.api();
        if let Some(existing) =
            api.get_opt(name).await.map_err(|e| self.refused("read", format!("{kind} {name}"), e))?
        {
            let owner = existing.meta().labels.as_ref().and_then(|l| l.get(labels::FLEET)).cloned();
            if owner.as_deref() != Some(objects::label_value(fleet).as_str()) {
                return Err(BackendError::Refused {
                    engine: ENGINE,
                    action: "take over",
                    subject: format!("{kind} {name} in namespace {}", self.namespace),
                    detail: format!(
                        "it exists and is not plugsync's (label {} is {:?}, expected {fleet:?}); rename or remove it",
                        labels::FLEET,
                        owner.unwrap_or_default()
                    ),
                });
            }
        }
        let params = PatchParams::apply(MANAGER).force();
        self.api::<K>()
            .patch(name, &params, &Patch::Apply(body))
            .await
            .map_err(|e| self.refused("apply", format!("{kind} {name}"), e))
    }

    /// Changes a Deployment's replicas and parked count with optimistic concurrency (the
    /// resourceVersion travels in the patch), so concurrent retirements never lose one.
    /// Deletes the Deployment once nothing is left of it. Returns whether it is gone.
    async fn adjust(&self, name: &str, replicas: i64, parked: i64) -> Result<bool, BackendError> {
        self.scale(name, replicas, parked, true).await
    }

    /// [`Self::adjust`], keeping an emptied Deployment when `delete_empty` is false.
    async fn scale(&self, name: &str, replicas: i64, parked: i64, delete_empty: bool) -> Result<bool, BackendError> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(current) = self
                .api::<Deployment>()
                .get_opt(name)
                .await
                .map_err(|e| self.refused("read", format!("Deployment {name}"), e))?
            else {
                return Ok(true);
            };
            let have = i64::from(current.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0));
            let have_parked = parked_count(&current) as i64;
            let (want, want_parked) = ((have + replicas).max(0), (have_parked + parked).max(0));
            if want == 0 && want_parked == 0 && delete_empty {
                self.delete_deployment(name, &current).await?;
                return Ok(true);
            }
            let patch = json!({
                "metadata": {
                    "resourceVersion": current.metadata.resource_version,
                    "annotations": { PARKED: want_parked.to_string() },
                },
                "spec": { "replicas": want },
            });
            match self.api::<Deployment>().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(false),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => return Err(self.refused("scale", format!("Deployment {name}"), e)),
            }
        }
        Err(BackendError::Refused {
            engine: ENGINE,
            action: "scale",
            subject: format!("Deployment {name}"),
            detail: format!("it kept changing under plugsync ({CONFLICT_RETRIES} conflicts in a row)"),
        })
    }

    /// Deletes a Deployment (its ReplicaSets, pods, ConfigMap and Secret follow through their
    /// owner references) and the plugin's Service when no Deployment of the plugin remains.
    async fn delete_deployment(&self, name: &str, deployment: &Deployment) -> Result<(), BackendError> {
        let params = DeleteParams::background();
        match self.api::<Deployment>().delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(self.refused("delete", format!("Deployment {name}"), e)),
        }
        let get = |k: &str| deployment.metadata.labels.as_ref().and_then(|l| l.get(k)).cloned().unwrap_or_default();
        let (fleet, plugin) = (get(labels::FLEET), get(labels::PLUGIN));
        let remaining = self
            .api::<Deployment>()
            .list_metadata(&ListParams::default().labels(&objects::plugin_selector(&fleet, Some(&plugin))))
            .await
            .map_err(|e| self.refused("list", format!("Deployments of {plugin}"), e))?;
        if remaining.items.iter().all(|d| d.metadata.name.as_deref() == Some(name)) {
            let service = objects::service_name(&plugin);
            match self.api::<Service>().get_opt(&service).await {
                Ok(Some(s)) if s.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)) == Some(&fleet) => {
                    match self.api::<Service>().delete(&service, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(status)) if status.code == 404 => {}
                        Err(e) => return Err(self.refused("delete", format!("Service {service}"), e)),
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(self.refused("read", format!("Service {service}"), e)),
            }
        }
        Ok(())
    }

    async fn label_serving(&self, instance: &Instance, serving: bool) -> Result<(), BackendError> {
        if !is_pod(instance) {
            return Ok(());
        }
        let patch = json!({ "metadata": { "labels": { SERVING: serving.to_string() } } });
        match self.api::<Pod>().patch(&instance.id, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 && !serving => Ok(()),
            Err(e) => Err(self.refused(if serving { "serve" } else { "unserve" }, format!("pod {}", instance.id), e)),
        }
    }

    /// The Deployment an instance belongs to: the seat names it, a pod's labels find it.
    async fn deployment_of(&self, fleet: &str, instance: &Instance) -> Result<Option<String>, BackendError> {
        if let Some(rest) = instance.id.strip_prefix(SEAT).or_else(|| instance.id.strip_prefix(PARKED_SEAT)) {
            return Ok(rest.split(':').next().map(str::to_string));
        }
        let deployments = self.deployments(fleet, Some(&instance.plugin)).await?;
        Ok(deployments
            .into_iter()
            .find(|d| group_of(d) == Some((instance.slot, instance.spec_hash.clone())))
            .and_then(|d| d.metadata.name))
    }

    async fn deployments(&self, fleet: &str, plugin: Option<&str>) -> Result<Vec<Deployment>, BackendError> {
        let params = ListParams::default().labels(&objects::plugin_selector(fleet, plugin));
        Ok(self
            .api::<Deployment>()
            .list(&params)
            .await
            .map_err(|e| self.refused("list", format!("Deployments of fleet {fleet}"), e))?
            .items)
    }

    /// Takes one given pod away from its Deployment without the ReplicaSet choosing another:
    /// the pod leaves the Deployment's selector (`plugsync.member=retiring`), plugsync waits
    /// until the ReplicaSet has released it (so the controller has seen the change), then
    /// lowers the replicas, which removes only the replacement the ReplicaSet may have begun
    /// (unscheduled or unready pods go first), and finally deletes the pod itself.
    /// (Deleting the pod and scaling down at once races the controller's cache: seen here
    /// removing a second, serving pod.)
    async fn remove_pod(&self, deployment: &str, pod: &str, park: bool) -> Result<(), BackendError> {
        if !park && self.replicas_of(deployment).await? <= 1 {
            return self.remove_last_pod(deployment, pod).await;
        }
        let patch = json!({ "metadata": { "labels": { MEMBER: "retiring" } } });
        match self.api::<Pod>().patch(pod, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => self.wait_released(pod).await?,
            // Gone already (deleted by hand): the ReplicaSet replaces it; the replica goes.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(self.refused("release", format!("pod {pod}"), e)),
        }
        self.adjust(deployment, -1, i64::from(park)).await?;
        self.delete_pod(pod).await
    }

    async fn delete_pod(&self, pod: &str) -> Result<(), BackendError> {
        match self.api::<Pod>().delete(pod, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(self.refused("delete", format!("pod {pod}"), e)),
        }
    }

    /// Removes the only replica of a Deployment, and the Deployment with it. Scaling to zero
    /// cannot pick another pod, so the pod is not released first (a released pod gets a
    /// replacement, which would outlive the Deployment until the garbage collector came).
    /// The Deployment goes only once the ReplicaSet has deleted the pod: deleted earlier, a
    /// ReplicaSet that has not seen the zero yet would replace the pod plugsync deletes.
    async fn remove_last_pod(&self, deployment: &str, pod: &str) -> Result<(), BackendError> {
        self.scale(deployment, -1, 0, false).await?;
        // Past the deadline (no controller-manager?) plugsync deletes both itself.
        self.wait_for_pod(pod, |p| p.metadata.deletion_timestamp.is_some()).await?;
        self.adjust(deployment, 0, 0).await?;
        self.delete_pod(pod).await
    }

    async fn replicas_of(&self, deployment: &str) -> Result<i32, BackendError> {
        let current = self
            .api::<Deployment>()
            .get_opt(deployment)
            .await
            .map_err(|e| self.refused("read", format!("Deployment {deployment}"), e))?;
        Ok(current.and_then(|d| d.spec).and_then(|s| s.replicas).unwrap_or(0))
    }

    async fn wait_released(&self, pod: &str) -> Result<(), BackendError> {
        let released = |p: &Pod| !p.metadata.owner_references.iter().flatten().any(|o| o.kind == "ReplicaSet");
        if self.wait_for_pod(pod, released).await? {
            return Ok(());
        }
        Err(BackendError::Refused {
            engine: ENGINE,
            action: "release",
            subject: format!("pod {pod}"),
            detail: format!(
                "its ReplicaSet did not release it within {RELEASE_WAIT:?} (is the controller-manager running?)"
            ),
        })
    }

    /// Polls `pod` until `done` holds for it or it is gone: false when [`RELEASE_WAIT`] ran out.
    async fn wait_for_pod(&self, pod: &str, done: impl Fn(&Pod) -> bool) -> Result<bool, BackendError> {
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        loop {
            match self.api::<Pod>().get_opt(pod).await {
                Ok(Some(p)) if !done(&p) => {}
                Ok(_) => return Ok(true),
                Err(e) => return Err(self.refused("read", format!("pod {pod}"), e)),
            }
            if std::time::Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Retires (or parks) one instance: a seat or parked replica is a count on its
    /// Deployment; a pod leaves traffic first, drains, and is removed by [`Self::remove_pod`].
    async fn take_away(&self, fleet: &str, instance: &Instance, park: bool) -> Result<(), BackendError> {
        if instance.state == RunState::Removing {
            // Already released from its Deployment: only the pod is left to delete.
            return self.delete_pod(&instance.id).await;
        }
        let deployment = self.deployment_of(fleet, instance).await?;
        let Some(name) = deployment else {
            return if is_pod(instance) { self.delete_pod(&instance.id).await } else { Ok(()) };
        };
        if instance.id.starts_with(PARKED_SEAT) {
            return if park { Ok(()) } else { self.adjust(&name, 0, -1).await.map(|_| ()) };
        }
        if instance.id.starts_with(SEAT) {
            return self.adjust(&name, -1, i64::from(park)).await.map(|_| ());
        }
        if instance.serving {
            // Out of the Service first, requests in flight finish, then the pod goes.
            self.label_serving(instance, false).await?;
            tokio::time::sleep(DRAIN).await;
        }
        self.remove_pod(&name, &instance.id, park).await
    }

    async fn start_replicas(&self, request: &StartRequest<'_>, count: u32) -> Result<(), BackendError> {
        let plugin = &request.spec.plugin;
        let existing = self.deployments(request.fleet, Some(plugin)).await?;
        let group = (request.slot, objects::label_value(request.hash));
        if let Some(name) =
            existing.iter().find(|d| group_of(d) == Some(group.clone())).and_then(|d| d.metadata.name.clone())
        {
            self.adjust(&name, i64::from(count), 0).await?;
            return Ok(());
        }
        let plain = objects::deployment_name(plugin, request.slot, request.hash, false);
        let taken = existing.iter().any(|d| d.metadata.name.as_deref() == Some(plain.as_str()));
        let name = if taken { objects::deployment_name(plugin, request.slot, request.hash, true) } else { plain };
        if let Some(body) = objects::config_map(request, &name, None) {
            self.apply_owned::<ConfigMap>(&objects::config_map_name(&name), request.fleet, body).await?;
        }
        if let Some(body) = objects::secret(request, &name, None) {
            self.apply_owned::<Secret>(&objects::secret_name(&name), request.fleet, body).await?;
        }
        let created: Deployment =
            self.apply_owned(&name, request.fleet, objects::deployment(request, &name, count)).await?;
        // Owned by the Deployment now that it has a uid: deleting it takes them along.
        if let Some(uid) = created.metadata.uid.as_deref() {
            let owner = Some(objects::owned_by(&name, uid));
            if let Some(body) = objects::config_map(request, &name, owner.clone()) {
                self.apply_owned::<ConfigMap>(&objects::config_map_name(&name), request.fleet, body).await?;
            }
            if let Some(body) = objects::secret(request, &name, owner) {
                self.apply_owned::<Secret>(&objects::secret_name(&name), request.fleet, body).await?;
            }
        }
        let service = objects::service(request.fleet, plugin, request.spec.port);
        self.apply_owned::<Service>(&objects::service_name(plugin), request.fleet, service).await?;
        Ok(())
    }
}

fn is_pod(instance: &Instance) -> bool {
    !instance.id.starts_with(SEAT) && !instance.id.starts_with(PARKED_SEAT)
}

fn parked_count(deployment: &Deployment) -> u32 {
    deployment.metadata.annotations.as_ref().and_then(|a| a.get(PARKED)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// (slot, spec hash) of a Deployment or pod, from its labels.
fn group_of(deployment: &Deployment) -> Option<(Slot, String)> {
    group_from(deployment.metadata.labels.as_ref()?)
}

fn group_from(labels: &BTreeMap<String, String>) -> Option<(Slot, String)> {
    Some((Slot::parse(labels.get(labels::SLOT)?)?, labels.get(labels::SPEC_HASH)?.clone()))
}

/// How a pod is doing, in the terms the planner shares with Docker.
fn pod_state(pod: &Pod) -> (RunState, bool, u32) {
    let status = pod.status.clone().unwrap_or_default();
    let container = status.container_statuses.unwrap_or_default().into_iter().next();
    let restarts = container.as_ref().map(|c| c.restart_count.max(0) as u32).unwrap_or(0);
    let oom = container.as_ref().is_some_and(|c| {
        let reason = |t: Option<&k8s_openapi::api::core::v1::ContainerStateTerminated>| {
            t.and_then(|t| t.reason.as_deref()) == Some("OOMKilled")
        };
        reason(c.state.as_ref().and_then(|s| s.terminated.as_ref()))
            || reason(c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
    });
    let state = match status.phase.as_deref() {
        Some("Succeeded") => RunState::Exited,
        Some("Failed") => RunState::Dead,
        _ => match container.and_then(|c| c.state) {
            Some(s) if s.running.is_some() => RunState::Running,
            Some(s) if s.terminated.is_some() => RunState::Exited,
            Some(s) => match s.waiting.and_then(|w| w.reason).as_deref() {
                // Starting: as a container that runs but is not ready yet.
                None | Some("ContainerCreating") | Some("PodInitializing") => RunState::Running,
                // CrashLoopBackOff, image and config errors: it is not coming up by itself.
                Some(_) => RunState::Restarting,
            },
            // Not scheduled or no container status yet: starting.
            None => RunState::Running,
        },
    };
    (state, oom, restarts)
}

fn pod_instance(pod: &Pod) -> Option<Instance> {
    let meta = &pod.metadata;
    let label = meta.labels.as_ref()?;
    let get = |k: &str| label.get(k).cloned().unwrap_or_default();
    let (slot, spec_hash) = group_from(label)?;
    let spec: Option<InstanceSpec> =
        meta.annotations.as_ref().and_then(|a| a.get(labels::SPEC)).and_then(|s| serde_json::from_str(s).ok());
    let (mut state, oom_killed, restart_count) = pod_state(pod);
    if get(MEMBER) != "true" {
        // Released by a retirement that did not finish (plugsync stopped in between).
        state = RunState::Removing;
    }
    let address = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok());
    // The kubelet's readiness probe: the Service's endpoints follow it, so plugsync's own
    // probe is not enough to call a pod ready.
    let containers_ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "ContainersReady" && c.status == "True"));
    Some(Instance {
        id: meta.name.clone()?,
        name: meta.name.clone()?,
        plugin: spec.as_ref().map(|s| s.plugin.clone()).unwrap_or_else(|| get(labels::PLUGIN)),
        slot,
        version: spec.as_ref().map(|s| s.version.clone()).unwrap_or_else(|| get(labels::VERSION)),
        spec_hash,
        spec,
        revision: get(labels::REVISION),
        state,
        serving: get(SERVING) == "true",
        address,
        ready: Some(containers_ready),
        oom_killed,
        restart_count,
        runtime: None,
        image_id: pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .map(|c| c.image_id.clone())
            .filter(|i| !i.is_empty()),
    })
}

/// A replica that is not a pod (yet, or any more): what it reports as an instance.
struct Seat<'a> {
    plugin: &'a str,
    slot: Slot,
    spec: Option<&'a InstanceSpec>,
    hash: &'a str,
    revision: &'a str,
}

impl Seat<'_> {
    fn instance(&self, id: String, state: RunState) -> Instance {
        Instance {
            name: id.clone(),
            id,
            plugin: self.plugin.to_string(),
            slot: self.slot,
            version: self.spec.map(|s| s.version.clone()).unwrap_or_default(),
            spec_hash: self.hash.to_string(),
            spec: self.spec.cloned(),
            revision: self.revision.to_string(),
            state,
            serving: false,
            address: None,
            ready: None,
            oom_killed: false,
            restart_count: 0,
            runtime: None,
            image_id: None,
        }
    }
}

/// Replicas of a Deployment that have no pod yet (`seat:`) or are parked (`parked:`).
fn placeholders(deployment: &Deployment, pods: usize) -> Vec<Instance> {
    let Some(name) = deployment.metadata.name.clone() else { return Vec::new() };
    let Some((slot, spec_hash)) = group_of(deployment) else { return Vec::new() };
    let annotations = deployment.metadata.annotations.clone().unwrap_or_default();
    let spec: Option<InstanceSpec> = annotations.get(labels::SPEC).and_then(|s| serde_json::from_str(s).ok());
    let label = deployment.metadata.labels.clone().unwrap_or_default();
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0).max(0) as usize;
    let plugin = spec
        .as_ref()
        .map(|s| s.plugin.clone())
        .unwrap_or_else(|| label.get(labels::PLUGIN).cloned().unwrap_or_default());
    let revision = label.get(labels::REVISION).cloned().unwrap_or_default();
    let one = |id: String, state: RunState| {
        Seat { plugin: &plugin, slot, spec: spec.as_ref(), hash: &spec_hash, revision: &revision }.instance(id, state)
    };
    let mut out: Vec<Instance> = (pods..wanted).map(|i| one(format!("{SEAT}{name}:{i}"), RunState::Running)).collect();
    out.extend((0..parked_count(deployment)).map(|i| one(format!("{PARKED_SEAT}{name}:{i}"), RunState::Exited)));
    out
}

impl Backend for KubernetesBackend {
    async fn prepare(&self, _fleet: &str) -> Result<(), BackendError> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        self.requests.fetch_add(1, Ordering::Relaxed);
        match api.get_opt(&self.namespace).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::from_value(json!({ "metadata": { "name": self.namespace } })).map_err(|e| {
                    BackendError::Refused {
                        engine: ENGINE,
                        action: "create",
                        subject: format!("namespace {}", self.namespace),
                        detail: e.to_string(),
                    }
                })?;
                match api.create(&PostParams { field_manager: Some(MANAGER.into()), ..Default::default() }, &body).await
                {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                    Err(e) => Err(self.refused("create", "the namespace", e)),
                }
            }
            // No permission to read namespaces (a namespaced Role): the namespace is given.
            Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
            Err(e) => Err(self.refused("read", "the namespace", e)),
        }
    }

    async fn observe(&self, fleet: &str, plugin: Option<&str>) -> Result<Observed, BackendError> {
        let (deployments, pods) = tokio::join!(self.deployments(fleet, plugin), async {
            let params = ListParams::default().labels(&objects::plugin_selector(fleet, plugin));
            self.api::<Pod>().list(&params).await.map_err(|e| self.refused("list", format!("pods of fleet {fleet}"), e))
        });
        let (deployments, pods) = (deployments?, pods?.items);
        // Pods on their way out are no longer instances (their endpoints are gone already).
        let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        let all: Vec<Instance> = live.iter().filter_map(|p| pod_instance(p)).collect();
        let (mut instances, members): (Vec<Instance>, Vec<Instance>) =
            all.into_iter().partition(|i| i.state == RunState::Removing);
        for d in &deployments {
            let group = group_of(d);
            let mut mine: Vec<Instance> =
                members.iter().filter(|i| Some((i.slot, i.spec_hash.clone())) == group).cloned().collect();
            // Beyond the Deployment's replicas the ReplicaSet is about to delete some pods
            // (a replacement it began for a pod plugsync released): they are not instances,
            // or a strategy would retire one of them and take a second replica away.
            let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0).max(0) as usize;
            mine.sort_by_key(|i| (i.ready != Some(true), !i.serving, i.name.clone()));
            mine.truncate(wanted);
            let have = mine.len();
            instances.extend(mine);
            instances.extend(placeholders(d, have));
        }
        instances.sort_by(|a, b| (&a.plugin, &a.name).cmp(&(&b.plugin, &b.name)));
        Ok(Observed { instances, ..Default::default() })
    }

    async fn start(&self, request: StartRequest<'_>) -> Result<Instance, BackendError> {
        self.start_replicas(&request, 1).await?;
        let name = objects::deployment_name(&request.spec.plugin, request.slot, request.hash, false);
        let seat = Seat {
            plugin: &request.spec.plugin,
            slot: request.slot,
            spec: Some(request.spec),
            hash: request.hash,
            revision: request.revision,
        };
        Ok(seat.instance(format!("{SEAT}{name}:new"), RunState::Running))
    }

    async fn start_many(&self, request: StartRequest<'_>, count: u32) -> Result<(), BackendError> {
        self.start_replicas(&request, count).await
    }

    async fn serve(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        self.label_serving(instance, true).await
    }

    async fn unserve(&self, _fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        self.label_serving(instance, false).await
    }

    async fn park(&self, fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        self.take_away(fleet, instance, true).await
    }

    async fn retire(&self, fleet: &str, instance: &Instance) -> Result<(), BackendError> {
        self.take_away(fleet, instance, false).await
    }
}
