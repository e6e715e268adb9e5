//! The adapter's ceilings, measured at the start of every benchmark run (`shaders/ceilings.wgsl`).
//!
//! - **Copy bandwidth**: `dst = src` over buffers of [`CeilingConfig::copy_bytes`] each (well past the caches),
//!   16-byte (`vec4<f32>`) accesses, counting bytes read plus bytes written: `2 * copy_bytes / seconds`. Several
//!   kernels are tried ([`COPY_KERNELS`]: two layouts, several workgroup sizes and vec4 counts per thread) and the
//!   fastest is the ceiling. `copy_buffer_to_buffer` is measured the same way for comparison only. The ceiling is
//!   one read per write; kernels that read two tensors per one written (the backward passes, the gated forward)
//!   can pass it on real memory (the H200's f32 identity, relu and gelu backward at 2^26: 1.044 of it; lavapipe's
//!   identity backward: 1.011), so their fraction of it may exceed 1 (see [`super::report`]).
//! - **FMA rate**: a grid of [`FMA_WORKGROUP_SIZE`]-thread workgroups, each thread running 8 independent chains
//!   of `vec4` fused multiply-adds, 4 per chain in each of `iters` loop iterations: `256 * threads * iters` FLOP
//!   per dispatch (8 chains x 4 FMA x 4 lanes x 2 FLOP per iteration and thread). The loop body is unrolled 4
//!   times because loop overhead halved the rate on llvmpipe. Two grids are tried ([`FMA_GRIDS`]) and the faster
//!   is the ceiling.

use wgpu::util::DeviceExt;

use super::{measure, Measurement, Sampling, Timer};
use crate::dispatch::grid;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::{Error, Gpu, Result};

/// How a copy kernel assigns vec4s to threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyLayout {
    /// A thread's vec4s are `workgroup_size` apart (the activation kernels' layout).
    Strided,
    /// A thread's vec4s are consecutive.
    Blocked,
}

/// One copy kernel variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CopyKernel {
    /// The layout.
    pub layout: CopyLayout,
    /// Threads per workgroup (WGSL override `WG`).
    pub workgroup_size: u32,
    /// vec4s per thread (WGSL override `PER_THREAD`).
    pub vec4_per_thread: u32,
}

impl CopyKernel {
    fn entry(self) -> &'static str {
        match self.layout {
            CopyLayout::Strided => "copy_strided",
            CopyLayout::Blocked => "copy_blocked",
        }
    }

    /// A name such as `copy_strided wg64 x4`.
    pub fn name(self) -> String {
        format!(
            "{} wg{} x{}",
            self.entry(),
            self.workgroup_size,
            self.vec4_per_thread
        )
    }

    fn key(self) -> PipelineKey {
        PipelineKey::new(
            ShaderId::Ceilings,
            self.entry(),
            self.workgroup_size,
            &[("PER_THREAD", f64::from(self.vec4_per_thread))],
        )
    }
}

const fn copy_kernel(layout: CopyLayout, workgroup_size: u32, vec4_per_thread: u32) -> CopyKernel {
    CopyKernel {
        layout,
        workgroup_size,
        vec4_per_thread,
    }
}

/// The copy kernels tried for the copy ceiling; the fastest one defines it. Chosen from a scan of both layouts,
/// 64 to 1024 threads and 1 to 16 vec4 per thread on lavapipe and llvmpipe GL, where 64- and 128-thread strided
/// copies reached only 3-7 GB/s and these reached 10-12 GB/s; `copy_blocked wg128 x2` is the access pattern of
/// the elementwise kernels' default CPU launch. The first three, one or two vec4 per thread, are for hardware GPUs:
/// on an NVIDIA H200 the fastest of the others was the one with the fewest vec4 per thread (`copy_strided wg256
/// x2`), at the edge of the scan. Kernels larger than the device's workgroup limits are skipped.
pub const COPY_KERNELS: [CopyKernel; 11] = [
    copy_kernel(CopyLayout::Strided, 128, 1),
    copy_kernel(CopyLayout::Strided, 256, 1),
    copy_kernel(CopyLayout::Strided, 128, 2),
    copy_kernel(CopyLayout::Strided, 256, 2),
    copy_kernel(CopyLayout::Strided, 256, 4),
    copy_kernel(CopyLayout::Strided, 256, 8),
    copy_kernel(CopyLayout::Strided, 512, 4),
    copy_kernel(CopyLayout::Strided, 512, 8),
    copy_kernel(CopyLayout::Blocked, 128, 2),
    copy_kernel(CopyLayout::Blocked, 256, 4),
    copy_kernel(CopyLayout::Blocked, 512, 4),
];

