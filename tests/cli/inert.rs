//! Text from people and agents is inert (issue 9, item 7), and what the approver sees is
//! what is recorded (item 6): control and invisible characters refused in comments and
//! reason codes, escaped by every renderer even when an event made by hand holds them;
//! request files that lead outside the workspace, FIFOs and devices refused unread; and
//! `show` / `explain` of a proposed id render the proposal the audit recorded.

use std::path::Path;
use std::process::{Command as Proc, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::audit::{AuditWs, copy_dir, ok};
use super::support::{NOW, example_workspace, stderr, stdout};

const AGENT: &str = "support-copilot@agents.example.com";
const LEA: &str = "lea@example.com";
const RAVI: &str = "ravi@example.com";

/// The bytes the test looks for: ESC (CSI, OSC 8 hyperlinks) and BEL.
fn assert_inert(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&0x1b) && !bytes.contains(&0x07),
        "{what} holds a raw ESC or BEL byte:\n{}",
        String::from_utf8_lossy(bytes)
    );
}

fn commits(w: &AuditWs) -> usize {
    w.git(&["rev-list", "HEAD"]).lines().count()
}

#[test]
fn inert_comments_and_reason_codes_with_control_or_invisible_characters_are_refused() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let before = commits(&w);
    for (comment, position, code) in [
        ("ok \u{1b}[2J", 4, "U+001B"),
        (
            "\u{1b}]8;;https://evil.example/\u{7}click\u{1b}]8;;\u{7}",
            1,
            "U+001B",
        ),
        ("zero\u{200b}width", 5, "U+200B"),
        ("\u{feff}bom", 1, "U+FEFF"),
        ("right\u{202e}txt.exe", 6, "U+202E"),
        ("isolate\u{2066}x", 8, "U+2066"),
        ("line\u{2028}separator", 5, "U+2028"),
        ("carriage\rreturn", 9, "U+000D"),
    ] {
        let o = w.hitl(LEA, &["approve", "refund-4711", "--comment", comment]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(6), "{comment:?}: {err}");
        assert!(err.contains("`--comment`"), "{comment:?}: {err}");
        assert!(err.contains(code), "{comment:?}: {err}");
        assert!(
            err.contains(&format!("at character {position}")),
            "{comment:?}: {err}"
        );
        assert_inert("the refusal", &o.stderr);
        assert!(!err.contains(['\u{200b}', '\u{feff}', '\u{202e}', '\u{2066}', '\u{2028}']));
        assert_eq!(commits(&w), before, "{comment:?}: nothing is recorded");
    }
    // The reason code of a rejection too (before the matrix is asked whether it knows it).
    let o = w.hitl(
        RAVI,
        &["reject", "refund-4711", "--reason-code", "wrong\u{1b}[31m"],
    );
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("`--reason-code`"), "{}", stderr(&o));
    assert_inert("the refusal", &o.stderr);
    assert_eq!(commits(&w), before);

    // A plain newline (and a tab) is allowed: a comment may span lines. `replay` indents
    // its lines under the comment, so none can pass for a line of its own.
    ok(&w.hitl(
        LEA,
        &[
            "approve",
            "refund-4711",
            "--comment",
            "duplicate confirmed\nsignature good\tby me",
        ],
    ));
    let o = w.read(&["replay", "refund-4711"]);
    let text = stdout(&o);
    assert!(
        text.contains("    comment: duplicate confirmed\n             signature good\\tby me\n"),
        "{text}"
    );
}

