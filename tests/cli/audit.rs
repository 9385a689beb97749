//! The signed, hash-chained audit through the real binary: fresh `ssh-keygen` keys, a
//! real git repository, `git verify-commit` and `ssh-keygen -Y verify` as the outside
//! judges, and one tamper test per class `hitl verify` must name.

use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Output};

use tempfile::TempDir;

use super::support::{NOW, hitl_at, root, run, stderr, stdout};

/// Principals with keys in the test workspace, and one stranger.
pub const AGENT: &str = "support-copilot@agents.example.com";
pub const LEA: &str = "lea@example.com";
pub const RAVI: &str = "ravi@example.com";
pub const MARIA: &str = "maria@example.com";
pub const MALLORY: &str = "mallory@example.com";
/// The matrix's one `governance.admins`: the only signer of configuration changes.
pub const ALEX: &str = "alex@example.com";

/// A git repository holding a copy of the example workspace, keys for the principals
/// above (all but mallory in `allowed_signers`), and a first commit signed by lea.
pub struct AuditWs {
    pub dir: TempDir,
    pub keys: PathBuf,
}

pub fn sh(dir: &Path, program: &str, args: &[&str]) -> Output {
    Proc::new(program)
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh unprotected ed25519 key at `dir/name` (and `.pub`); returns the private key's
/// path.
pub fn keygen(dir: &Path, name: &str, comment: &str) -> PathBuf {
    let key = dir.join(name);
    ok(&sh(
        dir,
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            key.to_str().unwrap(),
        ],
    ));
    key
}

