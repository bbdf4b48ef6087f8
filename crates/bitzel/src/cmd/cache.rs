//! `bitzel cache stats | verify | gc`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bitzel_cache::{default_cache_dir, parse_size, Cache, GcOptions};

use crate::output::Output;

/// Arguments of `bitzel cache`.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// The cache directory. Default: the project's (`bitzel: cache_dir:`)
    /// when a config is given, else `$BITZEL_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/bitzel` or `~/.cache/bitzel`.
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: CacheAction,
}

/// The `bitzel cache` sub-verbs.
#[derive(Debug, clap::Subcommand)]
pub enum CacheAction {
    /// Size, entries, layers and the hit rate of recent builds.
    Stats {
        /// A project configuration (machine.yml): use its cache directory,
        /// as `bitzel build` does.
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rehash every blob, check every entry and layer, remove what is
    /// broken and rebuild the index. Waits for running builds' current
    /// steps; leaves what they hold alone.
    Verify {
        /// A project configuration (machine.yml): use its cache directory.
        config: Option<PathBuf>,
    },
    /// Evict least-recently-used entries until the cache fits in SIZE.
    /// Never removes what a running build holds; waits for its current step.
    Gc {
        /// A project configuration (machine.yml): use its cache directory.
        config: Option<PathBuf>,
        /// Target size, e.g. `10G`, `500M` (powers of 1024).
        #[arg(long, value_name = "SIZE")]
        max_size: String,
        /// Keep unreferenced blobs younger than this many seconds (a
        /// running build may still be recording them).
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        grace: u64,
    },
}

impl CacheAction {
    fn config(&self) -> Option<&Path> {
        match self {
            CacheAction::Stats { config, .. }
            | CacheAction::Verify { config }
            | CacheAction::Gc { config, .. } => config.as_deref(),
        }
    }
}

/// The cache directory `bitzel cache` works on: `--cache-dir`; else the
/// project's, as `bitzel build` would use it (its `cache_dir`, else the
/// default); else `$BITZEL_CACHE_DIR`; else the default.
fn cache_dir(
    out: &Output,
    flag: Option<PathBuf>,
    config: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    if let Some(d) = flag {
        let cwd = std::env::current_dir().context("cannot determine the current directory")?;
        return Ok(cwd.join(d));
    }
    if let Some(c) = config {
        let project = bitzel_config::load(c)?;
        for w in &project.warnings {
            out.warn(&w.to_string());
        }
        return crate::build_flow::cache_dir(&project);
    }
    let env = std::env::var_os("BITZEL_CACHE_DIR").filter(|v| !v.is_empty());
    match env.map(PathBuf::from).or_else(default_cache_dir) {
        Some(d) => Ok(d),
        None => anyhow::bail!(
            "no cache directory: pass --cache-dir or a project config, or set BITZEL_CACHE_DIR, XDG_CACHE_HOME or HOME"
        ),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn ago(ms: u64) -> String {
    let s = bitzel_cache::now_unix_ms().saturating_sub(ms) / 1000;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86400),
    }
}

fn pct(h: u64, m: u64) -> String {
    if h + m == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * h as f64 / (h + m) as f64)
    }
}

