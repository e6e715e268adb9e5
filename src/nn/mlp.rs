//! A multi-layer perceptron trained on the GPU: dense layers `Y_l = f_l(Y_{l-1} W_l + b_l)` with one activation
//! per hidden layer and a linear output layer, a fused loss, and a fused optimizer update per parameter tensor.
//!
//! A hidden layer may also be a gated unit, a learnable activation or a randomized leaky ReLU ([`Hidden`],
//! [`Mlp::with_layers`]): its linear map `Z_l = Y_{l-1} W_l + b_l` runs as a dense layer without activation, then
//!
//! ```text
//! gated:      Z_l = [A | G] ([batch, 2u]),  Y_l = A * f(G)    backward: [dA | dG] = [dY f(G) | dY A f'(G)]
//! learnable:  Y_l = f(Z_l; p)                                 backward: dZ = dY df/dz,  dp = sum dY df/dp
//! rrelu:      Y_l = Z_l, or a Z_l where Z_l <= 0             backward: dZ = dY, or a dY
//! ```
//!
//! (the randomized leaky ReLU's slope `a` drawn per element and step in training, [`Mlp::noise_seed`], and its
//! mean in evaluation) where the backward kernel of the gated unit, of the learnable activation or of the
//! randomized leaky ReLU forms the whole dZ (and dp) in one pass, and the products `dW = X^T dZ`, `db = 1^T dZ`, `dX = dZ W^T` read it. `p` is updated by the same
//! optimizer as the weights, with its own state, in the same submission.
//!
//! [`Mlp::train_step`] records the whole step, forward, loss, backward and update, into one command buffer,
//! submits it once and returns without waiting or reading anything back; [`Mlp::loss`] reads the last step's
//! loss when asked. Every kernel sums floats in a fixed order (the only atomics are the diagnostics' integer
//! counters, whose sums do not depend on order) and the randomized leaky ReLU draws from a counter-based hash,
//! so the same seed on the same adapter with the same
//! [`crate::GpuOptions`] gives the same bits (options such as the grid limit, the reduction height or the matmul
//! kernel choose how sums are split, and so their order).
//!
//! Inference reads the network and nothing else of it: [`Mlp::predict`] and [`Mlp::evaluate`] take `&self`, and
//! `Mlp` is `Send + Sync`, so one network (in an `Arc`, say) serves predictions to several threads at once, or
//! predicts while its weights are borrowed. The buffers inference keeps between calls sit behind a lock that is
//! held only to take them and to put them back: a call takes them for the length of its GPU work, and a call
//! on another thread at the same time makes its own for that call (see [`Mlp::predict`]).

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::nn::diagnostics::{Diagnostics, LayerDiagnostics};
use crate::nn::init::init_layers;
use crate::nn::Hidden;
use crate::ops::loss::{Labels, Loss, Targets};
use crate::ops::optim::{record_accumulate, OptimState, Optimizer};
use crate::ops::recording::Recording;
use crate::{Activation, DType, Dense, Error, Gpu, Result, Tensor};

/// A learnable activation's parameter, its gradient and its optimizer state.
#[derive(Debug)]
struct ActParam {
    p: Tensor,
    dp: Tensor,
    state: OptimState,
}

/// One layer's parameters, their gradients and their optimizer state.
#[derive(Debug)]
struct Layer {
    /// The linear map, with the activation in its epilogue for a plain layer (identity otherwise).
    dense: Dense,
    /// What follows the linear map (identity for the output layer).
    kind: Hidden,
    param: Option<ActParam>,
    w: Tensor,
    b: Tensor,
    dw: Tensor,
    db: Tensor,
    w_state: OptimState,
    b_state: OptimState,
}

/// Buffers sized for one batch size: each layer's output Y, pre-activation Z (hidden layers: the linear map's
/// output, `[batch, 2u]` for a gated layer), and for training the gradient of the loss with respect to each
/// layer's output and every hidden layer's gradient with respect to Z. Kept across steps, so that a step of the
/// same batch size allocates none of them (some kernels still take buffers of their own each step: the loss's
/// partial sums past 256 rows of cross-entropy or 256 elements of the other losses (128 on a device whose
/// workgroups hold fewer than 256 threads), a learnable layer's
/// per-element terms where its width is not a multiple of 8, each dispatch's uniform parameters). Inference has its own, without the gradients ([`Mlp::predict`]), so evaluating a set of another
/// size leaves the training buffers alone.
#[derive(Debug)]
struct Workspace {
    batch: usize,
    y: Vec<Tensor>,
    z: Vec<Option<Tensor>>,
    dy: Vec<Tensor>,
    dz: Vec<Option<Tensor>>,
}

impl Workspace {
    /// The first `rows` rows of every buffer, as a workspace for a shorter batch (no copies).
    fn rows_prefix(&self, rows: usize) -> Result<Workspace> {
        let prefix = |ts: &[Tensor]| {
            ts.iter()
                .map(|t| t.rows_prefix(rows))
                .collect::<Result<Vec<_>>>()
        };
        let prefix_opt = |ts: &[Option<Tensor>]| {
            ts.iter()
                .map(|t| t.as_ref().map(|t| t.rows_prefix(rows)).transpose())
                .collect::<Result<Vec<_>>>()
        };
        Ok(Workspace {
            batch: rows,
            y: prefix(&self.y)?,
            z: prefix_opt(&self.z)?,
            dy: prefix(&self.dy)?,
            dz: prefix_opt(&self.dz)?,
        })
    }
}

/// Where a training pass draws the randomized leaky ReLU layers' slopes: the step (the first is 1), and the
/// pass's first row in the batch.
#[derive(Debug, Clone, Copy)]
struct Draw {
    step: u64,
    first_row: usize,
}

/// A multi-layer perceptron on the GPU (see the module documentation).
#[derive(Debug)]
pub struct Mlp {
    gpu: Gpu,
    sizes: Vec<usize>,
    loss_fn: Loss,
    optimizer: Optimizer,
    layers: Vec<Layer>,
    step: u64,
    /// [`Mlp::noise_seed`].
    noise_seed: u64,
    loss: Tensor,
    work: Option<Workspace>,
    /// The training workspace of the batch size before the current one, kept so that an epoch's full batches
    /// and its shorter last one take turns without allocating.
    spare: Option<Workspace>,
    /// Inference's buffers (no gradients), for [`Mlp::predict`] and [`Mlp::evaluate`], which take `&self`: a
    /// call takes them out for its GPU work and puts them back when that has finished, so that two calls at once
    /// never share them ([`Mlp::infer_cache`] locks it).
    infer: Mutex<Option<Workspace>>,
    /// [`Mlp::set_inference_rows`]'s value, if set.
    infer_rows: Option<usize>,
    /// [`Mlp::set_train_rows`]'s value, if set.
    train_rows: Option<usize>,
    /// What a training step in passes keeps besides the pass's workspace ([`Mlp::train_step`]).
    passes: Option<PassBuffers>,
    diag: Option<Diagnostics>,
}

/// What a training step on a batch of more than [`Mlp::train_rows`] rows keeps besides the pass's workspace: the
/// pass's rows of the input and of the targets (copied out of the caller's), and one pass's gradients and loss,
/// which are then added into the layers' gradients and the step's loss, weighted by the pass's share of the
/// batch.
#[derive(Debug)]
struct PassBuffers {
    rows: usize,
    x: Tensor,
    /// `[rows]` class indices (as the bytes of an f32 tensor), or `[rows, outputs]` target values.
    targets: Tensor,
    classes: bool,
    /// Per layer: dW, db and a learnable activation's dp of one pass.
    grads: Vec<(Tensor, Tensor, Option<Tensor>)>,
    loss: Tensor,
}

