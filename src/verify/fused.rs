//! Checks of the fused kernels against the f64 reference, shared by the tests and `validate`: bias +
//! activation, gated units, learnable activations, on seeded random inputs in any storage type.

use super::{
    compare, compare_bounded, compare_storage, poisoned, round_to, Check, Pass, Rng,
    F32_ELEMENTWISE,
};
use crate::cpu::fused as reference;
use crate::{Activation, DType, Gated, Gpu, Learnable, Result, Tensor};

/// The inputs of a fused check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedInputs {
    /// Seeded uniform values: x in [-4, 4), dy in [-2, 2), biases and parameters in [-1, 1) (learnable
    /// parameters shifted to [0.25, 2.25)).
    Random(u64),
    /// The same, but each column of x holds one of [`FUSED_EDGES`] (in turn, at a row that moves with the
    /// column) and dy is in [-1, 1), with +inf beside every positive normal edge value: each column's sum then
    /// has one extreme term, so f32 and the f64 reference agree on it, and a zero derivative times an infinite
    /// gradient shows.
    Edges(u64),
}

impl FusedInputs {
    fn seed(self) -> u64 {
        match self {
            FusedInputs::Random(s) | FusedInputs::Edges(s) => s,
        }
    }

    /// The op's name in a report: `op`, or `op_edges` for edge inputs.
    fn name(self, op: &str) -> String {
        match self {
            FusedInputs::Random(_) => op.to_string(),
            FusedInputs::Edges(_) => format!("{op}_edges"),
        }
    }
}

/// The edge values of [`FusedInputs::Edges`]: zeros of both signs, subnormals, moderate and large magnitudes,
/// the largest finite values, infinities and NaN.
pub const FUSED_EDGES: [f32; 20] = [
    0.0,
    -0.0,
    1e-40,
    -1e-40,
    0.5,
    -0.5,
    3.0,
    -3.0,
    20.0,
    -20.0,
    1e4,
    -1e4,
    1e30,
    -1e30,
    f32::MAX,
    -f32::MAX,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    1.0,
];

/// x (scale `x_scale`) and dy of `[rows, cols]` in `dtype` for `inputs`.
fn x_and_dy(
    rows: usize,
    cols: usize,
    x_scale: f64,
    dtype: DType,
    inputs: FusedInputs,
) -> (Vec<f32>, Vec<f32>) {
    let seed = inputs.seed();
    let mut xs = random_values(rows * cols, x_scale, dtype, seed);
    let dy_scale = if let FusedInputs::Edges(_) = inputs {
        1.0
    } else {
        2.0
    };
    let mut dys = random_values(rows * cols, dy_scale, dtype, seed + 2);
    if let FusedInputs::Edges(_) = inputs {
        for c in 0..cols {
            let i = (c % rows.max(1)) * cols + c;
            if i < xs.len() {
                let e = round_to(dtype, FUSED_EDGES[(c + seed as usize) % FUSED_EDGES.len()]);
                xs[i] = e;
                // Beside normal values only: an infinite dy times a derivative that f32 rounds to 0 but f64
                // does not (x^2 at x = 1e-40) has no common answer.
                if e >= f32::MIN_POSITIVE && e.is_finite() {
                    dys[i] = f32::INFINITY;
                }
            }
        }
    }
    (xs, dys)
}

/// Records `body` and waits for it.
fn run(gpu: &Gpu, body: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>) -> Result<()> {
    gpu.submit_and_wait("fused check", body)
}

/// A poisoned `[rows, cols]` (or `shape`) tensor of `dtype`.
fn poisoned_shaped(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let t = poisoned(gpu, dtype, shape.iter().product())?;
    Tensor::from_buffer(gpu, t.buffer().clone(), shape, dtype)
}

/// One checked output of a fused op.
#[derive(Debug, Clone)]
pub struct FusedCheck {
    /// The op, e.g. `bias_gelu`, `swiglu`, `prelu_per_channel`.
    pub op: String,
    /// Forward or backward.
    pub pass: Pass,
    /// Which output: `y`, `dx`, `db`, `da`, `dg`, `dp`.
    pub output: &'static str,
    /// The storage type of the op's tensors.
    pub dtype: DType,
    /// The comparison.
    pub check: Check,
}

