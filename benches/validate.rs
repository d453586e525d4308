//! How long `plugsync::model::load` takes for a large fleet: 1,000 and 10,000 plugins generated
//! in memory (JSON and YAML manifests with resources, env, config, dependsOn chains to earlier
//! plugins, named policies, rollouts/ bindings for every strategy, BotMatrix versioned folders
//! and environment overlays), and the daemon's case of one changed file with the previous
//! revision in the parse cache. `cargo bench --bench validate`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use plugsync::model::{load, load_cached, FileSet, ParseCache};
use std::hint::black_box;
use std::time::Duration;

const CPUS: [&str; 5] = ["250m", "500m", "1", "1.5", "2000m"];
const MEMORIES: [&str; 5] = ["64Mi", "128Mi", "512Mi", "1Gi", "500M"];
const RUNTIMES: [&str; 4] = ["typescript", "node", "python", "jvm"];

fn id(i: usize) -> String {
    format!("svc-{i:05}")
}

fn version(i: usize) -> String {
    format!("{}.{}.{}", 1 + i % 3, i % 17, i % 5)
}

/// Plugins it depends on: the first plugin (a shared core), and the previous one in runs of
/// 25, so dependency chains are up to 25 long and always point at earlier plugins.
fn depends_on(i: usize) -> Vec<String> {
    let mut deps = Vec::new();
    if i > 0 {
        deps.push(id(0));
    }
    if i % 25 != 0 && i - 1 != 0 {
        deps.push(id(i - 1));
    }
    deps
}

fn named_policy(i: usize) -> Option<&'static str> {
    match i % 10 {
        3 => Some("canary-prod"),
        7 => Some("rolling-fast"),
        _ => None,
    }
}

fn yaml_manifest(i: usize, version: &str, weight: Option<u32>) -> String {
    let id = id(i);
    let mut s = format!(
        "# {id}: generated for the benchmark\n\
         id: {id}\n\
         name: Service {i}\n\
         version: {version}\n\
         description: Generated plugin number {i}, with resources, env and config.\n\
         owners: [team-{team}]\n\
         tags: [generated, group-{group}]\n\
         runtime:\n  \
           type: {runtime}\n  \
           image: registry.example.com/plugins/{id}:{version}\n  \
           resources: {{ cpu: {cpu}, memory: {memory} }}\n  \
           reservations:\n    \
             cpu: 100m\n    \
             memory: 32Mi\n\
         api:\n  \
           port: 8080\n  \
           basePath: /api/plugins/{id}\n  \
           readiness: /health/ready\n\
         replicas: {replicas}\n\
         env:\n  \
           LOG_LEVEL: info\n  \
           SERVICE_NAME: {id}\n  \
           POOL_SIZE: \"{pool}\"\n\
         secretEnv:\n  \
           DB_PASSWORD: {{ fromEnv: {upper}_DB_PASSWORD }}\n\
         config:\n  \
           pageSize: {page}\n  \
           features: {{ search: true, export: {export} }}\n",
        team = i % 40,
        group = i % 25,
        runtime = RUNTIMES[i % RUNTIMES.len()],
        cpu = CPUS[i % CPUS.len()],
        memory = MEMORIES[i % MEMORIES.len()],
        replicas = 1 + i % 4,
        pool = 5 + i % 10,
        upper = id.to_uppercase().replace('-', "_"),
        page = 10 * (1 + i % 10),
        export = i % 2 == 0,
    );
    let deps = depends_on(i);
    if !deps.is_empty() {
        s.push_str(&format!("dependsOn: [{}]\n", deps.join(", ")));
    }
    if let Some(p) = named_policy(i) {
        s.push_str(&format!("policy: {p}\n"));
    }
    if let Some(w) = weight {
        s.push_str(&format!("canary_weight: {w}\n"));
    }
    s
}

