//! Deciding with a person in front of it: the summary `approve` shows before it signs,
//! and batch approval of `batchable` tiers. Real keys, real git, the real binary.

use super::audit::{AGENT, AuditWs, LEA, RAVI, ok};
use super::support::{stderr, stdout};

fn status(w: &AuditWs, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&w.read(&["status", id, "--format", "json"]))).unwrap()
}

fn head(w: &AuditWs) -> String {
    w.git(&["rev-parse", "HEAD"])
}

#[test]
fn approve_shows_what_it_signs_on_stderr_and_keeps_stdout_the_result() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("refund-4711: approved by lea@example.com (event 6, commit "),
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 7, "{err}");
    for line in [
        "approving refund-4711\n",
        "  action:    payments.refund\n",
        "  target:    payments/charge/ch_981\n",
        "  amount:    180.00 EUR\n",
        "  tier:      3 (financial or customer impact)\n",
        "  policy:    allowed",
        "  approvals: 0 of 1 so far, still needed: support-lead\n",
    ] {
        assert!(err.contains(line), "`{line}` not in: {err}");
    }
    // Reject shows no summary.
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    let o = w.hitl(
        RAVI,
        &["reject", "refund-4712", "--reason-code", "too-risky"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

/// Two requests of a tier-2 (`batchable`) copy of the CRM update, proposed by the agent.
fn two_crm_requests(w: &AuditWs) {
    let text = std::fs::read_to_string(w.ws().join("requests/crm-stage-acme.yaml")).unwrap();
    let beta = text.replace("id: crm-stage-acme", "id: crm-stage-beta");
    assert_ne!(beta, text);
    std::fs::write(w.ws().join("requests/crm-stage-beta.yaml"), beta).unwrap();
    ok(&w.hitl(AGENT, &["propose", "crm-stage-acme"]));
    ok(&w.hitl(AGENT, &["propose", "crm-stage-beta"]));
}

#[test]
fn batchable_requests_are_approved_in_one_call_one_commit_each() {
    let w = AuditWs::new();
    two_crm_requests(&w);
    let before = head(&w);
    let o = w.hitl(RAVI, &["approve", "crm-stage-acme", "crm-stage-beta"]);
    let out = ok(&o);
    let results: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(": approved by ravi@example.com"))
        .collect();
    assert_eq!(results.len(), 2, "{out}");
    assert!(results[0].starts_with("crm-stage-acme: "), "{out}");
    assert!(results[1].starts_with("crm-stage-beta: "), "{out}");
    let commits = w.git(&["rev-list", &format!("{}..HEAD", before.trim())]);
    assert_eq!(commits.lines().count(), 2, "one commit per decision");
    for id in ["crm-stage-acme", "crm-stage-beta"] {
        assert_eq!(status(&w, id)["state"], "approved", "{id}");
    }
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

#[test]
fn a_batch_with_a_tier_that_is_not_batchable_records_nothing() {
    let w = AuditWs::new();
    two_crm_requests(&w);
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let before = head(&w);
    let o = w.hitl(RAVI, &["approve", "crm-stage-acme", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "not approved together: `refund-4711` (tier 3) in a tier the matrix does not mark `batchable`; nothing recorded"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    assert_eq!(head(&w), before);

    let o = w.hitl(RAVI, &["approve", "crm-stage-acme", "crm-stage-acme"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(head(&w), before);
}

/// Both batchable, but ravi may approve only the first (the tier-1 draft is the
/// requester's to send): the first is recorded, the second refused, and the error says
/// which is which.
#[test]
fn a_batch_that_fails_midway_says_what_was_recorded() {
    let w = AuditWs::new();
    two_crm_requests(&w);
    ok(&w.hitl(AGENT, &["propose", "draft-reply-5531"]));
    let before = head(&w);
    let o = w.hitl(
        RAVI,
        &[
            "approve",
            "crm-stage-acme",
            "draft-reply-5531",
            "crm-stage-beta",
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("crm-stage-acme: approved by ravi@example.com"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(
            "the batch stopped at `draft-reply-5531`: recorded `crm-stage-acme` (one commit each); not recorded: `draft-reply-5531`, `crm-stage-beta`"
        ),
        "{}",
        stderr(&o)
    );
    let commits = w.git(&["rev-list", &format!("{}..HEAD", before.trim())]);
    assert_eq!(commits.lines().count(), 1);
    assert_eq!(status(&w, "crm-stage-beta")["state"], "pending_approval");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}
