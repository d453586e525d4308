//! The formats plugin teams already write are accepted as written (FORMATS.md): Plexica-style
//! plugin.json, HotSwap-style rollout bindings for every strategy, BotMatrix-style versioned
//! folders, in JSON and YAML. Checks the binary's exit code and `plugins` summary, and the
//! library's typed reading of the same files.

use plugsync_test_support::fixtures as support;

use plugsync::model::policy::BatchSize;
use plugsync::model::{self, Cpu, Memory, Rate, Strategy};
use std::time::Duration;
use support::{list, plugins, plugsync, pretty, repo_root, TempFleet};

/// Loads a fleet directory through the library, as the CLI does.
fn load_dir(fleet: &TempFleet) -> model::Loaded {
    let files = plugsync::source::dir::read_fleet_dir(fleet.path()).expect("read the fleet dir");
    model::load(&files, None)
}

fn assert_valid(fleet: &TempFleet) -> serde_json::Value {
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 0, "{}", pretty(&report));
    assert_eq!(report["valid"], true, "{}", pretty(&report));
    assert!(list(&report, "errors").is_empty(), "{}", pretty(&report));
    report
}

fn secs(s: u64) -> Option<model::Span> {
    Some(model::Span(Duration::from_secs(s)))
}

// ---------------------------------------------------------------------------------------------
// Plexica-style plugin.json

const PLEXICA_JSON: &str = r#"{
  "$schema": "https://plugsync.dev/schemas/plugin-manifest.schema.json",
  "id": "plugin-crm",
  "name": "CRM Plugin",
  "version": "1.2.0",
  "description": "Customer relationship management for Plexica tenants",
  "author": "Plexica Team",
  "license": "MIT",
  "homepage": "https://plexica.dev/plugins/crm",
  "repository": "https://github.com/plexica/plugin-crm",
  "keywords": ["crm", "sales", "contacts"],
  "icon": "users",
  "category": "business",
  "runtime": {
    "type": "typescript",
    "image": "ghcr.io/plexica/plugin-crm:1.2.0",
    "resources": { "cpu": "500m", "memory": "512Mi" }
  },
  "api": {
    "basePath": "/api/plugins/crm",
    "healthCheck": "/health",
    "openapi": "/openapi.json"
  },
  "capabilities": ["contacts", "deals", "pipelines"],
  "permissions": [
    { "resource": "contacts", "action": "read", "description": "View contacts" },
    { "resource": "contacts", "action": "write", "description": "Create and edit contacts" },
    { "resource": "deals", "action": "read", "description": "View deals" }
  ],
  "frontend": {
    "remoteEntry": "/plugins/crm/remoteEntry.js",
    "exposedModules": { "./CrmDashboard": "./src/pages/Dashboard" },
    "routes": [{ "path": "/crm", "component": "CrmDashboard", "title": "CRM" }],
    "menuItems": [{ "label": "CRM", "path": "/crm", "icon": "users", "order": 10 }]
  },
  "events": { "publishes": ["crm.contact.created"], "subscribes": ["tenant.created"] },
  "dependencies": { "@plexica/core": "^1.0.0" },
  "translations": { "namespaces": ["crm"], "supportedLocales": ["en", "it"] },
  "config": { "pageSize": 50, "features": { "forecast": true } },
  "env": { "LOG_LEVEL": "info" }
}
"#;

const PLEXICA_YAML: &str = r#"# The same manifest as plugin.json, written in YAML.
$schema: https://plugsync.dev/schemas/plugin-manifest.schema.json
id: plugin-crm
name: CRM Plugin
version: 1.2.0
description: Customer relationship management for Plexica tenants
author: Plexica Team
license: MIT
homepage: https://plexica.dev/plugins/crm
repository: https://github.com/plexica/plugin-crm
keywords: [crm, sales, contacts]
icon: users
category: business
runtime:
  type: typescript
  image: ghcr.io/plexica/plugin-crm:1.2.0
  resources:
    cpu: 500m
    memory: 512Mi
api:
  basePath: /api/plugins/crm
  healthCheck: /health
  openapi: /openapi.json
capabilities: [contacts, deals, pipelines]
permissions:
  - resource: contacts
    action: read
    description: View contacts
  - { resource: contacts, action: write, description: Create and edit contacts }
  - resource: deals
    action: read
    description: View deals
