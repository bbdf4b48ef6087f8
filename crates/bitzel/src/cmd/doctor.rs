//! `bitzel doctor`: what the sandbox probe found on this host, and why a backend was rejected.

use std::process::ExitCode;

use bitzel_sandbox::{probe_all, BackendChoice, SandboxConfig};

use crate::output::Output;

/// Arguments of `bitzel doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The backend `bitzel build --sandbox` would be given: auto, native, bwrap, sandbox-exec or none.
    #[arg(long, default_value = "auto")]
    pub sandbox: String,
    /// `rootfs`: only say whether the rootfs build root can work here (exit 1 when not).
    #[arg(long, default_value = "host")]
    pub build_root: String,
}

/// Run `bitzel doctor`: probe every sandbox backend by running a trivial sandbox with an
/// overlay, print the results and host facts. Exit 0 when the chosen backend works.
pub fn run(_out: &Output, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    if args.build_root == "rootfs" {
        let cfg = SandboxConfig::new(crate::build_flow::sandbox_helper());
        let report = probe_all(&cfg);
        return Ok(if print_rootfs(&report) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if args.build_root != "host" {
        anyhow::bail!(
            "unknown build root `{}` (expected `host` or `rootfs`)",
            args.build_root
        );
    }
    let choice: BackendChoice = args.sandbox.parse()?;
    let cfg = SandboxConfig::new(crate::build_flow::sandbox_helper());
    let report = probe_all(&cfg);
    println!("sandbox backends (each probed by running a trivial sandbox with an overlay):");
    for p in &report.probes {
        let state = if p.ok { "ok" } else { "rejected" };
        println!("  {:<13} {:<9} {}", p.backend, state, p.detail);
    }
    println!("host:");
    for n in &report.notes {
        println!("  {n}");
    }
    print_rootfs(&report);
    let chosen = match choice {
        BackendChoice::Auto => report.chosen,
        BackendChoice::None => Some("none"),
        other => {
            let name = match other {
                BackendChoice::Native => "native",
                BackendChoice::Bwrap => "bwrap",
                _ => "sandbox-exec",
            };
            report
                .probes
                .iter()
                .find(|p| p.backend == name && p.ok)
                .map(|p| p.backend)
        }
    };
    match chosen {
        Some("none") => {
            println!(
                "--sandbox {}: none (NO isolation; builds are marked non-hermetic)",
                args.sandbox
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(name) => {
            println!("--sandbox {}: {name}", args.sandbox);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!("--sandbox {}: no working backend; fix one of the reasons above, or run with --sandbox none (no isolation)", args.sandbox);
            Ok(ExitCode::from(1))
        }
    }
}

/// Say whether the `rootfs` build root can work here, and why not: a builder
/// (mmdebstrap, or debootstrap as root), a mirror (the host's apt sources, else the
/// config's `mirror:`), and a backend that mounts a root (native or bwrap).
fn print_rootfs(report: &bitzel_sandbox::ProbeReport) -> bool {
    println!("rootfs build root (`build_root: rootfs`):");
    let mut ok = true;
    match bitzel_exec::rootfs::find_builder() {
        Ok(bitzel_exec::rootfs::Builder::Mmdebstrap(p)) => {
            println!("  builder       ok        {} --mode=unshare", p.display())
        }
        Ok(bitzel_exec::rootfs::Builder::Debootstrap(p)) => println!(
            "  builder       ok        {} (as root; mmdebstrap would build rootless)",
            p.display()
        ),
        Err(e) => {
            ok = false;
            println!("  builder       missing   {e}");
        }
    }
    match bitzel_exec::rootfs::host_mirror() {
        Some(m) => println!("  mirror        ok        {m} (the host's apt sources; `mirror:` overrides)"),
        None => println!(
            "  mirror        none      the host's apt sources name no Debian archive: give `mirror:` in the config"
        ),
    }
    let mounting: Vec<&str> = report
        .probes
        .iter()
        .filter(|p| p.ok && matches!(p.backend, "native" | "bwrap"))
        .map(|p| p.backend)
        .collect();
    if mounting.is_empty() {
        ok = false;
        println!("  sandbox       missing   the root is mounted as the task's `/` by the native or bwrap backend, and neither works here (see above)");
    } else {
        println!("  sandbox       ok        {}", mounting.join(", "));
    }
    println!(
        "  => rootfs mode {}",
        if ok {
            "can work here"
        } else {
            "cannot work here: fix the lines marked above"
        }
    );
    ok
}
