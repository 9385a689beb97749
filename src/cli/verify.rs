//! `hitl verify`: the whole chain and its git history, like `aws cloudtrail
//! validate-logs`: a summary, then one line per problem; exit 1 on any.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use hitl_lib::audit::verify::{self, Phase, Pins, Report};
use hitl_lib::audit::{AuditRepo, checkpoint};

use super::{CliError, CliResult, Ctx, Exit, emit, print_json};

/// Verify the audit: every event's link, seq, blobs and signatures, and every commit
/// that touched the audit or its configuration, against each of its parents.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Table)]
    pub format: VerifyFormat,
    /// A checkpoint from `hitl checkpoint`: also prove the log still extends it and
    /// rests on the root of trust it records.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// The root of trust you recorded (its full commit id, as `verify` names it): a
    /// history whose root of trust is another commit is a problem.
    #[arg(long, value_name = "COMMIT", value_parser = full_commit_id)]
    pub trust_root: Option<String>,
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) hex digits, never a name or an
/// abbreviation the repository's writers could make ambiguous.
fn full_commit_id(s: &str) -> Result<String, String> {
    if matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("give the full commit id (40 hex digits, as `hitl verify` prints the trust root), not a name or an abbreviation".to_owned())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    Table,
    Json,
}

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let ws = ctx.workspace()?;
    let repo = AuditRepo::open(ws.root())?;
    let mut signer = None;
    let pinned: Option<checkpoint::Checkpoint> = match &args.checkpoint {
        None => None,
        Some(p) => {
            let path = ctx.cwd().join(p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CliError::new(Exit::Io, format!("cannot read `{}`: {e}", p.display()))
            })?;
            let (head, key) = checkpoint::read(&p.display().to_string(), &text)
                .map_err(|e| CliError::new(Exit::InvalidInput, e.to_string()))?;
            // The checkpoint vouches for the audit only if its signer is trusted, by the
            // one trust function, under the signer files at HEAD.
            let fp = hitl_lib::signing::fingerprint(&key);
            let tree = repo
                .head_for_reading()?
                .map(|c| c.tree())
                .transpose()
                .map_err(hitl_lib::audit::AuditError::from)?;
            let trust = match &tree {
                Some(t) => hitl_lib::workflow::config::Config::load(&repo, t)?.trust,
                None => Err("the audit is empty".to_owned()),
            };
            let now = super::now()?;
            let principal = trust
                .and_then(|(allowed, revoked)| {
                    checkpoint::trusted_signer(&allowed, &revoked, &key, now)
                        .map_err(|u| u.message)
                })
                .map_err(|why| {
                    let mut e = CliError::new(
                        Exit::Refused,
                        format!("the checkpoint `{}` is signed by key `{fp}`, which is not trusted: {why}", p.display()),
                    );
                    e.hints.push("an auditor's key needs a line in `allowed_signers` (namespace `hitl-checkpoint` or `hitl`)".to_owned());
                    e
                })?;
            signer = Some(format!("{principal} ({fp})"));
            Some(head)
        }
    };
    // A progress bar on a terminal only (stderr): one for the events, then one for the
    // commits, each made with its length and name before it is first drawn.
    let tty = std::io::stderr().is_terminal();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>7} [{bar:30}] {human_pos}/{human_len} ({eta} left)",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bar: std::sync::Mutex<Option<(Phase, indicatif::ProgressBar)>> =
        std::sync::Mutex::new(None);
    let progress = |phase: Phase, done: u64, total: u64| {
        if !tty {
            return;
        }
        let Ok(mut current) = bar.lock() else {
            return;
        };
        match &*current {
            Some((p, b)) if *p == phase => {
                b.set_length(total);
                b.set_position(done);
            }
            _ => {
                if let Some((_, old)) = current.take() {
                    old.finish_and_clear();
                }
                let name = match phase {
                    Phase::Events => "events",
                    Phase::History => "commits",
                };
                let b = indicatif::ProgressBar::new(total)
                    .with_style(style.clone())
                    .with_prefix(name)
                    .with_position(done);
                b.tick();
                *current = Some((phase, b));
            }
        }
    };
    let pins = Pins {
        checkpoint: pinned.as_ref().map(|c| c.head.clone()),
        checkpoint_root: pinned.as_ref().and_then(|c| c.trust_root.clone()),
        trust_root: args.trust_root.clone(),
        now: Some(super::now()?),
    };
    let report = verify::verify(&repo, &pins, &progress);
    if let Ok(Some((_, b))) = bar.into_inner() {
        b.finish_and_clear();
    }
    let report = report?;
    match args.format {
        VerifyFormat::Json => {
            let mut value = serde_json::to_value(&report)
                .map_err(|e| CliError::new(Exit::Io, format!("cannot render JSON: {e}")))?;
            if let (Some(c), Some(by), Some(map)) = (&pinned, &signer, value.as_object_mut()) {
                // As in the table: whose key signed the auditor's checkpoint, and the
                // root of trust it records (null: a v1 checkpoint, which records none).
                map.insert(
                    "checkpoint".to_owned(),
                    serde_json::json!({
                        "seq": c.head.seq,
                        "signed_by": by,
                        "trust_root": c.trust_root,
                    }),
                );
            }
            print_json(&value)?;
        }
        VerifyFormat::Table => {
            let mut text = String::new();
            if let (Some(c), Some(by)) = (&pinned, &signer) {
                // The checkpoint is the auditor's own file: say whose key signed it, so
                // they can tell it is theirs.
                text.push_str(&format!("checkpoint: seq {}, signed by {by}", c.head.seq));
                text.push_str(match &c.trust_root {
                    Some(_) => "\n",
                    None => "; it records no root of trust (a v1 checkpoint): make a new one with `hitl checkpoint`\n",
                });
            }
            text.push_str(&render(&report, &pins));
            emit(text.as_bytes())?;
        }
    }
    Ok(if report.ok() {
        Exit::Ok
    } else {
        Exit::Findings
    })
}

