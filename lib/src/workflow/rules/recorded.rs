//! The rules for events already in the audit: a recorded decision judged again under
//! the configuration of its time ([`judge_recorded_event`]: what `verify` and every new
//! decision apply to the decisions before it), and a sweep's recorded transition
//! ([`judge_transition`]).

use super::{Decision, Override, State, judge_decision, override_terms, parse_at};
use crate::audit::Event;
use crate::workflow::Verdict;
use crate::workflow::config::Config;

/// Judges a recorded decision event against `state` under `config` (the configuration
/// of the tree its commit extended): what `verify` and a new decision both apply to
/// every decision already in the audit. `Err(why)` when the engine refuses it.
///
/// # Errors
/// Why the recorded decision does not hold.
pub fn judge_recorded_event(state: &State, config: &Config, e: &Event) -> Result<(), String> {
    let Some(verdict) = e.field_str("decision").and_then(Verdict::parse) else {
        return Err(
            "its `decision` is none of `approved`, `rejected`, `changes_requested`, `escalated`, `overridden`"
                .to_owned(),
        );
    };
    let at = parse_at(&e.at)?;
    if verdict == Verdict::Override {
        let recorded = override_terms(e, at)?;
        let m = config.matrix()?;
        if Override::under(m, &e.actor.principal, at).as_ref() != Some(&recorded) {
            return Err(
                "its review terms are not those of the matrix's `break_glass` in force".to_owned(),
            );
        }
        if e.field_str("comment").is_none_or(|c| c.trim().is_empty()) {
            return Err("an override without a reason".to_owned());
        }
    }
    // Bound to the exact version in force and the pack its approvers were shown.
    for (field, bound) in [
        ("proposal", &state.proposal),
        ("evidence_pack", &state.evidence_pack),
    ] {
        let recorded = e.field_str(field).unwrap_or_default();
        if recorded != bound.as_str() {
            return Err(format!(
                "it is bound to {field} `{recorded}`, not to version {}'s `{bound}`",
                state.version
            ));
        }
    }
    // An approval (not the review of an override) signed the approval scope the engine
    // derives, with the decision's key: the approval file rests on it.
    if verdict == Verdict::Approve
        && state.overridden.is_none()
        && let Some(Ok(derived)) = &state.derived
    {
        crate::workflow::approval::check_scope_signature(state, derived, e)?;
    }
    judge_decision(
        state,
        config,
        &Decision {
            request: &e.request,
            principal: &e.actor.principal,
            verdict,
            role: Some(e.field_str("role").unwrap_or_default()),
            reason_code: e
                .fields
                .get("reason_code")
                .and_then(serde_json::Value::as_str),
            at,
        },
    )
    .map(|_| ())
    .map_err(|err| err.to_string())
}

/// Judges a recorded `expired` or `escalated` event of `hitl sweep` against `state`:
/// it holds only when the engine derives it at the event's time, and once.
///
/// # Errors
/// Why the recorded transition does not hold.
pub fn judge_transition(state: &State, e: &Event) -> Result<(), String> {
    let at = parse_at(&e.at)?;
    if !state.due(at).contains(&e.kind.as_str()) {
        return Err(format!(
            "the request is not `{}` at {} (it is `{}`{})",
            e.kind,
            e.at,
            state.outcome(at).name(),
            if state.swept_expired || state.swept_escalated {
                ", and a sweep already recorded it"
            } else {
                ""
            }
        ));
    }
    Ok(())
}
