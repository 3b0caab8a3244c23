//! Where hop latency is tied to CPU signals over time (snapshots): between
//! two CPU samples of a sidecar, its forwards' latency and its threads'
//! run-queue waits are accumulated; at each sample the interval closes into
//! one point of a series (forward rate, CPU %, throttled time, run-queue
//! wait p99, queue, process and total p99). An interval is *flagged* when
//! its hop latency has a tail (total p99 at or above [`TAIL_NS`]) and a CPU
//! signal coincides: the container was throttled in it, or waiting for a
//! CPU (run-queue time in queue and process) makes up a quarter or more of
//! the forwards' p99. Over the series, the report gives how total p99 moves
//! with each signal (Pearson's r).
use hdrhistogram::Histogram;
use profiler_common::pairing::Forward;

use crate::histogram::in_range;
use serde::Serialize;

/// A hop p99 at or above this is a tail (a sidecar adds tens of µs).
pub const TAIL_NS: u64 = 1_000_000;
/// Intervals kept per sidecar (10 minutes at one a second).
pub const INTERVALS_MAX: usize = 600;

/// One point of the series.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Interval {
    /// Its start, in seconds since the sidecar's first sample.
    pub start_s: f64,
    pub seconds: f64,
    pub forwards_per_s: f64,
    /// Run time of its processes over the interval, % of one core.
    pub cpu_percent: f64,
    pub cpu_us_per_forward: Option<f64>,
    pub throttled_seconds: Option<f64>,
    /// Waits of its threads on a run queue that ended in the interval.
    pub runqueue_wait_p99_us: Option<f64>,
    /// Over the interval's forwards, all hops of the sidecar.
    pub queue_p99_us: Option<f64>,
    pub process_p99_us: Option<f64>,
    pub total_p99_us: Option<f64>,
    /// Of split forwards: run-queue time in queue and process together.
    pub cpu_wait_p99_us: Option<f64>,
    /// "throttled", "runqueue": the CPU signals that coincide with a tail.
    pub flags: Vec<&'static str>,
}

/// How total p99 moved with each signal over the intervals: Pearson's r,
/// None with fewer than three intervals or a signal that never moved.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Correlation {
    pub cpu_percent: Option<f64>,
    pub throttled_seconds: Option<f64>,
    pub runqueue_wait_p99_us: Option<f64>,
}

/// What one interval's end brings: its span and its CPU figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Step {
    pub from_ns: u64,
    pub to_ns: u64,
    pub run_s: f64,
    pub throttled_s: Option<f64>,
}

fn hist() -> Histogram<u64> {
    // Two significant digits are enough for a per-interval p99 and keep
    // each histogram small (a snapshot keeps five per sidecar).
    crate::histogram::hist_of(2)
}

/// A sidecar's series and the interval being accumulated.
pub struct Intervals {
    pub list: Vec<Interval>,
    /// When the first interval began (its first sample).
    origin_ns: Option<u64>,
    forwards: u64,
    queue: Histogram<u64>,
    process: Histogram<u64>,
    total: Histogram<u64>,
    cpu_wait: Histogram<u64>,
    waits: Histogram<u64>,
}

impl Default for Intervals {
    fn default() -> Intervals {
        Intervals {
            list: Vec::new(),
            origin_ns: None,
            forwards: 0,
            queue: hist(),
            process: hist(),
            total: hist(),
            cpu_wait: hist(),
            waits: hist(),
        }
    }
}

fn p99_us(h: &Histogram<u64>) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0)
}

impl Intervals {
    pub fn record(&mut self, f: &Forward) {
        self.forwards += 1;
        self.queue.saturating_record(in_range(f.queue_ns()));
        self.process.saturating_record(in_range(f.process_ns()));
        self.total.saturating_record(in_range(f.total_ns()));
        if let Some(s) = f.split {
            self.cpu_wait
                .saturating_record(in_range(s.runnable_ns + f.queue_runnable_ns));
        }
    }

