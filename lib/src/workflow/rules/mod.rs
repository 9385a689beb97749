//! The workflow's rules in one place: a request's [`State`] (approvals so far, a
//! rejection), where it stands ([`Outcome`]), and [`judge_decision`], which accepts or
//! refuses a decision against them. docs/workflow.md lists the rules.

use chrono::{DateTime, SecondsFormat, Utc};

pub use super::break_glass::Override;
use super::break_glass::{judge_override, judge_review, override_terms};
use super::config::Config;
use super::derive::{Derived, disagreements};
use super::{Verdict, WorkflowError, types};
use crate::audit::Event;

mod recorded;
pub use recorded::{judge_recorded_event, judge_transition};

/// A request's state: the fold of its events, with its derived facts.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// The derived facts once `proposed` was seen: `Err` when they cannot be derived
    /// or the record disagrees with them (the request then takes no decision).
    pub derived: Option<Result<Derived, String>>,
    /// The approvals accepted so far, in order: (principal, role).
    pub approvals: Vec<(String, String)>,
    /// The rejection that closed it: (principal, role).
    pub rejected: Option<(String, String)>,
    /// The request for changes that closed this version: (principal, role).
    pub changes_requested: Option<(String, String)>,
    /// The version the latest proposal started (1 for the first; 0 before any).
    pub version: u32,
    /// The digest of the latest version's proposal bytes: every decision is bound to it.
    pub proposal: String,
    /// The digest of the evidence pack the latest version's approval request recorded:
    /// the pack its approvers are shown, to which each decision is bound.
    pub evidence_pack: String,
    /// The proposal digests of the earlier versions.
    pub earlier: Vec<String>,
    /// `hitl sweep` recorded this version's expiry, or its escalation by the pending
    /// timeout: recorded once each (the facts themselves are derived).
    pub swept_expired: bool,
    pub swept_escalated: bool,
    /// A break-glass override of this version, with the review it owes.
    pub overridden: Option<Override>,
    /// The sampled review this version owes (its tier drew it), once given:
    /// (principal, role). It is not one of `approvals`.
    pub reviewed: Option<(String, String)>,
    /// After `approved`: spent, executed, verified or revoked ([`super::execution`]).
    pub execution: super::execution::Facts,
    /// The refusals of `check` and `exec` recorded for the request, of every version
    /// ([`super::refusal`]): they change nothing else.
    pub refusals: Vec<super::refusal::Refused>,
}

/// Where a request stands, as the engine folds it (never stored beside the events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No `proposed` event.
    NotProposed,
    /// Its record disagrees with the recomputation, or cannot be derived.
    Inconsistent(String),
    /// A policy denied it.
    Blocked,
    /// Its tier needs no approval: it proceeds with full audit.
    Proceeds,
    /// Awaiting approvals: how many it has, how many its tier needs, and the roles that
    /// can still give one (all eligible roles, or those not used yet when the tier asks
    /// for distinct roles).
    Pending {
        approvals: usize,
        required: u8,
        still_needed: Vec<String>,
    },
    /// Its pending timeout passed before the quorum (or it expired): it can never be
    /// approved.
    Expired { at: DateTime<Utc> },
    /// The quorum was reached.
    Approved,
    /// Rejected by this principal.
    Rejected { by: String },
    /// This principal asked for changes: the version is closed, and a new one may be
    /// proposed with the same id.
    ChangesRequested { by: String },
    /// A break-glass principal overrode the approval: the request proceeds, and owes the
    /// review of [`Override`] (open or not).
    Overridden(Override),
}

impl Outcome {
    /// The state's name, as docs/workflow.md names it.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::NotProposed => "not_proposed",
            Self::Inconsistent(_) => "inconsistent",
            Self::Blocked => "blocked",
            Self::Proceeds => "proceeds",
            Self::Pending { .. } => "pending_approval",
            Self::Expired { .. } => "expired",
            Self::Approved => "approved",
            Self::Rejected { .. } => "rejected",
            Self::ChangesRequested { .. } => "changes_requested",
            Self::Overridden(_) => "overridden",
        }
    }
}

