//! The clock tests set. `cargo test` builds `hitl` with this crate's `test-clock`
//! feature (the binary's dev-dependency on `hitl-lib` turns it on, and cargo only
//! builds dev-dependencies for tests, examples and benchmarks); only in such a build,
//! and only in the dev profile (with debug assertions), does `HITL_TEST_NOW` name the
//! instant the command line reads. A binary built by `cargo build`, `cargo run` or
//! `cargo install`, and any release build whatever its targets or features
//! (`cargo build --release --all-targets` turns the feature on too), has no such
//! variable: [`instant`] is a constant `None` there, and the clock is the system's.

use chrono::{DateTime, Utc};

/// The instant a test fixed with `HITL_TEST_NOW` (RFC 3339, or `YYYY-MM-DD HH:MM:SS`
/// in UTC), in a test build only. A value that does not parse is a broken test, so it
/// is reported rather than ignored.
///
/// # Errors
/// The variable is set and is not a time.
#[cfg(all(feature = "test-clock", debug_assertions))]
pub fn instant() -> Result<Option<DateTime<Utc>>, String> {
    let Ok(value) = std::env::var("HITL_TEST_NOW") else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&value) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    chrono::NaiveDateTime::parse_from_str(&value, "%Y-%m-%d %H:%M:%S")
        .map(|t| Some(t.and_utc()))
        .map_err(|e| format!("`HITL_TEST_NOW` is not a time: `{value}` ({e})"))
}

/// Not a test build: never an override.
///
/// # Errors
/// Never.
#[cfg(not(all(feature = "test-clock", debug_assertions)))]
pub const fn instant() -> Result<Option<DateTime<Utc>>, String> {
    Ok(None)
}
