//! Checks of the training kernels against the f64 reference, for `validate`: the three product forms, the dense
//! layer forward and backward, the losses with their gradients, and the optimizer updates, on seeded random
//! inputs, each output poisoned first. The bounds are worst-case rounding analyses (stated at each), the same
//! the integration tests use.

use super::fused::{random_values, FusedCheck};
use super::{compare_bounded, Check, Pass, Rng, POISON};
use crate::cpu;
use crate::ops::loss::{Labels, Loss, Targets};
use crate::ops::matmul::{record_form, Form, MatmulKernel};
use crate::{Activation, Adam, DType, Dense, Gpu, Optimizer, Result, Sgd, Tensor};

/// Unit roundoff of f32, 2^-24.
pub const U: f64 = 1.0 / 16_777_216.0;

/// `DOT_F32`, the bound on an f32 dot product of `k` terms, `|got - ref| <= 1e-6 + gamma_{k+2} sum_i |a_i b_i|`
/// with `gamma_j = j u / (1 - j u)`, `u = 2^-24`: summing k products in f32 in any order, fused or not, is within
/// `gamma_k sum |a_i b_i|` of the exact sum (Higham, Accuracy and Stability, 3.1); the bias add and the store add
/// at most two more roundings; `1e-6` absorbs subnormals flushed to zero. A worst case, so it holds for every
/// summation order a kernel uses, and tight enough that a term dropped or counted twice fails.
pub fn dot_bound(k: usize, abs_sum: f64) -> f64 {
    let g = (k + 2) as f64 * U;
    1e-6 + g / (1.0 - g) * abs_sum
}

/// Largest `|f'|` of the activations checked with the dense layer (GELU's 1.129), with a margin: an error `e`
/// in the pre-activation moves `f(z)` by at most `LIPSCHITZ e`.
pub const LIPSCHITZ: f64 = 1.2;

/// `(m, k, n)` of the products and dense layers checked: odd sizes, a tile multiple, and a shape whose sizes
/// are multiples of 4 with tails of the CPU kernels' 32-row and 32-column blocks.
const SHAPES: [(usize, usize, usize); 4] = [(1, 5, 3), (33, 70, 45), (64, 64, 64), (36, 68, 20)];

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn random(gpu: &Gpu, shape: [usize; 2], dtype: DType, seed: u64) -> Result<(Tensor, Vec<f64>)> {
    let v = random_values(shape[0] * shape[1], 1.0, dtype, seed);
    let t = gpu.upload_f32_as(&v, dtype)?;
    let t = Tensor::from_buffer(gpu, t.buffer().clone(), &shape, dtype)?;
    Ok((t, widen(&v)))
}

fn poisoned(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
    gpu.upload_shaped(&vec![POISON; shape.iter().product()], shape)
}

/// The checks of one output over several shapes, as one.
fn merged(checks: Vec<Check>) -> Check {
    Check::merge(checks).unwrap_or_else(|| compare_bounded("none", &[], &[], &[]))
}

fn row(op: String, pass: Pass, output: &'static str, dtype: DType, check: Check) -> FusedCheck {
    FusedCheck {
        op,
        pass,
        output,
        dtype,
        check,
    }
}

/// `(a shape, b shape, out shape, inner size)` of a form over the dense layer's `(m, k, n)`.
pub fn form_dims(
    form: Form,
    (m, k, n): (usize, usize, usize),
) -> ([usize; 2], [usize; 2], [usize; 2], usize) {
    match form {
        Form::AB => ([m, k], [k, n], [m, n], k),
        Form::AtB => ([m, k], [m, n], [k, n], m),
        Form::ABt => ([m, n], [k, n], [m, k], n),
    }
}

/// The f64 reference of a form over `(m, k, n)`.
pub fn form_reference(
    form: Form,
    a: &[f64],
    b: &[f64],
    (m, k, n): (usize, usize, usize),
) -> Vec<f64> {
    match form {
        Form::AB => cpu::dense::matmul(a, b, m, k, n),
        Form::AtB => cpu::dense::matmul_at_b(a, b, m, k, n),
        Form::ABt => cpu::dense::matmul_a_bt(a, b, m, k, n),
    }
}

/// Every product form on the adapter's own kernel ([`MatmulKernel::for_gpu`]) with both operands in `dtype` and
/// an f32 result, within [`dot_bound`] of the f64 product of the operands' exact values.
pub fn check_products(gpu: &Gpu, dtype: DType) -> Result<Vec<FusedCheck>> {
    let kernel = MatmulKernel::for_gpu(gpu);
    let mut out = Vec::new();
    for form in [Form::AB, Form::AtB, Form::ABt] {
        let mut checks = Vec::new();
        for (s, shape) in SHAPES.into_iter().enumerate() {
            let (ash, bsh, osh, inner) = form_dims(form, shape);
            let (a, av) = random(gpu, ash, dtype, 10 + s as u64)?;
            let (b, bv) = random(gpu, bsh, dtype, 20 + s as u64)?;
            let c = poisoned(gpu, &osh)?;
            gpu.submit_and_wait("validate matmul", |enc| {
                record_form(kernel, enc, form, &a, &b, &c)
            })?;
            let want = form_reference(form, &av, &bv, shape);
            let abs = form_reference(form, &cpu::dense::abs(&av), &cpu::dense::abs(&bv), shape);
            let bounds: Vec<f64> = abs.iter().map(|&s| dot_bound(inner, s)).collect();
            checks.push(compare_bounded(
                "dot_f32",
                &c.read::<f32>()?,
                &want,
                &bounds,
            ));
        }
        out.push(row(
            form.name().to_string(),
            Pass::Forward,
            "c",
            dtype,
            merged(checks),
        ));
    }
    Ok(out)
}

