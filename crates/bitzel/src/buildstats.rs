//! The record every `bitzel build` writes of itself (BitBake's buildstats):
//! each task's dependencies, when it was queued, started and ended (relative
//! to the start of the run), its outcome, the worker slot it ran on, what the
//! executor measured of it, and the critical path. Kept as
//! `<build>/tmp/buildstats/<unix-ms>-<pid>.json`, the newest
//! `bitzel: build_records` (default 20, `BITZEL_BUILD_RECORDS` overrides, 0
//! writes none). `bitzel report` and `--timings` render it as HTML
//! ([`crate::report`]); `--trace` writes it in Chrome's trace-event format.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bitzel_graph::{Event, TaskGraph, TaskId};
use serde::{Deserialize, Serialize};

/// Records kept when neither the config nor the environment says.
pub const DEFAULT_RECORDS: usize = 20;
/// The environment variable that overrides `bitzel: build_records`.
pub const RECORDS_ENV: &str = "BITZEL_BUILD_RECORDS";

/// One build, as written to disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    /// Format version of this file.
    pub version: u32,
    /// When the run started (milliseconds since the Unix epoch).
    pub started_unix_ms: u64,
    /// The process's command line.
    pub command: Vec<String>,
    /// Parallel slots.
    pub jobs: usize,
    /// Wall time of the run (the runqueue's), microseconds.
    pub wall_us: u64,
    /// Task counts.
    pub executed: usize,
    /// Restored from a cache.
    pub cached: usize,
    /// `[noexec]` tasks.
    pub noexec: usize,
    /// Failed tasks.
    pub failed: usize,
    /// Tasks never started.
    pub not_run: usize,
    /// The run was cancelled.
    pub cancelled: bool,
    /// Every task of the graph, indexed by task id.
    pub tasks: Vec<TaskRecord>,
    /// Task ids along the critical path, first to last.
    pub critical_path: Vec<usize>,
    /// Sum of the durations along the critical path, microseconds.
    pub critical_path_us: u64,
}

/// One task of a [`BuildRecord`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskRecord {
    /// Its task id (index in [`BuildRecord::tasks`]).
    pub id: usize,
    /// `pn:do_task`.
    pub label: String,
    /// Ids of the tasks it depends on.
    pub deps: Vec<usize>,
    /// `executed`, `cached`, `noexec`, `failed` or `not_run`.
    pub outcome: String,
    /// When all its dependencies were done (µs after the start).
    pub queued_us: Option<u64>,
    /// When it got a slot (µs after the start).
    pub start_us: Option<u64>,
    /// When it finished or failed (µs after the start).
    pub end_us: Option<u64>,
    /// The worker slot (0-based) it ran on.
    pub slot: Option<usize>,
    /// Bytes of file content captured from its output (tasks that ran).
    pub bytes_captured: Option<u64>,
    /// Peak memory of its sandbox, where the sandbox measured it.
    pub memory_peak: Option<u64>,
    /// Why it ran: the first input that differed from the closest earlier
    /// cache entry (what `bitzel explain` says first), for executed tasks.
    pub why: Option<String>,
    /// The failure message of a failed task.
    pub error: Option<String>,
}

impl TaskRecord {
    /// Its time in the executor, microseconds (0 if it never ran).
    pub fn duration_us(&self) -> u64 {
        match (self.start_us, self.end_us) {
            (Some(s), Some(e)) => e.saturating_sub(s),
            _ => 0,
        }
    }
}

#[derive(Default)]
struct Seen {
    queued: Option<Duration>,
    started: Option<Duration>,
    ended: Option<Duration>,
    slot: Option<usize>,
    outcome: Option<&'static str>,
    error: Option<String>,
}