/// Threads per workgroup of the FMA kernel.
pub const FMA_WORKGROUP_SIZE: u32 = 64;
/// Workgroups of the FMA kernel's grids: 1,024 (65,536 threads, enough for a CPU adapter's cores) and 16,384
/// (a million threads: 1,024 workgroups fill only a quarter of an NVIDIA H200's 132 x 2,048 resident threads, and
/// share unevenly over its 132 multiprocessors, 7.76 each).
pub const FMA_GRIDS: [u32; 2] = [1024, 16384];
/// FLOP per thread and loop iteration of the FMA kernel: 8 chains x 4 FMA x 4 lanes x 2.
pub const FMA_FLOP_PER_THREAD_ITER: f64 = 256.0;

/// A source and a destination buffer of equal size, the source filled with random data.
#[derive(Debug)]
pub struct CopyBuffers {
    gpu: Gpu,
    src: wgpu::Buffer,
    dst: wgpu::Buffer,
    bytes: u64,
}

impl CopyBuffers {
    /// Two buffers of `bytes` each (rounded up to whole vec4s), the source random.
    pub fn new(gpu: &Gpu, bytes: u64, seed: u64) -> Result<CopyBuffers> {
        let bytes = bytes.div_ceil(16).max(1) * 16;
        let max = gpu.limits().max_buffer_size;
        if bytes > max {
            return Err(Error::LimitExceeded {
                limit: "max_buffer_size",
                max,
                requested: bytes,
            });
        }
        gpu.check_lost()?;
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        // A random MiB repeated: random values, and the addresses (all that caches see) are all distinct.
        let block = random_block(seed, 1 << 18);
        let mut contents = Vec::with_capacity(bytes as usize);
        while contents.len() < bytes as usize {
            let take = (bytes as usize - contents.len()).min(block.len());
            contents.extend_from_slice(&block[..take]);
        }
        let src = gpu
            .device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("actgpu.bench.copy.src"),
                contents: &contents,
                usage,
            });
        drop(contents);
        let dst = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("actgpu.bench.copy.dst"),
            size: bytes,
            usage,
            mapped_at_creation: false,
        });
        Ok(CopyBuffers {
            gpu: gpu.clone(),
            src,
            dst,
            bytes,
        })
    }

    /// Bytes in each buffer.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes read plus written by one copy: `2 * bytes`.
    pub fn bytes_moved(&self) -> f64 {
        2.0 * self.bytes as f64
    }

    /// Records one copy with `kernel`, in dispatches whose bindings fit the storage-binding limit.
    pub fn record_kernel(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: CopyKernel,
    ) -> Result<()> {
        let gpu = &self.gpu;
        let pipeline = gpu.pipelines().get_or_create(gpu.device(), &kernel.key())?;
        let layout = pipeline.get_bind_group_layout(0);
        let limits = gpu.limits();
        let per_group = u64::from(kernel.workgroup_size) * u64::from(kernel.vec4_per_thread);
        for (first, count) in binding_chunks(
            self.bytes / 16,
            limits.max_storage_buffer_binding_size,
            limits.min_storage_buffer_offset_alignment,
        ) {
            let (gx, gy) = grid(
                count.div_ceil(per_group),
                limits.max_compute_workgroups_per_dimension,
            )?;
            let params = uniform(gpu, [count as u32, 0, 0, 0]);
            let range = |buffer| {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: first * 16,
                    size: wgpu::BufferSize::new(count * 16),
                })
            };
            let bind_group = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("actgpu.bench.copy"),
                layout: &layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: range(&self.src),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: range(&self.dst),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: params.as_entire_binding(),
                    },
                ],
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("actgpu.bench.copy"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        Ok(())
    }

    /// Records one `copy_buffer_to_buffer` of the whole buffer.
    pub fn record_copy_buffer_to_buffer(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.copy_buffer_to_buffer(&self.src, 0, &self.dst, 0, self.bytes);
    }
}

/// FLOP of one FMA dispatch of `iters` iterations on `workgroups` workgroups: `256 * threads * iters`.
fn grid_flops(workgroups: u32, iters: u32) -> f64 {
    FMA_FLOP_PER_THREAD_ITER
        * f64::from(workgroups)
        * f64::from(FMA_WORKGROUP_SIZE)
        * f64::from(iters)
}

/// The FMA kernel on a grid of `workgroups` workgroups, with its output buffer.
#[derive(Debug)]
pub struct FmaKernel {
    gpu: Gpu,
    out: wgpu::Buffer,
    workgroups: u32,
}

