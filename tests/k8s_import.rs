//! `plugsync import kubernetes` against the same Deployment + Service applied as a team applies
//! them, on the test cluster: the imported fleet validates, plugsync runs it (`plugsync
//! reconcile --once`), and its Deployment's pod template matches the team's field by field
//! (image, resources, probe paths and port, env, the secret's value), each difference listed
//! and explained.
//!
//! Ignored unless asked for (`.ci/run` runs them with `--include-ignored`); fails without a cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Secret, Service};
use kube::api::{Api, ListParams, PostParams};
use plugsync_test_support::docker::V1;
use plugsync_test_support::k8s::Cluster;
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "k8s-s3cr3t";

fn manifests() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 1
  strategy:
    type: RollingUpdate
    rollingUpdate: {{ maxSurge: 1, maxUnavailable: 0 }}
  selector:
    matchLabels: {{ app: shop }}
  template:
    metadata:
      labels: {{ app: shop, team: sales }}
    spec:
      containers:
        - name: shop
          image: plugsync/echo-plugin:{V1}
          imagePullPolicy: IfNotPresent
          ports: [{{ containerPort: 8080 }}]
          env:
            - {{ name: ECHO_VERSION, value: "{V1}" }}
            - {{ name: LOG_LEVEL, value: info }}
            - name: API_KEY
              valueFrom:
                secretKeyRef: {{ name: shop-secrets, key: api-key }}
          resources:
            limits: {{ cpu: 100m, memory: 64Mi }}
            requests: {{ cpu: 50m, memory: 32Mi }}
          readinessProbe:
            httpGet: {{ path: /health/ready, port: 8080 }}
          livenessProbe:
            httpGet: {{ path: /health/live, port: 8080 }}
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {{ app: shop }}
  ports: [{{ port: 8080, targetPort: 8080 }}]
"#
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

/// The value a container's env var `name` has: its plain value, or the bytes of the Secret key
/// it refers to.
async fn env_value(secrets: &Api<Secret>, c: &Container, name: &str) -> Option<String> {
    let var = c.env.as_ref()?.iter().find(|e| e.name == name)?;
    if let Some(v) = &var.value {
        return Some(v.clone());
    }
    let r = var.value_from.as_ref()?.secret_key_ref.as_ref()?;
    let secret = secrets.get(&r.name).await.ok()?;
    let bytes = secret.data.as_ref()?.get(&r.key)?;
    Some(String::from_utf8_lossy(&bytes.0).into_owned())
}

fn first_container(d: &Deployment) -> Container {
    d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|s| s.containers[0].clone()).expect("a container")
}

fn ready(d: &Deployment) -> bool {
    d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) >= 1
}

