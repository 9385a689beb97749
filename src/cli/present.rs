//! Rendering of evidence packs and classifications for a terminal (tables) and for
//! pull-request comments (markdown). JSON comes straight from the library's types.

use std::fmt::Write as _;

use comfy_table::{ContentArrangement, Table, presets};
use hitl_lib::classify::Classification;
use hitl_lib::evidence::{DiffLine, EvidencePack, WindowStatus, human_age};
use hitl_lib::workspace::{Recorded, Source, WorkingCopy};

/// Width used when standard output is not a terminal, so output is stable in CI logs.
const PIPE_WIDTH: u16 = 100;

/// A table with `header`, wrapping to the terminal's width (100 columns off a terminal).
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    // A terminal that reports no size (0 columns: a pseudo-terminal nobody sized, as
    // `script` makes without a terminal around it) gets the pipe width too, not one
    // character per line.
    if t.width().is_none_or(|w| w == 0) {
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
    // Next to the change: the command `exec` runs first, its words as JSON (a word with
    // a blank stays one word).
    if !p.precondition.is_empty() {
        let at = rows
            .iter()
            .position(|(k, _)| *k == "Before/after diff")
            .map_or(rows.len(), |i| i + 1);
        rows.insert(
            at,
            (
                "Precondition",
                format!(
                    "{}\n`exec` runs it first: its output must be the before state",
                    serde_json::to_string(&p.precondition).unwrap_or_default()
                ),
            ),
        );
    }
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
    // The sampled review, once drawn from the proposal's bytes (`show` of a recorded
    // proposal); `status` says whether a version carried it over.
    let sample = c
        .sample
        .as_ref()
        .map(|s| super::status::sample_line(s).trim().to_owned());
    if c.approvals_required == 0 {
        let mut rows = vec![
            ("Matched rules", rules),
            (
                "Approvals required",
                "0 (no approval; full audit)".to_owned(),
            ),
        ];
        rows.extend(sample.map(|s| ("Sampled review", s)));
        rows.push(("Required evidence", c.required_evidence.join(", ")));
        rows.push(("Missing evidence", missing));
        return rows;
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
    let mut rows = vec![
        ("Matched rules", rules),
        (
            "Workflow",
            c.workflow
                .clone()
                .unwrap_or_else(|| "no route: tier's approver roles".to_owned()),
        ),
        ("Approvals required", quorum),
        ("Who may approve", approver_lines(c, requester).join("\n")),
    ];
    rows.extend(sample.map(|s| ("Sampled review", s)));
    rows.extend([
        ("Self-approval", self_approval.to_owned()),
        ("Change window", window),
        ("Required evidence", c.required_evidence.join(", ")),
        ("Missing evidence", missing),
    ]);
    rows
}

/// Rows of (field, value) as a table; values are escaped ([`safe`]).
fn two_columns(rows: &[(&str, String)]) -> String {
    let mut t = table(&["Field", "Value"]);
    for (k, v) in rows {
        t.add_row(vec![(*k).to_owned(), safe(v)]);
    }
    t.to_string()
}

fn diff_text(lines: &[DiffLine]) -> String {
    let mut s = String::new();
    for l in lines {
        let mut value_lines = l.value.lines();
        let first = value_lines.next().unwrap_or("");
        let (op, path) = (l.op, safe_line(&l.path));
        let _ = writeln!(s, "{op} {path}: {}", safe_line(first));
        for more in value_lines {
            let _ = writeln!(s, "{op}   {}", safe_line(more));
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
        safe_line(&p.request),
        p.risk_tier,
        safe_line(&p.risk_tier_name),
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
                safe(&s.source.id),
                s.source.authority.to_string(),
                s.source.classification.to_string(),
                when,
                safe(&s.flags.join(", ")),
                safe(&s.source.uri),
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
        .map(|(code, msg)| {
            let msg = safe(msg).replace('\n', "\n    ");
            format!("  ! {msg} [{}]", safe_line(code))
        })
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
    // Control and invisible characters first (as `\u{..}`, whose backslash and braces
    // are then escaped for markdown like any other).
    let s = safe(s);
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

/// Untrusted text for a terminal: characters that must never reach one (control and
/// invisible format characters) shown as `\u{..}` escapes.
pub fn safe(s: &str) -> String {
    hitl_lib::text::escape(s)
}

/// [`safe`] for a one-line field: newlines and tabs escaped too, so a recorded value
/// cannot forge the next line of the output.
pub fn safe_line(s: &str) -> String {
    hitl_lib::text::escape_line(s)
}

/// The line `show` and `explain` start with when the audit holds a proposal under the
/// id and what is shown is not simply that same file: the recorded one shown instead of
/// a file that differs (or is missing, or unreadable), or a file that is not the
/// recorded one. `None` when the file is the recorded proposal.
pub fn recorded_note(id: &str, r: &Recorded) -> Option<String> {
    let file = format!("`{}`", hitl_lib::decode::safe_path(&r.file));
    let (digest, id) = (safe_line(&r.digest), safe_line(id));
    Some(match (r.source, r.working_copy) {
        (Source::Audit, WorkingCopy::Same) => return None,
        (Source::Audit, WorkingCopy::Differs) => format!(
            "warning: {file} differs from the proposal recorded in the audit ({digest}); showing the recorded one"
        ),
        (Source::Audit, WorkingCopy::Unreadable) => format!(
            "warning: {file} is not a file hitl reads; showing the proposal recorded in the audit ({digest})"
        ),
        (Source::Audit, WorkingCopy::Missing) => format!(
            "note: there is no {file}; showing the proposal recorded in the audit ({digest})"
        ),
        (Source::File, _) => format!(
            "warning: the audit holds another proposal under the id `{id}` ({digest}); this is {file}, not what a decision on `{id}` decides on: `hitl show {id}` shows the recorded one"
        ),
    })
}

/// [`recorded_note`] as the first lines of a table output (with a blank line after).
pub fn recorded_note_text(id: &str, r: Option<&Recorded>) -> String {
    r.and_then(|r| recorded_note(id, r))
        .map_or_else(String::new, |n| format!("{n}\n\n"))
}

/// [`recorded_note`] as a markdown quote, for the top of a PR comment.
pub fn recorded_note_markdown(id: &str, r: Option<&Recorded>) -> String {
    r.and_then(|r| recorded_note(id, r))
        .map_or_else(String::new, |n| {
            let (word, rest) = n.split_once(": ").unwrap_or(("note", &n));
            let word = if word == "warning" { "Warning" } else { "Note" };
            format!("> **{word}:** {}\n\n", md(rest))
        })
}

/// A JSON field name as a table label: `requesting_identity` is `Requesting identity`.
fn label(key: &str) -> String {
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    let s = chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().collect::<String>() + chars.as_str()
    });
    match s.strip_prefix("Ai ") {
        Some(rest) => format!("AI {rest}"),
        None => safe(&s),
    }
}

/// A JSON value on one line: objects as `key: value, ...` (in parentheses when inside
/// another), lists as `a, b`, null and empty lists as `none`.
fn inline(v: &serde_json::Value, nested: bool) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "none".to_owned(),
        J::String(s) => safe(s),
        J::Array(a) if a.is_empty() => "none".to_owned(),
        J::Array(a) => a
            .iter()
            .map(|x| inline(x, true))
            .collect::<Vec<_>>()
            .join(", "),
        J::Object(m) if m.is_empty() => "none".to_owned(),
        J::Object(m) => {
            let s = m
                .iter()
                .map(|(k, x)| format!("{}: {}", safe(k), inline(x, true)))
                .collect::<Vec<_>>()
                .join(", ");
            if nested { format!("({s})") } else { s }
        }
        other => other.to_string(),
    }
}