/// Every product form, f32, on the adapter's own kernel, over K = 70,000 (more than a software driver lets one
/// invocation loop: [`Gpu::loop_limited`]), by [`check_positive_product`]: exact operands, so the result must
/// equal the f64 product exactly, and a product cut short, or one 16-deep chunk dropped or counted twice where
/// the loop-limited path splits K, fails.
pub fn check_deep_products(gpu: &Gpu) -> Result<Vec<FusedCheck>> {
    let kernel = MatmulKernel::for_gpu(gpu);
    let mut out = Vec::new();
    for (s, form) in [Form::AB, Form::AtB, Form::ABt].into_iter().enumerate() {
        let shape = deep_shape(form, 70_000);
        let check = check_positive_product(gpu, kernel, form, shape, 60 + s as u64)?;
        out.push(row(
            format!("{} deep", form.name()),
            Pass::Forward,
            "c",
            DType::F32,
            check,
        ));
    }
    Ok(out)
}

/// A dense layer's `(m, k, n)` whose product of `form` sums over `depth` terms ([`form_dims`]'s inner size: K of
/// `X W`, the batch m of `X^T dZ`, the width n of `dZ W^T`), the other sizes 3 and 5.
pub fn deep_shape(form: Form, depth: usize) -> (usize, usize, usize) {
    match form {
        Form::AB => (3, depth, 5),
        Form::AtB => (depth, 3, 5),
        Form::ABt => (3, 5, depth),
    }
}

/// The deepest inner size [`check_positive_product`] takes, `2^22`: its products are `1/16`, `1/8` or `1/4`,
/// so every partial sum is a multiple of `1/16` of at most `K / 4 <= 2^20`, which is `<= 2^24` sixteenths and so
/// exact in f32, in any order and with any split.
pub const EXACT_PRODUCT_MAX_K: usize = 1 << 22;

/// One product of `form` over `(m, k, n)` on `kernel`, f32, with operands `1/4` or `1/2` (seeded, from `seed`
/// and `seed + 10`) into a poisoned output, required to equal the f64 product exactly: every product is a
/// multiple of `1/16` and every partial sum one of at most `2^20` (for `k <=` [`EXACT_PRODUCT_MAX_K`]), exact in f32
/// whatever the summation order or split, while a term lost or counted twice moves the sum by at least `1/16`.
/// An inner size past [`EXACT_PRODUCT_MAX_K`] is [`crate::Error::InvalidArgument`].
pub fn check_positive_product(
    gpu: &Gpu,
    kernel: MatmulKernel,
    form: Form,
    shape: (usize, usize, usize),
    seed: u64,
) -> Result<Check> {
    let (ash, bsh, osh, inner) = form_dims(form, shape);
    if inner > EXACT_PRODUCT_MAX_K {
        return Err(crate::Error::InvalidArgument {
            op: "check_positive_product",
            reason: format!(
                "inner size {inner} is past {EXACT_PRODUCT_MAX_K}, where f32 sums of the operands stop being exact"
            ),
        });
    }
    let positive = |dims: [usize; 2], seed: u64| -> Result<(Tensor, Vec<f64>)> {
        let v = exact_operands(dims[0] * dims[1], seed);
        Ok((gpu.upload_shaped(&v, &dims)?, widen(&v)))
    };
    let (a, av) = positive(ash, seed)?;
    let (b, bv) = positive(bsh, seed + 10)?;
    let c = poisoned(gpu, &osh)?;
    gpu.submit_and_wait("deep matmul", |enc| {
        record_form(kernel, enc, form, &a, &b, &c)
    })?;
    let want = form_reference(form, &av, &bv, shape);
    Ok(compare_bounded(
        "dot_exact",
        &c.read::<f32>()?,
        &want,
        &vec![0.0; want.len()],
    ))
}

/// `n` seeded values, each `1/4` or `1/2`: the operands of [`check_positive_product`].
fn exact_operands(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| if rng.next_u64() >> 63 == 0 { 0.25 } else { 0.5 })
        .collect()
}

