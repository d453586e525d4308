//! Prometheus and Alertmanager from Debian's packages, run by a test: their own directory,
//! loopback port and log, ready before they are returned, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A server process answering `GET /-/ready` on `url`.
pub struct Server {
    child: Child,
    pub url: String,
    /// Its working directory: configuration, data, log (and whatever the test adds).
    pub dir: tempfile::TempDir,
    name: &'static str,
}

impl Server {
    /// Starts `binary` (from Debian's `package`) with `config` written to `config_name` in
    /// its directory and `args(dir, config path, port)`; waits up to 30 s for readiness.
    async fn start(
        binary: &'static str,
        package: &str,
        config_name: &str,
        config: impl FnOnce(&Path) -> String,
        args: impl FnOnce(&Path, &Path, u16) -> Vec<String>,
    ) -> Server {
        assert!(
            Path::new(binary).is_file(),
            "{binary} is missing: install Debian's {package} package \
             (`DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {package}`); CI installs it"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join(config_name);
        std::fs::write(&config_path, config(dir.path())).expect("write the configuration");
        let port = crate::daemon::free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("create the log file");
        let child = Command::new(binary)
            .args(args(dir.path(), &config_path, port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let name = binary.rsplit('/').next().unwrap_or(binary);
        let mut server = Server { child, url: format!("http://127.0.0.1:{port}"), dir, name };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = plugsync::tls::http_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before it was ready; log:\n{}", self.name, self.log());
            }
            let ready = client.get(format!("{}/-/ready", self.url)).timeout(Duration::from_secs(1)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "{} not ready within 30 s; log:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last 30 lines of its log.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus with `prometheus.yml` from `config(dir)`, evaluating every second.
pub async fn prometheus(config: impl FnOnce(&Path) -> String) -> Server {
    Server::start(PROMETHEUS, "prometheus", "prometheus.yml", config, |dir, config, port| {
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ]
    })
    .await
}

/// Alertmanager with a null receiver and no clustering.
pub async fn alertmanager() -> Server {
    let config = |_: &Path| "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n".to_string();
    Server::start(ALERTMANAGER, "prometheus-alertmanager", "alertmanager.yml", config, |dir, config, port| {
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ]
    })
    .await
}
