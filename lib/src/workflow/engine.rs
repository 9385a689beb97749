//! The workflow engine: the one place that decides.
//!
//! A request's state is the fold of its recorded events ([`State::propose`], [`State::decide`]), with every
//! fact that can be derived recomputed from the recorded proposal (its exact bytes, by
//! digest) under the configuration in force when it was proposed ([`derive_facts`]): tier,
//! route, eligible roles and their members, approvals required, self-approval, expiry,
//! blocked or not, who requested it and who submitted it (the signer of the `proposed`
//! event). Recorded fields are compared with the recomputation and never read back as
//! truth; a disagreement is a finding, and a request with one takes no decision.
//!
//! [`judge_decision`] accepts or refuses a decision against that state and the
//! configuration the decision extends. `approve` and `reject` call it under the audit
//! lock before they append; `verify` calls it on every recorded decision. One rulebook.
//!
//! The derivation lives in `derive.rs` and the rules in `rules/` (both re-exported
//! here); this file reads them from the audit: the state at HEAD, the governance check
//! under the lock, and the judges of a new decision and a new proposal.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::config::Config;
use super::{WorkflowError, types};
use crate::audit::Event;
use crate::evidence::EvidencePack;
use crate::request;

pub use super::derive::{Derived, derive_facts, derive_from, disagreements, submitter_rule};
pub use super::rules::{
    Decision, Outcome, REQUESTER_ROLE, State, judge_decision, judge_recorded_event, parse_at,
};

/// A request's state as the engine folds it from the audit at `tree` (HEAD's tree, whose
/// commit is `head`): the proposal derived under the configuration in force when it was
/// proposed, and the decisions recorded since.
///
/// # Errors
/// An unreadable audit; what cannot be derived is an `Err` inside the state.
pub fn state_at(
    repo: &crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'_>,
    tree: &git2::Tree<'_>,
    request: &str,
    now: DateTime<Utc>,
) -> Result<(State, Vec<Event>), WorkflowError> {
    let events = repo.request_events(tree, request)?;
    let mut state = State::default();
    let mut i = 0;
    while let Some(e) = events.get(i) {
        // An event dated after now (beyond the clock skew two honest machines may
        // have) was not recorded by a clock hitl trusts (an append records its clock,
        // read under the lock, after the last event's): a hand-made override dated next
        // year would owe its review only then. Nothing is decided on it.
        if parse_at(&e.at).is_ok_and(|at| at > now + crate::audit::CLOCK_SKEW) {
            state.derived = Some(Err(format!(
                "event {} is dated {}, after now: it is not what an append recorded",
                e.seq, e.at
            )));
            break;
        }
        if e.kind == types::DECISION {
            // Each recorded decision counts only once the engine accepts it again, under
            // the configuration of the tree its commit extended: a hand-made decision
            // event in a trusted commit counts for nothing, and the request takes no
            // more decisions.
            if let Err(why) = judge_recorded(repo, configs, head, &state, e)? {
                state.derived = Some(Err(format!(
                    "its recorded decision (event {}) does not hold: {why}",
                    e.seq
                )));
                break;
            }
            state.decide(e);
            i += 1;
            continue;
        }
        let kind = e.kind.as_str();
        if types::EXECUTION.contains(&kind)
            || types::ROLLBACK.contains(&kind)
            || kind == types::REFUSED
        {
            // An execution, rollback or refusal event holds only as its signer's, where
            // its rule holds at its time under the configuration its commit extended (a
            // refusal changes nothing, but a hand-made one in another's name, or for a
            // request not proposed before it, does not hold either).
            let judged = recorded_by_actor(repo, configs, head, e)?.and_then(|(_, config)| {
                if types::EXECUTION.contains(&kind) {
                    let break_glass = super::break_glass::is_member(&config, &e.actor.principal);
                    super::execution::judge_execution(&state, e, break_glass)
                } else if types::ROLLBACK.contains(&kind) {
                    super::rollback::judge_rollback(&state, e, &config).map_err(|r| r.to_string())
                } else {
                    super::refusal::judge_refused(&state, e)
                }
            });
            if let Err(why) = judged {
                state.derived = Some(Err(format!(
                    "its recorded `{kind}` (event {}) does not hold: {why}",
                    e.seq
                )));
                break;
            }
            if types::EXECUTION.contains(&kind) {
                state.execute(e);
            } else if types::ROLLBACK.contains(&kind) {
                state.roll_back(e);
            } else {
                state.refused(e);
            }
            i += 1;
            continue;
        }
        if matches!(e.kind.as_str(), types::EXPIRED | types::ESCALATED) {
            // A sweep's record holds only where the engine derives it.
            if let Err(why) = super::rules::judge_transition(&state, e) {
                state.derived = Some(Err(format!(
                    "its recorded `{}` (event {}) does not hold: {why}",
                    e.kind, e.seq
                )));
                break;
            }
            state.transition(e);
            i += 1;
            continue;
        }
        // One version's proposal: `proposed` up to `approval_requested` or `blocked`.
        let mut end = i + 1;
        if e.kind == types::PROPOSED {
            while let Some(next) = events.get(end) {
                if matches!(
                    next.kind.as_str(),
                    types::PROPOSED | types::DECISION | types::EXPIRED | types::ESCALATED
                ) || types::EXECUTION.contains(&next.kind.as_str())
                    || types::ROLLBACK.contains(&next.kind.as_str())
                    || next.kind == types::REFUSED
                {
                    break;
                }
                end += 1;
                if matches!(
                    next.kind.as_str(),
                    types::APPROVAL_REQUESTED | types::BLOCKED
                ) {
                    break;
                }
            }
        }
        let batch: Vec<&Event> = events.get(i..end).unwrap_or_default().iter().collect();
        propose_version(repo, configs, head, tree, &mut state, &batch)?;
        if matches!(state.derived, Some(Err(_))) {
            break;
        }
        i = end;
    }
    Ok((state, events))
}

