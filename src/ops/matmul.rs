//! Matrix products of the dense layer (`shaders/matmul.wgsl`): `Y = X W`, `dW = X^T dZ`, `dX = dZ W^T`, f32
//! accumulation, any shape (sizes of 0 dispatch nothing; an inner size of 0 gives zeros), with one limit on the
//! grid: C's column blocks take one grid dimension, so C has at most 65,535 of them (about 2.1 million columns on
//! the direct and 32-wide tiled kernels, 4.2 million on the tiled ones, 1 million on the generated kernels of a
//! subgroup of 4 lanes), past which the product is [`Error::LimitExceeded`]. Its rows continue along the grid's z
//! past 65,535 row blocks.
//!
//! # Past the storage-binding limit
//!
//! A product whose tensors each fit one storage binding (a 16-bit C or Z counted as its f32 copy, see below)
//! binds them whole and records what it always has. Past that, `X W` and `dZ W^T` (and the dense layer's forward
//! and `dX`), whose rows of C are A's rows, run in chunks of C's rows: each chunk binds its rows of A, C, the
//! stored Z and a derivative's Z fused into A at offsets that are multiples of the device's
//! `min_storage_buffer_offset_alignment` (rows of odd byte widths step by as many rows as that takes, so a 16-bit
//! row of 37 elements steps by 128 rows under a 256-byte alignment), B and the bias whole, and runs the same
//! kernel, with the same splits of K, on an M of its rows: its rows of C are bit for bit the unchunked product's.
//! A 16-bit C or Z goes through a whole f32 copy, bound in chunks like C and rounded by one conversion pass. Still
//! [`Error::LimitExceeded`]: B (W), the bias or a Z fused into B past a binding; one offset-aligned group of rows
//! past it; and `X^T dZ` (`dW`, and the fused `db`), which sums over the rows, with an operand past it.
//!
//! All three forms run one generic kernel over strided operands, `C[i, j] = sum_p A(i, p) B(p, j)`, so no
//! transpose is ever materialised. The kernels, chosen per adapter by [`MatmulKernel::for_gpu`] (or by
//! [`crate::GpuOptions::matmul_kernel`]): [`MatmulKernel::Subgroup`] (CPU adapters with subgroups: generated code,
//! see `src/ops/matmul_subgroup.rs`), [`MatmulKernel::Vec4`] (CPU adapters without), [`MatmulKernel::Direct`]
//! (operands straight from storage, no workgroup memory), [`MatmulKernel::Tiled`] (K staged through workgroup
//! memory; hardware GPUs) and [`MatmulKernel::Tiled32`] (the same with a quarter of the block).
//!
//! # Split K
//!
//! On the tiled kernels a product with few blocks of C (the dense layers of a small MLP) splits K over several
//! workgroups per block (`tiled_splits`: about 256 workgroups, splits of at least 64 of K but the last, which
//! takes what is left, at most 16 splits; more on a loop-limited adapter where K needs them, see
//! [`LOOP_LIMITED_K`]).
//! `matmul_tiled_split` writes each split's partial C to the context's scratch buffer, and `matmul_split_sum`
//! adds the splits in order and applies the epilogue (bias, stored Z, activation). Two dispatches instead of one,
//! for up to 16 times the workgroups: on an NVIDIA H200, 256x784x512 went from 173 to 65 us.
//!
//! # Storage types
//!
//! A, B and C are each f32, f16 or bf16, in any mix. The sum is always over the operands' exact values in f32,
//! `C = round_t(sum_p A(i, p) B(p, j))` with `round_t` the identity for an f32 C and one round to nearest even
//! for a 16-bit C:
//!
//! - [`MatmulKernel::Direct`] and the tiled kernels decode 16-bit operands in their loads (override type
//!   codes `A_T`, `B_T`, the integer codecs of `shaders/storage.wgsl`).
//! - [`MatmulKernel::Subgroup`] and [`MatmulKernel::Vec4`] load f32 (`vec4<f32>`s, or B's scalars, [`BLoad`]),
//!   so a 16-bit operand is widened to an f32 scratch by one conversion pass first (exact; `O(rows cols)` work against the product's `O(m n k)`).
//!   Measured against running the direct kernel, which decodes in its loads, on a loaded 2-core machine (Mesa
//!   22.3.6, `A` and `B` both f16, median of 4): lavapipe 256x784x512 7.8 vs 32.7 ms, 1024^3 75 vs 367 ms (f32
//!   operands: 10.3 and 67 ms); llvmpipe GL 16.6 vs 30.1 ms, 172 vs 356 ms (f32: 14.2 and 161 ms). Widening
//!   costs about what the noise does; falling back would cost 2x to 5x.
//! - A 16-bit C (or pre-activation Z of the dense forward) goes through an f32 scratch and one conversion pass:
//!   a kernel storing 16-bit values would race, the two halves of a packed word belonging to different threads.

use super::elementwise::{bound_bytes, check_vectors, check_whole_binding, dispatch, Slot};
use super::matmul_subgroup;
use super::recording::Recording;
use crate::dispatch::grid;
use crate::pipeline::PipelineKey;
use crate::shaders::ShaderId;
use crate::tensor::padded_bytes;
use crate::{Activation, DType, Error, Gpu, Result, Tensor};

/// Which matmul kernel runs. All give the same results up to f32 rounding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// 64 threads, each an 8 x 4 block of C (8 rows, 4 columns) read straight from storage: a 64 x 32 block per
    /// workgroup, no workgroup memory and no barrier.
    Direct,
    /// 256 threads, each a 4 x 4 block: a 64 x 64 block per workgroup, K in chunks of 16 staged through
    /// workgroup memory, two barriers per chunk, the next chunk's loads in flight during the multiply. A product of
    /// few blocks (the dense layers of a small MLP) splits K over several workgroups per block and adds the splits
    /// in a second pass that applies the epilogue. The usual choice on hardware GPUs; where a workgroup holds
    /// fewer than 256 threads, [`MatmulKernel::Tiled32`] runs instead ([`MatmulKernel::on_device`]).
    Tiled,
    /// The tiled kernel with 64 threads (8 x 8): a 32 x 32 block per workgroup, so four times the workgroups of
    /// [`MatmulKernel::Tiled`] (and the same split of K for products of few blocks). Slower than `Tiled` on an
    /// NVIDIA H200 at every shape measured (1024^3: 534 against 270 us; 256x784x512 before the split: 210
    /// against 173 us; BENCHMARKS.md), so not a default: choose it with [`crate::GpuOptions::matmul_kernel`]
    /// (`bench --matmul tiled32`).
    Tiled32,
    /// [`MatmulKernel::Tiled`] with 16-byte loads: the operands are bound as `vec4<u32>`
    /// (`shaders/matmul_operands_wide.wgsl`) and each thread stages runs of four contiguous elements (eight bytes
    /// of a 16-bit operand) with one load, where the operand's rows allow: its contiguous dimension (K, or its
    /// rows or columns) and its other stride are multiples of 4 (`wide_runs` in the source). Other operands are
    /// staged element by element as in `Tiled`. Not yet measured on a hardware GPU, so not a default: choose it
    /// with [`crate::GpuOptions::matmul_kernel`] (`bench --matmul tiled_wide`). Like `Tiled`, it gives way to
    /// [`MatmulKernel::Tiled32`] where a workgroup holds fewer than 256 threads.
    TiledWide,
    /// One subgroup per workgroup, a block of 32 rows by 4 columns per lane, one operand loaded by the lanes
    /// together and shared by `subgroupBroadcast`; generated, straight-line code (`src/ops/matmul_subgroup.rs`).
    /// Runs where the device has `SUBGROUP` with one fixed subgroup size, the rows of A hold whole `vec4`s (B's
    /// need not, [`BLoad`]; see `src/ops/matmul_subgroup.rs`) and no derivative is fused into the loads; anything
    /// else runs [`MatmulKernel::Direct`]. 16-bit operands are widened to f32 first (see the module
    /// documentation). The choice on CPU adapters with subgroups (lavapipe): about 4.5x the direct kernel at
    /// 256x784x512.
    Subgroup,
    /// The generated code of [`MatmulKernel::Subgroup`] without subgroups: 8 invocations per workgroup, each
    /// owning 16 rows by 4 or 8 columns (8 for products at least 64 wide) and loading its own A, `vec4` loads of
    /// both operands (of B as scalars where its rows are not whole `vec4`s, [`BLoad`]). Runs where the rows of A
    /// hold whole `vec4`s, else [`MatmulKernel::Direct`]; 16-bit operands are widened to f32 first. The choice on
    /// CPU adapters without subgroups (llvmpipe GL): 1024^3 in 105 ms on a quiet 2-core machine, against 139-150
    /// ms with 32 rows by 4 columns per invocation (see `vec4_blocks` in the source and BENCHMARKS.md).
    Vec4,
}

impl MatmulKernel {
    /// The kernel for an adapter type: [`MatmulKernel::Direct`] on CPU adapters (lavapipe, llvmpipe), where
    /// workgroup barriers are emulated and cost more than the loads they save; [`MatmulKernel::Tiled`] elsewhere.
    ///
    /// Measured on a 2-core machine (Mesa 22.3.6, wall clock, median of 2 to 4 after a warm-up), GFLOP/s direct
    /// vs tiled: lavapipe 1024^3 3.0 vs 1.8, 256x784x512 3.3 vs 1.7, 256x512x512 3.2 vs 1.7; llvmpipe GL 3.3 vs
    /// 1.7, 3.6 vs 1.8, 3.7 vs 1.8. A 4 x 4 direct block measured 2.3 to 2.7.
    pub fn for_device_type(device_type: wgpu::DeviceType) -> Self {
        match device_type {
            wgpu::DeviceType::Cpu => MatmulKernel::Direct,
            _ => MatmulKernel::Tiled,
        }
    }

