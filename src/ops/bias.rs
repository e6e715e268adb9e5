//! Bias + activation on a row-major `[rows, cols]` tensor with a `[cols]` bias (`shaders/bias_activation.wgsl`).
//!
//! Forward `y = f(x + b)` is one pass. Backward gives `dx = dy * f'(x + b)` and `db = column sums of dx`: when
//! `cols` is a multiple of 8 (of 4 when every operand is f32, of 2 when every operand is 16-bit), one pass writes
//! dx and per-block partial column sums, and a second, tiny pass adds the `blocks x cols` partials (reading about
//! `1/rows_per_block` of dx's bytes); other widths write dx first and sum its columns in a separate pass
//! (measured no slower than one pass with a column per thread). Every operand may be f32, f16 or bf16.

use super::activation::activation_constants;
use super::elementwise::{
    bound_bytes, check_inputs_outputs, check_u32_elements, check_vectors, record, run, sized,
    vector_binding, whole, Slot,
};
use super::learnable::check_not_parameter;
use super::recording::Recording;
use crate::dispatch::{grid, UNIT_ELEMENTS};
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{Activation, DType, Error, Result, Tensor};

/// Rows one thread walks down a column in the reductions, per adapter type: the default of
/// [`crate::GpuOptions::reduction_rows`], read through [`crate::Gpu::reduction_rows`]. On CPU adapters
/// (lavapipe, llvmpipe) a thread's rows are a power-of-two stride apart for the usual widths, and more than 8 of
/// them thrash the L1 sets: measured on lavapipe at 4096 x 4096, bias + relu backward took 85 ms with 64 rows, 62 ms with 16, 26 ms
/// with 8 and 35 ms with 4 (relu backward alone: 19 ms). Elsewhere 32, measured on an NVIDIA H200 (Vulkan) at
/// 4096 x 4096 f32, bias + GELU backward with the lane-split `reduce_partials`: 89.8 us with 8 rows, 82.3 us with
/// 16, 70.6 us with 32, 80.6 us with 64 (with the earlier one-thread-per-8-columns reduction: 285, 172, 105 and
/// 99 us).
pub(crate) fn rows_per_block(device_type: wgpu::DeviceType) -> usize {
    match device_type {
        wgpu::DeviceType::Cpu => 8,
        _ => 32,
    }
}

/// Rows one thread of bias + activation forward walks on the row grid (`bias_forward_rows`), per adapter type,
/// where [`crate::GpuOptions::reduction_rows`] is not given: 8 on CPU adapters (as [`rows_per_block`]), 2
/// elsewhere. The forward sums nothing, so it wants many threads: measured on an NVIDIA H200 (Vulkan) at 4096 x
/// 4096 f32, bias + GELU forward took 51 us with 2 rows, 54 us with 16, 58 us with 32 and 83 us with 64.
pub(crate) fn forward_rows_per_block(device_type: wgpu::DeviceType) -> usize {
    match device_type {
        wgpu::DeviceType::Cpu => 8,
        _ => 2,
    }
}

/// The rows per row block over `rows` rows for a wanted `height` ([`crate::Gpu::reduction_rows`] for the
/// reductions): grown where the grid's y dimension cannot hold that many blocks, and at most `rows` (one block
/// then holds every row, as it would with more: the same blocks and sums, with the kernels' `u32` parameter in
/// range however large the option).
fn block_height(gpu: &crate::Gpu, height: usize, rows: usize) -> usize {
    // (A host's device may report 0; its dispatches are then refused by the grid check, not a division here.)
    let max_grid = (gpu.limits().max_compute_workgroups_per_dimension as usize).max(1);
    height.max(rows.div_ceil(max_grid)).min(rows.max(1))
}

/// Column sums over at most this many rows run in one dispatch (`column_sums_direct`: each thread walks its
/// columns' row blocks in turn) instead of per-block partial sums and their reduction; the sums are the same bits
/// up to 8 row blocks (`reduce_partials` adds 8 lanes of blocks; 4 on a device whose workgroups hold fewer than
/// 256 threads), the same sums in another order past that.
/// A small network's training step (the study's batch of 64) takes the one dispatch per layer; taller inputs keep
/// the two passes, whose row blocks run in parallel.
const DIRECT_COLUMN_SUM_ROWS: usize = 128;

