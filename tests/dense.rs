//! Matrix products and the dense layer against the f64 reference (`actgpu::cpu::dense`): every product form on
//! both kernels, the fused forward with several activations, the backward with dZ fused and separate, on odd
//! sizes, 1, tile multiples and 0 in each dimension. Outputs are poisoned before each kernel runs.

mod common;

use actgpu::ops::matmul::{record_form, Form, MatmulKernel};
use actgpu::verify::fused::random_values;
use actgpu::verify::training::{check_positive_product, deep_shape};
use actgpu::verify::{compare_bounded, POISON};
use actgpu::{cpu, Activation, DType, Dense, DzMode, Error, Gpu, Tensor};
use common::products::{
    assert_ok, dense_backward_bounds, dims, dot_bound, reference, KERNELS, LIPSCHITZ,
};
use common::{gpu, widen};

fn random(g: &Gpu, rows: usize, cols: usize, scale: f64, seed: u64) -> (Tensor, Vec<f64>) {
    let v = random_values(rows * cols, scale, DType::F32, seed);
    (g.upload_shaped(&v, &[rows, cols]).unwrap(), widen(&v))
}

fn poisoned(g: &Gpu, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    g.upload_shaped(&vec![POISON; n], shape).unwrap()
}

/// Odd sizes, 1, tile multiples and 0 in each dimension; (36, 68, 20) and (33, 260, 12) have every size the
/// subgroup kernel's `vec4` loads need (multiples of 4) with tails of its 32-row block, its 32-column block and
/// its K chunk; (100, 12, 24) and (129, 6, 16) put 100 and 129 rows of a width that is a multiple of 8 on either
/// side of the separate backward's one-dispatch dZ and db (at most 128 rows), as (64, 64, 64) does; (20, 148, 132)
/// gives the GL kernel 2 column blocks per invocation in every form, with a last workgroup of 4 columns, as
/// (64, 64, 64) does with none left over. (70, 36, 10), (37, 20, 45) and (9, 8, 67) have outputs that are not a
/// multiple of 4 wide, where `X W` and `X^T dZ` on the generated kernels load W and dZ as scalars
/// (`BLoad::Scalar`): a classifier's 10 outputs over several row blocks with a K tail, a second workgroup with 13
/// of its 32 columns in range, and a last GL workgroup whose second block of 4 columns per invocation lies wholly
/// past N.
const SHAPES: [(usize, usize, usize); 17] = [
    (1, 1, 1),
    (3, 5, 7),
    (64, 64, 64),
    (65, 33, 17),
    (0, 4, 4),
    (4, 0, 4),
    (4, 4, 0),
    (256, 784, 40),
    (9, 130, 70),
    (36, 68, 20),
    (33, 260, 12),
    (100, 12, 24),
    (129, 6, 16),
    (20, 148, 132),
    (70, 36, 10),
    (37, 20, 45),
    (9, 8, 67),
];

/// One product of `form` on `kernel` with random operands of `shape` (seeded by `seed`) into a poisoned output,
/// against the f64 reference within the dot-product bound; `what` names it in a failure.
fn check_product(
    g: &Gpu,
    kernel: MatmulKernel,
    form: Form,
    shape: (usize, usize, usize),
    seed: u64,
    what: &str,
) {
    let (ash, bsh, osh, inner) = dims(form, shape);
    let (a, av) = random(g, ash[0], ash[1], 1.0, 10 + seed);
    let (b, bv) = random(g, bsh[0], bsh[1], 2.0, 20 + seed);
    let out = poisoned(g, &osh);
    g.submit_and_wait("test", |enc| record_form(kernel, enc, form, &a, &b, &out))
        .unwrap();
    let got: Vec<f32> = out.read().unwrap();
    let want = reference(form, &av, &bv, shape);
    let abs = reference(form, &cpu::dense::abs(&av), &cpu::dense::abs(&bv), shape);
    let bounds: Vec<f64> = abs.iter().map(|&s| dot_bound(inner, s)).collect();
    let what = format!("{kernel:?} {form:?} {shape:?}{what}");
    assert_eq!(got.len(), osh[0] * osh[1], "{what}");
    assert_ok(&what, compare_bounded("dot_f32", &got, &want, &bounds));
}

