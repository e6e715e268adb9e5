//! Fused kernels against the f64 reference (through `actgpu::verify::fused`, which `validate` uses too): bias +
//! activation on shapes that take the fused db path (cols a multiple of 8, or of 4 in f32) and the fallback;
//! gated units in both layouts; learnable activations with shared and per-channel parameters; every storage
//! type; edge inputs; and, with every f32 check on random inputs, the op's tails (results below 1e-6 checked
//! relatively, `verify::fused`).

mod common;

use actgpu::verify::fused::{check_bias, check_gated, check_learnable, FusedCheck, FusedInputs};
use actgpu::verify::{Rng, OTHER_PARAMETERS};
use actgpu::{cpu, Activation, DType, Gated, Learnable, Tensor};
use common::{describe, gpu};

fn assert_all_ok(checks: Vec<FusedCheck>) {
    let failed: Vec<_> = checks.into_iter().filter(|c| !c.ok()).collect();
    assert!(
        failed.is_empty(),
        "out of tolerance:\n{}",
        describe(&failed)
    );
}

/// Widths that are whole 8-element units (the unit and word kernels), whole 16-byte words only (12, 20: the
/// word kernel in f32), and neither (5, 13: a column per thread in f32, two passes in 16-bit types).
const SHAPES: [(usize, usize); 10] = [
    (1, 1),
    (3, 5),
    (64, 8),
    (257, 24),
    (1000, 13),
    (5, 4096),
    (300, 40),
    (0, 16),
    (33, 12),
    (130, 20),
];

#[test]
fn bias_activation_matches_the_reference_on_fused_and_fallback_shapes() {
    let mut checks = Vec::new();
    for (rows, cols) in SHAPES {
        for act in [Activation::Gelu, Activation::Relu, Activation::Tanh] {
            checks.extend(
                check_bias(
                    gpu(),
                    act,
                    rows,
                    cols,
                    DType::F32,
                    DType::F32,
                    FusedInputs::Random((rows * 31 + cols) as u64),
                )
                .unwrap(),
            );
        }
    }
    assert_all_ok(checks);
}

/// Every activation, and those with other parameters once (Swish with beta 0, CELU with a negative alpha; their
/// tails differ from the defaults').
#[test]
fn bias_activation_every_activation_f32() {
    let mut checks = Vec::new();
    for act in OTHER_PARAMETERS {
        checks.extend(
            check_bias(
                gpu(),
                act,
                33,
                16,
                DType::F32,
                DType::F32,
                FusedInputs::Random(3),
            )
            .unwrap(),
        );
    }
    for act in Activation::ALL {
        checks.extend(
            check_bias(
                gpu(),
                act,
                33,
                16,
                DType::F32,
                DType::F32,
                FusedInputs::Random(1),
            )
            .unwrap(),
        );
        checks.extend(
            check_bias(
                gpu(),
                act,
                17,
                7,
                DType::F32,
                DType::F32,
                FusedInputs::Random(2),
            )
            .unwrap(),
        );
    }
    assert_all_ok(checks);
}

#[test]
fn bias_activation_in_16_bit_types() {
    let mut checks = Vec::new();
    for (x_t, b_t) in [
        (DType::F16, DType::F32),
        (DType::BF16, DType::BF16),
        (DType::F16, DType::F16),
    ] {
        // Whole units, odd (two passes), and even widths that are not whole units (a pair per thread).
        for (rows, cols) in [(40, 24), (9, 11), (13, 10), (70, 26)] {
            checks.extend(
                check_bias(
                    gpu(),
                    Activation::Silu,
                    rows,
                    cols,
                    x_t,
                    b_t,
                    FusedInputs::Random(3),
                )
                .unwrap(),
            );
        }
    }
    assert_all_ok(checks);
}

#[test]
fn bias_shape_errors_are_typed() {
    let g = gpu();
    let x = g.upload_shaped(&[0.0f32; 6], &[2, 3]).unwrap();
    let bad = g.upload(&[0.0f32; 2]).unwrap();
    assert!(matches!(
        Activation::Relu.bias_forward(&x, &bad),
        Err(actgpu::Error::ShapeMismatch { .. })
    ));
}

