//! The HTTP API over real sockets: webhooks per provider, rollout commands, metrics, health.

use hmac::{Hmac, Mac};
use plugsync::metrics::Metrics;
use plugsync::server::{serve, Command, ServerState};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify, RwLock};

const SECRET: &str = "hook-secret";
const TOKEN: &str = "api-token";

struct Server {
    base: String,
    trigger: Arc<Notify>,
    commands: mpsc::Receiver<Command>,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(secret: Option<&str>, token: Option<&str>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let trigger = Arc::new(Notify::new());
        let (tx, commands) = mpsc::channel(8);
        let state = ServerState {
            branch: "main".into(),
            webhook_secret: secret.map(str::to_string),
            api_token: token.map(str::to_string),
            trigger: trigger.clone(),
            commands: tx,
            status: Arc::new(RwLock::new(json!({
                "fleet": "demo",
                "plugins": {"crm": {"state": "running", "version": "1.2.0"}}
            }))),
            metrics: Arc::new(Metrics::new()),
            leading: None,
            events: Default::default(),
            fleet: Default::default(),
            history: Default::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        Server { base, trigger, commands, client: plugsync::tls::http_client(), stop: Some(stop), task: Some(task) }
    }

    async fn hook(&self, headers: &[(&str, String)], body: &str) -> (u16, String) {
        let mut req = self
            .client
            .post(format!("{}/hooks/git", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn fired(&self) -> bool {
        tokio::time::timeout(Duration::from_millis(300), self.trigger.notified()).await.is_ok()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap()
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
    }
}

fn hex_hmac(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn push(git_ref: &str) -> String {
    json!({
        "ref": git_ref,
        "after": "0123456789abcdef0123456789abcdef01234567",
        "repository": {"full_name": "acme/fleet"}
    })
    .to_string()
}

fn github(body: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![("X-GitHub-Event", "push".into()), ("X-Hub-Signature-256", format!("sha256={}", hex_hmac(secret, body)))]
}

#[tokio::test]
async fn signed_github_push_for_the_branch_triggers() {
    let s = Server::start(Some(SECRET), Some(TOKEN)).await;
    let body = push("refs/heads/main");
    let (status, text) = s.hook(&github(&body, SECRET), &body).await;
    assert_eq!(status, 202, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, json!({"triggered": true, "ref": "refs/heads/main"}));
    assert!(s.fired().await, "trigger should fire");
    s.stop().await;
}

#[tokio::test]
async fn wrongly_signed_or_unsigned_github_push_is_refused() {
    let s = Server::start(Some(SECRET), Some(TOKEN)).await;
    let body = push("refs/heads/main");
    let (status, text) = s.hook(&github(&body, "not-the-secret"), &body).await;
    assert_eq!(status, 401, "{text}");
    assert!(!text.contains(SECRET));
    assert!(!s.fired().await, "wrong signature must not trigger");

    let (status, _) = s.hook(&[("X-GitHub-Event", "push".into())], &body).await;
    assert_eq!(status, 401);
    assert!(!s.fired().await, "unsigned push must not trigger");

    // A signature over a different body (tampered payload).
    let other = push("refs/heads/evil");
    let (status, _) = s.hook(&github(&other, SECRET), &body).await;
    assert_eq!(status, 401);
    assert!(!s.fired().await);
    s.stop().await;
}

#[tokio::test]
async fn gitea_signed_push_triggers() {
    let s = Server::start(Some(SECRET), None).await;
    let body = push("refs/heads/main");
    let headers = vec![
        ("X-Gitea-Event", "push".to_string()),
        ("X-GitHub-Event", "push".to_string()),
        ("X-Gitea-Signature", hex_hmac(SECRET, &body)),
    ];
    let (status, text) = s.hook(&headers, &body).await;
    assert_eq!(status, 202, "{text}");
    assert!(s.fired().await);
    s.stop().await;
}

#[tokio::test]
async fn gitlab_token_is_checked() {
    let s = Server::start(Some(SECRET), None).await;
    let body = json!({
        "ref": "refs/heads/main",
        "after": "abc",
        "repository": {"path_with_namespace": "acme/fleet"}
    })
    .to_string();
    let wrong = vec![("X-Gitlab-Event", "Push Hook".to_string()), ("X-Gitlab-Token", "nope".to_string())];
    let (status, _) = s.hook(&wrong, &body).await;
    assert_eq!(status, 401);
    assert!(!s.fired().await);

    let right = vec![("X-Gitlab-Event", "Push Hook".to_string()), ("X-Gitlab-Token", SECRET.to_string())];
    let (status, text) = s.hook(&right, &body).await;
    assert_eq!(status, 202, "{text}");
    assert!(s.fired().await);
    s.stop().await;
}

#[tokio::test]
async fn push_to_another_branch_does_not_trigger() {
    let s = Server::start(Some(SECRET), None).await;
    let body = push("refs/heads/feature");
    let (status, text) = s.hook(&github(&body, SECRET), &body).await;
    assert_eq!(status, 202, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["triggered"], json!(false));
    assert_eq!(v["ref"], json!("refs/heads/feature"));
    assert!(!s.fired().await);
    s.stop().await;
}

#[tokio::test]
async fn ping_and_other_events_do_not_trigger() {
    let s = Server::start(Some(SECRET), None).await;
    let body = r#"{"zen":"Keep it logically awesome.","hook_id":7}"#;
    let headers = vec![
        ("X-GitHub-Event", "ping".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hex_hmac(SECRET, body))),
    ];
    let (status, text) = s.hook(&headers, body).await;
    assert_eq!((status, text.as_str()), (200, "pong"));
    assert!(!s.fired().await);

    let body = r#"{"action":"opened"}"#;
    let headers = vec![
        ("X-GitHub-Event", "issues".to_string()),
        ("X-Hub-Signature-256", format!("sha256={}", hex_hmac(SECRET, body))),
    ];
    let (status, text) = s.hook(&headers, body).await;
    assert_eq!(status, 202, "{text}");
    assert!(!s.fired().await);
    s.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let s = Server::start(None, None).await;
    let (status, _) = s.hook(&[("X-GitHub-Event", "push".into())], "{oops").await;
    assert_eq!(status, 400);
    assert!(!s.fired().await);
    s.stop().await;
}

#[tokio::test]
async fn rollout_commands_need_the_token() {
    let mut s = Server::start(Some(SECRET), Some(TOKEN)).await;
    let url = format!("{}/api/v1/plugins/crm/rollout/promote", s.base);

    let resp = s.client.post(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = s.client.post(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(s.commands.try_recv().is_err(), "no command without a valid token");

    let resp = s.client.post(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"accepted": true, "plugin": "crm", "action": "promote"}));
    let cmd = tokio::time::timeout(Duration::from_secs(2), s.commands.recv()).await.unwrap().unwrap();
    assert_eq!(cmd, Command::Promote { plugin: "crm".into() });

    let resp = s
        .client
        .post(format!("{}/api/v1/plugins/crm/rollout/explode", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    s.stop().await;
}

#[tokio::test]
async fn rollout_commands_refused_without_configured_token() {
    let mut s = Server::start(None, None).await;
    let resp = s
        .client
        .post(format!("{}/api/v1/plugins/crm/rollout/abort", s.base))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].is_string());
    assert!(s.commands.try_recv().is_err());
    s.stop().await;
}

#[tokio::test]
async fn health_status_and_metrics() {
    let s = Server::start(Some(SECRET), None).await;
    let resp = s.get("/healthz").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");

    let v: Value = s.get("/api/v1/status").await.json().await.unwrap();
    assert_eq!(v["fleet"], json!("demo"));
    let resp = s.get("/api/v1/plugins/crm").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["version"], json!("1.2.0"));
    let resp = s.get("/api/v1/plugins/nope").await;
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());

    // One unauthorized and one accepted delivery show up in the metrics.
    let body = push("refs/heads/main");
    s.hook(&[("X-GitHub-Event", "push".into())], &body).await;
    s.hook(&github(&body, SECRET), &body).await;
    let resp = s.get("/metrics").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = resp.text().await.unwrap();
    assert!(text.contains("plugsync_webhook_requests_total"), "{text}");
    assert!(text.contains(r#"plugsync_webhook_requests_total{provider="github",result="unauthorized"} 1"#), "{text}");
    assert!(text.contains(r#"plugsync_webhook_requests_total{provider="github",result="accepted"} 1"#), "{text}");
    s.stop().await;
}
