//! What awaits a decision: the requests pending at HEAD, each folded by the engine, and
//! for an identity, whether the engine would accept its approval now (the same
//! [`judge_decision`] `approve` calls).
//!
//! Folding every request of a large audit costs far more than a terminal command may
//! take, so this clone keeps a list of the requests it last found pending, with the head
//! it found them at (`.git/hitl-open`, beside the checked head). A request that was not
//! pending then can only become pending through a commit that changes its index (a new
//! version): the requests whose index changed since that head are folded too. Without
//! a usable list every request is looked at once, skipping those its own events already
//! close (see [`open_candidates`]). The list only chooses which requests to fold: what
//! is shown is always the engine's state, derived again.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Oid, Tree};

use super::WorkflowError;
use super::config::Configs;
use super::engine::{self, Decision, Derived, Outcome, State, judge_decision};
use super::{Verdict, closed};
use crate::audit::{AuditError, AuditRepo, Event};

/// One pending request.
pub struct Entry {
    pub request: String,
    pub derived: Derived,
    pub state: State,
    /// [`Outcome::Pending`], or [`Outcome::Overridden`] with its review still owed.
    pub outcome: Outcome,
    /// For an identity: the role its approval would count in, or why the engine would
    /// refuse it.
    pub mine: Option<Result<String, String>>,
}

impl Entry {
    /// When it must be decided: its deadline, or for an open debt the review's due time.
    #[must_use]
    pub fn due(&self) -> DateTime<Utc> {
        match &self.outcome {
            Outcome::Overridden(o) => o.due,
            _ => self.derived.deadline(),
        }
    }
}

/// The pending requests at HEAD, soonest deadline first, and who asked.
pub struct Queue {
    pub entries: Vec<Entry>,
    /// The principal the identity's key acts for under the signer files at HEAD.
    pub principal: Option<String>,
}

const OPEN_FILE: &str = "hitl-open";

/// The pending requests at HEAD at `now`; with `identity` (a public key), whether the
/// engine would accept its approval of each.
///
/// # Errors
/// The refusal of [`engine::check_governed`] for a tampered history; a key the signer
/// files at HEAD do not trust; an unreadable audit.
pub fn queue(
    repo: &AuditRepo,
    identity: Option<&ssh_key::PublicKey>,
    now: DateTime<Utc>,
) -> Result<Queue, WorkflowError> {
    let Some(head) = repo.head_for_reading()? else {
        return Ok(Queue {
            entries: Vec::new(),
            principal: None,
        });
    };
    let tree = head.tree().map_err(AuditError::from)?;
    let mut configs = Configs::default();
    engine::check_governed(repo, &mut configs, &head)?;
    let current = configs.at(repo, &tree)?;
    let principal = match identity {
        Some(key) => Some(engine::trusted_actor(&current, key, now)?),
        None => None,
    };
    let mut entries = Vec::new();
    let mut open = Vec::new();
    let candidates = open_candidates(repo, &head, &tree, now)?;
    for (request, state, _) in fold_all(repo, &head, configs, &candidates, now)? {
        let outcome = state.outcome(now);
        let Some(Ok(derived)) = state.derived.clone() else {
            continue;
        };
        // Pending, or overridden and still owing its review (an open debt).
        match &outcome {
            Outcome::Pending { .. } => {}
            Outcome::Overridden(o) if o.open() => {}
            _ => continue,
        }
        open.push(request.clone());
        let mine = principal.as_deref().map(|p| {
            judge_decision(
                &state,
                &current,
                &Decision {
                    request: &request,
                    principal: p,
                    verdict: Verdict::Approve,
                    role: None,
                    reason_code: None,
                    at: now,
                },
            )
            .map_err(|e| e.to_string())
        });
        entries.push(Entry {
            request,
            derived,
            state,
            outcome,
            mine,
        });
    }
    remember_open(repo, head.id(), now, &open);
    entries.sort_by(|a, b| (a.due(), &a.request).cmp(&(b.due(), &b.request)));
    Ok(Queue { entries, principal })
}

