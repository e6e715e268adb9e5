//! Checks of the fused kernels against the f64 reference, shared by the tests and `validate`: bias +
//! activation, gated units, learnable activations, on seeded random inputs in any storage type.

use super::{
    compare_bounded, compare_flushing, flush_subnormal, poisoned, round_to, Check, Criterion, Pass,
    Rng, F32_ELEMENTWISE,
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
    /// gradient shows. Bias checks take a bias of -0 here, so that x reaches the activation unchanged as z.
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

/// Elementwise outputs stored in `dtype`: the f32 tolerance, or 1 ULP of the 16-bit type. With `flushed` (given
/// where the device flushes subnormals, [`Gpu::flushes_subnormals`]: the reference at the inputs as such a device
/// reads them, every subnormal x, z, a, g, p and dy a zero of its sign, from [`bias_references`] and the like) a
/// result that fails also passes against it, or within [`super::FLUSH_UNDERFLOW`] of the reference
/// ([`compare_flushing`]), counted in [`Check::flush_accepted`]. The f32 tolerance's absolute term does not cover
/// flushing: a derivative at a kink (PReLU's dx at x = 1e-40 with p = 0 is `dy`, ReGLU's dg at g = 1e-40 is
/// `dout a`) is `0` flushed.
pub fn check_values(
    dtype: DType,
    x: &[f32],
    got: &[f32],
    reference: &[f64],
    flushed: Option<&[f64]>,
) -> Check {
    let criterion = match dtype {
        DType::F32 => Criterion::Tolerance(F32_ELEMENTWISE),
        _ => Criterion::Ulp { dtype, max: 1 },
    };
    compare_flushing(criterion, x, got, reference, flushed)
}

/// [`check_values`] of the output `out`, its unwritten elements (still holding the poison) counted as failures:
/// a 16-bit poison is a NaN, which a NaN reference would otherwise accept. `flushed` is used only where `gpu`
/// flushes subnormals.
fn values(
    gpu: &Gpu,
    dtype: DType,
    x: &[f32],
    out: &Tensor,
    [reference, flushed]: [&[f64]; 2],
) -> Result<Check> {
    let (got, unwritten) = super::read_checked(out)?;
    let flushed = gpu.flushes_subnormals()?.then_some(flushed);
    let mut c = check_values(dtype, x, &got, reference, flushed);
    c.failures += unwritten;
    Ok(c)
}

/// `v` widened, each subnormal flushed to a zero of its sign when `flush`: the inputs as a device that flushes
/// reads them.
fn read_as(v: &[f32], flush: bool) -> Vec<f64> {
    v.iter()
        .map(|&x| f64::from(if flush { flush_subnormal(x) } else { x }))
        .collect()
}

/// `x + b`, as a device that flushes subnormals forms it when `flush` (a subnormal sum, from `b = -0` beside a
/// subnormal `x` say, becomes a zero of its sign); exact otherwise, as the reference takes it.
fn pre_activation(x: f64, b: f64, flush: bool) -> f64 {
    let z = x + b;
    if flush && z != 0.0 && z.abs() < f64::from(f32::MIN_POSITIVE) {
        0.0f64.copysign(z)
    } else {
        z
    }
}

/// The references of a fused op, exact and at flushed inputs ([`check_values`]).
#[derive(Debug, Clone)]
pub struct FusedReferences {
    /// Forward output.
    pub y: Vec<f64>,
    /// Input gradient (`dx`; for a gated unit the joined `[da | dg]`).
    pub dx: Vec<f64>,
    /// Reduced gradient: `db`, `dp`; empty for a gated unit.
    pub sum: Vec<f64>,
    /// Gated units: `da` and `dg` apart; empty otherwise.
    pub da: Vec<f64>,
    /// See `da`.
    pub dg: Vec<f64>,
}

/// The references of bias + `act` (y, dx, db) at `[rows, bias.len()]` inputs, with every input read as a
/// flushing device reads it where `flush` (see [`check_values`]).
pub fn bias_references(
    act: Activation,
    x: &[f32],
    bias: &[f32],
    dy: &[f32],
    flush: bool,
) -> FusedReferences {
    let cols = bias.len().max(1);
    let (xv, bv, dyv) = (read_as(x, flush), read_as(bias, flush), read_as(dy, flush));
    let z: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| pre_activation(v, bv[i % cols], flush))
        .collect();
    // z + -0 is z for every z, -0 included.
    let zero = vec![-0.0; bias.len()];
    let y = reference::bias_forward(act, &z, &zero);
    let (dx, sum) = reference::bias_backward(act, &z, &zero, &dyv);
    FusedReferences {
        y,
        dx,
        sum,
        da: Vec::new(),
        dg: Vec::new(),
    }
}

