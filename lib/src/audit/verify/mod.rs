//! `hitl verify`: checks the chain in HEAD's tree and the git history that built it.
//!
//! Two passes, each streaming (memory bounded by one shard of events, the request index
//! map and the signature batch):
//!
//! 1. the chain: every event file in order, its name, `seq`, `prev` link, blobs and, for
//!    a decision, its detached signature (namespace `hitl`, signer trusted, not revoked,
//!    valid at the event's time, the signer is the event's actor); the request indexes;
//! 2. the history: every commit that touched `audit/`, `allowed_signers` or
//!    `revoked_signers` must carry a good SSH commit signature (namespace `git`) from a key
//!    trusted *before* that commit, add audit files only (never change or delete one),
//!    and be signed by the actor of every event it adds. Every commit reachable through
//!    any parent is compared with each of its parents, and every kind of entry counts
//!    (a folder retyped into a symlink or a submodule entry is a change at its path): a
//!    merge that changes the audit or the configuration is a problem, as is a link at a
//!    governed path. Then the root of trust: one, and the one an auditor pinned.
//!
//! Signatures are checked in parallel on all cores.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use git2::{Oid, Sort, Tree};
use serde::{Deserialize, Serialize};

use super::store::{AuditRepo, parse_event, parse_index};
use super::{
    AUDIT_DIR, AuditError, EVENTS_PER_FOLDER, Event, GENESIS, blob_path, sha256_hex, sig_path,
};
use crate::signing::{self, AllowedSigners, GIT_NAMESPACE, NAMESPACE, RevokedSigners};

/// The trust files, relative to the workspace.
pub const ALLOWED_SIGNERS: &str = "allowed_signers";
pub const REVOKED_SIGNERS: &str = "revoked_signers";

/// One problem, located as precisely as it can be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// A stable code (`chain-link`, `seq-gap`, `blob-edited`, `signature-untrusted`...).
    pub code: &'static str,
    pub reason: String,
}

/// The head a checkpoint pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub seq: u64,
    /// sha256 hex of the head event file.
    pub event: String,
    pub commit: String,
}

/// The commit that brought the trust configuration without a parent's trust: the one
/// commit whose trust comes from being pinned (by a checkpoint, or by the auditor's
/// own record of it), not from a signature. It may be unsigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRoot {
    pub commit: String,
    /// sha256 hex of `allowed_signers` in that commit.
    pub allowed_signers: String,
}

/// What an auditor pins from outside the repository, for [`verify`] to hold the history
/// to: a checkpoint's head and the root of trust it recorded, and a root of trust named
/// by its full commit id (`verify --trust-root COMMIT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    pub checkpoint: Option<Head>,
    /// The root of trust a checkpoint recorded (checkpoints from v2 on).
    pub checkpoint_root: Option<TrustRoot>,
    /// A full commit id (40 or 64 hex digits).
    pub trust_root: Option<String>,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub events: u64,
    pub signatures: u64,
    pub commits: u64,
    pub head: Option<Head>,
    /// The root of trust (the first, and the only valid, one in the history).
    pub trust_root: Option<TrustRoot>,
    pub problems: Vec<Problem>,
}

impl Report {
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(code: &'static str, seq: Option<u64>, file: Option<&str>, reason: String) -> Problem {
    Problem {
        seq,
        file: file.map(str::to_owned),
        commit: None,
        code,
        reason,
    }
}

/// The trust in force in one tree.
struct Trust {
    allowed: AllowedSigners,
    revoked: RevokedSigners,
}

impl Trust {
    fn load(repo: &AuditRepo, tree: &Tree<'_>) -> Result<Self, String> {
        let read = |rel: &str| -> Result<String, String> {
            let bytes = repo.read(tree, rel).map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
        };
        let allowed = AllowedSigners::parse(
            std::path::Path::new(ALLOWED_SIGNERS),
            &read(ALLOWED_SIGNERS)?,
        )
        .map_err(|e| e.to_string())?;
        let revoked = RevokedSigners::parse(
            std::path::Path::new(REVOKED_SIGNERS),
            &read(REVOKED_SIGNERS)?,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self { allowed, revoked })
    }

    /// Checks an armored signature over `msg`; returns the signer's fingerprint.
    fn check(
        &self,
        armored: &str,
        namespace: &str,
        msg: &[u8],
        principal: &str,
        at: DateTime<Utc>,
    ) -> Result<String, (&'static str, String)> {
        let key = signing::verify(armored, namespace, msg).map_err(|e| {
            let code = match e {
                signing::SigningError::WrongNamespace { .. } => "signature-namespace",
                _ => "signature-bad",
            };
            (code, e.to_string())
        })?;
        signing::trusted_principal(
            &self.allowed,
            &self.revoked,
            &key,
            Some(principal),
            namespace,
            at,
        )
        .map_err(|u| (u.code, u.message))?;
        Ok(signing::fingerprint(&key))
    }
}

/// What [`verify`] is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The chain: every event file, its link, blobs and signature (counted in events).
    Events,
    /// The git history: every commit (counted in commits).
    History,
}

