//! Drawing the runqueue's [`Event`]s: on a terminal an indicatif overall bar
//! plus one line per running task with its elapsed time; plain lines when
//! stderr is not a terminal (or with `-v`); one JSON object per line on stdout
//! with `--json` (each with an `"event"` field, the last `build_finished` with
//! `executed`, `cached`, `failed` and `wall_s`).
//!
//! Also the Ctrl-C handler that cancels a run ([`cancel_on_ctrl_c`]).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use bitzel_graph::{CancelToken, Event, RunSummary, TaskId};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Output;

/// How events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// indicatif bars on stderr.
    Bars,
    /// One line per task event on stderr.
    Plain,
    /// One JSON object per event on stdout.
    Json,
}

/// Consumes runqueue events and draws them. Shareable across the runqueue's
/// worker threads.
pub struct Progress {
    mode: Mode,
    quiet: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    mp: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    running: HashMap<TaskId, ProgressBar>,
    total: usize,
    done: usize,
    cached: usize,
}

impl Progress {
    /// Bars when stderr is a terminal and neither `-v` nor `-q` was given;
    /// plain lines otherwise; JSON lines when `json`.
    pub fn new(out: &Output, json: bool) -> Progress {
        let mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && out.verbose == 0 && !out.quiet {
            Mode::Bars
        } else {
            Mode::Plain
        };
        Progress::with_mode(mode, out.quiet)
    }

    /// A drawer in an explicit mode.
    pub fn with_mode(mode: Mode, quiet: bool) -> Progress {
        Progress {
            mode,
            quiet,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Handle one event (called from the runqueue's threads).
    pub fn event(&self, e: &Event<'_>) {
        match self.mode {
            Mode::Json => {
                let line = e.to_json().to_string();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Mode::Plain => self.plain(e),
            Mode::Bars => self.bars(e),
        }
    }

    fn plain(&self, e: &Event<'_>) {
        let mut st = self.lock();
        match e {
            Event::BuildStarted {
                total,
                jobs,
                dry_run,
            } => {
                st.total = *total;
                if !self.quiet && !dry_run {
                    eprintln!("running {total} tasks, {jobs} at a time");
                }
            }
            Event::Planned { task, .. } => println!("{}", task.label()),
            Event::Queued { .. } => {}
            Event::Started { task } => {
                if !self.quiet {
                    eprintln!("[{}/{}] started  {}", st.done, st.total, task.label());
                }
            }
            Event::Finished {
                task,
                outcome,
                duration,
            } => {
                st.done += 1;
                if !self.quiet {
                    eprintln!(
                        "[{}/{}] {:<8} {} ({})",
                        st.done,
                        st.total,
                        outcome.as_str(),
                        task.label(),
                        secs(*duration)
                    );
                }
            }
            Event::Failed {
                task,
                failure,
                duration,
            } => {
                st.done += 1;
                eprintln!(
                    "[{}/{}] FAILED   {} ({}): {}",
                    st.done,
                    st.total,
                    task.label(),
                    secs(*duration),
                    failure.message
                );
                if let Some(tail) = &failure.log_tail {
                    for line in tail.lines() {
                        eprintln!("    | {line}");
                    }
                }
            }
            Event::BuildFinished { summary } => {
                if !self.quiet || !summary.success() {
                    eprintln!("{}", summary_line(summary));
                }
            }
        }
    }

    fn bars(&self, e: &Event<'_>) {
        let mut st = self.lock();
        match e {
            Event::BuildStarted { total, dry_run, .. } => {
                st.total = *total;
                if *dry_run {
                    return;
                }
                let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                let bar = mp.add(ProgressBar::new(*total as u64));
                if let Ok(style) = ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} tasks {msg} [{elapsed}]",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.enable_steady_tick(Duration::from_millis(200));
                st.overall = Some(bar);
                st.mp = Some(mp);
            }
            Event::Planned { task, .. } => println!("{}", task.label()),
            Event::Queued { .. } => {}
            Event::Started { task } => {
                let Some(mp) = &st.mp else { return };
                let pb = mp.add(ProgressBar::new_spinner());
                if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} {elapsed}") {
                    pb.set_style(style);
                }
                pb.set_message(task.label());
                pb.enable_steady_tick(Duration::from_millis(120));
                st.running.insert(task.id, pb);
            }
            Event::Finished { task, outcome, .. } => {
                if let Some(pb) = st.running.remove(&task.id) {
                    pb.finish_and_clear();
                    if let Some(mp) = &st.mp {
                        mp.remove(&pb);
                    }
                }
                st.done += 1;
                if *outcome == bitzel_graph::Outcome::Cached {
                    st.cached += 1;
                }
                let msg = format!("({} cached)", st.cached);
                if let Some(bar) = &st.overall {
                    bar.inc(1);
                    bar.set_message(msg);
                }
            }
            Event::Failed {
                task,
                failure,
                duration,
            } => {
                if let Some(pb) = st.running.remove(&task.id) {
                    pb.finish_and_clear();
                    if let Some(mp) = &st.mp {
                        mp.remove(&pb);
                    }
                }
                st.done += 1;
                let mut text = format!(
                    "FAILED {} ({}): {}",
                    task.label(),
                    secs(*duration),
                    failure.message
                );
                if let Some(tail) = &failure.log_tail {
                    for line in tail.lines() {
                        text.push_str("\n    | ");
                        text.push_str(line);
                    }
                }
                match &st.mp {
                    Some(mp) => {
                        let _ = mp.println(text);
                    }
                    None => eprintln!("{text}"),
                }
                if let Some(bar) = &st.overall {
                    bar.inc(1);
                }
            }
            Event::BuildFinished { summary } => {
                for (_, pb) in st.running.drain() {
                    pb.finish_and_clear();
                }
                if let Some(bar) = st.overall.take() {
                    bar.finish_and_clear();
                }
                st.mp = None;
                if !self.quiet || !summary.success() {
                    eprintln!("{}", summary_line(summary));
                }
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `N executed, N cached, N noexec, N failed, N not run in 1.2s`.
pub fn summary_line(s: &RunSummary) -> String {
    if s.dry_run {
        return format!("{} tasks would run", s.total);
    }
    let mut line = format!(
        "{} executed, {} cached, {} noexec, {} failed",
        s.executed, s.cached, s.noexec, s.failed
    );
    if s.not_run > 0 {
        line.push_str(&format!(", {} not run", s.not_run));
    }
    line.push_str(&format!(" in {}", secs(s.wall)));
    if s.cancelled {
        line.push_str(" (cancelled)");
    }
    line
}

/// Cancel `token` on Ctrl-C (SIGINT): no new task starts and the
/// executor stops running ones; the caller exits 130 when the summary says
/// `cancelled`. A second Ctrl-C exits at once with 130.
#[allow(dead_code)] // used by `bitzel build`
pub fn cancel_on_ctrl_c(token: &CancelToken) -> anyhow::Result<()> {
    let token = token.clone();
    ctrlc::set_handler(move || {
        if token.is_cancelled() {
            std::process::exit(130);
        }
        token.cancel();
    })
    .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn summary_line_counts() {
        let s = RunSummary {
            total: 5,
            executed: 2,
            cached: 1,
            noexec: 1,
            failed: 1,
            wall: Duration::from_millis(1500),
            ..RunSummary::default()
        };
        assert_eq!(
            summary_line(&s),
            "2 executed, 1 cached, 1 noexec, 1 failed in 1.5s"
        );
    }
}
