//! Per-layer training diagnostics of an [`crate::Mlp`], gathered by kernels the step runs anyway, read back
//! only when asked.
//!
//! With diagnostics on ([`crate::Mlp::set_diagnostics`]), each [`crate::Mlp::train_step`] also gathers, for
//! every layer `l` (the output layer included, whose linear activation is never dead or saturated):
//!
//! | quantity | definition | gathered by |
//! |---|---|---|
//! | gradient norms | `‖dW_l‖_2`, `‖db_l‖_2` of the loss's gradient (before weight decay), and `sqrt(‖dW‖² + ‖db‖²)` | the optimizer update, which reads every gradient: one f32 sum of squares per 16 elements, added in f64 on reading |
//! | dead | elements of the pre-activation `Z_l [batch, units]` with `f'(z) == 0` | the backward's `dZ = dY * f'(Z)` pass, which reads every z: workgroup and global atomic counters |
//! | saturated | elements with `0 < abs(f'(z)) < 1e-3` ([`SATURATION_THRESHOLD`]) | the same pass |
//! | dead neurons | columns of `Z_l` with `f'(z) == 0` in every row of the batch (the "dying ReLU" count; the dead elements also count a live neuron's inactive rows) | the same pass: two flags per column, each set by the first element that clears it |
//! | saturated neurons | columns not dead with `|f'(z)| < 1e-3` in every row | the same flags |
//!
//! A gated, learnable or randomized leaky ReLU hidden layer ([`crate::nn::Hidden`]) reports the norms of its linear map's `dW` and `db`
//! (for a gated layer, `W` is `[fan_in, 2 units]`) and `units` = `batch × ` that width, but no dead or saturated
//! elements (both 0): its dZ comes from the gated unit's, the learnable activation's or the randomized leaky
//! ReLU's own backward kernel,
//! which does not count. The norm of a learnable activation parameter's gradient `‖dp‖_2` is gathered by its
//! update like the others and read with [`crate::Mlp::activation_param_grad_norms`].
//!
//! `f'` is the derivative the backward pass uses, in f32: a ReLU unit with `z <= 0` is dead, a sigmoid or tanh
//! unit far in a tail is saturated (tanh beyond |z| ≈ 4.15, sigmoid beyond ≈ 6.9, GELU below ≈ -3.8), and one
//! so far out that `f'` underflows to 0 in f32 (|z| beyond about 50 for tanh) counts as dead. The activations
//! that are not monotone also have `|f'| < 1e-3` in a narrow band around their minimum, which counts as
//! saturated though it is no tail: GELU at z in [-0.754, -0.750], SiLU [-1.283, -1.274], Mish [-1.196,
//! -1.189], HardSwish [-1.503, -1.497] (its `f'` is exactly 0 at -1.5: dead), about 0.15% of standard-normal
//! pre-activations. The fractions are over the `batch × units` elements of the step's batch.
//!
//! Off (the default), the step runs exactly the kernels it would without this module. On, the update and dZ
//! kernels are variants that also reduce, and the step's results are the same bits; a layer of at most 128 rows
//! whose width is a multiple of 8, whose dZ and bias gradient take one fused dispatch when off, takes two when
//! on (the counting dZ pass, then the column sums). Measured on lavapipe and llvmpipe GL (784-512-512-10 GELU MLP, batch 256, SGD): the norm
//! variants of the update run as fast as the plain ones (2.2 vs 2.1 ms for the 784x512 weight), the counting
//! dZ pass takes about 0.6 ms more than the plain one per 256x512 layer, and the step's time changes within
//! the run-to-run noise (66-69 vs 69-76 ms on lavapipe). [`crate::Mlp::diagnostics`] copies every counter and
//! partial sum into one buffer and reads it back in one submission (under 1 ms).

use crate::ops::dz_stats;
pub use crate::ops::dz_stats::SATURATION_THRESHOLD;
use crate::ops::optim::{norm_partials, sum_partials};
use crate::{DType, Error, Gpu, Result, Tensor};

/// What one layer's diagnostics say about the last training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerDiagnostics {
    /// `‖dW‖_2`, the L2 norm of the weight gradient.
    pub weight_grad_norm: f64,
    /// `‖db‖_2`, the L2 norm of the bias gradient.
    pub bias_grad_norm: f64,
    /// Elements of the pre-activation: `batch × units`.
    pub units: u64,
    /// Elements with `f'(z) == 0`.
    pub dead: u64,
    /// Elements with `0 < abs(f'(z)) <` [`SATURATION_THRESHOLD`].
    pub saturated: u64,
    /// The layer's width: the columns of Z (its neurons).
    pub neurons: u64,
    /// Neurons with `f'(z) == 0` in every row of the batch: no gradient reached their weights in this step (0
    /// for layers that do not count, as for `dead`).
    pub dead_neurons: u64,
    /// Neurons not dead whose `|f'(z)|` is below [`SATURATION_THRESHOLD`] in every row (0 where not counted).
    pub saturated_neurons: u64,
}

impl LayerDiagnostics {
    /// `sqrt(‖dW‖² + ‖db‖²)`, the norm of the linear map's parameter gradients together (a learnable
    /// activation's `‖dp‖` is not in it: [`crate::Mlp::activation_param_grad_norms`]).
    pub fn grad_norm(&self) -> f64 {
        self.weight_grad_norm.hypot(self.bias_grad_norm)
    }

