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
    /// Its rollback command was started by `by` ([`super::rollback`]): it is running,
    /// or the one who started it stopped before recording its end. Never runs again.
    RollingBack { by: String },
    /// Its rollback command ran and exited with `exit_code`.
    RolledBack { exit_code: i64 },
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
            Self::RollingBack { .. } => "rolling-back",
            Self::RolledBack { .. } => "rolled-back",
        }
    }
}

/// The execution facts of a request's current version.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Facts {
    /// When the quorum was reached: the window of the approval file starts here.
    pub approved_at: Option<DateTime<Utc>>,
    pub spent: Option<(String, DateTime<Utc>)>,
    pub executed: Option<i64>,
    pub verified: Option<bool>,
    pub revoked: Option<String>,
    /// The principals whose `rollback_approved` the engine accepted, in order.
    pub rollback_approvals: Vec<String>,
    /// Who started the rollback (`rollback_started`).
    pub rollback_started: Option<String>,
    /// The rollback command's exit code (`rolled_back`).
    pub rolled_back: Option<i64>,
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
        } else if let Some(exit_code) = f.rolled_back {
            Execution::RolledBack { exit_code }
        } else if let Some(by) = &f.rollback_started {
            Execution::RollingBack { by: by.clone() }
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
        Some(crate::approval::window(
            from,
            d.valid_for_seconds,
            d.expires_at,
        ))
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
            // A human-supervised tier is spent by its operator, named, in one of the
            // request's eligible roles: the rule holds for a recorded spend as for `exec`.
            if let Some(Ok(d)) = &state.derived
                && d.supervised
            {
                let operator = e.field_str("operator");
                let in_role = d
                    .eligible
                    .iter()
                    .any(|(_, members)| members.iter().any(|m| Some(m.as_str()) == operator));
                if operator != Some(by.as_str()) || !in_role {
                    return Err(format!(
                        "a human-supervised tier is spent by its operator, in a role that may approve it, with their own key; this spend is by {by}{}",
                        operator.map_or_else(
                            || " with no operator".to_owned(),
                            |o| format!(" for operator {o}")
                        )
                    ));
                }
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
        // Once a rollback started, the execution it undoes records nothing more.
        types::EXECUTED | types::VERIFIED if f.rollback_started.is_some() => Err(format!(
            "its rollback started already: `{}` comes too late",
            e.kind
        )),
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

/// A probe of a new execution event, for [`judge_execution`] before it is recorded.
pub(super) fn probe(kind: &str, request: &str, principal: &str, now: DateTime<Utc>) -> Event {
    Event {
        seq: 0,
        prev: String::new(),
        kind: kind.to_owned(),
        request: request.to_owned(),
        at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        actor: crate::audit::Actor {
            principal: principal.to_owned(),
            key: String::new(),
        },
        config: crate::audit::ConfigVersions {
            matrix: String::new(),
            policies: String::new(),
            tool: String::new(),
        },
        fields: serde_json::Map::new(),
    }
}

/// The request folded at HEAD (a governed history), the configuration at HEAD and its
/// tree, once `signer` is trusted there for `principal`: what every execution command
/// judges from.
pub(super) fn folded<'r>(
    repo: &'r crate::audit::AuditRepo,
    request: &str,
    (principal, signer): (&str, &ssh_key::PublicKey),
    now: DateTime<Utc>,
) -> Result<Folded<'r>, WorkflowError> {
    let head = repo
        .head_for_reading()?
        .ok_or_else(|| WorkflowError::NotProposed(request.to_owned()))?;
    let tree = head.tree().map_err(crate::audit::AuditError::from)?;
    let mut configs = super::config::Configs::default();
    super::engine::check_governed(repo, &mut configs, &head)?;
    let current = configs.at(repo, &tree)?;
    super::engine::signer_trusted(&current, signer, principal, now)?;
    let (state, events) = super::engine::state_at(repo, &mut configs, &head, &tree, request, now)?;
    Ok(Folded {
        state,
        events,
        current,
        tree,
    })
}

