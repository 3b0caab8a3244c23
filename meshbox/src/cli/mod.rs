//! The `meshbox` command line: the demo, the benchmark, and (hidden) the
//! processes the mesh runs in its pods.
mod bench;
mod demo;
mod helper;
mod matrix;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "The mesh in a box: Istio-style pods with real sidecars, for demonstrating and benchmarking the profiler",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a two-pod mesh with sidecars, drive load through it while profiling, print the report, tear it down.
    Demo(demo::Args),
    /// Measure the profiler's own cost on the mesh: program time per forward, CPU, memory, highest loss-free rate, and the node daemon's budgets.
    Bench(bench::Args),
    /// This kernel's row of the kernel matrix: each hook set it allows, forced in turn, measuring real forwarding through the delay fixture against the fixture's own account.
    Matrix(matrix::Args),
    /// Processes of the mesh's pods (the app and the delay-proxy fixture).
    #[command(hide = true, subcommand)]
    Testbed(helper::Helper),
}

/// Exit code for bad input or missing privilege.
pub const EXIT_USAGE: u8 = 2;

pub fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match Cli::parse().command {
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Matrix(a) => matrix::run(a),
        Command::Testbed(h) => helper::run(h),
    }
}

/// Building namespaces and loading eBPF need root.
pub fn require_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(
            "this command needs root: CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN \
             (eBPF, network namespaces, cgroups); run it with sudo"
                .into(),
        )
    }
}