#[test]
fn every_product_form_matches_the_reference_on_every_kernel() {
    let g = gpu();
    for kernel in KERNELS {
        for form in [Form::AB, Form::AtB, Form::ABt] {
            for (s, shape) in SHAPES.into_iter().enumerate() {
                check_product(g, kernel, form, shape, s as u64, "");
            }
        }
    }
}

/// Batches taller than the grid's per-dimension limit of row blocks: the rows continue along z on every kernel
/// and form (a context limited to 32 workgroups per dimension, so a few thousand rows need it).
#[test]
fn tall_products_continue_the_row_grid_along_z() {
    let g = common::small_grid_gpu();
    for kernel in KERNELS {
        for form in [Form::AB, Form::AtB, Form::ABt] {
            for (s, shape) in [(4101, 8, 12), (4099, 5, 7)].into_iter().enumerate() {
                check_product(
                    &g,
                    kernel,
                    form,
                    shape,
                    20 + s as u64,
                    " on a 32-workgroup grid",
                );
            }
        }
    }
}

/// Products deeper than a software driver lets one invocation loop (llvmpipe stops an invocation's loops after
/// 65,535 iterations in all, `Gpu::loop_limited`): sums over 70,000 and 60,000 terms (the deepest kept on the
/// fast kernels) on every kernel and form (K of `X W`, the batch of `X^T dZ`, the width of `dZ W^T`:
/// `deep_shape`), and over 1,000,000 (more than 16 splits of the loop-limited depth) in `X^T dZ` on the default
/// kernel. The operands are 1/4 or 1/2, so every partial
/// sum is exact in f32 and the result must equal the f64 product: a product cut short, or one 16-deep chunk
/// dropped or doubled at a split boundary, fails.
#[test]
fn deep_products_are_not_cut_short() {
    let g = gpu();
    // 60,000 is the deepest a loop-limited adapter keeps on the fast kernels (`LOOP_LIMITED_K`): this checks its
    // margin on the driver at hand.
    let deep = actgpu::ops::matmul::LOOP_LIMITED_K as usize;
    let runs = KERNELS
        .iter()
        .flat_map(|&k| {
            [Form::AB, Form::AtB, Form::ABt]
                .into_iter()
                .flat_map(move |f| [(k, f, deep_shape(f, 70_000)), (k, f, deep_shape(f, deep))])
        })
        .chain([(MatmulKernel::for_gpu(g), Form::AtB, (1_000_000, 2, 3))]);
    for (s, (kernel, form, shape)) in runs.enumerate() {
        let check = check_positive_product(g, kernel, form, shape, 40 + 20 * s as u64).unwrap();
        assert_ok(&format!("{kernel:?} {form:?} {shape:?}"), check);
    }
}

#[test]
fn convenience_products_allocate_and_agree() {
    let g = gpu();
    let (x, xv) = random(g, 5, 3, 1.0, 1);
    let (w, wv) = random(g, 3, 4, 1.0, 2);
    let y = actgpu::matmul(&x, &w).unwrap();
    assert_eq!(y.shape(), [5, 4]);
    let want = cpu::dense::matmul(&xv, &wv, 5, 3, 4);
    let got: Vec<f32> = y.read().unwrap();
    let bounds = vec![dot_bound(3, 10.0); 20];
    assert_ok("matmul", compare_bounded("dot_f32", &got, &want, &bounds));
    assert_eq!(actgpu::matmul_at_b(&x, &y).unwrap().shape(), [3, 4]);
    assert_eq!(actgpu::matmul_a_bt(&y, &w).unwrap().shape(), [5, 3]);
}

const ACTS: [Activation; 6] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Gelu,
    Activation::Silu,
    Activation::Tanh,
    Activation::Sigmoid,
];

