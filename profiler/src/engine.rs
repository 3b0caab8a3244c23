//! The capture engine both front ends share: attach once, keep the tracked
//! set current from discovery, drain and pair. `snapshot` runs it for a
//! while; `run` keeps it alive and serves what it aggregates.
//!
//! Discovery runs on its own thread: a pass over /proc on a busy node
//! takes milliseconds to tens of milliseconds, and the drain must not wait
//! for it (the per-CPU rings would fill).
use std::{sync::mpsc, thread::JoinHandle, time::Duration};

use crate::{
    collect::{CollectError, Session},
    discovery::{Discovery, ProcInfo, Selector, Sidecar},
    ebpf::HookSet,
};

/// How often discovery runs: a new sidecar is tracked within this (plus
/// one /proc pass) of its start.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Privilege(String),
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[error("starting the discovery thread: {0}")]
    Thread(#[source] std::io::Error),
}

pub struct Engine {
    pub session: Session,
    discovered: mpsc::Receiver<Vec<Sidecar>>,
    /// Dropped to stop the discovery thread (which waits on it between
    /// passes, so it wakes only to work).
    stop: Option<mpsc::Sender<()>>,
    worker: Option<JoinHandle<()>>,
    /// What the first discovery saw (for "no sidecar matched" messages).
    seen: Vec<ProcInfo>,
    /// The last discovery applied: an unchanged one is not applied again
    /// (that would re-check every process's liveness for nothing).
    applied: Vec<Sidecar>,
}

impl Engine {
    /// Check privileges, discover sidecars (there may be none yet) and
    /// attach; `detail` keeps HDR histograms (a snapshot's percentiles);
    /// `hook_set` forces one set (None: the first that attaches).
    pub fn start(
        selectors: Vec<Selector>,
        excluded_ports: Vec<u16>,
        detail: bool,
        hook_set: Option<HookSet>,
    ) -> Result<Engine, EngineError> {
        if let Some(p) = missing_privilege() {
            return Err(EngineError::Privilege(p));
        }
        crate::kernel::mounts::ensure(crate::kernel::mounts::TRACEFS, "tracefs").ok();
        let mut discovery = Discovery::new(selectors);
        let sidecars = discovery.refresh();
        let seen = discovery.procs().cloned().collect();
        let session = Session::start(sidecars.clone(), excluded_ports, detail, hook_set)?;
        let (tx, discovered) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("discovery".into())
            .spawn(move || {
                // Until the engine drops its end.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_EVERY)
                {
                    if tx.send(discovery.refresh()).is_err() {
                        break;
                    }
                }
            })
            .map_err(EngineError::Thread)?;
        Ok(Engine {
            session,
            discovered,
            stop: Some(stop),
            worker: Some(worker),
            seen,
            applied: sidecars,
        })
    }

    /// Processes the first discovery saw.
    pub fn procs(&self) -> impl Iterator<Item = &ProcInfo> {
        self.seen.iter()
    }

    /// Drain what the kernel reported; take the latest discovery, if one
    /// came (new workers, new sidecars and restarted proxies).
    pub fn step(&mut self) -> Result<(), CollectError> {
        self.session.drain();
        if let Some(latest) = self.discovered.try_iter().last()
            && latest != self.applied
        {
            self.session.set_sidecars(latest.clone())?;
            self.applied = latest;
        }
        Ok(())
    }

    /// Pair every event still waiting: the capture is over.
    pub fn finish(&mut self) {
        self.session.finish();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Why the profiler cannot capture, if it cannot: names each capability
/// missing and what it is for.
pub fn missing_privilege() -> Option<String> {
    let mask = crate::kernel::caps::effective().ok()?;
    let missing = crate::kernel::caps::missing_for_capture(mask);
    (!missing.is_empty()).then(|| {
        format!(
            "missing privilege: {}; run as root or grant them (see deploy/daemonset.yaml)",
            missing.join(", ")
        )
    })
}
