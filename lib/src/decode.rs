//! A schema walker over [`crate::yaml::Node`] trees that records every problem it meets.
//!
//! Each helper returns `Option<T>`: `None` means a diagnostic was recorded and the caller
//! carries on with the next field, so one pass reports all problems of a file.

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::yaml::{Kind, Node};

/// Collects diagnostics for one file.
pub struct Decoder<'a> {
    file: &'a Path,
    source: &'a str,
    diags: Diagnostics,
    /// Problems found beyond [`MAX_DIAGNOSTICS`], counted but not kept.
    dropped: usize,
}

/// The most problems reported for one file: enough to fix a file, and a bound on the work
/// a hostile file full of errors can cause.
pub const MAX_DIAGNOSTICS: usize = 100;

impl<'a> Decoder<'a> {
    #[must_use]
    pub fn new(file: &'a Path, source: &'a str) -> Self {
        Self {
            file,
            source,
            diags: Diagnostics::default(),
            dropped: 0,
        }
    }

    pub fn error(&mut self, pos: Pos, field: &str, message: impl Into<String>) {
        self.error_hint(pos, field, message, None);
    }

    pub fn error_hint(
        &mut self,
        pos: Pos,
        field: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        if self.diags.len() >= MAX_DIAGNOSTICS {
            self.dropped += 1;
            return;
        }
        self.diags.push(
            Diagnostic::new(self.file, pos, field, message)
                .with_hint(hint)
                .with_source(self.source),
        );
    }

    /// Ends decoding: the value if no problem was recorded, else every problem.
    ///
    /// # Errors
    /// The recorded diagnostics, sorted by position.
    pub fn finish<T>(mut self, value: Option<T>) -> Result<T, Diagnostics> {
        match value {
            Some(v) if self.diags.is_empty() => Ok(v),
            _ => {
                if self.diags.is_empty() {
                    // A helper returned None without recording why: never pass silently.
                    self.error(Pos::new(1, 1), "", "document could not be decoded");
                }
                self.diags.sort();
                if self.dropped > 0 {
                    let last = self
                        .diags
                        .0
                        .last()
                        .map_or(Pos::new(1, 1), |d| Pos::new(d.line, d.column));
                    self.diags.push(Diagnostic::new(
                        self.file,
                        last,
                        "",
                        format!(
                            "{} more problems not shown (the first {MAX_DIAGNOSTICS} are)",
                            self.dropped
                        ),
                    ));
                }
                Err(self.diags)
            }
        }
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        self.error(
            node.pos,
            path,
            format!("expected {expected}, found {}", node.kind.type_name()),
        );
    }