fn json_manifest(i: usize, version: &str) -> String {
    let id = id(i);
    let mut m = serde_json::json!({
        "$schema": "https://plugsync.dev/schemas/plugin-manifest.schema.json",
        "id": id,
        "name": format!("Service {i}"),
        "version": version,
        "description": format!("Generated plugin number {i} in the Plexica style."),
        "author": "Bench Team",
        "license": "Apache-2.0",
        "runtime": {
            "type": RUNTIMES[i % RUNTIMES.len()],
            "image": format!("registry.example.com/plugins/{id}:{version}"),
            "resources": { "cpu": CPUS[i % CPUS.len()], "memory": MEMORIES[i % MEMORIES.len()] }
        },
        "api": { "port": 8080, "basePath": format!("/api/plugins/{id}"), "openapi": "/openapi.json" },
        "capabilities": ["read", "write"],
        "permissions": [format!("{id}:read"), format!("{id}:write")],
        "replicas": 1 + i % 4,
        "env": { "LOG_LEVEL": "info", "SERVICE_NAME": id },
        "config": { "pageSize": 10 * (1 + i % 10), "features": { "search": true } },
    });
    let deps = depends_on(i);
    if !deps.is_empty() {
        m["dependsOn"] = serde_json::json!(deps);
    }
    if let Some(p) = named_policy(i) {
        m["policy"] = serde_json::json!(p);
    } else if i % 13 == 0 {
        m["rollout"] = serde_json::json!({
            "strategy": "Rolling",
            "rollingConfig": { "batchSize": "25%", "waitBetweenBatches": "10s" }
        });
    }
    serde_json::to_string_pretty(&m).expect("serialise")
}

fn binding(i: usize, version: &str) -> (String, String) {
    let id = id(i);
    match (i / 11) % 5 {
        0 => (
            format!("rollouts/{id}.json"),
            format!(r#"{{ "pluginId": "{id}", "version": "{version}", "environment": "Production", "strategy": "Direct" }}"#),
        ),
        1 => (
            format!("rollouts/{id}.yaml"),
            format!("pluginId: {id}\nversion: {version}\nstrategy: Rolling\nrollingConfig:\n  batchSize: 2\n  waitBetweenBatches: PT30S\n  healthCheckTimeout: 2m\n"),
        ),
        2 => (
            format!("rollouts/{id}.json"),
            format!(
                r#"{{
  "pluginId": "{id}", "version": "{version}", "environment": "Production", "strategy": "Canary",
  "canaryConfig": {{ "initialPercentage": 10, "incrementPercentage": 20, "evaluationPeriod": "PT5M",
    "autoRollback": true, "thresholds": {{ "maxErrorRate": 1, "maxLatencyP99Ms": 500, "minSuccessRate": 99 }} }}
}}"#
            ),
        ),
        3 => (
            format!("rollouts/{id}.yaml"),
            format!("pluginId: {id}\nversion: {version}\nstrategy: BlueGreen\nblueGreenConfig:\n  warmupPeriod: 30s\n  switchoverType: Gradual\n  gradualSteps: [25, 50, 100]\n  smokeTests: [/health/ready]\n"),
        ),
        _ => (
            format!("rollouts/{id}.yaml"),
            format!("pluginId: {id}\nversion: {version}\nstrategy: ABTesting\nabConfig:\n  variantA: 1.0.0\n  variantB: {version}\n  trafficSplit: {{ A: 50, B: 50 }}\n  testDuration: 10m\n  decisionMetrics: [latency, errorRate]\n"),
        ),
    }
}

