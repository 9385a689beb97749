//! Speed of the hot path behind `hitl show` / `hitl explain`, on the example workspace
//! at the repository root (`approval-matrix.yaml`, `requests/refund-4711.yaml`).
//!
//! Run with `cargo bench -p hitl-lib --bench classify`; the figures and the machine
//! they were taken on are in `docs/performance.md`. The target is "loading and
//! classifying one proposal takes well under a millisecond": that is
//! `load+classify one proposal` (from bytes in memory) and `workspace: read files +
//! load + classify` (from disk, as the CLI does it, minus process start-up).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use hitl_lib::matrix::Matrix;
use hitl_lib::request::Request;
use hitl_lib::workspace::Workspace;
use hitl_lib::yaml::Limits;
use hitl_lib::{classify, evidence, matrix, request};

/// The fixed "now" for the evidence pack: an hour after the example was requested.
const NOW: &str = "2026-11-27T10:00:00Z";

struct Fixtures {
    root: PathBuf,
    matrix_path: PathBuf,
    matrix_bytes: Vec<u8>,
    matrix: Matrix,
    request_path: PathBuf,
    request_bytes: Vec<u8>,
    request: Request,
    now: DateTime<Utc>,
}

fn fixtures() -> Result<Fixtures, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |rel: &str| {
        let p = root.join(rel);
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let matrix_path = PathBuf::from("approval-matrix.yaml");
    let matrix_bytes = read("approval-matrix.yaml")?;
    let matrix = matrix::parse(&matrix_path, &matrix_bytes).map_err(|d| d.to_string())?;
    let request_path = PathBuf::from("requests/refund-4711.yaml");
    let request_bytes = read("requests/refund-4711.yaml")?;
    let request = request::parse(
        &request_path,
        &request_bytes,
        &matrix.systems,
        Limits::PROPOSAL.max_bytes,
    )
    .map_err(|d| d.to_string())?;
    let now = DateTime::parse_from_rfc3339(NOW)
        .map_err(|e| format!("{NOW}: {e}"))?
        .with_timezone(&Utc);
    Ok(Fixtures {
        root,
        matrix_path,
        matrix_bytes,
        matrix,
        request_path,
        request_bytes,
        request,
        now,
    })
}

/// Open the workspace, read and parse the matrix and the proposal from disk, classify.
fn from_disk(root: &Path, request_path: &Path) -> hitl_lib::Result<classify::Classification> {
    let ws = Workspace::open(root)?;
    let matrix = ws.load_matrix()?;
    let loaded = ws.load_request(&root.join(request_path), &matrix)?;
    Ok(classify::classify(&matrix, &loaded.request))
}

fn benches(c: &mut Criterion) {
    let f = match fixtures() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("benchmark setup failed: {e}");
            std::process::exit(1);
        }
    };
    let max_bytes = Limits::PROPOSAL.max_bytes;
    if let Err(e) = from_disk(&f.root, &f.request_path) {
        eprintln!("benchmark setup failed: {e}");
        std::process::exit(1);
    }

    c.bench_function("load+classify one proposal", |b| {
        b.iter(|| {
            let r = request::parse(
                black_box(&f.request_path),
                black_box(&f.request_bytes),
                &f.matrix.systems,
                max_bytes,
            );
            r.map(|r| classify::classify(&f.matrix, &r))
        });
    });

    c.bench_function("classify", |b| {
        b.iter(|| classify::classify(black_box(&f.matrix), black_box(&f.request)));
    });

    c.bench_function("evidence::assemble", |b| {
        b.iter(|| {
            evidence::assemble(
                black_box(&f.matrix),
                f.request_path.clone(),
                black_box(&f.request),
                f.now,
            )
        });
    });

    c.bench_function("matrix::parse (example matrix)", |b| {
        b.iter(|| matrix::parse(black_box(&f.matrix_path), black_box(&f.matrix_bytes)));
    });

    c.bench_function("workspace: read files + load + classify", |b| {
        b.iter(|| from_disk(black_box(&f.root), &f.request_path));
    });
}

criterion_group! {
    name = classify_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(classify_benches);
