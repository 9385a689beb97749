//! Break-glass: an override that lets a pending request proceed at once, by a member of
//! the matrix's `break_glass.role`, and the after-the-fact review it owes (how many
//! approvals, from which roles, by when: the matrix's `break_glass.review`, recorded
//! with the override and checked against the matrix in force). Judged by the same
//! [`super::rules::judge_decision`] as every decision.

use chrono::{DateTime, Utc};

use super::config::Config;
use super::derive::Derived;
use super::rules::{Decision, parse_at, separation};
use super::{Verdict, WorkflowError};
use crate::audit::Event;

/// A break-glass override and the after-the-fact review it owes (the terms of the
/// matrix in force when it was made, which the engine checks the event against).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Override {
    pub by: String,
    pub at: DateTime<Utc>,
    /// How many review approvals it owes, from distinct principals of `roles`.
    pub required: u8,
    pub roles: Vec<String>,
    /// By when.
    pub due: DateTime<Utc>,
    /// The review approvals given so far: (principal, role).
    pub reviews: Vec<(String, String)>,
}

impl Override {
    /// The terms the matrix `m` sets for an override by `by` at `at`, when it has
    /// `break_glass`.
    #[must_use]
    pub fn under(m: &crate::matrix::Matrix, by: &str, at: DateTime<Utc>) -> Option<Self> {
        let bg = m.break_glass.as_ref()?;
        let within = bg
            .review_within
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .unwrap_or_else(chrono::Duration::zero);
        Some(Self {
            by: by.to_owned(),
            at,
            required: bg.review_approvals,
            roles: bg.review_roles.clone(),
            due: at.checked_add_signed(within).unwrap_or(at),
            reviews: Vec::new(),
        })
    }

    /// Whether the review is still owed.
    #[must_use]
    pub fn open(&self) -> bool {
        self.reviews.len() < usize::from(self.required)
    }

    /// Whether it is owed past its due time at `now`.
    #[must_use]
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.open() && now > self.due
    }
}

/// A break-glass override of a pending request: by a member of the matrix's
/// `break_glass.role` (in force), never the requester, submitter, owner or an agent.
pub(super) fn judge_override(
    current: &Config,
    derived: &Derived,
    d: &Decision<'_>,
    request: String,
) -> Result<String, WorkflowError> {
    let matrix = current.matrix_for(&request)?;
    let Some(bg) = &matrix.break_glass else {
        return Err(WorkflowError::NoBreakGlass { request });
    };
    separation(matrix, derived, d.principal, &request, false)?;
    if !matrix
        .role(&bg.role)
        .is_some_and(|r| r.members.iter().any(|m| m == d.principal))
    {
        return Err(WorkflowError::NotBreakGlass {
            principal: d.principal.to_owned(),
            request,
            role: bg.role.clone(),
        });
    }
    if d.reason_code.is_some() {
        return Err(WorkflowError::ReasonCode {
            code: d.reason_code.unwrap_or_default().to_owned(),
            verdict: d.verdict.as_str(),
            allowed: "none (an override takes a reason in words, `--reason`)".to_owned(),
        });
    }
    Ok(bg.role.clone())
}

/// An approval after an override is a review of it: by a member of one of the review
/// roles (in the terms and in the matrix in force), a principal once, never the one who
/// overrode, nor the requester, submitter or owner.
pub(super) fn judge_review(
    o: &Override,
    current: &Config,
    derived: &Derived,
    d: &Decision<'_>,
    request: String,
) -> Result<String, WorkflowError> {
    if d.verdict != Verdict::Approve || !o.open() {
        return Err(WorkflowError::AlreadyDecided {
            request,
            decision: "overridden".to_owned(),
            by: o.by.clone(),
        });
    }
    let matrix = current.matrix_for(&request)?;
    separation(matrix, derived, d.principal, &request, false)?;
    if d.principal == o.by || o.reviews.iter().any(|(p, _)| p == d.principal) {
        return Err(WorkflowError::AlreadyApproved {
            principal: d.principal.to_owned(),
            request,
            needed: o.roles.join(", "),
        });
    }
    let role = o.roles.iter().find(|r| {
        d.role.is_none_or(|named| named == r.as_str())
            && matrix
                .role(r)
                .is_some_and(|role| role.members.iter().any(|m| m == d.principal))
    });
    role.cloned().ok_or_else(|| WorkflowError::NotEligible {
        principal: d.principal.to_owned(),
        request,
        roles: format!("the review of its override: {}", o.roles.join(", ")),
    })
}

/// The review terms a recorded override names, which [`super::rules::judge_recorded_event`] compares
/// with those of the matrix in force.
pub(super) fn override_terms(e: &Event, at: DateTime<Utc>) -> Result<Override, String> {
    let required = e
        .fields
        .get("review_approvals")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or("it names no `review_approvals`")?;
    let roles = e
        .fields
        .get("review_roles")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or("it names no `review_roles`")?;
    let due = parse_at(
        e.field_str("review_due")
            .ok_or("it names no `review_due`")?,
    )?;
    Ok(Override {
        by: e.actor.principal.clone(),
        at,
        required,
        roles,
        due,
        reviews: Vec::new(),
    })
}

/// Whether `principal` is a member of the break-glass role of `config`'s matrix (false
/// without a `break_glass` section or a matrix that loads).
#[must_use]
pub fn is_member(config: &super::config::Config, principal: &str) -> bool {
    config
        .matrix()
        .ok()
        .and_then(|m| m.break_glass.as_ref().and_then(|b| m.role(&b.role)))
        .is_some_and(|r| r.members.iter().any(|m| m == principal))
}
