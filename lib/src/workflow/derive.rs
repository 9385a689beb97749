//! What the engine derives about a request from its recorded proposal's bytes under the
//! configuration in force ([`derive_facts`], [`derive_from`]), who may submit, and the
//! recorded fields that disagree with the recomputation ([`disagreements`]).

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value as Json;

use super::config::Config;
use super::types;
use crate::audit::Event;
use crate::evidence::{self, EvidencePack, PolicyDecision};
use crate::request;

/// What the engine derives about a request from its recorded proposal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Derived {
    pub requested_by: String,
    /// The principal whose key signed the `proposed` event.
    pub submitted_by: String,
    pub tier: u8,
    /// Eligible roles and their members, as routing and limits give them.
    pub eligible: Vec<(String, Vec<String>)>,
    pub approvals_required: u8,
    /// Each approval must come from another role (the tier's `distinct_roles`).
    pub distinct_roles: bool,
    pub self_approval: bool,
    pub expires_at: DateTime<Utc>,
    /// The end of the tier's pending timeout, counted from the proposal: past it the
    /// request is expired, or escalated to [`Derived::escalation`].
    pub pending_until: Option<DateTime<Utc>>,
    /// The role (and its members when proposed) that alone may decide once the pending
    /// timeout has passed, when the tier escalates instead of expiring.
    pub escalation: Option<(String, Vec<String>)>,
    /// A policy denied it (or failed): it takes no decision.
    pub blocked: bool,
    /// The amount the proposal moves, when it names one: an approver's role must have
    /// authority for it under the matrix in force at decision time too.
    pub amount: Option<request::Amount>,
    /// The roles a limit moved the request away from, each with the role that stands in
    /// for it: a member of the first is told which role may approve instead.
    pub stands_in_for: Vec<(String, String)>,
    /// The owner of the submitting agent when it was proposed (`governance.agent_owners`):
    /// they count as the requester.
    pub agent_owner: Option<String>,
    /// When it was proposed (the `proposed` event's time, which the deadlines count from).
    pub proposed_at: DateTime<Utc>,
    /// The action's name (`payments.refund`) and its target (`payments/ch_981`), for
    /// display.
    pub action: String,
    pub target: String,
    /// The policies' outcome, as the engine evaluated it: what an approver is shown, and
    /// what the recorded `classified` and `policy_checked` must say.
    pub policy: crate::audit::replay::Outcome,
    /// The sampled review's draw, when the tier samples: a drawn request's
    /// `approvals_required` counts the extra approval already.
    pub sample: Option<crate::classify::Sample>,
    /// What an approval of it allows, beyond the above: the action's type, the digest of
    /// its parameters, the change window it must run in, whether an operator must
    /// supervise, and how long an approval is valid from the final approval (the tier's
    /// `approval_valid_for`, in seconds).
    pub action_type: String,
    pub parameters: String,
    pub change_window: Option<crate::approval::WindowSchedule>,
    pub supervised: bool,
    pub valid_for_seconds: Option<u64>,
    /// The proposal's `rollback.command` (empty when it names none): what `hitl
    /// rollback` runs, read from the recorded bytes.
    pub rollback_command: Vec<String>,
    /// The tier's `rollback_approval`: a rollback needs its own approvals first.
    pub rollback_approval: bool,
}

impl Derived {
    /// Whether the request owes a sampled review (its tier drew it), besides its tier's
    /// own approvals.
    #[must_use]
    pub fn review_owed(&self) -> bool {
        self.sample.as_ref().is_some_and(|s| s.selected)
    }

