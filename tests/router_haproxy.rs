//! The router configuration (`plugsync::traffic`) through a real HAProxy, in a `FROM scratch`
//! container built around Debian's haproxy binary, in front of real echo-plugin containers:
//!
//! - exact weights: 1 canary beside 3 stable at 10 %, 25 % and 50 %, set through the runtime
//!   API without a reload: 2,000 requests land within ±2 points of each weight;
//! - stickiness: 500 correlation ids (then 500 tenant ids, then 500 cookies), each sent 5 times
//!   at 10 %, 25 % and 50 %: no id sees two versions at one weight, none moves from canary back
//!   to stable as the weight rises; the share of ids on canary is within ±3 points (measured on
//!   5,000 ids: 500 alone have a binomial σ of 1.9 points at 25 %).
//!
//! Needs Docker and /usr/sbin/haproxy (`.ci/run` installs it); fails loudly without them.

use plugsync_test_support::analysis as support;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions, UploadToContainerOptions};
use bollard::Docker;
use plugsync::plan::Slot;
use plugsync::traffic::haproxy::{config, weight_commands, RouterPorts};
use plugsync::traffic::{Route, Server, SlotShare, StickyBy};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::{bridge_ip, docker, prepare, Echo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEIGHTS: [f64; 3] = [10.0, 25.0, 50.0];
const CANARY: &str = "canary-1";

/// The router container, removed on drop.
struct Router {
    id: String,
    ip: IpAddr,
}

impl Router {
    async fn start(docker: &Docker, name: &str, text: &str) -> Router {
        plugsync::images::build_router_image(docker).await.unwrap_or_else(|e| panic!("router image: {e}"));
        let name = format!("router-test-{}-{name}", std::process::id());
        let _ =
            docker.remove_container(&name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
        let body = ContainerCreateBody {
            image: Some(plugsync::images::ROUTER_IMAGE.into()),
            labels: Some(HashMap::from([(support::SUITE_LABEL.to_string(), support::SUITE.to_string())])),
            host_config: Some(HostConfig { network_mode: Some("bridge".into()), ..Default::default() }),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        let mut router = Router { id: created.id, ip: IpAddr::from([0, 0, 0, 0]) };
        let archive = plugsync::images::router_config_archive(text).expect("config archive");
        docker
            .upload_to_container(
                &router.id,
                Some(UploadToContainerOptions { path: "/".into(), ..Default::default() }),
                bollard::body_full(archive.into()),
            )
            .await
            .unwrap_or_else(|e| panic!("upload the router config: {e}"));
        docker.start_container(&router.id, None).await.unwrap_or_else(|e| panic!("start {name}: {e}"));
        router.ip = bridge_ip(docker, &router.id).await;
        router.wait_ready(docker).await;
        router
    }

    async fn wait_ready(&self, docker: &Docker) {
        let url = format!("http://{}:8404/healthz", self.ip);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match plugsync::tls::http_client().get(&url).timeout(Duration::from_secs(1)).send().await {
                Ok(r) if r.status().is_success() => return,
                other if Instant::now() > deadline => {
                    let logs = container_logs(docker, &self.id).await;
                    panic!("the router never answered {url}: {other:?}\nits log:\n{logs}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Sends runtime API commands (one connection, `;`-separated) and returns the answer.
    async fn runtime(&self, commands: &[String]) -> String {
        let mut stream =
            tokio::net::TcpStream::connect((self.ip, 9999)).await.unwrap_or_else(|e| panic!("runtime API: {e}"));
        stream.write_all(format!("{}\n", commands.join(";")).as_bytes()).await.expect("write command");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read answer");
        answer
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let id = self.id.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let docker = Docker::connect_with_local_defaults().ok()?.negotiate_version().await.ok()?;
                docker
                    .remove_container(&id, Some(RemoveContainerOptions { force: true, ..Default::default() }))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn container_logs(docker: &Docker, id: &str) -> String {
    use futures_util::StreamExt;
    let options = bollard::query_parameters::LogsOptions { stdout: true, stderr: true, ..Default::default() };
    let mut out = String::new();
    let mut stream = docker.logs(id, Some(options));
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}

/// Three stable echo instances and one canary; each answers `<tag>-<role>` as `plugin`
/// (the tag keeps container names apart when the tests of this file run in parallel).
async fn instances(docker: &Docker, tag: &str) -> Vec<(Echo, Slot)> {
    let mut out = Vec::new();
    for role in ["stable-1", "stable-2", "stable-3", CANARY] {
        let slot = if role == CANARY { Slot::Canary } else { Slot::Stable };
        out.push((Echo::start(docker, &format!("{tag}-{role}"), &[]).await, slot));
    }
    out
}

/// The role part of an echo's name or plugin id (`…-canary-1` → `canary-1`).
fn role(text: &str) -> String {
    let parts: Vec<&str> = text.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [n, kind, _] => format!("{kind}-{n}"),
        _ => text.to_string(),
    }
}

fn route(echoes: &[(Echo, Slot)], canary_percent: f64, sticky: Option<StickyBy>) -> Route {
    Route {
        plugin: "crm".into(),
        port: 8080,
        readiness: "/health/ready".into(),
        sticky,
        shares: vec![
            SlotShare { slot: Slot::Stable, percent: 100.0 - canary_percent },
            SlotShare { slot: Slot::Canary, percent: canary_percent },
        ],
        servers: echoes
            .iter()
            .map(|(echo, slot)| Server { name: role(&echo.name), slot: *slot, address: echo.ip, port: 8080 })
            .collect(),
    }
}

/// The role (`stable-2`, `canary-1`) of the instance that answered one request.
async fn answered_by(client: &reqwest::Client, router: IpAddr, header: Option<(&str, &str)>) -> String {
    let mut request = client.get(format!("http://{router}:8080/")).header("Host", "crm:8080");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("request through the router: {e}"));
    assert!(response.status().is_success(), "the router answered {}", response.status());
    let body: serde_json::Value = response.json().await.expect("echo JSON");
    role(body["plugin"].as_str().unwrap_or_default())
}

async fn set_weights(router: &Router, route: &Route) {
    let answer = router.runtime(&weight_commands(std::slice::from_ref(route))).await;
    assert!(answer.trim().is_empty(), "the runtime API refused a weight: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_exact_and_change_without_a_reload() {
    let docker = docker().await;
    prepare(&docker).await;
    let echoes = instances(&docker, "rtw").await;
    let first = route(&echoes, WEIGHTS[0], None);
    let router =
        Router::start(&docker, "weights", &config(std::slice::from_ref(&first), &RouterPorts::default())).await;
    let client = plugsync::tls::http_client();
    for weight in WEIGHTS {
        let at = route(&echoes, weight, None);
        set_weights(&router, &at).await;
        let mut canary = 0usize;
        for _ in 0..2000 {
            if answered_by(&client, router.ip, None).await == CANARY {
                canary += 1;
            }
        }
        let share = canary as f64 / 20.0;
        eprintln!("MEASURED canary weight {weight} %: {share:.2} % of 2,000 requests (weights {:?})", at.weights());
        assert!((share - weight).abs() <= 2.0, "canary at {weight} % took {share:.2} % of 2,000 requests");
    }
    // The router's own per-request log says the same, per slot, without asking the plugin.
    // The router writes its log asynchronously: read until every request is in (or 10 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let logs = container_logs(&docker, &router.id).await;
        let seen = plugsync::analysis::router_log::window(logs.lines(), "crm", 10.0);
        let total: f64 = seen.slots.values().map(|m| m.metrics.requests).sum();
        if total >= 6000.0 || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let requests = |slot: Slot| seen.slots.get(&slot).map_or(0.0, |m| m.metrics.requests);
    eprintln!("MEASURED router log: {:?} (skipped {} lines)", seen.slots, seen.skipped);
    assert_eq!(requests(Slot::Stable) + requests(Slot::Canary), 6000.0, "every request logged once");
    assert_eq!(requests(Slot::Canary), 200.0 + 500.0 + 1000.0, "10 %, 25 % and 50 % of 2,000");
    assert!(seen
        .slots
        .values()
        .all(|m| m.metrics.error_rate == Some(0.0) && m.metrics.p99_ms.is_some() && m.p50_ms.is_some()));
}

/// 500 ids × 5 requests per weight: ids stick to one version, only move stable → canary, and
/// the share of ids on canary tracks the weight.
async fn stickiness(sticky: StickyBy, header: &str, value: fn(usize) -> String) {
    let docker = docker().await;
    prepare(&docker).await;
    let tag = header.to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let echoes = instances(&docker, &format!("rt{tag}")).await;
    let first = route(&echoes, WEIGHTS[0], Some(sticky.clone()));
    let router = Router::start(&docker, &tag, &config(std::slice::from_ref(&first), &RouterPorts::default())).await;
    let client = plugsync::tls::http_client();
    let mut previous: BTreeMap<usize, bool> = BTreeMap::new();
    for weight in WEIGHTS {
        set_weights(&router, &route(&echoes, weight, Some(sticky.clone()))).await;
        let mut on_canary: BTreeMap<usize, bool> = BTreeMap::new();
        for id in 0..500 {
            let v = value(id);
            let mut versions = Vec::new();
            for _ in 0..5 {
                versions.push(answered_by(&client, router.ip, Some((header, &v))).await == CANARY);
            }
            assert!(versions.iter().all(|c| *c == versions[0]), "{sticky} id {v} saw two versions at {weight} %");
            on_canary.insert(id, versions[0]);
        }
        let back: Vec<usize> =
            previous.iter().filter(|(id, was)| **was && !on_canary[*id]).map(|(id, _)| *id).collect();
        assert!(back.is_empty(), "{sticky}: ids moved from canary back to stable at {weight} %: {back:?}");
        let share = on_canary.values().filter(|c| **c).count() as f64 / 5.0;
        // 500 ids measure the share to ±1.9 points (one σ at 25 %): the ±3-point bound is
        // checked on 5,000 more ids (σ 0.6), where it says something about the router.
        let mut more = 0usize;
        for id in 500..5500 {
            more += usize::from(answered_by(&client, router.ip, Some((header, &value(id)))).await == CANARY);
        }
        let wide = more as f64 / 50.0;
        eprintln!("MEASURED {sticky} at {weight} %: {share:.1} % of 500 ids, {wide:.2} % of 5,000 ids on canary");
        assert!((wide - weight).abs() <= 3.0, "{sticky}: {wide:.2} % of 5,000 ids on canary at {weight} %");
        previous = on_canary;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_ids_stick_and_only_move_forward() {
    stickiness(StickyBy::Header("X-Correlation-Id".into()), "X-Correlation-Id", |i| {
        format!("corr-{i:04}-{}", i * 7919)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_stick_and_their_share_tracks_the_weight() {
    stickiness(StickyBy::Header("X-Tenant-ID".into()), "X-Tenant-ID", |i| format!("tenant-{i}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_stick() {
    stickiness(StickyBy::Cookie("session".into()), "Cookie", |i| format!("session=s{i:05}")).await;
}
