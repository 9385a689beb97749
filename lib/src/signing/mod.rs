//! SSH signatures: hitl signs and verifies detached SSHSIG signatures, the format of
//! `ssh-keygen -Y sign` (namespace [`NAMESPACE`], hash sha512), so that every signature
//! hitl makes can be checked with plain OpenSSH:
//!
//! ```text
//! ssh-keygen -Y verify -n hitl -f allowed_signers -I PRINCIPAL -s FILE.sig < FILE
//! ```
//!
//! Who may sign is written in OpenSSH's `allowed_signers` format ([`AllowedSigners`]) and
//! keys that must no longer be trusted are listed in `revoked_signers` ([`RevokedSigners`]).
//! The signing key is found through [`key_source`] and loaded with [`SigningKey::from_file`].
//!
//! Every trust decision fails closed: an unknown key, a namespace or validity window that
//! does not allow the signature, a principal that does not match, an algorithm we cannot
//! check, or a file we cannot parse is an error, never a pass.

mod allowed;
mod key;
mod parser;
mod source;
#[cfg(test)]
mod test_support;
mod trust;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use ssh_key::public::KeyData;
use ssh_key::{EcdsaCurve, HashAlg, PublicKey};

use crate::decode::safe_path;

pub use allowed::{AllowedSigners, RevokedEntry, RevokedSigners, SignerEntry};
pub use key::{SigningKey, public_key};
pub use source::{KeySource, git_signer_line, key_source};
pub(crate) use trust::normalize_armor;
pub use trust::{Untrusted, trusted_principal, verify};

/// The SSHSIG namespace of hitl's detached signatures (`ssh-keygen -Y sign -n hitl`).
pub const NAMESPACE: &str = "hitl";

/// The SSHSIG namespace git uses for commit and tag signatures.
pub const GIT_NAMESPACE: &str = "git";

/// The name of the environment variable that names the signing key file.
pub const KEY_ENV: &str = "HITL_SIGNING_KEY";

/// RSA keys shorter than this are refused, as `ssh-key` (and modern OpenSSH) do.
const MIN_RSA_BITS: usize = 2048;

const SIG_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const SIG_END: &str = "-----END SSH SIGNATURE-----";

const ALLOWED_LINE_HINT: &str = "PRINCIPAL namespaces=\"hitl,git\" ssh-ed25519 AAAA...";

