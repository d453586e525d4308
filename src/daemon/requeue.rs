//! When the loop looks again. After a good tick: the interval. After failures (a fetch that
//! failed, an engine that did not answer): exponential back-off with jitter, so a remote or
//! engine that is down is not hammered and many replicas do not retry in step.

use std::time::Duration;

/// The longest wait between retries (unless the interval itself is longer).
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why a tick failed, for the back-off and for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Fetch,
    Engine,
}

impl Failure {
    pub fn label(self) -> &'static str {
        match self {
            Failure::Fetch => "fetch",
            Failure::Engine => "engine",
        }
    }
}

/// Consecutive failed ticks.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a tick's result; returns how long to wait before the next one.
    /// `jitter` in [0, 1) spreads the wait by up to ±10 %.
    pub fn next(&mut self, failure: Option<Failure>, interval: Duration, jitter: f64) -> Duration {
        self.failures = if failure.is_some() { self.failures.saturating_add(1) } else { 0 };
        delay(self.failures, interval, jitter)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The wait after `failures` failed ticks in a row: the interval for the first two, then
/// doubling up to [`MAX_BACKOFF`] (or the interval, when longer), spread by `jitter`.
pub fn delay(failures: u32, interval: Duration, jitter: f64) -> Duration {
    if failures <= 1 {
        return interval;
    }
    let doubled = interval.saturating_mul(1u32 << (failures - 1).min(16));
    let capped = doubled.min(MAX_BACKOFF.max(interval));
    let spread = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
    capped.mul_f64(spread).max(interval.min(capped))
}

/// A jitter value in [0, 1) without a random-number crate: the process's random hasher keys.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_table() {
        let s = Duration::from_secs;
        // (failures, interval, jitter) → wait
        let cases = [
            (0, s(30), 0.5, s(30)),
            (1, s(30), 0.5, s(30)),
            (2, s(30), 0.5, s(60)),
            (3, s(30), 0.5, s(120)),
            (4, s(30), 0.5, s(240)),
            (5, s(30), 0.5, s(300)),
            (40, s(30), 0.5, s(300)),
            (3, s(1), 0.5, s(4)),
            (3, s(1), 0.0, Duration::from_millis(3600)),
            (3, s(1), 1.0, Duration::from_millis(4400)),
            // An interval longer than the cap is never shortened.
            (6, s(600), 0.0, s(600)),
        ];
        for (failures, interval, jitter, want) in cases {
            let got = delay(failures, interval, jitter);
            let diff = got.as_secs_f64() - want.as_secs_f64();
            assert!(diff.abs() < 1e-6, "delay({failures}, {interval:?}, {jitter}) = {got:?}, want {want:?}");
        }
    }

    #[test]
    fn a_good_tick_resets_the_back_off() {
        let mut backoff = Backoff::default();
        let interval = Duration::from_secs(1);
        for _ in 0..5 {
            backoff.next(Some(Failure::Fetch), interval, 0.5);
        }
        assert_eq!(backoff.failures(), 5);
        assert_eq!(backoff.next(None, interval, 0.5), interval);
        assert_eq!(backoff.failures(), 0);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