frontend:
  remoteEntry: /plugins/crm/remoteEntry.js
  exposedModules:
    ./CrmDashboard: ./src/pages/Dashboard
  routes:
    - { path: /crm, component: CrmDashboard, title: CRM }
  menuItems:
    - { label: CRM, path: /crm, icon: users, order: 10 }
events:
  publishes: [crm.contact.created]
  subscribes: [tenant.created]
dependencies:
  "@plexica/core": ^1.0.0
translations: { namespaces: [crm], supportedLocales: [en, it] }
config:
  pageSize: 50
  features: { forecast: true }
env:
  LOG_LEVEL: info
"#;

#[test]
fn plexica_plugin_json_and_the_same_in_yaml_are_accepted_alike() {
    let mut manifests = Vec::new();
    for (file, text) in [("plugin.json", PLEXICA_JSON), ("plugin.yaml", PLEXICA_YAML)] {
        let path = format!("plugins/plugin-crm/{file}");
        let fleet = TempFleet::with(&[("plugsync.yaml", "environment: Staging\n"), (path.as_str(), text)]);
        let report = assert_valid(&fleet);
        // Catalogue keys (author, permissions, frontend …) are quietly kept, not warned about.
        assert!(list(&report, "warnings").is_empty(), "{file}: {}", pretty(&report));
        let p = &plugins(&report)["plugin-crm"];
        assert_eq!(p["version"], "1.2.0", "{file}");
        assert_eq!(p["image"], "ghcr.io/plexica/plugin-crm:1.2.0", "{file}");
        assert_eq!(p["replicas"], 1, "{file}");
        assert_eq!(p["strategy"], "Rolling", "{file}: Staging default");
        assert_eq!(p["policy"], "default for Staging", "{file}");

        let loaded = load_dir(&fleet);
        let m = loaded.fleet.plugins["plugin-crm"].manifest.clone();
        assert_eq!(m.runtime.resources.cpu, Some(Cpu::from_millis(500)), "{file}");
        assert_eq!(m.runtime.resources.memory, Some(Memory::from_bytes(512 << 20)), "{file}");
        assert_eq!(m.api.base_path.as_deref(), Some("/api/plugins/crm"), "{file}");
        assert_eq!(m.api.port, 8080, "{file}: default port");
        assert_eq!(m.api.readiness, "/health/ready", "{file}: default readiness");
        assert_eq!(m.config["features"]["forecast"], true, "{file}");
        assert_eq!(m.extra["permissions"][1]["action"], "write", "{file}");
        assert!(m.extra.contains_key("frontend"), "{file}");
        manifests.push(m);
    }
    assert_eq!(manifests[0], manifests[1], "JSON and YAML give the same manifest");
}

// ---------------------------------------------------------------------------------------------
// HotSwap-style bindings for every strategy, BotMatrix versioned folders, defaults.

fn manifest(id: &str, version: &str) -> String {
    format!("id: {id}\nversion: {version}\nruntime:\n  image: registry.example.com/{id}:{version}\nreplicas: 4\n")
}

