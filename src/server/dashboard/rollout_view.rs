//! A plugin's rollout on its page: phase, note and progress, the strategy's steps (done,
//! current, to come), the traffic split behind the router, each watched slot's verdict with the
//! metric values it was judged on, and for an A/B test the A-versus-B table per decision
//! metric with the comparison so far.

use super::render::{self, esc};
use super::view::phase;
use crate::events::{RolloutLive, SlotVerdict};
use crate::model::{Plugin, Strategy};
use crate::plan::Slot;
use crate::status::book::RolloutProgress;
use std::fmt::Write;

pub fn section(
    out: &mut String,
    live: Option<&RolloutLive>,
    persisted: Option<&RolloutProgress>,
    plugin: Option<&Plugin>,
) {
    let title = match live {
        Some(l) if l.phase.is_final() => "Last rollout",
        _ => "Rollout",
    };
    let _ = write!(out, "<section class=\"rollout\" id=\"rollout-now\"><h2>{title}</h2>");
    match (live, persisted) {
        (Some(live), _) if persisted.is_none() || !live.phase.is_final() => details(out, live, plugin),
        (_, Some(r)) => recorded(out, r),
        (Some(live), None) => details(out, live, plugin),
        (None, None) => out.push_str("<p class=\"none\">No rollout in flight since the daemon started.</p>"),
    }
    out.push_str("</section>\n");
}

/// A rollout the status branch records but no step has reported yet (the daemon restarted).
fn recorded(out: &mut String, r: &RolloutProgress) {
    let _ = write!(
        out,
        "<p data-phase=\"recorded\">Recorded on the status branch: step {} towards {}{}{}.</p>",
        r.step + 1,
        render::short(&r.target),
        r.paused.as_ref().map(|p| format!(", paused: {}", esc(p))).unwrap_or_default(),
        r.note.as_ref().map(|n| format!(" ({})", esc(n))).unwrap_or_default(),
    );
}

fn details(out: &mut String, live: &RolloutLive, plugin: Option<&Plugin>) {
    let p = render::progress(live, render::ab_duration_ms(plugin));
    let weight = p.weight.map(|w| format!(" data-weight=\"{}\"", render::number(w))).unwrap_or_default();
    let _ = write!(
        out,
        "<div class=\"rollout-head\" data-phase=\"{ph}\"{weight}><span class=\"badge phase-{ph}\">{words}</span> \
         <strong>{strategy}</strong> to <strong>{version}</strong> (spec {target}), slot {slot}; started {started}, \
         last step {at}</div>",
        ph = phase(live.phase),
        words = render::phase_words(live.phase),
        strategy = esc(&live.strategy),
        version = esc(&live.version),
        target = render::short(&live.target),
        slot = live.slot,
        started = live.started_ms.or(live.step_started_ms).map(render::time_ms).unwrap_or_else(|| "–".into()),
        at = render::time_ms(live.at_ms),
    );
    let _ = write!(
        out,
        "<div class=\"progress-line\">{}<span class=\"rl\">{}</span></div><p class=\"note\">{}</p>",
        render::progress_bar(p.percent),
        esc(&p.label),
        esc(&live.note)
    );
    steps(out, live);
    if !live.shares.is_empty() {
        let shares: Vec<String> =
            live.shares.iter().map(|s| format!("{} {} %", s.slot, render::number(s.percent))).collect();
        let _ = write!(out, "<p>Traffic behind the router: {}</p>", shares.join(" · "));
    }
    verdicts(out, live);
    if live.ab.is_some() || live.strategy == Strategy::ABTesting.to_string() {
        ab_table(out, live, plugin);
    }
}

fn steps(out: &mut String, live: &RolloutLive) {
    if live.steps.is_empty() {
        return;
    }
    out.push_str("<ol class=\"steps\">");
    let converged = live.phase == crate::events::Phase::Converged;
    for (i, weight) in live.steps.iter().enumerate() {
        let class = match i.cmp(&live.step) {
            _ if converged => "done",
            std::cmp::Ordering::Less => "done",
            std::cmp::Ordering::Equal => "current",
            std::cmp::Ordering::Greater => "pending",
        };
        let _ = write!(out, "<li class=\"{class}\">{} %</li>", render::number(*weight));
    }
    out.push_str("</ol>");
}

fn opt(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{}{unit}", render::number(v)))
}