#[test]
fn gated_units_match_the_reference_in_both_layouts() {
    let mut checks = Vec::new();
    for unit in Gated::ALL {
        // Half widths of whole units take the unit kernels: flat (8, 1000) and, from a workgroup's units (128 on
        // the software adapters), on a grid of rows (1040, whose second column workgroup is mostly idle).
        for (rows, half) in [(1, 1), (3, 5), (17, 8), (64, 33), (2, 1000), (3, 1040)] {
            checks.extend(
                check_gated(
                    gpu(),
                    unit,
                    rows,
                    half,
                    DType::F32,
                    FusedInputs::Random((rows + half) as u64),
                )
                .unwrap(),
            );
        }
    }
    assert_all_ok(checks);
}

#[test]
fn gated_units_in_16_bit_types() {
    let mut checks = Vec::new();
    for dtype in [DType::F16, DType::BF16] {
        // Odd half widths put da and dg in one word at every row's middle.
        for (rows, half) in [
            (5, 2),
            (13, 24),
            (3, 250),
            (1, 1),
            (5, 3),
            (7, 13),
            (2, 1024),
        ] {
            for unit in [Gated::SWIGLU, Gated::GEGLU] {
                checks.extend(
                    check_gated(gpu(), unit, rows, half, dtype, FusedInputs::Random(4)).unwrap(),
                );
            }
        }
    }
    assert_all_ok(checks);
}

