//! `hitl exec APPROVAL -- CMD [ARGS...]`: runs one approved action once. The approval
//! is checked as `hitl check` does with the audit at hand, the proposal is evaluated
//! again under the configuration in force, and the approval is recorded as spent in a
//! signed commit *before* the command runs, so a second `exec` of the same file is
//! refused even if the first one crashed. Then the command runs, and its end is
//! recorded (`executed`: command, argument digest, exit code, output digest, duration),
//! and with `--verify CMD` the verification (`verified`) (docs/approvals.md).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use hitl_lib::approval::check::{Refusal, Want};
use hitl_lib::audit::AuditRepo;
use hitl_lib::workflow::approval::AtHead;
use hitl_lib::workflow::execution::{self, Spend};
use hitl_lib::workflow::precondition::Ran;
use hitl_lib::workflow::refusal::Attempt;
use hitl_lib::workflow::types;

use super::identity::{self, KeyArgs};
use super::{CliError, CliResult, Ctx, Exit, now, refusal};

/// Run an approved action once: check the approval file, record it spent, run CMD,
/// record how it ended. Exits with CMD's exit code.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The approval file (`hitl approval ID --out FILE`).
    pub approval: PathBuf,
    /// The action CMD performs (default: the approved one).
    #[arg(long, value_name = "NAME")]
    pub action: Option<String>,
    /// Where it acts, `SYSTEM/OBJECT` (default: the approved target).
    #[arg(long, value_name = "SYSTEM/OBJECT")]
    pub target: Option<String>,
    /// The amount it moves (with `--currency`): at most the approval's ceiling.
    #[arg(long, requires = "currency", value_name = "N")]
    pub amount: Option<String>,
    #[arg(long, requires = "amount")]
    pub currency: Option<String>,
    /// The operator who supervises a human-supervised tier: the key that signs must be
    /// theirs.
    #[arg(long, value_name = "PRINCIPAL")]
    pub operator: Option<String>,
    /// A shell command that checks the result once CMD has run (recorded as `verified`).
    #[arg(long, value_name = "CMD")]
    pub verify: Option<String>,
    /// A link to an incident, recorded with the verification.
    #[arg(long, value_name = "URL", requires = "verify")]
    pub incident: Option<String>,
    /// Push the spend to this git remote before CMD runs, and run CMD only if the push
    /// lands: of two clones spending the same approval, one push is refused and its CMD
    /// never runs. The records of the end are pushed too.
    #[arg(long, value_name = "REMOTE")]
    pub push: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let now = now()?;
    let repo = AuditRepo::open(ws.root())?;
    identity::require_committed_config(&repo)?;
    let name = args.approval.display().to_string();
    let file = std::fs::read(ctx.cwd().join(&args.approval))
        .map_err(|e| CliError::new(Exit::NotFound, format!("cannot read `{name}`: {e}")))?;
    let parsed = match hitl_lib::approval::check::parse(&name, &file) {
        Ok(parsed) => parsed,
        Err(r) => {
            // Refused before the key is needed for anything else: recorded where the
            // file still names a request of this audit.
            let want = Want {
                action: args.action.as_deref().unwrap_or_default(),
                target: args.target.as_deref().unwrap_or_default(),
                amount: args.amount.as_deref().zip(args.currency.as_deref()),
                parameters: None,
            };
            // Without a usable key it is refused all the same, with the same code.
            let key = identity::signing_key(&args.key, ws.root(), ctx.cwd());
            let signer = match &key {
                Ok(k) => identity::actor(ws.root(), k, now).map(|a| (k, a)),
                Err(e) => Err(CliError::new(e.exit, e.message.clone())),
            };
            return Err(refusal::refused(
                &repo,
                signer,
                &Attempt {
                    command: "exec",
                    refusal: &r,
                    file: &file,
                    want: &want,
                },
            ));
        }
    };
    let p = parsed.predicate();
    let target = format!("{}/{}", p.target.system, p.target.object);
    let want = Want {
        action: args.action.as_deref().unwrap_or(&p.action.name),
        target: args.target.as_deref().unwrap_or(&target),
        amount: args.amount.as_deref().zip(args.currency.as_deref()),
        parameters: None,
    };
    let request = parsed.request().to_owned();
    let key = identity::signing_key(&args.key, ws.root(), ctx.cwd())?;
    let actor = identity::actor(ws.root(), &key, now)?;
    let words = serde_json::to_vec(&args.command).unwrap_or_default();
    let command = format!("sha256:{}", hitl_lib::audit::sha256_hex(&words));
    let how = identity::appender(&key, actor.clone());
    let spend = Spend {
        file: &file,
        name: &name,
        want: &want,
        principal: &actor.principal,
        signer: key.public(),
        operator: args.operator.as_deref(),
        command: &command,
    };
    // 0. The proposal's precondition, once the spend would be accepted: the world must
    // still be the `change.before` the approvers approved. A refusal is recorded (its
    // own commit), nothing is spent and CMD never runs.
    let refusal = match execution::precondition(&repo, &spend, now) {
        Ok(None) => None,
        Ok(Some(pre)) => {
            eprintln!(
                "exec: checking the precondition of `{request}`: {}",
                hitl_lib::text::escape(&serde_json::to_string(&pre.command).unwrap_or_default())
            );
            // In the workspace as the proposal's commit held it, never the work tree.
            let ran = super::proposal_command::prepare(
                &repo,
                &request,
                "change.precondition",
                &pre.command,
            )
            .map_err(|e| format!("it could not be run: {}", e.message))
            .and_then(|(export, words)| run_precondition(&export.dir, &words));
            pre.judge(ran).err()
        }
        Err(AtHead::Refused(r)) => Some(r),
        Err(AtHead::Workflow(w)) => return Err(w.into()),
    };
    if let Some(r) = refusal {
        return Err(refused(&repo, (&key, actor), &r, &file, &want));
    }
    // 1. Spent, in a signed commit, before anything runs.
    let mut refusal = None;
    let spent = repo.append(&how, |repo, _, _, now| {
        execution::spend(repo, &spend, now).map_err(|e| match e {
            AtHead::Refused(r) => {
                refusal = Some(r.clone());
                CliError::from(r)
            }
            AtHead::Workflow(w) => CliError::from(w),
        })
    });
    let spent = match (spent, refusal) {
        (Ok(spent), _) => spent,
        // Refused under the lock (the audit moved since the check above).
        (Err(_), Some(r)) => return Err(refused(&repo, (&key, actor), &r, &file, &want)),
        (Err(e), None) => return Err(e),
    };
    hitl_lib::workflow::engine::remember_appended(&repo, &spent);
    if let Some(remote) = &args.push
        && let Err(why) = push(ws.root(), remote)
    {
        return Err(CliError::new(
            Exit::ApprovalSpent,
            format!(
                "the spend of `{request}`'s approval could not be pushed to `{remote}` ({why}): another clone may have spent it first; nothing ran"
            ),
        ));
    }
    eprintln!(
        "exec: the approval of `{request}` is spent (commit {}); running {}",
        &spent.commit.to_string()[..12],
        args.command.first().map_or("", String::as_str)
    );
    // 2. The command, its output passed through and digested.
    let started = Instant::now();
    let (exit_code, output) = run_teed(&args.command, None)?;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let fields = serde_json::json!({
        "command": args.command.first(),
        "arguments": command,
        "exit_code": exit_code,
        "output": format!("sha256:{}", hitl_lib::audit::sha256_hex(&output)),
        "duration_ms": duration_ms,
    });
    let signer = (actor.principal.as_str(), key.public());
    let executed = repo.append(&how, |repo, _, _, now| {
        Ok::<_, CliError>(execution::finish(
            repo,
            &request,
            signer,
            types::EXECUTED,
            fields.clone(),
            now,
        )?)
    })?;
    hitl_lib::workflow::engine::remember_appended(&repo, &executed);
    eprintln!("exec: `{request}` executed, exit code {exit_code}");
    // 3. The verification, when asked for.
    let mut verified_ok = true;
    if let Some(check) = &args.verify {
        let (code, _) = run_teed(&["sh".to_owned(), "-c".to_owned(), check.clone()], None)?;
        verified_ok = code == 0;
        let fields = serde_json::json!({
            "result": if verified_ok { "passed" } else { "failed" },
            "exit_code": code,
            "incident": args.incident,
        });
        let verified = repo.append(&how, |repo, _, _, now| {
            Ok::<_, CliError>(execution::finish(
                repo,
                &request,
                signer,
                types::VERIFIED,
                fields.clone(),
                now,
            )?)
        })?;
        hitl_lib::workflow::engine::remember_appended(&repo, &verified);
        eprintln!(
            "exec: `{request}` verification {}",
            if verified_ok { "passed" } else { "failed" }
        );
    }
    if let Some(remote) = &args.push
        && let Err(why) = push(ws.root(), remote)
    {
        eprintln!("warning: the records of the end could not be pushed to `{remote}`: {why}");
    }
    match exit_code {
        0 if !verified_ok => Ok(Exit::Findings),
        code => exit_with(code),
    }
}

