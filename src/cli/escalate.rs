//! `hitl escalate ID`: a signed escalation by an approver who may decide the request
//! now, to its tier's escalation role, before the pending timeout would.

use hitl_lib::workflow::Verdict;

use super::decide::Decision;
use super::identity::KeyArgs;
use super::{CliResult, Ctx, decide};

/// Hand a pending request to its tier's escalation role (`on_timeout: {escalate: ROLE}`)
/// before its pending timeout does: from then on only that role decides it. By one who
/// may decide it now; it takes an optional comment and no reason code.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// A comment recorded with the escalation.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    decide::record(
        ctx,
        &Decision {
            comment: args.comment.as_deref(),
            ..Decision::new(&args.request, Verdict::Escalate, &args.key)
        },
    )
}
