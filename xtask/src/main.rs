//! Project tasks: `cargo xtask setup | test | demo | image | vmtest`.
mod image;
mod setup;
mod test;
mod vmtest;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Project tasks for the sidecar latency profiler")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent): pinned nightly with
    /// rust-src, bpf-linker, oha, and the Debian packages of the test mesh.
    Setup,
    /// Run every test: unit tests, clippy, the privileged tests and the kernel matrix (needs root).
    Test,
    /// Build the DaemonSet's container image (a static binary, nothing else) with podman.
    Image,
    /// The kernel matrix: every hook set on Debian's 6.1 and 6.12 kernels
    /// (booted under qemu) and on this host, measured against the delay fixture.
    Vmtest,
    /// Run the profiler on the built-in demo mesh.
    Demo {
        /// Extra arguments for `meshbox demo`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Test => {
            setup::run()?;
            test::run()
        }
        Task::Image => {
            setup::run()?;
            image::run()
        }
        Task::Vmtest => {
            setup::run()?;
            vmtest::run()
        }
        Task::Demo { args } => {
            setup::run()?;
            test::demo(&args)
        }
    }
}
