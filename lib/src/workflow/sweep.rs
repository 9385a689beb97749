//! `hitl sweep`: records the `expired` and `escalated` events that are due. The engine
//! derives both from the proposal and the clock whether or not anyone records them
//! (every command that reads state already sees an expired request as expired); a sweep
//! writes them down so the history shows when, for a CI schedule. It is idempotent:
//! each is recorded once per version, and [`super::rules::judge_transition`] holds a
//! recorded one only where the engine derives it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::config::Configs;
use super::engine;
use super::{WorkflowError, obj, types};
use crate::audit::{AuditError, AuditRepo, Built, ConfigVersions, NewEvent};

/// The requests a sweep looks at: every request whose own events do not already close
/// it (blocked, rejected, changes requested, approved, or its latest version's expiry
/// recorded). Read outside the lock; the sweep folds each again under it.
///
/// # Errors
/// An unreadable audit.
pub fn candidates(repo: &AuditRepo) -> Result<Vec<String>, AuditError> {
    let Some(head) = repo.head_for_reading()? else {
        return Ok(Vec::new());
    };
    let tree = head.tree()?;
    let mut out = Vec::new();
    for request in super::queue::request_ids(repo, &tree)? {
        let events = repo.request_events(&tree, &request)?;
        let latest = events
            .iter()
            .rposition(|e| e.kind == types::PROPOSED)
            .unwrap_or(0);
        let swept = events
            .get(latest..)
            .unwrap_or_default()
            .iter()
            .any(|e| e.kind == types::EXPIRED);
        if super::closed(&events).is_none() && !swept {
            out.push(request);
        }
    }
    Ok(out)
}

/// What a sweep recorded: (request, event type) in order.
pub type Swept = Vec<(String, &'static str)>;

/// The due events of `requests` at `head` (under the lock) at `now`, judged by the
/// engine: `expired` for a request past its deadline, `escalated` for one its pending
/// timeout escalated, each once per version.
///
/// # Errors
/// [`WorkflowError::NothingDue`] when nothing is; the refusal of
/// [`engine::check_governed`]; an unreadable audit.
pub fn sweep(
    repo: &AuditRepo,
    head: Option<&git2::Commit<'_>>,
    tree: &git2::Tree<'_>,
    requests: &[String],
    now: DateTime<Utc>,
) -> Result<(Built, Swept), WorkflowError> {
    let Some(head) = head else {
        return Err(WorkflowError::NothingDue);
    };
    let mut configs = Configs::default();
    engine::check_governed(repo, &mut configs, head)?;
    let current = configs.at(repo, tree)?;
    let versions = ConfigVersions {
        matrix: current.matrix_digest.clone(),
        policies: current.policy_digest.clone(),
        tool: format!("hitl {}", env!("CARGO_PKG_VERSION")),
    };
    let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut events = Vec::new();
    let mut swept = Vec::new();
    for request in requests {
        let (state, _) = engine::state_at(repo, &mut configs, head, tree, request, now)?;
        let Some(Ok(d)) = &state.derived else {
            continue;
        };
        for kind in state.due(now) {
            let fields = match kind {
                types::EXPIRED => json!({
                    "version": state.version,
                    "deadline": secs(d.deadline()),
                    "approvals": state.approvals.len(),
                    "approvals_required": d.approvals_required,
                }),
                _ => json!({
                    "version": state.version,
                    "pending_until": d.pending_until.map(secs),
                    "to": d.escalation.as_ref().map(|(role, _)| role),
                }),
            };
            events.push(NewEvent {
                kind: kind.to_owned(),
                request: request.clone(),
                fields: obj(fields),
                sign: false,
                config: Some(versions.clone()),
            });
            swept.push((request.clone(), kind));
        }
    }
    if events.is_empty() {
        return Err(WorkflowError::NothingDue);
    }
    let count = |k: &str| swept.iter().filter(|(_, t)| *t == k).count();
    let built = Built {
        events,
        blobs: Vec::new(),
        approval: None,
        subject: format!(
            "sweep: {} expired, {} escalated",
            count(types::EXPIRED),
            count(types::ESCALATED)
        ),
        trailers: Vec::new(),
    };
    Ok((built, swept))
}
