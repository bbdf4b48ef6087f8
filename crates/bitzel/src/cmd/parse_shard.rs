//! `bitzel parse-shard` (hidden): one parser process of a sharded parse.
//!
//! With the metadata's Python in one embedded interpreter, a cold parse of
//! poky is bound to one core by the GIL. As BitBake starts parser
//! processes, a verb that parses starts `parse-shard` children
//! ([`ProcessParsers`]) when many recipe files have no parse-cache entry:
//! each reads the request (the generated configuration, the cache
//! directory, the BitBake library) on standard input, parses its share of
//! the missing files into the parse cache with its own interpreter, and
//! exits; the parent then reads them from the cache. Nothing is printed:
//! diagnostics travel in the cache entries.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::output::Output;

/// Arguments of `bitzel parse-shard`.
#[derive(Debug, clap::Args)]
pub struct ParseShardArgs {
    /// This parser's share.
    #[arg(long)]
    pub index: usize,
    /// How many shares there are.
    #[arg(long)]
    pub count: usize,
}

/// What a parser process needs, sent on its standard input.
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

/// Run one parser process.
pub fn run(_out: &Output, args: ParseShardArgs) -> anyhow::Result<ExitCode> {
    let req: ShardRequest = serde_json::from_reader(std::io::stdin().lock())
        .context("parse-shard: reading the request on standard input")?;
    let mut host = bitzel_python::CPython::new(&req.bitbake_lib, req.bytecode_dir.as_deref())?;
    host.set_fast_path(req.fast_path);
    bitzel_meta::install_python_host(std::sync::Arc::new(host));
    let opts = bitzel_meta::ParseOptions {
        cache_dir: Some(req.cache_dir.clone()),
        jobs: Some(1),
        shard: Some(bitzel_meta::Shard {
            index: args.index,
            count: args.count,
        }),
        parsers: None,
    };
    // Errors are the parent's to report: it reads them from the entries,
    // or parses again what has none.
    let _ = bitzel_meta::load_workspace(&req.input(), &bitzel_meta::FsLoader, &opts);
    Ok(ExitCode::SUCCESS)
}

/// Parser processes: this executable's `parse-shard`, one per share.
pub struct ProcessParsers {
    /// The request every parser gets.
    pub request: ShardRequest,
    /// How many shares to cut.
    pub count: usize,
}

impl bitzel_meta::ShardParsers for ProcessParsers {
    fn count(&self) -> usize {
        self.count
    }

    fn start(&self, count: usize) -> Box<dyn FnOnce() + Send> {
        let exe = std::env::current_exe();
        let body = serde_json::to_vec(&self.request).unwrap_or_default();
        let mut children = Vec::new();
        for index in 1..count {
            let spawned = exe.as_ref().map_err(|e| e.to_string()).and_then(|exe| {
                let mut child = Command::new(exe)
                    .args(["parse-shard", "--index", &index.to_string()])
                    .args(["--count", &count.to_string()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()
                    .map_err(|e| e.to_string())?;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(&body).map_err(|e| e.to_string())?;
                }
                Ok(child)
            });
            match spawned {
                Ok(child) => children.push((index, child)),
                Err(e) => {
                    tracing::warn!(index, error = %e, "cannot start a parser process; parsing its share here")
                }
            }
        }
        Box::new(move || {
            for (index, mut child) in children {
                match child.wait() {
                    Ok(s) if s.success() => {}
                    Ok(s) => {
                        tracing::warn!(index, status = %s, "a parser process failed; parsing its share here")
                    }
                    Err(e) => {
                        tracing::warn!(index, error = %e, "lost a parser process; parsing its share here")
                    }
                }
            }
        })
    }
}
