//! The fleet model: manifests, rollout policies and fleet config, parsed and checked.
//! Pure: it reads bytes it is given and never touches disk, network or clock.

pub mod admission;
mod check;
pub mod config;
mod context;
pub mod diagnostic;
pub mod document;
pub mod duration;
pub mod files;
pub mod image;
pub mod load;
pub mod manifest;
pub mod policy;
mod prepare;
pub mod quantity;
pub mod rate;
pub mod routing;
pub mod schema;
pub mod schema_doc;
pub mod windows;

pub use check::cycles;
pub use config::{BackendKind, FleetConfig, Healing};
pub use diagnostic::{Diagnostic, Severity};
pub use duration::Span;
pub use load::{load, load_cached, FileSet, Loaded};
pub use manifest::{DriftMode, PluginManifest, Resources, SecretSource};
pub use policy::{Environment, RolloutPolicy, Strategy};
pub use prepare::ParseCache;
pub use quantity::{Cpu, Memory};
pub use rate::Rate;
pub use routing::Routing;
pub use schema::SchemaKind;

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The first seven characters of a revision, for people. Char-safe: a revision read back
/// from the status branch or an API may hold anything.
pub fn short_revision(revision: &str) -> &str {
    revision.char_indices().nth(7).map_or(revision, |(end, _)| &revision[..end])
}

/// The desired state of a fleet at one revision.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fleet {
    pub config: FleetConfig,
    pub plugins: BTreeMap<String, Plugin>,
}

/// One plugin as the fleet wants it: manifest with the environment overlay applied, and the
/// rollout policy that governs changes to it.
#[derive(Debug, Clone, Serialize)]
pub struct Plugin {
    pub id: String,
    pub manifest: PluginManifest,
    /// Manifest file, relative to the fleet root.
    pub source: String,
    /// BotMatrix-style second version folder: a canary held at a fixed weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<FixedCanary>,
    /// Weight of `manifest` when `canary` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_weight: Option<f64>,
    pub policy: RolloutPolicy,
    pub policy_source: PolicySource,
    pub strategy: Strategy,
    /// How traffic reaches the plugin's instances (fleet default, manifest override).
    #[serde(skip_serializing_if = "Routing::is_dns")]
    pub routing: Routing,
}

impl Plugin {
    /// Every version the manifests declare (one, or two with a fixed canary).
    pub fn versions(&self) -> Vec<&str> {
        let mut v = vec![self.manifest.version.as_str()];
        if let Some(c) = &self.canary {
            v.push(c.manifest.version.as_str());
        }
        v
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FixedCanary {
    pub manifest: PluginManifest,
    pub source: String,
    pub weight: f64,
}

/// Where a plugin's rollout policy came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "from", rename_all = "lowercase")]
pub enum PolicySource {
    Inline(String),
    Binding(String),
    Named(String, String),
    Default(Environment),
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Inline(path) => write!(f, "inline rollout in {path}"),
            PolicySource::Binding(path) => write!(f, "binding {path}"),
            PolicySource::Named(name, path) => write!(f, "policy {name} ({path})"),
            PolicySource::Default(env) => write!(f, "default for {env:?}"),
        }
    }
}

/// The built-in policy for an environment (`policy/defaults/<env>.yaml`, embedded).
/// Parsed once per process: every plugin without a policy of its own asks for one.
pub fn default_policy(env: Environment) -> RolloutPolicy {
    static DEFAULTS: std::sync::OnceLock<[RolloutPolicy; 4]> = std::sync::OnceLock::new();
    let [development, qa, staging, production] = DEFAULTS.get_or_init(|| {
        // Embedded and covered by tests; a broken default is a build defect.
        let parse = |text: &str| serde_saphyr::from_str(text).expect("built-in default policy parses");
        [
            parse(include_str!("../../../../policy/defaults/development.yaml")),
            parse(include_str!("../../../../policy/defaults/qa.yaml")),
            parse(include_str!("../../../../policy/defaults/staging.yaml")),
            parse(include_str!("../../../../policy/defaults/production.yaml")),
        ]
    });
    match env {
        Environment::Development => development.clone(),
        Environment::QA => qa.clone(),
        Environment::Staging => staging.clone(),
        Environment::Production => production.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policies_parse_and_match_their_environment() {
        for env in Environment::ALL {
            let p = default_policy(env);
            assert_eq!(p.effective_strategy(None), env.default_strategy(), "{env:?}");
        }
    }
}

#[cfg(test)]
mod short_revision_tests {
    /// Issue 10, defect 3 (its class): a revision read back from outside is cut by characters.
    #[test]
    fn defect_3_short_revision_is_char_safe() {
        for (revision, want) in [
            ("34c50c9e2f", "34c50c9"),
            ("abc", "abc"),
            ("", ""),
            ("ééééééééé", "ééééééé"),
            ("123456é89", "123456é"),
            ("1234567", "1234567"),
        ] {
            assert_eq!(super::short_revision(revision), want, "{revision:?}");
        }
    }
}
