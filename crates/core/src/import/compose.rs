//! A compose file (`docker-compose.plugins.yml`) → plugin manifests. Each service becomes a
//! plugin unless excluded (by name or label); what compose says and the fleet cannot carry is
//! a [`Note`] with file:line. Several files merge as compose merges them: a later file's
//! service keys replace the earlier ones'.

use super::{note, plugin_id, quoted, version_of_image, Imported, ImportedPlugin, Note, Out};
use crate::model::document::{pointer_segment, Document};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Which services are not plugins.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Service names left out (a database, a cache).
    pub exclude: Vec<String>,
    /// Labels that leave a service out: `KEY` (any value) or `KEY=VALUE`.
    pub exclude_labels: Vec<String>,
    /// The fleet's name; else the compose project's `name:`, else `imported`.
    pub fleet: Option<String>,
}

/// Service keys the fleet carries (everything else is noted).
const CARRIED: [&str; 15] = [
    "image",
    "environment",
    "ports",
    "expose",
    "healthcheck",
    "deploy",
    "depends_on",
    "labels",
    "command",
    "entrypoint",
    "mem_limit",
    "mem_reservation",
    "cpus",
    "scale",
    "restart",
];

/// One service, its keys each with the file they came from.
struct Service<'a> {
    name: String,
    keys: BTreeMap<String, (&'a Value, &'a Document)>,
}

fn service_pointer(name: &str, key: &str) -> String {
    format!("/services/{}/{}", pointer_segment(name), pointer_segment(key))
}

/// Imports `files` (parsed compose documents, in order).
pub fn import(files: &[Document], options: &Options) -> Imported {
    let mut imported = Imported::default();
    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    let mut project = None;
    for doc in files {
        let Some(top) = doc.value.as_object() else {
            imported.notes.push(note(doc, "", "", "not a compose file: the top level is not a map"));
            continue;
        };
        for (key, value) in top {
            match key.as_str() {
                "services" => {}
                "name" => project = value.as_str().map(str::to_string),
                "version" => {}
                k if k.starts_with("x-") => {}
                _ => imported.notes.push(note(
                    doc,
                    &format!("/{}", pointer_segment(key)),
                    "",
                    "top-level compose section not carried: plugsync creates each fleet's network itself; volumes, \
                     secrets and configs are not part of a plugin manifest",
                )),
            }
        }
        let Some(list) = top.get("services").and_then(Value::as_object) else { continue };
        for (name, body) in list {
            let entry =
                services.entry(name.clone()).or_insert_with(|| Service { name: name.clone(), keys: BTreeMap::new() });
            match body.as_object() {
                Some(keys) => entry.keys.extend(keys.iter().map(|(k, v)| (k.clone(), (v, doc)))),
                None => {
                    imported.notes.push(note(doc, &format!("/services/{}", pointer_segment(name)), name, "not a map"))
                }
            }
        }
    }
    let excluded: Vec<&str> = services.values().filter(|s| is_excluded(s, options)).map(|s| s.name.as_str()).collect();
    let ids: BTreeMap<&str, Option<String>> = services.keys().map(|n| (n.as_str(), plugin_id(n))).collect();
    for service in services.values().filter(|s| !excluded.contains(&s.name.as_str())) {
        if let Some(plugin) = convert(service, &ids, &excluded, &mut imported.notes) {
            imported.plugins.push(plugin);
        }
    }
    let fleet = options.fleet.clone().or(project).and_then(|f| plugin_id(&f)).unwrap_or_else(|| "imported".into());
    imported.fleet_config = format!(
        "# Written by `plugsync import compose`: the fleet's settings (defaults apply to the rest).\n\
         fleet: {}\nbackend:\n  type: docker\n",
        quoted(&fleet)
    );
    imported
}

fn labels(value: Option<&Value>) -> BTreeMap<String, String> {
    match value {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), scalar(v).unwrap_or_default())).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|kv| kv.split_once('=').map_or((kv.to_string(), String::new()), |(k, v)| (k.into(), v.into())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn is_excluded(service: &Service, options: &Options) -> bool {
    if options.exclude.iter().any(|e| *e == service.name) {
        return true;
    }
    let labels = labels(service.keys.get("labels").map(|(v, _)| *v));
    options.exclude_labels.iter().any(|wanted| match wanted.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(wanted),
    })
}

