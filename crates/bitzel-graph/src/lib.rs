//! bitzel-graph: recipes → providers → task graph → runqueue.
//!
//! - [`graph`]: the [`TaskGraph`] (nodes, edges, cycle reports, critical-path
//!   priorities);
//! - [`runqueue`]: executes a graph through an [`Executor`] and reports
//!   [`Event`]s.
//!
//! See ARCHITECTURE.md for this crate's role and invariants.

pub mod graph;
pub mod runqueue;

pub use graph::{CycleError, RecipeNode, TaskGraph, TaskId, TaskNode};
pub use runqueue::{
    default_jobs, execution_order, run, run_with_outputs, CancelToken, Event, Executor,
    FailureKind, Outcome, RunOptions, RunSummary, TaskFailure, TaskResult,
};