#[test]
fn dense_forward_fuses_bias_and_activation() {
    let g = gpu();
    for kernel in KERNELS {
        for (s, shape) in SHAPES.into_iter().enumerate() {
            let (m, k, n) = shape;
            for (ai, act) in ACTS.into_iter().enumerate() {
                let with_bias = ai % 3 != 2;
                let (x, xv) = random(g, m, k, 1.0, s as u64);
                let (w, wv) = random(g, k, n, 1.0, 50 + s as u64);
                let (b, bv) = random(g, 1, n, 1.0, 90 + ai as u64);
                let b = Tensor::from_buffer(g, b.buffer().clone(), &[n], DType::F32).unwrap();
                let bias = with_bias.then_some(&b);
                let (y, z) = (poisoned(g, &[m, n]), poisoned(g, &[m, n]));
                let dense = Dense {
                    kernel: Some(kernel),
                    ..Dense::new(act)
                };
                g.submit_and_wait("test", |enc| {
                    dense.record_forward(enc, &x, &w, bias, &y, Some(&z))
                })
                .unwrap();
                let (want_y, want_z) =
                    cpu::dense::dense_forward(act, &xv, &wv, with_bias.then_some(&bv[..]), shape);
                let abs = cpu::dense::matmul(&cpu::dense::abs(&xv), &cpu::dense::abs(&wv), m, k, n);
                let zb: Vec<f64> = abs.iter().map(|&s| dot_bound(k, s)).collect();
                let yb: Vec<f64> = zb
                    .iter()
                    .zip(&want_y)
                    .map(|(&e, &y)| 1e-6 + 1e-5 * y.abs() + LIPSCHITZ * e)
                    .collect();
                let what = format!("{kernel:?} {act} {shape:?} bias {with_bias}");
                let (gz, gy): (Vec<f32>, Vec<f32>) = (z.read().unwrap(), y.read().unwrap());
                assert_ok(&what, compare_bounded("dot_f32", &gz, &want_z, &zb));
                assert_ok(&what, compare_bounded("dense_y", &gy, &want_y, &yb));
            }
        }
    }
}