/// The grid of the row kernels (`bias_forward_rows`, the fused backward, the column sums, the learnable
/// backward): `threads` column threads in workgroups of `wg` along x, continued along z where x would pass the
/// device's per-dimension limit (the shaders' `column_thread`), and the `blocks` row blocks along y.
pub(crate) fn column_grid(
    gpu: &crate::Gpu,
    threads: usize,
    blocks: usize,
    wg: usize,
) -> Result<(u32, u32, u32)> {
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    let (x, z) = grid(threads.div_ceil(wg) as u64, max)?;
    // `block_height` keeps the row blocks within the limit.
    Ok((x, blocks as u32, z))
}

/// Columns one workgroup of `reduce_partials` sums (`REDUCE_COLS` in `shaders/bias_activation.wgsl`).
const REDUCE_COLUMNS_PER_WORKGROUP: usize = 32;

/// The row blocks of a column reduction over `[rows, cols]`: `blocks` row blocks of `rows_per_block` rows, the
/// stride `cols8` of their partial sums, and the kernels' uniform parameters. The two-pass kernels take their
/// `blocks x cols8` f32 partial sums from [`Reduction::partials`]; the one-pass ones need none.
pub(crate) struct Reduction {
    pub blocks: usize,
    pub cols8: usize,
    pub params: [u32; 6],
}

/// Rows one thread of the row kernels may walk in a block on a loop-limited adapter
/// ([`crate::Gpu::loop_limited`]: the driver stops an invocation's loops after 65,535 iterations in all).
const LOOP_LIMITED_BLOCK_ROWS: usize = 60_000;

impl Reduction {
    pub(crate) fn new(x: &Tensor, rows: usize, cols: usize) -> Result<Reduction> {
        Self::with_height(x, rows, cols, x.gpu().reduction_rows())
    }

    /// [`Reduction::new`] with blocks of at least `height` rows instead of the context's reduction rows. The
    /// blocks are made taller where their `blocks x cols8` f32 partial sums would not fit one storage binding
    /// (the shared scratch buffer is bound whole): a tall, wide tensor in blocks of 8 rows has partial sums an
    /// eighth of its own size, past a binding long before the tensor passes the buffer limit, and its rows are
    /// bound in chunks anyway. [`Error::LimitExceeded`] where not even one block of partial sums fits, or where
    /// the blocks would be taller than a loop-limited adapter's threads can walk.
    pub(crate) fn with_height(
        x: &Tensor,
        rows: usize,
        cols: usize,
        height: usize,
    ) -> Result<Reduction> {
        let gpu = x.gpu();
        let cols8 = cols.div_ceil(UNIT_ELEMENTS) * UNIT_ELEMENTS;
        let binding = gpu.limits().max_storage_buffer_binding_size as usize / 4 * 4;
        let max_blocks = (binding / (4 * cols8.max(1))).max(1);
        // A block's rows must also fit one binding, since the row chunks hold whole blocks: f32 rows are the
        // widest operand's (dy, dx), and a chunk leaves room for the padding its last binding runs into. Where the
        // partial sums need taller blocks than that, the chunking refuses the tensor ([`aligned_row_chunks`]).
        let rows_per_binding = (binding.saturating_sub(32) / (4 * cols.max(1))).max(1);
        let fewest = rows.div_ceil(max_blocks);
        let rows_per_block = block_height(gpu, height, rows)
            .max(fewest)
            .min(rows.max(1))
            .min(rows_per_binding.max(fewest));
        if gpu.loop_limited() && rows_per_block > LOOP_LIMITED_BLOCK_ROWS {
            return Err(Error::LimitExceeded {
                limit: "rows per block of a column reduction on a loop-limited adapter",
                max: LOOP_LIMITED_BLOCK_ROWS as u64,
                requested: rows_per_block as u64,
            });
        }
        let blocks = rows.div_ceil(rows_per_block);
        let params = [
            0,
            0,
            cols as u32,
            rows as u32,
            rows_per_block as u32,
            blocks as u32,
        ];
        Ok(Reduction {
            blocks,
            cols8,
            params,
        })
    }

