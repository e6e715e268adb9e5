//! Losses fused with their gradients (`shaders/loss.wgsl`), f32, each the mean over its elements or rows.
//!
//! One kernel writes the gradient of the mean loss and one partial sum per thread; a second, one workgroup,
//! adds the partial sums in a fixed order into a 1-element tensor, which stays on the GPU until read:
//!
//! ```text
//! softmax cross-entropy  logits x [rows, cols], class t_r:  L = 1/rows sum_r (log sum_j e^(x_rj) - x_rt)
//!                        dL/dx_rj = (softmax(x_r)_j - [j == t_r]) / rows
//! mean squared error     y, t of n elements:                L = 1/n sum_i (y_i - t_i)^2,  dL/dy_i = 2 (y_i - t_i) / n
//! BCE with logits        x, t of n elements:                L = 1/n sum_i max(x_i, 0) - x_i t_i + log1p(e^-|x_i|)
//!                                                           dL/dx_i = (sigmoid(x_i) - t_i) / n
//! ```
//!
//! Past the storage-binding limit (`gpu.limits().max_storage_buffer_binding_size`, below 2^31), or the dispatch
//! grid's, the loss kernel runs in chunks, one dispatch each, as the elementwise kernels do: cross-entropy in
//! chunks of whole rows (a language model head's `[8192, 65536]` f32 logits are 2 GiB), MSE and BCE in chunks of
//! elements. Each chunk binds its part of the prediction, the gradient and the target values from the storage
//! offset alignment at or before its first element, passing the elements between in its parameters, and writes
//! its own partial sums into one buffer; the one reduction then adds them all and scales by 1/n of the whole
//! tensor, into the loss on the GPU. The class indices and the partial sums are bound whole. Within one binding
//! and one grid nothing changes: the same dispatches, the same bits. What cannot be split is
//! [`crate::Error::LimitExceeded`]: a row wider than a binding, or more rows than one binding holds class
//! indices (and partial sums) for.
//!
//! Class indices live in [`Labels`], checked against the class count when uploaded from the host. Indices put
//! on the GPU by other means ([`Labels::from_buffer`]) are not checked: for a row whose index is `>= cols` the
//! kernel writes NaN into that row's gradient and loss, so the mean loss reads NaN.

use super::elementwise::{bound_bytes, dispatch};
use super::matmul::{check_distinct, expect_shape};
use super::recording::Recording;
use crate::dispatch::grid;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{DType, Error, Gpu, Result, Tensor};

/// Most partial sums the elementwise losses write within one binding (threads of the grid-stride loop): enough
/// threads to fill a GPU, few enough that the one-workgroup reduction reads 64 KiB. Past the binding the chunks
/// share them ([`slice_threads`]).
const MAX_PARTIALS: usize = 16_384;

/// A loss function, averaged over the batch (cross-entropy) or over every element (the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Softmax cross-entropy over class indices: logits `[rows, cols]`, one class per row ([`Labels`]).
    /// `L = mean_r (logsumexp(x_r) - x_{r, t_r})`, gradient `(softmax(x) - onehot(t)) / rows`. Computed as
    /// `(m - x_t) + log1p(sum_{j != argmax} e^(x_j - m))`, `m` the row maximum: no overflow, and full relative
    /// accuracy when a row is nearly certain.
    SoftmaxCrossEntropy,
    /// Mean squared error: `L = mean_i (y_i - t_i)^2`, gradient `2 (y_i - t_i) / n`. The gradient is finite
    /// wherever it is in f32, also where `y - t` itself overflows (`3e38 - (-3e38)` in a batch of 5 gives 2.4e38,
    /// where PyTorch's f32 gives inf). The loss adds the squares in f32: a `|y - t|` past about 1.8e19 makes it
    /// inf even where the mean, over a batch large enough, would be finite.
    Mse,
    /// Binary cross-entropy on logits, targets in [0, 1]: `L = mean_i max(x, 0) - x t + log1p(e^-|x|)` (no
    /// overflow for any finite x), gradient `(sigmoid(x) - t) / n`.
    BceWithLogits,
}

/// Class indices of a batch, one `u32` per row, on the GPU, with the class count they were checked against.
#[derive(Debug, Clone)]
pub struct Labels {
    gpu: Gpu,
    buffer: wgpu::Buffer,
    len: usize,
    classes: usize,
}

impl Labels {
    /// Uploads `labels`, after checking that every index is below `classes`: `Error::InvalidArgument` names the
    /// first row that is not.
    pub fn upload(gpu: &Gpu, labels: &[u32], classes: usize) -> Result<Labels> {
        Labels::upload_for("Labels::upload", gpu, labels, classes)
    }

