//! The engine run over a recorded history, for `verify`: every proposal derived again
//! under the configuration in force when it was recorded, every decision judged by the
//! same [`engine::judge_decision`] that `approve` and `reject` call.
//!
//! `verify` reads the event files once (the chain); it keeps a slim copy of the events
//! the engine needs ([`Recorded::keep`]) and learns from the history walk which tree
//! each event's commit extends ([`ConfigLine`]). Then [`judge`] folds them in order.

use std::collections::HashMap;

use git2::{Oid, Tree};
use serde_json::Map;

use super::config::{ConfigKey, Configs};
use super::engine::{self, State};
use super::types;
use crate::audit::{AuditError, AuditRepo, Event};

/// The fields of each event type the engine reads; the rest is not kept.
fn kept_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        types::PROPOSED => &["requested_by", "submitted_by", "proposal", "version"],
        types::CLASSIFIED => &["tier"],
        types::POLICY_CHECKED => &["decision", "policy"],
        types::APPROVAL_REQUESTED => &[
            "tier",
            "eligible",
            "approvals_required",
            "self_approval",
            "expires_at",
            "evidence_pack",
            "sample",
        ],
        types::DECISION => &[
            "decision",
            "role",
            "reason_code",
            "proposal",
            "evidence_pack",
            "comment",
            "review_approvals",
            "review_roles",
            "review_due",
            "scope_signature",
            "approval_id",
        ],
        // The engine derives a sweep's facts; it reads only the type and the time.
        types::EXPIRED | types::ESCALATED => &[],
        types::SPENT => &["operator"],
        types::EXECUTED => &["exit_code"],
        types::VERIFIED => &["result"],
        types::ROLLBACK_STARTED => &["operator"],
        types::ROLLED_BACK => &["exit_code"],
        types::REFUSED => &["command", "refusal"],
        _ => &[],
    }
}

/// The events the engine needs, slimmed, in seq order.
#[derive(Default)]
pub struct Recorded {
    events: Vec<Event>,
}

impl Recorded {
    /// Keeps what the engine needs of one event (in seq order).
    pub fn keep(&mut self, e: &Event) {
        if !matches!(
            e.kind.as_str(),
            types::PROPOSED
                | types::CLASSIFIED
                | types::POLICY_CHECKED
                | types::APPROVAL_REQUESTED
                | types::BLOCKED
                | types::DECISION
                | types::EXPIRED
                | types::ESCALATED
                | types::SPENT
                | types::EXECUTED
                | types::VERIFIED
                | types::REVOKED
                | types::ROLLBACK_APPROVED
                | types::ROLLBACK_STARTED
                | types::ROLLED_BACK
                | types::REFUSED
        ) {
            return;
        }
        let mut fields = Map::new();
        for name in kept_fields(&e.kind) {
            if let Some(v) = e.fields.get(*name) {
                fields.insert((*name).to_owned(), v.clone());
            }
        }
        self.events.push(Event {
            seq: e.seq,
            prev: String::new(),
            kind: e.kind.clone(),
            request: e.request.clone(),
            at: e.at.clone(),
            actor: e.actor.clone(),
            // The versions an event claims are not read by the engine (it finds the
            // configuration in the history): not kept.
            config: crate::audit::ConfigVersions {
                matrix: String::new(),
                policies: String::new(),
                tool: String::new(),
            },
            fields,
        });
    }
}

/// For each commit that added events: the first seq it added and the tree it extends
/// (its first parent's, with that tree's [`ConfigKey`]; `None` for a commit without a
/// parent).
#[derive(Default)]
pub struct ConfigLine {
    starts: Vec<(u64, Option<(Oid, ConfigKey)>)>,
}

impl ConfigLine {
    /// Records that a commit extending `parent_tree` added events from `first_seq` on.
    pub fn add(&mut self, first_seq: u64, parent_tree: Option<(Oid, ConfigKey)>) {
        self.starts.push((first_seq, parent_tree));
    }

    /// The tree the commit that added `seq` extends: `Ok(None)` for a root commit,
    /// `Err` when no commit is known to have added it.
    fn tree_for(&self, seq: u64) -> Result<Option<(Oid, ConfigKey)>, ()> {
        let i = self.starts.partition_point(|(s, _)| *s <= seq);
        i.checked_sub(1)
            .and_then(|i| self.starts.get(i))
            .map(|(_, t)| *t)
            .ok_or(())
    }

    fn sort(&mut self) {
        self.starts.sort_by_key(|(s, _)| *s);
    }
}