const BINDINGS: &[(&str, &str)] = &[
    (
        "rollouts/direct-json.json",
        r#"{ "pluginId": "direct-json", "version": "1.1.0", "environment": "Development", "strategy": "Direct" }"#,
    ),
    (
        "rollouts/direct-yaml.yaml",
        "pluginId: direct-yaml\nversion: 1.1.0\nenvironment: Production\nstrategy: Direct\n",
    ),
    (
        "rollouts/rolling-json.json",
        r#"{
  "pluginId": "rolling-json",
  "version": "1.1.0",
  "environment": "Staging",
  "strategy": "Rolling",
  "rollingConfig": {
    "batchSize": 2,
    "waitBetweenBatches": "PT30S",
    "healthCheckTimeout": "PT2M",
    "maxParallelBatches": 1
  }
}"#,
    ),
    (
        "rollouts/rolling-yaml.yaml",
        r#"pluginId: rolling-yaml
version: 1.1.0
environment: QA
strategy: Rolling
rollingConfig:
  batchSize: "25%"
  waitBetweenBatches: 30s
  healthCheckTimeout: 2m
  maxParallelBatches: 2
"#,
    ),
    (
        "rollouts/canary-json.json",
        r#"{
  "pluginId": "canary-json",
  "version": "1.1.0",
  "environment": "Production",
  "strategy": "Canary",
  "canaryConfig": {
    "initialPercentage": 10,
    "incrementPercentage": 20,
    "evaluationPeriod": "PT5M",
    "autoRollback": true,
    "thresholds": { "maxErrorRate": 0.05, "maxLatencyP99Ms": 1000, "minSuccessRate": 0.95 }
  }
}"#,
    ),
    (
        "rollouts/canary-yaml.yaml",
        r#"pluginId: canary-yaml
version: 1.1.0
environment: Production
strategy: Canary
canaryConfig:
  steps: [10, 30, 50, 100]
  evaluationPeriod: 5m
  autoRollback: false
  thresholds:
    maxErrorRate: 1%
    maxLatencyP99Ms: 250.5
    minSuccessRate: "99.5 %"
"#,
    ),
    (
        "rollouts/bluegreen-json.json",
        r#"{
  "pluginId": "bluegreen-json",
  "version": "1.1.0",
  "environment": "Production",
  "strategy": "BlueGreen",
  "blueGreenConfig": {
    "warmupPeriod": "PT1M",
    "switchoverType": "Instant",
    "monitoringPeriod": "PT10M",
    "keepPreviousEnvironment": true,
    "smokeTests": ["/health/ready", "/api/plugins/bluegreen-json/ping"]
  }
}"#,
    ),
    (
        "rollouts/bluegreen-yaml.yaml",
        r#"pluginId: bluegreen-yaml
version: 1.1.0
environment: Staging
strategy: BlueGreen
blueGreenConfig:
  warmupPeriod: 30s
  switchoverType: Gradual
  gradualSteps: [25, 50, 100]
  monitoringPeriod: 1h30m
  keepPreviousEnvironment: false
"#,
    ),
    (
        "rollouts/ab-json.json",
        r#"{
  "pluginId": "ab-json",
  "version": "1.1.0",
  "environment": "Production",
  "strategy": "ABTesting",
  "abConfig": {
    "variantA": "1.0.0",
    "variantB": "1.1.0",
    "trafficSplit": { "A": 50, "B": 50 },
    "testDuration": "PT24H",
    "decisionMetrics": ["latency", "errorRate", "successRate", "throughput"],
    "autoPromote": false,
    "winnerThreshold": 0.05
  }
}"#,
    ),
    (
        "rollouts/ab-yaml.yaml",
        r#"pluginId: ab-yaml
version: 1.1.0
environment: Production
strategy: ABTesting
abConfig:
  variantA: 1.0.0
  variantB: 1.1.0
  trafficSplit: { A: 90, B: 10 }
  testDuration: P1DT2H
  decisionMetrics: [latency, conversionRate]
  autoPromote: true
  winnerThreshold: 2.5%
analysis:
  builtin: true
  interval: PT0.5S
  minSamples: 20
  prometheus:
    url: http://prometheus:9090
    queries:
      conversionRate: sum(rate(orders_total[5m])) / sum(rate(visits_total[5m]))
"#,
    ),
    // BotMatrix-style plugin with two version folders, bound with `versions`.
    (
        "rollouts/notifier.yaml",
        "pluginId: notifier\nversions: [1.0.0, 1.1.0]\nenvironment: Production\nstrategy: Canary\ncanaryConfig:\n  evaluationPeriod: 10m\n",
    ),
    // No strategy: the binding's environment picks it.
    ("rollouts/qa-default.yaml", "pluginId: qa-default\nversion: 1.1.0\nenvironment: QA\n"),
    ("rollouts/staging-default.json", r#"{"pluginId": "staging-default", "environment": "Staging"}"#),
    ("rollouts/dev-default.yaml", "pluginId: dev-default\nenvironment: Development\n"),
    // No pluginId: the file name binds it.
    ("rollouts/by-name.yaml", "version: 1.1.0\nstrategy: BlueGreen\n"),
];

