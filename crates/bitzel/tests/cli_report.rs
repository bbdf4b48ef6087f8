//! The build record, `--timings`, `--trace` and `bitzel report`, through the
//! built binary, on a copy of `testdata/report/` (`--sandbox none`): the
//! record holds every task of the graph; its critical path is the longest
//! path this test computes itself from the recorded durations and
//! dependencies; the HTML holds every task and that path; the trace is
//! valid Chrome trace-event JSON; a re-run task says which input differed;
//! `BITZEL_BUILD_RECORDS` bounds how many records are kept (0: none).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::{repo_root, Run};

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    /// A copy of `testdata/report/` whose config names the core layer by
    /// absolute path (so a test can edit the recipes).
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let src = repo_root().join("testdata/report");
        let dst = tmp.path().join("report");
        copy_dir(&src, &dst);
        let yml = std::fs::read_to_string(src.join("project.yml")).unwrap();
        let core = repo_root().join("layers/meta-bitzel");
        let yml = yml.replace("../../layers/meta-bitzel", core.to_str().unwrap());
        std::fs::write(dst.join("project.yml"), yml).unwrap();
        Fixture { tmp }
    }
    fn yml(&self) -> PathBuf {
        self.tmp.path().join("report/project.yml")
    }
    /// `path` as bitzel prints it: relative to the directory it runs in.
    fn shown(&self, path: &Path) -> String {
        let tmp = self.tmp.path().canonicalize().unwrap();
        path.canonicalize()
            .unwrap()
            .strip_prefix(&tmp)
            .unwrap()
            .display()
            .to_string()
    }
    fn build_dir(&self) -> PathBuf {
        self.tmp.path().join("build")
    }
    fn records(&self) -> Vec<PathBuf> {
        let dir = self.build_dir().join("tmp/buildstats");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "json"));
        v.sort();
        v
    }
    fn bitzel(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitzel"));
        cmd.args(["--color", "never"])
            .args(args)
            .current_dir(self.tmp.path())
            .env_remove("BITZEL_LOG")
            .env_remove("BITZEL_BUILD_RECORDS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        Run::from(out)
    }
    fn build(&self, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let yml = self.yml();
        let b = self.build_dir();
        let c = self.tmp.path().join("cache");
        let mut args = vec![
            "build",
            yml.to_str().unwrap(),
            "--sandbox",
            "none",
            "--build-dir",
            b.to_str().unwrap(),
            "--cache-dir",
            c.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let r = self.bitzel(&args, env);
        assert_eq!(r.code, 0, "build failed:\n{}", r.stderr);
        r
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The longest path through the recorded graph, weighted by each task's
/// recorded duration (end - start; 0 for a task that never ran), computed
/// here by memoised depth-first search: (task ids first to last, length).
fn longest_path(tasks: &[Value]) -> (Vec<usize>, u64) {
    fn dur(t: &Value) -> u64 {
        match (t["start_us"].as_u64(), t["end_us"].as_u64()) {
            (Some(s), Some(e)) => e - s,
            _ => 0,
        }
    }
    fn best(
        i: usize,
        tasks: &[Value],
        memo: &mut HashMap<usize, (u64, Vec<usize>)>,
    ) -> (u64, Vec<usize>) {
        if let Some(v) = memo.get(&i) {
            return v.clone();
        }
        let mut top: (u64, Vec<usize>) = (0, Vec::new());
        for d in tasks[i]["deps"].as_array().unwrap() {
            let d = d.as_u64().unwrap() as usize;
            let cand = best(d, tasks, memo);
            if cand.0 > top.0 {
                top = cand;
            }
        }
        let mut path = top.1;
        path.push(i);
        let v = (top.0 + dur(&tasks[i]), path);
        memo.insert(i, v.clone());
        v
    }
    let mut memo = HashMap::new();
    let mut overall: (u64, Vec<usize>) = (0, Vec::new());
    for i in 0..tasks.len() {
        let c = best(i, tasks, &mut memo);
        if c.0 > overall.0 {
            overall = c;
        }
    }
    (overall.1, overall.0)
}

/// The record embedded in a report's HTML.
fn embedded_record(html: &str) -> Value {
    let start = html
        .find("<script type=\"application/json\" id=record>")
        .unwrap();
    let rest = &html[start..];
    let body = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    serde_json::from_str(body).unwrap()
}

/// Check `trace` against the Chrome trace-event format's JSON object form:
/// `traceEvents` is an array of complete events (`ph` "X") with a string
/// `name`, numeric `ts` and `dur` (microseconds, `dur` >= 0), integer `pid`
/// and `tid`, and an `args` object carrying the outcome. Returns the names.
fn check_trace_schema(trace: &Value) -> Vec<String> {
    let obj = trace.as_object().expect("a trace is a JSON object");
    let events = obj["traceEvents"]
        .as_array()
        .expect("traceEvents is an array");
    let mut names = Vec::new();
    for e in events {
        let e = e.as_object().expect("each event is an object");
        assert_eq!(e["ph"], "X", "complete events: {e:?}");
        assert!(e["name"].is_string(), "name: {e:?}");
        assert!(e["ts"].is_u64() || e["ts"].is_f64(), "ts: {e:?}");
        assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "dur: {e:?}");
        assert!(e["pid"].is_u64(), "pid: {e:?}");
        assert!(e["tid"].is_u64(), "tid: {e:?}");
        assert!(e["args"]["outcome"].is_string(), "args.outcome: {e:?}");
        names.push(e["name"].as_str().unwrap().to_string());
    }
    if let Some(unit) = obj.get("displayTimeUnit") {
        assert!(unit == "ms" || unit == "ns", "displayTimeUnit: {unit}");
    }
    names
}

#[test]
fn records_reports_and_traces_a_build() {
    let fx = Fixture::new();
    let yml = fx.yml();
    let trace_path = fx.tmp.path().join("trace.json");

    // The graph's tasks, as the dry run lists them.
    let dry = fx.build(&["-n"], &[]);
    let labels: BTreeSet<String> = dry.stdout.lines().map(str::to_string).collect();
    assert!(labels.contains("slow:do_compile"), "{labels:?}");
    assert!(fx.records().is_empty(), "a dry run writes no record");

    let first = fx.build(&["--timings", "--trace", trace_path.to_str().unwrap()], &[]);
    assert!(first.stderr.contains("critical path "), "{}", first.stderr);
    assert!(
        first.stderr.contains("; slowest: slow:do_compile "),
        "slow:do_compile is the slowest task:\n{}",
        first.stderr
    );
    let records = fx.records();
    assert_eq!(records.len(), 1);
    let record = read_json(&records[0]);
    let tasks = record["tasks"].as_array().unwrap();
    let recorded: BTreeSet<String> = tasks
        .iter()
        .map(|t| t["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(recorded, labels, "every task of the graph is in the record");
    for (i, t) in tasks.iter().enumerate() {
        assert_eq!(t["id"], i);
        let outcome = t["outcome"].as_str().unwrap();
        assert!(["executed", "cached", "noexec"].contains(&outcome), "{t}");
        assert!(
            t["slot"].as_u64().unwrap() < 2,
            "-j 2 has slots 0 and 1: {t}"
        );
        assert!(t["start_us"].as_u64().unwrap() <= t["end_us"].as_u64().unwrap());
        for d in t["deps"].as_array().unwrap() {
            let d = &tasks[d.as_u64().unwrap() as usize];
            assert!(
                d["end_us"].as_u64().unwrap() <= t["start_us"].as_u64().unwrap(),
                "a dependency ends before its dependent starts: {d} {t}"
            );
        }
    }
    let slow = tasks
        .iter()
        .find(|t| t["label"] == "slow:do_compile")
        .unwrap();
    assert!(slow["end_us"].as_u64().unwrap() - slow["start_us"].as_u64().unwrap() >= 1_000_000);
    assert!(slow["bytes_captured"].as_u64().unwrap() > 0, "{slow}");

    // The critical path: the longest path computed here.
    let (path, length) = longest_path(tasks);
    let recorded_path: Vec<usize> = record["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(record["critical_path_us"].as_u64().unwrap(), length);
    assert_eq!(recorded_path, path);
    let path_labels: Vec<&str> = path
        .iter()
        .map(|&i| tasks[i]["label"].as_str().unwrap())
        .collect();
    assert!(path_labels.contains(&"slow:do_compile"), "{path_labels:?}");
    assert!(path_labels.contains(&"top:do_compile"), "{path_labels:?}");

    // --timings: the HTML next to the record, printed.
    let html_path = records[0].with_extension("html");
    assert!(
        first
            .stderr
            .contains(&format!("timings: {}", fx.shown(&html_path))),
        "{}",
        first.stderr
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_eq!(embedded_record(&html), record, "the HTML embeds the record");
    for l in &labels {
        let row = format!("<tr data-task><td>{l}</td>");
        assert_eq!(
            html.matches(&row).count(),
            1,
            "{l} has one row in the task table"
        );
    }
    let ol = &html[html.find("<ol id=critical-path>").unwrap()..];
    let ol = &ol[..ol.find("</ol>").unwrap()];
    let listed: Vec<&str> = ol
        .split("<li data-id=")
        .skip(1)
        .map(|li| {
            li.split_once('>')
                .unwrap()
                .1
                .split(" <small>")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        listed, path_labels,
        "the HTML lists the critical path in order"
    );
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count(),
        "no address but the SVG namespace"
    );
    assert!(
        !html.contains("<script src"),
        "self-contained: no external script"
    );
    assert!(
        !html.contains("<link"),
        "self-contained: no external stylesheet"
    );

    // --trace: Chrome trace events, one per task that ran.
    let trace = read_json(&trace_path);
    let mut names = check_trace_schema(&trace);
    names.sort();
    assert_eq!(names, labels.iter().cloned().collect::<Vec<_>>());

    // A changed input: the re-run task says which.
    let slow_bb = fx
        .tmp
        .path()
        .join("report/meta-report/recipes-test/slow/slow_1.0.bb");
    let text = std::fs::read_to_string(&slow_bb).unwrap();
    std::fs::write(
        &slow_bb,
        text.replace("SLOW_SECONDS = \"1\"", "SLOW_SECONDS = \"0.2\""),
    )
    .unwrap();
    let keep2 = [("BITZEL_BUILD_RECORDS", "2")];
    fx.build(&[], &keep2);
    let second = read_json(fx.records().last().unwrap());
    let rerun = second["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "slow:do_compile")
        .unwrap();
    assert_eq!(rerun["outcome"], "executed");
    assert!(
        rerun["why"].as_str().unwrap().contains("sleep 0.2"),
        "why names the changed script line: {rerun}"
    );
    let base = second["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "base:do_install")
        .unwrap();
    assert_eq!(base["outcome"], "cached");

    // Kept: the newest 2; 0 writes none.
    fx.build(&[], &keep2);
    assert_eq!(fx.records().len(), 2);
    let newest = fx.records().last().unwrap().clone();
    fx.build(&[], &[("BITZEL_BUILD_RECORDS", "0")]);
    assert_eq!(fx.records().last().unwrap(), &newest);
    assert_eq!(fx.records().len(), 2);

    // `bitzel report`: the latest by default, or a named one.
    let b = fx.build_dir();
    let r = fx.bitzel(
        &[
            "report",
            yml.to_str().unwrap(),
            "--build-dir",
            b.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), fx.shown(&newest.with_extension("html")));
    let html = std::fs::read_to_string(newest.with_extension("html")).unwrap();
    assert!(html.contains("nothing ran: every task was cached or noexec"));
    let older = fx.records()[0]
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let out = fx.tmp.path().join("older.html");
    let r = fx.bitzel(
        &[
            "report",
            yml.to_str().unwrap(),
            &older,
            "--build-dir",
            b.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("sleep 0.2"),
        "the second build's report says why slow:do_compile ran"
    );
    let r = fx.bitzel(
        &[
            "report",
            yml.to_str().unwrap(),
            "nosuch",
            "--build-dir",
            b.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no build record \"nosuch\""),
        "{}",
        r.stderr
    );
}
