//! `hitl show REQUEST`: the evidence pack a reviewer reads before deciding.

use hitl_lib::evidence::EvidencePack;
use hitl_lib::workflow::refusal::Refused;
use hitl_lib::workflow::types;
use hitl_lib::workspace::Recorded;
use serde::Serialize;

use super::{At, CliResult, Ctx, Exit, Format, emit, present, print_json};

/// Show the evidence pack of a request: identity, agent, action, tier, sources, diff,
/// policy decision, alternatives, rollback, expiry, who may approve and warnings.
///
/// Once a request is proposed, its id shows the proposal recorded in the audit, and
/// says so when `requests/ID.yaml` differs from it (or is missing).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A request id (from `requests/`) or a path to a proposal file.
    pub request: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub at: At,
}

/// The JSON of `show`: the evidence pack, and what the audit holds under its id when it
/// holds anything (`source`, `recorded_proposal`, `working_file`, `working_copy`).
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    pack: &'a EvidencePack,
    #[serde(flatten)]
    recorded: Option<&'a Recorded>,
    /// The refusals of `check` and `exec` the audit records for it, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    refusals: Option<serde_json::Value>,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let (pack, recorded) = ctx.evidence_pack(&args.request, args.at.instant()?)?;
    let recorded = recorded.as_ref();
    let refusals = match recorded {
        Some(_) => recorded_refusals(ctx, &pack.request),
        None => Vec::new(),
    };
    match args.format {
        Format::Json => print_json(&Shown {
            pack: &pack,
            recorded,
            refusals: (!refusals.is_empty()).then(|| super::status::refusals_json(&refusals)),
        })?,
        Format::Markdown => emit(
            (present::recorded_note_markdown(&pack.request, recorded)
                + &present::pack_markdown(&pack))
                .as_bytes(),
        )?,
        Format::Table => emit(
            (present::recorded_note_text(&pack.request, recorded)
                + &args.at.note()
                + &present::pack_table(&pack)
                + &super::status::refusals_line(&refusals))
                .as_bytes(),
        )?,
    }
    Ok(Exit::Ok)
}

/// The `refused` events the audit at HEAD lists for `request`, as recorded (`status`
/// shows them as the engine folds them): read through the request's index only, so
/// `show` stays as fast as without them. Nothing when the audit cannot be read.
fn recorded_refusals(ctx: &Ctx, request: &str) -> Vec<Refused> {
    let read = || -> Option<Vec<Refused>> {
        let ws = ctx.workspace().ok()?;
        let repo = hitl_lib::audit::AuditRepo::open(ws.root()).ok()?;
        let head = repo.head_for_reading().ok()??;
        let tree = head.tree().ok()?;
        let events = repo.request_events(&tree, request).ok()?;
        let mut state = hitl_lib::workflow::engine::State::default();
        for e in events.iter().filter(|e| e.kind == types::REFUSED) {
            state.refused(e);
        }
        Some(state.refusals)
    };
    read().unwrap_or_default()
}
