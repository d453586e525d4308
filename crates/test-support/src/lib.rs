//! Helpers of plugsync's integration tests (a dev-dependency only). Every helper talks to real
//! parts: the Docker engine, git repositories and remotes, `plugsync run` processes, the
//! Kubernetes cluster of `.ci/k8s-cluster`, Prometheus and Alertmanager from Debian's packages.
//! Tests that need one fail loudly (never skip) without it.
//!
//! - [`docker`]: test fleets on the local engine, plugin manifests, probe clients.
//! - [`daemon`]: git remotes and `plugsync run` daemons, status-branch reads, polling.
//! - [`k8s`]: a namespace per test on the cluster.
//! - [`progressive`]: canary / blue-green / A-B scenarios with traffic and analysis.
//! - [`analysis`]: echo plugins on the default bridge for the analysis sources.
//! - [`fixtures`]: fixture fleets and the plugsync binary for the validate tests.
//! - [`router`]: a router container (HAProxy) and its runtime API.
//! - [`routed`]: fleets behind plugsync's managed router, requests and load through it.
//! - [`servers`]: Prometheus and Alertmanager processes.
//! - [`browser`]: headless Chromium over WebDriver, for the dashboard.

pub mod analysis;
pub mod browser;
pub mod daemon;
pub mod docker;
pub mod fixtures;
pub mod k8s;
pub mod progressive;
pub mod routed;
pub mod router;
pub mod servers;

use std::path::{Path, PathBuf};

/// The repository's root (fixtures, examples, policy).
pub fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `plugsync` binary cargo built for the running test: `target/<profile>/plugsync`, beside
/// the test binary's `deps/` folder (`PLUGSYNC_BIN` overrides).
pub fn plugsync_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PLUGSYNC_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's path: {e}"));
    let profile =
        exe.parent().and_then(Path::parent).unwrap_or_else(|| panic!("no target dir above {}", exe.display()));
    let bin = profile.join(format!("plugsync{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} not built (cargo builds it with the integration tests)", bin.display());
    bin
}
