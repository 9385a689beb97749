//! The execution gate through the real binary: `hitl exec` spends an approval once, in
//! a signed commit, before its command runs, and records how it ended; `hitl revoke`;
//! a human-supervised tier runs only with its operator's key; `kill -9` at any instant
//! never runs a command twice for one approval, and `verify` stays clean.

use std::path::{Path, PathBuf};

use super::audit::{AGENT, AuditWs, LEA, RAVI, ok};
use super::support::{NOW, stderr, stdout};

const REFUND: &str = "refund-4711";

/// refund-4711 approved by lea at [`NOW`], its approval file copied out, and a counter
/// file the executed command appends a line to.
fn approved() -> (AuditWs, PathBuf, PathBuf) {
    let w = AuditWs::new();
    w.propose_and_approve();
    let file = w.dir_path().join("refund.approval.json");
    ok(&w.read(&["approval", REFUND, "--out", file.to_str().unwrap()]));
    let counter = w.dir_path().join("counter");
    (w, file, counter)
}

/// `hitl exec FILE ARGS -- sh -c 'echo ran >> COUNTER'` as `who` at `time`.
fn exec_at(
    w: &AuditWs,
    time: &str,
    who: &str,
    file: &Path,
    counter: &Path,
    args: &[&str],
) -> std::process::Output {
    let script = format!("echo ran >> '{}'", counter.display());
    exec_cmd(w, time, who, file, args, &["sh", "-c", &script])
}

/// `hitl exec FILE ARGS --key WHO -- CMD...` at `time`.
fn exec_cmd(
    w: &AuditWs,
    time: &str,
    who: &str,
    file: &Path,
    args: &[&str],
    cmd: &[&str],
) -> std::process::Output {
    let key = w.key(who);
    let mut all = vec!["exec", file.to_str().unwrap()];
    // The refund moves its whole amount unless the test says otherwise.
    if file.to_string_lossy().contains("refund") && !args.contains(&"--amount") {
        all.extend(["--amount", "180", "--currency", "EUR"]);
    }
    all.extend(args);
    all.extend(["--key", key.to_str().unwrap(), "--"]);
    all.extend(cmd);
    w.command(time)
        .env_remove("HITL_SIGNING_KEY")
        .args(&all)
        .output()
        .unwrap()
}

fn runs(counter: &Path) -> usize {
    std::fs::read_to_string(counter).map_or(0, |t| t.lines().count())
}

fn state(w: &AuditWs, time: &str) -> serde_json::Value {
    let o = w.read_at(time, &["status", REFUND, "--format", "json"]);
    serde_json::from_str::<serde_json::Value>(&ok(&o)).unwrap()["state"].clone()
}

fn refused(o: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
    assert!(stderr(o).contains(needle), "{}", stderr(o));
}

