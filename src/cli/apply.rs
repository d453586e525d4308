//! `plugsync plan` and `plugsync reconcile --once` against the live backend.

use plugsync::backend::any::{AnyBackend, BackendChoice};
use plugsync::model::admission::Refusal;
use plugsync::model::{BackendKind, Fleet, Loaded};
use plugsync::plan::gates::{self, Gates};
use plugsync::plan::{render, DesiredHealth};
use plugsync::reconcile::{Ending, Reconciler, Report};
use std::path::Path;
use std::process::ExitCode;
use tracing::Instrument;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

/// Which engine to drive, over `backend:` in plugsync.yaml.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// docker or kubernetes (default: `backend:` in plugsync.yaml, else docker).
    #[arg(long, env = "PLUGSYNC_BACKEND", value_parser = parse_kind)]
    pub backend: Option<BackendKind>,
    /// Docker endpoint (default: DOCKER_HOST or the local socket).
    #[arg(long)]
    pub docker_host: Option<String>,
    /// Kubernetes namespace (default: `backend.namespace`, else the kubeconfig context's).
    #[arg(long, env = "PLUGSYNC_NAMESPACE")]
    pub namespace: Option<String>,
}

impl BackendArgs {
    pub fn choice(&self) -> BackendChoice {
        BackendChoice { kind: self.backend, docker_host: self.docker_host.clone(), namespace: self.namespace.clone() }
    }
}

fn parse_kind(text: &str) -> Result<BackendKind, String> {
    match text {
        "docker" => Ok(BackendKind::Docker),
        "kubernetes" | "k8s" => Ok(BackendKind::Kubernetes),
        _ => Err(format!("found {text:?}, expected docker or kubernetes")),
    }
}

pub async fn connect(fleet: &Fleet, choice: &BackendChoice) -> anyhow::Result<AnyBackend> {
    Ok(choice.connect(&fleet.config).await?)
}

pub fn health(loaded: &Loaded) -> DesiredHealth {
    if loaded.is_valid() {
        DesiredHealth::Complete
    } else {
        for d in loaded.errors() {
            eprintln!("{d}");
        }
        DesiredHealth::HasErrors
    }
}

/// The gates a one-shot pass obeys, as the daemon does: the admission policy, the status branch
/// of the repository holding `path` (its local branch, else `origin`'s: failed rollouts, and
/// what was last applied, so a drift repair follows the `drift:` policy), and the sync windows
/// now. A one-shot pass remembers no heals: back-off and flapping are the daemon's.
pub fn gates(path: &Path, fleet: &Fleet, admission: Vec<Refusal>, retry: Vec<String>) -> Gates {
    let mut gates = Gates::at(chrono::Utc::now());
    gates.admission = admission;
    gates.retry = retry;
    if let Some((_, files)) = plugsync::source::git::local_branch_files(path, &fleet.config.status_branch, "status/") {
        let statuses = plugsync::status::read_files(files).1;
        gates.failed = plugsync::status::failed_rollouts(&statuses);
        gates.applied = plugsync::status::applied_specs(&statuses);
    }
    gates
}

pub async fn plan(
    loaded: &Loaded,
    revision: &str,
    format: PlanFormat,
    choice: &BackendChoice,
    gates: Gates,
) -> anyhow::Result<ExitCode> {
    let desired = health(loaded);
    let backend = connect(&loaded.fleet, choice).await?;
    let quiet = |_: &str| {};
    let mut plan = Reconciler::new(&backend, &loaded.fleet, revision, &quiet).plan(desired).await?;
    gates::apply(&mut plan, &loaded.fleet, &gates);
    print!(
        "{}",
        match format {
            PlanFormat::Text => render::text(&plan),
            PlanFormat::Json => render::json(&plan),
            PlanFormat::Markdown => render::markdown(&plan),
        }
    );
    Ok(if desired == DesiredHealth::HasErrors || !plan.admission.is_empty() {
        ExitCode::from(1)
    } else if plan.no_changes() && plan.refused.is_empty() && plan.held.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

pub async fn reconcile(
    loaded: &Loaded,
    revision: &str,
    json: bool,
    choice: &BackendChoice,
    gates: Gates,
) -> anyhow::Result<ExitCode> {
    let desired = health(loaded);
    let backend = connect(&loaded.fleet, choice).await?;
    let narrate = |line: &str| {
        if !json {
            println!("  {line}");
        }
    };
    let reconciler = Reconciler::new(&backend, &loaded.fleet, revision, &narrate);
    let span = tracing::info_span!("reconcile", fleet = %loaded.fleet.config.fleet, revision = %revision);
    let report = async {
        let mut plan = reconciler.plan(desired).await?;
        // Refused and held plugins are left exactly as they run; the rest of the fleet proceeds.
        gates::apply(&mut plan, &loaded.fleet, &gates);
        reconciler.apply_plan(plan).await
    }
    .instrument(span)
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", summary(&report));
    }
    let admitted = report.plan.admission.is_empty();
    Ok(if report.succeeded() && admitted && desired == DesiredHealth::Complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `reconcile --once --detect-only`: drift as it is now; exit 2 with drift, 0 without.
pub async fn detect(loaded: &Loaded, revision: &str, json: bool, choice: &BackendChoice) -> anyhow::Result<ExitCode> {
    if !loaded.is_valid() {
        for d in loaded.errors() {
            eprintln!("{d}");
        }
        anyhow::bail!("the fleet does not validate; drift is measured against a valid fleet only");
    }
    let backend = connect(&loaded.fleet, choice).await?;
    let quiet = |_: &str| {};
    let findings = Reconciler::new(&backend, &loaded.fleet, revision, &quiet)
        .detect(None, &std::collections::BTreeMap::new())
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else if findings.is_empty() {
        println!("fleet {}: no drift, what runs matches Git", loaded.fleet.config.fleet);
    } else {
        println!("fleet {}: {} drift finding(s)", loaded.fleet.config.fleet, findings.len());
        for f in &findings {
            println!("  {f}");
        }
    }
    Ok(if findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

pub fn summary(report: &Report) -> String {
    let refusals: String = report.plan.admission.iter().map(|r| format!("{r}; left as it runs\n")).collect();
    let held: String =
        report.plan.held.iter().map(|h| format!("held: {} {}: {}\n", h.kind.verb(), h.plugin, h.reason)).collect();
    if report.plan.no_changes() && report.plan.refused.is_empty() && report.plan.held.is_empty() {
        return format!("fleet {}: nothing to do, everything matches Git\n{refusals}", report.plan.fleet);
    }
    let count = |f: fn(&Ending) -> bool| report.results.iter().filter(|r| f(&r.result)).count();
    let mut out = format!(
        "fleet {}: {} converged, {} rolled back, {} failed, {} skipped\n",
        report.plan.fleet,
        count(|r| matches!(r, Ending::Converged)),
        count(|r| matches!(r, Ending::RolledBack { .. })),
        count(|r| matches!(r, Ending::Failed { .. })),
        count(|r| matches!(r, Ending::Skipped { .. })),
    );
    for r in &report.plan.refused {
        out.push_str(&format!("refused to remove {}: {}\n", r.plugins.join(", "), r.reason));
    }
    out + &held + &refusals
}
