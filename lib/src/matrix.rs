//! The approval matrix (`approval-matrix.yaml`): tiers, classification rules, routes,
//! roles, change windows and reason codes. Maintained by humans, but loaded with the
//! same hostile-input care as proposals.

use std::collections::BTreeMap;

use std::path::Path;
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use serde::Serialize;

use crate::decode::{Decoder, MapReader};
use crate::diag::{Diagnostics, Pos};
use crate::request::{ActionType, Amount, EVIDENCE_FIELDS, decode_amount, is_valid_principal};
use crate::yaml::{self, Kind, Limits, Node};

crate::words! {
    /// The execution rule of a tier (the article's "Execution rule" column).
    pub enum Execution {
        None = "none",
        HumanSend = "human-send",
        ExecuteAfterApproval = "execute-after-approval",
        ApprovalPlusThreshold = "approval-plus-threshold",
        DualApprovalChangeWindow = "dual-approval-change-window",
        HumanSupervised = "human-supervised",
    }
}

/// What happens to a request nobody decided on within `pending_timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Expire,
    Escalate { role: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tier {
    pub tier: u8,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    pub approvals: u8,
    pub approver_roles: Vec<String>,
    pub distinct_roles: bool,
    pub self_approval: bool,
    /// Several requests of this tier may be approved by one `hitl approve ID ID...`
    /// (each still its own signed decision); default false.
    pub batchable: bool,
    pub evidence: Vec<String>,
    pub execution: Execution,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_window: Option<String>,
    pub rollback_required: bool,
    /// `hitl rollback` of this tier needs its own approval (`rollback_approved`), by
    /// the request's quorum of eligible approvers; default true from tier 2 on.
    pub rollback_approval: bool,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub pending_timeout: Option<Duration>,
    pub on_timeout: OnTimeout,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub approval_valid_for: Option<Duration>,
    pub sample_rate: f64,
    /// The roles that give the extra approval a request drawn by `sample_rate` needs
    /// (the sampled review); a sampled request with none of them is blocked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sample_reviewers: Vec<String>,
    #[serde(skip)]
    pub pos: Pos,
}

/// Conditions of a rule or route; all present conditions must hold, and a list inside
/// one condition means any of its entries.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Conditions {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub action_type: Vec<ActionType>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_system: Vec<String>,
    /// Tool names; `*` matches any run of characters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub action_name: Vec<String>,
    /// Holds when the action's amount is above this value. An amount in another
    /// currency cannot be compared and counts as above (the higher tier wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_above: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub id: String,
    pub when: Conditions,
    pub tier: u8,
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub workflow: String,
    pub when: Conditions,
    pub approvers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_window: Option<String>,
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Role {
    pub name: String,
    pub members: Vec<String>,
    /// Max amount per currency. A role without limits has no amount ceiling; a role
    /// with limits has no authority in a currency it does not list.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalates_to: Option<String>,
    #[serde(skip)]
    pub pos: Pos,
}

impl Role {
    /// Whether this role may approve `amount` on its own authority.
    #[must_use]
    pub fn covers(&self, amount: Option<&Amount>) -> bool {
        match amount {
            None => true,
            Some(_) if self.limits.is_empty() => true,
            Some(a) => self
                .limits
                .get(&a.currency)
                .is_some_and(|max| a.value <= *max),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeWindow {
    pub name: String,
    pub timezone: String,
    #[serde(skip)]
    pub tz: chrono_tz::Tz,
    #[serde(serialize_with = "ser_days")]
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
    #[serde(skip)]
    pub pos: Pos,
}

impl ChangeWindow {
    /// Whether `at` falls inside the window, in the window's own time zone.
    #[must_use]
    pub fn contains(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        use chrono::{Datelike, Timelike};
        let local = at.with_timezone(&self.tz);
        let time = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second());
        self.days.contains(&local.weekday())
            && time.is_some_and(|t| t >= self.start && t < self.end)
    }
}

fn ser_days<S: serde::Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(days.iter().map(|d| weekday_name(*d)))
}

#[must_use]
pub const fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReasonCodes {
    pub reject: Vec<String>,
    pub request_changes: Vec<String>,
}

/// Who governs the trust configuration (this matrix, `policies/`, `hitl.toml`,
/// `allowed_signers`, `revoked_signers`) and who submits proposals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Governance {
    /// The principals whose signed commits may change the trust configuration. Without
    /// any, the configuration is fixed by the root of trust: every later change is a
    /// `config-unauthorized` problem.
    pub admins: Vec<String>,
    /// The principals that submit proposals (agents). They may never approve, reject
    /// or administer.
    pub agents: Vec<String>,
    /// The person who owns each agent (`agent_owners`): they count as the requester of
    /// whatever the agent submits, so they never approve it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub agent_owners: BTreeMap<String, String>,
    /// Where the section starts (1:1 without one).
    #[serde(skip)]
    pub pos: Pos,
}

impl Default for Governance {
    fn default() -> Self {
        Self {
            admins: Vec::new(),
            agents: Vec::new(),
            agent_owners: BTreeMap::new(),
            pos: Pos::new(1, 1),
        }
    }
}

impl Governance {
    #[must_use]
    pub fn is_admin(&self, principal: &str) -> bool {
        self.admins.iter().any(|a| a == principal)
    }

    #[must_use]
    pub fn is_agent(&self, principal: &str) -> bool {
        self.agents.iter().any(|a| a == principal)
    }

    /// The owner of agent `agent`, when the matrix names one.
    #[must_use]
    pub fn owner_of(&self, agent: &str) -> Option<&str> {
        self.agent_owners.get(agent).map(String::as_str)
    }
}

/// Break-glass (`break_glass`): who may override a pending request in an emergency,
/// and the review that override owes afterwards.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakGlass {
    /// The role whose members may override.
    pub role: String,
    /// How many after-the-fact approvals the override owes, from distinct principals.
    pub review_approvals: u8,
    /// The roles those approvals come from (any of them).
    pub review_roles: Vec<String>,
    /// Within how long of the override.
    #[serde(with = "opt_duration")]
    pub review_within: Option<Duration>,
    #[serde(skip)]
    pub pos: Pos,
}

