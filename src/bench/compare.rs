//! Fused against unfused: the same math run as this crate's fused kernel and as the sequence of this crate's
//! separate kernels that a library without fusion would run, on the same operands, in the same run.
//!
//! | comparison | fused | unfused |
//! |---|---|---|
//! | `bias_gelu` forward | `y = gelu(x + b)` | `z = x + b` (bias with identity), `y = gelu(z)` |
//! | `bias_gelu` backward | `dx = dy gelu'(x + b)`, `db = sum dx` | `dx = gelu_backward(z, dy)`, `db = column_sums(dx)` |
//! | `swiglu` forward + backward | `out = a silu(g)`; `da`, `dg` in one pass (a and g two tensors) | `s = silu(g)`, `out = a s`; `da = dout s`, `t = dout a`, `dg = silu_backward(g, t)` |
//! | `swiglu_concat` forward + backward | the same on `x = [a \| g]`, one `[rows, 2 cols]` tensor (PyTorch's layout), `dx = [da \| dg]` | as `swiglu` (on a and g as separate tensors, which a library without fusion would take as views of x) |
//! | `dense_gelu` forward | `y = gelu(x w + b)`, bias and GELU in the matmul's epilogue | `p = x w`, `z = p + b` (bias with identity), `y = gelu(z)` |
//!
//! The unfused backward of `bias_gelu` reads the pre-activation `z` that its forward wrote; the unfused SwiGLU
//! backward reads `s` from its forward. Products `a s` run as the gated kernel with the identity gate. The dense
//! comparison runs on `[m, k, n]` operands of its own ([`DenseCompareOperands`]), both sides on the adapter's
//! matmul kernel; it is judged by FLOP ([`DenseCompareOperands::flops`]) rather than bytes. It is the inference
//! forward: neither side stores Z for a backward, and both reuse one set of operands on every repetition (on a
//! GPU with a large L2 they stay cached, as in a network's steady state), where the dense-layer rows of the
//! training table store Z and rotate buffers, so the two do not time the same work (on the H200, 256x784x512:
//! 58.5 us here, 64.0 us as a dense-layer row). Its unfused side is three kernels, the product, a bias-add kernel,
//! then the activation kernel, as the dense-layer issue's "matmul + separate bias/activation kernels" reads; a
//! baseline that added the bias in the product's epilogue (as BLAS libraries with a bias epilogue do) would be two
//! kernels and one `[m, n]` pass less, and fusion would gain less against it.
//!
//! Every comparison reports the ratio of the two sides' median times (of samples taken in alternation), and the
//! median, min and max of the per-round ratios (round `i`'s unfused sample over its fused sample, taken side by
//! side), which say how far the ratio moves between rounds; and the kernels each side launches
//! ([`Comparison::kernels`]).
//!
//! The byte ratio ([`Comparison::byte_ratio`]) is the speed-up if both sides moved memory at the same rate and
//! dispatches were free. It is not a ceiling: each kernel launch also costs a fixed time that is not bytes (about
//! 9 us per dispatch on the H200), and the side that launches more pays more of it, so a measured speed-up can
//! pass the byte ratio (the H200 measured 1.36x for the bias + GELU backward against its 1.33x).

use super::{measure_alternating_rounds, Measurement, RecordFn, Sampling, Stats, Timer};
use crate::ops::bias::record_column_sums;
use crate::ops::matmul::{record_form, Form, MatmulKernel};
use crate::verify::{Pass, Rng};
use crate::{Activation, DType, Dense, Gated, Gpu, Result, Tensor};

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Bias + GELU forward.
    BiasGeluForward,
    /// Bias + GELU backward, dx and db.
    BiasGeluBackward,
    /// SwiGLU forward then backward, a and g two tensors.
    SwigluForwardBackward,
    /// SwiGLU forward then backward on one tensor `x = [a | g]`.
    SwigluConcatForwardBackward,
    /// The dense layer's forward with GELU, on [`DenseCompareOperands`] (not in [`Comparison::ALL`], whose
    /// comparisons share [`CompareOperands`]).
    DenseGeluForward,
}

impl Comparison {
    /// Every comparison.
    pub const ALL: [Comparison; 4] = [
        Comparison::BiasGeluForward,
        Comparison::BiasGeluBackward,
        Comparison::SwigluForwardBackward,
        Comparison::SwigluConcatForwardBackward,
    ];

