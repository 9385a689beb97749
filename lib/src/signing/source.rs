//! Where the signing key comes from ([`key_source`]: `--key`, `HITL_SIGNING_KEY`, git's
//! `user.signingkey`), and the `allowed_signers` line git's configuration names
//! ([`git_signer_line`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ssh_key::{PrivateKey, PublicKey};

use super::{AllowedSigners, KEY_ENV, NAMESPACE, SigningError};

/// Where the signing key comes from, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The `--key FILE` flag.
    Flag(PathBuf),
    /// The `HITL_SIGNING_KEY` environment variable.
    Env(PathBuf),
    /// git's `user.signingkey` (with `gpg.format=ssh`).
    GitConfig(PathBuf),
    /// git's `user.signingkey` holding a literal public key (`key::ssh-ed25519 AAAA...`
    /// or `ssh-ed25519 AAAA...`): the private half is in ssh-agent.
    GitLiteral(String),
}

impl KeySource {
    /// The key file (`None` for a literal key in git's configuration).
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Flag(p) | Self::Env(p) | Self::GitConfig(p) => Some(p),
            Self::GitLiteral(_) => None,
        }
    }

    /// Where the path came from, for messages: `--key`, `HITL_SIGNING_KEY` or
    /// `git config user.signingkey`.
    #[must_use]
    pub fn origin(&self) -> &'static str {
        match self {
            Self::Flag(_) => "--key",
            Self::Env(_) => KEY_ENV,
            Self::GitConfig(_) | Self::GitLiteral(_) => "git config user.signingkey",
        }
    }
}

/// Finds the signing key: the `--key FILE` flag, else `env` (the value of
/// `HITL_SIGNING_KEY`, passed in so this function does not read the environment; empty
/// counts as unset), else git's `user.signingkey` from the configuration of the repository
/// around `repo_dir` (or the global configuration outside one), used as git uses it with
/// `gpg.format=ssh`:
///
/// - it is only used when `gpg.format` is `ssh` (otherwise it names a GPG key);
/// - `key::...` or `ssh-...` is a literal public key, which signs through ssh-agent:
///   [`KeySource::GitLiteral`];
/// - a leading `~/` is expanded with `$HOME`; a relative path is taken from the
///   repository's work tree (where git runs `ssh-keygen`);
/// - a `.pub` path is replaced by the same path without `.pub` when that file exists.
///
/// Nothing configured is [`SigningError::NoKey`], whose message lists the three ways.
pub fn key_source(
    flag: Option<&Path>,
    env: Option<&OsStr>,
    repo_dir: &Path,
) -> Result<KeySource, SigningError> {
    if let Some(path) = flag {
        return Ok(KeySource::Flag(path.to_path_buf()));
    }
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        return Ok(KeySource::Env(PathBuf::from(value)));
    }
    let (config, workdir) = git_config(repo_dir)?;
    let get = |name: &str| config_string(&config, name);
    let Some(value) = get("user.signingkey")?.filter(|v| !v.trim().is_empty()) else {
        return Err(SigningError::NoKey {
            ignored_git_key: None,
        });
    };
    if get("gpg.format")?.as_deref() != Some("ssh") {
        return Err(SigningError::NoKey {
            ignored_git_key: Some(value),
        });
    }
    if value.starts_with("key::") || value.starts_with("ssh-") {
        return Ok(KeySource::GitLiteral(value));
    }
    let path = if let Some(rest) = value.strip_prefix("~/") {
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home).join(rest),
            None => {
                return Err(SigningError::InvalidGitKey {
                    value,
                    reason: "`$HOME` is not set to expand `~/`; use an absolute path".to_owned(),
                });
            }
        }
    } else if value.starts_with('~') {
        return Err(SigningError::InvalidGitKey {
            value,
            reason: "only `~/` is expanded, not `~user/`; use an absolute path".to_owned(),
        });
    } else {
        let path = PathBuf::from(&value);
        match workdir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        }
    };
    if path.extension() == Some(OsStr::new("pub")) {
        let private = path.with_extension("");
        if private.is_file() {
            return Ok(KeySource::GitConfig(private));
        }
    }
    Ok(KeySource::GitConfig(path))
}

