//! Semantic checks the schema cannot express: ids, dependencies, bindings, weights, policies.

use super::context::{Binding, Context, FoundPlugin, Located};
use super::diagnostic::Diagnostic;
use super::document::pointer_segment;
use super::manifest::PluginManifest;
use super::policy::{AbConfig, RolloutPolicy};
use super::{Fleet, PolicySource};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn fleet(
    cx: &mut Context,
    fleet: &Fleet,
    bindings: &BTreeMap<String, Binding>,
    policies: &BTreeMap<String, Located<RolloutPolicy>>,
) {
    kubernetes_name_collisions(cx);
    router_ports(cx, fleet);
    schedules(cx, &fleet.config);
    dependencies(cx, fleet);
    unloaded_policy_references(cx, fleet, policies);
    binding_versions(cx, fleet, bindings);
    for (path, prefix, policy) in policy_sites(fleet, bindings, policies) {
        policy_shape(cx, &path, &prefix, policy);
    }
}

/// Cron expressions and time zones of `schedule` and `windows` in plugsync.yaml.
fn schedules(cx: &mut Context, config: &super::FleetConfig) {
    let Some(path) = super::files::CONFIG_NAMES.iter().find(|n| cx.docs.contains_key(**n)).copied() else { return };
    let mut found = Vec::new();
    if let Some(schedule) = &config.schedule {
        if let Err(e) =
            super::windows::next_scheduled(schedule, super::windows::Zone::UTC, chrono::DateTime::UNIX_EPOCH)
        {
            found.push(
                cx.doc_diag("cron", path, "/schedule")
                    .found(format!("{schedule:?}"))
                    .expected(format!("a cron expression such as \"0 3 * * *\" ({e})")),
            );
        }
    }
    if let Some(zone) = &config.time_zone {
        if let Err(e) = super::windows::parse_zone(Some(zone), config.schedule.as_deref().unwrap_or("schedule")) {
            found.push(cx.doc_diag("time-zone", path, "/timeZone").found(format!("{zone:?}")).expected(e.to_string()));
        }
    }
    for (i, window) in config.windows.iter().enumerate() {
        if let Err(e) = super::windows::validate(std::slice::from_ref(window)) {
            found.push(
                cx.doc_diag("window", path, &format!("/windows/{i}"))
                    .found(format!("{:?} for {}", window.schedule, window.duration))
                    .expected(format!("a valid window: {e}")),
            );
        }
    }
    found.into_iter().for_each(|d| cx.push(d));
}

/// A plugin behind the router listening on one of the router's own ports: the router could not
/// hold its name on that port.
fn router_ports(cx: &mut Context, fleet: &Fleet) {
    use super::routing::{ROUTER_API_PORT, ROUTER_STATS_PORT};
    let found: Vec<Diagnostic> = fleet
        .plugins
        .values()
        .filter(|p| p.routing.is_routed() && [ROUTER_API_PORT, ROUTER_STATS_PORT].contains(&p.manifest.api.port))
        .map(|p| {
            cx.doc_diag("router-port", &p.source, "/api/port")
                .found(format!("port {} behind the router (traffic.router: haproxy)", p.manifest.api.port))
                .expected(format!(
                    "a port other than {ROUTER_API_PORT} and {ROUTER_STATS_PORT}, which the router uses for its runtime API and /metrics"
                ))
        })
        .collect();
    found.into_iter().for_each(|d| cx.push(d));
}

/// Ids that become the same Kubernetes name once `_` is `-`.
fn kubernetes_name_collisions(cx: &mut Context) {
    let mut by_name: BTreeMap<String, Vec<(&String, &String)>> = BTreeMap::new();
    for (id, paths) in &cx.ids_seen {
        if let Some(path) = paths.first() {
            by_name.entry(id.replace('_', "-")).or_default().push((id, path));
        }
    }
    let mut found = Vec::new();
    for (name, ids) in by_name.iter().filter(|(_, ids)| ids.len() > 1) {
        let (id, path) = ids[1];
        let (other_id, other_path) = ids[0];
        found.push(
            cx.doc_diag("id-collision", path, "/id")
                .found(format!("id {id:?}, which as a Kubernetes name is {name:?} like {other_id:?} in {other_path}"))
                .expected("ids that stay distinct when '_' becomes '-'"),
        );
    }
    found.into_iter().for_each(|d| cx.push(d));
}

