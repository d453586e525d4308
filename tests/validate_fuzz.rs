//! The loader never panics, whatever bytes the fleet repo holds, and a file it cannot parse is
//! always reported. Calls the library directly: `plugsync::model::load(&files, None)`.

use plugsync::model::{load, FileSet, Loaded};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn config(cases: u32) -> ProptestConfig {
    // No regression files: this suite may only write under tests/validate_*.rs.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Whether the file is a parsable document at all, judged independently of the loader.
fn parsable(path: &str, bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    if path.ends_with(".json") {
        serde_json::from_str::<Value>(text).is_ok()
    } else {
        serde_saphyr::from_str::<Value>(text).is_ok()
    }
}

fn fileset(entries: Vec<(&str, Vec<u8>)>) -> FileSet {
    entries.into_iter().map(|(p, b)| (p.to_string(), b)).collect()
}

/// Loads and checks what must hold for every input: the same answer twice, every diagnostic
/// pointing at an input file (or a plugin folder) and at a line that exists in it, and an
/// unparsable file reported as a syntax error on that file.
fn load_checked(files: &FileSet) -> Result<Loaded, TestCaseError> {
    let loaded = load(files, None);
    let again = load(files, None);
    prop_assert_eq!(&loaded.diagnostics, &again.diagnostics, "load is not deterministic");
    for d in &loaded.diagnostics {
        let folder = d.file.ends_with('/') && files.keys().any(|k| k.starts_with(&d.file));
        prop_assert!(files.contains_key(&d.file) || folder, "diagnostic for a file not given: {}", d);
        if let (Some(bytes), Some(line)) = (files.get(&d.file), d.line) {
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            prop_assert!(line >= 1 && line <= lines + 1, "line {} outside a {}-line file: {}", line, lines, d);
            prop_assert!(d.column.is_some_and(|c| c >= 1), "line without a column >= 1: {}", d);
        }
        prop_assert!(!d.code.is_empty(), "diagnostic without code: {:?}", d);
    }
    for (path, bytes) in files {
        if !parsable(path, bytes) {
            prop_assert!(
                loaded.errors().any(|d| d.file == *path && d.code == "syntax"),
                "unparsable {} not reported as a syntax error: {:#?}",
                path,
                loaded.diagnostics
            );
        }
    }
    if loaded.is_valid() {
        prop_assert!(files.iter().all(|(p, b)| parsable(p, b)), "valid although a file does not parse");
    }
    Ok(loaded)
}

// ---------------------------------------------------------------------------------------------
// Valid texts to mutate.

const MANIFEST_YAML: &str = r#"id: crm
name: CRM
version: 2.3.0
description: "Contacts & deals"
owners: [sales-team]
runtime:
  type: typescript
  image: registry.example.com/crm:2.3.0
  resources: { cpu: 250m, memory: 128Mi }
  reservations:
    cpu: "0.1"
    memory: 64Mi
api:
  port: 8080
  basePath: /api/plugins/crm
replicas: 3
env:
  LOG_LEVEL: info
secretEnv:
  API_KEY: { fromEnv: CRM_API_KEY }
config:
  pageSize: 50
  features: { forecast: true }
dependsOn: [auth]
rollout:
  strategy: Canary
  canaryConfig:
    steps: [10, 30, 50, 100]
    evaluationPeriod: PT2M
    thresholds: { maxErrorRate: 0.01, maxLatencyP99Ms: 500 }
"#;

const MANIFEST_JSON: &str = r#"{
  "id": "crm",
  "version": "2.3.0",
  "author": "Sales",
  "permissions": ["crm:read"],
  "runtime": {
    "image": "registry.example.com/crm:2.3.0",
    "resources": { "cpu": "1.5", "memory": "1Gi" }
  },
  "replicas": 2,
  "dependsOn": ["auth"],
  "rollout": {
    "strategy": "ABTesting",
    "abConfig": { "trafficSplit": { "A": 50, "B": 50 }, "decisionMetrics": ["latency"], "testDuration": "10m" }
  }
}
"#;

const AUTH_YAML: &str = "id: auth\nversion: 1.0.0\nruntime:\n  image: r/auth:1.0.0\n";

const BINDING_YAML: &str = r#"pluginId: auth
version: 1.0.0
environment: Production
strategy: Rolling
rollingConfig:
  batchSize: "25%"
  waitBetweenBatches: 10s
"#;

const CONFIG_YAML: &str =
    "fleet: fuzz\nenvironment: Production\nbackend: { type: docker, network: n }\ninterval: 30s\n";

