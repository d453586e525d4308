//! The RBAC of `examples/kubernetes/rbac.yaml`, proven on the real cluster of `../shared/k8s`:
//! the ServiceAccount, Role and RoleBinding are applied to a test namespace, plugsync runs as
//! that ServiceAccount (a kubeconfig with its token) through the real CLI binary, and
//!
//! * with the Role as written: a fleet with one plugin (2 replicas, a ConfigMap, a Secret)
//!   is created, bumped with Rolling and pruned, each `plugsync reconcile --once` exiting 0;
//!   the daemon (`plugsync run --leader-lease`) creates and renews its Lease;
//! * the ServiceAccount can do nothing outside its namespace (pods in `default`, namespaces);
//! * least privilege: for every verb of every rule, the Role without that one verb makes a
//!   step fail with a 403 naming it (a verb no step needs would fail this test); `watch` is the
//!   daemon's event path (drift seen at once).
//!
//! Also keeps `examples/kubernetes/deployment.yaml` honest: a server-side dry run, and the
//! Lease it asks for is the one the Role names.
//!
//! Ignored unless asked for (`.ci/run` runs them with `--include-ignored`); fails without a cluster.

use plugsync_test_support::docker as common;
use plugsync_test_support::k8s as common_k8s;

use common::{rolling, PluginDef, V1, V2};
use common_k8s::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The environment variable the plugin's `secretEnv` reads on the plugsync side.
const SECRET_VAR: &str = "PLUGSYNC_RBAC_TEST_KEY";
const SECRET_VALUE: &str = "rbac-test-signing-key";
const LEASE: &str = "plugsync-leader";
const SA: &str = "plugsync";

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes").join(file)
}

/// The documents of an example manifest, moved into `namespace`.
fn documents(file: &str, namespace: &str) -> Vec<Value> {
    let path = example(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    docs.into_iter()
        .filter(|d| !d.is_null())
        .map(|mut d| {
            d["metadata"]["namespace"] = json!(namespace);
            if let Some(subjects) = d.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    s["namespace"] = json!(namespace);
                }
            }
            d
        })
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in the example"))
}

/// One (resource, verb) of the Role, and which rule holds it.
#[derive(Clone, Debug)]
struct Grant {
    rule: usize,
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

fn grants(rules: &[PolicyRule]) -> Vec<Grant> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let resources = rule.resources.clone().unwrap_or_default();
        let groups = rule.api_groups.clone().unwrap_or_default();
        assert!(
            resources.len() == 1 && groups.len() == 1,
            "rule {i} of rbac.yaml: one resource per rule, so that each verb can be taken away on its own: {rule:?}"
        );
        for verb in &rule.verbs {
            out.push(Grant {
                rule: i,
                group: groups[0].clone(),
                resource: resources[0].clone(),
                verb: verb.clone(),
                names: rule.resource_names.clone().unwrap_or_default(),
            });
        }
    }
    out
}

/// The Role's rules without one verb (a rule left with no verb goes).
fn without(rules: &[PolicyRule], grant: &Grant) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut rule = rule.clone();
        if i == grant.rule {
            rule.verbs.retain(|v| v != &grant.verb);
        }
        if !rule.verbs.is_empty() {
            out.push(rule);
        }
    }
    out
}

/// Which step shows that a verb is needed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    /// `plugsync reconcile --once` of the plugin from nothing.
    Create,
    /// `plugsync reconcile --once` after the plugin left Git (it runs, serving).
    Prune,
    /// `plugsync run --leader-lease` holding and renewing its Lease.
    Lease,
    /// `plugsync run` watching the fleet's Deployments and Pods.
    Watch,
}

