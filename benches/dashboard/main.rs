//! What the dashboard costs the daemon:
//!
//! 1. the fleet page for 1,000 plugins (budget: 50 ms), rendered from the loaded fleet, the
//!    status document and the event bus's rollouts, and served over HTTP by the in-process
//!    server; a plugin page of the same fleet;
//! 2. a reconcile pass with 0 and with 100 SSE clients connected to the in-process server
//!    (`/api/v1/events`): each pass is a real pass on the Docker engine (5 plugins, nothing to
//!    change) followed by what the daemon publishes after a pass (the status document of the
//!    1,000-plugin fleet, and progress of 20 rollouts), passes back to back (so the clients'
//!    share of the two cores is felt) and 1 s apart (BENCH_SPACING_MS, like a daemon's
//!    passes); and how soon every client has each status document.
//!
//!     cargo bench --bench dashboard
//!
//! Needs Docker for part 2. BENCH_PLUGINS (1000), BENCH_PASSES (20), BENCH_CLIENTS (100).
//! Exits 1 when the fleet page's median exceeds 50 ms.

mod synthetic;

use plugsync::events::EventBus;
use plugsync::metrics::Metrics;
use plugsync::plan::DesiredHealth;
use plugsync::reconcile::Reconciler;
use plugsync::server::dashboard::{fleet_html, plugin_html, View};
use plugsync::server::{router, ServerState};
use plugsync_test_support::docker::{self as common, PluginDef, TestFleet, V1};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, RwLock};

const BUDGET: Duration = Duration::from_millis(50);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// (median, p95, max) of `times`.
fn stats(times: &mut [Duration]) -> (Duration, Duration, Duration) {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.95), at(1.0))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn state(fleet: &plugsync::model::Loaded, doc: serde_json::Value, events: Arc<EventBus>) -> ServerState {
    let (commands, _) = mpsc::channel(8);
    ServerState {
        branch: "main".into(),
        webhook_secret: None,
        api_token: Some("bench".into()),
        trigger: Arc::new(Notify::new()),
        commands,
        status: Arc::new(RwLock::new(doc)),
        metrics: Arc::new(Metrics::new()),
        leading: None,
        events,
        fleet: Arc::new(RwLock::new(Some(Arc::new(fleet.clone())))),
        history: Default::default(),
    }
}

async fn serve(state: ServerState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    base
}

/// Part 1: the pages, rendered and served. Returns the fleet page's median.
async fn pages(n: usize) -> Duration {
    let loaded = synthetic::fleet(n);
    let doc = synthetic::status_doc(n, "2026-12-04T12:00:00Z");
    let rollouts = synthetic::rollouts(n, now_ms());
    let mut times = Vec::new();
    let mut bytes = 0;
    for i in 0..33 {
        let t = Instant::now();
        let view = View::new(Some(&loaded.fleet), &doc, rollouts.clone(), chrono::Utc::now());
        let html = fleet_html(&view);
        if i >= 3 {
            times.push(t.elapsed());
        }
        bytes = html.len();
    }
    let (render_median, p95, max) = stats(&mut times);
    println!(
        "MEASURED fleet page, {n} plugins ({} rollouts in flight), rendered: median {}, p95 {}, max {} ({} KiB of HTML)",
        rollouts.len(),
        ms(render_median),
        ms(p95),
        ms(max),
        bytes / 1024
    );
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let view = View::new(Some(&loaded.fleet), &doc, rollouts.clone(), chrono::Utc::now());
        let _ = plugin_html(&view, &synthetic::id(n / 2));
        times.push(t.elapsed());
    }
    let (median, _, max) = stats(&mut times);
    println!("MEASURED plugin page in that fleet, rendered: median {}, max {}", ms(median), ms(max));

    let events = Arc::new(EventBus::default());
    for live in rollouts.into_values() {
        events.rollout(live);
    }
    let base = serve(state(&loaded, doc, events)).await;
    let client = plugsync::tls::http_client();
    let mut times = Vec::new();
    for i in 0..23 {
        let t = Instant::now();
        let response = client.get(format!("{base}/")).send().await.expect("GET /");
        assert!(response.status().is_success(), "GET / answered {}", response.status());
        let _ = response.bytes().await.expect("body");
        if i >= 3 {
            times.push(t.elapsed());
        }
    }
    let (median, p95, max) = stats(&mut times);
    println!(
        "MEASURED GET / over HTTP (in-process server): median {}, p95 {}, max {}",
        ms(median),
        ms(p95),
        max.as_millis()
    );
    render_median.max(median)
}

/// Counts of what one SSE client received: status documents by pass, with when.
type Seen = Arc<Mutex<Vec<(usize, Instant)>>>;

/// `count` clients on their own runtime (a thread of their own, like browsers elsewhere),
/// each reading `/api/v1/events` and noting when each status document arrives.
fn clients(base: &str, count: usize, seen: Seen) -> (tokio::runtime::Runtime, Arc<std::sync::atomic::AtomicUsize>) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..count {
        let (url, seen, connected) = (format!("{base}/api/v1/events"), seen.clone(), connected.clone());
        rt.spawn(async move {
            let client = plugsync::tls::builder().build().expect("client");
            let Ok(mut response) = client.get(url).send().await else { return };
            connected.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Bytes of the event being read; only its head is decoded (cheap, as a browser's
            // parse would be elsewhere: the clients must not be what the bench measures).
            let mut buffer: Vec<u8> = Vec::new();
            let mut scanned = 0;
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer[scanned..].windows(2).position(|w| w == b"\n\n").map(|p| p + scanned) {
                    let head = String::from_utf8_lossy(&buffer[..end.min(400)]).into_owned();
                    buffer.drain(..end + 2);
                    scanned = 0;
                    if let Some(pass) = status_pass(&head) {
                        if let Ok(mut s) = seen.lock() {
                            s.push((pass, Instant::now()));
                        }
                    }
                }
                scanned = buffer.len().saturating_sub(1);
            }
        });
    }
    (rt, connected)
}