impl State {
    /// Folds one version's proposal events (`proposed` to `approval_requested` or
    /// `blocked`, recorded together) into its state, deriving its facts with `derive`
    /// (given the proposal's digest, its signer and its time; the caller knows the
    /// configuration in force and where the proposal's bytes are). A later version is
    /// judged by [`State::next_version`] first; its approvals start from none.
    pub fn propose(
        &mut self,
        events: &[&Event],
        derive: impl FnOnce(&str, &str, DateTime<Utc>) -> Result<Derived, String>,
    ) {
        let Some(proposed) = events.iter().find(|e| e.kind == types::PROPOSED) else {
            return;
        };
        if events.iter().filter(|e| e.kind == types::PROPOSED).count() > 1 {
            self.derived = Some(Err("one commit proposed the request twice".to_owned()));
            return;
        }
        let digest = proposed
            .field_str("proposal")
            .unwrap_or_default()
            .to_owned();
        let at = match parse_at(&proposed.at) {
            Ok(t) => t,
            Err(e) => {
                self.derived = Some(Err(e));
                return;
            }
        };
        let version =
            match self.next_version(&proposed.request, &digest, &proposed.actor.principal, at) {
                Ok(v) => v,
                Err(e) => {
                    self.derived = Some(Err(e.to_string()));
                    return;
                }
            };
        // A version after a drawn one keeps its sampled review.
        let carried = matches!(&self.derived, Some(Ok(d)) if d.review_owed());
        let recorded = proposed
            .fields
            .get("version")
            .map_or(Some(1), serde_json::Value::as_u64);
        if recorded != Some(u64::from(version)) {
            self.derived = Some(Err(format!(
                "its `proposed` event (event {}) is recorded as version {} but it is version {version} of the request",
                proposed.seq,
                recorded.map_or_else(|| "?".to_owned(), |v| v.to_string())
            )));
            return;
        }
        if self.version > 0 {
            self.earlier.push(std::mem::take(&mut self.proposal));
        }
        self.version = version;
        self.proposal = digest.clone();
        self.evidence_pack = events
            .iter()
            .find(|e| e.kind == types::APPROVAL_REQUESTED)
            .and_then(|e| e.field_str("evidence_pack"))
            .unwrap_or_default()
            .to_owned();
        self.approvals.clear();
        self.rejected = None;
        self.changes_requested = None;
        self.overridden = None;
        self.reviewed = None;
        self.execution = super::execution::Facts::default();
        self.swept_expired = false;
        self.swept_escalated = false;
        let derived = derive(&digest, &proposed.actor.principal, at).and_then(|mut d| {
            if carried {
                d.carry_sample();
            }
            let bad = disagreements(&d, events);
            if bad.is_empty() {
                Ok(d)
            } else {
                Err(bad.join("; "))
            }
        });
        self.derived = Some(derived);
    }

    /// The version a proposal of this request with `digest` by `submitter` at `at`
    /// starts: 1 for the first; after that, only once the latest version is
    /// `changes_requested` or `blocked`, by the same submitter, with bytes no version
    /// had.
    ///
    /// # Errors
    /// Why no new version may start now.
    pub fn next_version(
        &self,
        request: &str,
        digest: &str,
        submitter: &str,
        at: DateTime<Utc>,
    ) -> Result<u32, WorkflowError> {
        let Some(derived) = &self.derived else {
            return Ok(1);
        };
        let outcome = self.outcome(at);
        if !matches!(outcome, Outcome::Blocked | Outcome::ChangesRequested { .. }) {
            return Err(WorkflowError::AlreadyProposed {
                request: request.to_owned(),
                version: self.version,
                state: outcome.name().to_owned(),
            });
        }
        if let Ok(d) = derived
            && d.submitted_by != submitter
        {
            return Err(WorkflowError::NewVersionBy {
                request: request.to_owned(),
                submitter: submitter.to_owned(),
                first: d.submitted_by.clone(),
            });
        }
        if let Some(n) = self
            .earlier
            .iter()
            .chain(std::iter::once(&self.proposal))
            .position(|p| p == digest)
        {
            return Err(WorkflowError::SameProposal {
                request: request.to_owned(),
                version: n + 1,
            });
        }
        Ok(self.version + 1)
    }

