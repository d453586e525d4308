//! Built-in analysis against real echo-plugin containers: scrape `/metrics` at both ends
//! of a window, compute error rate and p99, judge them. Needs Docker; fails (never skips)
//! without it.

use plugsync_test_support::analysis as support;

use plugsync::analysis::builtin::{scrape, Window};
use plugsync::analysis::{evaluate, summary, AnalysisError, Verdict, DEFAULT_MIN_SAMPLES};
use plugsync::model::policy::Thresholds;
use plugsync::model::Rate;
use plugsync::plan::Slot;
use std::time::Instant;
use support::{docker, prepare, send, Echo};

const PORT: u16 = 8080;
const METRICS: &str = "/metrics";

fn max_error_rate(pct: f64) -> Thresholds {
    Thresholds { max_error_rate: Rate::parse_percent(&format!("{pct}%")).ok(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_measures_error_rate_and_latency_of_real_containers() {
    let t0 = Instant::now();
    let docker = docker().await;
    prepare(&docker).await;
    let (failing, slow) = tokio::join!(
        Echo::start(&docker, "failing", &["ERROR_RATE=0.3"]),
        Echo::start(&docker, "slow", &["LATENCY_MS=50"]),
    );
    let client = plugsync::tls::http_client();
    let canary = failing.instance("echo", Slot::Canary);
    let stable = slow.instance("echo", Slot::Stable);

    // The health checks that waited for the containers are not application traffic.
    let before = scrape(&client, &canary, PORT, METRICS).await.expect("scrape the failing instance");
    assert_eq!(before.requests, 0.0, "health and metrics traffic must not count: {before:?}");

    let w_fail = Window::start(&client, &[&canary], PORT, METRICS).await;
    let w_slow = Window::start(&client, &[&stable], PORT, METRICS).await;
    let (codes_fail, codes_slow) = tokio::join!(send(&client, failing.ip, 200, 10), send(&client, slow.ip, 200, 10));
    let m_fail = w_fail.finish(&client, &[&canary]).await;
    let m_slow = w_slow.finish(&client, &[&stable]).await;
    eprintln!("failing: {codes_fail:?} → {m_fail:?}\n  {}", summary(&m_fail));
    eprintln!("slow: {codes_slow:?} → {m_slow:?}\n  {}", summary(&m_slow));

    // Error rate from the plugin's own counters: the echo spreads failures evenly, 30 %.
    assert_eq!(m_fail.requests, 200.0, "{m_fail:?}");
    assert_eq!(
        m_fail.errors,
        codes_fail.get(&500).copied().unwrap_or(0) as f64,
        "counters agree with what the client saw"
    );
    let err = m_fail.error_rate.expect("error rate");
    assert!((err - 30.0).abs() <= 5.0, "error rate {err} not ≈ 30 %");
    assert_eq!(m_fail.scrape_failures, 0);
    assert!(m_fail.throughput.is_some_and(|t| t > 0.0));
    match evaluate(&m_fail, &max_error_rate(1.0), DEFAULT_MIN_SAMPLES) {
        Verdict::Fail { reason } => {
            assert!(reason.starts_with("error rate ") && reason.ends_with(" % > 1 %"), "{reason}");
        }
        other => panic!("30 % errors against maxErrorRate 1 must fail: {other}"),
    }

    // Latency from the histogram: every request sleeps 50 ms.
    assert_eq!(m_slow.requests, 200.0, "{m_slow:?}");
    assert_eq!(m_slow.error_rate, Some(0.0));
    let p99 = m_slow.p99_ms.expect("p99");
    assert!(p99 >= 50.0, "p99 {p99} ms < 50 ms");
    assert!(evaluate(&m_slow, &max_error_rate(1.0), DEFAULT_MIN_SAMPLES).is_pass());
    let tight = Thresholds { max_latency_p99_ms: Some(20.0), ..Default::default() };
    match evaluate(&m_slow, &tight, DEFAULT_MIN_SAMPLES) {
        Verdict::Fail { reason } => {
            assert!(reason.starts_with("p99 latency ") && reason.ends_with("ms > 20 ms"), "{reason}")
        }
        other => panic!("p99 {p99} against 20 ms must fail: {other}"),
    }
    let s = summary(&m_slow);
    assert!(s.starts_with("error rate 0%, p99 ") && s.ends_with(" req/s"), "{s}");

    // A window without traffic is inconclusive, never a pass.
    let quiet = Window::start(&client, &[&stable], PORT, METRICS).await;
    let m_quiet = quiet.finish(&client, &[&stable]).await;
    assert_eq!(m_quiet.requests, 0.0);
    match evaluate(&m_quiet, &Thresholds::default(), DEFAULT_MIN_SAMPLES) {
        Verdict::Inconclusive { reason } => {
            assert!(reason.starts_with("only 0 requests in "), "{reason}")
        }
        other => panic!("no traffic must be inconclusive: {other}"),
    }
    eprintln!("test took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_survives_restarts_and_scrape_failures() {
    let docker = docker().await;
    prepare(&docker).await;
    let mut echo = Echo::start(&docker, "restarting", &["ERROR_RATE=0.5"]).await;
    let client = plugsync::tls::http_client();
    let instance = echo.instance("echo", Slot::Canary);
    let mut unreachable = echo.instance("echo", Slot::Canary);
    unreachable.id = "no-address".into();
    unreachable.name = "analysis-test-no-address".into();
    unreachable.address = None;

    let err = scrape(&client, &unreachable, PORT, METRICS).await.unwrap_err();
    assert_eq!(err, AnalysisError::NoAddress { instance: "analysis-test-no-address".into() });
    // Nothing listens on port 9 of the container: a connection error naming the URL.
    let refused = scrape(&client, &instance, 9, METRICS).await.unwrap_err();
    let text = refused.to_string();
    assert!(text.contains(&format!("http://{}:9/metrics", echo.ip)) && text.contains(&echo.name), "{text}");
    // /health answers 200 with JSON: not metrics.
    let not_metrics = scrape(&client, &instance, PORT, "/health").await.unwrap_err();
    assert!(matches!(not_metrics, AnalysisError::NotMetrics { .. }), "{not_metrics}");

    // Traffic before the window does not count.
    send(&client, echo.ip, 100, 10).await;
    let window = Window::start(&client, &[&instance, &unreachable], PORT, METRICS).await;
    send(&client, echo.ip, 20, 10).await;
    // The restart resets the plugin's counters (140 → 0): the window then counts what came
    // after; the 20 requests the old process served in the window are lost.
    echo.restart(&docker).await;
    let instance = echo.instance("echo", Slot::Canary);
    send(&client, echo.ip, 40, 10).await;
    let m = window.finish(&client, &[&instance, &unreachable]).await;
    eprintln!("{m:?}\n  {}", summary(&m));
    assert_eq!(m.requests, 40.0, "after a reset only the new counters count: {m:?}");
    assert_eq!(m.error_rate, Some(50.0));
    assert_eq!(m.scrape_failures, 1, "the instance without address");
    assert!(summary(&m).ends_with(", 1 scrape failed"), "{}", summary(&m));
}
