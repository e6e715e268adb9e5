//! Metrics of a classifier's outputs, computed on the CPU in f64 from logits read back from the GPU.
//!
//! For logits `z` of one row and its label `y`, the softmax probabilities are `p_j = exp(z_j - m) / S` with
//! `m = max_j z_j` and `S = sum_j exp(z_j - m)` (shifting by `m` keeps every exponent `<= 0`), and
//! `log p_y = z_y - m - ln S`.
//!
//! - accuracy: the fraction of rows whose largest logit (first on ties) is the label;
//! - NLL (mean cross-entropy): `-(1/N) sum_i log p_{y_i}`;
//! - ECE (expected calibration error, Guo et al. 2017) with `B` equal-width bins of the confidence
//!   `c_i = max_j p_ij`: row `i` goes to bin `b = min(floor(c_i B), B - 1)`, and
//!   `ECE = sum_b (n_b / N) |acc_b - conf_b|`, where `acc_b` and `conf_b` are the accuracy and the mean
//!   confidence of the `n_b` rows in bin `b` (empty bins add nothing).

/// How many equal-width confidence bins [`Scores`] uses for the ECE.
pub const ECE_BINS: usize = 15;

/// Accuracy, NLL and ECE of a set of logits against their labels (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Fraction of rows classified correctly.
    pub accuracy: f64,
    /// Mean negative log-likelihood of the labels, `-(1/N) sum_i log p_{y_i}` (nats).
    pub nll: f64,
    /// Expected calibration error over [`ECE_BINS`] bins.
    pub ece: f64,
}

/// Log-softmax of one row, in f64: `log p_j = z_j - m - ln sum_k exp(z_k - m)`, `m = max z`.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let m = row
        .iter()
        .map(|&v| f64::from(v))
        .fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = row.iter().map(|&v| (f64::from(v) - m).exp()).sum();
    let ln_s = s.ln();
    row.iter().map(|&v| f64::from(v) - m - ln_s).collect()
}

/// Index of the largest value, the first on ties (as [`crate::Mlp::evaluate`] counts).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Expected calibration error of `(confidence, correct)` pairs over `bins` equal-width bins of `[0, 1]`:
/// `sum_b (n_b / N) |acc_b - conf_b|`; 0 for no pairs. A confidence of exactly 1 falls in the last bin.
pub fn ece(pairs: &[(f64, bool)], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut count = vec![0usize; bins];
    let mut conf = vec![0.0f64; bins];
    let mut correct = vec![0usize; bins];
    for &(c, ok) in pairs {
        let b = ((c * bins as f64).floor().max(0.0) as usize).min(bins - 1);
        count[b] += 1;
        conf[b] += c;
        correct[b] += usize::from(ok);
    }
    let n = pairs.len().max(1) as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let nb = count[b] as f64;
            (nb / n) * (correct[b] as f64 / nb - conf[b] / nb).abs()
        })
        .sum()
}

impl Scores {
    /// Scores of row-major `logits [labels.len(), classes]` against `labels`. A row with a non-finite logit
    /// counts as wrong with `log p_y = -inf`, so a diverged network shows an infinite NLL (written as null in
    /// JSON) rather than a plausible number, and its ECE is NaN: such a row has no confidence to calibrate (it
    /// counted as confidence 1 and wrong before, which made a diverged network's ECE a plausible 1.0).
    pub fn of_logits(logits: &[f32], classes: usize, labels: &[u32]) -> Scores {
        let classes = classes.max(1);
        let mut pairs = Vec::with_capacity(labels.len());
        let mut nll = 0.0;
        let mut right = 0usize;
        for (row, &y) in logits.chunks(classes).zip(labels) {
            if row.iter().any(|v| !v.is_finite()) {
                nll = f64::INFINITY;
                pairs.push((1.0, false));
                continue;
            }
            let lp = log_softmax(row);
            let pred = argmax(row);
            let ok = pred == y as usize;
            right += usize::from(ok);
            nll -= lp.get(y as usize).copied().unwrap_or(f64::NEG_INFINITY);
            pairs.push((lp[pred].exp(), ok));
        }
        let n = labels.len().max(1) as f64;
        Scores {
            accuracy: right as f64 / n,
            nll: nll / n,
            ece: if nll.is_finite() {
                ece(&pairs, ECE_BINS)
            } else {
                f64::NAN
            },
        }
    }
}

/// The first epoch (1-based) whose value reaches `target` (`>=`), if any: the convergence epoch of an accuracy
/// curve whose entry `e` is the value after epoch `e + 1`.
pub fn first_reaching(curve: &[f64], target: f64) -> Option<usize> {
    curve.iter().position(|&v| v >= target).map(|e| e + 1)
}

/// [`mean_std`] of a final score over runs, where a run that diverged must show: the mean is infinite (or NaN)
/// when any value is, with the standard deviation NaN, rather than the mean of the runs that did not diverge;
/// `None` when there are no values.
pub fn mean_std_of_runs(values: &[f64]) -> Option<(f64, f64)> {
    match values.iter().find(|v| !v.is_finite()) {
        _ if values.is_empty() => None,
        Some(_) => Some((values.iter().sum::<f64>() / values.len() as f64, f64::NAN)),
        None => mean_std(values),
    }
}

