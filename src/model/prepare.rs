//! Parsing and schema-checking every file of the fleet up front, on all cores: for a large
//! fleet this is nearly all of `load`'s cost, and each file stands alone.

use super::diagnostic::Diagnostic;
use super::document::{Document, Format};
use super::load::{FileSet, CONFIG_NAMES, MANIFEST_NAMES};
use super::schema::SchemaKind;
use super::PluginManifest;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A file parsed (and checked against its schema) before the layout walk needs it.
pub(super) struct Prepared {
    pub(super) doc: Result<Document, Diagnostic>,
    pub(super) checked: Option<(SchemaKind, Vec<Diagnostic>)>,
    /// A schema-valid manifest already typed (the layout walk still decides whether it is
    /// used as it is or with an environment overlay merged in).
    pub(super) manifest: Option<PluginManifest>,
}

/// The schema a file's place in the layout implies.
fn schema_of(path: &str) -> Option<SchemaKind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if CONFIG_NAMES.contains(&path) {
        Some(SchemaKind::FleetConfig)
    } else if path.starts_with("policies/") || path.starts_with("rollouts/") {
        Some(SchemaKind::RolloutPolicy)
    } else if path.starts_with("environments/") {
        Some(SchemaKind::EnvironmentOverlay)
    } else if path.starts_with("plugins/") && MANIFEST_NAMES.contains(&name) {
        Some(SchemaKind::PluginManifest)
    } else {
        None
    }
}

/// A config or overlay holding only comments means "all defaults".
pub(super) fn default_if_empty(doc: &mut Document, schema: SchemaKind) {
    if matches!(schema, SchemaKind::FleetConfig | SchemaKind::EnvironmentOverlay) && doc.value.is_null() {
        doc.value = Value::Object(Default::default());
    }
}

/// Parses and schema-checks every file on all cores: the bulk of a large fleet's cost.
pub(super) fn prepare(files: &FileSet) -> BTreeMap<String, Prepared> {
    let work: Vec<(&String, &Vec<u8>, SchemaKind)> =
        files.iter().filter_map(|(p, b)| schema_of(p).filter(|_| Format::of(p).is_some()).map(|k| (p, b, k))).collect();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
    let one = |(path, bytes, kind): &(&String, &Vec<u8>, SchemaKind)| {
        let doc = Document::parse(path, bytes).map(|mut doc| {
            default_if_empty(&mut doc, *kind);
            doc
        });
        let checked = doc.as_ref().ok().map(|d| (*kind, kind.check(d)));
        let manifest = match (&doc, &checked) {
            (Ok(d), Some((SchemaKind::PluginManifest, errors))) if errors.is_empty() => {
                PluginManifest::deserialize(&d.value).ok()
            }
            _ => None,
        };
        ((*path).clone(), Prepared { doc, checked, manifest })
    };
    if threads < 2 || work.len() < 64 {
        return work.iter().map(one).collect();
    }
    let chunk = work.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            work.chunks(chunk).map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}
