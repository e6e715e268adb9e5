//! f64 reference of the fused kernels: bias + activation.

use super::activation::{backward, forward};
use crate::Activation;

/// `y = f(x + b)` for row-major `x: [rows, cols]`, `bias: [cols]`.
pub fn bias_forward(act: Activation, x: &[f64], bias: &[f64]) -> Vec<f64> {
    let cols = bias.len();
    x.iter()
        .enumerate()
        .map(|(i, &v)| forward(act, v + bias[i % cols]))
        .collect()
}

/// `(dx, db)`: `dx = dy * f'(x + b)`, `db[c] = sum over rows of dx[r, c]`.
pub fn bias_backward(act: Activation, x: &[f64], bias: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let cols = bias.len();
    let dx: Vec<f64> = x
        .iter()
        .zip(dy)
        .enumerate()
        .map(|(i, (&v, &d))| backward(act, v + bias[i % cols], d))
        .collect();
    let mut db = vec![0.0; cols];
    for (i, &d) in dx.iter().enumerate() {
        db[i % cols] += d;
    }
    (dx, db)
}

/// Column sums of `|v|`: the scale of a column reduction's rounding error.
pub fn column_abs_sums(v: &[f64], cols: usize) -> Vec<f64> {
    let mut s = vec![0.0; cols];
    for (i, &d) in v.iter().enumerate() {
        s[i % cols] += d.abs();
    }
    s
}
