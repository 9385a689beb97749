//! Library tests against the example workspace at the repository root: classification,
//! routing and evidence warnings, with `now` passed in.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hitl_lib::classify::classify;
use hitl_lib::evidence::assemble;
use hitl_lib::matrix::{self, Matrix};
use hitl_lib::request::{self, Request};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn matrix() -> Matrix {
    let bytes = std::fs::read(root().join("approval-matrix.yaml")).unwrap();
    matrix::parse(Path::new("approval-matrix.yaml"), &bytes).unwrap()
}

fn request(m: &Matrix, id: &str) -> Request {
    let bytes = std::fs::read(root().join("requests").join(format!("{id}.yaml"))).unwrap();
    request::parse(Path::new(id), &bytes, &m.systems, 1 << 20).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Rewrites one fragment of a request and parses it again.
fn with_line(m: &Matrix, id: &str, from: &str, to: &str) -> Request {
    let text = std::fs::read_to_string(root().join("requests").join(format!("{id}.yaml"))).unwrap();
    assert!(text.contains(from), "fixture text `{from}` not found");
    let text = text.replace(from, to);
    request::parse(Path::new(id), text.as_bytes(), &m.systems, 1 << 20).unwrap()
}

const REFUND_AMOUNT: &str = "{value: 180.00, currency: EUR}";

#[test]
fn refund_escalates_along_the_limit_chain() {
    let m = matrix();
    let cases = [
        ("{value: 180.00, currency: EUR}", "support-lead", None),
        ("{value: 1000.00, currency: EUR}", "support-lead", None),
        (
            "{value: 1000.01, currency: EUR}",
            "revenue-ops",
            Some("support-lead"),
        ),
        (
            "{value: 20000, currency: EUR}",
            "finance-approver",
            Some("support-lead"),
        ),
    ];
    for (amount, role, from) in cases {
        let r = with_line(&m, "refund-4711", REFUND_AMOUNT, amount);
        let c = classify(&m, &r);
        assert_eq!(c.tier, 3, "{amount}");
        assert_eq!(c.eligible_role_names(), vec![role], "{amount}");
        assert_eq!(
            c.eligible_roles[0].escalated_from.as_deref(),
            from,
            "{amount}"
        );
        assert!(c.problems.is_empty(), "{amount}: {:?}", c.problems);
    }
}

#[test]
fn an_amount_beyond_every_limit_has_no_approver() {
    let m = matrix();
    let r = with_line(
        &m,
        "refund-4711",
        REFUND_AMOUNT,
        "{value: 60000, currency: EUR}",
    );
    let c = classify(&m, &r);
    assert!(c.eligible_roles.is_empty());
    let codes: Vec<&str> = c.problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, vec!["over-limit", "no-approver"]);
}

#[test]
fn a_currency_without_a_limit_fails_closed() {
    let m = matrix();
    // Every role in the refund chain has EUR limits only: USD is beyond their authority,
    // and the large-payment rule counts an incomparable currency as above its threshold.
    let r = with_line(
        &m,
        "refund-4711",
        REFUND_AMOUNT,
        "{value: 5, currency: USD}",
    );
    let c = classify(&m, &r);
    assert_eq!(c.tier, 4);
    assert!(c.rules.iter().any(|r| r.id == "large-payment"));
    assert!(c.eligible_roles.iter().all(|e| e.role != "support-lead"));
    assert!(c.problems.iter().any(|p| p.code == "over-limit"));
}

#[test]
fn the_highest_matching_rule_wins() {
    let m = matrix();
    let r = with_line(
        &m,
        "refund-4711",
        REFUND_AMOUNT,
        "{value: 150000, currency: EUR}",
    );
    let c = classify(&m, &r);
    let ids: Vec<(&str, u8)> = c.rules.iter().map(|r| (r.id.as_str(), r.tier)).collect();
    assert_eq!(ids, vec![("money-movement", 3), ("large-payment", 4)]);
    assert_eq!(c.tier, 4);
}

