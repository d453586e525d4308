//! `plugsync validate`: the pull-request check. Renders every problem as text, JSON or the
//! markdown a CI job posts on the pull request.

use plugsync::model::admission::Refusal;
use plugsync::model::{Diagnostic, Loaded, Plugin};
use serde_json::json;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// `refused`: the admission policy's verdict (empty without `--admission`); any refusal makes
/// the check fail like an error does.
pub fn render(loaded: &Loaded, root: &str, format: Format, refused: &[Refusal]) -> String {
    match format {
        Format::Text => text(loaded, root, refused),
        Format::Json => json(loaded, root, refused),
        Format::Markdown => markdown(loaded, root, refused),
    }
}

fn counts(loaded: &Loaded) -> (usize, usize) {
    (loaded.errors().count(), loaded.warnings().count())
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn text(loaded: &Loaded, root: &str, refused: &[Refusal]) -> String {
    let mut out = String::new();
    for d in &loaded.diagnostics {
        let _ = writeln!(out, "{d}");
    }
    for r in refused {
        let _ = writeln!(out, "{r}");
    }
    let (errors, warnings) = counts(loaded);
    let plugins = plural(loaded.fleet.plugins.len(), "plugin");
    let _ = if errors == 0 && !refused.is_empty() {
        writeln!(
            out,
            "✗ {root}: {} by the admission policy ({plugins} loaded, {})",
            plural(refused.len(), "refusal"),
            plural(warnings, "warning")
        )
    } else if errors == 0 {
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

fn json(loaded: &Loaded, root: &str, refused: &[Refusal]) -> String {
    let (errors, warnings) = counts(loaded);
    let value = json!({
        "path": root,
        "valid": errors == 0 && refused.is_empty(),
        "errorCount": errors,
        "warningCount": warnings,
        "refusedCount": refused.len(),
        "admission": refused,
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

fn markdown(loaded: &Loaded, root: &str, refused: &[Refusal]) -> String {
    let (errors, warnings) = counts(loaded);
    let mut out = String::new();
    let verdict = match (errors, refused.len()) {
        (0, 0) => "✅ valid",
        (0, _) => "❌ refused by the admission policy",
        _ => "❌ invalid",
    };
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
    if !refused.is_empty() {
        let _ = writeln!(
            out,
            "\n### Refused by the admission policy\n\n| Plugin | Rule | Where | Field | Found | Allowed |\n|---|---|---|---|---|---|"
        );
        for r in refused {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | `{}` | `{}` | {} | {} |",
                r.plugin,
                r.rule,
                r.file,
                r.field,
                cell(&r.found),
                cell(&r.allowed)
            );
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
