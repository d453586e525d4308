//! `GET /plugins/{id}`: one plugin. The rollout actions (promote, abort, pause, resume, retry,
//! reconcile now), the live part (what runs per slot, state, revision and spec hashes, last
//! change, failed rollout, drift, sync windows, and the rollout with its steps, verdicts and
//! A/B table), the reconciler's narration for it, and the catalogue's sections from the
//! manifest (metadata, API paths, resources, image, policy in words, dependencies both ways with
//! their graph), and the plugin's history on the status branch, each commit linked to its
//! page. The live part is also served alone (`/plugins/{id}/live`) for the script to
//! swap in when an event concerns the plugin.

use super::render::{self, esc, Frame};
use super::rollout_view;
use super::view::{self, View};
use crate::status::PluginStatus;
use std::fmt::Write;

const ACTIONS: [(&str, &str); 5] =
    [("promote", "Promote"), ("pause", "Pause"), ("resume", "Resume"), ("abort", "Abort"), ("retry", "Retry")];

/// The whole page; `None` when neither Git nor the status knows `id`.
pub fn render(view: &View, id: &str) -> Option<String> {
    let plugin = view.plugin(id);
    let status = view.statuses.get(id);
    if plugin.is_none() && status.is_none() {
        return None;
    }
    let name = plugin.and_then(|p| p.manifest.name.as_deref()).filter(|n| *n != id);
    let title = name.map_or_else(|| id.to_string(), |n| format!("{n} ({id})"));
    let mut out = String::with_capacity(32 * 1024);
    render::open(&mut out, &Frame { title: &title, page: "plugin", plugin: Some(id), fleet: view.fleet_name() });
    let _ = write!(
        out,
        "<nav class=\"crumbs\"><a href=\"/\">Fleet {}</a> › {}</nav><h1>{}</h1>",
        esc(view.fleet_name()),
        esc(id),
        esc(&title)
    );
    if let Some(description) = plugin.and_then(|p| p.manifest.description.as_deref()) {
        let _ = write!(out, "<p class=\"lead\">{}</p>", esc(description));
    }
    actions(&mut out, id);
    let _ = write!(out, "<div id=\"live\" data-live-url=\"/plugins/{}/live\">", esc(id));
    out.push_str(&live(view, id));
    out.push_str("</div>\n");
    out.push_str(
        "<section class=\"narration\"><h2>Narration</h2><p class=\"hint\">What the reconciler says about this \
         plugin, live.</p><ol id=\"log\"></ol></section>\n",
    );
    // Swapped for the new manifest's by the script when Git moves (a new revision after a
    // pass) or a rollout to a new spec starts (its pass may last the whole rollout).
    let _ = writeln!(
        out,
        "<div class=\"catalogue\" id=\"catalogue\" data-url=\"/plugins/{}/catalogue\" data-revision=\"{}\" \
         data-target=\"{}\">",
        esc(id),
        esc(view.text("revision").unwrap_or("")),
        esc(view.rollouts.get(id).map_or("", |r| r.target.as_str()))
    );
    out.push_str(&catalogue(view, id));
    out.push_str("</div>\n");
    render::close(&mut out);
    Some(out)
}

/// The catalogue's sections from the manifest Git holds now.
pub fn catalogue(view: &View, id: &str) -> String {
    match view.fleet.and_then(|f| crate::catalogue::plugin_sections_html(f, id)) {
        Some(sections) => sections,
        None => "<p class=\"none\">Git no longer declares this plugin: what runs is what the status says.</p>".into(),
    }
}

fn actions(out: &mut String, id: &str) {
    out.push_str("<section class=\"actions\" aria-label=\"Rollout actions\"><span class=\"hint\">Rollout:</span>");
    for (action, label) in ACTIONS {
        let _ = write!(
            out,
            "<button type=\"button\" data-action=\"{action}\" data-label=\"{label} {id}\" \
             data-url=\"/api/v1/plugins/{id}/rollout/{action}\">{label}</button>",
            id = esc(id)
        );
    }
    out.push_str(
        "<button type=\"button\" class=\"secondary\" data-action=\"reconcile\" data-label=\"Reconcile now\" \
         data-url=\"/api/v1/reconcile\">Reconcile now</button>\
         <div id=\"action-result\" class=\"result\" role=\"status\" hidden></div></section>\n",
    );
}

/// The live part: status now and the rollout.
pub fn live(view: &View, id: &str) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let plugin = view.plugin(id);
    let status = view.statuses.get(id);
    let at = view.text("at").map(|at| format!(" at {}", render::time(at))).unwrap_or_default();
    let _ = write!(
        out,
        "<section class=\"status-now\" id=\"status-now\"><h2>Status</h2><p class=\"hint\">As the last pass{at} \
         recorded it; a rollout in flight is below, step by step.</p><table class=\"fields\">"
    );
    let state = render::status_state(status);
    field(&mut out, "State", &format!("<span data-field=\"state\">{}</span>", render::state_badge(state)));
    let desired = status.and_then(|s| s.desired_version.clone()).or_else(|| plugin.map(|p| p.manifest.version.clone()));
    field(&mut out, "Desired version", &esc(desired.as_deref().unwrap_or("–")));
    field(&mut out, "Strategy", &esc(&render::strategy_name(plugin, status)));
    field(&mut out, "Instances", &slots_table(status, plugin));
    if let Some(s) = status {
        hashes(&mut out, s, view.rollouts.get(id).map(|r| r.target.as_str()));
        history(&mut out, s);
    } else {
        field(&mut out, "Status", "<span class=\"none\">none recorded yet</span>");
    }
    if let Some(words) = view.fleet.and_then(|f| view::windows(f, Some(id), view.now)) {
        field(&mut out, "Sync windows", &esc(&words));
    }
    out.push_str("</table></section>\n");
    rollout_view::section(&mut out, view.rollouts.get(id), status.and_then(|s| s.rollout.as_ref()), plugin);
    status_history(&mut out, view, id);
    out
}

