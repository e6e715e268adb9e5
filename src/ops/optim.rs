//! Optimizer updates (`shaders/optim.wgsl`): one fused kernel per parameter tensor, f32, as `torch.optim`
//! defines SGD, Adam and AdamW.
//!
//! The learning rate, the step count and every other hyperparameter go into the kernel's uniform block, written
//! afresh with each recorded update, so they can change between steps without recompiling: the pipeline key names
//! only the entry point (`sgd`, `sgd_momentum` or `adam`, or their `*_norm` variants, which also carry
//! `NORM_PER_THREAD`) and the workgroup size.
//!
//! [`Optimizer::record_update_with_norm`] runs the same update through an entry point that also writes, per
//! thread, the sum of the squared gradients it read: the partial sums of `||grad||^2` (the raw gradient,
//! before weight decay), so a gradient norm costs no extra pass over memory. [`norm_partials`] says how many
//! partial sums a tensor needs; [`sum_partials`] adds them in f64.
//!
//! A tensor larger than one storage binding is updated in chunks, one dispatch each, bound at aligned offsets
//! (so an Adam update of a 4 GiB embedding table runs where the device binds at most 2 GiB at a time). Each chunk
//! holds whole blocks of a workgroup's elements, so its partial sums cover the same elements in the same order
//! as one dispatch would, and the update and the norm are the same bits either way.

use super::elementwise::{bound_bytes, check_vectors, dispatch};
use super::matmul::{check_distinct, expect_shape};
use super::recording::Recording;
use crate::dispatch::grid;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{DType, Error, Gpu, Result, Tensor};

/// Stochastic gradient descent, as `torch.optim.SGD`:
///
/// ```text
/// g = grad + weight_decay p
/// b = g (step 1), else momentum b + (1 - dampening) g      (only when momentum != 0)
/// g = g + momentum b (nesterov), else b
/// p = p - lr g
/// ```
///
/// The momentum buffer is f32: where `b` or `g + momentum b` passes f32::MAX (gradients near 3e38), the step is
/// infinite and the parameter becomes -inf or +inf (NaN if it was the opposite infinity), where the f64 reference
/// stays finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0: plain SGD, no state).
    pub momentum: f32,
    /// Dampening of the momentum buffer's gradient term.
    pub dampening: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum (needs momentum > 0 and dampening 0, as in PyTorch).
    pub nesterov: bool,
}

/// Adam and AdamW, as `torch.optim.Adam` / `torch.optim.AdamW` (no amsgrad):
///
/// ```text
/// Adam:  g = grad + weight_decay p          AdamW:  p = p (1 - lr weight_decay),  g = grad
/// m = beta1 m + (1 - beta1) g               v = beta2 v + (1 - beta2) g^2
/// p = p - lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// `eps` is added after the bias correction of `sqrt(v)`, where PyTorch adds it. The second moment's term is
/// `(1 - beta2) g^2`, whose `g^2` overflows in f32 for `|g|` above about 1.8e19 (PyTorch forms
/// `((1 - beta2) g) g`, which holds to 5.8e20 with beta2 = 0.999): `v` then becomes inf, and stays inf
/// (`beta2 inf = inf`), so the element stops moving for good (its step is `m / inf = 0`) where the f64 reference
/// would step by about `lr`; a gradient that large means the training has diverged already. PyTorch's order
/// rounds differently in the last bit of `v` at every step, which moves a whole training run's results (the
/// published studies' among them), so this order stays. With `eps = 0` on a device that flushes
/// subnormals, a gradient below about 1e-19 gives `v = 0` and an infinite step where PyTorch's would be about
/// `lr`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the bias-corrected `sqrt(v)`.
    pub eps: f32,
    /// L2 penalty (Adam) or decoupled decay (AdamW).
    pub weight_decay: f32,
    /// True for AdamW: the decay multiplies the parameter instead of entering the gradient.
    pub decoupled: bool,
}

