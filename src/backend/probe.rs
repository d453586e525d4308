//! HTTP health probes of an instance on its own address.

use crate::plan::Instance;
use std::time::Duration;

/// Probes `path` on the instance; `true` only for a 2xx answer within `timeout`.
pub async fn http_ok(client: &reqwest::Client, instance: &Instance, port: u16, path: &str, timeout: Duration) -> bool {
    let Some(address) = instance.address else { return false };
    let url = format!("http://{}/{}", std::net::SocketAddr::new(address, port), path.trim_start_matches('/'));
    match client.get(url).timeout(timeout).send().await {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(500))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}
