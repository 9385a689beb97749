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
//!    and be signed by the actor of every event it adds.
//!
//! Signatures are checked in parallel on all cores.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use git2::{Delta, Oid, Sort, Tree};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustRoot {
    pub commit: String,
    /// sha256 hex of `allowed_signers` in that commit.
    pub allowed_signers: String,
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
        let fp = signing::fingerprint(&key);
        if self.revoked.is_revoked(&key) {
            return Err(("signature-revoked", format!("signed by revoked key {fp}")));
        }
        self.allowed
            .check(&key, principal, namespace, at)
            .map_err(|e| {
                let code = match e {
                    signing::SigningError::Expired { .. }
                    | signing::SigningError::NotYetValid { .. } => "signature-expired",
                    signing::SigningError::PrincipalMismatch { .. } => "signer-not-actor",
                    _ => "signature-untrusted",
                };
                (code, e.to_string())
            })?;
        // As `hitl` itself decides who acts: one key, one named principal. A key shared
        // by several principals, or trusted only through a pattern, names nobody.
        let principals = self
            .allowed
            .principals_for(&key, namespace, at)
            .map_err(|e| ("signature-untrusted", e.to_string()))?;
        if principals.len() != 1 || principals[0] != principal {
            return Err((
                "signer-not-actor",
                format!(
                    "key {fp} stands for {} in `allowed_signers`, not for {principal} alone",
                    principals.join(", ")
                ),
            ));
        }
        Ok(fp)
    }
}

/// What the chain has said so far about one request: enough to judge its decisions
/// (the same rules `hitl approve` and `hitl reject` apply).
#[derive(Default)]
struct RequestFacts {
    requested_by: Option<String>,
    submitted_by: Option<String>,
    asked: Option<crate::workflow::RequestState>,
    blocked: bool,
    decided: bool,
}

/// Whether a decision event was one its actor could make, given what came before it.
fn judge_decision(facts: &RequestFacts, event: &Event, at: DateTime<Utc>) -> Option<String> {
    let who = &event.actor.principal;
    if facts.blocked {
        return Some("the request was blocked by policy".to_owned());
    }
    if facts.decided {
        return Some("the request was already decided".to_owned());
    }
    let Some(asked) = &facts.asked else {
        return Some("no `approval_requested` event came before it".to_owned());
    };
    if at >= asked.expires_at {
        return Some(format!("made at {} after the request expired", event.at));
    }
    let is_party =
        facts.requested_by.as_ref() == Some(who) || facts.submitted_by.as_ref() == Some(who);
    if is_party && !(asked.self_approval && facts.requested_by.as_ref() == Some(who)) {
        return Some(format!("{who} requested or submitted it"));
    }
    let role = event.field_str("role").unwrap_or_default();
    let eligible = asked
        .eligible
        .iter()
        .any(|(r, members)| r == role && members.iter().any(|m| m == who));
    if !eligible {
        return Some(format!(
            "{who} is not a member of an eligible role `{role}`"
        ));
    }
    None
}

/// What [`verify`] is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The chain: every event file, its link, blobs and signature (counted in events).
    Events,
    /// The git history: every commit (counted in commits).
    History,
}

