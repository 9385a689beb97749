//! What the unit tests of the signing modules share: temporary directories, keys made
//! with `ssh-keygen`, signing and verifying with it, and sample `allowed_signers` lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use ssh_key::PublicKey;

use super::{AllowedSigners, SigningError};

pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("hitl-signing-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Generates a key with ssh-keygen; returns the private key path.
pub(super) fn keygen(dir: &Path, name: &str, args: &[&str], passphrase: &str) -> PathBuf {
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

pub(super) fn no_passphrase() -> impl FnMut() -> Option<String> {
    || panic!("no passphrase expected")
}

/// Runs `ssh-keygen -Y verify`; true on exit 0.
pub(super) fn ssh_verify(
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
pub(super) fn ssh_sign(dir: &Path, key: &Path, namespace: &str, msg: &[u8]) -> String {
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

pub(super) fn pub_line(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

pub(super) fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

pub(super) const MSG: &[u8] = b"approve refund-4711\n";

pub(super) const ED1: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

pub(super) fn other_key() -> PublicKey {
    // A fresh-looking second key: same type, different data.
    PublicKey::from_openssh(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBAwk5GKyp+ZNcXxsy2FyNt8+kMpF/rSnjRgO7b1h6Mr",
    )
    .unwrap()
}

pub(super) fn key1() -> PublicKey {
    PublicKey::from_openssh(&format!("{ED1} some comment")).unwrap()
}

pub(super) fn parse(text: &str) -> Result<AllowedSigners, SigningError> {
    AllowedSigners::parse(Path::new("allowed_signers"), text)
}

pub(super) fn parse_err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}
