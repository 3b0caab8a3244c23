//! Where a sidecar's run-queue waits are counted: each time one of its
//! threads got a CPU after waiting runnable (woken, preempted or throttled
//! first), the wait goes into the exported buckets and, for a snapshot, an
//! HDR histogram.
use hdrhistogram::Histogram;

use super::{Buckets, Percentiles, SIGFIG, hist_of, in_range};

pub struct Waits {
    pub buckets: Buckets,
    detail: Option<Box<Histogram<u64>>>,
}

impl Waits {
    pub fn new(detail: bool) -> Waits {
        Waits {
            buckets: Buckets::default(),
            detail: detail.then(|| Box::new(hist_of(SIGFIG))),
        }
    }

    pub fn record(&mut self, wait_ns: u64) {
        self.buckets.record(wait_ns);
        if let Some(h) = &mut self.detail {
            h.saturating_record(in_range(wait_ns));
        }
    }

    /// None without detail or without a wait.
    pub fn percentiles(&self) -> Option<Percentiles> {
        let h = self.detail.as_ref()?;
        (!h.is_empty()).then(|| Percentiles::of(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fill_buckets_and_percentiles() {
        let mut w = Waits::new(true);
        assert_eq!(w.percentiles(), None);
        for ns in [2_000, 4_000, 3_000_000] {
            w.record(ns);
        }
        assert_eq!((w.buckets.count, w.buckets.sum_ns), (3, 3_006_000));
        let p = w.percentiles().expect("waits recorded");
        assert!(
            (p.p50 - 4.0).abs() < 0.6 && (p.max - 3000.0).abs() < 2.0,
            "{p:?}"
        );
        let mut lean = Waits::new(false);
        lean.record(5);
        assert_eq!((lean.buckets.count, lean.percentiles()), (1, None));
    }
}