/// Collects the runqueue's events (called from its worker threads). The
/// worker slot of a task is the runqueue thread that emitted its `Started`
/// event (each of the `jobs` workers runs one task at a time), numbered in
/// order of first appearance.
pub struct Recorder {
    start: Instant,
    started_unix_ms: u64,
    state: Mutex<(HashMap<ThreadId, usize>, HashMap<TaskId, Seen>)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// Start recording now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            started_unix_ms: bitzel_cache::now_unix_ms(),
            state: Mutex::new((HashMap::new(), HashMap::new())),
        }
    }

    /// Take in one event.
    pub fn event(&self, e: &Event<'_>) {
        let now = self.start.elapsed();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (threads, seen) = &mut *st;
        match e {
            Event::Queued { task } => seen.entry(task.id).or_default().queued = Some(now),
            Event::Started { task } => {
                let next = threads.len();
                let slot = *threads.entry(std::thread::current().id()).or_insert(next);
                let s = seen.entry(task.id).or_default();
                s.started = Some(now);
                s.slot = Some(slot);
            }
            Event::Finished { task, outcome, .. } => {
                let s = seen.entry(task.id).or_default();
                s.ended = Some(now);
                s.outcome = Some(outcome.as_str());
            }
            Event::Failed { task, failure, .. } => {
                let s = seen.entry(task.id).or_default();
                s.ended = Some(now);
                s.outcome = Some("failed");
                s.error = Some(failure.message.clone());
            }
            Event::BuildStarted { .. } | Event::Planned { .. } | Event::BuildFinished { .. } => {}
        }
    }

    /// The record of the finished run: `stats` gives what the executor
    /// measured of a task by label, `why` why an executed task ran.
    pub fn finish(
        self,
        graph: &TaskGraph,
        summary: &bitzel_graph::RunSummary,
        jobs: usize,
        stats: &HashMap<String, bitzel_exec::executor::TaskStats>,
        why: &HashMap<String, String>,
    ) -> BuildRecord {
        let (_, mut seen) = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        let us = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let tasks: Vec<TaskRecord> = graph
            .tasks
            .iter()
            .map(|t| {
                let s = seen.remove(&t.id).unwrap_or_default();
                let label = t.label();
                let measured = stats.get(&label).cloned().unwrap_or_default();
                TaskRecord {
                    id: t.id,
                    deps: graph.deps(t.id).to_vec(),
                    outcome: s.outcome.unwrap_or("not_run").to_string(),
                    queued_us: us(s.queued),
                    start_us: us(s.started),
                    end_us: us(s.ended),
                    slot: s.slot,
                    bytes_captured: measured.bytes_captured,
                    memory_peak: measured.memory_peak,
                    why: why.get(&label).cloned(),
                    error: s.error,
                    label,
                }
            })
            .collect();
        let (critical_path, critical_path_us) = critical_path(&tasks);
        BuildRecord {
            version: 1,
            started_unix_ms: self.started_unix_ms,
            command: std::env::args().collect(),
            jobs,
            wall_us: u64::try_from(summary.wall.as_micros()).unwrap_or(u64::MAX),
            executed: summary.executed,
            cached: summary.cached,
            noexec: summary.noexec,
            failed: summary.failed,
            not_run: summary.not_run,
            cancelled: summary.cancelled,
            tasks,
            critical_path,
            critical_path_us,
        }
    }
}

/// The longest chain of dependencies, weighted by each task's duration:
/// its task ids (first to last) and its length in microseconds. Ties go to
/// the lower task id, so the same record gives the same path.
pub fn critical_path(tasks: &[TaskRecord]) -> (Vec<usize>, u64) {
    let n = tasks.len();
    // Kahn's order over the record itself (ids out of range are ignored).
    let mut pending: Vec<usize> = tasks
        .iter()
        .map(|t| t.deps.iter().filter(|&&d| d < n).count())
        .collect();
    let mut rdeps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, t) in tasks.iter().enumerate() {
        for &d in t.deps.iter().filter(|&&d| d < n) {
            rdeps[d].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut longest = vec![0u64; n];
    let mut via: Vec<Option<usize>> = vec![None; n];
    while let Some(i) = ready.pop() {
        let base = tasks[i]
            .deps
            .iter()
            .filter(|&&d| d < n)
            .map(|&d| (longest[d], std::cmp::Reverse(d)))
            .max();
        longest[i] = tasks[i].duration_us() + base.map_or(0, |(l, _)| l);
        via[i] = base.map(|(_, std::cmp::Reverse(d))| d);
        for &r in &rdeps[i] {
            pending[r] -= 1;
            if pending[r] == 0 {
                ready.push(r);
            }
        }
    }
    let Some(end) = (0..n).max_by_key(|&i| (longest[i], std::cmp::Reverse(i))) else {
        return (Vec::new(), 0);
    };
    let mut path = vec![end];
    let mut at = end;
    while let Some(p) = via[at] {
        path.push(p);
        at = p;
    }
    path.reverse();
    (path, longest[end])
}

/// How many records to keep: `BITZEL_BUILD_RECORDS`, else the config's
/// `bitzel: build_records`, else [`DEFAULT_RECORDS`].
pub fn records_to_keep(configured: Option<usize>) -> anyhow::Result<usize> {
    match std::env::var(RECORDS_ENV) {
        Ok(v) => v.trim().parse::<usize>().with_context(|| {
            format!("{RECORDS_ENV}={v:?} is not a whole number (0 keeps no build records)")
        }),
        Err(_) => Ok(configured.unwrap_or(DEFAULT_RECORDS)),
    }
}

/// Where a project's build records live.
pub fn records_dir(build_dir: &Path) -> PathBuf {
    build_dir.join("tmp").join("buildstats")
}

/// The file stem of a record: `<unix-ms>-<pid>` (sorts by time).
pub fn stem(record: &BuildRecord) -> String {
    format!("{:013}-{}", record.started_unix_ms, std::process::id())
}

/// Write `record` as `<dir>/<stem>.json` and remove the oldest records (and
/// their HTML reports) beyond `keep`. Returns the file written.
pub fn write(dir: &Path, record: &BuildRecord, keep: usize) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.json", stem(record)));
    let text = serde_json::to_vec(record)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let records = list(dir)?;
    let excess = records.len().saturating_sub(keep);
    for old in &records[..excess] {
        let _ = std::fs::remove_file(old);
        let _ = std::fs::remove_file(old.with_extension("html"));
    }
    Ok(path)
}

