//! f64 reference of the fused kernels: bias + activation, gated units, learnable activations.

use super::activation::{backward, forward};
use crate::{Activation, Learnable};

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

/// `f(x; p)` of a learnable activation.
pub fn learnable_f(kind: Learnable, x: f64, p: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    match kind {
        Learnable::Prelu => {
            if x > 0.0 {
                x
            } else {
                super::activation::slope_times(p, x)
            }
        }
        Learnable::Swish => swish_f64(x, p),
        Learnable::Elu => {
            if x > 0.0 {
                x
            } else {
                p * x.exp_m1()
            }
        }
    }
}

/// `p x`, 0 for `p = 0` at every x (the limit; `0 * inf` would be NaN), as the kernels take it.
fn swish_arg(p: f64, x: f64) -> f64 {
    if p == 0.0 {
        0.0
    } else {
        p * x
    }
}

fn swish_f64(x: f64, p: f64) -> f64 {
    let s = super::activation::sigmoid(swish_arg(p, x));
    if s == 0.0 {
        0.0
    } else {
        x * s
    }
}

/// `(df/dx, df/dp)` of a learnable activation.
pub fn learnable_grads(kind: Learnable, x: f64, p: f64) -> (f64, f64) {
    match kind {
        Learnable::Prelu => {
            if x > 0.0 {
                (1.0, 0.0)
            } else {
                (p, x)
            }
        }
        Learnable::Swish => {
            let v = swish_arg(p, x);
            let s = super::activation::sigmoid(v);
            let ds = s * super::activation::sigmoid(-v);
            let dfdp = if ds == 0.0 { 0.0 } else { x * x * ds };
            let dfdx = if v.is_infinite() { s } else { s + v * ds };
            (dfdx, dfdp)
        }
        Learnable::Elu => {
            if x > 0.0 {
                (1.0, 0.0)
            } else {
                (p * x.exp(), x.exp_m1())
            }
        }
    }
}

/// Learnable activation forward over row-major `x: [.., cols]` with `p` of length 1 (shared) or `cols`.
pub fn learnable_forward(kind: Learnable, x: &[f64], p: &[f64]) -> Vec<f64> {
    let n = p.len();
    x.iter()
        .enumerate()
        .map(|(i, &v)| learnable_f(kind, v, p[i % n]))
        .collect()
}

/// Learnable activation backward: `(dx, dp)`, dp summed per column (or over everything for a shared p).
pub fn learnable_backward(
    kind: Learnable,
    x: &[f64],
    p: &[f64],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let n = p.len();
    let mut dp = vec![0.0; n];
    let dx = x
        .iter()
        .zip(dy)
        .enumerate()
        .map(|(i, (&v, &d))| {
            let (gx, gp) = learnable_grads(kind, v, p[i % n]);
            // Where df/dp is exactly 0 (PReLU and ELU at x > 0 and at x = +-0, Swish where sigmoid' underflows)
            // a term adds 0 whatever dy, an infinite one included, as the kernels do (`learn_dp_term` in
            // shaders/learnable.wgsl selects 0 where df/dp == 0); NaN in x or dy still gives NaN. PyTorch's
            // PReLU computes `x > 0 ? 0 : x dy`, which agrees except at x = +-0 with an infinite dy, where it
            // gives `0 * inf = NaN` and this reference (and the kernels) 0.
            dp[i % n] += if v.is_nan() || d.is_nan() {
                f64::NAN
            } else if gp == 0.0 {
                0.0
            } else {
                d * gp
            };
            if v.is_nan() || d.is_nan() {
                f64::NAN
            } else {
                d * gx
            }
        })
        .collect();
    (dx, dp)
}
