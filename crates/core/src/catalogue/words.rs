//! A plugin's rollout policy said in words, from the fields the strategies really read (with
//! the defaults they really apply), e.g. "Canary: 25 % → 50 % → 75 % → 100 %, 1m each; rolled
//! back if error rate > 1 %, p99 > 500 ms or success rate < 99 %". Plain text: each renderer
//! escapes it.

use super::number;
use crate::model::policy::{
    AbConfig, Analysis, AnalysisSource, BatchSize, BlueGreenConfig, CanaryConfig, RollingConfig, Switchover, Thresholds,
};
use crate::model::{DriftMode, Fleet, Plugin, Strategy};
use std::time::Duration;

/// Strategies' defaults, as `strategy/` applies them when a policy leaves a field out.
const CANARY_EVALUATION: Duration = Duration::from_secs(60);
const AB_TEST_DURATION: Duration = Duration::from_secs(60);
const GRADUAL_STEPS: [f64; 2] = [50.0, 100.0];

/// How a change to this plugin rolls out, in one or two sentences.
pub fn rollout(plugin: &Plugin) -> String {
    let policy = &plugin.policy;
    let rolling = policy.rolling_config.clone().unwrap_or_default();
    let timeout = rolling.health_check_timeout;
    if let Some(canary) = &plugin.canary {
        return format!(
            "Fixed canary from versioned folders: {} at {} % beside {} at {} %, held at those weights; \
             each version's instances are replaced like Rolling ({})",
            plugin.manifest.version,
            number(plugin.stable_weight.unwrap_or(100.0 - canary.weight)),
            canary.manifest.version,
            number(canary.weight),
            rolling_words(&rolling)
        );
    }
    match plugin.strategy {
        Strategy::Direct => direct(timeout.to_string(), plugin.routing.is_routed()),
        Strategy::Rolling => format!("Rolling: {}", rolling_words(&rolling)),
        Strategy::Canary => canary(&policy.canary_config.clone().unwrap_or_default()),
        Strategy::BlueGreen => blue_green(&policy.blue_green_config.clone().unwrap_or_default()),
        Strategy::ABTesting => ab_test(&policy.ab_config.clone().unwrap_or_default(), &plugin.manifest.version),
    }
}

fn direct(timeout: String, routed: bool) -> String {
    let order = if routed {
        "the new instances start beside the old ones and the router moves all traffic in one step (start-first)"
    } else {
        "the old instances stop before the new ones start (stop-first)"
    };
    format!(
        "Direct: every instance is replaced at once; {order}; the previous version comes back if the new one \
         is not ready within {timeout}"
    )
}

/// The Rolling part, also used by a fixed canary.
pub fn rolling_words(config: &RollingConfig) -> String {
    let batch = match config.batch_size {
        BatchSize::Count(n) => plural(n.max(1), "instance"),
        BatchSize::Percent(p) => format!("{p} % of the instances"),
    };
    let parallel = match config.max_parallel_batches {
        0 | 1 => "one batch at a time".to_string(),
        n => format!("up to {n} batches at a time"),
    };
    let wait = if config.wait_between_batches.as_duration().is_zero() {
        "no wait between batches".to_string()
    } else {
        format!("{} between batches", config.wait_between_batches)
    };
    format!(
        "batches of {batch}, {parallel}, {wait}, new instances start before old ones stop; a batch not ready \
         within {} rolls every updated batch back",
        config.health_check_timeout
    )
}

fn canary(config: &CanaryConfig) -> String {
    let steps: Vec<String> = config.step_percentages().iter().map(|s| format!("{} %", number(*s))).collect();
    let period = config.evaluation_period.map_or(CANARY_EVALUATION, |p| p.as_duration());
    let mut out = format!("Canary: {}, {} each", steps.join(" → "), crate::model::Span(period));
    out.push_str(&match (thresholds(&config.thresholds), config.auto_rollback) {
        (Some(t), true) => format!("; rolled back if {t}"),
        (Some(t), false) => format!("; paused for `plugsync rollout promote` or `abort` if {t}"),
        (None, _) => "; no thresholds: a step fails only when its instances are not ready".to_string(),
    });
    if let Some(surge) = config.max_surge.filter(|s| *s > 0) {
        out.push_str(&format!("; up to {} (maxSurge) for finer weights", plural(surge, "extra stable instance")));
    }
    out
}

fn blue_green(config: &BlueGreenConfig) -> String {
    let mut out =
        "Blue-green: the new version (green) starts beside the running one (blue) without traffic".to_string();
    if let Some(warmup) = config.warmup_period.filter(|w| !w.as_duration().is_zero()) {
        out.push_str(&format!(", warms up for {warmup}"));
    }
    if !config.smoke_tests.is_empty() {
        out.push_str(&format!(", passes the smoke tests {}", config.smoke_tests.join(", ")));
    }
    out.push_str(&match config.switchover_type {
        Switchover::Instant => ", then takes all traffic at once".to_string(),
        Switchover::Gradual => {
            let steps = config.gradual_steps.clone().unwrap_or_else(|| GRADUAL_STEPS.to_vec());
            let steps: Vec<String> = steps.iter().map(|s| format!("{} %", number(*s))).collect();
            format!(", then takes traffic gradually ({})", steps.join(" → "))
        }
    });
    match config.monitoring_period.filter(|m| !m.as_duration().is_zero()) {
        Some(m) => {
            out.push_str(&format!("; blue keeps running for {m} of monitoring, so a failed verdict switches back"))
        }
        None => out.push_str("; no monitoring period"),
    }
    if let Some(t) = thresholds(&config.thresholds) {
        out.push_str(&format!(" (failed if {t})"));
    }
    out.push_str(if config.keep_previous_environment {
        "; afterwards blue is kept, stopped (keepPreviousEnvironment)"
    } else {
        "; afterwards blue is removed"
    });
    out
}

