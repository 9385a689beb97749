//! `hitl check APPROVAL --action NAME --target SYSTEM/OBJECT ...`: whether an approval
//! file allows one action now (docs/approvals.md). Offline it needs only the file and
//! the signer files; with the audit at hand it also asks the engine whether the request
//! is still approved and the file is the one the audit holds.

use std::path::{Path, PathBuf};

use hitl_lib::approval::check::{self, Checked, Want};
use hitl_lib::audit::AuditRepo;
use hitl_lib::signing::{AllowedSigners, RevokedSigners};
use hitl_lib::workflow::approval::{AtHead, check_at_head};
use hitl_lib::workflow::refusal::Attempt;

use super::identity::{self, KeyArgs};
use super::{CliError, CliResult, Ctx, Exit, Format, emit, now, print_json, refusal};

/// Check that an approval file allows an action now: exit 0 only if it does.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The approval file (`hitl approval ID --out FILE`).
    pub approval: PathBuf,
    /// The action about to run (`payments.refund`).
    #[arg(long, value_name = "NAME")]
    pub action: String,
    /// Where it acts: `SYSTEM/OBJECT` (`payments/ch_981`).
    #[arg(long, value_name = "SYSTEM/OBJECT")]
    pub target: String,
    /// The amount it moves (with `--currency`): at most the approval's ceiling.
    #[arg(long, requires = "currency", value_name = "N")]
    pub amount: Option<String>,
    /// The amount's currency.
    #[arg(long, requires = "amount")]
    pub currency: Option<String>,
    /// A JSON file with the parameters about to be used: their digest must be the
    /// approval's.
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
    /// With `--offline`: the signer files to trust (required).
    #[arg(long, value_name = "FILE", requires = "offline")]
    pub allowed_signers: Option<PathBuf>,
    /// With `--offline`: revoked keys.
    #[arg(long, value_name = "FILE", requires = "offline")]
    pub revoked_signers: Option<PathBuf>,
    /// Check the file alone, against `--allowed-signers`, without the audit (whether it
    /// was spent or revoked is then not known). Without it, `check` needs the workspace.
    #[arg(long)]
    pub offline: bool,
    /// With the audit at hand: fold the request again, rather than reuse this clone's
    /// fold of it at this same HEAD by this same hitl build (kept in `.git/hitl-fold/`).
    #[arg(long, conflicts_with = "offline")]
    pub fresh: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// With the audit at hand, a refusal is recorded in it, signed with this key (or
    /// `$HITL_SIGNING_KEY`; never git's `user.signingkey`, never after a prompt); without
    /// one, `check` refuses all the same and says it was not recorded.
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let name = args.approval.display().to_string();
    let bytes = read(&ctx.cwd().join(&args.approval), &name)?;
    let parameters = match &args.params {
        None => None,
        Some(p) => {
            let shown = p.display().to_string();
            let text = read(&ctx.cwd().join(p), &shown)?;
            let value = hitl_lib::approval::parse_parameters(&text)
                .map_err(|e| CliError::new(Exit::InvalidInput, format!("`{shown}`: {e}")))?;
            Some(hitl_lib::approval::parameters_digest(&value))
        }
    };
    let want = Want {
        action: &args.action,
        target: &args.target,
        amount: args.amount.as_deref().zip(args.currency.as_deref()),
        parameters,
    };
    let now = now()?;
    // The audit, when at hand: a refusal is recorded in it.
    let mut audit = None;
    // Offline only when asked: a workspace that does not open (a broken `hitl.toml`, a
    // deleted matrix, a nested workspace, a wrong `-C`) refuses, never falls back to a
    // check that trusts signer files from the current folder.
    let (result, offline) = if args.offline {
        let dir = ctx.cwd();
        let Some(allowed_path) = &args.allowed_signers else {
            return Err(CliError::new(
                Exit::Usage,
                "`--offline` needs `--allowed-signers FILE`: the signer files to trust, named",
            ));
        };
        let allowed = AllowedSigners::load(&dir.join(allowed_path))?;
        let revoked = match &args.revoked_signers {
            Some(p) => RevokedSigners::load(&dir.join(p))?,
            None => RevokedSigners::parse(Path::new("revoked_signers"), "")?,
        };
        let r =
            check::check(&name, &bytes, &allowed, &revoked, &want, now).map_err(Outcome::Refused);
        (r, true)
    } else {
        let ws = ctx.workspace()?;
        let repo = AuditRepo::open(ws.root())?;
        let build = if args.fresh { None } else { build() };
        let r =
            check_at_head(&repo, &name, &bytes, &want, now, build.as_deref()).map_err(
                |e| match e {
                    AtHead::Refused(r) => Outcome::Refused(r),
                    AtHead::Workflow(w) => Outcome::Error(CliError::from(w)),
                },
            );
        audit = Some((ws, repo));
        (r, false)
    };
    match result {
        Ok(checked) => {
            report_ok(args, &checked, offline)?;
            Ok(Exit::Ok)
        }
        Err(Outcome::Error(e)) => Err(e),
        Err(Outcome::Refused(r)) => {
            if args.format == Format::Json {
                print_json(&serde_json::json!({
                    "allowed": false,
                    "code": r.code(),
                    "exit": r.exit_code(),
                    "reason": r.to_string(),
                    "offline": offline,
                }))?;
            }
            let Some((ws, repo)) = audit else {
                return Err(CliError::from(r));
            };
            // Only now is a key looked for: the success path does no more work than
            // before, and a missing key never turns a refusal into anything else.
            let key = identity::named_key_quietly(&args.key, ws.root(), ctx.cwd());
            let signer = match &key {
                Ok(k) => identity::actor(ws.root(), k, now).map(|a| (k, a)),
                Err(e) => Err(CliError::new(e.exit, e.message.clone())),
            };
            Err(refusal::refused(
                &repo,
                signer,
                &Attempt {
                    command: "check",
                    refusal: &r,
                    file: &bytes,
                    want: &want,
                },
            ))
        }
    }
}

