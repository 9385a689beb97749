//! `hitl man`: the man page, in roff.

use clap::CommandFactory;

use super::{Cli, CliError, CliResult, Exit};

/// Print the man page (roff) to standard output: `hitl man | man -l -`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> CliResult {
    let man = clap_mangen::Man::new(Cli::command());
    man.render(&mut std::io::stdout())
        .map_err(|e| CliError::new(Exit::Io, format!("cannot write the man page: {e}")))?;
    Ok(Exit::Ok)
}
