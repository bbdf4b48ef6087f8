//! `bitzel build <machine.yml>`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::output::Output;

/// Arguments of `bitzel build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The kas-style project configuration (machine.yml).
    pub config: PathBuf,
}

/// Run `bitzel build`.
pub fn run(out: &Output, args: BuildArgs) -> anyhow::Result<ExitCode> {
    out.info(&format!("would build {}", args.config.display()));
    Ok(ExitCode::SUCCESS)
}
