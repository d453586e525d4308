//! `plugsync get plugins [-o table|wide|json]`: the fleet as the daemon last reconciled it
//! (`GET /api/v1/status`), with each rollout's step and weight from the latest `rollout`
//! events the event stream replays to a new subscriber (the status document has the step but
//! not the strategy's weights; a rollout running in the pass under way is newer than it).
//!
//! The table's columns are as wide as their widest cell (no table crate: a dozen lines).

use super::api::{lifecycle_word, newer_rollout, number, Api, ApiError, DaemonEvent, Phase, RolloutEvent, StatusDoc};
use super::rollout_status::versions;
use super::sse::EventStream;
use plugsync::status::PluginStatus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Resource {
    Plugins,
}

/// One plugin as `get plugins` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub name: String,
    /// Running versions per slot, stable first: `1.2.0 / canary 1.3.0`.
    pub version: String,
    pub slots: BTreeMap<String, String>,
    pub state: String,
    pub strategy: Option<String>,
    /// Running instances, all slots.
    pub instances: u32,
    /// Open drift findings (`None` when there is no open drift).
    pub drift: Option<usize>,
    /// `step 2/3 50%`, `paused: …`, or `None` with no rollout in flight.
    pub rollout: Option<String>,
    pub revision: Option<String>,
    pub last_change: Option<String>,
    pub error: Option<String>,
}

/// The ROLLOUT cell: the newest of the rollout event and the status's rollout in flight.
fn rollout_cell(doc: &StatusDoc, p: &PluginStatus, event: Option<&RolloutEvent>) -> Option<String> {
    if let Some(ev) = newer_rollout(doc, event) {
        match ev.phase {
            Phase::Progressing => {
                let label = ev.step_label();
                return Some(if label.is_empty() { "progressing".to_string() } else { label });
            }
            Phase::Paused => return Some(format!("paused: {}", ev.note)),
            _ => {}
        }
    }
    let r = p.rollout.as_ref()?;
    if let Some(why) = &r.paused {
        return Some(format!("paused: {why}"));
    }
    let steps = event.filter(|e| !e.target.is_empty() && r.target.starts_with(&e.target)).map(|e| &e.steps);
    Some(match steps.and_then(|s| s.get(r.step).map(|w| (s.len(), *w))) {
        Some((n, weight)) => format!("step {}/{n} {}%", r.step + 1, number(weight)),
        None => format!("step {}", r.step + 1),
    })
}

pub fn rows(doc: &StatusDoc, events: &BTreeMap<String, RolloutEvent>) -> Vec<Row> {
    doc.plugins
        .iter()
        .map(|(name, p)| Row {
            name: name.clone(),
            version: versions(p),
            slots: p.slots.iter().map(|(slot, s)| (slot.clone(), s.version.clone())).collect(),
            state: lifecycle_word(p.state),
            strategy: p.strategy.clone(),
            instances: p.slots.values().map(|s| s.instances).sum(),
            drift: p.drift.as_ref().filter(|d| d.open).map(|d| d.findings.len()),
            rollout: rollout_cell(doc, p, events.get(name)),
            revision: p.revision.as_deref().map(|r| plugsync::model::short_revision(r).to_string()),
            last_change: p.last_change.as_ref().map(|c| format!("{} {} {}", c.at, c.kind, c.result)),
            error: p.last_error.clone().or_else(|| p.failed.as_ref().map(|f| f.reason.clone())),
        })
        .collect()
}