/// The record files in `dir`, oldest first.
pub fn list(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Read a record file.
pub fn read(path: &Path) -> anyhow::Result<BuildRecord> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a bitzel build record", path.display()))
}

/// The record as Chrome trace events (`--trace`): one complete event
/// (`"ph": "X"`) per task that ran, `ts`/`dur` in microseconds, `pid` 1 and
/// `tid` its worker slot, with its outcome in `args`; Perfetto and
/// chrome://tracing open it.
pub fn chrome_trace(record: &BuildRecord) -> serde_json::Value {
    let crit: std::collections::HashSet<usize> = record.critical_path.iter().copied().collect();
    let events: Vec<serde_json::Value> = record
        .tasks
        .iter()
        .filter_map(|t| {
            let start = t.start_us?;
            Some(serde_json::json!({
                "name": t.label,
                "cat": t.outcome,
                "ph": "X",
                "ts": start,
                "dur": t.duration_us(),
                "pid": 1,
                "tid": t.slot.unwrap_or(0),
                "args": {
                    "outcome": t.outcome,
                    "critical_path": crit.contains(&t.id),
                    "why": t.why,
                },
            }))
        })
        .collect();
    serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}

/// `critical path 1.2s of 2.0s wall; slowest: a 0.8s, b 0.3s, c 0.1s`.
pub fn summary_line(record: &BuildRecord) -> String {
    let secs = |us: u64| format!("{:.1}s", us as f64 / 1e6);
    let mut slow: Vec<&TaskRecord> = record
        .tasks
        .iter()
        .filter(|t| t.start_us.is_some())
        .collect();
    slow.sort_by_key(|t| (std::cmp::Reverse(t.duration_us()), t.id));
    let names: Vec<String> = slow
        .iter()
        .take(5)
        .map(|t| format!("{} {}", t.label, secs(t.duration_us())))
        .collect();
    let mut line = format!(
        "critical path {} of {} wall",
        secs(record.critical_path_us),
        secs(record.wall_us)
    );
    if !names.is_empty() {
        line.push_str("; slowest: ");
        line.push_str(&names.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: usize, deps: &[usize], start: u64, end: u64) -> TaskRecord {
        TaskRecord {
            id,
            label: format!("t{id}:do_x"),
            deps: deps.to_vec(),
            outcome: "executed".into(),
            start_us: Some(start),
            end_us: Some(end),
            ..TaskRecord::default()
        }
    }

    #[test]
    fn critical_path_follows_the_longest_weighted_chain() {
        // 0 (10) -> 1 (5) -> 3 (1); 0 -> 2 (20) -> 3.
        let tasks = vec![
            task(0, &[], 0, 10),
            task(1, &[0], 10, 15),
            task(2, &[0], 10, 30),
            task(3, &[1, 2], 30, 31),
        ];
        assert_eq!(critical_path(&tasks), (vec![0, 2, 3], 31));
        assert_eq!(critical_path(&[]), (Vec::new(), 0));
    }

    #[test]
    fn pruning_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = BuildRecord {
            version: 1,
            started_unix_ms: 1,
            command: vec![],
            jobs: 1,
            wall_us: 0,
            executed: 0,
            cached: 0,
            noexec: 0,
            failed: 0,
            not_run: 0,
            cancelled: false,
            tasks: vec![],
            critical_path: vec![],
            critical_path_us: 0,
        };
        for ms in 1..=4 {
            r.started_unix_ms = ms;
            write(dir.path(), &r, 2).unwrap();
        }
        let left = list(dir.path()).unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(read(&left[1]).unwrap().started_unix_ms, 4);
        assert_eq!(read(&left[0]).unwrap().started_unix_ms, 3);
    }
}
