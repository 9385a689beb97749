//! The workflow engine through the real binary: facts derived from the recorded proposal
//! and the configuration in force, never read back from recorded fields; the governance
//! rule on the trust configuration, at decision time and in `verify`.

use super::audit::{AGENT, ALEX, AuditWs, LEA, RAVI, ok};
use super::support::{stderr, stdout};

const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";

fn codes(w: &AuditWs) -> Vec<String> {
    w.problem_codes()
}

/// An agent writes its own proposal commit whose `approval_requested` names a crony
/// (ravi, trusted but not a support lead) as eligible, and signs it with its own key.
/// The engine recomputes the route from the proposal and the matrix: ravi's approval is
/// refused, and `verify` names the forged record.
#[test]
fn a_forged_eligible_set_is_refused_at_decision_time_and_named_by_verify() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let five = w.event_file(5);
    let mut e: serde_json::Value = serde_json::from_slice(&std::fs::read(&five).unwrap()).unwrap();
    assert_eq!(e["type"], "approval_requested");
    e["eligible"] = serde_json::json!([{"role": "support-lead", "members": [LEA, RAVI]}]);
    let mut bytes = serde_json::to_vec_pretty(&e).unwrap();
    bytes.push(b'\n');
    std::fs::write(&five, bytes).unwrap();
    // The agent's own commit (it replaces the one hitl made, which was never pushed).
    w.amend_as(AGENT);
    w.as_other_clone();
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(RAVI, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the eligible approvers is recorded as `support-lead: lea@example.com ravi@example.com` but the proposal under the configuration in force gives `support-lead: lea@example.com`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
    assert_eq!(codes(&w), ["derived-mismatch"]);
    // Not even the rightful approver decides on a forged record.
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
}

/// An agent may never decide, even when a role lists it: the matrix's
/// `governance.agents` says who submits.
#[test]
fn an_agent_never_decides_and_an_approver_never_submits() {
    let w = AuditWs::new();
    let o = w.hitl(LEA, &["propose", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`lea@example.com` may not submit proposals: it approves or administers, and who submits never decides"),
        "{}",
        stderr(&o)
    );
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let o = w.hitl(AGENT, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("submits proposals (an agent in the matrix's `governance.agents`)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// Each governed file changed in a commit not signed by an admin: the next decision is
/// refused (nothing recorded) and `verify` names the commit. The same change signed by
/// the admin is accepted.
#[test]
fn a_governed_file_changed_without_an_admin_stops_decisions_and_verify_names_it() {
    let edits: [(&str, &str, Option<&str>); 6] = [
        (
            "approval-matrix.yaml",
            "\n# lea widens her own limit\n",
            Some(LEA),
        ),
        ("approval-matrix.yaml", "\n# an unsigned edit\n", None),
        ("policies/extra.rego", "package hitl\n", Some(LEA)),
        ("hitl.toml", "\n# more\n", Some(LEA)),
        ("allowed_signers", "\n", Some(LEA)),
        ("revoked_signers", "", Some(LEA)),
    ];
    for (file, append, who) in edits {
        let w = AuditWs::new();
        ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
        let path = w.ws().join(file);
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, format!("{before}{append}# {file}\n")).unwrap();
        w.commit_all(who, "config change");
        let bad = w.git(&["rev-parse", "HEAD"]);
        let o = w.hitl(LEA, &["approve", "refund-4711"]);
        assert_eq!(o.status.code(), Some(6), "{file}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "the trust configuration at HEAD was changed by commit {} without an admin's signature",
                bad.trim()
            )),
            "{file}: {}",
            stderr(&o)
        );
        assert_eq!(
            w.git(&["rev-parse", "HEAD"]),
            bad,
            "{file}: nothing recorded"
        );
        // One problem, precisely: the commit that changed the configuration.
        assert_eq!(
            codes(&w),
            ["config-unauthorized"],
            "{file} by {who:?}: {}",
            stdout(&w.read(&["verify"]))
        );
    }
    // The admin's signed change is the configuration in force.
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let m = w.ws().join("approval-matrix.yaml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, format!("{text}\n# reviewed by alex\n")).unwrap();
    w.commit_all(Some(ALEX), "matrix: a comment");
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// Ravi added to support-lead by an admin after the proposal: the route was fixed when
/// it was proposed (support-lead: lea), so ravi is not eligible; lea removed from the
/// role by an admin can no longer approve either.
#[test]
fn eligibility_holds_both_when_proposed_and_now() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let m = w.ws().join("approval-matrix.yaml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(
        &m,
        text.replace(
            "    members: [lea@example.com]\n",
            "    members: [ravi@example.com]\n",
        ),
    )
    .unwrap();
    w.commit_all(Some(ALEX), "support-lead: ravi instead of lea");
    for who in [RAVI, LEA] {
        let o = w.hitl(who, &["approve", "refund-4711"]);
        assert_eq!(o.status.code(), Some(6), "{who}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is not in any role that may decide"),
            "{who}: {}",
            stderr(&o)
        );
    }
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// Someone with push access and no key re-makes the agent's proposal commit unsigned
/// (same tree, same events naming the agent): the submitter is whoever signed, so
/// nobody submitted it, and no decision is taken on it.
#[test]
fn a_proposal_commit_not_signed_by_its_submitter_takes_no_decision() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    w.git(&[
        "commit",
        "-q",
        "--amend",
        "--no-gpg-sign",
        "-m",
        "propose refund-4711",
    ]);
    let head = w.git(&["rev-parse", "HEAD"]);
    // The clone that recorded the proposal sees its commit replaced: a rewind.
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("was rewound"), "{}", stderr(&o));
    w.as_other_clone();
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not signed"), "{}", stderr(&o));
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
    assert_eq!(codes(&w), ["commit-unsigned"]);
}

