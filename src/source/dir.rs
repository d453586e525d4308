//! Reads a fleet directory from disk into a [`FileSet`].

use crate::model::load::is_fleet_file;
use crate::model::FileSet;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{path}: not a directory (expected a fleet directory holding plugins/ or plugsync.yaml)")]
    NotADirectory { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Every file the fleet loader reads, keyed by its `/`-separated path below `root`.
/// Hidden entries (`.git`, `.github`) and symlinks are skipped.
pub fn read_fleet_dir(root: &Path) -> Result<FileSet, DirError> {
    if !root.is_dir() {
        return Err(DirError::NotADirectory { path: root.to_path_buf() });
    }
    let mut files = FileSet::new();
    walk(root, root, &mut files)?;
    Ok(files)
}

fn walk(root: &Path, dir: &Path, files: &mut FileSet) -> Result<(), DirError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DirError::Io { path, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io(dir))?.collect::<Result<_, _>>().map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            walk(root, &path, files)?;
        } else if kind.is_file() {
            let Ok(relative) = path.strip_prefix(root) else { continue };
            let Some(key) = relative.to_str().map(|s| s.replace('\\', "/")) else { continue };
            if is_fleet_file(&key) {
                let bytes = std::fs::read(&path).map_err(io(&path))?;
                files.insert(key, bytes);
            }
        }
    }
    Ok(())
}

/// Copies a directory tree (a fleet into a scratch repo, for the demo, tests and benches).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), DirError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DirError::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().map_err(io(&entry.path()))?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}
