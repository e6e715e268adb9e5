//! Checks of the fused kernels against the f64 reference, shared by the tests and `validate`: bias +
//! activation, gated units, learnable activations, on seeded random inputs in any storage type.

pub use super::inputs::{fused_tail_grid, underflow_edges};
use super::{
    compare_bounded, compare_flushing, flush_subnormal, poisoned, round_to, tail_check,
    tail_tolerance, Check, Criterion, Pass, Rng, Run, Tolerance, F32_ELEMENTWISE, FLUSH_UNDERFLOW,
};
use crate::cpu::fused as reference;
use crate::{cpu, Activation, DType, Gated, Gpu, Learnable, Result, Tensor};

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
                // Beside normal values only: an infinite dy times a derivative that f32 rounds to 0 but f64 does
                // not (x^2 at x = 1e-40) has no common answer. Where a normal x has such a derivative (softsign'
                // at 1e30), the references follow the crate's f32 rule (`f32_policy`).
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
pub(super) fn poisoned_shaped(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let t = poisoned(gpu, dtype, shape.iter().product())?;
    Tensor::from_buffer(gpu, t.buffer().clone(), shape, dtype)
}

/// One checked output of a fused op.
#[derive(Debug, Clone)]
pub struct FusedCheck {
    /// The op, e.g. `bias_gelu`, `swiglu`, `prelu_per_channel`; `_edges` appended for edge inputs, `_tails` for
    /// the tails checks of an f32 check on random inputs.
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
pub(super) fn values(
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
pub(super) fn read_as(v: &[f32], flush: bool) -> Vec<f64> {
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
    let (mut dx, _) = reference::bias_backward(act, &z, &zero, &dyv);
    f32_policy(act, &z, &dyv, &mut dx, flush);
    let mut sum = vec![0.0; cols];
    for (i, &d) in dx.iter().enumerate() {
        sum[i % cols] += d;
    }
    FusedReferences {
        y,
        dx,
        sum,
        da: Vec::new(),
        dg: Vec::new(),
    }
}

/// The crate's rule for an infinite dy times a derivative that is not 0 but rounds to 0 in f32 (README,
/// "Numerical policy"; `super::dy_edges`): NaN, as PyTorch's f32 `inf * 0`, where the f64 reference has the
/// infinite limit. Applied to `dx = dy f'(z)` of `act`; on a flushing device (`flush`) every derivative below
/// 2^-126 rounds to 0.
fn f32_policy(act: Activation, z: &[f64], dy: &[f64], dx: &mut [f64], flush: bool) {
    for ((d, &v), &g) in dx.iter_mut().zip(z).zip(dy) {
        let derivative = cpu::activation::backward(act, v, 1.0);
        let to_zero = if flush {
            derivative.abs() < f64::from(f32::MIN_POSITIVE)
        } else {
            derivative as f32 == 0.0
        };
        if g.is_infinite() && derivative != 0.0 && to_zero {
            *d = f64::NAN;
        }
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
    let dout = read_as(dout, flush);
    let (da, mut dg) = reference::gated_backward(gate, &a, &g, &dout);
    // dg = (dout a) f'(g): the f32 rule where dout a is infinite and f'(g) rounds to 0 (softsign at 1e30).
    let scaled: Vec<f64> = dout.iter().zip(&a).map(|(d, a)| d * a).collect();
    f32_policy(gate, &g, &scaled, &mut dg, flush);
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
/// written into a poisoned tensor. All in f32 on random inputs, followed by the op's tails on `cols` columns
/// (`check_bias_tails`).
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
    let tails = if x_t == DType::F32 && b_t == DType::F32 && has_tails(inputs, cols) {
        check_bias_tails(gpu, act, cols, seed)?
    } else {
        Vec::new()
    };
    let mut checks = vec![
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
    ];
    checks.extend(tails);
    Ok(checks)
}

/// A gated unit on `[rows, 2 half]` (split layout) and on two `[rows, half]` tensors (pair layout), every output
/// written into a poisoned tensor. In f32 on random inputs, followed by the unit's tails in both layouts with the
/// same half width (`check_gated_tails`).
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
    let mut checks = vec![
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
    ];
    if dtype == DType::F32 && has_tails(inputs, half) {
        checks.extend(check_gated_tails(gpu, unit, half, inputs.seed())?);
    }
    Ok(checks)
}

/// A learnable activation on `[rows, cols]` with x, dy, dx in `dtype` and the parameter (shared, or per column)
/// and its gradient in `p_t`: y, dx and dp, each written into a poisoned tensor. All in f32 on random inputs,
/// followed by the op's tails on `cols` columns (`check_learnable_tails`).
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
    let mut checks = vec![
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
    ];
    if dtype == DType::F32 && p_t == DType::F32 && has_tails(inputs, cols) {
        checks.extend(check_learnable_tails(gpu, kind, cols, shared, seed)?);
    }
    Ok(checks)
}

// The tails of the fused f32 ops. The checks above take x in [-4, 4) plus a bias, so few of their results are
// below the general tolerance's absolute floor (1e-6), where 0, the wrong sign or an error of 10% passes; as
// `check_activation` has its tails check, each f32 check on random inputs also runs its op on inputs of its own that
// reach the tails (the pre-activation, gate or input across +-[2, 130], and near each underflow edge) and checks
// every result of at least f32's smallest normal in magnitude relatively, with `tail_check` (`tail_tolerance`,
// roots left out) and, for the sums whose terms all have one sign, `tail_sums`. Their rows are the op's with
// `_tails` appended (`bias_gelu_tails`, `swiglu_pair_tails`, `prelu_per_channel_tails`).

/// Whether an f32 check on `inputs` adds the tails of its op: on random inputs (edge inputs are the numerical
/// policy's special values, not tails), for a nonzero width.
fn has_tails(inputs: FusedInputs, cols: usize) -> bool {
    matches!(inputs, FusedInputs::Random(_)) && cols > 0
}

/// Offset of the tails checks' seeds from their check's.
const TAILS_SEED: u64 = 0x7a11_5000;

/// `sign(v)` times a seeded magnitude in [0.5, 2) for each of `values`: the gradients, and the other operand of a
/// gated unit, of the tails checks (below 2 in magnitude, as [`FLUSH_UNDERFLOW`] assumes of a gradient). One sign
/// on each side of 0 rather than a random one: [`tail_check`] leaves out the elements near a sign change of the
/// reference between neighbouring inputs, and random signs would put one between nearly every pair (no tail
/// variable here is within 2 of 0, where this sign changes).
fn tail_factors(values: &[f32], seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    values
        .iter()
        .map(|&v| rng.uniform(0.5, 2.0).copysign(v))
        .collect()
}

/// The ascending `sorted` cut into `cols` bands of consecutive values (each at least one value), as columns.
fn bands(sorted: &[f32], cols: usize) -> Vec<Vec<f32>> {
    let n = sorted.len();
    (0..cols)
        .map(|c| {
            let lo = (c * n / cols).min(n.saturating_sub(1));
            let hi = ((c + 1) * n / cols).max(lo + 1).min(n);
            sorted[lo..hi].to_vec()
        })
        .collect()
}

/// `columns` as a row-major `[rows, columns.len()]` matrix, `(rows, values)`: each column padded to the longest by
/// repeating its own values from its start (the same input twice is the same check twice, and a column's sum
/// stays a sum of its band).
fn banded(columns: &[Vec<f32>]) -> (usize, Vec<f32>) {
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
    let values = (0..rows)
        .flat_map(|r| columns.iter().map(move |c| c[r % c.len()]))
        .collect();
    (rows, values)
}

/// The tail variable over `f` and `df` (a forward and a derivative): [`fused_tail_grid`] and the
/// [`underflow_edges`] of both, ascending.
fn tail_values(grid: &[f32], f: impl Fn(f32) -> f64, df: impl Fn(f32) -> f64) -> Vec<f32> {
    let mut v = grid.to_vec();
    v.extend(underflow_edges(grid, f));
    v.extend(underflow_edges(grid, df));
    v.sort_by(f32::total_cmp);
    v.dedup();
    v
}

/// [`tail_check`] of one output: `got` (and its unwritten elements, counted as failures) against `reference` over
/// the tail variable `t`, with the reference at flushed inputs where the device flushes subnormals. Element `i`
/// belongs to group `i % groups` (a learnable parameter's column), and each group is checked on its own, so that
/// the roots [`tail_check`] leaves out are those of one function, not sign changes between two columns'
/// parameters; the groups' checks are merged.
fn tails(
    flushes: bool,
    tol: Tolerance,
    t: &[f32],
    (got, unwritten): (Vec<f32>, usize),
    [reference, flushed]: [&[f64]; 2],
    groups: usize,
) -> Check {
    let groups = groups.max(1);
    let checks = (0..groups)
        .map(|g| {
            let pick_f32 = |v: &[f32]| v.iter().skip(g).step_by(groups).copied().collect();
            let pick_f64 = |v: &[f64]| v.iter().skip(g).step_by(groups).copied().collect();
            let run = Run {
                x: pick_f32(t),
                got: pick_f32(&got),
                reference: pick_f64(reference),
                flushed: flushes.then(|| pick_f64(flushed)),
                unwritten: 0,
            };
            tail_check(tol, &[&run])
        })
        .collect();
    let mut c = Check::merge(checks).expect("at least one group");
    c.failures += unwritten;
    c
}

/// The tails of a reduced gradient (db, dp: `cols` column sums of the row-major `terms`, the reference's dx or
/// dy df/dp): the sums of the columns whose terms all have one sign (zeros aside), so that the sum is as small as
/// its terms and a relative bound means something, within `tol`'s relative error of each term and 1e-5 for the
/// rounding of an f32 sum (as [`check_sums`]), both of the sum of the terms' magnitudes, plus what underflow may
/// take: f32's smallest normal for each term below it (which may come out subnormal or 0), or [`FLUSH_UNDERFLOW`]
/// for every term on a device that flushes subnormals (where partial sums below the normal range may be flushed
/// too). Only sums where that relative part is the larger are checked: deeper in the tail the sum is made of
/// underflowed terms, as an element below f32's smallest normal is left out of [`tail_check`]. Unwritten sums
/// count as failures.
fn tail_sums(
    flushes: bool,
    tol: Tolerance,
    (got, unwritten): (Vec<f32>, usize),
    reference: &[f64],
    terms: &[f64],
    cols: usize,
) -> Check {
    let cols = cols.max(1);
    let normal = f64::from(f32::MIN_POSITIVE);
    let (mut g, mut r, mut bounds) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..cols.min(reference.len()).min(got.len()) {
        let column: Vec<f64> = terms.iter().skip(c).step_by(cols).copied().collect();
        let one_sign = column.iter().all(|v| v.is_finite() && *v >= 0.0)
            || column.iter().all(|v| v.is_finite() && *v <= 0.0);
        if !one_sign || !reference[c].is_finite() || reference[c] == 0.0 {
            continue;
        }
        let magnitudes: f64 = column.iter().map(|v| v.abs()).sum();
        let below = column.iter().filter(|v| v.abs() < normal).count();
        let underflow = if flushes {
            column.len() as f64 * FLUSH_UNDERFLOW
        } else {
            below as f64 * normal
        };
        let relative = (tol.rel + 1e-5) * magnitudes;
        if relative < underflow {
            continue;
        }
        g.push(got[c]);
        r.push(reference[c]);
        bounds.push(relative + underflow);
    }
    let mut check = compare_bounded("f32_tail_sum", &g, &r, &bounds);
    check.failures += unwritten;
    check
}

/// Bias + `act` in its tails, f32, on `[rows, cols]`: z = x + b takes [`tail_values`] of f and f' in bands of
/// consecutive values per column (so that a column whose band lies in a tail has a db in that tail), each column
/// with a bias in steps of 2^-10 that x + b puts back exactly, and dy = sign(z) times a magnitude in [0.5, 2).
/// y and dx by [`tail_check`] over z, db by [`tail_sums`].
fn check_bias_tails(gpu: &Gpu, act: Activation, cols: usize, seed: u64) -> Result<Vec<FusedCheck>> {
    let seed = seed.wrapping_add(TAILS_SEED);
    let z = tail_values(
        &fused_tail_grid(),
        |v| cpu::activation::forward(act, v.into()),
        |v| cpu::activation::backward(act, v.into(), 1.0),
    );
    let (rows, zs) = banded(&bands(&z, cols));
    let mut rng = Rng::new(seed);
    let bs: Vec<f32> = (0..cols)
        .map(|_| rng.uniform(-1024.0, 1024.0).floor() / 1024.0)
        .collect();
    let xs: Vec<f32> = zs
        .iter()
        .enumerate()
        .map(|(i, &z)| z - bs[i % cols])
        .collect();
    let dys = tail_factors(&zs, seed + 1);
    let x = matrix(gpu, &xs, rows, cols, DType::F32)?;
    let bias = gpu.upload(&bs)?;
    let dy = matrix(gpu, &dys, rows, cols, DType::F32)?;
    let (y, dx) = (
        poisoned_shaped(gpu, &[rows, cols], DType::F32)?,
        poisoned_shaped(gpu, &[rows, cols], DType::F32)?,
    );
    let db = poisoned_shaped(gpu, &[cols], DType::F32)?;
    run(gpu, |enc| {
        act.record_bias_forward(enc, &x, &bias, &y)?;
        act.record_bias_backward(enc, &x, &bias, &dy, &dx, &db)
    })?;
    let flushes = gpu.flushes_subnormals()?;
    let [r, f] = references(gpu, |flush| bias_references(act, &xs, &bs, &dys, flush))?;
    let op = format!("bias_{}_tails", act.name());
    let (forward, backward) = (
        tail_tolerance(act, Pass::Forward),
        tail_tolerance(act, Pass::Backward),
    );
    let read = super::read_checked;
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            DType::F32,
            tails(flushes, forward, &zs, read(&y)?, [&r.y, &f.y], 1),
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            DType::F32,
            tails(flushes, backward, &zs, read(&dx)?, [&r.dx, &f.dx], 1),
        ),
        row(
            &op,
            Pass::Backward,
            "db",
            DType::F32,
            tail_sums(flushes, backward, read(&db)?, &r.sum, &r.dx, cols),
        ),
    ])
}

