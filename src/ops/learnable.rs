//! Activations with a learnable parameter held in a tensor (`shaders/learnable.wgsl`): PReLU (one slope, or one
//! per channel = column), Swish with a learnable beta, ELU with a learnable alpha. The backward returns dx and
//! the parameter's gradient, reduced on the GPU: when the parameter is shared, or per column with a width that is
//! a multiple of 8, in the same pass as dx (per-block partial sums) plus a small reduction.

use super::activation::activation_constants;
use super::bias::{column_grid, row_chunks, Reduction, RowChunk};
use super::elementwise::{
    check_inputs_outputs, check_u32_elements, check_vectors, record, run, vector_binding, whole,
    Slot,
};
use super::recording::Recording;
use crate::dispatch::UNIT_ELEMENTS;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{Activation, DType, Error, Result, Tensor};

/// Units of 8 elements per row when a shared parameter's tensor is walked as a matrix (any reshaping will do
/// for one parameter): 1,024 column threads.
const SHARED_ROW_UNITS: usize = 1024;

/// Row blocks at most of a shared parameter's gradient, whose partial sums `learn_reduce_scalar` (one
/// workgroup) adds: at most `SHARED_BLOCKS x 8 SHARED_ROW_UNITS` = 2M of them. Below that the blocks keep the
/// context's reduction rows: on lavapipe at 4096 x 4096, 8-row blocks took the shared PReLU backward to
/// 35-41 ms, as fast as one parameter per column, where 64-row blocks took 97-102 ms.
const SHARED_BLOCKS: usize = 256;

/// An activation whose parameter p is trained: p lives in a tensor of shape `[1]` (shared) or `[cols]` (one per
/// channel, the last dimension of x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Learnable {
    /// `f = x if x > 0 else p x`; `df/dx = 1 or p`; `df/dp = 0 or x`. PyTorch initialises p to 0.25.
    Prelu,
    /// `f = x sigmoid(p x)`; `df/dx = s + p x s (1 - s)`; `df/dp = x^2 s (1 - s)`, `s = sigmoid(p x)`.
    Swish,
    /// `f = x if x > 0 else p (e^x - 1)`; `df/dx = 1 or p e^x`; `df/dp = 0 or e^x - 1`.
    Elu,
}

/// The activation's name, [`Learnable::name`] (`prelu`).
impl std::fmt::Display for Learnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Learnable {
    /// Every learnable activation.
    pub const ALL: [Learnable; 3] = [Learnable::Prelu, Learnable::Swish, Learnable::Elu];

