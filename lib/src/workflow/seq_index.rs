//! This clone's index from an event's seq to the commit that added it
//! (`.git/hitl-seq-index`, one per workspace, beside the checked head): what lets
//! [`commit_adding`](super::history::commit_adding) find the commit of an old event in a
//! few lookups instead of a walk down the history.
//!
//! The file is the 8 bytes `HITLSQ01`, then one record of 20 bytes per seq, the record of
//! seq `s` at `8 + 20 * s` (seq 0, which no event has, is a record of zeros): the raw id
//! of the commit that added event `s`, or zeros where it is not known. The commit of
//! the last record is the file's *anchor*. What this clone's hitl writes into it are
//! commits on the anchor's first-parent line: the commits it appended itself, or found
//! walking down the first-parent line from HEAD (each claiming its seqs in its
//! `Hitl-Seq:` trailer).
//!
//! Nothing in it is taken on its word. `commit_adding` uses it only when its own walk
//! down HEAD's first-parent line reaches the anchor (so the anchor is on HEAD's line,
//! whatever the file says), and takes an entry only when the trees confirm it: the
//! commit's tree holds the event, as the same blob HEAD's tree holds, and its first
//! parent's tree does not. A missing, truncated or foreign file, an anchor off HEAD's
//! line, a record the trees refute, a commit that is not there: each sends the search
//! down the walk it makes without an index. What the file is trusted for is that a
//! commit it names is on the anchor's first-parent line; like the checked head, it is
//! this clone's own file, and whoever can write `.git` can run code as the user anyway.
//!
//! Writers: an append adds its own records at the end, in place, when the file ends with
//! its parent's (`remember`); a search that walked past the anchor, or far without
//! one, writes the file again with what it learnt (through a temporary file and a
//! rename, so a reader sees the old file or the new one); a search that found the right
//! commit below the anchor after a refuted record mends that one record. Each only a
//! speed-up: a failure to write is ignored.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use git2::{Commit, Oid, Tree};

use crate::audit::AuditRepo;

/// The file's name in git's folder (see [`super::engine::local_file`]).
const FILE: &str = "hitl-seq-index";

/// The first bytes of the file: its format.
pub(crate) const MAGIC: &[u8; 8] = b"HITLSQ01";

/// The size of a record: a SHA-1 commit id.
const RECORD: u64 = 20;

/// The most seqs one commit's trailer may claim for the index (a sweep records one event
/// per due request): a claim of more is not indexed (a hand-made trailer must not make
/// the file huge).
const MAX_BATCH: u64 = 1 << 16;

/// The most seqs left unknown between two claims (a hand-made commit without a trailer);
/// a claim further up is not indexed, nor are the ones after it.
const MAX_GAP: u64 = 16;

/// A walk without a usable index that went deeper than this many commits goes on to
/// the anchor or the root, and writes what it learnt.
pub(crate) const BUILD_DEPTH: usize = 256;

/// A commit walked on the first-parent line, and the seqs its `Hitl-Seq:` trailer
/// claims.
pub(crate) type Walked = (Oid, Option<(u64, u64)>);

/// The file as a search reads it: records are read one by one, never the whole file.
pub(crate) struct SeqIndex {
    file: File,
    /// How many whole records it holds (seqs `0..records`).
    records: u64,
    anchor: Oid,
}

fn path(repo: &AuditRepo) -> std::path::PathBuf {
    super::engine::local_file(repo, FILE)
}

fn read_record(file: &mut File, seq: u64) -> Option<Oid> {
    let mut raw = [0u8; RECORD as usize];
    file.seek(SeekFrom::Start(MAGIC.len() as u64 + RECORD * seq))
        .ok()?;
    file.read_exact(&mut raw).ok()?;
    if raw == [0u8; RECORD as usize] {
        return None;
    }
    Oid::from_bytes(&raw).ok()
}

/// How many whole records a file of `len` bytes holds.
fn records_in(len: u64) -> u64 {
    len.saturating_sub(MAGIC.len() as u64) / RECORD
}

impl SeqIndex {
    /// This clone's index, if there is one with an anchor.
    pub(crate) fn open(repo: &AuditRepo) -> Option<Self> {
        let mut file = File::open(path(repo)).ok()?;
        let mut magic = [0u8; 8];
        file.read_exact(&mut magic).ok()?;
        if &magic != MAGIC {
            return None;
        }
        let records = records_in(file.metadata().ok()?.len());
        let anchor = read_record(&mut file, records.checked_sub(1)?)?;
        Some(Self {
            file,
            records,
            anchor,
        })
    }

    /// The commit of the last record: every record names a commit on its first-parent
    /// line.
    pub(crate) fn anchor(&self) -> Oid {
        self.anchor
    }

