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

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use crate::decode::safe_path;

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
/// The line width of armored signatures (what `ssh-keygen` writes and `ssh-key` reads).
const SIG_LINE_WIDTH: usize = 70;
const CERT_SUFFIX: &str = "-cert-v01@openssh.com";

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

// ---------------------------------------------------------------------------------------
// Patterns (OpenSSH's match_pattern_list)
// ---------------------------------------------------------------------------------------

/// `*` and `?` wildcard match over characters, case-sensitive.
fn wildcard(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// OpenSSH's pattern-list semantics: `name` matches if some pattern matches it and no
/// negated pattern (`!pattern`) does.
fn matches_list(name: &str, patterns: &[String]) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard(name, negated) {
                return false;
            }
        } else if wildcard(name, pattern) {
            matched = true;
        }
    }
    matched
}

// ---------------------------------------------------------------------------------------
// allowed_signers
// ---------------------------------------------------------------------------------------

/// One line of an OpenSSH `allowed_signers` file (see `man ssh-keygen`, ALLOWED SIGNERS):
///
/// ```text
/// principals [options] keytype base64key [comment]
/// ```
///
/// `principals` is a comma-separated list of patterns (`*` and `?` wildcards, `!` negates,
/// as in OpenSSH). Options are comma separated with case-insensitive names:
/// `namespaces="a,b"` (patterns too), `valid-after="YYYYMMDD[HHMM[SS]][Z]"` and
/// `valid-before=...`. Unlike OpenSSH, which reads times without a `Z` (or `UTC`) suffix
/// as local time, hitl always reads them as UTC: write the `Z` to make both agree.
/// `cert-authority` lines are refused: hitl does not verify SSH certificates.
#[derive(Debug, Clone)]
pub struct SignerEntry {
    /// The principal patterns, as written.
    pub principals: Vec<String>,
    /// The namespace patterns of `namespaces="..."`; `None` allows every namespace.
    pub namespaces: Option<Vec<String>>,
    /// The key is valid from this time on (inclusive), if set.
    pub valid_after: Option<DateTime<Utc>>,
    /// The key is valid up to this time (inclusive), if set.
    pub valid_before: Option<DateTime<Utc>>,
    /// The signer's public key (with the line's comment, if any).
    pub key: PublicKey,
    /// The 1-based line number in the file.
    pub line: usize,
}

impl SignerEntry {
    /// True if the line's `namespaces` allow `namespace` (no option allows all).
    #[must_use]
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|patterns| matches_list(namespace, patterns))
    }

    /// True if `principal` matches the line's principal patterns.
    #[must_use]
    pub fn matches_principal(&self, principal: &str) -> bool {
        !principal.is_empty() && matches_list(principal, &self.principals)
    }

    /// True if the line holds `key` (key data compared, comments ignored).
    #[must_use]
    pub fn holds(&self, key: &PublicKey) -> bool {
        self.key.key_data() == key.key_data()
    }

    /// Checks namespace and validity window; the error names the line.
    fn admit(
        &self,
        file: &Path,
        fingerprint: &str,
        namespace: &str,
        at: DateTime<Utc>,
    ) -> Result<(), SigningError> {
        if !self.allows_namespace(namespace) {
            return Err(SigningError::NamespaceNotAllowed {
                fingerprint: fingerprint.to_owned(),
                namespace: namespace.to_owned(),
                allowed: self.namespaces.clone().unwrap_or_default(),
                file: file.to_path_buf(),
                line: self.line,
            });
        }
        if let Some(valid_after) = self.valid_after
            && at < valid_after
        {
            return Err(SigningError::NotYetValid {
                fingerprint: fingerprint.to_owned(),
                valid_after,
                at,
                file: file.to_path_buf(),
                line: self.line,
            });
        }
        if let Some(valid_before) = self.valid_before
            && at > valid_before
        {
            return Err(SigningError::Expired {
                fingerprint: fingerprint.to_owned(),
                valid_before,
                at,
                file: file.to_path_buf(),
                line: self.line,
            });
        }
        Ok(())
    }
}

/// The lines of an `allowed_signers` file: who may sign, with which key, in which
/// namespaces and when.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    /// The file the entries come from (named in errors).
    pub file: PathBuf,
    /// The entries, in file order.
    pub entries: Vec<SignerEntry>,
}

/// Keeps the most telling of several refusals: a time refusal from a line that allows the
/// namespace says more than a namespace refusal.
fn keep_best(best: &mut Option<SigningError>, err: SigningError) {
    let rank = |e: &SigningError| match e {
        SigningError::NamespaceNotAllowed { .. } => 0,
        _ => 1,
    };
    if best.as_ref().is_none_or(|b| rank(&err) > rank(b)) {
        *best = Some(err);
    }
}

impl AllowedSigners {
    /// Parses the text of an `allowed_signers` file; blank lines and `#` comments are
    /// skipped. A bad line is an error naming `file:line:column` and what is wrong.
    pub fn parse(file: &Path, text: &str) -> Result<Self, SigningError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let mut p = LineParser::new(file, index + 1, raw);
            if let Some(entry) = p.signer_entry()? {
                entries.push(entry);
            }
        }
        Ok(Self {
            file: file.to_path_buf(),
            entries,
        })
    }

    /// Loads an `allowed_signers` file; a missing file is an empty set (nobody is
    /// trusted), not an error. Any other read failure is an error.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        Self::parse(path, &read_optional(path)?.unwrap_or_default())
    }

    /// The principal patterns of every line that holds `key` and allows `namespace` at
    /// `at`, as written (so possibly with `*` or `?`), in file order without duplicates;
    /// negated patterns (`!name`) exclude principals and are not listed. Errors: [`SigningError::UnknownKey`] when
    /// no line holds the key, else (no line admits it) [`SigningError::NamespaceNotAllowed`],
    /// [`SigningError::NotYetValid`] or [`SigningError::Expired`].
    pub fn principals_for(
        &self,
        key: &PublicKey,
        namespace: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, SigningError> {
        let fp = fingerprint(key);
        let mut principals: Vec<String> = Vec::new();
        let mut known = false;
        let mut best = None;
        for entry in self.entries.iter().filter(|e| e.holds(key)) {
            known = true;
            match entry.admit(&self.file, &fp, namespace, at) {
                Ok(()) => {
                    for p in entry.principals.iter().filter(|p| !p.starts_with('!')) {
                        if !principals.contains(p) {
                            principals.push(p.clone());
                        }
                    }
                }
                Err(err) => keep_best(&mut best, err),
            }
        }
        if !principals.is_empty() {
            return Ok(principals);
        }
        Err(self.refusal(known, best, fp))
    }

    /// `Ok(())` if a line holds `key`, lists a principal pattern matching `principal`
    /// and allows `namespace` at `at` (what `ssh-keygen -Y verify -I principal` checks).
    /// A known key whose lines do not match the principal is a
    /// [`SigningError::PrincipalMismatch`]; the other errors are those of
    /// [`AllowedSigners::principals_for`].
    pub fn check(
        &self,
        key: &PublicKey,
        principal: &str,
        namespace: &str,
        at: DateTime<Utc>,
    ) -> Result<(), SigningError> {
        let fp = fingerprint(key);
        let holding: Vec<&SignerEntry> = self.entries.iter().filter(|e| e.holds(key)).collect();
        let matching: Vec<&SignerEntry> = holding
            .iter()
            .copied()
            .filter(|e| e.matches_principal(principal))
            .collect();
        if !holding.is_empty() && matching.is_empty() {
            let mut allowed: Vec<String> = Vec::new();
            for p in holding.iter().flat_map(|e| &e.principals) {
                if !allowed.contains(p) {
                    allowed.push(p.clone());
                }
            }
            return Err(SigningError::PrincipalMismatch {
                principal: principal.to_owned(),
                fingerprint: fp,
                allowed,
                file: self.file.clone(),
            });
        }
        let mut best = None;
        for entry in matching {
            match entry.admit(&self.file, &fp, namespace, at) {
                Ok(()) => return Ok(()),
                Err(err) => keep_best(&mut best, err),
            }
        }
        Err(self.refusal(!holding.is_empty(), best, fp))
    }

    fn refusal(&self, known: bool, best: Option<SigningError>, fp: String) -> SigningError {
        match best {
            Some(err) if known => err,
            _ => SigningError::UnknownKey {
                fingerprint: fp,
                file: self.file.clone(),
            },
        }
    }
}