impl FusedCheck {
    /// True when the comparison passed.
    pub fn ok(&self) -> bool {
        self.check.ok()
    }
}

/// `n` seeded values uniform in `[-scale, scale)`, rounded to `dtype`.
pub fn random_values(n: usize, scale: f64, dtype: DType, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| round_to(dtype, rng.uniform(-scale, scale)))
        .collect()
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Elementwise outputs stored in `dtype`: the f32 tolerance, or 1 ULP of the 16-bit type. With `flushes` (the
/// device flushes subnormals, [`Gpu::flushes_subnormals`]) a 16-bit result that fails but lies within
/// [`super::FLUSH_UNDERFLOW`] of the reference passes as flushed, and is counted so
/// ([`Check::flush_accepted`]); the f32 tolerance's absolute term covers flushing already.
pub fn check_values(
    dtype: DType,
    x: &[f32],
    got: &[f32],
    reference: &[f64],
    flushes: bool,
) -> Check {
    match dtype {
        DType::F32 => compare(x, got, reference, F32_ELEMENTWISE, false),
        _ if flushes => super::compare_flushing(
            super::Criterion::Ulp { dtype, max: 1 },
            x,
            got,
            reference,
            Some(reference),
        ),
        _ => compare_storage(dtype, x, got, reference, 1),
    }
}

/// [`check_values`] of the output `out`, its unwritten elements (still holding the poison) counted as failures:
/// a 16-bit poison is a NaN, which a NaN reference would otherwise accept.
fn values(gpu: &Gpu, dtype: DType, x: &[f32], out: &Tensor, reference: &[f64]) -> Result<Check> {
    let (got, unwritten) = super::read_checked(out)?;
    let mut c = check_values(dtype, x, &got, reference, gpu.flushes_subnormals()?);
    c.failures += unwritten;
    Ok(c)
}

/// [`check_sums`] of the reduced output `out`, its unwritten elements counted as failures.
fn sums_of(terms_t: DType, out: &Tensor, reference: &[f64], abs_sums: &[f64]) -> Result<Check> {
    let (got, unwritten) = super::read_checked(out)?;
    let mut c = check_sums(terms_t, out.dtype(), &got, reference, abs_sums);
    c.failures += unwritten;
    Ok(c)
}

/// A reduced gradient (db, dp) against the reference. Each sum may differ by the rounding of an f32 sum (1e-5 of
/// the sum of the magnitudes of its terms, `abs_sums`), of the terms to `terms_t` where the sum reads stored
/// values (half an ULP each: 2^-11 of the magnitudes for f16, 2^-8 for bf16), and by 1 ULP of the result's type.
pub fn check_sums(
    terms_t: DType,
    dtype: DType,
    got: &[f32],
    reference: &[f64],
    abs_sums: &[f64],
) -> Check {
    let term_rounding = match terms_t {
        DType::F32 => 0.0,
        DType::F16 => 2f64.powi(-11),
        _ => 2f64.powi(-8),
    };
    let bounds: Vec<f64> = reference
        .iter()
        .zip(abs_sums)
        .map(|(&r, &s)| {
            let ulp = match dtype {
                DType::F32 => 0.0,
                DType::F16 => {
                    f64::from(half::f16::from_f64(r).to_f32()).abs() * 2f64.powi(-10) + 6e-8
                }
                _ => f64::from(half::bf16::from_f64(r).to_f32()).abs() * 2f64.powi(-7),
            };
            1e-6 + (1e-5 + term_rounding) * s + ulp
        })
        .collect();
    // A sum past the result type's range is stored as +-inf (a dp of 2e7 in f16, say): so is the reference.
    // Where the allowed error straddles the overflow threshold, either is right: the reference follows the
    // result's class.
    let overflows = |r: f64| match dtype {
        DType::F32 => (r as f32).is_infinite(),
        DType::F16 => half::f16::from_f64(r).is_infinite(),
        DType::BF16 => half::bf16::from_f64(r).is_infinite(),
    };
    let stored: Vec<f64> = reference
        .iter()
        .zip(&bounds)
        .zip(got)
        .map(|((&r, &b), &g)| {
            let (low, high) = (overflows(r.abs() - b), overflows(r.abs() + b));
            let stored_inf = if low == high {
                overflows(r)
            } else {
                g.is_infinite() && (g > 0.0) == (r > 0.0)
            };
            if stored_inf {
                r.signum() * f64::INFINITY
            } else {
                r
            }
        })
        .collect();
    compare_bounded("f32_sum", got, &stored, &bounds)
}

/// Uploads `values` as a `[rows, cols]` tensor of `dtype`.
fn matrix(gpu: &Gpu, values: &[f32], rows: usize, cols: usize, dtype: DType) -> Result<Tensor> {
    let t = gpu.upload_f32_as(values, dtype)?;
    Tensor::from_buffer(gpu, t.buffer().clone(), &[rows, cols], dtype)
}

fn row(op: &str, pass: Pass, output: &'static str, dtype: DType, check: Check) -> FusedCheck {
    FusedCheck {
        op: op.to_string(),
        pass,
        output,
        dtype,
        check,
    }
}

/// Bias + activation on `[rows, cols]` with x, dy, dx in `x_t` and the bias and db in `b_t`: y, dx and db, each
/// written into a poisoned tensor.
pub fn check_bias(
    gpu: &Gpu,
    act: Activation,
    rows: usize,
    cols: usize,
    x_t: DType,
    b_t: DType,
    inputs: FusedInputs,
) -> Result<Vec<FusedCheck>> {
    let op = inputs.name(&format!("bias_{}", act.name()));
    let seed = inputs.seed();
    let (xs, dys) = x_and_dy(rows, cols, 4.0, x_t, inputs);
    let bs = random_values(cols, 1.0, b_t, seed + 1);
    let x = matrix(gpu, &xs, rows, cols, x_t)?;
    let bias = gpu.upload_f32_as(&bs, b_t)?;
    let dy = matrix(gpu, &dys, rows, cols, x_t)?;
    let (y, dx) = (
        poisoned_shaped(gpu, &[rows, cols], x_t)?,
        poisoned_shaped(gpu, &[rows, cols], x_t)?,
    );
    let db = poisoned_shaped(gpu, &[cols], b_t)?;
    run(gpu, |enc| {
        act.record_bias_forward(enc, &x, &bias, &y)?;
        act.record_bias_backward(enc, &x, &bias, &dy, &dx, &db)
    })?;
    let y_ref = reference::bias_forward(act, &widen(&xs), &widen(&bs));
    let (dx_ref, db_ref) = reference::bias_backward(act, &widen(&xs), &widen(&bs), &widen(&dys));
    let sums = reference::column_abs_sums(&dx_ref, cols.max(1));
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            x_t,
            values(gpu, x_t, &xs, &y, &y_ref)?,
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            x_t,
            values(gpu, x_t, &xs, &dx, &dx_ref)?,
        ),
        row(
            &op,
            Pass::Backward,
            "db",
            b_t,
            sums_of(x_t, &db, &db_ref, &sums)?,
        ),
    ])
}

