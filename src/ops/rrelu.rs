//! The randomized leaky ReLU (Xu et al., "Empirical Evaluation of Rectified Activations in Convolutional Network",
//! 2015; PyTorch's `nn.RReLU`): in training each element draws its own negative slope, uniform in
//! `[lower, upper]`; in evaluation the slope is their mean, which is the leaky ReLU
//! ([`Rrelu::eval_activation`], fused into every kernel family like any activation).
//!
//! Training mode runs `shaders/rrelu.wgsl`. Its draw is counter-based: element `e`'s slope is a hash of `(e,
//! seed)`, so the backward draws the same slopes from the same seed and nothing is stored between the passes
//! (PyTorch keeps a `noise` tensor of x's size).

use super::activation::activation_constants;
use super::elementwise::{check_inputs_outputs, check_u32_elements, record, Slot};
use super::recording::Recording;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{Activation, Error, Intensity, Result, Tensor};

/// The randomized leaky ReLU with its slopes' range (PyTorch's `nn.RReLU(lower, upper)`).
///
/// Training mode, element `e` of a tensor with the step's `seed`:
/// - `y_e = x_e if x_e > 0 else a_e x_e`; `dx_e = dy_e if x_e > 0 else a_e dy_e`;
/// - `a_e` = [`Rrelu::slope`]`(seed, e)`, uniform in `[lower, upper]` (`u` on a grid of `2^24` points in `[0, 1)`; the slope's
///   f32 rounding can reach `upper`).
///
/// Edge values as the crate's leaky ReLU: NaN gives NaN both ways, a slope of 0 gives a zero of x's sign (the
/// limit at `x = -inf` too), and the backward is NaN where `x` or `dy` is. The same seed gives the same bits on
/// every run; a training loop passes a new seed each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rrelu {
    /// The smallest slope.
    pub lower: f32,
    /// The largest slope.
    pub upper: f32,
}

impl Default for Rrelu {
    /// PyTorch's defaults, `lower = 1/8`, `upper = 1/3`.
    fn default() -> Self {
        Rrelu::DEFAULT
    }
}

/// `rrelu` at PyTorch's range, else `rrelu(lower,upper)`: the name a hidden layer of it has
/// ([`crate::Hidden::name`]).
impl std::fmt::Display for Rrelu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::Hidden::Rrelu(*self).name())
    }
}

impl Rrelu {
    /// PyTorch's defaults, `lower = 1/8`, `upper = 1/3`.
    pub const DEFAULT: Rrelu = Rrelu {
        lower: 1.0 / 8.0,
        upper: 1.0 / 3.0,
    };

    /// The op's name in errors and reports, `rrelu`.
    pub const NAME: &'static str = "rrelu";

    /// [`Error::InvalidArgument`] unless both bounds are finite and `lower <= upper` (PyTorch's condition).
    pub fn new(lower: f32, upper: f32) -> Result<Rrelu> {
        let r = Rrelu { lower, upper };
        r.validate()?;
        Ok(r)
    }

    /// [`Rrelu::new`]'s check of an `Rrelu` built from its fields.
    pub fn validate(self) -> Result<()> {
        if !(self.lower.is_finite() && self.upper.is_finite() && self.lower <= self.upper) {
            return Err(Error::InvalidArgument {
                op: Self::NAME,
                reason: format!(
                    "the slopes' bounds must be finite with lower <= upper (got lower {}, upper {})",
                    self.lower, self.upper
                ),
            });
        }
        Ok(())
    }

    /// The mean slope `(lower + upper) / 2` (formed in f64, rounded once), PyTorch's slope in evaluation.
    pub fn mean_slope(self) -> f32 {
        ((f64::from(self.lower) + f64::from(self.upper)) / 2.0) as f32
    }

    /// Evaluation mode, as PyTorch's `rrelu(training=False)`: the leaky ReLU with the [`Rrelu::mean_slope`]. It is
    /// a built-in activation, so it fuses into the bias, gated and dense kernels.
    pub fn eval_activation(self) -> Activation {
        Activation::LeakyRelu {
            negative_slope: self.mean_slope(),
        }
    }