    /// The buffer for the `blocks x cols8` f32 partial sums: the context's shared scratch buffer, grown if needed.
    pub(crate) fn partials(&self, gpu: &crate::Gpu) -> Result<wgpu::Buffer> {
        gpu.scratch((self.blocks * self.cols8 * 4) as u64)
    }

    /// Records `out[c] = sum of the blocks' partial sums of column c` (in `partial`) with the `reduce_partials`
    /// pipeline `key`.
    pub(crate) fn reduce(
        &self,
        encoder: &mut Recording,
        key: &PipelineKey,
        partial: &wgpu::Buffer,
        out: &Tensor,
    ) -> Result<()> {
        let gpu = out.gpu();
        let key = &key
            .clone()
            .with_workgroup_size(gpu.reduction_workgroup_size());
        let entries = vec![
            whole(Slot::Partial, partial),
            vector_binding(Slot::Out2, out)?,
        ];
        let groups = self.cols8.div_ceil(REDUCE_COLUMNS_PER_WORKGROUP) as u64;
        let g = grid(groups, gpu.limits().max_compute_workgroups_per_dimension)?;
        run(gpu, encoder, key, entries, &self.params, g)
    }
}

/// A block-aligned range of rows of a column reduction, bound at byte offsets ([`row_chunks`]).
pub(crate) struct RowChunk {
    /// First row.
    pub first_row: usize,
    /// Rows in the chunk.
    pub rows: usize,
    /// First row block.
    pub first_block: usize,
    /// Row blocks in the chunk.
    pub blocks: usize,
    /// Whether the chunk runs to the last row (its bindings then run to each tensor's padded end, which keeps
    /// every binding whole `vec4`s).
    pub last: bool,
}

impl RowChunk {
    /// The binding of this chunk's rows of `t` (`[rows, cols]`, row-major) at `slot`: the whole buffer for the
    /// one chunk of every row (the tensor's padded bytes where a host's buffer is larger than a binding), else
    /// from the chunk's first row to its last (to the tensor's padded end for the last chunk).
    pub(crate) fn binding<'a>(
        &self,
        slot: Slot,
        t: &'a Tensor,
        cols: usize,
    ) -> wgpu::BindGroupEntry<'a> {
        let max = t.gpu().limits().max_storage_buffer_binding_size;
        if self.first_row == 0 && self.last && t.buffer().size() <= max {
            return whole(slot, t.buffer());
        }
        let row_bytes = (cols * t.dtype().size_bytes()) as u64;
        let offset = self.first_row as u64 * row_bytes;
        let bytes = if self.last {
            bound_bytes(t) - offset
        } else {
            self.rows as u64 * row_bytes
        };
        sized(slot, t.buffer(), offset, bytes)
    }

    /// Reduction `r`'s kernel parameters for this chunk's rows and blocks.
    pub(crate) fn reduction_params(&self, r: &Reduction) -> [u32; 6] {
        let mut params = r.params;
        params[3] = self.rows as u32;
        params[5] = self.blocks as u32;
        params
    }

    /// The binding of this chunk's blocks of the `blocks x cols8` partial sums.
    pub(crate) fn partials<'a>(
        &self,
        r: &Reduction,
        partial: &'a wgpu::Buffer,
    ) -> wgpu::BindGroupEntry<'a> {
        if self.first_row == 0 && self.last {
            return whole(Slot::Partial, partial);
        }
        let block_bytes = (r.cols8 * 4) as u64;
        sized(
            Slot::Partial,
            partial,
            self.first_block as u64 * block_bytes,
            self.blocks as u64 * block_bytes,
        )
    }
}