/// A scalar as text (numbers and booleans as written); `None` for null, maps and lists.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// Long: one arm per compose key, in the order the manifest lists its fields.
fn convert(
    service: &Service,
    ids: &BTreeMap<&str, Option<String>>,
    excluded: &[&str],
    notes: &mut Vec<Note>,
) -> Option<ImportedPlugin> {
    let name = service.name.as_str();
    let at = |key: &str| service.keys.get(key).map(|(v, doc)| (*v, *doc, service_pointer(name, key)));
    let (_, first_doc) = service.keys.values().next().copied()?;
    let Some(id) = ids.get(name).cloned().flatten() else {
        notes.push(note(
            first_doc,
            &format!("/services/{}", pointer_segment(name)),
            name,
            "no plugin id can be made of this name",
        ));
        return None;
    };
    let Some((image, image_doc, image_ptr)) = at("image").and_then(|(v, d, p)| Some((v.as_str()?.to_string(), d, p)))
    else {
        let why = if service.keys.contains_key("build") {
            "no image: plugsync runs images, it does not build them; build and push this one, then set runtime.image"
        } else {
            "no image: a plugin needs one"
        };
        notes.push(note(first_doc, &format!("/services/{}", pointer_segment(name)), name, why));
        return None;
    };
    let mut out = Out::new();
    let _ = writeln!(out.text, "# Imported by `plugsync import compose` from service {name:?}; see IMPORT-REPORT.md.");
    out.line(0, &format!("id: {}", quoted(&id)), None);
    if id != name {
        notes.push(note(
            first_doc,
            &format!("/services/{}", pointer_segment(name)),
            name,
            format!("the plugin id is {id:?}"),
        ));
    }
    let version = version_of_image(&image).unwrap_or_else(|| {
        notes.push(note(
            image_doc,
            &image_ptr,
            name,
            "the image tag is not a version: version 0.0.0 written; set the real one",
        ));
        "0.0.0".into()
    });
    out.line(0, &format!("version: {}", quoted(&version)), Some((image_doc, &image_ptr)));
    out.line(0, "runtime:", None);
    out.line(2, &format!("image: {}", quoted(&image)), Some((image_doc, &image_ptr)));
    resources(service, &mut out, notes);
    command(service, &mut out, notes);
    api(service, &mut out, notes);
    replicas(service, &mut out, notes);
    environment(service, &mut out, notes);
    depends_on(service, ids, excluded, &mut out, notes);
    rolling(service, &mut out, notes);
    tags(service, &mut out);
    if let Some((value, doc, ptr)) = at("restart") {
        let policy = scalar(value).unwrap_or_default();
        notes.push(note(
            doc,
            &ptr,
            name,
            format!(
                "restart: {policy} is not carried: plugsync keeps each instance running and replaces one that dies \
             (a stopped container is drift, healed with `drift: heal`)"
            ),
        ));
    }
    for (key, (_, doc)) in &service.keys {
        if !CARRIED.contains(&key.as_str()) {
            notes.push(note(doc, &service_pointer(name, key), name, not_carried(key)));
        }
    }
    Some(ImportedPlugin { id, manifest: out.text })
}

/// Why a compose key has no place in a manifest.
fn not_carried(key: &str) -> String {
    match key {
        "build" => "build is not carried: plugsync runs images, it does not build them; build and push this one".into(),
        "volumes" => "volumes are not carried: plugin instances are replaceable; keep state in a service plugsync \
                      does not manage"
            .into(),
        "container_name" => "container_name is not carried: plugsync names instances itself (several run at once \
                             during a rollout)"
            .into(),
        "networks" | "network_mode" => {
            "networks are not carried: plugsync puts every plugin on the fleet network, reachable by its id".into()
        }
        "env_file" => "env_file is not carried: copy plain values into env, secrets into secretEnv".into(),
        other => format!("{other} is not carried by a plugin manifest"),
    }
}

/// Compose memory (`256M`, `1g`, `512m`, bytes): binary units, as Docker reads them.
fn memory_bytes(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let text = value.as_str()?.trim().to_ascii_lowercase();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let number: f64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then(|| bytes.round() as u64)
}

/// Bytes as the manifest writes memory: `Gi`/`Mi` when exact, else a number of bytes.
fn memory_text(bytes: u64) -> String {
    if bytes > 0 && bytes % (1 << 30) == 0 {
        quoted(&format!("{}Gi", bytes >> 30))
    } else if bytes > 0 && bytes % (1 << 20) == 0 {
        quoted(&format!("{}Mi", bytes >> 20))
    } else {
        bytes.to_string()
    }
}

