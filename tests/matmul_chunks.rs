//! Products past the storage-binding limit run in chunks of C's rows (`X W`, `dZ W^T`, and the dense forward and
//! backward built on them): on a context whose bindings hold 64 KiB, shapes whose A or C pass that (odd row widths
//! whose bytes are no multiple of 256, 16-bit rows of an odd number of elements) must give, bit for bit, what the
//! default context gives running the same kernel on the whole product, and stay within the dot-product bound of
//! the f64 reference. Where B (W), the bias, or a single row passes a binding, and for `X^T dZ` (a sum over the
//! rows), the product is refused with `Error::LimitExceeded`. Outputs are poisoned with NaN before each run.

mod common;

use std::sync::OnceLock;

use actgpu::ops::matmul::{record_form, Form, MatmulKernel};
use actgpu::verify::fused::random_values;
use actgpu::verify::POISON;
use actgpu::{cpu, padded_bytes, Activation, DType, Dense, DzMode, Error, Gpu, GpuOptions, Tensor};
use common::products::{dense_backward_bounds, dims, dot_bound, reference, KERNELS, LIPSCHITZ};
use common::{assert_within, bits, capped_binding_gpu, poisoned};

/// Bytes one storage binding holds on [`small`].
const BINDING: u64 = 64 * 1024;

/// A context whose storage bindings hold [`BINDING`] bytes, on the same adapter as [`big`].
fn small() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| capped_binding_gpu(BINDING, GpuOptions::default()))
}

/// The default context, whose bindings hold every tensor here whole.
fn big() -> &'static Gpu {
    let gpu = common::gpu();
    assert!(gpu.limits().max_storage_buffer_binding_size >= 16 * BINDING);
    assert_eq!(gpu.adapter_info().name, small().adapter_info().name);
    gpu
}

/// `len` random values of `scale`, exactly representable in `dtype` (seeded).
fn values(len: usize, scale: f64, dtype: DType, seed: u64) -> Vec<f32> {
    random_values(len, scale, dtype, seed)
}

/// `v` as a `shape` tensor of `dtype` on `g`.
fn upload(g: &Gpu, v: &[f32], shape: &[usize], dtype: DType) -> Tensor {
    let t = g.upload_f32_as(v, dtype).unwrap();
    Tensor::from_buffer(g, t.buffer().clone(), shape, dtype).unwrap()
}