/// The row chunks of reduction `r` over the `[rows, cols]` operands `ts`: one chunk of every row where each
/// operand's padded bytes fit a binding, else chunks of whole row blocks whose every operand's rows (and whose blocks
/// of partial sums) start at a multiple of the device's storage offset alignment and fit a binding.
/// [`Error::LimitExceeded`] where even one aligned group of rows does not fit.
pub(crate) fn row_chunks(gpu: &crate::Gpu, r: &Reduction, ts: &[&Tensor]) -> Result<Vec<RowChunk>> {
    let cols = r.params[2] as u64;
    let row_bytes: Vec<u64> = ts
        .iter()
        .map(|t| cols * t.dtype().size_bytes() as u64)
        .collect();
    aligned_row_chunks(
        gpu,
        r.params[3] as usize,
        r.params[4] as usize,
        &row_bytes,
        Some((r.cols8 * 4) as u64),
        ts,
    )
}

/// Chunks of `rows` rows in whole blocks of `height` rows (the blocks of partial sums of `block_bytes` each,
/// where there are any) for the operands `ts` of `row_bytes` bytes per row: one chunk of every row where each
/// operand's padded bytes fit a binding, else chunks whose every operand's rows (and blocks of partial sums)
/// start at a multiple of the device's storage offset alignment and fit a binding. [`Error::LimitExceeded`] where even one
/// aligned group of rows does not fit.
pub(crate) fn aligned_row_chunks(
    gpu: &crate::Gpu,
    rows: usize,
    height: usize,
    row_bytes: &[u64],
    block_bytes: Option<u64>,
    ts: &[&Tensor],
) -> Result<Vec<RowChunk>> {
    let limits = gpu.limits();
    let max = limits.max_storage_buffer_binding_size;
    let height = height.max(1);
    if ts.iter().all(|&t| bound_bytes(t) <= max) {
        return Ok(vec![RowChunk {
            first_row: 0,
            rows,
            first_block: 0,
            blocks: rows.div_ceil(height),
            last: true,
        }]);
    }
    // Each operand's chunks start at a multiple of the device's offset alignment and hold whole 8-element units
    // of its type, as the kernels store them (32 bytes of f32, 16 of a 16-bit type): with 16 bytes for every
    // type, an f32 chunk could end mid-unit and the gated split forward stored one `vec4` past its binding;
    // with 32 for every type, a 16-bit row of odd width needed twice the rows per step and could stop fitting.
    // All are powers of two, so the largest serves.
    let base = u64::from(limits.min_storage_buffer_offset_alignment).max(16);
    let unit_bytes = |t: &Tensor| (crate::dispatch::UNIT_ELEMENTS * t.dtype().size_bytes()) as u64;
    // Rows per aligned step: the fewest whole blocks whose rows start every operand, and whose blocks start the
    // partial sums, at a multiple of the alignment. Each operand needs a power of two of rows (the largest serves
    // all), the partial sums whole blocks times a power of two, and the blocks' height is any number (a
    // `reduction_rows` of 3, or rows / the grid's limit): the least common multiple of the two. Rounding the
    // largest up to whole blocks, as before, missed the alignment for any height not a power of two.
    let rows_to_align =
        |bytes_per_row: u64, align: u64| (align / gcd(bytes_per_row.max(1), align)) as usize;
    let operand_rows = row_bytes
        .iter()
        .zip(ts)
        .map(|(&b, t)| rows_to_align(b, base.max(unit_bytes(t))))
        .max()
        .unwrap_or(1);
    // The partial sums are f32, in rows of whole units (`cols8`).
    let block_rows = height * block_bytes.map_or(1, |b| rows_to_align(b, base.max(32)));
    let step = aligned_step(operand_rows, block_rows);
    let widest = row_bytes.iter().copied().max().unwrap_or(1).max(1);
    // Room for the padding that the last chunk's bindings run into.
    let per_chunk = (max.saturating_sub(32) / widest) as usize / step * step;
    if per_chunk == 0 {
        return Err(Error::LimitExceeded {
            limit: "max_storage_buffer_binding_size",
            max,
            requested: step as u64 * widest,
        });
    }
    Ok((0..rows)
        .step_by(per_chunk)
        .map(|first_row| {
            let n = per_chunk.min(rows - first_row);
            RowChunk {
                first_row,
                rows: n,
                first_block: first_row / height,
                blocks: n.div_ceil(height),
                last: first_row + n == rows,
            }
        })
        .collect())
}

