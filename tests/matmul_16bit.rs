//! Matrix products and the dense layer with 16-bit operands and outputs: every product form on every kernel with
//! f16 and bf16 operands (and mixed with f32), outputs in f32, f16 or bf16, against the f64 reference computed from
//! the *decoded* 16-bit inputs, so the only errors are the f32 accumulation and the one final rounding. Shapes: odd
//! sizes, 1, tile multiples and 0 in each dimension. Outputs are poisoned before each kernel runs (16-bit outputs
//! with a signalling NaN no kernel stores).

mod common;

use actgpu::ops::matmul::{record_form, Form, MatmulKernel};
use actgpu::verify::compare_bounded;
use actgpu::verify::fused::random_values;
use actgpu::{cpu, Activation, DType, Dense, DzMode, Error, Gpu, Tensor};
use common::products::{
    assert_ok, dense_backward_bounds, dims, dot_bound, reference, KERNELS, LIPSCHITZ,
};
use common::{gpu, poisoned};

/// `STORE_16`: a value within `e` of `want` in f32, then rounded once to nearest in `dtype`, is within
/// `e + u_t (|want| + e) + s_t` of `want`, with `u_t` the type's unit roundoff (f16 2^-11, bf16 2^-8, f32 0: no
/// second rounding) and `s_t` half its smallest subnormal spacing (f16 2^-25; bf16 shares f32's range and `e`
/// already holds 1e-6 for it).
fn stored(dtype: DType, e: f64, want: f64) -> f64 {
    let (u, s) = match dtype {
        DType::F16 => (2f64.powi(-11), 2f64.powi(-25)),
        DType::BF16 => (2f64.powi(-8), 0.0),
        _ => (0.0, 0.0),
    };
    e + u * (want.abs() + e) + s
}

/// A `[rows, cols]` tensor of `dtype` holding random values exactly representable in it, and those values.
fn random(
    g: &Gpu,
    rows: usize,
    cols: usize,
    scale: f64,
    dtype: DType,
    seed: u64,
) -> (Tensor, Vec<f64>) {
    let v = random_values(rows * cols, scale, dtype, seed);
    let t = g.upload_f32_as(&v, dtype).unwrap();
    let t = Tensor::from_buffer(g, t.buffer().clone(), &[rows, cols], dtype).unwrap();
    let decoded: Vec<f64> = t
        .read_f32()
        .unwrap()
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    // The reference's inputs are what the kernel decodes; the generator already rounded, so they agree.
    assert_eq!(decoded.len(), v.len());
    (t, decoded)
}

/// Odd sizes, 1, tile multiples and 0 in each dimension, and shapes the generated kernels take (multiples of 4
/// with tails of their 32-row block, 32-column block and K chunk; (36, 68, 10) with 10 outputs, whose widened W
/// and dZ they load as scalars).
const SHAPES: [(usize, usize, usize); 11] = [
    (1, 1, 1),
    (3, 5, 7),
    (64, 64, 64),
    (65, 33, 17),
    (0, 4, 4),
    (4, 0, 4),
    (4, 4, 0),
    (9, 130, 70),
    (36, 68, 20),
    (33, 260, 12),
    (36, 68, 10),
];

/// `(A, B, C)` storage types, cycled over the shapes so every form on every kernel meets f16 and bf16 in both
/// operands and in the output.
const COMBOS: [(DType, DType, DType); 8] = [
    (DType::F16, DType::F16, DType::F32),
    (DType::BF16, DType::BF16, DType::F32),
    (DType::F16, DType::F32, DType::F16),
    (DType::F32, DType::BF16, DType::BF16),
    (DType::BF16, DType::F16, DType::F32),
    (DType::F16, DType::F16, DType::F16),
    (DType::BF16, DType::BF16, DType::BF16),
    (DType::F32, DType::F16, DType::F32),
];