    /// The commit recorded for `seq`, if any.
    pub(crate) fn entry(&mut self, seq: u64) -> Option<Oid> {
        if seq == 0 || seq >= self.records {
            return None;
        }
        read_record(&mut self.file, seq)
    }

    /// Writes `commit` as the record of `seq`, which the search found below the anchor
    /// after the record there was refuted. In place: an append writes only past the
    /// end, and a file renamed over this one since keeps its own records.
    pub(crate) fn mend(&self, repo: &AuditRepo, seq: u64, commit: Oid) {
        if seq == 0 || seq >= self.records {
            return;
        }
        let Ok(mut file) = std::fs::OpenOptions::new().write(true).open(path(repo)) else {
            return;
        };
        // The same file this one read (not one renamed over it since).
        if !same_file(&self.file, &file) {
            return;
        }
        let _ = file
            .seek(SeekFrom::Start(MAGIC.len() as u64 + RECORD * seq))
            .and_then(|_| file.write_all(commit.as_bytes()));
    }

    /// Writes the file again with the records of `above` (the commits walked from HEAD
    /// down to just above the anchor, top first) after its own.
    pub(crate) fn extend(&mut self, repo: &AuditRepo, above: &[Walked]) {
        let new = new_records(self.records, above);
        if new.is_empty() {
            return;
        }
        let mut bytes = Vec::new();
        if self.file.seek(SeekFrom::Start(0)).is_err()
            || (&mut self.file)
                .take(MAGIC.len() as u64 + RECORD * self.records)
                .read_to_end(&mut bytes)
                .is_err()
            || bytes.len() as u64 != MAGIC.len() as u64 + RECORD * self.records
        {
            return;
        }
        bytes.extend_from_slice(&new);
        super::engine::write_local(&path(repo), &bytes);
    }
}

#[cfg(unix)]
fn same_file(a: &File, b: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, _: &File) -> bool {
    false
}

/// Writes the index from scratch from `line`: every commit of HEAD's first-parent line,
/// top first.
pub(crate) fn build(repo: &AuditRepo, line: &[Walked]) {
    let new = new_records(1, line);
    if new.is_empty() {
        return;
    }
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&[0u8; RECORD as usize]);
    bytes.extend_from_slice(&new);
    super::engine::write_local(&path(repo), &bytes);
}

/// The records from seq `from` on for the commits of `line` (top first, all of them
/// above the commit of seq `from - 1`): each claim taken from the bottom up when it
/// starts above the last one taken, leaves at most [`MAX_GAP`] seqs unknown before it,
/// and claims fewer than [`MAX_BATCH`]; unknown seqs between are zeros.
fn new_records(from: u64, line: &[Walked]) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(mut floor) = from.checked_sub(1) else {
        return out;
    };
    for (id, claim) in line.iter().rev() {
        let Some((a, b)) = *claim else { continue };
        if a <= floor || a - floor - 1 > MAX_GAP || b - a >= MAX_BATCH {
            continue;
        }
        let Ok(gap) = usize::try_from((a - floor - 1) * RECORD) else {
            continue;
        };
        out.resize(out.len() + gap, 0);
        for _ in a..=b {
            out.extend_from_slice(id.as_bytes());
        }
        floor = b;
    }
    out
}

/// The seqs `a..=b` a commit message's one `Hitl-Seq:` trailer (`6`, or `1-5`) claims;
/// `None` without one, or with more than one.
pub(crate) fn claimed(message: &[u8]) -> Option<(u64, u64)> {
    let text = String::from_utf8_lossy(message);
    let mut claims = text.lines().filter_map(|l| l.strip_prefix("Hitl-Seq: "));
    let v = claims.next()?.trim();
    if claims.next().is_some() {
        return None;
    }
    let (a, b) = v.split_once('-').unwrap_or((v, v));
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => Some((a, b)),
        _ => None,
    }
}

/// The commit `id` as the index names it for the event at `rel` (workspace path in
/// git), if the trees confirm it: it holds the event as `in_head` (HEAD's entry: the
/// same blob and mode), and its first parent does not. A root commit is never taken from
/// the index. The commit and its first parent's tree, as `commit_adding` returns them.
pub(crate) fn confirmed<'r>(
    repo: &'r AuditRepo,
    id: Oid,
    rel: &str,
    in_head: &git2::TreeEntry<'_>,
) -> Option<(Commit<'r>, Option<Tree<'r>>)> {
    let commit = repo.repo.find_commit(id).ok()?;
    let entry = commit.tree().ok()?.get_path(Path::new(rel)).ok()?;
    if entry.id() != in_head.id() || entry.filemode() != in_head.filemode() {
        return None;
    }
    let parent_tree = commit.parents().next()?.tree().ok()?;
    if parent_tree.get_path(Path::new(rel)).is_ok() {
        return None;
    }
    Some((commit, Some(parent_tree)))
}