pub(super) struct Folded<'r> {
    pub state: State,
    pub events: Vec<Event>,
    pub current: std::sync::Arc<super::config::Config>,
    pub tree: git2::Tree<'r>,
}

/// What `hitl exec` asks of the engine before its command runs.
pub struct Spend<'a> {
    /// The approval file's bytes, and its name for messages.
    pub file: &'a [u8],
    pub name: &'a str,
    pub want: &'a crate::approval::check::Want<'a>,
    /// Who executes: the principal of the key that signs, and that key.
    pub principal: &'a str,
    pub signer: &'a ssh_key::PublicKey,
    /// The operator named with `--operator`, for a human-supervised tier.
    pub operator: Option<&'a str>,
    /// The sha256 of the command line (JSON array of its words).
    pub command: &'a str,
}

/// The `spent` event of `hitl exec`, judged under the lock at `now`: the approval file
/// checked as `hitl check` does with the audit at hand (so not spent or revoked), the
/// request's proposal evaluated again under the configuration in force (the policies
/// now must still allow it), a human-supervised tier's operator present (the executor
/// itself, named, in one of the request's eligible roles), and the engine's rule for a
/// `spent` event.
///
/// # Errors
/// The refusal, as `hitl check` gives it, or the workflow's.
pub fn spend(
    repo: &crate::audit::AuditRepo,
    s: &Spend<'_>,
    now: DateTime<Utc>,
) -> Result<crate::audit::Built, super::approval::AtHead> {
    judged_spend(repo, s, now).map(|(built, _)| built)
}

/// What `exec` must run before it spends: the precondition of the recorded proposal
/// of the request's current version, once [`spend`] would accept the spend at `now`
/// (so a command is only ever run for an approval that would be spent).
///
/// # Errors
/// The refusal [`spend`] gives.
pub fn precondition(
    repo: &crate::audit::AuditRepo,
    s: &Spend<'_>,
    now: DateTime<Utc>,
) -> Result<Option<super::precondition::Precondition>, super::approval::AtHead> {
    judged_spend(repo, s, now).map(|(_, pre)| pre)
}

fn judged_spend(
    repo: &crate::audit::AuditRepo,
    s: &Spend<'_>,
    now: DateTime<Utc>,
) -> Result<
    (
        crate::audit::Built,
        Option<super::precondition::Precondition>,
    ),
    super::approval::AtHead,
