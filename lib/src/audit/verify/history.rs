//! Pass 2, the git history: every commit reachable from HEAD, judged against each of its
//! parents (what it changed, the governance rule), its SSH commit signature checked
//! against the trust in force before it, and the roots of trust it brings.

use chrono::{DateTime, Utc};
use git2::{Oid, Sort, Tree};

use super::chain::Actors;
use super::changes::{Change, FILE_MODE, Trees, needs_signature, touched_paths, under};
#[cfg(doc)]
use super::pins::judge_roots;
use super::{ALLOWED_SIGNERS, Phase, Problem, REVOKED_SIGNERS, Report, Trust, TrustRoot};
use crate::audit::store::{AuditRepo, parse_event};
use crate::audit::{AUDIT_DIR, AuditError, sha256_hex};
use crate::signing::GIT_NAMESPACE;

/// A commit whose signature still has to be checked, with what it must match.
struct CommitJob {
    commit: String,
    signed: Option<(String, Vec<u8>)>,
    principal: String,
    /// `None`: the commit's time is outside the range hitl can represent
    /// (`commit-time`): its signature cannot be judged at any instant.
    at: Option<DateTime<Utc>>,
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
type Part = (
    u64,
    Vec<Problem>,
    Vec<TrustRoot>,
    Vec<(u64, Option<(Oid, crate::workflow::config::ConfigKey)>)>,
);

/// The fewest commits worth a thread of their own in the history walk.
const MIN_RUN: usize = 32;

/// The git history: every commit reachable from HEAD through any parent, oldest first,
/// each judged against every one of its parents. The commits are split into one
/// contiguous run per core; each run is walked on its own thread with its own
/// repository handle (commits are independent: a commit is judged against its parents'
/// trees only). Returns the roots of trust found, oldest first, for [`judge_roots`].
pub(super) fn history(
    repo: &AuditRepo,
    head: Oid,
    actors: &Actors,
    report: &mut Report,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<(Vec<TrustRoot>, crate::workflow::recorded::ConfigLine), AuditError> {
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
    let parts = repo.in_parts(&oids, size, "walking the history", |r, run| {
        history_part(r, run, actors, &step)
    })?;
    let mut roots = Vec::new();
    let mut line = crate::workflow::recorded::ConfigLine::default();
    for part in parts {
        let (commits, mut problems, mut part_roots, adds) = part;
        report.commits += commits;
        report.problems.append(&mut problems);
        roots.append(&mut part_roots);
        for (first_seq, parent_tree) in adds {
            line.add(first_seq, parent_tree);
        }
    }
    progress(Phase::History, total, total);
    Ok((roots, line))
}

/// Walks one run of commits (oldest first): returns how many changed the audit or the
/// trust files, the problems found (commit signatures included) and the commits that
/// brought `allowed_signers` without a parent that has it (roots of trust), in order.
fn history_part(
    repo: &AuditRepo,
    oids: &[Oid],
    actors: &Actors,
    step: &(dyn Fn(u64) + Sync),
) -> Result<Part, AuditError> {
    let mut roots = Vec::new();
    // For the workflow engine: the first seq each commit adds and the tree it extends;
    // and the configurations the governance rule reads.
    let mut adds: Vec<(u64, Option<(Oid, crate::workflow::config::ConfigKey)>)> = Vec::new();
    let mut configs = crate::workflow::config::Configs::default();
    let mut commits = 0_u64;
    let mut problems: Vec<Problem> = Vec::new();
    // Trust by the ids of (allowed_signers, revoked_signers): parsed once per version.
    let mut trusts: std::collections::HashMap<TrustKey, std::sync::Arc<Trust>> =
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
        // Every parent: a merge is judged against each one, not against its first only
        // (a merge whose tree is its first parent's would hide its second).
        let mut parents = Vec::with_capacity(commit.parent_count());
        for p in commit.parent_ids() {
            let id = match previous {
                Some((c, t)) if c == p => t,
                _ => repo.repo.find_commit(p)?.tree_id(),
            };
            parents.push((p, cache.get(repo, id)?));
        }
        previous = Some((oid, tree_id));
        // The changes against each parent (a commit without parents: against nothing).
        let mut sides: Vec<Vec<Change>> = Vec::with_capacity(parents.len().max(1));
        if parents.is_empty() {
            sides.push(touched_paths(repo, &mut cache, None, &tree)?);
        }
        for (_, t) in &parents {
            sides.push(touched_paths(repo, &mut cache, Some(t), &tree)?);
        }
        cache.next_commit();
        if sides.iter().all(Vec::is_empty) {
            continue;
        }
        let short = oid.to_string();
        let mut found: Vec<Problem> = Vec::new();
        let mut fail = |code: &'static str, file: Option<&str>, reason: String| {
            // The same finding against two parents is one problem.
            if !found
                .iter()
                .any(|p| p.code == code && p.file.as_deref() == file)
            {
                found.push(Problem {
                    seq: None,
                    file: file.map(str::to_owned),
                    commit: Some(short.clone()),
                    code,
                    reason,
                });
            }
        };
        if parents.len() > 1 {
            let differs: Vec<String> = parents
                .iter()
                .zip(&sides)
                .filter_map(|((p, _), changes)| {
                    changes.first().map(|c| format!("{p} (at `{}`)", c.path))
                })
                .collect();
            let first = sides.iter().find_map(|c| c.first()).map(|c| c.path.clone());
            fail(
                "history-merge",
                first.as_deref(),
                format!(
                    "a merge commit whose audit or configuration differs from its parent {}: they change in commits with one parent only (the audit is linear)",
                    differs.join(", parent ")
                ),
            );
        }
        for c in sides.iter().flatten() {
            if let Some((code, why)) = c.judge() {
                fail(code, Some(&c.path), why);
            }
        }
        if parents.len() == 1 {
            // The governance rule: a one-parent commit that changes the trust
            // configuration must be an admin's (a merge that does is `history-merge`).
            if let Some((_, parent_tree)) = parents.first()
                && sides
                    .iter()
                    .flatten()
                    .any(|c| crate::workflow::config::is_governed(&c.path))
                && let Some(why) = crate::workflow::history::config_change_problem(
                    repo,
                    &mut configs,
                    &commit,
                    &tree,
                    Some(parent_tree),
                )?
            {
                fail("config-unauthorized", None, why);
            }
        }
        let signed_sides: Vec<usize> = (0..sides.len())
            .filter(|&i| sides[i].iter().any(|c| needs_signature(&c.path)))
            .collect();
        if signed_sides.is_empty() {
            problems.append(&mut found);
            continue;
        }
        commits += 1;
        let seconds = commit.time().seconds();
        let at = DateTime::from_timestamp(seconds, 0);
        if at.is_none() {
            fail(
                "commit-time",
                None,
                format!(
                    "the commit's time ({seconds} seconds from 1970) is outside the range hitl can read: its signature cannot be judged at any instant"
                ),
            );
        }
        // Trust comes from before the commit: the changes against a parent are judged
        // with that parent's trust files (a merge's against each of its parents'), a
        // parent without `allowed_signers` borrows the first parent's that has them, and
        // a commit none of whose parents has them is a root of trust, judged by its own.
        let has_trust = |t: &Tree<'_>| id_at(repo, t, ALLOWED_SIGNERS).is_some();
        let is_root = !parents.iter().any(|(_, t)| has_trust(t));
        if is_root && let Some(id) = id_at(repo, &tree, ALLOWED_SIGNERS) {
            let blob = repo.repo.find_blob(id)?;
            roots.push(TrustRoot {
                commit: short.clone(),
                allowed_signers: sha256_hex(blob.content()),
            });
        }
        let mut trust_trees: Vec<(TrustKey, &Tree<'_>)> = Vec::new();
        for &i in &signed_sides {
            let own = parents.get(i).map(|(_, t)| t).filter(|t| has_trust(t));
            let t = own
                .or_else(|| parents.iter().map(|(_, t)| t).find(|t| has_trust(t)))
                .unwrap_or(&tree);
            let key = (
                id_at(repo, t, ALLOWED_SIGNERS),
                id_at(repo, t, REVOKED_SIGNERS),
            );
            if !trust_trees.iter().any(|(k, _)| *k == key) {
                trust_trees.push((key, t));
            }
        }
        // The actors of the events a one-parent commit adds (a merge's are the other
        // side's, and the merge is a problem already).
        let mut events = Vec::new();
        if parents.len() <= 1 {
            for c in sides.iter().flatten() {
                let name = c.path.rsplit('/').next().unwrap_or_default();
                let (true, Some(seq), None, Some((id, FILE_MODE))) = (
                    under(&c.path, AUDIT_DIR),
                    crate::audit::seq_of_name(name),
                    c.old,
                    c.new,
                ) else {
                    continue;
                };
                // The same file as at HEAD: its actor is known from the chain check.
                if let Some((principal, key)) = actors.get(id) {
                    events.push((c.path.clone(), seq, principal.to_owned(), key.to_owned()));
                } else {
                    let blob = repo.repo.find_blob(id)?;
                    if let Ok(ev) = parse_event(&c.path, blob.content()) {
                        events.push((c.path.clone(), ev.seq, ev.actor.principal, ev.actor.key));
                    }
                }
            }
        }
        if parents.len() <= 1
            && let Some(first) = events.iter().map(|e| e.1).min()
        {
            let parent = match parents.first() {
                Some((_, t)) => Some((t.id(), crate::workflow::config::ConfigKey::of(repo, t)?)),
                None => None,
            };
            adds.push((first, parent));
        }
        let signed = repo
            .repo
            .extract_signature(&oid, Some("gpgsig"))
            .ok()
            .map(|(sig, data)| (String::from_utf8_lossy(&sig).into_owned(), data.to_vec()));
        let author = commit.author();
        let first_path = signed_sides
            .iter()
            .flat_map(|&i| &sides[i])
            .find(|c| needs_signature(&c.path))
            .map(|c| c.path.clone());
        let may_be_unsigned = is_root && !sides.iter().flatten().any(|c| under(&c.path, AUDIT_DIR));
        for (key, t) in trust_trees {
            let trust = match trusts.get(&key) {
                Some(t) => t.clone(),
                None => match Trust::load(repo, t) {
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
            jobs.push(CommitJob {
                commit: short.clone(),
                signed: signed.clone(),
                principal: author.email().unwrap_or_default().to_owned(),
                at,
                trust,
                may_be_unsigned,
                events: events.clone(),
                first_path: first_path.clone(),
            });
        }
        problems.append(&mut found);
        if jobs.len() >= 256 {
            problems.extend(std::mem::take(&mut jobs).iter().flat_map(check_commit));
        }
    }
    problems.extend(jobs.iter().flat_map(check_commit));
    // A merge judged under two parents' trust reports a bad signature once.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.commit.clone(), p.code, p.file.clone(), p.seq)));
    step(oids.len() as u64 % 256);
    Ok((commits, problems, roots, adds))
}

/// The id of a workspace-relative path in a tree, if present.
fn id_at(repo: &AuditRepo, tree: &Tree<'_>, rel: &str) -> Option<Oid> {
    tree.get_path(std::path::Path::new(&repo.git_path(rel)))
        .ok()
        .map(|e| e.id())
}

/// The ids of (`allowed_signers`, `revoked_signers`) in a tree: which trust it holds.
type TrustKey = (Option<Oid>, Option<Oid>);

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
    // A time hitl cannot read judges nothing (`commit-time` says so): fail closed.
    let Some(at) = j.at else {
        return out;
    };
    match j.trust.check(sig, GIT_NAMESPACE, data, &j.principal, at) {
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
