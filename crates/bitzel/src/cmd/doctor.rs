//! `bitzel doctor`: what the sandbox probe found on this host, and why a backend was rejected.

use std::process::ExitCode;

use bitzel_sandbox::{probe_all, BackendChoice, HelperExe, SandboxConfig};

use crate::output::Output;

/// Arguments of `bitzel doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The backend `bitzel build --sandbox` would be given: auto, native, bwrap, sandbox-exec or none.
    #[arg(long, default_value = "auto")]
    pub sandbox: String,
}

/// Run `bitzel doctor`: probe every sandbox backend by running a trivial sandbox with an
/// overlay, print the results and host facts. Exit 0 when the chosen backend works.
pub fn run(_out: &Output, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let choice: BackendChoice = args.sandbox.parse()?;
    let cfg = SandboxConfig::new(HelperExe::CurrentExe);
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