> {
    use super::approval::AtHead;
    use crate::approval::check::Refusal;
    let checked = super::approval::check_at_head(repo, s.name, s.file, s.want, now, None)?;
    let request = checked.parsed.request().to_owned();
    let Folded {
        state,
        events,
        current,
        tree,
    } = folded(repo, &request, (s.principal, s.signer), now)?;
    let Some(Ok(derived)) = &state.derived else {
        return Err(AtHead::Refused(Refusal::NotApproved {
            why: format!("`{request}` is inconsistent"),
        }));
    };
    // The policies in force now, on the recorded proposal: an approval granted under a
    // policy since tightened does not run.
    let proposed = events.iter().rev().find(|e| e.kind == types::PROPOSED);
    let digest = proposed
        .and_then(|e| e.field_str("proposal"))
        .unwrap_or_default();
    let bytes = super::engine::recorded_blob(repo, &tree, digest)
        .map_err(|why| AtHead::Refused(Refusal::NotApproved { why }))?;
    let now_facts = super::derive::derive_facts(&current, &bytes, &derived.submitted_by, now)
        .map_err(|why| AtHead::Refused(Refusal::NotApproved { why }))?;
    if now_facts.blocked {
        return Err(AtHead::Refused(Refusal::NotApproved {
            why: format!(
                "the configuration in force now blocks `{request}` (its policies deny it, or nobody could approve it)"
            ),
        }));
    }
    if derived.supervised {
        let Some(operator) = s.operator else {
            return Err(AtHead::Refused(Refusal::Operator {
                request,
                why: "name the operator who supervises it (`--operator PRINCIPAL`), whose key signs the execution".to_owned(),
            }));
        };
        if operator != s.principal {
            return Err(AtHead::Refused(Refusal::Operator {
                request,
                why: format!(
                    "the execution is signed by {}, not by the operator {operator}: the operator's own key signs it",
                    s.principal
                ),
            }));
        }
        let in_role = derived
            .eligible
            .iter()
            .any(|(_, members)| members.iter().any(|m| m == operator));
        if !in_role {
            return Err(AtHead::Refused(Refusal::Operator {
                request,
                why: format!("{operator} holds none of the roles that may approve it"),
            }));
        }
    }
    refuse(
        &request,
        judge_execution(
            &state,
            &{
                let mut p = probe(types::SPENT, &request, s.principal, now);
                p.fields.insert("operator".to_owned(), json!(s.operator));
                p
            },
            false,
        ),
    )?;
    let p = checked.parsed.predicate();
    let file_digest = format!("sha256:{}", crate::audit::sha256_hex(s.file));
    // The recorded bytes the approvers approved, read under the configuration in force
    // (which derived the facts above from them).
    let pre = super::derive::parse_under(
        &current,
        std::path::Path::new("<recorded proposal>"),
        &bytes,
        &derived.submitted_by,
    )
    .map_err(|why| AtHead::Refused(Refusal::NotApproved { why }))?;
    let pre = super::precondition::Precondition::of(&pre.1);
    // A program of the work tree runs only as the proposal's commit held it.
    if let Some(pre) = &pre {
        super::pinned::check(repo, "change.precondition", &pre.command).map_err(|why| {
            AtHead::Refused(Refusal::Precondition {
                request: request.clone(),
                why,
            })
        })?;
    }
    let built = crate::audit::Built {
        events: vec![spent(
            &request,
            &p.approval_id,
            &file_digest,
            s.command,
            s.operator,
        )],
        blobs: Vec::new(),
        approval: None,
        subject: format!("spend the approval of {request} by {}", s.principal),
        trailers: Vec::new(),
    };
    Ok((built, pre))
}

/// The `executed` or `verified` event that closes an execution `principal` started,
/// judged by the engine under the lock at `now`.
///
/// # Errors
/// The engine's refusal.
pub fn finish(
    repo: &crate::audit::AuditRepo,
    request: &str,
    (principal, signer): (&str, &ssh_key::PublicKey),
    kind: &str,
    fields: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<crate::audit::Built, WorkflowError> {
    let state = folded(repo, request, (principal, signer), now)?.state;
    refuse(
        request,
        judge_execution(&state, &probe(kind, request, principal, now), false),
    )?;
    Ok(crate::audit::Built {
        events: vec![event(kind, request, fields)],
        blobs: Vec::new(),
        approval: None,
        subject: format!("{kind} {request} by {principal}"),
        trailers: Vec::new(),
    })
}

/// The `revoked` event of `hitl revoke`, judged under the lock at `now`: an unspent
/// approval, revoked by one of its approvers or a member of the break-glass role, with
/// a reason.
///
/// # Errors
/// The engine's refusal.
pub fn revoke(
    repo: &crate::audit::AuditRepo,
    request: &str,
    (principal, signer): (&str, &ssh_key::PublicKey),
    reason: &str,
    now: DateTime<Utc>,
) -> Result<crate::audit::Built, WorkflowError> {
    crate::text::check_decision(None, Some(reason))?;
    if reason.trim().is_empty() {
        return Err(WorkflowError::MissingReason);
    }
    let Folded { state, current, .. } = folded(repo, request, (principal, signer), now)?;
    let break_glass = super::break_glass::is_member(&current, principal);
    if state.derived.is_none() {
        return Err(WorkflowError::NotProposed(request.to_owned()));
    }
    refuse(
        request,
        judge_execution(
            &state,
            &probe(types::REVOKED, request, principal, now),
            break_glass,
        ),
    )?;
    Ok(crate::audit::Built {
        events: vec![event(types::REVOKED, request, json!({ "reason": reason }))],
        blobs: Vec::new(),
        approval: None,
        subject: format!("revoke the approval of {request} by {principal}"),
        trailers: Vec::new(),
    })
}
