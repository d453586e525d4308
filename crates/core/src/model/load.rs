//! Reads the fleet repo's files (given as bytes: this room does no I/O) in every layout of
//! docs/formats.md into a [`Fleet`], collecting every problem rather than stopping at the first.

use super::check;
use super::config::FleetConfig;
use super::context::{similar, Binding, Context, FoundPlugin, Located, Overlay};
use super::diagnostic::Diagnostic;
use super::document::Format;
pub use super::files::{is_fleet_file, FileSet};
use super::files::{CONFIG_NAMES, MANIFEST_NAMES};
use super::manifest::{PluginManifest, KNOWN_FOREIGN_KEYS};
use super::policy::{Environment, RolloutPolicy};
use super::prepare::{prepare, ParseCache};
use super::schema::SchemaKind;
use super::{FixedCanary, Fleet, Plugin, PolicySource};
use serde_json::Value;
use std::collections::BTreeMap;

/// What loading produced: the usable part of the fleet, and every problem found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub fleet: Fleet,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
    pub fn is_valid(&self) -> bool {
        self.errors().next().is_none()
    }
}

/// Loads a fleet. `environment` overrides the one in `plugsync.yaml` (picks overlays and
/// default policies).
pub fn load(files: &FileSet, environment: Option<Environment>) -> Loaded {
    load_from(files, environment, None)
}

/// [`load`] for a caller that reads revision after revision (the daemon): files whose bytes
/// did not change since the last call are not parsed and schema-checked again.
pub fn load_cached(files: &FileSet, environment: Option<Environment>, cache: &mut ParseCache) -> Loaded {
    load_from(files, environment, Some(cache))
}

fn load_from(files: &FileSet, environment: Option<Environment>, cache: Option<&mut ParseCache>) -> Loaded {
    let mut cx = Context { prepared: prepare(files, cache), ..Default::default() };
    let mut config = cx.config(files);
    if environment.is_some() {
        config.environment = environment;
    }
    let policies = cx.policies(files);
    let all_overlays = cx.overlays(files);
    let overlays: BTreeMap<String, Located<Value>> = all_overlays
        .iter()
        .filter(|o| Some(o.environment) == config.environment)
        .map(|o| (o.plugin.clone(), o.located.clone()))
        .collect();
    let manifests = cx.manifests(files, &overlays);
    cx.unknown_overlays(&all_overlays);
    let bindings = cx.bindings(files);

    let mut plugins = BTreeMap::new();
    for (id, found) in manifests {
        let binding = bindings.get(&id);
        let (policy, policy_source) = cx.resolve_policy(&found.stable, binding, &policies, config.environment);
        let strategy = policy.effective_strategy(config.environment);
        let manifest = found.stable.value;
        // On Kubernetes the Service routes: `traffic.router` is a Docker setting.
        let routing = match config.backend.kind {
            super::BackendKind::Docker => super::Routing::resolve(&config.traffic, manifest.traffic.as_ref()),
            super::BackendKind::Kubernetes => super::Routing::Dns,
        };
        let plugin = Plugin {
            id: id.clone(),
            source: found.stable.path,
            canary: found.canary.map(|c| FixedCanary {
                weight: c.weight,
                manifest: c.located.value,
                source: c.located.path,
            }),
            stable_weight: found.stable_weight,
            manifest,
            policy,
            policy_source,
            strategy,
            routing,
        };
        plugins.insert(id, plugin);
    }
    let fleet = Fleet { config, plugins };
    check::fleet(&mut cx, &fleet, &bindings, &policies);
    cx.diagnostics.dedup();
    cx.diagnostics
        .sort_by(|a, b| (a.severity, &a.file, a.line, a.column).cmp(&(b.severity, &b.file, b.line, b.column)));
    Loaded { fleet, diagnostics: cx.diagnostics }
}

impl Context {
    fn config(&mut self, files: &FileSet) -> FleetConfig {
        let present: Vec<&str> = CONFIG_NAMES.iter().copied().filter(|n| files.contains_key(*n)).collect();
        if present.len() > 1 {
            self.diagnostics.push(
                Diagnostic::error("duplicate-config", present[1])
                    .found(format!("both {} and {}", present[0], present[1]))
                    .expected("one fleet config file"),
            );
        }
        let Some(path) = present.first() else { return FleetConfig::default() };
        self.parse(path, &files[*path], SchemaKind::FleetConfig).and_then(|v| self.typed(path, v)).unwrap_or_default()
    }

