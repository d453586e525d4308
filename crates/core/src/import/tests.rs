use super::compose::{import, Options};
use super::*;
use crate::model::document::Document;
use crate::model::{load, FileSet};

/// A plugin team's compose file as they write it: two plugins with limits, reservations, HTTP
/// healthchecks, `depends_on` with conditions, `update_config`, `${SECRET}` references, and a
/// database that is not a plugin.
pub const REALISTIC: &str = r#"name: shop
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${DB_PASSWORD}
    volumes:
      - db-data:/var/lib/postgresql/data
    labels:
      plugsync.plugin: "false"
  crm:
    image: registry.example.com/crm:2.3.0
    container_name: crm
    ports:
      - "8081:8080"
    environment:
      LOG_LEVEL: info
      RETRIES: 3
      CRM_API_KEY: ${CRM_API_KEY}
      DATABASE_URL: postgres://crm:${DB_PASSWORD}@db/crm
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://localhost:8080/health/ready"]
      interval: 10s
    deploy:
      replicas: 2
      resources:
        limits: { cpus: "0.50", memory: 256M }
        reservations: { cpus: "0.25", memory: 128M }
      update_config:
        parallelism: 1
        delay: 10s
        order: start-first
        failure_action: rollback
        monitor: 30s
    depends_on:
      db:
        condition: service_healthy
      auth:
        condition: service_healthy
    restart: unless-stopped
  auth:
    image: registry.example.com/auth:v1.4
    expose: ["9000"]
    environment:
      - TOKEN_TTL=3600
      - SIGNING_KEY
    healthcheck:
      test: curl -fsS http://localhost:9000/healthz || exit 1
    deploy:
      resources:
        limits: { cpus: "1", memory: 1g }
      update_config:
        parallelism: 2
        order: stop-first
    depends_on: [db]
    build: ./auth
volumes:
  db-data: {}
"#;

fn imported(exclude_label: &str) -> Imported {
    let doc = Document::parse("docker-compose.plugins.yml", REALISTIC.as_bytes()).expect("compose parses");
    import(&[doc], &Options { exclude_labels: vec![exclude_label.into()], ..Options::default() })
}

fn manifest<'a>(imported: &'a Imported, id: &str) -> &'a str {
    &imported.plugins.iter().find(|p| p.id == id).unwrap_or_else(|| panic!("no {id}: {imported:#?}")).manifest
}

#[test]
fn a_realistic_compose_file_becomes_a_fleet_that_validates() {
    let imported = imported("plugsync.plugin=false");
    assert_eq!(imported.plugins.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["auth", "crm"], "db is excluded");
    let mut files = FileSet::new();
    files.insert("plugsync.yaml".into(), imported.fleet_config.clone().into_bytes());
    for p in &imported.plugins {
        files.insert(format!("plugins/{}/plugin.yaml", p.id), p.manifest.clone().into_bytes());
    }
    let loaded = load(&files, None);
    assert!(loaded.is_valid(), "{:#?}\n{}", loaded.diagnostics, manifest(&imported, "crm"));
    assert_eq!(loaded.fleet.config.fleet, "shop");
    let crm = &loaded.fleet.plugins["crm"].manifest;
    assert_eq!(crm.version, "2.3.0");
    assert_eq!(crm.replicas, 2);
    assert_eq!(crm.api.port, 8080);
    let text = manifest(&imported, "crm");
    for line in [
        "  image: \"registry.example.com/crm:2.3.0\"  # docker-compose.plugins.yml:12",
        "    cpu: \"500m\"",
        "    memory: \"256Mi\"",
        "  reservations:",
        "    cpu: \"250m\"",
        "    memory: \"128Mi\"",
        "  readiness: \"/health/ready\"",
        "  \"RETRIES\": \"3\"",
        "  \"CRM_API_KEY\": { fromEnv: \"CRM_API_KEY\" }",
        "  \"DATABASE_URL\": { fromEnv: \"DATABASE_URL\" }",
        "dependsOn:\n  - \"auth\"",
        "  strategy: Rolling",
        "    batchSize: 1",
        "    waitBetweenBatches: \"10s\"",
        "    healthCheckTimeout: \"30s\"",
    ] {
        assert!(text.contains(line), "crm's manifest lacks {line:?}:\n{text}");
    }
    assert!(!text.contains("DB_PASSWORD"), "no secret value or reference copied into env:\n{text}");
    let auth = manifest(&imported, "auth");
    for line in [
        "version: \"1.4.0\"",
        "  port: 9000",
        "  readiness: \"/healthz\"",
        "    memory: \"1Gi\"",
        "    cpu: \"1000m\"",
        "  \"SIGNING_KEY\": { fromEnv: \"SIGNING_KEY\" }",
        "    batchSize: 2",
    ] {
        assert!(auth.contains(line), "auth's manifest lacks {line:?}:\n{auth}");
    }
}

