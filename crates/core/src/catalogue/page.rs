//! What each page says, as a small document both renderers share: the index (every plugin in a
//! table, the fleet's dependency graph) and one page per plugin. Every meaningful manifest field
//! is here; values that may be secret (env values, `config` values) are not: only their names.

use super::graph::Layout;
use super::{words, Relations, StatusBook, StatusSummary};
use crate::model::manifest::SecretSource;
use crate::model::{Fleet, Plugin};

/// One page, in `folder` of the catalogue (`""` for the root, `"plugins/"`).
#[derive(Debug, Clone)]
pub struct Doc {
    pub title: String,
    pub folder: &'static str,
    pub intro: Vec<Block>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone)]
pub struct Section {
    /// The heading's anchor: its title in lowercase with `-` for spaces, as Git forges make it.
    pub anchor: &'static str,
    pub title: &'static str,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
pub enum Block {
    Para(Vec<Span>),
    /// Label → value, one per line.
    Fields(Vec<(&'static str, Vec<Span>)>),
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<Vec<Span>>>,
    },
    Graph(Layout),
}

#[derive(Debug, Clone)]
pub enum Span {
    Text(String),
    Code(String),
    Link { to: Target, text: String },
}

#[derive(Debug, Clone)]
pub enum Target {
    /// A heading of this page.
    Anchor(&'static str),
    /// The index page.
    Index,
    /// A plugin's page, maybe at one of its headings.
    Plugin { id: String, anchor: Option<&'static str> },
    /// A file of the catalogue as it is, relative to the catalogue's root.
    File(&'static str),
    /// An absolute `http(s)://` URL.
    Url(String),
}

fn text(s: impl Into<String>) -> Span {
    Span::Text(s.into())
}
fn code(s: impl Into<String>) -> Span {
    Span::Code(s.into())
}
fn plugin_link(id: &str, anchor: Option<&'static str>) -> Span {
    Span::Link { to: Target::Plugin { id: id.to_string(), anchor }, text: id.to_string() }
}

/// Spans separated by `, `.
fn joined(items: Vec<Span>) -> Vec<Span> {
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(text(", "));
        }
        out.push(item);
    }
    out
}

/// A link when `url` is an absolute http(s) URL, else plain text.
fn url_or_text(url: &str) -> Span {
    let lower = url.to_ascii_lowercase();
    if (lower.starts_with("https://") || lower.starts_with("http://")) && !url.contains(char::is_whitespace) {
        Span::Link { to: Target::Url(url.to_string()), text: url.to_string() }
    } else {
        text(url)
    }
}

pub fn index(fleet: &Fleet, relations: &Relations, status: Option<&StatusBook>) -> Doc {
    let config = &fleet.config;
    let mut summary = vec![text(format!("{} ", words::plural(fleet.plugins.len() as u32, "plugin")))];
    if let Some(env) = config.environment {
        summary.push(text(format!("in {env:?}, ")));
    }
    let backend = match config.backend.kind {
        crate::model::BackendKind::Docker => "Docker",
        crate::model::BackendKind::Kubernetes => "Kubernetes",
    };
    summary.push(text(format!("on {backend}.")));
    let mut intro = vec![Block::Para(summary)];
    if let Some(book) = status {
        intro.push(Block::Para(vec![text("Status as recorded on "), code(&book.source), text(".")]));
    }
    let mut head = vec!["Plugin", "Description", "Version", "Owners", "Tags", "Strategy"];
    if status.is_some() {
        head.push("State");
    }
    let rows = fleet.plugins.values().map(|p| index_row(p, status)).collect();
    let plugins = Section { anchor: "plugins", title: "Plugins", blocks: vec![Block::Table { head, rows }] };
    Doc {
        title: format!("Fleet {}", config.fleet),
        folder: "",
        intro,
        sections: vec![plugins, index_dependencies(fleet, relations)],
    }
}

fn index_row(p: &Plugin, status: Option<&StatusBook>) -> Vec<Vec<Span>> {
    let mut name = vec![plugin_link(&p.id, None)];
    if let Some(n) = p.manifest.name.as_ref().filter(|n| **n != p.id) {
        name.push(text(format!(" ({n})")));
    }
    let mut row = vec![
        name,
        vec![text(p.manifest.description.clone().unwrap_or_default())],
        vec![text(versions(p))],
        vec![text(owners(&p.manifest))],
        joined(p.manifest.tags.iter().map(code).collect()),
        vec![text(strategy_name(p))],
    ];
    if let Some(book) = status {
        let state = book.plugins.get(&p.id).map_or("none recorded", |s| s.state.as_str());
        row.push(vec![Span::Link {
            to: Target::Plugin { id: p.id.clone(), anchor: Some("status") },
            text: state.to_string(),
        }]);
    }
    row
}

fn index_dependencies(fleet: &Fleet, relations: &Relations) -> Section {
    let layout = Layout::of(fleet, None);
    let mut blocks = vec![Block::Para(vec![
        text("An arrow points from a plugin to what it depends on. The same graph for Graphviz: "),
        Span::Link { to: Target::File(super::DOT_FILE), text: super::DOT_FILE.into() },
        text("."),
    ])];
    if layout.edges.is_empty() {
        blocks.push(Block::Para(vec![text("No plugin declares a dependency.")]));
    }
    let externals: Vec<Span> = relations
        .used_by
        .iter()
        .filter(|(id, _)| !fleet.plugins.contains_key(*id))
        .map(|(id, users)| {
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            text(format!("{id} (used by {})", users.join(", ")))
        })
        .collect();
    if !externals.is_empty() {
        let mut spans = vec![text("Outside this fleet: ")];
        spans.extend(joined(externals));
        blocks.push(Block::Para(spans));
    }
    blocks.push(Block::Graph(layout));
    Section { anchor: "dependencies", title: "Dependencies", blocks }
}

/// `owners`, else the catalogue's `author`/`authors`, said to be that.
fn owners(m: &crate::model::PluginManifest) -> String {
    if !m.owners.is_empty() {
        return m.owners.join(", ");
    }
    let authors = ["author", "authors"].iter().filter_map(|k| m.extra.get(*k).and_then(catalogue_text));
    authors.filter(|a| !a.is_empty()).map(|a| format!("{a} (author)")).collect::<Vec<_>>().join(", ")
}

fn versions(p: &Plugin) -> String {
    match &p.canary {
        Some(c) => format!(
            "{} ({} %) + {} ({} %)",
            p.manifest.version,
            super::number(p.stable_weight.unwrap_or(100.0 - c.weight)),
            c.manifest.version,
            super::number(c.weight)
        ),
        None => p.manifest.version.clone(),
    }
}

fn strategy_name(p: &Plugin) -> String {
    if p.canary.is_some() {
        "fixed canary".into()
    } else {
        p.strategy.to_string()
    }
}

pub fn plugin(fleet: &Fleet, p: &Plugin, relations: &Relations, status: Option<&StatusBook>) -> Doc {
    let m = &p.manifest;
    let title = match m.name.as_ref().filter(|n| **n != p.id) {
        Some(name) => format!("{name} ({})", p.id),
        None => p.id.clone(),
    };
    let mut sections = vec![
        Section { anchor: "overview", title: "Overview", blocks: vec![Block::Fields(overview(p))] },
        Section { anchor: "api", title: "API", blocks: vec![Block::Fields(api(fleet, p))] },
        Section { anchor: "runtime", title: "Runtime", blocks: vec![Block::Fields(runtime(p))] },
        Section { anchor: "rollout", title: "Rollout", blocks: vec![Block::Fields(rollout(fleet, p))] },
        dependencies(fleet, p, relations),
    ];
    if let Some(book) = status {
        sections.push(status_section(book, book.plugins.get(&p.id)));
    }
    let mut contents = vec![Span::Link { to: Target::Index, text: "Fleet index".into() }, text(" · On this page: ")];
    let anchors = sections.iter().map(|s| Span::Link { to: Target::Anchor(s.anchor), text: s.title.into() });
    contents.extend(joined(anchors.collect()));
    let mut intro = vec![Block::Para(contents)];
    if let Some(description) = &m.description {
        intro.push(Block::Para(vec![text(description)]));
    }
    Doc { title, folder: "plugins/", intro, sections }
}

fn overview(p: &Plugin) -> Vec<(&'static str, Vec<Span>)> {
    let m = &p.manifest;
    let mut fields = vec![("Id", vec![code(&p.id)])];
    push_text(&mut fields, "Name", m.name.clone());
    fields.push(("Version", vec![text(versions(p))]));
    push_text(&mut fields, "Owners", Some(m.owners.join(", ")));
    if !m.tags.is_empty() {
        fields.push(("Tags", joined(m.tags.iter().map(code).collect())));
    }
    push_text(&mut fields, "Role", m.role.clone());
    push_text(&mut fields, "Capabilities", m.capabilities.as_ref().map(capabilities));
    for (label, key) in [("Author", "author"), ("Authors", "authors"), ("License", "license")] {
        push_text(&mut fields, label, m.extra.get(key).and_then(catalogue_text));
    }
    for (label, key) in [("Homepage", "homepage"), ("Repository", "repository")] {
        let value = m.extra.get(key).and_then(|v| v.as_str().or_else(|| v.get("url")?.as_str()));
        if let Some(url) = value {
            fields.push((label, vec![url_or_text(url)]));
        }
    }
    let mut source = vec![code(&p.source)];
    if let Some(c) = &p.canary {
        source.extend([text(" and "), code(&c.source), text(" (versioned folders)")]);
    }
    fields.push(("Manifest", source));
    if m.suspended {
        fields.push((
            "Suspended",
            vec![text("yes: plugsync leaves it exactly as it runs (no create, update, heal or removal)")],
        ));
    }
    fields
}

fn push_text(fields: &mut Vec<(&'static str, Vec<Span>)>, label: &'static str, value: Option<String>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        fields.push((label, vec![text(value)]));
    }
}

/// Plexica writes an array of names; an object's keys are the names.
fn capabilities(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
        other => other.as_str().map_or_else(|| other.to_string(), str::to_string),
    }
}

/// A catalogue field a person wrote: a string, a list of strings, or an object's `name`.
fn catalogue_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => {
            let names: Vec<String> = items.iter().filter_map(catalogue_text).collect();
            Some(names.join(", "))
        }
        serde_json::Value::Object(map) => map.get("name").and_then(|n| n.as_str()).map(str::to_string),
        _ => None,
    }
}

