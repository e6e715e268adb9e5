//! Checking softmax and log-softmax ([`SoftmaxKind`]) against the f64 reference, forward and backward, in every
//! storage type, under error bounds derived per element from the f32 arithmetic of the kernels.
//!
//! The bounds (`eps = 2^-24`, `d_j = x_j - m` with `m` the row's maximum, `n` the row length):
//! - softmax forward: `eps (16 + 4 |d_j| + 2 n) |y_j|`: `d_j` rounded (`eps |d_j|`), WGSL's `exp` (`3 + 2 |d_j|`
//!   ULP), the row sum (each of its `n` terms carries its exp's error, at most `3 eps` of the sum, and each
//!   addition rounds), the division (2.5 ULP);
//! - log-softmax forward: `eps (16 + 2 n + 4 (|d_j| + |y_j|))`, absolute: the same sum under `log1p` (an absolute
//!   error of its relative one), `d_j` rounded, the subtraction;
//! - softmax backward: `eps |y_j| (4 |dy_j - D| + (2 n + 4) sum_k |y_k dy_k|)`, `D = sum_k y_k dy_k`: the row
//!   sum's rounding is bounded by the sum of magnitudes, and it cancels in `dy_j - D`;
//! - log-softmax backward: `eps (4 |dx_j| + 4 |dy_j| + e^(y_j) ((8 + 4 |y_j|) |S| + (2 n + 4) sum_k |dy_k|))`,
//!   `S = sum_k dy_k`;
//!
//! each plus `2^-125` absolute (subnormal results, which a device may flush) and, for a 16-bit output, one unit
//! in the last place of its type (the rounding of the store); the reference is rounded to the output's type
//! first, so that NaN and infinities must match in class there. Special rows (a NaN or `+inf` in the row) must
//! match exactly.

use super::compare::{compare_bounded, rounded};
use super::fused::{poisoned_shaped, FusedCheck};
use super::{Check, Pass};
use crate::{cpu, DType, Gpu, Result, SoftmaxKind, Tensor};

/// Unit roundoff of f32.
const EPS: f64 = 1.0 / 16_777_216.0;

/// The absolute slack of every bound: results below f32's normal range, which a device may flush.
const SUBNORMAL_SLACK: f64 = 2.350_988_701_644_575e-38;

/// The name of the forward's bound, for reports.
pub const FORWARD_BOUND: &str = "softmax_forward_f32_bound";

/// The name of the backward's bound, for reports.
pub const BACKWARD_BOUND: &str = "softmax_backward_f32_bound";

/// The distance from `v` (a value of `dtype`) to the next value of `dtype` away from zero; 0 for NaN and
/// infinities (whose class is checked instead).
fn ulp(dtype: DType, v: f32) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    let a = v.abs();
    let next = match dtype {
        DType::F32 => f32::from_bits(a.to_bits() + 1),
        DType::F16 => half::f16::from_bits(half::f16::from_f32(a).to_bits() + 1).to_f32(),
        DType::BF16 => half::bf16::from_bits(half::bf16::from_f32(a).to_bits() + 1).to_f32(),
    };
    f64::from(next) - f64::from(a)
}

/// Whether a row needs exact results: it holds a NaN or `+inf`.
fn special(row: &[f64]) -> bool {
    row.iter().any(|v| v.is_nan() || *v == f64::INFINITY)
}

/// `|v|` where finite, else 0 (the element's reference is then 0, an infinity or NaN, checked by class).
fn finite_abs(v: f64) -> f64 {
    if v.is_finite() {
        v.abs()
    } else {
        0.0
    }
}

/// The forward's f32 bounds for the reference `y` of `x`, rows of `cols`.
pub fn forward_bounds(kind: SoftmaxKind, x: &[f64], y: &[f64], cols: usize) -> Vec<f64> {
    let n = cols as f64;
    let mut out = Vec::with_capacity(x.len());
    for (xr, yr) in x.chunks(cols.max(1)).zip(y.chunks(cols.max(1))) {
        if special(xr) {
            out.extend(std::iter::repeat_n(0.0, xr.len()));
            continue;
        }
        let m = xr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (&v, &r) in xr.iter().zip(yr) {
            let d = finite_abs(v - m);
            let b = match kind {
                SoftmaxKind::Softmax => EPS * (16.0 + 4.0 * d + 2.0 * n) * finite_abs(r),
                SoftmaxKind::LogSoftmax => EPS * (16.0 + 2.0 * n + 4.0 * (d + finite_abs(r))),
            };
            out.push(b);
        }
    }
    out
}

