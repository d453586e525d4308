//! Table tests of the planner: one case per action kind, plus pruning guards and ordering.

use super::*;
use crate::model::{load, FileSet};
use crate::plan::spec::slot_targets;

pub(super) fn manifest(id: &str, version: &str, extra: &str) -> (String, Vec<u8>) {
    let text = format!(
        "id: {id}\nversion: {version}\nruntime:\n  image: echo:{version}\n  resources: {{cpu: 250m, memory: 512Mi}}\n{extra}"
    );
    (format!("plugins/{id}/plugin.yaml"), text.into_bytes())
}

pub(super) fn fleet(manifests: &[(String, Vec<u8>)]) -> Fleet {
    let mut files: FileSet = manifests.iter().cloned().collect();
    files.insert("plugsync.yaml".into(), b"fleet: t\nenvironment: QA\n".to_vec());
    let loaded = load(&files, None);
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    loaded.fleet
}

/// What the backend would report after applying `fleet` exactly.
pub(super) fn running(fleet: &Fleet) -> Observed {
    let mut instances = Vec::new();
    for plugin in fleet.plugins.values() {
        for t in slot_targets(plugin) {
            for n in 0..t.replicas {
                instances.push(Instance {
                    id: format!("{}-{}-{n}", plugin.id, t.slot),
                    name: format!("t-{}-{}-{n}", plugin.id, t.slot),
                    plugin: plugin.id.clone(),
                    slot: t.slot,
                    version: t.spec.version.clone(),
                    spec_hash: t.hash.clone(),
                    spec: Some(t.spec.clone()),
                    revision: "r1".into(),
                    state: RunState::Running,
                    serving: true,
                    address: None,
                    ready: None,
                    oom_killed: false,
                    restart_count: 0,
                    image_id: None,
                    runtime: None,
                });
            }
        }
    }
    Observed { instances, ..Default::default() }
}

fn kinds(plan: &Plan) -> Vec<(String, ChangeKind, String)> {
    plan.changes.iter().map(|c| (c.plugin.clone(), c.kind, c.reasons.join("; "))).collect()
}

#[test]
fn unchanged_fleet_plans_nothing() {
    let f = fleet(&[manifest("a", "1.0.0", ""), manifest("b", "1.0.0", "replicas: 2\n")]);
    let plan = plan(&f, &running(&f), DesiredHealth::Complete);
    assert!(plan.no_changes(), "{plan:?}");
}

#[test]
fn every_action_kind_with_its_reason() {
    let before = fleet(&[
        manifest("bump", "1.0.0", ""),
        manifest("scale", "1.0.0", "replicas: 2\n"),
        manifest("mem", "1.0.0", ""),
        manifest("gone", "1.0.0", ""),
        manifest("stopped", "1.0.0", ""),
        manifest("keep1", "1.0.0", ""),
        manifest("keep2", "1.0.0", ""),
    ]);
    let mut observed = running(&before);
    for i in observed.instances.iter_mut().filter(|i| i.plugin == "stopped") {
        i.state = RunState::Exited;
    }
    let after = fleet(&[
        manifest("bump", "1.1.0", ""),
        manifest("scale", "1.0.0", "replicas: 3\n"),
        (
            "plugins/mem/plugin.yaml".into(),
            b"id: mem\nversion: 1.0.0\nruntime:\n  image: echo:1.0.0\n  resources: {cpu: 250m, memory: 1Gi}\n".to_vec(),
        ),
        manifest("stopped", "1.0.0", ""),
        manifest("new", "1.0.0", "replicas: 2\n"),
        manifest("keep1", "1.0.0", ""),
        manifest("keep2", "1.0.0", ""),
    ]);
    let got = kinds(&plan(&after, &observed, DesiredHealth::Complete));
    let expect = [
        ("bump", ChangeKind::Update, "image echo:1.0.0 → echo:1.1.0"),
        ("mem", ChangeKind::Update, "memory 512Mi → 1Gi"),
        ("new", ChangeKind::Create, "new plugin: 2 × 1.0.0"),
        ("scale", ChangeKind::Scale, "replicas 2 → 3"),
        ("stopped", ChangeKind::Repair, "is exited"),
        ("gone", ChangeKind::Remove, "removed from Git"),
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for (plugin, kind, reason) in expect {
        let found = got.iter().find(|(p, _, _)| p == plugin).unwrap_or_else(|| panic!("{plugin} missing: {got:#?}"));
        assert_eq!(found.1, kind, "{plugin}");
        assert!(found.2.contains(reason), "{plugin}: {:?} should contain {reason:?}", found.2);
    }
    assert_eq!(got.last().map(|c| c.1), Some(ChangeKind::Remove), "removals go last");
}

#[test]
fn mass_removal_is_refused() {
    let before = fleet(&[manifest("a", "1.0.0", ""), manifest("b", "1.0.0", ""), manifest("c", "1.0.0", "")]);
    let after = fleet(&[manifest("a", "1.0.0", "")]);
    let plan = plan(&after, &running(&before), DesiredHealth::Complete);
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.refused.len(), 1);
    assert_eq!(plan.refused[0].plugins, vec!["b", "c"]);
    assert!(plan.refused[0].reason.contains("maxPruneFraction"), "{}", plan.refused[0].reason);
}

