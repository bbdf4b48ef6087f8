//! bitzel-exec: see ARCHITECTURE.md for this crate's role and invariants.

pub mod builtin;
