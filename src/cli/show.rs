//! `hitl show REQUEST`: the evidence pack a reviewer reads before deciding.

use hitl_lib::evidence::EvidencePack;
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
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let (pack, recorded) = ctx.evidence_pack(&args.request, args.at.instant()?)?;
    let recorded = recorded.as_ref();
    match args.format {
        Format::Json => print_json(&Shown {
            pack: &pack,
            recorded,
        })?,
        Format::Markdown => emit(
            (present::recorded_note_markdown(&pack.request, recorded)
                + &present::pack_markdown(&pack))
                .as_bytes(),
        )?,
        Format::Table => emit(
            (present::recorded_note_text(&pack.request, recorded)
                + &args.at.note()
                + &present::pack_table(&pack))
                .as_bytes(),
        )?,
    }
    Ok(Exit::Ok)
}
