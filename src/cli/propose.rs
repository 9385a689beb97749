//! `hitl propose FILE|-`: validate, classify, assemble the evidence pack, run the
//! policies and record it all in one signed commit, signed by the submitter's key.

use std::path::Path;

use hitl_lib::audit::{Appender, AuditRepo, ConfigVersions};
use hitl_lib::evidence;
use hitl_lib::policy::PolicySet;
use hitl_lib::workflow;

use super::identity::{self, KeyArgs};
use super::{CliResult, Ctx, Exit, emit, now};

/// Record a proposal: proposed, classified, evidence_assembled, policy_checked, then
/// approval_requested, or blocked when a policy denies it (exit 1).
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
    let (matrix, matrix_digest) = ws.load_matrix_with_digest()?;
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
    let r = &loaded.request;
    let (pack, policies) = match PolicySet::load(ws.root()) {
        Ok(Some(mut set)) => {
            let pack = evidence::assemble_submitted(
                &matrix,
                &mut set,
                loaded.path.clone(),
                r,
                Some(&actor.principal),
                now,
            );
            (pack, set.digest().to_owned())
        }
        Ok(None) => (
            evidence::assemble(&matrix, loaded.path.clone(), r, now),
            "none".to_owned(),
        ),
        Err(e) => (
            evidence::assemble_with_policy_error(
                &matrix,
                e.to_string(),
                loaded.path.clone(),
                r,
                now,
            ),
            "unloadable".to_owned(),
        ),
    };
    let config = ConfigVersions {
        matrix: matrix_digest,
        policies,
        tool: format!("hitl {}", env!("CARGO_PKG_VERSION")),
    };
    let proposal = workflow::proposal(&matrix, r, &loaded.bytes, &pack, &actor.principal, &config)
        .map_err(|e| {
            super::CliError::new(Exit::Io, format!("cannot render the evidence pack: {e}"))
        })?;
    let blocked = proposal.blocked;
    let tier = pack.classification.tier;
    let how = Appender {
        key: &key,
        actor: actor.clone(),
        config,
        clock: &super::now,
        subject: format!(
            "{} {} (tier {tier}) by {}",
            if blocked { "block" } else { "propose" },
            r.id,
            actor.principal
        ),
        trailers: vec![("Hitl-Tier".to_owned(), tier.to_string())],
    };
    // The events recorded are the engine's, judged and assembled under the lock from
    // the configuration at HEAD; the subject and the message above and below are from
    // the working tree, which `require_committed_config` holds equal to it.
    let mut recorded: Option<(bool, u8)> = None;
    let appended = repo.append(&how, |repo, tree, now| {
        let judged = workflow::engine::judge_new_proposal(
            repo,
            tree,
            key.public(),
            &loaded.path,
            &loaded.bytes,
            &actor.principal,
            now,
        )?;
        recorded = Some((judged.proposal.blocked, judged.pack.classification.tier));
        Ok((judged.proposal.events, judged.proposal.blobs))
    })?;
    let (blocked, tier) = recorded.unwrap_or((blocked, tier));
    let id = r.id.clone();
    let first = appended.events.first().map_or(0, |(_, e)| e.seq);
    let last = appended.events.last().map_or(0, |(_, e)| e.seq);
    let commit = appended.commit.to_string();
    if let Some(w) = &appended.warning {
        eprintln!("warning: {w}");
    }
    let outcome = if blocked {
        "blocked by policy".to_owned()
    } else {
        format!(
            "awaiting approval by {}",
            pack.classification.eligible_role_names().join(", ")
        )
    };
    emit(
        format!(
            "recorded {id} (tier {tier}) as {}: events {first}-{last}, commit {}\n{id}: {outcome}\n",
            actor.principal,
            &commit[..12.min(commit.len())],
        )
        .as_bytes(),
    )?;
    Ok(if blocked { Exit::Findings } else { Exit::Ok })
}