/// Found by searching upward, a workspace inside another one of the same work tree is
/// refused: an agent could commit `requests/x/approval-matrix.yaml` with its own rules
/// and wait for an approver to run hitl there. Named with `-C`, it is the user's choice.
#[test]
fn a_workspace_planted_inside_the_workspace_is_refused_when_found_by_searching() {
    let w = AuditWs::new();
    let nested = w.ws().join("requests/nested");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(
        w.ws().join("approval-matrix.yaml"),
        nested.join("approval-matrix.yaml"),
    )
    .unwrap();
    let o = super::support::run(
        w.command(super::support::NOW)
            .current_dir(&nested)
            .args(["explain", "refund-4711"]),
    );
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is a workspace inside the workspace"),
        "{}",
        stderr(&o)
    );
    let o = super::support::run(
        w.command(super::support::NOW)
            .current_dir(&nested)
            .args(["lint"]),
    );
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
}

/// An insider re-makes the agent's proposal as their own (every event's actor ravi,
/// re-chained, the commit signed by ravi): a role member never submits, so the record
/// disagrees with the engine, `verify` says so and no decision is taken on it.
#[test]
fn a_proposal_submitted_by_an_approver_is_named_and_takes_no_decision() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "email-customer-5531"]));
    let fp = w.fingerprint(RAVI);
    let mut prev = "0".repeat(64);
    for seq in 1..=5 {
        let path = w.event_file(seq);
        let mut e: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        e["prev"] = prev.clone().into();
        e["actor"]["principal"] = RAVI.into();
        e["actor"]["key"] = fp.clone().into();
        if e["type"] == "proposed" {
            e["submitted_by"] = RAVI.into();
        }
        let mut bytes = serde_json::to_vec_pretty(&e).unwrap();
        bytes.push(b'\n');
        prev = hitl_lib::audit::sha256_hex(&bytes);
        std::fs::write(&path, bytes).unwrap();
    }
    w.git(&["add", "-A"]);
    w.git(&[
        "-c",
        &format!("user.signingkey={}", w.key(RAVI).display()),
        "-c",
        &format!("user.email={RAVI}"),
        "commit",
        "-q",
        "--amend",
        "--reset-author",
        "-S",
        "-m",
        "propose email-customer-5531",
    ]);
    w.as_other_clone();
    assert_eq!(codes(&w), ["derived-mismatch"]);
    let o = w.hitl(LEA, &["approve", "email-customer-5531"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`ravi@example.com` may not submit proposals"),
        "{}",
        stderr(&o)
    );
}

