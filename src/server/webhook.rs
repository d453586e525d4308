//! Git webhook verification and parsing, pure: headers + body + secret in, event or error out.
//!
//! Providers are told apart by their event header; Gitea/Forgejo/Gogs are checked first because
//! Gitea also sends `X-GitHub-Event`. With a secret, every delivery — pings included — must be
//! signed (GitHub, Gitea, generic: HMAC-SHA256 of the raw body) or carry the token (GitLab).

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    /// Gitea, Forgejo and Gogs.
    Gitea,
    GitLab,
    /// No known event header: a JSON push body, optionally signed with `X-Hub-Signature-256`.
    Generic,
}

impl Provider {
    /// Lower-case name, used as the metric label and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
            Provider::Generic => "generic",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of delivery this was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A push (branch or tag); `git_ref` is set.
    Push,
    /// A connectivity test (GitHub `ping`): answer 200, trigger nothing.
    Ping,
    /// Any other event, named as the provider named it: ignored.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub provider: Provider,
    pub kind: EventKind,
    /// `refs/heads/main`, `refs/tags/v1`; empty unless `kind` is `Push`.
    pub git_ref: String,
    pub after: Option<String>,
    pub repository: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong signature/token while a secret is configured → 401.
    #[error("unauthorized webhook: {0}")]
    Unauthorized(&'static str),
    /// The body is not the JSON we expect → 400.
    #[error("invalid webhook payload: {0}")]
    Invalid(String),
}

impl WebhookError {
    /// The `result` label of `plugsync_webhook_requests_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            WebhookError::Unauthorized(_) => "unauthorized",
            WebhookError::Invalid(_) => "invalid",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Which provider sent this, and the event name it gave (if any).
pub fn detect(headers: &HeaderMap) -> (Provider, Option<String>) {
    for name in ["x-gitea-event", "x-forgejo-event", "x-gogs-event"] {
        if let Some(event) = header(headers, name) {
            return (Provider::Gitea, Some(event.to_string()));
        }
    }
    if let Some(event) = header(headers, "x-gitlab-event") {
        return (Provider::GitLab, Some(event.to_string()));
    }
    if let Some(event) = header(headers, "x-github-event") {
        return (Provider::GitHub, Some(event.to_string()));
    }
    (Provider::Generic, None)
}

fn event_kind(provider: Provider, event: Option<&str>) -> EventKind {
    match (provider, event) {
        (Provider::Generic, _) => EventKind::Push,
        (Provider::GitLab, Some("Push Hook" | "Tag Push Hook")) => EventKind::Push,
        (Provider::GitHub | Provider::Gitea, Some("push")) => EventKind::Push,
        (Provider::GitHub | Provider::Gitea, Some("ping")) => EventKind::Ping,
        (_, event) => EventKind::Other(event.unwrap_or_default().to_string()),
    }
}

/// Verifies and parses one delivery. `secret: None` skips verification (the server logs that).
pub fn receive(headers: &HeaderMap, body: &[u8], secret: Option<&str>) -> Result<PushEvent, WebhookError> {
    let (provider, event) = detect(headers);
    if let Some(secret) = secret {
        verify(provider, headers, body, secret)?;
    }
    let kind = event_kind(provider, event.as_deref());
    if kind != EventKind::Push {
        return Ok(PushEvent { provider, kind, git_ref: String::new(), after: None, repository: None });
    }
    let json = payload_json(headers, body)?;
    let value: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| WebhookError::Invalid(format!("body is not JSON: {e}")))?;
    let git_ref = value
        .get("ref")
        .and_then(|r| r.as_str())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| WebhookError::Invalid("push payload has no \"ref\"".into()))?
        .to_string();
    let after = value.get("after").and_then(|a| a.as_str()).map(str::to_string);
    let repository = value.get("repository").and_then(|repo| {
        ["full_name", "path_with_namespace"]
            .iter()
            .find_map(|k| repo.get(*k).and_then(|v| v.as_str()))
            .map(str::to_string)
    });
    Ok(PushEvent { provider, kind, git_ref, after, repository })
}

