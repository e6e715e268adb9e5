//! Dispatch for any length: 0, 1, lengths that are not multiples of the vector width or the workgroup, more than
//! 65,535 workgroups (a 2D grid), and inputs past the storage-binding limit (chunked). Outputs are poisoned first.

mod common;

use actgpu::verify::{
    compare, compare_storage, round_to, run_activation, Dtypes, Pass, Rng, F32_ELEMENTWISE, POISON,
};
use actgpu::{cpu, Activation, DType, Gpu, GpuOptions, LaunchConfig, Learnable};
use common::gpu;

const LENGTHS: [usize; 7] = [0, 1, 3, 255, 257, 1_000_003, 65_535 * 256 + 1];

fn inputs(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let x = (0..n).map(|_| rng.uniform(-8.0, 8.0)).collect();
    let dy = (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect();
    (x, dy)
}

/// Runs forward and backward of `act` on `n` elements and checks every element.
fn check_length(gpu: &Gpu, act: Activation, n: usize) {
    let (xs, dys) = inputs(n, n as u64);
    let x = gpu.upload(&xs).unwrap();
    let y = gpu.upload(&vec![POISON; n]).unwrap();
    act.forward_into(&x, &y).unwrap();
    let got = y.read::<f32>().unwrap();
    assert_eq!(got.len(), n);
    let reference: Vec<f64> = xs
        .iter()
        .map(|&v| cpu::activation::forward(act, v.into()))
        .collect();
    let c = compare(&xs, &got, &reference, F32_ELEMENTWISE, false);
    assert!(c.ok(), "{act} forward, n = {n}: {c:#?}");

    let dy = gpu.upload(&dys).unwrap();
    let dx = gpu.upload(&vec![POISON; n]).unwrap();
    act.backward_into(&x, &dy, &dx).unwrap();
    let reference: Vec<f64> = xs
        .iter()
        .zip(&dys)
        .map(|(&v, &d)| cpu::activation::backward(act, v.into(), d.into()))
        .collect();
    let c = compare(
        &xs,
        &dx.read::<f32>().unwrap(),
        &reference,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "{act} backward, n = {n}: {c:#?}");
}

#[test]
fn every_length_is_computed_in_full() {
    for n in LENGTHS {
        check_length(gpu(), Activation::Gelu, n);
        check_length(gpu(), Activation::Relu, n);
    }
}

#[test]
fn more_than_65535_workgroups_use_a_2d_grid() {
    // One 8-element unit per thread in workgroups of 16: 65,535 * 256 + 1 elements need 131,071 workgroups.
    let launch = LaunchConfig {
        workgroup_size: 16,
        units_per_thread: 1,
    };
    let gpu = Gpu::with_options(GpuOptions {
        launch: Some(launch),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let n = 65_535 * 256 + 1;
    let groups = (n as u64)
        .div_ceil(actgpu::dispatch::UNIT_ELEMENTS as u64)
        .div_ceil(launch.units_per_workgroup());
    assert!(groups > 65_535, "the test must exceed one grid dimension");
    check_length(&gpu, Activation::Silu, n);
    check_length(&gpu, Activation::Silu, 255);
}

#[test]
fn several_units_per_thread_cover_every_element() {
    // An odd number of units per thread and a small workgroup, so that the last workgroup is partly filled in
    // both layouts (units of 8 elements, and the f32 word layout of 4).
    let gpu = Gpu::with_options(GpuOptions {
        launch: Some(LaunchConfig {
            workgroup_size: 16,
            units_per_thread: 3,
        }),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    for n in [1, 3, 255, 257, 385, 1_000_003] {
        check_length(&gpu, Activation::Relu, n);
        check_length(&gpu, Activation::Silu, n);
    }
}

/// Fails with `what` and the failed checks unless every check passed.
fn assert_checks_ok(what: &str, checks: Vec<actgpu::verify::fused::FusedCheck>) {
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok()).collect();
    assert!(failed.is_empty(), "{what}: {failed:#?}");
}

/// Bias + GELU (f32 bias) forward and backward on each `[rows, cols]` shape in its dtype, against the reference.
fn assert_bias_ok(gpu: &Gpu, what: &str, shapes: &[(usize, usize, DType)]) {
    for &(rows, cols, dtype) in shapes {
        let inputs = actgpu::verify::fused::FusedInputs::Random(cols as u64);
        let checks = actgpu::verify::fused::check_bias(
            gpu,
            Activation::Gelu,
            rows,
            cols,
            dtype,
            DType::F32,
            inputs,
        )
        .unwrap_or_else(|e| panic!("{what} {rows}x{cols} {dtype:?}: {e}"));
        assert_checks_ok(&format!("{what} {rows}x{cols} {dtype:?}"), checks);
    }
}

/// PReLU with a slope per column (f32), forward and backward, on each `[rows, cols]` shape, against the
/// reference.
fn assert_prelu_per_column_ok(gpu: &Gpu, what: &str, shapes: &[(usize, usize, DType)]) {
    for &(rows, cols, dtype) in shapes {
        let inputs = actgpu::verify::fused::FusedInputs::Random(cols as u64);
        let checks = actgpu::verify::fused::check_learnable(
            gpu,
            actgpu::Learnable::Prelu,
            rows,
            cols,
            false,
            dtype,
            DType::F32,
            inputs,
        )
        .unwrap_or_else(|e| panic!("{what} {rows}x{cols} {dtype:?}: {e}"));
        assert_checks_ok(&format!("{what} {rows}x{cols} {dtype:?}"), checks);
    }
}

/// A context whose storage bindings hold at most 64 KiB, so that modest lengths need several dispatches.
fn small_binding_gpu() -> Gpu {
    let gpu = Gpu::with_options(GpuOptions {
        max_storage_binding_bytes: Some(64 * 1024),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gpu.limits().max_storage_buffer_binding_size, 64 * 1024);
    gpu
}

#[test]
fn inputs_past_the_storage_binding_limit_run_in_chunks() {
    // A 64 KiB binding limit splits 100,003 elements (400 KB) into seven dispatches.
    let gpu = small_binding_gpu();
    for act in [Activation::Tanh, Activation::Relu] {
        check_length(&gpu, act, 100_003);
        check_length(&gpu, act, 16_384);
    }
}

/// 16-bit storage past the binding limit: each chunk binds its part of the packed words at an offset, and the
/// chunks' boundaries fall inside the decoded, the bit-level and the mixed-type kernels alike (f16 x, f32 dy).
#[test]
fn sixteen_bit_inputs_past_the_storage_binding_limit_run_in_chunks() {
    // A 64 KiB binding limit splits 100,003 16-bit elements (200 KB) into four dispatches.
    let gpu = small_binding_gpu();
    let n = 100_003;
    for dtype in [DType::F16, DType::BF16] {
        let mut rng = Rng::new(n as u64);
        let xs: Vec<f32> = (0..n)
            .map(|_| round_to(dtype, rng.uniform(-6.0, 6.0)))
            .collect();
        let mixed = Dtypes {
            dy: DType::F32,
            ..Dtypes::all(dtype)
        };
        for (act, pass, dtypes) in [
            (Activation::Gelu, Pass::Forward, Dtypes::all(dtype)),
            (Activation::Gelu, Pass::Backward, mixed),
            (Activation::Relu, Pass::Forward, Dtypes::all(dtype)),
            (Activation::Relu, Pass::Backward, Dtypes::all(dtype)),
        ] {
            let r = run_activation(&gpu, act, pass, &xs, 5, dtypes).unwrap();
            assert_eq!(r.unwritten, 0, "{act} {pass:?} {dtypes:?}");
            let c = compare_storage(dtypes.out, &r.x, &r.got, &r.reference, 1);
            assert!(c.ok(), "{act} {pass:?} {dtypes:?}: {c:#?}");
        }
    }
}

/// Bias + activation, its fused and separate column sums, and the learnable activations on rows wider than 32
/// workgroups of column threads: the grid's x stops at the limit and z carries on (and the gated split layout's
/// grid of rows, whose rows continue along z). Every shape is chosen from the
/// workgroup size so that each row kernel needs z > 1 (words of 4 f32, units of 8 16-bit values, single
/// columns, the one-pass sums of few rows).
#[test]
fn wide_rows_continue_the_column_grid_along_z() {
    use actgpu::verify::fused::{check_bias, check_learnable, FusedInputs};
    use actgpu::Learnable;
    let gpu = common::small_grid_gpu();
    let lanes = 32 * gpu.launch_config().workgroup_size as usize;
    let mut checks = Vec::new();
    let bias_cases = [
        // f32 words: bias_forward_rows_words, bias_backward_fused_words.
        (13, 4 * lanes + 8, DType::F32, DType::F32),
        // 16-bit units: bias_forward_rows, bias_backward_fused.
        (5, 8 * lanes + 8, DType::BF16, DType::F32),
        // cols % 8 != 0: dx, then column_sums (more than 128 rows) over single columns.
        (131, lanes + 5, DType::F32, DType::F32),
        // ... and column_sums_words (cols % 4 == 0).
        (131, 4 * lanes + 4, DType::F32, DType::F32),
        // ... and column_sums_direct (at most 128 rows).
        (3, 8 * lanes + 1, DType::F32, DType::F16),
    ];
    for (rows, cols, x_t, b_t) in bias_cases {
        checks.extend(
            check_bias(
                &gpu,
                Activation::Gelu,
                rows,
                cols,
                x_t,
                b_t,
                FusedInputs::Random(cols as u64),
            )
            .unwrap(),
        );
    }
    // learn_backward_fused (cols % 8 == 0), and learn_backward + column_sums (odd cols).
    for (rows, cols) in [(3, 8 * lanes + 8), (7, lanes + 3)] {
        checks.extend(
            check_learnable(
                &gpu,
                Learnable::Prelu,
                rows,
                cols,
                false,
                DType::F32,
                DType::F32,
                FusedInputs::Random(cols as u64),
            )
            .unwrap(),
        );
    }
    // The split gated layout on a grid of rows (half width of at least a workgroup's units): 40 rows need z. A
    // row of 33 workgroups' units, past the grid's 32 along x, takes the flat grid instead.
    let units = gpu.launch_config().units_per_workgroup() as usize;
    for (rows, half, dtype) in [
        (40, 8 * units + 8, DType::F32),
        (33, 8 * units, DType::BF16),
        (3, 8 * units * 33, DType::F32),
    ] {
        checks.extend(
            actgpu::verify::fused::check_gated(
                &gpu,
                actgpu::Gated::SWIGLU,
                rows,
                half,
                dtype,
                FusedInputs::Random(half as u64),
            )
            .unwrap(),
        );
    }
    let failed: Vec<_> = checks.into_iter().filter(|c| !c.ok()).collect();
    assert!(failed.is_empty(), "{}", common::describe(&failed));
}

/// Past the storage-binding limit the fused ops either run in chunks (bias forward, learnable forward, the gated
/// pair layout: element- or unit-indexed passes; the bias and learnable backward, the column sums and the split
/// gated layout: row chunks) or refuse with a typed limit error (a row, or an aligned group of rows, that cannot
/// fit; partial sums past the limit), never a wgpu validation error.
#[test]
fn fused_ops_past_the_binding_limit_chunk_or_refuse_typed() {
    use actgpu::{Error, Gated, Learnable};
    let gpu = small_binding_gpu();
    fn limit<T>(r: actgpu::Result<T>) {
        match r {
            Err(Error::LimitExceeded { .. }) => {}
            Err(e) => panic!("expected LimitExceeded, got {e}"),
            Ok(_) => panic!("expected LimitExceeded, got a result"),
        }
    }
    let (rows, cols) = (100, 203);
    let (xs, _) = inputs(rows * cols, 17);
    let x = gpu.upload_shaped(&xs, &[rows, cols]).unwrap();
    let bs: Vec<f32> = (0..cols).map(|c| c as f32 * 0.01 - 1.0).collect();
    let bias = gpu.upload(&bs).unwrap();
    // Chunked: bias forward (81 KB against 64 KiB).
    let y = Activation::Gelu.bias_forward(&x, &bias).unwrap();
    let reference = cpu::fused::bias_forward(
        Activation::Gelu,
        &xs.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        &bs.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
    );
    let c = compare(
        &xs,
        &y.read::<f32>().unwrap(),
        &reference,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "bias forward in chunks: {c:#?}");
    let widen = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
    // Chunked: PReLU with a slope per column (distinct, so that a chunk reading the wrong columns' slopes
    // fails), and the gated pair, each into a poisoned output.
    let ps: Vec<f32> = (0..cols).map(|c| 0.1 + 0.001 * c as f32).collect();
    let p = gpu.upload(&ps).unwrap();
    let prelu = gpu
        .upload_shaped(&vec![POISON; rows * cols], &[rows, cols])
        .unwrap();
    let pair = gpu
        .upload_shaped(&vec![POISON; rows * cols], &[rows, cols])
        .unwrap();
    gpu.submit_and_wait("chunked", |enc| {
        Learnable::Prelu.record_forward(enc, &x, &p, &prelu)?;
        Gated::SWIGLU.record_forward_pair(enc, &x, &y, &pair)
    })
    .unwrap();
    let want = cpu::fused::learnable_forward(Learnable::Prelu, &widen(&xs), &widen(&ps));
    let c = compare(
        &xs,
        &prelu.read::<f32>().unwrap(),
        &want,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "PReLU forward in chunks: {c:#?}");
    let ys = y.read::<f32>().unwrap();
    let want = cpu::fused::gated_forward(Gated::SWIGLU.gate, &widen(&xs), &widen(&ys));
    let c = compare(
        &ys,
        &pair.read::<f32>().unwrap(),
        &want,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "SwiGLU pair forward in chunks: {c:#?}");
    // The fused bias backward runs in row chunks (rows of whole 8-element units, f32 words or 16-bit pairs);
    // another width computes dx in chunks and then the column sums in row chunks (203 f32, 201 bf16).
    assert_bias_ok(
        &gpu,
        "bias backward in row chunks",
        &[
            (300, 204, DType::F32),
            (300, 208, DType::BF16),
            (301, 202, DType::F16),
            (700, 96, DType::F32),
            (300, 203, DType::F32),
            (400, 201, DType::BF16),
            (100, 203, DType::F32),
        ],
    );
    // At most 128 rows too (100 x 203: the one-pass sums would bind dx whole, so the two passes run in chunks);
    // a single row past the limit cannot be chunked: refused, typed.
    let (ws, _) = inputs(2 * 20_000, 29);
    let wide = gpu.upload_shaped(&ws, &[2, 20_000]).unwrap();
    let wide_bias = gpu.upload(&vec![0.5f32; 20_000]).unwrap();
    let wide_dy = wide.zeros_like().unwrap();
    limit(Activation::Gelu.bias_backward(&wide, &wide_bias, &wide_dy));
    // The split gated layout runs in chunks of whole rows: element kernels (half 100; 51 in f16, whose odd half
    // width shares a word between da and dg), the flat unit grid (96) and the grid of rows (1024 bf16).
    for (rows, half, dtype) in [
        (100, 100, DType::F32),
        (200, 96, DType::F32),
        (60, 1024, DType::BF16),
        (400, 51, DType::F16),
    ] {
        let checks = actgpu::verify::fused::check_gated(
            &gpu,
            Gated::GEGLU,
            rows,
            half,
            dtype,
            actgpu::verify::fused::FusedInputs::Random(half as u64),
        )
        .unwrap();
        assert_checks_ok(
            &format!("GeGLU split layout in row chunks {rows}x{half}"),
            checks,
        );
    }
    // The learnable backward with a parameter per column runs in row chunks too: the fused kernel (208
    // columns), and dx with its per-element contributions, then their column sums (203 f32; 13 f16, whose
    // 2000 rows fit as f16, 52 KB, and not as the f32 contributions, 104 KB).
    assert_prelu_per_column_ok(
        &gpu,
        "PReLU backward in row chunks",
        &[
            (300, 208, DType::F32),
            (300, 203, DType::F32),
            (2000, 13, DType::F16),
        ],
    );
    // A shared parameter walks the tensor as rows of 8,192 elements (32 KB of f32), whose block-aligned groups
    // of rows do not fit 64 KiB: refused, typed. Under a 1 MiB limit they do: 3.3 MB of x in chunks of 24 rows.
    let p1 = gpu.upload(&[0.25f32]).unwrap();
    limit(Learnable::Prelu.backward(&x, &p1, &y));
    let mib = Gpu::with_options(GpuOptions {
        max_storage_binding_bytes: Some(1 << 20),
        ..GpuOptions::default()
    })
    .unwrap();
    let checks = actgpu::verify::fused::check_learnable(
        &mib,
        Learnable::Swish,
        800,
        1025,
        true,
        DType::F32,
        DType::F32,
        actgpu::verify::fused::FusedInputs::Random(5),
    )
    .unwrap();
    assert_checks_ok("shared Swish backward in row chunks", checks);
    // Per-block partial sums that would not fit a binding (the shared scratch buffer is bound whole) take
    // taller blocks: 32,000 rows of one f16 column (64 KB) in blocks of 8 rows would hold 4,000 x 8 f32 partial
    // sums (128 KB), and 4,000 x 40 f32 (640 KB, in row chunks) 500 x 40 (80 KB). Both were LimitExceeded.
    assert_bias_ok(
        &gpu,
        "bias backward, partial sums past a binding",
        &[(32_000, 1, DType::F16), (4_000, 40, DType::F32)],
    );
    assert_prelu_per_column_ok(
        &gpu,
        "PReLU backward, partial sums past a binding",
        &[(4_000, 40, DType::F32)],
    );
    // Blocks no taller than the rows one binding holds: rows of 3,000 f32 (12 KB), five to a 64 KiB binding,
    // in blocks of the context's reduction rows (8 on CPU adapters, 32 on GPUs) were one block past a binding
    // and refused. Up to 25 rows the partial sums (five blocks' worth fit a binding) allow blocks of five rows;
    // past that they need taller blocks than a binding holds, refused typed. The chunks start at multiples of
    // the offset alignment: 12 KB rows start at 32-byte multiples, but on a device aligning to 64 or more a
    // block of five rows may not fit its aligned step (the block height does not yet shrink for it), so there
    // a refusal is allowed, typed.
    let wide = [
        (8, 3_000, DType::F32),
        (20, 3_000, DType::F32),
        (25, 3_000, DType::F32),
    ];
    let aligned_32 = gpu.limits().min_storage_buffer_offset_alignment <= 32;
    if aligned_32 {
        assert_bias_ok(&gpu, "bias backward, blocks cut to a binding", &wide);
        assert_prelu_per_column_ok(&gpu, "PReLU backward, blocks cut to a binding", &wide);
    }
    for (rows, cols, _) in wide {
        let (xs, _) = inputs(rows * cols, 23);
        let x = gpu.upload_shaped(&xs, &[rows, cols]).unwrap();
        let sums = match x.column_sums() {
            Err(e) if !aligned_32 => {
                limit::<()>(Err(e));
                continue;
            }
            sums => sums.unwrap().read::<f32>().unwrap(),
        };
        for (c, &got) in sums.iter().enumerate() {
            let want: f64 = (0..rows).map(|r| f64::from(xs[r * cols + c])).sum();
            let close = (f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs());
            assert!(
                close,
                "column_sums {rows}x{cols} column {c}: {got} against {want}"
            );
        }
    }
    let tall = gpu
        .upload_shaped(&vec![1.0f32; 33 * 3_000], &[33, 3_000])
        .unwrap();
    limit(tall.column_sums());
    for (rows, cols, _) in wide {
        let (xs, _) = inputs(rows * cols, 23);
        let x = gpu.upload_shaped(&xs, &[rows, cols]).unwrap();
        let sums = x.column_sums().unwrap().read::<f32>().unwrap();
        for (c, &got) in sums.iter().enumerate() {
            let want: f64 = (0..rows).map(|r| f64::from(xs[r * cols + c])).sum();
            assert!(
                (f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "column_sums {rows}x{cols} col {c}: {got} against {want}"
            );
        }
    }
    // Blocks taller than a loop-limited adapter's threads can walk are refused, never summed short. Under a
    // 128 KiB binding one column's partial sums (8 f32, 32 bytes a block) allow 4,096 blocks, so 246 million rows
    // of f16 (a 492 MB buffer, never written: the refusal comes first) would take 60,059 rows a block, each
    // block's 120 KB of rows still fitting a binding.
    let tiny = Gpu::with_options(GpuOptions {
        max_storage_binding_bytes: Some(128 * 1024),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    if tiny.loop_limited() {
        let x = tiny.zeros(&[246_000_000, 1], DType::F16).unwrap();
        let sums = x.column_sums();
        assert!(
            matches!(
                &sums,
                Err(actgpu::Error::LimitExceeded { limit, .. }) if limit.contains("loop-limited")
            ),
            "246 million rows in 4,096 blocks on a loop-limited adapter: {sums:?}"
        );
    }
}

/// Row blocks whose height is not a power of two (a `reduction_rows` of 3 or 7; rows over the grid's limit give
/// any height) still start every chunk's operands and blocks of partial sums at aligned offsets: the step was the
/// largest alignment rounded up to whole blocks, which missed it (f16 [6000, 6] at height 3 bound the second
/// chunk at a byte offset 12 past a multiple of 32, and wgpu refused it).
#[test]
fn row_chunks_align_for_any_block_height() {
    for height in [3, 7] {
        let gpu = Gpu::with_options(GpuOptions {
            max_storage_binding_bytes: Some(64 * 1024),
            reduction_rows: Some(height),
            ..GpuOptions::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        // Shapes whose operands pass 64 KiB and whose partial sums (rows / height x cols rounded to 8, f32)
        // stay within it, as the shared scratch buffer must: the fused kernel on 16-bit pairs and f32 words, and
        // the column sums after dx (13 columns).
        let what = format!("bias, row blocks of {height}");
        assert_bias_ok(
            &gpu,
            &what,
            &[
                (6000, 6, DType::F16),
                (2000, 22, DType::F16),
                (1200, 24, DType::F32),
                (3000, 12, DType::BF16),
                (1500, 13, DType::F32),
            ],
        );
        let what = format!("PReLU, row blocks of {height}");
        assert_prelu_per_column_ok(
            &gpu,
            &what,
            &[(2000, 13, DType::F16), (1500, 13, DType::F32)],
        );
    }
}

/// A host's buffer larger than a binding, holding a tensor that fits one: the chunked ops bind the tensor's
/// padded bytes, not the whole buffer (which wgpu refused past the limit).
#[test]
fn a_large_host_buffer_with_a_small_tensor_binds_only_the_tensor() {
    let gpu = small_binding_gpu();
    let big = |data: &[f32]| {
        let buffer = gpu.device().create_buffer(&actgpu::wgpu::BufferDescriptor {
            label: Some("host"),
            size: 128 * 1024,
            usage: actgpu::TENSOR_USAGE,
            mapped_at_creation: false,
        });
        let t = actgpu::Tensor::from_buffer(&gpu, buffer, &[16, 8], DType::F32).unwrap();
        t.write(data).unwrap();
        t
    };
    let (xs, dys) = inputs(16 * 8, 41);
    let (x, dy) = (big(&xs), big(&dys));
    let bs: Vec<f32> = (0..8).map(|c| c as f32 * 0.1 - 0.4).collect();
    let b = gpu.upload(&bs).unwrap();
    let (dx, db) = Activation::Gelu.bias_backward(&x, &b, &dy).unwrap();
    let widen = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
    let (want_dx, want_db) =
        cpu::fused::bias_backward(Activation::Gelu, &widen(&xs), &widen(&bs), &widen(&dys));
    let c = compare(
        &xs,
        &dx.read::<f32>().unwrap(),
        &want_dx,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "dx: {c:#?}");
    let got_db = db.read::<f32>().unwrap();
    for (g, w) in got_db.iter().zip(&want_db) {
        assert!(
            (f64::from(*g) - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "db {g} vs {w}"
        );
    }
}

/// The vectors a bias or learnable kernel binds whole in every dispatch (the bias, a per-channel parameter): one
/// in a host's buffer larger than a binding binds only its own bytes, and one wider than a binding is
/// `LimitExceeded` (it was a wgpu validation error); a bias that is also the output is refused as a typed error.
#[test]
fn whole_vectors_bind_their_own_bytes_or_are_refused() {
    let gpu = small_binding_gpu();
    let (xs, dys) = inputs(16 * 8, 43);
    let x = gpu.upload_shaped(&xs, &[16, 8]).unwrap();
    let dy = gpu.upload_shaped(&dys, &[16, 8]).unwrap();
    let buffer = gpu.device().create_buffer(&actgpu::wgpu::BufferDescriptor {
        label: Some("host bias"),
        size: 128 * 1024,
        usage: actgpu::TENSOR_USAGE,
        mapped_at_creation: false,
    });
    let b = actgpu::Tensor::from_buffer(&gpu, buffer, &[8], DType::F32).unwrap();
    let bs: Vec<f32> = (0..8).map(|c| c as f32 * 0.1 - 0.4).collect();
    b.write(&bs).unwrap();
    let widen = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
    let y = Activation::Gelu.bias_forward(&x, &b).unwrap();
    let want = cpu::fused::bias_forward(Activation::Gelu, &widen(&xs), &widen(&bs));
    let c = compare(
        &xs,
        &y.read::<f32>().unwrap(),
        &want,
        F32_ELEMENTWISE,
        false,
    );
    assert!(c.ok(), "bias forward: {c:#?}");
    Activation::Gelu.bias_backward(&x, &b, &dy).unwrap();
    Learnable::Prelu.forward(&x, &b).unwrap();
    Learnable::Prelu.backward(&x, &b, &dy).unwrap();

    // 20,000 columns of f32: an 80 KB bias past the 64 KiB binding, while x's rows could be chunked.
    let wide = gpu.zeros(&[2, 20_000], DType::F32).unwrap();
    let wide_b = gpu.zeros(&[20_000], DType::F32).unwrap();
    let limit = |e: actgpu::Error| matches!(e, actgpu::Error::LimitExceeded { .. });
    assert!(limit(
        Activation::Gelu.bias_forward(&wide, &wide_b).unwrap_err()
    ));
    assert!(limit(Learnable::Prelu.forward(&wide, &wide_b).unwrap_err()));

    // The bias as the output.
    let small = gpu.upload(&xs[..8]).unwrap();
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    let aliased = Activation::Relu.record_bias_forward(&mut enc, &small, &b, &b);
    assert!(
        matches!(aliased, Err(actgpu::Error::InvalidArgument { .. })),
        "{aliased:?}"
    );
    let db = gpu.zeros(&[8], DType::F32).unwrap();
    let aliased = Activation::Relu.record_bias_backward(&mut enc, &small, &b, &small, &b, &db);
    assert!(
        matches!(aliased, Err(actgpu::Error::InvalidArgument { .. })),
        "{aliased:?}"
    );
}

/// A binding limit that is not a multiple of 32 (a host's device may report one): `Mlp` sizes its passes of rows
/// on their bytes, and a pass of 2^20 - 1 bytes or less padded past the limit, so the network refused the rows it
/// had chosen itself (`LimitExceeded`, requested 2^20 against 2^20 - 1). The planned limit is now rounded down
/// to a multiple of the offset alignment and of 32.
#[test]
fn an_odd_binding_limit_is_planned_in_whole_granules() {
    use actgpu::{Adam, Loss, Mlp, Optimizer};
    let gpu = Gpu::with_options(GpuOptions {
        max_storage_binding_bytes: Some((1 << 20) - 1),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let planned = gpu.limits().max_storage_buffer_binding_size;
    let granule = u64::from(gpu.limits().min_storage_buffer_offset_alignment).max(32);
    assert_eq!(planned, ((1 << 20) - 1) / granule * granule);
    let mut net = Mlp::new(
        &gpu,
        &[10, 10, 2],
        &[Activation::Relu],
        Loss::SoftmaxCrossEntropy,
        Optimizer::Adam(Adam::new(0.01)),
        3,
    )
    .unwrap();
    let rows = 30_000;
    let (xs, _) = inputs(rows * 10, 29);
    let labels: Vec<u32> = (0..rows as u32).map(|r| r % 2).collect();
    net.train_step_classes(&xs, &labels)
        .unwrap_or_else(|e| panic!("30,000 rows under a 2^20 - 1 byte binding: {e}"));
    assert!(net.loss().unwrap().is_finite());
}
