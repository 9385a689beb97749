//! The workspace: a folder holding `approval-matrix.yaml`, `policies/`, `requests/`,
//! `audit/`, `allowed_signers` and an optional `hitl.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::error::{Error, Result};
use crate::matrix::{self, Matrix};
use crate::request::{self, LoadedRequest};

pub const MATRIX_FILE: &str = "approval-matrix.yaml";
pub const SETTINGS_FILE: &str = "hitl.toml";
pub const REQUESTS_DIR: &str = "requests";
pub const POLICIES_DIR: &str = "policies";
pub const AUDIT_DIR: &str = "audit";
pub const ALLOWED_SIGNERS: &str = "allowed_signers";

/// Settings from `hitl.toml`; every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Settings {
    pub limits: LimitSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// The byte cap for one proposal file.
    pub max_request_bytes: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_request_bytes: crate::yaml::Limits::PROPOSAL.max_bytes,
        }
    }
}

/// The hard ceiling for `max_request_bytes`, whatever hitl.toml says.
pub const MAX_REQUEST_BYTES_CEILING: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    pub settings: Settings,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// `O_NONBLOCK` where its value is known: opening a FIFO that was swapped in after the
/// checks then returns at once (and is refused) instead of waiting for a writer. Elsewhere
/// the checks before the open are all there is. std has no constant for it, and the
/// project takes no `libc` and no `unsafe` for one number.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "arm",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "s390x",
        target_arch = "powerpc64"
    )
))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd"))]
const O_NONBLOCK: i32 = 0x4;
#[cfg(not(any(
    all(
        target_os = "linux",
        any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "arm",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "s390x",
            target_arch = "powerpc64"
        )
    ),
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd"
)))]
const O_NONBLOCK: i32 = 0;

/// `path` with `.` and `..` resolved by the text alone (nothing on disk is asked).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What a file that is not a regular file is, for the message that refuses it.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Whether something that may be a request file sits at `path` (a file, a symlink, a
/// FIFO...: anything but a folder), without following or opening it. What it is is
/// checked when it is read ([`Workspace::read_request_file`]).
fn names_a_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir())
}