/// A JSON value as the text of a table cell: an object one `key: value` a line, a list
/// one item a line, anything else as [`inline`].
fn cell(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Object(m) if !m.is_empty() => m
            .iter()
            .map(|(k, x)| format!("{}: {}", safe(k), inline(x, false)))
            .collect::<Vec<_>>()
            .join("\n"),
        J::Array(a) if a.len() > 1 => a
            .iter()
            .map(|x| format!("• {}", inline(x, false)))
            .collect::<Vec<_>>()
            .join("\n"),
        J::Array(a) if a.len() == 1 => inline(&a[0], false),
        other => inline(other, false),
    }
}

/// A JSON object as a Field/Value table.
fn object_table(m: &serde_json::Map<String, serde_json::Value>, skip: &[&str]) -> String {
    let mut t = table(&["Field", "Value"]);
    for (k, v) in m.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
        t.add_row(vec![label(k), cell(v)]);
    }
    t.to_string()
}

/// A list of JSON objects as a table whose columns are their fields (in the order they
/// first appear); other items as one column.
fn rows_table(items: &[serde_json::Value]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for item in items {
        for k in item.as_object().into_iter().flat_map(|m| m.keys()) {
            if !columns.contains(&k.as_str()) {
                columns.push(k);
            }
        }
    }
    if columns.is_empty() {
        let mut t = table(&["Value"]);
        for item in items {
            t.add_row(vec![cell(item)]);
        }
        return t.to_string();
    }
    let header: Vec<String> = columns.iter().map(|c| label(c)).collect();
    let mut t = table(&header.iter().map(String::as_str).collect::<Vec<_>>());
    for item in items {
        t.add_row(
            columns
                .iter()
                .map(|c| item.get(c).map_or_else(String::new, |v| inline(v, false)))
                .collect::<Vec<_>>(),
        );
    }
    t.to_string()
}