/// Verifies the audit of the workspace in `repo`; `checkpoint` is a head an auditor
/// kept. `progress(phase, done, total)` is called now and then, from any thread.
///
/// # Errors
/// Only when the repository itself cannot be read; every problem in the audit is a
/// [`Problem`] in the report.
pub fn verify(
    repo: &AuditRepo,
    checkpoint: Option<&Head>,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<Report, AuditError> {
    let mut report = Report::default();
    let Some(head) = repo.head_for_reading()? else {
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
    let actors = chain(repo, &tree, &trust, &mut report, progress)?;
    history(repo, head.id(), &actors, &mut report, progress)?;
    if let (Some(h), Some(cp)) = (report.head.clone(), checkpoint) {
        check_checkpoint(repo, &tree, &h, cp, &mut report)?;
    } else if let (None, Some(cp)) = (&report.head, checkpoint) {
        report.problems.push(problem(
            "checkpoint-truncated",
            Some(cp.seq),
            None,
            format!(
                "the checkpoint pins event {} but the audit is empty",
                cp.seq
            ),
        ));
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
    let root = repo.root.as_path();
    let size = files.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(size)
            .map(|part| s.spawn(move || AuditRepo::open(root).map(|own| load(&own, part))))
            .collect();
        let mut out = Vec::with_capacity(files.len());
        for h in handles {
            let part = h.join().map_err(|_| AuditError::Corrupt {
                path: AUDIT_DIR.to_owned(),
                message: "a thread reading events panicked".to_owned(),
            })??;
            out.extend(part);
        }
        Ok(out)
    })
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
) -> Result<Actors, AuditError> {
    let mut actors = Actors::default();
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
    let mut facts_of: std::collections::HashMap<String, RequestFacts> =
        std::collections::HashMap::new();
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
        {
            use crate::workflow::types;
            let facts = facts_of.entry(event.request.clone()).or_default();
            match event.kind.as_str() {
                types::PROPOSED => {
                    facts.requested_by = event.field_str("requested_by").map(str::to_owned);
                    facts.submitted_by = event.field_str("submitted_by").map(str::to_owned);
                }
                types::APPROVAL_REQUESTED => {
                    facts.asked = crate::workflow::asked_state(&event).ok();
                    if facts.asked.is_none() {
                        report.problems.push(problem(
                            "event-invalid",
                            Some(seq),
                            Some(path),
                            "an `approval_requested` without valid `eligible` and `expires_at`"
                                .to_owned(),
                        ));
                    }
                }
                types::BLOCKED => {
                    // Only the flag matters from here on: keep memory per request small.
                    *facts = RequestFacts {
                        blocked: true,
                        ..RequestFacts::default()
                    };
                }
                types::DECISION => {
                    if let Some(why) = judge_decision(facts, &event, at) {
                        report.problems.push(problem(
                            "decision-unauthorized",
                            Some(seq),
                            Some(path),
                            why,
                        ));
                    }
                    *facts = RequestFacts {
                        decided: true,
                        ..RequestFacts::default()
                    };
                }
                _ => {}
            }
        }
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
    Ok(actors)
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

/// One changed path: workspace-relative path, status, old and new blob ids.
type Change = (String, Delta, Option<Oid>, Option<Oid>);

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
        (o, n) => {
            let status = match (o, n) {
                // Only plain files belong in the audit: a symlink, an executable or a
                // submodule entry is a retyping, whatever its content.
                (_, Some((_, mode))) if mode != FILE_MODE => Delta::Typechange,
                (None, Some(_)) => Delta::Added,
                (Some(_), None) => Delta::Deleted,
                (Some((_, x)), Some((_, y))) if x != y => Delta::Typechange,
                _ => Delta::Modified,
            };
            out.push((rel.to_owned(), status, o.map(|x| x.0), n.map(|x| x.0)));
            Ok(())
        }
    }
}

/// What a commit changed in the audit or the trust files.
fn touched_paths<'r>(
    repo: &'r AuditRepo,
    cache: &mut Trees<'r>,
    parent: Option<&Tree<'_>>,
    tree: &Tree<'_>,
) -> Result<Vec<Change>, AuditError> {
    let mut out = Vec::new();
    for rel in [AUDIT_DIR, ALLOWED_SIGNERS, REVOKED_SIGNERS] {
        let at = |t: &Tree<'_>| {
            t.get_path(std::path::Path::new(&repo.git_path(rel)))
                .ok()
                .map(|e| (e.id(), e.filemode()))
        };
        diff_ids(repo, cache, rel, parent.and_then(at), at(tree), &mut out)?;
    }
    Ok(out)
}

