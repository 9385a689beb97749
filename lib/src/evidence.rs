//! The evidence pack: everything the article says a reviewer must see before deciding,
//! assembled from the proposal, its classification and the clock reading passed in.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::classify::{Classification, apply_policy, classify};
use crate::matrix::Matrix;
use crate::policy::{Decision, PolicySet};
use crate::request::{
    Agent, Amount, Authority, Classification as DataClass, Request, Rollback, Source,
};

/// Something the reviewer must notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

/// The policy row of the pack. Only `Evaluated` with `allowed: true` lets a proposal
/// through; a failed evaluation is a denial (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum PolicyDecision {
    NotEvaluated { reason: String },
    Evaluated(Decision),
    Failed { error: String },
}

impl PolicyDecision {
    /// True only when policies ran and nothing denied.
    #[must_use]
    pub const fn is_allowed(&self) -> bool {
        matches!(self, Self::Evaluated(d) if d.allowed)
    }

    #[must_use]
    pub fn summary(&self) -> String {
        match self {
            Self::NotEvaluated { reason } => format!("not evaluated: {reason}"),
            Self::Failed { error } => format!("ERROR, treated as denied (fail closed): {error}"),
            Self::Evaluated(d) => {
                let mut s = if d.allowed {
                    "allowed".to_owned()
                } else {
                    let reasons: Vec<String> = d
                        .deny
                        .iter()
                        .map(|f| format!("{} [{}]", f.message, f.rule))
                        .collect();
                    format!("DENIED: {}", reasons.join("; "))
                };
                for e in &d.escalate {
                    s.push_str(&format!(
                        "\nescalates to {}: {} [{}]",
                        e.role, e.reason, e.rule
                    ));
                }
                for w in &d.warn {
                    s.push_str(&format!("\nwarns: {} [{}]", w.message, w.rule));
                }
                if let Some(t) = d.min_tier {
                    s.push_str(&format!("\nminimum tier {t}"));
                }
                s.push_str(&format!("\npolicy set {}", d.policy_digest));
                s
            }
        }
    }
}

/// A source with the flags the reviewer should see next to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceView {
    #[serde(flatten)]
    pub source: Source,
    /// Age at the time the pack was assembled, in seconds (negative: in the future).
    pub age_seconds: i64,
    pub flags: Vec<&'static str>,
}

/// One line of the before/after diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    /// `-` removed, `+` added, ` ` unchanged.
    pub op: char,
    pub path: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// Roles the requester holds in the matrix (for separation of duties).
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProposedAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub tool: String,
    pub target_system: String,
    pub target_object: String,
    pub parameters: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
}

/// The change window that applies, and whether it is open at assembly time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowStatus {
    pub name: String,
    /// `None` when the matrix does not define the window (lint reports it).
    pub open_now: Option<bool>,
    /// `tue, wed, thu 09:00-16:00 Europe/Berlin`.
    pub schedule: Option<String>,
}

/// The pack, in the order of the article's evidence-pack table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidencePack {
    pub request: String,
    pub file: PathBuf,
    pub assembled_at: DateTime<Utc>,
    pub requesting_identity: Identity,
    pub ai_system: Agent,
    pub action: ProposedAction,
    pub risk_tier: u8,
    pub risk_tier_name: String,
    pub input_summary: String,
    pub sources: Vec<SourceView>,
    pub diff: Vec<DiffLine>,
    /// `change.precondition`: the command `hitl exec` runs first, whose output must be
    /// the diff's before state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub precondition: Vec<String>,
    pub policy_decision: PolicyDecision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    pub alternatives: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    pub expires_at: DateTime<Utc>,
    pub expired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_analysis: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hazard_check: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_override: Option<serde_json::Value>,
    pub classification: Classification,
    pub change_window: Option<WindowStatus>,
    pub warnings: Vec<Warning>,
}