/// The whole approval matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    pub version: u64,
    pub systems: Vec<String>,
    pub default_tier: u8,
    #[serde(with = "opt_duration")]
    pub max_source_age: Option<Duration>,
    pub tiers: Vec<Tier>,
    pub rules: Vec<Rule>,
    pub routes: Vec<Route>,
    pub roles: Vec<Role>,
    pub change_windows: Vec<ChangeWindow>,
    pub reason_codes: ReasonCodes,
    pub governance: Governance,
    /// No override at all without one.
    pub break_glass: Option<BreakGlass>,
}

impl Matrix {
    /// The tier with number `n`; every tier 0-5 exists once the matrix has loaded.
    #[must_use]
    pub fn tier(&self, n: u8) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.tier == n)
    }

    #[must_use]
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    #[must_use]
    pub fn change_window(&self, name: &str) -> Option<&ChangeWindow> {
        self.change_windows.iter().find(|w| w.name == name)
    }

    /// The roles `principal` is a member of.
    pub fn roles_of<'a>(&'a self, principal: &'a str) -> impl Iterator<Item = &'a Role> + 'a {
        self.roles
            .iter()
            .filter(move |r| r.members.iter().any(|m| m == principal))
    }
}

mod opt_duration {
    use std::time::Duration;

    #[allow(clippy::ref_option, reason = "serde's `with` passes a reference")]
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// The highest tier.
pub const MAX_TIER: u8 = 5;

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.')
        })
}

/// Parses and validates the matrix.
///
/// # Errors
/// Every structural problem of the file, each with line, column and field path.
/// References to roles and windows that do not exist are not errors here: `hitl lint`
/// reports them as anti-patterns, and classification treats such a role as having no
/// members (nobody can approve: fail closed).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Matrix, Diagnostics> {
    let (root, text) = yaml::parse(path, bytes, Limits::MATRIX)?;
    let mut d = Decoder::new(path, &text);
    let m = decode_matrix(&mut d, &root);
    d.finish(m)
}

