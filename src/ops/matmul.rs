//! Matrix products of the dense layer (`shaders/matmul.wgsl`): `Y = X W`, `dW = X^T dZ`, `dX = dZ W^T`, f32
//! accumulation, any shape (sizes of 0 dispatch nothing; an inner size of 0 gives zeros) whose operands fit a
//! storage binding, with two limits: C's column blocks take one grid dimension, so C has at most 65,535 of them
//! (about 2.1 million columns on the direct and 32-wide tiled kernels, 4.2 million on the tiled ones, 1 million
//! on the generated kernels of a subgroup of 4 lanes), past which the product is [`Error::LimitExceeded`]; and
//! a 16-bit C (or Z) is written through an f32 copy, which must fit a binding too (a 16-bit C of more than half
//! the binding limit in bytes is `LimitExceeded`). Its rows continue along the grid's z past 65,535
//! row blocks.
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
//! - [`MatmulKernel::Subgroup`] and [`MatmulKernel::Vec4`] load `vec4<f32>`s, so a 16-bit operand is widened to
//!   an f32 scratch by one conversion pass first (exact; `O(rows cols)` work against the product's `O(m n k)`).
//!   Measured against running the direct kernel, which decodes in its loads, on a loaded 2-core machine (Mesa
//!   22.3.6, `A` and `B` both f16, median of 4): lavapipe 256x784x512 7.8 vs 32.7 ms, 1024^3 75 vs 367 ms (f32
//!   operands: 10.3 and 67 ms); llvmpipe GL 16.6 vs 30.1 ms, 172 vs 356 ms (f32: 14.2 and 161 ms). Widening
//!   costs about what the noise does; falling back would cost 2x to 5x.
//! - A 16-bit C (or pre-activation Z of the dense forward) goes through an f32 scratch and one conversion pass:
//!   a kernel storing 16-bit values would race, the two halves of a packed word belonging to different threads.

use super::elementwise::{check_whole_binding, dispatch, whole, Slot};
use super::matmul_subgroup;
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
    /// Runs where the device has `SUBGROUP` with one fixed subgroup size, the operands' rows hold whole `vec4`s
    /// (see `src/ops/matmul_subgroup.rs`) and no derivative is fused into the loads; anything else runs
    /// [`MatmulKernel::Direct`]. 16-bit operands are widened to f32 first (see the module documentation). The choice on CPU adapters with subgroups (lavapipe): about 4.5x the direct kernel at
    /// 256x784x512.
    Subgroup,
    /// The generated code of [`MatmulKernel::Subgroup`] without subgroups: 8 invocations per workgroup, each
    /// owning 16 rows by 4 or 8 columns (8 for products at least 64 wide) and loading its own A, `vec4` loads of
    /// both operands. Runs where the operands' rows hold whole `vec4`s, else [`MatmulKernel::Direct`]; 16-bit
    /// operands are widened to f32 first. The choice on CPU adapters without subgroups (llvmpipe GL): 1024^3 in
    /// 105 ms on a quiet 2-core machine, against 139-150 ms with 32 rows by 4 columns per invocation (see
    /// `vec4_blocks` in the source and BENCHMARKS.md).
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

/// One product for the kernel: sizes `C [m, n]`, inner size `k`, operand strides, and what the epilogue and the
/// operand loads do. Operands, bias and Z may each be f32, f16 or bf16; so may C and `z_out` (written through an
/// f32 scratch and one rounding pass, see [`record_gemm`]).
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
    /// `(1 = A | 2 = B, Z)`: that operand is read as `act_backward(Z, operand)`.
    pub fuse: Option<(u32, &'a Tensor)>,
}

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

/// The generated kernel `g` runs, if any: `(rows, lanes, subgroup, form, column blocks)` for
/// [`MatmulKernel::Subgroup`] (where the device has subgroups) or [`MatmulKernel::Vec4`], with no derivative fused
/// into the loads and operands laid out as the generated kernels' `vec4` loads need
/// ([`matmul_subgroup::form_of`]).
fn generated(g: &Gemm) -> Option<(u32, u32, bool, Form, u32)> {
    let (rows, lanes, subgroup, vecs) = match (g.kernel, g.fuse) {
        (MatmulKernel::Subgroup, None) => {
            (matmul_subgroup::ROWS, subgroup_lanes(g.c.gpu())?, true, 1)
        }
        (MatmulKernel::Vec4, None) => (VEC4_ROWS, VEC4_LANES, false, vec4_blocks(g.params[1])),
        _ => return None,
    };
    let form = matmul_subgroup::form_of(g.params)?;
    Some((rows, lanes, subgroup, form, vecs))
}

