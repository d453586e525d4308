//! Kubernetes' watch on the fleet's Deployments and Pods: a change wakes a drift check at once,
//! as Docker's events do on Docker (the periodic pass stays the safety net).

use super::drift::Causes;
use crate::backend::kubernetes::objects::label_value;
use crate::plan::observed::labels;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Follows the fleet's Deployments and Pods in `namespace` until the process ends.
pub fn watch(client: Client, namespace: &str, fleet: &str, causes: Causes, wake: Arc<Notify>) {
    let selector = format!("{}={}", labels::FLEET, label_value(fleet));
    follow::<Deployment>(Api::namespaced(client.clone(), namespace), "deployment", &selector, &causes, &wake);
    follow::<Pod>(Api::namespaced(client, namespace), "pod", &selector, &causes, &wake);
}

fn follow<K>(api: Api<K>, kind: &'static str, selector: &str, causes: &Causes, wake: &Arc<Notify>)
where
    K: Resource + Clone + serde::de::DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (selector, causes, wake) = (selector.to_string(), causes.clone(), wake.clone());
    // A panic in here restarts the watch instead of ending it; the watcher itself relists
    // and backs off after API errors (an API server restart, an expired resource version).
    super::tasks::restarting("kubernetes watch", Duration::from_secs(1), move || {
        let (api, selector, causes, wake) = (api.clone(), selector.clone(), causes.clone(), wake.clone());
        async move {
            let config = watcher::Config::default().labels(&selector);
            let mut events = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = events.next().await {
                let (action, object) = match event {
                    Ok(watcher::Event::Apply(object)) => ("changed", object),
                    Ok(watcher::Event::Delete(object)) => ("deleted", object),
                    // The initial listing is what runs, not a change.
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::InitDone) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, kind, "kubernetes watch error; the watcher retries");
                        continue;
                    }
                };
                let name = object.name_any();
                let at = chrono::Utc::now().format("%H:%M:%S");
                tracing::info!(kind, %name, action, "engine event");
                super::drift::note_cause(&causes, name, format!("kubernetes {kind} {action} at {at}"));
                wake.notify_one();
            }
        }
    });
}
