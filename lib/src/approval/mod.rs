//! Approval files: what a granted approval becomes for the hosts that act on it
//! (docs/approvals.md). When a request reaches its quorum, the final decision's commit
//! writes `audit/approvals/<request>.json`: an in-toto Statement v1 whose predicate
//! scopes the approval (what, where, how much, which proposal, until when, once), with
//! SSHSIG signatures under the namespace [`NAMESPACE`]:
//!
//! - every approver signs the request's [`Scope`] when they approve (the signature is
//!   recorded in their decision event), the same bytes for all of them;
//! - the final approver also signs the whole statement, which adds what only the final
//!   approval knows: the window, the list of approvers, the final decision event.
//!
//! [`check`] checks a file offline, from the file and the signer files alone.

pub mod check;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The SSHSIG namespace of approval signatures (never the decision namespace `hitl`).
pub const NAMESPACE: &str = "hitl-approval";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// hitl's predicate type.
pub const PREDICATE_TYPE: &str = "https://hitl.dev/approval/v1";
/// The type of the scope every approver signs.
pub const SCOPE_TYPE: &str = "https://hitl.dev/approval-scope/v1";
/// Where an approved request's file lives in the audit.
#[must_use]
pub fn path(request: &str) -> String {
    format!("{}/approvals/{request}.json", crate::audit::AUDIT_DIR)
}

/// The action an approval allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
}

/// Where it may act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeTarget {
    pub system: String,
    pub object: String,
}

/// The most it may move: the proposal's amount (never more), as a decimal string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceiling {
    pub ceiling: String,
    pub currency: String,
}

/// What every approver of a request signs when they approve: one action, on one target,
/// with these parameters, up to this amount, for this exact proposal version, for this
/// long after the final approval, once. The same bytes for every approver: it is a
/// function of the recorded proposal and the configuration it was proposed under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(rename = "_type")]
    pub kind: String,
    pub request: String,
    pub version: u32,
    /// `sha256:HEX` of the exact proposal bytes.
    pub proposal: String,
    /// `sha256:HEX` of the evidence pack the approvers were shown.
    pub evidence_pack: String,
    pub action: ScopeAction,
    pub target: ScopeTarget,
    /// `sha256:HEX` of the parameters as canonical JSON ([`parameters_digest`]).
    pub parameters: String,
    pub amount: Option<Ceiling>,
    /// The change window the action must run in, with its schedule (from the matrix
    /// the request was proposed under): every approver signs it.
    pub change_window: Option<WindowSchedule>,
    /// An operator must supervise the execution.
    pub supervised: bool,
    pub approvals_required: u8,
    /// How long the approval is valid from the final approval (the tier's
    /// `approval_valid_for`), in seconds; never past the proposal's `expires_at`.
    pub valid_for_seconds: Option<u64>,
    pub expires_at: String,
    pub single_use: bool,
}

impl Scope {
    /// The exact bytes every approver signs: compact JSON, fields in this order.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The sha256 of parameters as canonical JSON: object keys sorted, no blanks
/// (`sha256:HEX`). What `hitl check --params FILE` compares.
#[must_use]
pub fn parameters_digest(params: &Json) -> String {
    fn canonical(v: &Json) -> Json {
        match v {
            Json::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Json::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), canonical(&m[k])))
                        .collect(),
                )
            }
            Json::Array(a) => Json::Array(a.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    let bytes = serde_json::to_vec(&canonical(params)).unwrap_or_default();
    format!("sha256:{}", crate::audit::sha256_hex(&bytes))
}

/// A change window's schedule, as the statement carries it (checked offline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSchedule {
    pub name: String,
    pub timezone: String,
    pub days: Vec<String>,
    /// `HH:MM-HH:MM`, start inclusive, end exclusive.
    pub hours: String,
}

impl WindowSchedule {
    /// The schedule of a matrix's window.
    #[must_use]
    pub fn of(w: &crate::matrix::ChangeWindow) -> Self {
        Self {
            name: w.name.clone(),
            timezone: w.timezone.clone(),
            days: w
                .days
                .iter()
                .map(|d| crate::matrix::weekday_name(*d).to_owned())
                .collect(),
            hours: format!("{}-{}", w.start.format("%H:%M"), w.end.format("%H:%M")),
        }
    }
}