    pub fn wait(&mut self, wait_ns: u64) {
        self.waits.saturating_record(in_range(wait_ns));
    }

    /// Close the interval the sample at `step.to_ns` ends; the first
    /// sample only starts the series.
    pub fn close(&mut self, step: Option<Step>) {
        let Some(step) = step else {
            return;
        };
        let origin = *self.origin_ns.get_or_insert(step.from_ns);
        let seconds = step.to_ns.saturating_sub(step.from_ns) as f64 / 1e9;
        let mut i = Interval {
            start_s: step.from_ns.saturating_sub(origin) as f64 / 1e9,
            seconds,
            forwards_per_s: if seconds > 0.0 {
                self.forwards as f64 / seconds
            } else {
                0.0
            },
            cpu_percent: if seconds > 0.0 {
                100.0 * step.run_s / seconds
            } else {
                0.0
            },
            cpu_us_per_forward: (self.forwards > 0)
                .then(|| step.run_s * 1e6 / self.forwards as f64),
            throttled_seconds: step.throttled_s,
            runqueue_wait_p99_us: p99_us(&self.waits),
            queue_p99_us: p99_us(&self.queue),
            process_p99_us: p99_us(&self.process),
            total_p99_us: p99_us(&self.total),
            cpu_wait_p99_us: p99_us(&self.cpu_wait),
            flags: Vec::new(),
        };
        i.flags = flags(&i);
        if self.list.len() >= INTERVALS_MAX {
            self.list.remove(0);
        }
        self.list.push(i);
        self.forwards = 0;
        for h in [
            &mut self.queue,
            &mut self.process,
            &mut self.total,
            &mut self.cpu_wait,
            &mut self.waits,
        ] {
            h.reset();
        }
    }

    pub fn correlation(&self) -> Correlation {
        let with = |signal: fn(&Interval) -> Option<f64>| {
            let (xs, ys): (Vec<f64>, Vec<f64>) = self
                .list
                .iter()
                .filter_map(|i| Some((signal(i).unwrap_or(0.0), i.total_p99_us?)))
                .unzip();
            pearson(&xs, &ys)
        };
        Correlation {
            cpu_percent: with(|i| Some(i.cpu_percent)),
            throttled_seconds: with(|i| i.throttled_seconds),
            runqueue_wait_p99_us: with(|i| i.runqueue_wait_p99_us),
        }
    }
}

/// The CPU signals that coincide with a tail in this interval.
pub fn flags(i: &Interval) -> Vec<&'static str> {
    let tail_us = TAIL_NS as f64 / 1000.0;
    let Some(total) = i.total_p99_us.filter(|t| *t >= tail_us) else {
        return Vec::new();
    };
    let mut f = Vec::new();
    if i.throttled_seconds.is_some_and(|t| t > 0.0) {
        f.push("throttled");
    }
    if i.cpu_wait_p99_us.is_some_and(|w| w >= 0.25 * total) {
        f.push("runqueue");
    }
    f
}