fn formats_fleet() -> TempFleet {
    let fleet = TempFleet::with(BINDINGS);
    fleet.write(
        "plugsync.yaml",
        "fleet: formats\nenvironment: Production\nbackend: { type: kubernetes, namespace: plugins }\ninterval: PT30S\nwindows:\n  - { kind: deny, schedule: \"0 17 * * 5\", duration: 60h }\nalerts: { repeatInterval: PT4H }\n",
    );
    for (path, _) in BINDINGS {
        let id = path.trim_start_matches("rollouts/").split('.').next().unwrap();
        if id != "notifier" {
            fleet.write(&format!("plugins/{id}/plugin.yaml"), &manifest(id, "1.1.0"));
        }
    }
    fleet.write(
        "plugins/notifier/v1.0.0/manifest.json",
        r#"{
  "id": "notifier",
  "name": "Notifier",
  "version": "1.0.0",
  "author": "Messaging Team",
  "runtime": { "type": "node", "image": "registry.example.com/notifier:1.0.0",
               "resources": { "cpu": "100m", "memory": "32Mi" } },
  "canary_weight": 90
}"#,
    );
    fleet.write(
        "plugins/notifier/v1.1.0/plugin.json",
        r#"{
  "id": "notifier",
  "name": "Notifier",
  "version": "1.1.0",
  "author": "Messaging Team",
  "runtime": { "type": "node", "image": "registry.example.com/notifier:1.1.0",
               "resources": { "cpu": "100m", "memory": "32Mi" } },
  "canary_weight": 10
}"#,
    );
    // Quantities in every accepted spelling.
    fleet.write(
        "plugins/quantities/plugin.yaml",
        r#"id: quantities
version: 1.0.0
runtime:
  image: registry.example.com/quantities@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  resources:
    cpu: "1.5"
    memory: 1Gi
  reservations:
    cpu: 500m
    memory: 500M
"#,
    );
    fleet.write(
        "plugins/numbers/plugin.json",
        r#"{ "id": "numbers", "version": "1.0.0",
  "runtime": { "image": "r/numbers:1.0.0",
    "resources": { "cpu": 1.5, "memory": 1073741824 },
    "reservations": { "cpu": "2000m", "memory": "2G" } } }"#,
    );
    fleet
}

#[test]
fn hotswap_bindings_for_every_strategy_in_json_and_yaml() {
    let fleet = formats_fleet();
    let report = assert_valid(&fleet);
    assert!(list(&report, "warnings").is_empty(), "{}", pretty(&report));
    let p = plugins(&report);
    let expected = [
        ("direct-json", "Direct", "rollouts/direct-json.json"),
        ("direct-yaml", "Direct", "rollouts/direct-yaml.yaml"),
        ("rolling-json", "Rolling", "rollouts/rolling-json.json"),
        ("rolling-yaml", "Rolling", "rollouts/rolling-yaml.yaml"),
        ("canary-json", "Canary", "rollouts/canary-json.json"),
        ("canary-yaml", "Canary", "rollouts/canary-yaml.yaml"),
        ("bluegreen-json", "BlueGreen", "rollouts/bluegreen-json.json"),
        ("bluegreen-yaml", "BlueGreen", "rollouts/bluegreen-yaml.yaml"),
        ("ab-json", "ABTesting", "rollouts/ab-json.json"),
        ("ab-yaml", "ABTesting", "rollouts/ab-yaml.yaml"),
        ("notifier", "Canary", "rollouts/notifier.yaml"),
        ("qa-default", "Rolling", "rollouts/qa-default.yaml"),
        ("staging-default", "Rolling", "rollouts/staging-default.json"),
        ("dev-default", "Direct", "rollouts/dev-default.yaml"),
        ("by-name", "BlueGreen", "rollouts/by-name.yaml"),
    ];
    for (id, strategy, binding) in expected {
        let summary = p.get(id).unwrap_or_else(|| panic!("{id} missing: {}", pretty(&report)));
        assert_eq!(summary["strategy"], strategy, "{id}: {summary}");
        assert_eq!(summary["policy"], format!("binding {binding}"), "{id}: {summary}");
        if id != "notifier" {
            assert_eq!(summary["version"], "1.1.0", "{id}: {summary}");
            assert_eq!(summary["replicas"], 4, "{id}: {summary}");
        }
    }
    // BotMatrix: both versions, stable first.
    assert_eq!(p["notifier"]["version"], "1.0.0 + 1.1.0");
    assert_eq!(p["notifier"]["image"], "registry.example.com/notifier:1.0.0");
    // Without binding: the fleet's environment (Production) picks Canary.
    assert_eq!(p["quantities"]["strategy"], "Canary");
    assert_eq!(p["quantities"]["policy"], "default for Production");
    assert_eq!(p.len(), expected.len() + 2);
}

