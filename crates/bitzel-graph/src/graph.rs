//! The task graph: nodes, dependency edges, topological checks, cycle reports
//! and the critical-path priorities the runqueue schedules by.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// Index of a task in [`TaskGraph::tasks`].
pub type TaskId = usize;

/// One task of one recipe: a node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskNode {
    /// Its index in [`TaskGraph::tasks`].
    pub id: TaskId,
    /// Index of its recipe in the input recipe list the graph was built from
    /// (the `Workspace::recipes` order); [`TaskGraph::recipe`] finds its [`RecipeNode`].
    pub recipe: usize,
    /// The recipe's `PN` (for a `BBCLASSEXTEND` variant, the extended name such as
    /// `quilt-native`).
    pub pn: String,
    /// The task name, with its `do_` prefix (`do_compile`).
    pub task: String,
    /// `[noexec]`: the task has no body to run; it still orders its neighbours.
    pub noexec: bool,
    /// `[nostamp]`: the task is never considered up to date by BitBake.
    pub nostamp: bool,
    /// `[dirs]`, expanded and split on whitespace: directories created before the
    /// task runs; the last one is its working directory.
    pub dirs: Vec<String>,
    /// `[cleandirs]`, expanded and split: directories emptied before the task runs.
    pub cleandirs: Vec<String>,
}

impl TaskNode {
    /// A plain node: no flags set, `dirs`/`cleandirs` empty.
    pub fn new(id: TaskId, recipe: usize, pn: impl Into<String>, task: impl Into<String>) -> Self {
        TaskNode {
            id,
            recipe,
            pn: pn.into(),
            task: task.into(),
            noexec: false,
            nostamp: false,
            dirs: Vec::new(),
            cleandirs: Vec::new(),
        }
    }

    /// `pn:do_task`, the name used in messages and cycle reports.
    pub fn label(&self) -> String {
        format!("{}:{}", self.pn, self.task)
    }

    /// `pn.do_task`, BitBake's node name in `task-depends.dot`.
    pub fn dot_name(&self) -> String {
        format!("{}.{}", self.pn, self.task)
    }
}

/// What the graph remembers about a recipe its tasks belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipeNode {
    /// `PN` (extended for variants: `quilt-native`).
    pub pn: String,
    /// BitBake's file name for the recipe: the path for a plain recipe,
    /// `virtual:native:/path/x.bb` for a `BBCLASSEXTEND` variant.
    pub file: String,
    /// The recipe file on disk.
    pub path: PathBuf,
    /// `PE:PV-PR` as BitBake writes it in `task-depends.dot` (`:1.35.0-r0` when PE is empty).
    pub version: String,
    /// Index in the input recipe list the graph was built from.
    pub input: usize,
}

/// Why a graph could not be put together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CycleError {
    /// The edges form a cycle; the whole cycle is listed, first task repeated at the end.
    #[error(
        "dependency cycle: {}; break it by removing one of these dependencies (an `addtask ... after/before`, a `[depends]` flag or a DEPENDS/RDEPENDS entry)",
        .cycle.join(" -> ")
    )]
    Cycle {
        /// `pn:do_task` names along the cycle, first repeated at the end.
        cycle: Vec<String>,
    },
    /// An edge names a task index that is not in the graph (a bug in the caller).
    #[error("task {from} depends on task index {to}, but the graph has only {len} tasks")]
    BadIndex {
        /// The task with the bad edge.
        from: String,
        /// The out-of-range index.
        to: usize,
        /// Number of tasks.
        len: usize,
    },
}

/// The tasks to run and their dependencies, acyclic by construction.
#[derive(Debug, Clone)]
pub struct TaskGraph {
    /// The nodes; `tasks[i].id == i`.
    pub tasks: Vec<TaskNode>,
    /// The recipes the tasks belong to, sorted by input index.
    pub recipes: Vec<RecipeNode>,
    deps: Vec<Vec<TaskId>>,
    rdeps: Vec<Vec<TaskId>>,
    topo: Vec<TaskId>,
    priority: Vec<u64>,
}

