//! `GET /commits/{sha}`: one status commit as `git show` would tell it — message, time, the
//! plugins whose status it changed (linked), and its patch with additions and removals marked.

use super::render::{self, esc, Frame};
use super::view::View;
use std::fmt::Write;

/// The page for the commit `sha` names (whole, or a prefix of at least 7 hex digits); `None`
/// when the kept history holds no such commit.
pub fn render(view: &View, sha: &str) -> Option<String> {
    let wanted = sha.to_ascii_lowercase();
    let entry = view
        .history
        .iter()
        .find(|e| wanted.len() >= 7 && wanted.bytes().all(|b| b.is_ascii_hexdigit()) && e.sha.starts_with(&wanted))?;
    let short: String = entry.sha.chars().take(12).collect();
    let title = format!("Status commit {short}");
    let mut out = String::with_capacity(8 * 1024 + entry.patch.len() * 2);
    render::open(&mut out, &Frame { title: &title, page: "commit", plugin: None, fleet: view.fleet_name() });
    let _ = write!(
        out,
        "<nav class=\"crumbs\"><a href=\"/\">Fleet {}</a> › status commit {}</nav><h1>{}</h1>\
         <table class=\"fields\"><tr><th>Commit</th><td><code>{}</code></td></tr><tr><th>At</th><td>{}</td></tr>",
        esc(view.fleet_name()),
        esc(&short),
        esc(&entry.subject),
        esc(&entry.sha),
        render::time(&entry.at)
    );
    let plugins: Vec<String> = entry
        .paths
        .iter()
        .filter_map(|p| p.strip_prefix("status/")?.strip_suffix(".yaml"))
        .map(|id| if id == "fleet" { "the fleet".into() } else { format!("<a href=\"/plugins/{0}\">{0}</a>", esc(id)) })
        .collect();
    let _ = write!(out, "<tr><th>Status of</th><td>{}</td></tr></table>", plugins.join(", "));
    let _ = write!(out, "<section><h2>Message</h2><pre class=\"message\">{}</pre></section>", esc(&entry.message));
    out.push_str("<section><h2>Change</h2><pre class=\"patch\">");
    for line in entry.patch.lines() {
        let class = match line.chars().next() {
            Some('+') if !line.starts_with("+++") => "add",
            Some('-') if !line.starts_with("---") => "del",
            Some('@') => "hunk",
            _ => "ctx",
        };
        // One block per line: no newline between them, or the `pre` doubles it.
        let _ = write!(out, "<span class=\"{class}\">{}</span>", esc(line));
    }
    out.push_str("</pre></section>\n");
    render::close(&mut out);
    Some(out)
}
