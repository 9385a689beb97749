//! `hitl completions SHELL`: shell completion scripts.

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, CliResult, Exit, emit};

/// Print a shell completion script to standard output.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    pub shell: Shell,
}

pub fn run(args: &Args) -> CliResult {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "hitl", &mut script);
    emit(&script)?;
    Ok(Exit::Ok)
}
