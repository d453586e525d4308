//! `plugsync validate` against one fault at a time: each case changes a small valid fleet and
//! names the exact diagnostic (code, file, line, field, found, expected) it must produce.
//! Runs the real binary with `--format json` and prints the whole report when a case fails.

use plugsync_test_support::fixtures as support;

use std::collections::BTreeSet;
use support::{assert_reported, list, plugins, pretty, Expect, TempFleet};

// ---------------------------------------------------------------------------------------------
// The valid base fleet: Production, four plugins (YAML and JSON), a named policy, a binding.

const BASE: &[(&str, &str)] = &[
    ("plugsync.yaml", "fleet: faults\nenvironment: Production\nbackend: docker\nmaxPruneFraction: 0.5\n"),
    (
        "plugins/auth/plugin.yaml",
        r#"id: auth
name: Authentication
version: 1.1.0
runtime:
  type: node
  image: registry.example.com/auth:1.1.0
  resources: { cpu: 200m, memory: 64Mi }
replicas: 2
env:
  TOKEN_TTL_SECONDS: "3600"
rollout:
  strategy: Rolling
  rollingConfig:
    batchSize: 1
    waitBetweenBatches: 10s
"#,
    ),
    (
        "plugins/crm/plugin.json",
        r#"{
  "id": "crm",
  "name": "CRM",
  "version": "2.3.0",
  "author": "Sales Platform Team",
  "runtime": {
    "type": "typescript",
    "image": "registry.example.com/crm:2.3.0",
    "resources": { "cpu": "250m", "memory": "128Mi" }
  },
  "api": { "port": 8080, "basePath": "/api/plugins/crm" },
  "dependsOn": ["auth"],
  "replicas": 3,
  "policy": "canary-prod"
}
"#,
    ),
    (
        "plugins/billing/plugin.yaml",
        r#"id: billing
version: 1.0.0
runtime:
  image: registry.example.com/billing:1.0.0
  resources: { cpu: "0.5", memory: 256Mi }
dependsOn: [auth]
replicas: 2
"#,
    ),
    (
        "plugins/reports/plugin.json",
        r#"{
  "id": "reports",
  "version": "1.0.0",
  "runtime": { "image": "registry.example.com/reports:1.0.0" },
  "dependsOn": ["crm"],
  "rollout": { "strategy": "Direct" }
}
"#,
    ),
    (
        "policies/canary-prod.yaml",
        r#"name: canary-prod
strategy: Canary
canaryConfig:
  initialPercentage: 25
  incrementPercentage: 25
  evaluationPeriod: 1m
  thresholds: { maxErrorRate: 0.01, maxLatencyP99Ms: 500, minSuccessRate: 0.99 }
"#,
    ),
    (
        "rollouts/billing.json",
        r#"{
  "pluginId": "billing",
  "version": "1.0.0",
  "environment": "Production",
  "strategy": "BlueGreen",
  "blueGreenConfig": { "warmupPeriod": "PT30S", "switchoverType": "Instant" }
}
"#,
    ),
];

fn base_fleet() -> TempFleet {
    TempFleet::with(BASE)
}

// ---------------------------------------------------------------------------------------------
// The cases.

