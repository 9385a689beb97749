//! Appending events: one signed git commit per state change, built from HEAD's tree.
//!
//! Order of work, under an exclusive lock (`<git dir>/hitl-audit.lock`, released by the
//! OS if the process dies):
//!
//! 1. finish an append a killed process left half-done (the journal, below), including
//!    the git lock files it left (`index.lock`, the branch's `refs/heads/<branch>.lock`);
//! 2. read the last event from HEAD's tree (two tree lookups, whatever the log's length),
//!    then the clock: a clock behind that event refuses the append;
//! 3. write the new events, signatures, blobs and request indexes as git objects and
//!    build the new tree from HEAD's with a `TreeUpdateBuilder` (no index, no folder
//!    scan);
//! 4. create the commit, sign it in git's SSH format (`gpgsig`, namespace `git`);
//! 5. write the journal (commit id and paths), move the branch with a compare-and-swap;
//! 6. write the new files into the working tree and the index (only those paths), then
//!    delete the journal.
//!
//! A kill before step 5 leaves only unreferenced objects: nothing was recorded. A kill
//! after it leaves a committed append whose files may be missing from the working tree
//! and index; step 1 of the next append restores them from the journal.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use git2::{FileMode, Oid, Signature, Time, Tree};
use serde_json::{Map, Value as Json};

use super::store::AuditRepo;
use super::{
    Actor, AuditError, ConfigVersions, Event, GENESIS, blob_path, event_path, request_index_path,
    sha256_hex, sig_path,
};
use crate::signing::{GIT_NAMESPACE, NAMESPACE, SigningKey};

use super::index;

/// An event to append; `seq`, `prev`, `at`, `actor` and `config` are filled in.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub request: String,
    pub fields: Map<String, Json>,
    /// Write a detached signature beside it (decision events).
    pub sign: bool,
    /// The versions of the configuration it was decided under, when the workflow engine
    /// read them under the lock (else the appender's).
    pub config: Option<ConfigVersions>,
}

/// What one append wrote.
#[derive(Debug, Clone)]
pub struct Appended {
    pub commit: Oid,
    pub events: Vec<(String, Event)>,
    /// Set when the commit landed but the working tree or index could not be updated:
    /// the events are recorded; the journal stays, and the next append finishes it.
    pub warning: Option<String>,
}

/// Everything one append needs.
pub struct Appender<'a, E = AuditError> {
    pub key: &'a SigningKey,
    pub actor: Actor,
    pub config: ConfigVersions,
    /// The clock, read once by [`AuditRepo::append`] after it has taken the lock and
    /// recovered: the `at` of the events, the commit's time and the `now` its `build`
    /// checks with. Read before the lock, a process that waited for another would
    /// record a time before the event that process appended.
    pub clock: &'a dyn Fn() -> Result<DateTime<Utc>, E>,
}

/// What an append's `build` decided under the lock: the events and blobs to record, and
/// the commit's subject and trailers, taken from what was decided (never from what a
/// command read before it held the lock).
#[derive(Debug)]
pub struct Built {
    pub events: Vec<NewEvent>,
    pub blobs: Vec<Vec<u8>>,
    /// The approval file the final approval writes, once its event is known
    /// ([`crate::approval::Draft::finish`]), signed by the appender's key.
    pub approval: Option<crate::approval::Draft>,
    /// The commit subject, e.g. `approve refund-4711 (tier 3) by lea@example.com`.
    pub subject: String,
    /// Extra trailers (`Hitl-Tier`, `Hitl-Decision`); `Hitl-Request`, `Hitl-Type` and
    /// `Hitl-Seq` are added from the events.
    pub trailers: Vec<(String, String)>,
}

const LOCK_FILE: &str = "hitl-audit.lock";
const JOURNAL_FILE: &str = "hitl-audit.journal";
const TMP_PREFIX: &str = "hitl-audit.tmp.";

/// Holds the audit lock until dropped.
pub struct AuditLock {
    _file: File,
}