/// Folds one version's proposal events into `state`: its facts derived from the
/// recorded bytes under the configuration of the tree the recording commit extended,
/// its submitter the signer of that commit. Events before any `proposed` fold as a
/// proposal without one (the request is then inconsistent).
fn propose_version(
    repo: &crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'_>,
    tree: &git2::Tree<'_>,
    state: &mut State,
    batch: &[&Event],
) -> Result<(), WorkflowError> {
    let Some(first) = batch.iter().find(|e| e.kind == types::PROPOSED) else {
        if state.derived.is_some() {
            state.derived = Some(Err(format!(
                "event {} is a proposal event outside any proposal",
                batch.first().map_or(0, |e| e.seq)
            )));
        }
        return Ok(());
    };
    let found = super::history::commit_adding(repo, head, first.seq)?;
    let config = match &found {
        Some((_, Some(parent_tree))) => Some(configs.at(repo, parent_tree)?),
        // Recorded in a commit without a parent: it extends nothing, so there is no
        // configuration it was proposed under.
        Some((_, None)) | None => None,
    };
    // The submitter is whoever signed the commit that recorded the proposal, trusted by
    // the configuration it extended: an unsigned or foreign commit claiming an agent's
    // name submits nothing.
    let signer = match (&found, &config) {
        (Some((commit, _)), Some(config)) => commit_signer(repo, commit, config),
        _ => Err("the proposal was not recorded on top of a configuration".to_owned()),
    };
    state.propose(batch, |digest, submitter, at| {
        let config = config.ok_or_else(|| {
            "the proposal was not recorded on top of a configuration (no parent commit)".to_owned()
        })?;
        let signer = signer?;
        if signer != submitter {
            return Err(format!(
                "the proposal names {submitter} as its actor but its commit is signed by {signer}"
            ));
        }
        let bytes = recorded_blob(repo, tree, digest)?;
        derive_facts(&config, &bytes, submitter, at)
    });
    Ok(())
}

