//! Fixed buckets for the exported hop-duration histograms: 5 µs to 10 s,
//! four per decade (1, 2, 3, 5 x 10^k). Prometheus sums buckets across
//! sidecars and scrapes, so every sidecar must use the same bounds; the HDR
//! histograms beside them keep the microsecond detail `snapshot` reports.

/// Upper bounds in ns, ascending; a value above the last is counted only in
/// +Inf (the count).
pub const BOUNDS_NS: [u64; 26] = [
    5_000,
    10_000,
    20_000,
    30_000,
    50_000,
    100_000,
    200_000,
    300_000,
    500_000,
    1_000_000,
    2_000_000,
    3_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    30_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    300_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    3_000_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Per-bucket (not cumulative) counts, the sum in ns and the count. Laid
/// out from a cache line's start with the sum and count first, so that a
/// value up to 100 µs (most of a hop's) is filled in one cache line: the
/// daemon fills six to eight of these a forward, across every sidecar's.
#[repr(C, align(64))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buckets {
    pub sum_ns: u64,
    pub count: u64,
    /// `counts[i]`: values in (BOUNDS_NS[i-1], BOUNDS_NS[i]]; the last slot
    /// holds values above every bound.
    pub counts: [u64; BOUNDS_NS.len() + 1],
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            sum_ns: 0,
            count: 0,
            counts: [0; BOUNDS_NS.len() + 1],
        }
    }
}

/// For each power of two, the slot of the values from it up. No power of
/// two spans more than two bounds, so a value's slot is at most two steps
/// from its power's: the daemon fills eight buckets per forward, and a
/// binary search each cost more than all else in filling them.
const FROM_POW2: [u8; 64] = from_pow2();

const fn from_pow2() -> [u8; 64] {
    let mut t = [0u8; 64];
    let mut p = 0;
    while p < 64 {
        let v = 1u64 << p;
        let mut s = 0;
        while s < BOUNDS_NS.len() && BOUNDS_NS[s] < v {
            s += 1;
        }
        t[p] = s as u8;
        p += 1;
    }
    t
}

/// The slot a value falls in: the first bound at or above it (`le`).
pub fn slot(ns: u64) -> usize {
    if ns == 0 {
        return 0;
    }
    let mut s = FROM_POW2[ns.ilog2() as usize] as usize;
    while s < BOUNDS_NS.len() && BOUNDS_NS[s] < ns {
        s += 1;
    }
    s
}

impl Buckets {
    pub fn record(&mut self, ns: u64) {
        self.counts[slot(ns)] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.count += 1;
    }

    /// (upper bound in seconds, per-bucket count), +Inf last.
    pub fn in_seconds(&self) -> Vec<(f64, u64)> {
        BOUNDS_NS
            .iter()
            .map(|&b| b as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_5us_to_10s_with_four_per_decade() {
        assert_eq!(BOUNDS_NS[0], 5_000);
        assert_eq!(*BOUNDS_NS.last().unwrap_or(&0), 10_000_000_000);
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        // Every decade from 10 µs to 10 s holds four bounds.
        for k in 4..10 {
            let lo = 10u64.pow(k);
            let n = BOUNDS_NS
                .iter()
                .filter(|&&b| b > lo && b <= lo * 10)
                .count();
            assert_eq!(n, 4, "decade above {lo} ns");
        }
    }

    #[test]
    fn the_slot_is_the_first_bound_at_or_above() {
        let first_at_or_above = |ns: u64| BOUNDS_NS.partition_point(|&b| b < ns);
        let mut values = vec![0, 1, u64::MAX];
        for &b in &BOUNDS_NS {
            values.extend([b - 1, b, b + 1, b / 2, b * 3 / 2]);
        }
        for p in 0..64 {
            let v = 1u64 << p;
            values.extend([v - 1, v, v + 1]);
        }
        for v in values {
            assert_eq!(slot(v), first_at_or_above(v), "{v} ns");
        }
        // No power of two spans more than two bounds (the at most two steps).
        for p in 0..63 {
            let (lo, hi) = (1u64 << p, 1u64 << (p + 1));
            let n = BOUNDS_NS.iter().filter(|&&b| b >= lo && b < hi).count();
            assert!(n <= 2, "{n} bounds in [{lo}, {hi})");
        }
    }

    #[test]
    fn a_value_up_to_100us_is_filled_in_the_first_cache_line() {
        use std::mem::{align_of, offset_of};
        assert_eq!(align_of::<Buckets>(), 64);
        assert!(offset_of!(Buckets, sum_ns) < 64 && offset_of!(Buckets, count) < 64);
        assert_eq!(slot(100_000), 5);
        assert!(offset_of!(Buckets, counts) + (slot(100_000) + 1) * 8 <= 64);
    }

    #[test]
    fn a_value_on_a_bound_counts_in_that_bucket() {
        assert_eq!(slot(0), 0);
        assert_eq!(slot(5_000), 0);
        assert_eq!(slot(5_001), 1);
        assert_eq!(slot(10_000_000_000), BOUNDS_NS.len() - 1);
        assert_eq!(slot(10_000_000_001), BOUNDS_NS.len());
        let mut b = Buckets::default();
        for ns in [1_000, 5_000, 7_000, 40_000, 20_000_000_000] {
            b.record(ns);
        }
        assert_eq!(b.count, 5);
        assert_eq!(b.sum_ns, 20_000_053_000);
        let s = b.in_seconds();
        assert_eq!(s.len(), BOUNDS_NS.len() + 1);
        assert_eq!(s[0], (5e-6, 2));
        assert_eq!(s[1], (1e-5, 1));
        assert_eq!(s[4], (5e-5, 1));
        assert_eq!(s[BOUNDS_NS.len()], (f64::INFINITY, 1));
        assert_eq!(s.iter().map(|x| x.1).sum::<u64>(), b.count);
    }
}