/// Verifies the audit of the workspace in `repo`, held to what an auditor `pins` (a
/// checkpoint, a root of trust). `progress(phase, done, total)` is called now and then,
/// from any thread.
///
/// # Errors
/// Only when the repository itself cannot be read; every problem in the audit is a
/// [`Problem`] in the report.
pub fn verify(
    repo: &AuditRepo,
    pins: &Pins,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<Report, AuditError> {
    let mut report = Report::default();
    let checkpoint = pins.checkpoint.as_ref();
    let Some(head) = repo.head_for_reading()? else {
        // No commit at all: whatever was pinned is gone.
        judge_roots(&mut report, Vec::new(), pins);
        report.problems.extend(checkpoint.map(empty_audit));
        return Ok(report);
    };
    // Every object is read once or twice, in order: libgit2's object cache (up to 256 MB)
    // would only hold memory. Without it, memory stays bounded as the audit grows.
    git2::opts::enable_caching(false);
    let tree = head.tree()?;
    let trust = match Trust::load(repo, &tree) {
        Ok(t) => t,
        Err(e) => {
            report
                .problems
                .push(problem("trust-file", None, Some(ALLOWED_SIGNERS), e));
            return Ok(report);
        }
    };
    if let Ok(e) = tree.get_path(std::path::Path::new(&repo.git_path(AUDIT_DIR)))
        && e.filemode() != TREE_MODE
    {
        report.problems.push(problem(
            "unexpected-file",
            None,
            Some(AUDIT_DIR),
            "`audit` is not a folder (a submodule, a symlink or a file hides the audit)".to_owned(),
        ));
    }
    let (actors, recorded) = chain(repo, &tree, &trust, &mut report, progress)?;
    let (roots, line) = history(repo, head.id(), &actors, &mut report, progress)?;
    // The workflow engine, on every recorded event, under the configuration in force
    // for it (the tree its commit extended, as the history walk found it).
    for (seq, code, reason) in crate::workflow::recorded::judge(repo, &tree, recorded, line)? {
        report.problems.push(problem(
            code,
            Some(seq),
            Some(&super::event_path(seq)),
            reason,
        ));
    }
    judge_roots(&mut report, roots, pins);
    if let (Some(h), Some(cp)) = (report.head.clone(), checkpoint) {
        check_checkpoint(repo, &tree, &h, cp, &mut report)?;
    } else if let (None, Some(cp)) = (&report.head, checkpoint) {
        report.problems.push(empty_audit(cp));
    }
    report.head = report.head.take().map(|mut h| {
        h.commit = head.id().to_string();
        h
    });
    Ok(report)
}

/// A decision event whose signature still has to be checked.
struct SigJob {
    seq: u64,
    file: String,
    bytes: Vec<u8>,
    sig: Option<Vec<u8>>,
    principal: String,
    key: String,
    at: DateTime<Utc>,
}

/// Events read, hashed and parsed at a time by [`load_events`].
const WINDOW: usize = 1024;

/// An event file's bytes, their sha256, and the parsed event.
type Loaded = (Vec<u8>, String, Result<Event, AuditError>);

/// Reads the event files `files` (`None`: not a blob), hashes and parses them, split over
/// the cores, each thread with its own repository handle.
fn load_events(
    repo: &AuditRepo,
    files: &[(String, u64, Oid)],
) -> Result<Vec<Option<Loaded>>, AuditError> {
    let load = |r: &AuditRepo, part: &[(String, u64, Oid)]| -> Vec<Option<Loaded>> {
        part.iter()
            .map(|(path, _, oid)| {
                let blob = r.repo.find_blob(*oid).ok()?;
                let bytes = blob.content().to_vec();
                let hash = sha256_hex(&bytes);
                let event = parse_event(path, &bytes);
                Some((bytes, hash, event))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 8);
    if threads == 1 || files.len() < 256 {
        return Ok(load(repo, files));
    }
    let size = files.len().div_ceil(threads);
    let parts = repo.in_parts(files, size, "reading events", |r, part| Ok(load(r, part)))?;
    Ok(parts.into_iter().flatten().collect())
}

/// The actor of each event at HEAD, by blob id, so the history walk need not read and
/// parse every event again: principals and keys are interned (a few distinct values).
#[derive(Default)]
struct Actors {
    by_blob: std::collections::HashMap<Oid, (u32, u32)>,
    names: Vec<String>,
    ids: std::collections::HashMap<String, u32>,
}

impl Actors {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), i);
        i
    }

    fn insert(&mut self, blob: Oid, principal: &str, key: &str) {
        let ids = (self.intern(principal), self.intern(key));
        self.by_blob.insert(blob, ids);
    }

    fn get(&self, blob: Oid) -> Option<(&str, &str)> {
        let &(p, k) = self.by_blob.get(&blob)?;
        Some((self.names.get(p as usize)?, self.names.get(k as usize)?))
    }
}