/// Error bounds of the dense backward's f32 gradients against [`cpu::dense::dense_backward`], in the same shapes.
/// Each dZ term may carry the activation kernel's own error, `1e-6 + 1e-5 |dz|`, on top of the products'
/// rounding: an output that sums `inner` products gets `dot_bound(inner, s) + 1e-5 s + 1e-6 a`, with `s` its sum
/// of `|operand dz|` and `a` its sum of `|operand|` (for db the operand is 1, so `a = m`).
pub fn dense_backward_bounds(
    act: Activation,
    x: &[f64],
    w: &[f64],
    z: &[f64],
    dy: &[f64],
    (m, k, n): (usize, usize, usize),
) -> cpu::dense::DenseGrads {
    let dz_abs = cpu::dense::abs(&cpu::dense::dense_dz(act, z, dy));
    let (xa, wa) = (cpu::dense::abs(x), cpu::dense::abs(w));
    let ones = vec![1.0; m * n];
    let bound = |inner: usize, s: f64, a: f64| dot_bound(inner, s) + 1e-5 * s + 1e-6 * a;
    let dw = cpu::dense::matmul_at_b(&xa, &dz_abs, m, k, n)
        .iter()
        .zip(cpu::dense::matmul_at_b(&xa, &ones, m, k, n))
        .map(|(&s, a)| bound(m, s, a))
        .collect();
    let dx = cpu::dense::matmul_a_bt(&dz_abs, &wa, m, k, n)
        .iter()
        .zip(cpu::dense::matmul_a_bt(&ones, &wa, m, k, n))
        .map(|(&s, a)| bound(n, s, a))
        .collect();
    let mut s_db = vec![0.0; n];
    for (i, v) in dz_abs.iter().enumerate() {
        s_db[i % n] += v;
    }
    let db = s_db.iter().map(|&s| bound(m, s, m as f64)).collect();
    cpu::dense::DenseGrads { dx, dw, db }
}

/// The dense layer on the adapter's kernel, f32: forward `Y = f(X W + b)` and `Z` (within [`dot_bound`], and
/// `LIPSCHITZ` times it plus the activation's own tolerance for Y), and backward dW, db, dX (each dZ term may
/// carry the activation's `1e-6 + 1e-5 |dz|` on top of the product's rounding), for relu, GELU and tanh.
pub fn check_dense(gpu: &Gpu) -> Result<Vec<FusedCheck>> {
    let mut out = Vec::new();
    for act in [Activation::Relu, Activation::Gelu, Activation::Tanh] {
        out.extend(check_dense_layer(gpu, Dense::new(act))?);
    }
    Ok(out)
}

/// [`check_dense`] of one layer: its activation (a custom one included) and dZ mode, over every shape.
pub fn check_dense_layer(gpu: &Gpu, dense: Dense) -> Result<Vec<FusedCheck>> {
    let act = dense.activation;
    let mut out = Vec::new();
    let (mut y_checks, mut z_checks) = (Vec::new(), Vec::new());
    let (mut dw_checks, mut db_checks, mut dx_checks) = (Vec::new(), Vec::new(), Vec::new());
    for (s, shape) in SHAPES.into_iter().enumerate() {
        let (m, k, n) = shape;
        let (x, xv) = random(gpu, [m, k], DType::F32, 30 + s as u64)?;
        let (w, wv) = random(gpu, [k, n], DType::F32, 40 + s as u64)?;
        let (b, bv) = random(gpu, [1, n], DType::F32, 50 + s as u64)?;
        let b = Tensor::from_buffer(gpu, b.buffer().clone(), &[n], DType::F32)?;
        let (y, z) = (poisoned(gpu, &[m, n])?, poisoned(gpu, &[m, n])?);
        gpu.submit_and_wait("validate dense forward", |enc| {
            dense.record_forward(enc, &x, &w, Some(&b), &y, Some(&z))
        })?;
        let (want_y, want_z) = cpu::dense::dense_forward(act, &xv, &wv, Some(&bv), shape);
        let xa = cpu::dense::abs(&xv);
        let wa = cpu::dense::abs(&wv);
        let zb: Vec<f64> = cpu::dense::matmul(&xa, &wa, m, k, n)
            .iter()
            .map(|&s| dot_bound(k, s))
            .collect();
        let yb: Vec<f64> = zb
            .iter()
            .zip(&want_y)
            .map(|(&e, &y)| 1e-6 + 1e-5 * y.abs() + LIPSCHITZ * e)
            .collect();
        z_checks.push(compare_bounded("dot_f32", &z.read::<f32>()?, &want_z, &zb));
        y_checks.push(compare_bounded("dense_y", &y.read::<f32>()?, &want_y, &yb));

        // Backward from a random pre-activation of a wider range and a random dY.
        // The reference takes Z as the GPU reads it: 3v rounded to f32, widened.
        let (z, zv) = random(gpu, [m, n], DType::F32, 60 + s as u64)?;
        let z3: Vec<f32> = zv.iter().map(|v| (3.0 * v) as f32).collect();
        let zv = widen(&z3);
        z.write(&z3)?;
        let (dy, dyv) = random(gpu, [m, n], DType::F32, 70 + s as u64)?;
        let (dx, dw, db) = (
            poisoned(gpu, &[m, k])?,
            poisoned(gpu, &[k, n])?,
            poisoned(gpu, &[n])?,
        );
        gpu.submit_and_wait("validate dense backward", |enc| {
            dense.record_backward(enc, &x, &w, &z, &dy, &dw, Some(&db), Some(&dx))
        })?;
        let want = cpu::dense::dense_backward(act, &xv, &wv, &zv, &dyv, shape);
        let bound = dense_backward_bounds(act, &xv, &wv, &zv, &dyv, shape);
        dw_checks.push(compare_bounded(
            "grad",
            &dw.read::<f32>()?,
            &want.dw,
            &bound.dw,
        ));
        db_checks.push(compare_bounded(
            "grad",
            &db.read::<f32>()?,
            &want.db,
            &bound.db,
        ));
        dx_checks.push(compare_bounded(
            "grad",
            &dx.read::<f32>()?,
            &want.dx,
            &bound.dx,
        ));
    }
    let op = format!("dense_{act}");
    out.push(row(
        op.clone(),
        Pass::Forward,
        "y",
        DType::F32,
        merged(y_checks),
    ));
    out.push(row(
        op.clone(),
        Pass::Forward,
        "z",
        DType::F32,
        merged(z_checks),
    ));
    out.push(row(
        op.clone(),
        Pass::Backward,
        "dw",
        DType::F32,
        merged(dw_checks),
    ));
    out.push(row(
        op.clone(),
        Pass::Backward,
        "db",
        DType::F32,
        merged(db_checks),
    ));
    out.push(row(op, Pass::Backward, "dx", DType::F32, merged(dx_checks)));
    Ok(out)
}

