//! Builds the echo plugin image through the Docker API and checks the running container
//! over real HTTP. Needs a Docker engine: fails loudly (never skips) when there is none.

use std::path::Path;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use plugsync::images::{
    build_scratch_image, ensure_echo_images, ImageError, BINARY_SHA_LABEL, ECHO_IMAGE_REPO, IMAGE_LABEL,
};

use common::{docker, http_get};
use plugsync_test_support::docker as common;

const VERSION: &str = "0.0.1-test";

/// Removes the container when dropped, even if the test panicked half-way.
struct ContainerGuard {
    name: String,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be unwinding: use a private one,
        // with its own connection (pooled connections are tied to the runtime that made them).
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let docker = docker().await;
                let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                match docker.remove_container(&name, Some(options)).await {
                    Ok(()) => eprintln!("removed container {name}"),
                    Err(e) => eprintln!("could not remove container {name}: {e}"),
                }
            });
            Ok::<_, std::io::Error>(())
        })
        .join();
        if !matches!(joined, Ok(Ok(()))) {
            eprintln!("cleanup of container {} failed", self.name);
        }
    }
}

#[tokio::test]
async fn echo_image_builds_runs_and_stops_promptly() {
    let docker = docker().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tag = format!("{ECHO_IMAGE_REPO}:{VERSION}");

    // --- build (or confirm) the image; a second call must be a cheap no-op ---
    let t = Instant::now();
    ensure_echo_images(&docker, root, &[VERSION]).await.expect("ensure_echo_images");
    eprintln!("ensure_echo_images (first call): {:?}", t.elapsed());
    let image = docker.inspect_image(&tag).await.expect("image exists after ensure_echo_images");
    let labels = image.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
    assert_eq!(labels.get(IMAGE_LABEL).map(String::as_str), Some("true"), "labels: {labels:?}");
    assert!(labels.get(BINARY_SHA_LABEL).is_some_and(|s| s.len() == 64), "labels: {labels:?}");

    let t = Instant::now();
    ensure_echo_images(&docker, root, &[VERSION]).await.expect("ensure_echo_images (warm)");
    eprintln!("ensure_echo_images (warm call): {:?}", t.elapsed());
    let again = docker.inspect_image(&tag).await.expect("image still exists");
    assert_eq!(image.id, again.id, "an unchanged binary must not rebuild the image");

    // --- run it ---
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("echo-image-test-{}-{nanos}", std::process::id());
    let config = ContainerCreateBody {
        image: Some(tag.clone()),
        env: Some(vec![format!("ECHO_VERSION={VERSION}"), "READY_DELAY_MS=500".to_string()]),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let created = docker.create_container(Some(options), config).await.expect("create container");
    let _guard = ContainerGuard { name: name.clone() };

    let before_start = Instant::now();
    docker.start_container(&created.id, None).await.expect("start container");
    let inspect = docker.inspect_container(&created.id, None).await.expect("inspect container");
    let ip = inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get("bridge").and_then(|e| e.ip_address.clone()))
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .expect("container has an IP on the default bridge");
    eprintln!("container {name} at {ip}");

    // Liveness: the listener comes up within milliseconds of the process starting.
    let live = loop {
        match http_get(ip, "/health/live").await {
            Ok(r) => break r,
            Err(e) if before_start.elapsed() < Duration::from_secs(5) => {
                eprintln!("waiting for the listener: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("/health/live never answered: {e}"),
        }
    };
    assert_eq!(live.status, 200, "/health/live body: {}", live.body);
    assert!(live.body.contains("\"live\""), "{}", live.body);

    // Readiness: 503 during READY_DELAY_MS, then 200.
    let first_ready = http_get(ip, "/health/ready").await.expect("/health/ready");
    assert_eq!(
        first_ready.status,
        503,
        "/health/ready must be 503 during READY_DELAY_MS=500 (asked {:?} after start)",
        before_start.elapsed()
    );
    let became_ready = loop {
        let r = http_get(ip, "/health/ready").await.expect("/health/ready");
        if r.status == 200 {
            break before_start.elapsed();
        }
        assert_eq!(r.status, 503, "unexpected /health/ready answer: {}", r.body);
        assert!(before_start.elapsed() < Duration::from_secs(10), "never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("ready after {became_ready:?}");
    assert!(became_ready >= Duration::from_millis(500), "ready too early: {became_ready:?}");

    // The application endpoint reports the version given through the environment.
    let root_resp = http_get(ip, "/").await.expect("GET /");
    assert_eq!(root_resp.status, 200, "{}", root_resp.body);
    let json: serde_json::Value = serde_json::from_str(&root_resp.body).expect("GET / returns JSON");
    assert_eq!(json["version"], VERSION, "{json}");
    assert_eq!(json["plugin"], "echo", "{json}");
    assert_eq!(json["path"], "/", "{json}");
    assert!(json["config"].is_null(), "{json}");
    assert!(json["hostname"].as_str().is_some_and(|h| !h.is_empty()), "{json}");

    let metrics = http_get(ip, "/metrics").await.expect("GET /metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("http_requests_total{"), "{}", metrics.body);
    assert!(metrics.body.contains("http_request_duration_seconds_bucket{le=\"+Inf\"} 1"), "{}", metrics.body);
    assert!(metrics.body.contains(&format!("echo_info{{version=\"{VERSION}\"")), "{}", metrics.body);

    // SIGTERM must end PID 1 promptly (the kernel ignores default-action signals for PID 1).
    let t = Instant::now();
    let stop = StopContainerOptionsBuilder::default().t(10).build();
    docker.stop_container(&created.id, Some(stop)).await.expect("stop container");
    let took = t.elapsed();
    eprintln!("docker stop took {took:?}");
    assert!(took < Duration::from_secs(3), "docker stop took {took:?}: SIGTERM not handled");
    let state = docker
        .inspect_container(&created.id, None)
        .await
        .expect("inspect stopped container")
        .state
        .expect("container state");
    assert_eq!(state.exit_code, Some(0), "exit code after SIGTERM: {state:?}");
}

#[tokio::test]
async fn image_errors_are_clear() {
    let docker = docker().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    let err = ensure_echo_images(&docker, root, &["1.0.0+build"]).await.unwrap_err();
    assert!(matches!(err, ImageError::InvalidTag(_)), "{err}");

    let labels = Default::default();
    let missing = Path::new("/nonexistent/plugsync-echo-plugin");
    let err = build_scratch_image(&docker, missing, "echo-image-test:x", &labels).await.unwrap_err();
    assert!(matches!(err, ImageError::Io { .. }), "{err}");

    // The daemon rejects the reference; the message must say so, not just "error".
    let any_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let err = build_scratch_image(&docker, &any_file, "Not A Valid Tag", &labels).await.unwrap_err();
    eprintln!("invalid tag: {err}");
    match err {
        ImageError::BuildFailed { message, .. } => assert!(!message.is_empty()),
        other => panic!("expected BuildFailed, got {other}"),
    }
}
