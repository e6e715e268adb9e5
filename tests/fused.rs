//! Fused kernels against the f64 reference: bias + activation forward, and backward with the bias gradient,
//! on shapes that take the fused path (cols a multiple of 8) and the fallback, in every storage type.

mod common;

use actgpu::verify::{compare, compare_storage, round_to, Rng, F32_ELEMENTWISE};
use actgpu::{cpu, Activation, DType, Tensor};
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
