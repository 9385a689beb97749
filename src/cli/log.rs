//! `hitl log`: the audit's events, filtered by request, type and time.

use chrono::{DateTime, Utc};
use hitl_lib::audit::store::parse_event;
use hitl_lib::audit::{AUDIT_DIR, AuditError, AuditRepo, Event};
use hitl_lib::workflow::types;

use super::{CliError, CliResult, Ctx, Exit, emit, parse_since, present, print_json};

/// List audit events, oldest first.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the events of this request.
    #[arg(long, value_name = "ID")]
    pub request: Option<String>,
    /// Only events of this type.
    #[arg(long = "type", value_name = "T", value_parser = clap::builder::PossibleValuesParser::new(types::ALL))]
    pub kind: Option<String>,
    /// Only events at or after this instant (RFC 3339, or a date: `2026-11-27`).
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LogFormat::Table)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Table,
    Json,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = AuditRepo::open(ws.root())?;
    let events: Vec<Event> = match repo.head_for_reading()? {
        None => Vec::new(),
        Some(head) => {
            let tree = head.tree().map_err(AuditError::from)?;
            match &args.request {
                Some(id) => repo.request_events(&tree, id)?,
                None => {
                    let mut all = Vec::new();
                    for (path, _, oid) in repo.event_files(&tree)? {
                        let blob = repo.repo.find_blob(oid).map_err(AuditError::from)?;
                        all.push(parse_event(&path, blob.content())?);
                    }
                    all
                }
            }
        }
    };
    if let (Some(id), true) = (&args.request, events.is_empty()) {
        return Err(CliError::new(
            Exit::NotFound,
            format!("no events for request `{id}` in the audit"),
        ));
    }
    let total = events.len();
    let keep: Vec<Event> = events
        .into_iter()
        .filter(|e| args.kind.as_ref().is_none_or(|k| &e.kind == k))
        .filter(|e| {
            args.since.is_none_or(|since| {
                DateTime::parse_from_rfc3339(&e.at).is_ok_and(|t| t.with_timezone(&Utc) >= since)
            })
        })
        .collect();
    // Nothing to list is said, in words, on stderr: stdout stays the list (empty), so
    // `hitl log | wc -l` still counts events. JSON's empty list says it by itself.
    if keep.is_empty() && args.format == LogFormat::Table {
        eprintln!("{}", nothing_to_list(args, total));
    }
    finish(args, &keep)
}

/// Why the list is empty: no events at all, or none that the filters let through.
fn nothing_to_list(args: &Args, total: usize) -> String {
    if total == 0 {
        return format!(
            "no events recorded yet in `{AUDIT_DIR}/`\n  = hint: `hitl propose REQUEST` records the first"
        );
    }
    let mut filters = Vec::new();
    if let Some(k) = &args.kind {
        filters.push(format!("--type {k}"));
    }
    if let Some(t) = args.since {
        filters.push(format!(
            "--since {}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    let whose = match &args.request {
        Some(id) => format!("request `{id}` has"),
        None => "the audit has".to_owned(),
    };
    format!(
        "no events match `{}` ({whose} {total} event{})",
        filters.join(" "),
        if total == 1 { "" } else { "s" }
    )
}

fn finish(args: &Args, events: &[Event]) -> CliResult {
    match args.format {
        LogFormat::Json => print_json(&events)?,
        LogFormat::Table => {
            // Every recorded string is escaped, newlines too: an event made by hand with
            // git plumbing may hold anything, and one event is one line.
            let line = |s: &str| present::safe_line(s);
            let mut s = String::new();
            for e in events {
                let detail = match e.kind.as_str() {
                    types::DECISION => format!(
                        " {} {}",
                        line(e.field_str("decision").unwrap_or_default()),
                        line(e.field_str("reason_code").unwrap_or_default())
                    ),
                    types::POLICY_CHECKED => {
                        format!(" {}", line(e.field_str("decision").unwrap_or_default()))
                    }
                    _ => String::new(),
                };
                s.push_str(&format!(
                    "{:>6}  {}  {:<19} {:<24} {}{}\n",
                    e.seq,
                    line(&e.at),
                    line(&e.kind),
                    line(&e.request),
                    line(&e.actor.principal),
                    detail.trim_end()
                ));
            }
            emit(s.as_bytes())?;
        }
    }
    Ok(Exit::Ok)
}
