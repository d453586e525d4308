//! End-to-end rollouts under `plugsync run`: a failed rollout is held (not retried every poll)
//! until `plugsync rollout retry`, and secret values reach the container but never the status
//! branch, the API or the log.
//!
//! Needs Docker and the `git` CLI; fails loudly without them. Run with `--test-threads=2`.

use plugsync_test_support::daemon as common_daemon;

use common_daemon::*;
use plugsync::status::Lifecycle;
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(40);
const POLICY: &str = "rollout: {strategy: Direct, rollingConfig: {healthCheckTimeout: 5s}}\n";

fn rolled_back(repo: &Repo, id: &str) -> Option<plugsync::status::PluginStatus> {
    repo.plugin_status(id).filter(|s| s.state == Lifecycle::RolledBack && s.failed.is_some())
}

#[test]
fn failed_rollout_is_held_until_retry() {
    let t0 = Instant::now();
    let (fleet, network) = names("held");
    let token = "api-token-for-the-test";
    let repo = Repo::new();
    repo.write("plugsync.yaml", &fleet_yaml(&fleet, &network));
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V1, &[], POLICY));
    repo.commit_push("alpha 1.0.0");
    let mut daemon =
        Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s").env("PLUGSYNC_API_TOKEN", token));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);

    let creates = CreateWatch::start(&fleet);
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V2, &[("NEVER_READY", "1")], POLICY));
    let bad = repo.commit_push("alpha 1.1.0, never ready");
    wait_for(
        "alpha ROLLED_BACK with failed: and 1.0.0 running again",
        CONVERGE,
        || rolled_back(&repo, "alpha").is_some() && plugin_runs(&fleet, "alpha", V1, 1),
        || {
            format!(
                "containers: {:#?}\nstatus:\n{}\nlog:\n{}",
                containers(&fleet),
                repo.status_text("status/alpha.yaml").unwrap_or_default(),
                daemon.log_tail()
            )
        },
    );
    let status = rolled_back(&repo, "alpha").unwrap();
    let failed = status.failed.clone().unwrap();
    eprintln!("first failure: {failed:?}");
    assert_eq!(failed.revision, bad);
    assert!(failed.version.contains(V2), "failed.version names {V2}: {failed:?}");
    let first = creates.count("alpha", V2);
    assert!(first >= 1, "the bad version was started at least once: {:?}", creates.seen.lock().unwrap());

    // Several polls later: no new attempt, the plugin is reported as held.
    wait_ticks(&daemon, 5, Duration::from_secs(30));
    assert_eq!(
        creates.count("alpha", V2),
        first,
        "the failed rollout was retried by polling: {:?}",
        creates.seen.lock().unwrap()
    );
    assert!(plugin_runs(&fleet, "alpha", V1, 1), "1.0.0 keeps running: {:#?}", containers(&fleet));
    let held = repo.fleet_status().map(|f| f.held).unwrap_or_default();
    assert!(held.iter().any(|h| h.starts_with("alpha")), "status/fleet.yaml lists alpha as held: {held:?}");

    // A wrong token is refused and changes nothing.
    let server = daemon.base_url();
    let out = plugsync(&["rollout", "retry", "alpha", "--server", &server], &[("PLUGSYNC_API_TOKEN", "wrong")]);
    assert!(!out.status.success(), "wrong token accepted: {}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("401"), "{}", String::from_utf8_lossy(&out.stdout));

    // `plugsync rollout retry` → one new attempt, which fails and is held again.
    let out = plugsync(&["rollout", "retry", "alpha", "--server", &server], &[("PLUGSYNC_API_TOKEN", token)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rollout retry failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("202"), "{text}");
    wait_for(
        "a new attempt at 1.1.0",
        Duration::from_secs(15),
        || creates.count("alpha", V2) > first,
        || daemon.log_tail(),
    );
    wait_for(
        "the retried rollout to fail again",
        CONVERGE,
        || {
            rolled_back(&repo, "alpha")
                .is_some_and(|s| s.failed.as_ref().unwrap().at != failed.at || s.last_change != status.last_change)
                && plugin_runs(&fleet, "alpha", V1, 1)
        },
        || {
            format!(
                "status:\n{}\nlog:\n{}",
                repo.status_text("status/alpha.yaml").unwrap_or_default(),
                daemon.log_tail()
            )
        },
    );
    let second = creates.count("alpha", V2);
    wait_ticks(&daemon, 3, Duration::from_secs(20));
    assert_eq!(creates.count("alpha", V2), second, "after the retry failed, polling retried again");
    daemon.assert_alive();
    eprintln!("attempts at 1.1.0: {second}; test took {:?}", t0.elapsed());
}

#[test]
fn secret_values_reach_the_container_but_never_git() {
    let t0 = Instant::now();
    let (fleet, network) = names("secret");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let secret = format!("s3cret-{}-{nanos}", std::process::id());
    let secret_env = "secretEnv:\n  TOKEN: {fromEnv: PLUGSYNC_E2E_SECRET}\n";
    let repo = Repo::new();
    repo.write("plugsync.yaml", &fleet_yaml(&fleet, &network));
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V1, &[], secret_env));
    repo.commit_push("alpha with a secret");
    let daemon =
        Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s").env("PLUGSYNC_E2E_SECRET", &secret));
    wait_converged(&repo, &daemon, "alpha", V1, CONVERGE);
    // A bump too, so the status carries change reasons (spec differences).
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V2, &[], secret_env));
    repo.commit_push("alpha 1.1.0");
    wait_converged(&repo, &daemon, "alpha", V2, CONVERGE);

    let container =
        containers(&fleet).into_iter().find(|c| c.plugin == "alpha" && c.state == "running").expect("alpha runs");
    let inspected = inspect(&container.id);
    let env: Vec<String> = serde_json::from_value(inspected["Config"]["Env"].clone()).unwrap_or_default();
    assert!(env.contains(&format!("TOKEN={secret}")), "the container gets the secret in Env: {env:?}");
    let labels = inspected["Config"]["Labels"].to_string();
    assert!(!labels.contains(&secret), "the secret leaked into container labels: {labels}");

    let log = repo.bare_git(&["log", "-p", "--all"]);
    assert!(log.status.success());
    let history = String::from_utf8_lossy(&log.stdout);
    assert!(history.contains("status/alpha.yaml"), "the status branch was written");
    assert!(!history.contains(&secret), "the secret value is in the Git history of the remote");
    let (_, api) = http_get(&format!("{}/api/v1/status", daemon.base_url())).expect("GET /api/v1/status");
    assert!(!api.contains(&secret), "the secret value is in /api/v1/status");
    assert!(!daemon.log().contains(&secret), "the secret value is in the daemon log");
    eprintln!("test took {:?}", t0.elapsed());
}

