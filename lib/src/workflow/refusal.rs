//! A refusal of `hitl check` or `hitl exec`, recorded when the audit is at hand
//! (docs/approvals.md): a `refused` event for the request the approval file names, in a
//! commit signed by whoever was refused. It never changes the request's state; the
//! engine holds it only as its commit signer's, for a request proposed before it. Its
//! free text (`reason`) is data: stored and shown escaped, never read as a rule.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::rules::{State, parse_at};
use super::{WorkflowError, types};
use crate::approval::check::{Refusal, Want};
use crate::audit::{Event, NewEvent};

/// The commands whose refusals are recorded.
pub const COMMANDS: [&str; 2] = ["check", "exec"];

/// One recorded refusal, as the engine folded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refused {
    pub seq: u64,
    pub at: String,
    pub by: String,
    /// `check` or `exec`.
    pub command: String,
    /// The refusal's stable name (`expired`, `over-amount`...).
    pub refusal: String,
}

/// What was refused: by which command, why, for which file and wanted scope.
pub struct Attempt<'a> {
    pub command: &'a str,
    pub refusal: &'a Refusal,
    /// The approval file's bytes.
    pub file: &'a [u8],
    pub want: &'a Want<'a>,
}

/// The request an approval file names, when it parses far enough (the file, its
/// statement and its scope are JSON of their shapes), even where `check` refuses it
/// as not byte for byte what hitl wrote. `None` otherwise: nothing is recorded.
#[must_use]
pub fn named_request(bytes: &[u8]) -> Option<String> {
    let file: crate::approval::ApprovalFile = serde_json::from_slice(bytes).ok()?;
    let statement: crate::approval::Statement = serde_json::from_str(&file.statement).ok()?;
    let scope: crate::approval::Scope = serde_json::from_str(&statement.predicate.scope).ok()?;
    crate::request::is_valid_id(&scope.request).then_some(scope.request)
}

/// Whether a recorded `refused` event holds against `state`: the request was proposed
/// before it, by a command whose refusals are recorded. (Who recorded it is the commit's
/// signer: the engine and `verify` check that apart.)
///
/// # Errors
/// Why it does not hold.
pub fn judge_refused(state: &State, e: &Event) -> Result<(), String> {
    parse_at(&e.at)?;
    if state.derived.is_none() {
        return Err("the request was not proposed before it".to_owned());
    }
    match e.field_str("command") {
        Some(c) if COMMANDS.contains(&c) => Ok(()),
        other => Err(format!(
            "its `command` is {}, not `check` or `exec`",
            other.map_or_else(|| "missing".to_owned(), |c| format!("`{c}`"))
        )),
    }
}

impl State {
    /// Folds a `refused` event [`judge_refused`] accepted: it is listed, nothing else
    /// changes.
    pub fn refused(&mut self, e: &Event) {
        self.refusals.push(Refused {
            seq: e.seq,
            at: e.at.clone(),
            by: e.actor.principal.clone(),
            command: e.field_str("command").unwrap_or_default().to_owned(),
            refusal: e.field_str("refusal").unwrap_or_default().to_owned(),
        });
    }
}

/// The `refused` event of `attempt` for `request`, judged under the lock from the tree
/// it extends: the history governed, the signer trusted for `principal`, the request
/// proposed in the audit.
///
/// # Errors
/// [`WorkflowError::NotProposed`] for a request the audit does not know; the refusal of
/// a tampered history or an untrusted key.
pub fn record(
    repo: &crate::audit::AuditRepo,
    head: Option<&git2::Commit<'_>>,
    tree: &git2::Tree<'_>,
    request: &str,
    attempt: &Attempt<'_>,
    (principal, signer): (&str, &ssh_key::PublicKey),
    now: DateTime<Utc>,
) -> Result<crate::audit::Built, WorkflowError> {
    let Some(head) = head else {
        return Err(WorkflowError::NotProposed(request.to_owned()));
    };
    let mut configs = super::config::Configs::default();
    super::engine::check_governed(repo, &mut configs, head)?;
    let current = configs.at(repo, tree)?;
    super::engine::signer_trusted(&current, signer, principal, now)?;
    let (state, _) = super::engine::state_at(repo, &mut configs, head, tree, request, now)?;
    if state.derived.is_none() {
        return Err(WorkflowError::NotProposed(request.to_owned()));
    }
    let w = attempt.want;
    let r = attempt.refusal;
    Ok(crate::audit::Built {
        events: vec![NewEvent {
            kind: types::REFUSED.to_owned(),
            request: request.to_owned(),
            fields: super::obj(json!({
                "command": attempt.command,
                "refusal": r.code(),
                "exit_code": r.exit_code(),
                "reason": r.to_string(),
                "approval": format!("sha256:{}", crate::audit::sha256_hex(attempt.file)),
                "action": w.action,
                "target": w.target,
                "amount": w.amount.map(|(value, currency)| json!({"value": value, "currency": currency})),
            })),
            // Signed by the commit, as the execution events are.
            sign: false,
            config: None,
        }],
        blobs: Vec::new(),
        approval: None,
        subject: format!(
            "refusal of {} for {request} ({}) by {principal}",
            attempt.command,
            r.code()
        ),
        trailers: Vec::new(),
    })
}
