//! `hitl rollback` through the real binary: the recorded proposal's `rollback.command`
//! runs once after its approval was spent, its start recorded before it runs; a tier
//! with `rollback_approval` needs its own approvals first; a hand-made start without
//! them does not hold; `kill -9` never runs a rollback twice.

use std::path::{Path, PathBuf};

use super::audit::{AGENT, ALEX, AuditWs, LEA, MARIA, RAVI, ok};
use super::support::{NOW, stderr, stdout};

const REFUND: &str = "refund-4711";
const DRAFT: &str = "draft-reply-5531";

/// `scripts/NAME` in the workspace: appends its first argument to `counter`, then
/// sleeps `sleep` seconds.
fn script(w: &AuditWs, name: &str, counter: &Path, sleep: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = w.ws().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!(
            "#!/bin/sh\necho \"rolled back $1\" >> '{}'\nsleep {sleep}\n",
            counter.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A program of the repository runs only as the proposal's commit held it: the
    // script is committed before anything is proposed.
    w.commit_all(Some(LEA), &format!("rollback script {name}"));
}

fn runs(counter: &Path) -> usize {
    std::fs::read_to_string(counter).map_or(0, |t| t.lines().count())
}

fn state(w: &AuditWs, request: &str) -> serde_json::Value {
    let o = w.read(&["status", request, "--format", "json"]);
    serde_json::from_str::<serde_json::Value>(&ok(&o)).unwrap()
}

/// `hitl exec` of `request`'s approval file as the agent, with a harmless command.
fn exec(w: &AuditWs, request: &str, extra: &[&str]) {
    let file = w.ws().join(format!("audit/approvals/{request}.json"));
    let key = w.key(AGENT);
    let mut args = vec!["exec", file.to_str().unwrap()];
    args.extend(extra);
    args.extend(["--key", key.to_str().unwrap(), "--", "true"]);
    let o = w
        .command(NOW)
        .env_remove("HITL_SIGNING_KEY")
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// refund-4711 (tier 3: its rollback needs one approval by support-lead) proposed,
/// approved by lea and executed; its rollback script counting runs in `counter`.
fn refund_executed() -> (AuditWs, PathBuf) {
    refund_executed_sleeping(0)
}

/// [`refund_executed`], its rollback script sleeping `sleep` seconds after it counts.
fn refund_executed_sleeping(sleep: u32) -> (AuditWs, PathBuf) {
    let w = AuditWs::new();
    let counter = w.dir_path().join("counter");
    script(&w, "recharge.sh", &counter, sleep);
    w.propose_and_approve();
    exec(&w, REFUND, &["--amount", "180", "--currency", "EUR"]);
    (w, counter)
}

/// A tier-1 draft (no rollback approval by default) with a rollback command runs its
/// rollback once after exec: `rollback_started` then `rolled_back`, each its own signed
/// commit; a second rollback is refused (exit 27) and runs nothing.
#[test]
fn a_tier_1_rollback_after_exec_runs_once_and_is_recorded() {
    let w = AuditWs::new();
    let file = w.ws().join("requests/draft-reply-5531.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let impact = "impact: A reply draft in the ticket; nothing is sent until Maria sends it.\n";
    assert!(text.contains(impact));
    std::fs::write(
        &file,
        text.replace(
            impact,
            &format!(
                "{impact}rollback: {{plan: Delete the draft., command: [scripts/undo.sh, ticket/5531]}}\n"
            ),
        ),
    )
    .unwrap();
    let counter = w.dir_path().join("counter");
    script(&w, "undo.sh", &counter, 0);
    ok(&w.hitl(AGENT, &["propose", DRAFT]));
    ok(&w.hitl(MARIA, &["approve", DRAFT]));
    // Before the approval is spent nothing ran: nothing to roll back.
    w.refused(
        AGENT,
        &["rollback", DRAFT],
        26,
        "`draft-reply-5531` is approved: its approval was never spent, nothing ran, so its `rollback.command` does not run",
    );
    exec(&w, DRAFT, &[]);
    let o = w.hitl(AGENT, &["rollback", DRAFT]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "rolled back ticket/5531\n"
    );
    assert_eq!(state(&w, DRAFT)["state"], "rolled-back");
    let subjects = w.git(&["log", "--format=%s", "-2"]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            format!("rolled_back {DRAFT} by {AGENT}"),
            format!("start the rollback of {DRAFT} by {AGENT}"),
        ]
    );
    let status = ok(&w.read(&["status", DRAFT]));
    assert!(
        status.contains(&format!("rollback_started by {AGENT}\n")),
        "{status}"
    );
    assert!(
        status.contains(&format!("rolled_back by {AGENT}, exit code 0\n")),
        "{status}"
    );
    w.refused(
        AGENT,
        &["rollback", DRAFT],
        27,
        "the rollback of `draft-reply-5531` was started already by support-copilot@agents.example.com: its `rollback.command` runs once",
    );
    assert_eq!(runs(&counter), 1, "never twice");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// A proposal without `rollback.command` has nothing to run (exit 25), even once spent.
#[test]
fn a_proposal_without_a_rollback_command_is_refused() {
    let w = AuditWs::new();
    let file = w.ws().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = "rollback: {plan: Re-charge through payments.charge., command: [scripts/recharge.sh, ch_981]}\n";
    assert!(text.contains(line));
    std::fs::write(
        &file,
        text.replace(
            line,
            "rollback: {plan: Re-charge through payments.charge.}\n",
        ),
    )
    .unwrap();
    w.propose_and_approve();
    exec(&w, REFUND, &["--amount", "180", "--currency", "EUR"]);
    // The working tree's file says otherwise now: the recorded proposal decides.
    std::fs::write(&file, &text).unwrap();
    w.refused(
        AGENT,
        &["rollback", REFUND],
        25,
        "`refund-4711` has no `rollback.command` in its recorded proposal: there is nothing to run",
    );
    assert_eq!(state(&w, REFUND)["state"], "executed");
}

/// Tier 3 asks for a rollback approval: refused without it (exit 28); the requester,
/// the agent and a principal in no eligible role may not give it (exit 6); lea's counts
/// once; at the quorum the rollback runs; `verify` is clean after.
#[test]
fn a_tier_3_rollback_runs_only_at_its_quorum_of_rollback_approvals() {
    let (w, counter) = refund_executed();
    w.refused(
        AGENT,
        &["rollback", REFUND],
        28,
        "the rollback of `refund-4711` needs 1 rollback approval(s) from support-lead and has 0: its `rollback.command` does not run yet (`hitl rollback refund-4711 --approve`)",
    );
    w.refused(
        MARIA,
        &["rollback", REFUND, "--approve"],
        6,
        "`refund-4711`: maria@example.com requested or submitted it and may not approve its rollback (separation of duties)",
    );
    w.refused(
        AGENT,
        &["rollback", REFUND, "--approve"],
        6,
        "support-copilot@agents.example.com submits proposals (an agent) and may not approve a rollback",
    );
    w.refused(
        RAVI,
        &["rollback", REFUND, "--approve"],
        6,
        "ravi@example.com is not in any role that may approve it (eligible: support-lead)",
    );
    let out = ok(&w.hitl(
        LEA,
        &[
            "rollback",
            REFUND,
            "--approve",
            "--comment",
            "charge it again",
        ],
    ));
    assert!(
        out.starts_with("refund-4711: rollback approved by lea@example.com (1 of 1 rollback approval(s); commit "),
        "{out}"
    );
    w.refused(
        LEA,
        &["rollback", REFUND, "--approve"],
        6,
        "lea@example.com approved its rollback already; one principal counts once",
    );
    assert_eq!(runs(&counter), 0);
    let o = w.hitl(AGENT, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "rolled back ch_981\n"
    );
    assert_eq!(state(&w, REFUND)["state"], "rolled-back");
    w.refused(
        LEA,
        &["rollback", REFUND, "--approve"],
        27,
        "was started already by support-copilot@agents.example.com",
    );
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// `rollback_approval: false` on tier 3 (an admin's signed change before the proposal):
/// the matrix says the rollback needs no approval, so it runs at once, and an approval
/// of it is refused.
#[test]
fn the_matrix_may_waive_a_tiers_rollback_approval() {
    let w = AuditWs::new();
    let matrix = w.ws().join("approval-matrix.yaml");
    let text = std::fs::read_to_string(&matrix).unwrap();
    let tier3 = "    execution: approval-plus-threshold\n";
    assert_eq!(text.matches(tier3).count(), 1);
    std::fs::write(
        &matrix,
        text.replace(tier3, &format!("{tier3}    rollback_approval: false\n")),
    )
    .unwrap();
    w.commit_all(Some(ALEX), "matrix: no rollback approval at tier 3");
    let counter = w.dir_path().join("counter");
    script(&w, "recharge.sh", &counter, 0);
    w.propose_and_approve();
    exec(&w, REFUND, &["--amount", "180", "--currency", "EUR"]);
    w.refused(
        LEA,
        &["rollback", REFUND, "--approve"],
        6,
        "tier 3 asks for no rollback approval (`rollback_approval: false`)",
    );
    let o = w.hitl(AGENT, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(runs(&counter), 1);
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// The rollback command's exit code is recorded and returned.
#[test]
fn a_failing_rollback_is_recorded_with_its_exit_code() {
    use std::os::unix::fs::PermissionsExt as _;
    let w = AuditWs::new();
    let file = w.ws().join("scripts/recharge.sh");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "#!/bin/sh\nexit 9\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.commit_all(Some(LEA), "a rollback script that fails");
    w.propose_and_approve();
    exec(&w, REFUND, &["--amount", "180", "--currency", "EUR"]);
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    let o = w.hitl(AGENT, &["rollback", REFUND]);
    assert_eq!(o.status.code(), Some(9), "{}{}", stdout(&o), stderr(&o));
    let status = ok(&w.read(&["status", REFUND]));
    assert!(
        status.contains(&format!("rolled_back by {AGENT}, exit code 9\n")),
        "{status}"
    );
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// Appends an event of `kind` for refund-4711 by `who` after the last one, by hand, in
/// a commit signed by `who` (a trusted key), as the tamper tests of `exec` do.
pub(super) fn hand_made(w: &AuditWs, kind: &str, who: &str, fields: serde_json::Value) {
    let last = (1..100).rev().find(|s| w.event_file(*s).exists()).unwrap();
    let bytes = std::fs::read(w.event_file(last)).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut event = serde_json::json!({
        "seq": last + 1,
        "prev": hitl_lib::audit::sha256_hex(&bytes),
        "type": kind,
        "request": REFUND,
        "at": e["at"],
        "actor": {"principal": who, "key": w.fingerprint(who)},
        "config": e["config"],
    });
    for (k, v) in fields.as_object().unwrap() {
        event[k] = v.clone();
    }
    let mut out = serde_json::to_vec_pretty(&event).unwrap();
    out.push(b'\n');
    std::fs::write(w.event_file(last + 1), out).unwrap();
    let index = w.ws().join(hitl_lib::audit::request_index_path(REFUND));
    let mut listed = std::fs::read_to_string(&index).unwrap();
    listed.push_str(&format!("{}\n", last + 1));
    std::fs::write(&index, listed).unwrap();
    w.commit_all(Some(who), &format!("{kind} by hand"));
}

/// The agent records a `rollback_started` of the executed refund by hand, in its own
/// signed commit (its key is trusted), without the rollback approval tier 3 needs: the
/// engine's rule refuses it, the request is inconsistent, and `verify` names exactly it.
#[test]
fn a_hand_made_rollback_start_without_its_approvals_does_not_hold() {
    let (w, counter) = refund_executed();
    hand_made(
        &w,
        "rollback_started",
        AGENT,
        serde_json::json!({
            "command": ["scripts/recharge.sh", "ch_981"],
            "arguments": "sha256:0",
            "operator": null,
        }),
    );
    w.as_other_clone();
    let s = state(&w, REFUND);
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("needs 1 rollback approval(s) from support-lead and has 0"),
        "{s}"
    );
    assert_eq!(w.problem_codes(), ["rollback-unfounded"]);
    // Nothing runs on an inconsistent record.
    let o = w.hitl(LEA, &["rollback", REFUND, "--approve"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(runs(&counter), 0);
}

/// The requester approves the rollback of her own request by hand, in her own signed
/// commit: it does not hold (separation of duties), and `verify` names exactly it.
#[test]
fn a_hand_made_rollback_approval_by_the_requester_does_not_hold() {
    let (w, _) = refund_executed();
    hand_made(
        &w,
        "rollback_approved",
        MARIA,
        serde_json::json!({"comment": null}),
    );
    w.as_other_clone();
    let s = state(&w, REFUND);
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"].as_str().unwrap().contains(
            "maria@example.com requested or submitted it and may not approve its rollback"
        ),
        "{s}"
    );
    assert_eq!(w.problem_codes(), ["rollback-unfounded"]);
}

/// A start by hand after lea's rollback approval holds (it follows the rule); a
/// `rolled_back` recorded by lea for the agent's start does not: the end is the
/// starter's, and `verify` names exactly that event.
#[test]
fn a_rolled_back_by_another_principal_than_the_starter_does_not_hold() {
    let (w, _) = refund_executed();
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    hand_made(
        &w,
        "rollback_started",
        AGENT,
        serde_json::json!({"command": ["scripts/recharge.sh", "ch_981"], "arguments": "sha256:0", "operator": null}),
    );
    w.as_other_clone();
    assert_eq!(state(&w, REFUND)["state"], "rolling-back");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
    hand_made(
        &w,
        "rolled_back",
        LEA,
        serde_json::json!({"command": "scripts/recharge.sh", "arguments": "sha256:0", "exit_code": 0, "output": "sha256:0", "duration_ms": 1}),
    );
    w.as_other_clone();
    let s = state(&w, REFUND);
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"].as_str().unwrap().contains(
            "its rollback was started by support-copilot@agents.example.com, not by lea@example.com"
        ),
        "{s}"
    );
    assert_eq!(w.problem_codes(), ["rollback-unfounded"]);
}

/// `kill -9` of `hitl rollback` while its command sleeps: the start was recorded before
/// the command ran, so the next `hitl rollback` is refused and the command never runs
/// twice; `verify` stays clean (the request is `rolling-back`).
#[test]
fn kill_9_during_the_rollback_never_runs_it_twice() {
    let (w, counter) = refund_executed_sleeping(3);
    ok(&w.hitl(LEA, &["rollback", REFUND, "--approve"]));
    let key = w.key(AGENT);
    let mut child = std::process::Command::new(snapbox::cmd::cargo_bin!("hitl"))
        .env("HITL_TEST_NOW", NOW)
        .env("TZ", "UTC")
        .env("HOME", w.dir_path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("HITL_SIGNING_KEY")
        .current_dir(w.ws())
        .args(["rollback", REFUND, "--key", key.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while runs(&counter) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rollback never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(state(&w, REFUND)["state"], "rolling-back");
    w.refused(
        AGENT,
        &["rollback", REFUND],
        27,
        "was started already by support-copilot@agents.example.com",
    );
    w.refused(
        LEA,
        &["rollback", REFUND],
        27,
        "was started already by support-copilot@agents.example.com",
    );
    assert_eq!(runs(&counter), 1, "never twice");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}
