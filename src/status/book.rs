//! The status book's value types, as stored on the status branch (YAML, one file per plugin
//! and one for the fleet). A leaf: rendering a pass and recording drift both build on it.

use crate::strategy::RolloutState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Lifecycle of a plugin as recorded in Git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lifecycle {
    Registered,
    Installing,
    Installed,
    Active,
    Disabled,
    Uninstalling,
    Uninstalled,
    Failed,
    RolledBack,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotStatus {
    pub version: String,
    pub instances: u32,
    /// The image the slot's instances run, by content, as the engine reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastChange {
    pub kind: String,
    pub result: String,
    pub reasons: Vec<String>,
    pub revision: String,
    pub at: String,
}

/// A rollout that failed: not retried until the spec changes or someone asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRollout {
    pub revision: String,
    pub version: String,
    pub spec_hash: String,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    pub plugin: String,
    pub state: Lifecycle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Revision whose spec this plugin runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, SlotStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<LastChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedRollout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// A rollout in flight: what a restarted daemon resumes from (with what really runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutProgress>,
    /// Spec (all slots, replica counts) last brought to converged: what runs *should* be
    /// this; a difference while Git still says this is drift, not a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// Open drift, or the last one and when it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgress {
    /// Spec hash the rollout drives to.
    pub target: String,
    pub step: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    #[serde(default)]
    pub promoted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RolloutProgress {
    pub fn from_state(target: &str, state: &RolloutState) -> Self {
        RolloutProgress {
            target: target.into(),
            step: state.step,
            paused: state.paused.clone(),
            promoted: state.promoted,
            note: state.note.clone(),
        }
    }

    pub fn to_state(&self) -> RolloutState {
        RolloutState {
            step: self.step,
            paused: self.paused.clone(),
            promoted: self.promoted,
            note: self.note.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetStatus {
    pub fleet: String,
    /// Last revision read from Git.
    pub revision: String,
    pub plugins: BTreeMap<String, Lifecycle>,
    /// Problems with the revision itself (validation errors, fetch failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// The managed router as the pass left it: "2 of 2 replicas running, routing crm, web".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    pub open: bool,
    /// One line per finding: `kind instance: expected …, found …`.
    pub findings: Vec<String>,
    pub detected_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

pub fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).unwrap_or_default()
}
