use super::*;
use crate::model::{load, FileSet};

/// (id, image, replicas, cpu, memory); an empty cpu/memory means no limit.
type Def<'a> = (&'a str, &'a str, u32, &'a str, &'a str);

fn fleet(plugins: &[Def]) -> Fleet {
    let mut files = FileSet::new();
    for (id, image, replicas, cpu, memory) in plugins {
        let mut resources = Vec::new();
        if !cpu.is_empty() {
            resources.push(format!("cpu: \"{cpu}\""));
        }
        if !memory.is_empty() {
            resources.push(format!("memory: \"{memory}\""));
        }
        let text = format!(
            "id: {id}\nversion: 1.0.0\nreplicas: {replicas}\nruntime:\n  image: \"{image}\"\n  resources: {{{}}}\n",
            resources.join(", ")
        );
        files.insert(format!("plugins/{id}/plugin.yaml"), text.into_bytes());
    }
    let loaded = load(&files, None);
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    loaded.fleet
}

fn policy(yaml: &str) -> AdmissionPolicy {
    match AdmissionPolicy::parse("admission.yaml", yaml.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("{yaml}: {e:?}"),
    }
}

/// (plugin, rule) of every refusal, for compact table assertions.
fn verdict(policy_yaml: &str, plugins: &[Def]) -> Vec<(String, Rule)> {
    admit(&policy(policy_yaml), &fleet(plugins)).into_iter().map(|r| (r.plugin, r.rule)).collect()
}

#[test]
fn each_per_instance_rule_refuses_only_the_plugin_that_breaks_it() {
    let ok = ("ok", "registry.example.com/ok:1", 2, "500m", "256Mi");
    let cases: &[(&str, Def, Rule)] = &[
        (
            "allowedImagePrefixes: [registry.example.com/]",
            ("bad", "evil.example/x:1", 1, "1", "1Gi"),
            Rule::AllowedImagePrefixes,
        ),
        ("maxReplicas: 3", ("bad", "registry.example.com/x:1", 4, "1", "1Gi"), Rule::MaxReplicas),
        ("maxCpu: 1", ("bad", "registry.example.com/x:1", 1, "1500m", "1Gi"), Rule::MaxCpu),
        ("maxCpu: 1", ("bad", "registry.example.com/x:1", 1, "", "1Gi"), Rule::MaxCpu),
        ("maxMemory: 512Mi", ("bad", "registry.example.com/x:1", 1, "1", "1Gi"), Rule::MaxMemory),
        ("maxMemory: 512Mi", ("bad", "registry.example.com/x:1", 1, "1", ""), Rule::MaxMemory),
    ];
    for (rules, bad, rule) in cases {
        assert_eq!(verdict(rules, &[ok, *bad]), vec![("bad".to_string(), *rule)], "{rules} {bad:?}");
    }
}

#[test]
fn limits_at_the_maximum_are_allowed() {
    let rules = "maxReplicas: 2\nmaxCpu: 500m\nmaxMemory: 256Mi\nmaxFleetCpu: 1\nmaxFleetMemory: 512Mi\n";
    assert_eq!(verdict(rules, &[("a", "a:1", 2, "0.5", "256Mi")]), vec![]);
}

#[test]
fn fleet_sums_are_replicas_times_the_instance_limit_admitted_in_id_order() {
    // a: 2 × 500m = 1 core, b: 3 × 500m = 1.5 cores, c: 1 × 500m; limit 2 cores.
    let plugins =
        [("a", "a:1", 2, "500m", "100Mi"), ("b", "b:1", 3, "500m", "100Mi"), ("c", "c:1", 1, "500m", "100Mi")];
    assert_eq!(verdict("maxFleetCpu: 2", &plugins), vec![("b".to_string(), Rule::MaxFleetCpu)]);
    // 100Mi × (2 + 3 + 1) = 600Mi; 450Mi holds a and c (300Mi) but not b on top of a (500Mi).
    assert_eq!(verdict("maxFleetMemory: 450Mi", &plugins), vec![("b".to_string(), Rule::MaxFleetMemory)]);
    assert_eq!(verdict("maxFleetCpu: 3\nmaxFleetMemory: 600Mi", &plugins), vec![]);
}

#[test]
fn a_plugin_refused_by_its_own_rule_does_not_use_up_the_fleet_budget() {
    let plugins = [("a", "a:1", 9, "1", "1Gi"), ("b", "b:1", 1, "1", "1Gi")];
    assert_eq!(verdict("maxReplicas: 5\nmaxFleetCpu: 1", &plugins), vec![("a".to_string(), Rule::MaxReplicas)]);
}