fn api(fleet: &Fleet, p: &Plugin) -> Vec<(&'static str, Vec<Span>)> {
    let api = &p.manifest.api;
    let address = format!("http://{}:{}", p.id, api.port);
    let mut fields = vec![("Address in the fleet", vec![code(&address)]), ("Port", vec![text(api.port.to_string())])];
    if let Some(base) = &api.base_path {
        fields.push(("Base path", vec![code(base)]));
    }
    if let Some(openapi) = &api.openapi {
        let url = if openapi.starts_with('/') { format!("{address}{openapi}") } else { openapi.clone() };
        fields.push(("OpenAPI", vec![url_or_text(&url)]));
    }
    fields.extend([
        ("Health check", vec![code(&api.health_check)]),
        ("Liveness", vec![code(&api.liveness)]),
        ("Readiness", vec![code(&api.readiness)]),
        ("Metrics", vec![code(&api.metrics)]),
        ("Traffic", vec![text(words::traffic(fleet, p))]),
    ]);
    fields
}

fn runtime(p: &Plugin) -> Vec<(&'static str, Vec<Span>)> {
    let m = &p.manifest;
    let r = &m.runtime;
    let mut image = vec![code(&r.image)];
    if let Some(c) = &p.canary {
        image.extend([text(" and "), code(&c.manifest.runtime.image), text(format!(" ({})", c.manifest.version))]);
    }
    let mut fields = vec![("Image", image)];
    push_text(&mut fields, "Runtime", r.kind.clone());
    if let Some(command) = &r.command {
        fields.push(("Command", vec![code(command.join(" "))]));
    }
    if let Some(args) = &r.args {
        fields.push(("Arguments", vec![code(args.join(" "))]));
    }
    fields.push(("Replicas", vec![text(m.replicas.to_string())]));
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "none set".into());
    fields.push(("CPU limit", vec![text(or_none(r.resources.cpu.map(|c| c.to_string())))]));
    fields.push(("Memory limit", vec![text(or_none(r.resources.memory.map(|c| c.to_string())))]));
    if let Some(cpu) = r.reservations.cpu {
        fields.push(("CPU reservation", vec![text(cpu.to_string())]));
    }
    if let Some(memory) = r.reservations.memory {
        fields.push(("Memory reservation", vec![text(memory.to_string())]));
    }
    if !m.env.is_empty() {
        let mut names = joined(m.env.keys().map(code).collect());
        names.push(text(" (values not shown)"));
        fields.push(("Environment", names));
    }
    if !m.secret_env.is_empty() {
        let mut spans = Vec::new();
        for (i, entry) in m.secret_env.iter().enumerate() {
            if i > 0 {
                spans.push(text(", "));
            }
            spans.extend(secret(entry));
        }
        fields.push(("Secret environment", spans));
    }
    let keys = config_keys(&m.config);
    if !keys.is_empty() {
        let mut names = joined(keys.into_iter().map(code).collect());
        names.push(text(" (values not shown)"));
        fields.push(("Config keys", names));
    }
    fields
}

