//! Fused-kernel workloads: bias + activation, gated units, learnable activations, softmax over the last
//! dimension and the randomized leaky ReLU's training mode, on an input `x` of shape `[rows, cols]`, recorded through their public launchers with random,
//! rotated operands.
//!
//! Bytes counted per run (`s` = bytes per element of the storage type, `N = rows * cols`); the per-block partial
//! sums of the reductions are the kernels' own overhead and are not counted, nor are the extra passes some widths
//! take (a `--shape` the default does not use): an f32 bias backward whose width is not a multiple of 4 writes
//! dx and reads it again for the column sums (about `4 N s` more), a learnable backward whose width is not a
//! multiple of 8 writes and reads an f32 tensor of the parameter's terms (`8 N` more), so those rows' rates
//! read low by that much:
//!
//! | op | forward | backward |
//! |---|---|---|
//! | `bias_<act>`: `y = f(x + b)`; `dx = dy f'(x + b)`, `db = sum dx` | `2 N s + cols s` | `3 N s + 2 cols s` |
//! | gated (`x = a \| g`): `out = a f(g)`; `da`, `dg` | `1.5 N s` (x in, half out) | `2.5 N s` (x, dout in, dx out) |
//! | learnable (`p` per column): `y = f(x; p)`; `dx`, `dp` | `2 N s + cols s` | `3 N s + 2 cols s` |
//! | `softmax`, `log_softmax` over rows: `y`; `dx` from `y`, `dy` | `2 N s` | `3 N s` |
//! | `rrelu` (training): `y`; `dx` | `2 N s` | `3 N s` |
//!
//! Softmax is counted at the least any kernel moves (each tensor once), not at what its two passes touch (the
//! statistics read x again forward, y and dy again backward: `3 N s` and `5 N s`, log-softmax `4 N s` backward),
//! so its rate against the copy ceiling says how far it is from a kernel that keeps each row on chip.
//!
//! FLOP per element of `x` are estimates built on [`flops_per_element`]: bias adds 1 forward and 2 backward (the
//! add and the column sum); a gated unit costs, per output element (half an element of `x`), the gate's forward
//! plus 1 forward, and the gate's forward and backward plus 2 backward; learnable activations cost their fixed
//! twins (PReLU as leaky_relu, Swish as swish, ELU as elu) plus 2 backward for the parameter's gradient.
//! Softmax counts both passes per element (`shaders/softmax.wgsl`, each `exp` 16 with its clamp and select): 56
//! forward and 7 backward, log-softmax 36 forward (one `exp`) and 30 backward (the `exp` of y). The randomized
//! leaky ReLU counts its draw's integer operations as FLOP (`shaders/rrelu.wgsl`: pcg3d is 24, the conversion to
//! `u` 3, the slope 3, the product and the selects 3): 33 forward and backward.

use super::activations::{flops_per_element, random_values, rotation_sets};
use crate::ops::gated::Gated;
use crate::ops::learnable::Learnable;
use crate::verify::{Pass, Rng};
use crate::{Activation, DType, Error, Gpu, Result, Rrelu, SoftmaxKind, Tensor};

/// A fused op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedOp {
    /// `y = f(x + b)` with a per-column bias.
    Bias(Activation),
    /// `out = a * gate(g)`, `x = a | g` split along the last dimension.
    Gated(Gated),
    /// An activation with a per-column learnable parameter.
    Learnable(Learnable),
    /// Softmax or log-softmax over the last dimension.
    Softmax(SoftmaxKind),
    /// The randomized leaky ReLU in training mode, a new seed each run.
    Rrelu(Rrelu),
}

impl FusedOp {
    /// The ops a default benchmark run measures: bias with relu, gelu, gelu_tanh and silu, every named gated
    /// unit, every learnable activation, softmax and log-softmax, the randomized leaky ReLU (PyTorch's range).
    pub fn defaults() -> Vec<FusedOp> {
        let bias = [
            Activation::Relu,
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Silu,
        ]
        .map(FusedOp::Bias);
        bias.into_iter()
            .chain(Gated::ALL.map(FusedOp::Gated))
            .chain(Learnable::ALL.map(FusedOp::Learnable))
            .chain(SoftmaxKind::ALL.map(FusedOp::Softmax))
            .chain([FusedOp::Rrelu(Rrelu::DEFAULT)])
            .collect()
    }