/// A request's status at `now`, folded by the engine from the audit at HEAD: what
/// `hitl status` shows (nothing is locked or recorded; the checked head may advance).
pub struct Status {
    pub state: State,
    pub outcome: Outcome,
    pub events: Vec<Event>,
}

/// The status of `request` at `now` from the audit at HEAD.
///
/// # Errors
/// [`WorkflowError::NotProposed`] for an id the audit does not know; the refusal of
/// [`check_governed`] for a tampered history; an unreadable audit.
pub fn status(
    repo: &crate::audit::AuditRepo,
    request: &str,
    now: DateTime<Utc>,
) -> Result<Status, WorkflowError> {
    let Some(head) = repo.head_for_reading()? else {
        return Err(WorkflowError::NotProposed(request.to_owned()));
    };
    let tree = head.tree().map_err(crate::audit::AuditError::from)?;
    let mut configs = super::config::Configs::default();
    // The same check a decision makes first: a history whose audit or configuration
    // changed as no append or admin may (an event edited in place, an unsigned matrix
    // change) shows no state at all, rather than one read from the tampered files.
    check_governed(repo, &mut configs, &head)?;
    let (state, events) = state_at(repo, &mut configs, &head, &tree, request, now)?;
    let outcome = state.outcome(now);
    if outcome == Outcome::NotProposed {
        return Err(WorkflowError::NotProposed(request.to_owned()));
    }
    Ok(Status {
        state,
        outcome,
        events,
    })
}

/// Judges a recorded decision event again, under the configuration of the tree its
/// commit extended: `Ok(Err(why))` when the engine refuses it.
///
/// # Errors
/// An unreadable audit.
fn judge_recorded(
    repo: &crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'_>,
    state: &State,
    e: &Event,
) -> Result<Result<(), String>, WorkflowError> {
    let (commit, config) = match recorded_by_actor(repo, configs, head, e)? {
        Ok(found) => found,
        Err(why) => return Ok(Err(why)),
    };
    if let Err(why) = decision_signed(repo, head, &commit, &config, e)? {
        return Ok(Err(why));
    }
    Ok(judge_recorded_event(state, &config, e))
}

/// The commit on `head`'s first-parent line that recorded `e`, and the configuration of
/// the tree it extended, once that commit is signed by `e`'s actor under it: who decided
/// (or executed) is who signed; a trusted key cannot record another's event.
/// `Ok(Err(why))` when it is not so.
fn recorded_by_actor<'r>(
    repo: &'r crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'r>,
    e: &Event,
) -> Result<Result<(git2::Commit<'r>, std::sync::Arc<Config>), String>, WorkflowError> {
    let Some((commit, Some(parent_tree))) = super::history::commit_adding(repo, head, e.seq)?
    else {
        return Ok(Err(
            "no commit on top of a configuration recorded it".to_owned()
        ));
    };
    let config = configs.at(repo, &parent_tree)?;
    Ok(match commit_signer(repo, &commit, &config) {
        Ok(signer) if signer == e.actor.principal => Ok((commit, config)),
        Ok(signer) => Err(format!(
            "it names {} as its actor but its commit is signed by {signer}",
            e.actor.principal
        )),
        Err(why) => Err(why),
    })
}