#[derive(Debug, Clone)]
enum Op {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
}

fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            ':', '{', '}', '[', ']', ',', '"', '\'', '\n', ' ', '-', '#', '&', '*', '!', '|', '>',
            '\t', '%', '@', '`', '?', '\\', '0', '9', '.', 'v', '~', '\r', '\u{feff}', '\u{0}',
        ]),
        1 => any::<char>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<usize>(), interesting_char()).prop_map(|(i, c)| Op::Insert(i, c)),
        any::<usize>().prop_map(Op::Delete),
        (any::<usize>(), interesting_char()).prop_map(|(i, c)| Op::Replace(i, c)),
    ]
}

fn mutate(text: &str, ops: &[Op]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for op in ops {
        match *op {
            Op::Insert(i, c) => {
                let at = i % (chars.len() + 1);
                chars.insert(at, c);
            }
            Op::Delete(i) if !chars.is_empty() => {
                let at = i % chars.len();
                chars.remove(at);
            }
            Op::Replace(i, c) if !chars.is_empty() => {
                let at = i % chars.len();
                chars[at] = c;
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Random JSON values placed into otherwise valid documents, to reach the typed and semantic
// checks behind the schema.

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-5i64..1200).prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "0",
            "1",
            "1.5",
            "500m",
            "0.0001",
            "512Mi",
            "512X",
            "1e3",
            "150%",
            "25%",
            "100%",
            "0%",
            "PT10M",
            "PT",
            "P1W",
            "10 minutes",
            "10m",
            "1h30m",
            "v1.0.0",
            "1.0.0",
            "1.1.0",
            "01.0.0",
            "auth",
            "crm",
            "Canary",
            "ABTesting",
            "Rolling",
            "BlueGreen",
            "Direct",
            "Production",
            "QA",
            "heal",
            "alert",
            "/health",
            "a_b",
            "a-b",
            "canary-prod",
            "\u{0}",
            "é",
            "../..",
        ])
        .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["A", "B", "fromEnv", "fromFile", "url", "queries", "x", "latency"]),
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

const POINTERS: &[&str] = &[
    "/id",
    "/version",
    "/replicas",
    "/canary_weight",
    "/dependsOn",
    "/dependsOn/0",
    "/policy",
    "/drift",
    "/suspended",
    "/env",
    "/secretEnv/KEY",
    "/config",
    "/capabilities",
    "/runtime/image",
    "/runtime/resources/cpu",
    "/runtime/resources/memory",
    "/runtime/reservations/memory",
    "/runtime/command",
    "/api/port",
    "/api/basePath",
    "/rollout/strategy",
    "/rollout/environment",
    "/rollout/version",
    "/rollout/versions",
    "/rollout/rollingConfig/batchSize",
    "/rollout/rollingConfig/maxParallelBatches",
    "/rollout/canaryConfig/steps",
    "/rollout/canaryConfig/initialPercentage",
    "/rollout/canaryConfig/incrementPercentage",
    "/rollout/canaryConfig/evaluationPeriod",
    "/rollout/canaryConfig/thresholds/maxErrorRate",
    "/rollout/blueGreenConfig/gradualSteps",
    "/rollout/blueGreenConfig/switchoverType",
    "/rollout/abConfig/trafficSplit/A",
    "/rollout/abConfig/trafficSplit",
    "/rollout/abConfig/decisionMetrics",
    "/rollout/analysis/builtin",
    "/rollout/analysis/prometheus",
];

/// Sets `pointer` in `doc`, creating objects on the way (replacing non-objects).
fn set(doc: &mut Value, pointer: &str, v: Value) {
    let mut at = doc;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() && !at.is_array() {
            *at = json!({});
        }
        let last = i + 1 == parts.len();
        at = match at {
            Value::Array(items) => match part.parse::<usize>() {
                Ok(n) if n < items.len() => &mut items[n],
                _ => {
                    items.push(Value::Null);
                    items.last_mut().expect("just pushed")
                }
            },
            Value::Object(map) => map.entry(part.to_string()).or_insert(Value::Null),
            _ => unreachable!(),
        };
        if last {
            *at = v;
            return;
        }
    }
}

fn overrides() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    prop::collection::vec((prop::sample::select(POINTERS), value()), 1..5)
}

fn manifest_value(version: &str, weight: Option<f64>) -> Value {
    let mut v: Value = serde_saphyr::from_str(MANIFEST_YAML).expect("the base manifest parses");
    v["id"] = json!("crm");
    v["version"] = json!(version);
    if let Some(w) = weight {
        v["canary_weight"] = json!(w);
    }
    v
}

// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_as_plugin_json(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let files = fileset(vec![("plugins/x/plugin.json", bytes)]);
        let loaded = load_checked(&files)?;
        prop_assert!(!loaded.is_valid() || loaded.fleet.plugins.len() == 1);
    }

    #[test]
    fn arbitrary_bytes_as_plugin_yaml(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let files = fileset(vec![("plugins/x/plugin.yaml", bytes)]);
        load_checked(&files)?;
    }

    #[test]
    fn arbitrary_yamlish_text_in_every_kind_of_file(
        text in "[a-z0-9:{}\\[\\],\"' \n\t#&*!|>%@-]{0,300}",
        which in 0usize..5,
    ) {
        let path = [
            "plugins/x/plugin.yaml",
            "plugsync.yaml",
            "policies/p.yaml",
            "rollouts/auth.yaml",
            "environments/production/auth.yaml",
        ][which];
        let mut files = fileset(vec![("plugins/auth/plugin.yaml", AUTH_YAML.as_bytes().to_vec())]);
        files.insert(path.to_string(), text.into_bytes());
        load_checked(&files)?;
    }

    #[test]
    fn mutated_yaml_manifest(ops in prop::collection::vec(op(), 1..8)) {
        let text = mutate(MANIFEST_YAML, &ops);
        let files = fileset(vec![
            ("plugins/crm/plugin.yaml", text.into_bytes()),
            ("plugins/auth/plugin.yaml", AUTH_YAML.as_bytes().to_vec()),
        ]);
        load_checked(&files)?;
    }

    #[test]
    fn mutated_json_manifest(ops in prop::collection::vec(op(), 1..8)) {
        let text = mutate(MANIFEST_JSON, &ops);
        let files = fileset(vec![
            ("plugins/crm/plugin.json", text.into_bytes()),
            ("plugins/auth/plugin.yaml", AUTH_YAML.as_bytes().to_vec()),
        ]);
        load_checked(&files)?;
    }

    #[test]
    fn mutated_fleet_file(ops in prop::collection::vec(op(), 1..6), which in 0usize..5) {
        let mut entries = vec![
            ("plugsync.yaml", CONFIG_YAML.to_string()),
            ("plugins/auth/plugin.yaml", AUTH_YAML.to_string()),
            ("plugins/crm/plugin.json", MANIFEST_JSON.to_string()),
            ("rollouts/auth.yaml", BINDING_YAML.to_string()),
            ("environments/production/crm.yaml", "replicas: 4\nconfig: { pageSize: 100 }\n".to_string()),
        ];
        entries[which].1 = mutate(&entries[which].1, &ops);
        let files = fileset(entries.into_iter().map(|(p, t)| (p, t.into_bytes())).collect());
        load_checked(&files)?;
    }

    #[test]
    fn random_values_behind_the_schema(
        stable in overrides(),
        canary in prop::option::of(overrides()),
        binding in prop::option::of(overrides()),
        weights in (0.0f64..=100.0, prop::option::of(0.0f64..=100.0)),
        yaml in any::<bool>(),
    ) {
        let ext = if yaml { "yaml" } else { "json" };
        let mut files = fileset(vec![("plugins/auth/plugin.yaml", AUTH_YAML.as_bytes().to_vec())]);
        let mut first = manifest_value("1.0.0", canary.as_ref().map(|_| weights.0));
        for (pointer, v) in &stable {
            set(&mut first, pointer, v.clone());
        }
        if let Some(canary) = &canary {
            let mut second = manifest_value("1.1.0", weights.1);
            for (pointer, v) in canary {
                set(&mut second, pointer, v.clone());
            }
            files.insert(format!("plugins/crm/v1.0.0/manifest.{ext}"), first.to_string().into_bytes());
            files.insert(format!("plugins/crm/v1.1.0/plugin.{ext}"), second.to_string().into_bytes());
        } else {
            files.insert(format!("plugins/crm/plugin.{ext}"), first.to_string().into_bytes());
        }
        if let Some(binding) = &binding {
            let mut b = json!({"pluginId": "crm", "rollout": {}});
            for (pointer, v) in binding {
                set(&mut b, pointer, v.clone());
            }
            // The rollout fields live at the top level of a binding.
            let mut top = b.get("rollout").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
            top["pluginId"] = b["pluginId"].clone();
            files.insert(format!("rollouts/crm.{ext}"), top.to_string().into_bytes());
        }
        load_checked(&files)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile inputs with a known shape.

fn load_quickly(files: &FileSet) -> Loaded {
    let start = Instant::now();
    let loaded = load(files, None);
    assert!(start.elapsed() < Duration::from_secs(20), "load took {:?}", start.elapsed());
    loaded
}

#[test]
fn deeply_nested_documents_are_errors_not_crashes() {
    for (path, text) in [
        ("plugins/x/plugin.json", "[".repeat(50_000)),
        ("plugins/x/plugin.json", format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000))),
        ("plugins/x/plugin.yaml", "[".repeat(50_000)),
        ("plugins/x/plugin.yaml", format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000))),
        ("plugins/x/plugin.yaml", (0..2_000).map(|i| format!("{}a:\n", " ".repeat(i))).collect()),
    ] {
        let files = fileset(vec![(path, text.into_bytes())]);
        let loaded = load_quickly(&files);
        assert!(!loaded.is_valid(), "{path}: accepted");
        assert!(loaded.errors().any(|d| d.file == path), "{path}: {:#?}", loaded.diagnostics);
    }
}

