//! `hitl lint`: the article's approval anti-patterns, found in the matrix, plus the
//! per-request checks that would make a proposal unapprovable.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::{AuditError, AuditRepo};
use crate::classify::classify;
use crate::diag::{Diagnostic, Pos};
use crate::matrix::{Execution, Matrix, OnTimeout};
use crate::request::ActionType;
use crate::request::LoadedRequest;
use crate::workflow::{self, Closed};

mod proofs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    fn new(severity: Severity, code: &'static str, file: &Path, pos: Pos, message: String) -> Self {
        Self {
            severity,
            code,
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message,
            hint: None,
        }
    }

    fn hint(mut self, hint: &str) -> Self {
        self.hint = Some(hint.to_owned());
        self
    }

    /// An input error as a finding.
    #[must_use]
    pub fn from_diagnostic(d: &Diagnostic) -> Self {
        let message = if d.field.is_empty() {
            d.message.clone()
        } else {
            format!("`{}`: {}", d.field, d.message)
        };
        Self {
            severity: Severity::Error,
            code: "invalid",
            file: d.file.clone(),
            line: d.line,
            column: d.column,
            message,
            hint: d.hint.clone(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]: {}:{}:{}: {}",
            self.severity,
            self.code,
            crate::decode::safe_path(&self.file),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  = hint: {h}")?;
        }
        Ok(())
    }
}

