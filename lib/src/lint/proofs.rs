//! What `hitl lint` proves about a matrix, beyond its anti-patterns: that every route and
//! every tier a request can fall to has enough distinct people to give the approvals it
//! asks for (`quorum-unreachable`), that no principal stands for two roles of a
//! distinct-role quorum it could not otherwise reach (`one-principal-quorum`), and that
//! every amount up to the highest limit has a role with authority (`authority-gap`).
//!
//! The quorum proof asks the classifier itself: it classifies one witness request for
//! every way the matrix's conditions can tell requests apart (below), so the tier, the
//! route, the limit escalation and the eligible roles are exactly what `propose` would
//! get. A witness is a request that could really be proposed, so every finding names a
//! request the matrix can never approve.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};

use super::{Finding, Severity};
use crate::classify::{Classification, classify, glob_match, role_with_authority};
use crate::diag::Pos;
use crate::matrix::{Conditions, Matrix};
use crate::request::{ActionType, Agent, Amount, Request, Target, is_tool_name};

/// A request that tells the matrix's conditions apart: one per class of requests the
/// rules and routes treat alike.
struct Witness {
    kind: ActionType,
    system: String,
    /// The action's name, and whether it stands for a pattern of a rule or route (so a
    /// message names it) or for every name no pattern matches.
    name: String,
    named: bool,
    amount: Option<Amount>,
}

impl Witness {
    /// How a message names the witness: `` `update` on `crm` of 5500.00 EUR ``.
    fn describe(&self) -> String {
        let mut s = format!("`{}` on `{}`", self.kind, self.system);
        if self.named {
            s.push_str(&format!(" named `{}`", self.name));
        }
        if let Some(a) = &self.amount {
            s.push_str(&format!(" of {a}"));
        }
        s
    }

    fn request(&self, requester: &str) -> Request {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        Request {
            id: "hitl-lint-witness".to_owned(),
            requested_by: requester.to_owned(),
            requested_at: at,
            agent: Agent {
                id: "hitl-lint".to_owned(),
                model: "hitl-lint".to_owned(),
                app: None,
                prompt_template: None,
            },
            action: crate::request::Action {
                kind: self.kind,
                name: self.name.clone(),
                target: Target {
                    system: self.system.clone(),
                    object: "hitl-lint".to_owned(),
                },
                parameters: serde_json::Value::Null,
                amount: self.amount.clone(),
            },
            input_summary: String::new(),
            sources: Vec::new(),
            change: None,
            impact: None,
            alternatives: Vec::new(),
            rollback: None,
            risk_analysis: None,
            test_result: None,
            hazard_check: None,
            manual_override: None,
            expires_at: at + chrono::Duration::days(1),
        }
    }
}

/// Every condition of the matrix: the rules' and the routes'.
fn conditions(m: &Matrix) -> Vec<&Conditions> {
    m.rules
        .iter()
        .map(|r| &r.when)
        .chain(m.routes.iter().map(|r| &r.when))
        .collect()
}

/// The first of each group of `items` that `signature` does not tell apart.
fn one_per_class<T, K: Ord>(items: Vec<T>, signature: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(signature(i)))
        .collect()
}

/// One action type for each way the conditions treat action types (a `read` always on
/// its own: only it can get a tier-0 rule).
fn action_types(conds: &[&Conditions]) -> Vec<ActionType> {
    let all: Vec<ActionType> = ActionType::ALL
        .iter()
        .filter_map(|w| w.parse().ok())
        .collect();
    one_per_class(all, |k| {
        let mut sig = vec![*k == ActionType::Read];
        sig.extend(
            conds
                .iter()
                .map(|c| c.action_type.is_empty() || c.action_type.contains(k)),
        );
        sig
    })
}

/// One target system for each way the conditions treat systems.
fn systems(m: &Matrix, conds: &[&Conditions]) -> Vec<String> {
    one_per_class(m.systems.clone(), |s| {
        conds
            .iter()
            .map(|c| c.target_system.is_empty() || c.target_system.contains(s))
            .collect::<Vec<bool>>()
    })
}

