//! The approval workflow through the real binary: quorum, distinct roles, one principal
//! counted once, pending timeouts (expiry and escalation) without any sweep, tiers 0
//! and 1, and `hitl status`.

use super::audit::{AGENT, ALEX, AuditWs, LEA, MARIA, RAVI, ok};
use super::support::{stderr, stdout};

const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";
pub(super) const INES: &str = "ines@example.com";
const IVAN: &str = "ivan@example.com";
pub(super) const SAM: &str = "sam@example.com";

pub(super) const IAM: &str = "iam-grant-ci-deployer";

fn codes(w: &AuditWs) -> Vec<String> {
    w.problem_codes()
}

fn status(w: &AuditWs, time: &str, id: &str) -> serde_json::Value {
    let o = w.read_at(time, &["status", id, "--format", "json"]);
    serde_json::from_str(&ok(&o)).unwrap()
}

/// An admin's commit changes the matrix (before anything is proposed under it).
fn edit_matrix(w: &AuditWs, from: &str, to: &str, message: &str) {
    let m = w.ws().join("approval-matrix.yaml");
    let text = std::fs::read_to_string(&m).unwrap();
    assert!(text.contains(from), "the matrix has `{from}`");
    std::fs::write(&m, text.replacen(from, to, 1)).unwrap();
    w.commit_all(Some(ALEX), message);
}

/// The IAM workspace: iam-owner has two members (ines, ivan), security-approver one
/// (sam); the tier-4 IAM change needs two approvals from distinct roles.
pub(super) fn iam_ws() -> AuditWs {
    let w = AuditWs::with_people(&[DEPLOY_BOT, INES, IVAN, SAM]);
    ok(&w.hitl(DEPLOY_BOT, &["propose", IAM]));
    w
}

#[test]
fn a_tier_4_change_is_approved_only_by_two_approvals_from_distinct_roles() {
    let w = iam_ws();
    // Marked for the execution gate: how tier 4 executes, in which window, unsupervised.
    let asked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.event_file(5)).unwrap()).unwrap();
    assert_eq!(asked["type"], "approval_requested");
    assert_eq!(
        (
            &asked["execution"],
            &asked["change_window"],
            &asked["supervised"]
        ),
        (
            &serde_json::json!("dual-approval-change-window"),
            &serde_json::json!("production"),
            &serde_json::json!(false)
        )
    );
    let first = ok(&w.hitl(INES, &["approve", IAM]));
    assert!(
        first.contains("1 of 2 approvals, still needed: security-approver"),
        "{first}"
    );
    let s = status(&w, "2026-11-27 16:00:00", IAM);
    assert_eq!(s["state"], "pending_approval");
    assert_eq!(s["approvals"], 1);
    assert_eq!(s["still_needed"], serde_json::json!(["security-approver"]));

    // The same role again, by another of its members: refused, naming what is needed.
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(IVAN, &["approve", IAM]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already has an approval from role `iam-owner`")
            && stderr(&o).contains("still needed: security-approver"),
        "{}",
        stderr(&o)
    );
    // One principal counts once.
    let o = w.hitl(INES, &["approve", IAM]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("already approved"), "{}", stderr(&o));
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");

    let second = ok(&w.hitl(SAM, &["approve", IAM]));
    assert!(second.contains("quorum reached"), "{second}");
    let s = status(&w, "2026-11-27 16:00:00", IAM);
    assert_eq!(s["state"], "approved");
    assert_eq!(s["approvals"], 2);
    let roles: Vec<&str> = s["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["iam-owner", "security-approver"]);
    let o = w.hitl(IVAN, &["approve", IAM]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("already decided"), "{}", stderr(&o));
    assert_eq!(codes(&w), Vec::<String>::new());
    let table = stdout(&w.read(&["status", IAM]));
    assert!(
        table.starts_with("iam-grant-ci-deployer: approved (tier 4"),
        "{table}"
    );
}

