//! Pass 1, the chain in HEAD's tree: every event file in order (its name, `seq`, `prev`
//! link, time and blobs), the detached signatures of decisions, checked in parallel,
//! and the request indexes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use git2::{Oid, Tree};

use super::{Head, Phase, Problem, Report, Trust, problem};
use crate::audit::store::{AuditRepo, parse_event, parse_index};
use crate::audit::{
    AUDIT_DIR, AuditError, EVENTS_PER_FOLDER, Event, GENESIS, blob_path, sha256_hex, sig_path,
};
use crate::signing::NAMESPACE;

/// A decision event whose signature still has to be checked.
struct SigJob {
    seq: u64,
    file: String,
    bytes: Vec<u8>,
    sig: Option<Vec<u8>>,
    principal: String,
    key: String,
    at: DateTime<Utc>,
}

/// Events read, hashed and parsed at a time by [`load_events`].
const WINDOW: usize = 1024;

/// An event file's bytes, their sha256, and the parsed event.
type Loaded = (Vec<u8>, String, Result<Event, AuditError>);

/// Reads the event files `files` (`None`: not a blob), hashes and parses them, split over
/// the cores, each thread with its own repository handle.
fn load_events(
    repo: &AuditRepo,
    files: &[(String, u64, Oid)],
) -> Result<Vec<Option<Loaded>>, AuditError> {
    let load = |r: &AuditRepo, part: &[(String, u64, Oid)]| -> Vec<Option<Loaded>> {
        part.iter()
            .map(|(path, _, oid)| {
                let blob = r.repo.find_blob(*oid).ok()?;
                let bytes = blob.content().to_vec();
                let hash = sha256_hex(&bytes);
                let event = parse_event(path, &bytes);
                Some((bytes, hash, event))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 8);
    if threads == 1 || files.len() < 256 {
        return Ok(load(repo, files));
    }
    let size = files.len().div_ceil(threads);
    let parts = repo.in_parts(files, size, "reading events", |r, part| Ok(load(r, part)))?;
    Ok(parts.into_iter().flatten().collect())
}

/// The actor of each event at HEAD, by blob id, so the history walk need not read and
/// parse every event again: principals and keys are interned (a few distinct values).
#[derive(Default)]
pub(super) struct Actors {
    by_blob: std::collections::HashMap<Oid, (u32, u32)>,
    names: Vec<String>,
    ids: std::collections::HashMap<String, u32>,
}

impl Actors {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), i);
        i
    }

    fn insert(&mut self, blob: Oid, principal: &str, key: &str) {
        let ids = (self.intern(principal), self.intern(key));
        self.by_blob.insert(blob, ids);
    }

    pub(super) fn get(&self, blob: Oid) -> Option<(&str, &str)> {
        let &(p, k) = self.by_blob.get(&blob)?;
        Some((self.names.get(p as usize)?, self.names.get(k as usize)?))
    }
}

