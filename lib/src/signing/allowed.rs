//! Who may sign and who may not: the lines of `allowed_signers` ([`SignerEntry`],
//! [`AllowedSigners`]) and `revoked_signers` ([`RevokedSigners`]), with OpenSSH's
//! principal and namespace patterns.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ssh_key::PublicKey;

use super::parser::LineParser;
use super::{SigningError, fingerprint};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::test_support::*;
    use crate::signing::{GIT_NAMESPACE, NAMESPACE, SigningKey};
    use chrono::TimeZone;

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
}
