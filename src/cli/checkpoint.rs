//! `hitl checkpoint`: print a signed statement of the audit's head for an auditor to
//! keep outside the repository.

use hitl_lib::audit::verify::Head;
use hitl_lib::audit::{AuditRepo, checkpoint, sha256_hex};

use super::identity::{self, KeyArgs};
use super::{CliError, CliResult, Ctx, Exit, emit};

/// Print a signed checkpoint (seq, event hash, commit) of the audit's head. Keep it
/// outside the repository; `hitl verify --checkpoint FILE` proves the log extends it.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = AuditRepo::open(ws.root())?;
    let key = identity::signing_key(&args.key, ws.root(), ctx.cwd())?;
    let head = repo.head_commit()?.ok_or_else(|| {
        CliError::new(Exit::NotFound, "the audit is empty: nothing to checkpoint")
    })?;
    let tree = head.tree().map_err(hitl_lib::audit::AuditError::from)?;
    let (event, bytes) = repo.last_event(&tree)?.ok_or_else(|| {
        CliError::new(Exit::NotFound, "the audit is empty: nothing to checkpoint")
    })?;
    let pinned = Head {
        seq: event.seq,
        event: sha256_hex(&bytes),
        commit: head.id().to_string(),
    };
    emit(checkpoint::write(&pinned, &key)?.as_bytes())?;
    Ok(Exit::Ok)
}
