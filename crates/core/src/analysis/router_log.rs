//! Per-slot metrics from the router's own per-request log, pure: a plugin that exposes no
//! metrics at all still gets request counts, its 5xx share and latency percentiles per slot.
//!
//! One line per request, as the router configuration writes it (`%b %s %ST %Ta %Tr`):
//! backend (`be_<plugin>`), server (`<slot>-<instance>`), status, total active time and
//! server response time in milliseconds (`-1` when the request ended before). Anything else
//! (startup notices, a line cut in half) is skipped and counted.

use super::counters::SlotMetrics;
use crate::plan::Slot;
use std::collections::BTreeMap;

/// One request as the router logged it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterRequest {
    pub plugin: String,
    /// `None`: the router found no server (`<NOSRV>`) and answered itself.
    pub slot: Option<Slot>,
    pub status: i32,
    /// Total active time in milliseconds; `None` when the router logged -1.
    pub millis: Option<f64>,
}

impl RouterRequest {
    /// A server error, a router error, or a request that never got a status.
    pub fn failed(&self) -> bool {
        self.status >= 500 || self.status <= 0
    }
}

/// Parses one log line; `None` for anything that is not a request line.
pub fn parse_line(line: &str) -> Option<RouterRequest> {
    let mut fields = line.split_whitespace();
    let plugin = crate::traffic::sticky::plugin_of_backend(fields.next()?)?.to_string();
    let server = fields.next()?;
    let status: i32 = fields.next()?.parse().ok()?;
    let active: f64 = fields.next()?.parse().ok()?;
    let _response: f64 = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    let slot = if server == "<NOSRV>" { None } else { Some(slot_of(server)?) };
    Some(RouterRequest { plugin, slot, status, millis: (active >= 0.0).then_some(active) })
}

/// The slot a server name starts with (`canary-3f2a` → canary).
fn slot_of(server: &str) -> Option<Slot> {
    let prefix = server.split_once('-').map_or(server, |(p, _)| p);
    [Slot::Stable, Slot::Canary, Slot::Blue, Slot::Green, Slot::A, Slot::B].into_iter().find(|s| s.as_str() == prefix)
}

/// A slot's metrics over a window, with the percentiles the router can give exactly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouterSlotMetrics {
    pub metrics: SlotMetrics,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// What the router saw for `plugin` over `seconds`: per slot, and the requests it answered
/// itself for want of a server (those fail the plugin as a whole, not one slot).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouterWindow {
    pub slots: BTreeMap<Slot, RouterSlotMetrics>,
    pub without_server: u64,
    /// Lines that were not request lines.
    pub skipped: u64,
}

/// Aggregates the log lines of one window for one plugin.
pub fn window<'a>(lines: impl IntoIterator<Item = &'a str>, plugin: &str, seconds: f64) -> RouterWindow {
    let mut out = RouterWindow::default();
    let mut per_slot: BTreeMap<Slot, (u64, u64, Vec<f64>)> = BTreeMap::new();
    for line in lines {
        let Some(request) = parse_line(line) else {
            out.skipped += u64::from(!line.trim().is_empty());
            continue;
        };
        if request.plugin != plugin {
            continue;
        }
        let Some(slot) = request.slot else {
            out.without_server += 1;
            continue;
        };
        let entry = per_slot.entry(slot).or_default();
        entry.0 += 1;
        entry.1 += u64::from(request.failed());
        entry.2.extend(request.millis);
    }
    let seconds = if seconds.is_finite() && seconds > 0.0 { seconds } else { 0.0 };
    for (slot, (requests, errors, mut millis)) in per_slot {
        millis.sort_by(f64::total_cmp);
        let error_rate = (requests > 0).then(|| errors as f64 / requests as f64 * 100.0);
        let metrics = SlotMetrics {
            requests: requests as f64,
            errors: errors as f64,
            error_rate,
            success_rate: error_rate.map(|e| 100.0 - e),
            p99_ms: percentile(&millis, 0.99),
            throughput: (seconds > 0.0).then(|| requests as f64 / seconds),
            seconds,
            requests_counted: true,
            ..SlotMetrics::default()
        };
        let p50_ms = percentile(&millis, 0.50);
        let p95_ms = percentile(&millis, 0.95);
        out.slots.insert(slot, RouterSlotMetrics { metrics, p50_ms, p95_ms });
    }
    out
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_and_everything_else() {
        let table: [(&str, Option<(&str, Option<Slot>, i32, Option<f64>)>); 9] = [
            ("be_crm canary-1a2b 200 12 11", Some(("crm", Some(Slot::Canary), 200, Some(12.0)))),
            ("be_crm.canary canary-1a2b 200 12 11", Some(("crm", Some(Slot::Canary), 200, Some(12.0)))),
            ("be_crm stable-9 503 4 3", Some(("crm", Some(Slot::Stable), 503, Some(4.0)))),
            ("be_crm <NOSRV> 503 0 -1", Some(("crm", None, 503, Some(0.0)))),
            ("be_crm green-1 -1 -1 -1", Some(("crm", Some(Slot::Green), -1, None))),
            ("[NOTICE]   (1) : haproxy version is 2.6.12", None),
            ("be_crm weird-1 200 1 1", None),
            ("be_crm canary-1 200 1", None),
            ("be_crm canary-1 2é0 1 1", None),
        ];
        for (line, want) in table {
            let got = parse_line(line).map(|r| (r.plugin, r.slot, r.status, r.millis));
            assert_eq!(got, want.map(|(p, s, st, m)| (p.to_string(), s, st, m)), "{line:?}");
        }
    }

    #[test]
    fn a_window_gives_per_slot_share_of_failures_and_exact_percentiles() {
        let mut lines: Vec<String> = (1..=100).map(|ms| format!("be_crm stable-1 200 {ms} {ms}")).collect();
        lines.extend((0..9).map(|_| "be_crm canary-1 200 5 5".to_string()));
        lines.push("be_crm canary-1 500 7 7".into());
        lines.push("be_other canary-1 500 7 7".into());
        lines.push("be_crm <NOSRV> 503 0 -1".into());
        lines.push("[WARNING] something".into());
        let w = window(lines.iter().map(String::as_str), "crm", 10.0);
        let stable = &w.slots[&Slot::Stable];
        assert_eq!((stable.metrics.requests, stable.metrics.error_rate), (100.0, Some(0.0)));
        assert_eq!((stable.p50_ms, stable.p95_ms, stable.metrics.p99_ms), (Some(50.0), Some(95.0), Some(99.0)));
        assert_eq!(stable.metrics.throughput, Some(10.0));
        let canary = &w.slots[&Slot::Canary];
        assert_eq!((canary.metrics.requests, canary.metrics.error_rate), (10.0, Some(10.0)));
        assert_eq!((w.without_server, w.skipped), (1, 1));
        assert!(window(std::iter::empty(), "crm", 10.0).slots.is_empty());
    }
}