/// The configuration in force for the event `seq`, or why there is none.
fn config_for(
    repo: &AuditRepo,
    configs: &mut Configs,
    line: &ConfigLine,
    seq: u64,
) -> Result<Result<std::sync::Arc<super::config::Config>, String>, AuditError> {
    match line.tree_for(seq) {
        Ok(Some((id, key))) => Ok(Ok(configs.by_key(repo, key, id)?)),
        Ok(None) => Ok(Err(
            "it was recorded in a commit without a parent, on no configuration".to_owned(),
        )),
        Err(()) => Ok(Err("no commit of the history added it".to_owned())),
    }
}

/// One finding of the engine on the recorded history: (seq, code, reason).
pub type Finding = (u64, &'static str, String);

/// What the fold does, in order: fold a proposal (its events and the facts derived
/// for it), or judge a decision.
enum Step {
    Propose(Vec<Event>, usize),
    Decide(Box<Event>),
    /// A sweep's `expired` or `escalated`.
    Transition(Box<Event>),
    /// `spent`, `executed`, `verified` or `revoked`.
    Execute(Box<Event>),
    /// `rollback_approved`, `rollback_started` or `rolled_back`.
    RollBack(Box<Event>),
    /// A recorded refusal of `check` or `exec`.
    Refused(Box<Event>),
}

/// One derivation to run: the proposal's digest, signer, time and seq.
struct Job {
    digest: String,
    submitter: String,
    at: Result<chrono::DateTime<chrono::Utc>, String>,
    seq: u64,
}

/// Derives the facts of each job, on all cores (each thread with its own repository and
/// configurations: the policy engine is not shared).
fn derive_all(
    repo: &AuditRepo,
    head_tree: Oid,
    line: &ConfigLine,
    jobs: &[Job],
) -> Result<Vec<Result<engine::Derived, String>>, AuditError> {
    let run = |r: &AuditRepo,
               part: &[Job]|
     -> Result<Vec<Result<engine::Derived, String>>, AuditError> {
        let mut configs = Configs::default();
        let tree = r.repo.find_tree(head_tree)?;
        let blobs = r.blob_files(&tree)?;
        let mut out = Vec::with_capacity(part.len());
        for j in part {
            let config = config_for(r, &mut configs, line, j.seq)?;
            let derived = (|| {
                let config = config?;
                let at = j.at.clone()?;
                let hex = j.digest.strip_prefix("sha256:").unwrap_or_default();
                let (_, oid) = blobs
                    .get(hex)
                    .ok_or_else(|| format!("the recorded proposal `{}` is missing", j.digest))?;
                let blob = r.repo.find_blob(*oid).map_err(|e| e.to_string())?;
                let bytes = blob.content();
                if crate::audit::sha256_hex(bytes) != hex {
                    return Err(format!(
                        "the recorded proposal `{}` was edited: its bytes no longer match the digest",
                        j.digest
                    ));
                }
                engine::derive_facts(&config, bytes, &j.submitter, at)
            })();
            out.push(derived);
        }
        Ok(out)
    };
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let size = jobs.len().div_ceil(threads.clamp(1, 8)).max(256);
    let parts = repo.in_parts(jobs, size, "deriving proposals", run)?;
    Ok(parts.into_iter().flatten().collect())
}

/// Folds the recorded events in order and judges them: a proposal whose recorded facts
/// disagree with the recomputation is `derived-mismatch`; a decision the engine would
/// have refused is `decision-unauthorized`. `head_tree` holds the blobs.
///
/// # Errors
/// An unreadable object.
pub fn judge(
    repo: &AuditRepo,
    head_tree: &Tree<'_>,
    recorded: Recorded,
    mut line: ConfigLine,
    now: Option<chrono::DateTime<chrono::Utc>>,
    approval_files: bool,
) -> Result<Vec<Finding>, AuditError> {
    line.sort();
    // 1. The steps of the fold, and a derivation job for each proposal.
    let mut steps: Vec<Step> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut pending: HashMap<String, Vec<Event>> = HashMap::new();
    let close = |pending: &mut Vec<Event>, steps: &mut Vec<Step>, jobs: &mut Vec<Job>| {
        if pending.is_empty() {
            return;
        }
        let events = std::mem::take(pending);
        let proposed = events.iter().find(|e| e.kind == types::PROPOSED);
        jobs.push(Job {
            digest: proposed
                .and_then(|p| p.field_str("proposal"))
                .unwrap_or_default()
                .to_owned(),
            submitter: proposed
                .map(|p| p.actor.principal.clone())
                .unwrap_or_default(),
            at: proposed.map_or_else(
                || Err("no `proposed` event".to_owned()),
                |p| engine::parse_at(&p.at),
            ),
            seq: events.first().map_or(0, |e| e.seq),
        });
        steps.push(Step::Propose(events, jobs.len() - 1));
    };
    for e in recorded.events {
        let p = pending.entry(e.request.clone()).or_default();
        match e.kind.as_str() {
            types::DECISION => {
                close(p, &mut steps, &mut jobs);
                steps.push(Step::Decide(Box::new(e)));
            }
            types::EXPIRED | types::ESCALATED => {
                close(p, &mut steps, &mut jobs);
                steps.push(Step::Transition(Box::new(e)));
            }
            kind if types::EXECUTION.contains(&kind) => {
                close(p, &mut steps, &mut jobs);
                steps.push(Step::Execute(Box::new(e)));
            }
            kind if types::ROLLBACK.contains(&kind) => {
                close(p, &mut steps, &mut jobs);
                steps.push(Step::RollBack(Box::new(e)));
            }
            types::REFUSED => {
                close(p, &mut steps, &mut jobs);
                steps.push(Step::Refused(Box::new(e)));
            }
            types::PROPOSED if !p.is_empty() => {
                close(p, &mut steps, &mut jobs);
                p.push(e);
            }
            types::APPROVAL_REQUESTED | types::BLOCKED => {
                p.push(e);
                close(p, &mut steps, &mut jobs);
            }
            _ => p.push(e),
        }
    }
    let mut rest: Vec<Vec<Event>> = pending.into_values().filter(|p| !p.is_empty()).collect();
    rest.sort_by_key(|p| p.first().map_or(0, |e| e.seq));
    for mut p in rest {
        close(&mut p, &mut steps, &mut jobs);
    }
    // 2. The derivations, on all cores.
    let mut derived: Vec<Option<Result<engine::Derived, String>>> =
        derive_all(repo, head_tree.id(), &line, &jobs)?
            .into_iter()
            .map(Some)
            .collect();
    // 3. The fold, in order.
    let mut configs = Configs::default();
    let mut out = Vec::new();
    let mut states: HashMap<String, State> = HashMap::new();
    let mut overrides: HashMap<String, u64> = HashMap::new();
    // Each request's accepted approvals of its current version, for its approval file.
    let mut accepted: HashMap<String, Vec<super::approval::Accepted>> = HashMap::new();
    let mut finals: HashMap<String, std::sync::Arc<super::config::Config>> = HashMap::new();
    for step in steps {
        match step {
            Step::Propose(events, job) => {
                let Some(first) = events.first() else {
                    continue;
                };
                let seq = first.seq;
                let state = states.entry(first.request.clone()).or_default();
                let result = derived
                    .get_mut(job)
                    .and_then(Option::take)
                    .unwrap_or_else(|| Err("not derived".to_owned()));
                let refs: Vec<&Event> = events.iter().collect();
                state.propose(&refs, |_, _, _| result);
                if events.iter().any(|e| e.kind == types::PROPOSED) {
                    accepted.insert(first.request.clone(), Vec::new());
                    finals.remove(&first.request);
                }
                if let Some(Err(why)) = &state.derived {
                    out.push((seq, "derived-mismatch", why.clone()));
                }
            }
            Step::Decide(e) => {
                let state = states.entry(e.request.clone()).or_default();
                let why = match config_for(repo, &mut configs, &line, e.seq)? {
                    Err(why) => Some(why),
                    Ok(current) => engine::judge_recorded_event(state, &current, &e).err(),
                };
                // Only an accepted decision counts towards the quorum (or closes it).
                match why {
                    Some(why) => out.push((e.seq, "decision-unauthorized", why)),
                    None => {
                        if e.field_str("decision") == Some(super::Verdict::Override.as_str()) {
                            overrides.insert(e.request.clone(), e.seq);
                        }
                        if e.field_str("decision") == Some(super::Verdict::Approve.as_str())
                            && state.overridden.is_none()
                        {
                            accepted
                                .entry(e.request.clone())
                                .or_default()
                                .push(super::approval::Accepted::of(&e, None));
                        }
                        let was = super::approval::is_approved(state);
                        state.decide(&e);
                        // The configuration the quorum was reached under: the approval
                        // file's change window and digests are its.
                        if !was
                            && super::approval::is_approved(state)
                            && let Ok(current) = config_for(repo, &mut configs, &line, e.seq)?
                        {
                            finals.insert(e.request.clone(), current);
                        }
                    }
                }
            }
            Step::Transition(e) => {
                let state = states.entry(e.request.clone()).or_default();
                match super::rules::judge_transition(state, &e) {
                    Err(why) => out.push((e.seq, "transition-unfounded", why)),
                    Ok(()) => state.transition(&e),
                }
            }
            Step::Execute(e) => {
                let state = states.entry(e.request.clone()).or_default();
                let break_glass = config_for(repo, &mut configs, &line, e.seq)?
                    .is_ok_and(|c| super::break_glass::is_member(&c, &e.actor.principal));
                match super::execution::judge_execution(state, &e, break_glass) {
                    Err(why) => out.push((e.seq, "execution-unfounded", why)),
                    Ok(()) => state.execute(&e),
                }
            }
            Step::RollBack(e) => {
                let state = states.entry(e.request.clone()).or_default();
                let judged = match config_for(repo, &mut configs, &line, e.seq)? {
                    Err(why) => Err(why),
                    Ok(config) => super::rollback::judge_rollback(state, &e, &config)
                        .map_err(|r| r.to_string()),
                };
                match judged {
                    Err(why) => out.push((e.seq, "rollback-unfounded", why)),
                    Ok(()) => state.roll_back(&e),
                }
            }
            // Its signer is its actor: the history's check (`signer-not-actor`).
            Step::Refused(e) => {
                let state = states.entry(e.request.clone()).or_default();
                match super::refusal::judge_refused(state, &e) {
                    Err(why) => out.push((e.seq, "refusal-unfounded", why)),
                    Ok(()) => state.refused(&e),
                }
            }
        }
    }
    // A break-glass override whose review is still owed past its due time.
    if let Some(now) = now {
        for (request, seq) in overrides {
            if let Some(o) = states.get(&request).and_then(|s| s.overridden.as_ref())
                && o.overdue(now)
            {
                out.push((
                    seq,
                    "review-overdue",
                    format!(
                        "the override of `{request}` by {} owes {} review approval(s) from {} by {}; it has {}",
                        o.by,
                        o.required,
                        o.roles.join(", "),
                        o.due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        o.reviews.len()
                    ),
                ));
            }
        }
    }
    // `audit/approvals/` against the fold (for `verify`, which folds every request).
    if approval_files {
        out.extend(super::approval::verify_files(
            repo, head_tree, &states, &accepted, &finals,
        )?);
    }
    out.sort_by_key(|f| f.0);
    Ok(out)
}

/// One request replayed by the engine: its proposal derived again under the
/// configuration of the tree its commit extended, and the engine's findings on its
/// recorded events (the same `verify` reports).
pub struct Replayed {
    /// The commit that recorded the proposal.
    pub commit: Option<Oid>,
    /// The instant it was recorded at.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// The evidence pack assembled again, or why it cannot be.
    pub pack: Result<crate::evidence::EvidencePack, String>,
    pub findings: Vec<Finding>,
}

/// Replays `request` from the audit at `head`.
///
/// # Errors
/// An unreadable audit.
pub fn replay(
    repo: &AuditRepo,
    head: &git2::Commit<'_>,
    request: &str,
) -> Result<Replayed, AuditError> {
    let tree = head.tree()?;
    let events = repo.request_events(&tree, request)?;
    let mut kept = Recorded::default();
    let mut line = ConfigLine::default();
    for e in &events {
        kept.keep(e);
        if let Some((_, parent)) = super::history::commit_adding(repo, head, e.seq)? {
            let key = match &parent {
                Some(t) => Some((t.id(), ConfigKey::of(repo, t)?)),
                None => None,
            };
            line.add(e.seq, key);
        }
    }
    let mut out = Replayed {
        commit: None,
        at: None,
        pack: Err("the request has no `proposed` event".to_owned()),
        findings: Vec::new(),
    };
    // The latest version's proposal (each version's decisions are judged below).
    if let Some(proposed) = events.iter().rev().find(|e| e.kind == types::PROPOSED) {
        let found = super::history::commit_adding(repo, head, proposed.seq)?;
        out.commit = found.as_ref().map(|(c, _)| c.id());
        out.at = engine::parse_at(&proposed.at).ok();
        out.pack = match (&found, out.at) {
            (Some((_, Some(parent))), Some(at)) => {
                let config = super::config::Config::load(repo, parent)?;
                let digest = proposed.field_str("proposal").unwrap_or_default();
                match repo.blob(&tree, digest)? {
                    Some(bytes) => engine::derive_from(
                        &config,
                        std::path::Path::new("proposal"),
                        &bytes,
                        &proposed.actor.principal,
                        at,
                    )
                    .map(|(_, pack)| pack),
                    None => Err(format!("the recorded proposal `{digest}` is missing")),
                }
            }
            (_, None) => Err(format!("`at` is not a time: {:?}", proposed.at)),
            _ => Err("the proposal was not recorded on top of a configuration".to_owned()),
        };
    }
    out.findings = judge(repo, &tree, kept, line, None, false)?;
    Ok(out)
}