fn verify(provider: Provider, headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), WebhookError> {
    match provider {
        Provider::GitLab => {
            let token =
                header(headers, "x-gitlab-token").ok_or(WebhookError::Unauthorized("missing X-Gitlab-Token"))?;
            if constant_time_eq(token.as_bytes(), secret.as_bytes()) {
                Ok(())
            } else {
                Err(WebhookError::Unauthorized("X-Gitlab-Token does not match"))
            }
        }
        Provider::GitHub | Provider::Generic => {
            let sig = header(headers, "x-hub-signature-256")
                .ok_or(WebhookError::Unauthorized("missing X-Hub-Signature-256"))?;
            let hex = strip_prefix_ci(sig, "sha256=")
                .ok_or(WebhookError::Unauthorized("X-Hub-Signature-256 is not sha256=<hex>"))?;
            check_hmac(secret, body, hex)
        }
        Provider::Gitea => {
            let plain = ["x-gitea-signature", "x-forgejo-signature", "x-gogs-signature"]
                .iter()
                .find_map(|name| header(headers, name));
            if let Some(hex) = plain {
                return check_hmac(secret, body, hex);
            }
            let sig = header(headers, "x-hub-signature-256")
                .ok_or(WebhookError::Unauthorized("missing X-Gitea-Signature"))?;
            let hex = strip_prefix_ci(sig, "sha256=")
                .ok_or(WebhookError::Unauthorized("X-Hub-Signature-256 is not sha256=<hex>"))?;
            check_hmac(secret, body, hex)
        }
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

fn check_hmac(secret: &str, body: &[u8], hex: &str) -> Result<(), WebhookError> {
    let sig = decode_hex(hex.trim()).ok_or(WebhookError::Unauthorized("signature is not hex"))?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&sig).map_err(|_| WebhookError::Unauthorized("signature does not match"))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    text.as_bytes().chunks(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

/// Compares two secrets without a data-dependent early exit. Both sides are hashed first, so
/// neither the position of the first difference nor the length of the secret leaks.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    let diff = ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// GitHub may deliver `application/x-www-form-urlencoded` with the JSON in `payload=`; the
/// signature covers the raw body, so decoding happens only after verification.
fn payload_json(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, WebhookError> {
    let form = header(headers, "content-type")
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok(body.to_vec());
    }
    for pair in body.split(|b| *b == b'&') {
        if let Some(value) = pair.strip_prefix(b"payload=") {
            return percent_decode(value)
                .ok_or_else(|| WebhookError::Invalid("bad percent-encoding in payload".into()));
        }
    }
    Err(WebhookError::Invalid("form body has no payload field".into()))
}

fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(input.get(i + 1..i + 3)?).ok()?;
                out.extend(decode_hex(hex)?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    const SECRET: &str = "s3cret";
    const BODY: &str = r#"{"ref":"refs/heads/main","after":"abc123","repository":{"full_name":"acme/fleet"}}"#;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn table() {
        let good = sign(SECRET, BODY.as_bytes());
        let bad = sign("other", BODY.as_bytes());
        let gh_good = format!("sha256={good}");
        let gh_bad = format!("sha256={bad}");
        let gh_upper = format!("sha256={}", good.to_uppercase());
        let ping = r#"{"zen":"Design for failure.","hook_id":1}"#;
        let ping_sig = format!("sha256={}", sign(SECRET, ping.as_bytes()));
        type Want = Result<(Provider, EventKind), &'static str>;
        let push = |p| Ok((p, EventKind::Push));
        /// (name, headers, body, secret, expected)
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, Option<&'a str>, Want);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("github signed", vec![("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &gh_good)], BODY, Some(SECRET), push(Provider::GitHub)),
            ("github upper-case hex", vec![("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &gh_upper)], BODY, Some(SECRET), push(Provider::GitHub)),
            ("github wrong key", vec![("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &gh_bad)], BODY, Some(SECRET), Err("unauthorized")),
            ("github unsigned", vec![("X-GitHub-Event", "push")], BODY, Some(SECRET), Err("unauthorized")),
            ("github sha1 only", vec![("X-GitHub-Event", "push"), ("X-Hub-Signature", "sha1=00")], BODY, Some(SECRET), Err("unauthorized")),
            ("github no prefix", vec![("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &good)], BODY, Some(SECRET), Err("unauthorized")),
            ("github garbage hex", vec![("X-GitHub-Event", "push"), ("X-Hub-Signature-256", "sha256=zz")], BODY, Some(SECRET), Err("unauthorized")),
            ("github no secret", vec![("X-GitHub-Event", "push")], BODY, None, push(Provider::GitHub)),
            ("github ping", vec![("X-GitHub-Event", "ping"), ("X-Hub-Signature-256", &ping_sig)], ping, Some(SECRET), Ok((Provider::GitHub, EventKind::Ping))),
            ("github unsigned ping", vec![("X-GitHub-Event", "ping")], ping, Some(SECRET), Err("unauthorized")),
            ("github issues", vec![("X-GitHub-Event", "issues")], "{}", None, Ok((Provider::GitHub, EventKind::Other("issues".into())))),
            ("github malformed", vec![("X-GitHub-Event", "push")], "{not json", None, Err("invalid")),
            ("github no ref", vec![("X-GitHub-Event", "push")], "{}", None, Err("invalid")),
            ("gitea plain hex", vec![("X-Gitea-Event", "push"), ("X-GitHub-Event", "push"), ("X-Gitea-Signature", &good)], BODY, Some(SECRET), push(Provider::Gitea)),
            ("gitea hub signature", vec![("X-Gitea-Event", "push"), ("X-Hub-Signature-256", &gh_good)], BODY, Some(SECRET), push(Provider::Gitea)),
            ("forgejo", vec![("X-Forgejo-Event", "push"), ("X-Forgejo-Signature", &good)], BODY, Some(SECRET), push(Provider::Gitea)),
            ("gitea wrong", vec![("X-Gitea-Event", "push"), ("X-Gitea-Signature", &bad)], BODY, Some(SECRET), Err("unauthorized")),
            ("gitea unsigned", vec![("X-Gitea-Event", "push")], BODY, Some(SECRET), Err("unauthorized")),
            ("gitlab token", vec![("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", SECRET)], BODY, Some(SECRET), push(Provider::GitLab)),
            ("gitlab tag push", vec![("X-Gitlab-Event", "Tag Push Hook"), ("X-Gitlab-Token", SECRET)], BODY, Some(SECRET), push(Provider::GitLab)),
            ("gitlab wrong token", vec![("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "s3cre")], BODY, Some(SECRET), Err("unauthorized")),
            ("gitlab no token", vec![("X-Gitlab-Event", "Push Hook")], BODY, Some(SECRET), Err("unauthorized")),
            ("gitlab merge request", vec![("X-Gitlab-Event", "Merge Request Hook"), ("X-Gitlab-Token", SECRET)], "{}", Some(SECRET), Ok((Provider::GitLab, EventKind::Other("Merge Request Hook".into())))),
            ("generic signed", vec![("X-Hub-Signature-256", &gh_good)], BODY, Some(SECRET), push(Provider::Generic)),
            ("generic unsigned", vec![], BODY, Some(SECRET), Err("unauthorized")),
            ("generic open", vec![], BODY, None, push(Provider::Generic)),
        ];
        for (name, hs, body, secret, want) in cases {
            let got = receive(&headers(&hs), body.as_bytes(), secret);
            match (got, want) {
                (Ok(ev), Ok((provider, kind))) => {
                    assert_eq!((ev.provider, &ev.kind), (provider, &kind), "{name}");
                    if kind == EventKind::Push {
                        assert_eq!(ev.git_ref, "refs/heads/main", "{name}");
                        assert_eq!(ev.after.as_deref(), Some("abc123"), "{name}");
                        assert_eq!(ev.repository.as_deref(), Some("acme/fleet"), "{name}");
                    }
                }
                (Err(e), Err(label)) => assert_eq!(e.metric_label(), label, "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn gitlab_repository_path_with_namespace() {
        let body = r#"{"ref":"refs/tags/v1","after":"def","project":{},"repository":{"name":"fleet"},"path_with_namespace":"x"}"#;
        let ev = receive(&headers(&[("X-Gitlab-Event", "Tag Push Hook")]), body.as_bytes(), None).unwrap();
        assert_eq!(ev.git_ref, "refs/tags/v1");
        assert_eq!(ev.repository, None);
        let body = r#"{"ref":"refs/heads/main","repository":{"path_with_namespace":"group/fleet"}}"#;
        let ev = receive(&headers(&[("X-Gitlab-Event", "Push Hook")]), body.as_bytes(), None).unwrap();
        assert_eq!(ev.repository.as_deref(), Some("group/fleet"));
        assert_eq!(ev.after, None);
    }

    #[test]
    fn github_form_encoded_payload_is_verified_over_the_raw_body() {
        let raw = "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%2C%22after%22%3A%22abc+1%22%7D";
        let sig = format!("sha256={}", sign(SECRET, raw.as_bytes()));
        let hs = headers(&[
            ("X-GitHub-Event", "push"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Hub-Signature-256", &sig),
        ]);
        let ev = receive(&hs, raw.as_bytes(), Some(SECRET)).unwrap();
        assert_eq!(ev.git_ref, "refs/heads/main");
        assert_eq!(ev.after.as_deref(), Some("abc 1"));
    }

    #[test]
    fn constant_time_eq_compares_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
