//! The plan is the whole decision: `plugsync plan` shows every gate the daemon obeys (a deny
//! window open now, a rollout that failed at the spec Git still asks for, a prune over the
//! limit) with its reason and time, and `reconcile --once` obeys the same plan on the real
//! Docker engine.
//!
//! Needs a Docker engine; fails loudly (never skips) without one.

use plugsync_test_support::docker as common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn versions(containers: &[bollard::models::ContainerSummary], plugin: &str) -> BTreeSet<String> {
    containers
        .iter()
        .filter_map(|c| c.labels.as_ref())
        .filter(|l| l.get("plugsync.plugin").map(String::as_str) == Some(plugin))
        .filter_map(|l| l.get("plugsync.version").cloned())
        .collect()
}

/// Records on the fleet repository's status branch that `plugin`'s rollout to `spec_hash` failed.
fn record_failed_rollout(dir: &Path, plugin: &str, spec_hash: &str) {
    git(dir, &["checkout", "-q", "--orphan", "plugsync/status"]);
    git(dir, &["rm", "-rfq", "."]);
    let status = format!(
        "plugin: {plugin}\nstate: FAILED\ndesiredVersion: {V2}\nfailed:\n  revision: 0123456789abcdef0123\n  \
         version: {V2}\n  specHash: {spec_hash}\n  reason: error rate 10 % > 5 %\n  at: 2026-12-04T11:00:00Z\n"
    );
    std::fs::create_dir_all(dir.join("status/plugins")).expect("mkdir");
    std::fs::write(dir.join(format!("status/plugins/{plugin}.yaml")), status).expect("write status");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", &format!("{plugin}: FAILED")]);
    git(dir, &["checkout", "-q", "-f", "main"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_window_failed_and_prune_gates_and_reconcile_once_obeys_them() {
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("gates").await;
    let base = format!(
        "fleet: {}\nbackend:\n  type: docker\n  network: {}\nmaxPruneFraction: 0.25\n",
        fleet.name, fleet.network
    );
    fleet.write("plugsync.yaml", &base);
    for id in ["keep", "failing", "gone1", "gone2"] {
        fleet.plugin(&PluginDef::new(id, V1));
    }
    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let before = list_fleet_containers(&docker, &fleet.name).await;

    // The next revision: a new plugin inside a deny window, `failing` back at the spec that
    // failed, two of four plugins removed (over maxPruneFraction 25 %).
    fleet.write(
        "plugsync.yaml",
        &format!(
            "{base}windows:\n  - kind: deny\n    schedule: \"* * * * *\"\n    duration: 2h\n    plugins: [fresh]\n"
        ),
    );
    fleet.plugin(&PluginDef::new("fresh", V1));
    fleet.plugin(&PluginDef::new("failing", V2));
    fleet.remove_plugin("gone1");
    fleet.remove_plugin("gone2");
    let failed_spec = plugsync::plan::spec::combined_hash(&fleet.load().loaded.fleet.plugins["failing"]);
    let dir = fleet.path();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "fresh, failing 1.1.0, gone1 and gone2 removed"]);
    record_failed_rollout(dir, "failing", &failed_spec);

    let out = fleet.cli(&["plan", fleet.path_str(), "--format", "markdown"]);
    assert_eq!(out.status.code(), Some(3), "held changes are pending: {}", describe(&out));
    let markdown = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "**Held**",
        "| ‖ | `fresh` | create | sync window: deny window '* * * * *' for 2h active until ",
        "| ‖ | `failing` | update | version 1.1.0 failed at 0123456 on 2026-12-04T11:00:00Z (error rate 10 % > 5 %)",
        "**Refused** to remove gone1, gone2: this revision would remove 2 of 4 running plugins (50 %), more than maxPruneFraction 25 %",
    ] {
        assert!(markdown.contains(needle), "{needle:?} missing in\n{markdown}");
    }
    assert!(!markdown.contains("| + | `fresh`"), "fresh is held, not planned:\n{markdown}");

    let out = fleet.cli(&["plan", fleet.path_str(), "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json plan");
    let held: BTreeSet<&str> =
        plan["held"].as_array().expect("held").iter().filter_map(|h| h["plugin"].as_str()).collect();
    assert_eq!(held, BTreeSet::from(["fresh", "failing"]), "{plan:#}");
    assert!(plan["changes"].as_array().is_none_or(|c| c.is_empty()), "{plan:#}");

    // reconcile --once executes that plan: nothing created, updated or removed.
    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("held: create fresh: sync window: deny window"), "{}", describe(&out));
    assert!(stdout.contains("held: update failing: version 1.1.0 failed"), "{}", describe(&out));
    let after = list_fleet_containers(&docker, &fleet.name).await;
    assert!(container_ids(&after, "fresh").is_empty(), "fresh was created inside the deny window: {after:#?}");
    for id in ["keep", "failing", "gone1", "gone2"] {
        assert_eq!(container_ids(&after, id), container_ids(&before, id), "{id} was touched: {}", describe(&out));
    }

    // Asking for a retry lifts the failed hold (and only that one).
    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--retry", "failing"]);
    assert_eq!(out.status.code(), Some(1), "the refused prune still fails the pass: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("failing: converged"), "{}", describe(&out));
    let after = list_fleet_containers(&docker, &fleet.name).await;
    assert_eq!(versions(&after, "failing"), BTreeSet::from([V2.to_string()]), "{}", describe(&out));
    assert!(container_ids(&after, "fresh").is_empty(), "the window still holds fresh: {}", describe(&out));
    assert_eq!(container_ids(&after, "gone1"), container_ids(&before, "gone1"), "the prune is still refused");
}