const FORMS: [Form; 3] = [Form::AB, Form::AtB, Form::ABt];

#[test]
fn every_form_with_16_bit_operands_matches_the_decoded_reference() {
    let g = gpu();
    for kernel in KERNELS {
        for (f, form) in FORMS.into_iter().enumerate() {
            for (s, shape) in SHAPES.into_iter().enumerate() {
                let (a_t, b_t, c_t) = COMBOS[(s + 3 * f) % COMBOS.len()];
                let (ash, bsh, osh, inner) = dims(form, shape);
                let (a, av) = random(g, ash[0], ash[1], 1.0, a_t, 10 + s as u64);
                let (b, bv) = random(g, bsh[0], bsh[1], 2.0, b_t, 20 + s as u64);
                let out = poisoned(g, &osh, c_t);
                g.submit_and_wait("test", |enc| record_form(kernel, enc, form, &a, &b, &out))
                    .unwrap();
                let got = out.read_f32().unwrap();
                let want = reference(form, &av, &bv, shape);
                let abs = reference(form, &cpu::dense::abs(&av), &cpu::dense::abs(&bv), shape);
                let bounds: Vec<f64> = abs
                    .iter()
                    .zip(&want)
                    .map(|(&s, &w)| stored(c_t, dot_bound(inner, s), w))
                    .collect();
                let what = format!("{kernel:?} {form:?} {shape:?} {a_t:?} x {b_t:?} -> {c_t:?}");
                assert_eq!(got.len(), osh[0] * osh[1], "{what}");
                assert_ok(&what, compare_bounded("store_16", &got, &want, &bounds));
            }
        }
    }
}

/// Every pairing of f16 and bf16 operands on the adapter's own kernel, at a shape every kernel takes.
#[test]
fn every_operand_pairing_on_the_default_kernel() {
    let g = gpu();
    let types = [DType::F32, DType::F16, DType::BF16];
    let shape = (36, 68, 20);
    for form in FORMS {
        for a_t in types {
            for b_t in types {
                let (ash, bsh, _, inner) = dims(form, shape);
                let (a, av) = random(g, ash[0], ash[1], 1.0, a_t, 3);
                let (b, bv) = random(g, bsh[0], bsh[1], 1.0, b_t, 4);
                let out = match form {
                    Form::AB => actgpu::matmul(&a, &b),
                    Form::AtB => actgpu::matmul_at_b(&a, &b),
                    Form::ABt => actgpu::matmul_a_bt(&a, &b),
                }
                .unwrap();
                let got: Vec<f32> = out.read().unwrap();
                let want = reference(form, &av, &bv, shape);
                let abs = reference(form, &cpu::dense::abs(&av), &cpu::dense::abs(&bv), shape);
                let bounds: Vec<f64> = abs.iter().map(|&s| dot_bound(inner, s)).collect();
                let what = format!("{form:?} {a_t:?} x {b_t:?}");
                assert_ok(&what, compare_bounded("dot_f32", &got, &want, &bounds));
            }
        }
    }
}

