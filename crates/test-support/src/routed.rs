//! Fleets behind plugsync's managed router (`traffic: {router: haproxy}`) on the real engine:
//! the router's replicas, its runtime API counters, requests through it, load.

use crate::docker::{self as common, TestFleet};
use crate::progressive::Story;
use plugsync::backend::docker::DockerBackend;
use plugsync::plan::DesiredHealth;
use plugsync::reconcile::{Ending, Reconciler};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The fleet's router replicas: (id, address on the fleet network, aliases there).
pub async fn replicas(docker: &bollard::Docker, fleet: &TestFleet) -> Vec<(String, Option<IpAddr>, Vec<String>)> {
    let filters = HashMap::from([("label".to_string(), vec![format!("plugsync.router={}", fleet.name)])]);
    let options = bollard::query_parameters::ListContainersOptions { filters: Some(filters), ..Default::default() };
    let mut out = Vec::new();
    for c in docker.list_containers(Some(options)).await.expect("list router replicas") {
        let id = c.id.unwrap_or_default();
        let inspect = docker.inspect_container(&id, None).await.expect("inspect router replica");
        let endpoint = inspect.network_settings.and_then(|n| n.networks).and_then(|mut n| n.remove(&fleet.network));
        let address = endpoint.as_ref().and_then(|e| e.ip_address.clone()).and_then(|ip| ip.parse().ok());
        let aliases = endpoint.and_then(|e| e.aliases).unwrap_or_default();
        out.push((id, address, aliases));
    }
    out
}

/// Per server of `plugin`'s backends: (is canary, weight, status UP, requests served so far),
/// from the runtime API's `show stat` (columns named by its header line).
pub async fn servers(router: IpAddr, plugin: &str) -> Option<Vec<(bool, f64, bool, u64)>> {
    let mut stream = tokio::net::TcpStream::connect((router, 9999)).await.ok()?;
    stream.write_all(b"show stat\n").await.ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv, weight, status, total) =
        (col("pxname")?, col("svname")?, col("weight")?, col("status")?, col("stot")?);
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        // A sticky plugin has a backend per slot (`be_<plugin>.<slot>`).
        let of_plugin = f.get(px).and_then(|b| plugsync::traffic::sticky::plugin_of_backend(b)) == Some(plugin);
        if !of_plugin || matches!(f.get(sv), Some(&"BACKEND") | None) {
            continue;
        }
        out.push((
            f.get(sv)?.starts_with("canary-"),
            f.get(weight)?.parse().ok()?,
            f.get(status)?.starts_with("UP"),
            f.get(total)?.parse().ok()?,
        ));
    }
    Some(out)
}

/// The canary's share of the weight the router gives `plugin`'s servers that are up.
pub async fn canary_weight(router: IpAddr, plugin: &str) -> Option<f64> {
    let up: Vec<_> = servers(router, plugin).await?.into_iter().filter(|s| s.2).collect();
    let total: f64 = up.iter().map(|s| s.1).sum();
    let canary: f64 = up.iter().filter(|s| s.0).map(|s| s.1).sum();
    (total > 0.0).then(|| canary * 100.0 / total)
}

/// Requests `plugin`'s canary and all its servers served so far, by the router's counters.
pub async fn served(router: IpAddr, plugin: &str) -> (u64, u64) {
    let all = servers(router, plugin).await.unwrap_or_default();
    (all.iter().filter(|s| s.0).map(|s| s.3).sum(), all.iter().map(|s| s.3).sum())
}

/// The version of `plugin` that answered one request through `router`.
pub async fn version(client: &reqwest::Client, router: IpAddr, plugin: &str, header: Option<(&str, &str)>) -> String {
    let mut request = client.get(format!("http://{router}:8080/")).header("Host", format!("{plugin}:8080"));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("request through the router: {e:?}"));
    assert!(response.status().is_success(), "the router answered {}", response.status());
    let body: serde_json::Value = response.json().await.expect("echo JSON");
    body["version"].as_str().unwrap_or_default().to_string()
}

/// A keep-alive client sending requests to `plugin` through `router` until stopped, counting
/// answers (2xx, or anything else: a 5xx the plugin chose to send counts as failed too).
pub fn load(
    router: IpAddr,
    plugin: &'static str,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = plugsync::tls::http_client();
        while !stop.load(Ordering::Relaxed) {
            let sent = client
                .get(format!("http://{router}:8080/"))
                .header("Host", format!("{plugin}:8080"))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                Ok(r) => {
                    eprintln!("load: {}", r.status());
                    failed.fetch_add(1, Ordering::Relaxed)
                }
                Err(e) => {
                    eprintln!("load: {e}");
                    failed.fetch_add(1, Ordering::Relaxed)
                }
            };
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// A fleet behind the router (the locally built router image), its backend and its story.
pub async fn routed_fleet(tag: &str) -> (bollard::Docker, TestFleet, DockerBackend, Story) {
    let docker = common::docker().await;
    common::ensure_echo_images(&docker).await;
    plugsync::images::build_router_image(&docker).await.expect("router image");
    let fleet = TestFleet::new(tag).await;
    fleet.write(
        "plugsync.yaml",
        &format!(
            "fleet: {}\nbackend:\n  type: docker\n  network: {}\ntraffic:\n  router: haproxy\n  image: {}\n",
            fleet.name,
            fleet.network,
            plugsync::images::ROUTER_IMAGE
        ),
    );
    let backend = fleet.backend().await;
    let story = Story::new(&fleet.name);
    (docker, fleet, backend, story)
}

pub async fn reconcile(fleet: &TestFleet, backend: &DockerBackend, story: &Story) -> Vec<Ending> {
    let local = fleet.load();
    let narrate = |line: &str| story.push(line);
    let report = Reconciler::new(backend, &local.loaded.fleet, &local.revision, &narrate)
        .run(DesiredHealth::Complete)
        .await
        .expect("reconcile");
    report.results.into_iter().map(|r| r.result).collect()
}
