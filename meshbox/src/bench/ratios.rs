//! The user's-view A/B in numbers: each round measures every arm once, so
//! an arm's ratio to the unprofiled baseline is taken within its round
//! (drift between rounds cancels) and summarised over rounds as the median
//! with its range.
use serde::Serialize;

/// Median, smallest and largest of a series (rounds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// None for an empty series or one holding a NaN.
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// Round by round, `arm / baseline`; a round where the baseline measured
/// nothing (0) gives no ratio.
pub fn per_round(arm: &[f64], baseline: &[f64]) -> Vec<f64> {
    arm.iter()
        .zip(baseline)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect()
}

/// The throughput lost: 1 - the median ratio of max rates.
pub fn loss(throughput: &Spread) -> f64 {
    1.0 - throughput.median
}

/// Whether the profiler's throughput loss is within `factor` times the
/// empty programs' loss. When the empty programs cost nothing measurable
/// (a loss at or below 0), the profiler must lose nothing either.
pub fn loss_within(profiler: &Spread, empty: &Spread, factor: f64) -> bool {
    let (p, e) = (loss(profiler), loss(empty));
    if e <= 0.0 { p <= 0.0 } else { p <= factor * e }
}

/// Which arm a round measures at its `slot`: the order turns each round,
/// so no arm is always first (after an idle pause) or last.
pub fn order(round: usize, arms: usize) -> Vec<usize> {
    (0..arms).map(|slot| (round + slot) % arms).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(v: &[f64]) -> Spread {
        Spread::of(v).expect("a series without NaN")
    }

    #[test]
    fn spread_is_the_median_and_range_of_any_order() {
        let s = spread(&[0.95, 0.90, 1.0]);
        assert_eq!(
            s,
            Spread {
                median: 0.95,
                min: 0.90,
                max: 1.0
            }
        );
        let even = spread(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(even.median, 2.5);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn ratios_are_taken_within_each_round_and_skip_an_empty_baseline() {
        // Round 2 ran slower for every arm: the ratio does not move.
        let base = [1000.0, 500.0, 0.0];
        let arm = [950.0, 475.0, 10.0];
        assert_eq!(per_round(&arm, &base), vec![0.95, 0.95]);
    }

    #[test]
    fn the_loss_goal_compares_losses_not_ratios() {
        let empty = spread(&[0.96]);
        // 4% empty loss: 6% is the bound at 1.5x.
        assert!(loss_within(&spread(&[0.941]), &empty, 1.5));
        assert!(!loss_within(&spread(&[0.93]), &empty, 1.5));
        // Empty programs lost nothing measurable: any loss misses.
        let free = spread(&[1.01]);
        assert!(!loss_within(&spread(&[0.99]), &free, 1.5));
        assert!(loss_within(&spread(&[1.0]), &free, 1.5));
    }

    #[test]
    fn each_arm_takes_each_slot_in_turn() {
        assert_eq!(order(0, 3), vec![0, 1, 2]);
        assert_eq!(order(1, 3), vec![1, 2, 0]);
        assert_eq!(order(2, 3), vec![2, 0, 1]);
        assert_eq!(order(3, 3), vec![0, 1, 2]);
    }
}
