//! What `approve`, `reject` and `request-changes` share: check the request awaits a decision, check the
//! signer may decide it, and record one signed decision event with its detached
//! signature.

use hitl_lib::audit::{Appender, AuditRepo, ConfigVersions};
use hitl_lib::workflow::engine::Outcome;
use hitl_lib::workflow::{self, Verdict};

use super::identity::{self, KeyArgs};
use super::{CliResult, Ctx, Exit, emit, now};

pub fn record(
    ctx: &Ctx,
    request: &str,
    verdict: Verdict,
    reason_code: Option<&str>,
    comment: Option<&str>,
    key_args: &KeyArgs,
) -> CliResult {
    let ws = ctx.workspace()?;
    let now = now()?;
    let repo = AuditRepo::open(ws.root())?;
    identity::require_committed_config(&repo)?;
    let key = identity::signing_key(key_args, ws.root(), ctx.cwd())?;
    let actor = identity::actor(ws.root(), &key, now)?;
    let how = Appender {
        key: &key,
        actor: actor.clone(),
        // The engine records the versions it decided under (read under the lock).
        config: ConfigVersions {
            matrix: "none".to_owned(),
            policies: "none".to_owned(),
            tool: format!("hitl {}", env!("CARGO_PKG_VERSION")),
        },
        clock: &super::now,
    };
    let mut outcome = None;
    let appended = repo.append(&how, |repo, head, tree, now| {
        let (built, after) = workflow::decision(
            repo,
            head,
            tree,
            key.public(),
            request,
            &actor.principal,
            verdict,
            reason_code,
            comment,
            now,
        )?;
        outcome = Some(after);
        Ok(built)
    })?;
    let seq = appended.events.first().map_or(0, |(_, e)| e.seq);
    workflow::engine::remember_appended(&repo, appended.commit);
    let commit = appended.commit.to_string();
    if let Some(w) = &appended.warning {
        eprintln!("warning: {w}");
    }
    let now_stands = match outcome {
        Some(Outcome::Pending {
            approvals,
            required,
            still_needed,
        }) => format!(
            "{request}: {approvals} of {required} approvals, still needed: {}\n",
            still_needed.join(", ")
        ),
        Some(Outcome::Approved) => format!("{request}: quorum reached, the request is approved\n"),
        Some(Outcome::Overridden(o)) if o.open() => format!(
            "{request}: overridden; it proceeds, and owes {} more review approval(s) from {} by {}\n",
            usize::from(o.required).saturating_sub(o.reviews.len()),
            o.roles.join(", "),
            o.due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        Some(Outcome::Overridden(_)) => {
            format!("{request}: the override's review is complete\n")
        }
        Some(Outcome::ChangesRequested { .. }) => format!(
            "{request}: this version takes no more decisions; the agent may propose a new version with the same id\n"
        ),
        _ => String::new(),
    };
    emit(
        format!(
            "{request}: {} by {} (event {seq}, commit {})\n{now_stands}",
            verdict.as_str(),
            actor.principal,
            &commit[..12.min(commit.len())]
        )
        .as_bytes(),
    )?;
    Ok(Exit::Ok)
}
