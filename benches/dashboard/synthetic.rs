//! A fleet of `n` plugins made in memory for the dashboard bench: manifests with descriptions,
//! owners, tags, dependencies and every strategy; the status document a daemon would publish
//! for it (versions per slot, last change, some drift, some rollouts recorded); and rollouts in
//! flight as the event bus holds them (canaries with verdicts, A/B tests with both variants).

use plugsync::events::{AbLive, Phase, RolloutLive, SlotVerdict};
use plugsync::model::{load, FileSet, Loaded};
use plugsync::plan::Slot;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub fn id(i: usize) -> String {
    format!("svc-{i:04}")
}

fn policy(i: usize) -> &'static str {
    match i % 5 {
        0 => {
            "rollout: {strategy: Canary, canaryConfig: {steps: [10, 25, 50, 100], evaluationPeriod: 2m, \
              thresholds: {maxErrorRate: 0.01, maxLatencyP99Ms: 500}}}\n"
        }
        1 => "rollout: {strategy: ABTesting, abConfig: {testDuration: 10m, decisionMetrics: [latency, errorRate]}}\n",
        2 => {
            "rollout: {strategy: BlueGreen, blueGreenConfig: {switchoverType: Gradual, gradualSteps: [25, 50, 100]}}\n"
        }
        3 => "rollout: {strategy: Rolling, rollingConfig: {batchSize: 2}}\n",
        _ => "",
    }
}

fn manifest(i: usize) -> String {
    let id = id(i);
    let mut deps = Vec::new();
    if i > 0 {
        deps.push(self::id(0));
    }
    if !i.is_multiple_of(20) && i > 1 {
        deps.push(self::id(i - 1));
    }
    let deps = if deps.is_empty() { String::new() } else { format!("dependsOn: [{}]\n", deps.join(", ")) };
    format!(
        "id: {id}\nname: Service {i}\nversion: 1.{}.{}\ndescription: Plugin number {i} <generated> for the bench, \
         with an \"honest\" description & more\nowners: [team-{}, owner{}@example.com]\ntags: [group-{}, tier-{}]\n\
         runtime: {{image: 'registry.example.com/plugins/{id}:1.{}.{}', resources: {{cpu: 250m, memory: 128Mi}}}}\n\
         api: {{port: 8080, basePath: /api/{id}}}\nreplicas: {}\nenv: {{LOG_LEVEL: info}}\n{deps}{}",
        i % 7,
        i % 3,
        i % 40,
        i % 13,
        i % 25,
        i % 3,
        i % 7,
        i % 3,
        1 + i % 3,
        policy(i)
    )
}

pub fn fleet(n: usize) -> Loaded {
    let mut files = FileSet::new();
    files.insert(
        "plugsync.yaml".into(),
        b"fleet: bench\nbackend: {type: docker, network: bench}\nwindows:\n  - {kind: deny, schedule: '0 22 * * 5', duration: 60h}\n"
            .to_vec(),
    );
    for i in 0..n {
        files.insert(format!("plugins/{}/plugin.yaml", id(i)), manifest(i).into_bytes());
    }
    let loaded = load(&files, None);
    assert!(loaded.is_valid(), "the synthetic fleet is invalid: {:?}", loaded.errors().next());
    loaded
}

fn plugin_status(i: usize) -> Value {
    let version = format!("1.{}.{}", i % 7, i % 3);
    let mut slots = Map::new();
    slots.insert("stable".into(), json!({"version": version, "instances": 1 + i % 3}));
    if i.is_multiple_of(10) {
        slots.insert("canary".into(), json!({"version": "2.0.0", "instances": 1}));
    }
    let mut status = json!({
        "plugin": id(i),
        "state": if i % 50 == 7 { "FAILED" } else if i.is_multiple_of(10) { "INSTALLING" } else { "ACTIVE" },
        "desiredVersion": version,
        "strategy": "Canary",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "slots": slots,
        "lastChange": {"kind": "update", "result": "converged", "reasons": ["image 1.0 → 1.1"],
                       "revision": "0123456789abcdef0123456789abcdef01234567", "at": "2026-12-04T12:00:00Z"},
        "applied": "feedfacecafe0123",
    });
    if i % 30 == 3 {
        status["drift"] = json!({"open": true, "findings": ["missing svc instance", "env LOG_LEVEL changed"], "detectedAt": "2026-12-04T11:00:00Z"});
    }
    if i.is_multiple_of(10) {
        status["rollout"] = json!({"target": "abcdef0123456789", "step": 1, "promoted": false});
    }
    status
}

/// The status document after a pass (`at` names the pass, for the bench's delivery timing).
pub fn status_doc(n: usize, at: &str) -> Value {
    let plugins: Map<String, Value> = (0..n).map(|i| (id(i), plugin_status(i))).collect();
    json!({
        "fleet": "bench", "revision": "0123456789abcdef0123456789abcdef01234567", "at": at, "errors": [],
        "plugins": plugins,
        "plan": {"fleet": "bench", "changes": [], "held": [{"plugin": id(1), "kind": "update", "reason": "deny window"}]},
    })
}

fn verdict(requests: f64) -> SlotVerdict {
    SlotVerdict {
        verdict: "pass",
        text: "error rate 0%, p99 12 ms".into(),
        requests: Some(requests),
        error_rate: Some(0.1),
        success_rate: Some(99.9),
        p99_ms: Some(12.0),
        throughput: Some(requests / 60.0),
    }
}

/// A rollout in flight of plugin `i` (a canary, or an A/B test for `i % 5 == 1`), at `at_ms`.
pub fn rollout(i: usize, at_ms: u64) -> RolloutLive {
    let ab = i % 5 == 1;
    RolloutLive {
        plugin: id(i),
        slot: Slot::Stable,
        strategy: if ab { "ABTesting" } else { "Canary" }.into(),
        version: "2.0.0".into(),
        target: "abcdef012345".into(),
        step: 1,
        steps: if ab { Vec::new() } else { vec![10.0, 25.0, 50.0, 100.0] },
        shares: Vec::new(),
        phase: Phase::Progressing,
        note: "canary 25 % (achieved 25 %, 1 of 4 instances): evaluating".into(),
        verdicts: if ab {
            [(Slot::Stable, verdict(600.0)), (Slot::B, verdict(580.0))].into()
        } else {
            [(Slot::Canary, verdict(150.0))].into()
        },
        ab: ab.then(|| AbLive { winner: None, inconclusive: true, summary: "inconclusive so far".into() }),
        started_ms: Some(at_ms.saturating_sub(60_000)),
        step_started_ms: Some(at_ms.saturating_sub(20_000)),
        step_period_ms: Some(120_000),
        at_ms,
    }
}

/// The bus's latest rollouts: every tenth plugin has one in flight.
pub fn rollouts(n: usize, at_ms: u64) -> BTreeMap<String, RolloutLive> {
    (0..n).filter(|i| i % 10 == 0 || i % 10 == 1).map(|i| (id(i), rollout(i, at_ms))).collect()
}
