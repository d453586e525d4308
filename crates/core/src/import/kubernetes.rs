//! Kubernetes manifests (a Deployment and the Service in front of it, per plugin) → plugin
//! manifests. The first container of the pod template is the plugin; what the fleet cannot
//! carry (sidecars, volumes, scheduling, other kinds) is a [`Note`] with file:line.

use super::{note, plugin_id, quoted, version_of_image, Imported, ImportedPlugin, Note, Out};
use crate::model::document::{pointer_segment, Document};
use serde_json::Value;
use std::collections::BTreeMap;

/// Splits a multi-document YAML file (`---` lines) into documents whose line numbers are the
/// file's (each is preceded by as many empty lines as came before it).
pub fn split(path: &str, text: &str) -> Vec<Result<Document, String>> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let flush = |from: usize, to: usize, out: &mut Vec<Result<Document, String>>| {
        let body: String = lines[from..to].concat();
        if body.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            return;
        }
        let padded = format!("{}{body}", "\n".repeat(from));
        out.push(Document::parse(path, padded.as_bytes()).map_err(|d| d.to_string()));
    };
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---#") {
            flush(start, i, &mut out);
            start = i + 1;
        }
    }
    flush(start, lines.len(), &mut out);
    out
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// An environment variable name for a Secret's key: `crm-secrets`/`api-key` → `CRM_SECRETS_API_KEY`.
fn secret_variable(secret: &str, key: &str) -> String {
    format!("{secret}_{key}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// Pod spec fields the manifest carries (everything else is noted).
const POD_CARRIED: [&str; 2] = ["containers", "restartPolicy"];
/// Container fields the manifest carries.
const CONTAINER_CARRIED: [&str; 9] =
    ["name", "image", "ports", "env", "resources", "readinessProbe", "livenessProbe", "command", "args"];

/// Imports every Deployment of `docs` (with the Service whose selector picks its pods).
pub fn import(docs: &[Document], fleet: Option<&str>) -> Imported {
    let mut imported = Imported::default();
    let kind = |d: &Document| text(&d.value, "/kind").unwrap_or_default().to_string();
    let services: Vec<&Document> = docs.iter().filter(|d| kind(d) == "Service").collect();
    let mut used_services = Vec::new();
    for doc in docs {
        match kind(doc).as_str() {
            "Deployment" => {
                let service = services.iter().copied().find(|s| selects(s, doc));
                if let Some(s) = service {
                    used_services.push(s.path.clone() + &text(&s.value, "/metadata/name").unwrap_or_default());
                }
                if let Some(plugin) = deployment(doc, service, &mut imported.notes) {
                    imported.plugins.push(plugin);
                }
            }
            "Service" => {}
            other => imported.notes.push(note(
                doc,
                "/kind",
                "",
                format!(
                    "a {} is not carried: a plugin is a Deployment and its Service",
                    if other.is_empty() { "document without kind" } else { other }
                ),
            )),
        }
    }
    for s in services {
        let name = text(&s.value, "/metadata/name").unwrap_or_default();
        if !used_services.contains(&(s.path.clone() + name)) {
            imported.notes.push(note(s, "/metadata/name", name, "this Service selects no Deployment of these files"));
        }
    }
    let fleet = fleet.and_then(plugin_id).unwrap_or_else(|| "imported".into());
    imported.fleet_config = format!(
        "# Written by `plugsync import kubernetes`: the fleet's settings (defaults apply to the rest).\n\
         fleet: {}\nbackend:\n  type: kubernetes\n",
        quoted(&fleet)
    );
    imported
}

/// Whether `service`'s selector picks the pods of `deployment` (same namespace).
fn selects(service: &Document, deployment: &Document) -> bool {
    let ns = |d: &Document| text(&d.value, "/metadata/namespace").unwrap_or("default").to_string();
    let Some(selector) = service.value.pointer("/spec/selector").and_then(Value::as_object) else { return false };
    let labels = deployment.value.pointer("/spec/template/metadata/labels").and_then(Value::as_object);
    ns(service) == ns(deployment)
        && !selector.is_empty()
        && selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

// Long: one section per manifest field, in the order the manifest lists them.
fn deployment(doc: &Document, service: Option<&Document>, notes: &mut Vec<Note>) -> Option<ImportedPlugin> {
    let name = text(&doc.value, "/metadata/name").unwrap_or_default().to_string();
    let Some(id) = plugin_id(&name) else {
        notes.push(note(doc, "/metadata/name", &name, "no plugin id can be made of this name"));
        return None;
    };
    let containers = doc.value.pointer("/spec/template/spec/containers").and_then(Value::as_array);
    let Some(container) = containers.and_then(|c| c.first()) else {
        notes.push(note(doc, "/spec/template/spec", &name, "no container: nothing to run"));
        return None;
    };
    let c = "/spec/template/spec/containers/0";
    let Some(image) = container.get("image").and_then(Value::as_str) else {
        notes.push(note(doc, &format!("{c}/image"), &name, "no image: a plugin needs one"));
        return None;
    };
    for (i, extra) in containers.into_iter().flatten().enumerate().skip(1) {
        let other = extra.get("name").and_then(Value::as_str).unwrap_or("?");
        notes.push(note(
            doc,
            &format!("/spec/template/spec/containers/{i}"),
            &name,
            format!(
                "container {other} is not carried: a plugin runs one container (the first, {})",
                container.get("name").and_then(Value::as_str).unwrap_or("?")
            ),
        ));
    }
    let mut out = Out::new();
    out.text.push_str(&format!(
        "# Imported by `plugsync import kubernetes` from Deployment {name:?}; see IMPORT-REPORT.md.\n"
    ));
    out.line(0, &format!("id: {}", quoted(&id)), Some((doc, "/metadata/name")));
    let version = version_of_image(image).unwrap_or_else(|| {
        notes.push(note(
            doc,
            &format!("{c}/image"),
            &name,
            "the image tag is not a version: version 0.0.0 written; set the real one",
        ));
        "0.0.0".into()
    });
    out.line(0, &format!("version: {}", quoted(&version)), Some((doc, &format!("{c}/image"))));
    out.line(0, "runtime:", None);
    out.line(2, &format!("image: {}", quoted(image)), Some((doc, &format!("{c}/image"))));
    for (section, label) in [("limits", "resources"), ("requests", "reservations")] {
        let Some(map) = container.pointer(&format!("/resources/{section}")).and_then(Value::as_object) else {
            continue;
        };
        let mut lines = Vec::new();
        for (key, v) in map {
            let ptr = format!("{c}/resources/{section}/{}", pointer_segment(key));
            match (key.as_str(), v.as_str().map(str::to_string).or_else(|| v.as_f64().map(|n| n.to_string()))) {
                ("cpu" | "memory", Some(q)) => lines.push((format!("{key}: {}", quoted(&q)), ptr)),
                _ => notes.push(note(
                    doc,
                    &ptr,
                    &name,
                    format!("{section}.{key} is not carried: a manifest limits CPU and memory"),
                )),
            }
        }
        if !lines.is_empty() {
            out.line(2, &format!("{label}:"), None);
            for (line, ptr) in &lines {
                out.line(4, line, Some((doc, ptr)));
            }
        }
    }
    for (field, key) in [("command", "command"), ("args", "args")] {
        if let Some(list) = container.get(key).and_then(Value::as_array) {
            let words: Vec<String> = list.iter().filter_map(Value::as_str).map(quoted).collect();
            out.line(2, &format!("{field}: [{}]", words.join(", ")), Some((doc, &format!("{c}/{key}"))));
        }
    }
    api(doc, &name, container, service, &mut out, notes);
    if let Some(n) = doc.value.pointer("/spec/replicas").and_then(Value::as_u64) {
        out.line(0, &format!("replicas: {n}"), Some((doc, "/spec/replicas")));
    }
    env(doc, &name, container, &mut out, notes);
    strategy(doc, &name, &mut out, notes);
    let labels = doc.value.pointer("/spec/template/metadata/labels").and_then(Value::as_object);
    let tags: Vec<String> =
        labels.into_iter().flatten().map(|(k, v)| quoted(&format!("{k}={}", v.as_str().unwrap_or_default()))).collect();
    if !tags.is_empty() {
        out.line(0, &format!("tags: [{}]", tags.join(", ")), Some((doc, "/spec/template/metadata/labels")));
    }
    for key in doc.value.pointer("/spec/template/spec").and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
        if !POD_CARRIED.contains(&key.as_str()) {
            let ptr = format!("/spec/template/spec/{}", pointer_segment(key));
            notes.push(note(doc, &ptr, &name, format!("{key} is not carried: plugsync writes the pod spec itself")));
        }
    }
    for key in container.as_object().into_iter().flat_map(|m| m.keys()) {
        if !CONTAINER_CARRIED.contains(&key.as_str()) {
            notes.push(note(doc, &format!("{c}/{}", pointer_segment(key)), &name, format!("{key} is not carried")));
        }
    }
    Some(ImportedPlugin { id, manifest: out.text })
}

/// `api:`: the container port (or the Service's target port) and the probes' HTTP paths.
fn api(
    doc: &Document,
    name: &str,
    container: &Value,
    service: Option<&Document>,
    out: &mut Out,
    notes: &mut Vec<Note>,
) {
    let c = "/spec/template/spec/containers/0";
    let port = container.pointer("/ports/0/containerPort").and_then(Value::as_u64);
    let mut lines: Vec<(String, &Document, String)> = Vec::new();
    if let Some(p) = port {
        lines.push((format!("port: {p}"), doc, format!("{c}/ports/0/containerPort")));
    }
    if let Some(s) = service {
        let target = s.value.pointer("/spec/ports/0/targetPort");
        let front = s.value.pointer("/spec/ports/0/port").and_then(Value::as_u64);
        let target_port = target.and_then(Value::as_u64).or(front);
        if (target_port.is_some() && target_port != port) || (front.is_some() && front != port) {
            notes.push(note(s, "/spec/ports/0", name, format!(
                "the Service sends port {} to {}: plugsync's Service exposes the plugin on api.port ({}), so callers of \
                 the old port move to it",
                front.unwrap_or_default(),
                target.map(Value::to_string).unwrap_or_default(),
                port.map_or("none".to_string(), |p| p.to_string())
            )));
        }
        if let Some(kind) = text(&s.value, "/spec/type").filter(|t| *t != "ClusterIP") {
            notes.push(note(
                s,
                "/spec/type",
                name,
                format!("type {kind} is not carried: plugsync's Service is ClusterIP"),
            ));
        }
    }
    for (probe, field) in [("readinessProbe", "readiness"), ("livenessProbe", "liveness")] {
        let Some(p) = container.get(probe) else { continue };
        match p.pointer("/httpGet/path").and_then(Value::as_str) {
            Some(path) => lines.push((format!("{field}: {}", quoted(path)), doc, format!("{c}/{probe}/httpGet/path"))),
            None => notes.push(note(doc, &format!("{c}/{probe}"), name, "not an httpGet probe: no path carried")),
        }
    }
    if !lines.is_empty() {
        out.line(0, "api:", None);
        for (line, d, ptr) in &lines {
            out.line(2, line, Some((d, ptr)));
        }
    }
}

fn env(doc: &Document, name: &str, container: &Value, out: &mut Out, notes: &mut Vec<Note>) {
    let c = "/spec/template/spec/containers/0";
    let mut plain: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut secret: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (i, e) in container.get("env").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let ptr = format!("{c}/env/{i}");
        let Some(var) = e.get("name").and_then(Value::as_str) else { continue };
        if let Some(v) = e.get("value") {
            let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            plain.insert(var.into(), (quoted(&v), ptr));
        } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
            let (s, k) = (
                r.get("name").and_then(Value::as_str).unwrap_or(""),
                r.get("key").and_then(Value::as_str).unwrap_or(""),
            );
            let from = secret_variable(s, k);
            notes.push(note(
                doc,
                &ptr,
                name,
                format!(
                "{var} comes from Secret {s} key {k}: carried as secretEnv fromEnv {from}; set it where plugsync runs"
            ),
            ));
            secret.insert(var.into(), (format!("{{ fromEnv: {} }}", quoted(&from)), ptr));
        } else {
            notes.push(note(doc, &ptr, name, format!("{var}: only value and secretKeyRef are carried")));
        }
    }
    if container.get("envFrom").is_some() {
        notes.push(note(doc, &format!("{c}/envFrom"), name, "envFrom is not carried: list the variables in env"));
    }
    for (title, map) in [("env", plain), ("secretEnv", secret)] {
        if map.is_empty() {
            continue;
        }
        out.line(0, &format!("{title}:"), None);
        for (var, (value, ptr)) in &map {
            out.line(2, &format!("{}: {value}", quoted(var)), Some((doc, ptr)));
        }
    }
}