    /// Folds a decision that was accepted into the state.
    pub fn decide(&mut self, event: &Event) {
        let Some(verdict) = event.field_str("decision").and_then(Verdict::parse) else {
            return;
        };
        let Ok(at) = parse_at(&event.at) else {
            return;
        };
        if verdict == Verdict::Override {
            self.overridden = override_terms(event, at).ok();
            return;
        }
        self.record(
            &event.actor.principal,
            event.field_str("role").unwrap_or_default(),
            verdict,
            at,
        );
    }

    /// Folds an accepted decision by `principal` in `role` at `at` into the state.
    pub fn record(&mut self, principal: &str, role: &str, verdict: Verdict, at: DateTime<Utc>) {
        let by = (principal.to_owned(), role.to_owned());
        if let Some(o) = &mut self.overridden {
            // After an override, an approval is a review of it.
            if verdict == Verdict::Approve {
                o.reviews.push(by);
            }
            return;
        }
        match verdict {
            Verdict::Approve => {
                if self.is_review(role) {
                    self.reviewed = Some(by);
                } else {
                    self.approvals.push(by);
                }
                // The approval file's window starts at the approval that completes it.
                if let Some(Ok(d)) = &self.derived
                    && self.complete(d)
                    && self.execution.approved_at.is_none()
                {
                    self.execution.approved_at = Some(at);
                }
            }
            // Recorded through [`State::decide`], with the terms the event names.
            Verdict::Override => {}
            Verdict::Reject => self.rejected = Some(by),
            Verdict::RequestChanges => self.changes_requested = Some(by),
            // Escalated by hand: the pending timeout is brought forward to now, so from
            // here on only the escalation role decides, as after the timeout.
            Verdict::Escalate => {
                if let Some(Ok(d)) = &mut self.derived {
                    d.pending_until = Some(d.pending_until.map_or(at, |until| until.min(at)));
                }
            }
        }
    }

    /// Whether an approval in `role` now is the sampled review rather than one of the
    /// tier's approvals: the review is owed and not given, `role` is a reviewer role,
    /// and it is not a role the tier's quorum still needs.
    fn is_review(&self, role: &str) -> bool {
        let Some(Ok(d)) = &self.derived else {
            return false;
        };
        let quorum_short = self.approvals.len() < usize::from(d.approvals_required);
        let quorum_role = role == REQUESTER_ROLE || d.eligible.iter().any(|(r, _)| r == role);
        d.review_owed()
            && self.reviewed.is_none()
            && d.reviewers().iter().any(|(r, _)| r == role)
            && !(quorum_short && quorum_role)
    }

    /// The tier's approvals are complete and any sampled review is given.
    fn complete(&self, d: &Derived) -> bool {
        self.approvals.len() >= usize::from(d.approvals_required)
            && (!d.review_owed() || self.reviewed.is_some())
    }

    /// Folds a recorded `expired` or `escalated` event of `hitl sweep` that
    /// [`judge_transition`] accepted.
    pub fn transition(&mut self, event: &Event) {
        match event.kind.as_str() {
            types::EXPIRED => self.swept_expired = true,
            types::ESCALATED => self.swept_escalated = true,
            _ => {}
        }
    }