/// An optimizer: which update and its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// [`Sgd`].
    Sgd(Sgd),
    /// [`Adam`] or AdamW.
    Adam(Adam),
}

impl Sgd {
    /// Plain SGD at learning rate `lr`.
    pub const fn new(lr: f32) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

impl Adam {
    /// Adam with PyTorch's defaults (betas 0.9, 0.999, eps 1e-8, no weight decay) at learning rate `lr`.
    pub const fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW with PyTorch's defaults (betas 0.9, 0.999, eps 1e-8, weight decay 0.01) at learning rate `lr`.
    pub const fn adamw(lr: f32) -> Self {
        Adam {
            weight_decay: 0.01,
            decoupled: true,
            ..Adam::new(lr)
        }
    }
}

/// The f32 tensor `t` whole at `binding` (its [`bound_bytes`]: a host's larger buffer need not fit a binding).
fn bind(binding: u32, t: &Tensor) -> wgpu::BindGroupEntry<'_> {
    chunk(binding, t, 0, bound_bytes(t) / 4)
}

/// Elements `[first, first + count)` of the f32 tensor `t` at `binding`.
fn chunk(binding: u32, t: &Tensor, first: u64, count: u64) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: t.buffer(),
            offset: first * 4,
            size: wgpu::BufferSize::new(count * 4),
        }),
    }
}

/// The dispatches of an update over `n > 0` f32 elements: `(first, count)` pairs, each chunk's bindings within
/// one storage binding of the device, every chunk but the last `per_chunk` elements, where `per_chunk` is the
/// largest multiple of `block` and of the offset alignment (in elements) that fits the binding limit. One chunk
/// where the tensor fits a binding, so that a tensor of up to 2 GiB (the crate's binding cap) is one dispatch.
/// [`Error::LimitExceeded`] where not even one such step fits.
fn chunk_plan(gpu: &Gpu, n: usize, block: u64) -> Result<Vec<(u64, u64)>> {
    let limits = gpu.limits();
    let align = (u64::from(limits.min_storage_buffer_offset_alignment) / 4).max(1);
    let step = lcm(block.max(1), align);
    let max = limits.max_storage_buffer_binding_size;
    let per_chunk = max / 4 / step * step;
    let n = n as u64;
    if n * 4 <= max {
        return Ok(vec![(0, n)]);
    }
    if per_chunk == 0 {
        return Err(Error::LimitExceeded {
            limit:
                "max_storage_buffer_binding_size (below one aligned chunk of an optimizer update)",
            max,
            requested: step * 4,
        });
    }
    Ok((0..n.div_ceil(per_chunk))
        .map(|c| (c * per_chunk, per_chunk.min(n - c * per_chunk)))
        .collect())
}

fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

/// The partial sum of the `*_norm` entry points that element `i` (a multiple of [`NORM_PER_THREAD`] here: a
/// chunk's start or length) starts, as the kernel's u32 parameter.
fn partial_index(i: u64) -> Result<u32> {
    u32::try_from(i / u64::from(NORM_PER_THREAD)).map_err(|_| Error::LimitExceeded {
        limit: "partial sums of a gradient norm (u32 index)",
        max: u64::from(u32::MAX),
        requested: i / u64::from(NORM_PER_THREAD),
    })
}

/// The optimizer state of one parameter tensor: the momentum buffer (SGD) or the two moments (Adam), zeros
/// until the first step.
#[derive(Debug, Clone)]
pub struct OptimState {
    /// SGD's momentum buffer, or Adam's first moment `m`.
    pub m: Option<Tensor>,
    /// Adam's second moment `v`.
    pub v: Option<Tensor>,
}

const OP: &str = "optimizer_update";

/// Gradient elements per partial sum of the `*_norm` entry points (their override `NORM_PER_THREAD`): each
/// thread updates this many elements, adding their squares in a register, and writes one partial. No
/// barriers: a workgroup tree reduction made the update 9x slower on lavapipe.
pub const NORM_PER_THREAD: u32 = 16;

