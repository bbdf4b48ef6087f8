//! One module per verb.

pub mod build;
pub mod cache;
pub mod devshell;
pub mod doctor;
pub mod explain;
pub mod fetch;
pub mod graph;
pub mod parse_shard;
pub mod report;
pub mod rootfs;
pub mod runqemu;
pub mod selftest;
pub mod show;
pub mod taskverbs;
pub mod worker;
