//! The workflow around the audit: what `propose`, `approve` and `reject` record, and the
//! checks that come before (an id proposed once, a decision only on a request awaiting
//! one, by an eligible principal who is not the requester, before it expires).
//!
//! Quorum and separation of duties across several decisions come with the workflow
//! issue; here one decision closes a request.

pub mod approval;
pub mod break_glass;
pub mod config;
pub mod derive;
pub mod engine;
pub mod execution;
pub mod fold_cache;
pub mod history;
pub mod pinned;
pub mod precondition;
pub mod queue;
pub mod recorded;
pub mod refusal;
pub mod rollback;
pub mod rules;
pub mod seq_index;
pub mod stats;
pub mod sweep;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value as Json, json};

use crate::audit::{AuditError, Built, ConfigVersions, Event, NewEvent, sha256_hex};
use crate::evidence::{EvidencePack, PolicyDecision};
use crate::matrix::Matrix;
use crate::request::Request;

/// Event types, as the article's audit-event table names them.
pub mod types {
    pub const PROPOSED: &str = "proposed";
    pub const CLASSIFIED: &str = "classified";
    pub const EVIDENCE_ASSEMBLED: &str = "evidence_assembled";
    pub const POLICY_CHECKED: &str = "policy_checked";
    pub const APPROVAL_REQUESTED: &str = "approval_requested";
    pub const BLOCKED: &str = "blocked";
    pub const DECISION: &str = "decision";
    /// `hitl sweep`: the request expired (derived; recorded for the record).
    pub const EXPIRED: &str = "expired";
    /// `hitl sweep`: the pending timeout escalated the request.
    pub const ESCALATED: &str = "escalated";
    /// `hitl exec`: the approval is used, before its command runs (once).
    pub const SPENT: &str = "spent";
    /// `hitl exec`: the command ran (its exit code, output digest, duration).
    pub const EXECUTED: &str = "executed";
    /// `hitl exec --verify`: the verification ran.
    pub const VERIFIED: &str = "verified";
    /// `hitl revoke`: the unspent approval may no longer be used.
    pub const REVOKED: &str = "revoked";
    /// `hitl check` or `hitl exec` refused an approval file naming the request (it
    /// changes nothing; [`super::refusal`]).
    pub const REFUSED: &str = "refused";
    /// The execution events, folded by [`super::execution`].
    pub const EXECUTION: &[&str] = &[SPENT, EXECUTED, VERIFIED, REVOKED];
    /// `hitl rollback --approve`: one approval of the rollback of a spent approval.
    pub const ROLLBACK_APPROVED: &str = "rollback_approved";
    /// `hitl rollback`: the rollback command is about to run (once), recorded first.
    pub const ROLLBACK_STARTED: &str = "rollback_started";
    /// `hitl rollback`: the rollback command ran (its exit code, output digest, duration).
    pub const ROLLED_BACK: &str = "rolled_back";
    /// The rollback events, folded by [`super::rollback`].
    pub const ROLLBACK: &[&str] = &[ROLLBACK_APPROVED, ROLLBACK_STARTED, ROLLED_BACK];
    /// Every type this version writes.
    pub const ALL: &[&str] = &[
        PROPOSED,
        CLASSIFIED,
        EVIDENCE_ASSEMBLED,
        POLICY_CHECKED,
        APPROVAL_REQUESTED,
        BLOCKED,
        DECISION,
        EXPIRED,
        ESCALATED,
        SPENT,
        EXECUTED,
        VERIFIED,
        REVOKED,
        ROLLBACK_APPROVED,
        ROLLBACK_STARTED,
        ROLLED_BACK,
        REFUSED,
    ];
}

