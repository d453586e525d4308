//! Metric providers and verdicts: is the new version healthy enough to go on?
//!
//! The pure parts live in `plugsync-core` and are re-exported here:
//!
//! - [`parse`]: Prometheus text / OpenMetrics → samples (pure).
//! - [`counters`]: samples → per-instance counters, window deltas, a slot's
//!   [`SlotMetrics`] with a PromQL-style p99 (pure).
//! - [`verdict`]: thresholds → [`Verdict`], A/B comparison → [`AbDecision`] (pure).
//! - [`builtin`]: scrapes each instance's `/metrics` at both ends of a [`Window`] (I/O).
//! - [`prometheus`]: instant queries against a Prometheus server (I/O).
//! - [`router_log`]: the router's per-request log → per-slot metrics and percentiles (pure).
//!
//! Percentages are percent (1 = 1 %), latencies milliseconds, throughput requests per
//! second. The pure parts take values (and never the clock) as arguments.

pub mod builtin;
pub mod prometheus;

pub use plugsync_core::analysis::*;

pub use builtin::{scrape, Window};
pub use prometheus::PrometheusProvider;

/// Why a metric could not be obtained. Every variant names where it looked (instance and
/// URL, or the Prometheus URL and query) and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    #[error("instance {instance} has no network address to scrape metrics from")]
    NoAddress { instance: String },
    #[error("scraping {instance} at {url} failed: {detail}")]
    Scrape { instance: String, url: String, detail: String },
    #[error("scraping {instance} at {url}: HTTP {status}")]
    ScrapeStatus { instance: String, url: String, status: u16 },
    #[error("{url} ({instance}) did not answer Prometheus text: {detail}")]
    NotMetrics { instance: String, url: String, detail: String },
    #[error("Prometheus at {url} unreachable for query `{query}`: {detail}")]
    PrometheusRequest { url: String, query: String, detail: String },
    #[error("Prometheus at {url} rejected query `{query}`: {detail}")]
    PrometheusQuery { url: String, query: String, detail: String },
    #[error("invalid Prometheus URL `{url}`: {detail}")]
    InvalidUrl { url: String, detail: String },
    #[error("no Prometheus query named `{name}` is configured (known: {known})")]
    UnknownQuery { name: String, known: String },
    #[error("Prometheus query `{name}` uses the placeholder {placeholder}; known placeholders: {{{{plugin}}}}, {{{{slot}}}}, {{{{version}}}}")]
    Placeholder { name: String, placeholder: String },
}

impl AnalysisError {
    /// A short, fixed label for metrics and logs (kube-rs' `metric_label` idea).
    pub fn metric_label(&self) -> &'static str {
        match self {
            AnalysisError::NoAddress { .. } => "no_address",
            AnalysisError::Scrape { .. } | AnalysisError::ScrapeStatus { .. } => "scrape",
            AnalysisError::NotMetrics { .. } => "not_metrics",
            AnalysisError::PrometheusRequest { .. } => "prometheus_unreachable",
            AnalysisError::PrometheusQuery { .. } => "prometheus_query",
            AnalysisError::InvalidUrl { .. } => "invalid_url",
            AnalysisError::UnknownQuery { .. } | AnalysisError::Placeholder { .. } => "config",
        }
    }
}

/// An error and its sources on one line ("error sending request: … : connection refused").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
