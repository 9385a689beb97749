//! `hitl reject ID --reason-code CODE`: a signed rejection.

use hitl_lib::workflow::Verdict;

use super::decide::Decision;
use super::identity::KeyArgs;
use super::{CliResult, Ctx, decide};

/// Reject a request that awaits a decision, with a reason code from the matrix's
/// `reason_codes.reject`. A rejection ends the request for good; to send it back for a
/// new version, use `request-changes`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// Why: a code from the matrix's `reason_codes.reject`.
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
            ..Decision::new(&args.request, Verdict::Reject, &args.key)
        },
    )
}
