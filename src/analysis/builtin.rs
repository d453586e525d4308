//! Built-in analysis: scrape every instance's Prometheus endpoint at the start and the end
//! of a window and compare.
//!
//! No Prometheus server needed: the plugin's own counters (`http_requests_total`,
//! `http_request_duration_seconds`) say what it served. A failed scrape is never counted as
//! an error of the plugin; it is counted in [`SlotMetrics::scrape_failures`] and the
//! instance's traffic is left out (the summary says so).

use super::counters::{aggregate, delta, InstanceCounters, SlotMetrics};
use super::{error_chain, parse, AnalysisError};
use crate::plan::Instance;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

/// How long one scrape may take, connection included.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest metrics body read (a plugin exporting more is misbehaving).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// `http://10.0.0.5:8080/metrics` (IPv6 in brackets; a missing leading `/` is added).
pub fn metrics_url(address: IpAddr, port: u16, path: &str) -> String {
    let sep = if path.starts_with('/') { "" } else { "/" };
    format!("http://{}{sep}{path}", SocketAddr::new(address, port))
}

/// Scrapes one instance's metrics endpoint (`GET http://address:port/path`).
pub async fn scrape(
    client: &reqwest::Client,
    instance: &Instance,
    port: u16,
    path: &str,
) -> Result<InstanceCounters, AnalysisError> {
    let address = instance.address.ok_or_else(|| AnalysisError::NoAddress { instance: instance.name.clone() })?;
    scrape_url(client, &instance.name, &metrics_url(address, port, path)).await
}

/// Scrapes a metrics URL; `instance` only names it in errors.
pub async fn scrape_url(
    client: &reqwest::Client,
    instance: &str,
    url: &str,
) -> Result<InstanceCounters, AnalysisError> {
    let failed = |e: reqwest::Error| AnalysisError::Scrape {
        instance: instance.to_string(),
        url: url.to_string(),
        detail: if e.is_timeout() {
            format!("no answer within {} s", SCRAPE_TIMEOUT.as_secs_f64())
        } else {
            error_chain(&e)
        },
    };
    let response = client
        .get(url)
        .header("Accept", "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5,*/*;q=0.1")
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(AnalysisError::ScrapeStatus {
            instance: instance.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    if response.content_length().is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(AnalysisError::NotMetrics {
            instance: instance.to_string(),
            url: url.to_string(),
            detail: format!("body larger than {MAX_BODY_BYTES} bytes"),
        });
    }
    let body = response.bytes().await.map_err(failed)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(AnalysisError::NotMetrics {
            instance: instance.to_string(),
            url: url.to_string(),
            detail: format!("body larger than {MAX_BODY_BYTES} bytes"),
        });
    }
    let text = String::from_utf8_lossy(&body);
    counters_from_body(&text).map_err(|detail| AnalysisError::NotMetrics {
        instance: instance.to_string(),
        url: url.to_string(),
        detail,
    })
}

/// Counters from a scraped body. A body with bad lines but some good samples is accepted
/// (the bad lines are logged); a body without a single sample is an error, except an
/// empty one (a plugin that has not served anything may export nothing).
pub fn counters_from_body(text: &str) -> Result<InstanceCounters, String> {
    let parsed = parse::parse(text);
    if parsed.samples.is_empty() && !parsed.errors.is_empty() {
        return Err(format!(
            "no sample parsed, {} bad line{} (first: {})",
            parsed.errors.len(),
            if parsed.errors.len() == 1 { "" } else { "s" },
            parsed.errors[0]
        ));
    }
    if let Some(first) = parsed.errors.first() {
        tracing::debug!(bad_lines = parsed.errors.len(), first = %first, "ignored unparsable metrics lines");
    }
    Ok(InstanceCounters::from_samples(&parsed.samples))
}

/// What is known about one instance at the start of a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// Scraped: its counters then, and the backend's restart count of the instance.
    Scraped(InstanceCounters, u32),
    /// Listed but the scrape failed: its traffic in the window is unknown.
    Failed(String),
}

/// An analysis window over the instances of one slot: `start` snapshots their counters,
/// `finish` snapshots them again and turns the difference into [`SlotMetrics`].
///
/// Instances are matched by id. One that appears during the window (absent at `start`)
/// counts from zero: all it served happened in the window. One that vanished (absent at
/// `finish`) is left out: what it served since the start is lost. One whose scrape failed
/// at either end is left out and counted in `scrape_failures`.
#[derive(Debug, Clone)]
pub struct Window {
    started: Instant,
    port: u16,
    path: String,
    before: BTreeMap<String, Baseline>,
}

impl Window {
    /// Scrapes every instance (concurrently) and starts the clock.
    pub async fn start(client: &reqwest::Client, instances: &[&Instance], port: u16, path: &str) -> Window {
        let started = Instant::now();
        let results = scrape_all(client, instances, port, path).await;
        let before = results
            .into_iter()
            .zip(instances)
            .map(|((id, r), instance)| {
                let baseline = match r {
                    Ok(c) => Baseline::Scraped(c, instance.restart_count),
                    Err(e) => {
                        tracing::warn!(error = %e, "analysis window start: scrape failed");
                        Baseline::Failed(e.to_string())
                    }
                };
                (id, baseline)
            })
            .collect();
        Window { started, port, path: path.to_string(), before }
    }

    /// Time since `start`.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The baselines taken at `start`, by instance id.
    pub fn baselines(&self) -> &BTreeMap<String, Baseline> {
        &self.before
    }

