//! A problem found in the fleet repo, pointing at file, line, column and field.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable kind of problem, e.g. `schema`, `dependency-cycle`; for tooling and tests.
    pub code: &'static str,
    /// Path relative to the fleet root, `/`-separated.
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Dotted field path, `runtime.resources.memory`; empty for the whole document.
    pub field: String,
    pub found: String,
    pub expected: String,
}

impl Diagnostic {
    pub fn error(code: &'static str, file: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            file: file.into(),
            line: None,
            column: None,
            field: String::new(),
            found: String::new(),
            expected: String::new(),
        }
    }

    pub fn warning(code: &'static str, file: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, file) }
    }

    pub fn as_warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub fn at(mut self, position: Option<(usize, usize)>) -> Self {
        if let Some((line, column)) = position {
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = found.into();
        self
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = expected.into();
        self
    }

    /// `file:line:column` as far as known.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {severity}[{}]", self.location(), self.code)?;
        if !self.field.is_empty() {
            write!(f, " {}:", self.field)?;
        }
        write!(f, " found {}, expected {}", self.found, self.expected)
    }
}

/// Renders a JSON value briefly for "found …" texts.
pub fn brief(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::Object(_) => "an object".to_string(),
        serde_json::Value::Array(a) => format!("a list of {} item(s)", a.len()),
        serde_json::Value::Null => "null".to_string(),
        other => other.to_string(),
    };
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(79).collect::<String>())
    } else {
        text
    }
}
