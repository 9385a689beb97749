//! What a commit changed at the watched paths (the audit and the governed
//! configuration), of whatever kind of entry, and which of those changes are problems in
//! themselves.

use git2::{Oid, Tree};

use super::{ALLOWED_SIGNERS, REVOKED_SIGNERS};
use crate::audit::store::AuditRepo;
use crate::audit::{AUDIT_DIR, AuditError};

/// Git's file mode of a folder.
pub(super) const TREE_MODE: i32 = 0o040_000;
/// Git's file mode of a plain file: the only kind of file the audit holds.
pub(super) const FILE_MODE: i32 = 0o100_644;
/// Git's file modes of an executable file, a symlink and a submodule entry (gitlink).
const EXEC_MODE: i32 = 0o100_755;
const LINK_MODE: i32 = 0o120_000;
const GITLINK_MODE: i32 = 0o160_000;

/// The paths the history walk judges, relative to the workspace: the audit and the
/// governed configuration. Whatever changes at or under one of them, of whatever kind,
/// is a [`Change`].
const WATCHED: [&str; 6] = [
    AUDIT_DIR,
    crate::workspace::MATRIX_FILE,
    crate::workspace::POLICIES_DIR,
    crate::workspace::SETTINGS_FILE,
    ALLOWED_SIGNERS,
    REVOKED_SIGNERS,
];

/// Whether `path` is `dir` or a path under it.
pub(super) fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a change must come in a commit signed by a key trusted before it: the audit
/// and the trust files. (The matrix, the policies and `hitl.toml` are watched for their
/// kind and for merges.)
pub(super) fn needs_signature(path: &str) -> bool {
    under(path, AUDIT_DIR) || under(path, ALLOWED_SIGNERS) || under(path, REVOKED_SIGNERS)
}

/// What a file mode stands for, in a problem's reason.
fn mode_word(mode: i32) -> &'static str {
    match mode {
        FILE_MODE => "file",
        EXEC_MODE => "executable file",
        TREE_MODE => "folder",
        LINK_MODE => "symlink",
        GITLINK_MODE => "submodule entry",
        _ => "entry of an unknown kind",
    }
}

/// One changed path (workspace-relative) with its (id, file mode) before and after;
/// `None`: absent. A folder is compared through the paths under it, except when it
/// changes kind (turned into a symlink or a submodule entry, or back): that is one
/// change at the folder's own path.
#[derive(Debug)]
pub(super) struct Change {
    pub(super) path: String,
    pub(super) old: Option<(Oid, i32)>,
    pub(super) new: Option<(Oid, i32)>,
}

impl Change {
    /// Whether this change is a problem, and which: the audit is append-only and holds
    /// plain files only (a request index may grow); the configuration is plain files.
    pub(super) fn judge(&self) -> Option<(&'static str, String)> {
        let path = &self.path;
        if !under(path, AUDIT_DIR) {
            return match self.new {
                Some((_, m @ (LINK_MODE | GITLINK_MODE))) => Some((
                    "config-link",
                    format!(
                        "`{path}` became a {}: the configuration is read from plain files in the commit, never through a link",
                        mode_word(m)
                    ),
                )),
                _ => None,
            };
        }
        let rewrite = |what: String| Some(("history-rewrite", what));
        match (self.old, self.new) {
            (None, None) | (None, Some((_, FILE_MODE))) => None,
            (None, Some((_, m))) => rewrite(format!(
                "a {} was added to the audit, which holds plain files only",
                mode_word(m)
            )),
            (Some(_), None) => {
                rewrite("an existing audit file was deleted (the audit is append-only)".to_owned())
            }
            (Some((_, a)), Some((_, b))) if a != b => rewrite(format!(
                "retyped from a {} to a {} (the audit is append-only and holds plain files only)",
                mode_word(a),
                mode_word(b)
            )),
            (Some(_), Some((_, b))) if b != FILE_MODE => rewrite(format!(
                "a {} in the audit was changed (the audit holds plain files only)",
                mode_word(b)
            )),
            (Some(_), Some(_)) if under(path, &format!("{AUDIT_DIR}/requests")) => None,
            (Some(_), Some(_)) => {
                rewrite("an existing audit file was modified (the audit is append-only)".to_owned())
            }
        }
    }
}