/// Someone with push access and no key drops a recorded rejection from the request's
/// index in an unsigned commit: the next decision reads the audit only through commits
/// that append as hitl does, so it is refused, and nothing is recorded.
#[test]
fn a_decision_hidden_from_the_index_by_an_unsigned_commit_takes_no_new_decision() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    ok(&w.hitl(
        LEA,
        &[
            "reject",
            "refund-4711",
            "--reason-code",
            "insufficient-evidence",
        ],
    ));
    let index = w
        .ws()
        .join(hitl_lib::audit::request_index_path("refund-4711"));
    std::fs::write(&index, "1\n2\n3\n4\n5\n").unwrap();
    w.commit_all(None, "tidy");
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed the audit as no hitl append does"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
    assert_eq!(codes(&w), ["commit-unsigned", "index"]);
}

/// Lea's key is trusted for decisions (namespace `hitl`) but not for commits (`git`),
/// by an admin's commit: the commit her approval would make could not pass the audit
/// rule, so the approval is refused before anything is written, naming the namespace.
#[test]
fn a_key_not_trusted_for_commits_decides_nothing() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let signers = w.ws().join("allowed_signers");
    let text = std::fs::read_to_string(&signers).unwrap();
    let narrowed = text.replace(
        &format!("{LEA} namespaces=\"git,hitl,hitl-approval\""),
        &format!("{LEA} namespaces=\"hitl\""),
    );
    assert_ne!(narrowed, text);
    std::fs::write(&signers, narrowed).unwrap();
    w.commit_all(Some(ALEX), "lea signs decisions only");
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("`git`"), "{}", stderr(&o));
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
    assert_eq!(codes(&w), Vec::<String>::new());
}

/// The agent plants a junk file, in a commit it signs, at the blob path its next
/// proposal will write. The append changes nothing that is already there: `propose`
/// is refused and records nothing (it used to overwrite the junk, in a commit `verify`
/// calls a rewrite and that this clone, having remembered it, no longer checked).
#[test]
fn an_append_never_overwrites_a_file_planted_where_it_will_write() {
    let w = AuditWs::new();
    w.propose_and_approve();
    let bytes = std::fs::read(w.ws().join("requests/refund-4712.yaml")).unwrap();
    let hex = hitl_lib::audit::sha256_hex(&bytes);
    let planted = w.ws().join(hitl_lib::audit::blob_path(&hex));
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, "junk\n").unwrap();
    w.commit_all(Some(AGENT), "agent: a file where the next proposal goes");
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(AGENT, &["propose", "refund-4712"]);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("an append changes nothing that is there"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing recorded");
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "junk\n");
}