#[test]
fn an_unmatched_action_gets_the_conservative_default() {
    let m = matrix();
    // `send` on payments matches no rule.
    let r = with_line(&m, "refund-4711", "type: approve", "type: send");
    let c = classify(&m, &r);
    assert!(c.default_applied);
    assert!(c.rules.is_empty());
    assert_eq!(c.tier, m.default_tier);
    assert_ne!(c.tier, 0);
}

#[test]
fn reading_is_tier_zero_and_needs_no_approval() {
    let m = matrix();
    let c = classify(&m, &request(&m, "summarize-runbook"));
    assert_eq!((c.tier, c.approvals_required), (0, 0));
    assert!(c.eligible_roles.is_empty() && c.problems.is_empty());
}

#[test]
fn missing_evidence_is_reported_for_the_tier() {
    let m = matrix();
    let mut r = request(&m, "iam-grant-ci-deployer");
    r.test_result = None;
    r.rollback = None;
    let c = classify(&m, &r);
    assert_eq!(c.missing_evidence, vec!["test_result", "rollback"]);
}

#[test]
fn warnings_follow_the_clock_passed_in() {
    let m = matrix();
    let r = request(&m, "refund-4711");
    let codes = |now: &str| -> Vec<&'static str> {
        assemble(&m, PathBuf::from("x"), &r, at(now))
            .warnings
            .iter()
            .map(|w| w.code)
            .collect()
    };
    assert!(codes("2026-11-27T10:00:00Z").is_empty());
    assert_eq!(codes("2026-11-28T09:00:00Z"), vec!["expired"]);
    // Eight days later the sources (max age 7 days) are stale too.
    assert_eq!(
        codes("2026-12-05T09:00:00Z"),
        vec!["expired", "stale-source", "stale-source"]
    );
    // Before the request was made, it and its sources are in the future.
    assert_eq!(
        codes("2026-11-27T08:00:00Z"),
        vec!["future-request", "future-source", "future-source"]
    );
}

#[test]
fn low_authority_and_restricted_sources_are_flagged() {
    let m = matrix();
    let now = at("2026-11-27T12:30:00Z");
    let crm = assemble(&m, PathBuf::from("x"), &request(&m, "crm-stage-acme"), now);
    let flags: Vec<Vec<&str>> = crm.sources.iter().map(|s| s.flags.clone()).collect();
    assert_eq!(flags, vec![vec![], vec!["stale", "low-authority"]]);
    let hr = assemble(
        &m,
        PathBuf::from("x"),
        &request(&m, "hr-update-emp-204"),
        now,
    );
    assert_eq!(hr.sources[0].flags, vec!["restricted"]);
    assert!(hr.warnings.iter().any(|w| w.code == "restricted-source"));
}

#[test]
fn change_windows_use_their_time_zone() {
    let m = matrix();
    let w = m.change_window("production").unwrap();
    // Tuesday 2026-12-01 08:30 UTC is 09:30 in Berlin (CET, UTC+1): inside.
    assert!(w.contains(at("2026-12-01T08:30:00Z")));
    // 07:30 UTC is 08:30 in Berlin: before the window opens.
    assert!(!w.contains(at("2026-12-01T07:30:00Z")));
    // Friday is not a production change day.
    assert!(!w.contains(at("2026-11-27T10:00:00Z")));
    // Summer time: Tuesday 2026-07-07 07:30 UTC is 09:30 CEST: inside.
    assert!(w.contains(at("2026-07-07T07:30:00Z")));
}

#[test]
fn only_tier_1_lets_the_requester_approve() {
    let m = matrix();
    for id in ["refund-4711", "iam-grant-ci-deployer", "robot-pick-cell7"] {
        let c = classify(&m, &request(&m, id));
        assert!(!c.self_approval, "{id}");
    }
    assert!(classify(&m, &request(&m, "draft-reply-5531")).self_approval);
}

