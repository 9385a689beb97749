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

/// The reviewed rollback script committed, proposed, approved, spent, the rollback
/// approved; then the agent changes the repository as the second review did, each
/// change committed (ordinary commits: `verify` finds nothing) or only in the work tree.
/// Whatever it changes, the rollback runs the workspace as the proposal's commit held
/// it: the reviewed script, once.
fn after_approval(change: &dyn Fn(&AuditWs, &std::path::Path), words: Option<&str>) {
    let w = AuditWs::new();
    let ran = w.dir_path().join("ran");
    if let Some(words) = words {
        let path = w.ws().join("requests/refund-4711.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let old = "command: [scripts/recharge.sh, ch_981]";
        assert!(text.contains(old));
        std::fs::write(&path, text.replace(old, words)).unwrap();
    }
    script(
        &w,
        &format!(
            "#!/bin/sh\n. scripts/lib.sh\necho \"reviewed $(lib)\" >> '{}'\n",
            ran.display()
        ),
    );
    std::fs::write(w.ws().join("scripts/lib.sh"), "lib() { echo helper; }\n").unwrap();
    w.commit_all(Some(LEA), "the reviewed rollback script and its helper");
    w.propose_and_approve();
    assert_eq!(exec_refund(&w).status.code(), Some(0));
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    change(&w, &ran);
    let o = w.hitl(MARIA, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "reviewed helper\n");
    assert!(w.problem_codes().is_empty());
}

fn payload(ran: &std::path::Path) -> String {
    format!("#!/bin/sh\necho AGENT-PAYLOAD >> '{}'\n", ran.display())
}

#[test]
fn a_rollback_script_committed_again_after_the_approval_does_not_run() {
    after_approval(
        &|w, ran| {
            script(w, &payload(ran));
            w.commit_all(Some(AGENT), "tidy");
        },
        None,
    );
}

#[test]
fn a_rollback_script_edited_in_the_work_tree_does_not_run() {
    after_approval(&|w, ran| script(w, &payload(ran)), None);
}

/// `[sh, scripts/recharge.sh, ch_981]`: the script is an argument of `sh`.
#[test]
fn a_rollback_script_run_through_an_interpreter_is_the_proposals_too() {
    after_approval(
        &|w, ran| {
            script(w, &payload(ran));
            w.commit_all(Some(AGENT), "tidy");
        },
        Some("command: [sh, scripts/recharge.sh, ch_981]"),
    );
}

/// The helper the script sources, changed and committed after the approval.
#[test]
fn a_helper_the_script_sources_is_the_proposals_too() {
    after_approval(
        &|w, _| {
            std::fs::write(
                w.ws().join("scripts/lib.sh"),
                "lib() { echo AGENT-PAYLOAD; }\n",
            )
            .unwrap();
            w.commit_all(Some(AGENT), "tidy");
        },
        None,
    );
}

/// The script replaced by a committed symlink to another committed file (the payload,
/// committed before the proposal), or to a file outside the repository.
#[test]
fn a_symlink_committed_after_the_approval_does_not_run() {
    for outside in [false, true] {
        after_approval(
            &|w, ran| {
                let target = if outside {
                    w.dir_path().join("outside.sh")
                } else {
                    w.ws().join("scripts/helper.sh")
                };
                std::fs::write(&target, payload(ran)).unwrap();
                let link = w.ws().join("scripts/recharge.sh");
                std::fs::remove_file(&link).unwrap();
                std::os::unix::fs::symlink(&target, &link).unwrap();
                w.commit_all(Some(AGENT), "tidy");
            },
            None,
        );
    }
}

/// A script that was never committed is not in the proposal's commit: the rollback is
/// refused before its one start is recorded (exit 4), and nothing runs.
#[test]
fn an_uncommitted_rollback_script_is_refused_before_the_start_is_recorded() {
    let w = AuditWs::new();
    let ran = w.dir_path().join("ran");
    w.propose_and_approve();
    assert_eq!(exec_refund(&w).status.code(), Some(0));
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    script(&w, &payload(&ran));
    let before = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(MARIA, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`scripts/recharge.sh`, which `rollback.command` names, is not a program in the workspace as its proposal's commit held it"),
        "{}",
        stderr(&o)
    );
    assert!(!ran.exists(), "nothing ran");
    assert_eq!(w.git(&["rev-parse", "HEAD"]), before, "nothing recorded");
    assert_eq!(status(&w)["state"], "executed");
}

/// An absolute path into the work tree would run the live file: refused (exit 6).
#[test]
fn an_absolute_path_into_the_work_tree_is_refused() {
    let w = AuditWs::new();
    let ran = w.dir_path().join("ran");
    script(&w, &payload(&ran));
    let path = w.ws().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let live = w.ws().join("scripts/recharge.sh");
    std::fs::write(
        &path,
        text.replace(
            "command: [scripts/recharge.sh, ch_981]",
            &format!("command: [\"{}\", ch_981]", live.display()),
        ),
    )
    .unwrap();
    w.commit_all(Some(LEA), "an absolute rollback command");
    w.propose_and_approve();
    assert_eq!(exec_refund(&w).status.code(), Some(0));
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    let o = w.hitl(MARIA, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("names a path into the work tree (or `/proc`)"),
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
