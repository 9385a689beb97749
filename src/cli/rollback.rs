//! `hitl rollback ID`: runs the `rollback.command` of a request's recorded proposal
//! once, after its approval was spent, under the same audit as `exec`: the start is
//! recorded (`rollback_started`) in a signed commit *before* the command runs, so a
//! second rollback is refused even if the first one was killed, and its end after it
//! (`rolled_back`). `hitl rollback ID --approve` records one approval of the rollback
//! where the tier asks for them (docs/approvals.md). The engine decides; this file
//! runs the command.

use std::time::Instant;

use hitl_lib::workflow::rollback;

use super::identity::{self, KeyArgs, Recorder};
use super::{CliError, CliResult, Ctx, Exit, emit};

/// Roll back a spent approval: run the recorded proposal's `rollback.command` once and
/// record how it ended; or, with `--approve`, approve the rollback. Exits with the
/// command's exit code.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// Approve the rollback (where the tier's `rollback_approval` asks for it) instead of
    /// running it.
    #[arg(long)]
    pub approve: bool,
    /// A comment recorded with the rollback approval.
    #[arg(long, value_name = "TEXT", requires = "approve")]
    pub comment: Option<String>,
    /// The operator who supervises a human-supervised tier: the key that signs must be
    /// theirs.
    #[arg(long, value_name = "PRINCIPAL", conflicts_with = "approve")]
    pub operator: Option<String>,
    /// Push the start to this git remote before the command runs, and run it only if
    /// the push lands; the record of the end is pushed too.
    #[arg(long, value_name = "REMOTE", conflicts_with = "approve")]
    pub push: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let Recorder {
        ws,
        repo,
        key,
        actor,
        ..
    } = Recorder::open(ctx, &args.key)?;
    let how = identity::appender(&key, actor.clone());
    let request = args.request.as_str();
    let signer = (actor.principal.as_str(), key.public());
    if args.approve {
        let mut progress = String::new();
        let appended = repo.append(&how, |repo, _, _, now| {
            let (built, p) =
                rollback::approve(repo, request, signer, args.comment.as_deref(), now)?;
            progress = p;
            Ok::<_, CliError>(built)
        })?;
        hitl_lib::workflow::engine::remember_appended(&repo, &appended);
        emit(
            format!(
                "{request}: rollback approved by {} ({progress}; commit {})\n",
                actor.principal,
                &appended.commit.to_string()[..12]
            )
            .as_bytes(),
        )?;
        return Ok(Exit::Ok);
    }
    // 1. Started, in a signed commit, before anything runs.
    let mut command = Vec::new();
    let mut prepared = None;
    let started = repo.append(&how, |repo, _, _, now| {
        let start = rollback::start(repo, request, signer, args.operator.as_deref(), now)?;
        // The workspace as the proposal's commit held it, the program found there: a
        // program that is not there refuses before the one rollback is used up.
        prepared = Some(super::proposal_command::prepare(
            repo,
            request,
            "rollback.command",
            &start.command,
        )?);
        command = start.command;
        Ok::<_, CliError>(start.built)
    })?;
    let Some((export, run)) = prepared else {
        return Err(CliError::new(Exit::Io, "the rollback was not prepared"));
    };
    hitl_lib::workflow::engine::remember_appended(&repo, &started);
    if let Some(remote) = &args.push
        && let Err(why) = super::exec::push(ws.root(), remote)
    {
        return Err(CliError::new(
            Exit::RollbackStarted,
            format!(
                "the start of `{request}`'s rollback could not be pushed to `{remote}` ({why}): another clone may have started it first; nothing ran"
            ),
        ));
    }
    eprintln!(
        "rollback: the rollback of `{request}` is started (commit {}); running {}",
        &started.commit.to_string()[..12],
        command.first().map_or("", String::as_str)
    );
    // 2. The command, in the export of the proposal's commit (where a relative
    // `rollback.command` is read from), its output passed through and digested.
    let words = serde_json::to_vec(&command).unwrap_or_default();
    let clock = Instant::now();
    let (exit_code, output) = super::exec::run_teed(&run, Some(&export.dir))?;
    drop(export);
    let duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    let fields = serde_json::json!({
        "command": command.first(),
        "arguments": format!("sha256:{}", hitl_lib::audit::sha256_hex(&words)),
        "exit_code": exit_code,
        "output": format!("sha256:{}", hitl_lib::audit::sha256_hex(&output)),
        "duration_ms": duration_ms,
    });
    let ended = repo.append(&how, |repo, _, _, now| {
        Ok::<_, CliError>(rollback::finish(repo, request, signer, fields, now)?)
    })?;
    hitl_lib::workflow::engine::remember_appended(&repo, &ended);
    eprintln!("rollback: `{request}` rolled back, exit code {exit_code}");
    if let Some(remote) = &args.push
        && let Err(why) = super::exec::push(ws.root(), remote)
    {
        eprintln!("warning: the record of the end could not be pushed to `{remote}`: {why}");
    }
    super::exec::exit_with(exit_code)
}
