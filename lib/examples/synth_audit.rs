//! Builds a synthetic audit of N events through the real append code
//! (`AuditRepo::append`) and the real workflow engine (`judge_new_proposal`,
//! `workflow::decision`): each request is one commit of five proposal events (the example
//! refund, under the example matrix and policies) by the agent, and one commit of a
//! signed decision by the support lead, as `hitl propose` and `hitl approve` make them.
//!
//! Usage: `cargo run --release -p hitl-lib --example synth_audit -- DIR N [PENDING]`
//!
//! DIR must be an empty folder; the tool creates a git repository there with two ed25519
//! keys made by `ssh-keygen` (`DIR/key`: lea@example.com, the support lead;
//! `DIR/agent`: support-copilot@agents.example.com, the agent), `allowed_signers`, the
//! example `approval-matrix.yaml` and `policies/`, and the audit. The last PENDING
//! requests (default 0) are left awaiting a decision that lea may make (their ids go to
//! `DIR/pending.txt`), so `hitl approve ID --key DIR/key` can be timed as a whole process
//! on a large audit. On an existing DIR it only appends. It prints the
//! time of each 1,000th append so the cost per append can be followed as the log grows.
//! Benchmarks: docs/performance.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark tool"
)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use hitl_lib::audit::{Actor, Appender, AuditRepo, ConfigVersions};
use hitl_lib::signing::SigningKey;

const AGENT: &str = "support-copilot@agents.example.com";
const LEAD: &str = "lea@example.com";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

fn init(dir: &Path, key_path: &Path, agent_path: &Path, ok: &dyn Fn(&mut Command)) {
    for k in [key_path, agent_path] {
        ok(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(k));
    }
    ok(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(dir));
    let public = std::fs::read_to_string(dir.join("key.pub")).unwrap();
    let agent = std::fs::read_to_string(dir.join("agent.pub")).unwrap();
    std::fs::write(
        dir.join("allowed_signers"),
        format!("{LEAD} namespaces=\"git,hitl,hitl-approval\" {public}{AGENT} namespaces=\"git,hitl\" {agent}"),
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(
        root.join("approval-matrix.yaml"),
        dir.join("approval-matrix.yaml"),
    )
    .unwrap();
    copy_dir(&root.join("policies"), &dir.join("policies"));
    // The trust root, the matrix and the policies in a first commit, signed by lea.
    let git = |args: &[&str]| ok(Command::new("git").arg("-C").arg(dir).args(args));
    git(&["add", "allowed_signers", "approval-matrix.yaml", "policies"]);
    git(&[
        "-c",
        "user.name=bench",
        "-c",
        &format!("user.email={LEAD}"),
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("user.signingkey={}", key_path.display()),
        "commit",
        "-q",
        "-S",
        "-m",
        "workspace",
    ]);
    std::fs::write(
        dir.join(".gitignore"),
        "key\nkey.pub\nagent\nagent.pub\npending.txt\n",
    )
    .unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let key_path = dir.join("key");
    let agent_path = dir.join("agent");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success());
    let pending: u64 = args.get(3).map_or(0, |p| p.parse().unwrap());
    // An existing audit from an earlier run: only append (N more events, PENDING more
    // requests), with its key.
    let resume = dir.join(".git").exists();
    if !resume {
        init(dir, &key_path, &agent_path, &ok);
    }
    let key = SigningKey::from_file(&key_path, &mut || None).unwrap();
    let agent_key = SigningKey::from_file(&agent_path, &mut || None).unwrap();
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../requests/refund-4711.yaml"),
    )
    .unwrap();
    let repo = AuditRepo::open(dir).unwrap();
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let wall = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0);
    let config = ConfigVersions {
        matrix: format!("sha256:{}", "a".repeat(64)),
        policies: format!("sha256:{}", "b".repeat(64)),
        tool: "hitl synth".to_owned(),
    };
    let mut written = 0_u64;
    // Request numbers continue after the requests already in the audit.
    let mut request = if resume {
        std::fs::read_dir(dir.join("audit/requests")).map_or(0, |shards| {
            shards
                .flatten()
                .map(|s| std::fs::read_dir(s.path()).map_or(0, Iterator::count) as u64)
                .sum()
        })
    } else {
        0
    };
    let mut appends = 0_u64;
    let t0 = Instant::now();
    let mut window = Instant::now();
    let mut pending_left = pending;
    let mut pending_ids = String::new();
    while written < n || pending_left > 0 {
        request += 1;
        let is_pending = written >= n;
        if is_pending {
            pending_left -= 1;
        }
        let id = if is_pending {
            format!("pend-{:08}", request)
        } else {
            format!("req-{request:08}")
        };
        // Decided requests a minute apart from 2026-01-01; pending ones made now, so that
        // `hitl approve` on the real clock finds them live.
        let now = if is_pending {
            // At the wall clock, never past it: a later `hitl approve` refuses a clock
            // behind the last event.
            wall
        } else {
            start + Duration::seconds(i64::try_from(request).unwrap() * 60)
        };
        let how = Appender {
            key: &agent_key,
            actor: Actor {
                principal: AGENT.to_owned(),
                key: agent_key.fingerprint(),
            },
            config: config.clone(),
            clock: &move || Ok(now),
        };
        // The example refund under its own id, made at `now`.
        let proposal = hitl_lib::scaffold::live(&template, now).replace("refund-4711", &id);
        let file = dir.join(format!("requests/{id}.yaml"));
        repo.append(&how, |repo, head, tree, now| {
            let judged = hitl_lib::workflow::engine::judge_new_proposal(
                repo,
                head,
                tree,
                agent_key.public(),
                &file,
                proposal.as_bytes(),
                AGENT,
                now,
            )
            .unwrap_or_else(|e| panic!("{id}: {e}"));
            Ok::<_, hitl_lib::audit::AuditError>(judged.proposal.built(AGENT))
        })
        .unwrap();
        appends += 1;
        if is_pending {
            pending_ids.push_str(&id);
            pending_ids.push('\n');
            continue;
        }
        written += 5;
        if written < n {
            let how = Appender {
                key: &key,
                actor: Actor {
                    principal: LEAD.to_owned(),
                    key: key.fingerprint(),
                },
                config: config.clone(),
                clock: &move || Ok(now),
            };
            repo.append(&how, |repo, head, tree, now| {
                let decided = hitl_lib::workflow::decision(
                    repo,
                    head,
                    tree,
                    &key,
                    &id,
                    LEAD,
                    hitl_lib::workflow::Verdict::Approve,
                    None,
                    None,
                    false,
                    None,
                    &format!("{written:032x}"),
                    now,
                )
                .unwrap_or_else(|e| panic!("{id}: {e}"));
                Ok::<_, hitl_lib::audit::AuditError>(decided.built)
            })
            .unwrap();
            written += 1;
            appends += 1;
        }
        if appends % 1000 < 2 && appends >= 1000 {
            let ms = window.elapsed().as_secs_f64() * 1000.0;
            println!(
                "{written} events, {appends} appends, last 1000 appends {ms:.0} ms ({:.2} ms each)",
                ms / 1000.0
            );
            window = Instant::now();
        }
    }
    // The pending ids, for `scripts/bench-audit.sh` (the key and this file are ignored
    // by git: see .gitignore).
    std::fs::write(dir.join("pending.txt"), pending_ids).unwrap();
    println!(
        "{written} events (+{pending} pending requests) in {appends} commits, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
