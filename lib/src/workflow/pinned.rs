//! The commands a proposal names to run (its `rollback.command`, its
//! `change.precondition`) are the agent's words, and the approvers saw only the words and
//! the repository as the proposal's commit held it. An agent that can commit could
//! change a script, a file it sources, a `Makefile`, a symlink on the way after the
//! approval and have its own code run as the approved rollback. So such a command runs
//! in an export of the workspace as the commit that recorded the proposal held it
//! ([`export`]: its files but the audit, written afresh into an empty folder), never in
//! the work tree: relative programs and arguments, sourced files, `.` in `PATH` all
//! resolve there. What would escape the export is refused: a word that is or holds a
//! path into the work tree, or climbs with `..` ([`check`]); a program or argument that
//! resolves into the work tree ([`check_resolved`]); in the export, a symlink out of the
//! workspace, a name twice, more than [`MAX_ENTRIES`] entries or [`MAX_BYTES`] bytes. A
//! bare program name (`restore-crm`) is looked up in the executor's `PATH`, and a path
//! outside the repository is the host's own: what the host installs is out of the
//! agent's reach through the repository.
//! docs/approvals.md, docs/security.md.

use std::path::{Component, Path};

use super::types;

/// Refuses a `command` (named by a proposal in `field`) with a word that would reach
/// the live work tree rather than the export: an absolute path into it (written as it
/// is, or through symlinks), a word that holds the work tree's path anywhere (`sh -c
/// "sh /work/tree/x.sh"`, `--file=/work/tree/x`), a path into `/proc`, or a `..` step
/// (out of the export, whose place in the temporary folder is known).
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
    let plain = workdir.to_string_lossy().trim_end_matches('/').to_owned();
    let canonical = workdir
        .canonicalize()
        .map(|p| p.to_string_lossy().trim_end_matches('/').to_owned())
        .unwrap_or_else(|_| plain.clone());
    for word in command {
        let refused = |what: &str| {
            Err(format!(
                "`{word}`, which `{field}` names, {what}: a command the proposal names runs on the workspace as the proposal's commit held it, never on the live work tree"
            ))
        };
        let path = Path::new(word);
        if path.components().any(|c| c == Component::ParentDir) {
            return refused("climbs out of its folder (`..`)");
        }
        let holds = |root: &str| {
            !root.is_empty() && (word.contains(&format!("{root}/")) || word.ends_with(root))
        };
        if holds(&plain)
            || holds(&canonical)
            || path.starts_with("/proc")
            || (path.is_absolute() && path.canonicalize().is_ok_and(|p| p.starts_with(&canonical)))
        {
            return refused("names a path into the work tree (or `/proc`)");
        }
    }
    Ok(())
}

/// Refuses a command, resolved in the export `dir` (its program a full path), whose
/// program or a path-like argument leads into the live work tree once symlinks are
/// followed (an absolute `PATH` entry into the work tree, a symlink in the host's
/// folders): what runs is in the export, or the host's own.
///
/// # Errors
/// Why it may not run.
pub fn check_resolved(
    repo: &crate::audit::AuditRepo,
    field: &str,
    dir: &Path,
    resolved: &[String],
) -> Result<(), String> {
    let Some(tree_root) = repo.repo.workdir().and_then(|w| w.canonicalize().ok()) else {
        return Ok(());
    };
    for word in resolved {
        let Ok(p) = dir.join(word).canonicalize() else {
            continue;
        };
        if p.starts_with(&tree_root) {
            return Err(format!(
                "`{word}`, which `{field}` names, leads into the live work tree (`{}`): a command the proposal names runs on the workspace as the proposal's commit held it",
                p.display()
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
    write_tree(repo, &workspace, dest, 0, &mut Budget::default())
}

/// At most this many entries and bytes in an export: a workspace of scripts is small,
/// and a tree of a thousand names of a thousand names (two small hand-made objects)
/// must not fill the disk.
pub const MAX_ENTRIES: usize = 20_000;
/// At most this many bytes of files in an export.
pub const MAX_BYTES: u64 = 256 << 20;

#[derive(Default)]
struct Budget {
    entries: usize,
    bytes: u64,
}

fn write_tree(
    repo: &crate::audit::AuditRepo,
    tree: &git2::Tree<'_>,
    dest: &Path,
    depth: usize,
    budget: &mut Budget,
) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    for entry in tree {
        let name = entry
            .name()
            .ok_or_else(|| "a file name that is not UTF-8".to_owned())?;
        let mut parts = Path::new(name).components();
        if name.contains('/')
            || !matches!(
                (parts.next(), parts.next()),
                (Some(Component::Normal(_)), None)
            )
        {
            return Err(format!("`{name}` is not a file name"));
        }
        if depth == 0 && name == crate::audit::AUDIT_DIR {
            continue;
        }
        budget.entries += 1;
        if budget.entries > MAX_ENTRIES {
            return Err(format!("the workspace holds more than {MAX_ENTRIES} files"));
        }
        // Every entry is new (`create_dir`, `symlink`, and `create_new`, which refuses
        // any existing path, a symlink included, without following it): a name twice in
        // one hand-made tree, a symlink and then a file of that name, refuses the export
        // instead of writing through the link.
        let path = dest.join(name);
        match (entry.kind(), entry.filemode()) {
            (Some(git2::ObjectType::Tree), _) => {
                std::fs::create_dir(&path).map_err(|e| format!("`{name}`: {e}"))?;
                let sub = repo.repo.find_tree(entry.id()).map_err(|e| e.to_string())?;
                write_tree(repo, &sub, &path, depth + 1, budget)?;
            }
            (Some(git2::ObjectType::Blob), 0o120_000) => {
                let blob = repo.repo.find_blob(entry.id()).map_err(|e| e.to_string())?;
                let target = String::from_utf8_lossy(blob.content()).into_owned();
                if !stays_inside(&target, depth) {
                    return Err(format!(
                        "`{name}` is a symlink to `{target}`, outside the workspace: a command the proposal names runs only on the workspace's own files"
                    ));
                }
                std::os::unix::fs::symlink(target, &path).map_err(|e| format!("`{name}`: {e}"))?;
            }
            (Some(git2::ObjectType::Blob), mode) => {
                let blob = repo.repo.find_blob(entry.id()).map_err(|e| e.to_string())?;
                budget.bytes += blob.content().len() as u64;
                if budget.bytes > MAX_BYTES {
                    return Err(format!("the workspace holds more than {MAX_BYTES} bytes"));
                }
                let bits = if mode == 0o100_755 { 0o755 } else { 0o644 };
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(bits)
                    .open(&path)
                    .map_err(|e| format!("`{name}`: {e}"))?;
                file.write_all(blob.content())
                    .map_err(|e| format!("`{name}`: {e}"))?;
                file.set_permissions(std::fs::Permissions::from_mode(bits))
                    .map_err(|e| format!("`{name}`: {e}"))?;
            }
            // A submodule's commit is not in this repository.
            _ => {}
        }
    }
    Ok(())
}

/// Whether a symlink at `depth` folders below the export's root, pointing to `target`,
/// stays inside the export: relative, and never climbing above the root.
fn stays_inside(target: &str, depth: usize) -> bool {
    let mut level = depth;
    for c in Path::new(target).components() {
        match c {
            Component::Normal(_) => level += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                if level == 0 {
                    return false;
                }
                level -= 1;
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    !target.is_empty()
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
