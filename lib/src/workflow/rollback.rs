//! The rollback of a spent approval (docs/approvals.md, docs/workflow.md): `hitl
//! rollback ID` runs the `rollback.command` of the request's recorded proposal once,
//! under the same audit as `exec`. At a tier with `rollback_approval` the rollback
//! needs its own approvals first (`rollback_approved`, by the request's quorum of
//! eligible approvers); `rollback_started` is recorded, in a signed commit, before the
//! command runs, and `rolled_back` after it. The engine folds these events like every
//! other, so a recorded one holds only where its rule holds at its time.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::config::Config;
use super::execution::{Execution, Folded, event, folded, probe};
use super::rules::{State, parse_at};
use super::{WorkflowError, types};
use crate::audit::{Built, Event};

/// Why a rollback event does not hold; nothing ran and nothing was recorded. Each kind
/// has its own exit code in the CLI (docs/cli.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "`{request}` has no `rollback.command` in its recorded proposal: there is nothing to run (its rollback is the plan alone)"
    )]
    NoCommand { request: String },
    #[error(
        "`{request}` is {state}: its approval was never spent, nothing ran, so its `rollback.command` does not run"
    )]
    NothingRan { request: String, state: String },
    #[error(
        "the rollback of `{request}` was started already by {by}: its `rollback.command` runs once"
    )]
    Started { request: String, by: String },
    #[error(
        "the rollback of `{request}` needs {required} rollback approval(s) from {roles} and has {have}: its `rollback.command` does not run yet (`hitl rollback {request} --approve`)"
    )]
    Unapproved {
        request: String,
        required: u8,
        have: usize,
        roles: String,
    },
    #[error("`{request}`: {why}")]
    Operator { request: String, why: String },
    #[error("`{request}`: {why}")]
    Rule { request: String, why: String },
}

/// How many rollback approvals the request's rollback needs: none where its tier has no
/// `rollback_approval`, else the quorum its approval needed (the tier's own, without the
/// sampled review), at least one.
#[must_use]
pub fn required(d: &super::engine::Derived) -> u8 {
    if !d.rollback_approval {
        return 0;
    }
    d.approvals_required
        .saturating_sub(u8::from(d.review_owed()))
        .max(1)
}

impl State {
    /// Folds a rollback event that [`judge_rollback`] accepted.
    pub fn roll_back(&mut self, e: &Event) {
        let f = &mut self.execution;
        match e.kind.as_str() {
            types::ROLLBACK_APPROVED => f.rollback_approvals.push(e.actor.principal.clone()),
            types::ROLLBACK_STARTED => f.rollback_started = Some(e.actor.principal.clone()),
            types::ROLLED_BACK => {
                f.rolled_back = Some(
                    e.fields
                        .get("exit_code")
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(-1),
                );
            }
            _ => {}
        }
    }
}

