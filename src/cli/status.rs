//! `hitl status ID`: where a request stands, as the workflow engine folds it from the
//! audit at HEAD (never from a stored state): who did what, and what is still needed.

use hitl_lib::text::escape;
use hitl_lib::workflow::engine::{self, Outcome};
use hitl_lib::workflow::refusal::Refused;
use hitl_lib::workflow::types;

use super::{CliResult, Ctx, Exit, Format, emit, now, print_json};

/// Show where a request stands: its state, who did what, what is still needed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// Output format (`json` puts the state's name under `state`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = hitl_lib::audit::AuditRepo::open(ws.root())?;
    let now = now()?;
    let st = engine::status(&repo, &args.request, now)?;
    let derived = st.state.derived.as_ref().and_then(|d| d.as_ref().ok());
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let decisions: Vec<serde_json::Value> = st
        .events
        .iter()
        .filter(|e| e.kind == types::DECISION)
        .map(|e| {
            serde_json::json!({
                "seq": e.seq,
                "at": e.at,
                "by": e.actor.principal,
                "version": e.fields.get("version").and_then(serde_json::Value::as_u64).unwrap_or(1),
                "decision": e.field_str("decision"),
                "role": e.field_str("role"),
                "reason_code": e.field_str("reason_code"),
            })
        })
        .collect();
    let (approvals, required, still_needed) = counts(&st);
    if matches!(args.format, Format::Json) {
        print_json(&serde_json::json!({
            "request": args.request,
            "state": st.state.state_name(now),
            "version": st.state.version,
            "tier": derived.map(|d| d.tier),
            "requested_by": derived.map(|d| d.requested_by.clone()),
            "submitted_by": derived.map(|d| d.submitted_by.clone()),
            "approvals": approvals,
            "approvals_required": required,
            "still_needed": still_needed,
            "decisions": decisions,
            "deadline": derived.map(|d| stamp(d.deadline())),
            "escalated": derived.is_some_and(|d| d.escalated_at(now)),
            // The tier's sampled review, as the engine drew it from the proposal.
            "sample": derived.and_then(|d| d.sample.as_ref()),
            "override": match &st.outcome {
                Outcome::Overridden(o) => serde_json::json!({
                    "by": o.by,
                    "at": stamp(o.at),
                    "reviews": o.reviews.len(),
                    "reviews_required": o.required,
                    "review_roles": o.roles,
                    "due": stamp(o.due),
                    "open": o.open(),
                    "overdue": o.overdue(now),
                }),
                _ => serde_json::Value::Null,
            },
            // What `check` and `exec` refused, recorded (it changes nothing).
            "refusals": refusals_json(&st.state.refusals),
            "reason": match &st.outcome {
                Outcome::Inconsistent(why) => Some(why.clone()),
                _ => None,
            },
            "as_of": stamp(now),
        }))?;
        return Ok(Exit::Ok);
    }
    emit(text(&args.request, &st, now).as_bytes())?;
    Ok(Exit::Ok)
}