/// A name for every action-name pattern (its `*` filled in) and one no pattern matches,
/// one for each set of patterns they match.
fn names(conds: &[&Conditions]) -> Vec<(String, bool)> {
    let patterns: Vec<&String> = conds.iter().flat_map(|c| &c.action_name).collect();
    // A name no pattern matches, if one of a few differently shaped names is (a `*`
    // pattern matches every name: then there is no such class).
    let other = ["hitl-lint.other", "other", "0", "_"]
        .into_iter()
        .find(|n| !patterns.iter().any(|p| glob_match(p, n)));
    // The unnamed one first: a message's example names an action only when it must.
    let candidates: Vec<(String, bool)> = other
        .map(|n| (n.to_owned(), false))
        .into_iter()
        .chain(
            patterns
                .iter()
                .map(|p| (p.replace('*', "x"), true))
                .filter(|(n, _)| is_tool_name(n)),
        )
        .collect();
    one_per_class(candidates, |(n, _)| {
        patterns
            .iter()
            .map(|p| glob_match(p, n))
            .collect::<Vec<bool>>()
    })
}

/// The highest limit of each currency any role's `limits` name.
fn highest_limits(m: &Matrix) -> BTreeMap<&str, f64> {
    let mut out: BTreeMap<&str, f64> = BTreeMap::new();
    for (currency, limit) in m.roles.iter().flat_map(|r| &r.limits) {
        let max = out.entry(currency.as_str()).or_insert(*limit);
        *max = max.max(*limit);
    }
    out
}

/// No amount; in each currency of a role's `limits`, every limit and threshold from 0 up
/// to the highest limit and a value between each two of them (so every amount in that
/// range is treated like one of them: limits hold up to and including their value,
/// thresholds above theirs); and each `amount_above` threshold with a value just above
/// it, to reach the tiers only large amounts get.
fn amounts(m: &Matrix, conds: &[&Conditions]) -> Vec<Option<Amount>> {
    let amount = |value: f64, currency: &str| {
        Some(Amount {
            value,
            currency: currency.to_owned(),
        })
    };
    let thresholds: Vec<&Amount> = conds
        .iter()
        .filter_map(|c| c.amount_above.as_ref())
        .collect();
    let mut out = vec![None];
    for (currency, max) in highest_limits(m) {
        let mut points: Vec<f64> = std::iter::once(0.0)
            .chain(
                m.roles
                    .iter()
                    .filter_map(|r| r.limits.get(currency).copied()),
            )
            .chain(
                thresholds
                    .iter()
                    .filter(|t| t.currency == currency && t.value <= max)
                    .map(|t| t.value),
            )
            .collect();
        points.sort_by(f64::total_cmp);
        points.dedup();
        for (i, p) in points.iter().enumerate() {
            out.push(amount(*p, currency));
            if let Some(next) = points.get(i + 1) {
                out.push(amount(p + (next - p) / 2.0, currency));
            }
        }
    }
    for t in thresholds {
        out.push(amount(t.value, &t.currency));
        out.push(amount(t.value + 1.0, &t.currency));
    }
    let mut seen = Vec::new();
    out.retain(|a| {
        let new = !seen.contains(a);
        if new {
            seen.push(a.clone());
        }
        new
    });
    out
}

/// The most witness requests the quorum proof classifies: a matrix people write has a
/// few thousand (the example about 2,000); one that tells millions of requests apart
/// would make `lint` hang, and is reported unproved instead.
const MAX_WITNESSES: usize = 100_000;

