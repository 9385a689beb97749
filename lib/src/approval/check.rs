//! `hitl check`: an approval file checked offline, from the file and the signer files
//! alone (docs/approvals.md). Every signature must verify and be trusted now, the
//! statement's quorum met by distinct signers who each signed the scope, the scope must
//! cover what the caller is about to do, and now must fall inside the window (and the
//! change window). Each refusal has its own [`Refusal`] and exit code.

use chrono::{DateTime, Utc};

use super::{ApprovalFile, Predicate, Scope, Signs, Statement, WindowSchedule};
use crate::signing::{AllowedSigners, RevokedSigners};

/// Why an approval does not allow the action. `exit_code` is what `hitl check` exits
/// with (docs/approvals.md lists them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{file}` is not an approval file: {why}")]
    Malformed { file: String, why: String },
    #[error("a signature of `{file}` does not verify: {why}")]
    Signature { file: String, why: String },
    #[error("`{file}` is signed by a key not trusted now: {why}")]
    Untrusted { file: String, why: String },
    #[error("`{file}` does not carry its quorum: {why}")]
    Quorum { file: String, why: String },
    #[error("the approval is for action `{approved}`, not `{asked}`")]
    Action { approved: String, asked: String },
    #[error("the approval is for target `{approved}`, not `{asked}`")]
    Target { approved: String, asked: String },
    #[error("the approval does not cover {asked}: {why}")]
    Amount { asked: String, why: String },
    #[error("the parameters' digest is `{asked}`, the approval's is `{approved}`")]
    Parameters { approved: String, asked: String },
    #[error("the approval is not valid before {not_before}")]
    NotYetValid { not_before: String },
    #[error("the approval expired at {expires_at}")]
    Expired { expires_at: String },
    #[error("change window `{window}` ({schedule}) is closed now")]
    ChangeWindow { window: String, schedule: String },
    #[error("in the audit, {why}")]
    NotApproved { why: String },
    #[error("the approval of `{request}` was spent already (by {by}): it is single-use")]
    Spent { request: String, by: String },
    #[error("the approval of `{request}` was revoked by {by}")]
    Revoked { request: String, by: String },
    #[error("`{request}` is human-supervised: {why}")]
    Operator { request: String, why: String },
    /// `exec`: the proposal's `change.precondition` does not find the world in the
    /// approved `change.before` state.
    #[error("the precondition of `{request}` does not hold: {why}")]
    Precondition { request: String, why: String },
}

impl Refusal {
    /// The exit code of `hitl check` for this refusal.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Malformed { .. } => 10,
            Self::Signature { .. } => 11,
            Self::Untrusted { .. } => 12,
            Self::Quorum { .. } => 13,
            Self::Action { .. } => 14,
            Self::Target { .. } => 15,
            Self::Amount { .. } => 16,
            Self::Parameters { .. } => 17,
            Self::NotYetValid { .. } => 18,
            Self::Expired { .. } => 19,
            Self::ChangeWindow { .. } => 20,
            Self::NotApproved { .. } => 21,
            Self::Spent { .. } => 22,
            Self::Revoked { .. } => 23,
            Self::Operator { .. } => 24,
            Self::Precondition { .. } => 29,
        }
    }

    /// The refusal's name, for `--format json`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::Signature { .. } => "bad-signature",
            Self::Untrusted { .. } => "untrusted-signer",
            Self::Quorum { .. } => "no-quorum",
            Self::Action { .. } => "wrong-action",
            Self::Target { .. } => "wrong-target",
            Self::Amount { .. } => "over-amount",
            Self::Parameters { .. } => "wrong-parameters",
            Self::NotYetValid { .. } => "not-yet-valid",
            Self::Expired { .. } => "expired",
            Self::ChangeWindow { .. } => "outside-change-window",
            Self::NotApproved { .. } => "not-approved",
            Self::Spent { .. } => "spent",
            Self::Revoked { .. } => "revoked",
            Self::Operator { .. } => "no-operator",
            Self::Precondition { .. } => "precondition-failed",
        }
    }
}

