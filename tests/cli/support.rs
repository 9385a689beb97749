//! Shared helpers: running the real binary at a fixed instant, temporary workspaces and
//! file-tree snapshots for "writes nothing" checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use snapbox::cmd::{Command, cargo_bin};
use tempfile::TempDir;

/// The repository root: itself an example workspace. Tests only ever read it.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The clock every snapshot is taken at: after the last example request was made
/// (15:00), so only `robot-pick-cell7` (expired 10:30) shows as expired; the instant
/// docs/matrix.md describes the examples at.
pub const NOW: &str = "2026-11-27 16:00:00";

pub fn root() -> &'static Path {
    Path::new(ROOT)
}

/// The binary without a faked clock, for commands that never read it (help, man,
/// completions).
pub fn hitl() -> Command {
    Command::new(cargo_bin!("hitl"))
        .env_remove("COLUMNS")
        .env_remove("LINES")
        .current_dir(ROOT)
}

/// The binary at `time` (UTC, `YYYY-MM-DD HH:MM:SS` or RFC 3339, frozen): the test
/// build of `hitl` reads its clock from `HITL_TEST_NOW` (`hitl_lib::test_clock`, on only
/// in `cargo test` builds). Nothing but the binary's own clock is changed: git and
/// ssh-keygen run by the tests see the real time.
pub fn hitl_at(time: &str) -> Command {
    Command::new(cargo_bin!("hitl"))
        .env("HITL_TEST_NOW", time)
        .env("TZ", "UTC")
        .env_remove("COLUMNS")
        .env_remove("LINES")
        .current_dir(ROOT)
}

/// The binary at [`NOW`].
pub fn hitl_now() -> Command {
    hitl_at(NOW)
}

/// Runs a command and returns its output, whatever the exit status.
pub fn run(cmd: Command) -> Output {
    cmd.output().expect("the command runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

/// The ids of the example requests: every `requests/*.yaml` of the repository root.
pub fn request_ids() -> Vec<String> {
    let ids = yaml_stems(&root().join("requests"));
    assert!(
        ids.len() >= 12,
        "expected the 12 example requests, found {ids:?}"
    );
    ids
}

/// Every `*.yaml` file directly in `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list `{}`: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no YAML files in `{}`", dir.display());
    out
}

/// The sorted names (without `.yaml`) of the YAML files directly in `dir`.
pub fn yaml_stems(dir: &Path) -> Vec<String> {
    let mut stems: Vec<String> = yaml_files(dir).iter().map(|p| stem(p)).collect();
    stems.sort();
    stems
}

pub fn stem(p: &Path) -> String {
    p.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// A snapshot file under `tests/`, compared exactly: no `[..]` wildcards and no path
/// normalisation (which would turn a `\e` in an echoed source line into `/e`).
pub fn snapshot(rel: impl AsRef<Path>) -> snapbox::Data {
    snapbox::Data::read_from(&root().join("tests").join(rel), None).raw()
}

/// A temporary workspace holding `matrix` as `approval-matrix.yaml` and copies of the
/// named example requests in `requests/`.
pub fn workspace_with(matrix: &Path, requests: &[&str]) -> TempDir {
    let dir = TempDir::new().expect("a temporary folder");
    std::fs::copy(matrix, dir.path().join("approval-matrix.yaml")).expect("copy the matrix");
    if !requests.is_empty() {
        std::fs::create_dir(dir.path().join("requests")).expect("create requests/");
        for id in requests {
            let name = format!("{id}.yaml");
            std::fs::copy(
                root().join("requests").join(&name),
                dir.path().join("requests").join(&name),
            )
            .expect("copy a request");
        }
    }
    dir
}

/// A temporary copy of the example workspace's matrix plus the named requests.
pub fn example_workspace(requests: &[&str]) -> TempDir {
    workspace_with(&root().join("approval-matrix.yaml"), requests)
}

/// Every file and folder below `dir` with its contents (folders map to `None`), to prove
/// that a command changed nothing.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).expect("list a folder") {
            let path = entry.expect("directory entry").path();
            let rel = path.strip_prefix(base).expect("below base").to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                walk(base, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).expect("read a file")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The `file:line:column` locations named by `error: ` lines of a rendered error.
pub fn error_locations(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .filter(|l| !l.starts_with('`'))
        .map(|l| {
            let mut parts = l.splitn(4, ':');
            let (file, line, col) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            assert!(
                !file.is_empty()
                    && line.parse::<u32>().is_ok_and(|n| n > 0)
                    && col.parse::<u32>().is_ok_and(|n| n > 0),
                "error line without file:line:column: {l:?}"
            );
            format!("{file}:{line}:{col}")
        })
        .collect()
}