    /// The slope that training mode draws for element `index` under `seed`: `lower + (upper - lower) u` in f32
    /// arithmetic, `u` = [`crate::cpu::rrelu::uniform`]. The kernels compute the same expression; a driver that
    /// contracts it into a fused multiply-add may differ in the last bit.
    pub fn slope(self, seed: u64, index: u32) -> f32 {
        self.lower + (self.upper - self.lower) * crate::cpu::rrelu::uniform(seed, index)
    }

    /// Training-mode forward into a new tensor of x's type; submits and waits.
    pub fn forward(self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let y = x.zeros_like()?;
        self.forward_into(x, seed, &y)?;
        Ok(y)
    }

    /// Training-mode forward into `y` (x's shape, any storage type); submits and waits.
    pub fn forward_into(self, x: &Tensor, seed: u64, y: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait(Self::NAME, |enc| self.record_forward(enc, x, seed, y))
    }

    /// Records the training-mode forward `y = rrelu(x)` with `seed` into `encoder`. `x` and `y` have the same
    /// shape, each of any storage type, and distinct buffers; at most `u32::MAX` elements.
    pub fn record_forward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        seed: u64,
        y: &Tensor,
    ) -> Result<()> {
        self.record_at(encoder, x, None, seed, 0, y)
    }

    /// Training-mode backward into a new tensor of x's type; submits and waits.
    pub fn backward(self, x: &Tensor, dy: &Tensor, seed: u64) -> Result<Tensor> {
        let dx = x.zeros_like()?;
        self.backward_into(x, dy, seed, &dx)?;
        Ok(dx)
    }

    /// Training-mode backward into `dx`; submits and waits.
    pub fn backward_into(self, x: &Tensor, dy: &Tensor, seed: u64, dx: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait(Self::NAME, |enc| self.record_backward(enc, x, dy, seed, dx))
    }

    /// Records the training-mode backward `dx = dy * a` (`dy` where `x > 0`) with the forward's `seed` into
    /// `encoder`. `x`, `dy` and `dx` have the same shape, each of any storage type; `dx` is a buffer of its own.
    pub fn record_backward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        dy: &Tensor,
        seed: u64,
        dx: &Tensor,
    ) -> Result<()> {
        self.record_at(encoder, x, Some(dy), seed, 0, dx)
    }

    /// The forward (`dy` = None) or backward pass recorded into `encoder`, element `i` of `x` drawn at index
    /// `first_index + i` (an MLP step in passes counts its draws over the whole batch).
    pub(crate) fn record_at(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        dy: Option<&Tensor>,
        seed: u64,
        first_index: u32,
        out: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan(rec, x, dy, seed, first_index, out))
    }

    /// The forward (`dy` = None) or backward pass, planned into `encoder`, element `i` of `x` drawn at index
    /// `first_index + i`.
    fn plan(
        self,
        encoder: &mut Recording,
        x: &Tensor,
        dy: Option<&Tensor>,
        seed: u64,
        first_index: u32,
        out: &Tensor,
    ) -> Result<()> {
        self.validate()?;
        let inputs: Vec<&Tensor> = [Some(x), dy].into_iter().flatten().collect();
        check_inputs_outputs(Self::NAME, &inputs, &[out])?;
        check_u32_elements(x.len().saturating_add(first_index as usize))?;
        let gpu = x.gpu();
        let launch = gpu.launch_for(Intensity::Arithmetic);
        let mut constants = activation_constants(Activation::Identity, launch);
        let code = |t: &Tensor| f64::from(t.dtype().storage_code());
        constants.extend([
            ("X_T", code(x)),
            ("DY_T", code(dy.unwrap_or(x))),
            ("OUT_T", code(out)),
        ]);
        let entry = if dy.is_some() {
            "rrelu_backward"
        } else {
            "rrelu_forward"
        };
        let key = PipelineKey::new(ShaderId::Rrelu, entry, launch.workgroup_size, &constants);
        let mut operands = vec![(Slot::X, x), (Slot::Out, out)];
        if let Some(dy) = dy {
            operands.push((Slot::Dy, dy));
        }
        let params = [
            seed as u32,
            (seed >> 32) as u32,
            self.lower.to_bits(),
            self.upper.to_bits(),
            first_index,
        ];
        record(gpu, encoder, &key, &operands, x.len(), &[], &params)
    }
}
