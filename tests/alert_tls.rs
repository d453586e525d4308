//! Issue 10, defect 5: https alert URLs (Slack, webhooks, Alertmanager) and https Prometheus
//! work, with certificates verified. The test makes its own CA and a certificate for
//! 127.0.0.1, runs a real TLS receiver on loopback, and:
//!
//! - with the CA in a bundle (`tls.caBundle` / `PLUGSYNC_CA_BUNDLE`), webhook, Slack and
//!   Alertmanager deliveries arrive, and a Prometheus query over https is answered;
//! - without it, the same delivery is refused, and the error says the certificate's issuer is
//!   unknown and names the URL.

use chrono::Utc;
use plugsync::alert::channels::{deliver, AlertmanagerContext};
use plugsync::alert::{self, Channel, Dispatcher, DispatcherOptions, RolloutEventKind};
use plugsync::analysis::PrometheusProvider;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost.
struct Pki {
    ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    Pki {
        ca_pem: ca.pem(),
        server_cert: cert.der().clone(),
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// An https receiver on loopback: records each request's path and body and answers `reply`.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

async fn receiver(pki: &Pki, reply: &'static str) -> Receiver {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
        .expect("server TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://127.0.0.1:{}", listener.local_addr().expect("address").port());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                // A refused handshake (the client distrusts us) just ends this connection.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Some((path, body)) = read_request(&mut tls).await else { return };
                record.lock().unwrap_or_else(|p| p.into_inner()).push((path, body));
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Receiver { url, seen }
}

/// Path and body of one HTTP/1.1 request (content-length framing).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                return Some((path, body));
            }
        }
    }
}

fn bundle(pki: &Pki, dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).expect("write the CA bundle");
    path
}

fn context() -> AlertmanagerContext {
    AlertmanagerContext { firing_ttl: Duration::from_secs(300), generator_url: None }
}

#[tokio::test]
async fn https_alerts_and_prometheus_work_with_a_trusted_ca() {
    let pki = pki("trusted");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = bundle(&pki, &dir);
    let hooks = receiver(&pki, "{}").await;
    let options = DispatcherOptions {
        ca_bundles: vec![ca.clone()],
        request_timeout: Duration::from_secs(5),
        ..DispatcherOptions::default()
    };
    let channels = vec![
        Channel::Webhook { url: format!("{}/hook", hooks.url) },
        Channel::Slack { url: format!("{}/services/T000/B000/XXXX", hooks.url) },
        Channel::Alertmanager { url: hooks.url.clone() },
    ];
    let dispatcher = Dispatcher::with_channels(channels, None, options).expect("dispatcher");
    dispatcher.send(alert::rollout("prod", "crm", RolloutEventKind::Failed, "never ready", Utc::now()));
    assert!(dispatcher.flush(Duration::from_secs(10)).await, "deliveries finished: {:?}", dispatcher.stats());
    let stats = dispatcher.stats();
    assert!(stats.iter().filter(|s| s.channel != "log").all(|s| s.delivered == 1), "{stats:?}");
    let seen = hooks.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    for want in ["/hook", "/services/T000/B000/XXXX", "/api/v2/alerts"] {
        assert!(paths.contains(&want), "{want} reached over https: {paths:?}");
    }
    assert!(seen.iter().all(|(_, body)| body.contains("crm")), "{seen:?}");

    // Prometheus over https, trusting the same bundle.
    let prometheus = receiver(
        &pki,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1796000000,"0.25"]}]}}"#,
    )
    .await;
    let provider = PrometheusProvider::new(
        prometheus.url.clone(),
        BTreeMap::from([("errorRate".to_string(), "sum(rate(errors[1m]))".to_string())]),
    );
    let client = plugsync::backend::probe::client(&[ca]);
    let value = provider.query(&client, "errorRate", &BTreeMap::new()).await.expect("query over https");
    assert_eq!(value, Some(0.25));
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_with_a_clear_error() {
    let pki = pki("untrusted");
    let hooks = receiver(&pki, "{}").await;
    // Another CA in the bundle: the receiver's certificate is still untrusted.
    let other = self::pki("other");
    let dir = tempfile::tempdir().expect("temp dir");
    let wrong_ca = bundle(&other, &dir);
    for bundles in [vec![], vec![wrong_ca]] {
        let client = plugsync::tls::client(plugsync::tls::builder(), &bundles).expect("client");
        let channel = Channel::Webhook { url: format!("{}/hook", hooks.url) };
        let alert = alert::rollout("prod", "crm", RolloutEventKind::Failed, "never ready", Utc::now());
        let error = deliver(&client, &channel, &alert, Utc::now(), &context()).await.unwrap_err().to_string();
        eprintln!("MEASURED error a user sees: {error}");
        assert!(error.contains(&hooks.url), "names the URL: {error}");
        assert!(error.to_lowercase().contains("certificate") && error.contains("UnknownIssuer"), "says why: {error}");
    }
    assert!(hooks.seen.lock().unwrap_or_else(|p| p.into_inner()).is_empty(), "nothing was delivered");
}
