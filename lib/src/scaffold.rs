//! `hitl init`: a new workspace with the example matrix, one example request and stubs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::workspace::{ALLOWED_SIGNERS, MATRIX_FILE, SETTINGS_FILE};

/// The files a new workspace starts with. The matrix and the request are the ones the
/// repository root ships, so `hitl init` and the examples cannot drift apart.
pub const FILES: [(&str, &str); 7] = [
    (MATRIX_FILE, include_str!("../../approval-matrix.yaml")),
    (
        "requests/refund-4711.yaml",
        include_str!("../../requests/refund-4711.yaml"),
    ),
    (ALLOWED_SIGNERS, ALLOWED_SIGNERS_STUB),
    (SETTINGS_FILE, SETTINGS_STUB),
    ("README.md", README_STUB),
    ("policies/.gitkeep", ""),
    ("audit/.gitkeep", ""),
];

const ALLOWED_SIGNERS_STUB: &str = "\
# Who may sign hitl decisions: one line per key, in OpenSSH's allowed-signers format.
#   <principal> namespaces=\"hitl,git\" <key type> <public key>
# Example:
#   lea@example.com namespaces=\"hitl,git\" ssh-ed25519 AAAAC3Nza... lea@laptop
";

const SETTINGS_STUB: &str = "\
# hitl settings; every key is optional.
[limits]
# The byte cap for one proposal file.
max_request_bytes = 262144
";

const README_STUB: &str = "\
# Approval workspace

This folder is a `hitl` workspace: AI agents write action proposals to `requests/`,
`approval-matrix.yaml` says which tier each action falls into and who must approve it.

    hitl lint                        # check the matrix and every request
    hitl show refund-4711            # the evidence pack a reviewer sees
    hitl explain refund-4711         # why this tier, who may approve
";

/// Creates the workspace in `dir` (created if needed) and runs `git init` unless `dir`
/// is already inside a git repository. Writes nothing if any file already exists.
///
/// # Errors
/// When a file exists, or a write or `git init` fails.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>> {
    let existing: Vec<PathBuf> = FILES
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() {
        return Err(Error::AlreadyExists { paths: existing });
    }
    let mut created = Vec::new();
    for (rel, contents) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, contents).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        created.push(PathBuf::from(rel));
    }
    if git2::Repository::discover(dir).is_err() {
        git2::Repository::init(dir)?;
        created.push(PathBuf::from(".git/"));
    }
    Ok(created)
}
