//! `hitl demo [--dir DIR]`: the whole lifecycle in a scratch workspace, narrated.
//!
//! The demo decides nothing itself: it makes a workspace (the example one, moved to
//! today), keys and a first commit, then runs this same `hitl` binary step by step, as a
//! user would type it, and checks that each step ends as the story says.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;

use hitl_lib::scaffold;

use super::{CliError, CliResult, Ctx, Exit, emit, now};

/// Run the approval lifecycle, narrated, in a scratch workspace
///
/// The workspace holds the example matrix, policies and requests moved to today, demo
/// keys for the example people and a first commit; then an
/// agent proposes a refund, the evidence pack is shown, a self-approval is refused, the
/// support lead approves, a second refund is rejected with a reason code, and `verify`
/// and `replay` check it all from the audit.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the workspace in DIR (a new or empty folder) to explore afterwards; without
    /// it, the demo runs in a temporary folder that is removed at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The agent that proposes (its principal in `policies/data/rbac.json`).
const AGENT: &str = "support-copilot@agents.example.com";
/// The requester of the example refunds.
const REQUESTER: &str = "maria@example.com";
/// The support lead and revenue-ops (`approval-matrix.yaml`).
const SUPPORT_LEAD: &str = "lea@example.com";
const REVENUE_OPS: &str = "ravi@example.com";
/// The IAM change's agent and its two approvers, from distinct roles.
const DEPLOY_AGENT: &str = "deploy-bot@agents.example.com";
const IAM_OWNER: &str = "ines@example.com";
const OTHER_IAM_OWNER: &str = "ivan@example.com";
const SECURITY_APPROVER: &str = "sam@example.com";

pub fn run(ctx: &Ctx, args: &Args) -> CliResult {
    let (scratch, dir) = match &args.dir {
        Some(d) => {
            let dir = ctx.cwd().join(d);
            refuse_unless_empty(&dir)?;
            (None, dir)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("hitl-demo-")
                .tempdir()
                .map_err(|e| {
                    CliError::new(Exit::Io, format!("cannot make a temporary folder: {e}"))
                })?;
            let dir = t.path().to_path_buf();
            (Some(t), dir)
        }
    };
    let now = now()?;
    say(&format!(
        "hitl demo: the approval lifecycle in `{}`\n\n\
         The workspace is a copy of the example one (matrix, policies, 13 requests), with\n\
         every request moved to today: each keeps its age and expiry relative to now.\n",
        dir.display()
    ))?;
    setup(&dir, now)?;
    let demo = Demo { dir: &dir };
    demo.steps()?;
    let mut close = String::from(
        "\nThat is the lifecycle: proposal, evidence, separation of duties, signed approvals\nand a signed rejection, a scoped approval file checked and spent once, all in a\nhash-chained, signed git audit.\n",
    );
    match (&scratch, &args.dir) {
        (Some(_), _) => close.push_str(
            "\nThe workspace was temporary and is gone. Keep one to explore with\n  hitl demo --dir DIR\n",
        ),
        (None, Some(d)) => {
            let d = d.display();
            let _ = write!(
                close,
                "\nTry next, in `{d}` (the keys under `keys/` are for this demo only):\n\
                 \x20 hitl -C {d} log                       # every event, oldest first\n\
                 \x20 hitl -C {d} replay refund-4712        # a rejection and its reason code\n\
                 \x20 hitl -C {d} explain iam-grant-ci-deployer   # tier 4: two roles, a change window\n\
                 \x20 hitl -C {d} show email-contract-terms # denied by policy\n\
                 \x20 hitl -C {d} propose email-customer-5531 --key {d}/keys/{AGENT}\n\
                 \x20 hitl -C {d} approve email-customer-5531 --key {d}/keys/{SUPPORT_LEAD}\n\
                 \x20 git -C {d} log --show-signature       # git checks every signature itself\n\
                 \x20 hitl -C {d} verify\n"
            );
        }
        (None, None) => {}
    }
    say(&close)?;
    drop(scratch);
    Ok(Exit::Ok)
}