/// One approver, as the final approval lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    pub principal: String,
    pub role: String,
    /// `SHA256:...` fingerprint of the key that signed the decision and the scope.
    pub key: String,
    pub decided_at: String,
    /// The seq of their decision event.
    pub decision: u64,
}

/// The final decision event: its seq and the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalDecision {
    pub seq: u64,
    pub sha256: String,
}

/// hitl's predicate: the scope (as the exact bytes signed, and spelled out), the window,
/// the approvers, the final decision and the configuration it was decided under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// A random nonce naming this approval.
    pub approval_id: String,
    /// The exact bytes of the [`Scope`] every approver signed.
    pub scope: String,
    pub action: ScopeAction,
    pub target: ScopeTarget,
    pub parameters: String,
    pub amount: Option<Ceiling>,
    pub not_before: String,
    pub expires_at: String,
    pub change_window: Option<WindowSchedule>,
    pub supervised: bool,
    pub approvals_required: u8,
    pub approvers: Vec<Approver>,
    pub final_decision: FinalDecision,
    /// The matrix and policy digests the final approval was decided under.
    pub matrix: String,
    pub policies: String,
    pub single_use: bool,
}

/// An in-toto subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub name: String,
    pub digest: std::collections::BTreeMap<String, String>,
}

/// The in-toto Statement v1 the final approver signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub kind: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

/// What a signature signs: the scope (every approver) or the statement (the final one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signs {
    Scope,
    Statement,
}

/// One signature of an approval file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSignature {
    pub principal: String,
    /// `SHA256:...` fingerprint of the signing key.
    pub key: String,
    pub signs: Signs,
    /// Armored SSHSIG, namespace [`NAMESPACE`].
    pub signature: String,
}

/// An approval file: the statement as the exact string signed, and the signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFile {
    pub statement: String,
    pub signatures: Vec<FileSignature>,
}

impl ApprovalFile {
    /// The file's bytes: pretty JSON and a newline.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// An approval's window: from the final approval `from`, for `valid_for_seconds` (the
/// tier's `approval_valid_for`), never past the proposal's `expires_at`. The append
/// writes it and the engine derives it again with this one function.
#[must_use]
pub fn window(
    from: DateTime<Utc>,
    valid_for_seconds: Option<u64>,
    expires_at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = valid_for_seconds
        .and_then(|s| i64::try_from(s).ok())
        .and_then(|s| from.checked_add_signed(chrono::Duration::seconds(s)))
        .map_or(expires_at, |end| end.min(expires_at));
    (from, end)
}

/// What the final decision's append needs to write the approval file once it knows the
/// final decision event: everything but that event's seq and hash, and the final
/// approver's signature of the statement.
#[derive(Debug, Clone)]
pub struct Draft {
    pub request: String,
    pub version: u32,
    pub scope: Scope,
    pub approval_id: String,
    pub approved_at: DateTime<Utc>,
    pub change_window: Option<WindowSchedule>,
    /// Approvers in the order they decided; the last is the final one, whose decision
    /// seq is filled in by [`Draft::finish`].
    pub approvers: Vec<Approver>,
    /// Each approver's signature of the scope, in the same order.
    pub scope_signatures: Vec<String>,
    pub matrix: String,
    pub policies: String,
}

impl Draft {
    /// The window: from the final approval for the tier's `approval_valid_for`, never
    /// past the proposal's own `expires_at`.
    #[must_use]
    pub fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let until = DateTime::parse_from_rfc3339(&self.scope.expires_at)
            .map_or(self.approved_at, |t| t.with_timezone(&Utc));
        window(self.approved_at, self.scope.valid_for_seconds, until)
    }

