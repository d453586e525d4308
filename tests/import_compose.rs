//! `plugsync import compose` against `docker-compose up -d` of the same file, on the real Docker
//! engine: two plugin services (limits, reservations, HTTP healthchecks, `depends_on` with
//! conditions, `update_config`, a `${SECRET}` reference) and a database excluded by label. The
//! imported fleet validates and reconciles (`plugsync reconcile --once`) to the same running
//! shape: `docker inspect` compared field by field, each difference listed and explained.
//!
//! Needs Docker and docker-compose; fails loudly without them.

use plugsync_test_support::docker::{docker, ensure_echo_images, Cleanup, V1, V2};
use std::collections::BTreeMap;
use std::process::Command;

const SECRET: &str = "s3cr3t-from-the-host";

fn compose_file() -> String {
    format!(
        r#"version: "3.8"
services:
  db:
    image: plugsync/echo-plugin:{V1}
    labels:
      plugsync.plugin: "false"
  auth:
    image: plugsync/echo-plugin:{V1}
    expose: ["8080"]
    environment:
      ECHO_VERSION: "{V1}"
      TOKEN_TTL: 3600
      SIGNING_KEY: ${{IMPORT_SIGNING_KEY}}
    healthcheck:
      test: ["CMD", "/plugin", "wget", "-qO-", "http://localhost:8080/health/ready"]
      interval: 1s
    deploy:
      resources:
        limits: {{ cpus: "0.25", memory: 64M }}
        reservations: {{ memory: 32M }}
      update_config:
        parallelism: 1
        delay: 2s
        order: start-first
    depends_on:
      db:
        condition: service_started
  crm:
    image: plugsync/echo-plugin:{V2}
    expose: ["8080"]
    environment:
      - ECHO_VERSION={V2}
      - LOG_LEVEL=info
    healthcheck:
      test: ["CMD", "/plugin", "wget", "http://localhost:8080/health/ready"]
      interval: 1s
    deploy:
      resources:
        limits: {{ cpus: "0.5", memory: 128M }}
    depends_on:
      auth:
        condition: service_healthy
"#
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

/// The fields compared, from `docker inspect` of one container.
fn shape(inspect: &bollard::models::ContainerInspectResponse) -> BTreeMap<&'static str, String> {
    let config = inspect.config.clone().unwrap_or_default();
    let host = inspect.host_config.clone().unwrap_or_default();
    let health = inspect.state.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.status).map(|s| s.to_string());
    BTreeMap::from([
        ("image", config.image.unwrap_or_default()),
        ("memory", host.memory.unwrap_or_default().to_string()),
        ("memory reservation", host.memory_reservation.unwrap_or_default().to_string()),
        ("nano cpus", host.nano_cpus.unwrap_or_default().to_string()),
        ("healthcheck", config.healthcheck.and_then(|h| h.test).map(|t| t.join(" ")).unwrap_or_default()),
        ("health", health.unwrap_or_default()),
        ("running", inspect.state.as_ref().and_then(|s| s.running).unwrap_or_default().to_string()),
    ])
}