/// Status commits shown on a plugin's page.
const HISTORY_SHOWN: usize = 20;

/// The plugin's last status commits, newest first, each linked to its page.
fn status_history(out: &mut String, view: &View, id: &str) {
    out.push_str(
        "<section class=\"history\" id=\"history\"><h2>History</h2><p class=\"hint\">Commits on the status \
         branch that changed this plugin's status, newest first.</p>",
    );
    let mine: Vec<_> = view.history.iter().filter(|e| e.touches(id)).take(HISTORY_SHOWN).collect();
    if mine.is_empty() {
        out.push_str("<p class=\"none\">No status commit for this plugin yet.</p></section>\n");
        return;
    }
    out.push_str("<table><thead><tr><th>At</th><th>Commit</th><th>Change</th></tr></thead><tbody>");
    for e in mine {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><a href=\"/commits/{}\"><code>{}</code></a></td><td>{}</td></tr>",
            render::time(&e.at),
            esc(&e.sha),
            esc(&e.sha.chars().take(12).collect::<String>()),
            esc(&e.subject)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn field(out: &mut String, label: &str, html: &str) {
    let _ = write!(out, "<tr><th>{}</th><td>{html}</td></tr>", esc(label));
}

fn slots_table(status: Option<&PluginStatus>, plugin: Option<&crate::model::Plugin>) -> String {
    let (running, desired) = render::instances(status, plugin);
    let mut out = format!(
        "<span data-field=\"instances\">{running} running</span>{}",
        desired.map(|d| format!(", {d} desired")).unwrap_or_default()
    );
    if let Some(s) = status.filter(|s| !s.slots.is_empty()) {
        out.push_str(
            "<table class=\"slots\"><thead><tr><th>Slot</th><th>Version</th><th>Instances</th><th>Image digest</th></tr>\
             </thead><tbody>",
        );
        for (slot, v) in &s.slots {
            let _ = write!(
                out,
                "<tr data-slot=\"{0}\"><td><span class=\"slot slot-{0}\">{0}</span></td><td>{1}</td><td class=\"num\">{2}</td>\
                 <td data-field=\"digest\">{3}</td></tr>",
                esc(slot),
                esc(&v.version),
                v.instances,
                v.digest.as_deref().map_or_else(|| "<span class=\"none\">–</span>".into(), digest_html)
            );
        }
        out.push_str("</tbody></table>");
    }
    out
}

/// An image digest as `sha256:` and 12 hex digits, the whole in the title (Kubernetes spells
/// it `docker-pullable://name@sha256:…`).
fn digest_html(digest: &str) -> String {
    let hex = digest.rsplit_once("sha256:").map_or(digest, |(_, hex)| hex);
    let cut: String = hex.chars().take(12).collect();
    format!("<code title=\"{}\">sha256:{}</code>", esc(digest), esc(&cut))
}

/// Revision and spec hashes: what runs, and what a rollout drives to.
fn hashes(out: &mut String, s: &PluginStatus, live_target: Option<&str>) {
    if let Some(r) = &s.revision {
        field(out, "Git revision", &render::short(r));
    }
    if let Some(h) = &s.applied {
        field(out, "Spec hash (applied)", &render::short(h));
    }
    if let Some(target) = s.rollout.as_ref().map(|r| r.target.as_str()).or(live_target) {
        field(out, "Spec hash (rollout target)", &render::short(target));
    }
}

/// Last change, failed rollout, last error, drift.
fn history(out: &mut String, s: &PluginStatus) {
    if let Some(c) = &s.last_change {
        let reasons = if c.reasons.is_empty() { String::new() } else { format!(": {}", esc(&c.reasons.join("; "))) };
        let html = format!(
            "{} {} at {} ({}){reasons}",
            esc(&c.kind),
            esc(&c.result),
            render::time(&c.at),
            render::short(&c.revision)
        );
        field(out, "Last change", &html);
    }
    if let Some(f) = &s.failed {
        let html = format!(
            "<span class=\"bad\">{} failed at {}</span> ({}): {}",
            esc(&f.version),
            render::time(&f.at),
            render::short(&f.revision),
            esc(&f.reason)
        );
        field(out, "Failed rollout", &html);
    }
    if let Some(e) = &s.last_error {
        field(out, "Last error", &format!("<span class=\"bad\">{}</span>", esc(e)));
    }
    let drift = match &s.drift {
        Some(d) if d.open => format!(
            "{} since {}<ul>{}</ul>",
            render::drift_html(Some(d)),
            render::time(&d.detected_at),
            d.findings.iter().map(|f| format!("<li>{}</li>", esc(f))).collect::<String>()
        ),
        Some(d) => format!(
            "none open; the last ({}) resolved at {}",
            esc(&d.findings.join("; ")),
            d.resolved_at.as_deref().map(render::time).unwrap_or_else(|| "–".into())
        ),
        None => "<span class=\"none\">none</span>".into(),
    };
    field(out, "Drift", &drift);
}

#[cfg(test)]
mod digest_tests {
    #[test]
    fn digests_read_the_same_from_docker_and_kubernetes() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for spelled in [format!("sha256:{hex}"), format!("docker-pullable://plugsync/echo@sha256:{hex}")] {
            let html = super::digest_html(&spelled);
            assert!(html.ends_with(">sha256:0123456789ab</code>"), "{spelled}: {html}");
        }
        assert_eq!(super::digest_html("<odd>"), "<code title=\"&lt;odd&gt;\">sha256:&lt;odd&gt;</code>");
    }
}
