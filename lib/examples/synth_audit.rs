//! Builds a synthetic audit of N events through the real append code
//! (`AuditRepo::append`): each request is one commit of five proposal events and one
//! commit of a signed decision, like `hitl propose` and `hitl approve`.
//!
//! Usage: `cargo run --release -p hitl-lib --example synth_audit -- DIR N [PENDING]`
//!
//! DIR must be an empty folder; the tool creates a git repository there with an ed25519
//! key (`DIR/key`, made by `ssh-keygen`), `allowed_signers` (principal
//! `bench@example.com`), the example `approval-matrix.yaml`, and the audit. The last
//! PENDING requests (default 0) are left awaiting a decision that `bench@example.com`
//! may make (their ids go to `DIR/pending.txt`), so `hitl approve ID --key DIR/key` can
//! be timed as a whole process on a large audit. On an existing DIR it only appends. It prints the
//! time of each 1,000th append so the cost per append can be followed as the log grows.
//! Benchmarks: docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark tool")]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use hitl_lib::audit::{Actor, Appender, AuditRepo, ConfigVersions, NewEvent};
use hitl_lib::signing::SigningKey;
use serde_json::{Map, Value as Json, json};

fn obj(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

fn init(dir: &Path, key_path: &Path, ok: &dyn Fn(&mut Command)) {
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(key_path));
    ok(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(dir));
    let public = std::fs::read_to_string(dir.join("key.pub")).unwrap();
    std::fs::write(
        dir.join("allowed_signers"),
        format!("bench@example.com namespaces=\"git,hitl\" {public}"),
    )
    .unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../approval-matrix.yaml");
    std::fs::copy(example, dir.join("approval-matrix.yaml")).unwrap();
    // The trust root and the matrix in a first commit, signed by the bench key.
    let git = |args: &[&str]| ok(Command::new("git").arg("-C").arg(dir).args(args));
    git(&["add", "allowed_signers", "approval-matrix.yaml"]);
    git(&[
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.com",
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
    std::fs::write(dir.join(".gitignore"), "key\nkey.pub\npending.txt\n").unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let key_path = dir.join("key");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success());
    let pending: u64 = args.get(3).map_or(0, |p| p.parse().unwrap());
    // An existing audit from an earlier run: only append (N more events, PENDING more
    // requests), with its key.
    let resume = dir.join(".git").exists();
    if !resume {
        init(dir, &key_path, &ok);
    }
    let key = SigningKey::from_file(&key_path, &mut || None).unwrap();
    let repo = AuditRepo::open(dir).unwrap();
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
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
        let now = start + Duration::seconds(i64::try_from(request).unwrap() * 60);
        let how = Appender {
            key: &key,
            actor: Actor {
                principal: "bench@example.com".to_owned(),
                key: key.fingerprint(),
            },
            config: config.clone(),
            clock: &move || Ok(now),
            subject: format!("propose {id} (tier 3) by bench@example.com"),
            trailers: vec![("Hitl-Tier".to_owned(), "3".to_owned())],
        };
        let proposal = format!(
            "id: {id}\nrequested_by: maria@example.com\naction: {{type: execute, name: payments.refund}}\n"
        );
        let digest = format!(
            "sha256:{}",
            hitl_lib::audit::sha256_hex(proposal.as_bytes())
        );
        let kinds = [
            "proposed",
            "classified",
            "evidence_assembled",
            "policy_checked",
            "approval_requested",
        ];
        let take = if is_pending {
            5
        } else {
            usize::try_from((n - written).min(5)).unwrap()
        };
        let events: Vec<NewEvent> = kinds[..take]
            .iter()
            .map(|k| NewEvent {
                kind: (*k).to_owned(),
                request: id.clone(),
                fields: obj(json!({
                    "requested_by": "maria@example.com",
                    "submitted_by": "synthetic-agent@agents.example.com",
                    "tool": "payments.refund",
                    "proposal": digest,
                    "tier": 3,
                    "eligible": [{"role": "support-lead", "members": ["bench@example.com"]}],
                    "self_approval": false,
                    "expires_at": "2099-01-01T00:00:00Z",
                    "evidence_pack": digest,
                })),
                sign: false,
            })
            .collect();
        let blobs = vec![proposal.into_bytes()];
        repo.append(&how, |_, _, _| {
            Ok::<_, hitl_lib::audit::AuditError>((events, blobs))
        })
        .unwrap();
        appends += 1;
        if is_pending {
            pending_ids.push_str(&id);
            pending_ids.push('\n');
            continue;
        }
        written += take as u64;
        if written < n {
            let how = Appender {
                subject: format!("approve {id} (tier 3) by bench@example.com"),
                trailers: vec![("Hitl-Decision".to_owned(), "approved".to_owned())],
                ..how
            };
            let decision = NewEvent {
                kind: "decision".to_owned(),
                request: id.clone(),
                fields: obj(
                    json!({"approver": "bench@example.com", "role": "support-lead", "decision": "approved", "reason_code": null}),
                ),
                sign: true,
            };
            repo.append(&how, |_, _, _| {
                Ok::<_, hitl_lib::audit::AuditError>((vec![decision], Vec::new()))
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