impl Workspace {
    /// Opens the workspace at exactly `dir`.
    ///
    /// # Errors
    /// When `dir` has no matrix, or `hitl.toml` is invalid.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::NoSuchFolder {
                dir: dir.to_path_buf(),
            });
        }
        if !dir.join(MATRIX_FILE).is_file() {
            return Err(Error::NotAWorkspace {
                dir: dir.to_path_buf(),
            });
        }
        let settings = load_settings(&dir.join(SETTINGS_FILE))?;
        Ok(Self {
            root: dir.to_path_buf(),
            settings,
        })
    }

    /// Finds the workspace at `start` or the nearest parent that has a matrix.
    ///
    /// # Errors
    /// When no folder up to the root has one.
    pub fn discover(start: &Path) -> Result<Self> {
        let mut dir = Some(start);
        while let Some(d) = dir {
            if d.join(MATRIX_FILE).is_file() {
                // Found by searching, a workspace must not sit inside another one of the
                // same git work tree: anyone who can commit could plant a folder with its
                // own matrix below the real workspace.
                let mut up = Some(d);
                while let Some(u) = up {
                    if u != d && u.join(MATRIX_FILE).is_file() {
                        return Err(Error::NestedWorkspace {
                            inner: d.to_path_buf(),
                            outer: u.to_path_buf(),
                        });
                    }
                    if u.join(".git").exists() {
                        break;
                    }
                    up = u.parent();
                }
                return Self::open(d);
            }
            dir = d.parent();
        }
        Err(Error::WorkspaceNotFound {
            start: start.to_path_buf(),
        })
    }

    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    #[must_use]
    pub fn matrix_path(&self) -> PathBuf {
        self.root.join(MATRIX_FILE)
    }

    #[must_use]
    pub fn requests_dir(&self) -> PathBuf {
        self.root.join(REQUESTS_DIR)
    }

    /// A path for messages: relative to the workspace when inside it.
    #[must_use]
    pub fn display_path(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root)
            .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
    }

    /// Loads and validates the approval matrix.
    ///
    /// # Errors
    /// When it cannot be read or is invalid.
    pub fn load_matrix(&self) -> Result<Matrix> {
        let path = self.matrix_path();
        let bytes = read(&path)?;
        matrix::parse(&self.display_path(&path), &bytes).map_err(Error::Invalid)
    }

    /// The matrix and `sha256:<hex>` of its bytes (the version the audit records).
    ///
    /// # Errors
    /// When it cannot be read or is invalid.
    pub fn load_matrix_with_digest(&self) -> Result<(Matrix, String)> {
        let path = self.matrix_path();
        let bytes = read(&path)?;
        let m = matrix::parse(&self.display_path(&path), &bytes).map_err(Error::Invalid)?;
        Ok((m, format!("sha256:{}", crate::audit::sha256_hex(&bytes))))
    }

    /// Reads a proposal from a reader (`-`: standard input) up to the byte cap and
    /// validates it; `shown` names it in messages.
    ///
    /// # Errors
    /// When it cannot be read or is invalid.
    pub fn read_request(
        &self,
        shown: &Path,
        reader: &mut dyn std::io::Read,
        matrix: &Matrix,
    ) -> Result<LoadedRequest> {
        use std::io::Read as _;
        let cap = self.settings.limits.max_request_bytes;
        let mut bytes = Vec::new();
        reader
            .take(cap.saturating_add(1) as u64)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Read {
                path: shown.to_path_buf(),
                source,
            })?;
        let request =
            request::parse(shown, &bytes, &matrix.systems, cap).map_err(Error::Invalid)?;
        Ok(LoadedRequest {
            path: shown.to_path_buf(),
            request,
            bytes,
        })
    }

    /// Every `*.yaml` / `*.yml` file in `requests/`, sorted by name.
    ///
    /// # Errors
    /// When the folder cannot be listed.
    pub fn request_paths(&self) -> Result<Vec<PathBuf>> {
        let dir = self.requests_dir();
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            // Symlinks, FIFOs and devices are listed too: reading refuses them, by name.
            if names_a_file(&path) && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    /// `requests/<id>.yaml` (or `.yml`), if something is there.
    #[must_use]
    pub fn request_file_of(&self, id: &str) -> Option<PathBuf> {
        ["yaml", "yml"]
            .iter()
            .map(|ext| self.requests_dir().join(format!("{id}.{ext}")))
            .find(|p| names_a_file(p))
    }

    /// Turns a request argument into a file: a path when it names an existing file or
    /// looks like one, else an id looked up in `requests/`.
    ///
    /// # Errors
    /// When nothing matches; the error suggests the nearest id.
    pub fn resolve_request(&self, query: &str, cwd: &Path) -> Result<PathBuf> {
        let as_path = cwd.join(query);
        let looks_like_path = looks_like_path(query);
        // Whatever is there (a symlink, a FIFO) is returned: reading it refuses it by
        // name, instead of a "not found" that would hide it.
        if names_a_file(&as_path) {
            return Ok(as_path);
        }
        if !looks_like_path && let Some(p) = self.request_file_of(query) {
            return Ok(p);
        }
        let ids: Vec<String> = self
            .request_paths()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        let stem = Path::new(query)
            .file_stem()
            .map_or_else(|| query.to_owned(), |s| s.to_string_lossy().into_owned());
        let suggestion =
            crate::decode::suggest(&stem, ids.iter().map(String::as_str)).map(str::to_owned);
        Err(Error::RequestNotFound {
            query: query.to_owned(),
            dir: self.display_path(&self.requests_dir()),
            suggestion,
        })
    }

    /// The bytes of a request file, up to one byte past the cap (enough to report "too
    /// big" without reading a hostile multi-gigabyte file into memory), read only if it
    /// is a regular file that does not lead outside the workspace:
    ///
    /// - a symbolic link (or a path inside the workspace that a symlinked folder takes
    ///   elsewhere) must resolve to a file inside the workspace; one that stays inside is
    ///   followed. A path given outside the workspace is read where it is, unless it is
    ///   itself a symlink leading outside the workspace;
    /// - a FIFO, a device, a socket or a folder is refused without being opened (opening
    ///   a FIFO would wait for a writer; a device can be endless or have side effects);
    /// - the handle opened is checked again: a regular file, and the same one (device and
    ///   inode) that was checked, so a file swapped between the check and the open is
    ///   refused too. The file is opened non-blocking where std lets hitl say so.
    ///
    /// # Errors
    /// A refusal is an invalid input (a diagnostic naming the file, nothing of its
    /// content); a file that cannot be read is a read error.
    pub fn read_request_file(&self, path: &Path) -> Result<Vec<u8>> {
        use std::io::Read as _;
        let shown = self.display_path(path);
        let read_err = |source| Error::Read {
            path: shown.clone(),
            source,
        };
        let refuse = |message: String, hint: &str| {
            Error::Invalid(Diagnostics(vec![
                Diagnostic::new(&shown, Pos::new(1, 1), "", message)
                    .with_hint(Some(hint.to_owned())),
            ]))
        };
        let link = std::fs::symlink_metadata(path).map_err(read_err)?;
        let real = path.canonicalize().map_err(read_err)?;
        let root = self.root.canonicalize().map_err(|source| Error::Read {
            path: self.root.clone(),
            source,
        })?;
        let given_inside = lexical(path).starts_with(lexical(&self.root));
        if (given_inside || link.file_type().is_symlink()) && !real.starts_with(&root) {
            return Err(refuse(
                format!(
                    "not read: it leads outside the workspace, to `{}`",
                    crate::decode::safe_path(&real)
                ),
                "a request file must be a regular file inside the workspace (or a path \
                 given outside it that is not a symbolic link); copy the proposal instead \
                 of linking it",
            ));
        }
        let meta = std::fs::metadata(&real).map_err(read_err)?;
        if !meta.is_file() {
            return Err(refuse(
                format!("not read: it is {}, not a regular file", kind_of(&meta)),
                "a request file must be a regular file",
            ));
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.custom_flags(O_NONBLOCK);
        }
        let file = options.open(&real).map_err(read_err)?;
        let opened = file.metadata().map_err(read_err)?;
        #[cfg(unix)]
        let same = {
            use std::os::unix::fs::MetadataExt as _;
            (opened.dev(), opened.ino()) == (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let same = true;
        if !opened.is_file() || !same {
            return Err(refuse(
                "not read: it was replaced while hitl opened it".to_owned(),
                "a request file must be a regular file that stays put while hitl reads it",
            ));
        }
        let cap = self.settings.limits.max_request_bytes.saturating_add(1);
        let mut bytes = Vec::new();
        file.take(u64::try_from(cap).unwrap_or(u64::MAX))
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        Ok(bytes)
    }

    /// Reads and validates one proposal against the matrix; the file is read only if it
    /// is one hitl may read ([`Workspace::read_request_file`]).
    ///
    /// # Errors
    /// When it cannot be read, is refused, or is invalid.
    pub fn load_request(&self, path: &Path, matrix: &Matrix) -> Result<LoadedRequest> {
        let bytes = self.read_request_file(path)?;
        let shown = self.display_path(path);
        let request = request::parse(
            &shown,
            &bytes,
            &matrix.systems,
            self.settings.limits.max_request_bytes,
        )
        .map_err(Error::Invalid)?;
        Ok(LoadedRequest {
            path: shown,
            request,
            bytes,
        })
    }
}

/// Where the proposal `show` and `explain` render came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The proposal recorded in the audit: what a decision on the id decides on.
    Audit,
    /// A file (not proposed yet, or a path whose bytes the audit does not hold).
    File,
}

/// How the file on disk compares with the proposal the audit recorded under its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkingCopy {
    /// The same bytes.
    Same,
    /// Other bytes: edited (or replaced) after it was proposed.
    Differs,
    /// No `requests/<id>.yaml` (proposed from standard input or another path).
    Missing,
    /// There, but not a file hitl reads (a symlink leading out, a FIFO, a device).
    Unreadable,
}