#[derive(Debug, Clone, Copy)]
enum Edit {
    Write(&'static str, &'static str),
    Delete(&'static str),
}
use Edit::{Delete, Write};

struct Case {
    name: &'static str,
    edits: &'static [Edit],
    expect: Expect,
}

/// A plain plugin manifest for cases that only need a plugin to exist.
macro_rules! plain {
    ($id:literal, $version:literal) => {
        concat!(
            "id: ",
            $id,
            "\nversion: ",
            $version,
            "\nruntime:\n  image: registry.example.com/",
            $id,
            ":",
            $version,
            "\n"
        )
    };
}

const CASES: &[Case] = &[
    Case {
        name: "invalid JSON syntax",
        edits: &[Write(
            "plugins/broken-json/plugin.json",
            "{\n  \"id\": \"broken-json\",\n  \"version\": \"1.0.0\",\n  \"runtime\": { \"image\": \"x/broken:1.0.0\" }\n  \"replicas\": 2\n}\n",
        )],
        expect: Expect {
            code: "syntax",
            file: "plugins/broken-json/plugin.json",
            line: Some(5),
            field: "",
            found: &["invalid JSON", "expected `,` or `}`"],
            expected: &["a JSON document"],
        },
    },
    Case {
        name: "invalid YAML syntax",
        edits: &[Write(
            "plugins/broken-yaml/plugin.yaml",
            "id: broken-yaml\nversion: 1.0.0\nruntime:\n  image: x/broken:1.0.0\n  resources: [cpu: 1\nreplicas: 1\n",
        )],
        expect: Expect {
            code: "syntax",
            file: "plugins/broken-yaml/plugin.yaml",
            line: Some(6),
            field: "",
            found: &["invalid YAML"],
            expected: &["a YAML document"],
        },
    },
    Case {
        name: "memory 512X",
        edits: &[Write(
            "plugins/mem/plugin.yaml",
            "id: mem\nversion: 1.0.0\nruntime:\n  image: registry.example.com/mem:1.0.0\n  resources:\n    cpu: 500m\n    memory: 512X\n",
        )],
        expect: Expect {
            code: "schema",
            file: "plugins/mem/plugin.yaml",
            line: Some(7),
            field: "runtime.resources.memory",
            found: &["512X"],
            expected: &["512Mi"],
        },
    },
    Case {
        name: "cpu abc (JSON)",
        edits: &[Write(
            "plugins/cpu/plugin.json",
            "{\n  \"id\": \"cpu\",\n  \"version\": \"1.0.0\",\n  \"runtime\": {\n    \"image\": \"registry.example.com/cpu:1.0.0\",\n    \"resources\": { \"cpu\": \"abc\", \"memory\": \"128Mi\" }\n  }\n}\n",
        )],
        expect: Expect {
            code: "schema",
            file: "plugins/cpu/plugin.json",
            line: Some(6),
            field: "runtime.resources.cpu",
            found: &["abc"],
            expected: &["500m"],
        },
    },
    Case {
        name: "duration `10 minutes` in a policy",
        edits: &[Write(
            "policies/slow.yaml",
            "name: slow\nstrategy: Canary\ncanaryConfig:\n  initialPercentage: 10\n  evaluationPeriod: 10 minutes\n",
        )],
        expect: Expect {
            code: "schema",
            file: "policies/slow.yaml",
            line: Some(5),
            field: "canaryConfig.evaluationPeriod",
            found: &["10 minutes"],
            expected: &["PT10M", "10m"],
        },
    },
    Case {
        name: "missing runtime.image",
        edits: &[Write(
            "plugins/noimage/plugin.yaml",
            "id: noimage\nversion: 1.0.0\nruntime:\n  type: python\n  resources: { memory: 64Mi }\n",
        )],
        expect: Expect {
            code: "schema",
            file: "plugins/noimage/plugin.yaml",
            line: Some(3),
            field: "runtime.image",
            found: &["nothing"],
            expected: &["required field `image`"],
        },
    },
    Case {
        name: "unknown field inside runtime",
        edits: &[Write(
            "plugins/extra-rt/plugin.yaml",
            "id: extra-rt\nversion: 1.0.0\nruntime:\n  image: registry.example.com/extra-rt:1.0.0\n  imagePullPolicy: Always\n",
        )],
        expect: Expect {
            code: "unknown-field",
            file: "plugins/extra-rt/plugin.yaml",
            line: Some(5),
            field: "runtime.imagePullPolicy",
            found: &["imagePullPolicy"],
            expected: &["runtime"],
        },
    },
    Case {
        name: "duplicate id in two folders",
        edits: &[
            Write("plugins/dup/plugin.yaml", plain!("dup", "1.0.0")),
            Write(
                "plugins/dup-copy/plugin.json",
                "{\n  \"id\": \"dup\",\n  \"version\": \"1.0.1\",\n  \"runtime\": { \"image\": \"registry.example.com/dup:1.0.1\" }\n}\n",
            ),
        ],
        expect: Expect {
            code: "duplicate-id",
            file: "plugins/dup-copy/plugin.json",
            line: Some(2),
            field: "id",
            found: &["\"dup\"", "plugins/dup/plugin.yaml"],
            expected: &["unique"],
        },
    },
    Case {
        name: "ids a_b and a-b collide as Kubernetes names",
        edits: &[
            Write("plugins/a_b/plugin.yaml", plain!("a_b", "1.0.0")),
            Write("plugins/a-b/plugin.yaml", plain!("a-b", "1.0.0")),
        ],
        expect: Expect {
            code: "id-collision",
            file: "plugins/a_b/plugin.yaml",
            line: Some(1),
            field: "id",
            found: &["\"a_b\"", "\"a-b\"", "plugins/a-b/plugin.yaml"],
            expected: &["'_' becomes '-'"],
        },
    },
    Case {
        name: "a plugin behind the router on the router's runtime API port",
        edits: &[Write(
            "plugins/routed/plugin.yaml",
            "id: routed\nversion: 1.0.0\nruntime:\n  image: registry.example.com/routed:1.0.0\ntraffic:\n  router: haproxy\napi:\n  port: 9999\n",
        )],
        expect: Expect {
            code: "router-port",
            file: "plugins/routed/plugin.yaml",
            line: Some(8),
            field: "api.port",
            found: &["port 9999 behind the router"],
            expected: &["other than 9999 and 8404"],
        },
    },
    Case {
        name: "unknown dependsOn target",
        edits: &[Write(
            "plugins/orders/plugin.yaml",
            "id: orders\nversion: 1.0.0\nruntime:\n  image: registry.example.com/orders:1.0.0\ndependsOn:\n  - auth\n  - ghost-service\n",
        )],
        expect: Expect {
            code: "unknown-dependency",
            file: "plugins/orders/plugin.yaml",
            line: Some(7),
            field: "dependsOn[1]",
            found: &["\"ghost-service\"", "no manifest declares"],
            expected: &["the id of a plugin in this fleet"],
        },
    },
    Case {
        name: "dependency cycle a → b → c → a",
        edits: &[
            Write("plugins/a/plugin.yaml", "id: a\nversion: 1.0.0\nruntime:\n  image: registry.example.com/a:1.0.0\ndependsOn: [b]\n"),
            Write("plugins/b/plugin.yaml", "id: b\nversion: 1.0.0\nruntime:\n  image: registry.example.com/b:1.0.0\ndependsOn: [c]\n"),
            Write("plugins/c/plugin.yaml", "id: c\nversion: 1.0.0\nruntime:\n  image: registry.example.com/c:1.0.0\ndependsOn: [auth, a]\n"),
        ],
        expect: Expect {
            code: "dependency-cycle",
            file: "plugins/a/plugin.yaml",
            line: Some(5),
            field: "dependsOn[0]",
            found: &["a → b → c → a"],
            expected: &["without cycles"],
        },
    },
    Case {
        name: "unknown policy name",
        edits: &[Write(
            "plugins/pol/plugin.yaml",
            "id: pol\nversion: 1.0.0\nruntime:\n  image: registry.example.com/pol:1.0.0\npolicy: canary-prd\n",
        )],
        expect: Expect {
            code: "unknown-policy",
            file: "plugins/pol/plugin.yaml",
            line: Some(5),
            field: "policy",
            found: &["\"canary-prd\""],
            expected: &["did you mean \"canary-prod\""],
        },
    },
    Case {
        name: "binding version differs from the manifest",
        edits: &[
            Write("plugins/vm/plugin.yaml", plain!("vm", "2.0.0")),
            Write("rollouts/vm.yaml", "pluginId: vm\nversion: 2.1.0\nstrategy: Direct\n"),
        ],
        expect: Expect {
            code: "version-mismatch",
            file: "rollouts/vm.yaml",
            line: Some(2),
            field: "version",
            found: &["2.1.0", "rollouts/vm.yaml"],
            expected: &["2.0.0 in plugins/vm/plugin.yaml"],
        },
    },
    Case {
        name: "binding versions list differs from the version folders",
        edits: &[
            Write(
                "plugins/vlist/v1.0.0/manifest.json",
                "{\"id\": \"vlist\", \"version\": \"1.0.0\", \"runtime\": {\"image\": \"r/vlist:1.0.0\"}, \"canary_weight\": 90}\n",
            ),
            Write(
                "plugins/vlist/v1.1.0/plugin.json",
                "{\"id\": \"vlist\", \"version\": \"1.1.0\", \"runtime\": {\"image\": \"r/vlist:1.1.0\"}, \"canary_weight\": 10}\n",
            ),
            Write(
                "rollouts/vlist.json",
                "{\n  \"pluginId\": \"vlist\",\n  \"versions\": [\"1.0.0\", \"1.2.0\"],\n  \"strategy\": \"Canary\"\n}\n",
            ),
        ],
        expect: Expect {
            code: "version-mismatch",
            file: "rollouts/vlist.json",
            line: Some(3),
            field: "versions",
            found: &["1.0.0, 1.2.0", "rollouts/vlist.json"],
            expected: &["1.0.0 in plugins/vlist/v1.0.0/manifest.json", "1.1.0 in plugins/vlist/v1.1.0/plugin.json"],
        },
    },
    Case {
        name: "two manifests in one folder",
        edits: &[
            Write("plugins/twice/plugin.yaml", plain!("twice", "1.0.0")),
            Write(
                "plugins/twice/plugin.json",
                "{\"id\": \"twice\", \"version\": \"1.0.0\", \"runtime\": {\"image\": \"r/twice:1.0.0\"}}\n",
            ),
        ],
        expect: Expect {
            code: "manifest-count",
            file: "plugins/twice/",
            line: None,
            field: "",
            found: &["plugins/twice/plugin.json", "plugins/twice/plugin.yaml"],
            expected: &["exactly one manifest"],
        },
    },
    Case {
        name: "plugin folder without a manifest",
        edits: &[Delete("plugins/reports/plugin.json"), Write("plugins/reports/values.yaml", "pageSize: 10\n")],
        expect: Expect {
            code: "manifest-count",
            file: "plugins/reports/",
            line: None,
            field: "",
            found: &["no manifest"],
            expected: &["plugin.json", "plugin.yaml"],
        },
    },
    Case {
        name: "versioned canary weights summing to 120",
        edits: &[
            Write(
                "plugins/weights/v1.0.0/manifest.json",
                "{\n  \"id\": \"weights\",\n  \"version\": \"1.0.0\",\n  \"runtime\": {\"image\": \"r/weights:1.0.0\"},\n  \"canary_weight\": 90\n}\n",
            ),
            Write(
                "plugins/weights/v1.1.0/manifest.json",
                "{\n  \"id\": \"weights\",\n  \"version\": \"1.1.0\",\n  \"runtime\": {\"image\": \"r/weights:1.1.0\"},\n  \"canary_weight\": 30\n}\n",
            ),
        ],
        expect: Expect {
            code: "canary-weight",
            file: "plugins/weights/v1.1.0/manifest.json",
            line: Some(5),
            field: "canary_weight",
            found: &["90 (1.0.0) + 30 (1.1.0) = 120"],
            expected: &["add up to 100"],
        },
    },
    Case {
        name: "version folder v1.2.0 holding version 1.3.0",
        edits: &[Write(
            "plugins/vf/v1.2.0/plugin.json",
            "{\n  \"id\": \"vf\",\n  \"version\": \"1.3.0\",\n  \"runtime\": {\"image\": \"r/vf:1.3.0\"}\n}\n",
        )],
        expect: Expect {
            code: "version-folder",
            file: "plugins/vf/v1.2.0/plugin.json",
            line: Some(3),
            field: "version",
            found: &["\"1.3.0\"", "v1.2.0/"],
            expected: &["\"1.2.0\""],
        },
    },
    Case {
        name: "three version folders",
        edits: &[
            Write("plugins/tri/v1.0.0/manifest.yaml", plain!("tri", "1.0.0")),
            Write("plugins/tri/v1.1.0/manifest.yaml", plain!("tri", "1.1.0")),
            Write("plugins/tri/v1.2.0/manifest.yaml", plain!("tri", "1.2.0")),
        ],
        expect: Expect {
            code: "manifest-count",
            file: "plugins/tri/",
            line: None,
            field: "",
            found: &["3 version folders", "plugins/tri/v1.2.0/manifest.yaml"],
            expected: &["two for a weighted canary"],
        },
    },
    Case {
        name: "A/B decision metric no analysis source provides",
        edits: &[
            Write("plugins/abx/plugin.yaml", plain!("abx", "1.1.0")),
            Write(
                "rollouts/abx.yaml",
                "pluginId: abx\nversion: 1.1.0\nstrategy: ABTesting\nabConfig:\n  variantA: 1.0.0\n  variantB: 1.1.0\n  trafficSplit: { A: 50, B: 50 }\n  decisionMetrics: [latency, conversionRate]\n",
            ),
        ],
        expect: Expect {
            code: "unprovided-metric",
            file: "rollouts/abx.yaml",
            line: Some(8),
            field: "abConfig.decisionMetrics[1]",
            found: &["\"conversionRate\"", "no analysis source"],
            expected: &["built-in metric", "analysis.prometheus.queries"],
        },
    },
    Case {
        name: "A/B traffic split 60/60",
        edits: &[
            Write("plugins/split/plugin.yaml", plain!("split", "1.1.0")),
            Write(
                "rollouts/split.yaml",
                "pluginId: split\nversion: 1.1.0\nstrategy: ABTesting\nabConfig:\n  variantA: 1.0.0\n  variantB: 1.1.0\n  trafficSplit: { A: 60, B: 60 }\n",
            ),
        ],
        expect: Expect {
            code: "traffic-split",
            file: "rollouts/split.yaml",
            line: Some(7),
            field: "abConfig.trafficSplit",
            found: &["A 60 + B 60 = 120"],
            expected: &["A + B = 100"],
        },
    },
    Case {
        name: "canary steps [10, 50, 30]",
        edits: &[Write(
            "policies/bad-steps.yaml",
            "name: bad-steps\nstrategy: Canary\ncanaryConfig:\n  steps: [10, 50, 30]\n",
        )],
        expect: Expect {
            code: "canary-steps",
            file: "policies/bad-steps.yaml",
            line: Some(4),
            field: "canaryConfig.steps[2]",
            found: &["step 30 after 50"],
            expected: &["strictly increasing"],
        },
    },
    Case {
        name: "overlay for an unknown plugin",
        edits: &[Write("environments/production/ghost.yaml", "replicas: 2\n")],
        expect: Expect {
            code: "unknown-plugin",
            file: "environments/production/ghost.yaml",
            line: None,
            field: "",
            found: &["\"ghost\""],
            expected: &["plugin id", "auth"],
        },
    },
    Case {
        name: "batchSize 150%",
        edits: &[Write(
            "policies/big-batch.yaml",
            "name: big-batch\nstrategy: Rolling\nrollingConfig:\n  batchSize: \"150%\"\n",
        )],
        expect: Expect {
            code: "schema",
            file: "policies/big-batch.yaml",
            line: Some(4),
            field: "rollingConfig.batchSize",
            found: &["150%"],
            expected: &["25%"],
        },
    },
    Case {
        name: "maxPruneFraction 2",
        edits: &[Write(
            "plugsync.yaml",
            "fleet: faults\nenvironment: Production\nbackend: docker\nmaxPruneFraction: 2\n",
        )],
        expect: Expect {
            code: "schema",
            file: "plugsync.yaml",
            line: Some(4),
            field: "maxPruneFraction",
            found: &["2"],
            expected: &["at most 1"],
        },
    },
    Case {
        name: "binding for a plugin that does not exist",
        edits: &[Write("rollouts/nobody.yaml", "pluginId: nobody\nversion: 1.0.0\nstrategy: Direct\n")],
        expect: Expect {
            code: "unknown-plugin",
            file: "rollouts/nobody.yaml",
            line: Some(1),
            field: "pluginId",
            found: &["\"nobody\"", "no manifest declares"],
            expected: &["the id of a plugin"],
        },
    },
];

fn apply(fleet: &TempFleet, edits: &[Edit]) {
    for edit in edits {
        match *edit {
            Write(path, text) => fleet.write(path, text),
            Delete(path) => fleet.delete(path),
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn base_fleet_is_valid_without_warnings() {
    let fleet = base_fleet();
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 0, "{}", pretty(&report));
    assert_eq!(report["valid"], true);
    assert!(list(&report, "errors").is_empty(), "{}", pretty(&report));
    assert!(list(&report, "warnings").is_empty(), "{}", pretty(&report));
    let p = plugins(&report);
    assert_eq!(p.keys().cloned().collect::<Vec<_>>(), ["auth", "billing", "crm", "reports"]);
    assert_eq!(p["auth"]["strategy"], "Rolling");
    assert_eq!(p["billing"]["strategy"], "BlueGreen");
    assert_eq!(p["crm"]["strategy"], "Canary");
    assert_eq!(p["crm"]["policy"], "policy canary-prod (policies/canary-prod.yaml)");
    assert_eq!(p["reports"]["strategy"], "Direct");
}

#[test]
fn every_fault_is_reported_with_file_line_field_found_expected() {
    let mut failures = Vec::new();
    for case in CASES {
        let fleet = base_fleet();
        apply(&fleet, case.edits);
        let (code, report) = fleet.validate_json();
        let outcome = std::panic::catch_unwind(|| {
            assert_eq!(code, 1, "exit code\n{}", pretty(&report));
            assert_eq!(report["valid"], false, "valid flag\n{}", pretty(&report));
            assert_reported(&report, "errors", &case.expect, case.name);
        });
        if let Err(e) = outcome {
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("=== case {:?}\n{message}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn cases_touch_distinct_files() {
    // So that they can all be applied at once below.
    let mut seen = BTreeSet::new();
    for case in CASES {
        for edit in case.edits {
            let (Write(path, _) | Delete(path)) = *edit;
            assert!(seen.insert(path), "{path} is edited by two cases");
        }
    }
}

#[test]
fn all_faults_at_once_are_all_reported() {
    let fleet = base_fleet();
    for case in CASES {
        apply(&fleet, case.edits);
    }
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    for case in CASES {
        assert_reported(&report, "errors", &case.expect, case.name);
    }
    let errors = list(&report, "errors");
    // One error per case, nothing lost, nothing doubled.
    let unmatched: Vec<String> =
        errors.iter().filter(|d| !CASES.iter().any(|c| c.expect.matches(d))).map(|d| d.to_string()).collect();
    assert!(unmatched.is_empty(), "errors no case expects:\n{}\n{}", unmatched.join("\n"), pretty(&report));
    assert_eq!(errors.len(), CASES.len(), "{}", pretty(&report));
    assert_eq!(report["errorCount"], CASES.len(), "{}", pretty(&report));
}

#[test]
fn ab_metric_is_accepted_when_a_prometheus_query_provides_it() {
    let fleet = base_fleet();
    fleet.write("plugins/abx/plugin.yaml", plain!("abx", "1.1.0"));
    fleet.write(
        "rollouts/abx.yaml",
        r#"pluginId: abx
version: 1.1.0
strategy: ABTesting
abConfig:
  variantA: 1.0.0
  variantB: 1.1.0
  trafficSplit: { A: 50, B: 50 }
  decisionMetrics: [latency, conversionRate]
analysis:
  prometheus:
    url: http://prometheus:9090
    queries:
      conversionRate: sum(rate(orders_total[5m])) / sum(rate(visits_total[5m]))
"#,
    );
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 0, "{}", pretty(&report));
    assert_eq!(plugins(&report)["abx"]["strategy"], "ABTesting");

    // And with the built-in probes switched off, a built-in name is no longer provided.
    fleet.write(
        "rollouts/abx.yaml",
        "pluginId: abx\nstrategy: ABTesting\nabConfig:\n  decisionMetrics: [latency]\nanalysis:\n  builtin: false\n  prometheus:\n    url: http://prometheus:9090\n    queries: { conversionRate: up }\n",
    );
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    assert_reported(
        &report,
        "errors",
        &Expect {
            code: "unprovided-metric",
            file: "rollouts/abx.yaml",
            line: Some(4),
            field: "abConfig.decisionMetrics[0]",
            found: &["\"latency\""],
            expected: &["a Prometheus query name: conversionRate"],
        },
        "builtin: false",
    );
}

#[test]
fn typo_replica_is_a_warning_and_still_valid() {
    let fleet = base_fleet();
    fleet.write(
        "plugins/typo/plugin.yaml",
        "id: typo\nversion: 1.0.0\nruntime:\n  image: registry.example.com/typo:1.0.0\nreplica: 3\n",
    );
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 0, "{}", pretty(&report));
    assert_eq!(report["valid"], true);
    assert_eq!(report["warningCount"], 1, "{}", pretty(&report));
    assert_reported(
        &report,
        "warnings",
        &Expect {
            code: "unknown-field",
            file: "plugins/typo/plugin.yaml",
            line: Some(5),
            field: "replica",
            found: &["`replica`"],
            expected: &["`replicas`"],
        },
        "replica typo",
    );
    assert_eq!(list(&report, "warnings")[0]["severity"], "warning");
    // The typo is ignored: the default of 1 replica applies.
    assert_eq!(plugins(&report)["typo"]["replicas"], 1);
}

#[test]
fn text_output_has_one_line_per_problem() {
    let fleet = base_fleet();
    apply(&fleet, CASES.iter().find(|c| c.name == "memory 512X").unwrap().edits);
    fleet.write(
        "plugins/typo/plugin.yaml",
        "id: typo\nversion: 1.0.0\nruntime:\n  image: registry.example.com/typo:1.0.0\nreplica: 3\n",
    );
    let out = fleet.validate("text");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let expected_error = "plugins/mem/plugin.yaml:7:5: error[schema] runtime.resources.memory: found \"512X\", expected a memory quantity such as 512Mi";
    assert!(
        stdout.lines().any(|l| l.starts_with(expected_error)),
        "no line starting with\n{expected_error}\nin:\n{stdout}"
    );
    let expected_warning = "plugins/typo/plugin.yaml:5:1: warning[unknown-field] replica: found unknown field `replica` (ignored), expected `replicas`?";
    assert!(stdout.lines().any(|l| l == expected_warning), "no line\n{expected_warning}\nin:\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("✗ ") && last.contains("1 error, 1 warning"), "summary line: {last}");
}

#[test]
fn markdown_output_has_plugin_table_and_errors_section() {
    let fleet = base_fleet();
    apply(&fleet, CASES.iter().find(|c| c.name == "unknown policy name").unwrap().edits);
    let out = fleet.validate("markdown");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("## plugsync validate: ❌ invalid"), "{stdout}");
    assert!(stdout.contains("| Plugin | Version | Image |"), "{stdout}");
    assert!(stdout.contains("| `crm` | 2.3.0 | `registry.example.com/crm:2.3.0` | 3 | Canary |"), "{stdout}");
    assert!(stdout.contains("\n### Errors\n"), "{stdout}");
    assert!(stdout.contains("| `plugins/pol/plugin.yaml:5:1` | `policy` | policy \"canary-prd\" |"), "{stdout}");
    assert!(!stdout.contains("### Warnings"), "{stdout}");

    let valid = base_fleet().validate("markdown");
    let stdout = String::from_utf8_lossy(&valid.stdout);
    assert_eq!(valid.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("## plugsync validate: ✅ valid"), "{stdout}");
    assert!(!stdout.contains("### Errors"), "{stdout}");
}

#[test]
fn usage_errors_exit_2() {
    let fleet = base_fleet();
    let missing = fleet.path().join("does-not-exist");
    let out = support::plugsync(&["validate", support::path_str(&missing), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does-not-exist") && stderr.contains("not a directory"), "{stderr}");

    let out = support::plugsync(&["validate", support::path_str(fleet.path()), "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"), "{out:?}");

    let out = support::plugsync(&["schema", "no-such-schema"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs this suite found in src/model (fixed in 2a40cc3).

/// A `rollout` set by an environment overlay is reported in the overlay file, at the line of
/// the field there (it used to name the manifest at 1:1, a line that does not hold it).
#[test]
fn overlay_rollout_errors_name_the_overlay_file() {
    let fleet = base_fleet();
    fleet.write(
        "environments/production/billing.yaml",
        "replicas: 3\nrollout:\n  strategy: ABTesting\n  abConfig:\n    trafficSplit: { A: 60, B: 60 }\n",
    );
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    assert_reported(
        &report,
        "errors",
        &Expect {
            code: "traffic-split",
            file: "environments/production/billing.yaml",
            line: Some(5),
            field: "rollout.abConfig.trafficSplit",
            found: &["A 60 + B 60 = 120"],
            expected: &["A + B = 100"],
        },
        "overlay rollout",
    );
}

/// The schema and FORMATS accept a leading `v` on versions: manifest `v1.0.0` and binding
/// `1.0.0` are the same version (it used to be a "version-mismatch").
#[test]
fn binding_version_ignores_a_leading_v() {
    let fleet = base_fleet();
    fleet.write("plugins/billing/plugin.yaml", &BASE[3].1.replace("version: 1.0.0", "version: v1.0.0"));
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 0, "{}", pretty(&report));
}

/// A folder rejected for its layout (two manifests) still declares its id: plugins that
/// depend on it get no second, wrong "which no manifest declares" error.
#[test]
fn rejected_folder_does_not_cascade_into_unknown_dependency() {
    let fleet = base_fleet();
    fleet.write("plugins/auth/plugin.yml", BASE[1].1);
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 1, "{}", pretty(&report));
    let codes: Vec<&str> = list(&report, "errors").iter().map(|d| d["code"].as_str().unwrap_or_default()).collect();
    assert_eq!(codes, ["manifest-count"], "{}", pretty(&report));
}

/// FORMATS: plugsync.yaml is optional and every field has a default, so a file holding only
/// comments (YAML null) means "all defaults" (it used to be "found null, expected object").
#[test]
fn comment_only_fleet_config_means_defaults() {
    let fleet = base_fleet();
    fleet.write("plugsync.yaml", "# all defaults for now\n");
    let (code, report) = fleet.validate_json();
    assert_eq!(code, 0, "{}", pretty(&report));
}