fn chain(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    trust: &Trust,
    report: &mut Report,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<(Actors, crate::workflow::recorded::Recorded), AuditError> {
    let mut actors = Actors::default();
    // What the workflow engine judges once the history says which configuration each
    // event was recorded under.
    let mut recorded = crate::workflow::recorded::Recorded::default();
    let files = repo.event_files(tree)?;
    let sigs = repo.sig_files(tree)?;
    let blobs = check_blobs(repo, tree, report)?;
    let total = files.len() as u64;
    let mut expected = 1_u64;
    let mut prev = GENESIS.to_owned();
    let mut requests: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut jobs: Vec<SigJob> = Vec::new();
    let mut last: Option<Head> = None;
    let mut last_at: Option<DateTime<Utc>> = None;
    // Event files are read, hashed and parsed in windows, on all cores; the checks that
    // need the order (links, seqs, times, decisions) then run over the window in order.
    let mut window: Vec<Option<Loaded>> = Vec::new();
    for (i, (path, name_seq, oid)) in files.iter().enumerate() {
        if i % WINDOW == 0 {
            progress(Phase::Events, i as u64, total);
            let end = (i + WINDOW).min(files.len());
            window = load_events(repo, &files[i..end])?;
        }
        if *name_seq == 0 {
            report.problems.push(problem(
                "unexpected-file",
                None,
                Some(path),
                "not an event file (`<12 digits>.json`)".to_owned(),
            ));
            continue;
        }
        let seq = *name_seq;
        let shard = format!("{:09}", seq / EVENTS_PER_FOLDER);
        if !path.contains(&format!("/events/{shard}/")) {
            report.problems.push(problem(
                "misplaced",
                Some(seq),
                Some(path),
                format!("event {seq} belongs in folder `{shard}`"),
            ));
        }
        if seq != expected {
            if seq > expected {
                report.problems.push(problem(
                    "seq-gap",
                    Some(expected),
                    Some(path),
                    format!("events {expected} to {} are missing", seq - 1),
                ));
            }
            expected = seq;
        }
        expected += 1;
        let Some((bytes, hash, parsed)) = window.get_mut(i % WINDOW).and_then(Option::take) else {
            report.problems.push(problem(
                "unexpected-file",
                Some(seq),
                Some(path),
                "an event name on something that is not a file".to_owned(),
            ));
            continue;
        };
        let event: Event = match parsed {
            Ok(e) => e,
            Err(e) => {
                report.problems.push(problem(
                    "event-invalid",
                    Some(seq),
                    Some(path),
                    e.to_string(),
                ));
                prev = hash;
                continue;
            }
        };
        report.events += 1;
        actors.insert(*oid, &event.actor.principal, &event.actor.key);
        if event.seq != seq {
            report.problems.push(problem(
                "seq-mismatch",
                Some(seq),
                Some(path),
                format!("the file holds event {} (duplicated or moved)", event.seq),
            ));
        }
        if event.prev != prev {
            report.problems.push(problem(
                "chain-link",
                Some(seq),
                Some(path),
                "`prev` is not the sha256 of the previous event file: an event before it was edited, deleted, inserted or reordered".to_owned(),
            ));
        }
        prev = hash.clone();
        requests.entry(event.request.clone()).or_default().push(seq);
        let Some(at) = DateTime::parse_from_rfc3339(&event.at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
        else {
            report.problems.push(problem(
                "event-invalid",
                Some(seq),
                Some(path),
                format!("`at` is not an RFC 3339 time: {:?}", event.at),
            ));
            continue;
        };
        if last_at.is_some_and(|before| at < before) {
            report.problems.push(problem(
                "time-backwards",
                Some(seq),
                Some(path),
                format!("`at` {} is before the previous event's", event.at),
            ));
        }
        last_at = Some(at);
        recorded.keep(&event);
        for field in ["proposal", "evidence_pack"] {
            if let Some(d) = event
                .field_str(field)
                .and_then(|d| d.strip_prefix("sha256:"))
                && !blobs.contains(d)
            {
                // Present but edited was reported by `check_blobs`, once.
                let present = repo.blob_exists(tree, d)?;
                report.problems.push(problem(
                    if present {
                        "blob-edited"
                    } else {
                        "blob-missing"
                    },
                    Some(seq),
                    Some(&blob_path(d)),
                    format!(
                        "`{field}` of {path} refers to a blob that is {}",
                        if present { "edited" } else { "missing" }
                    ),
                ));
            }
        }
        if event.kind != crate::workflow::types::DECISION && sigs.contains_key(&seq) {
            report.problems.push(problem(
                "unexpected-file",
                Some(seq),
                Some(&sig_path(seq)),
                format!(
                    "a signature beside a `{}` event; only decisions are signed",
                    event.kind
                ),
            ));
        }
        if event.kind == crate::workflow::types::DECISION {
            jobs.push(SigJob {
                seq,
                file: sig_path(seq),
                bytes,
                sig: match sigs.get(&seq) {
                    Some(oid) => Some(repo.repo.find_blob(*oid)?.content().to_vec()),
                    None => None,
                },
                principal: event.actor.principal.clone(),
                key: event.actor.key.clone(),
                at,
            });
            if jobs.len() >= 4096 {
                check_signatures(std::mem::take(&mut jobs), trust, report);
            }
        }
        last = Some(Head {
            seq,
            event: hash,
            commit: String::new(),
        });
    }
    check_signatures(jobs, trust, report);
    // Signatures whose event does not exist.
    let seqs: std::collections::HashSet<u64> = files.iter().map(|f| f.1).collect();
    let mut orphans: Vec<u64> = sigs.keys().filter(|s| !seqs.contains(s)).copied().collect();
    orphans.sort_unstable();
    for seq in orphans {
        report.problems.push(problem(
            "unexpected-file",
            Some(seq),
            Some(&sig_path(seq)),
            format!("a signature for event {seq}, which does not exist"),
        ));
    }
    // Anything in `audit/` besides its three folders.
    if let Some(audit) = repo.subtree(tree, AUDIT_DIR)? {
        for e in audit.iter() {
            let name = e.name().unwrap_or_default();
            if !(matches!(name, "events" | "blobs" | "requests")
                && e.kind() == Some(git2::ObjectType::Tree))
            {
                report.problems.push(problem(
                    "unexpected-file",
                    None,
                    Some(&format!("{AUDIT_DIR}/{name}")),
                    "not part of the audit layout (`events/`, `blobs/`, `requests/`)".to_owned(),
                ));
            }
        }
    }
    check_indexes(repo, tree, &requests, report)?;
    progress(Phase::Events, total, total);
    report.head = last;
    Ok((actors, recorded))
}

/// Reads every blob once: each must hash to its name and sit in its folder. Returns
/// the names of the good ones.
fn check_blobs(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    report: &mut Report,
) -> Result<std::collections::HashSet<String>, AuditError> {
    let mut good = std::collections::HashSet::new();
    for (name, (path, oid)) in repo.blob_files(tree)? {
        let Ok(blob) = repo.repo.find_blob(oid) else {
            report.problems.push(problem(
                "blob-edited",
                None,
                Some(&path),
                "not a file".to_owned(),
            ));
            continue;
        };
        if sha256_hex(blob.content()) != name || blob_path(&name) != path {
            report.problems.push(problem(
                "blob-edited",
                None,
                Some(&path),
                "the blob's content does not match its name (its sha256)".to_owned(),
            ));
        } else {
            good.insert(name);
        }
    }
    Ok(good)
}

/// Runs `check` over `items` on all cores and gathers the problems, in order.
fn par_problems<T: Sync>(items: &[T], check: impl Fn(&T) -> Vec<Problem> + Sync) -> Vec<Problem> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = items.len().div_ceil(threads).max(1);
    let check = &check;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().flat_map(check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![problem(
                        "internal",
                        None,
                        None,
                        "a verifier thread failed".to_owned(),
                    )]
                })
            })
            .collect()
    })
}

fn check_signatures(jobs: Vec<SigJob>, trust: &Trust, report: &mut Report) {
    report.signatures += jobs.len() as u64;
    let mut found = par_problems(&jobs, |j| check_one(j, trust).into_iter().collect());
    report.problems.append(&mut found);
}

fn check_one(j: &SigJob, trust: &Trust) -> Option<Problem> {
    let Some(sig) = &j.sig else {
        return Some(problem(
            "signature-missing",
            Some(j.seq),
            Some(&j.file),
            "a decision event has no detached signature".to_owned(),
        ));
    };
    let armored = String::from_utf8_lossy(sig);
    match trust.check(&armored, NAMESPACE, &j.bytes, &j.principal, j.at) {
        Ok(fp) if fp != j.key => Some(problem(
            "signer-not-actor",
            Some(j.seq),
            Some(&j.file),
            format!("signed by {fp}, but the event's actor key is {}", j.key),
        )),
        Ok(_) => None,
        Err((code, reason)) => Some(problem(code, Some(j.seq), Some(&j.file), reason)),
    }
}

