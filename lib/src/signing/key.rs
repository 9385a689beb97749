//! The key hitl signs with ([`SigningKey`]): an OpenSSH private key file, plain or
//! passphrase-protected, or a public key whose private half ssh-agent holds; and the
//! making of SSHSIG signatures (RSA through the `rsa` crate).

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::{KeySource, SigningError, fingerprint, unsupported};

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

/// The public half of the key `source` names, read without decrypting anything or
/// asking for a passphrase: who the key is, for a command that only reads (`queue`).
///
/// # Errors
/// An unreadable file, or one holding no OpenSSH key.
pub fn public_key(source: &KeySource) -> Result<PublicKey, SigningError> {
    match source {
        KeySource::GitLiteral(value) => {
            let text = value.strip_prefix("key::").unwrap_or(value);
            PublicKey::from_openssh(text.trim()).map_err(|e| SigningError::InvalidGitKey {
                value: value.clone(),
                reason: format!("it is not an OpenSSH public key ({e})"),
            })
        }
        KeySource::Flag(p) | KeySource::Env(p) | KeySource::GitConfig(p) => {
            encrypted_public(p).map_or_else(|| read_public(p), Ok)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::test_support::*;
    use crate::signing::{GIT_NAMESPACE, NAMESPACE, verify};
    use std::process::{Command, Stdio};

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
}
