//! The JSON Schemas in `policy/`, embedded in the binary, and schema validation of a document
//! into diagnostics that say what was found and what was expected.

use super::diagnostic::{brief, Diagnostic};
use super::document::{field_path, pointer_segment, Document};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Registry, Resource, Validator};
use serde_json::Value;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    PluginManifest,
    RolloutPolicy,
    FleetConfig,
    EnvironmentOverlay,
    AdmissionPolicy,
}

const BASE: &str = "https://plugsync.dev/schemas/";

impl SchemaKind {
    pub const ALL: [SchemaKind; 5] = [
        SchemaKind::PluginManifest,
        SchemaKind::RolloutPolicy,
        SchemaKind::FleetConfig,
        SchemaKind::EnvironmentOverlay,
        SchemaKind::AdmissionPolicy,
    ];

    /// The name `plugsync schema NAME` takes.
    pub fn name(self) -> &'static str {
        match self {
            SchemaKind::PluginManifest => "plugin-manifest",
            SchemaKind::RolloutPolicy => "rollout-policy",
            SchemaKind::FleetConfig => "fleet-config",
            SchemaKind::EnvironmentOverlay => "environment-overlay",
            SchemaKind::AdmissionPolicy => "admission-policy",
        }
    }

    pub fn from_name(name: &str) -> Option<SchemaKind> {
        let name = name.trim_end_matches(".json").trim_end_matches(".schema");
        SchemaKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The schema text exactly as in `policy/`.
    pub fn text(self) -> &'static str {
        match self {
            SchemaKind::PluginManifest => include_str!("../../../../policy/plugin-manifest.schema.json"),
            SchemaKind::RolloutPolicy => include_str!("../../../../policy/rollout-policy.schema.json"),
            SchemaKind::FleetConfig => include_str!("../../../../policy/fleet-config.schema.json"),
            SchemaKind::EnvironmentOverlay => {
                include_str!("../../../../policy/environment-overlay.schema.json")
            }
            SchemaKind::AdmissionPolicy => include_str!("../../../../policy/admission-policy.schema.json"),
        }
    }

    fn uri(self) -> String {
        format!("{BASE}{}.schema.json", self.name())
    }

    fn value(self) -> Value {
        // The schemas are part of the binary and covered by tests; a broken one is a build defect.
        serde_json::from_str(self.text()).expect("embedded schema is valid JSON")
    }

    fn validator(self) -> &'static Validator {
        static REGISTRY: OnceLock<Registry<'static>> = OnceLock::new();
        static VALIDATORS: OnceLock<Vec<Validator>> = OnceLock::new();
        let registry = REGISTRY.get_or_init(|| {
            let resources = SchemaKind::ALL.iter().map(|k| (k.uri(), Resource::from_contents(k.value())));
            Registry::new().extend(resources).and_then(|b| b.prepare()).expect("embedded schemas register")
        });
        let all = VALIDATORS.get_or_init(|| {
            SchemaKind::ALL
                .iter()
                .map(|kind| {
                    jsonschema::options()
                        .should_validate_formats(false)
                        .with_registry(registry)
                        .build(&kind.value())
                        .expect("embedded schema compiles")
                })
                .collect()
        });
        &all[SchemaKind::ALL.iter().position(|k| *k == self).unwrap_or(0)]
    }

    /// Every schema violation in `doc`, each pointing at its field.
    pub fn check(self, doc: &Document) -> Vec<Diagnostic> {
        let mut out: Vec<Diagnostic> = Vec::new();
        for error in self.validator().iter_errors(&doc.value) {
            let pointer = error.instance_path().as_str().to_string();
            let instance = lookup(&doc.value, &pointer);
            let diagnostic = describe(doc, &pointer, instance, error.kind(), &error.to_string());
            if !out.contains(&diagnostic) {
                out.push(diagnostic);
            }
        }
        out
    }
}

fn lookup<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    value.pointer(pointer)
}

