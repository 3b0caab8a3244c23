//! A tiny xorshift64* generator for the event-loop mode's random holds: no
//! dependency, good enough to spread holds uniformly, not for secrets.
use super::monotonic_ns;

pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the pid, so two sidecars draw differently.
    pub fn from_time() -> Rng {
        Rng::new(monotonic_ns() ^ (u64::from(std::process::id()) << 32))
    }

    pub fn new(seed: u64) -> Rng {
        // xorshift's state must never be zero.
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [lo, hi], both included (lo <= hi).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        let span = u128::from(hi - lo) + 1;
        // Scale a 64-bit draw onto the span (multiply-shift, no modulo bias worth noting).
        lo + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_bounds_and_spread_over_them() {
        let mut r = Rng::new(42);
        let (lo, hi) = (200_000, 1_000_000);
        let draws: Vec<u64> = (0..10_000).map(|_| r.between(lo, hi)).collect();
        assert!(draws.iter().all(|d| (lo..=hi).contains(d)));
        let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
        assert!((mean - 600_000.0).abs() < 20_000.0, "mean {mean}");
        assert!(*draws.iter().min().expect("draws") < lo + 10_000);
        assert!(*draws.iter().max().expect("draws") > hi - 10_000);
        assert_eq!(r.between(7, 7), 7);
        // The widest span must not overflow.
        let _ = r.between(0, u64::MAX);
    }
}
