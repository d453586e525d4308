//! Gathers the evidence progressive strategies decide from: metrics of each watched slot over
//! the strategy's current analysis window (built-in scraping, or the Prometheus provider),
//! smoke tests, and A/B comparisons. The strategies stay pure; this is their eyes.

use crate::analysis::{self, verdict, PrometheusProvider, SlotMetrics, Window};
use crate::backend::probe;
use crate::backend::Backend;
use crate::model::policy::{Analysis, AnalysisSource, Thresholds};
use crate::model::{Plugin, Strategy};
use crate::plan::{Instance, Slot};
use crate::strategy::{AbResult, Evidence, RolloutState, Verdict};
use reqwest::Client;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often metrics are re-read during a window (scraping at the step rate would be waste).
const REFRESH: Duration = Duration::from_secs(1);

pub struct Analyst<'a, B: Backend> {
    plugin: &'a Plugin,
    client: &'a Client,
    /// Where the router's log is read (the backend and the fleet's name).
    router: (&'a B, &'a str),
    evidence: Evidence,
    windows: BTreeMap<Slot, Window>,
    /// When the current window started (Unix epoch ms), for the router's log.
    window_started_ms: u64,
    refreshed: Option<Instant>,
}

impl<'a, B: Backend> Analyst<'a, B> {
    pub fn new(plugin: &'a Plugin, client: &'a Client, backend: &'a B, fleet: &'a str) -> Self {
        Analyst {
            plugin,
            client,
            router: (backend, fleet),
            evidence: Evidence { window: u32::MAX, ..Default::default() },
            windows: BTreeMap::new(),
            window_started_ms: 0,
            refreshed: None,
        }
    }

    fn source(&self) -> AnalysisSource {
        self.analysis().effective_source(self.plugin.routing.is_routed())
    }

    fn analysis(&self) -> Analysis {
        self.plugin.policy.analysis.clone().unwrap_or_default()
    }

    fn thresholds(&self) -> Thresholds {
        let policy = &self.plugin.policy;
        match self.plugin.strategy {
            Strategy::BlueGreen => policy.blue_green_config.as_ref().map(|c| c.thresholds.clone()),
            _ => policy.canary_config.as_ref().map(|c| c.thresholds.clone()),
        }
        .unwrap_or_default()
    }

    fn min_samples(&self) -> u64 {
        self.analysis().min_samples.map(u64::from).unwrap_or(analysis::DEFAULT_MIN_SAMPLES)
    }

    /// Evidence for `state.window`: a new window restarts collection on `state.watch`.
    /// `now_ms` (Unix epoch) marks where a new window starts in the router's log.
    pub async fn evidence(&mut self, state: &RolloutState, instances: &[Instance], now_ms: u64) -> Evidence {
        let of =
            |slot: Slot| -> Vec<&Instance> { instances.iter().filter(|i| i.slot == slot && i.is_running()).collect() };
        if self.evidence.window != state.window {
            self.evidence = Evidence { window: state.window, ..Default::default() };
            self.windows.clear();
            self.refreshed = None;
            self.window_started_ms = now_ms;
            if self.source() == AnalysisSource::Builtin {
                for slot in &state.watch {
                    let members = of(*slot);
                    let (port, path) = self.metrics_endpoint(&members);
                    self.windows.insert(*slot, Window::start(self.client, &members, port, &path).await);
                }
            }
        }
        if let (Some(slot), None) = (state.smoke, &self.evidence.smoke) {
            self.evidence.smoke = Some(self.smoke_tests(&of(slot)).await);
        }
        if !state.watch.is_empty() && self.refreshed.is_none_or(|t| t.elapsed() >= REFRESH) {
            self.refreshed = Some(Instant::now());
            let mut metrics = BTreeMap::new();
            if self.source() == AnalysisSource::Router {
                metrics = self.router_metrics(&state.watch, now_ms).await;
            } else {
                for slot in &state.watch {
                    metrics.insert(*slot, self.slot_metrics(*slot, &of(*slot)).await);
                }
            }
            self.judge(&metrics, state).await;
        }
        self.evidence.clone()
    }

    /// Each watched slot's metrics over the window from the router's own log: a slot that
    /// got no request has zero requests (inconclusive until `minSamples`), not an error.
    async fn router_metrics(&self, watch: &[Slot], now_ms: u64) -> BTreeMap<Slot, Result<SlotMetrics, String>> {
        let (backend, fleet) = self.router;
        let lines = backend.router_log(fleet, self.window_started_ms).await;
        let seconds = now_ms.saturating_sub(self.window_started_ms) as f64 / 1000.0;
        let seen = lines.map(|l| analysis::router_log::window(l.iter().map(String::as_str), &self.plugin.id, seconds));
        watch
            .iter()
            .map(|slot| {
                let metrics = match &seen {
                    Ok(w) => Ok(w.slots.get(slot).map(|m| m.metrics.clone()).unwrap_or_else(|| SlotMetrics {
                        seconds,
                        requests_counted: true,
                        ..SlotMetrics::default()
                    })),
                    Err(e) => Err(format!("the router's log: {e}")),
                };
                (*slot, metrics)
            })
            .collect()
    }

