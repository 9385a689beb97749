//! `hitl stats`: per tier, how the approval rules behave in practice (how many requests,
//! how many approved, how fast they are decided, how many expire, escalate, are sent
//! back for changes or overridden, and why they are rejected or sent back), so that a
//! team sees which rules are too loose, too noisy or too slow.
//!
//! Every figure comes from the workflow engine: each request's state is folded by
//! [`state_at`](super::engine::state_at) at HEAD (on all cores, as `queue` folds) and
//! judged at `now` by [`State::outcome`], never read from a recorded field. A request
//! counts once, under the tier and outcome of its latest version (the engine's state is
//! that version's). Only for a request the engine did not find inconsistent (every
//! recorded decision of it accepted again) are the decision events' `at` and
//! `reason_code` read. docs/cli.md defines each figure.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::config::Configs;
use super::engine::{Derived, Outcome, State, check_governed, parse_at};
use super::{Verdict, WorkflowError, queue, types};
use crate::audit::{AuditError, AuditRepo, Event};

/// How many reason codes of rejections (and of requests for changes) a tier lists.
pub const TOP_REASONS: usize = 3;

/// One request as the engine folds it from the audit at HEAD, judged at `now`.
#[derive(Debug, Clone)]
pub struct RequestStatus {
    pub request: String,
    pub state: State,
    pub outcome: Outcome,
    pub events: Vec<Event>,
}

/// Every request of the audit at HEAD (the entries of its `requests/` index, in name
/// order), folded by the engine and judged at `now`; empty without a commit.
///
/// The history is checked first, once, as a decision checks it ([`check_governed`]):
/// an audit or configuration changed as no append or admin may yields no figures.
///
/// # Errors
/// The refusal of [`check_governed`]; an unreadable or broken audit.
pub fn statuses(repo: &AuditRepo, now: DateTime<Utc>) -> Result<Vec<RequestStatus>, WorkflowError> {
    let Some(head) = repo.head_for_reading()? else {
        return Ok(Vec::new());
    };
    let tree = head.tree().map_err(AuditError::from)?;
    let mut configs = Configs::default();
    check_governed(repo, &mut configs, &head)?;
    let ids = queue::request_ids(repo, &tree)?;
    Ok(queue::fold_all(repo, &head, configs, &ids, now)?
        .into_iter()
        .map(|(request, state, events)| RequestStatus {
            outcome: state.outcome(now),
            request,
            state,
            events,
        })
        .collect())
}

/// The figures of `hitl stats`: one row per tier that has a request in the window, in
/// tier order, and the requests the engine found inconsistent (counted apart, never in
/// a tier's rates: their facts are not trusted, their tier included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// The instant outcomes are judged at.
    #[serde(serialize_with = "stamp")]
    pub as_of: DateTime<Utc>,
    /// Only requests whose latest version was proposed at or after this instant.
    #[serde(serialize_with = "stamp_opt")]
    pub since: Option<DateTime<Utc>>,
    pub tiers: Vec<TierStats>,
    pub inconsistent: Vec<Inconsistent>,
}

/// One tier's figures. Each request counts once, in the tier of its latest version, and
/// in exactly one of the outcome counts (`approved` to `proceeds`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierStats {
    pub tier: u8,
    /// Requests in the window (and consistent).
    pub requests: usize,
    pub approved: usize,
    pub rejected: usize,
    /// The latest version was sent back by request-changes (no new version yet).
    pub changes_requested: usize,
    /// Let proceed by a break-glass override.
    pub overridden: usize,
    /// Still awaiting a decision at `as_of`.
    pub pending: usize,
    /// Outcome `expired` at `as_of`.
    pub expired: usize,
    pub blocked: usize,
    pub proceeds: usize,
    /// `approved / (approved + rejected)`; `None` when nothing was decided.
    pub approval_rate: Option<f64>,
    /// From the latest version's proposal to the decision that closed it, over
    /// approved, rejected and changes-requested requests.
    pub time_to_decision: TimeToDecision,
    /// Requests escalated (by their pending timeout, or by hand) when they closed (or
    /// at `as_of`).
    pub escalated: usize,
    /// Overridden requests whose review is still owed past its due time at `as_of`.
    pub overdue_reviews: usize,
    /// Versions closed by request-changes, over the whole history of the tier's
    /// requests (a request sent back twice counts 2).
    pub changes_requested_versions: usize,
    /// Up to [`TOP_REASONS`] reason codes of rejections, most frequent first, ties in
    /// alphabetical order.
    pub top_rejection_reasons: Vec<ReasonCount>,
    /// The same for the requests for changes, over the whole history of the tier's
    /// requests.
    pub top_change_reasons: Vec<ReasonCount>,
}