/// A valid fleet of `n` plugins.
fn fleet(n: usize) -> FileSet {
    let mut files = FileSet::new();
    let mut put = |path: String, text: String| {
        files.insert(path, text.into_bytes());
    };
    put(
        "plugsync.yaml".into(),
        "fleet: bench\nenvironment: Production\nbackend: { type: docker, network: bench }\ninterval: 30s\nmaxPruneFraction: 0.25\n".into(),
    );
    put(
        "policies/canary-prod.yaml".into(),
        "name: canary-prod\nstrategy: Canary\ncanaryConfig:\n  steps: [10, 30, 50, 100]\n  evaluationPeriod: 2m\n  thresholds: { maxErrorRate: 1, maxLatencyP99Ms: 500 }\nanalysis:\n  builtin: true\n  interval: 10s\n".into(),
    );
    put(
        "policies/rolling-fast.json".into(),
        r#"{ "name": "rolling-fast", "strategy": "Rolling", "rollingConfig": { "batchSize": "50%", "waitBetweenBatches": "PT5S" } }"#.into(),
    );
    for i in 0..n {
        let id = id(i);
        let version = version(i);
        if i % 100 == 50 {
            // BotMatrix: two version folders, 90 / 10.
            put(format!("plugins/{id}/v{version}/manifest.yaml"), yaml_manifest(i, &version, Some(90)));
            let next = format!("{}.{}.{}", 1 + i % 3, i % 17, 10 + i % 5);
            put(format!("plugins/{id}/v{next}/plugin.yaml"), yaml_manifest(i, &next, Some(10)));
            continue;
        }
        if i % 3 == 0 {
            put(format!("plugins/{id}/plugin.json"), json_manifest(i, &version));
        } else {
            put(format!("plugins/{id}/plugin.yaml"), yaml_manifest(i, &version, None));
        }
        if i % 11 == 5 && named_policy(i).is_none() && i % 13 != 0 {
            let (path, text) = binding(i, &version);
            put(path, text);
        }
        if i % 25 == 1 {
            put(
                format!("environments/production/{id}.yaml"),
                "replicas: 2\nenv:\n  LOG_LEVEL: warn\nconfig:\n  features: { export: false }\n".into(),
            );
        }
    }
    files
}

fn bench_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("model::load");
    group.sample_size(10);
    // Each load takes 0.1 s to 2 s: the same iteration count per sample keeps the run short.
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(2));
    for n in [1_000usize, 10_000] {
        let files = fleet(n);
        // Once, outside the timing: the generated fleet is what it claims to be.
        let loaded = load(&files, None);
        let errors: Vec<String> = loaded.errors().take(5).map(|d| d.to_string()).collect();
        assert!(loaded.is_valid(), "generated fleet of {n} is invalid: {errors:#?}");
        assert_eq!(loaded.fleet.plugins.len(), n);
        assert_eq!(loaded.warnings().count(), 0, "{:#?}", loaded.warnings().take(5).collect::<Vec<_>>());
        let bytes: usize = files.values().map(Vec::len).sum();
        eprintln!("fleet of {n}: {} files, {:.1} MiB", files.len(), bytes as f64 / (1 << 20) as f64);

        group.throughput(Throughput::Elements(n as u64));
        group.measurement_time(Duration::from_secs(if n > 1_000 { 20 } else { 4 }));
        group.bench_with_input(BenchmarkId::new("plugins", n), &files, |b, files| {
            b.iter(|| load(black_box(files), None))
        });
        // The daemon's case: the previous revision's files are in the parse cache and one
        // manifest changed (its version alternates, so every iteration sees a change).
        let mut cache = ParseCache::default();
        let _ = load_cached(&files, None, &mut cache);
        let (path, original) = files.iter().find(|(p, _)| p.ends_with("/plugin.yaml")).expect("a YAML manifest");
        let (path, original) = (path.clone(), String::from_utf8(original.clone()).expect("utf-8"));
        let line = original.lines().find(|l| l.starts_with("version: ")).expect("a version line").to_string();
        let bumped = original.replacen(&line, "version: 9.9.9", 1).into_bytes();
        let mut files = files.clone();
        let mut flip = false;
        group.bench_function(BenchmarkId::new("plugins-one-file-changed-cached", n), |b| {
            b.iter(|| {
                flip = !flip;
                files.insert(path.clone(), if flip { bumped.clone() } else { original.clone().into_bytes() });
                load_cached(black_box(&files), None, &mut cache)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