/// The anti-patterns of the article, found in the matrix.
#[must_use]
pub fn lint_matrix(m: &Matrix, file: &Path) -> Vec<Finding> {
    use Severity::Error;
    let mut out = Vec::new();
    // Who submits never decides: an agent in a role could approve its own proposals.
    for agent in &m.governance.agents {
        for role in m.roles_of(agent) {
            out.push(
                Finding::new(
                    Error,
                    "agent-approver",
                    file,
                    role.pos,
                    format!("agent `{agent}` is a member of role `{}`", role.name),
                )
                .hint("a principal that submits proposals never approves: take it out of the role, or out of `governance.agents`"),
            );
        }
    }
    if m.governance.admins.is_empty() {
        out.push(
            Finding::new(
                Severity::Warning,
                "no-admins",
                file,
                m.governance.pos,
                "the matrix names no `governance.admins`: after the first commit, nobody may change the trust configuration".to_owned(),
            )
            .hint("list the principals whose signed commits may change the matrix, the policies, `hitl.toml` and the signer files"),
        );
    }
    let role_exists = |name: &str| m.role(name).is_some();
    for t in &m.tiers {
        let n = t.tier;
        if n >= 2 && !t.rollback_required {
            out.push(
                Finding::new(Error, "rollback-not-required", file, t.pos, format!("tier {n} does not require a rollback path"))
                    .hint("set `rollback_required: true`: reviewers cannot judge operational risk without one (tier 2+)"),
            );
        }
        if n >= 3 && t.approvals == 0 {
            out.push(
                Finding::new(Error, "zero-approvals", file, t.pos, format!("tier {n} requires zero approvals"))
                    .hint("financial, customer, security and safety impact needs a human decision before execution"),
            );
        }
        if t.approvals > 0 && t.pending_timeout.is_none() {
            out.push(
                Finding::new(Error, "no-pending-timeout", file, t.pos, format!("tier {n} has no `pending_timeout`"))
                    .hint("without a timeout, stale approvals execute in a changed context; add `pending_timeout` and `on_timeout`"),
            );
        }
        if n >= 4 && t.self_approval {
            out.push(
                Finding::new(Error, "self-approval", file, t.pos, format!("tier {n} lets the requester approve their own request"))
                    .hint("remove `self_approval`: security, production and safety changes need separation of duties"),
            );
        }
        if n >= 4 && t.approvals >= 2 && !t.distinct_roles {
            out.push(
                Finding::new(
                    Error,
                    "self-approval",
                    file,
                    t.pos,
                    format!("tier {n} lets one role give both of its approvals"),
                )
                .hint("set `distinct_roles: true` so dual approval means two owners"),
            );
        }
        if (n == 4 || t.execution == Execution::DualApprovalChangeWindow)
            && t.change_window.is_none()
        {
            out.push(
                Finding::new(
                    Error,
                    "no-change-window",
                    file,
                    t.pos,
                    format!("tier {n} has no change window"),
                )
                .hint("name one of `change_windows` in `change_window`"),
            );
        }
        if t.execution == Execution::DualApprovalChangeWindow && t.approvals < 2 {
            out.push(Finding::new(
                Error,
                "dual-approval",
                file,
                t.pos,
                format!(
                    "tier {n} executes after dual approval but requires {} approval(s)",
                    t.approvals
                ),
            ));
        }
        for r in &t.approver_roles {
            if !role_exists(r) {
                out.push(unknown_role(file, t.pos, r, &format!("tier {n}")));
            }
        }
        for r in &t.sample_reviewers {
            if !role_exists(r) {
                out.push(unknown_role(
                    file,
                    t.pos,
                    r,
                    &format!("tier {n}'s `sample_reviewers`"),
                ));
            }
        }
        if t.sample_rate > 0.0 && t.sample_reviewers.is_empty() {
            out.push(
                Finding::new(Error, "sample-unreviewed", file, t.pos, format!("tier {n} samples {} of its requests for review but names no `sample_reviewers`", t.sample_rate))
                    .hint("name the roles that review the sample (`sample_reviewers: [role]`): a drawn request nobody may review is blocked"),
            );
        }
        if t.sample_rate == 0.0 && !t.sample_reviewers.is_empty() {
            out.push(
                Finding::new(Severity::Warning, "sample-reviewers-unused", file, t.pos, format!("tier {n} names `sample_reviewers` but no `sample_rate`"))
                    .hint("set `sample_rate` (0-1) to draw requests for review, or remove `sample_reviewers`"),
            );
        }
        if let OnTimeout::Escalate { role } = &t.on_timeout
            && !role_exists(role)
        {
            out.push(unknown_role(
                file,
                t.pos,
                role,
                &format!("tier {n}'s `on_timeout`"),
            ));
        }
        if let Some(w) = &t.change_window
            && m.change_window(w).is_none()
        {
            out.push(unknown_window(file, t.pos, w, &format!("tier {n}")));
        }
    }
    for route in &m.routes {
        for r in &route.approvers {
            if !role_exists(r) {
                out.push(unknown_role(
                    file,
                    route.pos,
                    r,
                    &format!("route `{}`", route.workflow),
                ));
            }
        }
        if let Some(w) = &route.change_window
            && m.change_window(w).is_none()
        {
            out.push(unknown_window(
                file,
                route.pos,
                w,
                &format!("route `{}`", route.workflow),
            ));
        }
    }
    for role in &m.roles {
        if role.members.is_empty() {
            out.push(
                Finding::new(
                    Error,
                    "empty-role",
                    file,
                    role.pos,
                    format!("role `{}` has no members", role.name),
                )
                .hint("if nobody owns the approval route, nobody owns the risk"),
            );
        }
        if let Some(next) = &role.escalates_to {
            if !role_exists(next) {
                out.push(unknown_role(
                    file,
                    role.pos,
                    next,
                    &format!("role `{}`'s `escalates_to`", role.name),
                ));
            } else if escalation_loops(m, &role.name) {
                out.push(Finding::new(
                    Error,
                    "escalation-cycle",
                    file,
                    role.pos,
                    format!("escalation from role `{}` loops back on itself", role.name),
                ));
            }
        }
    }
    for rule in &m.rules {
        let read_only = !rule.when.action_type.is_empty()
            && rule.when.action_type.iter().all(|t| *t == ActionType::Read);
        if rule.tier == 0 && !read_only {
            out.push(
                Finding::new(
                    Severity::Error,
                    "write-at-tier-0",
                    file,
                    rule.pos,
                    format!("rule `{}` gives tier 0 to actions that are not read-only", rule.id),
                )
                .hint("tier 0 is for actions with no external effect: add `action_type: [read]` (classification ignores such a rule for anything but `read`)"),
            );
        }
    }
    if let Some(bg) = &m.break_glass {
        out.extend(break_glass_findings(m, bg, file));
    }
    // What the matrix promises, proved: every quorum can be met by distinct people, and
    // every amount up to the highest limit has someone with authority for it.
    out.extend(proofs::quorum_findings(m, file));
    out.extend(proofs::authority_findings(m, file));
    out
}