fn ab_test(config: &AbConfig, manifest_version: &str) -> String {
    let a = config.variant_a.as_deref().unwrap_or("the running version");
    let b = config.variant_b.as_deref().unwrap_or(manifest_version);
    let duration = config.test_duration.map_or(AB_TEST_DURATION, |d| d.as_duration());
    let metrics = if config.decision_metrics.is_empty() {
        "no decision metrics".to_string()
    } else {
        format!("decided on {}", config.decision_metrics.join(", "))
    };
    let threshold = if config.winner_threshold.fraction() > 0.0 {
        format!("; B must be at least {} better to win", config.winner_threshold)
    } else {
        String::new()
    };
    let promote = if config.auto_promote {
        "the winner is promoted automatically"
    } else {
        "B is promoted only by a person (`plugsync rollout promote`)"
    };
    format!(
        "A/B test: A ({a}) {} % against B ({b}) {} % for {}, {metrics}{threshold}; {promote}",
        number(config.traffic_split.a),
        number(config.traffic_split.b),
        crate::model::Span(duration)
    )
}

/// `error rate > 1 %, p99 > 500 ms or success rate < 99 %`; `None` without any threshold.
pub fn thresholds(t: &Thresholds) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(rate) = t.max_error_rate {
        parts.push(format!("error rate > {rate}"));
    }
    if let Some(ms) = t.max_latency_p99_ms {
        parts.push(format!("p99 > {} ms", number(ms)));
    }
    if let Some(rate) = t.min_success_rate {
        parts.push(format!("success rate < {rate}"));
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        n => Some(format!("{} or {}", parts[..n - 1].join(", "), parts[n - 1])),
    }
}

/// Where the evidence for verdicts comes from; `None` for strategies that take no verdicts.
pub fn analysis(plugin: &Plugin) -> Option<String> {
    if plugin.canary.is_some() || matches!(plugin.strategy, Strategy::Direct | Strategy::Rolling) {
        return None;
    }
    let analysis = plugin.policy.analysis.clone().unwrap_or_default();
    let mut out = source_words(&analysis, plugin.routing.is_routed());
    if let Some(interval) = analysis.interval {
        out.push_str(&format!(", every {interval}"));
    }
    if let Some(samples) = analysis.min_samples {
        out.push_str(&format!(", at least {} before a verdict", plural(samples, "sample")));
    }
    if !analysis.metrics.is_empty() {
        let names: Vec<&str> = analysis.metrics.keys().map(String::as_str).collect();
        out.push_str(&format!("; custom metrics {}", names.join(", ")));
    }
    out.push_str("; too little data is inconclusive, never a pass");
    Some(out)
}

fn source_words(analysis: &Analysis, routed: bool) -> String {
    match analysis.effective_source(routed) {
        AnalysisSource::Router => "Evidence from the router's own per-request log".to_string(),
        AnalysisSource::Builtin => "Evidence from plugsync scraping each instance's metrics endpoint".to_string(),
        AnalysisSource::Prometheus => match &analysis.prometheus {
            Some(p) => {
                let metrics: Vec<&str> = p.queries.keys().map(String::as_str).collect();
                format!("Evidence from Prometheus at {} (queries for {})", p.url, metrics.join(", "))
            }
            None => "Evidence from Prometheus (no server configured)".to_string(),
        },
    }
}

/// What happens when what runs departs from Git.
pub fn drift(fleet: &Fleet, plugin: &Plugin) -> String {
    let (mode, from) = match plugin.manifest.drift {
        Some(mode) => (mode, "the manifest"),
        None => (fleet.config.drift, "the fleet default"),
    };
    match mode {
        DriftMode::Alert => format!("alert: reported, never repaired by itself ({from})"),
        DriftMode::Heal => format!("heal: re-applied through the strategy ({from})"),
    }
}

/// How traffic reaches the plugin's instances.
pub fn traffic(fleet: &Fleet, plugin: &Plugin) -> String {
    if fleet.config.backend.kind == crate::model::BackendKind::Kubernetes {
        return "the plugin's Kubernetes Service, selecting serving pods (a weight is a share of pods)".into();
    }
    match (plugin.routing.is_routed(), plugin.routing.sticky()) {
        (true, Some(sticky)) => format!("through the fleet's managed router (exact weights), sticky by {sticky}"),
        (true, None) => "through the fleet's managed router (exact weights)".to_string(),
        (false, _) => {
            "Docker DNS: serving instances carry the plugin's alias (a weight is a share of instances)".into()
        }
    }
}

pub fn plural(n: u32, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