/// Who depends on whom, with the file that says so: every loaded plugin, and every manifest
/// that failed to load but declared an id, with the `dependsOn` entries that did parse (so one
/// run reports a bad field and the cycle it takes part in).
struct DependencyGraph {
    edges: BTreeMap<String, (String, Vec<String>)>,
}

impl DependencyGraph {
    fn of(cx: &Context, fleet: &Fleet) -> DependencyGraph {
        let mut edges: BTreeMap<String, (String, Vec<String>)> =
            fleet.plugins.values().map(|p| (p.id.clone(), (p.source.clone(), p.manifest.depends_on.clone()))).collect();
        for (id, paths) in &cx.ids_seen {
            let (false, Some(path)) = (edges.contains_key(id), paths.first()) else { continue };
            let raw = cx.docs.get(path).and_then(|d| d.value.get("dependsOn")).and_then(|v| v.as_array());
            let deps = raw.into_iter().flatten().filter_map(|d| d.as_str().map(str::to_string)).collect();
            edges.insert(id.clone(), (path.clone(), deps));
        }
        DependencyGraph { edges }
    }
}

fn dependencies(cx: &mut Context, fleet: &Fleet) {
    let graph = DependencyGraph::of(cx, fleet);
    let mut found = Vec::new();
    for (id, (source, deps)) in &graph.edges {
        for (i, dep) in deps.iter().enumerate() {
            let pointer = format!("/dependsOn/{i}");
            if dep == id {
                found.push(
                    cx.doc_diag("dependency-cycle", source, &pointer)
                        .found(format!("{dep:?} depends on itself"))
                        .expected("the id of another plugin"),
                );
            } else if !cx.ids_seen.contains_key(dep) {
                let hint = cx.ids_seen.keys().find(|k| super::context::similar(dep, k));
                found.push(
                    cx.doc_diag("unknown-dependency", source, &pointer)
                        .found(format!("{dep:?}, which no manifest declares"))
                        .expected(match hint {
                            Some(h) => format!("the id of a plugin in this fleet — did you mean {h:?}?"),
                            None => "the id of a plugin in this fleet".into(),
                        }),
                );
            }
        }
    }
    for cycle in cycles_in(&graph.edges) {
        let (source, deps) = &graph.edges[&cycle[0]];
        let index = deps.iter().position(|d| *d == cycle[1]).unwrap_or(0);
        let mut names = cycle.clone();
        names.push(cycle[0].clone());
        found.push(
            cx.doc_diag("dependency-cycle", source, &format!("/dependsOn/{index}"))
                .found(format!("the cycle {}", names.join(" → ")))
                .expected("dependencies without cycles"),
        );
    }
    found.into_iter().for_each(|d| cx.push(d));
}

/// A manifest that failed to load still names its policy: a missing one is reported in the
/// same run (loaded manifests are checked when their policy is resolved).
fn unloaded_policy_references(cx: &mut Context, fleet: &Fleet, policies: &BTreeMap<String, Located<RolloutPolicy>>) {
    let mut found = Vec::new();
    for (id, paths) in cx.ids_seen.iter().filter(|(id, _)| !fleet.plugins.contains_key(*id)) {
        let Some(path) = paths.first() else { continue };
        let name = cx.docs.get(path).and_then(|d| d.value.get("policy")).and_then(|v| v.as_str());
        if let Some(name) = name.filter(|n| !policies.contains_key(*n)) {
            let names: Vec<&str> = policies.keys().map(String::as_str).collect();
            found.push(
                cx.doc_diag("unknown-policy", path, "/policy")
                    .found(format!("policy {name:?} (plugin {id})"))
                    .expected(if names.is_empty() {
                        "a file policies/<name>.yaml (there is none)".to_string()
                    } else {
                        format!("one of {}", names.join(", "))
                    }),
            );
        }
    }
    found.into_iter().for_each(|d| cx.push(d));
}

/// Every dependency cycle of the fleet's plugins, each reported once.
pub fn cycles(fleet: &Fleet) -> Vec<Vec<String>> {
    let edges: BTreeMap<String, ((), Vec<String>)> =
        fleet.plugins.values().map(|p| (p.id.clone(), ((), p.manifest.depends_on.clone()))).collect();
    cycles_in(&edges)
}

