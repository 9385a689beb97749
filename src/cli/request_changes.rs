//! `hitl request-changes ID --reason-code CODE`: a signed request for changes. It closes
//! the request's current version; the agent proposes the next version with the same id,
//! which needs fresh approvals.

use hitl_lib::workflow::Verdict;

use super::decide::Decision;
use super::identity::KeyArgs;
use super::{CliResult, Ctx, decide};

/// Send a request back for changes, with a reason code from the matrix's
/// `reason_codes.request_changes`. Its current version takes no more decisions; the
/// agent may propose a new version with the same id (`hitl propose`), and approvals of
/// an earlier version never count for it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// What must change: a code from the matrix's `reason_codes.request_changes`.
    #[arg(long, value_name = "CODE")]
    pub reason_code: String,
    /// A comment recorded with the decision.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    decide::record(
        ctx,
        &Decision {
            reason_code: Some(&args.reason_code),
            comment: args.comment.as_deref(),
            ..Decision::new(&args.request, Verdict::RequestChanges, &args.key)
        },
    )
}
