//! One module per verb.

pub mod build;
