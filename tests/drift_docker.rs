//! Drift detection against the real Docker engine: a fleet plugsync just applied has no
//! findings (100 observations in a row), every drift kind provoked for real with the docker
//! CLI or API and reported with its kind, plugin, instance and a meaningful expected/found,
//! a plain reconcile healing it again, and no drift for intentional states (suspended, a Git
//! change not applied yet, a plugin the caller names as intentional).
//!
//! Needs a Docker engine; fails loudly (never skips) without one. Every test works on a fleet
//! and network of its own (`t-<tag>-<pid>`, `ps-<tag>-<pid>`) and removes them on exit, even
//! when it fails.
//!
//! Red until src/ is fixed (each failure message says what is wrong): a reconcile does not
//! heal limits-changed (`docker update`) nor alias-lost out of traffic (the plan ignores the
//! runtime view and `serving`); the extra instance drift names is not the one a reconcile
//! removes (opposite name orders in `drift::surplus` and `strategy::converge_into`), so a
//! hand-started copy with another image survives and plugsync's own instance is removed;
//! the containers of a fleet named `<fleet>-…` are reported as foreign to `<fleet>`.

use plugsync_test_support::docker as common;

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions};
use bollard::Docker;
use common::*;
use plugsync::backend::docker::DockerBackend;
use plugsync::plan::drift::{DriftKind, Finding};
use plugsync::plan::{ChangeKind, Instance, RunState};
use plugsync::reconcile::{Reconciler, Report};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers

/// `Reconciler::detect(None, intentional)` on the fleet directory as it is now.
async fn detect_with(
    fleet: &TestFleet,
    backend: &DockerBackend,
    intentional: &BTreeMap<String, String>,
) -> Vec<Finding> {
    let local = fleet.load();
    let quiet = |_: &str| {};
    Reconciler::new(backend, &local.loaded.fleet, &local.revision, &quiet)
        .detect(None, intentional)
        .await
        .expect("detect")
}

async fn detect(fleet: &TestFleet, backend: &DockerBackend) -> Vec<Finding> {
    detect_with(fleet, backend, &BTreeMap::new()).await
}

fn show(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "(none)".into();
    }
    findings.iter().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n")
}

/// The only finding; panics with all of them otherwise.
fn only(findings: &[Finding], what: &str) -> Finding {
    assert_eq!(findings.len(), 1, "{what}: expected exactly one finding, got:\n{}", show(findings));
    eprintln!("{what}: {}", findings[0]);
    findings[0].clone()
}

/// Builds the images, writes `plugins`, reconciles once and checks the fleet has no drift.
async fn applied(tag: &str, plugins: &[PluginDef]) -> (Docker, TestFleet, DockerBackend) {
    let docker = docker().await;
    ensure_echo_images(&docker).await;
    let fleet = TestFleet::new(tag).await;
    for p in plugins {
        fleet.plugin(p);
    }
    let backend = fleet.backend().await;
    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "[{}] first reconcile failed: {:#?}", fleet.name, report.results);
    let findings = detect(&fleet, &backend).await;
    assert!(findings.is_empty(), "[{}] a fleet just applied drifts:\n{}", fleet.name, show(&findings));
    (docker, fleet, backend)
}

/// The plugin's instances, in name order.
async fn instances(fleet: &TestFleet, backend: &DockerBackend, plugin: &str) -> Vec<Instance> {
    fleet.observe(backend, Some(plugin)).await
}

async fn one_instance(fleet: &TestFleet, backend: &DockerBackend, plugin: &str) -> Instance {
    let list = instances(fleet, backend, plugin).await;
    assert_eq!(list.len(), 1, "expected one instance of {plugin}: {list:#?}");
    list.into_iter().next().unwrap()
}

