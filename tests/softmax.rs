//! Softmax and log-softmax over the last dimension against the f64 reference (`actgpu::verify::softmax`), forward
//! and backward into poisoned outputs: random rows of many widths in every storage type and a mix of them, rows
//! of edge values, both statistics kernels (a thread per row and a workgroup per row, forced either way), dispatch
//! grids folded past their per-dimension limit, and operands past the storage-binding limit in chunks of rows;
//! then the argument errors.

mod common;

use actgpu::verify::fused::random_values;
use actgpu::verify::softmax::{check, edge_rows, SoftmaxDtypes};
use actgpu::{DType, Error, Gpu, GpuOptions, LaunchConfig, SoftmaxKind};
use common::{assert_checks_ok, capped_binding_gpu, gpu};

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
            assert_checks_ok(&format!("{what} {shape:?}"), checks);
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
            assert_checks_ok("edge rows", checks);
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
        // Special values through either kernel: the edge rows, and rows of 600 whose special values lie past
        // the first workgroup's columns (the scan's tree combines them from later threads).
        let (edges, cols) = edge_rows();
        let mut wide = random_values(6 * 600, 8.0, DType::F32, 9);
        wide[450] = f32::INFINITY;
        wide[600 + 300] = f32::NAN;
        wide[1200 + 599] = f32::INFINITY;
        wide[1200 + 300] = f32::INFINITY;
        wide[1800..2400].fill(f32::NEG_INFINITY);
        wide[2400 + 400] = 50.0;
        wide[2400 + 450] = 50.0;
        wide[3000 + 599] = f32::NEG_INFINITY;
        for (x, shape) in [(edges, [6 * 2, cols]), (wide, [6, 600])] {
            let dy = random_values(x.len(), 2.0, DType::F32, 13);
            for kind in SoftmaxKind::ALL {
                let checks = check(&g, kind, f32s, shape, &x, &dy, true)
                    .unwrap_or_else(|e| panic!("{what} {kind}: {e}"));
                assert_checks_ok(&format!("{what}, special values {shape:?}"), checks);
            }
        }
    }
}

/// Rows whose every result is known to the last bit or two, at widths where a dropped or repeated unit moves it
/// by far more than the rounding bounds of `check` allow (8 / 16,500 = 5e-4 against their 2e-3 there): equal
/// logits give `1 / n` and `-log n`; backward, `y = 2^-14` and `dy = 1` give `D = n 2^-14` exactly (every
/// partial sum is a multiple of 2^-14 below 2^10), so `dx = 2^-14 (1 - n 2^-14)` exactly, and log-softmax's
/// `y = 0` gives `dx = 1 - n` exactly.
#[test]
fn rows_of_known_results_catch_a_dropped_unit() {
    for (options, what) in [
        (GpuOptions::default(), "default"),
        (wide_from(1), "a workgroup per row"),
        (wide_from(usize::MAX), "a thread per row"),
    ] {
        let g = Gpu::with_options(options).unwrap_or_else(|e| panic!("{e}"));
        for cols in [37usize, 1000, 16_500, 25_999] {
            let shape = [3, cols];
            let n = 3 * cols;
            let x = g.upload_shaped(&vec![1.25f32; n], &shape).unwrap();
            let p: Vec<f32> = SoftmaxKind::Softmax.forward(&x).unwrap().read().unwrap();
            let want = 1.0 / cols as f64;
            assert!(
                p.iter()
                    .all(|&v| ((f64::from(v) - want) / want).abs() < 4e-7),
                "{what} softmax of {cols} equal values: {:?}, want {want}",
                &p[..4]
            );
            let l: Vec<f32> = SoftmaxKind::LogSoftmax.forward(&x).unwrap().read().unwrap();
            let want = -(cols as f64).ln();
            assert!(
                l.iter()
                    .all(|&v| ((f64::from(v) - want) / want).abs() < 1e-6),
                "{what} log-softmax of {cols} equal values: {:?}, want {want}",
                &l[..4]
            );
            let dy = g.upload_shaped(&vec![1.0f32; n], &shape).unwrap();
            let y = g
                .upload_shaped(&vec![1.0f32 / 16_384.0; n], &shape)
                .unwrap();
            let dx: Vec<f32> = SoftmaxKind::Softmax
                .backward(&y, &dy)
                .unwrap()
                .read()
                .unwrap();
            let want = (1.0 - cols as f64 / 16_384.0) / 16_384.0;
            assert!(
                dx.iter().all(|&v| f64::from(v) == want),
                "{what} softmax backward, {cols} columns: {:?}, want {want}",
                &dx[..4]
            );
            let zeros = g.zeros(&shape, DType::F32).unwrap();
            let dx: Vec<f32> = SoftmaxKind::LogSoftmax
                .backward(&zeros, &dy)
                .unwrap()
                .read()
                .unwrap();
            let want = 1.0 - cols as f32;
            assert!(
                dx.iter().all(|&v| v == want),
                "{what} log-softmax backward, {cols} columns: {:?}, want {want}",
                &dx[..4]
            );
        }
    }
}

#[test]
fn grids_past_the_per_dimension_limit_fold() {
    // 8 workgroups per dimension: 5,000 rows take 79 workgroups of 64 threads, two dispatches of at most 4,096
    // rows, or 5,000 workgroups one per row, 79 dispatches of at most 64 (each after the first `lead_rows` into
    // its binding); the elementwise passes fold too.
    for wide in [1, usize::MAX] {
        let g = Gpu::with_options(GpuOptions {
            max_workgroups_per_dimension: Some(8),
            launch: Some(LaunchConfig {
                workgroup_size: 64,
                units_per_thread: 1,
            }),
            ..wide_from(wide)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.limits().max_compute_workgroups_per_dimension, 8);
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
    // alignment), 5,001 x 13 f16 130 KB with odd rows sharing words, and a mix (f16 y, f32 dy, bf16 dx) whose
    // operands' rows align differently. Then 8 workgroups per dimension as well: chunks of several dispatches.
    let mixed = SoftmaxDtypes {
        input: DType::F16,
        dy: DType::F32,
        out: DType::BF16,
    };
    for (wide, grid) in [
        (1, None),
        (usize::MAX, None),
        (1, Some(8)),
        (usize::MAX, Some(8)),
    ] {
        let g = capped_binding_gpu(
            64 * 1024,
            GpuOptions {
                max_workgroups_per_dimension: grid,
                ..wide_from(wide)
            },
        );
        for (dtype, shape) in [(DType::F32, [3_001, 37]), (DType::F16, [5_001, 13])] {
            let dtypes = SoftmaxDtypes {
                input: dtype,
                dy: dtype,
                out: dtype,
            };
            check_shapes(&g, dtypes, &[shape], "chunked");
        }
        check_shapes(&g, mixed, &[[3_001, 21]], "chunked, mixed types");
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