/// The trees of the last two commits the history walk read. libgit2 does not cache
/// trees over 4 KiB, and the walk reads each audit tree twice (as a commit's new side,
/// then as its child's old side): keeping them halves the reading and inflating.
pub(super) struct Trees<'r> {
    now: std::collections::HashMap<Oid, Tree<'r>>,
    before: std::collections::HashMap<Oid, Tree<'r>>,
}

impl<'r> Trees<'r> {
    pub(super) fn new() -> Self {
        Self {
            now: std::collections::HashMap::new(),
            before: std::collections::HashMap::new(),
        }
    }

    pub(super) fn get(&mut self, repo: &'r AuditRepo, id: Oid) -> Result<Tree<'r>, AuditError> {
        if let Some(t) = self.now.get(&id).or_else(|| self.before.get(&id)) {
            return Ok(t.clone());
        }
        let t = repo.repo.find_tree(id)?;
        self.now.insert(id, t.clone());
        Ok(t)
    }

    /// Called after each commit: what it read becomes "before".
    pub(super) fn next_commit(&mut self) {
        self.before = std::mem::take(&mut self.now);
    }
}

/// The changes under `rel` between two trees (by id), descending only into subtrees
/// whose ids differ: an append touches a handful of small trees, so this costs the same
/// at the 100,000th event as at the 100th (no full diff, no pathspec matching).
fn diff_ids<'r>(
    repo: &'r AuditRepo,
    cache: &mut Trees<'r>,
    rel: &str,
    old: Option<(Oid, i32)>,
    new: Option<(Oid, i32)>,
    out: &mut Vec<Change>,
) -> Result<(), AuditError> {
    // (id, file mode): a mode change with the same id (a folder turned into a submodule
    // entry, a file into a symlink) is a change too.
    match (old, new) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some((a, TREE_MODE)), Some((b, TREE_MODE))) => {
            // A merge of the two sorted entry lists, without copying them: an append
            // adds a few entries to trees of up to a few thousand.
            let (ta, tb) = (cache.get(repo, a)?, cache.get(repo, b)?);
            let kind = |e: &git2::TreeEntry<'_>| (e.id(), e.filemode());
            let (mut i, mut j) = (0, 0);
            loop {
                let (x, y) = (ta.get(i), tb.get(j));
                let order = match (&x, &y) {
                    (Some(x), Some(y)) => x.name_bytes().cmp(y.name_bytes()),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => break,
                };
                match order {
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        j += 1;
                        if let (Some(x), Some(y)) = (x, y)
                            && kind(&x) != kind(&y)
                        {
                            let name = format!("{rel}/{}", y.name().unwrap_or_default());
                            diff_ids(repo, cache, &name, Some(kind(&x)), Some(kind(&y)), out)?;
                        }
                    }
                    std::cmp::Ordering::Less => {
                        i += 1;
                        if let Some(x) = x {
                            let name = format!("{rel}/{}", x.name().unwrap_or_default());
                            diff_ids(repo, cache, &name, Some(kind(&x)), None, out)?;
                        }
                    }
                    std::cmp::Ordering::Greater => {
                        j += 1;
                        if let Some(y) = y {
                            let name = format!("{rel}/{}", y.name().unwrap_or_default());
                            diff_ids(repo, cache, &name, None, Some(kind(&y)), out)?;
                        }
                    }
                }
            }
            Ok(())
        }
        (None, Some((b, TREE_MODE))) => {
            for e in cache.get(repo, b)?.iter() {
                let name = e.name().unwrap_or_default();
                diff_ids(
                    repo,
                    cache,
                    &format!("{rel}/{name}"),
                    None,
                    Some((e.id(), e.filemode())),
                    out,
                )?;
            }
            Ok(())
        }
        (Some((a, TREE_MODE)), None) => {
            for e in cache.get(repo, a)?.iter() {
                let name = e.name().unwrap_or_default();
                diff_ids(
                    repo,
                    cache,
                    &format!("{rel}/{name}"),
                    Some((e.id(), e.filemode())),
                    None,
                    out,
                )?;
            }
            Ok(())
        }
        // Anything that is not two folders: a file, a symlink or a submodule entry on
        // either side (a folder against one of those is a change of kind at this path:
        // its contents are not listed, the retyping is the change).
        (old, new) => {
            out.push(Change {
                path: rel.to_owned(),
                old,
                new,
            });
            Ok(())
        }
    }
}

