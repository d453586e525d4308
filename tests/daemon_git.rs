//! End-to-end: `plugsync run` as a child process following real Git remotes (a bare repository
//! over file:// and over `git daemon`'s git://), reconciling onto the local Docker engine and
//! recording status on `plugsync/status`; woken by signed webhooks; sharing the status branch
//! with another writer; read back by `plugsync status` and `plugsync history`.
//!
//! Needs Docker and the `git` CLI; fails loudly without them. Run with `--test-threads=2`.

use plugsync_test_support::daemon as common_daemon;

use common_daemon::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(40);

/// A fleet of one plugin `alpha` at `V1`, committed and pushed.
fn one_plugin_fleet(repo: &Repo, fleet: &str, network: &str) -> String {
    repo.write("plugsync.yaml", &fleet_yaml(fleet, network));
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V1, &[], ""));
    repo.commit_push("alpha 1.0.0")
}

fn bump(repo: &Repo, id: &str, version: &str) -> String {
    repo.write(&plugin_path(id), &plugin_yaml(id, version, &[], ""));
    repo.commit_push(&format!("{id} {version}"))
}

/// Status subjects added since `before` (a snapshot of `status_subjects()`), newest first.
fn new_subjects(repo: &Repo, before: &[String]) -> Vec<String> {
    let now = repo.status_subjects();
    now[..now.len() - before.len()].to_vec()
}

#[test]
fn file_remote_bump_converges_and_idle_polls_commit_nothing() {
    let t0 = Instant::now();
    let (fleet, network) = names("file");
    let repo = Repo::new();
    one_plugin_fleet(&repo, &fleet, &network);
    let mut daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    let took = wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);
    eprintln!("initial fleet converged {took:?} after the daemon answered");

    let before = repo.status_subjects();
    let sha = bump(&repo, "alpha", V2);
    let took = wait_converged(&repo, &daemon, "alpha", V2, CONVERGE);
    eprintln!("bump converged {took:?} after the push");
    let added = new_subjects(&repo, &before);
    assert!(
        added.iter().any(|s| s.contains("alpha") && s.contains(V2)),
        "no status commit naming alpha and {V2}; new status subjects: {added:#?}"
    );
    let fleet_status = repo.fleet_status().expect("status/fleet.yaml");
    assert_eq!(fleet_status.revision, sha, "status/fleet.yaml records the revision applied");
    assert!(fleet_status.errors.is_empty(), "no errors expected: {:?}", fleet_status.errors);

    // Identical polls: nothing to say, nothing committed.
    let quiet_before = repo.status_subjects();
    let tip = repo.bare_git(&["rev-parse", "plugsync/status"]).stdout;
    wait_ticks(&daemon, 3, Duration::from_secs(20));
    let extra = new_subjects(&repo, &quiet_before);
    assert!(extra.is_empty(), "idle polls made status commits: {extra:#?}");
    assert_eq!(repo.bare_git(&["rev-parse", "plugsync/status"]).stdout, tip);
    assert!(plugin_runs(&fleet, "alpha", V2, 1), "alpha left at {V2}: {:#?}", containers(&fleet));
    daemon.assert_alive();
    eprintln!("test took {:?}", t0.elapsed());
}

/// `git daemon` on loopback, stopped on drop (the daemon binary itself, so no orphan stays).
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &std::path::Path) -> GitDaemon {
        let exec_path = git_ok(base, &["--exec-path"]);
        let binary = std::path::Path::new(&exec_path).join("git-daemon");
        assert!(binary.is_file(), "git-daemon not found at {} (install git's daemon)", binary.display());
        let port = free_port();
        let child = Command::new(&binary)
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", base.display()))
            .args(["--export-all", "--enable=receive-pack", "--informative-errors"])
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Each readiness probe (connect, close) makes it print "the remote end hung up".
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn git-daemon");
        let daemon = GitDaemon { child, port };
        wait_for(
            "git daemon to listen",
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            || format!("git daemon (pid {}) does not listen on {port}", daemon.child.id()),
        );
        daemon
    }

    fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

