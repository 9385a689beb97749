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
            &super::audit::refund_check(file.to_str().unwrap(), "180"),
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

/// The third review's attacks on the export (each once ran the agent's code or wrote
/// outside the export; now refused, exit 29 for a precondition, nothing spent).
mod export {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    use super::super::audit::{AGENT, AuditWs, LEA};
    use super::super::support::{NOW, stderr, stdout};

    const REFUND: &str = "refund-4711";
    const STATE: &str = "echo '{\"charge\":\"ch_981\",\"status\":\"captured\",\"refunded\":0}'";

    fn write_exec(file: &Path, body: &str) {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, body).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn with_precondition(w: &AuditWs, words: &str) {
        let path = w.ws().join("requests/refund-4711.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let after = "  after: {charge: ch_981, status: refunded, refunded: 180}\n";
        assert!(text.contains(after));
        std::fs::write(
            &path,
            text.replace(after, &format!("{after}  precondition: {words}\n")),
        )
        .unwrap();
        w.commit_all(Some(LEA), "precondition");
    }

    fn exec_refund(w: &AuditWs, path_env: Option<&str>) -> std::process::Output {
        let file = w.ws().join(format!("audit/approvals/{REFUND}.json"));
        let mut c = w
            .command(NOW)
            .env_remove("HITL_SIGNING_KEY")
            .args(["exec", file.to_str().unwrap(), "--amount", "180"])
            .args(["--currency", "EUR", "--key", w.key(AGENT).to_str().unwrap()])
            .args(["--", "true"]);
        if let Some(p) = path_env {
            c = c.env("PATH", p);
        }
        c.output().unwrap()
    }

    fn payload(ran: &Path) -> String {
        format!(
            "#!/bin/sh\necho AGENT-PAYLOAD >> '{}'\n{STATE}\n",
            ran.display()
        )
    }

    fn benign() -> String {
        format!("#!/bin/sh\n{STATE}\n")
    }

    /// Refused with exit 29 and `needle`, nothing ran, nothing spent.
    fn refused(w: &AuditWs, o: &std::process::Output, ran: &Path, needle: &str) {
        assert_eq!(o.status.code(), Some(29), "{}{}", stdout(o), stderr(o));
        assert!(stderr(o).contains(needle), "{}", stderr(o));
        assert!(!ran.exists(), "nothing ran");
        let status: serde_json::Value = serde_json::from_str(&super::super::audit::ok(
            &w.read(&["status", REFUND, "--format", "json"]),
        ))
        .unwrap();
        assert_eq!(status["state"], "approved", "nothing spent");
    }

    fn blob(w: &AuditWs, bytes: &[u8]) -> String {
        w.git_with(&[], &["hash-object", "-w", "--stdin"], Some(bytes))
            .trim()
            .to_owned()
    }

    fn entry(mode: &str, name: &[u8], hex: &str) -> Vec<u8> {
        let mut v = format!("{mode} ").into_bytes();
        v.extend_from_slice(name);
        v.push(0);
        v.extend((0..20).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()));
        v
    }

    /// A raw tree object, unsorted and unchecked (`hash-object --literally`).
    fn raw_tree(w: &AuditWs, entries: &[Vec<u8>]) -> String {
        w.git_with(
            &[],
            &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
            Some(&entries.concat()),
        )
        .trim()
        .to_owned()
    }

    /// An agent's commit on top of HEAD adding the folder `name` holding `tree`.
    fn commit_with_folder(w: &AuditWs, name: &str, tree: &str) {
        let mut listing = w.git(&["ls-tree", "HEAD"]);
        listing.push_str(&format!("040000 tree {tree}\t{name}\n"));
        let root = w
            .git_with(&[], &["mktree"], Some(listing.as_bytes()))
            .trim()
            .to_owned();
        let who = [
            ("GIT_AUTHOR_NAME", "agent"),
            ("GIT_AUTHOR_EMAIL", AGENT),
            ("GIT_COMMITTER_NAME", "agent"),
            ("GIT_COMMITTER_EMAIL", AGENT),
        ];
        let commit = w
            .git_with(
                &who,
                &["commit-tree", &root, "-p", "HEAD", "-m", "fixtures"],
                None,
            )
            .trim()
            .to_owned();
        w.git(&["update-ref", "HEAD", &commit]);
    }

