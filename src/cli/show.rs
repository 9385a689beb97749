//! `hitl show REQUEST`: the evidence pack a reviewer reads before deciding.

use super::{At, CliResult, Ctx, Exit, Format, emit, present, print_json};

/// Show the evidence pack of a request: identity, agent, action, tier, sources, diff,
/// policy decision, alternatives, rollback, expiry, who may approve and warnings.
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

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let pack = ctx.evidence_pack(&args.request, args.at.instant()?)?;
    match args.format {
        Format::Json => print_json(&pack)?,
        Format::Markdown => emit(present::pack_markdown(&pack).as_bytes())?,
        Format::Table => emit((args.at.note() + &present::pack_table(&pack)).as_bytes())?,
    }
    Ok(Exit::Ok)
}