    /// `bias_<activation>`, the gated unit's name (e.g. `swiglu`), the learnable activation's (e.g. `prelu`), or
    /// `softmax` / `log_softmax`, or `rrelu`.
    pub fn name(self) -> String {
        match self {
            FusedOp::Bias(act) => format!("bias_{act}"),
            FusedOp::Gated(g) => g.name(),
            FusedOp::Learnable(l) => l.name().into(),
            FusedOp::Softmax(k) => k.name().into(),
            FusedOp::Rrelu(_) => Rrelu::NAME.into(),
        }
    }

    /// The op named as [`FusedOp::name`] prints it (built-in activations with default parameters, the
    /// randomized leaky ReLU with PyTorch's range).
    pub fn from_name(name: &str) -> Option<FusedOp> {
        if name == Rrelu::NAME {
            return Some(FusedOp::Rrelu(Rrelu::DEFAULT));
        }
        if let Some(act) = name.strip_prefix("bias_") {
            return Activation::from_name(act).map(FusedOp::Bias);
        }
        if let Some(g) = Gated::ALL.into_iter().find(|g| g.name() == name) {
            return Some(FusedOp::Gated(g));
        }
        if let Some(k) = SoftmaxKind::from_name(name) {
            return Some(FusedOp::Softmax(k));
        }
        Learnable::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .map(FusedOp::Learnable)
    }

    /// Approximate FLOP per element of `x`; see the module documentation.
    pub fn flops_per_element(self, pass: Pass) -> f64 {
        let f = |act, pass| f64::from(flops_per_element(act, pass));
        match (self, pass) {
            (FusedOp::Bias(act), Pass::Forward) => f(act, pass) + 1.0,
            (FusedOp::Bias(act), Pass::Backward) => f(act, pass) + 2.0,
            (FusedOp::Gated(g), Pass::Forward) => (f(g.gate, Pass::Forward) + 1.0) / 2.0,
            (FusedOp::Gated(g), Pass::Backward) => {
                (f(g.gate, Pass::Forward) + f(g.gate, Pass::Backward) + 2.0) / 2.0
            }
            (FusedOp::Learnable(l), pass) => {
                let twin = match l {
                    Learnable::Prelu => Activation::leaky_relu(),
                    Learnable::Swish => Activation::swish(),
                    Learnable::Elu => Activation::elu(),
                };
                f(twin, pass) + if pass == Pass::Backward { 2.0 } else { 0.0 }
            }
            (FusedOp::Softmax(SoftmaxKind::Softmax), Pass::Forward) => 56.0,
            (FusedOp::Softmax(SoftmaxKind::Softmax), Pass::Backward) => 7.0,
            (FusedOp::Softmax(SoftmaxKind::LogSoftmax), Pass::Forward) => 36.0,
            (FusedOp::Softmax(SoftmaxKind::LogSoftmax), Pass::Backward) => 30.0,
            (FusedOp::Rrelu(_), _) => 33.0,
        }
    }

    /// Bytes read plus written per run on `x: [rows, cols]` of `dtype`; see the module documentation.
    pub fn bytes(self, pass: Pass, rows: usize, cols: usize, dtype: DType) -> f64 {
        let n = (rows * cols) as f64;
        let s = dtype.size_bytes() as f64;
        let c = cols as f64;
        match (self, pass) {
            (FusedOp::Gated(_), Pass::Forward) => 1.5 * n * s,
            (FusedOp::Gated(_), Pass::Backward) => 2.5 * n * s,
            (FusedOp::Softmax(_) | FusedOp::Rrelu(_), Pass::Forward) => 2.0 * n * s,
            (FusedOp::Softmax(_) | FusedOp::Rrelu(_), Pass::Backward) => 3.0 * n * s,
            (_, Pass::Forward) => 2.0 * n * s + c * s,
            (_, Pass::Backward) => 3.0 * n * s + 2.0 * c * s,
        }
    }

