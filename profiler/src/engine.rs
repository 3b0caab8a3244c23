//! The capture engine both front ends share: attach once, keep the tracked
//! set current from discovery, drain and pair. `snapshot` runs it for a
//! while; `run` keeps it alive and serves what it aggregates.
use std::time::{Duration, Instant};

use crate::{
    collect::{CollectError, Session},
    discovery::{Discovery, ProcInfo, Selector},
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
}

pub struct Engine {
    pub session: Session,
    discovery: Discovery,
    last_refresh: Instant,
}

impl Engine {
    /// Check privileges, discover sidecars (there may be none yet) and attach.
    pub fn start(
        selectors: Vec<Selector>,
        excluded_ports: Vec<u16>,
    ) -> Result<Engine, EngineError> {
        if let Some(p) = missing_privilege() {
            return Err(EngineError::Privilege(p));
        }
        crate::kernel::mounts::ensure(crate::kernel::mounts::TRACEFS, "tracefs").ok();
        let mut discovery = Discovery::new(selectors);
        let sidecars = discovery.refresh();
        Ok(Engine {
            session: Session::start(sidecars, excluded_ports)?,
            discovery,
            last_refresh: Instant::now(),
        })
    }

    /// Processes the last discovery saw.
    pub fn procs(&self) -> impl Iterator<Item = &ProcInfo> {
        self.discovery.procs()
    }

    /// Drain what the kernel reported; rediscover when due (new workers,
    /// new sidecars and restarted proxies are picked up).
    pub fn step(&mut self) -> Result<(), CollectError> {
        self.session.drain();
        if self.last_refresh.elapsed() >= REFRESH_EVERY {
            self.last_refresh = Instant::now();
            self.session.set_sidecars(self.discovery.refresh())?;
        }
        Ok(())
    }

    /// Pair every event still waiting: the capture is over.
    pub fn finish(&mut self) {
        self.session.finish();
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
