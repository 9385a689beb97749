//! The configuration in force along the audit's history, and the governance rule: a
//! change to the trust configuration (the matrix, `policies/`, `hitl.toml`,
//! `allowed_signers`, `revoked_signers`) is valid only in a commit signed by an admin
//! (the matrix's `governance.admins`) trusted under the configuration before the change.
//! The root of trust (the one commit that brings `allowed_signers` without a parent that
//! has it) is exempt: its trust is pinned, not signed.
//!
//! The audit is linear (a merge that changes it is a `verify` problem of its own), so the
//! configuration in force for an event is that of the first parent of the commit that
//! added it.

use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Commit, Oid, Tree};

use super::config::{ConfigKey, Configs};
use super::seq_index::{self, SeqIndex};
use crate::audit::{AuditError, AuditRepo, event_path};
use crate::signing::{self, GIT_NAMESPACE};

/// Whether `commit`, whose first parent's tree is `parent_tree`, changes the trust
/// configuration without the right: `Some(reason)` when it does. `None` for the root of
/// trust (no parent with `allowed_signers`) and for a commit that changes none of it.
///
/// # Errors
/// An unreadable object.
pub fn config_change_problem(
    repo: &AuditRepo,
    configs: &mut Configs,
    commit: &Commit<'_>,
    tree: &Tree<'_>,
    parent_tree: Option<&Tree<'_>>,
) -> Result<Option<String>, AuditError> {
    let Some(parent_tree) = parent_tree else {
        return Ok(None);
    };
    let before = ConfigKey::of(repo, parent_tree)?;
    if !before.has_allowed_signers() {
        return Ok(None);
    }
    let after = ConfigKey::of(repo, tree)?;
    let changed = before.changed(&after);
    if changed.is_empty() {
        return Ok(None);
    }
    let what = changed
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let config = configs.at(repo, parent_tree)?;
    let Ok(matrix) = config.matrix() else {
        return Ok(Some(format!(
            "changes {what}, but the matrix before it does not load, so nobody may"
        )));
    };
    if matrix.governance.admins.is_empty() {
        return Ok(Some(format!(
            "changes {what}, but the matrix before it names no `governance.admins`, so the configuration is fixed"
        )));
    }
    let Ok((sig, data)) = repo.repo.extract_signature(&commit.id(), Some("gpgsig")) else {
        return Ok(Some(format!(
            "changes {what} in an unsigned commit; only an admin's signed commit may"
        )));
    };
    let Some(at) = DateTime::<Utc>::from_timestamp(commit.time().seconds(), 0) else {
        return Ok(Some("the commit's time is out of range".to_owned()));
    };
    let key = match signing::verify(&String::from_utf8_lossy(&sig), GIT_NAMESPACE, &data) {
        Ok(k) => k,
        Err(e) => return Ok(Some(format!("changes {what}; its signature: {e}"))),
    };
    let (allowed, revoked) = match &config.trust {
        Ok(t) => t,
        Err(e) => return Ok(Some(format!("changes {what}; the trust before it: {e}"))),
    };
    let principal =
        match signing::trusted_principal(allowed, revoked, &key, None, GIT_NAMESPACE, at) {
            Ok(p) => p,
            Err(u) => return Ok(Some(format!("changes {what}; {}", u.message))),
        };
    if matrix.governance.is_admin(&principal) {
        Ok(None)
    } else {
        Ok(Some(format!(
            "changes {what}, signed by {principal}, who is not in `governance.admins` ({})",
            matrix.governance.admins.join(", ")
        )))
    }
}

/// Whether `commit` is on `head`'s first-parent line (`head` itself included); the root
/// that line ends at when it is not.
///
/// # Errors
/// The id of the first-parent line's root, when `commit` is not on it.
pub fn on_first_parent_line(head: &Commit<'_>, commit: Oid) -> Result<(), Oid> {
    let mut c = head.clone();
    while c.id() != commit {
        match c.parents().next() {
            Some(p) => c = p,
            None => return Err(c.id()),
        }
    }
    Ok(())
}

