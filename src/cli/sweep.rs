//! `hitl sweep`: records the `expired` and `escalated` events that are due, in one
//! signed commit; idempotent, for a CI schedule.

use hitl_lib::workflow::{self, WorkflowError};

use super::identity::{self, KeyArgs, Recorder};
use super::{CliError, CliResult, Ctx, Exit, emit};

/// Record the `expired` and `escalated` events that are due (the engine derives both
/// whether or not they are recorded; a sweep writes down when). Idempotent: a second run
/// records nothing. For a CI schedule, signed by its own key in `allowed_signers`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let Recorder {
        repo, key, actor, ..
    } = Recorder::open(ctx, &args.key)?;
    // Which requests to look at is read outside the lock (a full look at the audit);
    // each is folded and judged again under it.
    let candidates = workflow::sweep::candidates(&repo)?;
    let how = identity::appender(&key, actor);
    let mut swept = Vec::new();
    let mut nothing_due = false;
    let appended = repo.append(&how, |repo, head, tree, now| {
        match workflow::sweep::sweep(repo, head, tree, &candidates, now) {
            Ok((built, s)) => {
                swept = s;
                Ok(built)
            }
            Err(WorkflowError::NothingDue) => {
                nothing_due = true;
                Err(CliError::from(WorkflowError::NothingDue))
            }
            Err(e) => Err(e.into()),
        }
    });
    if nothing_due {
        emit(b"sweep: nothing is due\n")?;
        return Ok(Exit::Ok);
    }
    let appended = appended?;
    workflow::engine::remember_appended(&repo, &appended);
    let commit = appended.commit.to_string();
    let mut out = String::new();
    for ((request, kind), (_, e)) in swept.iter().zip(&appended.events) {
        out.push_str(&format!("{request}: {kind} (event {})\n", e.seq));
    }
    out.push_str(&format!(
        "sweep: {} event(s), commit {}\n",
        swept.len(),
        &commit[..12.min(commit.len())]
    ));
    emit(out.as_bytes())?;
    Ok(Exit::Ok)
}