/// Rewrites the first decision event's comment and reason code as an attacker with git
/// plumbing would (no hitl check sees it), then commits it unsigned.
fn hand_made_decision(w: &AuditWs, seq: u64) {
    let path = w.event_file(seq);
    let mut e: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(e["type"], "decision");
    e["comment"] = "wiped \u{1b}[2J\u{1b}[H\u{1b}]8;;https://evil.example/\u{7}click\u{1b}]8;;\u{7} \u{202e}gnp.exe\nforged line".into();
    e["reason_code"] = "code\u{1b}[31m\nseq 99 approved".into();
    e["actor"]["principal"] = "lea@example.com\u{1b}[1A".into();
    let mut bytes = serde_json::to_vec_pretty(&e).unwrap();
    bytes.push(b'\n');
    std::fs::write(&path, bytes).unwrap();
    w.git(&["add", "-A"]);
    w.git(&["commit", "-q", "--no-gpg-sign", "-m", "hand-made"]);
}

#[test]
fn inert_log_and_replay_escape_escape_sequences_a_hand_made_event_holds() {
    let w = AuditWs::new();
    w.propose_and_approve();
    hand_made_decision(&w, 6);
    for args in [
        &["log"][..],
        &["log", "--request", "refund-4711"],
        &["log", "--type", "decision"],
        &["replay", "refund-4711"],
    ] {
        let o = w.read(args);
        assert_inert(&format!("stdout of {args:?}"), &o.stdout);
        assert_inert(&format!("stderr of {args:?}"), &o.stderr);
        let text = stdout(&o);
        assert!(!text.contains('\u{202e}'), "{args:?}: {text}");
        // One event, one line: the newline in the reason code is shown, not obeyed.
        assert!(
            !text.lines().any(|l| l.starts_with("seq 99")),
            "{args:?}: {text}"
        );
        if args[0] == "log" {
            assert!(
                text.contains("code\\u{001b}[31m\\nseq 99 approved"),
                "{text}"
            );
        }
    }
    let text = stdout(&w.read(&["replay", "refund-4711"]));
    for needle in [
        "comment: wiped \\u{001b}[2J\\u{001b}[H\\u{001b}]8;;https://evil.example/\\u{0007}click",
        "\\u{202e}gnp.exe\n             forged line",
        "lea@example.com\\u{001b}[1A",
    ] {
        assert!(text.contains(needle), "`{needle}` missing in:\n{text}");
    }
    // JSON carries the recorded text as it is (escaped by JSON itself): no raw bytes.
    let o = w.read(&["log", "--format", "json"]);
    assert_inert("log --format json", &o.stdout);
    let o = w.read(&["replay", "refund-4711", "--format", "json"]);
    assert_inert("replay --format json", &o.stdout);
}

/// Runs the binary at [`NOW`] in `dir` and kills it after `limit`: a command that
/// opened a FIFO would wait for a writer forever. Its output goes to files, so a full
/// pipe cannot block it either.
fn run_with_deadline(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let out = TempDir::new().unwrap();
    let (o, e) = (out.path().join("out"), out.path().join("err"));
    let mut child = Proc::new(snapbox::cmd::cargo_bin!("hitl"))
        .args(args)
        .current_dir(dir)
        .env("HITL_TEST_NOW", NOW)
        .env("TZ", "UTC")
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("COLUMNS")
        .env_remove("HITL_SIGNING_KEY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`hitl {}` still ran after {limit:?}: it blocked",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    }
}

