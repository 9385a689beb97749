//! The command line: one file per subcommand, each with its Args and `run`.

mod approval;
mod approve;
mod check;
mod checkpoint;
mod completions;
mod decide;
mod demo;
mod error;
mod escalate;
mod exec;
mod explain;
mod identity;
mod init;
mod lint;
mod log;
mod man;
mod override_cmd;
mod policy;
mod present;
mod proposal_command;
mod propose;
mod queue;
mod refusal;
mod reject;
mod replay;
mod request_changes;
mod review;
mod revoke;
mod rollback;
mod show;
mod stats;
mod status;
mod sweep;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hitl_lib::policy::PolicySet;
use hitl_lib::workspace::Workspace;

pub use error::{CliError, CliResult, Exit};

/// Make human approval of AI-agent actions a real control: classify each proposed
/// action by risk, show the reviewer the evidence, and record the decision.
#[derive(Debug, Parser)]
#[command(name = "hitl", version, max_term_width = 100)]
pub struct Cli {
    /// Use the workspace in DIR instead of searching upward from the current folder.
    #[arg(short = 'C', long = "workspace", global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Demo(demo::Args),
    Show(show::Args),
    Explain(explain::Args),
    Lint(lint::Args),
    Init(init::Args),
    Completions(completions::Args),
    Man(man::Args),
    #[command(subcommand)]
    Policy(policy::Command),
    Propose(propose::Args),
    Approve(approve::Args),
    Reject(reject::Args),
    RequestChanges(request_changes::Args),
    Escalate(escalate::Args),
    Override(override_cmd::Args),
    Review(review::Args),
    Verify(verify::Args),
    Checkpoint(checkpoint::Args),
    Log(log::Args),
    Replay(replay::Args),
    Status(status::Args),
    Queue(queue::Args),
    Sweep(sweep::Args),
    Stats(stats::Args),
    Approval(approval::Args),
    Check(check::Args),
    Exec(exec::Args),
    Revoke(revoke::Args),
    Rollback(rollback::Args),
}

/// Context shared by the subcommands.
pub struct Ctx {
    pub workspace_arg: Option<PathBuf>,
    pub cwd: PathBuf,
}

impl Ctx {
    /// The workspace: `-C DIR` exactly, else found from the current folder upward.
    pub fn workspace(&self) -> CliResult<Workspace> {
        Ok(match &self.workspace_arg {
            Some(dir) => Workspace::open(&self.cwd.join(dir))?,
            None => Workspace::discover(&self.cwd)?,
        })
    }

    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// Loads the matrix and one request (an id or a path) and assembles its evidence
    /// pack as of `now`: what `show` and `explain` both start from. Once an id is
    /// proposed, the proposal is the one recorded in the audit
    /// ([`Workspace::load_for_review`]); the second value says what the audit holds.
    pub fn evidence_pack(
        &self,
        request: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CliResult<(
        hitl_lib::evidence::EvidencePack,
        Option<hitl_lib::workspace::Recorded>,
    )> {
        use hitl_lib::evidence;
        use hitl_lib::workspace::ReviewError;
        let ws = self.workspace()?;
        let matrix = ws.load_matrix()?;
        let review = ws
            .load_for_review(request, &self.cwd, &matrix)
            .map_err(|e| match e {
                ReviewError::Load(e) => CliError::from(e),
                ReviewError::Audit(e) => CliError::from(e),
            })?;
        let (file, r) = (review.loaded.path, &review.loaded.request);
        // A policy set that does not load is shown as a failed decision: the reviewer
        // still sees the evidence, and the proposal counts as denied.
        let mut pack = match PolicySet::load(ws.root()) {
            Ok(Some(mut set)) => evidence::assemble_with_policies(&matrix, &mut set, file, r, now),
            Ok(None) => evidence::assemble(&matrix, file, r, now),
            Err(e) => evidence::assemble_with_policy_error(&matrix, e.to_string(), file, r, now),
        };
        // The sampled review is drawn from the proposal's exact bytes.
        if review.recorded.is_some() {
            hitl_lib::classify::apply_sample_of(
                &matrix,
                r,
                &mut pack.classification,
                &review.loaded.bytes,
            );
        }
        Ok((pack, review.recorded))
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read the current folder: {e}");
            return Exit::Io.into();
        }
    };
    let ctx = Ctx {
        workspace_arg: cli.workspace,
        cwd,
    };
    let result = match cli.command {
        Command::Demo(a) => demo::run(&ctx, &a),
        Command::Show(a) => show::run(&ctx, &a),
        Command::Explain(a) => explain::run(&ctx, &a),
        Command::Lint(a) => lint::run(&ctx, &a),
        Command::Init(a) => init::run(&ctx, &a),
        Command::Completions(a) => completions::run(&a),
        Command::Man(a) => man::run(&a),
        Command::Policy(c) => policy::run(&ctx, &c),
        Command::Propose(a) => propose::run(&ctx, &a),
        Command::Approve(a) => approve::run(&ctx, &a),
        Command::Reject(a) => reject::run(&ctx, &a),
        Command::RequestChanges(a) => request_changes::run(&ctx, &a),
        Command::Escalate(a) => escalate::run(&ctx, &a),
        Command::Override(a) => override_cmd::run(&ctx, &a),
        Command::Review(a) => review::run(&ctx, &a),
        Command::Verify(a) => verify::run(&ctx, &a),
        Command::Checkpoint(a) => checkpoint::run(&ctx, &a),
        Command::Log(a) => log::run(&ctx, &a),
        Command::Replay(a) => replay::run(&ctx, &a),
        Command::Status(a) => status::run(&ctx, &a),
        Command::Queue(a) => queue::run(&ctx, &a),
        Command::Sweep(a) => sweep::run(&ctx, &a),
        Command::Stats(a) => stats::run(&ctx, &a),
        Command::Approval(a) => approval::run(&ctx, &a),
        Command::Check(a) => check::run(&ctx, &a),
        Command::Exec(a) => exec::run(&ctx, &a),
        Command::Revoke(a) => revoke::run(&ctx, &a),
        Command::Rollback(a) => rollback::run(&ctx, &a),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit.into()
        }
    }
}

