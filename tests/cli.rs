//! Integration tests of the `hitl` binary: every command run as a user runs it, outputs
//! compared with the snapshots in `tests/snapshots/` and next to the fixtures.
//!
//! The binary reads the clock only in `cli::now()`. The test build (`cargo test` turns
//! on `hitl-lib`'s `test-clock` feature through a dev-dependency) takes it from
//! `HITL_TEST_NOW`, which every command that depends on the clock sets, frozen at
//! [`support::NOW`] unless the test names another instant. Nothing is installed for it.
//!
//! Regenerate snapshots with `SNAPSHOTS=overwrite cargo test --test cli`, then read every
//! changed file before committing it.
//!
//! The modules are `#[cfg(test)]` (always true here) so that clippy's
//! `allow-{unwrap,expect,panic}-in-tests` covers the helpers as well as the `#[test]`s.

#[cfg(test)]
#[path = "cli/approvals.rs"]
mod approvals;
#[cfg(test)]
#[path = "cli/attack_review.rs"]
mod attack_review;
#[cfg(test)]
#[path = "cli/audit.rs"]
mod audit;
#[cfg(test)]
#[path = "cli/break_glass.rs"]
mod break_glass;
#[cfg(test)]
#[path = "cli/ci.rs"]
mod ci;
#[cfg(test)]
#[path = "cli/commands.rs"]
mod commands;
#[cfg(test)]
#[path = "cli/concurrency.rs"]
mod concurrency;
#[cfg(test)]
#[path = "cli/engine.rs"]
mod engine;
#[cfg(test)]
#[path = "cli/examples.rs"]
mod examples;
#[cfg(test)]
#[path = "cli/execution.rs"]
mod execution;
#[cfg(test)]
#[path = "cli/first_run.rs"]
mod first_run;
#[cfg(test)]
#[path = "cli/history.rs"]
mod history;
#[cfg(test)]
#[path = "cli/inert.rs"]
mod inert;
#[cfg(test)]
#[path = "cli/invalid_requests.rs"]
mod invalid_requests;
#[cfg(test)]
#[path = "cli/matrix.rs"]
mod matrix;
#[cfg(test)]
#[path = "cli/policy.rs"]
mod policy;
#[cfg(test)]
#[path = "cli/property.rs"]
mod property;
#[cfg(test)]
#[path = "cli/queue.rs"]
mod queue;
#[cfg(test)]
#[path = "cli/refusal.rs"]
mod refusal;
#[cfg(test)]
#[path = "cli/review.rs"]
mod review;
#[cfg(test)]
#[path = "cli/rollback.rs"]
mod rollback;
#[cfg(test)]
#[path = "cli/sampling.rs"]
mod sampling;
#[cfg(test)]
#[path = "cli/stats.rs"]
mod stats;
#[cfg(test)]
#[path = "cli/status_index.rs"]
mod status_index;
#[cfg(test)]
#[path = "cli/support.rs"]
mod support;
#[cfg(test)]
#[path = "cli/sweep.rs"]
mod sweep;
#[cfg(test)]
#[path = "cli/workflow.rs"]
mod workflow;
#[cfg(test)]
#[path = "cli/workflow_property.rs"]
mod workflow_property;
