//! Parser for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.
//!
//! Pure: bytes in, samples out. Each line is `name{label="value",...} value [timestamp]`;
//! comment lines (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`, anything starting with `#`) and blank
//! lines are skipped. A line that does not parse never aborts the rest: it is reported in
//! [`Parsed::errors`] with its 1-based line number, and the good lines still count.
//!
//! Accepted beyond the bare grammar, because real exporters emit it:
//! - label values with the escapes `\\`, `\"` and `\n` (any other `\x` is kept as written);
//! - a trailing comma in the label set and blanks around names, `=` and `,`;
//! - values `+Inf`, `-Inf`, `Inf`, `NaN` (any case), and Go-style floats (`1e3`, `0x1p4` is not);
//! - an integer millisecond timestamp (text format) or float seconds (OpenMetrics), kept as given;
//! - an OpenMetrics exemplar after the value (` # {trace_id="…"} 1.0`), ignored;
//! - `\r\n` line endings.
//!
//! The quoted-name syntax of newer formats (`{"my.metric", a="b"}`) is reported as an error.

use std::fmt;

/// One sample: a metric name, its labels in the order written, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// As written: milliseconds in the text format, seconds in OpenMetrics.
    pub timestamp: Option<f64>,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Everything a body yielded: the samples of the good lines and an error per bad line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    pub errors: Vec<LineError>,
}

/// Parses a whole exposition body. Never panics; bad lines end up in `errors`.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(sample) => out.samples.push(sample),
            Err(message) => out.errors.push(LineError { line: i + 1, message }),
        }
    }
    out
}

/// Parses one sample line (not a comment, not blank).
pub fn parse_line(line: &str) -> Result<Sample, String> {
    let mut cur = Cursor { s: line, pos: 0 };
    cur.skip_blanks();
    let name = cur.metric_name().ok_or_else(|| {
        if line.trim_start().starts_with('{') {
            "quoted or missing metric name (expected a name before `{`)".to_string()
        } else {
            format!("expected a metric name at the start of {:?}", clip(line))
        }
    })?;
    let mut blank = cur.skip_blanks();
    let labels = if cur.peek() == Some('{') {
        cur.bump();
        let labels = cur.labels()?;
        blank = cur.skip_blanks();
        labels
    } else {
        Vec::new()
    };
    if !blank && !cur.at_end() {
        return Err(format!("expected a blank after `{name}` and its labels, found {:?}", cur.rest_clip()));
    }
    let value_text = cur.word();
    if value_text.is_empty() {
        return Err(format!("sample `{name}` has no value"));
    }
    let value =
        parse_value(value_text).ok_or_else(|| format!("`{}` is not a number (value of `{name}`)", clip(value_text)))?;
    cur.skip_blanks();
    let mut timestamp = None;
    if !cur.at_end() && cur.peek() != Some('#') {
        let ts_text = cur.word();
        let ts = ts_text
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .ok_or_else(|| format!("`{}` is not a timestamp (after the value of `{name}`)", clip(ts_text)))?;
        timestamp = Some(ts);
        cur.skip_blanks();
    }
    // Whatever is left may only be an OpenMetrics exemplar: `# {labels} value [ts]`.
    if !cur.at_end() && cur.peek() != Some('#') {
        return Err(format!("unexpected {:?} after the sample `{name}`", cur.rest_clip()));
    }
    Ok(Sample { name, labels, value, timestamp })
}