/// Why a key may not act: a stable code (`signature-revoked`, `signature-expired`,
/// `signer-not-actor`, `signature-untrusted`, as `verify` reports them) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    pub code: &'static str,
    pub message: String,
}

/// The one trust decision of hitl: may `key` act, under `namespace` at `at`, given
/// `allowed` and `revoked`, and as whom? A revoked key acts for nobody; the key must
/// stand for exactly one principal, named in full (a key shared by several principals,
/// or trusted only through a pattern, names nobody); when `expected` is given, that
/// principal must be it. The CLI's identity, `verify`, `replay` and the workflow
/// engine's governance check all call this function.
///
/// # Errors
/// [`Untrusted`] with the code `verify` reports.
pub fn trusted_principal(
    allowed: &AllowedSigners,
    revoked: &RevokedSigners,
    key: &PublicKey,
    expected: Option<&str>,
    namespace: &str,
    at: DateTime<Utc>,
) -> Result<String, Untrusted> {
    let fp = fingerprint(key);
    if revoked.is_revoked(key) {
        return Err(Untrusted {
            code: "signature-revoked",
            message: format!("signed by revoked key {fp}"),
        });
    }
    let code_of = |e: &SigningError| match e {
        SigningError::Expired { .. } | SigningError::NotYetValid { .. } => "signature-expired",
        SigningError::PrincipalMismatch { .. } => "signer-not-actor",
        _ => "signature-untrusted",
    };
    if let Some(principal) = expected {
        allowed
            .check(key, principal, namespace, at)
            .map_err(|e| Untrusted {
                code: code_of(&e),
                message: e.to_string(),
            })?;
    }
    let principals = allowed
        .principals_for(key, namespace, at)
        .map_err(|e| Untrusted {
            code: code_of(&e),
            message: e.to_string(),
        })?;
    match (principals.as_slice(), expected) {
        ([one], None) if !one.contains(['*', '?']) => Ok(one.clone()),
        ([one], Some(p)) if one == p => Ok(one.clone()),
        _ => Err(Untrusted {
            code: "signer-not-actor",
            message: format!(
                "key {fp} stands for {} in `allowed_signers`, not for {} alone",
                principals.join(", "),
                expected.unwrap_or("one principal")
            ),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// revoked_signers
// ---------------------------------------------------------------------------------------

/// One revoked key.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    /// The key (with the line's comment, if any).
    pub key: PublicKey,
    /// The 1-based line number in the file.
    pub line: usize,
}

/// The keys of a `revoked_signers` file: one public key per line (`keytype base64
/// [comment]`); blank lines and `#` comments are skipped.
#[derive(Debug, Clone)]
pub struct RevokedSigners {
    /// The file the keys come from (named in errors).
    pub file: PathBuf,
    /// The revoked keys, in file order.
    pub entries: Vec<RevokedEntry>,
}

impl RevokedSigners {
    /// Parses the text of a `revoked_signers` file; a bad line is an error naming
    /// `file:line:column`.
    pub fn parse(file: &Path, text: &str) -> Result<Self, SigningError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let mut p = LineParser::new(file, index + 1, raw);
            p.skip_ws();
            if p.at_end() || p.peek() == Some('#') {
                continue;
            }
            let key = p.public_key()?;
            entries.push(RevokedEntry {
                key,
                line: index + 1,
            });
        }
        Ok(Self {
            file: file.to_path_buf(),
            entries,
        })
    }

    /// Loads a `revoked_signers` file; a missing file revokes nothing. Any other read
    /// failure is an error.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        Self::parse(path, &read_optional(path)?.unwrap_or_default())
    }

    /// True if `key` is revoked (key data compared, comments ignored).
    #[must_use]
    pub fn is_revoked(&self, key: &PublicKey) -> bool {
        self.entries
            .iter()
            .any(|e| e.key.key_data() == key.key_data())
    }

    /// `Ok(())` unless `key` is revoked; the error names the line.
    pub fn check(&self, key: &PublicKey) -> Result<(), SigningError> {
        match self
            .entries
            .iter()
            .find(|e| e.key.key_data() == key.key_data())
        {
            Some(entry) => Err(SigningError::Revoked {
                fingerprint: fingerprint(key),
                file: self.file.clone(),
                line: entry.line,
            }),
            None => Ok(()),
        }
    }
}

/// Reads a UTF-8 text file; `Ok(None)` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, SigningError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SigningError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Line parser
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct SigOptions {
    namespaces: Option<Vec<String>>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
}

struct LineParser<'a> {
    file: &'a Path,
    line: usize,
    text: &'a str,
    pos: usize,
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl<'a> LineParser<'a> {
    fn new(file: &'a Path, line: usize, raw: &'a str) -> Self {
        Self {
            file,
            line,
            text: raw.strip_suffix('\r').unwrap_or(raw),
            pos: 0,
        }
    }

    fn err(&self, at: usize, message: impl Into<String>) -> SigningError {
        let column = self.text.get(..at).map_or(1, |s| s.chars().count() + 1);
        SigningError::Parse {
            file: self.file.to_path_buf(),
            line: self.line,
            column,
            message: message.into(),
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_ws).len();
    }

    /// The next run of non-blank characters, without consuming it.
    fn peek_word(&self) -> &'a str {
        let rest = self.rest();
        rest.find(is_ws).map_or(rest, |end| &rest[..end])
    }

    /// Takes the next run of non-blank characters; returns its start and text.
    fn word(&mut self) -> (usize, &'a str) {
        let start = self.pos;
        let word = self.peek_word();
        self.pos += word.len();
        (start, word)
    }

    /// Takes a `"..."` string (`\"` stands for `"`), as OpenSSH's `opt_dequote`.
    fn quoted(&mut self, what: &str) -> Result<String, SigningError> {
        let start = self.pos;
        if self.peek() != Some('"') {
            return Err(self.err(start, format!("{what} must be quoted: `\"...\"`")));
        }
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1).peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if chars.peek().map(|&(_, n)| n) == Some('"') => {
                    out.push('"');
                    chars.next();
                }
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.err(start, format!("{what} has no closing `\"`")))
    }

    /// Parses one `allowed_signers` line; `None` for blank and comment lines.
    fn signer_entry(&mut self) -> Result<Option<SignerEntry>, SigningError> {
        self.skip_ws();
        if self.at_end() || self.peek() == Some('#') {
            return Ok(None);
        }
        let principals_at = self.pos;
        let principals_text = if self.peek() == Some('"') {
            self.quoted("the principals")?
        } else {
            self.word().1.to_owned()
        };
        let principals: Vec<String> = principals_text.split(',').map(str::to_owned).collect();
        if principals.iter().any(String::is_empty) {
            return Err(self.err(
                principals_at,
                format!(
                    "empty principal in `{principals_text}`; separate principals with single commas"
                ),
            ));
        }
        if self.peek().is_some_and(|c| !is_ws(c)) {
            return Err(self.err(self.pos, "expected a blank after the principals"));
        }
        self.skip_ws();
        if self.at_end() {
            return Err(self.err(
                self.pos,
                "missing key after the principals; expected `PRINCIPALS [OPTIONS] KEYTYPE BASE64KEY`",
            ));
        }
        let options = if is_key_type(self.peek_word()) {
            SigOptions::default()
        } else {
            let options = self.options()?;
            self.skip_ws();
            if self.at_end() {
                return Err(self.err(
                    self.pos,
                    "missing key after the options; expected `KEYTYPE BASE64KEY`",
                ));
            }
            options
        };
        let key = self.public_key()?;
        Ok(Some(SignerEntry {
            principals,
            namespaces: options.namespaces,
            valid_after: options.valid_after,
            valid_before: options.valid_before,
            key,
            line: self.line,
        }))
    }

    /// Parses the options field, as OpenSSH's `sshsigopt_parse`.
    fn options(&mut self) -> Result<SigOptions, SigningError> {
        let field_at = self.pos;
        let mut opts = SigOptions::default();
        loop {
            let start = self.pos;
            let rest = self.rest();
            let name_len = rest
                .find(|c: char| c == '=' || c == ',' || is_ws(c))
                .unwrap_or(rest.len());
            let name = &rest[..name_len];
            let lower = name.to_ascii_lowercase();
            if lower == "cert-authority" {
                return Err(self.err(
                    start,
                    "`cert-authority` is not supported: hitl does not verify ssh certificates; list each signer's own key instead",
                ));
            }
            if !matches!(
                lower.as_str(),
                "namespaces" | "valid-after" | "valid-before"
            ) {
                let shown = if name.is_empty() { rest } else { name };
                return Err(self.err(
                    start,
                    format!(
                        "unknown option or key type `{shown}`; options are `namespaces=\"...\"`, `valid-after=\"...\"` and `valid-before=\"...\"`, followed by `KEYTYPE BASE64KEY`"
                    ),
                ));
            }
            if !rest[name_len..].starts_with('=') {
                return Err(self.err(
                    start,
                    format!("option `{name}` needs a value: `{lower}=\"...\"`"),
                ));
            }
            self.pos += name_len + 1;
            let value_at = self.pos;
            let value = self.quoted(&format!("the value of `{lower}`"))?;
            let duplicate = || self.err(start, format!("option `{lower}` is given twice"));
            match lower.as_str() {
                "namespaces" => {
                    if opts.namespaces.is_some() {
                        return Err(duplicate());
                    }
                    let list: Vec<String> = value.split(',').map(str::to_owned).collect();
                    if list
                        .iter()
                        .any(|n| n.is_empty() || n.contains(char::is_whitespace))
                    {
                        return Err(self.err(
                            value_at,
                            format!(
                                "bad namespace list `{value}`; write names separated by commas, without blanks: `namespaces=\"hitl,git\"`"
                            ),
                        ));
                    }
                    opts.namespaces = Some(list);
                }
                "valid-after" => {
                    if opts.valid_after.is_some() {
                        return Err(duplicate());
                    }
                    opts.valid_after = Some(self.time(value_at, &lower, &value)?);
                }
                _ => {
                    if opts.valid_before.is_some() {
                        return Err(duplicate());
                    }
                    opts.valid_before = Some(self.time(value_at, &lower, &value)?);
                }
            }
            match self.peek() {
                None => break,
                Some(c) if is_ws(c) => break,
                Some(',') => {
                    self.pos += 1;
                    if self.peek().is_none_or(is_ws) {
                        return Err(self.err(self.pos, "expected another option after `,`"));
                    }
                }
                Some(c) => {
                    return Err(self.err(
                        self.pos,
                        format!("unexpected `{c}` after an option; separate options with `,`"),
                    ));
                }
            }
        }
        if let (Some(after), Some(before)) = (opts.valid_after, opts.valid_before)
            && before <= after
        {
            return Err(self.err(field_at, "`valid-before` is not after `valid-after`"));
        }
        Ok(opts)
    }

    fn time(&self, at: usize, option: &str, value: &str) -> Result<DateTime<Utc>, SigningError> {
        parse_time(value).ok_or_else(|| {
            self.err(
                at,
                format!(
                    "invalid time `{value}` for `{option}`; expected `YYYYMMDD[HHMM[SS]][Z]` (always read as UTC)"
                ),
            )
        })
    }

    /// Parses `keytype base64 [comment]` from the current position.
    fn public_key(&mut self) -> Result<PublicKey, SigningError> {
        let (type_at, key_type) = self.word();
        if key_type.ends_with(CERT_SUFFIX) {
            return Err(self.err(
                type_at,
                format!(
                    "`{key_type}` is a certificate; hitl does not verify ssh certificates, list the plain public key instead"
                ),
            ));
        }
        if !is_key_type(key_type) {
            return Err(self.err(
                type_at,
                format!("unknown key type `{key_type}`; expected e.g. `ssh-ed25519 AAAA...`"),
            ));
        }
        self.skip_ws();
        let (data_at, data) = self.word();
        if data.is_empty() {
            return Err(self.err(
                data_at,
                format!("missing base64 key data after `{key_type}`"),
            ));
        }
        self.skip_ws();
        let comment = self.rest().trim_end();
        let mut key = PublicKey::from_openssh(&format!("{key_type} {data}")).map_err(|e| {
            self.err(
                data_at,
                format!("invalid `{key_type}` key data ({e}); copy the line from the `.pub` file"),
            )
        })?;
        key.set_comment(comment);
        Ok(key)
    }
}