    /// [`Labels::upload`], a label out of range naming `op`: the public call that took the labels.
    pub(crate) fn upload_for(
        op: &'static str,
        gpu: &Gpu,
        labels: &[u32],
        classes: usize,
    ) -> Result<Labels> {
        check_range(op, labels, classes)?;
        // Uploaded as the bytes of an f32 tensor (a byte copy, no float arithmetic touches them): the same size
        // check and scoped buffer creation as any upload.
        let words = gpu.upload(bytemuck::cast_slice::<u32, f32>(labels))?;
        let buffer = words.buffer().clone();
        Ok(Labels {
            gpu: gpu.clone(),
            buffer,
            len: labels.len(),
            classes,
        })
    }

    /// Wraps `len` class indices already on the GPU (a `STORAGE` buffer of at least `4 len` bytes). Their values
    /// are not checked: see the module documentation for what the kernel does with an index `>= classes`. The
    /// buffer must be `gpu.device()`'s, as for [`crate::Tensor::from_buffer`].
    pub fn from_buffer(
        gpu: &Gpu,
        buffer: wgpu::Buffer,
        len: usize,
        classes: usize,
    ) -> Result<Labels> {
        const OP: &str = "Labels::from_buffer";
        let missing = wgpu::BufferUsages::STORAGE - buffer.usage();
        if !missing.is_empty() {
            return Err(Error::MissingUsage {
                op: OP,
                missing: format!("{missing:?}"),
            });
        }
        let need = (len as u64).checked_mul(4);
        if need.is_none_or(|n| buffer.size() < n) {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!(
                    "{len} labels need 4 bytes each, the buffer has {}",
                    buffer.size()
                ),
            });
        }
        Ok(Labels {
            gpu: gpu.clone(),
            buffer,
            len,
            classes,
        })
    }

    /// Overwrites the labels with the same number of new ones (the next batch's, say: no new buffer), after the
    /// same range check as [`Labels::upload`]. Like [`crate::Tensor::write`], the write lands before the next
    /// submission.
    pub fn write(&self, labels: &[u32]) -> Result<()> {
        const OP: &str = "Labels::write";
        if labels.len() != self.len {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: vec![self.len],
                got: vec![labels.len()],
            });
        }
        check_range(OP, labels, self.classes)?;
        let missing = wgpu::BufferUsages::COPY_DST - self.buffer.usage();
        if !missing.is_empty() {
            return Err(Error::MissingUsage {
                op: OP,
                missing: format!("{missing:?}"),
            });
        }
        if !labels.is_empty() {
            self.gpu
                .queue()
                .write_buffer(&self.buffer, 0, bytemuck::cast_slice(labels));
        }
        Ok(())
    }

    /// Number of labels (rows).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The class count the indices were checked against.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The buffer of `u32` indices.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Whether the labels live in `gpu`'s context.
    pub(crate) fn same_context(&self, gpu: &Gpu) -> bool {
        self.gpu.same_context(gpu)
    }
}

/// `Error::InvalidArgument` naming the first row of `labels` whose index is not below `classes`.
fn check_range(op: &'static str, labels: &[u32], classes: usize) -> Result<()> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &t)| t as usize >= classes)
    {
        Some((row, &t)) => Err(Error::InvalidArgument {
            op,
            reason: format!("class index {t} at row {row} is out of range for {classes} classes"),
        }),
        None => Ok(()),
    }
}

