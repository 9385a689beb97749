//! `hitl init`: a new workspace with the example matrix, one example request and stubs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::workspace::{ALLOWED_SIGNERS, MATRIX_FILE, SETTINGS_FILE};

/// The files a new workspace starts with. The matrix, the request and the policies are
/// the ones the repository root ships, so `hitl init` and the examples cannot drift apart.
pub const FILES: [(&str, &str); 18] = [
    (MATRIX_FILE, include_str!("../../approval-matrix.yaml")),
    (
        "requests/refund-4711.yaml",
        include_str!("../../requests/refund-4711.yaml"),
    ),
    (ALLOWED_SIGNERS, ALLOWED_SIGNERS_STUB),
    (SETTINGS_FILE, SETTINGS_STUB),
    ("README.md", README_STUB),
    (
        "policies/change_window.rego",
        include_str!("../../policies/change_window.rego"),
    ),
    (
        "policies/change_window_test.rego",
        include_str!("../../policies/change_window_test.rego"),
    ),
    (
        "policies/data_classification.rego",
        include_str!("../../policies/data_classification.rego"),
    ),
    (
        "policies/data_classification_test.rego",
        include_str!("../../policies/data_classification_test.rego"),
    ),
    (
        "policies/fixtures_test.rego",
        include_str!("../../policies/fixtures_test.rego"),
    ),
    (
        "policies/limits.rego",
        include_str!("../../policies/limits.rego"),
    ),
    (
        "policies/limits_test.rego",
        include_str!("../../policies/limits_test.rego"),
    ),
    (
        "policies/rbac.rego",
        include_str!("../../policies/rbac.rego"),
    ),
    (
        "policies/rbac_test.rego",
        include_str!("../../policies/rbac_test.rego"),
    ),
    (
        "policies/sources.rego",
        include_str!("../../policies/sources.rego"),
    ),
    (
        "policies/sources_test.rego",
        include_str!("../../policies/sources_test.rego"),
    ),
    (
        "policies/data/rbac.json",
        include_str!("../../policies/data/rbac.json"),
    ),
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

    hitl lint                        # check the matrix, every request and the policies
    hitl policy test                 # run the policies' tests
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

#[cfg(test)]
mod tests {
    use super::FILES;

    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(
                    p.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }

    #[test]
    fn init_ships_every_example_policy() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk = Vec::new();
        walk(&root.join("policies"), &root, &mut on_disk);
        on_disk.sort();
        let mut shipped: Vec<String> = FILES
            .iter()
            .map(|(p, _)| (*p).to_owned())
            .filter(|p| p.starts_with("policies/"))
            .collect();
        shipped.sort();
        assert_eq!(
            shipped, on_disk,
            "add new example policies to scaffold::FILES"
        );
    }
}
