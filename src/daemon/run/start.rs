//! What `run` starts beside the loop: the rollout-command task, leader election and the HTTP
//! server, each an essential task (the daemon ends if one does).

use super::*;

/// Commands reach a rollout even while a pass runs: they go to the shared memory.
pub(super) fn commands(
    essential: &mut tasks::Essential,
    mut commands: mpsc::Receiver<Command>,
    memory: Arc<RolloutMemory>,
    retry: Arc<Mutex<Vec<String>>>,
    trigger: Arc<Notify>,
) {
    essential.spawn("rollout commands", async move {
        while let Some(command) = commands.recv().await {
            tracing::info!(?command, "rollout command");
            match command {
                Command::Retry { plugin } => tasks::lock(&retry).push(plugin),
                Command::Promote { plugin } => memory.push_control(&plugin, Control::Promote),
                Command::Abort { plugin } => memory.push_control(&plugin, Control::Abort),
                Command::Pause { plugin } => memory.push_control(&plugin, Control::Pause),
                Command::Resume { plugin } => memory.push_control(&plugin, Control::Resume),
            }
            trigger.notify_one();
        }
    });
}

/// The election's flag, client and Lease, when `--leader-lease` is set.
pub(super) type Elected = (Arc<std::sync::atomic::AtomicBool>, kube::Client, super::super::leader::LeaseConfig);

pub(super) async fn election(
    config: &DaemonConfig,
    essential: &mut tasks::Essential,
    trigger: &Arc<Notify>,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Elected>, DaemonError> {
    let Some(lease) = &config.lease else { return Ok(None) };
    let client = kube::Client::try_default().await.map_err(|e| {
        DaemonError::Backend(crate::backend::BackendError::Unreachable {
            engine: "Kubernetes",
            endpoint: "(kubeconfig)".into(),
            detail: format!("leader election needs the cluster: {e}"),
        })
    })?;
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tracing::info!(lease = %lease.name, identity = %lease.identity, "leader election on");
    essential.spawn(
        "leader election",
        super::super::leader::run(client.clone(), lease.clone(), flag.clone(), trigger.clone(), stop_rx.clone()),
    );
    Ok(Some((flag, client, lease.clone())))
}

pub(super) async fn server(
    address: SocketAddr,
    state: ServerState,
    essential: &mut tasks::Essential,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let listener =
        tokio::net::TcpListener::bind(address).await.map_err(|source| DaemonError::Listen { address, source })?;
    tracing::info!(%address, "listening");
    let mut stop = stop_rx.clone();
    let mut stop_for_server = stop_rx.clone();
    essential.spawn("HTTP server", async move {
        let quit = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = server::serve(listener, state, quit).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
        // Stopping on shutdown is expected (the main loop returns); anything else ends
        // the daemon.
        if *stop_for_server.borrow_and_update() {
            std::future::pending::<()>().await;
        }
    });
    Ok(())
}