/// The references of a gated unit on `x = [rows, 2 half]` and `dout = [rows, half]` (y, the joined dx, da, dg),
/// with every input read as a flushing device reads it where `flush`.
pub fn gated_references(
    gate: Activation,
    x: &[f32],
    dout: &[f32],
    half: usize,
    flush: bool,
) -> FusedReferences {
    let (a, g) = reference::split_halves(&read_as(x, flush), half);
    let y = reference::gated_forward(gate, &a, &g);
    let (da, dg) = reference::gated_backward(gate, &a, &g, &read_as(dout, flush));
    let dx = reference::join_halves(&da, &dg, half);
    FusedReferences {
        y,
        dx,
        sum: Vec::new(),
        da,
        dg,
    }
}

/// The references of a learnable activation (y, dx, dp) with parameters `p` (one, or one per column), with every
/// input read as a flushing device reads it where `flush`.
pub fn learnable_references(
    kind: Learnable,
    x: &[f32],
    p: &[f32],
    dy: &[f32],
    flush: bool,
) -> FusedReferences {
    let (xv, pv) = (read_as(x, flush), read_as(p, flush));
    let y = reference::learnable_forward(kind, &xv, &pv);
    let (dx, sum) = reference::learnable_backward(kind, &xv, &pv, &read_as(dy, flush));
    FusedReferences {
        y,
        dx,
        sum,
        da: Vec::new(),
        dg: Vec::new(),
    }
}

/// Both references of an op, `[exact, flushed]`; the flushed one is computed only where `gpu` flushes.
fn references(gpu: &Gpu, make: impl Fn(bool) -> FusedReferences) -> Result<[FusedReferences; 2]> {
    let exact = make(false);
    let flushed = if gpu.flushes_subnormals()? {
        make(true)
    } else {
        exact.clone()
    };
    Ok([exact, flushed])
}

/// [`check_sums`] of the reduced output `out`, its unwritten elements counted as failures. Where `gpu` flushes
/// subnormals, a sum that fails against `reference` is checked against `flushed` (the sum of the terms at flushed
/// inputs) instead, and counted in [`Check::flush_accepted`] where it passes there.
fn sums_of(
    gpu: &Gpu,
    terms_t: DType,
    out: &Tensor,
    [reference, flushed]: [&[f64]; 2],
    abs_sums: &[f64],
) -> Result<Check> {
    let (got, unwritten) = super::read_checked(out)?;
    let mut c = check_sums(terms_t, out.dtype(), &got, reference, abs_sums);
    if !c.ok() && gpu.flushes_subnormals()? {
        c = check_sums_flushing(terms_t, out.dtype(), &got, [reference, flushed], abs_sums);
    }
    c.failures += unwritten;
    Ok(c)
}

