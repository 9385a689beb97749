//! The library's error type.

use std::path::PathBuf;

use crate::diag::Diagnostics;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`: {source}", crate::decode::safe_path(path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write `{}`: {source}", crate::decode::safe_path(path))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One or more input files are invalid; every problem is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("no hitl workspace found in `{}` or any parent folder", start.display())]
    WorkspaceNotFound { start: PathBuf },
    #[error("folder `{}` does not exist", dir.display())]
    NoSuchFolder { dir: PathBuf },
    #[error("`{}` is not a hitl workspace: it has no `approval-matrix.yaml`", dir.display())]
    NotAWorkspace { dir: PathBuf },
    #[error("no request `{query}` in `{}`", dir.display())]
    RequestNotFound {
        query: String,
        dir: PathBuf,
        suggestion: Option<String>,
    },
    #[error("refusing to overwrite existing files: {}", paths.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", "))]
    AlreadyExists { paths: Vec<PathBuf> },
    #[error(
        "`{}` is a workspace inside the workspace `{}` (the same git work tree): a nested `approval-matrix.yaml` would decide under rules nobody governs",
        inner.display(),
        outer.display()
    )]
    NestedWorkspace { inner: PathBuf, outer: PathBuf },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

impl Error {
    /// A hint for the user, where one helps.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::WorkspaceNotFound { .. }
            | Self::NotAWorkspace { .. }
            | Self::NoSuchFolder { .. } => Some(
                "run `hitl init` to create one, or pass `-C DIR` to name an existing workspace"
                    .to_owned(),
            ),
            Self::RequestNotFound { suggestion, .. } => Some(suggestion.as_ref().map_or_else(
                || "pass a request id from `requests/` or a path to a YAML file".to_owned(),
                |s| format!("did you mean `{s}`?"),
            )),
            Self::NestedWorkspace { outer, .. } => Some(format!(
                "run hitl from `{}` (or name it with `-C`); a folder below it with its own matrix is an agent's plant until proven otherwise",
                outer.display()
            )),
            Self::AlreadyExists { .. } => {
                Some("`hitl init` only creates files; move the existing ones away first".to_owned())
            }
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
