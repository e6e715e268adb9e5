//! f64 reference of the fused kernels: bias + activation, gated units.

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

/// Gated unit forward `a * f(g)`, elementwise over two equal-length slices.
pub fn gated_forward(gate: Activation, a: &[f64], g: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(g)
        .map(|(&a, &g)| a * forward(gate, g))
        .collect()
}

/// Gated unit backward: `(da, dg)` with `da = dout * f(g)`, `dg = dout * a * f'(g)`.
pub fn gated_backward(
    gate: Activation,
    a: &[f64],
    g: &[f64],
    dout: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let da = g
        .iter()
        .zip(dout)
        .map(|(&g, &d)| d * forward(gate, g))
        .collect();
    let dg = a
        .iter()
        .zip(g)
        .zip(dout)
        .map(|((&a, &g), &d)| backward(gate, g, d * a))
        .collect();
    (da, dg)
}

/// Splits row-major `x: [rows, 2 half]` into its halves `a | g`.
pub fn split_halves(x: &[f64], half: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = Vec::with_capacity(x.len() / 2);
    let mut g = Vec::with_capacity(x.len() / 2);
    for row in x.chunks(2 * half.max(1)) {
        a.extend_from_slice(&row[..half]);
        g.extend_from_slice(&row[half..]);
    }
    (a, g)
}

/// Joins halves `a`, `g` (each `[rows, half]`) into `[rows, 2 half]`.
pub fn join_halves(a: &[f64], g: &[f64], half: usize) -> Vec<f64> {
    a.chunks(half.max(1))
        .zip(g.chunks(half.max(1)))
        .flat_map(|(ra, rg)| ra.iter().chain(rg).copied())
        .collect()
}
