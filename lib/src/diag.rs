//! Diagnostics: an input problem located at file:line:column and a field path.
//!
//! Every loader collects all the problems of a file before failing, so an agent (or the
//! human fixing its output) sees the whole list at once instead of one error per run.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A position in a source file; both numbers start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    #[must_use]
    pub const fn new(line: u64, column: u64) -> Self {
        Self { line, column }
    }
}

/// One problem in one input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    /// The field path, such as `action.amount.value` or `sources[1].authority`; empty for
    /// problems with the document as a whole.
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The offending source line, for rendering a caret under the column.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    #[must_use]
    pub fn new(file: &Path, pos: Pos, field: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            field: field.to_owned(),
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    #[must_use]
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Attaches the line of `source` the diagnostic points at.
    #[must_use]
    pub fn with_source(mut self, source: &str) -> Self {
        let index = usize::try_from(self.line.saturating_sub(1)).unwrap_or(usize::MAX);
        // The line is echoed to a terminal: anything that could steer it becomes U+FFFD
        // (one column wide, so the caret still lines up).
        self.source_line = source.lines().nth(index).map(|l| {
            l.chars()
                .map(|c| {
                    if c != '\t' && crate::decode::is_forbidden_char(c) {
                        '\u{FFFD}'
                    } else {
                        c
                    }
                })
                .collect()
        });
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            crate::decode::safe_path(&self.file),
            self.line,
            self.column
        )?;
        if !self.field.is_empty() {
            write!(f, "`{}`: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(line) = &self.source_line {
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_at = usize::try_from(self.column.saturating_sub(1)).unwrap_or(0);
            // Keep tabs so the caret lines up with what the terminal shows.
            let lead: String = line
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n {pad} |\n {gutter} | {line}\n {pad} | {lead}^")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the problems found in one or more files, in file then position order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    pub(crate) fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
