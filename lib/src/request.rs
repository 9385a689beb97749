//! Action proposals (`requests/*.yaml`), written by agents and therefore hostile input.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::decode::Decoder;
use crate::diag::Diagnostics;
use crate::yaml::{self, Limits, Node};

crate::words! {
    /// What kind of effect an action has, from the article's implementation checklist.
    pub enum ActionType {
        Read = "read",
        Draft = "draft",
        Send = "send",
        Update = "update",
        Delete = "delete",
        Approve = "approve",
        Execute = "execute",
    }
}

crate::words! {
    /// How far a source can be trusted.
    pub enum Authority {
        Low = "low",
        Medium = "medium",
        High = "high",
        SystemOfRecord = "system-of-record",
    }
}

crate::words! {
    /// Data classification of a source.
    pub enum Classification {
        Public = "public",
        Internal = "internal",
        Confidential = "confidential",
        Restricted = "restricted",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    pub id: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub system: String,
    pub object: String,
}

/// A money amount; thresholds and role limits apply to it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Amount {
    pub value: f64,
    pub currency: String,
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} {}", self.value, self.currency)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: ActionType,
    pub name: String,
    pub target: Target,
    pub parameters: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub id: String,
    pub uri: String,
    pub authority: Authority,
    pub retrieved_at: DateTime<Utc>,
    pub classification: Classification,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// The command (program and arguments, no shell) whose standard output, as JSON,
    /// must equal `before` when `hitl exec` runs the approved action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub precondition: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollback {
    pub plan: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// An action proposal as the agent submitted it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub id: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub agent: Agent,
    pub action: Action,
    pub input_summary: String,
    pub sources: Vec<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_analysis: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hazard_check: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_override: Option<serde_json::Value>,
    pub expires_at: DateTime<Utc>,
}

/// The evidence fields a tier can require, named as in the proposal.
pub const EVIDENCE_FIELDS: [&str; 11] = [
    "input_summary",
    "sources",
    "change",
    "impact",
    "alternatives",
    "rollback",
    "amount",
    "risk_analysis",
    "test_result",
    "hazard_check",
    "manual_override",
];

impl Request {
    /// Whether the proposal carries the named evidence field.
    #[must_use]
    pub fn has_evidence(&self, field: &str) -> bool {
        match field {
            "input_summary" => !self.input_summary.is_empty(),
            "sources" => !self.sources.is_empty(),
            "change" => self.change.is_some(),
            "impact" => self.impact.is_some(),
            "alternatives" => !self.alternatives.is_empty(),
            "rollback" => self.rollback.is_some(),
            "amount" => self.action.amount.is_some(),
            "risk_analysis" => self.risk_analysis.is_some(),
            "test_result" => self.test_result.is_some(),
            "hazard_check" => self.hazard_check.is_some(),
            "manual_override" => self.manual_override.is_some(),
            _ => false,
        }
    }
}

/// A proposal together with where it came from and its exact bytes.
#[derive(Debug, Clone)]
pub struct LoadedRequest {
    pub path: PathBuf,
    pub request: Request,
    /// The file's bytes as submitted; the audit stores them and digests them.
    pub bytes: Vec<u8>,
}

/// True if `id` matches `[a-z0-9][a-z0-9._-]{0,63}`.
#[must_use]
pub fn is_valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// True for a principal as OpenSSH's allowed_signers accepts it: no whitespace, no
/// comma or quote, at most 256 bytes.
#[must_use]
pub fn is_valid_principal(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 256
        && !p.chars().any(|c| {
            c.is_whitespace()
                || crate::decode::is_forbidden_char(c)
                || matches!(c, ',' | '"' | '\'')
        })
}

/// A tool name (`action.name`): lowercase letters, digits, `.`, `_` and `-`.
pub(crate) fn is_tool_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// True for a three-letter currency code such as `EUR`.
#[must_use]
pub fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|c| c.is_ascii_uppercase())
}

const TOP_FIELDS: [&str; 16] = [
    "id",
    "requested_by",
    "requested_at",
    "agent",
    "action",
    "input_summary",
    "sources",
    "change",
    "impact",
    "alternatives",
    "rollback",
    "risk_analysis",
    "test_result",
    "hazard_check",
    "manual_override",
    "expires_at",
];

/// Parses and validates one proposal. `systems` is the matrix's list of known target
/// systems; an unknown system is an error (a typo must not slip into the default tier).
///
/// # Errors
/// Every problem in the file, each with line, column and field path.
pub fn parse(
    path: &Path,
    bytes: &[u8],
    systems: &[String],
    max_bytes: usize,
) -> Result<Request, Diagnostics> {
    let limits = Limits {
        max_bytes,
        ..Limits::PROPOSAL
    };
    let (root, text) = yaml::parse(path, bytes, limits)?;
    let mut d = Decoder::new(path, &text);
    let request = decode_request(&mut d, &root, systems);
    d.finish(request)
}

