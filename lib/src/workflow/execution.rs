//! The execution states after `approved` (docs/workflow.md, docs/approvals.md): an
//! approval is `spent` once, in a signed commit, before its command runs (`hitl exec`),
//! then `executed` and optionally `verified`; or `revoked` unspent (`hitl revoke`). The
//! engine folds these events like every other: a recorded one holds only where its rule
//! holds at its time, so `verify` and a new command judge them alike.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::rules::{Outcome, State, parse_at};
use super::{WorkflowError, obj, types};
use crate::audit::{Event, NewEvent};

/// Where an approved request's execution stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// Approved, not spent: its approval file may be used once.
    Ready,
    /// Spent by `by`: the command is running, or the executor stopped before recording
    /// its end. Never runs again.
    Spent { by: String },
    /// The command ran and exited with `exit_code`.
    Executed { exit_code: i64 },
    /// Its verification ran: `passed` or not.
    Verified { passed: bool },
    /// Revoked unspent by `by`.
    Revoked { by: String },
}

impl Execution {
    /// The state's name once approved, as docs/workflow.md names it.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Ready => "approved",
            Self::Spent { .. } => "executing",
            Self::Executed { .. } => "executed",
            Self::Verified { .. } => "verified",
            Self::Revoked { .. } => "revoked",
        }
    }
}

/// The execution facts of a request's current version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// When the quorum was reached: the window of the approval file starts here.
    pub approved_at: Option<DateTime<Utc>>,
    pub spent: Option<(String, DateTime<Utc>)>,
    pub executed: Option<i64>,
    pub verified: Option<bool>,
    pub revoked: Option<String>,
}

impl State {
    /// Where the request's execution stands (`None` unless it is approved).
    #[must_use]
    pub fn execution(&self, at: DateTime<Utc>) -> Option<Execution> {
        if self.outcome(at) != Outcome::Approved {
            return None;
        }
        let f = &self.execution;
        Some(if let Some(by) = &f.revoked {
            Execution::Revoked { by: by.clone() }
        } else if let Some(passed) = f.verified {
            Execution::Verified { passed }
        } else if let Some(exit_code) = f.executed {
            Execution::Executed { exit_code }
        } else if let Some((by, _)) = &f.spent {
            Execution::Spent { by: by.clone() }
        } else {
            Execution::Ready
        })
    }

    /// The state's name at `at`: the outcome's, or once approved the execution's.
    #[must_use]
    pub fn state_name(&self, at: DateTime<Utc>) -> &'static str {
        self.execution(at)
            .map_or_else(|| self.outcome(at).name(), |e| e.name())
    }

    /// The window of the approval file: from the final approval, for the tier's
    /// `approval_valid_for`, never past the proposal's `expires_at`.
    #[must_use]
    pub fn window(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let Some(Ok(d)) = &self.derived else {
            return None;
        };
        let from = self.execution.approved_at?;
        let end = d
            .valid_for_seconds
            .and_then(|s| i64::try_from(s).ok())
            .and_then(|s| from.checked_add_signed(chrono::Duration::seconds(s)))
            .map_or(d.expires_at, |end| end.min(d.expires_at));
        Some((from, end))
    }

    /// Folds an execution event that [`judge_execution`] accepted.
    pub fn execute(&mut self, e: &Event) {
        let Ok(at) = parse_at(&e.at) else {
            return;
        };
        let f = &mut self.execution;
        match e.kind.as_str() {
            types::SPENT => f.spent = Some((e.actor.principal.clone(), at)),
            types::EXECUTED => {
                f.executed = Some(
                    e.fields
                        .get("exit_code")
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(-1),
                );
            }
            types::VERIFIED => {
                f.verified = Some(e.field_str("result") == Some("passed"));
            }
            types::REVOKED => f.revoked = Some(e.actor.principal.clone()),
            _ => {}
        }
    }
}

/// Whether a recorded execution event holds against `state`: `spent` once, for an
/// approved version inside its window, not revoked; `executed` once after it, by the
/// same principal; `verified` once after that, by the same principal; `revoked` once,
/// unspent, by one of its approvers or a member of the break-glass role (`break_glass`:
/// the actor is one, under the matrix in force).
///
/// # Errors
/// Why the event does not hold.
pub fn judge_execution(state: &State, e: &Event, break_glass: bool) -> Result<(), String> {
    let at = parse_at(&e.at)?;
    let Some(execution) = state.execution(at) else {
        return Err(format!(
            "the request is {}, not approved",
            state.outcome(at).name()
        ));
    };
    let f = &state.execution;
    let by = &e.actor.principal;
    match e.kind.as_str() {
        types::SPENT => {
            if execution != Execution::Ready {
                return Err(format!("its approval is {} already", execution.name()));
            }
            match state.window() {
                Some((from, until)) if at >= from && at < until => Ok(()),
                Some((from, until)) => Err(format!(
                    "spent at {} outside its window {} to {}",
                    e.at,
                    from.to_rfc3339(),
                    until.to_rfc3339()
                )),
                None => Err("no window: the approval's time is not known".to_owned()),
            }
        }
        types::EXECUTED => match (&f.spent, f.executed, &f.revoked) {
            (Some((spender, _)), None, None) if spender == by => Ok(()),
            (Some((spender, _)), None, None) => {
                Err(format!("it was spent by {spender}, not by {by}"))
            }
            _ => Err("`executed` without an unfinished `spent` before it".to_owned()),
        },
        types::VERIFIED => match (&f.spent, f.executed, f.verified) {
            (Some((spender, _)), Some(_), None) if spender == by => Ok(()),
            _ => Err("`verified` without an `executed` of the same executor before it".to_owned()),
        },
        types::REVOKED => {
            if execution != Execution::Ready {
                return Err(format!("its approval is {} already", execution.name()));
            }
            let approver = state
                .approvals
                .iter()
                .chain(&state.reviewed)
                .any(|(p, _)| p == by);
            if approver || break_glass {
                Ok(())
            } else {
                Err(format!(
                    "{by} neither approved it nor holds the break-glass role"
                ))
            }
        }
        other => Err(format!("`{other}` is not an execution event")),
    }
}

/// A new execution event of `kind` by `by` for `request`, with `fields`.
#[must_use]
pub fn event(kind: &str, request: &str, fields: serde_json::Value) -> NewEvent {
    NewEvent {
        kind: kind.to_owned(),
        request: request.to_owned(),
        fields: obj(fields),
        // Signed by the commit (the executor's, or the operator's), as proposals are.
        sign: false,
        config: None,
    }
}

/// The `spent` event of `hitl exec`: the approval id, the file's digest, the digest of
/// the command line, the operator when the tier is supervised.
#[must_use]
pub fn spent(
    request: &str,
    approval_id: &str,
    file_digest: &str,
    command: &str,
    operator: Option<&str>,
) -> NewEvent {
    event(
        types::SPENT,
        request,
        json!({
            "approval_id": approval_id,
            "approval": file_digest,
            "command": command,
            "operator": operator,
        }),
    )
}

/// Refuses a new execution event the engine would not hold, as the CLI's error.
///
/// # Errors
/// [`WorkflowError::Execution`].
pub fn refuse(request: &str, why: Result<(), String>) -> Result<(), WorkflowError> {
    why.map_err(|why| WorkflowError::Execution {
        request: request.to_owned(),
        why,
    })
}
