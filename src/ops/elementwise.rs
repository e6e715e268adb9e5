//! Shared launch path of the memory-bound elementwise kernels: argument checks, chunking past the storage-binding
//! limit, the 2D workgroup grid, bind groups.

use super::recording::Recording;
use crate::dispatch::{chunks, grid, UNIT_ELEMENTS};
use crate::pipeline::PipelineKey;
use crate::{Error, Gpu, Result, Tensor};

/// Binding slots shared by every elementwise kernel (see `shaders/activation.wgsl`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// Binding 0: the input, read-only.
    X = 0,
    /// Binding 1: the output (or in-place operand), read-write.
    Out = 1,
    /// Binding 2: the incoming gradient (or a second input), read-only.
    Dy = 2,
    /// Binding 4: a per-column vector (bias), read-only, bound whole.
    Bias = 4,
    /// Binding 5: f32 partial sums, read-write, bound whole.
    Partial = 5,
    /// Binding 6: a second output (a reduced gradient, or the gate's gradient), read-write.
    Out2 = 6,
    /// Binding 7: the gradient of a two-input op's output, read-only.
    Dout = 7,
    /// Binding 8: an f32 scratch output, read-write.
    Tmp = 8,
}

/// Binding of the uniform parameters of every elementwise kernel: `[units, first_unit, ...]`.
const PARAMS_BINDING: u32 = 3;

/// Words in the smallest uniform block: every kernel's parameter struct fits, so launchers pass only the
/// fields their kernel reads and the rest are zero.
const MIN_UNIFORM_WORDS: usize = 8;

/// A uniform buffer holding `words`, zero-padded to at least [`MIN_UNIFORM_WORDS`] and a multiple of 16 bytes
/// ([`Gpu::buffer_with`]: a lost device is an error, not a panic); the caller creates it inside its error scopes.
pub(crate) fn uniform(gpu: &Gpu, words: &[u32]) -> Result<wgpu::Buffer> {
    let padded_words = words.len().max(MIN_UNIFORM_WORDS).div_ceil(4) * 4;
    gpu.buffer_with(
        "uniform",
        "actgpu.params",
        wgpu::BufferUsages::UNIFORM,
        bytemuck::cast_slice(words),
        (padded_words * 4) as u64,
    )
}

/// Fails with [`Error::LimitExceeded`] unless `buffer` fits one storage binding of `gpu`: for kernels that bind
/// their operands whole rather than in chunks.
pub(crate) fn check_whole_binding(gpu: &Gpu, buffer: &wgpu::Buffer) -> Result<()> {
    let max = gpu.limits().max_storage_buffer_binding_size;
    if buffer.size() > max {
        return Err(Error::LimitExceeded {
            limit: "max_storage_buffer_binding_size",
            max,
            requested: buffer.size(),
        });
    }
    Ok(())
}

/// Kernels that index single elements (the bias, learnable and split-layout gated ones find an element's column
/// from its index) take at most `u32::MAX` elements; the unit-indexed ones go further.
pub(crate) fn check_u32_elements(len: usize) -> Result<()> {
    if len > u32::MAX as usize {
        return Err(Error::LimitExceeded {
            limit: "elements of a fused op (u32 element indices)",
            max: u64::from(u32::MAX),
            requested: len as u64,
        });
    }
    Ok(())
}

/// The bytes of `t` the kernels may touch: its padded size ([`crate::tensor::padded_bytes`]), within its buffer
/// (a host's buffer may be larger, and only these need fit a binding).
pub(crate) fn bound_bytes(t: &Tensor) -> u64 {
    crate::tensor::padded_bytes(t.len(), t.dtype()).min(t.buffer().size())
}

/// [`Error::LimitExceeded`] where a tensor bound whole ([`vector_binding`]) passes the storage-binding limit: an
/// op checks its vectors with this before it records anything, so that a refusal leaves the caller's encoder
/// without half an op.
pub(crate) fn check_vectors(ts: &[&Tensor]) -> Result<()> {
    for t in ts {
        let max = t.gpu().limits().max_storage_buffer_binding_size;
        let bytes = bound_bytes(t);
        if bytes > max {
            return Err(Error::LimitExceeded {
                limit: "max_storage_buffer_binding_size",
                max,
                requested: bytes,
            });
        }
    }
    Ok(())
}

