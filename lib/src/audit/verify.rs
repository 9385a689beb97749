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
use git2::{Delta, DiffOptions, Oid, Sort, Tree};
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

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub events: u64,
    pub signatures: u64,
    pub commits: u64,
    pub head: Option<Head>,
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
        Ok(fp)
    }
}

/// Verifies the audit of the workspace in `repo`; `checkpoint` is a head an auditor
/// kept. `progress(done, total)` is called now and then.
///
/// # Errors
/// Only when the repository itself cannot be read; every problem in the audit is a
/// [`Problem`] in the report.
pub fn verify(
    repo: &AuditRepo,
    checkpoint: Option<&Head>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Report, AuditError> {
    let mut report = Report {
        events: 0,
        signatures: 0,
        commits: 0,
        head: None,
        problems: Vec::new(),
    };
    let Some(head) = repo.head_commit()? else {
        return Ok(report);
    };
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
    chain(repo, &tree, &trust, &mut report, progress)?;
    history(repo, head.id(), &mut report)?;
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

fn chain(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    trust: &Trust,
    report: &mut Report,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(), AuditError> {
    let files = repo.event_files(tree)?;
    let total = files.len() as u64;
    let mut expected = 1_u64;
    let mut prev = GENESIS.to_owned();
    let mut requests: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut jobs: Vec<SigJob> = Vec::new();
    let mut last: Option<Head> = None;
    for (i, (path, name_seq, oid)) in files.iter().enumerate() {
        if i % 1024 == 0 {
            progress(i as u64, total);
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
        let bytes = repo.repo.find_blob(*oid)?.content().to_vec();
        let hash = sha256_hex(&bytes);
        let event: Event = match parse_event(path, &bytes) {
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
        for field in ["proposal", "evidence_pack"] {
            if let Some(d) = event
                .field_str(field)
                .and_then(|d| d.strip_prefix("sha256:"))
            {
                check_blob(repo, tree, seq, path, field, d, report)?;
            }
        }
        if event.kind == crate::workflow::types::DECISION {
            let at = DateTime::parse_from_rfc3339(&event.at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default();
            jobs.push(SigJob {
                seq,
                file: sig_path(seq),
                bytes,
                sig: repo.read(tree, &sig_path(seq))?,
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
    check_indexes(repo, tree, &requests, report)?;
    progress(total, total);
    report.head = last;
    Ok(())
}

fn check_blob(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    seq: u64,
    path: &str,
    field: &str,
    digest: &str,
    report: &mut Report,
) -> Result<(), AuditError> {
    let blob = blob_path(digest);
    match repo.read(tree, &blob)? {
        None => report.problems.push(problem(
            "blob-missing",
            Some(seq),
            Some(&blob),
            format!("`{field}` of {path} refers to a blob that is missing"),
        )),
        Some(b) if sha256_hex(&b) != digest => report.problems.push(problem(
            "blob-edited",
            Some(seq),
            Some(&blob),
            format!("the blob's content does not match its digest (`{field}` of {path})"),
        )),
        Some(_) => {}
    }
    Ok(())
}

fn check_signatures(jobs: Vec<SigJob>, trust: &Trust, report: &mut Report) {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let results: Vec<Vec<Problem>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().filter_map(|j| check_one(j, trust)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
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
    });
    report.signatures += jobs.len() as u64;
    for mut r in results {
        report.problems.append(&mut r);
    }
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

/// One changed path: workspace-relative path, status, old and new blob ids.
type Change = (String, Delta, Option<Oid>, Option<Oid>);

/// Whether a commit touches the audit or the trust files.
fn touched_paths(
    repo: &AuditRepo,
    parent: Option<&Tree<'_>>,
    tree: &Tree<'_>,
) -> Result<Vec<Change>, AuditError> {
    let id = |t: &Tree<'_>, rel: &str| -> Option<Oid> {
        t.get_path(std::path::Path::new(&repo.git_path(rel)))
            .ok()
            .map(|e| e.id())
    };
    let watched = [AUDIT_DIR, ALLOWED_SIGNERS, REVOKED_SIGNERS];
    if let Some(p) = parent {
        if watched.iter().all(|w| id(p, w) == id(tree, w)) {
            return Ok(Vec::new());
        }
    } else if watched.iter().all(|w| id(tree, w).is_none()) {
        return Ok(Vec::new());
    }
    let mut opts = DiffOptions::new();
    for w in watched {
        opts.pathspec(repo.git_path(w));
    }
    let diff = repo
        .repo
        .diff_tree_to_tree(parent, Some(tree), Some(&mut opts))?;
    let mut out = Vec::new();
    for d in diff.deltas() {
        let path = d
            .new_file()
            .path()
            .or_else(|| d.old_file().path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = path.strip_prefix(&repo.prefix).unwrap_or(&path).to_owned();
        out.push((
            rel,
            d.status(),
            Some(d.old_file().id()),
            Some(d.new_file().id()),
        ));
    }
    Ok(out)
}

fn history(repo: &AuditRepo, head: Oid, report: &mut Report) -> Result<(), AuditError> {
    let mut walk = repo.repo.revwalk()?;
    walk.push(head)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    for oid in walk {
        let oid = oid?;
        let commit = repo.repo.find_commit(oid)?;
        let tree = commit.tree()?;
        let parent = commit.parents().next();
        let parent_tree = parent.as_ref().map(git2::Commit::tree).transpose()?;
        let changes = touched_paths(repo, parent_tree.as_ref(), &tree)?;
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
        // Trust comes from before the commit; the first commit that brings allowed_signers
        // is the root of trust.
        let trust_tree = match &parent_tree {
            Some(p) if repo.read(p, ALLOWED_SIGNERS)?.is_some() => p,
            _ => &tree,
        };
        let trust = match Trust::load(repo, trust_tree) {
            Ok(t) => t,
            Err(e) => {
                fail("trust-file", Some(ALLOWED_SIGNERS), e);
                continue;
            }
        };
        let author = commit.author();
        let principal = author.email().unwrap_or_default().to_owned();
        let at = DateTime::from_timestamp(commit.time().seconds(), 0).unwrap_or_default();
        let signer = match repo.repo.extract_signature(&oid, Some("gpgsig")) {
            Err(_) => {
                fail(
                    "commit-unsigned",
                    changes.first().map(|c| c.0.as_str()),
                    "changes the audit or its trust files in a commit without an SSH signature"
                        .to_owned(),
                );
                None
            }
            Ok((sig, data)) => {
                let armored = String::from_utf8_lossy(&sig).into_owned();
                match trust.check(&armored, GIT_NAMESPACE, &data, &principal, at) {
                    Ok(fp) => Some(fp),
                    Err((code, reason)) => {
                        fail(
                            if code == "signer-not-actor" {
                                "commit-signer"
                            } else {
                                code
                            },
                            None,
                            format!("commit signature: {reason}"),
                        );
                        None
                    }
                }
            }
        };
        for (rel, status, _, new_id) in &changes {
            let is_audit = rel.starts_with(&format!("{AUDIT_DIR}/"));
            let is_index = rel.starts_with(&format!("{AUDIT_DIR}/requests/"));
            match status {
                Delta::Added => {}
                Delta::Modified if !is_audit => {}
                Delta::Modified if is_index => {}
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
            if let (Delta::Added, true, Some(fp), Some(id)) = (status, is_event, &signer, new_id) {
                let blob = repo.repo.find_blob(*id)?;
                if let Ok(ev) = parse_event(rel, blob.content())
                    && (&ev.actor.key != fp || ev.actor.principal != principal)
                {
                    fail(
                        "signer-not-actor",
                        Some(rel),
                        format!(
                            "event {} names actor {} ({}) but the commit is signed by {principal} ({fp})",
                            ev.seq, ev.actor.principal, ev.actor.key
                        ),
                    );
                }
            }
        }
    }
    Ok(())
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
    let head_commit = repo.head_commit()?.map(|c| c.id());
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
