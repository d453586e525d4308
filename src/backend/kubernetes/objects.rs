//! The Kubernetes objects plugsync applies, as server-side-apply documents: a Deployment per
//! plugin, slot and spec, a Service per plugin selecting the serving pods, a ConfigMap for
//! `PLUGIN_CONFIG` and a Secret for `secretEnv`. Pure: no API calls here.

use crate::backend::StartRequest;
use crate::plan::observed::labels;
use crate::plan::{InstanceSpec, Slot};
use serde_json::{json, Map, Value};

/// Pod label the Service selects on: the pod is in traffic.
pub const SERVING: &str = "plugsync.serving";
/// Pod label in every Deployment's selector: `true` while the pod belongs to it; a pod
/// being retired is switched to `retiring`, which releases it from its ReplicaSet.
pub const MEMBER: &str = "plugsync.member";
/// Deployment annotation: instances parked by blue-green `keepPreviousEnvironment`
/// (scaled away, spec kept for an instant switch back).
pub const PARKED: &str = "plugsync.parked";
/// Kubernetes' recommended label; `kubectl get all -l app.kubernetes.io/managed-by=plugsync`.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The env var the manifest's `config` travels in; on Kubernetes it comes from a ConfigMap.
const PLUGIN_CONFIG: &str = "PLUGIN_CONFIG";
const CONTAINER: &str = "plugin";