/// The pass number of a status event (`"at":"pass-N"` near the start of its data).
fn status_pass(event: &str) -> Option<usize> {
    if !event.starts_with("event: status") && !event.contains("\nevent: status") {
        return None;
    }
    let at = event.split("\"at\":\"pass-").nth(1)?;
    at.split('"').next()?.parse().ok()
}

/// How the passes of part 2 follow each other: back to back, or `spacing` apart.
struct Round {
    count: usize,
    passes: usize,
    spacing: Duration,
    first: usize,
}

/// Part 2: passes with `count` clients connected; (median, p95, max) pass and delivery stats.
async fn passes(
    round: Round,
    base: &str,
    bus: &Arc<EventBus>,
    rig: &(TestFleet, plugsync::backend::docker::DockerBackend, plugsync::source::LocalFleet),
    n: usize,
) -> String {
    let Round { count, passes, spacing, first } = round;
    let seen: Seen = Arc::default();
    let (client_rt, connected) = clients(base, count, seen.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected.load(std::sync::atomic::Ordering::SeqCst) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, backend, local) = rig;
    let mut times = Vec::new();
    let mut published = BTreeMap::new();
    for k in first..first + passes {
        let doc = synthetic::status_doc(n, &format!("pass-{k}"));
        let t = Instant::now();
        let narrate = |line: &str| bus.log(line);
        let report = Reconciler::new(backend, &local.loaded.fleet, &local.revision, &narrate)
            .run(DesiredHealth::Complete)
            .await
            .expect("reconcile pass");
        assert!(report.succeeded(), "a no-op pass failed: {:?}", report.results);
        // What the daemon publishes after a pass.
        published.insert(k, Instant::now());
        bus.status(doc);
        for i in 0..20 {
            bus.rollout(synthetic::rollout(i * 10, now_ms() + k as u64));
        }
        times.push(t.elapsed());
        tokio::time::sleep(spacing).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (median, p95, max) = stats(&mut times);
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let mut delays: Vec<Duration> =
        seen.iter().filter_map(|(k, at)| Some(at.saturating_duration_since(*published.get(k)?))).collect();
    let delivered = delays.len();
    let delivery = if delays.is_empty() {
        "no status document delivered (no client)".to_string()
    } else {
        let (d50, d95, dmax) = stats(&mut delays);
        format!(
            "{delivered} of {} status documents delivered; publish → client median {}, p95 {}, max {}",
            passes * count,
            ms(d50),
            ms(d95),
            ms(dmax)
        )
    };
    client_rt.shutdown_background();
    let pace = if spacing.is_zero() { "back to back".to_string() } else { format!("{} apart", ms(spacing)) };
    format!(
        "MEASURED reconcile pass ({pace}) with {count:>3} SSE clients (subscribers {}): median {}, p95 {}, max {}; {delivery}",
        bus.subscribers(),
        ms(median),
        ms(p95),
        ms(max)
    )
}

async fn sse_clients(n: usize) {
    let (count, rounds) = (env_or("BENCH_CLIENTS", 100), env_or("BENCH_PASSES", 20));
    let docker = common::docker().await;
    common::ensure_echo_images(&docker).await;
    let fleet = TestFleet::new("dashbench").await;
    for i in 0..5 {
        fleet.plugin(&PluginDef::new(&format!("p{i}"), V1));
    }
    let backend = fleet.backend().await;
    let report = fleet.reconcile(&backend).await;
    assert!(report.succeeded(), "the bench fleet did not converge: {:?}", report.results);
    let local = fleet.load();
    let loaded = synthetic::fleet(n);
    let bus = Arc::new(EventBus::default());
    let base = serve(state(&loaded, synthetic::status_doc(n, "pass-0"), bus.clone())).await;
    let rig = (fleet, backend, local);
    let spacing = Duration::from_millis(env_or("BENCH_SPACING_MS", 1000) as u64);
    // A warm-up, then 0 and `count` clients, then 0 again (the machine may drift); back to
    // back (the worst case: the clients' share of the two cores is felt by the next pass),
    // then spaced like a daemon's passes.
    let round = |count, passes, spacing, first| Round { count, passes, spacing, first };
    let _ = passes(round(0, 3, Duration::ZERO, 1000), &base, &bus, &rig, n).await;
    for (pace, base_pass) in [(Duration::ZERO, 0), (spacing, 300)] {
        let without = passes(round(0, rounds, pace, base_pass), &base, &bus, &rig, n).await;
        let with = passes(round(count, rounds, pace, base_pass + 100), &base, &bus, &rig, n).await;
        let again = passes(round(0, rounds, pace, base_pass + 200), &base, &bus, &rig, n).await;
        println!("{without}\n{with}\n{again}");
    }
}

fn main() {
    let n = env_or("BENCH_PLUGINS", 1000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let median = rt.block_on(pages(n));
    rt.block_on(sse_clients(n));
    if median > BUDGET {
        println!("OVER BUDGET: the fleet page for {n} plugins took {} (median), more than {}", ms(median), ms(BUDGET));
        std::process::exit(1);
    }
    println!("fleet page within its {} budget", ms(BUDGET));
}