/// A sample value: a float, or one of the special spellings.
pub fn parse_value(text: &str) -> Option<f64> {
    match text.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        _ => {}
    }
    // Rust also accepts "infinity"/"nan" spellings (handled above) but not "0x…"; reject
    // the odd forms it would take that Prometheus would not, like a leading '.' only.
    if text == "." || text.is_empty() {
        return None;
    }
    text.parse::<f64>().ok()
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn rest_clip(&self) -> String {
        clip(&self.s[self.pos..])
    }

    /// Skips spaces and tabs; tells whether it skipped any.
    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Characters up to the next blank.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.s[start..self.pos]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    fn metric_name(&mut self) -> Option<String> {
        self.ident(true)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*` (colons allowed in metric names only).
    fn label_name(&mut self) -> Option<String> {
        self.ident(false)
    }

    fn ident(&mut self, colons: bool) -> Option<String> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' || (colons && c == ':') => {
                self.pos += 1;
            }
            _ => return None,
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':') {
                self.pos += 1;
            } else {
                break;
            }
        }
        Some(self.s[start..self.pos].to_string())
    }

    /// After `{`: `name="value"` pairs separated by commas, up to and including `}`.
    fn labels(&mut self) -> Result<Vec<(String, String)>, String> {
        let mut labels: Vec<(String, String)> = Vec::new();
        loop {
            self.skip_blanks();
            if self.peek() == Some('}') {
                self.bump();
                return Ok(labels);
            }
            let name = self.label_name().ok_or_else(|| match self.peek() {
                None => "unterminated label set (missing `}`)".to_string(),
                Some(c) => format!("expected a label name, found {c:?}"),
            })?;
            self.skip_blanks();
            if self.bump() != Some('=') {
                return Err(format!("expected `=` after label `{name}`"));
            }
            self.skip_blanks();
            if self.bump() != Some('"') {
                return Err(format!("value of label `{name}` must be in double quotes"));
            }
            let value = self.quoted().ok_or_else(|| format!("unterminated value of label `{name}`"))?;
            if labels.iter().any(|(k, _)| *k == name) {
                return Err(format!("label `{name}` appears twice"));
            }
            labels.push((name, value));
            self.skip_blanks();
            match self.bump() {
                Some(',') => continue,
                Some('}') => return Ok(labels),
                Some(c) => return Err(format!("expected `,` or `}}` in the label set, found {c:?}")),
                None => return Err("unterminated label set (missing `}`)".to_string()),
            }
        }
    }

    /// After the opening `"`: the unescaped value, consuming the closing `"`.
    fn quoted(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            match self.bump()? {
                '"' => return Some(out),
                '\\' => match self.bump()? {
                    'n' => out.push('\n'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                },
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    fn one(line: &str) -> Sample {
        parse_line(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn good_lines() {
        let cases: &[(&str, &str, &[(&str, &str)], f64, Option<f64>)] = &[
            ("up 1", "up", &[], 1.0, None),
            ("up  1  ", "up", &[], 1.0, None),
            ("a:b_c 2.5e3", "a:b_c", &[], 2500.0, None),
            ("x{} 3", "x", &[], 3.0, None),
            ("x {a=\"1\"} 3", "x", &[("a", "1")], 3.0, None),
            (
                "http_requests_total{code=\"200\",path=\"root\"} 17",
                "http_requests_total",
                &[("code", "200"), ("path", "root")],
                17.0,
                None,
            ),
            ("x{a=\"1\",} 4", "x", &[("a", "1")], 4.0, None),
            ("x{ a = \"1\" , b=\"2\" } 4", "x", &[("a", "1"), ("b", "2")], 4.0, None),
            ("x{a=\"q\\\"uote\"} 1", "x", &[("a", "q\"uote")], 1.0, None),
            ("x{a=\"back\\\\slash\"} 1", "x", &[("a", "back\\slash")], 1.0, None),
            ("x{a=\"new\\nline\"} 1", "x", &[("a", "new\nline")], 1.0, None),
            ("x{a=\"odd\\tesc\"} 1", "x", &[("a", "odd\\tesc")], 1.0, None),
            ("x{a=\"with } and , and {\"} 1", "x", &[("a", "with } and , and {")], 1.0, None),
            ("x{a=\"ünï\"} 1", "x", &[("a", "ünï")], 1.0, None),
            ("x{a=\"\"} 1", "x", &[("a", "")], 1.0, None),
            ("b_bucket{le=\"+Inf\"} 12", "b_bucket", &[("le", "+Inf")], 12.0, None),
            ("x +Inf", "x", &[], f64::INFINITY, None),
            ("x -Inf", "x", &[], f64::NEG_INFINITY, None),
            ("x 12 1700000000000", "x", &[], 12.0, Some(1.7e12)),
            ("x 12 1700000000.5", "x", &[], 12.0, Some(1_700_000_000.5)),
            ("x\t7", "x", &[], 7.0, None),
            ("x -0.5", "x", &[], -0.5, None),
            (
                "foo_total 17.0 1520879607.789 # {id=\"c\"} 1.0 1520879607.789",
                "foo_total",
                &[],
                17.0,
                Some(1_520_879_607.789),
            ),
            ("foo_bucket{le=\"0.1\"} 8 # {id=\"abc\"} 0.05", "foo_bucket", &[("le", "0.1")], 8.0, None),
        ];
        for (line, name, labels, value, ts) in cases {
            let s = one(line);
            assert_eq!(s.name, *name, "{line}");
            let want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(s.labels, want, "{line}");
            assert_eq!(s.value, *value, "{line}");
            assert_eq!(s.timestamp, *ts, "{line}");
        }
        assert!(one("x NaN").value.is_nan());
        assert!(one("x nan").value.is_nan());
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        let cases: &[(&str, &str)] = &[
            ("{a=\"1\"} 1", "metric name"),
            ("{\"quoted.name\"} 1", "metric name"),
            ("9x 1", "metric name"),
            ("x", "no value"),
            ("x{a=\"1\"}", "no value"),
            ("x abc", "not a number"),
            ("x 1 2 3", "unexpected"),
            ("x 1 notatime", "not a timestamp"),
            ("x{a=1} 1", "double quotes"),
            ("x{a=\"1\" 1", "expected `,` or `}`"),
            ("x{a=\"1} 1", "unterminated"),
            ("x{a=\"1\\", "unterminated"),
            ("x{a", "expected `=`"),
            ("x{", "unterminated label set"),
            ("x{=\"1\"} 1", "label name"),
            ("x{a=\"1\",a=\"2\"} 1", "twice"),
            ("x{1a=\"1\"} 1", "label name"),
            ("x{a:b=\"1\"} 1", "expected `=`"),
            ("x{a=\"1\"}1", "expected a blank"),
            ("x 1 +Inf", "not a timestamp"),
            ("x .", "not a number"),
            ("ü 1", "metric name"),
            ("x{a=\"1\"}} 1", "expected a blank"),
            ("x 0x10", "not a number"),
        ];
        for (line, want) in cases {
            match parse_line(line) {
                Ok(s) => panic!("{line:?} parsed as {s:?}"),
                Err(e) => assert!(e.contains(want), "{line:?}: {e:?} does not mention {want:?}"),
            }
        }
    }

    #[test]
    fn whole_body_keeps_good_lines_and_numbers_bad_ones() {
        let body = "# HELP x a thing\r\n# TYPE x counter\r\nx 1\r\n\r\ngarbage here\nx{a=\"b\"} 2\n# EOF\n";
        let p = parse(body);
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[1].label("a"), Some("b"));
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 5);
        assert!(p.errors[0].to_string().starts_with("line 5: "));
    }

    #[test]
    fn echo_plugin_output() {
        let body = "\
# HELP http_requests_total HTTP requests answered, by status code and path class.
# TYPE http_requests_total counter
http_requests_total{code=\"200\",path=\"health\"} 4
http_requests_total{code=\"200\",path=\"root\"} 140
http_requests_total{code=\"500\",path=\"root\"} 60
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le=\"0.005\"} 200
http_request_duration_seconds_bucket{le=\"+Inf\"} 200
http_request_duration_seconds_sum 0.012
http_request_duration_seconds_count 200
echo_info{version=\"1.0.0\",plugin=\"echo\"} 1
echo_ready 1
";
        let p = parse(body);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.samples.len(), 9);
    }

    /// Garbage of every kind: the parser must return, not panic, whatever the bytes.
    #[test]
    fn fuzz_table_never_panics() {
        let seeds = [
            "",
            " ",
            "#",
            "{",
            "}",
            "\"",
            "\\",
            "x{",
            "x{a",
            "x{a=",
            "x{a=\"",
            "x{a=\"\\",
            "x{a=\"\\\"",
            "x{a=\"\"",
            "x{a=\"\",",
            "x{a=\"\"}",
            "x 1 ",
            "x 1 #",
            "x 1 # {",
            "\u{0}",
            "x\u{0} 1",
            "ünïcödé{ä=\"ö\"} 1",
            "x{a=\"ü\\ü\"} 1",
            "x 1e999",
            "x -1e999",
            "x 1e-999",
            "x 1 1e999",
            "\u{feff}x 1",
            "x{a=\"1\"} 1 2 # {b=\"2\"} 3 4",
            "🙂 1",
            "x{🙂=\"1\"} 1",
            "x{a=\"🙂\"} 🙂",
        ];
        let mut inputs: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        // Every prefix of a valid line, and of the same line with a multibyte character inside.
        for full in [
            "http_requests_total{code=\"500\",path=\"/hé\\\"llo\"} 12.5 1700000000000",
            "foo_bucket{le=\"+Inf\"} 8 # {trace=\"ü\"} 0.5 1.5",
        ] {
            for (i, _) in full.char_indices() {
                inputs.push(full[..i].to_string());
                inputs.push(full[i..].to_string());
            }
        }
        // A crude deterministic byte mutator over a realistic body.
        let body = "# TYPE x counter\nx{a=\"1\",b=\"two\"} 3\ny 4 5\n";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = body.as_bytes().to_vec();
            let at = (seed % bytes.len() as u64) as usize;
            let b = (seed >> 32) as u8;
            match seed % 3 {
                0 => bytes[at] = b,
                1 => bytes.insert(at, b),
                _ => {
                    bytes.remove(at);
                }
            }
            inputs.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        for input in &inputs {
            let p = parse(input);
            for s in &p.samples {
                assert!(!s.name.is_empty());
            }
        }
    }
}
