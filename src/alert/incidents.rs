//! De-duplication of drift alerts into incidents, and rollout events as alerts. Pure: no I/O,
//! `now` is an argument.
//!
//! An incident is keyed by (fleet, plugin, alert name). Findings while none is open open one
//! and give ONE Firing alert; findings while one is open give nothing, except a reminder once
//! `repeat_interval` has passed since the last alert sent for it (the reminder carries the
//! current findings, and the incident's original `starts_at`); no findings while one is open
//! give one Resolved alert (`ends_at = now`) and close it.

use super::{Alert, AlertState, FindingSummary, RolloutEventKind, DRIFT};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a failed or rolled-back rollout alert stays Firing before it ends on its own
/// (its `ends_at`; Alertmanager resolves it then). A rollout failure is an event, not a
/// condition plugsync re-checks: the plugin's FAILED / ROLLED_BACK lifecycle lives on in the
/// status branch, the page should not.
pub const ROLLOUT_FAILURE_TTL: Duration = Duration::from_secs(10 * 60);

/// Severity of drift incidents (every alert name the daemon observes).
pub const INCIDENT_SEVERITY: &str = "warning";

#[derive(Debug, Clone, PartialEq)]
struct Incident {
    started_at: DateTime<Utc>,
    last_sent: DateTime<Utc>,
    /// Summary of the latest findings, repeated in the Resolved alert.
    last_summary: String,
}

/// The open incidents of one daemon.
#[derive(Debug, Clone)]
pub struct Incidents {
    repeat_interval: TimeDelta,
    open: BTreeMap<(String, String, String), Incident>,
}

impl Incidents {
    /// `repeat_interval`: how long an open incident stays quiet before a reminder (zero: a
    /// reminder on every observation).
    pub fn new(repeat_interval: Duration) -> Incidents {
        Incidents {
            repeat_interval: TimeDelta::from_std(repeat_interval).unwrap_or(TimeDelta::MAX),
            open: BTreeMap::new(),
        }
    }

    /// Records the current `findings` of `plugin` for the alert `name` and returns what must
    /// be sent: nothing, one Firing alert (new incident or reminder), or one Resolved alert.
    pub fn observe(
        &mut self,
        fleet: &str,
        plugin: &str,
        name: &str,
        findings: &[FindingSummary],
        now: DateTime<Utc>,
    ) -> Vec<Alert> {
        let key = (fleet.to_string(), plugin.to_string(), name.to_string());
        if findings.is_empty() {
            return match self.open.remove(&key) {
                Some(incident) => vec![resolved(fleet, plugin, name, &incident, now)],
                None => Vec::new(),
            };
        }
        let summary = findings_summary(plugin, name, findings);
        let details = findings.iter().map(finding_line).collect();
        match self.open.get_mut(&key) {
            None => {
                self.open.insert(key, Incident { started_at: now, last_sent: now, last_summary: summary.clone() });
                vec![firing(fleet, plugin, name, summary, details, now)]
            }
            Some(incident) => {
                incident.last_summary.clone_from(&summary);
                if now.signed_duration_since(incident.last_sent) < self.repeat_interval {
                    return Vec::new();
                }
                incident.last_sent = now;
                vec![firing(fleet, plugin, name, summary, details, incident.started_at)]
            }
        }
    }

    /// The open incidents as (fleet, plugin, alert name): the daemon resolves those of plugins
    /// it no longer observes (removed from the fleet) by observing them with no findings.
    pub fn open(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.open.keys().map(|(fleet, plugin, name)| (fleet.as_str(), plugin.as_str(), name.as_str()))
    }

    /// Whether an incident is open for (fleet, plugin, name).
    pub fn is_open(&self, fleet: &str, plugin: &str, name: &str) -> bool {
        self.open.contains_key(&(fleet.to_string(), plugin.to_string(), name.to_string()))
    }
}