/// The least common multiple of `operand_rows` and `block_rows` (rows per aligned step).
fn aligned_step(operand_rows: usize, block_rows: usize) -> usize {
    let g = gcd(operand_rows as u64, block_rows as u64).max(1) as usize;
    operand_rows / g * block_rows
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Records `sums[c] = sum over rows of x[r, c]` for `x: [rows, cols]` (cols the last dimension) into `sums:
/// [cols]`: per-block partial sums down each column (in block-aligned row chunks past the storage-binding limit),
/// then their sum (the reduction of the bias backward, alone). At most 128 rows take one pass over x bound whole
/// where it fits a binding.
pub fn record_column_sums(
    encoder: &mut wgpu::CommandEncoder,
    x: &Tensor,
    sums: &Tensor,
) -> Result<()> {
    Recording::atomic(encoder, |rec| plan_column_sums(rec, x, sums))
}

/// The commands of [`record_column_sums`], planned into `encoder`.
pub(crate) fn plan_column_sums(encoder: &mut Recording, x: &Tensor, sums: &Tensor) -> Result<()> {
    const OP: &str = "column_sums";
    let (rows, cols) = matrix_shape(OP, x, sums)?;
    if sums.buffer() == x.buffer() {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: "sums must be a buffer of its own".into(),
        });
    }
    let gpu = x.gpu();
    gpu.check_lost()?;
    if cols == 0 {
        return Ok(());
    }
    if rows == 0 {
        return sums.record_zero(encoder, OP);
    }
    let wg = gpu.launch_config().workgroup_size as usize;
    let r = Reduction::new(x, rows, cols)?;
    let act = Activation::Identity;
    // One pass over few rows, where x fits a binding (else the two passes below, in row chunks).
    let fits = x.buffer().size() <= gpu.limits().max_storage_buffer_binding_size;
    if rows <= DIRECT_COLUMN_SUM_ROWS && fits {
        // One dispatch instead of two, with the same sums (see `column_sums_direct`).
        let k = key(act, "column_sums_direct", x, None, x, sums);
        let entries = vec![
            whole(Slot::Out, x.buffer()),
            vector_binding(Slot::Out2, sums)?,
        ];
        let g = column_grid(gpu, r.cols8 / UNIT_ELEMENTS, 1, wg)?;
        return run(gpu, encoder, &k, entries, &r.params, g);
    }
    // f32 rows of whole 16-byte words take a word per thread: the same sums, 1.6-2x faster at 4096 x 4096 on
    // lavapipe and GL.
    let (entry, per_thread) = if x.dtype() == DType::F32 && cols % 4 == 0 {
        ("column_sums_words", 4)
    } else {
        ("column_sums", 1)
    };
    let k = key(act, entry, x, None, x, sums);
    let partial = r.partials(gpu)?;
    // Past the binding limit, in block-aligned row chunks, as the fused bias backward.
    for chunk in row_chunks(gpu, &r, &[x])? {
        let entries = vec![
            chunk.binding(Slot::Out, x, cols),
            chunk.partials(&r, &partial),
        ];
        let g = column_grid(gpu, cols / per_thread, chunk.blocks, wg)?;
        run(gpu, encoder, &k, entries, &chunk.reduction_params(&r), g)?;
    }
    r.reduce(
        encoder,
        &key(act, "reduce_partials", x, None, x, sums),
        &partial,
        sums,
    )
}