#[test]
fn gated_shape_errors_are_typed() {
    let g = gpu();
    // A gate applied to its own value (a and g one buffer, both read-only): x silu(x), and its gradients.
    let v = g.upload(&[-2.0f32, -0.5, 0.0, 1.5]).unwrap();
    let y: Vec<f32> = Gated::SWIGLU.forward_pair(&v, &v).unwrap().read().unwrap();
    let ones = g.upload(&[1.0f32; 4]).unwrap();
    let (da, dg) = Gated::SWIGLU.backward_pair(&v, &v, &ones).unwrap();
    for (i, &x) in [-2.0f64, -0.5, 0.0, 1.5].iter().enumerate() {
        let s = cpu::activation::sigmoid(x);
        assert!((f64::from(y[i]) - x * x * s).abs() < 1e-6, "{x}: {}", y[i]);
        let (da, dg) = (da.read::<f32>().unwrap()[i], dg.read::<f32>().unwrap()[i]);
        assert!(
            (f64::from(da) - x * s).abs() < 1e-6
                && (f64::from(dg) - x * (s + x * s * (1.0 - s))).abs() < 1e-6
        );
    }
    // An output over an input's buffer (a view of it): a typed error, not a wgpu usage conflict.
    let x = g.upload_shaped(&[0.5f32; 8], &[2, 4]).unwrap();
    let over_x = Tensor::from_buffer(g, x.buffer().clone(), &[2, 2], DType::F32).unwrap();
    let dout = g.upload_shaped(&[1.0f32; 4], &[2, 2]).unwrap();
    let over_dout = Tensor::from_buffer(g, dout.buffer().clone(), &[2, 4], DType::F32).unwrap();
    let mut enc = g.device().create_command_encoder(&Default::default());
    assert!(matches!(
        Gated::SWIGLU.record_forward(&mut enc, &x, &over_x),
        Err(actgpu::Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Gated::SWIGLU.record_backward(&mut enc, &x, &dout, &over_dout),
        Err(actgpu::Error::InvalidArgument { .. })
    ));
    let odd = g.upload_shaped(&[0.0f32; 6], &[2, 3]).unwrap();
    assert!(matches!(
        Gated::GLU.forward(&odd),
        Err(actgpu::Error::InvalidArgument { .. })
    ));
    let x = g.upload_shaped(&[0.0f32; 6], &[1, 6]).unwrap();
    let dout = g.upload_shaped(&[0.0f32; 4], &[1, 4]).unwrap();
    assert!(matches!(
        Gated::GLU.backward(&x, &dout),
        Err(actgpu::Error::ShapeMismatch { .. })
    ));
    // A 0-d tensor has no last dimension to split.
    let scalar = g.upload_shaped(&[2.0f32], &[]).unwrap();
    assert!(matches!(
        Gated::GLU.forward(&scalar),
        Err(actgpu::Error::InvalidArgument { .. })
    ));
    // ... but is one row of one column to the column sums.
    assert_eq!(scalar.column_sums().unwrap().read::<f32>().unwrap(), [2.0]);
}

/// An output that is the parameter's own buffer is a typed error, not a wgpu usage conflict (which a host's
/// default error handler would turn into a panic when recorded into its encoder).
#[test]
fn learnable_outputs_must_not_be_the_parameter() {
    let g = gpu();
    let x = g.upload(&[0.5f32, -1.0, 2.0, -3.0]).unwrap();
    let p = g.upload(&[0.25f32; 4]).unwrap();
    let dy = x.zeros_like().unwrap();
    let dp = p.zeros_like().unwrap();
    let mut enc = g.device().create_command_encoder(&Default::default());
    for kind in Learnable::ALL {
        assert!(matches!(
            kind.record_forward(&mut enc, &x, &p, &p),
            Err(actgpu::Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            kind.record_backward(&mut enc, &x, &p, &dy, &p, &dp),
            Err(actgpu::Error::InvalidArgument { .. })
        ));
    }
}

#[test]
fn learnable_activations_match_the_reference() {
    let mut checks = Vec::new();
    for kind in Learnable::ALL {
        for (rows, cols) in [(1, 1), (7, 3), (33, 16), (100, 24), (5, 13)] {
            for shared in [true, false] {
                checks.extend(
                    check_learnable(
                        gpu(),
                        kind,
                        rows,
                        cols,
                        shared,
                        DType::F32,
                        DType::F32,
                        FusedInputs::Random(5),
                    )
                    .unwrap(),
                );
            }
        }
        checks.extend(
            check_learnable(
                gpu(),
                kind,
                20,
                16,
                false,
                DType::F16,
                DType::F32,
                FusedInputs::Random(6),
            )
            .unwrap(),
        );
        checks.extend(
            check_learnable(
                gpu(),
                kind,
                9,
                10,
                true,
                DType::BF16,
                DType::F32,
                FusedInputs::Random(7),
            )
            .unwrap(),
        );
    }
    assert_all_ok(checks);
}

/// Swish's d/dbeta = x^2 sigmoid'(beta x) where sigmoid'(beta x) is subnormal or 0 in f32 and the product is
/// not: one parameter per column, one row, dy = 1, so each dp is one term, against the f64 reference.
#[test]
fn swish_beta_gradient_at_large_x_and_small_beta() {
    let g = gpu();
    // |beta x| = 100, 102, 120, 150, 200 (sigmoid' 3.7e-44, 5.0e-45, 0, 0, 0) and an ordinary column.
    let xs = [-1e20f32, -1e20, -1e30, -3e38, 1e37, 2.0];
    let ps = [1e-18f32, 1.02e-18, 1.2e-28, 5e-37, 2e-35, 0.7];
    let x = g.upload_shaped(&xs, &[1, 6]).unwrap();
    let p = g.upload(&ps).unwrap();
    let dy = g.upload_shaped(&[1.0f32; 6], &[1, 6]).unwrap();
    let (_, dp) = Learnable::Swish.backward(&x, &p, &dy).unwrap();
    let got = dp.read::<f32>().unwrap();
    for (c, (&x, &p)) in xs.iter().zip(&ps).enumerate() {
        let (_, want) = cpu::fused::learnable_grads(Learnable::Swish, x.into(), p.into());
        let err = (f64::from(got[c]) - want).abs();
        assert!(
            err <= 1e-5 * want.abs(),
            "column {c}: x = {x:e}, beta = {p:e}: got {:e}, want {want:e}",
            got[c]
        );
    }
}

/// Every fused family on edge inputs ([`FusedInputs::Edges`]: one of 0, -0, subnormal, large, MAX, +-inf, NaN
/// per column of x, +inf gradients beside the positive ones), in every storage type, on widths that take the
/// fused column sums (multiples of 8) and the separate ones; outputs poisoned.
#[test]
fn fused_ops_follow_the_numerical_policy_on_edge_inputs() {
    let mut checks = Vec::new();
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for (rows, cols) in [(5, 24), (3, 21), (40, 40), (4, 26)] {
            let edges = FusedInputs::Edges((rows + cols) as u64);
            for act in [
                Activation::Gelu,
                Activation::Relu,
                Activation::Silu,
                Activation::Tanh,
            ] {
                checks
                    .extend(check_bias(gpu(), act, rows, cols, dtype, DType::F32, edges).unwrap());
            }
            for kind in Learnable::ALL {
                for shared in [true, false] {
                    checks.extend(
                        check_learnable(gpu(), kind, rows, cols, shared, dtype, DType::F32, edges)
                            .unwrap(),
                    );
                }
            }
            for unit in Gated::ALL {
                checks.extend(check_gated(gpu(), unit, rows, cols, dtype, edges).unwrap());
            }
        }
    }
    assert_all_ok(checks);
}

/// An infinite gradient beside a gate value whose derivative rounds to 0 in f32 (softsign' at 1e30 and f32::MAX)
/// gives NaN, the crate's f32 rule, for the bias op and for a gated unit, in both layouts; the references follow
/// that rule (a gated unit with a softsign gate failed a correct kernel when they did not).
#[test]
fn an_infinite_gradient_times_an_underflowing_derivative_follows_the_f32_rule() {
    let mut checks = Vec::new();
    for seed in 0..20 {
        let edges = FusedInputs::Edges(seed);
        let unit = Gated {
            gate: Activation::Softsign,
        };
        checks.extend(check_gated(gpu(), unit, 5, 24, DType::F32, edges).unwrap());
        checks.extend(
            check_bias(
                gpu(),
                Activation::Softsign,
                5,
                24,
                DType::F32,
                DType::F32,
                edges,
            )
            .unwrap(),
        );
    }
    assert_all_ok(checks);
}

/// Every f32 check on random inputs brings the tails of its op (rows named `<op>_tails`: inputs across
/// +-[2, 130] and at the underflow edges, results checked relatively), and those checks reach the tails: each
/// counts most of its elements, in every family and layout (a check that left everything out, as near a root say,
/// would pass whatever the kernel did). 16-bit and edge-input checks have none.
#[test]
fn fused_checks_include_their_tails() {
    let f32_checks = |checks: Vec<FusedCheck>| {
        assert!(
            checks.iter().any(|c| c.op.ends_with("_tails")),
            "no tails in {checks:?}"
        );
        checks
    };
    let mut checks = Vec::new();
    for (act, cols) in [(Activation::Gelu, 24), (Activation::Sigmoid, 7)] {
        let random = FusedInputs::Random(1);
        checks.extend(f32_checks(
            check_bias(gpu(), act, 33, cols, DType::F32, DType::F32, random).unwrap(),
        ));
    }
    checks.extend(f32_checks(
        check_gated(
            gpu(),
            Gated::SWIGLU,
            3,
            24,
            DType::F32,
            FusedInputs::Random(1),
        )
        .unwrap(),
    ));
    for kind in Learnable::ALL {
        for shared in [true, false] {
            let random = FusedInputs::Random(1);
            checks.extend(f32_checks(
                check_learnable(gpu(), kind, 3, 24, shared, DType::F32, DType::F32, random)
                    .unwrap(),
            ));
        }
    }
    let minimum = [
        ("bias_gelu_tails", "y", 4_000),
        ("bias_gelu_tails", "dx", 4_000),
        ("bias_gelu_tails", "db", 8),
        ("bias_sigmoid_tails", "y", 6_000),
        ("bias_sigmoid_tails", "dx", 5_000),
        ("bias_sigmoid_tails", "db", 3),
        ("swiglu_tails", "y", 6_000),
        ("swiglu_tails", "da", 6_000),
        ("swiglu_tails", "dg", 6_000),
        ("swiglu_pair_tails", "y", 6_000),
        ("swiglu_pair_tails", "da", 6_000),
        ("swiglu_pair_tails", "dg", 6_000),
        ("prelu_shared_tails", "y", 8_000),
        ("prelu_per_channel_tails", "dx", 8_000),
        ("swish_learnable_shared_tails", "y", 4_000),
        ("swish_learnable_per_channel_tails", "dx", 4_000),
        ("swish_learnable_per_channel_tails", "dp", 4),
        ("elu_learnable_shared_tails", "dx", 5_000),
        ("elu_learnable_per_channel_tails", "y", 8_000),
    ];
    for (op, output, at_least) in minimum {
        let c = checks
            .iter()
            .find(|c| c.op == op && c.output == output)
            .unwrap_or_else(|| panic!("no {op} {output}"));
        assert!(
            c.check.count >= at_least,
            "{op} {output}: {} elements checked",
            c.check.count
        );
    }
    assert_all_ok(checks);
    for checks in [
        check_bias(
            gpu(),
            Activation::Gelu,
            4,
            8,
            DType::F16,
            DType::F32,
            FusedInputs::Random(1),
        ),
        check_bias(
            gpu(),
            Activation::Gelu,
            4,
            8,
            DType::F32,
            DType::F32,
            FusedInputs::Edges(1),
        ),
        check_gated(gpu(), Gated::GLU, 4, 8, DType::BF16, FusedInputs::Random(1)),
    ] {
        assert!(!checks.unwrap().iter().any(|c| c.op.ends_with("_tails")));
    }
}

/// A shared parameter walks the tensor as rows of 1,024 units of 8 elements whatever its shape: 77,100 elements
/// make 10 such rows, the last one short, in two row blocks.
#[test]
fn a_shared_parameter_over_many_rows_of_units() {
    let mut checks = Vec::new();
    for kind in Learnable::ALL {
        for dtype in [DType::F32, DType::BF16] {
            checks.extend(
                check_learnable(
                    gpu(),
                    kind,
                    257,
                    300,
                    true,
                    dtype,
                    DType::F32,
                    FusedInputs::Random(8),
                )
                .unwrap(),
            );
        }
    }
    assert_all_ok(checks);
}

/// The learnable activations with the parameter and its gradient in 16-bit storage too (the other checks keep
/// them f32), shared and per channel, on random and edge inputs.
#[test]
fn learnable_parameters_in_16_bit_storage() {
    let mut checks = Vec::new();
    for dtype in [DType::F16, DType::BF16] {
        for kind in Learnable::ALL {
            for shared in [true, false] {
                for inputs in [FusedInputs::Random(9), FusedInputs::Edges(10)] {
                    checks.extend(
                        check_learnable(gpu(), kind, 21, 24, shared, dtype, dtype, inputs).unwrap(),
                    );
                }
            }
        }
    }
    assert_all_ok(checks);
}

#[test]
fn learnable_parameter_gradients_match_finite_differences() {
    // d/dp of L = sum(dy * f(x; p)) by central differences in f64, against the reference's dp.
    let mut rng = Rng::new(99);
    for kind in Learnable::ALL {
        let xs: Vec<f64> = (0..64).map(|_| rng.unit() * 8.0 - 4.0).collect();
        let dys: Vec<f64> = (0..64).map(|_| rng.unit() * 2.0 - 1.0).collect();
        for p in [0.25, 1.0, 1.7] {
            let loss = |p: f64| -> f64 {
                cpu::fused::learnable_forward(kind, &xs, &[p])
                    .iter()
                    .zip(&dys)
                    .map(|(y, d)| y * d)
                    .sum()
            };
            let h = 1e-6;
            let fd = (loss(p + h) - loss(p - h)) / (2.0 * h);
            let (_, dp) = cpu::fused::learnable_backward(kind, &xs, &[p], &dys);
            assert!(
                (fd - dp[0]).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{kind:?} p = {p}: fd {fd}, dp {}",
                dp[0]
            );
        }
    }
}

/// Column sums in every storage type, over row counts on both sides of the one-pass limit (128 rows) and across
/// the row blocks of the two-pass reduction, with widths that take f32's word-per-thread kernel (a multiple of 4,
/// 68 not of 8) and widths that do not; 16-bit sums are rounded once to the type on store.
#[test]
fn column_sums_match_the_reference() {
    let g = gpu();
    let shapes = [
        (1, 1),
        (5, 3),
        (64, 64),
        (128, 37),
        (129, 9),
        (300, 24),
        (700, 68),
        (1000, 13),
        (0, 4),
    ];
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for (rows, cols) in shapes {
            let seed = (rows + cols) as u64;
            let xs = actgpu::verify::fused::random_values(rows * cols, 3.0, dtype, seed);
            let x = Tensor::from_buffer(
                g,
                g.upload_f32_as(&xs, dtype).unwrap().buffer().clone(),
                &[rows, cols],
                dtype,
            )
            .unwrap();
            let sums = x.column_sums().unwrap();
            assert_eq!(sums.dtype(), dtype);
            let got = sums.read_f32().unwrap();
            // Half an ULP of the storage type, relative: the one rounding on store.
            let unit = match dtype {
                DType::F32 => 0.0,
                DType::F16 => 2f64.powi(-11),
                DType::BF16 => 2f64.powi(-8),
                other => panic!("no rounding bound for {other:?}"),
            };
            for c in 0..cols {
                let (sum, abs): (f64, f64) = (0..rows)
                    .map(|r| f64::from(xs[r * cols + c]))
                    .fold((0.0, 0.0), |(s, a), v| (s + v, a + v.abs()));
                let tol = 1e-6 + 1e-5 * abs + unit * sum.abs();
                assert!(
                    (f64::from(got[c]) - sum).abs() <= tol,
                    "{dtype:?} [{rows}, {cols}] column {c}: {} against {sum}",
                    got[c]
                );
            }
        }
    }
}