/// Flags and warnings about the request as of `now`.
#[must_use]
pub fn warnings(
    matrix: &Matrix,
    r: &Request,
    c: &Classification,
    now: DateTime<Utc>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    if now >= r.expires_at {
        out.push(Warning {
            code: "expired",
            message: format!("request expired at {}", r.expires_at.to_rfc3339()),
        });
    }
    if r.requested_at > now {
        out.push(Warning {
            code: "future-request",
            message: format!(
                "requested_at {} is in the future",
                r.requested_at.to_rfc3339()
            ),
        });
    }
    for s in &r.sources {
        for flag in source_flags(matrix, s, now) {
            let message = match flag {
                "stale" => format!(
                    "source `{}` was retrieved {} ago, older than the matrix's max age of {}",
                    s.id,
                    human_age(now - s.retrieved_at),
                    matrix.max_source_age.map_or_else(String::new, |d| {
                        human_age(chrono::Duration::seconds(
                            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        ))
                    })
                ),
                "low-authority" => format!("source `{}` has low authority", s.id),
                "restricted" => format!("source `{}` is classified restricted", s.id),
                "future" => format!("source `{}` claims to be retrieved in the future", s.id),
                _ => continue,
            };
            out.push(Warning {
                code: match flag {
                    "stale" => "stale-source",
                    "low-authority" => "low-authority-source",
                    "restricted" => "restricted-source",
                    _ => "future-source",
                },
                message,
            });
        }
    }
    if !c.missing_evidence.is_empty() {
        out.push(Warning {
            code: "missing-evidence",
            message: format!(
                "tier {} requires evidence that is missing: {}",
                c.tier,
                c.missing_evidence.join(", ")
            ),
        });
    }
    for p in &c.problems {
        out.push(Warning {
            code: p.code,
            message: p.message.clone(),
        });
    }
    out
}

fn source_flags(matrix: &Matrix, s: &Source, now: DateTime<Utc>) -> Vec<&'static str> {
    let mut flags = Vec::new();
    let age = now - s.retrieved_at;
    if let Some(max) = matrix.max_source_age
        && chrono::Duration::from_std(max).is_ok_and(|max| age > max)
    {
        flags.push("stale");
    }
    if age < chrono::Duration::minutes(-5) {
        flags.push("future");
    }
    if s.authority == Authority::Low {
        flags.push("low-authority");
    }
    if s.classification == DataClass::Restricted {
        flags.push("restricted");
    }
    flags
}

/// A short age with its two largest units: `42s`, `5m 3s`, `3h 4m`, `9d 2h`.
#[must_use]
pub fn human_age(d: chrono::Duration) -> String {
    let secs = d.num_seconds().unsigned_abs();
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(i) = units.iter().position(|(n, _)| secs >= *n) else {
        return "0s".to_owned();
    };
    let (big, big_name) = units[i];
    let mut s = format!("{}{big_name}", secs / big);
    if let Some((small, small_name)) = units.get(i + 1) {
        let rest = (secs % big) / small;
        if rest > 0 {
            s.push_str(&format!(" {rest}{small_name}"));
        }
    }
    s
}

