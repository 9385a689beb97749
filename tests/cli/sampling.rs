//! Sampled review through the real binary: a tier's `sample_rate` draws requests from
//! the proposal's sha256; a drawn request needs one approval more, which the tier's
//! `sample_reviewers` may give; one not drawn proceeds as its tier says; a record that
//! says "not drawn" for a drawn proposal is refused and named by `verify`.

use hitl_lib::classify::Sample;

use super::audit::{AGENT, ALEX, AuditWs, LEA, MARIA, ok};
use super::support::{stderr, stdout};

const QUINN: &str = "quinn@example.com";
const QA2: &str = "qa2@example.com";

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

/// The agent re-makes its own proposal commit (never pushed) with event 5, its
/// `approval_requested`, edited by `edit`, signed with its own key; seen from another
/// clone.
fn amend_proposal(w: &AuditWs, edit: impl FnOnce(&mut serde_json::Value)) {
    let five = w.event_file(5);
    let mut e: serde_json::Value = serde_json::from_slice(&std::fs::read(&five).unwrap()).unwrap();
    edit(&mut e);
    let mut bytes = serde_json::to_vec_pretty(&e).unwrap();
    bytes.push(b'\n');
    std::fs::write(&five, bytes).unwrap();
    w.amend_as(AGENT);
    w.as_other_clone();
}