/// Records `dx = dy * f'(x)` and `db` = column sums of dx in one dispatch (`backward_column_sums_direct`) where
/// that gives the bits of [`Activation::record_backward`] followed by [`record_column_sums`]: `x`, `dy`, `dx`
/// `[rows, cols]` with at most [`DIRECT_COLUMN_SUM_ROWS`] rows, `cols` a multiple of 8 and `dx` f32 (the sums
/// then add the stored values, and every operand within a binding). Returns `false`, recording nothing, where it
/// does not apply. Shapes are the caller's to check (the dense backward's).
pub(crate) fn record_backward_column_sums_direct(
    encoder: &mut Recording,
    act: Activation,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    db: &Tensor,
) -> Result<bool> {
    let &[rows, cols] = x.shape() else {
        return Ok(false);
    };
    if rows == 0
        || rows > DIRECT_COLUMN_SUM_ROWS
        || cols % UNIT_ELEMENTS != 0
        || dx.dtype() != DType::F32
    {
        return Ok(false);
    }
    let gpu = x.gpu();
    // Operands past the binding limit take the two-pass path, which runs in row chunks.
    let max = gpu.limits().max_storage_buffer_binding_size;
    if [x, dy, dx].iter().any(|t| t.buffer().size() > max) {
        return Ok(false);
    }
    let wg = gpu.launch_config().workgroup_size as usize;
    let r = Reduction::new(x, rows, cols)?;
    let k = key(act, "backward_column_sums_direct", x, Some(dy), dx, db);
    let entries = vec![
        whole(Slot::X, x.buffer()),
        whole(Slot::Dy, dy.buffer()),
        whole(Slot::Out, dx.buffer()),
        vector_binding(Slot::Out2, db)?,
    ];
    let g = column_grid(gpu, cols / UNIT_ELEMENTS, 1, wg)?;
    run(gpu, encoder, &k, entries, &r.params, g)?;
    Ok(true)
}

impl Tensor {
    /// Column sums of a `[rows, cols]` tensor (cols the last dimension) into a new `[cols]` tensor of the same
    /// type; submits and waits.
    pub fn column_sums(&self) -> Result<Tensor> {
        // A 0-d tensor is one row of one column, as `record_column_sums` reads it.
        let cols = *self.shape().last().unwrap_or(&1);
        let sums = self.gpu().zeros(&[cols], self.dtype())?;
        self.gpu()
            .submit_and_wait("column_sums", |enc| record_column_sums(enc, self, &sums))?;
        Ok(sums)
    }
}

/// `[rows, cols]` of `x` as a matrix over its last dimension, after checking `bias` is `[cols]`.
fn matrix_shape(op: &'static str, x: &Tensor, bias: &Tensor) -> Result<(usize, usize)> {
    let cols = *x.shape().last().unwrap_or(&1);
    if bias.shape() != [cols] {
        return Err(Error::ShapeMismatch {
            op,
            expected: vec![cols],
            got: bias.shape().to_vec(),
        });
    }
    if !bias.gpu().same_context(x.gpu()) {
        return Err(Error::DeviceMismatch { op });
    }
    check_u32_elements(x.len())?;
    let rows = x.len().checked_div(cols).unwrap_or(0);
    Ok((rows, cols))
}

fn key(
    act: Activation,
    entry: &'static str,
    x: &Tensor,
    dy: Option<&Tensor>,
    out: &Tensor,
    bias: &Tensor,
) -> PipelineKey {
    let launch = x.gpu().launch_config();
    let code = |t: &Tensor| f64::from(t.dtype().storage_code());
    let mut constants = activation_constants(act, launch);
    constants.extend([
        ("X_T", code(x)),
        ("DY_T", dy.map_or(0.0, code)),
        ("OUT_T", code(out)),
        ("B_T", code(bias)),
    ]);
    PipelineKey::new(
        ShaderId::BiasActivation,
        entry,
        launch.workgroup_size,
        &constants,
    )
    .with_custom(act.custom_id())
}

