//! From samples to per-instance counters, from counters to the metrics of a slot.
//!
//! Pure. An instance's `/metrics` is scraped at the start and at the end of an analysis
//! window; [`delta`] of the two snapshots is what the instance served in the window, and
//! [`aggregate`] adds the deltas of a slot's instances into [`SlotMetrics`].
//!
//! What counts as a request: every `http_requests_total` series except health and metrics
//! traffic, i.e. series whose `path` or `handler` label is `health`, `metrics`, `alloc`,
//! `/metrics` or starts with `/health` (the probes and the scrapes themselves must not
//! dilute the error rate). An error is a request whose `code` or `status` label is 5xx.
//! Latency comes from the `http_request_duration_seconds` histogram (same exclusions).

use super::parse::Sample;
use std::collections::BTreeMap;

pub const REQUESTS_METRIC: &str = "http_requests_total";
pub const DURATION_METRIC: &str = "http_request_duration_seconds";
pub const PROCESS_START_METRIC: &str = "process_start_time_seconds";

/// What one instance's counters say (cumulative since it started, or a delta of two
/// snapshots).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstanceCounters {
    pub requests: f64,
    pub errors: f64,
    /// (upper bound `le` in seconds, cumulative count), sorted by `le`, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    pub duration_count: f64,
    pub duration_sum: f64,
    /// `process_start_time_seconds`, when the plugin exports it (most client libraries
    /// do): a different value in two snapshots means the process restarted in between.
    pub process_start: Option<f64>,
    /// Every other sample summed by metric name (label sets added up), for custom metrics
    /// such as `conversions_total` (see `analysis.metrics`).
    pub series: BTreeMap<String, f64>,
}

/// Whether a `path`/`handler` label value names health or metrics traffic.
pub fn is_probe_path(value: &str) -> bool {
    matches!(value, "health" | "metrics" | "alloc" | "/metrics") || value.starts_with("/health")
}

fn is_probe_series(s: &Sample) -> bool {
    ["path", "handler"].iter().any(|k| s.label(k).is_some_and(is_probe_path))
}

