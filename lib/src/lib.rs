//! The domain of `hitl`: proposals, the approval matrix, classification by action risk
//! and the evidence pack. No terminal code lives here; see `docs/architecture.md`.
//!
//! Time is always a parameter (`now`): nothing in this crate reads the clock.

pub mod classify;
pub mod decode;
pub mod diag;
pub mod error;
pub mod evidence;
pub mod lint;
pub mod matrix;
pub mod request;
pub mod scaffold;
pub mod workspace;
pub mod yaml;

pub use error::{Error, Result};