/// What went wrong while loading keys, signing, or checking a signature or a signer.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A file could not be read (a missing `allowed_signers` or `revoked_signers` is not
    /// an error: it is an empty list).
    #[error("cannot read `{}`: {source}", safe_path(path))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of `allowed_signers` or `revoked_signers` is malformed.
    #[error("`{}:{line}:{column}`: {message}", safe_path(file))]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong, with a hint where one helps.
        message: String,
    },
    /// The key file holds a public key only; signing needs the private key.
    #[error(
        "`{}` holds a public key only; hitl needs the private key file to sign (usually the same path without `.pub`)",
        safe_path(path)
    )]
    PublicKeyOnly {
        /// The file.
        path: PathBuf,
    },
    /// The key file is not an OpenSSH private key hitl can read.
    #[error("`{}` is not a usable OpenSSH private key: {reason}", safe_path(path))]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// Why, with a hint where one helps.
        reason: String,
    },
    /// The key is encrypted and no passphrase could be asked for.
    #[error(
        "key `{}` is protected by a passphrase; run hitl in a terminal so that it can ask for it",
        safe_path(path)
    )]
    PassphraseRequired {
        /// The key file.
        path: PathBuf,
    },
    /// The passphrase does not decrypt the key.
    #[error("wrong passphrase for key `{}`", safe_path(path))]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// Signing failed (a key type `ssh-key` cannot sign with, or a self-check failure).
    #[error("key `{}` cannot sign: {reason}", safe_path(path))]
    SignFailed {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An empty SSHSIG namespace.
    #[error("the signature namespace must not be empty")]
    EmptyNamespace,
    /// The key is a public key (a `.pub` file or git's literal `key::...`), so it signs
    /// through ssh-agent, and the agent cannot be reached.
    #[error(
        "signing with `{key}` needs ssh-agent, {reason}; start `ssh-agent` and `ssh-add` the private key, or pass the private key file with `--key FILE`"
    )]
    AgentUnavailable {
        /// The key as configured (a path or git's literal value).
        key: String,
        /// Why the agent cannot be used.
        reason: String,
    },
    /// ssh-agent is running but does not hold the key.
    #[error(
        "ssh-agent does not hold key `{fingerprint}` (`{key}`); add it with `ssh-add PRIVATE_KEY_FILE`"
    )]
    NotInAgent {
        /// The key's fingerprint.
        fingerprint: String,
        /// The key as configured (a path or git's literal value).
        key: String,
    },
    /// git's `user.signingkey` cannot be turned into a path.
    #[error("git's `user.signingkey` (`{value}`) is not usable: {reason}")]
    InvalidGitKey {
        /// The value of `user.signingkey`.
        value: String,
        /// Why, with a hint.
        reason: String,
    },
    /// No signing key was configured anywhere.
    #[error(
        "no signing key: pass `--key FILE`, set `HITL_SIGNING_KEY=FILE`, or set git's `user.signingkey` with `gpg.format=ssh`{}",
        ignored_git_key.as_ref().map_or_else(String::new, |k| format!(
            " (git's `user.signingkey` is `{k}` but `gpg.format` is not `ssh`, so hitl does not use it)"
        ))
    )]
    NoKey {
        /// git's `user.signingkey`, when it is set but `gpg.format` is not `ssh`.
        ignored_git_key: Option<String>,
    },
    /// Reading git's configuration failed.
    #[error("cannot read git's configuration: {0}")]
    Git(#[from] git2::Error),
    /// The text is not an armored SSH signature.
    #[error(
        "malformed ssh signature: {reason}; expected the output of `ssh-keygen -Y sign` (`{SIG_BEGIN}` ...)"
    )]
    MalformedSignature {
        /// Why.
        reason: String,
    },
    /// The signature was made for another namespace (for example a git commit signature).
    #[error("the signature is for namespace `{found}`, not `{expected}`")]
    WrongNamespace {
        /// The namespace asked for.
        expected: String,
        /// The namespace in the signature.
        found: String,
    },
    /// The signature does not match the data: the data was altered, or it is not the data
    /// that was signed.
    #[error(
        "the signature by key `{fingerprint}` does not match the signed data (the data was changed after signing, or another file was signed)"
    )]
    BadSignature {
        /// The fingerprint of the key in the signature.
        fingerprint: String,
    },
    /// A key or signature algorithm hitl cannot check.
    #[error(
        "unsupported key or signature algorithm `{algorithm}`; hitl supports ssh-ed25519, ecdsa-sha2-nistp256/384, rsa-sha2-256/512 (2048 bits or more) and their security-key forms"
    )]
    UnsupportedAlgorithm {
        /// The algorithm.
        algorithm: String,
    },
    /// No line of `allowed_signers` holds the key.
    #[error(
        "key `{fingerprint}` is not in `{}`; add a line `{ALLOWED_LINE_HINT}` to `{}`",
        safe_path(file),
        safe_path(file)
    )]
    UnknownKey {
        /// The key's fingerprint.
        fingerprint: String,
        /// The allowed-signers file.
        file: PathBuf,
    },
    /// The key's line does not allow the namespace.
    #[error(
        "key `{fingerprint}` may not sign in namespace `{namespace}`: `{}:{line}` allows only `{}`; add `{namespace}` to its `namespaces=\"...\"` option",
        safe_path(file),
        allowed.join(",")
    )]
    NamespaceNotAllowed {
        /// The key's fingerprint.
        fingerprint: String,
        /// The namespace asked for.
        namespace: String,
        /// The namespaces the line allows.
        allowed: Vec<String>,
        /// The allowed-signers file.
        file: PathBuf,
        /// The line.
        line: usize,
    },
    /// The key's line is not valid yet at the time asked for.
    #[error(
        "key `{fingerprint}` is not valid before {} (`{}:{line}` has `valid-after`), checked at {}",
        valid_after.format("%Y-%m-%dT%H:%M:%SZ"),
        safe_path(file),
        at.format("%Y-%m-%dT%H:%M:%SZ")
    )]
    NotYetValid {
        /// The key's fingerprint.
        fingerprint: String,
        /// Start of validity.
        valid_after: DateTime<Utc>,
        /// The time checked.
        at: DateTime<Utc>,
        /// The allowed-signers file.
        file: PathBuf,
        /// The line.
        line: usize,
    },
    /// The key's line has expired at the time asked for.
    #[error(
        "key `{fingerprint}` expired at {} (`{}:{line}` has `valid-before`), checked at {}",
        valid_before.format("%Y-%m-%dT%H:%M:%SZ"),
        safe_path(file),
        at.format("%Y-%m-%dT%H:%M:%SZ")
    )]
    Expired {
        /// The key's fingerprint.
        fingerprint: String,
        /// End of validity.
        valid_before: DateTime<Utc>,
        /// The time checked.
        at: DateTime<Utc>,
        /// The allowed-signers file.
        file: PathBuf,
        /// The line.
        line: usize,
    },
    /// The key is known, but not for this principal.
    #[error(
        "key `{fingerprint}` is not allowed to sign as `{principal}`: `{}` lists it for `{}`",
        safe_path(file),
        allowed.join(",")
    )]
    PrincipalMismatch {
        /// The principal asked for.
        principal: String,
        /// The key's fingerprint.
        fingerprint: String,
        /// The principal patterns the key's lines list.
        allowed: Vec<String>,
        /// The allowed-signers file.
        file: PathBuf,
    },
    /// The key is listed in `revoked_signers`.
    #[error("key `{fingerprint}` is revoked (`{}:{line}`)", safe_path(file))]
    Revoked {
        /// The key's fingerprint.
        fingerprint: String,
        /// The revoked-signers file.
        file: PathBuf,
        /// The line.
        line: usize,
    },
}

/// Fingerprint of a public key as `ssh-keygen -l` prints it: `SHA256:` and unpadded base64.
#[must_use]
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `None` if hitl can sign with or verify signatures of this key type, else a description
/// of the algorithm for an error.
fn unsupported(key: &KeyData) -> Option<String> {
    match key {
        KeyData::Ed25519(_) | KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_) => None,
        KeyData::Ecdsa(k) if matches!(k.curve(), EcdsaCurve::NistP256 | EcdsaCurve::NistP384) => {
            None
        }
        KeyData::Rsa(k) => {
            let bits =
                k.n.as_positive_bytes()
                    .map_or(0, |b| b.len().saturating_mul(8));
            (bits < MIN_RSA_BITS).then(|| format!("ssh-rsa ({bits} bits, {MIN_RSA_BITS} needed)"))
        }
        other => Some(other.algorithm().to_string()),
    }
}