/// The loss bound: each of the `n` terms is computed within `term_ulps` f32 roundings of its magnitude
/// `mags[i]`, and the sum adds at most `chain + ceil(threads / 256) + 10` roundings in any term's path (a
/// thread's grid-stride chain, the reduction's strided slice, its 8-level tree, the scaling), so
/// `|got - ref| <= (term_ulps + depth) u sum mags / n` (Higham's bound for recursive summation, on the longest
/// path).
pub fn loss_bound(mags: &[f64], threads: usize, term_ulps: f64) -> f64 {
    let n = mags.len();
    let chain = n.div_ceil(threads) as f64;
    let depth = chain + threads.div_ceil(256) as f64 + 10.0;
    (term_ulps + depth) * U * mags.iter().sum::<f64>() / n as f64 + 1e-12
}

/// The losses and gradients of several small batches, and their references, gathered for one comparison each.
#[derive(Default)]
struct EdgeBatches {
    loss: (Vec<f32>, Vec<f64>),
    grad: (Vec<f32>, Vec<f64>),
}

impl EdgeBatches {
    fn add(
        &mut self,
        (loss, grad): (Tensor, Tensor),
        (want, want_grad): (f64, Vec<f64>),
    ) -> Result<()> {
        self.loss.0.extend(loss.read::<f32>()?);
        self.loss.1.push(want);
        self.grad.0.extend(grad.read::<f32>()?);
        self.grad.1.extend(want_grad);
        Ok(())
    }

    /// `[loss, grad]`, NaN and +-inf matching in class, finite values within `1e-6 (|ref| + 1)`.
    fn checks(&self) -> [Check; 2] {
        let bound = |w: &[f64]| -> Vec<f64> { w.iter().map(|v| 1e-6 * (v.abs() + 1.0)).collect() };
        [
            compare_bounded("loss", &self.loss.0, &self.loss.1, &bound(&self.loss.1)),
            compare_bounded(
                "loss_grad",
                &self.grad.0,
                &self.grad.1,
                &bound(&self.grad.1),
            ),
        ]
    }
}

/// `(loss, grad)` of `loss_fn` on `pred`, written into poisoned tensors (an element the kernel leaves unwritten
/// fails its comparison, where `Loss::compute`'s zeros could pass for a right answer).
fn loss_into_poisoned(loss_fn: Loss, pred: &Tensor, targets: Targets) -> Result<(Tensor, Tensor)> {
    let gpu = pred.gpu();
    let (loss, grad) = (poisoned(gpu, &[1])?, poisoned(gpu, pred.shape())?);
    gpu.submit_and_wait("loss check", |enc| {
        loss_fn.record(enc, pred, targets, &grad, &loss)
    })?;
    Ok((loss, grad))
}

/// Softmax cross-entropy over `rows x cols` logits uniform in [-5, 5) from `seed` and seeded class indices (from
/// `seed + 100`): the mean loss and its gradient, `[loss, grad]`, within rounding bounds on the summation depth of
/// the kernel that takes the rows ([`cross_entropy_depth`]; the derivation is at `cross_entropy_bounds`).
pub fn check_cross_entropy(gpu: &Gpu, rows: usize, cols: usize, seed: u64) -> Result<[Check; 2]> {
    let x = random_values(rows * cols, 5.0, DType::F32, seed);
    let mut rng = Rng::new(seed + 100);
    let t: Vec<u32> = (0..rows)
        .map(|_| (rng.next_u64() % cols as u64) as u32)
        .collect();
    let logits = gpu.upload_shaped(&x, &[rows, cols])?;
    let labels = Labels::upload(gpu, &t, cols)?;
    let (loss, grad) = loss_into_poisoned(
        Loss::SoftmaxCrossEntropy,
        &logits,
        Targets::Classes(&labels),
    )?;
    let xv = widen(&x);
    let (want, want_grad) = cpu::loss::softmax_cross_entropy(&xv, &t, cols);
    let (bound, gb) = cross_entropy_bounds(&xv, &t, cols, cross_entropy_depth(gpu, cols));
    let loss = compare_bounded("loss", &loss.read::<f32>()?, &[want], &[bound]);
    let grad = compare_bounded("loss_grad", &grad.read::<f32>()?, &want_grad, &gb);
    Ok([loss, grad])
}

