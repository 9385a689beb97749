//! `hitl init [DIR]`: scaffold a workspace.

use std::path::PathBuf;

use std::fmt::Write as _;

use super::{CliResult, Ctx, Exit, emit};

/// Create a workspace: approval matrix, an example request, allowed_signers and README
/// stubs; runs `git init` unless DIR is already in a git repository.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to create the workspace in (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    // `.` is the current folder itself: keep `/./` out of paths in messages.
    let dir = if args.dir.as_os_str() == "." {
        ctx.cwd().to_path_buf()
    } else {
        ctx.cwd().join(&args.dir)
    };
    let created = hitl_lib::scaffold::init(&dir)?;
    let mut out = format!("created a hitl workspace in `{}`:\n", args.dir.display());
    for p in created {
        let _ = writeln!(out, "  {}", p.display());
    }
    out.push_str("next: edit `approval-matrix.yaml`, then run `hitl lint`\n");
    emit(out.as_bytes())?;
    Ok(Exit::Ok)
}
