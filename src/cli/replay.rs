//! `hitl replay ID`: a request's whole timeline from the audit alone, and its
//! classification and policy decision recomputed with the recorded versions.

use std::fmt::Write as _;
use std::path::Path;

use hitl_lib::audit::replay::{self, Outcome};
use hitl_lib::audit::verify::ALLOWED_SIGNERS;
use hitl_lib::audit::{AuditError, AuditRepo, Event, sig_path};
use hitl_lib::signing::{self, AllowedSigners};
use hitl_lib::workflow::types;
use hitl_lib::workspace::Workspace;
use hitl_lib::{evidence, request};
use serde_json::{Value as Json, json};

use super::{CliError, CliResult, Ctx, Exit, emit, present, print_json};

/// Replay a request from the audit: who asked, which agent and model, the evidence pack
/// as the approver saw it, the policy decision, each decision with its signer; then
/// re-evaluate it with the matrix and policies of the recorded versions (exit 1 when the
/// outcome differs or cannot be recomputed).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Table)]
    pub format: ReplayFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    Table,
    Json,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = AuditRepo::open(ws.root())?;
    let head = repo
        .head_for_reading()?
        .ok_or_else(|| CliError::new(Exit::NotFound, "the audit is empty"))?;
    let tree = head.tree().map_err(AuditError::from)?;
    let id = &args.request;
    let events = repo.request_events(&tree, id)?;
    let Some(proposed) = events.iter().find(|e| e.kind == types::PROPOSED) else {
        return Err(CliError::new(
            Exit::NotFound,
            format!("request `{id}` is not in the audit"),
        ));
    };
    let pack_digest = events
        .iter()
        .find(|e| e.kind == types::EVIDENCE_ASSEMBLED)
        .and_then(|e| e.field_str("evidence_pack"));
    let pack: Option<Json> = pack_digest
        .map(|d| repo.blob(&tree, d))
        .transpose()?
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let proposal = proposed
        .field_str("proposal")
        .map(|d| repo.blob(&tree, d))
        .transpose()?
        .flatten();

    // Each decision's detached signature, checked against today's allowed_signers.
    let allowed = AllowedSigners::parse(
        Path::new(ALLOWED_SIGNERS),
        &String::from_utf8_lossy(&repo.read(&tree, ALLOWED_SIGNERS)?.unwrap_or_default()),
    )?;
    let mut decisions = Vec::new();
    for e in events.iter().filter(|e| e.kind == types::DECISION) {
        let bytes = repo
            .event(&tree, e.seq)?
            .map(|(_, b)| b)
            .unwrap_or_default();
        let sig = repo.read(&tree, &sig_path(e.seq))?;
        let at = chrono::DateTime::parse_from_rfc3339(&e.at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        let check = sig
            .ok_or_else(|| "no signature".to_owned())
            .and_then(|s| {
                signing::verify(&String::from_utf8_lossy(&s), signing::NAMESPACE, &bytes)
                    .map_err(|e| e.to_string())
            })
            .and_then(|key| {
                allowed
                    .check(&key, &e.actor.principal, signing::NAMESPACE, at)
                    .map(|()| signing::fingerprint(&key))
                    .map_err(|e| e.to_string())
            });
        decisions.push(json!({
            "seq": e.seq,
            "at": e.at,
            "decision": e.field_str("decision"),
            "approver": e.actor.principal,
            "key": e.actor.key,
            "role": e.field_str("role"),
            "reason_code": e.fields.get("reason_code"),
            "comment": e.fields.get("comment"),
            "signature": match &check { Ok(fp) if *fp == e.actor.key => "good".to_owned(), Ok(fp) => format!("bad: signed by {fp}"), Err(m) => format!("bad: {m}") },
        }));
    }

    let recorded = replay::recorded(&events);
    let (reeval, note) = reevaluate(&repo, &events, proposed, proposal.as_deref())?;
    let same = matches!((&recorded, &reeval), (Some(a), Some(b)) if a == b);

    if args.format == ReplayFormat::Json {
        print_json(&json!({
            "request": id,
            "events": events,
            "evidence_pack": pack,
            "decisions": decisions,
            "recorded": recorded,
            "reevaluated": reeval,
            "reevaluation": note,
            "same_outcome": same,
        }))?;
    } else {
        emit(
            render(
                id,
                &events,
                proposed,
                pack.as_ref(),
                &decisions,
                recorded.as_ref(),
                reeval.as_ref(),
                &note,
                same,
            )
            .as_bytes(),
        )?;
    }
    Ok(if same { Exit::Ok } else { Exit::Findings })
}