/// Whether a `code`/`status` label value is a server error (`500`…`599`, or `5xx`).
pub fn is_server_error(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 3
        && b[0] == b'5'
        && ((b[1].is_ascii_digit() && b[2].is_ascii_digit()) || code.eq_ignore_ascii_case("5xx"))
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

impl InstanceCounters {
    /// Extracts the counters from one scrape's samples.
    pub fn from_samples(samples: &[Sample]) -> InstanceCounters {
        let bucket_name = format!("{DURATION_METRIC}_bucket");
        let count_name = format!("{DURATION_METRIC}_count");
        let sum_name = format!("{DURATION_METRIC}_sum");
        let mut c = InstanceCounters::default();
        for s in samples {
            if is_probe_series(s) {
                continue;
            }
            let v = finite(s.value);
            if s.name == REQUESTS_METRIC {
                c.requests += v;
                if ["code", "status"].iter().any(|k| s.label(k).is_some_and(is_server_error)) {
                    c.errors += v;
                }
            } else if s.name == bucket_name {
                let Some(le) = s.label("le").and_then(super::parse::parse_value) else {
                    continue;
                };
                if le.is_nan() {
                    continue;
                }
                add_bucket(&mut c.buckets, le, v);
            } else if s.name == count_name {
                c.duration_count += v;
            } else if s.name == sum_name {
                c.duration_sum += v;
            } else if s.name == PROCESS_START_METRIC && s.value.is_finite() {
                c.process_start = Some(s.value);
            }
            // Every name, the request counter included, so a ratio can use it as denominator.
            *c.series.entry(s.name.clone()).or_insert(0.0) += v;
        }
        c.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        c
    }

    /// Parses a body and extracts the counters (bad lines are ignored).
    pub fn from_text(text: &str) -> InstanceCounters {
        InstanceCounters::from_samples(&super::parse::parse(text).samples)
    }

    /// Observations in the histogram: the `+Inf` bucket, else `duration_count`.
    pub fn observations(&self) -> f64 {
        match self.buckets.last() {
            Some((le, n)) if *le == f64::INFINITY => *n,
            _ => self.duration_count,
        }
    }
}

/// Adds `n` to the bucket with bound `le` (series of several label sets share bounds).
fn add_bucket(buckets: &mut Vec<(f64, f64)>, le: f64, n: f64) {
    match buckets.iter_mut().find(|(b, _)| same_bound(*b, le)) {
        Some((_, count)) => *count += n,
        None => buckets.push((le, n)),
    }
}

fn same_bound(a: f64, b: f64) -> bool {
    a == b || (a.is_finite() && b.is_finite() && (a - b).abs() <= 1e-12 * a.abs().max(b.abs()))
}

/// What happened between two snapshots of one instance. When any counter went down, or
/// `process_start` changed, the instance restarted (counter reset) and `after` is taken as
/// the whole delta, as PromQL's `increase()` does. What the old process served between
/// the first snapshot and its end is lost; and a restarted process that has already served
/// more than the first snapshot showed, without `process_start`, looks like no reset (two
/// snapshots cannot tell; the built-in source's `Window` also compares the backend's restart
/// count).
pub fn delta(before: &InstanceCounters, after: &InstanceCounters) -> InstanceCounters {
    let bucket_before = |le: f64| before.buckets.iter().find(|(b, _)| same_bound(*b, le)).map_or(0.0, |(_, n)| *n);
    let restarted = matches!((before.process_start, after.process_start), (Some(a), Some(b)) if a != b);
    let reset = restarted
        || after.requests < before.requests
        || after.errors < before.errors
        || after.duration_count < before.duration_count
        || after.duration_sum < before.duration_sum
        || after.buckets.iter().any(|(le, n)| *n < bucket_before(*le))
        || after.series.iter().any(|(name, n)| *n < before.series.get(name).copied().unwrap_or(0.0));
    if reset {
        return after.clone();
    }
    InstanceCounters {
        requests: after.requests - before.requests,
        errors: after.errors - before.errors,
        buckets: after.buckets.iter().map(|(le, n)| (*le, n - bucket_before(*le))).collect(),
        duration_count: after.duration_count - before.duration_count,
        duration_sum: after.duration_sum - before.duration_sum,
        process_start: after.process_start,
        series: after
            .series
            .iter()
            .map(|(name, n)| (name.clone(), n - before.series.get(name).copied().unwrap_or(0.0)))
            .collect(),
    }
}

/// The metrics of one slot (or one variant) over an analysis window. Rates are percent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SlotMetrics {
    pub requests: f64,
    pub errors: f64,
    /// Percent of requests that answered 5xx; `None` without requests.
    pub error_rate: Option<f64>,
    /// Percent of requests that did not answer 5xx; `None` without requests.
    pub success_rate: Option<f64>,
    /// 99th percentile latency in milliseconds; `None` without observations.
    pub p99_ms: Option<f64>,
    /// Requests per second over the window; `None` when the window has no length.
    pub throughput: Option<f64>,
    /// Length of the window.
    pub seconds: f64,
    /// Whether `requests` was really counted. Always true for the built-in probes; for
    /// Prometheus only when a `requests` query is configured. When false, the minimum
    /// sample count cannot be checked (see [`super::verdict::evaluate`]).
    pub requests_counted: bool,
    /// Instances whose `/metrics` could not be scraped (at the start or the end of the
    /// window). Their traffic is missing from the numbers above; never counted as errors.
    pub scrape_failures: usize,
    /// Increase of every counter over the window, by metric name (built-in source only).
    pub counters: BTreeMap<String, f64>,
}

impl SlotMetrics {
    /// A custom ratio metric: increase of `numerator` / increase of `denominator`; `None`
    /// when the denominator did not increase (no traffic: 0/0 is not 0).
    pub fn ratio(&self, numerator: &str, denominator: &str) -> Option<f64> {
        let den = self.counters.get(denominator).copied().filter(|d| *d > 0.0)?;
        Some(self.counters.get(numerator).copied().unwrap_or(0.0) / den)
    }
}