#[test]
fn bindings_are_read_as_written() {
    let loaded = load_dir(&formats_fleet());
    assert!(loaded.is_valid(), "{:#?}", loaded.diagnostics);
    let plugin = |id: &str| &loaded.fleet.plugins[id];
    let policy = |id: &str| &plugin(id).policy;

    let r = policy("rolling-json").rolling_config.clone().expect("rollingConfig");
    assert_eq!(r.batch_size, BatchSize::Count(2));
    assert_eq!(r.wait_between_batches, secs(30).unwrap());
    assert_eq!(r.health_check_timeout, secs(120).unwrap());
    let r = policy("rolling-yaml").rolling_config.clone().expect("rollingConfig");
    assert_eq!(r.batch_size, BatchSize::Percent(25));
    assert_eq!(r.batch_size.instances(4), 1);
    assert_eq!((r.wait_between_batches, r.health_check_timeout), (secs(30).unwrap(), secs(120).unwrap()));
    assert_eq!(r.max_parallel_batches, 2);

    let c = policy("canary-json").canary_config.clone().expect("canaryConfig");
    assert_eq!(c.step_percentages(), vec![10.0, 30.0, 50.0, 70.0, 90.0, 100.0]);
    assert_eq!(c.evaluation_period, secs(300));
    assert!(c.auto_rollback);
    assert_eq!(c.thresholds.max_error_rate.map(Rate::fraction), Some(0.05));
    assert_eq!(c.thresholds.max_latency_p99_ms, Some(1000.0));
    assert_eq!(c.thresholds.min_success_rate.map(Rate::fraction), Some(0.95));
    let c = policy("canary-yaml").canary_config.clone().expect("canaryConfig");
    assert_eq!(c.step_percentages(), vec![10.0, 30.0, 50.0, 100.0]);
    assert_eq!(c.evaluation_period, secs(300));
    assert!(!c.auto_rollback, "autoRollback: false = pause for a person");
    assert_eq!(c.thresholds.max_latency_p99_ms, Some(250.5));
    assert_eq!(c.thresholds.max_error_rate.map(Rate::fraction), Some(0.01), "\"1%\" is a percentage string");
    assert!(c.thresholds.min_success_rate.is_some_and(|r| (r.fraction() - 0.995).abs() < 1e-12));

    let b = policy("bluegreen-json").blue_green_config.clone().expect("blueGreenConfig");
    assert_eq!((b.warmup_period, b.monitoring_period), (secs(60), secs(600)));
    assert!(b.keep_previous_environment);
    assert_eq!(b.smoke_tests, ["/health/ready", "/api/plugins/bluegreen-json/ping"]);
    let b = policy("bluegreen-yaml").blue_green_config.clone().expect("blueGreenConfig");
    assert_eq!(b.switchover_type, model::policy::Switchover::Gradual);
    assert_eq!(b.gradual_steps, Some(vec![25.0, 50.0, 100.0]));
    assert_eq!(b.monitoring_period, secs(5400));

    let a = policy("ab-json").ab_config.clone().expect("abConfig");
    assert_eq!((a.traffic_split.a, a.traffic_split.b), (50.0, 50.0));
    assert_eq!(a.test_duration, secs(86_400));
    assert_eq!(a.decision_metrics, ["latency", "errorRate", "successRate", "throughput"]);
    assert_eq!(a.winner_threshold.fraction(), 0.05, "HotSwap's winnerThreshold 0.05 is 5 %");
    let ab_yaml = policy("ab-yaml");
    let a = ab_yaml.ab_config.clone().expect("abConfig");
    assert_eq!((a.traffic_split.a, a.traffic_split.b), (90.0, 10.0));
    assert_eq!(a.test_duration, secs(93_600), "P1DT2H");
    assert!(a.auto_promote);
    let analysis = ab_yaml.analysis.clone().expect("analysis");
    assert_eq!(analysis.interval, Some(model::Span(Duration::from_millis(500))), "PT0.5S");
    assert!(analysis.provides("conversionRate") && analysis.provides("latency"));

    let notifier = plugin("notifier");
    assert_eq!(notifier.versions(), ["1.0.0", "1.1.0"]);
    assert_eq!(notifier.stable_weight, Some(90.0));
    let canary = notifier.canary.as_ref().expect("a fixed canary");
    assert_eq!((canary.weight, canary.source.as_str()), (10.0, "plugins/notifier/v1.1.0/plugin.json"));
    assert_eq!(notifier.source, "plugins/notifier/v1.0.0/manifest.json");

    assert_eq!(plugin("qa-default").strategy, Strategy::Rolling);
    assert_eq!(plugin("staging-default").strategy, Strategy::Rolling);
    assert_eq!(plugin("dev-default").strategy, Strategy::Direct);

    let config = &loaded.fleet.config;
    assert_eq!(config.interval, secs(30).unwrap());
    assert_eq!(config.windows[0].duration, secs(60 * 3600).unwrap());
    assert_eq!(config.backend.kind, model::BackendKind::Kubernetes);
    assert_eq!(config.backend.namespace.as_deref(), Some("plugins"));
}

