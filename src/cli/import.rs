//! `plugsync import compose|kubernetes FILE… -o DIR`: a team's compose file or Kubernetes
//! manifests turned into a fleet repo — `plugsync.yaml`, `plugins/<id>/plugin.yaml` per
//! service or Deployment and `IMPORT-REPORT.md` listing, with file:line, what was not carried. The conversion is the pure `import` room; this edge
//! reads the files, writes the result and validates it as `plugsync validate` would.

use plugsync::import::compose::{self, Options};
use plugsync::model::document::Document;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Parse(String),
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("no plugin came out of {files}: every service was excluded or could not be carried (see {report})")]
    Empty { files: String, report: PathBuf },
}

fn write(path: &Path, text: &str) -> Result<(), ImportError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ImportError::Write { path: dir.to_path_buf(), source })?;
    }
    std::fs::write(path, text).map_err(|source| ImportError::Write { path: path.to_path_buf(), source })
}

/// Exit 0 when the fleet is written and validates, 1 when it does not validate (its problems
/// on stderr; the files stay for a person to fix).
pub fn compose(files: &[PathBuf], output: &Path, options: &Options) -> anyhow::Result<ExitCode> {
    let mut docs = Vec::new();
    for path in files {
        let doc = Document::parse(&path.display().to_string(), &read(path)?)
            .map_err(|d| ImportError::Parse(d.to_string()))?;
        docs.push(doc);
    }
    finish(compose::import(&docs, options), files, output)
}

/// `plugsync import kubernetes FILE… -o DIR`: each Deployment (with its Service) a plugin.
pub fn kubernetes(files: &[PathBuf], output: &Path, fleet: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut docs = Vec::new();
    for path in files {
        let text = String::from_utf8(read(path)?)
            .map_err(|_| ImportError::Parse(format!("{}: not UTF-8 text", path.display())))?;
        for doc in plugsync::import::kubernetes::split(&path.display().to_string(), &text) {
            docs.push(doc.map_err(ImportError::Parse)?);
        }
    }
    finish(plugsync::import::kubernetes::import(&docs, fleet), files, output)
}

fn read(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(|source| ImportError::Read { path: path.to_path_buf(), source })
}

/// Writes what was imported, prints the notes, validates the result.
fn finish(imported: plugsync::import::Imported, files: &[PathBuf], output: &Path) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let report_path = output.join("IMPORT-REPORT.md");
    write(&report_path, &imported.report(&format!("Import of {}", names.join(", "))))?;
    if imported.plugins.is_empty() {
        return Err(ImportError::Empty { files: names.join(", "), report: report_path }.into());
    }
    write(&output.join("plugsync.yaml"), &imported.fleet_config)?;
    for plugin in &imported.plugins {
        write(&output.join("plugins").join(&plugin.id).join("plugin.yaml"), &plugin.manifest)?;
    }
    println!(
        "imported {} plugin(s) into {}: {}",
        imported.plugins.len(),
        output.display(),
        imported.plugins.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
    );
    for note in &imported.notes {
        println!("  note: {note}");
    }
    println!("{} note(s) in {}", imported.notes.len(), report_path.display());
    let written = plugsync::source::dir::read_fleet_dir(output)?;
    let loaded = plugsync::model::load(&written, None);
    if loaded.is_valid() {
        println!("the imported fleet validates");
        Ok(ExitCode::SUCCESS)
    } else {
        for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
            eprintln!("{d}");
        }
        eprintln!(
            "the imported fleet does not validate: fix the files above, then run `plugsync validate {}`",
            output.display()
        );
        Ok(ExitCode::from(1))
    }
}
