//! `bitzel parse-shard` (hidden): one parser process of a sharded parse.
//!
//! With the metadata's Python in one embedded interpreter, a cold parse of
//! poky is bound to one core by the GIL. As BitBake starts parser
//! processes, a verb that parses starts `parse-shard` children
//! ([`ProcessParsers`]) when many recipe files have no parse-cache entry:
//! each reads the request (the generated configuration, the cache
//! directory, the BitBake library) as the first line of its standard
//! input, then asks for files one at a time ([`NEXT`] on its standard
//! output, a path in answer) and parses each into the parse cache with its
//! own interpreter, until its input ends; the parent then reads them from
//! the cache. Nothing else is printed: diagnostics travel in the entries.

use std::io::{BufRead as _, Write as _};
use std::os::unix::ffi::OsStringExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};

use bitzel_meta::ParseQueue;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::output::Output;

/// Arguments of `bitzel parse-shard`.
#[derive(Debug, clap::Args)]
pub struct ParseShardArgs {
    /// This parser's number (for logs).
    #[arg(long)]
    pub index: usize,
}

/// What a parser process needs, sent as the first line of its standard
/// input; each further line is a recipe file to parse, sent in answer to a
/// `next` line on its standard output. End of input: no more work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRequest {
    /// `TOPDIR`.
    pub topdir: PathBuf,
    /// The `bblayers.conf` text (none: a build directory without one).
    pub bblayers_conf: Option<String>,
    /// The `local.conf` text (none: only what is on disk).
    pub local_conf: Option<String>,
    /// The environment variables passed into the datastore.
    pub env: std::collections::BTreeMap<String, String>,
    /// The parse cache directory.
    pub cache_dir: PathBuf,
    /// The BitBake library the parent's interpreter uses.
    pub bitbake_lib: PathBuf,
    /// Where compiled Python modules are kept (the parent's).
    pub bytecode_dir: Option<PathBuf>,
    /// Whether bitzel's Rust subset is tried first (part of the cache key).
    pub fast_path: bool,
}

impl ShardRequest {
    fn input(&self) -> bitzel_meta::ConfInput {
        bitzel_meta::ConfInput {
            topdir: self.topdir.clone(),
            bblayers_conf: self.bblayers_conf.clone(),
            local_conf: self.local_conf.clone(),
            env: self.env.clone(),
        }
    }
}

/// A parser process's request for work, on its standard output. Metadata
/// Python may print there too: only a line ending in this counts (one
/// write, so it is never split by other output).
const NEXT: &[u8] = b"\0bitzel-parse-shard: next\n";

/// A parser process's work: asks its parent for the next file.
struct FromParent {
    lines: Mutex<std::io::BufReader<std::io::Stdin>>,
}

impl bitzel_meta::ParseSource for FromParent {
    fn next_file(&self) -> Option<PathBuf> {
        let mut out = std::io::stdout().lock();
        out.write_all(NEXT).ok()?;
        out.flush().ok()?;
        let mut line = Vec::new();
        let mut lines = self.lines.lock().ok()?;
        match lines.read_until(b'\n', &mut line) {
            Ok(n) if n > 0 => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                Some(PathBuf::from(std::ffi::OsString::from_vec(line)))
            }
            _ => None,
        }
    }
}

/// Run one parser process.
pub fn run(_out: &Output, args: ParseShardArgs) -> anyhow::Result<ExitCode> {
    let mut stdin = std::io::BufReader::new(std::io::stdin());
    let mut first = String::new();
    stdin
        .read_line(&mut first)
        .context("parse-shard: reading the request on standard input")?;
    let req: ShardRequest = serde_json::from_str(&first)
        .context("parse-shard: reading the request on standard input")?;
    let mut host = bitzel_python::CPython::new(&req.bitbake_lib, req.bytecode_dir.as_deref())?;
    host.set_fast_path(req.fast_path);
    bitzel_meta::install_python_host(std::sync::Arc::new(host));
    tracing::debug!(index = args.index, "parser process ready");
    let opts = bitzel_meta::ParseOptions {
        cache_dir: Some(req.cache_dir.clone()),
        jobs: Some(1),
        shard: Some(Arc::new(FromParent {
            lines: Mutex::new(stdin),
        })),
        parsers: None,
    };
    // Errors are the parent's to report: it reads them from the entries,
    // or parses again what has none.
    let _ = bitzel_meta::load_workspace(&req.input(), &bitzel_meta::FsLoader, &opts);
    Ok(ExitCode::SUCCESS)
}

/// Parser processes: this executable's `parse-shard`.
pub struct ProcessParsers {
    /// The request every parser gets.
    pub request: ShardRequest,
    /// How many processes parse, the parent included.
    pub count: usize,
}

impl bitzel_meta::ShardParsers for ProcessParsers {
    fn count(&self) -> usize {
        self.count
    }

    fn start(&self, count: usize, queue: Arc<ParseQueue>) -> Box<dyn FnOnce() + Send> {
        let mut body = serde_json::to_vec(&self.request).unwrap_or_default();
        body.push(b'\n');
        let body = Arc::new(body);
        let servers: Vec<_> = (1..count)
            .map(|index| {
                let (queue, body) = (queue.clone(), body.clone());
                std::thread::spawn(move || {
                    if let Err(e) = serve(index, &body, &queue) {
                        tracing::warn!(index, error = %e, "a parser process failed; parsing its files here");
                    }
                })
            })
            .collect();
        Box::new(move || {
            for s in servers {
                let _ = s.join();
            }
        })
    }
}

/// Start parser process `index` and hand it files from `queue`, one per
/// `next` it asks, until the queue is empty; then wait for it.
fn serve(index: usize, request: &[u8], queue: &ParseQueue) -> anyhow::Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["parse-shard", "--index", &index.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        anyhow::bail!("no pipes to the parser process");
    };
    stdin.write_all(request)?;
    let mut asks = std::io::BufReader::new(stdout);
    let mut line = Vec::new();
    'asks: loop {
        line.clear();
        if asks.read_until(b'\n', &mut line)? == 0 {
            break; // it exited (a failure if files remain: the parent parses them)
        }
        if !line.ends_with(NEXT) {
            continue;
        }
        // A name with a newline cannot be sent: handed out all the same,
        // it is parsed by the parent, which finds no entry for it.
        let text = loop {
            let Some(file) = queue.hand_out() else {
                break 'asks;
            };
            let bytes = file.as_os_str().as_encoded_bytes();
            if !bytes.contains(&b'\n') {
                break [bytes, b"\n"].concat();
            }
        };
        stdin.write_all(&text)?;
    }
    drop(stdin);
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "exited with {status}");
    Ok(())
}
