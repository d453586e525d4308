//! The Prometheus provider against a real Prometheus server (Debian's `prometheus`
//! package, `/usr/bin/prometheus`) scraping a real echo-plugin container. Needs Docker
//! and the package; fails (never skips) without either.

use plugsync_test_support::analysis as support;

use plugsync::analysis::{evaluate, summary, AnalysisError, PrometheusProvider, Verdict, DEFAULT_MIN_SAMPLES};
use plugsync::model::policy::Thresholds;
use plugsync::model::Rate;
use plugsync::plan::Slot;
use plugsync_test_support::servers::{self, Server};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{docker, prepare, Echo};

const ERROR_RATE_QUERY: &str =
    r#"sum(rate(http_requests_total{code=~"5.."}[30s])) / sum(rate(http_requests_total[30s]))"#;

/// Prometheus scraping `target` every second, with `labels` on the target.
async fn start_prometheus(target: &str, labels: &[(&str, &str)]) -> Server {
    let labels: String = labels.iter().map(|(k, v)| format!("          {k}: \"{v}\"\n")).collect();
    let target = target.to_string();
    servers::prometheus(move |_| {
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: echo\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: [\"{target}\"]\n        labels:\n{labels}"
        )
    })
    .await
}

/// Sends GET / to the echo at a steady pace until stopped (bounded to 90 s).
fn traffic(ip: std::net::IpAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let client = plugsync::tls::http_client();
        let url = format!("http://{ip}:8080/");
        let until = Instant::now() + Duration::from_secs(90);
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            let batch =
                futures_util::future::join_all((0..5).map(|_| client.get(&url).timeout(Duration::from_secs(5)).send()))
                    .await;
            sent += batch.iter().filter(|r| r.is_ok()).count();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_reads_error_rate_from_a_real_prometheus() {
    let t0 = Instant::now();
    let docker = docker().await;
    prepare(&docker).await;
    let echo = Echo::start(&docker, "prom-target", &["ERROR_RATE=0.3"]).await;
    let prometheus = start_prometheus(&format!("{}:8080", echo.ip), &[("plugin", "crm"), ("slot", "canary")]).await;
    let started = t0.elapsed();
    let client = plugsync::tls::http_client();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic(echo.ip, stop.clone());

    // Wait until Prometheus has scraped enough of the traffic for rate() over 30 s.
    let provider = PrometheusProvider::new(
        prometheus.url.clone(),
        BTreeMap::from([
            ("errorRate".to_string(), ERROR_RATE_QUERY.to_string()),
            (
                "appRequests".to_string(),
                r#"sum(increase(http_requests_total{plugin="{{plugin}}",slot="{{slot}}",path="root"}[30s]))"#
                    .to_string(),
            ),
        ]),
    );
    let vars = BTreeMap::from([
        ("plugin", "crm".to_string()),
        ("slot", "canary".to_string()),
        ("version", "1.0.0".to_string()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = provider.query(&client, "appRequests", &vars).await.expect("query appRequests");
        if seen.is_some_and(|n| n >= 150.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not see the traffic within 60 s (last: {seen:?}); log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let waited = t0.elapsed();

    let error_rate = provider.query(&client, "errorRate", &vars).await.expect("query errorRate").expect("a value");
    eprintln!("errorRate from Prometheus: {error_rate}");
    assert!((error_rate - 0.30).abs() <= 0.05, "error rate {error_rate} not ≈ 0.30");

    // The slot's metrics through the named queries, with placeholders.
    let filter = r#"plugin="{{plugin}}",slot="{{slot}}",path!~"health|metrics""#;
    let slot_provider = PrometheusProvider::new(
        prometheus.url.clone(),
        BTreeMap::from([
            (
                "errorRate".to_string(),
                format!(r#"sum(rate(http_requests_total{{{filter},code=~"5.."}}[30s])) / sum(rate(http_requests_total{{{filter}}}[30s]))"#),
            ),
            (
                "latency".to_string(),
                r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{plugin="{{plugin}}",slot="{{slot}}"}[30s]))) * 1000"#.to_string(),
            ),
            ("throughput".to_string(), format!("sum(rate(http_requests_total{{{filter}}}[30s]))")),
            ("requests".to_string(), format!("sum(increase(http_requests_total{{{filter}}}[30s]))")),
        ]),
    );
    let m = slot_provider.slot_metrics(&client, "crm", Slot::Canary, "1.0.0").await.expect("slot metrics");
    eprintln!("{m:?}\n  {}", summary(&m));
    let e = m.error_rate.expect("error rate");
    assert!((e - 30.0).abs() <= 5.0, "slot error rate {e}");
    assert!((m.success_rate.unwrap() - (100.0 - e)).abs() < 1e-9);
    assert!(m.requests_counted && m.requests >= 100.0, "{m:?}");
    assert!(m.throughput.is_some_and(|t| t > 1.0), "{m:?}");
    assert!(m.p99_ms.is_some_and(|p| p > 0.0 && p <= 5.0), "echo answers within 5 ms: {m:?}");
    match evaluate(
        &m,
        &Thresholds { max_error_rate: Rate::from_fraction(0.01).ok(), ..Default::default() },
        DEFAULT_MIN_SAMPLES,
    ) {
        Verdict::Fail { reason } => assert!(reason.starts_with("error rate "), "{reason}"),
        other => panic!("must fail: {other}"),
    }
    // Another slot has no series: no value, not zero.
    let other = slot_provider.slot_metrics(&client, "crm", Slot::Stable, "1.0.0").await.expect("stable metrics");
    assert_eq!((other.error_rate, other.p99_ms, other.throughput), (None, None, None), "{other:?}");
    assert!(matches!(evaluate(&other, &Thresholds::default(), DEFAULT_MIN_SAMPLES), Verdict::Inconclusive { .. }));

    stop.store(true, Ordering::Relaxed);
    let sent = sender.await.expect("traffic task");
    eprintln!("sent {sent} requests");

    // Errors name the server and the query.
    let bad = PrometheusProvider::new(
        prometheus.url.clone(),
        BTreeMap::from([("broken".to_string(), "sum(rate(".to_string())]),
    );
    let err = bad.query(&client, "broken", &vars).await.unwrap_err();
    assert!(matches!(err, AnalysisError::PrometheusQuery { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&prometheus.url) && text.contains("sum(rate(") && text.contains("bad_data"), "{text}");
    let unknown = bad.query(&client, "latency", &vars).await.unwrap_err();
    assert_eq!(unknown.to_string(), "no Prometheus query named `latency` is configured (known: broken)");
    let down = PrometheusProvider::new(
        format!("http://127.0.0.1:{}", plugsync_test_support::daemon::free_port()),
        BTreeMap::from([("x".to_string(), "up".to_string())]),
    );
    let err = down.query(&client, "x", &vars).await.unwrap_err();
    assert!(matches!(err, AnalysisError::PrometheusRequest { .. }), "{err}");

    drop(prometheus);
    eprintln!(
        "timings: echo + prometheus ready after {started:?}, traffic visible after {waited:?}, whole test {:?}",
        t0.elapsed()
    );
}
