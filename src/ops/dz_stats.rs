//! Activation-derivative statistics of a dense layer's pre-activation Z, counted by the pass that already reads
//! it (`shaders/dz_stats.wgsl`): the backward's `dZ = dY * f'(Z)`, written exactly as the elementwise backward
//! kernel writes it, and for every element of Z
//!
//! ```text
//! dead       f'(z) == 0                                  (a ReLU unit at z <= 0, a hardtanh outside its range)
//! saturated  0 < |f'(z)| < SATURATION_THRESHOLD = 1e-3   (sigmoid or tanh deep in a tail, GELU far below 0)
//! ```
//!
//! with `f'` evaluated in f32 as the backward pass evaluates it (`2 max(z, 0)` for squared ReLU); NaN counts as
//! neither. The threshold is absolute: it compares the factor by which the activation scales a gradient with
//! 1e-3, whatever the activation's largest slope (0.25 for sigmoid, 1 for tanh and the rectifiers). It is not a
//! tail test: where a non-monotone activation's slope crosses 0 (GELU near z = -0.75, SiLU -1.28, Mish -1.19,
//! HardSwish -1.5) a narrow band counts as saturated too, and so does tanhshrink's flat middle, `f'(z) = tanh^2 z`
//! below 1e-3 for |z| < 0.032.
//!
//! and for every unit (column of Z, the layer's last dimension) whether any row gave it a nonzero `f'(z)`, and
//! whether any gave it `|f'(z)| >= SATURATION_THRESHOLD`: a unit that none did is dead for the whole batch (the
//! "dead ReLU" of the literature, where the element count also counts a live unit's inactive rows), and a live
//! unit with no row at or above the threshold is saturated for the whole batch.
//!
//! The counts are added, with workgroup then global atomics, into a counter tensor `[dead, saturated, flags of
//! each of the cols units]` (`2 + cols` elements, [`counts_for`]; bit 0 of a unit's flags: some row has
//! `f'(z) != 0`, bit 1: some row has `|f'(z)| >= SATURATION_THRESHOLD`) whose 32-bit words hold `u32` (the
//! tensor's dtype says F32 only because tensors have float types: read it with [`read_counts`]); the caller
//! zeroes it ([`clear_counts`]) when a new count starts. Integer counts and flags in any order give the same
//! result, so it is deterministic.

use super::elementwise::dispatch;
use super::matmul::{check_distinct, expect_shape};
use super::recording::Recording;
use crate::dispatch::grid;
use crate::ops::activation::activation_constants;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{Activation, DType, Error, Result, Tensor};

/// `|f'(z)|` below this, and not zero, counts as saturated.
pub const SATURATION_THRESHOLD: f32 = 1e-3;

/// Elements per thread, as `PER_THREAD` in the shader.
const PER_THREAD: u64 = 8;

const OP: &str = "dz_stats";

/// The units of Z: its last dimension (1 for a 0-d Z).
fn units_of(z: &Tensor) -> usize {
    *z.shape().last().unwrap_or(&1)
}

/// Checks that `counts` is a counter tensor for `z`: f32-typed, shape `[2 + units]`, on `z`'s context.
fn check_counts(z: &Tensor, counts: &Tensor) -> Result<()> {
    expect_shape(OP, z.gpu(), counts, &[2 + units_of(z)])
}

/// Records the zeroing of a counter tensor ([`crate::Error::MissingUsage`] for a host buffer without
/// `COPY_DST`).
pub fn clear_counts(encoder: &mut wgpu::CommandEncoder, counts: &Tensor) -> crate::Result<()> {
    Recording::atomic(encoder, |rec| plan_clear_counts(rec, counts))
}

/// The commands of [`clear_counts`], planned into `encoder`.
fn plan_clear_counts(encoder: &mut Recording, counts: &Tensor) -> crate::Result<()> {
    counts.record_zero(encoder, OP)
}

/// What a counter tensor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DzCounts {
    /// Elements with `f'(z) == 0`.
    pub dead: u32,
    /// Elements with `0 < |f'(z)| <` [`SATURATION_THRESHOLD`].
    pub saturated: u32,
    /// Units (columns) with `f'(z) == 0` or NaN in every row: none of the rows counted passes a gradient
    /// through them.
    pub dead_units: u32,
    /// Units that are not dead but whose every row has `|f'(z)| <` [`SATURATION_THRESHOLD`] (or is dead or NaN).
    pub saturated_units: u32,
}

impl DzCounts {
    /// The counts from a counter tensor's words `[dead, saturated, flags..]` (see the module documentation).
    pub fn from_words(words: &[f32]) -> Result<DzCounts> {
        match words {
            [dead, saturated, flags @ ..] => Ok(DzCounts {
                dead: dead.to_bits(),
                saturated: saturated.to_bits(),
                dead_units: flags.iter().filter(|f| f.to_bits() & 1 == 0).count() as u32,
                saturated_units: flags.iter().filter(|f| f.to_bits() & 3 == 1).count() as u32,
            }),
            _ => Err(Error::ShapeMismatch {
                op: OP,
                expected: vec![2],
                got: vec![words.len()],
            }),
        }
    }
}

