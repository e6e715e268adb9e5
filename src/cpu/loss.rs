//! f64 reference of the losses and their gradients ([`crate::ops::loss::Loss`]): each returns the mean loss and
//! the gradient of that mean with respect to the prediction.

use super::activation::sigmoid;

/// Softmax cross-entropy of `logits [rows, cols]` against class indices `labels [rows]`:
/// `L = 1/rows sum_r (log sum_j e^(x_rj) - x_{r t_r})`, `dL/dx_rj = (softmax(x_r)_j - [j == t_r]) / rows`.
/// Returns `(L, dL/dx)`. A label past the classes gives its row a NaN term and NaN gradients, as the kernel
/// does. Panics unless `logits` holds `rows * cols` values.
pub fn softmax_cross_entropy(logits: &[f64], labels: &[u32], cols: usize) -> (f64, Vec<f64>) {
    let rows = labels.len();
    assert_eq!(logits.len(), rows * cols, "logits must be [labels, cols]");
    let mut grad = vec![0.0; rows * cols];
    let mut total = 0.0;
    for (r, &t) in labels.iter().enumerate() {
        let x = &logits[r * cols..(r + 1) * cols];
        if t as usize >= cols {
            total += f64::NAN;
            grad[r * cols..(r + 1) * cols].fill(f64::NAN);
            continue;
        }
        // log sum_j e^(x_j) = m + log1p(sum_{j != a} e^(x_j - m)), x_a = m the maximum: `ln` of a sum near 1
        // would lose the digits of a nearly certain row's loss even in f64.
        let a = (0..cols).fold(0, |a, j| if x[j] > x[a] { j } else { a });
        let m = x[a];
        let infs = x.iter().filter(|&&v| v == f64::INFINITY).count();
        if infs == 1 && !x.iter().any(|v| v.is_nan()) {
            // One +inf logit: the limit as it grows, softmax one-hot at it.
            total += if t as usize == a { 0.0 } else { f64::INFINITY };
            for j in 0..cols {
                let d = f64::from(u8::from(j == a)) - f64::from(u8::from(j == t as usize));
                grad[r * cols + j] = d / rows as f64;
            }
            continue;
        }
        let rest: f64 = (0..cols)
            .filter(|&j| j != a)
            .map(|j| (x[j] - m).exp())
            .sum();
        let s = 1.0 + rest;
        total += (m - x[t as usize]) + rest.ln_1p();
        for (j, &v) in x.iter().enumerate() {
            let p = (v - m).exp() / s;
            let onehot = if j == t as usize { 1.0 } else { 0.0 };
            grad[r * cols + j] = (p - onehot) / rows as f64;
        }
    }
    (total / rows as f64, grad)
}

/// Mean squared error: `L = 1/n sum_i (y_i - t_i)^2`, `dL/dy_i = 2 (y_i - t_i) / n`. Panics unless `pred` and
/// `target` have the same length.
pub fn mse(pred: &[f64], target: &[f64]) -> (f64, Vec<f64>) {
    assert_eq!(pred.len(), target.len(), "pred and target lengths differ");
    let n = pred.len() as f64;
    let loss = pred
        .iter()
        .zip(target)
        .map(|(y, t)| (y - t) * (y - t))
        .sum::<f64>()
        / n;
    let grad = pred
        .iter()
        .zip(target)
        .map(|(y, t)| 2.0 * (y - t) / n)
        .collect();
    (loss, grad)
}

/// One term of BCE on logits, `softplus(x) - x t = max(x, 0) - x t + log1p(e^-|x|)`, its linear part as
/// `x (1 - t)` for `x >= 0` and `-x t` below, 0 where that coefficient is 0: the limits at `x = +-inf` (0 for
/// `t = 1` at `+inf` and for `t = 0` at `-inf`, `+inf` otherwise) rather than `inf - inf`.
fn bce_term(x: f64, t: f64) -> f64 {
    if x.is_nan() || t.is_nan() {
        return f64::NAN;
    }
    let c = if x >= 0.0 { 1.0 - t } else { -t };
    let linear = if c == 0.0 { 0.0 } else { x * c };
    linear + (-x.abs()).exp().ln_1p()
}

/// Binary cross-entropy on logits: `L = 1/n sum_i max(x, 0) - x t + log1p(e^-|x|)` (that is,
/// `softplus(x) - x t`, see `bce_term`), `dL/dx_i = (sigmoid(x_i) - t_i) / n`. Panics unless `logits` and
/// `target` have the same length.
pub fn bce_with_logits(logits: &[f64], target: &[f64]) -> (f64, Vec<f64>) {
    assert_eq!(
        logits.len(),
        target.len(),
        "logits and target lengths differ"
    );
    let n = logits.len() as f64;
    let loss = logits
        .iter()
        .zip(target)
        .map(|(&x, &t)| bce_term(x, t))
        .sum::<f64>()
        / n;
    let grad = logits
        .iter()
        .zip(target)
        .map(|(&x, &t)| (sigmoid(x) - t) / n)
        .collect();
    (loss, grad)
}
