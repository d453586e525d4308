//! A canary judged by a real Prometheus (Debian's `prometheus` package) instead of the
//! built-in scraping: the test starts Prometheus on loopback with a `file_sd` target file it
//! rewrites every 500 ms from `observe` (every running instance's address, labelled with
//! `plugin`, `slot` and `version`), Prometheus scrapes the echo containers every second, and
//! the policy's PromQL (`{{plugin}}`, `{{slot}}` placeholders) gives the error rate. A canary
//! answering 30 % errors must be rolled back by that verdict.
//!
//! Needs Docker and /usr/bin/prometheus; fails (never skips) without either.

use plugsync_test_support::docker as common;
use plugsync_test_support::progressive as common_progressive;

use common::{PluginDef, V1, V2};
use common_progressive::*;
use plugsync::backend::docker::DockerBackend;
use plugsync::backend::Backend;
use plugsync::plan::Slot;
use plugsync::reconcile::Ending;
use plugsync_test_support::servers::{self, Server};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prometheus scraping the targets of `targets.json` in its directory (rewritten by the test),
/// logging every query it answers.
async fn start_prometheus() -> Server {
    servers::prometheus(|dir| {
        std::fs::write(dir.join("targets.json"), "[]").expect("write targets.json");
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  query_log_file: {}\n\
             scrape_configs:\n  - job_name: echo\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    \
             file_sd_configs:\n      - files: [\"{}\"]\n        refresh_interval: 1s\n",
            dir.join("queries.log").display(),
            dir.join("targets.json").display()
        )
    })
    .await
}

/// The PromQL of every query Prometheus answered (its query log).
fn queries(prometheus: &Server) -> Vec<String> {
    let text = std::fs::read_to_string(prometheus.path("queries.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["params"]["query"].as_str().map(str::to_string))
        .collect()
}

/// Rewrites Prometheus' file_sd targets from `observe` every 500 ms until `stop`.
fn keep_targets_current(
    network: String,
    fleet: String,
    file: PathBuf,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let backend = DockerBackend::connect(None, network).await.expect("connect to Docker");
        let mut last = String::new();
        while !stop.load(Ordering::SeqCst) {
            if let Ok(observed) = backend.observe(&fleet, None).await {
                let groups: Vec<serde_json::Value> = observed
                    .instances
                    .iter()
                    .filter(|i| i.is_running())
                    .filter_map(|i| {
                        let ip = i.address?;
                        Some(serde_json::json!({
                            "targets": [format!("{ip}:8080")],
                            "labels": {"plugin": i.plugin, "slot": i.slot.as_str(), "version": i.version, "container": i.name},
                        }))
                    })
                    .collect();
                let text = serde_json::to_string_pretty(&groups).expect("json");
                if text != last {
                    let tmp = file.with_extension("tmp");
                    std::fs::write(&tmp, &text).expect("write targets");
                    std::fs::rename(&tmp, &file).expect("rename targets");
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// 8. The Prometheus provider's verdict rolls back a canary answering 30 % errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_verdict_rolls_back_a_bad_canary() {
    let t0 = Instant::now();
    let prometheus = start_prometheus().await;
    let sel = r#"plugin="{{plugin}}",slot="{{slot}}",path="root""#;
    let error_rate = format!(
        r#"sum(rate(http_requests_total{{{sel},code=~"5.."}}[5s])) / sum(rate(http_requests_total{{{sel}}}[5s]))"#
    );
    let requests = format!(r#"sum(increase(http_requests_total{{{sel}}}[10s]))"#);
    let policy = format!(
        "{{strategy: Canary, canaryConfig: {{steps: [25, 50, 100], evaluationPeriod: 4s, autoRollback: true, maxSurge: 2, \
         thresholds: {{maxErrorRate: 0.05}}}}, analysis: {{builtin: false, minSamples: 10, prometheus: {{url: '{}', \
         queries: {{errorRate: '{error_rate}', requests: '{requests}'}}}}}}}}",
        prometheus.url
    );
    let web = PluginDef::new("web", V1).rollout(&policy);
    let (docker, fleet, backend, client) = setup("ppcanary", &web).await;
    let stop = Arc::new(AtomicBool::new(false));
    let targets =
        keep_targets_current(fleet.network.clone(), fleet.name.clone(), prometheus.path("targets.json"), stop.clone());
    // Prometheus scrapes the stable instance before the rollout starts.
    let client_http = plugsync::tls::http_client();
    let provider = plugsync::analysis::PrometheusProvider::new(prometheus.url.clone(), Default::default());
    let deadline = Instant::now() + Duration::from_secs(20);
    let up = loop {
        if let Ok(Some(_)) = provider.instant(&client_http, r#"up{plugin="web",slot="stable"} == 1"#).await {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(up, "Prometheus never scraped the stable instance; log:\n{}", prometheus.log());
    eprintln!("[{}] Prometheus scrapes the stable instance ({:?} in)", fleet.name, t0.elapsed());

    fleet.plugin(&web.clone().version(V2).env("ERROR_RATE", "0.3"));
    let story = Story::new(&fleet.name);
    let (report, watched, w0) = reconcile_watched(&fleet, &backend, &story, "web").await;
    stop.store(true, Ordering::SeqCst);
    let _ = targets.await;
    let timeline = watched.timeline.join("\n");
    eprintln!("[{}] timeline:\n{timeline}", fleet.name);
    let log = ClientLog::read(&docker, &client).await;
    let (ok, failed) = log.counts_between(w0, wall());

    let reason = match &report.results[0].result {
        Ending::RolledBack { reason } => reason.clone(),
        other => panic!("expected a rollback, got {other:?}\n{}\nprometheus log:\n{}", story.text(), prometheus.log()),
    };
    assert!(
        reason.contains("error rate") && reason.contains("> 5 %"),
        "the verdict is the error-rate threshold: {reason}"
    );
    assert!(!reason.contains("inconclusive"), "a real verdict, not a timeout: {reason}");
    let queries = queries(&prometheus);
    let canary_queries: Vec<&String> =
        queries.iter().filter(|q| q.contains("slot=\"canary\"") && q.contains("plugin=\"web\"")).collect();
    assert!(!canary_queries.is_empty(), "Prometheus answered the canary's queries; its query log:\n{queries:#?}");
    let serves = |s: &[plugsync::plan::Instance]| s.iter().any(|i| i.slot == Slot::Canary && i.serving);
    let first = first_poll(&watched, 0.0, serves).expect("the canary served");
    let out = first_poll(&watched, first, |s| !serves(s)).expect("the canary left traffic");
    eprintln!(
        "[{}] MEASURED Prometheus canary: verdict \"{reason}\"; canary served {first:.2}s → out of traffic {out:.2}s ({:.2}s); \
         {} PromQL queries for the canary answered; client {ok} ok, {failed} failed",
        fleet.name,
        out - first,
        canary_queries.len()
    );
    eprintln!("  e.g. {}", canary_queries[0]);
    let now = fleet.observe(&backend, Some("web")).await;
    assert!(now.len() == 1 && now.iter().all(|i| i.version == V1 && i.serving), "{}", layout(&now));
    eprintln!("test took {:?}", t0.elapsed());
}
