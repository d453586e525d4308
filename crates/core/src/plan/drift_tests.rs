//! Table tests of drift detection: each kind from one provoked change, none for a fleet as
//! applied, none for intentional states.

use super::*;
use crate::plan::observed::Runtime;
use crate::plan::tests::{fleet, manifest, running};

/// What Docker reports for a fleet plugsync just applied.
fn applied(f: &Fleet) -> Observed {
    let mut observed = running(f);
    for i in &mut observed.instances {
        let spec = i.spec.clone().expect("spec");
        i.ready = Some(true);
        i.runtime = Some(Runtime {
            image: crate::model::image::normalise(&spec.image),
            env: spec.env.clone(),
            nano_cpus: spec.cpu.map(|c| c.nano_cpus()),
            memory: spec.memory.map(|m| m.bytes() as i64),
            on_network: true,
            status: "running".into(),
            exit_code: None,
        });
    }
    observed
}

fn none() -> std::collections::BTreeSet<String> {
    Default::default()
}

fn two() -> Fleet {
    fleet(&[manifest("a", "1.0.0", "replicas: 2\nenv: {MODE: fast}\n"), manifest("b", "1.0.0", "")])
}

fn kinds(findings: &[Finding]) -> Vec<(String, DriftKind)> {
    findings.iter().map(|f| (f.plugin.clone(), f.kind)).collect()
}

#[test]
fn a_fleet_as_applied_has_no_drift() {
    let f = two();
    assert!(detect(&f, &applied(&f), &BTreeMap::new(), &[], &none()).is_empty());
}

#[test]
fn each_kind_from_one_change() {
    type Change = fn(&mut Instance);
    let cases: Vec<(&str, Change, DriftKind, &str)> = vec![
        (
            "docker stop",
            |i| {
                i.state = RunState::Exited;
                i.runtime.as_mut().unwrap().status = "exited".into();
                i.runtime.as_mut().unwrap().exit_code = Some(143);
            },
            DriftKind::Stopped,
            "exited (exit code 143)",
        ),
        (
            "oom",
            |i| {
                i.state = RunState::Exited;
                i.oom_killed = true;
            },
            DriftKind::OomKilled,
            "killed for memory",
        ),
        (
            "crash loop",
            |i| {
                i.state = RunState::Restarting;
                i.restart_count = 7;
            },
            DriftKind::Restarting,
            "7 restart(s)",
        ),
        (
            "docker update --memory",
            |i| i.runtime.as_mut().unwrap().memory = Some(256 << 20),
            DriftKind::LimitsChanged,
            "memory 256Mi",
        ),
        (
            "docker update --cpus",
            |i| i.runtime.as_mut().unwrap().nano_cpus = Some(1_000_000_000),
            DriftKind::LimitsChanged,
            "cpu 1000m",
        ),
        (
            "env",
            |i| {
                i.runtime.as_mut().unwrap().env.insert("MODE".into(), "slow".into());
            },
            DriftKind::EnvChanged,
            "MODE=slow",
        ),
        (
            "image",
            |i| i.runtime.as_mut().unwrap().image = "docker.io/library/other:2".into(),
            DriftKind::ImageChanged,
            "other:2",
        ),
        ("alias", |i| i.serving = false, DriftKind::AliasLost, "out of traffic"),
        (
            "network",
            |i| {
                i.state = RunState::Dead;
                i.runtime.as_mut().unwrap().on_network = false;
            },
            DriftKind::AliasLost,
            "on no fleet network",
        ),
        ("unhealthy", |i| i.ready = Some(false), DriftKind::Unhealthy, "readiness"),
    ];
    let f = two();
    for (name, change, kind, found) in cases {
        let mut observed = applied(&f);
        let target = observed.instances.iter_mut().find(|i| i.plugin == "a").expect("a");
        change(target);
        let findings = detect(&f, &observed, &BTreeMap::new(), &[], &none());
        assert_eq!(kinds(&findings), vec![("a".to_string(), kind)], "{name}: {findings:#?}");
        assert!(findings[0].found.contains(found), "{name}: {}", findings[0]);
        assert_eq!(findings[0].instance, "t-a-stable-0", "{name}");
    }
}

#[test]
fn counts_missing_and_extra() {
    let f = two();
    let mut observed = applied(&f);
    observed.instances.retain(|i| i.id != "a-stable-1");
    let findings = detect(&f, &observed, &BTreeMap::new(), &[], &none());
    assert_eq!(kinds(&findings), vec![("a".into(), DriftKind::Missing)]);
    assert_eq!((findings[0].expected.as_str(), findings[0].found.as_str()), ("2 instance(s) of 1.0.0 in stable", "1"));

    let mut observed = applied(&f);
    let mut copy = observed.instances.iter().find(|i| i.plugin == "b").cloned().expect("b");
    copy.id = "b-stable-9".into();
    copy.name = "t-b-stable-9".into();
    observed.instances.push(copy);
    let findings = detect(&f, &observed, &BTreeMap::new(), &[], &none());
    assert_eq!(kinds(&findings), vec![("b".into(), DriftKind::Extra)]);
    // Identical copies: the one a reconcile would retire is named (same order as the strategies).
    assert_eq!(findings[0].instance, "t-b-stable-0");
}

#[test]
fn git_changes_and_intentional_states_are_not_drift() {
    let before = two();
    let mut observed = applied(&before);
    observed.instances[0].state = RunState::Exited;
    // Git moved a to 1.1.0: the plan's business, not drift.
    let after = fleet(&[manifest("a", "1.1.0", "replicas: 2\nenv: {MODE: fast}\n"), manifest("b", "1.0.0", "")]);
    assert!(detect(&after, &observed, &BTreeMap::new(), &[], &none()).is_empty());
    // A rollout in flight, a paused one, a rolled-back revision: named by the caller.
    let held = BTreeMap::from([("a".to_string(), "rollout in flight".to_string())]);
    assert!(detect(&before, &observed, &held, &[], &none()).is_empty());
    // Suspended in Git.
    let suspended = fleet(&[
        manifest("a", "1.0.0", "replicas: 2\nenv: {MODE: fast}\nsuspended: true\n"),
        manifest("b", "1.0.0", ""),
    ]);
    assert!(detect(&suspended, &observed, &BTreeMap::new(), &[], &none()).is_empty());
}

#[test]
fn a_squatter_is_foreign() {
    let f = two();
    let squatters = [Squatter { name: "t-a-stable-zzz".into(), plugin: "a".into() }];
    let findings = detect(&f, &applied(&f), &BTreeMap::new(), &squatters, &none());
    assert_eq!(kinds(&findings), vec![("a".into(), DriftKind::Foreign)]);
    assert!(findings[0].to_string().contains("t-a-stable-zzz"), "{}", findings[0]);
}

#[test]
fn every_instance_gone_is_missing_only_for_a_plugin_known_applied() {
    let f = two();
    let mut observed = applied(&f);
    observed.instances.retain(|i| i.plugin != "a");
    // Never applied (a new plugin): the plan's business.
    assert!(detect(&f, &observed, &BTreeMap::new(), &[], &none()).is_empty());
    let known = std::collections::BTreeSet::from(["a".to_string()]);
    let findings = detect(&f, &observed, &BTreeMap::new(), &[], &known);
    assert_eq!(kinds(&findings), vec![("a".into(), DriftKind::Missing)]);
    assert_eq!(findings[0].expected, "2 instance(s) of 1.0.0");
}
