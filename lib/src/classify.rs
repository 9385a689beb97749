//! Classification by action risk: which tier an action falls into, which rules put it
//! there, which route owns it and who may approve it.
//!
//! Pure functions of the matrix and the proposal: no clock, no I/O.

use serde::Serialize;

use crate::matrix::{Conditions, Execution, Matrix, Role, Rule};
use crate::request::{ActionType, Amount, Request};

/// A rule that applied, with the tier it gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedRule {
    pub id: String,
    pub tier: u8,
}

/// A role that may approve, and the role it stands in for when a limit moved the
/// request upward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EligibleRole {
    pub role: String,
    pub members: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<String>,
    /// Set when a policy made this role's approval required, with the policy's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_by_policy: Option<String>,
}

/// A routing problem: the request cannot be approved as the matrix stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutingProblem {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub tier: u8,
    pub tier_name: String,
    /// The tier the rules gave, when a policy's `min_tier` raised it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raised_by_policy_from: Option<u8>,
    pub rules: Vec<MatchedRule>,
    /// True when no rule matched and the matrix's default tier applied.
    pub default_applied: bool,
    /// The workflow of the route that owns the action, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    pub approvals_required: u8,
    pub eligible_roles: Vec<EligibleRole>,
    pub distinct_roles: bool,
    /// Whether the requester may approve their own request (tier 1 "human send").
    pub self_approval: bool,
    pub execution: Execution,
    pub change_window: Option<String>,
    pub required_evidence: Vec<String>,
    pub missing_evidence: Vec<String>,
    pub problems: Vec<RoutingProblem>,
    /// The sampled review's draw, when the tier has a `sample_rate` (set by
    /// [`apply_sample`] from the proposal's bytes: a preview without them has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
}

/// A tier's sampled review, drawn for one proposal: deterministic from the sha256 of the
/// proposal's bytes, so anyone can redo it (docs/workflow.md, "Sampled review").
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Sample {
    /// The tier's `sample_rate`.
    pub rate: f64,
    /// The first 8 bytes of the proposal's sha256, big-endian, modulo 1,000,000.
    pub draw: u32,
    /// Drawn for review: `draw < rate × 1,000,000` (in double precision), or `carried`.
    /// A drawn request needs, besides its tier's own approvals, one review by a member
    /// of the tier's `sample_reviewers`; one not drawn proceeds as its tier says.
    pub selected: bool,
    /// Drawn because the version before it was: a new version of a request sent back
    /// for changes (or blocked) keeps its review, whatever its own draw.
    pub carried: bool,
    /// The roles that may give the review, with their members besides the requester.
    pub reviewers: Vec<EligibleRole>,
}

/// The draws per unit of `sample_rate`.
pub const SAMPLE_SCALE: u32 = 1_000_000;

impl Sample {
    /// The draw for the proposal `bytes` at `rate` (no reviewers named).
    #[must_use]
    pub fn of_proposal(rate: f64, bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self::draw(rate, &sha2::Sha256::digest(bytes).into())
    }

    /// The draw for a proposal whose sha256 is `sha256`, at `rate` (no reviewers named).
    #[must_use]
    pub fn draw(rate: f64, sha256: &[u8; 32]) -> Self {
        let mut first = [0u8; 8];
        first.copy_from_slice(&sha256[..8]);
        let draw = u64::from_be_bytes(first) % u64::from(SAMPLE_SCALE);
        let draw = u32::try_from(draw).unwrap_or(SAMPLE_SCALE);
        Self {
            rate,
            draw,
            selected: f64::from(draw) < rate * f64::from(SAMPLE_SCALE),
            carried: false,
            reviewers: Vec::new(),
        }
    }

    /// Whether some member of a reviewer role could give the review.
    #[must_use]
    pub fn reviewable(&self) -> bool {
        self.reviewers.iter().any(|r| !r.members.is_empty())
    }

    /// Marks the sample drawn because the version before it was (see [`Sample::carried`]).
    pub fn carry(&mut self) {
        if !self.selected {
            self.selected = true;
            self.carried = true;
        }
    }
}

