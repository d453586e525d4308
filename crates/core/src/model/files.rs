//! The fleet repo's files as the loader sees them: which paths it reads and under what names.

use super::document::Format;
use std::collections::BTreeMap;

/// The files of a fleet repo: path relative to the fleet root (`/`-separated) → content.
pub type FileSet = BTreeMap<String, Vec<u8>>;

pub(super) const CONFIG_NAMES: [&str; 3] = ["plugsync.yaml", "plugsync.yml", "plugsync.json"];
pub(super) const MANIFEST_NAMES: [&str; 6] =
    ["plugin.json", "plugin.yaml", "plugin.yml", "manifest.json", "manifest.yaml", "manifest.yml"];

/// Whether the loader reads this path at all (used by sources to skip the rest of a repo).
pub fn is_fleet_file(path: &str) -> bool {
    let data = Format::of(path).is_some();
    CONFIG_NAMES.contains(&path)
        || (data && ["plugins/", "policies/", "rollouts/", "environments/"].iter().any(|p| path.starts_with(p)))
}
