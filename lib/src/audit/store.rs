//! Reading the audit from git: the repository, its HEAD tree, events by seq and by request.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository, Tree};

use super::{AUDIT_DIR, AuditError, Event, event_path, request_index_path, seq_of_name};

/// The git repository that holds a workspace's audit.
pub struct AuditRepo {
    pub repo: Repository,
    /// The workspace folder relative to the repository's working tree, `""` or `"a/b/"`.
    pub prefix: String,
    /// The workspace root on disk.
    pub root: PathBuf,
}

impl std::fmt::Debug for AuditRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditRepo")
            .field("prefix", &self.prefix)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl AuditRepo {
    /// Opens the repository that contains the workspace at `root`.
    ///
    /// # Errors
    /// No repository, a bare one, or a workspace outside its working tree.
    pub fn open(root: &Path) -> Result<Self, AuditError> {
        let repo =
            Repository::discover(root).map_err(|_| AuditError::NoRepository(root.to_path_buf()))?;
        let workdir = repo
            .workdir()
            .ok_or_else(|| AuditError::Bare(root.to_path_buf()))?
            .canonicalize()
            .map_err(|e| AuditError::Write {
                path: root.display().to_string(),
                source: e,
            })?;
        let abs = root.canonicalize().map_err(|e| AuditError::Write {
            path: root.display().to_string(),
            source: e,
        })?;
        let rel = abs
            .strip_prefix(&workdir)
            .map_err(|_| AuditError::NoRepository(root.to_path_buf()))?;
        let mut prefix = String::new();
        for part in rel.components() {
            prefix.push_str(&part.as_os_str().to_string_lossy());
            prefix.push('/');
        }
        Ok(Self {
            repo,
            prefix,
            root: abs,
        })
    }

    /// The workspace-relative paths among `rels` (files or folders) whose content on
    /// disk differs from HEAD's: changed, added or deleted files. Compares bytes
    /// directly, so it costs the size of these paths, not of the repository or its
    /// index.
    ///
    /// # Errors
    /// When HEAD or a file cannot be read.
    pub fn uncommitted(&self, rels: &[&str]) -> Result<Vec<String>, AuditError> {
        let head = self.head_commit()?;
        let tree = match &head {
            Some(c) => Some(c.tree()?),
            None => None,
        };
        let mut out = Vec::new();
        for rel in rels {
            self.compare(tree.as_ref(), rel, &mut out)?;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn compare(
        &self,
        tree: Option<&Tree<'_>>,
        rel: &str,
        out: &mut Vec<String>,
    ) -> Result<(), AuditError> {
        let disk = self.root.join(rel);
        let meta = std::fs::symlink_metadata(&disk).ok();
        let entry = tree.and_then(|t| t.get_path(Path::new(&self.git_path(rel))).ok());
        let committed_dir = entry
            .as_ref()
            .is_some_and(|e| e.kind() == Some(ObjectType::Tree));
        if meta.as_ref().is_some_and(std::fs::Metadata::is_dir) || committed_dir {
            let mut names: Vec<String> = Vec::new();
            if let Ok(rd) = std::fs::read_dir(&disk) {
                names.extend(
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
            if committed_dir && let Some(e) = &entry {
                let sub = self.repo.find_tree(e.id())?;
                names.extend(sub.iter().filter_map(|x| x.name().map(str::to_owned)));
            }
            names.sort();
            names.dedup();
            for name in names {
                self.compare(tree, &format!("{rel}/{name}"), out)?;
            }
            return Ok(());
        }
        let on_disk = match meta {
            Some(m) if m.is_file() => {
                Some(std::fs::read(&disk).map_err(|e| AuditError::Write {
                    path: rel.to_owned(),
                    source: e,
                })?)
            }
            Some(_) => Some(Vec::new()),
            None => None,
        };
        let committed = match (&entry, tree) {
            (Some(e), Some(_)) if e.kind() == Some(ObjectType::Blob) => {
                Some(self.repo.find_blob(e.id())?.content().to_vec())
            }
            (Some(_), _) => Some(Vec::new()),
            _ => None,
        };
        if on_disk != committed {
            out.push(rel.to_owned());
        }
        Ok(())
    }

    /// A workspace-relative path as a path in the repository.
    #[must_use]
    pub fn git_path(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// The commit HEAD points at; `None` on an unborn branch.
    ///
    /// # Errors
    /// A detached HEAD or an unreadable repository.
    pub fn head_commit(&self) -> Result<Option<git2::Commit<'_>>, AuditError> {
        match self.repo.head() {
            Ok(head) => {
                if !head.is_branch() {
                    return Err(AuditError::DetachedHead);
                }
                Ok(Some(head.peel_to_commit()?))
            }
            Err(e) if e.code() == git2::ErrorCode::UnbornBranch => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The commit HEAD points at, for reading: a detached HEAD (a CI checkout) is fine.
    /// `None` on an unborn branch.
    ///
    /// # Errors
    /// An unreadable repository.
    pub fn head_for_reading(&self) -> Result<Option<git2::Commit<'_>>, AuditError> {
        match self.repo.head() {
            Ok(head) => Ok(Some(head.peel_to_commit()?)),
            Err(e) if e.code() == git2::ErrorCode::UnbornBranch => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of a workspace-relative path in `tree`, if it is a file there.
    ///
    /// # Errors
    /// An unreadable object.
    pub fn read(&self, tree: &Tree<'_>, rel: &str) -> Result<Option<Vec<u8>>, AuditError> {
        let entry = match tree.get_path(Path::new(&self.git_path(rel))) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        Ok(Some(self.repo.find_blob(entry.id())?.content().to_vec()))
    }

    /// A blob by its `sha256:<hex>` digest, if it is stored.
    ///
    /// # Errors
    /// An unreadable object.
    pub fn blob(&self, tree: &Tree<'_>, digest: &str) -> Result<Option<Vec<u8>>, AuditError> {
        match digest.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                self.read(tree, &super::blob_path(hex))
            }
            _ => Ok(None),
        }
    }

    /// The subtree at a workspace-relative folder, if any.
    ///
    /// # Errors
    /// An unreadable object.
    pub fn subtree<'r>(
        &'r self,
        tree: &Tree<'_>,
        rel: &str,
    ) -> Result<Option<Tree<'r>>, AuditError> {
        let path = self.git_path(rel);
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Ok(Some(self.repo.find_tree(tree.id())?));
        }
        match tree.get_path(Path::new(path)) {
            Ok(e) if e.kind() == Some(ObjectType::Tree) => Ok(Some(self.repo.find_tree(e.id())?)),
            Ok(_) => Ok(None),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The last event in `tree` (the highest file name), with its exact bytes. Tree
    /// entries are sorted and names are zero-padded, so this costs two lookups however
    /// long the log is.
    ///
    /// # Errors
    /// An unreadable object, or an event file that does not parse.
    pub fn last_event(&self, tree: &Tree<'_>) -> Result<Option<(Event, Vec<u8>)>, AuditError> {
        let Some(events) = self.subtree(tree, &format!("{AUDIT_DIR}/events"))? else {
            return Ok(None);
        };
        // Only folders named as the layout names them count; anything else is corrupt
        // (and would otherwise make the log look shorter than it is).
        let Some(shard) = events.iter().next_back() else {
            return Ok(None);
        };
        let name_ok = shard
            .name()
            .is_some_and(|n| n.len() == 9 && n.bytes().all(|b| b.is_ascii_digit()));
        if !name_ok || shard.kind() != Some(ObjectType::Tree) {
            return Err(AuditError::Corrupt {
                path: format!("{AUDIT_DIR}/events/{}", shard.name().unwrap_or("?")),
                message: "not an event folder".to_owned(),
            });
        }
        let shard_name = shard.name().unwrap_or_default().to_owned();
        let shard = self.repo.find_tree(shard.id())?;
        let Some(last) = shard
            .iter()
            .rev()
            .find(|e| e.name().and_then(seq_of_name).is_some())
        else {
            return Ok(None);
        };
        let name = last.name().unwrap_or_default().to_owned();
        let bytes = self.repo.find_blob(last.id())?.content().to_vec();
        let path = format!("{AUDIT_DIR}/events/{shard_name}/{name}");
        let event = parse_event(&path, &bytes)?;
        if Some(event.seq) != seq_of_name(&name) || path != super::event_path(event.seq) {
            return Err(AuditError::Corrupt {
                path,
                message: format!("the file holds event {}", event.seq),
            });
        }
        Ok(Some((event, bytes)))
    }

    /// One event by seq, with its bytes.
    ///
    /// # Errors
    /// An unreadable object, or an event file that does not parse.
    pub fn event(&self, tree: &Tree<'_>, seq: u64) -> Result<Option<(Event, Vec<u8>)>, AuditError> {
        let path = event_path(seq);
        match self.read(tree, &path)? {
            Some(bytes) => Ok(Some((parse_event(&path, &bytes)?, bytes))),
            None => Ok(None),
        }
    }

    /// The seqs of a request's events, from its index file.
    ///
    /// # Errors
    /// An unreadable object, or an index line that is not a number.
    pub fn request_seqs(&self, tree: &Tree<'_>, request: &str) -> Result<Vec<u64>, AuditError> {
        let path = request_index_path(request);
        let Some(bytes) = self.read(tree, &path)? else {
            return Ok(Vec::new());
        };
        parse_index(&path, &bytes)
    }

    /// A request's events in order, read through its index.
    ///
    /// # Errors
    /// As [`AuditRepo::event`]; an indexed event that is missing is corrupt.
    pub fn request_events(&self, tree: &Tree<'_>, request: &str) -> Result<Vec<Event>, AuditError> {
        let mut out = Vec::new();
        // A request's events sit in one or two folders of up to 1,000 events: each folder
        // tree is read once (libgit2 does not cache trees over 4 KiB).
        let mut folder: Option<(u64, Option<Tree<'_>>)> = None;
        for seq in self.request_seqs(tree, request)? {
            let shard = seq / super::EVENTS_PER_FOLDER;
            if folder.as_ref().is_none_or(|(s, _)| *s != shard) {
                let dir = format!("{AUDIT_DIR}/events/{shard:09}");
                folder = Some((shard, self.subtree(tree, &dir)?));
            }
            let missing = || AuditError::Corrupt {
                path: request_index_path(request),
                message: format!("it lists event {seq}, which does not exist"),
            };
            let entry = folder
                .as_ref()
                .and_then(|(_, t)| t.as_ref())
                .and_then(|t| {
                    t.get_name(&format!("{seq:012}.json"))
                        .map(|e| (e.id(), e.kind()))
                })
                .filter(|(_, kind)| *kind == Some(ObjectType::Blob))
                .ok_or_else(missing)?;
            let blob = self.repo.find_blob(entry.0)?;
            let event = parse_event(&event_path(seq), blob.content())?;
            // The index is only a pointer: an event of another request it lists is an
            // audit that was tampered with, not part of this request.
            if event.request != request || event.seq != seq {
                return Err(AuditError::Corrupt {
                    path: request_index_path(request),
                    message: format!(
                        "it lists event {seq}, which belongs to request `{}`",
                        event.request
                    ),
                });
            }
            out.push(event);
        }
        Ok(out)
    }

    /// Every event file in `tree` in name order: `(path, seq, blob id)`.
    ///
    /// # Errors
    /// An unreadable object.
    pub fn event_files(&self, tree: &Tree<'_>) -> Result<Vec<(String, u64, Oid)>, AuditError> {
        let mut out = Vec::new();
        let Some(events) = self.subtree(tree, &format!("{AUDIT_DIR}/events"))? else {
            return Ok(out);
        };
        for shard in events.iter() {
            let shard_name = shard.name().unwrap_or_default().to_owned();
            if shard.kind() != Some(ObjectType::Tree) {
                out.push((format!("{AUDIT_DIR}/events/{shard_name}"), 0, shard.id()));
                continue;
            }
            for e in self.repo.find_tree(shard.id())?.iter() {
                let name = e.name().unwrap_or_default();
                // Signatures are listed by `sig_files`; a `.sig` that is not
                // `<12 digits>.json.sig` is listed here, as a file no event owns.
                if name.strip_suffix(".sig").and_then(seq_of_name).is_some() {
                    continue;
                }
                let seq = seq_of_name(name).unwrap_or(0);
                out.push((
                    format!("{AUDIT_DIR}/events/{shard_name}/{name}"),
                    seq,
                    e.id(),
                ));
            }
        }
        Ok(out)
    }
}

/// The proposal the audit holds for a request: the exact bytes its `proposed` event
/// names, checked against their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedProposal {
    /// `sha256:<hex>`, as the `proposed` event's `proposal` field holds it.
    pub digest: String,
    /// Its blob, relative to the workspace (`audit/blobs/ab/ab...`).
    pub path: String,
    pub bytes: Vec<u8>,
}

impl AuditRepo {
    /// The proposal recorded for `request` in `tree` (its `proposed` event's `proposal`
    /// blob), read through the request's index: a few lookups however long the log is.
    /// `None` when the request was never proposed.
    ///
    /// # Errors
    /// An unreadable object; a `proposed` event without a `proposal` digest, a blob
    /// that is missing or whose bytes do not match the digest (`Corrupt`: what is shown
    /// must be what was recorded, or nothing).
    pub fn recorded_proposal(
        &self,
        tree: &Tree<'_>,
        request: &str,
    ) -> Result<Option<RecordedProposal>, AuditError> {
        let events = self.request_events(tree, request)?;
        let Some(proposed) = events.iter().find(|e| e.kind == "proposed") else {
            return Ok(None);
        };
        let corrupt = |message: String| AuditError::Corrupt {
            path: event_path(proposed.seq),
            message,
        };
        let digest = proposed
            .field_str("proposal")
            .ok_or_else(|| corrupt("the `proposed` event names no `proposal`".to_owned()))?;
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .ok_or_else(|| corrupt(format!("`{digest}` is not a sha256 digest")))?;
        let path = super::blob_path(hex);
        let bytes = self
            .read(tree, &path)?
            .ok_or_else(|| corrupt(format!("the proposal's blob `{path}` is missing")))?;
        if super::sha256_hex(&bytes) != hex {
            return Err(AuditError::Corrupt {
                path,
                message: "the proposal's bytes do not match their digest".to_owned(),
            });
        }
        Ok(Some(RecordedProposal {
            digest: digest.to_owned(),
            path,
            bytes,
        }))
    }

    /// The detached signatures in `tree`: seq → blob id.
    ///
    /// # Errors
    /// An unreadable object.
    pub fn sig_files(
        &self,
        tree: &Tree<'_>,
    ) -> Result<std::collections::HashMap<u64, Oid>, AuditError> {
        let mut out = std::collections::HashMap::new();
        let Some(events) = self.subtree(tree, &format!("{AUDIT_DIR}/events"))? else {
            return Ok(out);
        };
        for shard in events.iter().filter(|e| e.kind() == Some(ObjectType::Tree)) {
            for e in self.repo.find_tree(shard.id())?.iter() {
                if let Some(seq) = e
                    .name()
                    .and_then(|n| n.strip_suffix(".sig"))
                    .and_then(seq_of_name)
                {
                    out.insert(seq, e.id());
                }
            }
        }
        Ok(out)
    }

    /// Whether a blob file named `hex` exists in `tree` (whatever its content).
    ///
    /// # Errors
    /// An unreadable object.
    pub fn blob_exists(&self, tree: &Tree<'_>, hex: &str) -> Result<bool, AuditError> {
        Ok(self.read(tree, &super::blob_path(hex))?.is_some())
    }

    /// Every blob in `tree`'s `audit/blobs/`: name (sha256 hex) → (path, blob id).
    ///
    /// # Errors
    /// An unreadable object.
    pub fn blob_files(
        &self,
        tree: &Tree<'_>,
    ) -> Result<std::collections::HashMap<String, (String, Oid)>, AuditError> {
        let mut out = std::collections::HashMap::new();
        let Some(blobs) = self.subtree(tree, &format!("{AUDIT_DIR}/blobs"))? else {
            return Ok(out);
        };
        for shard in blobs.iter() {
            let shard_name = shard.name().unwrap_or_default().to_owned();
            if shard.kind() != Some(ObjectType::Tree) {
                out.insert(
                    shard_name.clone(),
                    (format!("{AUDIT_DIR}/blobs/{shard_name}"), shard.id()),
                );
                continue;
            }
            for e in self.repo.find_tree(shard.id())?.iter() {
                let name = e.name().unwrap_or_default().to_owned();
                out.insert(
                    name.clone(),
                    (format!("{AUDIT_DIR}/blobs/{shard_name}/{name}"), e.id()),
                );
            }
        }
        Ok(out)
    }
}

impl AuditRepo {
    /// Runs `work` on consecutive parts of `items` (of `size` each), one thread and one
    /// repository handle per part (a libgit2 repository is not shared between threads),
    /// and returns the parts' results in order. `what` names the work in the error a
    /// panicking thread becomes.
    ///
    /// # Errors
    /// The first part's error, in order; a repository that cannot be opened again.
    pub fn in_parts<T: Sync, R: Send>(
        &self,
        items: &[T],
        size: usize,
        what: &str,
        work: impl Fn(&Self, &[T]) -> Result<R, AuditError> + Sync,
    ) -> Result<Vec<R>, AuditError> {
        if items.len() <= size {
            return Ok(vec![work(self, items)?]);
        }
        let root = self.root.as_path();
        let work = &work;
        std::thread::scope(|s| {
            let handles: Vec<_> = items
                .chunks(size.max(1))
                .map(|part| s.spawn(move || work(&Self::open(root)?, part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(AuditError::Corrupt {
                            path: AUDIT_DIR.to_owned(),
                            message: format!("a thread {what} panicked"),
                        })
                    })
                })
                .collect()
        })
    }
}

/// Parses an event file.
///
/// # Errors
/// `Corrupt`, naming the file.
pub fn parse_event(path: &str, bytes: &[u8]) -> Result<Event, AuditError> {
    serde_json::from_slice(bytes).map_err(|e| AuditError::Corrupt {
        path: path.to_owned(),
        message: format!("not a valid event: {e}"),
    })
}

/// Parses a request index file: one seq a line.
///
/// # Errors
/// `Corrupt`, naming the file.
pub fn parse_index(path: &str, bytes: &[u8]) -> Result<Vec<u64>, AuditError> {
    let text = std::str::from_utf8(bytes).map_err(|_| AuditError::Corrupt {
        path: path.to_owned(),
        message: "not UTF-8".to_owned(),
    })?;
    text.lines()
        .map(|l| {
            l.parse().map_err(|_| AuditError::Corrupt {
                path: path.to_owned(),
                message: format!("`{l}` is not a seq"),
            })
        })
        .collect()
}
