//! The demo's router part: the notifier plugin (a BotMatrix versioned folder, 1.1.0 at
//! `canary_weight` 10) moves behind the managed router, sticky by `X-Correlation-Id`; live
//! per-version request counts show the split is exact, and raising the weight moves clients
//! forward only.

use super::demo::{commit_all, edit, reconcile, say, FLEET};
use plugsync::backend::docker::DockerBackend;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const PLUGIN: &str = "notifier";
const STICKY: &str = "X-Correlation-Id";
/// Distinct clients the demo plays, each sending its correlation id.
const CLIENTS: usize = 200;

/// Steps 7 and 8. `Ok(false)` when this machine has no haproxy to build the router from.
pub async fn tour(backend: &DockerBackend, repo: &git2::Repository, dir: &Path) -> anyhow::Result<bool> {
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
    let router = router_address(backend).await?;
    let before = sample(router, "10 % on 1.1.0").await?;

    say(8, "commit: canary_weight 10 → 50; the router's weights change at runtime, no restart");
    edit(&notifier.join("v1.0.0/manifest.json"), &[("\"canary_weight\": 90", "\"canary_weight\": 50")])?;
    edit(&notifier.join("v1.1.0/manifest.json"), &[("\"canary_weight\": 10", "\"canary_weight\": 50")])?;
    commit_all(repo, "notifier: 1.1.0 at 50 %")?;
    reconcile(backend, dir).await?;
    let after = sample(router, "50 % on 1.1.0").await?;
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

/// One router replica's address on the fleet network.
async fn router_address(backend: &DockerBackend) -> anyhow::Result<IpAddr> {
    let label = format!("{}={FLEET}", plugsync::backend::router::ROUTER_LABEL);
    let filters = std::collections::HashMap::from([("label".to_string(), vec![label])]);
    let options = bollard::query_parameters::ListContainersOptions { filters: Some(filters), ..Default::default() };
    for container in backend.docker().list_containers(Some(options)).await? {
        let ip = container
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(backend.network()))
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse().ok());
        if let Some(ip) = ip {
            return Ok(ip);
        }
    }
    anyhow::bail!("no router replica of fleet {FLEET} is running")
}

/// Three seconds of requests from every client through the router, the counts per version
/// printed live each second; returns the version each client saw (checking it saw one).
async fn sample(router: IpAddr, label: &str) -> anyhow::Result<BTreeMap<usize, String>> {
    let client = plugsync::tls::http_client();
    let mut seen: BTreeMap<usize, String> = BTreeMap::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut flipped = 0usize;
    for second in 1..=3 {
        let until = Instant::now() + Duration::from_secs(1);
        let mut n = 0usize;
        while Instant::now() < until {
            let id = n % CLIENTS;
            n += 1;
            let answer = client
                .get(format!("http://{router}:8080/"))
                .header("Host", format!("{PLUGIN}:8080"))
                .header(STICKY, format!("client-{id}"))
                .send()
                .await?
                .json::<serde_json::Value>()
                .await?;
            let version = answer["version"].as_str().unwrap_or("?").to_string();
            *counts.entry(version.clone()).or_default() += 1;
            if seen.insert(id, version.clone()).is_some_and(|was| was != version) {
                flipped += 1;
            }
        }
        let total: u64 = counts.values().sum();
        let line: Vec<String> = counts
            .iter()
            .map(|(v, c)| format!("{v}: {c:>5} ({:.1} %)", *c as f64 * 100.0 / total.max(1) as f64))
            .collect();
        println!("    [{label}, {second} s] requests per version  {}", line.join("   "));
    }
    println!(
        "    {CLIENTS} clients, each on one version throughout: {} (sticky: the split is by client, as close to \
         the weight as {CLIENTS} clients allow)",
        if flipped == 0 { "yes" } else { "NO" }
    );
    anyhow::ensure!(flipped == 0, "{flipped} requests saw a client switch versions at a fixed weight");
    Ok(seen)
}
