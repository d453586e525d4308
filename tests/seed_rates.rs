//! Issue 10, defect 1: rates in HotSwap-style deployment configs mean what their authors meant.
//!
//! `"maxErrorRate": 0.05` is 5 %, on a real Docker engine: a canary whose new version answers
//! 2 % errors is promoted, one answering 10 % is rolled back. Before the fix plugsync read 0.05
//! as 0.05 % and rolled back both. Traffic comes from the `http-probe` client container.
//!
//! Needs Docker; fails loudly without it.

use plugsync_test_support::docker as common;
use plugsync_test_support::progressive as common_progressive;

use common::{PluginDef, V1, V2};
use common_progressive::*;
use plugsync::reconcile::Ending;

/// A HotSwap-style binding for `web` at V2, as such a team writes it: rates as fractions.
const SEED_CANARY: &str = r#"{
  "pluginId": "web",
  "version": "1.1.0",
  "environment": "Production",
  "strategy": "Canary",
  "canaryConfig": {
    "steps": [50, 100],
    "evaluationPeriod": "PT3S",
    "autoRollback": true,
    "maxSurge": 2,
    "thresholds": { "maxErrorRate": 0.05, "minSuccessRate": 0.95 }
  },
  "rollingConfig": { "healthCheckTimeout": "PT20S" },
  "analysis": { "minSamples": 40 }
}"#;

async fn canary_at_error_rate(tag: &str, error_rate: &str) -> (Ending, String) {
    assert_eq!(V2, "1.1.0", "the seed config binds version 1.1.0");
    let web = PluginDef::new("web", V1);
    let (_docker, fleet, backend, _client) = setup(tag, &web).await;
    fleet.write("rollouts/web.json", SEED_CANARY);
    fleet.plugin(&web.clone().version(V2).env("ERROR_RATE", error_rate));

    let validate = fleet.cli(&["validate", fleet.path_str(), "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&validate.stdout).expect("validate --format json");
    assert!(validate.status.success(), "the seed config validates: {report:#}");
    assert_eq!(report["warnings"].as_array().map(Vec::len), Some(0), "and without warnings: {report:#}");

    let story = Story::new(&fleet.name);
    let (report, _watched, _w0) = reconcile_watched(&fleet, &backend, &story, "web").await;
    assert_eq!(report.results.len(), 1, "{:#?}", report.results);
    (report.results[0].result.clone(), story.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_1_seed_canary_with_max_error_rate_0_05_is_promoted_at_2_percent_errors() {
    let (result, story) = canary_at_error_rate("seedrate2", "0.02").await;
    assert_eq!(result, Ending::Converged, "2 % errors is under 5 %: promoted\n{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_1_seed_canary_with_max_error_rate_0_05_is_rolled_back_at_10_percent_errors() {
    let (result, story) = canary_at_error_rate("seedrate10", "0.1").await;
    match result {
        Ending::RolledBack { reason } => {
            assert!(reason.contains("error rate") && reason.contains("> 5 %"), "the reason names the rate: {reason}")
        }
        other => panic!("10 % errors is over 5 %: must be rolled back, got {other:?}\n{story}"),
    }
}