    /// Scrapes the instances again and computes the slot's metrics over the window.
    /// Can be called more than once (each call measures from `start`).
    pub async fn finish(&self, client: &reqwest::Client, instances: &[&Instance]) -> SlotMetrics {
        let results = scrape_all(client, instances, self.port, &self.path).await;
        let seconds = self.started.elapsed().as_secs_f64();
        let after: BTreeMap<String, Result<(InstanceCounters, u32), String>> = results
            .into_iter()
            .zip(instances)
            .map(|((id, r), instance)| {
                let end = r.map(|c| (c, instance.restart_count)).map_err(|e| {
                    tracing::warn!(error = %e, "analysis window end: scrape failed");
                    e.to_string()
                });
                (id, end)
            })
            .collect();
        window_metrics(&self.before, &after, seconds)
    }
}

async fn scrape_all(
    client: &reqwest::Client,
    instances: &[&Instance],
    port: u16,
    path: &str,
) -> Vec<(String, Result<InstanceCounters, AnalysisError>)> {
    let scrapes = instances.iter().map(|i| async move { (i.id.clone(), scrape(client, i, port, path).await) });
    futures_util::future::join_all(scrapes).await
}

/// The pure part of [`Window::finish`]: baselines and end snapshots (counters and the
/// backend's restart count) by instance id → the slot's metrics over `seconds`. A changed
/// restart count is a counter reset even when the counters do not show it.
pub fn window_metrics(
    before: &BTreeMap<String, Baseline>,
    after: &BTreeMap<String, Result<(InstanceCounters, u32), String>>,
    seconds: f64,
) -> SlotMetrics {
    let mut deltas = Vec::new();
    let mut failures = 0;
    for (id, end) in after {
        match (before.get(id), end) {
            (_, Err(_)) | (Some(Baseline::Failed(_)), _) => failures += 1,
            (Some(Baseline::Scraped(start, restarts)), Ok((end, now))) => {
                deltas.push(if restarts != now { end.clone() } else { delta(start, end) })
            }
            (None, Ok((end, _))) => deltas.push(end.clone()),
        }
    }
    let mut m = aggregate(&deltas, seconds);
    m.scrape_failures = failures;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(requests: f64, errors: f64) -> InstanceCounters {
        InstanceCounters { requests, errors, ..Default::default() }
    }

    #[test]
    fn urls() {
        let v4: IpAddr = "172.17.0.3".parse().unwrap();
        let v6: IpAddr = "fd00::3".parse().unwrap();
        assert_eq!(metrics_url(v4, 8080, "/metrics"), "http://172.17.0.3:8080/metrics");
        assert_eq!(metrics_url(v4, 9100, "metrics"), "http://172.17.0.3:9100/metrics");
        assert_eq!(metrics_url(v6, 8080, "/metrics"), "http://[fd00::3]:8080/metrics");
    }

    #[test]
    fn bodies() {
        assert_eq!(counters_from_body("").unwrap(), InstanceCounters::default());
        assert_eq!(counters_from_body("# only comments\n").unwrap(), InstanceCounters::default());
        let err = counters_from_body("<html><body>Not Found</body></html>").unwrap_err();
        assert!(err.starts_with("no sample parsed, 1 bad line (first: line 1: "), "{err}");
        let ok = counters_from_body("garbage\nhttp_requests_total{code=\"500\"} 3\n").unwrap();
        assert_eq!((ok.requests, ok.errors), (3.0, 3.0));
    }

    #[test]
    fn window_table() {
        let before = BTreeMap::from([
            ("kept".to_string(), Baseline::Scraped(c(100.0, 10.0), 0)),
            ("vanished".to_string(), Baseline::Scraped(c(500.0, 0.0), 0)),
            ("failed-at-start".to_string(), Baseline::Failed("timeout".into())),
            ("fails-at-end".to_string(), Baseline::Scraped(c(10.0, 0.0), 0)),
            ("restarted".to_string(), Baseline::Scraped(c(1000.0, 0.0), 0)),
            ("restarted-busy".to_string(), Baseline::Scraped(c(5.0, 0.0), 1)),
        ]);
        let after = BTreeMap::from([
            ("kept".to_string(), Ok((c(200.0, 40.0), 0))),
            ("failed-at-start".to_string(), Ok((c(9999.0, 9999.0), 0))),
            ("fails-at-end".to_string(), Err("connection refused".to_string())),
            ("restarted".to_string(), Ok((c(20.0, 0.0), 0))),
            // Counters above the baseline, but the backend saw a restart.
            ("restarted-busy".to_string(), Ok((c(50.0, 0.0), 2))),
            ("appeared".to_string(), Ok((c(30.0, 0.0), 0))),
        ]);
        let m = window_metrics(&before, &after, 20.0);
        // kept 100 (30 errors) + restarted 20 + restarted-busy 50 + appeared 30.
        assert_eq!(m.requests, 200.0);
        assert_eq!(m.errors, 30.0);
        assert_eq!(m.error_rate, Some(15.0));
        assert_eq!(m.throughput, Some(10.0));
        assert_eq!(m.scrape_failures, 2);
        assert_eq!(m.seconds, 20.0);

        let nothing = window_metrics(&BTreeMap::new(), &BTreeMap::new(), 5.0);
        assert_eq!((nothing.requests, nothing.error_rate, nothing.scrape_failures), (0.0, None, 0));
    }
}
