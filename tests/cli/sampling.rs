//! Sampled review through the real binary: a tier's `sample_rate` draws requests from
//! the proposal's sha256; a drawn request needs one approval more, which the tier's
//! `sample_reviewers` may give; one not drawn proceeds as its tier says; a record that
//! says "not drawn" for a drawn proposal is refused and named by `verify`.

use hitl_lib::classify::Sample;

use super::audit::{AGENT, AuditWs, LEA, MARIA, ok};
use super::support::stderr;

const QUINN: &str = "quinn@example.com";

fn status(w: &AuditWs, id: &str) -> serde_json::Value {
    let o = w.read(&["status", id, "--format", "json"]);
    serde_json::from_str(&ok(&o)).unwrap()
}

/// Writes a copy of the example `request` under the id `id` into the workspace's
/// `requests/`, with a comment line chosen so that the tier's draw at `rate` is
/// `drawn` (the same arithmetic docs/workflow.md gives for redoing it by hand).
fn variant(w: &AuditWs, request: &str, id: &str, rate: f64, drawn: bool) {
    let path = w.ws().join("requests").join(format!("{request}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        &format!("id: {request}"),
        &format!("id: {id}"),
        1,
    );
    assert!(text.contains(&format!("id: {id}")), "{text}");
    let bytes = (0..10_000)
        .map(|n| format!("{text}# variant {n}\n"))
        .find(|t| Sample::of_proposal(rate, t.as_bytes()).selected == drawn)
        .unwrap();
    std::fs::write(w.ws().join("requests").join(format!("{id}.yaml")), bytes).unwrap();
}

fn recorded_sample(w: &AuditWs, seq: u64) -> serde_json::Value {
    let e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.event_file(seq)).unwrap()).unwrap();
    assert_eq!(e["type"], "approval_requested");
    e["sample"].clone()
}

