//! `GET /`: the fleet at a glance. A summary (the followed revision, the last pass, states,
//! rollouts in flight, held changes, sync windows), a filter box, and one row per plugin: name
//! and description, owners, tags, version per slot, instances running/desired, lifecycle,
//! strategy, drift, and the rollout in flight with its progress bar. The script keeps rows live
//! from the event stream and filters them as you type.

use super::render::{self, esc, Frame};
use super::view::{self, View};
use std::fmt::Write;

/// Bytes of HTML per plugin row, roughly: the buffer is sized once.
const ROW_BYTES: usize = 900;

pub fn render(view: &View) -> String {
    let ids = view.ids();
    let mut out = String::with_capacity(8192 + ROW_BYTES * ids.len());
    let title = format!("Fleet {}", view.fleet_name());
    render::open(&mut out, &Frame { title: &title, page: "fleet", plugin: None, fleet: view.fleet_name() });
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title));
    summary(&mut out, view);
    let _ = writeln!(
        out,
        "<div class=\"toolbar\"><input id=\"filter\" type=\"search\" placeholder=\"Filter by name, owner, tag, state…\" \
         aria-label=\"Filter plugins\"><span id=\"filter-count\">{n} plugins</span>\
         <span id=\"new-plugins\" hidden>The fleet changed: <a href=\"/\">reload</a> to see new plugins.</span></div>",
        n = ids.len()
    );
    out.push_str(
        "<table id=\"plugins\" class=\"fleet\">\n<thead><tr><th>Plugin</th><th>Owners</th><th>Tags</th>\
         <th>Version per slot</th><th>Instances</th><th>State</th><th>Strategy</th><th>Drift</th>\
         <th>Rollout</th></tr></thead>\n<tbody>\n",
    );
    for id in &ids {
        row(&mut out, view, id);
    }
    out.push_str("</tbody>\n</table>\n");
    if ids.is_empty() {
        out.push_str("<p class=\"none\">No plugin yet: the daemon has not finished a pass.</p>\n");
    }
    out.push_str(
        "<section class=\"narration\"><h2>Narration</h2><p class=\"hint\">What the reconciler says, live.</p>\
         <ol id=\"log\"></ol></section>\n",
    );
    render::close(&mut out);
    out
}

fn summary(out: &mut String, view: &View) {
    out.push_str("<section class=\"summary\"><dl>");
    let revision =
        view.text("revision").map(render::short).unwrap_or_else(|| "<span class=\"none\">none yet</span>".into());
    let _ = write!(out, "<div><dt>Followed revision</dt><dd data-doc=\"revision\">{revision}</dd></div>");
    let at = view.text("at").map(render::time).unwrap_or_else(|| "<span class=\"none\">no pass yet</span>".into());
    let _ = write!(out, "<div><dt>Last pass</dt><dd data-doc=\"at\">{at}</dd></div>");
    let states: Vec<String> =
        view.state_counts().iter().map(|(state, n)| format!("{} {n}", render::state_badge(state))).collect();
    let _ = write!(out, "<div><dt>States</dt><dd data-doc=\"states\">{}</dd></div>", states.join(" "));
    let _ = write!(
        out,
        "<div><dt>Rollouts in flight</dt><dd data-doc=\"in-flight\">{}</dd></div><div><dt>Last plan</dt><dd data-doc=\"plan\">{} change(s), {} held</dd></div>",
        view.in_flight(),
        view.changes(),
        view.held().len()
    );
    let windows = view.fleet.map(|f| {
        let said = view::windows(f, None, view.now).unwrap_or_else(|| "no sync windows: rollouts any time".into());
        match view::schedule(f, view.now) {
            Some(schedule) => format!("{said}; {schedule}"),
            None => said,
        }
    });
    let _ = write!(
        out,
        "<div class=\"wide\"><dt>Sync windows</dt><dd>{}</dd></div>",
        esc(&windows.unwrap_or_else(|| "the fleet is not loaded yet".into()))
    );
    out.push_str("</dl>");
    let _ = write!(
        out,
        "<div class=\"actions\"><button type=\"button\" data-url=\"/api/v1/reconcile\" data-label=\"Reconcile now\">\
         Reconcile now</button><div id=\"action-result\" class=\"result\" role=\"status\" hidden></div></div>"
    );
    problems(out, view);
    out.push_str("</section>\n");
}

fn problems(out: &mut String, view: &View) {
    let errors = view.errors();
    if !errors.is_empty() {
        out.push_str("<div class=\"errors\"><strong>Problems with the revision:</strong><ul>");
        for e in errors {
            let _ = write!(out, "<li>{}</li>", esc(e));
        }
        out.push_str("</ul></div>");
    }
    let held = view.held();
    if !held.is_empty() {
        let _ = write!(out, "<details class=\"held\"><summary>{} change(s) held</summary><ul>", held.len());
        for (plugin, reason) in held {
            let _ = write!(out, "<li><a href=\"/plugins/{0}\">{0}</a>: {1}</li>", esc(plugin), esc(reason));
        }
        out.push_str("</ul></details>");
    }
}

fn row(out: &mut String, view: &View, id: &str) {
    let plugin = view.plugin(id);
    let status = view.statuses.get(id);
    let m = plugin.map(|p| &p.manifest);
    let name = m.and_then(|m| m.name.as_deref()).filter(|n| *n != id);
    let description = m.and_then(|m| m.description.as_deref()).unwrap_or("");
    let owners = m.map(|m| m.owners.join(", ")).unwrap_or_default();
    let tags = m.map(|m| m.tags.as_slice()).unwrap_or_default();
    let search = format!("{id} {} {description} {owners} {}", name.unwrap_or(""), tags.join(" ")).to_lowercase();
    let ab_ms = render::ab_duration_ms(plugin);
    let _ = write!(
        out,
        "<tr data-plugin=\"{id}\" data-desired=\"{desired}\"{ab} data-search=\"{search}\">",
        id = esc(id),
        desired = plugin.map(|p| p.manifest.replicas.to_string()).unwrap_or_default(),
        ab = ab_ms.map(|ms| format!(" data-ab-ms=\"{ms}\"")).unwrap_or_default(),
        search = esc(&search),
    );
    let _ = write!(out, "<td class=\"name\"><a href=\"/plugins/{0}\">{0}</a>", esc(id));
    if let Some(name) = name {
        let _ = write!(out, " <span class=\"pname\">{}</span>", esc(name));
    }
    if plugin.is_none() {
        out.push_str(" <span class=\"badge gone\">not in Git</span>");
    }
    if !description.is_empty() {
        let _ = write!(out, "<div class=\"desc\">{}</div>", esc(description));
    }
    out.push_str("</td>");
    let _ = write!(out, "<td data-cell=\"owners\">{}</td><td data-cell=\"tags\">", esc(&owners));
    for tag in tags {
        let _ = write!(out, "<span class=\"tag\">{}</span> ", esc(tag));
    }
    let _ = write!(
        out,
        "</td><td data-cell=\"versions\">{}</td><td data-cell=\"instances\" class=\"num\">{}</td>\
         <td data-cell=\"state\">{}</td><td data-cell=\"strategy\">{}</td><td data-cell=\"drift\">{}</td>",
        render::slots_html(status),
        render::instances_html(status, plugin),
        render::state_badge(render::status_state(status)),
        esc(&render::strategy_name(plugin, status)),
        render::drift_html(status.and_then(|s| s.drift.as_ref())),
    );
    out.push_str(&render::rollout_cell(view.rollouts.get(id), status.and_then(|s| s.rollout.as_ref()), ab_ms));
    out.push_str("</tr>\n");
}