    fn metrics_endpoint(&self, members: &[&Instance]) -> (u16, String) {
        let port =
            members.first().and_then(|i| i.spec.as_ref()).map(|s| s.port).unwrap_or(self.plugin.manifest.api.port);
        (port, self.plugin.manifest.api.metrics.clone())
    }

    async fn slot_metrics(&self, slot: Slot, members: &[&Instance]) -> Result<SlotMetrics, String> {
        if let (AnalysisSource::Prometheus, Some(p)) = (self.source(), &self.analysis().prometheus) {
            let provider = PrometheusProvider::new(p.url.clone(), p.queries.clone());
            let version = members.first().map(|i| i.version.clone()).unwrap_or_default();
            return provider
                .slot_metrics(self.client, &self.plugin.id, slot, &version)
                .await
                .map_err(|e| e.to_string());
        }
        match self.windows.get(&slot) {
            Some(window) => Ok(window.finish(self.client, members).await),
            None => Err(format!("no analysis window for slot {slot}")),
        }
    }

    async fn judge(&mut self, metrics: &BTreeMap<Slot, Result<SlotMetrics, String>>, state: &RolloutState) {
        let thresholds = self.thresholds();
        let unconfigured = thresholds.max_error_rate.is_none()
            && thresholds.max_latency_p99_ms.is_none()
            && thresholds.min_success_rate.is_none();
        for (slot, m) in metrics {
            if let Ok(m) = m {
                self.evidence.metrics.insert(*slot, m.clone());
            }
            let v = match m {
                Err(e) => Verdict::Inconclusive { reason: format!("metrics unavailable: {e}") },
                // Nothing to judge against: the step's time is the only gate.
                Ok(m) if unconfigured => {
                    Verdict::Pass { summary: format!("no thresholds configured; {}", verdict::summary(m)) }
                }
                Ok(m) => verdict::evaluate(m, &thresholds, self.min_samples()),
            };
            self.evidence.verdicts.insert(*slot, v);
        }
        if let (Some(ab), [a, b]) = (&self.plugin.policy.ab_config, state.watch.as_slice()) {
            if let (Some(Ok(ma)), Some(Ok(mb))) = (metrics.get(a), metrics.get(b)) {
                let mut extra = self.custom_metrics(*a, *b).await;
                if self.source() == AnalysisSource::Builtin {
                    extra.extend(counter_metrics(&self.analysis(), ma, mb));
                }
                let decision = verdict::ab_decide(
                    ma,
                    mb,
                    &ab.decision_metrics,
                    &extra,
                    ab.winner_threshold.percent(),
                    self.min_samples(),
                );
                self.evidence.ab = Some(AbResult {
                    winner: decision.winner,
                    inconclusive: decision.inconclusive,
                    summary: decision.explain(),
                });
            }
        }
    }

    /// Prometheus-provided decision metrics (names beyond the built-in four), per variant.
    async fn custom_metrics(&self, a: Slot, b: Slot) -> BTreeMap<String, (f64, f64)> {
        let Some(p) = self.analysis().prometheus else { return BTreeMap::new() };
        let provider = PrometheusProvider::new(p.url.clone(), p.queries.clone());
        let version = &self.plugin.manifest.version;
        let (Ok(ma), Ok(mb)) = (
            provider.custom_metrics(self.client, &self.plugin.id, a, version).await,
            provider.custom_metrics(self.client, &self.plugin.id, b, version).await,
        ) else {
            return BTreeMap::new();
        };
        ma.into_iter().filter_map(|(name, va)| Some((name.clone(), (va?, (*mb.get(&name)?)?)))).collect()
    }

    /// Every smoke-test path must answer 2xx on every instance of the slot.
    async fn smoke_tests(&self, members: &[&Instance]) -> Result<(), String> {
        let paths = self.plugin.policy.blue_green_config.as_ref().map(|c| c.smoke_tests.clone()).unwrap_or_default();
        for instance in members {
            let port = instance.spec.as_ref().map(|s| s.port).unwrap_or(self.plugin.manifest.api.port);
            for path in &paths {
                if !probe::http_ok(self.client, instance, port, path, Duration::from_secs(5)).await {
                    return Err(format!("GET {path} on {} did not answer 2xx", instance.name));
                }
            }
        }
        Ok(())
    }
}

/// The policy's counter metrics (`analysis.metrics`) for variants A and B; a side without
/// traffic is NaN, which [`verdict::ab_decide`] reports as "no value".
fn counter_metrics(analysis: &Analysis, a: &SlotMetrics, b: &SlotMetrics) -> BTreeMap<String, (f64, f64)> {
    let value = |m: &SlotMetrics, [num, den]: &[String; 2]| m.ratio(num, den).unwrap_or(f64::NAN);
    analysis.metrics.iter().map(|(name, c)| (name.clone(), (value(a, &c.ratio), value(b, &c.ratio)))).collect()
}
