//! `hitl man`: the man pages, in roff. `hitl(1)` lists the commands as `hitl-show(1)`
//! and so on; each of those pages is `hitl man show` (and `hitl-policy-test(1)` is
//! `hitl man policy test`), so every page a page names can be produced.

use clap::CommandFactory;

use super::{Cli, CliError, CliResult, Exit, emit};

/// Print the man page (roff) to standard output: `hitl man | man -l -`.
///
/// With COMMAND, the page of that command, which hitl(1) names: `hitl man show` is
/// hitl-show(1), `hitl man policy test` is hitl-policy-test(1).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The command whose page to print (`show`, `policy test`); none for hitl(1).
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The command tree the pages are made from: built (so that subcommands know their
/// full names and inherit the global options) and without clap's `help` subcommand,
/// which has no page.
fn command_tree() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

pub fn run(args: &Args) -> CliResult {
    let root = command_tree();
    let mut cmd = &root;
    for (i, name) in args.command.iter().enumerate() {
        let Some(sub) = cmd.get_subcommands().find(|s| s.get_name() == name) else {
            return Err(unknown(cmd, &args.command[..=i]));
        };
        cmd = sub;
    }
    // Subcommands have no version of their own: every page names the tool's.
    let man =
        clap_mangen::Man::new(cmd.clone()).source(format!("hitl {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)
        .map_err(|e| CliError::new(Exit::Io, format!("cannot render the man page: {e}")))?;
    emit(&page)?;
    Ok(Exit::Ok)
}

fn unknown(parent: &clap::Command, path: &[String]) -> CliError {
    let names: Vec<String> = parent
        .get_subcommands()
        .map(|s| format!("`{}`", s.get_name()))
        .collect();
    let parent_name = parent.get_bin_name().unwrap_or("hitl");
    let mut err = CliError::new(
        Exit::Usage,
        format!("there is no man page for `hitl {}`", path.join(" ")),
    );
    err.hints.push(if names.is_empty() {
        format!(
            "`{parent_name}` has no subcommands; its page is `hitl man {}`",
            path[..path.len() - 1].join(" ")
        )
    } else {
        format!("the commands of `{parent_name}` are {}", names.join(", "))
    });
    err
}
