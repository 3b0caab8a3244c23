//! `profiler run`: the node daemon. It listens first (a bad or busy address
//! fails before anything attaches), attaches once, then keeps the engine
//! turning: drain (every 10 to 100 ms, by how fast the rings fill: `turn`),
//! take discovery's news, forget sidecars gone longer than the TTL, answer
//! scrapes with a copy of the figures. SIGTERM stops serving, detaches
//! everything and returns.
pub mod http;
mod turn;

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use crate::{
    discovery::Selector,
    engine::{Engine, EngineError},
    metrics::Exposition,
};

/// Where `profiler run` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9477";

pub struct Options {
    pub listen: SocketAddr,
    pub selectors: Vec<Selector>,
    pub excluded_ports: Vec<u16>,
    pub max_sidecars: usize,
    /// How long a vanished sidecar's series stay.
    pub series_ttl: Duration,
    /// Force one hook set (None: the first that attaches here).
    pub hooks: crate::ebpf::Hooks,
    /// How often each sidecar's CPU and memory are sampled.
    pub cpu_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}; pick another address with --listen")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("starting the HTTP server: {0}")]
    Server(#[source] std::io::Error),
    #[error(transparent)]
    Collect(#[from] crate::collect::CollectError),
}

// Cheap (a pass over the sidecar list); keeps a short TTL honest.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
const LOST_WARN_EVERY: Duration = Duration::from_secs(60);

pub fn run(opts: &Options) -> Result<(), DaemonError> {
    let listener = TcpListener::bind(opts.listen).map_err(|source| DaemonError::Listen {
        addr: opts.listen,
        source,
    })?;
    let (scrape_tx, scrape_rx) = mpsc::channel::<http::ScrapeRequest>();
    let shared = Arc::new(http::Shared {
        ready: AtomicBool::new(false),
        heartbeat_s: AtomicU64::new(http::now_s()),
        scrapes: std::sync::Mutex::new(scrape_tx),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Server)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("http".into())
            .spawn(move || runtime.block_on(http::serve(listener, shared, stop_rx)))
            .map_err(DaemonError::Server)?
    };
    log::info!("listening on {}", opts.listen);
    let result = turn(opts, &shared, &scrape_rx, &stop_tx);
    // Already sent when the loop ended; also on an early error.
    let _ = stop_tx.send(true);
    match server.join() {
        Ok(Err(e)) => log::warn!("HTTP server: {e}"),
        Err(_) => log::warn!("HTTP server thread panicked"),
        Ok(Ok(())) => {}
    }
    result
}

/// The engine loop, until SIGTERM or SIGINT.
fn turn(
    opts: &Options,
    shared: &http::Shared,
    scrapes: &mpsc::Receiver<http::ScrapeRequest>,
    stop_serving: &tokio::sync::watch::Sender<bool>,
) -> Result<(), DaemonError> {
    // No HDR histograms: the daemon exports fixed buckets.
    let mut engine = Engine::start(
        opts.selectors.clone(),
        opts.excluded_ports.clone(),
        false,
        opts.hooks.clone(),
        opts.cpu_interval,
    )?;
    engine.session.set_sidecars_max(opts.max_sidecars);
    log::info!(
        "attached the {} hook set; {} sidecar(s) found",
        engine.session.hook_set().name(),
        engine.session.agg.sidecars.len()
    );
    shared.ready.store(true, Ordering::Relaxed);
    let mut last_turn = Instant::now();
    // Before any rate is known, the wait a burst from idle allows.
    let mut wait_for = turn::next(0.0, engine.session.ring_rate().1);
    let mut last_expire = Instant::now();
    let mut lost_warned = (Instant::now(), engine.session.lost_events());
    while !crate::signals::interrupted() {
        let wait = wait_for.saturating_sub(last_turn.elapsed());
        match scrapes.recv_timeout(wait) {
            Ok(reply) => {
                // Current up to this moment: drain before copying.
                engine.session.drain();
                let _ = reply.send(Exposition::from_session(&engine.session));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        last_turn = Instant::now();
        engine.step()?;
        let (rate, slots) = engine.session.ring_rate();
        wait_for = turn::next(rate, slots);
        shared.heartbeat_s.store(http::now_s(), Ordering::Relaxed);
        if last_expire.elapsed() >= EXPIRE_EVERY {
            last_expire = Instant::now();
            let n = engine.session.expire(opts.series_ttl)?;
            if n > 0 {
                log::info!("forgot {n} sidecar(s) gone for over {:?}", opts.series_ttl);
            }
        }
        // Losses are counted in metrics; the log says so at most once a minute.
        if lost_warned.0.elapsed() >= LOST_WARN_EVERY {
            let lost = engine.session.lost_events();
            if lost > lost_warned.1 {
                log::warn!(
                    "{} records lost in the last {:?} (see profiler_events_lost_total)",
                    lost - lost_warned.1,
                    LOST_WARN_EVERY
                );
            }
            lost_warned = (Instant::now(), lost);
        }
    }
    // Stop serving first; the engine, dropped as this returns, detaches.
    let _ = stop_serving.send(true);
    log::info!("stopping: detaching programs");
    Ok(())
}
