//! From recipes to the task graph, in BitBake's two steps:
//!
//! 1. **taskdata** (`taskdata.py`): starting from the targets, resolve every
//!    build-time name (targets, `DEPENDS`, `[depends]`) and runtime name
//!    (`RDEPENDS`/`RRECOMMENDS` over `PACKAGES`, `[rdepends]`) of every recipe
//!    brought in, transitively, to its providers. A name nobody provides makes
//!    the recipes asking for it unbuildable; when that reaches a target it is an
//!    error naming the missing name, who asked for it and the chain.
//! 2. **runqueue** (`runqueue.py`, `RunQueueData.prepare`): turn every task of
//!    every recipe brought in into a node with edges from the `deps` flag
//!    (`addtask after/before`), `[deptask]` (over DEPENDS), `[rdeptask]` (over
//!    RDEPENDS), `[depends]`, `[rdepends]`, and `[recrdeptask]`/`[recideptask]`
//!    (recursive, iterated to a fixed point); then keep only what the target
//!    tasks need, and check for cycles.
//!
//! No task name is hard-coded here: every inter-recipe edge comes from a flag
//! the classes set.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::error::{DepTaskError, GraphError, Missing, Requester};
use crate::graph::{RecipeNode, TaskGraph, TaskId, TaskNode};
use crate::input::{ProviderPrefs, RecipeInfo, TaskInfo, Want};
use crate::providers::{Namespace, ProviderChoice, ProviderIndex};
use crate::suggest;

/// A thing to build: a build-time name (PN, PROVIDES, `virtual/...`) and a task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Target {
    /// The name (resolved through providers).
    pub name: String,
    /// The task, with its `do_` prefix.
    pub task: String,
}

impl Target {
    /// Parse `name` or `name:do_task` (as on BitBake's command line); a task
    /// without `do_` gets it. `default_task` is used when none is given.
    pub fn parse(s: &str, default_task: &str) -> Target {
        let (name, task) = match s.split_once(":do_") {
            Some((n, t)) => (n, format!("do_{t}")),
            None => (s, default_task.to_string()),
        };
        Target {
            name: name.to_string(),
            task: with_do(&task),
        }
    }
}

/// `build` → `do_build`; `do_build` unchanged.
pub fn with_do(task: &str) -> String {
    if task.starts_with("do_") {
        task.to_string()
    } else {
        format!("do_{task}")
    }
}

/// The result of graph construction.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The tasks the targets need and their edges.
    pub graph: TaskGraph,
    /// The target tasks, in target order.
    pub targets: Vec<TaskId>,
    /// Every provider decision taken, by name space and name.
    pub providers: Vec<ProviderChoice>,
    /// Non-fatal findings (recipes left out because a dependency of theirs is
    /// missing, invalid PACKAGES_DYNAMIC patterns, ...).
    pub warnings: Vec<String>,
    /// Errors BitBake logs and builds on (its runqueue's "Multiple .bb files
    /// are due to be built which each provide ..."): the build runs, and
    /// ends failed as BitBake's does.
    pub errors: Vec<String>,
}

/// Build the task graph for `targets` over `recipes`.
pub fn build_graph(
    recipes: &[RecipeInfo],
    prefs: &ProviderPrefs,
    targets: &[Target],
) -> Result<BuildPlan, GraphError> {
    if targets.is_empty() {
        return Err(GraphError::NoTargets);
    }
    let mut td = TaskData::new(recipes, prefs);
    for t in targets {
        td.external.insert(t.name.clone());
    }
    for t in targets {
        if prefs.is_assumed(&t.name) {
            continue;
        }
        td.add_target(&t.name)?;
    }
    td.add_unresolved();
    for t in targets {
        if let Some(chain) = td.failed_build.get(&t.name) {
            return Err(td.no_provider_error(chain.clone()));
        }
    }
    if let Some(e) = td.ambiguous.first() {
        return Err(e.clone());
    }
    let mut warnings: Vec<String> = td
        .idx
        .bad_patterns
        .iter()
        .map(|(r, p, e)| {
            format!(
                "{}: PACKAGES_DYNAMIC pattern '{p}' is not a valid regular expression ({e}); ignored",
                recipes[*r].pn
            )
        })
        .collect();
    warnings.extend(td.warnings.iter().cloned());
    for (&r, chain) in &td.failed_fns {
        warnings.push(format!(
            "{} ({}) is unbuildable and left out: missing or unbuildable dependency chain {}",
            recipes[r].pn,
            recipes[r].bitbake_fn(),
            chain.join(" -> ")
        ));
    }
    let rq = RunQueue::prepare(&td, targets)?;
    let providers = td.choices.into_values().collect();
    Ok(BuildPlan {
        graph: rq.0,
        targets: rq.1,
        providers,
        warnings,
        errors: rq.2,
    })
}

