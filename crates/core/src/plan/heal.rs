//! Drift repairs and the `drift:` policy, pure: a planned change repairs drift when Git still
//! says what plugsync last applied; `alert` holds it, `heal` re-applies it with exponential
//! back-off and a flap limit. Times are milliseconds since the Unix epoch, passed in.

use crate::model::{DriftMode, Healing};
use std::time::Duration;

/// What the policy decides about one plugin's drift repair now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealGate {
    Heal,
    /// `drift: alert`: reported, not repaired.
    Alert,
    /// Healed recently: the next heal waits this long.
    Backoff(Duration),
    /// Too many heals in the window: healing stopped.
    Flapping,
}

/// The decision from the plugin's mode, its recent heals and the fleet's `healing` settings:
/// the first heal at once, the n-th `backoff × 2^(n-2)` after the last one, none once
/// `flapLimit` heals happened within `flapWindow`.
pub fn decide(mode: DriftMode, recent_ms: &[u64], now_ms: u64, healing: &Healing) -> HealGate {
    if mode == DriftMode::Alert {
        return HealGate::Alert;
    }
    let window = healing.flap_window.0.as_millis() as u64;
    let in_window: Vec<u64> = recent_ms.iter().copied().filter(|t| now_ms.saturating_sub(*t) < window).collect();
    if in_window.len() >= healing.flap_limit as usize {
        return HealGate::Flapping;
    }
    if let Some(last) = in_window.iter().max() {
        let wait = healing.backoff.0 * 2u32.saturating_pow(in_window.len().saturating_sub(1) as u32);
        let since = Duration::from_millis(now_ms.saturating_sub(*last));
        if since < wait {
            return HealGate::Backoff(wait - since);
        }
    }
    HealGate::Heal
}

/// The heals of `recent_ms` still inside the flap window at `now_ms` (what to remember).
pub fn still_counted(recent_ms: &[u64], now_ms: u64, healing: &Healing) -> Vec<u64> {
    let window = healing.flap_window.0.as_millis() as u64;
    recent_ms.iter().copied().filter(|t| now_ms.saturating_sub(*t) < window).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        let now = 10_000_000u64;
        let ago = |s: u64| now - s * 1000;
        let cases: Vec<(DriftMode, Vec<u64>, HealGate)> = vec![
            (DriftMode::Alert, vec![], HealGate::Alert),
            (DriftMode::Heal, vec![], HealGate::Heal),
            // One heal 1 s ago: the second waits 2 s after it.
            (DriftMode::Heal, vec![ago(1)], HealGate::Backoff(Duration::from_secs(1))),
            (DriftMode::Heal, vec![ago(3)], HealGate::Heal),
            // Two heals: the third waits 4 s after the last.
            (DriftMode::Heal, vec![ago(10), ago(3)], HealGate::Backoff(Duration::from_secs(1))),
            (DriftMode::Heal, vec![ago(500), ago(400), ago(300), ago(200), ago(100)], HealGate::Flapping),
            // Heals older than the window are forgotten.
            (DriftMode::Heal, vec![ago(5000), ago(4000), ago(3000), ago(2000), ago(1000)], HealGate::Heal),
        ];
        for (mode, recent, want) in cases {
            assert_eq!(decide(mode, &recent, now, &Healing::default()), want, "{mode:?} {recent:?}");
        }
        assert_eq!(still_counted(&[ago(5000), ago(10)], now, &Healing::default()), vec![ago(10)]);
    }
}
