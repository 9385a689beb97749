//! The programs a proposal names to run (its `rollback.command`, its
//! `change.precondition`) are the agent's words, and the approvers saw only the words.
//! Where such a program is a file of the workspace's own repository (`scripts/x.sh`,
//! run from the workspace's root, or an absolute path into the work tree), an agent that
//! can commit could change the file after the approval and have its own code run as
//! the approved rollback. So such a file runs only as the commit that recorded the
//! proposal held it: the same blob at HEAD, and the bytes in the work tree hashing to
//! that blob (a file changed since, uncommitted, or reached through a symlink to
//! anything else is refused). So does an argument that names a file of the work tree
//! (`[sh, scripts/x.sh]`). A bare program name (`restore-crm`) is looked up in the
//! executor's `PATH`, and a path outside the repository is the host's own: neither is
//! in the agent's reach through the repository. What an interpreter finds by other
//! means (`python3 -m mod`, a file the script sources) is not seen here: name the
//! committed script itself. docs/approvals.md, docs/security.md.

use std::path::{Path, PathBuf};

use super::types;

/// Whether the `command` that the current version of `request`'s recorded proposal names
/// in `field` may run: `Ok` unless one of its words names a file of the work tree that
/// is not, byte for byte, the one the proposal's commit held. The program counts when
/// it is a path (a bare name is looked up in `PATH`); an argument counts whenever it
/// names an existing file from the workspace's root (`[sh, scripts/x.sh]` runs
/// `scripts/x.sh` as surely as `[scripts/x.sh]` does).
///
/// # Errors
/// Why it may not run, naming the word and the field.
pub fn check(
    repo: &crate::audit::AuditRepo,
    request: &str,
    field: &str,
    command: &[String],
) -> Result<(), String> {
    let Some(workdir) = repo.repo.workdir() else {
        return Ok(());
    };
    let root = workdir.join(&repo.prefix);
    let Ok(tree_root) = workdir.canonicalize() else {
        return Ok(());
    };
    for (n, word) in command.iter().enumerate() {
        let is_program = n == 0;
        if is_program && !word.contains('/') {
            continue;
        }
        let named = if Path::new(word).is_absolute() {
            PathBuf::from(word)
        } else {
            root.join(word)
        };
        let refused = |why: String| format!("`{word}`, which `{field}` names, {why}");
        let file = match named.canonicalize() {
            Ok(f) => f,
            // A program that is not there cannot be run; an argument that names no file
            // is not one (`ticket/5531`).
            Err(_) if is_program => return Err(refused("cannot be found".to_owned())),
            Err(_) => continue,
        };
        let Ok(rel) = file.strip_prefix(&tree_root) else {
            // Outside the repository: the host's own.
            continue;
        };
        if !is_program && !file.is_file() {
            continue;
        }
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        pinned_file(repo, request, &file, &rel).map_err(&refused)?;
    }
    Ok(())
}

/// `file` (at `rel` in the work tree) is the blob the proposal's commit held there, and
/// HEAD still holds it.
fn pinned_file(
    repo: &crate::audit::AuditRepo,
    request: &str,
    file: &Path,
    rel: &str,
) -> Result<(), String> {
    if rel.is_empty() || rel.split('/').next() == Some(".git") {
        return Err("is not a file of the work tree".to_owned());
    }
    let recorded = proposal_tree_blob(repo, request, rel)?;
    let head = repo
        .head_for_reading()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "is in a repository without commits".to_owned())?;
    let at_head = head.tree().ok().and_then(|t| blob_at(&t, rel));
    if at_head != Some(recorded) {
        return Err(format!(
            "is a file of this repository (`{rel}`) changed or removed since the proposal was recorded: it runs only as the proposal's commit held it (propose a new version to run another)"
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot be read: {e}"))?;
    let id = git2::Oid::hash_object(git2::ObjectType::Blob, &bytes).map_err(|e| e.to_string())?;
    if id != recorded {
        return Err(format!(
            "differs in the work tree from the committed `{rel}` the proposal was recorded with: it runs only as that commit held it"
        ));
    }
    Ok(())
}

/// The blob at `rel` in the tree of the commit that recorded the current version of
/// `request`'s proposal.
fn proposal_tree_blob(
    repo: &crate::audit::AuditRepo,
    request: &str,
    rel: &str,
) -> Result<git2::Oid, String> {
    let head = repo
        .head_for_reading()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "is in a repository without commits".to_owned())?;
    let tree = head.tree().map_err(|e| e.to_string())?;
    let events = repo
        .request_events(&tree, request)
        .map_err(|e| e.to_string())?;
    let seq = events
        .iter()
        .rev()
        .find(|e| e.kind == types::PROPOSED)
        .map(|e| e.seq)
        .ok_or_else(|| format!("belongs to `{request}`, which was never proposed"))?;
    let (commit, _) = super::history::commit_adding(repo, &head, seq)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("belongs to a proposal whose commit is not found (event {seq})"))?;
    let recorded = commit.tree().map_err(|e| e.to_string())?;
    blob_at(&recorded, rel).ok_or_else(|| {
        format!(
            "is a file of this repository (`{rel}`) that was not committed when the proposal was recorded: commit it, then propose again, so the approvers' version is the one that runs"
        )
    })
}

/// The blob id at `rel` in `tree`: a plain file (executable or not) only.
fn blob_at(tree: &git2::Tree<'_>, rel: &str) -> Option<git2::Oid> {
    let e = tree.get_path(Path::new(rel)).ok()?;
    (e.kind() == Some(git2::ObjectType::Blob) && matches!(e.filemode(), 0o100_644 | 0o100_755))
        .then(|| e.id())
}
