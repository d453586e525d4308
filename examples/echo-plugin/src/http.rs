//! Minimal, defensive HTTP/1.1 request reading and response writing.
//!
//! Never panics on bad input: every malformed or oversized request becomes an
//! error value that the caller turns into a 4xx answer (or a closed socket).

use std::io::{self, Read, Write};

/// Largest request head (request line + headers) we accept.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body we are willing to read and discard.
pub const MAX_BODY: usize = 1024 * 1024;

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub keep_alive: bool,
}

pub enum ReadError {
    /// The peer closed the connection (cleanly, between requests) or timed out while idle.
    Closed,
    /// Head larger than [`MAX_HEAD`]: answer 431 and close.
    HeadTooLarge,
    /// Body larger than [`MAX_BODY`] or chunked: answer 413 and close.
    BodyTooLarge,
    /// Anything we cannot parse: answer 400 and close.
    Malformed,
}

/// Reads one request from `stream`. `buf` carries bytes left over from the previous
/// request on the same connection (pipelining) and receives the leftover of this one.
pub fn read_request(stream: &mut impl Read, buf: &mut Vec<u8>) -> Result<Request, ReadError> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::HeadTooLarge);
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(if buf.iter().all(|b| b.is_ascii_whitespace()) {
                    ReadError::Closed
                } else {
                    ReadError::Malformed
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadError::Closed),
        }
    };
    if head_end > MAX_HEAD {
        return Err(ReadError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| ReadError::Malformed)?;
    // Tolerate stray CRLFs before the request line (RFC 9112 §2.2).
    let mut lines = head.trim_start_matches("\r\n").split("\r\n");
    let request_line = lines.next().ok_or(ReadError::Malformed)?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => return Err(ReadError::Malformed),
    };
    if !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ReadError::Malformed);
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ReadError::Malformed),
    };
    let mut content_length: usize = 0;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| ReadError::Malformed)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // We do not implement chunked request bodies; refuse rather than desync.
            return Err(ReadError::BodyTooLarge);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    if content_length > MAX_BODY {
        return Err(ReadError::BodyTooLarge);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let request = Request { method: method.to_string(), path, query, keep_alive };

    // Drop the head, then read and discard the body.
    buf.drain(..head_end + 4);
    while buf.len() < content_length {
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Malformed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadError::Closed),
        }
    }
    buf.drain(..content_length);
    Ok(request)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

pub fn write_response(
    stream: &mut impl Write,
    code: u16,
    content_type: &str,
    body: &str,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reason(code),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

/// Query-string value for `key` (no percent-decoding: we only read numbers).
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| match pair.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        _ => None,
    })
}

/// A JSON string literal for `s`, quotes included.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
