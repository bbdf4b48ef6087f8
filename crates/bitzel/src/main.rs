//! The `bitzel` command-line tool: a thin layer that parses arguments, sets up
//! logging and progress drawing, calls the library crates and turns their
//! errors into messages and exit codes.

#![allow(clippy::print_stdout, clippy::print_stderr)]

/// mimalloc: loading a warm parse cache (poky: 1,878 datastores) is
/// allocation-bound; with glibc's malloc a third of it was page faults and
/// free-list work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod build_flow;
mod buildstats;
mod cmd;
mod deploy_manifest;
mod output;
mod progress;
mod project;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A content-addressed, hermetic executor for BitBake-style build tasks.
#[derive(Debug, Parser)]
#[command(name = "bitzel", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

/// Options accepted by every verb.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOpts {
    /// More output (repeat for more detail: -v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output: only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// When to use colours. `NO_COLOR` in the environment means `never` for `auto`.
    #[arg(long, global = true, value_enum, default_value_t = output::ColorChoice::Auto)]
    pub color: output::ColorChoice,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the targets named by a kas-style machine.yml.
    Build(cmd::build::BuildArgs),
    /// Boot the built kernel and initramfs in QEMU (`--check`: boot, assert BusyBox runs, exit 0/1).
    Runqemu(cmd::runqemu::RunqemuArgs),
    /// Fetch (or verify in DL_DIR) every download the targets could need,
    /// as `bitbake --runall=fetch`, so a later build works offline.
    Fetch(cmd::fetch::FetchArgs),
    /// Inspect and maintain the local cache: `stats`, `verify`, `gc --max-size 10G`.
    Cache(cmd::cache::CacheArgs),
    /// Print the task graph (Graphviz like `bitbake -g`, or JSON), the
    /// execution order (`--dry-run`), or how a provider is chosen.
    Graph(cmd::graph::GraphArgs),
    /// Probe the sandbox backends and explain why one was rejected.
    Doctor(cmd::doctor::DoctorArgs),
    /// What a build of the targets would run and why (the inputs that differ
    /// from the closest earlier cache entry), running nothing; exit 0 either way.
    Explain(cmd::explain::ExplainArgs),
    /// An interactive shell in the sandbox a recipe's do_compile would get.
    Devshell(cmd::devshell::DevshellArgs),
    /// Show final variable values in `bitbake -e` format (`--history`:
    /// every assignment that shaped them; `--recipes`: list the recipes).
    Show(cmd::show::ShowArgs),
    /// Write the HTML timing report of a recorded build (default the latest
    /// under <build>/tmp/buildstats/): timeline, critical path, slowest
    /// tasks, why tasks ran; `--trace FILE` for Perfetto.
    Report(cmd::report::ReportArgs),
    /// Serve a REAPI engine as a bot (`--engine grpc://host:port`): run the
    /// bitzel actions it leases in the local sandbox, until SIGTERM.
    Worker(cmd::worker::WorkerArgs),
    /// The pinned Debian root of `build_root: rootfs`: `lock` pins every package version
    /// into `<name>.rootfs.lock`, `build` puts the root into the cache, `show` reports both.
    Rootfs(cmd::rootfs::RootfsArgs),
    /// Internal: one parser process of a cold parse (started by bitzel).
    #[command(hide = true)]
    ParseShard(cmd::parse_shard::ParseShardArgs),
    /// BitBake's own data/parse tests against bitzel (scripts/bitbake-selftest).
    #[command(hide = true, name = "bitbake-selftest")]
    BitbakeSelftest(cmd::selftest::SelftestArgs),
}

fn main() -> ExitCode {
    // The sandbox helper re-executes this binary; it must stay single-threaded.
    if bitzel_sandbox::is_helper_invocation() {
        bitzel_sandbox::helper_main();
    }
    let cli = Cli::parse();
    let out = output::Output::new(&cli.global);
    out.init_tracing();
    let result = match cli.command {
        Command::Build(args) => cmd::build::run(&out, args),
        Command::Runqemu(args) => cmd::runqemu::run(&out, args),
        Command::Cache(args) => cmd::cache::run(&out, args),
        Command::Fetch(args) => cmd::fetch::run(&out, args),
        Command::Graph(args) => cmd::graph::run_graph(&out, args),
        Command::Doctor(args) => cmd::doctor::run(&out, args),
        Command::Explain(args) => cmd::explain::run(&out, args),
        Command::Devshell(args) => cmd::devshell::run(&out, args),
        Command::Show(args) => cmd::show::run(&out, args),
        Command::Report(args) => cmd::report::run(&out, args),
        Command::Worker(args) => cmd::worker::run(&out, args),
        Command::Rootfs(args) => cmd::rootfs::run(&out, args),
        Command::ParseShard(args) => cmd::parse_shard::run(&out, args),
        Command::BitbakeSelftest(args) => cmd::selftest::run(&out, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            out.error(&err);
            ExitCode::from(1)
        }
    }
}
