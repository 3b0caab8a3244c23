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
    ebpf::Hooks,
    kernel::cgroup_cpu::CpuAccounting,
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
    discovered: mpsc::Receiver<Discovered>,
    /// Dropped to stop the discovery thread (which waits on it between
    /// passes, so it wakes only to work).
    stop: Option<mpsc::Sender<()>>,
    worker: Option<JoinHandle<()>>,
    /// What the first discovery saw (for "no sidecar matched" messages).
    seen: Vec<ProcInfo>,
    /// The last discovery applied: an unchanged one is not applied again
    /// (that would re-check every process's liveness for nothing).
    applied: Vec<Sidecar>,
    /// The snapshot's own samples (start and end).
    sampler: crate::cpu::Sampler,
    /// Snapshots also sample at their start and end (exact windows).
    detail: bool,
    /// Discoveries taken, to prune ended threads every [`PRUNE_EVERY`].
    passes: u64,
}

/// Every how many discoveries ended threads leave the scheduler's table
/// (a syscall per thread followed: not every second).
const PRUNE_EVERY: u64 = 10;

/// One discovery pass: the sidecars, and a CPU and memory sample of each
/// taken right after (every [`REFRESH_EVERY`], off the drain's thread).
struct Discovered {
    sidecars: Vec<Sidecar>,
    samples: Vec<crate::cpu::Sample>,
}

fn sample_all(sidecars: &[Sidecar], sampler: &mut crate::cpu::Sampler) -> Vec<crate::cpu::Sample> {
    let samples = sidecars.iter().map(|s| sampler.sample(&s.procs)).collect();
    sampler.sweep();
    samples
}

impl Engine {
    /// Sample every known sidecar now (a snapshot's first and last sample).
    fn sample_cpu(&mut self) {
        let known = self.session.agg.sidecars.clone();
        let samples = sample_all(&known, &mut self.sampler);
        self.session.agg.add_cpu(&known, samples);
    }

    /// Check privileges, discover sidecars (there may be none yet) and
    /// attach; `detail` keeps HDR histograms (a snapshot's percentiles)
    /// and samples CPU at the start and end too; `hooks` may force one set
    /// and leave out the scheduler hooks; sidecars' CPU and memory are
    /// sampled every `cpu_every` (in whole discovery periods, at least one).
    pub fn start(
        selectors: Vec<Selector>,
        excluded_ports: Vec<u16>,
        detail: bool,
        hooks: Hooks,
        cpu_every: Duration,
    ) -> Result<Engine, EngineError> {
        if let Some(p) = missing_privilege() {
            return Err(EngineError::Privilege(p));
        }
        crate::kernel::mounts::ensure(crate::kernel::mounts::TRACEFS, "tracefs").ok();
        let mut discovery = Discovery::new(selectors);
        let sidecars = discovery.refresh();
        let seen = discovery.procs().cloned().collect();
        let session = Session::start(sidecars.clone(), excluded_ports, detail, hooks)?;
        let acc = crate::kernel::cgroup_cpu::detect().unwrap_or(CpuAccounting {
            v1_cpu: None,
            v1_cpuacct: None,
            v2_root: None,
            v2_cpu: false,
        });
        let (tx, discovered) = mpsc::channel();
        let mut thread_sampler = crate::cpu::Sampler::new(acc.clone(), detail);
        // Every how many discovery passes the sidecars are sampled.
        let every = (cpu_every.as_millis() / REFRESH_EVERY.as_millis()).max(1);
        let mut pass = 0u128;
        let (stop, stopped) = mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("discovery".into())
            .spawn(move || {
                // Until the engine drops its end.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_EVERY)
                {
                    let sidecars = discovery.refresh();
                    pass += 1;
                    let samples = if pass.is_multiple_of(every) {
                        sample_all(&sidecars, &mut thread_sampler)
                    } else {
                        Vec::new()
                    };
                    if tx.send(Discovered { sidecars, samples }).is_err() {
                        break;
                    }
                }
            })
            .map_err(EngineError::Thread)?;
        let mut engine = Engine {
            session,
            discovered,
            stop: Some(stop),
            worker: Some(worker),
            seen,
            applied: sidecars,
            sampler: crate::cpu::Sampler::new(acc, detail),
            detail,
            passes: 0,
        };
        if detail {
            engine.sample_cpu();
        }
        Ok(engine)
    }

    /// Processes the first discovery saw.
    pub fn procs(&self) -> impl Iterator<Item = &ProcInfo> {
        self.seen.iter()
    }

    /// Drain what the kernel reported; take the latest discovery, if one
    /// came (new workers, new sidecars and restarted proxies), and its CPU
    /// samples.
    pub fn step(&mut self) -> Result<(), CollectError> {
        self.session.drain();
        if let Some(latest) = self.discovered.try_iter().last() {
            if latest.sidecars != self.applied {
                self.session.set_sidecars(latest.sidecars.clone())?;
                self.applied = latest.sidecars.clone();
            }
            self.session.agg.add_cpu(&latest.sidecars, latest.samples);
            self.passes += 1;
            if self.passes.is_multiple_of(PRUNE_EVERY) {
                self.session.prune_threads();
            }
        }
        Ok(())
    }

    /// Pair every event still waiting, and take the last CPU sample: the
    /// capture is over.
    pub fn finish(&mut self) {
        self.session.finish();
        if self.detail {
            self.sample_cpu();
        }
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
