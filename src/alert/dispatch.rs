//! [`Dispatcher`]: hands each alert to every channel without ever blocking the caller.
//!
//! The log channel is written synchronously in [`Dispatcher::send`]. Every HTTP channel has a
//! bounded queue (dropping the oldest alert, with a warning, when full) and one task that
//! delivers in order: a failed delivery is retried with exponential back-off until it
//! succeeds, each request bounded by a timeout, so a black-holed receiver delays its own
//! channel only. A receiver that rejects the request itself (4xx other than 408/429) is not
//! retried (see [`AlertError::is_permanent`]).

use super::channels::{self, AlertmanagerContext, Channel};
use super::{repeat_interval, Alert, AlertError};
use crate::metrics::Metrics;
use crate::model::config::AlertsConfig;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// Metric `result` of a delivered notification.
pub const RESULT_OK: &str = "ok";
/// Metric `result` of a failed delivery attempt (retried) or a rejected one (dropped).
pub const RESULT_ERROR: &str = "error";
/// Metric `result` of an alert pushed out of a full queue.
pub const RESULT_DROPPED: &str = "dropped";

/// Knobs of the [`Dispatcher`]; [`DispatcherOptions::for_config`] gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherOptions {
    /// Alerts waiting per channel before the oldest is dropped (at least 1). Default 1000.
    pub queue_capacity: usize,
    /// First wait after a failed delivery; doubles on each further failure. Default 0.5 s.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts. Default 30 s.
    pub max_backoff: Duration,
    /// Bound on connecting plus the whole request. Default 5 s.
    pub request_timeout: Duration,
    /// Alertmanager keeps a Firing alert without `ends_at` active this long after each post.
    /// Default: 3 × the reminder interval, at least 5 min.
    pub firing_ttl: Duration,
    /// Base URL of plugsync's HTTP API for Alertmanager's `generatorURL`
    /// (`{base}/api/v1/plugins/{plugin}`); none by default.
    pub generator_url: Option<String>,
    /// PEM bundles trusted for https channels besides the host's CAs.
    pub ca_bundles: Vec<std::path::PathBuf>,
}

impl DispatcherOptions {
    /// Production values, with the Alertmanager TTL derived from `alerts.repeatInterval`.
    pub fn for_config(config: &AlertsConfig) -> DispatcherOptions {
        let ttl = repeat_interval(config).saturating_mul(3).max(Duration::from_secs(300));
        DispatcherOptions {
            queue_capacity: 1000,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            firing_ttl: ttl,
            generator_url: None,
            ca_bundles: Vec::new(),
        }
    }
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions::for_config(&AlertsConfig::default())
    }
}

/// Delivery counters of one channel, for tests, logs and the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStats {
    /// log|webhook|slack|alertmanager.
    pub channel: &'static str,
    /// Where requests go (empty for the log).
    pub endpoint: String,
    /// Alerts waiting in the queue (not counting the one in flight).
    pub queued: usize,
    /// Whether a delivery (with its retries) is under way.
    pub in_flight: bool,
    /// Alerts delivered (answered 2xx).
    pub delivered: u64,
    /// Attempts that failed and were retried.
    pub failed_attempts: u64,
    /// Alerts the receiver rejected for good (not retried).
    pub rejected: u64,
    /// Alerts dropped from a full queue.
    pub dropped: u64,
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<Alert>,
    in_flight: bool,
}

/// One HTTP channel: its queue and counters, shared by the dispatcher and its task.
struct Lane {
    channel: Channel,
    capacity: usize,
    state: Mutex<LaneState>,
    wake: Notify,
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        // A panic while holding this lock cannot leave the queue inconsistent: keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `alert`; returns the alert dropped to make room, if any.
    fn push(&self, alert: Alert) -> Option<Alert> {
        let mut state = self.lock();
        let dropped = if state.queue.len() >= self.capacity { state.queue.pop_front() } else { None };
        state.queue.push_back(alert);
        drop(state);
        self.wake.notify_one();
        dropped
    }

    /// The next alert, marking it in flight.
    fn take(&self) -> Option<Alert> {
        let mut state = self.lock();
        let next = state.queue.pop_front();
        state.in_flight = next.is_some();
        next
    }

