//! Checkpoints: a signed statement of the audit's head (seq, event hash, commit) that an
//! auditor keeps outside the repository. `hitl verify --checkpoint FILE` proves the log
//! still extends it: the pinned event is unchanged and its commit is an ancestor of HEAD.
//!
//! Format (text):
//!
//! ```text
//! hitl checkpoint v1
//! {"seq":42,"event":"<sha256 hex>","commit":"<commit id>"}
//! -----BEGIN SSH SIGNATURE-----
//! ...
//! -----END SSH SIGNATURE-----
//! ```
//!
//! The signature (namespace `hitl-checkpoint`) covers the JSON line's bytes.

use super::verify::Head;
use crate::signing::{self, SigningError, SigningKey};

const MAGIC: &str = "hitl checkpoint v1";
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

/// Writes a signed checkpoint of `head`.
///
/// # Errors
/// When signing fails.
pub fn write(head: &Head, key: &SigningKey) -> Result<String, SigningError> {
    let line = serde_json::to_string(head).unwrap_or_default();
    let sig = key.sign(CHECKPOINT_NAMESPACE, line.as_bytes())?;
    Ok(format!("{MAGIC}\n{line}\n{sig}"))
}

/// Reads a checkpoint and checks its signature (a valid SSH signature; whose key it is
/// is the auditor's business: it is the auditor's own file). Returns the head and the
/// signer's fingerprint.
///
/// # Errors
/// A malformed file or a bad signature.
pub fn read(file: &str, text: &str) -> Result<(Head, String), CheckpointError> {
    let bad = |message: &str| CheckpointError::Format {
        file: file.to_owned(),
        message: message.to_owned(),
    };
    let mut parts = text.splitn(3, '\n');
    if parts.next() != Some(MAGIC) {
        return Err(bad("the first line is not `hitl checkpoint v1`"));
    }
    let line = parts.next().ok_or_else(|| bad("no head line"))?;
    let sig = parts.next().ok_or_else(|| bad("no signature"))?;
    let head: Head = serde_json::from_str(line).map_err(|e| bad(&format!("line 2: {e}")))?;
    let key = signing::verify(sig, CHECKPOINT_NAMESPACE, line.as_bytes()).map_err(|source| {
        CheckpointError::Signature {
            file: file.to_owned(),
            source: Box::new(source),
        }
    })?;
    Ok((head, signing::fingerprint(&key)))
}
