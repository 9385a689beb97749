//! `hitl policy test|eval|input`: the Rego policy set of the workspace.

use std::fmt::Write as _;

use hitl_lib::classify::classify;
use hitl_lib::policy::{self, PolicySet};
use serde::Serialize;

use super::{At, CliError, CliResult, Ctx, Exit, Format, emit, print_json};

/// Work with the workspace's Rego policies (`policies/*.rego`, `package hitl`).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run every `test_*` rule in `policies/*_test.rego`; exit 1 if any fails.
    Test(TestArgs),
    /// Evaluate the policies on a request and print the raw decision as JSON.
    Eval(RequestArgs),
    /// Print the input document the policies see for a request (JSON).
    Input(RequestArgs),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Output format (`markdown` prints the same as `table`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// A request id (from `requests/`) or a path to a proposal file.
    pub request: String,
    #[command(flatten)]
    pub at: At,
    /// Output format: JSON only (accepted so that scripts can pass `--format json` to
    /// every command that prints data).
    #[arg(long, value_enum, default_value_t = JsonOnly::Json)]
    pub format: JsonOnly,
}

/// The one format of `policy eval` and `policy input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JsonOnly {
    /// Machine-readable JSON.
    Json,
}

pub fn run(ctx: &Ctx, cmd: &Command) -> CliResult {
    let ws = ctx.workspace()?;
    let set = PolicySet::load(ws.root())?.ok_or_else(|| {
        let mut e = CliError::new(
            Exit::NotFound,
            "the workspace has no policies (`policies/*.rego`)",
        );
        e.hints
            .push("write rules in `package hitl`; see docs/policies.md".to_owned());
        e
    })?;
    match cmd {
        Command::Test(args) => test(&set, args),
        Command::Eval(args) | Command::Input(args) => {
            let matrix = ws.load_matrix()?;
            let path = ws.resolve_request(&args.request, ctx.cwd())?;
            let JsonOnly::Json = args.format;
            let loaded = ws.load_request(&path, &matrix)?;
            let c = classify(&matrix, &loaded.request);
            let input = policy::input(&matrix, &loaded.request, &c, None, args.at.instant()?);
            if matches!(cmd, Command::Input(_)) {
                print_json(&input)?;
                return Ok(Exit::Ok);
            }
            let mut set = set;
            let decision = set.evaluate(&input)?;
            print_json(&decision)?;
            Ok(Exit::Ok)
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    passed: usize,
    failed: usize,
    policy_digest: &'a str,
    tests: &'a [policy::TestResult],
}

fn test(set: &PolicySet, args: &TestArgs) -> CliResult {
    let results = set.run_tests()?;
    let failed = results.iter().filter(|r| !r.passed).count();
    let passed = results.len() - failed;
    if args.format == Format::Json {
        print_json(&Report {
            passed,
            failed,
            policy_digest: set.digest(),
            tests: &results,
        })?;
    } else {
        let mut out = String::new();
        for r in &results {
            let status = if r.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(out, "{status} {}:{}: {}", r.file, r.line, r.name);
            if let Some(e) = &r.error {
                for line in e.lines() {
                    let _ = writeln!(out, "     {line}");
                }
            }
        }
        let _ = writeln!(out, "policy test: {passed} passed, {failed} failed");
        emit(out.as_bytes())?;
    }
    if results.is_empty() {
        return Err(CliError::new(
            Exit::Findings,
            "no `test_*` rules found in `policies/*_test.rego`",
        ));
    }
    Ok(if failed > 0 { Exit::Findings } else { Exit::Ok })
}