/// Roundings on the longest path of a row's sum `rest = sum_{j != a} e^(x_j - m)` in the kernel that takes rows
/// of `cols` classes on `gpu`: the thread-per-row kernel adds them in one chain (`cols`); the wide-row kernel
/// (from [`Gpu::cross_entropy_wide_rows`] classes) gives each of its `wg` threads a strided chain of
/// `ceil(cols / wg)` and then `tree_sum`'s `log2 wg` levels (`wg` = the reduction workgroup, 256 or 128).
pub fn cross_entropy_depth(gpu: &Gpu, cols: usize) -> usize {
    if cols >= gpu.cross_entropy_wide_rows() {
        let wg = gpu.reduction_workgroup_size() as usize;
        cols.div_ceil(wg) + wg.ilog2() as usize
    } else {
        cols
    }
}

/// Bounds of softmax cross-entropy's mean loss and gradient over logits `x` within 10 of their row's maximum (the
/// checks' [-5, 5)), with `depth` roundings on the longest path of a row's sum ([`cross_entropy_depth`]):
///
/// - each term `e_j = e^(x_j - m)` is within `56 u` of itself (the f32 subtraction moves the argument by at most
///   `10 u`, and WGSL's `exp` may be `3 + 2 |x| <= 23` ULP, `46 u`, off), so the positive sum `rest` is within
///   `(56 + depth) u rest`;
/// - a row's term `(m - x_t) + log1p(rest)` then moves by at most `(56 + depth + 1) u` through `log1p`, `log`'s own
///   `8 u + 3` ULP, and a rounding each of `m - x_t` and the addition: within `(70 + depth) u + 8 u term`, and the
///   mean adds [`loss_bound`]'s reduction;
/// - `softmax_j = e_j (scale / (1 + rest))` is within `(116 + depth) u` relative (the terms, the sum, `1/rows` in
///   f32, the division and the product), and the label's `p - 1/rows` one rounding more.
///
/// `depth` is the kernel's own (about 90 for 20,000 classes on the wide-row kernel), not Higham's `cols` of a
/// sequential sum: with `cols` a row missing its largest term below the maximum passed at 20,000 classes.
fn cross_entropy_bounds(x: &[f64], t: &[u32], cols: usize, depth: usize) -> (f64, Vec<f64>) {
    let rows = t.len();
    let terms: Vec<f64> = (0..rows)
        .map(|r| cpu::loss::softmax_cross_entropy(&x[r * cols..(r + 1) * cols], &t[r..=r], cols).0)
        .collect();
    let depth = depth as f64;
    let loss = loss_bound(&terms, rows, 8.0) + (70.0 + depth) * U;
    let (_, grad) = cpu::loss::softmax_cross_entropy(x, t, cols);
    let onehot = |i: usize| f64::from(u8::from(t[i / cols] as usize == i % cols)) / rows as f64;
    let grad = (0..rows * cols)
        .map(|i| {
            let p = grad[i] + onehot(i);
            (120.0 + depth) * U * (p.abs() + onehot(i)) + 1e-30
        })
        .collect();
    (loss, grad)
}

