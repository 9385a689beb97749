//! One evaluation of the example policy set (`policies/` at the repository root) on one
//! proposal; target: under 100 microseconds. Figures: docs/performance.md.
//!
//! Run: `cargo bench -p hitl-lib --bench policy`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use hitl_lib::classify::classify;
use hitl_lib::evidence::assemble_with_policies;
use hitl_lib::matrix;
use hitl_lib::policy::{self, PolicySet};
use hitl_lib::request;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bench(c: &mut Criterion) {
    let root = root();
    let m = matrix::parse(
        Path::new("approval-matrix.yaml"),
        &std::fs::read(root.join("approval-matrix.yaml")).unwrap(),
    )
    .unwrap();
    let now: DateTime<Utc> = "2026-11-27T10:00:00Z".parse().unwrap();
    let mut group = c.benchmark_group("policy");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for id in ["refund-4712", "email-contract-terms"] {
        let bytes = std::fs::read(root.join(format!("requests/{id}.yaml"))).unwrap();
        let r = request::parse(Path::new(id), &bytes, &m.systems, 1 << 20).unwrap();
        let cls = classify(&m, &r);
        let input = policy::input(&m, &r, &cls, None, now);
        let mut set = PolicySet::load(&root)
            .unwrap()
            .expect("the example has policies");
        group.bench_function(format!("evaluate/{id}"), |b| {
            b.iter(|| black_box(set.evaluate(black_box(&input)).unwrap()));
        });
        group.bench_function(format!("convert/{id}"), |b| {
            b.iter(|| {
                black_box(
                    <regorus::Value as serde::Deserialize>::deserialize(black_box(&input)).unwrap(),
                )
            });
        });
        group.bench_function(format!("input+evaluate+pack/{id}"), |b| {
            b.iter(|| {
                black_box(assemble_with_policies(
                    &m,
                    &mut set,
                    PathBuf::from(id),
                    &r,
                    now,
                ))
            });
        });
    }
    group.sample_size(20);
    group.bench_function("load+compile example set", |b| {
        b.iter(|| black_box(PolicySet::load(&root).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
