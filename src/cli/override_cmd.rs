//! `hitl override ID --reason TEXT`: break-glass. A member of the matrix's
//! `break_glass.role` lets a pending request proceed now; the override owes the
//! after-the-fact review the matrix sets (how many approvals, from which roles, by
//! when), which `queue` and `status` show and `verify` lists once overdue.

use hitl_lib::workflow::Verdict;

use super::decide::Decision;
use super::identity::KeyArgs;
use super::{CliResult, Ctx, decide};

/// Break-glass: let a pending request proceed now, by a member of the matrix's
/// `break_glass.role`, with a reason. It owes an after-the-fact review: the approvals
/// the matrix's `break_glass.review` names, given with `hitl approve ID` by members of
/// its roles before it is due.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// Why the emergency cannot wait (recorded with the override).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    decide::record(
        ctx,
        &Decision {
            comment: Some(&args.reason),
            ..Decision::new(&args.request, Verdict::Override, &args.key)
        },
    )
}
