//! Helpers shared by `analysis_builtin` and `analysis_prometheus`: the Docker engine,
//! echo-plugin containers on the default bridge with a Drop guard, hand-made `Instance`
//! values, and bounded traffic from the test process.

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    RestartContainerOptions,
};
use bollard::Docker;
use plugsync::plan::{Instance, RunState, Slot};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Tag of the echo image these tests run (built from `examples/echo-plugin`).
pub const ECHO_TAG: &str = "0.0.2-analysis";
/// Every container these tests create carries this label (and an `analysis-test-` name).
pub const SUITE_LABEL: &str = "plugsync-test.suite";
pub const SUITE: &str = "analysis";

/// The local engine, API version negotiated. Panics (never skips) without one.
pub async fn docker() -> Docker {
    let docker = Docker::connect_with_local_defaults()
        .expect("cannot configure a Docker client (DOCKER_HOST / socket): the analysis tests need Docker");
    let docker = docker
        .negotiate_version()
        .await
        .expect("Docker engine unreachable: the analysis tests need a running Docker daemon");
    docker.ping().await.expect("Docker engine does not answer ping: the analysis tests need Docker");
    docker
}

/// Builds `plugsync/echo-plugin:0.0.2-analysis` when missing or stale, and removes
/// containers a killed earlier run of these tests left behind (older than ten minutes).
pub async fn prepare(docker: &Docker) {
    let t = Instant::now();
    plugsync::images::ensure_echo_images(docker, crate::workspace_root(), &[ECHO_TAG])
        .await
        .unwrap_or_else(|e| panic!("building the echo plugin image failed: {e}"));
    eprintln!("echo image ready in {:?}", t.elapsed());
    let filters = HashMap::from([("label".to_string(), vec![format!("{SUITE_LABEL}={SUITE}")])]);
    let old = docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    for c in old {
        let stale = c.created.is_some_and(|t| now - t > 600);
        let ours = c.names.iter().flatten().any(|n| n.trim_start_matches('/').starts_with("analysis-test-"));
        if stale && ours {
            let id = c.id.unwrap_or_default();
            let _ =
                docker.remove_container(&id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
            eprintln!("removed leftover container {id}");
        }
    }
}

/// One echo-plugin container on the default bridge, removed on drop (even on panic).
pub struct Echo {
    pub id: String,
    pub name: String,
    pub ip: IpAddr,
}

impl Echo {
    /// Creates and starts `analysis-test-<pid>-<role>` with `env`, waits until `/health`
    /// answers from the test process.
    pub async fn start(docker: &Docker, role: &str, env: &[&str]) -> Echo {
        let name = format!("analysis-test-{}-{role}", std::process::id());
        // A container of that name from an earlier test of this same process: gone.
        let _ =
            docker.remove_container(&name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
        let mut env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
        env.push(format!("PLUGIN_ID={role}"));
        env.push(format!("ECHO_VERSION={ECHO_TAG}"));
        let body = ContainerCreateBody {
            image: Some(format!("{}:{ECHO_TAG}", plugsync::images::ECHO_IMAGE_REPO)),
            env: Some(env),
            labels: Some(HashMap::from([(SUITE_LABEL.to_string(), SUITE.to_string())])),
            host_config: Some(HostConfig { network_mode: Some("bridge".into()), ..Default::default() }),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
            .await
            .unwrap_or_else(|e| panic!("create container {name}: {e}"));
        // From here on the guard removes it.
        let mut echo = Echo { id: created.id, name, ip: IpAddr::from([0, 0, 0, 0]) };
        docker.start_container(&echo.id, None).await.unwrap_or_else(|e| panic!("start {}: {e}", echo.name));
        echo.ip = bridge_ip(docker, &echo.id).await;
        echo.wait_healthy().await;
        echo
    }

    /// Restarts the container (its counters start again from zero) and waits for it.
    pub async fn restart(&mut self, docker: &Docker) {
        docker
            .restart_container(&self.id, Some(RestartContainerOptions { t: Some(2), ..Default::default() }))
            .await
            .unwrap_or_else(|e| panic!("restart {}: {e}", self.name));
        self.ip = bridge_ip(docker, &self.id).await;
        self.wait_healthy().await;
    }

    async fn wait_healthy(&self) {
        let client = plugsync::tls::http_client();
        let url = format!("http://{}:8080/health", self.ip);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match client.get(&url).timeout(Duration::from_secs(1)).send().await {
                Ok(r) if r.status().is_success() => return,
                other if Instant::now() > deadline => {
                    panic!("{} never answered {url}: {other:?}", self.name)
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// An `Instance` as the Docker backend would observe it (built by hand).
    pub fn instance(&self, plugin: &str, slot: Slot) -> Instance {
        Instance {
            id: self.id.clone(),
            name: self.name.clone(),
            plugin: plugin.to_string(),
            slot,
            version: ECHO_TAG.to_string(),
            spec_hash: "test".to_string(),
            spec: None,
            revision: "test".to_string(),
            state: RunState::Running,
            serving: true,
            address: Some(self.ip),
            ready: Some(true),
            oom_killed: false,
            restart_count: 0,
            image_id: None,
            runtime: None,
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let id = self.id.clone();
        let name = self.name.clone();
        // Drop cannot await and the test's runtime may be unwinding: a runtime of its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let docker = Docker::connect_with_local_defaults().ok()?.negotiate_version().await.ok()?;
                docker
                    .remove_container(&id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() }))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(done, Ok(Some(()))) {
            eprintln!("could not remove container {name}: remove it by hand (docker rm -f {name})");
        }
    }
}

/// The container's address on the default bridge.
pub async fn bridge_ip(docker: &Docker, id: &str) -> IpAddr {
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .unwrap_or_else(|e| panic!("inspect {id}: {e}"));
    let ip = info
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get("bridge").cloned())
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("container {id} has no address on the default bridge"));
    ip.parse().unwrap_or_else(|e| panic!("bad bridge address {ip:?}: {e}"))
}

/// Status codes answered to `n` GETs of `http://ip:8080/`, `concurrency` at a time.
pub async fn send(client: &reqwest::Client, ip: IpAddr, n: usize, concurrency: usize) -> HashMap<u16, usize> {
    let url = format!("http://{ip}:8080/");
    let mut codes = HashMap::new();
    let mut left = n;
    while left > 0 {
        let batch = left.min(concurrency.max(1));
        left -= batch;
        let answers =
            futures_util::future::join_all((0..batch).map(|_| client.get(&url).timeout(Duration::from_secs(5)).send()))
                .await;
        for a in answers {
            let code = a.unwrap_or_else(|e| panic!("GET {url}: {e}")).status().as_u16();
            *codes.entry(code).or_insert(0) += 1;
        }
    }
    codes
}

#[test]
fn instance_has_the_container_address() {
    let echo = std::mem::ManuallyDrop::new(Echo {
        id: "abc".into(),
        name: "analysis-test-x".into(),
        ip: "172.17.0.9".parse().unwrap(),
    });
    let i = echo.instance("echo", Slot::Canary);
    assert_eq!((i.address, i.slot, i.id.as_str()), (Some(echo.ip), Slot::Canary, "abc"));
}
