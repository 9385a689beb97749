//! Holding the history to what an auditor pinned: the one root of trust (and the one a
//! pin names), and a checkpoint's head.

use git2::{Oid, Tree};

use super::{ALLOWED_SIGNERS, Head, Pins, Problem, Report, TrustRoot, problem};
use crate::audit::store::AuditRepo;
use crate::audit::{AuditError, sha256_hex};

/// Names the root of trust among the `roots` the walk found (oldest first): the one
/// pinned from outside when it is among them, else the first. Every other root (an
/// orphan history merged in, `allowed_signers` deleted and brought back) is a second
/// source of trust nobody signed for: `trust-root`. A pin that is not the history's root
/// of trust is `trust-root-mismatch`.
pub(super) fn judge_roots(report: &mut Report, mut roots: Vec<TrustRoot>, pins: &Pins) {
    // (the pinned commit, who pins it, the allowed_signers digest recorded with it)
    let mut pinned: Vec<(&str, &str, Option<&str>)> = Vec::new();
    if let Some(c) = &pins.trust_root {
        pinned.push((c, "`--trust-root`", None));
    }
    if let Some(r) = &pins.checkpoint_root {
        pinned.push((&r.commit, "the checkpoint", Some(&r.allowed_signers)));
    }
    let same = |r: &TrustRoot, commit: &str, digest: Option<&str>| {
        r.commit.eq_ignore_ascii_case(commit) && digest.is_none_or(|d| d == r.allowed_signers)
    };
    let chosen = pinned
        .iter()
        .find_map(|(c, _, d)| roots.iter().position(|r| same(r, c, *d)))
        .unwrap_or(0);
    let root = (chosen < roots.len()).then(|| roots.remove(chosen));
    for (commit, by, digest) in &pinned {
        if root.as_ref().is_some_and(|r| same(r, commit, *digest)) {
            continue;
        }
        let recorded =
            digest.map_or_else(String::new, |d| format!(" (allowed_signers sha256:{d})"));
        let found = root.as_ref().map_or_else(
            || "the history has no root of trust (no commit brings `allowed_signers`)".to_owned(),
            |r| {
                format!(
                    "the history's root of trust is commit {} (allowed_signers sha256:{})",
                    r.commit, r.allowed_signers
                )
            },
        );
        report.problems.push(Problem {
            seq: None,
            file: Some(ALLOWED_SIGNERS.to_owned()),
            commit: root.as_ref().map(|r| r.commit.clone()),
            code: "trust-root-mismatch",
            reason: format!("{found}, not commit {commit}{recorded} as {by} pins"),
        });
    }
    if let Some(first) = &root {
        for other in &roots {
            report.problems.push(Problem {
                seq: None,
                file: Some(ALLOWED_SIGNERS.to_owned()),
                commit: Some(other.commit.clone()),
                code: "trust-root",
                reason: format!(
                    "a second root of trust: this commit brings `{ALLOWED_SIGNERS}` without a parent that has it; only one commit may, and {} already does",
                    first.commit
                ),
            });
        }
    }
    report.trust_root = root;
}

/// The problem of a checkpoint on an audit without events (or without any commit).
pub(super) fn empty_audit(cp: &Head) -> Problem {
    problem(
        "checkpoint-truncated",
        Some(cp.seq),
        None,
        format!(
            "the checkpoint pins event {} but the audit is empty",
            cp.seq
        ),
    )
}

pub(super) fn check_checkpoint(
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
            Some(&crate::audit::event_path(cp.seq)),
            "the event the checkpoint pins is not the same any more".to_owned(),
        )),
    }
    let head_commit = repo.head_for_reading()?.map(|c| c.id());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn root(commit: char) -> TrustRoot {
        TrustRoot {
            commit: commit.to_string().repeat(40),
            allowed_signers: "d".repeat(64),
        }
    }

    fn judged(roots: Vec<TrustRoot>, pins: &Pins) -> (Option<String>, Vec<&'static str>) {
        let mut report = Report::default();
        judge_roots(&mut report, roots, pins);
        (
            report.trust_root.map(|r| r.commit),
            report.problems.iter().map(|p| p.code).collect(),
        )
    }

    #[test]
    fn the_pinned_root_is_the_root_and_any_other_the_second() {
        let (a, b) = (root('a'), root('b'));
        let none = Pins::default();
        assert_eq!(
            judged(vec![a.clone()], &none),
            (Some(a.commit.clone()), vec![])
        );
        assert_eq!(
            judged(vec![a.clone(), b.clone()], &none),
            (Some(a.commit.clone()), vec!["trust-root"])
        );
        let on_b = Pins {
            trust_root: Some(b.commit.clone()),
            ..Pins::default()
        };
        assert_eq!(
            judged(vec![a.clone(), b.clone()], &on_b),
            (Some(b.commit.clone()), vec!["trust-root"])
        );
        assert_eq!(
            judged(vec![a.clone()], &on_b),
            (Some(a.commit.clone()), vec!["trust-root-mismatch"])
        );
        assert_eq!(judged(vec![], &on_b), (None, vec!["trust-root-mismatch"]));
        // A checkpoint's root is the commit and the digest it recorded.
        let mut other_digest = a.clone();
        other_digest.allowed_signers = "e".repeat(64);
        let cp = Pins {
            checkpoint_root: Some(other_digest),
            ..Pins::default()
        };
        assert_eq!(
            judged(vec![a.clone()], &cp),
            (Some(a.commit.clone()), vec!["trust-root-mismatch"])
        );
        let cp = Pins {
            checkpoint_root: Some(a.clone()),
            ..Pins::default()
        };
        assert_eq!(judged(vec![a.clone()], &cp), (Some(a.commit), vec![]));
    }
}