impl TaskGraph {
    /// Build a graph from nodes and, per node, the ids it depends on.
    /// Duplicate edges and self-edges are dropped; a cycle is an error listing the
    /// whole cycle. `tasks[i].id` is rewritten to `i`.
    pub fn new(
        mut tasks: Vec<TaskNode>,
        mut recipes: Vec<RecipeNode>,
        mut deps: Vec<Vec<TaskId>>,
    ) -> Result<Self, CycleError> {
        recipes.sort_by_key(|r| r.input);
        recipes.dedup_by_key(|r| r.input);
        deps.resize(tasks.len(), Vec::new());
        let len = tasks.len();
        for (i, t) in tasks.iter_mut().enumerate() {
            t.id = i;
        }
        for (i, d) in deps.iter_mut().enumerate() {
            d.sort_unstable();
            d.dedup();
            d.retain(|&x| x != i);
            if let Some(&bad) = d.iter().find(|&&x| x >= len) {
                return Err(CycleError::BadIndex {
                    from: tasks[i].label(),
                    to: bad,
                    len,
                });
            }
        }
        let mut rdeps = vec![Vec::new(); len];
        for (i, d) in deps.iter().enumerate() {
            for &x in d {
                rdeps[x].push(i);
            }
        }
        let topo = topo_order(&deps, &rdeps).map_err(|stuck| CycleError::Cycle {
            cycle: find_cycle(&deps, &stuck)
                .into_iter()
                .map(|i| tasks[i].label())
                .collect(),
        })?;
        let mut g = TaskGraph {
            tasks,
            recipes,
            deps,
            rdeps,
            topo,
            priority: Vec::new(),
        };
        g.set_costs(|_| 1);
        Ok(g)
    }

    /// The recipe of input index `input` (see [`TaskNode::recipe`]).
    pub fn recipe(&self, input: usize) -> Option<&RecipeNode> {
        self.recipes
            .binary_search_by_key(&input, |r| r.input)
            .ok()
            .and_then(|i| self.recipes.get(i))
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The tasks `id` depends on (its direct predecessors), sorted.
    pub fn deps(&self, id: TaskId) -> &[TaskId] {
        self.deps.get(id).map_or(&[], Vec::as_slice)
    }

    /// The tasks that depend on `id` (its direct successors), sorted.
    pub fn rdeps(&self, id: TaskId) -> &[TaskId] {
        self.rdeps.get(id).map_or(&[], Vec::as_slice)
    }

    /// Every edge `(task, dependency)`, sorted.
    pub fn edges(&self) -> impl Iterator<Item = (TaskId, TaskId)> + '_ {
        self.deps
            .iter()
            .enumerate()
            .flat_map(|(i, d)| d.iter().map(move |&x| (i, x)))
    }

    /// Number of edges.
    pub fn edge_count(&self) -> usize {
        self.deps.iter().map(Vec::len).sum()
    }

    /// A topological order: every task after all its dependencies.
    pub fn topo_order(&self) -> &[TaskId] {
        &self.topo
    }

    /// The node named `pn` / `task`, if present.
    pub fn find(&self, pn: &str, task: &str) -> Option<TaskId> {
        self.tasks.iter().position(|t| t.pn == pn && t.task == task)
    }

    /// Critical-path priority of a task: its own cost plus the longest chain of
    /// costs through the tasks that (transitively) depend on it. The runqueue
    /// starts the ready task with the highest priority first.
    pub fn priority(&self, id: TaskId) -> u64 {
        self.priority.get(id).copied().unwrap_or(0)
    }

    /// Recompute priorities from a per-task cost estimate (default: 1 per task).
    /// Use measured durations from an earlier build when known.
    pub fn set_costs(&mut self, cost: impl Fn(&TaskNode) -> u64) {
        let mut prio = vec![0u64; self.tasks.len()];
        for &t in self.topo.iter().rev() {
            let tail = self.rdeps[t].iter().map(|&r| prio[r]).max().unwrap_or(0);
            prio[t] = cost(&self.tasks[t]).saturating_add(tail);
        }
        self.priority = prio;
    }

    /// Edges grouped by task, with names: `"pn.do_x" -> ["pn.do_y", ...]`, sorted.
    pub fn named_edges(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for t in &self.tasks {
            let mut v: Vec<String> = self.deps[t.id]
                .iter()
                .map(|&d| self.tasks[d].dot_name())
                .collect();
            v.sort();
            out.insert(t.dot_name(), v);
        }
        out
    }
}