/// `break_glass`: its role and review roles exist, and the review can be given by
/// enough distinct people who are neither agents nor the one who overrides (at best, a
/// break-glass member who holds no review role).
fn break_glass_findings(m: &Matrix, bg: &crate::matrix::BreakGlass, file: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, what) in std::iter::once((&bg.role, "`break_glass.role`")).chain(
        bg.review_roles
            .iter()
            .map(|r| (r, "`break_glass.review.roles`")),
    ) {
        if m.role(name).is_none() {
            out.push(unknown_role(file, bg.pos, name, what));
        }
    }
    if !out.is_empty() {
        return out;
    }
    if m.role(&bg.role).is_some_and(|r| r.members.is_empty()) {
        out.push(Finding::new(
            Severity::Error,
            "empty-role",
            file,
            bg.pos,
            format!(
                "`break_glass.role` `{}` has no members: nobody could override",
                bg.role
            ),
        ));
    }
    let mut reviewers: Vec<&String> = bg
        .review_roles
        .iter()
        .filter_map(|r| m.role(r))
        .flat_map(|r| &r.members)
        .filter(|p| !m.governance.is_agent(p))
        .collect();
    reviewers.sort();
    reviewers.dedup();
    if reviewers.len() < usize::from(bg.review_approvals) {
        out.push(
            Finding::new(
                Severity::Error,
                "quorum-unreachable",
                file,
                bg.pos,
                format!(
                    "an override owes {} review approval(s) but the review roles ({}) have {} distinct member(s) who may give one",
                    bg.review_approvals,
                    bg.review_roles.join(", "),
                    reviewers.len()
                ),
            )
            .hint("add members to the review roles, or lower `break_glass.review.approvals`"),
        );
    }
    out
}

fn escalation_loops(m: &Matrix, start: &str) -> bool {
    let mut seen = vec![start];
    let mut cur = m.role(start).and_then(|r| r.escalates_to.as_deref());
    while let Some(name) = cur {
        if seen.contains(&name) {
            return true;
        }
        seen.push(name);
        cur = m.role(name).and_then(|r| r.escalates_to.as_deref());
    }
    false
}

fn unknown_role(file: &Path, pos: Pos, role: &str, what: &str) -> Finding {
    Finding::new(
        Severity::Error,
        "unknown-role",
        file,
        pos,
        format!("{what} routes to role `{role}`, which does not exist"),
    )
    .hint("define it under `roles` with its members")
}

fn unknown_window(file: &Path, pos: Pos, w: &str, what: &str) -> Finding {
    Finding::new(
        Severity::Error,
        "unknown-change-window",
        file,
        pos,
        format!("{what} names change window `{w}`, which does not exist"),
    )
    .hint("define it under `change_windows`")
}