/// `docker ARGS`; panics with stderr unless it succeeds.
async fn docker_cli(args: &[&str]) -> String {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run `docker {}`: {e} (these tests need the docker CLI)", args.join(" ")));
    assert!(output.status.success(), "`docker {}` failed: {}", args.join(" "), describe(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

async fn inspect(docker: &Docker, id: &str) -> bollard::models::ContainerInspectResponse {
    docker.inspect_container(id, None::<InspectContainerOptions>).await.expect("inspect container")
}

/// A plain reconcile, then detect: must be back to no drift. Returns the report.
async fn assert_heals(fleet: &TestFleet, backend: &DockerBackend, what: &str) -> Report {
    let t = Instant::now();
    let report = fleet.reconcile(backend).await;
    let findings = detect(fleet, backend).await;
    assert!(
        report.succeeded() && findings.is_empty(),
        "[{}] {what}: a plain reconcile did not heal the drift.\nplan: {:#?}\nresults: {:#?}\ndrift after the reconcile:\n{}",
        fleet.name,
        report.plan.changes,
        report.results,
        show(&findings)
    );
    eprintln!("[{}] {what}: healed by one reconcile in {:?}", fleet.name, t.elapsed());
    report
}

/// Polls detect until `pred` holds for the findings (or panics after `within`).
async fn detect_until(
    fleet: &TestFleet,
    backend: &DockerBackend,
    within: Duration,
    what: &str,
    pred: impl Fn(&[Finding]) -> bool,
) -> Vec<Finding> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let findings = detect(fleet, backend).await;
        if pred(&findings) {
            return findings;
        }
        seen.push(show(&findings));
        if Instant::now() >= deadline {
            seen.dedup();
            panic!("[{}] {what}: not seen within {within:?}; saw:\n{}", fleet.name, seen.join("\n--\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_ready(instance: &Instance) {
    let ip = instance.address.unwrap_or_else(|| panic!("{} has no address", instance.name));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if http_get(ip, "/health/ready").await.is_ok_and(|r| r.status == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{} never became ready", instance.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// How many `oom` events the engine recorded for the container since `since` (unix seconds):
/// the kernel's OOM kills, whatever Docker's `OOMKilled` flag says afterwards.
async fn oom_events(id: &str, since: u64) -> usize {
    let until = (unix_now() + 1).to_string();
    let since = since.saturating_sub(1).to_string();
    let filter = format!("container={id}");
    let out = docker_cli(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &filter,
        "--filter",
        "event=oom",
        "--format",
        "{{.Action}}",
    ])
    .await;
    out.lines().filter(|l| l.trim() == "oom").count()
}

fn web() -> PluginDef {
    PluginDef::new("web", V1)
}

// ---------------------------------------------------------------------------------------------
// 1. No false findings

/// Three plugins (one with 2 replicas, env, config and reservations; one without any limits;
/// one with a decimal memory quantity), applied once, then observed 100 times in a row:
/// never a finding. The CLI agrees (exit 0, "no drift").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_just_applied_shows_no_drift_over_100_observations() {
    let t0 = Instant::now();
    let mut worker = PluginDef::new("worker", V1).env("QUEUE", "jobs");
    worker.cpu = None;
    worker.memory = None;
    let plugins = [
        PluginDef::new("web", V1)
            .replicas(2)
            .env("MODE", "fast")
            .env("GREETING", "hello world")
            .config("{greeting: hello, limits: {n: 3}}")
            .reservations("100m", "32Mi"),
        PluginDef::new("api", V1).memory("100M").depends_on("web"),
        worker,
    ];
    let (_docker, fleet, backend) = applied("drift-none", &plugins).await;
    assert_eq!(fleet.observe(&backend, None).await.len(), 4, "2 + 1 + 1 instances");

    let local = fleet.load();
    let quiet = |_: &str| {};
    let reconciler = Reconciler::new(&backend, &local.loaded.fleet, &local.revision, &quiet);
    let empty = BTreeMap::new();
    let mut times = Vec::with_capacity(100);
    for pass in 0..100 {
        let t = Instant::now();
        let findings = reconciler.detect(None, &empty).await.expect("detect");
        times.push(t.elapsed());
        assert!(findings.is_empty(), "observation {pass}: false findings on a fleet as applied:\n{}", show(&findings));
    }
    // One plugin at a time too.
    for plugin in ["web", "api", "worker"] {
        let findings = reconciler.detect(Some(plugin), &empty).await.expect("detect one plugin");
        assert!(findings.is_empty(), "detect({plugin}): {}", show(&findings));
    }
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "MEASURED drift detect (Docker, 3 plugins, 4 containers, readiness probed): {} passes, mean {:.1} ms, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        times.len(),
        total.as_secs_f64() * 1000.0 / times.len() as f64,
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() * 95 / 100].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
    );

    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--detect-only"]);
    assert_eq!(out.status.code(), Some(0), "detect-only on a fleet as applied: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no drift"), "{}", describe(&out));
    assert!(stdout.contains(&fleet.name), "{}", describe(&out));
    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--detect-only", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("detect-only --json prints JSON");
    assert_eq!(json, serde_json::json!([]), "{}", describe(&out));
    eprintln!("[{}] test took {:?}", fleet.name, t0.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 2. Each kind provoked for real

/// `docker stop`: stopped, with the exit code (the echo plugin exits 0 on SIGTERM). The CLI
/// says so in text and exits 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_stop_is_stopped() {
    let (_docker, fleet, backend) = applied("drift-stop", &[web()]).await;
    let victim = one_instance(&fleet, &backend, "web").await;
    docker_cli(&["stop", "-t", "5", &victim.name]).await;

    let f = only(&detect(&fleet, &backend).await, "after docker stop");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::Stopped, "web", victim.name.as_str()));
    assert_eq!(f.expected, "running");
    assert!(
        f.found == "exited (exit code 0)" || f.found == "exited (exit code 143)",
        "found should say exited with the exit code: {f}"
    );

    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--detect-only"]);
    assert_eq!(out.status.code(), Some(2), "detect-only with drift exits 2: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 drift finding(s)"), "{}", describe(&out));
    assert!(
        stdout.contains(&format!("web/{}: stopped: expected running, found exited", victim.name)),
        "{}",
        describe(&out)
    );

    let report = assert_heals(&fleet, &backend, "docker stop").await;
    assert_eq!(
        report.results.iter().map(|r| (r.plugin.as_str(), r.kind)).collect::<Vec<_>>(),
        [("web", ChangeKind::Repair)]
    );
    let after = one_instance(&fleet, &backend, "web").await;
    assert_ne!(after.id, victim.id, "the stopped container is replaced");
}