/// git's configuration as seen from `dir` (the repository's, or the global one outside a
/// repository), and the repository's work tree.
fn git_config(dir: &Path) -> Result<(git2::Config, Option<PathBuf>), SigningError> {
    let (mut config, workdir) = match git2::Repository::discover(dir) {
        Ok(repo) => (repo.config()?, repo.workdir().map(Path::to_path_buf)),
        Err(e) if e.code() == git2::ErrorCode::NotFound => (git2::Config::open_default()?, None),
        Err(e) => return Err(e.into()),
    };
    Ok((config.snapshot()?, workdir))
}

fn config_string(config: &git2::Config, name: &str) -> Result<Option<String>, SigningError> {
    match config.get_string(name) {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(SigningError::Git(e)),
    }
}

/// The signer git's configuration names from `dir`: `user.email` and the public half of
/// `user.signingkey` (with `gpg.format=ssh`), as an `allowed_signers` line, for
/// `hitl init` to prefill. `None` when git knows no email or no SSH signing key. The key
/// file is read for its public half only (an encrypted key needs no passphrase for it).
///
/// # Errors
/// The configured key cannot be read or is not an OpenSSH key.
pub fn git_signer_line(dir: &Path) -> Result<Option<String>, SigningError> {
    let (config, _) = git_config(dir)?;
    let Some(email) = config_string(&config, "user.email")?.filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    // The email becomes a principal in a trust file: it must be one name, nothing that
    // `allowed_signers` would read as options, more principals, a pattern or a new line.
    if !crate::request::is_valid_principal(&email) || email.contains(['*', '?', '!']) {
        return Err(SigningError::InvalidGitKey {
            value: email.escape_debug().to_string(),
            reason: "git's `user.email` is not a principal hitl can list (no spaces, commas, quotes, patterns or control characters)".to_owned(),
        });
    }
    let source = match key_source(None, None, dir) {
        Ok(s) => s,
        Err(SigningError::NoKey { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let public = match &source {
        KeySource::GitLiteral(value) => {
            let text = value.strip_prefix("key::").unwrap_or(value).trim();
            PublicKey::from_openssh(text).map_err(|e| SigningError::InvalidGitKey {
                value: value.clone(),
                reason: e.to_string(),
            })?
        }
        other => {
            let path = other.path().unwrap_or(Path::new(""));
            let public_file = PathBuf::from(format!("{}.pub", path.display()));
            let invalid = |reason: String| SigningError::InvalidKey {
                path: path.to_path_buf(),
                reason,
            };
            // A key file is small and regular: never a FIFO that blocks, a device or a
            // huge file read to the end.
            let read = |p: &Path| {
                use std::io::Read as _;
                let fail = |source| SigningError::Read {
                    path: p.to_path_buf(),
                    source,
                };
                let meta = std::fs::metadata(p).map_err(fail)?;
                if !meta.is_file() || meta.len() > 64 * 1024 {
                    return Err(invalid("not a regular file of at most 64 KiB".to_owned()));
                }
                let mut text = String::new();
                std::fs::File::open(p)
                    .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
                    .map_err(fail)?;
                Ok(text)
            };
            if public_file.is_file() {
                PublicKey::from_openssh(read(&public_file)?.trim())
                    .map_err(|e| invalid(e.to_string()))?
            } else {
                let text = read(path)?;
                match PublicKey::from_openssh(text.trim()) {
                    Ok(k) => k,
                    Err(_) => PrivateKey::from_openssh(text.trim())
                        .map_err(|e| invalid(e.to_string()))?
                        .public_key()
                        .clone(),
                }
            }
        }
    };
    let mut public = public;
    public.set_comment("");
    let key = public
        .to_openssh()
        .map_err(|e| SigningError::InvalidGitKey {
            value: email.clone(),
            reason: e.to_string(),
        })?;
    let line = format!("{email} namespaces=\"git,hitl,hitl-approval\" {key}");
    // Read back, the line must say exactly this: one principal, for this key.
    let parsed = AllowedSigners::parse(Path::new(crate::workspace::ALLOWED_SIGNERS), &line)?;
    if parsed.entries.len() != 1
        || parsed
            .principals_for(&public, NAMESPACE, DateTime::<Utc>::MIN_UTC)
            .ok()
            != Some(vec![email.clone()])
    {
        return Err(SigningError::InvalidGitKey {
            value: email,
            reason:
                "the `allowed_signers` line made from it does not read back as that principal alone"
                    .to_owned(),
        });
    }
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;
    use crate::signing::test_support::*;
    use std::process::{Command, Stdio};

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?} failed");
    }

    #[test]
    fn key_source_order_flag_env_git() {
        let dir = TempDir::new("source");
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        let key_path = keygen(dir.path(), "id_ed25519", &["-t", "ed25519"], "");
        let key_str = key_path.to_str().unwrap();
        git(&repo, &["config", "gpg.format", "ssh"]);
        git(&repo, &["config", "user.signingkey", key_str]);

        let flag = Path::new("/flag/key");
        let env = OsStr::new("/env/key");
        assert_eq!(
            key_source(Some(flag), Some(env), &repo).unwrap(),
            KeySource::Flag(flag.to_path_buf())
        );
        assert_eq!(
            key_source(None, Some(env), &repo).unwrap(),
            KeySource::Env(PathBuf::from("/env/key"))
        );
        let sub = repo.join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            key_source(None, None, &sub).unwrap(),
            KeySource::GitConfig(key_path.clone())
        );
        // An empty variable counts as unset.
        assert_eq!(
            key_source(None, Some(OsStr::new("")), &repo).unwrap(),
            KeySource::GitConfig(key_path.clone())
        );

        // A `.pub` path becomes the private key when it exists.
        let pub_path = key_path.with_extension("pub");
        git(
            &repo,
            &["config", "user.signingkey", pub_path.to_str().unwrap()],
        );
        let source = key_source(None, None, &repo).unwrap();
        assert_eq!(source, KeySource::GitConfig(key_path.clone()));
        assert_eq!(source.origin(), "git config user.signingkey");
        assert!(SigningKey::from_file(source.path().unwrap(), &mut no_passphrase()).is_ok());
        std::fs::rename(&key_path, dir.path().join("moved")).unwrap();
        assert_eq!(
            key_source(None, None, &repo).unwrap(),
            KeySource::GitConfig(pub_path)
        );

        // A literal key signs through ssh-agent.
        git(
            &repo,
            &["config", "user.signingkey", &format!("key::{ED1}")],
        );
        let literal = key_source(None, None, &repo).unwrap();
        assert_eq!(literal, KeySource::GitLiteral(format!("key::{ED1}")));
        assert_eq!(literal.path(), None);
        assert!(matches!(
            SigningKey::load(&literal, None, &mut no_passphrase()),
            Err(SigningError::AgentUnavailable { .. })
        ));
        git(&repo, &["config", "user.signingkey", ED1]);
        assert_eq!(
            key_source(None, None, &repo).unwrap(),
            KeySource::GitLiteral(ED1.to_owned())
        );

        // `~/` is expanded with $HOME; relative paths are taken from the work tree.
        git(&repo, &["config", "user.signingkey", "~/.ssh/id_hitl"]);
        let home = std::env::var_os("HOME").unwrap();
        assert_eq!(
            key_source(None, None, &sub).unwrap(),
            KeySource::GitConfig(PathBuf::from(home).join(".ssh/id_hitl"))
        );
        git(&repo, &["config", "user.signingkey", "keys/id"]);
        let workdir = git2::Repository::discover(&sub)
            .unwrap()
            .workdir()
            .unwrap()
            .to_path_buf();
        assert_eq!(
            key_source(None, None, &sub).unwrap(),
            KeySource::GitConfig(workdir.join("keys/id"))
        );

        // Without gpg.format=ssh the value names a GPG key: not used, and the error says so.
        git(&repo, &["config", "gpg.format", "openpgp"]);
        git(&repo, &["config", "user.signingkey", "ABCD1234"]);
        let err = key_source(None, None, &repo).unwrap_err();
        assert!(
            matches!(&err, SigningError::NoKey { ignored_git_key: Some(k) } if k == "ABCD1234"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("--key FILE")
                && msg.contains("HITL_SIGNING_KEY")
                && msg.contains("user.signingkey"),
            "{msg}"
        );
    }
}