/// How far below an append's parent the anchor may be (commits that record no event,
/// such as an admin's configuration change) for the append to add its records in place.
const PARENT_REACH: usize = 16;

/// Adds the records of `commit`, which this process has just appended with the events
/// `first..=last`: in place at the end when the file ends just before `first` with the
/// records of `commit`'s first parent (or of a commit a few first-parent steps below
/// it); a new file for the audit's first events. Otherwise nothing: the next search
/// that walks past the anchor writes the file again. It runs after the append has
/// released the audit lock (as `remember_appended` does), which is safe without it:
/// each append writes only where the file ends with its own parent's records, so two
/// appends never write at one place, and one that finds the file renamed over since
/// writes into the file it opened, which nobody reads any more.
pub(crate) fn remember(repo: &AuditRepo, commit: Oid, first: u64, last: u64) {
    if first == 0 || last < first || last - first >= MAX_BATCH {
        return;
    }
    let Ok(count) = usize::try_from(last - first + 1) else {
        return;
    };
    let records = commit.as_bytes().repeat(count);
    let file = path(repo);
    if first == 1 {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[0u8; RECORD as usize]);
        bytes.extend_from_slice(&records);
        super::engine::write_local(&file, &bytes);
        return;
    }
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
    else {
        return;
    };
    let mut magic = [0u8; 8];
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return;
    };
    if f.read_exact(&mut magic).is_err()
        || &magic != MAGIC
        || len != MAGIC.len() as u64 + RECORD * first
    {
        return;
    }
    let Some(anchor) = read_record(&mut f, first - 1) else {
        return;
    };
    let Ok(c) = repo.repo.find_commit(commit) else {
        return;
    };
    let mut below = c.parents().next();
    let mut reached = false;
    for _ in 0..PARENT_REACH {
        let Some(b) = below else { break };
        if b.id() == anchor {
            reached = true;
            break;
        }
        below = b.parents().next();
    }
    if reached {
        let _ = f
            .seek(SeekFrom::Start(len))
            .and_then(|_| f.write_all(&records));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn at(records: &[u8], i: usize) -> Option<u8> {
        let r = records.get(i * 20..(i + 1) * 20)?;
        Some(r[0])
    }

    #[test]
    fn claims_are_taken_from_the_bottom_up_when_they_follow_on() {
        // Top first: 3 claims 5-6, 2 claims nothing, 1 claims 1-4.
        let line = [(id(3), Some((5, 6))), (id(2), None), (id(1), Some((1, 4)))];
        let r = new_records(1, &line);
        assert_eq!(r.len(), 6 * 20);
        assert_eq!(
            (0..6).map(|i| at(&r, i)).collect::<Vec<_>>(),
            [1, 1, 1, 1, 3, 3].map(Some)
        );
        // From seq 5 on (an extension above the commit of seq 4).
        let r = new_records(5, &line[..1]);
        assert_eq!(r.len(), 2 * 20);
    }

    #[test]
    fn lying_claims_are_not_indexed() {
        // A claim below one already taken, one far above, one too long: skipped.
        let line = [
            (id(5), Some((7, 7))),
            (id(4), Some((3, 3))),
            (id(3), Some((1_000_000, 1_000_001))),
            (id(2), Some((3, 3 + MAX_BATCH))),
            (id(1), Some((1, 2))),
        ];
        let r = new_records(1, &line);
        // 1-2 by 1, 3 by 4, then 7 by 5 after a gap of three unknown seqs.
        assert_eq!(
            (0..7).map(|i| at(&r, i)).collect::<Vec<_>>(),
            [
                Some(1),
                Some(1),
                Some(4),
                Some(0),
                Some(0),
                Some(0),
                Some(5)
            ]
        );
        assert_eq!(at(&r, 7), None);
    }

    #[test]
    fn a_trailer_claims_one_range() {
        assert_eq!(
            claimed(b"x\n\nHitl-Request: r\nHitl-Seq: 1-5\n"),
            Some((1, 5))
        );
        assert_eq!(claimed(b"x\n\nHitl-Seq: 6\n"), Some((6, 6)));
        assert_eq!(claimed(b"x\n\nHitl-Seq: 6\nHitl-Seq: 7\n"), None);
        assert_eq!(claimed(b"x\n\nHitl-Seq: 5-1\n"), None);
        assert_eq!(claimed(b"x\n\nHitl-Seq: five\n"), None);
        assert_eq!(claimed(b"x\n"), None);
    }
}
