//! `bitzel report <machine.yml> [BUILD]`: the HTML timing report of a
//! recorded build (default the latest under `<build>/tmp/buildstats/`),
//! and with `--trace FILE` its Chrome trace events. Reads only; takes no lock.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use crate::buildstats::{self, BuildRecord};
use crate::output::Output;

/// Arguments of `bitzel report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The kas-style project configuration (machine.yml) that was built.
    pub config: PathBuf,
    /// The build: a record file, or its name under `<build>/tmp/buildstats/`
    /// with or without `.json` (default: the latest).
    pub build: Option<String>,
    /// Build directory (default `bitzel.build_dir` of the config, else `./build`).
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,
    /// Write the HTML here instead of next to the record.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the build as Chrome trace events (Perfetto, chrome://tracing).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
}

/// Run `bitzel report`.
pub fn run(out: &Output, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let project = bitzel_config::load(&args.config)?;
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let build_dir = match (&args.build_dir, &project.bitzel.build_dir) {
        (Some(d), _) => cwd.join(d),
        (None, Some(d)) => project.dir.join(d),
        (None, None) => cwd.join("build"),
    };
    let dir = buildstats::records_dir(&build_dir);
    let path = find_record(&dir, args.build.as_deref())?;
    let record = buildstats::read(&path)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| buildstats::stem(&record));
    let html = match &args.output {
        Some(file) => {
            write_file(file, crate::report::render(&record, &stem).as_bytes())?;
            cwd.join(file)
        }
        None => write_html(&dir, &stem, &record)?,
    };
    println!("{}", crate::project::shown(&html));
    if let Some(trace) = &args.trace {
        write_trace(trace, &record)?;
        out.info(&format!("trace: {}", crate::project::shown(trace)));
    }
    Ok(ExitCode::SUCCESS)
}

/// The record file `which` names in `dir` (a path, or a name with or without
/// `.json`), else the latest.
fn find_record(dir: &Path, which: Option<&str>) -> anyhow::Result<PathBuf> {
    let records = buildstats::list(dir)?;
    match which {
        None => records.last().cloned().with_context(|| {
            format!(
                "no build records in {} (run `bitzel build` first; `bitzel: build_records: 0` or BITZEL_BUILD_RECORDS=0 turn them off)",
                dir.display()
            )
        }),
        Some(w) => {
            let p = Path::new(w);
            if p.is_file() {
                return Ok(p.to_path_buf());
            }
            let name = w.strip_suffix(".json").unwrap_or(w);
            let candidate = dir.join(format!("{name}.json"));
            if !name.contains('/') && candidate.is_file() {
                return Ok(candidate);
            }
            let known: Vec<String> = records
                .iter()
                .rev()
                .take(5)
                .filter_map(|r| r.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            bail!(
                "no build record {w:?} in {} (the latest: {})",
                dir.display(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Write the HTML report of `record` as `<dir>/<stem>.html`; returns its path.
pub fn write_html(dir: &Path, stem: &str, record: &BuildRecord) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{stem}.html"));
    write_file(&path, crate::report::render(record, stem).as_bytes())?;
    Ok(path)
}

/// Write `record` as Chrome trace events to `path`.
pub fn write_trace(path: &Path, record: &BuildRecord) -> anyhow::Result<()> {
    let text = serde_json::to_vec(&buildstats::chrome_trace(record))?;
    write_file(path, &text)
}
