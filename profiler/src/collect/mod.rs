//! A profiling session: the kernel side ([`kernel`]: attach, tracked set,
//! rings) feeding the aggregation side ([`aggregate`]: time order, pairing,
//! classification, histograms), kept in step with discovery.
pub mod aggregate;
mod decode;
mod filter;
pub mod kernel;
mod merge;
mod ring;
pub mod skipped;

pub use aggregate::{Aggregate, SIDECARS_MAX, Tally};
pub use decode::Event;

use std::time::Instant;

use profiler_common::maps::Counter;

use crate::{
    discovery::{ProcInfo, Sidecar},
    ebpf::{EbpfError, HookSet, Hooks},
};

/// Events this recent wait for the next drain: a CPU's ring may still be
/// receiving an earlier one (a thread that read on one CPU and wrote on
/// another), and pairing needs every thread's events in time order.
const SETTLE_NS: u64 = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
    #[error("no hook set attaches on this kernel ({0}); run `profiler check` for details")]
    NoHookSet(String),
    #[error(
        "hook set `{set}` does not attach on this kernel ({why}); run `profiler check` to see which sets do, or leave out --hook-set"
    )]
    HookSetRefused { set: &'static str, why: String },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("map {0} is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("mapping the per-CPU rings into memory failed: {0}")]
    Rings(#[source] std::io::Error),
    #[error("the classifiers on the pod edges: {0}")]
    Edge(#[from] crate::edge::EdgeError),
}

pub struct Session {
    kernel: kernel::Kernel,
    pub agg: Aggregate,
    /// Proxy threads the scheduler hooks follow (at the last prune).
    threads_followed: usize,
    /// The last drain, and how fast the fullest CPU's ring filled before it
    /// (records a second), which sets the daemon's next turn.
    last_drain: Instant,
    ring_rate: f64,
}

impl Session {
    /// `detail`: keep HDR histograms per hop (a snapshot's percentiles);
    /// `hooks`: a forced set, and whether the scheduler hooks attach.
    pub fn start(
        sidecars: Vec<Sidecar>,
        excluded_ports: Vec<u16>,
        detail: bool,
        hooks: Hooks,
    ) -> Result<Session, CollectError> {
        let mut s = Session {
            kernel: kernel::Kernel::attach(hooks)?,
            agg: Aggregate::new(excluded_ports, detail),
            threads_followed: 0,
            last_drain: Instant::now(),
            ring_rate: 0.0,
        };
        s.agg.sched_split = s.kernel.sched.is_ok();
        s.set_sidecars(sidecars)?;
        Ok(s)
    }

    pub fn hook_set(&self) -> HookSet {
        self.kernel.hook_set
    }

    /// Merge a fresh discovery; the kernel's tracked set and proxy ports
    /// follow, if they changed.
    pub fn set_sidecars(&mut self, fresh: Vec<Sidecar>) -> Result<(), CollectError> {
        let t = self.agg.set_sidecars(fresh, ProcInfo::is_alive);
        self.kernel.track(&t.tgids, &t.ports)
    }

    /// Most sidecars known at once (discovery's excess is counted).
    pub fn set_sidecars_max(&mut self, max: usize) {
        self.agg.set_sidecars_max(max);
    }

    /// Forget sidecars gone for longer than `ttl`; returns how many.
    pub fn expire(&mut self, ttl: std::time::Duration) -> Result<usize, CollectError> {
        match self.agg.expire(ttl, ProcInfo::is_alive) {
            Some((n, t)) => {
                self.kernel.track(&t.tgids, &t.ports)?;
                Ok(n)
            }
            None => Ok(0),
        }
    }

    /// Take every record the kernel has reported so far and pair all but
    /// the most recent events (see [`SETTLE_NS`]); returns how many records
    /// were taken.
    pub fn drain(&mut self) -> usize {
        let horizon = crate::kernel::clock::monotonic_ns().saturating_sub(SETTLE_NS);
        self.drain_until(horizon)
    }

    /// Take every record and pair every event: the capture is over.
    pub fn finish(&mut self) -> usize {
        self.drain_until(u64::MAX)
    }

    fn drain_until(&mut self, horizon: u64) -> usize {
        let agg = &mut self.agg;
        let (fullest, taken) = self.kernel.drain(|r| agg.take(r));
        let now = Instant::now();
        let secs = now.duration_since(self.last_drain).as_secs_f64();
        if secs > 0.0 {
            self.ring_rate = fullest as f64 / secs;
        }
        self.last_drain = now;
        self.agg.settle(horizon);
        taken
    }

    /// How fast the fullest CPU's ring filled between the last two drains
    /// (records a second), and the records one ring holds.
    pub fn ring_rate(&self) -> (f64, u64) {
        (self.ring_rate, self.kernel.ring_slots_per_cpu())
    }

    /// Forget ended threads in the scheduler's table; keeps the count of
    /// threads followed for [`Session::map_fill`].
    pub fn prune_threads(&mut self) {
        self.threads_followed = self.kernel.prune_threads();
    }

    /// The classifiers on the pod edges (how they attach, on which
    /// interfaces); None when not asked for.
    pub fn pod_edges(&self) -> Option<&crate::edge::Edges> {
        self.kernel.pod_edges()
    }

    /// The scheduler hooks attached, or why none are.
    pub fn sched(&self) -> Result<&'static [crate::ebpf::Hook], &str> {
        self.kernel.sched.as_ref().copied().map_err(String::as_str)
    }

    /// Fill of the kernel maps and userspace tables that have a bound.
    pub fn map_fill(&self) -> Vec<crate::metrics::MapFill> {
        use crate::metrics::MapFill;
        use profiler_common::maps as names;
        let fill = |map, entries: usize, capacity: u64| MapFill {
            map,
            entries: entries as u64,
            capacity,
        };
        vec![
            fill(
                "tracked",
                self.kernel.tracked_len(),
                u64::from(names::TRACKED_MAX),
            ),
            fill(
                "proxy_ports",
                self.kernel.ports_len(),
                u64::from(names::PROXY_PORTS_MAX),
            ),
            fill("sockets", self.agg.sockets(), aggregate::SOCKS_MAX as u64),
            fill(
                "threads",
                self.threads_followed,
                u64::from(profiler_common::sched::THREAD_SCHED_MAX),
            ),
            fill(
                "sidecars",
                self.agg.sidecars.len(),
                self.agg.sidecars_max() as u64,
            ),
        ]
    }

    pub fn ring_capacity(&self) -> u64 {
        self.kernel.ring_capacity()
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.kernel.counter(c)
    }

    /// The hooks attached: the set's, then the scheduler's.
    pub fn attached_hooks(&self) -> impl Iterator<Item = &'static crate::ebpf::Hook> + '_ {
        self.kernel.attached_hooks()
    }

    /// Runs the kernel skipped, per attached hook (see [`skipped`]).
    pub fn skipped_runs(&self) -> Vec<(crate::ebpf::Hook, u64)> {
        self.kernel.skipped_runs()
    }

    pub fn program_stats(&self) -> Vec<(String, u64, u64)> {
        self.kernel.program_stats()
    }

    /// Records lost (a CPU's ring full, or a writer interrupted) and
    /// sockets whose arrivals could not be recorded (map full).
    pub fn lost_events(&self) -> u64 {
        self.counter(Counter::RingFull)
            + self.counter(Counter::RingBusy)
            + self.counter(Counter::MapFull)
    }
}
