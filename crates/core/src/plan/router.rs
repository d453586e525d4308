//! The fleet's router in the plan: what the pass will do to it (create, replace, heal,
//! remove) and why, from the routed plugins Git wants and the replicas the engine shows. Pure.

use super::observed::RouterReplica;
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
