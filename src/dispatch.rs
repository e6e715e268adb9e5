//! Dispatch math: how many workgroups, in what grid, and how a long buffer is split into bindable chunks.

use crate::{Error, Result};

/// Elements in one work unit of the elementwise kernels: two 16-byte words of f32, or one of packed 16-bit data.
pub const UNIT_ELEMENTS: usize = 8;

/// The most threads a one-dimensional workgroup may have on a device of these limits: the total and the x
/// dimension both bound it.
pub fn max_workgroup_threads(limits: &wgpu::Limits) -> u32 {
    limits
        .max_compute_invocations_per_workgroup
        .min(limits.max_compute_workgroup_size_x)
}

/// [`Error::LimitExceeded`] unless a workgroup of `threads` fits a device of these limits.
pub(crate) fn check_workgroup_threads(limits: &wgpu::Limits, threads: u32) -> Result<()> {
    let max = max_workgroup_threads(limits);
    if threads > max {
        return Err(Error::LimitExceeded {
            limit: "max_compute_invocations_per_workgroup",
            max: u64::from(max),
            requested: u64::from(threads),
        });
    }
    Ok(())
}

/// Threads per workgroup and work units (of [`UNIT_ELEMENTS`] elements) per thread of the memory-bound kernels.
/// One value feeds both the WGSL overrides `WG`, `PER_THREAD` and the host's grid arithmetic, so they cannot
/// disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LaunchConfig {
    /// Threads per workgroup (WGSL override `WG`).
    pub workgroup_size: u32,
    /// Work units of [`UNIT_ELEMENTS`] elements handled by one thread (WGSL override `PER_THREAD`).
    pub units_per_thread: u32,
}

impl LaunchConfig {
    /// 256 threads, one unit each: a good default on discrete GPUs.
    pub const GPU: LaunchConfig = LaunchConfig {
        workgroup_size: 256,
        units_per_thread: 1,
    };
    /// 128 threads, one unit each, for CPU-emulated adapters (lavapipe, llvmpipe). Measured with
    /// `examples/bench.rs --launch` on lavapipe (BENCHMARKS.md): 64-thread workgroups were 22% slower (per-workgroup
    /// overhead), two units per thread slowed the heaviest kernels (GELU backward, bias + GELU, GeGLU) by a
    /// third, and 128 to 1024 threads of one unit were equal within noise; 128 stays under the 256-invocation
    /// default limit of other software adapters.
    pub const CPU: LaunchConfig = LaunchConfig {
        workgroup_size: 128,
        units_per_thread: 1,
    };

    /// 512 threads, four units each, for the [`Intensity::Streaming`] activation kernels on CPU-emulated adapters.
    /// Measured on lavapipe (BENCHMARKS.md) with relu, hardswish and gelu forward at 2^24 f32 elements: relu went
    /// from 0.81 of the copy ceiling at 128x1 to 0.94 (with the word layout of `shaders/activation.wgsl`), and
    /// bf16 relu from 11.7 ms to about 8 ms; the same shape slows GELU, so arithmetic-bound kernels keep
    /// [`LaunchConfig::CPU`].
    pub const CPU_STREAMING: LaunchConfig = LaunchConfig {
        workgroup_size: 512,
        units_per_thread: 4,
    };

    /// The default for an adapter of this type.
    pub fn for_device_type(device_type: wgpu::DeviceType) -> Self {
        Self::for_device(device_type, Intensity::Arithmetic)
    }

    /// The default for a kernel of this intensity on an adapter of this type: on CPU adapters
    /// [`LaunchConfig::CPU_STREAMING`] or [`LaunchConfig::CPU`], elsewhere [`LaunchConfig::GPU`].
    pub fn for_device(device_type: wgpu::DeviceType, intensity: Intensity) -> Self {
        match (device_type, intensity) {
            (wgpu::DeviceType::Cpu, Intensity::Streaming) => Self::CPU_STREAMING,
            (wgpu::DeviceType::Cpu, Intensity::Arithmetic) => Self::CPU,
            _ => Self::GPU,
        }
    }

    /// The same work per workgroup within the device's limits: while the workgroup is larger than `limits`
    /// allow, half the threads do twice the units each (units per thread saturate at `u32::MAX`, which no
    /// launch check accepts).
    pub fn fit(self, limits: &wgpu::Limits) -> Self {
        let max = max_workgroup_threads(limits).max(1);
        let mut fitted = self;
        while fitted.workgroup_size > max {
            fitted.workgroup_size = fitted.workgroup_size.div_ceil(2);
            fitted.units_per_thread = fitted.units_per_thread.saturating_mul(2);
        }
        fitted
    }