/// A gated unit on `[rows, 2 half]` (split layout) and on two `[rows, half]` tensors (pair layout), every output
/// written into a poisoned tensor.
pub fn check_gated(
    gpu: &Gpu,
    unit: Gated,
    rows: usize,
    half: usize,
    dtype: DType,
    inputs: FusedInputs,
) -> Result<Vec<FusedCheck>> {
    let op = inputs.name(&unit.name());
    let (mut xs, dys) = x_and_dy(rows, 2 * half, 4.0, dtype, inputs);
    let dout_scale = if let FusedInputs::Edges(_) = inputs {
        1.0
    } else {
        2.0
    };
    let mut douts = random_values(rows * half, dout_scale, dtype, inputs.seed() + 1);
    // Edge inputs: +inf in dout beside a positive normal edge value in either half (dout is one gradient for both
    // halves of a row), as the other fused checks put it in dy; only where the other half's element is not an
    // edge too, since inf times a product that f32 rounds to 0 and f64 does not (gelu(-20) = -5.5e-88) has no
    // common answer.
    let cols = 2 * half;
    let is_edge = |r: usize, c: usize| r == c % rows.max(1);
    for (i, _) in dys.iter().enumerate().filter(|(_, d)| d.is_infinite()) {
        let (r, c) = (i / cols, i % cols);
        if !is_edge(r, (c + half) % cols) {
            douts[r * half + c % half] = f32::INFINITY;
        }
    }
    // Edge inputs in f32 and bf16 (f16 cannot hold them), in the last row: a = dout = 2^66, whose product
    // overflows f32, at gates -1, -30 and -200, where dg = dout a f'(g) is 0 (ReGLU), finite (GLU: 5e26) or
    // below f32's range; and dout = the largest bf16 (3.39e38), a = 1/2 at gate 1.5, where dout f'(g) overflows
    // for f' > 1 (GeGLU: 1.13) and dg is finite. A kernel that formed either product first in every case
    // returned NaN or inf at one of them.
    if matches!(inputs, FusedInputs::Edges(_)) && dtype != DType::F16 && rows > 1 {
        let r = rows - 1;
        let big = 2f32.powi(66);
        let cases = [
            (big, -1.0f32, big),
            (big, -30.0, big),
            (big, -200.0, big),
            (0.5, 1.5, half::bf16::MAX.to_f32()),
        ];
        for (c, (a, gate, dout)) in cases.into_iter().enumerate().take(half) {
            if !is_edge(r, c) && !is_edge(r, c + half) {
                xs[r * cols + c] = a;
                xs[r * cols + c + half] = gate;
                douts[r * half + c] = dout;
            }
        }
    }
    let x = matrix(gpu, &xs, rows, 2 * half, dtype)?;
    let dout = matrix(gpu, &douts, rows, half, dtype)?;
    let (a, g) = reference::split_halves(&widen(&xs), half);
    let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
    let out_ref = reference::gated_forward(unit.gate, &a, &g);
    let (da_ref, dg_ref) = reference::gated_backward(unit.gate, &a, &g, &widen(&douts));
    let dx_ref = reference::join_halves(&da_ref, &dg_ref, half);

    let halves = [rows, half];
    let out = poisoned_shaped(gpu, &halves, dtype)?;
    let dx = poisoned_shaped(gpu, &[rows, 2 * half], dtype)?;
    let at = matrix(gpu, &a32, rows, half, dtype)?;
    let gt = matrix(gpu, &g32, rows, half, dtype)?;
    let out_pair = poisoned_shaped(gpu, &halves, dtype)?;
    let (da, dg) = (
        poisoned_shaped(gpu, &halves, dtype)?,
        poisoned_shaped(gpu, &halves, dtype)?,
    );
    run(gpu, |enc| {
        unit.record_forward(enc, &x, &out)?;
        unit.record_backward(enc, &x, &dout, &dx)?;
        unit.record_forward_pair(enc, &at, &gt, &out_pair)?;
        unit.record_backward_pair(enc, &at, &gt, &dout, &da, &dg)
    })?;
    let pair = format!("{op}_pair");
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            dtype,
            values(gpu, dtype, &g32, &out, &out_ref)?,
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            dtype,
            values(gpu, dtype, &xs, &dx, &dx_ref)?,
        ),
        row(
            &pair,
            Pass::Forward,
            "y",
            dtype,
            values(gpu, dtype, &g32, &out_pair, &out_ref)?,
        ),
        row(
            &pair,
            Pass::Backward,
            "da",
            dtype,
            values(gpu, dtype, &a32, &da, &da_ref)?,
        ),
        row(
            &pair,
            Pass::Backward,
            "dg",
            dtype,
            values(gpu, dtype, &g32, &dg, &dg_ref)?,
        ),
    ])
}