    /// `dead / units` (0 for an empty batch).
    pub fn dead_fraction(&self) -> f64 {
        self.dead as f64 / self.units.max(1) as f64
    }

    /// `saturated / units` (0 for an empty batch).
    pub fn saturated_fraction(&self) -> f64 {
        self.saturated as f64 / self.units.max(1) as f64
    }

    /// `dead_neurons / neurons`: the share of the layer's neurons that no row of the batch activated.
    pub fn dead_neuron_fraction(&self) -> f64 {
        self.dead_neurons as f64 / self.neurons.max(1) as f64
    }

    /// `saturated_neurons / neurons`.
    pub fn saturated_neuron_fraction(&self) -> f64 {
        self.saturated_neurons as f64 / self.neurons.max(1) as f64
    }
}

/// One layer's buffers: the `[dead, saturated, active flags..]` counters and the partial sums of squares of dW
/// and db.
#[derive(Debug)]
pub(crate) struct LayerBuffers {
    pub(crate) counts: Tensor,
    /// Whether the layer's backward marks its active neurons (a plain activation's does, but the identity's and a
    /// gated, learnable or randomized leaky ReLU one's do not: their dead neurons read 0).
    pub(crate) counted: bool,
    pub(crate) w_partials: Tensor,
    pub(crate) b_partials: Tensor,
    /// Partial sums of squares of a learnable activation parameter's gradient.
    pub(crate) p_partials: Option<Tensor>,
}

/// The buffers of every layer and what the last step that filled them was.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    pub(crate) layers: Vec<LayerBuffers>,
    /// `(step, batch)` of the last step that gathered diagnostics.
    pub(crate) last: Option<(u64, usize)>,
}

impl Diagnostics {
    /// Buffers for layers with `(weight elements, bias elements, activation parameter elements, counted)` each
    /// (0: no activation parameter; counted: a plain activation, whose backward counts).
    pub(crate) fn new(gpu: &Gpu, layers: &[(usize, usize, usize, bool)]) -> Result<Self> {
        let partials = |n| gpu.zeros(&[norm_partials(gpu, n)?], DType::F32);
        let layers = layers
            .iter()
            .map(|&(w, b, p, counted)| {
                Ok(LayerBuffers {
                    counts: gpu.zeros(&[2 + b], DType::F32)?,
                    counted,
                    w_partials: partials(w)?,
                    b_partials: partials(b)?,
                    p_partials: (p > 0).then(|| partials(p)).transpose()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Diagnostics { layers, last: None })
    }

    /// Reads every layer's diagnostics, and the norm of each activation parameter's gradient where a layer has
    /// one, back in one submission; `units[l]` is the width of layer `l`'s Z.
    #[allow(clippy::type_complexity)]
    pub(crate) fn read(
        &self,
        gpu: &Gpu,
        units: &[usize],
    ) -> Result<(Vec<LayerDiagnostics>, Vec<Option<f64>>)> {
        let Some((_, batch)) = self.last else {
            return Err(Error::InvalidArgument {
                op: "Mlp::diagnostics",
                reason: "no training step has run with diagnostics on".into(),
            });
        };
        let parts: Vec<&Tensor> = self
            .layers
            .iter()
            .flat_map(|l| {
                [
                    Some(&l.counts),
                    Some(&l.w_partials),
                    Some(&l.b_partials),
                    l.p_partials.as_ref(),
                ]
            })
            .flatten()
            .collect();
        let total: usize = parts.iter().map(|t| t.len()).sum();
        let pack = gpu.zeros(&[total], DType::F32)?;
        gpu.submit_and_wait("Mlp::diagnostics", |enc| {
            let mut at = 0;
            for t in &parts {
                let bytes = 4 * t.len() as u64;
                enc.copy_buffer_to_buffer(t.buffer(), 0, pack.buffer(), at, bytes);
                at += bytes;
            }
            Ok(())
        })?;
        let words = pack.read::<f32>()?;
        let mut rest = &words[..];
        let mut out = Vec::with_capacity(self.layers.len());
        let mut param_norms = Vec::with_capacity(self.layers.len());
        for (layer, &width) in self.layers.iter().zip(units) {
            let (counts, tail) = rest.split_at(layer.counts.len());
            let counts = dz_stats::DzCounts::from_words(counts)?;
            // Unmarked flags read as dead units: they count only where the backward marks them.
            let marked = |units: u32| u64::from(units) * u64::from(layer.counted && batch > 0);
            let (w, tail) = tail.split_at(layer.w_partials.len());
            let (b, tail) = tail.split_at(layer.b_partials.len());
            let p_len = layer.p_partials.as_ref().map_or(0, Tensor::len);
            let (p, tail) = tail.split_at(p_len);
            param_norms.push(layer.p_partials.as_ref().map(|_| sum_partials(p).sqrt()));
            rest = tail;
            out.push(LayerDiagnostics {
                weight_grad_norm: sum_partials(w).sqrt(),
                bias_grad_norm: sum_partials(b).sqrt(),
                units: (batch * width) as u64,
                dead: u64::from(counts.dead),
                saturated: u64::from(counts.saturated),
                neurons: width as u64,
                dead_neurons: marked(counts.dead_units),
                saturated_neurons: marked(counts.saturated_units),
            });
        }
        Ok((out, param_norms))
    }

    /// Records the zeroing of every layer's counters, before a step's backward pass adds to them.
    pub(crate) fn record_clear(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        for l in &self.layers {
            dz_stats::clear_counts(encoder, &l.counts)?;
        }
        Ok(())
    }
}
