//! End-to-end faults for `plugsync run`: the remote disappears and comes back, history is
//! force-pushed, an invalid manifest is pushed. In every case the last good state keeps
//! running, nothing is pruned, and the problem is visible (status branch or daemon log).
//!
//! Needs Docker and the `git` CLI; fails loudly without them. Run with `--test-threads=2`.

use plugsync_test_support::daemon as common_daemon;

use common_daemon::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(40);

/// plugin → container id of its one running instance.
fn ids(fleet: &str) -> BTreeMap<String, String> {
    containers(fleet).into_iter().filter(|c| c.state == "running").map(|c| (c.plugin, c.id)).collect()
}

fn write_plugins(repo: &Repo, plugins: &[(&str, &str)]) {
    for (id, version) in plugins {
        repo.write(&plugin_path(id), &plugin_yaml(id, version, &[], ""));
    }
}

fn wait_all(repo: &Repo, daemon: &Daemon, plugins: &[(&str, &str)]) {
    for (id, version) in plugins {
        wait_converged(repo, daemon, id, version, CONVERGE);
    }
}

#[test]
fn remote_gone_then_back_keeps_running_and_reports_the_fetch_failure() {
    let t0 = Instant::now();
    let (fleet, network) = names("gone");
    let repo = Repo::new();
    repo.write("plugsync.yaml", &fleet_yaml(&fleet, &network));
    write_plugins(&repo, &[("alpha", V1)]);
    repo.commit_push("alpha 1.0.0");
    let mut daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);
    let before = ids(&fleet);

    let away = repo.dir.path().join("remote.git.away");
    std::fs::rename(&repo.bare, &away).expect("move the remote away");
    wait_for(
        "the daemon to log the fetch failure",
        Duration::from_secs(15),
        || daemon.log().contains("fetch failed"),
        || daemon.log_tail(),
    );
    wait_ticks(&daemon, 3, Duration::from_secs(20));
    daemon.assert_alive();
    assert_eq!(ids(&fleet), before, "containers touched while the remote was gone: {:#?}", containers(&fleet));
    assert!(metric(&daemon, "plugsync_git_fetch_total", "") >= 3.0);
    // The loop backs off while the remote is away, and says so.
    let failures = metric(&daemon, "plugsync_consecutive_failures", "");
    let backoff = metric(&daemon, "plugsync_retry_backoff_seconds", "");
    assert!(failures >= 3.0, "consecutive failures {failures}");
    assert!(backoff > 1.0, "the wait grew past the 1 s interval: {backoff} s");
    assert!(daemon.log().contains("backing off"), "{}", daemon.log_tail());

    std::fs::rename(&away, &repo.bare).expect("move the remote back");
    let sha = {
        repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V2, &[], ""));
        repo.commit_push("alpha 1.1.0")
    };
    let took = wait_converged(&repo, &daemon, "alpha", V2, CONVERGE);
    eprintln!("converged {took:?} after the remote came back");
    let fleet_status = repo.fleet_status().expect("fleet status");
    assert_eq!(fleet_status.revision, sha);
    assert!(fleet_status.errors.is_empty(), "errors cleared once the remote is back: {:?}", fleet_status.errors);
    assert_eq!(metric(&daemon, "plugsync_consecutive_failures", ""), 0.0, "a good tick resets the back-off");
    assert_eq!(metric(&daemon, "plugsync_retry_backoff_seconds", ""), 0.0);
    // The status written while the remote was away is replayed once it is back.
    let history =
        String::from_utf8_lossy(&repo.bare_git(&["log", "-p", "plugsync/status", "--", "status/fleet.yaml"]).stdout)
            .into_owned();
    assert!(
        history.contains("fetch failed"),
        "the fetch failure never reached status/fleet.yaml on the status branch; subjects: {:#?}",
        repo.status_subjects()
    );
    eprintln!("test took {:?}", t0.elapsed());
}

#[test]
fn force_push_is_reported_and_prunes_nothing() {
    let t0 = Instant::now();
    let (fleet, network) = names("force");
    let repo = Repo::new();
    repo.write("plugsync.yaml", &fleet_yaml(&fleet, &network));
    let all = [("alpha", V1), ("beta", V1), ("gamma", V1)];
    write_plugins(&repo, &all);
    let old = repo.commit_push("three plugins");
    let mut daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    wait_all(&repo, &daemon, &all);
    let before = ids(&fleet);

    // Rewrite the only commit: alpha bumped, gamma gone (1 of 3: under maxPruneFraction).
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V2, &[], ""));
    repo.remove("plugins/gamma");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "--amend", "-m", "rewritten: alpha 1.1.0, no gamma"]);
    let new = repo.head();
    assert_ne!(new, old);
    repo.git(&["push", "-q", "--force", "origin", "main"]);

    wait_converged(&repo, &daemon, "alpha", V2, CONVERGE);
    wait_for(
        "\"history rewritten\" on the status branch",
        Duration::from_secs(10),
        || {
            String::from_utf8_lossy(&repo.bare_git(&["log", "-p", "plugsync/status"]).stdout)
                .contains("history rewritten")
        },
        || format!("subjects: {:#?}\nlog:\n{}", repo.status_subjects(), daemon.log_tail()),
    );
    // Several more polls of the same rewritten tip: still nothing pruned.
    wait_ticks(&daemon, 4, Duration::from_secs(30));
    daemon.assert_alive();
    let after = ids(&fleet);
    assert_eq!(after.get("beta"), before.get("beta"), "beta untouched");
    assert_eq!(
        after.get("gamma"),
        before.get("gamma"),
        "gamma (removed by the force-push) was pruned; containers: {:#?}\nstatus subjects: {:#?}\nfleet.yaml:\n{}",
        containers(&fleet),
        repo.status_subjects(),
        repo.status_text("status/fleet.yaml").unwrap_or_default()
    );
    let fleet_status = repo.fleet_status().expect("fleet status");
    assert!(
        fleet_status.errors.iter().any(|e| e.contains("history rewritten")),
        "status/fleet.yaml no longer reports the rewrite while its prune is withheld: {:?}",
        fleet_status.errors
    );
    eprintln!("test took {:?}", t0.elapsed());
}