/// MSE (predictions uniform in [-2, 2)) or BCE with logits (logits in [-8, 8), targets in [0, 1)) over a tensor of
/// `shape`, predictions from `seed` and targets from `seed + 100`: the mean loss and its gradient, `[loss, grad]`,
/// within the bounds stated inline. `loss_fn` is one of those two: softmax cross-entropy takes class indices
/// ([`check_cross_entropy`]) and returns an error here.
pub fn check_value_loss(
    gpu: &Gpu,
    loss_fn: Loss,
    shape: &[usize],
    seed: u64,
) -> Result<[Check; 2]> {
    let n: usize = shape.iter().product();
    let scale = if loss_fn == Loss::Mse { 2.0 } else { 8.0 };
    let y = random_values(n, scale, DType::F32, seed);
    let mut t = random_values(n, 1.0, DType::F32, seed + 100);
    if loss_fn == Loss::BceWithLogits {
        t.iter_mut().for_each(|v| *v = v.abs());
    }
    let (yt, tt) = (gpu.upload_shaped(&y, shape)?, gpu.upload_shaped(&t, shape)?);
    let (loss, grad) = loss_into_poisoned(loss_fn, &yt, Targets::Values(&tt))?;
    let (yv, tv) = (widen(&y), widen(&t));
    let (want, want_grad) = match loss_fn {
        Loss::Mse => cpu::loss::mse(&yv, &tv),
        _ => cpu::loss::bce_with_logits(&yv, &tv),
    };
    // MSE terms: d = y - t and d^2, 2 roundings of d^2. BCE terms: max(x,0) - x t + log1p(e^-|x|): exp's
    // 3 + 2|x| <= 19 ULP and the series, a few roundings of |x| + |x t| + 1.
    let (mags, term_ulps): (Vec<f64>, f64) = match loss_fn {
        Loss::Mse => (
            yv.iter().zip(&tv).map(|(a, b)| (a - b).powi(2)).collect(),
            4.0,
        ),
        _ => (
            yv.iter()
                .zip(&tv)
                .map(|(x, t)| x.abs() * (1.0 + t) + 1.0)
                .collect(),
            24.0,
        ),
    };
    let bound = loss_bound(&mags, n.min(16_384), term_ulps);
    let loss = compare_bounded("loss", &loss.read::<f32>()?, &[want], &[bound]);
    // MSE grad: (2 / n in f32) (y - t), 3 roundings. BCE grad: (sigmoid(x) - t) / n with sigmoid within
    // 3 + 2|x| + 3 ULP of itself, then 2 roundings.
    let gb: Vec<f64> = (0..n)
        .map(|i| match loss_fn {
            Loss::Mse => 4.0 * U * want_grad[i].abs() + 1e-30,
            _ => {
                let s = cpu::activation::sigmoid(yv[i]);
                (8.0 + 2.0 * yv[i].abs()) * U * (s + tv[i]) / n as f64 + 1e-30
            }
        })
        .collect();
    let grad = compare_bounded("loss_grad", &grad.read::<f32>()?, &want_grad, &gb);
    Ok([loss, grad])
}

/// Edge logits, one batch per case against the f64 reference, NaN and +-inf matching in class, finite values
/// within `1e-6 (|ref| + 1)` (a few dozen f32 roundings of terms of magnitude at most |ref| + 1):
/// - softmax cross-entropy, one row of 3 classes per case, and the same 3 at the end of a row of 300 (-inf
///   before them; on a GPU, the wide-row kernel's): a NaN logit (NaN loss and gradient), one +inf logit
///   (the limit: loss 0 at the label, +inf elsewhere, gradient one-hot at it minus one-hot at the label), two
///   (NaN), -inf logits (an exact 0 gradient), +-1e30 and +-F32_MAX (an
///   infinite loss in f32), a row of -inf (NaN), and -0, 0 and a subnormal;
/// - BCE with logits, each edge logit (NaN, +-inf, +-1e30, -0, a subnormal, 2) in a batch of its own beside an
///   ordinary logit: a NaN logit gives a NaN loss and gradient (also with t = 0), so does a NaN target (also
///   beside x = +inf, where the linear part's coefficient is NaN), +-inf the limits (0 for t = 1 at
///   +inf and t = 0 at -inf, +inf otherwise), the gradients `(sigmoid(x) - t) / n`.
///
/// Returns `[cross-entropy loss, cross-entropy grad, BCE loss, BCE grad]`.
pub fn check_loss_edges(gpu: &Gpu) -> Result<[Check; 4]> {
    let inf = f32::INFINITY;
    let rows: [([f32; 3], u32); 10] = [
        ([2.0, f32::NAN, 0.0], 0),
        ([inf, 0.0, 1.0], 1),
        ([0.0, inf, -inf], 1),
        ([inf, 0.0, inf], 1),
        ([-inf, 0.0, 1.0], 2),
        ([1e30, -1e30, 0.0], 1),
        ([f32::MAX, -f32::MAX, 0.0], 1),
        ([-inf, -inf, -inf], 0),
        ([-0.0, 0.0, f32::from_bits(1)], 0),
        ([f32::NAN, 3.0, -inf], 1),
    ];
    let mut ce = EdgeBatches::default();
    // Each row as it is, and at the end of a row of 300 (-inf columns add nothing to the sum and their gradient
    // is 0): the maximum, the +inf and the NaN then sit in a high column, on a GPU of the wide-row kernel
    // (`GpuOptions::cross_entropy_wide_rows`).
    for (x, t) in rows {
        for cols in [3, 300] {
            let mut xs = vec![-inf; cols - 3];
            xs.extend_from_slice(&x);
            let t = t + (cols - 3) as u32;
            let logits = gpu.upload_shaped(&xs, &[1, cols])?;
            let labels = Labels::upload(gpu, &[t], cols)?;
            let targets = Targets::Classes(&labels);
            let got = loss_into_poisoned(Loss::SoftmaxCrossEntropy, &logits, targets)?;
            ce.add(
                got,
                cpu::loss::softmax_cross_entropy(&widen(&xs), &[t], cols),
            )?;
        }
    }
    let bce_cases: [(f32, f32); 14] = [
        (f32::NAN, 0.5),
        (f32::NAN, 0.0),
        (1.0, f32::NAN),
        (-1.0, f32::NAN),
        (inf, f32::NAN),
        (inf, 0.25),
        (inf, 1.0),
        (-inf, 0.0),
        (-inf, 0.75),
        (1e30, 0.0),
        (-1e30, 0.75),
        (-0.0, 1.0),
        (f32::from_bits(1), 0.5),
        (2.0, 0.125),
    ];
    let mut bce = EdgeBatches::default();
    for (x, t) in bce_cases {
        // Each edge logit in its own batch beside an ordinary one, so that one infinite or NaN term cannot hide
        // another.
        let (x, t) = ([x, 0.5], [t, 0.5]);
        let (xt, tt) = (gpu.upload_shaped(&x, &[2])?, gpu.upload_shaped(&t, &[2])?);
        let got = loss_into_poisoned(Loss::BceWithLogits, &xt, Targets::Values(&tt))?;
        bce.add(got, cpu::loss::bce_with_logits(&widen(&x), &widen(&t)))?;
    }
    let ([ce_loss, ce_grad], [bce_loss, bce_grad]) = (ce.checks(), bce.checks());
    Ok([ce_loss, ce_grad, bce_loss, bce_grad])
}