/// Binds a tensor that a kernel reads or writes whole in every dispatch (a bias, a learnable parameter, their
/// gradients, column sums): its [`bound_bytes`] from the start of its buffer, or [`Error::LimitExceeded`] where
/// those pass the storage-binding limit (the wide operands beside it run in chunks; this one cannot).
pub(crate) fn vector_binding(slot: Slot, t: &Tensor) -> Result<wgpu::BindGroupEntry<'_>> {
    check_vectors(&[t])?;
    Ok(sized(slot, t.buffer(), 0, bound_bytes(t)))
}

/// `bytes` of `buffer` from `offset` at `slot`.
pub(crate) fn sized(
    slot: Slot,
    buffer: &wgpu::Buffer,
    offset: u64,
    bytes: u64,
) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding: slot as u32,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size: wgpu::BufferSize::new(bytes),
        }),
    }
}

/// Binds `tensor` whole at `slot`.
pub(crate) fn whole(slot: Slot, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding: slot as u32,
        resource: buffer.as_entire_binding(),
    }
}

/// A dispatch's workgroup counts `(x, y, z)`; from `(x, y)` with `z = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grid(pub u32, pub u32, pub u32);

impl From<(u32, u32)> for Grid {
    fn from((x, y): (u32, u32)) -> Grid {
        Grid(x, y, 1)
    }
}

impl From<(u32, u32, u32)> for Grid {
    fn from((x, y, z): (u32, u32, u32)) -> Grid {
        Grid(x, y, z)
    }
}

/// Records one dispatch of the pipeline `key` names (compiled on first use) over a grid of workgroups with
/// `entries` plus the uniform `params` at binding 3.
pub(crate) fn run(
    gpu: &Gpu,
    encoder: &mut Recording,
    key: &PipelineKey,
    entries: Vec<wgpu::BindGroupEntry>,
    params: &[u32],
    grid: impl Into<Grid>,
) -> Result<()> {
    let pipeline = gpu.pipelines().get_or_create(gpu.device(), key)?;
    dispatch(gpu, encoder, &pipeline, key.entry, entries, params, grid)?;
    Ok(())
}

/// Plans one dispatch of `pipeline` over a grid of workgroups with `entries` plus the uniform `params` at
/// binding 3.
pub(crate) fn dispatch(
    gpu: &Gpu,
    encoder: &mut Recording,
    pipeline: &wgpu::ComputePipeline,
    label: &str,
    entries: Vec<wgpu::BindGroupEntry>,
    params: &[u32],
    grid: impl Into<Grid>,
) -> Result<()> {
    let Grid(gx, gy, gz) = grid.into();
    if gx == 0 || gy == 0 || gz == 0 {
        return Ok(());
    }
    // Inside error scopes: a bound buffer the host destroyed, or one of another device, fails here, and on a
    // host's device the error would otherwise reach its handler (wgpu's default panics) instead of the caller. A
    // lost or destroyed device fails at the uniform buffer's mapping, as DeviceLost where wgpu has noticed.
    let bind_group = gpu
        .scoped("create_bind_group", || -> Result<wgpu::BindGroup> {
            let params = uniform(gpu, params)?;
            let mut entries = entries;
            entries.push(wgpu::BindGroupEntry {
                binding: PARAMS_BINDING,
                resource: params.as_entire_binding(),
            });
            Ok(gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            }))
        })
        .map_err(|e| match gpu.lost_or(e) {
            Error::Wgpu { message, .. } => Error::Wgpu {
                op: "create_bind_group",
                message: format!("{label}: {message}"),
            },
            e => e,
        })??;
    encoder.dispatch(pipeline, bind_group, (gx, gy, gz), label);
    Ok(())
}

/// Checks that every tensor shares the first one's context and shape.
fn check_alike<'a>(op: &'static str, tensors: impl IntoIterator<Item = &'a Tensor>) -> Result<()> {
    let mut tensors = tensors.into_iter();
    let Some(first) = tensors.next() else {
        return Ok(());
    };
    for t in tensors {
        if !t.gpu().same_context(first.gpu()) {
            return Err(Error::DeviceMismatch { op });
        }
        if t.shape() != first.shape() {
            return Err(Error::ShapeMismatch {
                op,
                expected: first.shape().to_vec(),
                got: t.shape().to_vec(),
            });
        }
    }
    Ok(())
}

/// Checks that every tensor shares `first`'s context and shape, and that no two share a buffer. Element types
/// may differ: every kernel decodes each operand by its own type.
pub(crate) fn check_operands(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    check_alike(op, tensors.iter().copied())?;
    for (i, t) in tensors.iter().enumerate() {
        if tensors[..i].iter().any(|o| o.buffer() == t.buffer()) {
            return Err(Error::InvalidArgument {
                op,
                reason: "the same buffer is passed twice; use the in-place variant".into(),
            });
        }
    }
    Ok(())
}