/// Adds the deltas of a slot's instances over a window of `seconds`.
pub fn aggregate(deltas: &[InstanceCounters], seconds: f64) -> SlotMetrics {
    let mut total = InstanceCounters::default();
    for d in deltas {
        total.requests += d.requests;
        total.errors += d.errors;
        total.duration_count += d.duration_count;
        total.duration_sum += d.duration_sum;
        for (le, n) in &d.buckets {
            add_bucket(&mut total.buckets, *le, *n);
        }
        for (name, n) in &d.series {
            *total.series.entry(name.clone()).or_insert(0.0) += n;
        }
    }
    total.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let has_requests = total.requests > 0.0;
    let error_rate = has_requests.then(|| (total.errors / total.requests * 100.0).clamp(0.0, 100.0));
    let seconds = if seconds.is_finite() && seconds > 0.0 { seconds } else { 0.0 };
    SlotMetrics {
        requests: total.requests,
        errors: total.errors,
        error_rate,
        success_rate: error_rate.map(|e| 100.0 - e),
        p99_ms: histogram_quantile(0.99, &total.buckets).map(|s| s * 1000.0),
        throughput: (seconds > 0.0).then(|| total.requests / seconds),
        seconds,
        requests_counted: true,
        scrape_failures: 0,
        counters: total.series,
    }
}