/// The recorded decision is the one its commit added (not edited since), and its
/// detached signature (namespace `hitl`) is by a key the configuration it extended
/// trusts for its actor: what `verify` checks as `signature-*`, checked before the
/// decision counts.
fn decision_signed(
    repo: &crate::audit::AuditRepo,
    head: &git2::Commit<'_>,
    commit: &git2::Commit<'_>,
    config: &Config,
    e: &Event,
) -> Result<Result<(), String>, WorkflowError> {
    use crate::audit::AuditError;
    let path = crate::audit::event_path(e.seq);
    let added = commit.tree().map_err(AuditError::from)?;
    let now = head.tree().map_err(AuditError::from)?;
    let Some(bytes) = repo.read(&added, &path)? else {
        return Ok(Err(format!("its commit does not hold `{path}`")));
    };
    if repo.read(&now, &path)?.as_deref() != Some(bytes.as_slice()) {
        return Ok(Err(format!("`{path}` was changed after it was recorded")));
    }
    let Some(sig) = repo.read(&added, &crate::audit::sig_path(e.seq))? else {
        return Ok(Err("it has no detached signature".to_owned()));
    };
    let at = match parse_at(&e.at) {
        Ok(at) => at,
        Err(why) => return Ok(Err(why)),
    };
    let key = match crate::signing::verify(
        &String::from_utf8_lossy(&sig),
        crate::signing::NAMESPACE,
        &bytes,
    ) {
        Ok(key) => key,
        Err(why) => {
            return Ok(Err(format!(
                "its detached signature does not verify: {why}"
            )));
        }
    };
    let (allowed, revoked) = match config.trust.as_ref() {
        Ok(t) => t,
        Err(why) => return Ok(Err(why.clone())),
    };
    Ok(crate::signing::trusted_principal(
        allowed,
        revoked,
        &key,
        Some(&e.actor.principal),
        crate::signing::NAMESPACE,
        at,
    )
    .map(|_| ())
    .map_err(|u| format!("its detached signature: {}", u.message)))
}

/// A recorded blob by its digest, checked against it.
///
/// # Errors
/// Missing, unreadable, or not the bytes the digest names.
pub fn recorded_blob(
    repo: &crate::audit::AuditRepo,
    tree: &git2::Tree<'_>,
    digest: &str,
) -> Result<Vec<u8>, String> {
    let bytes = repo
        .blob(tree, digest)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the recorded proposal `{digest}` is missing"))?;
    if digest.strip_prefix("sha256:") != Some(crate::audit::sha256_hex(&bytes).as_str()) {
        return Err(format!(
            "the recorded proposal `{digest}` was edited: its bytes no longer match the digest"
        ));
    }
    Ok(bytes)
}

/// The principal whose key signed `commit` (git's SSH signature, namespace `git`),
/// trusted by the signer files of `config` (the configuration the commit extends).
///
/// # Errors
/// Unsigned, a bad signature, or a key that configuration does not trust.
pub fn commit_signer(
    repo: &crate::audit::AuditRepo,
    commit: &git2::Commit<'_>,
    config: &Config,
) -> Result<String, String> {
    let (sig, data) = repo
        .repo
        .extract_signature(&commit.id(), Some("gpgsig"))
        .map_err(|_| format!("commit {} is not signed", commit.id()))?;
    let at = DateTime::<Utc>::from_timestamp(commit.time().seconds(), 0)
        .ok_or_else(|| format!("commit {} has a time out of range", commit.id()))?;
    let key = crate::signing::verify(
        &String::from_utf8_lossy(&sig),
        crate::signing::GIT_NAMESPACE,
        &data,
    )
    .map_err(|e| format!("commit {}: {e}", commit.id()))?;
    let (allowed, revoked) = config.trust.as_ref().map_err(Clone::clone)?;
    crate::signing::trusted_principal(
        allowed,
        revoked,
        &key,
        None,
        crate::signing::GIT_NAMESPACE,
        at,
    )
    .map_err(|u| format!("commit {}: {}", commit.id(), u.message))
}

/// The file in git's folder naming the newest commit whose configuration was found
/// governed: a decision checks only the commits after it.
const CHECKED_FILE: &str = "hitl-config-checked";

/// The checked head is a fact about one workspace (its governed paths and its `audit/`):
/// a workspace in a subfolder keeps its own, so that a walk made for a sibling never
/// vouches for commits it did not judge for this one.
fn checked_file(repo: &crate::audit::AuditRepo) -> std::path::PathBuf {
    local_file(repo, CHECKED_FILE)
}

/// A file of this clone's own about one workspace, in git's folder: `name`, or
/// `name-<tag>` for a workspace in a subfolder (its own, never a sibling's).
pub(crate) fn local_file(repo: &crate::audit::AuditRepo, name: &str) -> std::path::PathBuf {
    if repo.prefix.is_empty() {
        return repo.repo.path().join(name);
    }
    let tag = crate::audit::sha256_hex(repo.prefix.as_bytes());
    repo.repo.path().join(format!("{name}-{}", &tag[..16]))
}

