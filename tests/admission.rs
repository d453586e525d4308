//! The admission policy through the binary: `validate --admission` is the pull-request check,
//! `plan`/`reconcile --once --admission` on the real Docker engine leave a refused plugin
//! exactly as it runs while the rest of the fleet proceeds.
//!
//! The Docker test needs an engine; it fails loudly (never skips) without one.

use plugsync_test_support::docker as common;

use common::*;
use std::collections::BTreeSet;

fn write(dir: &std::path::Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A fleet directory (no engine needed) with `ok` inside the rules and `big` outside them.
fn pr_fleet() -> (tempfile::TempDir, tempfile::TempDir) {
    let fleet = tempfile::tempdir().unwrap();
    write(fleet.path(), "plugsync.yaml", "fleet: pr-check\n");
    write(
        fleet.path(),
        "plugins/ok/plugin.yaml",
        "id: ok\nversion: 1.0.0\nruntime: {image: registry.example.com/plugins/ok:1, resources: {cpu: 500m, memory: 64Mi}}\n",
    );
    write(
        fleet.path(),
        "plugins/big/plugin.yaml",
        "id: big\nversion: 1.0.0\nreplicas: 8\nruntime: {image: nginx:1.27, resources: {cpu: 500m, memory: 64Mi}}\n",
    );
    // The policy lives outside the fleet repo.
    let policy = tempfile::tempdir().unwrap();
    write(policy.path(), "admission.yaml", "allowedImagePrefixes: [registry.example.com/plugins/]\nmaxReplicas: 4\n");
    (fleet, policy)
}

#[test]
fn validate_with_admission_shows_the_verdict_in_every_format_and_exits_1() {
    let (fleet, policy) = pr_fleet();
    let dir = fleet.path().to_str().unwrap();
    let file = policy.path().join("admission.yaml");
    let file = file.to_str().unwrap();

    let out = plugsync_cli(&["validate", dir]);
    assert_eq!(out.status.code(), Some(0), "without a policy the fleet is valid: {}", describe(&out));

    for format in ["text", "json", "markdown"] {
        let out = plugsync_cli(&["validate", dir, "--admission", file, "--format", format]);
        assert_eq!(out.status.code(), Some(1), "{format}: {}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        for needle in
            ["big", "allowedImagePrefixes", "maxReplicas", "plugins/big/plugin.yaml", "docker.io/library/nginx"]
        {
            assert!(stdout.contains(needle), "{format}: {needle:?} missing in\n{stdout}");
        }
        assert!(!stdout.contains("plugin ok refused"), "{format}: ok is inside the rules\n{stdout}");
    }
    // The refusal points at the line of the field in the manifest.
    let out = plugsync_cli(&["validate", dir, "--admission", file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("plugins/big/plugin.yaml:3: plugin big refused by admission rule maxReplicas"), "{stdout}");
    assert!(
        stdout.contains("plugins/big/plugin.yaml:4: plugin big refused by admission rule allowedImagePrefixes"),
        "{stdout}"
    );
    let out = plugsync_cli(&["validate", dir, "--admission", file, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(json["valid"], false);
    let rules: BTreeSet<&str> =
        json["admission"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, BTreeSet::from(["allowedImagePrefixes", "maxReplicas"]));
    assert!(json["admission"].as_array().unwrap().iter().all(|r| r["plugin"] == "big"), "{json:#}");

    // Flags override the file rule by rule: a wider prefix list and more replicas admit big.
    let out = plugsync_cli(&[
        "validate",
        dir,
        "--admission",
        file,
        "--allow-image-prefix",
        "registry.example.com/plugins/",
        "--allow-image-prefix",
        "nginx",
        "--max-replicas",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn a_broken_admission_policy_file_is_a_clear_error_naming_file_line_and_field() {
    let (fleet, policy) = pr_fleet();
    let file = policy.path().join("admission.yaml");
    std::fs::write(&file, "maxReplicas: 4\nmaxMemory: plenty\n").unwrap();
    let out = plugsync_cli(&["validate", fleet.path().to_str().unwrap(), "--admission", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let location = format!("{}:2", file.display());
    for needle in [location.as_str(), "maxMemory", "\"plenty\"", "expected"] {
        assert!(stderr.contains(needle), "{needle:?} missing in\n{stderr}");
    }
}

/// Two plugins, one breaking `maxReplicas`: the other is created, the refused one is not; once
/// it runs, a change that breaks the rule leaves it exactly as it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_once_with_admission_creates_the_admitted_plugin_and_leaves_the_refused_one() {
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("admit").await;
    let policy = tempfile::tempdir().unwrap();
    let file = policy.path().join("admission.yaml");
    std::fs::write(&file, "maxReplicas: 2\nmaxMemory: 128Mi\n").unwrap();
    let file = file.to_str().unwrap();
    fleet.plugin(&PluginDef::new("small", V1));
    fleet.plugin(&PluginDef::new("wide", V1).replicas(3));

    let out = fleet.cli(&["plan", fleet.path_str(), "--admission", file]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("create small") && stdout.contains("maxReplicas"), "{stdout}");

    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--admission", file]);
    assert_eq!(out.status.code(), Some(1), "a refusal fails the pass: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("plugin wide refused by admission rule maxReplicas"), "{}", describe(&out));
    assert!(stdout.contains("found 3, allowed at most 2"), "{}", describe(&out));
    let containers = list_fleet_containers(&docker, &fleet.name).await;
    assert_eq!(container_ids(&containers, "small").len(), 1, "small is created: {containers:#?}");
    assert!(container_ids(&containers, "wide").is_empty(), "wide is not created: {containers:#?}");

    // Within the rules, wide runs; a change past them is not applied and nothing is removed.
    fleet.plugin(&PluginDef::new("wide", V1).replicas(2));
    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--admission", file]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let before = container_ids(&list_fleet_containers(&docker, &fleet.name).await, "wide");
    assert_eq!(before.len(), 2);

    fleet.plugin(&PluginDef::new("wide", V2).replicas(2).memory("1Gi"));
    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--admission", file, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["plan"]["admission"][0]["rule"], "maxMemory", "{report:#}");
    assert_eq!(report["plan"]["admission"][0]["plugin"], "wide", "{report:#}");
    let after = container_ids(&list_fleet_containers(&docker, &fleet.name).await, "wide");
    assert_eq!(after, before, "the refused plugin is left exactly as it runs");
}

use plugsync_test_support::daemon as common_daemon;

/// The daemon takes the policy from its own flags: the refused plugin is never created, the
/// other one converges, and status and log name the rule.
#[test]
fn the_daemon_refuses_by_its_own_flags_and_the_rest_of_the_fleet_proceeds() {
    use common_daemon::*;
    let (fleet, network) = names("admit");
    let repo = Repo::new();
    repo.write("plugsync.yaml", &fleet_yaml(&fleet, &network));
    repo.write(&plugin_path("small"), &plugin_yaml("small", V1, &[], ""));
    repo.write(&plugin_path("wide"), &plugin_yaml("wide", V1, &[], "").replace("replicas: 1", "replicas: 3"));
    repo.commit_push("small and wide");
    let daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s").arg("--max-replicas").arg("2"));
    wait_converged(&repo, &daemon, "small", V1, std::time::Duration::from_secs(60));
    wait_for(
        "the refusal in status/fleet.yaml",
        std::time::Duration::from_secs(20),
        || repo.status_text("status/fleet.yaml").is_some_and(|t| t.contains("refused by admission rule maxReplicas")),
        || format!("{}\n{}", repo.status_text("status/fleet.yaml").unwrap_or_default(), daemon.log_tail()),
    );
    assert!(containers(&fleet).iter().all(|c| c.plugin != "wide"), "wide is not created: {:#?}", containers(&fleet));
    assert!(daemon.log().contains("plugin wide refused by admission rule maxReplicas"), "{}", daemon.log_tail());
}
