//! The fleet catalogue behind `plugsync docs`: one page per plugin (what it is, owners, API,
//! resources, rollout policy in words, dependencies both ways, status) and an index with the
//! fleet's dependency graph, as Markdown and as standalone HTML, plus the graph for Graphviz.
//!
//! Pure: a [`Fleet`] (and, if given, what the status branch says) in, a list of files out; the
//! caller writes them. Every page is built once as a small document ([`Doc`]) and rendered twice
//! ([`markdown`], [`html`]), so both formats say the same. Links are relative, so the folder
//! works from `file://` and in a Git forge alike. Text from manifests is escaped for each format.

pub mod graph;
mod html;
mod markdown;
mod page;
pub mod words;

#[cfg(test)]
mod tests;

use crate::model::Fleet;
use std::collections::{BTreeMap, BTreeSet};

/// One generated file: its path relative to the output folder (`/`-separated) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub contents: String,
}

/// What the status branch says, for the pages' "Status" sections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusBook {
    /// Where it was read, for people: `plugsync/status at 3dad6e0`.
    pub source: String,
    /// Plugin id → its status; a plugin missing here has none recorded.
    pub plugins: BTreeMap<String, StatusSummary>,
}

/// One plugin's recorded status, already in words where the edge knows best how to say it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusSummary {
    /// Lifecycle as recorded: `ACTIVE`, `FAILED`, `ROLLED_BACK`, …
    pub state: String,
    pub desired_version: Option<String>,
    /// What runs per slot.
    pub slots: Vec<SlotSummary>,
    /// Revision whose spec runs.
    pub revision: Option<String>,
    pub last_change: Option<String>,
    pub failed: Option<String>,
    pub last_error: Option<String>,
    /// A rollout in flight.
    pub rollout: Option<String>,
    pub drift: Option<DriftSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSummary {
    pub slot: String,
    pub version: String,
    pub instances: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftSummary {
    pub open: bool,
    pub findings: Vec<String>,
    pub detected_at: String,
    pub resolved_at: Option<String>,
}

/// The whole catalogue: `index.md`, `index.html`, `dependencies.dot`, and
/// `plugins/<id>.md` + `plugins/<id>.html` per plugin, in that order.
pub fn render(fleet: &Fleet, status: Option<&StatusBook>) -> Vec<GeneratedFile> {
    let relations = Relations::of(fleet);
    let mut files = Vec::new();
    let index = page::index(fleet, &relations, status);
    files.push(GeneratedFile { path: "index.md".into(), contents: markdown::render(&index) });
    files.push(GeneratedFile { path: "index.html".into(), contents: html::render(&index) });
    files.push(GeneratedFile { path: DOT_FILE.into(), contents: graph::dot(&graph::Layout::of(fleet, None)) });
    for plugin in fleet.plugins.values() {
        let doc = page::plugin(fleet, plugin, &relations, status);
        files.push(GeneratedFile { path: page_path(&plugin.id, "md"), contents: markdown::render(&doc) });
        files.push(GeneratedFile { path: page_path(&plugin.id, "html"), contents: html::render(&doc) });
    }
    files
}

/// One plugin's catalogue sections (overview, API, runtime, rollout, dependencies with their
/// graph) as an HTML fragment for a page with its own frame: the daemon's dashboard. Links to
/// other plugins are `<id>.html`, relative to `plugins/`, as on the catalogue's pages. `None`
/// when the fleet has no such plugin.
pub fn plugin_sections_html(fleet: &Fleet, id: &str) -> Option<String> {
    let plugin = fleet.plugins.get(id)?;
    let doc = page::plugin(fleet, plugin, &Relations::of(fleet), None);
    Some(html::sections(&doc))
}

/// The Graphviz file of the fleet's dependencies, beside the index.
pub const DOT_FILE: &str = "dependencies.dot";

/// `plugins/<id>.<ext>`, relative to the catalogue's root.
pub fn page_path(id: &str, ext: &str) -> String {
    format!("plugins/{id}.{ext}")
}

/// `path` (relative to the catalogue's root) as a link from a page in `folder` (`""` for the
/// root, `"plugins/"`): `plugins/crm.html` from the index, `crm.html` beside it, and
/// `../index.html` back.
pub fn relative(folder: &str, path: &str) -> String {
    match path.strip_prefix(folder) {
        Some(rest) => rest.to_string(),
        None => format!("{}{path}", "../".repeat(folder.matches('/').count())),
    }
}

/// Who depends on whom, both ways. Dependencies on plugins outside the fleet are kept (they are
/// shown as external, never linked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relations {
    pub depends_on: BTreeMap<String, BTreeSet<String>>,
    pub used_by: BTreeMap<String, BTreeSet<String>>,
}

impl Relations {
    pub fn of(fleet: &Fleet) -> Relations {
        let mut relations = Relations::default();
        for plugin in fleet.plugins.values() {
            let deps = relations.depends_on.entry(plugin.id.clone()).or_default();
            for dep in dependencies(plugin) {
                deps.insert(dep.clone());
                relations.used_by.entry(dep).or_default().insert(plugin.id.clone());
            }
        }
        relations
    }

    pub fn depends_on(&self, id: &str) -> impl Iterator<Item = &String> {
        self.depends_on.get(id).into_iter().flatten()
    }

    pub fn used_by(&self, id: &str) -> impl Iterator<Item = &String> {
        self.used_by.get(id).into_iter().flatten()
    }
}

/// A plugin's dependencies as its manifests declare them (a fixed canary's own included).
pub fn dependencies(plugin: &crate::model::Plugin) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = plugin.manifest.depends_on.iter().cloned().collect();
    if let Some(canary) = &plugin.canary {
        out.extend(canary.manifest.depends_on.iter().cloned());
    }
    out.remove(&plugin.id);
    out
}

/// Text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Text for Markdown prose and table cells: every character Markdown (CommonMark and GitHub's
/// tables) would read as syntax is backslash-escaped, line breaks become spaces, and a start
/// that would open a list, a heading or a rule (`- `, `+ `, `1. `, `===`) is defused.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next_blank = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        let after_digits = i > 0 && chars[..i].iter().all(char::is_ascii_digit);
        let syntax = match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '|' | '&' | '~' | '#' | '$' => true,
            '-' | '+' | '=' | '>' => i == 0,
            '.' | ')' => after_digits && next_blank,
            _ => false,
        };
        match c {
            '\r' | '\n' => out.push(' '),
            _ if syntax => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A Markdown code span around `text`, safe in a table cell: a fence longer than any run of
/// backticks inside, `|` escaped (GitHub splits cells before it reads code spans).
pub fn code_markdown(text: &str) -> String {
    let text = text.replace(['\r', '\n'], " ");
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') || text.is_empty() { " " } else { "" };
    format!("{fence}{pad}{}{pad}{fence}", text.replace('|', "\\|"))
}

/// A number as people write it: `25`, `2.5`, never `25.000000001`.
pub fn number(value: f64) -> String {
    let rounded = (value * 1e6).round() / 1e6;
    format!("{rounded}")
}
