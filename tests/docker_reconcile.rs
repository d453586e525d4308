//! Reconcile against the real Docker engine: creation with the declared limits, idempotence,
//! pruning and its guards, ownership by labels, an unreachable engine.
//!
//! Needs a Docker engine; fails loudly (never skips) without one. Every test works on a fleet
//! and network of its own (`t-<test>-<pid>`, `ps-<test>-<pid>`) and removes them on exit,
//! even when it fails.

use plugsync_test_support::docker as common;

use common::*;
use plugsync::backend::docker::DockerBackend;
use plugsync::plan::{ChangeKind, DesiredHealth};
use plugsync::reconcile::Ending;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn ids(instances: &[plugsync::plan::Instance]) -> BTreeSet<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}

fn ids_of(instances: &[plugsync::plan::Instance], plugin: &str) -> BTreeSet<String> {
    instances.iter().filter(|i| i.plugin == plugin).map(|i| i.id.clone()).collect()
}

/// 1. Three plugins, created with their declared limits, env, config, labels, aliases and
/// replica counts, dependencies first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_fleet_with_declared_limits_labels_aliases_in_dependency_order() {
    let t0 = Instant::now();
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("create").await;
    // Ids chosen so that id order (auth < billing < crm) differs from dependency order.
    let crm = PluginDef::new("crm", V1).replicas(2).reservations("100m", "32Mi");
    let billing =
        PluginDef::new("billing", V1).depends_on("crm").config("{greeting: hello, limits: {n: 3}}").env("EXTRA", "x y");
    let auth = PluginDef::new("auth", V1).depends_on("billing").memory("32Mi");
    for p in [&crm, &billing, &auth] {
        fleet.plugin(p);
    }
    let backend = fleet.backend().await;

    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "first reconcile failed: {:#?}", report.results);
    let order: Vec<(&str, ChangeKind)> = report.results.iter().map(|r| (r.plugin.as_str(), r.kind)).collect();
    assert_eq!(
        order,
        [("crm", ChangeKind::Create), ("billing", ChangeKind::Create), ("auth", ChangeKind::Create)],
        "report order must follow dependsOn"
    );
    // The dependent was only started after its dependency converged.
    let pos = |p: &str| {
        fleet.narration.position(p).unwrap_or_else(|| panic!("no narration {p:?}: {:#?}", fleet.narration.lines()))
    };
    assert!(pos("crm: converged") < pos("billing: create"), "{:#?}", fleet.narration.lines());
    assert!(pos("billing: converged") < pos("auth: create"), "{:#?}", fleet.narration.lines());

    let containers = inspect_fleet(&docker, &fleet.name).await;
    let mut by_plugin: BTreeMap<String, Vec<&bollard::models::ContainerInspectResponse>> = BTreeMap::new();
    for c in &containers {
        let labels = c.config.as_ref().and_then(|c| c.labels.as_ref()).expect("labels");
        by_plugin.entry(labels["plugsync.plugin"].clone()).or_default().push(c);
    }
    let counts: BTreeMap<&str, usize> = by_plugin.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
    assert_eq!(counts, BTreeMap::from([("auth", 1), ("billing", 1), ("crm", 2)]), "replica counts");

    for (plugin, list) in &by_plugin {
        for c in list {
            let name = c.name.as_deref().unwrap_or_default().trim_start_matches('/');
            let host = c.host_config.as_ref().expect("HostConfig");
            let config = c.config.as_ref().expect("Config");
            let labels = config.labels.as_ref().expect("labels");
            let env: BTreeSet<&str> = config.env.as_deref().unwrap_or_default().iter().map(String::as_str).collect();
            let ctx = format!("container {name}");

            // Name: <fleet>-<plugin>-<slot>-<hex>.
            let prefix = format!("{}-{plugin}-stable-", fleet.name);
            let suffix =
                name.strip_prefix(&prefix).unwrap_or_else(|| panic!("{ctx}: name does not start with {prefix}"));
            assert!(
                !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_hexdigit()),
                "{ctx}: suffix {suffix:?} is not hex"
            );

            // Limits and reservations.
            assert_eq!(host.nano_cpus, Some(250_000_000), "{ctx}: NanoCpus for cpu 250m");
            let memory = if plugin == "auth" { 32 * 1024 * 1024 } else { 64 * 1024 * 1024 };
            assert_eq!(host.memory, Some(memory), "{ctx}: Memory");
            if plugin == "crm" {
                assert_eq!(host.memory_reservation, Some(32 * 1024 * 1024), "{ctx}: MemoryReservation for 32Mi");
                assert_eq!(host.cpu_shares, Some(102), "{ctx}: CpuShares for a 100m reservation (1024 × 0.1)");
            } else {
                assert!(
                    matches!(host.memory_reservation, None | Some(0)),
                    "{ctx}: no MemoryReservation declared, got {:?}",
                    host.memory_reservation
                );
                assert!(
                    matches!(host.cpu_shares, None | Some(0)),
                    "{ctx}: no cpu reservation declared, got {:?}",
                    host.cpu_shares
                );
            }
            let restart = host.restart_policy.as_ref().and_then(|r| r.name.as_ref()).map(|n| n.to_string());
            assert_eq!(restart.as_deref(), Some("unless-stopped"), "{ctx}: restart policy");
            assert_eq!(host.network_mode.as_deref(), Some(fleet.network.as_str()), "{ctx}: network mode");

            // Env: version, plain env, config as JSON.
            assert!(env.contains(format!("ECHO_VERSION={V1}").as_str()), "{ctx}: env {env:?}");
            if plugin == "billing" {
                assert!(env.contains("EXTRA=x y"), "{ctx}: env {env:?}");
                let raw = env
                    .iter()
                    .find_map(|e| e.strip_prefix("PLUGIN_CONFIG="))
                    .unwrap_or_else(|| panic!("{ctx}: no PLUGIN_CONFIG in {env:?}"));
                let value: serde_json::Value = serde_json::from_str(raw)
                    .unwrap_or_else(|e| panic!("{ctx}: PLUGIN_CONFIG is not JSON ({e}): {raw}"));
                assert_eq!(value, serde_json::json!({"greeting": "hello", "limits": {"n": 3}}), "{ctx}: PLUGIN_CONFIG");
            } else {
                assert!(
                    !env.iter().any(|e| e.starts_with("PLUGIN_CONFIG=")),
                    "{ctx}: unexpected PLUGIN_CONFIG in {env:?}"
                );
            }

            // Labels.
            assert_eq!(labels["plugsync.fleet"], fleet.name, "{ctx}");
            assert_eq!(labels["plugsync.plugin"], *plugin, "{ctx}");
            assert_eq!(labels["plugsync.version"], V1, "{ctx}");
            assert_eq!(labels["plugsync.slot"], "stable", "{ctx}");
            assert_eq!(
                labels["plugsync.revision"], "worktree",
                "{ctx}: a fleet dir outside Git is at revision `worktree`"
            );
            let hash = &labels["plugsync.spec-hash"];
            assert!(hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{ctx}: spec-hash {hash:?}");
            let spec: serde_json::Value = serde_json::from_str(&labels["plugsync.spec"])
                .unwrap_or_else(|e| panic!("{ctx}: plugsync.spec is not JSON: {e}"));
            assert_eq!(spec["plugin"], *plugin, "{ctx}: plugsync.spec {spec}");
            assert_eq!(spec["version"], V1, "{ctx}: plugsync.spec {spec}");
            assert_eq!(spec["image"], format!("plugsync/echo-plugin:{V1}"), "{ctx}: plugsync.spec {spec}");

            // Running and serving: the plugin id is an alias on the fleet network.
            let state = c.state.as_ref().expect("state");
            assert_eq!(state.running, Some(true), "{ctx}: not running: {state:?}");
            let networks = c.network_settings.as_ref().and_then(|n| n.networks.as_ref()).expect("networks");
            assert_eq!(
                networks.keys().collect::<Vec<_>>(),
                [&fleet.network],
                "{ctx}: attached to exactly the fleet network"
            );
            let endpoint = &networks[&fleet.network];
            let aliases = endpoint.aliases.clone().unwrap_or_default();
            assert!(aliases.iter().any(|a| a == plugin), "{ctx}: aliases {aliases:?} lack {plugin}");
        }
    }
    // All crm containers exist before billing's, billing's before auth's.
    let latest =
        |p: &str| by_plugin[p].iter().map(|c| created_key(c.created.as_deref().unwrap_or_default())).max().unwrap();
    let earliest =
        |p: &str| by_plugin[p].iter().map(|c| created_key(c.created.as_deref().unwrap_or_default())).min().unwrap();
    assert!(latest("crm") < earliest("billing"), "crm created {:?}, billing {:?}", latest("crm"), earliest("billing"));
    assert!(
        latest("billing") < earliest("auth"),
        "billing created {:?}, auth {:?}",
        latest("billing"),
        earliest("auth")
    );

    // The instances really serve what the manifest says.
    for i in fleet.observe(&backend, None).await {
        assert!(i.serving && i.is_running(), "{i:?}");
        let body = root_json(&i).await;
        assert_eq!(body["version"], V1, "{}: {body}", i.name);
        if i.plugin == "billing" {
            assert_eq!(body["config"], serde_json::json!({"greeting": "hello", "limits": {"n": 3}}), "{body}");
        }
    }
    eprintln!("test took {:?}", t0.elapsed());
}