/// Time to decision, in whole seconds, by nearest rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeToDecision {
    /// How many decided requests the figures are over.
    pub decided: usize,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    pub code: String,
    pub count: usize,
}

/// A request the engine takes no decision on: its record disagrees with the
/// recomputation, or one of its recorded decisions does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inconsistent {
    pub request: String,
    pub reason: String,
}

/// The figures of the audit at HEAD at `now`, over the requests whose latest version
/// was proposed at or after `since`.
///
/// # Errors
/// As [`statuses`].
pub fn stats(
    repo: &AuditRepo,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Stats, WorkflowError> {
    Ok(summarize(&statuses(repo, now)?, since, now))
}

/// What one consistent request adds to its tier.
struct Facts {
    tier: u8,
    outcome: Outcome,
    /// Seconds from the latest version's proposal to the decision that closed it.
    decided_in: Option<i64>,
    escalated: bool,
    overdue_review: bool,
    rejection_code: Option<String>,
    /// The reason codes of every request for changes in its history, one per version
    /// it closed.
    change_codes: Vec<String>,
}

/// The figures of `requests` (as [`statuses`] gives them, judged at `now`) whose latest
/// version was proposed at or after `since`.
#[must_use]
pub fn summarize(
    requests: &[RequestStatus],
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Stats {
    let before = |at: DateTime<Utc>| since.is_some_and(|since| at < since);
    let mut tiers: BTreeMap<u8, Vec<Facts>> = BTreeMap::new();
    let mut inconsistent = Vec::new();
    for r in requests {
        match (&r.outcome, r.state.derived.as_ref()) {
            (Outcome::Inconsistent(why), _) => {
                // Only a readable proposal time filters an inconsistent request out: no
                // window hides a broken record.
                if latest_proposal_time(&r.events).is_some_and(before) {
                    continue;
                }
                inconsistent.push(Inconsistent {
                    request: r.request.clone(),
                    reason: why.clone(),
                });
            }
            (_, Some(Ok(derived))) if r.outcome != Outcome::NotProposed => {
                if before(derived.proposed_at) {
                    continue;
                }
                let facts = facts(r, derived, now);
                tiers.entry(facts.tier).or_default().push(facts);
            }
            // Events under an id with no proposal: the engine knows no such request.
            _ => inconsistent.push(Inconsistent {
                request: r.request.clone(),
                reason: "its events include no proposal".to_owned(),
            }),
        }
    }
    Stats {
        as_of: now,
        since,
        tiers: tiers
            .into_iter()
            .map(|(tier, facts)| tier_stats(tier, &facts))
            .collect(),
        inconsistent,
    }
}

/// The `at` of a request's last `proposed` event, when it reads as a time.
fn latest_proposal_time(events: &[Event]) -> Option<DateTime<Utc>> {
    events
        .iter()
        .rfind(|e| e.kind == types::PROPOSED)
        .and_then(|e| parse_at(&e.at).ok())
}

/// The events of the latest version: from its `proposed` event on.
fn latest_version(events: &[Event]) -> &[Event] {
    let start = events
        .iter()
        .rposition(|e| e.kind == types::PROPOSED)
        .unwrap_or(0);
    events.get(start..).unwrap_or_default()
}

fn verdict(e: &Event) -> Option<Verdict> {
    if e.kind != types::DECISION {
        return None;
    }
    e.field_str("decision").and_then(Verdict::parse)
}

fn facts(r: &RequestStatus, derived: &Derived, now: DateTime<Utc>) -> Facts {
    let closing = closing_decision(latest_version(&r.events), &r.outcome, derived);
    let closed_at = match &r.outcome {
        Outcome::Overridden(o) => Some(o.at),
        _ => closing.and_then(|e| parse_at(&e.at).ok()),
    };
    // Time to decision is the approvers' own: an override is not one of their decisions.
    let decided_in = match &r.outcome {
        Outcome::Approved | Outcome::Rejected { .. } | Outcome::ChangesRequested { .. } => {
            closed_at.map(|to| (to - derived.proposed_at).num_seconds())
        }
        _ => None,
    };
    // Only a request that waited for a decision can have been escalated; the engine's
    // facts of the latest version hold a manual escalation too (its pending timeout
    // brought forward).
    let escalated = match &r.outcome {
        Outcome::Approved
        | Outcome::Rejected { .. }
        | Outcome::ChangesRequested { .. }
        | Outcome::Overridden(_) => closed_at.is_some_and(|at| derived.escalated_at(at)),
        Outcome::Expired { at } => derived.escalated_at(*at),
        Outcome::Pending { .. } => derived.escalated_at(now),
        _ => false,
    };
    let rejection_code = match &r.outcome {
        Outcome::Rejected { .. } => closing
            .and_then(|e| e.field_str("reason_code"))
            .map(str::to_owned),
        _ => None,
    };
    // Each request for changes closed one version: every one the engine accepted.
    let change_codes = r
        .events
        .iter()
        .filter(|e| verdict(e) == Some(Verdict::RequestChanges))
        .map(|e| e.field_str("reason_code").unwrap_or_default().to_owned())
        .collect();
    Facts {
        tier: derived.tier,
        outcome: r.outcome.clone(),
        decided_in,
        escalated,
        overdue_review: matches!(&r.outcome, Outcome::Overridden(o) if o.overdue(now)),
        rejection_code,
        change_codes,
    }
}

/// The decision event of the latest version (`events`) that closed the request: its
/// rejection or request for changes, or the approval that reached the quorum. The
/// engine accepted every decision of a consistent request, in order, so counting them
/// is counting what it counted.
fn closing_decision<'e>(
    events: &'e [Event],
    outcome: &Outcome,
    derived: &Derived,
) -> Option<&'e Event> {
    let mut decisions = events.iter().filter(|e| verdict(e).is_some());
    let want = match outcome {
        Outcome::Rejected { .. } => Verdict::Reject,
        Outcome::ChangesRequested { .. } => Verdict::RequestChanges,
        Outcome::Approved => {
            return decisions
                .filter(|e| verdict(e) == Some(Verdict::Approve))
                .nth(usize::from(derived.approvals_required).checked_sub(1)?);
        }
        _ => return None,
    };
    decisions.find(|e| verdict(e) == Some(want))
}