/// The first violation of the governance rule (and of the audit's append rule) among
/// the commits reachable from `head` but not from `stop` (a commit already checked),
/// through every parent, or in the whole history without one: what a decision checks
/// before it trusts the configuration and the audit at HEAD. `stop` must also be on
/// HEAD's first-parent line ([`REWOUND_MARK`] otherwise). Returns the offending commit
/// and why.
///
/// # Errors
/// An unreadable object.
pub fn config_violation_since(
    repo: &AuditRepo,
    configs: &mut Configs,
    head: &Commit<'_>,
    stop: Option<Oid>,
) -> Result<Option<(Oid, String)>, AuditError> {
    let audit = repo.git_path(crate::audit::AUDIT_DIR);
    let audit_of = |t: &Tree<'_>| {
        t.get_path(Path::new(&audit))
            .ok()
            .map(|e| (e.id(), e.filemode()))
    };
    if stop == Some(head.id()) {
        return Ok(None);
    }
    // The head this clone last checked must be on HEAD's first-parent line: reached
    // only through a merge's other parent (or not at all), the history was rewound or
    // replaced.
    if let Some(stop) = stop
        && let Err(root) = on_first_parent_line(head, stop)
    {
        return Ok(Some((root, REWOUND_MARK.to_owned())));
    }
    // Every commit since, through every parent: one reachable only through a merge's
    // second parent (an unsigned commit deleting a rejection, merged back with an audit
    // equal to both parents) is judged like any other, as `verify` judges it.
    let mut walk = repo.repo.revwalk()?;
    walk.push(head.id())?;
    if let Some(stop) = stop {
        walk.hide(stop)?;
    }
    for id in walk {
        let commit = repo.repo.find_commit(id?)?;
        let tree = commit.tree()?;
        // A merge whose configuration or audit differs from any of its parents is what
        // `verify` calls `history-merge`: nothing is decided on it. (A merge whose audit
        // is its first parent's can drop what its second parent recorded: a rejection.)
        if commit.parent_count() > 1 {
            let key = super::config::ConfigKey::of(repo, &tree)?;
            for p in commit.parents() {
                let parent_tree = p.tree()?;
                let changed = ConfigKey::of(repo, &parent_tree)?.changed(&key);
                if !changed.is_empty() {
                    return Ok(Some((
                        commit.id(),
                        format!(
                            "a merge changes {} against its parent {}; the configuration changes in one-parent commits only",
                            changed.join(", "),
                            p.id()
                        ),
                    )));
                }
                if audit_of(&parent_tree) != audit_of(&tree) {
                    return Ok(Some((
                        commit.id(),
                        format!(
                            "{AUDIT_MARK}a merge's audit differs from its parent {}'s; the audit grows in one-parent commits only",
                            p.id()
                        ),
                    )));
                }
            }
        }
        let parent = commit.parents().next();
        let parent_tree = match &parent {
            Some(p) => Some(p.tree()?),
            None => None,
        };
        if let Some(why) =
            config_change_problem(repo, configs, &commit, &tree, parent_tree.as_ref())?
        {
            return Ok(Some((commit.id(), why)));
        }
        if let Some(why) =
            audit_change_problem(repo, configs, &commit, &tree, parent_tree.as_ref())?
        {
            return Ok(Some((commit.id(), format!("{AUDIT_MARK}{why}"))));
        }
    }
    Ok(None)
}

/// What [`config_violation_since`] returns when the head it was to stop at is not on
/// HEAD's first-parent line.
pub const REWOUND_MARK: &str = "rewound";

/// Marks a violation of the audit rule (not the configuration's) in what
/// [`config_violation_since`] returns.
pub const AUDIT_MARK: &str = "audit: ";

