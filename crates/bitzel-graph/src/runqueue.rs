//! The runqueue: executes a [`TaskGraph`] through an [`Executor`] on `jobs`
//! worker threads, critical path first, and reports what happens as [`Event`]s.
//!
//! Scheduling rules:
//! - a task becomes ready when all its direct dependencies succeeded;
//! - among ready tasks the one with the highest [`TaskGraph::priority`]
//!   (longest remaining path) starts first, ties broken by lower task id;
//! - on the first failure no new task starts (unless `keep_going`), running
//!   tasks finish; with `keep_going` everything not below a failure still runs;
//! - when the [`CancelToken`] is set no new task starts; the executor sees the
//!   same token and should stop its running tasks.
//!
//! An executor that panics is reported as an internal task failure, never as a
//! panic of the run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::graph::{TaskGraph, TaskId, TaskNode};

/// A flag shared between the binary's Ctrl-C handler, the runqueue and the
/// executor: once set, no new task starts and running tasks should stop.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, unset token.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Ask everything to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The shared flag itself (for a signal handler that wants an `Arc<AtomicBool>`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// How a successfully finished task got its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The task really ran.
    Executed,
    /// Its result came from a cache.
    Cached,
    /// A `[noexec]` task: nothing to run, the executor only passed outputs on.
    NoExec,
}

impl Outcome {
    /// `executed`, `cached` or `noexec`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Executed => "executed",
            Outcome::Cached => "cached",
            Outcome::NoExec => "noexec",
        }
    }
}

/// What an executor returns for a task that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult<O> {
    /// The task's output (for example its output tree digest); handed to its dependents.
    pub output: O,
    /// How it was obtained.
    pub outcome: Outcome,
}

/// Whose fault a task failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The task itself failed (non-zero exit, timeout): the metadata's business.
    Task,
    /// The environment could not be set up (sandbox, mounts, fetch): not the task's fault.
    Setup,
    /// Stopped because the build was cancelled.
    Cancelled,
    /// A bug in bitzel (including a panicking executor).
    Internal,
}

/// Why a task did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TaskFailure {
    /// Whose fault it is.
    pub kind: FailureKind,
    /// One-line description (what failed and what the user can do).
    pub message: String,
    /// The last lines of the task's log, when there is one.
    pub log_tail: Option<String>,
}

impl TaskFailure {
    /// A failure of the given kind with a message and no log.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        TaskFailure {
            kind,
            message: message.into(),
            log_tail: None,
        }
    }
}

/// Runs one task. The cache and the sandbox plug in behind this trait.
pub trait Executor: Sync {
    /// What a task produces for its dependents (for example an output tree digest).
    type Output: Send + Sync;

    /// Run (or restore) `task`. `deps` are its DIRECT dependencies with their
    /// outputs, in the order of [`TaskGraph::deps`]. `[noexec]` tasks come here
    /// too (return quickly with [`Outcome::NoExec`]) so outputs flow through them.
    /// Implementations should poll `cancel` while waiting on a process.
    fn execute(
        &self,
        task: &TaskNode,
        deps: &[(&TaskNode, &Self::Output)],
        cancel: &CancelToken,
    ) -> Result<TaskResult<Self::Output>, TaskFailure>;
}

/// How to run the graph.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parallel task slots (at least 1 is used).
    pub jobs: usize,
    /// Keep starting tasks that do not depend on a failed one.
    pub keep_going: bool,
    /// Do not execute: report the execution order only (as [`Event::Planned`]).
    pub dry_run: bool,
    /// The cancel flag the executor also receives.
    pub cancel: CancelToken,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: default_jobs(),
            keep_going: false,
            dry_run: false,
            cancel: CancelToken::new(),
        }
    }
}

