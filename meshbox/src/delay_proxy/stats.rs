//! The fixture's own account of its forwards: every chunk read and every
//! chunk written per (direction, leg), read-to-write times in an HDR
//! histogram, published as JSON for the tests to compare with the profiler.
use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Mutex, PoisonError},
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The fixture's own account of one (direction, leg): read-to-write in µs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LegStats {
    pub forwards: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// From the read returning to the call of the write that finished the
    /// chunk (the time above less that write's own duration): where a clock
    /// stopped inside the write, as the profiler's is, cannot read less.
    #[serde(default)]
    pub before_write_p50_us: f64,
    #[serde(default)]
    pub before_write_p99_us: f64,
    /// Read-to-write-return [`RANK_SLACK`] forwards above p99's rank, and
    /// read-to-write-call as many below it: where p99 moves to if that many
    /// forwards were timed late by the fixture's own clock alone (its
    /// thread preempted between a read's return and the clock read after
    /// it, which the profiler's clock, inside the read, does not see). 0 in
    /// an account written before these were kept.
    #[serde(default)]
    pub p99_above_us: f64,
    #[serde(default)]
    pub before_write_p99_below_us: f64,
    /// The thread's own CPU time (CLOCK_THREAD_CPUTIME_ID) from the read
    /// returning to the write returning: what the profiler's on-CPU part of
    /// process time measures (threads and spin modes only; 0 otherwise).
    #[serde(default)]
    pub on_cpu_p50_us: f64,
    #[serde(default)]
    pub on_cpu_p99_us: f64,
    #[serde(default)]
    pub on_cpu_max_us: f64,
    /// The thread's CPU time [`RANK_SLACK`] forwards above and below p99's
    /// rank: where p99 moves to if that many forwards differ between the
    /// two clocks for a reason neither controls. On a VM the kernel leaves
    /// out of a thread's CPU time the time the hypervisor held its vCPU
    /// (steal), while the profiler's switch-to-switch clock counts it. 0 in
    /// an account written before these were kept.
    #[serde(default)]
    pub on_cpu_p99_above_us: f64,
    #[serde(default)]
    pub on_cpu_p99_below_us: f64,
}

impl LegStats {
    /// Process p99's bounds [`RANK_SLACK`] forwards from its rank:
    /// read-to-write-call below, read-to-write-return above (p99's own in
    /// an account written before these were kept).
    pub fn process_p99_bounds(&self) -> (f64, f64) {
        (
            moved_below(self.before_write_p99_below_us, self.before_write_p99_us),
            self.p99_above_us.max(self.p99_us),
        )
    }

    /// The thread CPU time's p99 bounds [`RANK_SLACK`] forwards from its
    /// rank (p99's own in an older account).
    pub fn on_cpu_p99_bounds(&self) -> (f64, f64) {
        (
            moved_below(self.on_cpu_p99_below_us, self.on_cpu_p99_us),
            self.on_cpu_p99_above_us.max(self.on_cpu_p99_us),
        )
    }
}

/// A lower bound moved down from `own`; 0 means it was not kept.
fn moved_below(moved: f64, own: f64) -> f64 {
    if moved > 0.0 { moved.min(own) } else { own }
}

/// Forwards by which p99's rank may move (see [`LegStats::p99_above_us`]):
/// at the matrix's 400 to 640 forwards a leg, under 1% of them.
pub const RANK_SLACK: u64 = 3;

/// Keyed "inbound/request", "outbound/response", ...
pub type Stats = BTreeMap<String, LegStats>;

/// Exact counts of one (direction, leg), for checks that percentiles can't make.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegCounts {
    /// Chunks read (one per read call that returned data).
    pub reads: u64,
    /// Chunks written in full; equals `reads` once nothing is in flight.
    pub forwards: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Shortest and longest read-to-write, in ns (0 before the first forward).
    pub min_ns: u64,
    pub max_ns: u64,
}

struct Leg {
    hist: Histogram<u64>,
    before_write: Histogram<u64>,
    on_cpu: Histogram<u64>,
    counts: LegCounts,
}

impl Default for Leg {
    fn default() -> Leg {
        let h = || Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds");
        Leg {
            hist: h(),
            before_write: h(),
            on_cpu: h(),
            counts: LegCounts::default(),
        }
    }
}

/// Shared by the proxy's thread(s) and the publisher; the lock is taken
/// once per chunk and is uncontended but for the publisher's 10 Hz, and
/// the threads mode takes it outside the read-to-write it times.
#[derive(Default)]
pub struct Recorder {
    legs: Mutex<BTreeMap<&'static str, Leg>>,
}

impl Recorder {
    fn with<R>(&self, key: &'static str, f: impl FnOnce(&mut Leg) -> R) -> R {
        let mut legs = self.legs.lock().unwrap_or_else(PoisonError::into_inner);
        f(legs.entry(key).or_default())
    }

    /// A read returned `bytes` (> 0): one chunk.
    pub fn read(&self, key: &'static str, bytes: usize) {
        self.with(key, |l| {
            l.counts.reads += 1;
            l.counts.bytes_read += bytes as u64;
        });
    }