    /// Opens a mapping for field-by-field reading.
    pub fn map<'n>(&mut self, node: &'n Node, path: &str) -> Option<MapReader<'n>> {
        if let Kind::Map(entries) = &node.kind {
            let mut reader = MapReader {
                pos: node.pos,
                path: path.to_owned(),
                entries,
                used: vec![false; entries.len()],
            };
            // Keys must be strings: a `1:` or `true:` key is never a field name.
            for (key, _) in entries {
                if !matches!(key.kind, Kind::Str(_)) {
                    self.error(
                        key.pos,
                        path,
                        format!(
                            "mapping keys must be strings, found {}",
                            key.kind.type_name()
                        ),
                    );
                }
            }
            reader.used.shrink_to_fit();
            Some(reader)
        } else {
            self.wrong_type(node, path, "a mapping");
            None
        }
    }

    /// A list; each element is handed to `item` with its path.
    pub fn list<T>(
        &mut self,
        node: &Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Kind::Seq(items) = &node.kind else {
            self.wrong_type(node, path, "a list");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, n) in items.iter().enumerate() {
            match item(self, n, &format!("{path}[{i}]")) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A non-empty string of printable text. Control characters (other than newline and
    /// tab) and bidirectional overrides are refused: they could repaint a reviewer's
    /// terminal or disguise what is being approved.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        let Kind::Str(s) = &node.kind else {
            self.wrong_type(node, path, "a string");
            return None;
        };
        if s.trim().is_empty() {
            self.error(node.pos, path, "must not be empty");
            return None;
        }
        if let Some(c) = s.chars().find(|&c| is_forbidden_char(c)) {
            self.error_hint(
                node.pos,
                path,
                format!("contains the control character U+{:04X}", u32::from(c)),
                Some(
                    "terminal control and bidirectional characters are refused in proposals"
                        .to_owned(),
                ),
            );
            return None;
        }
        Some(s.clone())
    }

    /// A string accepted by `ok`; `expected` describes it in the error ("an id matching ...").
    pub fn token(
        &mut self,
        node: &Node,
        path: &str,
        expected: &str,
        ok: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let s = self.string(node, path)?;
        if ok(&s) {
            Some(s)
        } else {
            self.error_hint(node.pos, path, format!("`{s}` is not {expected}"), None);
            None
        }
    }

    /// One of a fixed set of words, with a suggestion for a near miss.
    pub fn word<T: FromStr>(&mut self, node: &Node, path: &str, allowed: &[&str]) -> Option<T> {
        let s = self.string(node, path)?;
        if let Ok(v) = s.parse() {
            return Some(v);
        }
        let hint = suggest(&s, allowed.iter().copied())
            .map(|m| format!("did you mean `{m}`?"))
            .or_else(|| Some(format!("expected one of: {}", allowed.join(", "))));
        self.error_hint(node.pos, path, format!("unknown value `{s}`"), hint);
        None
    }

    /// An RFC 3339 timestamp with an explicit offset, normalised to UTC.
    pub fn timestamp(&mut self, node: &Node, path: &str) -> Option<DateTime<Utc>> {
        let s = self.string(node, path)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.error_hint(
                    node.pos,
                    path,
                    format!("`{s}` is not an RFC 3339 timestamp ({e})"),
                    Some("write it like `2026-11-27T09:00:00Z`".to_owned()),
                );
                None
            }
        }
    }

    /// A finite number (integer or float).
    pub fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        #[allow(clippy::cast_precision_loss, reason = "amounts stay far below 2^52")]
        let v = match node.kind {
            Kind::Int(i) => i as f64,
            Kind::Float(f) => f,
            _ => {
                self.wrong_type(node, path, "a number");
                return None;
            }
        };
        if v.is_finite() {
            Some(v)
        } else {
            self.error(node.pos, path, "must be a finite number");
            None
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint(&mut self, node: &Node, path: &str, max: u64) -> Option<u64> {
        match node.kind {
            Kind::Int(i) if i >= 0 && i <= i128::from(max) => u64::try_from(i).ok(),
            Kind::Int(i) => {
                self.error(node.pos, path, format!("{i} is out of range 0..={max}"));
                None
            }
            _ => {
                self.wrong_type(node, path, "an integer");
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        if let Kind::Bool(b) = node.kind {
            Some(b)
        } else {
            self.wrong_type(node, path, "`true` or `false`");
            None
        }
    }

    /// A duration such as `30m`, `24h` or `7d`.
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<std::time::Duration> {
        let s = self.string(node, path)?;
        match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.error(node.pos, path, "duration must be positive");
                None
            }
            Err(e) => {
                self.error_hint(
                    node.pos,
                    path,
                    format!("`{s}` is not a duration ({e})"),
                    Some("write it like `30m`, `24h` or `7d`".to_owned()),
                );
                None
            }
        }
    }

    /// Any value, kept as JSON (tool parameters, before/after state). Strings inside are
    /// checked for control characters like every other string.
    pub fn any(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
        let mut ok = true;
        self.check_strings(node, path, &mut ok);
        ok.then(|| node.to_json())
    }

    fn check_strings(&mut self, node: &Node, path: &str, ok: &mut bool) {
        match &node.kind {
            Kind::Str(s) => {
                if let Some(c) = s.chars().find(|&c| is_forbidden_char(c)) {
                    self.error(
                        node.pos,
                        path,
                        format!("contains the control character U+{:04X}", u32::from(c)),
                    );
                    *ok = false;
                }
            }
            Kind::Float(f) if !f.is_finite() => {
                self.error(node.pos, path, "must be a finite number");
                *ok = false;
            }
            Kind::Seq(items) => {
                for (i, n) in items.iter().enumerate() {
                    self.check_strings(n, &format!("{path}[{i}]"), ok);
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries {
                    // `1:` and `"1":` would become the same JSON key and one value would
                    // vanish from the diff: only string keys are accepted.
                    if !matches!(k.kind, Kind::Str(_)) {
                        self.error(
                            k.pos,
                            path,
                            format!("mapping keys must be strings, found {}", k.kind.type_name()),
                        );
                        *ok = false;
                    }
                    let key = k.key_text();
                    self.check_strings(k, path, ok);
                    self.check_strings(v, &join(path, &key), ok);
                }
            }
            _ => {}
        }
    }
}

/// Characters that must never reach a reviewer's terminal from untrusted input.
#[must_use]
pub fn is_forbidden_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // Invisible format characters (Unicode category Cf) and line separators: bidi
        // overrides and marks, zero-width spaces and joiners, the BOM, the soft hyphen.
        // They make two different strings look the same on a reviewer's screen.
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// A path for a terminal: characters that must never reach a terminal are shown as
/// `\u{..}` escapes (agents name the files in `requests/`).
#[must_use]
pub fn safe_path(path: &std::path::Path) -> String {
    path.display()
        .to_string()
        .chars()
        .map(|c| {
            if is_forbidden_char(c) {
                format!("\\u{{{:04x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Reads the fields of one mapping, remembering which were used so that unknown fields
/// can be reported with the nearest known name.
pub struct MapReader<'n> {
    pub pos: Pos,
    pub path: String,
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
}

impl<'n> MapReader<'n> {
    /// The field's node, if present.
    pub fn get(&mut self, key: &str) -> Option<&'n Node> {
        let entries = self.entries;
        for (i, (k, v)) in entries.iter().enumerate() {
            if matches!(&k.kind, Kind::Str(s) if s == key) {
                self.used[i] = true;
                return Some(v);
            }
        }
        None
    }

    /// The field's node, or `None` after recording that it is missing. A field present
    /// with an explicit `null` counts as missing.
    pub fn required(&mut self, d: &mut Decoder<'_>, key: &str) -> Option<&'n Node> {
        match self.get(key) {
            Some(n) if n.kind != Kind::Null => Some(n),
            Some(n) => {
                d.error(n.pos, &self.field(key), format!("`{key}` must not be null"));
                None
            }
            None => {
                d.error(self.pos, &self.field(key), format!("missing field `{key}`"));
                None
            }
        }
    }

    /// The field's node unless absent or `null`.
    pub fn optional(&mut self, key: &str) -> Option<&'n Node> {
        self.get(key).filter(|n| n.kind != Kind::Null)
    }

    /// Reads an optional field: `Some(None)` when absent or null, `None` when present
    /// but bad (the problem is recorded).
    pub fn opt<'a, T>(
        &mut self,
        d: &mut Decoder<'a>,
        key: &str,
        f: impl FnOnce(&mut Decoder<'a>, &Node, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        let path = self.field(key);
        match self.optional(key) {
            Some(n) => f(d, n, &path).map(Some),
            None => Some(None),
        }
    }

    /// The path of a field of this mapping.
    #[must_use]
    pub fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Reports every field not read, with the nearest of `known` as a suggestion.
    pub fn deny_unknown(self, d: &mut Decoder<'_>, known: &[&str]) {
        for ((k, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let Kind::Str(name) = &k.kind else { continue };
            let hint = suggest(name, known.iter().copied())
                .map(|m| format!("did you mean `{m}`?"))
                .or_else(|| Some(format!("known fields: {}", known.join(", "))));
            d.error_hint(
                k.pos,
                &join(&self.path, name),
                format!("unknown field `{name}`"),
                hint,
            );
        }
    }

    /// The entries of a free-form mapping (`roles`, `limits`), marking them all used.
    pub fn entries(&mut self) -> impl Iterator<Item = (String, &'n Node, &'n Node)> + use<'n> {
        self.used.iter_mut().for_each(|u| *u = true);
        self.entries.iter().map(|(k, v)| (k.key_text(), k, v))
    }
}

/// `a.b` from `a` and `b`; just `b` at the top.
#[must_use]
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The candidate nearest to `word`, if near enough to be a likely typo.
pub fn suggest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