/// Checks, under the audit lock, that the configuration at `head` was reached only
/// through commits the governance rule allows; remembers `head` once it was.
///
/// # Errors
/// [`WorkflowError::ConfigUnauthorized`] naming the first commit that breaks the rule.
pub fn check_governed(
    repo: &crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'_>,
) -> Result<(), WorkflowError> {
    governed_since(repo, configs, head, None)
}

/// Adopts a kept checkpoint in a clone, so that its governance check starts at the
/// checkpoint's commit instead of the root (docs/ci.md):
/// - its signer must be trusted for `hitl-checkpoint` by `anchor`, the signer file kept
///   with the checkpoint outside the repository (never by the history it vouches for:
///   a commit there could name any key), and not revoked, neither in the checkpoint's
///   commit nor at HEAD;
/// - the checkpoint must be this workspace's: its event `seq` in the commit's tree is
///   the one it names (by sha256), and the last one there;
/// - HEAD must extend the commit along its first parents, and every commit since is
///   judged by the governance rule; then HEAD is remembered as checked.
///
/// A commit id names all of its ancestry, so a history replaced from its root does not
/// contain the commit. A clone that has checked a head before keeps its own (a rewind
/// since is refused as always).
///
/// # Errors
/// [`WorkflowError::CheckpointUntrusted`] for a checkpoint this clone cannot hold to
/// its history; [`WorkflowError::NotExtending`] when HEAD does not extend its commit;
/// the governance check's errors.
pub fn adopt_checkpoint(
    repo: &crate::audit::AuditRepo,
    checkpoint: &crate::audit::checkpoint::Checkpoint,
    signer: &ssh_key::PublicKey,
    anchor: &crate::signing::AllowedSigners,
    now: DateTime<Utc>,
) -> Result<(String, String), WorkflowError> {
    let not_here = |why: String| WorkflowError::CheckpointUntrusted { why };
    let commit = git2::Oid::from_str(&checkpoint.head.commit)
        .map_err(|e| not_here(format!("its commit: {e}")))?;
    let tree = repo
        .repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|_| {
            not_here(format!(
                "it vouches for commit {commit}, which this clone does not have (fetch it first, or this is another history)"
            ))
        })?;
    let head = repo
        .head_for_reading()?
        .ok_or_else(|| WorkflowError::NotExtending {
            checkpoint: commit.to_string(),
            head: "(no commit)".to_owned(),
        })?;
    let head_tree = head.tree().map_err(crate::audit::AuditError::from)?;
    let mut principal = None;
    for t in [&tree, &head_tree] {
        let (_, revoked) = super::config::trust_of(repo, t).map_err(&not_here)?;
        let p = crate::signing::trusted_principal(
            anchor,
            &revoked,
            signer,
            None,
            crate::audit::checkpoint::CHECKPOINT_NAMESPACE,
            now,
        )
        .map_err(|u| {
            not_here(format!(
                "its signer is not trusted by the signer file given: {}",
                u.message
            ))
        })?;
        principal = Some(p);
    }
    // This workspace's checkpoint: its last event at that commit is the one it names.
    let seq = checkpoint.head.seq;
    let event = repo.read(&tree, &crate::audit::event_path(seq))?;
    let next = repo.read(&tree, &crate::audit::event_path(seq + 1))?;
    if event.as_deref().map(crate::audit::sha256_hex).as_deref() != Some(&checkpoint.head.event)
        || next.is_some()
    {
        return Err(not_here(format!(
            "its event {seq} is not this workspace's last event at commit {commit}: it checkpoints another workspace or another head"
        )));
    }
    if super::history::on_first_parent_line(&head, commit).is_err() {
        return Err(WorkflowError::NotExtending {
            checkpoint: commit.to_string(),
            head: head.id().to_string(),
        });
    }
    let mut configs = super::config::Configs::default();
    governed_since(repo, &mut configs, &head, Some(commit))?;
    Ok((principal.unwrap_or_default(), head.id().to_string()))
}