/// Compose CPUs (`"0.5"`, `1.5`) as millicores (`500m`).
fn cpu_text(value: &Value) -> Option<String> {
    let cores: f64 = scalar(value)?.trim().parse().ok()?;
    (cores.is_finite() && cores > 0.0).then(|| quoted(&format!("{}m", (cores * 1000.0).round() as u64)))
}

fn resources(service: &Service, out: &mut Out, notes: &mut Vec<Note>) {
    let name = service.name.as_str();
    let deploy = service.keys.get("deploy");
    // deploy.resources.<section>, else the older top-level keys.
    for (section, label, cpu_key, mem_key) in
        [("limits", "resources", "cpus", "mem_limit"), ("reservations", "reservations", "", "mem_reservation")]
    {
        let mut lines: Vec<(String, &Document, String)> = Vec::new();
        if let Some((value, doc)) = deploy {
            let base = format!("{}/resources/{section}", service_pointer(name, "deploy"));
            if let Some(map) = value.pointer(&format!("/resources/{section}")).and_then(Value::as_object) {
                for (key, v) in map {
                    let ptr = format!("{base}/{}", pointer_segment(key));
                    match key.as_str() {
                        "cpus" => match cpu_text(v) {
                            Some(cpu) => lines.push((format!("cpu: {cpu}"), doc, ptr)),
                            None => notes.push(note(doc, &ptr, name, "not a number of CPUs")),
                        },
                        "memory" => match memory_bytes(v) {
                            Some(b) => lines.push((format!("memory: {}", memory_text(b)), doc, ptr)),
                            None => notes.push(note(doc, &ptr, name, "not a memory size")),
                        },
                        other => notes.push(note(
                            doc,
                            &ptr,
                            name,
                            format!("{other} is not carried: a manifest limits CPU and memory"),
                        )),
                    }
                }
            }
        }
        for (key, field) in [(cpu_key, "cpu"), (mem_key, "memory")] {
            let Some((v, doc)) = service.keys.get(key).filter(|_| !key.is_empty()) else { continue };
            if lines.iter().any(|(l, _, _)| l.starts_with(field)) {
                continue;
            }
            let ptr = service_pointer(name, key);
            let text = if field == "cpu" { cpu_text(v) } else { memory_bytes(v).map(memory_text) };
            match text {
                Some(t) => lines.push((format!("{field}: {t}"), doc, ptr)),
                None => notes.push(note(doc, &ptr, name, format!("not a {field} amount"))),
            }
        }
        if !lines.is_empty() {
            out.line(2, &format!("{label}:"), None);
            for (text, doc, ptr) in &lines {
                out.line(4, text, Some((doc, ptr)));
            }
        }
    }
}

/// A compose command in list form; the string form is split on spaces when it holds no quotes.
fn words(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        Value::String(s) if !s.contains(['"', '\'', '\\', '$']) => {
            Some(s.split_whitespace().map(str::to_string).collect())
        }
        _ => None,
    }
}

fn command(service: &Service, out: &mut Out, notes: &mut Vec<Note>) {
    for (key, field) in [("entrypoint", "command"), ("command", "args")] {
        let Some((value, doc)) = service.keys.get(key) else { continue };
        let ptr = service_pointer(&service.name, key);
        match words(value) {
            Some(list) => {
                let items: Vec<String> = list.iter().map(|w| quoted(w)).collect();
                out.line(2, &format!("{field}: [{}]", items.join(", ")), Some((doc, &ptr)));
            }
            None => notes.push(note(
                doc,
                &ptr,
                &service.name,
                "a shell string with quotes or variables: write it as a list",
            )),
        }
    }
}

/// The container port of a compose port entry (`"8080"`, `"80:8080"`, `"127.0.0.1:80:8080/tcp"`,
/// `{target: 8080}`), and whether it is published on the host.
fn container_port(value: &Value) -> Option<(u16, bool)> {
    match value {
        Value::Object(map) => Some((map.get("target")?.as_u64()?.try_into().ok()?, map.contains_key("published"))),
        Value::Number(n) => Some((n.as_u64()?.try_into().ok()?, false)),
        Value::String(s) => {
            let s = s.split('/').next()?;
            let target = s.rsplit(':').next()?;
            Some((target.parse().ok()?, s.contains(':')))
        }
        _ => None,
    }
}

