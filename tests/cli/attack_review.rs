//! The attack review of `check`'s kept fold, rollback, the precondition and recorded
//! refusals (2026-12-01), one test per attack: the holes it found (a sibling workspace's
//! fold, a rollback script changed after the approval, a precondition's output cut at
//! 1 MiB), each refused now, and the attacks that held from the start.

use std::path::PathBuf;

use super::audit::{AGENT, ALEX, AuditWs, LEA, MARIA, RAVI, keygen, ok, sh};
use super::rollback::hand_made;
use super::support::{NOW, hitl_at, stderr, stdout};

const REFUND: &str = "refund-4711";

fn exec_refund(w: &AuditWs) -> std::process::Output {
    let file = w.ws().join(format!("audit/approvals/{REFUND}.json"));
    let key = w.key(AGENT);
    w.command(NOW)
        .env_remove("HITL_SIGNING_KEY")
        .args([
            "exec",
            file.to_str().unwrap(),
            "--amount",
            "180",
            "--currency",
            "EUR",
        ])
        .args(["--key", key.to_str().unwrap(), "--", "true"])
        .output()
        .unwrap()
}

fn status(w: &AuditWs) -> serde_json::Value {
    serde_json::from_str(&ok(&w.read(&["status", REFUND, "--format", "json"]))).unwrap()
}