    /// The kernel for `gpu`: [`crate::GpuOptions::matmul_kernel`] where it was given; otherwise
    /// [`MatmulKernel::Subgroup`] on a CPU adapter whose device has subgroups of one fixed size (lavapipe),
    /// [`MatmulKernel::Vec4`] on one without (llvmpipe GL has no subgroups in wgpu), else
    /// [`MatmulKernel::for_device_type`].
    pub fn for_gpu(gpu: &Gpu) -> Self {
        if let Some(kernel) = gpu.matmul_kernel_option() {
            return kernel;
        }
        let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
        match (cpu, subgroup_lanes(gpu)) {
            (true, Some(_)) => MatmulKernel::Subgroup,
            (true, None) => MatmulKernel::Vec4,
            (false, _) => {
                Self::for_device_type(gpu.adapter_info().device_type).on_device(gpu.limits())
            }
        }
    }

    /// The kernel that runs for `self` on a device of these limits: [`MatmulKernel::Tiled32`] for the 256-thread
    /// kernels ([`MatmulKernel::Tiled`], [`MatmulKernel::TiledWide`]) where a workgroup holds fewer threads (OpenGL
    /// ES 3.1 guarantees only 128), else `self`.
    pub fn on_device(self, limits: &wgpu::Limits) -> Self {
        let threads = crate::dispatch::max_workgroup_threads(limits);
        match self {
            MatmulKernel::Tiled | MatmulKernel::TiledWide if threads < self.shape().0 => {
                MatmulKernel::Tiled32
            }
            _ => self,
        }
    }

    /// Every kernel, in the order of [`MatmulKernel::name`]'s list.
    pub const ALL: [MatmulKernel; 6] = [
        MatmulKernel::Direct,
        MatmulKernel::Tiled,
        MatmulKernel::Tiled32,
        MatmulKernel::TiledWide,
        MatmulKernel::Subgroup,
        MatmulKernel::Vec4,
    ];

    /// `direct`, `tiled`, `tiled32`, `tiled_wide`, `subgroup` or `vec4`, as `bench --matmul` takes and prints it.
    pub const fn name(self) -> &'static str {
        match self {
            MatmulKernel::Direct => "direct",
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::Tiled32 => "tiled32",
            MatmulKernel::TiledWide => "tiled_wide",
            MatmulKernel::Subgroup => "subgroup",
            MatmulKernel::Vec4 => "vec4",
        }
    }

    /// The kernel of that [`MatmulKernel::name`].
    pub fn from_name(name: &str) -> Option<MatmulKernel> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The entry point of the kernels of `shaders/matmul.wgsl`.
    const fn entry(self) -> &'static str {
        match self {
            MatmulKernel::Tiled | MatmulKernel::Tiled32 | MatmulKernel::TiledWide => "matmul_tiled",
            _ => "matmul_direct",
        }
    }

    /// Rows of C one thread computes (it computes 4 columns).
    const fn rows_per_thread(self) -> u32 {
        match self {
            MatmulKernel::Tiled | MatmulKernel::Tiled32 | MatmulKernel::TiledWide => 4,
            _ => 8,
        }
    }

    /// `(threads per workgroup, threads along N)`; the workgroup covers `4 WG/TX` rows and `4 TX` columns.
    const fn shape(self) -> (u32, u32) {
        match self {
            MatmulKernel::Tiled | MatmulKernel::TiledWide => (256, 16),
            _ => (64, 8),
        }
    }
}

/// Invocations per workgroup of [`MatmulKernel::Vec4`]: one 8-wide vector of llvmpipe's AVX2 code.
const VEC4_LANES: u32 = 8;

/// Rows of C per invocation of [`MatmulKernel::Vec4`].
const VEC4_ROWS: u32 = 16;

/// Column blocks of four per invocation of [`MatmulKernel::Vec4`] for a C of `n` columns: as many as `n` fills
/// across the workgroup's [`VEC4_LANES`] invocations, 1 or 2 (2 blocks, 8 columns, from `n = 64`). Each
/// invocation loads A itself, and on llvmpipe a load from the same address in every lane costs a loop over the
/// lanes, so the more columns an invocation owns, the fewer loads of A per FMA; but columns past `n` are wasted
/// work, so narrow products take fewer; and the unrolled code, which llvmpipe compiles under wgpu's GL context
/// lock, grows with rows x blocks. Measured on llvmpipe GL (BENCHMARKS.md), 1024^3: 144 ms for the earlier 32
/// rows by 1 block of 16 invocations, 105 ms for 16 x 2, 76 ms for 16 x 4, 57 ms for 32 x 8; a cold compile of
/// one product took 0.3-0.6 s, 0.3-0.5 s, 0.9-1.5 s and 19-26 s. With 16 x 4 the GL tests, compiling from
/// two threads, made wgpu-hal give up waiting for the context (6 s) and panic; 16 x 2 costs nothing to compile.
/// At 4096x64x64, 2 blocks (the 64 columns exactly) took 1.9 ms, 4 blocks 3.3 ms.
fn vec4_blocks(n: u32) -> u32 {
    if n >= 8 * VEC4_LANES {
        2
    } else {
        1
    }
}

/// The subgroup size of `gpu`'s device when it has `SUBGROUP` and one fixed size the generated kernel is built
/// for (4 to 64 lanes).
fn subgroup_lanes(gpu: &Gpu) -> Option<u32> {
    let info = gpu.adapter_info();
    let (min, max) = (info.subgroup_min_size, info.subgroup_max_size);
    let has = gpu.device().features().contains(wgpu::Features::SUBGROUP);
    (has && min == max && (4..=64).contains(&min) && min.is_power_of_two()).then_some(min)
}

/// Which matrix product: the three a dense layer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// `C = A B`: A `[m, k]`, B `[k, n]`, C `[m, n]`.
    AB,
    /// `C = A^T B`: A `[m, k]`, B `[m, n]`, C `[k, n]`.
    AtB,
    /// `C = A B^T`: A `[m, n]`, B `[k, n]`, C `[m, k]`.
    ABt,
}

impl Form {
    /// The op's name, as its launcher is called: `matmul`, `matmul_at_b`, `matmul_a_bt`.
    pub const fn name(self) -> &'static str {
        match self {
            Form::AB => "matmul",
            Form::AtB => "matmul_at_b",
            Form::ABt => "matmul_a_bt",
        }
    }
}

/// How the generated kernels of CPU adapters ([`MatmulKernel::Subgroup`], [`MatmulKernel::Vec4`]) load B, the
/// operand each invocation loads for its own columns: part of their [`crate::shaders::ShaderId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BLoad {
    /// One `vec4` per row of B (`X W`, `X^T dZ`: N is a multiple of 4, so every row of B starts on 16 bytes; always
    /// in `dZ W^T`, whose B rows run along K).
    Vec4,
    /// Four scalar loads per `vec4`, columns past N clamped to the last: `X W` and `X^T dZ` with N not a multiple
    /// of 4, such as a classifier's 10 outputs. Four of llvmpipe's loops over the lanes per row of B where
    /// [`BLoad::Vec4`] has one; the direct kernel, which ran these products before, has two per FMA.
    Scalar,
}

/// One product for the kernel: sizes `C [m, n]`, inner size `k`, operand strides, and what the epilogue and the
/// operand loads do. Operands, bias and Z may each be f32, f16 or bf16; so may C and `z_out` (written through an
/// f32 scratch and one rounding pass, see [`record_gemm`]).
#[derive(Clone, Copy)]
pub(crate) struct Gemm<'a> {
    pub kernel: MatmulKernel,
    pub op: &'static str,
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub c: &'a Tensor,
    /// `[m, n, k, sa_i, sa_p, sb_p, sb_j]`.
    pub params: [u32; 7],
    pub act: Activation,
    pub bias: Option<&'a Tensor>,
    pub z_out: Option<&'a Tensor>,
    /// `(1 = A | 2 = B, Z)` ([`FUSE_A`], [`FUSE_B`]): that operand is read as `act_backward(Z, operand)`, Z
    /// laid out like it.
    pub fuse: Option<(u32, &'a Tensor)>,
}

/// [`Gemm::fuse`]'s code for a derivative fused into A (`FUSE_A` in `shaders/matmul.wgsl`).
pub(crate) const FUSE_A: u32 = 1;

/// [`Gemm::fuse`]'s code for a derivative fused into B (`FUSE_B` in `shaders/matmul.wgsl`).
pub(crate) const FUSE_B: u32 = 2;