    /// A name twice in a hand-made tree, a symlink to the executor's file then a file:
    /// once written through the link; now the export refuses, the file untouched.
    #[test]
    fn a_name_twice_in_a_tree_never_writes_through_a_symlink() {
        let w = AuditWs::new();
        let ran = w.dir_path().join("ran");
        let victim = w.dir_path().join(".bashrc");
        std::fs::write(&victim, "# the executor's own\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        with_precondition(&w, "[sh, -c, \"exit 0\"]");
        let link = blob(&w, victim.to_str().unwrap().as_bytes());
        let evil = blob(&w, b"AGENT-PAYLOAD\n");
        let twice = raw_tree(
            &w,
            &[entry("120000", b"x", &link), entry("100644", b"x", &evil)],
        );
        commit_with_folder(&w, "fixtures", &twice);
        w.propose_and_approve();
        let o = exec_refund(&w, None);
        refused(&w, &o, &ran, "cannot export the workspace");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "# the executor's own\n"
        );
        assert_eq!(
            std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    /// A symlink committed before the proposal, to the live work tree (absolute, or
    /// relative and climbing out of the export): the export refuses it.
    #[test]
    fn a_committed_symlink_out_of_the_workspace_refuses_the_export() {
        for absolute in [true, false] {
            let w = AuditWs::new();
            let ran = w.dir_path().join("ran");
            let live = w.ws().join("scripts/live.sh");
            write_exec(&live, &benign());
            let target = if absolute {
                live.display().to_string()
            } else {
                let depth = std::env::temp_dir()
                    .canonicalize()
                    .unwrap()
                    .components()
                    .count()
                    + 1;
                format!(
                    "{}{}",
                    "../".repeat(depth),
                    live.canonicalize()
                        .unwrap()
                        .display()
                        .to_string()
                        .trim_start_matches('/')
                )
            };
            std::os::unix::fs::symlink(&target, w.ws().join("scripts/pre.sh")).unwrap();
            with_precondition(&w, "[scripts/pre.sh]");
            w.propose_and_approve();
            write_exec(&live, &payload(&ran));
            let o = exec_refund(&w, None);
            refused(&w, &o, &ran, "outside the workspace");
        }
    }

    /// `..` out of the export (as the program or an argument of `sh`), and the work
    /// tree's path inside a word (`sh -c "sh /work/tree/x.sh"`): refused.
    #[test]
    fn words_that_reach_the_live_work_tree_are_refused() {
        for form in 0..3 {
            let w = AuditWs::new();
            let ran = w.dir_path().join("ran");
            let live = w.ws().join("x.sh");
            write_exec(&live, &benign());
            let depth = std::env::temp_dir()
                .canonicalize()
                .unwrap()
                .components()
                .count();
            let up = format!(
                "{}{}",
                "../".repeat(depth),
                live.canonicalize()
                    .unwrap()
                    .display()
                    .to_string()
                    .trim_start_matches('/')
            );
            let (words, needle) = match form {
                0 => (format!("[\"{up}\"]"), "climbs out of its folder"),
                1 => (format!("[sh, \"{up}\"]"), "climbs out of its folder"),
                _ => (
                    format!("[sh, -c, \"sh {}\"]", live.display()),
                    "names a path into the work tree",
                ),
            };
            with_precondition(&w, &words);
            w.propose_and_approve();
            write_exec(&live, &payload(&ran));
            let o = exec_refund(&w, None);
            refused(&w, &o, &ran, needle);
        }
    }

    /// A bare name found through an absolute `PATH` entry into the work tree: the
    /// resolved program leads into the live work tree, refused.
    #[test]
    fn a_program_found_through_path_into_the_work_tree_is_refused() {
        let w = AuditWs::new();
        let ran = w.dir_path().join("ran");
        with_precondition(&w, "[read-charge, ch_981]");
        w.propose_and_approve();
        write_exec(&w.ws().join("bin/read-charge"), &payload(&ran));
        let path = format!(
            "{}:{}",
            w.ws().join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let o = exec_refund(&w, Some(&path));
        refused(&w, &o, &ran, "leads into the live work tree");
    }

    /// A tree bomb (1,000 names of one blob, 100 names of that tree: 100,000 files from
    /// two small objects): the export stops at 20,000 entries.
    #[test]
    fn a_tree_bomb_is_refused_at_the_entry_limit() {
        let w = AuditWs::new();
        let ran = w.dir_path().join("ran");
        with_precondition(&w, "[sh, -c, \"exit 0\"]");
        let one = blob(&w, b"x");
        let leaf: Vec<Vec<u8>> = (0..1000)
            .map(|i| entry("100644", format!("f{i:04}").as_bytes(), &one))
            .collect();
        let leaf = raw_tree(&w, &leaf);
        let mid: Vec<Vec<u8>> = (0..100)
            .map(|i| entry("40000", format!("d{i:03}").as_bytes(), &leaf))
            .collect();
        let mid = raw_tree(&w, &mid);
        commit_with_folder(&w, "fixtures", &mid);
        w.propose_and_approve();
        let o = exec_refund(&w, None);
        refused(&w, &o, &ran, "more than 20000 files");
    }
}
