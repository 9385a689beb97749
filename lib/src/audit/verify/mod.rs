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
//!
//! One file per job: `chain.rs` (pass 1), `changes.rs` (what a commit changed at the
//! watched paths, and which changes are problems), `history.rs` (pass 2: the walk and
//! the commit signatures) and `pins.rs` (the root of trust and the checkpoint an
//! auditor pins). This file holds the report's types, the trust in force in a tree and
//! the entry point, [`verify`].

mod chain;
mod changes;
mod history;
mod pins;

use chrono::{DateTime, Utc};
use git2::Tree;
use serde::{Deserialize, Serialize};

use super::store::AuditRepo;
use super::{AUDIT_DIR, AuditError};
use crate::signing::{self, AllowedSigners, RevokedSigners};
use chain::chain;
use changes::TREE_MODE;
use history::history;
use pins::{check_checkpoint, empty_audit, judge_roots};

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
    /// The instant overdue break-glass reviews are judged at (none: not judged).
    pub now: Option<chrono::DateTime<chrono::Utc>>,
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
    let (actors, recorded) = chain(repo, &tree, &trust, &mut report, pins.now, progress)?;
    let (roots, line) = history(repo, head.id(), &actors, &mut report, progress)?;
    // The workflow engine, on every recorded event, under the configuration in force
    // for it (the tree its commit extended, as the history walk found it).
    for (seq, code, reason) in
        crate::workflow::recorded::judge(repo, &tree, recorded, line, pins.now, true)?
    {
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
