//! Hidden `profiler testbed ...`: the processes the test mesh runs in its pods.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

#[derive(clap::Subcommand)]
pub enum Helper {
    /// Runs a proxy as its parent, the way pilot-agent runs Envoy: it keeps
    /// the pod's environment readable (nginx rewrites its own), forwards
    /// SIGTERM, and exits with the proxy.
    Agent {
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// HTTP/1.1 keepalive app with a response delay and size.
    App {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[arg(long, default_value_t = 0)]
        delay_us: u64,
        #[arg(long, default_value_t = 128)]
        size: usize,
    },
    /// Ground-truth TCP proxy: holds each chunk, times itself.
    DelayProxy {
        #[arg(long)]
        inbound_to: SocketAddr,
        #[arg(long)]
        outbound_to: SocketAddr,
        #[arg(long)]
        delay_us: u64,
        #[arg(long)]
        stats: PathBuf,
    },
}

pub fn run(h: Helper) -> ExitCode {
    let r = match h {
        Helper::Agent { command } => crate::testbed::agent::run(&command),
        Helper::App {
            port,
            delay_us,
            size,
        } => crate::testbed::app::serve(port, Duration::from_micros(delay_us), size),
        Helper::DelayProxy {
            inbound_to,
            outbound_to,
            delay_us,
            stats,
        } => crate::testbed::delay_proxy::run(
            inbound_to,
            outbound_to,
            Duration::from_micros(delay_us),
            stats,
        ),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
