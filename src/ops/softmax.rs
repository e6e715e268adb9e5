//! Softmax and log-softmax over the last dimension of a tensor, forward and backward (`shaders/softmax.wgsl`).
//!
//! A tensor of shape `[..., cols]` is taken as `rows = len / cols` rows of `cols` elements, row-major. Every
//! operand may be f32, f16 or bf16, independently; the kernels compute in f32 and round once on store. Each
//! direction is two passes: the row statistics (the row's maximum and the sum of exponentials, or the backward's
//! row sum) into a scratch buffer, then one elementwise pass that stores every output element. The bytes moved
//! are those of any softmax that does not hold a row in registers: forward reads x twice and writes y once,
//! backward reads y and dy twice and writes dx once (log-softmax's backward reads y once).
//!
//! The backward takes the forward's output `y` (as PyTorch's `_softmax_backward_data` does), not `x`.

use super::bias::aligned_row_chunks;
use super::elementwise::{
    check_inputs_outputs, check_u32_elements, record_with_buffers, run, whole, Slot,
};
use super::recording::Recording;
use crate::dispatch::{grid, Intensity};
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{DType, Error, Gpu, Result, Tensor};

/// Softmax or log-softmax over the last dimension.
///
/// - `Softmax`: `y_j = e^(x_j - m) / sum_k e^(x_k - m)`, `m = max_k x_k` (no overflow for any finite row);
///   backward `dx_j = y_j (dy_j - sum_k y_k dy_k)`.
/// - `LogSoftmax`: `y_j = (x_j - m) - log1p(sum_{k != a} e^(x_k - m))`, `a` the first column holding `m` (exact
///   near 0 for a confident row, where `log(sum)` would round away what it adds to 1); backward
///   `dx_j = dy_j - e^(y_j) sum_k dy_k`.
///
/// Special rows: a NaN anywhere, or two or more `+inf`, make the whole row NaN; exactly one `+inf` gives the limit
/// as it grows (softmax one-hot at it; log-softmax 0 there and `-inf` elsewhere), where PyTorch gives NaN from
/// `inf - inf`; a row of `-inf` only is NaN (`0 / 0`), as in PyTorch. `-inf` beside a finite maximum gives 0
/// (log-softmax `-inf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoftmaxKind {
    /// `softmax(x)`, PyTorch's `torch.softmax(x, dim=-1)`.
    Softmax,
    /// `log(softmax(x))`, PyTorch's `torch.log_softmax(x, dim=-1)`.
    LogSoftmax,
}

/// Columns from which a thread's walks over a row could pass a loop-limited adapter's 65,535 loop iterations in
/// all ([`Gpu::loop_limited`]): the forward statistics walk a row twice by 8-element units, each unit an
/// iteration and its 8 elements an inner loop that may count 8 more, `2 (cols / 8 + 2) 9` at most, 58,536 at
/// 26,000 columns. Wider rows take the workgroup-per-row kernels there whatever
/// [`crate::GpuOptions::cross_entropy_wide_rows`] says.
const LOOP_LIMITED_ROW_COLUMNS: usize = 26_000;

/// Iterations a thread of the workgroup-per-row kernels may take in its walks over a row on a loop-limited
/// adapter (two walks of `cols / workgroup size` each, inside the driver's 65,535).
const LOOP_LIMITED_WIDE_STEPS: usize = 60_000;

impl SoftmaxKind {
    /// Both kinds.
    pub const ALL: [SoftmaxKind; 2] = [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax];