/// `docker kill`: stopped with exit code 137 (SIGKILL; Docker does not restart a killed
/// container under unless-stopped). `--detect-only --json`: exit 2, the finding as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_kill_is_stopped_with_137_and_json_exit_2() {
    let (docker, fleet, backend) = applied("drift-kill", &[web()]).await;
    let victim = one_instance(&fleet, &backend, "web").await;
    docker_cli(&["kill", &victim.name]).await;
    let state = inspect(&docker, &victim.id).await.state.expect("state");
    assert_eq!(state.exit_code, Some(137), "{state:?}");

    let f = only(&detect(&fleet, &backend).await, "after docker kill");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::Stopped, "web", victim.name.as_str()));
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("running", "exited (exit code 137)"));

    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--detect-only", "--json"]);
    assert_eq!(out.status.code(), Some(2), "detect-only --json with drift exits 2: {}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("detect-only --json is not JSON ({e}): {}", describe(&out)));
    assert_eq!(
        json,
        serde_json::json!([{
            "kind": "stopped",
            "plugin": "web",
            "instance": victim.name,
            "expected": "running",
            "found": "exited (exit code 137)",
        }]),
        "{}",
        describe(&out)
    );

    assert_heals(&fleet, &backend, "docker kill").await;
}

/// `docker update --memory 128m --memory-swap 128m`: limits-changed, both sides spelled out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_update_memory_is_limits_changed() {
    let (_docker, fleet, backend) = applied("drift-mem", &[web()]).await;
    let victim = one_instance(&fleet, &backend, "web").await;
    docker_cli(&["update", "--memory", "128m", "--memory-swap", "128m", &victim.name]).await;

    let f = only(&detect(&fleet, &backend).await, "after docker update --memory");
    assert_eq!(
        (f.kind, f.plugin.as_str(), f.instance.as_str()),
        (DriftKind::LimitsChanged, "web", victim.name.as_str())
    );
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("memory 64Mi", "memory 128Mi"));

    assert_heals(&fleet, &backend, "docker update --memory").await;
}

/// `docker update --cpus 1`: limits-changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_update_cpus_is_limits_changed() {
    let (_docker, fleet, backend) = applied("drift-cpu", &[web()]).await;
    let victim = one_instance(&fleet, &backend, "web").await;
    docker_cli(&["update", "--cpus", "1", &victim.name]).await;

    let f = only(&detect(&fleet, &backend).await, "after docker update --cpus");
    assert_eq!(
        (f.kind, f.plugin.as_str(), f.instance.as_str()),
        (DriftKind::LimitsChanged, "web", victim.name.as_str())
    );
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("cpu 250m", "cpu 1000m"));

    assert_heals(&fleet, &backend, "docker update --cpus").await;
}