    /// The roles that may give the sampled review, with their members when proposed.
    #[must_use]
    pub fn reviewers(&self) -> Vec<(String, Vec<String>)> {
        self.sample
            .as_ref()
            .filter(|s| s.selected)
            .map(|s| {
                s.reviewers
                    .iter()
                    .map(|r| (r.role.clone(), r.members.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Draws the sample because the version before it was drawn (a review nobody could
    /// give blocks it), as [`crate::classify::carry_sample`] does for the pack.
    pub fn carry_sample(&mut self) {
        if let Some(s) = &mut self.sample
            && !s.selected
        {
            s.carry();
            if !s.reviewable() {
                self.blocked = true;
            }
        }
    }

    /// Whether the pending timeout has escalated the request at `at`.
    #[must_use]
    pub fn escalated_at(&self, at: DateTime<Utc>) -> bool {
        self.escalation.is_some() && self.pending_until.is_some_and(|until| at >= until)
    }

    /// When the request can no longer be decided: its own `expires_at`, or the end of a
    /// pending timeout that expires rather than escalates, whichever comes first.
    #[must_use]
    pub fn deadline(&self) -> DateTime<Utc> {
        match (self.pending_until, &self.escalation) {
            (Some(until), None) => until.min(self.expires_at),
            _ => self.expires_at,
        }
    }

    /// The roles that may decide at `at`, with their members when it was proposed.
    #[must_use]
    pub fn eligible_at(&self, at: DateTime<Utc>) -> Vec<(String, Vec<String>)> {
        match &self.escalation {
            Some(role) if self.escalated_at(at) => vec![role.clone()],
            _ => self.eligible.clone(),
        }
    }
}

/// Recomputes what a proposal (in `file`, named in the pack and in messages) gets under
/// `config` at `at`: the evidence pack `propose` would assemble, and the facts the
/// workflow rests on.
///
/// # Errors
/// The configuration does not load, or the proposal does not parse under it.
pub fn derive_from(
    config: &Config,
    file: &Path,
    proposal: &[u8],
    submitter: &str,
    at: DateTime<Utc>,
) -> Result<(Derived, EvidencePack), String> {
    let (matrix, r) = parse_under(config, file, proposal, submitter)?;
    let mut pack = match &config.policies {
        Ok(Some(set)) => {
            let mut set = set
                .lock()
                .map_err(|_| "the policy engine is poisoned".to_owned())?;
            evidence::assemble_submitted(
                matrix,
                &mut set,
                file.to_path_buf(),
                &r,
                Some(submitter),
                at,
            )
        }
        Ok(None) => evidence::assemble(matrix, file.to_path_buf(), &r, at),
        Err(e) => {
            evidence::assemble_with_policy_error(matrix, e.clone(), file.to_path_buf(), &r, at)
        }
    };
    crate::classify::apply_sample_of(matrix, &r, &mut pack.classification, proposal);
    let c = &pack.classification;
    let blocked = matches!(
        &pack.policy_decision,
        PolicyDecision::Failed { .. }
            | PolicyDecision::Evaluated(crate::policy::Decision { allowed: false, .. })
    );
    let blocked = blocked || !unapprovable(c).is_empty();
    let policy = crate::audit::replay::of_pack(&pack);
    Ok((facts(matrix, &r, submitter, c, blocked, policy, at), pack))
}

/// The matrix in force and the proposal parsed under it, once the submitter is one who
/// may submit: what [`derive_from`] and [`derive_facts`] both start from.
pub(crate) fn parse_under<'c>(
    config: &'c Config,
    file: &Path,
    proposal: &[u8],
    submitter: &str,
) -> Result<(&'c crate::matrix::Matrix, request::Request), String> {
    let matrix = config.matrix()?;
    let cap = config
        .settings
        .as_ref()
        .map_err(|e| format!("`hitl.toml` in force does not load: {e}"))?
        .limits
        .max_request_bytes;
    submitter_rule(matrix, submitter)
        .map_err(|why| format!("`{submitter}` may not submit proposals: {why}"))?;
    let r = request::parse(file, proposal, &matrix.systems, cap).map_err(|d| {
        format!("the recorded proposal does not load under the matrix in force: {d}")
    })?;
    Ok((matrix, r))
}

/// The facts of a classification: what the workflow rests on.
fn facts(
    matrix: &crate::matrix::Matrix,
    r: &request::Request,
    submitter: &str,
    c: &crate::classify::Classification,
    blocked: bool,
    policy: crate::audit::replay::Outcome,
    proposed_at: DateTime<Utc>,
) -> Derived {
    let tier = matrix.tier(c.tier);
    let pending_until = tier
        .and_then(|t| t.pending_timeout)
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| proposed_at.checked_add_signed(d));
    let escalation = match tier.map(|t| &t.on_timeout) {
        Some(crate::matrix::OnTimeout::Escalate { role }) => Some((
            role.clone(),
            matrix
                .role(role)
                .map(|role| {
                    role.members
                        .iter()
                        .filter(|m| **m != r.requested_by)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
        )),
        _ => None,
    };
    Derived {
        requested_by: r.requested_by.clone(),
        submitted_by: submitter.to_owned(),
        tier: c.tier,
        eligible: c
            .eligible_roles
            .iter()
            .map(|e| (e.role.clone(), e.members.clone()))
            .collect(),
        approvals_required: c.approvals_required,
        distinct_roles: c.distinct_roles,
        self_approval: c.self_approval,
        expires_at: r.expires_at,
        pending_until,
        escalation,
        blocked,
        amount: r.action.amount.clone(),
        stands_in_for: c
            .eligible_roles
            .iter()
            .filter_map(|e| Some((e.escalated_from.clone()?, e.role.clone())))
            .collect(),
        agent_owner: matrix.governance.owner_of(submitter).map(str::to_owned),
        proposed_at,
        action: r.action.name.clone(),
        target: format!("{}/{}", r.action.target.system, r.action.target.object),
        policy,
        sample: c.sample.clone(),
        action_type: r.action.kind.as_str().to_owned(),
        parameters: crate::approval::parameters_digest(&r.action.parameters),
        change_window: c
            .change_window
            .as_ref()
            .map(|name| match matrix.change_window(name) {
                Some(w) => crate::approval::WindowSchedule::of(w),
                // A window the matrix does not define never opens.
                None => crate::approval::WindowSchedule {
                    name: name.clone(),
                    timezone: String::new(),
                    days: Vec::new(),
                    hours: String::new(),
                },
            }),
        supervised: c.execution == crate::matrix::Execution::HumanSupervised,
        valid_for_seconds: tier.and_then(|t| t.approval_valid_for).map(|d| d.as_secs()),
        rollback_command: r
            .rollback
            .as_ref()
            .map(|b| b.command.clone())
            .unwrap_or_default(),
        // An unknown tier fails closed: its rollback is approved.
        rollback_approval: tier.is_none_or(|t| t.rollback_approval),
    }
}

/// The facts alone, without the rest of the evidence pack: what `verify` needs for each
/// recorded proposal (the classification and the policies' decision, as [`derive_from`]
/// computes them, without sources, diff and warnings).
///
/// # Errors
/// As [`derive_from`].
pub fn derive_facts(
    config: &Config,
    proposal: &[u8],
    submitter: &str,
    at: DateTime<Utc>,
) -> Result<Derived, String> {
    let (matrix, r) = parse_under(
        config,
        Path::new("<recorded proposal>"),
        proposal,
        submitter,
    )?;
    let base = crate::classify::classify(matrix, &r);
    let (c, blocked, policy) = match &config.policies {
        Ok(Some(set)) => {
            let input = crate::policy::input(matrix, &r, &base, Some(submitter), at);
            let mut set = set
                .lock()
                .map_err(|_| "the policy engine is poisoned".to_owned())?;
            match set.evaluate(&input) {
                Ok(d) => {
                    let c = crate::classify::apply_policy(matrix, &r, &base, &d);
                    let policy = crate::audit::replay::of_decision(c.tier, Some(Ok(&d)));
                    (c, !d.allowed, policy)
                }
                Err(_) => {
                    let policy = crate::audit::replay::of_decision(base.tier, Some(Err(())));
                    (base, true, policy)
                }
            }
        }
        Ok(None) => {
            let policy = crate::audit::replay::of_decision(base.tier, None);
            (base, false, policy)
        }
        Err(_) => {
            let policy = crate::audit::replay::of_decision(base.tier, Some(Err(())));
            (base, true, policy)
        }
    };
    let mut c = c;
    crate::classify::apply_sample_of(matrix, &r, &mut c, proposal);
    let blocked = blocked || !unapprovable(&c).is_empty();
    Ok(facts(matrix, &r, submitter, &c, blocked, policy, at))
}

/// Why nobody could approve a request as classified, one line each (empty when it can
/// be approved): a route that does not work (no eligible role, a quorum the eligible
/// roles cannot reach, an empty role, a role without authority for the amount, a
/// policy's required role that cannot approve) or evidence its tier requires that the
/// proposal lacks. `propose` records such a request as `blocked`, with these reasons,
/// instead of leaving it pending for nobody.
#[must_use]
pub fn unapprovable(c: &crate::classify::Classification) -> Vec<String> {
    let mut out: Vec<String> = c.problems.iter().map(|p| p.message.clone()).collect();
    if !c.missing_evidence.is_empty() {
        out.push(format!(
            "tier {} requires evidence the proposal lacks: {}",
            c.tier,
            c.missing_evidence.join(", ")
        ));
    }
    out
}

/// Who may submit under `matrix`: an agent (when the matrix lists any), and never an
/// admin or a member of a role (who submits never decides).
///
/// # Errors
/// Why `submitter` may not submit.
pub fn submitter_rule(matrix: &crate::matrix::Matrix, submitter: &str) -> Result<(), String> {
    let g = &matrix.governance;
    if g.is_admin(submitter) || matrix.roles_of(submitter).next().is_some() {
        return Err("it approves or administers, and who submits never decides".to_owned());
    }
    if !g.agents.is_empty() && !g.is_agent(submitter) {
        return Err(format!(
            "the matrix's `governance.agents` lists only {}",
            g.agents.join(", ")
        ));
    }
    Ok(())
}

/// The recorded fields of a proposal's events that disagree with the recomputation,
/// one line each (empty when they all agree).
#[must_use]
pub fn disagreements(derived: &Derived, events: &[&Event]) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |what: &str, recorded: &str, derived: &str| {
        if recorded != derived {
            out.push(format!(
                "{what} is recorded as `{recorded}` but the proposal under the configuration in force gives `{derived}`"
            ));
        }
    };
    let secs = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut saw_asked = false;
    let mut saw_blocked = false;
    for e in events {
        match e.kind.as_str() {
            types::PROPOSED => {
                differs(
                    "`requested_by`",
                    e.field_str("requested_by").unwrap_or_default(),
                    &derived.requested_by,
                );
                differs(
                    "`submitted_by`",
                    e.field_str("submitted_by").unwrap_or_default(),
                    &derived.submitted_by,
                );
            }
            types::CLASSIFIED => differs(
                "the tier",
                &e.fields
                    .get("tier")
                    .map(Json::to_string)
                    .unwrap_or_default(),
                &derived.tier.to_string(),
            ),
            types::APPROVAL_REQUESTED => {
                saw_asked = true;
                differs(
                    "the tier asked for",
                    &e.fields
                        .get("tier")
                        .map(Json::to_string)
                        .unwrap_or_default(),
                    &derived.tier.to_string(),
                );
                let recorded: Vec<(String, Vec<String>)> = e
                    .fields
                    .get("eligible")
                    .and_then(Json::as_array)
                    .map(|roles| {
                        roles
                            .iter()
                            .map(|r| {
                                let name = r.get("role").and_then(Json::as_str).unwrap_or_default();
                                let members = r
                                    .get("members")
                                    .and_then(Json::as_array)
                                    .map(|m| {
                                        m.iter()
                                            .map(|p| p.as_str().unwrap_or_default().to_owned())
                                            .collect()
                                    })
                                    .unwrap_or_default();
                                (name.to_owned(), members)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let show = |v: &[(String, Vec<String>)]| {
                    v.iter()
                        .map(|(r, m)| format!("{r}: {}", m.join(" ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                differs(
                    "the eligible approvers",
                    &show(&recorded),
                    &show(&derived.eligible),
                );
                differs(
                    "`approvals_required`",
                    &e.fields
                        .get("approvals_required")
                        .map(Json::to_string)
                        .unwrap_or_default(),
                    &derived.approvals_required.to_string(),
                );
                differs(
                    "`self_approval`",
                    &e.fields
                        .get("self_approval")
                        .map(Json::to_string)
                        .unwrap_or_default(),
                    &derived.self_approval.to_string(),
                );
                differs(
                    "`expires_at`",
                    e.field_str("expires_at").unwrap_or_default(),
                    &secs(&derived.expires_at),
                );
                let sample = derived
                    .sample
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok());
                let show = |v: Option<&Json>| v.map(Json::to_string).unwrap_or_default();
                if e.fields.get("sample") != sample.as_ref() {
                    differs(
                        "the sampled review",
                        &show(e.fields.get("sample")),
                        &show(sample.as_ref()),
                    );
                }
            }
            types::BLOCKED => saw_blocked = true,
            _ => {}
        }
    }
    // The policies' outcome (their deny, warn and escalate rules), which the approver is
    // shown: an agent re-making its own proposal commit with a warning dropped is found.
    if let Some(recorded) = crate::audit::replay::recorded(events)
        && recorded != derived.policy
    {
        let show = |o: &crate::audit::replay::Outcome| {
            format!(
                "{} (deny: {}; warn: {}; escalate: {})",
                o.policy,
                o.deny.join(", "),
                o.warn.join(", "),
                o.escalate.join(", ")
            )
        };
        out.push(format!(
            "the policy outcome is recorded as `{}` but the policies in force give `{}`",
            show(&recorded),
            show(&derived.policy)
        ));
    }
    if saw_blocked != derived.blocked || saw_asked == derived.blocked {
        out.push(format!(
            "the proposal is recorded as {} but the policies in force {}",
            if saw_blocked {
                "blocked"
            } else {
                "awaiting approval"
            },
            if derived.blocked {
                "deny it"
            } else {
                "allow it"
            }
        ));
    }
    out
}
