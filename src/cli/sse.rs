//! Server-sent events, the client side, over reqwest's body chunks: a line parser after the
//! WHATWG `text/event-stream` rules (LF, CRLF or CR line ends; `:` comments and keep-alives;
//! multi-line `data:`; an event without data is not dispatched), and the daemon's stream
//! (`GET /api/v1/events`) read event by event.
//!
//! Hand-written rather than a crate: the format is a few rules, the daemon is the only server,
//! and the crates that wrap reqwest (`reqwest-eventsource`) follow reqwest 0.12, not the 0.13
//! this project uses.

use super::api::{causes, ApiError, DaemonEvent};
use std::collections::VecDeque;
use std::time::Duration;

/// A line longer than this is refused (the status document of a big fleet is one line).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:`, or `message` when the event named none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Bytes in, events out; keeps the unfinished line between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    /// The last byte was a CR: an LF right after it ends nothing more.
    after_cr: bool,
    /// The UTF-8 byte order mark at the start of the stream has been dealt with.
    started: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct LineTooLong;

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        let mut out = Vec::new();
        let mut bytes = bytes;
        if !self.started && !bytes.is_empty() {
            self.started = true;
            bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        }
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => self.end_line(&mut out),
                _ if self.line.len() >= MAX_LINE => return Err(LineTooLong),
                _ => self.line.push(b),
            }
        }
        Ok(out)
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return; // a comment: keep-alives look like this
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields: nothing this client uses
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if std::mem::take(&mut self.has_data) {
            let event = if event.is_empty() { "message".to_string() } else { event };
            out.push(SseEvent { event, data });
        }
    }
}

/// The daemon's event stream, one typed event at a time.
pub struct EventStream {
    pub url: String,
    response: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
}

impl EventStream {
    /// `GET /api/v1/events[?plugin=ID]` on `api`.
    pub async fn connect(api: &super::api::Api, plugin: Option<&str>) -> Result<EventStream, ApiError> {
        let mut url = api.url("/api/v1/events");
        if let Some(p) = plugin {
            url = format!("{url}?plugin={p}");
        }
        let response = api
            .client
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| ApiError::Unreachable { url: url.clone(), cause: causes(&e) })?;
        let code = response.status().as_u16();
        if code != 200 {
            let body: String = response.text().await.unwrap_or_default().chars().take(300).collect();
            return Err(ApiError::Status { url, code, body, expected: "server-sent events (text/event-stream)" });
        }
        Ok(EventStream { url, response, parser: SseParser::default(), pending: VecDeque::new() })
    }

    /// The next event; `Ok(None)` when the daemon ends the stream. Cancel-safe: the only
    /// await is on the next body chunk, and what was parsed is kept.
    pub async fn next(&mut self) -> Result<Option<DaemonEvent>, ApiError> {
        loop {
            if let Some(raw) = self.pending.pop_front() {
                return typed(&self.url, &raw).map(Some);
            }
            let chunk =
                self.response.chunk().await.map_err(|e| ApiError::Read { url: self.url.clone(), cause: causes(&e) })?;
            let Some(chunk) = chunk else { return Ok(None) };
            let events = self
                .parser
                .feed(&chunk)
                .map_err(|LineTooLong| ApiError::LineTooLong { url: self.url.clone(), limit: MAX_LINE })?;
            self.pending.extend(events);
        }
    }

    /// What a new subscriber gets first (the latest status, the latest rollout of each
    /// plugin): every event until the stream is quiet for `quiet`, at most `cap` in all.
    pub async fn backlog(&mut self, quiet: Duration, cap: Duration) -> Result<Vec<DaemonEvent>, ApiError> {
        let deadline = tokio::time::Instant::now() + cap;
        let mut out = Vec::new();
        loop {
            let wait = quiet.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            match tokio::time::timeout(wait, self.next()).await {
                Ok(Ok(Some(event))) => out.push(event),
                Ok(Ok(None)) => return Err(ApiError::StreamClosed { url: self.url.clone() }),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(out),
            }
        }
    }
}