/// `--dir` must be new or empty: the demo writes a whole workspace and a git repository.
fn refuse_unless_empty(dir: &Path) -> CliResult<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                let mut e = CliError::new(
                    Exit::Io,
                    format!(
                        "refusing to run the demo in `{}`: the folder is not empty",
                        dir.display()
                    ),
                );
                e.hints
                    .push("name a new or empty folder with `--dir`".to_owned());
                return Err(e);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(CliError::new(
            Exit::Io,
            format!(
                "refusing to run the demo in `{}`: it is a file",
                dir.display()
            ),
        )),
        Err(e) => Err(CliError::new(
            Exit::Io,
            format!("cannot read `{}`: {e}", dir.display()),
        )),
    }
}

fn io(what: &str, e: &impl std::fmt::Display) -> CliError {
    CliError::new(Exit::Io, format!("demo: {what}: {e}"))
}

fn say(text: &str) -> CliResult<()> {
    emit(text.as_bytes())
}

/// The workspace, keys, `allowed_signers` and the first commit.
fn setup(dir: &Path, now: chrono::DateTime<chrono::Utc>) -> CliResult<()> {
    // A repository of its own, even inside another one: the demo's commit and its git
    // settings must never touch a repository the user already has.
    scaffold::init_repository(dir)?;
    scaffold::init(dir, now, None)?;
    for (id, text) in scaffold::EXAMPLE_REQUESTS {
        let path = dir.join("requests").join(format!("{id}.yaml"));
        std::fs::write(&path, scaffold::live(text, now))
            .map_err(|e| io(&format!("cannot write `{}`", path.display()), &e))?;
    }
    let ws = hitl_lib::workspace::Workspace::open(dir)?;
    let matrix = ws.load_matrix()?;
    // The agents, admins and role members of the matrix, and the two requesters of
    // the examples.
    let mut people: Vec<String> = vec![REQUESTER.to_owned(), "dev@example.com".to_owned()];
    people.extend(matrix.governance.agents.iter().cloned());
    people.extend(matrix.governance.admins.iter().cloned());
    for role in &matrix.roles {
        people.extend(role.members.iter().cloned());
    }
    people.sort();
    people.dedup();
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| io("cannot create `keys/`", &e))?;
    std::fs::write(
        keys.join("README"),
        "Demo keys made by `hitl demo`: unprotected, for this demo workspace only.\nNever use them for anything else.\n",
    )
    .map_err(|e| io("cannot write `keys/README`", &e))?;
    std::fs::write(dir.join(".gitignore"), "/keys/\n")
        .map_err(|e| io("cannot write `.gitignore`", &e))?;
    let mut signers = std::fs::read_to_string(dir.join("allowed_signers"))
        .map_err(|e| io("cannot read `allowed_signers`", &e))?;
    for who in &people {
        let key = keys.join(who);
        tool(
            dir,
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-C", who, "-f"],
            Some(key.as_os_str()),
        )?;
        let public = std::fs::read_to_string(key.with_file_name(format!("{who}.pub")))
            .map_err(|e| io(&format!("cannot read the public key of `{who}`"), &e))?;
        // Agents sign proposals and commits, never approval files (`hitl-approval`).
        let namespaces = if who.contains("@agents.") {
            "git,hitl"
        } else {
            "git,hitl,hitl-approval"
        };
        let _ = writeln!(
            signers,
            "{who} namespaces=\"{namespaces}\" {}",
            public.trim()
        );
    }
    std::fs::write(dir.join("allowed_signers"), signers)
        .map_err(|e| io("cannot write `allowed_signers`", &e))?;
    say(&format!(
        "Made ed25519 keys for {} example people under `keys/` (demo only, unprotected) and\n\
         listed them in `allowed_signers`. The first commit, signed by {SUPPORT_LEAD}, is the\n\
         audit's root of trust.\n",
        people.len()
    ))?;
    let lea_key = keys.join(SUPPORT_LEAD);
    let signing = format!("user.signingkey={}", lea_key.display());
    for args in [
        &["config", "gpg.format", "ssh"][..],
        &["config", "gpg.ssh.allowedSignersFile", "allowed_signers"],
        &["add", "-A", "--", "."],
        &[
            "-c",
            "user.name=Lea (demo)",
            "-c",
            "user.email=lea@example.com",
            "-c",
            &signing,
            "-c",
            "core.hooksPath=/dev/null",
            "commit",
            "-q",
            "-S",
            "-m",
            "hitl demo workspace",
        ],
    ] {
        tool(dir, "git", args, None)?;
    }
    Ok(())
}

