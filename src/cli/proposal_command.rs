//! Running a command a proposal names (`rollback.command`, `change.precondition`): in a
//! fresh export of the workspace as the proposal's commit held it (the library writes
//! it, `workflow::pinned`), never in the work tree, with the program resolved there
//! first, so what runs is what the approvers' commit held (docs/approvals.md).

use std::path::{Path, PathBuf};

use hitl_lib::audit::AuditRepo;

use super::{CliError, CliResult, Exit};

/// A private folder holding the export; removed when dropped (a killed process leaves it
/// in the temporary folder, harmless).
pub struct Export {
    pub dir: PathBuf,
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Exports the workspace as the commit that recorded `request`'s current proposal held
/// it, into a new private folder, and resolves `words`' program there: a path (with a
/// `/`) inside the export, a bare name through `PATH` (a relative entry of `PATH`, `.`
/// included, counts from the export too). `field` names the proposal's field for
/// messages. Refuses, before anything is recorded, a program that is not there. (The
/// library refuses, beforehand, a word that is an absolute path into the work tree:
/// `workflow::pinned::check`.)
pub fn prepare(
    repo: &AuditRepo,
    request: &str,
    field: &str,
    words: &[String],
) -> CliResult<(Export, Vec<String>)> {
    let dir = std::env::temp_dir().join(format!("hitl-run-{}", super::approval::nonce()?));
    std::fs::create_dir(&dir)
        .map_err(|e| CliError::new(Exit::Io, format!("cannot make `{}`: {e}", dir.display())))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let export = Export { dir };
    hitl_lib::workflow::pinned::export(repo, request, &export.dir).map_err(|why| {
        CliError::new(
            Exit::Refused,
            format!(
                "`{request}`: cannot export the workspace as its proposal's commit held it: {why}"
            ),
        )
    })?;
    let mut resolved = words.to_vec();
    if let Some(program) = resolved.first_mut() {
        let found = resolve(program, &export.dir).ok_or_else(|| {
            CliError::new(
                Exit::NotFound,
                format!(
                    "`{request}`: `{program}`, which `{field}` names, is not a program in the workspace as its proposal's commit held it, nor in `PATH`: nothing ran"
                ),
            )
        })?;
        *program = found.display().to_string();
    }
    hitl_lib::workflow::pinned::check_resolved(repo, field, &export.dir, &resolved)
        .map_err(|why| CliError::new(Exit::Refused, format!("`{request}`: {why}")))?;
    Ok((export, resolved))
}

/// Where `program` is, from `dir`: a path with a `/` under `dir` (or absolute), a bare
/// name in `PATH` (relative entries from `dir`); an executable file only.
fn resolve(program: &str, dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = dir.join(program);
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|entry| {
            if entry.as_os_str().is_empty() {
                dir.to_path_buf()
            } else {
                dir.join(entry)
            }
        })
        .map(|d| d.join(program))
        .find(|p| runnable(p))
}
