//! Where a histogram is filled: per (sidecar, direction, leg), HDR
//! histograms of total, queue and process time in ns (1 µs to 60 s, 3
//! significant digits, so buckets are at most 512 ns wide below 1 ms and
//! 0.1% of the value above), the fixed buckets Prometheus is served, and
//! forward and byte counts.
pub mod buckets;

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
    pub bytes: u64,
    /// Total, queue and process in the exported buckets, in [`COMPONENTS`]
    /// order: what the daemon serves, a few hundred bytes per hop.
    pub exported: [Buckets; 3],
    /// The same in HDR histograms, for a snapshot's percentiles; None in
    /// the daemon, which exports buckets only (each HDR histogram spans
    /// ~230 KB once values spread over its range).
    pub detail: Option<Box<Detail>>,
}

pub struct Detail {
    pub total: Histogram<u64>,
    pub queue: Histogram<u64>,
    pub process: Histogram<u64>,
}

/// The components of a hop's time, as exported (the `component` label).
pub const COMPONENTS: [&str; 3] = ["total", "queue", "process"];

fn hist() -> Histogram<u64> {
    // Bounds are constants known to be valid.
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGFIG).expect("valid histogram bounds")
}

impl HopStats {
    pub fn new(detail: bool) -> HopStats {
        HopStats {
            forwards: 0,
            ambiguous: 0,
            bytes: 0,
            exported: Default::default(),
            detail: detail.then(|| {
                Box::new(Detail {
                    total: hist(),
                    queue: hist(),
                    process: hist(),
                })
            }),
        }
    }

    /// Values are clamped into the HDR histograms' range: below 1 µs
    /// records as the lowest bucket (reported as < 1 µs resolution), above
    /// 60 s as 60 s. The exported buckets take them as they are.
    pub fn record(&mut self, f: &Forward) {
        self.forwards += 1;
        self.ambiguous += u64::from(f.basis == Basis::Ambiguous);
        self.bytes += f.bytes;
        let ns = [f.total_ns(), f.queue_ns(), f.process_ns()];
        for (b, v) in self.exported.iter_mut().zip(ns) {
            b.record(v);
        }
        if let Some(d) = &mut self.detail {
            let clamp = |v: u64| v.clamp(LOWEST_NS, HIGHEST_NS);
            d.total.saturating_record(clamp(ns[0]));
            d.queue.saturating_record(clamp(ns[1]));
            d.process.saturating_record(clamp(ns[2]));
        }
    }

    /// Percentiles of (total, queue, process); zero without detail.
    pub fn percentiles(&self) -> [Percentiles; 3] {
        match &self.detail {
            Some(d) => [
                Percentiles::of(&d.total),
                Percentiles::of(&d.queue),
                Percentiles::of(&d.process),
            ],
            None => [Percentiles::default(); 3],
        }
    }
}

/// p50/p90/p99/p99.9/max in µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
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
        }
    }

    #[test]
    fn records_components_and_counts() {
        let mut s = HopStats::new(true);
        for i in 0..1000u64 {
            s.record(&fwd(0, 10_000 + i, 210_000 + i));
        }
        assert_eq!((s.forwards, s.bytes), (1000, 100_000));
        let [t, q, p] = s.percentiles();
        assert!((p.p50 - 200.0).abs() <= 0.6, "{p:?}");
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
        assert_eq!(lean.percentiles(), [Percentiles::default(); 3]);
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut s = HopStats::new(true);
        s.record(&fwd(0, 0, 10));
        s.record(&fwd(0, 0, 100_000_000_000));
        let [_, _, p] = s.percentiles();
        assert_eq!(s.exported[2].count, 2);
        assert!((p.p50 - 1.0).abs() < 0.6);
        assert!(p.max >= 59_000_000.0);
        assert_eq!(HopStats::new(true).percentiles()[0], Percentiles::default());
    }
}
