//! What the managed router costs and how fast it acts, against calling an instance directly in
//! the same run: latency it adds (p50, p99 of sequential keep-alive requests), requests/s
//! through it against the instance alone (64 concurrent clients), and the time from a weight
//! decision (one runtime API command) to the first request that follows the new split.
//!
//!     cargo bench --bench router
//!
//! Needs Docker and /usr/sbin/haproxy. BENCH_REQUESTS (default 3000) sequential requests per
//! side, BENCH_SECONDS (default 5) per throughput run, 20 weight flips.

use plugsync::plan::Slot;
use plugsync::traffic::haproxy::{config, weight_commands, RouterPorts};
use plugsync::traffic::{Route, Server, SlotShare};
use plugsync_test_support::analysis::{docker, prepare, Echo};
use plugsync_test_support::router::Router;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn route(stable: &Echo, canary: &Echo, canary_percent: f64) -> Route {
    Route {
        plugin: "crm".into(),
        port: 8080,
        base_path: None,
        readiness: "/health/ready".into(),
        sticky: None,
        shares: vec![
            SlotShare { slot: Slot::Stable, percent: 100.0 - canary_percent },
            SlotShare { slot: Slot::Canary, percent: canary_percent },
        ],
        servers: vec![
            Server { name: "stable-1".into(), slot: Slot::Stable, address: stable.ip, port: 8080 },
            Server { name: "canary-1".into(), slot: Slot::Canary, address: canary.ip, port: 8080 },
        ],
    }
}

fn request(client: &reqwest::Client, target: IpAddr) -> reqwest::RequestBuilder {
    client.get(format!("http://{target}:8080/")).header("Host", "crm:8080")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// p50 and p99 of `n` sequential requests on one keep-alive connection.
async fn latency(target: IpAddr, n: u64) -> (Duration, Duration) {
    let client = plugsync::tls::builder().pool_max_idle_per_host(1).build().expect("client");
    for _ in 0..100 {
        let _ = request(&client, target).send().await.and_then(|r| r.error_for_status());
    }
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        let response = request(&client, target).send().await.expect("request");
        let _ = response.bytes().await.expect("body");
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// Requests/s of 64 keep-alive clients for `seconds`, and the failures among them.
async fn throughput(target: IpAddr, seconds: u64) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = plugsync::tls::builder().pool_max_idle_per_host(64).build().expect("client");
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (client, stop, done, failed) = (client.clone(), stop.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let answered = match request(&client, target).send().await.and_then(|r| r.error_for_status()) {
                        Ok(r) => r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let counter = if answered { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    (done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(), failed.load(Ordering::Relaxed))
}

/// The answering instance's plugin id (`…-stable` or `…-canary`).
async fn answered_by(client: &reqwest::Client, router: IpAddr) -> String {
    let body: serde_json::Value = request(client, router).send().await.expect("request").json().await.expect("json");
    body["plugin"].as_str().unwrap_or_default().to_string()
}

/// Median and worst time from a weight command sent to the first request served by the newly
/// weighted slot, over `flips` flips between 0 % and 100 % canary.
async fn weight_to_effect(router: &Router, stable: &Echo, canary: &Echo, flips: usize) -> (Duration, Duration) {
    let client = plugsync::tls::builder().pool_max_idle_per_host(1).build().expect("client");
    let mut times = Vec::new();
    for flip in 0..flips {
        let to_canary = flip % 2 == 0;
        let wanted = if to_canary { &canary.name } else { &stable.name };
        let commands = weight_commands(&[route(stable, canary, if to_canary { 100.0 } else { 0.0 })]);
        let t = Instant::now();
        let answer = router.runtime(&commands).await;
        assert!(answer.trim().is_empty(), "runtime API: {answer}");
        while !wanted.ends_with(&answered_by(&client, router.ip).await) {
            assert!(t.elapsed() < Duration::from_secs(10), "the new weight never took effect");
        }
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), times[times.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (requests, seconds) = (env_or("BENCH_REQUESTS", 3000), env_or("BENCH_SECONDS", 5));
    let docker = docker().await;
    prepare(&docker).await;
    let stable = Echo::start(&docker, "bench-router-stable", &[]).await;
    let canary = Echo::start(&docker, "bench-router-canary", &[]).await;
    let first = route(&stable, &canary, 0.0);
    let router = Router::start(&docker, "bench", &config(std::slice::from_ref(&first), &RouterPorts::default())).await;

    let (direct_p50, direct_p99) = latency(stable.ip, requests).await;
    let (router_p50, router_p99) = latency(router.ip, requests).await;
    let (direct_rps, direct_failed) = throughput(stable.ip, seconds).await;
    let (router_rps, router_failed) = throughput(router.ip, seconds).await;
    let (flip_median, flip_worst) = weight_to_effect(&router, &stable, &canary, 20).await;

    println!("router bench ({requests} sequential keep-alive requests per side; 64 clients for {seconds} s)");
    println!("| | direct to the instance | through the router | router adds / ratio |");
    println!("|---|---|---|---|");
    println!(
        "| latency p50 | {} | {} | +{} |",
        ms(direct_p50),
        ms(router_p50),
        ms(router_p50.saturating_sub(direct_p50))
    );
    println!(
        "| latency p99 | {} | {} | +{} |",
        ms(direct_p99),
        ms(router_p99),
        ms(router_p99.saturating_sub(direct_p99))
    );
    println!(
        "| requests/s (64 clients) | {direct_rps:.0} ({direct_failed} failed) | {router_rps:.0} ({router_failed} failed) | {:.2} × |",
        router_rps / direct_rps.max(1.0)
    );
    println!(
        "| weight command → first request on the new split | | median {} / worst {} | |",
        ms(flip_median),
        ms(flip_worst)
    );
}