impl AuditRepo {
    /// Takes the exclusive audit lock, waiting for another `hitl` that holds it.
    ///
    /// # Errors
    /// When the lock file cannot be opened or locked.
    pub fn lock(&self) -> Result<AuditLock, AuditError> {
        let path = self.repo.path().join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| AuditError::Lock {
                path: path.display().to_string(),
                source: e,
            })?;
        file.lock().map_err(|e| AuditError::Lock {
            path: path.display().to_string(),
            source: e,
        })?;
        Ok(AuditLock { _file: file })
    }

    fn journal_path(&self) -> PathBuf {
        self.repo.path().join(JOURNAL_FILE)
    }

    /// Finishes an append that a killed process left between moving the branch and
    /// updating the working tree and index. Call with the lock held.
    ///
    /// # Errors
    /// When the files cannot be written.
    pub fn recover(&self, _lock: &AuditLock) -> Result<(), AuditError> {
        // Temporary files of a killed process (ours are renamed away before we return).
        if let Ok(entries) = fs::read_dir(self.repo.path()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let journal = self.journal_path();
        let Ok(text) = fs::read_to_string(&journal) else {
            return Ok(());
        };
        let mut lines = text.lines();
        let commit = lines.next().and_then(|l| Oid::from_str(l).ok());
        let paths: Vec<String> = lines.map(str::to_owned).collect();
        // Git's lock files a killed append left behind; each would fail every later
        // append. hitl creates them only while the journal exists (it is written before
        // the branch moves and removed after the index is written), and we hold the audit
        // lock, so the hitl that wrote the journal is dead: a lock made within seconds
        // after the journal is its own. Any other lock belongs to someone else (a git
        // the user runs does not take hitl's lock) and is left alone; the append then
        // fails with a message that names it.
        if let Some(journal_time) = modified(&journal) {
            // libgit2 writing the index (or our splice of it): `index.lock`, written
            // milliseconds after the journal.
            let index_lock = self.repo.path().join("index.lock");
            if modified(&index_lock).is_some_and(|t| soon_after(t, journal_time)) {
                let _ = fs::remove_file(&index_lock);
            }
            // libgit2 moving the branch: `refs/heads/<branch>.lock`. (hitl never writes
            // HEAD itself, and libgit2 appends to HEAD's reflog without `HEAD.lock`, so a
            // `HEAD.lock` is never ours.)
            if let Some(ref_lock) = self.branch_lock_path()
                && stale_ref_lock(&ref_lock, journal_time, commit)
            {
                let _ = fs::remove_file(&ref_lock);
            }
            // Written again, so that the `index.lock` this recovery itself may leave if
            // it is killed is within seconds of the journal too (the kernel stamps both,
            // with the same clock).
            write_atomic(&journal, text.as_bytes(), self.repo.path())?;
        }
        if let (Some(commit), Some(head)) = (commit, self.head_commit()?) {
            let landed = head.id() == commit
                || self
                    .repo
                    .graph_descendant_of(head.id(), commit)
                    .unwrap_or(false);
            if landed {
                let tree = self.repo.find_commit(commit)?.tree()?;
                let mut files = Vec::new();
                for rel in paths {
                    if let Some(bytes) = self.read(&tree, &rel)? {
                        files.push((rel, bytes));
                    }
                }
                self.check_out(&files)?;
            }
        }
        fs::remove_file(&journal).map_err(|e| AuditError::Write {
            path: journal.display().to_string(),
            source: e,
        })
    }

    /// `<common git dir>/refs/heads/<branch>.lock` of the branch HEAD names, where
    /// libgit2 locks it while moving it.
    fn branch_lock_path(&self) -> Option<PathBuf> {
        let head = self.repo.find_reference("HEAD").ok()?;
        let branch = head.symbolic_target()?;
        Some(self.repo.commondir().join(format!("{branch}.lock")))
    }

    /// Writes files into the working tree and stages exactly those paths.
    fn check_out(&self, files: &[(String, Vec<u8>)]) -> Result<(), AuditError> {
        for (rel, bytes) in files {
            // Never write through a symlink planted in the working tree.
            let mut at = self.root.clone();
            for part in Path::new(rel).components() {
                at.push(part);
                if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(AuditError::Corrupt {
                        path: rel.clone(),
                        message: format!(
                            "`{}` is a symbolic link in the working tree; hitl does not write through it",
                            at.display()
                        ),
                    });
                }
            }
            write_atomic(&self.root.join(rel), bytes, self.repo.path())?;
        }
        let mut staged = Vec::with_capacity(files.len());
        for (rel, bytes) in files {
            let meta =
                fs::symlink_metadata(self.root.join(rel)).map_err(|e| AuditError::Write {
                    path: rel.clone(),
                    source: e,
                })?;
            let id = git2::Oid::hash_object(git2::ObjectType::Blob, bytes)?;
            staged.push((self.git_path(rel), id, meta));
        }
        let index_path = self.repo.path().join("index");
        let config = self.repo.config()?.snapshot()?;
        let sha1_repo = config
            .get_str("extensions.objectformat")
            .map_or(true, |f| f.eq_ignore_ascii_case("sha1"));
        if sha1_repo {
            let entries: Vec<index::NewEntry> = staged
                .iter()
                .filter_map(|(path, id, meta)| {
                    Some(index::NewEntry {
                        path: path.clone().into_bytes(),
                        id: id.as_bytes().try_into().ok()?,
                        stat: index::Stat::of(meta),
                    })
                })
                .collect();
            let skip_hash = config.get_bool("index.skipHash").unwrap_or(false);
            if entries.len() == staged.len()
                && index::splice(&index_path, &entries, skip_hash)? == index::Splice::Done
            {
                return Ok(());
            }
        }
        // libgit2 for what the fast path does not handle. The repository's own index (a
        // standalone one would not smudge racily clean entries), read fresh from disk:
        // the repository may hold an index it loaded before we took the lock, and another
        // hitl may have written a newer one since (writing that would drop its entries).
        let mut index = self.repo.index()?;
        index.read(true)?;
        for (path, id, meta) in staged {
            let stat = index::Stat::of(&meta);
            index.add(&git2::IndexEntry {
                ctime: git2::IndexTime::new(stat.ctime.0.cast_signed(), stat.ctime.1),
                mtime: git2::IndexTime::new(stat.mtime.0.cast_signed(), stat.mtime.1),
                dev: stat.dev,
                ino: stat.ino,
                mode: stat.mode,
                uid: stat.uid,
                gid: stat.gid,
                file_size: stat.size,
                id,
                flags: 0,
                flags_extended: 0,
                path: path.into_bytes(),
            })?;
        }
        index.write()?;
        Ok(())
    }

    /// Appends `events` (and `blobs`, stored by digest) as one signed commit on the
    /// current branch.
    ///
    /// # Errors
    /// Git, signing or write errors; `Raced` when the branch moved under us and
    /// `GitLocked` when a git lock on it is not provably stale (then nothing was
    /// recorded).
    ///
    /// `ClockBehind` when `how.clock`, read under the lock, is before the `at` of the
    /// last event in HEAD's tree (compared at the second the event would record); the
    /// clock's own error, `E`, when it cannot be read.
    ///
    /// `build` runs under the lock with HEAD's tree and the clock's `now` and returns the
    /// events and blobs to append, with the commit's message ([`Built`]): checks that read the audit (was this request
    /// proposed, is it decided, has it expired) see the state the append extends and
    /// the time it records, so two processes cannot both pass them.
    pub fn append<E: From<AuditError>>(
        &self,
        how: &Appender<'_, E>,
        build: impl FnOnce(
            &Self,
            Option<&git2::Commit<'_>>,
            &Tree<'_>,
            DateTime<Utc>,
        ) -> Result<Built, E>,
    ) -> Result<Appended, E> {
        let lock = self.lock()?;
        self.recover(&lock)?;
        let parent = self.head_commit()?;
        let base_tree = match &parent {
            Some(c) => c.tree().map_err(AuditError::from)?,
            None => {
                let empty = self
                    .repo
                    .treebuilder(None)
                    .and_then(|b| b.write())
                    .map_err(AuditError::from)?;
                self.repo.find_tree(empty).map_err(AuditError::from)?
            }
        };
        let last = self.last_event(&base_tree)?;
        // The clock after the lock: whoever held it before us has recorded its events,
        // so a correct clock is not behind them.
        let now = (how.clock)()?;
        if let Some((event, _)) = &last {
            not_before(now, event)?;
        }
        let built = build(self, parent.as_ref(), &base_tree, now)?;
        let batch = Batch {
            parent: parent.as_ref(),
            base_tree: &base_tree,
            last,
            now,
            built,
        };
        Ok(self.append_locked(how, lock, batch)?)
    }

    fn append_locked<E>(
        &self,
        how: &Appender<'_, E>,
        lock: AuditLock,
        batch: Batch<'_, '_>,
    ) -> Result<Appended, AuditError> {
        let Batch {
            parent,
            base_tree,
            last,
            now,
            built,
        } = batch;
        let Built {
            events,
            blobs,
            approval,
            subject,
            trailers,
        } = built;
        // An index nobody here can write would leave the commit unstaged (and a later
        // `git commit -a` would delete it): refuse before anything is recorded.
        // Walking the index costs a read of it: only when one can be split (a
        // `sharedindex.*` file exists) or sparse (`index.sparse`).
        let split = fs::read_dir(self.repo.path()).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("sharedindex."))
        });
        let sparse = self
            .repo
            .config()
            .and_then(|c| c.get_bool("index.sparse"))
            .unwrap_or(false);
        if split || sparse {
            index::check(&self.repo.path().join("index"))
                .map_err(|reason| AuditError::UnsupportedIndex { reason })?;
        }
        let (mut seq, mut prev) = match last {
            Some((event, bytes)) => (event.seq, sha256_hex(&bytes)),
            None => (0, GENESIS.to_owned()),
        };
        let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut written = Vec::new();
        let mut per_request: Vec<(String, Vec<u64>)> = Vec::new();
        for new in events {
            seq += 1;
            let event = Event {
                seq,
                prev: prev.clone(),
                kind: new.kind,
                request: new.request,
                at: at.clone(),
                actor: how.actor.clone(),
                config: new.config.clone().unwrap_or_else(|| how.config.clone()),
                fields: new.fields,
            };
            let bytes = event.to_bytes()?;
            prev = sha256_hex(&bytes);
            if new.sign {
                let sig = how.key.sign(NAMESPACE, &bytes)?;
                files.push((sig_path(seq), sig.into_bytes()));
            }
            match per_request.iter_mut().find(|(r, _)| *r == event.request) {
                Some((_, seqs)) => seqs.push(seq),
                None => per_request.push((event.request.clone(), vec![seq])),
            }
            let path = event_path(seq);
            files.push((path.clone(), bytes));
            written.push((path, event));
        }
        for (request, seqs) in &per_request {
            let mut index = self
                .read(base_tree, &request_index_path(request))?
                .unwrap_or_default();
            for s in seqs {
                index.extend_from_slice(format!("{s}\n").as_bytes());
            }
            files.push((request_index_path(request), index));
        }
        for blob in blobs {
            files.push((blob_path(&sha256_hex(&blob)), blob));
        }
        // The approval file names the final decision: the last event, by its seq and hash.
        if let Some(draft) = approval {
            let request = draft.request.clone();
            let file = draft.finish(seq, &prev, |statement| {
                how.key.sign(crate::approval::NAMESPACE, statement)
            })?;
            files.push((crate::approval::path(&request), file.to_bytes()));
        }

        // Events and signatures are never overwritten: if one is already there, HEAD's
        // tree is not what the last event said (a hand-made commit); refuse.
        // Nothing already there is changed (what the audit rule of `check_governed`
        // demands of every commit, and what `remember_appended` relies on): an event or a
        // signature is never there; a blob is there only as these very bytes, a request
        // index only as a plain file (it is extended from what it holds).
        for (rel, bytes) in &files {
            let is_index = rel.starts_with(&format!("{}/requests/", super::AUDIT_DIR));
            let is_blob = rel.starts_with(&format!("{}/blobs/", super::AUDIT_DIR));
            let Ok(entry) = base_tree.get_path(Path::new(&self.git_path(rel))) else {
                continue;
            };
            let plain =
                entry.kind() == Some(git2::ObjectType::Blob) && entry.filemode() == 0o100_644;
            let same =
                plain && entry.id() == git2::Oid::hash_object(git2::ObjectType::Blob, bytes)?;
            let fine = (is_blob && same) || (is_index && plain);
            if !fine {
                return Err(AuditError::Corrupt {
                    path: rel.clone(),
                    message: "it exists already, and an append changes nothing that is there"
                        .to_owned(),
                });
            }
        }
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (rel, bytes) in &files {
            let oid = self.repo.blob(bytes)?;
            update.upsert(self.git_path(rel), oid, FileMode::Blob);
        }
        let tree_id = update.create_updated(&self.repo, base_tree)?;
        let tree = self.repo.find_tree(tree_id)?;

        let message = commit_message(&subject, &written, &trailers);
        let when = Time::new(now.timestamp(), 0);
        let who = Signature::new(&how.actor.principal, &how.actor.principal, &when)?;
        let parents: Vec<&git2::Commit<'_>> = parent.into_iter().collect();
        let buffer = self
            .repo
            .commit_create_buffer(&who, &who, &message, &tree, &parents)?;
        let content = std::str::from_utf8(&buffer).map_err(|_| AuditError::Corrupt {
            path: "commit".to_owned(),
            message: "commit buffer is not UTF-8".to_owned(),
        })?;
        let signature = how.key.sign(GIT_NAMESPACE, content.as_bytes())?;
        let commit = self
            .repo
            .commit_signed(content, &signature, Some("gpgsig"))?;

        // The journal first, then the branch: a kill in between is finished by `recover`.
        let journal = self.journal_path();
        let mut text = format!("{commit}\n");
        for (rel, _) in &files {
            text.push_str(rel);
            text.push('\n');
        }
        write_atomic(&journal, text.as_bytes(), self.repo.path())?;
        let head = self.repo.find_reference("HEAD")?;
        let branch = head
            .symbolic_target()
            .ok_or(AuditError::DetachedHead)?
            .to_owned();
        let log = format!("hitl: {subject}");
        let moved = match parent {
            Some(p) => self
                .repo
                .reference_matching(&branch, commit, true, p.id(), &log),
            None => self.repo.reference(&branch, commit, false, &log),
        };
        if let Err(e) = moved {
            let _ = fs::remove_file(&journal);
            return Err(match e.code() {
                git2::ErrorCode::Modified | git2::ErrorCode::Exists => AuditError::Raced,
                git2::ErrorCode::Locked => AuditError::GitLocked {
                    path: self
                        .branch_lock_path()
                        .map_or_else(|| format!("{branch}.lock"), |p| p.display().to_string()),
                },
                _ => e.into(),
            });
        }
        // The commit has landed: from here on a failure is a warning, not an error (the
        // events are recorded; a retry would be refused as a duplicate).
        let warning = match self.check_out(&files) {
            Ok(()) => fs::remove_file(&journal)
                .err()
                .map(|e| format!("cannot remove `{}`: {e}", journal.display())),
            Err(e) => Some(format!(
                "recorded in commit {commit}, but the working tree and index were not updated ({e}); the next hitl command that appends finishes it"
            )),
        };
        drop(lock);
        Ok(Appended {
            commit,
            events: written,
            warning,
        })
    }
}

