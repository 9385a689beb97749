//! `hitl man`: the man page, in roff.

use clap::CommandFactory;

use super::{Cli, CliError, CliResult, Exit, emit};

/// Print the man page (roff) to standard output: `hitl man | man -l -`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> CliResult {
    let man = clap_mangen::Man::new(Cli::command());
    let mut page = Vec::new();
    man.render(&mut page)
        .map_err(|e| CliError::new(Exit::Io, format!("cannot render the man page: {e}")))?;
    emit(&page)?;
    Ok(Exit::Ok)
}