#[test]
fn cpu_and_memory_in_every_spelling() {
    let loaded = load_dir(&formats_fleet());
    assert!(loaded.is_valid(), "{:#?}", loaded.diagnostics);
    let rt = |id: &str| loaded.fleet.plugins[id].manifest.runtime.clone();
    let q = rt("quantities");
    assert_eq!(q.resources.cpu.map(Cpu::millis), Some(1500), "\"1.5\"");
    assert_eq!(q.resources.memory.map(Memory::bytes), Some(1 << 30), "1Gi");
    assert_eq!(q.reservations.cpu.map(Cpu::millis), Some(500), "500m");
    assert_eq!(q.reservations.memory.map(Memory::bytes), Some(500_000_000), "500M");
    let n = rt("numbers");
    assert_eq!(n.resources.cpu.map(Cpu::millis), Some(1500), "1.5 as a number");
    assert_eq!(n.resources.memory.map(Memory::bytes), Some(1 << 30), "bytes as a number");
    assert_eq!(n.reservations.cpu.map(Cpu::millis), Some(2000), "2000m");
    assert_eq!(n.reservations.memory.map(Memory::bytes), Some(2_000_000_000), "2G");
}

#[test]
fn environment_flag_picks_default_strategy_and_overlay() {
    let svc = manifest("svc", "1.0.0");
    let fleet = TempFleet::with(&[
        ("plugsync.yaml", "environment: Production\n"),
        ("plugins/svc/plugin.yaml", svc.as_str()),
        ("environments/qa/svc.yaml", "replicas: 1\nconfig: { debug: true }\n"),
        ("environments/production/svc.yaml", "replicas: 6\n"),
    ]);
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 0, "{}", pretty(&report));
    assert_eq!(plugins(&report)["svc"]["strategy"], "Canary");
    assert_eq!(plugins(&report)["svc"]["replicas"], 6, "production overlay");

    let out = plugsync(&["validate", support::path_str(fleet.path()), "--format", "json", "--environment", "qa"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plugins(&report)["svc"]["strategy"], "Rolling");
    assert_eq!(plugins(&report)["svc"]["policy"], "default for QA");
    assert_eq!(plugins(&report)["svc"]["replicas"], 1, "qa overlay");
}

#[test]
fn example_fleet_is_valid_with_six_plugins() {
    let dir = repo_root().join("examples/fleet");
    let (code, report) = support::run_json(&dir);
    assert_eq!(code, 0, "{}", pretty(&report));
    assert_eq!(report["errorCount"], 0);
    let p = plugins(&report);
    assert_eq!(
        p.keys().map(String::as_str).collect::<Vec<_>>(),
        ["auth", "billing", "crm", "notifier", "reports", "search"]
    );
    assert_eq!(p["auth"]["strategy"], "Rolling");
    assert_eq!(p["billing"]["strategy"], "BlueGreen");
    assert_eq!(p["crm"]["strategy"], "Canary");
    assert_eq!(p["notifier"]["version"], "1.0.0 + 1.1.0");
    assert_eq!(p["reports"]["strategy"], "Direct");
    assert_eq!(p["search"]["strategy"], "ABTesting");
}

