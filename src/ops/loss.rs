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
//! Class indices live in [`Labels`], checked against the class count when uploaded from the host. Indices put
//! on the GPU by other means ([`Labels::from_buffer`]) are not checked: for a row whose index is `>= cols` the
//! kernel writes NaN into that row's gradient and loss, so the mean loss reads NaN.

use super::elementwise::{check_whole_binding, dispatch};
use super::matmul::{check_distinct, expect_shape};
use crate::dispatch::grid;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{DType, Error, Gpu, Result, Tensor};

/// Most partial sums the elementwise losses write (threads of the grid-stride loop): enough threads to fill a
/// GPU, few enough that the one-workgroup reduction reads 64 KiB.
const MAX_PARTIALS: usize = 16_384;

/// A loss function, averaged over the batch (cross-entropy) or over every element (the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Softmax cross-entropy over class indices: logits `[rows, cols]`, one class per row ([`Labels`]).
    /// `L = mean_r (logsumexp(x_r) - x_{r, t_r})`, gradient `(softmax(x) - onehot(t)) / rows`. Computed as
    /// `(m - x_t) + log1p(sum_{j != argmax} e^(x_j - m))`, `m` the row maximum: no overflow, and full relative
    /// accuracy when a row is nearly certain.
    SoftmaxCrossEntropy,
    /// Mean squared error: `L = mean_i (y_i - t_i)^2`, gradient `2 (y_i - t_i) / n`.
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

    /// Checks the operands; returns `(n, cols, threads, scale)` of the kernel: elements or rows, classes, partial
    /// sums, and the 1/n of the mean.
    fn plan(
        self,
        pred: &Tensor,
        targets: Targets,
        grad: &Tensor,
        loss: &Tensor,
    ) -> Result<(usize, usize, usize, f32)> {
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
        let mut ins = vec![pred.buffer()];
        match targets {
            Targets::Classes(l) => ins.push(l.buffer()),
            Targets::Values(t) => ins.push(t.buffer()),
        }
        check_distinct(op, &[grad, loss], &ins)?;
        for b in ins.iter().chain([&grad.buffer(), &loss.buffer()]) {
            check_whole_binding(gpu, b)?;
        }
        let threads = match self {
            Loss::SoftmaxCrossEntropy => n,
            _ => n.min(MAX_PARTIALS),
        };
        Ok((n, cols, threads, (1.0 / n as f64) as f32))
    }

    /// Records the loss and its gradient: `grad` (shaped like `pred`) receives `dL/dpred` of the mean loss and
    /// `loss` (shape `[1]`) the mean loss. Two dispatches, or one for at most 256 rows (cross-entropy narrower
    /// than [`Gpu::cross_entropy_wide_rows`]) or elements (128 on a device whose workgroups hold fewer than 256
    /// threads); nothing is read back. On a loop-limited adapter ([`Gpu::loop_limited`]) cross-entropy over more
    /// classes or rows than its kernels can walk there is [`Error::LimitExceeded`].
    pub fn record(
        self,
        encoder: &mut wgpu::CommandEncoder,
        pred: &Tensor,
        targets: Targets,
        grad: &Tensor,
        loss: &Tensor,
    ) -> Result<()> {
        let gpu = pred.gpu();
        gpu.check_lost()?;
        let (n, cols, threads, scale) = self.plan(pred, targets, grad, loss)?;
        let params = [n as u32, cols as u32, threads as u32, scale.to_bits()];
        let target = match targets {
            Targets::Classes(l) => entry_binding(4, l.buffer()),
            Targets::Values(t) => entry_binding(2, t.buffer()),
        };
        // At most one reduction workgroup's worth of partial sums (rows of cross-entropy, elements of the others)
        // take the `*_small` entry points: one dispatch of one workgroup, the loss terms and their mean, the same
        // bits as the two dispatches below.
        let rwg = gpu.reduction_workgroup_size();
        let wide = self == Loss::SoftmaxCrossEntropy && cols >= gpu.cross_entropy_wide_rows();
        if self == Loss::SoftmaxCrossEntropy && gpu.loop_limited() {
            // Either kernel would come back with a row cut short by the driver's loop limit.
            let max = if wide {
                LOOP_LIMITED_WIDE_CLASSES
            } else {
                LOOP_LIMITED_CLASSES - 1
            };
            if cols > max {
                return Err(Error::LimitExceeded {
                    limit: "classes of cross-entropy on a loop-limited adapter (Gpu::loop_limited)",
                    max: max as u64,
                    requested: cols as u64,
                });
            }
            // reduce_mean's threads each walk rows / WG of the rows' terms.
            let max_rows = LOOP_LIMITED_REDUCE_STEPS * rwg as usize;
            if n > max_rows {
                return Err(Error::LimitExceeded {
                    limit: "rows of cross-entropy on a loop-limited adapter (Gpu::loop_limited)",
                    max: max_rows as u64,
                    requested: n as u64,
                });
            }
        }
        if threads <= rwg as usize && !wide {
            let k = PipelineKey::new(ShaderId::Loss, self.small_entry(), rwg, &[("ACT", 0.0)]);
            let pipeline = gpu.pipelines().get_or_create(gpu.device(), &k)?;
            let entries = vec![
                entry_binding(0, pred.buffer()),
                entry_binding(1, grad.buffer()),
                target,
                entry_binding(6, loss.buffer()),
            ];
            dispatch(gpu, encoder, &pipeline, k.entry, entries, &params, (1, 1))?;
            return Ok(());
        }
        // In error scopes, as every buffer the crate makes: on a host's device an unscoped failure would reach
        // the host's handler (a panic by default) instead of this call's caller.
        let partial = gpu.scoped(self.name(), || {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("actgpu.loss.partial"),
                size: (threads * 4).div_ceil(16) as u64 * 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })?;
        // Wide rows of cross-entropy: a workgroup of the reduction's size per row.
        let (wg, entry, workgroups) = if wide {
            (rwg, "softmax_cross_entropy_rows", n as u64)
        } else {
            let wg = gpu.launch_config().workgroup_size;
            (wg, self.name(), (threads as u64).div_ceil(u64::from(wg)))
        };
        let k = PipelineKey::new(ShaderId::Loss, entry, wg, &[("ACT", 0.0)]);
        let pipeline = gpu.pipelines().get_or_create(gpu.device(), &k)?;
        let entries = vec![
            entry_binding(0, pred.buffer()),
            entry_binding(1, grad.buffer()),
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
        let entries = vec![entry_binding(5, &partial), entry_binding(6, loss.buffer())];
        dispatch(gpu, encoder, &pipeline, k.entry, entries, &params, (1, 1))?;
        Ok(())
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