    fn finish(&self) {
        self.lock().in_flight = false;
    }

    fn idle(&self) -> bool {
        let state = self.lock();
        state.queue.is_empty() && !state.in_flight
    }

    fn stats(&self) -> ChannelStats {
        let state = self.lock();
        ChannelStats {
            channel: self.channel.kind(),
            endpoint: self.channel.endpoint(),
            queued: state.queue.len(),
            in_flight: state.in_flight,
            delivered: self.delivered.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// What a channel task needs besides its lane.
struct Sender {
    client: reqwest::Client,
    context: AlertmanagerContext,
    metrics: Option<Arc<Metrics>>,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// Fans alerts out to the log and every configured channel. Create it inside a Tokio runtime;
/// share it as `Arc<Dispatcher>`. Dropping it stops the channel tasks (alerts still queued are
/// lost: call [`Dispatcher::shutdown`] to give them a chance first).
pub struct Dispatcher {
    lanes: Vec<Arc<Lane>>,
    logged: AtomicU64,
    metrics: Option<Arc<Metrics>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channels: Vec<String> =
            self.lanes.iter().map(|lane| format!("{} {}", lane.channel.kind(), lane.channel.endpoint())).collect();
        f.debug_struct("Dispatcher").field("channels", &channels).finish_non_exhaustive()
    }
}

/// The HTTP channels `config` asks for: every webhook, every Slack URL, the Alertmanager.
pub fn channels_for(config: &AlertsConfig) -> Vec<Channel> {
    let mut channels: Vec<Channel> = config.webhooks.iter().map(|url| Channel::Webhook { url: url.clone() }).collect();
    channels.extend(config.slack.iter().map(|url| Channel::Slack { url: url.clone() }));
    channels.extend(config.alertmanager.iter().map(|url| Channel::Alertmanager { url: url.clone() }));
    channels
}

impl Dispatcher {
    /// The log plus the channels of `config`, with production settings. Fails on a URL that
    /// cannot work (see [`Channel::check`]) or outside a Tokio runtime.
    pub fn new(config: &AlertsConfig, metrics: Option<Arc<Metrics>>) -> Result<Dispatcher, AlertError> {
        Dispatcher::with_options(config, metrics, DispatcherOptions::for_config(config))
    }

    /// [`Dispatcher::new`] with explicit settings (tests use short back-offs).
    pub fn with_options(
        config: &AlertsConfig,
        metrics: Option<Arc<Metrics>>,
        options: DispatcherOptions,
    ) -> Result<Dispatcher, AlertError> {
        Dispatcher::with_channels(channels_for(config), metrics, options)
    }

    /// The log plus `channels` (a [`Channel::Log`] among them is ignored: the log is always on).
    pub fn with_channels(
        channels: Vec<Channel>,
        metrics: Option<Arc<Metrics>>,
        options: DispatcherOptions,
    ) -> Result<Dispatcher, AlertError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        let channels: Vec<Channel> = channels.into_iter().filter(|c| *c != Channel::Log).collect();
        for channel in &channels {
            channel.check()?;
        }
        let builder = crate::tls::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout)
            .user_agent(concat!("plugsync/", env!("CARGO_PKG_VERSION")));
        let client = crate::tls::client(builder, &options.ca_bundles)
            .map_err(|e| AlertError::Client { detail: crate::analysis::error_chain(&e) })?;
        let sender = Arc::new(Sender {
            client,
            context: AlertmanagerContext {
                firing_ttl: options.firing_ttl,
                generator_url: options.generator_url.clone(),
            },
            metrics: metrics.clone(),
            initial_backoff: options.initial_backoff,
            max_backoff: options.max_backoff.max(options.initial_backoff),
        });
        let (stop, _) = watch::channel(false);
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for channel in channels {
            let lane = Arc::new(Lane {
                channel,
                capacity: options.queue_capacity.max(1),
                state: Mutex::new(LaneState::default()),
                wake: Notify::new(),
                delivered: AtomicU64::new(0),
                failed_attempts: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            });
            tasks.push(runtime.spawn(run_lane(lane.clone(), sender.clone(), stop.subscribe())));
            lanes.push(lane);
        }
        Ok(Dispatcher { lanes, logged: AtomicU64::new(0), metrics, stop, tasks })
    }

    /// Logs `alert` and queues it for every channel; returns at once.
    pub fn send(&self, alert: Alert) {
        channels::log(&alert);
        self.logged.fetch_add(1, Ordering::Relaxed);
        self.record("log", RESULT_OK);
        for lane in &self.lanes {
            if let Some(old) = lane.push(alert.clone()) {
                lane.dropped.fetch_add(1, Ordering::Relaxed);
                self.record(lane.channel.kind(), RESULT_DROPPED);
                tracing::warn!(
                    channel = lane.channel.kind(),
                    endpoint = %lane.channel.endpoint(),
                    capacity = lane.capacity,
                    dropped = %old.summary,
                    "alert queue full: dropped the oldest alert"
                );
            }
        }
    }

    /// Counters per channel, the log first.
    pub fn stats(&self) -> Vec<ChannelStats> {
        let logged = self.logged.load(Ordering::Relaxed);
        let log = ChannelStats {
            channel: "log",
            endpoint: String::new(),
            queued: 0,
            in_flight: false,
            delivered: logged,
            failed_attempts: 0,
            rejected: 0,
            dropped: 0,
        };
        std::iter::once(log).chain(self.lanes.iter().map(|lane| lane.stats())).collect()
    }

    /// Waits until every queue is empty and nothing is in flight, at most `timeout`; true
    /// when drained.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.lanes.iter().all(|lane| lane.idle()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// [`Dispatcher::flush`] for at most `grace`, then stops the channel tasks; true when
    /// everything was delivered.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.flush(grace).await
    }

