//! The trust configuration in force at a commit: the matrix, the policies, `hitl.toml`,
//! `allowed_signers` and `revoked_signers`, read from the git tree a change extends,
//! never from the working tree. Two trees whose governed entries have the same ids have
//! the same configuration ([`ConfigKey`]), so a history is read once per version.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use git2::{ObjectType, Oid, Tree};

use crate::audit::verify::REVOKED_SIGNERS;
use crate::audit::{AuditError, AuditRepo, sha256_hex};
use crate::matrix::{self, Matrix};
use crate::policy::PolicySet;
use crate::signing::{AllowedSigners, RevokedSigners};
use crate::workspace::{
    ALLOWED_SIGNERS, MATRIX_FILE, POLICIES_DIR, SETTINGS_FILE, Settings, parse_settings,
};

/// The governed paths: a change to any of them changes who may do what.
pub const GOVERNED: [&str; 5] = [
    MATRIX_FILE,
    POLICIES_DIR,
    SETTINGS_FILE,
    ALLOWED_SIGNERS,
    REVOKED_SIGNERS,
];

/// Whether a workspace-relative path is governed (the file itself, or under
/// `policies/`).
#[must_use]
pub fn is_governed(rel: &str) -> bool {
    GOVERNED.iter().any(|g| {
        rel == *g
            || rel
                .strip_prefix(g)
                .is_some_and(|rest| rest.starts_with('/') && *g == POLICIES_DIR)
    })
}

/// The git ids of the governed entries of a tree, with their modes: the identity of a
/// configuration version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigKey([Option<(Oid, i32)>; 5]);

impl ConfigKey {
    /// Reads the five entries (five lookups, no blob read).
    ///
    /// # Errors
    /// An unreadable tree.
    pub fn of(repo: &AuditRepo, tree: &Tree<'_>) -> Result<Self, AuditError> {
        let mut ids = [None; 5];
        for (slot, rel) in ids.iter_mut().zip(GOVERNED) {
            *slot = match tree.get_path(Path::new(&repo.git_path(rel))) {
                Ok(e) => Some((e.id(), e.filemode())),
                Err(e) if e.code() == git2::ErrorCode::NotFound => None,
                Err(e) => return Err(e.into()),
            };
        }
        Ok(Self(ids))
    }

    /// The governed paths whose entries differ between two keys.
    #[must_use]
    pub fn changed(&self, other: &Self) -> Vec<&'static str> {
        GOVERNED
            .iter()
            .zip(self.0.iter().zip(other.0.iter()))
            .filter(|(_, (a, b))| a != b)
            .map(|(g, _)| *g)
            .collect()
    }

    /// Whether the tree has an `allowed_signers` at all.
    #[must_use]
    pub const fn has_allowed_signers(&self) -> bool {
        self.0[3].is_some()
    }
}

/// One version of the trust configuration. A file that does not load is kept as its
/// error: whatever it would decide is refused (fail closed), and `verify` says why.
pub struct Config {
    pub key: ConfigKey,
    pub matrix: Result<Matrix, String>,
    /// `sha256:<hex>` of the matrix bytes.
    pub matrix_digest: String,
    /// `Ok(None)` without policies.
    pub policies: Result<Option<Mutex<PolicySet>>, String>,
    /// The policy-set digest, `none` or `unloadable`.
    pub policy_digest: String,
    pub settings: Result<Settings, String>,
    pub trust: Result<(AllowedSigners, RevokedSigners), String>,
}

/// The bytes of the plain file `rel` of `tree`, `None` when there is none; why not when
/// it is a folder, a symlink or unreadable.
fn plain_file(repo: &AuditRepo, tree: &Tree<'_>, rel: &str) -> Result<Option<Vec<u8>>, String> {
    match tree.get_path(Path::new(&repo.git_path(rel))) {
        Ok(e) if e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120_000 => repo
            .repo
            .find_blob(e.id())
            .map(|b| Some(b.content().to_vec()))
            .map_err(|e| AuditError::from(e).to_string()),
        Ok(_) => Err(format!("`{rel}` is not a plain file in this commit")),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(AuditError::from(e).to_string()),
    }
}

/// The signer files of `tree` (`allowed_signers`, `revoked_signers`), or why they do
/// not load: all `check` needs of the configuration at HEAD once it holds the fold.
///
/// # Errors
/// Why the files do not load.
pub fn trust_of(
    repo: &AuditRepo,
    tree: &Tree<'_>,
) -> Result<(AllowedSigners, RevokedSigners), String> {
    let allowed = plain_file(repo, tree, ALLOWED_SIGNERS)?.unwrap_or_default();
    let revoked = plain_file(repo, tree, REVOKED_SIGNERS)?.unwrap_or_default();
    let allowed = AllowedSigners::parse(
        Path::new(ALLOWED_SIGNERS),
        &String::from_utf8_lossy(&allowed),
    )
    .map_err(|e| e.to_string())?;
    let revoked = RevokedSigners::parse(
        Path::new(REVOKED_SIGNERS),
        &String::from_utf8_lossy(&revoked),
    )
    .map_err(|e| e.to_string())?;
    Ok((allowed, revoked))
}