/// This hitl build, as the fold cache names it: the version, and the executable's path,
/// size, inode, modification and change times (any rebuild or reinstall is another
/// build, even one that keeps the size and sets the same modification time: writing
/// the file moves its change time, which no tool sets back). `None` when the
/// executable cannot be found: nothing is cached then.
fn build() -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "hitl {} {} {} {} {} {}.{}",
        env!("CARGO_PKG_VERSION"),
        exe.display(),
        meta.len(),
        meta.ino(),
        modified.as_nanos(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

enum Outcome {
    Refused(check::Refusal),
    Error(CliError),
}

fn read(path: &Path, shown: &str) -> CliResult<Vec<u8>> {
    // An approval file is small; anything far larger is not one.
    const MAX: u64 = 1 << 20;
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::new(Exit::NotFound, format!("cannot read `{shown}`: {e}")))?;
    if !meta.is_file() || meta.len() > MAX {
        return Err(CliError::new(
            Exit::InvalidInput,
            format!("`{shown}` is not a file of at most 1 MiB"),
        ));
    }
    std::fs::read(path).map_err(|e| CliError::new(Exit::Io, format!("cannot read `{shown}`: {e}")))
}

fn report_ok(args: &Args, c: &Checked, offline: bool) -> CliResult<()> {
    let p = c.parsed.predicate();
    let amount = p
        .amount
        .as_ref()
        .map(|a| format!(" up to {} {}", a.ceiling, a.currency))
        .unwrap_or_default();
    if args.format == Format::Json {
        return print_json(&serde_json::json!({
            "allowed": true,
            "request": c.parsed.request(),
            "approval_id": p.approval_id,
            "action": p.action.name,
            "target": format!("{}/{}", p.target.system, p.target.object),
            "amount": p.amount,
            "approvers": c.approvers,
            "not_before": p.not_before,
            "expires_at": p.expires_at,
            "supervised": p.supervised,
            "offline": offline,
        }));
    }
    let mut out = format!(
        "allowed: `{}` on `{}/{}`{amount} until {} (request `{}`, approved by {})\n",
        p.action.name,
        p.target.system,
        p.target.object,
        p.expires_at,
        c.parsed.request(),
        c.approvers.join(", ")
    );
    if offline {
        out.push_str(
            "offline: whether it was spent or revoked is not checked (no audit at hand)\n",
        );
    }
    emit(out.as_bytes())
}
