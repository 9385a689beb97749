//! `hitl approve ID`: a signed approval by an eligible principal.

use hitl_lib::workflow::Verdict;

use super::identity::KeyArgs;
use super::{CliResult, Ctx, decide};

/// Approve a request that awaits a decision. The signer must be in one of its eligible
/// roles and may not be its requester. An approval takes an optional comment and no
/// reason code.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// A comment recorded with the decision.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    decide::record(
        ctx,
        &args.request,
        Verdict::Approve,
        None,
        args.comment.as_deref(),
        &args.key,
    )
}