const TOP: [&str; 13] = [
    "version",
    "systems",
    "default_tier",
    "max_source_age",
    "tiers",
    "rules",
    "routes",
    "roles",
    "change_windows",
    "reason_codes",
    "governance",
    "break_glass",
    "$schema",
];

fn decode_matrix(d: &mut Decoder<'_>, root: &Node) -> Option<Matrix> {
    let mut m = d.map(root, "")?;
    let _ = m.get("$schema");
    let version = m.required(d, "version").and_then(|n| {
        let v = d.uint(n, "version", 1)?;
        if v == 1 {
            Some(v)
        } else {
            d.error(n.pos, "version", "only version 1 is supported");
            None
        }
    });
    let systems = m.required(d, "systems").and_then(|n| {
        let list = d.list(n, "systems", |d, n, p| {
            d.token(n, p, "a name matching `[a-z0-9._-]+`", is_name)
        })?;
        if list.is_empty() {
            d.error(n.pos, "systems", "must name at least one target system");
            return None;
        }
        Some(list)
    });
    let known_systems: Vec<String> = systems.clone().unwrap_or_default();
    let default_tier = m.required(d, "default_tier").and_then(|n| {
        let t = d.uint(n, "default_tier", u64::from(MAX_TIER))?;
        if t == 0 {
            d.error_hint(
                n.pos,
                "default_tier",
                "the default tier must not be 0",
                Some(
                    "an action no rule matches is unknown; classify it conservatively (3 is usual)"
                        .to_owned(),
                ),
            );
            return None;
        }
        u8::try_from(t).ok()
    });
    let max_source_age = match m.optional("max_source_age") {
        Some(n) => d.duration(n, "max_source_age").map(Some),
        None => Some(None),
    };
    let tiers = m.required(d, "tiers").and_then(|n| decode_tiers(d, n));
    let rules = m.required(d, "rules").and_then(|n| {
        let mut ids = std::collections::HashSet::new();
        d.list(n, "rules", |d, n, p| {
            let rule = decode_rule(d, n, p, &known_systems)?;
            if !ids.insert(rule.id.clone()) {
                d.error(
                    n.pos,
                    &format!("{p}.id"),
                    format!("duplicate rule id `{}`", rule.id),
                );
                return None;
            }
            Some(rule)
        })
    });
    let routes = match m.optional("routes") {
        Some(n) => d.list(n, "routes", |d, n, p| decode_route(d, n, p, &known_systems)),
        None => Some(Vec::new()),
    };
    let roles = m.required(d, "roles").and_then(|n| decode_roles(d, n));
    let change_windows = match m.optional("change_windows") {
        Some(n) => decode_windows(d, n),
        None => Some(Vec::new()),
    };
    let reason_codes = m.required(d, "reason_codes").and_then(|n| {
        let mut r = d.map(n, "reason_codes")?;
        let codes = |d: &mut Decoder<'_>, r: &mut MapReader<'_>, key: &str| {
            let p = r.field(key);
            r.required(d, key).and_then(|n| {
                let list = d.list(n, &p, |d, n, p| {
                    d.token(n, p, "a name matching `[a-z0-9._-]+`", is_name)
                })?;
                if list.is_empty() {
                    d.error(n.pos, &p, "must list at least one reason code");
                    return None;
                }
                Some(list)
            })
        };
        let reject = codes(d, &mut r, "reject");
        let request_changes = codes(d, &mut r, "request_changes");
        r.deny_unknown(d, &["reject", "request_changes"]);
        Some(ReasonCodes {
            reject: reject?,
            request_changes: request_changes?,
        })
    });
    let governance = match m.optional("governance") {
        Some(n) => decode_governance(d, n),
        None => Some(Governance::default()),
    };
    let break_glass = match m.optional("break_glass") {
        Some(n) => decode_break_glass(d, n).map(Some),
        None => Some(None),
    };
    m.deny_unknown(d, &TOP);
    Some(Matrix {
        version: version?,
        systems: systems?,
        default_tier: default_tier?,
        max_source_age: max_source_age?,
        tiers: tiers?,
        rules: rules?,
        routes: routes?,
        roles: roles?,
        change_windows: change_windows?,
        reason_codes: reason_codes?,
        governance: governance?,
        break_glass: break_glass?,
    })
}