/// The routing problem of a drawn request nobody could review, if it is one.
#[must_use]
pub fn sample_problem(tier: u8, sample: &Sample) -> Option<RoutingProblem> {
    (sample.selected && !sample.reviewable()).then(|| RoutingProblem {
        code: "no-sample-reviewer",
        message: format!(
            "the proposal was drawn for tier {tier}'s sampled review but no member of its `sample_reviewers` could give it (the requester does not count)"
        ),
    })
}

/// Draws the sampled review of the classification's tier for the proposal whose sha256
/// is `sha256`: a drawn request needs one review by a
/// member of the tier's `sample_reviewers` (never the requester) besides its tier's own
/// approvals, which sampling never changes; a drawn request nobody could review is a
/// routing problem (the request is blocked).
pub fn apply_sample(matrix: &Matrix, r: &Request, c: &mut Classification, sha256: &[u8; 32]) {
    let Some(tier) = matrix.tier(c.tier) else {
        return;
    };
    if tier.sample_rate <= 0.0 {
        return;
    }
    let mut sample = Sample::draw(tier.sample_rate, sha256);
    for name in &tier.sample_reviewers {
        // The review is no approval of an amount: the reviewer role's own members, as
        // the matrix names them, without the requester.
        if let Some(role) = matrix.role(name)
            && !sample.reviewers.iter().any(|e| e.role == role.name)
        {
            sample.reviewers.push(EligibleRole {
                role: role.name.clone(),
                members: role
                    .members
                    .iter()
                    .filter(|m| **m != r.requested_by)
                    .cloned()
                    .collect(),
                escalated_from: None,
                required_by_policy: None,
            });
        }
    }
    c.problems.extend(sample_problem(c.tier, &sample));
    c.sample = Some(sample);
}

/// [`apply_sample`] for the proposal `bytes`.
pub fn apply_sample_of(matrix: &Matrix, r: &Request, c: &mut Classification, bytes: &[u8]) {
    use sha2::Digest as _;
    apply_sample(matrix, r, c, &sha2::Sha256::digest(bytes).into());
}

/// Draws the classification's sample because the version before it was drawn
/// ([`Sample::carried`]); a review nobody could give becomes a routing problem.
pub fn carry_sample(c: &mut Classification) {
    if let Some(s) = &mut c.sample
        && !s.selected
    {
        s.carry();
        if let Some(p) = sample_problem(c.tier, s) {
            c.problems.push(p);
        }
    }
}

impl Classification {
    /// Names of the eligible roles.
    #[must_use]
    pub fn eligible_role_names(&self) -> Vec<&str> {
        self.eligible_roles
            .iter()
            .map(|r| r.role.as_str())
            .collect()
    }
}

/// `*` matches any run of characters; everything else matches itself.
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn amount_above(threshold: &Amount, amount: Option<&Amount>) -> bool {
    match amount {
        None => false,
        // Amounts in other currencies cannot be compared: the higher tier wins.
        Some(a) if a.currency != threshold.currency => true,
        Some(a) => a.value > threshold.value,
    }
}

/// Whether every present condition holds for the request.
#[must_use]
pub fn conditions_hold(c: &Conditions, r: &Request) -> bool {
    let a = &r.action;
    (c.action_type.is_empty() || c.action_type.contains(&a.kind))
        && (c.target_system.is_empty() || c.target_system.contains(&a.target.system))
        && (c.action_name.is_empty() || c.action_name.iter().any(|p| glob_match(p, &a.name)))
        && c.amount_above
            .as_ref()
            .is_none_or(|t| amount_above(t, a.amount.as_ref()))
}

/// The rules that apply to the request, in matrix order.
///
/// A tier-0 rule never applies to an action that is not a `read`, whatever its
/// conditions say: no rule can wave an action with an effect through without approval
/// (`hitl lint` reports such a rule as `write-at-tier-0`).
pub fn matching_rules<'m>(matrix: &'m Matrix, r: &Request) -> impl Iterator<Item = &'m Rule> {
    matrix.rules.iter().filter(move |rule| {
        conditions_hold(&rule.when, r) && (rule.tier > 0 || r.action.kind == ActionType::Read)
    })
}