#[test]
fn git_daemon_remote_bump_converges_and_status_is_pushed_over_git_protocol() {
    let t0 = Instant::now();
    let (fleet, network) = names("gitd");
    let repo = Repo::new();
    one_plugin_fleet(&repo, &fleet, &network);
    let server = GitDaemon::start(repo.dir.path());
    let url = server.url("remote.git");
    let daemon = Daemon::start(&fleet, &network, DaemonOptions::new(url.clone(), "1s"));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);

    let before = repo.status_subjects();
    bump(&repo, "alpha", V2);
    let took = wait_converged(&repo, &daemon, "alpha", V2, CONVERGE);
    eprintln!("bump over git:// converged {took:?} after the push");
    let added = new_subjects(&repo, &before);
    assert!(added.iter().any(|s| s.contains("alpha") && s.contains(V2)), "status commits: {added:#?}");
    assert!(!daemon.log().contains("status not written"), "status push over git:// failed:\n{}", daemon.log_tail());

    // The CLI reads the status branch over git:// too.
    let cache = tempfile::tempdir().unwrap();
    let out = plugsync(&["status", "--repo", &url, "--cache-dir", cache.path().to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "plugsync status over git:// failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().any(|l| l.contains("alpha") && l.contains("ACTIVE") && l.contains(V2)), "{text}");
    eprintln!("test took {:?}", t0.elapsed());
}

#[test]
fn signed_webhook_wakes_the_daemon_and_unsigned_or_wrong_ones_are_refused() {
    let t0 = Instant::now();
    let (fleet, network) = names("hook");
    let secret = "webhook-secret-for-the-test";
    let repo = Repo::new();
    one_plugin_fleet(&repo, &fleet, &network);
    // An hour between polls and no file watch: only the webhook can wake it.
    let mut daemon = Daemon::start(
        &fleet,
        &network,
        DaemonOptions::new(repo.url(), "1h").arg("--no-watch").env("PLUGSYNC_WEBHOOK_SECRET", secret),
    );
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);

    let sha = bump(&repo, "alpha", V2);
    let body = push_body(&sha);
    let hook = format!("{}/hooks/git", daemon.base_url());
    let github = |sig: Option<String>| {
        let mut h = vec![("X-GitHub-Event", "push".to_string()), ("Content-Type", "application/json".to_string())];
        h.extend(sig.map(|s| ("X-Hub-Signature-256", s)));
        h
    };
    let (code, text) = http_post(&hook, &github(None), &body);
    assert_eq!(code, 401, "unsigned push event: {text}");
    let (code, text) = http_post(&hook, &github(Some(github_signature("not-the-secret", &body))), &body);
    assert_eq!(code, 401, "push event signed with another secret: {text}");
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let (code, text) = http_post(&hook, &github(Some(github_signature(secret, &body))), &tampered);
    assert_eq!(code, 401, "signature of another body: {text}");

    // Nothing may change: the old version keeps running, no new container appears.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(4) {
        assert!(plugin_runs(&fleet, "alpha", V1, 1), "refused webhooks changed the fleet: {:#?}", containers(&fleet));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(repo.status_active("alpha", V1), "status moved without a reconcile");

    let sent = Instant::now();
    let (code, text) = http_post(&hook, &github(Some(github_signature(secret, &body))), &body);
    assert_eq!(code, 202, "signed push event: {text}");
    assert!(text.contains("\"triggered\":true"), "signed push for main must trigger: {text}");
    let took = wait_converged(&repo, &daemon, "alpha", V2, Duration::from_secs(20));
    eprintln!("signed webhook → converged and recorded in {:?} (poll interval 1h)", sent.elapsed().max(took));
    assert!(
        metric(&daemon, "plugsync_webhook_requests_total", "unauthorized") >= 3.0,
        "unauthorized deliveries counted"
    );
    daemon.assert_alive();
    eprintln!("test took {:?}", t0.elapsed());
}

/// An operator's clone of the status branch that adds a line to `notes/ops.md` and pushes it,
/// rebasing on the daemon's commits when its push is rejected.
struct Operator {
    dir: std::path::PathBuf,
    notes: Vec<String>,
}

impl Operator {
    fn clone(repo: &Repo, name: &str) -> Operator {
        let dir = repo.dir.path().join(name);
        git_ok(
            repo.dir.path(),
            &["clone", "-q", "--branch", "plugsync/status", repo.bare.to_str().unwrap(), dir.to_str().unwrap()],
        );
        Operator { dir, notes: Vec::new() }
    }

