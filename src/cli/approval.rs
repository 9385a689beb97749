//! `hitl approval ID [--out FILE]`: the approval file the final approval of a request
//! wrote into the audit (docs/approvals.md), printed or copied for the host that acts.

use std::io::Write as _;
use std::path::PathBuf;

use hitl_lib::audit::AuditRepo;
use hitl_lib::workflow::engine;

use super::{CliError, CliResult, Ctx, Exit, emit, now};

/// Print or copy the approval file of an approved request.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// Write the file here instead of standard output (never over an existing file).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = AuditRepo::open(ws.root())?;
    let now = now()?;
    // Where the request stands, as the engine folds it (a tampered history refuses).
    let st = engine::status(&repo, &args.request, now)?;
    let head = repo
        .head_for_reading()?
        .ok_or_else(|| CliError::new(Exit::NotFound, "the audit is empty"))?;
    let tree = head.tree().map_err(hitl_lib::audit::AuditError::from)?;
    let Some(bytes) = repo.read(&tree, &hitl_lib::approval::path(&args.request))? else {
        return Err(CliError::new(
            Exit::NotFound,
            format!(
                "`{}` has no approval file: it is {}",
                args.request,
                st.outcome.name()
            ),
        ));
    };
    match &args.out {
        None => emit(&bytes)?,
        Some(out) => {
            let path = ctx.cwd().join(out);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| {
                    CliError::new(Exit::Io, format!("cannot create `{}`: {e}", out.display()))
                })?;
            f.write_all(&bytes).map_err(|e| {
                CliError::new(Exit::Io, format!("cannot write `{}`: {e}", out.display()))
            })?;
            eprintln!(
                "wrote the approval file of `{}` to `{}`",
                args.request,
                out.display()
            );
        }
    }
    Ok(Exit::Ok)
}

/// A random approval id: 128 bits from the operating system, hex.
pub fn nonce() -> CliResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        CliError::new(
            Exit::Io,
            format!("cannot read randomness for an approval id: {e}"),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
