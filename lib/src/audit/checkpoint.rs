//! Checkpoints: a signed statement of the audit's head (seq, event hash, commit) and of
//! its root of trust that an auditor keeps outside the repository. `hitl verify
//! --checkpoint FILE` proves the log still extends it (the pinned event is unchanged and
//! its commit is an ancestor of HEAD) and still rests on the same root of trust.
//!
//! Format (text):
//!
//! ```text
//! hitl checkpoint v2
//! {"seq":42,"event":"<sha256 hex>","commit":"<commit id>","trust_root":{"commit":"<commit id>","allowed_signers":"<sha256 hex>"}}
//! -----BEGIN SSH SIGNATURE-----
//! ...
//! -----END SSH SIGNATURE-----
//! ```
//!
//! The signature (namespace `hitl-checkpoint`) covers the JSON line's bytes. Checkpoints
//! made before the root of trust was recorded (`hitl checkpoint v1`, the same line
//! without `trust_root`) are still read: they pin the head only.

use serde::{Deserialize, Serialize};

use super::verify::{Head, TrustRoot};
use crate::signing::{self, SigningError, SigningKey};

const MAGIC: &str = "hitl checkpoint v2";
/// The first format, without the root of trust.
const MAGIC_V1: &str = "hitl checkpoint v1";
/// The SSHSIG namespace of checkpoints.
pub const CHECKPOINT_NAMESPACE: &str = "hitl-checkpoint";

/// A checkpoint that does not parse or verify.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("`{file}` is not a hitl checkpoint: {message}")]
    Format { file: String, message: String },
    #[error("the signature of checkpoint `{file}` does not verify: {source}")]
    Signature {
        file: String,
        source: Box<SigningError>,
    },
}

/// What a checkpoint pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub head: Head,
    /// The root of trust; `None` in a v1 checkpoint, which did not record it.
    pub trust_root: Option<TrustRoot>,
}

/// The JSON line of a v2 checkpoint.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Statement {
    seq: u64,
    event: String,
    commit: String,
    trust_root: TrustRoot,
}

/// Writes a signed checkpoint of `head` resting on `root`.
///
/// # Errors
/// When signing fails.
pub fn write(head: &Head, root: &TrustRoot, key: &SigningKey) -> Result<String, SigningError> {
    let statement = Statement {
        seq: head.seq,
        event: head.event.clone(),
        commit: head.commit.clone(),
        trust_root: root.clone(),
    };
    let line = serde_json::to_string(&statement).unwrap_or_default();
    let sig = key.sign(CHECKPOINT_NAMESPACE, line.as_bytes())?;
    Ok(format!("{MAGIC}\n{line}\n{sig}"))
}

/// Whether `s` is lowercase hex of one of `lens` digits.
fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads a checkpoint (v2, or v1 without a root of trust) and checks its signature (a
/// valid SSH signature under namespace `hitl-checkpoint`). Returns what it pins and the
/// signer's key; whether that key is trusted is [`trusted_signer`]'s question.
///
/// # Errors
/// A malformed file or a bad signature.
pub fn read(file: &str, text: &str) -> Result<(Checkpoint, ssh_key::PublicKey), CheckpointError> {
    let bad = |message: &str| CheckpointError::Format {
        file: file.to_owned(),
        message: message.to_owned(),
    };
    let mut parts = text.splitn(3, '\n');
    let version = match parts.next() {
        Some(MAGIC) => 2,
        Some(MAGIC_V1) => 1,
        _ => return Err(bad("the first line is not `hitl checkpoint v2` (or v1)")),
    };
    let line = parts.next().ok_or_else(|| bad("no head line"))?;
    let sig = parts.next().ok_or_else(|| bad("no signature"))?;
    let checkpoint = if version == 1 {
        let head: Head = serde_json::from_str(line).map_err(|e| bad(&format!("line 2: {e}")))?;
        Checkpoint {
            head,
            trust_root: None,
        }
    } else {
        let s: Statement = serde_json::from_str(line).map_err(|e| bad(&format!("line 2: {e}")))?;
        if !is_hex(&s.trust_root.commit, &[40, 64]) || !is_hex(&s.trust_root.allowed_signers, &[64])
        {
            return Err(bad(
                "line 2: `trust_root` needs a full commit id and the sha256 hex of `allowed_signers`",
            ));
        }
        Checkpoint {
            head: Head {
                seq: s.seq,
                event: s.event,
                commit: s.commit,
            },
            trust_root: Some(s.trust_root),
        }
    };
    if !is_hex(&checkpoint.head.commit, &[40, 64]) || !is_hex(&checkpoint.head.event, &[64]) {
        return Err(bad(
            "line 2: `commit` needs a full lowercase commit id and `event` the sha256 hex of the event",
        ));
    }
    let key = signing::verify(sig, CHECKPOINT_NAMESPACE, line.as_bytes()).map_err(|source| {
        CheckpointError::Signature {
            file: file.to_owned(),
            source: Box::new(source),
        }
    })?;
    Ok((checkpoint, key))
}

/// Whether a checkpoint's signer is trusted, by the one trust function, under the signer
/// files at HEAD: for namespace `hitl-checkpoint` (an auditor's line), else `hitl`.
/// Returns the principal.
///
/// # Errors
/// Why the key may not vouch for the audit.
pub fn trusted_signer(
    allowed: &signing::AllowedSigners,
    revoked: &signing::RevokedSigners,
    key: &ssh_key::PublicKey,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<String, signing::Untrusted> {
    signing::trusted_principal(allowed, revoked, key, None, CHECKPOINT_NAMESPACE, at).or_else(
        |first| {
            signing::trusted_principal(allowed, revoked, key, None, signing::NAMESPACE, at)
                .map_err(|_| first)
        },
    )
}
