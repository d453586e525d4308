//! `plugsync demo`: the newcomer's tour on the local Docker engine. Builds the sample image,
//! puts examples/fleet in a throw-away Git repo, and narrates create → rolling update →
//! failed update rolled back → a sticky canary behind the managed router with live
//! per-version counts, then cleans up (unless --keep).

use super::demo_router::{self, STICKY};
use plugsync::backend::docker::DockerBackend;
use plugsync::backend::Backend;
use plugsync::plan::{render, DesiredHealth};
use plugsync::reconcile::Reconciler;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

const FLEET: &str = "demo";
const VERSIONS: [&str; 5] = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.3.0"];

pub async fn run(keep: bool) -> anyhow::Result<ExitCode> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    say(1, "connecting to the local Docker engine");
    let traffic =
        plugsync::model::routing::FleetTraffic { image: plugsync::images::ROUTER_IMAGE.into(), ..Default::default() };
    let backend = DockerBackend::connect(None, format!("plugsync-{FLEET}")).await?.with_router(&traffic);

    say(2, "building the sample plugin image (static binary, FROM scratch; nothing is pulled)");
    plugsync::images::ensure_echo_images(backend.docker(), root, &VERSIONS).await?;
    println!("    plugsync/echo-plugin: {}", VERSIONS.join(", "));

    let repo_dir = std::env::temp_dir().join(format!("plugsync-demo-{}", std::process::id()));
    say(3, &format!("copying examples/fleet into a fresh Git repo at {}", repo_dir.display()));
    plugsync::source::dir::copy_tree(&root.join("examples/fleet"), &repo_dir)?;
    edit(
        &repo_dir.join("plugsync.yaml"),
        &[("fleet: example", "fleet: demo"), ("network: plugsync-example", "network: plugsync-demo")],
    )?;
    let repo = git2::Repository::init(&repo_dir)?;
    commit_all(&repo, "Initial fleet: six plugins")?;
    if std::env::var_os("PLUGSYNC_EXAMPLE_AUTH_KEY").is_none() {
        // The example's auth plugin reads its signing key from the plugsync host's env.
        std::env::set_var("PLUGSYNC_EXAMPLE_AUTH_KEY", "demo-signing-key");
    }

    let result = tour(&backend, &repo, &repo_dir).await;
    if keep {
        println!("\n--keep: the demo fleet keeps running; its Git repo is {}", repo_dir.display());
    } else {
        say(9, "cleaning up what the demo created");
        clean_up(&backend).await?;
        let _ = std::fs::remove_dir_all(&repo_dir);
    }
    result?;
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

async fn tour(backend: &DockerBackend, repo: &git2::Repository, dir: &Path) -> anyhow::Result<()> {
    say(4, "first reconcile: every plugin is new, dependencies first (auth before crm before reports)");
    reconcile(backend, dir).await?;
    show(backend).await?;
    println!("\n    a second reconcile finds nothing to do:");
    reconcile(backend, dir).await?;

    say(5, "commit: auth 1.1.0 → 1.2.0; Rolling, one instance at a time, new before old");
    let auth = dir.join("plugins/auth/plugin.yaml");
    edit(
        &auth,
        &[
            ("version: 1.1.0", "version: 1.2.0"),
            ("echo-plugin:1.1.0", "echo-plugin:1.2.0"),
            ("ECHO_VERSION: \"1.1.0\"", "ECHO_VERSION: \"1.2.0\""),
        ],
    )?;
    commit_all(repo, "auth: 1.2.0")?;
    reconcile(backend, dir).await?;
    show(backend).await?;

    say(6, "commit: auth 1.3.0, a build that never becomes ready; plugsync rolls it back");
    edit(
        &auth,
        &[
            ("version: 1.2.0", "version: 1.3.0"),
            ("echo-plugin:1.2.0", "echo-plugin:1.3.0"),
            ("ECHO_VERSION: \"1.2.0\"", "ECHO_VERSION: \"1.3.0\"\n  NEVER_READY: \"1\""),
            ("healthCheckTimeout: 60s", "healthCheckTimeout: 8s"),
        ],
    )?;
    commit_all(repo, "auth: 1.3.0 (broken readiness)")?;
    let ok = reconcile(backend, dir).await?;
    anyhow::ensure!(!ok, "the broken version should have been rolled back");
    println!("    → auth still runs 1.2.0 on every instance; the failed revision is reported, nothing was lost");
    show(backend).await?;
    router_tour(backend, repo, dir).await?;
    Ok(())
}