/// The backward's f32 bounds for the reference `dx` from `y` and `dy`, rows of `cols`.
pub fn backward_bounds(
    kind: SoftmaxKind,
    y: &[f64],
    dy: &[f64],
    dx: &[f64],
    cols: usize,
) -> Vec<f64> {
    let n = cols as f64;
    let c = cols.max(1);
    let mut out = Vec::with_capacity(y.len());
    for ((yr, dyr), dxr) in y.chunks(c).zip(dy.chunks(c)).zip(dx.chunks(c)) {
        match kind {
            SoftmaxKind::Softmax => {
                let dot: f64 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
                let mags: f64 = yr.iter().zip(dyr).map(|(a, b)| (a * b).abs()).sum();
                for (&a, &b) in yr.iter().zip(dyr) {
                    let bound = EPS * a.abs() * (4.0 * (b - dot).abs() + (2.0 * n + 4.0) * mags);
                    out.push(bound);
                }
            }
            SoftmaxKind::LogSoftmax => {
                let sum: f64 = dyr.iter().sum();
                let mags: f64 = dyr.iter().map(|v| v.abs()).sum();
                for ((&a, &b), &r) in yr.iter().zip(dyr).zip(dxr) {
                    let e = a.exp();
                    let through_sum = if e == 0.0 {
                        0.0
                    } else {
                        e * ((8.0 + 4.0 * a.abs()) * sum.abs() + (2.0 * n + 4.0) * mags)
                    };
                    out.push(EPS * (4.0 * finite_abs(r) + 4.0 * b.abs() + through_sum));
                }
            }
        }
    }
    // A bound that is not a number belongs to an element whose reference is NaN or infinite (checked by class).
    out.into_iter()
        .map(|b| if b.is_nan() { 0.0 } else { b })
        .collect()
}

/// `got` (stored in `dtype`) against `reference` under the f32 `bounds`, with the slack of the store's rounding
/// and of subnormal results (see the module's documentation).
pub fn compare(
    name: &'static str,
    dtype: DType,
    got: &[f32],
    reference: &[f64],
    bounds: &[f64],
) -> Check {
    let rounded_ref: Vec<f64> = reference
        .iter()
        .map(|&r| f64::from(rounded(dtype, r)))
        .collect();
    let slack: Vec<f64> = rounded_ref
        .iter()
        .zip(bounds)
        .map(|(&r, &b)| {
            let store = if dtype == DType::F32 {
                0.0
            } else {
                ulp(dtype, r as f32)
            };
            b + store + SUBNORMAL_SLACK
        })
        .collect();
    compare_bounded(name, got, &rounded_ref, &slack)
}

/// Storage types of a softmax check: input (x forward, y backward), gradient (backward), output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftmaxDtypes {
    /// x, and the y the backward reads.
    pub input: DType,
    /// dy.
    pub dy: DType,
    /// y forward, dx backward.
    pub out: DType,
}