/// A commit whose signature still has to be checked, with what it must match.
struct CommitJob {
    commit: String,
    signed: Option<(String, Vec<u8>)>,
    principal: String,
    at: DateTime<Utc>,
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
type Part = (u64, Vec<Problem>, Vec<TrustRoot>);

/// The fewest commits worth a thread of their own in the history walk.
const MIN_RUN: usize = 32;

/// The git history: every commit that touched the audit or its trust files, oldest
/// first. The commits are split into one contiguous run per core; each run is walked on
/// its own thread with its own repository handle (commits are independent: a commit is
/// judged against its parent's tree only).
fn history(
    repo: &AuditRepo,
    head: Oid,
    actors: &Actors,
    report: &mut Report,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<(), AuditError> {
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
    let parts: Vec<Result<Part, AuditError>> = if oids.len() <= size {
        vec![history_part(repo, &oids, actors, &step)]
    } else {
        let root = repo.root.as_path();
        std::thread::scope(|s| {
            let handles: Vec<_> = oids
                .chunks(size)
                .map(|run| {
                    let step = &step;
                    s.spawn(move || {
                        let own = AuditRepo::open(root)?;
                        history_part(&own, run, actors, step)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(AuditError::Corrupt {
                            path: AUDIT_DIR.to_owned(),
                            message: "a history thread panicked".to_owned(),
                        })
                    })
                })
                .collect()
        })
    };
    let mut roots = Vec::new();
    for part in parts {
        let (commits, mut problems, mut part_roots) = part?;
        report.commits += commits;
        report.problems.append(&mut problems);
        roots.append(&mut part_roots);
    }
    // The walk is oldest first: the first root is the root of trust, any other one (an
    // orphan history brought in by a merge, `allowed_signers` deleted and brought back)
    // would be a second source of trust nobody signed for.
    let mut roots = roots.into_iter();
    report.trust_root = roots.next();
    if let Some(first) = &report.trust_root {
        for other in roots {
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
    progress(Phase::History, total, total);
    Ok(())
}

/// Walks one run of commits (oldest first): returns how many touched the audit, the
/// problems found (commit signatures included) and the commits that brought
/// `allowed_signers` without a parent that has it (roots of trust), in order.
fn history_part(
    repo: &AuditRepo,
    oids: &[Oid],
    actors: &Actors,
    step: &(dyn Fn(u64) + Sync),
) -> Result<Part, AuditError> {
    let mut roots = Vec::new();
    let mut report = Report::default();
    let report = &mut report;
    // Trust by the ids of (allowed_signers, revoked_signers): parsed once per version.
    let mut trusts: std::collections::HashMap<(Option<Oid>, Option<Oid>), std::sync::Arc<Trust>> =
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
        let parent_tree = match commit.parent_ids().next() {
            Some(p) => {
                let id = match previous {
                    Some((c, t)) if c == p => t,
                    _ => repo.repo.find_commit(p)?.tree_id(),
                };
                Some(cache.get(repo, id)?)
            }
            None => None,
        };
        previous = Some((oid, tree_id));
        let changes = touched_paths(repo, &mut cache, parent_tree.as_ref(), &tree)?;
        cache.next_commit();
        if changes.is_empty() {
            continue;
        }
        report.commits += 1;
        let short = oid.to_string();
        let mut fail = |code: &'static str, file: Option<&str>, reason: String| {
            report.problems.push(Problem {
                seq: None,
                file: file.map(str::to_owned),
                commit: Some(short.clone()),
                code,
                reason,
            });
        };
        if commit.parent_count() > 1 {
            fail(
                "history-merge",
                None,
                "a merge commit changes the audit; the audit must be linear".to_owned(),
            );
        }
        // Trust comes from before the commit; a commit that brings allowed_signers
        // without a parent that has it is a root of trust (there may be only one).
        let (trust_tree, is_root) = match &parent_tree {
            Some(p) if id_at(repo, p, ALLOWED_SIGNERS).is_some() => (p, false),
            _ => (&tree, true),
        };
        if is_root && let Some(id) = id_at(repo, &tree, ALLOWED_SIGNERS) {
            let blob = repo.repo.find_blob(id)?;
            roots.push(TrustRoot {
                commit: short.clone(),
                allowed_signers: sha256_hex(blob.content()),
            });
        }
        let key = (
            id_at(repo, trust_tree, ALLOWED_SIGNERS),
            id_at(repo, trust_tree, REVOKED_SIGNERS),
        );
        let trust = match trusts.get(&key) {
            Some(t) => t.clone(),
            None => match Trust::load(repo, trust_tree) {
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
        let mut events = Vec::new();
        for (rel, status, _, new_id) in &changes {
            let is_audit = rel.starts_with(&format!("{AUDIT_DIR}/"));
            let is_index = rel.starts_with(&format!("{AUDIT_DIR}/requests/"));
            match status {
                Delta::Added => {}
                Delta::Modified if !is_audit || is_index => {}
                _ if !is_audit => {}
                other => fail(
                    "history-rewrite",
                    Some(rel),
                    format!(
                        "an existing audit file was {} (the audit is append-only)",
                        delta_word(*other)
                    ),
                ),
            }
            let is_event = super::seq_of_name(rel.rsplit('/').next().unwrap_or_default()).is_some();
            if let (Delta::Added, true, Some(id)) = (status, is_event, new_id) {
                // The same file as at HEAD: its actor is known from the chain check.
                if let Some((principal, key)) = actors.get(*id) {
                    let seq = super::seq_of_name(rel.rsplit('/').next().unwrap_or_default());
                    events.push((
                        rel.clone(),
                        seq.unwrap_or_default(),
                        principal.to_owned(),
                        key.to_owned(),
                    ));
                } else {
                    let blob = repo.repo.find_blob(*id)?;
                    if let Ok(ev) = parse_event(rel, blob.content()) {
                        events.push((rel.clone(), ev.seq, ev.actor.principal, ev.actor.key));
                    }
                }
            }
        }
        let author = commit.author();
        jobs.push(CommitJob {
            commit: short,
            signed: repo
                .repo
                .extract_signature(&oid, Some("gpgsig"))
                .ok()
                .map(|(sig, data)| (String::from_utf8_lossy(&sig).into_owned(), data.to_vec())),
            principal: author.email().unwrap_or_default().to_owned(),
            at: DateTime::from_timestamp(commit.time().seconds(), 0).unwrap_or_default(),
            trust,
            may_be_unsigned: is_root
                && !changes
                    .iter()
                    .any(|c| c.0 == AUDIT_DIR || c.0.starts_with(&format!("{AUDIT_DIR}/"))),
            events,
            first_path: changes.first().map(|c| c.0.clone()),
        });
        if jobs.len() >= 256 {
            report
                .problems
                .extend(std::mem::take(&mut jobs).iter().flat_map(check_commit));
        }
    }
    report.problems.extend(jobs.iter().flat_map(check_commit));
    step(oids.len() as u64 % 256);
    Ok((report.commits, std::mem::take(&mut report.problems), roots))
}

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
    match j.trust.check(sig, GIT_NAMESPACE, data, &j.principal, j.at) {
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

fn delta_word(d: Delta) -> &'static str {
    match d {
        Delta::Deleted => "deleted",
        Delta::Renamed => "renamed",
        Delta::Typechange => "retyped",
        _ => "modified",
    }
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