fn mkfifo(path: &Path) {
    let o = Proc::new("mkfifo").arg(path).output().expect("mkfifo runs");
    assert!(
        o.status.success(),
        "mkfifo: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn inert_request_files_leading_outside_fifos_and_devices_are_refused_unread() {
    let ws = example_workspace(&["refund-4711"]);
    let dir = ws.path();
    copy_dir(
        &super::support::root().join("policies"),
        &dir.join("policies"),
    );
    let outside = TempDir::new().unwrap();
    // A valid proposal outside the workspace, with a marker that must never be printed.
    let secret = std::fs::read_to_string(dir.join("requests/refund-4711.yaml"))
        .unwrap()
        .replace("id: refund-4711", "id: secret")
        .replace("Customer reports", "TOPSECRET customer reports");
    std::fs::write(outside.path().join("secret.yaml"), &secret).unwrap();
    let req = dir.join("requests");
    std::os::unix::fs::symlink(outside.path().join("secret.yaml"), req.join("secret.yaml"))
        .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", req.join("passwd.yaml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", req.join("zero.yaml")).unwrap();
    mkfifo(&req.join("fifo.yaml"));
    mkfifo(&outside.path().join("fifo.yaml"));
    // A symlink that stays inside the workspace is followed.
    std::os::unix::fs::symlink("refund-4711.yaml", req.join("alias.yaml")).unwrap();

    let limit = Duration::from_secs(20);
    let outside_fifo = outside.path().join("fifo.yaml");
    let outside_fifo = outside_fifo.to_str().unwrap();
    for (arg, file, why) in [
        (
            "secret",
            "requests/secret.yaml",
            "leads outside the workspace, to `",
        ),
        (
            "passwd",
            "requests/passwd.yaml",
            "leads outside the workspace, to `/etc/passwd`",
        ),
        (
            "zero",
            "requests/zero.yaml",
            "leads outside the workspace, to `/dev/zero`",
        ),
        (
            "fifo",
            "requests/fifo.yaml",
            "it is a FIFO (named pipe), not a regular file",
        ),
        (
            "requests/fifo.yaml",
            "requests/fifo.yaml",
            "it is a FIFO (named pipe)",
        ),
        (outside_fifo, outside_fifo, "it is a FIFO (named pipe)"),
    ] {
        for cmd in [
            &["show", arg][..],
            &["show", arg, "--format", "json"],
            &["explain", arg],
            &["policy", "eval", arg],
            &["policy", "input", arg],
            &["propose", arg, "--key", "/nonexistent-key"],
        ] {
            let o = run_with_deadline(dir, cmd, limit);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{cmd:?}: {err}");
            assert!(
                err.contains(&format!("error: {file}:1:1: not read: ")) && err.contains(why),
                "{cmd:?}: {err}"
            );
            assert!(o.stdout.is_empty(), "{cmd:?}: {}", stdout(&o));
            for leak in ["TOPSECRET", "root:", "\0"] {
                assert!(!err.contains(leak), "{cmd:?} printed `{leak}`: {err}");
            }
        }
    }
    let o = run_with_deadline(dir, &["show", "alias"], limit);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("refund-4711 · tier 3"),
        "{}",
        stdout(&o)
    );

    // lint reports each by name (an error each) and goes on with the others.
    let o = run_with_deadline(dir, &["lint"], limit);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}{}", stderr(&o));
    for file in ["fifo", "passwd", "secret", "zero"] {
        assert!(
            text.contains(&format!("requests/{file}.yaml:1:1")),
            "{file} missing in:\n{text}"
        );
    }
    assert!(
        !text.contains("TOPSECRET") && !text.contains("root:"),
        "{text}"
    );

    // A `requests/` folder that is a symlink out of the workspace leads out too.
    let ws2 = example_workspace(&[]);
    std::fs::create_dir(outside.path().join("reqs")).unwrap();
    std::fs::write(outside.path().join("reqs/refund-4711.yaml"), &secret).unwrap();
    std::os::unix::fs::symlink(outside.path().join("reqs"), ws2.path().join("requests")).unwrap();
    let o = run_with_deadline(ws2.path(), &["show", "refund-4711"], limit);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("leads outside the workspace"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("TOPSECRET"));
}