fn check_indexes(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    requests: &BTreeMap<String, Vec<u64>>,
    report: &mut Report,
) -> Result<(), AuditError> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dir) = repo.subtree(tree, &format!("{AUDIT_DIR}/requests"))? {
        for shard in dir.iter() {
            let shard_name = shard.name().unwrap_or_default().to_owned();
            let Ok(files) = repo.repo.find_tree(shard.id()) else {
                report.problems.push(problem(
                    "index",
                    None,
                    Some(&format!("{AUDIT_DIR}/requests/{shard_name}")),
                    "not a folder of request indexes".to_owned(),
                ));
                continue;
            };
            for e in files.iter() {
                let name = e.name().unwrap_or_default().to_owned();
                let path = format!("{AUDIT_DIR}/requests/{shard_name}/{name}");
                if super::request_index_path(&name) != path {
                    report.problems.push(problem(
                        "index",
                        None,
                        Some(&path),
                        "a request index in the wrong folder".to_owned(),
                    ));
                }
                let listed = parse_index(&path, repo.repo.find_blob(e.id())?.content());
                let expected = requests.get(&name);
                match (listed, expected) {
                    (Ok(l), Some(x)) if &l == x => {}
                    (Ok(l), x) => report.problems.push(problem(
                        "index",
                        None,
                        Some(&path),
                        format!(
                            "lists events {l:?}, the log has {:?}",
                            x.cloned().unwrap_or_default()
                        ),
                    )),
                    (Err(e), _) => {
                        report
                            .problems
                            .push(problem("index", None, Some(&path), e.to_string()));
                    }
                }
                seen.insert(name);
            }
        }
    }
    for request in requests.keys().filter(|r| !seen.contains(*r)) {
        report.problems.push(problem(
            "index",
            None,
            Some(&super::request_index_path(request)),
            "the request's index file is missing".to_owned(),
        ));
    }
    Ok(())
}

/// Git's file mode of a folder.
const TREE_MODE: i32 = 0o040_000;
/// Git's file mode of a plain file: the only kind of file the audit holds.
const FILE_MODE: i32 = 0o100_644;
/// Git's file modes of an executable file, a symlink and a submodule entry (gitlink).
const EXEC_MODE: i32 = 0o100_755;
const LINK_MODE: i32 = 0o120_000;
const GITLINK_MODE: i32 = 0o160_000;

/// The paths the history walk judges, relative to the workspace: the audit and the
/// governed configuration. Whatever changes at or under one of them, of whatever kind,
/// is a [`Change`].
const WATCHED: [&str; 6] = [
    AUDIT_DIR,
    crate::workspace::MATRIX_FILE,
    crate::workspace::POLICIES_DIR,
    crate::workspace::SETTINGS_FILE,
    ALLOWED_SIGNERS,
    REVOKED_SIGNERS,
];

/// Whether `path` is `dir` or a path under it.
fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a change must come in a commit signed by a key trusted before it: the audit
/// and the trust files. (The matrix, the policies and `hitl.toml` are watched for their
/// kind and for merges.)
fn needs_signature(path: &str) -> bool {
    under(path, AUDIT_DIR) || under(path, ALLOWED_SIGNERS) || under(path, REVOKED_SIGNERS)
}

/// What a file mode stands for, in a problem's reason.
fn mode_word(mode: i32) -> &'static str {
    match mode {
        FILE_MODE => "file",
        EXEC_MODE => "executable file",
        TREE_MODE => "folder",
        LINK_MODE => "symlink",
        GITLINK_MODE => "submodule entry",
        _ => "entry of an unknown kind",
    }
}

/// One changed path (workspace-relative) with its (id, file mode) before and after;
/// `None`: absent. A folder is compared through the paths under it, except when it
/// changes kind (turned into a symlink or a submodule entry, or back): that is one
/// change at the folder's own path.
#[derive(Debug)]
struct Change {
    path: String,
    old: Option<(Oid, i32)>,
    new: Option<(Oid, i32)>,
}

impl Change {
    /// Whether this change is a problem, and which: the audit is append-only and holds
    /// plain files only (a request index may grow); the configuration is plain files.
    fn judge(&self) -> Option<(&'static str, String)> {
        let path = &self.path;
        if !under(path, AUDIT_DIR) {
            return match self.new {
                Some((_, m @ (LINK_MODE | GITLINK_MODE))) => Some((
                    "config-link",
                    format!(
                        "`{path}` became a {}: the configuration is read from plain files in the commit, never through a link",
                        mode_word(m)
                    ),
                )),
                _ => None,
            };
        }
        let rewrite = |what: String| Some(("history-rewrite", what));
        match (self.old, self.new) {
            (None, None) | (None, Some((_, FILE_MODE))) => None,
            (None, Some((_, m))) => rewrite(format!(
                "a {} was added to the audit, which holds plain files only",
                mode_word(m)
            )),
            (Some(_), None) => {
                rewrite("an existing audit file was deleted (the audit is append-only)".to_owned())
            }
            (Some((_, a)), Some((_, b))) if a != b => rewrite(format!(
                "retyped from a {} to a {} (the audit is append-only and holds plain files only)",
                mode_word(a),
                mode_word(b)
            )),
            (Some(_), Some((_, b))) if b != FILE_MODE => rewrite(format!(
                "a {} in the audit was changed (the audit holds plain files only)",
                mode_word(b)
            )),
            (Some(_), Some(_)) if under(path, &format!("{AUDIT_DIR}/requests")) => None,
            (Some(_), Some(_)) => {
                rewrite("an existing audit file was modified (the audit is append-only)".to_owned())
            }
        }
    }
}

/// The trees of the last two commits the history walk read. libgit2 does not cache
/// trees over 4 KiB, and the walk reads each audit tree twice (as a commit's new side,
/// then as its child's old side): keeping them halves the reading and inflating.
struct Trees<'r> {
    now: std::collections::HashMap<Oid, Tree<'r>>,
    before: std::collections::HashMap<Oid, Tree<'r>>,
}

impl<'r> Trees<'r> {
    fn new() -> Self {
        Self {
            now: std::collections::HashMap::new(),
            before: std::collections::HashMap::new(),
        }
    }