/// Where one pass of a training step writes its gradients (per layer dW, db, dp) and its loss.
struct GradsOut<'a> {
    layers: Vec<(&'a Tensor, &'a Tensor, Option<&'a Tensor>)>,
    loss: &'a Tensor,
}

/// The bytes of the widest tensor of one inference pass, by default ([`Mlp::inference_rows`]): large enough
/// that a pass keeps a GPU busy (16,384 rows of 1,024 f32), small enough that the buffers inference keeps stay
/// modest and fit a host device's default 128 MiB storage binding.
const INFERENCE_PASS_BYTES: u64 = 64 << 20;

/// A layer weight too large for one storage binding ([`oversized_weight`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OversizedWeight {
    /// The layer, from 0 (the input layer's weight).
    pub layer: usize,
    /// Its rows, `sizes[layer]` (the fan-in).
    pub rows: usize,
    /// Its columns, the layer's linear width (`2 units` for a gated layer, saturating at `usize::MAX`).
    pub cols: usize,
    /// Its bytes in f32, `u64::MAX` where the count passes that.
    pub bytes: u64,
}

/// The first layer of a network with layer sizes `sizes` and hidden layers `hidden` (the output layer linear)
/// whose f32 weight `[sizes[l], linear width]` passes `max_binding` bytes, if one does: the products bind a weight
/// whole, so [`Mlp::new`] refuses such a network ([`Error::LimitExceeded`]) before drawing it, and the activation
/// study before its first run.
pub fn oversized_weight(
    sizes: &[usize],
    hidden: &[Hidden],
    max_binding: u64,
) -> Option<OversizedWeight> {
    sizes.windows(2).enumerate().find_map(|(l, io)| {
        let cols = hidden.get(l).map_or(io[1], |h| h.linear_width(io[1]));
        let bytes = io[0] as u128 * cols as u128 * 4;
        (bytes > u128::from(max_binding)).then(|| OversizedWeight {
            layer: l,
            rows: io[0],
            cols,
            bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
        })
    })
}

/// Every layer's weight must fit one storage binding ([`oversized_weight`]): checked before [`init_layers`] draws
/// it, so that a size too large is [`Error::LimitExceeded`] rather than a host allocation of that size.
fn check_weight_sizes(gpu: &Gpu, sizes: &[usize], hidden: &[Hidden]) -> Result<()> {
    let max = gpu.limits().max_storage_buffer_binding_size;
    match oversized_weight(sizes, hidden, max) {
        Some(w) => Err(Error::LimitExceeded {
            limit: "max_storage_buffer_binding_size",
            max,
            requested: w.bytes,
        }),
        None => Ok(()),
    }
}

impl Mlp {
    /// A network with layer sizes `sizes` (input first, at least two, none zero), one activation per hidden
    /// layer (`hidden.len() == sizes.len() - 2`; the output layer is linear), initialised from `seed` by
    /// [`crate::nn::init_params`], trained with `loss` and `optimizer`. [`Mlp::with_layers`] takes gated and
    /// learnable hidden layers too, and says which mistakes are refused (here with `op` `"Mlp::new"`).
    pub fn new(
        gpu: &Gpu,
        sizes: &[usize],
        hidden: &[Activation],
        loss: Loss,
        optimizer: Optimizer,
        seed: u64,
    ) -> Result<Mlp> {
        let hidden: Vec<Hidden> = hidden.iter().map(|&a| Hidden::Act(a)).collect();
        Mlp::build("Mlp::new", gpu, sizes, &hidden, loss, optimizer, seed)
    }

    /// A network with layer sizes `sizes` (input first, at least two, none zero) and one [`Hidden`] kind per
    /// hidden layer (`hidden.len() == sizes.len() - 2`; the output layer is linear): a plain activation, a
    /// gated unit (whose linear map has `2 sizes[l + 1]` outputs), a learnable activation (whose parameter,
    /// `[1]` or `[sizes[l + 1]]`, starts at its `init`) or a randomized leaky ReLU (slopes drawn each training
    /// step from [`Mlp::noise_seed`], their mean outside training). Weights and biases come from [`init_layers`] with
    /// `seed`; everything is trained with `loss` and `optimizer`.
    ///
    /// A caller's mistake is a typed error whose `op` names the call made (`"Mlp::with_layers"`, or
    /// `"Mlp::new"`): [`Error::InvalidArgument`] for the sizes, the count of hidden layers, a layer's constants
    /// (the reason names the layer and its kind) or the optimizer's hyperparameters
    /// ([`Optimizer::validate`]'s rules), [`Error::LimitExceeded`] for a weight past one storage binding.
    pub fn with_layers(
        gpu: &Gpu,
        sizes: &[usize],
        hidden: &[Hidden],
        loss: Loss,
        optimizer: Optimizer,
        seed: u64,
    ) -> Result<Mlp> {
        Mlp::build(
            "Mlp::with_layers",
            gpu,
            sizes,
            hidden,
            loss,
            optimizer,
            seed,
        )
    }