/// `ssh-keygen -Y sign` of `file` under `namespace` with the private key `key`, into
/// `file.sig`.
pub fn sign_file(dir: &Path, key: &Path, namespace: &str, file: &Path) -> Output {
    sh(
        dir,
        "ssh-keygen",
        &[
            "-Y",
            "sign",
            "-q",
            "-n",
            namespace,
            "-f",
            key.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    )
}

/// The repository root's example workspace (matrix, requests, policies) copied to `ws`,
/// with `signers` as its `allowed_signers`.
pub fn example_workspace(ws: &Path, signers: &str) {
    std::fs::create_dir_all(ws).unwrap();
    std::fs::copy(
        root().join("approval-matrix.yaml"),
        ws.join("approval-matrix.yaml"),
    )
    .unwrap();
    copy_dir(&root().join("requests"), &ws.join("requests"));
    copy_dir(&root().join("policies"), &ws.join("policies"));
    std::fs::write(ws.join("allowed_signers"), signers).unwrap();
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

impl AuditWs {
    pub fn new() -> Self {
        Self::with_people(&[])
    }

    /// A workspace whose `allowed_signers` (in the root commit) also trusts a key made
    /// for each of `extra` (e.g. the IAM approvers, the deploy agent).
    pub fn with_people(extra: &[&str]) -> Self {
        let dir = TempDir::new().unwrap();
        let ws = dir.path().join("ws");
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let mut signers = String::new();
        for &who in [AGENT, LEA, RAVI, MARIA, MALLORY, ALEX].iter().chain(extra) {
            let key = keygen(&keys, who, who);
            if who != MALLORY {
                let public = std::fs::read_to_string(key.with_extension("com.pub")).unwrap();
                // Agents sign proposals and commits, never approval files.
                let namespaces = if who == AGENT || who.contains("@agents.") {
                    "git,hitl"
                } else {
                    "git,hitl,hitl-approval"
                };
                signers.push_str(&format!("{who} namespaces=\"{namespaces}\" {public}"));
            }
        }
        example_workspace(&ws, &signers);
        let this = Self { dir, keys };
        this.git(&["init", "-q", "-b", "main"]);
        this.git(&["config", "user.name", "Test"]);
        this.git(&["config", "user.email", LEA]);
        this.git(&["config", "gpg.format", "ssh"]);
        this.git(&["config", "gpg.ssh.allowedSignersFile", "allowed_signers"]);
        this.git(&["add", "-A"]);
        let lea_key = this.key(LEA);
        this.git(&[
            "-c",
            &format!("user.signingkey={}", lea_key.display()),
            "commit",
            "-q",
            "-S",
            "-m",
            "workspace",
        ]);
        this
    }

    pub fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    /// `who` re-makes the last commit with the working tree as it is (`git commit
    /// --amend`), signed with their own key: what they would push instead of it.
    pub fn amend_as(&self, who: &str) {
        self.git(&["add", "-A"]);
        self.git(&[
            "-c",
            &format!("user.signingkey={}", self.key(who).display()),
            "-c",
            &format!("user.email={who}"),
            "commit",
            "-q",
            "--amend",
            "-S",
            "--no-edit",
        ]);
    }

    /// The test's own folder, beside the workspace (for files outside it).
    pub fn dir_path(&self) -> &Path {
        self.dir.path()
    }

    pub fn key(&self, who: &str) -> PathBuf {
        self.keys.join(who)
    }

    pub fn git(&self, args: &[&str]) -> String {
        ok(&sh(&self.ws(), "git", args))
    }

    /// `hitl` in the workspace at [`NOW`], signing with `who`'s key.
    pub fn hitl(&self, who: &str, args: &[&str]) -> Output {
        self.hitl_at(NOW, who, args)
    }

    pub fn hitl_at(&self, time: &str, who: &str, args: &[&str]) -> Output {
        let key = self.key(who);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--key", key.to_str().unwrap()]);
        run(self.command(time).env_remove("HITL_SIGNING_KEY").args(&all))
    }

    /// `hitl` without a key (verify, log, replay, status).
    pub fn read(&self, args: &[&str]) -> Output {
        self.read_at(NOW, args)
    }

    /// [`AuditWs::read`] at `time`.
    pub fn read_at(&self, time: &str, args: &[&str]) -> Output {
        run(self.command(time).args(args))
    }

    /// The binary at `time` in the workspace, with the test's home and no system git
    /// configuration; no arguments yet.
    pub fn command(&self, time: &str) -> snapbox::cmd::Command {
        hitl_at(time)
            .current_dir(self.ws())
            .env("HOME", self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
    }

    /// `ssh-keygen -Y verify` of event `seq`'s detached signature as `principal`
    /// against the workspace's `allowed_signers`.
    pub fn ssh_keygen_verify(&self, seq: u64, principal: &str) -> Output {
        let event = self.event_file(seq);
        Proc::new("ssh-keygen")
            .args(["-Y", "verify", "-n", "hitl", "-f", "allowed_signers", "-I"])
            .arg(principal)
            .arg("-s")
            .arg(format!("{}.sig", event.display()))
            .current_dir(self.ws())
            .stdin(std::fs::File::open(&event).unwrap())
            .output()
            .unwrap()
    }

    /// The codes of `verify`'s problems, sorted (a tamper test compares the exact set).
    pub fn problem_codes(&self) -> Vec<String> {
        let mut c = codes(&self.verify_json());
        c.sort();
        c
    }

    /// Someone with push access and no key: lea's recorded rejection of
    /// email-customer-5531 (event 6) edited in place into an approval and committed
    /// unsigned, seen from another clone (one that never checked the head before).
    pub fn rejection_edited_into_an_approval(&self) {
        ok(&self.hitl(AGENT, &["propose", "email-customer-5531"]));
        ok(&self.hitl(
            LEA,
            &[
                "reject",
                "email-customer-5531",
                "--reason-code",
                "too-risky",
            ],
        ));
        let file = self.event_file(6);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"decision\": \"rejected\""), "{text}");
        std::fs::write(
            &file,
            text.replace("\"decision\": \"rejected\"", "\"decision\": \"approved\"")
                .replace("\"reason_code\": \"too-risky\"", "\"reason_code\": null"),
        )
        .unwrap();
        self.commit_all(None, "x");
        self.as_other_clone();
    }

    /// `hitl ARGS` as `who`, refused: exit `code`, `needle` in its stderr, and nothing
    /// recorded (HEAD unchanged).
    pub fn refused(&self, who: &str, args: &[&str], code: i32, needle: &str) {
        let head = self.git(&["rev-parse", "HEAD"]);
        let o = self.hitl(who, args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert_eq!(
            self.git(&["rev-parse", "HEAD"]),
            head,
            "{args:?}: nothing recorded"
        );
    }

    /// [`AuditWs::problem_codes`] of a `verify` run at `time` (after every event a test
    /// recorded later than [`NOW`]; before it, they are `time-future`).
    pub fn problem_codes_at(&self, time: &str) -> Vec<String> {
        let o = self.read_at(time, &["verify", "--format", "json"]);
        let report: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        let mut c = codes(&report);
        c.sort();
        c
    }

    pub fn verify_json(&self) -> serde_json::Value {
        let o = self.read(&["verify", "--format", "json"]);
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)))
    }

    /// Proposes refund-4711 as the agent and approves it as lea.
    pub fn propose_and_approve(&self) {
        ok(&self.hitl(AGENT, &["propose", "refund-4711"]));
        ok(&self.hitl(LEA, &["approve", "refund-4711"]));
    }

    /// The `SHA256:...` fingerprint of `who`'s key, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self, who: &str) -> String {
        let public = self.key(who).with_extension("com.pub");
        let out = ok(&sh(
            self.dir.path(),
            "ssh-keygen",
            &["-l", "-E", "sha256", "-f", public.to_str().unwrap()],
        ));
        out.split_whitespace().nth(1).unwrap().to_owned()
    }

    /// `git` in the workspace with extra environment and, optionally, bytes on stdin.
    pub fn git_with(&self, env: &[(&str, &str)], args: &[&str], input: Option<&[u8]>) -> String {
        use std::io::Write as _;
        use std::process::Stdio;
        let mut child = Proc::new("git")
            .args(args)
            .current_dir(self.ws())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.ws())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.unwrap_or_default()).unwrap();
        drop(stdin);
        ok(&child.wait_with_output().unwrap())
    }

    pub fn event_file(&self, seq: u64) -> PathBuf {
        self.ws()
            .join(format!("audit/events/{:09}/{seq:012}.json", seq / 1000))
    }

    /// Makes this workspace stand for another clone, one that never decided on the
    /// commits made here so far (no checked head, no index of them): an attack that replaces the agent's unpushed commit is
    /// met by the approvers' clones, which never saw the original (the clone that made
    /// it refuses the rewrite as a rewind).
    pub fn as_other_clone(&self) {
        std::fs::remove_file(self.ws().join(".git/hitl-config-checked")).unwrap();
        // Nor its index of the commits that added each event (which only ever shortens
        // a walk).
        let _ = std::fs::remove_file(self.ws().join(".git/hitl-seq-index"));
        // Nor `check`'s folds.
        let _ = std::fs::remove_dir_all(self.ws().join(".git/hitl-fold"));
    }
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn propose_and_approve_are_signed_commits_git_and_ssh_keygen_accept() {
    let w = AuditWs::new();
    let o = w.hitl(AGENT, &["propose", "refund-4711"]);
    let out = ok(&o);
    assert!(out.contains("awaiting approval by support-lead"), "{out}");
    ok(&sh(&w.ws(), "git", &["verify-commit", "HEAD"]));
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert!(ok(&o).contains("approved by lea@example.com"));
    ok(&sh(&w.ws(), "git", &["verify-commit", "HEAD"]));

    // The decision (event 6) has a detached signature ssh-keygen accepts for lea.
    let body = std::fs::read(w.event_file(6)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["type"], "decision");
    assert_eq!(json["actor"]["principal"], LEA);
    let verified = w.ssh_keygen_verify(6, LEA);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // ...and refuses for another principal.
    assert!(!w.ssh_keygen_verify(6, RAVI).status.success());

    // Subject, author and trailers for `git log`.
    let log = w.git(&["log", "-1", "--format=%s%n%an <%ae>%n%(trailers)"]);
    assert!(
        log.starts_with(
            "approve refund-4711 (tier 3) by lea@example.com\nlea@example.com <lea@example.com>\n"
        ),
        "{log}"
    );
    for t in [
        "Hitl-Request: refund-4711",
        "Hitl-Type: decision",
        "Hitl-Seq: 6",
        "Hitl-Tier: 3",
        "Hitl-Decision: approved",
    ] {
        assert!(log.contains(t), "{t} missing in {log}");
    }
    let first = w.git(&["log", "-1", "--skip=1", "--format=%s%n%(trailers)"]);
    assert!(
        first.contains("propose refund-4711 (tier 3) by support-copilot@agents.example.com"),
        "{first}"
    );
    assert!(first.contains("Hitl-Seq: 1-5"), "{first}");

    // The chain's layout and links.
    let mut prev = "0".repeat(64);
    for seq in 1..=6 {
        let bytes = std::fs::read(w.event_file(seq)).unwrap();
        let e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(e["seq"], seq);
        assert_eq!(e["prev"], prev);
        prev = hitl_lib::audit::sha256_hex(&bytes);
    }
    let kinds: Vec<String> = (1..=6)
        .map(|s| {
            let e: serde_json::Value =
                serde_json::from_slice(&std::fs::read(w.event_file(s)).unwrap()).unwrap();
            e["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "proposed",
            "classified",
            "evidence_assembled",
            "policy_checked",
            "approval_requested",
            "decision"
        ]
    );

    // Index and working tree are consistent: nothing to commit, nothing staged.
    assert_eq!(w.git(&["status", "--porcelain"]), "");
    let report = w.verify_json();
    assert_eq!(codes(&report), Vec::<String>::new(), "{report}");
    assert_eq!(report["events"], 6);
    assert_eq!(report["signatures"], 1);
}

#[test]
fn a_denied_proposal_is_recorded_as_blocked_and_cannot_be_approved() {
    let w = AuditWs::new();
    let o = w.hitl(AGENT, &["propose", "email-contract-terms"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("email-contract-terms: blocked:\n  - "),
        "{}",
        stdout(&o)
    );
    let e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.event_file(5)).unwrap()).unwrap();
    assert_eq!(e["type"], "blocked");
    let o = w.hitl(LEA, &["approve", "email-contract-terms"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(
        stderr(&o).contains("was blocked when it was proposed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn decisions_are_refused_to_strangers_the_ineligible_and_twice() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let head = w.git(&["rev-parse", "HEAD"]);

    let o = w.hitl(MALLORY, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("allowed_signers"), "{}", stderr(&o));

    // Adding oneself to allowed_signers without a trusted, committed change does not help.
    let signers = w.ws().join("allowed_signers");
    let before = std::fs::read_to_string(&signers).unwrap();
    let public = std::fs::read_to_string(w.key(MALLORY).with_extension("com.pub")).unwrap();
    std::fs::write(
        &signers,
        format!("{before}{MALLORY} namespaces=\"git,hitl,hitl-approval\" {public}"),
    )
    .unwrap();
    let o = w.hitl(MALLORY, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("uncommitted changes to `allowed_signers`"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&signers, before).unwrap();

    let o = w.hitl(RAVI, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(
        stderr(&o).contains("not in any role that may decide"),
        "{}",
        stderr(&o)
    );

    let o = w.hitl(
        LEA,
        &["reject", "refund-4711", "--reason-code", "no-such-code"],
    );
    assert_eq!(o.status.code(), Some(6));
    assert!(
        stderr(&o).contains("unknown reason code `no-such-code`"),
        "{}",
        stderr(&o)
    );

    let o = w.hitl(LEA, &["approve", "refund-9999"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));

    // Refusals record nothing.
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);

    ok(&w.hitl(
        LEA,
        &[
            "reject",
            "refund-4711",
            "--reason-code",
            "insufficient-evidence",
            "--comment",
            "need the invoice",
        ],
    ));
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(
        stderr(&o).contains("already decided (rejected by lea@example.com)"),
        "{}",
        stderr(&o)
    );

    // A request proposed twice is refused.
    let o = w.hitl(AGENT, &["propose", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(
        stderr(&o).contains("already in the audit"),
        "{}",
        stderr(&o)
    );
    assert!(codes(&w.verify_json()).is_empty());
}

#[test]
fn the_requester_may_not_approve_their_own_request() {
    let w = AuditWs::new();
    // Let lea request payments (RBAC) and propose a refund in her name.
    let rbac = w.ws().join("policies/data/rbac.json");
    let text = std::fs::read_to_string(&rbac).unwrap().replace(
        "\"maria@example.com\": [",
        "\"lea@example.com\": [\"payments\"],\n    \"maria@example.com\": [",
    );
    std::fs::write(&rbac, text).unwrap();
    // Ravi joins support-lead: with lea as the requester and the role's only member,
    // nobody could approve, and `propose` would record the request as blocked.
    let m = w.ws().join("approval-matrix.yaml");
    let text = std::fs::read_to_string(&m).unwrap().replacen(
        "    members: [lea@example.com]\n",
        "    members: [lea@example.com, ravi@example.com]\n",
        1,
    );
    std::fs::write(&m, text).unwrap();
    let req = std::fs::read_to_string(w.ws().join("requests/refund-4711.yaml"))
        .unwrap()
        .replace(
            "requested_by: maria@example.com",
            "requested_by: lea@example.com",
        )
        .replace("id: refund-4711", "id: refund-lea");
    // Policies must be committed before they decide, by an admin (they are governed).
    w.commit_all(
        Some(ALEX),
        "lea may request payments; ravi joins support-lead",
    );
    // The user's own work in progress: an untracked proposal, a staged note and an
    // unstaged edit.
    std::fs::write(w.ws().join("requests/refund-lea.yaml"), req).unwrap();
    std::fs::write(w.ws().join("notes.txt"), "mine\n").unwrap();
    w.git(&["add", "notes.txt"]);
    let other = w.ws().join("requests/refund-4712.yaml");
    let text = std::fs::read_to_string(&other).unwrap();
    std::fs::write(&other, format!("{text}# draft\n")).unwrap();
    let before = w.git(&["status", "--porcelain"]);

    ok(&w.hitl(AGENT, &["propose", "refund-lea"]));
    let o = w.hitl(LEA, &["approve", "refund-lea"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "`lea@example.com` requested or submitted `refund-lea` and may not decide it"
        ),
        "{}",
        stderr(&o)
    );

    // The user's staged, unstaged and untracked changes are as they were; the audit
    // commit holds audit paths only.
    assert_eq!(w.git(&["status", "--porcelain"]), before);
    let changed = w.git(&["show", "--name-only", "--format=", "HEAD"]);
    assert!(
        changed.lines().all(|l| l.starts_with("audit/")),
        "{changed}"
    );
    // An ordinary unsigned commit that touches neither the audit nor the trust files is
    // no problem for verify.
    assert!(codes(&w.verify_json()).is_empty());
}

impl AuditWs {
    /// Commits every change in the working tree, signed by `who` (or unsigned).
    pub fn commit_all(&self, who: Option<&str>, message: &str) {
        self.git(&["add", "-A"]);
        match who {
            Some(w) => {
                let key = self.key(w);
                self.git(&[
                    "-c",
                    &format!("user.signingkey={}", key.display()),
                    "-c",
                    &format!("user.email={w}"),
                    "commit",
                    "-q",
                    "-S",
                    "-m",
                    message,
                ]);
            }
            None => {
                self.git(&["commit", "-q", "--no-gpg-sign", "-m", message]);
            }
        }
    }

    fn sig_file(&self, seq: u64) -> PathBuf {
        PathBuf::from(format!("{}.sig", self.event_file(seq).display()))
    }

    /// Signs event `seq` with `who`'s key under `namespace`, replacing its signature.
    fn resign(&self, seq: u64, who: &str, namespace: &str) {
        let event = self.event_file(seq);
        let out = self.dir.path().join("event.json");
        std::fs::copy(&event, &out).unwrap();
        ok(&sign_file(self.dir.path(), &self.key(who), namespace, &out));
        std::fs::copy(self.dir.path().join("event.json.sig"), self.sig_file(seq)).unwrap();
    }

    fn edit_event(&self, seq: u64, from: &str, to: &str) {
        let p = self.event_file(seq);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{from} not in event {seq}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }

    /// Recomputes `prev` of every event after `seq` (an attacker covering an edit).
    fn relink_after(&self, seq: u64, last: u64) {
        for s in seq + 1..=last {
            let prev = hitl_lib::audit::sha256_hex(&std::fs::read(self.event_file(s - 1)).unwrap());
            let p = self.event_file(s);
            let mut e: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            e["prev"] = serde_json::Value::String(prev);
            let mut bytes = serde_json::to_vec_pretty(&e).unwrap();
            bytes.push(b'\n');
            std::fs::write(&p, bytes).unwrap();
        }
    }

    fn blob_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in std::fs::read_dir(self.ws().join("audit/blobs")).unwrap() {
            for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
                out.push(f.unwrap().path());
            }
        }
        out.sort();
        out
    }
}

/// One tamper per class the issue lists: each on a fresh audit of 6 events (refund-4711
/// proposed and approved), each must make `hitl verify` exit 1 naming the problem.
#[test]
fn verify_names_each_kind_of_tampering() {
    type Tamper = fn(&AuditWs);
    let cases: Vec<(&str, Tamper, &[&str])> = vec![
        (
            "event edited",
            |w| {
                w.edit_event(2, "\"tier\": 3", "\"tier\": 1");
                w.commit_all(None, "fix tier");
            },
            &["chain-link", "history-rewrite", "commit-unsigned"],
        ),
        (
            "event edited, later links recomputed, signed by a trusted key",
            |w| {
                w.edit_event(2, "\"tier\": 3", "\"tier\": 1");
                w.relink_after(2, 6);
                w.resign(6, LEA, "hitl");
                w.commit_all(Some(LEA), "fix tier");
            },
            &["history-rewrite"],
        ),
        (
            "event deleted",
            |w| {
                std::fs::remove_file(w.event_file(3)).unwrap();
                w.commit_all(Some(LEA), "drop 3");
            },
            &["seq-gap", "chain-link", "history-rewrite", "index"],
        ),
        (
            "event duplicated",
            |w| {
                std::fs::copy(w.event_file(5), w.event_file(7)).unwrap();
                w.commit_all(Some(LEA), "dup");
            },
            &["seq-mismatch", "chain-link"],
        ),
        (
            "events reordered",
            |w| {
                let (a, b) = (
                    std::fs::read(w.event_file(2)).unwrap(),
                    std::fs::read(w.event_file(3)).unwrap(),
                );
                std::fs::write(w.event_file(2), b).unwrap();
                std::fs::write(w.event_file(3), a).unwrap();
                w.commit_all(Some(LEA), "swap");
            },
            &["seq-mismatch", "chain-link"],
        ),
        (
            "event inserted (renumbered)",
            |w| {
                for s in (4..=6).rev() {
                    std::fs::rename(w.event_file(s), w.event_file(s + 1)).unwrap();
                }
                std::fs::rename(w.sig_file(7), w.sig_file(7)).unwrap_or(());
                std::fs::copy(w.event_file(3), w.event_file(4)).unwrap();
                w.commit_all(Some(LEA), "insert");
            },
            &["seq-mismatch", "chain-link", "history-rewrite"],
        ),
        (
            "seq gap",
            |w| {
                std::fs::rename(w.event_file(6), w.event_file(8)).unwrap();
                w.commit_all(Some(LEA), "gap");
            },
            &["seq-gap"],
        ),
        (
            "blob edited",
            |w| {
                let b = &w.blob_files()[0];
                let mut bytes = std::fs::read(b).unwrap();
                bytes.push(b' ');
                std::fs::write(b, bytes).unwrap();
                w.commit_all(Some(LEA), "blob");
            },
            &["blob-edited", "history-rewrite"],
        ),
        (
            "blob missing",
            |w| {
                std::fs::remove_file(&w.blob_files()[0]).unwrap();
                w.commit_all(Some(LEA), "blob");
            },
            &["blob-missing"],
        ),
        (
            "bad signature",
            |w| {
                // lea's signature, but over other bytes.
                let event = w.event_file(6);
                let orig = std::fs::read(&event).unwrap();
                std::fs::write(&event, b"something else\n").unwrap();
                w.resign(6, LEA, "hitl");
                std::fs::write(&event, orig).unwrap();
                w.commit_all(Some(LEA), "sig");
            },
            &["signature-bad"],
        ),
        (
            "signature from an untrusted key",
            |w| {
                w.resign(6, MALLORY, "hitl");
                w.commit_all(Some(LEA), "sig");
            },
            &["signature-untrusted"],
        ),
        (
            "signature under another namespace",
            |w| {
                w.resign(6, LEA, "file");
                w.commit_all(Some(LEA), "sig");
            },
            &["signature-namespace"],
        ),
        (
            "signer is not the actor",
            |w| {
                w.resign(6, RAVI, "hitl");
                w.commit_all(Some(LEA), "sig");
            },
            &["signer-not-actor"],
        ),
        (
            "revoked key",
            |w| {
                let public = std::fs::read_to_string(w.key(LEA).with_extension("com.pub")).unwrap();
                std::fs::write(w.ws().join("revoked_signers"), public).unwrap();
                w.commit_all(Some(ALEX), "revoke lea");
            },
            &["signature-revoked"],
        ),
        (
            "expired key",
            |w| {
                let p = w.ws().join("allowed_signers");
                let text = std::fs::read_to_string(&p).unwrap().replace(
                    "lea@example.com namespaces=\"git,hitl,hitl-approval\"",
                    "lea@example.com namespaces=\"git,hitl,hitl-approval\",valid-before=\"20261101\"",
                );
                std::fs::write(&p, text).unwrap();
                w.commit_all(Some(ALEX), "expire lea");
            },
            &["signature-expired"],
        ),
        (
            "audit changed by an unsigned commit",
            |w| {
                let index = w
                    .ws()
                    .join(hitl_lib::audit::request_index_path("refund-4711"));
                std::fs::write(index, "1\n").unwrap();
                w.commit_all(None, "plain git");
            },
            &["commit-unsigned", "index"],
        ),
        (
            "the audit folder hidden behind a submodule entry",
            |w| {
                let audit = w.git(&["rev-parse", "HEAD:audit"]);
                w.git(&["rm", "-r", "-q", "--cached", "audit"]);
                w.git(&[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("160000,{},audit", audit.trim()),
                ]);
                w.git(&["commit", "-q", "--no-gpg-sign", "-m", "hide"]);
            },
            &["unexpected-file", "commit-unsigned"],
        ),
        (
            "a well-signed decision by someone not eligible",
            |w| {
                let six = std::fs::read(w.event_file(6)).unwrap();
                let mut e: serde_json::Value = serde_json::from_slice(&six).unwrap();
                e["seq"] = 7.into();
                e["prev"] = hitl_lib::audit::sha256_hex(&six).into();
                e["actor"]["principal"] = RAVI.into();
                e["actor"]["key"] = w.fingerprint(RAVI).into();
                e["approver"] = RAVI.into();
                let mut bytes = serde_json::to_vec_pretty(&e).unwrap();
                bytes.push(b'\n');
                std::fs::write(w.event_file(7), bytes).unwrap();
                w.resign(7, RAVI, "hitl");
                let index = w
                    .ws()
                    .join(hitl_lib::audit::request_index_path("refund-4711"));
                let mut text = std::fs::read_to_string(&index).unwrap();
                text.push_str("7\n");
                std::fs::write(index, text).unwrap();
                w.commit_all(Some(RAVI), "ravi approves too");
            },
            &["decision-unauthorized"],
        ),
        (
            "allowed_signers changed by a key not yet trusted",
            |w| {
                let public =
                    std::fs::read_to_string(w.key(MALLORY).with_extension("com.pub")).unwrap();
                let p = w.ws().join("allowed_signers");
                let mut text = std::fs::read_to_string(&p).unwrap();
                text.push_str(&format!(
                    "{MALLORY} namespaces=\"git,hitl,hitl-approval\" {public}"
                ));
                std::fs::write(&p, text).unwrap();
                w.commit_all(Some(MALLORY), "trust me");
            },
            &["signature-untrusted", "config-unauthorized"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, tamper, expected) in cases {
        let w = AuditWs::new();
        w.propose_and_approve();
        assert!(
            codes(&w.verify_json()).is_empty(),
            "{name}: clean before tampering"
        );
        tamper(&w);
        let o = w.read(&["verify", "--format", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let found = codes(&report);
        if o.status.code() != Some(1) {
            failures.push(format!(
                "{name}: exit {:?}, problems {found:?}",
                o.status.code()
            ));
        }
        for code in expected {
            if !found.iter().any(|f| f == code) {
                failures.push(format!("{name}: expected `{code}`, got {found:?}"));
            }
        }
        // The table form names the same problems, one line each, with seq/file/commit.
        let table = stdout(&w.read(&["verify"]));
        assert!(
            table.contains(&format!("{} problem", found.len())),
            "{name}: {table}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_checkpoint_detects_truncation_and_rewritten_history() {
    let w = AuditWs::new();
    w.propose_and_approve();
    let cp = w.dir.path().join("checkpoint.txt");
    let o = w.hitl(LEA, &["checkpoint"]);
    std::fs::write(&cp, ok(&o)).unwrap();
    let cp_arg = cp.to_str().unwrap();
    let out = ok(&w.read(&["verify", "--checkpoint", cp_arg]));
    assert!(
        out.starts_with("checkpoint: seq 6, signed by lea@example.com (SHA256:"),
        "{out}"
    );
    // A checkpoint vouches only when its signer is trusted: mallory's is refused.
    let theirs = w.dir.path().join("mallory-checkpoint.txt");
    let o = w.hitl(MALLORY, &["checkpoint"]);
    if o.status.success() {
        std::fs::write(&theirs, &o.stdout).unwrap();
    } else {
        // `checkpoint` itself may refuse an untrusted key; sign one by hand then.
        let line = ok(&w.hitl(LEA, &["checkpoint"]));
        let statement: String = line.lines().take(2).map(|l| format!("{l}\n")).collect();
        let body = w.dir.path().join("statement");
        std::fs::write(&body, statement.lines().nth(1).unwrap()).unwrap();
        ok(&sign_file(
            w.dir.path(),
            &w.key(MALLORY),
            "hitl-checkpoint",
            &body,
        ));
        let sig = std::fs::read_to_string(w.dir.path().join("statement.sig")).unwrap();
        std::fs::write(&theirs, format!("{statement}{sig}")).unwrap();
    }
    let o = w.read(&["verify", "--checkpoint", theirs.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is signed by key `SHA256:")
            && stderr(&o).contains("which is not trusted"),
        "{}",
        stderr(&o)
    );

    let json: serde_json::Value = serde_json::from_str(&ok(&w.read(&[
        "verify",
        "--checkpoint",
        cp_arg,
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(json["checkpoint"]["seq"], 6, "{json}");
    assert!(
        json["checkpoint"]["signed_by"]
            .as_str()
            .is_some_and(|s| s.starts_with("lea@example.com (SHA256:")),
        "{json}"
    );

    // The log grows: still extends the checkpoint.
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    ok(&w.read(&["verify", "--checkpoint", cp_arg]));

    // Truncated back past the checkpoint: git reset drops the last two commits.
    w.git(&["reset", "-q", "--hard", "HEAD~2"]);
    let o = w.read(&["verify", "--checkpoint", cp_arg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let found = codes(&serde_json::from_slice(&o.stdout).unwrap());
    assert!(
        found.contains(&"checkpoint-truncated".to_owned()),
        "{found:?}"
    );

    // A clone that decided on the longer history refuses to decide on the rewound one
    // (a force push can erase decisions): nothing recorded.
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(LEA, &["approve", "refund-4711", "--comment", "again"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the audit's history was rewound"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    // Rewritten: the same length, but a different history (re-done by the same people,
    // who said the rewind was wanted).
    std::fs::remove_file(w.ws().join(".git/hitl-config-checked")).unwrap();
    ok(&w.hitl(LEA, &["approve", "refund-4711", "--comment", "again"]));
    let o = w.read(&["verify", "--checkpoint", cp_arg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let found = codes(&serde_json::from_slice(&o.stdout).unwrap());
    assert!(
        found.contains(&"checkpoint-rewritten".to_owned()),
        "{found:?}"
    );

    // A checkpoint whose text was edited does not verify at all.
    let edited = std::fs::read_to_string(&cp)
        .unwrap()
        .replace("\"seq\":6", "\"seq\":5");
    std::fs::write(&cp, edited).unwrap();
    let o = w.read(&["verify", "--checkpoint", cp_arg]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn log_lists_and_filters_events() {
    let w = AuditWs::new();
    w.propose_and_approve();
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    let all: serde_json::Value =
        serde_json::from_slice(&w.read(&["log", "--format", "json"]).stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 11);
    let one: serde_json::Value = serde_json::from_slice(
        &w.read(&["log", "--request", "refund-4712", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(one.as_array().unwrap().len(), 5);
    assert!(
        one.as_array()
            .unwrap()
            .iter()
            .all(|e| e["request"] == "refund-4712")
    );
    let decisions = stdout(&w.read(&["log", "--type", "decision"]));
    assert_eq!(decisions.lines().count(), 1, "{decisions}");
    assert!(
        decisions.contains("refund-4711") && decisions.contains("lea@example.com approved"),
        "{decisions}"
    );
    let later: serde_json::Value = serde_json::from_slice(
        &w.read(&["log", "--since", "2026-11-28", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(later.as_array().unwrap().len(), 0);
    let o = w.read(&["log", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    // Reading works on a detached HEAD, as in a CI checkout.
    w.git(&["checkout", "-q", "--detach"]);
    ok(&w.read(&["verify"]));
    assert_eq!(ok(&w.read(&["log", "--type", "decision"])), decisions);
}

impl AuditWs {
    /// `hitl propose ID` as the agent at [`NOW`], spawned and not waited for.
    fn spawn_propose(&self, id: &str) -> std::process::Child {
        let key = self.key(AGENT);
        Proc::new(snapbox::cmd::cargo_bin!("hitl"))
            .args(["propose", id, "--key", key.to_str().unwrap()])
            .env("HITL_TEST_NOW", NOW)
            .current_dir(self.ws())
            .env("TZ", "UTC")
            .env("HOME", self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("HITL_SIGNING_KEY")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// The ids of the example requests the agent may submit (support-copilot's tools).
const AGENT_REQUESTS: &[&str] = &[
    "refund-4711",
    "refund-4712",
    "email-customer-5531",
    "draft-reply-5531",
    "crm-stage-acme",
    "contract-clause-acme",
];

#[test]
fn processes_appending_at_once_all_land_in_one_linear_chain() {
    let w = AuditWs::new();
    let children: Vec<_> = AGENT_REQUESTS
        .iter()
        .map(|id| w.spawn_propose(id))
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        // 0 recorded, 1 recorded as blocked: both landed.
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let report = w.verify_json();
    assert!(codes(&report).is_empty(), "{report}");
    assert_eq!(report["events"], 5 * AGENT_REQUESTS.len());
    // One commit per process on top of the first, no fork: a linear history.
    let commits = w.git(&["rev-list", "--count", "HEAD"]);
    assert_eq!(commits.trim(), (AGENT_REQUESTS.len() + 1).to_string());
    assert_eq!(w.git(&["rev-list", "--min-parents=2", "HEAD"]), "");
    assert_eq!(w.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_process_killed_while_appending_loses_nothing_committed() {
    let w = AuditWs::new();
    let mut landed = 0;
    // One append that completes, so there is something committed to lose.
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    for (i, id) in AGENT_REQUESTS.iter().skip(1).cycle().take(30).enumerate() {
        // Kills spread over the whole run of a process (start-up, policy evaluation, the
        // append itself, the index write); ids that already landed are refused, which
        // is fine.
        let mut child = w.spawn_propose(id);
        std::thread::sleep(std::time::Duration::from_millis(3 + (i as u64 * 37) % 300));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let report = w.verify_json();
        assert!(codes(&report).is_empty(), "after kill {i}: {report}");
        let events = report["events"].as_u64().unwrap();
        assert!(events >= landed, "an event that was committed was lost");
        assert_eq!(events % 5, 0, "appends are all or nothing");
        landed = events;
    }
    // The state a kill right after the branch moved leaves: the commit landed, its files
    // are neither in the working tree nor in the index, the journal names them.
    let rel = "audit/events/000000000/000000000001.json";
    w.git(&["rm", "-q", "--cached", rel]);
    std::fs::remove_file(w.ws().join(rel)).unwrap();
    let head = w.git(&["rev-parse", "HEAD"]);
    std::fs::write(
        w.ws().join(".git/hitl-audit.journal"),
        format!("{}{rel}\n", head),
    )
    .unwrap();
    // ...and killed while libgit2 wrote the index: its lock file stays behind.
    std::fs::write(w.ws().join(".git/index.lock"), b"half an index").unwrap();
    assert_ne!(w.git(&["status", "--porcelain"]), "");
    // The next command finishes it: afterwards the working tree and index match HEAD.
    let o = w.hitl(AGENT, &["propose", "hr-update-emp-204"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    assert!(
        !w.ws().join(".git/index.lock").exists(),
        "the stale lock is gone"
    );
    let report = w.verify_json();
    assert!(codes(&report).is_empty(), "{report}");
    assert_eq!(w.git(&["status", "--porcelain"]), "");
}

#[test]
fn replay_tells_the_story_and_recomputes_with_the_recorded_versions() {
    let w = AuditWs::new();
    w.propose_and_approve();
    // Later, the policies change in git: replay still uses the versions of the record.
    let limits = w.ws().join("policies/limits.rego");
    let text = std::fs::read_to_string(&limits).unwrap();
    std::fs::write(
        &limits,
        format!("{text}\ndeny contains \"all refunds stop\" if is_refund\n"),
    )
    .unwrap();
    w.commit_all(Some(LEA), "stop refunds");

    let o = w.read(&["replay", "refund-4711"]);
    let out = ok(&o);
    for needle in [
        "requested by   maria@example.com",
        "submitted by   support-copilot@agents.example.com",
        "agent          support-copilot (model gpt-support-2026-10, prompt template refund-v3)",
        "approved by lea@example.com as support-lead",
        "signature good",
        "tool           payments.refund on payments (charge/ch_981)",
        "\ntimeline\n",
        "     6  2026-11-27T16:00:00Z  decision            lea@example.com",
        "recorded       tier 3, policy allowed, deny none, warn none, escalate none",
        "same outcome",
        // The recorded evidence pack, as tables.
        "evidence pack as shown to the approver\nEvidence pack\n",
        "│ Risk tier           ┆ 3 ",
        "│ Requesting identity ┆ requested_by: maria@example.com ",
        "Retrieved sources\n",
        "ticket-5531",
        "Before/after diff\n  charge: ch_981\n- status: captured\n+ status: refunded\n",
        "Approval\n",
        "│ Workflow           ┆ customer-refund ",
        "Warnings: none\n",
    ] {
        assert!(out.contains(needle), "`{needle}` missing in:\n{out}");
    }
    // No raw JSON: no braces, no quoted keys.
    assert!(
        !out.contains(['{', '}']),
        "JSON in the table output:\n{out}"
    );
    assert!(!out.contains("\"risk_tier\""), "{out}");
    let json: serde_json::Value = serde_json::from_slice(
        &w.read(&["replay", "refund-4711", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(json["same_outcome"], true);
    assert_eq!(json["events"].as_array().unwrap().len(), 6);
    // The raw pack is in the JSON form.
    assert_eq!(json["evidence_pack"]["risk_tier"], 3);
    assert_eq!(json["evidence_pack"]["sources"][0]["id"], "ticket-5531");

    // A proposal is never recorded under a matrix that is not committed: replay must be
    // able to find every version it rests on.
    let m = w.ws().join("approval-matrix.yaml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, format!("{text}\n# local edit\n")).unwrap();
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(AGENT, &["propose", "refund-4712"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("uncommitted changes to `approval-matrix.yaml`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);

    let o = w.read(&["replay", "no-such-request"]);
    assert_eq!(o.status.code(), Some(4));
}

/// A real `ssh-agent -D` on a socket beside the workspace, killed on drop.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("agent.sock");
        let child = Proc::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..500 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(socket.exists(), "ssh-agent did not start");
        Self { child, socket }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_key_held_only_in_ssh_agent_signs_decisions() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let agent = Agent::start(w.dir.path());
    // lea signs git commits with a literal key, as `git config user.signingkey` allows
    // with ssh-agent; hitl takes the same setting.
    let public = std::fs::read_to_string(w.keys.join(format!("{LEA}.pub"))).unwrap();
    w.git(&[
        "config",
        "user.signingkey",
        &format!("key::{}", public.trim()),
    ]);
    let approve = || {
        run(w
            .command(NOW)
            .env_remove("HITL_SIGNING_KEY")
            .env("SSH_AUTH_SOCK", &agent.socket)
            .args(["approve", "refund-4711"]))
    };
    let head = w.git(&["rev-parse", "HEAD"]);

    // The agent does not hold the key yet: refused, nothing written.
    let o = approve();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ssh-agent does not hold key"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("ssh-add"), "{}", stderr(&o));
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    assert!(!w.event_file(6).exists());

    let added = Proc::new("ssh-add")
        .arg("-q")
        .arg(w.key(LEA))
        .env("SSH_AUTH_SOCK", &agent.socket)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    ok(&added);
    let o = approve();
    assert!(
        ok(&o).contains("approved by lea@example.com"),
        "{}",
        stdout(&o)
    );
    ok(&sh(&w.ws(), "git", &["verify-commit", "HEAD"]));
    ok(&w.ssh_keygen_verify(6, LEA));
    assert!(codes(&w.verify_json()).is_empty());

    // A `.pub` file with `--key` works the same way; without an agent it is refused.
    let lea_pub = w.keys.join(format!("{LEA}.pub"));
    let o = run(w
        .command(NOW)
        .env_remove("SSH_AUTH_SOCK")
        .args(["checkpoint", "--key"])
        .arg(&lea_pub));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("SSH_AUTH_SOCK"), "{}", stderr(&o));
    let o = run(w
        .command(NOW)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .args(["checkpoint", "--key"])
        .arg(&lea_pub));
    assert!(ok(&o).contains("SSH SIGNATURE"), "{}", stdout(&o));
}

/// The history walk splits a long history into runs checked on several threads: a
/// problem in a later run is still found, and the seams between runs raise nothing.
#[test]
fn a_long_history_is_checked_in_parallel_runs_without_gaps_at_the_seams() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    // Signed commits that do not touch the audit, so the decision lands in a later run.
    let lea_key = w.key(LEA);
    let signing = format!("user.signingkey={}", lea_key.display());
    for i in 0..40 {
        w.git(&[
            "-c",
            &signing,
            "commit",
            "-q",
            "-S",
            "--allow-empty",
            "-m",
            &format!("unrelated {i}"),
        ]);
    }
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    let report = w.verify_json();
    assert!(codes(&report).is_empty(), "{report}");
    assert_eq!(report["commits"], 3, "{report}");
    assert_eq!(report["signatures"], 1, "{report}");

    // An unsigned commit that edits the decision, at the end of the last run.
    w.edit_event(6, "\"approved\"", "\"rejected\"");
    w.commit_all(None, "fix typo");
    let report = w.verify_json();
    let found = codes(&report);
    for code in ["commit-unsigned", "history-rewrite", "signature-bad"] {
        assert!(found.iter().any(|c| c == code), "{code} missing: {report}");
    }
}

/// A split index is one neither hitl nor libgit2 can update: the decision is refused
/// before anything is recorded (it used to land with the index left behind, so a later
/// `git commit -a` would have deleted it).
#[test]
fn an_index_hitl_cannot_update_is_refused_before_recording() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    w.git(&["update-index", "--split-index"]);
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = w.hitl(LEA, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("git update-index --no-split-index"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    assert!(!w.event_file(6).exists());
    // Turned off, the same command records, and git sees a clean tree.
    w.git(&["update-index", "--no-split-index"]);
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    assert_eq!(w.git(&["status", "--porcelain"]), "");
}

/// Files the layout has no place for are named, even when a trusted key commits them:
/// a stray file in `audit/`, a signature beside an event that is not a decision, a
/// signature without an event, and a `.sig` with a name no event has.
#[test]
fn verify_names_files_the_layout_has_no_place_for() {
    let w = AuditWs::new();
    w.propose_and_approve();
    let shard = w.event_file(1).parent().unwrap().to_path_buf();
    let sig6 = std::fs::read(format!("{}.sig", w.event_file(6).display())).unwrap();
    std::fs::write(w.ws().join("audit/notes.txt"), "hello\n").unwrap();
    std::fs::write(shard.join("000000000001.json.sig"), &sig6).unwrap();
    std::fs::write(shard.join("000000000099.json.sig"), &sig6).unwrap();
    std::fs::write(shard.join("garbage.sig"), &sig6).unwrap();
    w.commit_all(Some(LEA), "extras");
    let report = w.verify_json();
    let named: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["code"] == "unexpected-file")
        .filter_map(|p| p["file"].as_str())
        .collect();
    for file in [
        "audit/notes.txt",
        "audit/events/000000000/000000000001.json.sig",
        "audit/events/000000000/000000000099.json.sig",
        "audit/events/000000000/garbage.sig",
    ] {
        assert!(named.contains(&file), "{file} not named: {report}");
    }
    assert_eq!(named.len(), 4, "{report}");
}

/// On a terminal `verify` shows a progress bar on stderr, events then commits, and
/// clears it before the report. `script` gives the command a pseudo-terminal.
#[test]
fn verify_shows_a_progress_bar_on_a_terminal_only() {
    let w = AuditWs::new();
    w.propose_and_approve();
    let bin = snapbox::cmd::cargo_bin!("hitl");
    let o = Proc::new("script")
        .args(["-qec", &format!("'{}' verify", bin.display()), "/dev/null"])
        .current_dir(w.ws())
        .env("HOME", w.dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{tty}");
    for part in [" events [", "commits [", "6 events, 1 decision signatures"] {
        assert!(tty.contains(part), "{part:?} missing in {tty:?}");
    }
    // Not a terminal: no bar, nothing on stderr.
    let o = w.read(&["verify"]);
    assert!(ok(&o).starts_with("6 events"), "{}", stdout(&o));
    assert_eq!(stderr(&o), "");
}

/// Every way a signing key can be unusable refuses the command with exit 6 (the
/// documented refusal code, not 2, which means a bad command line), and records
/// nothing; a key file that cannot be read at all is an I/O failure (5).
#[test]
fn key_problems_exit_with_the_refusal_code() {
    let w = AuditWs::new();
    let pp = w.keys.join("protected");
    ok(&sh(
        w.dir.path(),
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "secret",
            "-f",
            pp.to_str().unwrap(),
        ],
    ));
    let garbage = w.keys.join("garbage");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let lea_pub = w.keys.join(format!("{LEA}.pub"));
    let head = w.git(&["rev-parse", "HEAD"]);
    let propose_with = |key: Option<&Path>| {
        let mut cmd = w
            .command(NOW)
            .env_remove("HITL_SIGNING_KEY")
            .env_remove("SSH_AUTH_SOCK")
            .args(["propose", "refund-4711"]);
        if let Some(k) = key {
            cmd = cmd.arg("--key").arg(k);
        }
        run(cmd)
    };
    let missing = w.keys.join("no-such-key");
    let mallory = w.key(MALLORY);
    let cases: [(&str, Option<&Path>, i32, &str); 6] = [
        (
            "no key configured",
            None,
            6,
            "no signing key: pass `--key FILE`",
        ),
        (
            "not a key file",
            Some(&garbage),
            6,
            "is not a usable OpenSSH private key",
        ),
        (
            "a passphrase and no terminal",
            Some(&pp),
            6,
            "is protected by a passphrase",
        ),
        (
            "a public key and no agent",
            Some(&lea_pub),
            6,
            "needs ssh-agent",
        ),
        (
            "a key not in allowed_signers",
            Some(&mallory),
            6,
            "allowed_signers`; add a line",
        ),
        (
            "a key file that is not there",
            Some(&missing),
            5,
            "cannot read",
        ),
    ];
    for (name, key, code, message) in cases {
        let o = propose_with(key);
        assert_eq!(o.status.code(), Some(code), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{name}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("error: "), "{name}: {}", stderr(&o));
    }
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head, "nothing was recorded");

    // A wrong passphrase, typed at the prompt on a (pseudo-)terminal.
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let (o, tty) = w.on_terminal(
        &format!("checkpoint --key '{}'", pp.display()),
        "passphrase for",
        "wrong\n",
    );
    assert_eq!(o.code(), Some(6), "{tty}");
    assert!(tty.contains("wrong passphrase for key"), "{tty}");
}

impl AuditWs {
    /// Runs `hitl ARGS` on a pseudo-terminal (`script`) in the workspace at [`NOW`];
    /// types `input` once `prompt` shows. Returns the status and what the terminal
    /// showed.
    fn on_terminal(
        &self,
        args: &str,
        prompt: &str,
        input: &str,
    ) -> (std::process::ExitStatus, String) {
        use std::io::{Read as _, Write as _};
        let bin = snapbox::cmd::cargo_bin!("hitl");
        let mut child = Proc::new("script")
            .args(["-qec", &format!("'{}' {args}", bin.display()), "/dev/null"])
            .current_dir(self.ws())
            .env("HITL_TEST_NOW", NOW)
            .env("HOME", self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("HITL_SIGNING_KEY")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `script` ends the session when its input closes: keep it open until the end.
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = {
            let shown = shown.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    shown.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let text = || String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
        while !text().contains(prompt) && child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "no prompt: {}",
                text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Typed input that arrives before the prompt has set up the terminal is
        // discarded (the terminal is flushed): type it again until the command ends.
        let status = loop {
            let _ = stdin.write_all(input.as_bytes());
            let _ = stdin.flush();
            std::thread::sleep(std::time::Duration::from_millis(300));
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("`hitl {args}` did not end on the terminal: {}", text());
            }
        };
        drop(stdin);
        reader.join().unwrap();
        let shown = shown.lock().unwrap().clone();
        (status, String::from_utf8_lossy(&shown).into_owned())
    }
}

/// An empty audit, and filters that match nothing, are said in words on stderr (stdout
/// stays the list, empty); JSON prints the empty list.
#[test]
fn log_says_when_there_is_nothing_to_list() {
    let w = AuditWs::new();
    let o = w.read(&["log"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "no events recorded yet in `audit/`\n  = hint: `hitl propose REQUEST` records the first\n"
    );
    let o = w.read(&["log", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "[]\n");
    assert_eq!(stderr(&o), "");
    let o = w.read(&["log", "--request", "refund-4711"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("no events for request `refund-4711` in the audit"),
        "{}",
        stderr(&o)
    );

    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let o = w.read(&["log", "--type", "decision"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "no events match `--type decision` (the audit has 5 events)\n"
    );
    let o = w.read(&[
        "log",
        "--request",
        "refund-4711",
        "--type",
        "decision",
        "--since",
        "2026-11-01",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "no events match `--type decision --since 2026-11-01T00:00:00Z` (request `refund-4711` has 5 events)\n"
    );
    let o = w.read(&["log", "--type", "decision", "--format", "json"]);
    assert_eq!(stdout(&o), "[]\n");
    assert_eq!(stderr(&o), "");
    // A request the audit does not know is not found, whatever the filters.
    let o = w.read(&["log", "--request", "refund-9999", "--type", "decision"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    // Events listed: nothing on stderr.
    let o = w.read(&["log"]);
    assert_eq!(stdout(&o).lines().count(), 5);
    assert_eq!(stderr(&o), "");
}

/// `lint` does not warn that a request the audit has closed (approved, rejected or
/// blocked) has expired; an open one still gets the warning, and so does a closed one
/// linted as of an instant before it was closed.
#[test]
fn lint_does_not_warn_that_decided_requests_expired() {
    let w = AuditWs::new();
    w.propose_and_approve(); // refund-4711, expires 2026-11-28T09:00Z
    ok(&w.hitl(AGENT, &["propose", "refund-4712"])); // left open, expires 09:10
    ok(&w.hitl(AGENT, &["propose", "crm-stage-acme"])); // rejected below, expires 10:00
    ok(&w.hitl(
        RAVI,
        &[
            "reject",
            "crm-stage-acme",
            "--reason-code",
            "insufficient-evidence",
        ],
    ));
    // Blocked by policy late in the evening, half an hour before it expires (23:30).
    let o = w.hitl_at(
        "2026-11-27 23:00:00",
        AGENT,
        &["propose", "email-contract-terms"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let expired = |o: &Output| -> Vec<String> {
        let report: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)));
        let mut ids: Vec<String> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "expired")
            .map(|f| {
                let file = f["file"].as_str().unwrap();
                file.trim_start_matches("requests/")
                    .trim_end_matches(".yaml")
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids
    };
    let all: Vec<String> = super::support::request_ids();
    let open_and_expired = |at: &str| -> Vec<String> {
        // What lint said before this change: every request expired at `at`.
        let t = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc();
        all.iter()
            .filter(|id| {
                let text =
                    std::fs::read_to_string(w.ws().join(format!("requests/{id}.yaml"))).unwrap();
                let line = text
                    .lines()
                    .find_map(|l| l.strip_prefix("expires_at: "))
                    .unwrap();
                chrono::DateTime::parse_from_rfc3339(line.trim()).unwrap() <= t
            })
            .cloned()
            .collect()
    };

    // At noon on the 28th: 4711 (approved), crm-stage-acme (rejected) and
    // email-contract-terms (blocked) have no warning; 4712 (open) has.
    let noon = "2026-11-28 12:00:00";
    let o = run(w.command(noon).args(["lint", "--format", "json"]));
    let found = expired(&o);
    let mut want = open_and_expired(noon);
    want.retain(|id| {
        !["refund-4711", "crm-stage-acme", "email-contract-terms"].contains(&id.as_str())
    });
    assert!(want.contains(&"refund-4712".to_owned()), "{want:?}");
    assert_eq!(found, want);

    // As of 09:05, refund-4711 (expired at 09:00) was closed: no warning; refund-4712
    // (expires 09:10) not expired yet. (A request can no longer be closed after its
    // expiry: `propose` refuses it and no decision is taken on it.)
    let o = run(w
        .command(noon)
        .args(["lint", "--format", "json", "--at", "2026-11-28T09:05:00Z"]));
    let found = expired(&o);
    assert!(!found.contains(&"refund-4711".to_owned()), "{found:?}");
    assert!(!found.contains(&"refund-4712".to_owned()), "{found:?}");

    // The table says the same.
    let table = stdout(&run(w.command(noon).args(["lint"])));
    assert!(table.contains("request `refund-4712` expired"), "{table}");
    assert!(!table.contains("request `refund-4711` expired"), "{table}");

    // An audit lint cannot read is a warning, and then expiry is reported for all.
    let index = w
        .ws()
        .join(hitl_lib::audit::request_index_path("refund-4711"));
    std::fs::write(index, "not a seq\n").unwrap();
    w.commit_all(None, "break the index");
    let o = run(w.command(noon).args(["lint"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.contains("warning[audit]: audit:1:1: cannot read the audit, so requests it closed may be reported as expired: "),
        "{table}"
    );
    assert!(table.contains("request `refund-4711` expired"), "{table}");
}

/// `hitl check FILE` with the refund's scope (`payments.refund` on its charge, `amount`
/// EUR): the arguments, for the tests that check a refund's approval file.
pub fn refund_check<'a>(file: &'a str, amount: &'a str) -> [&'a str; 10] {
    [
        "check",
        file,
        "--action",
        "payments.refund",
        "--target",
        "payments/charge/ch_981",
        "--amount",
        amount,
        "--currency",
        "EUR",
    ]
}