    fn policies(&mut self, files: &FileSet) -> BTreeMap<String, Located<RolloutPolicy>> {
        let mut out: BTreeMap<String, Located<RolloutPolicy>> = BTreeMap::new();
        for (path, bytes) in data_files(files, "policies/") {
            let Some(name) = stem(path) else { continue };
            if let Some(other) = out.get(name) {
                self.diagnostics.push(
                    Diagnostic::error("duplicate-policy", path)
                        .field("name")
                        .found(format!("policy `{name}` also defined in {}", other.path))
                        .expected("one file per policy name"),
                );
                continue;
            }
            let parsed = self.parse(path, bytes, SchemaKind::RolloutPolicy);
            if let Some(policy) = parsed.and_then(|v| self.typed::<RolloutPolicy>(path, v)) {
                if let Some(declared) = policy.name.as_deref().filter(|n| *n != name) {
                    let doc = &self.docs[path];
                    self.diagnostics.push(
                        Diagnostic::warning("policy-name", path)
                            .at(doc.locate("/name"))
                            .field("name")
                            .found(format!("{declared:?}"))
                            .expected(format!("the file's name, {name:?} (manifests refer to the file name)")),
                    );
                }
                out.insert(name.to_string(), Located { value: policy, path: path.to_string() });
            }
        }
        out
    }

    /// Every overlay file with its environment and plugin id.
    fn overlays(&mut self, files: &FileSet) -> Vec<Overlay> {
        let mut out = Vec::new();
        for (path, bytes) in data_files(files, "environments/") {
            let rest = &path["environments/".len()..];
            let (env_dir, file) = rest.split_once('/').unwrap_or(("", rest));
            let env = Environment::ALL.into_iter().find(|e| e.folder().eq_ignore_ascii_case(env_dir));
            let (Some(environment), false) = (env, file.contains('/')) else {
                self.diagnostics.push(
                    Diagnostic::error("layout", path)
                        .found(path.to_string())
                        .expected("environments/<development|qa|staging|production>/<plugin-id>.yaml"),
                );
                continue;
            };
            let Some(value) = self.parse(path, bytes, SchemaKind::EnvironmentOverlay) else { continue };
            let plugin = stem(file).unwrap_or(file).to_string();
            out.push(Overlay { environment, plugin, located: Located { value, path: path.to_string() } });
        }
        out
    }