/// A rollout event as a one-off alert (no incident; label `event` = the kind).
///
/// - started / step / promoted: severity `info`, **Resolved** at once (`starts_at = ends_at =
///   now`). They are notifications, not conditions: webhook, Slack and the log show them;
///   Alertmanager records them without ever notifying (it does not notify a group that has
///   only resolved alerts it never notified as firing).
/// - rolled back / failed: severity `critical`, **Firing** with `ends_at = now +`
///   [`ROLLOUT_FAILURE_TTL`]: Alertmanager pages once and resolves it by itself afterwards.
///
/// The first line of `text` goes into the summary, further lines into the details.
pub fn rollout(fleet: &str, plugin: &str, kind: RolloutEventKind, text: &str, now: DateTime<Utc>) -> Alert {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let what = match kind {
        RolloutEventKind::Started => "rollout started",
        RolloutEventKind::Step => "rollout step",
        RolloutEventKind::Promoted => "rollout promoted",
        RolloutEventKind::RolledBack => "rollout rolled back",
        RolloutEventKind::Failed => "rollout failed",
    };
    let summary = match lines.next() {
        Some(first) => format!("plugin {plugin}: {what}: {first}"),
        None => format!("plugin {plugin}: {what}"),
    };
    let (severity, state, ends_at) = match kind {
        RolloutEventKind::Started | RolloutEventKind::Step | RolloutEventKind::Promoted => {
            ("info", AlertState::Resolved, now)
        }
        RolloutEventKind::RolledBack | RolloutEventKind::Failed => {
            let ttl = TimeDelta::from_std(ROLLOUT_FAILURE_TTL).unwrap_or(TimeDelta::zero());
            ("critical", AlertState::Firing, now.checked_add_signed(ttl).unwrap_or(now))
        }
    };
    Alert {
        fleet: fleet.to_string(),
        plugin: plugin.to_string(),
        name: super::ROLLOUT.to_string(),
        severity: severity.to_string(),
        summary,
        details: lines.map(str::to_string).collect(),
        state,
        starts_at: now,
        ends_at: Some(ends_at),
        labels: BTreeMap::from([("event".to_string(), kind.as_str().to_string())]),
    }
}

fn firing(
    fleet: &str,
    plugin: &str,
    name: &str,
    summary: String,
    details: Vec<String>,
    starts_at: DateTime<Utc>,
) -> Alert {
    Alert {
        fleet: fleet.to_string(),
        plugin: plugin.to_string(),
        name: name.to_string(),
        severity: INCIDENT_SEVERITY.to_string(),
        summary,
        details,
        state: AlertState::Firing,
        starts_at,
        ends_at: None,
        labels: BTreeMap::new(),
    }
}

fn resolved(fleet: &str, plugin: &str, name: &str, incident: &Incident, now: DateTime<Utc>) -> Alert {
    let lasted = now.signed_duration_since(incident.started_at).to_std().unwrap_or(Duration::ZERO);
    Alert {
        fleet: fleet.to_string(),
        plugin: plugin.to_string(),
        name: name.to_string(),
        severity: INCIDENT_SEVERITY.to_string(),
        summary: format!("plugin {plugin}: {} resolved", topic(name)),
        details: vec![format!("was: {}", incident.last_summary), format!("open for {}", human_duration(lasted))],
        state: AlertState::Resolved,
        starts_at: incident.started_at,
        ends_at: Some(now),
        labels: BTreeMap::new(),
    }
}

/// `PlugsyncDrift` → `drift`, `PlugsyncFlapping` → `flapping`, anything else as is.
fn topic(name: &str) -> String {
    match name.strip_prefix("Plugsync") {
        Some(rest) if !rest.is_empty() => rest.to_lowercase(),
        _ => name.to_string(),
    }
}

/// `plugin crm: 3 drift findings (env, image ×2)`: count, then the kinds sorted, with their
/// number when more than one.
fn findings_summary(plugin: &str, name: &str, findings: &[FindingSummary]) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for finding in findings {
        *kinds.entry(finding.kind.as_str()).or_default() += 1;
    }
    let kinds: Vec<String> =
        kinds.into_iter().map(|(kind, n)| if n > 1 { format!("{kind} ×{n}") } else { kind.to_string() }).collect();
    let noun = if findings.len() == 1 { "finding" } else { "findings" };
    let topic = if name == DRIFT { "drift".to_string() } else { topic(name) };
    format!("plugin {plugin}: {} {topic} {noun} ({})", findings.len(), kinds.join(", "))
}

/// `image on crm-1: runs plugsync/crm:1.0, Git says 1.1` (without `on …` when no instance).
fn finding_line(finding: &FindingSummary) -> String {
    if finding.instance.is_empty() {
        format!("{}: {}", finding.kind, finding.text)
    } else {
        format!("{} on {}: {}", finding.kind, finding.instance, finding.text)
    }
}

