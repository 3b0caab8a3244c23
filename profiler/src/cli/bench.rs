//! `profiler bench`: speed and memory figures on the built-in mesh.
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Requests per second for the CPU phase (4 forwards each).
    #[arg(long, default_value_t = 5000)]
    rate: u32,
}

pub fn run(a: Args) -> ExitCode {
    if let Err(msg) = super::require_root() {
        eprintln!("error: {msg}");
        return ExitCode::from(super::EXIT_USAGE);
    }
    crate::signals::install();
    let helper = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: locating the profiler binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    match crate::bench::run(&crate::bench::BenchOptions {
        seconds: a.seconds,
        rate: a.rate,
        helper,
    }) {
        Ok(f) => {
            print!("{}", f.report());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