/// What one append writes, decided under the lock.
struct Batch<'r, 't> {
    parent: Option<&'t git2::Commit<'r>>,
    base_tree: &'t Tree<'r>,
    /// The last event in `base_tree`, with its bytes.
    last: Option<(Event, Vec<u8>)>,
    now: DateTime<Utc>,
    built: Built,
}

/// Refuses a `now` whose second (what the event would record) is before the `at` of the
/// last event: the chain's times never go backwards. An `at` that does not parse fails
/// closed.
fn not_before(now: DateTime<Utc>, last: &Event) -> Result<(), AuditError> {
    let last_at = DateTime::parse_from_rfc3339(&last.at)
        .map_err(|e| AuditError::Corrupt {
            path: super::event_path(last.seq),
            message: format!("its `at` ({}) is not an RFC 3339 time: {e}", last.at),
        })?
        .with_timezone(&Utc);
    let recorded = now.timestamp();
    if recorded < last_at.timestamp() {
        return Err(AuditError::ClockBehind {
            now: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            last: last.at.clone(),
            seq: last.seq,
        });
    }
    Ok(())
}

fn modified(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// How long after the journal a lock file of the append that wrote it can be made: the
/// index and the branch are written milliseconds after the journal.
const LOCK_WINDOW: Duration = Duration::from_secs(10);

/// How long git holds a ref lock at most before it has written the new value into it
/// (milliseconds in practice): an empty lock file younger than this may be a live
/// git's that is about to be written.
const REF_LOCK_MIN_AGE: Duration = Duration::from_secs(2);

/// `lock` was made at or after `journal`, within [`LOCK_WINDOW`].
fn soon_after(lock: SystemTime, journal: SystemTime) -> bool {
    lock.duration_since(journal).is_ok_and(|d| d < LOCK_WINDOW)
}

/// Whether the branch's ref lock at `path` is provably the one the killed append of the
/// journal (made at `journal_time`, naming `commit`) left, so that removing it can
/// break no running git. All of:
///
/// - it was made within [`LOCK_WINDOW`] after the journal (as `index.lock`);
/// - it holds what libgit2 writes into it: nothing yet (it writes at commit time) or
///   the journal's commit; a git the user runs writes another commit's id;
/// - it is at least [`REF_LOCK_MIN_AGE`] old and unchanged after waiting for that: git
///   creates lock files with `O_EXCL` and writes the new value into them at once, so a
///   live git's empty lock would have changed or gone by then.
///
/// An age alone is no proof: a git whose `reference-transaction` hook runs, or an
/// `update-ref --stdin` transaction, holds its locks as long as it likes.
fn stale_ref_lock(path: &Path, journal_time: SystemTime, commit: Option<Oid>) -> bool {
    let look =
        || -> Option<(SystemTime, Vec<u8>)> { Some((modified(path)?, fs::read(path).ok()?)) };
    let Some(seen) = look() else {
        return false;
    };
    let (made, bytes) = &seen;
    if !soon_after(*made, journal_time) {
        return false;
    }
    let ours = bytes.is_empty() || commit.is_some_and(|c| *bytes == format!("{c}\n").into_bytes());
    if !ours {
        return false;
    }
    let age = SystemTime::now().duration_since(*made).unwrap_or_default();
    if age < REF_LOCK_MIN_AGE {
        std::thread::sleep(REF_LOCK_MIN_AGE - age);
        return look().as_ref() == Some(&seen);
    }
    true
}

fn commit_message(subject: &str, events: &[(String, Event)], extra: &[(String, String)]) -> String {
    let mut msg = format!("{subject}\n\n");
    let mut requests: Vec<&str> = Vec::new();
    let mut types: Vec<&str> = Vec::new();
    for (_, e) in events {
        if !requests.contains(&e.request.as_str()) {
            requests.push(&e.request);
        }
        if !types.contains(&e.kind.as_str()) {
            types.push(&e.kind);
        }
    }
    for r in requests {
        msg.push_str(&format!("Hitl-Request: {r}\n"));
    }
    for t in types {
        msg.push_str(&format!("Hitl-Type: {t}\n"));
    }
    if let (Some((_, first)), Some((_, last))) = (events.first(), events.last()) {
        if first.seq == last.seq {
            msg.push_str(&format!("Hitl-Seq: {}\n", first.seq));
        } else {
            msg.push_str(&format!("Hitl-Seq: {}-{}\n", first.seq, last.seq));
        }
    }
    for (k, v) in extra {
        msg.push_str(&format!("{k}: {v}\n"));
    }
    msg
}

/// Writes through a temporary file in the git folder and a rename, so a reader never
/// sees half a file and a killed process leaves no stray file in the working tree.
fn write_atomic(path: &Path, bytes: &[u8], tmp_dir: &Path) -> Result<(), AuditError> {
    let err = |e| AuditError::Write {
        path: path.display().to_string(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = tmp_dir.join(format!("{TMP_PREFIX}{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)
}
