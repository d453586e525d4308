//! Adoption: files teams already deploy with (a compose file) turned into a fleet repo's
//! manifests, with a report of everything that could not be carried. Pure: the CLI reads the
//! files and writes the result.
//!
//! The manifests are written as YAML text with a comment on each derived field saying where
//! it came from (file:line), so the pull request that adds them can be reviewed line by line.

pub mod compose;
pub mod kubernetes;

use crate::model::document::Document;
use std::fmt::Write;

/// One thing in the source that the fleet does not carry, or carries differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub file: String,
    pub line: usize,
    /// The service (plugin) it concerns; empty for the file as a whole.
    pub service: String,
    /// The source field, as a dotted path (`services.crm.volumes`).
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file, self.line, self.field, self.reason)
    }
}

/// One imported plugin: its id and its manifest's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedPlugin {
    pub id: String,
    pub manifest: String,
}

/// What an import produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// `plugsync.yaml`'s text.
    pub fleet_config: String,
    pub plugins: Vec<ImportedPlugin>,
    pub notes: Vec<Note>,
}

impl Imported {
    /// The report as Markdown: one section per service, each note with file:line.
    pub fn report(&self, title: &str) -> String {
        let mut out = format!("# {title}\n\n");
        if self.notes.is_empty() {
            out.push_str("Everything in the source was carried into the manifests.\n");
            return out;
        }
        out.push_str(
            "What the manifests do not carry, or carry differently. Nothing here was dropped silently: \
             review each line before merging.\n",
        );
        let mut services: Vec<&str> = self.notes.iter().map(|n| n.service.as_str()).collect();
        services.dedup();
        services.sort_unstable();
        services.dedup();
        for service in services {
            let heading = if service.is_empty() { "The file as a whole" } else { service };
            let _ = write!(out, "\n## {heading}\n\n");
            for note in self.notes.iter().filter(|n| n.service == service) {
                let _ = writeln!(out, "- `{}:{}` `{}`: {}", note.file, note.line, note.field, note.reason);
            }
        }
        out
    }
}

/// A YAML scalar that reads back as exactly `text` (a JSON string is valid YAML).
pub fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// A plugin id from a service name: lowercase letters, digits, `-` and `_`, starting with a
/// letter or digit, at most 63 characters; `None` when nothing is left.
pub fn plugin_id(name: &str) -> Option<String> {
    let id: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(63)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The version an image's tag names (`crm:2.3.0`, `crm:v2.3`, `reg:5000/crm:2.3.0-rc.1`),
/// completed to three numbers; `None` for `latest`, a digest or no tag.
pub fn version_of_image(image: &str) -> Option<String> {
    let name = image.split('@').next()?;
    let last = name.rsplit('/').next()?;
    let tag = last.split_once(':')?.1;
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    let (core, rest) = match tag.find(['-', '+']) {
        Some(i) => tag.split_at(i),
        None => (tag, ""),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.is_empty()
        || numbers.len() > 3
        || numbers.iter().any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut parts: Vec<String> = numbers.iter().map(|n| n.trim_start_matches('0').to_string()).collect();
    for p in &mut parts {
        if p.is_empty() {
            *p = "0".into();
        }
    }
    while parts.len() < 3 {
        parts.push("0".into());
    }
    Some(format!("{}{rest}", parts.join(".")))
}

/// Where a note points: the file and line of `pointer` in `doc` (line 1 when unknown).
pub(crate) fn note(doc: &Document, pointer: &str, service: &str, reason: impl Into<String>) -> Note {
    let field = pointer.trim_start_matches('/').replace('/', ".");
    Note {
        file: doc.path.clone(),
        line: doc.locate(pointer).map_or(1, |(line, _)| line),
        service: service.to_string(),
        field,
        reason: reason.into(),
    }
}

/// The manifest being written: lines, each derived one with where it came from.
pub(crate) struct Out {
    pub(crate) text: String,
}

impl Out {
    pub(crate) fn new() -> Out {
        Out { text: String::new() }
    }

    pub(crate) fn line(&mut self, indent: usize, text: &str, from: Option<(&Document, &str)>) {
        let _ = write!(self.text, "{:indent$}{text}", "");
        if let Some((doc, pointer)) = from {
            let line = doc.locate(pointer).map_or(1, |(l, _)| l);
            let _ = write!(self.text, "  # {}:{line}", doc.path);
        }
        self.text.push('\n');
    }
}

#[cfg(test)]
mod tests;
