//! The fleet's router in the plan: what the pass will do to it (create, replace, heal,
//! remove) and why, from the routed plugins Git wants and the replicas the engine shows. Pure.

use super::observed::{GatewayContainer, RouterReplica};
use super::Slot;
use crate::model::Fleet;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RouterAction {
    /// The first routed plugin: the router's replicas start.
    Create,
    /// The routed plugins changed: new replicas with the new aliases, then the old ones go.
    Replace,
    /// Replicas died or are too many: brought back to the wanted count.
    Heal,
    /// A weight Git declares (a versioned folder's `canary_weight`) differs from the
    /// router's: set at runtime, nothing restarts.
    Reweigh,
    /// No plugin is routed any more.
    Remove,
}

impl RouterAction {
    pub fn verb(self) -> &'static str {
        match self {
            RouterAction::Create => "create",
            RouterAction::Replace => "replace",
            RouterAction::Heal => "heal",
            RouterAction::Reweigh => "reweigh",
            RouterAction::Remove => "remove",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterChange {
    pub action: RouterAction,
    /// The plugins the router will route (their aliases).
    pub plugins: Vec<String>,
    pub reason: String,
}

/// The change the router needs, if any.
pub fn change(fleet: &Fleet, replicas: &[RouterReplica]) -> Option<RouterChange> {
    let plugins: Vec<String> = fleet
        .plugins
        .values()
        .filter(|p| p.routing.is_routed() && !p.manifest.suspended)
        .map(|p| p.id.clone())
        .collect();
    let wanted = fleet.config.traffic.replicas.max(1) as usize;
    let running: Vec<&RouterReplica> = replicas.iter().filter(|r| r.running).collect();
    let change = |action, reason: String| Some(RouterChange { action, plugins: plugins.clone(), reason });
    if plugins.is_empty() {
        return match replicas.len() {
            0 => None,
            n => change(RouterAction::Remove, format!("no plugin is routed any more: {n} replica(s) leave")),
        };
    }
    let holding = |r: &&RouterReplica| {
        let mut aliases = r.aliases.clone();
        aliases.sort();
        aliases == plugins
    };
    if replicas.is_empty() {
        return change(RouterAction::Create, format!("{wanted} replica(s) holding {}", plugins.join(", ")));
    }
    if !running.iter().all(holding) {
        let held = running.first().map(|r| r.aliases.join(", ")).unwrap_or_default();
        return change(RouterAction::Replace, format!("aliases {held} → {} (start-first)", plugins.join(", ")));
    }
    if running.len() != wanted || replicas.len() != running.len() {
        return change(
            RouterAction::Heal,
            format!("{} of {wanted} replica(s) running, {} stopped", running.len(), replicas.len() - running.len()),
        );
    }
    let reweighed: Vec<String> = fleet
        .plugins
        .values()
        .filter(|p| p.routing.is_routed() && !p.manifest.suspended)
        .filter_map(|p| {
            let canary = p.canary.as_ref()?;
            let now = running.first()?.shares.get(&p.id)?;
            let share = now.iter().find(|(slot, _)| *slot == Slot::Canary).map_or(0.0, |(_, s)| *s);
            // Rounding to router weights moves a share by well under a point.
            ((share - canary.weight).abs() > 1.0)
                .then(|| format!("{}: canary {share:.0} % → {} %", p.id, canary.weight))
        })
        .collect();
    if !reweighed.is_empty() {
        return change(RouterAction::Reweigh, reweighed.join("; "));
    }
    None
}

/// The change the edge gateway needs, if any: it runs while the fleet asks for one
/// (`traffic.gateway`) and a routed plugin has a base path, publishing where the fleet says.
/// A change of base paths reloads it at runtime, like a weight: not a change of the plan.
pub fn gateway_change(fleet: &Fleet, gateways: &[GatewayContainer]) -> Option<RouterChange> {
    let settings = fleet.config.traffic.gateway.as_ref();
    let served: Vec<(&str, &str)> = fleet
        .plugins
        .values()
        .filter(|p| settings.is_some() && p.routing.is_routed() && !p.manifest.suspended)
        .filter_map(|p| Some((p.manifest.api.base_path.as_deref()?, p.id.as_str())))
        .collect();
    let plugins = served.iter().map(|(_, id)| id.to_string()).collect();
    let change = |action, reason: String| Some(RouterChange { action, plugins, reason });
    let Some(settings) = settings.filter(|_| !served.is_empty()) else {
        return match gateways.len() {
            0 => None,
            _ => change(RouterAction::Remove, "no routed plugin with a base path: the gateway leaves".into()),
        };
    };
    let published = std::net::SocketAddr::new(settings.address, settings.port).to_string();
    let paths = served.iter().map(|(base, id)| format!("{base} → {id}")).collect::<Vec<_>>().join(", ");
    let running: Vec<&GatewayContainer> = gateways.iter().filter(|g| g.running).collect();
    match (gateways.is_empty(), running.iter().find(|g| g.published == published)) {
        (true, _) => change(RouterAction::Create, format!("publishing {published}: {paths}")),
        (false, Some(_)) if running.len() == 1 && gateways.len() == 1 => None,
        (false, Some(_)) => change(RouterAction::Heal, format!("{} gateway container(s) for one", gateways.len())),
        (false, None) => match running.first() {
            Some(other) => change(
                RouterAction::Replace,
                format!("published {} → {published} (stop-first: one port cannot be published twice)", other.published),
            ),
            None => change(RouterAction::Heal, format!("not running: a new one publishes {published}")),
        },
    }
}

#[cfg(test)]
mod gateway_tests {
    use super::*;
    use crate::model::files::FileSet;

    fn fleet(gateway: bool, bases: &[(&str, Option<&str>)]) -> Fleet {
        let mut files = FileSet::new();
        let gw = if gateway { "  gateway: {port: 8088, address: 127.0.0.1}\n" } else { "" };
        files.insert("plugsync.yaml".into(), format!("traffic:\n  router: haproxy\n{gw}").into_bytes());
        for (id, base) in bases {
            let api = base.map(|b| format!("api:\n  basePath: {b}\n")).unwrap_or_default();
            let manifest = format!("id: {id}\nversion: 1.0.0\nruntime:\n  image: echo:1\n{api}");
            files.insert(format!("plugins/{id}/plugin.yaml"), manifest.into_bytes());
        }
        let loaded = crate::model::load(&files, None);
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        loaded.fleet
    }

    fn container(running: bool, published: &str) -> GatewayContainer {
        GatewayContainer { name: "g".into(), running, published: published.into() }
    }

    #[test]
    fn the_gateway_follows_the_settings_and_the_base_paths() {
        let here = "127.0.0.1:8088";
        let with = [("crm", Some("/api/plugins/crm")), ("web", None)];
        let table: Vec<(Fleet, Vec<GatewayContainer>, Option<RouterAction>)> = vec![
            (fleet(true, &with), vec![], Some(RouterAction::Create)),
            (fleet(true, &with), vec![container(true, here)], None),
            (fleet(true, &with), vec![container(false, here)], Some(RouterAction::Heal)),
            (fleet(true, &with), vec![container(true, here), container(true, here)], Some(RouterAction::Heal)),
            (fleet(true, &with), vec![container(true, "0.0.0.0:8088")], Some(RouterAction::Replace)),
            (fleet(true, &[("web", None)]), vec![], None),
            (fleet(true, &[("web", None)]), vec![container(true, here)], Some(RouterAction::Remove)),
            (fleet(false, &with), vec![container(true, here)], Some(RouterAction::Remove)),
            (fleet(false, &with), vec![], None),
        ];
        for (fleet, containers, want) in table {
            let got = gateway_change(&fleet, &containers);
            assert_eq!(got.as_ref().map(|c| c.action), want, "{containers:?}: {got:?}");
            if let Some(c) = got.filter(|c| c.action == RouterAction::Create) {
                assert_eq!(c.plugins, vec!["crm".to_string()]);
                assert_eq!(c.reason, "publishing 127.0.0.1:8088: /api/plugins/crm → crm");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::files::FileSet;

    fn fleet(routed: &[&str], dns: &[&str]) -> Fleet {
        let mut files = FileSet::new();
        files.insert("plugsync.yaml".into(), b"traffic:\n  router: haproxy\n".to_vec());
        for id in routed.iter().chain(dns) {
            let own = if dns.contains(id) { "traffic:\n  router: dns\n" } else { "" };
            let manifest = format!("id: {id}\nversion: 1.0.0\nruntime:\n  image: echo:1\n{own}");
            files.insert(format!("plugins/{id}/plugin.yaml"), manifest.into_bytes());
        }
        let loaded = crate::model::load(&files, None);
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        loaded.fleet
    }

    fn replica(running: bool, aliases: &[&str]) -> RouterReplica {
        RouterReplica {
            name: "r".into(),
            running,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            shares: Default::default(),
        }
    }

    #[test]
    fn the_router_follows_the_routed_plugins() {
        let both = ["crm", "web"];
        let table: Vec<(Fleet, Vec<RouterReplica>, Option<RouterAction>)> = vec![
            (fleet(&[], &["crm"]), vec![], None),
            (fleet(&both, &[]), vec![], Some(RouterAction::Create)),
            (fleet(&both, &[]), vec![replica(true, &["web", "crm"]), replica(true, &both)], None),
            (fleet(&both, &[]), vec![replica(true, &both), replica(false, &both)], Some(RouterAction::Heal)),
            (fleet(&both, &[]), vec![replica(true, &both)], Some(RouterAction::Heal)),
            (fleet(&both, &["x"]), vec![replica(true, &["crm"]), replica(true, &["crm"])], Some(RouterAction::Replace)),
            (fleet(&[], &["crm"]), vec![replica(true, &["crm"])], Some(RouterAction::Remove)),
        ];
        for (fleet, replicas, want) in table {
            let replicas: Vec<RouterReplica> = replicas;
            let got = change(&fleet, &replicas);
            assert_eq!(got.as_ref().map(|c| c.action), want, "{replicas:?}: {got:?}");
            if let Some(c) = got.filter(|c| c.action != RouterAction::Remove) {
                assert_eq!(c.plugins, vec!["crm".to_string(), "web".to_string()]);
            }
        }
    }
}

#[cfg(test)]
mod reweigh_tests {
    use super::*;
    use crate::model::files::FileSet;

    /// `notifier` as BotMatrix versioned folders: 1.0.0 at 90, 1.1.0 at `canary`.
    fn fleet(canary: u32) -> Fleet {
        let mut files = FileSet::new();
        files.insert("plugsync.yaml".into(), b"traffic:\n  router: haproxy\n".to_vec());
        for (version, weight) in [("1.0.0", 100 - canary), ("1.1.0", canary)] {
            let manifest = format!(
                "{{\"id\": \"notifier\", \"version\": \"{version}\", \"runtime\": {{\"image\": \"echo:{version}\"}}, \"canary_weight\": {weight}}}"
            );
            files.insert(format!("plugins/notifier/v{version}/manifest.json"), manifest.into_bytes());
        }
        let loaded = crate::model::load(&files, None);
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        loaded.fleet
    }

    fn replica(canary_share: f64) -> RouterReplica {
        RouterReplica {
            name: "r".into(),
            running: true,
            aliases: vec!["notifier".into()],
            shares: [(
                "notifier".to_string(),
                vec![(Slot::Stable, 100.0 - canary_share), (Slot::Canary, canary_share)],
            )]
            .into(),
        }
    }

    #[test]
    fn a_declared_weight_the_router_does_not_give_is_a_reweigh() {
        let at_10 = [replica(9.86), replica(9.86)];
        assert_eq!(change(&fleet(10), &at_10), None, "rounding is no change");
        let got = change(&fleet(50), &at_10).expect("a change");
        assert_eq!(got.action, RouterAction::Reweigh);
        assert_eq!(got.reason, "notifier: canary 10 % → 50 %");
    }
}
