//! `plugsync docs [PATH] -o DIR`: the fleet's catalogue, Markdown and static HTML, one page per
//! plugin and an index with the dependency graph. The pages come from the pure
//! `catalogue` room; this edge loads the fleet, reads the status branch when asked, and
//! writes the files.

use plugsync::catalogue::{self, DriftSummary, GeneratedFile, SlotSummary, StatusBook, StatusSummary};
use plugsync::model::{self, short_revision, Environment};
use plugsync::status::book::{LastChange, RolloutProgress};
use plugsync::status::{Lifecycle, PluginStatus};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("{path}: cannot create the folder: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("--status-branch {branch}: {path} is not inside a Git repository, so it has no status branch")]
    NoRepository { branch: String, path: PathBuf },
    #[error(
        "--status-branch {branch}: the Git repository holding {path} has no branch {branch} \
         (looked for refs/heads/{branch} and refs/remotes/origin/{branch})"
    )]
    NoBranch { branch: String, path: PathBuf },
}

/// Exit 0 when the catalogue is written, 1 when the fleet is invalid (its problems on stderr).
pub fn run(
    path: &Path,
    output: &Path,
    environment: Option<Environment>,
    status_branch: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let files = plugsync::source::dir::read_fleet_dir(path)?;
    let loaded = model::load(&files, environment);
    if !loaded.is_valid() {
        for d in &loaded.diagnostics {
            eprintln!("{d}");
        }
        eprintln!(
            "✗ {}: {} errors; no catalogue written (plugsync validate shows the same)",
            path.display(),
            loaded.errors().count()
        );
        return Ok(ExitCode::from(1));
    }
    let status = status_branch.map(|branch| read_status(path, branch)).transpose()?;
    let pages = catalogue::render(&loaded.fleet, status.as_ref());
    write_all(output, &pages)?;
    println!(
        "✓ {}: catalogue of {} plugins written to {} (index.html, index.md, {}, plugins/<id>.html and .md)",
        path.display(),
        loaded.fleet.plugins.len(),
        output.display(),
        catalogue::DOT_FILE
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes every file under `output`, creating folders and overwriting what is there.
pub fn write_all(output: &Path, files: &[GeneratedFile]) -> Result<(), DocsError> {
    for file in files {
        let path = file.path.split('/').fold(output.to_path_buf(), |p, part| p.join(part));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| DocsError::CreateDir { path: parent.to_path_buf(), source })?;
        }
        std::fs::write(&path, &file.contents).map_err(|source| DocsError::Write { path, source })?;
    }
    Ok(())
}

/// The status files on `branch` of the repository holding `path` (its local branch, else
/// `origin`'s), as the pages show them.
pub fn read_status(path: &Path, branch: &str) -> Result<StatusBook, DocsError> {
    let repo = git2::Repository::discover(path)
        .map_err(|_| DocsError::NoRepository { branch: branch.into(), path: path.to_path_buf() })?;
    let (refname, files) = plugsync::source::git::local_branch_files(path, branch, "status/")
        .ok_or_else(|| DocsError::NoBranch { branch: branch.into(), path: path.to_path_buf() })?;
    let commit = repo.refname_to_id(&refname).map(|oid| oid.to_string()).unwrap_or_default();
    let shown =
        refname.strip_prefix("refs/heads/").or_else(|| refname.strip_prefix("refs/remotes/")).unwrap_or(&refname);
    let (_, statuses) = plugsync::status::read_files(files);
    Ok(StatusBook {
        source: format!("{shown} at {}", short_revision(&commit)),
        plugins: statuses.into_iter().map(|(id, s)| (id, summary(&s))).collect(),
    })
}

/// One plugin's status document, in the words its page shows.
pub fn summary(s: &PluginStatus) -> StatusSummary {
    StatusSummary {
        state: lifecycle(s.state),
        desired_version: s.desired_version.clone(),
        slots: s
            .slots
            .iter()
            .map(|(slot, st)| SlotSummary { slot: slot.clone(), version: st.version.clone(), instances: st.instances })
            .collect(),
        revision: s.revision.clone(),
        last_change: s.last_change.as_ref().map(last_change),
        failed: s.failed.as_ref().map(|f| {
            format!("version {} at revision {}: {} ({})", f.version, short_revision(&f.revision), f.reason, f.at)
        }),
        last_error: s.last_error.clone(),
        rollout: s.rollout.as_ref().map(rollout),
        drift: s.drift.as_ref().map(|d| DriftSummary {
            open: d.open,
            findings: d.findings.clone(),
            detected_at: d.detected_at.clone(),
            resolved_at: d.resolved_at.clone(),
        }),
    }
}

/// `ACTIVE`, `ROLLED_BACK`, …: as the status files write it.
fn lifecycle(state: Lifecycle) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{state:?}"))
}

fn last_change(c: &LastChange) -> String {
    let mut out = format!("{} {} at {} (revision {})", c.kind, c.result, c.at, short_revision(&c.revision));
    if !c.reasons.is_empty() {
        out.push_str(&format!(": {}", c.reasons.join("; ")));
    }
    out
}

fn rollout(r: &RolloutProgress) -> String {
    let mut out = format!("step {} towards spec {}", r.step, short_revision(&r.target));
    if let Some(paused) = &r.paused {
        out.push_str(&format!(", paused: {paused}"));
    }
    if r.promoted {
        out.push_str(", promoted");
    }
    if let Some(note) = &r.note {
        out.push_str(&format!(" ({note})"));
    }
    out
}
