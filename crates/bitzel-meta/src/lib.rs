//! bitzel-meta: see ARCHITECTURE.md for this crate's role and invariants.