/// `break_glass: {role: R, review: {approvals: N, roles: [..], within: 24h}}`.
fn decode_break_glass(d: &mut Decoder<'_>, node: &Node) -> Option<BreakGlass> {
    let mut m = d.map(node, "break_glass")?;
    let role = m
        .required(d, "role")
        .and_then(|n| d.token(n, "break_glass.role", "a role name", is_name));
    let review = m.required(d, "review").and_then(|n| {
        let mut r = d.map(n, "break_glass.review")?;
        let approvals = r.required(d, "approvals").and_then(|n| {
            let v = d.uint(n, "break_glass.review.approvals", 9)?;
            if v == 0 {
                d.error(
                    n.pos,
                    "break_glass.review.approvals",
                    "an override owes at least one review approval",
                );
                return None;
            }
            u8::try_from(v).ok()
        });
        let roles = r.required(d, "roles").and_then(|n| {
            let list = d.list(n, "break_glass.review.roles", |d, n, p| {
                d.token(n, p, "a role name", is_name)
            })?;
            if list.is_empty() {
                d.error(
                    n.pos,
                    "break_glass.review.roles",
                    "must name at least one role",
                );
                return None;
            }
            Some(list)
        });
        let within = r
            .required(d, "within")
            .and_then(|n| d.duration(n, "break_glass.review.within"));
        r.deny_unknown(d, &["approvals", "roles", "within"]);
        Some((approvals?, roles?, within?))
    });
    m.deny_unknown(d, &["role", "review"]);
    let (review_approvals, review_roles, within) = review?;
    Some(BreakGlass {
        role: role?,
        review_approvals,
        review_roles,
        review_within: Some(within),
        pos: node.pos,
    })
}

fn decode_governance(d: &mut Decoder<'_>, node: &Node) -> Option<Governance> {
    let mut m = d.map(node, "governance")?;
    let principals = |d: &mut Decoder<'_>, m: &mut MapReader<'_>, key: &str| {
        let p = m.field(key);
        match m.optional(key) {
            Some(n) => d.list(n, &p, |d, n, p| {
                d.token(
                    n,
                    p,
                    "a principal (no spaces, commas or quotes)",
                    is_valid_principal,
                )
            }),
            None => Some(Vec::new()),
        }
    };
    let admins = principals(d, &mut m, "admins");
    let agents = principals(d, &mut m, "agents");
    let owners = match m.optional("agent_owners") {
        Some(n) => decode_agent_owners(d, n),
        None => Some(Vec::new()),
    };
    m.deny_unknown(d, &["admins", "agents", "agent_owners"]);
    let (admins, agents, owners) = (admins?, agents?, owners?);
    let mut agent_owners = BTreeMap::new();
    let mut ok = true;
    for (agent, owner, pos) in owners {
        let path = format!("governance.agent_owners.{agent}");
        if !agents.contains(&agent) {
            d.error(
                pos,
                &path,
                format!("`{agent}` is not listed in `governance.agents`"),
            );
            ok = false;
        } else if agents.contains(&owner) {
            d.error(
                pos,
                &path,
                format!("the owner `{owner}` is an agent; an agent is owned by a person"),
            );
            ok = false;
        } else {
            agent_owners.insert(agent, owner);
        }
    }
    if !ok {
        return None;
    }
    if let Some(both) = admins.iter().find(|a| agents.contains(a)) {
        d.error(
            node.pos,
            "governance",
            format!("`{both}` is both an admin and an agent; a principal that submits proposals never administers"),
        );
        return None;
    }
    Some(Governance {
        admins,
        agents,
        agent_owners,
        pos: node.pos,
    })
}