/// `2h 5m 3s`, `45s`, `0s`.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("valid time")
    }

    fn at(ms: i64) -> DateTime<Utc> {
        t0() + TimeDelta::milliseconds(ms)
    }

    fn finding(kind: &str, instance: &str) -> FindingSummary {
        FindingSummary { kind: kind.into(), instance: instance.into(), text: format!("{kind} differs") }
    }

    fn findings(n: usize) -> Vec<FindingSummary> {
        (0..n).map(|i| finding(["image", "replicas", "env"][i % 3], &format!("crm-{i}"))).collect()
    }

    /// One step of a table: (plugin, number of findings, milliseconds after t0) → the states
    /// of the alerts expected back.
    type Step = (&'static str, usize, i64, &'static [AlertState]);

    const F: AlertState = AlertState::Firing;
    const R: AlertState = AlertState::Resolved;

    #[test]
    fn incident_lifecycle_table() {
        // repeat interval 10 min = 600 000 ms
        let cases: &[(&str, &[Step])] = &[
            ("open", &[("crm", 1, 0, &[F])]),
            ("nothing to report, nothing sent", &[("crm", 0, 0, &[]), ("crm", 0, 1000, &[])]),
            ("burst of 50 in one second → one alert", &{
                let mut steps = [("crm", 0, 0, &[] as &[AlertState]); 50];
                for (i, step) in steps.iter_mut().enumerate() {
                    *step = ("crm", i + 1, i as i64 * 20, if i == 0 { &[F] } else { &[] });
                }
                steps
            }),
            (
                "reminder once the interval has passed, then quiet again",
                &[
                    ("crm", 2, 0, &[F]),
                    ("crm", 2, 599_999, &[]),
                    ("crm", 3, 600_000, &[F]),
                    ("crm", 3, 600_001, &[]),
                    ("crm", 3, 1_199_999, &[]),
                    ("crm", 1, 1_200_000, &[F]),
                ],
            ),
            ("resolve", &[("crm", 2, 0, &[F]), ("crm", 0, 5000, &[R]), ("crm", 0, 6000, &[])]),
            (
                "re-open after resolve",
                &[("crm", 2, 0, &[F]), ("crm", 0, 1000, &[R]), ("crm", 1, 2000, &[F]), ("crm", 1, 3000, &[])],
            ),
            (
                "two plugins are independent",
                &[
                    ("crm", 1, 0, &[F]),
                    ("billing", 1, 10, &[F]),
                    ("crm", 2, 20, &[]),
                    ("billing", 0, 30, &[R]),
                    ("crm", 2, 40, &[]),
                    ("billing", 1, 50, &[F]),
                    ("crm", 0, 60, &[R]),
                ],
            ),
            ("clock going backwards sends no reminder", &[("crm", 1, 0, &[F]), ("crm", 1, -900_000, &[])]),
        ];
        for (name, steps) in cases {
            let mut incidents = Incidents::new(Duration::from_secs(600));
            for (i, (plugin, n, ms, want)) in steps.iter().enumerate() {
                let got = incidents.observe("prod", plugin, DRIFT, &findings(*n), at(*ms));
                let states: Vec<AlertState> = got.iter().map(|a| a.state).collect();
                assert_eq!(&states, want, "case {name:?}, step {i}: {got:#?}");
                for alert in &got {
                    assert_eq!((alert.fleet.as_str(), alert.plugin.as_str()), ("prod", *plugin), "case {name:?}");
                }
            }
        }
    }

    #[test]
    fn firing_alert_names_plugin_counts_kinds_and_lists_each_finding() {
        let mut incidents = Incidents::new(Duration::from_secs(600));
        let got = incidents.observe("prod", "crm", DRIFT, &findings(4), t0());
        assert_eq!(got.len(), 1);
        let alert = &got[0];
        assert_eq!(alert.summary, "plugin crm: 4 drift findings (env, image ×2, replicas)");
        assert_eq!(
            alert.details,
            [
                "image on crm-0: image differs",
                "replicas on crm-1: replicas differs",
                "env on crm-2: env differs",
                "image on crm-3: image differs"
            ]
        );
        assert_eq!((alert.name.as_str(), alert.severity.as_str()), (DRIFT, "warning"));
        assert_eq!((alert.starts_at, alert.ends_at), (t0(), None));
        assert!(alert.labels.is_empty());

        let one = vec![FindingSummary { kind: "missing".into(), instance: String::new(), text: "no container".into() }];
        let got = Incidents::new(Duration::from_secs(1)).observe("prod", "crm", "PlugsyncFlapping", &one, t0());
        assert_eq!(got[0].summary, "plugin crm: 1 flapping finding (missing)");
        assert_eq!(got[0].details, ["missing: no container"]);
    }

    #[test]
    fn reminder_keeps_start_and_carries_current_findings_resolve_ends_now() {
        let mut incidents = Incidents::new(Duration::from_secs(60));
        incidents.observe("prod", "crm", DRIFT, &findings(1), t0());
        let reminder = incidents.observe("prod", "crm", DRIFT, &findings(3), at(60_000));
        assert_eq!(reminder.len(), 1);
        assert_eq!(reminder[0].starts_at, t0());
        assert_eq!(reminder[0].details.len(), 3);
        assert!(incidents.is_open("prod", "crm", DRIFT));
        assert_eq!(incidents.open().collect::<Vec<_>>(), [("prod", "crm", DRIFT)]);

        let resolved = incidents.observe("prod", "crm", DRIFT, &[], at(3_723_000));
        assert_eq!(resolved.len(), 1);
        let alert = &resolved[0];
        assert_eq!(alert.summary, "plugin crm: drift resolved");
        assert_eq!(alert.details, ["was: plugin crm: 3 drift findings (env, image, replicas)", "open for 1h 2m 3s"]);
        assert_eq!((alert.starts_at, alert.ends_at), (t0(), Some(at(3_723_000))));
        assert_eq!(alert.severity, "warning", "same labels as the firing alert, or Alertmanager keeps it active");
        assert!(!incidents.is_open("prod", "crm", DRIFT));
    }

    #[test]
    fn alert_names_and_fleets_are_separate_incidents() {
        let mut incidents = Incidents::new(Duration::from_secs(600));
        assert_eq!(incidents.observe("prod", "crm", DRIFT, &findings(1), t0()).len(), 1);
        assert_eq!(incidents.observe("prod", "crm", "PlugsyncFlapping", &findings(1), t0()).len(), 1);
        assert_eq!(incidents.observe("staging", "crm", DRIFT, &findings(1), t0()).len(), 1);
        assert_eq!(incidents.observe("prod", "crm", DRIFT, &findings(1), at(1)).len(), 0);
    }

    #[test]
    fn zero_repeat_interval_reminds_on_every_observation() {
        let mut incidents = Incidents::new(Duration::ZERO);
        for ms in 0..3 {
            assert_eq!(incidents.observe("prod", "crm", DRIFT, &findings(1), at(ms)).len(), 1);
        }
    }

    #[test]
    fn rollout_events_table() {
        let cases = [
            (
                RolloutEventKind::Started,
                "1.0.0 → 1.1.0 (Canary)",
                "info",
                R,
                Some(t0()),
                "plugin crm: rollout started: 1.0.0 → 1.1.0 (Canary)",
            ),
            (
                RolloutEventKind::Step,
                "canary 30% → 50%",
                "info",
                R,
                Some(t0()),
                "plugin crm: rollout step: canary 30% → 50%",
            ),
            (RolloutEventKind::Promoted, "", "info", R, Some(t0()), "plugin crm: rollout promoted"),
            (
                RolloutEventKind::RolledBack,
                "error rate 4.2% > 1%\np99 812 ms",
                "critical",
                F,
                Some(at(600_000)),
                "plugin crm: rollout rolled back: error rate 4.2% > 1%",
            ),
            (
                RolloutEventKind::Failed,
                "never ready",
                "critical",
                F,
                Some(at(600_000)),
                "plugin crm: rollout failed: never ready",
            ),
        ];
        for (kind, text, severity, state, ends_at, summary) in cases {
            let alert = rollout("prod", "crm", kind, text, t0());
            assert_eq!(alert.name, crate::alert::ROLLOUT, "{kind:?}");
            assert_eq!(alert.severity, severity, "{kind:?}");
            assert_eq!(alert.state, state, "{kind:?}");
            assert_eq!((alert.starts_at, alert.ends_at), (t0(), ends_at), "{kind:?}");
            assert_eq!(alert.summary, summary, "{kind:?}");
            assert_eq!(alert.labels.get("event").map(String::as_str), Some(kind.as_str()), "{kind:?}");
        }
        assert_eq!(rollout("prod", "crm", RolloutEventKind::RolledBack, "a\n\n b \n", t0()).details, ["b"]);
    }

    #[test]
    fn human_durations() {
        for (secs, want) in [(0, "0s"), (45, "45s"), (60, "1m"), (3600, "1h"), (3723, "1h 2m 3s"), (90_000, "25h")] {
            assert_eq!(human_duration(Duration::from_secs(secs)), want);
        }
    }
}