/// Exits with a command's own status, for the script that called `exec` or `rollback`:
/// everything is recorded and flushed by now.
pub(super) fn exit_with(code: i64) -> CliResult {
    if code == 0 {
        return Ok(Exit::Ok);
    }
    let _ = std::io::stdout().flush();
    std::process::exit(i32::try_from(code).unwrap_or(1).clamp(1, 255))
}

/// Records the refusal `r` of `exec` in the audit (or says why not) and gives its error.
fn refused(
    repo: &AuditRepo,
    (key, actor): (&hitl_lib::signing::SigningKey, hitl_lib::audit::Actor),
    r: &Refusal,
    file: &[u8],
    want: &Want<'_>,
) -> CliError {
    refusal::refused(
        repo,
        Ok((key, actor)),
        &Attempt {
            command: "exec",
            refusal: r,
            file,
            want,
        },
    )
}

/// Runs the precondition's command (its program resolved) in `root` (the export of the
/// proposal's commit), without a shell, with no input and its standard error passed
/// through: its exit code and standard output (at most 1 MiB is read; a state is small).
fn run_precondition(root: &std::path::Path, words: &[String]) -> Result<Ran, String> {
    const MAX: u64 = 1 << 20;
    let Some((program, rest)) = words.split_first() else {
        return Err("no command".to_owned());
    };
    let mut child = Command::new(program)
        .args(rest)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("it could not be run: {e}"))?;
    let mut stdout = Vec::new();
    if let Some(out) = child.stdout.take() {
        out.take(MAX + 1)
            .read_to_end(&mut stdout)
            .map_err(|e| e.to_string())?;
    }
    if stdout.len() as u64 > MAX {
        // More than a state: refused whole, never judged on its first MiB; the command
        // is stopped rather than left blocked on a full pipe.
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "it printed more than {MAX} bytes (a state is small)"
        ));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok(Ran {
        exit_code: status.code(),
        stdout,
    })
}

