//! Scheduler benchmark: a generated graph of 10,000 no-op tasks (average fan-in
//! 4) through an in-memory executor.
//!
//! Prints:
//! - scheduling overhead per task (wall time / tasks with a no-op executor) for
//!   `-j 1` and `-j 2` (target: under 20 µs per task);
//! - with tasks that sleep for a fixed time, `-j 2` slot utilisation, the share
//!   of time a slot sat idle while a task was ready ("starvation"), and the
//!   speed-up over `-j 1` measured in the same run.
//!
//! `cargo bench -p bitzel-benches --bench scheduler [-- --tasks N --sleep-us N]`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bitzel_graph::{
    run, CancelToken, Event, Executor, Outcome, RunOptions, TaskFailure, TaskGraph, TaskNode,
    TaskResult,
};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n` tasks; each depends on 4 distinct earlier tasks (fewer at the start)
/// chosen mostly from a recent window, so the graph is deep but has parallelism.
fn generate(n: usize, fan_in: usize) -> TaskGraph {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tasks = Vec::with_capacity(n);
    let mut deps = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(TaskNode::new(
            i,
            i / 10,
            format!("r{}", i / 10),
            format!("do_t{}", i % 10),
        ));
        let mut d = Vec::new();
        let want = fan_in.min(i);
        while d.len() < want {
            let window = i.min(200);
            let x = i - 1 - rng.below(window);
            if !d.contains(&x) {
                d.push(x);
            }
        }
        deps.push(d);
    }
    TaskGraph::new(tasks, Vec::new(), deps).expect("generated graph is acyclic")
}

struct NoOp;

impl Executor for NoOp {
    type Output = ();
    fn execute(
        &self,
        _task: &TaskNode,
        _deps: &[(&TaskNode, &())],
        _cancel: &CancelToken,
    ) -> Result<TaskResult<()>, TaskFailure> {
        Ok(TaskResult {
            output: (),
            outcome: Outcome::Executed,
        })
    }
}

/// Sleeps: occupies a slot without needing a CPU, so the figures measure the
/// scheduler, not how busy the machine's cores are.
struct Sleep(Duration);

impl Executor for Sleep {
    type Output = ();
    fn execute(
        &self,
        _task: &TaskNode,
        _deps: &[(&TaskNode, &())],
        _cancel: &CancelToken,
    ) -> Result<TaskResult<()>, TaskFailure> {
        std::thread::sleep(self.0);
        Ok(TaskResult {
            output: (),
            outcome: Outcome::Executed,
        })
    }
}

fn opts(jobs: usize) -> RunOptions {
    RunOptions {
        jobs,
        ..RunOptions::default()
    }
}

/// Tracks ready/running counts from events and integrates the time during
/// which a slot was free while a task was ready.
struct Tracker {
    jobs: usize,
    state: Mutex<TrackState>,
}

struct TrackState {
    ready: usize,
    running: usize,
    last: Instant,
    starved: Duration,
}

impl Tracker {
    fn new(jobs: usize) -> Self {
        Tracker {
            jobs,
            state: Mutex::new(TrackState {
                ready: 0,
                running: 0,
                last: Instant::now(),
                starved: Duration::ZERO,
            }),
        }
    }
    fn on(&self, e: &Event<'_>) {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        if s.ready > 0 && s.running < self.jobs {
            let d = now - s.last;
            s.starved += d;
        }
        s.last = now;
        match e {
            Event::Queued { .. } => s.ready += 1,
            Event::Started { .. } => {
                s.ready -= 1;
                s.running += 1;
            }
            Event::Finished { .. } | Event::Failed { .. } => s.running -= 1,
            _ => {}
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = arg("--tasks", 10_000);
    let sleep_us = arg("--sleep-us", 500) as u64;
    let gen_start = Instant::now();
    let g = generate(n, 4);
    println!(
        "scheduler: {} tasks, {} edges (average fan-in {:.2}), generated in {:.1} ms",
        g.len(),
        g.edge_count(),
        g.edge_count() as f64 / g.len() as f64,
        gen_start.elapsed().as_secs_f64() * 1e3
    );

    // Scheduling overhead: no-op tasks, best of 5.
    for jobs in [1, 2] {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let s = run(&g, &NoOp, &opts(jobs), &|_| {});
            assert!(s.success());
            best = best.min(s.wall);
        }
        let per_task = best.as_secs_f64() * 1e6 / n as f64;
        println!(
            "  no-op -j {jobs}: {:8.2} ms wall, {per_task:6.2} µs scheduling overhead per task (target < 20 µs: {})",
            best.as_secs_f64() * 1e3,
            if per_task < 20.0 { "ok" } else { "MISSED" }
        );
    }

    // Utilisation: sleeping tasks on a smaller prefix of the graph, -j 1 vs -j 2.
    let m = (n / 10).clamp(100.min(n), n);
    let g2 = generate(m, 4);
    let spin = Sleep(Duration::from_micros(sleep_us));
    let _warm_up = run(&g2, &spin, &opts(2), &|_| {});
    let one = run(&g2, &spin, &opts(1), &|_| {});
    let tracker = Tracker::new(2);
    let two = run(&g2, &spin, &opts(2), &|e| tracker.on(e));
    let starved = tracker.state.lock().unwrap().starved;
    let util = two.busy.as_secs_f64() / (2.0 * two.wall.as_secs_f64());
    println!(
        "  {m} tasks sleeping {sleep_us} µs: -j 1 {:.1} ms, -j 2 {:.1} ms (speed-up {:.2}x of 2.00x ideal)",
        one.wall.as_secs_f64() * 1e3,
        two.wall.as_secs_f64() * 1e3,
        one.wall.as_secs_f64() / two.wall.as_secs_f64()
    );
    println!(
        "  -j 2 utilisation {:.1}% of both slots; a slot was idle while a task was ready for {:.2} ms ({:.2}% of wall)",
        util * 100.0,
        starved.as_secs_f64() * 1e3,
        starved.as_secs_f64() * 100.0 / two.wall.as_secs_f64()
    );
}