fn secret((name, source): (&String, &SecretSource)) -> [Span; 4] {
    let (from, place, of) = match source {
        SecretSource::FromEnv(var) => (var, " (from the variable ", " of plugsync's host)"),
        SecretSource::FromFile(path) => (path, " (from the file ", " on plugsync's host)"),
    };
    [code(name), text(place), code(from), text(of)]
}

/// `pageSize`, `features.dealForecast`, …: the leaves of `config`, three levels deep at most.
fn config_keys(config: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, prefix: &str, depth: usize, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) if depth < 3 && !map.is_empty() => {
                for (key, child) in map {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(child, &path, depth + 1, out);
                }
            }
            _ if !prefix.is_empty() => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(config, "", 0, &mut out);
    out
}

fn rollout(fleet: &Fleet, p: &Plugin) -> Vec<(&'static str, Vec<Span>)> {
    let policy = &p.policy;
    let mut fields = vec![("Strategy", vec![text(strategy_name(p))]), ("In words", vec![text(words::rollout(p))])];
    if let Some(analysis) = words::analysis(p) {
        fields.push(("Analysis", vec![text(analysis)]));
    }
    fields.push(("Policy from", vec![text(p.policy_source.to_string())]));
    push_text(&mut fields, "Policy", policy.name.clone());
    push_text(&mut fields, "Policy description", policy.description.clone());
    fields.push(("Drift", vec![text(words::drift(fleet, p))]));
    fields
}