impl FmaKernel {
    /// The kernel on `workgroups` workgroups (one of [`FMA_GRIDS`], say); allocates the output (one vec4 per
    /// thread).
    pub fn new(gpu: &Gpu, workgroups: u32) -> Result<FmaKernel> {
        gpu.check_lost()?;
        let out = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("actgpu.bench.fma"),
            size: u64::from(workgroups.max(1)) * u64::from(FMA_WORKGROUP_SIZE) * 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(FmaKernel {
            gpu: gpu.clone(),
            out,
            workgroups,
        })
    }

    /// The grid's workgroups.
    pub fn workgroups(&self) -> u32 {
        self.workgroups
    }

    /// FLOP of one dispatch of `iters` iterations: `256 * threads * iters`.
    pub fn flops(&self, iters: u32) -> f64 {
        grid_flops(self.workgroups, iters)
    }

    /// Records one dispatch of `iters` iterations.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, iters: u32) -> Result<()> {
        let gpu = &self.gpu;
        let key = PipelineKey::new(ShaderId::Ceilings, "fma_peak", FMA_WORKGROUP_SIZE, &[]);
        let pipeline = gpu.pipelines().get_or_create(gpu.device(), &key)?;
        let (gx, gy) = grid(
            u64::from(self.workgroups),
            gpu.limits().max_compute_workgroups_per_dimension,
        )?;
        // m < 1 and c > 0: every chain converges towards c / (1 - m) = 1 and stays finite.
        let params = uniform(gpu, [iters, 0.999_f32.to_bits(), 0.001_f32.to_bits(), 0]);
        let bind_group = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("actgpu.bench.fma"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: self.out.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: params.as_entire_binding(),
                },
            ],
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("actgpu.bench.fma"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
        Ok(())
    }
}

/// What to measure for the ceilings.
#[derive(Debug, Clone, PartialEq)]
pub struct CeilingConfig {
    /// Bytes in each copy buffer.
    pub copy_bytes: u64,
    /// The copy kernels to try.
    pub copy_kernels: Vec<CopyKernel>,
    /// Samples per ceiling.
    pub sampling: Sampling,
}

impl CeilingConfig {
    /// 256 MiB per copy buffer (512 MiB moved per copy), every kernel of [`COPY_KERNELS`], [`Sampling::DEFAULT`].
    pub fn default_run() -> Self {
        CeilingConfig {
            copy_bytes: 256 << 20,
            copy_kernels: COPY_KERNELS.to_vec(),
            sampling: Sampling::DEFAULT,
        }
    }

    /// 32 MiB per copy buffer, every kernel, [`Sampling::QUICK`]: seconds, and a rough ceiling.
    pub fn quick() -> Self {
        CeilingConfig {
            copy_bytes: 32 << 20,
            copy_kernels: COPY_KERNELS.to_vec(),
            sampling: Sampling::QUICK,
        }
    }
}

/// One measured ceiling (or candidate).
#[derive(Debug, Clone, PartialEq)]
pub struct Ceiling {
    /// What ran, e.g. `copy_strided wg64 x4`, `copy_buffer_to_buffer`, `fma_peak wg64 x1024 iters 4096`.
    pub name: String,
    /// Seconds per repetition.
    pub measurement: Measurement,
    /// Work per repetition: bytes read plus written, or FLOP.
    pub amount: f64,
    /// `amount / median seconds`: bytes/s or FLOP/s.
    pub rate: f64,
}

impl Ceiling {
    fn new(name: String, measurement: Measurement, amount: f64) -> Self {
        Ceiling {
            name,
            rate: measurement.stats.rate(amount),
            measurement,
            amount,
        }
    }
}

/// The ceilings of one adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceilings {
    /// The fastest copy kernel: the copy ceiling in bytes/s (read + written).
    pub copy: Ceiling,
    /// Every copy kernel tried, in [`CeilingConfig::copy_kernels`] order (less those over the device's limits).
    pub copy_kernels: Vec<Ceiling>,
    /// `copy_buffer_to_buffer` over the same buffers, for comparison (not a ceiling of compute kernels).
    pub copy_buffer_to_buffer: Ceiling,
    /// The FMA rate in FLOP/s.
    pub fma: Ceiling,
}