#[test]
fn yaml_alias_bomb_is_refused_quickly() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    let files = fileset(vec![("plugins/x/plugin.yaml", text.into_bytes())]);
    let loaded = load_quickly(&files);
    assert!(!loaded.is_valid());
}

#[test]
fn oversized_and_non_utf8_files_are_reported() {
    let big = vec![b' '; (4 << 20) + 1];
    let files = fileset(vec![
        ("plugins/big/plugin.yaml", big),
        ("plugins/latin1/plugin.yaml", b"id: caf\xe9\nversion: 1.0.0\n".to_vec()),
    ]);
    let loaded = load(&files, None);
    let find = |file: &str| loaded.errors().find(|d| d.file == file).cloned();
    let big = find("plugins/big/plugin.yaml").expect("big file reported");
    assert_eq!(big.code, "syntax");
    assert!(big.expected.contains("4 MiB"), "{big}");
    let latin1 = find("plugins/latin1/plugin.yaml").expect("non-UTF-8 file reported");
    assert_eq!((latin1.code, latin1.line, latin1.column), ("syntax", Some(1), Some(8)), "{latin1}");
    assert!(latin1.found.contains("not UTF-8"), "{latin1}");
}

/// A chain of plugins, each depending on the next one in id order, so that a depth-first
/// search from the first id walks the whole chain.
fn dependency_chain(n: usize) -> FileSet {
    (0..n)
        .map(|i| {
            let id = format!("p{i:06}");
            let dep = if i + 1 < n { format!("dependsOn: [p{:06}]\n", i + 1) } else { String::new() };
            let text = format!("id: {id}\nversion: 1.0.0\nruntime:\n  image: r/{id}:1.0.0\n{dep}");
            (format!("plugins/{id}/plugin.yaml"), text.into_bytes())
        })
        .collect()
}

#[test]
fn dependency_chain_of_1000_loads() {
    let loaded = load(&dependency_chain(1000), None);
    assert!(loaded.is_valid(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.fleet.plugins.len(), 1000);
}

/// Regression: the cycle search used to recurse once per dependency edge, so a chain of about
/// 5,000 plugins overflowed a 2 MiB stack (test threads, tokio workers) and aborted the
/// process. It must work on such a thread for 20,000.
#[test]
fn dependency_chain_of_20000_on_a_2mib_thread() {
    let files = dependency_chain(20_000);
    let handle =
        std::thread::Builder::new().stack_size(2 << 20).spawn(move || load(&files, None).is_valid()).expect("spawn");
    assert!(handle.join().expect("no panic"));
}

/// Regression: serde_json reports column 0 for an error "just after a newline" (a file cut
/// short, a string broken by a newline); the diagnostic used to pass it through
/// (`plugins/x/plugin.json:4:0`). Columns are 1-based everywhere.
#[test]
fn json_syntax_error_column_is_one_based() {
    let text = "{\n  \"id\": \"x\",\n  \"runtime\": { \"image\": \"x:1\" }\n";
    let files = fileset(vec![("plugins/x/plugin.json", text.as_bytes().to_vec())]);
    let loaded = load(&files, None);
    let d = loaded.errors().find(|d| d.code == "syntax").expect("a syntax error");
    // Just after the last character of line 3, where the document stops.
    assert_eq!((d.line, d.column), (Some(3), Some(32)), "{d}");
}
