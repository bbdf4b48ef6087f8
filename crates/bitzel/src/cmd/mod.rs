//! One module per verb.

pub mod build;
pub mod cache;
pub mod graph;
pub mod doctor;
pub mod runqemu;
pub mod show;
