//! Pieces both pages share: the frame (head, header with the API token form and the live
//! indicator, footer), state badges, versions per slot, instances, drift and a rollout's
//! progress. `assets/dashboard.js` re-renders the same cells from the live events, so the
//! words and classes here and there must match.
//!
//! Every string from a manifest, the status document or an event goes through [`esc`].

use super::assets;
use super::view::{lifecycle, phase};
use crate::events::{Phase, RolloutLive};
use crate::model::{Plugin, Strategy};
use crate::status::book::{DriftStatus, RolloutProgress};
use crate::status::PluginStatus;
use std::fmt::Write;

/// Text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    crate::catalogue::escape_html(text)
}

/// What the frame needs to know about the page.
pub struct Frame<'a> {
    pub title: &'a str,
    /// `fleet` or `plugin`: which live behaviour the script gives the page.
    pub page: &'static str,
    pub plugin: Option<&'a str>,
    pub fleet: &'a str,
}

pub fn open(out: &mut String, frame: &Frame) {
    let plugin = frame.plugin.map(|p| format!(" data-plugin=\"{}\"", esc(p))).unwrap_or_default();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · plugsync</title>\n<link rel=\"stylesheet\" href=\"{css}\">\n\
         <script defer src=\"{js}\"></script>\n</head>\n<body data-page=\"{page}\"{plugin}>\n\
         <header class=\"top\"><a class=\"brand\" href=\"/\">plugsync</a>\
         <a class=\"fleet\" href=\"/\">fleet <strong>{fleet}</strong></a>\
         <span id=\"live-state\" class=\"live connecting\" title=\"server-sent events from /api/v1/events\">connecting…</span>\
         <form id=\"token-form\" class=\"token\" autocomplete=\"off\">\
         <label for=\"token-input\">API token</label>\
         <input id=\"token-input\" type=\"password\" placeholder=\"paste the daemon's API token\" autocomplete=\"off\">\
         <button type=\"submit\" id=\"token-save\">Use token</button>\
         <button type=\"button\" id=\"token-forget\" hidden>Forget</button>\
         <span id=\"token-state\" class=\"token-missing\">no API token: actions will be refused</span></form>\
         </header>\n<main>\n",
        title = esc(frame.title),
        css = assets::CSS_URL.as_str(),
        js = assets::JS_URL.as_str(),
        page = frame.page,
        fleet = esc(frame.fleet),
    );
}

pub fn close(out: &mut String) {
    out.push_str(
        "</main>\n<footer>Served by the plugsync daemon. Reads are open; actions need the API token \
         (kept in this tab only, never stored by the page elsewhere).</footer>\n</body>\n</html>\n",
    );
}

/// `<span class="badge state-active">ACTIVE</span>`.
pub fn state_badge(state: &str) -> String {
    format!("<span class=\"badge state-{}\">{}</span>", esc(&state.to_ascii_lowercase()), esc(state))
}

pub fn status_state(status: Option<&PluginStatus>) -> &'static str {
    status.map_or("NONE", |s| lifecycle(s.state))
}

/// One line per slot: `stable 1.0.0 ×2`.
pub fn slots_html(status: Option<&PluginStatus>) -> String {
    let Some(s) = status.filter(|s| !s.slots.is_empty()) else { return "<span class=\"none\">none</span>".into() };
    let lines: Vec<String> = s
        .slots
        .iter()
        .map(|(slot, v)| {
            format!(
                "<span class=\"slot slot-{slot}\">{slot}</span> {} ×{}",
                esc(&v.version),
                v.instances,
                slot = esc(slot)
            )
        })
        .collect();
    lines.join("<br>")
}

/// Instances running (all slots) against the replicas Git asks for.
pub fn instances(status: Option<&PluginStatus>, plugin: Option<&Plugin>) -> (u32, Option<u32>) {
    let running = status.map_or(0, |s| s.slots.values().map(|v| v.instances).sum());
    (running, plugin.map(|p| p.manifest.replicas))
}

pub fn instances_html(status: Option<&PluginStatus>, plugin: Option<&Plugin>) -> String {
    match instances(status, plugin) {
        (running, Some(desired)) => {
            let class = if running < desired { "short" } else { "ok" };
            format!("<span class=\"{class}\">{running}/{desired}</span>")
        }
        (running, None) => format!("<span class=\"short\">{running}/–</span>"),
    }
}

/// `none`, `open: 2 findings`, `resolved`.
pub fn drift_html(drift: Option<&DriftStatus>) -> String {
    match drift {
        Some(d) if d.open => {
            let n = d.findings.len();
            let title = esc(&d.findings.join("\n"));
            format!(
                "<span class=\"badge drift-open\" title=\"{title}\">open: {n} finding{}</span>",
                if n == 1 { "" } else { "s" }
            )
        }
        Some(_) => "<span class=\"badge drift-resolved\">resolved</span>".into(),
        None => "<span class=\"none\">none</span>".into(),
    }
}

/// The strategy as a person reads it.
pub fn strategy_name(plugin: Option<&Plugin>, status: Option<&PluginStatus>) -> String {
    match plugin {
        Some(p) if p.canary.is_some() => "fixed canary".into(),
        Some(p) => p.strategy.to_string(),
        None => status.and_then(|s| s.strategy.clone()).unwrap_or_else(|| "–".into()),
    }
}

