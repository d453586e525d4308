//! Traffic on Docker through a managed router, pure: the plan's routed plugins (slots, their
//! shares, their instances, stickiness) → the router's configuration text and the runtime
//! commands that move weights without a reload. The backend room applies them.
//!
//! One router serves every routed plugin of a fleet: it holds each plugin's network alias, so
//! clients keep calling `http://crm:8080`; a frontend per port picks the plugin by `Host`.
//! Weights are exact per slot, whatever the replica counts: each slot's servers together carry
//! the slot's share of the plugin's traffic.

pub mod gateway;
pub mod haproxy;
pub mod sticky;

use crate::plan::Slot;
use std::net::IpAddr;

/// Largest server weight the router takes (HAProxy: 0..=256).
pub const MAX_WEIGHT: u16 = 256;

pub use crate::model::routing::{StickyBy, StickyError};

/// One instance behind the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Unique within its plugin and stable for the instance's life: `<slot>-<short id>`.
    pub name: String,
    pub slot: Slot,
    pub address: IpAddr,
    pub port: u16,
}

/// One slot's share of a plugin's traffic, in percent (0 to 100).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SlotShare {
    pub slot: Slot,
    pub percent: f64,
}

/// A plugin as the router sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The plugin id: its alias and the `Host` the router matches.
    pub plugin: String,
    /// The port clients call (the plugin's `api.port`).
    pub port: u16,
    /// Its `api.basePath`: what the edge gateway routes to it.
    pub base_path: Option<String>,
    /// Readiness path the router checks before sending traffic.
    pub readiness: String,
    pub sticky: Option<StickyBy>,
    pub shares: Vec<SlotShare>,
    pub servers: Vec<Server>,
}

impl Route {
    /// Each server's weight: a slot's servers split the slot's share evenly. A slot with a
    /// share keeps at least weight 1; a slot without one gets 0 (no traffic).
    ///
    /// Without stickiness the scale is the one (largest weight 1..=256) whose rounding comes
    /// closest to the shares: 1 % beside 99 % is weights 1 and 99, exactly. With stickiness the
    /// largest weight is always [`MAX_WEIGHT`], so that for a fixed set of servers raising one
    /// slot's share never lowers its weights nor raises the others': with consistent hashing,
    /// sessions then only move towards the slot whose share rose.
    pub fn weights(&self) -> Vec<(String, u16)> {
        let ideal = self.ideal_per_server();
        let weights = if self.sticky.is_some() {
            scaled(&ideal, MAX_WEIGHT)
        } else {
            (1..=MAX_WEIGHT)
                .rev()
                .map(|largest| scaled(&ideal, largest))
                .min_by(|a, b| self.error_of(a).total_cmp(&self.error_of(b)))
                .unwrap_or_else(|| scaled(&ideal, MAX_WEIGHT))
        };
        self.servers.iter().map(|s| s.name.clone()).zip(weights).collect()
    }

    /// Per server, its slot's share divided among the slot's servers (percent).
    fn ideal_per_server(&self) -> Vec<f64> {
        let per_server = |slot: Slot| -> f64 {
            let members = self.servers.iter().filter(|s| s.slot == slot).count();
            let percent: f64 = self.shares.iter().filter(|s| s.slot == slot).map(|s| s.percent).sum();
            if members == 0 || !percent.is_finite() {
                0.0
            } else {
                percent.clamp(0.0, 100.0) / members as f64
            }
        };
        self.servers.iter().map(|s| per_server(s.slot)).collect()
    }

    /// The largest gap, in points, between a slot's share and what `weights` give it.
    fn error_of(&self, weights: &[u16]) -> f64 {
        let ideal = self.ideal_per_server();
        let (want, got): (f64, f64) = (ideal.iter().sum(), weights.iter().map(|w| f64::from(*w)).sum());
        if want <= 0.0 || got <= 0.0 {
            return 0.0;
        }
        let mut worst: f64 = 0.0;
        for slot in self.servers.iter().map(|s| s.slot) {
            let of = |values: &[f64]| -> f64 {
                self.servers.iter().zip(values).filter(|(s, _)| s.slot == slot).map(|(_, v)| v).sum()
            };
            let given: Vec<f64> = weights.iter().map(|w| f64::from(*w)).collect();
            worst = worst.max((of(&ideal) / want - of(&given) / got).abs() * 100.0);
        }
        worst
    }

