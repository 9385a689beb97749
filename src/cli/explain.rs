//! `hitl explain REQUEST`: why this tier, which rules matched, who may approve.

use std::fmt::Write as _;

use hitl_lib::classify::EligibleRole;
use hitl_lib::evidence::Warning;
use hitl_lib::workspace::Recorded;
use serde::Serialize;

use super::{At, CliResult, Ctx, Exit, Format, emit, present, print_json};

/// Explain a request's classification: the rules that set its tier, the route, who is
/// eligible to approve and what evidence is missing.
///
/// Once a request is proposed, its id explains the proposal recorded in the audit.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A request id (from `requests/`) or a path to a proposal file.
    pub request: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub at: At,
}

/// The JSON contract of `explain --format json` (documented in docs/cli.md).
#[derive(Serialize)]
struct Explanation<'a> {
    request: &'a str,
    tier: u8,
    tier_name: &'a str,
    rules: &'a [hitl_lib::classify::MatchedRule],
    default_applied: bool,
    workflow: Option<&'a str>,
    approvals_required: u8,
    eligible_roles: Vec<&'a str>,
    approvers: &'a [EligibleRole],
    distinct_roles: bool,
    self_approval: bool,
    execution: &'a str,
    change_window: Option<&'a str>,
    required_evidence: &'a [String],
    missing_evidence: &'a [String],
    policy_decision: &'a hitl_lib::evidence::PolicyDecision,
    warnings: &'a [Warning],
    /// What the audit holds under the id, when it holds anything.
    #[serde(flatten)]
    recorded: Option<&'a Recorded>,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let (pack, recorded) = ctx.evidence_pack(&args.request, args.at.instant()?)?;
    let c = &pack.classification;
    let e = Explanation {
        request: &pack.request,
        tier: c.tier,
        tier_name: &c.tier_name,
        rules: &c.rules,
        default_applied: c.default_applied,
        workflow: c.workflow.as_deref(),
        approvals_required: c.approvals_required,
        eligible_roles: c.eligible_role_names(),
        approvers: &c.eligible_roles,
        distinct_roles: c.distinct_roles,
        self_approval: c.self_approval,
        execution: c.execution.as_str(),
        change_window: c.change_window.as_deref(),
        required_evidence: &c.required_evidence,
        missing_evidence: &c.missing_evidence,
        policy_decision: &pack.policy_decision,
        warnings: &pack.warnings,
        recorded: recorded.as_ref(),
    };
    match args.format {
        Format::Json => print_json(&e)?,
        Format::Markdown | Format::Table => {
            let mut out = present::recorded_note_text(e.request, e.recorded) + &args.at.note();
            let _ = writeln!(
                out,
                "{}: tier {} ({})",
                present::safe_line(e.request),
                e.tier,
                present::safe_line(e.tier_name)
            );
            let why = if c.default_applied {
                format!(
                    "no classification rule matches {} on {}, so the matrix's conservative default tier {} applies",
                    present::safe_line(&pack.action.kind),
                    present::safe_line(&pack.action.target_system),
                    c.tier
                )
            } else {
                let top: Vec<&str> = c
                    .rules
                    .iter()
                    .filter(|r| r.tier == c.tier)
                    .map(|r| r.id.as_str())
                    .collect();
                format!(
                    "the highest tier of the {} matching rule(s) is {}, from {}",
                    c.rules.len(),
                    c.tier,
                    present::safe_line(&top.join(", "))
                )
            };
            let _ = writeln!(out, "why: {why}");
            let requester = &pack.requesting_identity.requested_by;
            for (k, v) in present::approval_rows(c, requester, pack.change_window.as_ref()) {
                let v = present::safe(&v).replace('\n', &format!("\n{:22}", ""));
                let _ = writeln!(out, "{:22}{v}", format!("{}:", k.to_lowercase()));
            }
            let _ = writeln!(out, "{:22}{}", "execution:", c.execution);
            let policy = present::safe(&pack.policy_decision.summary())
                .replace('\n', &format!("\n{:22}", ""));
            let _ = writeln!(out, "{:22}{policy}", "policy decision:");
            out.push_str(&present::warnings_text(
                pack.warnings.iter().map(|w| (w.code, w.message.as_str())),
            ));
            emit(out.as_bytes())?;
        }
    }
    Ok(Exit::Ok)
}