/// The rows as an aligned table (`wide` adds REVISION, LAST CHANGE and ERROR).
pub fn table(rows: &[Row], wide: bool) -> String {
    let mut header = vec!["NAME", "VERSION", "STATE", "STRATEGY", "INSTANCES", "DRIFT", "ROLLOUT"];
    if wide {
        header.extend(["REVISION", "LAST CHANGE", "ERROR"]);
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let mut line = vec![
            r.name.clone(),
            r.version.clone(),
            r.state.clone(),
            dash(&r.strategy),
            r.instances.to_string(),
            r.drift.map_or_else(|| "-".to_string(), |n| format!("{n} open")),
            dash(&r.rollout),
        ];
        if wide {
            line.extend([dash(&r.revision), dash(&r.last_change), dash(&r.error)]);
        }
        cells.push(line.into_iter().map(|c| c.replace(['\n', '\r'], " ")).collect());
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|i| cells.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in &cells {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < line.len() {
                text.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The latest rollout event of every plugin (and a newer status) from the stream's replay.
/// Best effort: without it the ROLLOUT column has the step but not its weight.
async fn replayed(api: &Api, doc: &mut StatusDoc) -> BTreeMap<String, RolloutEvent> {
    let mut events = BTreeMap::new();
    let Ok(mut stream) = EventStream::connect(api, None).await else { return events };
    let Ok(backlog) = stream.backlog(Duration::from_millis(400), Duration::from_secs(5)).await else {
        return events;
    };
    for e in backlog {
        match e {
            DaemonEvent::Status(newer) if newer.at_ms() >= doc.at_ms() => *doc = *newer,
            DaemonEvent::Rollout(r) => {
                events.insert(r.plugin.clone(), *r);
            }
            _ => {}
        }
    }
    events
}

/// `plugsync get plugins`.
pub async fn run(server: &str, output: Output) -> Result<String, ApiError> {
    let api = Api::new(server);
    let mut doc = api.status().await?;
    let events = replayed(&api, &mut doc).await;
    let rows = rows(&doc, &events);
    Ok(match output {
        Output::Json => serde_json::to_string_pretty(&rows).map(|s| s + "\n").unwrap_or_default(),
        Output::Table => table(&rows, false),
        Output::Wide => table(&rows, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, version: &str, rollout: Option<&str>) -> Row {
        Row {
            name: name.into(),
            version: version.into(),
            slots: BTreeMap::new(),
            state: "ACTIVE".into(),
            strategy: Some("Canary".into()),
            instances: 4,
            drift: None,
            rollout: rollout.map(String::from),
            revision: Some("abc1234".into()),
            last_change: None,
            error: None,
        }
    }

    fn event(step: usize, phase: Phase, at_ms: u64) -> RolloutEvent {
        let json = serde_json::json!({"plugin": "crm", "target": "abc123", "step": step, "steps": [25.0, 50.0, 100.0],
            "phase": phase, "note": "error rate 30 %", "atMs": at_ms});
        serde_json::from_value(json).expect("a rollout event")
    }

    #[test]
    fn the_rollout_cell_takes_the_newest_of_event_and_status() {
        let doc = StatusDoc { at: "2026-01-01T00:00:10Z".into(), ..StatusDoc::default() };
        let at = doc.at_ms().unwrap() as u64;
        let status: PluginStatus =
            serde_json::from_value(serde_json::json!({"plugin": "crm", "state": "ACTIVE"})).expect("status");
        let in_flight = |paused: Option<&str>| {
            let mut p = status.clone();
            p.rollout = Some(plugsync::status::book::RolloutProgress {
                target: "abc123def".into(),
                step: 0,
                paused: paused.map(String::from),
                promoted: false,
                note: None,
            });
            p
        };
        let newer = event(1, Phase::Progressing, at + 5_000);
        let older_final = event(3, Phase::Converged, at - 5_000);
        let cases = [
            ("nothing", &status, None, None),
            ("running in the pass under way", &status, Some(&newer), Some("step 2/3 50%")),
            ("an old converged rollout", &status, Some(&older_final), None),
            ("paused, per the status", &in_flight(Some("error rate")), Some(&older_final), Some("paused: error rate")),
            ("in flight, weights from the event", &in_flight(None), Some(&older_final), Some("step 1/3 25%")),
            ("in flight, no event", &in_flight(None), None, Some("step 1")),
            ("a newer paused event", &status, Some(&event(0, Phase::Paused, at + 1)), Some("paused: error rate 30 %")),
        ];
        for (name, p, ev, want) in cases {
            assert_eq!(rollout_cell(&doc, p, ev).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn columns_line_up() {
        let rows = [row("crm", "1.2.0 / canary 1.3.0", Some("step 2/3 50%")), row("notifier-service", "2.0.0", None)];
        let text = table(&rows, false);
        let want = "\
NAME               VERSION                STATE    STRATEGY   INSTANCES   DRIFT   ROLLOUT
crm                1.2.0 / canary 1.3.0   ACTIVE   Canary     4           -       step 2/3 50%
notifier-service   2.0.0                  ACTIVE   Canary     4           -       -
";
        assert_eq!(text, want);
    }

    #[test]
    fn wide_adds_revision_last_change_and_error() {
        let mut r = row("crm", "1.1.0", None);
        r.error = Some("canary at 25 %: error rate 30 % > 5 %\nsecond line".into());
        r.drift = Some(2);
        let text = table(&[r], true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("REVISION   LAST CHANGE   ERROR"), "{text}");
        assert!(lines[1].contains("2 open"), "{text}");
        assert!(
            lines[1].ends_with("abc1234    -             canary at 25 %: error rate 30 % > 5 % second line"),
            "{text}"
        );
        // Every column starts where its header does.
        for header in ["VERSION", "STATE", "REVISION", "ERROR"] {
            let at = lines[0].find(header).unwrap();
            assert_ne!(lines[1].as_bytes()[at - 1], b'-', "{header} column misaligned:\n{text}");
        }
    }

    #[test]
    fn non_ascii_cells_are_padded_by_characters() {
        let text = table(&[row("crm", "1.0.0", Some("paused: error rate 30 % → 5 %")), row("b", "1", None)], false);
        let widths: Vec<usize> =
            text.lines().map(|l| l.find("ACTIVE").map(|i| l[..i].chars().count()).unwrap_or(0)).collect();
        assert_eq!(widths[1], widths[2], "{text}");
    }
}
