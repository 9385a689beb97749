//! `hitl approve ID [ID...]`: a signed approval by an eligible principal; several ids
//! only when the matrix marks every one's tier `batchable`.

use hitl_lib::audit::AuditRepo;
use hitl_lib::text::escape;
use hitl_lib::workflow::{Verdict, engine};

use super::decide::Decision;
use super::identity::{self, KeyArgs};
use super::{CliError, CliResult, Ctx, Exit, decide, now};

/// Approve a request that awaits a decision. The signer must be in one of its eligible
/// roles and may not be its requester. An approval takes an optional comment and no
/// reason code.
///
/// Several ids are approved in one call only when the matrix marks each one's tier
/// `batchable`; each is still its own signed decision, one commit each.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id; several only for tiers the matrix marks `batchable`.
    #[arg(value_name = "ID", required = true)]
    pub requests: Vec<String>,
    /// A comment recorded with the decision (with each one, for several ids).
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Approve only this version of the request (the one you looked at with `hitl show`
    /// or `hitl status`): refused, nothing recorded, if another has been proposed since.
    #[arg(long, value_name = "N")]
    pub version: Option<u32>,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let comment = args.comment.as_deref();
    let [request] = args.requests.as_slice() else {
        if args.version.is_some() {
            return Err(super::CliError::new(
                super::Exit::Usage,
                "`--version` names the version of one request; approve several ids without it"
                    .to_owned(),
            ));
        }
        return batch(ctx, args);
    };
    decide::record(
        ctx,
        &Decision {
            comment,
            seen_version: args.version,
            ..Decision::new(request, Verdict::Approve, &args.key)
        },
    )
}

/// Several ids: every one checked batchable before anything is recorded, then each
/// approved as its own decision, in the order given. The first refusal stops the batch.
fn batch(ctx: &Ctx, args: &Args) -> CliResult {
    let ids = &args.requests;
    let twice = ids
        .iter()
        .enumerate()
        .find_map(|(i, id)| ids.iter().take(i).any(|x| x == id).then_some(id));
    if let Some(id) = twice {
        return Err(CliError::new(
            Exit::Usage,
            format!("`{}` is named twice: one approval per request", escape(id)),
        ));
    }
    let ws = ctx.workspace()?;
    let repo = AuditRepo::open(ws.root())?;
    // The matrix on disk is HEAD's once this holds: batchable is the one in force.
    identity::require_committed_config(&repo)?;
    let matrix = ws.load_matrix()?;
    let now = now()?;
    let mut refused = Vec::new();
    for id in ids {
        let st = engine::status(&repo, id, now)?;
        match st.state.derived.as_ref().and_then(|d| d.as_ref().ok()) {
            Some(d) if matrix.tier(d.tier).is_some_and(|t| t.batchable) => {}
            Some(d) => refused.push(format!("`{}` (tier {})", escape(id), d.tier)),
            None => refused.push(format!(
                "`{}` (no tier: it is {})",
                escape(id),
                st.outcome.name()
            )),
        }
    }
    if !refused.is_empty() {
        let mut e = CliError::new(
            Exit::Refused,
            format!(
                "not approved together: {} in a tier the matrix does not mark `batchable`; nothing recorded",
                refused.join(", ")
            ),
        );
        e.hints
            .push("approve each of them on its own: `hitl approve ID`".to_owned());
        return Err(e);
    }
    for (n, id) in ids.iter().enumerate() {
        if let Err(mut e) = decide::record(
            ctx,
            &Decision {
                comment: args.comment.as_deref(),
                batch: true,
                ..Decision::new(id, Verdict::Approve, &args.key)
            },
        ) {
            let list = |s: &[String]| {
                s.iter()
                    .map(|i| format!("`{}`", escape(i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (done, rest) = ids.split_at(n);
            e.hints.push(format!(
                "the batch stopped at `{}`: {}; not recorded: {}",
                escape(id),
                if done.is_empty() {
                    "nothing was recorded".to_owned()
                } else {
                    format!("recorded {} (one commit each)", list(done))
                },
                list(rest)
            ));
            return Err(e);
        }
    }
    Ok(Exit::Ok)
}