/// Both halves of a row-major `[rows, 2 half]` f32 matrix, as `[rows, half]` each.
fn halves_f32(v: &[f32], half: usize) -> (Vec<f32>, Vec<f32>) {
    let (a, g) = reference::split_halves(&widen(v), half);
    let narrow = |w: Vec<f64>| w.into_iter().map(|x| x as f32).collect();
    (narrow(a), narrow(g))
}

/// A gated unit in its gate's tails, f32, in both layouts, with half width `half`: g takes [`tail_values`] of the
/// gate's f and f' (row-major, padded to whole rows by repeating), a = -sign(g) times a magnitude in [0.5, 2) and
/// dout = sign(g) times one in [0.25, 1) (so dout a < 0: dg's sign is f''s flipped; and |dout a| < 2, the largest
/// gradient [`FLUSH_UNDERFLOW`] allows for, as [`tail_factors`] gives the other checks). y, da and dg of each
/// layout by [`tail_check`] over g (the split layout's dx taken apart into da and dg).
fn check_gated_tails(gpu: &Gpu, unit: Gated, half: usize, seed: u64) -> Result<Vec<FusedCheck>> {
    let seed = seed.wrapping_add(TAILS_SEED);
    let gate = unit.gate;
    let mut gs = tail_values(
        &fused_tail_grid(),
        |v| cpu::activation::forward(gate, v.into()),
        |v| cpu::activation::backward(gate, v.into(), 1.0),
    );
    let rows = gs.len().div_ceil(half);
    gs = (0..rows * half).map(|i| gs[i % gs.len()]).collect();
    let a32: Vec<f32> = tail_factors(&gs, seed).iter().map(|v| -v).collect();
    let douts: Vec<f32> = tail_factors(&gs, seed + 1)
        .iter()
        .map(|v| 0.5 * v)
        .collect();
    let xs: Vec<f32> = a32
        .chunks(half)
        .zip(gs.chunks(half))
        .flat_map(|(a, g)| a.iter().chain(g).copied())
        .collect();
    let x = matrix(gpu, &xs, rows, 2 * half, DType::F32)?;
    let dout = matrix(gpu, &douts, rows, half, DType::F32)?;
    let at = matrix(gpu, &a32, rows, half, DType::F32)?;
    let gt = matrix(gpu, &gs, rows, half, DType::F32)?;
    let halves = [rows, half];
    let out = poisoned_shaped(gpu, &halves, DType::F32)?;
    let dx = poisoned_shaped(gpu, &[rows, 2 * half], DType::F32)?;
    let out_pair = poisoned_shaped(gpu, &halves, DType::F32)?;
    let (da, dg) = (
        poisoned_shaped(gpu, &halves, DType::F32)?,
        poisoned_shaped(gpu, &halves, DType::F32)?,
    );
    run(gpu, |enc| {
        unit.record_forward(enc, &x, &out)?;
        unit.record_backward(enc, &x, &dout, &dx)?;
        unit.record_forward_pair(enc, &at, &gt, &out_pair)?;
        unit.record_backward_pair(enc, &at, &gt, &dout, &da, &dg)
    })?;
    let flushes = gpu.flushes_subnormals()?;
    let [r, f] = references(gpu, |flush| {
        gated_references(gate, &xs, &douts, half, flush)
    })?;
    let (forward, backward) = (
        tail_tolerance(gate, Pass::Forward),
        tail_tolerance(gate, Pass::Backward),
    );
    let read = super::read_checked;
    // The split layout's dx apart: its unwritten elements counted once, with da.
    let (dx_got, dx_unwritten) = read(&dx)?;
    let (split_da, split_dg) = halves_f32(&dx_got, half);
    let op = format!("{}_tails", unit.name());
    let pair = format!("{}_pair_tails", unit.name());
    let t = &gs;
    Ok(vec![
        row(
            &op,
            Pass::Forward,
            "y",
            DType::F32,
            tails(flushes, forward, t, read(&out)?, [&r.y, &f.y], 1),
        ),
        row(
            &op,
            Pass::Backward,
            "da",
            DType::F32,
            tails(
                flushes,
                forward,
                t,
                (split_da, dx_unwritten),
                [&r.da, &f.da],
                1,
            ),
        ),
        row(
            &op,
            Pass::Backward,
            "dg",
            DType::F32,
            tails(flushes, backward, t, (split_dg, 0), [&r.dg, &f.dg], 1),
        ),
        row(
            &pair,
            Pass::Forward,
            "y",
            DType::F32,
            tails(flushes, forward, t, read(&out_pair)?, [&r.y, &f.y], 1),
        ),
        row(
            &pair,
            Pass::Backward,
            "da",
            DType::F32,
            tails(flushes, forward, t, read(&da)?, [&r.da, &f.da], 1),
        ),
        row(
            &pair,
            Pass::Backward,
            "dg",
            DType::F32,
            tails(flushes, backward, t, read(&dg)?, [&r.dg, &f.dg], 1),
        ),
    ])
}