/// Whether `commit` changes `audit/` as only an append may: signed by a key the
/// configuration before it trusts, adding plain files and appending to request indexes,
/// never changing or removing anything else. `Some(reason)` when it does not. What a
/// decision reads of the audit rests on this holding for every commit since the head
/// this clone last checked (`verify` checks the same, and more, on the whole history).
///
/// # Errors
/// An unreadable object.
pub fn audit_change_problem(
    repo: &AuditRepo,
    configs: &mut Configs,
    commit: &Commit<'_>,
    tree: &Tree<'_>,
    parent_tree: Option<&Tree<'_>>,
) -> Result<Option<String>, AuditError> {
    let audit = repo.git_path(crate::audit::AUDIT_DIR);
    let id_of = |t: &Tree<'_>| {
        t.get_path(Path::new(&audit))
            .ok()
            .map(|e| (e.id(), e.filemode()))
    };
    let before = parent_tree.and_then(id_of);
    let after = id_of(tree);
    if before == after {
        return Ok(None);
    }
    let Some(parent_tree) = parent_tree else {
        return Ok(Some(
            "a commit without a parent records audit events".to_owned(),
        ));
    };
    let config = configs.at(repo, parent_tree)?;
    let signer = match super::engine::commit_signer(repo, commit, &config) {
        Ok(signer) => signer,
        Err(why) => return Ok(Some(format!("it changes the audit, but {why}"))),
    };
    // Only the folders whose ids differ are opened (a diff with a pathspec reads far
    // more), so the cost is that of the few paths an append touches.
    let Ok(new) = tree.get_path(Path::new(&audit)) else {
        return Ok(Some("it removes `audit`".to_owned()));
    };
    if new.kind() != Some(git2::ObjectType::Tree) {
        return Ok(Some("`audit` is not a folder".to_owned()));
    }
    let new = repo.repo.find_tree(new.id())?;
    // The first append finds no `audit` before it: everything in it is added.
    let old = match parent_tree.get_path(Path::new(&audit)) {
        Ok(e) if e.kind() == Some(git2::ObjectType::Tree) => Some(repo.repo.find_tree(e.id())?),
        Ok(_) => return Ok(Some("`audit` was not a folder before".to_owned())),
        Err(_) => None,
    };
    let mut added = Vec::new();
    if let Some(why) = append_only(
        repo,
        old.as_ref(),
        &new,
        crate::audit::AUDIT_DIR,
        &mut added,
    )? {
        return Ok(Some(why));
    }
    approvals_added_rightly(repo, &config, &signer, tree, &added)
}

/// An approval file is added only as `approvals/<id>.json`, by the commit that adds an
/// approving decision of that request (the final approval's append): anything else
/// under `approvals/` would block that append for good, or stand for an approval
/// nobody gave.
fn approvals_added_rightly(
    repo: &AuditRepo,
    config: &super::config::Config,
    signer: &str,
    tree: &Tree<'_>,
    added: &[(String, git2::Oid)],
) -> Result<Option<String>, AuditError> {
    let dir = format!("{}/approvals/", crate::audit::AUDIT_DIR);
    let events = format!("{}/events/", crate::audit::AUDIT_DIR);
    for (path, file) in added.iter().filter(|(p, _)| p.starts_with(&dir)) {
        let name = path.get(dir.len()..).unwrap_or_default();
        let Some(request) = name
            .strip_suffix(".json")
            .filter(|id| crate::request::is_valid_id(id))
        else {
            return Ok(Some(format!(
                "it adds `{path}`, which is no approval file (`approvals/<request id>.json`)"
            )));
        };
        let refused = |why: &str| {
            Ok(Some(format!(
                "it adds `{path}`, but {why}: only the final approval's commit writes it"
            )))
        };
        // The approving decision this commit adds for the request, by the commit's
        // signer, listed in the request's index.
        let mut decided = None;
        for (_, id) in added
            .iter()
            .filter(|(p, _)| p.starts_with(&events) && p.ends_with(".json"))
        {
            let blob = repo.repo.find_blob(*id)?;
            if let Ok(e) = serde_json::from_slice::<crate::audit::Event>(blob.content())
                && e.kind == super::types::DECISION
                && e.request == request
                && e.field_str("decision") == Some(super::Verdict::Approve.as_str())
            {
                decided = Some(e);
            }
        }
        let Some(decision) = decided else {
            return refused(&format!("no approval of `{request}`"));
        };
        if decision.actor.principal != signer {
            return refused(&format!(
                "its approval of `{request}` is {}'s and the commit {signer}'s",
                decision.actor.principal
            ));
        }
        let approver = config
            .matrix()
            .is_ok_and(|m| !m.governance.is_agent(signer) && m.roles_of(signer).next().is_some());
        if !approver {
            return refused(&format!("{signer} holds no role that approves"));
        }
        let listed = repo
            .read(tree, &crate::audit::request_index_path(request))?
            .is_some_and(|index| {
                String::from_utf8_lossy(&index)
                    .lines()
                    .any(|l| l.trim() == decision.seq.to_string())
            });
        if !listed {
            return refused(&format!(
                "its approval of `{request}` is not in the request's index"
            ));
        }
        // The file names that decision as its final one and its signer as the last
        // approver. Whether it completes the quorum, and every other field, is for the
        // engine's fold: `check`, `exec` and `verify` compare the file with it.
        let bytes = repo.repo.find_blob(*file)?.content().to_vec();
        let names_it = crate::approval::check::parse(path, &bytes).is_ok_and(|parsed| {
            let p = parsed.predicate();
            parsed.request() == request
                && p.final_decision.seq == decision.seq
                && p.approvers.last().is_some_and(|a| a.principal == signer)
        });
        if !names_it {
            return refused("the file does not name this approval as its final one");
        }
    }
    Ok(None)
}

