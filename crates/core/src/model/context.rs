//! The loader's working state, shared by loading and checking: parsed documents, diagnostics,
//! the ids seen, and what was found where.

use super::diagnostic::Diagnostic;
use super::document::{field_path, Document};
use super::manifest::PluginManifest;
use super::policy::{Environment, RolloutPolicy};
use super::prepare::{default_if_empty, Prepared};
use super::schema::SchemaKind;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// A typed value together with the file it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub path: String,
}

pub(super) struct VersionedCanary {
    pub(super) located: Located<PluginManifest>,
    pub(super) weight: f64,
}

pub(super) struct FoundPlugin {
    pub(super) stable: Located<PluginManifest>,
    pub(super) stable_weight: Option<f64>,
    pub(super) canary: Option<VersionedCanary>,
}

pub(super) struct Overlay {
    pub(super) environment: Environment,
    pub(super) plugin: String,
    pub(super) located: Located<Value>,
}

/// A `rollouts/<file>` binding.
#[derive(Debug, Clone)]
pub struct Binding {
    pub policy: RolloutPolicy,
    pub path: String,
}

#[derive(Default)]
pub(super) struct Context {
    pub(super) diagnostics: Vec<Diagnostic>,
    /// Parsed documents by path, for pointing semantic errors at lines.
    pub(super) docs: BTreeMap<String, Document>,
    /// Every id a manifest declared, even one that failed to load, with its file (so one
    /// broken manifest does not cascade into "unknown dependsOn" errors elsewhere).
    pub(super) ids_seen: BTreeMap<String, Vec<String>>,
    /// Manifest path → the overlay merged into it (path, value).
    pub(super) overlay_of: BTreeMap<String, (String, Value)>,
    /// Files parsed and schema-checked up front, in parallel.
    pub(super) prepared: BTreeMap<String, Prepared>,
    /// Schema results taken from `prepared`, waiting for `validate`.
    pub(super) checked: BTreeMap<String, (SchemaKind, Vec<Diagnostic>)>,
    /// Manifests typed by `prepare`, waiting for `manifest`.
    pub(super) typed_manifests: BTreeMap<String, PluginManifest>,
}

impl Context {
    pub(super) fn parse(&mut self, path: &str, bytes: &[u8], schema: SchemaKind) -> Option<Value> {
        self.document(path, bytes)?;
        self.validate(path, schema)
    }

    pub(super) fn document(&mut self, path: &str, bytes: &[u8]) -> Option<&Document> {
        let parsed = match self.prepared.remove(path) {
            Some(p) => {
                if let Some(checked) = p.checked {
                    self.checked.insert(path.to_string(), checked);
                }
                if let Some(manifest) = p.manifest {
                    self.typed_manifests.insert(path.to_string(), manifest);
                }
                p.doc
            }
            None => Document::parse(path, bytes),
        };
        match parsed {
            Ok(doc) => Some(self.docs.entry(path.to_string()).or_insert(doc)),
            Err(d) => {
                self.diagnostics.push(d);
                None
            }
        }
    }

    /// Whether `prepare` already found the document valid against `schema` (consumes that
    /// result, as `validate` would).
    pub(super) fn schema_passed(&mut self, path: &str, schema: SchemaKind) -> bool {
        match self.checked.get(path) {
            Some((kind, errors)) if *kind == schema && errors.is_empty() => {
                self.checked.remove(path);
                true
            }
            _ => false,
        }
    }

    /// The document's value when it passes `schema`; its violations otherwise.
    pub(super) fn validate(&mut self, path: &str, schema: SchemaKind) -> Option<Value> {
        let doc = self.docs.get_mut(path)?;
        default_if_empty(doc, schema);
        let doc = &*doc;
        let errors = match self.checked.remove(path) {
            Some((kind, errors)) if kind == schema => errors,
            _ => schema.check(doc),
        };
        if errors.is_empty() {
            return Some(doc.value.clone());
        }
        self.diagnostics.extend(errors);
        None
    }

    /// Deserialises a schema-valid value; what the schema cannot express (exact quantity
    /// ranges, say) is reported with its field path.
    pub(super) fn typed<T: DeserializeOwned>(&mut self, path: &str, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let pointer = to_pointer(&e.path().to_string());
                let doc_diag = self.doc_diag("invalid-value", self.origin(path, &pointer), &pointer);
                let message = e.inner().to_string();
                let (found, expected) = split_found_expected(&message);
                self.diagnostics.push(doc_diag.found(found).expected(expected));
                None
            }
        }
    }

    pub(super) fn versioned_result(
        stable: Located<PluginManifest>,
        canary: Option<(Located<PluginManifest>, f64, f64)>,
    ) -> FoundPlugin {
        match canary {
            None => FoundPlugin { stable, stable_weight: None, canary: None },
            Some((located, weight, stable_weight)) => FoundPlugin {
                stable,
                stable_weight: Some(stable_weight),
                canary: Some(VersionedCanary { located, weight }),
            },
        }
    }

    pub(super) fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    pub(super) fn doc_diag(&self, code: &'static str, path: &str, pointer: &str) -> Diagnostic {
        match self.docs.get(path) {
            Some(doc) => doc.diagnostic(code, pointer),
            None => Diagnostic::error(code, path).field(field_path(pointer)),
        }
    }

    /// The file a manifest field really comes from: its environment overlay when the overlay
    /// sets it, else the manifest.
    pub(super) fn origin<'a>(&'a self, manifest: &'a str, pointer: &str) -> &'a str {
        match self.overlay_of.get(manifest) {
            Some((overlay, value)) if value.pointer(pointer).is_some() => overlay,
            _ => manifest,
        }
    }
}

/// serde_path_to_error's `a.b[1].c` → JSON pointer `/a/b/1/c`.
fn to_pointer(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            out.push('/');
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                out.push('/');
                out.push_str(&rest[1..end]);
                rest = &rest[end + 1..];
            }
        } else {
            out.push('/');
            out.push_str(rest);
        }
    }
    out.replace("//", "/")
}

/// Our own deserialisers say "found X, expected Y"; serde's say something else.
fn split_found_expected(message: &str) -> (String, String) {
    if let Some(rest) = message.strip_prefix("found ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return (found.to_string(), expected.to_string());
        }
    }
    let message = message.split(" at line ").next().unwrap_or(message);
    match message.split_once(", expected ") {
        Some((found, expected)) => (found.to_string(), expected.to_string()),
        None => (message.to_string(), "a value the manifest format accepts".into()),
    }
}

/// Close enough to be a typo: edit distance ≤ 2, case-insensitive.
pub(super) fn similar(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == b {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()] <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_from_serde_paths() {
        assert_eq!(to_pointer("runtime.resources.memory"), "/runtime/resources/memory");
        assert_eq!(to_pointer("rollout.canaryConfig.steps[2]"), "/rollout/canaryConfig/steps/2");
        assert_eq!(to_pointer("."), "");
    }
}