    fn note(&mut self) {
        let subject = format!("ops note {}", self.notes.len());
        std::fs::create_dir_all(self.dir.join("notes")).unwrap();
        let path = self.dir.join("notes/ops.md");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("- {subject}\n"));
        std::fs::write(&path, text).unwrap();
        git_ok(&self.dir, &["add", "notes/ops.md"]);
        git_ok(&self.dir, &["commit", "-q", "-m", &subject]);
        for attempt in 0.. {
            if git_in(&self.dir, &["push", "-q", "origin", "HEAD:plugsync/status"]).status.success() {
                break;
            }
            assert!(attempt < 50, "the operator could not push to plugsync/status");
            git_ok(&self.dir, &["pull", "-q", "--rebase", "origin", "plugsync/status"]);
        }
        self.notes.push(subject);
    }
}

/// Nothing lost: every operator note and the daemon's commits for `versions` are in the
/// history, and the tip has both the last note and alpha's status at the last version.
fn assert_nothing_lost(repo: &Repo, notes: &[String], versions: &[&str]) {
    let subjects = repo.status_subjects();
    let missing: Vec<&String> = notes.iter().filter(|s| !subjects.contains(s)).collect();
    assert!(missing.is_empty(), "operator commits lost from plugsync/status: {missing:?}\nhistory: {subjects:#?}");
    for version in versions {
        assert!(
            subjects.iter().any(|s| s.contains("alpha") && s.contains(version)),
            "daemon status commit for alpha {version} lost; history: {subjects:#?}"
        );
    }
    let ops_md = repo.status_text("notes/ops.md").expect("notes/ops.md on the status branch tip");
    assert!(ops_md.contains(notes.last().unwrap()), "notes/ops.md at the tip lacks the last note:\n{ops_md}");
    let last = versions.last().unwrap();
    assert!(
        repo.status_active("alpha", last),
        "status/alpha.yaml at the tip: {:?}",
        repo.status_text("status/alpha.yaml")
    );
}

/// Races by volume: an operator pushes notes back to back while the daemon rolls two bumps.
#[test]
fn concurrent_status_writer_loses_nothing() {
    let t0 = Instant::now();
    let (fleet, network) = names("conc");
    let repo = Repo::new();
    one_plugin_fleet(&repo, &fleet, &network);
    let daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut operator = Operator::clone(&repo, "ops");
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                operator.note();
            }
            operator.note();
            operator.notes
        })
    };
    for version in [V2, V3] {
        bump(&repo, "alpha", version);
        wait_converged(&repo, &daemon, "alpha", version, CONVERGE);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let notes = writer.join().expect("operator thread");
    // Let the daemon write once more on top of the last note.
    wait_ticks(&daemon, 2, Duration::from_secs(20));
    assert_nothing_lost(&repo, &notes, &[V2, V3]);
    let retries = daemon.log().matches("rebasing and retrying").count();
    eprintln!("{} operator commits, daemon rebased {retries} time(s); test took {:?}", notes.len(), t0.elapsed());
}

/// Races deterministically: over git://, a pre-receive hook holds the daemon's status push
/// while the operator pushes, so the daemon's ref update meets a moved branch.
#[test]
fn status_push_that_loses_a_race_is_redone_on_top() {
    let t0 = Instant::now();
    let (fleet, network) = names("race");
    let repo = Repo::new();
    one_plugin_fleet(&repo, &fleet, &network);
    let gate = repo.dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let hook = repo.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ngate='{}'\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/plugsync/status ] && [ -e \"$gate/armed\" ] && [ \"$(git log -1 --format=%an $new)\" = plugsync ]; then\n    rm -f \"$gate/armed\"; touch \"$gate/waiting\"\n    i=0; while [ -e \"$gate/waiting\" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n  fi\ndone\nexit 0\n",
            gate.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&hook).status().unwrap();
    let server = GitDaemon::start(repo.dir.path());
    let daemon = Daemon::start(&fleet, &network, DaemonOptions::new(server.url("remote.git"), "1s"));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);

    let mut operator = Operator::clone(&repo, "ops");
    std::fs::write(gate.join("armed"), "").unwrap();
    bump(&repo, "alpha", V2);
    wait_for(
        "the daemon's status push to reach the hook",
        CONVERGE,
        || gate.join("waiting").exists(),
        || daemon.log_tail(),
    );
    operator.note();
    std::fs::remove_file(gate.join("waiting")).unwrap();
    let took = wait_converged(&repo, &daemon, "alpha", V2, Duration::from_secs(20));
    eprintln!("daemon status landed {took:?} after losing the race");
    operator.note();
    wait_ticks(&daemon, 2, Duration::from_secs(20));
    assert_nothing_lost(&repo, &operator.notes, &[V2]);
    let log = daemon.log_tail();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("status")).collect();
    eprintln!("daemon status lines:\n{}\ntest took {:?}", lines.join("\n"), t0.elapsed());
}

