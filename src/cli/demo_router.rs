//! The demo's eyes on the router: where a replica is, and live per-version request counts
//! from clients that each keep one correlation id (sticky sessions).

use plugsync::backend::docker::DockerBackend;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const PLUGIN: &str = "notifier";
pub const STICKY: &str = "X-Correlation-Id";
/// Distinct clients the demo plays, each sending its correlation id.
const CLIENTS: usize = 200;

/// One router replica's address on the fleet network.
pub async fn router_address(backend: &DockerBackend, fleet: &str) -> anyhow::Result<IpAddr> {
    let label = format!("{}={fleet}", plugsync::backend::router::ROUTER_LABEL);
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
    anyhow::bail!("no router replica of fleet {fleet} is running")
}

/// Three seconds of requests from every client through the router, the counts per version
/// printed live each second; returns the version each client saw (checking it saw one).
pub async fn sample(router: IpAddr, label: &str) -> anyhow::Result<BTreeMap<usize, String>> {
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