/// What the audit holds under the id of a proposal about to be shown. Serialised as
/// the fields `show` and `explain` add to their JSON: `source`, `recorded_proposal`,
/// `working_file`, `working_copy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// Which of the two is shown.
    pub source: Source,
    /// `sha256:<hex>` of the recorded proposal.
    #[serde(rename = "recorded_proposal")]
    pub digest: String,
    /// The file compared with it: `requests/<id>.yaml` for an id, else the path given.
    #[serde(rename = "working_file")]
    pub file: PathBuf,
    pub working_copy: WorkingCopy,
}

/// A proposal to show a reviewer, and what the audit says about it.
#[derive(Debug, Clone)]
pub struct Review {
    pub loaded: LoadedRequest,
    /// `None` when the audit holds nothing under its id (or there is no audit).
    pub recorded: Option<Recorded>,
}

/// Loading a proposal for review failed: the file, or reading the audit.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Load(#[from] Error),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl Workspace {
    /// The proposal a reviewer must see for `query` (an id or a path, as
    /// [`Workspace::resolve_request`] reads it): once an id is proposed, the proposal
    /// recorded in the audit (HEAD's tree), whatever `requests/<id>.yaml` holds now or
    /// whether it exists; `recorded` says how the file compares. A path is shown as it
    /// is, with what the audit holds under the id inside it, if anything, so a caller
    /// can warn that it is not what a decision on that id decides on.
    ///
    /// Without a git repository (or in one without an audit) this costs one failed
    /// discovery (or one tree lookup) over [`Workspace::load_request`].
    ///
    /// # Errors
    /// As [`Workspace::load_request`]; the recorded proposal when it no longer parses; an
    /// audit that cannot be read, or whose recorded proposal is missing or altered.
    pub fn load_for_review(
        &self,
        query: &str,
        cwd: &Path,
        matrix: &Matrix,
    ) -> std::result::Result<Review, ReviewError> {
        use crate::audit::{AuditError, AuditRepo};
        let repo = match AuditRepo::open(&self.root) {
            Ok(r) => Some(r),
            Err(AuditError::NoRepository(_) | AuditError::Bare(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let lookup = |id: &str| -> std::result::Result<_, AuditError> {
            let Some(repo) = &repo else { return Ok(None) };
            let Some(head) = repo.head_for_reading()? else {
                return Ok(None);
            };
            repo.recorded_proposal(&head.tree()?, id)
        };
        let as_id = !looks_like_path(query)
            && !names_a_file(&cwd.join(query))
            && request::is_valid_id(query);
        if as_id && let Some(rec) = lookup(query)? {
            let file = self.request_file_of(query);
            let working_copy = match &file {
                None => WorkingCopy::Missing,
                Some(p) => match self.read_request_file(p) {
                    Ok(b) if b == rec.bytes => WorkingCopy::Same,
                    Ok(_) => WorkingCopy::Differs,
                    Err(_) => WorkingCopy::Unreadable,
                },
            };
            let shown = PathBuf::from(&rec.path);
            // It was accepted when it was proposed: the ceiling, not today's cap, bounds it.
            let request = request::parse(
                &shown,
                &rec.bytes,
                &matrix.systems,
                MAX_REQUEST_BYTES_CEILING,
            )
            .map_err(Error::Invalid)?;
            let file = file.unwrap_or_else(|| self.requests_dir().join(format!("{query}.yaml")));
            return Ok(Review {
                loaded: LoadedRequest {
                    path: shown,
                    request,
                    bytes: rec.bytes,
                },
                recorded: Some(Recorded {
                    source: Source::Audit,
                    digest: rec.digest,
                    file: self.display_path(&file),
                    working_copy,
                }),
            });
        }
        let path = self.resolve_request(query, cwd)?;
        let mut loaded = self.load_request(&path, matrix)?;
        let id = loaded.request.id.clone();
        let rec = if as_id && id == query {
            None // looked up above
        } else {
            lookup(&id)?
        };
        let recorded = rec.map(|rec| {
            let same = rec.bytes == loaded.bytes;
            let file = loaded.path.clone();
            if same {
                loaded.path = PathBuf::from(&rec.path);
            }
            Recorded {
                source: if same { Source::Audit } else { Source::File },
                digest: rec.digest,
                file,
                working_copy: if same {
                    WorkingCopy::Same
                } else {
                    WorkingCopy::Differs
                },
            }
        });
        Ok(Review { loaded, recorded })
    }
}

/// Whether a request argument is written as a path rather than an id.
fn looks_like_path(query: &str) -> bool {
    query.contains('/')
        || query.contains(std::path::MAIN_SEPARATOR)
        || query.ends_with(".yaml")
        || query.ends_with(".yml")
}

fn load_settings(path: &Path) -> Result<Settings> {
    if !path.is_file() {
        return Ok(Settings::default());
    }
    let bytes = read(path)?;
    let shown = path
        .file_name()
        .map_or_else(|| path.to_path_buf(), PathBuf::from);
    parse_settings(&shown, &bytes)
}

/// Parses `hitl.toml` (`shown` names it in messages): from the working tree, or from
/// the git tree a decision extends.
///
/// # Errors
/// Invalid TOML, an unknown key, or a limit out of range.
pub fn parse_settings(shown: &Path, bytes: &[u8]) -> Result<Settings> {
    let shown = shown.to_path_buf();
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Error::Invalid(Diagnostics(vec![Diagnostic::new(
            &shown,
            Pos::new(1, 1),
            "",
            "file is not valid UTF-8",
        )]))
    })?;
    let settings: Settings = toml::from_str(text).map_err(|e| {
        let pos = e.span().map_or(Pos::new(1, 1), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Pos::new(line as u64, col as u64)
        });
        Error::Invalid(Diagnostics(vec![
            Diagnostic::new(&shown, pos, "", e.message().to_owned()).with_source(text),
        ]))
    })?;
    if settings.limits.max_request_bytes == 0
        || settings.limits.max_request_bytes > MAX_REQUEST_BYTES_CEILING
    {
        return Err(Error::Invalid(Diagnostics(vec![Diagnostic::new(
            &shown,
            Pos::new(1, 1),
            "limits.max_request_bytes",
            format!("must be between 1 and {MAX_REQUEST_BYTES_CEILING}"),
        )])));
    }
    Ok(settings)
}