/// Softmax cross-entropy over 33 x 10 logits, and MSE and BCE-with-logits over 20,001 values:
/// [`check_cross_entropy`] and [`check_value_loss`]; then the edge logits of [`check_loss_edges`].
pub fn check_losses(gpu: &Gpu) -> Result<Vec<FusedCheck>> {
    let mut out = Vec::new();
    let [loss, grad] = check_cross_entropy(gpu, 33, 10, 100)?;
    let name = "softmax_cross_entropy";
    out.push(row(name.into(), Pass::Forward, "loss", DType::F32, loss));
    out.push(row(name.into(), Pass::Backward, "grad", DType::F32, grad));
    // Rows of 20,000 classes: a workgroup per row on every adapter (from 256 classes on GPUs, 16,384 on CPU
    // adapters, where a thread's walk over them would pass the driver's loop limit).
    let [loss, grad] = check_cross_entropy(gpu, 4, 20_000, 101)?;
    let name = "softmax_cross_entropy wide";
    out.push(row(name.into(), Pass::Forward, "loss", DType::F32, loss));
    out.push(row(name.into(), Pass::Backward, "grad", DType::F32, grad));
    for loss_fn in [Loss::Mse, Loss::BceWithLogits] {
        let [loss, grad] = check_value_loss(gpu, loss_fn, &[20_001], 300)?;
        let name = loss_fn.name();
        out.push(row(name.into(), Pass::Forward, "loss", DType::F32, loss));
        out.push(row(name.into(), Pass::Backward, "grad", DType::F32, grad));
    }
    let [ce_loss, ce_grad, bce_loss, bce_grad] = check_loss_edges(gpu)?;
    let edges = [
        ("softmax_cross_entropy edges", ce_loss, ce_grad),
        ("bce_with_logits edges", bce_loss, bce_grad),
    ];
    for (name, loss, grad) in edges {
        out.push(row(name.into(), Pass::Forward, "loss", DType::F32, loss));
        out.push(row(name.into(), Pass::Backward, "grad", DType::F32, grad));
    }
    Ok(out)
}