    /// The write that completed a chunk of `bytes` returned `took_ns` after
    /// its read did, and was called `before_write_ns` after it.
    pub fn forward(&self, key: &'static str, bytes: usize, took_ns: u64, before_write_ns: u64) {
        self.with(key, |l| {
            let c = &mut l.counts;
            c.min_ns = if c.forwards == 0 {
                took_ns
            } else {
                c.min_ns.min(took_ns)
            };
            c.max_ns = c.max_ns.max(took_ns);
            c.forwards += 1;
            c.bytes_written += bytes as u64;
            // Values past the histogram's 60 s are clamped rather than lost,
            // so the forwards count stays exact.
            l.hist.saturating_record(took_ns.max(1));
            l.before_write.saturating_record(before_write_ns.max(1));
        });
    }

    /// The forwarding thread ran `ns` of a chunk's read-to-write.
    pub fn on_cpu(&self, key: &'static str, ns: u64) {
        self.with(key, |l| l.on_cpu.saturating_record(ns.max(1)));
    }

    pub fn counts(&self, key: &'static str) -> LegCounts {
        let legs = self.legs.lock().unwrap_or_else(PoisonError::into_inner);
        legs.get(key).map(|l| l.counts).unwrap_or_default()
    }

    pub fn stats(&self) -> Stats {
        let legs = self.legs.lock().unwrap_or_else(PoisonError::into_inner);
        legs.iter()
            .filter(|(_, l)| l.counts.forwards > 0)
            .map(|(k, l)| {
                let h = &l.hist;
                let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                let cpu = |q: f64| l.on_cpu.value_at_quantile(q) as f64 / 1000.0;
                let moved = RANK_SLACK as f64 / l.counts.forwards as f64;
                let stats = LegStats {
                    forwards: l.counts.forwards,
                    p50_us: us(0.5),
                    p90_us: us(0.9),
                    p99_us: us(0.99),
                    max_us: l.counts.max_ns as f64 / 1000.0,
                    before_write_p50_us: l.before_write.value_at_quantile(0.5) as f64 / 1000.0,
                    before_write_p99_us: l.before_write.value_at_quantile(0.99) as f64 / 1000.0,
                    p99_above_us: us((0.99 + moved).min(1.0)),
                    before_write_p99_below_us: l
                        .before_write
                        .value_at_quantile((0.99 - moved).max(0.0))
                        as f64
                        / 1000.0,
                    on_cpu_p50_us: cpu(0.5),
                    on_cpu_p99_us: cpu(0.99),
                    on_cpu_max_us: l.on_cpu.max() as f64 / 1000.0,
                    on_cpu_p99_above_us: cpu((0.99 + moved).min(1.0)),
                    on_cpu_p99_below_us: cpu((0.99 - moved).max(0.0)),
                };
                (k.to_string(), stats)
            })
            .collect()
    }

    /// Write the stats to `path`, replaced atomically so a reader never
    /// sees half of it.
    pub fn publish(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(&self.stats()).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json).map_err(|e| {
            std::io::Error::new(e.kind(), format!("writing {}: {e}", tmp.display()))
        })?;
        std::fs::rename(&tmp, path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("renaming {} into place: {e}", tmp.display()),
            )
        })
    }
}

pub fn read_stats(path: &Path) -> std::io::Result<Stats> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_chunk_and_publishes_what_it_counted() {
        let r = Recorder::default();
        for took in [5_000, 1_000, 9_000] {
            r.read("inbound/request", 10);
            r.forward("inbound/request", 10, took, took / 2);
            r.on_cpu("inbound/request", took / 4);
        }
        r.read("inbound/request", 4);
        let c = r.counts("inbound/request");
        assert_eq!((c.reads, c.forwards), (4, 3));
        assert_eq!((c.bytes_read, c.bytes_written), (34, 30));
        assert_eq!((c.min_ns, c.max_ns), (1_000, 9_000));
        let dir = std::env::temp_dir().join(format!("delay-proxy-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("stats.json");
        r.publish(&path).expect("publish");
        let back = read_stats(&path).expect("read back");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(back.len(), 1);
        let leg = &back["inbound/request"];
        assert_eq!(leg.forwards, 3);
        assert_eq!(leg.max_us, 9.0);
        assert!((leg.p50_us - 5.0).abs() < 0.01, "{leg:?}");
        assert!((leg.before_write_p50_us - 2.5).abs() < 0.01, "{leg:?}");
        assert!((leg.on_cpu_p50_us - 1.25).abs() < 0.01, "{leg:?}");
    }

    /// p99's bounds a few forwards away: with 200 forwards of 1..=200 µs,
    /// p99 is the 198th, three above it the 200th (the most), three below
    /// it the 195th.
    #[test]
    fn p99_bounds_a_few_forwards_away() {
        let r = Recorder::default();
        for us in 1..=200u64 {
            r.read("inbound/response", 1);
            r.forward("inbound/response", 1, us * 1000, us * 1000);
            r.on_cpu("inbound/response", us * 500);
        }
        let leg = &r.stats()["inbound/response"];
        let near = |got: f64, want: f64| (got - want).abs() < 0.2;
        assert!(near(leg.p99_us, 198.0), "{leg:?}");
        assert!(near(leg.p99_above_us, 200.0), "{leg:?}");
        assert!(near(leg.before_write_p99_below_us, 195.0), "{leg:?}");
        assert!(near(leg.on_cpu_p99_us, 99.0), "{leg:?}");
        assert!(near(leg.on_cpu_p99_above_us, 100.0), "{leg:?}");
        assert!(near(leg.on_cpu_p99_below_us, 97.5), "{leg:?}");
    }
}