/// 2. A second pass plans nothing; `plugsync plan` agrees (exit 0); after a manifest change it
/// exits 3 and names the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_reconcile_is_a_no_op_and_plan_cli_reports_changes() {
    let t0 = Instant::now();
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("idem").await;
    let web = PluginDef::new("web", V1).replicas(2);
    let api = PluginDef::new("api", V1);
    fleet.plugin(&web);
    fleet.plugin(&api);
    let backend = fleet.backend().await;
    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "{:#?}", report.results);
    let before = ids(&fleet.observe(&backend, None).await);

    let plan = fleet.plan(&backend, DesiredHealth::Complete).await;
    assert!(plan.no_changes() && plan.refused.is_empty(), "second plan is not empty: {plan:#?}");
    let again = fleet.reconcile(&backend).await;
    assert!(again.results.is_empty() && again.succeeded(), "second reconcile did something: {:#?}", again.results);
    assert_eq!(ids(&fleet.observe(&backend, None).await), before, "a no-op reconcile replaced containers");

    let out = fleet.cli(&["plan", fleet.path_str()]);
    assert_eq!(out.status.code(), Some(0), "plugsync plan on a converged fleet:\n{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no changes"), "{}", describe(&out));

    // Memory 64Mi → 128Mi on web.
    fleet.plugin(&web.clone().memory("128Mi"));
    let out = fleet.cli(&["plan", fleet.path_str(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(3), "plugsync plan with a pending change:\n{}", describe(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan JSON: {e}\n{}", describe(&out)));
    assert_eq!(json["fleet"], fleet.name.as_str(), "{json:#}");
    let changes = json["changes"].as_array().expect("changes array");
    assert_eq!(changes.len(), 1, "only web changed: {json:#}");
    assert_eq!(changes[0]["plugin"], "web", "{json:#}");
    assert_eq!(changes[0]["kind"], "update", "{json:#}");
    let reasons: Vec<&str> =
        changes[0]["reasons"].as_array().expect("reasons").iter().filter_map(|r| r.as_str()).collect();
    assert!(reasons.contains(&"memory 64Mi → 128Mi"), "reasons {reasons:?}");
    // The plan changed nothing.
    assert_eq!(ids(&fleet.observe(&backend, None).await), before, "plugsync plan must not touch the engine");
    eprintln!("test took {:?}", t0.elapsed());
}

/// 3. A plugin deleted from the fleet is pruned; the others keep their containers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_plugin_is_pruned_and_others_untouched() {
    let t0 = Instant::now();
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("prune").await;
    for p in
        [PluginDef::new("alpha", V1), PluginDef::new("beta", V1).replicas(2), PluginDef::new("gamma", V1).replicas(2)]
    {
        fleet.plugin(&p);
    }
    let backend = fleet.backend().await;
    assert!(fleet.reconcile(&backend).await.succeeded());
    let before = fleet.observe(&backend, None).await;
    assert_eq!(before.len(), 5);

    fleet.remove_plugin("gamma");
    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "{report:#?}");
    let results: Vec<(&str, ChangeKind, &Ending)> =
        report.results.iter().map(|r| (r.plugin.as_str(), r.kind, &r.result)).collect();
    assert_eq!(results, [("gamma", ChangeKind::Remove, &Ending::Converged)]);

    let after = fleet.observe(&backend, None).await;
    assert!(ids_of(&after, "gamma").is_empty(), "gamma still runs: {after:#?}");
    // No gamma container in any state either.
    let left: Vec<String> = inspect_fleet(&docker, &fleet.name).await.into_iter().filter_map(|c| c.name).collect();
    assert!(!left.iter().any(|n| n.contains("-gamma-")), "{left:?}");
    for p in ["alpha", "beta"] {
        assert_eq!(ids_of(&after, p), ids_of(&before, p), "{p} was touched by the prune");
    }
    assert!(after.iter().all(|i| i.serving && i.is_running()));
    assert!(fleet.plan(&backend, DesiredHealth::Complete).await.no_changes());
    eprintln!("test took {:?}", t0.elapsed());
}

/// 4. Removing more than maxPruneFraction of the fleet is refused; a fleet with validation
/// errors never prunes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_deletion_is_refused_and_invalid_fleet_never_prunes() {
    let t0 = Instant::now();
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("mass").await;
    let defs: Vec<PluginDef> = ["p1", "p2", "p3", "p4"].iter().map(|id| PluginDef::new(id, V1)).collect();
    for p in &defs {
        fleet.plugin(p);
    }
    let backend = fleet.backend().await;
    assert!(fleet.reconcile(&backend).await.succeeded());
    let before = ids(&fleet.observe(&backend, None).await);
    assert_eq!(before.len(), 4);

    // Delete three of four (75 % > 50 %).
    for id in ["p2", "p3", "p4"] {
        fleet.remove_plugin(id);
    }
    let plan = fleet.plan(&backend, DesiredHealth::Complete).await;
    assert!(!plan.refused.is_empty(), "removing 3 of 4 must be refused: {plan:#?}");
    assert!(plan.changes.iter().all(|c| c.kind != ChangeKind::Remove), "{plan:#?}");
    let refusal = &plan.refused[0];
    assert_eq!(refusal.plugins.iter().map(String::as_str).collect::<BTreeSet<_>>(), BTreeSet::from(["p2", "p3", "p4"]));
    assert!(refusal.reason.contains("maxPruneFraction"), "reason: {}", refusal.reason);
    let report = fleet.reconcile(&backend).await;
    assert!(!report.succeeded(), "a refused prune is not a success");
    assert!(report.results.iter().all(|r| r.kind != ChangeKind::Remove), "{:#?}", report.results);
    assert_eq!(ids(&fleet.observe(&backend, None).await), before, "nothing may be removed");
    // The CLI agrees: exit 3 (something pending), text names the refusal.
    let out = fleet.cli(&["plan", fleet.path_str()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("maxPruneFraction"), "{}", describe(&out));

    // Put them back, then: p4 deleted, p3's manifest broken (a validation error).
    for p in &defs[1..] {
        fleet.plugin(p);
    }
    assert!(fleet.plan(&backend, DesiredHealth::Complete).await.no_changes());
    fleet.remove_plugin("p4");
    fleet.write("plugins/p3/plugin.yaml", &defs[2].yaml().replace("memory: 64Mi", "memory: lots"));
    let local = fleet.load_any();
    assert!(!local.loaded.is_valid(), "the broken manifest must be a validation error");
    let complete = fleet.plan(&backend, DesiredHealth::Complete).await;
    let would_remove: BTreeSet<&str> =
        complete.changes.iter().filter(|c| c.kind == ChangeKind::Remove).map(|c| c.plugin.as_str()).collect();
    assert!(would_remove.contains("p4"), "were the fleet complete, p4 (1 of 4) would be pruned: {complete:#?}");
    let with_errors = fleet.plan(&backend, DesiredHealth::HasErrors).await;
    assert!(
        with_errors.changes.iter().all(|c| c.kind != ChangeKind::Remove),
        "HasErrors must never prune: {with_errors:#?}"
    );
    assert!(!with_errors.refused.is_empty(), "{with_errors:#?}");
    assert!(with_errors.refused[0].reason.contains("validation errors"), "{}", with_errors.refused[0].reason);
    let report = fleet.reconcile_loaded(&backend, &local, DesiredHealth::HasErrors).await;
    assert!(report.results.iter().all(|r| r.kind != ChangeKind::Remove), "{:#?}", report.results);
    assert_eq!(ids(&fleet.observe(&backend, None).await), before, "a fleet with errors removed something");
    // And the CLI: reconcile --once on the invalid fleet exits non-zero and removes nothing.
    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once"]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        ids(&fleet.observe(&backend, None).await),
        before,
        "reconcile --once on a fleet with errors removed something\n{}",
        describe(&out)
    );
    eprintln!("test took {:?}", t0.elapsed());
}

