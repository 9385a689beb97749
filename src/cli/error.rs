//! The one CLI error type and the documented exit codes (docs/cli.md).

use std::fmt::Write as _;
use std::process::ExitCode;

use hitl_lib::Error;

/// What an exit status means. Scripts and CI jobs rely on these numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The command ran and found problems (`lint` errors).
    Findings = 1,
    /// Bad command line (clap's own code).
    Usage = 2,
    /// An input file (matrix, request, settings) is invalid.
    InvalidInput = 3,
    /// The workspace or request was not found.
    NotFound = 4,
    /// Reading or writing failed, or a file would be overwritten.
    Io = 5,
    /// Refused: no usable signing key (none configured, not a private key, a wrong
    /// passphrase, not in ssh-agent), an unknown or untrusted key, or a workflow rule
    /// (not eligible, own request, already decided, expired). Nothing was recorded.
    Refused = 6,
    /// `hitl check` and `hitl exec`: the approval does not allow the action, one code per
    /// reason (docs/approvals.md).
    ApprovalMalformed = 10,
    ApprovalSignature = 11,
    ApprovalUntrusted = 12,
    ApprovalQuorum = 13,
    ApprovalAction = 14,
    ApprovalTarget = 15,
    ApprovalAmount = 16,
    ApprovalParameters = 17,
    ApprovalNotYetValid = 18,
    ApprovalExpired = 19,
    ApprovalChangeWindow = 20,
    ApprovalNotApproved = 21,
    ApprovalSpent = 22,
    ApprovalRevoked = 23,
    ApprovalOperator = 24,
    /// `hitl rollback`: nothing ran and nothing was recorded, one code per reason
    /// (docs/cli.md). The proposal names no `rollback.command`.
    NoRollback = 25,
    /// The approval was never spent: nothing ran to roll back.
    NothingRan = 26,
    /// A rollback was started already (it runs once), or its start could not be pushed.
    RollbackStarted = 27,
    /// The tier's rollback approvals are not all given yet.
    RollbackUnapproved = 28,
    /// `exec`: the recorded proposal's `change.precondition` did not find `change.before`.
    ApprovalPrecondition = 29,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        Self::from(e as u8)
    }
}

#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub hints: Vec<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Renders the error for stderr: `error: ...` then hints.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "error: {}", self.message);
        for h in &self.hints {
            let _ = write!(s, "\n  = hint: {h}");
        }
        s
    }
}

impl From<hitl_lib::approval::check::Refusal> for CliError {
    fn from(r: hitl_lib::approval::check::Refusal) -> Self {
        use hitl_lib::approval::check::Refusal as R;
        let exit = match &r {
            R::Malformed { .. } => Exit::ApprovalMalformed,
            R::Signature { .. } => Exit::ApprovalSignature,
            R::Untrusted { .. } => Exit::ApprovalUntrusted,
            R::Quorum { .. } => Exit::ApprovalQuorum,
            R::Action { .. } => Exit::ApprovalAction,
            R::Target { .. } => Exit::ApprovalTarget,
            R::Amount { .. } => Exit::ApprovalAmount,
            R::Parameters { .. } => Exit::ApprovalParameters,
            R::NotYetValid { .. } => Exit::ApprovalNotYetValid,
            R::Expired { .. } => Exit::ApprovalExpired,
            R::ChangeWindow { .. } => Exit::ApprovalChangeWindow,
            R::NotApproved { .. } => Exit::ApprovalNotApproved,
            R::Spent { .. } => Exit::ApprovalSpent,
            R::Revoked { .. } => Exit::ApprovalRevoked,
            R::Operator { .. } => Exit::ApprovalOperator,
            R::Precondition { .. } => Exit::ApprovalPrecondition,
        };
        debug_assert_eq!(exit as u8, r.exit_code());
        Self::new(exit, r.to_string())
    }
}