    /// `prelu`, `swish_learnable`, `elu_learnable`.
    pub const fn name(self) -> &'static str {
        match self {
            Learnable::Prelu => "prelu",
            Learnable::Swish => "swish_learnable",
            Learnable::Elu => "elu_learnable",
        }
    }

    const fn code(self) -> u32 {
        match self {
            Learnable::Prelu => 0,
            Learnable::Swish => 1,
            Learnable::Elu => 2,
        }
    }

    /// `(rows, cols, shared)` after checking the parameter's shape.
    fn layout(self, op: &'static str, x: &Tensor, p: &Tensor) -> Result<(usize, usize, bool)> {
        if !p.gpu().same_context(x.gpu()) {
            return Err(Error::DeviceMismatch { op });
        }
        check_u32_elements(x.len())?;
        let cols = *x.shape().last().unwrap_or(&1);
        match p.shape() {
            [1] => {
                // Any shape will do for one parameter: rows of SHARED_ROW_UNITS units, the last one short.
                let units = x.len().div_ceil(UNIT_ELEMENTS);
                let per_row = units.clamp(1, SHARED_ROW_UNITS);
                Ok((units.div_ceil(per_row), per_row * UNIT_ELEMENTS, true))
            }
            [c] if *c == cols => Ok((x.len().checked_div(cols).unwrap_or(0), cols, false)),
            other => Err(Error::ShapeMismatch {
                op,
                expected: vec![cols],
                got: other.to_vec(),
            }),
        }
    }

    fn key(
        self,
        entry: &'static str,
        x: &Tensor,
        dy: &Tensor,
        out: &Tensor,
        p: &Tensor,
        shared: bool,
    ) -> PipelineKey {
        let launch = x.gpu().launch_config();
        let code = |t: &Tensor| f64::from(t.dtype().storage_code());
        let mut constants = activation_constants(Activation::Identity, launch);
        constants.extend([
            ("X_T", code(x)),
            ("DY_T", code(dy)),
            ("OUT_T", code(out)),
            ("B_T", code(p)),
            ("LEARN", f64::from(self.code())),
            ("SCALAR_PARAM", if shared { 1.0 } else { 0.0 }),
        ]);
        PipelineKey::new(
            ShaderId::Learnable,
            entry,
            launch.workgroup_size,
            &constants,
        )
    }

    /// Records `y = f(x; p)`.
    pub fn record_forward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        p: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_forward(rec, x, p, y))
    }

    /// The commands of [`Self::record_forward`], planned into `encoder`.
    fn plan_forward(
        self,
        encoder: &mut Recording,
        x: &Tensor,
        p: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        check_inputs_outputs(self.name(), &[x], &[y])?;
        let (rows, cols, shared) = self.layout(self.name(), x, p)?;
        check_not_parameter(self.name(), p, &[y])?;
        check_vectors(&[p])?;
        let params = [cols as u32, rows as u32, 0, 0, x.len() as u32];
        record(
            x.gpu(),
            encoder,
            &self.key("learn_forward", x, x, y, p, shared),
            &[(Slot::X, x), (Slot::Out, y)],
            x.len(),
            &[(Slot::Bias, p)],
            &params,
        )
    }

    /// Records `dx = dy * df/dx` and `dp = sum of dy * df/dp` (per column, or over everything for a shared p).
    /// Past the storage-binding limit it runs in block-aligned row chunks (a shared parameter's rows are 8,192
    /// elements: [`crate::Error::LimitExceeded`] where a chunk of whole blocks of them cannot fit a binding).
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        p: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        dp: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_backward(rec, x, p, dy, dx, dp))
    }

    /// The commands of [`Self::record_backward`], planned into `encoder`.
    fn plan_backward(
        self,
        encoder: &mut Recording,
        x: &Tensor,
        p: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        dp: &Tensor,
    ) -> Result<()> {
        let op = self.name();
        check_inputs_outputs(op, &[x, dy], &[dx])?;
        let (rows, cols, shared) = self.layout(op, x, p)?;
        if dp.shape() != p.shape() {
            return Err(Error::ShapeMismatch {
                op,
                expected: p.shape().to_vec(),
                got: dp.shape().to_vec(),
            });
        }
        if !dp.gpu().same_context(x.gpu()) {
            return Err(Error::DeviceMismatch { op });
        }
        if [x, dy, dx, p].iter().any(|t| t.buffer() == dp.buffer()) {
            return Err(Error::InvalidArgument {
                op,
                reason: "dp must be a buffer of its own".into(),
            });
        }
        check_not_parameter(op, p, &[dx])?;
        check_vectors(&[p, dp])?;
        let gpu = x.gpu();
        gpu.check_lost()?;
        if x.is_empty() {
            return dp.record_zero(encoder, op);
        }
        let wg = gpu.launch_config().workgroup_size as usize;
        // A shared parameter's partial sums are all added by one workgroup: at most SHARED_BLOCKS row blocks.
        let r = if shared {
            let height = rows.div_ceil(SHARED_BLOCKS).max(gpu.reduction_rows());
            Reduction::with_height(x, rows, cols, height)?
        } else {
            Reduction::new(x, rows, cols)?
        };
        let partial = &r.partials(gpu)?;
        let mut params = r.params.to_vec();
        params.push(x.len() as u32);
        let grid = |n: usize, y: usize| column_grid(gpu, n, y, wg);
        // The parameters of one row chunk (all rows where every operand fits a binding): its rows, blocks and
        // elements (a shared parameter's last row may be short).
        let chunk_params = |chunk: &RowChunk| {
            let mut c = chunk.reduction_params(&r).to_vec();
            c.push((chunk.rows * cols).min(x.len() - chunk.first_row * cols) as u32);
            c
        };
        if cols.is_multiple_of(UNIT_ELEMENTS) {
            let k = self.key("learn_backward_fused", x, dy, dx, p, shared);
            for chunk in row_chunks(gpu, &r, &[x, dy, dx])? {
                let entries = vec![
                    chunk.binding(Slot::X, x, cols),
                    chunk.binding(Slot::Dy, dy, cols),
                    chunk.binding(Slot::Out, dx, cols),
                    vector_binding(Slot::Bias, p)?,
                    chunk.partials(&r, partial),
                ];
                let g = grid(cols / UNIT_ELEMENTS, chunk.blocks)?;
                run(gpu, encoder, &k, entries, &chunk_params(&chunk), g)?;
            }
        } else {
            // dx and the elementwise contributions (in chunks, as any elementwise kernel), then column sums of the
            // contributions (f32: twice a 16-bit x's bytes) in row chunks.
            let contributions = gpu.zeros(x.shape(), DType::F32)?;
            record(
                gpu,
                encoder,
                &self.key("learn_backward", x, dy, dx, p, shared),
                &[
                    (Slot::X, x),
                    (Slot::Dy, dy),
                    (Slot::Out, dx),
                    (Slot::Tmp, &contributions),
                ],
                x.len(),
                &[(Slot::Bias, p)],
                &params[2..],
            )?;
            let k = self.key("column_sums", x, dy, &contributions, p, shared);
            for chunk in row_chunks(gpu, &r, &[&contributions])? {
                let entries = vec![
                    chunk.binding(Slot::Out, &contributions, cols),
                    chunk.partials(&r, partial),
                ];
                let g = grid(cols, chunk.blocks)?;
                run(gpu, encoder, &k, entries, &chunk_params(&chunk), g)?;
            }
        }
        if !shared {
            return r.reduce(
                encoder,
                &self.key("reduce_partials", x, dy, dx, dp, shared),
                partial,
                dp,
            );
        }
        let k = self
            .key("learn_reduce_scalar", x, dy, dx, dp, shared)
            .with_workgroup_size(gpu.reduction_workgroup_size());
        let entries = vec![
            whole(Slot::Partial, partial),
            vector_binding(Slot::Out2, dp)?,
        ];
        run(gpu, encoder, &k, entries, &params, (1, 1))
    }

    /// `f(x; p)` into a new tensor of x's type; submits and waits.
    pub fn forward(self, x: &Tensor, p: &Tensor) -> Result<Tensor> {
        let y = x.zeros_like()?;
        self.forward_into(x, p, &y)?;
        Ok(y)
    }

    /// `f(x; p)` into an existing tensor of x's shape; submits and waits.
    pub fn forward_into(self, x: &Tensor, p: &Tensor, y: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait(self.name(), |enc| self.record_forward(enc, x, p, y))
    }

    /// `(dx, dp)` in x's and p's types; submits and waits.
    pub fn backward(self, x: &Tensor, p: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
        let dx = x.zeros_like()?;
        let dp = p.zeros_like()?;
        self.backward_into(x, p, dy, &dx, &dp)?;
        Ok((dx, dp))
    }

    /// `dx` and `dp` into existing tensors of x's and p's shapes; submits and waits.
    pub fn backward_into(
        self,
        x: &Tensor,
        p: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        dp: &Tensor,
    ) -> Result<()> {
        x.gpu().submit_and_wait(self.name(), |enc| {
            self.record_backward(enc, x, p, dy, dx, dp)
        })
    }
}

/// [`Error::InvalidArgument`] where an output is the parameter's (or a bias's) buffer: the kernels read p through
/// a read-only binding, which wgpu refuses beside a writable binding of the same buffer.
pub(super) fn check_not_parameter(op: &'static str, p: &Tensor, outputs: &[&Tensor]) -> Result<()> {
    if outputs.iter().any(|t| t.buffer() == p.buffer()) {
        return Err(Error::InvalidArgument {
            op,
            reason: "the output must not be the parameter's buffer".into(),
        });
    }
    Ok(())
}