/// Follows `escalates_to` from `start` until a role covers the amount. `None` when the
/// chain ends, loops, or names a role that does not exist. `hitl lint` asks it whether
/// every amount up to the highest limit has a role with authority (`authority-gap`).
#[must_use]
pub fn role_with_authority<'m>(
    matrix: &'m Matrix,
    start: &str,
    amount: Option<&Amount>,
) -> Option<&'m Role> {
    let mut seen: Vec<&str> = Vec::new();
    let mut name = start;
    loop {
        let role = matrix.role(name)?;
        if role.covers(amount) {
            return Some(role);
        }
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        name = role.escalates_to.as_deref()?;
    }
}

/// Classifies one request.
#[must_use]
pub fn classify(matrix: &Matrix, r: &Request) -> Classification {
    classify_at_least(matrix, r, None)
}

/// Applies a policy decision to a classification: `min_tier` may raise the tier (never
/// lower it), and each escalation makes its role's approval required.
#[must_use]
pub fn apply_policy(
    matrix: &Matrix,
    r: &Request,
    base: &Classification,
    decision: &crate::policy::Decision,
) -> Classification {
    let mut c = match decision.min_tier {
        Some(t) if t > base.tier => classify_at_least(matrix, r, Some(t)),
        _ => base.clone(),
    };
    let exclude = (!c.self_approval).then_some(r.requested_by.as_str());
    for e in &decision.escalate {
        if let Some(existing) = c.eligible_roles.iter_mut().find(|x| x.role == e.role) {
            existing.required_by_policy = Some(e.reason.clone());
            continue;
        }
        // The escalated role passes the same checks as a routed one: it must exist, have
        // authority for the amount (or escalate further), and members besides the requester.
        match eligible_role(matrix, &e.role, r.action.amount.as_ref(), exclude) {
            Ok(mut role) => {
                role.required_by_policy = Some(e.reason.clone());
                if let Some(existing) = c.eligible_roles.iter_mut().find(|x| x.role == role.role) {
                    existing.required_by_policy = role.required_by_policy;
                    continue;
                }
                c.eligible_roles.push(role);
                c.approvals_required = c.approvals_required.saturating_add(1);
                c.distinct_roles = true;
            }
            Err(mut p) => {
                p.message = format!("policy rule `{}`: {}", e.rule, p.message);
                c.problems.push(p);
            }
        }
    }
    c.problems.retain(|p| !QUORUM_CODES.contains(&p.code));
    let quorum = quorum_problems(&c);
    c.problems.extend(quorum);
    c
}

/// The problem codes [`quorum_problems`] produces.
const QUORUM_CODES: [&str; 3] = ["no-approver", "no-quorum", "empty-role"];

/// Whether the eligible roles can reach the quorum the classification asks for.
fn quorum_problems(c: &Classification) -> Vec<RoutingProblem> {
    let mut problems = Vec::new();
    let (tier_n, approvals) = (c.tier, c.approvals_required);
    if approvals == 0 {
        return problems;
    }
    let can_self = c.self_approval && c.eligible_roles.is_empty();
    if c.eligible_roles.is_empty() && !can_self {
        problems.push(RoutingProblem {
            code: "no-approver",
            message: format!("tier {tier_n} needs {approvals} approval(s) but no role is eligible"),
        });
    } else if c.distinct_roles && c.eligible_roles.len() < usize::from(approvals) {
        problems.push(RoutingProblem {
            code: "no-quorum",
            message: format!(
                "tier {tier_n} needs {approvals} approvals from distinct roles but only {} role(s) are eligible",
                c.eligible_roles.len()
            ),
        });
    }
    for e in &c.eligible_roles {
        if e.members.is_empty() {
            problems.push(RoutingProblem {
                code: "empty-role",
                message: format!(
                    "eligible role `{}` has no members (the requester does not count)",
                    e.role
                ),
            });
        }
    }
    problems
}

/// The role that may approve for `name`: itself, or the first role up its escalation
/// chain with authority for `amount`. `exclude` (the requester, unless the tier allows
/// self-approval) is never among its members: nobody approves their own request.
fn eligible_role(
    matrix: &Matrix,
    name: &str,
    amount: Option<&Amount>,
    exclude: Option<&str>,
) -> Result<EligibleRole, RoutingProblem> {
    if matrix.role(name).is_none() {
        return Err(RoutingProblem {
            code: "unknown-role",
            message: format!("approver role `{name}` is not defined in the matrix"),
        });
    }
    let role = role_with_authority(matrix, name, amount).ok_or_else(|| RoutingProblem {
        code: "over-limit",
        message: format!(
            "no role reachable from `{name}` has authority for {}",
            amount.map_or_else(String::new, ToString::to_string)
        ),
    })?;
    Ok(EligibleRole {
        role: role.name.clone(),
        members: role
            .members
            .iter()
            .filter(|m| Some(m.as_str()) != exclude)
            .cloned()
            .collect(),
        escalated_from: (role.name != name).then(|| name.to_owned()),
        required_by_policy: None,
    })
}