/// What a loss compares the prediction with.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// Class indices, for [`Loss::SoftmaxCrossEntropy`].
    Classes(&'a Labels),
    /// Values shaped like the prediction, for [`Loss::Mse`] and [`Loss::BceWithLogits`].
    Values(&'a Tensor),
}

fn entry_binding(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// The default of [`crate::GpuOptions::cross_entropy_wide_rows`]: the classes from which cross-entropy takes a
/// workgroup per row (`softmax_cross_entropy_rows`) instead of a thread per row. On a GPU a thread per row is one
/// thread's three walks over each row, and a batch of 256 rows only 256 threads: 256 classes and up take the
/// workgroups (not yet measured on a GPU). On CPU adapters from 16,384: lavapipe and llvmpipe GL took 5 to 25
/// times longer with them at every shape tried (256 x 300 to 4096 x 256, BENCHMARKS.md), but a thread's three
/// walks over a row stop at the driver's 65,535 loop iterations ([`Gpu::loop_limited`]: 21,845 classes).
pub(crate) fn wide_row_classes_for(device_type: wgpu::DeviceType) -> usize {
    match device_type {
        wgpu::DeviceType::Cpu => LOOP_LIMITED_CLASSES,
        _ => 256,
    }
}

/// Classes a thread's walks over a row may take on a loop-limited adapter ([`Gpu::loop_limited`]).
const LOOP_LIMITED_CLASSES: usize = 16_384;

/// Partial sums one thread of `reduce_mean` adds at most on a loop-limited adapter (plus its tree's 8 steps):
/// cross-entropy has one per row, so 60,000 x 256 = 15.4 million rows (7.7 million where workgroups hold 128).
const LOOP_LIMITED_REDUCE_STEPS: usize = 60_000;

/// Most classes the workgroup-per-row kernel takes on a loop-limited adapter: its threads walk a row three times
/// in steps of the workgroup's size (128 at the least), `3 cols / 128` iterations, well inside 65,535.
const LOOP_LIMITED_WIDE_CLASSES: usize = 1 << 21;

impl Loss {
    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Loss::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Loss::Mse => "mse",
            Loss::BceWithLogits => "bce_with_logits",
        }
    }

    /// [`Error::InvalidArgument`] naming `op` unless `targets` are the kind this loss takes: class indices for
    /// cross-entropy, values for the others.
    pub(crate) fn check_target_kind(self, op: &'static str, targets: Targets) -> Result<()> {
        let reason = match (self, targets) {
            (Loss::SoftmaxCrossEntropy, Targets::Classes(_))
            | (Loss::Mse | Loss::BceWithLogits, Targets::Values(_)) => return Ok(()),
            (Loss::SoftmaxCrossEntropy, _) => {
                "cross-entropy takes class indices (Targets::Classes)".to_string()
            }
            (loss, _) => format!("{} takes target values (Targets::Values)", loss.name()),
        };
        Err(Error::InvalidArgument { op, reason })
    }

    /// The entry point that computes the loss and its mean in one workgroup (at most `reduction_workgroup_size`
    /// partial sums: 256, or 128 on a device whose workgroups hold fewer).
    const fn small_entry(self) -> &'static str {
        match self {
            Loss::SoftmaxCrossEntropy => "softmax_cross_entropy_small",
            Loss::Mse => "mse_small",
            Loss::BceWithLogits => "bce_with_logits_small",
        }
    }

    /// Checks the operands; returns the sizes of the call ([`Plan`]). The bindings are checked by the path that
    /// binds them ([`Loss::record`]).
    fn plan(self, ops: &Operands) -> Result<Plan> {
        let Operands {
            pred,
            targets,
            grad,
            loss,
        } = *ops;
        let op = self.name();
        let gpu = pred.gpu();
        expect_shape(op, gpu, pred, pred.shape())?;
        expect_shape(op, gpu, grad, pred.shape())?;
        expect_shape(op, gpu, loss, &[1])?;
        self.check_target_kind(op, targets)?;
        let (n, cols) = match targets {
            Targets::Classes(labels) => {
                let &[rows, cols] = pred.shape() else {
                    return Err(Error::InvalidArgument {
                        op,
                        reason: format!(
                            "logits must be [rows, classes], got shape {:?}",
                            pred.shape()
                        ),
                    });
                };
                if !labels.gpu.same_context(gpu) {
                    return Err(Error::DeviceMismatch { op });
                }
                if labels.len != rows || labels.classes != cols {
                    return Err(Error::ShapeMismatch {
                        op,
                        expected: vec![rows, cols],
                        got: vec![labels.len, labels.classes],
                    });
                }
                (rows, cols)
            }
            Targets::Values(t) => {
                expect_shape(op, gpu, t, pred.shape())?;
                (pred.len(), 1)
            }
        };
        if n == 0 || cols == 0 {
            return Err(Error::InvalidArgument {
                op,
                reason: format!(
                    "the mean over an empty prediction {:?} is undefined",
                    pred.shape()
                ),
            });
        }
        check_distinct(op, &[grad, loss], &[pred.buffer(), ops.target_buffer()])?;
        let threads = match self {
            Loss::SoftmaxCrossEntropy => n,
            _ => n.min(MAX_PARTIALS),
        };
        Ok(Plan {
            n,
            cols,
            threads,
            scale: (1.0 / n as f64) as f32,
            wide: self == Loss::SoftmaxCrossEntropy && cols >= gpu.cross_entropy_wide_rows(),
        })
    }

    /// The loss kernel of the two-dispatch form: `(workgroup size, entry point)`. Wide rows of cross-entropy take
    /// a workgroup of the reduction's size per row, the rest a thread per row or per grid-stride slice.
    fn kernel(self, gpu: &Gpu, wide: bool) -> (u32, &'static str) {
        if wide {
            (gpu.reduction_workgroup_size(), "softmax_cross_entropy_rows")
        } else {
            (gpu.launch_config().workgroup_size, self.name())
        }
    }

    /// Records the loss and its gradient: `grad` (shaped like `pred`) receives `dL/dpred` of the mean loss and
    /// `loss` (shape `[1]`) the mean loss; nothing is read back. Where every operand fits one storage binding
    /// (`gpu.limits().max_storage_buffer_binding_size`), two dispatches, or one for at most 256 rows
    /// (cross-entropy narrower than [`Gpu::cross_entropy_wide_rows`]) or elements (128 on a device whose
    /// workgroups hold fewer than 256 threads). Past that limit (or the dispatch grid's) the loss runs in chunks,
    /// one dispatch each: whole rows of cross-entropy, elements of the others, bound at aligned offsets; each
    /// chunk writes its own partial sums and one reduction adds them all and scales by 1/n of the whole tensor,
    /// into `loss` on the GPU. The chunked sum is in another order than one binding's for MSE and BCE (within
    /// rounding of it); cross-entropy's per-row terms and their sum are the same either way.
    ///
    /// [`Error::LimitExceeded`] for what cannot be split: a row of logits larger than one binding (or than a
    /// binding less the bytes before it from the last aligned offset); past the limit, class indices or partial
    /// sums that do not fit one binding, as they are bound whole (cross-entropy has one of each per row, MSE and
    /// BCE 16,384 partial sums, at least one per chunk, more where a chunk's threads would each walk past 32,768
    /// elements); and on a
    /// loop-limited adapter ([`Gpu::loop_limited`]) cross-entropy over more classes or rows than its kernels can
    /// walk there (the same limits with or without chunks: a row is walked whole either way, and the one
    /// reduction walks every row's term).
    pub fn record(
        self,
        encoder: &mut wgpu::CommandEncoder,
        pred: &Tensor,
        targets: Targets,
        grad: &Tensor,
        loss: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| {
            self.plan_record(rec, pred, targets, grad, loss)
        })
    }

    /// The commands of [`Self::record`], planned into `encoder`.
    fn plan_record(
        self,
        encoder: &mut Recording,
        pred: &Tensor,
        targets: Targets,
        grad: &Tensor,
        loss: &Tensor,
    ) -> Result<()> {
        let gpu = pred.gpu();
        gpu.check_lost()?;
        let ops = Operands {
            pred,
            targets,
            grad,
            loss,
        };
        let plan = self.plan(&ops)?;
        if self == Loss::SoftmaxCrossEntropy && gpu.loop_limited() {
            check_loop_limited_cross_entropy(gpu, &plan)?;
        }
        if self.fits_one_binding(gpu, &ops, &plan) {
            self.record_whole(encoder, &ops, &plan)
        } else {
            self.record_chunks(encoder, &ops, &plan)
        }
    }

    /// Whether the call runs whole, as it always has: every operand's buffer within one storage binding and the
    /// loss kernel's workgroups within one dispatch grid.
    fn fits_one_binding(self, gpu: &Gpu, ops: &Operands, plan: &Plan) -> bool {
        let max = gpu.limits().max_storage_buffer_binding_size;
        let buffers = [
            ops.pred.buffer(),
            ops.target_buffer(),
            ops.grad.buffer(),
            ops.loss.buffer(),
        ];
        if buffers.iter().any(|b| b.size() > max) {
            return false;
        }
        if plan.threads <= gpu.reduction_workgroup_size() as usize && !plan.wide {
            return true;
        }
        let (wg, _) = self.kernel(gpu, plan.wide);
        let workgroups = if plan.wide {
            plan.n as u64
        } else {
            (plan.threads as u64).div_ceil(u64::from(wg))
        };
        grid(
            workgroups,
            gpu.limits().max_compute_workgroups_per_dimension,
        )
        .is_ok()
    }

    /// The loss within one binding ([`Loss::record`]): the operands bound whole, one loss dispatch (or the
    /// `*_small` one) and the reduction.
    fn record_whole(self, encoder: &mut Recording, ops: &Operands, plan: &Plan) -> Result<()> {
        let gpu = ops.pred.gpu();
        let (n, cols, threads, scale, wide) =
            (plan.n, plan.cols, plan.threads, plan.scale, plan.wide);
        let params = [n as u32, cols as u32, threads as u32, scale.to_bits()];
        let target = match ops.targets {
            Targets::Classes(l) => entry_binding(4, l.buffer()),
            Targets::Values(t) => entry_binding(2, t.buffer()),
        };
        // At most one reduction workgroup's worth of partial sums (rows of cross-entropy, elements of the others)
        // take the `*_small` entry points: one dispatch of one workgroup, the loss terms and their mean, the same
        // bits as the two dispatches below.
        let rwg = gpu.reduction_workgroup_size();
        if threads <= rwg as usize && !wide {
            let k = PipelineKey::new(ShaderId::Loss, self.small_entry(), rwg, &[("ACT", 0.0)]);
            let pipeline = gpu.pipelines().get_or_create(gpu.device(), &k)?;
            let entries = vec![
                entry_binding(0, ops.pred.buffer()),
                entry_binding(1, ops.grad.buffer()),
                target,
                entry_binding(6, ops.loss.buffer()),
            ];
            dispatch(gpu, encoder, &pipeline, k.entry, entries, &params, (1, 1))?;
            return Ok(());
        }
        let partial = partial_buffer(gpu, self.name(), threads as u64)?;
        let (wg, entry) = self.kernel(gpu, wide);
        let workgroups = if wide {
            n as u64
        } else {
            (threads as u64).div_ceil(u64::from(wg))
        };
        let k = PipelineKey::new(ShaderId::Loss, entry, wg, &[("ACT", 0.0)]);
        let pipeline = gpu.pipelines().get_or_create(gpu.device(), &k)?;
        let entries = vec![
            entry_binding(0, ops.pred.buffer()),
            entry_binding(1, ops.grad.buffer()),
            entry_binding(5, &partial),
            target,
        ];
        let groups = grid(
            workgroups,
            gpu.limits().max_compute_workgroups_per_dimension,
        )?;
        dispatch(gpu, encoder, &pipeline, k.entry, entries, &params, groups)?;
        let k = PipelineKey::new(ShaderId::Loss, "reduce_mean", rwg, &[("ACT", 0.0)]);
        let pipeline = gpu.pipelines().get_or_create(gpu.device(), &k)?;
        let entries = vec![
            entry_binding(5, &partial),
            entry_binding(6, ops.loss.buffer()),
        ];
        dispatch(gpu, encoder, &pipeline, k.entry, entries, &params, (1, 1))?;
        Ok(())
    }

    /// The loss past one binding ([`Loss::record`]): [`Loss::chunk_plan`]'s dispatches, each binding its part of
    /// `pred`, `grad` and the target values from an aligned offset (`base` elements before its first), the class
    /// indices and the partial sums whole, and writing its partial sums from `first`; then one `reduce_mean` over
    /// all of them, scaled by the whole tensor's 1/n.
    fn record_chunks(self, encoder: &mut Recording, ops: &Operands, plan: &Plan) -> Result<()> {
        let gpu = ops.pred.gpu();
        let dispatches = self.chunk_plan(gpu, plan)?;
        let partials: u64 = dispatches.iter().map(|d| d.threads).sum();
        check_chunked_partials(gpu, partials)?;
        let (wg, entry) = self.kernel(gpu, plan.wide);
        let max_per_dim = gpu.limits().max_compute_workgroups_per_dimension;
        let (cols, scale) = (plan.cols as u64, plan.scale.to_bits());
        // Every chunk's parameters and grid before anything is recorded: a refusal leaves the caller's encoder
        // without half a loss.
        let launches = dispatches
            .iter()
            .map(|d| {
                let c = d.chunk;
                let params = [
                    word(c.count)?,
                    word(cols)?,
                    word(d.threads)?,
                    scale,
                    word(d.first)?,
                    word(c.lead)?,
                ];
                let workgroups = if plan.wide {
                    c.count
                } else {
                    d.threads.div_ceil(u64::from(wg))
                };
                Ok((c, params, grid(workgroups, max_per_dim)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let reduce_params = [word(partials)?, word(cols)?, word(partials)?, scale];
        let partial = partial_buffer(gpu, self.name(), partials)?;
        let k = PipelineKey::new(ShaderId::Loss, entry, wg, &[("ACT", 0.0)]);
        let pipeline = gpu.pipelines().get_or_create(gpu.device(), &k)?;
        for (c, params, groups) in launches {
            let bytes = (c.lead + c.count * cols) * 4;
            let target = match ops.targets {
                // Row r of the chunk reads class index `first + r`: bound whole, like the partial sums.
                Targets::Classes(l) => entry_range(4, l.buffer(), 0, plan.n as u64 * 4),
                Targets::Values(t) => entry_range(2, t.buffer(), c.offset, bytes),
            };
            let entries = vec![
                entry_range(0, ops.pred.buffer(), c.offset, bytes),
                entry_range(1, ops.grad.buffer(), c.offset, bytes),
                entry_binding(5, &partial),
                target,
            ];
            dispatch(gpu, encoder, &pipeline, k.entry, entries, &params, groups)?;
        }
        let rwg = gpu.reduction_workgroup_size();
        let k = PipelineKey::new(ShaderId::Loss, "reduce_mean", rwg, &[("ACT", 0.0)]);
        let pipeline = gpu.pipelines().get_or_create(gpu.device(), &k)?;
        let entries = vec![
            entry_binding(5, &partial),
            entry_range(6, ops.loss.buffer(), 0, bound_bytes(ops.loss)),
        ];
        dispatch(
            gpu,
            encoder,
            &pipeline,
            k.entry,
            entries,
            &reduce_params,
            (1, 1),
        )?;
        Ok(())
    }

    /// The dispatches of a loss past one binding, with their partial sums laid end to end: cross-entropy in
    /// chunks of whole rows, a partial sum per row (`first` is then the chunk's first row, for its class indices
    /// too), each chunk's rows within one dispatch grid (a thread per row, or a workgroup per wide row); MSE and
    /// BCE in chunks of elements, each of at most as many elements as a grid of threads walks in
    /// [`MAX_SLICE_ELEMENTS`] steps, with [`slice_threads`] partial sums.
    fn chunk_plan(self, gpu: &Gpu, plan: &Plan) -> Result<Vec<ChunkDispatch>> {
        let limits = gpu.limits();
        let max = limits.max_storage_buffer_binding_size;
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(4);
        let dim = u64::from(limits.max_compute_workgroups_per_dimension);
        let (wg, _) = self.kernel(gpu, plan.wide);
        let grid_workgroups = dim.saturating_mul(dim);
        let grid_threads = grid_workgroups.saturating_mul(u64::from(wg));
        let mut first = 0;
        let mut out = Vec::new();
        if self == Loss::SoftmaxCrossEntropy {
            let grid_rows = if plan.wide {
                grid_workgroups
            } else {
                grid_threads
            };
            let row_bytes = plan.cols as u64 * 4;
            for chunk in row_chunks(plan.n as u64, row_bytes, max, align, grid_rows)? {
                out.push(ChunkDispatch {
                    chunk,
                    threads: chunk.count,
                    first,
                });
                first += chunk.count;
            }
        } else {
            let most = grid_threads.saturating_mul(MAX_SLICE_ELEMENTS);
            let chunks = row_chunks(plan.n as u64, 4, max, align, most)?;
            let threads = slice_threads(&chunks, max, grid_threads);
            for (chunk, threads) in chunks.into_iter().zip(threads) {
                out.push(ChunkDispatch {
                    chunk,
                    threads,
                    first,
                });
                first += threads;
            }
        }
        Ok(out)
    }

    /// `(loss [1], grad)` into new f32 tensors; submits and waits.
    pub fn compute(self, pred: &Tensor, targets: Targets) -> Result<(Tensor, Tensor)> {
        let gpu = pred.gpu();
        let grad = gpu.zeros(pred.shape(), DType::F32)?;
        let loss = gpu.zeros(&[1], DType::F32)?;
        gpu.submit_and_wait(self.name(), |enc| {
            self.record(enc, pred, targets, &grad, &loss)
        })?;
        Ok((loss, grad))
    }
}

/// The operands of one loss call.
#[derive(Clone, Copy)]
struct Operands<'a> {
    pred: &'a Tensor,
    targets: Targets<'a>,
    grad: &'a Tensor,
    loss: &'a Tensor,
}

impl Operands<'_> {
    /// The buffer of the class indices or target values.
    fn target_buffer(&self) -> &wgpu::Buffer {
        match self.targets {
            Targets::Classes(l) => l.buffer(),
            Targets::Values(t) => t.buffer(),
        }
    }
}

/// The sizes of one loss call, from [`Loss::plan`].
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Elements (MSE, BCE) or rows (cross-entropy) of the whole tensor.
    n: usize,
    /// Classes (cross-entropy), else 1.
    cols: usize,
    /// Partial sums within one binding: one per row (cross-entropy), one per grid-stride thread (the others, at
    /// most [`MAX_PARTIALS`]).
    threads: usize,
    /// 1/n of the whole tensor, rounded to f32.
    scale: f32,
    /// Cross-entropy takes the workgroup-per-row kernel ([`Gpu::cross_entropy_wide_rows`]).
    wide: bool,
}