/// Whether a recorded (or new) rollback event holds against `state`, under `config`
/// (the configuration the event's commit extends), whose signer is the event's actor:
///
/// - every rollback event needs a spent approval (something ran) of a proposal with a
///   `rollback.command`;
/// - `rollback_approved` where the tier asks for it, before the rollback starts, once
///   per principal, by a member of one of the request's eligible roles (when proposed
///   and in `config`), never an agent, the requester, the submitter or the agent's owner;
/// - `rollback_started` once, after as many distinct rollback approvals as
///   [`required`]; at a human-supervised tier by its operator (`operator`, the signer, in
///   an eligible role);
/// - `rolled_back` once, after it, by the principal who started it.
///
/// # Errors
/// The [`Refusal`] naming the rule.
pub fn judge_rollback(state: &State, e: &Event, config: &Config) -> Result<(), Refusal> {
    let request = e.request.clone();
    let rule = |why: String| Refusal::Rule {
        request: request.clone(),
        why,
    };
    let at = parse_at(&e.at).map_err(rule)?;
    let d = match &state.derived {
        Some(Ok(d)) => d,
        Some(Err(why)) => return Err(rule(format!("its record is inconsistent: {why}"))),
        None => return Err(rule("it was never proposed".to_owned())),
    };
    if d.rollback_command.is_empty() {
        return Err(Refusal::NoCommand { request });
    }
    let execution = state.execution(at);
    match &execution {
        Some(
            Execution::Spent { .. }
            | Execution::Executed { .. }
            | Execution::Verified { .. }
            | Execution::RollingBack { .. }
            | Execution::RolledBack { .. },
        ) => {}
        Some(e @ (Execution::Ready | Execution::Revoked { .. })) => {
            return Err(Refusal::NothingRan {
                request,
                state: e.name().to_owned(),
            });
        }
        None => {
            return Err(Refusal::NothingRan {
                request,
                state: state.outcome(at).name().to_owned(),
            });
        }
    }
    let f = &state.execution;
    let by = e.actor.principal.as_str();
    let started = |by: &str| Refusal::Started {
        request: request.clone(),
        by: by.to_owned(),
    };
    match e.kind.as_str() {
        types::ROLLBACK_APPROVED => {
            if let Some(starter) = &f.rollback_started {
                return Err(started(starter));
            }
            if !d.rollback_approval {
                return Err(rule(format!(
                    "tier {} asks for no rollback approval (`rollback_approval: false`)",
                    d.tier
                )));
            }
            approver(d, config, by).map_err(rule)?;
            if f.rollback_approvals.iter().any(|p| p == by) {
                return Err(rule(format!(
                    "{by} approved its rollback already; one principal counts once"
                )));
            }
            Ok(())
        }
        types::ROLLBACK_STARTED => {
            if let Some(starter) = &f.rollback_started {
                return Err(started(starter));
            }
            let need = required(d);
            let have = f.rollback_approvals.len();
            if have < usize::from(need) {
                return Err(Refusal::Unapproved {
                    request,
                    required: need,
                    have,
                    roles: roles(d),
                });
            }
            if d.supervised {
                operator(d, e.field_str("operator"), by).map_err(|why| Refusal::Operator {
                    request: request.clone(),
                    why,
                })?;
            }
            Ok(())
        }
        types::ROLLED_BACK => match (&f.rollback_started, f.rolled_back) {
            (Some(starter), None) if starter == by => Ok(()),
            (Some(starter), None) => Err(rule(format!(
                "its rollback was started by {starter}, not by {by}"
            ))),
            _ => Err(rule(
                "`rolled_back` without an unfinished `rollback_started` before it".to_owned(),
            )),
        },
        other => Err(rule(format!("`{other}` is not a rollback event"))),
    }
}

/// The eligible roles, for messages.
fn roles(d: &super::engine::Derived) -> String {
    let names: Vec<&str> = d.eligible.iter().map(|(r, _)| r.as_str()).collect();
    if names.is_empty() {
        "no role".to_owned()
    } else {
        names.join(", ")
    }
}

/// `by` may approve the rollback: the same separation of duties as an approval (never
/// an agent, the requester, the submitter or the agent's owner), and a member of one of
/// the request's eligible roles both when it was proposed and under `config`.
fn approver(d: &super::engine::Derived, config: &Config, by: &str) -> Result<(), String> {
    let matrix = config.matrix()?;
    if matrix.governance.is_agent(by) {
        return Err(format!(
            "{by} submits proposals (an agent) and may not approve a rollback"
        ));
    }
    if by == d.requested_by || by == d.submitted_by {
        return Err(format!(
            "{by} requested or submitted it and may not approve its rollback (separation of duties)"
        ));
    }
    let owner = matrix.governance.owner_of(&d.submitted_by);
    if d.agent_owner.as_deref() == Some(by) || owner == Some(by) {
        return Err(format!(
            "{by} owns the agent that submitted it, counts as its requester, and may not approve its rollback"
        ));
    }
    let in_role = d.eligible.iter().any(|(role, members)| {
        members.iter().any(|m| m == by)
            && matrix
                .role(role)
                .is_some_and(|r| r.members.iter().any(|m| m == by))
    });
    if in_role {
        Ok(())
    } else {
        Err(format!(
            "{by} is not in any role that may approve it (eligible: {})",
            roles(d)
        ))
    }
}

/// A human-supervised tier's rollback is started by its operator, named, with their
/// own key, in one of the request's eligible roles: the rule of `exec`.
fn operator(d: &super::engine::Derived, operator: Option<&str>, by: &str) -> Result<(), String> {
    let Some(operator) = operator else {
        return Err(
            "name the operator who supervises it (`--operator PRINCIPAL`), whose key signs the rollback"
                .to_owned(),
        );
    };
    if operator != by {
        return Err(format!(
            "the rollback is signed by {by}, not by the operator {operator}: the operator's own key signs it"
        ));
    }
    if d.eligible
        .iter()
        .any(|(_, members)| members.iter().any(|m| m == operator))
    {
        Ok(())
    } else {
        Err(format!(
            "{operator} holds none of the roles that may approve it"
        ))
    }
}

