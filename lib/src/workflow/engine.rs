//! The workflow engine: the one place that decides.
//!
//! A request's state is the fold of its recorded events ([`State::propose`], [`State::decide`]), with every
//! fact that can be derived recomputed from the recorded proposal (its exact bytes, by
//! digest) under the configuration in force when it was proposed ([`derive_facts`]): tier,
//! route, eligible roles and their members, approvals required, self-approval, expiry,
//! blocked or not, who requested it and who submitted it (the signer of the `proposed`
//! event). Recorded fields are compared with the recomputation and never read back as
//! truth; a disagreement is a finding, and a request with one takes no decision.
//!
//! [`judge_decision`] accepts or refuses a decision against that state and the
//! configuration the decision extends. `approve` and `reject` call it under the audit
//! lock before they append; `verify` calls it on every recorded decision. One rulebook.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value as Json;

use super::config::Config;
use super::{Verdict, WorkflowError, types};
use crate::audit::Event;
use crate::evidence::{self, EvidencePack, PolicyDecision};
use crate::request;

/// What the engine derives about a request from its recorded proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub requested_by: String,
    /// The principal whose key signed the `proposed` event.
    pub submitted_by: String,
    pub tier: u8,
    /// Eligible roles and their members, as routing and limits give them.
    pub eligible: Vec<(String, Vec<String>)>,
    pub approvals_required: u8,
    pub self_approval: bool,
    pub expires_at: DateTime<Utc>,
    /// A policy denied it (or failed): it takes no decision.
    pub blocked: bool,
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
    let pack = match &config.policies {
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
    let c = &pack.classification;
    let blocked = matches!(
        &pack.policy_decision,
        PolicyDecision::Failed { .. }
            | PolicyDecision::Evaluated(crate::policy::Decision { allowed: false, .. })
    );
    Ok((facts(&r, submitter, c, blocked), pack))
}

/// The matrix in force and the proposal parsed under it, once the submitter is one who
/// may submit: what [`derive_from`] and [`derive_facts`] both start from.
fn parse_under<'c>(
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
    r: &request::Request,
    submitter: &str,
    c: &crate::classify::Classification,
    blocked: bool,
) -> Derived {
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
        self_approval: c.self_approval,
        expires_at: r.expires_at,
        blocked,
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
    let (c, blocked) = match &config.policies {
        Ok(Some(set)) => {
            let input = crate::policy::input(matrix, &r, &base, Some(submitter), at);
            let mut set = set
                .lock()
                .map_err(|_| "the policy engine is poisoned".to_owned())?;
            match set.evaluate(&input) {
                Ok(d) => (
                    crate::classify::apply_policy(matrix, &r, &base, &d),
                    !d.allowed,
                ),
                Err(_) => (base, true),
            }
        }
        Ok(None) => (base, false),
        Err(_) => (base, true),
    };
    Ok(facts(&r, submitter, &c, blocked))
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
            }
            types::BLOCKED => saw_blocked = true,
            _ => {}
        }
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

/// A request's state: the fold of its events, with its derived facts.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The derived facts once `proposed` was seen: `Err` when they cannot be derived
    /// or the record disagrees with them (the request then takes no decision).
    pub derived: Option<Result<Derived, String>>,
    /// The decision that closed it: (`approved`/`rejected`, by whom).
    pub decided: Option<(String, String)>,
}

impl State {
    /// Folds a request's proposal events (`proposed` to `approval_requested` or
    /// `blocked`, recorded together) into its state, deriving its facts with `derive`
    /// (given the proposal's digest, its signer and its time; the caller knows the
    /// configuration in force and where the proposal's bytes are).
    pub fn propose(
        &mut self,
        events: &[&Event],
        derive: impl FnOnce(&str, &str, DateTime<Utc>) -> Result<Derived, String>,
    ) {
        let Some(proposed) = events.iter().find(|e| e.kind == types::PROPOSED) else {
            return;
        };
        if self.derived.is_some() || events.iter().filter(|e| e.kind == types::PROPOSED).count() > 1
        {
            self.derived = Some(Err("the request was proposed twice".to_owned()));
            return;
        }
        let digest = proposed.field_str("proposal").unwrap_or_default();
        let at = match parse_at(&proposed.at) {
            Ok(t) => t,
            Err(e) => {
                self.derived = Some(Err(e));
                return;
            }
        };
        let derived = derive(digest, &proposed.actor.principal, at).and_then(|d| {
            let bad = disagreements(&d, events);
            if bad.is_empty() {
                Ok(d)
            } else {
                Err(bad.join("; "))
            }
        });
        self.derived = Some(derived);
    }

