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

/// The client of a reconcile pass: probes (plain http) and Prometheus queries (http or https,
/// trusting the host's CAs plus `ca_bundles`). An unreadable bundle is logged and left out,
/// so https to a server it signs fails with "unknown issuer" rather than the pass.
pub fn client(ca_bundles: &[std::path::PathBuf]) -> reqwest::Client {
    let builder = || crate::tls::builder().connect_timeout(Duration::from_millis(500)).pool_max_idle_per_host(0);
    crate::tls::client(builder(), ca_bundles).unwrap_or_else(|e| {
        tracing::error!(error = %crate::analysis::error_chain(&e), "extra CA bundles left out");
        builder().build().unwrap_or_else(|_| crate::tls::http_client())
    })
}
