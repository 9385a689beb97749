//! The audit's promise as a property (issue 9): random sequences of `hitl` commands and
//! hostile git operations, each case in a fresh [`AuditWs`] (real `ssh-keygen` keys, real
//! git, the real binary at the test clock), and after every operation `hitl verify
//! --format json` must exit 0 exactly while no hostile operation has happened, and 1
//! from the first one on, whatever legitimate operations follow. A false alarm on a
//! clean history fails the test as surely as a miss.
//!
//! Legitimate operations: propose an example as the agent, approve or reject it as its
//! approver (docs/matrix.md's table), attempts that must be refused (the requester, the
//! agent, an approver of another role, a key nobody trusts: non-zero exit and HEAD
//! unchanged, always), a harmless matrix edit signed by the admin, an unsigned commit
//! outside the audit and the configuration. While the history is clean, every command
//! must do what the model of the requests says (recorded or refused).
//!
//! Hostile operations (each applied only where it changes something): an event edited
//! (optionally relinked and re-signed by the insider) or deleted, `audit` turned into a
//! symlink and back, a submodule entry under `audit/`, a merge that hides an edit or
//! drops the last commit, an orphan root with its own `allowed_signers` merged in, a
//! governed file changed in a commit no admin signed, and a decision written by hand and
//! signed (detached and commit) by a key that may not make it.
//!
//! The seed is fixed (`PROPTEST_RNG_SEED` and `PROPTEST_CASES` override it and the
//! number of cases, to explore further locally) and failures are not persisted: the
//! repository stays clean. A failure prints the shrunk sequence, what each operation did
//! and `verify`'s report; `HITL_PROPERTY_STORIES=1` (with `--nocapture`) prints every
//! case's operations as they run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

use super::audit::{AuditWs, ok, sh};
use super::support::{stderr, stdout};

const AGENT: &str = "support-copilot@agents.example.com";
const LEA: &str = "lea@example.com";
const RAVI: &str = "ravi@example.com";
const MARIA: &str = "maria@example.com";
const MALLORY: &str = "mallory@example.com";
const ALEX: &str = "alex@example.com";

/// The seed of the generated sequences, so that a failure in CI reproduces locally.
const SEED: u64 = 0x6869_746c_0009;
/// Cases per run: each builds a workspace (six `ssh-keygen`, git) and runs up to 7
/// operations, each followed by `verify`. In a debug build on 2 cores, 64 cases took
/// 25 s on an idle machine and up to about 65 s under load.
const CASES: u32 = 64;

/// An example request (docs/matrix.md, as of the test clock), requested by maria.
struct Example {
    id: &'static str,
    /// The member of its eligible role.
    approver: &'static str,
    /// A trusted approver of another role: ineligible here.
    outsider: &'static str,
    /// The policies deny it: `propose` records it as blocked and exits 1.
    blocked: bool,
}

const EXAMPLES: [Example; 5] = [
    Example {
        id: "refund-4711",
        approver: LEA,
        outsider: RAVI,
        blocked: false,
    },
    // 1,500 EUR: above support-lead's limit, escalated to revenue-ops.
    Example {
        id: "refund-4712",
        approver: RAVI,
        outsider: LEA,
        blocked: false,
    },
    Example {
        id: "email-customer-5531",
        approver: LEA,
        outsider: RAVI,
        blocked: false,
    },
    Example {
        id: "crm-stage-acme",
        approver: RAVI,
        outsider: LEA,
        blocked: false,
    },
    Example {
        id: "email-contract-terms",
        approver: LEA,
        outsider: RAVI,
        blocked: true,
    },
];

/// Who signs a commit made with git (or nobody).
#[derive(Clone, Copy, Debug)]
enum Signer {
    Unsigned,
    Lea,
    Ravi,
    Agent,
    /// The admin: may change the configuration, never rewrite the audit.
    Alex,
    /// Not in `allowed_signers`.
    Mallory,
}

impl Signer {
    fn principal(self) -> Option<&'static str> {
        match self {
            Signer::Unsigned => None,
            Signer::Lea => Some(LEA),
            Signer::Ravi => Some(RAVI),
            Signer::Agent => Some(AGENT),
            Signer::Alex => Some(ALEX),
            Signer::Mallory => Some(MALLORY),
        }
    }
}

/// Who tries a decision that must be refused.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// maria, who requested every example.
    Requester,
    Agent,
    /// The trusted approver of another role.
    Outsider,
    /// mallory, whom nobody trusts.
    Stranger,
}

/// A governed file changed in a commit no admin signs.
#[derive(Clone, Copy, Debug)]
enum Governed {
    /// ravi added to support-lead.
    Matrix,
    /// mallory trusted.
    AllowedSigners,
    /// lea's key revoked.
    RevokedSigners,
    /// ravi may request payments (the RBAC data the policies read).
    Policies,
    /// a `hitl.toml` that lowers the byte cap.
    HitlToml,
}

