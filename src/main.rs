mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use plugsync::model::{self, Environment, SchemaKind};
use std::path::PathBuf;
use std::process::ExitCode;

/// plugsync: GitOps for containerised plugins.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ImportCommand {
    /// Each service of compose FILEs (merged in order, as compose merges them) becomes a plugin:
    /// image, environment (a ${VAR} reference becomes secretEnv, never a copied value), port,
    /// HTTP healthcheck, deploy resources/replicas/update_config, depends_on.
    Compose {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Folder to write the fleet into; the files it generates are overwritten.
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        /// A service that is not a plugin (a database); repeatable.
        #[arg(long, value_name = "SERVICE")]
        exclude: Vec<String>,
        /// Leave out services carrying this label (KEY, or KEY=VALUE); repeatable.
        #[arg(long, value_name = "LABEL")]
        exclude_label: Vec<String>,
        /// The fleet's name (default: the compose project's name).
        #[arg(long)]
        fleet: Option<String>,
    },
    /// Each Deployment of FILEs (multi-document YAML) and the Service selecting its pods
    /// becomes a plugin: image, replicas, resources, probe paths and port, env (secretKeyRef
    /// → secretEnv), labels → tags, RollingUpdate → Rolling.
    Kubernetes {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Folder to write the fleet into; the files it generates are overwritten.
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        /// The fleet's name (default: imported).
        #[arg(long)]
        fleet: Option<String>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Check a fleet directory: schemas, references, dependencies, versions. Exit 0 valid, 1 not.
    Validate {
        /// Fleet directory (holding plugsync.yaml, plugins/, policies/ …).
        #[arg(default_value = ".")]
        path: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: cli::validate::Format,
        /// Environment whose overlays and default policy apply (overrides plugsync.yaml).
        #[arg(long, value_parser = parse_environment)]
        environment: Option<Environment>,
        #[command(flatten)]
        admission: cli::admission::AdmissionArgs,
    },
    /// Show what a reconcile would change on the live engine, and what it holds (sync
    /// windows, failed rollouts on the status branch, prune limits, admission). Exit 0 no
    /// changes, 3 changes pending or held, 1 invalid fleet.
    Plan {
        #[arg(default_value = ".")]
        path: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: cli::apply::PlanFormat,
        #[arg(long, value_parser = parse_environment)]
        environment: Option<Environment>,
        #[command(flatten)]
        backend: cli::apply::BackendArgs,
        #[command(flatten)]
        admission: cli::admission::AdmissionArgs,
    },
    /// Apply the fleet to the live engine through each plugin's strategy.
    Reconcile {
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Run one pass and exit (the daemon is `plugsync run`).
        #[arg(long, required = true)]
        once: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Change nothing: print where what runs departs from Git (drift). Exit 2 when there
        /// is drift, 0 when there is none.
        #[arg(long)]
        detect_only: bool,
        /// Roll out this plugin again although its current spec failed (the status branch
        /// holds it otherwise). Repeatable.
        #[arg(long, value_name = "PLUGIN")]
        retry: Vec<String>,
        #[arg(long, value_parser = parse_environment)]
        environment: Option<Environment>,
        #[command(flatten)]
        backend: cli::apply::BackendArgs,
        #[command(flatten)]
        admission: cli::admission::AdmissionArgs,
    },
    /// Write the fleet's catalogue into DIR: index.md/.html (every plugin, the dependency
    /// graph), plugins/<id>.md/.html (what it is, owners, API, resources, rollout policy in
    /// words, dependencies both ways, status) and dependencies.dot. Exit 0 written, 1 invalid fleet.
    Docs {
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Folder to write into; created, and the files it generates are overwritten.
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        /// Show each plugin's status as recorded on this branch (status/<plugin>.yaml) of the
        /// Git repository holding PATH: its local branch, else origin's.
        #[arg(long, value_name = "BRANCH")]
        status_branch: Option<String>,
        #[arg(long, value_parser = parse_environment)]
        environment: Option<Environment>,
    },
    /// Turn files a team already deploys with into a fleet repo (manifests, plugsync.yaml and
    /// IMPORT-REPORT.md of what was not carried). Exit 0 written and valid, 1 not valid.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Build the sample images and walk through create, rolling update and rollback on the
    /// local Docker engine.
    Demo {
        /// Leave the demo fleet running instead of cleaning up.
        #[arg(long)]
        keep: bool,
    },
    /// The daemon: follow a branch, reconcile on poll/webhook/file change, record status in Git.
    Run(cli::daemon::RunArgs),
    /// The status branch as a table (or one plugin's status document).
    Status {
        plugin: Option<String>,
        #[command(flatten)]
        remote: cli::daemon::RemoteArgs,
        #[arg(long, default_value = "plugsync/status")]
        status_branch: String,
    },
    /// Status commits of one plugin, newest first.
    History {
        plugin: String,
        #[command(flatten)]
        remote: cli::daemon::RemoteArgs,
        #[arg(long, default_value = "plugsync/status")]
        status_branch: String,
    },
    /// Ask the running daemon to retry, promote, abort, pause or resume a plugin's rollout
    /// (bearer token from PLUGSYNC_API_TOKEN); or `status`: where the rollout is. `status`
    /// exits 0 converged, 1 rolled back or failed, 2 paused, 3 in progress (without --watch),
    /// 4 --watch timed out, 5 the daemon could not tell.
    Rollout {
        #[arg(value_parser = ["retry", "promote", "abort", "pause", "resume", "status"])]
        action: String,
        plugin: String,
        #[arg(long, env = "PLUGSYNC_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// With `status`: follow the rollout (one bar per step, live metrics) until it ends;
        /// a rollout that ended before the command started is not taken as the answer.
        #[arg(long)]
        watch: bool,
        /// With `status --watch`: give up (exit 4) after this long, e.g. 90s, 10m.
        #[arg(long, value_parser = cli::daemon::parse_span, requires = "watch")]
        timeout: Option<plugsync::model::Span>,
    },
    /// List what the daemon runs: `get plugins` (NAME, VERSION per slot, STATE, STRATEGY,
    /// INSTANCES, DRIFT, ROLLOUT; `-o wide` adds REVISION, LAST CHANGE, ERROR).
    Get {
        #[arg(value_enum)]
        resource: cli::get::Resource,
        #[arg(long, env = "PLUGSYNC_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: cli::get::Output,
    },
    /// Print an embedded JSON Schema: plugin-manifest, rollout-policy, fleet-config,
    /// environment-overlay, admission-policy; or, with --markdown, the format reference (docs/formats.md).
    Schema {
        #[arg(required_unless_present = "markdown")]
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        markdown: bool,
    },
}

