//! `status` (and `replay`) of an old request through this clone's index of the commits
//! that added each event (`.git/hitl-seq-index`): the same output with the index,
//! without it, and with one that is truncated, garbage, names the wrong commit or
//! commits off the history. The index only shortens the walk; it never changes a
//! result.

use std::path::PathBuf;

use super::audit::{AGENT, AuditWs, LEA, ok};

const MAGIC: &[u8] = b"HITLSQ01";

/// One way to spoil the index.
type Spoil<'a> = Box<dyn Fn() + 'a>;

fn index(w: &AuditWs) -> PathBuf {
    w.ws().join(".git/hitl-seq-index")
}

/// The commit id recorded for `seq`, in hex (zeros: none).
fn record(w: &AuditWs, seq: u64) -> String {
    let bytes = std::fs::read(index(w)).unwrap();
    let at = MAGIC.len() + 20 * usize::try_from(seq).unwrap();
    bytes[at..at + 20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn set_record(w: &AuditWs, seq: u64, hex: &str) {
    let mut bytes = std::fs::read(index(w)).unwrap();
    let at = MAGIC.len() + 20 * usize::try_from(seq).unwrap();
    for i in 0..20 {
        bytes[at + i] = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    std::fs::write(index(w), bytes).unwrap();
}

/// What is compared: `status` as a table and as JSON, and `replay` (which names the
/// commit that recorded the proposal), all successful.
fn outputs(w: &AuditWs, id: &str) -> [String; 3] {
    [
        ok(&w.read(&["status", id])),
        ok(&w.read(&["status", id, "--format", "json"])),
        ok(&w.read(&["replay", id])),
    ]
}

/// refund-4711 proposed (events 1-5) and approved (6), email-customer-5531 proposed
/// (7-11) and rejected (12), then an ordinary commit that records nothing. Returns the
/// workspace and the ids of its commits, oldest first.
fn recorded() -> (AuditWs, Vec<String>) {
    let w = AuditWs::new();
    w.propose_and_approve();
    ok(&w.hitl(AGENT, &["propose", "email-customer-5531"]));
    ok(&w.hitl(
        LEA,
        &[
            "reject",
            "email-customer-5531",
            "--reason-code",
            "too-risky",
        ],
    ));
    std::fs::write(w.ws().join("README.md"), "notes\n").unwrap();
    w.commit_all(None, "notes");
    let commits = w
        .git(&["rev-list", "--reverse", "HEAD"])
        .lines()
        .map(str::to_owned)
        .collect();
    (w, commits)
}

/// `count` commits that record nothing on top of HEAD, made at once by `git fast-import`.
fn empty_commits(w: &AuditWs, count: usize) {
    let head = w.git(&["rev-parse", "HEAD"]);
    let mut stream = String::new();
    for i in 0..count {
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter T <t@example.com> {} +0000\ndata 2\nx\n",
            1_700_000_000 + i
        ));
        if i == 0 {
            stream.push_str(&format!("from {}\n", head.trim()));
        }
        stream.push('\n');
    }
    w.git_with(&[], &["fast-import", "--quiet"], Some(stream.as_bytes()));
    w.git(&["reset", "-q", "--hard", "main"]);
}

#[test]
fn status_of_an_old_request_is_the_same_with_the_index_present_absent_or_corrupt() {
    let (w, commits) = recorded();
    let (propose, approve, reject) = (&commits[1], &commits[2], &commits[4]);
    // The appends kept the index: a record per seq, each naming the commit that added it,
    // the last one (the anchor) the rejection's.
    let good = std::fs::read(index(&w)).unwrap();
    assert_eq!(good.len(), MAGIC.len() + 20 * 13);
    assert_eq!(&good[..8], MAGIC);
    assert_eq!(record(&w, 0), "0".repeat(40));
    assert_eq!(&record(&w, 1), propose);
    assert_eq!(&record(&w, 5), propose);
    assert_eq!(&record(&w, 6), approve);
    assert_eq!(&record(&w, 12), reject);
    let expected = outputs(&w, "refund-4711");
    assert!(expected[0].contains("approved"), "{}", expected[0]);

    let blob = w.git(&[
        "rev-parse",
        &format!("HEAD:audit/events/000000000/{:012}.json", 1),
    ]);
    let mut flipped = good.clone();
    for b in &mut flipped[8..] {
        *b ^= 0x5a;
    }
    let mut magic = good.clone();
    magic[7] = b'9';
    let variants: Vec<(&str, Spoil<'_>)> = vec![
        (
            "absent",
            Box::new(|| std::fs::remove_file(index(&w)).unwrap()),
        ),
        (
            "empty",
            Box::new(|| std::fs::write(index(&w), b"").unwrap()),
        ),
        (
            "truncated in a record",
            Box::new(|| std::fs::write(index(&w), &good[..8 + 20 * 3 + 7]).unwrap()),
        ),
        (
            "not an index",
            Box::new(|| std::fs::write(index(&w), b"HITLSQ01 not records\n").unwrap()),
        ),
        (
            "another format",
            Box::new(|| std::fs::write(index(&w), &magic).unwrap()),
        ),
        (
            "every record garbled",
            Box::new(|| std::fs::write(index(&w), &flipped).unwrap()),
        ),
        // Holds event 1, but so does its parent.
        (
            "seq 1 names a later commit",
            Box::new(|| set_record(&w, 1, approve)),
        ),
        // Does not hold event 1.
        (
            "seq 1 names an earlier commit",
            Box::new(|| set_record(&w, 1, &commits[0])),
        ),
        (
            "seq 1 names no object",
            Box::new(|| set_record(&w, 1, &"ab".repeat(20))),
        ),
        (
            "seq 1 names a blob",
            Box::new(|| set_record(&w, 1, blob.trim())),
        ),
        (
            "seq 1 unknown",
            Box::new(|| set_record(&w, 1, &"0".repeat(40))),
        ),
        (
            "the anchor names no object",
            Box::new(|| set_record(&w, 12, &"cd".repeat(20))),
        ),
    ];
    for (what, spoil) in &variants {
        std::fs::write(index(&w), &good).unwrap();
        spoil();
        assert_eq!(outputs(&w, "refund-4711"), expected, "index {what}");
    }
    // A record refuted by the trees and found below the anchor is mended.
    std::fs::write(index(&w), &good).unwrap();
    set_record(&w, 1, approve);
    ok(&w.read(&["status", "refund-4711"]));
    assert_eq!(&record(&w, 1), propose);
    assert_eq!(std::fs::read(index(&w)).unwrap(), good);
    // Without an index, a short history is walked as before and none is written.
    std::fs::remove_file(index(&w)).unwrap();
    assert_eq!(outputs(&w, "refund-4711"), expected);
    assert!(!index(&w).exists());
}

#[test]
fn status_does_not_trust_an_index_naming_commits_off_the_history() {
    let (w, commits) = recorded();
    let (propose, reject) = (&commits[1], &commits[4]);
    let expected = outputs(&w, "refund-4711");
    let good = std::fs::read(index(&w)).unwrap();
    let tree = |c: &str| w.git(&["rev-parse", &format!("{c}^{{tree}}")]);
    let commit_tree = |args: &[&str]| {
        let mut all = vec!["commit-tree"];
        all.extend(args);
        all.extend(["-m", "forged"]);
        w.git(&all).trim().to_owned()
    };
    // Made with `git commit-tree`, reachable from no branch: the proposal's tree without
    // a parent, and HEAD's tree on top of HEAD (it holds event 1, and so does its parent).
    let root = commit_tree(&[tree(propose).trim()]);
    let top = commit_tree(&[tree("HEAD").trim(), "-p", "HEAD"]);
    for forged in [&root, &top] {
        assert_eq!(w.git(&["cat-file", "-t", forged]).trim(), "commit");
        std::fs::write(index(&w), &good).unwrap();
        set_record(&w, 1, forged);
        assert_eq!(outputs(&w, "refund-4711"), expected, "seq 1 names {forged}");
    }
    // A whole index for another history: every record a copy of the real commit (the
    // same tree, the same parent, unsigned), the anchor a sibling of the rejection's
    // commit with its tree. The walk from HEAD never meets that anchor, so no record of
    // it is used.
    std::fs::write(index(&w), &good).unwrap();
    let parent_of = |c: &str| w.git(&["rev-parse", &format!("{c}^")]).trim().to_owned();
    for (seq, real) in [(1..=5, &commits[1]), (6..=6, &commits[2])]
        .into_iter()
        .flat_map(|(seqs, real)| seqs.map(move |s| (s, real)))
    {
        let copy = commit_tree(&[tree(real).trim(), "-p", &parent_of(real)]);
        set_record(&w, seq, &copy);
    }
    let sibling = commit_tree(&[tree(reject).trim(), "-p", &parent_of(reject)]);
    set_record(&w, 12, &sibling);
    assert_eq!(outputs(&w, "refund-4711"), expected);
    // Nor is an index of the right commits whose anchor is that sibling.
    std::fs::write(index(&w), &good).unwrap();
    set_record(&w, 12, &sibling);
    assert_eq!(outputs(&w, "refund-4711"), expected);
}

#[test]
fn status_without_an_index_builds_it_in_one_walk_and_a_later_one_extends_it() {
    let (w, commits) = recorded();
    let expected = outputs(&w, "refund-4711");
    let good = std::fs::read(index(&w)).unwrap();
    // 300 commits on top that record nothing: finding an old event walks past them.
    empty_commits(&w, 300);
    std::fs::remove_file(index(&w)).unwrap();
    assert_eq!(outputs(&w, "refund-4711"), expected);
    assert_eq!(std::fs::read(index(&w)).unwrap(), good, "built again");
    // A new append that far above the anchor does not write in place; the next status
    // of an old request, which walks down to the anchor, adds its records.
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    assert_eq!(std::fs::read(index(&w)).unwrap(), good);
    assert_eq!(outputs(&w, "refund-4711"), expected);
    let head = w.git(&["rev-parse", "HEAD"]);
    let extended = std::fs::read(index(&w)).unwrap();
    assert_eq!(extended.len(), MAGIC.len() + 20 * 18);
    assert_eq!(&extended[..good.len()], good.as_slice());
    assert_eq!(record(&w, 13), head.trim());
    assert_eq!(record(&w, 17), head.trim());
    // And the next append, on top of the anchor, adds its own in place.
    ok(&w.hitl(AGENT, &["propose", "draft-reply-5531"]));
    let head = w.git(&["rev-parse", "HEAD"]);
    let grown = std::fs::read(index(&w)).unwrap();
    assert!(grown.len() > extended.len());
    assert_eq!(&grown[..extended.len()], extended.as_slice());
    let last = u64::try_from((grown.len() - MAGIC.len()) / 20 - 1).unwrap();
    assert_eq!(record(&w, 18), head.trim());
    assert_eq!(record(&w, last), head.trim());
    assert_eq!(&record(&w, 1), &commits[1]);
}