#[test]
fn schema_command_prints_each_schema_with_its_id() {
    for name in ["plugin-manifest", "rollout-policy", "fleet-config", "environment-overlay"] {
        let out = plugsync(&["schema", name]);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        let schema: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        assert_eq!(schema["$id"], format!("https://plugsync.dev/schemas/{name}.schema.json"), "{name}");
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
        // Exactly the file in policy/.
        let on_disk = std::fs::read(repo_root().join(format!("policy/{name}.schema.json"))).expect("policy file");
        assert_eq!(out.stdout, on_disk, "{name}: printed schema differs from policy/");
    }
}

/// Issue 10, defect 1: one rule for rates. `maxErrorRate: 5` could mean 5 % or 500 %: an error
/// naming both readings, at the field's line; `"5%"` and `0.05` both mean 5 %.
#[test]
fn defect_1_a_rate_above_one_is_an_error_naming_both_readings() {
    let fleet = TempFleet::with(&[
        ("plugins/crm/plugin.yaml", &manifest("crm", "1.1.0")),
        (
            "rollouts/crm.json",
            "{\n  \"pluginId\": \"crm\",\n  \"version\": \"1.1.0\",\n  \"strategy\": \"Canary\",\n  \"canaryConfig\": {\n    \
             \"thresholds\": { \"maxErrorRate\": 5, \"minSuccessRate\": \"95%\" }\n  }\n}\n",
        ),
    ]);
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    let errors = list(&report, "errors");
    assert_eq!(errors.len(), 1, "only the bare 5 is wrong: {}", pretty(&report));
    let e = &errors[0];
    assert_eq!(e["file"], "rollouts/crm.json", "{}", pretty(e));
    assert_eq!(e["line"], 6, "{}", pretty(e));
    assert_eq!(e["field"], "canaryConfig.thresholds.maxErrorRate", "{}", pretty(e));
    let expected = e["expected"].as_str().unwrap_or_default();
    for reading in ["0.05", "\"5%\"", "500 %"] {
        assert!(expected.contains(reading), "expected names {reading}: {expected}");
    }

    fleet.write(
        "rollouts/crm.json",
        r#"{ "pluginId": "crm", "version": "1.1.0", "strategy": "Canary",
  "canaryConfig": { "thresholds": { "maxErrorRate": 0.05, "minSuccessRate": "95%" } } }"#,
    );
    let report = assert_valid(&fleet);
    assert!(list(&report, "warnings").is_empty(), "{}", pretty(&report));
}