/// Recomputes the outcome with the recorded matrix and policy versions, found in git.
fn reevaluate(
    repo: &AuditRepo,
    events: &[Event],
    proposed: &Event,
    proposal: Option<&[u8]>,
) -> CliResult<(Option<Outcome>, String)> {
    let Some(bytes) = proposal else {
        return Ok((
            None,
            "the proposal's blob is missing; run `hitl verify`".to_owned(),
        ));
    };
    let Some(now) = replay::checked_at(events) else {
        return Ok((None, "no `policy_checked` event".to_owned()));
    };
    // A fresh private folder (0700, unpredictable name), removed when dropped.
    let tmp = tempfile::Builder::new()
        .prefix("hitl-replay-")
        .tempdir()
        .map_err(|e| CliError::new(Exit::Io, format!("cannot create a temporary folder: {e}")))?;
    let dir = tmp.path().join("ws");
    let found = replay::materialize(
        repo,
        &proposed.config.matrix,
        &proposed.config.policies,
        &dir,
    )?;
    let result = (|| -> CliResult<(Option<Outcome>, String)> {
        let Some(commit) = found else {
            return Ok((
                None,
                format!(
                    "cannot re-evaluate: no commit holds matrix {} with policies {}",
                    proposed.config.matrix, proposed.config.policies
                ),
            ));
        };
        let ws = Workspace::open(&dir)?;
        let matrix = ws.load_matrix()?;
        let r = request::parse(
            Path::new("proposal"),
            bytes,
            &matrix.systems,
            ws.settings.limits.max_request_bytes,
        )
        .map_err(|d| {
            CliError::new(
                Exit::InvalidInput,
                format!("the recorded proposal no longer parses: {d}"),
            )
        })?;
        let submitter = proposed.field_str("submitted_by");
        let pack = match hitl_lib::policy::PolicySet::load(&dir) {
            Ok(Some(mut set)) => evidence::assemble_submitted(
                &matrix,
                &mut set,
                "proposal".into(),
                &r,
                submitter,
                now,
            ),
            Ok(None) => evidence::assemble(&matrix, "proposal".into(), &r, now),
            Err(e) => evidence::assemble_with_policy_error(
                &matrix,
                e.to_string(),
                "proposal".into(),
                &r,
                now,
            ),
        };
        let c = commit.to_string();
        Ok((
            Some(replay::of_pack(&pack)),
            format!(
                "re-evaluated at {} with the matrix and policies of commit {}",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                &c[..12.min(c.len())]
            ),
        ))
    })();
    drop(tmp);
    result
}

#[allow(clippy::too_many_arguments, reason = "one section each")]
fn render(
    id: &str,
    events: &[Event],
    proposed: &Event,
    pack: Option<&Json>,
    decisions: &[Json],
    recorded: Option<&Outcome>,
    reeval: Option<&Outcome>,
    note: &str,
    same: bool,
) -> String {
    // Everything recorded is escaped for the terminal, newlines too (one fact a line):
    // the audit may hold events made by hand with git plumbing, which no check saw.
    let line = |v: &str| present::safe_line(v);
    let mut s = String::new();
    let f = |k: &str| proposed.fields.get(k).cloned().unwrap_or(Json::Null);
    let _ = writeln!(s, "request {}", line(id));
    let _ = writeln!(
        s,
        "  requested by   {}",
        line(f("requested_by").as_str().unwrap_or_default())
    );
    let _ = writeln!(
        s,
        "  submitted by   {} (key {})",
        line(&proposed.actor.principal),
        line(&proposed.actor.key)
    );
    let agent = f("agent");
    let _ = writeln!(
        s,
        "  agent          {} (model {}, prompt template {})",
        line(agent["id"].as_str().unwrap_or_default()),
        line(agent["model"].as_str().unwrap_or_default()),
        line(agent["prompt_template"].as_str().unwrap_or("none"))
    );
    let target = f("target");
    let target = match (target["system"].as_str(), target["object"].as_str()) {
        (Some(system), Some(object)) => format!("{system} ({object})"),
        _ => target.to_string(),
    };
    let _ = writeln!(
        s,
        "  tool           {} on {}",
        line(f("tool").as_str().unwrap_or_default()),
        line(&target)
    );
    let _ = writeln!(
        s,
        "  versions       matrix {}, policies {}, {}",
        line(&proposed.config.matrix),
        line(&proposed.config.policies),
        line(&proposed.config.tool)
    );
    let _ = writeln!(s, "\ntimeline");
    for e in events {
        let _ = writeln!(
            s,
            "  {:>6}  {}  {:<19} {}",
            e.seq,
            line(&e.at),
            line(&e.kind),
            line(&e.actor.principal)
        );
    }
    let _ = writeln!(s, "\ndecisions");
    if decisions.is_empty() {
        let _ = writeln!(s, "  none yet");
    }
    for d in decisions {
        let _ = writeln!(
            s,
            "  {} by {} as {} ({}), reason {}, signature {}",
            line(d["decision"].as_str().unwrap_or_default()),
            line(d["approver"].as_str().unwrap_or_default()),
            line(d["role"].as_str().unwrap_or_default()),
            line(d["key"].as_str().unwrap_or_default()),
            line(d["reason_code"].as_str().unwrap_or("none")),
            line(d["signature"].as_str().unwrap_or_default())
        );
        if let Some(c) = d["comment"].as_str() {
            // A comment may span lines (`\n` is allowed): each continues indented, so no
            // line of it can pass for a line of hitl's own.
            let c = present::safe(c).replace('\t', "\\t");
            let _ = writeln!(s, "    comment: {}", c.replace('\n', "\n             "));
        }
    }
    let list = |rules: &[String]| {
        if rules.is_empty() {
            "none".to_owned()
        } else {
            present::safe_line(&rules.join(", "))
        }
    };
    let show = |o: Option<&Outcome>| {
        o.map_or_else(
            || "unknown".to_owned(),
            |o| {
                format!(
                    "tier {}, policy {}, deny {}, warn {}, escalate {}",
                    o.tier,
                    line(&o.policy),
                    list(&o.deny),
                    list(&o.warn),
                    list(&o.escalate)
                )
            },
        )
    };
    let _ = writeln!(s, "\noutcome");
    let _ = writeln!(s, "  recorded       {}", show(recorded));
    let _ = writeln!(s, "  recomputed     {}", show(reeval));
    let _ = writeln!(s, "  {}", line(note));
    let _ = writeln!(
        s,
        "  {}",
        if same {
            "same outcome"
        } else {
            "DIFFERENT OUTCOME (or not recomputable)"
        }
    );
    let _ = writeln!(s, "\nevidence pack as shown to the approver");
    match pack {
        Some(p) => s.push_str(&present::recorded_pack_table(p)),
        None => {
            let _ = writeln!(s, "  missing; run `hitl verify`");
        }
    }
    s
}
