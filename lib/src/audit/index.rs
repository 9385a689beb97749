//! Staging the files of one append in git's index without re-parsing it.
//!
//! The index is one file holding every tracked path, so on a large audit it is the only
//! part of an append whose cost grows with the log. libgit2 reads it into a hash map,
//! validates every path, and hashes it twice with collision-detecting SHA-1 (65 ms per
//! append at 12,000 events). This module does the same update as a splice of bytes:
//!
//! 1. take `index.lock` (created exclusively, like git and libgit2), then read
//!    `.git/index` once and check its trailing SHA-1 (a zero trailer, which
//!    `index.skipHash` writes, is accepted as git does);
//! 2. walk the entries by their lengths only, copying them, and put each new entry at its
//!    sorted place (replacing a stage-0 entry of the same path); entries changed in the
//!    second the old index was written ("racily clean") are written with size 0, as git
//!    does, so that git compares their content;
//! 3. keep the `REUC` extension, and drop the caches that describe positions or
//!    directories (`TREE`, `UNTR`, `FSMN`, `EOIE`, `IEOT`): dropping an optional
//!    extension is always allowed, and git rebuilds them when it needs them;
//! 4. write the new index into `index.lock` while hashing it, then rename it over
//!    `index`.
//!
//! Anything this fast path does not handle exactly returns [`Splice::Unsupported`] and
//! the caller uses libgit2: index version 4 (prefix-compressed paths), a split index
//! (`link`), a sparse index (`sdir`), other mandatory extensions, a conflict (stage 1-3)
//! or a file/directory clash on a path we write, a missing index, or SHA-256
//! repositories.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use sha1::{Digest as _, Sha1};

/// A stage-0 entry to put in the index.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The path in the repository, `/`-separated.
    pub path: Vec<u8>,
    /// The blob id.
    pub id: [u8; 20],
    /// Stat data as git stores it (32-bit fields).
    pub stat: Stat,
}

/// The stat fields of an index entry.
#[derive(Debug, Clone, Copy, Default)]
#[allow(missing_docs, reason = "git's own field names")]
pub struct Stat {
    pub ctime: (u32, u32),
    pub mtime: (u32, u32),
    pub dev: u32,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl Stat {
    /// The stat data of a regular file as `git add` stages it (git keeps the low 32 bits
    /// of each field; the mode is 100644).
    #[must_use]
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "git's index format"
    )]
    pub fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            ctime: (meta.ctime() as u32, meta.ctime_nsec() as u32),
            mtime: (meta.mtime() as u32, meta.mtime_nsec() as u32),
            dev: meta.dev() as u32,
            ino: meta.ino() as u32,
            mode: 0o100_644,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.len() as u32,
        }
    }
}

/// What [`splice`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Splice {
    /// The index was rewritten with the new entries.
    Done,
    /// This index needs libgit2; the reason is for debugging.
    Unsupported(&'static str),
}

/// Errors of the fast path itself (not "unsupported").
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading or writing the index failed.
    #[error("cannot update the git index `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The index is damaged.
    #[error("the git index `{path}` is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

const HEADER: usize = 12;
const TRAILER: usize = 20;
/// ctime, mtime (8 bytes each), dev, ino, mode, uid, gid, size (4 each), oid, flags.
const FIXED: usize = 40 + 20 + 2;
const FLAG_EXTENDED: u16 = 0x4000;
const STAGE_MASK: u16 = 0x3000;
const NAME_MASK: u16 = 0x0FFF;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// One parsed entry: where it is and what we need to merge.
struct Entry<'a> {
    range: std::ops::Range<usize>,
    path: &'a [u8],
    stage: u16,
}

/// The entry at `at` in a version 2 or 3 index.
fn entry(b: &[u8], at: usize) -> Option<Entry<'_>> {
    let flags = be16(b, at + 60)?;
    let fixed = if flags & FLAG_EXTENDED == 0 {
        FIXED
    } else {
        FIXED + 2
    };
    let start = at + fixed;
    let len = b.get(start..)?.iter().position(|&c| c == 0)?;
    if (flags & NAME_MASK) != NAME_MASK && usize::from(flags & NAME_MASK) != len {
        return None;
    }
    // Entries are padded with 1 to 8 NULs to a multiple of 8 bytes.
    let size = (fixed + len + 8) & !7;
    let end = at.checked_add(size)?;
    (end <= b.len()).then(|| Entry {
        range: at..end,
        path: &b[start..start + len],
        stage: (flags & STAGE_MASK) >> 12,
    })
}

