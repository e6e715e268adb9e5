//! Edge values through the training kernels, against the f64 reference (`actgpu::cpu`): the three product forms on
//! every matmul kernel (through `record_form`, `form_with` and the convenience calls), the dense layer forward
//! (bias, activation, stored Z) and backward (dW, db, dX, dZ fused and separate), the MSE loss and its gradient,
//! and the optimizer updates, with 0, -0, subnormals, tiny and huge magnitudes, +-3e38, +-f32::MAX, +-inf and NaN
//! mixed into seeded random operands. Outputs are poisoned before each kernel runs (an unwritten element fails).
//!
//! Each output must be NaN where the reference is NaN, the same infinity where the reference rounded to f32 is
//! infinite, and otherwise within the bound named at its check (`compare_bounded`). The operands are chosen so
//! that the reference's class is the f32 result's too (`assert_well_defined`); where the f32 kernel legitimately
//! differs from f64 (an optimizer's f32 state past f32::MAX), the documented f32 result is asserted instead.

mod common;

use actgpu::ops::matmul::{form_with, record_form, Form, MatmulKernel};
use actgpu::verify::fused::random_values;
use actgpu::verify::training::{loss_bound, optimizer_settings};
use actgpu::verify::{compare_bounded, flush_subnormal, POISON};
use actgpu::{cpu, Activation, DType, Dense, DzMode, Gpu, Loss, Optimizer, Targets, Tensor};
use common::products::{
    assert_ok, dense_backward_bounds, dims, dot_bound, reference, KERNELS, LIPSCHITZ, U,
};
use common::{gpu, widen};

const INF: f32 = f32::INFINITY;
const NAN: f32 = f32::NAN;
/// The smallest and the largest positive subnormal.
const SUB_MIN: f32 = f32::from_bits(1);
const SUB_MAX: f32 = f32::from_bits(0x007f_ffff);

/// Finite edge values of the operand that may be huge (A, X): every 7th element, in turn.
const WIDE_EDGES: [f32; 10] = [
    0.0,
    -0.0,
    SUB_MIN,
    -SUB_MAX,
    1e-40,
    f32::MIN_POSITIVE,
    1e-30,
    -1e-30,
    1e30,
    -1e30,
];
/// Placed once each, spread over the operand that may be huge: the f32 extremes and the non-finite values.
const WIDE_SPECIALS: [f32; 7] = [f32::MAX, -f32::MAX, 3e38, -3e38, INF, -INF, NAN];
/// Finite edge values of the other operand (B, W), whose random values are at most [`NARROW_SCALE`]: its
/// products with the huge operand's values stay below f32::MAX.
const NARROW_EDGES: [f32; 6] = [0.0, -0.0, SUB_MIN, -SUB_MIN, 1e-30, -1e-30];
const NARROW_SPECIALS: [f32; 3] = [INF, -INF, NAN];
const NARROW_SCALE: f64 = 0.125;

/// `len` seeded values uniform in `[-scale, scale)`, every 7th (from index 3) replaced by the next of `edges`, and
/// each of `specials` placed once at evenly spread positions (in an order rotated by `seed`, so that operands of
/// fewer elements than specials still see different ones).
fn edged(len: usize, scale: f64, seed: u64, edges: &[f32], specials: &[f32]) -> Vec<f32> {
    let mut v = random_values(len, scale, DType::F32, seed);
    for (j, i) in (3..len).step_by(7).enumerate() {
        v[i] = edges[j % edges.len()];
    }
    let s = specials.len();
    if len > 0 {
        for j in 0..s {
            v[(2 * j + 1) * len / (2 * s)] = specials[(j + seed as usize) % s];
        }
    }
    v
}

fn poisoned(g: &Gpu, shape: &[usize]) -> Tensor {
    g.upload_shaped(&vec![POISON; shape.iter().product()], shape)
        .unwrap()
}

/// `|v|` where `v` is finite, 0 where it is not.
fn finite_abs(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|x| if x.is_finite() { x.abs() } else { 0.0 })
        .collect()
}

/// Asserts that the test data gives every output element one class in f32 and f64 alike: its finite terms add
/// up, in magnitude, to at most half of f32::MAX (`finite_sums`), so no f32 partial sum of them overflows in any
/// order and a finite reference is finite in f32; infinite and NaN terms then make the result +-inf or NaN in f32
/// exactly as in f64 (`inf + -inf` and `inf * 0` are NaN in both). A failure here is a fault of the test's data,
/// not of a kernel.
fn assert_well_defined(what: &str, finite_sums: &[f64]) {
    let half = f64::from(f32::MAX) / 2.0;
    if let Some(i) = finite_sums.iter().position(|&s| s > half || s.is_nan()) {
        panic!(
            "{what}: test data: element {i}'s finite terms sum to {:e}, past f32::MAX / 2",
            finite_sums[i]
        );
    }
}

