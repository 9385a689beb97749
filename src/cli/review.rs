//! `hitl review ID`: the evidence pack as `show` gives it (the recorded proposal), where
//! the request stands as `status` gives it, then a decision chosen on the terminal and
//! recorded by the same code as `approve`, `reject` and `request-changes`.

use hitl_lib::audit::AuditRepo;
use hitl_lib::matrix::Matrix;
use hitl_lib::text::escape;
use hitl_lib::workflow::Verdict;
use hitl_lib::workflow::engine::{self, Outcome};

use super::decide::Decision;
use super::identity::KeyArgs;
use super::{CliError, CliResult, Ctx, Exit, decide, emit, now, present, status};

/// Review a request on the terminal: its evidence pack and where it stands, then
/// approve, reject, request changes or skip. A rejection or a request for changes takes
/// a reason code from the matrix and an optional comment; from tier 4 on, the request
/// id must be typed to confirm. The decision is recorded as `hitl approve`, `hitl
/// reject` or `hitl request-changes` record it.
///
/// It only runs on a terminal; elsewhere it records nothing and names the commands to
/// use instead.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request id.
    pub request: String,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// One choice of the prompt.
struct Action {
    /// What the reviewer picks.
    label: &'static str,
    /// What it records: `None` records nothing.
    verdict: Option<Verdict>,
    /// The matrix's reason codes it takes one of, when it takes one.
    reason_codes: Option<fn(&Matrix) -> &[String]>,
}

fn reject_codes(m: &Matrix) -> &[String] {
    &m.reason_codes.reject
}

fn request_changes_codes(m: &Matrix) -> &[String] {
    &m.reason_codes.request_changes
}

/// The choices, in the order shown. Another verdict is one more entry.
const ACTIONS: [Action; 4] = [
    Action {
        label: "approve",
        verdict: Some(Verdict::Approve),
        reason_codes: None,
    },
    Action {
        label: "reject",
        verdict: Some(Verdict::Reject),
        reason_codes: Some(reject_codes),
    },
    Action {
        label: "request changes",
        verdict: Some(Verdict::RequestChanges),
        reason_codes: Some(request_changes_codes),
    },
    Action {
        label: "skip (record nothing)",
        verdict: None,
        reason_codes: None,
    },
];

/// Where the cursor starts: on skip, so that a stray Enter records nothing.
const DEFAULT_ACTION: usize = ACTIONS.len() - 1;

/// From this tier on, the reviewer types the request id to confirm the decision.
const CONFIRM_FROM_TIER: u8 = 4;

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let id = args.request.as_str();
    if !super::can_prompt() {
        return Err(no_terminal(ctx, id));
    }
    let ws = ctx.workspace()?;
    let repo = AuditRepo::open(ws.root())?;
    let now = now()?;
    let st = engine::status(&repo, id, now)?;
    let (pack, recorded) = ctx.evidence_pack(id, now)?;
    emit(
        (present::recorded_note_text(&pack.request, recorded.as_ref())
            + &present::pack_table(&pack)
            + "\n"
            + &status::text(id, &st, now))
            .as_bytes(),
    )?;
    if !matches!(st.outcome, Outcome::Pending { .. }) {
        return Err(CliError::new(
            Exit::Refused,
            format!(
                "`{}` awaits no decision (it is {}): nothing to review, nothing recorded",
                escape(id),
                st.outcome.name()
            ),
        ));
    }
    let tier = st
        .state
        .derived
        .as_ref()
        .and_then(|d| d.as_ref().ok())
        .map_or(u8::MAX, |d| d.tier);
    let matrix = ws.load_matrix()?;

    let labels: Vec<&str> = ACTIONS.iter().map(|a| a.label).collect();
    let Some(action) = select(
        &format!("decision on `{}`", escape(id)),
        &labels,
        DEFAULT_ACTION,
    )?
    .and_then(|i| ACTIONS.get(i)) else {
        return skipped(id);
    };
    let Some(verdict) = action.verdict else {
        return skipped(id);
    };
    let reason_code = match action.reason_codes {
        None => None,
        Some(codes) => {
            let codes = codes(&matrix);
            if codes.is_empty() {
                return Err(CliError::new(
                    Exit::Refused,
                    format!(
                        "the matrix has no reason codes for `{}`: nothing recorded",
                        verdict.command()
                    ),
                ));
            }
            let shown: Vec<&str> = codes.iter().map(String::as_str).collect();
            match select("reason code", &shown, 0)?.and_then(|i| codes.get(i)) {
                Some(code) => Some(code.clone()),
                None => return skipped(id),
            }
        }
    };
    let comment = input("comment (optional, Enter for none)")?;
    let comment = (!comment.is_empty()).then_some(comment);
    if tier >= CONFIRM_FROM_TIER {
        let typed = input(&format!(
            "tier {tier}: type the request id `{}` to confirm",
            escape(id)
        ))?;
        if typed.trim() != id {
            return Err(CliError::new(
                Exit::Refused,
                format!(
                    "the id typed (`{}`) is not `{}`: nothing recorded",
                    escape(&typed),
                    escape(id)
                ),
            ));
        }
    }
    // The version on the screen is the one decided (the engine refuses under the lock if
    // another has been proposed while the prompt was open).
    decide::record(
        ctx,
        &Decision {
            reason_code: reason_code.as_deref(),
            comment: comment.as_deref(),
            seen_version: Some(st.state.version),
            ..Decision::new(id, verdict, &args.key)
        },
    )
}

fn skipped(id: &str) -> CliResult {
    eprintln!("{}: skipped, nothing recorded", escape(id));
    Ok(Exit::Ok)
}

fn prompt_failed(e: &dialoguer::Error) -> CliError {
    CliError::new(
        Exit::Io,
        format!("cannot prompt on the terminal: {e}; nothing recorded"),
    )
}

/// A choice on the terminal (stderr); `None` when the reviewer quits it (Esc, `q`).
fn select(prompt: &str, items: &[&str], default: usize) -> CliResult<Option<usize>> {
    dialoguer::Select::new()
        .with_prompt(prompt)
        .items(items)
        .default(default)
        .interact_opt()
        .map_err(|e| prompt_failed(&e))
}

/// A line typed on the terminal (stderr), possibly empty.
fn input(prompt: &str) -> CliResult<String> {
    dialoguer::Input::<String>::new()
        .with_prompt(prompt)
        .allow_empty(true)
        .interact_text()
        .map_err(|e| prompt_failed(&e))
}

/// Without a terminal nothing is prompted: the refusal names the commands that record
/// the same decisions, with the matrix's reason codes when it loads.
fn no_terminal(ctx: &Ctx, id: &str) -> CliError {
    let matrix = ctx.workspace().and_then(|ws| Ok(ws.load_matrix()?)).ok();
    let mut e = CliError::new(
        Exit::Refused,
        format!(
            "`hitl review` prompts on a terminal, and standard input or standard error is not one: nothing recorded for `{}`",
            escape(id)
        ),
    );
    let id = escape(id);
    for action in &ACTIONS {
        let Some(verdict) = action.verdict else {
            continue;
        };
        let mut hint = format!("`hitl {} {id}", verdict.command());
        if let Some(codes) = action.reason_codes {
            hint.push_str(" --reason-code CODE`");
            if let Some(m) = &matrix {
                hint.push_str(&format!(" (CODE: {})", codes(m).join(", ")));
            }
        } else {
            hint.push('`');
        }
        e.hints.push(hint);
    }
    e.hints.push(format!(
        "`hitl show {id}` and `hitl status {id}` show what `review` shows"
    ));
    e
}