fn render(r: &Report, pins: &Pins) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let head = r.head.as_ref().map_or_else(
        || "empty".to_owned(),
        |h| {
            format!(
                "seq {}, event sha256:{}, commit {}",
                h.seq, &h.event, h.commit
            )
        },
    );
    let _ = writeln!(
        s,
        "{} events, {} decision signatures, {} audit commits checked; head: {head}",
        r.events, r.signatures, r.commits
    );
    if let Some(root) = &r.trust_root {
        // The one commit whose trust is not signed but pinned: an auditor compares it
        // with the one they recorded (docs/audit.md).
        let mismatch = r.problems.iter().any(|p| p.code == "trust-root-mismatch");
        let pinned = match (&pins.trust_root, &pins.checkpoint_root) {
            _ if mismatch => "",
            (Some(_), Some(_)) => " (pinned by --trust-root and the checkpoint)",
            (Some(_), None) => " (pinned by --trust-root)",
            (None, Some(_)) => " (as the checkpoint records)",
            (None, None) => "",
        };
        let _ = writeln!(
            s,
            "trust root: commit {}, allowed_signers sha256:{}{pinned}",
            root.commit, root.allowed_signers
        );
    }
    if r.problems.is_empty() {
        let _ = writeln!(s, "ok: no problems");
        return s;
    }
    let _ = writeln!(
        s,
        "{} problem{}:",
        r.problems.len(),
        if r.problems.len() == 1 { "" } else { "s" }
    );
    for p in &r.problems {
        let mut line = format!("  {}", p.code);
        if let Some(seq) = p.seq {
            let _ = write!(line, "  seq {seq}");
        }
        if let Some(f) = &p.file {
            let _ = write!(
                line,
                "  {}",
                hitl_lib::decode::safe_path(std::path::Path::new(f))
            );
        }
        if let Some(c) = &p.commit {
            let _ = write!(line, "  commit {}", &c[..12.min(c.len())]);
        }
        let _ = writeln!(s, "{line}: {}", p.reason);
    }
    s
}