/// Output formats shared by the read-only commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for a terminal.
    Table,
    /// Machine-readable JSON.
    Json,
    /// Markdown, for a pull-request comment.
    Markdown,
}

/// Whether hitl may prompt: standard input and standard error (where prompts are drawn)
/// are both terminals. Without one, a command that would prompt refuses and names the
/// flag or command to use instead.
pub fn can_prompt() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The clock reading for this command. Only this function reads the clock; the library
/// takes `now` as a parameter. A `cargo test` build reads `HITL_TEST_NOW` instead when
/// it is set (`hitl_lib::test_clock`); no other build can be told another time.
pub fn now() -> CliResult<chrono::DateTime<chrono::Utc>> {
    match hitl_lib::test_clock::instant() {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Ok(chrono::Utc::now()),
        Err(e) => Err(CliError::new(Exit::Usage, e)),
    }
}

/// `--at TIME` of the read-only commands (`show`, `explain`, `lint`, `policy eval`):
/// evaluate as of another instant, an auditor's "what did this look like then?".
/// Commands that record, check or execute never take it.
#[derive(Debug, Clone, clap::Args)]
pub struct At {
    /// Evaluate as of TIME instead of now: RFC 3339 (`2026-11-27T16:00:00Z`), or
    /// `YYYY-MM-DD[ HH:MM[:SS]]` in UTC. Read-only: nothing that records takes it.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

impl At {
    /// The instant to evaluate at: `--at`, else the clock.
    pub fn instant(&self) -> CliResult<chrono::DateTime<chrono::Utc>> {
        self.at.map_or_else(now, Ok)
    }

    /// The line a table output starts with under `--at`, so a view of the past is never
    /// mistaken for one of now.
    pub fn note(&self) -> String {
        self.at.map_or_else(String::new, |t| {
            format!(
                "as of {} (`--at`), not now\n\n",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
    }
}

fn parse_at(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "`{s}` is not a time: use RFC 3339 (`2026-11-27T16:00:00Z`) or `YYYY-MM-DD[ HH:MM[:SS]]` (UTC)"
    ))
}

/// `--since DATE` of `log` and `stats`: RFC 3339, or a date (`2026-11-27`, midnight UTC).
fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{DateTime, NaiveDate, Utc};
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{s}` is neither RFC 3339 nor YYYY-MM-DD"))
}

pub fn print_json(value: &impl serde::Serialize) -> CliResult<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(Exit::Io, format!("cannot render JSON: {e}")))?;
    s.push('\n');
    emit(s.as_bytes())
}

/// Writes command output to stdout. A reader that went away (`hitl show x | head`) is
/// not an error: the output was not wanted any more.
pub fn emit(bytes: &[u8]) -> CliResult<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(
            Exit::Io,
            format!("cannot write to standard output: {e}"),
        )),
    }
}