#[test]
fn exec_spends_the_approval_before_it_runs_and_never_runs_it_twice() {
    let (w, file, counter) = approved();
    let o = exec_at(&w, NOW, AGENT, &file, &counter, &["--verify", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(runs(&counter), 1);
    assert_eq!(state(&w, NOW), "verified");
    // The spend is its own signed commit, before the one that records the end.
    let subjects = w.git(&["log", "--format=%s", "-3"]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            format!("verified {REFUND} by {AGENT}"),
            format!("executed {REFUND} by {AGENT}"),
            format!("spend the approval of {REFUND} by {AGENT}"),
        ]
    );
    let head = w.git(&["rev-parse", "HEAD"]);
    refused(
        &exec_at(&w, NOW, AGENT, &file, &counter, &[]),
        22,
        "was spent already (by support-copilot@agents.example.com): it is single-use",
    );
    assert_eq!(runs(&counter), 1, "never twice");
    assert_eq!(
        w.git(&["log", "--format=%s", &format!("{}..HEAD", head.trim())]),
        format!("refusal of exec for {REFUND} (spent) by {AGENT}\n"),
        "only the refusal recorded"
    );
    let o = w.read(&super::audit::refund_check(file.to_str().unwrap(), "180"));
    refused(&o, 22, "was spent already");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// A command that fails is recorded with its exit code, which `exec` returns.
#[test]
fn exec_records_and_returns_the_commands_exit_code() {
    let (w, file, _) = approved();
    let o = exec_cmd(&w, NOW, AGENT, &file, &[], &["sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(state(&w, NOW), "executed");
    let text = ok(&w.read(&["status", REFUND]));
    assert!(
        text.contains(&format!("executed by {AGENT}, exit code 7")),
        "{text}"
    );
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// Another target, a larger amount, too late: refused with `check`'s codes, nothing
/// run or spent; only each refusal is recorded.
#[test]
fn exec_refuses_what_the_approval_does_not_cover_and_runs_nothing() {
    let (w, file, counter) = approved();
    let head = w.git(&["rev-parse", "HEAD"]);
    refused(
        &exec_at(
            &w,
            NOW,
            AGENT,
            &file,
            &counter,
            &["--target", "payments/charge/ch_982"],
        ),
        15,
        "not `payments/charge/ch_982`",
    );
    refused(
        &exec_at(
            &w,
            NOW,
            AGENT,
            &file,
            &counter,
            &["--amount", "181", "--currency", "EUR"],
        ),
        16,
        "it approves at most 180 EUR",
    );
    refused(
        &exec_at(&w, "2026-11-27 18:00:00", AGENT, &file, &counter, &[]),
        19,
        "the approval expired at 2026-11-27T18:00:00Z",
    );
    assert_eq!(runs(&counter), 0);
    assert_eq!(
        w.git(&["log", "--format=%s", &format!("{}..HEAD", head.trim())]),
        [
            format!("refusal of exec for {REFUND} (expired) by {AGENT}\n"),
            format!("refusal of exec for {REFUND} (over-amount) by {AGENT}\n"),
            format!("refusal of exec for {REFUND} (wrong-target) by {AGENT}\n"),
        ]
        .concat(),
        "only the refusals recorded"
    );
    assert_eq!(state(&w, "2026-11-27 18:00:00"), "approved");
}

/// An approver revokes the unspent approval: `check` and `exec` refuse it. Someone
/// who did not approve it cannot; a spent one cannot be revoked.
#[test]
fn revoke_by_an_approver_stops_the_approval() {
    let (w, file, counter) = approved();
    w.refused(
        RAVI,
        &["revoke", REFUND, "--reason", "not mine"],
        6,
        "neither approved it nor holds the break-glass role",
    );
    let out = ok(&w.hitl(
        LEA,
        &["revoke", REFUND, "--reason", "the customer withdrew"],
    ));
    assert!(out.contains("approval revoked by lea@example.com"), "{out}");
    assert_eq!(state(&w, NOW), "revoked");
    refused(
        &exec_at(&w, NOW, AGENT, &file, &counter, &[]),
        23,
        "was revoked by lea@example.com",
    );
    assert_eq!(runs(&counter), 0);
    w.refused(
        LEA,
        &["revoke", REFUND, "--reason", "again"],
        6,
        "is revoked already",
    );
    assert_eq!(w.problem_codes(), Vec::<String>::new());

    let (w, file, counter) = approved();
    ok(&exec_at(&w, NOW, AGENT, &file, &counter, &[]));
    w.refused(
        LEA,
        &["revoke", REFUND, "--reason", "late"],
        6,
        "is executed already",
    );
}

/// `kill -9` of `hitl exec` at instants spread over its run: the command runs at most
/// once per approval whatever happens, the next `exec` either runs it (nothing was
/// spent) or is refused (it was), and `verify` stays clean.
#[test]
fn kill_9_at_any_instant_never_runs_a_command_twice() {
    for delay_ms in [0u64, 15, 30, 45, 60, 90, 130, 200] {
        let (w, file, counter) = approved();
        let script = format!("echo ran >> '{}'", counter.display());
        let key = w.key(AGENT);
        let mut child = std::process::Command::new(snapbox::cmd::cargo_bin!("hitl"))
            .env("HITL_TEST_NOW", NOW)
            .env("TZ", "UTC")
            .env("HOME", w.dir_path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("HITL_SIGNING_KEY")
            .current_dir(w.ws())
            .args([
                "exec",
                file.to_str().unwrap(),
                "--amount",
                "180",
                "--currency",
                "EUR",
                "--key",
                key.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let first = runs(&counter);
        assert!(first <= 1, "{delay_ms} ms: ran {first} times");
        let again = exec_at(&w, NOW, AGENT, &file, &counter, &[]);
        match again.status.code() {
            Some(0) => assert_eq!(first, 0, "{delay_ms} ms: ran before, and again"),
            Some(22) => {}
            other => panic!("{delay_ms} ms: {other:?} {}", stderr(&again)),
        }
        assert!(runs(&counter) <= 1, "{delay_ms} ms: ran twice");
        assert_eq!(w.problem_codes(), Vec::<String>::new(), "{delay_ms} ms");
    }
}

const OTTO: &str = "otto@example.com";
const ROSA: &str = "rosa@example.com";
const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";
/// When the robot task (tier 5, human-supervised) is proposed and approved: inside its
/// `robot-shift` window, before it expires.
const AT: &str = "2026-11-27 09:00:00";

/// The robot task proposed by the deploy agent and approved by otto (operator) and rosa
/// (safety supervisor) at [`AT`].
fn supervised_approved() -> AuditWs {
    let w = AuditWs::with_people(&[OTTO, ROSA, DEPLOY_BOT]);
    ok(&w.hitl_at(AT, DEPLOY_BOT, &["propose", "robot-pick-cell7"]));
    ok(&w.hitl_at(AT, OTTO, &["approve", "robot-pick-cell7"]));
    ok(&w.hitl_at(AT, ROSA, &["approve", "robot-pick-cell7"]));
    w
}

/// A human-supervised tier (the robot task, tier 5) runs only with its operator named
/// and signing: not without `--operator`, not with the agent's key, then with otto's.
#[test]
fn a_supervised_tier_runs_only_with_its_operator_signing() {
    let w = supervised_approved();
    let file = w.ws().join("audit/approvals/robot-pick-cell7.json");
    let counter = w.dir_path().join("counter");
    refused(
        &exec_at(&w, AT, DEPLOY_BOT, &file, &counter, &[]),
        24,
        "name the operator who supervises it (`--operator PRINCIPAL`)",
    );
    refused(
        &exec_at(&w, AT, DEPLOY_BOT, &file, &counter, &["--operator", OTTO]),
        24,
        "not by the operator otto@example.com: the operator's own key signs it",
    );
    assert_eq!(runs(&counter), 0);
    let o = exec_at(&w, AT, OTTO, &file, &counter, &["--operator", OTTO]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(runs(&counter), 1);
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// The agent records a spend of the supervised robot task itself, naming no operator,
/// by hand in its own signed commit: the engine's rule for a recorded spend refuses it
/// (the request takes nothing more), and `verify` names it.
#[test]
fn a_hand_made_spend_of_a_supervised_tier_without_its_operator_does_not_hold() {
    let w = supervised_approved();
    let last = w.event_file(7);
    let bytes = std::fs::read(&last).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(e["type"], "decision");
    let spent = serde_json::json!({
        "seq": 8,
        "prev": hitl_lib::audit::sha256_hex(&bytes),
        "type": "spent",
        "request": "robot-pick-cell7",
        "at": e["at"],
        "actor": {"principal": DEPLOY_BOT, "key": w.fingerprint(DEPLOY_BOT)},
        "config": e["config"],
        "approval_id": "0",
        "approval": "sha256:0",
        "command": "sha256:0",
        "operator": null,
    });
    let mut out = serde_json::to_vec_pretty(&spent).unwrap();
    out.push(b'\n');
    std::fs::write(w.event_file(8), out).unwrap();
    let index = w
        .ws()
        .join(hitl_lib::audit::request_index_path("robot-pick-cell7"));
    let mut listed = std::fs::read_to_string(&index).unwrap();
    listed.push_str("8\n");
    std::fs::write(&index, listed).unwrap();
    w.commit_all(Some(DEPLOY_BOT), "spend by hand");
    w.as_other_clone();
    let o = w.read_at(AT, &["status", "robot-pick-cell7", "--format", "json"]);
    let s: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("is spent by its operator"),
        "{s}"
    );
    assert_eq!(w.problem_codes(), ["execution-unfounded"]);
}