#[test]
fn what_cannot_be_carried_is_reported_with_file_and_line() {
    let imported = imported("plugsync.plugin=false");
    let find = |field: &str| imported.notes.iter().find(|n| n.field == field);
    // (field, line, words the reason holds)
    let table: [(&str, usize, &str); 10] = [
        ("services.crm.container_name", 13, "names instances itself"),
        ("services.crm.ports.0", 15, "published on the host"),
        ("services.crm.environment.DATABASE_URL", 20, "does not interpolate"),
        ("services.crm.healthcheck.interval", 23, "own schedule"),
        ("services.crm.depends_on.db", 36, "not a plugin"),
        ("services.crm.restart", 40, "unless-stopped"),
        ("services.auth.update_config", 0, ""),
        ("services.auth.deploy.update_config.order", 54, "start-first"),
        ("services.auth.build", 56, "does not build"),
        ("volumes", 57, "not part of a plugin manifest"),
    ];
    for (field, line, words) in table {
        if line == 0 {
            assert!(find(field).is_none(), "{field} is not a note");
            continue;
        }
        let note = find(field).unwrap_or_else(|| panic!("no note for {field}: {:#?}", imported.notes));
        assert_eq!((note.file.as_str(), note.line), ("docker-compose.plugins.yml", line), "{note}");
        assert!(note.reason.contains(words), "{note}");
    }
    let report = imported.report("Import of docker-compose.plugins.yml");
    assert!(
        report.contains("## crm\n") && report.contains("`docker-compose.plugins.yml:13` `services.crm.container_name`"),
        "{report}"
    );
}

#[test]
fn services_are_excluded_by_name_or_label_and_dependencies_on_them_noted() {
    let by_name = {
        let doc = Document::parse("c.yml", REALISTIC.as_bytes()).expect("parses");
        import(&[doc], &Options { exclude: vec!["db".into(), "auth".into()], ..Options::default() })
    };
    assert_eq!(by_name.plugins.len(), 1);
    assert!(by_name
        .notes
        .iter()
        .any(|n| n.field == "services.crm.depends_on.auth" && n.reason.contains("not a plugin")));
    let none = imported("no-such-label");
    assert!(none.plugins.iter().any(|p| p.id == "db"), "nothing excluded: db is a plugin too");
}

#[test]
fn versions_ports_memory_and_references_read_as_compose_means_them() {
    for (image, want) in [
        ("crm:2.3.0", Some("2.3.0")),
        ("crm:v1.4", Some("1.4.0")),
        ("reg:5000/team/crm:2.0.0-rc.1", Some("2.0.0-rc.1")),
        ("crm:07", Some("7.0.0")),
        ("crm:latest", None),
        ("crm", None),
        ("crm@sha256:abc", None),
        ("reg:5000/crm", None),
    ] {
        assert_eq!(version_of_image(image).as_deref(), want, "{image}");
    }
    for (name, want) in
        [("crm", Some("crm")), ("My_Service.v2", Some("my_service-v2")), ("--x", Some("x")), ("..", None)]
    {
        assert_eq!(plugin_id(name).as_deref(), want, "{name}");
    }
}