    /// The learnable parameter's initial value (PyTorch's PReLU default 0.25; beta and alpha 1).
    fn initial_param(l: Learnable) -> f32 {
        match l {
            Learnable::Prelu => 0.25,
            Learnable::Swish | Learnable::Elu => 1.0,
        }
    }
}

/// One set of operands: x, the incoming gradient, the output(s), the per-column vector and its gradient.
#[derive(Debug)]
struct FusedSet {
    x: Tensor,
    dy: Tensor,
    out: Tensor,
    /// `out`'s buffer seen as the forward's output shape (`[rows, cols / 2]` for gated units).
    out_forward: Tensor,
    vector: Option<Tensor>,
    dvector: Option<Tensor>,
}

/// Random operands for one fused op on `x: [rows, cols]` of one storage type, rotated like
/// [`super::activations::ElementwiseOperands`].
#[derive(Debug)]
pub struct FusedOperands {
    op: FusedOp,
    rows: usize,
    cols: usize,
    dtype: DType,
    sets: Vec<FusedSet>,
}

impl FusedOperands {
    /// Allocates and fills the sets. Gated units need an even `cols`.
    pub fn new(
        gpu: &Gpu,
        op: FusedOp,
        rows: usize,
        cols: usize,
        dtype: DType,
        seed: u64,
    ) -> Result<Self> {
        if matches!(op, FusedOp::Gated(_)) && !cols.is_multiple_of(2) {
            return Err(Error::InvalidArgument {
                op: "FusedOperands::new",
                reason: format!("a gated unit needs an even number of columns, got {cols}"),
            });
        }
        let n = rows.saturating_mul(cols);
        super::check_elements(gpu, n, 4)?;
        let out_shape = match op {
            FusedOp::Gated(_) => vec![rows, cols / 2],
            _ => vec![rows, cols],
        };
        let out_len = out_shape.iter().product::<usize>();
        let mut rng = Rng::new(seed);
        let x = random_values(&mut rng, n, -4.0, 4.0);
        let dy = random_values(&mut rng, out_len, -1.0, 1.0);
        let vector = match op {
            FusedOp::Bias(_) => Some(random_values(&mut rng, cols, -1.0, 1.0)),
            FusedOp::Learnable(l) => Some(vec![FusedOp::initial_param(l); cols]),
            FusedOp::Gated(_) | FusedOp::Softmax(_) | FusedOp::Rrelu(_) => None,
        };
        // Sized by the least a pass touches: x and the output.
        let count = rotation_sets(2 * n as u64 * dtype.size_bytes() as u64);
        let mut sets = Vec::with_capacity(count);
        for _ in 0..count {
            let shaped = |data: &[f32], shape: &[usize]| -> Result<Tensor> {
                reshaped(&gpu.upload_f32_as(data, dtype)?, shape)
            };
            let vector = vector.as_deref().map(|v| shaped(v, &[cols])).transpose()?;
            let dvector = vector.as_ref().map(Tensor::zeros_like).transpose()?;
            let x = shaped(&x, &[rows, cols])?;
            // The backward's output has x's shape; the forward's the output shape (smaller for gated units).
            let out = gpu.zeros(&[rows, cols], dtype)?;
            sets.push(FusedSet {
                x,
                dy: shaped(&dy, &out_shape)?,
                out_forward: reshaped(&out, &out_shape)?,
                out,
                vector,
                dvector,
            });
        }
        Ok(FusedOperands {
            op,
            rows,
            cols,
            dtype,
            sets,
        })
    }

    /// `[rows, cols]` of `x`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The storage type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of operand sets rotated.
    pub fn sets(&self) -> usize {
        self.sets.len()
    }