/// How far a rollout is: the weight it serves (steps), the share of its course (A/B), and a
/// label. The script computes the same from the same event.
pub struct Progress {
    pub weight: Option<f64>,
    pub percent: Option<f64>,
    pub label: String,
}

/// The A/B test's duration in ms, as the strategy applies it (60 s when unset).
pub fn ab_duration_ms(plugin: Option<&Plugin>) -> Option<u64> {
    let p = plugin.filter(|p| p.strategy == Strategy::ABTesting)?;
    let duration = p.policy.ab_config.as_ref().and_then(|c| c.test_duration).map(|d| d.0);
    Some(duration.unwrap_or(std::time::Duration::from_secs(60)).as_millis() as u64)
}

pub fn progress(live: &RolloutLive, ab_ms: Option<u64>) -> Progress {
    let (weight, percent, head) = if !live.steps.is_empty() {
        let n = live.steps.len();
        let index = live.step.min(n - 1);
        let weight = if live.phase == Phase::Converged { 100.0 } else { live.steps[index] };
        let mut head = match live.phase {
            Phase::Converged => format!("100 % · all {n} steps"),
            _ => format!("{} % · step {} of {n}", number(weight), index + 1),
        };
        if let (Some(start), Some(period), Phase::Progressing) = (live.step_started_ms, live.step_period_ms, live.phase)
        {
            let elapsed = live.at_ms.saturating_sub(start).min(period);
            head.push_str(&format!(" · {} of {}", seconds(elapsed), seconds(period)));
        }
        (Some(weight), Some(weight), head)
    } else if live.strategy == Strategy::ABTesting.to_string() {
        // The test runs from when B joined traffic (the step's start).
        let start = live.step_started_ms.or(live.started_ms).unwrap_or(live.at_ms);
        let elapsed = live.at_ms.saturating_sub(start);
        let percent = ab_ms.filter(|d| *d > 0).map(|d| (elapsed as f64 * 100.0 / d as f64).min(100.0));
        let of = ab_ms.map(|d| format!(" of {}", seconds(d))).unwrap_or_default();
        (None, percent, format!("A/B test · {}{of}", seconds(elapsed)))
    } else {
        (None, None, live.strategy.clone())
    };
    Progress { weight, percent, label: format!("{head} · {}", phase_words(live.phase)) }
}

pub fn phase_words(p: Phase) -> &'static str {
    match p {
        Phase::Progressing => "progressing",
        Phase::Paused => "paused",
        Phase::Converged => "converged",
        Phase::RolledBack => "rolled back",
        Phase::Failed => "failed",
    }
}

/// `<progress>`: determinate with a value, indeterminate without.
pub fn progress_bar(percent: Option<f64>) -> String {
    match percent {
        Some(p) => format!("<progress max=\"100\" value=\"{}\"></progress>", number(p.clamp(0.0, 100.0))),
        None => "<progress max=\"100\"></progress>".into(),
    }
}

/// The fleet table's rollout cell: its attributes (`data-weight`, `data-phase`) and content.
pub fn rollout_cell(live: Option<&RolloutLive>, persisted: Option<&RolloutProgress>, ab_ms: Option<u64>) -> String {
    match (live, persisted) {
        (Some(live), _) if !live.phase.is_final() => {
            let p = progress(live, ab_ms);
            let weight = p.weight.map(|w| format!(" data-weight=\"{}\"", number(w))).unwrap_or_default();
            format!(
                "<td data-cell=\"rollout\" data-phase=\"{}\"{weight} title=\"{}\">{}<span class=\"rl\">{}</span></td>",
                phase(live.phase),
                esc(&live.note),
                progress_bar(p.percent),
                esc(&p.label)
            )
        }
        (_, Some(r)) => {
            let what = match &r.paused {
                Some(why) => format!("paused at step {}: {why}", r.step + 1),
                None => format!("at step {}, resuming", r.step + 1),
            };
            format!("<td data-cell=\"rollout\" data-phase=\"recorded\"><span class=\"rl\">{}</span></td>", esc(&what))
        }
        (Some(live), None) => format!(
            "<td data-cell=\"rollout\" data-phase=\"{}\"><span class=\"last outcome-{}\">last: {}</span></td>",
            phase(live.phase),
            phase(live.phase),
            phase_words(live.phase)
        ),
        (None, None) => "<td data-cell=\"rollout\"><span class=\"none\">–</span></td>".into(),
    }
}

/// A time from the status document, turned into "12 s ago" by the script.
pub fn time(at: &str) -> String {
    format!("<time datetime=\"{0}\" data-ago title=\"{0}\">{0}</time>", esc(at))
}

/// A time in Unix epoch ms.
pub fn time_ms(ms: u64) -> String {
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    time(&at)
}

/// `12 s`, `3 min 4 s`.
pub fn seconds(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// A number as people write it, at most two decimals.
pub fn number(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    format!("{rounded}")
}

/// The first 12 characters of a revision or hash, the whole in the title.
pub fn short(hash: &str) -> String {
    let cut: String = hash.chars().take(12).collect();
    format!("<code title=\"{}\">{}</code>", esc(hash), esc(&cut))
}