    /// [`Mlp::with_layers`], its argument errors naming `op`, the public call that was made.
    pub(crate) fn build(
        op: &'static str,
        gpu: &Gpu,
        sizes: &[usize],
        hidden: &[Hidden],
        loss: Loss,
        optimizer: Optimizer,
        seed: u64,
    ) -> Result<Mlp> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::InvalidArgument {
                op,
                reason: format!("layer sizes {sizes:?}: need at least two, none zero"),
            });
        }
        if hidden.len() != sizes.len() - 2 {
            return Err(Error::InvalidArgument {
                op,
                reason: format!(
                    "{} hidden layers need {} activations, got {}",
                    sizes.len() - 2,
                    sizes.len() - 2,
                    hidden.len()
                ),
            });
        }
        for (l, kind) in hidden.iter().enumerate() {
            // The kind's own check names the activation in `op`; the caller called `op`, so it goes into the
            // reason instead.
            kind.validate().map_err(|e| match e {
                Error::InvalidArgument { reason, .. } => Error::InvalidArgument {
                    op,
                    reason: format!("hidden layer {l} ({}): {reason}", kind.name()),
                },
                other => other,
            })?;
        }
        optimizer.validate_for(op)?;
        check_weight_sizes(gpu, sizes, hidden)?;
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        for (l, (w, b)) in init_layers(sizes, hidden, seed).into_iter().enumerate() {
            let kind = hidden
                .get(l)
                .copied()
                .unwrap_or(Hidden::Act(Activation::Identity));
            let (fan_in, width) = (sizes[l], kind.linear_width(sizes[l + 1]));
            let w = gpu.upload_shaped(&w, &[fan_in, width])?;
            let b = gpu.upload(&b)?;
            let param = match kind {
                Hidden::Learnable { init, .. } => {
                    let p = gpu.upload(&vec![init; kind.param_len(sizes[l + 1])])?;
                    Some(ActParam {
                        dp: p.zeros_like()?,
                        state: optimizer.init_state(&p)?,
                        p,
                    })
                }
                _ => None,
            };
            layers.push(Layer {
                dense: Dense::new(kind.plain().unwrap_or(Activation::Identity)),
                kind,
                param,
                dw: w.zeros_like()?,
                db: b.zeros_like()?,
                w_state: optimizer.init_state(&w)?,
                b_state: optimizer.init_state(&b)?,
                w,
                b,
            });
        }
        Ok(Mlp {
            gpu: gpu.clone(),
            sizes: sizes.to_vec(),
            loss_fn: loss,
            optimizer,
            layers,
            step: 0,
            noise_seed: seed,
            loss: gpu.zeros(&[1], DType::F32)?,
            work: None,
            spare: None,
            infer: Mutex::new(None),
            infer_rows: None,
            train_rows: None,
            passes: None,
            diag: None,
        })
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The activation of each hidden layer (the output layer is linear). A gated, learnable or randomized leaky
    /// ReLU layer shows as
    /// [`Activation::Identity`], the activation its linear map runs with; [`Mlp::hidden`] gives every kind.
    pub fn activations(&self) -> Vec<Activation> {
        let hidden = self.layers.len() - 1;
        self.layers[..hidden]
            .iter()
            .map(|l| l.dense.activation)
            .collect()
    }

    /// The kind of each hidden layer, as [`Mlp::with_layers`] took it.
    pub fn hidden(&self) -> Vec<Hidden> {
        let hidden = self.layers.len() - 1;
        self.layers[..hidden].iter().map(|l| l.kind).collect()
    }

    /// The output width of layer `l`'s linear map: `2 sizes[l + 1]` for a gated layer, else `sizes[l + 1]`.
    pub fn linear_width(&self, l: usize) -> Option<usize> {
        self.layers
            .get(l)
            .map(|layer| layer.kind.linear_width(self.sizes[l + 1]))
    }

    /// The loss the network trains with.
    pub fn loss_fn(&self) -> Loss {
        self.loss_fn
    }

    /// The GPU context the network lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Updates done so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The seed of the randomized leaky ReLU layers' slopes ([`Hidden::Rrelu`]): step `s` draws layer `l`'s
    /// from [`crate::nn::rrelu_layer_seed`]`(noise_seed, s, l)`. The constructors' `seed`; 0 for a network
    /// loaded from weights; a training checkpoint keeps it. Networks without such a layer draw nothing.
    pub fn noise_seed(&self) -> u64 {
        self.noise_seed
    }

    /// Sets [`Mlp::noise_seed`] for the following steps.
    pub fn set_noise_seed(&mut self, seed: u64) {
        self.noise_seed = seed;
    }

    /// Each parameter tensor with its optimizer state, in the checkpoint's order: per layer W (`[in, out]`), b,
    /// then a learnable activation's parameter.
    pub(crate) fn optimizer_states(&self) -> Vec<(&Tensor, &OptimState)> {
        self.layers
            .iter()
            .flat_map(|l| {
                [(&l.w, &l.w_state), (&l.b, &l.b_state)]
                    .into_iter()
                    .chain(l.param.as_ref().map(|p| (&p.p, &p.state)))
            })
            .collect()
    }

    /// Sets the count of steps taken (the next step is `step + 1`: SGD's first momentum step and Adam's bias
    /// correction go by it), for a network whose optimizer state was loaded.
    pub(crate) fn set_steps(&mut self, step: u64) {
        self.step = step;
    }

    /// The optimizer (with its current learning rate).
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// Sets the learning rate of the following steps (a uniform value: nothing recompiles). A rate that is not
    /// finite or is negative is [`Error::InvalidArgument`] here (with `op` `"Mlp::set_lr"`), and the rate stays
    /// as it was.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        let mut changed = self.optimizer;
        changed.set_lr(lr);
        changed.validate_for("Mlp::set_lr")?;
        self.optimizer = changed;
        Ok(())
    }

    /// Layer `l`'s weight `[sizes[l], w]` and bias `[w]`, on the GPU, with `w` its [`Mlp::linear_width`].
    pub fn layer(&self, l: usize) -> Option<(&Tensor, &Tensor)> {
        self.layers.get(l).map(|layer| (&layer.w, &layer.b))
    }

    /// Layer `l`'s gradients `(dW, db)` from the last step, on the GPU.
    pub fn layer_grads(&self, l: usize) -> Option<(&Tensor, &Tensor)> {
        self.layers.get(l).map(|layer| (&layer.dw, &layer.db))
    }

    /// Every layer's `(W, b)` read back (blocks).
    pub fn params(&self) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        self.layers
            .iter()
            .map(|l| Ok((l.w.read::<f32>()?, l.b.read::<f32>()?)))
            .collect()
    }

    /// Layer `l`'s learnable activation parameter (`[1]` or `[sizes[l + 1]]`), on the GPU; `None` for a layer
    /// without one.
    pub fn activation_param(&self, l: usize) -> Option<&Tensor> {
        self.layers.get(l)?.param.as_ref().map(|p| &p.p)
    }

    /// The gradient of layer `l`'s learnable activation parameter from the last step, on the GPU.
    pub fn activation_param_grad(&self, l: usize) -> Option<&Tensor> {
        self.layers.get(l)?.param.as_ref().map(|p| &p.dp)
    }

    /// Every layer's learnable activation parameter read back (blocks): empty for layers without one.
    pub fn activation_params(&self) -> Result<Vec<Vec<f32>>> {
        self.layers
            .iter()
            .map(|l| match &l.param {
                Some(p) => p.p.read::<f32>(),
                None => Ok(Vec::new()),
            })
            .collect()
    }

    /// The batch size of `x [batch, sizes[0]]`, checked, its errors naming `op` (the public call).
    fn batch_of(&self, op: &'static str, x: &Tensor) -> Result<usize> {
        if !x.gpu().same_context(&self.gpu) {
            return Err(Error::DeviceMismatch { op });
        }
        if x.dtype() != DType::F32 {
            return Err(Error::DTypeMismatch {
                op,
                expected: DType::F32,
                got: x.dtype(),
            });
        }
        match *x.shape() {
            [batch, d] if d == self.sizes[0] && batch > 0 => Ok(batch),
            [0, d] if d == self.sizes[0] => Err(empty_batch(op)),
            _ => Err(Error::ShapeMismatch {
                op,
                expected: vec![
                    x.shape().first().copied().unwrap_or(0).max(1),
                    self.sizes[0],
                ],
                got: x.shape().to_vec(),
            }),
        }
    }

    /// Makes the training workspace one for `batch`: the current one, the one before it (the two swap), or
    /// a new one, which then keeps the current one as the spare.
    fn workspace(&mut self, batch: usize) -> Result<()> {
        if self.work.as_ref().is_some_and(|w| w.batch == batch) {
            return Ok(());
        }
        if self.spare.as_ref().is_some_and(|w| w.batch == batch) {
            std::mem::swap(&mut self.work, &mut self.spare);
            return Ok(());
        }
        // The older one goes first, so that no more than two are alive while the new one is made.
        self.spare = None;
        let new = self.new_workspace(batch, true)?;
        self.spare = self.work.replace(new);
        Ok(())
    }

    /// A workspace for `batch` rows: Y and the hidden layers' Z, and with `train` the gradients dY and dZ.
    fn new_workspace(&self, batch: usize, train: bool) -> Result<Workspace> {
        let mut work = Workspace {
            batch,
            y: Vec::new(),
            z: Vec::new(),
            dy: Vec::new(),
            dz: Vec::new(),
        };
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let units = self.sizes[l + 1];
            let shape = [batch, units];
            work.y.push(self.gpu.zeros(&shape, DType::F32)?);
            let zshape = [batch, layer.kind.linear_width(units)];
            // Inference needs Z only where the activation is a separate pass (gated, learnable, rrelu).
            let needs_z = l < last && (train || !matches!(layer.kind, Hidden::Act(_)));
            let z = needs_z
                .then(|| self.gpu.zeros(&zshape, DType::F32))
                .transpose()?;
            work.z.push(z);
            if train {
                work.dy.push(self.gpu.zeros(&shape, DType::F32)?);
                // dZ of every hidden layer, reused by every step (the linear output layer's dZ is its dY).
                let dz = (l < last)
                    .then(|| self.gpu.zeros(&zshape, DType::F32))
                    .transpose()?;
                work.dz.push(dz);
            }
        }
        Ok(work)
    }

    /// Records the forward pass of the batch `x` into `work`: in training (`draw` given, storing Z and drawing
    /// the randomized leaky ReLU layers' slopes) or in evaluation.
    fn record_forward(
        &self,
        enc: &mut wgpu::CommandEncoder,
        work: &Workspace,
        x: &Tensor,
        draw: Option<Draw>,
    ) -> Result<()> {
        for (l, layer) in self.layers.iter().enumerate() {
            let input = if l == 0 { x } else { &work.y[l - 1] };
            let (w, b, y) = (&layer.w, Some(&layer.b), &work.y[l]);
            match (layer.kind, work.z[l].as_ref(), layer.param.as_ref()) {
                (Hidden::Act(_), z, _) => {
                    let z = z.filter(|_| draw.is_some());
                    layer.dense.record_forward(enc, input, w, b, y, z)?;
                }
                (Hidden::Gated(gated), Some(z), _) => {
                    layer.dense.record_forward(enc, input, w, b, z, None)?;
                    gated.record_forward(enc, z, y)?;
                }
                (Hidden::Learnable { kind, .. }, Some(z), Some(p)) => {
                    layer.dense.record_forward(enc, input, w, b, z, None)?;
                    kind.record_forward(enc, z, &p.p, y)?;
                }
                (Hidden::Rrelu(r), Some(z), _) => {
                    layer.dense.record_forward(enc, input, w, b, z, None)?;
                    match draw {
                        Some(d) => {
                            let (seed, first) = self.draw_at(d, l)?;
                            r.record_at(enc, z, None, seed, first, y)?;
                        }
                        None => r.eval_activation().record_forward(enc, z, y)?,
                    }
                }
                _ => return Err(no_workspace()),
            }
        }
        Ok(())
    }

    /// Checks that `targets` fit the loss and a batch of `batch` rows, its errors naming `op` (the public call):
    /// everything the loss kernel would refuse, so that none of its errors, which name the loss, reaches the
    /// caller for a mistake of theirs.
    fn check_targets(&self, op: &'static str, targets: Targets, batch: usize) -> Result<()> {
        let out = self.sizes[self.sizes.len() - 1];
        match targets {
            Targets::Classes(labels) if labels.classes() != out => {
                return Err(Error::InvalidArgument {
                    op,
                    reason: format!(
                        "the labels were uploaded for {} classes, and the network has {out} outputs",
                        labels.classes()
                    ),
                })
            }
            Targets::Classes(labels) if labels.len() != batch => {
                return Err(Error::ShapeMismatch {
                    op,
                    expected: vec![batch],
                    got: vec![labels.len()],
                })
            }
            Targets::Values(t) if t.shape() != [batch, out] => {
                return Err(Error::ShapeMismatch {
                    op,
                    expected: vec![batch, out],
                    got: t.shape().to_vec(),
                })
            }
            // Checked here, not only by the loss: a step in passes copies the targets' rows as f32 first.
            Targets::Values(t) if t.dtype() != DType::F32 => {
                return Err(Error::DTypeMismatch {
                    op,
                    expected: DType::F32,
                    got: t.dtype(),
                })
            }
            _ => {}
        }
        // What the loss kernel would refuse next, naming the loss: targets of the other kind, or of another
        // context (a step in passes would copy from them first).
        self.loss_fn.check_target_kind(op, targets)?;
        let same_context = match targets {
            Targets::Classes(labels) => labels.same_context(&self.gpu),
            Targets::Values(t) => t.gpu().same_context(&self.gpu),
        };
        if !same_context {
            return Err(Error::DeviceMismatch { op });
        }
        Ok(())
    }

    /// One training step on the batch `x [batch, sizes[0]]` (f32) with `targets` (class indices `[batch]` for
    /// cross-entropy, values `[batch, sizes[-1]]` otherwise): forward, loss and its gradient, backward through
    /// every layer, then the optimizer's update of every weight and bias, recorded into one command buffer and
    /// submitted once. Returns without waiting for the device and reads nothing back. The network keeps its
    /// intermediate buffers for the last two batch sizes (an epoch's full batches and its shorter last one take
    /// turns without allocating); a third size allocates anew and drops the older of the two.
    ///
    /// Any batch size: a batch of more than [`Mlp::train_rows`] rows runs forward and backward in passes of at
    /// most that many rows (each pass's rows of `x` and of the targets copied out of them, which then need
    /// `COPY_SRC`, as the crate's own tensors and uploaded labels have), and each pass's mean gradients and loss
    /// are added up weighted by its share of the batch, `g = sum_p (rows_p / batch) g_p`, before the one update:
    /// the batch's mean gradient, in another summation order than one pass would take (the last bits differ).
    /// (A randomized leaky ReLU layer numbers its draws over the batch, so its batch of `u` units is limited to
    /// fewer than `2^32` elements, [`Error::LimitExceeded`] past it.)
    /// Still one submission. The diagnostics count over the whole batch.
    ///
    /// A caller's mistake is a typed error with `op` `"Mlp::train_step"`: `x` or the targets from another
    /// context ([`Error::DeviceMismatch`]), not f32 ([`Error::DTypeMismatch`]) or of the wrong shape
    /// ([`Error::ShapeMismatch`]), an empty batch, targets of the wrong kind for the loss or labels uploaded for
    /// another class count ([`Error::InvalidArgument`]), a source without `COPY_SRC` where passes need it
    /// ([`Error::MissingUsage`]).
    pub fn train_step(&mut self, x: &Tensor, targets: Targets) -> Result<()> {
        self.train_step_for("Mlp::train_step", x, targets)
    }

    /// [`Mlp::train_step`], its errors naming `op`, the public call that was made.
    fn train_step_for(&mut self, op: &'static str, x: &Tensor, targets: Targets) -> Result<()> {
        let batch = self.batch_of(op, x)?;
        self.check_targets(op, targets, batch)?;
        let rows = self.train_rows().min(batch);
        if rows < batch {
            self.pass_buffers(op, x, targets, rows)?;
        }
        if self.diag.is_some() {
            self.check_counted(batch)?;
        }
        self.workspace(rows)?;
        let gpu = self.gpu.clone();
        gpu.check_lost()?;
        // (Saturating: past u32::MAX steps the optimizer's own check refuses the step.)
        let step = self.step.saturating_add(1);
        let device = gpu.device();
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("actgpu.mlp.train_step"),
        });
        let recorded = if rows < batch {
            self.record_step_in_passes(&mut enc, x, targets, step, batch)
        } else {
            self.record_step(&mut enc, x, targets, step)
        };
        if recorded.is_ok() {
            gpu.queue().submit([enc.finish()]);
        }
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        recorded?;
        if let Some(err) = oom.or(validation) {
            return Err(Error::Wgpu {
                op,
                message: err.to_string(),
            });
        }
        self.step = step;
        if let Some(d) = &mut self.diag {
            d.last = Some((step, batch));
        }
        Ok(())
    }

    /// Turns the per-layer diagnostics on or off ([`crate::nn::diagnostics`]). On, every following
    /// [`Mlp::train_step`] also gathers each layer's gradient norms (a learnable activation parameter's too)
    /// and dead / saturated counts (plain activations only) in the kernels it runs anyway; off (the default), the step runs exactly as without them. Turning them on allocates a
    /// few small buffers; turning them off frees them.
    pub fn set_diagnostics(&mut self, on: bool) -> Result<()> {
        if !on {
            self.diag = None;
        } else if self.diag.is_none() {
            let shapes: Vec<(usize, usize, usize, bool)> = self
                .layers
                .iter()
                .map(|l| {
                    (
                        l.w.len(),
                        l.b.len(),
                        l.param.as_ref().map_or(0, |p| p.p.len()),
                        // The identity's backward forms no dZ (it is dY), so nothing marks its neurons: none
                        // is ever dead there.
                        matches!(l.kind, Hidden::Act(a) if a != Activation::Identity),
                    )
                })
                .collect();
            self.diag = Some(Diagnostics::new(&self.gpu, &shapes)?);
        }
        Ok(())
    }

    /// Whether [`Mlp::set_diagnostics`] turned the diagnostics on.
    pub fn diagnostics_enabled(&self) -> bool {
        self.diag.is_some()
    }

    /// Each layer's diagnostics from the last training step, input layer first, read back in one submission
    /// (waits for the device). `Err` when they are off or no step has run since they were turned on.
    pub fn diagnostics(&self) -> Result<Vec<LayerDiagnostics>> {
        let diag = self.diag.as_ref().ok_or(Error::InvalidArgument {
            op: "Mlp::diagnostics",
            reason: "diagnostics are off: call set_diagnostics(true) before the step".into(),
        })?;
        Ok(diag.read(&self.gpu, &self.widths())?.0)
    }

    /// The L2 norm of each layer's learnable activation parameter gradient `‖dp‖_2` from the last training
    /// step (`None` for layers without one), gathered with the other diagnostics by the parameter's update
    /// (waits for the device). `Err` as [`Mlp::diagnostics`].
    pub fn activation_param_grad_norms(&self) -> Result<Vec<Option<f64>>> {
        let diag = self.diag.as_ref().ok_or(Error::InvalidArgument {
            op: "Mlp::activation_param_grad_norms",
            reason: "diagnostics are off: call set_diagnostics(true) before the step".into(),
        })?;
        Ok(diag.read(&self.gpu, &self.widths())?.1)
    }

    /// Every layer's linear width (the columns of its Z).
    fn widths(&self) -> Vec<usize> {
        (0..self.layers.len())
            .map(|l| self.layers[l].kind.linear_width(self.sizes[l + 1]))
            .collect()
    }

    /// The step on the whole batch in one pass: gradients into the layers' own tensors, the loss into the
    /// network's.
    fn record_step(
        &self,
        enc: &mut wgpu::CommandEncoder,
        x: &Tensor,
        targets: Targets,
        step: u64,
    ) -> Result<()> {
        let work = self.work.as_ref().ok_or_else(no_workspace)?;
        if let Some(d) = self.diag.as_ref() {
            d.record_clear(enc)?;
        }
        let out = GradsOut {
            layers: self
                .layers
                .iter()
                .map(|l| (&l.dw, &l.db, l.param.as_ref().map(|p| &p.dp)))
                .collect(),
            loss: &self.loss,
        };
        let draw = Draw { step, first_row: 0 };
        self.record_pass(enc, work, x, targets, &out, draw)?;
        self.record_updates(enc, step)
    }

    /// The step in passes of the pass buffers' rows: each pass's rows of `x` and of the targets copied into the
    /// pass buffers, forward and backward with its gradients and loss into the pass buffers, then added into the
    /// layers' gradients and the network's loss weighted by `rows_p / batch`; then the one update.
    fn record_step_in_passes(
        &self,
        enc: &mut wgpu::CommandEncoder,
        x: &Tensor,
        targets: Targets,
        step: u64,
        batch: usize,
    ) -> Result<()> {
        let work = self.work.as_ref().ok_or_else(no_workspace)?;
        let pass = self.passes.as_ref().ok_or_else(no_workspace)?;
        if let Some(d) = self.diag.as_ref() {
            d.record_clear(enc)?;
        }
        let out = GradsOut {
            layers: pass
                .grads
                .iter()
                .map(|(dw, db, dp)| (dw, db, dp.as_ref()))
                .collect(),
            loss: &pass.loss,
        };
        let (d, width) = (self.sizes[0], self.sizes[self.sizes.len() - 1]);
        let bytes = |rows: usize, w: usize| (rows * w * 4) as u64;
        for first in (0..batch).step_by(pass.rows) {
            let n = pass.rows.min(batch - first);
            let input = pass.x.rows_prefix(n)?;
            enc.copy_buffer_to_buffer(x.buffer(), bytes(first, d), input.buffer(), 0, bytes(n, d));
            let (source, w) = match targets {
                Targets::Classes(labels) => (labels.buffer(), 1),
                Targets::Values(t) => (t.buffer(), width),
            };
            let target = pass.targets.rows_prefix(n)?;
            enc.copy_buffer_to_buffer(source, bytes(first, w), target.buffer(), 0, bytes(n, w));
            let labels;
            let targets = if pass.classes {
                labels = Labels::from_buffer(&self.gpu, target.buffer().clone(), n, width)?;
                Targets::Classes(&labels)
            } else {
                Targets::Values(&target)
            };
            let short = (n < pass.rows).then(|| work.rows_prefix(n)).transpose()?;
            let draw = Draw {
                step,
                first_row: first,
            };
            let work = short.as_ref().unwrap_or(work);
            self.record_pass(enc, work, &input, targets, &out, draw)?;
            let (weight, first) = ((n as f64 / batch as f64) as f32, first == 0);
            for (layer, (dw, db, dp)) in self.layers.iter().zip(&out.layers) {
                Recording::atomic(enc, |rec| {
                    record_accumulate(rec, &layer.dw, dw, weight, first)
                })?;
                Recording::atomic(enc, |rec| {
                    record_accumulate(rec, &layer.db, db, weight, first)
                })?;
                if let (Some(p), Some(dp)) = (&layer.param, dp) {
                    Recording::atomic(enc, |rec| record_accumulate(rec, &p.dp, dp, weight, first))?;
                }
            }
            Recording::atomic(enc, |rec| {
                record_accumulate(rec, &self.loss, &pass.loss, weight, first)
            })?;
        }
        self.record_updates(enc, step)
    }

    /// One pass: forward, the loss and its gradient, backward through every layer, writing the gradients and
    /// the loss where `out` says (the diagnostics' counters add up over passes).
    fn record_pass(
        &self,
        enc: &mut wgpu::CommandEncoder,
        work: &Workspace,
        x: &Tensor,
        targets: Targets,
        out: &GradsOut,
        draw: Draw,
    ) -> Result<()> {
        self.record_forward(enc, work, x, Some(draw))?;
        let last = self.layers.len() - 1;
        self.loss_fn
            .record(enc, &work.y[last], targets, &work.dy[last], out.loss)?;
        let diag = self.diag.as_ref();
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let input = if l == 0 { x } else { &work.y[l - 1] };
            let dx = (l > 0).then(|| &work.dy[l - 1]);
            let (dw, db, dp) = out.layers[l];
            let (w, db, dy) = (&layer.w, Some(db), &work.dy[l]);
            // The output layer is linear: its Z is its Y.
            let z = work.z[l].as_ref().unwrap_or(&work.y[l]);
            match (layer.kind, work.dz[l].as_ref(), layer.param.as_ref(), dp) {
                (Hidden::Act(_), dz, _, _) => layer.dense.record_backward_using(
                    enc,
                    input,
                    w,
                    z,
                    dy,
                    dw,
                    db,
                    dx,
                    diag.map(|d| &d.layers[l].counts),
                    dz,
                )?,
                (Hidden::Gated(gated), Some(dz), _, _) => {
                    gated.record_backward(enc, z, dy, dz)?;
                    Recording::atomic(enc, |rec| {
                        layer
                            .dense
                            .record_backward_from_dz(rec, input, w, dz, dw, db, dx)
                    })?;
                }
                (Hidden::Learnable { kind, .. }, Some(dz), Some(p), Some(dp)) => {
                    kind.record_backward(enc, z, &p.p, dy, dz, dp)?;
                    Recording::atomic(enc, |rec| {
                        layer
                            .dense
                            .record_backward_from_dz(rec, input, w, dz, dw, db, dx)
                    })?;
                }
                (Hidden::Rrelu(r), Some(dz), _, _) => {
                    let (seed, first) = self.draw_at(draw, l)?;
                    r.record_at(enc, z, Some(dy), seed, first, dz)?;
                    Recording::atomic(enc, |rec| {
                        layer
                            .dense
                            .record_backward_from_dz(rec, input, w, dz, dw, db, dx)
                    })?;
                }
                _ => return Err(no_workspace()),
            }
        }
        Ok(())
    }

    /// Layer `l`'s randomized leaky ReLU draw in a pass: its seed, and the index of the pass's first element in
    /// the batch ([`Error::LimitExceeded`] past 2^32).
    fn draw_at(&self, draw: Draw, l: usize) -> Result<(u64, u32)> {
        let first = draw.first_row.saturating_mul(self.sizes[l + 1]);
        let first = u32::try_from(first).map_err(|_| Error::LimitExceeded {
            limit: "elements of a randomized leaky ReLU layer's batch (u32 draw indices)",
            max: u64::from(u32::MAX),
            requested: first as u64,
        })?;
        Ok((
            crate::nn::rrelu_layer_seed(self.noise_seed, draw.step, l),
            first,
        ))
    }

    /// The optimizer's update of every parameter tensor from the layers' gradients (with the diagnostics'
    /// gradient norms where they are on).
    fn record_updates(&self, enc: &mut wgpu::CommandEncoder, step: u64) -> Result<()> {
        let diag = self.diag.as_ref();
        for (l, layer) in self.layers.iter().enumerate() {
            let (wp, bp, pp) = match diag {
                Some(d) => {
                    let d = &d.layers[l];
                    (
                        Some(&d.w_partials),
                        Some(&d.b_partials),
                        d.p_partials.as_ref(),
                    )
                }
                None => (None, None, None),
            };
            let opt = &self.optimizer;
            opt.record_update_with_norm(enc, &layer.w, &layer.dw, &layer.w_state, step, wp)?;
            opt.record_update_with_norm(enc, &layer.b, &layer.db, &layer.b_state, step, bp)?;
            if let Some(p) = &layer.param {
                opt.record_update_with_norm(enc, &p.p, &p.dp, &p.state, step, pp)?;
            }
        }
        Ok(())
    }

    /// The diagnostics count a step's elements per layer in 32-bit counters, adding over its passes: a batch
    /// whose widest layer has 2^32 elements or more would wrap them, and is [`Error::LimitExceeded`] while they
    /// are on.
    fn check_counted(&self, batch: usize) -> Result<()> {
        // Only plain activations other than the identity are counted (see `set_diagnostics`).
        let widest = (0..self.layers.len())
            .filter(|&l| matches!(self.layers[l].kind, Hidden::Act(a) if a != Activation::Identity))
            .map(|l| self.sizes[l + 1])
            .max()
            .unwrap_or(0);
        crate::ops::dz_stats::check_countable((batch as u64).saturating_mul(widest as u64))
    }

    /// Makes the pass buffers ones for passes of `rows` rows and `targets`' kind (keeping the current ones where
    /// they are), after checking that `x` and the targets can be copied from (an error naming `op`).
    fn pass_buffers(
        &mut self,
        op: &'static str,
        x: &Tensor,
        targets: Targets,
        rows: usize,
    ) -> Result<()> {
        let (source, classes) = match targets {
            Targets::Classes(labels) => (labels.buffer(), true),
            Targets::Values(t) => (t.buffer(), false),
        };
        for buffer in [x.buffer(), source] {
            let missing = wgpu::BufferUsages::COPY_SRC - buffer.usage();
            if !missing.is_empty() {
                return Err(Error::MissingUsage {
                    op,
                    missing: format!("{missing:?}"),
                });
            }
        }
        if self
            .passes
            .as_ref()
            .is_some_and(|p| p.rows == rows && p.classes == classes)
        {
            return Ok(());
        }
        self.passes = None;
        let gpu = &self.gpu;
        let out = self.sizes[self.sizes.len() - 1];
        let grads = self
            .layers
            .iter()
            .map(|l| {
                Ok((
                    l.dw.zeros_like()?,
                    l.db.zeros_like()?,
                    l.param.as_ref().map(|p| p.dp.zeros_like()).transpose()?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.passes = Some(PassBuffers {
            rows,
            x: gpu.zeros(&[rows, self.sizes[0]], DType::F32)?,
            targets: if classes {
                gpu.zeros(&[rows], DType::F32)?
            } else {
                gpu.zeros(&[rows, out], DType::F32)?
            },
            classes,
            grads,
            loss: gpu.zeros(&[1], DType::F32)?,
        });
        Ok(())
    }

    /// [`Mlp::train_step`] from host data: `x` row-major `[batch, sizes[0]]` and class indices (checked against
    /// the output size). Its errors name `"Mlp::train_step_classes"`.
    pub fn train_step_classes(&mut self, x: &[f32], labels: &[u32]) -> Result<()> {
        const OP: &str = "Mlp::train_step_classes";
        let x = self.upload_batch(OP, x)?;
        let classes = self.sizes[self.sizes.len() - 1];
        let labels = Labels::upload_for(OP, &self.gpu, labels, classes)?;
        self.train_step_for(OP, &x, Targets::Classes(&labels))
    }

    /// `x` as `[batch, sizes[0]]` on the GPU; a length that is not a whole number of rows is an error naming `op`.
    fn upload_batch(&self, op: &'static str, x: &[f32]) -> Result<Tensor> {
        let d = self.sizes[0];
        if x.is_empty() {
            return Err(empty_batch(op));
        }
        if !x.len().is_multiple_of(d) {
            return Err(Error::ShapeMismatch {
                op,
                expected: vec![x.len().div_ceil(d).max(1), d],
                got: vec![x.len()],
            });
        }
        self.gpu.upload_shaped(x, &[x.len() / d, d])
    }

    /// The mean loss of the last step, read back (waits for the device). `Err` before the first step.
    pub fn loss(&self) -> Result<f32> {
        if self.step == 0 {
            return Err(Error::InvalidArgument {
                op: "Mlp::loss",
                reason: "no training step has run yet".into(),
            });
        }
        Ok(self.loss.read::<f32>()?[0])
    }

    /// The last step's loss tensor (`[1]`, on the GPU).
    pub fn loss_tensor(&self) -> &Tensor {
        &self.loss
    }

    /// The network's output (logits) for `x [batch, sizes[0]]`, `[batch, sizes[-1]]`; submits and waits.
    ///
    /// Any batch size: the rows go through the network in passes of at most [`Mlp::inference_rows`] rows (each
    /// pass's rows copied out of `x`, which then needs `COPY_SRC`, as the crate's own tensors have), so the
    /// buffers inference keeps (each layer's output, and Z where a gated, learnable or randomized leaky ReLU layer needs it) hold at
    /// most that many rows, and a set larger than one storage binding still runs. They are kept for the next
    /// call, beside the training step's, until [`Mlp::free_workspaces`] or the network is dropped. Each row's
    /// output depends only on that row, though a pass's size can change the order a product sums in (a
    /// different kernel or split), so outputs can differ in the last bits between pass sizes.
    ///
    /// Takes `&self`: threads sharing the network (an `Arc<Mlp>`, say) may predict at once. A call takes the
    /// kept buffers for the length of its GPU work; a call that finds them taken by another, still running,
    /// makes a set of its own for that call, so concurrent calls never write into each other's buffers, and
    /// give the outputs they would give one at a time. One set is kept afterwards (the first put back), so the
    /// buffers kept stay bounded whatever the number of threads; a caller that wants no allocation at all from
    /// concurrent calls gives each thread its own network, or takes turns.
    ///
    /// A caller's mistake is a typed error with `op` `"Mlp::predict"`: `x` from another context
    /// ([`Error::DeviceMismatch`]), not f32 ([`Error::DTypeMismatch`]), not `[batch, sizes[0]]`
    /// ([`Error::ShapeMismatch`]), an empty batch (`batch` 0, [`Error::InvalidArgument`]), or without `COPY_SRC`
    /// where passes need it ([`Error::MissingUsage`]).
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.predict_for("Mlp::predict", x)
    }

    /// What the network's loss reads its outputs as, for `x [batch, sizes[0]]`, computed on the GPU: under
    /// [`Loss::SoftmaxCrossEntropy`] each row's class probabilities (softmax of its logits,
    /// [`crate::SoftmaxKind::Softmax`]), under [`Loss::BceWithLogits`] each output's probability of 1 (its
    /// sigmoid); submits and waits. Runs as [`Mlp::predict`] does (then one more submission for the softmax or
    /// sigmoid), its errors naming `"Mlp::predict_probabilities"` where they are the caller's (those of
    /// [`Mlp::predict`]); under [`Loss::Mse`], whose outputs are values rather than logits,
    /// [`Error::InvalidArgument`].
    pub fn predict_probabilities(&self, x: &Tensor) -> Result<Tensor> {
        const OP: &str = "Mlp::predict_probabilities";
        let read_as = |loss: Loss| match loss {
            Loss::SoftmaxCrossEntropy => Ok(true),
            Loss::BceWithLogits => Ok(false),
            Loss::Mse => Err(Error::InvalidArgument {
                op: OP,
                reason: "a network trained with MSE outputs values, not logits: use predict".into(),
            }),
        };
        let softmax = read_as(self.loss_fn())?;
        let logits = self.predict_for(OP, x)?;
        if softmax {
            let p = logits.zeros_like()?;
            self.gpu.submit_and_wait(OP, |enc| {
                crate::SoftmaxKind::Softmax.record_forward(enc, &logits, &p)
            })?;
            return Ok(p);
        }
        // A fresh tensor of predict_for's own: nothing else holds it.
        self.gpu.submit_and_wait(OP, |enc| {
            Activation::Sigmoid.record_forward_inplace(enc, &logits)
        })?;
        Ok(logits)
    }

    /// [`Mlp::predict`], its errors naming `op`, the public call that was made.
    fn predict_for(&self, op: &'static str, x: &Tensor) -> Result<Tensor> {
        let batch = self.batch_of(op, x)?;
        let rows = self.inference_rows().min(batch);
        if rows < batch {
            let missing = wgpu::BufferUsages::COPY_SRC - x.buffer().usage();
            if !missing.is_empty() {
                return Err(Error::MissingUsage {
                    op,
                    missing: format!("{missing:?}"),
                });
            }
        }
        // The kept buffers, taken out of the cache (the lock is held for this statement only): no other call can
        // reach them until they are put back, after this call's GPU work has finished.
        let kept = self.infer_cache().take();
        let work = match kept {
            Some(work) if work.batch == rows => work,
            other => {
                // Buffers of another size go first, so that two sets are never alive at once on one thread.
                drop(other);
                self.new_workspace(rows, false)?
            }
        };
        let (d, classes) = (self.sizes[0], self.sizes[self.sizes.len() - 1]);
        let out = self.gpu.zeros(&[batch, classes], DType::F32)?;
        // A pass of more than one takes its rows from a copy of x's rows.
        let staged = (rows < batch)
            .then(|| self.gpu.zeros(&[rows, d], DType::F32))
            .transpose()?;
        self.gpu.submit_and_wait(op, |enc| {
            for first in (0..batch).step_by(rows) {
                let n = rows.min(batch - first);
                let (input, pass) = match &staged {
                    None => (x.clone(), None),
                    Some(s) => {
                        let bytes = |r: usize, w: usize| (r * w * 4) as u64;
                        let input = s.rows_prefix(n)?;
                        enc.copy_buffer_to_buffer(
                            x.buffer(),
                            bytes(first, d),
                            input.buffer(),
                            0,
                            bytes(n, d),
                        );
                        (input, (n < rows).then(|| work.rows_prefix(n)).transpose()?)
                    }
                };
                let work = pass.as_ref().unwrap_or(&work);
                self.record_forward(enc, work, &input, None)?;
                let y = work.y[work.y.len() - 1].buffer();
                let size = (n * classes * 4) as u64;
                enc.copy_buffer_to_buffer(y, 0, out.buffer(), (first * classes * 4) as u64, size);
            }
            Ok(())
        })?;
        // The GPU work that used them has finished (`submit_and_wait` returned Ok: on an error the submission
        // may still be running, and the buffers are dropped instead). Another call's set, put back first, stays.
        let mut cache = self.infer_cache();
        if cache.is_none() {
            *cache = Some(work);
        }
        Ok(out)
    }

    /// The inference cache, locked. A lock poisoned by a thread that panicked while holding it is recovered: the
    /// cache holds only scratch buffers, which every call writes before it reads them, and the lock is held
    /// only to take them or put them back, so a panic cannot leave them half made.
    fn infer_cache(&self) -> MutexGuard<'_, Option<Workspace>> {
        self.infer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most rows [`Mlp::predict`] and [`Mlp::evaluate`] put through the network in one pass: set by
    /// [`Mlp::set_inference_rows`], else as many as keep every pass's widest tensor (the input, or a layer's
    /// output or Z) within 64 MiB and one storage binding (at least 1).
    pub fn inference_rows(&self) -> usize {
        if let Some(rows) = self.infer_rows {
            return rows;
        }
        self.rows_within(
            INFERENCE_PASS_BYTES.min(self.gpu.limits().max_storage_buffer_binding_size),
        )
    }

    /// Sets the most rows one inference pass takes ([`Mlp::inference_rows`]); `None` restores the default.
    /// [`Error::InvalidArgument`] for `Some(0)`.
    pub fn set_inference_rows(&mut self, rows: Option<usize>) -> Result<()> {
        self.infer_rows = pass_rows("Mlp::set_inference_rows", rows)?;
        Ok(())
    }

    /// The most rows one pass of [`Mlp::train_step`] takes: set by [`Mlp::set_train_rows`], else as many as keep
    /// every pass's widest tensor (the input, or a layer's output, Z or their gradients) within one storage
    /// binding (at least 1). A batch that fits one binding therefore trains in one pass, as it always has; a
    /// larger one runs in passes instead of being refused.
    pub fn train_rows(&self) -> usize {
        if let Some(rows) = self.train_rows {
            return rows;
        }
        self.rows_within(self.gpu.limits().max_storage_buffer_binding_size)
    }

    /// Sets the most rows one training pass takes ([`Mlp::train_rows`]); `None` restores the default.
    /// [`Error::InvalidArgument`] for `Some(0)`.
    pub fn set_train_rows(&mut self, rows: Option<usize>) -> Result<()> {
        self.train_rows = pass_rows("Mlp::set_train_rows", rows)?;
        Ok(())
    }

    /// The most rows (at least 1) whose widest tensor of a pass (the input, or a layer's output or linear width,
    /// in f32) fits `bytes`.
    fn rows_within(&self, bytes: u64) -> usize {
        let widest = self
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| layer.kind.linear_width(self.sizes[l + 1]))
            .chain(self.sizes.iter().copied())
            .max()
            .unwrap_or(1) as u64;
        (bytes / (4 * widest)).max(1) as usize
    }

    /// Drops the buffers kept between calls (the training step's for the last two batch sizes and its pass
    /// buffers, inference's): the next step or prediction allocates what it needs again. The weights, optimizer
    /// state, last loss and diagnostics stay.
    pub fn free_workspaces(&mut self) {
        self.work = None;
        self.spare = None;
        // `&mut self`: no call holds the lock or the buffers now (a poisoned lock is recovered, as everywhere).
        *self.infer.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        self.passes = None;
    }

    /// Classification accuracy on `x [batch, sizes[0]]` against class indices: the fraction of rows whose
    /// largest output (first on ties; with one output, `output > 0` as class 1) is the label; a row with a NaN
    /// output counts as wrong. A label past the classes is `InvalidArgument`. Takes `&self` and runs as
    /// [`Mlp::predict`] does (threads may evaluate at once); its errors name `"Mlp::evaluate"`: those of
    /// [`Mlp::predict`] for `x`, [`Error::ShapeMismatch`] for a label count other than the rows.
    pub fn evaluate(&self, x: &Tensor, labels: &[u32]) -> Result<f32> {
        const OP: &str = "Mlp::evaluate";
        let batch = self.batch_of(OP, x)?;
        if labels.len() != batch {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: vec![batch],
                got: vec![labels.len()],
            });
        }
        let out = self.sizes[self.sizes.len() - 1];
        // One output is a binary classifier (classes 0 and 1).
        let classes = out.max(2);
        if let Some(&bad) = labels.iter().find(|&&t| t as usize >= classes) {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!("label {bad} is not below the {classes} classes"),
            });
        }
        let logits: Vec<f32> = self.predict_for(OP, x)?.read()?;
        // A row with a NaN output is wrong whatever its label (argmax would read it as class 0).
        let correct = logits
            .chunks(out)
            .zip(labels)
            .filter(|(row, &t)| !row.iter().any(|v| v.is_nan()) && argmax(row) == t as usize)
            .count();
        Ok(correct as f32 / batch as f32)
    }
}