/// Removing one of two replicas: missing, a count (no instance name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_container_is_missing() {
    let (_docker, fleet, backend) = applied("drift-missing", &[web().replicas(2)]).await;
    let before = instances(&fleet, &backend, "web").await;
    assert_eq!(before.len(), 2);
    docker_cli(&["rm", "-f", &before[0].name]).await;

    let f = only(&detect(&fleet, &backend).await, "after docker rm -f");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::Missing, "web", ""));
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("2 instance(s) of 1.0.0 in stable", "1"));

    let report = assert_heals(&fleet, &backend, "docker rm").await;
    assert_eq!(
        report.results.iter().map(|r| (r.plugin.as_str(), r.kind)).collect::<Vec<_>>(),
        [("web", ChangeKind::Scale)]
    );
    assert_eq!(instances(&fleet, &backend, "web").await.len(), 2);
}

/// `docker network disconnect`: a running container on no fleet network lost its alias.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_from_fleet_network_is_alias_lost() {
    let (_docker, fleet, backend) = applied("drift-disc", &[web()]).await;
    let victim = one_instance(&fleet, &backend, "web").await;
    docker_cli(&["network", "disconnect", &fleet.network, &victim.name]).await;

    let f = only(&detect(&fleet, &backend).await, "after docker network disconnect");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::AliasLost, "web", victim.name.as_str()));
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("on the fleet network as web", "on no fleet network"));

    assert_heals(&fleet, &backend, "docker network disconnect").await;
}

/// Disconnected and reconnected without the alias: running, reachable, but out of traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnected_without_alias_is_alias_lost_out_of_traffic() {
    let (_docker, fleet, backend) = applied("drift-noalias", &[web()]).await;
    let victim = one_instance(&fleet, &backend, "web").await;
    docker_cli(&["network", "disconnect", &fleet.network, &victim.name]).await;
    docker_cli(&["network", "connect", &fleet.network, &victim.name]).await;
    let now = one_instance(&fleet, &backend, "web").await;
    assert!(now.is_running() && !now.serving && now.address.is_some(), "{now:#?}");

    let f = only(&detect(&fleet, &backend).await, "after reconnecting without the alias");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::AliasLost, "web", victim.name.as_str()));
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("serving as web", "running but out of traffic"));

    assert_heals(&fleet, &backend, "reconnect without alias").await;
    let after = one_instance(&fleet, &backend, "web").await;
    assert!(after.serving && after.is_running(), "{after:#?}");
}

/// A container without plugsync's labels, named like the fleet's: foreign. plugsync never
/// touches it (a reconcile leaves it running); once removed by hand, no drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_named_like_the_fleets_without_labels_is_foreign_and_untouched() {
    let (docker, fleet, backend) = applied("drift-foreign", &[web()]).await;
    let ours = one_instance(&fleet, &backend, "web").await;
    let name = format!("{}-web-stable-zzzzzz", fleet.name);
    let id = docker_cli(&["run", "-d", "--name", &name, &format!("plugsync/echo-plugin:{V1}")]).await;
    fleet.cleanup.track_container(&id);

    let f = only(&detect(&fleet, &backend).await, "with a foreign container");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::Foreign, "web", name.as_str()));
    assert!(f.found.contains("without plugsync's labels"), "{f}");
    assert!(f.expected.contains("plugsync"), "{f}");

    let report = fleet.reconcile(&backend).await;
    assert!(
        report.plan.no_changes() && report.succeeded(),
        "plugsync must not act on a foreign container: {report:#?}"
    );
    let state = inspect(&docker, &id).await.state.expect("state");
    assert_eq!(state.running, Some(true), "plugsync stopped or removed the foreign container: {state:?}");
    assert_eq!(one_instance(&fleet, &backend, "web").await.id, ours.id, "plugsync's own instance is untouched");
    let still = detect(&fleet, &backend).await;
    assert_eq!(still.iter().map(|f| f.kind).collect::<Vec<_>>(), [DriftKind::Foreign], "{}", show(&still));

    docker_cli(&["rm", "-f", &id]).await;
    let findings = detect(&fleet, &backend).await;
    assert!(findings.is_empty(), "{}", show(&findings));
}

