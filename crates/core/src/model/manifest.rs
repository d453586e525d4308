//! The plugin manifest (`plugins/<id>/plugin.json|yaml`), accepting Plexica-style files as written.

use super::policy::RolloutPolicy;
use super::quantity::{Cpu, Memory};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Fields of a manifest that plugsync reads; other catalogue fields (author, permissions, …)
/// are kept in `extra` and only warned about when they look like typos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginManifest {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub runtime: Runtime,
    #[serde(default)]
    pub api: Api,
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, SecretSource>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftMode>,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<super::routing::PluginTraffic>,
    #[serde(default, rename = "canary_weight", skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<f64>,
    #[serde(flatten, skip_serializing)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Runtime {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub image: String,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub reservations: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Api {
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    #[serde(default = "default_health")]
    pub health_check: String,
    #[serde(default = "default_liveness")]
    pub liveness: String,
    #[serde(default = "default_readiness")]
    pub readiness: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    #[serde(default = "default_metrics")]
    pub metrics: String,
}

fn default_port() -> u16 {
    8080
}
fn default_health() -> String {
    "/health".into()
}
fn default_liveness() -> String {
    "/health/live".into()
}
fn default_readiness() -> String {
    "/health/ready".into()
}
fn default_metrics() -> String {
    "/metrics".into()
}

impl Default for Api {
    fn default() -> Self {
        Api {
            port: default_port(),
            base_path: None,
            health_check: default_health(),
            liveness: default_liveness(),
            readiness: default_readiness(),
            openapi: None,
            metrics: default_metrics(),
        }
    }
}

/// Where a secret's value comes from on the host running plugsync; the value itself is never
/// part of the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SecretSource {
    FromEnv(String),
    FromFile(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    #[default]
    Alert,
    Heal,
}

/// Top-level keys that plugin catalogues (Plexica and others) write and plugsync ignores quietly.
pub const KNOWN_FOREIGN_KEYS: &[&str] = &[
    "$schema",
    "author",
    "authors",
    "license",
    "homepage",
    "repository",
    "keywords",
    "icon",
    "category",
    "permissions",
    "frontend",
    "backend",
    "events",
    "routes",
    "ui",
    "i18n",
    "translations",
    "entryPoint",
    "main",
    "engines",
    "minPlatformVersion",
    "maxPlatformVersion",
    "metadata",
    "dependencies",
];
