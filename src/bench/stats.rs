//! Summary statistics of repeated timings.

/// The median, minimum and maximum of a set of samples (seconds per repetition).
///
/// The median of `n` sorted samples `s` is `s[n/2]` for odd `n` and `(s[n/2 - 1] + s[n/2]) / 2` for even `n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The median sample.
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// How many samples were taken.
    pub samples: usize,
}

impl Stats {
    /// Statistics of `samples`, ignoring NaN; `None` when no sample is left.
    pub fn from_samples(samples: &[f64]) -> Option<Stats> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stats {
            median,
            min: s[0],
            max: s[n - 1],
            samples: n,
        })
    }

    /// A rate from an amount of work per repetition (bytes or FLOP) and the median time: `amount / median`.
    pub fn rate(&self, amount: f64) -> f64 {
        amount / self.median
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Stats::from_samples(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.samples), (2.0, 1.0, 3.0, 3));
        let s = Stats::from_samples(&[4.0, 1.0, 2.0, 3.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.samples), (2.5, 1.0, 4.0, 4));
        assert!(Stats::from_samples(&[]).is_none());
        assert_eq!(s.rate(10.0), 4.0);
    }
}