/// A workflow rule refused the command; nothing was recorded.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(
        "request `{request}` is already in the audit (version {version}, `{state}`); a new version with the same id may follow only `request-changes` or a blocked proposal (use a new id)"
    )]
    AlreadyProposed {
        request: String,
        version: u32,
        state: String,
    },
    #[error(
        "version {version} of `{request}` already has these exact bytes; change the proposal before proposing it again"
    )]
    SameProposal { request: String, version: usize },
    #[error(
        "`{submitter}` may not propose a new version of `{request}`: its first version was submitted by `{first}`"
    )]
    NewVersionBy {
        request: String,
        submitter: String,
        first: String,
    },
    #[error(
        "changes to version {version} of `{request}` were requested by {by}; it takes no more decisions. The agent proposes version {next} with the same id, which needs fresh approvals"
    )]
    ChangesRequested {
        request: String,
        version: u32,
        by: String,
        next: u32,
    },
    #[error("request `{0}` is not in the audit; propose it first with `hitl propose`")]
    NotProposed(String),
    #[error(
        "request `{0}` was blocked when it was proposed (a policy denied it, or nobody could approve it); it cannot be approved or rejected"
    )]
    Blocked(String),
    #[error("request `{request}` was already decided ({decision} by {by})")]
    AlreadyDecided {
        request: String,
        decision: String,
        by: String,
    },
    #[error(
        "request `{request}` expired at {expires_at}, before it was proposed; nothing is recorded (give it a later `expires_at`)"
    )]
    ProposedExpired { request: String, expires_at: String },
    #[error("request `{0}` needs no approval (its tier proceeds with full audit)")]
    NoApprovalNeeded(String),
    #[error(
        "`{principal}` already approved `{request}`; one principal counts once, whatever roles it holds (still needed: {needed})"
    )]
    AlreadyApproved {
        principal: String,
        request: String,
        needed: String,
    },
    #[error(
        "`{request}` already has an approval from role `{role}` and its tier asks for distinct roles; `{principal}` cannot give the next one (still needed: {needed})"
    )]
    SameRole {
        principal: String,
        request: String,
        role: String,
        needed: String,
    },
    #[error(
        "`{request}` passed its pending timeout and was escalated: only {roles} may decide it now, not `{principal}`"
    )]
    Escalated {
        principal: String,
        request: String,
        roles: String,
    },
    #[error(
        "tier {tier} of `{request}` names no escalation role (`on_timeout: {{escalate: ROLE}}`); there is nowhere to escalate it"
    )]
    NoEscalation { request: String, tier: u8 },
    #[error(
        "the matrix in force names no `break_glass`: nobody may override `{request}` (add `break_glass: {{role, review}}`)"
    )]
    NoBreakGlass { request: String },
    #[error("`{principal}` is not a member of `{role}` and may not override `{request}`")]
    NotBreakGlass {
        principal: String,
        request: String,
        role: String,
    },
    #[error(
        "`{request}` is in tier {tier}, which the matrix does not mark `batchable`: approve it on its own (`hitl approve {request}`)"
    )]
    NotBatchable { request: String, tier: u8 },
    #[error(
        "`{request}` is at version {current} now, not the version {seen} you were shown; nothing is recorded: look at it again (`hitl review {request}`)"
    )]
    VersionChanged {
        request: String,
        seen: u32,
        current: u32,
    },
    #[error("an override needs a reason (`--reason TEXT`)")]
    MissingReason,
    #[error("nothing is due: no pending request has expired or been escalated unrecorded")]
    NothingDue,
    #[error("`{request}`: {why}")]
    Execution { request: String, why: String },
    /// `hitl rollback` refused by the engine's rule for a rollback event; nothing ran
    /// and nothing was recorded.
    #[error(transparent)]
    Rollback(rollback::Refusal),
    #[error("`{request}` is escalated already: only {roles} may decide it now")]
    AlreadyEscalated { request: String, roles: String },
    #[error("request `{request}` expired at {expires_at}; it can no longer be decided")]
    Expired { request: String, expires_at: String },
    #[error(
        "`{principal}` requested or submitted `{request}` and may not decide it (separation of duties)"
    )]
    OwnRequest { principal: String, request: String },
    #[error(
        "`{principal}` owns the agent `{agent}` that submitted `{request}`, and counts as its requester (separation of duties)"
    )]
    AgentOwner {
        principal: String,
        agent: String,
        request: String,
    },
    #[error("`{principal}` may not approve `{request}`: {why}")]
    OverLimit {
        principal: String,
        request: String,
        /// "its amount 2400 EUR is above the authority of role `support-lead` (limit
        /// 1000 EUR); `revenue-ops` may approve it".
        why: String,
    },
    #[error("`{principal}` is not in any role that may decide `{request}` (eligible: {roles})")]
    NotEligible {
        principal: String,
        request: String,
        roles: String,
    },
    #[error("unknown reason code `{code}` for `{verdict}`; the matrix allows: {allowed}")]
    ReasonCode {
        code: String,
        verdict: &'static str,
        allowed: String,
    },
    #[error(
        "the audit's history was rewound: HEAD ({head}) does not extend {checked}, the head this clone last decided on; decisions, revocations or role removals may have been erased. Check it with `hitl verify --checkpoint`; if the rewind is known and wanted, remove `{file}`"
    )]
    Rewound {
        checked: String,
        head: String,
        file: String,
    },
    #[error(
        "HEAD ({head}) does not extend the checkpoint's commit {checkpoint} along its first parents: this is not the history the checkpoint vouches for (replaced, rewound, or not fetched: `git fetch` and try again)"
    )]
    NotExtending { checkpoint: String, head: String },
    #[error("the checkpoint cannot be adopted: {why}")]
    CheckpointUntrusted { why: String },
    #[error("`{principal}` may not submit proposals: {reason}")]
    NotAnAgent { principal: String, reason: String },
    #[error("`{verdict}` needs a reason code from the matrix: {allowed}")]
    MissingReasonCode {
        verdict: &'static str,
        allowed: String,
    },
    #[error(
        "`{principal}` submits proposals (an agent in the matrix's `governance.agents`) and may not decide `{request}`"
    )]
    AgentDecides { principal: String, request: String },
    #[error(
        "the trust configuration at HEAD was changed by commit {commit} without an admin's signature: {reason}; nothing is decided on it (run `hitl verify`)"
    )]
    ConfigUnauthorized { commit: String, reason: String },
    #[error(
        "commit {commit} changed the audit as no hitl append does: {reason}; nothing is decided on it (run `hitl verify`)"
    )]
    AuditTampered { commit: String, reason: String },
    #[error("the key does not act for `{principal}` under the signer files at HEAD: {reason}")]
    Untrusted { principal: String, reason: String },
    #[error("the audit of `{request}` is inconsistent: {message}; run `hitl verify`")]
    Inconsistent { request: String, message: String },
    /// A comment or reason code holds a control or invisible character.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A proposal ready to record: the events and the blobs they refer to.
