//! Compute-bound workloads, judged against the FMA ceiling: matrix products, the dense layer and an MLP training
//! step.
//!
//! FLOP counted (a product of `[m, k]` by `[k, n]` is `2 m k n`; elementwise work uses
//! [`flops_per_element`]):
//!
//! - matmul `[m, k] x [k, n]`: `2 m k n`, and the same for a layer `[m, k, n]`'s backward products
//!   `X^T dZ` (`matmul_at_b`) and `dZ W^T` (`matmul_a_bt`);
//! - dense forward `Y = f(X W + b)`: `2 m k n + m n (1 + f)`, `f` the activation's forward FLOP per element;
//! - dense backward (dZ, then `dW = X^T dZ`, `dX = dZ W^T`, `db`): `4 m k n + m n (f' + 1)`, `f'` the
//!   activation's backward FLOP per element;
//! - MLP train step on layer sizes `s_0 .. s_L` at batch `b`: `sum_l 6 b s_l s_(l+1) - 2 b s_0 s_1` (forward,
//!   dW and dX of every layer but the input's); activations, loss and optimizer are left out: for the
//!   784-512-512-10 GELU network at batch 256 the activations' forward and backward (63 + 68 FLOP per element by
//!   [`flops_per_element`]'s count) would add about 4.2% and Adam about 1.2%, so the step's GFLOP/s reads that
//!   much low beside the dense rows, which count `f`.
//!
//! Matmul and dense run through their public `record_*` launchers, timed like everything else; the training step
//! submits itself ([`Mlp::train_step`]) and is timed on the wall clock with [`super::measure_submitted`].

use super::activations::{flops_per_element, random_values, rotation_sets};
use crate::ops::matmul::{record_form, Form};
use crate::verify::{Pass, Rng};
use crate::{Activation, DType, Dense, Gpu, Labels, Loss, Mlp, Optimizer, Result, Targets, Tensor};

/// Random logits `[rows, classes]` (uniform in [-4, 4)) with labels, and the loss and gradient outputs of
/// softmax cross-entropy, rotated like the elementwise operands. Bytes counted: the logits read and the gradient
/// written, `8 rows classes`, plus the labels' `4 rows` (the partial sums and the mean are the kernels' own).
#[derive(Debug)]
pub struct LossOperands {
    rows: usize,
    classes: usize,
    sets: Vec<(Tensor, Labels, Tensor, Tensor)>,
}

