//! Criterion benchmarks of the ceilings, of every activation and of the default fused ops, forward and backward,
//! so that `cargo bench` keeps a comparable history (criterion stores each run under `target/criterion`).
//!
//! How to run: `cargo bench --bench activations [-- FILTER]`, e.g. `-- activation_forward_f32/gelu`; pick the
//! backend with `WGPU_BACKEND=vulkan` or `WGPU_BACKEND=gl`. Environment: `ACTGPU_BENCH_ELEMENTS` sets the
//! activation size (default 2^24 elements, as in BENCHMARKS.md; a positive count or `2^k`, as `bench --sizes`
//! takes it), `ACTGPU_BENCH_DTYPES` the storage types
//! (default `f32`; e.g. `f32,f16,bf16`). Fused ops run on 4096 x 4096.
//!
//! What it measures: each iteration is one run of the kernel, timed by [`actgpu::bench::Timer`] inside
//! `iter_custom` (GPU timestamps where the adapter has them, else the wall clock around submit and a blocking
//! poll), so the device is synchronised before a time is reported. Throughput is bytes read plus written for the
//! copies and activations (criterion prints GiB/s), and FLOP for the FMA kernel (printed as elements/s).

use std::time::Duration;

use actgpu::bench::activations::ElementwiseOperands;
use actgpu::bench::ceilings::{CopyBuffers, FmaKernel, COPY_KERNELS, FMA_GRIDS};
use actgpu::bench::fused::{FusedOp, FusedOperands};
use actgpu::bench::plan::parse_size;
use actgpu::bench::Timer;
use actgpu::verify::Pass;
use actgpu::{Activation, DType, Gpu};
use criterion::{Criterion, SamplingMode, Throughput};

/// Bytes in each buffer of the copy benchmarks, as in the copy ceiling of a default `bench` run.
const COPY_BYTES: u64 = 256 << 20;
/// Loop iterations of the FMA kernel: a fixed amount of work, so runs stay comparable. It is a history of one fixed
/// dispatch, not the ceiling: `examples/bench.rs` sizes the loop to 20 ms and tries a larger grid, and on a fast
/// GPU this dispatch (about 19 us on an H200, 7-9 of them fixed cost) reads well below it.
const FMA_ITERS: u32 = 64;
/// `[rows, cols]` of the fused ops' input, as in a default `bench` run.
const FUSED_SHAPE: [usize; 2] = [4096, 4096];

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

fn ceilings(c: &mut Criterion, gpu: &Gpu, timer: &Timer) {
    let bufs = CopyBuffers::new(gpu, COPY_BYTES, 0xc0_5e11).expect("copy buffers");
    let mut group = c.benchmark_group("ceilings");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(bufs.bytes_moved() as u64));
    for kernel in COPY_KERNELS {
        group.bench_function(kernel.name().replace(' ', "_"), |b| {
            b.iter_custom(|iters| {
                timed(timer, iters, &mut |enc, _| bufs.record_kernel(enc, kernel))
            })
        });
    }
    group.bench_function("copy_buffer_to_buffer", |b| {
        b.iter_custom(|iters| {
            timed(timer, iters, &mut |enc, _| {
                bufs.record_copy_buffer_to_buffer(enc);
                Ok(())
            })
        })
    });
    drop(bufs);
    let fma = FmaKernel::new(gpu, FMA_GRIDS[0]).expect("fma buffer");
    group.throughput(Throughput::Elements(fma.flops(FMA_ITERS) as u64));
    group.bench_function("fma_peak_flops", |b| {
        b.iter_custom(|iters| timed(timer, iters, &mut |enc, _| fma.record(enc, FMA_ITERS)))
    });
    group.finish();
}

fn activations(c: &mut Criterion, gpu: &Gpu, timer: &Timer, elements: usize, dtype: DType) {
    let ops = ElementwiseOperands::new(gpu, elements, dtype, 0xbe_4c00).expect("operands");
    for pass in [Pass::Forward, Pass::Backward] {
        let mut group = c.benchmark_group(format!("activation_{}_{}", pass.name(), dtype.name()));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .throughput(Throughput::Bytes(ops.bytes_moved(pass) as u64));
        for act in Activation::ALL {
            group.bench_function(act.name(), |b| {
                b.iter_custom(|iters| {
                    timed(timer, iters, &mut |enc, rep| {
                        ops.record(enc, act, pass, rep)
                    })
                })
            });
        }
        group.finish();
    }
}

fn fused(c: &mut Criterion, gpu: &Gpu, timer: &Timer, dtype: DType) {
    let [rows, cols] = FUSED_SHAPE;
    for op in FusedOp::defaults() {
        let ops = FusedOperands::new(gpu, op, rows, cols, dtype, 0xf0_5ed).expect("operands");
        for pass in [Pass::Forward, Pass::Backward] {
            let mut group = c.benchmark_group(format!("fused_{}_{}", pass.name(), dtype.name()));
            group
                .sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_secs(1))
                .throughput(Throughput::Bytes(ops.bytes_moved(pass) as u64));
            // Fewer repetitions per submission where a run allocates (`Timer::allocating`).
            let timer = &timer.allocating(ops.alloc_bytes_per_rep(pass));
            group.bench_function(op.name(), |b| {
                b.iter_custom(|iters| {
                    timed(timer, iters, &mut |enc, rep| ops.record(enc, pass, rep))
                })
            });
            group.finish();
        }
    }
}

fn main() {
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("benches/activations: {e}");
            std::process::exit(2);
        }
    };
    // The rules of `bench --sizes`: a positive count or `2^k`.
    let elements = match std::env::var("ACTGPU_BENCH_ELEMENTS") {
        Ok(v) => parse_size(&v).unwrap_or_else(|e| {
            eprintln!("ACTGPU_BENCH_ELEMENTS: {e}");
            std::process::exit(2);
        }),
        Err(_) => 1 << 24,
    };
    let dtypes: Vec<DType> = match std::env::var("ACTGPU_BENCH_DTYPES") {
        Ok(v) => v
            .split(',')
            .map(|n| {
                DType::from_name(n).unwrap_or_else(|| {
                    eprintln!("ACTGPU_BENCH_DTYPES: unknown dtype {n:?}");
                    std::process::exit(2);
                })
            })
            .collect(),
        Err(_) => vec![DType::F32],
    };
    let timer = Timer::new(&gpu);
    eprintln!(
        "adapter: {} (clock: {})",
        gpu.adapter_line(),
        timer.clock().name()
    );
    let mut c = Criterion::default().configure_from_args();
    ceilings(&mut c, &gpu, &timer);
    for &dtype in &dtypes {
        activations(&mut c, &gpu, &timer, elements, dtype);
        fused(&mut c, &gpu, &timer, dtype);
    }
    c.final_summary();
}