/// What a commit changed at or under the watched paths ([`WATCHED`]) against `parent`
/// (`None`: a commit without parents), whatever the kind of entry on either side.
pub(super) fn touched_paths<'r>(
    repo: &'r AuditRepo,
    cache: &mut Trees<'r>,
    parent: Option<&Tree<'_>>,
    tree: &Tree<'_>,
) -> Result<Vec<Change>, AuditError> {
    let mut out = Vec::new();
    for rel in WATCHED {
        let at = |t: &Tree<'_>| -> Result<Option<(Oid, i32)>, AuditError> {
            match t.get_path(std::path::Path::new(&repo.git_path(rel))) {
                Ok(e) => Ok(Some((e.id(), e.filemode()))),
                Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        let old = match parent {
            Some(p) => at(p)?,
            None => None,
        };
        diff_ids(repo, cache, rel, old, at(tree)?, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, old: Option<i32>, new: Option<i32>) -> Change {
        let a = Oid::from_str("1111111111111111111111111111111111111111").unwrap();
        let b = Oid::from_str("2222222222222222222222222222222222222222").unwrap();
        Change {
            path: path.to_owned(),
            old: old.map(|m| (a, m)),
            new: new.map(|m| (b, m)),
        }
    }

    fn code(c: &Change) -> Option<&'static str> {
        c.judge().map(|(code, _)| code)
    }

    #[test]
    fn under_is_the_path_or_below_it() {
        assert!(under("audit", "audit"));
        assert!(under("audit/events/x", "audit"));
        assert!(!under("auditor", "audit"));
        assert!(!under("audi", "audit"));
        assert!(under("policies/a.rego", "policies"));
        assert!(needs_signature("audit"));
        assert!(needs_signature("allowed_signers"));
        assert!(!needs_signature("approval-matrix.yaml"));
    }

    #[test]
    fn the_audit_takes_new_plain_files_and_growing_indexes_only() {
        let event = "audit/events/000000000/000000000001.json";
        let index = "audit/requests/ab/refund-1";
        assert_eq!(code(&change(event, None, Some(FILE_MODE))), None);
        assert_eq!(code(&change(index, Some(FILE_MODE), Some(FILE_MODE))), None);
        for c in [
            change(event, Some(FILE_MODE), Some(FILE_MODE)),
            change(event, Some(FILE_MODE), None),
            change(event, None, Some(LINK_MODE)),
            change(event, None, Some(GITLINK_MODE)),
            change(event, None, Some(EXEC_MODE)),
            change(event, Some(FILE_MODE), Some(LINK_MODE)),
            change(index, Some(FILE_MODE), Some(GITLINK_MODE)),
            change(index, Some(LINK_MODE), Some(LINK_MODE)),
            // `audit` itself: a folder turned into a symlink, and back.
            change("audit", Some(TREE_MODE), Some(LINK_MODE)),
            change("audit", Some(LINK_MODE), Some(TREE_MODE)),
            change("audit", None, Some(GITLINK_MODE)),
        ] {
            assert_eq!(code(&c), Some("history-rewrite"), "{c:?}");
        }
    }

    #[test]
    fn the_configuration_is_plain_files() {
        for path in [
            "approval-matrix.yaml",
            "policies/refund.rego",
            "policies",
            "hitl.toml",
        ] {
            assert_eq!(code(&change(path, Some(FILE_MODE), Some(FILE_MODE))), None);
            assert_eq!(
                code(&change(path, Some(FILE_MODE), Some(LINK_MODE))),
                Some("config-link")
            );
            assert_eq!(
                code(&change(path, None, Some(GITLINK_MODE))),
                Some("config-link")
            );
            // Putting a plain file back is the repair, not a problem.
            assert_eq!(code(&change(path, Some(LINK_MODE), Some(FILE_MODE))), None);
        }
    }
}
