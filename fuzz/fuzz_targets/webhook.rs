//! Git push webhooks (GitHub, GitLab, Gitea): headers and body, signature checked.
//! Input, HTTP-like: the secret on the first line (empty: none), `name: value` header lines,
//! an empty line, then the body.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let secret = lines.next().filter(|s| !s.is_empty());
    let mut headers = http::HeaderMap::new();
    for line in lines.take(16) {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(name), Ok(value)) =
                (http::HeaderName::from_bytes(name.trim().as_bytes()), http::HeaderValue::from_str(value.trim()))
            {
                headers.insert(name, value);
            }
        }
    }
    let _ = plugsync::server::webhook::receive(&headers, body, secret);
});