/// The built-in activation whose tails tolerance a learnable one takes ([`tail_tolerance`] looks only at how it
/// is computed): PReLU is piecewise linear, like a leaky ReLU; Swish and ELU go through `exp`.
fn learnable_like(kind: Learnable) -> Activation {
    match kind {
        Learnable::Prelu => Activation::leaky_relu(),
        Learnable::Swish => Activation::swish(),
        Learnable::Elu => Activation::elu(),
    }
}

/// The parameters of a learnable tails check, `n` of them (one where shared), with both kinds of tail in them:
/// PReLU `+-m 2^-e` (m in [1, 2), e from 8 to 120: p x is a tail on x < 0); ELU alternately `m` in [0.25, 2.25)
/// (dx = dy p e^x is a tail past x = -14) and `m 2^-e` (y = p (e^x - 1) is one too); Swish `+-m`, m in [0.25, 4)
/// (the tails of p x on one side). A shared parameter is the first: a small one for PReLU and ELU, whose y is
/// otherwise never a tail.
fn tail_parameters(kind: Learnable, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            let exponent = |list: &[i32]| 2f32.powi(-list[(i / 2) % list.len()]);
            match kind {
                Learnable::Prelu => {
                    sign * rng.uniform(1.0, 2.0) * exponent(&[40, 8, 24, 56, 72, 88, 104, 120])
                }
                Learnable::Elu if i % 2 == 0 => {
                    rng.uniform(1.0, 2.0) * exponent(&[40, 20, 80, 110])
                }
                Learnable::Elu => rng.uniform(0.25, 2.25),
                Learnable::Swish => sign * rng.uniform(0.25, 4.0),
            }
        })
        .collect()
}