/// Runs `kind` forward on `x` (`[rows, cols]`, values rounded to `dtypes.input`) into a poisoned output, then
/// backward from the stored `y` (converted to `dtypes.input`) and `dy` (rounded to `dtypes.dy`) into a poisoned
/// `dx`, and checks both against the f64 reference at the stored inputs; unwritten elements count as failures.
/// The checks are named after the kind, `_edges` appended for `edges` inputs.
pub fn check(
    gpu: &Gpu,
    kind: SoftmaxKind,
    dtypes: SoftmaxDtypes,
    shape: [usize; 2],
    x: &[f32],
    dy: &[f32],
    edges: bool,
) -> Result<Vec<FusedCheck>> {
    let cols = shape[1];
    let xt = upload(gpu, x, dtypes.input, &shape)?;
    let y = poisoned_shaped(gpu, &shape, dtypes.out)?;
    kind.forward_into(&xt, &y)?;
    let (y_got, y_unwritten) = super::read_checked(&y)?;
    let xs = widen(&xt.read_f32()?);
    let y_ref = cpu::softmax::forward(kind, &xs, cols);
    let mut forward = compare(
        FORWARD_BOUND,
        dtypes.out,
        &y_got,
        &y_ref,
        &forward_bounds(kind, &xs, &y_ref, cols),
    );
    forward.failures += y_unwritten;
    // The backward reads y in the input's type, as a network that stores activations in it would.
    let y_in = upload(gpu, &y_got, dtypes.input, &shape)?;
    let dyt = upload(gpu, dy, dtypes.dy, &shape)?;
    let dx = poisoned_shaped(gpu, &shape, dtypes.out)?;
    kind.backward_into(&y_in, &dyt, &dx)?;
    let (dx_got, dx_unwritten) = super::read_checked(&dx)?;
    let (ys, dys) = (widen(&y_in.read_f32()?), widen(&dyt.read_f32()?));
    let dx_ref = cpu::softmax::backward(kind, &ys, &dys, cols);
    let mut backward = compare(
        BACKWARD_BOUND,
        dtypes.out,
        &dx_got,
        &dx_ref,
        &backward_bounds(kind, &ys, &dys, &dx_ref, cols),
    );
    backward.failures += dx_unwritten;
    let name = format!("{}{}", kind.name(), if edges { "_edges" } else { "" });
    Ok(vec![
        FusedCheck {
            op: name.clone(),
            pass: Pass::Forward,
            output: "y",
            dtype: dtypes.out,
            check: forward,
        },
        FusedCheck {
            op: name,
            pass: Pass::Backward,
            output: "dx",
            dtype: dtypes.out,
            check: backward,
        },
    ])
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `values` rounded to `dtype`, as a `shape` tensor.
fn upload(gpu: &Gpu, values: &[f32], dtype: DType, shape: &[usize]) -> Result<Tensor> {
    let t = gpu.upload_f32_as(values, dtype)?;
    t.reshape(shape)
}

/// Rows of edge values, `cols` = 6 each: signed zeros and subnormals, the largest magnitudes (whose differences
/// overflow), a row of equal values, one `+inf` among finite values and `-inf`, two `+inf`, a NaN, `-inf` only,
/// `-inf` beside a finite maximum, the ends of `exp`'s range.
pub fn edge_rows() -> (Vec<f32>, usize) {
    let inf = f32::INFINITY;
    let rows: [[f32; 6]; 12] = [
        [0.0, -0.0, 1e-40, -1e-40, 1e-45, 0.0],
        [3e38, -3e38, 1.0, 0.0, 3.4e38, -3.4e38],
        [7.5; 6],
        [1.0, inf, -inf, 0.0, -2.0, 3e38],
        [inf, 1.0, inf, 0.0, 0.0, 0.0],
        [1.0, 2.0, f32::NAN, 0.0, inf, -inf],
        [-inf; 6],
        [-inf, 0.0, -inf, 5.0, -inf, -1e30],
        [88.0, -88.0, 100.0, -100.0, 0.0, 103.0],
        [-87.0, -104.0, -150.0, 0.0, -16.0, -120.0],
        [1e6, 1e6 + 0.0625, 1e6 - 0.125, 999_999.0, 1_000_001.0, 1e6],
        [-3e38, -3e38, -3e38, -3e38, -3e38, -2.9e38],
    ];
    (rows.concat(), 6)
}

/// The checks `validate` runs for `kind` in `dtype` (every operand): random rows of 10 and 1,000 columns (x in
/// [-8, 8), dy in [-1, 1)) and the [`edge_rows`].
pub fn check_standard(gpu: &Gpu, kind: SoftmaxKind, dtype: DType) -> Result<Vec<FusedCheck>> {
    let dtypes = SoftmaxDtypes {
        input: dtype,
        dy: dtype,
        out: dtype,
    };
    let mut out = Vec::new();
    for (i, shape) in [[33, 10], [7, 1000]].into_iter().enumerate() {
        let n = shape[0] * shape[1];
        let seed = 40 + 2 * i as u64;
        let x = super::fused::random_values(n, 8.0, dtype, seed);
        let dy = super::fused::random_values(n, 1.0, dtype, seed + 1);
        out.extend(check(gpu, kind, dtypes, shape, &x, &dy, false)?);
    }
    let (x, cols) = edge_rows();
    let dy = super::fused::random_values(x.len(), 2.0, dtype, 5);
    out.extend(check(
        gpu,
        kind,
        dtypes,
        [x.len() / cols, cols],
        &x,
        &dy,
        true,
    )?);
    Ok(out)
}