pub(crate) fn parse_environment(text: &str) -> Result<Environment, String> {
    Environment::ALL
        .into_iter()
        .find(|e| e.folder().eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("found {text:?}, expected development, qa, staging or production"))
}

fn main() -> ExitCode {
    plugsync::tls::install_default_provider();
    let cli = Cli::parse();
    tracing_subscriber::fmt().with_env_filter(log_filter()).with_writer(std::io::stderr).init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `PLUGSYNC_LOG` (default `warn`), except that bollard never logs below `warn`, whatever was
/// asked: at `debug` it prints every Docker request and response body, and those carry the
/// containers' environment, `secretEnv` values included.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLUGSYNC_LOG").unwrap_or_else(|_| "warn".into());
    match "bollard=warn".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    }
}

/// How long `rollout status --watch` waits without --timeout.
const DEFAULT_WATCH: std::time::Duration = std::time::Duration::from_secs(600);

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { path, format, environment, admission } => {
            let policy = admission.policy()?;
            let files = plugsync::source::dir::read_fleet_dir(&path)?;
            let loaded = model::load(&files, environment);
            let mut refused = model::admission::admit(&policy, &loaded.fleet);
            model::admission::locate(&mut refused, &files);
            print!("{}", cli::validate::render(&loaded, &path.display().to_string(), format, &refused));
            Ok(if loaded.is_valid() && refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Plan { path, format, environment, backend, admission } => {
            let policy = admission.policy()?;
            let local = plugsync::source::load_dir(&path, environment)?;
            let refused = cli::admission::judge(&policy, &local.loaded.fleet, &path)?;
            let gates = cli::apply::gates(&path, &local.loaded.fleet, refused, Vec::new());
            runtime()?.block_on(cli::apply::plan(&local.loaded, &local.revision, format, &backend.choice(), gates))
        }
        Command::Reconcile { path, once: _, json, detect_only, environment, backend, admission, retry } => {
            let policy = admission.policy()?;
            let local = plugsync::source::load_dir(&path, environment)?;
            if detect_only {
                return runtime()?.block_on(cli::apply::detect(
                    &local.loaded,
                    &local.revision,
                    json,
                    &backend.choice(),
                ));
            }
            let refused = cli::admission::judge(&policy, &local.loaded.fleet, &path)?;
            let gates = cli::apply::gates(&path, &local.loaded.fleet, refused, retry);
            runtime()?.block_on(cli::apply::reconcile(&local.loaded, &local.revision, json, &backend.choice(), gates))
        }
        Command::Run(args) => runtime()?.block_on(cli::daemon::run(args)),
        Command::Status { plugin, remote, status_branch } => {
            cli::daemon::status(&remote, &status_branch, plugin.as_deref())
        }
        Command::History { plugin, remote, status_branch } => cli::daemon::history(&remote, &status_branch, &plugin),
        Command::Rollout { action, plugin, server, watch, timeout } if action == "status" => {
            let limit = timeout.map_or(DEFAULT_WATCH, |t| t.0);
            let answer = runtime()?.block_on(async {
                if watch {
                    cli::rollout_status::watch(&server, &plugin, limit).await
                } else {
                    cli::rollout_status::once(&server, &plugin).await
                }
            });
            Ok(answer.unwrap_or_else(|e| {
                eprintln!("error: {e}");
                ExitCode::from(cli::rollout_status::NO_ANSWER)
            }))
        }
        Command::Rollout { watch: true, .. } => anyhow::bail!("--watch goes with `rollout status` only"),
        Command::Rollout { action, plugin, server, .. } => {
            runtime()?.block_on(cli::daemon::rollout(&action, &plugin, &server))
        }
        Command::Get { resource: cli::get::Resource::Plugins, server, output } => {
            match runtime()?.block_on(cli::get::run(&server, output)) {
                Ok(text) => {
                    print!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Docs { path, output, status_branch, environment } => {
            cli::docs::run(&path, &output, environment, status_branch.as_deref())
        }
        Command::Import(ImportCommand::Compose { files, output, exclude, exclude_label, fleet }) => {
            let options = plugsync::import::compose::Options { exclude, exclude_labels: exclude_label, fleet };
            cli::import::compose(&files, &output, &options)
        }
        Command::Import(ImportCommand::Kubernetes { files, output, fleet }) => {
            cli::import::kubernetes(&files, &output, fleet.as_deref())
        }
        Command::Demo { keep } => runtime()?.block_on(cli::demo::run(keep)),
        Command::Schema { markdown: true, .. } => {
            print!("{}", model::schema_doc::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { name, .. } => {
            let name = name.unwrap_or_default();
            let kind = SchemaKind::from_name(&name).with_context(|| {
                let names: Vec<&str> = SchemaKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown schema {name:?}; expected one of {}", names.join(", "))
            })?;
            print!("{}", kind.text());
            Ok(ExitCode::SUCCESS)
        }
    }
}
