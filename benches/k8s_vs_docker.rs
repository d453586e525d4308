//! The example fleet (examples/fleet: 6 plugins, 13 instances) converged from nothing on the
//! local Docker engine and on the Kubernetes cluster of ../shared/k8s, in the same run; then a
//! no-change pass on each, with the API requests it cost on Kubernetes.
//!
//!     .ci/k8s-cluster up
//!     KUBECONFIG=/var/lib/plugsync-k8s/admin.kubeconfig cargo bench --bench k8s_vs_docker
//!
//! BENCH_REPS (default 3) repetitions; every repetition starts from an empty namespace and no
//! containers of the bench fleet. Prints min / median per engine.

use plugsync::backend::docker::DockerBackend;
use plugsync::backend::kubernetes::KubernetesBackend;
use plugsync::backend::Backend;
use plugsync::plan::DesiredHealth;
use plugsync::reconcile::{Ending, Reconciler, Report};
use std::path::Path;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "plugsync-bench";
const FLEET: &str = "bench-example";
const NETWORK: &str = "plugsync-bench-example";
const NODE_DOCKER: &str = "/var/lib/plugsync-k8s/run/docker.sock";

fn fleet_dir(backend: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    plugsync::source::dir::copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet"), dir.path())
        .expect("copy the example fleet");
    std::fs::write(
        dir.path().join("plugsync.yaml"),
        format!(
            "fleet: {FLEET}\nenvironment: Production\nbackend: {{type: {backend}, network: {NETWORK}, namespace: {NAMESPACE}}}\n"
        ),
    )
    .expect("write plugsync.yaml");
    dir
}

async fn pass<B: Backend>(backend: &B, dir: &Path) -> (Duration, Report) {
    let local = plugsync::source::load_dir(dir, None).expect("load fleet");
    assert!(local.loaded.is_valid(), "example fleet invalid");
    let quiet = |_: &str| {};
    let t = Instant::now();
    let report = Reconciler::new(backend, &local.loaded.fleet, &local.revision, &quiet)
        .run(DesiredHealth::Complete)
        .await
        .expect("reconcile");
    let took = t.elapsed();
    for r in &report.results {
        assert_eq!(r.result, Ending::Converged, "{}: {:?}", r.plugin, r.result);
    }
    (took, report)
}

async fn clean_docker(docker: &bollard::Docker) {
    let backend = DockerBackend::connect(None, NETWORK.into()).await.expect("docker");
    let observed = backend.observe(FLEET, None).await.expect("observe");
    for i in &observed.instances {
        let options = bollard::query_parameters::RemoveContainerOptions { force: true, ..Default::default() };
        let _ = docker.remove_container(&i.id, Some(options)).await;
    }
}

async fn clean_k8s(client: &kube::Client) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(client.clone());
    let _ = api.delete(NAMESPACE, &Default::default()).await;
    while api.get_opt(NAMESPACE).await.ok().flatten().is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn summary(label: &str, mut values: Vec<f64>) -> String {
    values.sort_by(|a, b| a.total_cmp(b));
    format!("{label:<34} min {:>7.2}  median {:>7.2}", values[0], values[values.len() / 2])
}

fn main() {
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    // SAFETY: single-threaded here, before the runtime starts.
    unsafe { std::env::set_var("PLUGSYNC_EXAMPLE_AUTH_KEY", "bench-signing-key") };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let versions = ["1.0.0", "1.1.0", "2.3.0"];
        let local = bollard::Docker::connect_with_local_defaults().expect("docker").negotiate_version().await.expect("docker up");
        plugsync::images::ensure_echo_images(&local, root, &versions).await.expect("images (local)");
        let node = bollard::Docker::connect_with_socket(NODE_DOCKER, 60, bollard::API_DEFAULT_VERSION)
            .expect("node docker")
            .negotiate_version()
            .await
            .expect("the cluster's node Docker is not up: run .ci/k8s-cluster up");
        plugsync::images::ensure_echo_images(&node, root, &versions).await.expect("images (node)");
        let client = kube::Client::try_default().await.expect("kubeconfig (KUBECONFIG)");
        let (docker_dir, k8s_dir) = (fleet_dir("docker"), fleet_dir("kubernetes"));
        let (mut docker_first, mut k8s_first, mut docker_again, mut k8s_again, mut requests) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for rep in 0..reps {
            clean_docker(&local).await;
            clean_k8s(&client).await;
            let docker = DockerBackend::connect(None, NETWORK.into()).await.expect("docker backend");
            let (took, _) = pass(&docker, docker_dir.path()).await;
            docker_first.push(took.as_secs_f64());
            let (again, _) = pass(&docker, docker_dir.path()).await;
            docker_again.push(again.as_secs_f64() * 1000.0);
            let k8s = KubernetesBackend::connect(Some(NAMESPACE)).await.expect("kubernetes backend");
            let (took_k8s, _) = pass(&k8s, k8s_dir.path()).await;
            k8s_first.push(took_k8s.as_secs_f64());
            let before = k8s.requests();
            let (again_k8s, report) = pass(&k8s, k8s_dir.path()).await;
            assert!(report.plan.no_changes());
            requests.push((k8s.requests() - before) as f64);
            k8s_again.push(again_k8s.as_secs_f64() * 1000.0);
            eprintln!(
                "rep {rep}: docker {took:.2?} (again {again:.2?}), kubernetes {took_k8s:.2?} (again {again_k8s:.2?}, {} requests)",
                k8s.requests() - before
            );
        }
        clean_docker(&local).await;
        clean_k8s(&client).await;
        let _ = local.remove_network(NETWORK).await;
        println!("example fleet (6 plugins, 13 instances), {reps} repetitions");
        println!("{}", summary("converge from nothing, Docker (s)", docker_first));
        println!("{}", summary("converge from nothing, Kubernetes (s)", k8s_first));
        println!("{}", summary("no-change pass, Docker (ms)", docker_again));
        println!("{}", summary("no-change pass, Kubernetes (ms)", k8s_again));
        println!("{}", summary("no-change pass, Kubernetes requests", requests));
    });
}