#[test]
fn image_prefixes_compare_normalised_references_at_component_boundaries() {
    let cases = [
        ("nginx", "nginx", true),
        ("nginx", "nginx:1.27", true),
        ("nginx", "docker.io/library/nginx:1.27", true),
        ("docker.io/library/nginx", "nginx@sha256:0123", true),
        ("nginx", "nginx-evil:1", false),
        ("nginx", "evil/nginx:1", false),
        ("acme/", "acme/crm:2", true),
        ("acme", "acme/crm:2", false),
        ("acme/", "docker.io/acme/crm:2", true),
        ("registry.example.com/plugins/", "registry.example.com/plugins/crm:1", true),
        ("registry.example.com/plugins", "registry.example.com/plugins-evil/crm:1", false),
        ("registry.example.com", "registry.example.com/crm:1", true),
        ("localhost:5000/", "localhost:5000/crm:1", true),
        ("registry.example.com/", "crm:1", false),
    ];
    for (prefix, image, allowed) in cases {
        assert_eq!(prefix_allows(prefix, &normalise_image(image)), allowed, "{prefix} vs {image}");
    }
}

#[test]
fn a_refusal_names_rule_plugin_field_found_and_allowed() {
    let refusals = admit(&policy("maxReplicas: 2"), &fleet(&[("crm", "crm:1", 5, "", "")]));
    let text = refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert_eq!(
        text,
        "plugins/crm/plugin.yaml: plugin crm refused by admission rule maxReplicas: replicas found 5, allowed at most 2"
    );
    let mut files = FileSet::new();
    let manifest = "id: crm\nversion: 1.0.0\nruntime:\n  image: crm:1\nreplicas: 5\n";
    files.insert("plugins/crm/plugin.yaml".into(), manifest.as_bytes().to_vec());
    let mut located = refusals.clone();
    locate(&mut located, &files);
    assert_eq!(located[0].line, Some(5));
    assert!(located[0].to_string().starts_with("plugins/crm/plugin.yaml:5: plugin crm"), "{}", located[0]);
    let refusals = admit(&policy("allowedImagePrefixes: [ghcr.io/acme/]"), &fleet(&[("crm", "nginx", 1, "", "")]));
    assert_eq!(refusals[0].found, "\"nginx\" (normalised docker.io/library/nginx:latest)");
    assert_eq!(refusals[0].allowed, "an image under ghcr.io/acme/");
}

#[test]
fn no_policy_admits_everything() {
    assert!(policy("").is_empty());
    assert_eq!(verdict("{}", &[("a", "anything:1", 100, "", "")]), vec![]);
}

#[test]
fn flags_override_the_file_rule_by_rule() {
    let file = policy("maxReplicas: 3\nmaxCpu: 1\nallowedImagePrefixes: [a/]");
    let flags = AdmissionPolicy { max_replicas: Some(5), ..AdmissionPolicy::default() };
    let merged = file.overridden_by(flags);
    assert_eq!(merged.max_replicas, Some(5));
    assert_eq!(merged.max_cpu, Cpu::parse("1"));
    assert_eq!(merged.allowed_image_prefixes, vec!["a/".to_string()]);
}

#[test]
fn a_broken_policy_file_names_file_line_field_found_and_expected() {
    let cases = [
        ("admission.yaml", "maxReplicas: 3\nmaxMemory: lots\n", "admission.yaml:2", "maxMemory"),
        ("admission.yaml", "maxReplicas: 3\nmaxReplica: 3\n", "admission.yaml:2", "maxReplica"),
        ("admission.yaml", "maxReplicas: -1\n", "admission.yaml:1", "maxReplicas"),
        (
            "admission.json",
            "{\"maxCpu\": \"1\",\n \"allowedImagePrefixes\": \"nginx\"}",
            "admission.json:2",
            "allowedImagePrefixes",
        ),
        ("admission.yaml", "maxCpu: [1\n", "admission.yaml:", ""),
    ];
    for (path, text, location, field) in cases {
        let errors = match AdmissionPolicy::parse(path, text.as_bytes()) {
            Ok(p) => panic!("{text:?} parsed as {p:?}"),
            Err(e) => e,
        };
        let shown = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(shown.starts_with(location), "{shown}");
        assert!(shown.contains(field), "{shown}");
        assert!(shown.contains("found") && shown.contains("expected"), "{shown}");
    }
}