#[test]
fn dense_forward_with_16_bit_inputs_and_outputs() {
    let g = gpu();
    let acts = [Activation::Identity, Activation::Gelu, Activation::Tanh];
    for kernel in KERNELS {
        for (s, shape) in SHAPES.into_iter().enumerate() {
            let (m, k, n) = shape;
            let act = acts[s % acts.len()];
            let (x_t, w_t, y_t) = COMBOS[(s + 1) % COMBOS.len()];
            let (b_t, z_t) = [(DType::F32, DType::F32), (DType::F16, DType::BF16)][s % 2];
            let (x, xv) = random(g, m, k, 1.0, x_t, s as u64);
            let (w, wv) = random(g, k, n, 1.0, w_t, 50 + s as u64);
            let (b, bv) = random(g, 1, n, 1.0, b_t, 90 + s as u64);
            let b = Tensor::from_buffer(g, b.buffer().clone(), &[n], b_t).unwrap();
            let (y, z) = (poisoned(g, &[m, n], y_t), poisoned(g, &[m, n], z_t));
            let dense = Dense {
                kernel: Some(kernel),
                ..Dense::new(act)
            };
            g.submit_and_wait("test", |enc| {
                dense.record_forward(enc, &x, &w, Some(&b), &y, Some(&z))
            })
            .unwrap();
            let (want_y, want_z) = cpu::dense::dense_forward(act, &xv, &wv, Some(&bv), shape);
            let abs = cpu::dense::matmul(&cpu::dense::abs(&xv), &cpu::dense::abs(&wv), m, k, n);
            let ze: Vec<f64> = abs.iter().map(|&s| dot_bound(k, s)).collect();
            let zb: Vec<f64> = ze
                .iter()
                .zip(&want_z)
                .map(|(&e, &w)| stored(z_t, e, w))
                .collect();
            let yb: Vec<f64> = ze
                .iter()
                .zip(&want_y)
                .map(|(&e, &w)| stored(y_t, 1e-6 + 1e-5 * w.abs() + LIPSCHITZ * e, w))
                .collect();
            let what = format!(
                "{kernel:?} {act} {shape:?} x {x_t:?} w {w_t:?} b {b_t:?} -> y {y_t:?} z {z_t:?}"
            );
            let (gz, gy) = (z.read_f32().unwrap(), y.read_f32().unwrap());
            assert_ok(&what, compare_bounded("store_16", &gz, &want_z, &zb));
            assert_ok(&what, compare_bounded("store_16", &gy, &want_y, &yb));
        }
    }
}

#[test]
fn dense_backward_with_16_bit_inputs() {
    let g = gpu();
    let cases = [
        (MatmulKernel::Direct, DzMode::Fused),
        (MatmulKernel::Tiled, DzMode::Fused),
        (MatmulKernel::Tiled32, DzMode::Fused),
        (MatmulKernel::TiledWide, DzMode::Fused),
        (MatmulKernel::Direct, DzMode::Separate),
        (MatmulKernel::Subgroup, DzMode::Separate),
        (MatmulKernel::Vec4, DzMode::Separate),
    ];
    for (c, (kernel, mode)) in cases.into_iter().enumerate() {
        for (s, shape) in SHAPES.into_iter().enumerate() {
            let (m, k, n) = shape;
            let act = [Activation::Relu, Activation::Gelu][s % 2];
            let (x_t, w_t) = [(DType::F16, DType::F16), (DType::BF16, DType::BF16)][(s + c) % 2];
            // Z and dY in 16 bits too on every other shape; the gradients in 16 bits on every third.
            let zdy_t = [DType::F32, x_t][s % 2];
            let grad_t = [DType::F32, DType::F32, DType::BF16][s % 3];
            let (x, xv) = random(g, m, k, 1.0, x_t, s as u64);
            let (w, wv) = random(g, k, n, 1.0, w_t, 40 + s as u64);
            let (z, zv) = random(g, m, n, 3.0, zdy_t, 70 + s as u64);
            let (dy, dyv) = random(g, m, n, 1.0, zdy_t, 80 + s as u64);
            let (dx, dw, db) = (
                poisoned(g, &[m, k], grad_t),
                poisoned(g, &[k, n], grad_t),
                poisoned(g, &[n], grad_t),
            );
            let dense = Dense {
                activation: act,
                kernel: Some(kernel),
                dz: mode,
            };
            g.submit_and_wait("test", |enc| {
                dense.record_backward(enc, &x, &w, &z, &dy, &dw, Some(&db), Some(&dx))
            })
            .unwrap();
            let want = cpu::dense::dense_backward(act, &xv, &wv, &zv, &dyv, shape);
            // The f32 bounds (as tests/dense.rs), widened where the gradients are stored in 16 bits.
            let f32_bound = dense_backward_bounds(act, &xv, &wv, &zv, &dyv, shape);
            let stored_bounds = |b: &[f64], want: &[f64]| -> Vec<f64> {
                b.iter()
                    .zip(want)
                    .map(|(&b, &w)| stored(grad_t, b, w))
                    .collect()
            };
            let bw = stored_bounds(&f32_bound.dw, &want.dw);
            let bx = stored_bounds(&f32_bound.dx, &want.dx);
            let bb = stored_bounds(&f32_bound.db, &want.db);
            let what = format!(
                "{kernel:?} {mode:?} {act} {shape:?} x {x_t:?} w {w_t:?} z/dy {zdy_t:?} grads {grad_t:?}"
            );
            for (name, t, want, b) in [
                ("dW", &dw, &want.dw, &bw),
                ("dX", &dx, &want.dx, &bx),
                ("db", &db, &want.db, &bb),
            ] {
                let got = t.read_f32().unwrap();
                assert_ok(
                    &format!("{name} {what}"),
                    compare_bounded("store_16", &got, want, b),
                );
            }
        }
    }
}

