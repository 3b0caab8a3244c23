//! Where a histogram is filled: per (sidecar, direction, leg), HDR
//! histograms of total, queue and process time in ns (1 µs to 60 s, 3
//! significant digits, so buckets are at most 512 ns wide below 1 ms and
//! 0.1% of the value above), the fixed buckets Prometheus is served, and
//! forward and byte counts.
pub mod buckets;
pub mod waits;

use std::collections::BTreeMap;

pub use buckets::Buckets;

use hdrhistogram::Histogram;
use profiler_common::pairing::{Basis, Forward};
use serde::Serialize;

use crate::classify::{Direction, Leg};

pub const LOWEST_NS: u64 = 1_000;
pub const HIGHEST_NS: u64 = 60_000_000_000;
pub const SIGFIG: u8 = 3;

pub struct HopStats {
    pub forwards: u64,
    /// Forwards whose source pairing could not decide (the oldest was taken).
    pub ambiguous: u64,
    /// Forwards whose process time is split (one thread, followed by the
    /// scheduler hooks from its read to its write): the on_cpu, runqueue,
    /// blocked and queue_runqueue components count these only.
    pub split: u64,
    pub bytes: u64,
    /// Each component in the exported buckets, in [`COMPONENTS`] order:
    /// what the daemon serves, a few hundred bytes each. Those not in
    /// [`EXPORTED`] stay empty.
    pub exported: [Buckets; COMPONENTS.len()],
    /// The same in HDR histograms, for a snapshot's percentiles; None in
    /// the daemon, which exports buckets only (each HDR histogram spans
    /// ~230 KB once values spread over its range).
    pub detail: Option<Box<[Histogram<u64>; COMPONENTS.len()]>>,
}

/// The components of a hop's time, as exported (the `component` label):
/// total = queue + process; process = on_cpu + runqueue + blocked;
/// queue_runqueue is the part of queue the reading thread spent runnable;
/// kernel_in is the pod edge to readable at the proxy's socket, for data
/// that came in through a watched pod edge; kernel_out is TCP sending the
/// proxy's write to its leaving through the edge; sidecar_total is the
/// data's whole way through the sidecar as stamped (see
/// `Forward::sidecar_total_ns`).
pub const COMPONENTS: [&str; 10] = [
    "total",
    "queue",
    "process",
    "on_cpu",
    "runqueue",
    "blocked",
    "queue_runqueue",
    "kernel_in",
    "kernel_out",
    "sidecar_total",
];

/// The components the daemon exports (blocked is process minus on_cpu and
/// runqueue in sums; it and queue_runqueue are in snapshots only, which
/// keeps a sidecar's series count down). kernel_in, kernel_out and
/// sidecar_total have observations only where the classifiers run.
pub const EXPORTED: [usize; 8] = [
    TOTAL,
    QUEUE,
    PROCESS,
    ON_CPU,
    RUNQUEUE,
    KERNEL_IN,
    KERNEL_OUT,
    SIDECAR_TOTAL,
];

/// Indices into [`COMPONENTS`].
pub const TOTAL: usize = 0;
pub const QUEUE: usize = 1;
pub const PROCESS: usize = 2;
pub const ON_CPU: usize = 3;
pub const RUNQUEUE: usize = 4;
pub const BLOCKED: usize = 5;
pub const QUEUE_RUNQUEUE: usize = 6;
pub const KERNEL_IN: usize = 7;
pub const KERNEL_OUT: usize = 8;
pub const SIDECAR_TOTAL: usize = 9;
/// The components only the pod edge's classifiers give.
pub const POD_EDGE: [usize; 3] = [KERNEL_IN, KERNEL_OUT, SIDECAR_TOTAL];

fn hist() -> Histogram<u64> {
    hist_of(SIGFIG)
}

/// An HDR histogram over the range every duration here is kept in (1 µs to
/// 60 s), with `sigfig` significant digits (1 to 5).
pub(crate) fn hist_of(sigfig: u8) -> Histogram<u64> {
    // Bounds are constants known to be valid.
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, sigfig).expect("valid histogram bounds")
}

/// A value as those histograms record it: below 1 µs as 1 µs, above 60 s
/// as 60 s.
pub(crate) const fn in_range(ns: u64) -> u64 {
    if ns < LOWEST_NS {
        LOWEST_NS
    } else if ns > HIGHEST_NS {
        HIGHEST_NS
    } else {
        ns
    }
}

/// The values of a forward's components; the split ones only when it has
/// a split.
fn components(f: &Forward) -> [Option<u64>; COMPONENTS.len()] {
    let s = f.split;
    // sidecar_total only where an end of the forward was stamped at a pod
    // edge; elsewhere it would be total again.
    let edge = f.kernel_in_ns().is_some() || f.kernel_out_ns().is_some();
    [
        Some(f.total_ns()),
        Some(f.queue_ns()),
        Some(f.process_ns()),
        s.map(|s| s.on_cpu_ns),
        s.map(|s| s.runnable_ns),
        s.map(|s| s.blocked_ns),
        s.map(|_| f.queue_runnable_ns),
        f.kernel_in_ns(),
        f.kernel_out_ns(),
        edge.then(|| f.sidecar_total_ns()),
    ]
}

impl HopStats {
    pub fn new(detail: bool) -> HopStats {
        HopStats {
            forwards: 0,
            ambiguous: 0,
            split: 0,
            bytes: 0,
            exported: Default::default(),
            detail: detail.then(|| Box::new(std::array::from_fn(|_| hist()))),
        }
    }