/// The first change from `old` to `new` (the folder `rel` of the audit) that is not an
/// append: a removed or retyped entry, a changed file other than a request index that
/// only grew, anything added that is not a plain file.
fn append_only(
    repo: &AuditRepo,
    old: Option<&Tree<'_>>,
    new: &Tree<'_>,
    rel: &str,
    added: &mut Vec<(String, git2::Oid)>,
) -> Result<Option<String>, AuditError> {
    let index_dir = format!("{}/requests", crate::audit::AUDIT_DIR);
    let not_append = |path: &str| {
        Some(format!(
            "it changes `{path}` in the audit other than by appending (the audit is append-only)"
        ))
    };
    if let Some(old) = old {
        for e in old {
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            if new.get_name_bytes(e.name_bytes()).is_none() {
                return Ok(not_append(&format!("{rel}/{name}")));
            }
        }
    }
    for e in new {
        let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
        let path = format!("{rel}/{name}");
        let before = old.and_then(|o| o.get_name_bytes(e.name_bytes()));
        if let Some(b) = &before
            && b.id() == e.id()
            && b.filemode() == e.filemode()
        {
            continue;
        }
        match (e.kind(), e.filemode()) {
            (Some(git2::ObjectType::Tree), 0o040_000) => {
                let sub_old = match &before {
                    Some(b) if b.kind() == Some(git2::ObjectType::Tree) => {
                        Some(repo.repo.find_tree(b.id())?)
                    }
                    Some(_) => return Ok(not_append(&path)),
                    None => None,
                };
                let sub_new = repo.repo.find_tree(e.id())?;
                if let Some(why) = append_only(repo, sub_old.as_ref(), &sub_new, &path, added)? {
                    return Ok(Some(why));
                }
            }
            (Some(git2::ObjectType::Blob), 0o100_644) => {
                if before.is_none() {
                    added.push((path.clone(), e.id()));
                }
                if let Some(b) = &before {
                    let grew = b.kind() == Some(git2::ObjectType::Blob)
                        && b.filemode() == 0o100_644
                        && path.starts_with(&format!("{index_dir}/"))
                        && repo
                            .repo
                            .find_blob(e.id())?
                            .content()
                            .starts_with(repo.repo.find_blob(b.id())?.content());
                    if !grew {
                        return Ok(not_append(&path));
                    }
                }
            }
            _ => return Ok(not_append(&path)),
        }
    }
    Ok(None)
}