/// Pearson's correlation coefficient; None below three points or when
/// either side never moves.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    if n < 3 {
        return None;
    }
    let mean = |v: &[f64]| v[..n].iter().sum::<f64>() / n as f64;
    let (mx, my) = (mean(xs), mean(ys));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for k in 0..n {
        let (dx, dy) = (xs[k] - mx, ys[k] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= f64::EPSILON || syy <= f64::EPSILON {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod tests {
    use profiler_common::{pairing::Basis, sched::Split};

    use super::*;

    /// A split forward whose run-queue time is `cpu_wait_us`, in process
    /// as far as it goes, the rest in queue.
    fn fwd(queue_us: u64, process_us: u64, cpu_wait_us: u64) -> Forward {
        let in_process = cpu_wait_us.min(process_us);
        Forward {
            tgid: 1,
            tid: 1,
            src_sk: 2,
            dst_sk: 3,
            arrival_ns: 0,
            read_ns: queue_us * 1000,
            write_ns: (queue_us + process_us) * 1000,
            bytes: 1,
            basis: Basis::Only,
            split: Some(Split {
                on_cpu_ns: (process_us - in_process) * 1000,
                runnable_ns: in_process * 1000,
                blocked_ns: 0,
            }),
            queue_runnable_ns: (cpu_wait_us - in_process) * 1000,
            edge_in_ns: 0,
            edge_out: None,
        }
    }

    fn step(k: u64, run_s: f64, throttled_s: f64) -> Option<Step> {
        Some(Step {
            from_ns: k * 1_000_000_000,
            to_ns: (k + 1) * 1_000_000_000,
            run_s,
            throttled_s: Some(throttled_s),
        })
    }

    #[test]
    fn intervals_close_at_each_sample_and_start_over() {
        let mut s = Intervals::default();
        s.close(None);
        assert!(s.list.is_empty());
        for _ in 0..100 {
            s.record(&fwd(20, 30, 0));
        }
        s.wait(5_000);
        s.close(step(0, 0.05, 0.0));
        let i = &s.list[0];
        assert_eq!((i.start_s, i.seconds, i.forwards_per_s), (0.0, 1.0, 100.0));
        assert!((i.cpu_percent - 5.0).abs() < 1e-9, "{i:?}");
        assert!(
            i.cpu_us_per_forward
                .is_some_and(|c| (c - 500.0).abs() < 1e-9)
        );
        assert!(
            i.total_p99_us.is_some_and(|t| (t - 50.0).abs() < 1.0),
            "{i:?}"
        );
        // Buckets are 512 ns wide here (lowest discernible value 1 µs).
        assert!(
            i.runqueue_wait_p99_us
                .is_some_and(|w| (w - 5.0).abs() < 0.6),
            "{i:?}"
        );
        assert!(i.flags.is_empty());
        // Nothing in the next one: no forwards, no percentiles.
        s.close(step(1, 0.0, 0.0));
        let j = &s.list[1];
        assert_eq!(
            (j.start_s, j.forwards_per_s, j.total_p99_us),
            (1.0, 0.0, None)
        );
    }

    #[test]
    fn a_tail_with_throttling_or_run_queue_wait_is_flagged() {
        let mut s = Intervals::default();
        // Calm: no tail, nothing flagged even if throttled a little.
        s.record(&fwd(20, 30, 0));
        s.close(step(0, 0.1, 0.01));
        // A tail of 3 ms while throttled, 2 ms of it waiting for a CPU.
        s.record(&fwd(2_500, 500, 2_000));
        s.close(step(1, 0.1, 0.09));
        // A tail with neither: the proxy's own work (or an app), not flagged.
        s.record(&fwd(20, 3_000, 0));
        s.close(step(2, 0.1, 0.0));
        let flags: Vec<_> = s.list.iter().map(|i| i.flags.clone()).collect();
        assert_eq!(flags, [vec![], vec!["throttled", "runqueue"], vec![]]);
    }

    #[test]
    fn correlation_follows_the_signal_that_moves_with_the_tail() {
        let mut s = Intervals::default();
        for (k, throttled, p99_ms) in [(0, 0.0, 0.1), (1, 0.05, 2.0), (2, 0.0, 0.1), (3, 0.08, 3.0)]
        {
            s.record(&fwd(10, (p99_ms * 1000.0) as u64, 0));
            s.close(step(k, 0.1, throttled));
        }
        let c = s.correlation();
        assert!(c.throttled_seconds.is_some_and(|r| r > 0.9), "{c:?}");
        // CPU % never moved: no figure, not a made-up one.
        assert_eq!(c.cpu_percent, None);
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert!(
            pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).is_some_and(|r| (r + 1.0).abs() < 1e-9)
        );
    }

    #[test]
    fn the_series_is_bounded() {
        let mut s = Intervals::default();
        for k in 0..(INTERVALS_MAX as u64 + 5) {
            s.close(step(k, 0.0, 0.0));
        }
        assert_eq!(s.list.len(), INTERVALS_MAX);
        assert_eq!(s.list[0].start_s, 5.0);
    }
}