/// A DNS-1123 label from a plugin id or fleet name: lowercase, `_` and anything else odd
/// become `-`, at most `max` characters, never ending in `-`.
pub fn dns_label(text: &str, max: usize) -> String {
    let mut out: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(max).collect();
    while out.ends_with('-') {
        out.pop();
    }
    let trimmed = out.trim_start_matches('-').to_string();
    if trimmed.is_empty() {
        "x".into()
    } else {
        trimmed
    }
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends (a version
/// like `1.2.0+build.5` becomes `1.2.0_build.5`; the exact one is in the spec annotation).
pub fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .take(63)
        .collect();
    mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The Service (and base of every object name) of a plugin.
pub fn service_name(plugin: &str) -> String {
    dns_label(plugin, 63)
}

/// The Deployment name for a slot: `<id>-<slot>`; `hashed` adds the spec hash, for when a
/// second spec shares the slot during a rollout (Rolling batches, canary promotion).
pub fn deployment_name(plugin: &str, slot: Slot, hash: &str, hashed: bool) -> String {
    let base = format!("{}-{}", dns_label(plugin, 40), slot.as_str());
    if hashed {
        format!("{base}-{}", &hash[..hash.len().min(10)])
    } else {
        base
    }
}

/// Labels identifying everything of one plugin of one fleet.
pub fn plugin_selector(fleet: &str, plugin: Option<&str>) -> String {
    let mut parts = vec![format!("{}={}", labels::FLEET, label_value(fleet))];
    parts.extend(plugin.map(|p| format!("{}={}", labels::PLUGIN, label_value(p))));
    parts.join(",")
}

/// The immutable selector of one Deployment (plugin, slot, spec).
fn pod_selector(request: &StartRequest<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(labels::FLEET.into(), json!(label_value(request.fleet)));
    m.insert(labels::PLUGIN.into(), json!(label_value(&request.spec.plugin)));
    m.insert(labels::SLOT.into(), json!(request.slot.as_str()));
    m.insert(labels::SPEC_HASH.into(), json!(label_value(request.hash)));
    m.insert(MEMBER.into(), json!("true"));
    m
}

fn object_labels(request: &StartRequest<'_>) -> Map<String, Value> {
    let mut m = pod_selector(request);
    m.insert(labels::VERSION.into(), json!(label_value(&request.spec.version)));
    m.insert(labels::REVISION.into(), json!(label_value(request.revision)));
    m.insert(MANAGED_BY.into(), json!("plugsync"));
    m
}

fn owned_labels(fleet: &str, plugin: &str) -> Value {
    json!({ labels::FLEET: label_value(fleet), labels::PLUGIN: label_value(plugin), MANAGED_BY: "plugsync" })
}

pub fn config_map_name(deployment: &str) -> String {
    format!("{deployment}-config")
}

pub fn secret_name(deployment: &str) -> String {
    format!("{deployment}-secret")
}

/// `ownerReferences` to the Deployment, so its deletion takes the ConfigMap and Secret along.
pub fn owned_by(deployment: &str, uid: &str) -> Value {
    json!([{ "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment, "uid": uid, "controller": false }])
}

/// The ConfigMap holding `PLUGIN_CONFIG`, when the manifest has a `config`.
pub fn config_map(request: &StartRequest<'_>, deployment: &str, owner: Option<Value>) -> Option<Value> {
    let config = request.spec.env.get(PLUGIN_CONFIG)?;
    let mut metadata =
        json!({ "name": config_map_name(deployment), "labels": owned_labels(request.fleet, &request.spec.plugin) });
    if let Some(owner) = owner {
        metadata["ownerReferences"] = owner;
    }
    Some(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": { PLUGIN_CONFIG: config } }))
}

/// The Secret holding the resolved `secretEnv` values, when there are any.
pub fn secret(request: &StartRequest<'_>, deployment: &str, owner: Option<Value>) -> Option<Value> {
    if request.secrets.0.is_empty() {
        return None;
    }
    let mut metadata =
        json!({ "name": secret_name(deployment), "labels": owned_labels(request.fleet, &request.spec.plugin) });
    if let Some(owner) = owner {
        metadata["ownerReferences"] = owner;
    }
    Some(
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque", "stringData": request.secrets.0 }),
    )
}

/// The Service of a plugin: its name is the plugin's, it selects the pods carrying
/// `plugsync.serving=true` (what the Docker backend does with the network alias).
pub fn service(fleet: &str, plugin: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": service_name(plugin), "labels": owned_labels(fleet, plugin) },
        "spec": {
            "selector": { labels::FLEET: label_value(fleet), labels::PLUGIN: label_value(plugin), SERVING: "true" },
            "ports": [{ "name": "http", "port": port, "targetPort": port, "protocol": "TCP" }],
        },
    })
}

fn http_probe(path: &str, port: u16, period: u32, failures: u32) -> Value {
    json!({
        "httpGet": { "path": path, "port": port },
        "periodSeconds": period,
        "timeoutSeconds": 1,
        "failureThreshold": failures,
    })
}

fn resources(spec: &InstanceSpec) -> Value {
    let mut limits = Map::new();
    let mut requests = Map::new();
    if let Some(cpu) = spec.cpu {
        limits.insert("cpu".into(), json!(format!("{}m", cpu.millis())));
    }
    if let Some(memory) = spec.memory {
        limits.insert("memory".into(), json!(memory.bytes().to_string()));
    }
    if let Some(cpu) = spec.cpu_reservation {
        requests.insert("cpu".into(), json!(format!("{}m", cpu.millis())));
    }
    if let Some(memory) = spec.memory_reservation {
        requests.insert("memory".into(), json!(memory.bytes().to_string()));
    }
    json!({ "limits": limits, "requests": requests })
}

fn env(request: &StartRequest<'_>, deployment: &str) -> Vec<Value> {
    let spec = request.spec;
    let mut out: Vec<Value> = spec
        .env
        .iter()
        .filter(|(k, _)| k.as_str() != PLUGIN_CONFIG)
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    if spec.env.contains_key(PLUGIN_CONFIG) {
        out.push(json!({ "name": PLUGIN_CONFIG, "valueFrom": { "configMapKeyRef": { "name": config_map_name(deployment), "key": PLUGIN_CONFIG } } }));
    }
    out.extend(
        request.secrets.0.keys().map(
            |k| json!({ "name": k, "valueFrom": { "secretKeyRef": { "name": secret_name(deployment), "key": k } } }),
        ),
    );
    out
}

/// The Deployment of one slot and spec with `replicas` pods.
pub fn deployment(request: &StartRequest<'_>, name: &str, replicas: u32) -> Value {
    let spec = request.spec;
    let spec_json = serde_json::to_string(spec).unwrap_or_default();
    let labels = object_labels(request);
    let annotations = json!({ labels::SPEC: spec_json, labels::VERSION: spec.version });
    let mut container = json!({
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "env": env(request, name),
        "ports": [{ "name": "http", "containerPort": spec.port, "protocol": "TCP" }],
        "resources": resources(spec),
        "livenessProbe": http_probe(&spec.liveness, spec.port, 2, 3),
        "readinessProbe": http_probe(&spec.readiness, spec.port, 1, 1),
    });
    if let Some(command) = &spec.command {
        container["command"] = json!(command);
    }
    if let Some(args) = &spec.args {
        container["args"] = json!(args);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": labels, "annotations": annotations },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": pod_selector(request) },
            // plugsync replaces pods itself (one Deployment per spec); the Deployment's own
            // rollout never runs, since its template never changes.
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 } },
            "template": {
                "metadata": { "labels": labels, "annotations": annotations },
                "spec": {
                    "containers": [container],
                    "terminationGracePeriodSeconds": 5,
                    "enableServiceLinks": false,
                    "automountServiceAccountToken": false,
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        for (id, want) in [("crm", "crm"), ("crm_api", "crm-api"), ("CRM.Api", "crm-api"), ("__x__", "x"), ("_", "x")] {
            assert_eq!(dns_label(id, 63), want, "{id}");
        }
        assert_eq!(deployment_name("crm_api", Slot::Canary, "0123456789abcdef", false), "crm-api-canary");
        assert_eq!(deployment_name("crm_api", Slot::Stable, "0123456789abcdef", true), "crm-api-stable-0123456789");
        let long = "a".repeat(80);
        assert!(deployment_name(&long, Slot::Green, "0123456789abcdef", true).len() <= 63);
    }

    #[test]
    fn label_values_are_valid() {
        for (text, want) in [("1.2.0", "1.2.0"), ("1.2.0+build.5", "1.2.0_build.5"), ("-x-", "x"), ("", "")] {
            assert_eq!(label_value(text), want, "{text}");
        }
        assert_eq!(label_value(&"v".repeat(100)).len(), 63);
    }
}
