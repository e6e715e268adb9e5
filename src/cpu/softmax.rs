//! f64 reference of softmax and log-softmax over the last dimension ([`crate::SoftmaxKind`]), with the kernels'
//! policy for special rows: a NaN, or two or more `+inf`, make the row NaN; exactly one `+inf` gives the limit
//! (softmax one-hot, log-softmax 0 there and `-inf` elsewhere); a row of `-inf` only is NaN.

use crate::SoftmaxKind;

/// `y` over rows of `cols` elements of `x` (`x.len()` a multiple of `cols`).
pub fn forward(kind: SoftmaxKind, x: &[f64], cols: usize) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(cols.max(1)) {
        y.extend(forward_row(kind, row));
    }
    y
}

fn forward_row(kind: SoftmaxKind, row: &[f64]) -> Vec<f64> {
    let infs = row.iter().filter(|&&v| v == f64::INFINITY).count();
    if row.iter().any(|v| v.is_nan()) || infs > 1 {
        return vec![f64::NAN; row.len()];
    }
    if infs == 1 {
        return row
            .iter()
            .map(|&v| match (kind, v == f64::INFINITY) {
                (SoftmaxKind::Softmax, at) => f64::from(u8::from(at)),
                (SoftmaxKind::LogSoftmax, true) => 0.0,
                (SoftmaxKind::LogSoftmax, false) => f64::NEG_INFINITY,
            })
            .collect();
    }
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // For a row of -inf only, every x - m is NaN (-inf - -inf), and so is every result.
    let sum: f64 = row.iter().map(|&v| (v - m).exp()).sum();
    row.iter()
        .map(|&v| match kind {
            SoftmaxKind::Softmax => (v - m).exp() / sum,
            SoftmaxKind::LogSoftmax => (v - m) - sum.ln(),
        })
        .collect()
}

/// `dx` from the forward's output `y` and the gradient `dy`, over rows of `cols` elements: softmax
/// `dx_j = y_j (dy_j - sum_k y_k dy_k)`, log-softmax `dx_j = dy_j - e^(y_j) sum_k dy_k`.
pub fn backward(kind: SoftmaxKind, y: &[f64], dy: &[f64], cols: usize) -> Vec<f64> {
    let mut dx = Vec::with_capacity(y.len());
    for (yr, dyr) in y.chunks(cols.max(1)).zip(dy.chunks(cols.max(1))) {
        match kind {
            SoftmaxKind::Softmax => {
                let dot: f64 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
                dx.extend(yr.iter().zip(dyr).map(|(&a, &b)| a * (b - dot)));
            }
            SoftmaxKind::LogSoftmax => {
                let sum: f64 = dyr.iter().sum();
                dx.extend(yr.iter().zip(dyr).map(|(&a, &b)| b - a.exp() * sum));
            }
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_normalise_and_specials_follow_the_policy() {
        let x = [1.0, 2.0, 3.0];
        let y = forward(SoftmaxKind::Softmax, &x, 3);
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
        let s: f64 = e.iter().sum();
        assert!((y[2] - e[2] / s).abs() < 1e-15);
        let l = forward(SoftmaxKind::LogSoftmax, &x, 3);
        assert!((l[0] - (1.0 - s.ln())).abs() < 1e-15);
        // Large magnitudes: no overflow.
        let y = forward(SoftmaxKind::Softmax, &[1e300, 1e300], 2);
        assert_eq!(y, [0.5, 0.5]);
        let inf = f64::INFINITY;
        assert_eq!(
            forward(SoftmaxKind::Softmax, &[1.0, inf, -inf], 3),
            [0.0, 1.0, 0.0]
        );
        assert_eq!(
            forward(SoftmaxKind::LogSoftmax, &[1.0, inf], 2),
            [-inf, 0.0]
        );
        assert!(forward(SoftmaxKind::Softmax, &[inf, inf], 2)
            .iter()
            .all(|v| v.is_nan()));
        assert!(forward(SoftmaxKind::Softmax, &[-inf, -inf], 2)
            .iter()
            .all(|v| v.is_nan()));
        assert!(forward(SoftmaxKind::LogSoftmax, &[1.0, f64::NAN], 2)
            .iter()
            .all(|v| v.is_nan()));
        assert_eq!(forward(SoftmaxKind::Softmax, &[0.0, -inf], 2), [1.0, 0.0]);
    }

    #[test]
    fn backward_matches_central_differences() {
        let x = [0.3, -1.2, 2.0, 0.7, 0.1, -0.4];
        let dy = [0.5, -0.25, 1.0, 2.0, -1.0, 0.125];
        for kind in SoftmaxKind::ALL {
            let y = forward(kind, &x, 3);
            let dx = backward(kind, &y, &dy, 3);
            let loss = |x: &[f64]| -> f64 {
                forward(kind, x, 3)
                    .iter()
                    .zip(&dy)
                    .map(|(a, b)| a * b)
                    .sum()
            };
            for i in 0..x.len() {
                let h = 1e-6;
                let (mut up, mut down) = (x, x);
                up[i] += h;
                down[i] -= h;
                let fd = (loss(&up) - loss(&down)) / (2.0 * h);
                assert!((fd - dx[i]).abs() < 1e-8, "{kind} {i}: {fd} vs {}", dx[i]);
            }
        }
    }
}