/// Runs a helper program (`git`, `ssh-keygen`) quietly; its failure stops the demo.
fn tool(dir: &Path, program: &str, args: &[&str], last: Option<&std::ffi::OsStr>) -> CliResult<()> {
    let mut cmd = Proc::new(program);
    cmd.args(args).current_dir(dir);
    if let Some(a) = last {
        cmd.arg(a);
    }
    for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().map_err(|e| {
        let mut err = io(&format!("cannot run `{program}`"), &e);
        err.hints.push(format!(
            "the demo needs `{program}` on PATH (git and the OpenSSH client)"
        ));
        err
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CliError::new(
            Exit::Io,
            format!(
                "demo: `{program} {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ))
    }
}

struct Demo<'a> {
    dir: &'a Path,
}

impl Demo<'_> {
    fn steps(&self) -> CliResult<()> {
        let agent = format!("keys/{AGENT}");
        let maria = format!("keys/{REQUESTER}");
        let lea = format!("keys/{SUPPORT_LEAD}");
        let ravi = format!("keys/{REVENUE_OPS}");
        self.step(
            1,
            "The agent's proposal: a 180 EUR refund. This is the evidence pack a reviewer reads.",
            &["show", "refund-4711"],
            0,
        )?;
        self.step(
            2,
            "The agent records the proposal in the audit, signed with its own key.",
            &["propose", "refund-4711", "--key", &agent],
            0,
        )?;
        self.step(
            3,
            "Maria asked for the refund; she may not approve it herself (separation of duties).",
            &["approve", "refund-4711", "--key", &maria],
            6,
        )?;
        self.step(
            4,
            "Lea, the support lead, approves: a signed decision, a signed commit.",
            &[
                "approve",
                "refund-4711",
                "--comment",
                "duplicate charge confirmed in the payment log",
                "--key",
                &lea,
            ],
            0,
        )?;
        self.step(
            5,
            "A second refund, 2,400 EUR: above the support lead's limit, so it goes to revenue-ops.",
            &["propose", "refund-4712", "--key", &agent],
            0,
        )?;
        self.step(
            6,
            "Ravi (revenue-ops) rejects it with a reason code from the matrix.",
            &[
                "reject",
                "refund-4712",
                "--reason-code",
                "insufficient-evidence",
                "--comment",
                "the outage report does not cover three days",
                "--key",
                &ravi,
            ],
            0,
        )?;
        let deploy = format!("keys/{DEPLOY_AGENT}");
        let ines = format!("keys/{IAM_OWNER}");
        let sam = format!("keys/{SECURITY_APPROVER}");
        self.step(
            7,
            "An IAM change (tier 4): two approvals, from distinct roles. The deploy agent proposes it.",
            &["propose", "iam-grant-ci-deployer", "--key", &deploy],
            0,
        )?;
        self.step(
            8,
            "Ines (iam-owner) approves: one of the two.",
            &["approve", "iam-grant-ci-deployer", "--key", &ines],
            0,
        )?;
        let ivan = format!("keys/{OTHER_IAM_OWNER}");
        self.step(
            9,
            "Ivan, also iam-owner: refused. The tier asks for distinct roles, and iam-owner has given its approval.",
            &["approve", "iam-grant-ci-deployer", "--key", &ivan],
            6,
        )?;
        self.step(
            10,
            "Sam (security-approver) gives the second approval: the quorum is reached.",
            &["approve", "iam-grant-ci-deployer", "--key", &sam],
            0,
        )?;
        self.step(
            11,
            "Where it stands, as the workflow engine derives it from the audit.",
            &["status", "iam-grant-ci-deployer"],
            0,
        )?;
        let file = "refund-4711.approval.json";
        let charge = "payments/charge/ch_981";
        self.step(
            12,
            "Lea's approval became a scoped approval file: this refund, this charge, at most 180 EUR, for 2 hours, once.",
            &["approval", "refund-4711", "--out", file],
            0,
        )?;
        let check = |amount: &'static str, target: &'static str| {
            vec![
                "check",
                file,
                "--action",
                "payments.refund",
                "--target",
                target,
                "--amount",
                amount,
                "--currency",
                "EUR",
            ]
        };
        self.step(
            13,
            "The payment host checks it before it acts: every signature, the scope, the window.",
            &check("180", charge),
            0,
        )?;
        self.step(
            14,
            "A larger amount is not what was approved.",
            &check("500", charge),
            16,
        )?;
        self.step(
            15,
            "Nor is another charge.",
            &check("180", "payments/charge/ch_982"),
            15,
        )?;
        let exec = |verify: bool| {
            let mut a = vec![
                "exec",
                file,
                "--amount",
                "180",
                "--currency",
                "EUR",
                "--key",
                &agent,
            ];
            if verify {
                a.extend(["--verify", "true"]);
            }
            a.extend(["--", "echo", "refund ch_981: 180 EUR (a harmless stand-in)"]);
            a
        };
        self.step(
            16,
            "The agent runs the refund under it: the approval is spent in a signed commit first, then the command runs, then its verification.",
            &exec(true),
            0,
        )?;
        self.step(
            17,
            "A second run of the same file: refused, the approval was single-use; the refusal is recorded in the audit, signed by the agent.",
            &exec(false),
            22,
        )?;
        self.step(
            18,
            "The auditor's check: the hash chain, every signature, the git history, the approval files.",
            &["verify"],
            0,
        )?;
        self.step(
            19,
            "Replay: the timeline from the audit alone, and the outcome recomputed.",
            &["replay", "refund-4711"],
            0,
        )?;
        Ok(())
    }

    /// Runs `hitl ARGS` in the workspace, shows the command and what it printed, and
    /// stops the demo when it does not exit with `expect`.
    fn step(&self, n: u32, why: &str, args: &[&str], expect: i32) -> CliResult<()> {
        let exe = std::env::current_exe()
            .map_err(|e| io("cannot find the hitl binary that runs the demo", &e))?;
        let mut cmd = Proc::new(exe);
        cmd.arg("-C")
            .arg(self.dir)
            .args(args)
            .current_dir(self.dir)
            .env_remove("HITL_SIGNING_KEY");
        for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
            cmd.env_remove(var);
        }
        let out = cmd
            .output()
            .map_err(|e| io("cannot run the hitl binary", &e))?;
        let shown: Vec<OsString> = args.iter().map(OsString::from).collect();
        let line = shown
            .iter()
            .map(|a| {
                let a = a.to_string_lossy();
                if a.contains(' ') {
                    format!("\"{a}\"")
                } else {
                    a.into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut text = format!("\n── {n}. {why}\n$ hitl {line}\n");
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let code = out.status.code().unwrap_or(-1);
        if code != 0 {
            let _ = writeln!(text, "(exit {code}, as expected)");
        }
        if code != expect {
            say(&text.replace(", as expected)", ")"))?;
            return Err(CliError::new(
                Exit::Findings,
                format!("demo step {n} (`hitl {line}`) exited with {code}, not {expect}"),
            ));
        }
        say(&text)
    }
}