/// The number of CPUs (1 when unknown): the default for `-j`.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Something that happened during a run, in the order it happened
/// (a task's `Queued` before its `Started` before its `Finished`/`Failed`;
/// a dependency's `Finished` before its dependents' `Queued`).
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The run begins: `total` tasks on `jobs` slots.
    BuildStarted {
        /// Tasks in the graph.
        total: usize,
        /// Parallel slots.
        jobs: usize,
        /// True for `--dry-run`.
        dry_run: bool,
    },
    /// Dry run only: the task would run at this position of the execution order.
    Planned {
        /// The task.
        task: &'a TaskNode,
        /// 0-based position in the execution order.
        position: usize,
    },
    /// All dependencies are done: the task waits for a free slot.
    Queued {
        /// The task.
        task: &'a TaskNode,
    },
    /// The task got a slot and went to the executor.
    Started {
        /// The task.
        task: &'a TaskNode,
    },
    /// The task succeeded.
    Finished {
        /// The task.
        task: &'a TaskNode,
        /// Executed, cached or noexec.
        outcome: Outcome,
        /// Time spent in the executor.
        duration: Duration,
    },
    /// The task failed.
    Failed {
        /// The task.
        task: &'a TaskNode,
        /// Why.
        failure: &'a TaskFailure,
        /// Time spent in the executor.
        duration: Duration,
    },
    /// The run is over; always the last event.
    BuildFinished {
        /// Counts and wall time.
        summary: &'a RunSummary,
    },
}

