//! Softmax and log-softmax over the last dimension against the f64 reference (`actgpu::verify::softmax`), forward
//! and backward into poisoned outputs: random rows of many widths in every storage type and a mix of them, rows
//! of edge values, both statistics kernels (a thread per row and a workgroup per row, forced either way), dispatch
//! grids folded past their per-dimension limit, and operands past the storage-binding limit in chunks of rows;
//! then the argument errors.

mod common;

use actgpu::verify::fused::{random_values, FusedCheck};
use actgpu::verify::softmax::{check, edge_rows, SoftmaxDtypes};
use actgpu::{DType, Error, Gpu, GpuOptions, LaunchConfig, SoftmaxKind};
use common::{capped_binding_gpu, gpu};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Widths from one column to past the CPU adapters' workgroup-per-row threshold (16,384), odd and even, so that
/// 16-bit rows share their words with the next row.
const SHAPES: [[usize; 2]; 7] = [
    [1, 1],
    [3, 1],
    [1, 2],
    [7, 5],
    [33, 10],
    [5, 1000],
    [2, 16_500],
];

fn assert_ok(what: &str, checks: Vec<FusedCheck>) {
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

/// Every shape of [`SHAPES`] in `dtypes`, both kinds, seeded random x in [-8, 8) and dy in [-1, 1).
fn check_shapes(g: &Gpu, dtypes: SoftmaxDtypes, shapes: &[[usize; 2]], what: &str) {
    for kind in SoftmaxKind::ALL {
        for (i, &shape) in shapes.iter().enumerate() {
            let n = shape[0] * shape[1];
            let seed = 17 * i as u64 + 3;
            let x = random_values(n, 8.0, dtypes.input, seed);
            let dy = random_values(n, 1.0, dtypes.dy, seed + 1);
            let checks = check(g, kind, dtypes, shape, &x, &dy, false)
                .unwrap_or_else(|e| panic!("{what} {kind} {shape:?}: {e}"));
            assert_ok(&format!("{what} {shape:?}"), checks);
        }
    }
}

#[test]
fn random_rows_match_the_reference_in_every_storage_type() {
    for dtype in DTYPES {
        let dtypes = SoftmaxDtypes {
            input: dtype,
            dy: dtype,
            out: dtype,
        };
        check_shapes(gpu(), dtypes, &SHAPES, dtype.name());
    }
    let mixed = SoftmaxDtypes {
        input: DType::F16,
        dy: DType::F32,
        out: DType::BF16,
    };
    check_shapes(gpu(), mixed, &SHAPES[..6], "f16 in, f32 dy, bf16 out");
}

#[test]
fn edge_rows_follow_the_policy_for_special_values() {
    let (x, cols) = edge_rows();
    let shape = [x.len() / cols, cols];
    for kind in SoftmaxKind::ALL {
        for dtype in DTYPES {
            let dtypes = SoftmaxDtypes {
                input: dtype,
                dy: dtype,
                out: dtype,
            };
            let dy = random_values(x.len(), 2.0, dtype, 5);
            let checks = check(gpu(), kind, dtypes, shape, &x, &dy, true)
                .unwrap_or_else(|e| panic!("{kind} {}: {e}", dtype.name()));
            assert_ok("edge rows", checks);
        }
    }
    // The policy itself, read back: one +inf is the limit, two are NaN, -inf beside a finite maximum is 0.
    let g = gpu();
    let inf = f32::INFINITY;
    let x = g
        .upload_shaped(&[1.0, inf, -inf, inf, inf, 0.0, 0.0, -inf, 2.0], &[3, 3])
        .unwrap();
    let y: Vec<f32> = SoftmaxKind::Softmax.forward(&x).unwrap().read().unwrap();
    assert_eq!(&y[..3], &[0.0, 1.0, 0.0]);
    assert!(y[3..6].iter().all(|v| v.is_nan()), "{y:?}");
    let e2 = 1.0 / (1.0 + (-2.0f32).exp());
    assert!((y[6] - (1.0 - e2)).abs() < 1e-6 && y[7] == 0.0 && (y[8] - e2).abs() < 1e-6);
    let l: Vec<f32> = SoftmaxKind::LogSoftmax.forward(&x).unwrap().read().unwrap();
    assert_eq!(&l[..3], &[-inf, 0.0, -inf]);
    assert_eq!(l[7], -inf);
}

/// A context whose statistics take the workgroup per row from `wide_from` columns.
fn wide_from(wide_from: usize) -> GpuOptions {
    GpuOptions {
        cross_entropy_wide_rows: Some(wide_from),
        ..GpuOptions::default()
    }
}

#[test]
fn both_statistics_kernels_agree_with_the_reference() {
    let f32s = SoftmaxDtypes {
        input: DType::F32,
        dy: DType::F32,
        out: DType::F32,
    };
    let f16s = SoftmaxDtypes {
        input: DType::F16,
        dy: DType::F16,
        out: DType::F16,
    };
    for (options, what) in [
        (wide_from(1), "a workgroup per row"),
        (wide_from(usize::MAX), "a thread per row"),
    ] {
        let g = Gpu::with_options(options).unwrap_or_else(|e| panic!("{e}"));
        check_shapes(&g, f32s, &SHAPES[..6], what);
        check_shapes(&g, f16s, &SHAPES[..6], what);
    }
}

#[test]
fn grids_past_the_per_dimension_limit_fold() {
    // 32 workgroups per dimension: 5,000 rows take 79 workgroups of 64 threads, or 5,000 workgroups one per row,
    // and the elementwise passes fold too.
    for wide in [1, usize::MAX] {
        let g = Gpu::with_options(GpuOptions {
            max_workgroups_per_dimension: Some(32),
            launch: Some(LaunchConfig {
                workgroup_size: 64,
                units_per_thread: 1,
            }),
            ..wide_from(wide)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.limits().max_compute_workgroups_per_dimension, 32);
        for dtype in [DType::F32, DType::BF16] {
            let dtypes = SoftmaxDtypes {
                input: dtype,
                dy: dtype,
                out: dtype,
            };
            check_shapes(&g, dtypes, &[[5_000, 3]], "folded grid");
        }
    }
}

#[test]
fn operands_past_the_binding_limit_run_in_chunks_of_rows() {
    // 64 KiB bindings: 3,001 x 37 f32 is 444 KB (7 chunks of rows, whose starts are not a row multiple of the
    // alignment), 5,001 x 13 f16 130 KB with odd rows sharing words.
    for wide in [1, usize::MAX] {
        let g = capped_binding_gpu(64 * 1024, wide_from(wide));
        for (dtype, shape) in [(DType::F32, [3_001, 37]), (DType::F16, [5_001, 13])] {
            let dtypes = SoftmaxDtypes {
                input: dtype,
                dy: dtype,
                out: dtype,
            };
            check_shapes(&g, dtypes, &[shape], "chunked");
        }
    }
}

#[test]
fn bad_arguments_are_typed_errors() {
    let g = gpu();
    let x = g.upload_shaped(&[1.0f32; 12], &[3, 4]).unwrap();
    let other = g.upload_shaped(&[0.0f32; 12], &[4, 3]).unwrap();
    for kind in SoftmaxKind::ALL {
        assert!(matches!(
            kind.forward_into(&x, &other),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            kind.forward_into(&x, &x),
            Err(Error::InvalidArgument { .. })
        ));
        let y = kind.forward(&x).unwrap();
        assert!(matches!(
            kind.backward_into(&y, &x, &y),
            Err(Error::InvalidArgument { .. })
        ));
        // y and dy may share a buffer.
        let dx = kind.backward(&y, &y).unwrap();
        assert_eq!(dx.shape(), &[3, 4]);
        // Empty tensors record nothing.
        for shape in [[0, 5], [5, 0]] {
            let e = g.zeros(&shape, DType::F32).unwrap();
            assert_eq!(kind.forward(&e).unwrap().len(), 0);
            assert_eq!(kind.backward(&e, &e).unwrap().len(), 0);
        }
    }
    // The statistics (8 bytes a row forward) past a 64 KiB binding.
    let small = capped_binding_gpu(64 * 1024, GpuOptions::default());
    let tall = small.zeros(&[10_000, 1], DType::F32).unwrap();
    assert!(matches!(
        SoftmaxKind::Softmax.forward(&tall),
        Err(Error::LimitExceeded { .. })
    ));
}

#[test]
fn rows_too_wide_for_a_loop_limited_adapter_are_refused_there() {
    let g = gpu();
    // Past what the workgroup kernel's threads walk within 65,535 iterations at the largest reduction workgroup
    // (256 threads, two walks of 30,000 steps).
    let cols = 30_000 * 256 + 1;
    let x = g.zeros(&[1, cols], DType::BF16).unwrap();
    let got = SoftmaxKind::Softmax.forward(&x);
    if g.loop_limited() {
        assert!(
            matches!(got, Err(Error::LimitExceeded { requested, .. }) if requested == cols as u64),
            "{got:?}"
        );
    } else {
        let y: Vec<f32> = got.unwrap().read_f32().unwrap();
        let sum: f64 = y.iter().map(|&v| f64::from(v)).sum();
        assert!((sum - 1.0).abs() < 1e-2, "{sum}");
    }
}