    /// Values are clamped into the HDR histograms' range: below 1 µs
    /// records as the lowest bucket (reported as < 1 µs resolution), above
    /// 60 s as 60 s. The exported buckets take them as they are.
    pub fn record(&mut self, f: &Forward) {
        self.forwards += 1;
        self.ambiguous += u64::from(f.basis == Basis::Ambiguous);
        self.split += u64::from(f.split.is_some());
        self.bytes += f.bytes;
        let values = components(f);
        // Only what is served: blocked and queue_runqueue are a
        // snapshot's, from its HDR histograms.
        for i in EXPORTED {
            if let Some(v) = values[i] {
                self.exported[i].record(v);
            }
        }
        if let Some(d) = &mut self.detail {
            for (h, v) in d.iter_mut().zip(values) {
                if let Some(v) = v {
                    h.saturating_record(in_range(v));
                }
            }
        }
    }

    /// Percentiles of each component, in [`COMPONENTS`] order; zero
    /// without detail.
    pub fn percentiles(&self) -> [Percentiles; COMPONENTS.len()] {
        match &self.detail {
            Some(d) => std::array::from_fn(|i| Percentiles::of(&d[i])),
            None => [Percentiles::default(); COMPONENTS.len()],
        }
    }
}

/// p50/p90/p99/p99.9/max and the mean, in µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Means add up along a path, where percentiles do not: the A/B
    /// cross-check compares them too.
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        // Below 1 µs all values share the lowest bucket; report its value.
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

pub type HopKey = (u32, Direction, Leg);

pub struct Hops {
    pub by_key: BTreeMap<HopKey, HopStats>,
    /// Whether new hops keep HDR histograms ([`HopStats::detail`]).
    pub detail: bool,
}

impl Hops {
    pub fn new(detail: bool) -> Hops {
        Hops {
            by_key: BTreeMap::new(),
            detail,
        }
    }

    pub fn record(&mut self, sidecar: u32, dir: Direction, leg: Leg, f: &Forward) {
        let detail = self.detail;
        self.by_key
            .entry((sidecar, dir, leg))
            .or_insert_with(|| HopStats::new(detail))
            .record(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(arrival: u64, read: u64, write: u64) -> Forward {
        Forward {
            tgid: 1,
            tid: 1,
            src_sk: 2,
            dst_sk: 3,
            arrival_ns: arrival,
            read_ns: read,
            write_ns: write,
            bytes: 100,
            basis: Basis::Only,
            split: None,
            queue_runnable_ns: 0,
            edge_in_ns: 0,
            edge_out: None,
        }
    }

    #[test]
    fn records_components_and_counts() {
        let mut s = HopStats::new(true);
        for i in 0..1000u64 {
            s.record(&fwd(0, 10_000 + i, 210_000 + i));
        }
        assert_eq!((s.forwards, s.bytes), (1000, 100_000));
        let [t, q, p, ..] = s.percentiles();
        assert!((p.p50 - 200.0).abs() <= 0.6, "{p:?}");
        assert!((p.mean - 200.0).abs() <= 0.6, "{p:?}");
        // Below 1 ms the buckets are 512 ns wide (lowest discernible 1 µs):
        // microsecond resolution.
        assert!((q.p50 - 10.5).abs() <= 0.6, "{q:?}");
        assert!((t.max - 210.999).abs() <= 0.6, "{t:?}");
        // Without detail: the same counts and exported buckets, no HDR.
        let mut lean = HopStats::new(false);
        for i in 0..1000u64 {
            lean.record(&fwd(0, 10_000 + i, 210_000 + i));
        }
        assert_eq!(lean.exported, s.exported);
        assert_eq!(
            lean.percentiles(),
            [Percentiles::default(); COMPONENTS.len()]
        );
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut s = HopStats::new(true);
        s.record(&fwd(0, 0, 10));
        s.record(&fwd(0, 0, 100_000_000_000));
        let p = s.percentiles()[PROCESS];
        assert_eq!(s.exported[2].count, 2);
        assert!((p.p50 - 1.0).abs() < 0.6);
        assert!(p.max >= 59_000_000.0);
        assert_eq!(HopStats::new(true).percentiles()[0], Percentiles::default());
    }

    #[test]
    fn split_components_count_split_forwards_only() {
        use profiler_common::sched::Split;
        let mut s = HopStats::new(true);
        s.record(&fwd(0, 10_000, 110_000));
        let mut f = fwd(0, 10_000, 110_000);
        f.split = Some(Split {
            on_cpu_ns: 30_000,
            runnable_ns: 60_000,
            blocked_ns: 10_000,
        });
        f.queue_runnable_ns = 4_000;
        s.record(&f);
        assert_eq!((s.forwards, s.split), (2, 1));
        assert_eq!(s.exported[PROCESS].count, 2);
        let parts = [ON_CPU, RUNQUEUE].map(|i| s.exported[i].sum_ns);
        assert_eq!(parts, [30_000, 60_000]);
        assert_eq!(s.exported[ON_CPU].count, 1);
        // Not served: in the HDR histograms only.
        assert_eq!(
            s.exported[BLOCKED].count + s.exported[QUEUE_RUNQUEUE].count,
            0
        );
        let p = s.percentiles();
        // One value each, within an HDR bucket's width (3 digits).
        assert!(
            (p[BLOCKED].max / 10.0 - 1.0).abs() < 0.03,
            "{:?}",
            p[BLOCKED]
        );
        let q = p[QUEUE_RUNQUEUE].max;
        assert!((q / 4.0 - 1.0).abs() < 0.03, "{:?}", p[QUEUE_RUNQUEUE]);
        assert!((p[RUNQUEUE].p50 - 60.0).abs() < 0.6, "{:?}", p[RUNQUEUE]);
        assert_eq!(s.exported[TOTAL].count, 2);
        assert_eq!(s.exported[QUEUE].sum_ns, 20_000);
    }
}
