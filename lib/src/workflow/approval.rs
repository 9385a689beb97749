//! The engine's side of approval files (docs/approvals.md): the [`Scope`] of a request
//! as the engine derives it, every approval's signature of it checked against the
//! recorded proposal (never against a recorded scope), and the [`Draft`] the final
//! approval's append turns into `audit/approvals/<request>.json`.

use chrono::{DateTime, SecondsFormat, Utc};

use super::config::Config;
use super::derive::Derived;
use super::rules::State;
use super::{Verdict, WorkflowError, types};
use crate::approval::{Approver, Ceiling, Draft, Scope, ScopeAction, ScopeTarget};
use crate::audit::Event;

/// The field of an approving decision event that holds its signature of the scope.
pub const SCOPE_SIGNATURE: &str = "scope_signature";
/// The decision field of the final approval naming its approval file's id.
pub const APPROVAL_ID: &str = "approval_id";

/// The scope of the request's current version, from the engine's derived facts.
#[must_use]
pub fn scope_of(state: &State, derived: &Derived, request: &str) -> Scope {
    let (system, object) = derived
        .target
        .split_once('/')
        .map_or((derived.target.as_str(), ""), |(s, o)| (s, o));
    Scope {
        kind: crate::approval::SCOPE_TYPE.to_owned(),
        request: request.to_owned(),
        version: state.version,
        proposal: state.proposal.clone(),
        evidence_pack: state.evidence_pack.clone(),
        action: ScopeAction {
            kind: derived.action_type.clone(),
            name: derived.action.clone(),
        },
        target: ScopeTarget {
            system: system.to_owned(),
            object: object.to_owned(),
        },
        parameters: derived.parameters.clone(),
        amount: derived.amount.as_ref().map(|a| Ceiling {
            ceiling: a.value.to_string(),
            currency: a.currency.clone(),
        }),
        change_window: derived.change_window.clone(),
        supervised: derived.supervised,
        // The tier's approvals and, for a drawn request, its sampled review.
        approvals_required: derived
            .approvals_required
            .saturating_add(u8::from(derived.review_owed())),
        valid_for_seconds: derived.valid_for_seconds,
        expires_at: derived
            .expires_at
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        single_use: true,
    }
}

/// Whether a recorded approval (not a review of an override) carries a signature of
/// the request's scope, as the engine derives it, by the key of the event's actor.
///
/// # Errors
/// Why it does not.
pub fn check_scope_signature(state: &State, derived: &Derived, e: &Event) -> Result<(), String> {
    let Some(armored) = e.field_str(SCOPE_SIGNATURE) else {
        return Err(
            "an approval without its signature of the approval scope (`scope_signature`)"
                .to_owned(),
        );
    };
    let scope = scope_of(state, derived, &e.request).to_bytes();
    let key =
        crate::signing::verify(armored, crate::approval::NAMESPACE, &scope).map_err(|err| {
            format!("its `scope_signature` does not verify over the request's scope: {err}")
        })?;
    let fp = crate::signing::fingerprint(&key);
    if fp != e.actor.key {
        return Err(format!(
            "its `scope_signature` is by key {fp}, not by the decision's key {}",
            e.actor.key
        ));
    }
    Ok(())
}

