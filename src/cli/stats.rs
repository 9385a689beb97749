//! `hitl stats`: per tier, how the approval rules behave (requests, approval rate, time
//! to decision, expirations, escalations, requests for changes, overrides, the reason
//! codes of rejections and of requests for changes), every figure from the workflow
//! engine's fold of the audit at HEAD.

use chrono::{DateTime, SecondsFormat, Utc};
use hitl_lib::evidence::human_age;
use hitl_lib::workflow::stats::{self, TierStats};

use super::{CliResult, Ctx, Exit, emit, now, parse_since, present, print_json};

/// Show per tier: requests, approval rate, time to decision, expirations, escalations,
/// requests for changes, overrides and the top reason codes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only requests whose latest version was proposed at or after this instant (RFC
    /// 3339, or a date: `2026-11-27`, midnight UTC).
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Output format (`json`: the keys docs/cli.md lists).
    #[arg(long, value_enum, default_value_t = StatsFormat::Table)]
    pub format: StatsFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    Table,
    Json,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = hitl_lib::audit::AuditRepo::open(ws.root())?;
    let now = now()?;
    let s = stats::stats(&repo, args.since, now)?;
    if args.format == StatsFormat::Json {
        print_json(&s)?;
        return Ok(Exit::Ok);
    }
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut out = format!("as of {}", stamp(s.as_of));
    if let Some(since) = s.since {
        out.push_str(&format!(
            ", requests whose latest version was proposed since {}",
            stamp(since)
        ));
    }
    out.push('\n');
    let mut t = present::table(&[
        "Tier",
        "Requests",
        "Approved",
        "Median",
        "p90",
        "Open",
        "Expired",
        "Escalated",
        "Changes",
        "Overrides",
    ]);
    for tier in &s.tiers {
        t.add_row(row(tier));
    }
    out.push_str(&t.to_string());
    out.push('\n');
    for note in s.tiers.iter().filter_map(notes) {
        out.push_str(&note);
        out.push('\n');
    }
    // The reasons in a table of their own: one code per row fits any width.
    let mut reasons = present::table(&["Tier", "Decision", "Top reason codes", "Count"]);
    let mut any = false;
    for tier in &s.tiers {
        for (decision, list) in [
            ("rejected", &tier.top_rejection_reasons),
            ("changes requested", &tier.top_change_reasons),
        ] {
            for r in list {
                any = true;
                reasons.add_row(vec![
                    tier.tier.to_string(),
                    decision.to_owned(),
                    present::safe_line(&r.code),
                    r.count.to_string(),
                ]);
            }
        }
    }
    if any {
        out.push_str(&reasons.to_string());
        out.push('\n');
    }
    if !s.inconsistent.is_empty() {
        out.push_str(&format!(
            "inconsistent, not counted above (the engine takes no decision on them; run `hitl verify`): {}\n",
            s.inconsistent.len()
        ));
        for r in &s.inconsistent {
            out.push_str(&format!(
                "  {}: {}\n",
                present::safe_line(&r.request),
                present::safe_line(&r.reason)
            ));
        }
    }
    emit(out.as_bytes())?;
    Ok(Exit::Ok)
}

fn row(t: &TierStats) -> Vec<String> {
    let duration = |secs: Option<i64>| {
        secs.map_or_else(
            || "-".to_owned(),
            |s| human_age(chrono::Duration::seconds(s)),
        )
    };
    // The rate over the decided requests: `25% of 4`.
    let approved = t.approval_rate.map_or_else(
        || "-".to_owned(),
        |r| format!("{:.0}% of {}", r * 100.0, t.approved + t.rejected),
    );
    vec![
        t.tier.to_string(),
        t.requests.to_string(),
        approved,
        duration(t.time_to_decision.median_seconds),
        duration(t.time_to_decision.p90_seconds),
        t.pending.to_string(),
        t.expired.to_string(),
        t.escalated.to_string(),
        t.changes_requested.to_string(),
        t.overridden.to_string(),
    ]
}

/// What a tier's row has no column for, said under the table (ten columns fill the
/// 100 of a pipe, with room for `100% of 9999`):
/// the requests that never waited for a decision (so that the columns add up), the
/// versions sent back over the history, the overdue reviews of overrides.
fn notes(t: &TierStats) -> Option<String> {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if t.blocked > 0 {
        parts.push(format!("{} blocked", t.blocked));
    }
    if t.proceeds > 0 {
        parts.push(format!("{} proceeded without approval", t.proceeds));
    }
    if t.changes_requested_versions > 0 {
        parts.push(format!(
            "{} sent back for changes in all",
            plural(t.changes_requested_versions, "version", "versions")
        ));
    }
    if t.overdue_reviews > 0 {
        parts.push(format!(
            "{} overdue",
            plural(t.overdue_reviews, "override review", "override reviews")
        ));
    }
    (!parts.is_empty()).then(|| format!("tier {}: {}", t.tier, parts.join("; ")))
}
