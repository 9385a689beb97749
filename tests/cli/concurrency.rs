//! Appends under contention, with a wrong clock and killed at random instants, through
//! the real binary (fresh `ssh-keygen` keys, a real git repository; [`AuditWs`]): the
//! clock is read under the audit lock, a clock behind the last event refuses, and the
//! lock files a killed append leaves are recovered by the next command.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};

use super::audit::{AuditWs, ok};
use super::support::{NOW, root, stderr, tree};

const AGENT: &str = "support-copilot@agents.example.com";
const LEA: &str = "lea@example.com";

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

/// `verify` reports no problem and counts `events`. These appends read the real clock,
/// so `verify` runs at an instant after all of them (at the test clock's, they would be
/// dated in the future: `time-future`).
fn assert_clean(w: &AuditWs, events: u64, when: &str) {
    let o = w.read_at("2100-01-01 00:00:00", &["verify", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(codes(&report).is_empty(), "{when}: {report}");
    assert_eq!(report["events"], events, "{when}: {report}");
}

/// `requests/refund-4711.yaml` as `requests/<id>.yaml` (the id matches the file name),
/// with its times moved by `times` (pairs of the example's time and the new one).
fn write_request(ws: &Path, id: &str, times: &[(&str, String)]) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("requests/refund-4711.yaml")).unwrap();
    assert!(text.contains("id: refund-4711\n"));
    text = text.replace("id: refund-4711\n", &format!("id: {id}\n"));
    for (from, to) in times {
        assert!(text.contains(from), "{from} is not in refund-4711.yaml");
        text = text.replace(from, to);
    }
    let path = ws.join("requests").join(format!("{id}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The example's times moved to the real clock: requested an hour ago, sources read just
/// before, expiring in a day.
fn real_clock_times() -> Vec<(&'static str, String)> {
    let now = Utc::now();
    let at = |d: chrono::Duration| (now + d).to_rfc3339_opts(SecondsFormat::Secs, true);
    vec![
        ("2026-11-27T09:00:00Z", at(chrono::Duration::minutes(-60))),
        ("2026-11-27T08:58:00Z", at(chrono::Duration::minutes(-62))),
        ("2026-11-27T08:59:00Z", at(chrono::Duration::minutes(-61))),
        ("2026-11-28T09:00:00Z", at(chrono::Duration::days(1))),
    ]
}

/// `hitl propose ID` as the agent: at `time` (`HITL_TEST_NOW`), or on the real clock
/// with `None`.
fn propose(w: &AuditWs, id: &str, time: Option<&str>) -> Proc {
    let key = w.key(AGENT);
    let mut cmd = Proc::new(snapbox::cmd::cargo_bin!("hitl"));
    cmd.args(["propose", id, "--key", key.to_str().unwrap()])
        .current_dir(w.ws())
        .env("TZ", "UTC")
        .env("HOME", w.dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("HITL_SIGNING_KEY")
        .env_remove("HITL_TEST_NOW");
    if let Some(t) = time {
        cmd.env("HITL_TEST_NOW", t);
    }
    cmd
}

fn spawn(mut cmd: Proc) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_clock_behind_the_last_event_is_refused_before_anything_is_written() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"])); // events 1-5 at NOW, 16:00
    let head = w.git(&["rev-parse", "HEAD"]);
    let before = tree(&w.ws());
    let hour_earlier = "2026-11-27 15:00:00";
    for args in [
        &["approve", "refund-4711"][..],
        &[
            "reject",
            "refund-4711",
            "--reason-code",
            "insufficient-evidence",
        ],
    ] {
        let o = w.hitl_at(hour_earlier, LEA, args);
        assert_eq!(o.status.code(), Some(6), "{args:?}: {}", text(&o));
        let err = stderr(&o);
        for part in [
            "the clock of this machine (2026-11-27T15:00:00Z)",
            "behind the last event of the audit (2026-11-27T16:00:00Z, seq 5)",
            "nothing was recorded",
            "fix the clock (NTP) and retry",
        ] {
            assert!(err.contains(part), "{args:?}: `{part}` missing in {err}");
        }
    }
    let o = w.hitl_at(hour_earlier, AGENT, &["propose", "refund-4712"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(stderr(&o).contains("seq 5"), "{}", stderr(&o));
    // Nothing written: not a commit, not an object, not a file of the working tree.
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    assert!(before == tree(&w.ws()), "a refused command changed files");
    assert_clean(&w, 5, "after the refusals");
    // The same second as the last event is not behind it.
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    assert_clean(&w, 6, "after the approval");
}

#[test]
fn the_clock_is_read_once_the_lock_is_taken() {
    let w = AuditWs::new();
    write_request(&w.ws(), "late-4711", &real_clock_times());
    // Another hitl appending: the audit lock held as `hitl` holds it.
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(w.ws().join(".git/hitl-audit.lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut child = spawn(propose(&w, "late-4711", None));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "propose did not wait for the lock"
    );
    let released = Utc::now().timestamp();
    lock.unlock().unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Recorded at the time it appended, not at the time it started and queued.
    let event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.event_file(1)).unwrap()).unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(event["at"].as_str().unwrap()).unwrap();
    assert!(at.timestamp() >= released, "{event}");
    assert_clean(&w, 5, "after the append");
}

const ROUNDS: usize = 5;
const PROCS: usize = 8;
const EACH: usize = 25;

#[test]
fn eight_processes_appending_25_times_each_keep_one_clean_chain_five_times_over() {
    // The real clock (no HITL_TEST_NOW): a process that read it before queueing on the
    // lock would record a time before the event of the process it waited for.
    let w = AuditWs::new();
    let start = Instant::now();
    let mut events = 0;
    for round in 0..ROUNDS {
        let t = Instant::now();
        let times = real_clock_times();
        for p in 0..PROCS {
            for n in 0..EACH {
                write_request(&w.ws(), &format!("c-{round}-{p}-{n}"), &times);
            }
        }
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..PROCS)
                .map(|p| {
                    let w = &w;
                    s.spawn(move || {
                        for n in 0..EACH {
                            let id = format!("c-{round}-{p}-{n}");
                            let o = propose(w, &id, None).output().unwrap();
                            assert_eq!(o.status.code(), Some(0), "{id}: {}", text(&o));
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.join().unwrap();
            }
        });
        events += 5 * PROCS * EACH;
        assert_clean(&w, events as u64, &format!("round {round}"));
        // One commit per append on top of the first, no fork.
        let commits = w.git(&["rev-list", "--count", "HEAD"]);
        assert_eq!(commits.trim(), (events / 5 + 1).to_string());
        assert_eq!(w.git(&["rev-list", "--min-parents=2", "HEAD"]), "");
        assert_eq!(
            w.git(&["status", "--porcelain", "--untracked-files=no"]),
            ""
        );
        println!(
            "round {round}: {} appends by {PROCS} processes in {:.1} s",
            PROCS * EACH,
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "{} appends in {:.1} s",
        ROUNDS * PROCS * EACH,
        start.elapsed().as_secs_f64()
    );
}

/// xorshift64*: a few random numbers that a seed reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Builds on `audit::a_process_killed_while_appending_loses_nothing_committed` (which
/// kills 30 times at fixed instants and fakes the state of a kill after the branch
/// moved): 100 appends, each killed after a random delay, with no cleanup in between.
#[test]
fn appends_killed_at_random_instants_are_recovered_by_the_next_command() {
    let seed = std::env::var("HITL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0068_6974_6c00_0009_u64);
    println!("seed {seed} (set HITL_TEST_SEED to replay another)");
    let mut rng = Rng(seed.max(1));
    let w = AuditWs::new();
    // How long one uninterrupted append takes (the median of three): the kills fall
    // anywhere in a process's run, from start-up to the index write, within 0-200 ms.
    let mut runs: Vec<Duration> = ["refund-4711", "k-cal-1", "k-cal-2"]
        .iter()
        .map(|id| {
            if id.starts_with("k-") {
                write_request(&w.ws(), id, &[]);
            }
            let t = Instant::now();
            ok(&propose(&w, id, Some(NOW)).output().unwrap());
            t.elapsed()
        })
        .collect();
    runs.sort();
    let span = runs[1].min(Duration::from_millis(200));
    let span_ms = u64::try_from(span.as_millis()).unwrap().max(1);
    println!(
        "one propose: {} ms; kills within 0-{span_ms} ms",
        runs[1].as_millis()
    );
    let (mut killed, mut finished) = (0, 0);
    for i in 0..100 {
        let id = format!("k-{i:03}");
        write_request(&w.ws(), &id, &[]);
        let mut child = spawn(propose(&w, &id, Some(NOW)));
        std::thread::sleep(Duration::from_micros(rng.next() % (span_ms * 1000 + 1)));
        let _ = child.kill(); // SIGKILL
        let o = child.wait_with_output().unwrap();
        if o.status.code().is_some() {
            // It finished before the kill: then it worked, whatever the kill before it
            // left behind.
            assert_eq!(o.status.code(), Some(0), "{id}: {}", text(&o));
            finished += 1;
        } else {
            killed += 1;
        }
    }
    println!("{killed} killed, {finished} finished before the kill");
    // The next command works with no cleanup by hand.
    let o = propose(&w, "refund-4712", Some(NOW)).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // All or nothing: whole appends of five events, one commit each, a clean chain.
    let report = w.verify_json();
    assert!(codes(&report).is_empty(), "{report}");
    let events = report["events"].as_u64().unwrap();
    assert_eq!(events % 5, 0, "{report}");
    assert!(events >= 5 * (4 + finished), "{report}");
    println!(
        "{} killed appends recorded (killed after the branch moved)",
        events / 5 - 4 - finished
    );
    let commits = w.git(&["rev-list", "--count", "HEAD"]);
    assert_eq!(commits.trim(), (events / 5 + 1).to_string());
    assert_eq!(
        w.git(&["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
    let git = w.ws().join(".git");
    for left in ["index.lock", "refs/heads/main.lock", "hitl-audit.journal"] {
        assert!(!git.join(left).exists(), "{left} was left behind");
    }
}

#[test]
fn a_branch_lock_is_removed_only_when_a_killed_append_provably_left_it() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let git = w.ws().join(".git");
    let lock = git.join("refs/heads/main.lock");
    let journal = git.join("hitl-audit.journal");
    let head = w.git(&["rev-parse", "HEAD"]);
    // A commit that never landed, as a killed append leaves it.
    let orphan = w.git(&[
        "commit-tree",
        "HEAD^{tree}",
        "-p",
        "HEAD",
        "-m",
        "never landed",
    ]);

    // A lock with no journal is a git's the user runs (it takes no hitl lock): left
    // alone, nothing recorded, the message names it.
    std::fs::write(&lock, b"").unwrap();
    let o = w.hitl(AGENT, &["propose", "refund-4712"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains("refs/heads/main.lock") && err.contains("nothing was recorded"),
        "{err}"
    );
    assert!(lock.exists(), "a foreign lock was removed");
    assert!(!journal.exists());
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);

    // A journal, but the lock holds another commit (a user's `git commit` moving the
    // branch): not ours either.
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&journal, &orphan).unwrap();
    std::fs::write(&lock, &head).unwrap();
    let o = w.hitl(AGENT, &["propose", "refund-4712"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(lock.exists(), "a foreign lock was removed");
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    std::fs::remove_file(&lock).unwrap();
    assert_clean(&w, 5, "after the refusals");

    // What a kill while libgit2 moved the branch leaves: the journal, then the branch's
    // lock, holding the journal's commit (or nothing yet), and a half-written index.
    for content in [orphan.as_bytes(), b""] {
        std::fs::write(&journal, &orphan).unwrap();
        std::fs::write(&lock, content).unwrap();
        std::fs::write(git.join("index.lock"), b"half an index").unwrap();
        let id = if content.is_empty() {
            "email-customer-5531"
        } else {
            "refund-4712"
        };
        let t = Instant::now();
        let o = w.hitl(AGENT, &["propose", id]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
        // A young lock is only removed once it has aged unchanged (2 s).
        assert!(t.elapsed() >= Duration::from_secs(2));
        for left in ["index.lock", "refs/heads/main.lock", "hitl-audit.journal"] {
            assert!(!git.join(left).exists(), "{left} was left behind");
        }
    }
    assert_clean(&w, 15, "after the recoveries");
    assert_eq!(
        w.git(&["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
}