    /// The share each slot really gets with [`Route::weights`] (rounding included), percent.
    pub fn effective_shares(&self) -> Vec<(Slot, f64)> {
        let weights = self.weights();
        let total: f64 = weights.iter().map(|(_, w)| f64::from(*w)).sum();
        let mut out: Vec<(Slot, f64)> = Vec::new();
        for (server, (_, w)) in self.servers.iter().zip(&weights) {
            let share = if total > 0.0 { f64::from(*w) / total * 100.0 } else { 0.0 };
            match out.iter_mut().find(|(slot, _)| *slot == server.slot) {
                Some((_, sum)) => *sum += share,
                None => out.push((server.slot, share)),
            }
        }
        out
    }
}

/// `ideal` per-server shares scaled so the largest is `largest`; a positive share keeps 1.
fn scaled(ideal: &[f64], largest: u16) -> Vec<u16> {
    let top = ideal.iter().copied().fold(0.0, f64::max);
    ideal
        .iter()
        .map(|&v| {
            if v <= 0.0 || top <= 0.0 {
                0
            } else {
                ((v / top * f64::from(largest)).round() as u16).clamp(1, MAX_WEIGHT)
            }
        })
        .collect()
}

/// Whether going from `old` to `new` needs the router's configuration reloaded (plugins,
/// ports, health paths or stickiness changed) or runtime commands do (servers and weights).
pub fn needs_reload(old: &[Route], new: &[Route]) -> bool {
    let shape = |routes: &[Route]| -> Vec<(String, u16, String, Option<StickyBy>)> {
        routes.iter().map(|r| (r.plugin.clone(), r.port, r.readiness.clone(), r.sticky.clone())).collect()
    };
    shape(old) != shape(new)
}

#[cfg(test)]
mod tests;

/// Each routed plugin's share of traffic per slot, set by a rollout in flight (a canary step,
/// an A/B split); a plugin without one splits evenly over its serving instances.
pub type Splits = std::collections::BTreeMap<String, Vec<SlotShare>>;

/// The router's routes for `fleet` as `instances` run now: every routed plugin, its serving
/// instances with an address as servers, its shares from `splits` or its default.
pub fn routes(fleet: &crate::model::Fleet, instances: &[crate::plan::Instance], splits: &Splits) -> Vec<Route> {
    fleet
        .plugins
        .values()
        .filter(|p| p.routing.is_routed() && !p.manifest.suspended)
        .map(|plugin| {
            let servers: Vec<Server> = instances
                .iter()
                .filter(|i| i.plugin == plugin.id && i.serving && i.is_running())
                .filter_map(|i| {
                    let address = i.address?;
                    let port = i.spec.as_ref().map_or(plugin.manifest.api.port, |s| s.port);
                    Some(Server { name: server_name(i), slot: i.slot, address, port })
                })
                .collect();
            let shares = splits.get(&plugin.id).cloned().unwrap_or_else(|| default_shares(plugin, &servers));
            Route {
                plugin: plugin.id.clone(),
                port: plugin.manifest.api.port,
                base_path: plugin.manifest.api.base_path.clone(),
                readiness: plugin.manifest.api.readiness.clone(),
                sticky: plugin.routing.sticky().cloned(),
                shares,
                servers,
            }
        })
        .collect()
}

/// `<slot>-<first 12 characters of the instance id>`: stable for the instance's life.
fn server_name(instance: &crate::plan::Instance) -> String {
    let short: String = instance.id.chars().take(12).collect();
    format!("{}-{short}", instance.slot)
}

/// A BotMatrix fixed canary keeps its folder's weight; otherwise every serving instance
/// carries the same share.
fn default_shares(plugin: &crate::model::Plugin, servers: &[Server]) -> Vec<SlotShare> {
    if let Some(canary) = &plugin.canary {
        let stable = plugin.stable_weight.unwrap_or(100.0 - canary.weight);
        return vec![
            SlotShare { slot: Slot::Stable, percent: stable },
            SlotShare { slot: Slot::Canary, percent: canary.weight },
        ];
    }
    let mut shares: Vec<SlotShare> = Vec::new();
    let total = servers.len().max(1) as f64;
    for server in servers {
        match shares.iter_mut().find(|s| s.slot == server.slot) {
            Some(share) => share.percent += 100.0 / total,
            None => shares.push(SlotShare { slot: server.slot, percent: 100.0 / total }),
        }
    }
    shares
}

#[cfg(test)]
mod routes_tests;