    /// snake_case name, as PyTorch's function: `softmax`, `log_softmax`.
    pub const fn name(self) -> &'static str {
        match self {
            SoftmaxKind::Softmax => "softmax",
            SoftmaxKind::LogSoftmax => "log_softmax",
        }
    }

    /// The kind named `name` ([`SoftmaxKind::name`]).
    pub fn from_name(name: &str) -> Option<SoftmaxKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The shader's `KIND`.
    const fn code(self) -> f64 {
        match self {
            SoftmaxKind::Softmax => 0.0,
            SoftmaxKind::LogSoftmax => 1.0,
        }
    }

    /// Records `y = softmax(x)` (or log-softmax) over the last dimension of `x` into `encoder`; `y` has `x`'s
    /// shape and any storage type. Nothing is submitted, and on an error nothing is recorded. Errors:
    /// [`Error::ShapeMismatch`] and [`Error::DeviceMismatch`] for tensors of different shapes or contexts;
    /// [`Error::InvalidArgument`] for `y` sharing `x`'s buffer or a shape without dimensions;
    /// [`Error::LimitExceeded`] for more than `u32::MAX` elements, more rows than the statistics' scratch buffer
    /// holds in one binding (8 bytes a row), a row wider than one binding, or on a loop-limited adapter
    /// ([`Gpu::loop_limited`]) a row wider than its kernels can walk (30,000 times the reduction's workgroup
    /// size: 7.68 million columns at 256). An empty tensor records nothing.
    pub fn record_forward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_forward(rec, x, y))
    }

    /// Records the backward into `encoder`: `dx` from the forward's output `y` and the gradient `dy` of `y`
    /// (softmax `dx_j = y_j (dy_j - sum_k y_k dy_k)`, log-softmax `dx_j = dy_j - e^(y_j) sum_k dy_k`). `y` and
    /// `dy` may share a buffer; `dx` must have its own (else [`Error::InvalidArgument`]). Errors otherwise as
    /// [`SoftmaxKind::record_forward`] (4 bytes of scratch a row).
    pub fn record_backward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        y: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_backward(rec, y, dy, dx))
    }

    /// `y = softmax(x)` (or log-softmax) into a new tensor of `x`'s shape and type; submits and waits.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        let y = x.zeros_like()?;
        self.forward_into(x, &y)?;
        Ok(y)
    }

    /// [`SoftmaxKind::forward`] into an existing tensor; submits and waits.
    pub fn forward_into(self, x: &Tensor, y: &Tensor) -> Result<()> {
        x.gpu()
            .submit_and_wait(self.name(), |enc| self.record_forward(enc, x, y))
    }

    /// The backward into a new tensor of `y`'s shape and type; submits and waits.
    pub fn backward(self, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let dx = y.zeros_like()?;
        self.backward_into(y, dy, &dx)?;
        Ok(dx)
    }

    /// [`SoftmaxKind::backward`] into an existing tensor; submits and waits.
    pub fn backward_into(self, y: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<()> {
        y.gpu()
            .submit_and_wait(self.name(), |enc| self.record_backward(enc, y, dy, dx))
    }

    /// The commands of [`Self::record_forward`], planned into `encoder`.
    fn plan_forward(self, encoder: &mut Recording, x: &Tensor, y: &Tensor) -> Result<()> {
        let op = self.name();
        check_inputs_outputs(op, &[x], &[y])?;
        let Some((rows, cols)) = rows_cols(op, x)? else {
            return Ok(());
        };
        let gpu = x.gpu();
        let stats = gpu.scratch(rows as u64 * 8)?;
        let types = [
            ("X_T", x.dtype()),
            ("DY_T", DType::F32),
            ("OUT_T", y.dtype()),
        ];
        self.plan_stats(
            encoder,
            Pass::Forward,
            &[(Slot::X, x)],
            rows,
            cols,
            &stats,
            &types,
        )?;
        self.plan_elementwise(
            encoder,
            "forward",
            &[(Slot::X, x), (Slot::Out, y)],
            rows,
            cols,
            &stats,
            &types,
        )
    }

    /// The commands of [`Self::record_backward`], planned into `encoder`.
    fn plan_backward(
        self,
        encoder: &mut Recording,
        y: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
    ) -> Result<()> {
        let op = self.name();
        check_inputs_outputs(op, &[y, dy], &[dx])?;
        let Some((rows, cols)) = rows_cols(op, y)? else {
            return Ok(());
        };
        let gpu = y.gpu();
        let stats = gpu.scratch(rows as u64 * 4)?;
        let types = [
            ("X_T", y.dtype()),
            ("DY_T", dy.dtype()),
            ("OUT_T", dx.dtype()),
        ];
        // Both are bound for either kind (the shader's row sum names both); log-softmax's reads only dy.
        let read = [(Slot::X, y), (Slot::Dy, dy)];
        self.plan_stats(encoder, Pass::Backward, &read, rows, cols, &stats, &types)?;
        self.plan_elementwise(
            encoder,
            "backward",
            &[(Slot::X, y), (Slot::Dy, dy), (Slot::Out, dx)],
            rows,
            cols,
            &stats,
            &types,
        )
    }

    /// The constants of every pipeline of this kind over operands of `types`.
    fn constants(self, types: &[(&'static str, DType); 3]) -> Vec<(&'static str, f64)> {
        let mut c = vec![("ACT", 0.0), ("KIND", self.code())];
        c.extend(
            types
                .iter()
                .map(|&(name, t)| (name, f64::from(t.storage_code()))),
        );
        c
    }

    /// The row statistics of `pass` over the operands `read` (bound by chunks of whole rows, each from its first
    /// row at an aligned offset) into `stats`.
    #[allow(clippy::too_many_arguments)]
    fn plan_stats(
        self,
        encoder: &mut Recording,
        pass: Pass,
        read: &[(Slot, &Tensor)],
        rows: usize,
        cols: usize,
        stats: &wgpu::Buffer,
        types: &[(&'static str, DType); 3],
    ) -> Result<()> {
        let gpu = read[0].1.gpu();
        let wide = wide_rows(gpu, cols)?;
        let (wg, entry) = match (pass, wide) {
            (Pass::Forward, false) => (gpu.launch_config().workgroup_size, "row_stats"),
            (Pass::Forward, true) => (gpu.reduction_workgroup_size(), "row_stats_wide"),
            (Pass::Backward, false) => (gpu.launch_config().workgroup_size, "grad_stats"),
            (Pass::Backward, true) => (gpu.reduction_workgroup_size(), "grad_stats_wide"),
        };
        let key = PipelineKey::new(ShaderId::Softmax, entry, wg, &self.constants(types));
        let tensors: Vec<&Tensor> = read.iter().map(|&(_, t)| t).collect();
        let row_bytes: Vec<u64> = tensors
            .iter()
            .map(|t| (cols * t.dtype().size_bytes()) as u64)
            .collect();
        let chunks = aligned_row_chunks(gpu, rows, 1, &row_bytes, None, &tensors)?;
        // A chunk's rows in dispatches of at most one grid's worth (a thread or a workgroup per row), the later
        // ones `lead` rows into the chunk's binding.
        let dim = u64::from(gpu.limits().max_compute_workgroups_per_dimension);
        let per_row = if wide { 1 } else { u64::from(wg) };
        let grid_rows = (dim * dim).saturating_mul(per_row) as usize;
        for chunk in &chunks {
            for lead in (0..chunk.rows).step_by(grid_rows.max(1)) {
                let count = grid_rows.min(chunk.rows - lead);
                let mut entries: Vec<wgpu::BindGroupEntry> = read
                    .iter()
                    .map(|&(slot, t)| chunk.binding(slot, t, cols))
                    .collect();
                entries.push(whole(Slot::Partial, stats));
                let g = grid((count as u64).div_ceil(per_row), dim as u32)?;
                let params = [
                    0,
                    0,
                    cols as u32,
                    count as u32,
                    (chunk.first_row + lead) as u32,
                    lead as u32,
                ];
                run(gpu, encoder, &key, entries, &params, g)?;
            }
        }
        Ok(())
    }

    /// The elementwise pass `entry` over `operands`, reading the row statistics in `stats`.
    #[allow(clippy::too_many_arguments)]
    fn plan_elementwise(
        self,
        encoder: &mut Recording,
        entry: &'static str,
        operands: &[(Slot, &Tensor)],
        rows: usize,
        cols: usize,
        stats: &wgpu::Buffer,
        types: &[(&'static str, DType); 3],
    ) -> Result<()> {
        let gpu = operands[0].1.gpu();
        let launch = gpu.launch_for(Intensity::Arithmetic);
        let mut constants = self.constants(types);
        constants.push(("PER_THREAD", f64::from(launch.units_per_thread)));
        let key = PipelineKey::new(ShaderId::Softmax, entry, launch.workgroup_size, &constants);
        record_with_buffers(
            gpu,
            encoder,
            &key,
            operands,
            rows * cols,
            &[],
            &[(Slot::Partial, stats)],
            &[cols as u32, rows as u32],
        )
    }
}

impl std::fmt::Display for SoftmaxKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which statistics a pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Forward,
    Backward,
}

/// `(rows, cols)` of `t` over its last dimension, `None` for an empty tensor; [`Error::InvalidArgument`] for a
/// shape without dimensions, [`Error::LimitExceeded`] past `u32::MAX` elements (the kernels find an element's
/// row from its index).
fn rows_cols(op: &'static str, t: &Tensor) -> Result<Option<(usize, usize)>> {
    let Some(&cols) = t.shape().last() else {
        return Err(Error::InvalidArgument {
            op,
            reason: "a tensor without dimensions has no last dimension to normalise over".into(),
        });
    };
    check_u32_elements(t.len())?;
    if t.is_empty() {
        return Ok(None);
    }
    Ok(Some((t.len() / cols, cols)))
}

/// Whether rows of `cols` take the workgroup-per-row statistics kernels: from
/// [`Gpu::cross_entropy_wide_rows`] columns (the same trade as cross-entropy's: a thread's walk over a row against
/// a workgroup's barriers), and on a loop-limited adapter from [`LOOP_LIMITED_ROW_COLUMNS`] whatever that says.
/// [`Error::LimitExceeded`] for rows a loop-limited adapter cannot walk at all.
fn wide_rows(gpu: &Gpu, cols: usize) -> Result<bool> {
    if !gpu.loop_limited() {
        return Ok(cols >= gpu.cross_entropy_wide_rows());
    }
    let most = LOOP_LIMITED_WIDE_STEPS / 2 * gpu.reduction_workgroup_size() as usize;
    if cols > most {
        return Err(Error::LimitExceeded {
            limit: "columns of a softmax row on a loop-limited adapter",
            max: most as u64,
            requested: cols as u64,
        });
    }
    Ok(cols >= gpu.cross_entropy_wide_rows().min(LOOP_LIMITED_ROW_COLUMNS))
}