/// Two workspaces in one repository (`a/` and `b/`). Lea rejects refund-4711 in b; an
/// outsider with no key hides the rejection from b's request index in an unsigned
/// commit. A decision in a walks that commit for a's paths only, where it changes
/// nothing: what it remembers as checked must not vouch for b, whose next decision
/// still refuses the tampering.
#[test]
fn a_checked_head_vouches_only_for_the_workspace_that_checked_it() {
    use super::audit::{example_workspace, keygen, sh};
    use super::support::{NOW, hitl_at, run};
    let dir = tempfile::TempDir::new().unwrap();
    let (repo, keys) = (dir.path().join("repo"), dir.path().join("keys"));
    std::fs::create_dir_all(&keys).unwrap();
    let mut signers = String::new();
    for who in [AGENT, LEA, ALEX] {
        let key = keygen(&keys, who, who);
        let public = std::fs::read_to_string(key.with_extension("com.pub")).unwrap();
        signers.push_str(&format!(
            "{who} namespaces=\"git,hitl,hitl-approval\" {public}"
        ));
    }
    for ws in ["a", "b"] {
        example_workspace(&repo.join(ws), &signers);
    }
    let git = |args: &[&str]| ok(&sh(&repo, "git", args));
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.name", "Test"]);
    git(&["config", "gpg.format", "ssh"]);
    git(&["add", "-A"]);
    let lea_key = format!("user.signingkey={}", keys.join(LEA).display());
    git(&[
        "-c",
        &lea_key,
        "-c",
        "user.email=lea@example.com",
        "commit",
        "-q",
        "-S",
        "-m",
        "two workspaces",
    ]);
    let hitl = |who: &str, ws: &str, args: &[&str]| {
        let key = keys.join(who);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--key", key.to_str().unwrap()]);
        run(hitl_at(NOW)
            .current_dir(repo.join(ws))
            .env("HOME", dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("HITL_SIGNING_KEY")
            .args(&all))
    };
    for ws in ["a", "b"] {
        ok(&hitl(AGENT, ws, &["propose", "refund-4711"]));
    }
    ok(&hitl(
        LEA,
        "b",
        &["reject", "refund-4711", "--reason-code", "too-risky"],
    ));
    let index = repo
        .join("b")
        .join(hitl_lib::audit::request_index_path("refund-4711"));
    let listed = std::fs::read_to_string(&index).unwrap();
    let hidden: Vec<&str> = listed.lines().collect();
    std::fs::write(
        &index,
        format!("{}\n", hidden[..hidden.len() - 1].join("\n")),
    )
    .unwrap();
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.email=mallory@example.com",
        "commit",
        "-q",
        "--no-gpg-sign",
        "-m",
        "tidy",
    ]);
    ok(&hitl(LEA, "a", &["approve", "refund-4711"]));
    let head = git(&["rev-parse", "HEAD"]);
    let o = hitl(LEA, "b", &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("changed the audit as no hitl append does"),
        "{}",
        stderr(&o)
    );
    assert_eq!(git(&["rev-parse", "HEAD"]), head, "nothing recorded in b");
}

/// From the second attack review: the deploy agent re-makes its own proposal commit with
/// the policies' warning dropped from `policy_checked` (event 4; event 5 relinked), signed
/// with its own key. The approver would be shown "allowed"; the engine compares the
/// recorded outcome with its own evaluation, so the request takes no decision, and
/// `verify` names it.
#[test]
fn a_policy_warning_dropped_from_the_record_is_found() {
    let w = AuditWs::with_people(&[DEPLOY_BOT, "chen@example.com"]);
    ok(&w.hitl(DEPLOY_BOT, &["propose", "prod-config-checkout"]));
    let read = |seq: u64| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(w.event_file(seq)).unwrap()).unwrap()
    };
    let write = |seq: u64, v: &serde_json::Value| {
        let mut bytes = serde_json::to_vec_pretty(v).unwrap();
        bytes.push(b'\n');
        std::fs::write(w.event_file(seq), bytes).unwrap();
    };
    let mut checked = read(4);
    assert_eq!(checked["type"], "policy_checked");
    assert!(
        !checked["policy"]["warn"].as_array().unwrap().is_empty(),
        "{checked}"
    );
    checked["policy"]["warn"] = serde_json::json!([]);
    write(4, &checked);
    let mut asked = read(5);
    asked["prev"] = hitl_lib::audit::sha256_hex(&std::fs::read(w.event_file(4)).unwrap()).into();
    write(5, &asked);
    w.git(&["add", "-A"]);
    let key = w.key(DEPLOY_BOT);
    w.git(&[
        "-c",
        &format!("user.signingkey={}", key.display()),
        "commit",
        "-q",
        "--amend",
        "-S",
        "--no-edit",
    ]);
    w.as_other_clone();
    let o = w.hitl("chen@example.com", &["approve", "prod-config-checkout"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the policy outcome is recorded as"),
        "{}",
        stderr(&o)
    );
    assert_eq!(codes(&w), ["derived-mismatch"]);
}
