//! `profiler snapshot`: capture for a while, then report per sidecar.
use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use crate::{
    discovery::{self, Selector},
    ebpf::Hooks,
    engine::{Engine, EngineError},
    report::Snapshot,
};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no sidecar matched {selectors}; processes seen that look like proxies: {seen}")]
    NoSidecar { selectors: String, seen: String },
    /// Privilege, attach, discovery: what `run` can hit too.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A snapshot samples its sidecars' CPU and memory every second.
pub const SAMPLE_CPU_EVERY: Duration = Duration::from_secs(1);

pub struct Options {
    pub duration: Duration,
    pub selectors: Vec<Selector>,
    pub excluded_ports: Vec<u16>,
    pub progress: bool,
    /// Force one hook set (None: the first that attaches here).
    pub hooks: Hooks,
}

/// Processes a user might have meant, for the "no sidecar matched" message.
fn proxy_like(all: &[discovery::ProcInfo]) -> String {
    let mut names: Vec<String> = all
        .iter()
        .filter(|p| {
            matches!(
                p.comm.as_str(),
                "envoy" | "nginx" | "haproxy" | "pilot-agent" | "linkerd2-proxy"
            ) || p.pod.is_some()
        })
        .map(|p| format!("{} (pid {}, uid {})", p.comm, p.pid, p.uid))
        .collect();
    names.truncate(20);
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

pub fn run(opts: &Options) -> Result<Snapshot, SnapshotError> {
    let mut c = start(opts)?;
    let elapsed = capture(&mut c, opts)?;
    Ok(Snapshot::from_session(&c.session, elapsed))
}

/// The engine a snapshot is a window on.
pub type Capture = Engine;

/// Check privileges, discover sidecars and attach; at least one sidecar
/// must match.
pub fn start(opts: &Options) -> Result<Capture, SnapshotError> {
    let engine = Engine::start(
        opts.selectors.clone(),
        opts.excluded_ports.clone(),
        true,
        opts.hooks.clone(),
        SAMPLE_CPU_EVERY,
    )?;
    if engine.session.agg.sidecars.is_empty() {
        let all: Vec<_> = engine.procs().cloned().collect();
        return Err(SnapshotError::NoSidecar {
            selectors: format!("{:?}", opts.selectors),
            seen: proxy_like(&all),
        });
    }
    Ok(engine)
}

/// Drain forwards for the duration (or until interrupted); returns the
/// seconds captured.
pub fn capture(c: &mut Capture, opts: &Options) -> Result<f64, SnapshotError> {
    let start = Instant::now();
    let tty = opts.progress && std::io::stderr().is_terminal();
    let mut last_shown = start;
    while start.elapsed() < opts.duration && !crate::signals::interrupted() {
        std::thread::sleep(Duration::from_millis(10));
        c.step().map_err(EngineError::from)?;
        if tty && last_shown.elapsed() >= Duration::from_secs(1) {
            last_shown = Instant::now();
            let done = start.elapsed().as_secs_f64() / opts.duration.as_secs_f64();
            let width = 30;
            let filled = ((done * width as f64) as usize).min(width);
            let forwards: u64 = c.session.agg.hops.by_key.values().map(|h| h.forwards).sum();
            eprint!(
                "\r[{}{}] {:>3.0}%  forwards so far: {forwards}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                done * 100.0,
            );
            let _ = std::io::stderr().flush();
        }
    }
    c.finish();
    if tty {
        eprintln!();
    }
    Ok(start.elapsed().as_secs_f64())
}
