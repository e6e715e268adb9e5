//! Criterion benchmarks of the matrix products and the dense layer, so that `cargo bench` keeps a comparable
//! history of them next to the activations (criterion stores each run under `target/criterion`).
//!
//! How to run: `cargo bench --bench dense [-- FILTER]`, e.g. `-- matmul/256x784x512`; pick the backend with
//! `WGPU_BACKEND=vulkan` or `WGPU_BACKEND=gl`.
//!
//! What it measures, on the adapter's matmul kernel ([`actgpu::MatmulKernel::for_gpu`]): a dense layer's three
//! products, `Y = X W` (group `matmul`) and the backward's `X^T dZ` (`matmul_at_b`) and `dZ W^T` (`matmul_a_bt`),
//! at the layer shapes 1024^3, 256x784x512 and 256x512x512 (`[m, k, n]`, the shapes of BENCHMARKS.md); the
//! GELU dense layer's forward and backward at 256x784x512; the fused dense forward against matmul + bias + GELU
//! as separate kernels at [`DENSE_COMPARISON_SHAPES`]. Each iteration is one run timed by
//! [`actgpu::bench::Timer`] inside `iter_custom`, so the device is synchronised before a time is reported;
//! throughput is FLOP (printed as elements/s), counted as in [`actgpu::bench::training`].

use std::time::Duration;

use actgpu::bench::compare::{DenseCompareOperands, DENSE_COMPARISON_SHAPES};
use actgpu::bench::training::{DenseOperands, MatmulOperands};
use actgpu::bench::Timer;
use actgpu::ops::matmul::Form;
use actgpu::verify::Pass;
use actgpu::{Activation, DType, Gpu};
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};

/// The products of BENCHMARKS.md, `[m, k, n]`.
const MATMULS: [[usize; 3]; 3] = [[1024, 1024, 1024], [256, 784, 512], [256, 512, 512]];
/// The dense layer's `[m, k, n]`.
const DENSE: [usize; 3] = [256, 784, 512];

/// `iters` runs of `record` on `timer`, as criterion's total duration.
fn timed(
    timer: &Timer,
    iters: u64,
    record: &mut dyn FnMut(&mut actgpu::wgpu::CommandEncoder, u64) -> actgpu::Result<()>,
) -> Duration {
    timer
        .total(iters, record)
        .unwrap_or_else(|e| panic!("benchmark failed: {e}"))
}

fn shape_name(s: [usize; 3]) -> String {
    format!("{}x{}x{}", s[0], s[1], s[2])
}

fn configured<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1));
    group
}

fn matmuls(c: &mut Criterion, gpu: &Gpu, timer: &Timer) {
    for form in [Form::AB, Form::AtB, Form::ABt] {
        let mut group = configured(c, form.name());
        for (i, shape) in MATMULS.into_iter().enumerate() {
            let ops = MatmulOperands::of_form(gpu, shape, form, DType::F32, 0x3a7 + i as u64)
                .expect("operands");
            group.throughput(Throughput::Elements(ops.flops() as u64));
            group.bench_function(shape_name(shape), |b| {
                b.iter_custom(|iters| timed(timer, iters, &mut |enc, rep| ops.record(enc, rep)))
            });
        }
        group.finish();
    }
}

fn dense(c: &mut Criterion, gpu: &Gpu, timer: &Timer) {
    let ops = DenseOperands::new(gpu, Activation::Gelu, DENSE, 0xde5).expect("operands");
    let mut group = configured(c, "dense_gelu");
    for pass in [Pass::Forward, Pass::Backward] {
        group.throughput(Throughput::Elements(ops.flops(pass) as u64));
        group.bench_function(format!("{}/{}", pass.name(), shape_name(DENSE)), |b| {
            b.iter_custom(|iters| timed(timer, iters, &mut |enc, rep| ops.record(enc, pass, rep)))
        });
    }
    for (i, shape) in DENSE_COMPARISON_SHAPES.into_iter().enumerate() {
        let ops = DenseCompareOperands::new(gpu, shape, 0xdc0 + i as u64).expect("operands");
        group.throughput(Throughput::Elements(ops.flops() as u64));
        group.bench_function(format!("forward_fused/{}", shape_name(shape)), |b| {
            b.iter_custom(|iters| timed(timer, iters, &mut |enc, _| ops.record_fused(enc)))
        });
        group.bench_function(format!("forward_unfused/{}", shape_name(shape)), |b| {
            b.iter_custom(|iters| timed(timer, iters, &mut |enc, _| ops.record_unfused(enc)))
        });
    }
    group.finish();
}

fn main() {
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("benches/dense: {e}");
            std::process::exit(2);
        }
    };
    let timer = Timer::new(&gpu);
    eprintln!(
        "adapter: {} (clock: {}, matmul kernel: {:?})",
        gpu.adapter_line(),
        timer.clock().name(),
        // The kernel that runs: a 256-thread kernel asked for falls back to Tiled32 on a smaller workgroup.
        actgpu::MatmulKernel::for_gpu(&gpu).on_device(gpu.limits())
    );
    let mut c = Criterion::default().configure_from_args();
    matmuls(&mut c, &gpu, &timer);
    dense(&mut c, &gpu, &timer);
    c.final_summary();
}
