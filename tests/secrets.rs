//! Secrets stay secret: a plugin's `secretEnv` gets a unique random value, the container
//! really receives it, and then every output plugsync makes is searched for it: `validate` and
//! `plan` in every format, `reconcile --once` (text and JSON) with debug logs, the daemon's
//! debug log, `/api/v1/status`, `/api/v1/plugins/{id}`, `/metrics`, every commit of the status
//! branch (`git log -p`: messages and files), `plugsync status`/`history`, and a drift alert's
//! webhook payload. Zero hits.
//!
//! Needs Docker and git; fails loudly (never skips) without them.

use plugsync_test_support::daemon as common_daemon;

use common_daemon::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const V1: &str = "1.0.0";
/// Host variable the manifest's `secretEnv` reads (`fromEnv`).
const SOURCE_VAR: &str = "PLUGSYNC_TEST_SECRET_SOURCE";

/// A value no other output could contain by chance.
fn unique_secret() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("s3cret-{}-{nanos:x}-zq", std::process::id())
}

/// A local HTTP receiver for the webhook alert channel: keeps every POSTed body verbatim.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                // Headers too: a secret must not travel in them either.
                kept.lock().expect("bodies").push(format!("{head}\n{}", String::from_utf8_lossy(&body)));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Receiver { port, bodies }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn received(&self) -> Vec<String> {
        self.bodies.lock().expect("bodies").clone()
    }
}

/// Removes what the CLI passes created should the test fail before the daemon takes over.
struct RemoveOnDrop(String, String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        remove_fleet(&self.0, &self.1);
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn secret_env_value_appears_in_no_output_of_cli_daemon_api_status_or_alerts() {
    let secret = unique_secret();
    let receiver = Receiver::start();
    let (fleet, network) = names("secret");
    let repo = Repo::new();
    repo.write(
        "plugsync.yaml",
        &format!("{}alerts: {{webhooks: [\"{}\"]}}\n", fleet_yaml(&fleet, &network), receiver.url()),
    );
    repo.write(
        &plugin_path("web"),
        &plugin_yaml("web", V1, &[], &format!("secretEnv:\n  API_KEY: {{fromEnv: {SOURCE_VAR}}}\n")),
    );
    repo.commit_push("web with a secret");
    remove_fleet(&fleet, &network);
    let _cli_fleet = RemoveOnDrop(fleet.clone(), network.clone());
    let dir = repo.work.to_str().expect("utf-8 path").to_string();
    let env = [(SOURCE_VAR, secret.as_str()), ("PLUGSYNC_LOG", "debug"), ("NO_COLOR", "1")];

    // Every output, labelled, searched at the end.
    let mut outputs: Vec<(String, String)> = Vec::new();
    for format in ["text", "json", "markdown"] {
        let out = plugsync(&["validate", &dir, "--format", format], &env);
        assert_eq!(out.status.code(), Some(0), "validate {format}: {}", text(&out));
        outputs.push((format!("validate --format {format}"), text(&out)));
        let out = plugsync(&["plan", &dir, "--format", format], &env);
        assert_eq!(out.status.code(), Some(3), "plan {format}: {}", text(&out));
        outputs.push((format!("plan --format {format}"), text(&out)));
    }
    let out = plugsync(&["reconcile", &dir, "--once"], &env);
    assert_eq!(out.status.code(), Some(0), "reconcile --once: {}", text(&out));
    outputs.push(("reconcile --once".into(), text(&out)));
    let out = plugsync(&["reconcile", &dir, "--once", "--json"], &env);
    outputs.push(("reconcile --once --json".into(), text(&out)));
    let out = plugsync(&["reconcile", &dir, "--once", "--detect-only", "--json"], &env);
    outputs.push(("reconcile --once --detect-only".into(), text(&out)));

    // Started only now: it first removes the fleet the CLI made (never two plugsync processes
    // creating the fleet's network at once), and its Drop removes the fleet at the end.
    let mut daemon = Daemon::start(
        &fleet,
        &network,
        DaemonOptions::new(repo.url(), "1s").env(SOURCE_VAR, &secret).env("PLUGSYNC_LOG", "debug"),
    );

    // Not vacuous: the container really has the secret.
    wait_converged(&repo, &daemon, "web", V1, Duration::from_secs(60));
    let web = containers(&fleet).into_iter().find(|c| c.plugin == "web").expect("web container");
    let inspected = inspect(&web.id);
    let container_env: Vec<&str> =
        inspected["Config"]["Env"].as_array().expect("Env").iter().filter_map(|v| v.as_str()).collect();
    assert!(container_env.contains(&format!("API_KEY={secret}").as_str()), "container env: {container_env:?}");

    // Provoke a drift alert (alert mode: reported, not repaired) and wait for the webhook.
    assert!(docker_cli(&["stop", "-t", "1", &web.id]).status.success());
    wait_for(
        "a drift alert at the webhook",
        Duration::from_secs(30),
        || receiver.received().iter().any(|b| b.contains("PlugsyncDrift")),
        || format!("received: {:#?}\n{}", receiver.received(), daemon.log_tail()),
    );
    wait_for(
        "a drift commit",
        Duration::from_secs(20),
        || repo.status_subjects().iter().any(|s| s.starts_with("web: drift detected")),
        || daemon.log_tail(),
    );
    daemon.assert_alive();

    for path in ["/api/v1/status", "/api/v1/plugins/web", "/metrics", "/healthz"] {
        let (code, body) = http_get(&format!("{}{path}", daemon.base_url())).unwrap_or_else(|| panic!("GET {path}"));
        assert_eq!(code, 200, "GET {path}: {body}");
        outputs.push((format!("GET {path}"), body));
    }
    for (i, body) in receiver.received().into_iter().enumerate() {
        outputs.push((format!("webhook alert #{i}"), body));
    }
    let log = repo.bare_git(&["log", "-p", "--format=%H%n%B", "plugsync/status"]);
    assert!(log.status.success(), "git log -p: {}", text(&log));
    let status_log = String::from_utf8_lossy(&log.stdout).into_owned();
    assert!(status_log.contains("status/web.yaml"), "status branch has the plugin's file:\n{status_log}");
    outputs.push(("git log -p plugsync/status".into(), status_log));
    let url = repo.url();
    for args in
        [vec!["status", "--repo", &url], vec!["status", "web", "--repo", &url], vec!["history", "web", "--repo", &url]]
    {
        let out = plugsync(&args, &env);
        outputs.push((format!("plugsync {}", args.join(" ")), text(&out)));
    }
    daemon.stop();
    let daemon_log = daemon.log();
    assert!(daemon_log.contains("DEBUG"), "the daemon logged at debug level:\n{}", daemon.log_tail());
    outputs.push(("daemon debug log".into(), daemon_log));

    let leaks: Vec<String> = outputs
        .iter()
        .filter(|(_, out)| out.contains(&secret))
        .map(|(what, out)| {
            let lines: Vec<&str> = out.lines().filter(|l| l.contains(&secret)).take(5).collect();
            format!("{what}:\n  {}", lines.join("\n  "))
        })
        .collect();
    eprintln!(
        "searched {} outputs ({} bytes) for the secret",
        outputs.len(),
        outputs.iter().map(|o| o.1.len()).sum::<usize>()
    );
    assert!(leaks.is_empty(), "the secret value leaked into {} output(s):\n{}", leaks.len(), leaks.join("\n"));
}