    /// What `hitl sweep` has to record for this request at `now`: `expired` once it
    /// has expired, `escalated` once its pending timeout escalated it, each once.
    #[must_use]
    pub fn due(&self, now: DateTime<Utc>) -> Vec<&'static str> {
        let Some(Ok(d)) = &self.derived else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match self.outcome(now) {
            Outcome::Expired { .. } if !self.swept_expired => out.push(types::EXPIRED),
            Outcome::Pending { .. } if d.escalated_at(now) && !self.swept_escalated => {
                out.push(types::ESCALATED);
            }
            _ => {}
        }
        out
    }

    /// The roles that can still give an approval the quorum counts, at `at`.
    fn still_needed(&self, derived: &Derived, at: DateTime<Utc>) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        if self.approvals.len() < usize::from(derived.approvals_required) {
            roles.extend(
                derived
                    .eligible_at(at)
                    .into_iter()
                    .map(|(role, _)| role)
                    .filter(|role| {
                        !derived.distinct_roles || !self.approvals.iter().any(|(_, r)| r == role)
                    }),
            );
            if derived.self_approval
                && !derived.escalated_at(at)
                && !self.approvals.iter().any(|(_, r)| r == REQUESTER_ROLE)
            {
                roles.push(REQUESTER_ROLE.to_owned());
            }
        }
        if derived.review_owed() && self.reviewed.is_none() {
            for (role, _) in derived.reviewers() {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
        roles
    }

    /// Where the request stands at `at`.
    #[must_use]
    pub fn outcome(&self, at: DateTime<Utc>) -> Outcome {
        let derived = match &self.derived {
            None => return Outcome::NotProposed,
            Some(Err(e)) => return Outcome::Inconsistent(e.clone()),
            Some(Ok(d)) => d,
        };
        if derived.blocked {
            return Outcome::Blocked;
        }
        if let Some((by, _)) = &self.rejected {
            return Outcome::Rejected { by: by.clone() };
        }
        if let Some((by, _)) = &self.changes_requested {
            return Outcome::ChangesRequested { by: by.clone() };
        }
        if let Some(o) = &self.overridden {
            return Outcome::Overridden(o.clone());
        }
        if derived.approvals_required == 0 && !derived.review_owed() {
            return Outcome::Proceeds;
        }
        if self.complete(derived) {
            return Outcome::Approved;
        }
        if at >= derived.deadline() {
            return Outcome::Expired {
                at: derived.deadline(),
            };
        }
        // A sampled review counts as one approval more in what is shown.
        let review = u8::from(derived.review_owed());
        Outcome::Pending {
            approvals: self.approvals.len() + usize::from(self.reviewed.is_some()),
            required: derived.approvals_required.saturating_add(review),
            still_needed: self.still_needed(derived, at),
        }
    }
}

/// The role a requester approves in where the tier lets them approve their own request.
pub const REQUESTER_ROLE: &str = "requester";

/// An event's `at`: refused when it is not an RFC 3339 time (never a default).
///
/// # Errors
/// Not a time.
pub fn parse_at(at: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`at` is not an RFC 3339 time: {at:?}"))
}

