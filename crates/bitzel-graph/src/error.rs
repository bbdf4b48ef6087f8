//! Errors of graph construction. Every message names the recipe(s) involved,
//! where the offending value was set when known, and what the user can do.

use crate::graph::CycleError;
use crate::input::Want;
use crate::providers::Namespace;

/// Who asked for a name that could not be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// The recipe's PN (`None` for a target named in the configuration).
    pub pn: Option<String>,
    /// The recipe file.
    pub file: String,
    /// The variable and its location.
    pub want: Want,
}

impl std::fmt::Display for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.pn {
            Some(pn) => write!(
                f,
                "{pn} asks for it in {} at {}",
                self.want.var, self.want.origin
            ),
            None => write!(f, "it is a build target"),
        }
    }
}

/// One name nobody provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The name.
    pub name: String,
    /// Build-time or runtime.
    pub namespace: Namespace,
    /// Who asked for it.
    pub wanted_by: Vec<Requester>,
    /// Extra explanation (for example a `REQUIRED_VERSION` that matches nothing).
    pub reason: Option<String>,
    /// BitBake's close matches for a build-time name nobody provides
    /// ([`crate::provider_close_matches`]); shown only without a `reason`,
    /// as BitBake shows them only when it has no reasons.
    /// (A boxed slice keeps [`GraphError`] small.)
    pub close: Box<[String]>,
}

impl Missing {
    /// BitBake's `. Close matches:` suffix, or nothing when there is a reason.
    pub fn close_suffix(&self) -> String {
        if self.reason.is_some() {
            return String::new();
        }
        provider_close_suffix(&self.close)
    }
}

/// BitBake's `NoProvider` suffix for close matches: `. Close matches:` and
/// the names sorted and deduplicated, one per line; nothing when empty.
pub fn provider_close_suffix(close: &[String]) -> String {
    let mut c: Vec<&str> = close.iter().map(String::as_str).collect();
    c.sort_unstable();
    c.dedup();
    close_hint(&c)
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.namespace {
            Namespace::Build => "PROVIDES",
            Namespace::Runtime => "RPROVIDES",
        };
        write!(f, "nothing {what} '{}'", self.name)?;
        if let Some(r) = &self.reason {
            write!(f, " ({r})")?;
        }
        if !self.wanted_by.is_empty() {
            let who: Vec<String> = self.wanted_by.iter().map(ToString::to_string).collect();
            write!(f, " ({})", who.join("; "))?;
        }
        Ok(())
    }
}

/// Why the task graph could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A target (or something it needs, transitively) has no provider.
    #[error(
        "{}; dependency chain: {}; add a recipe that provides it, correct the name, or list it in ASSUME_PROVIDED{}",
        .missing,
        .chain.join(" -> "),
        .missing.close_suffix()
    )]
    NoProvider {
        /// The name nobody provides, and who asked for it.
        missing: Missing,
        /// Names from the target down to the missing one.
        chain: Vec<String>,
    },
    /// Several providers are equally good and nothing prefers one.
    #[error(
        "multiple providers are available for {kind} '{name}': {}; {hint}",
        .providers.join(", ")
    )]
    Ambiguous {
        /// `build-time` or `runtime`.
        kind: &'static str,
        /// The name.
        name: String,
        /// `pn version (file)` of each eligible provider.
        providers: Vec<String>,
        /// What to set.
        hint: String,
    },
    /// A target names a task its recipe does not have.
    #[error("task {task} does not exist for target {target} ({file}){}", close_hint(.close))]
    NoSuchTargetTask {
        /// The target name.
        target: String,
        /// The requested task.
        task: String,
        /// The recipe file chosen for the target.
        file: String,
        /// Similar task names of that recipe (difflib, cutoff 0.7, best first).
        close: Vec<String>,
    },
    /// A `[depends]`/`[rdepends]` flag names a task the provider does not have.
    #[error(transparent)]
    NoSuchDepTask(Box<DepTaskError>),
    /// A `[depends]` entry is not of the form `name:task`.
    #[error(
        "{pn}:{task} at {origin}: the [{entry}] entry must contain exactly one ':' (write it as name:do_task)"
    )]
    BadDependsEntry {
        /// Recipe.
        pn: String,
        /// Task.
        task: String,
        /// Where.
        origin: String,
        /// The malformed entry (`flag: value`).
        entry: String,
    },
    /// Two versions of one PN would be built.
    #[error(
        "multiple versions of {pn} are due to be built ({}); only one version of a recipe can be built: set PREFERRED_VERSION_{pn} or do not depend on several versions",
        .files.join(" ")
    )]
    MultipleVersions {
        /// The PN.
        pn: String,
        /// The files.
        files: Vec<String>,
    },
    /// Two different recipes in the graph provide the same name.
    #[error(
        "multiple recipes are due to be built which each provide {name}: {}; depend on one of them only, or list {name} in BB_MULTI_PROVIDER_ALLOWED",
        .files.join(", ")
    )]
    MultipleProviders {
        /// The provided name.
        name: String,
        /// The recipe files.
        files: Vec<String>,
    },
    /// The graph has a cycle.
    #[error(transparent)]
    Cycle(#[from] CycleError),
    /// No target was given.
    #[error("nothing to build: no target given (set `target` in the configuration or name one on the command line)")]
    NoTargets,
}

/// `. Close matches:` and `close` in its order, one per line (BitBake's
/// layout); nothing when empty.
fn close_hint<S: AsRef<str>>(close: &[S]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        let lines: Vec<&str> = close.iter().map(AsRef::as_ref).collect();
        format!(". Close matches:\n  {}", lines.join("\n  "))
    }
}

/// A `[depends]`/`[rdepends]` entry whose provider lacks the named task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{pn}:{task}[{flag}] at {origin} asks for {name}:{dep_task}, but {dep_pn} ({dep_file}) has no task {dep_task}; fix the flag or add the task"
)]
pub struct DepTaskError {
    /// Recipe with the flag.
    pub pn: String,
    /// Task with the flag.
    pub task: String,
    /// `depends` or `rdepends`.
    pub flag: &'static str,
    /// Where the flag was set.
    pub origin: String,
    /// The requested name.
    pub name: String,
    /// The requested task.
    pub dep_task: String,
    /// The provider chosen for the name.
    pub dep_pn: String,
    /// Its file.
    pub dep_file: String,
}