/// [`check_governed`], walking down to this clone's checked head, else to `pinned` (a
/// checkpoint's commit HEAD extends), else to the root.
fn governed_since(
    repo: &crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'_>,
    pinned: Option<git2::Oid>,
) -> Result<(), WorkflowError> {
    let file = checked_file(repo);
    // A checked commit is trusted only while it is still on the line from HEAD: after a
    // reset or a rewrite, everything is checked again.
    let checked = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| git2::Oid::from_str(s.trim()).ok());
    // A history that no longer extends the head this clone last decided on was rewound
    // or replaced (a force push can erase decisions, revocations, role removals): fail
    // closed until someone who knows why says so.
    if let Some(id) = checked
        && id != head.id()
        && !repo
            .repo
            .graph_descendant_of(head.id(), id)
            .unwrap_or(false)
    {
        return Err(WorkflowError::Rewound {
            checked: id.to_string(),
            head: head.id().to_string(),
            file: file.display().to_string(),
        });
    }
    let stop = checked.or(pinned);
    // A first decision in a fresh clone walks the whole history: each commit is read
    // once, so libgit2's object cache would only hold memory (hundreds of MB at
    // 100,000 events).
    let long_walk = stop.is_none();
    if long_walk {
        git2::opts::enable_caching(false);
    }
    let violation = super::history::config_violation_since(repo, configs, head, stop);
    if long_walk {
        git2::opts::enable_caching(true);
    }
    if let Some((commit, reason)) = violation? {
        if reason == super::history::REWOUND_MARK
            && let Some(id) = checked
        {
            return Err(WorkflowError::Rewound {
                checked: id.to_string(),
                head: head.id().to_string(),
                file: file.display().to_string(),
            });
        }
        return Err(match reason.strip_prefix(super::history::AUDIT_MARK) {
            Some(reason) => WorkflowError::AuditTampered {
                commit: commit.to_string(),
                reason: reason.to_owned(),
            },
            None => WorkflowError::ConfigUnauthorized {
                commit: commit.to_string(),
                reason,
            },
        });
    }
    // Only a speed-up: failing to remember costs a longer walk next time. A head
    // already remembered is not written again (`check` runs on every deploy).
    if checked != Some(head.id()) {
        write_checked(&file, head.id());
    }
    Ok(())
}

/// Writes the checked head through a temporary file and a rename: a reader (another
/// process, under the lock, while this one remembers its own commit outside it) sees
/// the old id or the new one, never a truncated file, which would read as "nothing
/// checked" and cost a walk of the whole history. Only a speed-up: a failure costs a
/// longer walk next time.
fn write_checked(file: &Path, id: git2::Oid) {
    write_local(file, format!("{id}\n").as_bytes());
}