/// The `n` most frequent of `codes`, ties in alphabetical order; an empty code (a
/// decision recorded without one) is not listed.
fn top<'c>(codes: impl Iterator<Item = &'c str>, n: usize) -> Vec<ReasonCount> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for code in codes.filter(|c| !c.is_empty()) {
        *counts.entry(code).or_default() += 1;
    }
    // The map is in alphabetical order and the sort is stable: ties stay alphabetical.
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
        .into_iter()
        .take(n)
        .map(|(code, count)| ReasonCount {
            code: code.to_owned(),
            count,
        })
        .collect()
}

fn tier_stats(tier: u8, facts: &[Facts]) -> TierStats {
    let count = |want: fn(&Outcome) -> bool| facts.iter().filter(|f| want(&f.outcome)).count();
    let approved = count(|o| matches!(o, Outcome::Approved));
    let rejected = count(|o| matches!(o, Outcome::Rejected { .. }));
    let mut times: Vec<i64> = facts.iter().filter_map(|f| f.decided_in).collect();
    times.sort_unstable();
    TierStats {
        tier,
        requests: facts.len(),
        approved,
        rejected,
        changes_requested: count(|o| matches!(o, Outcome::ChangesRequested { .. })),
        overridden: count(|o| matches!(o, Outcome::Overridden(_))),
        pending: count(|o| matches!(o, Outcome::Pending { .. })),
        expired: count(|o| matches!(o, Outcome::Expired { .. })),
        blocked: count(|o| matches!(o, Outcome::Blocked)),
        proceeds: count(|o| matches!(o, Outcome::Proceeds)),
        approval_rate: rate(approved, approved + rejected),
        time_to_decision: TimeToDecision {
            decided: times.len(),
            median_seconds: nearest_rank(&times, 50),
            p90_seconds: nearest_rank(&times, 90),
        },
        escalated: facts.iter().filter(|f| f.escalated).count(),
        overdue_reviews: facts.iter().filter(|f| f.overdue_review).count(),
        changes_requested_versions: facts.iter().map(|f| f.change_codes.len()).sum(),
        top_rejection_reasons: top(
            facts.iter().filter_map(|f| f.rejection_code.as_deref()),
            TOP_REASONS,
        ),
        top_change_reasons: top(
            facts
                .iter()
                .flat_map(|f| f.change_codes.iter().map(String::as_str)),
            TOP_REASONS,
        ),
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "counts of requests are far below 2^52"
)]
fn rate(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The `p`th percentile of `sorted` (ascending) by nearest rank: the smallest value
/// with at least `p`% of the values at or below it (rank `ceil(p/100 × n)`).
fn nearest_rank(sorted: &[i64], p: usize) -> Option<i64> {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn stamp<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[allow(
    clippy::ref_option,
    reason = "serde's serialize_with passes a reference"
)]
fn stamp_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => stamp(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, ConfigVersions};

    fn at(s: &str) -> DateTime<Utc> {
        parse_at(s).unwrap()
    }

    fn event(kind: &str, at: &str, fields: serde_json::Value) -> Event {
        Event {
            seq: 0,
            prev: String::new(),
            kind: kind.to_owned(),
            request: "r".to_owned(),
            at: at.to_owned(),
            actor: Actor {
                principal: "p@example.com".to_owned(),
                key: String::new(),
            },
            config: ConfigVersions {
                matrix: String::new(),
                policies: String::new(),
                tool: String::new(),
            },
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    /// Proposed at midnight; its pending timeout ends at 08:00 and then expires it, or
    /// escalates it with `escalate`.
    fn derived(tier: u8, required: u8, escalate: bool) -> Derived {
        Derived {
            requested_by: "maria@example.com".to_owned(),
            submitted_by: "agent@example.com".to_owned(),
            tier,
            eligible: vec![("lead".to_owned(), vec!["lea@example.com".to_owned()])],
            approvals_required: required,
            distinct_roles: false,
            self_approval: false,
            expires_at: at("2026-01-03T00:00:00Z"),
            pending_until: Some(at("2026-01-01T08:00:00Z")),
            escalation: escalate.then(|| ("ops".to_owned(), vec![])),
            blocked: false,
            amount: None,
            stands_in_for: Vec::new(),
            agent_owner: None,
            proposed_at: at("2026-01-01T00:00:00Z"),
            action: "payments.refund".to_owned(),
            target: "payments/ch_1".to_owned(),
            policy: crate::audit::replay::of_decision(tier, None),
            sample: None,
            action_type: "send".to_owned(),
            parameters: String::new(),
            change_window: None,
            supervised: false,
            valid_for_seconds: None,
            rollback_command: Vec::new(),
            rollback_approval: false,
        }
    }

    /// A decision event: (verdict, at, reason code); an override owes one review by
    /// 10:00.
    fn decision((verdict, when, code): (&str, &str, Option<&str>)) -> Event {
        let mut fields =
            serde_json::json!({"decision": verdict, "role": "lead", "reason_code": code});
        if verdict == Verdict::Override.as_str() {
            fields["review_approvals"] = 1.into();
            fields["review_roles"] = serde_json::json!(["security"]);
            fields["review_due"] = "2026-01-01T10:00:00Z".into();
        }
        event(types::DECISION, when, fields)
    }

    /// A request whose latest version was proposed at midnight, with `decisions`.
    fn request(
        id: &str,
        d: Derived,
        decisions: &[(&str, &str, Option<&str>)],
        now: DateTime<Utc>,
    ) -> RequestStatus {
        amended(id, d, &[], decisions, now)
    }

    /// As [`request`], after earlier versions, each (proposed at, changes requested at,
    /// reason code): their decisions are in the events only, as the engine leaves them.
    fn amended(
        id: &str,
        d: Derived,
        earlier: &[(&str, &str, &str)],
        decisions: &[(&str, &str, Option<&str>)],
        now: DateTime<Utc>,
    ) -> RequestStatus {
        let mut events = Vec::new();
        let changes = Verdict::RequestChanges.as_str();
        for (proposed, when, code) in earlier {
            events.push(event(types::PROPOSED, proposed, serde_json::json!({})));
            events.push(decision((changes, when, Some(code))));
        }
        events.push(event(
            types::PROPOSED,
            "2026-01-01T00:00:00Z",
            serde_json::json!({}),
        ));
        let mut state = State {
            derived: Some(Ok(d)),
            version: u32::try_from(earlier.len()).unwrap() + 1,
            ..State::default()
        };
        for &d in decisions {
            let e = decision(d);
            state.decide(&e);
            events.push(e);
        }
        RequestStatus {
            request: id.to_owned(),
            outcome: state.outcome(now),
            state,
            events,
        }
    }

    #[test]
    fn nearest_rank_takes_the_smallest_value_covering_the_percentile() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[1, 2], 50), Some(1));
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 90), Some(9));
        let eleven: Vec<i64> = (1..=11).collect();
        assert_eq!(nearest_rank(&eleven, 90), Some(10));
    }

    #[test]
    #[allow(clippy::too_many_lines, reason = "one scenario, its figures checked")]
    fn figures_per_tier_from_the_engine_outcomes() {
        let now = at("2026-01-01T12:00:00Z");
        let rejected = Verdict::Reject.as_str();
        let approved = Verdict::Approve.as_str();
        let changes = Verdict::RequestChanges.as_str();
        let requests = vec![
            // Two approvals needed: the second one closes it, after 2 h.
            request(
                "a",
                derived(3, 2, false),
                &[
                    (approved, "2026-01-01T01:00:00Z", None),
                    (approved, "2026-01-01T02:00:00Z", None),
                ],
                now,
            ),
            request(
                "b",
                derived(3, 1, false),
                &[(rejected, "2026-01-01T00:30:00Z", Some("too-risky"))],
                now,
            ),
            // Rejected after the pending timeout, by the escalation role.
            request(
                "c",
                derived(3, 1, true),
                &[(rejected, "2026-01-01T09:00:00Z", Some("duplicate"))],
                now,
            ),
            request(
                "d",
                derived(3, 1, false),
                &[(rejected, "2026-01-01T00:10:00Z", Some("too-risky"))],
                now,
            ),
            // Expired at its pending timeout (08:00), and still open and escalated.
            request("e", derived(3, 1, false), &[], now),
            request("f", derived(3, 1, true), &[], now),
            // Version 1 sent back the evening before; version 2 (proposed at midnight)
            // approved at 03:00: once, approved, in 3 h.
            amended(
                "i",
                derived(3, 1, false),
                &[(
                    "2025-12-31T20:00:00Z",
                    "2025-12-31T22:00:00Z",
                    "narrow-scope",
                )],
                &[(approved, "2026-01-01T03:00:00Z", None)],
                now,
            ),
            // Sent back after 20 min, no new version yet.
            request(
                "j",
                derived(3, 1, false),
                &[(changes, "2026-01-01T00:20:00Z", Some("add-evidence"))],
                now,
            ),
            // Overridden after the timeout escalated it; its review was due at 10:00.
            request(
                "k",
                derived(3, 1, true),
                &[(Verdict::Override.as_str(), "2026-01-01T09:00:00Z", None)],
                now,
            ),
            request("g", derived(1, 1, false), &[], at("2026-01-01T01:00:00Z")),
            RequestStatus {
                request: "h".to_owned(),
                state: State {
                    derived: Some(Err("edited".to_owned())),
                    ..State::default()
                },
                outcome: Outcome::Inconsistent("edited".to_owned()),
                events: vec![],
            },
        ];
        let s = summarize(&requests, None, now);
        assert_eq!(s.tiers.len(), 2);
        let (one, three) = (&s.tiers[0], &s.tiers[1]);
        assert_eq!((one.tier, one.requests, one.pending), (1, 1, 1));
        assert_eq!(one.approval_rate, None);
        assert_eq!(one.time_to_decision.median_seconds, None);
        assert_eq!(three.requests, 9);
        assert_eq!(
            (
                three.approved,
                three.rejected,
                three.changes_requested,
                three.overridden,
                three.expired,
                three.pending
            ),
            (2, 3, 1, 1, 1, 1)
        );
        assert_eq!(three.approval_rate, Some(0.4));
        // 10 min, 20 min, 30 min, 2 h, 3 h, 9 h: ranks 3 and 6 of 6.
        assert_eq!(
            three.time_to_decision,
            TimeToDecision {
                decided: 6,
                median_seconds: Some(1800),
                p90_seconds: Some(9 * 3600),
            }
        );
        assert_eq!(
            three.escalated, 3,
            "c when rejected, k when overridden, f now"
        );
        assert_eq!(three.overdue_reviews, 1);
        assert_eq!(three.changes_requested_versions, 2);
        let codes = |r: &[ReasonCount]| -> Vec<(String, usize)> {
            r.iter().map(|r| (r.code.clone(), r.count)).collect()
        };
        assert_eq!(
            codes(&three.top_rejection_reasons),
            [("too-risky".to_owned(), 2), ("duplicate".to_owned(), 1)]
        );
        assert_eq!(
            codes(&three.top_change_reasons),
            [
                ("add-evidence".to_owned(), 1),
                ("narrow-scope".to_owned(), 1)
            ]
        );
        assert_eq!(
            s.inconsistent,
            [Inconsistent {
                request: "h".to_owned(),
                reason: "edited".to_owned()
            }]
        );
        // The window is the latest version's proposal: `i` is in from midnight on,
        // though its first version is older.
        let midnight = summarize(&requests, Some(at("2026-01-01T00:00:00Z")), now);
        assert_eq!(midnight.tiers[1].requests, 9);
        // Nothing was proposed after midnight, except what cannot be dated.
        let later = summarize(&requests, Some(at("2026-01-01T00:00:01Z")), now);
        assert!(later.tiers.is_empty());
        assert_eq!(later.inconsistent.len(), 1);
        // Before its due time, the override's review is not overdue.
        let early = summarize(&requests, None, at("2026-01-01T09:30:00Z"));
        assert_eq!(early.tiers[1].overdue_reviews, 0);
    }

    #[test]
    fn ties_among_reason_codes_are_alphabetical_and_three_are_listed() {
        let now = at("2026-01-01T12:00:00Z");
        let rejected = Verdict::Reject.as_str();
        let requests: Vec<RequestStatus> =
            ["wrong-target", "duplicate", "too-risky", "policy-violation"]
                .iter()
                .map(|code| {
                    request(
                        code,
                        derived(2, 1, false),
                        &[(rejected, "2026-01-01T00:01:00Z", Some(code))],
                        now,
                    )
                })
                .collect();
        let s = summarize(&requests, None, now);
        let codes: Vec<&str> = s.tiers[0]
            .top_rejection_reasons
            .iter()
            .map(|r| r.code.as_str())
            .collect();
        assert_eq!(codes, ["duplicate", "policy-violation", "too-risky"]);
    }
}
