//! `hitl lint`: validate the matrix and every request, and flag approval anti-patterns.

use hitl_lib::Error;
use hitl_lib::lint::{self, Finding, Severity};
use serde::Serialize;

use std::fmt::Write as _;

use super::{At, CliResult, Ctx, Exit, Format, emit, print_json};

/// Validate the approval matrix and every request in `requests/`, and flag the
/// article's approval anti-patterns. Exits 1 when any error is found.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format (`markdown` prints the same as `table`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub at: At,
}

#[derive(Serialize)]
struct Report<'a> {
    errors: usize,
    warnings: usize,
    requests: usize,
    findings: &'a [Finding],
}

/// Compiles the policy set and evaluates it on every request: a policy that does not
/// load, or fails on a request, is an error.
fn lint_policies(
    root: &std::path::Path,
    matrix: &hitl_lib::matrix::Matrix,
    requests: &[hitl_lib::request::LoadedRequest],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Finding> {
    use hitl_lib::policy::{PolicyError, PolicySet};
    let policy_finding = |e: &PolicyError, file: &std::path::Path| match e {
        PolicyError::Invalid(d) => {
            let mut f = Finding::from_diagnostic(d);
            f.code = "policy";
            f
        }
        other => Finding {
            severity: Severity::Error,
            code: "policy",
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: other.to_string(),
            hint: None,
        },
    };
    let mut set = match PolicySet::load(root) {
        Ok(Some(set)) => set,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![policy_finding(&e, std::path::Path::new("policies"))],
    };
    let mut out = Vec::new();
    for lr in requests {
        let c = hitl_lib::classify::classify(matrix, &lr.request);
        let input = hitl_lib::policy::input(matrix, &lr.request, &c, None, now);
        if let Err(e) = set.evaluate(&input) {
            out.push(policy_finding(&e, &lr.path));
        }
    }
    out
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let mut findings = Vec::new();
    let matrix_file = ws.display_path(&ws.matrix_path());
    let matrix = match ws.load_matrix() {
        Ok(m) => Some(m),
        Err(Error::Invalid(diags)) => {
            findings.extend(diags.iter().map(Finding::from_diagnostic));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let paths = ws.request_paths()?;
    if let Some(matrix) = &matrix {
        findings.extend(lint::lint_matrix(matrix, &matrix_file));
        let mut loaded = Vec::new();
        for p in &paths {
            match ws.load_request(p, matrix) {
                Ok(lr) => loaded.push(lr),
                Err(Error::Invalid(diags)) => {
                    findings.extend(diags.iter().map(Finding::from_diagnostic))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let now = args.at.instant()?;
        findings.extend(lint::lint_requests_in(ws.root(), matrix, &loaded, now));
        findings.extend(lint_policies(ws.root(), matrix, &loaded, now));
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    match args.format {
        Format::Json => print_json(&Report {
            errors,
            warnings,
            requests: paths.len(),
            findings: &findings,
        })?,
        Format::Table | Format::Markdown => {
            let mut out = args.at.note();
            for f in &findings {
                let _ = writeln!(out, "{f}");
            }
            let checked = if matrix.is_some() {
                format!("`{}` and {} request(s)", matrix_file.display(), paths.len())
            } else {
                format!(
                    "`{}` (requests not checked: the matrix is invalid)",
                    matrix_file.display()
                )
            };
            let _ = writeln!(
                out,
                "lint: {errors} error(s), {warnings} warning(s) in {checked}"
            );
            emit(out.as_bytes())?;
        }
    }
    Ok(if errors > 0 { Exit::Findings } else { Exit::Ok })
}