/// The values widened, every f32 subnormal a zero of its sign: the operands as a device that flushes subnormals
/// reads them (WGSL allows it; `Gpu::flushes_subnormals`).
fn flushed(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(flush_subnormal(x))).collect()
}

/// Asserts `got` against the reference `want` within `bounds` (`compare_bounded`: NaN and +-inf in class). On a
/// device that flushes subnormals `flushed` holds the reference and bounds at flushed operands ([`flushed`]),
/// and an element also passes against those: a subnormal times 3e38 is no rounding error, and a subnormal times inf
/// is NaN there.
fn assert_bounded(
    what: &str,
    rule: &'static str,
    got: &[f32],
    want: &[f64],
    bounds: &[f64],
    flushed: Option<(&[f64], &[f64])>,
) {
    let check = compare_bounded(rule, got, want, bounds);
    let Some((fw, fb)) = flushed.filter(|_| !check.ok()) else {
        return assert_ok(what, check);
    };
    let one = |w: &[f64], b: &[f64], i: usize| {
        compare_bounded(rule, &got[i..=i], &w[i..=i], &b[i..=i]).ok()
    };
    let bad: Vec<String> = (0..got.len())
        .filter(|&i| !one(want, bounds, i) && !one(fw, fb, i))
        .take(5)
        .map(|i| {
            format!(
                "[{i}] got {:e} want {:e} (flushed {:e})",
                got[i], want[i], fw[i]
            )
        })
        .collect();
    assert!(bad.is_empty(), "{what}:\n{}", bad.join("\n"));
}

/// How many references of each class a test met: finite, +inf, -inf, NaN (each must be met at least once, so
/// that the edge values reach every rule).
#[derive(Debug, Default)]
struct Classes([usize; 4]);

impl Classes {
    fn add(&mut self, reference: &[f64]) {
        for &r in reference {
            let r = r as f32;
            let class = if r.is_nan() {
                3
            } else if r == INF {
                1
            } else if r == -INF {
                2
            } else {
                0
            };
            self.0[class] += 1;
        }
    }

    fn assert_all(&self, what: &str) {
        self.assert_classes(what, [true; 4]);
    }

    /// Each class marked in `wanted` (finite, +inf, -inf, NaN) met at least once.
    fn assert_classes(&self, what: &str, wanted: [bool; 4]) {
        assert!(
            self.0.iter().zip(wanted).all(|(&c, w)| c > 0 || !w),
            "{what}: references [finite, +inf, -inf, NaN] met {:?} times: the edge values miss a class",
            self.0
        );
    }
}

/// Asserts that two results are the same bits (any NaN matching any NaN).
fn assert_same(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan(),
            "{what}: [{i}] {x:e} against {y:e}"
        );
    }
}

/// `(m, k, n)` of the products: 1, odd sizes, multiples of 4 with tails of the subgroup kernel's 32 x 32 blocks,
/// and a deep K over a single block (the tiled kernels split it over workgroups and add the splits).
const PRODUCT_SHAPES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (1, 7, 3),
    (5, 12, 8),
    (33, 40, 17),
    (36, 68, 20),
    (8, 300, 8),
];

