//! What one scrape sees: an owned copy of the engine's figures, taken
//! between two drains, so encoding never holds up the drain.
use crate::{
    classify::{Direction, Leg},
    histogram::Buckets,
};

use super::labels::SidecarLabels;

#[derive(Clone, Debug)]
pub struct HopSeries {
    /// Index into [`Exposition::sidecars`].
    pub sidecar: usize,
    pub direction: Direction,
    pub leg: Leg,
    pub forwards: u64,
    pub bytes: u64,
    /// Forwards whose process time is split.
    pub split: u64,
    /// [`crate::histogram::COMPONENTS`] order.
    pub components: [Buckets; crate::histogram::COMPONENTS.len()],
}

/// A table's fill: kernel maps and the userspace tables beside them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapFill {
    pub map: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Health {
    /// (reason, records or sockets lost since start).
    pub events_lost: Vec<(&'static str, u64)>,
    pub ambiguous_forwards: u64,
    pub maps: Vec<MapFill>,
    /// Hooks of the attached set (each one program).
    pub hooks: Vec<String>,
    /// (hook, runs the kernel skipped since it was attached).
    pub skipped_runs: Vec<(String, u64)>,
    pub sidecars_tracked: u64,
    /// Sidecars discovery found beyond the cap, not tracked.
    pub sidecars_over_cap: u64,
    pub version: String,
    pub hook_set: String,
    pub kernel: String,
}

#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub sidecars: Vec<SidecarLabels>,
    /// CPU and memory of each sidecar (same positions), since tracked.
    pub cpu: Vec<Option<crate::cpu::CpuReport>>,
    /// Run-queue waits of each sidecar's threads (same positions).
    pub waits: Vec<Buckets>,
    pub hops: Vec<HopSeries>,
    pub health: Health,
}

impl Exposition {
    /// The hops whose sidecar is listed (a hop of one not listed is left
    /// out of every family).
    pub fn listed_hops(&self) -> impl Iterator<Item = &HopSeries> {
        self.hops.iter().filter(|h| h.sidecar < self.sidecars.len())
    }

    pub fn from_session(s: &crate::collect::Session) -> Exposition {
        use profiler_common::maps::Counter;
        let sidecars: Vec<SidecarLabels> = s.agg.sidecars.iter().map(SidecarLabels::of).collect();
        let cpu = (0..sidecars.len())
            .map(|i| s.agg.cpu.get(i).and_then(|w| w.report(0)))
            .collect();
        let hops = s
            .agg
            .hops
            .by_key
            .iter()
            .map(|(&(i, direction, leg), h)| HopSeries {
                sidecar: i as usize,
                direction,
                leg,
                forwards: h.forwards,
                bytes: h.bytes,
                split: h.split,
                components: h.exported.clone(),
            })
            .collect();
        let health = Health {
            events_lost: vec![
                ("ring_full", s.counter(Counter::RingFull)),
                ("ring_busy", s.counter(Counter::RingBusy)),
                ("sched_resync", s.counter(Counter::SchedResync)),
                ("map_full", s.counter(Counter::MapFull)),
                ("unforwarded_reads_dropped", s.agg.pairing.counts().evicted),
            ],
            ambiguous_forwards: s.agg.pairing.counts().ambiguous,
            maps: s.map_fill(),
            hooks: s.attached_hooks().map(|h| h.describe()).collect(),
            skipped_runs: s
                .skipped_runs()
                .into_iter()
                .map(|(h, n)| (h.describe(), n))
                .collect(),
            sidecars_tracked: s.agg.tracked_sidecars() as u64,
            sidecars_over_cap: s.agg.sidecars_over_cap() as u64,
            version: env!("CARGO_PKG_VERSION").to_string(),
            hook_set: s.hook_set().name().to_string(),
            kernel: crate::kernel::release().unwrap_or_default(),
        };
        let waits = s.agg.waits.iter().map(|w| w.buckets.clone()).collect();
        Exposition {
            sidecars,
            cpu,
            waits,
            hops,
            health,
        }
    }
}
