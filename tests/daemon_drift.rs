//! Drift through the daemon against the real Docker engine and a real Git remote:
//!
//! - `drift: alert` (the default): a `docker stop` is detected at once (Docker's event
//!   stream), recorded on the status branch with its cause, counted in
//!   `plugsync_drift_findings`, sent as ONE webhook alert — and not repaired; starting the
//!   container again resolves it (status commit and a resolved alert).
//! - `drift: heal`: a stopped instance is back within a couple of seconds of the event.
//! - flapping: after `healing.flapLimit` heals, healing stops and a flapping alert goes out.
//!
//! Needs Docker; fails loudly without it.

use plugsync_test_support::daemon as common_daemon;

use common_daemon::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const V1: &str = "1.0.0";

/// A local HTTP receiver for the generic webhook: keeps every POSTed JSON body.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
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
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                if let Ok(json) = serde_json::from_slice(&body) {
                    kept.lock().expect("bodies").push(json);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Receiver { port, bodies }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Alerts received so far named `name` in `state` (FIRING / RESOLVED, as sent).
    fn alerts(&self, name: &str, state: &str) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .expect("bodies")
            .iter()
            .filter(|b| b["name"] == name && b["state"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(state)))
            .cloned()
            .collect()
    }
}

fn setup(tag: &str, fleet_extra: &str, plugin_extra: &str) -> (Repo, Daemon, String) {
    let (fleet, network) = names(tag);
    let repo = Repo::new();
    repo.write("plugsync.yaml", &format!("{}{fleet_extra}", fleet_yaml(&fleet, &network)));
    repo.write(&plugin_path("web"), &plugin_yaml("web", V1, &[], plugin_extra));
    repo.commit_push("web 1.0.0");
    let daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    wait_for("web ACTIVE", Duration::from_secs(60), || repo.status_active("web", V1));
    let id = containers(&fleet).into_iter().find(|c| c.plugin == "web").expect("web container").id;
    (repo, daemon, id)
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !check() {
        assert!(t.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

fn running_web(fleet: &str) -> Vec<Container> {
    containers(fleet).into_iter().filter(|c| c.plugin == "web" && c.state == "running").collect()
}

#[test]
fn alert_mode_reports_drift_once_without_repairing_and_resolves() {
    let receiver = Receiver::start();
    let (repo, daemon, id) = setup("dalert", &format!("alerts: {{webhooks: [\"{}\"]}}\n", receiver.url()), "");
    assert!(docker_cli(&["stop", "-t", "1", &id]).status.success());
    let detected = wait_for("a drift commit", Duration::from_secs(20), || {
        repo.status_subjects().iter().any(|s| s.starts_with("web: drift detected"))
    });
    // Docker's stop event can wake a check while the container is still shutting down (its
    // probe already failing): the incident then opens as "unhealthy" and is updated to
    // "stopped" by the next check ("drift now: …"). Either way it ends up naming the stop.
    let is_stop =
        |s: &String| (s.starts_with("web: drift detected") || s.starts_with("web: drift now")) && s.contains("stopped");
    wait_for("the drift commit naming the stop", Duration::from_secs(20), || {
        repo.status_subjects().iter().any(is_stop)
    });
    let subject = repo.status_subjects().into_iter().find(is_stop).expect("subject");
    eprintln!("MEASURED drift detected {detected:?} after docker stop: {subject}");
    assert!(subject.contains("stopped"), "{subject}");
    assert!(subject.contains("docker"), "the cause from Docker's events is named: {subject}");
    let status = repo.status_text("status/web.yaml").expect("status");
    assert!(status.contains("open: true") && status.contains("detectedAt"), "{status}");
    // Reported, not repaired.
    std::thread::sleep(Duration::from_secs(3));
    assert!(running_web(&daemon.fleet).is_empty(), "drift: alert must not repair: {:?}", containers(&daemon.fleet));
    let metrics = http_get(&format!("{}/metrics", daemon.base_url())).expect("metrics").1;
    assert!(
        metrics.contains("plugsync_drift_findings{plugin=\"web\",kind=\"stopped\"} 1"),
        "{}",
        metrics.lines().filter(|l| l.contains("drift")).collect::<Vec<_>>().join("\n")
    );
    wait_for("the webhook alert", Duration::from_secs(10), || !receiver.alerts("PlugsyncDrift", "firing").is_empty());
    // Ticks keep finding it; still one alert.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.alerts("PlugsyncDrift", "firing").len(), 1, "one alert per incident");

    assert!(docker_cli(&["start", &id]).status.success());
    let resolved = wait_for("the resolve commit", Duration::from_secs(20), || {
        repo.status_subjects().iter().any(|s| s.starts_with("web: drift resolved"))
    });
    wait_for("the resolved alert", Duration::from_secs(10), || {
        !receiver.alerts("PlugsyncDrift", "resolved").is_empty()
    });
    eprintln!("MEASURED drift resolved {resolved:?} after docker start");
    drop(daemon);
}

#[test]
fn heal_mode_restores_a_stopped_instance_quickly() {
    let (_repo, daemon, id) = setup("dheal", "", "drift: heal\n");
    let t = Instant::now();
    assert!(docker_cli(&["stop", "-t", "1", &id]).status.success());
    let stopped_after = t.elapsed();
    let healed = wait_for("a running web instance", Duration::from_secs(30), || !running_web(&daemon.fleet).is_empty());
    eprintln!(
        "MEASURED heal: a running instance {:?} after `docker stop` returned ({stopped_after:?} for the stop itself)",
        healed
    );
    assert!(daemon.log().contains("engine event"), "woken by Docker's event stream:\n{}", daemon.log_tail());
}

#[test]
fn flapping_stops_healing_and_alerts() {
    let receiver = Receiver::start();
    let fleet_extra = format!(
        "drift: heal\nhealing: {{backoff: 200ms, flapLimit: 2, flapWindow: 10m}}\nalerts: {{webhooks: [\"{}\"]}}\n",
        receiver.url()
    );
    let (repo, mut daemon, _) = setup("dflap", &fleet_extra, "");
    for round in 1..=2 {
        let id = running_web(&daemon.fleet).first().expect("running web").id.clone();
        assert!(docker_cli(&["stop", "-t", "1", &id]).status.success());
        let healed = wait_for(&format!("heal {round}"), Duration::from_secs(30), || {
            running_web(&daemon.fleet).iter().any(|c| c.id != id)
        });
        eprintln!("MEASURED heal {round} after {healed:?}");
        // Let the healing pass finish: a stop during it is repaired by the same pass.
        std::thread::sleep(Duration::from_secs(2));
    }
    let id = running_web(&daemon.fleet).first().expect("running web").id.clone();
    assert!(docker_cli(&["stop", "-t", "1", &id]).status.success());
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("the flapping alert", Duration::from_secs(20), || {
            !receiver.alerts("PlugsyncFlapping", "firing").is_empty()
        })
    }));
    assert!(
        waited.is_ok(),
        "no flapping alert; daemon log:\n{}\nreceived: {:?}",
        daemon.log_tail(),
        receiver.bodies.lock().map(|b| b.len())
    );
    std::thread::sleep(Duration::from_secs(3));
    daemon.assert_alive();
    assert!(running_web(&daemon.fleet).is_empty(), "healing stopped after 2 heals: {:?}", containers(&daemon.fleet));
    let fleet_status = repo.status_text("status/fleet.yaml").expect("fleet status");
    assert!(fleet_status.contains("flapping"), "{fleet_status}");
}

/// Every instance of an applied plugin removed by hand: drift "missing", not a new plugin to
/// create — in `drift: alert` mode nothing is re-created behind the operator's back.
#[test]
fn every_instance_removed_is_missing_and_not_recreated_in_alert_mode() {
    let (repo, daemon, id) = setup("dgone", "", "");
    assert!(docker_cli(&["rm", "-f", &id]).status.success());
    wait_for("a drift commit", Duration::from_secs(20), || {
        // The first check may still catch the container being removed ("stopped"), then "drift now: … missing".
        repo.status_subjects().iter().any(|s| s.starts_with("web: drift") && s.contains("missing"))
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(containers(&daemon.fleet).is_empty(), "drift: alert must not re-create: {:?}", containers(&daemon.fleet));
    let fleet_status = repo.status_text("status/fleet.yaml").expect("fleet status");
    assert!(fleet_status.contains("drift (drift: alert)"), "the held re-creation is in status: {fleet_status}");
}