    /// Folds a decision that was accepted into the state.
    pub fn decide(&mut self, event: &Event) {
        self.decided = Some((
            event.field_str("decision").unwrap_or("?").to_owned(),
            event.actor.principal.clone(),
        ));
    }
}

/// An event's `at`: refused when it is not an RFC 3339 time (never a default).
///
/// # Errors
/// Not a time.
pub fn parse_at(at: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`at` is not an RFC 3339 time: {at:?}"))
}

/// A decision to judge: who, what, and (for a recorded one) the role it names.
pub struct Decision<'a> {
    pub request: &'a str,
    pub principal: &'a str,
    pub verdict: Verdict,
    /// The role a recorded decision names; `None` when judging a new one (the engine
    /// picks the role).
    pub role: Option<&'a str>,
    pub reason_code: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Accepts or refuses a decision on a request in `state`, made under `current` (the
/// configuration of the tree the decision extends). Returns the role it is made in.
///
/// The rules, in order: proposed; its record agrees with the recomputation; not
/// blocked; not already decided; not expired; not an agent; not the requester (unless
/// the tier allows self-approval) nor the submitter; a member of an eligible role both
/// when it was proposed and now; a reason code the matrix in force knows.
///
/// # Errors
/// The [`WorkflowError`] of the first rule that refuses it.
pub fn judge_decision(
    state: &State,
    current: &Config,
    d: &Decision<'_>,
) -> Result<String, WorkflowError> {
    let request = d.request.to_owned();
    let derived = match &state.derived {
        None => return Err(WorkflowError::NotProposed(request)),
        Some(Err(message)) => {
            return Err(WorkflowError::Inconsistent {
                request,
                message: message.clone(),
            });
        }
        Some(Ok(derived)) => derived,
    };
    if derived.blocked {
        return Err(WorkflowError::Blocked(request));
    }
    if let Some((decision, by)) = &state.decided {
        return Err(WorkflowError::AlreadyDecided {
            request,
            decision: decision.clone(),
            by: by.clone(),
        });
    }
    if d.at >= derived.expires_at {
        return Err(WorkflowError::Expired {
            request,
            expires_at: derived
                .expires_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        });
    }
    let matrix = current
        .matrix()
        .map_err(|message| WorkflowError::Inconsistent {
            request: request.clone(),
            message,
        })?;
    if matrix.governance.is_agent(d.principal) {
        return Err(WorkflowError::AgentDecides {
            principal: d.principal.to_owned(),
            request,
        });
    }
    let is_requester = d.principal == derived.requested_by;
    if (is_requester && !derived.self_approval) || d.principal == derived.submitted_by {
        return Err(WorkflowError::OwnRequest {
            principal: d.principal.to_owned(),
            request,
        });
    }
    // Eligible when proposed, and still a member of that role in the matrix in force:
    // a removal from a role takes effect at once.
    let qualifies = |role: &str, members: &[String]| {
        members.iter().any(|m| m == d.principal)
            && matrix
                .role(role)
                .is_some_and(|r| r.members.iter().any(|m| m == d.principal))
    };
    let role = derived
        .eligible
        .iter()
        .find(|(role, members)| d.role.is_none_or(|r| r == role) && qualifies(role, members))
        .map(|(role, _)| role.clone());
    let Some(role) = role else {
        let roles: Vec<&str> = derived.eligible.iter().map(|(r, _)| r.as_str()).collect();
        return Err(WorkflowError::NotEligible {
            principal: d.principal.to_owned(),
            request,
            roles: if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(", ")
            },
        });
    };
    if d.verdict == Verdict::Reject && d.reason_code.is_none() {
        return Err(WorkflowError::MissingReasonCode);
    }
    if let Some(code) = d.reason_code {
        let allowed: Vec<&String> = match d.verdict {
            Verdict::Reject => matrix
                .reason_codes
                .reject
                .iter()
                .chain(&matrix.reason_codes.request_changes)
                .collect(),
            Verdict::Approve => matrix.reason_codes.request_changes.iter().collect(),
        };
        if !allowed.iter().any(|c| *c == code) {
            return Err(WorkflowError::ReasonCode {
                code: code.to_owned(),
                allowed: allowed
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(role)
}

/// A request's state as the engine folds it from the audit at `tree` (HEAD's tree, whose
/// commit is `head`): the proposal derived under the configuration in force when it was
/// proposed, and the decisions recorded since.
///
/// # Errors
/// An unreadable audit; what cannot be derived is an `Err` inside the state.
pub fn state_at(
    repo: &crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'_>,
    tree: &git2::Tree<'_>,
    request: &str,
) -> Result<(State, Vec<Event>), WorkflowError> {
    let events = repo.request_events(tree, request)?;
    let mut state = State::default();
    let proposal: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind != types::DECISION)
        .collect();
    if let Some(first) = proposal.iter().find(|e| e.kind == types::PROPOSED) {
        let found = super::history::commit_adding(repo, head, first.seq)?;
        let config = match &found {
            Some((_, Some(parent_tree))) => Some(configs.at(repo, parent_tree)?),
            // Recorded in a commit without a parent: it extends nothing, so there is no
            // configuration it was proposed under.
            Some((_, None)) | None => None,
        };
        // The submitter is whoever signed the commit that recorded the proposal, trusted
        // by the configuration it extended: an unsigned or foreign commit claiming an
        // agent's name submits nothing.
        let signer = match (&found, &config) {
            (Some((commit, _)), Some(config)) => commit_signer(repo, commit, config),
            _ => Err("the proposal was not recorded on top of a configuration".to_owned()),
        };
        state.propose(&proposal, |digest, submitter, at| {
            let config = config.ok_or_else(|| {
                "the proposal was not recorded on top of a configuration (no parent commit)"
                    .to_owned()
            })?;
            let signer = signer?;
            if signer != submitter {
                return Err(format!(
                    "the proposal names {submitter} as its actor but its commit is signed by {signer}"
                ));
            }
            let bytes = recorded_blob(repo, tree, digest)?;
            derive_facts(&config, &bytes, submitter, at)
        });
    }
    for e in events.iter().filter(|e| e.kind == types::DECISION) {
        state.decide(e);
    }
    Ok((state, events))
}

/// A recorded blob by its digest, checked against it.
///
/// # Errors
/// Missing, unreadable, or not the bytes the digest names.
pub fn recorded_blob(
    repo: &crate::audit::AuditRepo,
    tree: &git2::Tree<'_>,
    digest: &str,
) -> Result<Vec<u8>, String> {
    let bytes = repo
        .blob(tree, digest)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the recorded proposal `{digest}` is missing"))?;
    if digest.strip_prefix("sha256:") != Some(crate::audit::sha256_hex(&bytes).as_str()) {
        return Err(format!(
            "the recorded proposal `{digest}` was edited: its bytes no longer match the digest"
        ));
    }
    Ok(bytes)
}

/// The principal whose key signed `commit` (git's SSH signature, namespace `git`),
/// trusted by the signer files of `config` (the configuration the commit extends).
///
/// # Errors
/// Unsigned, a bad signature, or a key that configuration does not trust.
pub fn commit_signer(
    repo: &crate::audit::AuditRepo,
    commit: &git2::Commit<'_>,
    config: &Config,
) -> Result<String, String> {
    let (sig, data) = repo
        .repo
        .extract_signature(&commit.id(), Some("gpgsig"))
        .map_err(|_| format!("commit {} is not signed", commit.id()))?;
    let at = DateTime::<Utc>::from_timestamp(commit.time().seconds(), 0)
        .ok_or_else(|| format!("commit {} has a time out of range", commit.id()))?;
    let key = crate::signing::verify(
        &String::from_utf8_lossy(&sig),
        crate::signing::GIT_NAMESPACE,
        &data,
    )
    .map_err(|e| format!("commit {}: {e}", commit.id()))?;
    let (allowed, revoked) = config.trust.as_ref().map_err(Clone::clone)?;
    crate::signing::trusted_principal(
        allowed,
        revoked,
        &key,
        None,
        crate::signing::GIT_NAMESPACE,
        at,
    )
    .map_err(|u| format!("commit {}: {}", commit.id(), u.message))
}

/// The file in git's folder naming the newest commit whose configuration was found
/// governed: a decision checks only the commits after it.
const CHECKED_FILE: &str = "hitl-config-checked";

/// Checks, under the audit lock, that the configuration at `head` was reached only
/// through commits the governance rule allows; remembers `head` once it was.
///
/// # Errors
/// [`WorkflowError::ConfigUnauthorized`] naming the first commit that breaks the rule.
pub fn check_governed(
    repo: &crate::audit::AuditRepo,
    configs: &mut super::config::Configs,
    head: &git2::Commit<'_>,
) -> Result<(), WorkflowError> {
    let file = repo.repo.path().join(CHECKED_FILE);
    // A checked commit is trusted only while it is still on the line from HEAD: after a
    // reset or a rewrite, everything is checked again.
    let checked = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| git2::Oid::from_str(s.trim()).ok());
    // A history that no longer extends the head this clone last decided on was rewound
    // or replaced (a force push can erase decisions, revocations, role removals): fail
    // closed until someone who knows why says so.
    if let Some(id) = checked
        && id != head.id()
        && !repo
            .repo
            .graph_descendant_of(head.id(), id)
            .unwrap_or(false)
    {
        return Err(WorkflowError::Rewound {
            checked: id.to_string(),
            head: head.id().to_string(),
            file: file.display().to_string(),
        });
    }
    let stop = checked;
    // A first decision in a fresh clone walks the whole history: each commit is read
    // once, so libgit2's object cache would only hold memory (hundreds of MB at
    // 100,000 events).
    let long_walk = stop.is_none();
    if long_walk {
        git2::opts::enable_caching(false);
    }
    let violation = super::history::config_violation_since(repo, configs, head, stop);
    if long_walk {
        git2::opts::enable_caching(true);
    }
    if let Some((commit, reason)) = violation? {
        return Err(match reason.strip_prefix(super::history::AUDIT_MARK) {
            Some(reason) => WorkflowError::AuditTampered {
                commit: commit.to_string(),
                reason: reason.to_owned(),
            },
            None => WorkflowError::ConfigUnauthorized {
                commit: commit.to_string(),
                reason,
            },
        });
    }
    // Only a speed-up: failing to remember costs a longer walk next time.
    let _ = std::fs::write(&file, format!("{}\n", head.id()));
    Ok(())
}

/// Remembers `commit`, which this process has just appended on top of a head that
/// [`check_governed`] checked, as checked too: its signer was judged for both the event
/// and the commit namespace under the configuration it extends, and an append only adds
/// audit files. The next decision then walks no commit at all. Only when the file still
/// names `commit`'s parent: another process that appended since keeps its own, newer
/// head (and an older one would only cost a longer walk).
pub fn remember_appended(repo: &crate::audit::AuditRepo, commit: git2::Oid) {
    let file = repo.repo.path().join(CHECKED_FILE);
    let parent = repo
        .repo
        .find_commit(commit)
        .ok()
        .and_then(|c| c.parent_id(0).ok());
    let checked = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| git2::Oid::from_str(s.trim()).ok());
    if parent.is_some() && checked == parent {
        // Only a speed-up, as in `check_governed`.
        let _ = std::fs::write(&file, format!("{commit}\n"));
    }
}

/// Judges a new decision under the audit lock, from the tree it extends: the
/// configuration at HEAD must be governed, the request's state is folded and derived,
/// and [`judge_decision`] decides.
///
/// # Errors
/// The [`WorkflowError`] of the rule that refuses it.
pub fn judge_new_decision(
    repo: &crate::audit::AuditRepo,
    tree: &git2::Tree<'_>,
    signer: &ssh_key::PublicKey,
    d: &Decision<'_>,
) -> Result<NewDecision, WorkflowError> {
    let Some(head) = repo.head_commit()? else {
        return Err(WorkflowError::NotProposed(d.request.to_owned()));
    };
    let mut configs = super::config::Configs::default();
    check_governed(repo, &mut configs, &head)?;
    let current = configs.at(repo, tree)?;
    signer_trusted(&current, signer, d.principal, d.at)?;
    let (state, events) = state_at(repo, &mut configs, &head, tree, d.request)?;
    let role = judge_decision(&state, &current, d)?;
    Ok(NewDecision {
        state,
        events,
        role,
        config: current,
    })
}

/// What [`judge_new_decision`] accepted: the request's state and events, the role the
/// decision is made in, and the configuration it is made under.
pub struct NewDecision {
    pub state: State,
    pub events: Vec<Event>,
    pub role: String,
    pub config: std::sync::Arc<super::config::Config>,
}

/// The signing key, under the signer files of the configuration the new commit
/// extends (read under the lock), at `now`: the one trust function decides, again, that
/// it acts for `principal`, for the event's signature and for the commit's.
fn signer_trusted(
    config: &Config,
    signer: &ssh_key::PublicKey,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<(), WorkflowError> {
    let (allowed, revoked) = config
        .trust
        .as_ref()
        .map_err(|e| WorkflowError::Untrusted {
            principal: principal.to_owned(),
            reason: e.clone(),
        })?;
    // The event's signature (namespace `hitl`) and the commit's (`git`): a key trusted
    // for only one of them would record a commit the audit rule refuses afterwards.
    for namespace in [crate::signing::NAMESPACE, crate::signing::GIT_NAMESPACE] {
        crate::signing::trusted_principal(
            allowed,
            revoked,
            signer,
            Some(principal),
            namespace,
            now,
        )
        .map_err(|u| WorkflowError::Untrusted {
            principal: principal.to_owned(),
            reason: u.message,
        })?;
    }
    Ok(())
}

/// What [`judge_new_proposal`] accepted: the evidence pack assembled under the
/// configuration at HEAD, and the events and blobs to record.
pub struct NewProposal {
    pub pack: EvidencePack,
    pub proposal: super::Proposal,
}

/// Judges a new proposal under the audit lock, from the tree it extends: the
/// configuration at HEAD must be governed; the id must be new; the submitter must be an
/// agent (when the matrix lists agents) and never an admin or a member of a role (who
/// submits does not decide); the evidence pack is assembled under the configuration at
/// HEAD at `now`.
///
/// # Errors
/// The [`WorkflowError`] of the rule that refuses it.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one fact of the proposal"
)]
pub fn judge_new_proposal(
    repo: &crate::audit::AuditRepo,
    tree: &git2::Tree<'_>,
    signer: &ssh_key::PublicKey,
    file: &Path,
    bytes: &[u8],
    submitter: &str,
    now: DateTime<Utc>,
) -> Result<NewProposal, WorkflowError> {
    let mut configs = super::config::Configs::default();
    if let Some(head) = repo.head_commit()? {
        check_governed(repo, &mut configs, &head)?;
    }
    let config = configs.at(repo, tree)?;
    signer_trusted(&config, signer, submitter, now)?;
    let inconsistent = |request: &str, message: String| WorkflowError::Inconsistent {
        request: request.to_owned(),
        message,
    };
    let matrix = config.matrix().map_err(|m| inconsistent("?", m))?;
    submitter_rule(matrix, submitter).map_err(|reason| WorkflowError::NotAnAgent {
        principal: submitter.to_owned(),
        reason,
    })?;
    let (_, pack) =
        derive_from(&config, file, bytes, submitter, now).map_err(|m| inconsistent("?", m))?;
    let id = pack.request.clone();
    if !repo.request_seqs(tree, &id)?.is_empty() {
        return Err(WorkflowError::AlreadyProposed(id));
    }
    submitter_rule(matrix, submitter).map_err(|reason| WorkflowError::NotAnAgent {
        principal: submitter.to_owned(),
        reason,
    })?;
    let settings = config
        .settings
        .as_ref()
        .map_err(|e| inconsistent(&id, e.clone()))?;
    let r = request::parse(
        file,
        bytes,
        &matrix.systems,
        settings.limits.max_request_bytes,
    )
    .map_err(|d| inconsistent(&id, d.to_string()))?;
    let versions = crate::audit::ConfigVersions {
        matrix: config.matrix_digest.clone(),
        policies: config.policy_digest.clone(),
        tool: format!("hitl {}", env!("CARGO_PKG_VERSION")),
    };
    let proposal = super::proposal(matrix, &r, bytes, &pack, submitter, &versions)
        .map_err(|e| inconsistent(&id, e.to_string()))?;
    Ok(NewProposal { pack, proposal })
}
