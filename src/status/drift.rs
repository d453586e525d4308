//! Drift in the status branch: when it was detected, what it is, when it was resolved; one
//! commit when drift opens, changes its findings, or resolves — none while it stays the same.

pub use super::book::DriftStatus;
use super::book::{to_yaml, PluginStatus};
use super::StatusCommit;
use crate::plan::drift::Finding;
use std::collections::BTreeMap;

/// New statuses and the commits recording drift changes, from all findings of a check.
pub fn drift_commits(
    previous: &BTreeMap<String, PluginStatus>,
    findings: &[Finding],
    now: &str,
) -> (BTreeMap<String, PluginStatus>, Vec<StatusCommit>) {
    let mut statuses = previous.clone();
    let mut commits = Vec::new();
    for (id, status) in statuses.iter_mut() {
        let lines: Vec<String> = findings.iter().filter(|f| f.plugin == *id).map(ToString::to_string).collect();
        let open = status.drift.as_ref().filter(|d| d.open);
        let message = match (open, lines.is_empty()) {
            (None, true) => None,
            (None, false) => {
                status.drift = Some(DriftStatus {
                    open: true,
                    findings: lines.clone(),
                    detected_at: now.into(),
                    resolved_at: None,
                });
                Some(format!("{id}: drift detected: {}", summary(&lines)))
            }
            (Some(d), false) if d.findings != lines => {
                let detected_at = d.detected_at.clone();
                status.drift =
                    Some(DriftStatus { open: true, findings: lines.clone(), detected_at, resolved_at: None });
                Some(format!("{id}: drift now: {}", summary(&lines)))
            }
            (Some(_), false) => None,
            (Some(d), true) => {
                let message = format!("{id}: drift resolved (open since {})", d.detected_at);
                status.drift = Some(DriftStatus { open: false, resolved_at: Some(now.into()), ..d.clone() });
                Some(message)
            }
        };
        if let Some(message) = message {
            let files = vec![(format!("status/{id}.yaml"), Some(to_yaml(&*status).into_bytes()))];
            commits.push(StatusCommit { message, files });
        }
    }
    (statuses, commits)
}

fn summary(lines: &[String]) -> String {
    match lines {
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first}; and {} more", rest.len()),
        [] => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::drift::DriftKind;

    fn status(id: &str) -> PluginStatus {
        serde_json::from_value(serde_json::json!({"plugin": id, "state": "ACTIVE"})).expect("status")
    }

    fn stopped(instance: &str) -> Finding {
        Finding {
            kind: DriftKind::Stopped,
            plugin: "web".into(),
            instance: instance.into(),
            expected: "running".into(),
            found: "exited (exit code 143)".into(),
            cause: None,
        }
    }

    #[test]
    fn opens_changes_stays_quiet_and_resolves() {
        let start = BTreeMap::from([("web".to_string(), status("web")), ("api".to_string(), status("api"))]);
        let (s1, c1) = drift_commits(&start, &[stopped("w1")], "t1");
        assert_eq!(c1.len(), 1);
        assert!(c1[0].message.starts_with("web: drift detected: web/w1: stopped"), "{}", c1[0].message);
        let (s2, c2) = drift_commits(&s1, &[stopped("w1")], "t2");
        assert!(c2.is_empty(), "the same drift again commits nothing");
        let (s3, c3) = drift_commits(&s2, &[stopped("w1"), stopped("w2")], "t3");
        assert!(c3[0].message.contains("and 1 more"), "{}", c3[0].message);
        assert_eq!(s3["web"].drift.as_ref().map(|d| d.detected_at.as_str()), Some("t1"));
        let (s4, c4) = drift_commits(&s3, &[], "t4");
        assert_eq!(c4[0].message, "web: drift resolved (open since t1)");
        let d = s4["web"].drift.clone().expect("kept");
        assert!(!d.open && d.resolved_at.as_deref() == Some("t4"));
        let (_, c5) = drift_commits(&s4, &[], "t5");
        assert!(c5.is_empty());
    }
}