/// An empty batch, refused by every step, prediction and accuracy ([`Error::InvalidArgument`]): a mean loss over
/// no rows has no value, and an accuracy none either.
fn empty_batch(op: &'static str) -> Error {
    Error::InvalidArgument {
        op,
        reason:
            "an empty batch (0 rows): a step, a prediction and an accuracy need at least one row"
                .into(),
    }
}

/// `rows` as the rows of a pass: [`Error::InvalidArgument`] for `Some(0)`.
fn pass_rows(op: &'static str, rows: Option<usize>) -> Result<Option<usize>> {
    if rows == Some(0) {
        return Err(Error::InvalidArgument {
            op,
            reason: "a pass needs at least one row".into(),
        });
    }
    Ok(rows)
}

/// A buffer the network keeps is missing where a step records: a bug of this module, never a caller's mistake.
fn no_workspace() -> Error {
    Error::InvalidArgument {
        op: "Mlp",
        reason: "no workspace".into(),
    }
}

/// Index of the largest value (the first on ties); a single value counts as class `1` when positive.
fn argmax(row: &[f32]) -> usize {
    if row.len() == 1 {
        return usize::from(row[0] > 0.0);
    }
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::Mlp;
    use crate::{Activation, Gpu, Loss, Optimizer, Sgd, Tensor};

    /// A trained 3-5-2 network and a batch of 7 rows for it.
    fn trained() -> (Gpu, Mlp, Tensor) {
        let gpu = Gpu::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
        let (ce, opt) = (Loss::SoftmaxCrossEntropy, Optimizer::Sgd(Sgd::new(0.1)));
        let mut net = Mlp::new(&gpu, &[3, 5, 2], &[Activation::Gelu], ce, opt, 1).unwrap();
        net.train_step_classes(&[0.5, -0.25, 1.0, 0.75, 0.0, -1.0], &[0, 1])
            .unwrap();
        let x: Vec<f32> = (0..21).map(|i| (i as f32 - 10.0) / 7.0).collect();
        let x = gpu.upload_shaped(&x, &[7, 3]).unwrap();
        (gpu, net, x)
    }

    fn output_bits(net: &Mlp, x: &Tensor) -> Vec<u32> {
        let out: Vec<f32> = net.predict(x).unwrap().read().unwrap();
        out.iter().map(|v| v.to_bits()).collect()
    }

    /// The buffer of the kept inference workspace's first output, if one is kept.
    fn kept(net: &Mlp) -> Option<wgpu::Buffer> {
        net.infer_cache().as_ref().map(|w| w.y[0].buffer().clone())
    }

    /// A prediction that finds the kept buffers taken (by a call still running on another thread) makes its own
    /// and gives the same output; it puts them back only where the cache is empty, so that one set is kept.
    #[test]
    fn a_prediction_while_another_holds_the_buffers_makes_its_own() {
        let (_gpu, net, x) = trained();
        let want = output_bits(&net, &x);
        let first = kept(&net).expect("the call keeps its buffers");
        // As a call in flight would: the buffers out of the cache.
        let taken = net.infer_cache().take();
        assert_eq!(output_bits(&net, &x), want);
        let second = kept(&net).expect("its own set went back into the empty cache");
        assert_ne!(first, second);
        // The call in flight finishes, finds the cache full and drops its set; the next call takes the kept one.
        let mut cache = net.infer_cache();
        if cache.is_none() {
            *cache = taken;
        }
        drop(cache);
        assert_eq!(output_bits(&net, &x), want);
        assert_eq!(kept(&net), Some(second));
    }

    /// A thread that panicked holding the inference lock poisons it; later calls recover it (they neither panic
    /// nor fail) and give the same outputs, and `free_workspaces` still drops the buffers.
    #[test]
    fn a_poisoned_inference_lock_is_recovered() {
        let (_gpu, mut net, x) = trained();
        let want = output_bits(&net, &x);
        let accuracy = net.evaluate(&x, &[0, 1, 1, 0, 1, 0, 0]).unwrap();
        std::thread::scope(|scope| {
            let poisoner = scope.spawn(|| {
                let _held = net.infer.lock().unwrap();
                panic!("poisoning the inference lock on purpose");
            });
            assert!(poisoner.join().is_err());
        });
        assert!(net.infer.is_poisoned());
        assert_eq!(output_bits(&net, &x), want);
        assert_eq!(net.evaluate(&x, &[0, 1, 1, 0, 1, 0, 0]).unwrap(), accuracy);
        assert!(kept(&net).is_some());
        net.free_workspaces();
        assert!(kept(&net).is_none());
        assert_eq!(output_bits(&net, &x), want);
    }

    /// Inference on another batch size keeps its own buffers: the training workspace, its batch size and its
    /// tensors, stay as the last step left them.
    #[test]
    fn inference_leaves_the_training_workspace_alone() {
        let gpu = Gpu::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
        let (ce, opt) = (Loss::SoftmaxCrossEntropy, Optimizer::Sgd(Sgd::new(0.1)));
        let mut net = Mlp::new(&gpu, &[3, 5, 2], &[Activation::Gelu], ce, opt, 1).unwrap();
        net.train_step_classes(&[0.5; 12], &[0, 1, 1, 0]).unwrap();
        let buffer = |net: &Mlp| {
            net.work
                .as_ref()
                .map(|w| (w.batch, w.dy[0].buffer().clone()))
        };
        let before = buffer(&net);
        let x = gpu.upload_shaped(&[0.25f32; 9], &[3, 3]).unwrap();
        net.predict(&x).unwrap();
        assert_eq!(buffer(&net), before);
        assert_eq!(
            net.infer_cache().as_ref().map(|w| (w.batch, w.dy.len())),
            Some((3, 0))
        );
        // A shorter batch, then the full size again: the full size's buffers come back, not new ones; a third
        // size drops the oldest.
        net.train_step_classes(&[0.5; 6], &[0, 1]).unwrap();
        assert_eq!(buffer(&net).map(|b| b.0), Some(2));
        net.train_step_classes(&[0.5; 12], &[0, 1, 1, 0]).unwrap();
        assert_eq!(buffer(&net), before);
        net.train_step_classes(&[0.5; 3], &[1]).unwrap();
        assert_eq!(net.spare.as_ref().map(|w| w.batch), Some(4));
        net.train_step_classes(&[0.5; 6], &[0, 1]).unwrap();
        assert_eq!(
            (
                buffer(&net).map(|b| b.0),
                net.spare.as_ref().map(|w| w.batch)
            ),
            (Some(2), Some(1))
        );
    }
}
