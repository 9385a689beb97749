//! A local cache of one request's fold at one HEAD, for `hitl check` with the audit at
//! hand (docs/approvals.md, "Its fold, kept"; docs/security.md, on local state in
//! `.git`). A fold is a function of the history up to HEAD (content-addressed: the
//! commit id names all of it), of the hitl build that folds, and of the clock only
//! through the rule that refuses events dated after now: so a fold this clone computed
//! at HEAD `H` with build `B` is the fold at `H` with `B`, and `check` reuses it instead
//! of folding again (about 5 ms of policy compilation, configuration loading and
//! signature checks on every run).
//!
//! What is kept: the request's [`State`], its accepted approvals, and the digests of the
//! configuration its final approval was decided under. `now`-dependent answers (expiry,
//! windows, the outcome) are computed from them at every use. The entry lives in
//! `.git/hitl-fold/` (a workspace in a subfolder keeps its own, `hitl-fold-<tag>`),
//! beside `.git/hitl-config-checked`: this clone's own state, never fetched or pushed; a
//! write to `.git` could run code through hooks anyway. An entry for another HEAD,
//! another build, another workspace or a request id it does not name is not used; one
//! that does not parse is folded again. Recording commands (`approve`, `exec`, ...) and
//! `verify` never read it: they always fold.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::approval::Accepted;
use super::rules::State;

/// What `check` needs of a request's fold at HEAD, beyond the configuration at HEAD.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fold {
    pub state: State,
    /// The accepted approvals of the current version, in order.
    pub accepted: Vec<Accepted>,
    /// The matrix and policy digests of the configuration the final approval was
    /// decided under, when it is known.
    pub final_digests: Option<(String, String)>,
    /// The latest time an event of the request is dated: the fold holds at any `now`
    /// from which that time is not in the future.
    pub latest: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    build: String,
    head: String,
    /// The workspace's subfolder in the repository (empty at its root).
    workspace: String,
    request: String,
    fold: Fold,
}

/// The entry of `request` in this workspace's folder of folds: a workspace in a
/// subfolder of the repository keeps its own (`hitl-fold-<tag>`, as
/// `.git/hitl-config-checked` is), never a sibling's.
fn file(repo: &crate::audit::AuditRepo, request: &str) -> PathBuf {
    super::engine::local_file(repo, "hitl-fold").join(format!(
        "{}.json",
        &crate::audit::sha256_hex(request.as_bytes())[..32]
    ))
}

/// The fold of `request` at `head` by `build`, if this clone kept one that holds at
/// `now`.
#[must_use]
pub fn read(
    repo: &crate::audit::AuditRepo,
    build: &str,
    head: git2::Oid,
    request: &str,
    now: DateTime<Utc>,
) -> Option<Fold> {
    let bytes = std::fs::read(file(repo, request)).ok()?;
    let entry: Entry = serde_json::from_slice(&bytes).ok()?;
    let holds = entry.build == build
        && entry.head == head.to_string()
        && entry.workspace == repo.prefix
        && entry.request == request
        && entry
            .fold
            .latest
            .is_none_or(|at| at <= now + crate::audit::CLOCK_SKEW);
    holds.then_some(entry.fold)
}

/// Keeps `fold`, computed at `head` by `build` at `now`, unless one of its events is
/// dated after `now` (the fold then depends on the clock). Best effort: a clone whose
/// `.git` is not writable folds again next time.
pub fn write(
    repo: &crate::audit::AuditRepo,
    build: &str,
    head: git2::Oid,
    request: &str,
    fold: &Fold,
    now: DateTime<Utc>,
) {
    if fold
        .latest
        .is_some_and(|at| at > now + crate::audit::CLOCK_SKEW)
    {
        return;
    }
    let path = file(repo, request);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let entry = Entry {
        build: build.to_owned(),
        head: head.to_string(),
        workspace: repo.prefix.clone(),
        request: request.to_owned(),
        fold: fold.clone(),
    };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        super::engine::write_local(&path, &bytes);
    }
}
