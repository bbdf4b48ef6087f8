//! bitzel-meta: the BitBake language and datastore. See ARCHITECTURE.md.

pub mod pyexpr;