/// Starts a copy of plugsync's container `ours` by hand: same labels, entrypoint, limits,
/// restart policy, network and alias; `image` and `env` as given (None: the same). Named
/// `<fleet>-web-stable-ffffff`, after any name plugsync gives (6 hex digits). Ready on return.
async fn start_copy(
    docker: &Docker,
    fleet: &TestFleet,
    backend: &DockerBackend,
    ours: &Instance,
    image: Option<&str>,
    env: Option<Vec<String>>,
) -> Instance {
    let original = inspect(docker, &ours.id).await;
    let config = original.config.clone().expect("Config");
    let host = original.host_config.clone().expect("HostConfig");
    let name = format!("{}-{}-stable-ffffff", fleet.name, ours.plugin);
    let body = ContainerCreateBody {
        image: image.map(str::to_string).or(config.image.clone()),
        env: env.or(config.env.clone()),
        labels: config.labels.clone(),
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        host_config: Some(HostConfig {
            nano_cpus: host.nano_cpus,
            memory: host.memory,
            memory_reservation: host.memory_reservation,
            cpu_shares: host.cpu_shares,
            restart_policy: host.restart_policy.clone(),
            network_mode: Some(fleet.network.clone()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                fleet.network.clone(),
                EndpointSettings { aliases: Some(vec![ours.plugin.clone()]), ..Default::default() },
            )])),
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    let created = docker.create_container(Some(options), body).await.expect("create the copy");
    docker.start_container(&created.id, None).await.expect("start the copy");
    let copy =
        instances(fleet, backend, &ours.plugin).await.into_iter().find(|i| i.id == created.id).expect("copy observed");
    assert!(copy.serving && copy.spec_hash == ours.spec_hash, "the copy looks like plugsync's own: {copy:#?}");
    wait_ready(&copy).await;
    copy
}

/// A second container with the same labels (copied from plugsync's, same image, env, limits
/// and alias): extra. The finding names the intruder, and a reconcile removes that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_with_copied_labels_is_extra() {
    let (docker, fleet, backend) = applied("drift-extra", &[web()]).await;
    let ours = one_instance(&fleet, &backend, "web").await;
    let copy = start_copy(&docker, &fleet, &backend, &ours, None, None).await;

    let f = only(&detect(&fleet, &backend).await, "with a copied container");
    assert_eq!((f.kind, f.plugin.as_str()), (DriftKind::Extra, "web"));
    assert!(f.instance == copy.name || f.instance == ours.name, "the extra finding names one of the two: {f}");
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("1 instance(s) in stable", "2"));

    let report = assert_heals(&fleet, &backend, "extra container").await;
    assert_eq!(
        report.results.iter().map(|r| (r.plugin.as_str(), r.kind)).collect::<Vec<_>>(),
        [("web", ChangeKind::Scale)]
    );
    let left = one_instance(&fleet, &backend, "web").await;
    assert_ne!(
        left.name, f.instance,
        "drift named {} as the extra instance (of {} and the copy), but the reconcile kept it as {}",
        f.instance, ours.name, left.name
    );
}

/// The same copy but with another image and env (someone `docker run`s 1.1.0 with the 1.0.0
/// labels): image-changed and env-changed on it, besides extra; a reconcile must leave the
/// instance that matches the spec, so no drift is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_labels_with_another_image_and_env_is_image_and_env_changed() {
    let (docker, fleet, backend) = applied("drift-image", &[web()]).await;
    let ours = one_instance(&fleet, &backend, "web").await;
    let image = format!("plugsync/echo-plugin:{V2}");
    let copy =
        start_copy(&docker, &fleet, &backend, &ours, Some(&image), Some(vec![format!("ECHO_VERSION={V2}")])).await;

    let findings = detect(&fleet, &backend).await;
    let got: Vec<(DriftKind, &str, &str)> =
        findings.iter().map(|f| (f.kind, f.plugin.as_str(), f.instance.as_str())).collect();
    assert_eq!(
        got,
        [
            (DriftKind::Extra, "web", copy.name.as_str()),
            (DriftKind::ImageChanged, "web", copy.name.as_str()),
            (DriftKind::EnvChanged, "web", copy.name.as_str()),
        ],
        "{}",
        show(&findings)
    );
    let image_changed = &findings[1];
    assert_eq!(
        (image_changed.expected.as_str(), image_changed.found.as_str()),
        ("docker.io/plugsync/echo-plugin:1.0.0", "docker.io/plugsync/echo-plugin:1.1.0")
    );
    let env_changed = &findings[2];
    assert_eq!(
        (env_changed.expected.as_str(), env_changed.found.as_str()),
        ("ECHO_VERSION=1.0.0", "ECHO_VERSION=1.1.0")
    );

    assert_heals(&fleet, &backend, "copy with another image").await;
    assert_eq!(one_instance(&fleet, &backend, "web").await.id, ours.id, "the reconcile kept the copy");
}