/// One product of `form` on `kernel` with edge operands (A wide, B narrow) into a poisoned output, against the
/// f64 reference: NaN and +-inf in class, finite values within [`dot_bound`] of `sum |a_ik b_kj|` ([`assert_bounded`]
/// on a device that flushes). `form_with` on the same operands (its own output, zeroed) must give the same bits, and so
/// must `actgpu::matmul` / `matmul_at_b` / `matmul_a_bt` where `kernel` is the adapter's own.
fn check_edge_product(
    g: &Gpu,
    kernel: MatmulKernel,
    form: Form,
    shape: (usize, usize, usize),
    seed: u64,
    classes: &mut Classes,
) {
    let (ash, bsh, osh, inner) = dims(form, shape);
    let av = edged(ash[0] * ash[1], 1.0, seed, &WIDE_EDGES, &WIDE_SPECIALS);
    let bv = edged(
        bsh[0] * bsh[1],
        NARROW_SCALE,
        seed + 1000,
        &NARROW_EDGES,
        &NARROW_SPECIALS,
    );
    let what = format!("{kernel:?} {form:?} {shape:?}");
    // The reference and the dot-product bound at operands `a`, `b`.
    let refs = |a: &[f64], b: &[f64]| {
        let abs = reference(form, &cpu::dense::abs(a), &cpu::dense::abs(b), shape);
        let bounds: Vec<f64> = abs.iter().map(|&s| dot_bound(inner, s)).collect();
        (reference(form, a, b, shape), bounds)
    };
    let (a64, b64) = (widen(&av), widen(&bv));
    assert_well_defined(
        &what,
        &reference(form, &finite_abs(&a64), &finite_abs(&b64), shape),
    );
    let (want, bounds) = refs(&a64, &b64);
    let flush = g
        .flushes_subnormals()
        .unwrap()
        .then(|| refs(&flushed(&av), &flushed(&bv)));
    classes.add(&want);

    let a = g.upload_shaped(&av, &ash).unwrap();
    let b = g.upload_shaped(&bv, &bsh).unwrap();
    let out = poisoned(g, &osh);
    g.submit_and_wait("edges", |enc| record_form(kernel, enc, form, &a, &b, &out))
        .unwrap();
    let got: Vec<f32> = out.read().unwrap();
    let flush = flush.as_ref().map(|(w, b)| (&w[..], &b[..]));
    assert_bounded(&what, "dot_f32", &got, &want, &bounds, flush);

    // The allocating calls zero their output, which an unwritten element could pass for: the same bits as the
    // poisoned run above show that every element was written.
    let with = form_with(kernel, form, &a, &b).unwrap();
    assert_eq!(with.shape(), osh, "{what} form_with");
    assert_same(
        &format!("{what} form_with"),
        &with.read::<f32>().unwrap(),
        &got,
    );
    if kernel == MatmulKernel::for_gpu(g) {
        let call = match form {
            Form::AB => actgpu::matmul(&a, &b),
            Form::AtB => actgpu::matmul_at_b(&a, &b),
            Form::ABt => actgpu::matmul_a_bt(&a, &b),
        }
        .unwrap();
        assert_same(
            &format!("{what} {}", form.name()),
            &call.read::<f32>().unwrap(),
            &got,
        );
    }
}

#[test]
fn products_of_edge_values_match_the_reference_on_every_kernel_and_form() {
    let g = gpu();
    for form in [Form::AB, Form::AtB, Form::ABt] {
        let mut classes = Classes::default();
        for kernel in KERNELS {
            for (s, shape) in PRODUCT_SHAPES.into_iter().enumerate() {
                check_edge_product(g, kernel, form, shape, 7 * s as u64, &mut classes);
            }
        }
        classes.assert_all(&format!("{form:?}"));
    }
}

/// `(m, k, n)` of the dense layers: 1, odd sizes, and multiples of 4.
const DENSE_SHAPES: [(usize, usize, usize); 4] =
    [(1, 1, 1), (5, 12, 8), (33, 20, 17), (36, 68, 20)];

/// Activations of the dense checks: smooth (GELU), kinked with an unbounded side (relu) and clamped (hardtanh).
const DENSE_ACTS: [Activation; 3] = [
    Activation::Gelu,
    Activation::Relu,
    Activation::Hardtanh {
        min_val: -1.0,
        max_val: 1.0,
    },
];

/// Finite edge values of the bias and of Z for the backward (every 7th element).
const BIAS_EDGES: [f32; 5] = [0.0, -0.0, SUB_MIN, 1e30, -1e30];
const Z_EDGES: [f32; 7] = [0.0, -0.0, SUB_MIN, 1e30, -1e30, f32::MAX, -f32::MAX];
const Z_SPECIALS: [f32; 3] = [INF, -INF, NAN];
/// dY's finite edge values (every 7th element) and its specials (placed once each). An infinite dY meets a
/// moderate z (|z| <= 3) or an edge z (0, a subnormal, +-1e30, +-f32::MAX, +-inf), where f'(z) is the same in f32
/// and f64, 0 or well away from it (not GELU' past z = -9, which rounds to 0 in f32 but not in f64: `inf * 0`
/// against `inf`, the README's numerical policy). No subnormal dY: its `dY f'(z)` rounds to 0 in f32 where the f64
/// dZ is not 0, and that 0 times an infinite X or W is NaN in f32 but +-inf in f64 (`assert_no_lost_infinity`);
/// subnormal dY is the activation backward's own check (`actgpu::verify::dy_edges`).
const DY_EDGES: [f32; 4] = [0.0, -0.0, 1e-30, -1e-20];
const DY_SPECIALS: [f32; 3] = [INF, -INF, NAN];

/// `(Y, Z, Y bounds, Z bounds)` of the dense forward at `x`, `w`, `b`: Z within [`dot_bound`] of
/// `sum |x w| + |b|`, Y within `1e-6 + 1e-5 |y|` (the activation's own tolerance) plus [`LIPSCHITZ`] times Z's
/// bound.
fn forward_refs(
    act: Activation,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    (m, k, n): (usize, usize, usize),
) -> [Vec<f64>; 4] {
    let (y, z) = cpu::dense::dense_forward(act, x, w, Some(b), (m, k, n));
    let abs = cpu::dense::matmul(&cpu::dense::abs(x), &cpu::dense::abs(w), m, k, n);
    let zb: Vec<f64> = (0..m * n)
        .map(|i| dot_bound(k, abs[i] + b[i % n].abs()))
        .collect();
    let yb = zb
        .iter()
        .zip(&y)
        .map(|(&e, &y)| 1e-6 + 1e-5 * y.abs() + LIPSCHITZ * e)
        .collect();
    [y, z, yb, zb]
}