/// The dispatch grid of the `*_norm` entry points for `n` elements.
fn norm_grid(gpu: &Gpu, n: usize) -> Result<(u32, u32)> {
    let per_group = u64::from(gpu.launch_config().workgroup_size) * u64::from(NORM_PER_THREAD);
    grid(
        (n as u64).div_ceil(per_group),
        gpu.limits().max_compute_workgroups_per_dimension,
    )
}

/// The number of partial sums [`Optimizer::record_update_with_norm`] writes for a parameter of `n` elements:
/// one per thread of its dispatch grid, about `n / NORM_PER_THREAD` (threads past the end write 0).
pub fn norm_partials(gpu: &Gpu, n: usize) -> Result<usize> {
    let (gx, gy) = norm_grid(gpu, n)?;
    let wg = gpu.launch_config().workgroup_size as usize;
    Ok((gx as usize * gy as usize * wg).max(1))
}

/// `sum_i partials[i]` in f64: the squared L2 norm of the gradient the partial sums came from.
pub fn sum_partials(partials: &[f32]) -> f64 {
    partials.iter().map(|&v| f64::from(v)).sum()
}

fn invalid(reason: String) -> Error {
    invalid_in(OP, reason)
}

fn invalid_in(op: &'static str, reason: String) -> Error {
    Error::InvalidArgument { op, reason }
}

