//! The admission policy: guard rails that live outside the fleet repo (daemon flags or a file
//! the repo cannot change), so a pull request cannot grant itself a bigger share of the host.
//! Pure: the caller reads the file; `admit` judges a loaded fleet against the policy.

use super::diagnostic::Diagnostic;
use super::document::{field_path, Document};
use super::quantity::{Cpu, Memory};
use super::schema::SchemaKind;
use super::{FileSet, Fleet, Plugin};
use crate::model::image::normalise as normalise_image;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Every rule is optional: an absent rule allows anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionPolicy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_image_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fleet_cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fleet_memory: Option<Memory>,
}

/// The rule a plugin broke, spelled as in the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    AllowedImagePrefixes,
    MaxReplicas,
    MaxCpu,
    MaxMemory,
    MaxFleetCpu,
    MaxFleetMemory,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::AllowedImagePrefixes => "allowedImagePrefixes",
            Rule::MaxReplicas => "maxReplicas",
            Rule::MaxCpu => "maxCpu",
            Rule::MaxMemory => "maxMemory",
            Rule::MaxFleetCpu => "maxFleetCpu",
            Rule::MaxFleetMemory => "maxFleetMemory",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One plugin refused: which rule, where in the manifest, what it asked for, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub plugin: String,
    pub rule: Rule,
    /// Manifest file, relative to the fleet root.
    pub file: String,
    /// Line of `field` in `file`, once `locate` found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Manifest field the rule reads, e.g. `runtime.resources.cpu`.
    pub field: String,
    pub found: String,
    pub allowed: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file)?,
            None => write!(f, "{}", self.file)?,
        }
        write!(
            f,
            ": plugin {} refused by admission rule {}: {} found {}, allowed {}",
            self.plugin, self.rule, self.field, self.found, self.allowed
        )
    }
}

impl AdmissionPolicy {
    /// Parses a policy file (`path` names it in errors; its extension picks JSON or YAML).
    /// Errors point at file, line, field, what was found and what was expected.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<AdmissionPolicy, Vec<Diagnostic>> {
        let doc = Document::parse(path, bytes).map_err(|d| vec![d])?;
        // An empty file is a policy without rules, like an empty plugsync.yaml.
        if doc.value.is_null() {
            return Ok(AdmissionPolicy::default());
        }
        let problems = SchemaKind::AdmissionPolicy.check(&doc);
        if !problems.is_empty() {
            return Err(problems);
        }
        serde_path_to_error::deserialize::<_, AdmissionPolicy>(doc.value.clone()).map_err(|e| {
            let pointer = format!("/{}", e.path().to_string().replace('.', "/"));
            let message = e.inner().to_string();
            let (found, expected) = match message.split_once(", expected ") {
                Some((found, expected)) => (found.trim_start_matches("found ").to_string(), expected.to_string()),
                None => (message, "a value the admission-policy schema accepts".to_string()),
            };
            vec![Diagnostic::error("admission-policy", path)
                .at(doc.locate(&pointer))
                .field(field_path(&pointer))
                .found(found)
                .expected(expected)]
        })
    }

    /// Rules given on the command line override the same rules from the file.
    pub fn overridden_by(mut self, flags: AdmissionPolicy) -> AdmissionPolicy {
        if !flags.allowed_image_prefixes.is_empty() {
            self.allowed_image_prefixes = flags.allowed_image_prefixes;
        }
        self.max_replicas = flags.max_replicas.or(self.max_replicas);
        self.max_cpu = flags.max_cpu.or(self.max_cpu);
        self.max_memory = flags.max_memory.or(self.max_memory);
        self.max_fleet_cpu = flags.max_fleet_cpu.or(self.max_fleet_cpu);
        self.max_fleet_memory = flags.max_fleet_memory.or(self.max_fleet_memory);
        self
    }

    pub fn is_empty(&self) -> bool {
        *self == AdmissionPolicy::default()
    }
}

/// Judges every plugin of `fleet`. Per-plugin rules first; then the fleet sums (replicas ×
/// per-instance limit) over the plugins still admitted, in id order, so the verdict is the
/// same on every run and a plugin added later cannot push out one that was there before it
/// in the order. A plugin's fixed canary counts as part of it.
pub fn admit(policy: &AdmissionPolicy, fleet: &Fleet) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let mut fleet_cpu: u64 = 0;
    let mut fleet_memory: u64 = 0;
    for plugin in fleet.plugins.values() {
        let own = plugin_refusals(policy, plugin);
        if !own.is_empty() {
            refusals.extend(own);
            continue;
        }
        let (cpu, memory) = demand(plugin);
        let mut refused = false;
        if let Some(max) = policy.max_fleet_cpu {
            let total = fleet_cpu.saturating_add(cpu);
            if total > max.millis() {
                refused = true;
                refusals.push(refusal(
                    plugin,
                    Rule::MaxFleetCpu,
                    "replicas × runtime.resources.cpu",
                    format!("{} (fleet total would be {})", Cpu::from_millis(cpu), Cpu::from_millis(total)),
                    format!(
                        "at most {max} for the whole fleet ({} used by plugins before it)",
                        Cpu::from_millis(fleet_cpu)
                    ),
                ));
            }
        }
        if let Some(max) = policy.max_fleet_memory {
            let total = fleet_memory.saturating_add(memory);
            if total > max.bytes() {
                refused = true;
                refusals.push(refusal(
                    plugin,
                    Rule::MaxFleetMemory,
                    "replicas × runtime.resources.memory",
                    format!("{} (fleet total would be {})", Memory::from_bytes(memory), Memory::from_bytes(total)),
                    format!(
                        "at most {max} for the whole fleet ({} used by plugins before it)",
                        Memory::from_bytes(fleet_memory)
                    ),
                ));
            }
        }
        if !refused {
            fleet_cpu = fleet_cpu.saturating_add(cpu);
            fleet_memory = fleet_memory.saturating_add(memory);
        }
    }
    refusals
}

