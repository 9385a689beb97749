//! `hitl propose FILE|-`: validate, classify, assemble the evidence pack, run the
//! policies and record it all in one signed commit, signed by the submitter's key.

use std::path::Path;

use hitl_lib::audit::AuditRepo;
use hitl_lib::workflow;

use super::identity::{self, KeyArgs};
use super::{CliResult, Ctx, Exit, emit, now};

/// Record a proposal: proposed, classified, evidence_assembled, policy_checked, then
/// approval_requested, or blocked when a policy denies it or nobody could approve it
/// (exit 1, with the reasons).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The proposal file, a request id from `requests/`, or `-` for standard input.
    pub file: String,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let now = now()?;
    let matrix = ws.load_matrix()?;
    let loaded = if args.file == "-" {
        ws.read_request(Path::new("<stdin>"), &mut std::io::stdin().lock(), &matrix)?
    } else {
        let path = ws.resolve_request(&args.file, ctx.cwd())?;
        ws.load_request(&path, &matrix)?
    };
    let repo = AuditRepo::open(ws.root())?;
    identity::require_committed_config(&repo)?;
    let key = identity::signing_key(&args.key, ws.root(), ctx.cwd())?;
    let actor = identity::actor(ws.root(), &key, now)?;
    let how = identity::appender(&key, actor.clone());
    // What is recorded, and what is said below, is the engine's: judged and assembled
    // under the lock from the configuration at HEAD. The file was read and checked
    // above only to report its problems against the file itself.
    let mut judged_pack = None;
    let appended = repo.append(&how, |repo, head, tree, now| {
        let judged = workflow::engine::judge_new_proposal(
            repo,
            head,
            tree,
            key.public(),
            &loaded.path,
            &loaded.bytes,
            &actor.principal,
            now,
        )?;
        judged_pack = Some((judged.proposal.blocked, judged.pack.clone()));
        Ok(judged.proposal.built(&actor.principal))
    })?;
    let Some((blocked, pack)) = judged_pack else {
        return Err(super::CliError::new(
            Exit::Io,
            "the append recorded a proposal the engine did not judge".to_owned(),
        ));
    };
    let tier = pack.classification.tier;
    let id = pack.request.clone();
    let first = appended.events.first().map_or(0, |(_, e)| e.seq);
    let version = appended
        .events
        .first()
        .and_then(|(_, e)| e.fields.get("version"))
        .and_then(serde_json::Value::as_u64)
        .filter(|v| *v > 1)
        .map(|v| format!(" version {v}"))
        .unwrap_or_default();
    let last = appended.events.last().map_or(0, |(_, e)| e.seq);
    workflow::engine::remember_appended(&repo, &appended);
    let commit = appended.commit.to_string();
    if let Some(w) = &appended.warning {
        eprintln!("warning: {w}");
    }
    let outcome = if blocked {
        let reasons: Vec<String> = workflow::block_reasons(&pack)
            .iter()
            .map(|r| format!("\n  - {}", hitl_lib::text::escape(r)))
            .collect();
        format!("blocked:{}", reasons.concat())
    } else if pack.classification.approvals_required == 0 {
        "proceeds: its tier needs no approval (full audit)".to_owned()
    } else {
        format!(
            "awaiting approval by {}",
            pack.classification.eligible_role_names().join(", ")
        )
    };
    emit(
        format!(
            "recorded {id}{version} (tier {tier}) as {}: events {first}-{last}, commit {}\n{id}: {outcome}\n",
            actor.principal,
            &commit[..12.min(commit.len())],
        )
        .as_bytes(),
    )?;
    Ok(if blocked { Exit::Findings } else { Exit::Ok })
}
