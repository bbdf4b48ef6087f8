//! `bitzel worker --engine grpc://host:port`: a bot of a REAPI engine's
//! Remote Workers API that runs bitzel actions in the local sandbox
//! (`bitzel_remote::worker`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use bitzel_cache::remote::{AuthHeader, RemoteConfig};
use bitzel_cache::Cache;
use bitzel_sandbox::{BackendChoice, SandboxConfig};

use crate::output::Output;

/// `bitzel worker` arguments.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The engine (`grpc://host:port` or `grpcs://…`).
    #[arg(long, value_name = "URL")]
    pub engine: String,
    /// The engine's REAPI instance name.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub instance: String,
    /// Leases run at once.
    #[arg(short, long, default_value_t = 1)]
    pub jobs: usize,
    /// The worker's local cache (inputs are kept here between leases).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Scratch space, logs and host-tool links (default `<cache dir>/worker`).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// The bot's id, stable across restarts (default: from the host name
    /// and the work directory).
    #[arg(long, value_name = "ID")]
    pub bot_id: Option<String>,
    /// Sandbox backend: auto, native or bwrap.
    #[arg(long, default_value = "auto")]
    pub sandbox: String,
    /// A host directory of the build root (repeat; default the standard
    /// host build root). Actions whose build root digest differs are refused.
    #[arg(long = "root-path", value_name = "DIR")]
    pub root_paths: Vec<PathBuf>,
    /// An environment variable holding a `Name: value` header sent with every call.
    #[arg(long, value_name = "VAR")]
    pub auth_header_env: Option<String>,
}

/// Run the worker until SIGTERM/SIGINT.
pub fn run(out: &Output, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let cache_dir = match &args.cache_dir {
        Some(d) => d.clone(),
        None => {
            bitzel_cache::default_cache_dir().context("no cache directory: pass --cache-dir")?
        }
    };
    let cache_opts = bitzel_cache::CacheOptions {
        layer_owner: bitzel_sandbox::sandbox_identity(),
        ..bitzel_cache::CacheOptions::default()
    };
    let cache = Cache::open_with(&cache_dir, cache_opts)
        .with_context(|| format!("opening the cache {}", cache_dir.display()))?;
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| cache_dir.join("worker"));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let choice = match args.sandbox.as_str() {
        "auto" => BackendChoice::Auto,
        "native" => BackendChoice::Native,
        "bwrap" => BackendChoice::Bwrap,
        other => anyhow::bail!("--sandbox {other}: a worker runs auto, native or bwrap"),
    };
    let (backend, _) = bitzel_sandbox::select(
        choice,
        &SandboxConfig::new(crate::build_flow::sandbox_helper()),
    )
    .context("no sandbox backend works here (run `bitzel doctor`)")?;
    let (root_paths, key_paths) = if args.root_paths.is_empty() {
        (
            crate::build_flow::host_root_paths(),
            crate::build_flow::host_root_key_paths(),
        )
    } else {
        let mut key = args.root_paths.clone();
        key.extend(bitzel_sandbox::etc_host_paths(false));
        (args.root_paths.clone(), key)
    };
    let root_digest = bitzel_exec::hosttools::root_digest(&key_paths)?;
    let auth = args
        .auth_header_env
        .as_deref()
        .map(AuthHeader::from_env)
        .transpose()?;
    let mut ec = bitzel_remote::EngineConfig::new(&args.engine, &args.instance);
    ec.auth = auth.clone();
    let engine = Arc::new(bitzel_remote::Engine::new(ec)?);
    let mut rc = RemoteConfig::new(&args.engine)?.with_auth(auth);
    if !args.instance.is_empty() {
        rc = rc.with_instance(&args.instance)?;
    }
    let store = Arc::new(bitzel_remote::cache_level(engine.clone(), rc, &cache)?);
    let bot_id = args.bot_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let canon = std::fs::canonicalize(&work_dir).unwrap_or(work_dir.clone());
        format!(
            "bitzel-{host}-{}",
            &bitzel_cache::Digest::of_bytes(canon.as_os_str().as_encoded_bytes()).to_hex()[..12]
        )
    });
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        })
        .context("cannot install the SIGTERM/SIGINT handler")?;
    }
    out.info(&format!(
        "bitzel worker {bot_id}: engine {} instance `{}`, {} job(s), sandbox {}, build root {}",
        args.engine,
        args.instance,
        args.jobs,
        backend.name(),
        root_digest.short()
    ));
    let setup = bitzel_remote::worker::WorkerSetup {
        engine,
        store,
        cache: &cache,
        sandbox: backend.as_ref(),
        work_dir,
        root_paths,
        root_digest,
        bot_id: bot_id.clone(),
        jobs: args.jobs.max(1),
        stop,
    };
    let report = bitzel_remote::worker::WorkerReport::default();
    setup.run(&report)?;
    out.info(&format!(
        "bitzel worker {bot_id} stopped: {} leases completed, {} refused",
        report.completed.load(Ordering::Relaxed),
        report.refused.load(Ordering::Relaxed)
    ));
    Ok(ExitCode::SUCCESS)
}
