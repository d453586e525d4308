//! The status branch's history as the dashboard shows it: the last commits, newest first, each
//! with the status files it changed and its patch, read from the daemon's clone after each
//! push (so a page never waits on Git).

use crate::source::git::GitCache;
use git2::{DiffFormat, DiffOptions, Oid};
use std::sync::Arc;
use tokio::sync::RwLock;

/// Commits kept for the dashboard.
pub const KEPT: usize = 300;
/// A patch longer than this is cut (a fleet file can be long; the page needs its start).
const PATCH_LIMIT: usize = 32 * 1024;

/// One status commit.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub sha: String,
    /// Commit time, RFC 3339 (UTC).
    pub at: String,
    pub subject: String,
    pub message: String,
    /// Paths the commit changed (`status/<plugin>.yaml`, `status/fleet.yaml`).
    pub paths: Vec<String>,
    /// Unified diff against its first parent, cut at [`PATCH_LIMIT`] bytes.
    pub patch: String,
}

impl HistoryEntry {
    /// Whether the commit changed `plugin`'s status file.
    pub fn touches(&self, plugin: &str) -> bool {
        let path = format!("status/{plugin}.yaml");
        self.paths.iter().any(|p| *p == path)
    }
}

/// The history the daemon keeps for the server: replaced whole after each read.
pub type SharedHistory = Arc<RwLock<Vec<HistoryEntry>>>;

/// Up to `limit` commits from `tip` along first parents, newest first. A commit that cannot
/// be read ends the walk (what came before stays).
pub fn read(cache: &GitCache, tip: Oid, limit: usize) -> Vec<HistoryEntry> {
    let repo = cache.repository();
    let mut out = Vec::new();
    let mut next = repo.find_commit(tip).ok();
    while let Some(commit) = next.take() {
        if out.len() >= limit {
            break;
        }
        let parent = commit.parent(0).ok();
        let (paths, patch) = changes(repo, &commit, parent.as_ref()).unwrap_or_default();
        let at = chrono::DateTime::from_timestamp(commit.time().seconds(), 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        out.push(HistoryEntry {
            sha: commit.id().to_string(),
            at,
            subject: commit.summary().ok().flatten().map(str::to_string).unwrap_or_default(),
            message: commit.message().map(|m| m.trim_end().to_string()).unwrap_or_default(),
            paths,
            patch,
        });
        next = parent;
    }
    out
}

/// The paths `commit` changed against `parent` and the patch, cut at [`PATCH_LIMIT`].
fn changes(
    repo: &git2::Repository,
    commit: &git2::Commit,
    parent: Option<&git2::Commit>,
) -> Result<(Vec<String>, String), git2::Error> {
    let old = parent.map(|p| p.tree()).transpose()?;
    let diff =
        repo.diff_tree_to_tree(old.as_ref(), Some(&commit.tree()?), Some(DiffOptions::new().context_lines(2)))?;
    let paths = diff
        .deltas()
        .filter_map(|d| d.new_file().path().or_else(|| d.old_file().path()).map(|p| p.to_string_lossy().into_owned()))
        .collect();
    let mut patch = String::new();
    diff.print(DiffFormat::Patch, |_, _, line| {
        if patch.len() >= PATCH_LIMIT {
            return false;
        }
        let origin = line.origin();
        if matches!(origin, '+' | '-' | ' ') {
            patch.push(origin);
        }
        patch.push_str(&String::from_utf8_lossy(line.content()));
        true
    })
    .or_else(|e| if patch.len() >= PATCH_LIMIT { Ok(()) } else { Err(e) })?;
    if patch.len() >= PATCH_LIMIT {
        patch.push_str("\n… (cut)\n");
    }
    Ok((paths, patch))
}