    fn record(&self, channel: &str, result: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.alert_sent(channel, result);
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The task of one channel: deliver queued alerts in order until stopped.
async fn run_lane(lane: Arc<Lane>, sender: Arc<Sender>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(alert) = lane.take() else {
            tokio::select! {
                _ = lane.wake.notified() => continue,
                _ = stop.changed() => return,
            }
        };
        let stopped = deliver_with_retry(&lane, &sender, &alert, &mut stop).await;
        lane.finish();
        if stopped {
            return;
        }
    }
}

/// Delivers `alert` until it succeeds or is rejected for good; true when stopped meanwhile.
async fn deliver_with_retry(lane: &Lane, sender: &Sender, alert: &Alert, stop: &mut watch::Receiver<bool>) -> bool {
    let kind = lane.channel.kind();
    let record = |result: &str| {
        if let Some(metrics) = &sender.metrics {
            metrics.alert_sent(kind, result);
        }
    };
    let mut backoff = sender.initial_backoff;
    let mut attempt: u32 = 1;
    loop {
        let now = chrono::Utc::now();
        match channels::deliver(&sender.client, &lane.channel, alert, now, &sender.context).await {
            Ok(()) => {
                lane.delivered.fetch_add(1, Ordering::Relaxed);
                record(RESULT_OK);
                if attempt > 1 {
                    tracing::info!(channel = kind, attempt, plugin = %alert.plugin, "alert delivered after retrying");
                }
                return false;
            }
            Err(error) if error.is_permanent() => {
                lane.rejected.fetch_add(1, Ordering::Relaxed);
                record(RESULT_ERROR);
                tracing::error!(channel = kind, %error, summary = %alert.summary, "alert rejected; not retrying");
                return false;
            }
            Err(error) => {
                lane.failed_attempts.fetch_add(1, Ordering::Relaxed);
                record(RESULT_ERROR);
                tracing::warn!(
                    channel = kind,
                    attempt,
                    retry_in_ms = backoff.as_millis() as u64,
                    reason = error.metric_label(),
                    %error,
                    "alert delivery failed; retrying"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return true,
        }
        backoff = backoff.saturating_mul(2).min(sender.max_backoff);
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertState, DRIFT};
    use crate::model::duration::Span;
    use std::collections::BTreeMap;

    fn alert(summary: &str) -> Alert {
        Alert {
            fleet: "prod".into(),
            plugin: "crm".into(),
            name: DRIFT.into(),
            severity: "warning".into(),
            summary: summary.into(),
            details: Vec::new(),
            state: AlertState::Firing,
            starts_at: chrono::Utc::now(),
            ends_at: None,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn options_follow_the_repeat_interval() {
        let cases = [(None, 3 * 4 * 3600), (Some(3600), 3 * 3600), (Some(10), 300)];
        for (repeat, ttl) in cases {
            let config = AlertsConfig { repeat_interval: repeat.map(Span::from_secs), ..AlertsConfig::default() };
            assert_eq!(DispatcherOptions::for_config(&config).firing_ttl, Duration::from_secs(ttl), "{repeat:?}");
        }
    }

    #[test]
    fn channels_come_from_config_in_order() {
        let config = AlertsConfig {
            webhooks: vec!["http://a/1".into(), "http://a/2".into()],
            slack: vec!["http://s".into()],
            alertmanager: Some("http://am:9093".into()),
            repeat_interval: None,
        };
        assert_eq!(
            channels_for(&config),
            [
                Channel::Webhook { url: "http://a/1".into() },
                Channel::Webhook { url: "http://a/2".into() },
                Channel::Slack { url: "http://s".into() },
                Channel::Alertmanager { url: "http://am:9093".into() },
            ]
        );
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let got = Dispatcher::new(&AlertsConfig::default(), None);
        assert!(matches!(got, Err(AlertError::NoRuntime)), "{got:?}");
    }

    #[tokio::test]
    async fn bad_urls_are_refused_up_front() {
        let config = AlertsConfig { slack: vec!["ftp://hooks.slack.com/services/x".into()], ..AlertsConfig::default() };
        let got = Dispatcher::new(&config, None);
        assert!(matches!(got, Err(AlertError::InvalidUrl { channel: "slack", .. })), "{got:?}");
        // https is a URL like any other now (issue 10, defect 5).
        let https =
            AlertsConfig { slack: vec!["https://hooks.slack.com/services/x".into()], ..AlertsConfig::default() };
        assert!(Dispatcher::new(&https, None).is_ok());
    }

    #[tokio::test]
    async fn full_queue_drops_the_oldest_and_counts_it() {
        // A port nobody listens on refuses connections: the first alert stays in flight,
        // waiting to retry, while the queue behind it overflows.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("an ephemeral port");
        let options = DispatcherOptions {
            queue_capacity: 3,
            initial_backoff: Duration::from_secs(60),
            request_timeout: Duration::from_millis(200),
            ..DispatcherOptions::default()
        };
        let metrics = Arc::new(Metrics::new());
        let channels = vec![Channel::Webhook { url: format!("http://127.0.0.1:{port}/hook") }];
        let dispatcher = Dispatcher::with_channels(channels, Some(metrics.clone()), options).expect("dispatcher");
        dispatcher.send(alert("first"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dispatcher.stats()[1].in_flight || dispatcher.stats()[1].failed_attempts == 0 {
            assert!(Instant::now() < deadline, "first alert never in flight: {:?}", dispatcher.stats());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for i in 0..5 {
            dispatcher.send(alert(&format!("queued {i}")));
        }
        let stats = dispatcher.stats();
        assert_eq!((stats[0].channel, stats[0].delivered), ("log", 6));
        assert_eq!((stats[1].queued, stats[1].dropped, stats[1].delivered), (3, 2, 0), "{stats:?}");
        let remaining: Vec<String> = dispatcher.lanes[0].lock().queue.iter().map(|a| a.summary.clone()).collect();
        assert_eq!(remaining, ["queued 2", "queued 3", "queued 4"]);
        assert!(!dispatcher.flush(Duration::from_millis(20)).await);
        let text = metrics.render();
        for line in [
            "plugsync_alerts_sent_total{channel=\"log\",result=\"ok\"} 6",
            "plugsync_alerts_sent_total{channel=\"webhook\",result=\"dropped\"} 2",
            "plugsync_alerts_sent_total{channel=\"webhook\",result=\"error\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[tokio::test]
    async fn log_only_dispatcher_is_always_drained() {
        let dispatcher = Dispatcher::new(&AlertsConfig::default(), None).expect("dispatcher");
        dispatcher.send(alert("x"));
        assert!(dispatcher.flush(Duration::ZERO).await);
        assert_eq!(dispatcher.stats().len(), 1);
        assert!(dispatcher.shutdown(Duration::ZERO).await);
    }
}