pub(super) fn chain(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    trust: &Trust,
    report: &mut Report,
    now: Option<chrono::DateTime<Utc>>,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<(Actors, crate::workflow::recorded::Recorded), AuditError> {
    let mut actors = Actors::default();
    // What the workflow engine judges once the history says which configuration each
    // event was recorded under.
    let mut recorded = crate::workflow::recorded::Recorded::default();
    let files = repo.event_files(tree)?;
    let sigs = repo.sig_files(tree)?;
    let blobs = check_blobs(repo, tree, report)?;
    let total = files.len() as u64;
    let mut expected = 1_u64;
    let mut prev = GENESIS.to_owned();
    let mut requests: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut jobs: Vec<SigJob> = Vec::new();
    let mut last: Option<Head> = None;
    let mut last_at: Option<DateTime<Utc>> = None;
    // Event files are read, hashed and parsed in windows, on all cores; the checks that
    // need the order (links, seqs, times, decisions) then run over the window in order.
    let mut window: Vec<Option<Loaded>> = Vec::new();
    for (i, (path, name_seq, oid)) in files.iter().enumerate() {
        if i % WINDOW == 0 {
            progress(Phase::Events, i as u64, total);
            let end = (i + WINDOW).min(files.len());
            window = load_events(repo, &files[i..end])?;
        }
        if *name_seq == 0 {
            report.problems.push(problem(
                "unexpected-file",
                None,
                Some(path),
                "not an event file (`<12 digits>.json`)".to_owned(),
            ));
            continue;
        }
        let seq = *name_seq;
        let shard = format!("{:09}", seq / EVENTS_PER_FOLDER);
        if !path.contains(&format!("/events/{shard}/")) {
            report.problems.push(problem(
                "misplaced",
                Some(seq),
                Some(path),
                format!("event {seq} belongs in folder `{shard}`"),
            ));
        }
        if seq != expected {
            if seq > expected {
                report.problems.push(problem(
                    "seq-gap",
                    Some(expected),
                    Some(path),
                    format!("events {expected} to {} are missing", seq - 1),
                ));
            }
            expected = seq;
        }
        expected += 1;
        let Some((bytes, hash, parsed)) = window.get_mut(i % WINDOW).and_then(Option::take) else {
            report.problems.push(problem(
                "unexpected-file",
                Some(seq),
                Some(path),
                "an event name on something that is not a file".to_owned(),
            ));
            continue;
        };
        let event: Event = match parsed {
            Ok(e) => e,
            Err(e) => {
                report.problems.push(problem(
                    "event-invalid",
                    Some(seq),
                    Some(path),
                    e.to_string(),
                ));
                prev = hash;
                continue;
            }
        };
        report.events += 1;
        actors.insert(*oid, &event.actor.principal, &event.actor.key);
        if event.seq != seq {
            report.problems.push(problem(
                "seq-mismatch",
                Some(seq),
                Some(path),
                format!("the file holds event {} (duplicated or moved)", event.seq),
            ));
        }
        if event.prev != prev {
            report.problems.push(problem(
                "chain-link",
                Some(seq),
                Some(path),
                "`prev` is not the sha256 of the previous event file: an event before it was edited, deleted, inserted or reordered".to_owned(),
            ));
        }
        prev = hash.clone();
        requests.entry(event.request.clone()).or_default().push(seq);
        let Some(at) = DateTime::parse_from_rfc3339(&event.at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
        else {
            report.problems.push(problem(
                "event-invalid",
                Some(seq),
                Some(path),
                format!("`at` is not an RFC 3339 time: {:?}", event.at),
            ));
            continue;
        };
        if last_at.is_some_and(|before| at < before) {
            report.problems.push(problem(
                "time-backwards",
                Some(seq),
                Some(path),
                format!("`at` {} is before the previous event's", event.at),
            ));
        }
        // Dated after the auditor's clock: no append recorded it (an append records its
        // clock, after the last event's), and it would stop every later append.
        if now.is_some_and(|now| at > now + super::super::CLOCK_SKEW) {
            report.problems.push(problem(
                "time-future",
                Some(seq),
                Some(path),
                format!(
                    "`at` {} is after now by more than the clock skew hitl allows ({} s): a clock set ahead, or an event made by hand",
                    event.at,
                    super::super::CLOCK_SKEW.num_seconds()
                ),
            ));
        }
        last_at = Some(at);
        recorded.keep(&event);
        for field in ["proposal", "evidence_pack"] {
            if let Some(d) = event
                .field_str(field)
                .and_then(|d| d.strip_prefix("sha256:"))
                && !blobs.contains(d)
            {
                // Present but edited was reported by `check_blobs`, once.
                let present = repo.blob_exists(tree, d)?;
                report.problems.push(problem(
                    if present {
                        "blob-edited"
                    } else {
                        "blob-missing"
                    },
                    Some(seq),
                    Some(&blob_path(d)),
                    format!(
                        "`{field}` of {path} refers to a blob that is {}",
                        if present { "edited" } else { "missing" }
                    ),
                ));
            }
        }
        if event.kind != crate::workflow::types::DECISION && sigs.contains_key(&seq) {
            report.problems.push(problem(
                "unexpected-file",
                Some(seq),
                Some(&sig_path(seq)),
                format!(
                    "a signature beside a `{}` event; only decisions are signed",
                    event.kind
                ),
            ));
        }
        if event.kind == crate::workflow::types::DECISION {
            jobs.push(SigJob {
                seq,
                file: sig_path(seq),
                bytes,
                sig: match sigs.get(&seq) {
                    Some(oid) => Some(repo.repo.find_blob(*oid)?.content().to_vec()),
                    None => None,
                },
                principal: event.actor.principal.clone(),
                key: event.actor.key.clone(),
                at,
            });
            if jobs.len() >= 4096 {
                check_signatures(std::mem::take(&mut jobs), trust, report);
            }
        }
        last = Some(Head {
            seq,
            event: hash,
            commit: String::new(),
        });
    }
    check_signatures(jobs, trust, report);
    // Signatures whose event does not exist.
    let seqs: std::collections::HashSet<u64> = files.iter().map(|f| f.1).collect();
    let mut orphans: Vec<u64> = sigs.keys().filter(|s| !seqs.contains(s)).copied().collect();
    orphans.sort_unstable();
    for seq in orphans {
        report.problems.push(problem(
            "unexpected-file",
            Some(seq),
            Some(&sig_path(seq)),
            format!("a signature for event {seq}, which does not exist"),
        ));
    }
    // Anything in `audit/` besides its three folders.
    if let Some(audit) = repo.subtree(tree, AUDIT_DIR)? {
        for e in audit.iter() {
            let name = e.name().unwrap_or_default();
            if !(matches!(name, "events" | "blobs" | "requests" | "approvals")
                && e.kind() == Some(git2::ObjectType::Tree))
            {
                report.problems.push(problem(
                    "unexpected-file",
                    None,
                    Some(&format!("{AUDIT_DIR}/{name}")),
                    "not part of the audit layout (`events/`, `blobs/`, `requests/`, `approvals/`)"
                        .to_owned(),
                ));
            }
        }
    }
    check_indexes(repo, tree, &requests, report)?;
    progress(Phase::Events, total, total);
    report.head = last;
    Ok((actors, recorded))
}

/// Reads every blob once: each must hash to its name and sit in its folder. Returns
/// the names of the good ones.
fn check_blobs(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    report: &mut Report,
) -> Result<std::collections::HashSet<String>, AuditError> {
    let mut good = std::collections::HashSet::new();
    for (name, (path, oid)) in repo.blob_files(tree)? {
        let Ok(blob) = repo.repo.find_blob(oid) else {
            report.problems.push(problem(
                "blob-edited",
                None,
                Some(&path),
                "not a file".to_owned(),
            ));
            continue;
        };
        if sha256_hex(blob.content()) != name || blob_path(&name) != path {
            report.problems.push(problem(
                "blob-edited",
                None,
                Some(&path),
                "the blob's content does not match its name (its sha256)".to_owned(),
            ));
        } else {
            good.insert(name);
        }
    }
    Ok(good)
}

/// Runs `check` over `items` on all cores and gathers the problems, in order.
fn par_problems<T: Sync>(items: &[T], check: impl Fn(&T) -> Vec<Problem> + Sync) -> Vec<Problem> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = items.len().div_ceil(threads).max(1);
    let check = &check;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().flat_map(check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![problem(
                        "internal",
                        None,
                        None,
                        "a verifier thread failed".to_owned(),
                    )]
                })
            })
            .collect()
    })
}