impl Event<'_> {
    /// The event as one JSON object (the `--json` line format): every object has
    /// an `"event"` field; `build_finished` carries `executed`, `cached`,
    /// `noexec`, `failed`, `not_run`, `cancelled` and `wall_s`.
    pub fn to_json(&self) -> serde_json::Value {
        match *self {
            Event::BuildStarted {
                total,
                jobs,
                dry_run,
            } => {
                json!({"event": "build_started", "total": total, "jobs": jobs, "dry_run": dry_run})
            }
            Event::Planned { task, position } => json!({
                "event": "task_planned", "task": task.label(), "pn": task.pn,
                "name": task.task, "position": position,
            }),
            Event::Queued { task } => json!({
                "event": "task_queued", "task": task.label(), "pn": task.pn, "name": task.task,
            }),
            Event::Started { task } => json!({
                "event": "task_started", "task": task.label(), "pn": task.pn, "name": task.task,
            }),
            Event::Finished {
                task,
                outcome,
                duration,
            } => json!({
                "event": "task_finished", "task": task.label(), "pn": task.pn, "name": task.task,
                "outcome": outcome.as_str(), "duration_s": duration.as_secs_f64(),
            }),
            Event::Failed {
                task,
                failure,
                duration,
            } => json!({
                "event": "task_failed", "task": task.label(), "pn": task.pn, "name": task.task,
                "outcome": "failed", "kind": failure.kind, "message": failure.message,
                "log_tail": failure.log_tail, "duration_s": duration.as_secs_f64(),
            }),
            Event::BuildFinished { summary } => json!({
                "event": "build_finished",
                "executed": summary.executed,
                "cached": summary.cached,
                "noexec": summary.noexec,
                "failed": summary.failed,
                "not_run": summary.not_run,
                "cancelled": summary.cancelled,
                "dry_run": summary.dry_run,
                "wall_s": summary.wall.as_secs_f64(),
            }),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Tasks in the graph.
    pub total: usize,
    /// Tasks that really ran.
    pub executed: usize,
    /// Tasks restored from a cache.
    pub cached: usize,
    /// `[noexec]` tasks passed through.
    pub noexec: usize,
    /// Tasks that failed (not counting ones stopped by cancellation).
    pub failed: usize,
    /// Tasks that were never started (below a failure, after a stop, or dry run).
    pub not_run: usize,
    /// True when the run was cancelled (the binary exits 130).
    pub cancelled: bool,
    /// True for a dry run.
    pub dry_run: bool,
    /// Task ids in the order they were started (for a dry run: the planned order).
    pub order: Vec<TaskId>,
    /// The failed tasks, in the order they failed.
    pub failures: Vec<(TaskId, TaskFailure)>,
    /// Wall-clock time of the run.
    pub wall: Duration,
    /// Sum over tasks of time spent in the executor (for utilisation figures).
    pub busy: Duration,
}

impl RunSummary {
    /// True when every task succeeded and nothing was cancelled.
    pub fn success(&self) -> bool {
        !self.cancelled && self.failed == 0 && self.not_run == 0
    }
}

/// The order a single slot would start the tasks in: ready tasks by descending
/// critical-path priority, ties by task id. This is what `--dry-run` lists.
pub fn execution_order(graph: &TaskGraph) -> Vec<TaskId> {
    let n = graph.len();
    let mut pending: Vec<usize> = (0..n).map(|i| graph.deps(i).len()).collect();
    let mut ready: BinaryHeap<(u64, Reverse<TaskId>)> = (0..n)
        .filter(|&i| pending[i] == 0)
        .map(|i| (graph.priority(i), Reverse(i)))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some((_, Reverse(t))) = ready.pop() {
        order.push(t);
        for &r in graph.rdeps(t) {
            pending[r] -= 1;
            if pending[r] == 0 {
                ready.push((graph.priority(r), Reverse(r)));
            }
        }
    }
    order
}

struct State {
    ready: BinaryHeap<(u64, Reverse<TaskId>)>,
    pending: Vec<usize>,
    running: usize,
    stop: bool,
    summary: RunSummary,
}

/// Execute `graph` through `exec`, calling `events` for everything that happens
/// (from worker threads; the callback must be cheap and thread-safe). Returns
/// the counts; [`Event::BuildFinished`] carries the same summary.
pub fn run<E: Executor>(
    graph: &TaskGraph,
    exec: &E,
    opts: &RunOptions,
    events: &(dyn Fn(&Event<'_>) + Sync),
) -> RunSummary {
    run_with_outputs(graph, exec, opts, events).0
}

/// Like [`run`], and also returns every task's output (`None` for tasks that did
/// not succeed), indexed by task id.
pub fn run_with_outputs<E: Executor>(
    graph: &TaskGraph,
    exec: &E,
    opts: &RunOptions,
    events: &(dyn Fn(&Event<'_>) + Sync),
) -> (RunSummary, Vec<Option<E::Output>>) {
    let start = Instant::now();
    let n = graph.len();
    let jobs = opts.jobs.max(1);
    events(&Event::BuildStarted {
        total: n,
        jobs,
        dry_run: opts.dry_run,
    });
    if opts.dry_run {
        let order = execution_order(graph);
        for (position, &t) in order.iter().enumerate() {
            events(&Event::Planned {
                task: &graph.tasks[t],
                position,
            });
        }
        let summary = RunSummary {
            total: n,
            not_run: n,
            dry_run: true,
            order,
            wall: start.elapsed(),
            ..RunSummary::default()
        };
        events(&Event::BuildFinished { summary: &summary });
        let outputs = (0..n).map(|_| None).collect();
        return (summary, outputs);
    }

    let outputs: Vec<OnceLock<E::Output>> = (0..n).map(|_| OnceLock::new()).collect();
    let pending: Vec<usize> = (0..n).map(|i| graph.deps(i).len()).collect();
    let mut state = State {
        ready: BinaryHeap::new(),
        pending,
        running: 0,
        stop: false,
        summary: RunSummary {
            total: n,
            order: Vec::with_capacity(n),
            ..RunSummary::default()
        },
    };
    for i in 0..n {
        if state.pending[i] == 0 {
            state.ready.push((graph.priority(i), Reverse(i)));
            events(&Event::Queued {
                task: &graph.tasks[i],
            });
        }
    }
    let shared = Shared {
        graph,
        exec,
        opts,
        events,
        outputs: &outputs,
        state: Mutex::new(state),
        wake: Condvar::new(),
    };
    std::thread::scope(|s| {
        for _ in 1..jobs.min(n.max(1)) {
            s.spawn(|| shared.worker());
        }
        shared.worker();
    });
    let state = shared
        .state
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut summary = state.summary;
    let done = summary.executed + summary.cached + summary.noexec + summary.failed;
    summary.not_run = n.saturating_sub(done + cancelled_count(&summary));
    if opts.cancel.is_cancelled() {
        summary.cancelled = true;
    }
    summary.wall = start.elapsed();
    events(&Event::BuildFinished { summary: &summary });
    let outputs = outputs.into_iter().map(OnceLock::into_inner).collect();
    (summary, outputs)
}

fn cancelled_count(summary: &RunSummary) -> usize {
    summary
        .failures
        .iter()
        .filter(|(_, f)| f.kind == FailureKind::Cancelled)
        .count()
}

struct Shared<'g, E: Executor> {
    graph: &'g TaskGraph,
    exec: &'g E,
    opts: &'g RunOptions,
    events: &'g (dyn Fn(&Event<'_>) + Sync),
    outputs: &'g [OnceLock<E::Output>],
    state: Mutex<State>,
    wake: Condvar,
}

impl<E: Executor> Shared<'_, E> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn worker(&self) {
        let mut st = self.lock();
        loop {
            if !st.stop && self.opts.cancel.is_cancelled() {
                st.stop = true;
                st.summary.cancelled = true;
                self.wake.notify_all();
            }
            if !st.stop {
                if let Some((_, Reverse(t))) = st.ready.pop() {
                    st.running += 1;
                    st.summary.order.push(t);
                    drop(st);
                    self.run_one(t);
                    st = self.lock();
                    continue;
                }
            }
            if st.running == 0 && (st.stop || st.ready.is_empty()) {
                self.wake.notify_all();
                return;
            }
            st = match self.wake.wait_timeout(st, Duration::from_millis(50)) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn run_one(&self, t: TaskId) {
        let graph = self.graph;
        let node = &graph.tasks[t];
        (self.events)(&Event::Started { task: node });
        let mut deps = Vec::with_capacity(graph.deps(t).len());
        let mut missing = None;
        for &d in graph.deps(t) {
            match self.outputs[d].get() {
                Some(o) => deps.push((&graph.tasks[d], o)),
                None => missing = Some(d),
            }
        }
        let began = Instant::now();
        let result = match missing {
            Some(d) => Err(TaskFailure::new(
                FailureKind::Internal,
                format!(
                    "{} started before its dependency {} produced an output (runqueue bug)",
                    node.label(),
                    graph.tasks[d].label()
                ),
            )),
            None => catch_unwind(AssertUnwindSafe(|| {
                self.exec.execute(node, &deps, &self.opts.cancel)
            }))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Err(TaskFailure::new(
                    FailureKind::Internal,
                    format!("the executor panicked on {}: {what}", node.label()),
                ))
            }),
        };
        let duration = began.elapsed();
        match result {
            Ok(res) => {
                let outcome = res.outcome;
                // Each task runs once, so the cell is empty; ignore the impossible.
                let _ = self.outputs[t].set(res.output);
                (self.events)(&Event::Finished {
                    task: node,
                    outcome,
                    duration,
                });
                let mut st = self.lock();
                st.running -= 1;
                st.summary.busy += duration;
                match outcome {
                    Outcome::Executed => st.summary.executed += 1,
                    Outcome::Cached => st.summary.cached += 1,
                    Outcome::NoExec => st.summary.noexec += 1,
                }
                let mut woken = 0usize;
                for &r in graph.rdeps(t) {
                    st.pending[r] -= 1;
                    if st.pending[r] == 0 {
                        st.ready.push((graph.priority(r), Reverse(r)));
                        (self.events)(&Event::Queued {
                            task: &graph.tasks[r],
                        });
                        woken += 1;
                    }
                }
                // This worker takes one ready task itself; wake others for the rest.
                for _ in 1..woken {
                    self.wake.notify_one();
                }
                if st.running == 0 && st.ready.is_empty() {
                    self.wake.notify_all();
                }
            }
            Err(failure) => {
                (self.events)(&Event::Failed {
                    task: node,
                    failure: &failure,
                    duration,
                });
                tracing::debug!(task = %node.label(), error = %failure, "task failed");
                let mut st = self.lock();
                st.running -= 1;
                st.summary.busy += duration;
                if failure.kind != FailureKind::Cancelled {
                    st.summary.failed += 1;
                }
                st.summary.failures.push((t, failure));
                if !self.opts.keep_going {
                    st.stop = true;
                }
                self.wake.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicUsize;

    fn chain_graph(names: &[&str], deps: Vec<Vec<TaskId>>) -> TaskGraph {
        let tasks = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (pn, task) = n.split_once(':').unwrap();
                TaskNode::new(i, 0, pn, task)
            })
            .collect();
        TaskGraph::new(tasks, Vec::new(), deps).unwrap()
    }

    /// Output = the sorted labels of every task reached so far, so a test can
    /// check that outputs flow from direct dependencies.
    struct Collect {
        fail: BTreeSet<String>,
        noexec: BTreeSet<String>,
        started: AtomicUsize,
    }

    impl Executor for Collect {
        type Output = BTreeSet<String>;
        fn execute(
            &self,
            task: &TaskNode,
            deps: &[(&TaskNode, &Self::Output)],
            _cancel: &CancelToken,
        ) -> Result<TaskResult<Self::Output>, TaskFailure> {
            self.started.fetch_add(1, Ordering::SeqCst);
            if self.fail.contains(&task.label()) {
                return Err(TaskFailure::new(FailureKind::Task, "exit 1"));
            }
            let mut out = BTreeSet::new();
            out.insert(task.label());
            for (_, o) in deps {
                out.extend(o.iter().cloned());
            }
            let outcome = if self.noexec.contains(&task.label()) {
                Outcome::NoExec
            } else {
                Outcome::Executed
            };
            Ok(TaskResult {
                output: out,
                outcome,
            })
        }
    }

    fn collect(fail: &[&str]) -> Collect {
        Collect {
            fail: fail.iter().map(|s| s.to_string()).collect(),
            noexec: BTreeSet::new(),
            started: AtomicUsize::new(0),
        }
    }

    fn diamond() -> TaskGraph {
        // d needs b and c; b and c need a; e is independent.
        chain_graph(
            &["x:do_a", "x:do_b", "x:do_c", "x:do_d", "y:do_e"],
            vec![vec![], vec![0], vec![0], vec![1, 2], vec![]],
        )
    }

    fn opts(jobs: usize) -> RunOptions {
        RunOptions {
            jobs,
            ..RunOptions::default()
        }
    }

    #[test]
    fn outputs_flow_and_order_respects_edges() {
        for jobs in [1, 2, 8] {
            let g = diamond();
            let ex = collect(&[]);
            let (sum, outs) = run_with_outputs(&g, &ex, &opts(jobs), &|_| {});
            assert!(sum.success(), "{sum:?}");
            assert_eq!(sum.executed, 5);
            let d = outs[3].as_ref().unwrap();
            assert_eq!(
                d.iter().cloned().collect::<Vec<_>>(),
                vec!["x:do_a", "x:do_b", "x:do_c", "x:do_d"]
            );
            let pos = |x| sum.order.iter().position(|&t| t == x).unwrap();
            assert!(pos(0) < pos(1) && pos(0) < pos(2) && pos(1) < pos(3) && pos(2) < pos(3));
        }
    }

    #[test]
    fn critical_path_first() {
        let g = diamond();
        // a (prio 3) before e (prio 1), then b/c, then d, e last.
        assert_eq!(execution_order(&g), vec![0, 1, 2, 3, 4]);
        let sum = run(&g, &collect(&[]), &opts(1), &|_| {});
        assert_eq!(sum.order, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn first_failure_stops_scheduling() {
        let g = diamond();
        let ex = collect(&["x:do_a"]);
        let sum = run(&g, &ex, &opts(1), &|_| {});
        assert_eq!(sum.failed, 1);
        assert_eq!(sum.executed, 0);
        assert_eq!(sum.not_run, 4);
        assert_eq!(ex.started.load(Ordering::SeqCst), 1);
        assert!(!sum.success());
    }

    #[test]
    fn keep_going_runs_what_does_not_depend_on_the_failure() {
        let g = diamond();
        let ex = collect(&["x:do_b"]);
        let o = RunOptions {
            keep_going: true,
            ..opts(2)
        };
        let sum = run(&g, &ex, &o, &|_| {});
        assert_eq!(sum.failed, 1);
        assert_eq!(sum.executed, 3); // a, c, e
        assert_eq!(sum.not_run, 1); // d
        assert_eq!(sum.failures[0].0, 1);
    }

    #[test]
    fn cancel_stops_new_tasks() {
        struct CancelOnFirst;
        impl Executor for CancelOnFirst {
            type Output = ();
            fn execute(
                &self,
                _task: &TaskNode,
                _deps: &[(&TaskNode, &())],
                cancel: &CancelToken,
            ) -> Result<TaskResult<()>, TaskFailure> {
                cancel.cancel();
                Err(TaskFailure::new(FailureKind::Cancelled, "interrupted"))
            }
        }
        let g = diamond();
        let sum = run(&g, &CancelOnFirst, &opts(1), &|_| {});
        assert!(sum.cancelled);
        assert_eq!(sum.failed, 0);
        assert_eq!(sum.order.len(), 1);
        assert_eq!(sum.not_run, 4);
    }

    #[test]
    fn a_panicking_executor_is_a_failure() {
        struct Panics;
        impl Executor for Panics {
            type Output = ();
            fn execute(
                &self,
                _task: &TaskNode,
                _deps: &[(&TaskNode, &())],
                _cancel: &CancelToken,
            ) -> Result<TaskResult<()>, TaskFailure> {
                panic!("boom")
            }
        }
        let g = diamond();
        let sum = run(&g, &Panics, &opts(2), &|_| {});
        assert!(sum.failed >= 1);
        assert_eq!(sum.failures[0].1.kind, FailureKind::Internal);
        assert!(sum.failures[0].1.message.contains("boom"));
    }

    #[test]
    fn events_are_ordered_and_json_lines_end_with_counts() {
        let g = diamond();
        let mut ex = collect(&[]);
        ex.noexec.insert("y:do_e".into());
        let lines = Mutex::new(Vec::new());
        let sum = run(&g, &ex, &opts(1), &|e| {
            lines.lock().unwrap().push(e.to_json());
        });
        let lines = lines.into_inner().unwrap();
        let kinds: Vec<String> = lines
            .iter()
            .map(|l| {
                let ev = l["event"].as_str().unwrap();
                match l.get("task") {
                    Some(t) => format!("{ev} {}", t.as_str().unwrap()),
                    None => ev.to_string(),
                }
            })
            .collect();
        expect_test::expect![[r#"
            build_started
            task_queued x:do_a
            task_queued y:do_e
            task_started x:do_a
            task_finished x:do_a
            task_queued x:do_b
            task_queued x:do_c
            task_started x:do_b
            task_finished x:do_b
            task_started x:do_c
            task_finished x:do_c
            task_queued x:do_d
            task_started x:do_d
            task_finished x:do_d
            task_started y:do_e
            task_finished y:do_e
            build_finished"#]]
        .assert_eq(&kinds.join("\n"));
        let last = lines.last().unwrap();
        assert_eq!(last["executed"], 4);
        assert_eq!(last["noexec"], 1);
        assert_eq!(last["cached"], 0);
        assert_eq!(last["failed"], 0);
        assert!(last["wall_s"].as_f64().unwrap() >= 0.0);
        assert_eq!(sum.noexec, 1);
    }

    #[test]
    fn dry_run_lists_without_executing() {
        let g = diamond();
        let ex = collect(&[]);
        let planned = Mutex::new(Vec::new());
        let o = RunOptions {
            dry_run: true,
            ..opts(2)
        };
        let sum = run(&g, &ex, &o, &|e| {
            if let Event::Planned { task, .. } = e {
                planned.lock().unwrap().push(task.label());
            }
        });
        assert_eq!(ex.started.load(Ordering::SeqCst), 0);
        assert_eq!(
            planned.into_inner().unwrap(),
            vec!["x:do_a", "x:do_b", "x:do_c", "x:do_d", "y:do_e"]
        );
        assert!(sum.dry_run);
        assert_eq!(sum.not_run, 5);
    }

    #[test]
    fn two_slots_run_two_ready_tasks_at_once() {
        use std::sync::Barrier;
        // b and c become ready together; each waits for the other: only
        // passes when both are running at the same time.
        struct Rendezvous(Barrier);
        impl Executor for Rendezvous {
            type Output = ();
            fn execute(
                &self,
                task: &TaskNode,
                _deps: &[(&TaskNode, &())],
                _cancel: &CancelToken,
            ) -> Result<TaskResult<()>, TaskFailure> {
                if task.task == "do_b" || task.task == "do_c" {
                    self.0.wait();
                }
                Ok(TaskResult {
                    output: (),
                    outcome: Outcome::Executed,
                })
            }
        }
        let g = chain_graph(
            &["x:do_a", "x:do_b", "x:do_c"],
            vec![vec![], vec![0], vec![0]],
        );
        let sum = run(&g, &Rendezvous(Barrier::new(2)), &opts(2), &|_| {});
        assert!(sum.success());
    }
}