fn encode(e: &NewEntry, out: &mut Vec<u8>) {
    let start = out.len();
    let s = &e.stat;
    for v in [
        s.ctime.0, s.ctime.1, s.mtime.0, s.mtime.1, s.dev, s.ino, s.mode, s.uid, s.gid, s.size,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&e.id);
    let name_len = u16::try_from(e.path.len()).map_or(NAME_MASK, |l| l.min(NAME_MASK));
    out.extend_from_slice(&name_len.to_be_bytes());
    out.extend_from_slice(&e.path);
    let size = (FIXED + e.path.len() + 8) & !7;
    out.resize(start + size, 0);
}

/// Whether hitl can stage files in this index at all, asked before an append commits
/// anything: a split index (`link`) or a sparse index (`sdir`), which neither this
/// module nor libgit2 can write, is `Err` with the reason (nothing is hashed; the entries
/// are walked by length, in any index version). A missing index is fine.
///
/// # Errors
/// The reason, for the caller's message.
pub fn check(index_path: &Path) -> Result<(), String> {
    let Ok(b) = fs::read(index_path) else {
        return Ok(());
    };
    if b.len() < HEADER + TRAILER || &b[..4] != b"DIRC" {
        return Ok(()); // libgit2 reports a damaged index with its own words
    }
    let version = be32(&b, 4).unwrap_or(0);
    let count = be32(&b, 8).unwrap_or(0);
    let body = b.len() - TRAILER;
    let mut at = HEADER;
    for _ in 0..count {
        let next = if version == 4 {
            // Fixed part, a varint (bytes with the high bit set, then one without), then
            // the NUL-terminated rest of the path; no padding.
            let flags = be16(&b, at + 60).unwrap_or(0);
            let mut p = at
                + if flags & FLAG_EXTENDED == 0 {
                    FIXED
                } else {
                    FIXED + 2
                };
            while b.get(p).is_some_and(|&c| c & 0x80 != 0) {
                p += 1;
            }
            b.get(p + 1..)
                .and_then(|rest| rest.iter().position(|&c| c == 0))
                .map(|n| p + 1 + n + 1)
        } else {
            entry(&b[..body], at).map(|e| e.range.end)
        };
        match next {
            Some(n) if n <= body => at = n,
            _ => return Ok(()),
        }
    }
    while at + 8 <= body {
        match &b[at..at + 4] {
            b"link" => {
                return Err("it is a split index (`core.splitIndex`); turn it off with `git update-index --no-split-index`".to_owned());
            }
            b"sdir" => {
                return Err("it is a sparse index (`index.sparse`); turn it off with `git sparse-checkout init --no-sparse-index`".to_owned());
            }
            _ => {}
        }
        let size = be32(&b, at + 4).unwrap_or(u32::MAX) as usize;
        at = at.saturating_add(8).saturating_add(size);
    }
    Ok(())
}

/// Puts `entries` (stage 0) into the index file at `index_path`, replacing entries of the
/// same paths. `skip_hash` writes a zero trailer instead of the SHA-1 (git's
/// `index.skipHash`).
///
/// # Errors
/// The index cannot be read, is damaged (truncated entries or extensions), or cannot be
/// written (including an `index.lock` held by someone else).
pub fn splice(
    index_path: &Path,
    entries: &[NewEntry],
    skip_hash: bool,
) -> Result<Splice, IndexError> {
    // Lock, then read, as git does: nobody can change the index between the two.
    let lock = index_path.with_extension("lock");
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock)
        .map_err(|source| IndexError::Io {
            path: lock.display().to_string(),
            source,
        })?;
    let result = splice_locked(index_path, &lock, file, entries, skip_hash);
    if !matches!(result, Ok(Splice::Done)) {
        let _ = fs::remove_file(&lock);
    }
    result
}

