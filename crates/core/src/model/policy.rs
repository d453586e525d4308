//! Rollout policies: named (`policies/<name>`), bound (`rollouts/<id>`, HotSwap shape) or inline.

use super::duration::Span;
use super::rate::Rate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    Direct,
    Rolling,
    Canary,
    BlueGreen,
    ABTesting,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Environment {
    Development,
    QA,
    Staging,
    Production,
}

impl Environment {
    pub const ALL: [Environment; 4] =
        [Environment::Development, Environment::QA, Environment::Staging, Environment::Production];

    /// docs/formats.md: Development → Direct, QA and Staging → Rolling, Production → Canary.
    pub fn default_strategy(self) -> Strategy {
        match self {
            Environment::Development => Strategy::Direct,
            Environment::QA | Environment::Staging => Strategy::Rolling,
            Environment::Production => Strategy::Canary,
        }
    }

    /// The folder name under `environments/` and `policy/defaults/`.
    pub fn folder(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::QA => "qa",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutPolicy {
    #[serde(default, rename = "$schema", skip_serializing)]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_config: Option<RollingConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_config: Option<CanaryConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green_config: Option<BlueGreenConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab_config: Option<AbConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

impl RolloutPolicy {
    /// The strategy this policy runs: explicit, else the environment's default, else Direct.
    pub fn effective_strategy(&self, fleet_environment: Option<Environment>) -> Strategy {
        self.strategy
            .or_else(|| self.environment.or(fleet_environment).map(Environment::default_strategy))
            .unwrap_or(Strategy::Direct)
    }
}

/// `batchSize: 2` or `batchSize: "25%"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchSize {
    Count(u32),
    #[serde(with = "percent_string")]
    Percent(u8),
}

impl BatchSize {
    /// Instances per batch for a plugin with `replicas` instances (at least one).
    pub fn instances(self, replicas: u32) -> u32 {
        match self {
            BatchSize::Count(n) => n.max(1),
            BatchSize::Percent(p) => (replicas * u32::from(p)).div_ceil(100).max(1),
        }
    }
}

mod percent_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &u8, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{p}%"))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        let text = String::deserialize(d)?;
        text.strip_suffix('%').and_then(|n| n.parse::<u8>().ok()).filter(|p| (1..=100).contains(p)).ok_or_else(|| {
            serde::de::Error::custom(format!("found {text:?}, expected a count or a percentage from 1% to 100%"))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingConfig {
    #[serde(default = "default_batch")]
    pub batch_size: BatchSize,
    #[serde(default)]
    pub wait_between_batches: Span,
    #[serde(default = "default_health_timeout")]
    pub health_check_timeout: Span,
    #[serde(default = "one")]
    pub max_parallel_batches: u32,
}

impl Default for RollingConfig {
    fn default() -> Self {
        RollingConfig {
            batch_size: default_batch(),
            wait_between_batches: Span::default(),
            health_check_timeout: default_health_timeout(),
            max_parallel_batches: 1,
        }
    }
}

fn default_batch() -> BatchSize {
    BatchSize::Count(1)
}
fn default_health_timeout() -> Span {
    Span::from_secs(60)
}
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Thresholds {
    /// Share of requests answering 5xx or failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_p99_ms: Option<f64>,
    /// Share of successful requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_success_rate: Option<Rate>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_percentage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increment_percentage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_period: Option<Span>,
    #[serde(default = "yes")]
    pub auto_rollback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<u32>,
    #[serde(default)]
    pub thresholds: Thresholds,
}

impl CanaryConfig {
    /// How long each step is evaluated (default one minute), milliseconds.
    pub fn evaluation_ms(&self) -> u64 {
        self.evaluation_period.map_or(60_000, |p| u64::try_from(p.0.as_millis()).unwrap_or(u64::MAX))
    }

    /// The traffic percentages the canary walks through, ending at 100.
    pub fn step_percentages(&self) -> Vec<f64> {
        if let Some(steps) = &self.steps {
            return steps.clone();
        }
        let initial = self.initial_percentage.unwrap_or(10.0);
        let increment = self.increment_percentage.unwrap_or(initial).max(1.0);
        let mut steps = Vec::new();
        let mut weight = initial;
        while weight < 100.0 {
            steps.push(weight);
            weight += increment;
        }
        steps.push(100.0);
        steps
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Switchover {
    #[default]
    Instant,
    Gradual,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlueGreenConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_period: Option<Span>,
    #[serde(default)]
    pub switchover_type: Switchover,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradual_steps: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_period: Option<Span>,
    #[serde(default)]
    pub keep_previous_environment: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smoke_tests: Vec<String>,
    #[serde(default)]
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSplit {
    #[serde(rename = "A")]
    pub a: f64,
    #[serde(rename = "B")]
    pub b: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_b: Option<String>,
    #[serde(default = "even_split")]
    pub traffic_split: TrafficSplit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_duration: Option<Span>,
    #[serde(default = "default_decision_metrics")]
    pub decision_metrics: Vec<String>,
    #[serde(default)]
    pub auto_promote: bool,
    /// Minimum relative difference for a metric to count (0.05: B at least 5 % better).
    #[serde(default)]
    pub winner_threshold: Rate,
}

impl TrafficSplit {
    /// B instances beside `a` A instances so that B's share is nearest its split.
    pub fn b_instances(&self, a: u32) -> u32 {
        if self.a <= 0.0 {
            return a.max(1);
        }
        ((f64::from(a) * self.b / self.a).round() as u32).max(1)
    }
}

impl Default for AbConfig {
    fn default() -> Self {
        AbConfig {
            variant_a: None,
            variant_b: None,
            traffic_split: even_split(),
            test_duration: None,
            decision_metrics: default_decision_metrics(),
            auto_promote: false,
            winner_threshold: Rate::ZERO,
        }
    }
}

/// How many extra stable instances (`surge`) and canary instances a step uses, and the weight
/// that really reaches the canary. Prefers the largest weight not above the step's; when even
/// one canary among all stable instances plus the surge is too much, one canary it is.
pub fn canary_layout(stable: u32, weight: f64, max_surge: u32) -> (u32, u32, f64) {
    if weight >= 100.0 {
        return (0, stable.max(1), 100.0);
    }
    let achieved = |s: u32, c: u32| f64::from(c) * 100.0 / f64::from(stable + s + c);
    let mut best: Option<(u32, u32, f64)> = None;
    for s in 0..=max_surge {
        for c in 1..=stable.max(1) * 20 {
            let a = achieved(s, c);
            if a > weight + 1e-9 {
                break;
            }
            let better = match best {
                None => true,
                Some((bs, bc, ba)) => a > ba + 1e-9 || ((a - ba).abs() < 1e-9 && s + c < bs + bc),
            };
            if better {
                best = Some((s, c, a));
            }
        }
    }
    best.unwrap_or((max_surge, 1, achieved(max_surge, 1)))
}

fn even_split() -> TrafficSplit {
    TrafficSplit { a: 50.0, b: 50.0 }
}
fn default_decision_metrics() -> Vec<String> {
    vec!["errorRate".into(), "latency".into()]
}

/// Metrics the built-in probes compute for every instance.
pub const BUILTIN_METRICS: [&str; 4] = ["latency", "errorRate", "successRate", "throughput"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// Where evidence comes from; unset: the router's own log for a plugin behind the router
    /// (no Prometheus configured), else built-in scraping or Prometheus as `builtin` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AnalysisSource>,
    #[serde(default = "yes")]
    pub builtin: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u32>,
    /// Custom metrics the built-in source computes from the plugin's own counters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, CounterMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            source: None,
            builtin: true,
            interval: None,
            min_samples: None,
            metrics: BTreeMap::new(),
            prometheus: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisSource {
    /// plugsync scrapes each instance's metrics endpoint.
    Builtin,
    /// Queries against `prometheus.url`.
    Prometheus,
    /// The fleet router's per-request log: nothing needed from the plugin.
    Router,
}

impl Analysis {
    /// The source evidence comes from, for a plugin behind the router (`routed`) or not.
    pub fn effective_source(&self, routed: bool) -> AnalysisSource {
        match (self.source, routed, &self.prometheus) {
            (Some(source), _, _) => source,
            (None, true, None) => AnalysisSource::Router,
            (None, _, Some(_)) if !self.builtin => AnalysisSource::Prometheus,
            _ => AnalysisSource::Builtin,
        }
    }
}

/// A metric from counters a plugin exposes, over the analysis window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterMetric {
    /// `[numerator, denominator]`: increase of the first counter / increase of the second.
    pub ratio: [String; 2],
}

impl Analysis {
    /// Whether some configured source can provide `metric`.
    pub fn provides(&self, metric: &str) -> bool {
        (self.builtin && (BUILTIN_METRICS.contains(&metric) || self.metrics.contains_key(metric)))
            || self.prometheus.as_ref().is_some_and(|p| p.queries.contains_key(metric))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusSource {
    pub url: String,
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_steps_from_initial_and_increment() {
        let c = CanaryConfig { initial_percentage: Some(10.0), increment_percentage: Some(30.0), ..Default::default() };
        assert_eq!(c.step_percentages(), vec![10.0, 40.0, 70.0, 100.0]);
        let explicit = CanaryConfig { steps: Some(vec![5.0, 50.0, 100.0]), ..Default::default() };
        assert_eq!(explicit.step_percentages(), vec![5.0, 50.0, 100.0]);
    }

    #[test]
    fn batch_size_instances() {
        assert_eq!(BatchSize::Count(2).instances(5), 2);
        assert_eq!(BatchSize::Percent(25).instances(10), 3);
        assert_eq!(BatchSize::Percent(1).instances(3), 1);
        assert_eq!(BatchSize::Count(0).instances(3), 1);
    }

    #[test]
    fn environment_picks_default_strategy() {
        let p = RolloutPolicy::default();
        assert_eq!(p.effective_strategy(Some(Environment::Production)), Strategy::Canary);
        assert_eq!(p.effective_strategy(Some(Environment::QA)), Strategy::Rolling);
        assert_eq!(p.effective_strategy(None), Strategy::Direct);
        let staging = RolloutPolicy { environment: Some(Environment::Staging), ..p };
        assert_eq!(staging.effective_strategy(Some(Environment::Production)), Strategy::Rolling);
    }
}