/// [`check_operands`] for kernels whose `inputs` are all read-only: they may share a buffer (a gate applied to
/// its own value, `a == g`), while each of `outputs` must be a buffer of its own.
pub(crate) fn check_inputs_outputs(
    op: &'static str,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
) -> Result<()> {
    check_alike(op, inputs.iter().chain(outputs).copied())?;
    let inputs: Vec<&wgpu::Buffer> = inputs.iter().map(|t| t.buffer()).collect();
    super::matmul::check_distinct(op, outputs, &inputs)
}

/// Records one elementwise kernel over `len` elements into `encoder`, splitting it into dispatches whose
/// bindings fit the device's storage-binding limit. Length 0 records nothing. The uniform parameters are
/// `[units in this dispatch, first unit, params_tail...]`; `whole_bindings` are bound whole in every dispatch
/// ([`vector_binding`]).
pub(crate) fn record(
    gpu: &Gpu,
    encoder: &mut Recording,
    key: &PipelineKey,
    operands: &[(Slot, &Tensor)],
    len: usize,
    whole_bindings: &[(Slot, &Tensor)],
    params_tail: &[u32],
) -> Result<()> {
    record_with_buffers(
        gpu,
        encoder,
        key,
        operands,
        len,
        whole_bindings,
        &[],
        params_tail,
    )
}

/// [`record`] with `buffers` (scratch the op filled before, such as softmax's row statistics) also bound whole
/// in every dispatch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_with_buffers(
    gpu: &Gpu,
    encoder: &mut Recording,
    key: &PipelineKey,
    operands: &[(Slot, &Tensor)],
    len: usize,
    whole_bindings: &[(Slot, &Tensor)],
    buffers: &[(Slot, &wgpu::Buffer)],
    params_tail: &[u32],
) -> Result<()> {
    gpu.check_lost()?;
    if len == 0 {
        return Ok(());
    }
    let pipeline = gpu.pipelines().get_or_create(gpu.device(), key)?;
    let limits = gpu.limits();
    let units_per_workgroup = key.units_per_workgroup();
    let units = (len as u64).div_ceil(UNIT_ELEMENTS as u64);
    let widest_unit = operands
        .iter()
        .map(|(_, t)| t.dtype().unit_bytes())
        .max()
        .unwrap_or(16);
    // A chunk starts at a multiple of the offset alignment, so at least that many units must fit a binding (a
    // host's device may allow less, which would bind past the limit); and it must fit one dispatch grid.
    let align_units = (u64::from(limits.min_storage_buffer_offset_alignment) / 16).max(1);
    if align_units * widest_unit > limits.max_storage_buffer_binding_size {
        return Err(Error::LimitExceeded {
            limit: "max_storage_buffer_binding_size (below one aligned chunk)",
            max: limits.max_storage_buffer_binding_size,
            requested: align_units * widest_unit,
        });
    }
    let grid_units = u64::from(limits.max_compute_workgroups_per_dimension)
        .pow(2)
        .saturating_mul(units_per_workgroup);
    for (first, count) in chunks(
        units,
        limits
            .max_storage_buffer_binding_size
            .min(grid_units.saturating_mul(widest_unit)),
        limits.min_storage_buffer_offset_alignment,
        widest_unit,
    ) {
        let groups = count.div_ceil(units_per_workgroup);
        let grid = grid(groups, limits.max_compute_workgroups_per_dimension)?;
        let mut entries: Vec<wgpu::BindGroupEntry> = operands
            .iter()
            .map(|&(slot, t)| wgpu::BindGroupEntry {
                binding: slot as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: t.buffer(),
                    offset: first * t.dtype().unit_bytes(),
                    size: wgpu::BufferSize::new(count * t.dtype().unit_bytes()),
                }),
            })
            .collect();
        for &(slot, t) in whole_bindings {
            entries.push(vector_binding(slot, t)?);
        }
        for &(slot, b) in buffers {
            entries.push(whole(slot, b));
        }
        // `first` counts 8-element units; no kernel reads it past 2^32 units today, but one that did would
        // read a wrapped offset, so it is refused rather than truncated.
        let first = u32::try_from(first).map_err(|_| Error::LimitExceeded {
            limit: "first unit of a chunk (u32 kernel parameter)",
            max: u64::from(u32::MAX),
            requested: first,
        })?;
        let mut params = vec![count as u32, first];
        params.extend_from_slice(params_tail);
        dispatch(gpu, encoder, &pipeline, key.entry, entries, &params, grid)?;
    }
    Ok(())
}