/// Whose key writes and signs a decision by hand.
#[derive(Clone, Copy, Debug)]
enum Forger {
    Outsider,
    Requester,
    Agent,
    Stranger,
    /// The eligible approver, on a request that is already decided or blocked (on a
    /// pending one, the outsider instead: the approver's own decision is no forgery).
    ApproverOnClosed,
}

#[derive(Clone, Debug)]
enum Op {
    // Legitimate. `pick` chooses among the examples not proposed yet (`again`: among
    // those proposed), a decision among those proposed; any example when there is none.
    Propose {
        pick: u8,
        again: bool,
    },
    Decide {
        pick: u8,
        reject: bool,
    },
    Refused {
        pick: u8,
        who: Refusal,
        reject: bool,
    },
    AdminMatrixComment,
    PlainCommit,
    // Hostile.
    EditEvent {
        pick: u16,
        flip_decision: bool,
        relink: bool,
        by: Signer,
    },
    DeleteEvent {
        pick: u16,
        tidy_index: bool,
        by: Signer,
    },
    SymlinkRoundTrip {
        erase_last: bool,
        by: Signer,
    },
    Submodule {
        at_next_event: bool,
        by: Signer,
    },
    MergeHidingEdit {
        pick: u16,
        by: Signer,
    },
    MergeDroppingTip {
        by: Signer,
    },
    OrphanRoot {
        root_by: Signer,
        merge_by: Signer,
    },
    GovernedEdit {
        what: Governed,
        by: Signer,
    },
    ForgedDecision {
        pick: u16,
        who: Forger,
        reject: bool,
    },
}

fn any_signer() -> impl Strategy<Value = Signer> {
    prop_oneof![
        Just(Signer::Unsigned),
        Just(Signer::Lea),
        Just(Signer::Ravi),
        Just(Signer::Agent),
        Just(Signer::Alex),
        Just(Signer::Mallory),
    ]
}

/// Anyone but the admin: a change of the configuration they sign is not allowed.
fn non_admin() -> impl Strategy<Value = Signer> {
    prop_oneof![
        Just(Signer::Unsigned),
        Just(Signer::Lea),
        Just(Signer::Ravi),
        Just(Signer::Agent),
        Just(Signer::Mallory),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let refusal = prop_oneof![
        Just(Refusal::Requester),
        Just(Refusal::Agent),
        Just(Refusal::Outsider),
        Just(Refusal::Stranger),
    ];
    let forger = prop_oneof![
        Just(Forger::Outsider),
        Just(Forger::Requester),
        Just(Forger::Agent),
        Just(Forger::Stranger),
        Just(Forger::ApproverOnClosed),
    ];
    let governed = prop_oneof![
        Just(Governed::Matrix),
        Just(Governed::AllowedSigners),
        Just(Governed::RevokedSigners),
        Just(Governed::Policies),
        Just(Governed::HitlToml),
    ];
    prop_oneof![
        7 => (any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(pick, again)| Op::Propose { pick, again }),
        6 => (any::<u8>(), any::<bool>()).prop_map(|(pick, reject)| Op::Decide { pick, reject }),
        3 => (any::<u8>(), refusal, any::<bool>())
            .prop_map(|(pick, who, reject)| Op::Refused { pick, who, reject }),
        1 => Just(Op::AdminMatrixComment),
        1 => Just(Op::PlainCommit),
        1 => (any::<u16>(), any::<bool>(), any::<bool>(), any_signer()).prop_map(
            |(pick, flip_decision, relink, by)| Op::EditEvent { pick, flip_decision, relink, by }
        ),
        1 => (any::<u16>(), any::<bool>(), any_signer())
            .prop_map(|(pick, tidy_index, by)| Op::DeleteEvent { pick, tidy_index, by }),
        1 => (any::<bool>(), any_signer())
            .prop_map(|(erase_last, by)| Op::SymlinkRoundTrip { erase_last, by }),
        1 => (any::<bool>(), any_signer())
            .prop_map(|(at_next_event, by)| Op::Submodule { at_next_event, by }),
        1 => (any::<u16>(), any_signer()).prop_map(|(pick, by)| Op::MergeHidingEdit { pick, by }),
        1 => any_signer().prop_map(|by| Op::MergeDroppingTip { by }),
        1 => (any_signer(), any_signer())
            .prop_map(|(root_by, merge_by)| Op::OrphanRoot { root_by, merge_by }),
        2 => (governed, non_admin()).prop_map(|(what, by)| Op::GovernedEdit { what, by }),
        2 => (any::<u16>(), forger, any::<bool>())
            .prop_map(|(pick, who, reject)| Op::ForgedDecision { pick, who, reject }),
    ]
}

/// A request's state in the model of the legitimate commands.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Req {
    New,
    Pending,
    Blocked,
    Decided,
}

