//! `hitl init [DIR]`: scaffold a workspace.

use std::path::PathBuf;

use super::{CliResult, Ctx, Exit};

/// Create a workspace: approval matrix, an example request, allowed_signers and README
/// stubs; runs `git init` unless DIR is already in a git repository.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to create the workspace in (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let dir = ctx.cwd().join(&args.dir);
    let created = hitl_lib::scaffold::init(&dir)?;
    println!("created a hitl workspace in `{}`:", args.dir.display());
    for p in created {
        println!("  {}", p.display());
    }
    println!("next: edit `approval-matrix.yaml`, then run `hitl lint`");
    Ok(Exit::Ok)
}
