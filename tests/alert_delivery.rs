//! Alert delivery over real sockets: a real Alertmanager (Debian's `prometheus-alertmanager`
//! package, `/usr/bin/prometheus-alertmanager`), and a local HTTP receiver for the generic
//! webhook and Slack formats. Fails (never skips) when the package is missing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Router;
use chrono::Utc;
use plugsync::alert::{
    self, AlertState, Channel, Dispatcher, DispatcherOptions, FindingSummary, Incidents, RolloutEventKind, DRIFT,
};
use plugsync::metrics::Metrics;
use plugsync::model::config::AlertsConfig;
use plugsync_test_support::servers::{self, Server};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PLUGSYNC_LOG"))
        .try_init();
}

/// Short back-offs and timeouts so the tests see retries within a second or two.
fn fast_options() -> DispatcherOptions {
    DispatcherOptions {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        request_timeout: Duration::from_millis(500),
        ..DispatcherOptions::default()
    }
}

fn findings(n: usize) -> Vec<FindingSummary> {
    (0..n)
        .map(|i| FindingSummary {
            kind: ["image", "replicas", "env"][i % 3].to_string(),
            instance: format!("crm-{i}"),
            text: format!("finding {i}"),
        })
        .collect()
}

// ---------------------------------------------------------------- Alertmanager

/// `GET /api/v2/alerts` (Alertmanager lists active, silenced, inhibited and unprocessed alerts
/// there; resolved ones are never listed).
async fn listed(am: &Server) -> Vec<Value> {
    let url = format!("{}/api/v2/alerts", am.url);
    let response = plugsync::tls::http_client().get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(response.status().is_success(), "GET {url}: {}", response.status());
    match response.json::<Value>().await {
        Ok(Value::Array(alerts)) => alerts,
        other => panic!("GET {url}: not a JSON array: {other:?}"),
    }
}

/// The listed alert whose labels include every pair of `labels`.
async fn find(am: &Server, labels: &[(&str, &str)]) -> Option<Value> {
    listed(am).await.into_iter().find(|a| labels.iter().all(|(k, v)| a["labels"][*k] == *v))
}

