//! `hitl lint`: validate the matrix and every request, and flag approval anti-patterns.

use hitl_lib::Error;
use hitl_lib::lint::{self, Finding, Severity};
use serde::Serialize;

use std::fmt::Write as _;

use super::{CliResult, Ctx, Exit, Format, emit, now, print_json};

/// Validate the approval matrix and every request in `requests/`, and flag the
/// article's approval anti-patterns. Exits 1 when any error is found.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format (`markdown` prints the same as `table`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Serialize)]
struct Report<'a> {
    errors: usize,
    warnings: usize,
    requests: usize,
    findings: &'a [Finding],
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
        findings.extend(lint::lint_requests(matrix, &loaded, now()));
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
            let mut out = String::new();
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