/// True for the name of a plain (non-certificate) public key type.
fn is_key_type(word: &str) -> bool {
    word.ends_with(CERT_SUFFIX)
        || Algorithm::new(word).is_ok_and(|a| !matches!(a, Algorithm::Other(_)))
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, optionally followed by `Z` or `UTC`;
/// always UTC.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let digits = if value.len() > 1 && value.get(value.len() - 1..)?.eq_ignore_ascii_case("z") {
        value.get(..value.len() - 1)?
    } else if value.len() > 3 && value.get(value.len() - 3..)?.eq_ignore_ascii_case("utc") {
        value.get(..value.len() - 3)?
    } else {
        value
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| digits.get(range)?.parse::<u32>().ok();
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (num(8..10)?, num(10..12)?, 0),
        14 => (num(8..10)?, num(10..12)?, num(12..14)?),
        _ => return None,
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(4..6)?, num(6..8)?)?;
    Some(date.and_hms_opt(hour, minute, second)?.and_utc())
}

// ---------------------------------------------------------------------------------------
// Signing key
// ---------------------------------------------------------------------------------------

/// A key hitl signs with: a loaded (decrypted) OpenSSH private key, or a public key whose
/// private half ssh-agent holds.
pub struct SigningKey {
    backend: Backend,
    /// The key file, or git's literal `key::...` value for an agent key.
    path: PathBuf,
}

enum Backend {
    File(Box<PrivateKey>),
    Agent { public: PublicKey, socket: PathBuf },
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("path", &self.path)
            .field("algorithm", &self.public().algorithm().as_str())
            .field("fingerprint", &self.fingerprint())
            .field("agent", &matches!(self.backend, Backend::Agent { .. }))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads the key `source` names, as `ssh-keygen -Y sign -f` and git do:
    ///
    /// - a private key file is read; if it is encrypted and ssh-agent (at `agent`, the
    ///   value of `SSH_AUTH_SOCK`, passed in so this function does not read the
    ///   environment) holds it, the agent signs and no passphrase is asked; otherwise
    ///   `passphrase()` is called as in [`SigningKey::from_file`];
    /// - a public key file (`.pub`, or a file holding one public key line) or git's literal
    ///   `key::ssh-ed25519 AAAA...` signs through ssh-agent: no `agent` is
    ///   [`SigningError::AgentUnavailable`], an agent without the key is
    ///   [`SigningError::NotInAgent`].
    pub fn load(
        source: &KeySource,
        agent: Option<&Path>,
        passphrase: &mut dyn FnMut() -> Option<String>,
    ) -> Result<Self, SigningError> {
        let path = match source {
            KeySource::GitLiteral(value) => {
                let text = value.strip_prefix("key::").unwrap_or(value);
                let public = PublicKey::from_openssh(text.trim()).map_err(|e| {
                    SigningError::InvalidGitKey {
                        value: value.clone(),
                        reason: format!("it is not an OpenSSH public key ({e})"),
                    }
                })?;
                return Self::from_agent(public, PathBuf::from(value), agent);
            }
            KeySource::Flag(p) | KeySource::Env(p) | KeySource::GitConfig(p) => p,
        };
        match Self::from_file(path, &mut || None) {
            Err(SigningError::PublicKeyOnly { .. }) => {
                let public = read_public(path)?;
                Self::from_agent(public, path.clone(), agent)
            }
            Err(SigningError::PassphraseRequired { .. }) => {
                // Encrypted: the agent may hold it already (as ssh-keygen tries first).
                if let Some(public) = encrypted_public(path)
                    && let Some(socket) = agent
                    && agent_holds(socket, &public).unwrap_or(false)
                {
                    return Self::from_agent(public, path.clone(), agent);
                }
                Self::from_file(path, passphrase)
            }
            other => other,
        }
    }

    /// A key whose private half ssh-agent holds, at socket `agent` (`SSH_AUTH_SOCK`).
    /// `label` names the key in messages (its `.pub` file, or git's literal value).
    pub fn from_agent(
        public: PublicKey,
        label: PathBuf,
        agent: Option<&Path>,
    ) -> Result<Self, SigningError> {
        let key = label.display().to_string();
        if let Some(algorithm) = unsupported(public.key_data()) {
            return Err(SigningError::SignFailed {
                path: label,
                reason: format!("hitl cannot sign with `{algorithm}` keys"),
            });
        }
        let Some(socket) = agent.filter(|s| !s.as_os_str().is_empty()) else {
            return Err(SigningError::AgentUnavailable {
                key,
                reason: "but `SSH_AUTH_SOCK` is not set".to_owned(),
            });
        };
        match agent_holds(socket, &public) {
            Ok(true) => Ok(Self {
                backend: Backend::Agent {
                    public,
                    socket: socket.to_path_buf(),
                },
                path: label,
            }),
            Ok(false) => Err(SigningError::NotInAgent {
                fingerprint: fingerprint(&public),
                key,
            }),
            Err(reason) => Err(SigningError::AgentUnavailable { key, reason }),
        }
    }