#[test]
fn dense_backward_matches_the_reference_fused_and_separate() {
    let g = gpu();
    let cases = [
        (MatmulKernel::Direct, DzMode::Fused),
        (MatmulKernel::Direct, DzMode::Separate),
        (MatmulKernel::Tiled, DzMode::Fused),
        (MatmulKernel::Tiled32, DzMode::Fused),
        (MatmulKernel::TiledWide, DzMode::Fused),
        (MatmulKernel::Subgroup, DzMode::Separate),
        (MatmulKernel::Vec4, DzMode::Separate),
    ];
    for (kernel, mode) in cases {
        for (s, shape) in SHAPES.into_iter().enumerate() {
            let (m, k, n) = shape;
            for act in [Activation::Relu, Activation::Gelu, Activation::Tanh] {
                let (x, xv) = random(g, m, k, 1.0, s as u64);
                let (w, wv) = random(g, k, n, 1.0, 40 + s as u64);
                let (z, zv) = random(g, m, n, 3.0, 70 + s as u64);
                let (dy, dyv) = random(g, m, n, 1.0, 80 + s as u64);
                let (dx, dw, db) = (
                    poisoned(g, &[m, k]),
                    poisoned(g, &[k, n]),
                    poisoned(g, &[n]),
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
                let bound = dense_backward_bounds(act, &xv, &wv, &zv, &dyv, shape);
                let what = format!("{kernel:?} {mode:?} {act} {shape:?}");
                let gw: Vec<f32> = dw.read().unwrap();
                let gx: Vec<f32> = dx.read().unwrap();
                let gb: Vec<f32> = db.read().unwrap();
                assert_ok(
                    &format!("dW {what}"),
                    compare_bounded("grad", &gw, &want.dw, &bound.dw),
                );
                assert_ok(
                    &format!("dX {what}"),
                    compare_bounded("grad", &gx, &want.dx, &bound.dx),
                );
                assert_ok(
                    &format!("db {what}"),
                    compare_bounded("grad", &gb, &want.db, &bound.db),
                );
            }
        }
    }
}

#[test]
fn dense_convenience_calls_round_trip() {
    let g = gpu();
    let (x, _) = random(g, 6, 5, 1.0, 1);
    let (w, _) = random(g, 5, 3, 1.0, 2);
    let b = g.upload(&[0.1f32, 0.2, 0.3]).unwrap();
    let dense = Dense::new(Activation::Gelu);
    let y = dense.forward(&x, &w, Some(&b)).unwrap();
    let (y2, z) = dense.forward_train(&x, &w, Some(&b)).unwrap();
    assert_eq!(y.read::<f32>().unwrap(), y2.read::<f32>().unwrap());
    let grads = dense.backward(&x, &w, &z, &y).unwrap();
    assert_eq!(
        (grads.dx.shape(), grads.dw.shape(), grads.db.shape()),
        (&[6, 5][..], &[5, 3][..], &[3][..])
    );
}

#[test]
fn bad_shapes_and_types_are_typed_errors() {
    let g = gpu();
    // A dimension past u32 on tensors with no elements: refused, not wrapped to a [4, 4] product.
    let empty = g.zeros(&[4, 0], DType::F32).unwrap();
    let wide = g.zeros(&[0, (1 << 32) + 4], DType::F32).unwrap();
    assert!(matches!(
        actgpu::matmul(&empty, &wide),
        Err(Error::LimitExceeded { .. })
    ));
    let (x, _) = random(g, 4, 3, 1.0, 1);
    let (w, _) = random(g, 5, 2, 1.0, 2);
    assert!(matches!(
        actgpu::matmul(&x, &w),
        Err(Error::ShapeMismatch { op: "matmul", .. })
    ));
    assert!(matches!(
        actgpu::matmul_at_b(&x, &w),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        actgpu::matmul_a_bt(&x, &w),
        Err(Error::ShapeMismatch { .. })
    ));
    let flat = g.upload(&[1.0f32; 3]).unwrap();
    assert!(matches!(
        actgpu::matmul(&x, &flat),
        Err(Error::InvalidArgument { .. })
    ));
    let half = g.upload_f32_as(&[1.0; 6], DType::F16).unwrap();
    let half = Tensor::from_buffer(g, half.buffer().clone(), &[3, 2], DType::F16).unwrap();
    // 16-bit operands are products like any other (tests/matmul_16bit.rs); the shapes still have to agree.
    assert_eq!(actgpu::matmul(&x, &half).unwrap().shape(), [4, 2]);

    let (w, _) = random(g, 3, 2, 1.0, 3);
    let dense = Dense::new(Activation::Relu);
    let bad_bias = g.upload(&[0.0f32; 3]).unwrap();
    assert!(matches!(
        dense.forward(&x, &w, Some(&bad_bias)),
        Err(Error::ShapeMismatch { .. })
    ));
    let y = g.zeros(&[4, 3], DType::F32).unwrap();
    let mut enc = g.device().create_command_encoder(&Default::default());
    assert!(matches!(
        dense.record_forward(&mut enc, &x, &w, None, &y, None),
        Err(Error::ShapeMismatch { .. })
    ));
    let (y, z) = dense.forward_train(&x, &w, None).unwrap();
    assert!(matches!(
        dense.record_forward(&mut enc, &x, &w, None, &y, Some(&y)),
        Err(Error::InvalidArgument { .. })
    ));
    let dw_bad = g.zeros(&[2, 3], DType::F32).unwrap();
    assert!(matches!(
        dense.record_backward(&mut enc, &x, &w, &z, &y, &dw_bad, None, None),
        Err(Error::ShapeMismatch { .. })
    ));
    let dw = g.zeros(&[3, 2], DType::F32).unwrap();
    assert!(matches!(
        dense.record_backward(&mut enc, &x, &w, &z, &y, &dw, None, Some(&dw)),
        Err(Error::ShapeMismatch { .. }) | Err(Error::InvalidArgument { .. })
    ));
    let bad_act = Dense::new(Activation::Celu { alpha: 0.0 });
    assert!(matches!(
        bad_act.forward(&x, &w, None),
        Err(Error::InvalidArgument { .. })
    ));
}