    fn get(&mut self, repo: &'r AuditRepo, id: Oid) -> Result<Tree<'r>, AuditError> {
        if let Some(t) = self.now.get(&id).or_else(|| self.before.get(&id)) {
            return Ok(t.clone());
        }
        let t = repo.repo.find_tree(id)?;
        self.now.insert(id, t.clone());
        Ok(t)
    }

    /// Called after each commit: what it read becomes "before".
    fn next_commit(&mut self) {
        self.before = std::mem::take(&mut self.now);
    }
}

/// The id of a workspace-relative path in a tree, if present.
fn id_at(repo: &AuditRepo, tree: &Tree<'_>, rel: &str) -> Option<Oid> {
    tree.get_path(std::path::Path::new(&repo.git_path(rel)))
        .ok()
        .map(|e| e.id())
}

/// The changes under `rel` between two trees (by id), descending only into subtrees
/// whose ids differ: an append touches a handful of small trees, so this costs the same
/// at the 100,000th event as at the 100th (no full diff, no pathspec matching).
fn diff_ids<'r>(
    repo: &'r AuditRepo,
    cache: &mut Trees<'r>,
    rel: &str,
    old: Option<(Oid, i32)>,
    new: Option<(Oid, i32)>,
    out: &mut Vec<Change>,
) -> Result<(), AuditError> {
    // (id, file mode): a mode change with the same id (a folder turned into a submodule
    // entry, a file into a symlink) is a change too.
    match (old, new) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some((a, TREE_MODE)), Some((b, TREE_MODE))) => {
            // A merge of the two sorted entry lists, without copying them: an append
            // adds a few entries to trees of up to a few thousand.
            let (ta, tb) = (cache.get(repo, a)?, cache.get(repo, b)?);
            let kind = |e: &git2::TreeEntry<'_>| (e.id(), e.filemode());
            let (mut i, mut j) = (0, 0);
            loop {
                let (x, y) = (ta.get(i), tb.get(j));
                let order = match (&x, &y) {
                    (Some(x), Some(y)) => x.name_bytes().cmp(y.name_bytes()),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => break,
                };
                match order {
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        j += 1;
                        if let (Some(x), Some(y)) = (x, y)
                            && kind(&x) != kind(&y)
                        {
                            let name = format!("{rel}/{}", y.name().unwrap_or_default());
                            diff_ids(repo, cache, &name, Some(kind(&x)), Some(kind(&y)), out)?;
                        }
                    }
                    std::cmp::Ordering::Less => {
                        i += 1;
                        if let Some(x) = x {
                            let name = format!("{rel}/{}", x.name().unwrap_or_default());
                            diff_ids(repo, cache, &name, Some(kind(&x)), None, out)?;
                        }
                    }
                    std::cmp::Ordering::Greater => {
                        j += 1;
                        if let Some(y) = y {
                            let name = format!("{rel}/{}", y.name().unwrap_or_default());
                            diff_ids(repo, cache, &name, None, Some(kind(&y)), out)?;
                        }
                    }
                }
            }
            Ok(())
        }
        (None, Some((b, TREE_MODE))) => {
            for e in cache.get(repo, b)?.iter() {
                let name = e.name().unwrap_or_default();
                diff_ids(
                    repo,
                    cache,
                    &format!("{rel}/{name}"),
                    None,
                    Some((e.id(), e.filemode())),
                    out,
                )?;
            }
            Ok(())
        }
        (Some((a, TREE_MODE)), None) => {
            for e in cache.get(repo, a)?.iter() {
                let name = e.name().unwrap_or_default();
                diff_ids(
                    repo,
                    cache,
                    &format!("{rel}/{name}"),
                    Some((e.id(), e.filemode())),
                    None,
                    out,
                )?;
            }
            Ok(())
        }
        // Anything that is not two folders: a file, a symlink or a submodule entry on
        // either side (a folder against one of those is a change of kind at this path:
        // its contents are not listed, the retyping is the change).
        (old, new) => {
            out.push(Change {
                path: rel.to_owned(),
                old,
                new,
            });
            Ok(())
        }
    }
}