/// Two fleets on one engine, one named like the other plus a suffix (`<fleet>` and
/// `<fleet>-eu`), both applied by plugsync: the other fleet's containers carry plugsync's
/// labels and are no squatters of this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_whose_name_extends_this_ones_is_not_foreign() {
    let (_docker, fleet, backend) = applied("drift-sib", &[web()]).await;
    let other = format!("{}-eu", fleet.name);
    let other_network = format!("{}-eu", fleet.network);
    let dir = tempfile::tempdir().expect("tempdir");
    let _other_cleanup = Cleanup::new(&other, &other_network);
    std::fs::write(
        dir.path().join("plugsync.yaml"),
        format!("fleet: {other}\nbackend:\n  type: docker\n  network: {other_network}\n"),
    )
    .expect("write plugsync.yaml");
    std::fs::create_dir_all(dir.path().join("plugins/web")).expect("mkdir");
    std::fs::write(dir.path().join("plugins/web/plugin.yaml"), web().yaml()).expect("write manifest");
    let local = plugsync::source::load_dir(dir.path(), None).expect("load the other fleet");
    assert!(local.loaded.is_valid());
    let other_backend = DockerBackend::connect(None, other_network.clone()).await.expect("connect");
    let quiet = |_: &str| {};
    let report = Reconciler::new(&other_backend, &local.loaded.fleet, &local.revision, &quiet)
        .run(plugsync::plan::DesiredHealth::Complete)
        .await
        .expect("reconcile the other fleet");
    assert!(report.succeeded(), "{report:#?}");

    let findings = detect(&fleet, &backend).await;
    assert!(
        findings.is_empty(),
        "fleet {}: the containers of fleet {other} (plugsync's own, labelled plugsync.fleet={other}) are reported:\n{}",
        fleet.name,
        show(&findings)
    );
}

/// OOM as it really happens on Docker: `/alloc` past a 16Mi limit, the kernel OOM-kills the
/// plugin (exit 137) and the unless-stopped policy restarts it within ~100 ms. Docker keeps
/// `OOMKilled: true` and `RestartCount: 1` on the running container, and drift reports
/// nothing once it runs again (see the report: oom-killed is never reported for a running
/// instance, `restarting` only in the ~100 ms before the restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_under_unless_stopped_restarts_and_leaves_no_finding() {
    let (docker, fleet, backend) = applied("drift-oom", &[PluginDef::new("hog", V1).memory("16Mi")]).await;
    let victim = one_instance(&fleet, &backend, "hog").await;
    let ip = victim.address.expect("address");
    let since = unix_now();
    let answer = http_get(ip, "/alloc?mb=64").await;
    assert!(answer.as_ref().map_or(true, |r| r.status != 200), "64 MB fitted in 16Mi?");

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut kinds_seen = std::collections::BTreeSet::new();
    let restarted = loop {
        for f in detect(&fleet, &backend).await {
            kinds_seen.insert(f.kind);
        }
        let now = one_instance(&fleet, &backend, "hog").await;
        if now.is_running() && now.restart_count >= 1 {
            break now;
        }
        assert!(Instant::now() < deadline, "never restarted after the OOM kill: {now:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(oom_events(&victim.id, since).await, 1, "the kernel OOM-killed it once");
    let state = inspect(&docker, &victim.id).await.state.expect("state");
    assert_eq!(restarted.oom_killed, state.oom_killed == Some(true), "observe carries Docker's OOM flag: {state:?}");
    assert_eq!(restarted.id, victim.id, "Docker restarted the same container");
    wait_ready(&restarted).await;
    let findings = detect(&fleet, &backend).await;
    eprintln!(
        "[{}] OOM kill: kinds seen while it restarted: {kinds_seen:?}; after the restart (running, OOMKilled=true, RestartCount={}): {}",
        fleet.name,
        restarted.restart_count,
        show(&findings)
    );
    assert!(
        kinds_seen.iter().all(|k| matches!(k, DriftKind::Restarting | DriftKind::Stopped | DriftKind::Unhealthy)),
        "{kinds_seen:?}"
    );
    // What happens today (a gap, see the report): nothing once Docker restarted it.
    assert!(findings.is_empty(), "{}", show(&findings));
}

/// OOM with no restart (`docker update --restart no`, then `/alloc` past the limit): the
/// container stays exited with OOMKilled: oom-killed, healed by a reconcile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_without_restart_is_oom_killed() {
    let (docker, fleet, backend) = applied("drift-oomx", &[PluginDef::new("hog", V1).memory("16Mi")]).await;
    let victim = one_instance(&fleet, &backend, "hog").await;
    docker_cli(&["update", "--restart", "no", &victim.name]).await;
    let _ = http_get(victim.address.expect("address"), "/alloc?mb=64").await;

    let findings = detect_until(&fleet, &backend, Duration::from_secs(10), "oom-killed", |f| {
        f.iter().any(|f| f.kind == DriftKind::OomKilled)
    })
    .await;
    let state = inspect(&docker, &victim.id).await.state.expect("state");
    assert_eq!((state.oom_killed, state.exit_code), (Some(true), Some(137)), "{state:?}");
    let f = only(&findings, "after the OOM kill");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::OomKilled, "hog", victim.name.as_str()));
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("running", "killed for memory (exit code 137)"));

    assert_heals(&fleet, &backend, "oom kill without restart").await;
}

