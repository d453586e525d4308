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

use bollard::Docker;
use plugsync::plan::Slot;
use plugsync::traffic::haproxy::{config, weight_commands, RouterPorts};
use plugsync::traffic::{Route, Server, SlotShare, StickyBy};
use plugsync_test_support::router::{container_logs, Router};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use support::{docker, prepare, Echo};

const WEIGHTS: [f64; 3] = [10.0, 25.0, 50.0];
const CANARY: &str = "canary-1";

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
        base_path: None,
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