#[derive(Debug)]
pub struct Proposal {
    pub events: Vec<NewEvent>,
    pub blobs: Vec<Vec<u8>>,
    pub blocked: bool,
}

impl Proposal {
    /// What `propose` appends: these events and blobs, in a commit whose subject is
    /// `propose ID (tier N) by SUBMITTER` (`block …` when a policy blocked it), all taken
    /// from the events the engine decided.
    #[must_use]
    pub fn built(self, submitter: &str) -> Built {
        let request = self
            .events
            .first()
            .map(|e| e.request.clone())
            .unwrap_or_default();
        let tier = self
            .events
            .iter()
            .find(|e| e.kind == types::CLASSIFIED)
            .and_then(|e| e.fields.get("tier"))
            .and_then(Json::as_u64)
            .unwrap_or_default();
        let word = if self.blocked { "block" } else { "propose" };
        let version = self
            .events
            .first()
            .and_then(|e| e.fields.get("version"))
            .and_then(Json::as_u64)
            .filter(|v| *v > 1)
            .map(|v| format!(" version {v}"))
            .unwrap_or_default();
        Built {
            events: self.events,
            blobs: self.blobs,
            approval: None,
            subject: format!("{word} {request}{version} (tier {tier}) by {submitter}"),
            trailers: vec![("Hitl-Tier".to_owned(), tier.to_string())],
        }
    }
}