/// What the caller is about to do.
#[derive(Debug, Clone, Default)]
pub struct Want<'a> {
    pub action: &'a str,
    /// `SYSTEM/OBJECT`.
    pub target: &'a str,
    /// The amount as written (a decimal number) and its currency.
    pub amount: Option<(&'a str, &'a str)>,
    /// `sha256:HEX` of the parameters ([`super::parameters_digest`]).
    pub parameters: Option<String>,
}

/// An approval file that parsed: the file, its statement and the scope it carries.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub file: ApprovalFile,
    pub statement: Statement,
    pub scope: Scope,
}

impl Parsed {
    /// The request the approval is for.
    #[must_use]
    pub fn request(&self) -> &str {
        &self.scope.request
    }

    #[must_use]
    pub const fn predicate(&self) -> &Predicate {
        &self.statement.predicate
    }
}

/// What passed: the request, the approvers, the window.
#[derive(Debug, Clone)]
pub struct Checked {
    pub parsed: Parsed,
    pub approvers: Vec<String>,
}

/// Parses an approval file (`name` for messages), hostile input: the file, then the
/// statement it holds as a string, then the scope the predicate holds as a string, and
/// checks that they agree with each other.
///
/// # Errors
/// [`Refusal::Malformed`], naming the line, column and field where JSON says so.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, Refusal> {
    let malformed = |why: String| Refusal::Malformed {
        file: name.to_owned(),
        why,
    };
    let file: ApprovalFile = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("line {}, column {}: {e}", e.line(), e.column())))?;
    let statement: Statement = serde_json::from_str(&file.statement).map_err(|e| {
        malformed(format!(
            "its `statement`, line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let scope: Scope = serde_json::from_str(&statement.predicate.scope).map_err(|e| {
        malformed(format!(
            "its `statement.predicate.scope`, column {}: {e}",
            e.column()
        ))
    })?;
    // Exactly the bytes hitl writes: an edit of any byte (blanks, order, escapes) is
    // refused, whether or not a signature covers it.
    if file.to_bytes() != bytes {
        return Err(malformed(
            "it is not byte for byte the file hitl wrote (edited, reordered or re-encoded)"
                .to_owned(),
        ));
    }
    if serde_json::to_string_pretty(&statement).ok().as_deref() != Some(file.statement.as_str()) {
        return Err(malformed(
            "its `statement` is not byte for byte the statement hitl wrote".to_owned(),
        ));
    }
    if String::from_utf8(scope.to_bytes()).ok().as_deref()
        != Some(statement.predicate.scope.as_str())
    {
        return Err(malformed(
            "its scope is not byte for byte the scope hitl wrote".to_owned(),
        ));
    }
    // Each signature armored exactly as hitl writes it (64-column base64, LF): the file
    // is byte for byte the one written, signatures included.
    for (n, sig) in file.signatures.iter().enumerate() {
        if crate::signing::normalize_armor(&sig.signature)
            .ok()
            .as_deref()
            != Some(sig.signature.as_str())
        {
            return Err(malformed(format!(
                "`signatures[{n}]` is not armored as hitl writes it"
            )));
        }
    }
    let p = &statement.predicate;
    let differs =
        |field: &str| malformed(format!("`predicate.{field}` differs from the signed scope"));
    if statement.kind != super::STATEMENT_TYPE {
        return Err(malformed(format!(
            "`statement._type` is `{}`, not `{}`",
            statement.kind,
            super::STATEMENT_TYPE
        )));
    }
    if statement.predicate_type != super::PREDICATE_TYPE {
        return Err(malformed(format!(
            "`statement.predicateType` is `{}`, not `{}`",
            statement.predicate_type,
            super::PREDICATE_TYPE
        )));
    }
    if scope.kind != super::SCOPE_TYPE || !scope.single_use || !p.single_use {
        return Err(malformed(
            "the scope is not a single-use hitl approval scope".to_owned(),
        ));
    }
    if p.action != scope.action {
        return Err(differs("action"));
    }
    if p.target != scope.target {
        return Err(differs("target"));
    }
    if p.parameters != scope.parameters {
        return Err(differs("parameters"));
    }
    if p.amount != scope.amount {
        return Err(differs("amount"));
    }
    if p.supervised != scope.supervised {
        return Err(differs("supervised"));
    }
    if p.approvals_required != scope.approvals_required {
        return Err(differs("approvals_required"));
    }
    if p.change_window != scope.change_window {
        return Err(differs("change_window"));
    }
    let digest = scope.proposal.strip_prefix("sha256:").unwrap_or_default();
    let named = format!("hitl-request:{}@v{}", scope.request, scope.version);
    match statement.subject.as_slice() {
        [s] if s.name == named && s.digest.get("sha256").map(String::as_str) == Some(digest) => {}
        _ => {
            return Err(malformed(format!(
                "`statement.subject` must be the one request `{named}` with the scope's proposal digest"
            )));
        }
    }
    Ok(Parsed {
        file,
        statement,
        scope,
    })
}

/// Checks an approval file against the signer files at `now`, for `want`.
///
/// # Errors
/// The first [`Refusal`] that applies, in the order of docs/approvals.md.
pub fn check(
    name: &str,
    bytes: &[u8],
    allowed: &AllowedSigners,
    revoked: &RevokedSigners,
    want: &Want<'_>,
    now: DateTime<Utc>,
) -> Result<Checked, Refusal> {
    let parsed = parse(name, bytes)?;
    let approvers = signatures(name, &parsed, allowed, revoked, now)?;
    scope_covers(&parsed, want)?;
    window(&parsed.statement.predicate, &parsed.scope, now)?;
    Ok(Checked { parsed, approvers })
}

/// Every signature verifies over the bytes it names, by the key it names, trusted now
/// for its principal; the scope signers are exactly the listed approvers, each once,
/// at least the quorum; the final approver (the last listed) signs the statement.
fn signatures(
    name: &str,
    parsed: &Parsed,
    allowed: &AllowedSigners,
    revoked: &RevokedSigners,
    now: DateTime<Utc>,
) -> Result<Vec<String>, Refusal> {
    let p = parsed.predicate();
    let quorum = |why: String| Refusal::Quorum {
        file: name.to_owned(),
        why,
    };
    let scope = p.scope.as_bytes();
    let statement = parsed.file.statement.as_bytes();
    let mut scope_signers: Vec<&str> = Vec::new();
    let mut statement_signers: Vec<&str> = Vec::new();
    for (n, s) in parsed.file.signatures.iter().enumerate() {
        let msg = match s.signs {
            Signs::Scope => scope,
            Signs::Statement => statement,
        };
        let key = crate::signing::verify(&s.signature, super::NAMESPACE, msg).map_err(|e| {
            Refusal::Signature {
                file: name.to_owned(),
                why: format!("`signatures[{n}]` ({}): {e}", s.principal),
            }
        })?;
        let fp = crate::signing::fingerprint(&key);
        if fp != s.key {
            return Err(Refusal::Signature {
                file: name.to_owned(),
                why: format!("`signatures[{n}]` names key {} but is by {fp}", s.key),
            });
        }
        crate::signing::trusted_principal(
            allowed,
            revoked,
            &key,
            Some(&s.principal),
            super::NAMESPACE,
            now,
        )
        .map_err(|u| Refusal::Untrusted {
            file: name.to_owned(),
            why: format!("`signatures[{n}]` ({}): {}", s.principal, u.message),
        })?;
        let list = match s.signs {
            Signs::Scope => &mut scope_signers,
            Signs::Statement => &mut statement_signers,
        };
        if list.contains(&s.principal.as_str()) {
            return Err(quorum(format!(
                "`{}` signs the {} twice; one principal counts once",
                s.principal,
                match s.signs {
                    Signs::Scope => "scope",
                    Signs::Statement => "statement",
                }
            )));
        }
        list.push(&s.principal);
    }
    let listed: Vec<&str> = p.approvers.iter().map(|a| a.principal.as_str()).collect();
    // In the order hitl writes them: each approver's scope signature in the order they
    // are listed, then the final approver's signature of the statement.
    let order: Vec<(&str, Signs)> = parsed
        .file
        .signatures
        .iter()
        .map(|s| (s.principal.as_str(), s.signs))
        .collect();
    let expected: Vec<(&str, Signs)> = listed
        .iter()
        .map(|a| (*a, Signs::Scope))
        .chain(listed.last().map(|a| (*a, Signs::Statement)))
        .collect();
    if !order.is_empty() && order.len() == expected.len() && order != expected {
        return Err(quorum(
            "the signatures are not in the order of the approvers, the statement's last".to_owned(),
        ));
    }
    for (i, a) in listed.iter().enumerate() {
        if listed[..i].contains(a) {
            return Err(quorum(format!("`{a}` is listed twice among the approvers")));
        }
    }
    let mut sorted_signers = scope_signers.clone();
    sorted_signers.sort_unstable();
    let mut sorted_listed = listed.clone();
    sorted_listed.sort_unstable();
    if sorted_signers != sorted_listed {
        return Err(quorum(format!(
            "the scope is signed by {} but the statement lists the approvers {}",
            show(&scope_signers),
            show(&listed)
        )));
    }
    if let Some(a) = p.approvers.iter().find(|a| {
        parsed
            .file
            .signatures
            .iter()
            .any(|s| s.principal == a.principal && s.key != a.key)
    }) {
        return Err(quorum(format!(
            "`{}` signs with another key than the one the statement lists",
            a.principal
        )));
    }
    if listed.len() < usize::from(p.approvals_required) {
        return Err(quorum(format!(
            "{} approver(s) of the {} required",
            listed.len(),
            p.approvals_required
        )));
    }
    match (statement_signers.as_slice(), listed.last()) {
        ([one], Some(last)) if one == last => {}
        _ => {
            return Err(quorum(format!(
                "the statement must be signed by its final approver {} alone, not by {}",
                listed.last().map_or("(none)", |l| l),
                show(&statement_signers)
            )));
        }
    }
    Ok(listed.into_iter().map(str::to_owned).collect())
}

fn show(list: &[&str]) -> String {
    if list.is_empty() {
        "nobody".to_owned()
    } else {
        list.iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The scope covers the action: same action, same target, an amount at most the
/// ceiling in the same currency, the same parameters when given.
fn scope_covers(parsed: &Parsed, want: &Want<'_>) -> Result<(), Refusal> {
    let s = &parsed.scope;
    if want.action != s.action.name {
        return Err(Refusal::Action {
            approved: s.action.name.clone(),
            asked: want.action.to_owned(),
        });
    }
    let target = format!("{}/{}", s.target.system, s.target.object);
    if want.target != target {
        return Err(Refusal::Target {
            approved: target,
            asked: want.target.to_owned(),
        });
    }
    match (want.amount, &s.amount) {
        (Some((value, currency)), Some(c)) => {
            let asked = format!("{value} {currency}");
            if c.currency != currency {
                return Err(Refusal::Amount {
                    asked,
                    why: format!("it approves {} {}", c.ceiling, c.currency),
                });
            }
            match decimal_le(value, &c.ceiling) {
                Some(true) => {}
                Some(false) => {
                    return Err(Refusal::Amount {
                        asked,
                        why: format!("it approves at most {} {}", c.ceiling, c.currency),
                    });
                }
                None => {
                    return Err(Refusal::Amount {
                        asked,
                        why: "write the amount as a plain decimal number (`180`, `99.50`)"
                            .to_owned(),
                    });
                }
            }
        }
        (Some((value, currency)), None) => {
            return Err(Refusal::Amount {
                asked: format!("{value} {currency}"),
                why: "it approves no amount".to_owned(),
            });
        }
        // An approval with a ceiling is checked against the amount about to move: the
        // host must say it.
        (None, Some(c)) => {
            return Err(Refusal::Amount {
                asked: "an unnamed amount".to_owned(),
                why: format!(
                    "it approves at most {} {}: pass `--amount N --currency {}`",
                    c.ceiling, c.currency, c.currency
                ),
            });
        }
        (None, None) => {}
    }
    if let Some(digest) = &want.parameters
        && *digest != s.parameters
    {
        return Err(Refusal::Parameters {
            approved: s.parameters.clone(),
            asked: digest.clone(),
        });
    }
    Ok(())
}

/// Now is within the approval's window and, when it has one, its change window.
fn window(p: &Predicate, scope: &Scope, now: DateTime<Utc>) -> Result<(), Refusal> {
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| Refusal::Malformed {
                file: "the statement".to_owned(),
                why: format!("`{s}` is not an RFC 3339 time"),
            })
    };
    let (from, until) = (at(&p.not_before)?, at(&p.expires_at)?);
    // The window the scope allows: from the final approval (the last approver's
    // decision), for at most `valid_for_seconds`, never past the proposal's expiry.
    let bad = |why: &str| Refusal::Malformed {
        file: "the statement".to_owned(),
        why: why.to_owned(),
    };
    let last = p.approvers.last().map(|a| at(&a.decided_at)).transpose()?;
    if last != Some(from) {
        return Err(bad("its window does not start at the final approval"));
    }
    if until > at(&scope.expires_at)? {
        return Err(bad("its window ends after the proposal expires"));
    }
    if let Some(secs) = scope.valid_for_seconds
        && (until - from).num_seconds() > i64::try_from(secs).unwrap_or(i64::MAX)
    {
        return Err(bad(
            "its window is longer than the tier's `approval_valid_for`",
        ));
    }
    if now < from {
        return Err(Refusal::NotYetValid {
            not_before: p.not_before.clone(),
        });
    }
    if now >= until {
        return Err(Refusal::Expired {
            expires_at: p.expires_at.clone(),
        });
    }
    if let Some(w) = &p.change_window
        && !open(w, now)
    {
        return Err(Refusal::ChangeWindow {
            window: w.name.clone(),
            schedule: format!("{} {} {}", w.days.join(", "), w.hours, w.timezone),
        });
    }
    Ok(())
}

/// Whether the schedule is open at `now`; an unreadable one is closed.
fn open(w: &WindowSchedule, now: DateTime<Utc>) -> bool {
    use chrono::{Datelike, NaiveTime, Timelike};
    let Ok(tz) = w.timezone.parse::<chrono_tz::Tz>() else {
        return false;
    };
    let Some((start, end)) = w.hours.split_once('-') else {
        return false;
    };
    let (Ok(start), Ok(end)) = (
        NaiveTime::parse_from_str(start, "%H:%M"),
        NaiveTime::parse_from_str(end, "%H:%M"),
    ) else {
        return false;
    };
    let local = now.with_timezone(&tz);
    let day = crate::matrix::weekday_name(local.weekday());
    let time = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second());
    w.days.iter().any(|d| d == day) && time.is_some_and(|t| t >= start && t < end)
}