impl Optimizer {
    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            Optimizer::Sgd(s) => s.lr,
            Optimizer::Adam(a) => a.lr,
        }
    }

    /// Sets the learning rate; the next recorded update uses it (no recompilation).
    pub fn set_lr(&mut self, lr: f32) {
        match self {
            Optimizer::Sgd(s) => s.lr = lr,
            Optimizer::Adam(a) => a.lr = lr,
        }
    }

    /// Checks the hyperparameters as PyTorch does: finite, `lr >= 0`, `weight_decay >= 0`, `momentum >= 0`,
    /// Nesterov only with momentum > 0 and dampening 0, betas in [0, 1), `eps >= 0`.
    /// [`Error::InvalidArgument`] otherwise, with `op` `"optimizer_update"`, the operation the values feed
    /// (a network's calls name themselves instead: `"Mlp::set_lr"`, `"Mlp::new"`).
    pub fn validate(&self) -> Result<()> {
        self.validate_for(OP)
    }

    /// [`Optimizer::validate`], its errors naming `op`: the public call that took the values.
    pub(crate) fn validate_for(&self, op: &'static str) -> Result<()> {
        let invalid = |reason: String| invalid_in(op, reason);
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(invalid(format!("{name} = {v} is not finite")))
            }
        };
        match *self {
            Optimizer::Sgd(s) => {
                for (name, v) in [
                    ("lr", s.lr),
                    ("momentum", s.momentum),
                    ("dampening", s.dampening),
                    ("weight_decay", s.weight_decay),
                ] {
                    finite(name, v)?;
                }
                if s.lr < 0.0 || s.weight_decay < 0.0 {
                    return Err(invalid("lr and weight_decay must be >= 0".into()));
                }
                // PyTorch's checks: momentum >= 0 (above 1 it diverges, but that is the caller's choice), and any
                // finite dampening.
                if s.momentum < 0.0 {
                    return Err(invalid("momentum must be >= 0".into()));
                }
                if s.nesterov && (s.momentum <= 0.0 || s.dampening != 0.0) {
                    return Err(invalid(
                        "Nesterov momentum requires momentum > 0 and dampening 0".into(),
                    ));
                }
            }
            Optimizer::Adam(a) => {
                for (name, v) in [
                    ("lr", a.lr),
                    ("beta1", a.beta1),
                    ("beta2", a.beta2),
                    ("eps", a.eps),
                    ("weight_decay", a.weight_decay),
                ] {
                    finite(name, v)?;
                }
                // eps = 0 is allowed, as in PyTorch: m / sqrt(v) is then 0 / 0 = NaN wherever a gradient was 0
                // at every step so far.
                if a.lr < 0.0 || a.weight_decay < 0.0 || a.eps < 0.0 {
                    return Err(invalid("lr, weight_decay and eps must be >= 0".into()));
                }
                if !(0.0..1.0).contains(&a.beta1) || !(0.0..1.0).contains(&a.beta2) {
                    return Err(invalid("betas must be in [0, 1)".into()));
                }
            }
        }
        Ok(())
    }

    /// Zero state for `param`: no tensor for plain SGD, one for SGD with momentum, two for Adam.
    pub fn init_state(&self, param: &Tensor) -> Result<OptimState> {
        let zeros = || param.gpu().zeros(param.shape(), DType::F32);
        Ok(match self {
            Optimizer::Sgd(s) if s.momentum == 0.0 => OptimState { m: None, v: None },
            Optimizer::Sgd(_) => OptimState {
                m: Some(zeros()?),
                v: None,
            },
            Optimizer::Adam(_) => OptimState {
                m: Some(zeros()?),
                v: Some(zeros()?),
            },
        })
    }

    /// The uniform block: `[n, step, lr, weight_decay, momentum, dampening, nesterov, decoupled, beta1, beta2,
    /// eps, step_size, inv_sqrt_bc2, partial_base]` for a chunk of `n` elements, the Adam bias corrections
    /// `step_size = lr / (1 - beta1^t)` and `1 / sqrt(1 - beta2^t)` computed in f64; the last (where the chunk's
    /// partial sums of the gradient norm start) is the caller's to fill.
    fn params(&self, n: u64, step: u32) -> [u32; 14] {
        let b = |v: f32| v.to_bits();
        let mut p = [0u32; 14];
        // One chunk's elements: at most a storage binding's 2^29 f32.
        p[0] = n as u32;
        p[1] = step;
        match *self {
            Optimizer::Sgd(s) => {
                p[2] = b(s.lr);
                p[3] = b(s.weight_decay);
                p[4] = b(s.momentum);
                p[5] = b(s.dampening);
                p[6] = u32::from(s.nesterov);
            }
            Optimizer::Adam(a) => {
                let t = i32::try_from(step).unwrap_or(i32::MAX);
                let bc1 = 1.0 - f64::from(a.beta1).powi(t);
                let bc2 = 1.0 - f64::from(a.beta2).powi(t);
                p[2] = b(a.lr);
                p[3] = b(a.weight_decay);
                p[7] = u32::from(a.decoupled);
                p[8] = b(a.beta1);
                p[9] = b(a.beta2);
                p[10] = b(a.eps);
                p[11] = b((f64::from(a.lr) / bc1) as f32);
                p[12] = b((1.0 / bc2.sqrt()) as f32);
            }
        }
        p
    }

    /// Records one update of `param` from `grad` (same shape, f32) and `state` (from [`Optimizer::init_state`]),
    /// as step number `step` (1 for the first update: it selects SGD's first momentum step and Adam's bias
    /// correction). One dispatch, or one per chunk past the storage-binding limit (see the module docs). The state
    /// and the count start together: `step` counts this state's updates
    /// (PyTorch keeps the count per parameter), so a state created later starts again at step 1.
    pub fn record_update(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        param: &Tensor,
        grad: &Tensor,
        state: &OptimState,
        step: u64,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| {
            self.plan_update_with_norm(rec, param, grad, state, step, None)
        })
    }

    /// [`Optimizer::record_update`], and where `partials` is given (f32, at least [`norm_partials`] elements)
    /// the same dispatch also writes into it partial sums of `grad[i]^2`, so that
    /// `||grad||_2 = sqrt(sum_partials(partials))` (elements past [`norm_partials`] are cleared to 0). Each partial is an f32 sum of [`NORM_PER_THREAD`] squares
    /// in order (relative error below `NORM_PER_THREAD u`); the update itself is the same arithmetic, bit for
    /// bit.
    pub fn record_update_with_norm(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        param: &Tensor,
        grad: &Tensor,
        state: &OptimState,
        step: u64,
        partials: Option<&Tensor>,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| {
            self.plan_update_with_norm(rec, param, grad, state, step, partials)
        })
    }

    /// The commands of [`Self::record_update_with_norm`], planned into `encoder`.
    fn plan_update_with_norm(
        &self,
        encoder: &mut Recording,
        param: &Tensor,
        grad: &Tensor,
        state: &OptimState,
        step: u64,
        partials: Option<&Tensor>,
    ) -> Result<()> {
        self.validate()?;
        let gpu = param.gpu();
        gpu.check_lost()?;
        let step = u32::try_from(step)
            .ok()
            .filter(|&s| s >= 1)
            .ok_or_else(|| invalid(format!("step {step} must be in 1..=u32::MAX")))?;
        expect_shape(OP, gpu, param, param.shape())?;
        expect_shape(OP, gpu, grad, param.shape())?;
        let (entry, slots): (&'static str, Vec<(u32, &Tensor)>) = match (*self, state) {
            (Optimizer::Sgd(s), _) if s.momentum == 0.0 => ("sgd", vec![]),
            // A state with v is Adam's: its m is no momentum buffer.
            (
                Optimizer::Sgd(_),
                OptimState {
                    m: Some(m),
                    v: None,
                },
            ) => ("sgd_momentum", vec![(5, m)]),
            (
                Optimizer::Adam(_),
                OptimState {
                    m: Some(m),
                    v: Some(v),
                },
            ) => ("adam", vec![(5, m), (6, v)]),
            _ => {
                return Err(invalid(
                    "the state does not match the optimizer: create it with init_state".into(),
                ))
            }
        };
        for (_, t) in &slots {
            expect_shape(OP, gpu, t, param.shape())?;
        }
        let mut outs = vec![param];
        outs.extend(slots.iter().map(|&(_, t)| t));
        let n = param.len();
        let wg = gpu.launch_config().workgroup_size;
        if let Some(p) = partials {
            let need = norm_partials(gpu, n)?;
            if !p.gpu().same_context(gpu) {
                return Err(Error::DeviceMismatch { op: OP });
            }
            if p.dtype() != DType::F32 {
                return Err(Error::DTypeMismatch {
                    op: OP,
                    expected: DType::F32,
                    got: p.dtype(),
                });
            }
            if p.len() < need {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    expected: vec![need],
                    got: p.shape().to_vec(),
                });
            }
            outs.push(p);
        }
        check_distinct(OP, &outs, &[grad.buffer()])?;
        if n == 0 {
            if let Some(p) = partials {
                p.record_zero(encoder, OP)?;
            }
            return Ok(());
        }
        let entry = match (entry, partials.is_some()) {
            ("sgd", true) => "sgd_norm",
            ("sgd_momentum", true) => "sgd_momentum_norm",
            ("adam", true) => "adam_norm",
            (entry, _) => entry,
        };
        let constants = if partials.is_some() {
            vec![("NORM_PER_THREAD", f64::from(NORM_PER_THREAD))]
        } else {
            Vec::new()
        };
        // Each thread of a `*_norm` dispatch walks a workgroup's block of WG x NORM_PER_THREAD elements; chunks of
        // whole blocks keep every partial sum over the same elements, in the same order, as one dispatch.
        let block = if partials.is_some() {
            u64::from(wg) * u64::from(NORM_PER_THREAD)
        } else {
            1
        };
        // Every chunk's parameters and grid before anything is recorded: a refusal leaves the encoder untouched.
        let mut dispatches = Vec::new();
        for (first, count) in chunk_plan(gpu, n, block)? {
            let mut params = self.params(count, step);
            let groups = if partials.is_some() {
                // A chunk's partial sums start where its elements' would in one dispatch. The spare threads of a
                // grid rounded up write zeros past the chunk's own, which the next chunk's dispatch overwrites.
                params[13] = partial_index(first)?;
                norm_grid(gpu, count as usize)?
            } else {
                grid(
                    count.div_ceil(u64::from(wg)),
                    gpu.limits().max_compute_workgroups_per_dimension,
                )?
            };
            dispatches.push((first, count, params, groups));
        }
        if let (Some(p), Some(&(first, _, _, (gx, gy)))) = (partials, dispatches.last()) {
            check_vectors(&[p])?;
            // The dispatches write the partials up to the last chunk's last thread; a longer buffer's tail would
            // keep whatever an earlier, larger update left there, and `sum_partials` would add it in.
            let written =
                first / u64::from(NORM_PER_THREAD) + u64::from(gx) * u64::from(gy) * u64::from(wg);
            if (p.len() as u64) > written {
                p.record_zero_range(encoder, OP, 4 * written, 4 * p.len() as u64)?;
            }
        }
        let key = PipelineKey::new(ShaderId::Optim, entry, wg, &constants);
        let pipeline = gpu.pipelines().get_or_create(gpu.device(), &key)?;
        for (first, count, params, groups) in dispatches {
            let mut entries = vec![chunk(0, grad, first, count), chunk(1, param, first, count)];
            entries.extend(slots.iter().map(|&(b, t)| chunk(b, t, first, count)));
            entries.extend(partials.map(|p| bind(7, p)));
            dispatch(gpu, encoder, &pipeline, entry, entries, &params, groups)?;
        }
        Ok(())
    }

    /// [`Optimizer::record_update`], submitted and waited for.
    pub fn update(
        &self,
        gpu: &Gpu,
        param: &Tensor,
        grad: &Tensor,
        state: &OptimState,
        step: u64,
    ) -> Result<()> {
        gpu.submit_and_wait(OP, |enc| self.record_update(enc, param, grad, state, step))
    }
}

