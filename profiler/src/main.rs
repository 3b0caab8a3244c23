//! `profiler`: measures the latency and CPU a sidecar proxy adds, per hop.
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Probe this kernel: which hooks load and attach, and which hook set the profiler would use.
    Check {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run the profiler on a built-in demo.
    Demo,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { format } => {
            let report = profiler::check::run();
            match format {
                Format::Table => print!("{}", report.to_text()),
                Format::Json => match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: encoding the report: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            }
            if report.usable() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Demo => {
            let report = profiler::check::run();
            print!("{}", report.to_text());
            if report.usable() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
