//! Prometheus counters and histogram, rendered in text exposition format 0.0.4.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct Metrics {
    /// (status code, path class) → count.
    requests: Mutex<BTreeMap<(u16, &'static str), u64>>,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn count_request(&self, code: u16, class: &'static str) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((code, class)).or_insert(0) += 1;
    }

    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let idx = BUCKETS.iter().position(|&b| secs <= b).unwrap_or(BUCKETS.len());
        self.buckets[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, plugin: &str, version: &str, ready: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP http_requests_total HTTP requests answered, by status code and path class.");
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        {
            let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            for ((code, class), n) in map.iter() {
                let _ = writeln!(out, "http_requests_total{{code=\"{code}\",path=\"{class}\"}} {n}");
            }
        }
        let _ =
            writeln!(out, "# HELP http_request_duration_seconds Latency of application requests (not health/metrics).");
        let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
        let mut cumulative = 0u64;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "http_request_duration_seconds_count {}", self.count.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP echo_info Build and identity information.");
        let _ = writeln!(out, "# TYPE echo_info gauge");
        let _ = writeln!(out, "echo_info{{version=\"{}\",plugin=\"{}\"}} 1", label_value(version), label_value(plugin));
        let _ = writeln!(out, "# HELP echo_ready Whether /health/ready currently answers 200.");
        let _ = writeln!(out, "# TYPE echo_ready gauge");
        let _ = writeln!(out, "echo_ready {}", ready as u8);
        out
    }
}

fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
