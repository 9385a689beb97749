//! What `approve` and `reject` share: check the request awaits a decision, check the
//! signer may decide it, and record one signed decision event with its detached
//! signature.

use hitl_lib::audit::{Appender, AuditRepo, ConfigVersions};
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
    let mut tier = 0;
    // The subject needs the tier, which only the recorded events know: read them first
    // (outside the lock, for the message only); the checks run again under the lock.
    if let Some(head) = repo.head_commit()? {
        let tree = head.tree().map_err(hitl_lib::audit::AuditError::from)?;
        let events = repo.request_events(&tree, request)?;
        if let Some(t) = events
            .iter()
            .find(|e| e.kind == workflow::types::CLASSIFIED)
            .and_then(|e| e.fields.get("tier"))
            .and_then(serde_json::Value::as_u64)
        {
            tier = t;
        }
    }
    let word = match verdict {
        Verdict::Approve => "approve",
        Verdict::Reject => "reject",
    };
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
        subject: format!("{word} {request} (tier {tier}) by {}", actor.principal),
        trailers: vec![
            ("Hitl-Tier".to_owned(), tier.to_string()),
            ("Hitl-Decision".to_owned(), verdict.as_str().to_owned()),
        ],
    };
    let appended = repo.append(&how, |repo, tree, now| {
        let event = workflow::decision(
            repo,
            tree,
            key.public(),
            request,
            &actor.principal,
            verdict,
            reason_code,
            comment,
            now,
        )?;
        Ok((vec![event], Vec::new()))
    })?;
    let seq = appended.events.first().map_or(0, |(_, e)| e.seq);
    let commit = appended.commit.to_string();
    if let Some(w) = &appended.warning {
        eprintln!("warning: {w}");
    }
    emit(
        format!(
            "{request}: {} by {} (event {seq}, commit {})\n",
            verdict.as_str(),
            actor.principal,
            &commit[..12.min(commit.len())]
        )
        .as_bytes(),
    )?;
    Ok(Exit::Ok)
}
