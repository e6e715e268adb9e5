//! f64 reference of the matrix products and the dense layer. Matrices are row-major slices with their sizes;
//! inputs are the f32 values the GPU saw, widened exactly.

use super::activation::{derivative, forward};
use crate::Activation;

/// `C = A B`: `a [m, k]`, `b [k, n]`, `C [m, n]`, `C[i, j] = sum_p a[i, p] b[p, j]`.
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let av = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += av * b[p * n + j];
            }
        }
    }
    c
}

/// `C = A^T B`: `a [m, k]`, `b [m, n]`, `C [k, n]`, `C[i, j] = sum_p a[p, i] b[p, j]`.
pub fn matmul_at_b(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    matmul(&transpose(a, m, k), b, k, m, n)
}

/// `C = A B^T`: `a [m, n]`, `b [k, n]`, `C [m, k]`, `C[i, j] = sum_p a[i, p] b[j, p]`.
pub fn matmul_a_bt(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    matmul(a, &transpose(b, k, n), m, n, k)
}

/// The transpose `[cols, rows]` of a row-major `[rows, cols]` matrix.
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// Elementwise absolute values, for the error bounds of sums (`sum |a_i b_i|` is the product of `|A|`, `|B|`).
pub fn abs(a: &[f64]) -> Vec<f64> {
    a.iter().map(|v| v.abs()).collect()
}

/// Dense forward: `Z = X W + b` (b optional, `[n]`) and `Y = f(Z)`, both `[m, n]`; returns `(Y, Z)`.
pub fn dense_forward(
    act: Activation,
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    (m, k, n): (usize, usize, usize),
) -> (Vec<f64>, Vec<f64>) {
    let mut z = matmul(x, w, m, k, n);
    if let Some(b) = bias {
        for (i, v) in z.iter_mut().enumerate() {
            *v += b[i % n];
        }
    }
    let y = z.iter().map(|&v| forward(act, v)).collect();
    (y, z)
}

/// `dZ = dY * f'(Z)`, elementwise.
pub fn dense_dz(act: Activation, z: &[f64], dy: &[f64]) -> Vec<f64> {
    z.iter()
        .zip(dy)
        .map(|(&z, &g)| super::activation::backward(act, z, g))
        .collect()
}

/// The gradients of a dense layer, f64.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseGrads {
    /// `dX = dZ W^T`, `[m, k]`.
    pub dx: Vec<f64>,
    /// `dW = X^T dZ`, `[k, n]`.
    pub dw: Vec<f64>,
    /// `db = column sums of dZ`, `[n]`.
    pub db: Vec<f64>,
}

/// Dense backward from X `[m, k]`, W `[k, n]`, the pre-activation Z and dY (`[m, n]`): `dZ = dY * f'(Z)`,
/// `dW = X^T dZ`, `db = sum over rows of dZ`, `dX = dZ W^T`.
pub fn dense_backward(
    act: Activation,
    x: &[f64],
    w: &[f64],
    z: &[f64],
    dy: &[f64],
    (m, k, n): (usize, usize, usize),
) -> DenseGrads {
    let dz = dense_dz(act, z, dy);
    let mut db = vec![0.0; n];
    for (i, v) in dz.iter().enumerate() {
        db[i % n] += v;
    }
    DenseGrads {
        dx: matmul_a_bt(&dz, w, m, k, n),
        dw: matmul_at_b(x, &dz, m, k, n),
        db,
    }
}

/// `|f'(z)|`, the factor by which an error in z reaches f(z) to first order.
pub fn slope(act: Activation, z: f64) -> f64 {
    derivative(act, z).abs()
}
