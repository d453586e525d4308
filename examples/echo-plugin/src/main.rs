//! echo-plugin: a tiny HTTP plugin used to exercise plugsync end to end.
//!
//! Dependency-free (std only) so it links statically and runs `FROM scratch`.
//! Behaviour is driven by environment variables; see `Config::from_env`.

mod http;
mod metrics;
mod wget;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{json_str, read_request, write_response, ReadError};
use metrics::Metrics;

/// Connections served at once; beyond this new connections get a 503 and are closed.
const MAX_CONNECTIONS: usize = 1024;
/// Idle time after which a keep-alive connection is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Cap for one `/alloc?mb=N` call.
const MAX_ALLOC_MB: usize = 64 * 1024;

struct Config {
    port: u16,
    version: String,
    plugin_id: String,
    ready_delay: Duration,
    never_ready: bool,
    no_metrics: bool,
    error_rate: f64,
    latency: Duration,
    alloc_mb_at_start: usize,
    /// `PLUGIN_CONFIG` as given (raw JSON), if set and non-empty.
    config: Option<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse() {
            Ok(parsed) => parsed,
            Err(_) => {
                eprintln!("echo-plugin: ignoring unparsable {name}={v:?}, using default");
                default
            }
        },
        _ => default,
    }
}

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

impl Config {
    fn from_env() -> Self {
        let never_ready =
            matches!(std::env::var("NEVER_READY").as_deref().map(str::trim), Ok("1" | "true" | "TRUE" | "yes"));
        let error_rate: f64 = env_or("ERROR_RATE", 0.0);
        let no_metrics = matches!(std::env::var("NO_METRICS").as_deref().map(str::trim), Ok("1" | "true" | "yes"));
        Config {
            port: env_or("PORT", 8080),
            version: env_str("ECHO_VERSION", "0.0.0"),
            plugin_id: env_str("PLUGIN_ID", "echo"),
            ready_delay: Duration::from_millis(env_or("READY_DELAY_MS", 0)),
            never_ready,
            no_metrics,
            error_rate: if error_rate.is_finite() { error_rate.clamp(0.0, 1.0) } else { 0.0 },
            latency: Duration::from_millis(env_or("LATENCY_MS", 0)),
            alloc_mb_at_start: env_or::<usize>("ALLOC_MB_AT_START", 0).min(MAX_ALLOC_MB),
            config: std::env::var("PLUGIN_CONFIG").ok().filter(|c| !c.trim().is_empty()),
        }
    }
}

struct State {
    cfg: Config,
    started: Instant,
    hostname: String,
    metrics: Metrics,
    /// Application requests seen, drives the error-rate decision.
    app_requests: AtomicU64,
    /// Random phase so that several instances do not fail in lock-step.
    error_phase: f64,
    active: AtomicUsize,
    /// Memory deliberately held (ALLOC_MB_AT_START and /alloc).
    hoard: Mutex<Vec<Vec<u8>>>,
}

impl State {
    fn ready(&self) -> bool {
        !self.cfg.never_ready && self.started.elapsed() >= self.cfg.ready_delay
    }

    /// Spreads errors evenly: request n fails when floor((n+φ+1)·r) > floor((n+φ)·r),
    /// so over any N consecutive requests the failures are N·r rounded either way.
    fn should_fail(&self) -> bool {
        let rate = self.cfg.error_rate;
        if rate <= 0.0 {
            return false;
        }
        let n = self.app_requests.fetch_add(1, Ordering::Relaxed) as f64 + self.error_phase;
        ((n + 1.0) * rate).floor() > (n * rate).floor()
    }

    fn hoard_mb(&self, mb: usize) -> usize {
        // Filling with a non-zero byte touches every page, so the memory is really resident.
        let block = vec![0xA5u8; mb * 1024 * 1024];
        let mut hoard = self.hoard.lock().unwrap_or_else(|p| p.into_inner());
        hoard.push(block);
        hoard.iter().map(|b| b.len()).sum::<usize>() / (1024 * 1024)
    }
}