/// Records `sum = weight grad` (`first`) or `sum += weight grad`: one dispatch over `sum` (f32, `grad`'s shape),
/// for a gradient summed over the passes of a training step (`Mlp::train_step` on a batch larger than one
/// pass), each pass's mean gradient weighted by its share of the batch. Not an optimizer; it shares the
/// optimizers' shader and uniform block.
pub(crate) fn record_accumulate(
    encoder: &mut Recording,
    sum: &Tensor,
    grad: &Tensor,
    weight: f32,
    first: bool,
) -> Result<()> {
    const OP: &str = "accumulate";
    let gpu = sum.gpu();
    expect_shape(OP, gpu, sum, sum.shape())?;
    expect_shape(OP, gpu, grad, sum.shape())?;
    check_distinct(OP, &[sum], &[grad.buffer()])?;
    let n = sum.len();
    if n == 0 {
        return Ok(());
    }
    // Only `Mlp` accumulates, over gradients shaped like weights its products bound whole: one binding holds them.
    check_vectors(&[sum, grad])?;
    let wg = gpu.launch_config().workgroup_size;
    let groups = grid(
        (n as u64).div_ceil(u64::from(wg)),
        gpu.limits().max_compute_workgroups_per_dimension,
    )?;
    let key = PipelineKey::new(ShaderId::Optim, "accumulate", wg, &[]);
    let pipeline = gpu.pipelines().get_or_create(gpu.device(), &key)?;
    let mut params = [0u32; 14];
    params[0] = n as u32;
    params[1] = if first { 1 } else { 2 };
    params[2] = weight.to_bits();
    let entries = vec![bind(0, grad), bind(1, sum)];
    dispatch(
        gpu,
        encoder,
        &pipeline,
        "accumulate",
        entries,
        &params,
        groups,
    )?;
    Ok(())
}
