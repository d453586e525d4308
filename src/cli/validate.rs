//! `plugsync validate`: the pull-request check. Renders every problem as text, JSON or the
//! markdown a CI job posts on the pull request.

use plugsync::model::{Diagnostic, Loaded, Plugin};
use serde_json::json;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

pub fn render(loaded: &Loaded, root: &str, format: Format) -> String {
    match format {
        Format::Text => text(loaded, root),
        Format::Json => json(loaded, root),
        Format::Markdown => markdown(loaded, root),
    }
}

fn counts(loaded: &Loaded) -> (usize, usize) {
    (loaded.errors().count(), loaded.warnings().count())
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn text(loaded: &Loaded, root: &str) -> String {
    let mut out = String::new();
    for d in &loaded.diagnostics {
        let _ = writeln!(out, "{d}");
    }
    let (errors, warnings) = counts(loaded);
    let plugins = plural(loaded.fleet.plugins.len(), "plugin");
    let _ = if errors == 0 {
        writeln!(out, "✓ {root}: {plugins} valid, {}", plural(warnings, "warning"))
    } else {
        writeln!(out, "✗ {root}: {}, {} ({plugins} loaded)", plural(errors, "error"), plural(warnings, "warning"))
    };
    out
}

fn summary(plugin: &Plugin) -> serde_json::Value {
    json!({
        "id": plugin.id,
        "version": plugin.versions().join(" + "),
        "image": plugin.manifest.runtime.image,
        "replicas": plugin.manifest.replicas,
        "strategy": plugin.strategy.to_string(),
        "policy": plugin.policy_source.to_string(),
    })
}

fn json(loaded: &Loaded, root: &str) -> String {
    let (errors, warnings) = counts(loaded);
    let value = json!({
        "path": root,
        "valid": errors == 0,
        "errorCount": errors,
        "warningCount": warnings,
        "errors": loaded.errors().collect::<Vec<_>>(),
        "warnings": loaded.warnings().collect::<Vec<_>>(),
        "plugins": loaded.fleet.plugins.values().map(summary).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// Escapes text for a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn markdown(loaded: &Loaded, root: &str) -> String {
    let (errors, warnings) = counts(loaded);
    let mut out = String::new();
    let verdict = if errors == 0 { "✅ valid" } else { "❌ invalid" };
    let _ = writeln!(
        out,
        "## plugsync validate: {verdict}\n\n`{root}`: {}, {}, {}.\n",
        plural(loaded.fleet.plugins.len(), "plugin"),
        plural(errors, "error"),
        plural(warnings, "warning")
    );
    let _ = writeln!(out, "| Plugin | Version | Image | Replicas | Strategy | Policy |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for p in loaded.fleet.plugins.values() {
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} | {} |",
            p.id,
            cell(&p.versions().join(" + ")),
            cell(&p.manifest.runtime.image),
            p.manifest.replicas,
            p.strategy,
            cell(&p.policy_source.to_string())
        );
    }
    for (title, list) in
        [("Errors", loaded.errors().collect::<Vec<_>>()), ("Warnings", loaded.warnings().collect::<Vec<_>>())]
    {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n### {title}\n\n| Where | Field | Found | Expected |\n|---|---|---|---|");
        for d in list {
            let _ = writeln!(out, "{}", problem_row(d));
        }
    }
    out
}

fn problem_row(d: &Diagnostic) -> String {
    format!(
        "| `{}` | `{}` | {} | {} |",
        d.location(),
        if d.field.is_empty() { "—" } else { &d.field },
        cell(&d.found),
        cell(&d.expected)
    )
}
