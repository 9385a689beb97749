//! Break-glass through the real binary: `hitl override` by a member of the matrix's
//! `break_glass.role` lets a pending request proceed and opens a debt of after-the-fact
//! review, which `status` and `queue` show and `verify` lists once overdue.

use serde_json::Value;

use super::audit::{AuditWs, ok};

const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";
const INES: &str = "ines@example.com";
const SAM: &str = "sam@example.com";
const CHEN: &str = "chen@example.com";
const BIANCA: &str = "bianca@example.com";
const IAM: &str = "iam-grant-ci-deployer";

fn status(w: &AuditWs, time: &str) -> Value {
    serde_json::from_str(&ok(&w.read_at(time, &["status", IAM, "--format", "json"]))).unwrap()
}

#[test]
fn an_override_opens_a_review_debt_that_verify_lists_once_overdue() {
    let w = AuditWs::with_people(&[DEPLOY_BOT, INES, SAM, CHEN, BIANCA]);
    ok(&w.hitl(DEPLOY_BOT, &["propose", IAM]));
    for (who, args, code, needle) in [
        (
            INES,
            &["override", IAM, "--reason", "outage"][..],
            6,
            "is not a member of `break-glass` and may not override",
        ),
        (BIANCA, &["override", IAM][..], 2, "--reason <TEXT>"),
        (
            BIANCA,
            &["override", IAM, "--reason", "  "][..],
            6,
            "an override needs a reason",
        ),
    ] {
        w.refused(who, args, code, needle);
    }
    let out = ok(&w.hitl(
        BIANCA,
        &[
            "override",
            IAM,
            "--reason",
            "ci-deployer is down in production",
        ],
    ));
    assert!(
        out.contains("overridden; it proceeds, and owes 2 more review approval(s) from security-approver, change-manager by 2026-11-28T16:00:00Z"),
        "{out}"
    );
    let s = status(&w, "2026-11-27 16:30:00");
    assert_eq!(s["state"], "overridden", "{s}");
    assert_eq!(s["override"]["by"], BIANCA);
    assert_eq!(
        (
            s["override"]["reviews"].as_u64(),
            s["override"]["open"].as_bool()
        ),
        (Some(0), Some(true))
    );

    // The debt is in the queue of a reviewer, not of ines (not a review role).
    let q: Value = serde_json::from_str(&ok(&w.hitl(SAM, &["queue", "--format", "json"]))).unwrap();
    assert_eq!(q["requests"][0]["request"], IAM);
    assert_eq!(q["requests"][0]["state"], "overridden");
    assert_eq!(q["requests"][0]["deadline"], "2026-11-28T16:00:00Z");
    let q: Value =
        serde_json::from_str(&ok(&w.hitl(INES, &["queue", "--format", "json"]))).unwrap();
    assert_eq!(q["requests"], serde_json::json!([]));

    for (who, args, needle) in [
        (
            INES,
            &["approve", IAM][..],
            "the review of its override: security-approver, change-manager",
        ),
        (BIANCA, &["approve", IAM][..], "already approved"),
        (
            SAM,
            &["reject", IAM, "--reason-code", "too-risky"][..],
            "already decided (overridden by bianca@example.com)",
        ),
        (
            BIANCA,
            &["override", IAM, "--reason", "again"][..],
            "already decided (overridden by bianca@example.com)",
        ),
    ] {
        w.refused(who, args, 6, needle);
    }
    let out = ok(&w.hitl(SAM, &["approve", IAM]));
    assert!(out.contains("owes 1 more review approval(s)"), "{out}");
    assert_eq!(
        w.problem_codes_at("2026-11-28 15:00:00"),
        Vec::<String>::new()
    );
    // Due at 16:00 the next day: overdue after it.
    assert_eq!(
        w.problem_codes_at("2026-11-28 17:00:00"),
        ["review-overdue"]
    );
    assert_eq!(
        status(&w, "2026-11-28 17:00:00")["override"]["overdue"],
        true
    );
    // A late review still closes the debt.
    let out = ok(&w.hitl_at("2026-11-28 17:00:00", CHEN, &["approve", IAM]));
    assert!(out.contains("the override's review is complete"), "{out}");
    assert_eq!(
        w.problem_codes_at("2026-11-28 18:00:00"),
        Vec::<String>::new()
    );
}

/// A tier-3 refund (quorum 1) overridden, then reviewed once: its events hold as many
/// approvals as its quorum, yet it still owes a review, so a fresh clone's queue (which
/// skips requests its events close) still lists it to the other reviewer.
#[test]
fn a_debt_half_reviewed_stays_in_the_queue() {
    let w = AuditWs::with_people(&[SAM, CHEN, BIANCA]);
    ok(&w.hitl(super::audit::AGENT, &["propose", "refund-4711"]));
    ok(&w.hitl(
        BIANCA,
        &["override", "refund-4711", "--reason", "customer escalation"],
    ));
    ok(&w.hitl(SAM, &["approve", "refund-4711"]));
    let _ = std::fs::remove_file(w.ws().join(".git/hitl-open"));
    let q: Value =
        serde_json::from_str(&ok(&w.hitl(CHEN, &["queue", "--format", "json"]))).unwrap();
    assert_eq!(q["requests"][0]["request"], "refund-4711", "{q}");
    assert_eq!(q["requests"][0]["approvals"], 1);
    ok(&w.hitl(CHEN, &["approve", "refund-4711"]));
    let q: Value =
        serde_json::from_str(&ok(&w.hitl(CHEN, &["queue", "--format", "json", "--all"]))).unwrap();
    assert_eq!(q["requests"], serde_json::json!([]));
}