fn dependencies(fleet: &Fleet, p: &Plugin, relations: &Relations) -> Section {
    let link = |id: &String| {
        if fleet.plugins.contains_key(id) {
            plugin_link(id, None)
        } else {
            text(format!("{id} (not in this fleet)"))
        }
    };
    let deps: Vec<Span> = relations.depends_on(&p.id).map(link).collect();
    let users: Vec<Span> = relations.used_by(&p.id).map(link).collect();
    let none = || vec![text("nothing")];
    let mut blocks = vec![Block::Fields(vec![
        ("Depends on", if deps.is_empty() { none() } else { joined(deps) }),
        ("Used by", if users.is_empty() { none() } else { joined(users) }),
    ])];
    let layout = Layout::of(fleet, Some(&p.id));
    if !layout.edges.is_empty() {
        blocks.push(Block::Graph(layout));
    }
    Section { anchor: "dependencies", title: "Dependencies", blocks }
}

fn status_section(book: &StatusBook, summary: Option<&StatusSummary>) -> Section {
    let from = Block::Para(vec![text("As recorded on "), code(&book.source), text(".")]);
    let Some(s) = summary else {
        let none = Block::Para(vec![text("No status recorded for this plugin.")]);
        return Section { anchor: "status", title: "Status", blocks: vec![from, none] };
    };
    let mut fields = vec![("State", vec![code(&s.state)])];
    push_text(&mut fields, "Desired version", s.desired_version.clone());
    let running: Vec<String> =
        s.slots.iter().map(|slot| format!("{} {} × {}", slot.slot, slot.version, slot.instances)).collect();
    push_text(&mut fields, "Running", Some(running.join(", ")));
    if let Some(revision) = &s.revision {
        fields.push(("Revision", vec![code(crate::model::short_revision(revision))]));
    }
    push_text(&mut fields, "Last change", s.last_change.clone());
    push_text(&mut fields, "Failed rollout", s.failed.clone());
    push_text(&mut fields, "Last error", s.last_error.clone());
    push_text(&mut fields, "Rollout in flight", s.rollout.clone());
    if let Some(d) = &s.drift {
        let said = match (&d.resolved_at, d.open) {
            (_, true) => format!("open since {}: {}", d.detected_at, d.findings.join("; ")),
            (Some(at), false) => format!("none open; the last ({}) resolved at {at}", d.findings.join("; ")),
            (None, false) => "none open".to_string(),
        };
        fields.push(("Drift", vec![text(said)]));
    }
    Section { anchor: "status", title: "Status", blocks: vec![from, Block::Fields(fields)] }
}