/// [`Error::LimitExceeded`] where a loop-limited adapter's driver would cut cross-entropy short
/// ([`Gpu::loop_limited`]): more classes than the row kernel walks, or more rows than the reduction walks. Chunks
/// change neither: a row is one thread's or one workgroup's walk either way, and the one reduction adds every
/// row's term.
fn check_loop_limited_cross_entropy(gpu: &Gpu, plan: &Plan) -> Result<()> {
    // Either kernel would come back with a row cut short by the driver's loop limit.
    let max = if plan.wide {
        LOOP_LIMITED_WIDE_CLASSES
    } else {
        LOOP_LIMITED_CLASSES - 1
    };
    if plan.cols > max {
        return Err(Error::LimitExceeded {
            limit: "classes of cross-entropy on a loop-limited adapter (Gpu::loop_limited)",
            max: max as u64,
            requested: plan.cols as u64,
        });
    }
    // reduce_mean's threads each walk rows / WG of the rows' terms.
    let max_rows = LOOP_LIMITED_REDUCE_STEPS * gpu.reduction_workgroup_size() as usize;
    if plan.n > max_rows {
        return Err(Error::LimitExceeded {
            limit: "rows of cross-entropy on a loop-limited adapter (Gpu::loop_limited)",
            max: max_rows as u64,
            requested: plan.n as u64,
        });
    }
    Ok(())
}