fn describe(
    doc: &Document,
    pointer: &str,
    instance: Option<&Value>,
    kind: &ValidationErrorKind,
    message: &str,
) -> Diagnostic {
    let found = instance.map(brief).unwrap_or_else(|| "nothing".into());
    let here = doc.diagnostic("schema", pointer);
    match kind {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let child = format!("{pointer}/{}", pointer_segment(name));
            let mut d = here.field(field_path(&child)).found("nothing");
            d.expected = format!("required field `{name}`");
            d
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let name = unexpected.first().cloned().unwrap_or_default();
            let child = format!("{pointer}/{}", pointer_segment(&name));
            let pos = doc.locate(&child);
            Diagnostic::error("unknown-field", &doc.path)
                .at(pos)
                .field(field_path(&child))
                .found(format!("unknown field `{}`", unexpected.join("`, `")))
                .expected(format!("only the fields the schema defines at `{}`", scope(pointer)))
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => format!("a value of type {t}"),
                TypeKind::Multiple(ts) => {
                    let names: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
                    format!("a value of type {}", names.join(" or "))
                }
            };
            here.found(found).expected(expected_for(pointer).map(str::to_string).unwrap_or(expected))
        }
        ValidationErrorKind::Enum { options } => {
            let list: Vec<String> = match options.as_ref() {
                Value::Array(items) => items.iter().map(brief).collect(),
                other => vec![brief(other)],
            };
            here.found(found).expected(format!("one of {}", list.join(", ")))
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
            here.found(found).expected(format!("a number of at least {limit}"))
        }
        ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
            here.found(found).expected(format!("a number of at most {limit}"))
        }
        ValidationErrorKind::MinItems { limit } => here.found(found).expected(format!("at least {limit} item(s)")),
        ValidationErrorKind::UniqueItems => here.found(found).expected("items without repeats"),
        _ => {
            let expected = if is_rate_field(pointer) {
                super::rate::expected_instead_of(found.parse().unwrap_or(f64::NAN))
            } else {
                expected_for(pointer).map(str::to_string).unwrap_or_else(|| generic_expected(message, &found))
            };
            here.found(found).expected(expected)
        }
    }
}

/// The parent object's field path, or "the top level".
fn scope(pointer: &str) -> String {
    if pointer.is_empty() {
        "the top level".into()
    } else {
        field_path(pointer)
    }
}

fn generic_expected(message: &str, found: &str) -> String {
    // jsonschema's message starts with the instance; keep only what it says about it.
    message.strip_prefix(found).map(str::trim).unwrap_or(message).to_string()
}

fn is_rate_field(pointer: &str) -> bool {
    matches!(pointer.rsplit('/').next(), Some("maxErrorRate" | "minSuccessRate" | "winnerThreshold"))
}

/// What a field must hold, by its name: the human text behind the schema's patterns.
fn expected_for(pointer: &str) -> Option<&'static str> {
    use super::duration::DURATION_EXPECTED;
    use super::quantity::{CPU_EXPECTED, MEMORY_EXPECTED};
    let last = pointer.rsplit('/').next()?;
    let parent = pointer.rsplit('/').nth(1).unwrap_or("");
    let is_index = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    Some(match (parent, last) {
        (_, "cpu") => CPU_EXPECTED,
        (_, "memory") => MEMORY_EXPECTED,
        (
            _,
            "interval" | "evaluationPeriod" | "waitBetweenBatches" | "healthCheckTimeout"
            | "warmupPeriod" | "monitoringPeriod" | "testDuration" | "duration"
            | "repeatInterval",
        ) => DURATION_EXPECTED,
        (_, "id" | "pluginId") => {
            "a plugin id: lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters"
        }
        ("dependsOn", _) if is_index => "the id of another plugin in this fleet",
        (_, "version") | ("versions", _) => "a semantic version such as 1.2.3",
        (_, "batchSize") => "a count of at least 1 or a percentage such as 25%",
        (_, "fleet") => "a fleet name: lowercase letters, digits, '-' and '_'",
        (_, "schedule") => "a cron expression such as \"0 3 * * *\"",
        (_, "image") => "an image reference such as registry/name:1.2.3",
        ("smokeTests", _) if is_index => "a URL path starting with / (no spaces, quotes, # or braces)",
        (_, "basePath" | "healthCheck" | "liveness" | "readiness" | "openapi" | "metrics") => {
            "a URL path starting with / (no spaces, quotes, # or braces)"
        }
        (_, "backend") => "docker, kubernetes, or {type: docker|kubernetes, …}",
        (_, "secretEnv") | ("secretEnv", _) => "{fromEnv: VAR} or {fromFile: PATH}",
        (_, "policy") => "a policy name: letters, digits, '-', '_' and '.'",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_names_round_trip() {
        for kind in SchemaKind::ALL {
            let _ = kind.validator();
            assert_eq!(SchemaKind::from_name(kind.name()), Some(kind));
        }
    }

    #[test]
    fn memory_pattern_error_names_field_and_expectation() {
        let text = "id: crm\nversion: 1.0.0\nruntime:\n  image: x:1\n  resources:\n    memory: 512X\n";
        let doc = Document::parse("plugins/crm/plugin.yaml", text.as_bytes()).unwrap();
        let errors = SchemaKind::PluginManifest.check(&doc);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(e.field, "runtime.resources.memory");
        assert_eq!(e.line, Some(6));
        assert_eq!(e.found, "\"512X\"");
        assert!(e.expected.contains("512Mi"), "{e}");
    }
}