/// Sizes and strides of `form` over `a` and `b`'s 2-D shapes: `[m, n, k, sa_i, sa_p, sb_p, sb_j]` of C, after
/// checking that the operands agree.
pub(crate) fn form_params(form: Form, a: &Tensor, b: &Tensor) -> Result<[u32; 7]> {
    let op = form.name();
    let (ar, ac) = matrix(op, a)?;
    let (br, bc) = matrix(op, b)?;
    let mismatch = |expected: Vec<usize>| Error::ShapeMismatch {
        op,
        expected,
        got: b.shape().to_vec(),
    };
    // A dimension past u32 (possible on a tensor with no elements: [4, 0] times [0, 2^32 + 4]) is refused, not
    // wrapped into a smaller product.
    let p = |v: [usize; 7]| -> Result<[u32; 7]> {
        let mut out = [0u32; 7];
        for (o, x) in out.iter_mut().zip(v) {
            *o = u32::try_from(x).map_err(|_| Error::LimitExceeded {
                limit: "a product's dimension (u32)",
                max: u64::from(u32::MAX),
                requested: x as u64,
            })?;
        }
        Ok(out)
    };
    match form {
        Form::AB if br == ac => p([ar, bc, ac, ac, 1, bc, 1]),
        Form::AB => Err(mismatch(vec![ac, bc])),
        Form::AtB if br == ar => p([ac, bc, ar, 1, ac, bc, 1]),
        Form::AtB => Err(mismatch(vec![ar, bc])),
        Form::ABt if bc == ac => p([ar, br, ac, ac, 1, 1, bc]),
        Form::ABt => Err(mismatch(vec![br, ac])),
    }
}

/// `(rows, cols)` of a 2-D tensor of any storage type.
pub(crate) fn matrix(op: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((r, c)),
        _ => Err(Error::InvalidArgument {
            op,
            reason: format!(
                "expected a 2-D [rows, cols] tensor, got shape {:?}",
                t.shape()
            ),
        }),
    }
}

/// Checks that `t` is a tensor of any storage type and exactly `shape` in `gpu`'s context.
pub(crate) fn expect_shape_any(
    op: &'static str,
    gpu: &Gpu,
    t: &Tensor,
    shape: &[usize],
) -> Result<()> {
    if !t.gpu().same_context(gpu) {
        return Err(Error::DeviceMismatch { op });
    }
    if t.shape() != shape {
        return Err(Error::ShapeMismatch {
            op,
            expected: shape.to_vec(),
            got: t.shape().to_vec(),
        });
    }
    Ok(())
}

/// Checks that `t` is an f32 tensor of exactly `shape` in `gpu`'s context.
pub(crate) fn expect_shape(op: &'static str, gpu: &Gpu, t: &Tensor, shape: &[usize]) -> Result<()> {
    // The context first, then the type, then the shape, as [`expect_shape_any`] orders its own checks.
    if t.gpu().same_context(gpu) && t.dtype() != DType::F32 {
        return Err(Error::DTypeMismatch {
            op,
            expected: DType::F32,
            got: t.dtype(),
        });
    }
    expect_shape_any(op, gpu, t, shape)
}

/// Fails unless `out` is a buffer of its own (no input aliases an output).
pub(crate) fn check_distinct(
    op: &'static str,
    outs: &[&Tensor],
    ins: &[&wgpu::Buffer],
) -> Result<()> {
    for (i, o) in outs.iter().enumerate() {
        let clash = ins.contains(&o.buffer()) || outs[..i].iter().any(|p| p.buffer() == o.buffer());
        if clash {
            return Err(Error::InvalidArgument {
                op,
                reason: "an output shares its buffer with another operand".into(),
            });
        }
    }
    Ok(())
}

/// The generated kernel `g` runs, if any: `(rows, lanes, subgroup, form, column blocks, B's loads)` for
/// [`MatmulKernel::Subgroup`] (where the device has subgroups) or [`MatmulKernel::Vec4`], with no derivative fused
/// into the loads and operands laid out as the generated kernels' `vec4` loads of A need
/// ([`matmul_subgroup::form_of`]).
fn generated(g: &Gemm) -> Option<(u32, u32, bool, Form, u32, BLoad)> {
    let (rows, lanes, subgroup, vecs) = match (g.kernel, g.fuse) {
        (MatmulKernel::Subgroup, None) => {
            (matmul_subgroup::ROWS, subgroup_lanes(g.c.gpu())?, true, 1)
        }
        (MatmulKernel::Vec4, None) => (VEC4_ROWS, VEC4_LANES, false, vec4_blocks(g.params[1])),
        _ => return None,
    };
    let (form, b_load) = matmul_subgroup::form_of(g.params)?;
    Some((rows, lanes, subgroup, form, vecs, b_load))
}

/// The kernel and grid for `g`: the generated kernel where `g` is eligible ([`generated`]) and both operands
/// are f32, else the kernel of `shaders/matmul.wgsl`.
fn plan(g: &Gemm) -> Plan {
    plan_with(g, g.a.dtype() == DType::F32 && g.b.dtype() == DType::F32)
}

/// How a product runs: [`plan`]'s choice of kernel and its grid.
struct Plan {
    /// The pipeline's module.
    shader: ShaderId,
    /// Its entry point.
    entry: &'static str,
    /// Threads per workgroup.
    wg: u32,
    /// Threads along N (`TX`; the lanes of the generated kernels).
    tx: u32,
    /// `(column blocks, row blocks)` of C.
    groups: (u32, u32),
    /// Rows of C per workgroup.
    block_rows: u32,
}

/// [`plan`] for operands that will be f32 when the product runs (`f32_operands`): the chunked path plans before
/// it widens 16-bit operands.
fn plan_with(g: &Gemm, f32_operands: bool) -> Plan {
    let [m, n, ..] = g.params;
    if let (true, Some((rows, lanes, subgroup, form, vecs, b_load))) = (f32_operands, generated(g))
    {
        let shader = ShaderId::MatmulGenerated {
            form,
            rows,
            lanes,
            subgroup,
            vecs,
            b_load,
        };
        let groups = matmul_subgroup::groups(m, n, rows, 4 * vecs * lanes);
        let entry = if subgroup {
            "matmul_subgroup"
        } else {
            "matmul_vec4"
        };
        return Plan {
            shader,
            entry,
            wg: lanes,
            tx: lanes,
            groups,
            block_rows: rows,
        };
    }
    let (wg, tx) = g.kernel.shape();
    let block_rows = g.kernel.rows_per_thread() * (wg / tx);
    let groups = (n.div_ceil(4 * tx), m.div_ceil(block_rows));
    let shader = if g.kernel == MatmulKernel::TiledWide {
        ShaderId::MatmulWide
    } else {
        ShaderId::Matmul
    };
    Plan {
        shader,
        entry: g.kernel.entry(),
        wg,
        tx,
        groups,
        block_rows,
    }
}

/// Whether [`MatmulKernel::TiledWide`] stages an operand of `rows` x `cols` elements (`rows` along the output,
/// `cols` along K) with strides `(along rows, along K)` by runs of four contiguous elements: its stride along K
/// is 1, and K and the row stride are multiples of 4; or its row stride is 1, and the rows and the stride along K
/// are multiples of 4. Then every run starts at a multiple of 4 (16 bytes of f32, 8 of a 16-bit type) and lies
/// wholly inside or wholly outside the operand, as the kernel's `fetch_a` / `fetch_b` need.
fn wide_runs(rows: u32, cols: u32, (stride_rows, stride_k): (u32, u32)) -> bool {
    if stride_k == 1 {
        cols.is_multiple_of(4) && stride_rows.is_multiple_of(4)
    } else {
        stride_rows == 1 && rows.is_multiple_of(4) && stride_k.is_multiple_of(4)
    }
}

/// The storage type code of a tensor as the kernels' `*_T` overrides take it.
fn code(t: &Tensor) -> f64 {
    f64::from(t.dtype().storage_code())
}

/// Records one product. `C [m, n]` with `m` or `n` 0 records nothing.
///
/// Storage types: the kernels of `shaders/matmul.wgsl` decode 16-bit A, B, Z and bias at the load (exact). The
/// generated kernels ([`MatmulKernel::Subgroup`], [`MatmulKernel::Vec4`]) bind their operands as f32 (`vec4<f32>`,
/// or `f32` for [`BLoad::Scalar`]'s B), so a 16-bit operand is first widened into an f32 scratch by one conversion pass (exact, `O(rows x cols)` against the
/// product's `O(m n k)`), which keeps the fast kernel; where the f32 copy would pass the storage-binding limit,
/// the direct kernel runs instead. A 16-bit C or `z_out` is written to an f32 scratch and
/// rounded once, to nearest even, by one conversion pass (a 16-bit store from the kernel would race: the two
/// halves of a packed word belong to different threads).
///
/// A product with a tensor past the storage-binding limit runs in chunks of C's rows where its rows of C are A's
/// rows ([`record_row_chunks`]); any other is [`Error::LimitExceeded`].
pub(crate) fn record_gemm(encoder: &mut Recording, g: Gemm) -> Result<()> {
    match prepare(g)? {
        Prepared::Empty => Ok(()),
        Prepared::Chunked(g) => record_row_chunks(encoder, g),
        Prepared::Whole { g, widen } => record_whole(encoder, g, widen),
    }
}

