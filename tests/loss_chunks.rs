//! The losses past the storage-binding limit: on a context whose bindings hold 64 KiB, cross-entropy (in chunks
//! of whole rows, on both of its kernels), MSE and BCE with logits (in chunks of elements) against the f64
//! reference, every gradient element written over NaN; the same shapes on a context of the adapter's own limits
//! give the same values; and what cannot be chunked (a row wider than a binding, partial sums past one) is a
//! typed `LimitExceeded`.

mod common;

use actgpu::verify::fused::random_values;
use actgpu::verify::training::{cross_entropy_depth, loss_bound, U};
use actgpu::{cpu, DType, Error, Gpu, GpuOptions, Labels, Loss, Targets, Tensor};
use common::{assert_within, bits, capped_binding_gpu, labels, widen};

/// The binding limit of the chunked contexts: 64 KiB, so that modest shapes need several chunks.
const SMALL_BINDING: u64 = 64 * 1024;

/// A context with `options`, its storage bindings capped at 64 KiB.
fn small_binding(options: GpuOptions) -> Gpu {
    capped_binding_gpu(SMALL_BINDING, options)
}

/// A context with `options` and the adapter's own binding limit.
fn default_binding(options: GpuOptions) -> Gpu {
    Gpu::with_options(options).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

/// Cross-entropy from this many classes on the workgroup-per-row kernel, on every adapter.
fn wide_from(classes: usize) -> GpuOptions {
    GpuOptions {
        cross_entropy_wide_rows: Some(classes),
        ..GpuOptions::default()
    }
}

/// `(loss, grad)` of `loss_fn` recorded into a loss and a gradient filled with NaN: an element the kernels leave
/// unwritten reads NaN and fails every comparison.
fn run_over_nan(loss_fn: Loss, pred: &Tensor, targets: Targets) -> (f32, Vec<f32>) {
    let gpu = pred.gpu();
    let grad = gpu
        .upload_shaped(&vec![f32::NAN; pred.len()], pred.shape())
        .unwrap();
    let loss = gpu.upload(&[f32::NAN]).unwrap();
    gpu.submit_and_wait("loss_chunks", |enc| {
        loss_fn.record(enc, pred, targets, &grad, &loss)
    })
    .unwrap_or_else(|e| panic!("{} {:?}: {e}", loss_fn.name(), pred.shape()));
    (loss.read::<f32>().unwrap()[0], grad.read::<f32>().unwrap())
}

/// Seeded logits in [-5, 5) and class indices of a `rows x cols` cross-entropy.
fn ce_inputs(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    (
        random_values(rows * cols, 5.0, DType::F32, seed),
        labels(rows, cols, seed + 100),
    )
}

/// Cross-entropy of `rows x cols` seeded logits on `gpu`: `(loss, grad)`.
fn run_cross_entropy(gpu: &Gpu, rows: usize, cols: usize, seed: u64) -> (f32, Vec<f32>) {
    let (x, t) = ce_inputs(rows, cols, seed);
    let logits = gpu.upload_shaped(&x, &[rows, cols]).unwrap();
    let labels = Labels::upload(gpu, &t, cols).unwrap();
    run_over_nan(
        Loss::SoftmaxCrossEntropy,
        &logits,
        Targets::Classes(&labels),
    )
}

/// Asserts cross-entropy's `(loss, grad)` within the rounding bounds of
/// `actgpu::verify::training::check_cross_entropy` (derived at its `cross_entropy_bounds`), with `depth`
/// roundings on a row's sum: the chunks do not change a row's arithmetic, nor the reduction over one term per
/// row.
fn assert_cross_entropy(what: &str, got: (f32, Vec<f32>), x: &[f32], t: &[u32], depth: usize) {
    let (rows, cols) = (t.len(), x.len() / t.len());
    let xv = widen(x);
    let (want, want_grad) = cpu::loss::softmax_cross_entropy(&xv, t, cols);
    let terms: Vec<f64> = (0..rows)
        .map(|r| cpu::loss::softmax_cross_entropy(&xv[r * cols..(r + 1) * cols], &t[r..=r], cols).0)
        .collect();
    let depth = depth as f64;
    let bound = loss_bound(&terms, rows, 8.0) + (70.0 + depth) * U;
    assert_within(&format!("{what} loss"), &[got.0], &[want], |_| bound);
    let onehot = |i: usize| f64::from(u8::from(t[i / cols] as usize == i % cols)) / rows as f64;
    assert_within(&format!("{what} grad"), &got.1, &want_grad, |i| {
        let p = want_grad[i] + onehot(i);
        (120.0 + depth) * U * (p.abs() + onehot(i)) + 1e-30
    });
}

/// Cross-entropy shapes past a 64 KiB binding, each against the reference and bit for bit against the same
/// shape within one binding (the same per-row arithmetic, and the same reduction over the same terms).
fn check_cross_entropy_chunks(small: &Gpu, whole: &Gpu, shapes: &[(usize, usize)]) {
    for (s, &(rows, cols)) in shapes.iter().enumerate() {
        let what = format!("cross-entropy {rows}x{cols}");
        assert!(
            (rows * cols * 4) as u64 > SMALL_BINDING,
            "{what} must need chunks"
        );
        let seed = 500 + s as u64;
        let got = run_cross_entropy(small, rows, cols, seed);
        let (x, t) = ce_inputs(rows, cols, seed);
        let depth = cross_entropy_depth(small, cols);
        assert_cross_entropy(&what, got.clone(), &x, &t, depth);
        let one = run_cross_entropy(whole, rows, cols, seed);
        assert_cross_entropy(
            &format!("{what} in one binding"),
            one.clone(),
            &x,
            &t,
            depth,
        );
        assert_eq!(
            got.0.to_bits(),
            one.0.to_bits(),
            "{what}: loss in chunks {} against {} in one binding",
            got.0,
            one.0
        );
        assert!(
            bits(&got.1) == bits(&one.1),
            "{what}: gradients in chunks differ from one binding's"
        );
    }
}

/// Thread-per-row cross-entropy in chunks of whole rows: 1,001 rows of 37 classes (148-byte rows: 442 to a
/// binding, the next chunks bound from 256-byte-aligned offsets before their first row) and 203 rows of 301 (54
/// to a binding, a last chunk of 41).
#[test]
fn cross_entropy_runs_in_chunks_of_rows() {
    let small = small_binding(GpuOptions::default());
    let whole = default_binding(GpuOptions::default());
    assert!(small.cross_entropy_wide_rows() > 301);
    check_cross_entropy_chunks(&small, &whole, &[(1_001, 37), (203, 301)]);
    // At the minimum limits the offset alignment is 256 bytes (32 on the software adapters): a chunk's lead bytes
    // before its first row then count against the binding.
    let aligned = small_binding(minimum_limits(GpuOptions::default()));
    check_cross_entropy_chunks(&aligned, &whole, &[(1_001, 37), (203, 301)]);
}

/// `options` capped at [`Gpu::MINIMUM_LIMITS`] (256-byte storage offset alignment).
fn minimum_limits(options: GpuOptions) -> GpuOptions {
    GpuOptions {
        cap_limits: Some(Gpu::MINIMUM_LIMITS),
        ..options
    }
}

/// Thread-per-row cross-entropy past the dispatch grid (one workgroup per dimension here): chunks of the rows
/// one grid holds, the same bits as one dispatch.
#[test]
fn thread_per_row_cross_entropy_past_the_grid_runs_in_chunks() {
    let one_group = default_binding(GpuOptions {
        max_workgroups_per_dimension: Some(1),
        ..GpuOptions::default()
    });
    let whole = default_binding(GpuOptions::default());
    let (rows, cols, seed) = (2_000, 5, 650);
    let got = run_cross_entropy(&one_group, rows, cols, seed);
    let (x, t) = ce_inputs(rows, cols, seed);
    let depth = cross_entropy_depth(&one_group, cols);
    assert_cross_entropy(
        "cross-entropy past a 1 x 1 grid",
        got.clone(),
        &x,
        &t,
        depth,
    );
    let one = run_cross_entropy(&whole, rows, cols, seed);
    assert_eq!(got.0.to_bits(), one.0.to_bits());
    assert!(bits(&got.1) == bits(&one.1));
}

/// The workgroup-per-row kernel in chunks: 300 rows of 257 classes (63 rows to a binding, a last chunk of 48), and
/// rows of exactly one binding (16,384 f32), a chunk each.
#[test]
fn wide_row_cross_entropy_runs_in_chunks_of_rows() {
    let (small, whole) = (
        small_binding(wide_from(256)),
        default_binding(wide_from(256)),
    );
    check_cross_entropy_chunks(&small, &whole, &[(300, 257), (3, 16_384)]);
}

/// Rows of the workgroup-per-row kernel past the dispatch grid (at most 32 x 32 workgroups here) run in chunks
/// of the grid's rows even where every operand fits one binding (they were refused as `LimitExceeded`).
#[test]
fn wide_rows_past_the_dispatch_grid_run_in_chunks() {
    let small_grid = default_binding(GpuOptions {
        max_workgroups_per_dimension: Some(32),
        ..wide_from(256)
    });
    let whole = default_binding(wide_from(256));
    let (rows, cols) = (2_000, 257);
    let seed = 600;
    let got = run_cross_entropy(&small_grid, rows, cols, seed);
    let (x, t) = ce_inputs(rows, cols, seed);
    let depth = cross_entropy_depth(&small_grid, cols);
    assert_cross_entropy("cross-entropy past the grid", got.clone(), &x, &t, depth);
    let one = run_cross_entropy(&whole, rows, cols, seed);
    assert_eq!(got.0.to_bits(), one.0.to_bits());
    assert!(bits(&got.1) == bits(&one.1));
}

/// Seeded predictions (in [-2, 2) for MSE, [-8, 8) for BCE's logits) and targets (in [-1, 1), or [0, 1) for
/// BCE) of `n` elements.
fn value_inputs(loss_fn: Loss, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let scale = if loss_fn == Loss::Mse { 2.0 } else { 8.0 };
    let y = random_values(n, scale, DType::F32, seed);
    let mut t = random_values(n, 1.0, DType::F32, seed + 100);
    if loss_fn == Loss::BceWithLogits {
        t.iter_mut().for_each(|v| *v = v.abs());
    }
    (y, t)
}

/// MSE or BCE of `n` seeded elements on `gpu`: `(loss, grad)`.
fn run_values(gpu: &Gpu, loss_fn: Loss, n: usize, seed: u64) -> (f32, Vec<f32>) {
    let (y, t) = value_inputs(loss_fn, n, seed);
    let (yt, tt) = (gpu.upload(&y).unwrap(), gpu.upload(&t).unwrap());
    run_over_nan(loss_fn, &yt, Targets::Values(&tt))
}

/// Roundings on the longest path of the mean's sum in chunks of at most 16,384 elements: a thread adds at most
/// 8 of its chunk's elements (16,384 shared by at least 16,384 / 8 threads), a reduction thread (of 128 or more)
/// at most 128 of the 16,384 partial sums, then a tree of at most 8 levels; and a margin.
const CHUNKED_SUM_DEPTH: f64 = 150.0;

/// Asserts MSE's or BCE's `(loss, grad)` within the bounds of `actgpu::verify::training::check_value_loss`, the
/// loss's summation depth [`CHUNKED_SUM_DEPTH`].
fn assert_values(what: &str, loss_fn: Loss, got: (f32, Vec<f32>), y: &[f32], t: &[f32]) {
    let (yv, tv) = (widen(y), widen(t));
    let n = y.len() as f64;
    let (want, want_grad, mags, term_ulps) = match loss_fn {
        Loss::Mse => {
            let (l, g) = cpu::loss::mse(&yv, &tv);
            let mags: Vec<f64> = yv.iter().zip(&tv).map(|(a, b)| (a - b).powi(2)).collect();
            (l, g, mags, 4.0)
        }
        _ => {
            let (l, g) = cpu::loss::bce_with_logits(&yv, &tv);
            let mags: Vec<f64> = yv
                .iter()
                .zip(&tv)
                .map(|(x, t)| x.abs() * (1.0 + t) + 1.0)
                .collect();
            (l, g, mags, 24.0)
        }
    };
    let bound = (term_ulps + CHUNKED_SUM_DEPTH) * U * mags.iter().sum::<f64>() / n + 1e-12;
    assert_within(&format!("{what} loss"), &[got.0], &[want], |_| bound);
    assert_within(
        &format!("{what} grad"),
        &got.1,
        &want_grad,
        |i| match loss_fn {
            Loss::Mse => 4.0 * U * want_grad[i].abs() + 1e-30,
            _ => {
                let s = cpu::activation::sigmoid(yv[i]);
                (8.0 + 2.0 * yv[i].abs()) * U * (s + tv[i]) / n + 1e-30
            }
        },
    );
}

/// MSE and BCE with logits in chunks of elements: 100,003 f32 (seven chunks of up to 16,384, the last 1,699) and
/// 16,385 (one element past a binding), against the reference; the same shapes within one binding give the same
/// gradients bit for bit (the same arithmetic per element) and the mean within both bounds.
#[test]
fn mse_and_bce_run_in_chunks_of_elements() {
    let small = small_binding(GpuOptions::default());
    let whole = default_binding(GpuOptions::default());
    for loss_fn in [Loss::Mse, Loss::BceWithLogits] {
        for (s, n) in [100_003, 16_385].into_iter().enumerate() {
            let what = format!("{} of {n}", loss_fn.name());
            assert!((n * 4) as u64 > SMALL_BINDING, "{what} must need chunks");
            let seed = 700 + s as u64;
            let (y, t) = value_inputs(loss_fn, n, seed);
            let got = run_values(&small, loss_fn, n, seed);
            assert_values(&what, loss_fn, got.clone(), &y, &t);
            let one = run_values(&whole, loss_fn, n, seed);
            assert_values(
                &format!("{what} in one binding"),
                loss_fn,
                one.clone(),
                &y,
                &t,
            );
            assert!(
                bits(&got.1) == bits(&one.1),
                "{what}: gradients in chunks differ from one binding's"
            );
            let aligned = small_binding(minimum_limits(GpuOptions::default()));
            let at_minimum = run_values(&aligned, loss_fn, n, seed);
            assert_values(
                &format!("{what}, 256-byte alignment"),
                loss_fn,
                at_minimum.clone(),
                &y,
                &t,
            );
            assert!(
                bits(&at_minimum.1) == bits(&one.1),
                "{what}, 256-byte alignment"
            );
        }
    }
}

/// MSE and BCE of 9,000,001 elements on a grid of one workgroup: every thread walks its share of a chunk, at
/// most 32,768 elements, which keeps it within the software drivers' 65,535 loop iterations (a walk past them is
/// cut short without an error); the gradients are the bits of one dispatch on the whole grid.
#[test]
fn mse_and_bce_past_the_grid_stay_within_the_loop_limit() {
    let one_group = default_binding(GpuOptions {
        max_workgroups_per_dimension: Some(1),
        ..GpuOptions::default()
    });
    let whole = default_binding(GpuOptions::default());
    let n = 9_000_001;
    for loss_fn in [Loss::Mse, Loss::BceWithLogits] {
        let what = format!("{} of {n} on one workgroup", loss_fn.name());
        let (y, t) = value_inputs(loss_fn, n, 800);
        let got = run_values(&one_group, loss_fn, n, 800);
        let one = run_values(&whole, loss_fn, n, 800);
        assert!(bits(&got.1) == bits(&one.1), "{what}: gradients differ");
        // A thread's walk of up to 32,768 terms: a longer sum than CHUNKED_SUM_DEPTH allows, so the loss is
        // checked here within 32,768 + 256 roundings of the terms' mean.
        let (yv, tv) = (widen(&y), widen(&t));
        let (want, mags) = match loss_fn {
            Loss::Mse => {
                let mags: f64 = yv.iter().zip(&tv).map(|(a, b)| (a - b).powi(2)).sum();
                (cpu::loss::mse(&yv, &tv).0, mags)
            }
            _ => {
                let mags: f64 = yv
                    .iter()
                    .zip(&tv)
                    .map(|(x, t)| x.abs() * (1.0 + t) + 1.0)
                    .sum();
                (cpu::loss::bce_with_logits(&yv, &tv).0, mags)
            }
        };
        let bound = (32_768.0 + 256.0) * U * mags / n as f64;
        assert_within(&format!("{what} loss"), &[got.0], &[want], |_| bound);
    }
}

/// Asserts a `LimitExceeded` for a storage binding.
fn assert_binding_limit(what: &str, r: actgpu::Result<(Tensor, Tensor)>) {
    match r {
        Err(Error::LimitExceeded { limit, .. })
            if limit.starts_with("max_storage_buffer_binding_size") => {}
        Err(e) => panic!("{what}: expected the binding's LimitExceeded, got {e}"),
        Ok(_) => panic!("{what}: expected the binding's LimitExceeded, got a result"),
    }
}

/// What chunks cannot split is refused, typed: a row of 16,385 classes (one f32 past a 64 KiB binding, on either
/// kernel), and past the limit more rows than one binding holds class indices and partial sums for (bound
/// whole).
#[test]
fn what_chunks_cannot_split_is_limit_exceeded() {
    for options in [GpuOptions::default(), wide_from(256)] {
        let g = small_binding(options);
        let cols = 16_385;
        let logits = g.zeros(&[2, cols], DType::F32).unwrap();
        let labels = Labels::upload(&g, &[0, 1], cols).unwrap();
        let r = Loss::SoftmaxCrossEntropy.compute(&logits, Targets::Classes(&labels));
        assert_binding_limit("a row past one binding", r);
    }
    let g = small_binding(GpuOptions::default());
    let rows = 16_385;
    let logits = g.zeros(&[rows, 1], DType::F32).unwrap();
    let labels = Labels::upload(&g, &vec![0; rows], 1).unwrap();
    let r = Loss::SoftmaxCrossEntropy.compute(&logits, Targets::Classes(&labels));
    assert_binding_limit("a partial sum per row past one binding", r);
    // One row fewer fits (16,384 class indices and partial sums, 65,536 bytes), and runs in chunks.
    let (rows, cols) = (16_384, 2);
    let (x, t) = ce_inputs(rows, cols, 800);
    let logits = g.upload_shaped(&x, &[rows, cols]).unwrap();
    let labels = Labels::upload(&g, &t, cols).unwrap();
    let got = run_over_nan(
        Loss::SoftmaxCrossEntropy,
        &logits,
        Targets::Classes(&labels),
    );
    let depth = cross_entropy_depth(&g, cols);
    assert_cross_entropy("cross-entropy of 16,384 rows", got, &x, &t, depth);
}
