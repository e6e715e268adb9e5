//! Fused kernels against the f64 reference: bias + activation forward, and backward with the bias gradient,
//! on shapes that take the fused path (cols a multiple of 8) and the fallback, in every storage type.

mod common;

use actgpu::verify::{compare, compare_storage, round_to, Rng, F32_ELEMENTWISE};
use actgpu::{cpu, Activation, DType, Gated, Learnable, Tensor};
use common::gpu;

const SHAPES: [(usize, usize); 8] = [
    (1, 1),
    (3, 5),
    (64, 8),
    (257, 24),
    (1000, 13),
    (5, 4096),
    (300, 40),
    (0, 16),
];

fn random(n: usize, scale: f64, dtype: DType, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| round_to(dtype, rng.uniform(-scale, scale)))
        .collect()
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Checks values stored in `dtype`: the f32 tolerance, or 1 ULP of the 16-bit type.
fn check(what: &str, dtype: DType, x: &[f32], got: &[f32], reference: &[f64]) {
    let c = match dtype {
        DType::F32 => compare(x, got, reference, F32_ELEMENTWISE, false),
        _ => compare_storage(dtype, x, got, reference, 1),
    };
    assert!(c.ok(), "{what}: {c:#?}");
}

/// db against the reference, allowing the rounding of an f32 sum (1e-5 of the column's sum of |dx|), of dx to its
/// storage type where the sum reads the stored dx (half an ULP of each term: 2^-11 or 2^-8 of the sum of |dx|),
/// and for a 16-bit db 1 ULP of its type.
fn check_db(
    what: &str,
    dx_t: DType,
    dtype: DType,
    got: &[f32],
    reference: &[f64],
    abs_sums: &[f64],
) {
    let term_rounding = match dx_t {
        DType::F32 => 0.0,
        DType::F16 => 2f64.powi(-11),
        _ => 2f64.powi(-8),
    };
    for (c, ((&g, &r), &s)) in got.iter().zip(reference).zip(abs_sums).enumerate() {
        let ulp = match dtype {
            DType::F32 => 0.0,
            DType::F16 => f64::from(half::f16::from_f64(r).to_f32()).abs() * 2f64.powi(-10) + 6e-8,
            _ => f64::from(half::bf16::from_f64(r).to_f32()).abs() * 2f64.powi(-7),
        };
        let allowed = 1e-6 + (1e-5 + term_rounding) * s + ulp;
        assert!(
            (f64::from(g) - r).abs() <= allowed,
            "{what}: db[{c}] = {g}, expected {r} (allowed {allowed:e})"
        );
    }
}

fn run(act: Activation, rows: usize, cols: usize, x_t: DType, b_t: DType) {
    let g = gpu();
    let what = format!("{act} [{rows}, {cols}] x {x_t:?} bias {b_t:?}");
    let xs = random(rows * cols, 4.0, x_t, (rows * 7919 + cols) as u64);
    let bs = random(cols, 1.0, b_t, cols as u64 + 1);
    let dys = random(rows * cols, 2.0, x_t, (rows + cols) as u64 + 2);
    let x = g.upload_f32_as(&xs, x_t).unwrap();
    let x = Tensor::from_buffer(g, x.buffer().clone(), &[rows, cols], x_t).unwrap();
    let bias = g.upload_f32_as(&bs, b_t).unwrap();
    let dy = g.upload_f32_as(&dys, x_t).unwrap();
    let dy = Tensor::from_buffer(g, dy.buffer().clone(), &[rows, cols], x_t).unwrap();

    let y = act.bias_forward(&x, &bias).unwrap();
    let reference = cpu::fused::bias_forward(act, &widen(&xs), &widen(&bs));
    check(
        &format!("{what} forward"),
        x_t,
        &xs,
        &y.read_f32().unwrap(),
        &reference,
    );

    let (dx, db) = act.bias_backward(&x, &bias, &dy).unwrap();
    let (dx_ref, db_ref) = cpu::fused::bias_backward(act, &widen(&xs), &widen(&bs), &widen(&dys));
    check(
        &format!("{what} dx"),
        x_t,
        &xs,
        &dx.read_f32().unwrap(),
        &dx_ref,
    );
    let sums = cpu::fused::column_abs_sums(&dx_ref, cols.max(1));
    check_db(
        &format!("{what} db"),
        x_t,
        b_t,
        &db.read_f32().unwrap(),
        &db_ref,
        &sums,
    );
}