    /// Every comparison, the dense one included.
    pub const EVERY: [Comparison; 5] = [
        Comparison::BiasGeluForward,
        Comparison::BiasGeluBackward,
        Comparison::SwigluForwardBackward,
        Comparison::SwigluConcatForwardBackward,
        Comparison::DenseGeluForward,
    ];

    /// The comparison the report names `(kernel, pass)`, if any.
    pub fn from_name(kernel: &str, pass: &str) -> Option<Comparison> {
        Self::EVERY.into_iter().find(|c| c.name() == (kernel, pass))
    }

    /// `(kernel, pass)` as the report names them.
    pub const fn name(self) -> (&'static str, &'static str) {
        match self {
            Comparison::DenseGeluForward => ("dense_gelu", "forward"),
            Comparison::BiasGeluForward => ("bias_gelu", "forward"),
            Comparison::BiasGeluBackward => ("bias_gelu", "backward"),
            Comparison::SwigluForwardBackward => ("swiglu", "forward+backward"),
            Comparison::SwigluConcatForwardBackward => ("swiglu_concat", "forward+backward"),
        }
    }

    /// Bytes the fused version reads and writes on `[rows, cols]` f32 operands (the bench's fused rows; its
    /// unfused rows count [`Comparison::unfused_bytes`]): bias + GELU forward `8 N + 4 cols`, backward `12 N + 8 cols`; SwiGLU forward + backward
    /// `12 N + 20 N` (a, g in, out; a, g, dout in, da, dg out; the same in either layout), `N = rows cols`. (The
    /// dense comparison is judged by FLOP; the value given for it is unused.)
    pub fn useful_bytes(self, rows: usize, cols: usize) -> f64 {
        let (n, c) = ((rows * cols) as f64, cols as f64);
        match self {
            Comparison::BiasGeluForward => 8.0 * n + 4.0 * c,
            Comparison::BiasGeluBackward => 12.0 * n + 8.0 * c,
            Comparison::SwigluForwardBackward
            | Comparison::SwigluConcatForwardBackward
            | Comparison::DenseGeluForward => 32.0 * n,
        }
    }

    /// Bytes the unfused sequence reads and writes on the same operands, counted as [`Comparison::useful_bytes`]
    /// counts the fused side (every kernel's inputs and outputs once; partial sums not counted on either side):
    /// bias + GELU forward `16 N + 4 cols` (bias add `8 N + 4 cols`, GELU `8 N`), backward `16 N + 4 cols` (GELU
    /// backward `12 N`, column sums `4 N + 4 cols`), SwiGLU forward + backward `56 N` (SiLU `8 N`, three products
    /// `12 N` each, SiLU backward `12 N`). `None` for the dense comparison, which is judged by FLOP.
    pub fn unfused_bytes(self, rows: usize, cols: usize) -> Option<f64> {
        let (n, c) = ((rows * cols) as f64, cols as f64);
        match self {
            Comparison::BiasGeluForward | Comparison::BiasGeluBackward => Some(16.0 * n + 4.0 * c),
            Comparison::SwigluForwardBackward | Comparison::SwigluConcatForwardBackward => {
                Some(56.0 * n)
            }
            Comparison::DenseGeluForward => None,
        }
    }

    /// The byte ratio, unfused bytes over fused bytes: the speed-up if both sides moved memory at the same rate
    /// and dispatches were free (about 2x for the bias + GELU forward, 4/3 for its backward, 1.75x for SwiGLU at
    /// 4096 x 4096). Fixed per-dispatch costs are not bytes, so a measured speed-up can pass it (see the module
    /// documentation). `None` for the dense comparison.
    pub fn byte_ratio(self, rows: usize, cols: usize) -> Option<f64> {
        self.unfused_bytes(rows, cols)
            .map(|u| u / self.useful_bytes(rows, cols))
    }

    /// `(fused, unfused)`: the kernels each side launches, as [`CompareOperands::record_fused`] and
    /// [`CompareOperands::record_unfused`] (or [`DenseCompareOperands`]) record them: bias + GELU 1 against 2 in
    /// either pass, SwiGLU 2 (forward, backward) against 5 (SiLU, three products, SiLU backward), the dense
    /// forward 1 against 3 (product, bias add, GELU). A launch may take more than one dispatch (a column sum's
    /// partial sums and their reduction; a product split over K), on either side alike.
    pub const fn kernels(self) -> (u32, u32) {
        match self {
            Comparison::BiasGeluForward | Comparison::BiasGeluBackward => (1, 2),
            Comparison::SwigluForwardBackward | Comparison::SwigluConcatForwardBackward => (2, 5),
            Comparison::DenseGeluForward => (1, 3),
        }
    }