/// Measures the copy and FMA ceilings on `timer`'s device.
pub fn measure_ceilings(timer: &Timer, config: &CeilingConfig) -> Result<Ceilings> {
    let gpu = timer.gpu().clone();
    let bufs = CopyBuffers::new(&gpu, config.copy_bytes, 0xc0_5e11)?;
    let s = &config.sampling;
    let limits = gpu.limits();
    let max_wg = crate::dispatch::max_workgroup_threads(limits);
    let mut copy_kernels = Vec::new();
    for &kernel in config
        .copy_kernels
        .iter()
        .filter(|k| k.workgroup_size <= max_wg)
    {
        let m = measure(timer, s, &mut |enc, _| bufs.record_kernel(enc, kernel))?;
        copy_kernels.push(Ceiling::new(kernel.name(), m, bufs.bytes_moved()));
    }
    let copy = copy_kernels
        .iter()
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .cloned()
        .ok_or(Error::InvalidArgument {
            op: "measure_ceilings",
            reason: format!(
                "no copy kernel within the device's {max_wg} invocations per workgroup"
            ),
        })?;
    let m = measure(timer, s, &mut |enc, _| {
        bufs.record_copy_buffer_to_buffer(enc);
        Ok(())
    })?;
    let copy_buffer_to_buffer = Ceiling::new("copy_buffer_to_buffer".into(), m, bufs.bytes_moved());
    drop(bufs);
    let fma = measure_fma(timer, s)?;
    Ok(Ceilings {
        copy,
        copy_kernels,
        copy_buffer_to_buffer,
        fma,
    })
}

/// The FMA ceiling: iterations are scaled so one dispatch lasts about `sampling.min_sample_s`.
fn measure_fma(timer: &Timer, s: &Sampling) -> Result<Ceiling> {
    let mut best: Option<Ceiling> = None;
    for workgroups in FMA_GRIDS {
        let fma = FmaKernel::new(timer.gpu(), workgroups)?;
        let probe_iters = 16;
        // The first sample compiles and warms up; the second estimates the time per iteration.
        timer.sample(1, 0, &mut |enc, _| fma.record(enc, probe_iters))?;
        let t = timer
            .sample(1, 0, &mut |enc, _| fma.record(enc, probe_iters))?
            .seconds
            .max(1e-9);
        // A loop-limited driver (llvmpipe) would stop the loop at 65,535 iterations and the FLOP counted would
        // not have run.
        let most = if timer.gpu().loop_limited() {
            60_000
        } else {
            1 << 20
        };
        let iters = ((f64::from(probe_iters) * s.min_sample_s / t) as u32).clamp(probe_iters, most);
        let m = measure(timer, s, &mut |enc, _| fma.record(enc, iters))?;
        let c = Ceiling::new(
            format!("fma_peak wg{FMA_WORKGROUP_SIZE} x{workgroups} iters {iters}"),
            m,
            fma.flops(iters),
        );
        if best.as_ref().is_none_or(|b| c.rate > b.rate) {
            best = Some(c);
        }
    }
    best.ok_or(Error::InvalidArgument {
        op: "measure_fma",
        reason: "no FMA grid".into(),
    })
}

/// `(first_vec4, count_vec4)` chunks of `len4` vec4s whose bindings fit `max_binding_bytes`, starting at offsets
/// aligned to `offset_alignment` bytes.
fn binding_chunks(len4: u64, max_binding_bytes: u64, offset_alignment: u32) -> Vec<(u64, u64)> {
    let align4 = (u64::from(offset_alignment) / 16).max(1);
    let per_chunk = ((max_binding_bytes / 16) / align4 * align4).max(align4);
    (0..len4.div_ceil(per_chunk))
        .map(|i| {
            let first = i * per_chunk;
            (first, per_chunk.min(len4 - first))
        })
        .collect()
}

/// A 16-byte uniform buffer holding four u32 words.
fn uniform(gpu: &Gpu, words: [u32; 4]) -> wgpu::Buffer {
    gpu.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("actgpu.bench.params"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::UNIFORM,
        })
}

/// `n` random f32 values in [-1, 1) as bytes.
fn random_block(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = crate::verify::Rng::new(seed);
    let v: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    bytemuck::cast_slice(&v).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_chunks_cover_and_align() {
        let c = binding_chunks(1000, 1024, 256);
        assert_eq!(c[0], (0, 64));
        assert_eq!(c.iter().map(|&(_, n)| n).sum::<u64>(), 1000);
        assert!(c.iter().all(|&(f, _)| (f * 16) % 256 == 0));
        assert!(binding_chunks(0, 1024, 256).is_empty());
        assert_eq!(binding_chunks(5, 1 << 27, 32), vec![(0, 5)]);
    }

    #[test]
    fn fma_flops() {
        assert_eq!(
            grid_flops(1024, 1),
            256.0 * f64::from(1024 * FMA_WORKGROUP_SIZE)
        );
        assert_eq!(grid_flops(16384, 3), 3.0 * 256.0 * 16384.0 * 64.0);
    }
}
