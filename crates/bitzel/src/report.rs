//! The HTML timing report of a build record (`bitzel build --timings`,
//! `bitzel report`): one self-contained file, no network. The record is
//! embedded as JSON; the summary, slowest tasks, critical path and the reasons
//! tasks re-ran are plain HTML; a small script draws the Gantt timeline (one
//! row per worker slot, one SVG `rect.bar` per task that ran, coloured by
//! outcome, the critical path outlined).

use std::fmt::Write as _;

use crate::buildstats::{BuildRecord, TaskRecord};

/// Escape text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn secs(us: u64) -> String {
    format!("{:.2}s", us as f64 / 1e6)
}

/// The record as JSON safe inside a `<script>` element (no `<` at all:
/// it only occurs in strings, where `\u003c` means the same).
fn embedded_json(record: &BuildRecord) -> String {
    serde_json::to_string(record)
        .unwrap_or_else(|_| "null".to_string())
        .replace('<', "\\u003c")
}

const STYLE: &str = include_str!("report.css");

const SCRIPT: &str = include_str!("report.js");

fn task_rows(s: &mut String, tasks: &[&TaskRecord]) {
    s.push_str("<table><tr><th>task</th><th>outcome</th><th>time</th><th>slot</th></tr>\n");
    for t in tasks {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            escape(&t.label),
            escape(&t.outcome),
            secs(t.duration_us()),
            t.slot.map_or(String::new(), |s| s.to_string()),
        );
    }
    s.push_str("</table>\n");
}

fn opt_num(v: Option<u64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// Every task of the graph, in the order they started (never started last).
fn all_tasks(s: &mut String, record: &BuildRecord) {
    let mut tasks: Vec<&TaskRecord> = record.tasks.iter().collect();
    tasks.sort_by_key(|t| (t.start_us.is_none(), t.start_us, t.id));
    s.push_str("<h2>All tasks</h2>\n<table id=tasks><tr><th>task</th><th>outcome</th><th>waited</th><th>start</th><th>time</th><th>slot</th><th>bytes captured</th><th>peak memory</th></tr>\n");
    for t in tasks {
        let waited = match (t.queued_us, t.start_us) {
            (Some(q), Some(st)) => secs(st.saturating_sub(q)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "<tr data-task><td>{}</td><td>{}</td><td class=num>{waited}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            escape(&t.label),
            escape(&t.outcome),
            t.start_us.map_or(String::new(), secs),
            secs(t.duration_us()),
            opt_num(t.slot.map(|s| s as u64)),
            opt_num(t.bytes_captured),
            opt_num(t.memory_peak),
        );
    }
    s.push_str("</table>\n");
}

/// The report of `record` as one HTML document; `title` names the build.
pub fn render(record: &BuildRecord, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>bitzel build {}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    );
    let _ = writeln!(s, "<h1>bitzel build {}</h1>", escape(title));
    let looked_up = record.executed + record.cached;
    let hit_rate = if looked_up == 0 {
        "n/a".to_string()
    } else {
        format!("{:.0}%", 100.0 * record.cached as f64 / looked_up as f64)
    };
    let _ = writeln!(
        s,
        "<p id=summary>{} tasks: {} executed, {} cached, {} noexec, {} failed, {} not run{}. Wall time <b>{}</b>, critical path <b>{}</b>, {} slots. Cache hit rate <b id=hitrate>{hit_rate}</b>.</p>",
        record.tasks.len(),
        record.executed,
        record.cached,
        record.noexec,
        record.failed,
        record.not_run,
        if record.cancelled { " (cancelled)" } else { "" },
        secs(record.wall_us),
        secs(record.critical_path_us),
        record.jobs,
    );
    s.push_str("<p class=legend><span class=o-executed>executed</span><span class=o-cached>cached</span><span class=o-noexec>noexec</span><span class=o-failed>failed</span><span class=crit-key style=\"color:#1c3faa\">critical path</span></p>\n");
    s.push_str("<h2>Timeline</h2>\n<div id=timeline></div><div id=tip></div>\n");

    let mut slow: Vec<&TaskRecord> = record
        .tasks
        .iter()
        .filter(|t| t.start_us.is_some())
        .collect();
    slow.sort_by_key(|t| (std::cmp::Reverse(t.duration_us()), t.id));
    slow.truncate(10);
    s.push_str("<h2>Slowest tasks</h2>\n<div id=slowest>");
    task_rows(&mut s, &slow);
    s.push_str("</div>\n");

    let crit: Vec<&TaskRecord> = record
        .critical_path
        .iter()
        .filter_map(|&id| record.tasks.get(id))
        .collect();
    let _ = writeln!(
        s,
        "<h2>Critical path ({})</h2>\n<ol id=critical-path>",
        secs(record.critical_path_us)
    );
    for t in &crit {
        let _ = writeln!(
            s,
            "<li data-id={}>{} <small>{} {}</small></li>",
            t.id,
            escape(&t.label),
            escape(&t.outcome),
            secs(t.duration_us())
        );
    }
    s.push_str("</ol>\n");

    s.push_str("<h2>Why tasks ran</h2>\n<table id=why><tr><th>task</th><th>first input that differed</th></tr>\n");
    let mut any = false;
    for t in record.tasks.iter().filter(|t| t.outcome == "executed") {
        any = true;
        let why = t.why.as_deref().unwrap_or("(not recorded)");
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td><pre class=why>{}</pre></td></tr>",
            escape(&t.label),
            escape(why)
        );
    }
    if !any {
        s.push_str("<tr><td colspan=2>nothing ran: every task was cached or noexec</td></tr>\n");
    }
    s.push_str("</table>\n");
    all_tasks(&mut s, record);
    let failed: Vec<&TaskRecord> = record
        .tasks
        .iter()
        .filter(|t| t.outcome == "failed")
        .collect();
    if !failed.is_empty() {
        s.push_str("<h2>Failures</h2>\n<table>");
        for t in failed {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td><pre class=why>{}</pre></td></tr>",
                escape(&t.label),
                escape(t.error.as_deref().unwrap_or(""))
            );
        }
        s.push_str("</table>\n");
    }
    let _ = write!(
        s,
        "<script type=\"application/json\" id=record>{}</script>\n<script>{SCRIPT}</script>\n</body></html>\n",
        embedded_json(record)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