impl From<hitl_lib::policy::PolicyError> for CliError {
    fn from(e: hitl_lib::policy::PolicyError) -> Self {
        use hitl_lib::policy::PolicyError as P;
        let exit = match &e {
            P::Read { .. } => Exit::Io,
            P::Invalid(_) | P::Eval(_) | P::Shape { .. } => Exit::InvalidInput,
        };
        Self::new(exit, e.to_string())
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let exit = match &e {
            Error::Invalid(_) => Exit::InvalidInput,
            Error::NestedWorkspace { .. } => Exit::Refused,
            Error::WorkspaceNotFound { .. }
            | Error::NotAWorkspace { .. }
            | Error::NoSuchFolder { .. }
            | Error::RequestNotFound { .. } => Exit::NotFound,
            Error::Read { .. }
            | Error::Write { .. }
            | Error::AlreadyExists { .. }
            | Error::Git(_) => Exit::Io,
        };
        let message = match &e {
            Error::Invalid(diags) => {
                let mut files: Vec<String> = diags
                    .iter()
                    .map(|d| format!("`{}`", hitl_lib::decode::safe_path(&d.file)))
                    .collect();
                files.dedup();
                let n = diags.len();
                // Each diagnostic already says where; the summary says how many.
                let body: Vec<String> = diags.iter().map(ToString::to_string).collect();
                format!(
                    "{}\nerror: {} is invalid ({n} problem{})",
                    body.join("\nerror: "),
                    files.join(", "),
                    if n == 1 { "" } else { "s" }
                )
            }
            other => other.to_string(),
        };
        Self {
            exit,
            message,
            hints: e.hint().into_iter().collect(),
        }
    }
}

pub type CliResult<T = Exit> = Result<T, CliError>;

impl From<hitl_lib::signing::SigningError> for CliError {
    fn from(e: hitl_lib::signing::SigningError) -> Self {
        use hitl_lib::signing::SigningError as S;
        // A key hitl cannot use (none configured, not a private key, a passphrase it
        // cannot ask for or that is wrong, an agent without it) refuses the command like
        // an untrusted key does: the command line itself was fine. A file that cannot
        // be read at all is an I/O failure.
        let exit = match &e {
            S::Read { .. } | S::Git(_) => Exit::Io,
            S::Parse { .. } | S::MalformedSignature { .. } => Exit::InvalidInput,
            _ => Exit::Refused,
        };
        Self::new(exit, e.to_string())
    }
}

impl From<hitl_lib::audit::AuditError> for CliError {
    fn from(e: hitl_lib::audit::AuditError) -> Self {
        use hitl_lib::audit::AuditError as A;
        let exit = match &e {
            A::NoRepository(_) | A::Bare(_) | A::DetachedHead => Exit::NotFound,
            A::Corrupt { .. } => Exit::InvalidInput,
            A::Signing(_) | A::UnsupportedIndex { .. } | A::ClockBehind { .. } => Exit::Refused,
            _ => Exit::Io,
        };
        let mut err = Self::new(exit, e.to_string());
        if matches!(e, A::NoRepository(_)) {
            err.hints
                .push("run `git init` in the workspace (or a parent folder) first".to_owned());
        }
        err
    }
}

impl From<hitl_lib::workflow::WorkflowError> for CliError {
    fn from(e: hitl_lib::workflow::WorkflowError) -> Self {
        use hitl_lib::workflow::WorkflowError as W;
        match e {
            W::Audit(a) => a.into(),
            W::Rollback(r) => {
                use hitl_lib::workflow::rollback::Refusal as R;
                let exit = match &r {
                    R::NoCommand { .. } => Exit::NoRollback,
                    R::NothingRan { .. } => Exit::NothingRan,
                    R::Started { .. } => Exit::RollbackStarted,
                    R::Unapproved { .. } => Exit::RollbackUnapproved,
                    R::Operator { .. } => Exit::ApprovalOperator,
                    R::Rule { .. } => Exit::Refused,
                };
                Self::new(exit, r.to_string())
            }
            W::NotProposed(_) => Self::new(Exit::NotFound, e.to_string()),
            other => Self::new(Exit::Refused, other.to_string()),
        }
    }
}