#[test]
fn status_and_history_commands_read_the_status_branch() {
    let t0 = Instant::now();
    let (fleet, network) = names("cli");
    let repo = Repo::new();
    one_plugin_fleet(&repo, &fleet, &network);
    let daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);
    bump(&repo, "alpha", V2);
    wait_converged(&repo, &daemon, "alpha", V2, CONVERGE);

    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let url = repo.url();
    let out = plugsync(&["status", "--repo", &url, "--cache-dir", cache_dir], &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("plugsync status:\n{text}");
    assert!(
        out.status.success(),
        "plugsync status exit {:?}: {text}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().next().is_some_and(|l| l.contains(&fleet)), "first line names the fleet: {text}");
    let header = text.lines().find(|l| l.starts_with("PLUGIN")).unwrap_or_else(|| panic!("no table header: {text}"));
    assert!(header.contains("STATE") && header.contains("VERSION"), "{header}");
    let row = text.lines().find(|l| l.starts_with("alpha")).unwrap_or_else(|| panic!("no row for alpha: {text}"));
    assert!(row.contains("ACTIVE") && row.contains(V2), "alpha row: {row}");

    let out = plugsync(&["status", "alpha", "--repo", &url, "--cache-dir", cache_dir], &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.contains("state: ACTIVE"), "plugsync status alpha: {text}");

    let out = plugsync(&["history", "alpha", "--repo", &url, "--cache-dir", cache_dir], &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("plugsync history alpha:\n{text}");
    assert!(out.status.success(), "plugsync history: {text}{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(rows.len() >= 2, "history lists the create and the bump: {text}");
    assert!(rows.iter().all(|r| r.contains("alpha")), "every row is an alpha status commit: {text}");
    assert!(rows[0].contains(V2), "newest first, naming {V2}: {text}");
    // Exactly the commits that touched status/alpha.yaml.
    let log = repo.bare_git(&["log", "--format=%h", "plugsync/status", "--", "status/alpha.yaml"]);
    let expected = String::from_utf8_lossy(&log.stdout).lines().count();
    assert_eq!(rows.len(), expected, "history rows vs git log -- status/alpha.yaml: {text}");

    let out = plugsync(&["history", "nosuch", "--repo", &url, "--cache-dir", cache_dir], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no status commits"), "unknown plugin");
    eprintln!("test took {:?}", t0.elapsed());
}

/// The file watcher wakes the daemon on a push into a local remote, wherever it lives.
fn watcher_wakes(prefix: &str, tag: &str) {
    let (fleet, network) = names(tag);
    let repo = Repo::with_prefix(prefix);
    one_plugin_fleet(&repo, &fleet, &network);
    let daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1h"));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);
    let pushed = Instant::now();
    bump(&repo, "alpha", V2);
    wait_converged(&repo, &daemon, "alpha", V2, Duration::from_secs(20));
    eprintln!("{}: watcher → converged in {:?} (poll interval 1h)", repo.bare.display(), pushed.elapsed());
}

#[test]
fn file_watch_wakes_the_daemon_on_push() {
    watcher_wakes(".tmp", "watch");
}

/// The watcher ignores events whose path contains "plugsync" (meant for the daemon's own
/// `refs/heads/plugsync/status`), so a remote stored under any folder named plugsync… is
/// never watched.
#[test]
fn file_watch_wakes_the_daemon_when_the_remote_path_contains_plugsync() {
    watcher_wakes("plugsync-fleets-", "watchp");
}

/// With a local remote and the file watch on (the default), an idle daemon polls at its
/// interval. Its own fetch opens the remote's refs; if that counted as "a push" the daemon
/// would wake itself forever.
#[test]
fn idle_daemon_on_a_local_remote_does_not_spin() {
    let (fleet, network) = names("spin");
    let repo = Repo::new();
    one_plugin_fleet(&repo, &fleet, &network);
    let daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1h"));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);
    let before = ticks(&daemon);
    std::thread::sleep(Duration::from_secs(3));
    let passes = ticks(&daemon) - before;
    let wakes = daemon.log().matches("woken by a push").count();
    assert!(
        passes <= 2,
        "{passes} reconcile passes in 3 s with --interval 1h and no push ({wakes} \"woken by a push\" in the log)"
    );
}