/// Mean and sample standard deviation `sqrt(sum (v - mean)^2 / (n - 1))` of the finite values; the standard
/// deviation of a single value is undefined, so it is NaN (`null` in JSON, no `±` in the tables), not 0;
/// `None` when none is finite.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    let v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        f64::NAN
    };
    Some((mean, var.sqrt()))
}

/// The median of the non-NaN values (mean of the middle two for an even count); `None` when none is left.
pub fn median(values: &[f64]) -> Option<f64> {
    crate::bench::Stats::from_samples(values).map(|s| s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ece_matches_a_hand_computed_example() {
        // 10 bins. Bin 9 holds 0.95, 0.95 (one right): acc 0.5, conf 0.95, gap 0.45, weight 2/5.
        // Bin 6 holds 0.6, 0.65 (both right): acc 1, conf 0.625, gap 0.375, weight 2/5.
        // Bin 3 holds 0.3 (wrong): acc 0, conf 0.3, gap 0.3, weight 1/5.
        // ECE = 0.4 * 0.45 + 0.4 * 0.375 + 0.2 * 0.3 = 0.18 + 0.15 + 0.06 = 0.39.
        let pairs = [
            (0.95, true),
            (0.95, false),
            (0.6, true),
            (0.65, true),
            (0.3, false),
        ];
        assert!(close(ece(&pairs, 10), 0.39), "{}", ece(&pairs, 10));
        // Perfectly calibrated bins give 0; confidence 1 lands in the last bin, 0 in the first.
        assert!(close(ece(&[(1.0, true), (0.0, false)], 10), 0.0));
        assert_eq!(ece(&[], 15), 0.0);
    }

    #[test]
    fn scores_of_two_rows() {
        // Row 0: logits (ln 3, 0): p = (0.75, 0.25), label 0, right, confidence 0.75.
        // Row 1: logits (0, 0): p = (0.5, 0.5), argmax 0 (first on ties), label 1, wrong, confidence 0.5.
        let logits = [3f32.ln(), 0.0, 0.0, 0.0];
        let s = Scores::of_logits(&logits, 2, &[0, 1]);
        assert!(close(s.accuracy, 0.5));
        let nll = -(0.75f64.ln() + 0.5f64.ln()) / 2.0;
        assert!((s.nll - nll).abs() < 1e-7, "{} vs {nll}", s.nll);
        // 15 bins: 0.75 -> bin 11 (acc 1, gap 0.25); 0.5 -> bin 7 (acc 0, gap 0.5). ECE = (0.25 + 0.5) / 2.
        assert!((s.ece - 0.375).abs() < 1e-7, "{}", s.ece);
    }

    #[test]
    fn log_softmax_is_stable_and_normalised() {
        let lp = log_softmax(&[1000.0, 0.0, -1000.0]);
        assert!(close(lp[0], 0.0) && close(lp[1], -1000.0));
        let total: f64 = log_softmax(&[0.1, 0.2, 0.3]).iter().map(|v| v.exp()).sum();
        assert!(close(total, 1.0));
        let s = Scores::of_logits(&[f32::NAN, 0.0], 2, &[0]);
        assert_eq!((s.accuracy, s.nll), (0.0, f64::INFINITY));
        // A diverged row has no confidence: the ECE is not a number (it read a plausible 1.0 before).
        assert!(s.ece.is_nan());
        let s = Scores::of_logits(&[f32::INFINITY, 0.0, 2.0, 1.0], 2, &[0, 0]);
        assert_eq!((s.accuracy, s.nll), (0.5, f64::INFINITY));
        assert!(s.ece.is_nan());
    }

    #[test]
    fn convergence_epoch_and_spread() {
        let curve = [0.4, 0.7, 0.91, 0.85, 0.95];
        assert_eq!(first_reaching(&curve, 0.9), Some(3));
        assert_eq!(first_reaching(&curve, 0.4), Some(1));
        assert_eq!(first_reaching(&curve, 0.99), None);
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, f64::NAN]).unwrap();
        assert!(close(m, 2.0) && close(s, 1.0));
        // One value has no sample standard deviation: NaN, not 0.
        let (m, s) = mean_std(&[5.0]).unwrap();
        assert!(m == 5.0 && s.is_nan());
        let (m, s) = mean_std(&[5.0, f64::NAN]).unwrap();
        assert!(m == 5.0 && s.is_nan());
        assert!(mean_std_of_runs(&[0.9]).unwrap().1.is_nan());
        assert_eq!(mean_std(&[f64::INFINITY]), None);
        // Over runs, a diverged run shows instead of vanishing from the mean.
        assert_eq!(mean_std_of_runs(&[1.0, 3.0]), Some((2.0, 2f64.sqrt())));
        let (m, s) = mean_std_of_runs(&[0.2, f64::INFINITY, 0.4]).unwrap();
        assert!(m.is_infinite() && s.is_nan());
        assert!(mean_std_of_runs(&[0.2, f64::NAN]).unwrap().0.is_nan());
        assert_eq!(mean_std_of_runs(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