/// `spec.strategy` → a Rolling policy (RollingUpdate) or Direct (Recreate).
fn strategy(doc: &Document, name: &str, out: &mut Out, notes: &mut Vec<Note>) {
    let Some(kind) = text(&doc.value, "/spec/strategy/type") else { return };
    out.line(0, "rollout:", None);
    match kind {
        "Recreate" => out.line(2, "strategy: Direct", Some((doc, "/spec/strategy/type"))),
        _ => {
            out.line(2, "strategy: Rolling", Some((doc, "/spec/strategy/type")));
            let surge = doc.value.pointer("/spec/strategy/rollingUpdate/maxSurge");
            match surge {
                Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
                    out.line(2, "rollingConfig:", None);
                    out.line(4, &format!("batchSize: {n}"), Some((doc, "/spec/strategy/rollingUpdate/maxSurge")));
                }
                Some(Value::String(p)) if p.ends_with('%') => {
                    out.line(2, "rollingConfig:", None);
                    out.line(
                        4,
                        &format!("batchSize: {}", quoted(p)),
                        Some((doc, "/spec/strategy/rollingUpdate/maxSurge")),
                    );
                }
                _ => {}
            }
            if doc.value.pointer("/spec/strategy/rollingUpdate/maxUnavailable").is_some() {
                notes.push(note(doc, "/spec/strategy/rollingUpdate/maxUnavailable", name,
                    "maxUnavailable is not carried: plugsync's Rolling is start-first (no instance leaves before its replacement is ready)"));
            }
        }
    }
}
