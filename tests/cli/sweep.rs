//! `hitl escalate` and `hitl sweep` through the real binary: an approver hands a request
//! to the escalation role before its timeout; a sweep records the due `expired` and
//! `escalated` events once, and a hand-made one the engine does not derive counts as a
//! tampered record.

use serde_json::Value;

use super::audit::{AGENT, ALEX, AuditWs, LEA, ok};
use super::support::stderr;

const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";
const INES: &str = "ines@example.com";
const IVAN: &str = "ivan@example.com";
const SAM: &str = "sam@example.com";
const BIANCA: &str = "bianca@example.com";
const IAM: &str = "iam-grant-ci-deployer";

fn status(w: &AuditWs, time: &str, id: &str) -> Value {
    serde_json::from_str(&ok(&w.read_at(time, &["status", id, "--format", "json"]))).unwrap()
}

fn iam_ws() -> AuditWs {
    let w = AuditWs::with_people(&[DEPLOY_BOT, INES, IVAN, SAM, BIANCA]);
    ok(&w.hitl(DEPLOY_BOT, &["propose", IAM]));
    w
}

/// Ines approves the IAM change; ivan, the other iam-owner, escalates it: from then on
/// only break-glass decides, so sam's approval is refused and bianca's completes the
/// quorum (distinct roles: iam-owner, break-glass). A second escalation, and one on a
/// tier without an escalation role, are refused.
#[test]
fn an_approver_escalates_a_request_before_its_timeout() {
    let w = iam_ws();
    ok(&w.hitl(INES, &["approve", IAM]));
    let out = ok(&w.hitl(
        IVAN,
        &["escalate", IAM, "--comment", "needs break-glass today"],
    ));
    assert!(
        out.contains("iam-grant-ci-deployer: escalated by ivan@example.com"),
        "{out}"
    );
    assert!(
        out.contains("1 of 2 approvals, still needed: break-glass"),
        "{out}"
    );
    let s = status(&w, "2026-11-27 16:00:00", IAM);
    assert_eq!(
        (s["state"].as_str(), s["escalated"].as_bool()),
        (Some("pending_approval"), Some(true))
    );

    for (who, args, needle) in [
        (
            SAM,
            &["approve", IAM][..],
            "was escalated: only break-glass may decide it now",
        ),
        (
            BIANCA,
            &["escalate", IAM][..],
            "is escalated already: only break-glass may decide it now",
        ),
    ] {
        w.refused(who, args, 6, needle);
    }
    let out = ok(&w.hitl(BIANCA, &["approve", IAM]));
    assert!(out.contains("quorum reached"), "{out}");

    // Tier 2 expires instead of escalating: there is nowhere to escalate it.
    ok(&w.hitl(AGENT, &["propose", "crm-stage-acme"]));
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(super::audit::RAVI, &["escalate", "crm-stage-acme"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("names no escalation role"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// The IAM change escalates at 20:00 and expires at 22:00; the refund escalates at
/// midnight. Each sweep records what is due then, once.
#[test]
fn a_sweep_records_what_is_due_once() {
    let w = iam_ws();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let sweep = |time: &str| ok(&w.hitl_at(time, ALEX, &["sweep"]));
    assert_eq!(sweep("2026-11-27 19:00:00"), "sweep: nothing is due\n");
    let out = sweep("2026-11-27 21:00:00");
    assert!(
        out.starts_with("iam-grant-ci-deployer: escalated (event "),
        "{out}"
    );
    assert!(out.contains("sweep: 1 event(s), commit "), "{out}");
    assert_eq!(sweep("2026-11-27 21:30:00"), "sweep: nothing is due\n");
    let out = sweep("2026-11-27 23:00:00");
    assert!(
        out.starts_with("iam-grant-ci-deployer: expired (event "),
        "{out}"
    );
    let out = sweep("2026-11-28 01:00:00");
    assert!(out.starts_with("refund-4711: escalated (event "), "{out}");
    assert_eq!(sweep("2026-11-28 01:00:00"), "sweep: nothing is due\n");
    assert_eq!(status(&w, "2026-11-28 01:00:00", IAM)["state"], "expired");
    assert_eq!(
        status(&w, "2026-11-28 01:00:00", "refund-4711")["escalated"],
        true
    );
    // The escalated refund is still decided by revenue-ops, not lea.
    let o = w.hitl_at("2026-11-28 01:10:00", LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    ok(&w.hitl_at(
        "2026-11-28 01:10:00",
        super::audit::RAVI,
        &["approve", "refund-4711"],
    ));
    // Verified after the last event (before it, those events would be `time-future`).
    let o = w.read_at("2026-11-28 02:00:00", &["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", super::support::stdout(&o));
}

/// The agent, whose key is trusted, records an `expired` of its own for the refund
/// while it is pending, in a signed commit: the engine does not derive it, so the
/// request takes no decision and `verify` names it.
#[test]
fn a_hand_made_expiry_counts_as_a_tampered_record() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    expired_by_hand(&w, None);
    let s = status(&w, "2026-11-27 16:00:00", "refund-4711");
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("recorded `expired` (event 6) does not hold"),
        "{s}"
    );
    assert_eq!(w.problem_codes(), ["transition-unfounded"]);
}

/// An agent's own signed commit adds an `expired` of its refund dated 2099 (true then):
/// the engine takes no decision on a request with an event dated after now, and
/// `verify` names it (`time-future`), as it would freeze every later append.
#[test]
fn an_event_dated_in_the_future_is_refused_at_decision_time_and_named_by_verify() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    expired_by_hand(&w, Some("2099-01-01T00:00:00Z"));
    let s = status(&w, "2026-11-27 16:00:00", "refund-4711");
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("event 6 is dated 2099-01-01T00:00:00Z, after now"),
        "{s}"
    );
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("event 6 is dated in the future"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.problem_codes(), ["time-future"]);
}

/// Ines approves the IAM change and may not then escalate it: her approval and break-
/// glass's would make the quorum alone.
#[test]
fn an_approver_may_not_escalate_what_they_approved() {
    let w = iam_ws();
    ok(&w.hitl(INES, &["approve", IAM]));
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(INES, &["escalate", IAM]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("already approved"), "{}", stderr(&o));
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
}

/// An approver whose clock runs 30 seconds ahead: within the clock skew hitl allows, so
/// a reader at the right time sees the approval, and `verify` reports nothing.
#[test]
fn a_clock_a_little_ahead_is_no_false_alarm() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    ok(&w.hitl_at("2026-11-27 16:00:30", LEA, &["approve", "refund-4711"]));
    assert_eq!(
        status(&w, "2026-11-27 16:00:00", "refund-4711")["state"],
        "approved"
    );
    assert_eq!(w.problem_codes(), Vec::<String>::new());
    // Ten minutes ahead is beyond it.
    assert_eq!(
        w.problem_codes_at("2026-11-27 15:50:00"),
        ["time-future"; 6]
    );
}

/// The agent's own signed commit adds event 6, an `expired` of refund-4711 written by
/// hand after its proposal (events 1-5), dated `at` (the proposal's time by default).
fn expired_by_hand(w: &AuditWs, at: Option<&str>) {
    let bytes = std::fs::read(w.event_file(5)).unwrap();
    let genuine: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(genuine["type"], "approval_requested");
    let e = serde_json::json!({
        "seq": 6,
        "prev": hitl_lib::audit::sha256_hex(&bytes),
        "type": "expired",
        "request": "refund-4711",
        "at": at.map_or_else(|| genuine["at"].clone(), Value::from),
        "actor": genuine["actor"],
        "config": genuine["config"],
        "version": 1,
    });
    let mut out = serde_json::to_vec_pretty(&e).unwrap();
    out.push(b'\n');
    std::fs::write(w.event_file(6), out).unwrap();
    let index = w
        .ws()
        .join(hitl_lib::audit::request_index_path("refund-4711"));
    let mut listed = std::fs::read_to_string(&index).unwrap();
    listed.push_str("6\n");
    std::fs::write(&index, listed).unwrap();
    w.commit_all(Some(AGENT), "sweep: 1 expired, 0 escalated");
}