    /// The passes the comparison runs: it is measured when a run's passes include all of them.
    pub fn passes(self) -> &'static [Pass] {
        match self {
            Comparison::BiasGeluForward | Comparison::DenseGeluForward => &[Pass::Forward],
            Comparison::BiasGeluBackward => &[Pass::Backward],
            Comparison::SwigluForwardBackward | Comparison::SwigluConcatForwardBackward => {
                &[Pass::Forward, Pass::Backward]
            }
        }
    }

    /// The target speed-up of fused over unfused.
    pub const fn target(self) -> f64 {
        match self {
            Comparison::BiasGeluForward => 1.8,
            Comparison::BiasGeluBackward
            | Comparison::SwigluForwardBackward
            | Comparison::SwigluConcatForwardBackward => 1.5,
            Comparison::DenseGeluForward => 1.3,
        }
    }
}

/// The operands of every comparison on `[rows, cols]` f32 tensors (for SwiGLU, a and g are each `[rows, cols]`,
/// and `[a | g]` is `[rows, 2 cols]`).
pub struct CompareOperands {
    x: Tensor,
    b: Tensor,
    dy: Tensor,
    z: Tensor,
    y: Tensor,
    dx: Tensor,
    db: Tensor,
    s: Tensor,
    t: Tensor,
    dg: Tensor,
    /// `[a | g]` and `[da | dg]`, `[rows, 2 cols]`.
    x_cat: Tensor,
    dx_cat: Tensor,
}

impl CompareOperands {
    /// Random operands (x in [-4, 4], the rest in [-2, 2]) for `[rows, cols]`.
    pub fn new(gpu: &crate::Gpu, rows: usize, cols: usize, seed: u64) -> Result<Self> {
        // [a | g] is the largest operand: 2 rows cols f32.
        super::check_elements(gpu, rows.saturating_mul(cols), 8)?;
        let mut rng = Rng::new(seed);
        let mut matrix = |scale: f64| -> Result<Tensor> {
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| rng.uniform(-scale, scale))
                .collect();
            gpu.upload_shaped(&v, &[rows, cols])
        };
        let (x, dy, z, y, dx, s, t, dg) = (
            matrix(4.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
        );
        let b = gpu.upload(&(0..cols).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<_>>())?;
        let db = gpu.zeros(&[cols], DType::F32)?;
        let cat: Vec<f32> = (0..rows * 2 * cols)
            .map(|_| rng.uniform(-4.0, 4.0))
            .collect();
        let x_cat = gpu.upload_shaped(&cat, &[rows, 2 * cols])?;
        let dx_cat = gpu.zeros(&[rows, 2 * cols], DType::F32)?;
        Ok(CompareOperands {
            x,
            b,
            dy,
            z,
            y,
            dx,
            db,
            s,
            t,
            dg,
            x_cat,
            dx_cat,
        })
    }

    /// Records the fused version of `c`.
    pub fn record_fused(&self, c: Comparison, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let o = self;
        match c {
            Comparison::BiasGeluForward => {
                Activation::Gelu.record_bias_forward(enc, &o.x, &o.b, &o.y)
            }
            Comparison::BiasGeluBackward => {
                Activation::Gelu.record_bias_backward(enc, &o.x, &o.b, &o.dy, &o.dx, &o.db)
            }
            Comparison::SwigluForwardBackward => {
                // a = x, g = z, dout = dy; out -> y, da -> dx, dg -> dg.
                Gated::SWIGLU.record_forward_pair(enc, &o.x, &o.z, &o.y)?;
                Gated::SWIGLU.record_backward_pair(enc, &o.x, &o.z, &o.dy, &o.dx, &o.dg)
            }
            Comparison::SwigluConcatForwardBackward => {
                // x = [a | g], dout = dy; out -> y, [da | dg] -> dx_cat.
                Gated::SWIGLU.record_forward(enc, &o.x_cat, &o.y)?;
                Gated::SWIGLU.record_backward(enc, &o.x_cat, &o.dy, &o.dx_cat)
            }
            Comparison::DenseGeluForward => Err(dense_elsewhere()),
        }
    }