#[test]
fn invalid_manifest_keeps_the_last_good_state_and_names_file_and_field() {
    let t0 = Instant::now();
    let (fleet, network) = names("invalid");
    let repo = Repo::new();
    repo.write("plugsync.yaml", &fleet_yaml(&fleet, &network));
    let all = [("alpha", V1), ("beta", V1), ("gamma", V1)];
    write_plugins(&repo, &all);
    repo.commit_push("three plugins");
    let mut daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    wait_all(&repo, &daemon, &all);
    let before = ids(&fleet);

    // 1. A bad quantity in alpha and beta removed in the same commit.
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V2, &[], "").replace("memory: 64Mi", "memory: 512X"));
    repo.remove("plugins/beta");
    let bad = repo.commit_push("alpha memory 512X, beta removed");
    let errors_at = |sha: &str| repo.fleet_status().filter(|f| f.revision == sha).map(|f| f.errors).unwrap_or_default();
    wait_for(
        "status/fleet.yaml to list the error",
        Duration::from_secs(20),
        || errors_at(&bad).iter().any(|e| e.contains("plugins/alpha/plugin.yaml") && e.contains("memory")),
        || {
            format!(
                "fleet.yaml:\n{}\nlog:\n{}",
                repo.status_text("status/fleet.yaml").unwrap_or_default(),
                daemon.log_tail()
            )
        },
    );
    eprintln!("errors for the bad quantity: {:#?}", errors_at(&bad));
    wait_ticks(&daemon, 3, Duration::from_secs(20));
    assert_eq!(ids(&fleet), before, "an invalid revision changed or pruned containers: {:#?}", containers(&fleet));

    // 2. On top of it, a YAML syntax error in gamma.
    repo.write(&plugin_path("gamma"), "id: gamma\nversion: [1.0.0\nruntime: {image: plugsync/echo-plugin:1.0.0\n");
    let worse = repo.commit_push("gamma syntax error");
    wait_for(
        "status/fleet.yaml to name gamma's syntax error",
        Duration::from_secs(20),
        || errors_at(&worse).iter().any(|e| e.contains("plugins/gamma/plugin.yaml")),
        || {
            format!(
                "fleet.yaml:\n{}\nlog:\n{}",
                repo.status_text("status/fleet.yaml").unwrap_or_default(),
                daemon.log_tail()
            )
        },
    );
    eprintln!("errors with the syntax error too: {:#?}", errors_at(&worse));
    wait_ticks(&daemon, 2, Duration::from_secs(20));
    assert_eq!(ids(&fleet), before, "an invalid revision changed or pruned containers: {:#?}", containers(&fleet));
    daemon.assert_alive();
    let subjects = repo.status_subjects();
    assert!(
        subjects.iter().any(|s| s.contains("INVALID")),
        "a status commit says the revision is invalid: {subjects:#?}"
    );

    // 3. Fixed: alpha rolls to 1.1.0, beta (removed in Git, 1 of 3) is pruned, errors clear.
    write_plugins(&repo, &[("alpha", V2), ("gamma", V1)]);
    let good = repo.commit_push("fixed");
    wait_converged(&repo, &daemon, "alpha", V2, CONVERGE);
    wait_for(
        "beta pruned and errors cleared",
        Duration::from_secs(20),
        || {
            !containers(&fleet).iter().any(|c| c.plugin == "beta")
                && repo.fleet_status().is_some_and(|f| f.revision == good && f.errors.is_empty())
        },
        || {
            format!(
                "containers: {:#?}\nfleet.yaml:\n{}",
                containers(&fleet),
                repo.status_text("status/fleet.yaml").unwrap_or_default()
            )
        },
    );
    assert_eq!(ids(&fleet).get("gamma"), before.get("gamma"), "gamma untouched");
    eprintln!("test took {:?}", t0.elapsed());
}

/// A daemon (re)started while the tip is invalid has no last good state to apply: it must
/// apply nothing, and still say why in status/fleet.yaml.
#[test]
fn invalid_tip_at_startup_is_reported_in_status() {
    let (fleet, network) = names("badstart");
    let repo = Repo::new();
    repo.write("plugsync.yaml", &fleet_yaml(&fleet, &network));
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V1, &[], "").replace("memory: 64Mi", "memory: 512X"));
    repo.commit_push("alpha with a bad quantity");
    let mut daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    wait_ticks_or_log(&daemon);
    daemon.assert_alive();
    assert!(containers(&fleet).is_empty(), "nothing may start from an invalid revision: {:#?}", containers(&fleet));
    let fleet_status = repo.fleet_status();
    assert!(
        fleet_status
            .as_ref()
            .is_some_and(|f| f.errors.iter().any(|e| e.contains("plugins/alpha/plugin.yaml") && e.contains("memory"))),
        "status/fleet.yaml does not report the invalid tip: {fleet_status:?}\nstatus branch subjects: {:?}\nlog:\n{}",
        repo.status_subjects(),
        daemon.log_tail()
    );
}

/// Gives a daemon that may never finish a reconcile pass a few intervals to write status.
fn wait_ticks_or_log(daemon: &Daemon) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if ticks(daemon) >= 2 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