/// The requests among `requests` that the audit of the workspace at `root` had closed
/// (blocked, approved or rejected) at `now`, by id: events recorded after `now` do not
/// count, so linting as of an earlier instant (`lint --at`) shows what was open then. A
/// workspace outside git, a repository without commits and one without an audit have
/// none.
///
/// # Errors
/// The audit cannot be read (a corrupt event or index, an unreadable repository).
pub fn closed_in_audit(
    root: &Path,
    requests: &[LoadedRequest],
    now: DateTime<Utc>,
) -> Result<HashMap<String, Closed>, AuditError> {
    let mut out = HashMap::new();
    let repo = match AuditRepo::open(root) {
        Ok(repo) => repo,
        Err(AuditError::NoRepository(_)) => return Ok(out),
        Err(e) => return Err(e),
    };
    let Some(head) = repo.head_for_reading()? else {
        return Ok(out);
    };
    let tree = head.tree()?;
    for lr in requests {
        let id = &lr.request.id;
        if out.contains_key(id) {
            continue;
        }
        let mut events = repo.request_events(&tree, id)?;
        events.retain(|e| DateTime::parse_from_rfc3339(&e.at).is_ok_and(|at| at <= now));
        if let Some(c) = workflow::closed(&events) {
            out.insert(id.clone(), c);
        }
    }
    Ok(out)
}

/// [`lint_requests`] with what the audit at `root` records: a request it had closed at
/// `now` gets no `expired` warning (its expiry no longer matters). An audit that cannot
/// be read is a warning of its own, and then every expired request is reported.
#[must_use]
pub fn lint_requests_in(
    root: &Path,
    m: &Matrix,
    requests: &[LoadedRequest],
    now: DateTime<Utc>,
) -> Vec<Finding> {
    match closed_in_audit(root, requests, now) {
        Ok(closed) => lint_requests(m, requests, &closed, now),
        Err(e) => {
            let mut out = vec![
                Finding::new(
                    Severity::Warning,
                    "audit",
                    Path::new(crate::audit::AUDIT_DIR),
                    Pos::new(1, 1),
                    format!(
                        "cannot read the audit, so requests it closed may be reported as expired: {e}"
                    ),
                )
                .hint("run `hitl verify` to see what is wrong with it"),
            ];
            out.extend(lint_requests(m, requests, &HashMap::new(), now));
            out
        }
    }
}

/// Checks that make a loaded request unapprovable, or worth a second look. `closed`
/// holds the requests the audit has closed (by id): they are not reported as expired.
#[must_use]
pub fn lint_requests(
    m: &Matrix,
    requests: &[LoadedRequest],
    closed: &HashMap<String, Closed>,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut ids: HashMap<&str, &Path> = HashMap::new();
    let at = Pos::new(1, 1);
    for lr in requests {
        let r = &lr.request;
        let file = lr.path.as_path();
        if let Some(stem) = file.file_stem()
            && stem.to_string_lossy() != r.id
        {
            out.push(
                Finding::new(
                    Severity::Error,
                    "id-mismatch",
                    file,
                    at,
                    format!("request id `{}` does not match its file name", r.id),
                )
                .hint("name the file `<id>.yaml` so ids and files cannot disagree"),
            );
        }
        if let Some(first) = ids.insert(&r.id, file) {
            out.push(Finding::new(
                Severity::Error,
                "duplicate-id",
                file,
                at,
                format!(
                    "request id `{}` is also used by `{}`",
                    r.id,
                    first.display()
                ),
            ));
        }
        let c = classify(m, r);
        if !c.missing_evidence.is_empty() {
            out.push(Finding::new(
                Severity::Error,
                "missing-evidence",
                file,
                at,
                format!(
                    "tier {} requires evidence that is missing: {}",
                    c.tier,
                    c.missing_evidence.join(", ")
                ),
            ));
        }
        for p in &c.problems {
            out.push(Finding::new(
                Severity::Error,
                p.code,
                file,
                at,
                p.message.clone(),
            ));
        }
        if now >= r.expires_at && !closed.contains_key(&r.id) {
            out.push(Finding::new(
                Severity::Warning,
                "expired",
                file,
                at,
                format!(
                    "request `{}` expired at {}",
                    r.id,
                    r.expires_at.to_rfc3339()
                ),
            ));
        }
    }
    out
}
