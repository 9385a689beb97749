//! The commands a proposal names to run (its `rollback.command`, its
//! `change.precondition`) are the agent's words, and the approvers saw only the words and
//! the repository as the proposal's commit held it. An agent that can commit could
//! change a script, a file it sources, a `Makefile`, a symlink on the way after the
//! approval and have its own code run as the approved rollback. So such a command runs
//! in an export of the workspace as the commit that recorded the proposal held it
//! ([`export`]: its files but the audit, written afresh into an empty folder), never in
//! the work tree: relative programs and arguments, sourced files, `.` in `PATH` all
//! resolve there. A word that is an absolute path into the work tree would escape the
//! export, so it is refused ([`check`]). A bare program name (`restore-crm`) is looked up
//! in the executor's `PATH`, and a path outside the repository is the host's own: what
//! the host installs is out of the agent's reach through the repository.
//! docs/approvals.md, docs/security.md.

use std::path::{Component, Path};

use super::types;

/// Refuses a `command` (named by `request`'s proposal in `field`) with a word that is an
/// absolute path into the repository's work tree (written as it is, or through
/// symlinks): it would run the live file, not the proposal's.
///
/// # Errors
/// Why it may not run, naming the word and the field.
pub fn check(
    repo: &crate::audit::AuditRepo,
    field: &str,
    command: &[String],
) -> Result<(), String> {
    let Some(workdir) = repo.repo.workdir() else {
        return Ok(());
    };
    let tree_root = workdir
        .canonicalize()
        .unwrap_or_else(|_| workdir.to_path_buf());
    for word in command {
        let path = Path::new(word);
        if !path.is_absolute() {
            continue;
        }
        let inside = path.starts_with(workdir)
            || path.starts_with(&tree_root)
            || path.canonicalize().is_ok_and(|p| p.starts_with(&tree_root))
            || path.starts_with("/proc");
        if inside {
            return Err(format!(
                "`{word}`, which `{field}` names, is an absolute path into the work tree (or `/proc`): name it relative to the workspace, so that it runs as the proposal's commit held it"
            ));
        }
    }
    Ok(())
}

/// Writes the workspace as the commit that recorded the current version of `request`'s
/// proposal held it into the empty folder `dest`: every file and symlink of the
/// workspace's folder in that commit, with its mode, but the audit (`audit/`) and
/// submodules. Names a hand-made tree could hold that are not plain path components
/// (`..`, `.`, with a `/`) refuse the export.
///
/// # Errors
/// Why the export could not be made.
pub fn export(repo: &crate::audit::AuditRepo, request: &str, dest: &Path) -> Result<(), String> {
    let tree = proposal_tree(repo, request)?;
    let workspace = if repo.prefix.is_empty() {
        tree
    } else {
        let entry = tree
            .get_path(Path::new(repo.prefix.trim_end_matches('/')))
            .map_err(|e| format!("the workspace's folder is not in the proposal's commit: {e}"))?;
        repo.repo
            .find_tree(entry.id())
            .map_err(|e| format!("the workspace's folder is not a folder there: {e}"))?
    };
    write_tree(repo, &workspace, dest, true)
}

fn write_tree(
    repo: &crate::audit::AuditRepo,
    tree: &git2::Tree<'_>,
    dest: &Path,
    top: bool,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in tree {
        let name = entry
            .name()
            .ok_or_else(|| "a file name that is not UTF-8".to_owned())?;
        let mut parts = Path::new(name).components();
        if !matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        ) {
            return Err(format!("`{name}` is not a file name"));
        }
        if top && name == crate::audit::AUDIT_DIR {
            continue;
        }
        let path = dest.join(name);
        match (entry.kind(), entry.filemode()) {
            (Some(git2::ObjectType::Tree), _) => {
                std::fs::create_dir(&path).map_err(|e| format!("`{name}`: {e}"))?;
                let sub = repo.repo.find_tree(entry.id()).map_err(|e| e.to_string())?;
                write_tree(repo, &sub, &path, false)?;
            }
            (Some(git2::ObjectType::Blob), 0o120_000) => {
                let blob = repo.repo.find_blob(entry.id()).map_err(|e| e.to_string())?;
                let target = String::from_utf8_lossy(blob.content()).into_owned();
                std::os::unix::fs::symlink(target, &path).map_err(|e| format!("`{name}`: {e}"))?;
            }
            (Some(git2::ObjectType::Blob), mode) => {
                let blob = repo.repo.find_blob(entry.id()).map_err(|e| e.to_string())?;
                std::fs::write(&path, blob.content()).map_err(|e| format!("`{name}`: {e}"))?;
                let bits = if mode == 0o100_755 { 0o755 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits))
                    .map_err(|e| format!("`{name}`: {e}"))?;
            }
            // A submodule's commit is not in this repository.
            _ => {}
        }
    }
    Ok(())
}

/// The tree of the commit that recorded the current version of `request`'s proposal.
fn proposal_tree<'r>(
    repo: &'r crate::audit::AuditRepo,
    request: &str,
) -> Result<git2::Tree<'r>, String> {
    let head = repo
        .head_for_reading()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the repository has no commits".to_owned())?;
    let tree = head.tree().map_err(|e| e.to_string())?;
    let events = repo
        .request_events(&tree, request)
        .map_err(|e| e.to_string())?;
    let seq = events
        .iter()
        .rev()
        .find(|e| e.kind == types::PROPOSED)
        .map(|e| e.seq)
        .ok_or_else(|| format!("`{request}` was never proposed"))?;
    let (commit, _) = super::history::commit_adding(repo, &head, seq)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("the commit that recorded `{request}`'s proposal (event {seq}) is not found")
        })?;
    commit.tree().map_err(|e| e.to_string())
}
