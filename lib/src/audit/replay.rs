//! Replay: a request's outcome as recorded, and the same outcome recomputed with the
//! matrix and policies of the recorded versions, found in git history.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{ObjectType, Oid, Sort, Tree};
use serde::Serialize;
use serde_json::Value as Json;

use super::store::AuditRepo;
use super::{AuditError, Event, sha256_hex};
use crate::evidence::{EvidencePack, PolicyDecision};
use crate::policy::PolicySet;
use crate::workflow::types;

/// What decided a request, in a form both the record and a re-evaluation give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
pub fn recorded(events: &[Event]) -> Option<Outcome> {
    let classified = events.iter().find(|e| e.kind == types::CLASSIFIED)?;
    let checked = events.iter().find(|e| e.kind == types::POLICY_CHECKED)?;
    let policy = checked.fields.get("policy");
    Some(Outcome {
        tier: classified.fields.get("tier").and_then(Json::as_u64)?,
        policy: checked.field_str("decision")?.to_owned(),
        deny: rules(policy, "deny"),
        warn: rules(policy, "warn"),
        escalate: rules(policy, "escalate"),
    })
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

/// The `now` the policies saw when the request was checked.
#[must_use]
pub fn checked_at(events: &[Event]) -> Option<DateTime<Utc>> {
    let e = events.iter().find(|e| e.kind == types::POLICY_CHECKED)?;
    DateTime::parse_from_rfc3339(&e.at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn write_tree(repo: &AuditRepo, tree: &Tree<'_>, dest: &Path) -> Result<(), AuditError> {
    let err = |e: std::io::Error| AuditError::Write {
        path: dest.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(dest).map_err(err)?;
    for entry in tree.iter() {
        let name = entry.name().unwrap_or_default();
        if name.is_empty() || name.contains(['/', '\\']) || name == ".." || name == "." {
            continue;
        }
        match entry.kind() {
            Some(ObjectType::Tree) => {
                write_tree(repo, &repo.repo.find_tree(entry.id())?, &dest.join(name))?;
            }
            Some(ObjectType::Blob) => {
                std::fs::write(dest.join(name), repo.repo.find_blob(entry.id())?.content())
                    .map_err(err)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Finds, newest first, a commit whose `approval-matrix.yaml` has `matrix_digest` and
/// whose policy set has `policies_digest`, and writes that matrix, `hitl.toml` and
/// `policies/` into `dest` (an empty folder). Returns the commit.
///
/// # Errors
/// Git or write errors.
pub fn materialize(
    repo: &AuditRepo,
    matrix_digest: &str,
    policies_digest: &str,
    dest: &Path,
) -> Result<Option<Oid>, AuditError> {
    let Some(head) = repo.head_for_reading()? else {
        return Ok(None);
    };
    let mut walk = repo.repo.revwalk()?;
    walk.push(head.id())?;
    walk.set_sorting(Sort::TOPOLOGICAL)?;
    let mut matrix_ok: HashMap<Oid, bool> = HashMap::new();
    let mut policies_ok: HashMap<Option<Oid>, bool> = HashMap::new();
    for oid in walk {
        let oid = oid?;
        let tree = repo.repo.find_commit(oid)?.tree()?;
        let Ok(m) = tree.get_path(Path::new(&repo.git_path(crate::workspace::MATRIX_FILE))) else {
            continue;
        };
        let fits = *matrix_ok.entry(m.id()).or_insert_with(|| {
            repo.repo
                .find_blob(m.id())
                .is_ok_and(|b| format!("sha256:{}", sha256_hex(b.content())) == matrix_digest)
        });
        if !fits {
            continue;
        }
        let policies = repo.subtree(&tree, crate::workspace::POLICIES_DIR)?;
        let key = policies.as_ref().map(Tree::id);
        if policies_ok.get(&key) == Some(&false) {
            continue;
        }
        let _ = std::fs::remove_dir_all(dest);
        if let Some(p) = &policies {
            write_tree(repo, p, &dest.join(crate::workspace::POLICIES_DIR))?;
        }
        let err = |e: std::io::Error| AuditError::Write {
            path: dest.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(dest).map_err(err)?;
        std::fs::write(
            dest.join(crate::workspace::MATRIX_FILE),
            repo.repo.find_blob(m.id())?.content(),
        )
        .map_err(err)?;
        if let Some(settings) = repo.read(&tree, crate::workspace::SETTINGS_FILE)? {
            std::fs::write(dest.join(crate::workspace::SETTINGS_FILE), settings).map_err(err)?;
        }
        let digest = match PolicySet::load(dest) {
            Ok(Some(set)) => set.digest().to_owned(),
            Ok(None) => "none".to_owned(),
            Err(_) => "unloadable".to_owned(),
        };
        let same = digest == policies_digest;
        policies_ok.insert(key, same);
        if same {
            return Ok(Some(oid));
        }
    }
    Ok(None)
}
