//! Status in Git: `status/<plugin>.yaml` and `status/fleet.yaml` on the status branch, one
//! commit per change, pushed with fetch-rebase-retry so a concurrent writer never loses a
//! commit. Nothing secret is ever written: statuses hold versions, counts and reasons only.

pub mod book;
pub mod drift;
pub mod history;
pub mod render;

pub use render::{FleetStatus, Lifecycle, PluginStatus};

use crate::source::git::{GitCache, GitError, PushOutcome};
use std::collections::BTreeMap;

/// One commit to make: its message and the files it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCommit {
    pub message: String,
    pub files: Vec<(String, Option<Vec<u8>>)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteOutcome {
    /// Commits that landed on the remote, in order.
    pub commits: Vec<git2::Oid>,
    /// Non-fast-forward rejections retried after rebasing.
    pub retries: u32,
}

const ATTEMPTS: u32 = 8;

/// Writes `commits` on top of the remote status branch. Each commit is re-made on the fresh
/// remote tip after a rejected push (our files win, their commits stay), and a commit whose
/// files already hold those bytes is skipped, so nothing changed means no commit.
pub fn write(cache: &GitCache, branch: &str, commits: &[StatusCommit]) -> Result<WriteOutcome, GitError> {
    let mut retries = 0;
    loop {
        let tip = cache.fetch_branch(branch)?;
        let mut head = tip;
        let mut made = Vec::new();
        for commit in commits {
            let changed: Vec<(String, Option<Vec<u8>>)> = commit
                .files
                .iter()
                .filter(|(path, content)| head.and_then(|h| cache.file_at(h, path)) != *content)
                .cloned()
                .collect();
            if changed.is_empty() {
                continue;
            }
            let oid = cache.commit(head, &changed, &commit.message)?;
            made.push(oid);
            head = Some(oid);
        }
        let Some(new_head) = head.filter(|h| Some(*h) != tip) else {
            return Ok(WriteOutcome { commits: Vec::new(), retries });
        };
        match cache.push(new_head, branch, tip)? {
            PushOutcome::Pushed => return Ok(WriteOutcome { commits: made, retries }),
            PushOutcome::NonFastForward if retries + 1 < ATTEMPTS => {
                retries += 1;
                tracing::info!(retries, "status branch moved under us; rebasing and retrying");
            }
            PushOutcome::NonFastForward => {
                return Err(GitError::Rejected {
                    url: "status branch".into(),
                    message: format!("still non-fast-forward after {ATTEMPTS} attempts"),
                })
            }
        }
    }
}

/// Every plugin status on the status branch (for restarts and `plugsync status`).
pub fn read(cache: &GitCache, branch: &str) -> Result<(Option<FleetStatus>, BTreeMap<String, PluginStatus>), GitError> {
    let Some(tip) = cache.fetch_branch(branch)? else { return Ok((None, BTreeMap::new())) };
    Ok(read_at(cache, tip))
}

pub fn read_at(cache: &GitCache, tip: git2::Oid) -> (Option<FleetStatus>, BTreeMap<String, PluginStatus>) {
    read_files(cache.files_under(tip, "status/"))
}

/// Plugin → the spec hash it was last brought to converged at, for the plan's drift gate.
pub fn applied_specs(statuses: &BTreeMap<String, PluginStatus>) -> BTreeMap<String, String> {
    statuses.iter().filter_map(|(id, s)| Some((id.clone(), s.applied.clone()?))).collect()
}

/// The failed rollouts the status book records, for the plan's gates.
pub fn failed_rollouts(statuses: &BTreeMap<String, PluginStatus>) -> Vec<crate::plan::gates::FailedRollout> {
    statuses
        .iter()
        .filter_map(|(id, s)| {
            let f = s.failed.as_ref()?;
            Some(crate::plan::gates::FailedRollout {
                plugin: id.clone(),
                spec_hash: f.spec_hash.clone(),
                version: f.version.clone(),
                revision: f.revision.clone(),
                reason: f.reason.clone(),
                at: f.at.clone(),
            })
        })
        .collect()
}

/// The status branch's files (path, bytes) → fleet and plugin statuses. Whatever someone
/// pushed there is outside input: unreadable files are skipped, never a panic.
pub fn read_files(
    files: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> (Option<FleetStatus>, BTreeMap<String, PluginStatus>) {
    let mut plugins = BTreeMap::new();
    let mut fleet = None;
    for (path, bytes) in files {
        let Ok(text) = std::str::from_utf8(&bytes) else { continue };
        if path == "status/fleet.yaml" {
            fleet = serde_saphyr::from_str::<FleetStatus>(text).ok();
        } else if let Ok(status) = serde_saphyr::from_str::<PluginStatus>(text) {
            plugins.insert(status.plugin.clone(), status);
        }
    }
    (fleet, plugins)
}