pub(crate) fn obj(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The events of `hitl propose` for `version` of the request (1 for the first):
/// proposed, classified, evidence_assembled, policy_checked, then approval_requested,
/// or blocked when a policy denies (or failed) or nobody could approve it
/// ([`derive::unapprovable`]).
///
/// # Errors
/// Only when the pack cannot be serialised.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one fact of the proposal"
)]
pub fn proposal(
    matrix: &Matrix,
    request: &Request,
    bytes: &[u8],
    pack: &EvidencePack,
    submitter: &str,
    config: &ConfigVersions,
    version: u32,
) -> Result<Proposal, serde_json::Error> {
    let id = &request.id;
    let mut pack_bytes = serde_json::to_vec_pretty(pack)?;
    pack_bytes.push(b'\n');
    let event = |kind: &str, fields: Json| NewEvent {
        kind: kind.to_owned(),
        request: id.clone(),
        fields: obj(fields),
        sign: false,
        config: Some(config.clone()),
    };
    let cls = &pack.classification;
    let diff_text: String = pack
        .diff
        .iter()
        .map(|d| format!("{} {} {}\n", d.op, d.path, d.value))
        .collect();
    let (decision, policy) = match &pack.policy_decision {
        PolicyDecision::Evaluated(d) => (
            if d.allowed { "allowed" } else { "denied" },
            serde_json::to_value(d)?,
        ),
        PolicyDecision::Failed { error } => ("failed", json!({ "error": error })),
        PolicyDecision::NotEvaluated { .. } => ("not_evaluated", Json::Null),
    };
    let blocked = matches!(decision, "denied" | "failed")
        || !derive::unapprovable(&pack.classification).is_empty();
    let mut events = vec![
        event(
            types::PROPOSED,
            json!({
                "requested_by": request.requested_by,
                "submitted_by": submitter,
                "requested_at": request.requested_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                "agent": {
                    "id": request.agent.id,
                    "model": request.agent.model,
                    "app": request.agent.app,
                    "prompt_template": request.agent.prompt_template,
                },
                "tool": request.action.name,
                "target": {"system": request.action.target.system, "object": request.action.target.object},
                "proposal": digest(bytes),
                "version": version,
            }),
        ),
        event(
            types::CLASSIFIED,
            json!({
                "action_type": request.action.kind.as_str(),
                "tier": cls.tier,
                "tier_name": cls.tier_name,
                "rules": cls.rules,
                "default_applied": cls.default_applied,
                "raised_by_policy_from": cls.raised_by_policy_from,
                "classifier_version": config.matrix,
                "policy_version": config.policies,
            }),
        ),
        event(
            types::EVIDENCE_ASSEMBLED,
            json!({
                "sources": request.sources.iter().map(|s| json!({
                    "id": s.id,
                    "uri": s.uri,
                    "retrieved_at": s.retrieved_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "authority": s.authority.as_str(),
                    "classification": s.classification.as_str(),
                })).collect::<Vec<_>>(),
                "confidence_flags": pack.sources.iter()
                    .filter(|s| !s.flags.is_empty())
                    .map(|s| json!({"source": s.source.id, "flags": s.flags}))
                    .collect::<Vec<_>>(),
                "diff": digest(diff_text.as_bytes()),
                "warnings": pack.warnings.iter().map(|w| w.code).collect::<Vec<_>>(),
                "evidence_pack": digest(&pack_bytes),
            }),
        ),
        event(
            types::POLICY_CHECKED,
            json!({
                "decision": decision,
                "policy": policy,
                "thresholds": cls.eligible_roles.iter().filter_map(|r| {
                    let role = matrix.role(&r.role)?;
                    Some(json!({"role": r.role, "limits": role.limits}))
                }).collect::<Vec<_>>(),
            }),
        ),
    ];
    if blocked {
        events.push(event(
            types::BLOCKED,
            json!({
                "reasons": block_reasons(pack),
            }),
        ));
    } else {
        events.push(event(
            types::APPROVAL_REQUESTED,
            json!({
                "tier": cls.tier,
                "approver_roles": cls.eligible_role_names(),
                "eligible": cls.eligible_roles,
                "approvals_required": cls.approvals_required,
                "self_approval": cls.self_approval,
                "queue": cls.workflow.clone().unwrap_or_else(|| format!("tier-{}", cls.tier)),
                "expires_at": request.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                "evidence_pack": digest(&pack_bytes),
                // For the execution gate: how the tier executes, and whether an operator
                // must supervise (a human-supervised tier).
                "execution": cls.execution,
                "change_window": cls.change_window,
                "supervised": cls.execution == crate::matrix::Execution::HumanSupervised,
            }),
        ));
        // The sampled review's draw, when the tier samples (drawn again by the engine
        // from the proposal's bytes, never trusted as recorded).
        if let (Some(sample), Some(asked)) = (&cls.sample, events.last_mut()) {
            asked
                .fields
                .insert("sample".to_owned(), serde_json::to_value(sample)?);
        }
    }
    Ok(Proposal {
        events,
        blobs: vec![bytes.to_vec(), pack_bytes],
        blocked,
    })
}

/// Why `propose` blocks the request of `pack`, one line each: what the policies denied
/// (or why they failed), then why nobody could approve it ([`derive::unapprovable`]).
/// What the `blocked` event records and what `propose` prints.
#[must_use]
pub fn block_reasons(pack: &EvidencePack) -> Vec<String> {
    pack.warnings
        .iter()
        .filter(|w| w.code == "policy-deny" || w.code == "policy-error")
        .map(|w| w.message.clone())
        .chain(derive::unapprovable(&pack.classification))
        .collect()
}