fn script(w: &AuditWs, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = w.ws().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("recharge.sh");
    std::fs::write(&file, body).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_hand_made_rollback_approval_before_the_spend_does_not_hold() {
    let w = AuditWs::new();
    w.propose_and_approve();
    hand_made(
        &w,
        "rollback_approved",
        LEA,
        serde_json::json!({"comment": null}),
    );
    w.as_other_clone();
    assert_eq!(status(&w)["state"], "inconsistent");
    assert_eq!(w.problem_codes(), ["rollback-unfounded"]);
}

#[test]
fn a_second_hand_made_rollback_approval_by_one_principal_does_not_hold() {
    let w = AuditWs::new();
    w.propose_and_approve();
    assert_eq!(exec_refund(&w).status.code(), Some(0));
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    hand_made(
        &w,
        "rollback_approved",
        LEA,
        serde_json::json!({"comment": null}),
    );
    w.as_other_clone();
    assert_eq!(w.problem_codes(), ["rollback-unfounded"]);
}

#[test]
fn a_rollback_approval_by_one_removed_from_the_role_since_does_not_hold() {
    let w = AuditWs::new();
    w.propose_and_approve();
    assert_eq!(exec_refund(&w).status.code(), Some(0));
    // The admin removes lea from support-lead.
    let m = w.ws().join("approval-matrix.yaml");
    let text = std::fs::read_to_string(&m).unwrap();
    let from = "  support-lead:\n    members: [lea@example.com]";
    assert!(text.contains(from));
    std::fs::write(
        &m,
        text.replace(from, "  support-lead:\n    members: [ravi@example.com]"),
    )
    .unwrap();
    w.commit_all(Some(ALEX), "lea leaves support-lead");
    let o = w.hitl(LEA, &["rollback", REFUND, "--approve"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    // ravi joined since, but was not eligible when it was proposed.
    let o = w.hitl(RAVI, &["rollback", REFUND, "--approve"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    hand_made(
        &w,
        "rollback_approved",
        LEA,
        serde_json::json!({"comment": null}),
    );
    w.as_other_clone();
    assert_eq!(w.problem_codes(), ["rollback-unfounded"]);
}

/// The approvers saw `rollback.command: [scripts/recharge.sh, ch_981]` and approved the
/// rollback with the reviewed script committed; the agent then commits another script
/// (an ordinary commit, not governed; `verify` finds nothing) and starts the rollback:
/// refused, nothing runs. So is the reviewed script edited in the work tree only; put
/// back as committed, it runs once.
#[test]
fn a_rollback_script_changed_after_the_proposal_is_refused() {
    let w = AuditWs::new();
    let ran = w.dir_path().join("ran");
    let reviewed = format!("#!/bin/sh\necho reviewed >> '{}'\n", ran.display());
    script(&w, &reviewed);
    w.commit_all(Some(LEA), "the reviewed rollback script");
    w.propose_and_approve();
    assert_eq!(exec_refund(&w).status.code(), Some(0));
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    script(
        &w,
        &format!("#!/bin/sh\necho AGENT-PAYLOAD >> '{}'\n", ran.display()),
    );
    w.commit_all(Some(AGENT), "tidy");
    assert!(w.problem_codes().is_empty());
    let o = w.hitl(MARIA, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`scripts/recharge.sh`, which `rollback.command` names, is a file of this repository (`scripts/recharge.sh`) changed or removed since the proposal was recorded"),
        "{}",
        stderr(&o)
    );
    assert!(!ran.exists(), "nothing ran");
    // Back as committed at HEAD, but edited in the work tree only.
    script(&w, &reviewed);
    w.commit_all(Some(LEA), "the reviewed script again");
    script(
        &w,
        &format!("#!/bin/sh\necho EDITED >> '{}'\n", ran.display()),
    );
    let o = w.hitl(MARIA, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("differs in the work tree from the committed `scripts/recharge.sh`"),
        "{}",
        stderr(&o)
    );
    assert!(!ran.exists(), "nothing ran");
    script(&w, &reviewed);
    ok(&w.hitl(MARIA, &["rollback", REFUND]));
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "reviewed\n");
    assert!(w.problem_codes().is_empty());
}

/// The interpreter trick: `rollback.command: [sh, scripts/recharge.sh, ch_981]` names
/// the script as an argument of `sh`. The agent commits another script after the
/// approval: refused all the same, nothing runs.
#[test]
fn a_rollback_script_run_through_an_interpreter_is_pinned_too() {
    let w = AuditWs::new();
    let ran = w.dir_path().join("ran");
    let path = w.ws().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let words = "command: [scripts/recharge.sh, ch_981]";
    assert!(text.contains(words));
    std::fs::write(
        &path,
        text.replace(words, "command: [sh, scripts/recharge.sh, ch_981]"),
    )
    .unwrap();
    script(
        &w,
        &format!("#!/bin/sh\necho reviewed >> '{}'\n", ran.display()),
    );
    w.commit_all(Some(LEA), "the reviewed rollback script, run by sh");
    w.propose_and_approve();
    assert_eq!(exec_refund(&w).status.code(), Some(0));
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    script(
        &w,
        &format!("#!/bin/sh\necho AGENT-PAYLOAD >> '{}'\n", ran.display()),
    );
    w.commit_all(Some(AGENT), "tidy");
    let o = w.hitl(MARIA, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`scripts/recharge.sh`, which `rollback.command` names, is a file of this repository (`scripts/recharge.sh`) changed or removed since the proposal was recorded"),
        "{}",
        stderr(&o)
    );
    assert!(!ran.exists(), "nothing ran");
}

/// A precondition whose output is the approved JSON, blanks up to 1 MiB, then more: the
/// whole output is not JSON, and only its first MiB was once read (and passed). Refused
/// now, nothing spent.
#[test]
fn a_precondition_printing_more_than_1_mib_is_refused() {
    let w = AuditWs::new();
    let prog = w.dir_path().join("pre.sh");
    std::fs::write(
        &prog,
        "#!/bin/sh\nj='{\"charge\":\"ch_981\",\"status\":\"captured\",\"refunded\":0}'\n\
         printf '%s' \"$j\"\nhead -c 1048576 /dev/zero | tr '\\0' ' '\nprintf ',\"status\":\"refunded\"}'\n",
    )
    .unwrap();
    let path = w.ws().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let after = "  after: {charge: ch_981, status: refunded, refunded: 180}\n";
    assert!(text.contains(after));
    let line = format!("{after}  precondition: [sh, \"{}\"]\n", prog.display());
    std::fs::write(&path, text.replace(after, &line)).unwrap();
    w.commit_all(Some(LEA), "precondition");
    w.propose_and_approve();
    let o = exec_refund(&w);
    assert_eq!(o.status.code(), Some(29), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("`sh`: it printed more than 1048576 bytes"),
        "{}",
        stderr(&o)
    );
    assert_eq!(status(&w)["state"], "approved", "nothing spent");
}

/// Two sibling workspaces `a/` and `b/` in one repository, trusting the same people.
/// refund-4711 is approved in `a` and rejected in `b`. `check` in `a` keeps its fold;
/// `check` in `b` of a's approval file once reused it (one folder of folds per
/// repository) and allowed it. Each workspace keeps its own now.
#[test]
fn a_sibling_workspace_never_reuses_the_fold_of_another() {
    let dir = tempfile::TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let mut signers = String::new();
    for who in [AGENT, LEA, RAVI, MARIA, ALEX] {
        let key = keygen(&keys, who, who);
        let public = std::fs::read_to_string(key.with_extension("com.pub")).unwrap();
        let ns = if who == AGENT {
            "git,hitl"
        } else {
            "git,hitl,hitl-approval"
        };
        signers.push_str(&format!("{who} namespaces=\"{ns}\" {public}"));
    }
    for ws in ["a", "b"] {
        super::audit::example_workspace(&repo.join(ws), &signers);
    }
    std::fs::write(repo.join("git_signers"), &signers).unwrap();
    let git = |args: &[&str]| ok(&sh(&repo, "git", args));
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.name", "T"]);
    git(&["config", "user.email", LEA]);
    git(&["config", "gpg.format", "ssh"]);
    git(&["config", "gpg.ssh.allowedSignersFile", "git_signers"]);
    git(&["add", "-A"]);
    let lea = keys.join(LEA);
    git(&[
        "-c",
        &format!("user.signingkey={}", lea.display()),
        "commit",
        "-q",
        "-S",
        "-m",
        "ws",
    ]);
    let hitl = |ws: &str, who: Option<&str>, args: &[&str]| -> std::process::Output {
        let mut c = hitl_at(NOW)
            .current_dir(repo.join(ws))
            .env("HOME", dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("HITL_SIGNING_KEY")
            .args(args);
        if let Some(who) = who {
            c = c.args(["--key", keys.join(who).to_str().unwrap()]);
        }
        c.output().unwrap()
    };
    ok(&hitl("a", Some(AGENT), &["propose", REFUND]));
    ok(&hitl("a", Some(LEA), &["approve", REFUND]));
    ok(&hitl("b", Some(AGENT), &["propose", REFUND]));
    ok(&hitl(
        "b",
        Some(LEA),
        &["reject", REFUND, "--reason-code", "too-risky"],
    ));
    let file: PathBuf = repo
        .join("a/audit/approvals")
        .join(format!("{REFUND}.json"));
    let check = |ws: &str| {
        hitl(
            ws,
            None,
            &[
                "check",
                file.to_str().unwrap(),
                "--action",
                "payments.refund",
                "--target",
                "payments/charge/ch_981",
                "--amount",
                "180",
                "--currency",
                "EUR",
            ],
        )
    };
    assert_eq!(check("b").status.code(), Some(21), "b folds: rejected");
    assert_eq!(check("a").status.code(), Some(0), "a: approved");
    let o = check("b");
    assert_eq!(
        o.status.code(),
        Some(21),
        "b never reuses a's fold: {}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("is rejected, not approved"),
        "{}",
        stderr(&o)
    );
}
