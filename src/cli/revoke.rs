//! `hitl revoke ID --reason TEXT`: an approver of the request (or a member of the
//! break-glass role) marks its unspent approval revoked; `check` and `exec` refuse it
//! from then on (docs/approvals.md).

use hitl_lib::workflow::execution;

use super::identity::{self, KeyArgs, Recorder};
use super::{CliError, CliResult, Ctx, Exit, emit};

/// Revoke the unspent approval of a request, with a reason.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// Why it may no longer be used (recorded).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let Recorder {
        repo, key, actor, ..
    } = Recorder::open(ctx, &args.key)?;
    let how = identity::appender(&key, actor.clone());
    let appended = repo.append(&how, |repo, _, _, now| {
        Ok::<_, CliError>(execution::revoke(
            repo,
            &args.request,
            (&actor.principal, key.public()),
            &args.reason,
            now,
        )?)
    })?;
    hitl_lib::workflow::engine::remember_appended(&repo, &appended);
    emit(
        format!(
            "{}: approval revoked by {} (commit {})\n",
            args.request,
            actor.principal,
            &appended.commit.to_string()[..12]
        )
        .as_bytes(),
    )?;
    Ok(Exit::Ok)
}