/// The draft of the approval file the approval that completes the quorum writes:
/// `state` is the request's state with that approval recorded, `events` its events
/// before it, `signature` the new approver's signature of the scope.
///
/// # Errors
/// An earlier approval without its scope signature (recorded by an older hitl): no file
/// can cover it, so the quorum is refused rather than granted without one.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one fact of the final approval"
)]
pub fn draft(
    state: &State,
    derived: &Derived,
    config: &Config,
    events: &[Event],
    request: &str,
    new: (&str, &str, &str, &str),
    approval_id: &str,
    now: DateTime<Utc>,
) -> Result<Draft, WorkflowError> {
    let (principal, role, key, signature) = new;
    let stamp = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let from = events
        .iter()
        .rposition(|e| e.kind == types::PROPOSED)
        .unwrap_or(0);
    let version = events.get(from..).unwrap_or_default();
    let mut approvers = Vec::new();
    let mut signatures = Vec::new();
    for (who, as_role) in state.approvals.iter().chain(&state.reviewed) {
        if who == principal {
            approvers.push(Approver {
                principal: principal.to_owned(),
                role: role.to_owned(),
                key: key.to_owned(),
                decided_at: stamp.clone(),
                decision: 0,
            });
            signatures.push(signature.to_owned());
            continue;
        }
        let found = version.iter().rev().find(|e| {
            e.kind == types::DECISION
                && e.actor.principal == *who
                && e.field_str("decision").and_then(Verdict::parse) == Some(Verdict::Approve)
        });
        let Some((e, sig)) = found.and_then(|e| Some((e, e.field_str(SCOPE_SIGNATURE)?))) else {
            return Err(WorkflowError::Inconsistent {
                request: request.to_owned(),
                message: format!(
                    "the approval by `{who}` has no signature of the approval scope, so no approval file can cover it"
                ),
            });
        };
        approvers.push(Approver {
            principal: who.clone(),
            role: as_role.clone(),
            key: e.actor.key.clone(),
            decided_at: e.at.clone(),
            decision: e.seq,
        });
        signatures.push(sig.to_owned());
    }
    // In the order they decided; the new approval, the final one, last.
    let mut both: Vec<(Approver, String)> = approvers.into_iter().zip(signatures).collect();
    both.sort_by_key(|(a, _)| {
        if a.decision == 0 {
            u64::MAX
        } else {
            a.decision
        }
    });
    let (approvers, signatures): (Vec<Approver>, Vec<String>) = both.into_iter().unzip();
    let scope = scope_of(state, derived, request);
    let change_window = scope.change_window.clone();
    Ok(Draft {
        request: request.to_owned(),
        version: state.version,
        scope,
        approval_id: approval_id.to_owned(),
        approved_at: now,
        change_window,
        approvers,
        scope_signatures: signatures,
        matrix: config.matrix_digest.clone(),
        policies: config.policy_digest.clone(),
    })
}

