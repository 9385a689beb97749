//! The engine run over a recorded history, for `verify`: every proposal derived again
//! under the configuration in force when it was recorded, every decision judged by the
//! same [`engine::judge_decision`] that `approve` and `reject` call.
//!
//! `verify` reads the event files once (the chain); it keeps a slim copy of the events
//! the engine needs ([`Recorded::keep`]) and learns from the history walk which tree
//! each event's commit extends ([`ConfigLine`]). Then [`judge`] folds them in order.

use std::collections::HashMap;

use git2::{Oid, Tree};
use serde_json::{Map, Value as Json};

use super::config::Configs;
use super::engine::{self, Decision, State};
use super::{Verdict, types};
use crate::audit::{AuditError, AuditRepo, Event};

/// The fields of each event type the engine reads; the rest is not kept.
fn kept_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        types::PROPOSED => &["requested_by", "submitted_by", "proposal"],
        types::CLASSIFIED => &["tier"],
        types::APPROVAL_REQUESTED => &[
            "tier",
            "eligible",
            "approvals_required",
            "self_approval",
            "expires_at",
        ],
        types::DECISION => &["decision", "role", "reason_code"],
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
                | types::APPROVAL_REQUESTED
                | types::BLOCKED
                | types::DECISION
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
            config: e.config.clone(),
            fields,
        });
    }
}

/// For each commit that added events: the first seq it added and the tree it extends
/// (its first parent's; `None` for a commit without a parent).
#[derive(Default)]
pub struct ConfigLine {
    starts: Vec<(u64, Option<Oid>)>,
}

impl ConfigLine {
    /// Records that a commit extending `parent_tree` added events from `first_seq` on.
    pub fn add(&mut self, first_seq: u64, parent_tree: Option<Oid>) {
        self.starts.push((first_seq, parent_tree));
    }

    /// The tree the commit that added `seq` extends: `Ok(None)` for a root commit,
    /// `Err` when no commit is known to have added it.
    fn tree_for(&self, seq: u64) -> Result<Option<Oid>, ()> {
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

/// One finding of the engine on the recorded history: (seq, code, reason).
pub type Finding = (u64, &'static str, String);

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
) -> Result<Vec<Finding>, AuditError> {
    line.sort();
    let mut configs = Configs::default();
    let mut out = Vec::new();
    // Per request: its state, and the proposal events not folded yet.
    let mut states: HashMap<String, (State, Vec<Event>)> = HashMap::new();
    let config_at = |configs: &mut Configs, seq: u64| -> Result<Result<_, String>, AuditError> {
        match line.tree_for(seq) {
            Ok(Some(id)) => {
                let tree = repo.repo.find_tree(id)?;
                Ok(Ok(configs.at(repo, &tree)?))
            }
            Ok(None) => Ok(Err(
                "it was recorded in a commit without a parent, on no configuration".to_owned(),
            )),
            Err(()) => Ok(Err("no commit of the history added it".to_owned())),
        }
    };
    let fold_proposal = |configs: &mut Configs,
                         state: &mut State,
                         pending: &mut Vec<Event>,
                         out: &mut Vec<Finding>|
     -> Result<(), AuditError> {
        if pending.is_empty() {
            return Ok(());
        }
        let events: Vec<&Event> = pending.iter().collect();
        let seq = events.first().map_or(0, |e| e.seq);
        let config = config_at(configs, seq)?;
        state.propose(&events, |digest, submitter, at| {
            let config = config?;
            let bytes = engine::recorded_blob(repo, head_tree, digest)?;
            engine::derive(&config, &bytes, submitter, at).map(|(d, _)| d)
        });
        if let Some(Err(why)) = &state.derived {
            out.push((seq, "derived-mismatch", why.clone()));
        }
        pending.clear();
        Ok(())
    };
    for e in recorded.events {
        let (state, pending) = states.entry(e.request.clone()).or_default();
        match e.kind.as_str() {
            types::DECISION => {
                fold_proposal(&mut configs, state, pending, &mut out)?;
                let verdict = match e.field_str("decision") {
                    Some("approved") => Some(Verdict::Approve),
                    Some("rejected") => Some(Verdict::Reject),
                    _ => None,
                };
                let why = match (verdict, engine::parse_at(&e.at)) {
                    (None, _) => {
                        Some("its `decision` is neither `approved` nor `rejected`".to_owned())
                    }
                    (_, Err(why)) => Some(why),
                    (Some(verdict), Ok(at)) => match config_at(&mut configs, e.seq)? {
                        Err(why) => Some(why),
                        Ok(current) => engine::judge_decision(
                            state,
                            &current,
                            &Decision {
                                request: &e.request,
                                principal: &e.actor.principal,
                                verdict,
                                role: Some(e.field_str("role").unwrap_or_default()),
                                reason_code: e.fields.get("reason_code").and_then(Json::as_str),
                                at,
                            },
                        )
                        .err()
                        .map(|err| err.to_string()),
                    },
                };
                if let Some(why) = why {
                    out.push((e.seq, "decision-unauthorized", why));
                }
                state.decide(&e);
            }
            types::PROPOSED if !pending.is_empty() || state.derived.is_some() => {
                fold_proposal(&mut configs, state, pending, &mut out)?;
                pending.push(e);
            }
            types::APPROVAL_REQUESTED | types::BLOCKED => {
                pending.push(e);
                fold_proposal(&mut configs, state, pending, &mut out)?;
            }
            _ => pending.push(e),
        }
    }
    for (state, pending) in states.values_mut() {
        fold_proposal(&mut configs, state, pending, &mut out)?;
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
            line.add(e.seq, parent.as_ref().map(Tree::id));
        }
    }
    let mut out = Replayed {
        commit: None,
        at: None,
        pack: Err("the request has no `proposed` event".to_owned()),
        findings: Vec::new(),
    };
    if let Some(proposed) = events.iter().find(|e| e.kind == types::PROPOSED) {
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
    out.findings = judge(repo, &tree, kept, line)?;
    Ok(out)
}