/// 5. A container with our naming pattern and plugsync labels of another fleet is neither
/// observed, updated nor pruned by our fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_fleets_container_is_untouched() {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions};
    use std::collections::HashMap;

    let t0 = Instant::now();
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("owner").await;
    let alpha = PluginDef::new("alpha", V1);
    let beta = PluginDef::new("beta", V1);
    fleet.plugin(&alpha);
    fleet.plugin(&beta);
    let backend = fleet.backend().await;
    assert!(fleet.reconcile(&backend).await.succeeded());

    // Same name pattern as ours, on our network, labelled as alpha of ANOTHER fleet.
    let other = format!("{}-other", fleet.name);
    let name = format!("{}-alpha-stable-000000", fleet.name);
    let labels = HashMap::from([
        ("plugsync.fleet".to_string(), other.clone()),
        ("plugsync.plugin".to_string(), "alpha".to_string()),
        ("plugsync.version".to_string(), "0.9.0".to_string()),
        ("plugsync.slot".to_string(), "stable".to_string()),
        ("plugsync.spec-hash".to_string(), "0000000000000000".to_string()),
    ]);
    let body = ContainerCreateBody {
        image: Some(format!("plugsync/echo-plugin:{V1}")),
        env: Some(vec!["ECHO_VERSION=0.9.0".into()]),
        labels: Some(labels.clone()),
        host_config: Some(HostConfig { network_mode: Some(fleet.network.clone()), ..Default::default() }),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
        .await
        .expect("create the foreign container");
    fleet.cleanup.track_container(&created.id);
    docker.start_container(&created.id, None).await.expect("start the foreign container");

    // Not ours: invisible to observe and to the plan.
    let observed = fleet.observe(&backend, None).await;
    assert!(!observed.iter().any(|i| i.id == created.id), "observe sees another fleet's container");
    assert!(fleet.plan(&backend, DesiredHealth::Complete).await.no_changes());

    // Update beta and prune alpha (1 of 2 = 50 %, allowed).
    fleet.remove_plugin("alpha");
    fleet.plugin(&beta.clone().memory("96Mi"));
    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "{:#?}", report.results);
    let kinds: BTreeMap<&str, ChangeKind> = report.results.iter().map(|r| (r.plugin.as_str(), r.kind)).collect();
    assert_eq!(kinds, BTreeMap::from([("alpha", ChangeKind::Remove), ("beta", ChangeKind::Update)]));
    let after = fleet.observe(&backend, None).await;
    assert!(ids_of(&after, "alpha").is_empty(), "our alpha must be pruned: {after:#?}");

    let foreign = docker
        .inspect_container(&created.id, None::<InspectContainerOptions>)
        .await
        .expect("the other fleet's container must still exist");
    assert_eq!(foreign.state.as_ref().and_then(|s| s.running), Some(true), "the other fleet's container was stopped");
    assert_eq!(foreign.name.as_deref(), Some(format!("/{name}").as_str()));
    let foreign_labels = foreign.config.and_then(|c| c.labels).unwrap_or_default();
    for (k, v) in &labels {
        assert_eq!(foreign_labels.get(k), Some(v), "label {k} changed");
    }
    assert_eq!(foreign.restart_count, Some(0));
    assert!(
        foreign.network_settings.and_then(|n| n.networks).is_some_and(|n| n.contains_key(&fleet.network)),
        "the other fleet's container was disconnected from the network"
    );
    eprintln!("test took {:?}", t0.elapsed());
}