/// Flattens a JSON value into `(path, rendered leaf)` pairs in document order.
///
/// Paths and values are unambiguous, so a proposal cannot make a change look like no
/// change: a key that is not a plain name is quoted (`["limits.max"]` is not
/// `limits.max`), and a string that reads like another JSON value is quoted (`"100"` is
/// not `100`).
fn flatten(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-'));
                let sub = if plain {
                    crate::decode::join(path, k)
                } else {
                    format!("{path}[{}]", serde_json::Value::String(k.clone()))
                };
                flatten(v, &sub, out);
            }
        }
        serde_json::Value::Array(items)
            if !items.is_empty() && items.iter().any(|i| i.is_object() || i.is_array()) =>
        {
            for (i, v) in items.iter().enumerate() {
                flatten(v, &format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::String(s) => {
            let ambiguous = s.is_empty()
                || serde_json::from_str::<serde_json::Value>(s).is_ok_and(|v| !v.is_string());
            let shown = if ambiguous {
                serde_json::Value::String(s.clone()).to_string()
            } else {
                s.clone()
            };
            out.push((path.to_owned(), shown));
        }
        other => out.push((path.to_owned(), other.to_string())),
    }
}

/// The before/after diff, one line per changed leaf (unchanged leaves kept for context).
#[must_use]
pub fn diff(before: &serde_json::Value, after: &serde_json::Value) -> Vec<DiffLine> {
    let (mut b, mut a) = (Vec::new(), Vec::new());
    flatten(before, "", &mut b);
    flatten(after, "", &mut a);
    let before_index: std::collections::HashMap<&str, &str> =
        b.iter().map(|(p, v)| (p.as_str(), v.as_str())).collect();
    let after_index: std::collections::HashMap<&str, &str> =
        a.iter().map(|(p, v)| (p.as_str(), v.as_str())).collect();
    let mut out = Vec::new();
    let line = |op, path: &str, value: &str| DiffLine {
        op,
        path: path.to_owned(),
        value: value.to_owned(),
    };
    for (path, old) in &b {
        match after_index.get(path.as_str()) {
            Some(new) if new == old => out.push(line(' ', path, old)),
            Some(new) => {
                out.push(line('-', path, old));
                out.push(line('+', path, new));
            }
            None => out.push(line('-', path, old)),
        }
    }
    for (path, new) in &a {
        if !before_index.contains_key(path.as_str()) {
            out.push(line('+', path, new));
        }
    }
    out
}

/// Assembles the pack for one request as of `now`, without policies (the policy row
/// says "not evaluated").
#[must_use]
pub fn assemble(matrix: &Matrix, file: PathBuf, r: &Request, now: DateTime<Utc>) -> EvidencePack {
    assemble_with(
        matrix,
        None,
        PolicyDecision::NotEvaluated {
            reason: "the workspace has no policies (`policies/*.rego`)".to_owned(),
        },
        file,
        r,
        now,
    )
}

/// Assembles the pack with the workspace's policies evaluated on the proposal. An
/// evaluation error becomes a `Failed` decision: treated as denied, never as allowed.
#[must_use]
pub fn assemble_with_policies(
    matrix: &Matrix,
    policies: &mut PolicySet,
    file: PathBuf,
    r: &Request,
    now: DateTime<Utc>,
) -> EvidencePack {
    assemble_submitted(matrix, policies, file, r, None, now)
}

/// As [`assemble_with_policies`], with the principal whose key submitted the proposal
/// (`hitl propose`) in the policy input.
#[must_use]
pub fn assemble_submitted(
    matrix: &Matrix,
    policies: &mut PolicySet,
    file: PathBuf,
    r: &Request,
    submitter: Option<&str>,
    now: DateTime<Utc>,
) -> EvidencePack {
    let base = classify(matrix, r);
    let input = crate::policy::input(matrix, r, &base, submitter, now);
    let decision = match policies.evaluate(&input) {
        Ok(d) => PolicyDecision::Evaluated(d),
        Err(e) => PolicyDecision::Failed {
            error: e.to_string(),
        },
    };
    assemble_with(matrix, Some(base), decision, file, r, now)
}

/// Assembles the pack when the policy set could not even be loaded: the decision is
/// `Failed`, so the proposal is treated as denied.
#[must_use]
pub fn assemble_with_policy_error(
    matrix: &Matrix,
    error: String,
    file: PathBuf,
    r: &Request,
    now: DateTime<Utc>,
) -> EvidencePack {
    assemble_with(matrix, None, PolicyDecision::Failed { error }, file, r, now)
}

fn policy_warnings(decision: &PolicyDecision) -> Vec<Warning> {
    match decision {
        PolicyDecision::NotEvaluated { .. } => Vec::new(),
        PolicyDecision::Failed { error } => vec![Warning {
            code: "policy-error",
            message: format!(
                "policy evaluation failed, the proposal is treated as denied: {error}"
            ),
        }],
        PolicyDecision::Evaluated(Decision { deny, warn, .. }) => deny
            .iter()
            .map(|f| Warning {
                code: "policy-deny",
                message: format!("denied by policy: {} [{}]", f.message, f.rule),
            })
            .chain(warn.iter().map(|f| Warning {
                code: "policy-warn",
                message: format!("{} [{}]", f.message, f.rule),
            }))
            .collect(),
    }
}

fn assemble_with(
    matrix: &Matrix,
    base: Option<Classification>,
    policy_decision: PolicyDecision,
    file: PathBuf,
    r: &Request,
    now: DateTime<Utc>,
) -> EvidencePack {
    let base = base.unwrap_or_else(|| classify(matrix, r));
    let classification = match &policy_decision {
        PolicyDecision::Evaluated(d) => apply_policy(matrix, r, &base, d),
        _ => base,
    };
    let mut warnings = policy_warnings(&policy_decision);
    warnings.extend(self::warnings(matrix, r, &classification, now));
    let change_window = classification.change_window.as_ref().map(|name| {
        let w = matrix.change_window(name);
        WindowStatus {
            name: name.clone(),
            open_now: w.map(|w| w.contains(now)),
            schedule: w.map(|w| {
                let days: Vec<&str> = w
                    .days
                    .iter()
                    .map(|d| crate::matrix::weekday_name(*d))
                    .collect();
                format!(
                    "{} {}-{} {}",
                    days.join(", "),
                    w.start.format("%H:%M"),
                    w.end.format("%H:%M"),
                    w.timezone
                )
            }),
        }
    });
    if let Some(ws) = &change_window
        && ws.open_now != Some(true)
    {
        warnings.push(Warning {
            code: "outside-change-window",
            message: match &ws.schedule {
                Some(s) => format!(
                    "change window `{}` ({s}) is closed now; execution must wait for it",
                    ws.name
                ),
                None => format!("change window `{}` is not defined in the matrix", ws.name),
            },
        });
    }
    EvidencePack {
        request: r.id.clone(),
        file,
        assembled_at: now,
        requesting_identity: Identity {
            requested_by: r.requested_by.clone(),
            requested_at: r.requested_at,
            roles: matrix
                .roles_of(&r.requested_by)
                .map(|r| r.name.clone())
                .collect(),
        },
        ai_system: r.agent.clone(),
        action: ProposedAction {
            kind: r.action.kind.to_string(),
            tool: r.action.name.clone(),
            target_system: r.action.target.system.clone(),
            target_object: r.action.target.object.clone(),
            parameters: r.action.parameters.clone(),
            amount: r.action.amount.clone(),
        },
        risk_tier: classification.tier,
        risk_tier_name: classification.tier_name.clone(),
        input_summary: r.input_summary.clone(),
        sources: r
            .sources
            .iter()
            .map(|s| SourceView {
                source: s.clone(),
                age_seconds: (now - s.retrieved_at).num_seconds(),
                flags: source_flags(matrix, s, now),
            })
            .collect(),
        diff: r
            .change
            .as_ref()
            .map(|c| diff(&c.before, &c.after))
            .unwrap_or_default(),
        precondition: r
            .change
            .as_ref()
            .map(|c| c.precondition.clone())
            .unwrap_or_default(),
        policy_decision,
        impact: r.impact.clone(),
        alternatives: r.alternatives.clone(),
        rollback: r.rollback.clone(),
        expires_at: r.expires_at,
        expired: now >= r.expires_at,
        risk_analysis: r.risk_analysis.clone(),
        test_result: r.test_result.clone(),
        hazard_check: r.hazard_check.clone(),
        manual_override: r.manual_override.clone(),
        classification,
        change_window,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_cannot_be_fooled_by_dotted_keys_or_retyped_values() {
        let d = diff(
            &json!({"limits": {"max": 100}, "retries": 3}),
            &json!({"limits.max": 100, "limits": {"max": 100000}, "retries": "3"}),
        );
        let lines: Vec<String> = d
            .iter()
            .map(|l| format!("{} {}: {}", l.op, l.path, l.value))
            .collect();
        assert_eq!(
            lines,
            vec![
                "- limits.max: 100",
                "+ limits.max: 100000",
                "- retries: 3",
                "+ retries: \"3\"",
                "+ [\"limits.max\"]: 100",
            ]
        );
    }

    #[test]
    fn diff_marks_changed_added_removed() {
        let d = diff(
            &json!({"stage": "proposal", "owner": "ravi", "old": 1}),
            &json!({"stage": "won", "owner": "ravi", "new": 2}),
        );
        let ops: Vec<(char, &str)> = d.iter().map(|l| (l.op, l.path.as_str())).collect();
        assert_eq!(
            ops,
            vec![
                ('-', "stage"),
                ('+', "stage"),
                (' ', "owner"),
                ('-', "old"),
                ('+', "new")
            ]
        );
    }
}
