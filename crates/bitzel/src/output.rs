//! Terminal output: colour choice, the tracing subscriber and error printing.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::GlobalOpts;

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// What the binary knows about how to talk to the user.
#[derive(Debug, Clone)]
pub struct Output {
    /// Use ANSI colours on stderr.
    pub color: bool,
    /// Verbosity: 0 normal, higher is chattier.
    pub verbose: u8,
    /// Only warnings and errors.
    pub quiet: bool,
}

impl Output {
    /// Decide colours and verbosity from the global options and the environment.
    pub fn new(g: &GlobalOpts) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match g.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stderr().is_terminal(),
        };
        Output {
            color,
            verbose: g.verbose,
            quiet: g.quiet,
        }
    }

    /// Install the tracing subscriber (the only place one is installed).
    pub fn init_tracing(&self) {
        let default = if self.quiet {
            // `-q` promises warnings and errors (task warnings among them).
            "warn"
        } else {
            match self.verbose {
                // The host root's first-time hashing takes a while: say so.
                0 => "warn,bitzel_cache::hostroot=info",
                1 => "info",
                2 => "debug",
                _ => "trace",
            }
        };
        let filter =
            EnvFilter::try_from_env("BITZEL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(self.color)
            .with_target(self.verbose >= 2)
            .without_time()
            .try_init();
    }

    /// Print an error chain as `error: outer: cause: cause` on stderr.
    pub fn error(&self, err: &anyhow::Error) {
        let label = if self.color {
            "\x1b[1;31merror\x1b[0m"
        } else {
            "error"
        };
        let mut msg = err.to_string();
        for cause in err.chain().skip(1) {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg.push_str(": ");
                msg.push_str(&c);
            }
        }
        eprintln!("{label}: {msg}");
    }

    /// Print a warning line on stderr (suppressed by nothing: warnings matter).
    #[allow(dead_code)]
    pub fn warn(&self, msg: &str) {
        let label = if self.color {
            "\x1b[1;33mwarning\x1b[0m"
        } else {
            "warning"
        };
        eprintln!("{label}: {msg}");
    }

    /// Print an informational line on stderr unless `--quiet`.
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}