impl Activation {
    /// Records `y = f(x + b)` for `x: [rows, cols]` (any leading shape; `cols` is the last dimension) and
    /// `bias: [cols]`.
    pub fn record_bias_forward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        bias: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_bias_forward(rec, x, bias, y))
    }

    /// The commands of [`Self::record_bias_forward`], planned into `encoder`.
    fn plan_bias_forward(
        self,
        encoder: &mut Recording,
        x: &Tensor,
        bias: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        self.validate()?;
        check_inputs_outputs("bias_forward", &[x], &[y])?;
        let (rows, cols) = matrix_shape("bias_forward", x, bias)?;
        check_not_parameter("bias_forward", bias, &[y])?;
        check_vectors(&[bias])?;
        let gpu = x.gpu();
        let max = gpu.limits().max_storage_buffer_binding_size;
        let fits = x.buffer().size() <= max && y.buffer().size() <= max;
        if cols.is_multiple_of(UNIT_ELEMENTS) && rows > 0 && fits {
            // Each thread loads its unit of bias once and walks a block of rows: no per-element column index.
            // Measured on lavapipe at 4096 x 4096: bias + relu forward 27 -> 16 ms (relu alone 15.6 ms). The
            // elementwise form below handles other widths and tensors past the binding limit.
            gpu.check_lost()?;
            let wg = gpu.launch_config().workgroup_size as usize;
            let rows_per_block = block_height(gpu, gpu.bias_forward_rows(), rows);
            let blocks = rows.div_ceil(rows_per_block);
            // All-f32 operands take a 16-byte word per thread, neighbours on neighbouring words, as the elementwise
            // f32 kernels and the backward do. On an NVIDIA H200 at 4096 x 4096, bias + GELU forward went from
            // 50.7 to 41.6 us (BENCHMARKS.md); lavapipe measured no change.
            let words = [x, y].iter().all(|t| t.dtype() == crate::DType::F32);
            let (entry, per_thread) = if words {
                ("bias_forward_rows_words", 4)
            } else {
                ("bias_forward_rows", UNIT_ELEMENTS)
            };
            let k = key(self, entry, x, None, y, bias);
            let entries = vec![
                whole(Slot::X, x.buffer()),
                whole(Slot::Out, y.buffer()),
                vector_binding(Slot::Bias, bias)?,
            ];
            let params = [
                0,
                0,
                cols as u32,
                rows as u32,
                rows_per_block as u32,
                blocks as u32,
            ];
            let g = column_grid(gpu, cols / per_thread, blocks, wg)?;
            run(gpu, encoder, &k, entries, &params, g)?;
            return Ok(());
        }
        record(
            gpu,
            encoder,
            &key(self, "bias_forward", x, None, y, bias),
            &[(Slot::X, x), (Slot::Out, y)],
            x.len(),
            &[(Slot::Bias, bias)],
            &[cols as u32, rows as u32],
        )
    }

    /// Records `dx = dy * f'(x + b)` and `db = sum over rows of dx` (db in its own storage type). Past the
    /// storage-binding limit, rows of whole 8-element units, f32 words or 16-bit pairs run in block-aligned row
    /// chunks; other widths compute dx (in chunks, as the elementwise kernels) and then its column sums (in row
    /// chunks). [`Error::LimitExceeded`] only where one aligned group of rows cannot fit a binding.
    pub fn record_bias_backward(
        self,
        encoder: &mut wgpu::CommandEncoder,
        x: &Tensor,
        bias: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        db: &Tensor,
    ) -> Result<()> {
        Recording::atomic(encoder, |rec| {
            self.plan_bias_backward(rec, x, bias, dy, dx, db)
        })
    }

    /// The commands of [`Self::record_bias_backward`], planned into `encoder`.
    fn plan_bias_backward(
        self,
        encoder: &mut Recording,
        x: &Tensor,
        bias: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        db: &Tensor,
    ) -> Result<()> {
        const OP: &str = "bias_backward";
        self.validate()?;
        check_inputs_outputs(OP, &[x, dy], &[dx])?;
        let (rows, cols) = matrix_shape(OP, x, bias)?;
        matrix_shape(OP, x, db)?;
        check_not_parameter(OP, bias, &[dx])?;
        check_vectors(&[bias, db])?;
        if db.buffer() == bias.buffer() || [x, dy, dx].iter().any(|t| t.buffer() == db.buffer()) {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: "db must be a buffer of its own".into(),
            });
        }
        let gpu = x.gpu();
        gpu.check_lost()?;
        if cols == 0 {
            return Ok(());
        }
        if rows == 0 {
            return db.record_zero(encoder, OP);
        }
        let wg = gpu.launch_config().workgroup_size as usize;
        let all_f32 = [x, dy, dx].iter().all(|t| t.dtype() == crate::DType::F32);
        let words = all_f32 && cols.is_multiple_of(4);
        let all_16 = [x, dy, dx].iter().all(|t| t.dtype() != crate::DType::F32);
        let pairs = all_16 && cols.is_multiple_of(2) && !cols.is_multiple_of(UNIT_ELEMENTS);
        let fused = cols.is_multiple_of(UNIT_ELEMENTS) || words || pairs;
        if !fused {
            // Rows that are neither whole 8-element units, nor whole f32 words, nor whole 16-bit pairs: dx
            // first, then its column sums, a separate pass over dx. A column per thread in one pass (f32)
            // measured 3-5% slower on lavapipe at 4096 x 4095 (80-82 against 77-78 ms) and no faster on GL.
            record(
                gpu,
                encoder,
                &key(self, "bias_backward", x, Some(dy), dx, bias),
                &[(Slot::X, x), (Slot::Dy, dy), (Slot::Out, dx)],
                x.len(),
                &[(Slot::Bias, bias)],
                &[cols as u32, rows as u32],
            )?;
            return plan_column_sums(encoder, dx, db);
        }
        let r = Reduction::new(x, rows, cols)?;
        // All-f32 operands walk one 16-byte word per thread (neighbours on neighbouring words); 16-bit units are
        // one word already. Measured on lavapipe at 4096 x 4096: bias + GELU backward 42-48 -> 37-39 ms. The same
        // layout in `bias_forward_rows_words` measured no change on lavapipe.
        // f32 rows of whole words take the word kernel at any width (4096 x 4100 on lavapipe / GL: 48-52 / 44-52
        // ms against 60-71 / 62-66 ms for dx and then its column sums), 16-bit rows of whole pairs the pair
        // kernel (4096 x 4098 bf16 / f16 on lavapipe: 45-46 / 47-54 ms against 63-71 / 85-89 ms).
        let (entry, per_thread) = if words {
            ("bias_backward_fused_words", 4)
        } else if pairs {
            ("bias_backward_fused_pairs", 2)
        } else {
            ("bias_backward_fused", UNIT_ELEMENTS)
        };
        let k = key(self, entry, x, Some(dy), dx, bias);
        let partial = r.partials(gpu)?;
        // One dispatch per row chunk (one chunk where every operand fits a binding), each binding its rows of x,
        // dy and dx and its blocks of the partial sums at offsets; the blocks are then reduced together.
        for chunk in row_chunks(gpu, &r, &[x, dy, dx])? {
            let entries = vec![
                chunk.binding(Slot::X, x, cols),
                chunk.binding(Slot::Dy, dy, cols),
                chunk.binding(Slot::Out, dx, cols),
                vector_binding(Slot::Bias, bias)?,
                chunk.partials(&r, &partial),
            ];
            let g = column_grid(gpu, cols / per_thread, chunk.blocks, wg)?;
            run(gpu, encoder, &k, entries, &chunk.reduction_params(&r), g)?;
        }
        r.reduce(
            encoder,
            &key(self, "reduce_partials", x, Some(dy), dx, db),
            &partial,
            db,
        )
    }

    /// `f(x + b)` into a new tensor of x's type; submits and waits.
    pub fn bias_forward(self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let y = x.zeros_like()?;
        x.gpu().submit_and_wait("bias_forward", |enc| {
            self.record_bias_forward(enc, x, bias, &y)
        })?;
        Ok(y)
    }

    /// `(dx, db)` into new tensors of x's and the bias's types; submits and waits.
    pub fn bias_backward(self, x: &Tensor, bias: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
        let dx = x.zeros_like()?;
        let db = bias.zeros_like()?;
        x.gpu().submit_and_wait("bias_backward", |enc| {
            self.record_bias_backward(enc, x, bias, dy, &dx, &db)
        })?;
        Ok((dx, db))
    }
}