#[test]
fn unsupported_dtype_combinations_are_typed_errors() {
    let g = gpu();
    let (x, _) = random(g, 4, 3, 1.0, DType::F16, 1);
    let (w, _) = random(g, 3, 2, 1.0, DType::BF16, 2);
    let dense = Dense::new(Activation::Relu);
    let (_, z) = dense.forward_train(&x, &w, None).unwrap();
    let z16 = z.to_dtype(DType::F16).unwrap();
    let dy = g.zeros(&[4, 2], DType::F32).unwrap();
    let dw = g.zeros(&[3, 2], DType::F32).unwrap();
    // The counter tensor: [dead, saturated] and one flag per unit of Z.
    let stats = g.zeros(&[2 + 2], DType::F32).unwrap();
    // The dead / saturated counts read Z and dY as f32 (shaders/dz_stats.wgsl), in both dZ modes, and for the
    // identity too, whose separate mode takes a shortcut (dZ is dY): a 16-bit Z, or a 16-bit dY (which only the
    // separate pass reads for them, one rule for both modes).
    let dy16 = dy.to_dtype(DType::F16).unwrap();
    let operands = [(&z16, &dy), (&z, &dy16)];
    let mut cases = Vec::new();
    for mode in [DzMode::Separate, DzMode::Fused] {
        for act in [Activation::Relu, Activation::Identity] {
            cases.extend(operands.map(|zd| (mode, act, zd)));
        }
    }
    for (mode, act, (z, dy)) in cases {
        let d = Dense {
            dz: mode,
            ..Dense::new(act)
        };
        let mut enc = g.device().create_command_encoder(&Default::default());
        let r =
            d.record_backward_with_stats(&mut enc, &x, &w, z, dy, &dw, None, None, Some(&stats));
        assert!(
            matches!(
                r,
                Err(Error::DTypeMismatch {
                    expected: DType::F32,
                    got: DType::F16,
                    ..
                })
            ),
            "{mode:?} {act}: {r:?}"
        );
    }
    // The counter tensor is f32-typed whatever the layer's types.
    let stats16 = g.zeros(&[2 + 2], DType::F16).unwrap();
    let mut enc = g.device().create_command_encoder(&Default::default());
    let r = dense.record_backward_with_stats(
        &mut enc,
        &x,
        &w,
        &z,
        &dy,
        &dw,
        None,
        None,
        Some(&stats16),
    );
    assert!(matches!(r, Err(Error::DTypeMismatch { .. })), "{r:?}");
    // Shapes are still checked first, whatever the types.
    let (bad, _) = random(g, 5, 2, 1.0, DType::F16, 3);
    assert!(matches!(
        actgpu::matmul(&x, &bad),
        Err(Error::ShapeMismatch { op: "matmul", .. })
    ));
}
