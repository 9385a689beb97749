//! Deciding with a person in front of it: `hitl review` on a pseudo-terminal (the pack,
//! the status, the choice, reason codes, the tier-4 confirmation, skip, and the refusal
//! without a terminal), the summary `approve` shows before it signs, and batch approval
//! of `batchable` tiers. Real keys, real git, the real binary.

use std::process::{Command as Proc, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::audit::{AGENT, AuditWs, LEA, RAVI, ok};
use super::support::{NOW, stderr, stdout};

const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";
const INES: &str = "ines@example.com";
const SAM: &str = "sam@example.com";
const IAM: &str = "iam-grant-ci-deployer";

/// Arrow down, and Enter, as a terminal sends them.
const DOWN: &str = "\x1b[B";
const ENTER: &str = "\r";

fn status(w: &AuditWs, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&w.read(&["status", id, "--format", "json"]))).unwrap()
}

fn head(w: &AuditWs) -> String {
    w.git(&["rev-parse", "HEAD"])
}

/// Runs `hitl review ID --key KEY-OF-WHO` on a pseudo-terminal (`script`) in the
/// workspace at [`NOW`]. For each step, waits until its prompt shows (after the previous
/// one), then types its input; input that a prompt did not take (typed before the
/// terminal was ready) is typed again when the next prompt does not show within a few
/// seconds. Everything ends within 60 s. Returns the status and what the terminal
/// showed.
fn review_on_terminal(
    w: &AuditWs,
    who: &str,
    id: &str,
    steps: &[(&str, &str)],
) -> (ExitStatus, String) {
    use std::io::{Read as _, Write as _};
    let bin = snapbox::cmd::cargo_bin!("hitl");
    let key = w.key(who);
    let mut child = Proc::new("script")
        .args([
            "-qec",
            &format!("'{}' review {id} --key '{}'", bin.display(), key.display()),
            "/dev/null",
        ])
        .current_dir(w.ws())
        .env("HITL_TEST_NOW", NOW)
        .env("HOME", w.dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("HITL_SIGNING_KEY")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // `script` ends the session when its input closes: keep it open until the end.
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let shown = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = || String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
    // Where `marker` shows after byte `from`: the end of it.
    let find = |from: usize, marker: &str| {
        let t = text();
        t.get(from..)
            .and_then(|rest| rest.find(marker))
            .map(|at| from + at + marker.len())
    };
    let mut from = 0;
    let mut pending: Option<&str> = None;
    for (prompt, input) in steps {
        // Wait for this prompt, typing the previous input again if it was not taken.
        let mut typed_at = Instant::now();
        let seen = loop {
            if let Some(end) = find(from, prompt) {
                break Some(end);
            }
            if child.try_wait().unwrap().is_some() {
                break None;
            }
            assert!(
                Instant::now() < deadline,
                "no prompt `{prompt}`: {}",
                text()
            );
            if let Some(previous) = pending
                && typed_at.elapsed() > Duration::from_secs(5)
            {
                let _ = stdin.write_all(previous.as_bytes());
                let _ = stdin.flush();
                typed_at = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let Some(end) = seen else { break };
        from = end;
        // Let the prompt finish drawing and read the keyboard.
        std::thread::sleep(Duration::from_millis(150));
        let _ = stdin.write_all(input.as_bytes());
        let _ = stdin.flush();
        pending = Some(input);
    }
    let mut typed_at = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`hitl review {id}` did not end on the terminal: {}", text());
        }
        if let Some(last) = pending
            && typed_at.elapsed() > Duration::from_secs(5)
        {
            let _ = stdin.write_all(last.as_bytes());
            let _ = stdin.flush();
            typed_at = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    reader.join().unwrap();
    let shown = text();
    (status, shown)
}

/// The decision event's JSON (the last event of the audit).
fn last_event(w: &AuditWs) -> serde_json::Value {
    let log: serde_json::Value =
        serde_json::from_str(&ok(&w.read(&["log", "--format", "json"]))).unwrap();
    log.as_array().unwrap().last().unwrap().clone()
}

#[test]
fn review_shows_the_pack_and_the_status_then_approves_on_a_terminal() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    // The cursor starts on skip: one down (it wraps) is approve.
    let (code, tty) = review_on_terminal(
        &w,
        LEA,
        "refund-4711",
        &[
            ("decision on", &format!("{DOWN}{ENTER}")),
            ("comment", &format!("checked the charge{ENTER}")),
        ],
    );
    assert_eq!(code.code(), Some(0), "{tty}");
    for shown in [
        "Evidence pack",
        "refund-4711: pending_approval (tier 3",
        "0 of 1 approvals; still needed: support-lead",
        "approving refund-4711",
        "refund-4711: approved by lea@example.com",
    ] {
        assert!(tty.contains(shown), "`{shown}` not shown: {tty}");
    }
    let s = status(&w, "refund-4711");
    assert_eq!(s["state"], "approved", "{s}");
    assert_eq!(s["decisions"][0]["by"], LEA);
    assert_eq!(s["decisions"][0]["decision"], "approved");
    let e = last_event(&w);
    assert_eq!(e["comment"], "checked the charge", "{e}");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

#[test]
fn review_rejects_with_a_reason_code_chosen_on_the_terminal() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    // skip -> approve -> reject; then the third reject code, `wrong-target`; no comment.
    let (code, tty) = review_on_terminal(
        &w,
        LEA,
        "refund-4711",
        &[
            ("decision on", &format!("{DOWN}{DOWN}{ENTER}")),
            ("reason code", &format!("{DOWN}{DOWN}{ENTER}")),
            ("comment", ENTER),
        ],
    );
    assert_eq!(code.code(), Some(0), "{tty}");
    assert!(tty.contains("rejected by lea@example.com"), "{tty}");
    let s = status(&w, "refund-4711");
    assert_eq!(s["state"], "rejected", "{s}");
    assert_eq!(s["decisions"][0]["reason_code"], "wrong-target", "{s}");
    let e = last_event(&w);
    assert!(
        e.get("comment").is_none_or(serde_json::Value::is_null),
        "{e}"
    );
    assert_eq!(w.problem_codes(), Vec::<String>::new());

    // Rejected, it awaits no decision: shown, nothing asked, refused.
    let before = head(&w);
    let (code, tty) = review_on_terminal(&w, LEA, "refund-4711", &[]);
    assert_eq!(code.code(), Some(6), "{tty}");
    assert!(tty.contains("refund-4711: rejected"), "{tty}");
    assert!(
        tty.contains("`refund-4711` awaits no decision (it is rejected)"),
        "{tty}"
    );
    assert!(!tty.contains("decision on"), "{tty}");
    assert_eq!(head(&w), before);
}

#[test]
fn review_at_tier_4_records_only_when_the_id_is_typed() {
    let w = AuditWs::with_people(&[DEPLOY_BOT, INES, SAM]);
    ok(&w.hitl(DEPLOY_BOT, &["propose", IAM]));
    let before = head(&w);
    let approve = format!("{DOWN}{ENTER}");
    let (code, tty) = review_on_terminal(
        &w,
        INES,
        IAM,
        &[
            ("decision on", &approve),
            ("comment", ENTER),
            ("type the request id", &format!("iam-grant{ENTER}")),
        ],
    );
    assert_eq!(code.code(), Some(6), "{tty}");
    assert!(
        tty.contains("the id typed (`iam-grant`) is not `iam-grant-ci-deployer`: nothing recorded"),
        "{tty}"
    );
    assert_eq!(head(&w), before, "nothing recorded");
    assert_eq!(status(&w, IAM)["approvals"], 0);

    let (code, tty) = review_on_terminal(
        &w,
        INES,
        IAM,
        &[
            ("decision on", &approve),
            ("comment", ENTER),
            ("type the request id", &format!("{IAM}{ENTER}")),
        ],
    );
    assert_eq!(code.code(), Some(0), "{tty}");
    assert!(
        tty.contains("1 of 2 approvals, still needed: security-approver"),
        "{tty}"
    );
    let s = status(&w, IAM);
    assert_eq!(s["approvals"], 1, "{s}");
    assert_eq!(s["decisions"][0]["by"], INES);
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

#[test]
fn review_skip_records_nothing() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let before = head(&w);
    let (code, tty) = review_on_terminal(&w, LEA, "refund-4711", &[("decision on", ENTER)]);
    assert_eq!(code.code(), Some(0), "{tty}");
    assert!(
        tty.contains("refund-4711: skipped, nothing recorded"),
        "{tty}"
    );
    assert_eq!(head(&w), before);
    assert_eq!(status(&w, "refund-4711")["state"], "pending_approval");
}

/// A comment typed at the prompt is checked as `--comment` is: an invisible character
/// (a right-to-left override) is refused and nothing is recorded.
#[test]
fn review_refuses_a_comment_with_an_invisible_character() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let before = head(&w);
    let (code, tty) = review_on_terminal(
        &w,
        LEA,
        "refund-4711",
        &[
            ("decision on", &format!("{DOWN}{ENTER}")),
            ("comment", &format!("fine\u{202e}enif{ENTER}")),
        ],
    );
    assert_eq!(code.code(), Some(6), "{tty}");
    assert!(tty.contains("U+202E"), "{tty}");
    assert_eq!(head(&w), before);
}

#[test]
fn review_without_a_terminal_refuses_and_names_the_commands() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let before = head(&w);
    let o = w.hitl(LEA, &["review", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert!(
        err.starts_with("error: `hitl review` prompts on a terminal"),
        "{err}"
    );
    for command in [
        "`hitl approve refund-4711`",
        "`hitl reject refund-4711 --reason-code CODE` (CODE: insufficient-evidence, policy-violation,",
        "`hitl request-changes refund-4711 --reason-code CODE` (CODE: narrow-scope,",
    ] {
        assert!(err.contains(command), "`{command}` not named: {err}");
    }
    assert_eq!(head(&w), before, "nothing recorded");
}

#[test]
fn approve_shows_what_it_signs_on_stderr_and_keeps_stdout_the_result() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("refund-4711: approved by lea@example.com (event 6, commit "),
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 7, "{err}");
    for line in [
        "approving refund-4711\n",
        "  action:    payments.refund\n",
        "  target:    payments/charge/ch_981\n",
        "  amount:    180.00 EUR\n",
        "  tier:      3 (financial or customer impact)\n",
        "  policy:    allowed",
        "  approvals: 0 of 1 so far, still needed: support-lead\n",
    ] {
        assert!(err.contains(line), "`{line}` not in: {err}");
    }
    // Reject shows no summary.
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    let o = w.hitl(
        RAVI,
        &["reject", "refund-4712", "--reason-code", "too-risky"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

/// Two requests of a tier-2 (`batchable`) copy of the CRM update, proposed by the agent.
fn two_crm_requests(w: &AuditWs) {
    let text = std::fs::read_to_string(w.ws().join("requests/crm-stage-acme.yaml")).unwrap();
    let beta = text.replace("id: crm-stage-acme", "id: crm-stage-beta");
    assert_ne!(beta, text);
    std::fs::write(w.ws().join("requests/crm-stage-beta.yaml"), beta).unwrap();
    ok(&w.hitl(AGENT, &["propose", "crm-stage-acme"]));
    ok(&w.hitl(AGENT, &["propose", "crm-stage-beta"]));
}

#[test]
fn batchable_requests_are_approved_in_one_call_one_commit_each() {
    let w = AuditWs::new();
    two_crm_requests(&w);
    let before = head(&w);
    let o = w.hitl(RAVI, &["approve", "crm-stage-acme", "crm-stage-beta"]);
    let out = ok(&o);
    let results: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(": approved by ravi@example.com"))
        .collect();
    assert_eq!(results.len(), 2, "{out}");
    assert!(results[0].starts_with("crm-stage-acme: "), "{out}");
    assert!(results[1].starts_with("crm-stage-beta: "), "{out}");
    let commits = w.git(&["rev-list", &format!("{}..HEAD", before.trim())]);
    assert_eq!(commits.lines().count(), 2, "one commit per decision");
    for id in ["crm-stage-acme", "crm-stage-beta"] {
        assert_eq!(status(&w, id)["state"], "approved", "{id}");
    }
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

#[test]
fn a_batch_with_a_tier_that_is_not_batchable_records_nothing() {
    let w = AuditWs::new();
    two_crm_requests(&w);
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let before = head(&w);
    let o = w.hitl(RAVI, &["approve", "crm-stage-acme", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "not approved together: `refund-4711` (tier 3) in a tier the matrix does not mark `batchable`; nothing recorded"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    assert_eq!(head(&w), before);

    let o = w.hitl(RAVI, &["approve", "crm-stage-acme", "crm-stage-acme"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(head(&w), before);
}

/// Both batchable, but ravi may approve only the first (the tier-1 draft is the
/// requester's to send): the first is recorded, the second refused, and the error says
/// which is which.
#[test]
fn a_batch_that_fails_midway_says_what_was_recorded() {
    let w = AuditWs::new();
    two_crm_requests(&w);
    ok(&w.hitl(AGENT, &["propose", "draft-reply-5531"]));
    let before = head(&w);
    let o = w.hitl(
        RAVI,
        &[
            "approve",
            "crm-stage-acme",
            "draft-reply-5531",
            "crm-stage-beta",
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("crm-stage-acme: approved by ravi@example.com"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(
            "the batch stopped at `draft-reply-5531`: recorded `crm-stage-acme` (one commit each); not recorded: `draft-reply-5531`, `crm-stage-beta`"
        ),
        "{}",
        stderr(&o)
    );
    let commits = w.git(&["rev-list", &format!("{}..HEAD", before.trim())]);
    assert_eq!(commits.lines().count(), 1);
    assert_eq!(status(&w, "crm-stage-beta")["state"], "pending_approval");
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}