/// 6. An engine that is not there: a clear error naming the endpoint, no panic, no hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_engine_is_a_clear_error() {
    let endpoint = "unix:///nonexistent/docker.sock";
    let result =
        tokio::time::timeout(Duration::from_secs(20), DockerBackend::connect(Some(endpoint), "ps-unreachable".into()))
            .await
            .expect("connect to a missing socket must fail fast, not hang");
    let message = match result {
        Ok(_) => panic!("connecting to {endpoint} succeeded"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("/nonexistent/docker.sock"), "error does not name the endpoint: {message}");

    // The CLI, on a valid fleet dir.
    let fleet_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        fleet_dir.path().join("plugsync.yaml"),
        "fleet: t-unreachable\nbackend:\n  type: docker\n  network: ps-unreachable\n",
    )
    .unwrap();
    std::fs::create_dir_all(fleet_dir.path().join("plugins/web")).unwrap();
    std::fs::write(fleet_dir.path().join("plugins/web/plugin.yaml"), PluginDef::new("web", V1).yaml()).unwrap();
    let t = Instant::now();
    let out = plugsync_cli(&["plan", fleet_dir.path().to_str().unwrap(), "--docker-host", "unix:///nonexistent.sock"]);
    assert!(t.elapsed() < Duration::from_secs(20), "plugsync plan hung for {:?}", t.elapsed());
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(out.status.code().is_some(), "killed by a signal (panic = abort?): {}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent.sock"), "stderr does not name the socket:\n{}", describe(&out));
    assert!(!stderr.contains("panicked"), "{}", describe(&out));
    assert!(stderr.contains("cannot reach"), "stderr is not a clear message:\n{}", describe(&out));
}