#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_deployment_runs_as_the_team_ran_it() {
    let cluster = Cluster::connect("kimp").await;
    cluster.ensure_echo_images(&[V1]).await;
    let ns = cluster.namespace.clone();
    let (deployments, services, secrets): (Api<Deployment>, Api<Service>, Api<Secret>) =
        (cluster.api(), cluster.api(), cluster.api());

    // (1) The team's way: the Secret, the Deployment and the Service, applied as they are.
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "shop-secrets"}, "stringData": {"api-key": SECRET}
    }))
    .expect("secret");
    secrets.create(&PostParams::default(), &secret).await.expect("create the team's Secret");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, manifests()).expect("write manifests");
    for doc in plugsync::import::kubernetes::split("shop.yaml", &manifests()) {
        let value = doc.expect("manifest parses").value;
        match value["kind"].as_str() {
            Some("Deployment") => {
                let d: Deployment = serde_json::from_value(value).expect("Deployment");
                deployments.create(&PostParams::default(), &d).await.expect("create the team's Deployment");
            }
            _ => {
                let s: Service = serde_json::from_value(value).expect("Service");
                services.create(&PostParams::default(), &s).await.expect("create the team's Service");
            }
        }
    }
    let t = Instant::now();
    let theirs = loop {
        let d = deployments.get("shop").await.expect("get shop");
        if ready(&d) {
            break d;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "the team's Deployment never got ready: {:?}", d.status);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("[{ns}] the team's shop ready in {:?}", t.elapsed());
    // plugsync's Service takes the plugin's name: the team's leaves once its spec is recorded.
    let their_service = services.get("shop").await.expect("the team's Service");
    services.delete("shop", &Default::default()).await.expect("delete the team's Service");

    // (2) The import, validated, and plugsync running it.
    let out = dir.path().join("fleet");
    let plugsync = env!("CARGO_BIN_EXE_plugsync");
    let said = run(Command::new(plugsync)
        .args(["import", "kubernetes"])
        .arg(&file)
        .arg("-o")
        .arg(&out)
        .args(["--fleet", &ns]));
    eprintln!("{said}");
    assert!(said.contains("imported 1 plugin(s)") && said.contains("the imported fleet validates"), "{said}");
    let manifest = std::fs::read_to_string(out.join("plugins/shop/plugin.yaml")).expect("manifest");
    assert!(!manifest.contains(SECRET) && manifest.contains("fromEnv: \"SHOP_SECRETS_API_KEY\""), "{manifest}");
    let said = run(Command::new(plugsync)
        .args(["reconcile", "--once", "--namespace", &ns])
        .arg(&out)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("SHOP_SECRETS_API_KEY", SECRET));
    eprintln!("{said}");

    // (3) Field by field.
    let ours = deployments
        .list(&ListParams::default().labels("plugsync.plugin=shop"))
        .await
        .expect("list plugsync's Deployments")
        .items;
    assert_eq!(ours.len(), 1, "plugsync runs one Deployment for shop");
    assert!(ready(&ours[0]), "plugsync's shop is ready: {:?}", ours[0].status);
    let (a, b) = (first_container(&theirs), first_container(&ours[0]));
    assert_eq!(a.image, b.image, "image");
    // The same amounts, however spelled (plugsync writes memory in bytes: 64Mi is 67108864).
    let amounts = |c: &Container| {
        let r = c.resources.clone().unwrap_or_default();
        let read = |m: Option<
            &std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >| {
            let m = m.cloned().unwrap_or_default();
            let cpu = m.get("cpu").and_then(|q| plugsync::model::quantity::Cpu::parse(&q.0)).map(|c| c.millis());
            let memory =
                m.get("memory").and_then(|q| plugsync::model::quantity::Memory::parse(&q.0)).map(|m| m.bytes());
            (cpu, memory)
        };
        (read(r.limits.as_ref()), read(r.requests.as_ref()))
    };
    assert_eq!(amounts(&a), amounts(&b), "resources (limits and requests): {:?} vs {:?}", a.resources, b.resources);
    let probe = |c: &Container, readiness: bool| {
        let p = if readiness { c.readiness_probe.as_ref() } else { c.liveness_probe.as_ref() };
        p.and_then(|p| p.http_get.as_ref()).map(|h| (h.path.clone(), h.port.clone()))
    };
    assert_eq!(probe(&a, true), probe(&b, true), "readiness probe path and port");
    assert_eq!(probe(&a, false), probe(&b, false), "liveness probe path and port");
    let port = |c: &Container| c.ports.as_ref().and_then(|p| p.first()).map(|p| p.container_port);
    assert_eq!(port(&a), port(&b), "container port");
    for var in ["ECHO_VERSION", "LOG_LEVEL", "API_KEY"] {
        let (x, y) = (env_value(&secrets, &a, var).await, env_value(&secrets, &b, var).await);
        assert_eq!(x, y, "env {var}");
        eprintln!(
            "[{ns}] env {var:<14} same{}",
            if var == "API_KEY" { " (read through each side's Secret)" } else { "" }
        );
    }
    eprintln!("[{ns}] image, resources, probes, port: same ({:?}, {:?})", a.image, a.resources);
    let service_ports = their_service.spec.and_then(|s| s.ports).unwrap_or_default();
    let ours_service = services.get("shop").await.expect("plugsync's Service");
    let our_ports = ours_service.spec.and_then(|s| s.ports).unwrap_or_default();
    assert_eq!(
        service_ports.iter().map(|p| p.port).collect::<Vec<_>>(),
        our_ports.iter().map(|p| p.port).collect::<Vec<_>>(),
        "the Service answers on the same port"
    );
    eprintln!(
        "[{ns}] explained: the Secret is plugsync's own ({:?}), filled from SHOP_SECRETS_API_KEY where plugsync ran; \
         labels and names are plugsync's (plugsync.plugin=shop, Deployment {:?}); probe timings are plugsync's defaults",
        b.env.as_ref().and_then(|e| e.iter().find(|e| e.name == "API_KEY")).and_then(|e| e.value_from.clone()),
        ours[0].metadata.name
    );
}
