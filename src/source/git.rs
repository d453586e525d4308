//! The Git side: a bare cache clone per remote, fetched once per cycle; fleet files read from
//! a revision's tree; only the files changed between two revisions re-read; the status branch
//! written with commits pushed with fetch-rebase-retry.

use crate::model::load::is_fleet_file;
use crate::model::FileSet;
use git2::{Cred, FetchOptions, Oid, PushOptions, RemoteCallbacks, Repository};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {action} {url}: {message}")]
    Remote { action: &'static str, url: String, message: String },
    #[error("git: branch or tag {reference:?} not found on {url}")]
    NoSuchRef { reference: String, url: String },
    #[error("git: reading {what} at {revision}: {message}")]
    Read { what: String, revision: String, message: String },
    #[error("git cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
    #[error("git push to {url} rejected: {message}")]
    Rejected { url: String, message: String },
}

/// How to authenticate to a remote. Secrets come from env or files, never from Git.
#[derive(Clone, Default)]
pub enum GitAuth {
    #[default]
    None,
    /// HTTPS token (GitHub/Gitea/GitLab accept it as the password).
    Token(String),
    /// SSH private key file (and optional passphrase).
    SshKey { key: PathBuf, passphrase: Option<String> },
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitAuth::None => f.write_str("None"),
            GitAuth::Token(_) => f.write_str("Token(<redacted>)"),
            GitAuth::SshKey { key, .. } => write!(f, "SshKey({})", key.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GitRemote {
    /// `file://`, a local path, `git://`, `https://` or `ssh://`.
    pub url: String,
    /// Branch name (`main`) or a full ref (`refs/tags/v1`).
    pub reference: String,
    pub auth: GitAuth,
}

impl GitRemote {
    fn full_ref(&self) -> String {
        if self.reference.starts_with("refs/") {
            self.reference.clone()
        } else {
            format!("refs/heads/{}", self.reference)
        }
    }

    /// Where the fetched tip is kept in the cache.
    fn tracking_ref(full: &str) -> String {
        format!("refs/plugsync/remote/{}", full.trim_start_matches("refs/"))
    }
}

/// Whether a push was taken or lost a race.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Pushed,
    NonFastForward,
}

/// The bare cache clone of one remote.
pub struct GitCache {
    repo: Repository,
    remote: GitRemote,
    path: PathBuf,
}

impl GitCache {
    /// Opens the cache at `dir`, creating a bare repository there on first use.
    pub fn open(dir: &Path, remote: GitRemote) -> Result<GitCache, GitError> {
        let cache_error =
            |e: git2::Error| GitError::Cache { path: dir.to_path_buf(), message: e.message().to_string() };
        let repo = match Repository::open_bare(dir) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| GitError::Cache { path: dir.to_path_buf(), message: e.to_string() })?;
                Repository::init_bare(dir).map_err(cache_error)?
            }
        };
        Ok(GitCache { repo, remote, path: dir.to_path_buf() })
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let auth = self.remote.auth.clone();
        let tried = RefCell::new(false);
        callbacks.credentials(move |_url, username, allowed| {
            // libgit2 calls again after a refusal; answering twice would loop forever.
            if tried.replace(true) {
                return Err(git2::Error::from_str("credentials refused"));
            }
            match &auth {
                GitAuth::Token(token) if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) => {
                    Cred::userpass_plaintext(username.unwrap_or("x-access-token"), token)
                }
                GitAuth::SshKey { key, passphrase } => {
                    Cred::ssh_key(username.unwrap_or("git"), None, key, passphrase.as_deref())
                }
                _ => Cred::default(),
            }
        });
        callbacks
    }

    fn fetch_refspecs(&self, refspecs: &[String]) -> Result<(), GitError> {
        let mut remote = self.repo.remote_anonymous(&self.remote.url).map_err(|e| self.remote_error("fetch", e))?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(self.callbacks());
        options.download_tags(git2::AutotagOption::None);
        remote.fetch(refspecs, Some(&mut options), None).map_err(|e| self.remote_error("fetch", e))
    }

    fn remote_error(&self, action: &'static str, e: git2::Error) -> GitError {
        GitError::Remote { action, url: self.remote.url.clone(), message: e.message().to_string() }
    }

    /// Fetches the followed branch or tag (one fetch however many plugins) and returns its tip.
    pub fn fetch(&self) -> Result<Oid, GitError> {
        let full = self.remote.full_ref();
        let tracking = GitRemote::tracking_ref(&full);
        self.fetch_refspecs(&[format!("+{full}:{tracking}")])?;
        let reference = self.repo.find_reference(&tracking).map_err(|_| GitError::NoSuchRef {
            reference: self.remote.reference.clone(),
            url: self.remote.url.clone(),
        })?;
        reference.peel_to_commit().map(|c| c.id()).map_err(|e| GitError::Read {
            what: full,
            revision: "tip".into(),
            message: e.message().to_string(),
        })
    }

    /// Fetches another branch (the status branch); `None` when the remote does not have it.
    pub fn fetch_branch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        let full = format!("refs/heads/{branch}");
        let tracking = GitRemote::tracking_ref(&full);
        match self.fetch_refspecs(&[format!("+{full}:{tracking}")]) {
            Ok(()) => {}
            Err(GitError::Remote { message, .. })
                if message.contains("couldn't find remote ref") || message.contains("not found") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        Ok(self.repo.find_reference(&tracking).ok().and_then(|r| r.target()))
    }

    /// Every fleet file below `subdir` in the tree of `revision`.
    pub fn read_tree(&self, revision: Oid, subdir: Option<&str>) -> Result<FileSet, GitError> {
        let read_error = |what: &str, e: git2::Error| GitError::Read {
            what: what.into(),
            revision: revision.to_string(),
            message: e.message().to_string(),
        };
        let commit = self.repo.find_commit(revision).map_err(|e| read_error("commit", e))?;
        let tree = commit.tree().map_err(|e| read_error("tree", e))?;
        let prefix = subdir.map(|s| format!("{}/", s.trim_matches('/'))).filter(|s| s != "/").unwrap_or_default();
        let mut files = FileSet::new();
        let mut failure = None;
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() != Some(git2::ObjectType::Blob) {
                return git2::TreeWalkResult::Ok;
            }
            let path = format!("{dir}{}", entry.name().unwrap_or(""));
            let Some(relative) = path.strip_prefix(&prefix) else { return git2::TreeWalkResult::Ok };
            if !is_fleet_file(relative) {
                return git2::TreeWalkResult::Ok;
            }
            match self.repo.find_blob(entry.id()) {
                Ok(blob) => {
                    files.insert(relative.to_string(), blob.content().to_vec());
                    git2::TreeWalkResult::Ok
                }
                Err(e) => {
                    failure = Some(read_error(&path, e));
                    git2::TreeWalkResult::Abort
                }
            }
        })
        .map_err(|e| read_error("tree walk", e))?;
        match failure {
            Some(e) => Err(e),
            None => Ok(files),
        }
    }

    /// Brings `files` (the fleet at `from`) to `to` by re-reading only the changed paths.
    /// Returns how many paths changed.
    pub fn update(&self, files: &mut FileSet, from: Oid, to: Oid, subdir: Option<&str>) -> Result<usize, GitError> {
        let read_error = |what: &str, e: git2::Error| GitError::Read {
            what: what.into(),
            revision: to.to_string(),
            message: e.message().to_string(),
        };
        let old = self.repo.find_commit(from).and_then(|c| c.tree()).map_err(|e| read_error("old tree", e))?;
        let new = self.repo.find_commit(to).and_then(|c| c.tree()).map_err(|e| read_error("new tree", e))?;
        let diff = self.repo.diff_tree_to_tree(Some(&old), Some(&new), None).map_err(|e| read_error("diff", e))?;
        let prefix = subdir.map(|s| format!("{}/", s.trim_matches('/'))).filter(|s| s != "/").unwrap_or_default();
        let mut changed = 0;
        for delta in diff.deltas() {
            for (file, present) in [(delta.old_file(), false), (delta.new_file(), true)] {
                let Some(path) = file.path().and_then(|p| p.to_str()) else { continue };
                let Some(relative) = path.strip_prefix(&prefix) else { continue };
                if !is_fleet_file(relative) {
                    continue;
                }
                if present && !file.id().is_zero() {
                    let blob = self.repo.find_blob(file.id()).map_err(|e| read_error(path, e))?;
                    files.insert(relative.to_string(), blob.content().to_vec());
                } else if !present {
                    files.remove(relative);
                }
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Whether `ancestor` is in the history of `descendant` (false after a force-push).
    pub fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> bool {
        ancestor == descendant || self.repo.graph_descendant_of(descendant, ancestor).unwrap_or(false)
    }

    /// Reads one file from a commit's tree.
    pub fn file_at(&self, revision: Oid, path: &str) -> Option<Vec<u8>> {
        let tree = self.repo.find_commit(revision).ok()?.tree().ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        Some(self.repo.find_blob(entry.id()).ok()?.content().to_vec())
    }

    /// Every file under `dir/` at `revision` (for reading the status branch).
    pub fn files_under(&self, revision: Oid, dir: &str) -> Vec<(String, Vec<u8>)> {
        files_under(&self.repo, revision, dir)
    }

    /// Commits `files` (path → content, `None` deletes) on top of `parent`, touching no branch.
    pub fn commit(
        &self,
        parent: Option<Oid>,
        files: &[(String, Option<Vec<u8>>)],
        message: &str,
    ) -> Result<Oid, GitError> {
        let err = |e: git2::Error| GitError::Cache { path: self.path.clone(), message: e.message().to_string() };
        let parent_commit = parent.map(|p| self.repo.find_commit(p)).transpose().map_err(err)?;
        let base = parent_commit.as_ref().map(|c| c.tree()).transpose().map_err(err)?;
        let mut index = git2::Index::new().map_err(err)?;
        if let Some(tree) = &base {
            index.read_tree(tree).map_err(err)?;
        }
        for (path, content) in files {
            match content {
                Some(bytes) => {
                    let blob = self.repo.blob(bytes).map_err(err)?;
                    let entry = git2::IndexEntry {
                        ctime: git2::IndexTime::new(0, 0),
                        mtime: git2::IndexTime::new(0, 0),
                        dev: 0,
                        ino: 0,
                        mode: 0o100644,
                        uid: 0,
                        gid: 0,
                        file_size: bytes.len() as u32,
                        id: blob,
                        flags: 0,
                        flags_extended: 0,
                        path: path.as_bytes().to_vec(),
                    };
                    index.add(&entry).map_err(err)?;
                }
                None => {
                    let _ = index.remove_path(Path::new(path));
                }
            }
        }
        let tree_id = index.write_tree_to(&self.repo).map_err(err)?;
        let tree = self.repo.find_tree(tree_id).map_err(err)?;
        let signature = git2::Signature::now("plugsync", "plugsync@localhost").map_err(err)?;
        let parents: Vec<&git2::Commit> = parent_commit.iter().collect();
        self.repo.commit(None, &signature, &signature, message, &tree, &parents).map_err(err)
    }

    /// The remote's directory when it is on this machine (`file://` or a path).
    fn local_remote(&self) -> Option<PathBuf> {
        let url = &self.remote.url;
        let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        (url.starts_with("file://") || (!url.contains("://") && path.exists())).then_some(path)
    }

    /// Pushes `commit` to `branch` on the remote without force, only over `expected` (the
    /// tip it was built on; `None`: the branch must not exist yet).
    ///
    /// libgit2's local transport checks fast-forward against the refs it read when it
    /// connected and then writes the ref unconditionally, so a concurrent pusher's commit
    /// could be overwritten (seen in `concurrent_status_writer_loses_nothing`). For a remote
    /// on this machine the objects go to a private ref and the branch moves by
    /// compare-and-swap under the ref's lock, as receive-pack does.
    pub fn push(&self, commit: Oid, branch: &str, expected: Option<Oid>) -> Result<PushOutcome, GitError> {
        let Some(path) = self.local_remote() else { return self.push_refspec(commit, &format!("refs/heads/{branch}")) };
        let incoming = format!("refs/plugsync/incoming/{commit}");
        match self.push_refspec(commit, &incoming)? {
            PushOutcome::Pushed => {}
            other => return Ok(other),
        }
        let remote = Repository::open(&path).map_err(|e| self.remote_error("open for push", e))?;
        let name = format!("refs/heads/{branch}");
        let moved = match expected {
            Some(old) => remote.reference_matching(&name, commit, true, old, "plugsync status"),
            None => remote.reference(&name, commit, false, "plugsync status"),
        };
        if let Ok(mut temp) = remote.find_reference(&incoming) {
            let _ = temp.delete();
        }
        match moved {
            Ok(_) => Ok(PushOutcome::Pushed),
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::Modified | git2::ErrorCode::Exists | git2::ErrorCode::Locked
                ) =>
            {
                Ok(PushOutcome::NonFastForward)
            }
            // libgit2 reports a changed old value as a generic error on some versions.
            Err(e) if e.message().contains("old reference value does not match") => Ok(PushOutcome::NonFastForward),
            Err(e) => Err(self.remote_error("push", e)),
        }
    }

    fn push_refspec(&self, commit: Oid, target: &str) -> Result<PushOutcome, GitError> {
        let local = "refs/plugsync/push";
        self.repo
            .reference(local, commit, true, "plugsync push")
            .map_err(|e| GitError::Cache { path: self.path.clone(), message: e.message().to_string() })?;
        let mut remote = self.repo.remote_anonymous(&self.remote.url).map_err(|e| self.remote_error("push", e))?;
        let rejection: RefCell<Option<String>> = RefCell::new(None);
        let mut callbacks = self.callbacks();
        callbacks.push_update_reference(|_refname, status| {
            if let Some(message) = status {
                *rejection.borrow_mut() = Some(message.to_string());
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks);
        match remote.push(&[format!("{local}:{target}")], Some(&mut options)) {
            Ok(()) => {}
            Err(e)
                if e.code() == git2::ErrorCode::NotFastForward
                    || e.message().contains("non-fast-forward")
                    || e.message().contains("fetch first") =>
            {
                return Ok(PushOutcome::NonFastForward)
            }
            Err(e) => return Err(self.remote_error("push", e)),
        }
        drop(options);
        drop(remote);
        let rejected = rejection.borrow().clone();
        match rejected {
            None => Ok(PushOutcome::Pushed),
            // "failed to update ref": the server lost a race while updating (a hook, a concurrent
            // receive-pack): fetch, rebase and try again, as for a non-fast-forward.
            Some(m)
                if ["non-fast-forward", "fetch first", "stale", "failed to update ref"]
                    .iter()
                    .any(|k| m.contains(k)) =>
            {
                Ok(PushOutcome::NonFastForward)
            }
            Some(message) => Err(GitError::Rejected { url: self.remote.url.clone(), message }),
        }
    }
}

/// The commit checked out where `path` lives, or `None` outside a Git repository.
/// Every file under `dir/` in `revision`'s tree.
fn files_under(repo: &Repository, revision: Oid, dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(tree) = repo.find_commit(revision).and_then(|c| c.tree()) else { return out };
    let _ = tree.walk(git2::TreeWalkMode::PreOrder, |parent, entry| {
        let path = format!("{parent}{}", entry.name().unwrap_or(""));
        if entry.kind() == Some(git2::ObjectType::Blob) && path.starts_with(dir) {
            if let Ok(blob) = repo.find_blob(entry.id()) {
                out.push((path, blob.content().to_vec()));
            }
        }
        git2::TreeWalkResult::Ok
    });
    out
}

/// The files under `dir/` on `branch` of the repository holding `path` (its local branch, else
/// `origin`'s), with the ref read; `None` outside a repository or without the branch.
pub fn local_branch_files(path: &Path, branch: &str, dir: &str) -> Option<(String, Vec<(String, Vec<u8>)>)> {
    let repo = Repository::discover(path).ok()?;
    [format!("refs/heads/{branch}"), format!("refs/remotes/origin/{branch}")].into_iter().find_map(|name| {
        let tip = repo.refname_to_id(&name).ok()?;
        Some((name, files_under(&repo, tip, dir)))
    })
}

pub fn head_revision(path: &Path) -> Option<String> {
    let repo = Repository::discover(path).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    Some(head.id().to_string())
}
