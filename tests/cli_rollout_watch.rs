//! `plugsync rollout status [--watch]` and `plugsync get plugins` against a real daemon
//! (`plugsync run` following a real Git remote) on the real Docker engine, with traffic from
//! the probe client so the canary analysis has requests to judge:
//!
//! (a) a healthy canary bump, the watch started right after the push: every step with its
//!     weight and the metric values, exit 0 — never the old converged state;
//! (b) the watch started *before* the push of a canary answering 30 % errors with
//!     autoRollback: it says the replayed old rollout is not the answer, then exits 1 with
//!     the rollback's reason;
//! (c) the same with `autoRollback: false`: the canary pauses, exit 2 (and 2 without --watch);
//! plus `get plugins` (table and JSON) at each stage, a watch that times out (exit 4) and the
//! errors (unknown plugin, no daemon: exit 5).
//!
//! Needs Docker and `git`; fails loudly without them.

use common_daemon::V3;
use plugsync_test_support::daemon as common_daemon;
use plugsync_test_support::docker::{PluginDef, V1, V2};
use plugsync_test_support::progressive::{canary, Rig};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `plugsync rollout status … --watch` as a child, its stdout collected line by line.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    started: Instant,
}

impl Watch {
    fn start(args: &[&str]) -> Watch {
        let mut child = Command::new(plugsync_test_support::plugsync_bin())
            .args(args)
            .env_remove("PLUGSYNC_SERVER")
            .env_remove("PLUGSYNC_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn plugsync rollout status");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("  watch| {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("  watch! {line}");
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Watch { child, lines, stderr, started: Instant::now() }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn wait_line(&self, needle: &str, timeout: Duration) {
        common_daemon::wait_for(
            &format!("the watch to print {needle:?}"),
            timeout,
            || self.lines.lock().unwrap().iter().any(|l| l.contains(needle)),
            || self.text(),
        );
    }

    /// Waits for the exit; (code, stdout, stderr, how long it ran).
    fn finish(mut self, timeout: Duration) -> (i32, String, String, Duration) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the watch did not end within {timeout:?}; it printed:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = self.started.elapsed();
        std::thread::sleep(Duration::from_millis(200)); // the reader threads drain the pipes
        let code = status.code().expect("exit code, not a signal");
        (code, self.text(), self.stderr.lock().unwrap().clone(), took)
    }
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = common_daemon::plugsync(args, &[]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().expect("exit code"), text(&out.stdout), text(&out.stderr))
}

/// `get plugins -o json` → crm's object.
fn crm_json(server: &str) -> serde_json::Value {
    let (code, out, err) = cli(&["get", "plugins", "--server", server, "-o", "json"]);
    assert_eq!(code, 0, "get plugins -o json: {out}{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    rows.into_iter().find(|r| r["name"] == "crm").unwrap_or_else(|| panic!("no crm in {out}"))
}

/// `get plugins` → (header line, crm's line), columns checked to start where their header does.
fn crm_table(server: &str) -> (String, String) {
    let (code, out, err) = cli(&["get", "plugins", "--server", server]);
    assert_eq!(code, 0, "get plugins: {out}{err}");
    eprintln!("get plugins:\n{out}");
    let mut lines = out.lines();
    let header = lines.next().expect("a header").to_string();
    for column in ["NAME", "VERSION", "STATE", "STRATEGY", "INSTANCES", "DRIFT", "ROLLOUT"] {
        assert!(header.contains(column), "column {column} in {header:?}");
    }
    let row = lines.find(|l| l.starts_with("crm ")).unwrap_or_else(|| panic!("no crm row:\n{out}")).to_string();
    for column in ["VERSION", "STATE", "STRATEGY"] {
        let at = header.find(column).unwrap();
        let before = row[..at].chars().last();
        assert_eq!(before, Some(' '), "{column} starts a cell in {row:?} (header {header:?})");
    }
    (header, row)
}

/// The number before " requests" in `crm:   canary pass: 41 requests, …`.
fn canary_requests(output: &str) -> Vec<f64> {
    output
        .lines()
        .filter_map(|l| l.split_once("canary pass: ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split(' ').next().and_then(|n| n.parse::<f64>().ok()))
        .collect()
}

fn watch_args<'a>(server: &'a str, timeout: &'a str) -> [&'a str; 8] {
    ["rollout", "status", "crm", "--watch", "--server", server, "--timeout", timeout]
}

/// (a) A healthy canary, the watch started right after the push: exit 0, every step's weight
/// and the canary's metric values; then `get plugins` and `rollout status` (once) agree.
fn healthy_canary(rig: &Rig, v2: &PluginDef) {
    let server = rig.daemon.base_url();
    rig.push(v2, "crm 1.1.0");
    let watch = Watch::start(&watch_args(&server, "150s"));
    let (code, out, err, took) = watch.finish(Duration::from_secs(160));
    eprintln!("MEASURED (a) healthy canary watched to the end in {took:?}");
    assert_eq!(code, 0, "a converged canary exits 0:\n{out}\n{err}\n{}", rig.context("crm"));
    assert!(out.contains("Canary rollout of crm to 1.1.0"), "{out}");
    assert!(!out.contains("rollout of crm to 1.0.0 "), "it followed the old version:\n{out}");
    for step in ["step 1/3 25%", "step 2/3 50%", "step 3/3 100%"] {
        assert!(out.contains(step), "{step} shown:\n{out}");
    }
    let requests = canary_requests(&out);
    assert!(requests.iter().any(|n| *n > 0.0), "canary metric values (requests) shown:\n{out}");
    assert!(out.contains("error rate 0.00%") && out.contains("success rate 100.00%"), "metrics:\n{out}");
    assert!(out.contains("p99 "), "{out}");
    assert!(out.lines().last().is_some_and(|l| l == "crm: converged at 1.1.0"), "closing line:\n{out}");
    if out.contains("its last rollout (to 1.0.0)") {
        eprintln!("(a) the watch saw the old converged rollout first and waited, as it must");
    }
    let crm = crm_json(&server);
    assert_eq!(crm["state"], "ACTIVE", "{crm}");
    assert_eq!(crm["version"], V2, "{crm}");
    assert_eq!((crm["strategy"].as_str(), crm["instances"].as_u64()), (Some("Canary"), Some(1)), "{crm}");
    assert!(crm["rollout"].is_null(), "no rollout in flight: {crm}");
    let (_, row) = crm_table(&server);
    assert!(row.contains(" 1.1.0 ") && row.contains(" ACTIVE ") && row.contains(" Canary "), "{row}");
    let (code, out, _) = cli(&["rollout", "status", "crm", "--server", &server]);
    assert_eq!(code, 0, "rollout status (once) of a converged plugin:\n{out}");
}

/// Nothing happens: the watch does not take the replayed old state as the answer; exit 4.
fn idle_watch_times_out(rig: &Rig) {
    let server = rig.daemon.base_url();
    let watch = Watch::start(&watch_args(&server, "3s"));
    let (code, out, err, took) = watch.finish(Duration::from_secs(20));
    assert_eq!(code, 4, "an idle watch times out with 4:\n{out}\n{err}");
    assert!(err.contains("timed out after 3s waiting for a rollout to start"), "{err}");
    assert!(out.contains("its last rollout (to 1.1.0) converged"), "the replayed rollout is named:\n{out}");
    eprintln!("MEASURED idle watch with --timeout 3s ended in {took:?}");
}

/// (b) The watch starts *before* the push of a canary answering 30 % errors: it waits past
/// the replayed converged rollout, then exits 1 with the rollback's reason.
fn failing_canary_rolls_back(rig: &Rig, v2: &PluginDef) {
    let server = rig.daemon.base_url();
    let watch = Watch::start(&watch_args(&server, "150s"));
    watch.wait_line("its last rollout (to 1.1.0) converged", Duration::from_secs(10));
    let bad = v2.clone().version(V3).env("ERROR_RATE", "0.3");
    rig.push(&bad, "crm 1.2.0 answering 30 % errors");
    let (code, out, err, took) = watch.finish(Duration::from_secs(160));
    eprintln!("MEASURED (b) failing canary watched to its rollback in {took:?}");
    assert_eq!(code, 1, "a rolled-back canary exits 1:\n{out}\n{err}\n{}", rig.context("crm"));
    assert!(out.contains("Canary rollout of crm to 1.2.0"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("crm: rolled back: ") && last.contains("error rate"), "the reason:\n{out}");
    assert!(out.contains("canary fail: "), "the failing verdict with its values:\n{out}");
    let (code, out, _) = cli(&["rollout", "status", "crm", "--server", &server]);
    assert_eq!(code, 1, "rollout status (once) of a rolled-back plugin:\n{out}");
}

/// (c) `autoRollback: false`: the failing canary pauses; exit 2, with or without --watch, and
/// `get plugins` shows both versions and the pause.
fn failing_canary_pauses(rig: &Rig, v2: &PluginDef) {
    let server = rig.daemon.base_url();
    let no_rollback = canary("[25, 50, 100]", "3s", false, 2, 0.05);
    let pausing = v2.clone().version(V3).env("ERROR_RATE", "0.4").rollout(&no_rollback);
    rig.push(&pausing, "crm 1.2.0 answering 40 % errors, no automatic rollback");
    let watch = Watch::start(&watch_args(&server, "150s"));
    let (code, out, err, took) = watch.finish(Duration::from_secs(160));
    eprintln!("MEASURED (c) failing canary watched until it paused in {took:?}");
    assert_eq!(code, 2, "a paused canary exits 2:\n{out}\n{err}\n{}", rig.context("crm"));
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("crm: paused: ") && last.contains("error rate"), "the reason:\n{out}");
    let (code, out, _) = cli(&["rollout", "status", "crm", "--server", &server]);
    assert_eq!(code, 2, "rollout status (once) of a paused plugin:\n{out}");
    let crm = crm_json(&server);
    assert!(crm["rollout"].as_str().is_some_and(|r| r.starts_with("paused: ")), "{crm}");
    assert_eq!(crm["slots"]["canary"], V3, "{crm}");
    let (_, row) = crm_table(&server);
    assert!(row.contains(&format!("{V2} / canary {V3}")) && row.contains("paused: "), "{row}");
}

/// Errors name the URL and what was expected; exit 5 (`get`: 1).
fn errors_name_the_url(server: &str) {
    let (code, _, err) = cli(&["rollout", "status", "nope", "--server", server]);
    assert_eq!(code, 5, "{err}");
    let named = err.contains("unknown plugin \"nope\"") && err.contains("/api/v1/plugins/nope");
    assert!(named && err.contains("crm"), "{err}");
    let gone = format!("http://127.0.0.1:{}", common_daemon::free_port());
    let (code, _, err) = cli(&["rollout", "status", "crm", "--watch", "--server", &gone]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("cannot reach the plugsync daemon") && err.contains(&gone), "{err}");
    assert!(err.contains("Connection refused"), "the cause: {err}");
    let (code, _, err) = cli(&["get", "plugins", "--server", &gone]);
    assert!(code == 1 && err.contains(&gone), "{err}");
}

#[test]
fn rollout_status_follows_rollouts_and_get_plugins_lists_them() {
    let t0 = Instant::now();
    let v1 = PluginDef::new("crm", V1).rollout(&canary("[25, 50, 100]", "3s", true, 2, 0.05));
    let rig = Rig::start("cliwatch", &v1);
    eprintln!("[{}] crm 1.0.0 running with traffic after {:?}", rig.fleet.name, t0.elapsed());
    let crm = crm_json(&rig.daemon.base_url());
    assert_eq!((crm["state"].as_str(), crm["version"].as_str()), (Some("ACTIVE"), Some(V1)), "{crm}");
    let v2 = v1.clone().version(V2);
    healthy_canary(&rig, &v2);
    idle_watch_times_out(&rig);
    failing_canary_rolls_back(&rig, &v2);
    failing_canary_pauses(&rig, &v2);
    errors_name_the_url(&rig.daemon.base_url());
    eprintln!("test took {:?}", t0.elapsed());
}