/// A crash loop from OOM: the plugin allocates 8 MB at start; stopped, given a 6m limit and
/// started again, it is OOM-killed at every start and Docker keeps restarting it: restarting
/// (with the restart count and exit code 137), healed by a reconcile that replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_crash_loop_is_restarting() {
    let hog = PluginDef::new("hog", V1).memory("32Mi").env("ALLOC_MB_AT_START", "8");
    let (_docker, fleet, backend) = applied("drift-oomloop", &[hog]).await;
    let victim = one_instance(&fleet, &backend, "hog").await;
    let since = unix_now();
    docker_cli(&["stop", "-t", "2", &victim.name]).await;
    docker_cli(&["update", "--memory", "6m", "--memory-swap", "6m", &victim.name]).await;
    docker_cli(&["start", &victim.name]).await;

    let findings = detect_until(&fleet, &backend, Duration::from_secs(15), "restarting", |f| {
        f.iter().any(|f| f.kind == DriftKind::Restarting)
    })
    .await;
    let f = only(&findings, "in the OOM crash loop");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::Restarting, "hog", victim.name.as_str()));
    assert_eq!(f.expected, "running");
    assert!(
        f.found.starts_with("restarting in a loop, ")
            && f.found.contains(" restart(s)")
            && f.found.ends_with("(exit code 137)"),
        "{f}"
    );
    assert!(oom_events(&victim.id, since).await >= 1, "the kernel OOM-killed it");
    // Between two restarts it runs for ~100 ms (Docker's OOMKilled flag is not even reliable
    // then: the OOM event may be handled after the exit). The plan only repairs what it sees
    // not running, and a reconcile that plans during one of those moments does nothing (see
    // the report), so wait until Docker's back-off (100 ms, doubling: 1.6 s after the 5th
    // restart) keeps it mostly `restarting`.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = one_instance(&fleet, &backend, "hog").await;
        if now.restart_count >= 5 && now.state == RunState::Restarting {
            break;
        }
        assert!(Instant::now() < deadline, "the crash loop did not go on: {now:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let report = assert_heals(&fleet, &backend, "oom crash loop").await;
    assert_eq!(
        report.results.iter().map(|r| (r.plugin.as_str(), r.kind)).collect::<Vec<_>>(),
        [("hog", ChangeKind::Repair)]
    );
    let after = one_instance(&fleet, &backend, "hog").await;
    assert_ne!(after.id, victim.id);
}

/// Readiness failing after start: a plugin that needs 3 s to become ready, restarted with
/// `docker restart`: running and serving but its readiness probe fails: unhealthy. A
/// reconcile has nothing to change (the container runs, current spec); the finding clears
/// once the instance is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_after_docker_restart_is_unhealthy() {
    let slow = PluginDef::new("slow", V1).env("READY_DELAY_MS", "3000").rollout(&direct("30s"));
    let (_docker, fleet, backend) = applied("drift-unready", &[slow]).await;
    let victim = one_instance(&fleet, &backend, "slow").await;
    docker_cli(&["restart", "-t", "1", &victim.name]).await;

    let f = only(&detect(&fleet, &backend).await, "right after docker restart");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::Unhealthy, "slow", victim.name.as_str()));
    assert_eq!((f.expected.as_str(), f.found.as_str()), ("ready", "readiness probe failing"));

    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "{report:#?}");
    detect_until(&fleet, &backend, Duration::from_secs(8), "no drift once ready", |f| f.is_empty()).await;
    assert_eq!(one_instance(&fleet, &backend, "slow").await.id, victim.id);
}

