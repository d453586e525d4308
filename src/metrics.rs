//! Prometheus metrics of the daemon, rendered as OpenMetrics text on `GET /metrics`.
//!
//! One [`Metrics`] value owns the registry and every family; the rooms record through its small
//! methods, so label names and values stay in one place.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    provider: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    plugin: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    channel: String,
    result: String,
}

/// Registry plus the typed families. Cheap to record into from many tasks (`&self` everywhere);
/// share it as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    plugin_changes: Family<ChangeLabels, Counter>,
    git_fetch: Family<ResultLabels, Counter>,
    webhook_requests: Family<WebhookLabels, Counter>,
    plugins: Family<StateLabels, Gauge>,
    last_applied: Gauge<f64, AtomicU64>,
    drift_findings: Family<DriftLabels, Gauge>,
    /// Ticks failed in a row (fetch or engine) and the wait before the next one.
    consecutive_failures: Gauge,
    retry_backoff: Gauge<f64, AtomicU64>,
    alerts_sent: Family<AlertLabels, Counter>,
    router_replicas: Gauge,
    router_changes: Family<RouterLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouterLabels {
    kind: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn ok_label(ok: bool) -> &'static str {
    if ok {
        "success"
    } else {
        "failure"
    }
}

impl Metrics {
    // Long: one registration per metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconcile_total = Family::<ResultLabels, Counter>::default();
        // Counters get their `_total` suffix from the OpenMetrics encoder.
        registry.register(
            "plugsync_reconcile",
            "Reconcile passes by result (success|failure)",
            reconcile_total.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "plugsync_reconcile_duration_seconds",
            "Wall-clock duration of one reconcile pass",
            reconcile_duration.clone(),
        );
        let plugin_changes = Family::<ChangeLabels, Counter>::default();
        registry.register(
            "plugsync_plugin_changes",
            "Per-plugin changes by kind (create|update|scale|repair|remove) and result \
             (converged|rolled_back|failed|skipped)",
            plugin_changes.clone(),
        );
        let git_fetch = Family::<ResultLabels, Counter>::default();
        registry.register("plugsync_git_fetch", "Git fetches by result", git_fetch.clone());
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "plugsync_webhook_requests",
            "Git webhook deliveries by provider and result (accepted|ignored|unauthorized|invalid)",
            webhook_requests.clone(),
        );
        let plugins = Family::<StateLabels, Gauge>::default();
        registry.register("plugsync_plugins", "Plugins by lifecycle state", plugins.clone());
        let last_applied = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "plugsync_last_applied_timestamp_seconds",
            "Unix time of the last successfully applied revision",
            last_applied.clone(),
        );
        let drift_findings = Family::<DriftLabels, Gauge>::default();
        registry.register(
            "plugsync_drift_findings",
            "Current drift findings by plugin and kind",
            drift_findings.clone(),
        );
        let consecutive_failures = Gauge::default();
        registry.register(
            "plugsync_consecutive_failures",
            "Ticks that failed in a row (a fetch or the engine); 0 when the last one succeeded",
            consecutive_failures.clone(),
        );
        let retry_backoff = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "plugsync_retry_backoff_seconds",
            "Wait before the next tick after failures (exponential, with jitter); 0 when healthy",
            retry_backoff.clone(),
        );
        let alerts_sent = Family::<AlertLabels, Counter>::default();
        registry.register("plugsync_alerts_sent", "Alert notifications by channel and result", alerts_sent.clone());
        let router_replicas = Gauge::default();
        registry.register(
            "plugsync_router_replicas",
            "Router replicas running after the last pass (traffic.router: haproxy)",
            router_replicas.clone(),
        );
        let router_changes = Family::<RouterLabels, Counter>::default();
        registry.register(
            "plugsync_router_changes",
            "Changes to the router by kind (created|replaced|removed: replicas; reloaded: configuration \
             reloads; runtime: runtime API updates without a reload; gateway_created|gateway_reloaded|\
             gateway_replaced|gateway_removed: the edge gateway)",
            router_changes.clone(),
        );

        // Pre-create the result series so `rate()` sees a zero before the first failure.
        for ok in [true, false] {
            let labels = ResultLabels { result: ok_label(ok).into() };
            let _ = reconcile_total.get_or_create(&labels);
            let _ = git_fetch.get_or_create(&labels);
        }

        Metrics {
            registry,
            reconcile_total,
            reconcile_duration,
            plugin_changes,
            git_fetch,
            webhook_requests,
            plugins,
            last_applied,
            drift_findings,
            consecutive_failures,
            retry_backoff,
            alerts_sent,
            router_replicas,
            router_changes,
        }
    }

    /// What a pass did to the router.
    pub fn router(&self, synced: &crate::backend::router::Synced) {
        self.router_replicas.set(i64::from(synced.running));
        for (kind, n) in [
            ("created", synced.created),
            ("replaced", synced.replaced),
            ("removed", synced.removed),
            ("reloaded", synced.reloaded),
            ("runtime", synced.runtime_updates),
        ] {
            if n > 0 {
                self.router_changes.get_or_create(&RouterLabels { kind: kind.into() }).inc_by(u64::from(n));
            }
        }
        if let Some(kind) = synced.gateway.kind() {
            self.router_changes.get_or_create(&RouterLabels { kind: format!("gateway_{kind}") }).inc();
        }
    }

    /// One reconcile pass finished.
    pub fn reconcile(&self, ok: bool, seconds: f64) {
        self.reconcile_total.get_or_create(&ResultLabels { result: ok_label(ok).into() }).inc();
        if seconds.is_finite() && seconds >= 0.0 {
            self.reconcile_duration.observe(seconds);
        }
    }

    /// One plugin change: `kind` create|update|scale|repair|remove,
    /// `result` converged|rolled_back|failed|skipped.
    pub fn plugin_change(&self, kind: &str, result: &str) {
        self.plugin_changes.get_or_create(&ChangeLabels { kind: kind.into(), result: result.into() }).inc();
    }

    /// One Git fetch.
    pub fn git_fetch(&self, ok: bool) {
        self.git_fetch.get_or_create(&ResultLabels { result: ok_label(ok).into() }).inc();
    }

    /// One webhook delivery: `result` accepted|ignored|unauthorized|invalid.
    pub fn webhook(&self, provider: &str, result: &str) {
        self.webhook_requests.get_or_create(&WebhookLabels { provider: provider.into(), result: result.into() }).inc();
    }

    /// Replaces the plugin counts per lifecycle state (states absent from `counts` disappear).
    pub fn set_plugins(&self, counts: &[(String, i64)]) {
        self.plugins.clear();
        for (state, n) in counts {
            self.plugins.get_or_create(&StateLabels { state: state.clone() }).set(*n);
        }
    }

    /// Unix time (seconds) of the last successfully applied revision.
    /// The loop's back-off: failed ticks in a row and the wait it chose (0 s when healthy).
    pub fn set_backoff(&self, failures: u32, wait: Option<std::time::Duration>) {
        self.consecutive_failures.set(i64::from(failures));
        self.retry_backoff.set(wait.map_or(0.0, |w| w.as_secs_f64()));
    }

    pub fn set_last_applied(&self, unix_seconds: f64) {
        self.last_applied.set(unix_seconds);
    }

    /// Replaces the current drift findings: `(plugin, kind, count)`. Resolved findings disappear.
    pub fn set_drift(&self, findings: &[(String, String, i64)]) {
        self.drift_findings.clear();
        for (plugin, kind, n) in findings {
            self.drift_findings.get_or_create(&DriftLabels { plugin: plugin.clone(), kind: kind.clone() }).set(*n);
        }
    }

    /// One alert notification sent (or not): `channel` log|webhook|slack|alertmanager,
    /// `result` ok|error|dropped.
    pub fn alert_sent(&self, channel: &str, result: &str) {
        self.alerts_sent.get_or_create(&AlertLabels { channel: channel.into(), result: result.into() }).inc();
    }

    /// OpenMetrics text of every family, ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a label value.
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_contains_every_family_after_one_record() {
        let m = Metrics::new();
        m.reconcile(true, 0.42);
        m.plugin_change("create", "converged");
        m.git_fetch(false);
        m.webhook("github", "accepted");
        m.set_plugins(&[("running".into(), 3), ("failed".into(), 1)]);
        m.set_last_applied(1_767_225_600.0);
        m.set_drift(&[("crm".into(), "replicas".into(), 1)]);
        m.alert_sent("webhook", "success");
        let text = m.render();
        for family in [
            "plugsync_reconcile_total{result=\"success\"} 1",
            "plugsync_reconcile_total{result=\"failure\"} 0",
            "plugsync_reconcile_duration_seconds_count 1",
            "plugsync_plugin_changes_total{kind=\"create\",result=\"converged\"} 1",
            "plugsync_git_fetch_total{result=\"failure\"} 1",
            "plugsync_webhook_requests_total{provider=\"github\",result=\"accepted\"} 1",
            "plugsync_plugins{state=\"running\"} 3",
            "plugsync_last_applied_timestamp_seconds 1767225600",
            "plugsync_drift_findings{plugin=\"crm\",kind=\"replicas\"} 1",
            "plugsync_alerts_sent_total{channel=\"webhook\",result=\"success\"} 1",
        ] {
            assert!(text.contains(family), "missing {family:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn gauges_are_replaced_not_accumulated() {
        let m = Metrics::new();
        m.set_plugins(&[("running".into(), 3)]);
        m.set_plugins(&[("failed".into(), 2)]);
        m.set_drift(&[("crm".into(), "image".into(), 1)]);
        m.set_drift(&[]);
        let text = m.render();
        assert!(!text.contains("state=\"running\""), "{text}");
        assert!(text.contains("plugsync_plugins{state=\"failed\"} 2"), "{text}");
        assert!(!text.contains("plugin=\"crm\""), "{text}");
    }
}