/// A learnable activation on `[rows, cols]` with x, dy, dx in `dtype` and the parameter (shared, or per column)
/// and its gradient in `p_t`: y, dx and dp, each written into a poisoned tensor.
#[allow(clippy::too_many_arguments)]
pub fn check_learnable(
    gpu: &Gpu,
    kind: Learnable,
    rows: usize,
    cols: usize,
    shared: bool,
    dtype: DType,
    p_t: DType,
    inputs: FusedInputs,
) -> Result<Vec<FusedCheck>> {
    let op = inputs.name(&format!(
        "{}_{}",
        kind.name(),
        if shared { "shared" } else { "per_channel" }
    ));
    let seed = inputs.seed();
    let (xs, dys) = x_and_dy(rows, cols, 4.0, dtype, inputs);
    let n = if shared { 1 } else { cols };
    // Edge inputs with a parameter per column set every fifth parameter to 0 (PReLU's ReLU, Swish's x / 2,
    // ELU's 0 on x < 0), where 0 * inf must not form, and the one after it to NaN, which must come out as NaN
    // (Swish's sigmoid clamps its argument, and a clamp may return a bound for NaN).
    let special_every_fifth = matches!(inputs, FusedInputs::Edges(_)) && !shared;
    let ps: Vec<f32> = random_values(n, 1.0, DType::F32, seed + 2)
        .iter()
        .enumerate()
        .map(|(c, v)| match c % 5 {
            3 if special_every_fifth => 0.0,
            4 if special_every_fifth => f32::NAN,
            _ => round_to(p_t, v + 1.25),
        })
        .collect();
    let x = matrix(gpu, &xs, rows, cols, dtype)?;
    let dy = matrix(gpu, &dys, rows, cols, dtype)?;
    let p = gpu.upload_f32_as(&ps, p_t)?;
    let y = poisoned_shaped(gpu, &[rows, cols], dtype)?;
    let dx = poisoned_shaped(gpu, &[rows, cols], dtype)?;
    let dp = poisoned_shaped(gpu, &[n], p_t)?;
    run(gpu, |enc| {
        kind.record_forward(enc, &x, &p, &y)?;
        kind.record_backward(enc, &x, &p, &dy, &dx, &dp)
    })?;
    let y_ref = reference::learnable_forward(kind, &widen(&xs), &widen(&ps));
    let (dx_ref, dp_ref) =
        reference::learnable_backward(kind, &widen(&xs), &widen(&ps), &widen(&dys));
    // The magnitudes behind each sum, with the reference's rule that a zero df/dp adds 0 whatever dy.
    let mut scale = vec![0.0; n];
    for (i, (&x, &d)) in xs.iter().zip(&dys).enumerate() {
        let (_, gp) =
            reference::learnable_grads(kind, x.into(), f64::from(ps[i % cols.max(1) % n]));
        if gp != 0.0 {
            scale[i % cols.max(1) % n] += (f64::from(d) * gp).abs();
        }
    }
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            dtype,
            values(gpu, dtype, &xs, &y, &y_ref)?,
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            dtype,
            values(gpu, dtype, &xs, &dx, &dx_ref)?,
        ),
        row(
            &op,
            Pass::Backward,
            "dp",
            p_t,
            sums_of(DType::F32, &dp, &dp_ref, &scale)?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::check_sums;
    use crate::DType;

    /// A 16-bit sum past the type's range is compared as +-inf; one whose allowed error straddles the overflow
    /// threshold passes as inf or as the finite value; one well inside passes only finite.
    #[test]
    fn sums_past_a_16_bit_range_compare_as_infinite() {
        let inf = f32::INFINITY;
        let check = |got: f32, reference: f64, abs_sum: f64| {
            check_sums(DType::F32, DType::F16, &[got], &[reference], &[abs_sum]).ok()
        };
        assert!(check(inf, 2.2e7, 2.2e7));
        assert!(check(-inf, -2.2e7, 2.2e7));
        assert!(!check(65504.0, 2.2e7, 2.2e7));
        // 65515 is finite in f16 (65504), but a sum of terms adding to 1e6 in magnitude may land past 65520.
        assert!(check(inf, 65515.0, 1e6));
        assert!(check(65504.0, 65515.0, 1e6));
        assert!(!check(inf, 60000.0, 100.0));
    }
}