/// The f32 partial sums of one call, `partials` of them in a buffer padded to 16 bytes. In error scopes, as every
/// buffer the crate makes: on a host's device an unscoped failure would reach the host's handler (a panic by
/// default) instead of this call's caller.
fn partial_buffer(gpu: &Gpu, op: &'static str, partials: u64) -> Result<wgpu::Buffer> {
    gpu.scoped(op, || {
        gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("actgpu.loss.partial"),
            size: (partials * 4).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    })
}

/// `bytes` of `buffer` from `offset` at `binding`.
fn entry_range(
    binding: u32,
    buffer: &wgpu::Buffer,
    offset: u64,
    bytes: u64,
) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size: wgpu::BufferSize::new(bytes),
        }),
    }
}

/// `v` as a kernel's u32 parameter. The chunk plan keeps every one within a binding's elements, below 2^31; a
/// value past u32 is refused rather than truncated.
fn word(v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::LimitExceeded {
        limit: "a loss kernel's parameter (u32)",
        max: u64::from(u32::MAX),
        requested: v,
    })
}

/// Elements one thread of a chunk of MSE or BCE walks at most: 32,768, as many as each of [`MAX_PARTIALS`]
/// threads walks in the largest tensor one binding holds (2^29 f32), and within the 65,535 loop iterations of a
/// loop-limited adapter ([`Gpu::loop_limited`]).
const MAX_SLICE_ELEMENTS: u64 = 32_768;