/// A failed rollout is remembered on the status branch, so a restarted daemon holds it too.
fn held_across_restart(tag: &str, status_branch: Option<&str>) {
    let (fleet, network) = names(tag);
    let branch = status_branch.unwrap_or("plugsync/status");
    let repo = Repo::new();
    let mut config = fleet_yaml(&fleet, &network);
    if let Some(b) = status_branch {
        config += &format!("statusBranch: {b}\n");
    }
    repo.write("plugsync.yaml", &config);
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V1, &[], POLICY));
    repo.commit_push("alpha 1.0.0");
    let mut daemon = Daemon::start(&fleet, &network, DaemonOptions::new(repo.url(), "1s"));
    wait_for(
        "alpha 1.0.0 running and ACTIVE",
        CONVERGE,
        || {
            plugin_runs(&fleet, "alpha", V1, 1)
                && repo.plugin_status_on(branch, "alpha").is_some_and(|s| s.state == Lifecycle::Active)
        },
        || daemon.log_tail(),
    );
    let creates = CreateWatch::start(&fleet);
    repo.write(&plugin_path("alpha"), &plugin_yaml("alpha", V2, &[("NEVER_READY", "1")], POLICY));
    repo.commit_push("alpha 1.1.0, never ready");
    wait_for(
        "alpha ROLLED_BACK",
        CONVERGE,
        || {
            repo.plugin_status_on(branch, "alpha").is_some_and(|s| s.state == Lifecycle::RolledBack)
                && plugin_runs(&fleet, "alpha", V1, 1)
        },
        || daemon.log_tail(),
    );
    let first = creates.count("alpha", V2);
    daemon.restart();
    wait_ticks(&daemon, 4, Duration::from_secs(30));
    assert_eq!(
        creates.count("alpha", V2),
        first,
        "after a restart the daemon retried the failed rollout (status branch {branch}); log:\n{}",
        daemon.log_tail()
    );
    let status = repo.plugin_status_on(branch, "alpha").expect("alpha status");
    assert_eq!(status.state, Lifecycle::RolledBack, "status after restart: {status:?}");
}

#[test]
fn failed_rollout_stays_held_across_a_restart() {
    held_across_restart("restart", None);
}

#[test]
fn failed_rollout_stays_held_across_a_restart_with_a_custom_status_branch() {
    held_across_restart("restartb", Some("ops/status"));
}