/// One request as [`fold_all`] gives it: its id, the engine's state and its events.
pub(crate) type Folded = (String, State, Vec<Event>);

/// Folds each of `requests` at `head` with [`engine::state_at`], in their order, on all
/// cores once there are enough of them (each thread with its own repository and
/// configurations: the policy engine is not shared). `configs` serves a fold on one
/// thread (those [`engine::check_governed`] loaded).
///
/// # Errors
/// The first error of any request's fold; an unreadable audit.
pub(crate) fn fold_all(
    repo: &AuditRepo,
    head: &git2::Commit<'_>,
    mut configs: Configs,
    requests: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<Folded>, WorkflowError> {
    let fold = |r: &AuditRepo,
                configs: &mut Configs,
                head: &git2::Commit<'_>,
                part: &[String]|
     -> Vec<Result<Folded, WorkflowError>> {
        let tree = match head.tree() {
            Ok(t) => t,
            Err(e) => return vec![Err(AuditError::from(e).into())],
        };
        part.iter()
            .map(|id| {
                engine::state_at(r, configs, head, &tree, id, now)
                    .map(|(state, events)| (id.clone(), state, events))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    // Below this many, a second thread costs more (its own configuration to load) than
    // it saves.
    const PER_THREAD: usize = 12;
    let size = requests.len().div_ceil(threads.clamp(1, 8)).max(PER_THREAD);
    if requests.len() <= size {
        return fold(repo, &mut configs, head, requests)
            .into_iter()
            .collect();
    }
    // The first part on this thread, with the repository and the configuration already
    // loaded; the others each on a thread with its own (a libgit2 repository and the
    // policy engine are not shared).
    let head_id = head.id();
    let root = repo.root.as_path();
    let mut chunks = requests.chunks(size);
    let first = chunks.next().unwrap_or_default();
    let rest: Vec<&[String]> = chunks.collect();
    let fold = &fold;
    let (mut out, others) = std::thread::scope(|s| {
        let handles: Vec<_> = rest
            .iter()
            .map(|part| {
                s.spawn(
                    move || -> Result<Vec<Result<Folded, WorkflowError>>, AuditError> {
                        let r = AuditRepo::open(root)?;
                        let head = r.repo.find_commit(head_id)?;
                        let mut configs = Configs::default();
                        Ok(fold(&r, &mut configs, &head, part))
                    },
                )
            })
            .collect();
        let out = fold(repo, &mut configs, head, first);
        let others: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(AuditError::Corrupt {
                        path: crate::audit::AUDIT_DIR.to_owned(),
                        message: "a thread folding requests panicked".to_owned(),
                    })
                })
            })
            .collect();
        (out, others)
    });
    for part in others {
        out.extend(part?);
    }
    out.into_iter().collect()
}