/// `governance.agent_owners`: agent principal to owner principal, with where each
/// entry stands.
fn decode_agent_owners(d: &mut Decoder<'_>, node: &Node) -> Option<Vec<(String, String, Pos)>> {
    let mut m = d.map(node, "governance.agent_owners")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (agent, key, value) in m.entries() {
        let path = format!("governance.agent_owners.{agent}");
        if !is_valid_principal(&agent) {
            d.error(
                key.pos,
                &path,
                format!("`{agent}` is not a principal (no spaces, commas or quotes)"),
            );
            ok = false;
            continue;
        }
        match d.token(
            value,
            &path,
            "a principal (no spaces, commas or quotes)",
            is_valid_principal,
        ) {
            Some(owner) => out.push((agent, owner, key.pos)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

const TIER_FIELDS: [&str; 18] = [
    "tier",
    "name",
    "example",
    "approvals",
    "approver_roles",
    "distinct_roles",
    "self_approval",
    "batchable",
    "evidence",
    "execution",
    "change_window",
    "rollback_required",
    "rollback_approval",
    "pending_timeout",
    "on_timeout",
    "approval_valid_for",
    "sample_rate",
    "sample_reviewers",
];

fn decode_tiers(d: &mut Decoder<'_>, node: &Node) -> Option<Vec<Tier>> {
    let tiers = d.list(node, "tiers", decode_tier)?;
    let mut ok = true;
    for n in 0..=MAX_TIER {
        let count = tiers.iter().filter(|t| t.tier == n).count();
        if count != 1 {
            let pos = tiers
                .iter()
                .rev()
                .find(|t| t.tier == n)
                .map_or(node.pos, |t| t.pos);
            let msg = if count == 0 {
                format!("tier {n} is not defined")
            } else {
                format!("tier {n} is defined {count} times")
            };
            d.error_hint(
                pos,
                "tiers",
                msg,
                Some("define each of the tiers 0 to 5 exactly once".to_owned()),
            );
            ok = false;
        }
    }
    ok.then_some(tiers)
}

fn role_name(d: &mut Decoder<'_>, n: &Node, p: &str) -> Option<String> {
    d.token(n, p, "a name matching `[a-z0-9._-]+`", is_name)
}

fn decode_tier(d: &mut Decoder<'_>, node: &Node, path: &str) -> Option<Tier> {
    let mut m = d.map(node, path)?;
    let tier = m.required(d, "tier").and_then(|n| {
        d.uint(n, &m.field("tier"), u64::from(MAX_TIER))
            .and_then(|t| u8::try_from(t).ok())
    });
    let name = m
        .required(d, "name")
        .and_then(|n| d.string(n, &m.field("name")));
    let example = match m.optional("example") {
        Some(n) => d.string(n, &m.field("example")).map(Some),
        None => Some(None),
    };
    let approvals = m.required(d, "approvals").and_then(|n| {
        d.uint(n, &m.field("approvals"), 9)
            .and_then(|v| u8::try_from(v).ok())
    });
    let approver_roles = m
        .required(d, "approver_roles")
        .and_then(|n| d.list(n, &m.field("approver_roles"), role_name));
    let distinct_roles = bool_or(d, &mut m, "distinct_roles", false);
    let self_approval = bool_or(d, &mut m, "self_approval", false);
    let batchable = bool_or(d, &mut m, "batchable", false);
    let evidence = m.required(d, "evidence").and_then(|n| {
        d.list(n, &m.field("evidence"), |d, n, p| {
            let s = d.string(n, p)?;
            if EVIDENCE_FIELDS.contains(&s.as_str()) {
                Some(s)
            } else {
                let hint = crate::decode::suggest(&s, EVIDENCE_FIELDS.iter().copied())
                    .map(|m| format!("did you mean `{m}`?"))
                    .or_else(|| Some(format!("evidence fields: {}", EVIDENCE_FIELDS.join(", "))));
                d.error_hint(n.pos, p, format!("unknown evidence field `{s}`"), hint);
                None
            }
        })
    });
    let execution = m
        .required(d, "execution")
        .and_then(|n| d.word(n, &m.field("execution"), Execution::ALL));
    let change_window = match m.optional("change_window") {
        Some(n) => role_name(d, n, &m.field("change_window")).map(Some),
        None => Some(None),
    };
    let rollback_required = m
        .required(d, "rollback_required")
        .and_then(|n| d.boolean(n, &m.field("rollback_required")));
    // A rollback changes the system again: from tier 2 on it is approved like the
    // action, unless the matrix says otherwise.
    let rollback_approval = bool_or(d, &mut m, "rollback_approval", tier.is_some_and(|t| t >= 2));
    let pending_timeout = match m.optional("pending_timeout") {
        Some(n) => d.duration(n, &m.field("pending_timeout")).map(Some),
        None => Some(None),
    };
    let on_timeout = match m.optional("on_timeout") {
        Some(n) => decode_on_timeout(d, n, &m.field("on_timeout")),
        None => Some(OnTimeout::Expire),
    };
    let approval_valid_for = match m.optional("approval_valid_for") {
        Some(n) => d.duration(n, &m.field("approval_valid_for")).map(Some),
        None => Some(None),
    };
    let sample_rate = match m.optional("sample_rate") {
        Some(n) => {
            let p = m.field("sample_rate");
            d.number(n, &p).and_then(|v| {
                if (0.0..=1.0).contains(&v) {
                    Some(v)
                } else {
                    d.error(n.pos, &p, "must be between 0 and 1");
                    None
                }
            })
        }
        None => Some(0.0),
    };
    let sample_reviewers = match m.optional("sample_reviewers") {
        Some(n) => d.list(n, &m.field("sample_reviewers"), role_name),
        None => Some(Vec::new()),
    };
    m.deny_unknown(d, &TIER_FIELDS);
    Some(Tier {
        tier: tier?,
        name: name?,
        example: example?,
        approvals: approvals?,
        approver_roles: approver_roles?,
        distinct_roles: distinct_roles?,
        self_approval: self_approval?,
        batchable: batchable?,
        evidence: evidence?,
        execution: execution?,
        change_window: change_window?,
        rollback_required: rollback_required?,
        rollback_approval: rollback_approval?,
        pending_timeout: pending_timeout?,
        on_timeout: on_timeout?,
        approval_valid_for: approval_valid_for?,
        sample_rate: sample_rate?,
        sample_reviewers: sample_reviewers?,
        pos: node.pos,
    })
}

fn bool_or(d: &mut Decoder<'_>, m: &mut MapReader<'_>, key: &str, default: bool) -> Option<bool> {
    let p = m.field(key);
    match m.optional(key) {
        Some(n) => d.boolean(n, &p),
        None => Some(default),
    }
}

fn decode_on_timeout(d: &mut Decoder<'_>, node: &Node, path: &str) -> Option<OnTimeout> {
    match &node.kind {
        Kind::Str(s) if s == "expire" => Some(OnTimeout::Expire),
        Kind::Map(_) => {
            let mut m = d.map(node, path)?;
            let role = m
                .required(d, "escalate")
                .and_then(|n| role_name(d, n, &m.field("escalate")));
            m.deny_unknown(d, &["escalate"]);
            Some(OnTimeout::Escalate { role: role? })
        }
        _ => {
            d.error_hint(
                node.pos,
                path,
                "expected `expire` or `{escalate: ROLE}`",
                None,
            );
            None
        }
    }
}

fn decode_conditions(
    d: &mut Decoder<'_>,
    node: &Node,
    path: &str,
    systems: &[String],
) -> Option<Conditions> {
    let mut m = d.map(node, path)?;
    let action_type = match m.optional("action_type") {
        Some(n) => d.list(n, &m.field("action_type"), |d, n, p| {
            d.word::<ActionType>(n, p, ActionType::ALL)
        }),
        None => Some(Vec::new()),
    };
    let target_system = match m.optional("target_system") {
        Some(n) => d.list(n, &m.field("target_system"), |d, n, p| {
            let s = d.string(n, p)?;
            if systems.is_empty() || systems.contains(&s) {
                Some(s)
            } else {
                let hint = crate::decode::suggest(&s, systems.iter().map(String::as_str))
                    .map(|m| format!("did you mean `{m}`?"))
                    .or_else(|| Some("add it to `systems` first".to_owned()));
                d.error_hint(n.pos, p, format!("unknown target system `{s}`"), hint);
                None
            }
        }),
        None => Some(Vec::new()),
    };
    let action_name = match m.optional("action_name") {
        Some(n) => d.list(n, &m.field("action_name"), |d, n, p| {
            d.token(n, p, "a tool name pattern (`*` as wildcard)", |s| {
                s.bytes().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, b'.' | b'_' | b'-' | b'*')
                })
            })
        }),
        None => Some(Vec::new()),
    };
    let amount_above = match m.optional("amount_above") {
        Some(n) => decode_amount(d, n, &m.field("amount_above")).map(Some),
        None => Some(None),
    };
    m.deny_unknown(
        d,
        &[
            "action_type",
            "target_system",
            "action_name",
            "amount_above",
        ],
    );
    let c = Conditions {
        action_type: action_type?,
        target_system: target_system?,
        action_name: action_name?,
        amount_above: amount_above?,
    };
    if c == Conditions::default() {
        d.error_hint(
            node.pos,
            path,
            "a condition set must test at least one of action_type, target_system, action_name, amount_above",
            None,
        );
        return None;
    }
    Some(c)
}

fn decode_rule(d: &mut Decoder<'_>, node: &Node, path: &str, systems: &[String]) -> Option<Rule> {
    let mut m = d.map(node, path)?;
    let id = m
        .required(d, "id")
        .and_then(|n| role_name(d, n, &m.field("id")));
    let when = m
        .required(d, "when")
        .and_then(|n| decode_conditions(d, n, &m.field("when"), systems));
    let tier = m.required(d, "tier").and_then(|n| {
        d.uint(n, &m.field("tier"), u64::from(MAX_TIER))
            .and_then(|t| u8::try_from(t).ok())
    });
    m.deny_unknown(d, &["id", "when", "tier"]);
    Some(Rule {
        id: id?,
        when: when?,
        tier: tier?,
        pos: node.pos,
    })
}

fn decode_route(d: &mut Decoder<'_>, node: &Node, path: &str, systems: &[String]) -> Option<Route> {
    let mut m = d.map(node, path)?;
    let workflow = m
        .required(d, "workflow")
        .and_then(|n| role_name(d, n, &m.field("workflow")));
    let when = m
        .required(d, "when")
        .and_then(|n| decode_conditions(d, n, &m.field("when"), systems));
    let approvers = m.required(d, "approvers").and_then(|n| {
        let p = m.field("approvers");
        let list = d.list(n, &p, role_name)?;
        if list.is_empty() {
            d.error(n.pos, &p, "a route must name at least one approver role");
            return None;
        }
        Some(list)
    });
    let change_window = match m.optional("change_window") {
        Some(n) => role_name(d, n, &m.field("change_window")).map(Some),
        None => Some(None),
    };
    m.deny_unknown(d, &["workflow", "when", "approvers", "change_window"]);
    Some(Route {
        workflow: workflow?,
        when: when?,
        approvers: approvers?,
        change_window: change_window?,
        pos: node.pos,
    })
}

fn decode_roles(d: &mut Decoder<'_>, node: &Node) -> Option<Vec<Role>> {
    let mut m = d.map(node, "roles")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (name, key, value) in m.entries() {
        let path = format!("roles.{name}");
        if !is_name(&name) {
            d.error(
                key.pos,
                &path,
                format!("role name `{name}` does not match `[a-z0-9._-]+`"),
            );
            ok = false;
            continue;
        }
        match decode_role(d, value, &path, name) {
            Some(r) => out.push(r),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn decode_role(d: &mut Decoder<'_>, node: &Node, path: &str, name: String) -> Option<Role> {
    let mut m = d.map(node, path)?;
    let members = m.required(d, "members").and_then(|n| {
        d.list(n, &m.field("members"), |d, n, p| {
            d.token(
                n,
                p,
                "a principal (no spaces, commas or quotes)",
                is_valid_principal,
            )
        })
    });
    let limits = match m.optional("limits") {
        Some(n) => {
            let p = m.field("limits");
            d.map(n, &p).and_then(|mut lm| {
                let mut out = BTreeMap::new();
                let mut ok = true;
                for (cur, k, v) in lm.entries() {
                    let fp = format!("{p}.{cur}");
                    if !crate::request::is_currency(&cur) {
                        d.error(
                            k.pos,
                            &fp,
                            format!("`{cur}` is not a three-letter currency code"),
                        );
                        ok = false;
                        continue;
                    }
                    match d.number(v, &fp) {
                        Some(x) if x >= 0.0 => {
                            out.insert(cur, x);
                        }
                        Some(_) => {
                            d.error(v.pos, &fp, "limit must not be negative");
                            ok = false;
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            })
        }
        None => Some(BTreeMap::new()),
    };
    let escalates_to = match m.optional("escalates_to") {
        Some(n) => role_name(d, n, &m.field("escalates_to")).map(Some),
        None => Some(None),
    };
    m.deny_unknown(d, &["members", "limits", "escalates_to"]);
    Some(Role {
        name,
        members: members?,
        limits: limits?,
        escalates_to: escalates_to?,
        pos: node.pos,
    })
}

fn decode_windows(d: &mut Decoder<'_>, node: &Node) -> Option<Vec<ChangeWindow>> {
    let mut m = d.map(node, "change_windows")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (name, _key, value) in m.entries() {
        let path = format!("change_windows.{name}");
        match decode_window(d, value, &path, name) {
            Some(w) => out.push(w),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn decode_window(
    d: &mut Decoder<'_>,
    node: &Node,
    path: &str,
    name: String,
) -> Option<ChangeWindow> {
    let mut m = d.map(node, path)?;
    let timezone = m.required(d, "timezone").and_then(|n| {
        let p = m.field("timezone");
        let s = d.string(n, &p)?;
        match s.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some((s, tz)),
            Err(_) => {
                d.error_hint(
                    n.pos,
                    &p,
                    format!("unknown time zone `{s}`"),
                    Some("use an IANA name such as `Europe/Berlin` or `UTC`".to_owned()),
                );
                None
            }
        }
    });
    let days = m.required(d, "days").and_then(|n| {
        let p = m.field("days");
        let list = d.list(n, &p, |d, n, p| {
            let s = d.string(n, p)?;
            match s.parse::<Weekday>() {
                Ok(w) if s.len() == 3 => Some(w),
                _ => {
                    d.error_hint(
                        n.pos,
                        p,
                        format!("unknown day `{s}`"),
                        Some("use mon, tue, wed, thu, fri, sat, sun".to_owned()),
                    );
                    None
                }
            }
        })?;
        if list.is_empty() {
            d.error(n.pos, &p, "a change window needs at least one day");
            return None;
        }
        Some(list)
    });
    let hours = m.required(d, "hours").and_then(|n| {
        let p = m.field("hours");
        let s = d.string(n, &p)?;
        let parsed = s.split_once('-').and_then(|(a, b)| {
            Some((
                NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?,
                NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?,
            ))
        });
        match parsed {
            Some((a, b)) if a < b => Some((a, b)),
            Some(_) => {
                d.error(n.pos, &p, "the window must end after it starts (same day)");
                None
            }
            None => {
                d.error_hint(
                    n.pos,
                    &p,
                    format!("`{s}` is not a time range"),
                    Some("write it like `09:00-16:00`".to_owned()),
                );
                None
            }
        }
    });
    m.deny_unknown(d, &["timezone", "days", "hours"]);
    let (timezone, tz) = timezone?;
    let (start, end) = hours?;
    Some(ChangeWindow {
        name,
        timezone,
        tz,
        days: days?,
        start,
        end,
        pos: node.pos,
    })
}