/// What a refused new rollback event gives the CLI.
impl From<Refusal> for WorkflowError {
    fn from(r: Refusal) -> Self {
        Self::Rollback(r)
    }
}

/// The command a rollback runs, judged under the lock at `now` before anything is
/// recorded: what `hitl rollback` shows and then starts.
pub struct Start {
    pub built: Built,
    /// The recorded proposal's `rollback.command`.
    pub command: Vec<String>,
}

/// The `rollback_started` event of `hitl rollback`, judged under the lock at `now` by
/// `principal` (whose key `signer` signs), with `operator` for a human-supervised
/// tier: the command comes from the recorded proposal of the request's current version
/// (the bytes the engine folds), never from the working tree.
///
/// # Errors
/// The engine's refusal.
pub fn start(
    repo: &crate::audit::AuditRepo,
    request: &str,
    (principal, signer): (&str, &ssh_key::PublicKey),
    operator: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Start, WorkflowError> {
    let Folded { state, current, .. } = folded(repo, request, (principal, signer), now)?;
    if state.derived.is_none() {
        return Err(WorkflowError::NotProposed(request.to_owned()));
    }
    let mut p = probe(types::ROLLBACK_STARTED, request, principal, now);
    p.fields.insert("operator".to_owned(), json!(operator));
    judge_rollback(&state, &p, &current)?;
    let command = match &state.derived {
        Some(Ok(d)) => d.rollback_command.clone(),
        _ => Vec::new(),
    };
    // A program of the work tree runs only as the proposal's commit held it.
    super::pinned::check(repo, "rollback.command", &command).map_err(|why| Refusal::Rule {
        request: request.to_owned(),
        why,
    })?;
    let words = serde_json::to_vec(&command).unwrap_or_default();
    Ok(Start {
        built: Built {
            events: vec![event(
                types::ROLLBACK_STARTED,
                request,
                json!({
                    "command": command,
                    "arguments": format!("sha256:{}", crate::audit::sha256_hex(&words)),
                    "operator": operator,
                }),
            )],
            blobs: Vec::new(),
            approval: None,
            subject: format!("start the rollback of {request} by {principal}"),
            trailers: Vec::new(),
        },
        command,
    })
}

/// The `rollback_approved` event of `hitl rollback --approve`, judged under the lock at
/// `now`, with an optional comment.
///
/// # Errors
/// The engine's refusal.
pub fn approve(
    repo: &crate::audit::AuditRepo,
    request: &str,
    (principal, signer): (&str, &ssh_key::PublicKey),
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Built, String), WorkflowError> {
    crate::text::check_decision(None, comment)?;
    let Folded { state, current, .. } = folded(repo, request, (principal, signer), now)?;
    if state.derived.is_none() {
        return Err(WorkflowError::NotProposed(request.to_owned()));
    }
    judge_rollback(
        &state,
        &probe(types::ROLLBACK_APPROVED, request, principal, now),
        &current,
    )?;
    let progress = match &state.derived {
        Some(Ok(d)) => format!(
            "{} of {} rollback approval(s)",
            state.execution.rollback_approvals.len() + 1,
            required(d)
        ),
        _ => String::new(),
    };
    Ok((
        Built {
            events: vec![event(
                types::ROLLBACK_APPROVED,
                request,
                json!({ "comment": comment }),
            )],
            blobs: Vec::new(),
            approval: None,
            subject: format!("approve the rollback of {request} by {principal}"),
            trailers: Vec::new(),
        },
        progress,
    ))
}

/// The `rolled_back` event that closes a rollback `principal` started, judged under the
/// lock at `now`: the command, the digest of its words, its exit code, the digest of its
/// output and its duration (the fields of `executed`).
///
/// # Errors
/// The engine's refusal.
pub fn finish(
    repo: &crate::audit::AuditRepo,
    request: &str,
    (principal, signer): (&str, &ssh_key::PublicKey),
    fields: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Built, WorkflowError> {
    let Folded { state, current, .. } = folded(repo, request, (principal, signer), now)?;
    judge_rollback(
        &state,
        &probe(types::ROLLED_BACK, request, principal, now),
        &current,
    )?;
    Ok(Built {
        events: vec![event(types::ROLLED_BACK, request, fields)],
        blobs: Vec::new(),
        approval: None,
        subject: format!("{} {request} by {principal}", types::ROLLED_BACK),
        trailers: Vec::new(),
    })
}