/// Explain how `name` is resolved (build-time, then runtime if it is no
/// build-time name), without building a graph.
pub fn explain_provider(
    recipes: &[RecipeInfo],
    prefs: &ProviderPrefs,
    name: &str,
) -> ProviderChoice {
    let idx = ProviderIndex::new(recipes);
    let c = idx.resolve(name, Namespace::Build, prefs);
    if c.candidates.is_empty() {
        let r = idx.resolve(name, Namespace::Runtime, prefs);
        if !r.candidates.is_empty() {
            return r;
        }
    }
    c
}

struct TaskData<'a> {
    recipes: &'a [RecipeInfo],
    prefs: &'a ProviderPrefs,
    idx: ProviderIndex<'a>,
    /// Resolved names → eligible providers (failed ones removed), best first.
    build_targets: BTreeMap<String, Vec<usize>>,
    run_targets: BTreeMap<String, Vec<usize>>,
    seen_build: Vec<String>,
    seen_run: Vec<String>,
    seen_build_set: BTreeSet<String>,
    seen_run_set: BTreeSet<String>,
    failed_build: BTreeMap<String, Vec<String>>,
    failed_run: BTreeMap<String, Vec<String>>,
    failed_fns: BTreeMap<usize, Vec<String>>,
    added: Vec<bool>,
    added_order: Vec<usize>,
    /// Per recipe: DEPENDS names (deduplicated, in order).
    depids: Vec<Vec<String>>,
    /// Per recipe: RDEPENDS/RRECOMMENDS names.
    rdepids: Vec<Vec<String>>,
    choices: BTreeMap<(Namespace, String), ProviderChoice>,
    missing: BTreeMap<(Namespace, String), Missing>,
    external: BTreeSet<String>,
    ambiguous: Vec<GraphError>,
    warnings: Vec<String>,
}