/// How [`record_gemm`] runs a product, once every check that needs no recording has passed.
enum Prepared<'a> {
    /// No element of C: nothing to record.
    Empty,
    /// Past one binding, in chunks of C's rows ([`record_row_chunks`]).
    Chunked(Gemm<'a>),
    /// Every tensor bound whole, 16-bit operands widened to f32 first where `widen`.
    Whole { g: Gemm<'a>, widen: bool },
}

/// [`record_gemm`]'s checks and choices: the kernel (the tiled one for a K deeper than a loop-limited driver
/// walks), whether 16-bit operands are widened, whole or in chunks, and the launch's grid and splits.
fn prepare(g: Gemm) -> Result<Prepared> {
    let gpu = g.c.gpu();
    gpu.check_lost()?;
    g.act.validate()?;
    let [m, n, ..] = g.params;
    if m == 0 || n == 0 {
        return Ok(Prepared::Empty);
    }
    // A K deeper than a loop-limited driver lets one pass walk goes to the tiled kernel, split (tiled_splits).
    // A derivative in the loads, or a user-defined activation in the epilogue, may loop: the wider margin.
    let deepest = if g.fuse.is_some() || g.act.custom_id().is_some() {
        LOOP_LIMITED_K_FUSED
    } else {
        LOOP_LIMITED_K
    };
    let kernel = if gpu.loop_limited() && g.params[2] > deepest {
        MatmulKernel::Tiled
    } else {
        g.kernel
    };
    let g = Gemm {
        kernel: kernel.on_device(gpu.limits()),
        ..g
    };
    // Widened operands past the binding limit leave the product to the direct kernel, which decodes in place.
    let max = gpu.limits().max_storage_buffer_binding_size;
    let fits = |t: &Tensor| padded_bytes(t.len(), DType::F32) <= max;
    let widen = generated(&g).is_some() && fits(g.a) && fits(g.b);
    // A product that fits one binding per tensor records exactly what it always has; past that, one whose rows
    // of C are A's rows runs in chunks of them, and any other is refused.
    if let Some(requested) = past_whole(&g, widen) {
        if row_separable(&g) {
            return Ok(Prepared::Chunked(g));
        }
        return Err(Error::LimitExceeded {
            limit: "max_storage_buffer_binding_size",
            max,
            requested,
        });
    }
    // What the launch could refuse, checked before `record_whole`'s casts record anything (`record_f32_out`
    // checks the same on the f32 product).
    let p = plan_with(
        &g,
        widen || (g.a.dtype() == DType::F32 && g.b.dtype() == DType::F32),
    );
    grid_of(gpu, p.groups)?;
    if is_tiled(&g, &p) {
        tiled_splits(gpu, g.kernel, g.params)?;
    }
    Ok(Prepared::Whole { g, widen })
}

/// The unchunked product [`prepare`] found to fit: 16-bit operands widened where `widen`, 16-bit outputs through
/// f32 copies.
fn record_whole(encoder: &mut Recording, g: Gemm, widen: bool) -> Result<()> {
    let gpu = g.c.gpu();
    let wide = |t: &Tensor| -> Result<Option<Tensor>> {
        match t.dtype() {
            DType::F32 => Ok(None),
            _ => gpu.zeros(t.shape(), DType::F32).map(Some),
        }
    };
    let (mut a32, mut b32) = (None, None);
    if widen {
        a32 = wide(g.a)?;
        b32 = wide(g.b)?;
        for (src, dst) in [(g.a, &a32), (g.b, &b32)] {
            if let Some(dst) = dst {
                src.plan_cast(encoder, dst)?;
            }
        }
    }
    let c32 = wide(g.c)?;
    let z32 = match g.z_out {
        Some(z) => wide(z)?,
        None => None,
    };
    let (c, z_out) = (g.c, g.z_out);
    record_f32_out(
        encoder,
        Gemm {
            a: a32.as_ref().unwrap_or(g.a),
            b: b32.as_ref().unwrap_or(g.b),
            c: c32.as_ref().unwrap_or(c),
            z_out: z32.as_ref().or(z_out),
            ..g
        },
    )?;
    if let Some(t) = &c32 {
        t.plan_cast(encoder, c)?;
    }
    if let (Some(t), Some(z)) = (&z32, z_out) {
        t.plan_cast(encoder, z)?;
    }
    Ok(())
}

/// The bytes of the first buffer the unchunked path binds for `g` that passes one storage binding, if one does:
/// A and B (their f32 copies where `widened`), C and the stored Z (an f32 copy of a 16-bit one), the bias and the
/// fused Z, by their buffers' sizes as [`check_whole_binding`] reads them.
fn past_whole(g: &Gemm, widened: bool) -> Option<u64> {
    let max = g.c.gpu().limits().max_storage_buffer_binding_size;
    let f32_copy = |t: &Tensor| padded_bytes(t.len(), DType::F32);
    let operand = |t: &Tensor| match t.dtype() {
        DType::F32 => t.buffer().size(),
        _ if widened => f32_copy(t),
        _ => t.buffer().size(),
    };
    let output = |t: &Tensor| match t.dtype() {
        DType::F32 => t.buffer().size(),
        _ => f32_copy(t),
    };
    let mut bytes = vec![operand(g.a), operand(g.b), output(g.c)];
    bytes.extend(g.z_out.map(output));
    bytes.extend(g.bias.map(|b| b.buffer().size()));
    bytes.extend(g.fuse.map(|(_, z)| z.buffer().size()));
    bytes.into_iter().find(|&b| b > max)
}

/// Whether C's rows of `g` are A's rows, A row-major (`Y = X W`, `dX = dZ W^T`, and the dense layer's products of
/// those forms): then rows `i0 .. i1` of C read only rows `i0 .. i1` of A (and of a Z fused into A, laid out like
/// A), with B, the bias and a Z fused into B read whole by every row, and a chunk of C's rows is the same kernel
/// on an M of the chunk's rows. `X^T dZ` (and `1^T dZ`) sums over the rows instead.
fn row_separable(g: &Gemm) -> bool {
    let [_, _, k, sa_i, sa_p, ..] = g.params;
    sa_i == k && sa_p == 1
}

/// How [`record_row_chunks`] runs a product: rows of C per chunk (the last takes what is left), whether its
/// operands run as f32 (16-bit ones widened for a generated kernel), and the splits of K it aims for with whether
/// a loop-limited adapter needs them (the whole product's, [`wanted_splits`] as [`fit_splits`] keeps them on its
/// grid, so that each chunk adds K in the order the unchunked product would).
#[derive(Debug, Clone, Copy)]
struct RowChunks {
    rows: u32,
    f32_operands: bool,
    splits: (u32, bool),
}

impl RowChunks {
    /// `(first row, rows)` of each chunk of a C of `m` rows.
    fn chunks(&self, m: u32) -> impl Iterator<Item = (u32, u32)> {
        let step = self.rows;
        (0..m)
            .step_by(step as usize)
            .map(move |first| (first, step.min(m - first)))
    }
}

/// Records `g`, whose tensors do not all fit a storage binding, in chunks of C's rows ([`row_separable`]
/// products): each chunk binds its rows of A, C, the stored Z and a Z fused into A at offsets that are multiples
/// of the device's storage offset alignment, B, the bias and a Z fused into B whole, and runs the kernel the
/// unchunked product would run on an M of its rows, so that its rows of C are bit for bit the unchunked
/// product's. 16-bit outputs go through whole f32 copies (bound in chunks too, rounded by one conversion pass
/// each, as in [`record_gemm`]), and for a generated kernel 16-bit operands are widened into f32 copies first, B's
/// only where it fits a binding (else the direct kernel runs, decoding in place). Everything is planned and
/// checked before anything is recorded: B, the bias or a Z fused into B past a binding, or one aligned group of
/// rows past it, is [`Error::LimitExceeded`].
fn record_row_chunks(encoder: &mut Recording, g: Gemm) -> Result<()> {
    let gpu = g.c.gpu();
    let (plan, widen) = chunk_plan(&g)?;
    let f32_copy = |t: &Tensor, wanted: bool| -> Result<Option<Tensor>> {
        match t.dtype() {
            DType::F32 => Ok(None),
            _ if wanted => gpu.zeros(t.shape(), DType::F32).map(Some),
            _ => Ok(None),
        }
    };
    let a32 = f32_copy(g.a, widen)?;
    let b32 = f32_copy(g.b, widen)?;
    let c32 = f32_copy(g.c, true)?;
    let z32 = match g.z_out {
        Some(z) => f32_copy(z, true)?,
        None => None,
    };
    for (src, dst) in [(g.a, &a32), (g.b, &b32)] {
        if let Some(dst) = dst {
            src.plan_cast(encoder, dst)?;
        }
    }
    let f = Gemm {
        a: a32.as_ref().unwrap_or(g.a),
        b: b32.as_ref().unwrap_or(g.b),
        c: c32.as_ref().unwrap_or(g.c),
        z_out: z32.as_ref().or(g.z_out),
        ..g
    };
    for (first, rows) in plan.chunks(g.params[0]) {
        let chunk = with_rows(&f, rows);
        let launch = chunk_launch(&chunk, plan)?;
        record_product(encoder, &chunk, launch, &row_views(&f, first, rows))?;
    }
    if let Some(t) = &c32 {
        t.plan_cast(encoder, g.c)?;
    }
    if let (Some(t), Some(z)) = (&z32, g.z_out) {
        t.plan_cast(encoder, z)?;
    }
    Ok(())
}

/// The chunks [`record_row_chunks`] runs `g` in, and whether its 16-bit operands are widened to f32 for a
/// generated kernel; [`Error::LimitExceeded`] where what every chunk binds whole (B, the bias, a Z fused into B)
/// or one aligned group of rows passes a binding, or a chunk's launch cannot run.
fn chunk_plan(g: &Gemm) -> Result<(RowChunks, bool)> {
    let mut whole_bound = vec![g.b];
    whole_bound.extend(g.bias);
    whole_bound.extend(g.fuse.filter(|&(w, _)| w == FUSE_B).map(|(_, z)| z));
    check_vectors(&whole_bound)?;
    let max = g.c.gpu().limits().max_storage_buffer_binding_size;
    let widen = generated(g).is_some()
        && padded_bytes(g.b.len(), DType::F32) <= max
        && row_chunks(g, true).is_ok();
    Ok((row_chunks(g, widen)?, widen))
}

/// `g` on an M of `rows` (one chunk's rows of C).
fn with_rows<'a>(g: &Gemm<'a>, rows: u32) -> Gemm<'a> {
    let mut params = g.params;
    params[0] = rows;
    Gemm { params, ..*g }
}