fn step_for(grant: &Grant) -> Option<Step> {
    Some(match (grant.resource.as_str(), grant.verb.as_str()) {
        ("deployments", "list" | "get" | "create" | "patch") => Step::Create,
        ("pods", "list") => Step::Create,
        ("services" | "configmaps" | "secrets", "get" | "create" | "patch") => Step::Create,
        ("pods", "get" | "patch" | "delete") | ("deployments" | "services", "delete") => Step::Prune,
        ("leases", _) => Step::Lease,
        ("deployments" | "pods", "watch") => Step::Watch,
        _ => return None,
    })
}

/// What the API server says when the verb is missing. Server-side apply of an object that
/// does not exist yet checks `create` separately and answers 403 with an empty reason
/// (`configmaps "x" is forbidden: `), so for those only the resource can be told.
fn denial_evidence(grant: &Grant, output: &str) -> Option<String> {
    let exact = format!("cannot {} resource \"{}\"", grant.verb, grant.resource);
    // The daemon logs the whole kube error: the API server's sentence is enough.
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("forbidden"))
        .map(|l| l.split(": Forbidden (Status {").next().unwrap_or(l))
        .collect();
    if let Some(line) = lines.iter().find(|l| l.contains(&exact)) {
        return Some(line.trim().to_string());
    }
    if grant.verb == "create" && grant.resource != "leases" {
        let qualified =
            if grant.group.is_empty() { grant.resource.clone() } else { format!("{}.{}", grant.resource, grant.group) };
        let empty_reason = "is forbidden:  (403)";
        return lines
            .iter()
            .find(|l| l.contains(&format!("{qualified} \"")) && l.contains(empty_reason))
            .map(|l| l.trim().to_string());
    }
    None
}