/// [`check_sums`] where each sum may match `reference` or, on a device that flushes, `flushed`: every sum is
/// compared with the first of the two it meets, and those that meet only `flushed` are counted in
/// [`Check::flush_accepted`].
pub fn check_sums_flushing(
    terms_t: DType,
    dtype: DType,
    got: &[f32],
    [reference, flushed]: [&[f64]; 2],
    abs_sums: &[f64],
) -> Check {
    let mut accepted = 0;
    let chosen: Vec<f64> = (0..reference.len())
        .map(|i| {
            let one = |r: &[f64]| {
                let (g, s) = (
                    got.get(i..=i).unwrap_or(&[]),
                    abs_sums.get(i..=i).unwrap_or(&[]),
                );
                check_sums(terms_t, dtype, g, &r[i..=i], s).ok()
            };
            if !one(reference) && flushed.get(i).is_some() && one(flushed) {
                accepted += 1;
                flushed[i]
            } else {
                reference[i]
            }
        })
        .collect();
    let mut c = check_sums(terms_t, dtype, got, &chosen, abs_sums);
    c.flush_accepted = accepted;
    c
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
    // Edge inputs: a bias of -0 (x + -0 = x for every x, -0 included), so that the zeros, subnormals and kinks
    // among the edge values reach the activation as z.
    let bs = match inputs {
        FusedInputs::Edges(_) => vec![-0.0; cols],
        FusedInputs::Random(_) => random_values(cols, 1.0, b_t, seed + 1),
    };
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
    let [r, f] = references(gpu, |flush| bias_references(act, &xs, &bs, &dys, flush))?;
    let sums = reference::column_abs_sums(&r.dx, cols.max(1));
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            x_t,
            values(gpu, x_t, &xs, &y, [&r.y, &f.y])?,
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            x_t,
            values(gpu, x_t, &xs, &dx, [&r.dx, &f.dx])?,
        ),
        row(
            &op,
            Pass::Backward,
            "db",
            b_t,
            sums_of(gpu, x_t, &db, [&r.sum, &f.sum], &sums)?,
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
    let [r, f] = references(gpu, |flush| {
        gated_references(unit.gate, &xs, &douts, half, flush)
    })?;

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
            values(gpu, dtype, &g32, &out, [&r.y, &f.y])?,
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            dtype,
            values(gpu, dtype, &xs, &dx, [&r.dx, &f.dx])?,
        ),
        row(
            &pair,
            Pass::Forward,
            "y",
            dtype,
            values(gpu, dtype, &g32, &out_pair, [&r.y, &f.y])?,
        ),
        row(
            &pair,
            Pass::Backward,
            "da",
            dtype,
            values(gpu, dtype, &a32, &da, [&r.da, &f.da])?,
        ),
        row(
            &pair,
            Pass::Backward,
            "dg",
            dtype,
            values(gpu, dtype, &g32, &dg, [&r.dg, &f.dg])?,
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
    let [r, f] = references(gpu, |flush| {
        learnable_references(kind, &xs, &ps, &dys, flush)
    })?;
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
            values(gpu, dtype, &xs, &y, [&r.y, &f.y])?,
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            dtype,
            values(gpu, dtype, &xs, &dx, [&r.dx, &f.dx])?,
        ),
        row(
            &op,
            Pass::Backward,
            "dp",
            p_t,
            sums_of(gpu, DType::F32, &dp, [&r.sum, &f.sum], &scale)?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that flushes subnormals, simulated: it reads x = 1e-40 as 0, so PReLU with p = 0 gives dx = 0 where
    /// the reference gives dy (x > 0), ReGLU gives dg = 0 where the reference gives dout a, and bias + ReLU with
    /// b = -0 gives dx = 0 and a db short by dy. Its results pass with the flushed references, in f32 and bf16,
    /// fail without them, and a wrong value fails with them.
    #[test]
    fn flushed_results_pass_only_against_the_flushed_reference() {
        let sub = 1e-40f32;
        let (dy, a) = (0.75f32, 1.5f32);
        let prelu = |flush| learnable_references(Learnable::Prelu, &[sub], &[0.0], &[dy], flush);
        let reglu = |flush| gated_references(Activation::Relu, &[a, sub], &[dy], 1, flush);
        let bias = |flush| bias_references(Activation::Relu, &[sub], &[-0.0], &[dy], flush);
        assert_eq!((prelu(false).dx[0], prelu(true).dx[0]), (0.75, 0.0));
        assert_eq!((reglu(false).dg[0], reglu(true).dg[0]), (1.125, 0.0));
        assert_eq!((bias(false).dx[0], bias(true).dx[0]), (0.75, 0.0));
        for dtype in [DType::F32, DType::BF16] {
            for (exact, flushed) in [
                (prelu(false).dx, prelu(true).dx),
                (reglu(false).dg, reglu(true).dg),
                (bias(false).dx, bias(true).dx),
            ] {
                let device = [flushed[0] as f32];
                let with = check_values(dtype, &[sub], &device, &exact, Some(&flushed));
                assert!(
                    with.ok() && with.flush_accepted == 1,
                    "{dtype:?}: {with:#?}"
                );
                assert!(!check_values(dtype, &[sub], &device, &exact, None).ok());
                let wrong = check_values(dtype, &[sub], &[0.5], &exact, Some(&flushed));
                assert!(!wrong.ok(), "{dtype:?}: 0.5 for {exact:?} or {flushed:?}");
            }
        }
        // The column sum: the flushing device's db (0) passes against the flushed sum only.
        let (r, f) = (bias(false), bias(true));
        let sums = [&r.sum[..], &f.sum[..]];
        let c = check_sums_flushing(DType::F32, DType::F32, &[0.0], sums, &[0.75]);
        assert!(c.ok() && c.flush_accepted == 1, "{c:#?}");
        assert!(!check_sums(DType::F32, DType::F32, &[0.0], &r.sum, &[0.75]).ok());
        assert!(!check_sums_flushing(DType::F32, DType::F32, &[0.5], sums, &[0.75]).ok());
    }

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