/// Run `bitzel cache …`.
pub fn run(out: &Output, args: CacheArgs) -> anyhow::Result<ExitCode> {
    let dir = cache_dir(out, args.cache_dir, args.action.config())?;
    let cache =
        Cache::open(&dir).with_context(|| format!("opening the cache in {}", dir.display()))?;
    match args.action {
        CacheAction::Stats { json, .. } => {
            let s = cache.stats()?;
            let (h, m) = s
                .builds
                .iter()
                .fold((0, 0), |(h, m), b| (h + b.hits, m + b.misses));
            if json {
                let builds: Vec<serde_json::Value> = s
                    .builds
                    .iter()
                    .map(|b| {
                        serde_json::json!({
                            "finished_unix_ms": b.finished_ms,
                            "hits": b.hits,
                            "misses": b.misses,
                            "pid": b.pid,
                        })
                    })
                    .collect();
                let v = serde_json::json!({
                    "dir": cache.root(),
                    "entries": s.entries,
                    "entry_bytes": s.entry_bytes,
                    "blobs": s.blobs,
                    "blob_bytes": s.blob_bytes,
                    "layers": s.layers,
                    "layer_bytes": s.layer_bytes,
                    "total_bytes": s.total_bytes(),
                    "logical_bytes": s.total_bytes(),
                    "disk_bytes": s.disk_bytes,
                    "dedup_saved_bytes": s.dedup_saved(),
                    "disk_per_blob": s.disk_per_blob(),
                    "builds": builds,
                    "index_note": s.index_note,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("cache directory  {}", cache.root().display());
                println!("entries          {}", s.entries);
                println!("blobs            {} ({})", s.blobs, mib(s.blob_bytes));
                println!("layers           {} ({})", s.layers, mib(s.layer_bytes));
                println!("total (logical)  {}", mib(s.total_bytes()));
                println!(
                    "on disk          {} (each file once: layers hard-link their blobs)",
                    mib(s.disk_bytes)
                );
                println!(
                    "disk per blob    {:.2} (blobs and layers on disk / distinct blob bytes)",
                    s.disk_per_blob()
                );
                println!("dedup saved      {}", mib(s.dedup_saved()));
                if let Some(note) = &s.index_note {
                    out.warn(&format!("build statistics unavailable: {note}"));
                } else if s.builds.is_empty() {
                    println!("no builds recorded yet");
                } else {
                    println!(
                        "hit rate         {} over the last {} builds ({h} hits, {m} misses)",
                        pct(h, m),
                        s.builds.len()
                    );
                    for b in s.builds.iter().take(10) {
                        println!(
                            "  {:>14}  {:>5} hits  {:>5} misses  {:>6}",
                            ago(b.finished_ms),
                            b.hits,
                            b.misses,
                            pct(b.hits, b.misses)
                        );
                    }
                }
            }
        }
        CacheAction::Verify { .. } => {
            let r = cache.verify()?;
            println!(
                "checked {} blobs, {} entries, {} layers",
                r.blobs_checked, r.entries_checked, r.layers_checked
            );
            for d in &r.corrupt_blobs {
                println!("corrupt blob removed: {d}");
            }
            for k in &r.unreadable_entries {
                println!("unreadable entry removed: {k}");
            }
            for (k, label, blob) in &r.broken_entries {
                println!(
                    "entry {} ({label}) referenced missing blob {}: removed (the task re-runs next build)",
                    k.short(),
                    blob.short()
                );
            }
            for l in &r.broken_layers {
                println!("layer {l} did not match its manifest: removed (recreated on demand)");
            }
            if r.unfinished_layers > 0 {
                println!(
                    "removed {} unfinished layers (creation cut short; recreated on demand)",
                    r.unfinished_layers
                );
            }
            if r.layers_in_use > 0 {
                println!(
                    "{} layers in use by a running build: not checked",
                    r.layers_in_use
                );
            }
            if r.temp_removed > 0 {
                println!("removed {} stale temporary files", r.temp_removed);
            }
            println!("index rebuilt ({} entries)", r.index_entries);
            if r.is_clean() {
                println!("cache is consistent");
            } else {
                println!("cache repaired");
            }
        }
        CacheAction::Gc {
            max_size, grace, ..
        } => {
            let max_bytes = parse_size(&max_size)?;
            let r = cache.gc(&GcOptions {
                max_bytes,
                grace: Duration::from_secs(grace),
            })?;
            println!(
                "{} → {} (limit {}): kept {} entries, evicted {}, removed {} blobs and {} layers",
                mib(r.bytes_before),
                mib(r.bytes_after),
                mib(max_bytes),
                r.entries_kept,
                r.entries_evicted,
                r.blobs_removed,
                r.layers_removed
            );
            if r.blobs_in_use + r.layers_in_use > 0 {
                println!(
                    "kept {} blobs and {} layers that a running build holds",
                    r.blobs_in_use, r.layers_in_use
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
