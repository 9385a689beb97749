//! `hitl init [DIR]`: scaffold a workspace.

use std::path::PathBuf;

use std::fmt::Write as _;

use super::{CliResult, Ctx, Exit, emit, now};

/// Create a workspace (matrix, policies, an example request) and `git init` it
///
/// It holds the approval matrix, example policies with their tests, an example request
/// made at the current time, `allowed_signers` (with you in it when git knows
/// your SSH signing key), `hitl.toml` and a README; runs `git init` unless DIR is
/// already in a git repository. Refuses, writing nothing, when any of these files exist.
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
    // git's user.email and SSH user.signingkey, as seen from the new workspace: people
    // who already sign commits need no setup.
    let probe = std::iter::successors(Some(dir.as_path()), |d| d.parent())
        .find(|d| d.exists())
        .unwrap_or(ctx.cwd());
    let signer = hitl_lib::signing::git_signer_line(probe);
    let now = now()?;
    let created =
        hitl_lib::scaffold::init(&dir, now, signer.as_ref().ok().and_then(Option::as_deref))?;
    let mut out = format!("created a hitl workspace in `{}`:\n", args.dir.display());
    for p in created {
        let _ = writeln!(out, "  {}", p.display());
    }
    out.push('\n');
    match &signer {
        Ok(Some(line)) => {
            let principal = line.split(' ').next().unwrap_or_default();
            let _ = writeln!(
                out,
                "added you to `allowed_signers` as `{principal}`, with the key of git's `user.signingkey`"
            );
        }
        Ok(None) => out.push_str(
            "`allowed_signers` lists nobody yet: git has no `user.email` with an SSH `user.signingkey` (`gpg.format=ssh`)\n",
        ),
        Err(e) => {
            let _ = writeln!(
                out,
                "`allowed_signers` lists nobody yet: git's signing key could not be read ({e})"
            );
        }
    }
    out.push_str(NEXT_STEPS);
    emit(out.as_bytes())?;
    Ok(Exit::Ok)
}

/// What to do after `init`, in an order that works: the first commit may be unsigned
/// (it is the audit's root of trust), every later change to the audit is signed.
const NEXT_STEPS: &str = "
next steps:
  1. keys: add a line to `allowed_signers` for every agent and approver that signs,
       <principal> namespaces=\"git,hitl,hitl-approval\" <contents of their .pub file>
     (agents: namespaces=\"git,hitl\"; only approvers sign approval files)
     the example request is proposed by an agent and approved by the `support-lead`
     role (lea@example.com in `approval-matrix.yaml`: put your approvers there)
  2. check: hitl lint && hitl policy test
  3. commit: git add -A && git commit -m \"hitl workspace\"   (unsigned is fine: the first
     commit is the audit's root of trust; later hitl commits are signed)
  4. propose: hitl propose refund-4711 --key AGENT_PRIVATE_KEY
  5. approve: hitl approve refund-4711 --key APPROVER_PRIVATE_KEY
  6. verify: hitl verify && git log --show-signature
  (`hitl demo` runs all of this in a scratch workspace with generated keys)
";