/// Issue 10, defect 2: a HotSwap-style A/B binding lists variant A beside the manifest's
/// version (B). Accepted; a business metric is provided by the built-in source from the
/// plugin's own counters, and without a source it keeps its clear error.
#[test]
fn defect_2_ab_binding_listing_variant_a_beside_the_manifest_version_is_accepted() {
    let binding = |analysis: &str| {
        format!(
            r#"{{
  "pluginId": "crm",
  "versions": ["1.5.0", "1.6.0"],
  "environment": "Production",
  "strategy": "ABTesting",
  "abConfig": {{
    "variantA": "1.5.0",
    "variantB": "1.6.0",
    "trafficSplit": {{ "A": 50, "B": 50 }},
    "testDuration": "PT1H",
    "decisionMetrics": ["conversionRate", "errorRate"],
    "winnerThreshold": 0.05
  }}{analysis}
}}"#
        )
    };
    let with_metric = r#",
  "analysis": { "metrics": { "conversionRate": { "ratio": ["conversions_total", "http_requests_total"] } } }"#;
    let fleet = TempFleet::with(&[
        ("plugins/crm/plugin.yaml", &manifest("crm", "1.6.0")),
        ("rollouts/crm.json", &binding(with_metric)),
    ]);
    let report = assert_valid(&fleet);
    assert!(list(&report, "warnings").is_empty(), "{}", pretty(&report));
    let loaded = load_dir(&fleet);
    let ab = loaded.fleet.plugins["crm"].policy.ab_config.clone().expect("abConfig");
    assert_eq!((ab.variant_a.as_deref(), ab.variant_b.as_deref()), (Some("1.5.0"), Some("1.6.0")));

    // No source for conversionRate: the clear error stays, naming analysis.metrics.
    fleet.write("rollouts/crm.json", &binding(""));
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    let errors = list(&report, "errors");
    assert_eq!(errors.len(), 1, "{}", pretty(&report));
    assert!(errors[0]["expected"].as_str().unwrap_or_default().contains("analysis.metrics"), "{}", pretty(&report));

    // B must be the manifest's version.
    fleet.write("rollouts/crm.json", &binding(with_metric).replace(r#""variantB": "1.6.0""#, r#""variantB": "1.7.0""#));
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    assert_eq!(list(&report, "errors")[0]["field"], "abConfig.variantB", "{}", pretty(&report));
}

/// Issue 10, defect 6: one run, every problem. `a` has a bad memory value and `a` and `b`
/// depend on each other: the memory value, the cycle, and the missing policy that the broken
/// manifest names are all reported at once.
#[test]
fn defect_6_a_manifest_with_a_schema_error_still_takes_part_in_reference_and_cycle_checks() {
    let fleet = TempFleet::with(&[
        (
            "plugins/a/plugin.yaml",
            "id: a\nversion: 1.0.0\nruntime:\n  image: r/a:1.0.0\n  resources:\n    memory: 512XB\ndependsOn: [b, ghost]\npolicy: nowhere\n",
        ),
        ("plugins/b/plugin.yaml", "id: b\nversion: 1.0.0\nruntime:\n  image: r/b:1.0.0\ndependsOn: [a]\n"),
    ]);
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    let errors = list(&report, "errors");
    let has = |file: &str, field: &str, found: &str| {
        errors.iter().any(|e| {
            e["file"] == file && e["field"] == field && e["found"].as_str().unwrap_or_default().contains(found)
        })
    };
    assert!(has("plugins/a/plugin.yaml", "runtime.resources.memory", "512XB"), "{}", pretty(&report));
    assert!(has("plugins/a/plugin.yaml", "dependsOn[0]", "the cycle a → b → a"), "{}", pretty(&report));
    assert!(has("plugins/a/plugin.yaml", "dependsOn[1]", "ghost"), "{}", pretty(&report));
    assert!(has("plugins/a/plugin.yaml", "policy", "nowhere"), "{}", pretty(&report));
    assert_eq!(errors.len(), 4, "{}", pretty(&report));
}

/// Issue 10, defects 3 and 4 through the binary: `timeZone: "+1éX"` is a clear error (exit 1,
/// not a panic's 101) naming file, line and field; IANA names are accepted in windows and for
/// the fleet's schedule.
#[test]
fn defect_3_and_4_time_zones_in_plugsync_yaml() {
    let fleet = TempFleet::with(&[
        ("plugins/crm/plugin.yaml", &manifest("crm", "1.0.0")),
        (
            "plugsync.yaml",
            "fleet: tz\nschedule: \"0 3 * * *\"\ntimeZone: Europe/Berlin\nwindows:\n  - kind: deny\n    schedule: \"0 17 * * 5\"\n    duration: 60h\n    timeZone: \"+1éX\"\n",
        ),
    ]);
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "an error, not a crash: {}", pretty(&report));
    let errors = list(&report, "errors");
    assert_eq!(errors.len(), 1, "{}", pretty(&report));
    assert_eq!(errors[0]["file"], "plugsync.yaml");
    assert_eq!(errors[0]["field"], "windows[0]");
    assert!(errors[0]["expected"].as_str().unwrap_or_default().contains("+1éX"), "{}", pretty(&report));

    fleet.write(
        "plugsync.yaml",
        "fleet: tz\nschedule: \"0 3 * * *\"\ntimeZone: America/New_York\nwindows:\n  - kind: deny\n    schedule: \"0 17 * * 5\"\n    duration: 60h\n    timeZone: Europe/Berlin\n",
    );
    let report = assert_valid(&fleet);
    assert!(list(&report, "warnings").is_empty(), "{}", pretty(&report));
    fleet.write("plugsync.yaml", "fleet: tz\nschedule: \"0 3 * * *\"\ntimeZone: Mars/Olympus\n");
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    assert_eq!(list(&report, "errors")[0]["field"], "timeZone", "{}", pretty(&report));
}