    /// Records the unfused version of `c`.
    pub fn record_unfused(&self, c: Comparison, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let o = self;
        let multiply = Gated {
            gate: Activation::Identity,
        };
        match c {
            Comparison::BiasGeluForward => {
                Activation::Identity.record_bias_forward(enc, &o.x, &o.b, &o.z)?;
                Activation::Gelu.record_forward(enc, &o.z, &o.y)
            }
            Comparison::BiasGeluBackward => {
                Activation::Gelu.record_backward(enc, &o.z, &o.dy, &o.dx)?;
                record_column_sums(enc, &o.dx, &o.db)
            }
            Comparison::SwigluForwardBackward | Comparison::SwigluConcatForwardBackward => {
                Activation::Silu.record_forward(enc, &o.z, &o.s)?;
                multiply.record_forward_pair(enc, &o.x, &o.s, &o.y)?;
                multiply.record_forward_pair(enc, &o.dy, &o.s, &o.dx)?;
                multiply.record_forward_pair(enc, &o.dy, &o.x, &o.t)?;
                Activation::Silu.record_backward(enc, &o.z, &o.t, &o.dg)
            }
            Comparison::DenseGeluForward => Err(dense_elsewhere()),
        }
    }
}

/// Both sides of a comparison, measured in alternation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// The fused side.
    pub fused: Measurement,
    /// The unfused side.
    pub unfused: Measurement,
    /// Median, min and max of the per-round ratios, unfused sample over fused sample of each round
    /// ([`round_ratios`]); `None` where no round gave a ratio.
    pub round_ratios: Option<Stats>,
}

/// The statistics of `unfused[i] / fused[i]` over the rounds `i` of samples taken in alternation (NaN ratios, of
/// samples that took no time, left out).
pub fn round_ratios(fused: &[f64], unfused: &[f64]) -> Option<Stats> {
    let ratios: Vec<f64> = fused.iter().zip(unfused).map(|(f, u)| u / f).collect();
    Stats::from_samples(&ratios)
}

/// Times `fused` and `unfused` in alternation ([`super::measure_alternating_rounds`]).
fn measure_pair(
    timer: &Timer,
    sampling: &Sampling,
    fused: &mut RecordFn<'_>,
    unfused: &mut RecordFn<'_>,
) -> Result<Measured> {
    let (m, samples) = measure_alternating_rounds(timer, sampling, &mut [fused, unfused])?;
    Ok(Measured {
        fused: m[0],
        unfused: m[1],
        round_ratios: round_ratios(&samples[0], &samples[1]),
    })
}

/// Times the fused and the unfused version of `c`, in alternation ([`super::measure_alternating`]).
pub fn measure_comparison(
    timer: &Timer,
    sampling: &Sampling,
    operands: &CompareOperands,
    c: Comparison,
) -> Result<Measured> {
    measure_pair(
        timer,
        sampling,
        &mut |enc, _| operands.record_fused(c, enc),
        &mut |enc, _| operands.record_unfused(c, enc),
    )
}

/// The error for [`Comparison::DenseGeluForward`] asked of [`CompareOperands`].
fn dense_elsewhere() -> crate::Error {
    crate::Error::InvalidArgument {
        op: "compare",
        reason: "the dense comparison runs on DenseCompareOperands".into(),
    }
}

/// `[m, k, n]` of the fused-against-unfused dense GELU forward in the default run and the criterion bench: the
/// issue's dense shapes 256x784x512 and 256x512x512, where the product's `2 m k n` FLOP outweigh the
/// `m n`-element bias and activation passes (on CPU adapters fusion can save only those few percent), and a
/// 64-wide hidden layer at batch 4096, the activation study's layer shape, where the passes weigh as much as the
/// product.
pub const DENSE_COMPARISON_SHAPES: [[usize; 3]; 3] =
    [[256, 784, 512], [256, 512, 512], [4096, 64, 64]];

/// Operands of [`Comparison::DenseGeluForward`]: `x [m, k]` in [-1, 1], `w [k, n]` and `b [n]` in [-0.1, 0.1].
pub struct DenseCompareOperands {
    shape: [usize; 3],
    kernel: MatmulKernel,
    x: Tensor,
    w: Tensor,
    b: Tensor,
    p: Tensor,
    z: Tensor,
    y: Tensor,
}