#[test]
fn the_requester_is_never_counted_as_an_approver() {
    let m = matrix();
    // Ravi is the only member of revenue-ops, which owns CRM updates.
    let r = with_line(
        &m,
        "crm-stage-acme",
        "requested_by: maria@example.com",
        "requested_by: ravi@example.com",
    );
    let c = classify(&m, &r);
    assert_eq!(c.eligible_roles[0].role, "revenue-ops");
    assert!(c.eligible_roles[0].members.is_empty());
    let codes: Vec<&str> = c.problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, vec!["empty-role"]);
}

#[test]
fn a_policy_escalation_passes_the_same_checks_as_a_route() {
    use hitl_lib::policy::{Decision, Escalation};
    let m = matrix();
    let r = with_line(
        &m,
        "refund-4711",
        REFUND_AMOUNT,
        "{value: 20000, currency: EUR}",
    );
    let base = classify(&m, &r);
    let decision = |role: &str| Decision {
        allowed: true,
        deny: vec![],
        warn: vec![],
        escalate: vec![Escalation {
            role: role.to_owned(),
            reason: "test".to_owned(),
            rule: "t".to_owned(),
        }],
        min_tier: None,
        policy_digest: String::new(),
        evaluated_at: String::new(),
    };
    // revenue-ops (10,000 EUR) cannot approve 20,000 EUR: the escalation walks up to
    // finance-approver, which is already eligible and becomes required.
    let c = hitl_lib::classify::apply_policy(&m, &r, &base, &decision("revenue-ops"));
    assert_eq!(c.eligible_role_names(), vec!["finance-approver"]);
    assert_eq!(
        c.eligible_roles[0].required_by_policy.as_deref(),
        Some("test")
    );
    assert_eq!(c.approvals_required, 1);
    // A new role joins the quorum as a distinct, required approver.
    let c = hitl_lib::classify::apply_policy(&m, &r, &base, &decision("legal"));
    assert_eq!(c.eligible_role_names(), vec!["finance-approver", "legal"]);
    assert_eq!((c.approvals_required, c.distinct_roles), (2, true));
    // An unknown role is a problem, not a silent pass.
    let c = hitl_lib::classify::apply_policy(&m, &r, &base, &decision("nobody"));
    assert!(c.problems.iter().any(|p| p.code == "unknown-role"));
}

#[test]
fn a_tier_0_rule_never_applies_to_an_action_with_an_effect() {
    let text = std::fs::read_to_string(root().join("approval-matrix.yaml")).unwrap();
    let catch_all =
        "rules:\n  - id: everything-free\n    when: {action_name: [\"*\"]}\n    tier: 0\n";
    assert!(text.contains("rules:\n"));
    let text = text.replacen("rules:\n", catch_all, 1);
    let m = matrix::parse(Path::new("m.yaml"), text.as_bytes()).unwrap();
    // A send that no other rule matches falls to the default tier, not to tier 0.
    let send = with_line(&m, "draft-reply-5531", "type: draft", "type: send");
    let c = classify(&m, &send);
    assert!(c.default_applied, "{:?}", c.rules);
    assert_eq!(c.tier, m.default_tier);
    // A read still gets it.
    let read = classify(&m, &request(&m, "summarize-runbook"));
    assert!(read.rules.iter().any(|r| r.id == "everything-free"));
    let findings = hitl_lib::lint::lint_matrix(&m, Path::new("m.yaml"));
    assert!(
        findings
            .iter()
            .any(|f| f.code == "write-at-tier-0" && f.severity == hitl_lib::lint::Severity::Error)
    );
}

fn parse_err(m: &Matrix, text: &str) -> hitl_lib::diag::Diagnostics {
    request::parse(Path::new("x.yaml"), text.as_bytes(), &m.systems, 1 << 20).unwrap_err()
}