impl<'a> TaskData<'a> {
    fn new(recipes: &'a [RecipeInfo], prefs: &'a ProviderPrefs) -> Self {
        TaskData {
            recipes,
            prefs,
            idx: ProviderIndex::new(recipes),
            build_targets: BTreeMap::new(),
            run_targets: BTreeMap::new(),
            seen_build: Vec::new(),
            seen_run: Vec::new(),
            seen_build_set: BTreeSet::new(),
            seen_run_set: BTreeSet::new(),
            failed_build: BTreeMap::new(),
            failed_run: BTreeMap::new(),
            failed_fns: BTreeMap::new(),
            added: vec![false; recipes.len()],
            added_order: Vec::new(),
            depids: vec![Vec::new(); recipes.len()],
            rdepids: vec![Vec::new(); recipes.len()],
            choices: BTreeMap::new(),
            missing: BTreeMap::new(),
            external: BTreeSet::new(),
            ambiguous: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn see_build(&mut self, name: &str) {
        if self.seen_build_set.insert(name.to_string()) {
            self.seen_build.push(name.to_string());
        }
    }

    fn see_run(&mut self, name: &str) {
        if self.seen_run_set.insert(name.to_string()) {
            self.seen_run.push(name.to_string());
        }
    }

    /// A target: nobody providing it is an immediate error.
    fn add_target(&mut self, name: &str) -> Result<(), GraphError> {
        self.see_build(name);
        if self.build_targets.contains_key(name) {
            return Ok(());
        }
        if !self.resolve(name, Namespace::Build) {
            let chain = self
                .failed_build
                .get(name)
                .cloned()
                .unwrap_or_else(|| vec![name.to_string()]);
            return Err(self.no_provider_error(chain));
        }
        Ok(())
    }

    /// Whether `name` already has providers or already failed in `ns`.
    fn settled(&self, name: &str, ns: Namespace) -> bool {
        match ns {
            Namespace::Build => {
                self.build_targets.contains_key(name) || self.failed_build.contains_key(name)
            }
            Namespace::Runtime => {
                self.run_targets.contains_key(name) || self.failed_run.contains_key(name)
            }
        }
    }

    /// Resolve every seen-but-unresolved name until nothing new appears.
    fn add_unresolved(&mut self) {
        loop {
            let mut added = 0usize;
            for ns in [Namespace::Build, Namespace::Runtime] {
                let seen = match ns {
                    Namespace::Build => &self.seen_build,
                    Namespace::Runtime => &self.seen_run,
                };
                let pending: Vec<String> = seen
                    .iter()
                    .filter(|n| !self.settled(n, ns) && !self.prefs.is_assumed(n))
                    .cloned()
                    .collect();
                for name in pending {
                    // An earlier resolution in this pass may have settled it.
                    if !self.settled(&name, ns) && self.resolve(&name, ns) {
                        added += 1;
                    }
                }
            }
            if added == 0 {
                break;
            }
        }
    }

    /// Resolve one name; true when providers were added.
    fn resolve(&mut self, name: &str, ns: Namespace) -> bool {
        let mut choice = self.idx.resolve(name, ns, self.prefs);
        choice.eligible.retain(|e| !self.failed_fns.contains_key(e));
        choice.chosen = choice.eligible.first().copied();
        let eligible = choice.eligible.clone();
        if eligible.is_empty() {
            let reason = if choice.candidates.is_empty() {
                None
            } else {
                Some(format!(
                    "no eligible provider: {}",
                    if choice.reasons.is_empty() {
                        "every candidate is unbuildable".to_string()
                    } else {
                        choice.reasons.join("; ")
                    }
                ))
            };
            let wanted_by = self.requesters(name, ns);
            // BitBake suggests close matches for build-time names only.
            let close = if ns == Namespace::Build && choice.candidates.is_empty() {
                close_provider_names(&self.idx, self.prefs, name).into()
            } else {
                Box::default()
            };
            self.missing.insert(
                (ns, name.to_string()),
                Missing {
                    name: name.to_string(),
                    namespace: ns,
                    wanted_by,
                    reason,
                    close,
                },
            );
            self.choices.insert((ns, name.to_string()), choice);
            match ns {
                Namespace::Build => self.remove_buildtarget(name, Vec::new()),
                Namespace::Runtime => self.remove_runtarget(name, Vec::new()),
            }
            return false;
        }
        let conflicting = choice.reasons.iter().any(|r| r.starts_with("conflicting"));
        if ns == Namespace::Runtime
            && !conflicting
            && eligible.len() > 1
            && !choice.unique
            && self.recipes[eligible[0]].pn != name
        {
            // BitBake only notes this and takes the first; so does bitzel for
            // runtime names (packages are often provided several times over).
            let all: Vec<String> = eligible
                .iter()
                .map(|&e| self.recipes[e].pn.clone())
                .collect();
            self.warnings.push(format!(
                "multiple providers are available for runtime '{name}' ({}); using {}; set PREFERRED_RPROVIDER_{name} to choose",
                all.join(", "),
                all[0]
            ));
        } else if eligible.len() > 1 && !choice.unique && self.recipes[eligible[0]].pn != name {
            let providers = eligible
                .iter()
                .map(|&e| {
                    let r = &self.recipes[e];
                    format!("{} {} ({})", r.pn, r.pv, r.bitbake_fn())
                })
                .collect();
            let hint = match ns {
                Namespace::Build => format!("set PREFERRED_PROVIDER_{name} to one of them"),
                Namespace::Runtime => format!(
                    "set PREFERRED_RPROVIDER_{name} (or PREFERRED_PROVIDER_ of a name they provide) to one of them"
                ),
            };
            self.ambiguous.push(GraphError::Ambiguous {
                kind: match ns {
                    Namespace::Build => "build-time",
                    Namespace::Runtime => "runtime",
                },
                name: name.to_string(),
                providers,
                hint,
            });
        }
        self.choices.insert((ns, name.to_string()), choice);
        match ns {
            Namespace::Build => self
                .build_targets
                .insert(name.to_string(), eligible.clone()),
            Namespace::Runtime => self.run_targets.insert(name.to_string(), eligible.clone()),
        };
        for e in eligible {
            self.add_tasks(e);
        }
        true
    }

    /// Bring a recipe in: note every name it needs.
    fn add_tasks(&mut self, r: usize) {
        if self.added[r] || self.failed_fns.contains_key(&r) {
            return;
        }
        self.added[r] = true;
        self.added_order.push(r);
        let recipe = &self.recipes[r];
        let mut deps: Vec<String> = Vec::new();
        for w in &recipe.depends {
            if !deps.contains(&w.name) {
                deps.push(w.name.clone());
            }
        }
        let mut rdeps: Vec<String> = Vec::new();
        for w in &recipe.rdepends {
            if !rdeps.contains(&w.name) {
                rdeps.push(w.name.clone());
            }
        }
        for t in &recipe.tasks {
            for (n, _) in &t.depends {
                self.see_build(n);
            }
            for (n, _) in &t.rdepends {
                self.see_run(n);
            }
        }
        self.depids[r] = deps.clone();
        self.rdepids[r] = rdeps.clone();
        for d in &deps {
            self.see_build(d);
            if let Some(chain) = self.failed_build.get(d) {
                let chain = chain.clone();
                self.fail_fn(r, chain);
                return;
            }
        }
        for d in &rdeps {
            self.see_run(d);
            if let Some(chain) = self.failed_run.get(d) {
                let chain = chain.clone();
                self.fail_fn(r, chain);
                return;
            }
        }
    }

    fn fail_fn(&mut self, r: usize, chain: Vec<String>) {
        if self.failed_fns.contains_key(&r) {
            return;
        }
        tracing::debug!(recipe = %self.recipes[r].bitbake_fn(), ?chain, "recipe is unbuildable");
        self.failed_fns.insert(r, chain.clone());
        let emptied: Vec<String> = self
            .build_targets
            .iter_mut()
            .filter_map(|(name, list)| {
                let had = list.contains(&r);
                list.retain(|&x| x != r);
                (had && list.is_empty()).then(|| name.clone())
            })
            .collect();
        for name in emptied {
            self.build_targets.remove(&name);
            self.remove_buildtarget(&name, chain.clone());
        }
        let emptied: Vec<String> = self
            .run_targets
            .iter_mut()
            .filter_map(|(name, list)| {
                let had = list.contains(&r);
                list.retain(|&x| x != r);
                (had && list.is_empty()).then(|| name.clone())
            })
            .collect();
        for name in emptied {
            self.run_targets.remove(&name);
            self.remove_runtarget(&name, chain.clone());
        }
    }

    fn remove_buildtarget(&mut self, name: &str, missing: Vec<String>) {
        self.remove_target(Namespace::Build, name, missing);
    }

    fn remove_runtarget(&mut self, name: &str, missing: Vec<String>) {
        self.remove_target(Namespace::Runtime, name, missing);
    }

    /// `name` cannot be provided: record why, and fail every recipe that
    /// needs it (through DEPENDS/`[depends]`, or RDEPENDS/`[rdepends]`).
    fn remove_target(&mut self, ns: Namespace, name: &str, missing: Vec<String>) {
        let failed = match ns {
            Namespace::Build => &mut self.failed_build,
            Namespace::Runtime => &mut self.failed_run,
        };
        if failed.contains_key(name) {
            return;
        }
        let mut chain = vec![name.to_string()];
        chain.extend(missing);
        failed.insert(name.to_string(), chain.clone());
        let task_deps: fn(&TaskInfo) -> &[(String, String)] = match ns {
            Namespace::Build => |t| &t.depends,
            Namespace::Runtime => |t| &t.rdepends,
        };
        let dependees: Vec<usize> = self
            .added_order
            .iter()
            .copied()
            .filter(|&r| {
                let ids = match ns {
                    Namespace::Build => &self.depids[r],
                    Namespace::Runtime => &self.rdepids[r],
                };
                ids.iter().any(|d| d == name)
                    || self.recipes[r]
                        .tasks
                        .iter()
                        .flat_map(|t| task_deps(t).iter())
                        .any(|(n, _)| n == name)
            })
            .collect();
        for r in dependees {
            self.fail_fn(r, chain.clone());
        }
    }

    /// Every recipe brought in that asks for `name`, with the variable and place.
    fn requesters(&self, name: &str, ns: Namespace) -> Vec<Requester> {
        let mut out = Vec::new();
        if ns == Namespace::Build && self.external.contains(name) {
            out.push(Requester {
                pn: None,
                file: String::new(),
                want: Want::new(name, "target"),
            });
        }
        for &r in &self.added_order {
            let recipe = &self.recipes[r];
            let wants = match ns {
                Namespace::Build => &recipe.depends,
                Namespace::Runtime => &recipe.rdepends,
            };
            for w in wants.iter().filter(|w| w.name == name) {
                out.push(Requester {
                    pn: Some(recipe.pn.clone()),
                    file: recipe.bitbake_fn(),
                    want: w.clone(),
                });
            }
            for t in &recipe.tasks {
                let (list, flag) = match ns {
                    Namespace::Build => (&t.depends, "depends"),
                    Namespace::Runtime => (&t.rdepends, "rdepends"),
                };
                for (n, task) in list {
                    if n == name {
                        out.push(Requester {
                            pn: Some(recipe.pn.clone()),
                            file: recipe.bitbake_fn(),
                            want: Want {
                                name: format!("{n}:{task}"),
                                var: format!("{}[{flag}]", t.name),
                                origin: t.origin.clone(),
                            },
                        });
                    }
                }
            }
        }
        out
    }

    /// The error for a failed chain `[target, ..., missing]`.
    fn no_provider_error(&self, chain: Vec<String>) -> GraphError {
        let last = chain.last().cloned().unwrap_or_default();
        let missing = self
            .missing
            .get(&(Namespace::Build, last.clone()))
            .or_else(|| self.missing.get(&(Namespace::Runtime, last.clone())))
            .cloned()
            .unwrap_or_else(|| Missing {
                name: last.clone(),
                namespace: Namespace::Build,
                wanted_by: self.requesters(&last, Namespace::Build),
                reason: None,
                close: Box::default(),
            });
        GraphError::NoProvider { missing, chain }
    }
}

/// Dense bit set over active recipes.
#[derive(Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    fn union(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= *b;
        }
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| wi * 64 + b)
        })
    }
}

