//! A plan as text for a terminal, JSON for tools, markdown for a pull-request comment.

use super::{ChangeKind, Plan};
use std::fmt::Write;

fn symbol(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Create => "+",
        ChangeKind::Update => "~",
        ChangeKind::Scale => "↕",
        ChangeKind::Repair => "!",
        ChangeKind::Remove => "-",
    }
}

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.no_changes() && plan.held.is_empty() {
        let _ = writeln!(out, "fleet {}: no changes, everything matches Git", plan.fleet);
    } else if plan.no_changes() {
        let _ = writeln!(out, "fleet {}: no change will be made now; {} held", plan.fleet, plan.held.len());
    } else {
        let _ = writeln!(
            out,
            "fleet {}: {} change(s)",
            plan.fleet,
            plan.changes.len() + usize::from(plan.router.is_some()) + usize::from(plan.gateway.is_some())
        );
        for c in &plan.changes {
            let strategy = if c.kind == ChangeKind::Remove { String::new() } else { format!(" ({})", c.strategy) };
            let _ = writeln!(
                out,
                "  {} {} {}{strategy}: {}",
                symbol(c.kind),
                c.kind.verb(),
                c.plugin,
                c.reasons.join("; ")
            );
            if !c.after.is_empty() {
                let _ = writeln!(out, "      after {}", c.after.join(", "));
            }
        }
    }
    if let Some(r) = &plan.router {
        let _ = writeln!(out, "  ⇄ {} router: {}", r.action.verb(), r.reason);
    }
    if let Some(g) = &plan.gateway {
        let _ = writeln!(out, "  ⇄ {} gateway: {}", g.action.verb(), g.reason);
    }
    for r in &plan.refused {
        let _ = writeln!(out, "  ✗ refused to remove {}: {}", r.plugins.join(", "), r.reason);
    }
    for h in &plan.held {
        let _ = writeln!(out, "  ‖ {} {} held: {}", h.kind.verb(), h.plugin, h.reason);
    }
    for s in &plan.suspended {
        let _ = writeln!(out, "  ‖ {s} is suspended: left as it runs");
    }
    for r in &plan.admission {
        let _ = writeln!(out, "  ✗ {r}; left as it runs");
    }
    for u in &plan.unobserved {
        let _ = writeln!(out, "  ? {} not observed: {}", u.plugin, u.reason);
    }
    out
}

pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_default() + "\n"
}

pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## plugsync plan: fleet `{}`\n", plan.fleet);
    if plan.no_changes() && plan.held.is_empty() {
        let _ = writeln!(out, "No changes: everything matches Git.");
    } else if plan.no_changes() {
        let _ = writeln!(out, "No change will be made now: every difference from Git is held (below).");
    } else {
        let _ = writeln!(out, "| | Plugin | Action | Strategy | Why |\n|---|---|---|---|---|");
        for c in &plan.changes {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} |",
                symbol(c.kind),
                c.plugin,
                c.kind.verb(),
                c.strategy,
                c.reasons.join("; ").replace('|', "\\|")
            );
        }
    }
    if let Some(r) = &plan.router {
        let _ = writeln!(out, "\n**Router**: {} — {}", r.action.verb(), r.reason.replace('|', "\\|"));
    }
    if let Some(g) = &plan.gateway {
        let _ = writeln!(out, "\n**Gateway**: {} — {}", g.action.verb(), g.reason.replace('|', "\\|"));
    }
    for r in &plan.refused {
        let _ = writeln!(out, "\n> **Refused** to remove {}: {}", r.plugins.join(", "), r.reason);
    }
    if !plan.held.is_empty() {
        let _ = writeln!(
            out,
            "\n**Held** (not done now, and why):\n\n| | Plugin | Action | Held because |\n|---|---|---|---|"
        );
        for h in &plan.held {
            let _ = writeln!(out, "| ‖ | `{}` | {} | {} |", h.plugin, h.kind.verb(), h.reason.replace('|', "\\|"));
        }
    }
    for r in &plan.admission {
        let _ = writeln!(
            out,
            "\n> **Refused by admission** `{}`: {}; left as it runs",
            r.rule,
            r.to_string().replace('|', "\\|")
        );
    }
    for u in &plan.unobserved {
        let _ = writeln!(out, "\n> **Not observed** `{}`: {}", u.plugin, u.reason.replace('|', "\\|"));
    }
    out
}