/// The requests that may be pending at `head`: the ones this clone last found pending
/// plus those whose index changed since, or (without a usable list) every request whose
/// own events do not already close it.
///
/// The pre-filter is sound because a request the engine finds pending has all its
/// recorded decisions accepted and its recorded facts equal to the derived ones: if its
/// events say blocked, rejected, changes requested, approved by as many decisions as
/// the recorded quorum, or an `expires_at` already passed, the engine's outcome is that
/// too, or `inconsistent`; neither is pending.
///
/// # Errors
/// An unreadable audit.
pub fn open_candidates(
    repo: &AuditRepo,
    head: &git2::Commit<'_>,
    tree: &Tree<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, AuditError> {
    let file = engine::local_file(repo, OPEN_FILE);
    // The list holds for a later instant only: a request expired then might be pending
    // at an earlier `now` (a clock set back).
    if let Some((at, when, ids)) = read_open(&file)
        && when <= now
        && (at == head.id()
            || repo
                .repo
                .graph_descendant_of(head.id(), at)
                .unwrap_or(false))
    {
        let mut out: BTreeSet<String> = ids.into_iter().collect();
        out.extend(indexes_changed(repo, head, at)?);
        return Ok(out.into_iter().collect());
    }
    let mut out = Vec::new();
    for request in request_ids(repo, tree)? {
        let events = repo.request_events(tree, &request)?;
        if closed(&events).is_none() && !expired(&events, now) {
            out.push(request);
        }
    }
    Ok(out)
}

/// Whether the latest version's recorded `expires_at` has passed at `now`.
fn expired(events: &[Event], now: DateTime<Utc>) -> bool {
    events
        .iter()
        .rev()
        .find(|e| e.kind == super::types::APPROVAL_REQUESTED)
        .and_then(|e| e.field_str("expires_at"))
        .and_then(|t| engine::parse_at(t).ok())
        .is_some_and(|t| t <= now)
}

/// Every request id with an index at `tree` (`audit/requests/<shard>/<id>`).
///
/// # Errors
/// An unreadable object.
pub fn request_ids(repo: &AuditRepo, tree: &Tree<'_>) -> Result<Vec<String>, AuditError> {
    let mut out = Vec::new();
    let Some(requests) = repo.subtree(tree, &format!("{}/requests", crate::audit::AUDIT_DIR))?
    else {
        return Ok(out);
    };
    for shard in &requests {
        if shard.kind() != Some(git2::ObjectType::Tree) {
            continue;
        }
        let shard = repo.repo.find_tree(shard.id())?;
        for e in &shard {
            if e.kind() == Some(git2::ObjectType::Blob)
                && let Some(name) = e.name()
            {
                out.push(name.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The request ids whose index file a commit after `since` (up to `head`) changed.
fn indexes_changed(
    repo: &AuditRepo,
    head: &git2::Commit<'_>,
    since: Oid,
) -> Result<BTreeSet<String>, AuditError> {
    let mut out = BTreeSet::new();
    if head.id() == since {
        return Ok(out);
    }
    let dir = format!("{}/requests", crate::audit::AUDIT_DIR);
    let mut walk = repo.repo.revwalk()?;
    walk.push(head.id())?;
    walk.hide(since)?;
    for id in walk {
        let commit = repo.repo.find_commit(id?)?;
        let new = repo.subtree(&commit.tree()?, &dir)?;
        let parents: Vec<Option<Tree<'_>>> = if commit.parent_count() == 0 {
            vec![None]
        } else {
            commit
                .parents()
                .map(|p| {
                    p.tree()
                        .map_err(AuditError::from)
                        .and_then(|t| repo.subtree(&t, &dir))
                })
                .collect::<Result<_, _>>()?
        };
        for old in parents {
            let diff = repo
                .repo
                .diff_tree_to_tree(old.as_ref(), new.as_ref(), None)?;
            for delta in diff.deltas() {
                for file in [delta.old_file(), delta.new_file()] {
                    if let Some(name) = file.path().and_then(Path::file_name) {
                        out.insert(name.to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The list: `HEAD-ID INSTANT`, then one request id per line.
fn read_open(file: &Path) -> Option<(Oid, DateTime<Utc>, Vec<String>)> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut lines = text.lines();
    let (head, when) = lines.next()?.split_once(' ')?;
    let head = Oid::from_str(head).ok()?;
    let when = engine::parse_at(when).ok()?;
    Some((
        head,
        when,
        lines.map(str::to_owned).filter(|l| !l.is_empty()).collect(),
    ))
}

/// Remembers the requests found pending at `head` at `now`. Only a speed-up: a failure
/// costs a full look next time.
fn remember_open(repo: &AuditRepo, head: Oid, now: DateTime<Utc>, open: &[String]) {
    let mut text = format!(
        "{head} {}\n",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for id in open {
        text.push_str(id);
        text.push('\n');
    }
    engine::write_local(&engine::local_file(repo, OPEN_FILE), text.as_bytes());
}
