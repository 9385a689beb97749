//! What `approve`, `reject`, `request-changes` and `review` share: check the request
//! awaits a decision, check the signer may decide it, and record one signed decision
//! event with its detached signature.

use hitl_lib::text::escape;
use hitl_lib::workflow::engine::{Outcome, Status};
use hitl_lib::workflow::{self, Verdict, types};

use super::identity::{self, KeyArgs, Recorder};
use super::{CliResult, Ctx, Exit, emit};

/// One decision to record: the request, the verdict with its reason code and comment,
/// and the key that signs it.
pub struct Decision<'a> {
    pub request: &'a str,
    pub verdict: Verdict,
    pub reason_code: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub key: &'a KeyArgs,
    /// One approval of a batch (`approve ID ID...`): the engine also checks, under the
    /// lock, that the request's tier is `batchable` in the matrix in force.
    pub batch: bool,
    /// The version the decider was shown (`review`, `approve --version`): the engine
    /// refuses the decision under the lock if another version has been proposed since.
    pub seen_version: Option<u32>,
}

impl<'a> Decision<'a> {
    /// `verdict` on `request`, signed with `key`; no reason code, comment or version.
    pub const fn new(request: &'a str, verdict: Verdict, key: &'a KeyArgs) -> Self {
        Self {
            request,
            verdict,
            reason_code: None,
            comment: None,
            key,
            batch: false,
            seen_version: None,
        }
    }
}

/// Records `d`, judged by the engine under the lock, and says where the request stands.
pub fn record(ctx: &Ctx, d: &Decision<'_>) -> CliResult {
    let Decision {
        request,
        verdict,
        reason_code,
        comment,
        key: key_args,
        batch,
        seen_version,
    } = *d;
    let Recorder {
        repo, key, actor, ..
    } = Recorder::open(ctx, key_args)?;
    let how = identity::appender(&key, actor.clone());
    let approval_id = super::approval::nonce()?;
    let mut outcome = None;
    let appended = repo.append(&how, |repo, head, tree, now| {
        let decided = workflow::decision(
            repo,
            head,
            tree,
            &key,
            request,
            &actor.principal,
            verdict,
            reason_code,
            comment,
            batch,
            seen_version,
            &approval_id,
            now,
        )?;
        if verdict == Verdict::Approve {
            // What is about to be signed, as the engine judged it under the lock.
            eprint!("{}", summary(request, &decided.before));
        }
        outcome = Some(decided.after);
        Ok(decided.built)
    })?;
    let seq = appended.events.first().map_or(0, |(_, e)| e.seq);
    workflow::engine::remember_appended(&repo, &appended);
    let commit = appended.commit.to_string();
    if let Some(w) = &appended.warning {
        eprintln!("warning: {w}");
    }
    let now_stands = match outcome {
        Some(Outcome::Pending {
            approvals,
            required,
            still_needed,
        }) => format!(
            "{request}: {approvals} of {required} approvals, still needed: {}\n",
            still_needed.join(", ")
        ),
        Some(Outcome::Approved) => format!("{request}: quorum reached, the request is approved\n"),
        Some(Outcome::Overridden(o)) if o.open() => format!(
            "{request}: overridden; it proceeds, and owes {} more review approval(s) from {} by {}\n",
            usize::from(o.required).saturating_sub(o.reviews.len()),
            o.roles.join(", "),
            o.due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        Some(Outcome::Overridden(_)) => {
            format!("{request}: the override's review is complete\n")
        }
        Some(Outcome::ChangesRequested { .. }) => format!(
            "{request}: this version takes no more decisions; the agent may propose a new version with the same id\n"
        ),
        _ => String::new(),
    };
    emit(
        format!(
            "{request}: {} by {} (event {seq}, commit {})\n{now_stands}",
            verdict.as_str(),
            actor.principal,
            &commit[..12.min(commit.len())]
        )
        .as_bytes(),
    )?;
    Ok(Exit::Ok)
}

/// The screen `approve` shows on stderr before it signs (stdout stays the result line):
/// action, target, amount, tier, the policy outcome recorded at proposal, and the
/// approvals so far. At most seven lines.
fn summary(request: &str, st: &Status) -> String {
    let mut out = format!("approving {}", escape(request));
    if st.state.version > 1 {
        out.push_str(&format!(" (version {})", st.state.version));
    }
    out.push('\n');
    let Some(Ok(d)) = &st.state.derived else {
        out.push_str(&format!("  state:     {}\n", st.outcome.name()));
        return out;
    };
    // The latest version's events: from its `proposed` on.
    let from = st
        .events
        .iter()
        .rposition(|e| e.kind == types::PROPOSED)
        .unwrap_or(0);
    let events = st.events.get(from..).unwrap_or_default();
    let tier_name = events
        .iter()
        .find(|e| e.kind == types::CLASSIFIED)
        .and_then(|e| e.field_str("tier_name"))
        .map(|n| format!(" ({})", escape(n)))
        .unwrap_or_default();
    // The engine's own evaluation, never the recorded one (an agent could re-make its
    // proposal commit with a warning dropped; the engine then refuses the request).
    let o = &d.policy;
    let named: Vec<String> = [
        ("deny", &o.deny),
        ("warn", &o.warn),
        ("escalate", &o.escalate),
    ]
    .into_iter()
    .filter(|(_, rules)| !rules.is_empty())
    .map(|(what, rules)| format!("{what}: {}", rules.join(", ")))
    .collect();
    let policy = if named.is_empty() {
        o.policy.clone()
    } else {
        format!("{} ({})", o.policy, named.join("; "))
    };
    out.push_str(&format!("  action:    {}\n", escape(&d.action)));
    out.push_str(&format!("  target:    {}\n", escape(&d.target)));
    out.push_str(&format!(
        "  amount:    {}\n",
        d.amount
            .as_ref()
            .map_or_else(|| "none".to_owned(), |a| escape(&a.to_string()))
    ));
    out.push_str(&format!("  tier:      {}{tier_name}\n", d.tier));
    out.push_str(&format!("  policy:    {}\n", escape(&policy)));
    out.push_str(&match &st.outcome {
        Outcome::Pending {
            approvals,
            required,
            still_needed,
        } => format!(
            "  approvals: {approvals} of {required} so far, still needed: {}\n",
            if still_needed.is_empty() {
                "nobody can give one".to_owned()
            } else {
                still_needed.join(", ")
            }
        ),
        other => format!("  state:     {}\n", other.name()),
    });
    out
}
