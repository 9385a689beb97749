//! `hitl replay ID`: a request's whole timeline from the audit alone, and its
//! classification and policy decision recomputed by the workflow engine under the
//! configuration its proposal's commit extended, with every recorded event judged as
//! `verify` judges it.

use std::fmt::Write as _;
use std::path::Path;

use hitl_lib::audit::replay::{self, Outcome};
use hitl_lib::audit::verify::{ALLOWED_SIGNERS, REVOKED_SIGNERS};
use hitl_lib::audit::{AuditError, AuditRepo, Event, sig_path};
use hitl_lib::signing::{self, AllowedSigners};
use hitl_lib::workflow::types;
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

    // Each decision's detached signature, judged by the one trust function against the
    // signer files at HEAD (revocation included).
    let trust = |rel: &str| -> CliResult<String> {
        Ok(String::from_utf8_lossy(&repo.read(&tree, rel)?.unwrap_or_default()).into_owned())
    };
    let allowed = AllowedSigners::parse(Path::new(ALLOWED_SIGNERS), &trust(ALLOWED_SIGNERS)?)?;
    let revoked =
        signing::RevokedSigners::parse(Path::new(REVOKED_SIGNERS), &trust(REVOKED_SIGNERS)?)?;
    let mut decisions = Vec::new();
    for e in events.iter().filter(|e| e.kind == types::DECISION) {
        let bytes = repo
            .event(&tree, e.seq)?
            .map(|(_, b)| b)
            .unwrap_or_default();
        let sig = repo.read(&tree, &sig_path(e.seq))?;
        // A time that does not parse is no time at all: the check fails, never 1970.
        let check = hitl_lib::workflow::engine::parse_at(&e.at).and_then(|at| {
            let s = sig.ok_or_else(|| "no signature".to_owned())?;
            let key = signing::verify(&String::from_utf8_lossy(&s), signing::NAMESPACE, &bytes)
                .map_err(|e| e.to_string())?;
            signing::trusted_principal(
                &allowed,
                &revoked,
                &key,
                Some(&e.actor.principal),
                signing::NAMESPACE,
                at,
            )
            .map(|_| signing::fingerprint(&key))
            .map_err(|u| u.message)
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
    // The workflow engine, as `verify` runs it: the proposal derived again under the
    // configuration its commit extended, and every recorded event judged.
    let replayed = hitl_lib::workflow::recorded::replay(&repo, &head, id)?;
    let (reeval, note) = match &replayed.pack {
        Ok(pack) => (
            Some(replay::of_pack(pack)),
            format!(
                "re-evaluated at {} with the configuration of the commit the proposal extended ({})",
                replayed
                    .at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                replayed
                    .commit
                    .map(|c| c.to_string()[..12].to_owned())
                    .unwrap_or_default()
            ),
        ),
        Err(why) => (None, format!("cannot re-evaluate: {why}")),
    };
    let findings: Vec<Json> = replayed
        .findings
        .iter()
        .map(|(seq, code, reason)| json!({"seq": seq, "code": code, "reason": reason}))
        .collect();
    let same = matches!((&recorded, &reeval), (Some(a), Some(b)) if a == b) && findings.is_empty();

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
            "findings": findings,
        }))?;
    } else {
        let mut text = String::new();
        if !findings.is_empty() {
            text.push_str("the workflow engine refuses what is recorded (run `hitl verify`):\n");
            for (seq, code, reason) in &replayed.findings {
                let _ = writeln!(
                    text,
                    "  {code}  seq {seq}: {}",
                    hitl_lib::text::escape_line(reason)
                );
            }
            text.push('\n');
        }
        emit(text.as_bytes())?;
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