#[test]
fn a_fleet_with_errors_never_prunes() {
    let before = fleet(&[manifest("a", "1.0.0", ""), manifest("b", "1.0.0", ""), manifest("c", "1.0.0", "")]);
    let after = fleet(&[manifest("a", "1.0.0", ""), manifest("b", "1.0.0", "")]);
    let plan = plan(&after, &running(&before), DesiredHealth::HasErrors);
    assert!(plan.changes.is_empty());
    assert!(plan.refused[0].reason.contains("validation errors"));
}

#[test]
fn dependencies_come_first_and_suspended_is_left_alone() {
    let f = fleet(&[
        manifest("app", "1.0.0", "dependsOn: [db, cache]\n"),
        manifest("cache", "1.0.0", "dependsOn: [db]\n"),
        manifest("db", "1.0.0", ""),
        manifest("frozen", "1.0.0", "suspended: true\n"),
    ]);
    let plan = plan(&f, &Observed::default(), DesiredHealth::Complete);
    let order: Vec<&str> = plan.changes.iter().map(|c| c.plugin.as_str()).collect();
    assert_eq!(order, vec!["db", "cache", "app"]);
    assert_eq!(plan.suspended, vec!["frozen"]);
}

#[test]
fn plan_renders_every_kind() {
    let before = fleet(&[manifest("a", "1.0.0", ""), manifest("b", "1.0.0", ""), manifest("c", "1.0.0", "")]);
    let after = fleet(&[manifest("a", "1.1.0", ""), manifest("b", "1.0.0", ""), manifest("d", "1.0.0", "")]);
    let plan = plan(&after, &running(&before), DesiredHealth::Complete);
    let text = render::text(&plan);
    assert!(text.contains("~ update a (Rolling): image echo:1.0.0 → echo:1.1.0"), "{text}");
    assert!(text.contains("+ create d (Rolling): new plugin: 1 × 1.0.0"), "{text}");
    assert!(text.contains("- remove c: removed from Git"), "{text}");
    let md = render::markdown(&plan);
    assert!(md.contains("| ~ | `a` | update | Rolling |"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).unwrap();
    assert_eq!(json["changes"][0]["kind"], "update");
    let quiet = render::text(&super::plan(&before, &running(&before), DesiredHealth::Complete));
    assert!(quiet.contains("no changes"), "{quiet}");
}

/// Issue 10, defect 8: a plugin the engine could not be read for (an inspect answering 500)
/// is neither recreated, updated, nor pruned; the plan says why.
#[test]
fn defect_8_an_engine_error_is_not_a_missing_container() {
    let f = fleet(&[manifest("crm", "1.1.0", ""), manifest("ok", "1.0.0", "")]);
    let before = fleet(&[manifest("old", "1.0.0", "")]);
    let mut observed = running(&before);
    // `crm`'s container failed to inspect: none of its instances is known.
    observed.unobserved.insert("crm".into(), "Docker failed to inspect container c1: HTTP 500".into());
    observed.unobserved.insert("old".into(), "Docker failed to inspect container c2: HTTP 500".into());
    let plan = plan(&f, &observed, DesiredHealth::Complete);
    assert_eq!(kinds(&plan).iter().map(|(p, k, _)| (p.as_str(), *k)).collect::<Vec<_>>(), [("ok", ChangeKind::Create)]);
    assert!(plan.refused.is_empty(), "an unobserved plugin is not pruned either: {plan:?}");
    let unobserved: Vec<&str> = plan.unobserved.iter().map(|u| u.plugin.as_str()).collect();
    assert_eq!(unobserved, ["crm", "old"]);
    assert!(plan.unobserved[0].reason.contains("HTTP 500"), "{:?}", plan.unobserved);
    assert!(crate::plan::render::text(&plan).contains("? crm not observed"), "{}", crate::plan::render::text(&plan));
    let drift = crate::plan::drift::detect(&f, &observed, &BTreeMap::new(), &[], &BTreeSet::from(["crm".to_string()]));
    assert!(drift.iter().all(|d| d.plugin != "crm"), "no drift for what could not be observed: {drift:?}");
}
