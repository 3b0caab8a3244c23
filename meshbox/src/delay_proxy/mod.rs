//! The ground-truth proxy fixture: a TCP proxy that times each chunk it
//! forwards, from its read returning to the write that finishes it
//! returning, with CLOCK_MONOTONIC, and publishes per-(direction, leg)
//! counts and percentiles. Three modes (`ProxyMode`): a thread per
//! connection direction holding each chunk a fixed time; one thread on an
//! event loop holding each chunk a random time while it serves the others;
//! one thread that reads every ready socket before writing any chunk, as
//! Envoy's worker does. A profiler that pairs a thread's reads with its
//! writes must get all three right.
mod conn;
mod reactor;
mod rng;
mod stats;
mod threads;
mod timer;

#[cfg(test)]
mod tests;

use std::{
    io,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

// The clock bpf_ktime_get_ns reads: the fixture's own times compare
// directly with the profiler's.
pub use profiler::kernel::clock::monotonic_ns;
pub use stats::{LegCounts, LegStats, RANK_SLACK, Recorder, Stats, read_stats};

use super::intercept::{INBOUND_PORT, OUTBOUND_PORT};

/// How the fixture forwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// A thread per connection direction; each chunk is held for the
    /// fixed delay (`--delay-us`, `MeshConfig::proxy_delay`).
    #[default]
    Threads,
    /// As `Threads`, but each chunk is held by spinning on the CPU: the
    /// hold is the proxy's own work (on CPU), not a sleep.
    Spin,
    /// One thread for every socket; each chunk is held for a delay drawn
    /// uniformly in [hold_min, hold_max] while the loop serves the others.
    EventLoop {
        hold_min: Duration,
        hold_max: Duration,
    },
    /// One thread; each loop iteration reads every ready socket once, then
    /// writes every chunk it read, in the order read. No hold.
    Batch,
}

/// `--mode` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeName {
    Threads,
    Spin,
    EventLoop,
    Batch,
}

impl ProxyMode {
    pub fn from_flags(
        mode: ModeName,
        hold_min: Duration,
        hold_max: Duration,
    ) -> io::Result<ProxyMode> {
        Ok(match mode {
            ModeName::Threads => ProxyMode::Threads,
            ModeName::Spin => ProxyMode::Spin,
            ModeName::Batch => ProxyMode::Batch,
            ModeName::EventLoop if hold_min > hold_max => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "--hold-min-us {} is above --hold-max-us {}",
                        hold_min.as_micros(),
                        hold_max.as_micros()
                    ),
                ));
            }
            ModeName::EventLoop => ProxyMode::EventLoop { hold_min, hold_max },
        })
    }

    /// The helper flags that select this mode (the threads mode's hold
    /// travels separately, as `--delay-us`).
    pub fn args(&self) -> Vec<String> {
        match self {
            ProxyMode::Threads => vec!["--mode".into(), "threads".into()],
            ProxyMode::Spin => vec!["--mode".into(), "spin".into()],
            ProxyMode::Batch => vec!["--mode".into(), "batch".into()],
            ProxyMode::EventLoop { hold_min, hold_max } => vec![
                "--mode".into(),
                "event-loop".into(),
                "--hold-min-us".into(),
                hold_min.as_micros().to_string(),
                "--hold-max-us".into(),
                hold_max.as_micros().to_string(),
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Accepted on 15006, forwarded to the app in the pod.
    Inbound,
    /// Accepted on 15001, forwarded to the destination pod.
    Outbound,
}

impl Direction {
    /// The stats key of a leg: request (downstream to upstream) or response.
    pub fn key(self, request: bool) -> &'static str {
        match (self, request) {
            (Direction::Inbound, true) => "inbound/request",
            (Direction::Inbound, false) => "inbound/response",
            (Direction::Outbound, true) => "outbound/request",
            (Direction::Outbound, false) => "outbound/response",
        }
    }
}

/// A listener and where its connections go.
pub struct Route {
    pub listener: TcpListener,
    pub direction: Direction,
    pub upstream: SocketAddr,
}

/// Asks a running fixture to stop; it does within 50 ms.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Proxy `routes` in `mode` until `stop`, recording into `rec`. `delay` is
/// the threads mode's hold. The single-thread modes run on the calling
/// thread; on return every connection of theirs is closed.
pub fn serve(
    mode: ProxyMode,
    delay: Duration,
    routes: Vec<Route>,
    rec: &Arc<Recorder>,
    stop: &Stop,
) -> io::Result<()> {
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    match mode {
        ProxyMode::Threads => threads::serve(routes, delay, false, rec, stop),
        ProxyMode::Spin => threads::serve(routes, delay, true, rec, stop),
        ProxyMode::EventLoop { hold_min, hold_max } => reactor::serve(
            routes,
            reactor::Schedule::Hold {
                min_ns: ns(hold_min),
                max_ns: ns(hold_max),
            },
            rec,
            stop,
        ),
        ProxyMode::Batch => reactor::serve(routes, reactor::Schedule::Batch, rec, stop),
    }
}

/// The sidecar: listen on 15006 (to `inbound_to`) and 15001 (to
/// `outbound_to`) and publish the stats to `stats` every 100 ms, forever.
pub fn run(
    mode: ProxyMode,
    delay: Duration,
    inbound_to: SocketAddr,
    outbound_to: SocketAddr,
    stats: PathBuf,
) -> io::Result<()> {
    let mut routes = Vec::new();
    for (port, direction, upstream) in [
        (INBOUND_PORT, Direction::Inbound, inbound_to),
        (OUTBOUND_PORT, Direction::Outbound, outbound_to),
    ] {
        let listener = TcpListener::bind(("0.0.0.0", port))
            .map_err(|e| io::Error::new(e.kind(), format!("listening on port {port}: {e}")))?;
        routes.push(Route {
            listener,
            direction,
            upstream,
        });
    }
    let rec = Arc::new(Recorder::default());
    let proxy = {
        let rec = rec.clone();
        // Never stopped: the sidecar runs until it is killed.
        std::thread::spawn(move || serve(mode, delay, routes, &rec, &Stop::default()))
    };
    // The publisher does no socket I/O, so the proxy's sockets stay on the
    // thread(s) the mode says.
    loop {
        std::thread::sleep(Duration::from_millis(100));
        rec.publish(&stats)?;
        if proxy.is_finished() {
            let result = proxy
                .join()
                .map_err(|_| io::Error::other("the proxy thread panicked"))?;
            result?;
            return Err(io::Error::other("the proxy stopped"));
        }
    }
}