/// What an operation did: a hostile change made, or nothing to be hostile about.
enum Done {
    Legit(String),
    Hostile(String),
    Skipped(&'static str),
}

struct Case {
    w: AuditWs,
    reqs: [Req; EXAMPLES.len()],
    /// The operations (by index) that tampered with the history.
    tampered: Vec<usize>,
    counter: u32,
}

/// `git -c user.signingkey=... -c user.email=... CMD... (-S | --no-gpg-sign) REST...`.
fn git_as(w: &AuditWs, by: Signer, cmd: &[&str], rest: &[&str]) -> String {
    let mut args: Vec<String> = Vec::new();
    if let Some(who) = by.principal() {
        args.extend([
            "-c".into(),
            format!("user.signingkey={}", w.key(who).display()),
            "-c".into(),
            format!("user.email={who}"),
        ]);
    } else {
        args.extend(["-c".into(), format!("user.email={MALLORY}")]);
    }
    args.extend(cmd.iter().map(|s| (*s).to_owned()));
    args.push(
        if by.principal().is_some() {
            "-S"
        } else {
            "--no-gpg-sign"
        }
        .into(),
    );
    args.extend(rest.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    w.git_with(&[], &refs, None)
}

fn rev(w: &AuditWs, what: &str) -> String {
    w.git(&["rev-parse", what]).trim().to_owned()
}

fn head(w: &AuditWs) -> String {
    rev(w, "HEAD")
}

fn blob(w: &AuditWs, bytes: &[u8]) -> String {
    w.git_with(&[], &["hash-object", "-w", "--stdin"], Some(bytes))
        .trim()
        .to_owned()
}

/// The tree of `base` (or an empty one) with `puts` (mode, id, path), in a scratch index.
fn tree_with(w: &AuditWs, base: Option<&str>, puts: &[(&str, &str, &str)]) -> String {
    let index = w.dir.path().join("scratch-index");
    let _ = std::fs::remove_file(&index);
    let env = [("GIT_INDEX_FILE", index.to_str().unwrap())];
    if let Some(base) = base {
        w.git_with(&env, &["read-tree", base], None);
    }
    for (mode, id, path) in puts {
        w.git_with(
            &env,
            &[
                "update-index",
                "--add",
                "--replace",
                "--cacheinfo",
                &format!("{mode},{id},{path}"),
            ],
            None,
        );
    }
    w.git_with(&env, &["write-tree"], None).trim().to_owned()
}

fn commit_tree(w: &AuditWs, tree: &str, parents: &[&str], by: Signer, msg: &str) -> String {
    let mut cmd = vec!["commit-tree", tree];
    for p in parents {
        cmd.extend(["-p", p]);
    }
    git_as(w, by, &cmd, &["-m", msg]).trim().to_owned()
}

fn commit_all(w: &AuditWs, by: Signer, msg: &str) {
    w.commit_all(by.principal(), msg);
}

/// The event files in the working tree (= HEAD's), by seq.
fn events(w: &AuditWs) -> Vec<(u64, PathBuf)> {
    let root = w.ws().join("audit/events");
    let mut out = Vec::new();
    let Ok(folders) = std::fs::read_dir(&root) else {
        return out;
    };
    for d in folders {
        let Ok(files) = std::fs::read_dir(d.unwrap().path()) else {
            continue;
        };
        for f in files {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(seq) = name.strip_suffix(".json").and_then(|s| s.parse().ok())
                && p.is_file()
            {
                out.push((seq, p));
            }
        }
    }
    out.sort();
    out
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap_or(serde_json::Value::Null)
}

fn sig_of(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig", p.display()))
}

fn rel(w: &AuditWs, p: &Path) -> String {
    p.strip_prefix(w.ws()).unwrap().display().to_string()
}

fn index_file(w: &AuditWs, request: &str) -> PathBuf {
    let digest = hitl_lib::audit::sha256_hex(request.as_bytes());
    w.ws()
        .join(format!("audit/requests/{}/{request}", &digest[..2]))
}

/// Takes `seq` out of its request's index (the file goes when it is empty).
fn unindex(w: &AuditWs, request: &str, seq: u64) {
    let p = index_file(w, request);
    let Ok(text) = std::fs::read_to_string(&p) else {
        return;
    };
    let kept: String = text
        .lines()
        .filter(|l| *l != seq.to_string())
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.is_empty() {
        std::fs::remove_file(&p).unwrap();
    } else {
        std::fs::write(&p, kept).unwrap();
    }
}

/// `text` with one field changed: a decision's verdict flipped when asked and possible,
/// else the `pick`-th string value (in file order) with its last character replaced.
fn mutate(text: &str, pick: u16, flip_decision: bool) -> String {
    if flip_decision {
        for (from, to) in [
            ("\"decision\": \"approved\"", "\"decision\": \"rejected\""),
            ("\"decision\": \"rejected\"", "\"decision\": \"approved\""),
        ] {
            if text.contains(from) {
                return text.replacen(from, to, 1);
            }
        }
    }
    let strings: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("\": \"") && l.trim_end_matches(',').ends_with('"'))
        .map(|(i, _)| i)
        .collect();
    if strings.is_empty() {
        return format!("{text} ");
    }
    let target = strings[usize::from(pick) % strings.len()];
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == target {
            let comma = line.ends_with(',');
            let body = line.trim_end_matches(',');
            let value = &body[..body.len() - 1];
            let last = value.chars().last().unwrap();
            let with = if last == 'a' { 'b' } else { 'a' };
            out.push_str(&value[..value.len() - last.len_utf8()]);
            out.push(with);
            out.push('"');
            if comma {
                out.push(',');
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Signs `file` under namespace `hitl` with `who`'s key, into `file.sig` (replaced).
fn sign_detached(w: &AuditWs, who: &str, file: &Path) {
    let _ = std::fs::remove_file(sig_of(file));
    ok(&super::audit::sign_file(
        w.dir.path(),
        &w.key(who),
        "hitl",
        file,
    ));
}

/// The requests the audit in the working tree holds, with their state as the events
/// say it (decided, blocked, else pending) and their events.
fn recorded_requests(w: &AuditWs) -> Vec<(String, Req, Vec<serde_json::Value>)> {
    let mut out: Vec<(String, Req, Vec<serde_json::Value>)> = Vec::new();
    for (_, p) in events(w) {
        let e = json(&p);
        let Some(request) = e["request"].as_str() else {
            continue;
        };
        let state = match e["type"].as_str() {
            Some("decision") => Req::Decided,
            Some("blocked") => Req::Blocked,
            _ => Req::Pending,
        };
        match out.iter_mut().find(|(r, _, _)| r == request) {
            Some((_, s, all)) => {
                if state != Req::Pending {
                    *s = state;
                }
                all.push(e);
            }
            None => out.push((request.to_owned(), state, vec![e])),
        }
    }
    out
}

fn exit(o: &Output) -> String {
    match o.status.code() {
        Some(c) => format!("exit {c}"),
        None => "killed".to_owned(),
    }
}

impl Case {
    fn new() -> Self {
        Self {
            w: AuditWs::new(),
            reqs: [Req::New; EXAMPLES.len()],
            tampered: Vec::new(),
            counter: 0,
        }
    }

    fn clean(&self) -> bool {
        self.tampered.is_empty()
    }

    /// The example `pick` names among those whose proposal is (or is not) recorded, or
    /// among all when there is none.
    fn example(&self, pick: u8, proposed: bool) -> usize {
        let some: Vec<usize> = (0..EXAMPLES.len())
            .filter(|&i| (self.reqs[i] != Req::New) == proposed)
            .collect();
        let from = if some.is_empty() {
            (0..EXAMPLES.len()).collect()
        } else {
            some
        };
        from[usize::from(pick) % from.len()]
    }

    /// A command that must be refused: non-zero exit, nothing recorded.
    fn refused(&self, who: &str, args: &[&str]) -> Result<String, String> {
        let before = head(&self.w);
        let o = self.w.hitl(who, args);
        let after = head(&self.w);
        if o.status.success() || before != after {
            return Err(format!(
                "`hitl {}` as {who} must be refused and record nothing: {}, HEAD {before} -> {after}\nstdout: {}\nstderr: {}",
                args.join(" "),
                exit(&o),
                stdout(&o),
                stderr(&o)
            ));
        }
        Ok(format!("refused ({})", exit(&o)))
    }

    /// A command the model decides: recorded (with exit `code`) or refused. Checked
    /// while the history is clean; afterwards only what happened is noted.
    fn modelled(
        &self,
        who: &str,
        args: &[&str],
        records: bool,
        code: i32,
    ) -> Result<(bool, String), String> {
        let before = head(&self.w);
        let o = self.w.hitl(who, args);
        let moved = head(&self.w) != before;
        let said = format!(
            "{}, {}",
            exit(&o),
            if moved {
                "recorded"
            } else {
                "nothing recorded"
            }
        );
        if self.clean() {
            let as_expected = if records {
                moved && o.status.code() == Some(code)
            } else {
                !moved && !o.status.success()
            };
            if !as_expected {
                return Err(format!(
                    "on a clean history `hitl {}` as {who} should have {}: {said}\nstdout: {}\nstderr: {}",
                    args.join(" "),
                    if records { "recorded" } else { "been refused" },
                    stdout(&o),
                    stderr(&o)
                ));
            }
        }
        Ok((moved, said))
    }

    fn apply(&mut self, op: &Op) -> Result<Done, String> {
        let w = &self.w;
        match *op {
            Op::Propose { pick, again } => {
                let i = self.example(pick, again);
                let ex = &EXAMPLES[i];
                let records = self.reqs[i] == Req::New;
                let code = i32::from(ex.blocked);
                let (moved, said) = self.modelled(AGENT, &["propose", ex.id], records, code)?;
                if moved {
                    self.reqs[i] = if ex.blocked {
                        Req::Blocked
                    } else {
                        Req::Pending
                    };
                }
                Ok(Done::Legit(said))
            }
            Op::Decide { pick, reject } => {
                let req = self.example(pick, true);
                let ex = &EXAMPLES[req];
                let args: &[&str] = if reject {
                    &["reject", ex.id, "--reason-code", "insufficient-evidence"]
                } else {
                    &["approve", ex.id]
                };
                let records = self.reqs[req] == Req::Pending;
                let (moved, said) = self.modelled(ex.approver, args, records, 0)?;
                if moved {
                    self.reqs[req] = Req::Decided;
                }
                Ok(Done::Legit(said))
            }
            Op::Refused { pick, who, reject } => {
                let ex = &EXAMPLES[self.example(pick, true)];
                let who = match who {
                    Refusal::Requester => MARIA,
                    Refusal::Agent => AGENT,
                    Refusal::Outsider => ex.outsider,
                    Refusal::Stranger => MALLORY,
                };
                let args: &[&str] = if reject {
                    &["reject", ex.id, "--reason-code", "insufficient-evidence"]
                } else {
                    &["approve", ex.id]
                };
                self.refused(who, args).map(Done::Legit)
            }
            Op::AdminMatrixComment => {
                self.counter += 1;
                let p = w.ws().join("approval-matrix.yaml");
                let mut text = std::fs::read_to_string(&p).unwrap();
                writeln!(text, "# reviewed ({})", self.counter).unwrap();
                std::fs::write(&p, text).unwrap();
                w.commit_all(Some(ALEX), "matrix: a comment");
                Ok(Done::Legit("alex signed a comment in the matrix".into()))
            }
            Op::PlainCommit => {
                self.counter += 1;
                std::fs::write(w.ws().join("NOTES.md"), format!("note {}\n", self.counter))
                    .unwrap();
                w.commit_all(None, "notes");
                Ok(Done::Legit("unsigned commit of NOTES.md".into()))
            }
            Op::EditEvent {
                pick,
                flip_decision,
                relink,
                by,
            } => {
                let all = events(w);
                if all.is_empty() {
                    return Ok(Done::Skipped("no events"));
                }
                let at = usize::from(pick) % all.len();
                let (seq, p) = &all[at];
                let text = std::fs::read_to_string(p).unwrap();
                let edited = mutate(&text, pick / 7, flip_decision);
                assert_ne!(text, edited);
                std::fs::write(p, &edited).unwrap();
                let mut changed = vec![p.clone()];
                if relink {
                    for pair in all[at..].windows(2) {
                        let prev = hitl_lib::audit::sha256_hex(&std::fs::read(&pair[0].1).unwrap());
                        let next = std::fs::read_to_string(&pair[1].1).unwrap();
                        let old = json(&pair[1].1)["prev"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        let new = next.replacen(
                            &format!("\"prev\": \"{old}\""),
                            &format!("\"prev\": \"{prev}\""),
                            1,
                        );
                        if new != next {
                            std::fs::write(&pair[1].1, new).unwrap();
                            changed.push(pair[1].1.clone());
                        }
                    }
                }
                // The insider re-signs the decisions they changed.
                if let Some(who) = by.principal() {
                    for c in &changed {
                        if sig_of(c).exists() {
                            sign_detached(w, who, c);
                        }
                    }
                }
                commit_all(w, by, "fix an event");
                Ok(Done::Hostile(format!(
                    "edited event {seq} ({} files changed)",
                    changed.len()
                )))
            }
            Op::DeleteEvent {
                pick,
                tidy_index,
                by,
            } => {
                let all = events(w);
                if all.is_empty() {
                    return Ok(Done::Skipped("no events"));
                }
                let (seq, p) = &all[usize::from(pick) % all.len()];
                let request = json(p)["request"].as_str().unwrap_or_default().to_owned();
                std::fs::remove_file(p).unwrap();
                let _ = std::fs::remove_file(sig_of(p));
                if tidy_index {
                    unindex(w, &request, *seq);
                }
                commit_all(w, by, "drop an event");
                Ok(Done::Hostile(format!("deleted event {seq}")))
            }
            Op::SymlinkRoundTrip { erase_last, by } => {
                let all = events(w);
                if all.is_empty() {
                    return Ok(Done::Skipped("no audit"));
                }
                let audit = w.ws().join("audit");
                let saved = w.dir.path().join("audit-saved");
                std::fs::rename(&audit, &saved).unwrap();
                std::os::unix::fs::symlink("../elsewhere", &audit).unwrap();
                commit_all(w, by, "tidy");
                std::fs::remove_file(&audit).unwrap();
                std::fs::rename(&saved, &audit).unwrap();
                let mut what = "audit turned into a symlink and back".to_owned();
                if erase_last {
                    let (seq, p) = all.last().unwrap();
                    let request = json(p)["request"].as_str().unwrap_or_default().to_owned();
                    std::fs::remove_file(p).unwrap();
                    let _ = std::fs::remove_file(sig_of(p));
                    unindex(w, &request, *seq);
                    write!(what, ", event {seq} erased").unwrap();
                }
                commit_all(w, by, "restore");
                Ok(Done::Hostile(what))
            }
            Op::Submodule { at_next_event, by } => {
                let path = if at_next_event {
                    let next = events(w).last().map_or(1, |(s, _)| s + 1);
                    format!("audit/events/{:09}/{next:012}.json", next / 1000)
                } else {
                    "audit/x".to_owned()
                };
                let audit_is_folder =
                    std::fs::symlink_metadata(w.ws().join("audit")).map_or(true, |m| m.is_dir());
                if !audit_is_folder || w.ws().join(&path).symlink_metadata().is_ok() {
                    return Ok(Done::Skipped("audit is no folder, or the path is taken"));
                }
                let target = head(w);
                w.git(&[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("160000,{target},{path}"),
                ]);
                // An empty folder, as git leaves an unpopulated submodule: the working
                // tree agrees with the index.
                std::fs::create_dir_all(w.ws().join(&path)).unwrap();
                git_as(w, by, &["commit", "-q"], &["-m", "vendor"]);
                Ok(Done::Hostile(format!("submodule entry at {path}")))
            }
            Op::MergeHidingEdit { pick, by } => {
                let all = events(w);
                if all.is_empty() {
                    return Ok(Done::Skipped("no events"));
                }
                let (seq, p) = &all[usize::from(pick) % all.len()];
                let text = std::fs::read_to_string(p).unwrap();
                let edited = blob(w, mutate(&text, pick / 7, true).as_bytes());
                let base = head(w);
                let tree = tree_with(w, Some(&base), &[("100644", &edited, &rel(w, p))]);
                let side = commit_tree(w, &tree, &[&base], by, "edit on a branch");
                git_as(
                    w,
                    by,
                    &["merge", "-q", "-s", "ours", "--no-edit"],
                    &[side.as_str()],
                );
                Ok(Done::Hostile(format!(
                    "merge -s ours of a branch that edits event {seq}"
                )))
            }
            Op::MergeDroppingTip { by } => {
                let parent = sh(&w.ws(), "git", &["rev-parse", "-q", "--verify", "HEAD^1"]);
                if !parent.status.success() {
                    return Ok(Done::Skipped("HEAD has no parent"));
                }
                let parent = String::from_utf8_lossy(&parent.stdout).trim().to_owned();
                let same = sh(
                    &w.ws(),
                    "git",
                    &["diff", "--quiet", &parent, "HEAD", "--", "audit"],
                );
                if same.status.success() {
                    return Ok(Done::Skipped("HEAD's commit added nothing to the audit"));
                }
                let tip = head(w);
                let tree = rev(w, &format!("{parent}^{{tree}}"));
                let merge = commit_tree(w, &tree, &[&parent, &tip], by, "merge");
                w.git(&["reset", "-q", "--hard", &merge]);
                Ok(Done::Hostile(
                    "merge with the tree of HEAD^1 over the last audit commit".into(),
                ))
            }
            Op::OrphanRoot { root_by, merge_by } => {
                let mut signers = std::fs::read_to_string(w.ws().join("allowed_signers")).unwrap();
                let public =
                    std::fs::read_to_string(w.key(MALLORY).with_extension("com.pub")).unwrap();
                write!(
                    signers,
                    "{MALLORY} namespaces=\"git,hitl,hitl-approval\" {public}"
                )
                .unwrap();
                let b = blob(w, signers.as_bytes());
                let tree = tree_with(w, None, &[("100644", &b, "allowed_signers")]);
                let orphan = commit_tree(w, &tree, &[], root_by, "another root");
                git_as(
                    w,
                    merge_by,
                    &[
                        "merge",
                        "-q",
                        "-s",
                        "ours",
                        "--allow-unrelated-histories",
                        "--no-edit",
                    ],
                    &[orphan.as_str()],
                );
                Ok(Done::Hostile(
                    "an orphan root trusting mallory merged in".into(),
                ))
            }
            Op::GovernedEdit { what, by } => {
                let public = |who: &str| {
                    std::fs::read_to_string(w.key(who).with_extension("com.pub")).unwrap()
                };
                let (file, from, to) = match what {
                    Governed::Matrix => (
                        "approval-matrix.yaml",
                        "  support-lead:\n    members: [lea@example.com]\n",
                        "  support-lead:\n    members: [lea@example.com, ravi@example.com]\n"
                            .to_owned(),
                    ),
                    Governed::AllowedSigners => (
                        "allowed_signers",
                        "",
                        format!(
                            "{MALLORY} namespaces=\"git,hitl,hitl-approval\" {}",
                            public(MALLORY)
                        ),
                    ),
                    Governed::RevokedSigners => ("revoked_signers", "", public(LEA)),
                    Governed::Policies => (
                        "policies/data/rbac.json",
                        "\"maria@example.com\": [",
                        "\"ravi@example.com\": [\"payments\"],\n    \"maria@example.com\": ["
                            .to_owned(),
                    ),
                    Governed::HitlToml => (
                        "hitl.toml",
                        "",
                        "[limits]\nmax_request_bytes = 4096\n".to_owned(),
                    ),
                };
                let p = w.ws().join(file);
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let edited = if from.is_empty() {
                    if text.contains(&to) {
                        return Ok(Done::Skipped("done already"));
                    }
                    format!("{text}{to}")
                } else {
                    if !text.contains(from) || text.contains(&to) {
                        return Ok(Done::Skipped("done already"));
                    }
                    text.replacen(from, &to, 1)
                };
                std::fs::write(&p, edited).unwrap();
                commit_all(w, by, "tune the configuration");
                let mut said = format!("{file} changed");
                // The point of joining support-lead: ravi approves one of lea's pending
                // requests. It must be refused.
                let lea_pending = (0..EXAMPLES.len())
                    .find(|&i| self.reqs[i] == Req::Pending && EXAMPLES[i].approver == LEA);
                if let (Governed::Matrix, Some(i)) = (what, lea_pending) {
                    let r = self.refused(RAVI, &["approve", EXAMPLES[i].id])?;
                    write!(said, "; ravi approving {}: {r}", EXAMPLES[i].id).unwrap();
                }
                Ok(Done::Hostile(said))
            }
            Op::ForgedDecision { pick, who, reject } => {
                // Requests of the examples (an edit may have renamed one in its events).
                let requests: Vec<_> = recorded_requests(w)
                    .into_iter()
                    .filter(|(r, _, _)| EXAMPLES.iter().any(|e| e.id == r))
                    .collect();
                if requests.is_empty() {
                    return Ok(Done::Skipped("no request recorded"));
                }
                let (request, state, evs) = &requests[usize::from(pick) % requests.len()];
                let ex = EXAMPLES.iter().find(|e| e.id == request).unwrap();
                let forger = match who {
                    Forger::Outsider => ex.outsider,
                    Forger::Requester => MARIA,
                    Forger::Agent => AGENT,
                    Forger::Stranger => MALLORY,
                    Forger::ApproverOnClosed if *state != Req::Pending => ex.approver,
                    Forger::ApproverOnClosed => ex.outsider,
                };
                let of = |kind: &str| evs.iter().find(|e| e["type"] == kind);
                let asked = of("approval_requested");
                let role = asked
                    .and_then(|e| e["eligible"][0]["role"].as_str())
                    .unwrap_or("support-lead");
                let tier = asked
                    .or_else(|| of("classified"))
                    .map_or(3, |e| e["tier"].as_u64().unwrap_or(3));
                let pack = asked
                    .or_else(|| of("evidence_assembled"))
                    .and_then(|e| e["evidence_pack"].as_str())
                    .unwrap_or_default();
                let all = events(w);
                let (last_seq, last) = all.last().unwrap();
                let last_json = json(last);
                let seq = last_seq + 1;
                let prev = hitl_lib::audit::sha256_hex(&std::fs::read(last).unwrap());
                let matrix = hitl_lib::audit::sha256_hex(
                    &std::fs::read(w.ws().join("approval-matrix.yaml")).unwrap(),
                );
                let policies = last_json["config"]["policies"].as_str().unwrap_or("none");
                let (verdict, code) = if reject {
                    ("rejected", "\"insufficient-evidence\"")
                } else {
                    ("approved", "null")
                };
                let key = w.fingerprint(forger);
                let body = format!(
                    r#"{{
  "seq": {seq},
  "prev": "{prev}",
  "type": "decision",
  "request": "{request}",
  "at": "2026-11-27T16:00:00Z",
  "actor": {{
    "principal": "{forger}",
    "key": "{key}"
  }},
  "config": {{
    "matrix": "sha256:{matrix}",
    "policies": "{policies}",
    "tool": "hitl 0.1.0"
  }},
  "approver": "{forger}",
  "role": "{role}",
  "decision": "{verdict}",
  "reason_code": {code},
  "comment": null,
  "changes_requested": null,
  "tier": {tier},
  "evidence_pack": "{pack}"
}}
"#
                );
                let file = w
                    .ws()
                    .join(format!("audit/events/{:09}/{seq:012}.json", seq / 1000));
                if file.symlink_metadata().is_ok() {
                    return Ok(Done::Skipped("the next event's path is taken"));
                }
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, body).unwrap();
                sign_detached(w, forger, &file);
                let index = index_file(w, request);
                std::fs::create_dir_all(index.parent().unwrap()).unwrap();
                let mut listed = std::fs::read_to_string(&index).unwrap_or_default();
                writeln!(listed, "{seq}").unwrap();
                std::fs::write(&index, listed).unwrap();
                w.commit_all(Some(forger), "decision");
                Ok(Done::Hostile(format!(
                    "{verdict} {request} ({state:?}) by hand as {forger}, event {seq}"
                )))
            }
        }
    }
}

/// `hitl verify --format json`: exit code, report (or what it printed instead).
fn verify(w: &AuditWs) -> (Option<i32>, Result<serde_json::Value, String>) {
    let o = w.read(&["verify", "--format", "json"]);
    let report = serde_json::from_slice(&o.stdout)
        .map_err(|e| format!("{e}: stdout {:?}, stderr {:?}", stdout(&o), stderr(&o)));
    (o.status.code(), report)
}

fn problem_codes(report: &serde_json::Value) -> Vec<String> {
    let mut codes: Vec<String> = report["problems"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["code"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default();
    codes.sort();
    codes.dedup();
    codes
}

/// Runs one sequence; `Err` names what broke, with the story so far and `verify`'s
/// report.
fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut case = Case::new();
    let mut story = String::new();
    for (i, op) in ops.iter().enumerate() {
        let done = match case.apply(op) {
            Ok(done) => done,
            Err(why) => {
                return Err(TestCaseError::fail(format!("{story}{i}. {op:?}: {why}")));
            }
        };
        let said = match done {
            Done::Legit(s) => s,
            Done::Hostile(s) => {
                case.tampered.push(i);
                format!("HOSTILE: {s}")
            }
            Done::Skipped(s) => format!("skipped: {s}"),
        };
        let (code, report) = verify(&case.w);
        let codes = report.as_ref().map(problem_codes).unwrap_or_default();
        writeln!(story, "{i}. {op:?}: {said}; verify: {code:?} {codes:?}").unwrap();
        if std::env::var_os("HITL_PROPERTY_STORIES").is_some() {
            eprintln!("{i}. {op:?}: {said}; verify: {code:?} {codes:?}");
        }
        let want = if case.clean() { 0 } else { 1 };
        let consistent = match &report {
            Ok(_) => codes.is_empty() == (want == 0),
            Err(_) => false,
        };
        if code != Some(want) || !consistent {
            let report = match report {
                Ok(r) => serde_json::to_string_pretty(&r).unwrap(),
                Err(e) => e,
            };
            return Err(TestCaseError::fail(format!(
                "verify must exit {want} ({}):\n{story}report: {report}",
                if case.clean() {
                    "no hostile operation so far".to_owned()
                } else {
                    format!("hostile since operation {}", case.tampered[0])
                }
            )));
        }
    }
    Ok(())
}

fn config() -> Config {
    // `Config::default()` reads the PROPTEST_* variables; the seed and the number of
    // cases are ours unless they are set.
    let base = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            CASES
        },
        rng_seed: match base.rng_seed {
            RngSeed::Random => RngSeed::Fixed(SEED),
            seed => seed,
        },
        // No proptest-regressions folder in the repository: the seed reproduces.
        failure_persistence: None,
        // Each shrink step is a whole case (a second or so).
        max_shrink_iters: 300,
        ..base
    }
}

#[test]
fn no_hostile_operation_makes_verify_pass_and_no_legit_one_makes_it_fail() {
    let mut runner = TestRunner::new(config());
    let result = runner.run(&prop::collection::vec(op(), 1..8), |ops| run_case(&ops));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!("minimal failing sequence: {ops:#?}\n{why}")
        }
        Err(TestError::Abort(why)) => panic!("aborted: {why}"),
    }
}