/// A raw event as the daemon's typed event.
fn typed(url: &str, raw: &SseEvent) -> Result<DaemonEvent, ApiError> {
    let decode = |expected: &'static str| move |source| ApiError::Decode { url: url.to_string(), expected, source };
    Ok(match raw.event.as_str() {
        "status" => {
            #[derive(serde::Deserialize)]
            struct Wrapped {
                status: super::api::StatusDoc,
            }
            let w: Wrapped = serde_json::from_str(&raw.data).map_err(decode("a status event"))?;
            DaemonEvent::Status(Box::new(w.status))
        }
        "rollout" => DaemonEvent::Rollout(Box::new(
            serde_json::from_str(&raw.data).map_err(decode("a rollout event (plugin, phase, step …)"))?,
        )),
        "log" => {
            let value: serde_json::Value = serde_json::from_str(&raw.data).map_err(decode("a log event"))?;
            DaemonEvent::Log { line: value.get("line").and_then(|l| l.as_str()).unwrap_or_default().to_string() }
        }
        "lagged" => DaemonEvent::Lagged(raw.data.clone()),
        _ => DaemonEvent::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    #[test]
    fn lines_become_events() {
        type Case<'a> = (&'a str, Vec<&'a [u8]>, Vec<SseEvent>);
        let cases: Vec<Case> = vec![
            ("one event", vec![b"event: status\ndata: {}\n\n"], vec![ev("status", "{}")]),
            ("no event name", vec![b"data: x\n\n"], vec![ev("message", "x")]),
            ("multi-line data", vec![b"event: log\ndata: a\ndata: b\ndata:\n\n"], vec![ev("log", "a\nb\n")]),
            ("no space after the colon", vec![b"data:x\n\n"], vec![ev("message", "x")]),
            ("only the first space goes", vec![b"data:  x\n\n"], vec![ev("message", " x")]),
            ("comments and keep-alives", vec![b": keep-alive\n\n:\n\nevent: a\n: hi\ndata: 1\n\n"], vec![ev("a", "1")]),
            ("CRLF", vec![b"event: a\r\ndata: 1\r\n\r\n"], vec![ev("a", "1")]),
            ("CR alone", vec![b"event: a\rdata: 1\r\r"], vec![ev("a", "1")]),
            ("CRLF split across chunks", vec![b"data: 1\r", b"\n\r", b"\n"], vec![ev("message", "1")]),
            ("event without data", vec![b"event: lonely\n\nevent: a\ndata: 2\n\n"], vec![ev("a", "2")]),
            ("empty data is data", vec![b"data\n\n"], vec![ev("message", "")]),
            ("unfinished event", vec![b"event: a\ndata: 1\n"], vec![]),
            ("id and retry ignored", vec![b"id: 7\nretry: 10\ndata: z\n\n"], vec![ev("message", "z")]),
            ("byte order mark", vec!["\u{feff}data: b\n\n".as_bytes()], vec![ev("message", "b")]),
            (
                "utf-8 split in a chunk",
                vec![&[b'd', b'a', b't', b'a', b':', b' ', 0xe2, 0x86], &[0x92, b'\n', b'\n']],
                vec![ev("message", "→")],
            ),
            ("two events, one chunk", vec![b"data: 1\n\ndata: 2\n\n"], vec![ev("message", "1"), ev("message", "2")]),
            ("event name resets", vec![b"event: a\ndata: 1\n\ndata: 2\n\n"], vec![ev("a", "1"), ev("message", "2")]),
        ];
        for (name, chunks, want) in cases {
            let mut parser = SseParser::default();
            let mut got = Vec::new();
            for chunk in chunks {
                got.extend(parser.feed(chunk).expect("short lines"));
            }
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = SseParser::default();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut refused = false;
        for _ in 0..=MAX_LINE / chunk.len() {
            if parser.feed(&chunk).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }

    #[test]
    fn daemon_events_are_typed() {
        let rollout = r#"{"type":"rollout","plugin":"crm","slot":"stable","strategy":"Canary","version":"1.1.0",
            "target":"abc","step":1,"steps":[25.0,50.0,100.0],"shares":[],"phase":"progressing","note":"n",
            "verdicts":{"canary":{"verdict":"pass","text":"ok","requests":40.0,"errorRate":0.0,
            "successRate":100.0,"p99Ms":12.5,"throughput":5.0}},"startedMs":1,"atMs":2}"#;
        let rollout = rollout.replace('\n', "");
        match typed("u", &ev("rollout", &rollout)) {
            Ok(DaemonEvent::Rollout(r)) => {
                assert_eq!((r.step_label().as_str(), r.verdicts["canary"].p99_ms), ("step 2/3 50%", Some(12.5)));
            }
            other => panic!("{other:?}"),
        }
        let status =
            r#"{"type":"status","status":{"fleet":"f","revision":"r","at":"2026-01-01T00:00:00Z","plugins":{}}}"#;
        assert!(matches!(typed("u", &ev("status", status)), Ok(DaemonEvent::Status(s)) if s.revision == "r"));
        assert!(matches!(typed("u", &ev("lagged", "3")), Ok(DaemonEvent::Lagged(n)) if n == "3"));
        assert!(matches!(typed("u", &ev("rollout", "{")), Err(ApiError::Decode { .. })));
    }
}
