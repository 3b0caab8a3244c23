//! `profiler snapshot`: capture for a while, then report per sidecar.
use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use crate::{
    collect::{CollectError, Session},
    discovery::{self, Discovery, Selector},
    report::Snapshot,
};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no sidecar matched {selectors}; processes seen that look like proxies: {seen}")]
    NoSidecar { selectors: String, seen: String },
    #[error("{0}")]
    Privilege(String),
    #[error(transparent)]
    Collect(#[from] CollectError),
}

pub struct Options {
    pub duration: Duration,
    pub selectors: Vec<Selector>,
    pub excluded_ports: Vec<u16>,
    pub progress: bool,
}

/// Why the profiler cannot load programs, if it cannot: names the capability.
pub fn missing_privilege() -> Option<String> {
    let mask = crate::kernel::caps::effective().ok()?;
    let (_, missing) = crate::kernel::caps::split(mask);
    let needed: Vec<_> = missing
        .into_iter()
        .filter(|c| matches!(*c, "CAP_BPF" | "CAP_PERFMON" | "CAP_SYS_ADMIN"))
        .collect();
    (!needed.is_empty()).then(|| {
        format!(
            "missing privilege: {} (needed to load and attach eBPF programs and read other processes' /proc); run as root",
            needed.join(", ")
        )
    })
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

/// A session and the discovery that keeps its sidecars current.
pub struct Capture {
    pub session: Session,
    discovery: Discovery,
}

/// Check privileges, discover sidecars and attach.
pub fn start(opts: &Options) -> Result<Capture, SnapshotError> {
    if let Some(p) = missing_privilege() {
        return Err(SnapshotError::Privilege(p));
    }
    crate::kernel::mounts::ensure(crate::kernel::mounts::TRACEFS, "tracefs").ok();
    let mut discovery = Discovery::new(opts.selectors.clone());
    let sidecars = discovery.refresh();
    if sidecars.is_empty() {
        let all: Vec<_> = discovery.procs().cloned().collect();
        return Err(SnapshotError::NoSidecar {
            selectors: format!("{:?}", opts.selectors),
            seen: proxy_like(&all),
        });
    }
    Ok(Capture {
        session: Session::start(sidecars, opts.excluded_ports.clone())?,
        discovery,
    })
}

/// Drain forwards for the duration (or until interrupted); returns the
/// seconds captured.
pub fn capture(c: &mut Capture, opts: &Options) -> Result<f64, SnapshotError> {
    let Capture { session, discovery } = c;
    let start = Instant::now();
    let mut last_refresh = start;
    let tty = opts.progress && std::io::stderr().is_terminal();
    while start.elapsed() < opts.duration && !crate::signals::interrupted() {
        std::thread::sleep(Duration::from_millis(10));
        session.drain();
        if last_refresh.elapsed() >= Duration::from_secs(1) {
            last_refresh = Instant::now();
            // New workers, new sidecars and restarted proxies are picked up.
            session.set_sidecars(discovery.refresh())?;
            if tty {
                let done = start.elapsed().as_secs_f64() / opts.duration.as_secs_f64();
                let width = 30;
                let filled = ((done * width as f64) as usize).min(width);
                eprint!(
                    "\r[{}{}] {:>3.0}%  forwards so far: {}",
                    "#".repeat(filled),
                    " ".repeat(width - filled),
                    done * 100.0,
                    session
                        .hops
                        .by_key
                        .values()
                        .map(|h| h.forwards)
                        .sum::<u64>()
                );
                let _ = std::io::stderr().flush();
            }
        }
    }
    session.finish();
    if tty {
        eprintln!();
    }
    Ok(start.elapsed().as_secs_f64())
}