    /// The statement and the file, once the final decision event is `seq` with bytes
    /// hashing to `sha256`; `sign` signs the statement as the final approver.
    ///
    /// # Errors
    /// The signer's error.
    pub fn finish<E>(
        mut self,
        seq: u64,
        sha256: &str,
        sign: impl FnOnce(&[u8]) -> Result<String, E>,
    ) -> Result<ApprovalFile, E> {
        if let Some(last) = self.approvers.last_mut() {
            last.decision = seq;
        }
        let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let (not_before, expires_at) = self.window();
        let scope_bytes = self.scope.to_bytes();
        let digest = self
            .scope
            .proposal
            .strip_prefix("sha256:")
            .unwrap_or(&self.scope.proposal)
            .to_owned();
        let statement = Statement {
            kind: STATEMENT_TYPE.to_owned(),
            subject: vec![Subject {
                name: format!("hitl-request:{}@v{}", self.request, self.version),
                digest: std::iter::once(("sha256".to_owned(), digest)).collect(),
            }],
            predicate_type: PREDICATE_TYPE.to_owned(),
            predicate: Predicate {
                approval_id: self.approval_id,
                scope: String::from_utf8_lossy(&scope_bytes).into_owned(),
                action: self.scope.action.clone(),
                target: self.scope.target.clone(),
                parameters: self.scope.parameters.clone(),
                amount: self.scope.amount.clone(),
                not_before: stamp(not_before),
                expires_at: stamp(expires_at),
                change_window: self.change_window,
                supervised: self.scope.supervised,
                approvals_required: self.scope.approvals_required,
                approvers: self.approvers.clone(),
                final_decision: FinalDecision {
                    seq,
                    sha256: sha256.to_owned(),
                },
                matrix: self.matrix,
                policies: self.policies,
                single_use: true,
            },
        };
        let text = serde_json::to_string_pretty(&statement).unwrap_or_default();
        let final_sig = sign(text.as_bytes())?;
        let mut signatures: Vec<FileSignature> = self
            .approvers
            .iter()
            .zip(self.scope_signatures)
            .map(|(a, s)| FileSignature {
                principal: a.principal.clone(),
                key: a.key.clone(),
                signs: Signs::Scope,
                signature: s,
            })
            .collect();
        if let Some(last) = self.approvers.last() {
            signatures.push(FileSignature {
                principal: last.principal.clone(),
                key: last.key.clone(),
                signs: Signs::Statement,
                signature: final_sig,
            });
        }
        Ok(ApprovalFile {
            statement: text,
            signatures,
        })
    }
}

/// Parameters a host is about to use (`hitl check --params FILE`): JSON, with every
/// object's keys distinct (a parser that keeps the first of two `charge` keys and one
/// that keeps the last would act on different charges).
///
/// # Errors
/// Where the JSON is not valid, or the first duplicate key.
pub fn parse_parameters(bytes: &[u8]) -> Result<Json, String> {
    struct Strict(Json);
    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                    Ok(Strict(Json::Bool(v)))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                    Ok(Strict(Json::from(v)))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                    Ok(Strict(Json::from(v)))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                    Ok(Strict(Json::from(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                    Ok(Strict(Json::String(v.to_owned())))
                }
                fn visit_unit<E>(self) -> Result<Strict, E> {
                    Ok(Strict(Json::Null))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Strict, A::Error> {
                    let mut out = Vec::new();
                    while let Some(Strict(v)) = a.next_element()? {
                        out.push(v);
                    }
                    Ok(Strict(Json::Array(out)))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Strict, A::Error> {
                    let mut out = serde_json::Map::new();
                    while let Some(k) = a.next_key::<String>()? {
                        let Strict(v) = a.next_value()?;
                        if out.insert(k.clone(), v).is_some() {
                            return Err(serde::de::Error::custom(format!("duplicate key `{k}`")));
                        }
                    }
                    Ok(Strict(Json::Object(out)))
                }
            }
            d.deserialize_any(V)
        }
    }
    serde_json::from_slice::<Strict>(bytes)
        .map(|s| s.0)
        .map_err(|e| format!("line {}, column {}: {e}", e.line(), e.column()))
}