#[test]
fn no_input_panics() {
    for text in ["", "[]", "services: 3", "services: {a: 3}", "services: {a: {image: 3}}", "services: {a: {image: x, ports: [{}], environment: 3, deploy: {replicas: -1, resources: {limits: {memory: zz}}}}}"] {
        if let Ok(doc) = Document::parse("c.yml", text.as_bytes()) {
            let _ = import(&[doc], &Options::default());
        }
    }
}

/// A Deployment and its Service as a team applies them, plus a ConfigMap that is not a plugin.
pub const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: crm
  labels: { app: crm }
spec:
  replicas: 2
  strategy:
    type: RollingUpdate
    rollingUpdate: { maxSurge: 1, maxUnavailable: 0 }
  selector:
    matchLabels: { app: crm }
  template:
    metadata:
      labels: { app: crm, team: sales }
    spec:
      serviceAccountName: crm
      containers:
        - name: crm
          image: registry.example.com/crm:2.3.0
          ports: [{ containerPort: 8080 }]
          env:
            - { name: LOG_LEVEL, value: info }
            - name: CRM_API_KEY
              valueFrom:
                secretKeyRef: { name: crm-secrets, key: api-key }
          resources:
            limits: { cpu: 500m, memory: 256Mi }
            requests: { cpu: 250m, memory: 128Mi }
          readinessProbe:
            httpGet: { path: /health/ready, port: 8080 }
          livenessProbe:
            httpGet: { path: /health/live, port: 8080 }
          volumeMounts: [{ name: data, mountPath: /data }]
        - name: log-shipper
          image: fluent-bit:2.0
---
apiVersion: v1
kind: Service
metadata:
  name: crm
spec:
  type: NodePort
  selector: { app: crm }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: crm-config }
data: { a: b }
"#;

#[test]
fn a_deployment_and_its_service_become_a_plugin_that_validates() {
    let docs: Vec<Document> =
        super::kubernetes::split("crm.yaml", DEPLOYMENT).into_iter().map(|d| d.expect("parses")).collect();
    assert_eq!(docs.len(), 3);
    let imported = super::kubernetes::import(&docs, Some("sales"));
    let mut files = FileSet::new();
    files.insert("plugsync.yaml".into(), imported.fleet_config.clone().into_bytes());
    for p in &imported.plugins {
        files.insert(format!("plugins/{}/plugin.yaml", p.id), p.manifest.clone().into_bytes());
    }
    let loaded = load(&files, None);
    let text = manifest(&imported, "crm");
    assert!(loaded.is_valid(), "{:#?}\n{text}", loaded.diagnostics);
    for line in [
        "id: \"crm\"  # crm.yaml:4",
        "version: \"2.3.0\"",
        "    cpu: \"500m\"",
        "    memory: \"128Mi\"",
        "  port: 8080",
        "  readiness: \"/health/ready\"",
        "  liveness: \"/health/live\"",
        "replicas: 2",
        "  \"LOG_LEVEL\": \"info\"",
        "  \"CRM_API_KEY\": { fromEnv: \"CRM_SECRETS_API_KEY\" }",
        "  strategy: Rolling",
        "    batchSize: 1",
        "tags: [\"app=crm\", \"team=sales\"]",
    ] {
        assert!(text.contains(line), "crm's manifest lacks {line:?}:\n{text}");
    }
    let find = |field: &str| {
        imported
            .notes
            .iter()
            .find(|n| n.field == field)
            .unwrap_or_else(|| panic!("no note {field}: {:#?}", imported.notes))
    };
    for (field, line, words) in [
        ("spec.template.spec.containers.1", 35, "log-shipper is not carried"),
        ("spec.template.spec.serviceAccountName", 17, "pod spec itself"),
        ("spec.template.spec.containers.0.volumeMounts", 34, "not carried"),
        ("spec.template.spec.containers.0.env.1", 24, "Secret crm-secrets key api-key"),
        ("spec.strategy.rollingUpdate.maxUnavailable", 10, "start-first"),
        ("spec.type", 43, "NodePort"),
        ("spec.ports.0", 45, "port 80 to 8080"),
        ("kind", 48, "ConfigMap is not carried"),
    ] {
        let n = find(field);
        assert_eq!(n.line, line, "{n}");
        assert!(n.reason.contains(words), "{n}");
    }
}