fn splice_locked(
    index_path: &Path,
    lock: &Path,
    file: fs::File,
    entries: &[NewEntry],
    skip_hash: bool,
) -> Result<Splice, IndexError> {
    let name = || index_path.display().to_string();
    let io = |source| IndexError::Io {
        path: name(),
        source,
    };
    let corrupt = |reason: &str| IndexError::Corrupt {
        path: name(),
        reason: reason.to_owned(),
    };
    let old = match fs::read(index_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Splice::Unsupported("no index yet"));
        }
        Err(e) => return Err(io(e)),
    };
    if old.len() < HEADER + TRAILER || &old[..4] != b"DIRC" {
        return Err(corrupt("it does not start with `DIRC`"));
    }
    let version = be32(&old, 4).unwrap_or(0);
    if !(version == 2 || version == 3) {
        return Ok(Splice::Unsupported("index version is not 2 or 3"));
    }
    // The trailing checksum is not verified, as git has not since 2.13 (only `git fsck`
    // does): hashing the whole file on every read costs as much as writing it. What the
    // splice relies on, the entries' and extensions' structure, is checked as it walks.
    let body = old.len() - TRAILER;
    let count = be32(&old, 8).unwrap_or(0) as usize;

    let mut new: Vec<&NewEntry> = entries.iter().collect();
    new.sort_by(|a, b| a.path.cmp(&b.path));
    new.dedup_by(|a, b| a.path == b.path);

    // First the plan (nothing is written before every check passed), then the bytes.
    let mut plan: Vec<Part> = Vec::with_capacity(2 * new.len() + 4);
    let copy = |plan: &mut Vec<Part>, range: std::ops::Range<usize>| match plan.last_mut() {
        Some(Part::Old(last)) if last.end == range.start => last.end = range.end,
        _ => plan.push(Part::Old(range)),
    };
    // File/folder clashes, found in the same sorted walk: an old entry that is a folder
    // of a new path (`dirs`), or an old entry inside a new path taken as a folder (the
    // first old entry at or after `new/` starts with it; `folders`).
    let mut dirs: Vec<&[u8]> = new
        .iter()
        .flat_map(|n| {
            n.path
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c == b'/')
                .map(|(i, _)| &n.path[..i])
        })
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    let mut folders: Vec<Vec<u8>> = new
        .iter()
        .map(|n| [n.path.as_slice(), b"/"].concat())
        .collect();
    folders.sort_unstable();
    let (mut d, mut f) = (0, 0);
    // Entries changed in the second the old index was written are "racily clean": git
    // checks their content because their stat data cannot be trusted. The new index is
    // newer, so they are smudged (size 0) as git does when it rewrites an index;
    // otherwise a user's edit made in that second would look clean.
    let racy_from = fs::metadata(index_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(u32::MAX, |t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX));
    let mut at = HEADER;
    let mut next = 0;
    let mut written = 0usize;
    for _ in 0..count {
        let e = entry(&old[..body], at).ok_or_else(|| corrupt("an entry is truncated"))?;
        while d < dirs.len() && dirs[d] < e.path {
            d += 1;
        }
        if dirs.get(d).is_some_and(|&dir| dir == e.path) {
            return Ok(Splice::Unsupported(
                "a folder of a new file is a file in the index",
            ));
        }
        while f < folders.len() && folders[f].as_slice() <= e.path {
            if e.path.starts_with(&folders[f]) {
                return Ok(Splice::Unsupported("a new file is a folder in the index"));
            }
            f += 1;
        }
        while let Some(n) = new.get(next)
            && n.path.as_slice() < e.path
        {
            plan.push(Part::New(n));
            written += 1;
            next += 1;
        }
        if let Some(n) = new.get(next)
            && n.path.as_slice() == e.path
        {
            if e.stage != 0 {
                return Ok(Splice::Unsupported(
                    "a new file is in conflict in the index",
                ));
            }
            // Replaced: the new entry is written when the walk passes it.
            at = e.range.end;
            continue;
        }
        if be32(&old, e.range.start + 8).is_some_and(|mtime| mtime >= racy_from) {
            plan.push(Part::Smudged(e.range.clone()));
        } else {
            copy(&mut plan, e.range.clone());
        }
        written += 1;
        at = e.range.end;
    }
    for n in &new[next..] {
        plan.push(Part::New(n));
        written += 1;
    }
    // Extensions: keep REUC, drop the caches; give up on anything mandatory.
    while at < body {
        let sig = old
            .get(at..at + 4)
            .ok_or_else(|| corrupt("an extension is truncated"))?;
        let size = be32(&old, at + 4).ok_or_else(|| corrupt("an extension is truncated"))? as usize;
        let end = at
            .checked_add(8 + size)
            .filter(|&e| e <= body)
            .ok_or_else(|| corrupt("an extension is truncated"))?;
        match sig {
            b"REUC" => copy(&mut plan, at..end),
            b"TREE" | b"UNTR" | b"FSMN" | b"EOIE" | b"IEOT" => {}
            s if s[0].is_ascii_uppercase() => {}
            _ => return Ok(Splice::Unsupported("a mandatory index extension")),
        }
        at = end;
    }
    let count = u32::try_from(written).map_err(|_| corrupt("too many entries"))?;
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(&old[..8]);
    header[8..].copy_from_slice(&count.to_be_bytes());

    let mut out = Hashing {
        file: std::io::BufWriter::with_capacity(1 << 16, file),
        sha: (!skip_hash).then(Sha1::new),
    };
    let mut scratch = Vec::with_capacity(256);
    let result = (|| {
        out.put(&header)?;
        for part in &plan {
            match part {
                Part::Old(range) => out.put(&old[range.clone()])?,
                Part::Smudged(range) => {
                    scratch.clear();
                    scratch.extend_from_slice(&old[range.clone()]);
                    scratch[36..40].fill(0);
                    out.put(&scratch)?;
                }
                Part::New(n) => {
                    scratch.clear();
                    encode(n, &mut scratch);
                    out.put(&scratch)?;
                }
            }
        }
        let trailer: [u8; TRAILER] = match out.sha.take() {
            Some(sha) => sha.finalize().into(),
            None => [0; TRAILER],
        };
        out.file.write_all(&trailer)?;
        out.file.flush()
    })();
    drop(out);
    result
        .and_then(|()| fs::rename(lock, index_path))
        .map_err(io)?;
    Ok(Splice::Done)
}

