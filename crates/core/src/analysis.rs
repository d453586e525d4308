//! The pure side of analysis: metrics text → samples → per-slot metrics → a verdict.
//!
//! - [`parse`]: Prometheus text / OpenMetrics → samples.
//! - [`counters`]: samples → per-instance counters, window deltas, a slot's [`SlotMetrics`]
//!   with a PromQL-style p99.
//! - [`verdict`]: thresholds → [`Verdict`], A/B comparison → [`AbDecision`].
//! - [`router_log`]: the router's per-request log → per-slot metrics and percentiles.

pub mod counters;
pub mod parse;
pub mod router_log;
pub mod verdict;

pub use counters::{aggregate, delta, histogram_quantile, InstanceCounters, SlotMetrics};
pub use parse::{parse, Sample};
pub use verdict::{ab_decide, evaluate, summary, AbDecision, Variant, Verdict, DEFAULT_MIN_SAMPLES};