/// Rows (cross-entropy) or elements (the others) of one dispatch past the storage-binding limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    /// The chunk's first row or element.
    first: u64,
    /// Rows or elements in the chunk.
    count: u64,
    /// Where `pred`, `grad` and the target values are bound: the byte of the chunk's first element, rounded down
    /// to the storage offset alignment.
    offset: u64,
    /// Elements from `offset` to the chunk's first (the kernel's `base`).
    lead: u64,
}

/// One chunk's dispatch and its partial sums: `threads` of them, from `first` in the partial buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkDispatch {
    chunk: Chunk,
    threads: u64,
    first: u64,
}

/// Splits `rows` rows of `row_bytes` bytes (f32 elements, so a multiple of 4) into chunks of whole rows, each
/// bound from its first byte rounded down to `align` (a power of two) and holding as many rows as fit
/// `max_binding` bytes with the bytes before them, at most `max_rows`. An element is a row of 4 bytes.
///
/// Rounding the offset down, rather than starting chunks only at rows whose byte is aligned, lets any row that
/// fits a binding run: with an odd width that would take `align / 4` rows per step, which need not fit.
/// [`Error::LimitExceeded`] for a row larger than a binding, or one that does not fit with the bytes before it
/// (at most `align - 4`).
fn row_chunks(
    rows: u64,
    row_bytes: u64,
    max_binding: u64,
    align: u64,
    max_rows: u64,
) -> Result<Vec<Chunk>> {
    if row_bytes > max_binding {
        return Err(Error::LimitExceeded {
            limit: "max_storage_buffer_binding_size (one row of a loss's operands)",
            max: max_binding,
            requested: row_bytes,
        });
    }
    let mut out = Vec::new();
    let mut first = 0;
    while first < rows {
        let start = first * row_bytes;
        let offset = start / align * align;
        let lead = start - offset;
        let count = (max_binding.saturating_sub(lead) / row_bytes)
            .min(max_rows)
            .min(rows - first);
        if count == 0 {
            return Err(Error::LimitExceeded {
                limit: "max_storage_buffer_binding_size (a row of a loss's operands and the bytes before it \
                        from an aligned offset)",
                max: max_binding,
                requested: lead + row_bytes,
            });
        }
        out.push(Chunk {
            first,
            count,
            offset,
            lead: lead / 4,
        });
        first += count;
    }
    Ok(out)
}

