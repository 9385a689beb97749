//! Shared helpers: running the real binary under a fixed clock, temporary workspaces and
//! file-tree snapshots for "writes nothing" checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use snapbox::cmd::{Command, cargo_bin};
use tempfile::TempDir;

/// The repository root: itself an example workspace. Tests only ever read it.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The clock every snapshot is taken at: after the last example request was made
/// (15:00), so only `robot-pick-cell7` (expired 10:30) shows as expired. No `@` prefix:
/// libfaketime freezes the clock, so `assembled_at` has no sub-second drift.
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

/// Fails the test (never skips it) when `faketime` is missing: without it the snapshots
/// would depend on the day the suite runs.
fn require_faketime() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let check = CHECK.get_or_init(|| {
        match std::process::Command::new("faketime")
            .arg("--version")
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "`faketime --version` failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Err(format!(
                "cannot run `faketime` ({e}). The CLI tests need it to fix the clock the binary \
                 reads; install it (Debian/Ubuntu: `apt-get install -y faketime`)"
            )),
        }
    });
    if let Err(msg) = check {
        panic!("{msg}");
    }
}

/// The libfaketime shared library the `faketime` package installs.
pub fn libfaketime() -> PathBuf {
    let candidates = std::fs::read_dir("/usr/lib")
        .expect("/usr/lib")
        .flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")]);
    candidates
        .into_iter()
        .find(|p| p.exists())
        .expect("libfaketime.so.1 (Debian package `faketime`)")
}

/// The binary run under libfaketime at `time` (UTC, `YYYY-MM-DD HH:MM:SS`, frozen).
///
/// libfaketime is preloaded directly, as `faketime -f TIME` would do, rather than
/// through the `faketime` wrapper: a wrapper that dies without cleaning up (a closed
/// pipe, a kill) leaves a named semaphore in /dev/shm, and a later wrapper that gets
/// the same pid fails to start ("sem_open: File exists").
pub fn hitl_at(time: &str) -> Command {
    require_faketime();
    Command::new(cargo_bin!("hitl"))
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME", time)
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