struct RunQueue;

struct Entry {
    recipe: usize,
    task: usize,
}

impl RunQueue {
    fn prepare(
        td: &TaskData<'_>,
        targets: &[Target],
    ) -> Result<(TaskGraph, Vec<TaskId>, Vec<String>), GraphError> {
        let recipes = td.recipes;
        // Every task of every recipe brought in and not failed.
        let mut active: Vec<usize> = td
            .added_order
            .iter()
            .copied()
            .filter(|r| !td.failed_fns.contains_key(r))
            .collect();
        active.sort_unstable();
        let mut dense: HashMap<usize, usize> = HashMap::new();
        for (d, &r) in active.iter().enumerate() {
            dense.insert(r, d);
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut lookup: HashMap<(usize, &str), usize> = HashMap::new();
        for &r in &active {
            for (ti, t) in recipes[r].tasks.iter().enumerate() {
                if lookup.contains_key(&(r, t.name.as_str())) {
                    continue;
                }
                lookup.insert((r, t.name.as_str()), entries.len());
                entries.push(Entry {
                    recipe: r,
                    task: ti,
                });
            }
        }
        let find = |r: usize, t: &str| lookup.get(&(r, t)).copied();
        let build_provider = |name: &str| -> Option<usize> {
            if td.failed_build.contains_key(name) {
                return None;
            }
            td.build_targets.get(name).and_then(|v| v.first().copied())
        };
        let run_provider = |name: &str| -> Option<usize> {
            if td.failed_run.contains_key(name) {
                return None;
            }
            td.run_targets.get(name).and_then(|v| v.first().copied())
        };

        let n = entries.len();
        let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        let mut recursive: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        let mut recursive_i: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut selfref: BTreeSet<usize> = BTreeSet::new();
        for (id, e) in entries.iter().enumerate() {
            let r = e.recipe;
            let recipe = &recipes[r];
            let t = &recipe.tasks[e.task];
            if let Some(entry) = t.malformed.first() {
                return Err(GraphError::BadDependsEntry {
                    pn: recipe.pn.clone(),
                    task: t.name.clone(),
                    origin: t.origin.to_string(),
                    entry: entry.clone(),
                });
            }
            let d = &mut deps[id];
            for p in &t.deps {
                if let Some(x) = find(r, p) {
                    d.insert(x);
                }
            }
            let add_build = |names: &[String], tasks: &[String], d: &mut BTreeSet<usize>| {
                for name in names {
                    if let Some(p) = build_provider(name) {
                        for tn in tasks {
                            if let Some(x) = find(p, tn) {
                                d.insert(x);
                            }
                        }
                    }
                }
            };
            let add_run = |names: &[String], tasks: &[String], d: &mut BTreeSet<usize>| {
                for name in names {
                    if let Some(p) = run_provider(name) {
                        for tn in tasks {
                            if let Some(x) = find(p, tn) {
                                d.insert(x);
                            }
                        }
                    }
                }
            };
            if !t.deptask.is_empty() {
                add_build(&td.depids[r], &t.deptask, d);
            }
            if !t.rdeptask.is_empty() {
                add_run(&td.rdepids[r], &t.rdeptask, d);
            }
            for (name, tn) in &t.depends {
                if let Some(p) = build_provider(name) {
                    match find(p, tn) {
                        Some(x) => {
                            d.insert(x);
                        }
                        None => {
                            return Err(GraphError::NoSuchDepTask(Box::new(DepTaskError {
                                pn: recipe.pn.clone(),
                                task: t.name.clone(),
                                flag: "depends",
                                origin: t.origin.to_string(),
                                name: name.clone(),
                                dep_task: tn.clone(),
                                dep_pn: recipes[p].pn.clone(),
                                dep_file: recipes[p].bitbake_fn(),
                            })))
                        }
                    }
                }
            }
            for (name, tn) in &t.rdepends {
                if let Some(p) = run_provider(name) {
                    match find(p, tn) {
                        Some(x) => {
                            d.insert(x);
                        }
                        None => {
                            return Err(GraphError::NoSuchDepTask(Box::new(DepTaskError {
                                pn: recipe.pn.clone(),
                                task: t.name.clone(),
                                flag: "rdepends",
                                origin: t.origin.to_string(),
                                name: name.clone(),
                                dep_task: tn.clone(),
                                dep_pn: recipes[p].pn.clone(),
                                dep_file: recipes[p].bitbake_fn(),
                            })))
                        }
                    }
                }
            }
            if !t.recrdeptask.is_empty() {
                recursive.insert(id, t.recrdeptask.iter().map(String::as_str).collect());
                add_build(&td.depids[r], &t.recrdeptask, d);
                add_run(&td.rdepids[r], &t.recrdeptask, d);
                if t.recrdeptask.contains(&t.name) {
                    selfref.insert(id);
                }
                if !t.recideptask.is_empty() {
                    recursive_i.insert(
                        id,
                        t.recideptask.iter().filter_map(|tn| find(r, tn)).collect(),
                    );
                }
            }
            d.remove(&id);
        }

        if !recursive.is_empty() {
            // cumulative[t]: the recipes of every task t depends on, transitively
            // (computed once, on the graph before recursive edges, as BitBake does).
            let mut cumulative: Vec<Bits> = vec![Bits::new(active.len()); n];
            let mut rdeps: Vec<Vec<usize>> = vec![Vec::new(); n];
            let mut left: Vec<usize> = vec![0; n];
            for (id, d) in deps.iter().enumerate() {
                left[id] = d.len();
                for &x in d {
                    rdeps[x].push(id);
                }
            }
            let mut frontier: Vec<usize> = (0..n).filter(|&i| left[i] == 0).collect();
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for &t in &frontier {
                    let fn_bit = dense.get(&entries[t].recipe).copied().unwrap_or(0);
                    let src = cumulative[t].clone();
                    for &dep in &rdeps[t] {
                        cumulative[dep].set(fn_bit);
                        cumulative[dep].union(&src);
                        left[dep] -= 1;
                        if left[dep] == 0 {
                            next.push(dep);
                        }
                    }
                }
                frontier = next;
            }
            loop {
                let mut extra = 0usize;
                for (&tid, tasknames) in &recursive {
                    let mut total: BTreeSet<usize> = deps[tid].clone();
                    if let Some(it) = recursive_i.get(&tid) {
                        for &x in it {
                            total.insert(x);
                            total.extend(deps[x].iter().copied());
                        }
                    }
                    let mut fns = Bits::new(active.len());
                    for &x in &total {
                        fns.union(&cumulative[x]);
                    }
                    for f in fns.iter() {
                        let Some(&r) = active.get(f) else { continue };
                        for tn in tasknames {
                            if let Some(x) = find(r, tn) {
                                if x != tid && deps[tid].insert(x) {
                                    extra += 1;
                                }
                            }
                        }
                    }
                    // Recursive tasks that depend on other recursive tasks inherit
                    // their matching dependencies.
                    let mut inherit = BTreeSet::new();
                    for &dep in deps[tid].iter().filter(|d| recursive.contains_key(d)) {
                        for &x in deps[dep].difference(&deps[tid]) {
                            inherit.insert(x);
                        }
                    }
                    for x in inherit {
                        let name = recipes[entries[x].recipe].tasks[entries[x].task]
                            .name
                            .as_str();
                        if tasknames.contains(&name) && x != tid && deps[tid].insert(x) {
                            extra += 1;
                        }
                    }
                }
                tracing::debug!(extra, "recursive dependencies added");
                if extra == 0 {
                    break;
                }
            }
            for &tid in &selfref {
                for other in &selfref {
                    deps[tid].remove(other);
                }
            }
        }

        // Mark what the targets need.
        let mut target_ids = Vec::new();
        for t in targets {
            if td.prefs.is_assumed(&t.name) {
                continue;
            }
            let Some(p) = build_provider(&t.name) else {
                continue;
            };
            match find(p, &t.task) {
                Some(x) => target_ids.push(x),
                None => {
                    let close =
                        close_matches(&t.task, recipes[p].tasks.iter().map(|x| x.name.as_str()));
                    return Err(GraphError::NoSuchTargetTask {
                        target: t.name.clone(),
                        task: t.task.clone(),
                        file: recipes[p].bitbake_fn(),
                        close,
                    });
                }
            }
        }
        let mut keep = vec![false; n];
        let mut stack = target_ids.clone();
        while let Some(x) = stack.pop() {
            if keep[x] {
                continue;
            }
            keep[x] = true;
            stack.extend(deps[x].iter().copied());
        }

        // Sanity check: one provider per name among the recipes being built
        // (two versions of a PN are fatal; two recipes are an error BitBake
        // logs and builds on).
        let mut errors = Vec::new();
        let mut kept_recipes: BTreeSet<usize> = BTreeSet::new();
        for (i, e) in entries.iter().enumerate() {
            if keep[i] {
                kept_recipes.insert(e.recipe);
            }
        }
        let mut prov_list: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &r in &kept_recipes {
            for p in recipes[r].all_provides() {
                prov_list.entry(p).or_default().push(r);
            }
        }
        for (name, rs) in &prov_list {
            if rs.len() < 2 || td.prefs.multi_provider_allowed.iter().any(|m| m == name) {
                continue;
            }
            let mut pns: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for &r in rs {
                pns.entry(recipes[r].pn.as_str())
                    .or_default()
                    .push(recipes[r].bitbake_fn());
            }
            if let Some((pn, files)) = pns.iter().find(|(_, f)| f.len() > 1) {
                return Err(GraphError::MultipleVersions {
                    pn: pn.to_string(),
                    files: files.clone(),
                });
            }
            errors.push(
                GraphError::MultipleProviders {
                    name: name.to_string(),
                    files: rs.iter().map(|&r| recipes[r].bitbake_fn()).collect(),
                }
                .to_string(),
            );
        }

        // Renumber the kept tasks: by recipe (input order), then task order.
        let mut new_id = vec![usize::MAX; n];
        let mut nodes = Vec::new();
        let mut order: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
        order.sort_by_key(|&i| (entries[i].recipe, entries[i].task));
        for &i in &order {
            let e = &entries[i];
            let t = &recipes[e.recipe].tasks[e.task];
            new_id[i] = nodes.len();
            nodes.push(TaskNode {
                id: nodes.len(),
                recipe: e.recipe,
                pn: recipes[e.recipe].pn.clone(),
                task: t.name.clone(),
                noexec: t.noexec,
                nostamp: t.nostamp,
                dirs: t.dirs.clone(),
                cleandirs: t.cleandirs.clone(),
            });
        }
        let new_deps: Vec<Vec<TaskId>> = order
            .iter()
            .map(|&i| deps[i].iter().map(|&d| new_id[d]).collect())
            .collect();
        let recipe_nodes = kept_recipes
            .iter()
            .map(|&r| {
                let x = &recipes[r];
                RecipeNode {
                    pn: x.pn.clone(),
                    file: x.bitbake_fn(),
                    path: x.file.clone(),
                    version: x.pepvpr(),
                    input: r,
                }
            })
            .collect();
        let graph = TaskGraph::new(nodes, recipe_nodes, new_deps)?;
        let targets = target_ids.iter().map(|&i| new_id[i]).collect();
        Ok((graph, targets, errors))
    }
}

