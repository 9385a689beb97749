//! `hitl queue`: what awaits a decision, as the workflow engine folds it from the audit
//! at HEAD: by default the requests the current identity may approve now (the engine's
//! own judgement), soonest deadline first; `--all` every pending request.

use chrono::{DateTime, SecondsFormat, Utc};
use hitl_lib::evidence::human_age;
use hitl_lib::signing;
use hitl_lib::text::escape;
use hitl_lib::workflow::engine::Outcome;
use hitl_lib::workflow::queue::{self, Entry};

use super::identity::KeyArgs;
use super::{CliError, CliResult, Ctx, Exit, Format, emit, now, print_json};

/// Show what awaits a decision: by default the requests you (the signing key's
/// principal) may approve now; with `--all`, every pending request and whether you may.
/// Soonest deadline first.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Every pending request, not only those you may approve (no key needed).
    #[arg(long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = hitl_lib::audit::AuditRepo::open(ws.root())?;
    let now = now()?;
    // Only the public half is read: nothing is signed, no passphrase asked.
    let flag = args.key.key.as_ref().map(|k| ctx.cwd().join(k));
    let env = std::env::var_os(signing::KEY_ENV);
    let identity = match signing::key_source(flag.as_deref(), env.as_deref(), ws.root()) {
        Ok(source) => Some(signing::public_key(&source)?),
        Err(_) if args.all => None,
        Err(e) => {
            let mut err = CliError::from(e);
            err.hints
                .push("`hitl queue --all` lists every pending request without a key".to_owned());
            return Err(err);
        }
    };
    let q = queue::queue(&repo, identity.as_ref(), now)?;
    let shown: Vec<&Entry> = q
        .entries
        .iter()
        .filter(|e| args.all || matches!(e.mine, Some(Ok(_))))
        .collect();
    if matches!(args.format, Format::Json) {
        let items: Vec<serde_json::Value> = shown.iter().map(|e| entry_json(e, now)).collect();
        print_json(&serde_json::json!({
            "as_of": stamp(now),
            "principal": q.principal,
            "requests": items,
        }))?;
        return Ok(Exit::Ok);
    }
    let mut out = String::new();
    if let Some(p) = &q.principal {
        out.push_str(&format!(
            "{} pending request(s){} for {}\n",
            shown.len(),
            if args.all { "" } else { " you may approve" },
            escape(p)
        ));
    } else {
        out.push_str(&format!("{} pending request(s)\n", shown.len()));
    }
    if !shown.is_empty() {
        let mut header = vec![
            "id",
            "tier",
            "action",
            "target",
            "amount",
            "age",
            "approvals",
            "time left",
        ];
        if args.all && q.principal.is_some() {
            header.push("you");
        }
        let mut t = super::present::table(&header);
        for e in &shown {
            let d = &e.derived;
            let mut row = vec![
                escape(&e.request),
                d.tier.to_string(),
                escape(&d.action),
                escape(&d.target),
                d.amount
                    .as_ref()
                    .map_or_else(String::new, |a| format!("{} {}", a.value, a.currency)),
                human_age(now - d.proposed_at),
                approvals(e),
                left(e.due(), now, d.escalated_at(now)),
            ];
            if args.all && q.principal.is_some() {
                row.push(match &e.mine {
                    Some(Ok(role)) => format!("may approve as {}", escape(role)),
                    Some(Err(why)) => escape(why),
                    None => String::new(),
                });
            }
            t.add_row(row);
        }
        out.push_str(&format!("{t}\n"));
    }
    emit(out.as_bytes())?;
    Ok(Exit::Ok)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `1/2 (needed: security-approver)`.
fn approvals(e: &Entry) -> String {
    match &e.outcome {
        Outcome::Pending {
            approvals,
            required,
            still_needed,
        } => format!(
            "{approvals}/{required} (needed: {})",
            still_needed.join(", ")
        ),
        Outcome::Overridden(o) => format!(
            "overridden by {}: review {}/{} (from: {})",
            escape(&o.by),
            o.reviews.len(),
            o.required,
            o.roles.join(", ")
        ),
        _ => String::new(),
    }
}

fn left(deadline: DateTime<Utc>, now: DateTime<Utc>, escalated: bool) -> String {
    let mut s = human_age(deadline - now);
    if escalated {
        s.push_str(" (escalated)");
    }
    s
}

fn entry_json(e: &Entry, now: DateTime<Utc>) -> serde_json::Value {
    let d = &e.derived;
    let (approvals, required, still_needed) = match &e.outcome {
        Outcome::Pending {
            approvals,
            required,
            still_needed,
        } => (*approvals, *required, still_needed.clone()),
        Outcome::Overridden(o) => (o.reviews.len(), o.required, o.roles.clone()),
        _ => (0, 0, Vec::new()),
    };
    serde_json::json!({
        "request": e.request,
        "version": e.state.version,
        "tier": d.tier,
        "action": d.action,
        "target": d.target,
        "amount": d.amount.as_ref().map(|a| serde_json::json!({"value": a.value, "currency": a.currency})),
        "requested_by": d.requested_by,
        "proposed_at": stamp(d.proposed_at),
        "age_seconds": (now - d.proposed_at).num_seconds(),
        "approvals": approvals,
        "approvals_required": required,
        "still_needed": still_needed,
        "state": e.outcome.name(),
        "deadline": stamp(e.due()),
        "seconds_left": (e.due() - now).num_seconds(),
        "escalated": d.escalated_at(now),
        "you": match &e.mine {
            Some(Ok(role)) => serde_json::json!({"may_approve": true, "role": role}),
            Some(Err(why)) => serde_json::json!({"may_approve": false, "reason": why}),
            None => serde_json::Value::Null,
        },
    })
}
