//! The command line: each subcommand is a small file that parses its
//! arguments and calls the library.
mod check;
pub mod exit;
mod logging;
mod run;
mod select;
mod snapshot;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    version,
    about = "Measures the latency and CPU a sidecar proxy adds, per hop, live",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines for people (text) or for a log pipeline (json, one object per line).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Probe this kernel: which hooks load and attach, and which hook set the profiler would use.
    Check(check::Args),
    /// Capture per-hop sidecar latency for a while, then print it per sidecar.
    Snapshot(snapshot::Args),
    /// Run as the node daemon: track sidecars continuously and serve Prometheus metrics.
    Run(run::Args),
}

/// Exit code for bad input (no sidecar matched, missing privilege, no usable hook set).
pub const EXIT_USAGE: u8 = exit::USAGE;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, &cli.command);
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Snapshot(a) => snapshot::run(a),
        Command::Run(a) => run::run(a),
    }
}

/// Print a report as a table or as JSON; Err(exit code) when encoding fails.
pub fn print_report<T: serde::Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<(), ExitCode> {
    match format {
        Format::Table => write_out(&table(value)),
        Format::Json => match serde_json::to_string_pretty(value) {
            Ok(s) => write_out(&(s + "\n")),
            Err(e) => {
                eprintln!("error: encoding the report: {e}");
                Err(ExitCode::FAILURE)
            }
        },
    }
}

/// Write to stdout; a reader that went away (`| head`) is not an error.
fn write_out(text: &str) -> Result<(), ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            eprintln!("error: writing the report: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}
