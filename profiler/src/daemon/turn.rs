//! How long the daemon waits between two drains. Each drain costs a
//! wake-up and a pass over every ring, so it waits long while the rings
//! fill slowly, and less as they fill faster, so that none overflows.

use std::time::Duration;

/// Never longer: a ring must also take a burst that starts right after a
/// drain.
pub const LONGEST: Duration = Duration::from_millis(100);
/// Never shorter (what a snapshot waits).
pub const SHORTEST: Duration = Duration::from_millis(10);
/// A burst from idle at this rate into one CPU's ring must not fill it
/// before the next drain: what the fixed 40 ms turn before this one allowed
/// with the smallest ring (2048 records, on machines with 32 or more CPUs).
const BURST_PER_S: f64 = 51_200.0;
/// At the rate just measured, the fullest ring is drained at most this
/// full, so a rate eight times higher still fits.
const FILL: f64 = 1.0 / 8.0;

/// The wait after a drain whose fullest CPU's ring filled at `rate`
/// records a second, for rings of `slots` records each.
pub fn next(rate: f64, slots: u64) -> Duration {
    let slots = slots as f64;
    let burst = slots / BURST_PER_S;
    let steady = if rate > 0.0 {
        slots * FILL / rate
    } else {
        f64::INFINITY
    };
    Duration::from_secs_f64(burst.min(steady).min(LONGEST.as_secs_f64())).max(SHORTEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    #[test]
    fn idle_rings_wait_longest_but_a_small_ring_keeps_its_burst_room() {
        // Two CPUs here: 32768 records a ring.
        assert_eq!(next(0.0, 32768), LONGEST);
        // 64 CPUs: 2048 a ring; 40 ms, as the fixed turn before.
        assert!((ms(next(0.0, 2048)) - 40.0).abs() < 0.01);
    }

    #[test]
    fn a_faster_fill_drains_sooner() {
        // The bench's 20k forwards/s on two CPUs: about 27k records a
        // second into the fullest ring; an eighth of it takes 150 ms.
        assert_eq!(next(27_000.0, 32768), LONGEST);
        // 72k forwards/s, about 97k records a second: 42 ms.
        let t = ms(next(97_000.0, 32768));
        assert!((t - 42.2).abs() < 0.1, "{t}");
        // Whatever the rate, the ring drained holds about an eighth.
        for rate in [50_000.0, 97_000.0, 200_000.0] {
            let t = next(rate, 32768).as_secs_f64();
            assert!((rate * t / 32768.0 - FILL).abs() < 1e-6, "{rate}");
        }
        // A 2048-record ring at 20k records a second: 12.8 ms.
        assert!((ms(next(20_000.0, 2048)) - 12.8).abs() < 0.01);
    }

    #[test]
    fn never_shorter_than_a_snapshot_waits() {
        assert_eq!(next(1e9, 2048), SHORTEST);
        assert_eq!(next(f64::MAX, 32768), SHORTEST);
    }
}
