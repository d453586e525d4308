//! The executor's side of the router: one sync per step that moves instances into or out of
//! traffic, the rollout's split, and the router brought to the whole fleet after a pass.

use super::*;

/// Instances a step takes out of traffic, by id: the router stops sending them requests
/// before their serving mark goes.
#[derive(Default)]
struct Moves {
    leaving: BTreeSet<String>,
}

impl<'a, B: Backend> Reconciler<'a, B> {
    pub(super) fn set_split(&self, plugin: &str, shares: &[SlotShare]) {
        if let Ok(mut splits) = self.splits().lock() {
            if shares.is_empty() {
                splits.remove(plugin);
            } else {
                splits.insert(plugin.to_string(), shares.to_vec());
            }
        }
    }

    /// Brings the router to the routes of the fleet (`None`) or of one plugin, as it runs now.
    pub async fn sync_routes(&self, plugin: Option<&str>) -> Result<Synced, BackendError> {
        self.sync_routes_moving(plugin, &Moves::default()).await
    }

    /// [`Self::sync_routes`] with `moves` applied to what runs: instances about to be
    /// unmarked are routed as they will be.
    async fn sync_routes_moving(&self, plugin: Option<&str>, moves: &Moves) -> Result<Synced, BackendError> {
        let routed = |p: &Plugin| p.routing.is_routed() && !p.manifest.suspended;
        if plugin.and_then(|p| self.fleet.plugins.get(p)).is_some_and(|p| !routed(p)) {
            return Ok(Synced::default());
        }
        let mut observed = if self.fleet.plugins.values().any(routed) {
            self.backend.observe(self.name(), plugin).await?
        } else {
            crate::plan::Observed::default()
        };
        for instance in observed.instances.iter_mut().filter(|i| moves.leaving.contains(&i.id)) {
            instance.serving = false;
        }
        let splits = self.splits().lock().map(|s| s.clone()).unwrap_or_default();
        let mut routes = crate::traffic::routes(self.fleet, &observed.instances, &splits);
        let scope = match plugin {
            Some(p) => {
                routes.retain(|r| r.plugin == p);
                Scope::Plugin(p)
            }
            None => Scope::Fleet { gateway: self.fleet.config.traffic.gateway.as_ref() },
        };
        let synced = self.backend.route(self.name(), routes, scope).await?;
        if synced.changed() {
            tracing::info!(?synced, plugin = plugin.unwrap_or("*"), "router synced");
        }
        Ok(synced)
    }

    /// Every pass brings the router to the whole fleet: a replica that died is replaced, one
    /// nobody needs leaves. A failure is logged and retried next pass; plugins still run.
    pub(super) async fn heal_router(&self) -> Option<Synced> {
        if self.deposed().is_some() {
            return None;
        }
        match self.sync_routes(None).await {
            Ok(synced) => {
                if synced.created + synced.replaced + synced.removed > 0 {
                    (self.narrate)(&format!(
                        "router: {} started, {} replaced, {} removed; {} running",
                        synced.created, synced.replaced, synced.removed, synced.running
                    ));
                }
                if synced.gateway != GatewaySynced::Unchanged {
                    (self.narrate)(&format!("gateway: {}", synced.gateway.describe()));
                }
                Some(synced)
            }
            Err(e) => {
                tracing::warn!(error = %e, "router could not be synced");
                None
            }
        }
    }

    /// Applies a step's actions. Behind the router, instances joining traffic are marked
    /// serving first (on Docker the mark is a network reconnect: done before the router
    /// sends them anything); then one sync puts them in and takes the leaving ones out, and
    /// only then are the leaving ones unmarked and stopped (the router no longer sends them
    /// anything when their network goes).
    pub(super) async fn act(
        &self,
        plugin: &Plugin,
        actions: &[Action],
        instances: &[Instance],
        secrets: &SecretValues,
    ) -> Result<(), BackendError> {
        if !plugin.routing.is_routed() {
            return self.act_all(actions, instances, secrets).await;
        }
        for action in actions {
            if let Action::Split { shares } = action {
                self.set_split(&plugin.id, shares);
            }
        }
        let serving = |id: &String| instances.iter().any(|i| &i.id == id && i.serving);
        let mut moves = Moves::default();
        let (now, after): (Vec<Action>, Vec<Action>) = actions.iter().cloned().partition(|a| match a {
            Action::Unserve { instance } => !moves.leaving.insert(instance.clone()),
            Action::Retire { instance } | Action::Park { instance } if serving(instance) => {
                !moves.leaving.insert(instance.clone())
            }
            _ => true,
        });
        self.act_all(&now, instances, secrets).await?;
        self.sync_routes_moving(Some(&plugin.id), &moves).await?;
        self.act_all(&after, instances, secrets).await
    }
}