/// Writes a file of [`local_file`] through a temporary file and a rename (readers see
/// the old content or the new, never a truncated file). Only a speed-up: a failure is
/// ignored. The temporary file is this thread's own (the folds of `queue` and `stats`
/// run on several, and each may write the seq index).
pub(crate) fn write_local(file: &Path, bytes: &[u8]) {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = file.with_extension(format!("tmp.{}.{n}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_err() || std::fs::rename(&tmp, file).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Remembers `appended`, which this process has just appended on top of a head that
/// [`check_governed`] checked, as checked too: its signer was judged for both the event
/// and the commit namespace under the configuration it extends, and an append only adds
/// audit files. The next decision then walks no commit at all. Only when the file still
/// names the commit's parent: another process that appended since keeps its own, newer
/// head (and an older one would only cost a longer walk). Its events' seqs go into this
/// clone's index of the commits that added them ([`super::seq_index`]).
pub fn remember_appended(repo: &crate::audit::AuditRepo, appended: &crate::audit::Appended) {
    let commit = appended.commit;
    let file = checked_file(repo);
    let parent = repo
        .repo
        .find_commit(commit)
        .ok()
        .and_then(|c| c.parent_id(0).ok());
    let checked = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| git2::Oid::from_str(s.trim()).ok());
    if parent.is_some() && checked == parent {
        write_checked(&file, commit);
    }
    if let (Some((_, first)), Some((_, last))) = (appended.events.first(), appended.events.last()) {
        super::seq_index::remember(repo, commit, first.seq, last.seq);
    }
}

/// Judges a new decision under the audit lock, from the tree it extends: the
/// configuration at HEAD must be governed, the request's state is folded and derived,
/// and [`judge_decision`] decides.
///
/// # Errors
/// The [`WorkflowError`] of the rule that refuses it.
pub fn judge_new_decision(
    repo: &crate::audit::AuditRepo,
    head: Option<&git2::Commit<'_>>,
    tree: &git2::Tree<'_>,
    signer: &ssh_key::PublicKey,
    d: &Decision<'_>,
) -> Result<NewDecision, WorkflowError> {
    let Some(head) = head.cloned() else {
        return Err(WorkflowError::NotProposed(d.request.to_owned()));
    };
    let mut configs = super::config::Configs::default();
    check_governed(repo, &mut configs, &head)?;
    let current = configs.at(repo, tree)?;
    signer_trusted(&current, signer, d.principal, d.at)?;
    let (state, events) = state_at(repo, &mut configs, &head, tree, d.request, d.at)?;
    let role = judge_decision(&state, &current, d)?;
    Ok(NewDecision {
        state,
        events,
        role,
        config: current,
    })
}

/// What [`judge_new_decision`] accepted: the request's state and events, the role the
/// decision is made in, and the configuration it is made under.
pub struct NewDecision {
    pub state: State,
    pub events: Vec<Event>,
    pub role: String,
    pub config: std::sync::Arc<super::config::Config>,
}

/// The signing key, under the signer files of the configuration the new commit
/// extends (read under the lock), at `now`: the one trust function decides, again, that
/// it acts for `principal`, for the event's signature and for the commit's.
pub(crate) fn signer_trusted(
    config: &Config,
    signer: &ssh_key::PublicKey,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<(), WorkflowError> {
    // The event's signature (namespace `hitl`) and the commit's (`git`): a key trusted
    // for only one of them would record a commit the audit rule refuses afterwards.
    trusted_for(
        config,
        signer,
        principal,
        &[crate::signing::NAMESPACE, crate::signing::GIT_NAMESPACE],
        now,
    )
}

/// An approver's key must also be trusted for the approval namespace (`hitl-approval`):
/// it signs the approval scope, which `hitl check` verifies offline; an approval whose
/// signature no host could accept is refused now rather than recorded.
///
/// # Errors
/// [`WorkflowError::Untrusted`], naming the namespace.
pub fn approval_signer_trusted(
    config: &Config,
    signer: &ssh_key::PublicKey,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<(), WorkflowError> {
    trusted_for(
        config,
        signer,
        principal,
        &[crate::approval::NAMESPACE],
        now,
    )
}

/// `signer` acts for `principal` in each of `namespaces` under `config`'s signer files.
fn trusted_for(
    config: &Config,
    signer: &ssh_key::PublicKey,
    principal: &str,
    namespaces: &[&str],
    now: DateTime<Utc>,
) -> Result<(), WorkflowError> {
    let untrusted = |reason: String| WorkflowError::Untrusted {
        principal: principal.to_owned(),
        reason,
    };
    let (allowed, revoked) = config.trust.as_ref().map_err(|e| untrusted(e.clone()))?;
    for namespace in namespaces {
        crate::signing::trusted_principal(
            allowed,
            revoked,
            signer,
            Some(principal),
            namespace,
            now,
        )
        .map_err(|u| untrusted(u.message))?;
    }
    Ok(())
}

/// The principal `key` acts for under the signer files of `config` at `now` (namespace
/// `hitl`): who a command that only reads (`queue`) speaks for.
///
/// # Errors
/// [`WorkflowError::Untrusted`] for a key the signer files do not trust.
pub fn trusted_actor(
    config: &Config,
    key: &ssh_key::PublicKey,
    now: DateTime<Utc>,
) -> Result<String, WorkflowError> {
    let untrusted = |reason: String| WorkflowError::Untrusted {
        principal: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        reason,
    };
    let (allowed, revoked) = config.trust.as_ref().map_err(|e| untrusted(e.clone()))?;
    crate::signing::trusted_principal(allowed, revoked, key, None, crate::signing::NAMESPACE, now)
        .map_err(|u| untrusted(u.message))
}

/// What [`judge_new_proposal`] accepted: the evidence pack assembled under the
/// configuration at HEAD, and the events and blobs to record.
pub struct NewProposal {
    pub pack: EvidencePack,
    pub proposal: super::Proposal,
}

/// Judges a new proposal under the audit lock, from the tree it extends: the
/// configuration at HEAD must be governed; the id must be new; the submitter must be an
/// agent (when the matrix lists agents) and never an admin or a member of a role (who
/// submits does not decide); the evidence pack is assembled under the configuration at
/// HEAD at `now`.
///
/// # Errors
/// The [`WorkflowError`] of the rule that refuses it.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one fact of the proposal"
)]
pub fn judge_new_proposal(
    repo: &crate::audit::AuditRepo,
    head: Option<&git2::Commit<'_>>,
    tree: &git2::Tree<'_>,
    signer: &ssh_key::PublicKey,
    file: &Path,
    bytes: &[u8],
    submitter: &str,
    now: DateTime<Utc>,
) -> Result<NewProposal, WorkflowError> {
    let mut configs = super::config::Configs::default();
    if let Some(head) = head {
        check_governed(repo, &mut configs, head)?;
    }
    let config = configs.at(repo, tree)?;
    signer_trusted(&config, signer, submitter, now)?;
    let inconsistent = |request: &str, message: String| WorkflowError::Inconsistent {
        request: request.to_owned(),
        message,
    };
    let matrix = config.matrix().map_err(|m| inconsistent("?", m))?;
    submitter_rule(matrix, submitter).map_err(|reason| WorkflowError::NotAnAgent {
        principal: submitter.to_owned(),
        reason,
    })?;
    let (_, mut pack) =
        derive_from(&config, file, bytes, submitter, now).map_err(|m| inconsistent("?", m))?;
    let id = pack.request.clone();
    // A known id takes a new version only where its latest one allows it; a version
    // after one drawn for sampled review is drawn too.
    let version = match head {
        Some(head) if !repo.request_seqs(tree, &id)?.is_empty() => {
            let (state, _) = state_at(repo, &mut configs, head, tree, &id, now)?;
            if let Some(Err(message)) = &state.derived {
                return Err(inconsistent(&id, message.clone()));
            }
            let digest = format!("sha256:{}", crate::audit::sha256_hex(bytes));
            let version = state.next_version(&id, &digest, submitter, now)?;
            if matches!(&state.derived, Some(Ok(d)) if d.review_owed()) {
                crate::classify::carry_sample(&mut pack.classification);
            }
            version
        }
        _ => 1,
    };
    let settings = config
        .settings
        .as_ref()
        .map_err(|e| inconsistent(&id, e.clone()))?;
    let r = request::parse(
        file,
        bytes,
        &matrix.systems,
        settings.limits.max_request_bytes,
    )
    .map_err(|d| inconsistent(&id, d.to_string()))?;
    // A request nobody could ever decide is not recorded (its id stays free).
    if r.expires_at <= now {
        return Err(WorkflowError::ProposedExpired {
            request: id,
            expires_at: r
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }
    let versions = crate::audit::ConfigVersions {
        matrix: config.matrix_digest.clone(),
        policies: config.policy_digest.clone(),
        tool: format!("hitl {}", env!("CARGO_PKG_VERSION")),
    };
    let proposal = super::proposal(matrix, &r, bytes, &pack, submitter, &versions, version)
        .map_err(|e| inconsistent(&id, e.to_string()))?;
    Ok(NewProposal { pack, proposal })
}
