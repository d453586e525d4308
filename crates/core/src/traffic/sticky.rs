//! Sticky splits by hash bucket. Pure.
//!
//! Why not weights on one consistent-hash ring: HAProxy's ring (2.6) drifts from the weights
//! once servers come and go and weights change at runtime — 500 sessions at a 10 % canary
//! measured 5–8 % on the canary, at 25 % up to 48 %. Here instead each session key is hashed
//! once into one of [`BUCKETS`] buckets (`crc32` with avalanche, `mod`), and each slot owns a
//! contiguous range of buckets, its share of them, in slot order. So:
//! - a slot's share of sessions is its share of buckets, whatever its servers;
//! - a shift between two slots moves the boundary between them: sessions only move towards
//!   the slot whose share rose, never back, and never at a fixed split;
//! - within a slot, its own backend spreads sessions over its servers by consistent hash.
//!
//! The boundaries are process variables (`proc.split.<plugin>.<slot>`), set in the
//! configuration at load and by the runtime API afterwards (`set var`, which HAProxy 2.6 only
//! takes in experimental mode; a map file would need a file kept beside the configuration).

use super::{Route, StickyBy};
use crate::plan::Slot;
use std::fmt::Write;

/// Buckets a session key falls into: splits are set in hundredths of a percent.
pub const BUCKETS: u32 = 10_000;

/// The backend holding `slot`'s servers of a sticky plugin.
pub fn slot_backend(plugin: &str, slot: Slot) -> String {
    format!("be_{plugin}.{slot}")
}

/// The plugin a backend name belongs to (`be_<plugin>` or `be_<plugin>.<slot>`; plugin ids
/// hold no dot).
pub fn plugin_of_backend(backend: &str) -> Option<&str> {
    let name = backend.strip_prefix("be_")?;
    let plugin = name.split_once('.').map_or(name, |(plugin, _)| plugin);
    (!plugin.is_empty()).then_some(plugin)
}

/// The variable holding the upper end (exclusive) of `slot`'s bucket range. Plugin ids hold
/// letters, digits, `-` and `_`; variable names take no `-`, and `.` stands for it (ids hold
/// no dot, and the last part is always the slot, so no two plugins share a name).
fn bound_var(plugin: &str, slot: Slot) -> String {
    format!("proc.split.{}.{slot}", plugin.replace('-', "."))
}

/// Every slot's bucket range's upper end, in slot order: slots without servers get an empty
/// range; those with servers split the buckets by their shares (evenly if none has one).
pub fn bounds(route: &Route) -> Vec<(Slot, u32)> {
    let shares: Vec<(Slot, f64)> = Slot::ALL
        .into_iter()
        .filter(|slot| route.servers.iter().any(|s| s.slot == *slot))
        .map(|slot| {
            let percent: f64 = route.shares.iter().filter(|s| s.slot == slot).map(|s| s.percent).sum();
            (slot, if percent.is_finite() { percent.clamp(0.0, 100.0) } else { 0.0 })
        })
        .collect();
    let total: f64 = shares.iter().map(|(_, p)| p).sum();
    let present = shares.len().max(1) as f64;
    let mut reached = 0.0;
    let mut out: Vec<(Slot, u32)> = Slot::ALL
        .into_iter()
        .map(|slot| {
            if let Some((_, percent)) = shares.iter().find(|(s, _)| *s == slot) {
                reached += if total > 0.0 { percent / total } else { 1.0 / present };
            }
            (slot, (reached * f64::from(BUCKETS)).round().min(f64::from(BUCKETS)) as u32)
        })
        .collect();
    // Rounding must not leave the top buckets to nobody.
    if let Some(last) = shares.iter().filter_map(|(s, _)| out.iter().position(|(o, _)| o == s)).max() {
        for bound in &mut out[last..] {
            bound.1 = BUCKETS;
        }
    }
    out
}

/// `global` lines giving each sticky plugin's bounds their values at load.
pub fn global_lines(out: &mut String, routes: &[Route]) {
    for route in routes.iter().filter(|r| r.sticky.is_some()) {
        for (slot, bound) in bounds(route) {
            let _ = writeln!(out, "  set-var {} int({bound})", bound_var(&route.plugin, slot));
        }
    }
}

/// The sample a sticky plugin's sessions are keyed by.
fn key(sticky: &StickyBy) -> String {
    match sticky {
        StickyBy::Header(name) => format!("req.hdr({name})"),
        StickyBy::Cookie(name) => format!("req.cook({name})"),
    }
}

/// Frontend lines for one sticky route: the bucket (a request without a key gets a random
/// one, so it still follows the split), then one `use_backend` per slot. `when` is the ACL
/// that picks the plugin on a shared port, empty when it is alone on its port.
pub fn frontend_lines(out: &mut String, route: &Route, when: &str) {
    let Some(sticky) = &route.sticky else { return };
    let key = key(sticky);
    let _ = writeln!(
        out,
        "  http-request set-var(txn.bucket) {key},crc32(1),mod({BUCKETS}) if {when}{{ {key} -m found }}\n\
         \x20 http-request set-var(txn.bucket) rand({BUCKETS}) if {when}!{{ {key} -m found }}"
    );
    for slot in Slot::ALL {
        let _ = writeln!(
            out,
            "  use_backend {} if {when}{{ var(txn.bucket),sub({}) -m int lt 0 }}",
            slot_backend(&route.plugin, slot),
            bound_var(&route.plugin, slot)
        );
    }
}

/// One backend per slot: the slot's servers, sessions spread over them by consistent hash.
pub fn backends(out: &mut String, route: &Route) {
    let Some(sticky) = &route.sticky else { return };
    let weights = route.weights();
    for slot in Slot::ALL {
        let _ = write!(
            out,
            "\nbackend {}\n  balance hash {}\n  hash-type consistent\n  option httpchk GET {}\n",
            slot_backend(&route.plugin, slot),
            key(sticky),
            route.readiness
        );
        for (server, (_, weight)) in route.servers.iter().zip(&weights).filter(|(s, _)| s.slot == slot) {
            let _ =
                writeln!(out, "  server {} {} weight {weight}", server.name, super::haproxy::server_address(server));
        }
    }
}

/// Runtime API commands setting a sticky route's bounds (none for a route without
/// stickiness).
pub fn bound_commands(route: &Route) -> Vec<String> {
    if route.sticky.is_none() {
        return Vec::new();
    }
    bounds(route)
        .into_iter()
        .map(|(slot, bound)| format!("experimental-mode on; set var {} int({bound})", bound_var(&route.plugin, slot)))
        .collect()
}