fn verdicts(out: &mut String, live: &RolloutLive) {
    if live.verdicts.is_empty() {
        out.push_str("<p class=\"none\">No analysis verdict yet in this step.</p>");
        return;
    }
    out.push_str(
        "<table class=\"verdicts\"><thead><tr><th>Slot</th><th>Verdict</th><th>Requests</th><th>Error rate</th>\
         <th>Success rate</th><th>p99</th><th>Throughput</th><th>Why</th></tr></thead><tbody>",
    );
    for (slot, v) in &live.verdicts {
        let _ = write!(
            out,
            "<tr data-slot=\"{slot}\"><td><span class=\"slot slot-{slot}\">{slot}</span></td>\
             <td><span class=\"badge verdict-{verdict}\">{verdict}</span></td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td>{}</td></tr>",
            opt(v.requests, ""),
            opt(v.error_rate, " %"),
            opt(v.success_rate, " %"),
            opt(v.p99_ms, " ms"),
            opt(v.throughput, " req/s"),
            esc(&v.text),
            verdict = esc(v.verdict),
        );
    }
    out.push_str("</tbody></table>");
}

/// A decision metric's value in a slot's verdict, its unit, and whether lower is better;
/// `None` for a metric the built-in analysis does not measure (a Prometheus query).
fn metric(v: Option<&SlotVerdict>, name: &str) -> Option<(Option<f64>, &'static str, bool)> {
    let pick = |f: fn(&SlotVerdict) -> Option<f64>| v.and_then(f);
    Some(match name {
        "latency" | "p99" | "latencyP99" => (pick(|v| v.p99_ms), " ms", true),
        "errorRate" => (pick(|v| v.error_rate), " %", true),
        "successRate" => (pick(|v| v.success_rate), " %", false),
        "throughput" => (pick(|v| v.throughput), " req/s", false),
        "requests" => (pick(|v| v.requests), "", false),
        _ => return None,
    })
}

fn ab_table(out: &mut String, live: &RolloutLive, plugin: Option<&Plugin>) {
    let b = live.verdicts.get(&Slot::B);
    let a_slot = live.verdicts.keys().find(|s| **s != Slot::B).copied().unwrap_or(Slot::Stable);
    let a = live.verdicts.get(&a_slot);
    let mut names: Vec<String> = plugin
        .and_then(|p| p.policy.ab_config.as_ref())
        .map(|c| c.decision_metrics.clone())
        .unwrap_or_else(|| vec!["errorRate".into(), "latency".into()]);
    names.push("requests".into());
    let _ = write!(
        out,
        "<h3>A versus B</h3><table class=\"ab\" data-ab><thead><tr><th>Metric</th><th>A ({a_slot})</th><th>B</th>\
         <th>B against A</th><th>Better is</th></tr></thead><tbody>"
    );
    for name in &names {
        let decision = name != "requests";
        let Some((va, unit, lower)) = metric(a, name) else {
            let _ = write!(
                out,
                "<tr data-metric=\"{0}\"><td>{0}</td><td colspan=\"4\">from Prometheus: see the comparison below</td></tr>",
                esc(name)
            );
            continue;
        };
        let vb = metric(b, name).and_then(|m| m.0);
        let diff = match (va, vb) {
            (Some(x), Some(y)) if x.abs() > f64::EPSILON => {
                let relative = (y - x) / x.abs() * 100.0;
                format!("{}{} %", if relative > 0.0 { "+" } else { "" }, render::number(relative))
            }
            (Some(_), Some(_)) => "–".into(),
            _ => "no data yet".into(),
        };
        let better = match (decision, lower) {
            (false, _) => "(not a decision metric)",
            (true, true) => "lower",
            (true, false) => "higher",
        };
        let _ = write!(
            out,
            "<tr data-metric=\"{n}\"><td>{n}</td><td class=\"num\" data-variant=\"a\">{}</td>\
             <td class=\"num\" data-variant=\"b\">{}</td><td class=\"num\">{diff}</td><td>{better}</td></tr>",
            opt(va, unit),
            opt(vb, unit),
            n = esc(name),
        );
    }
    out.push_str("</tbody></table>");
    match &live.ab {
        Some(ab) => {
            let winner = match (&ab.winner, ab.inconclusive) {
                (_, true) => "inconclusive so far".to_string(),
                (Some(w), false) => format!("{w} ahead"),
                (None, false) => "no clear winner so far".to_string(),
            };
            let _ = write!(out, "<p class=\"ab-summary\"><strong>{}</strong>: {}</p>", esc(&winner), esc(&ab.summary));
        }
        None => out.push_str("<p class=\"ab-summary none\">No comparison yet: both variants need requests.</p>"),
    }
}