/// `api:` from ports/expose and the healthcheck.
fn api(service: &Service, out: &mut Out, notes: &mut Vec<Note>) {
    let name = service.name.as_str();
    let mut port: Option<(u16, &Document, String)> = None;
    for key in ["ports", "expose"] {
        let Some((value, doc)) = service.keys.get(key) else { continue };
        for (i, entry) in value.as_array().into_iter().flatten().enumerate() {
            let ptr = format!("{}/{i}", service_pointer(name, key));
            match container_port(entry) {
                Some((p, published)) => {
                    if published {
                        notes.push(note(
                            doc,
                            &ptr,
                            name,
                            format!(
                            "published on the host: plugsync does not publish plugin ports; other plugins reach it at \
                             http://{name}:{p}, outside callers through the router's gateway"
                        ),
                        ));
                    }
                    match &port {
                        None => port = Some((p, doc, ptr)),
                        Some((first, _, _)) if *first != p => notes.push(note(
                            doc,
                            &ptr,
                            name,
                            format!("a second port: a manifest has one API port ({first} is carried)"),
                        )),
                        Some(_) => {}
                    }
                }
                None => notes.push(note(doc, &ptr, name, "not a port")),
            }
        }
    }
    let health = service.keys.get("healthcheck").and_then(|(v, doc)| {
        let ptr = format!("{}/test", service_pointer(name, "healthcheck"));
        if v.get("disable").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        for key in ["interval", "timeout", "retries", "start_period", "start_interval"] {
            if v.get(key).is_some() {
                let p = format!("{}/{key}", service_pointer(name, "healthcheck"));
                notes.push(note(doc, &p, name, format!("{key} is not carried: plugsync probes on its own schedule")));
            }
        }
        match v.get("test").and_then(health_url) {
            Some((path, url_port)) => Some((path, url_port, *doc, ptr)),
            None => {
                notes.push(note(doc, &ptr, name, "not an HTTP check (curl or wget of a URL): no health path carried"));
                None
            }
        }
    });
    if port.is_none() {
        if let Some((_, Some(p), doc, ptr)) = &health {
            port = Some((*p, doc, ptr.clone()));
        }
    }
    if port.is_none() && health.is_none() {
        return;
    }
    out.line(0, "api:", None);
    if let Some((p, doc, ptr)) = &port {
        out.line(2, &format!("port: {p}"), Some((doc, ptr)));
    }
    if let Some((path, _, doc, ptr)) = &health {
        out.line(2, &format!("readiness: {}", quoted(path)), Some((doc, ptr)));
        out.line(2, &format!("liveness: {}", quoted(path)), Some((doc, ptr)));
    }
}

/// The path (and port) a healthcheck's `curl`/`wget` asks for.
fn health_url(test: &Value) -> Option<(String, Option<u16>)> {
    let words: Vec<String> = match test {
        Value::Array(items) => {
            items.iter().filter_map(Value::as_str).flat_map(|s| s.split_whitespace()).map(str::to_string).collect()
        }
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => return None,
    };
    if !words.iter().any(|w| w.ends_with("curl") || w.ends_with("wget")) {
        return None;
    }
    let url = words
        .iter()
        .map(|w| w.trim_matches(['"', '\'']))
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))?;
    let rest = url.split_once("://")?.1;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let port = authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    let path = path.split(['?', '#']).next().unwrap_or("/");
    Some((path.to_string(), port))
}

fn replicas(service: &Service, out: &mut Out, notes: &mut Vec<Note>) {
    let name = service.name.as_str();
    let from_deploy = service.keys.get("deploy").and_then(|(v, doc)| {
        let n = v.get("replicas")?;
        Some((n, *doc, format!("{}/replicas", service_pointer(name, "deploy"))))
    });
    let from_scale = service.keys.get("scale").map(|(v, doc)| (*v, *doc, service_pointer(name, "scale")));
    if let Some((n, doc, ptr)) = from_deploy.or(from_scale) {
        match n.as_u64().filter(|n| *n <= 1000) {
            Some(n) => out.line(0, &format!("replicas: {n}"), Some((doc, &ptr))),
            None => notes.push(note(doc, &ptr, name, "not a replica count (0 to 1000)")),
        }
    }
    if let Some((deploy, doc)) = service.keys.get("deploy") {
        for key in deploy.as_object().into_iter().flat_map(|m| m.keys()) {
            if !["replicas", "resources", "update_config"].contains(&key.as_str()) {
                let ptr = format!("{}/{}", service_pointer(name, "deploy"), pointer_segment(key));
                notes.push(note(doc, &ptr, name, format!("deploy.{key} is not carried")));
            }
        }
    }
}

