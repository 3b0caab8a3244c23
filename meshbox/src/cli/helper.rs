//! Hidden `meshbox testbed ...`: the processes the test mesh runs in its pods.
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
    /// HTTP/1.1 keepalive app with a response delay, size and framing.
    App {
        #[command(flatten)]
        app: AppArgs,
        /// one-write: head and body in one write; split: head, then body
        /// with Nagle on; chunked: --chunks chunks, --chunk-gap-us apart.
        #[arg(long, value_enum, default_value_t = crate::app::ResponseName::OneWrite)]
        response: crate::app::ResponseName,
        #[arg(long, default_value_t = 5)]
        chunks: usize,
        #[arg(long, default_value_t = 10_000)]
        chunk_gap_us: u64,
    },
    /// h2c (HTTP/2 prior knowledge) app with a response delay and size;
    /// streams of a connection are answered concurrently.
    H2App {
        #[command(flatten)]
        app: AppArgs,
    },
    /// Ground-truth TCP proxy: holds each chunk, times itself.
    DelayProxy {
        #[arg(long)]
        inbound_to: SocketAddr,
        #[arg(long)]
        outbound_to: SocketAddr,
        /// threads: a thread per connection direction, each chunk held
        /// --delay-us asleep; spin: the same, each chunk held spinning on the
        /// CPU; event-loop: one thread, each chunk held uniformly in
        /// [--hold-min-us, --hold-max-us]; batch: one thread, each turn's
        /// reads before its writes.
        #[arg(long, value_enum, default_value_t = crate::delay_proxy::ModeName::Threads)]
        mode: crate::delay_proxy::ModeName,
        #[arg(long, default_value_t = 0)]
        delay_us: u64,
        #[arg(long, default_value_t = 0)]
        hold_min_us: u64,
        #[arg(long, default_value_t = 0)]
        hold_max_us: u64,
        #[arg(long)]
        stats: PathBuf,
    },
}

/// What both apps take: where to listen, how long to think, how much to say.
#[derive(clap::Args)]
pub struct AppArgs {
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[arg(long, default_value_t = 0)]
    delay_us: u64,
    #[arg(long, default_value_t = 128)]
    size: usize,
}

pub fn run(h: Helper) -> ExitCode {
    let r = match h {
        Helper::Agent { command } => crate::agent::run(&command),
        Helper::App {
            app,
            response,
            chunks,
            chunk_gap_us,
        } => crate::app::AppResponse::from_flags(
            response,
            chunks,
            Duration::from_micros(chunk_gap_us),
        )
        .and_then(|r| {
            crate::app::serve(app.port, Duration::from_micros(app.delay_us), app.size, r)
        }),
        Helper::H2App { app } => {
            crate::h2app::serve(app.port, Duration::from_micros(app.delay_us), app.size)
        }
        Helper::DelayProxy {
            inbound_to,
            outbound_to,
            mode,
            delay_us,
            hold_min_us,
            hold_max_us,
            stats,
        } => crate::delay_proxy::ProxyMode::from_flags(
            mode,
            Duration::from_micros(hold_min_us),
            Duration::from_micros(hold_max_us),
        )
        .and_then(|m| {
            crate::delay_proxy::run(
                m,
                Duration::from_micros(delay_us),
                inbound_to,
                outbound_to,
                stats,
            )
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
