//! `profiler run [--listen ADDR:PORT] [selectors]`: the node daemon.
use std::{net::SocketAddr, process::ExitCode, time::Duration};

use super::snapshot::parse_duration;
use crate::{
    collect::SIDECARS_MAX,
    daemon::{self, DEFAULT_LISTEN, Options},
};

#[derive(clap::Args)]
pub struct Args {
    /// Address to serve /metrics, /healthz and /readyz on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    #[command(flatten)]
    select: super::select::SelectArgs,
    /// Most sidecars tracked at once; more are counted
    /// (profiler_sidecars_over_cap) and logged once.
    #[arg(long, default_value_t = SIDECARS_MAX as u32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_sidecars: u32,
    /// How long a vanished sidecar's series are still served (e.g. 5m).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    series_ttl: Duration,
    /// How often each sidecar's CPU and memory are sampled (whole seconds).
    /// Each sample reads a few /proc and cgroup files per process: at 64
    /// sidecars and 20k forwards/s, the daemon measured 0.93% of a core
    /// sampling every 5 s and 1.55% every 1 s (`meshbox bench`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    cpu_interval: Duration,
}

pub fn run(a: Args) -> ExitCode {
    crate::signals::install();
    let opts = Options {
        listen: a.listen,
        selectors: a.select.selectors(),
        excluded_ports: a.select.exclude_ports.clone(),
        max_sidecars: a.max_sidecars as usize,
        series_ttl: a.series_ttl,
        hooks: a.select.hooks(),
        cpu_interval: a.cpu_interval,
    };
    match daemon::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::exit::Failure::from(e).exit(),
    }
}