    fn manifests(
        &mut self,
        files: &FileSet,
        overlays: &BTreeMap<String, Located<Value>>,
    ) -> BTreeMap<String, FoundPlugin> {
        let mut folders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for path in files.keys() {
            if let Some(rest) = path.strip_prefix("plugins/") {
                if let Some((folder, inner)) = rest.split_once('/') {
                    folders.entry(folder).or_default().push(inner);
                } else if Format::of(path).is_some() {
                    self.diagnostics.push(
                        Diagnostic::error("layout", path.as_str())
                            .found("a manifest directly under plugins/")
                            .expected("plugins/<id>/plugin.json or plugins/<id>/plugin.yaml"),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        let mut id_sources: BTreeMap<String, String> = BTreeMap::new();
        for (folder, inner) in folders {
            let Some(found) = self.plugin_folder(files, folder, &inner, overlays) else { continue };
            let id = found.stable.value.id.clone();
            if let Some(first) = id_sources.get(&id) {
                self.diagnostics.push(
                    self.doc_diag("duplicate-id", &found.stable.path, "/id")
                        .found(format!("id {id:?}, already declared in {first}"))
                        .expected("a unique plugin id per manifest"),
                );
                continue;
            }
            id_sources.insert(id.clone(), found.stable.path.clone());
            out.insert(id, found);
        }
        out
    }

    fn unknown_overlays(&mut self, overlays: &[Overlay]) {
        for o in overlays {
            if !self.ids_seen.contains_key(&o.plugin) {
                self.diagnostics.push(
                    Diagnostic::error("unknown-plugin", &o.located.path)
                        .found(format!("an overlay for {:?}", o.plugin))
                        .expected(format!("an overlay named after a plugin id ({})", known(&self.ids_seen))),
                );
            }
        }
    }

    fn plugin_folder(
        &mut self,
        files: &FileSet,
        folder: &str,
        inner: &[&str],
        overlays: &BTreeMap<String, Located<Value>>,
    ) -> Option<FoundPlugin> {
        let base = format!("plugins/{folder}");
        let top: Vec<String> =
            inner.iter().filter(|p| MANIFEST_NAMES.contains(p)).map(|p| format!("{base}/{p}")).collect();
        let mut versioned: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for p in inner {
            if let Some((dir, name)) = p.split_once('/') {
                if is_version_dir(dir) && MANIFEST_NAMES.contains(&name) {
                    versioned.entry(dir).or_default().push(format!("{base}/{p}"));
                }
            }
        }
        let every: Vec<String> = top.iter().chain(versioned.values().flatten()).cloned().collect();
        let layout_error = |found: String, expected: &str| {
            Diagnostic::error("manifest-count", format!("{base}/")).found(found).expected(expected)
        };
        if !top.is_empty() && !versioned.is_empty() {
            self.diagnostics.push(layout_error(
                format!("both {} and versioned folders", top.join(", ")),
                "either one manifest or versioned folders v<version>/, not both",
            ));
            self.note_ids(files, &every);
            return None;
        }
        if top.len() > 1 {
            self.diagnostics.push(layout_error(
                format!("{} manifests: {}", top.len(), top.join(", ")),
                "exactly one manifest per plugin folder",
            ));
            self.note_ids(files, &every);
            return None;
        }
        if let Some(path) = top.first() {
            let stable = self.manifest(files, path, folder, overlays)?;
            if let Some(w) = stable.value.canary_weight {
                let d = self
                    .doc_diag("canary-weight", path, "/canary_weight")
                    .found(format!("canary_weight {w} in a plugin folder without versions (ignored)"))
                    .expected("canary_weight only in versioned folders plugins/<id>/v<version>/")
                    .as_warning();
                self.diagnostics.push(d);
            }
            return Some(FoundPlugin { stable, stable_weight: None, canary: None });
        }
        if versioned.is_empty() {
            self.diagnostics.push(layout_error(
                "no manifest".into(),
                "plugin.json, plugin.yaml or v<version>/manifest.json in the folder",
            ));
            return None;
        }
        let mut versions = Vec::new();
        for (dir, paths) in &versioned {
            if paths.len() > 1 {
                self.diagnostics.push(layout_error(
                    format!("{} manifests: {}", paths.len(), paths.join(", ")),
                    "exactly one manifest per version folder",
                ));
                continue;
            }
            let Some(m) = self.manifest(files, &paths[0], folder, overlays) else { continue };
            let declared = m.value.version.trim_start_matches('v');
            if declared != &dir[1..] {
                self.diagnostics.push(
                    self.doc_diag("version-folder", &m.path, "/version")
                        .found(format!("version {:?} in folder {dir}/", m.value.version))
                        .expected(format!("version {:?} to match the folder name", &dir[1..])),
                );
                continue;
            }
            versions.push(m);
        }
        check::versioned_weights(self, &base, versions)
    }

    /// Records the ids declared by manifests of a folder rejected for its layout, so other
    /// plugins depending on it are not told that nobody declares it.
    fn note_ids(&mut self, files: &FileSet, paths: &[String]) {
        for path in paths {
            self.record_id(path, &files[path]);
        }
    }

    fn record_id(&mut self, path: &str, bytes: &[u8]) -> Option<()> {
        let doc = self.document(path, bytes)?;
        if let Some(id) = doc.value.get("id").and_then(Value::as_str) {
            let id = id.to_string();
            let seen = self.ids_seen.entry(id).or_default();
            if !seen.iter().any(|p| p == path) {
                seen.push(path.to_string());
            }
        }
        Some(())
    }

    fn manifest(
        &mut self,
        files: &FileSet,
        path: &str,
        folder: &str,
        overlays: &BTreeMap<String, Located<Value>>,
    ) -> Option<Located<PluginManifest>> {
        self.record_id(path, &files[path])?;
        let overlay =
            self.docs.get(path).and_then(|d| d.value.get("id")).and_then(Value::as_str).and_then(|id| overlays.get(id));
        let pretyped = self.typed_manifests.remove(path).filter(|_| overlay.is_none());
        let manifest: PluginManifest = match pretyped {
            // Typed in parallel by `prepare`; its schema check passed there.
            Some(manifest) if self.schema_passed(path, SchemaKind::PluginManifest) => manifest,
            _ => {
                let value = self.validate(path, SchemaKind::PluginManifest)?;
                let value = match overlay {
                    Some(overlay) => {
                        self.overlay_of.insert(path.to_string(), (overlay.path.clone(), overlay.value.clone()));
                        merged(value, &overlay.value)
                    }
                    None => value,
                };
                self.typed(path, value)?
            }
        };
        self.foreign_keys(path, &manifest);
        if manifest.id != folder && manifest.id.replace('_', "-") != folder {
            self.diagnostics.push(
                self.doc_diag("folder-name", path, "/id")
                    .found(format!("id {:?} in folder plugins/{folder}/", manifest.id))
                    .expected("the folder to be named after the plugin id")
                    .as_warning(),
            );
        }
        Some(Located { value: manifest, path: path.to_string() })
    }

    /// Unknown top-level keys: quiet for catalogue metadata, a warning when they look like a
    /// typo of a field plugsync reads.
    fn foreign_keys(&mut self, path: &str, manifest: &PluginManifest) {
        const FIELDS: [&str; 20] = [
            "id",
            "name",
            "version",
            "description",
            "owners",
            "tags",
            "capabilities",
            "role",
            "runtime",
            "api",
            "replicas",
            "env",
            "secretEnv",
            "config",
            "dependsOn",
            "policy",
            "rollout",
            "drift",
            "suspended",
            "canary_weight",
        ];
        for key in manifest.extra.keys() {
            if KNOWN_FOREIGN_KEYS.contains(&key.as_str()) {
                continue;
            }
            let close = FIELDS.iter().find(|f| similar(key, f));
            let pointer = format!("/{}", super::document::pointer_segment(key));
            let d = self.doc_diag("unknown-field", path, &pointer).as_warning();
            self.diagnostics.push(match close {
                Some(f) => d.found(format!("unknown field `{key}` (ignored)")).expected(format!("`{f}`?")),
                None => d
                    .found(format!("unknown field `{key}` (kept as catalogue metadata, ignored)"))
                    .expected("a field from docs/formats.md"),
            });
        }
    }

    fn bindings(&mut self, files: &FileSet) -> BTreeMap<String, Binding> {
        let mut out: BTreeMap<String, Binding> = BTreeMap::new();
        for (path, bytes) in data_files(files, "rollouts/") {
            let parsed = self.parse(path, bytes, SchemaKind::RolloutPolicy);
            let Some(policy) = parsed.and_then(|v| self.typed::<RolloutPolicy>(path, v)) else {
                continue;
            };
            let id = policy.plugin_id.clone().or_else(|| stem(path).map(str::to_string));
            let Some(id) = id else { continue };
            if let Some(file) = stem(path).filter(|f| *f != id) {
                let d = self
                    .doc_diag("binding-name", path, "/pluginId")
                    .found(format!("pluginId {id:?} in a file named {file:?}"))
                    .expected(format!("rollouts/{id}.yaml, named after the plugin it binds"))
                    .as_warning();
                self.diagnostics.push(d);
            }
            if let Some(first) = out.get(&id) {
                self.diagnostics.push(
                    self.doc_diag("duplicate-binding", path, "/pluginId")
                        .found(format!("a second rollout binding for {id:?} (first: {})", first.path))
                        .expected("one rollouts/ file per plugin"),
                );
                continue;
            }
            out.insert(id, Binding { policy, path: path.to_string() });
        }
        out
    }

    fn resolve_policy(
        &mut self,
        manifest: &Located<PluginManifest>,
        binding: Option<&Binding>,
        policies: &BTreeMap<String, Located<RolloutPolicy>>,
        environment: Option<Environment>,
    ) -> (RolloutPolicy, PolicySource) {
        let m = &manifest.value;
        let named = m.policy.as_ref().map(|name| (name, policies.get(name)));
        if let Some((name, None)) = named {
            let names: Vec<&str> = policies.keys().map(String::as_str).collect();
            let hint = names.iter().find(|n| similar(name, n));
            self.diagnostics.push(
                self.doc_diag("unknown-policy", self.origin(&manifest.path, "/policy"), "/policy")
                    .found(format!("policy {name:?}"))
                    .expected(match hint {
                        Some(h) => format!("a file in policies/ — did you mean {h:?}?"),
                        None if names.is_empty() => "a file policies/<name>.yaml (there is none)".into(),
                        None => format!("one of {}", names.join(", ")),
                    }),
            );
        }
        let mut chosen: Vec<(RolloutPolicy, PolicySource)> = Vec::new();
        if let Some(inline) = &m.rollout {
            chosen.push((inline.clone(), PolicySource::Inline(self.origin(&manifest.path, "/rollout").to_string())));
        }
        if let Some(b) = binding {
            chosen.push((b.policy.clone(), PolicySource::Binding(b.path.clone())));
        }
        if let Some((name, Some(p))) = named {
            chosen.push((p.value.clone(), PolicySource::Named(name.clone(), p.path.clone())));
        }
        if chosen.len() > 1 {
            let names: Vec<String> = chosen.iter().map(|(_, s)| s.to_string()).collect();
            self.diagnostics.push(
                self.doc_diag("policy-shadowed", &manifest.path, "")
                    .as_warning()
                    .found(format!("{} rollout policies: {}", chosen.len(), names.join("; ")))
                    .expected(format!("one; {} wins", names[0])),
            );
        }
        if let Some(first) = chosen.into_iter().next() {
            return first;
        }
        let env = environment.unwrap_or(Environment::Development);
        (super::default_policy(env), PolicySource::Default(env))
    }
}

fn data_files<'a>(files: &'a FileSet, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    files
        .iter()
        .filter(move |(p, _)| p.starts_with(dir) && Format::of(p).is_some())
        .map(|(p, b)| (p.as_str(), b.as_slice()))
}

fn stem(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    Some(name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name))
}

fn is_version_dir(dir: &str) -> bool {
    dir.strip_prefix('v').is_some_and(|v| semver::Version::parse(v).is_ok())
}

fn known(ids: &BTreeMap<String, Vec<String>>) -> String {
    if ids.is_empty() {
        return "there are no plugins".into();
    }
    let list: Vec<&str> = ids.keys().map(String::as_str).take(10).collect();
    format!("known: {}", list.join(", "))
}

/// Deep merge: maps merge key by key, anything else is replaced; `null` removes (RFC 7386).
pub fn merged(mut base: Value, patch: &Value) -> Value {
    merge_into(&mut base, patch);
    base
}

fn merge_into(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if k == "$schema" {
                    continue;
                }
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge_into(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep() {
        let base = serde_json::json!({"config": {"a": 1, "b": {"c": 2}}, "replicas": 1});
        let patch = serde_json::json!({"config": {"b": {"d": 3}, "a": null}, "replicas": 3});
        assert_eq!(merged(base, &patch), serde_json::json!({"config": {"b": {"c": 2, "d": 3}}, "replicas": 3}));
    }

    fn fleet(extra: &[(&str, &str)]) -> Loaded {
        let mut files = FileSet::new();
        files.insert("plugins/web/plugin.yaml".into(), b"id: web\nversion: 1.0.0\nruntime: {image: web:1}\n".to_vec());
        for (path, text) in extra {
            files.insert(path.to_string(), text.as_bytes().to_vec());
        }
        load(&files, None)
    }

    #[test]
    fn quiet_mistakes_are_warned_about() {
        let loaded = fleet(&[
            ("plugins/api/plugin.yaml", "id: api\nversion: 1.0.0\ncanary_weight: 10\nruntime: {image: api:1}\n"),
            ("rollouts/search.yaml", "pluginId: web\nstrategy: Rolling\n"),
        ]);
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        let codes: Vec<&str> = loaded.warnings().map(|d| d.code).collect();
        assert_eq!(codes, vec!["canary-weight", "binding-name"], "{:?}", loaded.diagnostics);
    }

    #[test]
    fn a_byte_order_mark_is_not_an_error() {
        let loaded = fleet(&[(
            "plugins/api/plugin.json",
            "\u{feff}{\"id\": \"api\", \"version\": \"1.0.0\", \"runtime\": {\"image\": \"api:1\"}}",
        )]);
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    }

    #[test]
    fn typos_are_similar() {
        assert!(similar("replica", "replicas"));
        assert!(similar("dependson", "dependsOn"));
        assert!(!similar("permissions", "policy"));
    }
}