/// Classifies one request at `min_tier` or above.
fn classify_at_least(matrix: &Matrix, r: &Request, min_tier: Option<u8>) -> Classification {
    let rules: Vec<MatchedRule> = matching_rules(matrix, r)
        .map(|rule| MatchedRule {
            id: rule.id.clone(),
            tier: rule.tier,
        })
        .collect();
    let default_applied = rules.is_empty();
    let rule_tier = rules
        .iter()
        .map(|m| m.tier)
        .max()
        .unwrap_or(matrix.default_tier);
    let tier_n = min_tier.map_or(rule_tier, |t| t.max(rule_tier));
    let mut problems = Vec::new();
    let tier = matrix.tier(tier_n);
    let route = matrix
        .routes
        .iter()
        .find(|route| conditions_hold(&route.when, r));

    let amount = r.action.amount.as_ref();
    let (approvals, distinct, self_approval, execution) = tier.map_or(
        // Unreachable once the matrix has loaded (all tiers exist); fail closed anyway.
        (u8::MAX, true, false, Execution::HumanSupervised),
        |t| (t.approvals, t.distinct_roles, t.self_approval, t.execution),
    );
    let exclude = (!self_approval).then_some(r.requested_by.as_str());
    let mut eligible: Vec<EligibleRole> = Vec::new();
    let mut add_roles = |names: &[String], eligible: &mut Vec<EligibleRole>| {
        for name in names {
            match eligible_role(matrix, name, amount, exclude) {
                Ok(role) if eligible.iter().any(|e| e.role == role.role) => {}
                Ok(role) => eligible.push(role),
                Err(p) => problems.push(p),
            }
        }
    };
    if approvals > 0 {
        match route {
            Some(route) => {
                add_roles(&route.approvers, &mut eligible);
                // A route naming fewer roles than the tier's distinct quorum is completed
                // by the tier's own approver roles.
                if distinct
                    && eligible.len() < usize::from(approvals)
                    && let Some(t) = tier
                {
                    add_roles(&t.approver_roles, &mut eligible);
                }
            }
            None => {
                if let Some(t) = tier {
                    add_roles(&t.approver_roles, &mut eligible);
                }
            }
        }
    }

    let mut required: Vec<String> = tier.map(|t| t.evidence.clone()).unwrap_or_default();
    if tier.is_some_and(|t| t.rollback_required) && !required.iter().any(|e| e == "rollback") {
        required.push("rollback".to_owned());
    }
    let missing = required
        .iter()
        .filter(|f| !r.has_evidence(f))
        .cloned()
        .collect();
    let mut c = Classification {
        tier: tier_n,
        tier_name: tier.map_or_else(String::new, |t| t.name.clone()),
        raised_by_policy_from: (tier_n != rule_tier).then_some(rule_tier),
        rules,
        default_applied,
        workflow: route.map(|r| r.workflow.clone()),
        approvals_required: approvals,
        eligible_roles: eligible,
        distinct_roles: distinct,
        self_approval,
        execution,
        change_window: route
            .and_then(|r| r.change_window.clone())
            .or_else(|| tier.and_then(|t| t.change_window.clone())),
        required_evidence: required,
        missing_evidence: missing,
        problems,
        sample: None,
    };
    let quorum = quorum_problems(&c);
    c.problems.extend(quorum);
    c
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        assert!(glob_match("payments.refund", "payments.refund"));
        assert!(!glob_match("payments.refund", "payments.refund2"));
        assert!(glob_match(
            "erp.vendor_payment*",
            "erp.vendor_payment.create"
        ));
        assert!(glob_match("*.refund", "payments.refund"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcd"));
        assert!(glob_match("*", "anything"));
    }
}