/// Why `hitl check` with the audit at hand refuses: the approval itself, or the audit.
#[derive(Debug, thiserror::Error)]
pub enum AtHead {
    #[error(transparent)]
    Refused(#[from] crate::approval::check::Refusal),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

/// `hitl check` where the audit is at hand: the file checked against the signer files
/// of the trust configuration at HEAD (governed as a decision requires), then the
/// request must still be approved as the engine folds it at `now`, and every field of
/// the file must be what the engine derives (its approval id the one the final approval
/// recorded). `cache` names the hitl build when `check` may keep and reuse its fold of
/// the request at this HEAD ([`super::fold_cache`]); `exec` passes `None` and folds.
///
/// # Errors
/// The [`AtHead`] refusal.
pub fn check_at_head(
    repo: &crate::audit::AuditRepo,
    name: &str,
    bytes: &[u8],
    want: &crate::approval::check::Want<'_>,
    now: DateTime<Utc>,
    cache: Option<&str>,
) -> Result<crate::approval::check::Checked, AtHead> {
    use crate::approval::check::{self, Refusal};
    let parsed = check::parse(name, bytes)?;
    let request = parsed.request().to_owned();
    // Refuses a tampered history before anything is trusted, then folds the request
    // (or takes this clone's fold of it at this very HEAD).
    let head = repo
        .head_for_reading()
        .map_err(WorkflowError::from)?
        .ok_or_else(|| WorkflowError::NotProposed(request.clone()))?;
    let tree = head
        .tree()
        .map_err(|e| WorkflowError::from(crate::audit::AuditError::from(e)))?;
    let mut configs = super::config::Configs::default();
    super::engine::check_governed(repo, &mut configs, &head)?;
    let kept =
        cache.and_then(|build| super::fold_cache::read(repo, build, head.id(), &request, now));
    let fold = match kept {
        Some(fold) => fold,
        None => {
            let fold = fold_for_check(repo, &mut configs, &head, &tree, &request, now)?;
            if let Some(build) = cache {
                super::fold_cache::write(repo, build, head.id(), &request, &fold, now);
            }
            fold
        }
    };
    let state = &fold.state;
    let outcome = state.outcome(now);
    if outcome == super::engine::Outcome::NotProposed {
        return Err(AtHead::Refused(Refusal::NotApproved {
            why: format!("`{request}` was never proposed"),
        }));
    }
    let (allowed, revoked) = super::config::trust_of(repo, &tree).map_err(|e| {
        AtHead::Refused(Refusal::Untrusted {
            file: name.to_owned(),
            why: format!("the signer files at HEAD do not load: {e}"),
        })
    })?;
    let checked = check::check(name, bytes, &allowed, &revoked, want, now)?;
    match state.execution(now) {
        Some(super::execution::Execution::Revoked { by }) => {
            return Err(AtHead::Refused(Refusal::Revoked { request, by }));
        }
        Some(
            super::execution::Execution::Spent { .. }
            | super::execution::Execution::Executed { .. }
            | super::execution::Execution::Verified { .. }
            | super::execution::Execution::RollingBack { .. }
            | super::execution::Execution::RolledBack { .. },
        ) => {
            let by = by_of(state);
            return Err(AtHead::Refused(Refusal::Spent { request, by }));
        }
        _ => {}
    }
    if outcome != super::engine::Outcome::Approved {
        return Err(AtHead::Refused(Refusal::NotApproved {
            why: format!("`{request}` is {}, not approved", outcome.name()),
        }));
    }
    if state.version != checked.parsed.scope.version {
        return Err(AtHead::Refused(Refusal::NotApproved {
            why: format!(
                "the approval is for version {} of `{request}`, the audit's is version {}",
                checked.parsed.scope.version, state.version
            ),
        }));
    }
    // Every field against the engine's fold and the configuration the final approval
    // was decided under: a final approver re-making their own commit with a longer
    // window or an open change window is refused.
    let Some(Ok(derived)) = &state.derived else {
        return Err(AtHead::Refused(Refusal::NotApproved {
            why: format!("`{request}` is inconsistent"),
        }));
    };
    let why = match &fold.final_digests {
        Some((matrix, policies)) => mismatch(
            &checked.parsed,
            state,
            derived,
            &fold.accepted,
            (matrix, policies),
        ),
        None => Some("no configuration is known for its final approval".to_owned()),
    };
    if let Some(why) = why {
        return Err(AtHead::Refused(Refusal::NotApproved {
            why: format!("the approval file {why}"),
        }));
    }
    Ok(checked)
}

/// What `check` needs of the engine's fold of `request` at `head`: its state, its
/// accepted approvals, the digests of its final approval's configuration.
fn fold_for_check(
    repo: &crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'_>,
    tree: &git2::Tree<'_>,
    request: &str,
    now: DateTime<Utc>,
) -> Result<super::fold_cache::Fold, WorkflowError> {
    let (state, events) = super::engine::state_at(repo, configs, head, tree, request, now)?;
    let accepted = accepted_in(&state, &events);
    let final_digests = match accepted.last() {
        Some(last) => match super::history::commit_adding(repo, head, last.seq)? {
            Some((_, Some(parent))) => {
                let c = configs.at(repo, &parent)?;
                Some((c.matrix_digest.clone(), c.policy_digest.clone()))
            }
            _ => None,
        },
        None => None,
    };
    let latest = events
        .iter()
        .filter_map(|e| super::rules::parse_at(&e.at).ok())
        .max();
    Ok(super::fold_cache::Fold {
        state,
        accepted,
        final_digests,
        latest,
    })
}

/// An accepted approval of a request's current version, as the engine folds it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    pub seq: u64,
    pub principal: String,
    pub key: String,
    pub at: String,
    pub scope_signature: Option<String>,
    /// The approval file's id, recorded by the final approval.
    pub approval_id: Option<String>,
    /// The sha256 of its event's bytes, where they are at hand.
    pub sha256: Option<String>,
}

impl Accepted {
    /// The accepted approval recorded by `e`, its bytes' digest `sha256` where known.
    #[must_use]
    pub fn of(e: &Event, sha256: Option<String>) -> Self {
        Self {
            seq: e.seq,
            principal: e.actor.principal.clone(),
            key: e.actor.key.clone(),
            at: e.at.clone(),
            scope_signature: e.field_str(SCOPE_SIGNATURE).map(str::to_owned),
            approval_id: e.field_str(APPROVAL_ID).map(str::to_owned),
            sha256,
        }
    }
}

/// The accepted approvals of the current version among `events` (all of the request's,
/// in order), as `state` counts them (quorum and review), in the order they were made.
#[must_use]
pub fn accepted_in(state: &State, events: &[Event]) -> Vec<Accepted> {
    let from = events
        .iter()
        .rposition(|e| e.kind == types::PROPOSED)
        .unwrap_or(0);
    let version = events.get(from..).unwrap_or_default();
    let mut out: Vec<Accepted> = state
        .approvals
        .iter()
        .chain(&state.reviewed)
        .filter_map(|(who, _)| {
            let e = version.iter().find(|e| {
                e.kind == types::DECISION
                    && e.actor.principal == *who
                    && e.field_str("decision").and_then(Verdict::parse) == Some(Verdict::Approve)
            })?;
            Some(Accepted::of(
                e,
                e.to_bytes().ok().map(|b| crate::audit::sha256_hex(&b)),
            ))
        })
        .collect();
    out.sort_by_key(|a| a.seq);
    out
}

/// Why an approval file is not the one the engine derives for the request, if it is
/// not: every field of the statement, against the engine's fold (the approval id
/// against the one the final approval recorded)
/// (`accepted`: the approvals in order) and the configuration the final approval was
/// decided under (the change window's schedule, the digests), and every signature
/// against the recorded scope signatures and the final approver's key.
#[must_use]
pub fn mismatch(
    parsed: &crate::approval::check::Parsed,
    state: &State,
    derived: &Derived,
    accepted: &[Accepted],
    (matrix, policies): (&str, &str),
) -> Option<String> {
    let request = parsed.request().to_owned();
    let p = parsed.predicate();
    let differs = |what: &str| {
        Some(format!(
            "its {what} is not what the audit records for `{request}`"
        ))
    };
    if parsed.scope != scope_of(state, derived, &request) {
        return differs("scope");
    }
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    match state.window() {
        Some((from, until)) if p.not_before == stamp(from) && p.expires_at == stamp(until) => {}
        _ => return differs("window"),
    }
    if p.matrix != matrix || p.policies != policies {
        return differs("configuration");
    }
    let roles: Vec<(&str, &str)> = state
        .approvals
        .iter()
        .chain(&state.reviewed)
        .map(|(p, r)| (p.as_str(), r.as_str()))
        .collect();
    let listed: Vec<(&str, &str, &str, &str, u64)> = p
        .approvers
        .iter()
        .map(|a| {
            (
                a.principal.as_str(),
                a.role.as_str(),
                a.key.as_str(),
                a.decided_at.as_str(),
                a.decision,
            )
        })
        .collect();
    let recorded: Vec<(&str, &str, &str, &str, u64)> = accepted
        .iter()
        .map(|a| {
            let role = roles
                .iter()
                .find(|(who, _)| *who == a.principal)
                .map_or("", |(_, r)| r);
            (
                a.principal.as_str(),
                role,
                a.key.as_str(),
                a.at.as_str(),
                a.seq,
            )
        })
        .collect();
    if listed != recorded {
        return differs("list of approvers");
    }
    let last = accepted.last()?;
    if p.final_decision.seq != last.seq
        || last
            .sha256
            .as_ref()
            .is_some_and(|h| *h != p.final_decision.sha256)
    {
        return differs("final decision");
    }
    if last.approval_id.as_deref() != Some(p.approval_id.as_str()) {
        return differs("approval id");
    }
    for (n, s) in parsed.file.signatures.iter().enumerate() {
        match s.signs {
            crate::approval::Signs::Scope => {
                let recorded = accepted
                    .iter()
                    .find(|a| a.principal == s.principal)
                    .and_then(|a| a.scope_signature.as_deref());
                if recorded != Some(s.signature.as_str()) {
                    return Some(format!(
                        "its `signatures[{n}]` is not the scope signature `{}` recorded in their decision",
                        s.principal
                    ));
                }
            }
            crate::approval::Signs::Statement => {
                let key = crate::signing::verify(
                    &s.signature,
                    crate::approval::NAMESPACE,
                    parsed.file.statement.as_bytes(),
                );
                if key.map(|k| crate::signing::fingerprint(&k)).ok().as_deref()
                    != Some(last.key.as_str())
                    || s.principal != last.principal
                {
                    return Some(
                        "its statement is not signed by the final approver's key".to_owned(),
                    );
                }
            }
        }
    }
    None
}

/// `verify`'s check of `audit/approvals/` against the engine's fold of the history:
/// every file is for a request the engine finds approved (`approval-unfounded`
/// otherwise: a file no final approval wrote, or one that does not match the approvals
/// recorded for it), and every request approved with scope signatures has its file
/// (`approval-missing`). `accepted` holds each request's accepted approvals of its
/// current version, in order.
///
/// # Errors
/// An unreadable object.
pub fn verify_files(
    repo: &crate::audit::AuditRepo,
    head_tree: &git2::Tree<'_>,
    states: &std::collections::HashMap<String, State>,
    accepted: &std::collections::HashMap<String, Vec<Accepted>>,
    finals: &std::collections::HashMap<String, std::sync::Arc<Config>>,
) -> Result<Vec<super::recorded::Finding>, crate::audit::AuditError> {
    let mut out = Vec::new();
    let dir = format!("{}/approvals", crate::audit::AUDIT_DIR);
    let mut seen = std::collections::HashSet::new();
    if let Some(folder) = repo.subtree(head_tree, &dir)? {
        for entry in folder.iter() {
            let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
            let path = format!("{dir}/{name}");
            let request = name.strip_suffix(".json").unwrap_or_default().to_owned();
            let bytes = match entry.kind() {
                Some(git2::ObjectType::Blob) if entry.filemode() == 0o100_644 => {
                    repo.repo.find_blob(entry.id())?.content().to_vec()
                }
                _ => {
                    out.push((
                        0,
                        "approval-unfounded",
                        format!("`{path}` is not a plain file"),
                    ));
                    continue;
                }
            };
            let why = judge_file(&request, &path, &bytes, states, accepted, finals);
            let seq = accepted
                .get(&request)
                .and_then(|a| a.last())
                .map_or(0, |a| a.seq);
            if let Err(why) = why {
                out.push((seq, "approval-unfounded", why));
            }
            // There is a file: a wrong one is unfounded, not missing too.
            seen.insert(request);
        }
    }
    let mut missing: Vec<(&String, &State)> = states
        .iter()
        .filter(|(request, state)| {
            !seen.contains(*request)
                && is_approved(state)
                && accepted
                    .get(*request)
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|a| a.scope_signature.is_some()))
        })
        .collect();
    missing.sort_by_key(|(r, _)| (*r).clone());
    for (request, _) in missing {
        let seq = accepted
            .get(request)
            .and_then(|a| a.last())
            .map_or(0, |a| a.seq);
        out.push((
            seq,
            "approval-missing",
            format!(
                "`{request}` is approved but `{}` is not in the audit",
                crate::approval::path(request)
            ),
        ));
    }
    Ok(out)
}