    /// Reads an OpenSSH private key file. If it is encrypted, `passphrase()` is called
    /// once for the passphrase (`None`, e.g. without a terminal, is
    /// [`SigningError::PassphraseRequired`]; a wrong one is
    /// [`SigningError::WrongPassphrase`]). A `.pub` path or a file holding only a public
    /// key is [`SigningError::PublicKeyOnly`].
    pub fn from_file(
        path: &Path,
        passphrase: &mut dyn FnMut() -> Option<String>,
    ) -> Result<Self, SigningError> {
        if path.extension() == Some(OsStr::new("pub")) {
            return Err(SigningError::PublicKeyOnly {
                path: path.to_path_buf(),
            });
        }
        let mut bytes = std::fs::read(path).map_err(|source| SigningError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed = Self::parse(path, bytes.trim_ascii());
        // Best effort: do not leave the key text around longer than needed.
        bytes.fill(0);
        std::hint::black_box(&bytes);
        let key = parsed?;
        let key = if key.is_encrypted() {
            let Some(pass) = passphrase() else {
                return Err(SigningError::PassphraseRequired {
                    path: path.to_path_buf(),
                });
            };
            let mut pass = pass.into_bytes();
            let decrypted = key.decrypt(&pass);
            pass.fill(0);
            std::hint::black_box(&pass);
            match decrypted {
                Ok(key) => key,
                Err(ssh_key::Error::Crypto) => {
                    return Err(SigningError::WrongPassphrase {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) => {
                    return Err(SigningError::InvalidKey {
                        path: path.to_path_buf(),
                        reason: format!("cannot decrypt it: {e}"),
                    });
                }
            }
        } else {
            key
        };
        let signable = matches!(
            key.public_key().key_data(),
            KeyData::Ed25519(_) | KeyData::Ecdsa(_) | KeyData::Rsa(_)
        );
        if let Some(algorithm) = unsupported(key.public_key().key_data())
            .or_else(|| (!signable).then(|| key.algorithm().as_str().to_owned()))
        {
            return Err(SigningError::SignFailed {
                path: path.to_path_buf(),
                reason: format!(
                    "hitl cannot sign with `{algorithm}` keys; use an ed25519, ecdsa (nistp256 or nistp384) or rsa key"
                ),
            });
        }
        Ok(Self {
            backend: Backend::File(Box::new(key)),
            path: path.to_path_buf(),
        })
    }

    fn parse(path: &Path, text: &[u8]) -> Result<PrivateKey, SigningError> {
        let invalid = |reason: String| SigningError::InvalidKey {
            path: path.to_path_buf(),
            reason,
        };
        if text.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----") {
            return PrivateKey::from_openssh(text).map_err(|e| invalid(e.to_string()));
        }
        if text.starts_with(b"-----BEGIN ") && text.windows(11).any(|w| w == b"PRIVATE KEY") {
            return Err(invalid(
                "it is in the older PEM/PKCS#8 format; convert it with `ssh-keygen -p -f FILE`"
                    .to_owned(),
            ));
        }
        let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        if std::str::from_utf8(first_line).is_ok_and(|l| PublicKey::from_openssh(l).is_ok()) {
            return Err(SigningError::PublicKeyOnly {
                path: path.to_path_buf(),
            });
        }
        Err(invalid(
            "expected `-----BEGIN OPENSSH PRIVATE KEY-----`, as `ssh-keygen` writes".to_owned(),
        ))
    }

    /// The public half of the key.
    #[must_use]
    pub fn public(&self) -> &PublicKey {
        match &self.backend {
            Backend::File(key) => key.public_key(),
            Backend::Agent { public, .. } => public,
        }
    }

    /// Whether ssh-agent makes the signatures.
    #[must_use]
    pub fn is_agent(&self) -> bool {
        matches!(self.backend, Backend::Agent { .. })
    }

    /// The file the key was read from (for an agent key: its `.pub` file, or git's
    /// literal `key::...` value).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key's fingerprint as `ssh-keygen -l` prints it: `SHA256:...`.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        fingerprint(self.public())
    }

    /// An armored SSHSIG (`-----BEGIN SSH SIGNATURE-----` ..., LF line endings, final
    /// newline) over `msg` in `namespace`, hashed with sha512 as `ssh-keygen -Y sign`
    /// does; RSA keys make `rsa-sha2-512` signatures. The signature is verified before
    /// it is returned.
    pub fn sign(&self, namespace: &str, msg: &[u8]) -> Result<String, SigningError> {
        if namespace.is_empty() {
            return Err(SigningError::EmptyNamespace);
        }
        let failed = |reason: String| SigningError::SignFailed {
            path: self.path.clone(),
            reason,
        };
        let sig = match &self.backend {
            Backend::File(key) => {
                sign_sshsig(key, namespace, msg).map_err(|e| failed(e.to_string()))?
            }
            Backend::Agent { public, socket } => sign_sshsig_agent(socket, public, namespace, msg)
                .map_err(|e| failed(format!("ssh-agent: {e}")))?,
        };
        self.public()
            .verify(namespace, msg, &sig)
            .map_err(|e| failed(format!("the new signature does not verify ({e})")))?;
        sig.to_pem(LineEnding::LF)
            .map_err(|e| failed(e.to_string()))
    }
}

/// The one place that makes an SSHSIG: sha512, as `ssh-keygen -Y sign`.
///
/// RSA keys are signed here with the `rsa` crate directly (`rsa-sha2-512`, PKCS#1 v1.5):
/// `ssh-key` 0.6.7 builds the `rsa` key from the primes `[p, p]` instead of `[p, q]`
/// (RustCrypto/SSH#387), which `rsa` 0.9.7 and later reject, so its own RSA signing
/// always fails. Other key types use `ssh-key`'s signing.
fn sign_sshsig(key: &PrivateKey, namespace: &str, msg: &[u8]) -> ssh_key::Result<SshSig> {
    match key.key_data() {
        KeypairData::Rsa(keypair) => sign_sshsig_rsa(keypair, namespace, msg),
        _ => key.sign(namespace, HashAlg::Sha512, msg),
    }
}

/// An SSHSIG (sha512) made by ssh-agent at `socket` with the key `public`. RSA keys are
/// asked for `rsa-sha2-512` signatures.
fn sign_sshsig_agent(
    socket: &Path,
    public: &PublicKey,
    namespace: &str,
    msg: &[u8],
) -> Result<SshSig, String> {
    let signed_data =
        SshSig::signed_data(namespace, HashAlg::Sha512, msg).map_err(|e| e.to_string())?;
    let mut client = ssh_agent_client_rs::Client::connect(socket).map_err(|e| e.to_string())?;
    let signature = client.sign(public, &signed_data).map_err(|e| match e {
        ssh_agent_client_rs::Error::RemoteFailure => {
            "the agent refused to sign (a confirmation denied, or the key was removed)".to_owned()
        }
        e => e.to_string(),
    })?;
    SshSig::new(
        public.key_data().clone(),
        namespace,
        HashAlg::Sha512,
        signature,
    )
    .map_err(|e| e.to_string())
}

/// Whether ssh-agent at `socket` holds `public`; `Err` says why the agent cannot be asked.
fn agent_holds(socket: &Path, public: &PublicKey) -> Result<bool, String> {
    let mut client = ssh_agent_client_rs::Client::connect(socket)
        .map_err(|e| format!("but `{}` does not answer ({e})", socket.display()))?;
    let identities = client
        .list_all_identities()
        .map_err(|e| format!("but `{}` does not answer ({e})", socket.display()))?;
    Ok(identities.iter().any(|identity| {
        matches!(identity, ssh_agent_client_rs::Identity::PublicKey(k) if k.key_data() == public.key_data())
    }))
}

/// The public key of a file that holds one public key line (a `.pub` file).
fn read_public(path: &Path) -> Result<PublicKey, SigningError> {
    let text = std::fs::read_to_string(path).map_err(|source| SigningError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    line.and_then(|l| PublicKey::from_openssh(l).ok())
        .ok_or_else(|| SigningError::InvalidKey {
            path: path.to_path_buf(),
            reason: "expected one OpenSSH public key line (`ssh-ed25519 AAAA...`) or a private key"
                .to_owned(),
        })
}

/// The public key stored in the clear in an encrypted OpenSSH private key file.
fn encrypted_public(path: &Path) -> Option<PublicKey> {
    let bytes = std::fs::read(path).ok()?;
    PrivateKey::from_openssh(bytes.trim_ascii())
        .ok()
        .map(|k| k.public_key().clone())
}

/// An `rsa-sha2-512` SSHSIG, made with an `rsa` key built from `[p, q]`.
fn sign_sshsig_rsa(keypair: &RsaKeypair, namespace: &str, msg: &[u8]) -> ssh_key::Result<SshSig> {
    use rsa::signature::{SignatureEncoding, Signer};

    let uint = rsa::BigUint::try_from;
    let private = rsa::RsaPrivateKey::from_components(
        uint(&keypair.public.n)?,
        uint(&keypair.public.e)?,
        uint(&keypair.private.d)?,
        vec![uint(&keypair.private.p)?, uint(&keypair.private.q)?],
    )?;
    let signed_data = SshSig::signed_data(namespace, HashAlg::Sha512, msg)?;
    let raw = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha512>::new(private)
        .try_sign(&signed_data)?
        .to_vec();
    let signature = ssh_key::Signature::new(
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        raw,
    )?;
    SshSig::new(
        KeyData::Rsa(keypair.public.clone()),
        namespace,
        HashAlg::Sha512,
        signature,
    )
}

// ---------------------------------------------------------------------------------------
// Key source
// ---------------------------------------------------------------------------------------

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
    let line = format!("{email} namespaces=\"git,hitl\" {key}");
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

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// Re-wraps the body of an armored signature at the width `ssh-key` expects, so that CRLF
/// line endings, other line widths and surrounding blanks are accepted (as OpenSSH does).
fn normalize_armor(armored: &str) -> Result<String, SigningError> {
    let malformed = |reason: &str| SigningError::MalformedSignature {
        reason: reason.to_owned(),
    };
    let body = armored
        .trim()
        .strip_prefix(SIG_BEGIN)
        .ok_or_else(|| malformed(&format!("it does not start with `{SIG_BEGIN}`")))?
        .strip_suffix(SIG_END)
        .ok_or_else(|| malformed(&format!("it does not end with `{SIG_END}`")))?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if b64.is_empty() || !b64.is_ascii() {
        return Err(malformed("the body is not base64"));
    }
    let mut out = String::with_capacity(b64.len() + 80);
    out.push_str(SIG_BEGIN);
    out.push('\n');
    for chunk in b64.as_bytes().chunks(SIG_LINE_WIDTH) {
        out.push_str(std::str::from_utf8(chunk).map_err(|_| malformed("the body is not base64"))?);
        out.push('\n');
    }
    out.push_str(SIG_END);
    out.push('\n');
    Ok(out)
}

/// Verifies an armored SSHSIG over `msg`: parses it ([`SigningError::MalformedSignature`]),
/// checks its namespace is `namespace` ([`SigningError::WrongNamespace`]) and its
/// algorithm is one hitl supports ([`SigningError::UnsupportedAlgorithm`]), checks it
/// cryptographically ([`SigningError::BadSignature`]) and returns the signer's public key.
/// Whether that key may sign is for [`AllowedSigners`] and [`RevokedSigners`] to say.
pub fn verify(armored: &str, namespace: &str, msg: &[u8]) -> Result<PublicKey, SigningError> {
    if namespace.is_empty() {
        return Err(SigningError::EmptyNamespace);
    }
    let sig = SshSig::from_pem(normalize_armor(armored)?).map_err(|e| {
        SigningError::MalformedSignature {
            reason: e.to_string(),
        }
    })?;
    if sig.version() != SshSig::VERSION {
        return Err(SigningError::MalformedSignature {
            reason: format!("unsupported version {}", sig.version()),
        });
    }
    if sig.namespace() != namespace {
        return Err(SigningError::WrongNamespace {
            expected: namespace.to_owned(),
            found: sig.namespace().to_owned(),
        });
    }
    if let Some(algorithm) = unsupported(sig.public_key()) {
        return Err(SigningError::UnsupportedAlgorithm { algorithm });
    }
    if let Algorithm::Rsa { hash: None } = sig.signature().algorithm() {
        return Err(SigningError::UnsupportedAlgorithm {
            algorithm: "ssh-rsa (sha1)".to_owned(),
        });
    }
    let key = PublicKey::from(sig.public_key().clone());
    key.verify(namespace, msg, &sig)
        .map_err(|_| SigningError::BadSignature {
            fingerprint: fingerprint(&key),
        })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let dir = std::env::temp_dir()
                .join(format!("hitl-signing-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Generates a key with ssh-keygen; returns the private key path.
    fn keygen(dir: &Path, name: &str, args: &[&str], passphrase: &str) -> PathBuf {
        let path = dir.join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q"])
            .args(args)
            .args(["-N", passphrase, "-C", "test@hitl", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-keygen {args:?} failed");
        path
    }

    fn no_passphrase() -> impl FnMut() -> Option<String> {
        || panic!("no passphrase expected")
    }

    /// Runs `ssh-keygen -Y verify`; true on exit 0.
    fn ssh_verify(
        dir: &Path,
        allowed: &str,
        principal: &str,
        namespace: &str,
        msg: &[u8],
        sig: &str,
        extra: &[&str],
    ) -> bool {
        let allowed_path = dir.join("allowed_signers.ssh");
        let sig_path = dir.join("msg.sig.ssh");
        std::fs::write(&allowed_path, allowed).unwrap();
        std::fs::write(&sig_path, sig).unwrap();
        let mut child = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", namespace, "-I", principal, "-f"])
            .arg(&allowed_path)
            .arg("-s")
            .arg(&sig_path)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(msg).unwrap();
        child.wait().unwrap().success()
    }

    /// Runs `ssh-keygen -Y sign`; returns the armored signature.
    fn ssh_sign(dir: &Path, key: &Path, namespace: &str, msg: &[u8]) -> String {
        let file = dir.join("to-sign");
        std::fs::write(&file, msg).unwrap();
        let status = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(key)
            .arg(&file)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-keygen -Y sign failed");
        let sig_path = dir.join("to-sign.sig");
        let sig = std::fs::read_to_string(&sig_path).unwrap();
        std::fs::remove_file(&sig_path).unwrap();
        sig
    }

    fn pub_line(key: &Path) -> String {
        std::fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    const MSG: &[u8] = b"approve refund-4711\n";

    /// ssh-keygen -Y sign -> our verify: accepted, tampering and namespace detected.
    fn theirs_to_ours(dir: &Path, key_path: &Path) {
        let public = PublicKey::from_openssh(&pub_line(key_path)).unwrap();
        let fp = fingerprint(&public);
        let theirs = ssh_sign(dir, key_path, NAMESPACE, MSG);
        let signer = verify(&theirs, NAMESPACE, MSG).unwrap();
        assert_eq!(signer.key_data(), public.key_data());
        assert_eq!(fingerprint(&signer), fp);
        assert!(matches!(
            verify(&theirs, NAMESPACE, b"approve refund-4712\n"),
            Err(SigningError::BadSignature { fingerprint }) if fingerprint == fp
        ));
        let git_sig = ssh_sign(dir, key_path, GIT_NAMESPACE, MSG);
        match verify(&git_sig, NAMESPACE, MSG) {
            Err(SigningError::WrongNamespace { expected, found }) => {
                assert_eq!(expected, "hitl");
                assert_eq!(found, "git");
            }
            other => panic!("expected WrongNamespace, got {other:?}"),
        }
        assert_eq!(
            verify(&git_sig, GIT_NAMESPACE, MSG).unwrap().key_data(),
            public.key_data()
        );
    }

    /// Our sign -> ssh-keygen -Y verify: accepted; and the check can fail. Returns the
    /// signature.
    fn ours_to_theirs(dir: &Path, key_path: &Path, key: &SigningKey) -> SshSig {
        let allowed = format!(
            "lea@example.com namespaces=\"hitl\" {}\n",
            pub_line(key_path)
        );
        let sig = key.sign(NAMESPACE, MSG).unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        assert!(sig.ends_with("-----END SSH SIGNATURE-----\n"));
        assert!(!sig.contains('\r'));
        let lea = "lea@example.com";
        assert!(ssh_verify(dir, &allowed, lea, NAMESPACE, MSG, &sig, &[]));
        // The check can fail: altered message, other principal, other namespace.
        assert!(!ssh_verify(
            dir,
            &allowed,
            lea,
            NAMESPACE,
            b"approve refund-4712\n",
            &sig,
            &[]
        ));
        assert!(!ssh_verify(
            dir,
            &allowed,
            "max@example.com",
            NAMESPACE,
            MSG,
            &sig,
            &[]
        ));
        assert!(!ssh_verify(
            dir,
            &allowed,
            lea,
            GIT_NAMESPACE,
            MSG,
            &sig,
            &[]
        ));
        // Our own verify accepts it too.
        let signer = verify(&sig, NAMESPACE, MSG).unwrap();
        assert_eq!(signer.key_data(), key.public().key_data());
        let parsed = SshSig::from_pem(&sig).unwrap();
        assert_eq!(parsed.hash_alg(), HashAlg::Sha512);
        assert_eq!(parsed.namespace(), NAMESPACE);
        parsed
    }

    /// Both directions against the real ssh-keygen for one key type.
    fn interop(kind: &str, args: &[&str]) {
        let dir = TempDir::new(kind);
        let key_path = keygen(dir.path(), "key", args, "");
        theirs_to_ours(dir.path(), &key_path);
        let key = SigningKey::from_file(&key_path, &mut no_passphrase()).unwrap();
        ours_to_theirs(dir.path(), &key_path, &key);
    }

    #[test]
    fn ed25519_interop_with_ssh_keygen() {
        interop("ed25519", &["-t", "ed25519"]);
    }

    #[test]
    fn ecdsa_p256_interop_with_ssh_keygen() {
        interop("ecdsa256", &["-t", "ecdsa", "-b", "256"]);
    }

    #[test]
    fn ecdsa_p384_interop_with_ssh_keygen() {
        interop("ecdsa384", &["-t", "ecdsa", "-b", "384"]);
    }

    /// RSA in both directions: ssh-keygen's signatures verify here, and ours (made with
    /// the `rsa` crate, see `sign_sshsig_rsa`) are rsa-sha2-512 and accepted by
    /// `ssh-keygen -Y verify`.
    #[test]
    fn rsa_interop_with_ssh_keygen() {
        let dir = TempDir::new("rsa");
        let key_path = keygen(dir.path(), "key", &["-t", "rsa", "-b", "2048"], "");
        theirs_to_ours(dir.path(), &key_path);
        let key = SigningKey::from_file(&key_path, &mut no_passphrase()).unwrap();
        let sig = ours_to_theirs(dir.path(), &key_path, &key);
        assert_eq!(
            sig.signature().algorithm(),
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512)
            }
        );
        assert_eq!(sig.public_key(), key.public().key_data());
    }

    #[test]
    fn encrypted_key_asks_for_the_passphrase_once() {
        let dir = TempDir::new("encrypted");
        let key_path = keygen(dir.path(), "key", &["-t", "ed25519"], "secret");

        let mut asked = 0;
        let err = SigningKey::from_file(&key_path, &mut || {
            asked += 1;
            None
        })
        .unwrap_err();
        assert_eq!(asked, 1);
        assert!(
            matches!(err, SigningError::PassphraseRequired { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("is protected by a passphrase"),
            "{err}"
        );

        let err = SigningKey::from_file(&key_path, &mut || Some("wrong".to_owned())).unwrap_err();
        assert!(
            matches!(err, SigningError::WrongPassphrase { .. }),
            "{err:?}"
        );

        let mut asked = 0;
        let key = SigningKey::from_file(&key_path, &mut || {
            asked += 1;
            Some("secret".to_owned())
        })
        .unwrap();
        assert_eq!(asked, 1);
        let msg = b"decision";
        let sig = key.sign(NAMESPACE, msg).unwrap();
        let allowed = format!("lea {}\n", pub_line(&key_path));
        assert!(ssh_verify(
            dir.path(),
            &allowed,
            "lea",
            NAMESPACE,
            msg,
            &sig,
            &[]
        ));
    }

    /// A real `ssh-agent -D` on a socket in `dir`, killed on drop.
    struct Agent {
        child: std::process::Child,
        socket: PathBuf,
    }

    impl Agent {
        fn start(dir: &Path) -> Self {
            let socket = dir.join("agent.sock");
            let child = Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&socket)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            for _ in 0..500 {
                if socket.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(socket.exists(), "ssh-agent did not start");
            Self { child, socket }
        }

        fn add(&self, key_path: &Path) {
            let status = Command::new("ssh-add")
                .arg("-q")
                .arg(key_path)
                .env("SSH_AUTH_SOCK", &self.socket)
                .stdin(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "ssh-add failed");
        }
    }

    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn agent_signs_for_public_keys() {
        let dir = TempDir::new("agent");
        let agent = Agent::start(dir.path());
        let ed = keygen(dir.path(), "ed", &["-t", "ed25519"], "");
        let rsa = keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"], "");
        let locked = keygen(dir.path(), "locked", &["-t", "ecdsa"], "secret");
        let absent = keygen(dir.path(), "absent", &["-t", "ed25519"], "");
        let socket = agent.socket.clone();
        let sock = Some(socket.as_path());

        // Not in the agent yet: a clear refusal naming the key.
        let source = KeySource::Flag(ed.with_extension("pub"));
        let err = SigningKey::load(&source, sock, &mut no_passphrase()).unwrap_err();
        assert!(matches!(err, SigningError::NotInAgent { .. }), "{err:?}");
        assert!(err.to_string().contains("ssh-add"), "{err}");

        agent.add(&ed);
        agent.add(&rsa);
        // ssh-add reads the passphrase from SSH_ASKPASS without a terminal.
        let askpass = dir.path().join("askpass");
        std::fs::write(&askpass, "#!/bin/sh\necho secret\n").unwrap();
        assert!(
            Command::new("chmod")
                .arg("755")
                .arg(&askpass)
                .status()
                .unwrap()
                .success()
        );
        let status = Command::new("ssh-add")
            .arg("-q")
            .arg(&locked)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-add of the locked key failed");

        for (path, source) in [
            (&ed, KeySource::Flag(ed.with_extension("pub"))),
            (&rsa, KeySource::Env(rsa.with_extension("pub"))),
            (
                &ed,
                KeySource::GitLiteral(format!("key::{}", pub_line(&ed))),
            ),
            // An encrypted private key the agent holds: no passphrase asked.
            (&locked, KeySource::Flag(locked.clone())),
        ] {
            let key = SigningKey::load(&source, sock, &mut no_passphrase()).unwrap();
            assert!(key.is_agent(), "{source:?}");
            ours_to_theirs(dir.path(), path, &key);
        }
        // A plain private key file is still read from the file.
        let file =
            SigningKey::load(&KeySource::Flag(ed.clone()), sock, &mut no_passphrase()).unwrap();
        assert!(!file.is_agent());

        // No agent, or one that is gone: refused, with what to do.
        let source = KeySource::Flag(absent.with_extension("pub"));
        let err = SigningKey::load(&source, None, &mut no_passphrase()).unwrap_err();
        assert!(
            matches!(err, SigningError::AgentUnavailable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("SSH_AUTH_SOCK"), "{err}");
        let err = SigningKey::load(&source, sock, &mut no_passphrase()).unwrap_err();
        assert!(matches!(err, SigningError::NotInAgent { .. }), "{err:?}");
        let key = SigningKey::load(
            &KeySource::Flag(ed.with_extension("pub")),
            sock,
            &mut no_passphrase(),
        )
        .unwrap();
        drop(agent);
        let err = key.sign(NAMESPACE, MSG).unwrap_err();
        assert!(matches!(err, SigningError::SignFailed { .. }), "{err:?}");
        let err = SigningKey::load(
            &KeySource::Flag(ed.with_extension("pub")),
            sock,
            &mut no_passphrase(),
        )
        .unwrap_err();
        assert!(
            matches!(err, SigningError::AgentUnavailable { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn public_key_files_are_refused_distinctly() {
        let dir = TempDir::new("pubonly");
        let key_path = keygen(dir.path(), "key", &["-t", "ed25519"], "");
        let err = SigningKey::from_file(&key_path.with_extension("pub"), &mut no_passphrase())
            .unwrap_err();
        assert!(matches!(err, SigningError::PublicKeyOnly { .. }), "{err:?}");

        let copy = dir.path().join("just-a-public-key");
        std::fs::copy(key_path.with_extension("pub"), &copy).unwrap();
        let err = SigningKey::from_file(&copy, &mut no_passphrase()).unwrap_err();
        assert!(matches!(err, SigningError::PublicKeyOnly { .. }), "{err:?}");

        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "hello\n").unwrap();
        let err = SigningKey::from_file(&garbage, &mut no_passphrase()).unwrap_err();
        assert!(matches!(err, SigningError::InvalidKey { .. }), "{err:?}");

        let err =
            SigningKey::from_file(&dir.path().join("missing"), &mut no_passphrase()).unwrap_err();
        assert!(matches!(err, SigningError::Read { .. }), "{err:?}");
    }

    #[test]
    fn fingerprint_matches_ssh_keygen_l() {
        let dir = TempDir::new("fingerprint");
        let key_path = keygen(dir.path(), "key", &["-t", "ed25519"], "");
        let key = SigningKey::from_file(&key_path, &mut no_passphrase()).unwrap();
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(key_path.with_extension("pub"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let listed = String::from_utf8(out.stdout).unwrap();
        let expected = listed.split_whitespace().nth(1).unwrap();
        assert!(expected.starts_with("SHA256:"));
        assert_eq!(key.fingerprint(), expected);
        assert_eq!(fingerprint(key.public()), expected);
    }

    #[test]
    fn verify_accepts_crlf_and_rewrapped_armor_and_rejects_garbage() {
        let dir = TempDir::new("armor");
        let key_path = keygen(dir.path(), "key", &["-t", "ed25519"], "");
        let key = SigningKey::from_file(&key_path, &mut no_passphrase()).unwrap();
        let sig = key.sign(NAMESPACE, b"m").unwrap();
        let crlf = format!("\n  {}", sig.replace('\n', "\r\n"));
        assert!(verify(&crlf, NAMESPACE, b"m").is_ok());
        let body: String = sig
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        let rewrapped = format!("{SIG_BEGIN}\n{}\n{}\n{SIG_END}", &body[..10], &body[10..]);
        assert!(verify(&rewrapped, NAMESPACE, b"m").is_ok());
        for bad in ["", "hello", &sig.replace("SSH SIGNATURE", "PGP SIGNATURE")] {
            assert!(
                matches!(
                    verify(bad, NAMESPACE, b"m"),
                    Err(SigningError::MalformedSignature { .. })
                ),
                "{bad:?}"
            );
        }
        let truncated = format!("{SIG_BEGIN}\n{}\n{SIG_END}\n", &body[..body.len() / 2]);
        assert!(matches!(
            verify(&truncated, NAMESPACE, b"m"),
            Err(SigningError::MalformedSignature { .. })
        ));
        assert!(matches!(
            key.sign("", b"m"),
            Err(SigningError::EmptyNamespace)
        ));
    }

    // -- allowed_signers ---------------------------------------------------------------

    const ED1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    fn other_key() -> PublicKey {
        // A fresh-looking second key: same type, different data.
        PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBAwk5GKyp+ZNcXxsy2FyNt8+kMpF/rSnjRgO7b1h6Mr",
        )
        .unwrap()
    }

    fn key1() -> PublicKey {
        PublicKey::from_openssh(&format!("{ED1} some comment")).unwrap()
    }

    fn parse(text: &str) -> Result<AllowedSigners, SigningError> {
        AllowedSigners::parse(Path::new("allowed_signers"), text)
    }

    fn parse_err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn allowed_signers_lines_and_options() {
        let text = format!(
            "# comment\n\n   # indented comment\n\
             lea@example.com,max@example.com {ED1} lea's laptop\r\n\
             ops-* NameSpaces=\"hitl,git\",VALID-AFTER=\"20250101\",valid-before=\"20251231235959Z\" {ED1}\n\
             \"quoted principal\" namespaces=\"a\\\"b\" {ED1}\n\
             \tbob\tnamespaces=\"git\"\t{ED1}\n"
        );
        let signers = parse(&text).unwrap();
        assert_eq!(signers.entries.len(), 4);
        let e = &signers.entries[0];
        assert_eq!(e.principals, ["lea@example.com", "max@example.com"]);
        assert_eq!(e.namespaces, None);
        assert_eq!(e.line, 4);
        assert_eq!(e.key.comment(), "lea's laptop");
        assert_eq!(e.key.key_data(), key1().key_data());
        let e = &signers.entries[1];
        assert_eq!(e.principals, ["ops-*"]);
        assert_eq!(
            e.namespaces.as_deref(),
            Some(&["hitl".to_owned(), "git".to_owned()][..])
        );
        assert_eq!(
            e.valid_after,
            Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(
            e.valid_before,
            Some(Utc.with_ymd_and_hms(2025, 12, 31, 23, 59, 59).unwrap())
        );
        assert_eq!(signers.entries[2].principals, ["quoted principal"]);
        assert_eq!(
            signers.entries[2].namespaces.as_deref(),
            Some(&["a\"b".to_owned()][..])
        );
        assert_eq!(signers.entries[3].principals, ["bob"]);
        assert_eq!(signers.entries[3].line, 7);
    }

    #[test]
    fn allowed_signers_times() {
        assert_eq!(
            parse_time("20250102"),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap())
        );
        assert_eq!(
            parse_time("202501021304"),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 13, 4, 0).unwrap())
        );
        assert_eq!(
            parse_time("20250102130405Z"),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 13, 4, 5).unwrap())
        );
        assert_eq!(
            parse_time("20250102utc"),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap())
        );
        for bad in [
            "",
            "Z",
            "2025010",
            "20251301",
            "20250230",
            "202501021360",
            "2025-01-02",
            "+2025010",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_lines_name_file_line_and_column() {
        let cases: &[(&str, &str)] = &[
            (
                "lea\n",
                "`allowed_signers:1:4`: missing key after the principals",
            ),
            (
                "\n  lea bogus=\"x\" ssh-ed25519 AAAA\n",
                "`allowed_signers:2:7`: unknown option or key type `bogus`",
            ),
            (
                "lea namespaces=hitl KEY\n",
                "`allowed_signers:1:16`: the value of `namespaces` must be quoted",
            ),
            (
                "lea namespaces=\"hitl KEY\n",
                "`allowed_signers:1:16`: the value of `namespaces` has no closing",
            ),
            (
                "lea namespaces=\"hitl\"\n",
                "`allowed_signers:1:22`: missing key after the options",
            ),
            (
                "lea namespaces=\"hitl\";x KEY\n",
                "`allowed_signers:1:22`: unexpected `;` after an option",
            ),
            (
                "lea namespaces=\"hitl\", KEY\n",
                "`allowed_signers:1:23`: expected another option after `,`",
            ),
            (
                "lea namespaces=\"a\",namespaces=\"b\" K\n",
                "`allowed_signers:1:20`: option `namespaces` is given twice",
            ),
            (
                "lea namespaces=\"hitl, git\" K\n",
                "`allowed_signers:1:16`: bad namespace list `hitl, git`",
            ),
            (
                "lea valid-after=\"2025\" K\n",
                "`allowed_signers:1:17`: invalid time `2025` for `valid-after`",
            ),
            (
                "lea valid-after=\"20250102\",valid-before=\"20250101\" K\n",
                "`allowed_signers:1:5`: `valid-before` is not after `valid-after`",
            ),
            (
                "lea cert-authority ssh-ed25519 AAAA\n",
                "`allowed_signers:1:5`: `cert-authority` is not supported",
            ),
            (
                "lea Cert-Authority,namespaces=\"git\" ssh-ed25519 AAAA\n",
                "`allowed_signers:1:5`: `cert-authority` is not supported",
            ),
            (
                "lea ssh-ed25519-cert-v01@openssh.com AAAA\n",
                "`allowed_signers:1:5`: `ssh-ed25519-cert-v01@openssh.com` is a certificate",
            ),
            (
                "lea ssh-ed25519\n",
                "`allowed_signers:1:16`: missing base64 key data after `ssh-ed25519`",
            ),
            (
                "lea ssh-ed25519 AAAA!!\n",
                "`allowed_signers:1:17`: invalid `ssh-ed25519` key data",
            ),
            (
                "lea,,max ssh-ed25519 AAAA\n",
                "`allowed_signers:1:1`: empty principal in `lea,,max`",
            ),
            (
                "lea namespaces=\"git\" ssh-ed2559 AAAA\n",
                "`allowed_signers:1:22`: unknown key type `ssh-ed2559`",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_err(text);
            assert!(
                err.starts_with(expected),
                "{text:?}\n  got:      {err}\n  expected: {expected}"
            );
        }
        // An RSA key under the ed25519 type name is refused too.
        let rsa_under_ed = format!("lea ssh-ed25519 {}", "AAAAB3NzaC1yc2EAAAADAQABAAABAQ");
        assert!(parse_err(&rsa_under_ed).contains("invalid `ssh-ed25519` key data"));
        // Columns count characters, not bytes.
        let err = parse_err("lée bogus=\"x\" K\n");
        assert!(err.starts_with("`allowed_signers:1:5`"), "{err}");
        assert!(matches!(
            parse("x"),
            Err(SigningError::Parse {
                line: 1,
                column: 2,
                ..
            })
        ));
    }

    #[test]
    fn principals_for_and_check() {
        let text = format!(
            "lea@example.com namespaces=\"hitl\" {ED1}\n\
             ops-*,!ops-intern namespaces=\"hitl,git\",valid-after=\"20250101Z\",valid-before=\"20251231Z\" {ED1}\n"
        );
        let signers = parse(&text).unwrap();
        let key = key1();
        let in_2025 = utc(2025, 6, 1);
        assert_eq!(
            signers.principals_for(&key, NAMESPACE, in_2025).unwrap(),
            ["lea@example.com", "ops-*"]
        );
        // Line 2 expired in 2026: only line 1 is left for hitl.
        assert_eq!(
            signers
                .principals_for(&key, NAMESPACE, utc(2026, 1, 2))
                .unwrap(),
            ["lea@example.com"]
        );
        // git is only allowed by line 2, whose window decides.
        assert_eq!(
            signers
                .principals_for(&key, GIT_NAMESPACE, in_2025)
                .unwrap(),
            ["ops-*"]
        );
        assert!(matches!(
            signers.principals_for(&key, GIT_NAMESPACE, utc(2026, 1, 2)),
            Err(SigningError::Expired { line: 2, .. })
        ));
        assert!(matches!(
            signers.principals_for(&key, GIT_NAMESPACE, utc(2024, 12, 31)),
            Err(SigningError::NotYetValid { line: 2, .. })
        ));
        // Validity bounds are inclusive, as in OpenSSH.
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        assert!(signers.principals_for(&key, GIT_NAMESPACE, start).is_ok());
        assert!(
            signers
                .principals_for(&key, GIT_NAMESPACE, start - chrono::Duration::seconds(1))
                .is_err()
        );
        let err = signers.principals_for(&key, "file", in_2025).unwrap_err();
        assert!(
            matches!(err, SigningError::NamespaceNotAllowed { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("may not sign in namespace `file`"),
            "{err}"
        );
        let err = signers
            .principals_for(&other_key(), NAMESPACE, in_2025)
            .unwrap_err();
        assert!(matches!(err, SigningError::UnknownKey { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "key `{}` is not in `allowed_signers`; add a line `PRINCIPAL namespaces=\"hitl,git\" ssh-ed25519 AAAA...` to `allowed_signers`",
                fingerprint(&other_key())
            )
        );

        // check(): principal patterns, negation, namespace and time per line.
        assert!(
            signers
                .check(&key, "lea@example.com", NAMESPACE, in_2025)
                .is_ok()
        );
        assert!(
            signers
                .check(&key, "ops-anna", GIT_NAMESPACE, in_2025)
                .is_ok()
        );
        assert!(matches!(
            signers.check(&key, "ops-intern", GIT_NAMESPACE, in_2025),
            Err(SigningError::PrincipalMismatch { .. })
        ));
        assert!(matches!(
            signers.check(&key, "lea@example.com", GIT_NAMESPACE, in_2025),
            Err(SigningError::NamespaceNotAllowed { line: 1, .. })
        ));
        assert!(matches!(
            signers.check(&key, "ops-anna", NAMESPACE, utc(2026, 3, 1)),
            Err(SigningError::Expired { .. })
        ));
        let err = signers
            .check(&key, "max@example.com", NAMESPACE, in_2025)
            .unwrap_err();
        assert!(
            matches!(err, SigningError::PrincipalMismatch { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("lists it for `lea@example.com,ops-*,!ops-intern`"),
            "{err}"
        );
        assert!(matches!(
            signers.check(&key, "", NAMESPACE, in_2025),
            Err(SigningError::PrincipalMismatch { .. })
        ));
        assert!(matches!(
            signers.check(&other_key(), "lea@example.com", NAMESPACE, in_2025),
            Err(SigningError::UnknownKey { .. })
        ));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("ops-anna", "ops-*"));
        assert!(wildcard("ops-", "ops-*"));
        assert!(!wildcard("op", "ops-*"));
        assert!(wildcard("a1c", "a?c"));
        assert!(!wildcard("ac", "a?c"));
        assert!(wildcard("lea@example.com", "*@example.com"));
        assert!(!wildcard("lea@example.org", "*@example.com"));
        assert!(wildcard("abcbcd", "a*bcd"));
        assert!(!wildcard("Lea", "lea"));
        let list = ["*".to_owned(), "!root".to_owned()];
        assert!(matches_list("lea", &list));
        assert!(!matches_list("root", &list));
    }

    #[test]
    fn allowed_signers_decisions_agree_with_ssh_keygen() {
        let dir = TempDir::new("agree");
        let key_path = keygen(dir.path(), "key", &["-t", "ed25519"], "");
        let key = SigningKey::from_file(&key_path, &mut no_passphrase()).unwrap();
        let pubkey = pub_line(&key_path);
        let msg = b"m";
        let sig = key.sign(NAMESPACE, msg).unwrap();
        let lines = [
            format!("lea {pubkey}"),
            format!("lea namespaces=\"git\" {pubkey}"),
            format!("lea namespaces=\"hi*\" {pubkey}"),
            format!("*,!lea {pubkey}"),
            format!("l?a valid-after=\"20250101Z\",valid-before=\"20251231Z\" {pubkey}"),
        ];
        let times = [
            ("20240601Z", utc(2024, 6, 1)),
            ("20250601Z", utc(2025, 6, 1)),
            ("20260601Z", utc(2026, 6, 1)),
        ];
        let mut checked = 0;
        for line in &lines {
            let ours = parse(line).unwrap();
            for principal in ["lea", "max"] {
                for (stamp, at) in times {
                    let option = format!("verify-time={stamp}");
                    let theirs = ssh_verify(
                        dir.path(),
                        line,
                        principal,
                        NAMESPACE,
                        msg,
                        &sig,
                        &["-O", &option],
                    );
                    let mine = ours.check(key.public(), principal, NAMESPACE, at).is_ok();
                    assert_eq!(mine, theirs, "{line} / {principal} / {stamp}");
                    checked += usize::from(mine);
                }
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn load_missing_is_empty_but_unreadable_is_an_error() {
        let dir = TempDir::new("load");
        let missing = dir.path().join("allowed_signers");
        assert!(AllowedSigners::load(&missing).unwrap().entries.is_empty());
        assert!(RevokedSigners::load(&missing).unwrap().entries.is_empty());
        assert!(matches!(
            AllowedSigners::load(dir.path()),
            Err(SigningError::Read { .. })
        ));
        std::fs::write(&missing, format!("lea {ED1}\n")).unwrap();
        let signers = AllowedSigners::load(&missing).unwrap();
        assert_eq!(signers.entries.len(), 1);
        assert_eq!(signers.file, missing);
        std::fs::write(&missing, "lea nonsense\n").unwrap();
        let err = AllowedSigners::load(&missing).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("{}:1:5", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn revoked_signers() {
        let text = format!("# revoked after the laptop was lost\n\n{ED1} old laptop\n");
        let revoked = RevokedSigners::parse(Path::new("revoked_signers"), &text).unwrap();
        assert_eq!(revoked.entries.len(), 1);
        assert_eq!(revoked.entries[0].line, 3);
        // Key data decides, not the comment.
        assert!(revoked.is_revoked(&key1()));
        assert!(!revoked.is_revoked(&other_key()));
        assert!(matches!(
            revoked.check(&key1()),
            Err(SigningError::Revoked { line: 3, .. })
        ));
        assert!(revoked.check(&other_key()).is_ok());
        let err = RevokedSigners::parse(Path::new("revoked_signers"), "\nlea ssh-ed25519 AAAA\n")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`revoked_signers:2:1`: unknown key type `lea`"),
            "{err}"
        );
    }

    // -- key source -----------------------------------------------------------------------

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