#[test]
fn inert_show_and_explain_render_the_recorded_proposal_not_the_edited_file() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let file = w.ws().join("requests/refund-4711.yaml");
    let recorded = std::fs::read_to_string(&file).unwrap();

    // Unchanged: the recorded proposal, said in JSON, no warning.
    let o = w.read(&["show", "refund-4711", "--format", "json"]);
    let pack: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pack["source"], "audit");
    assert_eq!(pack["working_copy"], "same");
    let digest = format!(
        "sha256:{}",
        hitl_lib::audit::sha256_hex(recorded.as_bytes())
    );
    assert_eq!(pack["recorded_proposal"], digest.as_str());
    let text = stdout(&w.read(&["show", "refund-4711"]));
    assert!(text.starts_with("refund-4711 · tier 3"), "{text}");
    assert!(!text.contains("warning:"), "{text}");

    // The agent rewrites the file to a harmless-looking 5 EUR refund.
    std::fs::write(&file, recorded.replace("180", "5")).unwrap();
    let warning = format!(
        "warning: `requests/refund-4711.yaml` differs from the proposal recorded in the audit ({digest}); showing the recorded one\n\n"
    );
    let o = w.read(&["show", "refund-4711"]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(text.starts_with(&warning), "{text}");
    assert!(text.contains("amount: 180.00 EUR"), "{text}");
    assert!(
        !text.contains("5.00 EUR") && !text.contains("Refund 5 EUR"),
        "{text}"
    );

    let o = w.read(&["show", "refund-4711", "--format", "json"]);
    let pack: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pack["source"], "audit");
    assert_eq!(pack["working_copy"], "differs");
    assert_eq!(pack["working_file"], "requests/refund-4711.yaml");
    assert_eq!(pack["recorded_proposal"], digest.as_str());
    assert_eq!(pack["action"]["amount"]["value"], 180.0);
    assert!(
        pack["file"].as_str().unwrap().starts_with("audit/blobs/"),
        "{pack}"
    );

    let md = stdout(&w.read(&["show", "refund-4711", "--format", "markdown"]));
    assert!(
        md.starts_with("> **Warning:** \\`requests/refund-4711.yaml\\` differs from the proposal recorded in the audit"),
        "{md}"
    );
    assert!(md.contains("180.00 EUR"), "{md}");

    let text = stdout(&w.read(&["explain", "refund-4711"]));
    assert!(text.starts_with(&warning), "{text}");
    let o = w.read(&["explain", "refund-4711", "--format", "json"]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["source"], "audit");
    assert_eq!(e["working_copy"], "differs");
    assert_eq!(e["tier"], 3);

    // A path to the edited file shows that file, warning that the audit holds another.
    let text = stdout(&w.read(&["show", "requests/refund-4711.yaml"]));
    assert!(
        text.starts_with(&format!(
            "warning: the audit holds another proposal under the id `refund-4711` ({digest}); this is `requests/refund-4711.yaml`, not what a decision on `refund-4711` decides on"
        )),
        "{text}"
    );
    assert!(text.contains("amount: 5.00 EUR"), "{text}");
    let o = w.read(&["show", "requests/refund-4711.yaml", "--format", "json"]);
    let pack: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pack["source"], "file");
    assert_eq!(pack["working_copy"], "differs");

    // The file gone: the recorded one, with a note.
    std::fs::remove_file(&file).unwrap();
    let text = stdout(&w.read(&["show", "refund-4711"]));
    assert!(
        text.starts_with(&format!(
            "note: there is no `requests/refund-4711.yaml`; showing the proposal recorded in the audit ({digest})"
        )),
        "{text}"
    );
    assert!(text.contains("amount: 180.00 EUR"), "{text}");

    // A proposal that came from standard input, never in `requests/`, shows by id.
    let other = w.ws().join("requests/refund-4712.yaml");
    let bytes = std::fs::read(&other).unwrap();
    std::fs::remove_file(&other).unwrap();
    let key = w.key(AGENT);
    let o = w
        .command(NOW)
        .env_remove("HITL_SIGNING_KEY")
        .args(["propose", "-", "--key", key.to_str().unwrap()])
        .stdin(bytes)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = w.read(&["explain", "refund-4712", "--format", "json"]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["source"], "audit", "{}", stderr(&o));
    assert_eq!(e["working_copy"], "missing");
    assert_eq!(e["request"], "refund-4712");
}