/// Threads, and so partial sums, of each chunk of MSE or BCE elements: [`MAX_PARTIALS`] (at most a binding's
/// worth) shared equally among the chunks, as many threads as the one-binding path keeps busy, but at least
/// enough that none walks past [`MAX_SLICE_ELEMENTS`] elements, and at most one per element and a grid's worth
/// (`grid_threads`; the chunks hold at most `grid_threads x MAX_SLICE_ELEMENTS` elements, so both hold).
fn slice_threads(chunks: &[Chunk], max_binding: u64, grid_threads: u64) -> Vec<u64> {
    let budget = (MAX_PARTIALS as u64).min(max_binding / 4);
    let share = (budget / chunks.len().max(1) as u64).clamp(1, grid_threads.max(1));
    chunks
        .iter()
        .map(|c| share.max(c.count.div_ceil(MAX_SLICE_ELEMENTS)).min(c.count))
        .collect()
}

/// [`Error::LimitExceeded`] unless `partials` partial sums of the chunked path fit one binding (they, and
/// cross-entropy's class indices, one per row like them, are bound whole) and, on a loop-limited adapter, the
/// reduction's walk over them.
fn check_chunked_partials(gpu: &Gpu, partials: u64) -> Result<()> {
    let max = gpu.limits().max_storage_buffer_binding_size;
    let bytes = (partials * 4).div_ceil(16) * 16;
    if bytes > max {
        return Err(Error::LimitExceeded {
            limit: "max_storage_buffer_binding_size (a loss's partial sums, bound whole: one per row of \
                    cross-entropy, at least one per chunk of MSE and BCE)",
            max,
            requested: bytes,
        });
    }
    let walk = LOOP_LIMITED_REDUCE_STEPS as u64 * u64::from(gpu.reduction_workgroup_size());
    if gpu.loop_limited() && partials > walk {
        return Err(Error::LimitExceeded {
            limit: "partial sums of a loss on a loop-limited adapter (Gpu::loop_limited)",
            max: walk,
            requested: partials,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that `chunks` cover `rows` rows of `row_bytes` in order, each bound at an aligned offset within
    /// `max` bytes with the bytes before its first row.
    fn assert_covers(chunks: &[Chunk], rows: u64, row_bytes: u64, max: u64, align: u64) {
        let mut next = 0;
        for c in chunks {
            assert_eq!(c.first, next, "{chunks:?}");
            assert!(c.count > 0);
            assert_eq!(c.offset % align, 0, "{c:?}");
            assert_eq!(c.offset + c.lead * 4, c.first * row_bytes, "{c:?}");
            assert!(c.lead * 4 < align, "{c:?}");
            assert!(c.lead * 4 + c.count * row_bytes <= max, "{c:?}");
            next += c.count;
        }
        assert_eq!(next, rows);
    }

    #[test]
    fn row_chunks_cover_whole_rows_from_aligned_offsets() {
        // 1,001 rows of 37 f32 (148 bytes) under 64 KiB: 442 rows, then chunks that start mid-alignment.
        let c = row_chunks(1001, 148, 65_536, 256, u64::MAX).unwrap();
        assert_covers(&c, 1001, 148, 65_536, 256);
        assert_eq!((c.len(), c[0].count, c[0].lead), (3, 442, 0));
        assert_eq!(c[1].lead, (442 * 148 % 256) / 4);
        // Elements: 100,003 f32 in chunks of 16,384, all aligned.
        let c = row_chunks(100_003, 4, 65_536, 256, u64::MAX).unwrap();
        assert_covers(&c, 100_003, 4, 65_536, 256);
        assert_eq!(c.len(), 7);
        assert!(c.iter().all(|c| c.lead == 0));
        assert_eq!(c[6].count, 100_003 - 6 * 16_384);
        // A grid's cap on the rows of a chunk.
        let c = row_chunks(100, 4, 65_536, 256, 7).unwrap();
        assert_covers(&c, 100, 4, 65_536, 256);
        assert_eq!(c.len(), 15);
        assert!(c.iter().all(|c| c.count <= 7));
    }

    #[test]
    fn row_chunks_refuse_rows_past_a_binding() {
        let too_wide = row_chunks(3, 65_540, 65_536, 256, u64::MAX);
        assert!(
            matches!(
                too_wide,
                Err(Error::LimitExceeded {
                    max: 65_536,
                    requested: 65_540,
                    ..
                })
            ),
            "{too_wide:?}"
        );
        // 1,020 bytes fit 1,024, but the second row starts 252 bytes past an aligned offset.
        let unaligned = row_chunks(2, 1_020, 1_024, 256, u64::MAX);
        assert!(
            matches!(
                unaligned,
                Err(Error::LimitExceeded {
                    requested: 1_272,
                    ..
                })
            ),
            "{unaligned:?}"
        );
        // A row exactly one binding wide runs a chunk per row.
        let exact = row_chunks(3, 1_024, 1_024, 256, u64::MAX).unwrap();
        assert_covers(&exact, 3, 1_024, 1_024, 256);
        assert_eq!(exact.len(), 3);
    }

    #[test]
    fn slice_threads_share_the_partials_and_bound_each_walk() {
        let max = 65_536;
        let chunks = row_chunks(100_003, 4, max, 256, u64::MAX).unwrap();
        let threads = slice_threads(&chunks, max, u64::MAX);
        assert!(threads.iter().sum::<u64>() <= MAX_PARTIALS as u64);
        assert_eq!(threads[0], MAX_PARTIALS as u64 / 7);
        assert_eq!(threads[6], chunks[6].count.min(MAX_PARTIALS as u64 / 7));
        // Chunks of 2^29 elements (a 2 GiB binding): each thread walks at most MAX_SLICE_ELEMENTS.
        let big = 1u64 << 31;
        let chunks = row_chunks(5 << 29, 4, big, 256, u64::MAX).unwrap();
        let threads = slice_threads(&chunks, big, u64::MAX);
        for (c, t) in chunks.iter().zip(&threads) {
            assert!(c.count.div_ceil(*t) <= MAX_SLICE_ELEMENTS, "{c:?} {t}");
        }
        // A grid of 64 threads: chunks of at most 64 x MAX_SLICE_ELEMENTS elements, 64 threads each.
        let most = 64 * MAX_SLICE_ELEMENTS;
        let chunks = row_chunks(5 * most + 3, 4, big, 256, most).unwrap();
        let threads = slice_threads(&chunks, big, 64);
        assert_eq!(chunks.len(), 6);
        for (c, t) in chunks.iter().zip(&threads) {
            assert!(
                *t <= 64 && c.count.div_ceil(*t) <= MAX_SLICE_ELEMENTS,
                "{c:?} {t}"
            );
        }
        assert_eq!(threads[5], 3);
    }
}