/// Asserts that no product term of the dense backward meets a dZ that f32 may round to 0 (nonzero in f64 but
/// below f32's normal range) with an infinite or NaN X or W: `0 * inf` is NaN in f32 where the f64 term is +-inf.
/// (A subnormal X or W is exact in f32; where a device flushes it, [`assert_bounded`]'s flushed reference has the
/// NaN.) A failure here is a fault of the test's data.
fn assert_no_lost_infinity(
    what: &str,
    x: &[f64],
    w: &[f64],
    dz: &[f64],
    (m, k, n): (usize, usize, usize),
) {
    let min = f64::from(f32::MIN_POSITIVE);
    let tiny = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .map(|x| f64::from(u8::from(*x != 0.0 && x.abs() < min)))
            .collect()
    };
    let huge = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .map(|x| f64::from(u8::from(!x.is_finite())))
            .collect()
    };
    let meets = [
        ("dW", cpu::dense::matmul_at_b(&huge(x), &tiny(dz), m, k, n)),
        ("dX", cpu::dense::matmul_a_bt(&tiny(dz), &huge(w), m, k, n)),
    ];
    for (out, c) in meets {
        if let Some(i) = c.iter().position(|&c| c != 0.0) {
            panic!("{what}: test data: {out}[{i}] has a term 0 * inf in f32 but not in f64");
        }
    }
}

/// The reference gradients and their bounds at `x`, `w`, `z`, `dy`: `dense_backward_bounds` (the products'
/// rounding and the activation backward's tolerance on each dZ term).
fn backward_refs(
    act: Activation,
    [x, w, z, dy]: [&[f64]; 4],
    shape: (usize, usize, usize),
) -> (cpu::dense::DenseGrads, cpu::dense::DenseGrads) {
    (
        cpu::dense::dense_backward(act, x, w, z, dy, shape),
        dense_backward_bounds(act, x, w, z, dy, shape),
    )
}

