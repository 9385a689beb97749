//! Hostile-input YAML: a byte cap, UTF-8 only, parser budgets, duplicate keys rejected,
//! anchors and aliases rejected, parsed by serde-saphyr into a small tree whose every
//! node knows its line and column.
//!
//! Loaders then walk the tree with [`crate::decode`], so they can report *all* problems
//! of a file, each with a field path, instead of serde's first error.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

use crate::diag::{Diagnostic, Diagnostics, Pos};

/// Resource limits for one YAML document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_events: usize,
    pub allow_anchors: bool,
}

impl Limits {
    /// Limits for agent-written proposals: small, flat, no anchors.
    pub const PROPOSAL: Self = Self {
        max_bytes: 256 * 1024,
        max_depth: 32,
        max_events: 50_000,
        allow_anchors: false,
    };
    /// Limits for the human-maintained approval matrix.
    pub const MATRIX: Self = Self {
        max_bytes: 1024 * 1024,
        max_depth: 32,
        max_events: 200_000,
        allow_anchors: false,
    };
}

/// A parsed YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Kind {
    /// The YAML type name used in error messages.
    #[must_use]
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Float(_) => "a number",
            Self::Str(_) => "a string",
            Self::Seq(_) => "a list",
            Self::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// Converts to JSON; mapping keys become strings. Non-finite floats become null
    /// (the loaders reject them before this is used for anything that matters).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => i64::try_from(*i).map_or_else(
                |_| u64::try_from(*i).map_or_else(|_| Value::String(i.to_string()), Value::from),
                Value::from,
            ),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The text of a node used as a mapping key.
    #[must_use]
    pub fn key_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            Kind::Null => "null".to_owned(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Seq(_) | Kind::Map(_) => "<complex key>".to_owned(),
        }
    }
}

struct Raw(Kind);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