extern "C" {
    fn signal(sig: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(code: i32) -> !;
}

extern "C" fn on_signal(_sig: i32) {
    // Async-signal-safe: no allocation, no locks.
    unsafe { _exit(0) }
}

fn hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.trim().is_empty() {
            return h.trim().to_string();
        }
    }
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(h) = std::fs::read_to_string(path) {
            if !h.trim().is_empty() {
                return h.trim().to_string();
            }
        }
    }
    "unknown".to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "wget") {
        std::process::exit(wget::run(&args[1..]));
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    unsafe {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
    }

    let cfg = Config::from_env();
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let state = Arc::new(State {
        started: Instant::now(),
        hostname: hostname(),
        metrics: Metrics::new(),
        app_requests: AtomicU64::new(0),
        error_phase: (seed % 1_000_000) as f64 / 1_000_000.0 * 1000.0,
        active: AtomicUsize::new(0),
        hoard: Mutex::new(Vec::new()),
        cfg,
    });
    if state.cfg.alloc_mb_at_start > 0 {
        state.hoard_mb(state.cfg.alloc_mb_at_start);
    }

    let listener = match TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, state.cfg.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-plugin: cannot bind 0.0.0.0:{}: {e}", state.cfg.port);
            std::process::exit(1);
        }
    };
    let c = &state.cfg;
    eprintln!(
        "echo-plugin: plugin={} version={} listening on 0.0.0.0:{} host={} ready_delay_ms={} never_ready={} error_rate={} latency_ms={} alloc_mb_at_start={}",
        c.plugin_id, c.version, c.port, state.hostname, c.ready_delay.as_millis(), c.never_ready,
        c.error_rate, c.latency.as_millis(), c.alloc_mb_at_start,
    );

    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        if state.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            state.active.fetch_sub(1, Ordering::SeqCst);
            let mut s = stream;
            let _ = write_response(&mut s, 503, "application/json", "{\"error\":\"busy\"}", false, false);
            continue;
        }
        let st = Arc::clone(&state);
        let spawned = std::thread::Builder::new().stack_size(256 * 1024).spawn(move || {
            serve(&st, stream);
            st.active.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            state.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve(state: &State, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let req = match read_request(&mut stream, &mut buf) {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(e) => {
                let (code, msg) = match e {
                    ReadError::HeadTooLarge => (431, "request head too large"),
                    ReadError::BodyTooLarge => (413, "request body too large or chunked"),
                    _ => (400, "malformed request"),
                };
                state.metrics.count_request(code, "invalid");
                let body = format!("{{\"error\":{}}}", json_str(msg));
                let _ = write_response(&mut stream, code, "application/json", &body, false, false);
                return;
            }
        };
        let (code, ctype, body) = handle(state, &req);
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        if write_response(&mut stream, code, ctype, &body, req.keep_alive, head_only).is_err() || !req.keep_alive {
            let _ = stream.flush();
            return;
        }
    }
}

fn handle(state: &State, req: &http::Request) -> (u16, &'static str, String) {
    const JSON: &str = "application/json";
    let cfg = &state.cfg;
    let (code, ctype, body, class) = match req.path.as_str() {
        "/health/live" => (200, JSON, "{\"status\":\"live\"}".to_string(), "health"),
        "/health/ready" => {
            if state.ready() {
                (200, JSON, "{\"status\":\"ready\"}".to_string(), "health")
            } else {
                (503, JSON, "{\"status\":\"not-ready\"}".to_string(), "health")
            }
        }
        "/health" => {
            let status = if state.ready() { "ok" } else { "starting" };
            let body = format!("{{\"status\":\"{status}\",\"version\":{}}}", json_str(&cfg.version));
            (200, JSON, body, "health")
        }
        // NO_METRICS=1: a plugin that exposes nothing (the router measures it).
        "/metrics" if cfg.no_metrics => (404, JSON, "{\"error\":\"no metrics here\"}".into(), "invalid"),
        "/metrics" => {
            let body = state.metrics.render(&cfg.plugin_id, &cfg.version, state.ready());
            (200, "text/plain; version=0.0.4; charset=utf-8", body, "metrics")
        }
        "/alloc" => {
            let mb = http::query_param(&req.query, "mb").and_then(|v| v.parse::<usize>().ok());
            match mb {
                Some(mb) if mb <= MAX_ALLOC_MB => {
                    let total = state.hoard_mb(mb);
                    (200, JSON, format!("{{\"allocated_mb\":{mb},\"total_mb\":{total}}}"), "alloc")
                }
                _ => {
                    let msg = format!("{{\"error\":\"mb must be an integer 0..={MAX_ALLOC_MB}\"}}");
                    (400, JSON, msg, "alloc")
                }
            }
        }
        path => {
            let class = if path == "/" { "root" } else { "other" };
            let t0 = Instant::now();
            if !cfg.latency.is_zero() {
                std::thread::sleep(cfg.latency);
            }
            let result = if state.should_fail() {
                let body = format!(
                    "{{\"error\":\"injected failure\",\"plugin\":{},\"version\":{}}}",
                    json_str(&cfg.plugin_id),
                    json_str(&cfg.version)
                );
                (500, JSON, body, class)
            } else {
                let body = format!(
                    "{{\"plugin\":{},\"version\":{},\"hostname\":{},\"path\":{},\"config\":{}}}",
                    json_str(&cfg.plugin_id),
                    json_str(&cfg.version),
                    json_str(&state.hostname),
                    json_str(path),
                    cfg.config.as_deref().unwrap_or("null"),
                );
                (200, JSON, body, class)
            };
            state.metrics.observe(t0.elapsed());
            result
        }
    };
    state.metrics.count_request(code, class);
    (code, ctype, body)
}