#[test]
fn bias_activation_matches_the_reference_on_fused_and_fallback_shapes() {
    for (rows, cols) in SHAPES {
        for act in [Activation::Gelu, Activation::Relu, Activation::Tanh] {
            run(act, rows, cols, DType::F32, DType::F32);
        }
    }
}

#[test]
fn bias_activation_every_activation_f32() {
    for act in Activation::ALL {
        run(act, 33, 16, DType::F32, DType::F32);
        run(act, 17, 7, DType::F32, DType::F32);
    }
}

#[test]
fn bias_activation_in_16_bit_types() {
    for (x_t, b_t) in [
        (DType::F16, DType::F32),
        (DType::BF16, DType::BF16),
        (DType::F16, DType::F16),
    ] {
        for (rows, cols) in [(40, 24), (9, 11)] {
            run(Activation::Silu, rows, cols, x_t, b_t);
        }
    }
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

fn run_gated(unit: Gated, rows: usize, half: usize, dtype: DType) {
    let g = gpu();
    let what = format!("{} [{rows}, 2 x {half}] {dtype:?}", unit.name());
    let xs = random(rows * 2 * half, 4.0, dtype, (rows * 31 + half) as u64);
    let douts = random(rows * half, 2.0, dtype, (rows * 17 + half) as u64);
    let x = g.upload_f32_as(&xs, dtype).unwrap();
    let x = Tensor::from_buffer(g, x.buffer().clone(), &[rows, 2 * half], dtype).unwrap();
    let dout = g.upload_f32_as(&douts, dtype).unwrap();
    let dout = Tensor::from_buffer(g, dout.buffer().clone(), &[rows, half], dtype).unwrap();
    let (a, gate) = cpu::fused::split_halves(&widen(&xs), half);
    let (a32, gate32): (Vec<f32>, Vec<f32>) = (
        a.iter().map(|&v| v as f32).collect(),
        gate.iter().map(|&v| v as f32).collect(),
    );

    // Split layout.
    let out = unit.forward(&x).unwrap();
    assert_eq!(out.shape(), [rows, half]);
    let reference = cpu::fused::gated_forward(unit.gate, &a, &gate);
    check(
        &format!("{what} forward"),
        dtype,
        &gate32,
        &out.read_f32().unwrap(),
        &reference,
    );
    let dx = unit.backward(&x, &dout).unwrap();
    let (da, dg) = cpu::fused::gated_backward(unit.gate, &a, &gate, &widen(&douts));
    let dx_ref = cpu::fused::join_halves(&da, &dg, half);
    check(
        &format!("{what} backward"),
        dtype,
        &xs,
        &dx.read_f32().unwrap(),
        &dx_ref,
    );

    // Pair layout.
    let at = g.upload_f32_as(&a32, dtype).unwrap();
    let gt = g.upload_f32_as(&gate32, dtype).unwrap();
    let dt = g.upload_f32_as(&douts, dtype).unwrap();
    let out = unit.forward_pair(&at, &gt).unwrap();
    check(
        &format!("{what} forward_pair"),
        dtype,
        &gate32,
        &out.read_f32().unwrap(),
        &reference,
    );
    let (dat, dgt) = unit.backward_pair(&at, &gt, &dt).unwrap();
    check(
        &format!("{what} da"),
        dtype,
        &a32,
        &dat.read_f32().unwrap(),
        &da,
    );
    check(
        &format!("{what} dg"),
        dtype,
        &gate32,
        &dgt.read_f32().unwrap(),
        &dg,
    );
}

#[test]
fn gated_units_match_the_reference_in_both_layouts() {
    for unit in Gated::ALL {
        for (rows, half) in [(1, 1), (3, 5), (17, 8), (64, 33), (2, 1000)] {
            run_gated(unit, rows, half, DType::F32);
        }
    }
}

#[test]
fn gated_units_in_16_bit_types() {
    for dtype in [DType::F16, DType::BF16] {
        for (rows, half) in [(5, 2), (13, 24), (3, 250)] {
            run_gated(Gated::SWIGLU, rows, half, dtype);
            run_gated(Gated::GEGLU, rows, half, dtype);
        }
    }
}

#[test]
fn gated_shape_errors_are_typed() {
    let g = gpu();
    let odd = g.upload_shaped(&[0.0f32; 6], &[2, 3]).unwrap();
    assert!(matches!(
        Gated::GLU.forward(&odd),
        Err(actgpu::Error::InvalidArgument { .. })
    ));
    let x = g.upload_f32_as(&[0.0; 6], DType::F16).unwrap();
    let x = Tensor::from_buffer(g, x.buffer().clone(), &[1, 6], DType::F16).unwrap();
    let dout = g.upload_f32_as(&[0.0; 3], DType::F16).unwrap();
    let dout = Tensor::from_buffer(g, dout.buffer().clone(), &[1, 3], DType::F16).unwrap();
    assert!(matches!(
        Gated::GLU.backward(&x, &dout),
        Err(actgpu::Error::InvalidArgument { .. })
    ));
}

fn run_learnable(kind: Learnable, rows: usize, cols: usize, shared: bool, dtype: DType) {
    let g = gpu();
    let what = format!("{} [{rows}, {cols}] shared={shared} {dtype:?}", kind.name());
    let xs = random(rows * cols, 4.0, dtype, (rows * 13 + cols) as u64);
    let dys = random(rows * cols, 2.0, dtype, (rows * 7 + cols) as u64);
    let n = if shared { 1 } else { cols };
    let ps: Vec<f32> = random(n, 1.0, DType::F32, n as u64)
        .iter()
        .map(|v| v + 1.25)
        .collect();
    let x = g.upload_f32_as(&xs, dtype).unwrap();
    let x = Tensor::from_buffer(g, x.buffer().clone(), &[rows, cols], dtype).unwrap();
    let dy = g.upload_f32_as(&dys, dtype).unwrap();
    let dy = Tensor::from_buffer(g, dy.buffer().clone(), &[rows, cols], dtype).unwrap();
    let p = g.upload(&ps).unwrap();

    let y = kind.forward(&x, &p).unwrap();
    let reference = cpu::fused::learnable_forward(kind, &widen(&xs), &widen(&ps));
    check(
        &format!("{what} forward"),
        dtype,
        &xs,
        &y.read_f32().unwrap(),
        &reference,
    );

    let (dx, dp) = kind.backward(&x, &p, &dy).unwrap();
    let (dx_ref, dp_ref) =
        cpu::fused::learnable_backward(kind, &widen(&xs), &widen(&ps), &widen(&dys));
    check(
        &format!("{what} dx"),
        dtype,
        &xs,
        &dx.read_f32().unwrap(),
        &dx_ref,
    );
    // dp's rounding scale: the sum of |dy df/dp| per parameter.
    let mut scale = vec![0.0; n];
    for (i, (&x, &d)) in xs.iter().zip(&dys).enumerate() {
        let (_, gp) = cpu::fused::learnable_grads(kind, x.into(), f64::from(ps[i % cols % n]));
        scale[i % cols % n] += (f64::from(d) * gp).abs();
    }
    check_db(
        &format!("{what} dp"),
        DType::F32,
        DType::F32,
        &dp.read_f32().unwrap(),
        &dp_ref,
        &scale,
    );
}

#[test]
fn learnable_activations_match_the_reference() {
    for kind in Learnable::ALL {
        for (rows, cols) in [(1, 1), (7, 3), (33, 16), (100, 24), (5, 13)] {
            for shared in [true, false] {
                run_learnable(kind, rows, cols, shared, DType::F32);
            }
        }
        run_learnable(kind, 20, 16, false, DType::F16);
        run_learnable(kind, 9, 10, true, DType::BF16);
    }
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