fn decode_request(d: &mut Decoder<'_>, root: &Node, systems: &[String]) -> Option<Request> {
    let mut m = d.map(root, "")?;
    let id = m.required(d, "id").and_then(|n| {
        d.token(
            n,
            "id",
            "an id matching `[a-z0-9][a-z0-9._-]{0,63}`",
            is_valid_id,
        )
    });
    let requested_by = m.required(d, "requested_by").and_then(|n| {
        d.token(
            n,
            "requested_by",
            "a principal (no spaces, commas or quotes)",
            is_valid_principal,
        )
    });
    let requested_at = m
        .required(d, "requested_at")
        .and_then(|n| d.timestamp(n, "requested_at"));
    let agent = m.required(d, "agent").and_then(|n| decode_agent(d, n));
    let action = m
        .required(d, "action")
        .and_then(|n| decode_action(d, n, systems));
    let input_summary = m
        .required(d, "input_summary")
        .and_then(|n| d.string(n, "input_summary"));
    let sources = m.required(d, "sources").and_then(|n| decode_sources(d, n));
    let change = match m.optional("change") {
        Some(n) => decode_change(d, n).map(Some),
        None => Some(None),
    };
    let impact = m.opt(d, "impact", Decoder::string);
    let alternatives = match m.optional("alternatives") {
        Some(n) => d.list(n, "alternatives", Decoder::string),
        None => Some(Vec::new()),
    };
    let rollback = match m.optional("rollback") {
        Some(n) => decode_rollback(d, n).map(Some),
        None => Some(None),
    };
    let risk_analysis = m.opt(d, "risk_analysis", Decoder::any);
    let test_result = m.opt(d, "test_result", Decoder::any);
    let hazard_check = m.opt(d, "hazard_check", Decoder::any);
    let manual_override = m.opt(d, "manual_override", Decoder::any);
    let expires_at_node = m.required(d, "expires_at");
    let expires_at = expires_at_node.and_then(|n| d.timestamp(n, "expires_at"));
    m.deny_unknown(d, &TOP_FIELDS);

    if let (Some(from), Some(until), Some(n)) = (requested_at, expires_at, expires_at_node)
        && until <= from
    {
        d.error(n.pos, "expires_at", "must be later than `requested_at`");
    }
    Some(Request {
        id: id?,
        requested_by: requested_by?,
        requested_at: requested_at?,
        agent: agent?,
        action: action?,
        input_summary: input_summary?,
        sources: sources?,
        change: change?,
        impact: impact?,
        alternatives: alternatives?,
        rollback: rollback?,
        risk_analysis: risk_analysis?,
        test_result: test_result?,
        hazard_check: hazard_check?,
        manual_override: manual_override?,
        expires_at: expires_at?,
    })
}

fn decode_agent(d: &mut Decoder<'_>, node: &Node) -> Option<Agent> {
    let mut m = d.map(node, "agent")?;
    let id = m.required(d, "id").and_then(|n| d.string(n, "agent.id"));
    let model = m
        .required(d, "model")
        .and_then(|n| d.string(n, "agent.model"));
    let app = m.opt(d, "app", Decoder::string);
    let prompt_template = m.opt(d, "prompt_template", Decoder::string);
    m.deny_unknown(d, &["id", "model", "app", "prompt_template"]);
    Some(Agent {
        id: id?,
        model: model?,
        app: app?,
        prompt_template: prompt_template?,
    })
}

fn decode_action(d: &mut Decoder<'_>, node: &Node, systems: &[String]) -> Option<Action> {
    let mut m = d.map(node, "action")?;
    let kind = m
        .required(d, "type")
        .and_then(|n| d.word::<ActionType>(n, "action.type", ActionType::ALL));
    let name = m.required(d, "name").and_then(|n| {
        d.token(
            n,
            "action.name",
            "a tool name such as `payments.refund` (lowercase, digits, `.`, `_`, `-`)",
            is_tool_name,
        )
    });
    let target = m.required(d, "target").and_then(|n| {
        let mut t = d.map(n, "action.target")?;
        let system = t.required(d, "system").and_then(|n| {
            let s = d.string(n, "action.target.system")?;
            if systems.contains(&s) {
                Some(s)
            } else {
                let hint = crate::decode::suggest(&s, systems.iter().map(String::as_str))
                    .map(|m| format!("did you mean `{m}`?"))
                    .or_else(|| Some(format!("the matrix knows: {}", systems.join(", "))));
                d.error_hint(
                    n.pos,
                    "action.target.system",
                    format!("unknown target system `{s}`"),
                    hint,
                );
                None
            }
        });
        let object = t
            .required(d, "object")
            .and_then(|n| d.string(n, "action.target.object"));
        t.deny_unknown(d, &["system", "object"]);
        Some(Target {
            system: system?,
            object: object?,
        })
    });
    let parameters = match m.optional("parameters") {
        Some(n) => {
            if matches!(n.kind, crate::yaml::Kind::Map(_)) {
                d.any(n, "action.parameters")
            } else {
                d.error(
                    n.pos,
                    "action.parameters",
                    format!("expected a mapping, found {}", n.kind.type_name()),
                );
                None
            }
        }
        None => Some(serde_json::Value::Object(serde_json::Map::new())),
    };
    let amount = match m.optional("amount") {
        Some(n) => decode_amount(d, n, "action.amount").map(Some),
        None => Some(None),
    };
    m.deny_unknown(d, &["type", "name", "target", "parameters", "amount"]);
    Some(Action {
        kind: kind?,
        name: name?,
        target: target?,
        parameters: parameters?,
        amount: amount?,
    })
}