/// What a commit changed at or under the watched paths ([`WATCHED`]) against `parent`
/// (`None`: a commit without parents), whatever the kind of entry on either side.
fn touched_paths<'r>(
    repo: &'r AuditRepo,
    cache: &mut Trees<'r>,
    parent: Option<&Tree<'_>>,
    tree: &Tree<'_>,
) -> Result<Vec<Change>, AuditError> {
    let mut out = Vec::new();
    for rel in WATCHED {
        let at = |t: &Tree<'_>| -> Result<Option<(Oid, i32)>, AuditError> {
            match t.get_path(std::path::Path::new(&repo.git_path(rel))) {
                Ok(e) => Ok(Some((e.id(), e.filemode()))),
                Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        let old = match parent {
            Some(p) => at(p)?,
            None => None,
        };
        diff_ids(repo, cache, rel, old, at(tree)?, &mut out)?;
    }
    Ok(out)
}

/// A commit whose signature still has to be checked, with what it must match.
struct CommitJob {
    commit: String,
    signed: Option<(String, Vec<u8>)>,
    principal: String,
    /// `None`: the commit's time is outside the range hitl can represent
    /// (`commit-time`): its signature cannot be judged at any instant.
    at: Option<DateTime<Utc>>,
    trust: std::sync::Arc<Trust>,
    /// The root of trust that records no event: its trust is pinned, not signed, so it
    /// may be unsigned (a newcomer's first commit after `hitl init`).
    may_be_unsigned: bool,
    /// The actor keys of the events it adds: (path, seq, principal, key).
    events: Vec<(String, u64, String, String)>,
    first_path: Option<String>,
}

/// What one run of the history walk finds: commits that touched the audit, problems,
/// roots of trust.
type Part = (
    u64,
    Vec<Problem>,
    Vec<TrustRoot>,
    Vec<(u64, Option<(Oid, crate::workflow::config::ConfigKey)>)>,
);

/// The fewest commits worth a thread of their own in the history walk.
const MIN_RUN: usize = 32;

/// The git history: every commit reachable from HEAD through any parent, oldest first,
/// each judged against every one of its parents. The commits are split into one
/// contiguous run per core; each run is walked on its own thread with its own
/// repository handle (commits are independent: a commit is judged against its parents'
/// trees only). Returns the roots of trust found, oldest first, for [`judge_roots`].
fn history(
    repo: &AuditRepo,
    head: Oid,
    actors: &Actors,
    report: &mut Report,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<(Vec<TrustRoot>, crate::workflow::recorded::ConfigLine), AuditError> {
    let mut walk = repo.repo.revwalk()?;
    walk.push(head)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    let oids: Vec<Oid> = walk.collect::<Result<_, _>>()?;
    let total = oids.len() as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let step = |n: u64| {
        let now = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        progress(Phase::History, now, total);
    };
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let size = oids.len().div_ceil(threads.clamp(2, 8)).max(MIN_RUN);
    let parts = repo.in_parts(&oids, size, "walking the history", |r, run| {
        history_part(r, run, actors, &step)
    })?;
    let mut roots = Vec::new();
    let mut line = crate::workflow::recorded::ConfigLine::default();
    for part in parts {
        let (commits, mut problems, mut part_roots, adds) = part;
        report.commits += commits;
        report.problems.append(&mut problems);
        roots.append(&mut part_roots);
        for (first_seq, parent_tree) in adds {
            line.add(first_seq, parent_tree);
        }
    }
    progress(Phase::History, total, total);
    Ok((roots, line))
}

/// Names the root of trust among the `roots` the walk found (oldest first): the one
/// pinned from outside when it is among them, else the first. Every other root (an
/// orphan history merged in, `allowed_signers` deleted and brought back) is a second
/// source of trust nobody signed for: `trust-root`. A pin that is not the history's root
/// of trust is `trust-root-mismatch`.
fn judge_roots(report: &mut Report, mut roots: Vec<TrustRoot>, pins: &Pins) {
    // (the pinned commit, who pins it, the allowed_signers digest recorded with it)
    let mut pinned: Vec<(&str, &str, Option<&str>)> = Vec::new();
    if let Some(c) = &pins.trust_root {
        pinned.push((c, "`--trust-root`", None));
    }
    if let Some(r) = &pins.checkpoint_root {
        pinned.push((&r.commit, "the checkpoint", Some(&r.allowed_signers)));
    }
    let same = |r: &TrustRoot, commit: &str, digest: Option<&str>| {
        r.commit.eq_ignore_ascii_case(commit) && digest.is_none_or(|d| d == r.allowed_signers)
    };
    let chosen = pinned
        .iter()
        .find_map(|(c, _, d)| roots.iter().position(|r| same(r, c, *d)))
        .unwrap_or(0);
    let root = (chosen < roots.len()).then(|| roots.remove(chosen));
    for (commit, by, digest) in &pinned {
        if root.as_ref().is_some_and(|r| same(r, commit, *digest)) {
            continue;
        }
        let recorded =
            digest.map_or_else(String::new, |d| format!(" (allowed_signers sha256:{d})"));
        let found = root.as_ref().map_or_else(
            || "the history has no root of trust (no commit brings `allowed_signers`)".to_owned(),
            |r| {
                format!(
                    "the history's root of trust is commit {} (allowed_signers sha256:{})",
                    r.commit, r.allowed_signers
                )
            },
        );
        report.problems.push(Problem {
            seq: None,
            file: Some(ALLOWED_SIGNERS.to_owned()),
            commit: root.as_ref().map(|r| r.commit.clone()),
            code: "trust-root-mismatch",
            reason: format!("{found}, not commit {commit}{recorded} as {by} pins"),
        });
    }
    if let Some(first) = &root {
        for other in &roots {
            report.problems.push(Problem {
                seq: None,
                file: Some(ALLOWED_SIGNERS.to_owned()),
                commit: Some(other.commit.clone()),
                code: "trust-root",
                reason: format!(
                    "a second root of trust: this commit brings `{ALLOWED_SIGNERS}` without a parent that has it; only one commit may, and {} already does",
                    first.commit
                ),
            });
        }
    }
    report.trust_root = root;
}

/// Walks one run of commits (oldest first): returns how many changed the audit or the
/// trust files, the problems found (commit signatures included) and the commits that
/// brought `allowed_signers` without a parent that has it (roots of trust), in order.
fn history_part(
    repo: &AuditRepo,
    oids: &[Oid],
    actors: &Actors,
    step: &(dyn Fn(u64) + Sync),
) -> Result<Part, AuditError> {
    let mut roots = Vec::new();
    // For the workflow engine: the first seq each commit adds and the tree it extends;
    // and the configurations the governance rule reads.
    let mut adds: Vec<(u64, Option<(Oid, crate::workflow::config::ConfigKey)>)> = Vec::new();
    let mut configs = crate::workflow::config::Configs::default();
    let mut commits = 0_u64;
    let mut problems: Vec<Problem> = Vec::new();
    // Trust by the ids of (allowed_signers, revoked_signers): parsed once per version.
    let mut trusts: std::collections::HashMap<TrustKey, std::sync::Arc<Trust>> =
        std::collections::HashMap::new();
    let mut jobs: Vec<CommitJob> = Vec::new();
    let mut cache = Trees::new();
    // The walk is oldest first, so a commit's parent is usually the commit before it:
    // its tree id is remembered instead of reading the parent again.
    let mut previous: Option<(Oid, Oid)> = None;
    for (n, &oid) in oids.iter().enumerate() {
        if n % 256 == 255 {
            step(256);
        }
        let commit = repo.repo.find_commit(oid)?;
        let tree_id = commit.tree_id();
        let tree = cache.get(repo, tree_id)?;
        // Every parent: a merge is judged against each one, not against its first only
        // (a merge whose tree is its first parent's would hide its second).
        let mut parents = Vec::with_capacity(commit.parent_count());
        for p in commit.parent_ids() {
            let id = match previous {
                Some((c, t)) if c == p => t,
                _ => repo.repo.find_commit(p)?.tree_id(),
            };
            parents.push((p, cache.get(repo, id)?));
        }
        previous = Some((oid, tree_id));
        // The changes against each parent (a commit without parents: against nothing).
        let mut sides: Vec<Vec<Change>> = Vec::with_capacity(parents.len().max(1));
        if parents.is_empty() {
            sides.push(touched_paths(repo, &mut cache, None, &tree)?);
        }
        for (_, t) in &parents {
            sides.push(touched_paths(repo, &mut cache, Some(t), &tree)?);
        }
        cache.next_commit();
        if sides.iter().all(Vec::is_empty) {
            continue;
        }
        let short = oid.to_string();
        let mut found: Vec<Problem> = Vec::new();
        let mut fail = |code: &'static str, file: Option<&str>, reason: String| {
            // The same finding against two parents is one problem.
            if !found
                .iter()
                .any(|p| p.code == code && p.file.as_deref() == file)
            {
                found.push(Problem {
                    seq: None,
                    file: file.map(str::to_owned),
                    commit: Some(short.clone()),
                    code,
                    reason,
                });
            }
        };
        if parents.len() > 1 {
            let differs: Vec<String> = parents
                .iter()
                .zip(&sides)
                .filter_map(|((p, _), changes)| {
                    changes.first().map(|c| format!("{p} (at `{}`)", c.path))
                })
                .collect();
            let first = sides.iter().find_map(|c| c.first()).map(|c| c.path.clone());
            fail(
                "history-merge",
                first.as_deref(),
                format!(
                    "a merge commit whose audit or configuration differs from its parent {}: they change in commits with one parent only (the audit is linear)",
                    differs.join(", parent ")
                ),
            );
        }
        for c in sides.iter().flatten() {
            if let Some((code, why)) = c.judge() {
                fail(code, Some(&c.path), why);
            }
        }
        if parents.len() == 1 {
            // The governance rule: a one-parent commit that changes the trust
            // configuration must be an admin's (a merge that does is `history-merge`).
            if let Some((_, parent_tree)) = parents.first()
                && sides
                    .iter()
                    .flatten()
                    .any(|c| crate::workflow::config::is_governed(&c.path))
                && let Some(why) = crate::workflow::history::config_change_problem(
                    repo,
                    &mut configs,
                    &commit,
                    &tree,
                    Some(parent_tree),
                )?
            {
                fail("config-unauthorized", None, why);
            }
        }
        let signed_sides: Vec<usize> = (0..sides.len())
            .filter(|&i| sides[i].iter().any(|c| needs_signature(&c.path)))
            .collect();
        if signed_sides.is_empty() {
            problems.append(&mut found);
            continue;
        }
        commits += 1;
        let seconds = commit.time().seconds();
        let at = DateTime::from_timestamp(seconds, 0);
        if at.is_none() {
            fail(
                "commit-time",
                None,
                format!(
                    "the commit's time ({seconds} seconds from 1970) is outside the range hitl can read: its signature cannot be judged at any instant"
                ),
            );
        }
        // Trust comes from before the commit: the changes against a parent are judged
        // with that parent's trust files (a merge's against each of its parents'), a
        // parent without `allowed_signers` borrows the first parent's that has them, and
        // a commit none of whose parents has them is a root of trust, judged by its own.
        let has_trust = |t: &Tree<'_>| id_at(repo, t, ALLOWED_SIGNERS).is_some();
        let is_root = !parents.iter().any(|(_, t)| has_trust(t));
        if is_root && let Some(id) = id_at(repo, &tree, ALLOWED_SIGNERS) {
            let blob = repo.repo.find_blob(id)?;
            roots.push(TrustRoot {
                commit: short.clone(),
                allowed_signers: sha256_hex(blob.content()),
            });
        }
        let mut trust_trees: Vec<(TrustKey, &Tree<'_>)> = Vec::new();
        for &i in &signed_sides {
            let own = parents.get(i).map(|(_, t)| t).filter(|t| has_trust(t));
            let t = own
                .or_else(|| parents.iter().map(|(_, t)| t).find(|t| has_trust(t)))
                .unwrap_or(&tree);
            let key = (
                id_at(repo, t, ALLOWED_SIGNERS),
                id_at(repo, t, REVOKED_SIGNERS),
            );
            if !trust_trees.iter().any(|(k, _)| *k == key) {
                trust_trees.push((key, t));
            }
        }
        // The actors of the events a one-parent commit adds (a merge's are the other
        // side's, and the merge is a problem already).
        let mut events = Vec::new();
        if parents.len() <= 1 {
            for c in sides.iter().flatten() {
                let name = c.path.rsplit('/').next().unwrap_or_default();
                let (true, Some(seq), None, Some((id, FILE_MODE))) = (
                    under(&c.path, AUDIT_DIR),
                    super::seq_of_name(name),
                    c.old,
                    c.new,
                ) else {
                    continue;
                };
                // The same file as at HEAD: its actor is known from the chain check.
                if let Some((principal, key)) = actors.get(id) {
                    events.push((c.path.clone(), seq, principal.to_owned(), key.to_owned()));
                } else {
                    let blob = repo.repo.find_blob(id)?;
                    if let Ok(ev) = parse_event(&c.path, blob.content()) {
                        events.push((c.path.clone(), ev.seq, ev.actor.principal, ev.actor.key));
                    }
                }
            }
        }
        if parents.len() <= 1
            && let Some(first) = events.iter().map(|e| e.1).min()
        {
            let parent = match parents.first() {
                Some((_, t)) => Some((t.id(), crate::workflow::config::ConfigKey::of(repo, t)?)),
                None => None,
            };
            adds.push((first, parent));
        }
        let signed = repo
            .repo
            .extract_signature(&oid, Some("gpgsig"))
            .ok()
            .map(|(sig, data)| (String::from_utf8_lossy(&sig).into_owned(), data.to_vec()));
        let author = commit.author();
        let first_path = signed_sides
            .iter()
            .flat_map(|&i| &sides[i])
            .find(|c| needs_signature(&c.path))
            .map(|c| c.path.clone());
        let may_be_unsigned = is_root && !sides.iter().flatten().any(|c| under(&c.path, AUDIT_DIR));
        for (key, t) in trust_trees {
            let trust = match trusts.get(&key) {
                Some(t) => t.clone(),
                None => match Trust::load(repo, t) {
                    Ok(t) => {
                        let t = std::sync::Arc::new(t);
                        trusts.insert(key, t.clone());
                        t
                    }
                    Err(e) => {
                        fail("trust-file", Some(ALLOWED_SIGNERS), e);
                        continue;
                    }
                },
            };
            jobs.push(CommitJob {
                commit: short.clone(),
                signed: signed.clone(),
                principal: author.email().unwrap_or_default().to_owned(),
                at,
                trust,
                may_be_unsigned,
                events: events.clone(),
                first_path: first_path.clone(),
            });
        }
        problems.append(&mut found);
        if jobs.len() >= 256 {
            problems.extend(std::mem::take(&mut jobs).iter().flat_map(check_commit));
        }
    }
    problems.extend(jobs.iter().flat_map(check_commit));
    // A merge judged under two parents' trust reports a bad signature once.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.commit.clone(), p.code, p.file.clone(), p.seq)));
    step(oids.len() as u64 % 256);
    Ok((commits, problems, roots, adds))
}

/// The ids of (`allowed_signers`, `revoked_signers`) in a tree: which trust it holds.
type TrustKey = (Option<Oid>, Option<Oid>);

fn check_commit(j: &CommitJob) -> Vec<Problem> {
    let mut out = Vec::new();
    let fail = |code: &'static str, file: Option<&str>, reason: String| Problem {
        seq: None,
        file: file.map(str::to_owned),
        commit: Some(j.commit.to_owned()),
        code,
        reason,
    };
    let Some((sig, data)) = &j.signed else {
        if j.may_be_unsigned {
            return out;
        }
        out.push(fail(
            "commit-unsigned",
            j.first_path.as_deref(),
            "changes the audit or its trust files in a commit without an SSH signature".to_owned(),
        ));
        return out;
    };
    // A time hitl cannot read judges nothing (`commit-time` says so): fail closed.
    let Some(at) = j.at else {
        return out;
    };
    match j.trust.check(sig, GIT_NAMESPACE, data, &j.principal, at) {
        Ok(fp) => {
            for (rel, seq, principal, key) in &j.events {
                if key != &fp || *principal != j.principal {
                    out.push(fail(
                        "signer-not-actor",
                        Some(rel),
                        format!(
                            "event {seq} names actor {principal} ({key}) but the commit is signed by {} ({fp})",
                            j.principal
                        ),
                    ));
                }
            }
        }
        Err((code, reason)) => out.push(fail(
            if code == "signer-not-actor" {
                "commit-signer"
            } else {
                code
            },
            None,
            format!("commit signature: {reason}"),
        )),
    }
    out
}

/// The problem of a checkpoint on an audit without events (or without any commit).
fn empty_audit(cp: &Head) -> Problem {
    problem(
        "checkpoint-truncated",
        Some(cp.seq),
        None,
        format!(
            "the checkpoint pins event {} but the audit is empty",
            cp.seq
        ),
    )
}

fn check_checkpoint(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    head: &Head,
    cp: &Head,
    report: &mut Report,
) -> Result<(), AuditError> {
    if head.seq < cp.seq {
        report.problems.push(problem(
            "checkpoint-truncated",
            Some(cp.seq),
            None,
            format!(
                "the checkpoint pins event {} but the audit ends at {}",
                cp.seq, head.seq
            ),
        ));
        return Ok(());
    }
    match repo.event(tree, cp.seq)? {
        Some((_, bytes)) if sha256_hex(&bytes) == cp.event => {}
        _ => report.problems.push(problem(
            "checkpoint-rewritten",
            Some(cp.seq),
            Some(&super::event_path(cp.seq)),
            "the event the checkpoint pins is not the same any more".to_owned(),
        )),
    }
    let head_commit = repo.head_for_reading()?.map(|c| c.id());
    let pinned = Oid::from_str(&cp.commit).ok();
    let extends = match (head_commit, pinned) {
        (Some(h), Some(p)) => h == p || repo.repo.graph_descendant_of(h, p).unwrap_or(false),
        _ => false,
    };
    if !extends {
        report.problems.push(Problem {
            seq: Some(cp.seq),
            file: None,
            commit: Some(cp.commit.clone()),
            code: "checkpoint-rewritten",
            reason: "the checkpoint's commit is not an ancestor of HEAD: history was rewritten"
                .to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod history_tests {
    use super::*;

    fn change(path: &str, old: Option<i32>, new: Option<i32>) -> Change {
        let a = Oid::from_str("1111111111111111111111111111111111111111").unwrap();
        let b = Oid::from_str("2222222222222222222222222222222222222222").unwrap();
        Change {
            path: path.to_owned(),
            old: old.map(|m| (a, m)),
            new: new.map(|m| (b, m)),
        }
    }

    fn code(c: &Change) -> Option<&'static str> {
        c.judge().map(|(code, _)| code)
    }

    #[test]
    fn under_is_the_path_or_below_it() {
        assert!(under("audit", "audit"));
        assert!(under("audit/events/x", "audit"));
        assert!(!under("auditor", "audit"));
        assert!(!under("audi", "audit"));
        assert!(under("policies/a.rego", "policies"));
        assert!(needs_signature("audit"));
        assert!(needs_signature("allowed_signers"));
        assert!(!needs_signature("approval-matrix.yaml"));
    }

    #[test]
    fn the_audit_takes_new_plain_files_and_growing_indexes_only() {
        let event = "audit/events/000000000/000000000001.json";
        let index = "audit/requests/ab/refund-1";
        assert_eq!(code(&change(event, None, Some(FILE_MODE))), None);
        assert_eq!(code(&change(index, Some(FILE_MODE), Some(FILE_MODE))), None);
        for c in [
            change(event, Some(FILE_MODE), Some(FILE_MODE)),
            change(event, Some(FILE_MODE), None),
            change(event, None, Some(LINK_MODE)),
            change(event, None, Some(GITLINK_MODE)),
            change(event, None, Some(EXEC_MODE)),
            change(event, Some(FILE_MODE), Some(LINK_MODE)),
            change(index, Some(FILE_MODE), Some(GITLINK_MODE)),
            change(index, Some(LINK_MODE), Some(LINK_MODE)),
            // `audit` itself: a folder turned into a symlink, and back.
            change("audit", Some(TREE_MODE), Some(LINK_MODE)),
            change("audit", Some(LINK_MODE), Some(TREE_MODE)),
            change("audit", None, Some(GITLINK_MODE)),
        ] {
            assert_eq!(code(&c), Some("history-rewrite"), "{c:?}");
        }
    }

    #[test]
    fn the_configuration_is_plain_files() {
        for path in [
            "approval-matrix.yaml",
            "policies/refund.rego",
            "policies",
            "hitl.toml",
        ] {
            assert_eq!(code(&change(path, Some(FILE_MODE), Some(FILE_MODE))), None);
            assert_eq!(
                code(&change(path, Some(FILE_MODE), Some(LINK_MODE))),
                Some("config-link")
            );
            assert_eq!(
                code(&change(path, None, Some(GITLINK_MODE))),
                Some("config-link")
            );
            // Putting a plain file back is the repair, not a problem.
            assert_eq!(code(&change(path, Some(LINK_MODE), Some(FILE_MODE))), None);
        }
    }

    fn root(commit: char) -> TrustRoot {
        TrustRoot {
            commit: commit.to_string().repeat(40),
            allowed_signers: "d".repeat(64),
        }
    }

    fn judged(roots: Vec<TrustRoot>, pins: &Pins) -> (Option<String>, Vec<&'static str>) {
        let mut report = Report::default();
        judge_roots(&mut report, roots, pins);
        (
            report.trust_root.map(|r| r.commit),
            report.problems.iter().map(|p| p.code).collect(),
        )
    }

    #[test]
    fn the_pinned_root_is_the_root_and_any_other_the_second() {
        let (a, b) = (root('a'), root('b'));
        let none = Pins::default();
        assert_eq!(
            judged(vec![a.clone()], &none),
            (Some(a.commit.clone()), vec![])
        );
        assert_eq!(
            judged(vec![a.clone(), b.clone()], &none),
            (Some(a.commit.clone()), vec!["trust-root"])
        );
        let on_b = Pins {
            trust_root: Some(b.commit.clone()),
            ..Pins::default()
        };
        assert_eq!(
            judged(vec![a.clone(), b.clone()], &on_b),
            (Some(b.commit.clone()), vec!["trust-root"])
        );
        assert_eq!(
            judged(vec![a.clone()], &on_b),
            (Some(a.commit.clone()), vec!["trust-root-mismatch"])
        );
        assert_eq!(judged(vec![], &on_b), (None, vec!["trust-root-mismatch"]));
        // A checkpoint's root is the commit and the digest it recorded.
        let mut other_digest = a.clone();
        other_digest.allowed_signers = "e".repeat(64);
        let cp = Pins {
            checkpoint_root: Some(other_digest),
            ..Pins::default()
        };
        assert_eq!(
            judged(vec![a.clone()], &cp),
            (Some(a.commit.clone()), vec!["trust-root-mismatch"])
        );
        let cp = Pins {
            checkpoint_root: Some(a.clone()),
            ..Pins::default()
        };
        assert_eq!(judged(vec![a.clone()], &cp), (Some(a.commit), vec![]));
    }
}