/// The sums' padding (up to a whole 8-element unit) comes out 0, not what an earlier, wider reduction left in
/// the shared partial sums at those columns.
#[test]
fn column_sums_write_zeros_into_the_padding() {
    let g = gpu();
    let rows = 300;
    let wide = g
        .upload_shaped(&vec![1.0f32; rows * 16], &[rows, 16])
        .unwrap();
    let narrow = g
        .upload_shaped(&vec![2.0f32; rows * 13], &[rows, 13])
        .unwrap();
    let buffer = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let padded = Tensor::from_buffer(g, buffer.clone(), &[16], DType::F32).unwrap();
    padded.write(&[f32::NAN; 16]).unwrap();
    let sums = Tensor::from_buffer(g, buffer, &[13], DType::F32).unwrap();
    let wide_sums = g.zeros(&[16], DType::F32).unwrap();
    g.submit_and_wait("column sums", |enc| {
        actgpu::ops::bias::record_column_sums(enc, &wide, &wide_sums)?;
        actgpu::ops::bias::record_column_sums(enc, &narrow, &sums)
    })
    .unwrap();
    let got = padded.read::<f32>().unwrap();
    assert_eq!(got[..13], [600.0; 13]);
    assert_eq!(got[13..], [0.0; 3]);
}

/// Column sums of no rows zero the sums' own padded bytes, not the rest of a larger host buffer, and a host buffer
/// without `COPY_DST` (which zeroing needs) is a typed error.
#[test]
fn column_sums_of_no_rows_zero_only_the_sums() {
    let g = gpu();
    let x = g.zeros(&[0, 5], DType::F32).unwrap();
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let buffer = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage,
        mapped_at_creation: false,
    });
    let whole = Tensor::from_buffer(g, buffer.clone(), &[16], DType::F32).unwrap();
    whole.write(&[7.0f32; 16]).unwrap();
    let sums = Tensor::from_buffer(g, buffer, &[5], DType::F32).unwrap();
    g.submit_and_wait("column sums", |enc| {
        actgpu::ops::bias::record_column_sums(enc, &x, &sums)
    })
    .unwrap();
    let got = whole.read::<f32>().unwrap();
    assert_eq!(got[..8], [0.0; 8], "the 5 sums and their padding to 8");
    assert_eq!(got[8..], [7.0; 8], "the host's bytes past the tensor");
    let storage_only = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 32,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let sums = Tensor::from_buffer(g, storage_only, &[5], DType::F32).unwrap();
    let mut enc = g.device().create_command_encoder(&Default::default());
    assert!(matches!(
        actgpu::ops::bias::record_column_sums(&mut enc, &x, &sums),
        Err(actgpu::Error::MissingUsage { .. })
    ));
}