fn env(inspect: &bollard::models::ContainerInspectResponse) -> BTreeMap<String, String> {
    let vars = inspect.config.as_ref().and_then(|c| c.env.clone()).unwrap_or_default();
    vars.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn an_imported_compose_file_runs_as_docker_compose_runs_it() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let docker = rt.block_on(docker());
    rt.block_on(ensure_echo_images(&docker));
    let pid = std::process::id();
    let (project, fleet) = (format!("timp{pid}"), format!("t-imp-{pid}"));
    let cleanup = Cleanup::new(&fleet, &format!("plugsync-{fleet}"));
    rt.block_on(cleanup.pre_clean());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("docker-compose.plugins.yml");
    std::fs::write(&file, compose_file()).expect("write compose file");
    let compose = |args: &[&str]| {
        let mut cmd = Command::new("docker-compose");
        cmd.args(["-f", &file.display().to_string(), "-p", &project]).args(args).env("IMPORT_SIGNING_KEY", SECRET);
        cmd
    };
    // Whatever happens below, the compose project goes too.
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Command);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "--remove-orphans", "-t", "1"]).output();
        }
    }
    let _down = Down(&compose);

    // (1) The import: two plugins, db left out by its label, the report beside them.
    let out = dir.path().join("fleet");
    let plugsync = env!("CARGO_BIN_EXE_plugsync");
    let said = run(Command::new(plugsync).args(["import", "compose"]).arg(&file).arg("-o").arg(&out).args([
        "--exclude-label",
        "plugsync.plugin=false",
        "--fleet",
        &fleet,
    ]));
    eprintln!("{said}");
    assert!(said.contains("imported 2 plugin(s)") && said.contains("auth, crm"), "{said}");
    assert!(said.contains("the imported fleet validates"), "{said}");
    let report = std::fs::read_to_string(out.join("IMPORT-REPORT.md")).expect("report");
    assert!(report.contains("depends on db, which is not a plugin"), "{report}");
    let auth_manifest = std::fs::read_to_string(out.join("plugins/auth/plugin.yaml")).expect("auth manifest");
    assert!(
        !auth_manifest.contains(SECRET) && auth_manifest.contains("fromEnv: \"IMPORT_SIGNING_KEY\""),
        "{auth_manifest}"
    );
    run(Command::new(plugsync).arg("validate").arg(&out));

    // (2) docker-compose runs the file; plugsync runs the imported fleet.
    run(&mut compose(&["up", "-d"]));
    let said = run(Command::new(plugsync).args(["reconcile", "--once"]).arg(&out).env("IMPORT_SIGNING_KEY", SECRET));
    eprintln!("{said}");

    // (3) Field by field.
    // By compose's own labels: v1 names containers `<project>_<service>_1`, v2 `<project>-<service>-1`.
    let compose_container = |service: &str| {
        let filter = [format!("com.docker.compose.project={project}"), format!("com.docker.compose.service={service}")];
        let options = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(std::collections::HashMap::from([("label".to_string(), filter.to_vec())])),
            ..Default::default()
        };
        let found = rt.block_on(docker.list_containers(Some(options))).expect("list compose containers");
        found.first().and_then(|c| c.id.clone()).unwrap_or_else(|| panic!("docker-compose runs no {service}"))
    };
    let wait_healthy = |service: &str| {
        let id = compose_container(service);
        for _ in 0..100 {
            let i = rt.block_on(docker.inspect_container(&id, None)).expect("inspect compose container");
            if shape(&i)["health"] == "healthy" {
                return i;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("{service} never became healthy under docker-compose");
    };
    let ours = rt.block_on(plugsync_test_support::docker::inspect_fleet(&docker, &fleet));
    let mut explained = Vec::new();
    for plugin in ["auth", "crm"] {
        let theirs = wait_healthy(plugin);
        let mine = ours
            .iter()
            .find(|i| {
                i.config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get("plugsync.plugin"))
                    .map(String::as_str)
                    == Some(plugin)
            })
            .unwrap_or_else(|| panic!("plugsync runs no {plugin}"));
        let (a, b) = (shape(&theirs), shape(mine));
        for field in ["image", "memory", "memory reservation", "nano cpus", "running"] {
            assert_eq!(
                a[field], b[field],
                "{plugin}: {field} differs (compose {:?}, plugsync {:?})",
                a[field], b[field]
            );
            eprintln!("[{plugin}] {field:<20} same: {}", a[field]);
        }
        // Health: compose asks Docker to run the check in the container; plugsync probes the
        // same path from outside before it calls the instance ready, so Docker has no check.
        assert!(a["healthcheck"].contains("/health/ready"), "{a:?}");
        assert_eq!(b["healthcheck"], "", "plugsync sets no Docker healthcheck: {b:?}");
        explained.push(format!(
            "[{plugin}] healthcheck: compose {:?} (Docker says {}), plugsync none: it probes /health/ready itself",
            a["healthcheck"], a["health"]
        ));
        let (their_env, my_env) = (env(&theirs), env(mine));
        for (k, v) in &their_env {
            assert_eq!(my_env.get(k), Some(v), "{plugin}: env {k} (compose {v:?}, plugsync {:?})", my_env.get(k));
        }
        let extra: Vec<&String> = my_env.keys().filter(|k| !their_env.contains_key(*k)).collect();
        assert!(
            extra.iter().all(|k| k.starts_with("PLUGSYNC_") || k.starts_with("PLUGIN_")),
            "{plugin}: extra env {extra:?}"
        );
        explained.push(format!("[{plugin}] env: the same {} variables; plugsync adds {extra:?}", their_env.len()));
    }
    assert_eq!(env(&wait_healthy("auth")).get("SIGNING_KEY").map(String::as_str), Some(SECRET));
    for line in &explained {
        eprintln!("{line}");
    }
    // The database stayed compose's: plugsync never touched it.
    assert!(ours.iter().all(|i| i.name.as_deref().is_none_or(|n| !n.contains("db"))), "plugsync runs no db");
    drop(cleanup);
}
