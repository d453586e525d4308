//! A router container (`FROM scratch` around Debian's haproxy) on the default bridge, given a
//! configuration text, removed on drop; its runtime API and its log.

use crate::analysis::{self as support, bridge_ip};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions, UploadToContainerOptions};
use bollard::Docker;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The router container, removed on drop.
pub struct Router {
    pub id: String,
    pub ip: IpAddr,
}

impl Router {
    pub async fn start(docker: &Docker, name: &str, text: &str) -> Router {
        plugsync::images::build_router_image(docker).await.unwrap_or_else(|e| panic!("router image: {e}"));
        let name = format!("router-test-{}-{name}", std::process::id());
        let _ =
            docker.remove_container(&name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
        let body = ContainerCreateBody {
            image: Some(plugsync::images::ROUTER_IMAGE.into()),
            labels: Some(HashMap::from([(support::SUITE_LABEL.to_string(), support::SUITE.to_string())])),
            host_config: Some(HostConfig { network_mode: Some("bridge".into()), ..Default::default() }),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        let mut router = Router { id: created.id, ip: IpAddr::from([0, 0, 0, 0]) };
        let archive = plugsync::images::router_config_archive(text).expect("config archive");
        docker
            .upload_to_container(
                &router.id,
                Some(UploadToContainerOptions { path: "/".into(), ..Default::default() }),
                bollard::body_full(archive.into()),
            )
            .await
            .unwrap_or_else(|e| panic!("upload the router config: {e}"));
        docker.start_container(&router.id, None).await.unwrap_or_else(|e| panic!("start {name}: {e}"));
        router.ip = bridge_ip(docker, &router.id).await;
        router.wait_ready(docker).await;
        router
    }

    async fn wait_ready(&self, docker: &Docker) {
        let url = format!("http://{}:8404/healthz", self.ip);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match plugsync::tls::http_client().get(&url).timeout(Duration::from_secs(1)).send().await {
                Ok(r) if r.status().is_success() => return,
                other if Instant::now() > deadline => {
                    let logs = container_logs(docker, &self.id).await;
                    panic!("the router never answered {url}: {other:?}\nits log:\n{logs}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Sends runtime API commands (one connection, `;`-separated) and returns the answer.
    pub async fn runtime(&self, commands: &[String]) -> String {
        let mut stream =
            tokio::net::TcpStream::connect((self.ip, 9999)).await.unwrap_or_else(|e| panic!("runtime API: {e}"));
        stream.write_all(format!("{}\n", commands.join(";")).as_bytes()).await.expect("write command");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read answer");
        answer
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let id = self.id.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let docker = Docker::connect_with_local_defaults().ok()?.negotiate_version().await.ok()?;
                docker
                    .remove_container(&id, Some(RemoveContainerOptions { force: true, ..Default::default() }))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub async fn container_logs(docker: &Docker, id: &str) -> String {
    use futures_util::StreamExt;
    let options = bollard::query_parameters::LogsOptions { stdout: true, stderr: true, ..Default::default() };
    let mut out = String::new();
    let mut stream = docker.logs(id, Some(options));
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}