/// The dense layer `Y = f(X W + b)` with edge values in X (wide), W (narrow) and the bias, and its backward from
/// an edge Z and dY, on every kernel (each with one of [`DENSE_ACTS`]), both dZ modes, against `actgpu::cpu::dense`, within [`forward_refs`]' and
/// [`backward_refs`]' bounds, NaN and +-inf in class everywhere, every output poisoned first ([`assert_bounded`]
/// on a device that flushes subnormals).
#[test]
fn dense_layer_on_edge_values_matches_the_reference() {
    let g = gpu();
    let flushes = g.flushes_subnormals().unwrap();
    let mut classes = [(); 5].map(|_| Classes::default());
    for (ki, kernel) in KERNELS.into_iter().enumerate() {
        // One activation per kernel, in turn (each pipeline's first build is most of this test's time on a
        // software adapter): every activation on two kernels.
        let act = DENSE_ACTS[ki % DENSE_ACTS.len()];
        for (s, shape) in DENSE_SHAPES.into_iter().enumerate() {
            let (m, k, n) = shape;
            let seed = 100 * s as u64 + 10 * ki as u64;
            let xv = edged(m * k, 1.0, seed, &WIDE_EDGES, &WIDE_SPECIALS);
            let wv = edged(
                k * n,
                NARROW_SCALE,
                seed + 1,
                &NARROW_EDGES,
                &NARROW_SPECIALS,
            );
            let bias_specials: &[f32] = if n >= 8 { &[-INF, NAN] } else { &[] };
            let bv = edged(n, 1.0, seed + 2, &BIAS_EDGES, bias_specials);
            let (x64, w64, b64) = (widen(&xv), widen(&wv), widen(&bv));
            let what = format!("{kernel:?} {act} {shape:?}");

            // Forward.
            let sums = cpu::dense::matmul(&finite_abs(&x64), &finite_abs(&w64), m, k, n);
            let fb = finite_abs(&b64);
            let sums: Vec<f64> = sums
                .iter()
                .enumerate()
                .map(|(i, s)| s + fb[i % n])
                .collect();
            assert_well_defined(&format!("{what} Z"), &sums);
            let [want_y, want_z, yb, zb] = forward_refs(act, &x64, &w64, &b64, shape);
            let flush = flushes
                .then(|| forward_refs(act, &flushed(&xv), &flushed(&wv), &flushed(&bv), shape));
            classes[0].add(&want_z);
            classes[1].add(&want_y);
            let x = g.upload_shaped(&xv, &[m, k]).unwrap();
            let w = g.upload_shaped(&wv, &[k, n]).unwrap();
            let b = g.upload_shaped(&bv, &[n]).unwrap();
            let (y, z) = (poisoned(g, &[m, n]), poisoned(g, &[m, n]));
            let dense = Dense {
                activation: act,
                kernel: Some(kernel),
                dz: DzMode::Separate,
            };
            g.submit_and_wait("edges", |enc| {
                dense.record_forward(enc, &x, &w, Some(&b), &y, Some(&z))
            })
            .unwrap();
            let (gz, gy): (Vec<f32>, Vec<f32>) = (z.read().unwrap(), y.read().unwrap());
            let alt = |i: usize, j: usize| flush.as_ref().map(|f| (&f[i][..], &f[j][..]));
            assert_bounded(
                &format!("{what} Z"),
                "dot_f32",
                &gz,
                &want_z,
                &zb,
                alt(1, 3),
            );
            assert_bounded(
                &format!("{what} Y"),
                "dense_y",
                &gy,
                &want_y,
                &yb,
                alt(0, 2),
            );

            // Backward, from an edge Z of a wider range and an edge dY.
            let zv = edged(m * n, 3.0, seed + 3, &Z_EDGES, &Z_SPECIALS);
            // dY's specials moved off Z's (the same positions), so that they meet ordinary z as well.
            let mut dyv = edged(m * n, NARROW_SCALE, seed + 4, &DY_EDGES, &DY_SPECIALS);
            dyv.rotate_right(m * n / 12);
            let (z64, dy64) = (widen(&zv), widen(&dyv));
            let dz64 = cpu::dense::dense_dz(act, &z64, &dy64);
            assert_no_lost_infinity(&what, &x64, &w64, &dz64, shape);
            let dz = finite_abs(&dz64);
            let (fx, fw) = (finite_abs(&x64), finite_abs(&w64));
            assert_well_defined(
                &format!("{what} dW"),
                &cpu::dense::matmul_at_b(&fx, &dz, m, k, n),
            );
            assert_well_defined(
                &format!("{what} dX"),
                &cpu::dense::matmul_a_bt(&dz, &fw, m, k, n),
            );
            let mut db_sums = vec![0.0; n];
            for (i, v) in dz.iter().enumerate() {
                db_sums[i % n] += v;
            }
            assert_well_defined(&format!("{what} db"), &db_sums);
            let (want, bound) = backward_refs(act, [&x64, &w64, &z64, &dy64], shape);
            let flush = flushes.then(|| {
                let (fx, fw) = (flushed(&xv), flushed(&wv));
                let (fz, fdy) = (flushed(&zv), flushed(&dyv));
                backward_refs(act, [&fx, &fw, &fz, &fdy], shape)
            });
            classes[2].add(&want.dw);
            classes[3].add(&want.db);
            classes[4].add(&want.dx);
            let zt = g.upload_shaped(&zv, &[m, n]).unwrap();
            let dy = g.upload_shaped(&dyv, &[m, n]).unwrap();
            for mode in [DzMode::Separate, DzMode::Fused] {
                let dense = Dense { dz: mode, ..dense };
                let (dx, dw, db) = (
                    poisoned(g, &[m, k]),
                    poisoned(g, &[k, n]),
                    poisoned(g, &[n]),
                );
                g.submit_and_wait("edges", |enc| {
                    dense.record_backward(enc, &x, &w, &zt, &dy, &dw, Some(&db), Some(&dx))
                })
                .unwrap();
                let what = format!("{what} {mode:?}");
                let (gw, gb, gx): (Vec<f32>, Vec<f32>, Vec<f32>) =
                    (dw.read().unwrap(), db.read().unwrap(), dx.read().unwrap());
                let f = flush.as_ref();
                assert_bounded(
                    &format!("dW {what}"),
                    "grad",
                    &gw,
                    &want.dw,
                    &bound.dw,
                    f.map(|(w, b)| (&w.dw[..], &b.dw[..])),
                );
                assert_bounded(
                    &format!("db {what}"),
                    "grad",
                    &gb,
                    &want.db,
                    &bound.db,
                    f.map(|(w, b)| (&w.db[..], &b.db[..])),
                );
                assert_bounded(
                    &format!("dX {what}"),
                    "grad",
                    &gx,
                    &want.dx,
                    &bound.dx,
                    f.map(|(w, b)| (&w.dx[..], &b.dx[..])),
                );
            }
        }
    }
    for (c, name) in classes.iter().zip(["Z", "Y", "dW", "db", "dX"]) {
        // Y = f(Z) has no -inf (relu and GELU give 0 at -inf, hardtanh -1): its other classes must be met.
        if name == "Y" {
            assert!(c.0[0] > 0 && c.0[1] > 0 && c.0[3] > 0, "Y: {:?}", c.0);
        } else {
            c.assert_all(name);
        }
    }
}

