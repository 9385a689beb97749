//! Replay: a request's outcome as recorded, in a form the workflow engine's
//! recomputation (`workflow::recorded::replay`) gives too, so the two can be compared.

use serde::Serialize;
use serde_json::Value as Json;

use super::Event;
use crate::evidence::{EvidencePack, PolicyDecision};
use crate::workflow::types;

/// What decided a request, in a form both the record and a re-evaluation give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Outcome {
    pub tier: u64,
    /// `allowed`, `denied`, `failed` or `not_evaluated`.
    pub policy: String,
    pub deny: Vec<String>,
    pub warn: Vec<String>,
    pub escalate: Vec<String>,
}

fn rules(v: Option<&Json>, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .and_then(|p| p.get(key))
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.get("rule").and_then(Json::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The outcome the events recorded (`classified` and `policy_checked`).
#[must_use]
pub fn recorded<E: std::borrow::Borrow<Event>>(events: &[E]) -> Option<Outcome> {
    let find = |kind: &str| {
        events
            .iter()
            .map(std::borrow::Borrow::borrow)
            .find(|e: &&Event| e.kind == kind)
    };
    let classified = find(types::CLASSIFIED)?;
    let checked = find(types::POLICY_CHECKED)?;
    let policy = checked.fields.get("policy");
    Some(Outcome {
        tier: classified.fields.get("tier").and_then(Json::as_u64)?,
        policy: checked.field_str("decision")?.to_owned(),
        deny: rules(policy, "deny"),
        warn: rules(policy, "warn"),
        escalate: rules(policy, "escalate"),
    })
}

/// The outcome of the policies' decision `d` on a request of `tier` (`None`: no policy
/// set; `Some(Err)`: the policies failed), as [`of_pack`] gives it for a pack.
#[must_use]
pub fn of_decision(tier: u8, d: Option<Result<&crate::policy::Decision, ()>>) -> Outcome {
    let (policy, json) = match d {
        Some(Ok(d)) => (
            if d.allowed { "allowed" } else { "denied" },
            serde_json::to_value(d).ok(),
        ),
        Some(Err(())) => ("failed", None),
        None => ("not_evaluated", None),
    };
    Outcome {
        tier: u64::from(tier),
        policy: policy.to_owned(),
        deny: rules(json.as_ref(), "deny"),
        warn: rules(json.as_ref(), "warn"),
        escalate: rules(json.as_ref(), "escalate"),
    }
}

/// The outcome of a freshly assembled pack.
#[must_use]
pub fn of_pack(pack: &EvidencePack) -> Outcome {
    let (policy, json) = match &pack.policy_decision {
        PolicyDecision::Evaluated(d) => (
            if d.allowed { "allowed" } else { "denied" },
            serde_json::to_value(d).ok(),
        ),
        PolicyDecision::Failed { .. } => ("failed", None),
        PolicyDecision::NotEvaluated { .. } => ("not_evaluated", None),
    };
    Outcome {
        tier: u64::from(pack.classification.tier),
        policy: policy.to_owned(),
        deny: rules(json.as_ref(), "deny"),
        warn: rules(json.as_ref(), "warn"),
        escalate: rules(json.as_ref(), "escalate"),
    }
}
