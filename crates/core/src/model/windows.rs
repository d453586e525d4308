//! Sync windows and schedules, pure: the caller passes `now`.
//!
//! Argo CD semantics: a window is active from each occurrence of its cron `schedule` for
//! `duration`. Windows with a `plugins` list apply only to those plugins (`*` wildcards allowed).
//! An active deny window blocks; if allow windows apply, rollouts happen only while one of them
//! is active; deny wins over allow; with no applicable window, rollouts are allowed.

use crate::model::config::{SyncWindow, WindowKind};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowDecision {
    pub allowed: bool,
    /// For people: which window decided, and until when.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("invalid cron expression '{expr}': {message}")]
    Cron { expr: String, message: String },
    #[error("sync window '{schedule}' has a zero duration")]
    ZeroDuration { schedule: String },
    #[error(
        "unknown time zone {zone:?} for '{schedule}': expected an IANA name such as Europe/Berlin, UTC, \
         or a fixed offset such as +02:00"
    )]
    TimeZone { zone: String, schedule: String },
}

fn parse_cron(expr: &str) -> Result<Cron, WindowError> {
    let bad = |message: String| WindowError::Cron { expr: expr.to_string(), message };
    // An empty list item (`,5`, `1,,2`) reads as a field that never matches: a typo, and a
    // search through croner's whole horizon.
    if let Some(field) = expr.split_whitespace().find(|f| f.split(',').any(str::is_empty)) {
        return Err(bad(format!("field '{field}' has an empty list item")));
    }
    Cron::from_str(expr.trim()).map_err(|e| bad(e.to_string()))
}

fn cron_error(expr: &str, e: croner::errors::CronError) -> WindowError {
    WindowError::Cron { expr: expr.to_string(), message: e.to_string() }
}

/// The zone a schedule is read in: a fixed offset, or an IANA zone with its daylight saving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Fixed(FixedOffset),
    Named(Tz),
}

impl Zone {
    pub const UTC: Zone = Zone::Named(Tz::UTC);
}

/// An IANA name (`Europe/Berlin`, case-insensitive), `UTC`/`Z`/`GMT`, or a fixed offset
/// `+02:00` / `-0530` / `UTC+2`. Absent or blank: UTC. Never panics on any text.
pub fn parse_zone(zone: Option<&str>, schedule: &str) -> Result<Zone, WindowError> {
    let Some(zone) = zone.map(str::trim).filter(|z| !z.is_empty()) else {
        return Ok(Zone::UTC);
    };
    let bad = || WindowError::TimeZone { zone: zone.to_string(), schedule: schedule.to_string() };
    let upper = zone.to_ascii_uppercase();
    if matches!(upper.as_str(), "Z" | "ZULU") {
        return Ok(Zone::UTC);
    }
    if let Ok(tz) = Tz::from_str_insensitive(zone) {
        return Ok(Zone::Named(tz));
    }
    let offset = upper.strip_prefix("UTC").or_else(|| upper.strip_prefix("GMT")).unwrap_or(&upper);
    let (sign, rest) = if let Some(rest) = offset.strip_prefix('+') {
        (1, rest)
    } else if let Some(rest) = offset.strip_prefix('-') {
        (-1, rest)
    } else {
        return Err(bad());
    };
    // Digits and one optional ':' only: anything else (a multi-byte character included) is
    // refused before the text is split.
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return Err(bad());
    }
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).map(Zone::Fixed).ok_or_else(bad)
}

/// Cron occurrences computed in a zone, answered in UTC.
fn occurrence(
    cron: &Cron,
    zone: Zone,
    from: DateTime<Utc>,
    inclusive: bool,
    previous: bool,
) -> Result<DateTime<Utc>, croner::errors::CronError> {
    fn find<Z: chrono::TimeZone>(
        cron: &Cron,
        from: &DateTime<Z>,
        inclusive: bool,
        previous: bool,
    ) -> Result<DateTime<Utc>, croner::errors::CronError> {
        let found = if previous {
            cron.find_previous_occurrence(from, inclusive)
        } else {
            cron.find_next_occurrence(from, inclusive)
        };
        found.map(|t| t.with_timezone(&Utc))
    }
    match zone {
        Zone::Fixed(z) => find(cron, &from.with_timezone(&z), inclusive, previous),
        Zone::Named(tz) => {
            // A schedule that never matches a wall clock never matches one with daylight
            // saving either (a shift skips or repeats times, it makes none): find that out on
            // UTC, which is cheap, before searching the zone's horizon.
            find(cron, &from, inclusive, previous)?;
            find(cron, &from.with_timezone(&tz), inclusive, previous)
        }
    }
}

