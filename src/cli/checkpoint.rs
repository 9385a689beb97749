//! `hitl checkpoint`: print a signed statement of the audit's head and its root of trust
//! for an auditor to keep outside the repository.

use hitl_lib::audit::verify::{self, Pins};
use hitl_lib::audit::{AuditRepo, checkpoint};

use super::identity::{self, KeyArgs};
use super::{CliError, CliResult, Ctx, Exit, emit};

/// Print a signed checkpoint of the audit's head (seq, event hash, commit) and of its
/// root of trust (commit, allowed_signers digest), after verifying the audit: a
/// checkpoint vouches for a history that verifies. Keep it outside the repository;
/// `hitl verify --checkpoint FILE` proves the log extends it and rests on the same root.
///
/// With `--adopt FILE`, a clone takes a kept checkpoint as its starting point instead:
/// HEAD must extend the checkpoint's commit, the checkpoint's signer must be trusted
/// there, and only the commits since are judged, so a fresh clone's first command does
/// not walk the whole history (docs/ci.md).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Adopt this checkpoint (kept outside the repository) as where this clone's
    /// governance check starts, rather than print a new one.
    #[arg(long, value_name = "FILE", requires = "allowed_signers")]
    pub adopt: Option<std::path::PathBuf>,
    /// With `--adopt`: the signer file, kept with the checkpoint outside the
    /// repository, that says whose `hitl-checkpoint` signature may be adopted (the
    /// history the checkpoint vouches for never does).
    #[arg(long, value_name = "FILE", requires = "adopt")]
    pub allowed_signers: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = AuditRepo::open(ws.root())?;
    if let (Some(file), Some(anchor)) = (&args.adopt, &args.allowed_signers) {
        return adopt(ctx, &repo, file, anchor);
    }
    let key = identity::signing_key(&args.key, ws.root(), ctx.cwd())?;
    // The head and the root of trust come from the same walk `hitl verify` makes.
    let report = verify::verify(&repo, &Pins::default(), &|_, _, _| {})?;
    if !report.ok() {
        let mut codes: Vec<&str> = report.problems.iter().map(|p| p.code).collect();
        codes.sort_unstable();
        codes.dedup();
        let mut err = CliError::new(
            Exit::Findings,
            format!(
                "the audit does not verify ({} problem{}: {}): a checkpoint vouches for a history that verifies",
                report.problems.len(),
                if report.problems.len() == 1 { "" } else { "s" },
                codes.join(", ")
            ),
        );
        err.hints
            .push("run `hitl verify` to see each problem".to_owned());
        return Err(err);
    }
    let empty = || CliError::new(Exit::NotFound, "the audit is empty: nothing to checkpoint");
    let head = report.head.ok_or_else(empty)?;
    let root = report.trust_root.ok_or_else(|| {
        CliError::new(
            Exit::NotFound,
            "the history has no root of trust (no commit brings `allowed_signers`): nothing to checkpoint",
        )
    })?;
    emit(checkpoint::write(&head, &root, &key)?.as_bytes())?;
    Ok(Exit::Ok)
}

/// `hitl checkpoint --adopt FILE`.
fn adopt(
    ctx: &Ctx,
    repo: &AuditRepo,
    file: &std::path::Path,
    anchor: &std::path::Path,
) -> CliResult {
    let anchor = hitl_lib::signing::AllowedSigners::load(&ctx.cwd().join(anchor))?;
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(ctx.cwd().join(file))
        .map_err(|e| CliError::new(Exit::Io, format!("cannot read `{shown}`: {e}")))?;
    let (cp, key) = checkpoint::read(&shown, &text)
        .map_err(|e| CliError::new(Exit::InvalidInput, e.to_string()))?;
    let now = super::now()?;
    let (principal, head) =
        hitl_lib::workflow::engine::adopt_checkpoint(repo, &cp, &key, &anchor, now)?;
    emit(
        format!(
            "adopted the checkpoint of event {} (commit {}) by {principal}: HEAD {} extends it and every commit since is governed\n",
            cp.head.seq,
            &cp.head.commit[..12.min(cp.head.commit.len())],
            &head[..12.min(head.len())]
        )
        .as_bytes(),
    )?;
    Ok(Exit::Ok)
}
