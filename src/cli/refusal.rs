//! A refusal of `check` or `exec`, recorded when the audit is at hand: one `refused`
//! event for the request the approval file names, in a commit signed by whoever was
//! refused (docs/approvals.md). Recording is best effort and never changes the
//! outcome: the command exits with the refusal's own code whether or not it was
//! recorded, and says on stderr which it was.

use hitl_lib::audit::{Actor, AuditRepo};
use hitl_lib::signing::SigningKey;
use hitl_lib::text::escape;
use hitl_lib::workflow::refusal::{self, Attempt};
use hitl_lib::workflow::{WorkflowError, engine};

use super::{CliError, CliResult, Exit, identity};

/// Records `attempt` as `key`'s (or says why not), then gives the refusal's error.
pub fn refused(
    repo: &AuditRepo,
    key: CliResult<(&SigningKey, Actor)>,
    attempt: &Attempt<'_>,
) -> CliError {
    if let Err(why) = record(repo, key, attempt) {
        eprintln!(
            "note: the refusal was not recorded in the audit: {}",
            escape(&why)
        );
    }
    CliError::from(attempt.refusal.clone())
}

fn record(
    repo: &AuditRepo,
    key: CliResult<(&SigningKey, Actor)>,
    attempt: &Attempt<'_>,
) -> Result<(), String> {
    let Some(request) = refusal::named_request(attempt.file) else {
        return Err("the file names no request".to_owned());
    };
    let (key, actor) =
        key.map_err(|e| format!("no usable signing key to record it with ({})", e.message))?;
    let principal = actor.principal.clone();
    let how = identity::appender(key, actor);
    let appended = repo
        .append(&how, |repo, head, tree, now| {
            refusal::record(
                repo,
                head,
                tree,
                &request,
                attempt,
                (&principal, key.public()),
                now,
            )
            .map_err(|e| match e {
                WorkflowError::NotProposed(r) => CliError::new(
                    Exit::NotFound,
                    format!("`{r}` was not proposed in this audit"),
                ),
                e => CliError::from(e),
            })
        })
        .map_err(|e| e.message)?;
    engine::remember_appended(repo, &appended);
    eprintln!(
        "note: the refusal is recorded in the audit for `{}` (commit {})",
        escape(&request),
        &appended.commit.to_string()[..12]
    );
    Ok(())
}
