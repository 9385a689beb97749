//! Rendering of evidence packs and classifications for a terminal (tables) and for
//! pull-request comments (markdown). JSON comes straight from the library's types.

use std::fmt::Write as _;

use comfy_table::{ContentArrangement, Table, presets};
use hitl_lib::classify::Classification;
use hitl_lib::evidence::{DiffLine, EvidencePack, WindowStatus, human_age};

/// Width used when standard output is not a terminal, so output is stable in CI logs.
const PIPE_WIDTH: u16 = 100;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    if t.width().is_none() {
        t.set_width(PIPE_WIDTH);
    }
    t
}

fn json_inline(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}: {}", json_inline(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The rows of the evidence-pack table: (field, value), in the article's order.
fn pack_rows(p: &EvidencePack) -> Vec<(&'static str, String)> {
    let id = &p.requesting_identity;
    let roles = if id.roles.is_empty() {
        String::new()
    } else {
        format!(" (roles: {})", id.roles.join(", "))
    };
    let agent = &p.ai_system;
    let mut agent_s = format!("agent {} · model {}", agent.id, agent.model);
    if let Some(app) = &agent.app {
        let _ = write!(agent_s, " · app {app}");
    }
    if let Some(t) = &agent.prompt_template {
        let _ = write!(agent_s, " · prompt {t}");
    }
    let a = &p.action;
    let mut proposed = format!("{} → {}", a.tool, a.target_object);
    let params = json_inline(&a.parameters);
    if !params.is_empty() {
        let _ = write!(proposed, "\nparameters: {params}");
    }
    if let Some(amount) = &a.amount {
        let _ = write!(proposed, "\namount: {amount}");
    }
    let c = &p.classification;
    let mut rows = vec![
        (
            "Requesting identity",
            format!(
                "{}{roles}\nrequested {}",
                id.requested_by,
                id.requested_at.to_rfc3339()
            ),
        ),
        ("AI system identity", agent_s),
        ("Action type", a.kind.clone()),
        (
            "Target system",
            format!("{} ({})", a.target_system, a.target_object),
        ),
        (
            "Risk tier",
            format!(
                "{} · {} · execution: {}",
                p.risk_tier, p.risk_tier_name, c.execution
            ),
        ),
        ("Input summary", p.input_summary.clone()),
        (
            "Retrieved sources",
            format!("{} source(s), see below", p.sources.len()),
        ),
        ("Proposed action", proposed),
        (
            "Before/after diff",
            if p.diff.is_empty() {
                "none (no system state change given)".to_owned()
            } else {
                format!("{} line(s), see below", p.diff.len())
            },
        ),
        ("Policy decision", p.policy_decision.summary()),
        (
            "Impact",
            p.impact.clone().unwrap_or_else(|| "not given".to_owned()),
        ),
        (
            "Alternatives",
            if p.alternatives.is_empty() {
                "none given".to_owned()
            } else {
                p.alternatives
                    .iter()
                    .map(|a| format!("• {a}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        ),
        (
            "Rollback path",
            p.rollback.as_ref().map_or_else(
                || "none given".to_owned(),
                |r| {
                    if r.command.is_empty() {
                        r.plan.clone()
                    } else {
                        format!("{}\ncommand: {}", r.plan, r.command.join(" "))
                    }
                },
            ),
        ),
        (
            "Expiration",
            format!(
                "{}{}",
                p.expires_at.to_rfc3339(),
                if p.expired { " (EXPIRED)" } else { "" }
            ),
        ),
    ];
    for (name, v) in [
        ("Risk analysis", &p.risk_analysis),
        ("Test result", &p.test_result),
        ("Hazard check", &p.hazard_check),
        ("Manual override", &p.manual_override),
    ] {
        if let Some(v) = v {
            rows.push((name, json_inline(v)));
        }
    }
    rows
}

fn approver_lines(c: &Classification, requester: &str) -> Vec<String> {
    let mut out = Vec::new();
    if c.approvals_required == 0 {
        out.push("no approval required".to_owned());
        return out;
    }
    for e in &c.eligible_roles {
        // The requester is already left out of the members unless the tier allows
        // self-approval.
        let members = if e.members.is_empty() {
            "(no one eligible)".to_owned()
        } else {
            e.members.join(", ")
        };
        let via = e.escalated_from.as_ref().map_or_else(String::new, |f| {
            format!(" [escalated from {f}: over its limit]")
        });
        let required = e
            .required_by_policy
            .as_ref()
            .map_or_else(String::new, |why| format!(" [required by policy: {why}]"));
        out.push(format!("{}: {members}{via}{required}", e.role));
    }
    if c.self_approval && c.eligible_roles.is_empty() {
        out.push(format!("the requester ({requester}) or their team queue"));
    }
    out
}

/// The approval rows shared by `show` and `explain`.
pub fn approval_rows(
    c: &Classification,
    requester: &str,
    window: Option<&WindowStatus>,
) -> Vec<(&'static str, String)> {
    let rules = if c.rules.is_empty() {
        "none matched: default tier applies".to_owned()
    } else {
        c.rules
            .iter()
            .map(|r| format!("{} (tier {})", r.id, r.tier))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing = if c.missing_evidence.is_empty() {
        "none".to_owned()
    } else {
        c.missing_evidence.join(", ")
    };
    if c.approvals_required == 0 {
        return vec![
            ("Matched rules", rules),
            (
                "Approvals required",
                "0 (no approval; full audit)".to_owned(),
            ),
            ("Required evidence", c.required_evidence.join(", ")),
            ("Missing evidence", missing),
        ];
    }
    let mut quorum = c.approvals_required.to_string();
    if c.distinct_roles && c.approvals_required > 1 {
        quorum.push_str(" from distinct roles");
    }
    let self_approval = if c.self_approval {
        "allowed at this tier"
    } else {
        "not allowed (separation of duties)"
    };
    let window = window.map_or_else(
        || "none".to_owned(),
        |w| match (&w.schedule, w.open_now) {
            (Some(s), Some(true)) => format!("{} ({s}): open now", w.name),
            (Some(s), _) => format!("{} ({s}): closed now", w.name),
            (None, _) => format!("{} (not defined in the matrix)", w.name),
        },
    );
    vec![
        ("Matched rules", rules),
        (
            "Workflow",
            c.workflow
                .clone()
                .unwrap_or_else(|| "no route: tier's approver roles".to_owned()),
        ),
        ("Approvals required", quorum),
        ("Who may approve", approver_lines(c, requester).join("\n")),
        ("Self-approval", self_approval.to_owned()),
        ("Change window", window),
        ("Required evidence", c.required_evidence.join(", ")),
        ("Missing evidence", missing),
    ]
}

fn two_columns(rows: &[(&str, String)]) -> String {
    let mut t = table(&["Field", "Value"]);
    for (k, v) in rows {
        t.add_row(vec![(*k).to_owned(), v.clone()]);
    }
    t.to_string()
}

fn diff_text(lines: &[DiffLine]) -> String {
    let mut s = String::new();
    for l in lines {
        let mut value_lines = l.value.lines();
        let first = value_lines.next().unwrap_or("");
        let _ = writeln!(s, "{} {}: {first}", l.op, l.path);
        for more in value_lines {
            let _ = writeln!(s, "{}   {more}", l.op);
        }
    }
    s
}

/// The evidence pack for a terminal.
pub fn pack_table(p: &EvidencePack) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} · tier {} ({}) · {}\n",
        p.request,
        p.risk_tier,
        p.risk_tier_name,
        hitl_lib::decode::safe_path(&p.file)
    );
    let _ = writeln!(out, "Evidence pack\n{}\n", two_columns(&pack_rows(p)));
    if !p.sources.is_empty() {
        let mut t = table(&["Source", "Authority", "Class", "Retrieved", "Flags", "URI"]);
        for s in &p.sources {
            let age = chrono::Duration::seconds(s.age_seconds);
            let when = if s.age_seconds >= 0 {
                format!("{} ago", human_age(age))
            } else {
                format!("in {}", human_age(age))
            };
            t.add_row(vec![
                s.source.id.clone(),
                s.source.authority.to_string(),
                s.source.classification.to_string(),
                when,
                s.flags.join(", "),
                s.source.uri.clone(),
            ]);
        }
        let _ = writeln!(out, "Retrieved sources\n{t}\n");
    }
    if !p.diff.is_empty() {
        let _ = writeln!(out, "Before/after diff\n{}", diff_text(&p.diff));
    }
    let _ = writeln!(
        out,
        "Approval\n{}\n",
        two_columns(&approval_rows(
            &p.classification,
            &p.requesting_identity.requested_by,
            p.change_window.as_ref()
        ))
    );
    out.push_str(&warnings_text(
        p.warnings.iter().map(|w| (w.code, w.message.as_str())),
    ));
    out
}

pub fn warnings_text<'a>(ws: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let lines: Vec<String> = ws
        .map(|(code, msg)| format!("  ! {msg} [{code}]"))
        .collect();
    if lines.is_empty() {
        "Warnings: none\n".to_owned()
    } else {
        format!("Warnings\n{}\n", lines.join("\n"))
    }
}

/// Escapes untrusted text for a markdown table cell: HTML becomes entities and every
/// markdown punctuation character is backslash-escaped, so a proposal cannot inject
/// images, links, emphasis or table cells into a PR comment. (Bare URLs may still be
/// auto-linked by the forge; they are shown as text, never as a link we wrote.)
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br>"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '{' | '}' | '#' | '!' | '|' | '~'
            | ':' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn md_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        header.iter().map(|_| "---|").collect::<String>()
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} |",
            r.iter().map(|c| md(c)).collect::<Vec<_>>().join(" | ")
        );
    }
}