impl LossOperands {
    /// Operands for `rows` rows of `classes` classes.
    pub fn new(gpu: &Gpu, rows: usize, classes: usize, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let logits = random_values(&mut rng, rows * classes, -4.0, 4.0);
        let labels: Vec<u32> = (0..rows)
            .map(|_| (rng.next_u64() % classes.max(1) as u64) as u32)
            .collect();
        let count = rotation_sets((8 * rows * classes + 4 * rows) as u64);
        let sets = (0..count)
            .map(|_| {
                Ok((
                    gpu.upload_shaped(&logits, &[rows, classes])?,
                    Labels::upload(gpu, &labels, classes)?,
                    gpu.zeros(&[rows, classes], DType::F32)?,
                    gpu.zeros(&[1], DType::F32)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(LossOperands {
            rows,
            classes,
            sets,
        })
    }

    /// Records the loss and its gradient on operand set `rep % sets`.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, rep: u64) -> Result<()> {
        let (x, labels, grad, loss) = &self.sets[(rep % self.sets.len() as u64) as usize];
        Loss::SoftmaxCrossEntropy.record(encoder, x, Targets::Classes(labels), grad, loss)
    }

    /// Bytes one call allocates, estimated high: the per-row partial sums of the two-dispatch kernels (4 bytes a
    /// row, rounded up to 256). See [`super::Timer::allocating`].
    pub fn alloc_bytes_per_rep(&self) -> u64 {
        (4 * self.rows as u64).next_multiple_of(256)
    }

    /// `8 rows classes + 4 rows`.
    pub fn bytes(&self) -> f64 {
        (8 * self.rows * self.classes + 4 * self.rows) as f64
    }
}

/// Random operands of one of a dense layer's products on its `[m, k, n]` (`x [m, k]`, `w [k, n]`, `dz [m, n]`),
/// rotated like the elementwise ones: `Y = X W` ([`Form::AB`]), and the backward's `dW = X^T dZ` ([`Form::AtB`])
/// and `dX = dZ W^T` ([`Form::ABt`]). Both operands are of one storage type (the bench gives the backward's f32);
/// the output is f32.
#[derive(Debug)]
pub struct MatmulOperands {
    shape: [usize; 3],
    form: Form,
    dtype: DType,
    sets: Vec<[Tensor; 3]>,
}

impl MatmulOperands {
    /// f32 operands of `Y = X W` for `[m, k, n]`, entries uniform in [-1, 1).
    pub fn new(gpu: &Gpu, shape: [usize; 3], seed: u64) -> Result<Self> {
        Self::with_dtype(gpu, shape, DType::F32, seed)
    }

    /// Operands of `Y = X W` for `[m, k, n]` with `x` and `w` in `dtype` (entries uniform in [-1, 1), rounded to
    /// it).
    pub fn with_dtype(gpu: &Gpu, shape: [usize; 3], dtype: DType, seed: u64) -> Result<Self> {
        Self::of_form(gpu, shape, Form::AB, dtype, seed)
    }

    /// Operands of the dense layer `[m, k, n]`'s product `form`, its two operands in `dtype` (entries uniform in
    /// [-1, 1), rounded to it): `A`, `B` and `C` are `[m, k]`, `[k, n]` and `[m, n]` for [`Form::AB`], `[m, k]`,
    /// `[m, n]` and `[k, n]` for [`Form::AtB`], `[m, n]`, `[k, n]` and `[m, k]` for [`Form::ABt`].
    pub fn of_form(
        gpu: &Gpu,
        shape: [usize; 3],
        form: Form,
        dtype: DType,
        seed: u64,
    ) -> Result<Self> {
        let [a_shape, b_shape, c_shape] = form_shapes(form, shape);
        let mut rng = Rng::new(seed);
        let elements = |s: [usize; 2]| s[0] * s[1];
        let a = random_values(&mut rng, elements(a_shape), -1.0, 1.0);
        let b = random_values(&mut rng, elements(b_shape), -1.0, 1.0);
        let operand_bytes =
            dtype.size_bytes() * (elements(a_shape) + elements(b_shape)) + 4 * elements(c_shape);
        let count = rotation_sets(operand_bytes as u64);
        let upload = |v: &[f32], shape: [usize; 2]| -> Result<Tensor> {
            let t = gpu.upload_f32_as(v, dtype)?;
            Tensor::from_buffer(gpu, t.buffer().clone(), &shape, dtype)
        };
        let sets = (0..count)
            .map(|_| {
                Ok([
                    upload(&a, a_shape)?,
                    upload(&b, b_shape)?,
                    gpu.zeros(&c_shape, DType::F32)?,
                ])
            })
            .collect::<Result<_>>()?;
        Ok(MatmulOperands {
            shape,
            form,
            dtype,
            sets,
        })
    }

    /// The layer's `[m, k, n]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The product.
    pub fn form(&self) -> Form {
        self.form
    }

    /// The operands' storage type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Records the product on operand set `rep % sets`, with the adapter's kernel
    /// ([`crate::MatmulKernel::for_gpu`]), as [`crate::ops::matmul::record_matmul`] and its siblings do.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, rep: u64) -> Result<()> {
        let [a, b, c] = &self.sets[(rep % self.sets.len() as u64) as usize];
        let kernel = crate::MatmulKernel::for_gpu(a.gpu());
        record_form(kernel, encoder, self.form, a, b, c)
    }

    /// Bytes one call allocates, estimated high: with 16-bit operands, f32 copies of both (`4 (|A| + |B|)`, which
    /// the kernels that load `vec4<f32>` widen them into); none in f32. See [`super::Timer::allocating`].
    pub fn alloc_bytes_per_rep(&self) -> u64 {
        let [a, b, _] = form_shapes(self.form, self.shape);
        match self.dtype {
            DType::F32 => 0,
            _ => 4 * (a[0] * a[1] + b[0] * b[1]) as u64,
        }
    }

    /// `2 m k n`.
    pub fn flops(&self) -> f64 {
        let [m, k, n] = self.shape;
        2.0 * (m * k * n) as f64
    }
}

/// The shapes of A, B and C of the dense layer `[m, k, n]`'s product `form` (see [`MatmulOperands::of_form`]).
fn form_shapes(form: Form, [m, k, n]: [usize; 3]) -> [[usize; 2]; 3] {
    match form {
        Form::AB => [[m, k], [k, n], [m, n]],
        Form::AtB => [[m, k], [m, n], [k, n]],
        Form::ABt => [[m, n], [k, n], [m, k]],
    }
}

/// One dense layer's tensors.
#[derive(Debug)]
struct DenseSet {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    y: Tensor,
    z: Tensor,
    dy: Tensor,
    dw: Tensor,
    db: Tensor,
    dx: Tensor,
    /// dZ of the backward (`[m, n]` f32), allocated once as a training loop keeps it, not on every repetition.
    dz: Tensor,
}

/// Random operands of a dense layer `Y = f(X W + b)` on `x [m, k]`, `w [k, n]`.
#[derive(Debug)]
pub struct DenseOperands {
    layer: Dense,
    shape: [usize; 3],
    sets: Vec<DenseSet>,
}

impl DenseOperands {
    /// Operands for `[m, k, n]` with activation `act` (the adapter's default kernel and dZ mode); `z` holds a
    /// forward's pre-activation, so a backward alone is meaningful.
    pub fn new(gpu: &Gpu, act: Activation, shape: [usize; 3], seed: u64) -> Result<Self> {
        let [m, k, n] = shape;
        let mut rng = Rng::new(seed);
        let x = random_values(&mut rng, m * k, -1.0, 1.0);
        let w = random_values(&mut rng, k * n, -0.1, 0.1);
        let b = random_values(&mut rng, n, -0.1, 0.1);
        let dy = random_values(&mut rng, m * n, -1.0, 1.0);
        let layer = Dense::new(act);
        let count = rotation_sets(4 * (2 * m * k + 2 * k * n + 3 * m * n) as u64);
        let mut sets = Vec::with_capacity(count);
        for _ in 0..count {
            let x = gpu.upload_shaped(&x, &[m, k])?;
            let w = gpu.upload_shaped(&w, &[k, n])?;
            let set = DenseSet {
                b: gpu.upload(&b)?,
                y: gpu.zeros(&[m, n], DType::F32)?,
                z: gpu.zeros(&[m, n], DType::F32)?,
                dy: gpu.upload_shaped(&dy, &[m, n])?,
                dw: w.zeros_like()?,
                db: gpu.zeros(&[n], DType::F32)?,
                dx: x.zeros_like()?,
                dz: gpu.zeros(&[m, n], DType::F32)?,
                x,
                w,
            };
            gpu.submit_and_wait("DenseOperands::new", |enc| {
                layer.record_forward(enc, &set.x, &set.w, Some(&set.b), &set.y, Some(&set.z))
            })?;
            sets.push(set);
        }
        Ok(DenseOperands { layer, shape, sets })
    }

    /// `[m, k, n]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Records the forward (`Y` and `Z`) or the backward (`dW`, `db`, `dX`) on operand set `rep % sets`.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, pass: Pass, rep: u64) -> Result<()> {
        let s = &self.sets[(rep % self.sets.len() as u64) as usize];
        match pass {
            Pass::Forward => {
                self.layer
                    .record_forward(encoder, &s.x, &s.w, Some(&s.b), &s.y, Some(&s.z))
            }
            // dZ into the set's own buffer, as `Mlp` training does: `record_backward` would allocate (and wgpu
            // zero-fill, outside the timestamps) an [m, n] buffer on every repetition.
            Pass::Backward => self.layer.record_backward_using(
                encoder,
                &s.x,
                &s.w,
                &s.z,
                &s.dy,
                &s.dw,
                Some(&s.db),
                Some(&s.dx),
                None,
                Some(&s.dz),
            ),
        }
    }

    /// FLOP of one run; see the module documentation.
    pub fn flops(&self, pass: Pass) -> f64 {
        let [m, k, n] = self.shape;
        let (mkn, mn) = ((m * k * n) as f64, (m * n) as f64);
        let f = f64::from(flops_per_element(self.layer.activation, pass));
        match pass {
            Pass::Forward => 2.0 * mkn + mn * (1.0 + f),
            Pass::Backward => 4.0 * mkn + mn * (f + 1.0),
        }
    }
}

/// An MLP training step on random data with class labels and softmax cross-entropy.
#[derive(Debug)]
pub struct MlpStep {
    net: Mlp,
    batches: Vec<(Tensor, Labels)>,
    sizes: Vec<usize>,
    batch: usize,
}

impl MlpStep {
    /// A network of layer `sizes` with `hidden` after every hidden layer, trained by `optimizer` on batches of
    /// `batch` rows (inputs uniform in [0, 1), labels uniform), rotated among a few batches.
    pub fn new(
        gpu: &Gpu,
        sizes: &[usize],
        hidden: Activation,
        batch: usize,
        optimizer: Optimizer,
        seed: u64,
    ) -> Result<Self> {
        let hidden = vec![hidden; sizes.len().saturating_sub(2)];
        let net = Mlp::new(
            gpu,
            sizes,
            &hidden,
            Loss::SoftmaxCrossEntropy,
            optimizer,
            seed,
        )?;
        let (inputs, classes) = (sizes[0], sizes[sizes.len() - 1]);
        let mut rng = Rng::new(seed);
        let batches = (0..4)
            .map(|_| {
                let x = random_values(&mut rng, batch * inputs, 0.0, 1.0);
                let labels: Vec<u32> = (0..batch)
                    .map(|_| (rng.next_u64() % classes as u64) as u32)
                    .collect();
                Ok((
                    gpu.upload_shaped(&x, &[batch, inputs])?,
                    Labels::upload(gpu, &labels, classes)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(MlpStep {
            net,
            batches,
            sizes: sizes.to_vec(),
            batch,
        })
    }

    /// `[batch, s_0, .., s_L]`.
    pub fn shape(&self) -> Vec<usize> {
        let mut s = vec![self.batch];
        s.extend(&self.sizes);
        s
    }

    /// Submits one training step on batch `rep % 4`; does not wait.
    pub fn step(&mut self, rep: u64) -> Result<()> {
        let (x, labels) = &self.batches[(rep % self.batches.len() as u64) as usize];
        self.net.train_step(x, Targets::Classes(labels))
    }

    /// FLOP of one step: [`mlp_step_flops`].
    pub fn flops(&self) -> f64 {
        mlp_step_flops(&self.sizes, self.batch)
    }
}

/// FLOP of the products of one training step: `sum_l 6 b s_l s_(l+1) - 2 b s_0 s_1`.
pub fn mlp_step_flops(sizes: &[usize], batch: usize) -> f64 {
    let b = batch as f64;
    let products: f64 = sizes
        .windows(2)
        .map(|w| 6.0 * b * (w[0] * w[1]) as f64)
        .sum();
    match sizes {
        [s0, s1, ..] => products - 2.0 * b * (s0 * s1) as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense backward row writes dZ into its operand set's own buffer (the default separate-dZ mode), as the
    /// training step does, rather than into a buffer allocated on every repetition.
    #[test]
    fn dense_backward_writes_dz_into_the_sets_buffer() {
        let gpu = Gpu::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
        let ops = DenseOperands::new(&gpu, Activation::Gelu, [8, 12, 16], 7).unwrap();
        assert_eq!(ops.layer.dz, crate::DzMode::Separate);
        gpu.submit_and_wait("test", |enc| ops.record(enc, Pass::Backward, 0))
            .unwrap();
        let s = &ops.sets[0];
        let dz = s.dz.read_f32().unwrap();
        assert!(dz.iter().any(|&v| v != 0.0), "dZ was not written");
        // dZ = dY * gelu'(Z): dW = X^T dZ up to rounding.
        let (x, dw) = (s.x.read_f32().unwrap(), s.dw.read_f32().unwrap());
        let (m, k, n) = (8, 12, 16);
        for (i, j) in [(0, 0), (5, 11), (11, 3)] {
            let want: f32 = (0..m).map(|r| x[r * k + i] * dz[r * n + j]).sum();
            assert!((dw[i * n + j] - want).abs() <= 1e-4 * (1.0 + want.abs()));
        }
    }

    #[test]
    fn mlp_flops_formula() {
        // 784-512-512-10 at batch 256: forward 2 b (784*512 + 512*512 + 512*10), backward twice that less the
        // input layer's dX.
        let b = 256.0;
        let pairs = [784.0 * 512.0, 512.0 * 512.0, 512.0 * 10.0];
        let expected = pairs.iter().map(|p| 6.0 * b * p).sum::<f64>() - 2.0 * b * pairs[0];
        assert_eq!(mlp_step_flops(&[784, 512, 512, 10], 256), expected);
        assert_eq!(mlp_step_flops(&[3], 8), 0.0);
    }
}