impl Config {
    /// Reads the configuration of `tree`.
    ///
    /// # Errors
    /// An unreadable object; a file that does not parse is recorded in the result.
    pub fn load(repo: &AuditRepo, tree: &Tree<'_>) -> Result<Self, AuditError> {
        let key = ConfigKey::of(repo, tree)?;
        let matrix_bytes = plain_file(repo, tree, MATRIX_FILE);
        let (matrix, matrix_digest) = match matrix_bytes {
            Ok(Some(bytes)) => (
                matrix::parse(Path::new(MATRIX_FILE), &bytes).map_err(|d| d.to_string()),
                format!("sha256:{}", sha256_hex(&bytes)),
            ),
            Ok(None) => (
                Err(format!("there is no `{MATRIX_FILE}`")),
                "none".to_owned(),
            ),
            Err(e) => (Err(e), "unreadable".to_owned()),
        };
        let settings = match plain_file(repo, tree, SETTINGS_FILE) {
            Ok(Some(bytes)) => {
                parse_settings(Path::new(SETTINGS_FILE), &bytes).map_err(|e| e.to_string())
            }
            Ok(None) => Ok(Settings::default()),
            Err(e) => Err(e),
        };
        let trust = trust_of(repo, tree);
        let (policies, policy_digest) = match policy_files(repo, tree) {
            Ok(files) => match PolicySet::from_files(files) {
                Ok(Some(set)) => {
                    let digest = set.digest().to_owned();
                    (Ok(Some(Mutex::new(set))), digest)
                }
                Ok(None) => (Ok(None), "none".to_owned()),
                Err(e) => (Err(e.to_string()), "unloadable".to_owned()),
            },
            Err(e) => (Err(e), "unloadable".to_owned()),
        };
        Ok(Self {
            key,
            matrix,
            matrix_digest,
            policies,
            policy_digest,
            settings,
            trust,
        })
    }

    /// The matrix, or why there is none that decides.
    ///
    /// # Errors
    /// The matrix of this configuration does not load.
    pub fn matrix(&self) -> Result<&Matrix, String> {
        self.matrix
            .as_ref()
            .map_err(|e| format!("the matrix in force does not load: {e}"))
    }

    /// [`Config::matrix`], for a rule about `request`: a matrix that does not load makes
    /// the request's audit inconsistent (nothing is decided on it).
    ///
    /// # Errors
    /// [`super::WorkflowError::Inconsistent`] when the matrix does not load.
    pub fn matrix_for(&self, request: &str) -> Result<&Matrix, super::WorkflowError> {
        self.matrix()
            .map_err(|message| super::WorkflowError::Inconsistent {
                request: request.to_owned(),
                message,
            })
    }
}

/// Every file under `policies/` in `tree` (two levels: the folder and `data/`), as
/// (workspace-relative path, bytes). A symlink or submodule there is an error.
fn policy_files(repo: &AuditRepo, tree: &Tree<'_>) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    // A `policies` that exists but is not a folder (a file, a symlink, a submodule) is
    // not "no policies": it is a configuration nothing can evaluate.
    if let Ok(e) = tree.get_path(Path::new(&repo.git_path(POLICIES_DIR)))
        && e.kind() != Some(ObjectType::Tree)
    {
        return Err(format!("`{POLICIES_DIR}` is not a folder in this commit"));
    }
    let Some(dir) = repo
        .subtree(tree, POLICIES_DIR)
        .map_err(|e| e.to_string())?
    else {
        return Ok(out);
    };
    let mut walk = vec![(POLICIES_DIR.to_owned(), dir)];
    while let Some((base, t)) = walk.pop() {
        for e in &t {
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            let rel = format!("{base}/{name}");
            match (e.kind(), e.filemode()) {
                (Some(ObjectType::Blob), 0o100_644 | 0o100_755) => {
                    let blob = repo.repo.find_blob(e.id()).map_err(|e| e.to_string())?;
                    out.push((rel, blob.content().to_vec()));
                }
                (Some(ObjectType::Tree), _) if base == POLICIES_DIR && name == "data" => {
                    let sub = repo.repo.find_tree(e.id()).map_err(|e| e.to_string())?;
                    walk.push((rel, sub));
                }
                (Some(ObjectType::Tree), _) => {}
                _ => return Err(format!("`{rel}` is a symlink or a submodule, not a file")),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Configurations by version: each is read and compiled once.
#[derive(Default)]
pub struct Configs {
    by_key: HashMap<ConfigKey, Arc<Config>>,
}

impl Configs {
    /// The configuration of `tree`, read once per version.
    ///
    /// # Errors
    /// An unreadable object.
    pub fn at(&mut self, repo: &AuditRepo, tree: &Tree<'_>) -> Result<Arc<Config>, AuditError> {
        let key = ConfigKey::of(repo, tree)?;
        if let Some(c) = self.by_key.get(&key) {
            return Ok(c.clone());
        }
        let c = Arc::new(Config::load(repo, tree)?);
        self.by_key.insert(key, c.clone());
        Ok(c)
    }

    /// The configuration whose key is `key`, read from the tree `tree_id` only the first
    /// time that key is asked for (a history has few versions and many trees).
    ///
    /// # Errors
    /// An unreadable object.
    pub fn by_key(
        &mut self,
        repo: &AuditRepo,
        key: ConfigKey,
        tree_id: Oid,
    ) -> Result<Arc<Config>, AuditError> {
        if let Some(c) = self.by_key.get(&key) {
            return Ok(c.clone());
        }
        let tree = repo.repo.find_tree(tree_id)?;
        let c = Arc::new(Config::load(repo, &tree)?);
        self.by_key.insert(key, c.clone());
        Ok(c)
    }
}
