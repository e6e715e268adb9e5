//! Checks of the fused kernels against the f64 reference, shared by the tests and `validate`: bias +
//! activation, gated units, learnable activations, on seeded random inputs in any storage type.

use super::{
    compare, compare_bounded, compare_storage, round_to, Check, Pass, Rng, F32_ELEMENTWISE,
};
use crate::cpu::fused as reference;
use crate::{Activation, DType, Gated, Gpu, Learnable, Result, Tensor};

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

/// Elementwise outputs stored in `dtype`: the f32 tolerance, or 1 ULP of the 16-bit type.
pub fn check_values(dtype: DType, x: &[f32], got: &[f32], reference: &[f64]) -> Check {
    match dtype {
        DType::F32 => compare(x, got, reference, F32_ELEMENTWISE, false),
        _ => compare_storage(dtype, x, got, reference, 1),
    }
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
    compare_bounded("f32_sum", got, reference, &bounds)
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

/// Bias + activation on `[rows, cols]` with x, dy, dx in `x_t` and the bias and db in `b_t`: y, dx and db.
pub fn check_bias(
    gpu: &Gpu,
    act: Activation,
    rows: usize,
    cols: usize,
    x_t: DType,
    b_t: DType,
    seed: u64,
) -> Result<Vec<FusedCheck>> {
    let op = format!("bias_{}", act.name());
    let xs = random_values(rows * cols, 4.0, x_t, seed);
    let bs = random_values(cols, 1.0, b_t, seed + 1);
    let dys = random_values(rows * cols, 2.0, x_t, seed + 2);
    let x = matrix(gpu, &xs, rows, cols, x_t)?;
    let bias = gpu.upload_f32_as(&bs, b_t)?;
    let dy = matrix(gpu, &dys, rows, cols, x_t)?;
    let y = act.bias_forward(&x, &bias)?;
    let y_ref = reference::bias_forward(act, &widen(&xs), &widen(&bs));
    let (dx, db) = act.bias_backward(&x, &bias, &dy)?;
    let (dx_ref, db_ref) = reference::bias_backward(act, &widen(&xs), &widen(&bs), &widen(&dys));
    let sums = reference::column_abs_sums(&dx_ref, cols.max(1));
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            x_t,
            check_values(x_t, &xs, &y.read_f32()?, &y_ref),
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            x_t,
            check_values(x_t, &xs, &dx.read_f32()?, &dx_ref),
        ),
        row(
            &op,
            Pass::Backward,
            "db",
            b_t,
            check_sums(x_t, b_t, &db.read_f32()?, &db_ref, &sums),
        ),
    ])
}

/// A gated unit on `[rows, 2 half]` (split layout) and on two `[rows, half]` tensors (pair layout).
pub fn check_gated(
    gpu: &Gpu,
    unit: Gated,
    rows: usize,
    half: usize,
    dtype: DType,
    seed: u64,
) -> Result<Vec<FusedCheck>> {
    let op = unit.name();
    let xs = random_values(rows * 2 * half, 4.0, dtype, seed);
    let douts = random_values(rows * half, 2.0, dtype, seed + 1);
    let x = matrix(gpu, &xs, rows, 2 * half, dtype)?;
    let dout = matrix(gpu, &douts, rows, half, dtype)?;
    let (a, g) = reference::split_halves(&widen(&xs), half);
    let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
    let out_ref = reference::gated_forward(unit.gate, &a, &g);
    let (da_ref, dg_ref) = reference::gated_backward(unit.gate, &a, &g, &widen(&douts));
    let dx_ref = reference::join_halves(&da_ref, &dg_ref, half);

    let out = unit.forward(&x)?;
    let dx = unit.backward(&x, &dout)?;
    let at = gpu.upload_f32_as(&a32, dtype)?;
    let gt = gpu.upload_f32_as(&g32, dtype)?;
    let dt = gpu.upload_f32_as(&douts, dtype)?;
    let out_pair = unit.forward_pair(&at, &gt)?;
    let (da, dg) = unit.backward_pair(&at, &gt, &dt)?;
    let pair = format!("{op}_pair");
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            dtype,
            check_values(dtype, &g32, &out.read_f32()?, &out_ref),
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            dtype,
            check_values(dtype, &xs, &dx.read_f32()?, &dx_ref),
        ),
        row(
            &pair,
            Pass::Forward,
            "y",
            dtype,
            check_values(dtype, &g32, &out_pair.read_f32()?, &out_ref),
        ),
        row(
            &pair,
            Pass::Backward,
            "da",
            dtype,
            check_values(dtype, &a32, &da.read_f32()?, &da_ref),
        ),
        row(
            &pair,
            Pass::Backward,
            "dg",
            dtype,
            check_values(dtype, &g32, &dg.read_f32()?, &dg_ref),
        ),
    ])
}

/// A learnable activation on `[rows, cols]` with an f32 parameter (shared, or per column): y, dx and dp.
pub fn check_learnable(
    gpu: &Gpu,
    kind: Learnable,
    rows: usize,
    cols: usize,
    shared: bool,
    dtype: DType,
    seed: u64,
) -> Result<Vec<FusedCheck>> {
    let op = format!(
        "{}_{}",
        kind.name(),
        if shared { "shared" } else { "per_channel" }
    );
    let xs = random_values(rows * cols, 4.0, dtype, seed);
    let dys = random_values(rows * cols, 2.0, dtype, seed + 1);
    let n = if shared { 1 } else { cols };
    let ps: Vec<f32> = random_values(n, 1.0, DType::F32, seed + 2)
        .iter()
        .map(|v| v + 1.25)
        .collect();
    let x = matrix(gpu, &xs, rows, cols, dtype)?;
    let dy = matrix(gpu, &dys, rows, cols, dtype)?;
    let p = gpu.upload(&ps)?;
    let y = kind.forward(&x, &p)?;
    let y_ref = reference::learnable_forward(kind, &widen(&xs), &widen(&ps));
    let (dx, dp) = kind.backward(&x, &p, &dy)?;
    let (dx_ref, dp_ref) =
        reference::learnable_backward(kind, &widen(&xs), &widen(&ps), &widen(&dys));
    let mut scale = vec![0.0; n];
    for (i, (&x, &d)) in xs.iter().zip(&dys).enumerate() {
        let (_, gp) =
            reference::learnable_grads(kind, x.into(), f64::from(ps[i % cols.max(1) % n]));
        scale[i % cols.max(1) % n] += (f64::from(d) * gp).abs();
    }
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            dtype,
            check_values(dtype, &xs, &y.read_f32()?, &y_ref),
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            dtype,
            check_values(dtype, &xs, &dx.read_f32()?, &dx_ref),
        ),
        row(
            &op,
            Pass::Backward,
            "dp",
            DType::F32,
            check_sums(DType::F32, DType::F32, &dp.read_f32()?, &dp_ref, &scale),
        ),
    ])
}