/// Millicores and bytes the plugin asks for across its instances (stable and fixed canary).
fn demand(plugin: &Plugin) -> (u64, u64) {
    let mut cpu = 0u64;
    let mut memory = 0u64;
    for manifest in std::iter::once(&plugin.manifest).chain(plugin.canary.as_ref().map(|c| &c.manifest)) {
        let replicas = u64::from(manifest.replicas);
        let limits = manifest.runtime.resources;
        cpu = cpu.saturating_add(replicas.saturating_mul(limits.cpu.map_or(0, Cpu::millis)));
        memory = memory.saturating_add(replicas.saturating_mul(limits.memory.map_or(0, Memory::bytes)));
    }
    (cpu, memory)
}

fn refusal(plugin: &Plugin, rule: Rule, field: &str, found: String, allowed: String) -> Refusal {
    Refusal {
        plugin: plugin.id.clone(),
        rule,
        file: plugin.source.clone(),
        line: None,
        field: field.into(),
        found,
        allowed,
    }
}

fn plugin_refusals(policy: &AdmissionPolicy, plugin: &Plugin) -> Vec<Refusal> {
    let mut out = Vec::new();
    let manifests = std::iter::once((&plugin.manifest, &plugin.source))
        .chain(plugin.canary.as_ref().map(|c| (&c.manifest, &c.source)));
    for (manifest, source) in manifests {
        let mut push = |rule, field: &str, found: String, allowed: String| {
            let mut r = refusal(plugin, rule, field, found, allowed);
            r.file = source.clone();
            if !out.contains(&r) {
                out.push(r);
            }
        };
        if !policy.allowed_image_prefixes.is_empty() {
            let image = normalise_image(&manifest.runtime.image);
            if !policy.allowed_image_prefixes.iter().any(|p| prefix_allows(p, &image)) {
                let allowed: Vec<String> = policy.allowed_image_prefixes.iter().map(|p| normalise_prefix(p)).collect();
                push(
                    Rule::AllowedImagePrefixes,
                    "runtime.image",
                    format!("{:?} (normalised {image})", manifest.runtime.image),
                    format!("an image under {}", allowed.join(", ")),
                );
            }
        }
        if let Some(max) = policy.max_replicas {
            if manifest.replicas > max {
                push(Rule::MaxReplicas, "replicas", manifest.replicas.to_string(), format!("at most {max}"));
            }
        }
        let limits = manifest.runtime.resources;
        if let Some(max) = policy.max_cpu {
            match limits.cpu {
                Some(cpu) if cpu <= max => {}
                found => push(
                    Rule::MaxCpu,
                    "runtime.resources.cpu",
                    found.map_or("no CPU limit".into(), |c| c.to_string()),
                    format!("at most {max} per instance"),
                ),
            }
        }
        if let Some(max) = policy.max_memory {
            match limits.memory {
                Some(memory) if memory <= max => {}
                found => push(
                    Rule::MaxMemory,
                    "runtime.resources.memory",
                    found.map_or("no memory limit".into(), |m| m.to_string()),
                    format!("at most {max} per instance"),
                ),
            }
        }
    }
    out
}

/// Fills in the line of each refusal's field from the fleet's files (the bytes `admit` judged).
/// A value an environment overlay set is located in the manifest all the same: that is where
/// the plugin's author looks first.
pub fn locate(refusals: &mut [Refusal], files: &FileSet) {
    for r in refusals.iter_mut() {
        let pointer = match r.rule {
            Rule::AllowedImagePrefixes => "/runtime/image",
            Rule::MaxReplicas => "/replicas",
            Rule::MaxCpu | Rule::MaxFleetCpu => "/runtime/resources/cpu",
            Rule::MaxMemory | Rule::MaxFleetMemory => "/runtime/resources/memory",
        };
        let Some(bytes) = files.get(&r.file) else { continue };
        if let Ok(doc) = Document::parse(&r.file, bytes) {
            r.line = doc.locate(pointer).map(|(line, _)| line);
        }
    }
}

/// A prefix spelled like an image reference is normalised like one: `nginx` →
/// `docker.io/library/nginx`, `acme/` → `docker.io/acme/`; a registry host stays as written.
pub fn normalise_prefix(prefix: &str) -> String {
    let first = prefix.split('/').next().unwrap_or_default();
    if first.contains('.') || first.contains(':') || first == "localhost" {
        prefix.to_string()
    } else if prefix.contains('/') {
        format!("docker.io/{prefix}")
    } else {
        format!("docker.io/library/{prefix}")
    }
}

/// Whether `prefix` allows the normalised `image`. A prefix ends at a component boundary, so
/// `docker.io/library/nginx` allows `nginx:1.27` and `nginx@sha256:…` but not `nginx-evil`.
pub fn prefix_allows(prefix: &str, image: &str) -> bool {
    let prefix = normalise_prefix(prefix);
    let Some(rest) = image.strip_prefix(&prefix) else { return false };
    rest.is_empty() || prefix.ends_with(['/', ':', '@']) || rest.starts_with(['/', ':', '@'])
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