/// Reads a counter tensor back (blocks).
pub fn read_counts(counts: &Tensor) -> Result<DzCounts> {
    DzCounts::from_words(&counts.read::<f32>()?)
}

/// The two counters are u32 words that every chunk of a record (and every pass of an `Mlp` step) adds into: past
/// `u32::MAX` elements they would wrap, so such a count is refused.
pub(crate) fn check_countable(n: u64) -> Result<()> {
    if n > u64::from(u32::MAX) {
        return Err(Error::LimitExceeded {
            limit: "elements added into one dz_stats counter (u32)",
            max: u64::from(u32::MAX),
            requested: n,
        });
    }
    Ok(())
}

/// Records the counts of `act`'s derivative over `z` into `counts` and, when `grad = Some((dy, dz))`, writes
/// `dz = dy * f'(z)` in the same pass. `z`, `dy`, `dz`: f32, one shape; `counts`: `[2 + units]` (added to).
pub fn record(
    encoder: &mut wgpu::CommandEncoder,
    act: Activation,
    z: &Tensor,
    grad: Option<(&Tensor, &Tensor)>,
    counts: &Tensor,
) -> Result<()> {
    Recording::atomic(encoder, |rec| plan_record(rec, act, z, grad, counts))
}

/// The commands of [`record`], planned into `encoder`.
pub(crate) fn plan_record(
    encoder: &mut Recording,
    act: Activation,
    z: &Tensor,
    grad: Option<(&Tensor, &Tensor)>,
    counts: &Tensor,
) -> Result<()> {
    let gpu = z.gpu();
    gpu.check_lost()?;
    act.validate()?;
    expect_shape(OP, gpu, z, z.shape())?;
    check_counts(z, counts)?;
    let mut outs = vec![counts];
    let mut ins = vec![z.buffer()];
    if let Some((dy, dz)) = grad {
        expect_shape(OP, gpu, dy, z.shape())?;
        expect_shape(OP, gpu, dz, z.shape())?;
        outs.push(dz);
        ins.push(dy.buffer());
    }
    check_distinct(OP, &outs, &ins)?;
    let n = z.len() as u64;
    if n == 0 {
        return Ok(());
    }
    check_countable(n)?;
    let launch = gpu.launch_config();
    let entry = if grad.is_some() {
        "dz_stats"
    } else {
        "stats_only"
    };
    let constants: Vec<(&str, f64)> = activation_constants(act, launch)
        .into_iter()
        .filter(|(k, _)| *k != "PER_THREAD")
        .collect();
    let key = PipelineKey::new(ShaderId::DzStats, entry, launch.workgroup_size, &constants)
        .with_custom(act.custom_id());
    let pipeline = gpu.pipelines().get_or_create(gpu.device(), &key)?;
    let limits = gpu.limits();
    // Chunks that fit one binding and one dispatch grid, starting at offsets the device accepts.
    let align = (u64::from(limits.min_storage_buffer_offset_alignment) / 4).max(1);
    let per_group = u64::from(launch.workgroup_size) * PER_THREAD;
    let max_groups = u64::from(limits.max_compute_workgroups_per_dimension).pow(2);
    let fits = (limits.max_storage_buffer_binding_size / 4).min(max_groups * per_group);
    let per_chunk = (fits / align * align).max(align);
    let cols = units_of(z) as u64;
    let mut start = 0;
    while start < n {
        let len = per_chunk.min(n - start);
        let part = |slot, t| part(slot, t, start, len);
        let mut entries = vec![
            part(0, z),
            wgpu::BindGroupEntry {
                binding: 4,
                resource: counts.buffer().as_entire_binding(),
            },
        ];
        if let Some((dy, dz)) = grad {
            entries.push(part(1, dz));
            entries.push(part(2, dy));
        }
        let groups = grid(
            len.div_ceil(per_group),
            limits.max_compute_workgroups_per_dimension,
        )?;
        let params = [
            len as u32,
            SATURATION_THRESHOLD.to_bits(),
            cols as u32,
            (start % cols) as u32,
        ];
        dispatch(gpu, encoder, &pipeline, entry, entries, &params, groups)?;
        start += len;
    }
    Ok(())
}

/// Binds elements `[start, start + len)` of the f32 tensor `t` at `slot`.
fn part(slot: u32, t: &Tensor, start: u64, len: u64) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding: slot,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: t.buffer(),
            offset: start * 4,
            size: wgpu::BufferSize::new(len * 4),
        }),
    }
}

/// A new zeroed counter tensor for `z` (`[2 + units]`) on `z`'s context.
pub fn counts_for(z: &Tensor) -> Result<Tensor> {
    z.gpu().zeros(&[2 + units_of(z)], DType::F32)
}

#[cfg(test)]
mod tests {
    use super::check_countable;

    #[test]
    fn more_elements_than_a_u32_counter_holds_are_refused() {
        assert!(check_countable(u64::from(u32::MAX)).is_ok());
        let err = check_countable(1 << 32).unwrap_err();
        assert!(
            matches!(err, crate::Error::LimitExceeded { requested, .. } if requested == 1 << 32)
        );
    }
}