/// Why a request takes no more decisions: what its recorded events closed it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A policy denied it when it was proposed.
    Blocked,
    /// Its tier needs no approval: it proceeded when it was proposed.
    Proceeds,
    /// It was approved or rejected.
    Decided {
        /// `approved` or `rejected`.
        decision: String,
        /// The principal who decided.
        by: String,
    },
}

/// Whether a request's events closed it (blocked, rejected, or approved by as many
/// decisions as its recorded `approvals_required`): then it can no longer be decided,
/// nor expire. For display and lint only: the engine's [`engine::State::outcome`]
/// decides.
#[must_use]
pub fn closed(events: &[Event]) -> Option<Closed> {
    // Only the latest version counts.
    let start = events
        .iter()
        .rposition(|e| e.kind == types::PROPOSED)
        .unwrap_or(0);
    let events = events.get(start..).unwrap_or_default();
    if events.iter().any(|e| e.kind == types::BLOCKED) {
        return Some(Closed::Blocked);
    }
    let decisions: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == types::DECISION)
        .collect();
    let verdict = |d: &Event| d.field_str("decision").and_then(Verdict::parse);
    // An overridden version stays open while its review is owed: not closed here (the
    // engine says when the review is complete).
    if decisions
        .iter()
        .any(|d| verdict(d) == Some(Verdict::Override))
    {
        return None;
    }
    if let Some(r) = decisions
        .iter()
        .find(|d| matches!(verdict(d), Some(Verdict::Reject | Verdict::RequestChanges)))
    {
        return Some(Closed::Decided {
            decision: r.field_str("decision").unwrap_or_default().to_owned(),
            by: r.actor.principal.clone(),
        });
    }
    let required = events
        .iter()
        .find(|e| e.kind == types::APPROVAL_REQUESTED)
        .and_then(|e| e.fields.get("approvals_required"))
        .and_then(Json::as_u64)
        .unwrap_or(1);
    if required == 0 {
        return Some(Closed::Proceeds);
    }
    let approvals: Vec<&&Event> = decisions
        .iter()
        .filter(|d| verdict(d) == Some(Verdict::Approve))
        .collect();
    (approvals.len() as u64 >= required).then(|| Closed::Decided {
        decision: Verdict::Approve.as_str().to_owned(),
        by: approvals
            .iter()
            .map(|d| d.actor.principal.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// What a decision says: approve, reject, or send the version back for changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
    RequestChanges,
    /// Hand the request to the tier's escalation role before its pending timeout.
    Escalate,
    /// Break-glass: the request proceeds now, and owes an after-the-fact review.
    Override,
}

impl Verdict {
    /// The decision event's `decision` field.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Reject => "rejected",
            Self::RequestChanges => "changes_requested",
            Self::Escalate => "escalated",
            Self::Override => "overridden",
        }
    }

    /// The verdict a recorded `decision` field names.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Approve,
            Self::Reject,
            Self::RequestChanges,
            Self::Escalate,
            Self::Override,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// The command that records it.
    #[must_use]
    pub const fn command(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::RequestChanges => "request-changes",
            Self::Escalate => "escalate",
            Self::Override => "override",
        }
    }
}

