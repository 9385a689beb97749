//! `hitl show REQUEST`: the evidence pack a reviewer reads before deciding.

use hitl_lib::evidence;

use super::{CliResult, Ctx, Exit, Format, emit, now, present, print_json};

/// Show the evidence pack of a request: identity, agent, action, tier, sources, diff,
/// policy decision, alternatives, rollback, expiry, who may approve and warnings.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A request id (from `requests/`) or a path to a proposal file.
    pub request: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let matrix = ws.load_matrix()?;
    let path = ws.resolve_request(&args.request, ctx.cwd())?;
    let loaded = ws.load_request(&path, &matrix)?;
    let pack = evidence::assemble(&matrix, loaded.path, &loaded.request, now());
    match args.format {
        Format::Json => print_json(&pack)?,
        Format::Markdown => emit(present::pack_markdown(&pack).as_bytes())?,
        Format::Table => emit(present::pack_table(&pack).as_bytes())?,
    }
    Ok(Exit::Ok)
}