/// Kahn's algorithm; on a cycle, returns the ids that could not be ordered.
fn topo_order(deps: &[Vec<TaskId>], rdeps: &[Vec<TaskId>]) -> Result<Vec<TaskId>, Vec<TaskId>> {
    let len = deps.len();
    let mut pending: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut stack: Vec<TaskId> = (0..len).rev().filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(len);
    while let Some(t) = stack.pop() {
        order.push(t);
        for &r in rdeps[t].iter().rev() {
            pending[r] -= 1;
            if pending[r] == 0 {
                stack.push(r);
            }
        }
    }
    if order.len() == len {
        Ok(order)
    } else {
        Err((0..len).filter(|&i| pending[i] > 0).collect())
    }
}

/// Find one cycle among the `stuck` nodes (each has an unordered dependency).
/// Returns the cycle with its first node repeated at the end.
fn find_cycle(deps: &[Vec<TaskId>], stuck: &[TaskId]) -> Vec<TaskId> {
    let len = deps.len();
    let mut in_stuck = vec![false; len];
    for &s in stuck {
        in_stuck[s] = true;
    }
    // Every stuck node has at least one stuck dependency: walk until a node repeats.
    let Some(&start) = stuck.first() else {
        return Vec::new();
    };
    let mut seen_at = vec![usize::MAX; len];
    let mut path = Vec::new();
    let mut cur = start;
    loop {
        if seen_at[cur] != usize::MAX {
            let mut cycle: Vec<TaskId> = path[seen_at[cur]..].to_vec();
            // Present it starting from the smallest id, for stable messages.
            if let Some(min_pos) = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, &v)| v)
                .map(|(p, _)| p)
            {
                cycle.rotate_left(min_pos);
            }
            if let Some(&first) = cycle.first() {
                cycle.push(first);
            }
            return cycle;
        }
        seen_at[cur] = path.len();
        path.push(cur);
        match deps[cur].iter().find(|&&d| in_stuck[d]) {
            Some(&next) => cur = next,
            None => return path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(names: &[&str], deps: Vec<Vec<TaskId>>) -> Result<TaskGraph, CycleError> {
        let tasks = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (pn, task) = n.split_once(':').unwrap();
                TaskNode::new(i, 0, pn, task)
            })
            .collect();
        TaskGraph::new(tasks, Vec::new(), deps)
    }

    #[test]
    fn cycle_is_reported_whole() {
        let err = graph(
            &["a:do_x", "b:do_y", "c:do_z", "d:do_w"],
            vec![vec![1], vec![2], vec![0], vec![0]],
        )
        .unwrap_err();
        // Edges point from a task to its dependency: a needs b needs c needs a.
        assert_eq!(
            err.to_string().split(';').next().unwrap(),
            "dependency cycle: a:do_x -> b:do_y -> c:do_z -> a:do_x"
        );
    }

    #[test]
    fn self_edges_and_duplicates_are_dropped() {
        let g = graph(&["a:do_x", "a:do_y"], vec![vec![0, 1, 1], vec![]]).unwrap();
        assert_eq!(g.deps(0), &[1]);
        assert_eq!(g.rdeps(1), &[0]);
        assert_eq!(g.edge_count(), 1);
    }

    #[test]
    fn bad_index_is_an_error() {
        let err = graph(&["a:do_x"], vec![vec![5]]).unwrap_err();
        assert!(matches!(err, CycleError::BadIndex { to: 5, .. }));
    }

    #[test]
    fn priorities_follow_the_longest_remaining_path() {
        // 0 <- 1 <- 2 <- 3 ; 0 <- 4
        let g = graph(
            &["a:do_0", "a:do_1", "a:do_2", "a:do_3", "b:do_4"],
            vec![vec![], vec![0], vec![1], vec![2], vec![0]],
        )
        .unwrap();
        let p: Vec<u64> = (0..5).map(|i| g.priority(i)).collect();
        assert_eq!(p, vec![4, 3, 2, 1, 1]);
        let topo = g.topo_order();
        let pos = |x: usize| topo.iter().position(|&t| t == x).unwrap();
        assert!(pos(0) < pos(1) && pos(1) < pos(2) && pos(2) < pos(3) && pos(0) < pos(4));
    }
}
