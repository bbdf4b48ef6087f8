//! bitzel-graph: recipes → providers → task graph → runqueue.
//!
//! - [`input`]: the plain input model ([`RecipeInfo`], [`TaskInfo`],
//!   [`ProviderPrefs`]) — built by hand in tests or from `bitzel-meta`'s
//!   workspace by [`from_meta`];
//! - [`providers`]: BitBake's provider selection;
//! - [`build`]: taskdata + runqueue preparation → [`BuildPlan`];
//! - [`graph`]: the [`TaskGraph`] (nodes, edges, cycle reports, critical-path
//!   priorities);
//! - [`render`]: `task-depends.dot` and JSON;
//! - [`suggest`]: difflib's close matches for misspelt names;
//! - [`runqueue`]: executes a graph through an [`Executor`] and reports
//!   [`Event`]s.
//!
//! See ARCHITECTURE.md for this crate's role and invariants.

pub mod build;
pub mod error;
pub mod from_meta;
pub mod graph;
pub mod input;
pub mod pattern;
pub mod providers;
pub mod render;
pub mod runqueue;
pub mod suggest;

pub use build::{
    build_graph, explain_provider, provider_close_matches, with_do, BuildPlan, Target,
};
pub use error::{provider_close_suffix, DepTaskError, GraphError, Missing, Requester};
pub use from_meta::{prefs_from_workspace, recipes_from_workspace};
pub use graph::{CycleError, RecipeNode, TaskGraph, TaskId, TaskNode};
pub use input::{explode_deps, vercmp, Origin, ProviderPrefs, RecipeInfo, TaskInfo, Want};
pub use providers::{Namespace, ProviderChoice, ProviderIndex};
pub use render::{to_dot, to_json};
pub use runqueue::{
    default_jobs, execution_order, run, run_with_outputs, CancelToken, Event, Executor,
    FailureKind, Outcome, RunOptions, RunSummary, TaskFailure, TaskResult,
};
