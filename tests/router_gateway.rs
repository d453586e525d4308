//! The edge gateway on the real engine (`traffic.gateway`): one published port on which a
//! routed plugin's `api.basePath` leads to it, through the router:
//!
//! - `/api/plugins/crm` and everything below it reach crm with the path unchanged; a sibling
//!   prefix (`/api/plugins/crmx`) and an unknown path get 404;
//! - a canary of `web` at 25 %, `stickyBy: header:X-Tenant-ID`, through the gateway: each
//!   tenant sees one version, and the share of tenants on the canary tracks the weight;
//! - a gateway that died is replaced on the next pass; it leaves when no base path is left.
//!
//! Needs Docker and Debian's haproxy (the router image is built around it); fails loudly.

use plugsync_test_support::docker::{PluginDef, V1, V2};
use plugsync_test_support::progressive::canary;
use plugsync_test_support::routed::*;

use plugsync::backend::docker::DockerBackend;
use plugsync::plan::router::RouterAction;
use plugsync::plan::DesiredHealth;
use plugsync::reconcile::Ending;
use plugsync_test_support::docker::TestFleet;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const TENANT: &str = "X-Tenant-ID";

/// The fleet's gateway containers: (id, running).
async fn gateways(docker: &bollard::Docker, fleet: &str) -> Vec<(String, bool)> {
    let filters = HashMap::from([("label".to_string(), vec![format!("plugsync.gateway={fleet}")])]);
    let options =
        bollard::query_parameters::ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let listed = docker.list_containers(Some(options)).await.expect("list gateways");
    listed
        .into_iter()
        .map(|c| (c.id.unwrap_or_default(), c.state.is_some_and(|s| s.to_string() == "running")))
        .collect()
}

/// (status, the answering plugin, its version, the path it saw) for one request.
async fn get(client: &reqwest::Client, port: u16, path: &str, tenant: Option<&str>) -> (u16, String, String, String) {
    let mut request = client.get(format!("http://127.0.0.1:{port}{path}")).timeout(Duration::from_secs(5));
    if let Some(t) = tenant {
        request = request.header(TENANT, t);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("GET {path} through the gateway: {e:?}"));
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    (status, field("plugin"), field("version"), field("path"))
}