/// A piece of the new index: bytes of the old one, or a new entry.
enum Part<'a> {
    Old(std::ops::Range<usize>),
    /// An old entry written with its size zeroed (racily clean).
    Smudged(std::ops::Range<usize>),
    New(&'a NewEntry),
}

/// Writes to the lock file and hashes what it writes.
struct Hashing {
    file: std::io::BufWriter<fs::File>,
    sha: Option<Sha1>,
}

impl Hashing {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(sha) = &mut self.sha {
            sha.update(bytes);
        }
        self.file.write_all(bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Repo(PathBuf);

    impl Repo {
        /// A repository with a few committed files, some staged and unstaged edits of
        /// the user, an intent-to-add entry (an extended flag), and a cache tree.
        fn new(name: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "hitl-index-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            let repo = Self(dir);
            repo.git(&["init", "-q", "-b", "main"]);
            for (path, text) in [
                ("a.txt", "a\n"),
                ("audit/events/000000000/000000000001.json", "{}\n"),
                ("audit/requests/ab/r1", "1\n"),
                ("b/c.txt", "c\n"),
                ("z.txt", "z\n"),
            ] {
                repo.write(path, text);
            }
            repo.git(&["add", "-A"]);
            repo.git(&[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "one",
            ]);
            repo.write("a.txt", "a staged\n");
            repo.git(&["add", "a.txt"]);
            repo.write("z.txt", "z unstaged\n");
            repo.write("new-intent.txt", "i\n");
            repo.git(&["add", "-N", "new-intent.txt"]);
            repo
        }

        fn git(&self, args: &[&str]) -> String {
            let o = Command::new("git")
                .arg("-C")
                .arg(&self.0)
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8(o.stdout).unwrap()
        }

        fn write(&self, path: &str, text: &str) {
            let p = self.0.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }

        /// `git update-index --add --index-info` with `info` on stdin.
        fn index_info(&self, info: &str) {
            let mut child = Command::new("git")
                .arg("-C")
                .arg(&self.0)
                .args(["update-index", "--add", "--index-info"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(info.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
        }

        fn index(&self) -> PathBuf {
            self.0.join(".git/index")
        }

        /// Writes the files and builds their entries as `append` does.
        fn entries(&self, files: &[(&str, &str)]) -> Vec<NewEntry> {
            files
                .iter()
                .map(|(path, text)| {
                    self.write(path, text);
                    self.git(&["hash-object", "-w", path]);
                    let meta = fs::metadata(self.0.join(path)).unwrap();
                    let id =
                        git2::Oid::hash_object(git2::ObjectType::Blob, text.as_bytes()).unwrap();
                    let stat = Stat::of(&meta);
                    NewEntry {
                        path: path.as_bytes().to_vec(),
                        id: id.as_bytes().try_into().unwrap(),
                        stat,
                    }
                })
                .collect()
        }
    }

    impl Drop for Repo {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const FILES: &[(&str, &str)] = &[
        ("audit/events/000000000/000000000002.json", "{\"seq\":2}\n"),
        ("audit/events/000000000/000000000002.json.sig", "sig\n"),
        ("audit/requests/ab/r1", "1\n2\n"),
        ("audit/blobs/00/00ff", "blob\n"),
    ];

    /// The splice stages exactly what `git add` of the same files stages, keeps the
    /// user's staged and unstaged edits and intent-to-add entry, and git reads the result
    /// (checksum, order, flags) as its own.
    #[test]
    fn splice_stages_what_git_add_stages() {
        for version in ["2", "3"] {
            let ours = Repo::new("ours");
            let theirs = Repo::new("theirs");
            for r in [&ours, &theirs] {
                r.git(&["update-index", "--index-version", version]);
            }
            let entries = ours.entries(FILES);
            assert_eq!(
                splice(&ours.index(), &entries, false).unwrap(),
                Splice::Done
            );
            theirs.entries(FILES);
            let paths: Vec<&str> = FILES.iter().map(|(p, _)| *p).collect();
            theirs.git(&[&["add", "--"][..], &paths].concat());

            assert_eq!(
                ours.git(&["ls-files", "-s"]),
                theirs.git(&["ls-files", "-s"])
            );
            assert_eq!(ours.git(&["write-tree"]), theirs.git(&["write-tree"]));
            let status = ours.git(&["status", "--porcelain"]);
            assert_eq!(status, theirs.git(&["status", "--porcelain"]));
            assert!(status.contains("M  a.txt"), "{status}");
            assert!(status.contains(" M z.txt"), "{status}");
            assert!(status.contains(" A new-intent.txt"), "{status}");
            assert!(status.contains("A  audit/events/000000000/000000000002.json\n"));
            assert!(status.contains("M  audit/requests/ab/r1"), "{status}");
            // The stat data is right: nothing to refresh for the new files.
            assert_eq!(ours.git(&["diff", "--stat", "--", "audit"]), "");
            ours.git(&["fsck", "--no-progress"]);
        }
    }

    /// A user's edit made in the second the index was last written ("racily clean":
    /// same size, same mtime as staged) stays visible to git after the splice.
    #[test]
    fn racily_clean_entries_are_smudged() {
        let r = Repo::new("racy");
        // ctime cannot be set back from user space: compare without it, as git does
        // with this setting.
        r.git(&["config", "core.trustctime", "false"]);
        let z = r.0.join("z.txt");
        let at_2020 = |p: &Path| {
            let ok = Command::new("touch")
                .args(["-d", "@1577836800"])
                .arg(p)
                .status()
                .unwrap();
            assert!(ok.success());
        };
        r.write("z.txt", "zzz\n");
        at_2020(&z);
        r.git(&["add", "z.txt"]);
        // The index written in the second the file was staged: the entry is racy...
        at_2020(&r.index());
        // ...and the file edited in that second: same size, same mtime as staged.
        fs::write(&z, "yyy\n").unwrap();
        at_2020(&z);
        let entries = r.entries(&[("audit/new", "n\n")]);
        assert_eq!(splice(&r.index(), &entries, false).unwrap(), Splice::Done);
        let status = r.git(&["status", "--porcelain"]);
        assert!(
            status.contains("MM z.txt") || status.contains(" M z.txt"),
            "{status}"
        );
        assert!(r.git(&["diff", "--stat"]).contains("z.txt"));
    }

    #[test]
    fn skip_hash_writes_a_zero_trailer_git_accepts() {
        let r = Repo::new("skiphash");
        let entries = r.entries(FILES);
        assert_eq!(splice(&r.index(), &entries, true).unwrap(), Splice::Done);
        let bytes = fs::read(r.index()).unwrap();
        assert!(bytes[bytes.len() - TRAILER..].iter().all(|&b| b == 0));
        assert!(r.git(&["ls-files"]).contains("audit/blobs/00/00ff"));
        // ...and a zero trailer is read back (a second splice over it).
        let again = r.entries(&[("audit/x", "x\n")]);
        assert_eq!(splice(&r.index(), &again, false).unwrap(), Splice::Done);
        assert!(r.git(&["ls-files"]).contains("audit/x"));
    }

    #[test]
    fn what_the_fast_path_does_not_handle_goes_to_libgit2() {
        let r = Repo::new("v4");
        r.git(&["update-index", "--index-version", "4"]);
        let before = fs::read(r.index()).unwrap();
        let entries = r.entries(FILES);
        assert_eq!(
            splice(&r.index(), &entries, false).unwrap(),
            Splice::Unsupported("index version is not 2 or 3")
        );
        assert_eq!(fs::read(r.index()).unwrap(), before, "nothing written");

        let r = Repo::new("split");
        r.git(&["update-index", "--split-index"]);
        let entries = r.entries(FILES);
        assert_eq!(
            splice(&r.index(), &entries, false).unwrap(),
            Splice::Unsupported("a mandatory index extension")
        );

        // A file where the index has a folder, and a folder where it has a file.
        let r = Repo::new("clash");
        for path in ["b", "a.txt/inner", "b/c.txt/d"] {
            let entry = NewEntry {
                path: path.as_bytes().to_vec(),
                id: [7; 20],
                stat: Stat::default(),
            };
            assert!(
                matches!(
                    splice(&r.index(), &[entry], false).unwrap(),
                    Splice::Unsupported(_)
                ),
                "{path}"
            );
        }
        // Clashes the walk order could hide: another new path sorts in between.
        let r = Repo::new("clash2");
        for old in ["audit/e/2.json.bak", "audit/e/2.json/x", "q"] {
            let info = format!(
                "100644 {} 0\t{old}\n",
                "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
            );
            r.index_info(&info);
        }
        let ls = r.git(&["ls-files"]);
        assert!(
            ls.contains("audit/e/2.json/x") && ls.contains("q\n"),
            "{ls}"
        );
        for new in [
            &["audit/e/2.json", "audit/e/2.json.sig"][..],
            &["q-b", "q/y"][..],
        ] {
            let entries: Vec<NewEntry> = new
                .iter()
                .map(|p| NewEntry {
                    path: p.as_bytes().to_vec(),
                    id: [7; 20],
                    stat: Stat::default(),
                })
                .collect();
            assert!(
                matches!(
                    splice(&r.index(), &entries, false).unwrap(),
                    Splice::Unsupported(_)
                ),
                "{new:?}"
            );
        }

        // A conflict on a path we write.
        let r = Repo::new("conflict");
        let blob = r.git(&["rev-parse", "HEAD:a.txt"]);
        let info = format!("100644 {} 2\taudit/requests/ab/r1\n", blob.trim());
        r.index_info(&info);
        assert!(
            r.git(&["ls-files", "-s"])
                .contains(" 2\taudit/requests/ab/r1")
        );
        let entries = r.entries(&[("audit/requests/ab/r1", "3\n")]);
        assert_eq!(
            splice(&r.index(), &entries, false).unwrap(),
            Splice::Unsupported("a new file is in conflict in the index")
        );
    }

    /// The check before an append: every version walks; split and sparse indexes are
    /// named.
    #[test]
    fn check_names_split_and_sparse_indexes() {
        for version in ["2", "3", "4"] {
            let r = Repo::new("check");
            r.git(&["update-index", "--index-version", version]);
            assert_eq!(check(&r.index()), Ok(()), "version {version}");
            r.git(&["update-index", "--split-index"]);
            let err = check(&r.index()).unwrap_err();
            assert!(err.contains("--no-split-index"), "{err}");
            r.git(&["update-index", "--no-split-index"]);
            assert_eq!(check(&r.index()), Ok(()), "version {version}");
        }
        let r = Repo::new("sparse");
        r.git(&["sparse-checkout", "set", "--cone", "--sparse-index", "b"]);
        let err = check(&r.index()).unwrap_err();
        assert!(err.contains("sparse index"), "{err}");
        assert_eq!(check(&r.0.join(".git/no-such-index")), Ok(()));
    }

    #[test]
    fn a_damaged_or_locked_index_is_an_error() {
        let r = Repo::new("damaged");
        let mut bytes = fs::read(r.index()).unwrap();
        // Cut in the middle of the last entry (the trailer kept): an entry is truncated.
        let n = bytes.len();
        bytes.drain(n - TRAILER - 30..n - TRAILER);
        fs::write(r.index(), &bytes).unwrap();
        let entries = r.entries(FILES);
        let err = splice(&r.index(), &entries, false).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");

        let r = Repo::new("locked");
        fs::write(r.0.join(".git/index.lock"), "").unwrap();
        let before = fs::read(r.index()).unwrap();
        let entries = r.entries(FILES);
        assert!(matches!(
            splice(&r.index(), &entries, false),
            Err(IndexError::Io { .. })
        ));
        assert_eq!(fs::read(r.index()).unwrap(), before);
        assert!(
            r.0.join(".git/index.lock").exists(),
            "someone else's lock stays"
        );
    }
}