/// The example workspace with quinn and qa2, both in `ai-quality` (an admin's commit),
/// and `more` edits of the matrix.
fn two_reviewers(more: &[(&str, &str)]) -> AuditWs {
    let w = AuditWs::with_people(&[QUINN, QA2]);
    let m = w.ws().join("approval-matrix.yaml");
    let mut text = std::fs::read_to_string(&m).unwrap();
    for (from, to) in [(
        "members: [quinn@example.com]",
        "members: [quinn@example.com, qa2@example.com]",
    )]
    .iter()
    .chain(more)
    {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&m, text).unwrap();
    w.commit_all(Some(ALEX), "ai-quality gains qa2");
    w
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
            &serde_json::json!(["requester", "ai-quality"])
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
    amend_proposal(&w, |e| {
        e["sample"]["selected"] = false.into();
        e["approvals_required"] = 0.into();
        e["eligible"] = serde_json::json!([]);
    });
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
    w.commit_all(Some(ALEX), "ai-quality is maria");
    variant(&w, "summarize-runbook", "summary-drawn", 0.02, true);
    let o = w.hitl(AGENT, &["propose", "summary-drawn"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let why = "no member of its `sample_reviewers` could give it (the requester does not count)";
    assert!(stdout(&o).contains(why), "{}{}", stdout(&o), stderr(&o));
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
            || stdout(&o).contains("error[sample-unreviewed]"),
        "{}",
        stderr(&o)
    );
}

/// The review is one approval besides the tier's, never instead of them: two reviewers
/// do not close a drawn draft without its requester's send.
#[test]
fn two_reviewers_do_not_stand_in_for_the_requesters_send() {
    let w = two_reviewers(&[]);
    variant(&w, "draft-reply-5531", "draft-drawn", 0.1, true);
    ok(&w.hitl(AGENT, &["propose", "draft-drawn"]));
    let out = ok(&w.hitl(QUINN, &["approve", "draft-drawn"]));
    assert!(
        out.contains("1 of 2 approvals, still needed: requester"),
        "{out}"
    );
    w.refused(
        QA2,
        &["approve", "draft-drawn"],
        6,
        "is not in any role that may decide",
    );
    ok(&w.hitl(MARIA, &["approve", "draft-drawn"]));
    assert_eq!(status(&w, "draft-drawn")["state"], "approved");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// Sampling on tier 3 (every request drawn): the reviewers, a role with no limit, never
/// give the approval the amount needs; revenue-ops still does.
#[test]
fn reviewers_never_stand_in_for_a_tiers_approvers_or_their_limits() {
    let w = two_reviewers(&[(
        "    approver_roles: [support-lead]\n",
        "    approver_roles: [support-lead]\n    sample_rate: 1\n    sample_reviewers: [ai-quality]\n",
    )]);
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    ok(&w.hitl(QUINN, &["approve", "refund-4712"]));
    w.refused(
        QA2,
        &["approve", "refund-4712"],
        6,
        "is not in any role that may decide",
    );
    let s = status(&w, "refund-4712");
    assert_eq!(
        (&s["state"], &s["still_needed"]),
        (
            &"pending_approval".into(),
            &serde_json::json!(["revenue-ops"])
        ),
        "{s}"
    );
    ok(&w.hitl(super::audit::RAVI, &["approve", "refund-4712"]));
    assert_eq!(status(&w, "refund-4712")["state"], "approved");
    // The approval file lists both, the review too, in the order they decided.
    let f: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.ws().join("audit/approvals/refund-4712.json")).unwrap(),
    )
    .unwrap();
    let statement: serde_json::Value =
        serde_json::from_str(f["statement"].as_str().unwrap()).unwrap();
    let who: Vec<&str> = statement["predicate"]["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["principal"].as_str().unwrap())
        .collect();
    assert_eq!(who, [QUINN, super::audit::RAVI]);
    assert_eq!(statement["predicate"]["approvals_required"], 2);
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// A reviewer sends a drawn request back: the agent's next version keeps the review,
/// whatever its own draw, and `status` says so.
#[test]
fn a_version_after_a_drawn_one_is_drawn_too() {
    let w = AuditWs::with_people(&[QUINN]);
    variant(&w, "summarize-runbook", "summary-drawn", 0.02, true);
    ok(&w.hitl(AGENT, &["propose", "summary-drawn"]));
    ok(&w.hitl(
        QUINN,
        &[
            "request-changes",
            "summary-drawn",
            "--reason-code",
            "narrow-scope",
        ],
    ));
    let path = w.ws().join("requests/summary-drawn.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let v2 = (0..10_000)
        .map(|n| format!("{text}# version 2, try {n}\n"))
        .find(|t| !Sample::of_proposal(0.02, t.as_bytes()).selected)
        .unwrap();
    std::fs::write(&path, v2).unwrap();
    ok(&w.hitl(AGENT, &["propose", "summary-drawn"]));
    let s = status(&w, "summary-drawn");
    assert_eq!(
        (&s["state"], &s["version"], &s["sample"]["carried"]),
        (&"pending_approval".into(), &2.into(), &true.into()),
        "{s}"
    );
    let text = ok(&w.read(&["status", "summary-drawn"]));
    assert!(
        text.contains("carried over from the version before"),
        "{text}"
    );
    ok(&w.hitl(QUINN, &["approve", "summary-drawn"]));
    assert_eq!(status(&w, "summary-drawn")["state"], "approved");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// What the approver is shown says the request was drawn.
#[test]
fn show_says_a_request_was_drawn() {
    let w = AuditWs::with_people(&[QUINN]);
    variant(&w, "summarize-runbook", "summary-drawn", 0.02, true);
    ok(&w.hitl(AGENT, &["propose", "summary-drawn"]));
    for command in ["show", "explain"] {
        let text = ok(&w.read(&[command, "summary-drawn"]));
        assert!(
            text.contains("drawn for sampled review"),
            "{command}: {text}"
        );
        assert!(
            text.contains("one review by ai-quality"),
            "{command}: {text}"
        );
    }
}

/// Odd `sample` records in the agent's own re-made proposal commit: every command still
/// answers, and `verify` names the record every time.
#[test]
fn odd_sample_records_are_named_and_crash_nothing() {
    let cases = [
        serde_json::json!(null),
        serde_json::json!("drawn"),
        serde_json::json!({"rate": 0.02, "draw": u64::MAX, "selected": false}),
        serde_json::json!({"rate": 1.0e308, "draw": -1, "selected": "false"}),
        serde_json::json!("x".repeat(100_000)),
    ];
    for case in cases {
        let w = AuditWs::with_people(&[QUINN]);
        variant(&w, "summarize-runbook", "summary-drawn", 0.02, true);
        ok(&w.hitl(AGENT, &["propose", "summary-drawn"]));
        amend_proposal(&w, |e| {
            e["sample"] = case.clone();
            e["approvals_required"] = 0.into();
            e["eligible"] = serde_json::json!([]);
        });
        assert_eq!(
            status(&w, "summary-drawn")["state"],
            "inconsistent",
            "{case}"
        );
        let text = w.read(&["status", "summary-drawn"]);
        assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
        let q = w.hitl(QUINN, &["queue", "--format", "json"]);
        assert_eq!(q.status.code(), Some(0), "{}", stdout(&q));
        assert_eq!(w.problem_codes(), ["derived-mismatch"], "{case}");
    }
}