fn spanned_to_node(s: Spanned<Raw>) -> Node {
    let loc = s.referenced;
    Node {
        kind: s.value.0,
        pos: Pos::new(loc.line(), loc.column()),
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(Kind::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(Kind::Int(i128::from(v))))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw(Kind::Int(i128::from(v))))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw(Kind::Int(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        i128::try_from(v)
            .map(|v| Raw(Kind::Int(v)))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(Kind::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(Kind::Str(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(Kind::Str(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw(Kind::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw(Kind::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(spanned_to_node(item));
        }
        Ok(Raw(Kind::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((spanned_to_node(key), spanned_to_node(value)));
        }
        Ok(Raw(Kind::Map(entries)))
    }
}

/// Computes line and column (1-based, in characters) of a byte offset.
fn pos_of_offset(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Pos::new(line as u64, column as u64)
}

/// Parses one YAML document from untrusted bytes.
///
/// # Errors
/// Every problem found (size, encoding, syntax, budget, duplicate key, anchor) as
/// diagnostics naming `file`.
pub fn parse(file: &Path, bytes: &[u8], limits: Limits) -> Result<(Node, String), Diagnostics> {
    let fail = |pos: Pos, message: String, hint: Option<String>, src: Option<&str>| {
        let mut d = Diagnostic::new(file, pos, "", message).with_hint(hint);
        if let Some(src) = src {
            d = d.with_source(src);
        }
        Err(Diagnostics(vec![d]))
    };
    if bytes.len() > limits.max_bytes {
        return fail(
            Pos::new(1, 1),
            // The caller may have stopped reading just past the cap: say "over", not a size.
            format!("file is over the cap of {} bytes", limits.max_bytes),
            Some("proposals must stay small; raise `limits.max_request_bytes` in hitl.toml only if you trust the writer".to_owned()),
            None,
        );
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                pos_of_offset(bytes, e.valid_up_to()),
                "file is not valid UTF-8".to_owned(),
                Some("save the file as UTF-8".to_owned()),
                None,
            );
        }
    };
    if text.trim().is_empty() {
        return fail(Pos::new(1, 1), "file is empty".to_owned(), None, None);
    }
    let budget = serde_saphyr::budget! {
        max_depth: limits.max_depth,
        max_events: limits.max_events,
        max_anchors: if limits.allow_anchors { 1_000 } else { 0 },
        max_aliases: if limits.allow_anchors { 1_000 } else { 0 },
        max_documents: 1,
    };
    let options = serde_saphyr::options! {
        budget: budget,
        duplicate_keys: DuplicateKeyPolicy::Error,
        merge_keys: serde_saphyr::MergeKeyPolicy::Error,
    };
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(root) if root.value.0 == Kind::Null => fail(
            Pos::new(1, 1),
            "file holds no YAML content (only comments or blank lines)".to_owned(),
            None,
            None,
        ),
        Ok(root) => Ok((spanned_to_node(root), text.to_owned())),
        Err(e) => {
            let pos = e.location().map_or(Pos::new(1, 1), |l| {
                Pos::new(l.line().max(1), l.column().max(1))
            });
            let (field, message, hint) = explain_parse_error(&e, limits);
            let d = Diagnostic::new(file, pos, &field, message)
                .with_hint(hint)
                .with_source(text);
            Err(Diagnostics(vec![d]))
        }
    }
}

/// Turns serde-saphyr's error into ours: lowercase, with a hint for the cases agents hit
/// most. Returns (field, message, hint).
fn explain_parse_error(
    e: &serde_saphyr::Error,
    limits: Limits,
) -> (String, String, Option<String>) {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    match e.without_snippet() {
        E::DuplicateMappingKey { key, .. } => {
            let key = key.clone().unwrap_or_default();
            (
                key.clone(),
                if key.is_empty() { "duplicate key".to_owned() } else { format!("duplicate key `{key}`") },
                Some("each key may appear once; other parsers would silently let the second value win".to_owned()),
            )
        }
        E::Budget { breach, .. } => match breach {
            B::Anchors { .. } | B::Aliases { .. } | B::AliasAnchorRatio { .. } => (
                String::new(),
                "anchors and aliases (`&name`, `*name`) are not allowed".to_owned(),
                Some("write the value out in full".to_owned()),
            ),
            B::Documents { .. } => (
                String::new(),
                "the file holds more than one YAML document".to_owned(),
                Some("put one proposal in each file, without `---` separators".to_owned()),
            ),
            B::Depth { .. } => (
                String::new(),
                format!("nesting is deeper than {} levels", limits.max_depth),
                None,
            ),
            B::MergeKeys { .. } => (
                String::new(),
                "merge keys (`<<`) are not allowed".to_owned(),
                None,
            ),
            other => (
                String::new(),
                format!(
                    "document exceeds the parser budget ({})",
                    lowercase_first(&format!("{other:?}"))
                ),
                Some("proposals must be small and shallow".to_owned()),
            ),
        },
        E::MergeKeyNotAllowed { .. } => (
            String::new(),
            "merge keys (`<<`) are not allowed".to_owned(),
            None,
        ),
        other => {
            let raw = other.to_string();
            let msg = raw
                .split(" at line ")
                .next()
                .unwrap_or(&raw)
                .trim()
                .trim_end_matches('.');
            (
                String::new(),
                format!("invalid YAML: {}", lowercase_first(msg)),
                None,
            )
        }
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        let rest: String = chars.collect();
        // Keep acronyms such as `YAML` as they are.
        if rest.starts_with(|r: char| r.is_uppercase()) {
            format!("{c}{rest}")
        } else {
            format!("{}{rest}", c.to_lowercase())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Result<Node, Diagnostics> {
        parse(Path::new("t.yaml"), src.as_bytes(), Limits::PROPOSAL).map(|(n, _)| n)
    }

    #[test]
    fn positions_of_nested_nodes() {
        let n = p("a: 1\nb:\n  c: [x, y]\n").unwrap();
        let Kind::Map(entries) = &n.kind else {
            unreachable!()
        };
        let (k, v) = &entries[1];
        assert_eq!(k.pos, Pos::new(2, 1));
        let Kind::Map(inner) = &v.kind else {
            unreachable!()
        };
        assert_eq!(inner[0].0.pos, Pos::new(3, 3));
        let Kind::Seq(items) = &inner[0].1.kind else {
            unreachable!()
        };
        assert_eq!(items[1].pos, Pos::new(3, 10));
    }

    #[test]
    fn rejects_duplicate_keys() {
        let e = p("amount: 1\namount: 2\n").unwrap_err();
        assert_eq!(e.0[0].message, "duplicate key `amount`", "{e}");
        assert_eq!(e.0[0].field, "amount");
        assert_eq!(e.0[0].line, 2);
    }

    #[test]
    fn rejects_anchors_and_aliases() {
        let e = p("a: &x 1\nb: *x\n").unwrap_err();
        assert!(e.0[0].message.contains("anchors"), "{e}");
        let bomb = format!("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n{}", "d: 1\n");
        assert!(p(&bomb).unwrap_err().0[0].message.contains("anchors"));
    }

    #[test]
    fn rejects_non_utf8_with_position() {
        let e = parse(Path::new("t.yaml"), b"a: 1\nb: \xff\n", Limits::PROPOSAL).unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].column), (2, 4));
    }

    #[test]
    fn rejects_oversized_input() {
        let big = format!("a: \"{}\"\n", "x".repeat(300 * 1024));
        let e = p(&big).unwrap_err();
        assert!(e.0[0].message.contains("over the cap"), "{e}");
    }

    #[test]
    fn rejects_several_documents() {
        let e = p("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(
            e.0[0].message.contains("more than one YAML document"),
            "{e}"
        );
    }

    #[test]
    fn rejects_deep_nesting() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(p(&deep).is_err());
    }
}