    /// Work units covered by one workgroup.
    pub fn units_per_workgroup(self) -> u64 {
        u64::from(self.workgroup_size) * u64::from(self.units_per_thread)
    }
}

/// What bounds an elementwise kernel, which decides its launch shape where that matters (CPU adapters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intensity {
    /// A few operations per element, no transcendental: bound by memory bandwidth (relu, hardswish, ...; see
    /// [`crate::Activation::intensity`]).
    Streaming,
    /// Tens of operations per element: bound by arithmetic on CPU adapters (gelu, silu, tanh, ...).
    Arithmetic,
}

/// A 2D grid of `groups` workgroups: x up to `max_per_dim`, y as many rows as needed. The kernel flattens it as
/// `wid.x + wid.y * num_workgroups.x` and discards threads past the end.
pub fn grid(groups: u64, max_per_dim: u32) -> Result<(u32, u32)> {
    if groups == 0 {
        return Ok((0, 0));
    }
    if max_per_dim == 0 {
        return Err(Error::LimitExceeded {
            limit: "max_compute_workgroups_per_dimension",
            max: 0,
            requested: groups,
        });
    }
    let x = groups.min(u64::from(max_per_dim));
    let y = groups.div_ceil(x);
    if y > u64::from(max_per_dim) {
        return Err(Error::LimitExceeded {
            limit: "max_compute_workgroups_per_dimension (squared)",
            max: u64::from(max_per_dim) * u64::from(max_per_dim),
            requested: groups,
        });
    }
    Ok((x as u32, y as u32))
}

/// The most units one dispatch of [`chunks`] covers.
pub const MAX_CHUNK_UNITS: u64 = 1 << 30;

/// Splits `units` work units into chunks whose bindings fit one storage binding of at most `max_binding_bytes`
/// when a unit takes up to `unit_bytes` bytes, with chunk starts aligned to `offset_alignment` bytes for units
/// of 16 bytes or more. Returns `(first_unit, unit_count)` pairs.
pub fn chunks(
    units: u64,
    max_binding_bytes: u64,
    offset_alignment: u32,
    unit_bytes: u64,
) -> Vec<(u64, u64)> {
    let align = (u64::from(offset_alignment) / 16).max(1);
    // At most 2^30 units a chunk whatever the binding limit: the kernels index a chunk's 16-byte words in u32,
    // up to 2 per unit of f32 data.
    let fit = (max_binding_bytes / unit_bytes.max(1)).min(MAX_CHUNK_UNITS);
    let per_chunk = (fit / align * align).max(align);
    let mut out = Vec::new();
    let mut start = 0;
    while start < units {
        let count = per_chunk.min(units - start);
        out.push((start, count));
        start += count;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_every_group_within_limits() {
        for groups in [1u64, 2, 65_535, 65_536, 65_535 * 3 + 1, 1 << 24] {
            let (x, y) = grid(groups, 65_535).unwrap();
            assert!(x <= 65_535 && y <= 65_535);
            let total = u64::from(x) * u64::from(y);
            assert!(total >= groups, "{groups}: {x} x {y}");
            assert!(
                total - groups < u64::from(x),
                "{groups}: one spare row at most"
            );
        }
        assert_eq!(grid(0, 65_535).unwrap(), (0, 0));
        assert!(matches!(
            grid(65_535u64 * 65_535 + 1, 65_535),
            Err(Error::LimitExceeded { .. })
        ));
    }

    #[test]
    fn fit_keeps_the_work_per_workgroup_within_limits() {
        let limits = wgpu::Limits::default();
        let fitted = LaunchConfig::CPU_STREAMING.fit(&limits);
        assert!(fitted.workgroup_size <= limits.max_compute_invocations_per_workgroup);
        assert_eq!(
            fitted.units_per_workgroup(),
            LaunchConfig::CPU_STREAMING.units_per_workgroup()
        );
        assert_eq!(LaunchConfig::CPU.fit(&limits), LaunchConfig::CPU);
    }

    #[test]
    fn chunks_are_aligned_and_cover_exactly() {
        let c = chunks(1000, 1024, 256, 16);
        assert_eq!(c[0], (0, 64));
        assert_eq!(chunks(1000, 1024, 256, 32)[0], (0, 32));
        assert_eq!(c.iter().map(|&(_, n)| n).sum::<u64>(), 1000);
        for w in c.windows(2) {
            assert_eq!(w[0].0 + w[0].1, w[1].0);
            assert_eq!((w[1].0 * 16) % 256, 0);
        }
        assert!(chunks(0, 1024, 256, 32).is_empty());
        assert_eq!(chunks(5, 1 << 27, 256, 32), vec![(0, 5)]);
    }
}
