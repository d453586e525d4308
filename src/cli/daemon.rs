//! `plugsync run`, `status`, `history` and `rollout`: the daemon and what reads its record.

use anyhow::Context;
use plugsync::daemon::run::DaemonConfig;
use plugsync::source::git::{GitAuth, GitCache, GitRemote};
use plugsync::status::{self, Lifecycle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The fleet repository: file://, a local path, git://, https:// or ssh://.
    #[arg(long, env = "PLUGSYNC_REPO")]
    pub repo: String,
    /// HTTPS token, read from this environment variable's value.
    #[arg(long, env = "PLUGSYNC_GIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// HTTPS token read from a file.
    #[arg(long, env = "PLUGSYNC_GIT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// SSH private key for ssh:// remotes.
    #[arg(long, env = "PLUGSYNC_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// Where the bare cache clone lives (default: a folder per repo under the temp dir).
    #[arg(long, env = "PLUGSYNC_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl RemoteArgs {
    pub fn remote(&self, reference: &str) -> anyhow::Result<GitRemote> {
        let auth = match (&self.token, &self.token_file, &self.ssh_key) {
            (Some(t), _, _) => GitAuth::Token(t.clone()),
            (None, Some(file), _) => GitAuth::Token(
                std::fs::read_to_string(file)
                    .with_context(|| format!("reading token file {}", file.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None, Some(key)) => {
                GitAuth::SshKey { key: key.clone(), passphrase: std::env::var("PLUGSYNC_SSH_PASSPHRASE").ok() }
            }
            _ => GitAuth::None,
        };
        Ok(GitRemote { url: self.repo.clone(), reference: reference.to_string(), auth })
    }

    pub fn cache(&self, purpose: &str) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(self.repo.as_bytes());
            let name: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            std::env::temp_dir().join(format!("plugsync-cache-{name}-{purpose}"))
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Branch (or refs/tags/…) to follow.
    #[arg(long, env = "PLUGSYNC_BRANCH", default_value = "main")]
    pub branch: String,
    /// Fleet folder inside the repository.
    #[arg(long, env = "PLUGSYNC_PATH")]
    pub path: Option<String>,
    /// Poll interval (overrides plugsync.yaml), e.g. 30s, 1s, PT1M.
    #[arg(long, env = "PLUGSYNC_INTERVAL", value_parser = parse_span)]
    pub interval: Option<plugsync::model::Span>,
    /// HTTP API, metrics and webhook receiver.
    #[arg(long, env = "PLUGSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    #[arg(long, value_parser = super::super::parse_environment)]
    pub environment: Option<plugsync::model::Environment>,
    #[command(flatten)]
    pub backend: super::apply::BackendArgs,
    /// Elect a leader among replicas with this coordination.k8s.io Lease; only the leader
    /// applies (namespace: --namespace, else the kubeconfig context's).
    #[arg(long, env = "PLUGSYNC_LEADER_LEASE")]
    pub leader_lease: Option<String>,
    /// How long a leader's Lease lasts without renewal before another replica takes over.
    #[arg(long, env = "PLUGSYNC_LEASE_DURATION", value_parser = parse_span, default_value = "15s")]
    pub lease_duration: plugsync::model::Span,
    /// Do not watch a local repository for new commits.
    #[arg(long)]
    pub no_watch: bool,
    #[command(flatten)]
    pub admission: super::admission::AdmissionArgs,
}

pub(crate) fn parse_span(text: &str) -> Result<plugsync::model::Span, String> {
    plugsync::model::Span::parse(text)
        .ok_or_else(|| format!("found {text:?}, expected {}", plugsync::model::duration::DURATION_EXPECTED))
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let remote = args.remote.remote(&args.branch)?;
    let webhook_secret = std::env::var("PLUGSYNC_WEBHOOK_SECRET").ok().filter(|s| !s.is_empty());
    if webhook_secret.is_none() {
        tracing::warn!("PLUGSYNC_WEBHOOK_SECRET is not set: /hooks/git accepts unsigned pushes");
    }
    let admission = args.admission.policy()?;
    let config = DaemonConfig {
        admission,
        cache_dir: args.remote.cache("daemon"),
        remote,
        path: args.path,
        interval: args.interval.map(|s| s.0),
        listen: Some(args.listen),
        webhook_secret,
        api_token: std::env::var("PLUGSYNC_API_TOKEN").ok().filter(|s| !s.is_empty()),
        environment: args.environment,
        backend: args.backend.choice(),
        lease: match args.leader_lease {
            Some(name) => {
                let namespace = match args.backend.namespace.clone() {
                    Some(ns) => ns,
                    None => {
                        kube::Config::infer().await.map(|c| c.default_namespace).unwrap_or_else(|_| "default".into())
                    }
                };
                Some(plugsync::daemon::leader::LeaseConfig::new(name, namespace, args.lease_duration.0))
            }
            None => None,
        },
        watch: !args.no_watch,
    };
    eprintln!("plugsync: following {} {} (API on http://{})", config.remote.url, config.remote.reference, args.listen);
    plugsync::daemon::run::run(config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn open_status(remote: &RemoteArgs, branch: &str) -> anyhow::Result<(GitCache, Option<git2::Oid>)> {
    let cache = GitCache::open(&remote.cache("status"), remote.remote(branch)?)?;
    let tip = cache.fetch_branch(branch)?;
    Ok((cache, tip))
}

pub fn status(remote: &RemoteArgs, branch: &str, plugin: Option<&str>) -> anyhow::Result<ExitCode> {
    let (cache, tip) = open_status(remote, branch)?;
    let Some(tip) = tip else {
        println!("no status yet: {} has no branch {branch}", remote.repo);
        return Ok(ExitCode::SUCCESS);
    };
    let (fleet, plugins) = status::read_at(&cache, tip);
    if let Some(id) = plugin {
        let s = plugins.get(id).with_context(|| format!("no status for plugin {id:?} on {branch}"))?;
        print!("{}", status::render::to_yaml(s));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(f) = &fleet {
        println!("fleet {} at {}", f.fleet, plugsync::model::short_revision(&f.revision));
        for e in &f.errors {
            println!("  ! {e}");
        }
    }
    println!("{:<16} {:<12} {:<16} {:<20} {:<8} LAST CHANGE", "PLUGIN", "STATE", "VERSION", "INSTANCES", "REV");
    for s in plugins.values() {
        let instances: Vec<String> =
            s.slots.iter().map(|(slot, v)| format!("{slot}:{}×{}", v.instances, v.version)).collect();
        let last = s.last_change.as_ref().map(|c| format!("{} {} {}", c.at, c.kind, c.result)).unwrap_or_default();
        println!(
            "{:<16} {:<12} {:<16} {:<20} {:<8} {}",
            s.plugin,
            serde_json::to_value(s.state)?.as_str().unwrap_or(""),
            s.desired_version.clone().unwrap_or_default(),
            instances.join(" "),
            s.revision.as_deref().map(plugsync::model::short_revision).unwrap_or("-"),
            last
        );
    }
    let failing = plugins.values().any(|s| matches!(s.state, Lifecycle::Failed | Lifecycle::RolledBack));
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

pub fn history(remote: &RemoteArgs, branch: &str, plugin: &str) -> anyhow::Result<ExitCode> {
    let (cache, tip) = open_status(remote, branch)?;
    let Some(tip) = tip else {
        println!("no status yet: {} has no branch {branch}", remote.repo);
        return Ok(ExitCode::SUCCESS);
    };
    let repo = cache.repository();
    let path = format!("status/{plugin}.yaml");
    let mut walk = repo.revwalk()?;
    walk.push(tip)?;
    walk.set_sorting(git2::Sort::TIME | git2::Sort::TOPOLOGICAL)?;
    println!("{:<22} {:<8} CHANGE", "WHEN (UTC)", "COMMIT");
    let mut shown = 0;
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let mine = commit.tree()?.get_path(Path::new(&path)).ok().map(|e| e.id());
        let parent = commit
            .parent(0)
            .ok()
            .and_then(|p| p.tree().ok())
            .and_then(|t| t.get_path(Path::new(&path)).ok())
            .map(|e| e.id());
        if mine.is_some() && mine != parent {
            let when = chrono::DateTime::from_timestamp(commit.time().seconds(), 0)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            println!("{:<22} {:<8} {}", when, &oid_short(commit.id()), commit.summary().ok().flatten().unwrap_or(""));
            shown += 1;
        }
    }
    if shown == 0 {
        println!("(no status commits for {plugin})");
    }
    Ok(ExitCode::SUCCESS)
}

fn oid_short(oid: git2::Oid) -> String {
    oid.to_string()[..7].to_string()
}

pub async fn rollout(action: &str, plugin: &str, server: &str) -> anyhow::Result<ExitCode> {
    let token = std::env::var("PLUGSYNC_API_TOKEN").context("PLUGSYNC_API_TOKEN must hold the daemon's API token")?;
    let url = format!("{}/api/v1/plugins/{plugin}/rollout/{action}", server.trim_end_matches('/'));
    let response = plugsync::tls::http_client()
        .post(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("{status}: {body}");
    Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