/// Prediction and target pairs of the MSE checks.
const MSE_PAIRS: [(f32, f32); 17] = [
    (INF, INF),
    (INF, -INF),
    (-INF, 1.0),
    (1.0, INF),
    (NAN, 1.0),
    (1.0, NAN),
    (INF, NAN),
    (f32::MAX, f32::MAX),
    (f32::MAX, -f32::MAX),
    (-f32::MAX, 0.5),
    (3e38, -3e38),
    (-3e38, 3e38),
    (3e38, 0.0),
    (3e38, 3e38),
    (-0.0, 0.0),
    (SUB_MIN, -SUB_MIN),
    (1e-30, 0.0),
];

/// MSE's loss and gradient with each edge pair in a batch of its own (one infinite or NaN term cannot hide
/// another) among ordinary elements, in batches of 2, 5 and 33, into poisoned outputs, against
/// `actgpu::cpu::loss::mse`: NaN and +-inf in class; finite losses within `loss_bound` of 4 roundings a term (as
/// `actgpu::verify::training::check_value_loss` bounds them), finite gradients `2 (y - t) / n` within 4 roundings.
/// A gradient whose `y - t` is past f32::MAX but `2 (y - t) / n` is not (3e38 against -3e38 in a batch of 5:
/// 2.4e38) must be that finite value, as every finite reference must.
#[test]
fn mse_on_edge_values_matches_the_reference() {
    let g = gpu();
    let (mut loss_classes, mut grad_classes) = (Classes::default(), Classes::default());
    let mut failures = Vec::new();
    for (p, &(y, t)) in MSE_PAIRS.iter().enumerate() {
        for (n, at) in [(2, 0), (5, 3), (33, 17)] {
            let mut pred = random_values(n, 2.0, DType::F32, 300 + p as u64);
            let mut target = random_values(n, 1.0, DType::F32, 400 + p as u64);
            (pred[at], target[at]) = (y, t);
            let (pt, tt) = (g.upload(&pred).unwrap(), g.upload(&target).unwrap());
            let (loss, grad) = (poisoned(g, &[1]), poisoned(g, &[n]));
            g.submit_and_wait("edges", |enc| {
                Loss::Mse.record(enc, &pt, Targets::Values(&tt), &grad, &loss)
            })
            .unwrap();
            let (p64, t64) = (widen(&pred), widen(&target));
            let (want, want_grad) = cpu::loss::mse(&p64, &t64);
            let mags: Vec<f64> = p64.iter().zip(&t64).map(|(a, b)| (a - b).powi(2)).collect();
            let lb = loss_bound(&mags, n, 4.0);
            let gb: Vec<f64> = want_grad
                .iter()
                .map(|v| 4.0 * U * v.abs() + 1e-30)
                .collect();
            loss_classes.add(&[want]);
            grad_classes.add(&want_grad);
            let what = format!("mse pred {y:e} target {t:e} at {at} of {n}");
            let lc = compare_bounded("loss", &loss.read::<f32>().unwrap(), &[want], &[lb]);
            let gc = compare_bounded("loss_grad", &grad.read::<f32>().unwrap(), &want_grad, &gb);
            for (out, c) in [("loss", lc), ("grad", gc)] {
                if !c.ok() {
                    failures.push(format!("{what}: {out} {:?}", c.first_failures));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A mean of squares is never -inf.
    loss_classes.assert_classes("mse loss", [true, true, false, true]);
    grad_classes.assert_all("mse grad");
}

/// Parameters and gradients of the optimizer checks: every parameter meets every gradient, the same gradient at
/// both steps. 1e19 squares below f32::MAX, 2e19 above it (Adam's `g * g`).
const OPT_PARAMS: [f32; 10] = [0.5, -0.0, SUB_MIN, 1e30, -1e30, 3e38, -3e38, INF, -INF, NAN];
const OPT_GRADS: [f32; 15] = [
    1.0, -2.5, 0.0, -0.0, SUB_MIN, 1e19, 2e19, 1e20, 1e30, -1e30, 3e38, -3e38, INF, -INF, NAN,
];
const OPT_STEPS: u64 = 2;

/// A finite f64 value that is +-inf in f32.
fn past_f32(v: f64) -> bool {
    v.is_finite() && (v as f32).is_infinite()
}

/// What one element must end as after [`OPT_STEPS`] steps: the parameter and the state (SGD's momentum buffer or
/// Adam's m, and Adam's v), with the rule that gave them.
#[derive(Debug)]
struct Expected {
    param: f64,
    m: f64,
    v: f64,
    rule: &'static str,
}

/// The element's expected result from the f64 reference's run (`params[s]`: the parameter before step `s + 1`;
/// `states[s]`: the state after it; `last`: the parameter after the last step), where the f32 kernel, which keeps
/// its state and forms its update in f32 (the `actgpu::ops::optim` module documentation: "one fused kernel per
/// parameter tensor, f32"), must differ from it:
///
/// - Adam and AdamW: once `|g| > ~1.8e19`, `g * g` overflows, `v` is +inf for good and the step is 0, so the
///   parameter stops where it was (AdamW still decays it): documented on `actgpu::ops::optim::Adam` ("`v` then
///   becomes inf, and stays inf ..., so the element stops moving for good (its step is `m / inf = 0`) where the
///   f64 reference would step by about `lr`").
/// - SGD with momentum: once the buffer `b` (or Nesterov's `g + momentum b`, the formulas on
///   `actgpu::ops::optim::Sgd`) is past f32::MAX, it is +-inf in f32, and so is the step: the parameter becomes
///   `p - sign * inf` (-+inf, or NaN from an infinity of the other sign) where the f64 reference still steps by a
///   finite amount. The buffer itself is past f32::MAX in the reference too, so it rounds to the same infinity.
///
/// Anywhere else the reference itself. A case outside these rules (an L2 term `g + wd p` past f32::MAX, a step
/// that overflows and then comes back below f32::MAX) panics: the test data would need a rule of its own.
fn expected(
    opt: &Optimizer,
    i: usize,
    grad: f64,
    params: &[Vec<f64>],
    last: f64,
    states: &[cpu::optim::State],
) -> Expected {
    let end = states.last().unwrap();
    let mut e = Expected {
        param: last,
        m: end.m[i],
        v: end.v[i],
        rule: "reference",
    };
    let steps = params.len();
    let l2 = |wd: f32, p: f64| {
        if wd == 0.0 {
            grad
        } else {
            grad + f64::from(wd) * p
        }
    };
    match *opt {
        Optimizer::Adam(a) => {
            let g_eff = |s: usize| {
                if a.decoupled {
                    grad
                } else {
                    l2(a.weight_decay, params[s][i])
                }
            };
            assert!(
                !(0..steps).any(|s| past_f32(g_eff(s))),
                "{opt:?} [{i}]: test data: an L2 gradient past f32::MAX"
            );
            let overflow = (0..steps).find(|&s| {
                let g = g_eff(s) as f32;
                g.is_finite() && (g * g).is_infinite()
            });
            if let Some(s) = overflow {
                // Documented on `actgpu::ops::optim::Adam`: v = inf from step s + 1 on, the step m / inf = 0.
                let decay = 1.0 - f64::from(a.lr) * f64::from(a.weight_decay);
                let mut p = params[s][i];
                for _ in s..steps {
                    if a.decoupled {
                        p *= decay;
                    }
                }
                e.param = p;
                e.v = f64::INFINITY;
                e.rule = "Adam: g * g past f32::MAX, v = inf, step 0 (documented on actgpu::ops::optim::Adam)";
            }
        }
        Optimizer::Sgd(sgd) => {
            let g_eff = |s: usize| l2(sgd.weight_decay, params[s][i]);
            assert!(
                !(0..steps).any(|s| past_f32(g_eff(s))),
                "{opt:?} [{i}]: test data: an L2 gradient past f32::MAX"
            );
            if sgd.momentum != 0.0 {
                let mu = f64::from(sgd.momentum);
                let term = |s: usize| {
                    let b = states[s].m[i];
                    if sgd.nesterov {
                        g_eff(s) + mu * b
                    } else {
                        b
                    }
                };
                let overflow = (0..steps).find(|&s| past_f32(term(s)) || past_f32(states[s].m[i]));
                if let Some(s) = overflow {
                    // The step `lr b` (or `lr (g + momentum b)`) with b kept in f32: +-inf from step s + 1 on.
                    let mut p = params[s][i];
                    for t in s..steps {
                        assert!(
                            past_f32(term(t)) || term(t).is_infinite(),
                            "{opt:?} [{i}]: test data: the step comes back below f32::MAX at step {}",
                            t + 1
                        );
                        p -= term(t).signum() * f64::INFINITY;
                    }
                    e.param = p;
                    e.rule =
                        "SGD momentum: b or g + momentum b past f32::MAX, an infinite step in f32";
                }
            }
        }
    }
    e
}

/// Every optimizer setting over two steps with NaN, +-inf, huge (1e19 to 3e38) and tiny gradients against every
/// edge parameter (NaN, +-inf, +-1e30, +-3e38, 0.5, -0, a subnormal), against `actgpu::cpu::optim::update`: the
/// parameter and the state (which the kernel writes at every step, so an element it skipped fails there even
/// where the parameter would not move), NaN and +-inf in class, finite values within `check_optimizers`' bound,
/// `16 u (|p| + |p0| + 30 lr)` a step for the parameter and `16 u (|s| + |g|)` (`|g|^2` for v) for the state.
/// Where the f32 kernel legitimately differs from f64, [`expected`] gives the documented f32 result.
#[test]
fn optimizers_on_edge_gradients_and_parameters_match_the_reference() {
    let g = gpu();
    let (p0, grads): (Vec<f32>, Vec<f32>) = OPT_PARAMS
        .iter()
        .flat_map(|&p| OPT_GRADS.iter().map(move |&g| (p, g)))
        .unzip();
    let n = p0.len();
    let grad64 = widen(&grads);
    for (name, opt) in optimizer_settings() {
        // The f64 reference, step by step.
        let mut params = vec![widen(&p0)];
        let mut states = Vec::new();
        let mut state = cpu::optim::State::zeros(n);
        for step in 1..=OPT_STEPS {
            let mut p = params.last().unwrap().clone();
            cpu::optim::update(&opt, &mut p, &grad64, &mut state, step);
            params.push(p);
            states.push(state.clone());
        }
        let last = params.pop().unwrap();
        let want: Vec<Expected> = (0..n)
            .map(|i| expected(&opt, i, grad64[i], &params, last[i], &states))
            .collect();
        let documented = want.iter().filter(|e| e.rule != "reference").count();

        let param = g.upload(&p0).unwrap();
        let grad = g.upload(&grads).unwrap();
        let st = opt.init_state(&param).unwrap();
        for step in 1..=OPT_STEPS {
            opt.update(g, &param, &grad, &st, step).unwrap();
        }
        let lr = f64::from(opt.lr());
        let steps = OPT_STEPS as f64;
        let got: Vec<f32> = param.read().unwrap();
        let wp: Vec<f64> = want.iter().map(|e| e.param).collect();
        let pb: Vec<f64> = (0..n)
            .map(|i| steps * 16.0 * U * (wp[i].abs() + f64::from(p0[i]).abs() + 30.0 * lr))
            .collect();
        let mut failures = Vec::new();
        let mut check = |out: &str, got: &[f32], reference: &[f64], bounds: &[f64]| {
            let c = compare_bounded("update", got, reference, bounds);
            for f in &c.first_failures {
                failures.push(format!(
                    "{name} {out}: p0 {:e} grad {:e}: got {:e}, expected {:e} ({})",
                    p0[f.index], grads[f.index], f.got, f.expected, want[f.index].rule
                ));
            }
            if c.failures > c.first_failures.len() {
                failures.push(format!("{name} {out}: {} failures in all", c.failures));
            }
        };
        check("param", &got, &wp, &pb);
        // The state: the momentum buffer or Adam's moments. `g_scale` is the largest |g + wd p| of the steps.
        let g_scale: Vec<f64> = (0..n)
            .map(|i| {
                let wd = match opt {
                    Optimizer::Sgd(s) => f64::from(s.weight_decay),
                    Optimizer::Adam(a) if !a.decoupled => f64::from(a.weight_decay),
                    Optimizer::Adam(_) => 0.0,
                };
                let ps = params.iter().map(|p| p[i].abs());
                // No wd term at wd = 0 (the kernel adds none: an infinite p does not make it NaN).
                let decay = if wd == 0.0 {
                    0.0
                } else {
                    wd * ps.fold(0.0, f64::max)
                };
                grad64[i].abs() + decay
            })
            .collect();
        if let Some(m) = &st.m {
            let wm: Vec<f64> = want.iter().map(|e| e.m).collect();
            let mb: Vec<f64> = (0..n)
                .map(|i| steps * 16.0 * U * (wm[i].abs() + g_scale[i]) + 1e-30)
                .collect();
            check("m", &m.read::<f32>().unwrap(), &wm, &mb);
        }
        if let Some(v) = &st.v {
            let wv: Vec<f64> = want.iter().map(|e| e.v).collect();
            let vb: Vec<f64> = (0..n)
                .map(|i| steps * 16.0 * U * (wv[i].abs() + g_scale[i].powi(2)) + 1e-30)
                .collect();
            check("v", &v.read::<f32>().unwrap(), &wv, &vb);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // The documented f32 rules are reached where they apply: Adam's at every gradient past 1.8e19, SGD's
        // momentum at +-3e38.
        match opt {
            Optimizer::Sgd(s) if s.momentum == 0.0 => assert_eq!(documented, 0, "{name}"),
            _ => assert!(
                documented > 0,
                "{name}: no element reached a documented f32 rule"
            ),
        }
    }
}