/// Whether the decimal `a` is at most the decimal `b`, compared exactly (no floating
/// point); `None` when either is not a plain non-negative decimal (`180`, `99.50`).
#[must_use]
pub fn decimal_le(a: &str, b: &str) -> Option<bool> {
    fn parts(s: &str) -> Option<(String, String)> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let ok = !int.is_empty()
            && int.bytes().all(|c| c.is_ascii_digit())
            && frac.bytes().all(|c| c.is_ascii_digit())
            && !(s.contains('.') && frac.is_empty());
        ok.then(|| {
            let int = int.trim_start_matches('0');
            (int.to_owned(), frac.trim_end_matches('0').to_owned())
        })
    }
    let (ai, af) = parts(a)?;
    let (bi, bf) = parts(b)?;
    if ai.len() != bi.len() {
        return Some(ai.len() < bi.len());
    }
    if ai != bi {
        return Some(ai < bi);
    }
    let width = af.len().max(bf.len());
    let pad = |f: &str| format!("{f:0<width$}");
    Some(pad(&af) <= pad(&bf))
}

#[cfg(test)]
mod tests {
    use super::decimal_le;

    #[test]
    fn decimals_compare_exactly() {
        for (a, b, le) in [
            ("180", "180", true),
            ("180.00", "180", true),
            ("180.000000000000001", "180", false),
            ("179.99", "180", true),
            ("0180", "180", true),
            ("1000", "999.99", false),
            ("0", "0.5", true),
        ] {
            assert_eq!(decimal_le(a, b), Some(le), "{a} <= {b}");
        }
        for bad in ["", "-1", "1e3", "NaN", "inf", "1.", ".5", "1,5", " 1"] {
            assert_eq!(decimal_le(bad, "180"), None, "{bad:?}");
        }
    }
}