/// The `q`-quantile of a cumulative histogram, as PromQL's `histogram_quantile`: linear
/// interpolation inside the bucket the rank falls in, the lowest bucket starting at 0 (if
/// its bound is positive), the `+Inf` bucket answering the highest finite bound. `None`
/// without a `+Inf` bucket, without observations, or for `q` outside 0..=1.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) || buckets.len() < 2 {
        return None;
    }
    let mut sorted: Vec<(f64, f64)> = buckets.iter().filter(|(le, _)| !le.is_nan()).copied().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    if sorted.last()?.0 != f64::INFINITY || sorted.len() < 2 {
        return None;
    }
    // Counts must not decrease (scrapes are not atomic); PromQL fixes this the same way.
    let mut max = 0.0f64;
    for b in &mut sorted {
        max = max.max(finite(b.1));
        b.1 = max;
    }
    let observations = sorted.last()?.1;
    if observations <= 0.0 {
        return None;
    }
    let rank = q * observations;
    let i = sorted.iter().position(|(_, n)| *n >= rank)?;
    if i == sorted.len() - 1 {
        return Some(sorted[sorted.len() - 2].0);
    }
    let (end, count) = sorted[i];
    if i == 0 && end <= 0.0 {
        return Some(end);
    }
    let (start, below) = if i == 0 { (0.0, 0.0) } else { sorted[i - 1] };
    let in_bucket = count - below;
    if in_bucket <= 0.0 {
        return Some(end);
    }
    Some(start + (end - start) * ((rank - below) / in_bucket))
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    const ECHO: &str = "\
http_requests_total{code=\"200\",path=\"health\"} 40
http_requests_total{code=\"200\",path=\"metrics\"} 9
http_requests_total{code=\"200\",path=\"root\"} 140
http_requests_total{code=\"500\",path=\"root\"} 60
http_requests_total{code=\"404\",path=\"other\"} 10
http_requests_total{code=\"503\",path=\"/health/ready\"} 3
http_requests_total{status=\"502\",handler=\"/api\"} 5
http_requests_total{status=\"500\",handler=\"/metrics\"} 7
http_request_duration_seconds_bucket{le=\"0.005\"} 100
http_request_duration_seconds_bucket{le=\"0.01\"} 150
http_request_duration_seconds_bucket{le=\"+Inf\"} 215
http_request_duration_seconds_sum 3.5
http_request_duration_seconds_count 215
process_start_time_seconds 1.7e9
";

    #[test]
    fn extracts_requests_errors_and_buckets() {
        let c = InstanceCounters::from_text(ECHO);
        assert_eq!(c.requests, 140.0 + 60.0 + 10.0 + 5.0);
        assert_eq!(c.errors, 65.0);
        assert_eq!(c.buckets, vec![(0.005, 100.0), (0.01, 150.0), (f64::INFINITY, 215.0)]);
        assert_eq!(c.duration_count, 215.0);
        assert_eq!(c.duration_sum, 3.5);
        assert_eq!(c.observations(), 215.0);
        assert_eq!(c.process_start, Some(1.7e9));
    }

    #[test]
    fn probe_paths_and_error_codes() {
        for p in ["health", "metrics", "alloc", "/metrics", "/health", "/health/ready", "/healthz"] {
            assert!(is_probe_path(p), "{p}");
        }
        for p in ["root", "other", "/", "/api/health", "/metrics/x", "healthy"] {
            assert!(!is_probe_path(p), "{p}");
        }
        for c in ["500", "503", "599", "5xx", "5XX"] {
            assert!(is_server_error(c), "{c}");
        }
        for c in ["200", "404", "50", "5000", "600", "5a0", ""] {
            assert!(!is_server_error(c), "{c}");
        }
    }

    #[test]
    fn histogram_series_with_labels_are_summed_per_bound() {
        let text = "\
http_request_duration_seconds_bucket{handler=\"/a\",le=\"0.1\"} 1
http_request_duration_seconds_bucket{handler=\"/a\",le=\"+Inf\"} 2
http_request_duration_seconds_bucket{handler=\"/b\",le=\"0.1\"} 3
http_request_duration_seconds_bucket{handler=\"/b\",le=\"+Inf\"} 4
http_request_duration_seconds_bucket{handler=\"/health\",le=\"+Inf\"} 100
http_request_duration_seconds_bucket{handler=\"/b\",le=\"garbage\"} 4
http_request_duration_seconds_count{handler=\"/a\"} 2
http_request_duration_seconds_count{handler=\"/b\"} 4
";
        let c = InstanceCounters::from_text(text);
        assert_eq!(c.buckets, vec![(0.1, 4.0), (f64::INFINITY, 6.0)]);
        assert_eq!(c.duration_count, 6.0);
    }

    fn counters(requests: f64, errors: f64, buckets: &[(f64, f64)]) -> InstanceCounters {
        InstanceCounters {
            requests,
            errors,
            buckets: buckets.to_vec(),
            duration_count: buckets.last().map_or(0.0, |b| b.1),
            duration_sum: requests / 100.0,
            process_start: None,
            series: BTreeMap::new(),
        }
    }

    #[test]
    fn delta_subtracts_and_handles_resets() {
        let inf = f64::INFINITY;
        let before = counters(100.0, 10.0, &[(0.1, 80.0), (inf, 100.0)]);
        let after = counters(300.0, 40.0, &[(0.1, 200.0), (inf, 300.0)]);
        let d = delta(&before, &after);
        assert_eq!(d.requests, 200.0);
        assert_eq!(d.errors, 30.0);
        assert_eq!(d.buckets, vec![(0.1, 120.0), (inf, 200.0)]);
        assert_eq!(d.duration_count, 200.0);

        // The instance restarted: its counters start again from zero.
        let restarted = counters(50.0, 1.0, &[(0.1, 50.0), (inf, 50.0)]);
        assert_eq!(delta(&before, &restarted), restarted);
        // Only the histogram went down: still a reset.
        let odd = counters(400.0, 40.0, &[(0.1, 10.0), (inf, 400.0)]);
        assert_eq!(delta(&before, &odd), odd);
        // A bucket that did not exist before counts from zero.
        let more = counters(300.0, 40.0, &[(0.05, 20.0), (0.1, 200.0), (inf, 300.0)]);
        assert_eq!(delta(&before, &more).buckets, vec![(0.05, 20.0), (0.1, 120.0), (inf, 200.0)]);
        // More traffic after a restart than before: only process_start tells.
        let (mut b1, mut a1) = (counters(10.0, 0.0, &[]), counters(30.0, 0.0, &[]));
        b1.process_start = Some(1000.0);
        a1.process_start = Some(1000.0);
        assert_eq!(delta(&b1, &a1).requests, 20.0);
        a1.process_start = Some(2000.0);
        assert_eq!(delta(&b1, &a1), a1);
        // No change at all.
        let same = delta(&after, &after);
        assert_eq!((same.requests, same.errors), (0.0, 0.0));
        assert_eq!(delta(&InstanceCounters::default(), &after), after);
    }

    #[test]
    fn quantile_like_promql() {
        let inf = f64::INFINITY;
        // (q, buckets, expected)
        let cases: &[(f64, &[(f64, f64)], Option<f64>)] = &[
            // All in the first bucket: interpolate from 0.
            (0.5, &[(0.1, 100.0), (inf, 100.0)], Some(0.05)),
            (0.99, &[(0.1, 100.0), (inf, 100.0)], Some(0.099)),
            // Rank 99 falls in (0.05, 0.1] holding 100 observations from 0: 0.05 + 0.05·0.99.
            (0.99, &[(0.025, 0.0), (0.05, 0.0), (0.1, 100.0), (inf, 100.0)], Some(0.0995)),
            // Rank in the +Inf bucket: the highest finite bound.
            (0.99, &[(0.1, 50.0), (0.25, 90.0), (inf, 100.0)], Some(0.25)),
            // Exact bound.
            (0.5, &[(0.1, 50.0), (0.2, 100.0), (inf, 100.0)], Some(0.1)),
            (0.75, &[(0.1, 50.0), (0.2, 100.0), (inf, 100.0)], Some(0.15)),
            // Non-monotonic counts are fixed up.
            (0.5, &[(0.1, 50.0), (0.2, 40.0), (inf, 100.0)], Some(0.1)),
            (0.6, &[(0.1, 50.0), (0.2, 40.0), (inf, 100.0)], Some(0.2)),
            // Unsorted input.
            (0.75, &[(inf, 100.0), (0.2, 100.0), (0.1, 50.0)], Some(0.15)),
            // No observations, no +Inf bucket, bad q, too few buckets.
            (0.99, &[(0.1, 0.0), (inf, 0.0)], None),
            (0.99, &[(0.1, 5.0), (0.2, 10.0)], None),
            (1.5, &[(0.1, 5.0), (inf, 10.0)], None),
            (0.5, &[(inf, 10.0)], None),
            (0.5, &[], None),
            // A non-positive lowest bound answers itself.
            (0.1, &[(-1.0, 10.0), (inf, 20.0)], Some(-1.0)),
        ];
        for (q, buckets, want) in cases {
            let got = histogram_quantile(*q, buckets);
            match (got, want) {
                (Some(g), Some(w)) => {
                    assert!((g - w).abs() < 1e-9, "q={q} {buckets:?}: {g} != {w}")
                }
                _ => assert_eq!(got, *want, "q={q} {buckets:?}"),
            }
        }
    }

    #[test]
    fn aggregate_adds_instances() {
        let inf = f64::INFINITY;
        let a = counters(100.0, 30.0, &[(0.05, 0.0), (0.1, 100.0), (inf, 100.0)]);
        let b = counters(100.0, 0.0, &[(0.05, 100.0), (0.1, 100.0), (inf, 100.0)]);
        let m = aggregate(&[a, b], 16.0);
        assert_eq!(m.requests, 200.0);
        assert_eq!(m.errors, 30.0);
        assert_eq!(m.error_rate, Some(15.0));
        assert_eq!(m.success_rate, Some(85.0));
        assert_eq!(m.throughput, Some(12.5));
        // Rank 198 of 200: in (0.05, 0.1] holding 100 observations above 100.
        let p99 = m.p99_ms.unwrap();
        assert!((p99 - 99.0).abs() < 1e-9, "{p99}");
        assert!(m.requests_counted);

        let empty = aggregate(&[], 30.0);
        assert_eq!(empty.error_rate, None);
        assert_eq!(empty.success_rate, None);
        assert_eq!(empty.p99_ms, None);
        assert_eq!(empty.throughput, Some(0.0));
        assert_eq!(aggregate(&[], 0.0).throughput, None);
        assert_eq!(aggregate(&[], f64::NAN).seconds, 0.0);
    }

    /// Issue 10, defect 2: a business metric from the plugin's own counters, over a window,
    /// summed over label sets and instances; no denominator traffic is no value, not 0.
    #[test]
    fn defect_2_counter_ratio_over_a_window() {
        let scrape = |conversions: f64, home: f64, health: f64| {
            InstanceCounters::from_text(&format!(
                "conversions_total{{plan=\"a\"}} {conversions}\nconversions_total{{plan=\"b\"}} 1\n\
                 http_requests_total{{path=\"/\",code=\"200\"}} {home}\n\
                 http_requests_total{{path=\"/health/ready\",code=\"200\"}} {health}\n"
            ))
        };
        let one = delta(&scrape(10.0, 100.0, 5.0), &scrape(16.0, 160.0, 500.0));
        let two = delta(&scrape(0.0, 0.0, 0.0), &scrape(4.0, 40.0, 9.0));
        let m = aggregate(&[one, two], 10.0);
        assert_eq!(m.counters.get("conversions_total"), Some(&10.0));
        assert_eq!(m.ratio("conversions_total", "http_requests_total"), Some(0.1), "10 of 100 (probes left out)");
        assert_eq!(m.ratio("conversions_total", "missing_total"), None);
        let idle = aggregate(&[delta(&scrape(3.0, 30.0, 0.0), &scrape(3.0, 30.0, 1.0))], 10.0);
        assert_eq!(idle.ratio("conversions_total", "http_requests_total"), None);
    }
}