/// The column reductions share one scratch buffer for their partial sums: several of them recorded into one
/// encoder, the second one larger than any before it (so the buffer grows between them), must each give their
/// own sums.
#[test]
fn reductions_recorded_together_keep_their_own_partial_sums() {
    let g = gpu();
    let shapes = [(64, 16), (2_000, 512), (64, 16), (9, 40), (33, 13)];
    let mut cases = Vec::new();
    for (i, &(rows, cols)) in shapes.iter().enumerate() {
        let dys = actgpu::verify::fused::random_values(rows * cols, 2.0, DType::F32, i as u64);
        let x = g
            .upload_shaped(&vec![1.0f32; rows * cols], &[rows, cols])
            .unwrap();
        let b = g.upload(&vec![0.0f32; cols]).unwrap();
        let dy = g.upload_shaped(&dys, &[rows, cols]).unwrap();
        let dx = g.zeros(&[rows, cols], DType::F32).unwrap();
        let db = g.zeros(&[cols], DType::F32).unwrap();
        cases.push((rows, cols, dys, x, b, dy, dx, db));
    }
    g.submit_and_wait("reductions together", |enc| {
        for (_, _, _, x, b, dy, dx, db) in &cases {
            Activation::Identity.record_bias_backward(enc, x, b, dy, dx, db)?;
        }
        Ok(())
    })
    .unwrap();
    for (rows, cols, dys, _, _, _, _, db) in &cases {
        let got: Vec<f32> = db.read().unwrap();
        for c in 0..*cols {
            let (sum, abs): (f64, f64) = (0..*rows)
                .map(|r| f64::from(dys[r * cols + c]))
                .fold((0.0, 0.0), |(s, a), v| (s + v, a + v.abs()));
            assert!(
                (f64::from(got[c]) - sum).abs() <= 1e-6 + 1e-5 * abs,
                "[{rows}, {cols}] column {c}: {} vs {sum}",
                got[c]
            );
        }
    }
}