/// Tier 4's pending timeout (4 h) escalates to break-glass: five hours after the
/// proposal, before the request's own expiry, the routed approvers may no longer decide,
/// with no sweep run. Tier 3 made to expire after one hour: lea's approval two hours
/// later is refused, and `status` says expired.
#[test]
fn a_pending_timeout_escalates_or_expires_without_a_sweep() {
    let w = iam_ws();
    let later = "2026-11-27 21:00:00";
    let o = w.hitl_at(later, INES, &["approve", IAM]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("was escalated: only break-glass may decide it now"),
        "{}",
        stderr(&o)
    );
    let s = status(&w, later, IAM);
    assert_eq!(s["state"], "pending_approval");
    assert_eq!(s["escalated"], true);

    let w = AuditWs::new();
    edit_matrix(
        &w,
        "    pending_timeout: 8h\n    on_timeout: {escalate: revenue-ops}\n",
        "    pending_timeout: 1h\n    on_timeout: expire\n",
        "tier 3: pending for one hour, then expired",
    );
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl_at("2026-11-27 18:00:00", LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("expired at 2026-11-27T17:00:00Z"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
    assert_eq!(
        status(&w, "2026-11-27 18:00:00", "refund-4711")["state"],
        "expired"
    );
    // Within the hour it could be approved.
    assert_eq!(
        status(&w, "2026-11-27 16:30:00", "refund-4711")["state"],
        "pending_approval"
    );
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// Tier 1 lets the requester send their own draft (and nobody else, as no role is
/// routed); tier 0 needs no approval and proceeds with full audit.
#[test]
fn tier_1_closes_by_the_requester_and_tier_0_proceeds() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "draft-reply-5531"]));
    let s = status(&w, "2026-11-27 16:00:00", "draft-reply-5531");
    assert_eq!(s["still_needed"], serde_json::json!(["requester"]));
    let o = w.hitl(RAVI, &["approve", "draft-reply-5531"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not in any role that may decide"),
        "{}",
        stderr(&o)
    );
    let out = ok(&w.hitl(MARIA, &["approve", "draft-reply-5531"]));
    assert!(out.contains("quorum reached"), "{out}");
    assert_eq!(
        status(&w, "2026-11-27 16:00:00", "draft-reply-5531")["state"],
        "approved"
    );

    ok(&w.hitl(AGENT, &["propose", "summarize-runbook"]));
    assert_eq!(
        status(&w, "2026-11-27 16:00:00", "summarize-runbook")["state"],
        "proceeds"
    );
    let o = w.hitl(LEA, &["approve", "summarize-runbook"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs no approval"), "{}", stderr(&o));
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// `status` of an id the audit does not know is a refusal naming it.
#[test]
fn status_of_an_unknown_id_says_so() {
    let w = AuditWs::new();
    let o = w.read(&["status", "no-such-request"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("`no-such-request` is not in the audit"),
        "{}",
        stderr(&o)
    );
}

/// An insider holding a trusted key (ravi's, no IAM role) writes the missing second
/// approval by hand, naming sam as its actor in the security-approver role, and signs
/// the commit (and the detached signature) with his own key. The engine judges recorded
/// decisions again before it counts them: the request is inconsistent, not approved, and
/// takes no decision (sam's genuine one included); `verify` names the forgery.
#[test]
fn a_hand_made_approval_in_another_name_completes_no_quorum() {
    let w = iam_ws();
    ok(&w.hitl(INES, &["approve", IAM]));
    hand_made_approval(&w, SAM, Some(RAVI), RAVI);

    let s = status(&w, "2026-11-27 16:00:00", IAM);
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("its commit is signed by ravi@example.com"),
        "{s}"
    );
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(SAM, &["approve", IAM]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not hold"), "{}", stderr(&o));
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
    // The detached signature and the commit are both ravi's, not sam's; and its
    // signature of the approval scope is ines's, not sam's (copied from her decision).
    assert_eq!(
        codes(&w),
        [
            "decision-unauthorized",
            "signer-not-actor",
            "signer-not-actor"
        ]
    );
}

/// Writes event 7 by hand: an approval of the IAM change in `actor`'s name in the
/// security-approver role, after ines's (event 6), its detached signature made with
/// `sig_by`'s key (none when `None`), committed and signed by `committer`.
pub(super) fn hand_made_approval(w: &AuditWs, actor: &str, sig_by: Option<&str>, committer: &str) {
    let genuine = w.event_file(6);
    let mut e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&genuine).unwrap()).unwrap();
    assert_eq!(e["type"], "decision");
    e["seq"] = 7.into();
    e["prev"] = hitl_lib::audit::sha256_hex(&std::fs::read(&genuine).unwrap()).into();
    e["actor"]["principal"] = actor.into();
    e["actor"]["key"] = w.fingerprint(actor).into();
    e["approver"] = actor.into();
    e["role"] = "security-approver".into();
    let mut bytes = serde_json::to_vec_pretty(&e).unwrap();
    bytes.push(b'\n');
    let forged = w.event_file(7);
    std::fs::write(&forged, bytes).unwrap();
    if let Some(who) = sig_by {
        ok(&super::audit::sign_file(
            &w.ws(),
            &w.key(who),
            "hitl",
            &forged,
        ));
    }
    let index = w.ws().join(hitl_lib::audit::request_index_path(IAM));
    let mut listed = std::fs::read_to_string(&index).unwrap();
    listed.push_str("7\n");
    std::fs::write(&index, listed).unwrap();
    w.commit_all(
        Some(committer),
        "approve iam-grant-ci-deployer (tier 4) by hand",
    );
}

/// Sam's own signed commit adds an approval in his name without its detached
/// signature: it counts for nothing (the quorum is not reached), as `verify` says.
#[test]
fn a_recorded_approval_without_its_signature_counts_for_nothing() {
    let w = iam_ws();
    ok(&w.hitl(INES, &["approve", IAM]));
    hand_made_approval(&w, SAM, None, SAM);
    let s = status(&w, "2026-11-27 16:00:00", IAM);
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("no detached signature"),
        "{s}"
    );
    // Its scope signature, copied from ines's decision, is not by sam's key either.
    assert_eq!(codes(&w), ["decision-unauthorized", "signature-missing"]);
}

/// A request already past its `expires_at` is refused by `propose`: nothing recorded,
/// the id stays free.
#[test]
fn propose_refuses_a_request_that_has_already_expired() {
    let w = AuditWs::new();
    let head = w.git(&["rev-parse", "HEAD"]);
    // refund-4711 expires at 2026-11-28T09:00:00Z.
    let o = w.hitl_at("2026-11-29 00:00:00", AGENT, &["propose", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("expired at 2026-11-28T09:00:00Z, before it was proposed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
}

/// A refund of 80,000 EUR: above every role's limit along the escalation line
/// (support-lead 1,000, revenue-ops 10,000, finance-approver 50,000), so nobody could
/// approve it. `propose` records it as blocked with the reason, instead of leaving it
/// pending for nobody; no decision is taken on it; `verify` agrees.
#[test]
fn a_request_nobody_could_approve_is_recorded_as_blocked_with_the_reason() {
    let w = AuditWs::new();
    let file = w.ws().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("amount: {value: 180.00, currency: EUR}"),
        "{text}"
    );
    std::fs::write(
        &file,
        text.replace(
            "amount: {value: 180.00, currency: EUR}",
            "amount: {value: 80000, currency: EUR}",
        ),
    )
    .unwrap();
    let o = w.hitl(AGENT, &["propose", "refund-4711"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("refund-4711: blocked:\n  - "), "{out}");
    assert!(out.contains("no role is eligible"), "{out}");
    let e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.event_file(5)).unwrap()).unwrap();
    assert_eq!(e["type"], "blocked");
    assert_eq!(
        status(&w, "2026-11-27 16:00:00", "refund-4711")["state"],
        "blocked"
    );
    let o = w.hitl(RAVI, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(codes(&w), Vec::<String>::new());

    // A blocked request is not the end of its id: the agent lowers the amount and
    // proposes version 2, which revenue-ops (limit 10,000 EUR) may approve.
    std::fs::write(
        &file,
        text.replace(
            "amount: {value: 180.00, currency: EUR}",
            "amount: {value: 8000, currency: EUR}",
        ),
    )
    .unwrap();
    let out = ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    assert!(
        out.starts_with("recorded refund-4711 version 2 (tier 3)"),
        "{out}"
    );
    assert!(
        out.contains("refund-4711: awaiting approval by revenue-ops"),
        "{out}"
    );
    let s = status(&w, "2026-11-27 16:00:00", "refund-4711");
    assert_eq!(
        (s["state"].as_str(), s["version"].as_u64()),
        (Some("pending_approval"), Some(2))
    );
    ok(&w.hitl(RAVI, &["approve", "refund-4711"]));
    assert_eq!(
        status(&w, "2026-11-27 16:00:00", "refund-4711")["state"],
        "approved"
    );
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// `request-changes` closes version 1 of the IAM change; ines's approval of it never
/// counts for version 2, which needs both approvals afresh. The same bytes again,
/// another agent, and a new version of an approved request are refused.
#[test]
fn an_amended_proposal_needs_fresh_approvals() {
    let w = iam_ws();
    ok(&w.hitl(INES, &["approve", IAM]));
    let out = ok(&w.hitl(
        SAM,
        &[
            "request-changes",
            IAM,
            "--reason-code",
            "narrow-scope",
            "--comment",
            "one repository only",
        ],
    ));
    assert!(
        out.contains("changes_requested by sam@example.com")
            && out.contains("the agent may propose a new version with the same id"),
        "{out}"
    );
    let s = status(&w, "2026-11-27 16:00:00", IAM);
    assert_eq!(
        (s["state"].as_str(), s["version"].as_u64()),
        (Some("changes_requested"), Some(1))
    );

    let refused = |who: &str, args: &[&str], needle: &str| w.refused(who, args, 6, needle);
    refused(
        SAM,
        &["approve", IAM],
        "changes to version 1 of `iam-grant-ci-deployer` were requested by sam@example.com",
    );
    refused(
        DEPLOY_BOT,
        &["propose", IAM],
        "version 1 of `iam-grant-ci-deployer` already has these exact bytes",
    );

    let file = w.ws().join(format!("requests/{IAM}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}# narrowed to one repository\n")).unwrap();
    refused(
        AGENT,
        &["propose", IAM],
        "`support-copilot@agents.example.com` may not propose a new version of `iam-grant-ci-deployer`: its first version was submitted by `deploy-bot@agents.example.com`",
    );
    let out = ok(&w.hitl(DEPLOY_BOT, &["propose", IAM]));
    assert!(
        out.starts_with("recorded iam-grant-ci-deployer version 2 (tier 4)"),
        "{out}"
    );
    let s = status(&w, "2026-11-27 16:00:00", IAM);
    assert_eq!(
        (
            s["state"].as_str(),
            s["version"].as_u64(),
            s["approvals"].as_u64()
        ),
        (Some("pending_approval"), Some(2), Some(0))
    );
    // Approving the version one was shown: version 1 (seen before the amendment) is
    // refused, version 2 recorded.
    w.refused(
        INES,
        &["approve", IAM, "--version", "1"],
        6,
        "is at version 2 now, not the version 1 you were shown",
    );
    let first = ok(&w.hitl(INES, &["approve", IAM, "--version", "2"]));
    assert!(
        first.contains("1 of 2 approvals, still needed: security-approver"),
        "{first}"
    );
    let second = ok(&w.hitl(SAM, &["approve", IAM]));
    assert!(second.contains("quorum reached"), "{second}");
    let s = status(&w, "2026-11-27 16:00:00", IAM);
    let decisions: Vec<(u64, String)> = s["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["version"].as_u64().unwrap(),
                d["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            (1, "approved".to_owned()),
            (1, "changes_requested".to_owned()),
            (2, "approved".to_owned()),
            (2, "approved".to_owned())
        ]
    );
    std::fs::write(&file, format!("{text}# a third try\n")).unwrap();
    w.refused(
        DEPLOY_BOT,
        &["propose", IAM],
        6,
        "is already in the audit (version 2, `approved`)",
    );
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// Each verdict takes its own list of reason codes: a rejection one of
/// `reason_codes.reject`, a request for changes one of `reason_codes.request_changes`,
/// an approval none.
#[test]
fn each_verdict_takes_only_its_own_reason_codes() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let head = w.git(&["rev-parse", "HEAD"]);
    for (args, code, needle) in [
        (
            &["reject", "refund-4711", "--reason-code", "narrow-scope"][..],
            6,
            "unknown reason code `narrow-scope` for `rejected`; the matrix allows: insufficient-evidence, policy-violation, wrong-target, too-risky, not-authorized, duplicate",
        ),
        (
            &[
                "request-changes",
                "refund-4711",
                "--reason-code",
                "too-risky",
            ][..],
            6,
            "unknown reason code `too-risky` for `changes_requested`; the matrix allows: narrow-scope, add-evidence, add-rollback, lower-amount, fix-diff",
        ),
        (
            &["approve", "refund-4711", "--reason-code", "narrow-scope"][..],
            2,
            "unexpected argument '--reason-code'",
        ),
        (
            &["request-changes", "refund-4711"][..],
            2,
            "--reason-code <CODE>",
        ),
    ] {
        let o = w.hitl(LEA, args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert_eq!(
            w.git(&["rev-parse", "HEAD"]),
            head,
            "{args:?}: nothing recorded"
        );
    }
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// Someone with push access and no key edits lea's recorded rejection into an approval
/// and commits it unsigned: `status` shows no state read from the edited file; it
/// refuses as a decision would, and `verify` names the edit.
#[test]
fn status_refuses_an_audit_edited_in_place() {
    let w = AuditWs::new();
    w.rejection_edited_into_an_approval();
    let o = w.read(&["status", "email-customer-5531", "--format", "json"]);
    assert_eq!(o.status.code(), Some(6), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("changed the audit as no hitl append does"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    // The edited event is an approval without a signature of the approval scope.
    assert_eq!(
        w.problem_codes(),
        [
            "commit-unsigned",
            "decision-unauthorized",
            "history-rewrite",
            "signature-bad"
        ]
    );
}

/// refund-4712 moves 2,400 EUR, above support-lead's limit (1,000 EUR): lea is told
/// that revenue-ops may approve it, and ravi does. A limit an admin lowers after the
/// proposal takes effect at once: refund-4711 (180 EUR) under a support-lead limit of
/// 100 EUR is refused to lea the same way.
#[test]
fn an_over_limit_approval_is_refused_naming_the_role_that_may_approve_it() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    w.refused(LEA, &["approve", "refund-4712"], 6, "its amount 2400 EUR is above the authority of role `support-lead` (limit 1000 EUR); `revenue-ops` may approve it");
    ok(&w.hitl(RAVI, &["approve", "refund-4712"]));

    edit_matrix(
        &w,
        "    limits: {EUR: 1000}\n",
        "    limits: {EUR: 100}\n",
        "support-lead: limit 100 EUR",
    );
    w.refused(LEA, &["approve", "refund-4711"], 6, "its amount 180 EUR is above the authority of role `support-lead` (limit 100 EUR); `revenue-ops` may approve it");
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// The matrix names lea as the owner of the support agent: she counts as the
/// requester of whatever it submits, so she may not approve its refund, although she
/// is support-lead. The owner named only by the matrix in force (added after the
/// proposal) is refused too.
#[test]
fn the_owner_of_the_submitting_agent_may_not_approve() {
    for after in [false, true] {
        let w = AuditWs::new();
        let owners = "  agent_owners: {support-copilot@agents.example.com: lea@example.com, deploy-bot@agents.example.com: dev@example.com}\n";
        let set_owner = |w: &AuditWs| {
            edit_matrix(
                w,
                "  agent_owners:\n    support-copilot@agents.example.com: maria@example.com\n    deploy-bot@agents.example.com: dev@example.com\n",
                owners,
                "lea owns the support agent",
            );
        };
        if !after {
            set_owner(&w);
        }
        ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
        if after {
            set_owner(&w);
        }
        let head = w.git(&["rev-parse", "HEAD"]);
        let o = w.hitl(LEA, &["approve", "refund-4711"]);
        assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(
                "`lea@example.com` owns the agent `support-copilot@agents.example.com` that submitted `refund-4711`"
            ),
            "{}",
            stderr(&o)
        );
        assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
        assert_eq!(codes(&w), Vec::<String>::new());
    }
}