/// The launch of one chunk `g` (its params' M the chunk's rows) as `plan` runs it: [`plan_with`]'s kernel, the
/// grid checked ([`grid_of`]), and on a tiled kernel the whole product's splits where they fit the chunk
/// ([`fit_splits`]).
fn chunk_launch(g: &Gemm, plan: RowChunks) -> Result<Launch> {
    let gpu = g.c.gpu();
    let p = plan_with(g, plan.f32_operands);
    let grid3 = grid_of(gpu, p.groups)?;
    let splits = if is_tiled(g, &p) {
        let (whole, needed) = plan.splits;
        let fit = fit_splits(gpu, g.kernel, g.params, whole, needed, true)?;
        // The chunk's rows keep its partial products within a binding and its grid is the whole product's at
        // most, so its splits fit; were they dropped, its bits would differ from the unchunked product's.
        if fit != whole {
            return Err(Error::LimitExceeded {
                limit: "splits of K in one chunk of a product's rows",
                max: u64::from(fit),
                requested: u64::from(whole),
            });
        }
        whole
    } else {
        1
    };
    Ok(Launch {
        key: pipeline_key(g, &p),
        splits,
        groups: p.groups,
        grid: grid3,
    })
}

/// Plans `g`'s chunks of rows with its operands widened to f32 or not ([`RowChunks`]), and checks the launch of
/// a full chunk and of the last, so that a product that cannot run is refused before anything is recorded.
fn row_chunks(g: &Gemm, widened: bool) -> Result<RowChunks> {
    let [m, n, k, ..] = g.params;
    let f32_operands = widened || (g.a.dtype() == DType::F32 && g.b.dtype() == DType::F32);
    let p = plan_with(g, f32_operands);
    // The splits of the whole product on a device whose binding held its partial products (the chunks bind
    // theirs in parts): every chunk takes them, so that its rows have the K order of the unchunked product's.
    // Checked on the whole product's grid, as `tiled_splits` checks them: a chunk, with fewer row blocks, could
    // fit splits the whole product drops.
    let splits = if is_tiled(g, &p) {
        let gpu = g.c.gpu();
        let (wanted, needed) = wanted_splits(gpu, g.kernel, g.params);
        (
            fit_splits(gpu, g.kernel, g.params, wanted, needed, false)?,
            needed,
        )
    } else {
        (1, false)
    };
    let a_bytes = if widened { 4 } else { g.a.dtype().size_bytes() };
    let row = |elems: u32, bytes: usize| u64::from(elems) * bytes as u64;
    // Bytes per row of C of each tensor bound by rows: A, C (f32, or its f32 copy), the stored Z (likewise) and
    // a Z fused into A.
    let mut row_bytes = vec![row(k, a_bytes), row(n, 4)];
    if g.z_out.is_some() {
        row_bytes.push(row(n, 4));
    }
    if let Some((FUSE_A, z)) = g.fuse {
        row_bytes.push(row(k, z.dtype().size_bytes()));
    }
    let partial = if splits.0 > 1 {
        row(n, 4) * u64::from(splits.0)
    } else {
        0
    };
    let rows = chunk_rows(g.c.gpu().limits(), m, &row_bytes, partial, p.block_rows)?;
    let plan = RowChunks {
        rows,
        f32_operands,
        splits,
    };
    for rows in [rows, m % rows] {
        if rows > 0 {
            chunk_launch(&with_rows(g, rows), plan)?;
        }
    }
    Ok(plan)
}

/// Rows of C per chunk, for tensors bound by rows of `row_bytes` bytes per row of C each (0: one that holds no
/// elements, bound whole) and split partial products of `partial_row_bytes` per row (0: unsplit): the most that
/// keep each tensor's bound bytes (rounded up to 32, [`row_view`]) and the partial products within a binding, in
/// a multiple of the rows after which every tensor's next chunk starts at a multiple of the offset alignment (and
/// of 16 bytes, so that 16-bit elements keep their place in a packed word and in a `vec4<u32>` of
/// `shaders/matmul_operands_wide.wgsl`): a row of 74 bytes under a 256-byte alignment steps by 128 rows. Also a
/// multiple of the kernel's `block_rows` where a binding holds that many, so that no chunk but the last runs
/// partly empty workgroups. At most `m`; [`Error::LimitExceeded`] where one aligned group of rows passes a
/// binding.
fn chunk_rows(
    limits: &wgpu::Limits,
    m: u32,
    row_bytes: &[u64],
    partial_row_bytes: u64,
    block_rows: u32,
) -> Result<u32> {
    let align = lcm(
        u64::from(limits.min_storage_buffer_offset_alignment).max(1),
        16,
    );
    let binding = limits.max_storage_buffer_binding_size / 32 * 32;
    let bound = || row_bytes.iter().copied().filter(|&b| b > 0);
    let aligned = bound().map(|b| align / gcd(align, b)).fold(1, lcm);
    let mut most = bound().map(|b| binding / b).min().unwrap_or(u64::MAX);
    // The partial products go to the context's scratch buffer, which holds up to a binding in whole words.
    let scratch = limits.max_storage_buffer_binding_size / 4 * 4;
    if let Some(rows) = scratch.checked_div(partial_row_bytes) {
        most = most.min(rows);
    }
    let blocks = lcm(aligned, u64::from(block_rows));
    let step = if most >= blocks { blocks } else { aligned };
    let rows = most / step * step;
    if rows == 0 {
        let widest = bound().max().unwrap_or(0).max(partial_row_bytes);
        return Err(Error::LimitExceeded {
            limit: "max_storage_buffer_binding_size (one offset-aligned group of a product's rows)",
            max: limits.max_storage_buffer_binding_size,
            requested: aligned.saturating_mul(widest),
        });
    }
    Ok(rows.min(u64::from(m)) as u32)
}

/// What one chunk of rows `first .. first + rows` of C binds of the whole product `g` (its M all of C's rows):
/// those rows of A, C, the stored Z and a Z fused into A ([`row_view`]); B, the bias and a Z fused into B whole
/// (their bound bytes, [`crate::ops::elementwise::bound_bytes`]); the spare buffers where `g` has no such
/// tensor.
fn row_views<'a>(g: &Gemm<'a>, first: u32, rows: u32) -> Views<'a> {
    let [_, n, k, ..] = g.params;
    let (read_spare, write_spare) = g.c.gpu().unused_bindings();
    let whole = |t: &'a Tensor| row_view(t, 0, first, rows);
    Views {
        a: row_view(g.a, k, first, rows),
        b: whole(g.b),
        c: row_view(g.c, n, first, rows),
        bias: g.bias.map_or(read_spare.as_entire_binding(), whole),
        z_out: g.z_out.map_or(write_spare.as_entire_binding(), |z| {
            row_view(z, n, first, rows)
        }),
        z_in: match g.fuse {
            None => read_spare.as_entire_binding(),
            Some((FUSE_A, z)) => row_view(z, k, first, rows),
            Some((_, z)) => whole(z),
        },
    }
}

/// Rows `first .. first + rows` of `t`, `row_elems` elements to a row of C: from byte `first x row bytes` (a
/// multiple of the offset alignment, as [`chunk_rows`] chose the rows), the rows' bytes rounded up to 32 within
/// the tensor's padded bytes, so that a 16-bit tensor's last packed word, or a `vec4<u32>` holding its last
/// elements, lies inside the binding. `row_elems` 0 (a tensor with no elements, or one read whole): its bound
/// bytes from the start.
fn row_view(t: &Tensor, row_elems: u32, first: u32, rows: u32) -> wgpu::BindingResource<'_> {
    let row_bytes = u64::from(row_elems) * t.dtype().size_bytes() as u64;
    let (offset, size) = row_range(bound_bytes(t), row_bytes, first, rows);
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: t.buffer(),
        offset,
        size: wgpu::BufferSize::new(size),
    })
}

/// [`row_view`]'s `(offset, size)` in a tensor of `total` bound bytes for rows of `row_bytes` (0: the whole).
fn row_range(total: u64, row_bytes: u64, first: u32, rows: u32) -> (u64, u64) {
    if row_bytes == 0 {
        return (0, total);
    }
    let offset = u64::from(first) * row_bytes;
    let size = (u64::from(rows) * row_bytes).next_multiple_of(32);
    (offset, size.min(total - offset))
}

/// Greatest common divisor (`gcd(a, 0) = a`).
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Least common multiple of two positive numbers.
fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

/// [`record_gemm`] once C and `z_out` are f32 and a generated kernel's operands are f32.
fn record_f32_out(encoder: &mut Recording, g: Gemm) -> Result<()> {
    let gpu = g.c.gpu();
    let p = plan(&g);
    let grid3 = grid_of(gpu, p.groups)?;
    let (read_spare, write_spare) = gpu.unused_bindings();
    let bias = g.bias.map_or(read_spare, Tensor::buffer);
    let z_out = g.z_out.map_or(write_spare, Tensor::buffer);
    let z_in = g.fuse.map_or(read_spare, |(_, z)| z.buffer());
    for b in [g.a.buffer(), g.b.buffer(), g.c.buffer(), bias, z_out, z_in] {
        check_whole_binding(gpu, b)?;
    }
    let key = pipeline_key(&g, &p);
    let splits = if is_tiled(&g, &p) {
        tiled_splits(gpu, g.kernel, g.params)?
    } else {
        1
    };
    let launch = Launch {
        key,
        splits,
        groups: p.groups,
        grid: grid3,
    };
    let views = Views {
        a: g.a.buffer().as_entire_binding(),
        b: g.b.buffer().as_entire_binding(),
        c: g.c.buffer().as_entire_binding(),
        bias: bias.as_entire_binding(),
        z_out: z_out.as_entire_binding(),
        z_in: z_in.as_entire_binding(),
    };
    record_product(encoder, &g, launch, &views)
}