/// The commit on the first-parent line from `head` (HEAD) that added event `seq`, and
/// the tree it extends (its first parent's; `None` for a root commit).
///
/// Walks commit headers down the line from `head`. Where the walk meets the anchor of
/// this clone's index ([`super::seq_index`]), the commit the index names is taken once
/// the trees confirm it; otherwise the first commit whose `Hitl-Seq:` trailer claims the
/// seq, once the trees confirm that; otherwise the first commit whose first parent does
/// not hold the event. What the walk learns on the way goes into the index.
///
/// # Errors
/// An unreadable object; `Ok(None)` when no commit on the line added it. Never the
/// index: a missing, stale or corrupt one only means a longer walk.
pub fn commit_adding<'r>(
    repo: &'r AuditRepo,
    head: &Commit<'r>,
    seq: u64,
) -> Result<Option<(Commit<'r>, Option<Tree<'r>>)>, AuditError> {
    let rel = repo.git_path(&event_path(seq));
    let has = |tree: &Tree<'_>| tree.get_path(Path::new(&rel)).is_ok();
    let head_tree = head.tree()?;
    let Ok(in_head) = head_tree.get_path(Path::new(&rel)) else {
        return Ok(None);
    };
    let mut index = SeqIndex::open(repo);
    let anchor = index.as_ref().map(SeqIndex::anchor);
    // The commits walked above the anchor (every one, without it), with their claims:
    // what the index learns from this walk.
    let mut above: Vec<seq_index::Walked> = Vec::new();
    let mut reached = false;
    let mut found = None;
    // Fast path: the index at its anchor, or hitl's `Hitl-Seq:` trailer, which says
    // which seqs a commit adds. Walking commit headers costs little; a record or a
    // claim is used only once the trees confirm it, so a wrong one only sends the search
    // further down.
    let mut c = head.clone();
    loop {
        if !reached && Some(c.id()) == anchor {
            reached = true;
            if let Some(hit) = index.as_mut().and_then(|ix| {
                ix.entry(seq)
                    .and_then(|id| seq_index::confirmed(repo, id, &rel, &in_head))
            }) {
                found = Some((hit, true));
                break;
            }
        }
        if !reached {
            above.push((c.id(), seq_index::claimed(c.message_bytes())));
        }
        if claims_seq(c.message_bytes(), seq) {
            if let Some(parent) = c.parents().next() {
                let parent_tree = parent.tree()?;
                if has(&c.tree()?) && !has(&parent_tree) {
                    found = Some(((c.clone(), Some(parent_tree)), false));
                }
            } else if has(&c.tree()?) {
                found = Some(((c.clone(), None), false));
            }
            break;
        }
        match c.parents().next() {
            Some(p) => c = p,
            None => break,
        }
    }
    let below_anchor = reached;
    // Without a usable index, a walk this deep goes on to the anchor or the root (once:
    // the next search finds the index).
    if !reached && above.len() > seq_index::BUILD_DEPTH {
        while let Some(p) = c.parents().next() {
            c = p;
            if Some(c.id()) == anchor {
                reached = true;
                break;
            }
            above.push((c.id(), seq_index::claimed(c.message_bytes())));
        }
        if !reached {
            seq_index::build(repo, &above);
        }
    }
    if reached
        && !above.is_empty()
        && let Some(ix) = index.as_mut()
    {
        ix.extend(repo, &above);
    }
    let (result, from_index, passed) = match found {
        Some((hit, from_index)) => (hit, from_index, below_anchor),
        None => {
            // Slow path: the first commit down the line whose first parent does not
            // hold the event.
            let mut commit = head.clone();
            let mut passed = false;
            loop {
                passed |= Some(commit.id()) == anchor;
                match commit.parents().next() {
                    Some(parent) => {
                        let parent_tree = parent.tree()?;
                        if !has(&parent_tree) {
                            break ((commit, Some(parent_tree)), false, passed);
                        }
                        commit = parent;
                    }
                    None => break ((commit, None), false, passed),
                }
            }
        }
    };
    // Found at or below the anchor after the index's record was missing or refuted:
    // the record is mended.
    if passed
        && !from_index
        && result.1.is_some()
        && let Some(ix) = &index
    {
        ix.mend(repo, seq, result.0.id());
    }
    Ok(Some(result))
}

/// Whether a commit message's `Hitl-Seq:` trailer (`6`, or `1-5`) names `seq`.
fn claims_seq(message: &[u8], seq: u64) -> bool {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .filter_map(|l| l.strip_prefix("Hitl-Seq: "))
        .any(|v| {
            let (a, b) = v.trim().split_once('-').unwrap_or((v.trim(), v.trim()));
            matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if a <= seq && seq <= b)
        })
}

#[cfg(test)]
mod tests {
    use super::claims_seq;

    #[test]
    fn a_hitl_seq_trailer_claims_its_seqs_only() {
        let m = b"propose refund-4711 (tier 3) by a\n\nHitl-Request: refund-4711\nHitl-Seq: 1-5\n";
        assert!((1..=5).all(|s| claims_seq(m, s)));
        assert!(!claims_seq(m, 0) && !claims_seq(m, 6));
        assert!(claims_seq(b"x\n\nHitl-Seq: 6\n", 6));
        assert!(!claims_seq(b"x\n\nHitl-Seq: 6\n", 7));
        // Not a trailer hitl writes: claims nothing.
        assert!(!claims_seq(b"x\n\nHitl-Seq: five\n", 5));
        assert!(!claims_seq(b"x\n\nSeq: 5\n", 5));
    }
}
