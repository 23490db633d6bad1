//! Summaries of repeated measurements: median, min–max and p10–p90 of a sample, with nothing but arithmetic
//! (no clock, no I/O), so the numbers the bench prints can be unit-tested.

use serde::Serialize;

/// A sample summarised: `n` values, their median, extremes and 10th/90th percentiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p10: f64,
    pub p90: f64,
    pub mean: f64,
}

impl Summary {
    /// The summary of `samples`; `None` for an empty sample (or one holding a NaN).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        Some(Summary {
            n,
            median: quantile(&sorted, 0.5),
            min: sorted[0],
            max: sorted[n - 1],
            p10: quantile(&sorted, 0.1),
            p90: quantile(&sorted, 0.9),
            mean: sorted.iter().sum::<f64>() / n as f64,
        })
    }
}

/// The `q` quantile (0 ≤ q ≤ 1) of an ascending, non-empty slice, interpolating linearly between closest ranks
/// (the median of an even sample is the mean of the middle two).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(samples: &[f64], median: f64, min: f64, max: f64) {
        let s = Summary::of(samples).expect("a summary");
        assert_eq!((s.n, s.median, s.min, s.max), (samples.len(), median, min, max), "{samples:?}");
    }

    #[test]
    fn empty_and_nan_samples_have_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn medians_and_extremes() {
        check(&[5.0], 5.0, 5.0, 5.0);
        check(&[3.0, 1.0], 2.0, 1.0, 3.0);
        check(&[9.0, 1.0, 5.0], 5.0, 1.0, 9.0);
        check(&[4.0, 1.0, 3.0, 2.0], 2.5, 1.0, 4.0);
        check(&[-1.0, 7.0, 7.0, 7.0, 100.0], 7.0, -1.0, 100.0);
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let samples: Vec<f64> = (0..=10).map(f64::from).collect();
        let s = Summary::of(&samples).expect("a summary");
        assert_eq!((s.p10, s.p90, s.mean), (1.0, 9.0, 5.0));
        let s = Summary::of(&[10.0, 20.0]).expect("a summary");
        assert_eq!((s.p10, s.p90), (11.0, 19.0));
    }
}