struct Harness {
    cluster: Cluster,
    fleet: K8sFleet,
    rules: Vec<PolicyRule>,
    kubeconfig: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Harness {
    fn ns(&self) -> &str {
        &self.cluster.namespace
    }

    /// Replaces the Role's rules and waits until the authorizer has seen it: `probe` (a grant)
    /// answers `allowed` for the ServiceAccount.
    async fn set_rules(&self, rules: &[PolicyRule], probe: &Grant, allowed: bool) {
        let patch = json!({ "rules": rules });
        self.cluster
            .api::<Role>()
            .patch("plugsync", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch the Role");
        let t = Instant::now();
        while self.can(probe).await != allowed {
            assert!(t.elapsed() < Duration::from_secs(20), "the authorizer never saw the Role change for {probe:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A SubjectAccessReview for the ServiceAccount (asked by the admin).
    async fn can(&self, grant: &Grant) -> bool {
        self.can_in(self.ns(), &grant.group, &grant.resource, &grant.verb, grant.names.first().map(String::as_str))
            .await
    }

    async fn can_in(&self, namespace: &str, group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
        let review: SubjectAccessReview = serde_json::from_value(json!({
            "spec": {
                "user": format!("system:serviceaccount:{}:{SA}", self.ns()),
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", self.ns()), "system:authenticated"],
                "resourceAttributes": { "namespace": namespace, "group": group, "resource": resource, "verb": verb, "name": name },
            }
        }))
        .expect("review");
        let api: Api<SubjectAccessReview> = Api::all(self.cluster.client.clone());
        let answer = api.create(&PostParams::default(), &review).await.expect("SubjectAccessReview");
        answer.status.is_some_and(|s| s.allowed)
    }

    /// `plugsync reconcile <fleet> --once --backend kubernetes --namespace <ns>` as the
    /// ServiceAccount.
    async fn reconcile(&self) -> (bool, String, Duration) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_plugsync"));
        command.arg("reconcile").arg(self.fleet.path()).args([
            "--once",
            "--backend",
            "kubernetes",
            "--namespace",
            self.ns(),
        ]);
        let t = Instant::now();
        let output = self.run(command).await;
        (output.status.success(), text(&output), t.elapsed())
    }

    async fn run(&self, mut command: Command) -> Output {
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env(SECRET_VAR, SECRET_VALUE)
            .env_remove("PLUGSYNC_LOG")
            .env_remove("PLUGSYNC_BACKEND")
            .env_remove("PLUGSYNC_NAMESPACE")
            .stdin(Stdio::null());
        tokio::task::spawn_blocking(move || command.output().expect("run the plugsync binary")).await.expect("join")
    }

    /// Everything of the fleet gone (admin), so the next step starts from nothing.
    async fn reset(&self) {
        let selector = format!("plugsync.fleet={}", self.fleet.name);
        let list = ListParams::default().labels(&selector);
        let now = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::background() };
        self.cluster.api::<Deployment>().delete_collection(&now, &list).await.expect("delete deployments");
        self.cluster.api::<ReplicaSet>().delete_collection(&now, &list).await.expect("delete replicasets");
        self.cluster.api::<Pod>().delete_collection(&now, &list).await.expect("delete pods");
        // Services have no deletecollection before Kubernetes 1.23.
        for service in self.cluster.api::<Service>().list_metadata(&list).await.expect("list services").items {
            let name = service.metadata.name.unwrap_or_default();
            let _ = self.cluster.api::<Service>().delete(&name, &now).await;
        }
        self.cluster.api::<ConfigMap>().delete_collection(&now, &list).await.expect("delete configmaps");
        self.cluster.api::<Secret>().delete_collection(&now, &list).await.expect("delete secrets");
        let t = Instant::now();
        loop {
            let left = self.cluster.api::<Pod>().list_metadata(&list).await.expect("list").items.len()
                + self.cluster.api::<ReplicaSet>().list_metadata(&list).await.expect("list").items.len()
                + self.cluster.api::<Deployment>().list_metadata(&list).await.expect("list").items.len();
            if left == 0 {
                return;
            }
            if t.elapsed() > Duration::from_secs(5) {
                // A ReplicaSet deleted between two lists may have made a pod meanwhile.
                self.cluster.api::<ReplicaSet>().delete_collection(&now, &list).await.expect("delete replicasets");
                self.cluster.api::<Pod>().delete_collection(&now, &list).await.expect("delete pods");
            }
            assert!(t.elapsed() < Duration::from_secs(60), "the fleet's objects did not go away");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Pods and warning events of the namespace, for failure messages.
    async fn diagnose(&self) -> String {
        let pods = self.cluster.pods(&format!("plugsync.fleet={}", self.fleet.name)).await;
        let events = self
            .cluster
            .api::<k8s_openapi::api::core::v1::Event>()
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let warnings: Vec<String> = events
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.involved_object.name.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default()
                )
            })
            .collect();
        format!("pods: {}\nwarning events:\n{}", describe_pods(&pods), warnings.join("\n"))
    }

    async fn deployed(&self) -> Vec<Deployment> {
        let list = ListParams::default().labels(&format!("plugsync.fleet={}", self.fleet.name));
        self.cluster.api::<Deployment>().list(&list).await.expect("list deployments").items
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn web(version: &str, replicas: u32) -> String {
    let def =
        PluginDef::new("web", version).replicas(replicas).config("{greeting: hello}").rollout(&rolling(1, "0s", "60s"));
    format!("{}secretEnv:\n  API_KEY: {{ fromEnv: {SECRET_VAR} }}\n", def.yaml())
}

/// The ServiceAccount's token: Kubernetes 1.20 makes a token Secret for it.
async fn token(cluster: &Cluster) -> String {
    let t = Instant::now();
    loop {
        let sa = cluster.api::<ServiceAccount>().get(SA).await.expect("get the ServiceAccount");
        for reference in sa.secrets.unwrap_or_default() {
            let Some(name) = reference.name else { continue };
            let Some(secret) = cluster.api::<Secret>().get_opt(&name).await.expect("get the token Secret") else {
                continue;
            };
            if secret.type_.as_deref() != Some("kubernetes.io/service-account-token") {
                continue;
            }
            if let Some(token) = secret.data.and_then(|d| d.get("token").cloned()) {
                eprintln!(
                    "[{}] MEASURED ServiceAccount token Secret {name} after {:?}",
                    cluster.namespace,
                    t.elapsed()
                );
                return String::from_utf8(token.0).expect("utf-8 token");
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no token Secret for ServiceAccount {SA} within 60s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A kubeconfig that is the ServiceAccount: the admin kubeconfig's server and CA, the token.
fn service_account_kubeconfig(admin: &str, token: &str, namespace: &str, into: &Path) -> PathBuf {
    let config = kube::config::Kubeconfig::read_from(admin).expect("read the admin kubeconfig");
    let context = config.current_context.clone().expect("admin kubeconfig has a current context");
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .expect("current context");
    let cluster = config.clusters.iter().find(|c| c.name == cluster_name).expect("current cluster");
    let path = into.join("plugsync-sa.kubeconfig");
    let body = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "cluster", "cluster": cluster.cluster }],
        "users": [{ "name": SA, "user": { "token": token } }],
        "contexts": [{ "name": SA, "context": { "cluster": "cluster", "user": SA, "namespace": namespace } }],
        "current-context": SA,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&body).expect("json")).expect("write kubeconfig");
    path
}

/// `plugsync run --leader-lease` as the ServiceAccount for a few seconds, the Lease watched by
/// the admin: (renewals seen with our identity as holder, the daemon's stderr).
async fn lease_run(h: &Harness, repo: &Path, cache: &Path, seconds: u64) -> (Vec<String>, String) {
    let api = h.cluster.api::<Lease>();
    let _ = api.delete(LEASE, &DeleteParams::default()).await;
    let identity = format!("{}-replica-0", h.ns());
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugsync"))
        .args(["run", "--repo"])
        .arg(repo)
        .args(["--branch", "main", "--backend", "kubernetes", "--namespace", h.ns(), "--leader-lease", LEASE])
        .args(["--lease-duration", "2s", "--interval", "1s", "--listen", "127.0.0.1:0", "--no-watch", "--cache-dir"])
        .arg(cache)
        .env("KUBECONFIG", &h.kubeconfig)
        .env("POD_NAME", &identity)
        .env("PLUGSYNC_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("PLUGSYNC_BACKEND")
        .env_remove("PLUGSYNC_NAMESPACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start plugsync run");
    let mut renewals: Vec<String> = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(seconds) {
        if let Ok(Some(lease)) = api.get_opt(LEASE).await {
            let spec = lease.spec.unwrap_or_default();
            if spec.holder_identity.as_deref() == Some(identity.as_str()) {
                let renewed = spec.renew_time.map(|r| r.0.to_string()).unwrap_or_default();
                if renewals.last() != Some(&renewed) {
                    renewals.push(renewed);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("stop plugsync run");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait")).await.expect("join");
    let _ = api.delete(LEASE, &DeleteParams::default()).await;
    (renewals, text(&output))
}

/// A local Git repository holding an empty fleet (the daemon's lease is what is tested).
fn lease_repo(dir: &Path, fleet: &str, namespace: &str) {
    let repo = git2::Repository::init(dir).expect("git init");
    std::fs::write(
        dir.join("plugsync.yaml"),
        format!("fleet: {fleet}\nbackend:\n  type: kubernetes\n  namespace: {namespace}\n"),
    )
    .expect("write plugsync.yaml");
    let mut index = repo.index().expect("index");
    index.add_path(Path::new("plugsync.yaml")).expect("git add");
    index.write().expect("write index");
    let tree = repo.find_tree(index.write_tree().expect("write tree")).expect("tree");
    let sig = git2::Signature::now("rbac test", "rbac@test.invalid").expect("signature");
    repo.commit(Some("refs/heads/main"), &sig, &sig, "empty fleet", &tree, &[]).expect("commit");
    repo.set_head("refs/heads/main").expect("HEAD");
}

#[ignore = "needs a Kubernetes cluster: .ci/k8s-cluster up"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_role_is_enough_and_every_verb_in_it_is_needed() {
    let cluster = Cluster::connect("krbac").await;
    let started = Instant::now();
    let ns = cluster.namespace.clone();
    // The plugin's secretEnv is resolved by plugsync: the CLI gets it from its environment,
    // the admin-side setup of the prune steps from this process's.
    // SAFETY: set before anything reads it; no other thread of this test reads env.
    unsafe { std::env::set_var(SECRET_VAR, SECRET_VALUE) };
    cluster.ensure_echo_images(&[V1, V2]).await;

    // The example RBAC, moved into the test namespace, applied by the admin.
    let rbac = documents("rbac.yaml", &ns);
    let sa: ServiceAccount = serde_json::from_value(kind(&rbac, "ServiceAccount").clone()).expect("ServiceAccount");
    let role: Role = serde_json::from_value(kind(&rbac, "Role").clone()).expect("Role");
    let binding: RoleBinding = serde_json::from_value(kind(&rbac, "RoleBinding").clone()).expect("RoleBinding");
    assert_eq!(rbac.len(), 3, "rbac.yaml: a ServiceAccount, a Role and a RoleBinding");
    assert_eq!(sa.metadata.name.as_deref(), Some(SA));
    assert_eq!(role.metadata.name.as_deref(), Some("plugsync"));
    let post = PostParams::default();
    cluster.api::<ServiceAccount>().create(&post, &sa).await.expect("create the ServiceAccount");
    cluster.api::<Role>().create(&post, &role).await.expect("create the Role");
    cluster.api::<RoleBinding>().create(&post, &binding).await.expect("create the RoleBinding");
    let rules = role.rules.clone().unwrap_or_default();
    let all = grants(&rules);
    let lease_names: Vec<&Grant> = all.iter().filter(|g| g.resource == "leases" && !g.names.is_empty()).collect();
    assert!(lease_names.iter().all(|g| g.names == [LEASE]), "the Role's Lease is {LEASE}: {lease_names:?}");

    // deployment.yaml: valid for the API server (dry run), and asks for the Lease the Role names.
    let manifests = documents("deployment.yaml", &ns);
    let deployment = kind(&manifests, "Deployment");
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("container args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--leader-lease", LEASE]),
        "deployment.yaml runs with Lease {LEASE}: {args:?}"
    );
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], SA);
    let dry = PostParams { dry_run: true, ..Default::default() };
    for doc in manifests.iter().chain(documents("secret.example.yaml", &ns).iter()) {
        let object: DynamicObject = serde_json::from_value(doc.clone()).expect("object");
        let resource = match doc["kind"].as_str() {
            Some("Deployment") => ApiResource::erase::<Deployment>(&()),
            Some("Service") => ApiResource::erase::<Service>(&()),
            Some("Secret") => ApiResource::erase::<Secret>(&()),
            other => panic!("unexpected kind {other:?} in the examples"),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), &ns, &resource);
        api.create(&dry, &object).await.unwrap_or_else(|e| panic!("server-side dry run of {}: {e}", doc["kind"]));
    }

    let scratch = tempfile::tempdir().expect("tempdir");
    let token = token(&cluster).await;
    let kubeconfig = service_account_kubeconfig(&cluster.kubeconfig(), &token, &ns, scratch.path());
    let fleet = K8sFleet::new(&cluster);
    fleet.write(
        "plugsync.yaml",
        &format!("fleet: {}\nbackend:\n  type: kubernetes\n  namespace: {ns}\nmaxPruneFraction: 1\n", fleet.name),
    );
    let h = Harness { cluster, fleet, rules, kubeconfig, _scratch: scratch };

    // 1. The Role as written: create, Rolling bump, prune.
    h.fleet.write("plugins/web/plugin.yaml", &web(V1, 2));
    let (ok, out, took) = h.reconcile().await;
    assert!(ok, "reconcile as the ServiceAccount failed:\n{out}\n{}", h.diagnose().await);
    eprintln!(
        "[{}] MEASURED create (2 replicas, ConfigMap, Secret, Service) under the Role: exit 0 in {took:?}",
        h.ns()
    );
    let deployments = h.deployed().await;
    assert_eq!(deployments.len(), 1, "one Deployment");
    let status = deployments[0].status.clone().unwrap_or_default();
    assert_eq!((status.replicas, status.ready_replicas), (Some(2), Some(2)), "Deployment ready 2/2");
    let name = deployments[0].metadata.name.clone().expect("name");
    let cm = h.cluster.api::<ConfigMap>().get(&format!("{name}-config")).await.expect("the ConfigMap");
    assert!(cm.data.unwrap_or_default().contains_key("PLUGIN_CONFIG"));
    let secret = h.cluster.api::<Secret>().get(&format!("{name}-secret")).await.expect("the Secret");
    assert_eq!(
        secret.data.unwrap_or_default().get("API_KEY").map(|b| b.0.clone()),
        Some(SECRET_VALUE.as_bytes().to_vec()),
        "secretEnv reached the Secret"
    );
    assert!(h.cluster.api::<Service>().get_opt("web").await.expect("get").is_some(), "the Service");

    h.fleet.write("plugins/web/plugin.yaml", &web(V2, 2));
    let (ok, out, took) = h.reconcile().await;
    assert!(ok, "Rolling bump as the ServiceAccount failed:\n{out}\n{}", h.diagnose().await);
    eprintln!("[{}] MEASURED Rolling bump 1.0.0 -> 1.1.0 under the Role: exit 0 in {took:?}", h.ns());
    let pods = h.cluster.pods("plugsync.plugin=web").await;
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    assert_eq!(live.len(), 2, "{}", describe_pods(&pods));
    assert!(live.iter().all(|p| label(p, "plugsync.version") == Some(V2)), "{}", describe_pods(&pods));
    assert_eq!(ready_serving(&pods), 2, "{}", describe_pods(&pods));

    h.fleet.remove_plugin("web");
    let (ok, out, took) = h.reconcile().await;
    assert!(ok, "prune as the ServiceAccount failed:\n{out}\n{}", h.diagnose().await);
    eprintln!("[{}] MEASURED prune under the Role: exit 0 in {took:?}", h.ns());
    assert!(h.deployed().await.is_empty(), "the Deployment is gone");
    assert!(h.cluster.api::<Service>().get_opt("web").await.expect("get").is_none(), "the Service is gone");
    let t = Instant::now();
    while h.cluster.api::<ConfigMap>().get_opt(&format!("{name}-config")).await.expect("get").is_some()
        || h.cluster.api::<Secret>().get_opt(&format!("{name}-secret")).await.expect("get").is_some()
    {
        assert!(t.elapsed() < Duration::from_secs(30), "ConfigMap and Secret were not garbage-collected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 2. Nothing outside the namespace.
    let sa_config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&h.kubeconfig).expect("read"),
        &Default::default(),
    )
    .await
    .expect("ServiceAccount config");
    let sa_client = kube::Client::try_from(sa_config).expect("ServiceAccount client");
    let forbidden = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) => (s.code == 403).then_some(s.message),
        _ => None,
    };
    let other = Api::<Pod>::namespaced(sa_client.clone(), "default").list(&ListParams::default()).await;
    let message = forbidden(other.map(|_| ())).expect("the ServiceAccount must not list pods in default");
    eprintln!("[{}] MEASURED list pods in default as the ServiceAccount: 403 {message}", h.ns());
    let everywhere = Api::<Pod>::all(sa_client.clone()).list(&ListParams::default()).await;
    assert!(forbidden(everywhere.map(|_| ())).is_some(), "the ServiceAccount must not list pods cluster-wide");
    let namespace = Api::<Namespace>::all(sa_client.clone()).get(&h.cluster.namespace).await;
    let message = forbidden(namespace.map(|_| ())).expect("namespaces get is not granted (plugsync tolerates the 403)");
    eprintln!("[{}] MEASURED get own namespace as the ServiceAccount: 403 {message} (tolerated by prepare)", h.ns());
    assert!(!h.can_in("default", "apps", "deployments", "patch", None).await);

    // 3. The daemon's leader election under the Role.
    let repo = tempfile::tempdir().expect("tempdir");
    lease_repo(repo.path(), &format!("{}-lease", h.fleet.name), h.ns());
    let cache = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let (renewals, out) = lease_run(&h, repo.path(), cache.path(), 4).await;
    assert!(renewals.len() >= 2, "the daemon should create and renew Lease {LEASE}; saw {renewals:?}\n{out}");
    assert!(!out.contains("forbidden"), "{out}");
    eprintln!(
        "[{}] MEASURED plugsync run --leader-lease under the Role: Lease created and renewed {} times in {:?}",
        h.ns(),
        renewals.len() - 1,
        t.elapsed()
    );

    // 4. Least privilege: each verb taken away breaks a step, with a 403 that names it.
    let mut table = Vec::new();
    for grant in &all {
        let step = step_for(grant).unwrap_or_else(|| {
            panic!(
                "no step of this test needs {} {}: is it needed? (add a step or drop it from rbac.yaml)",
                grant.verb, grant.resource
            )
        });
        let t = Instant::now();
        h.reset().await;
        h.set_rules(&without(&h.rules, grant), grant, false).await;
        let (failed, output) = match step {
            Step::Create => {
                h.fleet.write("plugins/web/plugin.yaml", &web(V1, 1));
                let (ok, out, _) = h.reconcile().await;
                (!ok, out)
            }
            Step::Prune => {
                // Deployed by the admin (the narrowed Role cannot), then removed from Git.
                h.fleet.write("plugins/web/plugin.yaml", &web(V1, 1));
                let backend = h.cluster.backend().await;
                let report = h.fleet.reconcile(&backend).await;
                assert!(
                    report.results.iter().all(|r| r.result == plugsync::reconcile::Ending::Converged),
                    "setup as admin: {report:#?}"
                );
                h.fleet.remove_plugin("web");
                let (ok, out, _) = h.reconcile().await;
                (!ok, out)
            }
            Step::Lease => {
                let (renewals, out) = lease_run(&h, repo.path(), cache.path(), 3).await;
                // Holding means renewing: a Lease never created, or never renewed, is lost.
                (renewals.len() < 2, out)
            }
            Step::Watch => {
                // The daemon's watch on the fleet's objects is refused: drift would wait for
                // the next poll.
                let (_, out) = lease_run(&h, repo.path(), cache.path(), 3).await;
                (out.contains("forbidden"), out)
            }
        };
        assert!(
            failed,
            "without {} {} the {step:?} step still succeeded: the verb is not needed?\n{output}",
            grant.verb, grant.resource
        );
        let evidence = denial_evidence(grant, &output).unwrap_or_else(|| {
            panic!(
                "without {} {}, the {step:?} step failed but not with a 403 about it:\n{output}",
                grant.verb, grant.resource
            )
        });
        eprintln!(
            "[{}] MEASURED without {} {}: {step:?} fails ({:.1}s): {evidence}",
            h.ns(),
            grant.verb,
            grant.resource,
            t.elapsed().as_secs_f64()
        );
        table.push(format!("{}/{}", grant.resource, grant.verb));
    }
    h.set_rules(&h.rules, &all[0], true).await;
    h.reset().await;
    eprintln!(
        "[{}] MEASURED every verb of the example Role is needed ({}): {}; whole test {:?}",
        h.ns(),
        table.len(),
        table.join(" "),
        started.elapsed()
    );
}