/// The table form of `status`: the state, each decision, what is still needed. `review`
/// shows the same.
pub fn text(request: &str, st: &engine::Status, now: chrono::DateTime<chrono::Utc>) -> String {
    let derived = st.state.derived.as_ref().and_then(|d| d.as_ref().ok());
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (approvals, required, still_needed) = counts(st);
    let mut out = format!("{}: {}", escape(request), st.state.state_name(now));
    if st.state.version > 1 {
        out.push_str(&format!(" (version {})", st.state.version));
    }
    if let Some(d) = derived {
        out.push_str(&format!(
            " (tier {}, requested by {}, submitted by {})",
            d.tier,
            escape(&d.requested_by),
            escape(&d.submitted_by)
        ));
    }
    out.push('\n');
    if let Some(sample) = derived.and_then(|d| d.sample.as_ref()) {
        out.push_str(&sample_line(sample));
    }
    for e in st.events.iter().filter(|e| {
        e.kind == types::DECISION
            || types::EXECUTION.contains(&e.kind.as_str())
            || types::ROLLBACK.contains(&e.kind.as_str())
    }) {
        if e.kind != types::DECISION {
            // The version's execution: spent, executed, verified, revoked; its rollback.
            let detail = match e.kind.as_str() {
                types::EXECUTED | types::ROLLED_BACK => e
                    .fields
                    .get("exit_code")
                    .map(|c| format!(", exit code {c}"))
                    .unwrap_or_default(),
                types::VERIFIED => e
                    .field_str("result")
                    .map(|r| format!(": {}", escape(r)))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  {} {} by {}{detail}\n",
                escape(&e.at),
                escape(&e.kind),
                escape(&e.actor.principal)
            ));
            continue;
        }
        // The version a decision is bound to, once there is more than one.
        let version = match e.fields.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if st.state.version > 1 => format!("version {v}: "),
            None if st.state.version > 1 => "version 1: ".to_owned(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  {} {version}{} by {}{}\n",
            escape(&e.at),
            escape(e.field_str("decision").unwrap_or("?")),
            escape(&e.actor.principal),
            e.field_str("role")
                .map(|r| format!(" as {}", escape(r)))
                .unwrap_or_default()
        ));
    }
    out.push_str(&refusals_line(&st.state.refusals));
    match &st.outcome {
        Outcome::Pending { .. } => {
            out.push_str(&format!(
                "  {approvals} of {required} approvals; still needed: {}\n",
                if still_needed.is_empty() {
                    "nobody can give one".to_owned()
                } else {
                    still_needed.join(", ")
                }
            ));
            if let Some(d) = derived {
                if d.escalated_at(now) {
                    out.push_str("  escalated: its pending timeout has passed\n");
                }
                out.push_str(&format!("  decide before {}\n", stamp(d.deadline())));
            }
        }
        Outcome::Expired { at } => {
            out.push_str(&format!(
                "  expired at {} with {approvals} of {required} approvals; it can never be approved\n",
                stamp(*at)
            ));
        }
        Outcome::Inconsistent(why) => {
            out.push_str(&format!("  takes no decision: {}\n", escape(why)));
        }
        Outcome::Overridden(o) => {
            out.push_str(&format!(
                "  overridden by {} at {}: review {} of {} from {} due {}{}\n",
                escape(&o.by),
                stamp(o.at),
                o.reviews.len(),
                o.required,
                o.roles.join(", "),
                stamp(o.due),
                if o.overdue(now) {
                    " (overdue)"
                } else if o.open() {
                    ""
                } else {
                    " (complete)"
                }
            ));
        }
        Outcome::ChangesRequested { by } => {
            out.push_str(&format!(
                "  changes requested by {}: the agent may propose version {} with the same id\n",
                escape(by),
                st.state.version + 1
            ));
        }
        _ => {}
    }
    out
}

/// `{count, last}` of the recorded refusals (`last` is `null` when there is none).
pub fn refusals_json(refusals: &[Refused]) -> serde_json::Value {
    serde_json::json!({
        "count": refusals.len(),
        "last": refusals.last().map(|r| serde_json::json!({
            "seq": r.seq,
            "at": r.at,
            "by": r.by,
            "command": r.command,
            "refusal": r.refusal,
        })),
    })
}

/// The line `status` and `show` give the recorded refusals (none when there is none).
pub fn refusals_line(refusals: &[Refused]) -> String {
    let Some(last) = refusals.last() else {
        return String::new();
    };
    format!(
        "  refused {} time(s) by `check` or `exec`; last {} by {} ({}: {})\n",
        refusals.len(),
        escape(&last.at),
        escape(&last.by),
        escape(&last.command),
        escape(&last.refusal)
    )
}

/// The line `status` and `show` give a tier's sampled review.
pub fn sample_line(sample: &hitl_lib::classify::Sample) -> String {
    let roles: Vec<&str> = sample.reviewers.iter().map(|r| r.role.as_str()).collect();
    if sample.selected {
        format!(
            "  drawn for sampled review (draw {}, rate {}{}): one review by {} besides the tier's approvals\n",
            sample.draw,
            sample.rate,
            if sample.carried {
                "; carried over from the version before"
            } else {
                ""
            },
            if roles.is_empty() {
                "nobody (no `sample_reviewers`)".to_owned()
            } else {
                roles.join(", ")
            }
        )
    } else {
        format!(
            "  not drawn for sampled review (draw {}, rate {})\n",
            sample.draw, sample.rate
        )
    }
}

/// Approvals so far, the number needed, and the roles that can still give one (none
/// once the request is not pending).
fn counts(st: &engine::Status) -> (usize, u8, Vec<String>) {
    let derived = st.state.derived.as_ref().and_then(|d| d.as_ref().ok());
    match &st.outcome {
        Outcome::Pending {
            approvals,
            required,
            still_needed,
        } => (*approvals, *required, still_needed.clone()),
        _ => (
            st.state.approvals.len(),
            derived.map_or(0, |d| d.approvals_required),
            Vec::new(),
        ),
    }
}