    /// Records the op in `pass` on operand set `rep % sets`.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, pass: Pass, rep: u64) -> Result<()> {
        let s = &self.sets[(rep % self.sets.len() as u64) as usize];
        let missing = || Error::InvalidArgument {
            op: "FusedOperands::record",
            reason: "operand set lacks its vector".into(),
        };
        match (self.op, pass) {
            (FusedOp::Bias(act), Pass::Forward) => {
                let b = s.vector.as_ref().ok_or_else(missing)?;
                act.record_bias_forward(encoder, &s.x, b, &s.out_forward)
            }
            (FusedOp::Bias(act), Pass::Backward) => {
                let b = s.vector.as_ref().ok_or_else(missing)?;
                let db = s.dvector.as_ref().ok_or_else(missing)?;
                act.record_bias_backward(encoder, &s.x, b, &s.dy, &s.out, db)
            }
            (FusedOp::Gated(g), Pass::Forward) => g.record_forward(encoder, &s.x, &s.out_forward),
            (FusedOp::Gated(g), Pass::Backward) => g.record_backward(encoder, &s.x, &s.dy, &s.out),
            (FusedOp::Learnable(l), Pass::Forward) => {
                let p = s.vector.as_ref().ok_or_else(missing)?;
                l.record_forward(encoder, &s.x, p, &s.out_forward)
            }
            (FusedOp::Learnable(l), Pass::Backward) => {
                let p = s.vector.as_ref().ok_or_else(missing)?;
                let dp = s.dvector.as_ref().ok_or_else(missing)?;
                l.record_backward(encoder, &s.x, p, &s.dy, &s.out, dp)
            }
            (FusedOp::Softmax(k), Pass::Forward) => k.record_forward(encoder, &s.x, &s.out),
            // x stands for y: the time does not depend on the values.
            (FusedOp::Softmax(k), Pass::Backward) => {
                k.record_backward(encoder, &s.x, &s.dy, &s.out)
            }
            (FusedOp::Rrelu(r), Pass::Forward) => {
                r.record_forward(encoder, &s.x, rep, &s.out_forward)
            }
            (FusedOp::Rrelu(r), Pass::Backward) => {
                r.record_backward(encoder, &s.x, &s.dy, rep, &s.out)
            }
        }
    }

    /// Bytes one run in `pass` allocates, estimated high: a learnable backward's f32 tensor of the parameter's
    /// terms (`4 N`; allocated per call at widths that are not a multiple of 8, counted at every width); nothing
    /// otherwise (the reductions' partial sums live in the context's shared scratch buffer). See
    /// [`super::Timer::allocating`].
    pub fn alloc_bytes_per_rep(&self, pass: Pass) -> u64 {
        match (self.op, pass) {
            (FusedOp::Learnable(_), Pass::Backward) => 4 * (self.rows as u64) * (self.cols as u64),
            _ => 0,
        }
    }

    /// Bytes read plus written by one run in `pass`.
    pub fn bytes_moved(&self, pass: Pass) -> f64 {
        self.op.bytes(pass, self.rows, self.cols, self.dtype)
    }

    /// Approximate FLOP of one run in `pass`.
    pub fn flops(&self, pass: Pass) -> f64 {
        (self.rows * self.cols) as f64 * self.op.flops_per_element(pass)
    }
}

/// The same buffer seen with another shape of no more elements.
fn reshaped(t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_buffer(t.gpu(), t.buffer().clone(), shape, t.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in FusedOp::defaults() {
            assert_eq!(FusedOp::from_name(&op.name()), Some(op), "{}", op.name());
        }
        assert_eq!(FusedOp::from_name("bias_nonsense"), None);
        assert_eq!(FusedOp::from_name("gelu"), None);
    }

    #[test]
    fn bytes() {
        let op = FusedOp::Bias(Activation::Gelu);
        assert_eq!(
            op.bytes(Pass::Forward, 2, 8, DType::F32),
            2.0 * 16.0 * 4.0 + 32.0
        );
        let g = FusedOp::Gated(Gated::SWIGLU);
        assert_eq!(g.bytes(Pass::Backward, 2, 8, DType::F16), 2.5 * 16.0 * 2.0);
    }
}
