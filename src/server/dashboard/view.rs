//! What a dashboard page is rendered from, read once per request: the fleet as the daemon last
//! loaded it, the status document of the last pass, the latest rollout of each plugin from the
//! event bus, and the time. Everything here came from Git or the status branch: the pages
//! escape it.

use crate::events::{Phase, RolloutLive};
use crate::model::config::SyncWindow;
use crate::model::windows::{next_scheduled, parse_zone, rollouts_allowed};
use crate::model::{Fleet, Plugin};
use crate::status::{Lifecycle, PluginStatus};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub struct View<'a> {
    /// `None` before the daemon's first load.
    pub fleet: Option<&'a Fleet>,
    /// The status document (`GET /api/v1/status`).
    pub doc: &'a Value,
    /// The document's plugins, typed; entries that do not read as a status are left out.
    pub statuses: BTreeMap<String, PluginStatus>,
    pub rollouts: BTreeMap<String, RolloutLive>,
    pub now: DateTime<Utc>,
    /// The status branch's last commits, newest first (empty until the daemon read them).
    pub history: &'a [crate::status::history::HistoryEntry],
}

impl<'a> View<'a> {
    pub fn new(
        fleet: Option<&'a Fleet>,
        doc: &'a Value,
        rollouts: BTreeMap<String, RolloutLive>,
        now: DateTime<Utc>,
    ) -> View<'a> {
        let statuses = match doc.get("plugins") {
            Some(Value::Object(map)) => {
                map.iter().filter_map(|(id, v)| Some((id.clone(), PluginStatus::deserialize(v).ok()?))).collect()
            }
            _ => BTreeMap::new(),
        };
        View { fleet, doc, statuses, rollouts, now, history: &[] }
    }

    /// The fleet's name: from Git, else from the status document.
    pub fn fleet_name(&self) -> &str {
        match self.fleet {
            Some(f) => &f.config.fleet,
            None => self.text("fleet").unwrap_or("(not loaded yet)"),
        }
    }

    /// A top-level string of the status document (`revision`, `at`).
    pub fn text(&self, key: &str) -> Option<&str> {
        self.doc.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// Problems with the revision itself, as the last pass reported them.
    pub fn errors(&self) -> Vec<&str> {
        self.doc.get("errors").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect()
    }

    /// `(plugin, reason)` of every change the last pass held (windows, failed rollouts, …).
    pub fn held(&self) -> Vec<(&str, &str)> {
        let held = self.doc.get("plan").and_then(|p| p.get("held")).and_then(Value::as_array);
        held.into_iter()
            .flatten()
            .filter_map(|h| Some((h.get("plugin")?.as_str()?, h.get("reason")?.as_str()?)))
            .collect()
    }

    /// How many changes the last pass's plan had.
    pub fn changes(&self) -> usize {
        self.doc.get("plan").and_then(|p| p.get("changes")).and_then(Value::as_array).map_or(0, Vec::len)
    }

    /// Every plugin Git declares or the status knows (one that left Git may still run).
    pub fn ids(&self) -> BTreeSet<&str> {
        let mut ids: BTreeSet<&str> = self.statuses.keys().map(String::as_str).collect();
        if let Some(fleet) = self.fleet {
            ids.extend(fleet.plugins.keys().map(String::as_str));
        }
        ids
    }

    pub fn plugin(&self, id: &str) -> Option<&'a Plugin> {
        self.fleet.and_then(|f| f.plugins.get(id))
    }

    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.now.timestamp_millis()).unwrap_or(0)
    }

    /// Plugins per lifecycle state, for the summary line.
    pub fn state_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for s in self.statuses.values() {
            *counts.entry(lifecycle(s.state)).or_default() += 1;
        }
        counts
    }

    /// Rollouts in flight (progressing or paused).
    pub fn in_flight(&self) -> usize {
        self.rollouts.values().filter(|r| !r.phase.is_final()).count()
    }
}

/// The lifecycle as the status branch writes it (`ACTIVE`, `ROLLED_BACK`).
pub fn lifecycle(state: Lifecycle) -> &'static str {
    match state {
        Lifecycle::Registered => "REGISTERED",
        Lifecycle::Installing => "INSTALLING",
        Lifecycle::Installed => "INSTALLED",
        Lifecycle::Active => "ACTIVE",
        Lifecycle::Disabled => "DISABLED",
        Lifecycle::Uninstalling => "UNINSTALLING",
        Lifecycle::Uninstalled => "UNINSTALLED",
        Lifecycle::Failed => "FAILED",
        Lifecycle::RolledBack => "ROLLED_BACK",
    }
}

/// The phase as the events say it (`progressing`, `rolledBack`).
pub fn phase(phase: Phase) -> &'static str {
    match phase {
        Phase::Progressing => "progressing",
        Phase::Paused => "paused",
        Phase::Converged => "converged",
        Phase::RolledBack => "rolledBack",
        Phase::Failed => "failed",
    }
}

/// The sync windows in words, for the whole fleet (`plugin: None`: windows naming no plugin)
/// or one plugin: whether rollouts may happen now and the next window to open. `None` when
/// the fleet has no window.
pub fn windows(fleet: &Fleet, plugin: Option<&str>, now: DateTime<Utc>) -> Option<String> {
    let all = &fleet.config.windows;
    let windows: Vec<SyncWindow> = match plugin {
        Some(_) => all.clone(),
        None => all.iter().filter(|w| w.plugins.is_empty()).cloned().collect(),
    };
    if all.is_empty() {
        return None;
    }
    let now_said = match rollouts_allowed(&windows, plugin.unwrap_or(""), now) {
        Ok(d) if d.allowed => format!("rollouts allowed ({})", d.reason),
        Ok(d) => format!("rollouts held: {}", d.reason),
        Err(e) => format!("windows unreadable: {e}"),
    };
    let next = windows
        .iter()
        .filter(|w| plugin.is_none_or(|p| w.plugins.is_empty() || w.plugins.iter().any(|n| n == p || n.contains('*'))))
        .filter_map(|w| {
            let zone = parse_zone(w.time_zone.as_deref(), &w.schedule).ok()?;
            Some((next_scheduled(&w.schedule, zone, now).ok()?, w))
        })
        .min_by_key(|(t, _)| *t);
    let specific = all.len() - all.iter().filter(|w| w.plugins.is_empty()).count();
    let mut out = now_said;
    if let Some((t, w)) = next {
        let kind = match w.kind {
            crate::model::config::WindowKind::Allow => "allow",
            crate::model::config::WindowKind::Deny => "deny",
        };
        out.push_str(&format!(
            "; next: {kind} window '{}' for {} opens at {}",
            w.schedule,
            w.duration,
            t.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if plugin.is_none() && specific > 0 {
        out.push_str(&format!("; {specific} more window(s) for named plugins"));
    }
    Some(out)
}

/// The fleet's `schedule` and its next run, if it has one.
pub fn schedule(fleet: &Fleet, now: DateTime<Utc>) -> Option<String> {
    let cron = fleet.config.schedule.as_deref()?;
    let next = parse_zone(fleet.config.time_zone.as_deref(), cron)
        .and_then(|zone| next_scheduled(cron, zone, now))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    Some(match next {
        Ok(t) => format!("sync schedule '{cron}', next at {t}"),
        Err(e) => format!("sync schedule '{cron}' unreadable: {e}"),
    })
}