/// `${VAR}`, `${VAR:-default}`, `${VAR?message}` or `$VAR` as a whole value: the variable,
/// and whether a default came with it.
fn whole_reference(value: &str) -> Option<(&str, bool)> {
    let is_name = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        let end = inner.find([':', '?', '-']).unwrap_or(inner.len());
        let (var, rest) = inner.split_at(end);
        return is_name(var).then_some((var, rest.starts_with(":-") || rest.starts_with('-')));
    }
    value.strip_prefix('$').filter(|v| is_name(v)).map(|v| (v, false))
}

fn environment(service: &Service, out: &mut Out, notes: &mut Vec<Note>) {
    let name = service.name.as_str();
    let Some((value, doc)) = service.keys.get("environment") else { return };
    let base = service_pointer(name, "environment");
    // (variable, value or None for "from the host", pointer)
    let entries: Vec<(String, Option<String>, String)> = match value {
        Value::Object(map) => {
            map.iter().map(|(k, v)| (k.clone(), scalar(v), format!("{base}/{}", pointer_segment(k)))).collect()
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let text = item.as_str()?;
                let ptr = format!("{base}/{i}");
                Some(match text.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string()), ptr),
                    None => (text.to_string(), None, ptr),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let (mut plain, mut secret): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let mut plain_at = Vec::new();
    let mut secret_at = Vec::new();
    for (var, val, ptr) in entries {
        match val.as_deref() {
            None => {
                secret.push(format!("{}: {{ fromEnv: {} }}", quoted(&var), quoted(&var)));
                secret_at.push(ptr.clone());
                notes.push(note(doc, &ptr, name, format!(
                    "{var} comes from the host's environment: carried as secretEnv fromEnv {var} (set it where plugsync runs)"
                )));
            }
            Some(v) if whole_reference(v).is_some() => {
                let (from, has_default) = whole_reference(v).unwrap_or_default();
                secret.push(format!("{}: {{ fromEnv: {} }}", quoted(&var), quoted(from)));
                secret_at.push(ptr.clone());
                if has_default {
                    notes.push(note(
                        doc,
                        &ptr,
                        name,
                        format!("the default in {v} is not carried: set {from} where plugsync runs"),
                    ));
                }
            }
            Some(v) if v.contains('$') => {
                secret.push(format!("{}: {{ fromEnv: {} }}", quoted(&var), quoted(&var)));
                secret_at.push(ptr.clone());
                notes.push(note(doc, &ptr, name, format!(
                    "{var} mixes text and a variable ({v}); plugsync does not interpolate: carried as secretEnv fromEnv \
                     {var}, so set {var} to the whole value where plugsync runs"
                )));
            }
            Some(v) => {
                plain.push(format!("{}: {}", quoted(&var), quoted(v)));
                plain_at.push(ptr);
            }
        }
    }
    if !plain.is_empty() {
        out.line(0, "env:", None);
        for (line, ptr) in plain.iter().zip(&plain_at) {
            out.line(2, line, Some((doc, ptr)));
        }
    }
    if !secret.is_empty() {
        out.line(0, "secretEnv:", None);
        for (line, ptr) in secret.iter().zip(&secret_at) {
            out.line(2, line, Some((doc, ptr)));
        }
    }
}

fn depends_on(
    service: &Service,
    ids: &BTreeMap<&str, Option<String>>,
    excluded: &[&str],
    out: &mut Out,
    notes: &mut Vec<Note>,
) {
    let name = service.name.as_str();
    let Some((value, doc)) = service.keys.get("depends_on") else { return };
    let base = service_pointer(name, "depends_on");
    let deps: Vec<(String, Option<String>, String)> = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((v.as_str()?.to_string(), None, format!("{base}/{i}"))))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let condition = v.get("condition").and_then(Value::as_str).map(str::to_string);
                (k.clone(), condition, format!("{base}/{}", pointer_segment(k)))
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut carried = Vec::new();
    for (dep, condition, ptr) in deps {
        if excluded.contains(&dep.as_str()) {
            notes.push(note(doc, &ptr, name, format!(
                "depends on {dep}, which is not a plugin (excluded): plugsync cannot wait for it; start it before the fleet"
            )));
            continue;
        }
        let Some(Some(id)) = ids.get(dep.as_str()) else {
            notes.push(note(doc, &ptr, name, format!("depends on {dep}, which is not a service of these files")));
            continue;
        };
        match condition.as_deref() {
            None | Some("service_healthy") => {}
            Some("service_started") => notes.push(note(
                doc,
                &ptr,
                name,
                format!("condition service_started: plugsync waits until {id} is healthy (ready), which is stricter"),
            )),
            Some(other) => notes.push(note(
                doc,
                &ptr,
                name,
                format!("condition {other} is not carried: plugsync waits until {id} is healthy"),
            )),
        }
        carried.push((quoted(id), ptr));
    }
    if !carried.is_empty() {
        out.line(0, "dependsOn:", None);
        for (id, ptr) in &carried {
            out.line(2, &format!("- {id}"), Some((doc, ptr)));
        }
    }
}

