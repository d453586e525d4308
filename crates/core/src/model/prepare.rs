//! Parsing and schema-checking every file of the fleet up front, on all cores: for a large
//! fleet this is nearly all of `load`'s cost, and each file stands alone.

use super::diagnostic::Diagnostic;
use super::document::{Document, Format};
use super::files::{FileSet, CONFIG_NAMES, MANIFEST_NAMES};
use super::schema::SchemaKind;
use super::PluginManifest;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A file parsed (and checked against its schema) before the layout walk needs it.
#[derive(Clone)]
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

/// Files parsed by an earlier [`super::load_cached`], by path: a daemon reading a revision in
/// which one file changed parses and checks that one file again and takes the rest from here.
#[derive(Default)]
pub struct ParseCache {
    entries: HashMap<String, Prepared>,
}

impl ParseCache {
    /// The earlier result for `path` if it was parsed from exactly these bytes.
    fn hit(&self, path: &str, bytes: &[u8]) -> Option<Prepared> {
        let prepared = self.entries.get(path)?;
        prepared.doc.as_ref().ok().filter(|d| d.parsed_from(bytes)).map(|_| prepared.clone())
    }
}

/// Parses and schema-checks every file on all cores: the bulk of a large fleet's cost. With a
/// cache, only files whose bytes changed since the cached parse are done again.
pub(super) fn prepare(files: &FileSet, mut cache: Option<&mut ParseCache>) -> BTreeMap<String, Prepared> {
    let mut out = BTreeMap::new();
    let mut work: Vec<(&String, &Vec<u8>, SchemaKind)> = Vec::new();
    for (path, bytes) in files {
        let Some(kind) = schema_of(path).filter(|_| Format::of(path).is_some()) else { continue };
        match cache.as_deref().and_then(|c| c.hit(path, bytes)) {
            Some(prepared) => {
                out.insert(path.clone(), prepared);
            }
            None => work.push((path, bytes, kind)),
        }
    }
    let parsed = parse_all(&work);
    if let Some(cache) = cache.as_deref_mut() {
        cache.entries.retain(|path, _| files.contains_key(path));
        cache.entries.extend(parsed.iter().map(|(path, prepared)| (path.clone(), prepared.clone())));
    }
    out.extend(parsed);
    out
}

fn parse_all(work: &[(&String, &Vec<u8>, SchemaKind)]) -> Vec<(String, Prepared)> {
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

#[cfg(test)]
mod tests {
    use super::super::{load, load_cached, Loaded};
    use super::*;

    fn manifest(i: usize, version: &str) -> Vec<u8> {
        let depends = if i > 0 { format!("dependsOn: [p{}]\n", i - 1) } else { String::new() };
        format!("id: p{i}\nversion: {version}\nruntime: {{image: 'p:{version}', resources: {{cpu: 100m, memory: 64Mi}}}}\n{depends}")
            .into_bytes()
    }

    /// 80 plugins: enough for the parallel parse.
    fn files() -> FileSet {
        let mut files = FileSet::new();
        files.insert("plugsync.yaml".into(), b"fleet: cache\n".to_vec());
        files.insert("policies/slow.yaml".into(), b"strategy: Rolling\nrollingConfig: {batchSize: 1}\n".to_vec());
        for i in 0..80 {
            files.insert(format!("plugins/p{i}/plugin.yaml"), manifest(i, "1.0.0"));
        }
        files
    }

    fn same(cached: &Loaded, fresh: &Loaded, context: &str) {
        assert_eq!(cached.diagnostics, fresh.diagnostics, "{context}");
        let json = |l: &Loaded| serde_json::to_value(&l.fleet).expect("fleet serialises");
        assert_eq!(json(cached), json(fresh), "{context}");
    }

    #[test]
    fn cached_loads_equal_fresh_loads_through_changes_errors_and_removals() {
        let mut cache = ParseCache::default();
        let mut files = files();
        same(&load_cached(&files, None, &mut cache), &load(&files, None), "first load");
        assert_eq!(cache.entries.len(), 82);

        files.insert("plugins/p7/plugin.yaml".into(), manifest(7, "1.1.0"));
        let cached = load_cached(&files, None, &mut cache);
        same(&cached, &load(&files, None), "one version bumped");
        assert_eq!(cached.fleet.plugins["p7"].manifest.version, "1.1.0");

        files.insert(
            "plugins/p9/plugin.yaml".into(),
            b"id: p9\nversion: 1.0.0\nruntime: {image: x, resources: {memory: 12Q}}\n".to_vec(),
        );
        let cached = load_cached(&files, None, &mut cache);
        same(&cached, &load(&files, None), "one manifest broken");
        assert!(!cached.is_valid());

        files.insert("plugins/p9/plugin.yaml".into(), manifest(9, "1.0.0"));
        files.remove("plugins/p79/plugin.yaml");
        let cached = load_cached(&files, None, &mut cache);
        same(&cached, &load(&files, None), "fixed again, one plugin removed");
        assert!(cached.is_valid(), "{:?}", cached.diagnostics);
        assert_eq!(cache.entries.len(), 81, "a removed file leaves the cache");
    }

    #[test]
    fn a_hit_needs_the_same_bytes() {
        let mut cache = ParseCache::default();
        let files = files();
        let _ = load_cached(&files, None, &mut cache);
        let path = "plugins/p3/plugin.yaml";
        assert!(cache.hit(path, &files[path]).is_some());
        assert!(cache.hit(path, &manifest(3, "1.0.1")).is_none());
        let with_bom = [b"\xef\xbb\xbf".as_slice(), &files[path]].concat();
        assert!(cache.hit(path, &with_bom).is_some(), "a byte-order mark changes nothing the parse sees");
    }
}