/// Steps 7 and 8. `Ok(false)` when this machine has no haproxy to build the router from.
async fn router_tour(backend: &DockerBackend, repo: &git2::Repository, dir: &Path) -> anyhow::Result<bool> {
    say(
        7,
        "commit: auth back to 1.2.0, and notifier behind the managed router, sticky by X-Correlation-Id \
         (its 1.1.0 folder says canary_weight 10; moving is a Direct replace, start-first)",
    );
    if !Path::new("/usr/sbin/haproxy").exists() {
        println!("    skipped: the router image is built from Debian's haproxy here (apt install haproxy); in production it is the public haproxy image");
        return Ok(false);
    }
    plugsync::images::build_router_image(backend.docker()).await?;
    let notifier = dir.join("plugins/notifier");
    let sticky = format!(
        "\"traffic\": {{ \"router\": \"haproxy\", \"stickyBy\": \"header:{STICKY}\" }},\n  \
         \"rollout\": {{ \"strategy\": \"Direct\" }},\n  \"dependsOn\""
    );
    edit(&notifier.join("v1.0.0/manifest.json"), &[("\"dependsOn\"", &sticky)])?;
    edit(
        &dir.join("plugins/auth/plugin.yaml"),
        &[
            ("version: 1.3.0", "version: 1.2.0"),
            ("echo-plugin:1.3.0", "echo-plugin:1.2.0"),
            ("ECHO_VERSION: \"1.3.0\"\n  NEVER_READY: \"1\"", "ECHO_VERSION: \"1.2.0\""),
        ],
    )?;
    commit_all(repo, "auth: back to 1.2.0; notifier: behind the router, sticky sessions")?;
    reconcile(backend, dir).await?;
    let router = demo_router::router_address(backend, FLEET).await?;
    let before = demo_router::sample(router, "10 % on 1.1.0").await?;

    say(8, "commit: canary_weight 10 → 50; the router's weights change at runtime, no restart");
    edit(&notifier.join("v1.0.0/manifest.json"), &[("\"canary_weight\": 90", "\"canary_weight\": 50")])?;
    edit(&notifier.join("v1.1.0/manifest.json"), &[("\"canary_weight\": 10", "\"canary_weight\": 50")])?;
    commit_all(repo, "notifier: 1.1.0 at 50 %")?;
    reconcile(backend, dir).await?;
    let after = demo_router::sample(router, "50 % on 1.1.0").await?;
    let forward = before
        .iter()
        .filter(|(id, v)| v.as_str() == "1.0.0" && after.get(*id).map(String::as_str) == Some("1.1.0"))
        .count();
    let back = before
        .iter()
        .filter(|(id, v)| v.as_str() == "1.1.0" && after.get(*id).map(String::as_str) == Some("1.0.0"))
        .count();
    println!("    clients moved 1.0.0 → 1.1.0: {forward}; moved back: {back} (sessions only move forward)");
    Ok(true)
}

fn say(step: u32, text: &str) {
    println!("\n[{step}] {text}");
}

async fn reconcile(backend: &DockerBackend, dir: &Path) -> anyhow::Result<bool> {
    let local = plugsync::source::load_dir(dir, None)?;
    anyhow::ensure!(local.loaded.is_valid(), "the demo fleet does not validate: {:?}", local.loaded.errors().next());
    let narrate = |line: &str| println!("    {line}");
    let reconciler = Reconciler::new(backend, &local.loaded.fleet, &local.revision, &narrate);
    let plan = reconciler.plan(DesiredHealth::Complete).await?;
    for line in render::text(&plan).lines() {
        println!("    {line}");
    }
    if plan.no_changes() {
        return Ok(true);
    }
    let report = reconciler.run(DesiredHealth::Complete).await?;
    print!("    {}", super::apply::summary(&report));
    Ok(report.succeeded())
}

async fn show(backend: &DockerBackend) -> anyhow::Result<()> {
    let observed = backend.observe(FLEET, None).await?;
    println!("    {:<28} {:<9} {:<8} {:<8} SERVING", "CONTAINER", "PLUGIN", "VERSION", "SLOT");
    for i in &observed.instances {
        println!(
            "    {:<28} {:<9} {:<8} {:<8} {}",
            i.name,
            i.plugin,
            i.version,
            i.slot,
            if i.serving { "yes" } else { "no" }
        );
    }
    Ok(())
}

async fn clean_up(backend: &DockerBackend) -> anyhow::Result<()> {
    let router = plugsync::backend::router::Scope::Fleet { gateway: None };
    backend.route(FLEET, Vec::new(), router).await?;
    let observed = backend.observe(FLEET, None).await?;
    for i in &observed.instances {
        backend.retire(FLEET, i).await?;
    }
    let _ = backend.docker().remove_network(backend.network()).await;
    println!("    removed {} containers and the network {}", observed.instances.len(), backend.network());
    Ok(())
}

fn edit(path: &Path, replacements: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(path)?;
    for (from, to) in replacements {
        anyhow::ensure!(text.contains(from), "{}: expected to find {from:?}", path.display());
        text = text.replacen(from, to, 1);
    }
    std::fs::write(path, text)?;
    Ok(())
}

fn commit_all(repo: &git2::Repository, message: &str) -> anyhow::Result<()> {
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature = git2::Signature::now("plugsync demo", "demo@plugsync.invalid")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &parents)?;
    Ok(())
}