/// Every cycle found by depth-first search, each reported once (rotated so it starts at its
/// smallest id). Iterative: a chain of tens of thousands of plugins must not overflow a stack.
fn cycles_in<T>(edges: &BTreeMap<String, (T, Vec<String>)>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    let deps = |id: &str| -> Vec<&String> {
        edges
            .get(id)
            .map(|(_, deps)| deps.iter().filter(|d| edges.contains_key(*d) && *d != id).collect())
            .unwrap_or_default()
    };
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for root in edges.keys() {
        if marks.contains_key(root.as_str()) {
            continue;
        }
        // Stack of (node, index of the next dependency to visit); `path` mirrors it.
        let mut stack: Vec<(&str, usize)> = vec![(root.as_str(), 0)];
        let mut path: Vec<&str> = vec![root.as_str()];
        marks.insert(root.as_str(), Mark::Active);
        while let Some((node, next)) = stack.last_mut() {
            let children = deps(node);
            if let Some(dep) = children.get(*next) {
                *next += 1;
                match marks.get(dep.as_str()) {
                    Some(Mark::Active) => {
                        let start = path.iter().position(|p| *p == dep.as_str()).unwrap_or(0);
                        let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                        let min = cycle.iter().enumerate().min_by_key(|(_, s)| *s).map(|(i, _)| i);
                        cycle.rotate_left(min.unwrap_or(0));
                        out.insert(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(dep.as_str(), Mark::Active);
                        stack.push((dep.as_str(), 0));
                        path.push(dep.as_str());
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
                path.pop();
            }
        }
    }
    out.into_iter().collect()
}

fn binding_versions(cx: &mut Context, fleet: &Fleet, bindings: &BTreeMap<String, Binding>) {
    let mut found = Vec::new();
    for (id, binding) in bindings {
        let Some(plugin) = fleet.plugins.get(id) else {
            if !cx.ids_seen.contains_key(id) {
                found.push(
                    cx.doc_diag("unknown-plugin", &binding.path, "/pluginId")
                        .found(format!("pluginId {id:?}, which no manifest declares"))
                        .expected("the id of a plugin in this fleet"),
                );
            }
            continue;
        };
        let bare = |v: &str| v.trim_start_matches('v').to_string();
        let declared: BTreeSet<String> = plugin.versions().into_iter().map(bare).collect();
        let version_of = |m: &PluginManifest, path: &str| format!("{} in {path}", m.version);
        let in_manifests = {
            let mut v = vec![version_of(&plugin.manifest, &plugin.source)];
            if let Some(c) = &plugin.canary {
                v.push(version_of(&c.manifest, &c.source));
            }
            v.join(" and ")
        };
        if let Some(v) = &binding.policy.version {
            if !declared.contains(&bare(v)) {
                found.push(
                    cx.doc_diag("version-mismatch", &binding.path, "/version")
                        .found(format!("version {v} in {}", binding.path))
                        .expected(format!("the manifest's version: {in_manifests}")),
                );
            }
        }
        if let Some(vs) = &binding.policy.versions {
            let listed: BTreeSet<String> = vs.iter().map(|v| bare(v)).collect();
            // An A/B binding lists the version B is tested against (variant A) beside B.
            let tested_against = binding.policy.ab_config.as_ref().and_then(|ab| ab.variant_a.as_deref()).map(bare);
            let with_a: BTreeSet<String> = declared.iter().cloned().chain(tested_against).collect();
            if listed != declared && listed != with_a {
                found.push(
                    cx.doc_diag("version-mismatch", &binding.path, "/versions")
                        .found(format!("versions {} in {}", vs.join(", "), binding.path))
                        .expected(format!(
                            "exactly the manifests' versions: {in_manifests} (an A/B binding may add its variantA)"
                        )),
                );
            }
        }
        if let Some(ab) = &binding.policy.ab_config {
            found.extend(ab_variants(cx, &binding.path, ab, &declared, &in_manifests));
        }
    }
    found.into_iter().for_each(|d| cx.push(d));
}

/// B is the manifest's version; A, the version B is tested against, is another one.
fn ab_variants(
    cx: &Context,
    path: &str,
    ab: &AbConfig,
    declared: &BTreeSet<String>,
    in_manifests: &str,
) -> Vec<Diagnostic> {
    let bare = |v: &str| v.trim_start_matches('v').to_string();
    let mut found = Vec::new();
    if let Some(b) = ab.variant_b.as_deref().filter(|b| !declared.contains(&bare(b))) {
        found.push(
            cx.doc_diag("version-mismatch", path, "/abConfig/variantB")
                .found(format!("variantB {b}"))
                .expected(format!("the manifest's version (B is the version being tested): {in_manifests}")),
        );
    }
    if let (Some(a), Some(b)) = (&ab.variant_a, &ab.variant_b) {
        if bare(a) == bare(b) {
            found.push(
                cx.doc_diag("ab-variants", path, "/abConfig/variantA")
                    .found(format!("variantA {a} and variantB {b}"))
                    .expected("two different versions: A the one B is tested against, B the manifest's"),
            );
        }
    }
    found
}

/// Every rollout policy written in the repo, with its file and JSON pointer prefix.
fn policy_sites<'a>(
    fleet: &'a Fleet,
    bindings: &'a BTreeMap<String, Binding>,
    policies: &'a BTreeMap<String, Located<RolloutPolicy>>,
) -> Vec<(String, String, &'a RolloutPolicy)> {
    let mut sites: Vec<(String, String, &RolloutPolicy)> = Vec::new();
    for p in policies.values() {
        sites.push((p.path.clone(), String::new(), &p.value));
    }
    for b in bindings.values() {
        sites.push((b.path.clone(), String::new(), &b.policy));
    }
    for plugin in fleet.plugins.values() {
        if let (PolicySource::Inline(path), Some(policy)) = (&plugin.policy_source, &plugin.manifest.rollout) {
            sites.push((path.clone(), "/rollout".into(), policy));
        }
    }
    sites
}

fn policy_shape(cx: &mut Context, path: &str, prefix: &str, policy: &RolloutPolicy) {
    let at = |field: &str| format!("{prefix}/{field}");
    let mut found = Vec::new();
    if let Some(c) = &policy.canary_config {
        if let Some(steps) = &c.steps {
            if let Some(i) = (1..steps.len()).find(|&i| steps[i] <= steps[i - 1]) {
                found.push(
                    cx.doc_diag("canary-steps", path, &at(&format!("canaryConfig/steps/{i}")))
                        .found(format!("step {} after {}", steps[i], steps[i - 1]))
                        .expected("strictly increasing percentages"),
                );
            }
        }
    }
    if let Some(bg) = &policy.blue_green_config {
        if let Some(steps) = &bg.gradual_steps {
            if let Some(i) = (1..steps.len()).find(|&i| steps[i] <= steps[i - 1]) {
                found.push(
                    cx.doc_diag("gradual-steps", path, &at(&format!("blueGreenConfig/gradualSteps/{i}")))
                        .found(format!("step {} after {}", steps[i], steps[i - 1]))
                        .expected("strictly increasing percentages"),
                );
            }
        }
    }
    if let Some(ab) = &policy.ab_config {
        let sum = ab.traffic_split.a + ab.traffic_split.b;
        if (sum - 100.0).abs() > 1e-9 {
            found.push(
                cx.doc_diag("traffic-split", path, &at("abConfig/trafficSplit"))
                    .found(format!("A {} + B {} = {sum}", ab.traffic_split.a, ab.traffic_split.b))
                    .expected("A + B = 100"),
            );
        }
        let analysis = policy.analysis.clone().unwrap_or_default();
        for (i, metric) in ab.decision_metrics.iter().enumerate() {
            if !analysis.provides(metric) {
                let sources = match (&analysis.builtin, &analysis.prometheus) {
                    (true, Some(p)) => format!(
                        "a built-in metric (latency, errorRate, successRate, throughput) or a Prometheus query name ({})",
                        p.queries.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    (true, None) => "a built-in metric: latency, errorRate, successRate or throughput (or define it from the plugin's counters in analysis.metrics, e.g. {ratio: [conversions_total, http_requests_total]}, or add analysis.prometheus.queries for it)".into(),
                    (false, Some(p)) => format!("a Prometheus query name: {}", p.queries.keys().cloned().collect::<Vec<_>>().join(", ")),
                    (false, None) => "an analysis source (analysis.builtin is false and no prometheus is set)".into(),
                };
                found.push(
                    cx.doc_diag("unprovided-metric", path, &at(&format!("abConfig/decisionMetrics/{i}")))
                        .found(format!("{metric:?}, which no analysis source provides"))
                        .expected(sources),
                );
            }
        }
    }
    if let Some(strategy) = policy.strategy {
        let configs = [
            ("canaryConfig", policy.canary_config.is_some(), super::Strategy::Canary),
            ("blueGreenConfig", policy.blue_green_config.is_some(), super::Strategy::BlueGreen),
            ("abConfig", policy.ab_config.is_some(), super::Strategy::ABTesting),
        ];
        for (name, present, owner) in configs {
            if present && owner != strategy {
                found.push(
                    cx.doc_diag("unused-config", path, &at(&pointer_segment(name)))
                        .found(format!("{name} with strategy {strategy}"))
                        .expected(format!("{name} only with strategy {owner} (it is ignored)"))
                        .as_warning(),
                );
            }
        }
    }
    found.into_iter().for_each(|d| cx.push(d));
}

/// Versioned folders (BotMatrix): one is a plain plugin; two are a fixed-weight canary whose
/// weights must make sense.
// Long: every way BotMatrix-style version folders can disagree on weights, each with its own error.
pub(super) fn versioned_weights(
    cx: &mut Context,
    base: &str,
    mut versions: Vec<Located<PluginManifest>>,
) -> Option<FoundPlugin> {
    versions.sort_by_key(|a| version_key(&a.value.version));
    let weight_error = |cx: &Context, m: &Located<PluginManifest>, found: String, expected: &str| {
        cx.doc_diag("canary-weight", &m.path, "/canary_weight").found(found).expected(expected)
    };
    match versions.len() {
        0 => None,
        1 => {
            let only = versions.remove(0);
            if let Some(w) = only.value.canary_weight.filter(|w| (*w - 100.0).abs() > 1e-9) {
                let d = weight_error(
                    cx,
                    &only,
                    format!("canary_weight {w} on the only version"),
                    "no canary_weight, or 100, when one version folder exists",
                );
                cx.push(d);
                return None;
            }
            Some(Context::versioned_result(only, None))
        }
        2 => {
            let canary = versions.remove(1);
            let stable = versions.remove(0);
            if stable.value.id != canary.value.id {
                let d = cx
                    .doc_diag("versioned-id", &canary.path, "/id")
                    .found(format!("id {:?} beside {:?} in {}", canary.value.id, stable.value.id, stable.path))
                    .expected("the same id in every version folder of a plugin");
                cx.push(d);
                return None;
            }
            let (ws, wc) = (stable.value.canary_weight, canary.value.canary_weight);
            let (stable_w, canary_w) = match (ws, wc) {
                (Some(s), Some(c)) => (s, c),
                (Some(s), None) => (s, 100.0 - s),
                (None, Some(c)) => (100.0 - c, c),
                (None, None) => {
                    let d = weight_error(
                        cx,
                        &canary,
                        "two version folders without canary_weight".into(),
                        "canary_weight on the newer version (e.g. 10) to say how much traffic it gets",
                    );
                    cx.push(d);
                    return None;
                }
            };
            if !(0.0..=100.0).contains(&stable_w)
                || !(0.0..=100.0).contains(&canary_w)
                || (stable_w + canary_w - 100.0).abs() > 1e-9
            {
                let d = weight_error(
                    cx,
                    &canary,
                    format!(
                        "weights {stable_w} ({}) + {canary_w} ({}) = {}",
                        stable.value.version,
                        canary.value.version,
                        stable_w + canary_w
                    ),
                    "two weights between 0 and 100 that add up to 100",
                );
                cx.push(d);
                return None;
            }
            Some(Context::versioned_result(stable, Some((canary, canary_w, stable_w))))
        }
        n => {
            let list: Vec<&str> = versions.iter().map(|v| v.path.as_str()).collect();
            cx.push(
                super::Diagnostic::error("manifest-count", format!("{base}/"))
                    .found(format!("{n} version folders: {}", list.join(", ")))
                    .expected("one version folder, or two for a weighted canary"),
            );
            None
        }
    }
}

fn version_key(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v.trim_start_matches('v')).ok()
}