/// The decision event, judged by the engine under the audit lock from `tree` (HEAD's,
/// which the decision extends): the configuration at HEAD governed, the request's facts
/// derived from its recorded proposal, then every rule of [`engine::judge_decision`].
///
/// # Errors
/// A [`WorkflowError`] naming the rule that refused it.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one fact of the decision"
)]
pub fn decision(
    repo: &crate::audit::AuditRepo,
    head: Option<&git2::Commit<'_>>,
    tree: &git2::Tree<'_>,
    key: &crate::signing::SigningKey,
    request: &str,
    principal: &str,
    verdict: Verdict,
    reason_code: Option<&str>,
    comment: Option<&str>,
    batch: bool,
    seen_version: Option<u32>,
    approval_id: &str,
    now: DateTime<Utc>,
) -> Result<Decided, WorkflowError> {
    crate::text::check_decision(reason_code, comment)?;
    if verdict == Verdict::Override && comment.is_none_or(|c| c.trim().is_empty()) {
        return Err(WorkflowError::MissingReason);
    }
    let engine::NewDecision {
        mut state,
        events,
        role: role_name,
        config,
    } = engine::judge_new_decision(
        repo,
        head,
        tree,
        key.public(),
        &engine::Decision {
            request,
            principal,
            verdict,
            role: None,
            reason_code,
            at: now,
        },
    )?;
    let tier = match &state.derived {
        Some(Ok(d)) => d.tier,
        _ => 0,
    };
    // The version the approver was shown is the one decided: a new version proposed
    // while they looked (after a request for changes) is not decided unseen.
    if let Some(seen) = seen_version
        && seen != state.version
    {
        return Err(WorkflowError::VersionChanged {
            request: request.to_owned(),
            seen,
            current: state.version,
        });
    }
    // Approved with others in one call only where the matrix in force allows it.
    if batch {
        let m = config.matrix_for(request)?;
        if !m.tier(tier).is_some_and(|t| t.batchable) {
            return Err(WorkflowError::NotBatchable {
                request: request.to_owned(),
                tier,
            });
        }
    }
    let before = engine::Status {
        outcome: state.outcome(now),
        state: state.clone(),
        events,
    };
    // An override owes the review the matrix in force sets, recorded with it.
    let terms = if verdict == Verdict::Override {
        let m = config.matrix_for(request)?;
        rules::Override::under(m, principal, now)
    } else {
        None
    };
    let mut fields = obj(json!({
            "approver": principal,
            "role": role_name,
            "decision": verdict.as_str(),
            "reason_code": reason_code,
            "comment": comment,
            "tier": tier,
            // Bound to the exact version and the pack its approvers were shown.
            "version": state.version,
            "proposal": state.proposal,
            "evidence_pack": state.evidence_pack,
    }));
    // An approval (not the review of an override) signs the approval scope, under the
    // approval namespace, with the key the decision is signed with.
    let derived = match &state.derived {
        Some(Ok(d)) => Some(d.clone()),
        _ => None,
    };
    let scoped = match &derived {
        Some(d) if verdict == Verdict::Approve && state.overridden.is_none() => {
            engine::approval_signer_trusted(&config, key.public(), principal, now)?;
            let scope = approval::scope_of(&state, d, request).to_bytes();
            let signature = key
                .sign(crate::approval::NAMESPACE, &scope)
                .map_err(AuditError::from)?;
            fields.insert(
                approval::SCOPE_SIGNATURE.to_owned(),
                signature.clone().into(),
            );
            Some((d, signature))
        }
        _ => None,
    };
    if let Some(t) = &terms {
        fields.insert("review_approvals".to_owned(), t.required.into());
        fields.insert("review_roles".to_owned(), json!(t.roles));
        fields.insert(
            "review_due".to_owned(),
            t.due.to_rfc3339_opts(SecondsFormat::Secs, true).into(),
        );
    }
    let mut event = NewEvent {
        kind: types::DECISION.to_owned(),
        request: request.to_owned(),
        fields,
        sign: true,
        config: Some(crate::audit::ConfigVersions {
            matrix: config.matrix_digest.clone(),
            policies: config.policy_digest.clone(),
            tool: format!("hitl {}", env!("CARGO_PKG_VERSION")),
        }),
    };
    let word = verdict.command();
    // Where the request stands once this decision is recorded.
    state.record(principal, &role_name, verdict, now);
    if terms.is_some() {
        state.overridden = terms;
    }
    let outcome = state.outcome(now);
    // The approval that completes the quorum writes the approval file in its commit.
    let approval = match scoped {
        Some((d, signature)) if outcome == engine::Outcome::Approved => Some(approval::draft(
            &state,
            d,
            &config,
            &before.events,
            request,
            (principal, &role_name, &key.fingerprint(), &signature),
            approval_id,
            now,
        )?),
        _ => None,
    };
    // The final approval records the approval file's id in its own signed event: the
    // engine holds a file to it without reading `audit/approvals/` (docs/approvals.md).
    if approval.is_some() {
        event
            .fields
            .insert(approval::APPROVAL_ID.to_owned(), approval_id.into());
    }
    let built = Built {
        events: vec![event],
        blobs: Vec::new(),
        approval,
        subject: format!("{word} {request} (tier {tier}) by {principal}"),
        trailers: vec![
            ("Hitl-Tier".to_owned(), tier.to_string()),
            ("Hitl-Decision".to_owned(), verdict.as_str().to_owned()),
        ],
    };
    Ok(Decided {
        built,
        before,
        after: outcome,
    })
}

/// What [`decision`] decided under the lock: what to append, where the request stood
/// before it (what an approver is shown before it is signed) and where it stands after.
pub struct Decided {
    pub built: Built,
    pub before: engine::Status,
    pub after: engine::Outcome,
}
