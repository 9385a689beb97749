//! The workspace: a folder holding `approval-matrix.yaml`, `policies/`, `requests/`,
//! `audit/`, `allowed_signers` and an optional `hitl.toml`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

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

fn read_at_most(path: &Path, limit: usize) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    file.take(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)
        .map_err(err)?;
    Ok(bytes)
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
            if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Turns a request argument into a file: a path when it names an existing file or
    /// looks like one, else an id looked up in `requests/`.
    ///
    /// # Errors
    /// When nothing matches; the error suggests the nearest id.
    pub fn resolve_request(&self, query: &str, cwd: &Path) -> Result<PathBuf> {
        let as_path = cwd.join(query);
        let looks_like_path = query.contains('/')
            || query.contains(std::path::MAIN_SEPARATOR)
            || query.ends_with(".yaml")
            || query.ends_with(".yml");
        if as_path.is_file() {
            return Ok(as_path);
        }
        if !looks_like_path {
            for ext in ["yaml", "yml"] {
                let p = self.requests_dir().join(format!("{query}.{ext}"));
                if p.is_file() {
                    return Ok(p);
                }
            }
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

    /// Reads and validates one proposal against the matrix.
    ///
    /// # Errors
    /// When it cannot be read or is invalid.
    pub fn load_request(&self, path: &Path, matrix: &Matrix) -> Result<LoadedRequest> {
        // Read one byte past the cap at most: enough to report "too big" without reading
        // a hostile multi-gigabyte file into memory.
        let cap = self.settings.limits.max_request_bytes.saturating_add(1);
        let bytes = read_at_most(path, cap)?;
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

fn load_settings(path: &Path) -> Result<Settings> {
    if !path.is_file() {
        return Ok(Settings::default());
    }
    let bytes = read(path)?;
    let shown = path
        .file_name()
        .map_or_else(|| path.to_path_buf(), PathBuf::from);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
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