impl DenseCompareOperands {
    /// Random operands for `[m, k, n]`; both sides run `gpu`'s matmul kernel ([`MatmulKernel::for_gpu`]).
    pub fn new(gpu: &Gpu, shape: [usize; 3], seed: u64) -> Result<Self> {
        let [m, k, n] = shape;
        let mut rng = Rng::new(seed);
        let mut values = |len: usize, scale: f64| -> Vec<f32> {
            (0..len).map(|_| rng.uniform(-scale, scale)).collect()
        };
        let (x, w, b) = (values(m * k, 1.0), values(k * n, 0.1), values(n, 0.1));
        Ok(DenseCompareOperands {
            shape,
            kernel: MatmulKernel::for_gpu(gpu),
            x: gpu.upload_shaped(&x, &[m, k])?,
            w: gpu.upload_shaped(&w, &[k, n])?,
            b: gpu.upload(&b)?,
            p: gpu.zeros(&[m, n], DType::F32)?,
            z: gpu.zeros(&[m, n], DType::F32)?,
            y: gpu.zeros(&[m, n], DType::F32)?,
        })
    }

    /// `[m, k, n]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// FLOP of one forward, counted for both sides: `2 m k n + m n (1 + f)`, `f` GELU's FLOP per element (as
    /// [`super::training::DenseOperands::flops`]).
    pub fn flops(&self) -> f64 {
        let [m, k, n] = self.shape;
        let f =
            super::activations::flops_per_element(Activation::Gelu, crate::verify::Pass::Forward);
        2.0 * (m * k * n) as f64 + (m * n) as f64 * (1.0 + f64::from(f))
    }

    /// The fused forward: one kernel, `y = gelu(x w + b)` (inference: the pre-activation is not stored).
    pub fn record_fused(&self, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let layer = Dense {
            kernel: Some(self.kernel),
            ..Dense::new(Activation::Gelu)
        };
        layer.record_forward(enc, &self.x, &self.w, Some(&self.b), &self.y, None)
    }

    /// The unfused forward: `p = x w`, `z = p + b`, `y = gelu(z)`, three kernels (matmul, then a bias-add kernel,
    /// then the activation kernel; with the bias in the product it would be two).
    pub fn record_unfused(&self, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        record_form(self.kernel, enc, Form::AB, &self.x, &self.w, &self.p)?;
        Activation::Identity.record_bias_forward(enc, &self.p, &self.b, &self.z)?;
        Activation::Gelu.record_forward(enc, &self.z, &self.y)
    }
}

/// Times the fused and the unfused dense forward, in alternation ([`super::measure_alternating`]).
pub fn measure_dense_comparison(
    timer: &Timer,
    sampling: &Sampling,
    operands: &DenseCompareOperands,
) -> Result<Measured> {
    measure_pair(
        timer,
        sampling,
        &mut |enc, _| operands.record_fused(enc),
        &mut |enc, _| operands.record_unfused(enc),
    )
}

#[cfg(test)]
mod tests {
    use super::{round_ratios, Comparison};

    /// The per-round ratios pair round i of each side: their median, min and max, not the ratio of the medians.
    #[test]
    fn per_round_ratios() {
        let fused = [1.0, 2.0, 1.0, 4.0];
        let unfused = [2.0, 3.0, 1.5, 8.0];
        let r = round_ratios(&fused, &unfused).unwrap();
        assert_eq!((r.min, r.median, r.max, r.samples), (1.5, 1.75, 2.0, 4));
        assert_eq!(round_ratios(&[], &[]), None);
        // A round whose fused sample took no time and no unfused time gives NaN, which is left out.
        assert_eq!(round_ratios(&[0.0, 1.0], &[0.0, 2.0]).unwrap().samples, 1);
    }

    /// The byte ratios the comparisons' tables print: 2x, 4/3 and 7/4 on a square tensor (up to the bias's
    /// `cols` terms), none for the dense layer, whose sides do the same FLOP.
    #[test]
    fn byte_ratios() {
        let ratio = |c: Comparison| c.byte_ratio(4096, 4096);
        let near = |r: Option<f64>, want: f64| (r.unwrap() - want).abs() < 1e-3;
        assert!(near(ratio(Comparison::BiasGeluForward), 2.0));
        assert!(near(ratio(Comparison::BiasGeluBackward), 4.0 / 3.0));
        assert!(near(ratio(Comparison::SwigluForwardBackward), 1.75));
        assert_eq!(ratio(Comparison::DenseGeluForward), None);
        // One row: the bias terms weigh, [1, 1] backward is (16 + 4) / (12 + 8).
        assert_eq!(Comparison::BiasGeluBackward.byte_ratio(1, 1), Some(1.0));
    }
}