/// The optimizer settings the checks use: SGD (plain; momentum with dampening and weight decay; Nesterov), Adam
/// (plain, with L2 weight decay) and AdamW, each named as `validate` names it.
pub fn optimizer_settings() -> [(&'static str, Optimizer); 6] {
    [
        ("sgd", Optimizer::Sgd(Sgd::new(0.1))),
        (
            "sgd_momentum",
            Optimizer::Sgd(Sgd {
                momentum: 0.9,
                dampening: 0.1,
                weight_decay: 0.01,
                ..Sgd::new(0.05)
            }),
        ),
        (
            "sgd_nesterov",
            Optimizer::Sgd(Sgd {
                momentum: 0.8,
                nesterov: true,
                ..Sgd::new(0.05)
            }),
        ),
        ("adam", Optimizer::Adam(Adam::new(0.01))),
        (
            "adam_l2",
            Optimizer::Adam(Adam {
                weight_decay: 0.1,
                ..Adam::new(0.003)
            }),
        ),
        ("adamw", Optimizer::Adam(Adam::adamw(0.02))),
    ]
}

/// SGD (plain; momentum with dampening and weight decay; Nesterov), Adam (plain, with L2 weight decay) and AdamW,
/// five steps each over 1,000 parameters with gradients of mixed scales (every 7th tiny, where Adam's eps
/// matters). Each step rounds the parameter and its update a few times in f32 and the state once: at most
/// `16 u (|p| + |p0| + 30 lr)` per step, summed over the steps.
pub fn check_optimizers(gpu: &Gpu) -> Result<Vec<FusedCheck>> {
    check_optimizers_over(gpu, 1000)
}

/// [`check_optimizers`] over `n` parameters (more than one storage binding holds, to check the chunked update).
pub fn check_optimizers_over(gpu: &Gpu, n: usize) -> Result<Vec<FusedCheck>> {
    const STEPS: u64 = 5;
    let optimizers = optimizer_settings();
    let mut out = Vec::new();
    for (o, (name, opt)) in optimizers.into_iter().enumerate() {
        let p0 = random_values(n, 1.0, DType::F32, 500 + o as u64);
        let param = gpu.upload(&p0)?;
        let state = opt.init_state(&param)?;
        let mut want = widen(&p0);
        let mut ref_state = cpu::optim::State::zeros(n);
        let grad = gpu.zeros(&[n], DType::F32)?;
        for step in 1..=STEPS {
            let mut g = random_values(n, 1.0, DType::F32, 600 + step);
            g.iter_mut().step_by(7).for_each(|v| *v *= 1e-6);
            grad.write(&g)?;
            opt.update(gpu, &param, &grad, &state, step)?;
            cpu::optim::update(&opt, &mut want, &widen(&g), &mut ref_state, step);
        }
        let lr = f64::from(opt.lr());
        let bounds: Vec<f64> = (0..n)
            .map(|i| STEPS as f64 * 16.0 * U * (want[i].abs() + f64::from(p0[i]).abs() + 30.0 * lr))
            .collect();
        out.push(row(
            name.into(),
            Pass::Forward,
            "param",
            DType::F32,
            compare_bounded("update", &param.read::<f32>()?, &want, &bounds),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exactness [`check_positive_product`] relies on, at its deepest K: f32 sums of the largest products
    /// (`1/4`), the smallest (`1/16`) and a mix, in order and in 16-deep chunks added at the end, equal the f64 sum;
    /// a chunk of 16 terms lost is a nonzero error, which a bound of 0 rejects.
    #[test]
    fn exact_operands_sum_exactly_in_f32_at_the_deepest_k() {
        let k = EXACT_PRODUCT_MAX_K;
        let a = exact_operands(k, 1);
        let b = exact_operands(k, 2);
        assert!(a.iter().all(|&v| v == 0.25 || v == 0.5));
        assert!(a.contains(&0.25) && a.contains(&0.5));
        for terms in [
            vec![0.25f32; k],
            vec![0.0625; k],
            a.iter().zip(&b).map(|(x, y)| x * y).collect(),
        ] {
            let exact: f64 = terms.iter().map(|&t| f64::from(t)).sum();
            let sequential = terms.iter().fold(0.0f32, |s, &t| s + t);
            let chunked = terms
                .chunks(16)
                .map(|c| c.iter().fold(0.0f32, |s, &t| s + t))
                .fold(0.0f32, |s, c| s + c);
            assert_eq!(f64::from(sequential), exact);
            assert_eq!(f64::from(chunked), exact);
            let short = sequential - terms[..16].iter().sum::<f32>();
            let check = compare_bounded("dot_exact", &[short, sequential], &[exact; 2], &[0.0; 2]);
            assert_eq!((check.failures, check.first_failures[0].index), (1, 0));
        }
        // An exact match under a bound of 0 uses none of its allowance.
        let exact = compare_bounded("dot_exact", &[2.0], &[2.0], &[0.0]);
        assert!(exact.ok() && exact.worst_ratio == 0.0);
    }

    /// The wide-row check's bounds at 20,000 classes on the wide-row kernel of 256 threads (depth 79 + 8): the
    /// reference with one row's largest term below the maximum dropped (its logit set to -inf) is outside both
    /// the loss's and the gradient's, as the old `(24 + cols) u` and `(32 + cols) u` were not.
    #[test]
    fn cross_entropy_bounds_reject_a_dropped_term() {
        let (rows, cols) = (4, 20_000);
        let x = widen(&random_values(rows * cols, 5.0, DType::F32, 101));
        let t: Vec<u32> = (0..rows as u32).map(|r| r * 997).collect();
        let depth = cols.div_ceil(256) + 8;
        let (bound, gb) = cross_entropy_bounds(&x, &t, cols, depth);
        let (want, want_grad) = cpu::loss::softmax_cross_entropy(&x, &t, cols);
        let row = &x[..cols];
        let by_value = |&i: &usize, &j: &usize| row[i].total_cmp(&row[j]);
        let mut order: Vec<usize> = (0..cols).collect();
        order.sort_by(by_value);
        let second = order[cols - 2];
        let mut dropped = x.clone();
        dropped[second] = f64::NEG_INFINITY;
        let (loss, grad) = cpu::loss::softmax_cross_entropy(&dropped, &t, cols);
        assert!((loss - want).abs() > bound, "{loss} {want} {bound}");
        let rejected = (0..rows * cols)
            .filter(|&i| i != second && (grad[i] - want_grad[i]).abs() > gb[i])
            .count();
        assert!(rejected >= cols - 2, "only {rejected} gradients rejected");
        // The bounds hold the f32 evaluation they model: the loss rounded to f32 and back passes.
        assert!((f64::from(want as f32) - want).abs() <= bound);
    }
}