/// A decision to judge: who, what, and (for a recorded one) the role it names.
pub struct Decision<'a> {
    pub request: &'a str,
    pub principal: &'a str,
    pub verdict: Verdict,
    /// The role a recorded decision names; `None` when judging a new one (the engine
    /// picks the role).
    pub role: Option<&'a str>,
    pub reason_code: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Accepts or refuses a decision on a request in `state`, made under `current` (the
/// configuration of the tree the decision extends). Returns the role it is made in.
///
/// The rules, in order (docs/workflow.md): proposed; its record agrees with the
/// recomputation; not blocked; its tier needs an approval; not rejected and its quorum
/// not reached yet; before its deadline (`expires_at`, or a pending timeout that
/// expires); not an agent; not the requester (unless the tier allows self-approval) nor
/// the submitter; not an approver already; a member of an eligible role (the
/// escalation role once a pending timeout escalated it) both when it was proposed and
/// now, in a role not used yet where the tier asks for distinct roles; a reason code
/// the matrix in force knows.
///
/// # Errors
/// The [`WorkflowError`] of the first rule that refuses it.
pub fn judge_decision(
    state: &State,
    current: &Config,
    d: &Decision<'_>,
) -> Result<String, WorkflowError> {
    let request = d.request.to_owned();
    let derived = match &state.derived {
        None => return Err(WorkflowError::NotProposed(request)),
        Some(Err(message)) => {
            return Err(WorkflowError::Inconsistent {
                request,
                message: message.clone(),
            });
        }
        Some(Ok(derived)) => derived,
    };
    if derived.blocked {
        return Err(WorkflowError::Blocked(request));
    }
    if derived.approvals_required == 0 && !derived.review_owed() {
        return Err(WorkflowError::NoApprovalNeeded(request));
    }
    if let Some((by, _)) = &state.rejected {
        return Err(WorkflowError::AlreadyDecided {
            request,
            decision: Verdict::Reject.as_str().to_owned(),
            by: by.clone(),
        });
    }
    if let Some(o) = &state.overridden {
        return judge_review(o, current, derived, d, request);
    }
    if let Some((by, _)) = &state.changes_requested {
        return Err(WorkflowError::ChangesRequested {
            request,
            version: state.version,
            by: by.clone(),
            next: state.version + 1,
        });
    }
    if state.complete(derived) {
        return Err(WorkflowError::AlreadyDecided {
            request,
            decision: Verdict::Approve.as_str().to_owned(),
            by: state
                .approvals
                .iter()
                .chain(&state.reviewed)
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if d.verdict == Verdict::Escalate {
        // One who approved may not then hand the rest of the quorum to the escalation
        // role: their approval and an escalation role's would make it alone.
        if state.approvals.iter().any(|(p, _)| p == d.principal) {
            return Err(WorkflowError::AlreadyApproved {
                principal: d.principal.to_owned(),
                request,
                needed: state.still_needed(derived, d.at).join(", "),
            });
        }
        if derived.escalation.is_none() {
            return Err(WorkflowError::NoEscalation {
                request,
                tier: derived.tier,
            });
        }
        if derived.escalated_at(d.at) {
            return Err(WorkflowError::AlreadyEscalated {
                request,
                roles: derived
                    .eligible_at(d.at)
                    .iter()
                    .map(|(r, _)| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    if d.at >= derived.deadline() {
        return Err(WorkflowError::Expired {
            request,
            expires_at: derived
                .deadline()
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        });
    }
    if d.verdict == Verdict::Override {
        return judge_override(current, derived, d, request);
    }
    let matrix = current.matrix_for(&request)?;
    separation(matrix, derived, d.principal, &request, true)?;
    let is_requester = d.principal == derived.requested_by;
    if d.verdict == Verdict::Approve
        && state
            .approvals
            .iter()
            .chain(&state.reviewed)
            .any(|(p, _)| p == d.principal)
    {
        return Err(WorkflowError::AlreadyApproved {
            principal: d.principal.to_owned(),
            request,
            needed: state.still_needed(derived, d.at).join(", "),
        });
    }
    // Eligible when proposed, and still a member of that role in the matrix in force:
    // a removal from a role takes effect at once. Past a pending timeout that
    // escalates, only the escalation role decides.
    let amount = derived.amount.as_ref();
    let qualifies = |role: &str, members: &[String]| {
        members.iter().any(|m| m == d.principal)
            && matrix
                .role(role)
                .is_some_and(|r| r.members.iter().any(|m| m == d.principal) && r.covers(amount))
    };
    let eligible = derived.eligible_at(d.at);
    // The tier's own roles while its quorum is short; then a sampled review's roles
    // while the review is owed (an approval in one of them is the review).
    let quorum_short = state.approvals.len() < usize::from(derived.approvals_required);
    let mut roles: Vec<String> = if quorum_short {
        eligible
            .iter()
            .filter(|(role, members)| qualifies(role, members))
            .map(|(role, _)| role.clone())
            .collect()
    } else {
        Vec::new()
    };
    // The requester approves their own request where the tier allows it (tier 1).
    if quorum_short && is_requester && derived.self_approval && !derived.escalated_at(d.at) {
        roles.push(REQUESTER_ROLE.to_owned());
    }
    // A reviewer may approve (the review), reject or send it back; not escalate it.
    if derived.review_owed() && state.reviewed.is_none() && d.verdict != Verdict::Escalate {
        for (role, members) in derived.reviewers() {
            if qualifies(&role, &members) && !roles.contains(&role) {
                roles.push(role);
            }
        }
    }
    if let Some(named) = d.role {
        roles.retain(|r| r == named);
    }
    // One approval per role where the tier asks for distinct roles.
    let used: Vec<&str> = if d.verdict == Verdict::Approve && derived.distinct_roles {
        state.approvals.iter().map(|(_, r)| r.as_str()).collect()
    } else {
        Vec::new()
    };
    let role = roles.iter().find(|r| !used.contains(&r.as_str())).cloned();
    let Some(role) = role else {
        if let Some(taken) = roles.first() {
            return Err(WorkflowError::SameRole {
                principal: d.principal.to_owned(),
                request,
                role: taken.clone(),
                needed: state.still_needed(derived, d.at).join(", "),
            });
        }
        if let Some(over) = over_limit(derived, matrix, d.principal, &eligible) {
            return Err(over.into_error(d.principal, request));
        }
        let names: Vec<&str> = eligible.iter().map(|(r, _)| r.as_str()).collect();
        let roles = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        return Err(if derived.escalated_at(d.at) {
            WorkflowError::Escalated {
                principal: d.principal.to_owned(),
                request,
                roles,
            }
        } else {
            WorkflowError::NotEligible {
                principal: d.principal.to_owned(),
                request,
                roles,
            }
        });
    };
    let allowed: &[String] = match d.verdict {
        Verdict::Reject => &matrix.reason_codes.reject,
        Verdict::RequestChanges => &matrix.reason_codes.request_changes,
        Verdict::Approve | Verdict::Escalate | Verdict::Override => &[],
    };
    match d.reason_code {
        None if matches!(d.verdict, Verdict::Reject | Verdict::RequestChanges) => {
            return Err(WorkflowError::MissingReasonCode {
                verdict: d.verdict.as_str(),
                allowed: allowed.join(", "),
            });
        }
        Some(code) if !allowed.iter().any(|c| c == code) => {
            return Err(WorkflowError::ReasonCode {
                code: code.to_owned(),
                verdict: d.verdict.as_str(),
                allowed: if allowed.is_empty() {
                    "none (it takes a comment, no code)".to_owned()
                } else {
                    allowed.join(", ")
                },
            });
        }
        _ => {}
    }
    Ok(role)
}

/// Separation of duties for any decision: no agent, not the requester (unless the tier
/// allows self-approval and `self_ok`), not the submitter, not the owner of the
/// submitting agent (named so by the matrix it was proposed under or by the one in
/// force: the owner counts as the requester).
pub(super) fn separation(
    matrix: &crate::matrix::Matrix,
    derived: &Derived,
    principal: &str,
    request: &str,
    self_ok: bool,
) -> Result<(), WorkflowError> {
    if matrix.governance.is_agent(principal) {
        return Err(WorkflowError::AgentDecides {
            principal: principal.to_owned(),
            request: request.to_owned(),
        });
    }
    let is_requester = principal == derived.requested_by;
    if (is_requester && !(self_ok && derived.self_approval)) || principal == derived.submitted_by {
        return Err(WorkflowError::OwnRequest {
            principal: principal.to_owned(),
            request: request.to_owned(),
        });
    }
    let owns = derived.agent_owner.as_deref() == Some(principal)
        || matrix.governance.owner_of(&derived.submitted_by) == Some(principal);
    if owns && !(is_requester && self_ok) {
        return Err(WorkflowError::AgentOwner {
            principal: principal.to_owned(),
            agent: derived.submitted_by.clone(),
            request: request.to_owned(),
        });
    }
    Ok(())
}

/// A role of `principal` (in the matrix in force) that would decide the request but for
/// its amount: one the request was routed away from by a limit, or an eligible role
/// whose limit the matrix in force lowered below it. With the role that may approve it.
struct OverLimit {
    role: String,
    limit: String,
    to: String,
    amount: String,
}

impl OverLimit {
    fn into_error(self, principal: &str, request: String) -> WorkflowError {
        WorkflowError::OverLimit {
            principal: principal.to_owned(),
            request,
            why: format!(
                "its amount {} is above the authority of role `{}`{}; {}",
                self.amount, self.role, self.limit, self.to
            ),
        }
    }
}

fn over_limit(
    derived: &Derived,
    matrix: &crate::matrix::Matrix,
    principal: &str,
    eligible: &[(String, Vec<String>)],
) -> Option<OverLimit> {
    let amount = derived.amount.as_ref()?;
    let candidates = derived
        .stands_in_for
        .iter()
        .map(|(from, to)| (from.clone(), Some(to.clone())))
        .chain(eligible.iter().map(|(role, _)| (role.clone(), None)));
    for (name, to) in candidates {
        let Some(role) = matrix.role(&name) else {
            continue;
        };
        if !role.members.iter().any(|m| m == principal) || role.covers(Some(amount)) {
            continue;
        }
        let to = to
            .or_else(|| {
                crate::classify::role_with_authority(matrix, &name, Some(amount))
                    .map(|r| r.name.clone())
            })
            .map_or_else(
                || "no role has authority for it".to_owned(),
                |to| format!("`{to}` may approve it"),
            );
        let limit = role
            .limits
            .get(&amount.currency)
            .map(|max| format!(" (limit {max} {})", amount.currency))
            .unwrap_or_default();
        return Some(OverLimit {
            role: name,
            limit,
            to,
            amount: format!("{} {}", amount.value, amount.currency),
        });
    }
    None
}