/// The evidence pack as markdown, for a pull-request comment.
pub fn pack_markdown(p: &EvidencePack) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## `{}`: tier {} ({})\n",
        p.request,
        p.risk_tier,
        md(&p.risk_tier_name)
    );
    let _ = writeln!(out, "### Evidence pack\n");
    let rows: Vec<Vec<String>> = pack_rows(p)
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), v])
        .collect();
    md_table(&mut out, &["Field", "Value"], &rows);
    if !p.sources.is_empty() {
        let _ = writeln!(out, "\n### Retrieved sources\n");
        let rows: Vec<Vec<String>> = p
            .sources
            .iter()
            .map(|s| {
                vec![
                    s.source.id.clone(),
                    s.source.authority.to_string(),
                    s.source.classification.to_string(),
                    s.source.retrieved_at.to_rfc3339(),
                    s.flags.join(", "),
                    s.source.uri.clone(),
                ]
            })
            .collect();
        md_table(
            &mut out,
            &["Source", "Authority", "Class", "Retrieved", "Flags", "URI"],
            &rows,
        );
    }
    if !p.diff.is_empty() {
        // A fence longer than any backtick run in the content cannot be closed by it.
        let longest = diff_text(&p.diff)
            .split(|c| c != '`')
            .map(str::len)
            .max()
            .unwrap_or(0);
        let fence = "`".repeat(longest.max(2) + 1);
        let _ = writeln!(
            out,
            "\n### Before/after diff\n\n{fence}diff\n{}{fence}",
            diff_text(&p.diff)
        );
    }
    let _ = writeln!(out, "\n### Approval\n");
    let rows: Vec<Vec<String>> = approval_rows(
        &p.classification,
        &p.requesting_identity.requested_by,
        p.change_window.as_ref(),
    )
    .into_iter()
    .map(|(k, v)| vec![k.to_owned(), v])
    .collect();
    md_table(&mut out, &["Field", "Value"], &rows);
    let _ = writeln!(out, "\n### Warnings\n");
    if p.warnings.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for w in &p.warnings {
        let _ = writeln!(out, "- :warning: {} (`{}`)", md(&w.message), w.code);
    }
    out
}