/// An evidence pack as recorded in the audit (JSON, of whatever version recorded it),
/// as tables: the pack's fields, its sources, its diff, the approval it asked for and
/// its warnings, in the order of `show`.
pub fn recorded_pack_table(pack: &serde_json::Value) -> String {
    const APART: [&str; 4] = ["sources", "diff", "classification", "warnings"];
    let Some(m) = pack.as_object() else {
        return format!("{}\n", cell(pack));
    };
    let mut out = format!("Evidence pack\n{}\n\n", object_table(m, &APART));
    if let Some(sources) = m.get("sources").and_then(|s| s.as_array())
        && !sources.is_empty()
    {
        let _ = writeln!(out, "Retrieved sources\n{}\n", rows_table(sources));
    }
    if let Some(diff) = m.get("diff").and_then(|d| d.as_array())
        && !diff.is_empty()
    {
        let lines: Option<Vec<String>> = diff
            .iter()
            .map(|l| {
                let (op, path, value) = (l.get("op")?, l.get("path")?, l.get("value")?);
                Some(format!(
                    "{} {}: {}",
                    inline(op, false),
                    inline(path, false),
                    inline(value, false)
                ))
            })
            .collect();
        match lines {
            Some(lines) => {
                let _ = writeln!(out, "Before/after diff\n{}\n", lines.join("\n"));
            }
            None => {
                let _ = writeln!(out, "Before/after diff\n{}\n", rows_table(diff));
            }
        }
    }
    if let Some(c) = m.get("classification").and_then(|c| c.as_object()) {
        let _ = writeln!(out, "Approval\n{}\n", object_table(c, &[]));
    }
    match m.get("warnings").and_then(|w| w.as_array()) {
        Some(ws) => {
            let pairs: Vec<(String, String)> = ws
                .iter()
                .map(|w| {
                    (
                        w.get("code").map_or_else(String::new, |c| inline(c, false)),
                        w.get("message")
                            .map_or_else(|| inline(w, false), |m| inline(m, false)),
                    )
                })
                .collect();
            out.push_str(&warnings_text(
                pairs.iter().map(|(c, m)| (c.as_str(), m.as_str())),
            ));
        }
        None => out.push_str("Warnings: none recorded\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example refund's pack with hostile text in every kind of field (as a pack
    /// assembled from a hand-made recorded proposal might hold): neither renderer lets a
    /// control or invisible character through.
    #[test]
    fn packs_render_escaped_for_the_terminal_and_for_markdown() {
        let path = std::path::Path::new("x");
        let m =
            hitl_lib::matrix::parse(path, include_bytes!("../../approval-matrix.yaml")).unwrap();
        let r = hitl_lib::request::parse(
            path,
            include_bytes!("../../requests/refund-4711.yaml"),
            &m.systems,
            1 << 20,
        )
        .unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T16:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut p = hitl_lib::evidence::assemble(&m, path.into(), &r, now);
        let evil = "a\u{1b}[2J\u{1b}]8;;https://evil.example/\u{7}b\u{202e}c\u{200b}d";
        p.input_summary = evil.to_owned();
        p.requesting_identity.requested_by = evil.to_owned();
        p.sources[0].source.uri = evil.to_owned();
        p.diff[0].value = format!("{evil}\nsecond {evil}");
        p.alternatives.push(evil.to_owned());
        p.warnings.push(hitl_lib::evidence::Warning {
            code: "policy-warn",
            message: evil.to_owned(),
        });
        for out in [pack_table(&p), pack_markdown(&p)] {
            assert!(
                !out.contains(['\u{1b}', '\u{7}', '\u{202e}', '\u{200b}']),
                "{out}"
            );
            assert!(out.contains("u{001b}") && out.contains("u{202e}"), "{out}");
        }
        assert_eq!(md("x\u{1b}[1m"), "x\\\\u\\{001b\\}\\[1m");
    }

    #[test]
    fn a_recorded_pack_renders_as_tables_without_json_or_terminal_escapes() {
        let pack = serde_json::json!({
            "request": "r-1",
            "action": {"tool": "t", "parameters": {"a": {"b": 1}, "list": [1, 2]}},
            "input_summary": "evil \u{1b}[2J text\u{202e}",
            "sources": [{"id": "s1", "uri": "u"}, {"id": "s2", "extra": true}],
            "diff": [{"op": "+", "path": "x", "value": "1"}],
            "classification": {"tier": 2},
            "warnings": [{"code": "stale-source", "message": "old"}],
            "future_field": null,
        });
        let out = recorded_pack_table(&pack);
        assert!(!out.contains(['\u{1b}', '\u{202e}']), "{out}");
        assert!(!out.contains("{\"") && !out.contains('"'), "{out}");
        for needle in [
            "Input summary",
            "evil \\u{001b}[2J text\\u{202e}",
            "parameters: a: (b: 1), list: 1, 2",
            "Future field",
            "+ x: 1",
            "! old [stale-source]",
            "Extra",
        ] {
            assert!(out.contains(needle), "`{needle}` missing in:\n{out}");
        }
        // Not an object (a pack of some other shape): still printed, as text.
        assert_eq!(recorded_pack_table(&serde_json::json!("x")), "x\n");
    }
}
