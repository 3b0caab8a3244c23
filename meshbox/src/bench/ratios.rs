//! The user's-view A/B in numbers: each round measures every arm once, so
//! an arm's ratio to the unprofiled baseline is taken within its round
//! (drift between rounds cancels) and summarised over rounds as the median
//! with its range. A goal is judged by an interval for that median, not by
//! the median alone: on a noisy machine seven rounds may not tell.
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

/// The confidence [`median_interval`] is asked for here.
pub const CONFIDENCE: f64 = 0.95;

/// A distribution-free interval for the median of the population a series
/// was drawn from: its k-th smallest and k-th largest values, for the
/// largest k at which the interval holds the median with at least
/// `confidence` (the count of values below the median is binomial, n and
/// 1/2). None when even [min, max] holds it less often (at 95%, fewer than
/// 6 values), or for a series holding a NaN.
pub fn median_interval(values: &[f64], confidence: f64) -> Option<(f64, f64)> {
    let n = values.len();
    if n == 0 || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    // P(X <= j) for X ~ Binomial(n, 1/2), j = 0..n.
    let mut below = Vec::with_capacity(n + 1);
    let (mut term, mut sum) = (0.5f64.powi(n as i32), 0.0);
    for j in 0..=n {
        sum += term;
        below.push(sum);
        term *= (n - j) as f64 / (j + 1) as f64;
    }
    // [x_(k), x_(n+1-k)] misses the median with probability 2 P(X <= k-1).
    let k = (1..=n / 2)
        .take_while(|&k| 1.0 - 2.0 * below[k - 1] >= confidence)
        .last()?;
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some((v[k - 1], v[n - k]))
}

/// What a goal's rounds say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The median's interval lies on the goal's side.
    Met,
    /// It lies on the other side.
    Missed,
    /// It straddles the goal, or the rounds are too few for an interval:
    /// more rounds, or a quieter machine, are needed to tell.
    NotJudgeable,
    /// An arm the goal compares was left out of the run (`--arms`).
    NotMeasured,
}

impl Verdict {
    /// For a goal `value >= bound`, from the per-round values.
    pub fn at_least(values: &[f64], bound: f64) -> Verdict {
        match median_interval(values, CONFIDENCE) {
            Some((lo, _)) if lo >= bound => Verdict::Met,
            Some((_, hi)) if hi < bound => Verdict::Missed,
            _ => Verdict::NotJudgeable,
        }
    }

    /// For a goal `value <= bound`.
    pub fn at_most(values: &[f64], bound: f64) -> Verdict {
        let negated: Vec<f64> = values.iter().map(|v| -v).collect();
        Verdict::at_least(&negated, -bound)
    }

    pub fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::NotJudgeable => "not judgeable",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// Round by round, how far the profiler's throughput ratio `p` is inside
/// the loss goal against the empty programs' ratio `e` of the same round:
/// 1 - p <= factor (1 - e) holds where this is >= 0.
pub fn loss_margin(p: &[f64], e: &[f64], factor: f64) -> Vec<f64> {
    p.iter()
        .zip(e)
        .map(|(p, e)| factor * (1.0 - e) - (1.0 - p))
        .collect()
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
    fn the_median_interval_widens_to_the_confidence_asked() {
        // Seven values: only [min, max] holds the median 95% of the time
        // (1 - 2/128 = 98.4%; the next one in, 87.5%).
        let seven = [5.0, 1.0, 7.0, 3.0, 2.0, 6.0, 4.0];
        assert_eq!(median_interval(&seven, 0.95), Some((1.0, 7.0)));
        assert_eq!(median_interval(&seven, 0.85), Some((2.0, 6.0)));
        // Five: even [min, max] holds it 93.75% of the time.
        assert_eq!(median_interval(&seven[..5], 0.95), None);
        assert_eq!(median_interval(&seven[..6], 0.95), Some((1.0, 7.0)));
        // 25 values 1..=25: the 8th and 18th (P(X <= 7) = 2.16%: 95.7%).
        let many: Vec<f64> = (1..=25).rev().map(f64::from).collect();
        assert_eq!(median_interval(&many, 0.95), Some((8.0, 18.0)));
        assert_eq!(median_interval(&[], 0.95), None);
        assert_eq!(median_interval(&[1.0; 7].map(|v| v * f64::NAN), 0.95), None);
    }

    #[test]
    fn a_verdict_needs_the_whole_interval_on_one_side() {
        let around = [0.97, 0.99, 1.0, 1.01, 1.02, 1.03, 1.05];
        assert_eq!(Verdict::at_least(&around, 0.96), Verdict::Met);
        assert_eq!(Verdict::at_least(&around, 1.06), Verdict::Missed);
        assert_eq!(Verdict::at_least(&around, 0.98), Verdict::NotJudgeable);
        assert_eq!(Verdict::at_most(&around, 1.05), Verdict::Met);
        assert_eq!(Verdict::at_most(&around, 0.96), Verdict::Missed);
        assert_eq!(Verdict::at_most(&around, 1.0), Verdict::NotJudgeable);
        // Too few rounds to tell, however clear they look.
        assert_eq!(Verdict::at_least(&around[..5], 0.5), Verdict::NotJudgeable);
    }

    #[test]
    fn the_loss_margin_is_taken_within_each_round() {
        // Empty programs lost 4% and the profiler 5%: inside 1.5 x by 1
        // point; a round where the empty programs ran 1% fast leaves no
        // room for a loss.
        let m = loss_margin(&[0.95, 0.99], &[0.96, 1.01], 1.5);
        assert!(
            (m[0] - 0.01).abs() < 1e-12 && (m[1] - (-0.025)).abs() < 1e-12,
            "{m:?}"
        );
    }

    #[test]
    fn each_arm_takes_each_slot_in_turn() {
        assert_eq!(order(0, 3), vec![0, 1, 2]);
        assert_eq!(order(1, 3), vec![1, 2, 0]);
        assert_eq!(order(2, 3), vec![2, 0, 1]);
        assert_eq!(order(3, 3), vec![0, 1, 2]);
    }
}