/// `(column blocks, row blocks)` as a dispatch grid `(x, y, z)`: row blocks past the per-dimension limit (a batch
/// of millions of rows) continue along z (the shaders' `row_block`); column blocks past it are
/// [`Error::LimitExceeded`].
fn grid_of(gpu: &Gpu, groups: (u32, u32)) -> Result<(u32, u32, u32)> {
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    if groups.0 > max {
        return Err(Error::LimitExceeded {
            limit: "max_compute_workgroups_per_dimension",
            max: u64::from(max),
            requested: u64::from(groups.0),
        });
    }
    let (row_blocks, row_layers) = grid(u64::from(groups.1), max)?;
    Ok((groups.0, row_blocks, row_layers))
}

/// Whether `p` runs the generated code of `src/ops/matmul_subgroup.rs` rather than `shaders/matmul.wgsl`.
fn is_generated(p: &Plan) -> bool {
    !matches!(p.shader, ShaderId::Matmul | ShaderId::MatmulWide)
}

/// Whether `g` on `p` runs one of the tiled kernels, which split K over workgroups for products of few blocks.
fn is_tiled(g: &Gemm, p: &Plan) -> bool {
    !is_generated(p)
        && matches!(
            g.kernel,
            MatmulKernel::Tiled | MatmulKernel::Tiled32 | MatmulKernel::TiledWide
        )
}

/// The pipeline of `g` on `p`: its activation, epilogue and fused derivative, and for `shaders/matmul.wgsl` the
/// operands' storage types (and for [`MatmulKernel::TiledWide`] which of them load by 16 bytes). Nothing in it
/// depends on C's row count, so every chunk of a chunked product shares it.
fn pipeline_key(g: &Gemm, p: &Plan) -> PipelineKey {
    let [p0, p1] = g.act.params();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut constants = vec![
        ("ACT", f64::from(g.act.id())),
        ("P0", f64::from(p0)),
        ("P1", f64::from(p1)),
        ("HAS_BIAS", flag(g.bias.is_some())),
        ("STORE_Z", flag(g.z_out.is_some())),
        ("FUSE", f64::from(g.fuse.map_or(0, |(which, _)| which))),
        ("BIAS_T", g.bias.map_or(0.0, code)),
    ];
    if !is_generated(p) {
        constants.extend([
            ("TX", f64::from(p.tx)),
            ("A_T", code(g.a)),
            ("B_T", code(g.b)),
            ("Z_T", g.fuse.map_or(0.0, |(_, z)| code(z))),
        ]);
    }
    if p.shader == ShaderId::MatmulWide {
        let [m, n, k, sa_i, sa_p, sb_p, sb_j] = g.params;
        constants.extend([
            ("VEC_A", flag(wide_runs(m, k, (sa_i, sa_p)))),
            ("VEC_B", flag(wide_runs(n, k, (sb_j, sb_p)))),
        ]);
    }
    PipelineKey::new(p.shader, p.entry, p.wg, &constants).with_custom(g.act.custom_id())
}

/// One product's launch: its pipeline, the splits of K (1: unsplit), the unsplit grid `(column blocks, row
/// blocks)` and that grid laid out for one dispatch ([`grid_of`]).
struct Launch {
    key: PipelineKey,
    splits: u32,
    groups: (u32, u32),
    grid: (u32, u32, u32),
}

/// What one dispatch binds for A, B, C, the bias, the stored Z and the fused Z (or the spare buffers standing in
/// for those it does not use): whole buffers, or in the chunked path ([`record_row_chunks`]) one chunk's rows of
/// A, C and the Zs shaped like them.
struct Views<'a> {
    a: wgpu::BindingResource<'a>,
    b: wgpu::BindingResource<'a>,
    c: wgpu::BindingResource<'a>,
    bias: wgpu::BindingResource<'a>,
    z_out: wgpu::BindingResource<'a>,
    z_in: wgpu::BindingResource<'a>,
}

/// `resource` at `binding`.
fn entry<'a>(binding: u32, resource: &wgpu::BindingResource<'a>) -> wgpu::BindGroupEntry<'a> {
    wgpu::BindGroupEntry {
        binding,
        resource: resource.clone(),
    }
}

/// Records `g` as `launch` says over the buffers of `views`: one dispatch, or the split pass and the pass adding
/// the splits ([`record_split`]).
fn record_product(encoder: &mut Recording, g: &Gemm, launch: Launch, views: &Views) -> Result<()> {
    let gpu = g.c.gpu();
    if launch.splits > 1 {
        return record_split(encoder, g, launch.key, launch.splits, launch.groups, views);
    }
    let generated = !matches!(launch.key.shader, ShaderId::Matmul | ShaderId::MatmulWide);
    let pipeline = gpu.pipelines().get_or_create(gpu.device(), &launch.key)?;
    let mut entries = vec![
        entry(Slot::X as u32, &views.a),
        entry(Slot::Out as u32, &views.c),
        entry(Slot::Dy as u32, &views.b),
        entry(Slot::Bias as u32, &views.bias),
        entry(5, &views.z_out),
    ];
    // The generated kernel never fuses a derivative into its loads, so it has no Z operand.
    if !generated {
        entries.push(entry(7, &views.z_in));
    }
    dispatch(
        gpu,
        encoder,
        &pipeline,
        g.op,
        entries,
        &g.params,
        launch.grid,
    )?;
    Ok(())
}

/// Depth of one K-chunk of the tiled kernels (`KT` in `shaders/matmul.wgsl`).
const TILED_CHUNK: u32 = 16;

/// Workgroups a split product aims for at least: about two per multiprocessor of a large GPU (an NVIDIA H200 has
/// 132). Unsplit, a product of few blocks of C is as slow as its K is deep: on the H200, 256x784x512 (32 blocks)
/// took 173 us, split 7 ways 64.7 us (BENCHMARKS.md, "second session").
///
/// Measured there against this rule (256 workgroups, at least 4 chunks a split, at most 16 splits): aiming for
/// 1024 workgroups with 2 chunks a split and up to 32 splits made the dense shapes 30% slower and 4096x64x64 70%
/// slower (the second pass reads every split's partial C), for a 6% gain at 1024^3.
const SPLIT_TARGET_WORKGROUPS: u32 = 256;

/// Chunks of K one split walks at least, so that the partial products' extra pass stays small against the product.
const SPLIT_MIN_CHUNKS: u32 = 4;

/// Splits of K at most (more where a loop-limited adapter needs them: [`LOOP_LIMITED_SPLIT_CHUNKS`]).
const MAX_SPLITS: u32 = 16;

/// Deepest K a product takes in one pass on an adapter whose driver cuts loops short
/// ([`crate::Gpu::loop_limited`]); deeper products run on the tiled kernel, split so that no split walks more
/// than 1,024 chunks of 16 (`LOOP_LIMITED_SPLIT_CHUNKS`). The direct and generated kernels walk K one element per
/// loop iteration at most, so past 65,535 they lose the rest of K (a 3 x 70,000 x 5 product read 6.4% low; with
/// K's loop the only one counted, exactly K - 65,535 terms, measured on lavapipe for the direct, subgroup and
/// vec4 kernels); 60,000 keeps them (3.5 times faster than the split tiled kernel on lavapipe at 784 x 20,000 x
/// 512) with a margin, which `tests/dense.rs` checks at 60,000 on every kernel. A product whose loads apply a
/// derivative ([`LOOP_LIMITED_K_FUSED`]) keeps a wider margin.
pub const LOOP_LIMITED_K: u32 = 60_000;

/// [`LOOP_LIMITED_K`] for a product that applies an activation's derivative to its operand as it loads it (the
/// fused dense backward), or whose epilogue applies a user-defined activation: a margin of four for the loops
/// those may add. It bounds the built-in activations' cost only: the direct kernel applies a derivative 4 or 8
/// times per element of K, so a user-defined derivative with a loop that runs even once can pass the driver's
/// limit in a fused product from K of about 7,000 (measured: an 8,000-deep dX read 303.5 for 1,000): the dense
/// backward therefore runs [`crate::DzMode::Separate`] for user-defined activations on these adapters, applying
/// the derivative once per element in an elementwise pass.
pub const LOOP_LIMITED_K_FUSED: u32 = 16_384;

/// Chunks of K one split walks at most on a loop-limited adapter: 1,024 chunks (16,384 of K) at a few dozen loop
/// iterations a chunk stay well inside the driver's 65,535 (the unsplit tiled kernel failed past 62,500 chunks
/// over 16 splits, about 17 iterations a chunk).
const LOOP_LIMITED_SPLIT_CHUNKS: u32 = 1024;

