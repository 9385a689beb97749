//! A new user's first run, on the real clock (no test clock): `hitl init`, a first
//! commit made as people make it, propose, approve, verify; `allowed_signers` prefilled
//! from git's SSH signing configuration; and `hitl demo`.

use std::path::Path;
use std::process::Output;

use snapbox::cmd::cargo_bin;
use tempfile::TempDir;

use super::audit::{keygen, ok, sh};
use super::support::{stderr, stdout};

/// The binary on the real clock with `home` as `$HOME` and no system git configuration.
fn hitl_in(home: &Path, dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(cargo_bin!("hitl"))
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("HITL_TEST_NOW")
        .env_remove("HITL_SIGNING_KEY")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("COLUMNS")
        .output()
        .expect("hitl runs")
}

fn public(key: &Path) -> String {
    std::fs::read_to_string(format!("{}.pub", key.display()))
        .unwrap()
        .trim()
        .to_owned()
}

fn codes(verify_json: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(verify_json).unwrap();
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

const AGENT: &str = "support-copilot@agents.example.com";
const LEA: &str = "lea@example.com";

/// `init`, keys added to `allowed_signers`, `git add -A && git commit` without any
/// signing configured, then the agent proposes and lea approves: `verify` is clean,
/// names the unsigned first commit as the root of trust, and git accepts every commit
/// hitl made.
#[test]
fn init_then_an_unsigned_first_commit_then_propose_and_approve_verifies_clean() {
    let home = TempDir::new().unwrap();
    let h = home.path();
    let keys = h.join("keys");
    std::fs::create_dir(&keys).unwrap();
    let out = hitl_in(h, h, &["init", "ws"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ws = h.join("ws");
    assert!(
        !ws.join("audit").exists(),
        "init writes nothing under audit/"
    );

    let agent = keygen(&keys, "agent", AGENT);
    let lea = keygen(&keys, "lea", LEA);
    let mut signers = std::fs::read_to_string(ws.join("allowed_signers")).unwrap();
    for (who, key) in [(AGENT, &agent), (LEA, &lea)] {
        signers.push_str(&format!(
            "{who} namespaces=\"git,hitl,hitl-approval\" {}\n",
            public(key)
        ));
    }
    std::fs::write(ws.join("allowed_signers"), signers).unwrap();
    // As anyone would: no signing key, no gpg configuration at all.
    ok(&sh(&ws, "git", &["add", "-A"]));
    ok(&sh(
        &ws,
        "git",
        &[
            "-c",
            "user.name=New User",
            "-c",
            "user.email=new@example.com",
            "commit",
            "-q",
            "-m",
            "hitl workspace",
        ],
    ));
    let first = ok(&sh(&ws, "git", &["rev-parse", "HEAD"]))
        .trim()
        .to_owned();

    let out = hitl_in(
        h,
        &ws,
        &["propose", "refund-4711", "--key", agent.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("awaiting approval by support-lead"),
        "{}",
        stdout(&out)
    );
    let out = hitl_in(
        h,
        &ws,
        &["approve", "refund-4711", "--key", lea.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = hitl_in(h, &ws, &["verify", "--format", "json"]);
    assert_eq!(codes(&out.stdout), Vec::<String>::new(), "{}", stdout(&out));
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["trust_root"]["commit"], first.as_str());
    let out = hitl_in(h, &ws, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!(
            "trust root: commit {first}, allowed_signers sha256:"
        )),
        "{}",
        stdout(&out)
    );

    // Every commit after the first is hitl's, and git accepts its signature.
    let hitl_commits = ok(&sh(&ws, "git", &["rev-list", &format!("{first}..HEAD")]));
    assert_eq!(hitl_commits.lines().count(), 2, "propose and approve");
    for c in hitl_commits.lines() {
        ok(&sh(
            &ws,
            "git",
            &[
                "-c",
                "gpg.ssh.allowedSignersFile=allowed_signers",
                "verify-commit",
                c,
            ],
        ));
    }

    // A second root of trust brought in by a merge (an orphan history with its own
    // `allowed_signers`, merged keeping our tree) is named; so is the merge, which
    // changes the audit and the trust files against its second parent, unsigned.
    let branch = ok(&sh(&ws, "git", &["symbolic-ref", "--short", "HEAD"]));
    ok(&sh(&ws, "git", &["checkout", "-q", "--orphan", "other"]));
    ok(&sh(&ws, "git", &["rm", "-r", "-q", "--cached", "."]));
    let mallory = keygen(&keys, "mallory", "mallory@example.com");
    std::fs::write(
        ws.join("allowed_signers"),
        format!("mallory@example.com {}\n", public(&mallory)),
    )
    .unwrap();
    ok(&sh(&ws, "git", &["add", "allowed_signers"]));
    ok(&sh(
        &ws,
        "git",
        &[
            "-c",
            "user.name=M",
            "-c",
            "user.email=m@example.com",
            "commit",
            "-q",
            "-m",
            "other root",
        ],
    ));
    let orphan = ok(&sh(&ws, "git", &["rev-parse", "HEAD"]))
        .trim()
        .to_owned();
    ok(&sh(&ws, "git", &["checkout", "-q", "-f", branch.trim()]));
    ok(&sh(
        &ws,
        "git",
        &[
            "-c",
            "user.name=M",
            "-c",
            "user.email=m@example.com",
            "merge",
            "-q",
            "--allow-unrelated-histories",
            "-s",
            "ours",
            "-m",
            "merge",
            "other",
        ],
    ));
    let out = hitl_in(h, &ws, &["verify", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let mut found = codes(&out.stdout);
    found.sort();
    assert_eq!(
        found,
        ["commit-unsigned", "history-merge", "trust-root"],
        "{}",
        stdout(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "trust-root")
        .unwrap();
    assert_eq!(second["commit"], orphan.as_str());
    assert_eq!(report["trust_root"]["commit"], first.as_str());
}

/// Someone who already signs commits with SSH (git's `user.email`, `user.signingkey`,
/// `gpg.format=ssh`) finds themselves in `allowed_signers`, with the key git signs with.
#[test]
fn init_prefills_allowed_signers_from_git_ssh_signing() {
    for literal in [false, true] {
        let home = TempDir::new().unwrap();
        let h = home.path();
        let key = keygen(h, "id_ed25519", "me@laptop");
        let signingkey = if literal {
            format!("key::{}", public(&key))
        } else {
            format!("{}.pub", key.display())
        };
        std::fs::write(
            h.join(".gitconfig"),
            format!(
                "[user]\n\temail = alice@example.com\n\tsigningkey = {signingkey}\n[gpg]\n\tformat = ssh\n"
            ),
        )
        .unwrap();
        let out = hitl_in(h, h, &["init", "ws"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(
                "added you to `allowed_signers` as `alice@example.com`, with the key of git's `user.signingkey`"
            ),
            "{}",
            stdout(&out)
        );
        let signers = std::fs::read_to_string(h.join("ws/allowed_signers")).unwrap();
        let lines: Vec<&str> = signers.lines().filter(|l| !l.starts_with('#')).collect();
        let key_part: String = public(&key)
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            lines,
            [format!(
                "alice@example.com namespaces=\"git,hitl,hitl-approval\" {key_part}"
            )],
            "literal: {literal}"
        );
    }
}

/// `hitl demo --dir DIR` on the real clock: every step ends as told, the workspace it
/// leaves verifies, git accepts the signature of every commit in it, and its requests
/// are live (nothing expired, no stale source) because they were made today.
#[test]
fn the_demo_runs_the_lifecycle_and_leaves_a_workspace_that_verifies() {
    let home = TempDir::new().unwrap();
    let h = home.path();
    let out = hitl_in(h, h, &["demo", "--dir", "kept"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for step in [
        "$ hitl show refund-4711\n",
        "$ hitl propose refund-4711 --key keys/support-copilot@agents.example.com\n",
        "may not decide it (separation of duties)\n(exit 6, as expected)\n",
        "refund-4711: approved by lea@example.com",
        "refund-4712: rejected by ravi@example.com",
        "iam-grant-ci-deployer: 1 of 2 approvals, still needed: security-approver\n",
        "already has an approval from role `iam-owner`",
        "iam-grant-ci-deployer: quorum reached",
        "iam-grant-ci-deployer: approved (tier 4",
        "allowed: `payments.refund` on `payments/charge/ch_981` up to 180 EUR",
        "it approves at most 180 EUR\n(exit 16, as expected)\n",
        "not `payments/charge/ch_982`\n(exit 15, as expected)\n",
        "exec: `refund-4711` verification passed\n",
        "it is single-use\n(exit 22, as expected)\n",
        "ok: no problems\n",
        "same outcome\n",
        "Try next, in `kept`",
    ] {
        assert!(text.contains(step), "`{step}` missing in:\n{text}");
    }
    assert!(!text.contains("EXPIRED"), "{text}");
    assert!(!text.contains("stale"), "{text}");

    let ws = h.join("kept");
    let out = hitl_in(h, &ws, &["verify", "--format", "json"]);
    assert_eq!(codes(&out.stdout), Vec::<String>::new(), "{}", stdout(&out));
    assert_eq!(out.status.code(), Some(0));
    let commits = ok(&sh(&ws, "git", &["rev-list", "HEAD"]));
    assert_eq!(
        commits.lines().count(),
        12,
        "first commit, 3 proposals, 4 decisions, the refund spent, executed and verified, the second run's refusal"
    );
    for c in commits.lines() {
        ok(&sh(&ws, "git", &["verify-commit", c]));
    }
    // The demo's keys stay out of the repository.
    let tracked = ok(&sh(&ws, "git", &["ls-files"]));
    assert!(!tracked.contains("keys/"), "{tracked}");
    assert!(ws.join("keys/lea@example.com").is_file());

    // Every example in the demo workspace was made today: live, not expired, no stale
    // source, except `robot-pick-cell7`, which expires 5.5 hours before the snapshot.
    for (id, expired) in [
        ("refund-4711", false),
        ("email-customer-5531", false),
        ("robot-pick-cell7", true),
    ] {
        let out = hitl_in(h, &ws, &["show", id, "--format", "json"]);
        let pack: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(pack["expired"], expired, "{id}");
        let codes: Vec<&str> = pack["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap())
            .collect();
        assert!(!codes.contains(&"stale-source"), "{id}: {codes:?}");
    }

    // A folder that is not empty is refused before anything is written.
    let before = super::support::tree(&ws);
    let out = hitl_in(h, h, &["demo", "--dir", "kept"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        stderr(&out),
        "error: refusing to run the demo in `".to_owned()
            + &h.join("kept").display().to_string()
            + "`: the folder is not empty\n  = hint: name a new or empty folder with `--dir`\n"
    );
    assert_eq!(super::support::tree(&ws), before);
}

/// Without `--dir` the demo's workspace is temporary: nothing is left behind.
#[test]
fn the_demo_without_dir_leaves_nothing_behind() {
    let home = TempDir::new().unwrap();
    let h = home.path();
    let tmp = h.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = std::process::Command::new(cargo_bin!("hitl"))
        .arg("demo")
        .current_dir(h)
        .env("HOME", h)
        .env("TMPDIR", &tmp)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("HITL_TEST_NOW")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("The workspace was temporary and is gone."));
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "a scratch folder was left"
    );
}

/// git's `user.email` becomes a principal in the root of trust: one that would add
/// options, principals, patterns or lines to `allowed_signers` is refused, and nothing
/// of it is written; a signing key that is a FIFO or a device is never read.
#[test]
fn init_never_writes_a_hostile_user_email_or_reads_a_fifo_as_a_key() {
    let evil = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOPzHUaCT5HPDK4B6qrfNcl6lDpC0SWBnNZ+gt5Q9N1M";
    for email in [
        format!("me@example.com namespaces=\"git,hitl,hitl-approval\" {evil}"),
        "me@example.com\nlea@example.com".to_owned(),
        "*".to_owned(),
        "a@b,lea@example.com".to_owned(),
    ] {
        let home = TempDir::new().unwrap();
        let h = home.path();
        let key = keygen(h, "id_ed25519", "me@laptop");
        let quoted = email
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        std::fs::write(
            h.join(".gitconfig"),
            format!(
                "[user]\n\temail = \"{quoted}\"\n\tsigningkey = {}\n[gpg]\n\tformat = ssh\n",
                key.display()
            ),
        )
        .unwrap();
        let out = hitl_in(h, h, &["init", "ws"]);
        assert_eq!(out.status.code(), Some(0), "{email:?}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(
                "`allowed_signers` lists nobody yet: git's signing key could not be read"
            ),
            "{email:?}: {}",
            stdout(&out)
        );
        let signers = std::fs::read_to_string(h.join("ws/allowed_signers")).unwrap();
        assert!(
            signers.lines().all(|l| l.starts_with('#')),
            "{email:?} wrote into allowed_signers:\n{signers}"
        );
    }

    let home = TempDir::new().unwrap();
    let h = home.path();
    let fifo = h.join("key.fifo");
    ok(&sh(h, "mkfifo", &[fifo.to_str().unwrap()]));
    std::fs::write(
        h.join(".gitconfig"),
        format!(
            "[user]\n\temail = me@example.com\n\tsigningkey = {}\n[gpg]\n\tformat = ssh\n",
            fifo.display()
        ),
    )
    .unwrap();
    // A FIFO would block a reader forever: the command must finish on its own.
    let mut child = std::process::Command::new(cargo_bin!("hitl"))
        .args(["init", "ws"])
        .current_dir(h)
        .env("HOME", h)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`hitl init` blocked on a FIFO signing key");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("not a regular file of at most 64 KiB"),
        "{}",
        stdout(&out)
    );
}

/// `hitl demo --dir` inside a repository the user already has makes a repository of its
/// own: none of the user's files are committed and the user's git settings stay as
/// they were.
#[test]
fn the_demo_inside_a_repository_keeps_to_a_repository_of_its_own() {
    let home = TempDir::new().unwrap();
    let h = home.path();
    let proj = h.join("proj");
    std::fs::create_dir(&proj).unwrap();
    ok(&sh(&proj, "git", &["init", "-q"]));
    std::fs::write(proj.join("secret.env"), "TOKEN=1\n").unwrap();
    let config_before = std::fs::read_to_string(proj.join(".git/config")).unwrap();
    let out = hitl_in(h, &proj, &["demo", "--dir", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let demo = proj.join("demo");
    assert!(demo.join(".git").is_dir(), "the demo's own repository");
    let tracked = ok(&sh(&demo, "git", &["ls-files"]));
    assert!(!tracked.contains("secret.env"), "{tracked}");
    assert_eq!(
        std::fs::read_to_string(proj.join(".git/config")).unwrap(),
        config_before,
        "the user's repository configuration changed"
    );
    let commits = ok(&sh(&proj, "git", &["rev-list", "--all", "--count"]));
    assert_eq!(commits.trim(), "0", "the user's repository got a commit");
}