/// Every witness request of the matrix, or how many there would be when that is more
/// than [`MAX_WITNESSES`].
fn witnesses(m: &Matrix) -> Result<Vec<Witness>, usize> {
    let conds = conditions(m);
    let (kinds, systems, names, amounts) = (
        action_types(&conds),
        systems(m, &conds),
        names(&conds),
        amounts(m, &conds),
    );
    let count = [systems.len(), names.len(), amounts.len()]
        .into_iter()
        .fold(kinds.len(), usize::saturating_mul);
    if count > MAX_WITNESSES {
        return Err(count);
    }
    let mut out = Vec::with_capacity(count);
    for kind in &kinds {
        for system in &systems {
            for (name, named) in &names {
                for amount in &amounts {
                    out.push(Witness {
                        kind: *kind,
                        system: system.clone(),
                        name: name.clone(),
                        named: *named,
                        amount: amount.clone(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A requester who holds no role, administers nothing and is no agent: the requester
/// who leaves every eligible member able to approve.
fn outside_requester(m: &Matrix) -> String {
    let mut who = "requester@hitl-lint.invalid".to_owned();
    while m.roles_of(&who).next().is_some()
        || m.governance.is_admin(&who)
        || m.governance.is_agent(&who)
    {
        who.insert(0, 'x');
    }
    who
}

/// The classifier's problems another finding already reports for the matrix: a role
/// that does not exist (`unknown-role`), has no members (`empty-role`, the requester
/// being nobody's member), or lacks authority for the amount (`authority-gap`, or above
/// the highest limit, where nobody is meant to have it).
const REPORTED_ELSEWHERE: [&str; 3] = ["unknown-role", "empty-role", "over-limit"];

/// Whether, and how, a classification's quorum can be reached.
enum Quorum {
    Reachable,
    /// At most `at_most` approvals can be given.
    Unreachable {
        at_most: usize,
    },
    /// There are as many eligible roles as approvals, but these principals hold several
    /// of them, so only `at_most` different people can give them.
    SharedPrincipals {
        at_most: usize,
        shared: Vec<(String, Vec<String>)>,
    },
}

impl Quorum {
    const fn at_most(&self) -> usize {
        match self {
            Self::Reachable => usize::MAX,
            Self::Unreachable { at_most } | Self::SharedPrincipals { at_most, .. } => *at_most,
        }
    }
}

/// Who else never approves, for each principal that may submit: the owner of each agent
/// in `governance.agents` (`None` for an agent without one), or nobody when the matrix
/// lists no agents (then anyone outside the roles may submit).
fn owner_exclusions(m: &Matrix) -> Vec<Option<&str>> {
    let mut out: Vec<Option<&str>> = Vec::new();
    if m.governance.agents.is_empty() {
        out.push(None);
    }
    for agent in &m.governance.agents {
        let owner = m.governance.owner_of(agent);
        if !out.contains(&owner) {
            out.push(owner);
        }
    }
    out
}

/// The quorum of the request as the best placed submitter would get it: reachable when
/// it is for some submitter, else the one that gets furthest, and whether it is
/// reachable at all when the agents' owners are not left out (for the message).
fn best_quorum(m: &Matrix, c: &Classification, owners: &[Option<&str>]) -> (Quorum, bool) {
    let mut best: Option<Quorum> = None;
    for owner in owners {
        let q = quorum(m, c, *owner);
        if matches!(q, Quorum::Reachable) {
            return (q, false);
        }
        if best.as_ref().is_none_or(|b| q.at_most() > b.at_most()) {
            best = Some(q);
        }
    }
    let without_owners = matches!(quorum(m, c, None), Quorum::Reachable);
    (best.unwrap_or_else(|| quorum(m, c, None)), without_owners)
}

/// The quorum the engine's rules allow: each principal approves once whatever roles it
/// holds, with distinct roles each role gives one approval, no agent decides, neither
/// does `owner` (the owner of the submitting agent), and the requester (nobody's member
/// here) approves only where the tier has `self_approval`. With distinct roles that is a
/// matching between roles and principals.
fn quorum(m: &Matrix, c: &Classification, owner: Option<&str>) -> Quorum {
    let need = usize::from(c.approvals_required);
    let roles: Vec<(&str, Vec<&str>)> = c
        .eligible_roles
        .iter()
        .map(|e| {
            let members = e
                .members
                .iter()
                .map(String::as_str)
                .filter(|p| !m.governance.is_agent(p) && Some(*p) != owner)
                .collect::<Vec<&str>>();
            (e.role.as_str(), members)
        })
        .filter(|(_, members)| !members.is_empty())
        .collect();
    let requester = usize::from(c.self_approval);
    // The classifier's own quorum problems: `propose` blocks such a request.
    let refused = c
        .problems
        .iter()
        .any(|p| p.code == "no-approver" || p.code == "no-quorum");
    if !c.distinct_roles {
        let people: BTreeSet<&str> = roles
            .iter()
            .flat_map(|(_, ms)| ms.iter().copied())
            .collect();
        let at_most = people.len() + requester;
        return if refused || at_most < need {
            Quorum::Unreachable { at_most }
        } else {
            Quorum::Reachable
        };
    }
    let at_most = max_matching(&roles) + requester;
    if !refused && at_most >= need {
        return Quorum::Reachable;
    }
    if refused || roles.len() + requester < need {
        return Quorum::Unreachable { at_most };
    }
    let mut held: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (role, members) in &roles {
        for p in members {
            held.entry(p).or_default().push((*role).to_owned());
        }
    }
    let shared = held
        .into_iter()
        .filter(|(_, rs)| rs.len() > 1)
        .map(|(p, rs)| (p.to_owned(), rs))
        .collect();
    Quorum::SharedPrincipals { at_most, shared }
}

/// The most roles that can each get an approval from a different member (Kuhn's
/// augmenting paths; a matrix has a handful of roles).
fn max_matching(roles: &[(&str, Vec<&str>)]) -> usize {
    fn augment<'a>(
        role: usize,
        roles: &[(&str, Vec<&'a str>)],
        seen: &mut BTreeSet<&'a str>,
        owner: &mut BTreeMap<&'a str, usize>,
    ) -> bool {
        let Some((_, members)) = roles.get(role) else {
            return false;
        };
        for p in members {
            if !seen.insert(p) {
                continue;
            }
            let free = match owner.get(p) {
                None => true,
                Some(&other) => augment(other, roles, seen, owner),
            };
            if free {
                owner.insert(p, role);
                return true;
            }
        }
        false
    }
    let mut owner = BTreeMap::new();
    (0..roles.len())
        .filter(|&r| augment(r, roles, &mut BTreeSet::new(), &mut owner))
        .count()
}

fn backticked<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `quorum-unreachable` and `one-principal-quorum`: for every witness request the
/// classifier gives a tier with approvals, the approvals can be given by distinct
/// eligible people. One finding per route (or, for requests no route owns, per tier)
/// and tier, for the first witness that fails.
pub(super) fn quorum_findings(m: &Matrix, file: &Path) -> Vec<Finding> {
    let witnesses = match witnesses(m) {
        Ok(w) => w,
        Err(count) => {
            return vec![
                Finding::new(
                    Severity::Warning,
                    "quorum-not-proved",
                    file,
                    Pos::new(1, 1),
                    format!(
                        "the matrix's conditions tell {count} kinds of request apart, more than the {MAX_WITNESSES} lint classifies: quorums are not proved"
                    ),
                )
                .hint("fewer distinct `target_system`, `action_name`, `amount_above` and `limits` values make the matrix provable (and easier to review)"),
            ];
        }
    };
    let requester = outside_requester(m);
    let owners = owner_exclusions(m);
    let mut found: BTreeMap<(u64, u64, u8), Finding> = BTreeMap::new();
    for w in witnesses {
        let c = classify(m, &w.request(&requester));
        if c.approvals_required == 0
            || c.problems
                .iter()
                .any(|p| REPORTED_ELSEWHERE.contains(&p.code))
        {
            continue;
        }
        let (place, pos) = match c
            .workflow
            .as_deref()
            .and_then(|name| m.routes.iter().find(|r| r.workflow == name))
        {
            Some(route) => (format!("route `{}`", route.workflow), route.pos),
            None => match m.tier(c.tier) {
                Some(t) => ("a request no route owns".to_owned(), t.pos),
                None => continue,
            },
        };
        let key = (pos.line, pos.column, c.tier);
        if found.contains_key(&key) {
            continue;
        }
        let need = c.approvals_required;
        let asked = if c.distinct_roles {
            format!("tier {}'s {need} approval(s) from distinct roles", c.tier)
        } else {
            format!("tier {}'s {need} approval(s)", c.tier)
        };
        let (verdict, for_owners) = best_quorum(m, &c, &owners);
        let owned = if for_owners {
            let names: Vec<&str> = owners.iter().flatten().copied().collect();
            format!(
                " (the owners of the agents that may submit it, {}, never approve it)",
                backticked(&names)
            )
        } else {
            String::new()
        };
        let finding = match verdict {
            Quorum::Reachable => continue,
            Quorum::Unreachable { at_most } => {
                let mut who = if c.eligible_roles.is_empty() {
                    "no role".to_owned()
                } else {
                    format!("eligible roles {}", backticked(&c.eligible_role_names()))
                };
                if c.self_approval {
                    who.push_str(" and the requester");
                }
                Finding::new(
                    Severity::Error,
                    "quorum-unreachable",
                    file,
                    pos,
                    format!(
                        "{place}: {asked} cannot be given: {who} can give at most {at_most}{owned}, for example for {}",
                        w.describe()
                    ),
                )
                .hint("give the eligible roles more members, name more roles, or ask for fewer `approvals`: nobody can approve such a request")
            }
            Quorum::SharedPrincipals { at_most, shared } => {
                let holders = shared
                    .iter()
                    .map(|(p, roles)| format!("`{p}` holds roles {}", backticked(roles)))
                    .collect::<Vec<_>>()
                    .join("; ");
                Finding::new(
                    Severity::Error,
                    "one-principal-quorum",
                    file,
                    pos,
                    format!(
                        "{place}: {holders}, so {asked} can come from at most {at_most} different principal(s){owned}, for example for {}",
                        w.describe()
                    ),
                )
                .hint("one principal counts once, whatever roles it holds: give each of these roles a member of its own")
            }
        };
        found.insert(key, finding);
    }
    found.into_values().collect()
}

/// Why an escalation chain stops.
enum Stop<'m> {
    End,
    Cycle(&'m str),
    Unknown(&'m str),
}

/// `authority-gap`: in each currency a role's `limits` name, every amount from 0 up to
/// the highest limit has a role with authority on the escalation chain of every role a
/// route or a tier with approvals names. Reported at the role where the chain stops.
pub(super) fn authority_findings(m: &Matrix, file: &Path) -> Vec<Finding> {
    let mut starts: Vec<&str> = Vec::new();
    let named = m.routes.iter().flat_map(|r| &r.approvers).chain(
        m.tiers
            .iter()
            .filter(|t| t.approvals > 0)
            .flat_map(|t| &t.approver_roles),
    );
    for name in named {
        if !starts.contains(&name.as_str()) {
            starts.push(name);
        }
    }
    let mut out = Vec::new();
    let mut seen: Vec<(&str, &str, Option<u64>)> = Vec::new();
    for (currency, max) in highest_limits(m) {
        let highest = Amount {
            value: max,
            currency: currency.to_owned(),
        };
        for start in &starts {
            if m.role(start).is_none() || role_with_authority(m, start, Some(&highest)).is_some() {
                continue;
            }
            // Nobody on the chain covers the highest limit; walk it to say where it stops
            // and up to which amount it does cover (the highest limit on it).
            let mut chain: Vec<&str> = vec![start];
            let mut covered: Option<f64> = None;
            let (last, stop) = loop {
                let Some(role) = chain.last().and_then(|name| m.role(name)) else {
                    break (None, Stop::End);
                };
                if let Some(l) = role.limits.get(currency) {
                    covered = Some(covered.map_or(*l, |c| c.max(*l)));
                }
                match role.escalates_to.as_deref() {
                    None => break (Some(role), Stop::End),
                    Some(next) if m.role(next).is_none() => {
                        break (Some(role), Stop::Unknown(next));
                    }
                    Some(next) if chain.contains(&next) => break (Some(role), Stop::Cycle(next)),
                    Some(next) => chain.push(next),
                }
            };
            let Some(last) = last else { continue };
            let key = (last.name.as_str(), currency, covered.map(f64::to_bits));
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let why = match stop {
                Stop::End => format!("role `{}` escalates to no role", last.name),
                Stop::Cycle(next) => format!("role `{}` escalates back to `{next}`", last.name),
                Stop::Unknown(next) => format!(
                    "role `{}` escalates to role `{next}`, which does not exist",
                    last.name
                ),
            };
            let from = covered.map_or_else(
                || format!("from 0.00 {currency}"),
                |c| format!("above {c:.2} {currency}"),
            );
            let chain = chain
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" → ");
            out.push(
                Finding::new(
                    Severity::Error,
                    "authority-gap",
                    file,
                    last.pos,
                    format!(
                        "{why}, so amounts {from} up to {highest} (the highest {currency} limit) have nobody with authority on the escalation chain {chain}"
                    ),
                )
                .hint("let the chain reach a role whose limit covers the highest limit (or that has no `limits`), or raise the limit of one on it"),
            );
        }
    }
    out.sort_by_key(|f| (f.line, f.column));
    out
}

#[cfg(test)]
mod tests {
    use super::{max_matching, names};
    use crate::matrix::Conditions;

    #[test]
    fn a_pattern_matching_every_name_leaves_no_unnamed_witness() {
        let named = |patterns: &[&str]| Conditions {
            action_name: patterns.iter().map(|p| (*p).to_owned()).collect(),
            ..Conditions::default()
        };
        let (all, some) = (named(&["*"]), named(&["payments.*", "hitl-lint*"]));
        assert_eq!(names(&[&all]), [("x".to_owned(), true)]);
        assert_eq!(
            names(&[&some]),
            [
                ("other".to_owned(), false),
                ("payments.x".to_owned(), true),
                ("hitl-lintx".to_owned(), true)
            ]
        );
    }

    #[test]
    fn a_principal_in_two_roles_fills_one() {
        assert_eq!(max_matching(&[("a", vec!["p"]), ("b", vec!["p"])]), 1);
        assert_eq!(max_matching(&[("a", vec!["p"]), ("b", vec!["p", "q"])]), 2);
        // The first role's greedy pick has to move for the third to be filled.
        assert_eq!(
            max_matching(&[
                ("a", vec!["p", "q"]),
                ("b", vec!["p"]),
                ("c", vec!["q", "r"])
            ]),
            3
        );
        assert_eq!(max_matching(&[]), 0);
    }
}
