//! One file of the fleet repo, parsed into a JSON value plus a map from field path to
//! line/column, so every later check can point at the source.

use super::diagnostic::Diagnostic;
use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Parser};
use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    pub fn of(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1;
        match ext {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Document {
    pub path: String,
    pub value: Value,
    text: String,
    /// JSON pointer → (line, column), both 1-based; keys point at the key, items at the item.
    /// Built on first use: most files never need a position.
    positions: OnceLock<HashMap<String, (usize, usize)>>,
}

/// Largest file accepted; a manifest is a few KiB, this guards against junk.
const MAX_FILE_BYTES: usize = 4 << 20;

impl Document {
    pub fn parse(path: &str, bytes: &[u8]) -> Result<Document, Diagnostic> {
        let unreadable = |found: String, expected: &str, pos: Option<(usize, usize)>| {
            Diagnostic::error("syntax", path).at(pos).found(found).expected(expected)
        };
        if bytes.len() > MAX_FILE_BYTES {
            return Err(unreadable(format!("{} bytes", bytes.len()), "a file under 4 MiB", None));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let pos = line_col_of_offset(bytes, e.valid_up_to());
            unreadable("bytes that are not UTF-8".into(), "UTF-8 text", Some(pos))
        })?;
        // Editors on Windows like to start files with a byte-order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let format = Format::of(path).unwrap_or(Format::Yaml);
        let value = match format {
            Format::Json => serde_json::from_str::<Value>(text).map_err(|e| {
                unreadable(
                    format!("invalid JSON ({})", strip_position(&e.to_string())),
                    "a JSON document",
                    Some(json_error_position(text, e.line(), e.column())),
                )
            })?,
            Format::Yaml => serde_saphyr::from_str::<Value>(text).map_err(|e| {
                let pos = e.location().map(|l| (l.line() as usize, l.column() as usize));
                let message = e.to_string();
                let first = message.lines().next().unwrap_or("").to_string();
                unreadable(format!("invalid YAML ({first})"), "a YAML document", pos)
            })?,
        };
        Ok(Document { path: path.to_string(), value, text: text.to_string(), positions: OnceLock::new() })
    }

    /// Whether this document was parsed from `bytes` (a byte-order mark aside).
    pub fn parsed_from(&self, bytes: &[u8]) -> bool {
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        self.text.as_bytes() == bytes
    }

    /// Line and column of a JSON pointer (`/runtime/resources/memory`), or of its nearest
    /// ancestor that has one.
    pub fn locate(&self, pointer: &str) -> Option<(usize, usize)> {
        let mut pointer = pointer;
        loop {
            if let Some(pos) = self.positions.get_or_init(|| positions(&self.text)).get(pointer) {
                return Some(*pos);
            }
            if pointer.is_empty() {
                return None;
            }
            pointer = &pointer[..pointer.rfind('/').unwrap_or(0)];
        }
    }

    /// Diagnostic about the field at `pointer` in this document.
    pub fn diagnostic(&self, code: &'static str, pointer: &str) -> Diagnostic {
        Diagnostic::error(code, &self.path).at(self.locate(pointer)).field(field_path(pointer))
    }
}

/// `/runtime/resources/memory` → `runtime.resources.memory`, `/dependsOn/1` → `dependsOn[1]`.
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

pub fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// serde_json says column 0 for an error just after a newline: point at the end of the
/// previous line instead, keeping columns 1-based.
fn json_error_position(text: &str, line: usize, column: usize) -> (usize, usize) {
    if column > 0 || line <= 1 {
        return (line.max(1), column.max(1));
    }
    let previous = text.lines().nth(line - 2).map(|l| l.chars().count()).unwrap_or(0);
    (line - 1, previous + 1)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn line_col_of_offset(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

enum Frame {
    Map { pointer: String, pending_key: Option<String> },
    Seq { pointer: String, index: usize },
}

/// Walks the YAML event stream (JSON is YAML too) and records where every node starts.
/// Best effort: a document the parser rejects simply has no positions.
fn positions(text: &str) -> HashMap<String, (usize, usize)> {
    let mut map = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let pos = (span.start.line(), span.start.col() + 1);
        let is_node =
            matches!(event, Event::Scalar(..) | Event::MappingStart(..) | Event::SequenceStart(..) | Event::Alias(_));
        if is_node {
            // A scalar in key position of a mapping is a key, not a value.
            if let (Some(Frame::Map { pointer, pending_key }), Event::Scalar(key, ..)) = (stack.last_mut(), &event) {
                if pending_key.is_none() {
                    let child = format!("{pointer}/{}", pointer_segment(key));
                    map.entry(child.clone()).or_insert(pos);
                    *pending_key = Some(child);
                    continue;
                }
            }
            let pointer = match stack.last_mut() {
                None => String::new(),
                Some(Frame::Map { pending_key, .. }) => pending_key.take().unwrap_or_default(),
                Some(Frame::Seq { pointer, index }) => {
                    *index += 1;
                    format!("{pointer}/{}", *index - 1)
                }
            };
            map.entry(pointer.clone()).or_insert(pos);
            match event {
                Event::MappingStart(..) => stack.push(Frame::Map { pointer, pending_key: None }),
                Event::SequenceStart(..) => stack.push(Frame::Seq { pointer, index: 0 }),
                _ => {}
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            stack.pop();
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_yaml_fields() {
        let text = "id: crm\nruntime:\n  image: x\n  resources:\n    memory: 512X\ndependsOn:\n  - a\n  - b\n";
        let doc = Document::parse("p.yaml", text.as_bytes()).unwrap();
        assert_eq!(doc.locate("/runtime/resources/memory"), Some((5, 5)));
        assert_eq!(doc.locate("/dependsOn/1"), Some((8, 5)));
        assert_eq!(doc.locate("/runtime/nothing"), Some((2, 1)));
    }

    #[test]
    fn locates_json_fields() {
        let text =
            "{\n  \"id\": \"crm\",\n  \"runtime\": {\"image\": \"x\",\n    \"resources\": {\"cpu\": \"abc\"}}\n}";
        let doc = Document::parse("p.json", text.as_bytes()).unwrap();
        assert_eq!(doc.locate("/runtime/resources/cpu").map(|p| p.0), Some(4));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = Document::parse("p.json", b"{\n  \"id\": \"crm\",\n  oops\n}").unwrap_err();
        assert_eq!(err.code, "syntax");
        assert_eq!(err.line, Some(3));
        let err = Document::parse("p.yaml", b"id: crm\nruntime: [a\n").unwrap_err();
        assert!(err.line.is_some(), "{err}");
    }

    #[test]
    fn field_paths() {
        assert_eq!(field_path("/runtime/resources/memory"), "runtime.resources.memory");
        assert_eq!(field_path("/dependsOn/1"), "dependsOn[1]");
        assert_eq!(field_path(""), "");
    }
}