/// A learnable activation in its tails, f32, on `[rows, cols]` with a shared parameter or one per column
/// ([`tail_parameters`]): x takes [`fused_tail_grid`] and the [`underflow_edges`] of f, df/dx and (Swish) df/dp,
/// in bands of consecutive values per column with that column's parameter, or all of it row-major with a shared
/// one; dy = sign(x) times a magnitude in [0.5, 2). y and dx by [`tail_check`] over x, each column on its own; and
/// where the parameter's gradient has tails, Swish's `dp = sum of dy x^2 sigmoid'(p x)` per column, by
/// [`tail_sums`] (PReLU's df/dp = x and ELU's e^x - 1 are at least 0.86 in magnitude for |x| >= 2, and a shared
/// parameter's sum runs over every band, so is as large as its largest terms).
fn check_learnable_tails(
    gpu: &Gpu,
    kind: Learnable,
    cols: usize,
    shared: bool,
    seed: u64,
) -> Result<Vec<FusedCheck>> {
    let seed = seed.wrapping_add(TAILS_SEED);
    let n = if shared { 1 } else { cols };
    let ps = tail_parameters(kind, n, seed);
    let grid = fused_tail_grid();
    let with_edges = |band: &[f32], p: f32| {
        let p = f64::from(p);
        let mut v = tail_values(
            band,
            |x| reference::learnable_f(kind, x.into(), p),
            |x| reference::learnable_grads(kind, x.into(), p).0,
        );
        if kind == Learnable::Swish {
            v.extend(underflow_edges(band, |x| {
                reference::learnable_grads(kind, x.into(), p).1
            }));
            v.sort_by(f32::total_cmp);
            v.dedup();
        }
        v
    };
    let (rows, xs) = if shared {
        let v = with_edges(&grid, ps[0]);
        let rows = v.len().div_ceil(cols);
        (rows, (0..rows * cols).map(|i| v[i % v.len()]).collect())
    } else {
        let columns: Vec<Vec<f32>> = bands(&grid, cols)
            .iter()
            .zip(&ps)
            .map(|(band, &p)| with_edges(band, p))
            .collect();
        banded(&columns)
    };
    let dys = tail_factors(&xs, seed + 1);
    let x = matrix(gpu, &xs, rows, cols, DType::F32)?;
    let dy = matrix(gpu, &dys, rows, cols, DType::F32)?;
    let p = gpu.upload(&ps)?;
    let y = poisoned_shaped(gpu, &[rows, cols], DType::F32)?;
    let dx = poisoned_shaped(gpu, &[rows, cols], DType::F32)?;
    let dp = poisoned_shaped(gpu, &[n], DType::F32)?;
    run(gpu, |enc| {
        kind.record_forward(enc, &x, &p, &y)?;
        kind.record_backward(enc, &x, &p, &dy, &dx, &dp)
    })?;
    let flushes = gpu.flushes_subnormals()?;
    let [r, f] = references(gpu, |flush| {
        learnable_references(kind, &xs, &ps, &dys, flush)
    })?;
    let like = learnable_like(kind);
    let (forward, backward) = (
        tail_tolerance(like, Pass::Forward),
        tail_tolerance(like, Pass::Backward),
    );
    let read = super::read_checked;
    let op = format!(
        "{}_{}_tails",
        kind.name(),
        if shared { "shared" } else { "per_channel" }
    );
    let mut checks = vec![
        row(
            &op,
            Pass::Forward,
            "y",
            DType::F32,
            tails(flushes, forward, &xs, read(&y)?, [&r.y, &f.y], n),
        ),
        row(
            &op,
            Pass::Backward,
            "dx",
            DType::F32,
            tails(flushes, backward, &xs, read(&dx)?, [&r.dx, &f.dx], n),
        ),
    ];
    if kind == Learnable::Swish && !shared {
        // The reference's terms, with its rule that a zero df/dp adds 0.
        let terms: Vec<f64> = xs
            .iter()
            .zip(&dys)
            .enumerate()
            .map(|(i, (&x, &d))| {
                let (_, gp) = reference::learnable_grads(kind, x.into(), ps[i % n].into());
                if gp == 0.0 {
                    0.0
                } else {
                    f64::from(d) * gp
                }
            })
            .collect();
        checks.push(row(
            &op,
            Pass::Backward,
            "dp",
            DType::F32,
            tail_sums(flushes, backward, read(&dp)?, &r.sum, &terms, n),
        ));
    }
    Ok(checks)
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

    /// A column sum in the tails (terms of one sign, 1e-20 in all): 0, the wrong sign or 10% off passes
    /// `check_sums` (its absolute term is 1e-6) and fails `tail_sums`; the right sum passes; a column whose terms
    /// have both signs, or whose terms are all below f32's smallest normal, is left out.
    #[test]
    fn tail_sums_reject_zero_and_the_wrong_sign() {
        let tol = tail_tolerance(Activation::Gelu, Pass::Backward);
        // Two rows of three columns: tail terms of one sign; terms of both signs; underflowed terms.
        let terms = [4e-21, 1e-20, 1e-40, 6e-21, -3e-21, 2e-40];
        let reference = [1e-20, 7e-21, 3e-40];
        let abs_sums = [1e-20, 1.3e-20, 3e-40];
        for bad in [0.0, -1e-20f32, 1.1e-20] {
            let got = vec![bad, 7e-21, 3e-40];
            assert!(check_sums(DType::F32, DType::F32, &got, &reference, &abs_sums).ok());
            for flushes in [false, true] {
                let c = tail_sums(flushes, tol, (got.clone(), 0), &reference, &terms, 3);
                assert_eq!((c.count, c.failures), (1, 1), "{bad}: {c:#?}");
            }
        }
        // The right sum passes, and the other columns are left out whatever they hold.
        let good = vec![1e-20, 0.0, 0.0];
        let c = tail_sums(false, tol, (good.clone(), 0), &reference, &terms, 3);
        assert!(c.ok() && c.count == 1, "{c:#?}");
        // Unwritten sums fail.
        assert!(!tail_sums(false, tol, (good, 1), &reference, &terms, 3).ok());
    }

    /// Interleaved groups (the columns of a learnable parameter) with references of opposite signs: checked on
    /// their own, every tail element counts (and a 0 fails); checked together, every neighbour is a sign change
    /// and `tail_check` would leave them all out as near a root.
    #[test]
    fn tails_are_checked_per_group() {
        let t: Vec<f32> = (0..200).map(|i| -(2.0 + i as f32 / 64.0)).collect();
        let reference: Vec<f64> = t
            .iter()
            .enumerate()
            .map(|(i, &x)| if i % 2 == 0 { 1.0 } else { -1.0 } * (f64::from(x)).exp())
            .collect();
        let got: Vec<f32> = reference.iter().map(|&r| r as f32).collect();
        let tol = tail_tolerance(Activation::Sigmoid, Pass::Forward);
        let refs = [&reference[..], &reference[..]];
        let grouped = tails(false, tol, &t, (got.clone(), 0), refs, 2);
        assert!(grouped.ok() && grouped.count == 200, "{grouped:#?}");
        assert_eq!(tails(false, tol, &t, (got.clone(), 0), refs, 1).count, 0);
        let mut zero = got.clone();
        zero[57] = 0.0;
        assert_eq!(tails(false, tol, &t, (zero, 0), refs, 2).failures, 1);
        assert_eq!(tails(true, tol, &t, (got, 3), refs, 2).failures, 3);
    }

    /// Bands are consecutive and cover every value once; padded columns repeat their own values.
    #[test]
    fn bands_cover_the_values_in_order() {
        let v: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let b = bands(&v, 4);
        assert_eq!(
            b,
            [
                vec![0.0, 1.0],
                vec![2.0, 3.0, 4.0],
                vec![5.0, 6.0],
                vec![7.0, 8.0, 9.0]
            ]
        );
        let (rows, m) = banded(&b);
        assert_eq!(rows, 3);
        assert_eq!(
            m,
            [0.0, 2.0, 5.0, 7.0, 1.0, 3.0, 6.0, 8.0, 0.0, 4.0, 5.0, 9.0]
        );
        assert_eq!(bands(&v, 12).len(), 12);
        assert!(bands(&v, 12).iter().all(|c| c.len() == 1));
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