/// `{value, currency}` with a non-negative value and an ISO 4217 code.
pub(crate) fn decode_amount(d: &mut Decoder<'_>, node: &Node, path: &str) -> Option<Amount> {
    let mut m = d.map(node, path)?;
    let value = m.required(d, "value").and_then(|n| {
        let p = m.field("value");
        let v = d.number(n, &p)?;
        if v < 0.0 {
            d.error(n.pos, &p, "amount must not be negative");
            return None;
        }
        Some(v)
    });
    let currency = m.required(d, "currency").and_then(|n| {
        d.token(
            n,
            &m.field("currency"),
            "a three-letter currency code such as `EUR`",
            is_currency,
        )
    });
    m.deny_unknown(d, &["value", "currency"]);
    Some(Amount {
        value: value?,
        currency: currency?,
    })
}

fn decode_sources(d: &mut Decoder<'_>, node: &Node) -> Option<Vec<Source>> {
    let mut seen = std::collections::HashSet::new();
    d.list(node, "sources", |d, n, path| {
        let source = decode_source(d, n, path)?;
        if !seen.insert(source.id.clone()) {
            d.error(
                n.pos,
                &format!("{path}.id"),
                format!("duplicate source id `{}`", source.id),
            );
            return None;
        }
        Some(source)
    })
}

fn decode_source(d: &mut Decoder<'_>, node: &Node, path: &str) -> Option<Source> {
    let mut m = d.map(node, path)?;
    let id = m
        .required(d, "id")
        .and_then(|n| d.string(n, &m.field("id")));
    let uri = m
        .required(d, "uri")
        .and_then(|n| d.string(n, &m.field("uri")));
    let authority = m
        .required(d, "authority")
        .and_then(|n| d.word(n, &m.field("authority"), Authority::ALL));
    let retrieved_at = m
        .required(d, "retrieved_at")
        .and_then(|n| d.timestamp(n, &m.field("retrieved_at")));
    let classification = m
        .required(d, "classification")
        .and_then(|n| d.word(n, &m.field("classification"), Classification::ALL));
    let title = m.opt(d, "title", Decoder::string);
    let snippet = m.opt(d, "snippet", Decoder::string);
    m.deny_unknown(
        d,
        &[
            "id",
            "uri",
            "authority",
            "retrieved_at",
            "classification",
            "title",
            "snippet",
        ],
    );
    Some(Source {
        id: id?,
        uri: uri?,
        authority: authority?,
        retrieved_at: retrieved_at?,
        classification: classification?,
        title: title?,
        snippet: snippet?,
    })
}

fn decode_change(d: &mut Decoder<'_>, node: &Node) -> Option<Change> {
    let mut m = d.map(node, "change")?;
    let before = m
        .required(d, "before")
        .and_then(|n| d.any(n, "change.before"));
    let after = m
        .required(d, "after")
        .and_then(|n| d.any(n, "change.after"));
    let precondition = match m.optional("precondition") {
        Some(n) => decode_precondition(d, n),
        None => Some(Vec::new()),
    };
    m.deny_unknown(d, &["before", "after", "precondition"]);
    Some(Change {
        before: before?,
        after: after?,
        precondition: precondition?,
    })
}

/// `change.precondition`: a non-empty list of strings, the program and its arguments
/// (run without a shell).
fn decode_precondition(d: &mut Decoder<'_>, node: &Node) -> Option<Vec<String>> {
    let words = d.list(node, "change.precondition", Decoder::string)?;
    if words.is_empty() {
        d.error_hint(
            node.pos,
            "change.precondition",
            "must not be empty",
            Some(
                "give the program and its arguments, e.g. `[scripts/charge-state.sh, ch_981]`"
                    .to_owned(),
            ),
        );
        return None;
    }
    Some(words)
}

fn decode_rollback(d: &mut Decoder<'_>, node: &Node) -> Option<Rollback> {
    let mut m = d.map(node, "rollback")?;
    let plan = m
        .required(d, "plan")
        .and_then(|n| d.string(n, "rollback.plan"));
    let command = match m.optional("command") {
        Some(n) => d.list(n, "rollback.command", Decoder::string),
        None => Some(Vec::new()),
    };
    m.deny_unknown(d, &["plan", "command"]);
    Some(Rollback {
        plan: plan?,
        command: command?,
    })
}