/// `docker pause`: Docker says `paused`; drift reports it as stopped (not running), and a
/// reconcile repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pause_is_stopped_paused() {
    let (_docker, fleet, backend) = applied("drift-pause", &[web()]).await;
    let victim = one_instance(&fleet, &backend, "web").await;
    docker_cli(&["pause", &victim.name]).await;

    let f = only(&detect(&fleet, &backend).await, "after docker pause");
    assert_eq!((f.kind, f.plugin.as_str(), f.instance.as_str()), (DriftKind::Stopped, "web", victim.name.as_str()));
    assert_eq!(f.expected, "running");
    // Today "paused (exit code 0)": the exit code of a container that never exited (see the report).
    assert!(f.found.starts_with("paused"), "{f}");

    assert_heals(&fleet, &backend, "docker pause").await;
}

// ---------------------------------------------------------------------------------------------
// 3. Intentional states are not drift

/// A suspended plugin left stopped is not drift (a sibling stopped the same way is); a
/// reconcile repairs the sibling and leaves the suspended one exactly as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_plugin_that_is_stopped_is_not_drift() {
    let api = PluginDef::new("api", V1);
    let (docker, fleet, backend) = applied("drift-susp", &[web(), api]).await;
    fleet.write("plugins/web/plugin.yaml", &format!("{}suspended: true\n", web().yaml()));
    let web_instance = one_instance(&fleet, &backend, "web").await;
    let api_instance = one_instance(&fleet, &backend, "api").await;
    docker_cli(&["stop", "-t", "5", &web_instance.name]).await;
    docker_cli(&["stop", "-t", "5", &api_instance.name]).await;

    let f = only(&detect(&fleet, &backend).await, "suspended web and active api, both stopped");
    assert_eq!(
        (f.kind, f.plugin.as_str(), f.instance.as_str()),
        (DriftKind::Stopped, "api", api_instance.name.as_str())
    );

    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(report.plan.suspended, ["web"]);
    let findings = detect(&fleet, &backend).await;
    assert!(findings.is_empty(), "{}", show(&findings));
    let state = inspect(&docker, &web_instance.id).await.state.expect("state");
    assert_eq!(state.running, Some(false), "the suspended plugin is left as it is: {state:?}");

    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--detect-only"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

/// A Git change not applied yet (web 1.0.0 → 1.1.0): web's instances carry the older spec,
/// which the plan reports; not drift, even when that old instance is stopped. A plugin the
/// caller names as intentional (a paused rollout) is skipped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_git_change_and_intentional_plugins_are_not_drift() {
    let api = PluginDef::new("api", V1);
    let (_docker, fleet, backend) = applied("drift-pending", &[web(), api]).await;
    fleet.plugin(&web().version(V2));

    let plan = fleet.plan(&backend, plugsync::plan::DesiredHealth::Complete).await;
    let kinds: Vec<(&str, ChangeKind)> = plan.changes.iter().map(|c| (c.plugin.as_str(), c.kind)).collect();
    assert_eq!(kinds, [("web", ChangeKind::Update)], "{plan:#?}");
    let findings = detect(&fleet, &backend).await;
    assert!(findings.is_empty(), "a pending Git change is not drift:\n{}", show(&findings));
    let out = fleet.cli(&["reconcile", fleet.path_str(), "--once", "--detect-only"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let old = one_instance(&fleet, &backend, "web").await;
    docker_cli(&["stop", "-t", "5", &old.name]).await;
    let findings = detect(&fleet, &backend).await;
    assert!(findings.is_empty(), "an old-spec instance of a plugin Git moved on is not drift:\n{}", show(&findings));

    let api_instance = one_instance(&fleet, &backend, "api").await;
    docker_cli(&["stop", "-t", "5", &api_instance.name]).await;
    let f = only(&detect(&fleet, &backend).await, "api stopped");
    assert_eq!((f.kind, f.plugin.as_str()), (DriftKind::Stopped, "api"));
    let intentional = BTreeMap::from([("api".to_string(), "rollout paused by a person".to_string())]);
    let findings = detect_with(&fleet, &backend, &intentional).await;
    assert!(findings.is_empty(), "an intentional plugin is not drift:\n{}", show(&findings));

    // Applying the change converges both; no drift after.
    assert_heals(&fleet, &backend, "pending change applied").await;
    assert_eq!(one_instance(&fleet, &backend, "web").await.version, V2);
}