async fn gateway_action(fleet: &TestFleet, backend: &DockerBackend) -> Option<RouterAction> {
    fleet.plan(backend, DesiredHealth::Complete).await.gateway.map(|g| g.action)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

// Long: one gateway's life, from its first plugin to its last; each stage needs the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_routes_base_paths_to_plugins_with_the_routers_weights() {
    let (docker, fleet, _, story) = routed_fleet("gwy").await;
    let port = free_port();
    let config = std::fs::read_to_string(fleet.path().join("plugsync.yaml")).expect("plugsync.yaml");
    fleet.write("plugsync.yaml", &format!("{config}  gateway:\n    port: {port}\n    address: 127.0.0.1\n"));
    let with_base = |def: &PluginDef, base: &str, own: &str| format!("{}api:\n  basePath: {base}\n{own}", def.yaml());
    let crm = PluginDef::new("crm", V1).replicas(2).env("PLUGIN_ID", "crm");
    let web = PluginDef::new("web", V1).replicas(3).env("PLUGIN_ID", "web").rollout(&canary(
        "[25, 100]",
        "25s",
        true,
        0,
        0.05,
    ));
    let sticky = format!("traffic:\n  stickyBy: header:{TENANT}\n");
    fleet.write("plugins/crm/plugin.yaml", &with_base(&crm, "/api/plugins/crm", ""));
    fleet.write("plugins/web/plugin.yaml", &with_base(&web, "/api/plugins/web/", &sticky));
    let backend = fleet.backend().await;
    let plan = fleet.plan(&backend, DesiredHealth::Complete).await;
    let gateway = plan.gateway.clone().expect("the plan starts the gateway");
    assert_eq!(gateway.action, RouterAction::Create);
    let line =
        format!("⇄ create gateway: publishing 127.0.0.1:{port}: /api/plugins/crm → crm, /api/plugins/web/ → web");
    assert!(plugsync::plan::render::text(&plan).contains(&line), "{}", plugsync::plan::render::text(&plan));
    assert_eq!(reconcile(&fleet, &backend, &story).await, vec![Ending::Converged; 2], "{}", story.text());
    assert!(story.text().contains("gateway: started"), "{}", story.text());
    assert_eq!(gateways(&docker, &fleet.name).await.len(), 1);
    assert_eq!(gateway_action(&fleet, &backend).await, None, "converged: nothing planned for the gateway");

    // Paths: the base path and below it reach the plugin, unchanged; nothing else does.
    let client = plugsync::tls::http_client();
    let table = [
        ("/api/plugins/crm", 200, "crm"),
        ("/api/plugins/crm/contacts/42?full=1", 200, "crm"),
        ("/api/plugins/web/", 200, "web"),
        ("/api/plugins/web", 200, "web"),
        ("/api/plugins/crmx", 404, ""),
        ("/", 404, ""),
    ];
    for (path, status, plugin) in table {
        let (got, answered_by, _, seen) = get(&client, port, path, None).await;
        assert_eq!((got, answered_by.as_str()), (status, plugin), "GET {path}");
        if status == 200 {
            assert_eq!(seen, path.split('?').next().unwrap_or(path), "the plugin sees the path unchanged");
        }
    }

    // A sticky canary through the gateway: the router's weights and stickiness apply.
    let router = replicas(&docker, &fleet).await.first().and_then(|r| r.1).expect("a router replica");
    fleet.write("plugins/web/plugin.yaml", &with_base(&web.clone().version(V2), "/api/plugins/web", &sticky));
    let rollout = async { reconcile(&fleet, &backend, &story).await };
    let measure = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !canary_weight(router, "web").await.is_some_and(|w| (w - 25.0).abs() < 1.0) {
            assert!(Instant::now() < deadline, "the router never reached 25 %:\n{}", story.text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut on_canary = 0;
        for tenant in 0..400 {
            let id = format!("tenant-{tenant}");
            let first = get(&client, port, "/api/plugins/web/orders", Some(&id)).await;
            let second = get(&client, port, "/api/plugins/web/orders", Some(&id)).await;
            assert_eq!((first.0, second.0), (200, 200), "{id}");
            assert_eq!(first.2, second.2, "tenant {id} saw two versions at 25 %");
            on_canary += usize::from(first.2 == V2);
        }
        on_canary as f64 / 4.0
    };
    let (endings, share) = tokio::join!(rollout, measure);
    eprintln!("MEASURED through the gateway at 25 %: {share:.1} % of 400 tenants on the canary");
    assert_eq!(endings, vec![Ending::Converged], "{}", story.text());
    assert!((share - 25.0).abs() <= 7.0, "{share:.1} % of tenants on the canary at 25 %");
    assert_eq!(get(&client, port, "/api/plugins/web/x", None).await.2, V2);

    // A gateway that died is replaced on the next pass.
    let (dead, _) = gateways(&docker, &fleet.name).await.remove(0);
    docker.kill_container(&dead, None).await.expect("kill the gateway");
    assert_eq!(gateway_action(&fleet, &backend).await, Some(RouterAction::Heal));
    reconcile(&fleet, &backend, &story).await;
    let now = gateways(&docker, &fleet.name).await;
    assert!(now.len() == 1 && now[0].0 != dead && now[0].1, "{now:?}\n{}", story.text());
    assert_eq!(get(&client, port, "/api/plugins/crm/", None).await.1, "crm");

    // No base path left: the gateway leaves (the router stays for the routed plugins).
    fleet.write("plugins/crm/plugin.yaml", &crm.yaml());
    fleet.write("plugins/web/plugin.yaml", &format!("{}{sticky}", web.clone().version(V2).yaml()));
    assert_eq!(gateway_action(&fleet, &backend).await, Some(RouterAction::Remove));
    reconcile(&fleet, &backend, &story).await;
    assert!(gateways(&docker, &fleet.name).await.is_empty(), "{}", story.text());
    assert_eq!(replicas(&docker, &fleet).await.len(), 2);
}
