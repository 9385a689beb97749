//! The audit: an append-only, hash-chained log of events, kept in git.
//!
//! Fixed layout (independent verifiers rely on it; docs/audit.md):
//!
//! - `audit/events/<seq / 1000, 9 digits>/<seq, 12 digits>.json`: one event per file, so
//!   no folder holds more than 1,000 events (2,000 files with signatures);
//! - `<event>.json.sig`: the detached SSH signature (namespace `hitl`) of a decision event;
//! - `audit/blobs/<first 2 hex digits>/<sha256 hex>`: bulky content an event refers to by
//!   digest (the proposal as submitted, the evidence pack as shown);
//! - `audit/requests/<2 hex digits>/<request id>`: the seqs of a request's events, one per line: an index
//!   so that a decision does not scan the whole log; `hitl verify` rebuilds and checks it.
//!
//! Every state change appends its events in ONE signed git commit ([`append`]).

pub mod append;
pub mod checkpoint;
pub mod index;
pub mod replay;
pub mod store;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

pub use append::{Appended, Appender, Built, NewEvent};
pub use store::AuditRepo;

/// The audit folder, relative to the workspace root.
pub const AUDIT_DIR: &str = "audit";
/// 64 zeros: the `prev` of event 1.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How many events one folder of `audit/events/` holds.
pub const EVENTS_PER_FOLDER: u64 = 1000;

/// Who did it: the principal whose key signed, and that key's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub principal: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub key: String,
}

/// The versions of everything that decided: the matrix, the policy set, the tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigVersions {
    /// `sha256:<hex>` of `approval-matrix.yaml`'s bytes.
    pub matrix: String,
    /// The policy-set digest (`PolicySet::digest`), or `none` without policies.
    pub policies: String,
    /// `hitl <version>`.
    pub tool: String,
}

/// One event, as stored. The common fields come first, in this order; the fields of its
/// type follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub prev: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub request: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub actor: Actor,
    pub config: ConfigVersions,
    #[serde(flatten)]
    pub fields: Map<String, Json>,
}

impl Event {
    /// The exact bytes of the event file: pretty JSON and a final newline.
    ///
    /// # Errors
    /// Never in practice (serialising plain JSON values).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// A string field of the type-specific part.
    #[must_use]
    pub fn field_str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Json::as_str)
    }
}

/// Lowercase hex sha256.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::policy::hex(&Sha256::digest(bytes))
}

/// How far ahead of a reader's clock an event may be dated before it counts as dated in
/// the future (`time-future`; at decision time its request takes no decision): the skew
/// two honest machines may have.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// `audit/events/000000000/000000000042.json`, relative to the workspace.
#[must_use]
pub fn event_path(seq: u64) -> String {
    format!(
        "{AUDIT_DIR}/events/{:09}/{seq:012}.json",
        seq / EVENTS_PER_FOLDER
    )
}

/// The detached signature beside an event.
#[must_use]
pub fn sig_path(seq: u64) -> String {
    format!("{}.sig", event_path(seq))
}

/// `audit/blobs/ab/abcd...`, for a lowercase hex sha256.
#[must_use]
pub fn blob_path(hex: &str) -> String {
    format!("{AUDIT_DIR}/blobs/{}/{hex}", hex.get(..2).unwrap_or("00"))
}

/// The index file of one request: `audit/requests/<first 2 hex digits of the id's
/// sha256>/<id>`, so no folder grows with the number of requests (a folder git rewrites
/// on every append must stay small).
#[must_use]
pub fn request_index_path(request: &str) -> String {
    let h = sha256_hex(request.as_bytes());
    format!("{AUDIT_DIR}/requests/{}/{request}", &h[..2])
}

/// A seq from an event file name (`000000000042.json`), if it is one.
#[must_use]
pub fn seq_of_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Errors of the audit store.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("`{}` is not inside a git repository; the audit lives in git", .0.display())]
    NoRepository(std::path::PathBuf),
    #[error("the git repository at `{}` has no working tree", .0.display())]
    Bare(std::path::PathBuf),
    #[error("HEAD is detached; check out a branch so the audit has a branch to extend")]
    DetachedHead,
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The repository's index is one hitl cannot update (split or sparse).
    #[error("hitl cannot stage the audit in git's index: {reason}")]
    UnsupportedIndex { reason: String },
    /// Updating git's index failed.
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot lock the audit (`{path}`): {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("the audit is broken at `{path}`: {message}; run `hitl verify`")]
    Corrupt { path: String, message: String },
    #[error("signing failed: {0}")]
    Signing(#[from] crate::signing::SigningError),
    #[error(
        "the branch moved while hitl was appending (another git command?); nothing was recorded, try again"
    )]
    Raced,
    /// The clock read under the lock is behind the last recorded event: recording would
    /// put an event before its predecessor (`time-backwards` for good). Nothing was
    /// recorded.
    #[error(
        "the clock of this machine ({now}) is behind the last event of the audit ({last}, seq {seq}); nothing was recorded: fix the clock (NTP) and retry; if the clock is right, event {seq} is dated in the future (`hitl verify` reports `time-future`)"
    )]
    ClockBehind { now: String, last: String, seq: u64 },
    /// A git lock file hitl cannot prove stale is in the way (a running git command's,
    /// or one left by a process killed outside an append). Nothing was recorded.
    #[error(
        "`{path}` exists: a git command is updating the repository, or one was killed; nothing was recorded. If no git command is running, remove it and retry"
    )]
    GitLocked { path: String },
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}