#[tokio::test]
async fn alertmanager_shows_the_firing_alert_then_forgets_the_resolved_one() {
    init_logs();
    let started = Instant::now();
    let am = servers::alertmanager().await;
    let ready_after = started.elapsed();
    let metrics = Arc::new(Metrics::new());
    let config = AlertsConfig { alertmanager: Some(am.url.clone()), ..AlertsConfig::default() };
    let options = DispatcherOptions { generator_url: Some("http://plugsync.test:8080".into()), ..fast_options() };
    let dispatcher = Dispatcher::with_options(&config, Some(metrics.clone()), options).expect("dispatcher");
    let mut incidents = Incidents::new(alert::repeat_interval(&config));
    let drift_labels = [("alertname", DRIFT), ("fleet", "prod"), ("plugin", "crm"), ("severity", "warning")];

    // Firing.
    let fired = Instant::now();
    let alerts = incidents.observe("prod", "crm", DRIFT, &findings(3), Utc::now());
    assert_eq!(alerts.len(), 1);
    for a in alerts {
        dispatcher.send(a);
    }
    assert!(dispatcher.flush(Duration::from_secs(10)).await, "not delivered: {:?}", dispatcher.stats());
    let active = find(&am, &drift_labels).await;
    let firing_visible = fired.elapsed();
    let Some(active) = active else { panic!("no active PlugsyncDrift alert; listed: {:#?}", listed(&am).await) };
    assert_eq!(active["status"]["state"], "active", "{active:#}");
    assert_eq!(active["annotations"]["summary"], "plugin crm: 3 drift findings (env, image, replicas)", "{active:#}");
    assert_eq!(
        active["annotations"]["description"],
        "image on crm-0: finding 0\nreplicas on crm-1: finding 1\nenv on crm-2: finding 2"
    );
    assert_eq!(active["generatorURL"], "http://plugsync.test:8080/api/v1/plugins/crm", "{active:#}");
    let ends_at = active["endsAt"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let Some(ends_at) = ends_at else { panic!("no endsAt in {active:#}") };
    assert!(
        ends_at.with_timezone(&Utc) > Utc::now() + chrono::TimeDelta::hours(1),
        "a firing drift alert must outlive Alertmanager's resolve_timeout until the next reminder: {active:#}"
    );

    // A rollout failure is its own alert, firing; a rollout start never shows up as active.
    dispatcher.send(alert::rollout("prod", "crm", RolloutEventKind::Failed, "never ready", Utc::now()));
    dispatcher.send(alert::rollout("prod", "crm", RolloutEventKind::Started, "1.0.0 → 1.1.0", Utc::now()));
    assert!(dispatcher.flush(Duration::from_secs(10)).await, "not delivered: {:?}", dispatcher.stats());
    let failed = find(&am, &[("alertname", "PlugsyncRollout"), ("event", "failed"), ("severity", "critical")]).await;
    assert!(failed.is_some_and(|a| a["status"]["state"] == "active"), "{:#?}", listed(&am).await);
    assert!(find(&am, &[("event", "started")]).await.is_none(), "{:#?}", listed(&am).await);

    // Resolved.
    let resolved_at = Instant::now();
    let alerts = incidents.observe("prod", "crm", DRIFT, &[], Utc::now());
    assert_eq!(alerts.iter().map(|a| a.state).collect::<Vec<_>>(), [AlertState::Resolved]);
    for a in alerts {
        dispatcher.send(a);
    }
    assert!(dispatcher.flush(Duration::from_secs(10)).await, "not delivered: {:?}", dispatcher.stats());
    let listed = listed(&am).await;
    let resolved_visible = resolved_at.elapsed();
    assert!(
        !listed.iter().any(|a| drift_labels.iter().all(|(k, v)| a["labels"][*k] == *v)),
        "the resolved drift alert is still listed as active: {listed:#?}"
    );
    assert_eq!(listed.len(), 1, "only the rollout failure stays active: {listed:#?}");

    let stats = dispatcher.stats();
    assert_eq!((stats[1].channel, stats[1].delivered, stats[1].failed_attempts), ("alertmanager", 4, 0), "{stats:?}");
    let text = metrics.render();
    assert!(text.contains("plugsync_alerts_sent_total{channel=\"alertmanager\",result=\"ok\"} 4"), "{text}");
    println!(
        "MEASURED alertmanager: ready after {ready_after:?}; firing alert sent and listed active after \
         {firing_visible:?}; resolved alert sent and gone after {resolved_visible:?}"
    );
}

// ---------------------------------------------------------------- local receiver

#[derive(Default)]
struct Inbox {
    /// (path, JSON body) in arrival order.
    received: Mutex<Vec<(String, Value)>>,
    /// Requests answered per path, to fail the first one of `/flaky`.
    answered: Mutex<std::collections::BTreeMap<String, usize>>,
}

impl Inbox {
    fn bodies(&self, path: &str) -> Vec<Value> {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        received.iter().filter(|(p, _)| p == path).map(|(_, body)| body.clone()).collect()
    }
}

/// Records every POST; `/reject…` answers 400, the first request to `/flaky…` answers 503.
async fn record(State(inbox): State<Arc<Inbox>>, uri: Uri, body: Bytes) -> StatusCode {
    let path = uri.path().to_string();
    let seen = {
        let mut answered = inbox.answered.lock().unwrap_or_else(|e| e.into_inner());
        let n = answered.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    if path.starts_with("/reject") {
        return StatusCode::BAD_REQUEST;
    }
    if path.starts_with("/flaky") && seen == 1 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let body = serde_json::from_slice(&body).unwrap_or_else(|e| Value::String(format!("not JSON: {e}")));
    inbox.received.lock().unwrap_or_else(|e| e.into_inner()).push((path, body));
    StatusCode::OK
}

struct Receiver {
    base: String,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let inbox = Arc::new(Inbox::default());
        let app = Router::new().fallback(record).with_state(inbox.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { base, inbox, task }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn webhook_and_slack_receive_readable_bodies_retrying_5xx_and_dropping_4xx() {
    init_logs();
    let receiver = Receiver::start(0).await;
    let config = AlertsConfig {
        webhooks: vec![format!("{}/hook", receiver.base), format!("{}/reject", receiver.base)],
        slack: vec![format!("{}/flaky-slack", receiver.base)],
        ..AlertsConfig::default()
    };
    let dispatcher = Dispatcher::with_options(&config, None, fast_options()).expect("dispatcher");
    let mut incidents = Incidents::new(Duration::from_secs(600));
    let t0 = Utc::now();
    let mut sent = incidents.observe("prod", "crm", DRIFT, &findings(3), t0);
    sent.extend(incidents.observe("prod", "crm", DRIFT, &[], t0 + chrono::TimeDelta::seconds(90)));
    assert_eq!(sent.len(), 2);
    let started = Instant::now();
    for a in &sent {
        dispatcher.send(a.clone());
    }
    assert!(dispatcher.flush(Duration::from_secs(10)).await, "not delivered: {:?}", dispatcher.stats());
    let delivered_after = started.elapsed();

    let hooks = receiver.inbox.bodies("/hook");
    let want: Vec<Value> = sent.iter().map(|a| serde_json::to_value(a).expect("serialise")).collect();
    assert_eq!(hooks, want, "the webhook gets each alert as JSON, in order");
    assert_eq!(hooks[0]["state"], "firing");
    assert_eq!(hooks[0]["details"].as_array().map(Vec::len), Some(3));
    assert_eq!(hooks[1]["state"], "resolved");
    assert_eq!(hooks[1]["endsAt"], alert::format_time(t0 + chrono::TimeDelta::seconds(90)));

    let slack: Vec<String> = receiver
        .inbox
        .bodies("/flaky-slack")
        .iter()
        .map(|b| b["text"].as_str().unwrap_or_else(|| panic!("no text in {b}")).to_string())
        .collect();
    assert_eq!(slack.len(), 2, "{slack:#?}");
    assert!(
        slack[0].starts_with(
            ":rotating_light: [FIRING] plugin crm: 3 drift findings (env, image, replicas)\n\
             • image on crm-0: finding 0\n"
        ),
        "{}",
        slack[0]
    );
    assert!(slack[1].starts_with(":white_check_mark: [RESOLVED] plugin crm: drift resolved\n"), "{}", slack[1]);
    assert!(slack[1].contains("\n• open for 1m 30s\n"), "{}", slack[1]);

    let stats = dispatcher.stats();
    let by_endpoint = |suffix: &str| {
        stats.iter().find(|s| s.endpoint.ends_with(suffix)).unwrap_or_else(|| panic!("no {suffix} in {stats:?}"))
    };
    let slack_stats = by_endpoint("/flaky-slack");
    assert_eq!((slack_stats.delivered, slack_stats.failed_attempts), (2, 1), "503 retried: {stats:?}");
    let rejected = by_endpoint("/reject");
    assert_eq!((rejected.delivered, rejected.rejected, rejected.failed_attempts), (0, 2, 0), "400 dropped: {stats:?}");
    println!("MEASURED webhook+slack: 2 alerts on 3 channels delivered (one 503 retried) in {delivered_after:?}");
}

#[tokio::test]
async fn fifty_findings_in_one_second_give_one_alert_then_one_resolve() {
    init_logs();
    let receiver = Receiver::start(0).await;
    let config = AlertsConfig { webhooks: vec![format!("{}/hook", receiver.base)], ..AlertsConfig::default() };
    let dispatcher = Dispatcher::with_options(&config, None, fast_options()).expect("dispatcher");
    let mut incidents = Incidents::new(alert::repeat_interval(&config));
    let started = Instant::now();
    let mut produced = 0;
    for i in 1..=50 {
        let alerts = incidents.observe("prod", "crm", DRIFT, &findings(i), Utc::now());
        produced += alerts.len();
        for a in alerts {
            dispatcher.send(a);
        }
        tokio::time::sleep(Duration::from_millis(19)).await;
    }
    let burst = started.elapsed();
    assert!(burst < Duration::from_secs(3), "the burst took {burst:?}");
    assert!(dispatcher.flush(Duration::from_secs(10)).await, "not delivered: {:?}", dispatcher.stats());
    let hooks = receiver.inbox.bodies("/hook");
    assert_eq!((produced, hooks.len()), (1, 1), "{hooks:#?}");
    assert_eq!(hooks[0]["state"], "firing");
    assert_eq!(hooks[0]["summary"], "plugin crm: 1 drift finding (image)");

    for a in incidents.observe("prod", "crm", DRIFT, &[], Utc::now()) {
        dispatcher.send(a);
    }
    assert!(dispatcher.flush(Duration::from_secs(10)).await, "not delivered: {:?}", dispatcher.stats());
    let hooks = receiver.inbox.bodies("/hook");
    assert_eq!(hooks.iter().map(|h| h["state"].clone()).collect::<Vec<_>>(), ["firing", "resolved"]);
    assert_eq!(hooks[1]["details"][0], "was: plugin crm: 50 drift findings (env ×16, image ×17, replicas ×17)");
    println!("MEASURED burst: 50 observations in {burst:?} → 1 alert delivered, then 1 resolve");
}

#[tokio::test]
async fn a_down_receiver_never_blocks_send_and_gets_everything_once_it_is_up() {
    init_logs();
    let port = plugsync_test_support::daemon::free_port();
    let config = AlertsConfig { webhooks: vec![format!("http://127.0.0.1:{port}/hook")], ..AlertsConfig::default() };
    let metrics = Arc::new(Metrics::new());
    let dispatcher = Dispatcher::with_options(&config, Some(metrics.clone()), fast_options()).expect("dispatcher");

    let started = Instant::now();
    for i in 0..100 {
        dispatcher.send(alert::rollout("prod", "crm", RolloutEventKind::Step, &format!("step {i}"), Utc::now()));
    }
    let send_time = started.elapsed();
    assert!(send_time < Duration::from_millis(100), "100 sends took {send_time:?}");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stats = dispatcher.stats();
    assert_eq!((stats[1].delivered, stats[1].queued), (0, 99), "{stats:?}");
    assert!(stats[1].failed_attempts >= 3, "retried with back-off while down: {stats:?}");
    let attempts_while_down = stats[1].failed_attempts;

    let up = Instant::now();
    let receiver = Receiver::start(port).await;
    assert!(dispatcher.flush(Duration::from_secs(10)).await, "not delivered: {:?}", dispatcher.stats());
    let drained_after = up.elapsed();
    let hooks = receiver.inbox.bodies("/hook");
    let summaries: Vec<String> = hooks.iter().map(|h| h["summary"].as_str().unwrap_or_default().to_string()).collect();
    let want: Vec<String> = (0..100).map(|i| format!("plugin crm: rollout step: step {i}")).collect();
    assert_eq!(summaries, want, "every alert, once, in order");
    let text = metrics.render();
    assert!(text.contains("plugsync_alerts_sent_total{channel=\"webhook\",result=\"ok\"} 100"), "{text}");
    println!(
        "MEASURED down receiver: 100 sends returned in {send_time:?}; {attempts_while_down} failed attempts in 1.2 s \
         (back-off 50 ms doubling to 400 ms); all 100 delivered {drained_after:?} after the receiver came up"
    );
}

#[tokio::test]
async fn a_black_holed_receiver_times_out_and_delays_only_its_own_channel() {
    init_logs();
    // Accepts connections and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hole_addr = hole.local_addr().expect("local address");
    let holder = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            kept.push(socket);
        }
    });
    let receiver = Receiver::start(0).await;
    let channels = vec![
        Channel::Webhook { url: format!("http://{hole_addr}/hook") },
        Channel::Webhook { url: format!("{}/hook", receiver.base) },
    ];
    let options = DispatcherOptions { request_timeout: Duration::from_secs(1), ..fast_options() };
    let dispatcher = Dispatcher::with_channels(channels, None, options).expect("dispatcher");

    let started = Instant::now();
    for i in 0..3 {
        dispatcher.send(alert::rollout("prod", "crm", RolloutEventKind::Step, &format!("step {i}"), Utc::now()));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver.inbox.bodies("/hook").len() < 3 {
        assert!(Instant::now() < deadline, "the live channel waited for the black hole: {:?}", dispatcher.stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live_after = started.elapsed();
    let stats = dispatcher.stats();
    assert_eq!(stats[1].failed_attempts, 0, "the live channel was done before the first 1 s timeout: {stats:?}");
    assert!(live_after < Duration::from_secs(1), "live channel took {live_after:?}");

    // The black-holed channel times out (1 s) and retries, the alerts behind it waiting.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dispatcher.stats()[1].failed_attempts < 2 {
        assert!(Instant::now() < deadline, "no request timeout: {:?}", dispatcher.stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let two_timeouts = started.elapsed();
    let stats = dispatcher.stats();
    let hole_stats = &stats[1];
    assert!(hole_stats.endpoint.contains(&hole_addr.to_string()), "{stats:?}");
    assert_eq!((hole_stats.delivered, hole_stats.queued, hole_stats.in_flight), (0, 2, true), "{stats:?}");
    assert!(two_timeouts >= Duration::from_secs(2), "two 1 s timeouts took only {two_timeouts:?}");
    println!(
        "MEASURED black hole: the live channel got 3 alerts in {live_after:?}; the black-holed one timed out \
         twice (1 s timeout, 50 ms back-off) after {two_timeouts:?}"
    );
    drop(dispatcher);
    holder.abort();
}