/// Runs `words`, passing its standard output and error through, and returns its exit
/// code (128 + signal when killed) and the bytes it wrote (stdout, then stderr). In
/// `dir` when given (and the caller's folder otherwise).
pub(super) fn run_teed(
    words: &[String],
    dir: Option<&std::path::Path>,
) -> CliResult<(i64, Vec<u8>)> {
    let Some((program, rest)) = words.split_first() else {
        return Err(CliError::new(Exit::Usage, "no command to run"));
    };
    let mut command = Command::new(program);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command
        .args(rest)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::new(Exit::Io, format!("cannot run `{program}`: {e}")))?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let errs = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Some(Ok(n)) = err.as_mut().map(|e| e.read(&mut chunk)) {
            if n == 0 {
                break;
            }
            let _ = std::io::stderr().write_all(&chunk[..n]);
            buf.extend_from_slice(&chunk[..n]);
        }
        buf
    });
    let mut output = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Some(Ok(n)) = out.as_mut().map(|o| o.read(&mut chunk)) {
        if n == 0 {
            break;
        }
        let _ = std::io::stdout().write_all(&chunk[..n]);
        output.extend_from_slice(&chunk[..n]);
    }
    let _ = std::io::stdout().flush();
    output.extend(errs.join().unwrap_or_default());
    let status = child
        .wait()
        .map_err(|e| CliError::new(Exit::Io, format!("cannot wait for `{program}`: {e}")))?;
    let code = status.code().map_or_else(
        || {
            use std::os::unix::process::ExitStatusExt as _;
            128 + i64::from(status.signal().unwrap_or(0))
        },
        i64::from,
    );
    Ok((code, output))
}

/// `git push REMOTE HEAD` in the workspace: the spend (and then the end) reaches the
/// remote, or the reason it did not.
pub(super) fn push(root: &std::path::Path, remote: &str) -> Result<(), String> {
    let out = Command::new("git")
        .args(["push", "--quiet", "--", remote, "HEAD"])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}