/// `crm` matches `crm`; `*` matches any run of characters (`crm-*`, `*`).
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

fn applies(window: &SyncWindow, plugin: &str) -> bool {
    window.plugins.is_empty() || window.plugins.iter().any(|p| glob_match(p, plugin))
}

/// `60h`, `1h30m`, `45m`, `90s`.
fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

fn stamp(t: DateTime<Utc>) -> String {
    use chrono::Timelike;
    if t.second() == 0 {
        t.format("%Y-%m-%dT%H:%MZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

fn describe(window: &SyncWindow) -> String {
    let kind = match window.kind {
        WindowKind::Allow => "allow",
        WindowKind::Deny => "deny",
    };
    let zone = match window.time_zone.as_deref().map(str::trim) {
        Some(z) if !z.is_empty() && !z.eq_ignore_ascii_case("utc") => format!(" ({z})"),
        _ => String::new(),
    };
    format!("{kind} window '{}'{zone} for {}", window.schedule.trim(), human_duration(window.duration.as_duration()))
}

/// One window, parsed.
struct Parsed<'w> {
    window: &'w SyncWindow,
    cron: Cron,
    zone: Zone,
    duration: TimeDelta,
}

fn parse_window(window: &SyncWindow) -> Result<Parsed<'_>, WindowError> {
    let cron = parse_cron(&window.schedule)?;
    let zone = parse_zone(window.time_zone.as_deref(), &window.schedule)?;
    let duration =
        TimeDelta::from_std(window.duration.as_duration()).unwrap_or(TimeDelta::MAX).min(TimeDelta::days(3650));
    if duration <= TimeDelta::zero() {
        return Err(WindowError::ZeroDuration { schedule: window.schedule.clone() });
    }
    Ok(Parsed { window, cron, zone, duration })
}

impl Parsed<'_> {
    /// `Some(end)` when `now` lies in [occurrence, occurrence + duration) for some occurrence.
    /// The latest occurrence at or before `now` has the latest end, so it is the one to check.
    fn active_until(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, WindowError> {
        match occurrence(&self.cron, self.zone, now, true, true) {
            Ok(start) => {
                let end = start + self.duration;
                Ok((now < end).then_some(end))
            }
            // No occurrence within croner's search horizon: never active.
            Err(croner::errors::CronError::TimeSearchLimitExceeded) => Ok(None),
            Err(e) => Err(cron_error(&self.window.schedule, e)),
        }
    }

    fn next_start(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        occurrence(&self.cron, self.zone, now, false, false).ok()
    }
}

/// Checks every window's cron, time zone and duration (for `plugsync validate`).
pub fn validate(windows: &[SyncWindow]) -> Result<(), WindowError> {
    windows.iter().try_for_each(|w| parse_window(w).map(|_| ()))
}

/// May `plugin` roll out at `now`?
pub fn rollouts_allowed(
    windows: &[SyncWindow],
    plugin: &str,
    now: DateTime<Utc>,
) -> Result<WindowDecision, WindowError> {
    // Parse them all, so a broken window is reported even when it does not apply to this plugin.
    let parsed = windows.iter().map(parse_window).collect::<Result<Vec<_>, _>>()?;
    let applicable: Vec<&Parsed> = parsed.iter().filter(|p| applies(p.window, plugin)).collect();

    let mut deny: Option<(&Parsed, DateTime<Utc>)> = None;
    let mut allow: Option<(&Parsed, DateTime<Utc>)> = None;
    let mut any_allow = false;
    for p in &applicable {
        let active = p.active_until(now)?;
        match p.window.kind {
            WindowKind::Deny => {
                if let Some(end) = active {
                    // Name the deny window that blocks longest.
                    if deny.is_none_or(|(_, e)| end > e) {
                        deny = Some((p, end));
                    }
                }
            }
            WindowKind::Allow => {
                any_allow = true;
                if let Some(end) = active {
                    if allow.is_none_or(|(_, e)| end > e) {
                        allow = Some((p, end));
                    }
                }
            }
        }
    }

    if let Some((p, end)) = deny {
        return Ok(WindowDecision {
            allowed: false,
            reason: format!("{} active until {}", describe(p.window), stamp(end)),
        });
    }
    if let Some((p, end)) = allow {
        return Ok(WindowDecision {
            allowed: true,
            reason: format!("{} active until {}", describe(p.window), stamp(end)),
        });
    }
    if any_allow {
        let next = applicable
            .iter()
            .filter(|p| p.window.kind == WindowKind::Allow)
            .filter_map(|p| p.next_start(now).map(|t| (p, t)))
            .min_by_key(|(_, t)| *t);
        let reason = match next {
            Some((p, t)) => {
                format!("outside allow windows; next: {} opens at {}", describe(p.window), stamp(t))
            }
            None => "outside allow windows; none opens again".to_string(),
        };
        return Ok(WindowDecision { allowed: false, reason });
    }
    Ok(WindowDecision { allowed: true, reason: "no sync window applies".to_string() })
}

/// The next run of the fleet's `schedule` cron strictly after `after`, read in `zone`.
pub fn next_scheduled(schedule: &str, zone: Zone, after: DateTime<Utc>) -> Result<DateTime<Utc>, WindowError> {
    occurrence(&parse_cron(schedule)?, zone, after, false, false).map_err(|e| cron_error(schedule, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer: an empty list item made a field that never matches, and the
    /// search through croner's horizon in a named zone outlasted the fuzzer's 10 s.
    #[test]
    fn a_schedule_that_never_matches_is_answered_at_once() {
        let now: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap_or_default();
        let berlin = parse_zone(Some("Europe/Berlin"), "").unwrap_or(Zone::UTC);
        match next_scheduled(", 9 9 * * *", berlin, now) {
            Err(WindowError::Cron { message, .. }) => assert!(message.contains("empty list item"), "{message}"),
            other => panic!("an empty list item is an error: {other:?}"),
        }
        let started = std::time::Instant::now();
        // February 30th: valid fields, no occurrence ever.
        let never = next_scheduled("0 0 30 2 *", berlin, now);
        assert!(never.is_err(), "{never:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    }
    use crate::model::duration::Span;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn win(kind: WindowKind, schedule: &str, duration: &str, plugins: &[&str]) -> SyncWindow {
        SyncWindow {
            kind,
            schedule: schedule.into(),
            duration: Span::parse(duration).unwrap(),
            plugins: plugins.iter().map(|p| p.to_string()).collect(),
            time_zone: None,
        }
    }

    use WindowKind::{Allow, Deny};

    #[test]
    fn decisions() {
        // 2026-11-27 is a Friday, 2026-11-30 a Monday.
        let weekend = win(Deny, "0 17 * * 5", "60h", &[]);
        let nights = win(Allow, "0 22 * * *", "8h", &[]);
        let crm_only = win(Deny, "0 9 * * 1-5", "8h", &["crm"]);
        let billing_glob = win(Allow, "0 12 * * *", "1h", &["billing-*"]);
        /// (name, windows, plugin, now, allowed, part of the reason)
        type Case<'a> = (&'a str, Vec<SyncWindow>, &'a str, &'a str, bool, &'a str);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("no windows", vec![], "crm", "2026-11-27T18:00:00Z", true, "no sync window applies"),
            ("before weekend freeze", vec![weekend.clone()], "crm", "2026-11-27T16:59:59Z", true, "no sync window applies"),
            ("freeze starts (inclusive)", vec![weekend.clone()], "crm", "2026-11-27T17:00:00Z", false,
                "deny window '0 17 * * 5' for 60h active until 2026-11-30T05:00Z"),
            ("saturday across midnight", vec![weekend.clone()], "crm", "2026-11-28T23:30:00Z", false, "until 2026-11-30T05:00Z"),
            ("monday early", vec![weekend.clone()], "crm", "2026-11-30T04:59:59Z", false, "until 2026-11-30T05:00Z"),
            ("freeze ends (exclusive)", vec![weekend.clone()], "crm", "2026-11-30T05:00:00Z", true, "no sync window applies"),
            ("allow-only, inside across midnight", vec![nights.clone()], "crm", "2026-11-25T02:00:00Z", true,
                "allow window '0 22 * * *' for 8h active until 2026-11-25T06:00Z"),
            ("allow-only, outside", vec![nights.clone()], "crm", "2026-11-25T12:00:00Z", false,
                "outside allow windows; next: allow window '0 22 * * *' for 8h opens at 2026-11-25T22:00Z"),
            ("deny beats allow", vec![nights.clone(), weekend.clone()], "crm", "2026-11-27T23:00:00Z", false, "deny window '0 17 * * 5'"),
            ("allow after deny over", vec![nights.clone(), weekend.clone()], "crm", "2026-11-30T23:00:00Z", true, "allow window"),
            ("scoped deny hits crm", vec![crm_only.clone()], "crm", "2026-11-25T10:00:00Z", false, "until 2026-11-25T17:00Z"),
            ("scoped deny spares billing", vec![crm_only.clone()], "billing", "2026-11-25T10:00:00Z", true, "no sync window applies"),
            ("scoped deny off on saturday", vec![crm_only.clone()], "crm", "2026-11-28T10:00:00Z", true, "no sync window applies"),
            ("glob allow blocks billing-eu", vec![billing_glob.clone()], "billing-eu", "2026-11-25T10:00:00Z", false, "opens at 2026-11-25T12:00Z"),
            ("glob allow open for billing-eu", vec![billing_glob.clone()], "billing-eu", "2026-11-25T12:30:00Z", true, "until 2026-11-25T13:00Z"),
            ("glob allow ignores crm", vec![billing_glob.clone()], "crm", "2026-11-25T10:00:00Z", true, "no sync window applies"),
        ];
        for (name, windows, plugin, now, allowed, reason) in cases {
            let d = rollouts_allowed(&windows, plugin, at(now)).unwrap();
            assert_eq!(d.allowed, allowed, "{name}: {}", d.reason);
            assert!(d.reason.contains(reason), "{name}: {:?} lacks {reason:?}", d.reason);
        }
    }

    #[test]
    fn overlapping_occurrences_use_the_latest_start() {
        // Every hour for 90 minutes: always active, until 90 min after the latest start.
        let w = win(Deny, "0 * * * *", "90m", &[]);
        let d = rollouts_allowed(&[w], "crm", at("2026-11-25T10:10:00Z")).unwrap();
        assert!(!d.allowed);
        assert!(d.reason.ends_with("until 2026-11-25T11:30Z"), "{}", d.reason);
    }

    #[test]
    fn time_zones() {
        let mut w = win(Deny, "0 17 * * 5", "2h", &[]);
        w.time_zone = Some("+02:00".into());
        // 17:00 at +02:00 is 15:00Z.
        assert!(!rollouts_allowed(&[w.clone()], "crm", at("2026-11-27T15:30:00Z")).unwrap().allowed);
        assert!(rollouts_allowed(&[w.clone()], "crm", at("2026-11-27T17:30:00Z")).unwrap().allowed);
        w.time_zone = Some("UTC".into());
        assert!(!rollouts_allowed(&[w.clone()], "crm", at("2026-11-27T17:30:00Z")).unwrap().allowed);
        w.time_zone = Some("Mars/Olympus".into());
        let err = rollouts_allowed(&[w], "crm", at("2026-11-27T17:30:00Z")).unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus") && err.to_string().contains("Europe/Berlin"), "{err}");
        let fixed = |secs| Ok(Zone::Fixed(FixedOffset::east_opt(secs).unwrap()));
        for (zone, want) in [("-0530", fixed(-19800)), ("UTC+2", fixed(7200)), ("GMT-3", fixed(-10800))] {
            assert_eq!(parse_zone(Some(zone), "x"), want, "{zone}");
        }
        for zone in ["Z", "UTC", "utc", "Etc/UTC", "GMT", " "] {
            assert!(matches!(parse_zone(Some(zone), "x"), Ok(Zone::Named(_))), "{zone}");
        }
        assert_eq!(parse_zone(Some("europe/berlin"), "x"), Ok(Zone::Named(Tz::Europe__Berlin)));
        assert!(parse_zone(Some("+15:00"), "x").is_err());
    }

    /// Issue 10, defect 3: a multi-byte character in a time zone panicked ("byte index 2 is
    /// not a char boundary"); every such text is an error now.
    #[test]
    fn defect_3_time_zone_with_a_multibyte_character_is_an_error_not_a_panic() {
        for zone in ["+1éX", "+é", "-1é", "UTC+1é", "+12é", "+1:é", "éé", "+\u{1F600}0", "GMT-ü9", "+0é:00"] {
            let err = parse_zone(Some(zone), "0 17 * * 5").unwrap_err();
            assert!(err.to_string().contains(zone), "{zone}: {err}");
        }
    }

    /// Issue 10, defect 4: IANA zones with daylight saving. Europe/Berlin moves from +01:00 to
    /// +02:00 on 2026-03-29 and back on 2026-10-25: a window at 09:00 local opens at 08:00Z in
    /// winter and 07:00Z in summer, and the schedule follows.
    #[test]
    fn defect_4_windows_and_schedules_follow_daylight_saving() {
        let mut w = win(Deny, "0 9 * * *", "1h", &[]);
        w.time_zone = Some("Europe/Berlin".into());
        #[rustfmt::skip]
        let table = [
            ("2026-03-28T08:30:00Z", false, "winter: 09:00 CET = 08:00Z"),
            ("2026-03-28T07:30:00Z", true, "winter: 08:30 CET, not yet"),
            ("2026-03-29T07:30:00Z", false, "summer (changed at 01:00Z): 09:00 CEST = 07:00Z"),
            ("2026-03-29T08:30:00Z", true, "summer: 10:30 CEST, over"),
            ("2026-10-24T07:30:00Z", false, "last summer day"),
            ("2026-10-25T07:30:00Z", true, "winter again: 08:30 CET"),
            ("2026-10-25T08:30:00Z", false, "winter again: 09:30 CET"),
        ];
        for (now, allowed, why) in table {
            let d = rollouts_allowed(std::slice::from_ref(&w), "crm", at(now)).unwrap();
            assert_eq!(d.allowed, allowed, "{now} ({why}): {}", d.reason);
        }
        let berlin = Zone::Named(Tz::Europe__Berlin);
        assert_eq!(
            next_scheduled("0 9 * * *", berlin, at("2026-03-28T12:00:00Z")).unwrap(),
            at("2026-03-29T07:00:00Z")
        );
        assert_eq!(
            next_scheduled("0 9 * * *", berlin, at("2026-10-24T12:00:00Z")).unwrap(),
            at("2026-10-25T08:00:00Z")
        );
        // 02:30 does not exist on 2026-03-29 in Berlin and happens twice on 2026-10-25: the
        // schedule still runs once a day and never panics.
        let spring = next_scheduled("30 2 * * *", berlin, at("2026-03-28T12:00:00Z")).unwrap();
        assert!(spring > at("2026-03-29T00:00:00Z") && spring < at("2026-03-30T12:00:00Z"), "{spring}");
        let autumn = next_scheduled("30 2 * * *", berlin, at("2026-10-24T12:00:00Z")).unwrap();
        assert!(autumn >= at("2026-10-25T00:30:00Z") && autumn <= at("2026-10-25T01:30:00Z"), "{autumn}");
    }

    proptest::proptest! {
        /// No text, whatever its characters, makes the zone parser panic.
        #[test]
        fn any_zone_text_parses_or_errs(zone in "\\PC{0,12}", prefix in "(\\+|-|UTC\\+|GMT-)?") {
            let text = format!("{prefix}{zone}");
            let _ = parse_zone(Some(&text), "x");
        }
    }

    #[test]
    fn errors_name_the_expression() {
        let bad = win(Deny, "61 * * * *", "1h", &["other"]);
        let err = rollouts_allowed(std::slice::from_ref(&bad), "crm", at("2026-11-25T10:00:00Z")).unwrap_err();
        assert!(err.to_string().contains("'61 * * * *'"), "{err}");
        assert!(validate(&[bad]).is_err());
        let zero = win(Deny, "0 * * * *", "0s", &[]);
        assert!(matches!(validate(&[zero]), Err(WindowError::ZeroDuration { .. })));
        let err = next_scheduled("not a cron", Zone::UTC, at("2026-11-25T10:00:00Z")).unwrap_err();
        assert!(err.to_string().contains("'not a cron'"), "{err}");
        assert!(validate(&[win(Allow, "*/15 9-17 * * MON-FRI", "10m", &[])]).is_ok());
    }

    #[test]
    fn next_scheduled_is_strictly_after() {
        for (schedule, after, want) in [
            ("0 3 * * *", "2026-11-25T02:59:59Z", "2026-11-25T03:00:00Z"),
            ("0 3 * * *", "2026-11-25T03:00:00Z", "2026-11-26T03:00:00Z"),
            ("*/15 * * * *", "2026-11-25T10:07:00Z", "2026-11-25T10:15:00Z"),
            ("0 17 * * 5", "2026-11-28T00:00:00Z", "2026-12-04T17:00:00Z"),
            ("0 0 1 1 *", "2026-11-25T00:00:00Z", "2027-01-01T00:00:00Z"),
        ] {
            assert_eq!(next_scheduled(schedule, Zone::UTC, at(after)).unwrap(), at(want), "{schedule} after {after}");
        }
    }

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("crm", "crm", true),
            ("crm", "crm2", false),
            ("*", "anything", true),
            ("billing-*", "billing-eu", true),
            ("billing-*", "billing", false),
            ("*-eu", "billing-eu", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} vs {n}");
        }
    }
}
