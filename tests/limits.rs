//! A device at actgpu's smallest supported limits ([`Gpu::MINIMUM_LIMITS`]): the kernels whose workgroups are
//! sized for 256 threads (the reductions of the losses, the column sums and a shared parameter's gradient; the
//! tiled matmul) run in 128-thread workgroups there and still match the f64 reference, and a device below the
//! minimum is refused with the limit's name rather than failing at its first kernel.

mod common;

use actgpu::ops::matmul::{form_with, Form};
use actgpu::verify::fused::{check_bias, check_gated, check_learnable, FusedInputs};
use actgpu::verify::training::{check_dense_layer, check_losses, check_positive_product};
use actgpu::{
    wgpu, Activation, DType, Dense, DzMode, Error, Gated, Gpu, GpuOptions, Learnable, MatmulKernel,
};
use common::{gpu, minimum_limits_gpu};

fn assert_all_ok(what: &str, checks: &[actgpu::verify::fused::FusedCheck]) {
    assert!(!checks.is_empty(), "{what}: no checks");
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok()).collect();
    assert!(failed.is_empty(), "{what}: {failed:#?}");
}

/// The losses' one-workgroup means (both the single-dispatch path, at most 128 rows here, and the two-pass one),
/// the column sums' `reduce_partials` with more row blocks than its 4 lanes, the shared-parameter reduction, and
/// the gated unit kernels.
#[test]
fn reductions_match_the_reference_in_128_thread_workgroups() {
    let g = minimum_limits_gpu();
    assert_all_ok("losses", &check_losses(&g).unwrap());
    // 333 rows: past the one-dispatch column sums (128 rows), in row blocks of 8: 42 blocks.
    let random = FusedInputs::Random(7);
    for (cols, dtype) in [(40, DType::F32), (13, DType::F32), (24, DType::BF16)] {
        let checks = check_bias(&g, Activation::Gelu, 333, cols, dtype, dtype, random).unwrap();
        assert_all_ok(&format!("bias gelu {cols} {}", dtype.name()), &checks);
    }
    for shared in [true, false] {
        let checks = check_learnable(
            &g,
            Learnable::Prelu,
            1000,
            24,
            shared,
            DType::F32,
            DType::F32,
            random,
        )
        .unwrap();
        assert_all_ok(&format!("prelu shared={shared}"), &checks);
    }
    // The gated [a | g] layout's unit kernels, on the flat grid and on the grid of rows.
    for half in [24, 1040] {
        let checks = check_gated(&g, Gated::SWIGLU, 5, half, DType::F32, random).unwrap();
        assert_all_ok(&format!("swiglu half {half}"), &checks);
    }
}

/// The 256-thread matmul kernels give way to the 64-thread one, which gives the same bits as on a device where
/// the choice was the 64-thread kernel's from the start.
#[test]
fn tiled_matmul_runs_as_tiled32_in_128_thread_workgroups() {
    let g = minimum_limits_gpu();
    for kernel in [MatmulKernel::Tiled, MatmulKernel::TiledWide] {
        assert_eq!(
            kernel.on_device(&g.device().limits()),
            MatmulKernel::Tiled32
        );
        assert_eq!(kernel.on_device(&gpu().device().limits()), kernel);
        let dense = Dense {
            activation: Activation::Gelu,
            kernel: Some(kernel),
            dz: DzMode::Fused,
        };
        assert_all_ok(kernel.name(), &check_dense_layer(&g, dense).unwrap());
    }
    let (m, k, n) = (70, 300, 45);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) / 24.0)
        .collect();
    let product = |g: &Gpu, kernel| {
        let a = g.upload_shaped(&a, &[m, k]).unwrap();
        let b = g.upload_shaped(&b, &[k, n]).unwrap();
        let c = form_with(kernel, Form::AB, &a, &b).unwrap();
        c.read_f32().unwrap()
    };
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(
        bits(product(&g, MatmulKernel::Tiled)),
        bits(product(gpu(), MatmulKernel::Tiled32))
    );
}

/// A product split over K on a grid of 32 workgroups per dimension whose pass adding the splits would need
/// more than 32 x 32 workgroups runs unsplit instead of failing (`Tiled`: 256 x 1,152 x 128 makes 72 blocks of C,
/// two splits, and 1,152 workgroups to add them; `Tiled32`: 128 x 1,024 x 128, 2,048).
#[test]
fn a_split_whose_sum_pass_passes_the_grid_runs_unsplit() {
    let g = common::small_grid_gpu();
    for (kernel, (m, n)) in [
        (MatmulKernel::Tiled, (256, 1152)),
        (MatmulKernel::Tiled32, (128, 1024)),
    ] {
        let check = check_positive_product(&g, kernel, Form::AB, (m, 128, n), 7).unwrap();
        assert!(check.ok(), "{kernel:?}: {check:?}");
    }
}

/// Too few storage buffers: `Gpu::with_options` passes the adapter over and says which limit, and a host's
/// device is refused by `Gpu::from_device_with_options` with `Error::LimitExceeded`.
#[test]
fn a_device_below_the_minimum_is_refused() {
    let small = wgpu::Limits {
        max_storage_buffers_per_shader_stage: 4,
        ..Gpu::MINIMUM_LIMITS
    };
    let options = GpuOptions {
        cap_limits: Some(small.clone()),
        ..GpuOptions::default()
    };
    match Gpu::with_options(options) {
        Err(Error::RequestDevice { reason }) => {
            assert!(
                reason.contains("max_storage_buffers_per_shader_stage"),
                "{reason}"
            );
        }
        Err(e) => panic!("expected RequestDevice, got {e}"),
        Ok(_) => panic!("a device with 4 storage buffers per stage was accepted"),
    }
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .unwrap_or_else(|e| panic!("no adapter ({e}); {}", actgpu::NO_ADAPTER_HINT));
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: small,
        ..Default::default()
    }))
    .unwrap();
    match Gpu::from_device_with_options(device, queue, &GpuOptions::default()) {
        Err(Error::LimitExceeded {
            limit,
            max,
            requested,
        }) => {
            assert_eq!(limit, "max_storage_buffers_per_shader_stage");
            assert_eq!((max, requested), (4, 6));
        }
        Err(e) => panic!("expected LimitExceeded, got {e}"),
        Ok(_) => panic!("a host device with 4 storage buffers per stage was accepted"),
    }
}
