//! Window and cron specs, time zones, durations, quantities, rates, stickiness.
//! Input lines: schedule, time zone, duration, quantity, rate, seconds since the epoch.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use plugsync::model::{config, windows};
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let mut next = || lines.next().unwrap_or_default().to_string();
    let (schedule, zone, duration, quantity, rate) = (next(), next(), next(), next(), next());
    let seconds: i64 = next().trim().parse().unwrap_or(1_796_000_000);
    let now = chrono::DateTime::from_timestamp(seconds.rem_euclid(4_102_444_800), 0).unwrap_or_default();
    let zone = Some(zone).filter(|z| !z.is_empty());
    if let Ok(z) = windows::parse_zone(zone.as_deref(), &schedule) {
        let _ = windows::next_scheduled(&schedule, z, now);
    }
    if let Some(duration) = plugsync::model::Span::parse(&duration) {
        for kind in [config::WindowKind::Deny, config::WindowKind::Allow] {
            let window = config::SyncWindow {
                kind,
                schedule: schedule.clone(),
                duration,
                plugins: vec!["crm-*".into()],
                time_zone: zone.clone(),
            };
            let _ = windows::rollouts_allowed(&[window], "crm-eu", now);
        }
    }
    let _ = plugsync::model::Cpu::parse(&quantity);
    let _ = plugsync::model::Memory::parse(&quantity);
    let _ = plugsync::model::Rate::parse_percent(&rate);
    let _ = serde_json::from_str::<plugsync::model::Rate>(&rate);
    let _ = plugsync::traffic::StickyBy::parse(&rate);
});