/// Whether the engine's fold has the request approved (its quorum and any review given,
/// no rejection, no override), whatever the time.
pub fn is_approved(state: &State) -> bool {
    match &state.derived {
        Some(Ok(d)) => {
            !d.blocked
                && state.rejected.is_none()
                && state.changes_requested.is_none()
                && state.overridden.is_none()
                && (d.approvals_required > 0 || d.review_owed())
                && state.approvals.len() >= usize::from(d.approvals_required)
                && (!d.review_owed() || state.reviewed.is_some())
        }
        _ => false,
    }
}

/// Why one approval file does not match the engine's fold, if it does not.
fn judge_file(
    request: &str,
    path: &str,
    bytes: &[u8],
    states: &std::collections::HashMap<String, State>,
    accepted: &std::collections::HashMap<String, Vec<Accepted>>,
    finals: &std::collections::HashMap<String, std::sync::Arc<Config>>,
) -> Result<(), String> {
    let Some(state) = states.get(request) else {
        return Err(format!(
            "`{path}` is for `{request}`, which was never proposed"
        ));
    };
    let Some(Ok(derived)) = &state.derived else {
        return Err(format!(
            "`{path}` is for `{request}`, which is inconsistent"
        ));
    };
    if !is_approved(state) {
        return Err(format!(
            "`{path}` is for `{request}`, which the engine does not find approved"
        ));
    }
    let parsed = crate::approval::check::parse(path, bytes).map_err(|e| e.to_string())?;
    if parsed.request() != request {
        return Err(format!(
            "`{path}` holds the approval of `{}`",
            parsed.request()
        ));
    }
    let Some(config) = finals.get(request) else {
        return Err(format!(
            "`{path}`: no configuration is known for `{request}`'s final approval"
        ));
    };
    let approvals = accepted.get(request).map(Vec::as_slice).unwrap_or_default();
    match mismatch(
        &parsed,
        state,
        derived,
        approvals,
        (&config.matrix_digest, &config.policy_digest),
    ) {
        Some(why) => Err(format!("`{path}`: {why}")),
        None => Ok(()),
    }
}

fn by_of(state: &State) -> String {
    state
        .execution
        .spent
        .as_ref()
        .map_or_else(|| "?".to_owned(), |(p, _)| p.clone())
}