/// `deploy.update_config` → a Rolling policy.
fn rolling(service: &Service, out: &mut Out, notes: &mut Vec<Note>) {
    let name = service.name.as_str();
    let Some((deploy, doc)) = service.keys.get("deploy") else { return };
    let Some(config) = deploy.get("update_config").and_then(Value::as_object) else { return };
    let base = format!("{}/update_config", service_pointer(name, "deploy"));
    let mut lines: Vec<(String, String)> = Vec::new();
    let duration = |v: &Value| scalar(v).filter(|s| crate::model::duration::Span::parse(s).is_some());
    for (key, v) in config {
        let ptr = format!("{base}/{}", pointer_segment(key));
        match (key.as_str(), scalar(v).as_deref()) {
            ("parallelism", _) => match v.as_u64() {
                Some(n) if n >= 1 => lines.push((format!("batchSize: {n}"), ptr)),
                Some(_) => notes.push(note(doc, &ptr, name, "parallelism 0 (all at once) is not carried: batchSize 1 is the default")),
                None => notes.push(note(doc, &ptr, name, "not a number")),
            },
            ("delay", _) => match duration(v) {
                Some(d) => lines.push((format!("waitBetweenBatches: {}", quoted(&d)), ptr)),
                None => notes.push(note(doc, &ptr, name, "not a duration plugsync reads (e.g. 10s, 1m30s)")),
            },
            ("monitor", _) => match duration(v) {
                Some(d) => lines.push((format!("healthCheckTimeout: {}", quoted(&d)), ptr)),
                None => notes.push(note(doc, &ptr, name, "not a duration plugsync reads (e.g. 10s, 1m30s)")),
            },
            ("order", Some("start-first")) => {}
            ("order", Some(other)) => notes.push(note(doc, &ptr, name, format!(
                "order {other} is not carried: plugsync's Rolling is always start-first (a batch is ready before the old one stops)"
            ))),
            ("failure_action", Some("rollback")) => {}
            ("failure_action", Some(other)) => notes.push(note(doc, &ptr, name, format!(
                "failure_action {other} is not carried: a Rolling update that fails rolls back"
            ))),
            (other, _) => notes.push(note(doc, &ptr, name, format!("update_config.{other} is not carried"))),
        }
    }
    let ptr = base.clone();
    out.line(0, "rollout:", None);
    out.line(2, "strategy: Rolling", Some((doc, &ptr)));
    if !lines.is_empty() {
        out.line(2, "rollingConfig:", None);
        for (text, ptr) in &lines {
            out.line(4, text, Some((doc, ptr)));
        }
    }
}

/// Labels → tags (`key=value`), so they stay searchable in the catalogue.
fn tags(service: &Service, out: &mut Out) {
    let Some((value, doc)) = service.keys.get("labels") else { return };
    let labels = labels(Some(value));
    if labels.is_empty() {
        return;
    }
    let tags: Vec<String> =
        labels.iter().map(|(k, v)| quoted(&if v.is_empty() { k.clone() } else { format!("{k}={v}") })).collect();
    out.line(0, &format!("tags: [{}]", tags.join(", ")), Some((doc, &service_pointer(&service.name, "labels"))));
}