/// The pipeline's module, entry point, workgroup size, `TX` and grid for `g`: the generated kernel where `g` is
/// eligible ([`generated`]) and both operands are f32, else the kernel of `shaders/matmul.wgsl`.
fn plan(g: &Gemm) -> (ShaderId, &'static str, u32, u32, (u32, u32)) {
    let [m, n, ..] = g.params;
    let f32_operands = g.a.dtype() == DType::F32 && g.b.dtype() == DType::F32;
    if let (true, Some((rows, lanes, subgroup, form, vecs))) = (f32_operands, generated(g)) {
        let shader = ShaderId::MatmulGenerated {
            form,
            rows,
            lanes,
            subgroup,
            vecs,
        };
        let groups = matmul_subgroup::groups(m, n, rows, 4 * vecs * lanes);
        let entry = if subgroup {
            "matmul_subgroup"
        } else {
            "matmul_vec4"
        };
        return (shader, entry, lanes, lanes, groups);
    }
    let (wg, tx) = g.kernel.shape();
    let groups = (
        n.div_ceil(4 * tx),
        m.div_ceil(g.kernel.rows_per_thread() * (wg / tx)),
    );
    let shader = if g.kernel == MatmulKernel::TiledWide {
        ShaderId::MatmulWide
    } else {
        ShaderId::Matmul
    };
    (shader, g.kernel.entry(), wg, tx, groups)
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
/// generated kernels ([`MatmulKernel::Subgroup`], [`MatmulKernel::Vec4`]) bind their operands as `vec4<f32>`, so a
/// 16-bit operand is first widened into an f32 scratch by one conversion pass (exact, `O(rows x cols)` against the
/// product's `O(m n k)`), which keeps the fast kernel; where the f32 copy would pass the storage-binding limit,
/// the direct kernel runs instead. A 16-bit C or `z_out` is written to an f32 scratch and
/// rounded once, to nearest even, by one conversion pass (a 16-bit store from the kernel would race: the two
/// halves of a packed word belong to different threads).
pub(crate) fn record_gemm(encoder: &mut wgpu::CommandEncoder, g: Gemm) -> Result<()> {
    let gpu = g.c.gpu();
    gpu.check_lost()?;
    g.act.validate()?;
    let [m, n, ..] = g.params;
    if m == 0 || n == 0 {
        return Ok(());
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
    let wide = |t: &Tensor| -> Result<Option<Tensor>> {
        match t.dtype() {
            DType::F32 => Ok(None),
            _ => gpu.zeros(t.shape(), DType::F32).map(Some),
        }
    };
    // Widened operands past the binding limit leave the product to the direct kernel, which decodes in place.
    let max = gpu.limits().max_storage_buffer_binding_size;
    let fits = |t: &Tensor| padded_bytes(t.len(), DType::F32) <= max;
    let (mut a32, mut b32) = (None, None);
    if generated(&g).is_some() && fits(g.a) && fits(g.b) {
        a32 = wide(g.a)?;
        b32 = wide(g.b)?;
        for (src, dst) in [(g.a, &a32), (g.b, &b32)] {
            if let Some(dst) = dst {
                src.record_cast(encoder, dst)?;
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
        t.record_cast(encoder, c)?;
    }
    if let (Some(t), Some(z)) = (&z32, z_out) {
        t.record_cast(encoder, z)?;
    }
    Ok(())
}

/// [`record_gemm`] once C and `z_out` are f32 and a generated kernel's operands are f32.
fn record_f32_out(encoder: &mut wgpu::CommandEncoder, g: Gemm) -> Result<()> {
    let gpu = g.c.gpu();
    let (shader, entry, wg, tx, groups) = plan(&g);
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    if groups.0 > max {
        return Err(Error::LimitExceeded {
            limit: "max_compute_workgroups_per_dimension",
            max: u64::from(max),
            requested: u64::from(groups.0),
        });
    }
    // Row blocks past the limit (a batch of millions of rows) continue along z: the shaders' `row_block`.
    let (row_blocks, row_layers) = grid(u64::from(groups.1), max)?;
    let (read_spare, write_spare) = gpu.unused_bindings();
    let bias = g.bias.map_or(read_spare, Tensor::buffer);
    let z_out = g.z_out.map_or(write_spare, Tensor::buffer);
    let z_in = g.fuse.map_or(read_spare, |(_, z)| z.buffer());
    for b in [g.a.buffer(), g.b.buffer(), g.c.buffer(), bias, z_out, z_in] {
        check_whole_binding(gpu, b)?;
    }
    let [p0, p1] = g.act.params();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let generated = !matches!(shader, ShaderId::Matmul | ShaderId::MatmulWide);
    let mut constants = vec![
        ("ACT", f64::from(g.act.id())),
        ("P0", f64::from(p0)),
        ("P1", f64::from(p1)),
        ("HAS_BIAS", flag(g.bias.is_some())),
        ("STORE_Z", flag(g.z_out.is_some())),
        ("FUSE", f64::from(g.fuse.map_or(0, |(which, _)| which))),
        ("BIAS_T", g.bias.map_or(0.0, code)),
    ];
    if !generated {
        constants.extend([
            ("TX", f64::from(tx)),
            ("A_T", code(g.a)),
            ("B_T", code(g.b)),
            ("Z_T", g.fuse.map_or(0.0, |(_, z)| code(z))),
        ]);
    }
    if shader == ShaderId::MatmulWide {
        let [m, n, k, sa_i, sa_p, sb_p, sb_j] = g.params;
        constants.extend([
            ("VEC_A", flag(wide_runs(m, k, (sa_i, sa_p)))),
            ("VEC_B", flag(wide_runs(n, k, (sb_j, sb_p)))),
        ]);
    }
    let key = PipelineKey::new(shader, entry, wg, &constants).with_custom(g.act.custom_id());
    let tiled = !generated
        && matches!(
            g.kernel,
            MatmulKernel::Tiled | MatmulKernel::Tiled32 | MatmulKernel::TiledWide
        );
    let splits = if tiled {
        tiled_splits(gpu, g.kernel, g.params)?
    } else {
        1
    };
    if splits > 1 {
        return record_split(encoder, &g, key, splits, groups, [bias, z_out, z_in]);
    }
    let pipeline = gpu.pipelines().get_or_create(gpu.device(), &key)?;
    let mut entries = vec![
        whole(Slot::X, g.a.buffer()),
        whole(Slot::Out, g.c.buffer()),
        whole(Slot::Dy, g.b.buffer()),
        whole(Slot::Bias, bias),
        wgpu::BindGroupEntry {
            binding: 5,
            resource: z_out.as_entire_binding(),
        },
    ];
    // The generated kernel never fuses a derivative into its loads, so it has no Z operand.
    if !generated {
        entries.push(wgpu::BindGroupEntry {
            binding: 7,
            resource: z_in.as_entire_binding(),
        });
    }
    let grid3 = (groups.0, row_blocks, row_layers);
    dispatch(gpu, encoder, &pipeline, g.op, entries, &g.params, grid3)?;
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
    let [m, n, k, ..] = params;
    let (_, tx) = kernel.shape();
    let tile = 4 * tx;
    let chunks = k.div_ceil(TILED_CHUNK);
    let splits = split_count(m.div_ceil(tile) * n.div_ceil(tile), chunks);
    let needed = if gpu.loop_limited() && chunks > LOOP_LIMITED_SPLIT_CHUNKS {
        let s = splits.max(chunks.div_ceil(LOOP_LIMITED_SPLIT_CHUNKS));
        // As split_count does: ceil(chunks / s) a split, none empty.
        Some(chunks.div_ceil(chunks.div_ceil(s)))
    } else {
        None
    };
    let splits = needed.unwrap_or(splits);
    let limits = gpu.limits();
    let bytes = u64::from(splits) * u64::from(m) * u64::from(n) * 4;
    let rows = u64::from(splits) * u64::from(m.div_ceil(tile));
    let max_rows = u64::from(limits.max_compute_workgroups_per_dimension);
    let max_bytes = limits.max_storage_buffer_binding_size;
    // The pass that adds the splits runs a thread per element of C over a two-dimensional grid.
    let sum_groups = (u64::from(m) * u64::from(n)).div_ceil(u64::from(kernel.shape().0));
    let sum_fits = sum_groups <= max_rows * max_rows;
    if bytes > max_bytes || rows > max_rows || !sum_fits {
        if needed.is_none() {
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
/// applies the epilogue. `groups` is the unsplit grid; `[bias, z_out, z_in]` are the bound (or placeholder)
/// buffers.
fn record_split(
    encoder: &mut wgpu::CommandEncoder,
    g: &Gemm,
    key: PipelineKey,
    splits: u32,
    groups: (u32, u32),
    [bias, z_out, z_in]: [&wgpu::Buffer; 3],
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
        whole(Slot::X, g.a.buffer()),
        whole(Slot::Dy, g.b.buffer()),
        part.clone(),
        wgpu::BindGroupEntry {
            binding: 7,
            resource: z_in.as_entire_binding(),
        },
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
        whole(Slot::Out, g.c.buffer()),
        whole(Slot::Bias, bias),
        wgpu::BindGroupEntry {
            binding: 5,
            resource: z_out.as_entire_binding(),
        },
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
/// that f32 result rounded once, to nearest even.
pub fn record_form(
    kernel: MatmulKernel,
    encoder: &mut wgpu::CommandEncoder,
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
    record_form(MatmulKernel::for_gpu(x.gpu()), encoder, Form::AB, x, w, y)
}

/// Records `dw = x^T dz`: `x [m, k]`, `dz [m, n]`, `dw [k, n]`, `dw[i, j] = sum_p x[p, i] dz[p, j]`; any storage
/// types (see [`record_form`]).
pub fn record_matmul_at_b(
    encoder: &mut wgpu::CommandEncoder,
    x: &Tensor,
    dz: &Tensor,
    dw: &Tensor,
) -> Result<()> {
    record_form(
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
    record_form(
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