/// The bound of a value within `e` of `want` in f32 once stored in `dtype`: plus one rounding to nearest (f16:
/// 2^-11 relative and half the smallest subnormal spacing; bf16 2^-8).
fn stored(dtype: DType, e: f64, want: f64) -> f64 {
    let (u, s) = match dtype {
        DType::F16 => (2f64.powi(-11), 2f64.powi(-25)),
        DType::BF16 => (2f64.powi(-8), 0.0),
        _ => (0.0, 0.0),
    };
    e + u * (want.abs() + e) + s
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Storage types of A, B and C.
type Types = (DType, DType, DType);

/// `form` over `shape` on `kernel` and `g` with operands `a`, `b` and C of the types `t`, C poisoned first;
/// C's values as f32.
fn run_form(
    g: &Gpu,
    kernel: MatmulKernel,
    form: Form,
    shape: (usize, usize, usize),
    (a, b): (&[f32], &[f32]),
    t: Types,
) -> Vec<f32> {
    let (ash, bsh, osh, _) = dims(form, shape);
    let (a, b) = (upload(g, a, &ash, t.0), upload(g, b, &bsh, t.1));
    let out = poisoned(g, &osh, t.2);
    g.submit_and_wait("test", |enc| record_form(kernel, enc, form, &a, &b, &out))
        .unwrap_or_else(|e| panic!("{kernel:?} {form:?} {shape:?} {t:?}: {e}"));
    out.read_f32().unwrap()
}

/// `form` over `shape` on [`small`], where A or C passes a binding, against the same on [`big`] (bit for bit)
/// and against the f64 reference.
fn check_form(kernel: MatmulKernel, form: Form, shape: (usize, usize, usize), t: Types, seed: u64) {
    check_form_between(small(), big(), kernel, form, shape, t, seed);
}

/// [`check_form`] on the chunking context `chunked` against `whole`, which binds every tensor whole.
fn check_form_between(
    chunked: &Gpu,
    whole: &Gpu,
    kernel: MatmulKernel,
    form: Form,
    shape: (usize, usize, usize),
    t: Types,
    seed: u64,
) {
    let (ash, bsh, osh, inner) = dims(form, shape);
    let what = format!("{kernel:?} {form:?} {shape:?} {t:?}");
    let past = padded_bytes(ash[0] * ash[1], t.0).max(padded_bytes(osh[0] * osh[1], DType::F32));
    let binding = chunked.limits().max_storage_buffer_binding_size;
    assert!(past > binding, "{what}: fits one binding");
    let a = values(ash[0] * ash[1], 1.0, t.0, seed);
    let b = values(bsh[0] * bsh[1], 2.0, t.1, seed + 1);
    let got = run_form(chunked, kernel, form, shape, (&a, &b), t);
    let whole = run_form(whole, kernel, form, shape, (&a, &b), t);
    assert_eq!(bits(&got), bits(&whole), "{what}: chunks against whole");
    let (av, bv) = (widen(&a), widen(&b));
    let want = reference(form, &av, &bv, shape);
    let abs = reference(form, &cpu::dense::abs(&av), &cpu::dense::abs(&bv), shape);
    assert_within(&what, &got, &want, |i| {
        stored(t.2, dot_bound(inner, abs[i]), want[i])
    });
}

/// 1,001 rows: 37 and 29 wide (rows of 148 and 116 bytes in f32, 74 and 58 in 16 bits: a 16-bit row starts on a
/// whole word only every other row); 36 and 28 wide, the multiples of 4 the generated kernels' `vec4` loads
/// take; 36 by 29, where they load W's rows of 29 as scalars.
const SHAPES: [(usize, usize, usize); 3] = [(1001, 37, 29), (1001, 36, 28), (1001, 36, 29)];

#[test]
fn row_separable_products_past_a_binding_run_in_chunks_on_every_kernel() {
    for kernel in KERNELS {
        for form in [Form::AB, Form::ABt] {
            for (s, shape) in SHAPES.into_iter().enumerate() {
                let t = (DType::F32, DType::F32, DType::F32);
                check_form(kernel, form, shape, t, 10 * s as u64);
            }
        }
    }
}

#[test]
fn sixteen_bit_operands_and_outputs_run_in_chunks() {
    let kernel = MatmulKernel::for_gpu(big());
    for half in [DType::F16, DType::BF16] {
        let types = [
            (half, half, DType::F32),
            (half, DType::F32, half),
            (DType::F32, half, half),
            (half, half, half),
        ];
        for form in [Form::AB, Form::ABt] {
            for (s, shape) in SHAPES.into_iter().enumerate() {
                for (i, t) in types.into_iter().enumerate() {
                    check_form(kernel, form, shape, t, 100 + 10 * s as u64 + i as u64);
                }
            }
        }
    }
    // The direct and tiled kernels decode 16-bit operands in their loads (the generated ones widen them first).
    for kernel in [
        MatmulKernel::Direct,
        MatmulKernel::Tiled,
        MatmulKernel::TiledWide,
    ] {
        for form in [Form::AB, Form::ABt] {
            let t = (DType::F16, DType::BF16, DType::F16);
            check_form(kernel, form, (1001, 36, 28), t, 300);
            check_form(kernel, form, (1001, 37, 29), t, 301);
        }
    }
}

/// Chunks of a product the tiled kernels split K for (few blocks of C, 256 deep): each chunk splits K as the
/// whole product does, so the sums are the same bits.
#[test]
fn split_products_run_in_chunks_with_the_whole_products_splits() {
    for kernel in [
        MatmulKernel::Tiled,
        MatmulKernel::Tiled32,
        MatmulKernel::TiledWide,
    ] {
        for form in [Form::AB, Form::ABt] {
            let t = (DType::F32, DType::F32, DType::F32);
            check_form(kernel, form, (1001, 256, 29), t, 400);
            // The whole product splits K 8 ways, a chunk alone would split it 16: the chunks must take 8.
            check_form(kernel, form, (2001, 1024, 16), t, 401);
            // Partial products of 960 bytes a row against A's 512: they bound the chunks' rows.
            check_form(kernel, form, (1001, 128, 120), t, 402);
        }
    }
}

/// On a grid of at most 16 workgroups a dimension the whole product drops its splits of K (too many row blocks
/// for them), while a chunk of its rows would fit them: the chunks must drop them too, or their rows differ from
/// the unchunked product's in the last bits.
#[test]
fn chunks_split_k_as_the_whole_product_does_on_a_small_grid() {
    let with = |binding: Option<u64>| {
        Gpu::with_options(GpuOptions {
            max_storage_binding_bytes: binding,
            max_workgroups_per_dimension: Some(16),
            ..GpuOptions::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let (chunked, whole) = (with(Some(1 << 20)), with(None));
    let (chunked64, _) = (with(Some(BINDING)), ());
    let t = (DType::F32, DType::F32, DType::F32);
    for kernel in [MatmulKernel::Tiled, MatmulKernel::TiledWide] {
        check_form_between(&chunked, &whole, kernel, Form::AB, (300, 1024, 8), t, 410);
        check_form_between(&chunked64, &whole, kernel, Form::AB, (256, 1024, 8), t, 411);
    }
}

/// Storage types of X, W, the bias and the outputs Y and Z of a dense forward.
type ForwardTypes = (DType, DType, DType, DType);

/// The dense forward (bias, `act`, stored Z) on `g`; `(Y, Z)` as f32.
fn run_forward(
    g: &Gpu,
    dense: Dense,
    (m, k, n): (usize, usize, usize),
    (x, w, b): (&[f32], &[f32], &[f32]),
    t: ForwardTypes,
) -> (Vec<f32>, Vec<f32>) {
    let x = upload(g, x, &[m, k], t.0);
    let w = upload(g, w, &[k, n], t.1);
    let b = upload(g, b, &[1, n], t.2).reshape(&[n]).unwrap();
    let (y, z) = (poisoned(g, &[m, n], t.3), poisoned(g, &[m, n], t.3));
    g.submit_and_wait("test", |enc| {
        dense.record_forward(enc, &x, &w, Some(&b), &y, Some(&z))
    })
    .unwrap_or_else(|e| panic!("{dense:?} {t:?}: {e}"));
    (y.read_f32().unwrap(), z.read_f32().unwrap())
}

fn check_forward(kernel: MatmulKernel, shape: (usize, usize, usize), t: ForwardTypes, seed: u64) {
    let (m, k, n) = shape;
    let act = Activation::Gelu;
    let dense = Dense {
        kernel: Some(kernel),
        ..Dense::new(act)
    };
    let x = values(m * k, 1.0, t.0, seed);
    let w = values(k * n, 1.0, t.1, seed + 1);
    let b = values(n, 1.0, t.2, seed + 2);
    let what = format!("dense forward {kernel:?} {shape:?} {t:?}");
    let (y, z) = run_forward(small(), dense, shape, (&x, &w, &b), t);
    let (y_whole, z_whole) = run_forward(big(), dense, shape, (&x, &w, &b), t);
    assert_eq!(bits(&y), bits(&y_whole), "{what}: Y, chunks against whole");
    assert_eq!(bits(&z), bits(&z_whole), "{what}: Z, chunks against whole");
    let (xv, wv, bv) = (widen(&x), widen(&w), widen(&b));
    let (want_y, want_z) = cpu::dense::dense_forward(act, &xv, &wv, Some(&bv[..]), shape);
    let abs = cpu::dense::matmul(&cpu::dense::abs(&xv), &cpu::dense::abs(&wv), m, k, n);
    let ze: Vec<f64> = abs.iter().map(|&s| dot_bound(k, s)).collect();
    assert_within(&format!("{what}: Z"), &z, &want_z, |i| {
        stored(t.3, ze[i], want_z[i])
    });
    assert_within(&format!("{what}: Y"), &y, &want_y, |i| {
        let e = 1e-6 + 1e-5 * want_y[i].abs() + LIPSCHITZ * ze[i];
        stored(t.3, e, want_y[i])
    });
}

#[test]
fn dense_forward_with_bias_activation_and_stored_z_runs_in_chunks() {
    let f32s = (DType::F32, DType::F32, DType::F32, DType::F32);
    for kernel in KERNELS {
        check_forward(kernel, (1001, 37, 29), f32s, 500);
        check_forward(kernel, (1001, 36, 28), f32s, 510);
    }
    let kernel = MatmulKernel::for_gpu(big());
    for half in [DType::F16, DType::BF16] {
        for (i, t) in [
            (half, half, half, DType::F32),
            (half, half, DType::F32, half),
            (DType::F32, half, half, half),
        ]
        .into_iter()
        .enumerate()
        {
            check_forward(kernel, (1001, 37, 29), t, 520 + i as u64);
            check_forward(kernel, (1001, 36, 28), t, 530 + i as u64);
        }
    }
}

/// The dense backward's gradients `(dW, db, dX)` as f32 on `g`, X of `x_t` and dX of `dx_t` (the rest f32).
#[allow(clippy::type_complexity)]
fn run_backward(
    g: &Gpu,
    dense: Dense,
    (m, k, n): (usize, usize, usize),
    (x, w, z, dy): (&[f32], &[f32], &[f32], &[f32]),
    (x_t, dx_t): (DType, DType),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = upload(g, x, &[m, k], x_t);
    let w = upload(g, w, &[k, n], DType::F32);
    let z = upload(g, z, &[m, n], DType::F32);
    let dy = upload(g, dy, &[m, n], DType::F32);
    let dw = poisoned(g, &[k, n], DType::F32);
    let db = poisoned(g, &[n], DType::F32);
    let dx = poisoned(g, &[m, k], dx_t);
    g.submit_and_wait("test", |enc| {
        dense.record_backward(enc, &x, &w, &z, &dy, &dw, Some(&db), Some(&dx))
    })
    .unwrap_or_else(|e| panic!("{dense:?} {x_t:?} {dx_t:?}: {e}"));
    (
        dw.read_f32().unwrap(),
        db.read_f32().unwrap(),
        dx.read_f32().unwrap(),
    )
}

/// The dense backward where X (16-bit, [1001, 29]: 58 KB) fits a binding but dX ([1001, 29] in f32, or its f32
/// copy for a 16-bit dX: 116 KB) does not: `dX = dZ W^T` runs in chunks, with dZ fused into its loads
/// ([`DzMode::Fused`]: rows of dY and Z chunked alike) or formed first ([`DzMode::Separate`]); dW and db run
/// whole.
#[test]
fn dense_backward_runs_dx_in_chunks_fused_and_separate() {
    let shape = (1001, 29, 8);
    let (m, k, n) = shape;
    let act = Activation::Gelu;
    for (s, (x_t, dx_t)) in [
        (DType::F16, DType::F32),
        (DType::BF16, DType::F32),
        (DType::F16, DType::F16),
        (DType::BF16, DType::BF16),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 600 + 10 * s as u64;
        let x = values(m * k, 1.0, x_t, seed);
        let w = values(k * n, 1.0, DType::F32, seed + 1);
        let z = values(m * n, 3.0, DType::F32, seed + 2);
        let dy = values(m * n, 1.0, DType::F32, seed + 3);
        let inputs = (&x[..], &w[..], &z[..], &dy[..]);
        let want =
            cpu::dense::dense_backward(act, &widen(&x), &widen(&w), &widen(&z), &widen(&dy), shape);
        let bound =
            dense_backward_bounds(act, &widen(&x), &widen(&w), &widen(&z), &widen(&dy), shape);
        for (kernel, mode) in [
            (MatmulKernel::Direct, DzMode::Fused),
            (MatmulKernel::Tiled, DzMode::Fused),
            (MatmulKernel::for_gpu(big()), DzMode::Separate),
            (MatmulKernel::for_gpu(big()), DzMode::Fused),
        ] {
            let dense = Dense {
                activation: act,
                kernel: Some(kernel),
                dz: mode,
            };
            let what = format!("dense backward {kernel:?} {mode:?} X {x_t:?} dX {dx_t:?}");
            let got = run_backward(small(), dense, shape, inputs, (x_t, dx_t));
            let whole = run_backward(big(), dense, shape, inputs, (x_t, dx_t));
            assert_eq!(bits(&got.0), bits(&whole.0), "{what}: dW");
            assert_eq!(bits(&got.1), bits(&whole.1), "{what}: db");
            assert_eq!(bits(&got.2), bits(&whole.2), "{what}: dX");
            assert_within(&format!("{what}: dW"), &got.0, &want.dw, |i| bound.dw[i]);
            assert_within(&format!("{what}: db"), &got.1, &want.db, |i| bound.db[i]);
            assert_within(&format!("{what}: dX"), &got.2, &want.dx, |i| {
                stored(dx_t, bound.dx[i], want.dx[i])
            });
        }
    }
}

/// `r` is [`Error::LimitExceeded`].
fn assert_limit<T: std::fmt::Debug>(what: &str, r: actgpu::Result<T>) {
    assert!(
        matches!(r, Err(Error::LimitExceeded { .. })),
        "{what}: expected LimitExceeded, got {r:?}"
    );
}

#[test]
fn what_a_chunk_of_rows_cannot_hold_is_refused_typed() {
    let g = small();
    let zeros = |shape: &[usize], dtype| g.zeros(shape, dtype).unwrap();
    // W [37, 500] in f32 (74 KB) passes the binding, which every chunk binds whole.
    let (x, w) = (zeros(&[10, 37], DType::F32), zeros(&[37, 500], DType::F32));
    assert_limit("W past a binding", actgpu::matmul(&x, &w));
    let dz = zeros(&[10, 500], DType::F32);
    let wt = zeros(&[37, 500], DType::F32);
    assert_limit("W past a binding, dZ W^T", actgpu::matmul_a_bt(&dz, &wt));
    assert_limit(
        "W past a binding, dense forward",
        Dense::new(Activation::Gelu).forward(&x, &w, None),
    );
    // One row of X (20,000 f32: 80 KB) passes the binding while W (f16 [20,000, 1]: 40 KB) fits.
    let (x, w) = (
        zeros(&[2, 20_000], DType::F32),
        zeros(&[20_000, 1], DType::F16),
    );
    assert_limit("one row past a binding", actgpu::matmul(&x, &w));
    // A bias of 20,000 f32 (80 KB) past the binding, X and W fitting.
    let (x, w) = (zeros(&[4, 1], DType::F32), zeros(&[1, 20_000], DType::F16));
    let bias = zeros(&[20_000], DType::F32);
    assert_limit(
        "bias past a binding",
        Dense::new(Activation::Relu).forward(&x, &w, Some(&bias)),
    );
    // X^T dZ sums over the rows: X [1001, 37] (148 KB) past the binding is refused, not chunked.
    let (x, dz) = (
        zeros(&[1001, 37], DType::F32),
        zeros(&[1001, 29], DType::F32),
    );
    assert_limit("X^T dZ past a binding", actgpu::matmul_at_b(&x, &dz));
}

/// A refusal leaves the caller's encoder without half an op: the dense backward's separate dZ pass (ahead of dW)
/// recorded dZ before the product was refused; submitting the encoder afterwards now leaves every output as it
/// was.
#[test]
fn a_refused_dense_backward_records_nothing() {
    let g = small();
    let ones = |shape: &[usize], dtype| upload(g, &vec![1.0; shape.iter().product()], shape, dtype);
    let dense = Dense {
        dz: DzMode::Separate,
        ..Dense::new(Activation::Gelu)
    };
    let untouched = |what: &str, t: &Tensor| {
        let v = t.read_f32().unwrap();
        assert!(
            v.iter().all(|v| v.to_bits() == POISON.to_bits()),
            "{what} written"
        );
    };
    for (what, (m, k, n)) in [
        // X [1001, 37] past the binding: dW = X^T dZ cannot run, so the separate pass must not form dZ first.
        ("dW past a binding", (1001, 37, 29)),
        // dW itself past the binding (W and dW [128, 256] f32, 128 KiB), X and dZ small.
        ("dW's own bytes past a binding", (4, 128, 256)),
    ] {
        let (x, w) = (ones(&[m, k], DType::F32), ones(&[k, n], DType::F32));
        let (z, dy) = (ones(&[m, n], DType::F32), ones(&[m, n], DType::F32));
        let dw = poisoned(g, &[k, n], DType::F32);
        let scratch = poisoned(g, &[m, n], DType::F32);
        let mut enc = g.device().create_command_encoder(&Default::default());
        let r = dense.record_backward_using(
            &mut enc,
            &x,
            &w,
            &z,
            &dy,
            &dw,
            None,
            None,
            None,
            Some(&scratch),
        );
        assert_limit(&format!("dense backward, {what}"), r);
        g.queue().submit([enc.finish()]);
        untouched(&format!("{what}: dZ"), &scratch);
        untouched(&format!("{what}: dW"), &dw);
    }
}

/// What the dense backward binds whole is checked by what its products bind: a dY over a host buffer larger than
/// one binding, read only by the chunked dZ pass of the separate mode, runs (it was refused for its buffer's
/// size), with the results of the same backward on a context that binds it whole.
#[test]
fn a_large_host_buffer_read_in_chunks_is_not_refused() {
    let (m, k, n) = (4, 8, 16);
    let dense = Dense {
        dz: DzMode::Separate,
        ..Dense::new(Activation::Gelu)
    };
    let run = |g: &Gpu| {
        let x = upload(g, &values(m * k, 1.0, DType::F32, 1), &[m, k], DType::F32);
        let w = upload(g, &values(k * n, 1.0, DType::F32, 2), &[k, n], DType::F32);
        let z = upload(g, &values(m * n, 2.0, DType::F32, 3), &[m, n], DType::F32);
        // dY's 64 elements at the start of a 128 KiB buffer.
        let mut host = values(m * n, 1.0, DType::F32, 4);
        host.resize(32 * 1024, 0.0);
        let big = g.upload(&host).unwrap();
        let dy = Tensor::from_buffer(g, big.buffer().clone(), &[m, n], DType::F32).unwrap();
        let grads = dense
            .backward(&x, &w, &z, &dy)
            .unwrap_or_else(|e| panic!("{e}"));
        [grads.dw, grads.db, grads.dx].map(|t| bits(&t.read_f32().unwrap()))
    };
    assert!(run(small()) == run(big()));
}
