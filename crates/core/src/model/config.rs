//! The fleet config, `plugsync.yaml` at the root of the fleet repo.

use super::duration::Span;
use super::manifest::DriftMode;
use super::policy::Environment;
use super::routing::FleetTraffic;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetConfig {
    #[serde(default, rename = "$schema", skip_serializing)]
    pub schema: Option<String>,
    #[serde(default = "default_fleet")]
    pub fleet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default)]
    pub backend: BackendConfig,
    #[serde(default = "default_status_branch")]
    pub status_branch: String,
    #[serde(default = "default_interval")]
    pub interval: Span,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Zone `schedule` is read in (IANA name or fixed offset); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<SyncWindow>,
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Outgoing HTTPS: extra CAs to trust.
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub drift: DriftMode,
    #[serde(default)]
    pub healing: Healing,
    #[serde(default = "yes")]
    pub prune: bool,
    #[serde(default = "default_prune_fraction")]
    pub max_prune_fraction: f64,
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    #[serde(default, skip_serializing_if = "is_default_traffic")]
    pub traffic: FleetTraffic,
}

fn is_default_traffic(t: &FleetTraffic) -> bool {
    *t == FleetTraffic::default()
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            schema: None,
            fleet: default_fleet(),
            environment: None,
            backend: BackendConfig::default(),
            status_branch: default_status_branch(),
            interval: default_interval(),
            schedule: None,
            time_zone: None,
            windows: Vec::new(),
            alerts: AlertsConfig::default(),
            tls: TlsConfig::default(),
            drift: DriftMode::default(),
            healing: Healing::default(),
            prune: true,
            max_prune_fraction: default_prune_fraction(),
            concurrency: default_concurrency(),
            traffic: FleetTraffic::default(),
        }
    }
}

impl FleetConfig {
    /// The Docker network the fleet's plugins share: `backend.network`, else `plugsync-<fleet>`.
    pub fn docker_network(&self) -> String {
        self.backend.network.clone().unwrap_or_else(|| format!("plugsync-{}", self.fleet))
    }
}

fn default_fleet() -> String {
    "default".into()
}
fn default_status_branch() -> String {
    "plugsync/status".into()
}
fn default_interval() -> Span {
    Span::from_secs(30)
}
fn yes() -> bool {
    true
}
fn default_prune_fraction() -> f64 {
    0.5
}
fn default_concurrency() -> u32 {
    4
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Docker,
    Kubernetes,
}

/// `backend: docker` or `backend: {type: docker, network: …}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendConfig {
    #[serde(rename = "type")]
    pub kind: BackendKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl<'de> Deserialize<'de> for BackendConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            #[serde(rename = "type")]
            kind: BackendKind,
            host: Option<String>,
            network: Option<String>,
            namespace: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Kind(BackendKind),
            Full(Full),
        }
        Ok(match Form::deserialize(d)? {
            Form::Kind(kind) => BackendConfig { kind, ..Default::default() },
            Form::Full(f) => BackendConfig { kind: f.kind, host: f.host, network: f.network, namespace: f.namespace },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Allow,
    Deny,
}

/// Like Argo CD's sync windows: a cron start and a duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncWindow {
    pub kind: WindowKind,
    pub schedule: String,
    pub duration: Span,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// How `drift: heal` repairs: back-off between heals, and the flap limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Healing {
    #[serde(default = "default_backoff")]
    pub backoff: Span,
    #[serde(default = "default_flap_limit")]
    pub flap_limit: u32,
    #[serde(default = "default_flap_window")]
    pub flap_window: Span,
}

impl Default for Healing {
    fn default() -> Self {
        Healing { backoff: default_backoff(), flap_limit: default_flap_limit(), flap_window: default_flap_window() }
    }
}

fn default_backoff() -> Span {
    Span::from_secs(2)
}
fn default_flap_limit() -> u32 {
    5
}
fn default_flap_window() -> Span {
    Span::from_secs(600)
}

/// Trust for plugsync's outgoing HTTPS (alerts, Prometheus); the host's CAs are always trusted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM bundle on the host running plugsync, trusted besides the host's CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<Span>,
}
