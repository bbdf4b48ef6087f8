//! A tiny recipe (`testdata/exec/meta-tiny`) through the real path of
//! `bitzel build`: `bitzel-meta` parses it, `bitzel-graph`'s runqueue drives
//! `BuildExecutor` with the native sandbox. First build: every task misses,
//! runs in the sandbox, and its output is captured (the staged tree holds what
//! the tasks wrote, prefunc and postfunc included). Second build, with another
//! `-j`: every task hits and nothing runs. Then a `[file-checksums]` input
//! changes: the tasks from `do_configure` on run again, the earlier ones hit.
//!
//! No root and no QEMU: the native sandbox uses unprivileged user namespaces.
//! `harness = false` so that this binary can be the sandbox helper
//! (`HelperExe::CurrentExe`): `main` hands over to it first thing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use bitzel_cache::{Cache, Digest};
use bitzel_exec::executor::{BuildExecutor, HostDirs, HostTools, TaskOutput};
use bitzel_graph::{run_with_outputs, Event, Outcome, RunOptions, TaskGraph};
use bitzel_sandbox::{BackendChoice, HelperExe, SandboxConfig};

fn main() {
    if bitzel_sandbox::is_helper_invocation() {
        bitzel_sandbox::helper_main();
    }
    let tests: &[(&str, fn())] = &[(
        "miss_sandbox_capture_then_hit_then_rerun_on_change",
        build_cycle,
    )];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        let start = Instant::now();
        let ok = std::panic::catch_unwind(f).is_ok();
        println!(
            "test {name} ... {} ({:.1}s)",
            if ok { "ok" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

/// What one build did: each task's outcome, by task name (`do_compile`).
struct Built {
    outcomes: BTreeMap<String, Outcome>,
    graph: TaskGraph,
    outputs: Vec<Option<TaskOutput>>,
}

impl Built {
    /// The tasks with `outcome`, sorted.
    fn with(&self, outcome: Outcome) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|(_, o)| **o == outcome)
            .map(|(t, _)| t.as_str())
            .collect()
    }
}

/// One `bitzel build tiny` over `checkout`, wired as `build_flow.rs` does.
fn build(checkout: &Path, work: &Path, cache: &Cache, jobs: usize) -> Built {
    let build_dir = work.join("build");
    let ws = common::load(checkout, &build_dir, "", BTreeMap::new(), Some(jobs));
    let graph = common::graph(&ws);
    let mut cfg = SandboxConfig::new(HelperExe::CurrentExe);
    cfg.scratch_dir = Some(work.join("sandbox-scratch"));
    fs::create_dir_all(work.join("sandbox-scratch")).unwrap();
    let (backend, _) = bitzel_sandbox::select(BackendChoice::Native, &cfg)
        .expect("the native sandbox must work here (unprivileged user namespaces + overlayfs)");
    let required: Vec<String> = common::HOSTTOOLS
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let set =
        bitzel_exec::hosttools::resolve(&required, &[], &std::env::var("PATH").unwrap()).unwrap();
    let tools_dir = build_dir.join("tmp/hosttools");
    set.link_into(&tools_dir).unwrap();
    let exec = BuildExecutor {
        no_network: true,
        timeout: None,
        explain_only: false,
        devshell: None,
        force: Default::default(),
        remote: None,
        ..BuildExecutor::new(
            &ws.recipes,
            cache,
            backend.as_ref(),
            HostDirs {
                build_dir: build_dir.clone(),
                dl_dir: build_dir.join("downloads"),
            },
            HostTools {
                dir: tools_dir,
                digest: set.digest().unwrap(),
                // The host root's own digest is covered by key_completeness and
                // scripts/test.d/45-host-root-key.sh; a fixed stand-in here.
                root_digest: Digest::of_bytes(b"host root"),
                root_paths: bitzel_sandbox::SandboxSpec::default_host_paths(),
                rootfs: None,
            },
        )
    };
    let opts = RunOptions {
        jobs,
        ..RunOptions::default()
    };
    let outcomes = Mutex::new(BTreeMap::new());
    let (summary, outputs) = run_with_outputs(&graph, &exec, &opts, &|e| {
        if let Event::Finished { task, outcome, .. } = e {
            outcomes.lock().unwrap().insert(task.task.clone(), *outcome);
        }
    });
    for (id, f) in &summary.failures {
        eprintln!(
            "{} failed: {}\n{}",
            graph.tasks[*id].label(),
            f.message,
            f.log_tail.clone().unwrap_or_default()
        );
    }
    assert!(
        summary.success(),
        "the build failed: {:?}",
        summary.failures
    );
    Built {
        outcomes: outcomes.into_inner().unwrap(),
        graph,
        outputs,
    }
}

/// The files of `tiny`'s sysroot layer (what `do_populate_sysroot` staged).
fn staged(cache: &Cache, b: &Built, dest: &Path) -> BTreeMap<String, String> {
    let id = b.graph.find("tiny", "do_populate_sysroot").unwrap();
    let layer = b.outputs[id].as_ref().unwrap().exported_sysroots["tiny"];
    cache.apply(&[layer], dest).unwrap();
    fs::read_dir(dest.join("usr/share/tiny"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let text = fs::read_to_string(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect()
}

/// The tasks that have a key (run in the sandbox or hit), sorted.
const KEYED: &[&str] = &[
    "do_compile",
    "do_configure",
    "do_install",
    "do_patch",
    "do_populate_sysroot",
    "do_unpack",
];

fn keyed(tasks: Vec<&str>) -> Vec<&str> {
    tasks.into_iter().filter(|t| KEYED.contains(t)).collect()
}

fn build_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let checkout = common::checkout(&tmp.path().join("checkout"));
    // As bitzel's binary does: under root, tasks run as an unprivileged uid
    // that must own the layers it writes through.
    let cache = Cache::open_with(
        &tmp.path().join("cache"),
        bitzel_cache::CacheOptions {
            layer_owner: bitzel_sandbox::sandbox_identity(),
            ..bitzel_cache::CacheOptions::default()
        },
    )
    .unwrap();

    // 1. Cold: every keyed task misses, runs in the sandbox, is captured.
    let b = build(&checkout, tmp.path(), &cache, 2);
    assert_eq!(keyed(b.with(Outcome::Executed)), KEYED, "{:?}", b.outcomes);
    assert_eq!(keyed(b.with(Outcome::Cached)), Vec::<&str>::new());
    let files = staged(&cache, &b, &tmp.path().join("staged-1"));
    assert_eq!(
        files["out.txt"],
        "hello from SRC_URI\nCONFIG_A=y\nCONFIG_B=y\nEXTRA=1\nhello from do_compile\npost\n"
    );
    assert_eq!(files["pre.txt"], "pre ran in /bitzel/work/tiny-1.0\n");
    let log = tmp.path().join("build/tmp/work/tiny/temp/log.do_compile");
    assert!(log.exists(), "no task log at {}", log.display());

    // 2. Warm, another -j: every keyed task hits; nothing runs.
    let b = build(&checkout, tmp.path(), &cache, 1);
    assert_eq!(keyed(b.with(Outcome::Cached)), KEYED, "{:?}", b.outcomes);
    assert_eq!(keyed(b.with(Outcome::Executed)), Vec::<&str>::new());
    fs::remove_file(&log).unwrap();

    // 3. A [file-checksums] input changes: configure and what follows re-run.
    let cfg = common::recipe_dir(&checkout).join("files/b.cfg");
    fs::write(cfg, "CONFIG_B=n\n").unwrap();
    let b = build(&checkout, tmp.path(), &cache, 2);
    assert_eq!(
        keyed(b.with(Outcome::Executed)),
        [
            "do_compile",
            "do_configure",
            "do_install",
            "do_populate_sysroot"
        ],
        "{:?}",
        b.outcomes
    );
    assert_eq!(keyed(b.with(Outcome::Cached)), ["do_patch", "do_unpack"]);
    assert!(log.exists(), "do_compile ran again but wrote no log");
    let files = staged(&cache, &b, &tmp.path().join("staged-3"));
    assert!(files["out.txt"].contains("\nCONFIG_B=n\n"), "{files:?}");

    // 4. One copy per blob: the layers the builds materialised hard-link
    // their blobs; after verify and gc the next build restores and hits.
    let s = cache.stats().unwrap();
    assert!(s.layers > 0, "{s:?}");
    assert!(
        s.disk_per_blob() <= 1.1,
        "disk per blob {}: {s:?}",
        s.disk_per_blob()
    );
    assert!(s.dedup_saved() > 0, "{s:?}");
    drop(b);
    let v = cache.verify().unwrap();
    assert!(v.is_clean(), "{v:?}");
    cache
        .gc(&bitzel_cache::GcOptions {
            max_bytes: u64::MAX,
            grace: std::time::Duration::ZERO,
        })
        .unwrap();
    let b = build(&checkout, tmp.path(), &cache, 2);
    assert_eq!(keyed(b.with(Outcome::Cached)), KEYED, "{:?}", b.outcomes);
    let files = staged(&cache, &b, &tmp.path().join("staged-4"));
    assert!(files["out.txt"].contains("\nCONFIG_B=n\n"), "{files:?}");
}
