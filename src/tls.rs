//! TLS for plugsync's outgoing HTTPS (Slack, webhooks, Alertmanager, Prometheus): rustls with
//! the `ring` provider (no OpenSSL, no aws-lc), certificates always verified, trusting the
//! host's CA store plus any extra PEM bundles the operator names (`tls.caBundle` in
//! plugsync.yaml, `PLUGSYNC_CA_BUNDLE` in the daemon's environment).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Extra bundles from the daemon's environment, `:`-separated paths.
pub const CA_BUNDLE_ENV: &str = "PLUGSYNC_CA_BUNDLE";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA bundle {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA bundle {path}: found no PEM certificate, expected one or more -----BEGIN CERTIFICATE----- blocks")]
    NoCertificate { path: PathBuf },
    #[error("CA bundle {path}: certificate {index} is not usable as a trust anchor: {source}")]
    BadCertificate {
        path: PathBuf,
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS setup: {0}")]
    Setup(#[source] rustls::Error),
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The bundles to trust besides the host's: the fleet's `tls.caBundle` and the environment's.
pub fn extra_bundles(fleet_bundle: Option<&str>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fleet_bundle.map(PathBuf::from).into_iter().collect();
    if let Ok(paths) = std::env::var(CA_BUNDLE_ENV) {
        out.extend(paths.split(':').filter(|p| !p.trim().is_empty()).map(PathBuf::from));
    }
    out
}

/// A rustls client configuration trusting the host's roots and `extra` PEM bundles.
pub fn client_config(extra: &[PathBuf]) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = host_roots().clone();
    for path in extra {
        add_bundle(&mut roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The host's CA store, read once per process: a client is built every reconcile pass, and
/// the store is a couple of hundred certificates to parse. Extra bundles are read each time.
fn host_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "a host CA certificate could not be read");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "host CA certificates");
        roots
    })
}

fn add_bundle(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    for (index, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|source| TlsError::BadCertificate { path: path.into(), index, source })?;
    }
    Ok(())
}

/// Makes `ring` the process's rustls provider (once), so that any reqwest client built
/// afterwards has TLS; plugsync never links a second provider.
pub fn install_default_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder whose TLS trusts the host's CAs (the process provider installed).
pub fn builder() -> reqwest::ClientBuilder {
    install_default_provider();
    reqwest::Client::builder()
}

/// A plain client with verified TLS and the host's CAs.
pub fn http_client() -> reqwest::Client {
    builder().build().unwrap_or_else(|e| {
        tracing::error!(error = %e, "HTTP client with default settings");
        reqwest::Client::new()
    })
}

/// `builder` finished with verified TLS trusting `extra` besides the host's roots.
pub fn client(builder: reqwest::ClientBuilder, extra: &[PathBuf]) -> Result<reqwest::Client, TlsError> {
    let config = client_config(extra)?;
    builder.tls_backend_preconfigured(config).build().map_err(TlsError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_that_is_not_pem_or_missing_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").expect("write");
        let e = client_config(&[not_pem.clone()]).unwrap_err().to_string();
        assert!(e.contains("ca.txt") && e.contains("BEGIN CERTIFICATE"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = client_config(&[missing]).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn the_host_roots_load_without_extra_bundles() {
        assert!(client(builder(), &[]).is_ok());
    }
}