/// Tier 0 samples 2%: a drawn request waits for one review by `ai-quality` (quinn) and
/// nobody else; one not drawn proceeds with no approval, recorded as not drawn.
#[test]
fn a_drawn_tier_0_request_waits_for_its_review_and_one_not_drawn_proceeds() {
    let w = AuditWs::with_people(&[QUINN]);
    variant(&w, "summarize-runbook", "summary-drawn", 0.02, true);
    variant(&w, "summarize-runbook", "summary-not-drawn", 0.02, false);

    ok(&w.hitl(AGENT, &["propose", "summary-drawn"]));
    let sample = recorded_sample(&w, 5);
    assert_eq!(
        (&sample["rate"], &sample["selected"]),
        (&serde_json::json!(0.02), &serde_json::json!(true))
    );
    assert!(sample["draw"].as_u64().unwrap() < 20_000, "{sample}");
    let s = status(&w, "summary-drawn");
    assert_eq!(s["state"], "pending_approval", "{s}");
    assert_eq!(s["still_needed"], serde_json::json!(["ai-quality"]), "{s}");
    assert_eq!(s["sample"], sample, "{s}");
    let text = ok(&w.read(&["status", "summary-drawn"]));
    assert!(text.contains("drawn for sampled review (draw "), "{text}");
    w.refused(
        LEA,
        &["approve", "summary-drawn"],
        6,
        "is not in any role that may decide",
    );
    // The requester is never the reviewer of the sample.
    w.refused(
        MARIA,
        &["approve", "summary-drawn"],
        6,
        "may not decide it (separation of duties)",
    );
    let out = ok(&w.hitl(QUINN, &["approve", "summary-drawn"]));
    assert!(out.contains("quorum reached"), "{out}");
    assert_eq!(status(&w, "summary-drawn")["state"], "approved");

    ok(&w.hitl(AGENT, &["propose", "summary-not-drawn"]));
    let sample = recorded_sample(&w, 11);
    assert_eq!(sample["selected"], false, "{sample}");
    assert!(sample["draw"].as_u64().unwrap() >= 20_000, "{sample}");
    assert_eq!(status(&w, "summary-not-drawn")["state"], "proceeds");
    w.refused(
        QUINN,
        &["approve", "summary-not-drawn"],
        6,
        "needs no approval",
    );
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// Tier 1 samples 10%: a drawn draft still needs its requester's send, and one more
/// approval, which the sample reviewer gives; the requester alone does not close it.
#[test]
fn a_drawn_tier_1_draft_needs_its_send_and_a_review() {
    let w = AuditWs::with_people(&[QUINN]);
    variant(&w, "draft-reply-5531", "draft-drawn", 0.1, true);
    ok(&w.hitl(AGENT, &["propose", "draft-drawn"]));
    assert_eq!(recorded_sample(&w, 5)["selected"], true);
    let s = status(&w, "draft-drawn");
    assert_eq!(
        (&s["approvals_required"], &s["still_needed"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(["ai-quality", "requester"])
        ),
        "{s}"
    );
    let out = ok(&w.hitl(MARIA, &["approve", "draft-drawn"]));
    assert!(
        out.contains("1 of 2 approvals, still needed: ai-quality"),
        "{out}"
    );
    ok(&w.hitl(QUINN, &["approve", "draft-drawn"]));
    assert_eq!(status(&w, "draft-drawn")["state"], "approved");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// The agent re-makes its own proposal commit of a drawn tier-0 request with the draw
/// recorded as "not drawn" and no approval required, signed with its own key: the
/// engine draws again from the recorded bytes, so the request takes no decision and
/// does not proceed, and `verify` names the record.
#[test]
fn a_drawn_request_recorded_as_not_drawn_is_inconsistent() {
    let w = AuditWs::with_people(&[QUINN]);
    variant(&w, "summarize-runbook", "summary-drawn", 0.02, true);
    ok(&w.hitl(AGENT, &["propose", "summary-drawn"]));
    let five = w.event_file(5);
    let mut e: serde_json::Value = serde_json::from_slice(&std::fs::read(&five).unwrap()).unwrap();
    e["sample"]["selected"] = false.into();
    e["approvals_required"] = 0.into();
    e["eligible"] = serde_json::json!([]);
    let mut bytes = serde_json::to_vec_pretty(&e).unwrap();
    bytes.push(b'\n');
    std::fs::write(&five, bytes).unwrap();
    w.git(&["add", "-A"]);
    w.git(&[
        "-c",
        &format!("user.signingkey={}", w.key(AGENT).display()),
        "-c",
        &format!("user.email={AGENT}"),
        "commit",
        "-q",
        "--amend",
        "-S",
        "-m",
        "propose summary-drawn",
    ]);
    w.as_other_clone();
    let s = status(&w, "summary-drawn");
    assert_eq!(s["state"], "inconsistent", "{s}");
    let o = w.hitl(QUINN, &["approve", "summary-drawn"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the sampled review is recorded as"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.problem_codes(), ["derived-mismatch"]);
}

/// A drawn request whose reviewer role has nobody but the requester is blocked at
/// `propose`, with the reason; `lint` names a sampling tier without reviewers.
#[test]
fn a_drawn_request_nobody_may_review_is_blocked_and_lint_names_the_tier() {
    let w = AuditWs::with_people(&[QUINN]);
    let m = w.ws().join("approval-matrix.yaml");
    let text = std::fs::read_to_string(&m).unwrap();
    let edited = text.replacen(
        "members: [quinn@example.com]",
        "members: [maria@example.com]",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&m, &edited).unwrap();
    w.commit_all(Some(super::audit::ALEX), "ai-quality is maria");
    variant(&w, "summarize-runbook", "summary-drawn", 0.02, true);
    let o = w.hitl(AGENT, &["propose", "summary-drawn"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        super::support::stdout(&o).contains("eligible role `ai-quality` has no members")
            || stderr(&o).contains("eligible role `ai-quality` has no members"),
        "{}{}",
        super::support::stdout(&o),
        stderr(&o)
    );
    assert_eq!(status(&w, "summary-drawn")["state"], "blocked");

    std::fs::write(
        &m,
        edited.replacen("    sample_reviewers: [ai-quality]\n", "", 1),
    )
    .unwrap();
    let o = w.read(&["lint"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("error[sample-unreviewed]")
            || super::support::stdout(&o).contains("error[sample-unreviewed]"),
        "{}",
        stderr(&o)
    );
}
