//! Checking a signature and its signer: [`verify`] checks an armored SSHSIG and returns
//! the key that made it, [`trusted_principal`] decides whether that key may act, and as
//! whom.

use chrono::{DateTime, Utc};
use ssh_key::{Algorithm, PublicKey, SshSig};

use super::{
    AllowedSigners, RevokedSigners, SIG_BEGIN, SIG_END, SigningError, fingerprint, unsupported,
};

/// The line width of armored signatures (what `ssh-keygen` writes and `ssh-key` reads).
const SIG_LINE_WIDTH: usize = 70;

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

/// Re-wraps the body of an armored signature at the width `ssh-key` expects, so that CRLF
/// line endings, other line widths and surrounding blanks are accepted (as OpenSSH does).
pub(crate) fn normalize_armor(armored: &str) -> Result<String, SigningError> {
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
    use crate::signing::test_support::*;
    use crate::signing::{NAMESPACE, SigningKey};

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
}