/// The splits of K for a product `[m, n, k, ..]` on a tiled kernel: enough for [`SPLIT_TARGET_WORKGROUPS`]
/// workgroups, each at least [`SPLIT_MIN_CHUNKS`] chunks deep, at most [`MAX_SPLITS`], none empty (as
/// `split_len` in the shader spreads the chunks); 1 where the `[splits, m, n]` partial products would pass the
/// storage-binding limit, the split pass the grid's y dimension, or the pass adding the splits the grid.
///
/// On a loop-limited adapter ([`Gpu::loop_limited`]) a K deeper than [`LOOP_LIMITED_SPLIT_CHUNKS`] chunks is
/// split so that no split walks more; where those splits do not fit, [`Error::LimitExceeded`] (unsplit, the
/// driver would cut the product short without a word).
fn tiled_splits(gpu: &Gpu, kernel: MatmulKernel, params: [u32; 7]) -> Result<u32> {
    let (splits, needed) = wanted_splits(gpu, kernel, params);
    fit_splits(gpu, kernel, params, splits, needed, true)
}

/// The splits [`tiled_splits`] aims for on `params` before checking that they fit, and whether a loop-limited
/// adapter needs them (a K deeper than one split may walk there).
fn wanted_splits(gpu: &Gpu, kernel: MatmulKernel, params: [u32; 7]) -> (u32, bool) {
    let [m, n, k, ..] = params;
    let (_, tx) = kernel.shape();
    let tile = 4 * tx;
    let chunks = k.div_ceil(TILED_CHUNK);
    let splits = split_count(m.div_ceil(tile) * n.div_ceil(tile), chunks);
    if gpu.loop_limited() && chunks > LOOP_LIMITED_SPLIT_CHUNKS {
        let s = splits.max(chunks.div_ceil(LOOP_LIMITED_SPLIT_CHUNKS));
        // As split_count does: ceil(chunks / s) a split, none empty.
        (chunks.div_ceil(chunks.div_ceil(s)), true)
    } else {
        (splits, false)
    }
}

/// `splits` for the product `params` where they fit ([`tiled_splits`]): their partial products within a
/// binding, the split pass's row blocks and the summing pass's workgroups within the grid; else 1, or
/// [`Error::LimitExceeded`] where the splits are `needed`.
fn fit_splits(
    gpu: &Gpu,
    kernel: MatmulKernel,
    params: [u32; 7],
    splits: u32,
    needed: bool,
    partials_bound: bool,
) -> Result<u32> {
    let [m, n, ..] = params;
    let tile = 4 * kernel.shape().1;
    let limits = gpu.limits();
    let bytes = u64::from(splits) * u64::from(m) * u64::from(n) * 4;
    let rows = u64::from(splits) * u64::from(m.div_ceil(tile));
    let max_rows = u64::from(limits.max_compute_workgroups_per_dimension);
    let max_bytes = limits.max_storage_buffer_binding_size;
    // The pass that adds the splits runs a thread per element of C over a two-dimensional grid.
    let sum_groups = (u64::from(m) * u64::from(n)).div_ceil(u64::from(kernel.shape().0));
    let sum_fits = sum_groups <= max_rows * max_rows;
    if (partials_bound && bytes > max_bytes) || rows > max_rows || !sum_fits {
        if !needed {
            return Ok(1);
        }
        return Err(if !sum_fits {
            Error::LimitExceeded {
                limit: "workgroups of the pass adding a deep product's splits on a loop-limited adapter",
                max: max_rows * max_rows,
                requested: sum_groups,
            }
        } else if bytes > max_bytes {
            Error::LimitExceeded {
                limit:
                    "partial products of a deep product's splits on a loop-limited adapter (bytes)",
                max: max_bytes,
                requested: bytes,
            }
        } else {
            Error::LimitExceeded {
                limit:
                    "row blocks of a deep product's splits on a loop-limited adapter (workgroups)",
                max: max_rows,
                requested: rows,
            }
        });
    }
    Ok(splits)
}

/// The splits of `chunks` chunks of K for a product of `blocks` blocks of C (see [`tiled_splits`]): `s` =
/// min(ceil(target / blocks), chunks / min chunks, max splits), at least 1; then the chunks go ceil(chunks / s) to
/// a split, so that `ceil(chunks / splits)` (the shader's `split_len`) gives back the same length and no split is
/// empty.
fn split_count(blocks: u32, chunks: u32) -> u32 {
    if chunks == 0 || blocks == 0 {
        return 1;
    }
    let wanted = SPLIT_TARGET_WORKGROUPS.div_ceil(blocks);
    let deepest = (chunks / SPLIT_MIN_CHUNKS).max(1);
    let s = wanted.min(deepest).clamp(1, MAX_SPLITS);
    chunks.div_ceil(chunks.div_ceil(s))
}