/// Every row-block height gives the reference's results: the bias kernels (forward on the row grid, backward with
/// per-block partial sums) and a learnable parameter's gradient, with `GpuOptions::reduction_rows` from 0 (taken
/// as 1) to far more rows than any tensor has, on shapes whose row counts are not multiples of the heights.
#[test]
fn every_reduction_row_height_matches_the_reference() {
    let mut checks = Vec::new();
    for rows_option in [
        Some(0),
        Some(1),
        Some(3),
        Some(7),
        Some(200),
        Some(1 << 40),
        None,
    ] {
        let g = actgpu::Gpu::with_options(actgpu::GpuOptions {
            reduction_rows: rows_option,
            ..actgpu::GpuOptions::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            g.reduction_rows(),
            rows_option.map_or(g.reduction_rows(), |r| r.max(1))
        );
        for (rows, cols) in [(1, 8), (257, 24), (300, 40)] {
            for dtype in [DType::F32, DType::F16] {
                checks.extend(
                    check_bias(
                        &g,
                        Activation::Gelu,
                        rows,
                        cols,
                        dtype,
                        dtype,
                        FusedInputs::Random(11),
                    )
                    .unwrap(),
                );
            }
            checks.extend(
                check_learnable(
                    &g,
                    Learnable::ALL[0],
                    rows,
                    cols,
                    false,
                    DType::F32,
                    DType::F32,
                    FusedInputs::Random(12),
                )
                .unwrap(),
            );
        }
    }
    assert_all_ok(checks);
}

/// Products whose factors leave f32's normal range while the result does not, each against the f64 reference
/// within 1e-5 relative: Swish with a small beta far out on the negative side (sigmoid(beta x) subnormal or 0,
/// x sigmoid(beta x) normal), a learnable Swish's dp where x^2 sigmoid' overflows and dy brings it back, and a
/// gated dg where dout a underflows and a large f'(g) brings it back.
#[test]
fn products_past_the_normal_range_keep_their_value() {
    let g = gpu();
    let close = |what: &str, got: f32, want: f64| {
        let err = (f64::from(got) - want).abs() / want.abs();
        assert!(
            err <= 1e-5,
            "{what}: got {got:e}, want {want:e} (relative error {err:e})"
        );
    };
    let far = [
        (0.01f32, -9644.0f32),
        (1e-6, -1.04e8),
        (1e-30, -1.5e32),
        (1e-35, -1.6e37),
        (0.5, -170.0),
    ];
    for (beta, x) in far {
        let act = Activation::Swish { beta };
        let y: Vec<f32> = act
            .forward(&g.upload(&[x]).unwrap())
            .unwrap()
            .read()
            .unwrap();
        let want = cpu::activation::forward(act, f64::from(x));
        assert!(
            want.abs() >= f64::from(f32::MIN_POSITIVE),
            "{beta} {x}: {want:e}"
        );
        close(&format!("swish beta {beta} at {x}"), y[0], want);
    }
    let inf: Vec<f32> = Activation::Swish { beta: 1e-6 }
        .forward(&g.upload(&[f32::NEG_INFINITY]).unwrap())
        .unwrap()
        .read()
        .unwrap();
    assert_eq!(inf, [0.0]);

    // Learnable Swish, one shared p: dp = dy x^2 sigmoid'(p x) = 1e-10 1e40 / 4.
    let (x, p, dy) = (1e20f32, 1e-25f32, 1e-10f32);
    let (_, dp) = Learnable::Swish
        .backward(
            &g.upload(&[x]).unwrap(),
            &g.upload(&[p]).unwrap(),
            &g.upload(&[dy]).unwrap(),
        )
        .unwrap();
    let want = cpu::fused::learnable_grads(Learnable::Swish, x.into(), p.into()).1 * f64::from(dy);
    close("learnable swish dp", dp.read::<f32>().unwrap()[0], want);

    // Squared ReLU gate: dg = dout a 2g = 1e-25 1e-25 2e20.
    let unit = Gated {
        gate: Activation::ReluSquared,
    };
    let (a, gate, dout) = (1e-25f32, 1e20f32, 1e-25f32);
    let dx: Vec<f32> = unit
        .backward(
            &g.upload_shaped(&[a, gate], &[1, 2]).unwrap(),
            &g.upload_shaped(&[dout], &[1, 1]).unwrap(),
        )
        .unwrap()
        .read()
        .unwrap();
    close(
        "relu_squared-gated dg",
        dx[1],
        f64::from(dout) * f64::from(a) * 2.0 * f64::from(gate),
    );
}

/// The `_into` forms of the gated and learnable ops write into the caller's (poisoned) tensors exactly what the
/// allocating forms return, and refuse an output of the wrong shape with a typed error.
#[test]
fn into_forms_write_what_the_allocating_forms_return() {
    let g = gpu();
    let (rows, cols) = (5, 24);
    let values = |n: usize, salt: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 + salt) % 101) as f32 / 16.0 - 3.0)
            .collect()
    };
    let upload = |v: Vec<f32>, shape: &[usize]| g.upload_shaped(&v, shape).unwrap();
    let bits = |t: &Tensor| -> Vec<u32> {
        t.read::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let poisoned = |shape: &[usize]| common::poisoned(g, shape, DType::F32);

    let x = upload(values(rows * cols, 1), &[rows, cols]);
    let a = upload(values(rows * cols / 2, 2), &[rows, cols / 2]);
    let gate = upload(values(rows * cols / 2, 3), &[rows, cols / 2]);
    let dout = upload(values(rows * cols / 2, 4), &[rows, cols / 2]);
    for unit in Gated::ALL {
        let out = poisoned(&[rows, cols / 2]);
        unit.forward_into(&x, &out).unwrap();
        assert_eq!(
            bits(&out),
            bits(&unit.forward(&x).unwrap()),
            "{unit} forward_into"
        );
        let dx = poisoned(&[rows, cols]);
        unit.backward_into(&x, &dout, &dx).unwrap();
        assert_eq!(
            bits(&dx),
            bits(&unit.backward(&x, &dout).unwrap()),
            "{unit} backward_into"
        );
        let out = poisoned(&[rows, cols / 2]);
        unit.forward_pair_into(&a, &gate, &out).unwrap();
        assert_eq!(
            bits(&out),
            bits(&unit.forward_pair(&a, &gate).unwrap()),
            "{unit} forward_pair_into"
        );
        let (da, dg) = (poisoned(&[rows, cols / 2]), poisoned(&[rows, cols / 2]));
        unit.backward_pair_into(&a, &gate, &dout, &da, &dg).unwrap();
        let (da_new, dg_new) = unit.backward_pair(&a, &gate, &dout).unwrap();
        assert_eq!(
            (bits(&da), bits(&dg)),
            (bits(&da_new), bits(&dg_new)),
            "{unit} backward_pair_into"
        );
        let wrong = poisoned(&[rows, cols]);
        assert!(
            matches!(
                unit.forward_into(&x, &wrong),
                Err(actgpu::Error::ShapeMismatch { .. })
            ),
            "{unit} forward_into a [rows, 2C] output"
        );
    }

    let dy = upload(values(rows * cols, 5), &[rows, cols]);
    for kind in Learnable::ALL {
        for p_len in [1, cols] {
            let p = upload(vec![0.375; p_len], &[p_len]);
            let y = poisoned(&[rows, cols]);
            kind.forward_into(&x, &p, &y).unwrap();
            assert_eq!(
                bits(&y),
                bits(&kind.forward(&x, &p).unwrap()),
                "{kind} forward_into, p [{p_len}]"
            );
            let (dx, dp) = (poisoned(&[rows, cols]), poisoned(&[p_len]));
            kind.backward_into(&x, &p, &dy, &dx, &dp).unwrap();
            let (dx_new, dp_new) = kind.backward(&x, &p, &dy).unwrap();
            assert_eq!(
                (bits(&dx), bits(&dp)),
                (bits(&dx_new), bits(&dp_new)),
                "{kind} backward_into, p [{p_len}]"
            );
            let wrong = poisoned(&[rows, cols + 1]);
            assert!(
                matches!(
                    kind.forward_into(&x, &p, &wrong),
                    Err(actgpu::Error::ShapeMismatch { .. })
                ),
                "{kind} forward_into a wrong shape"
            );
        }
    }
}
