//! The dashboard's routes over real sockets, on the in-process server (no engine needed): the
//! pages and their parts, the embedded assets, the headers that keep manifest text inert, the
//! API beside them unchanged, and the event stream serialized once per event, as before.

use plugsync::events::EventBus;
use plugsync::metrics::Metrics;
use plugsync::model::{load, FileSet};
use plugsync::server::{serve, ServerState};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify, RwLock};

async fn start(events: Arc<EventBus>) -> (String, oneshot::Sender<()>) {
    let mut files = FileSet::new();
    files.insert("plugsync.yaml".into(), b"fleet: pages\nbackend: {type: docker, network: pages}\n".to_vec());
    files.insert(
        "plugins/crm/plugin.yaml".into(),
        b"id: crm\nname: CRM\nversion: 1.0.0\ndescription: 'Customers <b>and</b> deals'\nruntime: {image: 'x/crm:1.0.0'}\n"
            .to_vec(),
    );
    let loaded = load(&files, None);
    assert!(loaded.is_valid());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (commands, _) = mpsc::channel(8);
    let state = ServerState {
        branch: "main".into(),
        webhook_secret: None,
        api_token: Some("token".into()),
        trigger: Arc::new(Notify::new()),
        commands,
        status: Arc::new(RwLock::new(json!({
            "fleet": "pages", "revision": "abc123", "at": "2026-12-04T12:00:00Z",
            "plugins": {"crm": {"plugin": "crm", "state": "ACTIVE", "slots": {"stable": {"version": "1.0.0", "instances": 1}}}}
        }))),
        metrics: Arc::new(Metrics::new()),
        leading: None,
        events,
        fleet: Arc::new(RwLock::new(Some(Arc::new(loaded)))),
        history: Default::default(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    (base, stop)
}

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = plugsync::tls::http_client().get(url).send().await.expect("GET");
    let (code, headers) = (r.status().as_u16(), r.headers().clone());
    (code, headers, r.text().await.expect("body"))
}

#[tokio::test]
async fn pages_parts_and_assets_are_served_with_their_headers() {
    let (base, _stop) = start(Arc::default()).await;
    let (code, headers, body) = get(&format!("{base}/")).await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(body.contains("<tr data-plugin=\"crm\"") && body.contains("Customers &lt;b&gt;and&lt;/b&gt; deals"));
    let css = body.split("href=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_string();
    let (code, headers, text) = get(&format!("{base}{css}")).await;
    assert_eq!((code, headers["content-type"].to_str().unwrap_or_default()), (200, "text/css; charset=utf-8"));
    assert!(text.contains("progress"));
    let (code, headers, text) = get(&format!("{base}/assets/dashboard.js")).await;
    assert_eq!((code, headers["content-type"].to_str().unwrap_or_default()), (200, "text/javascript; charset=utf-8"));
    assert!(text.contains("EventSource"));
    assert_eq!(get(&format!("{base}/assets/nothing.js")).await.0, 404);

    for path in ["/plugins/crm", "/plugins/crm.html"] {
        let (code, _, body) = get(&format!("{base}{path}")).await;
        assert_eq!(code, 200, "{path}");
        assert!(
            body.contains("<h1>CRM (crm)</h1>") && body.contains("data-url=\"/api/v1/plugins/crm/rollout/promote\"")
        );
    }
    let (code, _, live) = get(&format!("{base}/plugins/crm/live")).await;
    assert!(code == 200 && live.contains("id=\"status-now\"") && !live.contains("<html"), "{live}");
    let (code, _, catalogue) = get(&format!("{base}/plugins/crm/catalogue")).await;
    assert!(code == 200 && catalogue.contains("x/crm:1.0.0"), "{catalogue}");
    let (code, _, body) = get(&format!("{base}/plugins/%3Cscript%3E")).await;
    assert_eq!(code, 404);
    assert!(body.contains("&lt;script&gt;") && !body.contains("<script>"), "{body}");
    // The API beside the pages answers as before.
    let (code, _, status) = get(&format!("{base}/api/v1/status")).await;
    assert!(code == 200 && status.contains("\"revision\":\"abc123\""));
}

#[tokio::test]
async fn the_event_stream_sends_each_event_as_its_json() {
    let events: Arc<EventBus> = Arc::default();
    let (base, _stop) = start(events.clone()).await;
    events.status(json!({"revision": "r1"}));
    let mut response =
        plugsync::tls::http_client().get(format!("{base}/api/v1/events")).send().await.expect("GET /api/v1/events");
    tokio::time::sleep(Duration::from_millis(100)).await;
    events.log("crm: converged");
    let mut text = String::new();
    while !text.contains("event: log") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk()).await;
        match chunk {
            Ok(Ok(Some(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("the stream ended or stalled: {other:?}\n{text}"),
        }
    }
    assert!(text.contains("event: status\ndata: {\"type\":\"status\",\"status\":{\"revision\":\"r1\"}}\n\n"), "{text}");
    assert!(text.contains("event: log\ndata: {\"type\":\"log\",\"at\":\""), "{text}");
}