/// BitBake's cutoff for close matches of task and provider names (its
/// `difflib.get_close_matches` calls pass `cutoff=0.7` and keep the default
/// `n=3`).
const CLOSE_CUTOFF: f64 = 0.7;
const CLOSE_COUNT: usize = 3;

/// Task names close to `want`, best first (BitBake's runqueue:
/// `difflib.get_close_matches(task, tasks, cutoff=0.7)`).
fn close_matches<'a>(want: &str, have: impl Iterator<Item = &'a str>) -> Vec<String> {
    let have: BTreeSet<&str> = have.collect();
    suggest::get_close_matches(want, have, CLOSE_COUNT, CLOSE_CUTOFF)
}

/// BitBake's `TaskData.get_close_matches` for a build-time name nobody
/// provides: the closest provided names and skipped recipes' PNs, plus
/// `<pn> RPROVIDES <name>` for each recipe providing it at run time.
fn close_provider_names(idx: &ProviderIndex<'_>, prefs: &ProviderPrefs, name: &str) -> Vec<String> {
    let provided = idx
        .build_names()
        .chain(prefs.skipped.iter().map(String::as_str));
    let mut close = suggest::get_close_matches(name, provided, CLOSE_COUNT, CLOSE_CUTOFF);
    for r in idx.runtime_providers(name) {
        let entry = format!("{} RPROVIDES {name}", idx.recipes()[r].pn);
        if !close.contains(&entry) {
            close.push(entry);
        }
    }
    close
}

/// The close matches BitBake would print for a build-time `name` nobody
/// provides (`Nothing PROVIDES 'x'. Close matches: ...`); empty when
/// something provides it or nothing is close.
pub fn provider_close_matches(
    recipes: &[RecipeInfo],
    prefs: &ProviderPrefs,
    name: &str,
) -> Vec<String> {
    let idx = ProviderIndex::new(recipes);
    if !idx.build_providers(name).is_empty() {
        return Vec::new();
    }
    close_provider_names(&idx, prefs, name)
}
