//! Where desired state comes from: a directory on disk or a Git revision.

pub mod dir;
pub mod git;

use crate::model::{self, Environment, Loaded};
use std::path::Path;

/// A fleet read from a directory, with the revision it is at.
pub struct LocalFleet {
    pub loaded: Loaded,
    pub revision: String,
}

pub fn load_dir(path: &Path, environment: Option<Environment>) -> Result<LocalFleet, dir::DirError> {
    let files = dir::read_fleet_dir(path)?;
    let loaded = model::load(&files, environment);
    let revision = git::head_revision(path).unwrap_or_else(|| "worktree".into());
    Ok(LocalFleet { loaded, revision })
}