/// `key` for `entry`, with the override constants in `fixed` set to those values (constants the entry does not
/// read, so that pipelines differing only in them are one pipeline).
fn with_constants(
    key: &PipelineKey,
    entry: &'static str,
    fixed: &[(&'static str, f64)],
) -> PipelineKey {
    let mut k = PipelineKey {
        entry,
        ..key.clone()
    };
    for (name, bits) in &mut k.constants {
        if let Some(&(_, v)) = fixed.iter().find(|(n, _)| n == name) {
            *bits = v.to_bits();
        }
    }
    k
}

/// Records `g` on the tiled kernel (pipeline `key`) with K split `splits` ways: `matmul_tiled_split` writes each
/// split's raw product to the context's scratch buffer, then `matmul_split_sum` adds them in split order and
/// applies the epilogue. `groups` is the unsplit grid; `views` the bound (or placeholder) buffers.
fn record_split(
    encoder: &mut Recording,
    g: &Gemm,
    key: PipelineKey,
    splits: u32,
    groups: (u32, u32),
    views: &Views,
) -> Result<()> {
    let gpu = g.c.gpu();
    let [m, n, ..] = g.params;
    let partial = gpu.scratch(u64::from(splits) * u64::from(m) * u64::from(n) * 4)?;
    let mut params = g.params.to_vec();
    params.push(splits);
    let part = wgpu::BindGroupEntry {
        binding: 6,
        resource: partial.as_entire_binding(),
    };
    // The split pass has no epilogue, so products that differ only in it share its pipeline; without a fused
    // derivative its loads do not read the activation either.
    let mut unread = vec![("HAS_BIAS", 0.0), ("STORE_Z", 0.0), ("BIAS_T", 0.0)];
    if g.fuse.is_none() {
        unread.extend([
            ("ACT", f64::from(Activation::Identity.id())),
            ("P0", 0.0),
            ("P1", 0.0),
        ]);
    }
    let mut split_key = with_constants(&key, "matmul_tiled_split", &unread);
    if g.fuse.is_none() {
        split_key.custom = None;
    }
    let pipeline = gpu.pipelines().get_or_create(gpu.device(), &split_key)?;
    let entries = vec![
        entry(Slot::X as u32, &views.a),
        entry(Slot::Dy as u32, &views.b),
        part.clone(),
        entry(7, &views.z_in),
    ];
    let split_groups = (groups.0, groups.1 * splits);
    dispatch(
        gpu,
        encoder,
        &pipeline,
        g.op,
        entries,
        &params,
        split_groups,
    )?;
    // The sum reads no operand: its pipeline is shared across operand types.
    let sum_key = with_constants(
        &key,
        "matmul_split_sum",
        &[
            ("A_T", 0.0),
            ("B_T", 0.0),
            ("Z_T", 0.0),
            ("VEC_A", 0.0),
            ("VEC_B", 0.0),
        ],
    );
    let pipeline = gpu.pipelines().get_or_create(gpu.device(), &sum_key)?;
    let entries = vec![
        part,
        entry(Slot::Out as u32, &views.c),
        entry(Slot::Bias as u32, &views.bias),
        entry(5, &views.z_out),
    ];
    let elements = u64::from(m) * u64::from(n);
    let wg = u64::from(g.kernel.shape().0);
    let sum_groups = grid(
        elements.div_ceil(wg),
        gpu.limits().max_compute_workgroups_per_dimension,
    )?;
    dispatch(gpu, encoder, &pipeline, g.op, entries, &params, sum_groups)?;
    Ok(())
}

/// Records `out = form(a, b)` with `kernel` (see [`Form`] for the shapes), `out[i, j] = sum_p A(i, p) B(p, j)`
/// accumulated in f32. `a`, `b` and `out` are 2-D tensors, each f32, f16 or bf16 independently: 16-bit operands
/// are decoded exactly, so the result is the f32-accumulated product of their exact values, and a 16-bit `out` is
/// that f32 result rounded once, to nearest even. Past the storage-binding limit, [`Form::AB`] and [`Form::ABt`]
/// run in chunks of `out`'s rows, bit for bit the unchunked result; `b` past the limit, a row of `a` or `out`
/// past it, or [`Form::AtB`] with a tensor past it is [`Error::LimitExceeded`] (see the module documentation).
pub fn record_form(
    kernel: MatmulKernel,
    encoder: &mut wgpu::CommandEncoder,
    form: Form,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
) -> Result<()> {
    Recording::atomic(encoder, |rec| plan_form(kernel, rec, form, a, b, out))
}

/// The commands of [`record_form`], planned into `encoder`.
fn plan_form(
    kernel: MatmulKernel,
    encoder: &mut Recording,
    form: Form,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let op = form.name();
    let params = form_params(form, a, b)?;
    expect_shape_any(op, a.gpu(), b, b.shape())?;
    expect_shape_any(op, a.gpu(), out, &[params[0] as usize, params[1] as usize])?;
    check_distinct(op, &[out], &[a.buffer(), b.buffer()])?;
    record_gemm(
        encoder,
        Gemm {
            kernel,
            op,
            a,
            b,
            c: out,
            params,
            act: Activation::Identity,
            bias: None,
            z_out: None,
            fuse: None,
        },
    )
}

/// `form(a, b)` into a new f32 tensor with `kernel` (operands of any storage type); submits and waits.
pub fn form_with(kernel: MatmulKernel, form: Form, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let [m, n, ..] = form_params(form, a, b)?;
    let out = a.gpu().zeros(&[m as usize, n as usize], DType::F32)?;
    a.gpu().submit_and_wait(form.name(), |enc| {
        record_form(kernel, enc, form, a, b, &out)
    })?;
    Ok(out)
}

/// Records `y = x w`: `x [m, k]`, `w [k, n]`, `y [m, n]`, `y[i, j] = sum_p x[i, p] w[p, j]`; any storage types
/// (see [`record_form`]).
pub fn record_matmul(
    encoder: &mut wgpu::CommandEncoder,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
) -> Result<()> {
    Recording::atomic(encoder, |rec| plan_matmul(rec, x, w, y))
}

/// The commands of [`record_matmul`], planned into `encoder`.
fn plan_matmul(encoder: &mut Recording, x: &Tensor, w: &Tensor, y: &Tensor) -> Result<()> {
    plan_form(MatmulKernel::for_gpu(x.gpu()), encoder, Form::AB, x, w, y)
}

/// Records `dw = x^T dz`: `x [m, k]`, `dz [m, n]`, `dw [k, n]`, `dw[i, j] = sum_p x[p, i] dz[p, j]`; any storage
/// types (see [`record_form`]).
pub fn record_matmul_at_b(
    encoder: &mut wgpu::CommandEncoder,
    x: &Tensor,
    dz: &Tensor,
    dw: &Tensor,
) -> Result<()> {
    Recording::atomic(encoder, |rec| plan_matmul_at_b(rec, x, dz, dw))
}

/// The commands of [`record_matmul_at_b`], planned into `encoder`.
fn plan_matmul_at_b(encoder: &mut Recording, x: &Tensor, dz: &Tensor, dw: &Tensor) -> Result<()> {
    plan_form(
        MatmulKernel::for_gpu(x.gpu()),
        encoder,
        Form::AtB,
        x,
        dz,
        dw,
    )
}

/// Records `dx = dz w^T`: `dz [m, n]`, `w [k, n]`, `dx [m, k]`, `dx[i, j] = sum_p dz[i, p] w[j, p]`; any storage
/// types (see [`record_form`]).
pub fn record_matmul_a_bt(
    encoder: &mut wgpu::CommandEncoder,
    dz: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<()> {
    Recording::atomic(encoder, |rec| plan_matmul_a_bt(rec, dz, w, dx))
}

/// The commands of [`record_matmul_a_bt`], planned into `encoder`.
fn plan_matmul_a_bt(encoder: &mut Recording, dz: &Tensor, w: &Tensor, dx: &Tensor) -> Result<()> {
    plan_form(
        MatmulKernel::for_gpu(dz.gpu()),
        encoder,
        Form::ABt,
        dz,
        w,
        dx,
    )
}

/// `x w` into a new f32 tensor; submits and waits.
pub fn matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    form_with(MatmulKernel::for_gpu(x.gpu()), Form::AB, x, w)
}

/// `x^T dz` into a new f32 tensor; submits and waits.
pub fn matmul_at_b(x: &Tensor, dz: &Tensor) -> Result<Tensor> {
    form_with(MatmulKernel::for_gpu(x.gpu()), Form::AtB, x, dz)
}

/// `dz w^T` into a new f32 tensor; submits and waits.
pub fn matmul_a_bt(dz: &Tensor, w: &Tensor) -> Result<Tensor> {
    form_with(MatmulKernel::for_gpu(dz.gpu()), Form::ABt, dz, w)
}

#[cfg(test)]
mod split_tests {
    use super::*;

    /// Every split walks the same number of chunks but the last, which walks at least one: the shader's
    /// `split_len` (ceil(chunks / splits) chunks) covers K exactly with no empty split.
    #[test]
    fn splits_cover_k_with_none_empty() {
        for blocks in [1, 2, 3, 7, 32, 100, 255, 256, 1000] {
            for chunks in 0..300 {
                let splits = split_count(blocks, chunks);
                assert!(
                    (1..=MAX_SPLITS).contains(&splits),
                    "{blocks} {chunks}: {splits}"
                );
                if chunks == 0 {
                    continue;
                }
                let per = chunks.div_ceil(splits);
                assert!(
                    per * splits >= chunks && per * (splits - 1) < chunks,
                    "{blocks} {chunks}"
                );
                if blocks >= SPLIT_TARGET_WORKGROUPS || chunks < 2 * SPLIT_MIN_CHUNKS {
                    assert_eq!(splits, 1, "{blocks} {chunks}");
                }
            }
        }
        // The dense layer 256 x 784 x 512 on 64 x 64 blocks: 32 blocks want 8 splits of 49 chunks, 7 chunks a split.
        assert_eq!(split_count(32, 49), 7);
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    fn limits(binding: u64, align: u32) -> wgpu::Limits {
        wgpu::Limits {
            max_storage_buffer_binding_size: binding,
            min_storage_buffer_offset_alignment: align,
            ..wgpu::Limits::default()
        }
    }

    /// Every chunk starts each row-bound tensor at a multiple of the alignment (and of 16 bytes), and its rows,
    /// rounded up to 32 bytes as `row_view` binds them, fit a binding.
    #[test]
    fn chunks_start_aligned_and_fit_a_binding() {
        let widths: [&[u64]; 6] = [
            &[148, 116],
            &[74, 116],
            &[2, 4],
            &[1024, 4],
            &[0, 12],
            &[74, 58, 148],
        ];
        for align in [4, 32, 64, 256] {
            for binding in [64 * 1024, 1 << 20, (1 << 20) + 96] {
                let l = limits(binding, align);
                for row_bytes in widths {
                    for block in [1, 16, 32, 64] {
                        let rows =
                            u64::from(chunk_rows(&l, u32::MAX, row_bytes, 0, block).unwrap());
                        for &b in row_bytes.iter().filter(|&&b| b > 0) {
                            let what =
                                format!("{align} {binding} {row_bytes:?} {block}: {rows} rows");
                            assert_eq!(rows * b % lcm(u64::from(align), 16), 0, "{what}");
                            assert!((rows * b).next_multiple_of(32) <= binding, "{what}");
                        }
                    }
                }
            }
        }
        // A of 37 16-bit elements a row (74 bytes: 128-row steps), C of 29 f32 (116 bytes: 564 rows at most).
        assert_eq!(
            chunk_rows(&limits(64 * 1024, 256), 100_000, &[74, 116], 0, 1).unwrap(),
            512
        );
        // Fewer rows than a chunk holds: one chunk of all of them.
        assert_eq!(
            chunk_rows(&limits(64 * 1024, 256), 10, &[74, 116], 0, 64).unwrap(),
            10
        );
        // Split partial products of 4 x 116 bytes a row bound the chunk too.
        let rows = chunk_rows(&limits(64 * 1024, 256), 100_000, &[1024, 116], 464, 64).unwrap();
        assert!(u64::from(rows) * 464 <= 64 * 1024 && rows == 64, "{rows}");
    }

    /// A chunk's view of a row-bound tensor covers its rows and ends on a 32-byte boundary, or at the tensor's
    /// padded end: a 16-bit tensor's last packed word, or a `vec4` holding its last elements, lies inside the
    /// binding (a driver that bounds-checks whole vectors would otherwise drop or clamp them, which the software
    /// adapters, checking each component, do not show).
    #[test]
    fn a_row_view_ends_on_whole_vectors() {
        for (elems, dtype) in [
            (37, DType::F16),
            (29, DType::F32),
            (3, DType::BF16),
            (1, DType::F16),
        ] {
            let row_bytes = elems * dtype.size_bytes() as u64;
            for (first, rows) in [(0u32, 128u32), (128, 128), (256, 7), (0, 1), (384, 13)] {
                let m = u64::from(first + rows);
                let total = crate::tensor::padded_bytes((m * elems) as usize, dtype);
                let (offset, size) = row_range(total, row_bytes, first, rows);
                let what = format!(
                    "{elems} {dtype:?} rows {first}..+{rows}: {offset} + {size} of {total}"
                );
                assert_eq!(offset, u64::from(first) * row_bytes, "{what}");
                assert!(size >= u64::from(rows) * row_bytes, "{what}");
                assert!(size % 32 == 0 || offset + size == total, "{what}");
                assert!(offset + size <= total, "{what}");
            }
        }
        assert_eq!(row_range(100, 0, 5, 5), (0, 100));
    }

    #[test]
    fn a_row_group_past_a_binding_is_refused() {
        // 74-byte rows step by 128 under 256-byte alignment: 9,472 bytes, past a 8 KiB binding.
        let r = chunk_rows(&limits(8 * 1024, 256), 1_000, &[74], 0, 1);
        assert!(
            matches!(
                r,
                Err(Error::LimitExceeded {
                    requested: 9_472,
                    ..
                })
            ),
            "{r:?}"
        );
        let r = chunk_rows(&limits(64 * 1024, 32), 2, &[80_000, 4], 0, 1);
        assert!(matches!(r, Err(Error::LimitExceeded { .. })), "{r:?}");
    }
}
