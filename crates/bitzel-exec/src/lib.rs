//! bitzel-exec: see ARCHITECTURE.md for this crate's role and invariants.

pub mod builtin;
pub mod deploy;
pub mod executor;
pub mod hosttools;
pub mod limits;
pub mod script;