#[test]
fn keys_that_collide_in_json_are_refused() {
    let m = matrix();
    let text = std::fs::read_to_string(root().join("requests/refund-4711.yaml")).unwrap();
    let text = text.replace(
        "  parameters: {charge: ch_981,",
        "  parameters: {1: a, \"1\": b, charge: ch_981,",
    );
    let e = parse_err(&m, &text);
    assert_eq!(e.len(), 1, "{e}");
    assert_eq!(e.0[0].field, "action.parameters");
    assert!(
        e.0[0]
            .message
            .contains("mapping keys must be strings, found an integer"),
        "{e}"
    );
}

#[test]
fn invisible_characters_are_refused_in_principals() {
    let m = matrix();
    let text = std::fs::read_to_string(root().join("requests/refund-4711.yaml")).unwrap();
    let text = text.replace(
        "requested_by: maria@example.com",
        "requested_by: \"maria@example.com\\u200b\"",
    );
    let e = parse_err(&m, &text);
    assert_eq!(e.0[0].field, "requested_by", "{e}");
}

#[test]
fn a_file_full_of_errors_reports_a_bounded_number() {
    let m = matrix();
    let text = std::fs::read_to_string(root().join("requests/refund-4711.yaml")).unwrap();
    let junk: String = (0..500).map(|i| format!("junk_{i}: 1\n")).collect();
    let e = parse_err(&m, &format!("{text}{junk}"));
    assert_eq!(e.len(), hitl_lib::decode::MAX_DIAGNOSTICS + 1);
    assert_eq!(
        e.0.last().unwrap().message,
        "400 more problems not shown (the first 100 are)"
    );
}

/// The virtual machine `PolicySet::evaluate` runs and the interpreter `policy test` runs
/// must reach the same decision on every example proposal, at several instants (the
/// change-window and stale-source rules read `now`). One set evaluates all of them in a
/// row, so a result left over from the previous proposal would show.
#[test]
fn vm_and_interpreter_agree() {
    use hitl_lib::policy::{self, PolicySet};
    let m = matrix();
    let mut set = PolicySet::load(&root()).unwrap().unwrap();
    let mut ids: Vec<String> = std::fs::read_dir(root().join("requests"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    ids.sort();
    assert!(ids.len() >= 10, "the example workspace has its requests");
    let (mut denied, mut escalated, mut warned) = (0, 0, 0);
    for now in [
        "2026-11-27T10:00:00Z",
        "2026-11-28T23:30:00Z",
        "2027-06-01T08:00:00Z",
    ] {
        for id in &ids {
            let r = request(&m, id);
            let cls = classify(&m, &r);
            let input = policy::input(&m, &r, &cls, None, at(now));
            let vm = set.evaluate(&input).unwrap();
            let interpreted = set.evaluate_with_interpreter(&input).unwrap();
            assert_eq!(vm, interpreted, "{id} at {now}");
            denied += usize::from(!vm.allowed);
            escalated += usize::from(!vm.escalate.is_empty());
            warned += usize::from(!vm.warn.is_empty());
        }
    }
    // The examples exercise every kind of outcome, so agreement is not agreement on
    // empty decisions.
    assert!(
        denied > 0 && escalated > 0 && warned > 0,
        "{denied} {escalated} {warned}"
    );
}

/// `batchable` is an optional tier field, false unless set; a value that is not a
/// boolean is refused at its line and column, like the other tier flags.
#[test]
fn batchable_is_an_optional_tier_flag() {
    let text = std::fs::read_to_string(root().join("approval-matrix.yaml")).unwrap();
    let parse = |t: &str| matrix::parse(Path::new("approval-matrix.yaml"), t.as_bytes());
    let m = parse(&text).unwrap();
    for t in &m.tiers {
        assert_eq!(t.batchable, matches!(t.tier, 1 | 2), "tier {}", t.tier);
    }
    let off: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("batchable:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(parse(&off).unwrap().tiers.iter().all(|t| !t.batchable));
    let bad = text.replacen("batchable: true", "batchable: sometimes", 1);
    let e = parse(&bad).unwrap_err();
    assert_eq!(e.len(), 1, "{e}");
    assert_eq!(e.0[0].field, "tiers[1].batchable", "{e}");
}
