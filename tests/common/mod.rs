//! Shared by the integration tests: one GPU context per test binary.
//!
//! There is no silent skip: without an adapter every GPU test fails with a message that says how to get one.

#![allow(dead_code)]

pub mod products;

use std::sync::OnceLock;

use actgpu::verify::fused::FusedCheck;
use actgpu::verify::{poison_bits, POISON};
use actgpu::{DType, Gpu, Mlp, Tensor};

/// The test binary's context, on the backend `WGPU_BACKEND` names.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}")))
}

/// Whether the test binary's device has `SHADER_F16` (native f16; lavapipe does, GL here does not).
pub fn has_shader_f16() -> bool {
    gpu()
        .device()
        .features()
        .contains(actgpu::wgpu::Features::SHADER_F16)
}

/// The largest mixed error (`actgpu::verify::survey::mixed_ulp_error`) allowed of an f32 activation's result in
/// the normal range, in ULP: 16 on a CPU adapter (lavapipe and llvmpipe GL measured 11.1 at most over the whole
/// line, ACCURACY.md), 32 on others. WGSL lets `exp` be 3 ULP off near 0 and a division 2.5, and a derivative
/// composes a handful of them, so a conformant driver that uses every allowance can reach about 20; an unstable
/// formula reads as hundreds or more.
pub fn max_mixed_ulp() -> f64 {
    if on_cpu_adapter() {
        16.0
    } else {
        32.0
    }
}

/// Whether the test binary's adapter is a CPU one (lavapipe, llvmpipe), where the accuracy bounds measured on
/// such adapters apply; other adapters are held to WGSL's allowances.
pub fn on_cpu_adapter() -> bool {
    gpu().adapter_info().device_type == actgpu::wgpu::DeviceType::Cpu
}

/// Asserts that `checks` is not empty and that every check passed, naming the failing op, pass and type.
pub fn assert_checks_ok(what: &str, checks: Vec<FusedCheck>) {
    assert!(!checks.is_empty(), "{what}: no checks");
    for c in checks {
        assert!(
            c.ok(),
            "{what}: {} {} ({}): {}",
            c.op,
            c.pass.name(),
            c.dtype.name(),
            c.check
        );
    }
}

/// Formats the failures of a list of checks for an assertion message.
pub fn describe<T: std::fmt::Debug>(failures: &[T]) -> String {
    failures
        .iter()
        .map(|f| format!("{f:#?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The values widened to f64.
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `rows` seeded class indices below `classes`.
pub fn labels(rows: usize, classes: usize, seed: u64) -> Vec<u32> {
    let mut rng = actgpu::verify::Rng::new(seed);
    (0..rows)
        .map(|_| (rng.next_u64() % classes as u64) as u32)
        .collect()
}

/// Fails with the first few elements outside `|got - want| <= bound(i)`.
pub fn assert_within(what: &str, got: &[f32], want: &[f64], bound: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<String> = (0..got.len())
        .filter(|&i| {
            let err = (f64::from(got[i]) - want[i]).abs();
            err.is_nan() || err > bound(i)
        })
        .take(5)
        .map(|i| {
            format!(
                "[{i}] got {} want {} err {:.3e} bound {:.3e}",
                got[i],
                want[i],
                (f64::from(got[i]) - want[i]).abs(),
                bound(i)
            )
        })
        .collect();
    assert!(bad.is_empty(), "{what}:\n{}", bad.join("\n"));
}

/// The f32 bits of `v`, for comparisons that must hold bit for bit.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Asserts that two training runs ended the same bit for bit: their loss histories, every weight and bias,
/// and every activation parameter.
pub fn assert_same_training((a, losses_a): (&Mlp, &[f32]), (b, losses_b): (&Mlp, &[f32])) {
    assert_eq!(bits(losses_a), bits(losses_b));
    let (pa, pb) = (a.params().unwrap(), b.params().unwrap());
    assert_eq!(pa.len(), pb.len());
    for ((wa, ba), (wb, bb)) in pa.iter().zip(&pb) {
        assert_eq!(bits(wa), bits(wb));
        assert_eq!(bits(ba), bits(bb));
    }
    let (qa, qb) = (
        a.activation_params().unwrap(),
        b.activation_params().unwrap(),
    );
    assert_eq!(qa.len(), qb.len());
    for (x, y) in qa.iter().zip(&qb) {
        assert_eq!(bits(x), bits(y));
    }
}

/// A context whose dispatch grids hold at most 32 workgroups per dimension, so that rows of a few thousand
/// columns need the row kernels' column grid to continue along z (and the elementwise grids to fold into y).
/// Workgroups of 64 threads with 8 units each let the elementwise passes cover 4M elements in that grid.
pub fn small_grid_gpu() -> Gpu {
    let gpu = Gpu::with_options(actgpu::GpuOptions {
        max_workgroups_per_dimension: Some(32),
        launch: Some(actgpu::LaunchConfig {
            workgroup_size: 64,
            units_per_thread: 8,
        }),
        ..actgpu::GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gpu.limits().max_compute_workgroups_per_dimension, 32);
    gpu
}

/// A context on the test binary's adapter with `options`, its storage bindings capped at `bytes` (checked to be
/// the limit the kernels plan with, so a case meant to run in chunks does).
pub fn capped_binding_gpu(bytes: u64, options: actgpu::GpuOptions) -> Gpu {
    let gpu = Gpu::with_options(actgpu::GpuOptions {
        max_storage_binding_bytes: Some(bytes),
        ..options
    })
    .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    assert_eq!(gpu.limits().max_storage_buffer_binding_size, bytes);
    gpu
}

/// A context at actgpu's smallest supported limits ([`Gpu::MINIMUM_LIMITS`]: OpenGL ES 3.1's 128 invocations per
/// workgroup, 6 storage buffers per stage, 128 MiB bindings), whatever the adapter offers. wgpu enforces the
/// limits a device was created with, so a kernel that needs more fails to build its pipeline here.
pub fn minimum_limits_gpu() -> Gpu {
    let gpu = Gpu::with_options(actgpu::GpuOptions {
        cap_limits: Some(Gpu::MINIMUM_LIMITS),
        ..actgpu::GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    let limits = gpu.device().limits();
    assert_eq!(limits.max_compute_invocations_per_workgroup, 128);
    assert_eq!(limits.max_storage_buffers_per_shader_stage, 6);
    gpu
}

/// A `shape` tensor of `dtype` on `g` holding values no kernel stores: `POISON` in f32, a signalling NaN in 16
/// bits, so that an element a kernel leaves unwritten fails its comparison.
pub fn poisoned(g: &Gpu, shape: &[usize], dtype: DType) -> Tensor {
    let n = shape.iter().product();
    match dtype {
        DType::F16 => {
            let v = vec![half::f16::from_bits(poison_bits(dtype)); n];
            g.upload_shaped(&v, shape).unwrap()
        }
        DType::BF16 => {
            let v = vec![half::bf16::from_bits(poison_bits(dtype)); n];
            g.upload_shaped(&v, shape).unwrap()
        }
        _ => g.upload_shaped(&vec![POISON; n], shape).unwrap(),
    }
}