fn check_signatures(jobs: Vec<SigJob>, trust: &Trust, report: &mut Report) {
    report.signatures += jobs.len() as u64;
    let mut found = par_problems(&jobs, |j| check_one(j, trust).into_iter().collect());
    report.problems.append(&mut found);
}

fn check_one(j: &SigJob, trust: &Trust) -> Option<Problem> {
    let Some(sig) = &j.sig else {
        return Some(problem(
            "signature-missing",
            Some(j.seq),
            Some(&j.file),
            "a decision event has no detached signature".to_owned(),
        ));
    };
    let armored = String::from_utf8_lossy(sig);
    match trust.check(&armored, NAMESPACE, &j.bytes, &j.principal, j.at) {
        Ok(fp) if fp != j.key => Some(problem(
            "signer-not-actor",
            Some(j.seq),
            Some(&j.file),
            format!("signed by {fp}, but the event's actor key is {}", j.key),
        )),
        Ok(_) => None,
        Err((code, reason)) => Some(problem(code, Some(j.seq), Some(&j.file), reason)),
    }
}

fn check_indexes(
    repo: &AuditRepo,
    tree: &Tree<'_>,
    requests: &BTreeMap<String, Vec<u64>>,
    report: &mut Report,
) -> Result<(), AuditError> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dir) = repo.subtree(tree, &format!("{AUDIT_DIR}/requests"))? {
        for shard in dir.iter() {
            let shard_name = shard.name().unwrap_or_default().to_owned();
            let Ok(files) = repo.repo.find_tree(shard.id()) else {
                report.problems.push(problem(
                    "index",
                    None,
                    Some(&format!("{AUDIT_DIR}/requests/{shard_name}")),
                    "not a folder of request indexes".to_owned(),
                ));
                continue;
            };
            for e in files.iter() {
                let name = e.name().unwrap_or_default().to_owned();
                let path = format!("{AUDIT_DIR}/requests/{shard_name}/{name}");
                if crate::audit::request_index_path(&name) != path {
                    report.problems.push(problem(
                        "index",
                        None,
                        Some(&path),
                        "a request index in the wrong folder".to_owned(),
                    ));
                }
                let listed = parse_index(&path, repo.repo.find_blob(e.id())?.content());
                let expected = requests.get(&name);
                match (listed, expected) {
                    (Ok(l), Some(x)) if &l == x => {}
                    (Ok(l), x) => report.problems.push(problem(
                        "index",
                        None,
                        Some(&path),
                        format!(
                            "lists events {l:?}, the log has {:?}",
                            x.cloned().unwrap_or_default()
                        ),
                    )),
                    (Err(e), _) => {
                        report
                            .problems
                            .push(problem("index", None, Some(&path), e.to_string()));
                    }
                }
                seen.insert(name);
            }
        }
    }
    for request in requests.keys().filter(|r| !seen.contains(*r)) {
        report.problems.push(problem(
            "index",
            None,
            Some(&crate::audit::request_index_path(request)),
            "the request's index file is missing".to_owned(),
        ));
    }
    Ok(())
}
