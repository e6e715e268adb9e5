//! Training on the GPU against the f64 reference: each loss and its gradient, each optimizer's update over
//! several steps, the reference network's gradients against central finite differences, the GPU MLP against
//! the f64 MLP after 20 steps of every optimizer (and of MSE and BCE), batches past the dispatch grid's limit,
//! determinism, and typed errors for bad arguments.

mod common;

use actgpu::cpu::mlp::{self as ref_mlp, Target};
use actgpu::verify::fused::random_values;
use actgpu::verify::training::{
    check_cross_entropy, check_loss_edges, check_optimizers, check_value_loss,
};
use actgpu::{
    cpu, Activation, Adam, DType, Error, Gpu, Labels, Loss, Mlp, Optimizer, Sgd, Targets, Tensor,
};
use common::{assert_same_training, assert_within, bits, gpu, labels, widen};

fn upload(g: &Gpu, v: &[f32], shape: &[usize]) -> Tensor {
    g.upload_shaped(v, shape).unwrap()
}

const CE_SHAPES: [(usize, usize); 12] = [
    (1, 1),
    (1, 7),
    (5, 3),
    (33, 10),
    (256, 10),
    (257, 10),
    (3, 129),
    (17, 2),
    // Wide rows: a workgroup per row on GPUs.
    (5, 256),
    (2, 1000),
    (300, 257),
    (1, 70_000),
];

#[test]
fn losses_keep_nan_and_infinite_logits_as_the_reference_does() {
    let names = ["ce loss", "ce grad", "bce loss", "bce grad"];
    for (name, check) in names.iter().zip(check_loss_edges(gpu()).unwrap()) {
        assert!(check.count > 0 && check.ok(), "{name}: {check:#?}");
    }
}

#[test]
fn softmax_cross_entropy_matches_the_reference() {
    for (s, &(rows, cols)) in CE_SHAPES.iter().enumerate() {
        let [loss, grad] = check_cross_entropy(gpu(), rows, cols, 100 + s as u64).unwrap();
        assert!(loss.ok(), "ce {rows}x{cols}: {loss:#?}");
        assert!(grad.ok(), "ce {rows}x{cols} grad: {grad:#?}");
    }
}

/// The workgroup-per-row cross-entropy kernel, which CPU adapters do not take by default
/// (`GpuOptions::cross_entropy_wide_rows`), forced from 256 classes: random rows against the reference (300 rows
/// in a grid of at most 32 workgroups per dimension, so the rows continue along y), the edge rows, and the same
/// at the minimum limits, whose reduction workgroups hold 128 threads.
#[test]
fn the_wide_row_cross_entropy_kernel_matches_the_reference() {
    let small_grid = Gpu::with_options(actgpu::GpuOptions {
        cross_entropy_wide_rows: Some(256),
        max_workgroups_per_dimension: Some(32),
        ..actgpu::GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let minimum = Gpu::with_options(actgpu::GpuOptions {
        cross_entropy_wide_rows: Some(256),
        cap_limits: Some(Gpu::MINIMUM_LIMITS),
        ..actgpu::GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    for g in [&small_grid, &minimum] {
        assert_eq!(g.cross_entropy_wide_rows(), 256);
        for (s, (rows, cols)) in [(5, 256), (2, 1000), (300, 257), (1, 70_000), (7, 255)]
            .into_iter()
            .enumerate()
        {
            let [loss, grad] = check_cross_entropy(g, rows, cols, 200 + s as u64).unwrap();
            assert!(loss.ok(), "ce {rows}x{cols}: {loss:#?}");
            assert!(grad.ok(), "ce {rows}x{cols} grad: {grad:#?}");
        }
        let names = ["ce loss", "ce grad"];
        for (name, check) in names.iter().zip(check_loss_edges(g).unwrap()) {
            assert!(check.count > 0 && check.ok(), "{name}: {check:#?}");
        }
    }
    // A thread per row over more classes than a loop-limited driver lets it walk is refused, not cut short.
    let never_wide = Gpu::with_options(actgpu::GpuOptions {
        cross_entropy_wide_rows: Some(usize::MAX),
        ..actgpu::GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let logits = never_wide.zeros(&[1, 20_000], DType::F32).unwrap();
    let labels = Labels::upload(&never_wide, &[3], 20_000).unwrap();
    let result = Loss::SoftmaxCrossEntropy.compute(&logits, Targets::Classes(&labels));
    if never_wide.loop_limited() {
        assert!(
            matches!(result, Err(Error::LimitExceeded { .. })),
            "{result:?}"
        );
    } else {
        result.unwrap();
    }
    // So is a batch of more rows than the mean's reduction can walk there (60,000 per thread of 256).
    let g = gpu();
    if g.loop_limited() {
        let rows = 60_000 * 256 + 1;
        let logits = g.zeros(&[rows, 1], DType::F32).unwrap();
        let labels = Labels::upload(g, &vec![0; rows], 1).unwrap();
        let result = Loss::SoftmaxCrossEntropy.compute(&logits, Targets::Classes(&labels));
        assert!(
            matches!(result, Err(Error::LimitExceeded { limit, .. }) if limit.contains("rows")),
            "{result:?}"
        );
    }
}

#[test]
fn cross_entropy_is_stable_for_large_and_confident_logits() {
    let g = gpu();
    // Row 0 is nearly certain (loss ~ 2 e^-30 = 1.9e-13); row 1 has logits near the f32 exp limit.
    let x = [30.0f32, 0.0, 0.0, 80.0, -80.0, 79.0];
    let t = [0u32, 2];
    let l = Labels::upload(g, &t, 3).unwrap();
    let (loss, grad) = Loss::SoftmaxCrossEntropy
        .compute(&upload(g, &x, &[2, 3]), Targets::Classes(&l))
        .unwrap();
    let (want, want_grad) = cpu::loss::softmax_cross_entropy(&widen(&x), &t, 3);
    let got = loss.read::<f32>().unwrap()[0];
    assert!(
        ((f64::from(got) - want) / want).abs() < 1e-5,
        "{got} vs {want}"
    );
    let gv = grad.read::<f32>().unwrap();
    assert!(gv.iter().all(|v| v.is_finite()), "{gv:?}");
    assert_within("confident grad", &gv, &want_grad, |i| {
        1e-6 * want_grad[i].abs() + 1e-12
    });
    // Alone, the confident row keeps full relative accuracy in the loss.
    let l = Labels::upload(g, &t[..1], 3).unwrap();
    let (loss, _) = Loss::SoftmaxCrossEntropy
        .compute(&upload(g, &x[..3], &[1, 3]), Targets::Classes(&l))
        .unwrap();
    let (want, _) = cpu::loss::softmax_cross_entropy(&widen(&x[..3]), &t[..1], 3);
    let got = loss.read::<f32>().unwrap()[0];
    assert!(
        ((f64::from(got) - want) / want).abs() < 1e-5,
        "{got} vs {want}"
    );
}

const VALUE_SHAPES: [&[usize]; 8] = [
    &[1],
    &[1, 1],
    &[3, 5],
    &[16, 16],
    &[257],
    &[64, 7],
    &[20_001],
    &[40_000, 1],
];

#[test]
fn mse_and_bce_match_the_reference() {
    for (s, shape) in VALUE_SHAPES.iter().enumerate() {
        for loss_fn in [Loss::Mse, Loss::BceWithLogits] {
            let [loss, grad] = check_value_loss(gpu(), loss_fn, shape, 300 + s as u64).unwrap();
            let what = format!("{} {shape:?}", loss_fn.name());
            assert!(loss.ok(), "{what}: {loss:#?}");
            assert!(grad.ok(), "{what} grad: {grad:#?}");
        }
    }
}

#[test]
fn out_of_range_class_indices_are_refused_or_give_nan() {
    let g = gpu();
    let err = Labels::upload(g, &[0, 3, 1], 3).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("row 1"), "{err}");
    // Overwriting: the same checks, and the new indices are what the loss sees.
    let l = Labels::upload(g, &[0, 1], 3).unwrap();
    let e = l.write(&[2, 5]).unwrap_err();
    assert!(e.to_string().contains("row 1"), "{e}");
    assert!(matches!(l.write(&[2]), Err(Error::ShapeMismatch { .. })));
    l.write(&[2, 0]).unwrap();
    let x = upload(g, &[0.0; 6], &[2, 3]);
    let (_, grad) = Loss::SoftmaxCrossEntropy
        .compute(&x, Targets::Classes(&l))
        .unwrap();
    let third = 1.0f32 / 3.0;
    let want = [third, third, third - 1.0, third - 1.0, third, third].map(|v| v / 2.0);
    let got = grad.read::<f32>().unwrap();
    assert!(
        got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{got:?}"
    );
    // Indices put on the GPU unchecked: the row with index 7 >= 3 gets NaN, so does the mean.
    let buf = g.upload(&[f32::from_bits(1), f32::from_bits(7)]).unwrap();
    let l = Labels::from_buffer(g, buf.buffer().clone(), 2, 3).unwrap();
    let x = upload(g, &[0.5, -1.0, 2.0, 0.0, 1.0, 3.0], &[2, 3]);
    let (loss, grad) = Loss::SoftmaxCrossEntropy
        .compute(&x, Targets::Classes(&l))
        .unwrap();
    assert!(loss.read::<f32>().unwrap()[0].is_nan());
    let gv = grad.read::<f32>().unwrap();
    assert!(
        gv[..3].iter().all(|v| v.is_finite()) && gv[3..].iter().all(|v| v.is_nan()),
        "{gv:?}"
    );
}

#[test]
fn bad_loss_arguments_are_typed_errors() {
    let g = gpu();
    let ce = Loss::SoftmaxCrossEntropy;
    let x1 = upload(g, &[1.0; 6], &[6]);
    let x2 = upload(g, &[1.0; 6], &[2, 3]);
    let l3 = Labels::upload(g, &[0, 1, 2], 3).unwrap();
    let l2 = Labels::upload(g, &[0, 1], 3).unwrap();
    let l2c4 = Labels::upload(g, &[0, 1], 4).unwrap();
    assert!(matches!(
        ce.compute(&x1, Targets::Classes(&l2)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        ce.compute(&x2, Targets::Classes(&l3)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        ce.compute(&x2, Targets::Classes(&l2c4)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        ce.compute(&x2, Targets::Values(&x2)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Loss::Mse.compute(&x2, Targets::Values(&x1)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Loss::Mse.compute(&x2, Targets::Classes(&l2)),
        Err(Error::InvalidArgument { .. })
    ));
    let empty = g.zeros(&[0, 3], DType::F32).unwrap();
    let l0 = Labels::upload(g, &[], 3).unwrap();
    assert!(matches!(
        ce.compute(&empty, Targets::Classes(&l0)),
        Err(Error::InvalidArgument { .. })
    ));
    let half = g.upload_f32_as(&[1.0; 6], DType::F16).unwrap();
    assert!(matches!(
        Loss::Mse.compute(&half, Targets::Values(&half)),
        Err(Error::DTypeMismatch { .. })
    ));
}

#[test]
fn optimizer_updates_match_the_reference_over_several_steps() {
    // SGD (plain, momentum with dampening and weight decay, Nesterov), Adam (plain, L2) and AdamW, five steps each
    // against the f64 update (see `check_optimizers` for the inputs and the bound).
    for c in check_optimizers(gpu()).unwrap() {
        assert!(c.ok(), "{}: {:#?}", c.op, c.check);
    }
}

/// Without weight decay an infinite parameter stays infinite, as in PyTorch (which skips a zero decay); the
/// update of `p + 0 * p` would turn it NaN. The f64 reference agrees.
#[test]
fn zero_weight_decay_leaves_an_infinite_parameter_infinite() {
    let g = gpu();
    let p0 = [f32::INFINITY, f32::NEG_INFINITY, 1.0];
    let grads = [0.5f32, -0.25, 0.5];
    let momentum = Optimizer::Sgd(Sgd {
        momentum: 0.9,
        ..Sgd::new(0.1)
    });
    for opt in [
        Optimizer::Sgd(Sgd::new(0.1)),
        momentum,
        Optimizer::Adam(Adam::new(0.01)),
    ] {
        let param = upload(g, &p0, &[3]);
        let grad = upload(g, &grads, &[3]);
        let state = opt.init_state(&param).unwrap();
        let mut want = widen(&p0);
        let mut ref_state = cpu::optim::State::zeros(3);
        for step in 1..=2 {
            opt.update(g, &param, &grad, &state, step).unwrap();
            cpu::optim::update(&opt, &mut want, &widen(&grads), &mut ref_state, step);
        }
        let got: Vec<f32> = param.read().unwrap();
        assert_eq!(got[..2], p0[..2], "{opt:?}");
        assert_eq!(
            want[..2],
            [f64::INFINITY, f64::NEG_INFINITY],
            "{opt:?} reference"
        );
        assert!(
            got[2].is_finite() && (f64::from(got[2]) - want[2]).abs() < 1e-6,
            "{opt:?}: {got:?}"
        );
    }
}

#[test]
fn bad_optimizer_arguments_are_typed_errors() {
    let g = gpu();
    let p = upload(g, &[1.0; 4], &[4]);
    let dp = upload(g, &[1.0; 4], &[4]);
    let bad = Optimizer::Sgd(Sgd {
        nesterov: true,
        ..Sgd::new(0.1)
    });
    assert!(matches!(bad.validate(), Err(Error::InvalidArgument { .. })));
    let adam = Optimizer::Adam(Adam::new(0.1));
    let st = adam.init_state(&p).unwrap();
    assert!(matches!(
        adam.update(g, &p, &dp, &st, 0),
        Err(Error::InvalidArgument { .. })
    ));
    let short = upload(g, &[1.0; 3], &[3]);
    assert!(matches!(
        adam.update(g, &p, &short, &st, 1),
        Err(Error::ShapeMismatch { .. })
    ));
    let sgd_state = Optimizer::Sgd(Sgd::new(0.1)).init_state(&p).unwrap();
    assert!(matches!(
        adam.update(g, &p, &dp, &sgd_state, 1),
        Err(Error::InvalidArgument { .. })
    ));
    // ... and Adam's state is no momentum buffer.
    let momentum = Optimizer::Sgd(Sgd {
        momentum: 0.9,
        ..Sgd::new(0.1)
    });
    assert!(matches!(
        momentum.update(g, &p, &dp, &st, 2),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        adam.update(g, &p, &p, &st, 1),
        Err(Error::InvalidArgument { .. })
    ));
    let nan = Optimizer::Adam(Adam {
        lr: f32::NAN,
        ..Adam::new(0.1)
    });
    assert!(matches!(nan.validate(), Err(Error::InvalidArgument { .. })));
    // What PyTorch accepts is accepted: eps = 0, momentum above 1, any finite dampening; what it refuses is refused.
    let accepted = [
        Optimizer::Adam(Adam {
            eps: 0.0,
            ..Adam::new(0.1)
        }),
        Optimizer::Sgd(Sgd {
            momentum: 1.5,
            dampening: -0.5,
            ..Sgd::new(0.1)
        }),
    ];
    for o in accepted {
        assert!(o.validate().is_ok(), "{o:?}");
    }
    let refused = [
        Optimizer::Adam(Adam {
            eps: -1e-8,
            ..Adam::new(0.1)
        }),
        Optimizer::Sgd(Sgd {
            momentum: -0.1,
            ..Sgd::new(0.1)
        }),
    ];
    for o in refused {
        assert!(
            matches!(o.validate(), Err(Error::InvalidArgument { .. })),
            "{o:?}"
        );
    }
}

/// A small smooth network for the gradient checks: 3 -> 5 -> 4 -> out.
fn small_net(loss: Loss, out: usize) -> ref_mlp::Mlp {
    let sizes = [3, 5, 4, out];
    let hidden = [Activation::Tanh, Activation::Gelu];
    let params = actgpu::nn::init_params(&sizes, &hidden, 7);
    let mut net = ref_mlp::Mlp::new(
        &sizes,
        &hidden,
        loss,
        Optimizer::Sgd(Sgd::new(0.1)),
        &params,
    );
    // Nonzero biases, so their gradients are checked away from the initial point.
    for (l, b) in net.biases.iter_mut().enumerate() {
        b.iter_mut()
            .enumerate()
            .for_each(|(j, v)| *v = 0.1 * (j as f64 - l as f64));
    }
    net
}

#[test]
fn reference_gradients_match_central_finite_differences() {
    const BATCH: usize = 4;
    let x = widen(&random_values(BATCH * 3, 1.5, DType::F32, 800));
    let classes = labels(BATCH, 3, 801);
    let values = widen(&random_values(BATCH * 2, 1.0, DType::F32, 802));
    let probs: Vec<f64> = values.iter().map(|v| v.abs()).collect();
    for (loss, out, target) in [
        (Loss::SoftmaxCrossEntropy, 3, Target::Classes(&classes)),
        (Loss::Mse, 2, Target::Values(&values)),
        (Loss::BceWithLogits, 2, Target::Values(&probs)),
    ] {
        let net = small_net(loss, out);
        let (_, grads) = net.loss_and_grads(&x, BATCH, target);
        // gradcheck's step h = 1e-6 in f64: truncation O(h^2 f''') ~ 1e-12, cancellation ~ 1e-16 / h = 1e-10.
        let h = 1e-6;
        for (l, grad) in grads.iter().enumerate() {
            for (is_bias, analytic) in [(false, &grad.dw), (true, &grad.db)] {
                for (i, &an) in analytic.iter().enumerate() {
                    let at = |delta: f64| {
                        let mut n = net.clone();
                        let p = if is_bias {
                            &mut n.biases[l]
                        } else {
                            &mut n.weights[l]
                        };
                        p[i] += delta;
                        n.loss_and_grads(&x, BATCH, target).0
                    };
                    let fd = (at(h) - at(-h)) / (2.0 * h);
                    assert!(
                        (fd - an).abs() <= 1e-8 + 1e-6 * an.abs(),
                        "{loss:?} layer {l} {} [{i}]: finite difference {fd} vs analytic {an}",
                        if is_bias { "b" } else { "W" }
                    );
                }
            }
        }
    }
}

const SIZES: [usize; 4] = [8, 16, 12, 3];
const HIDDEN: [Activation; 2] = [Activation::Gelu, Activation::Tanh];
const BATCH: usize = 32;

/// 20 batches of seeded inputs and class labels.
fn batches() -> Vec<(Vec<f32>, Vec<u32>)> {
    (0..20)
        .map(|s| {
            (
                random_values(BATCH * SIZES[0], 1.0, DType::F32, 900 + s),
                labels(BATCH, 3, 950 + s),
            )
        })
        .collect()
}

/// Targets in [0, 1] shaped like the output, for MSE and BCE, one set per batch of [`batches`].
fn value_targets() -> Vec<Vec<f32>> {
    (0..20)
        .map(|s| {
            random_values(BATCH * SIZES[3], 0.5, DType::F32, 970 + s)
                .iter()
                .map(|v| v + 0.5)
                .collect()
        })
        .collect()
}

fn train_gpu(opt: Optimizer, seed: u64) -> (Mlp, Vec<f32>) {
    train_gpu_with(gpu(), Loss::SoftmaxCrossEntropy, opt, seed)
}

/// 20 steps of [`batches`] on `g` with `loss` (class labels for cross-entropy, [`value_targets`] otherwise):
/// the network and its loss after every step.
fn train_gpu_with(g: &Gpu, loss: Loss, opt: Optimizer, seed: u64) -> (Mlp, Vec<f32>) {
    let mut net = Mlp::new(g, &SIZES, &HIDDEN, loss, opt, seed).unwrap();
    let mut losses = Vec::new();
    for ((x, t), v) in batches().into_iter().zip(value_targets()) {
        if loss == Loss::SoftmaxCrossEntropy {
            net.train_step_classes(&x, &t).unwrap();
        } else {
            let x = upload(g, &x, &[BATCH, SIZES[0]]);
            let v = upload(g, &v, &[BATCH, SIZES[3]]);
            net.train_step(&x, Targets::Values(&v)).unwrap();
        }
        losses.push(net.loss().unwrap());
    }
    (net, losses)
}

/// Every optimizer the issue names, each with a setting that changes its arithmetic: plain SGD, momentum,
/// Nesterov with weight decay, Adam, Adam with L2 weight decay, AdamW.
fn every_optimizer() -> [Optimizer; 6] {
    [
        Optimizer::Sgd(Sgd::new(0.05)),
        Optimizer::Sgd(Sgd {
            momentum: 0.9,
            ..Sgd::new(0.05)
        }),
        Optimizer::Sgd(Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
            ..Sgd::new(0.05)
        }),
        Optimizer::Adam(Adam::new(0.01)),
        Optimizer::Adam(Adam {
            weight_decay: 0.01,
            ..Adam::new(0.01)
        }),
        Optimizer::Adam(Adam::adamw(0.01)),
    ]
}

#[test]
fn gpu_mlp_matches_the_f64_mlp_after_20_steps() {
    let runs = every_optimizer()
        .into_iter()
        .map(|opt| (Loss::SoftmaxCrossEntropy, opt))
        .chain([
            (Loss::Mse, Optimizer::Adam(Adam::new(0.01))),
            (
                Loss::BceWithLogits,
                Optimizer::Sgd(Sgd {
                    momentum: 0.9,
                    ..Sgd::new(0.05)
                }),
            ),
        ]);
    for (loss, opt) in runs {
        let (net, losses) = train_gpu_with(gpu(), loss, opt, 42);
        let params = actgpu::nn::init_params(&SIZES, &HIDDEN, 42);
        let mut reference = ref_mlp::Mlp::new(&SIZES, &HIDDEN, loss, opt, &params);
        let mut ref_losses = Vec::new();
        for ((x, t), v) in batches().into_iter().zip(value_targets()) {
            let v = widen(&v);
            let target = if loss == Loss::SoftmaxCrossEntropy {
                Target::Classes(&t)
            } else {
                Target::Values(&v)
            };
            ref_losses.push(reference.train_step(&widen(&x), BATCH, target));
        }
        let what = format!("{loss:?} {opt:?}");
        // Every loss within 1e-5 relative: f32 forward passes of depth 3 with dot products of <= 16 terms.
        assert_within(&format!("{what} losses"), &losses, &ref_losses, |i| {
            1e-5 * ref_losses[i]
        });
        // Parameters: |p| <= ~1, where an f32 ULP is <= 1.2e-7. Each step's gradient is within (k + 2) u of its
        // scale (k <= 32 terms per dot product, about 2e-6 relative), times lr <= 0.05, and the update rounds a
        // few more times; momentum 0.9 can carry a gradient error on for ~1/(1 - 0.9) = 10 steps, Adam's step
        // is lr times a ratio within ~1e-6 relative. 20 steps give a few 1e-7: measured 2.2e-7 (SGD) and 1.7e-7
        // (Adam) on lavapipe and llvmpipe. The bound, 2e-6 + 1e-5 |p|, leaves a factor of ~10 and still fails
        // if every step's update were off by 1e-4 of its size, or a single step's by about 1e-3 (1.2e-4 to
        // 7.5e-4 by a simulation of the reference network, depending on the optimizer and the step).
        let got = net.params().unwrap();
        let mut worst = 0.0f64;
        for (l, (w, b)) in got.iter().enumerate() {
            for (gv, rv) in [(w, &reference.weights[l]), (b, &reference.biases[l])] {
                assert_within(&format!("{what} layer {l}"), gv, rv, |i| {
                    2e-6 + 1e-5 * rv[i].abs()
                });
                for (a, r) in gv.iter().zip(rv.iter()) {
                    worst = worst.max((f64::from(*a) - r).abs());
                }
            }
        }
        eprintln!("{what}: worst parameter difference after 20 steps {worst:.3e}");
    }
}

/// A learning rate changed between steps (`Mlp::set_lr`) reaches the next step's update: the GPU network on a
/// schedule that lowers it every 5 steps ends where the f64 network on the same schedule ends, within the
/// bound of `gpu_mlp_matches_the_f64_mlp_after_20_steps`, and away from the network trained at a constant rate.
#[test]
fn learning_rate_changes_between_steps_reach_the_update() {
    let g = gpu();
    let lr_at = |step: usize, base: f32| base / (1 + step / 5) as f32;
    let loss = Loss::SoftmaxCrossEntropy;
    for opt in [every_optimizer()[1], every_optimizer()[3]] {
        let base = opt.lr();
        let mut net = Mlp::new(g, &SIZES, &HIDDEN, loss, opt, 42).unwrap();
        let params = actgpu::nn::init_params(&SIZES, &HIDDEN, 42);
        let mut reference = ref_mlp::Mlp::new(&SIZES, &HIDDEN, loss, opt, &params);
        for (step, (x, t)) in batches().into_iter().enumerate() {
            net.set_lr(lr_at(step, base)).unwrap();
            reference.optimizer.set_lr(lr_at(step, base));
            net.train_step_classes(&x, &t).unwrap();
            reference.train_step(&widen(&x), BATCH, Target::Classes(&t));
        }
        // A rate that is not finite, or negative, is refused at once and leaves the rate as it was.
        let kept = net.optimizer().lr();
        for bad in [f32::NAN, f32::INFINITY, -0.5] {
            assert!(matches!(
                net.set_lr(bad),
                Err(actgpu::Error::InvalidArgument { .. })
            ));
            assert_eq!(net.optimizer().lr(), kept);
        }
        let (constant, _) = train_gpu(opt, 42);
        let (got, fixed) = (net.params().unwrap(), constant.params().unwrap());
        let mut moved = 0.0f64;
        for (l, ((w, b), (fw, fb))) in got.iter().zip(&fixed).enumerate() {
            for (gv, rv) in [(w, &reference.weights[l]), (b, &reference.biases[l])] {
                assert_within(&format!("{opt:?} scheduled, layer {l}"), gv, rv, |i| {
                    2e-6 + 1e-5 * rv[i].abs()
                });
            }
            for (a, c) in w.iter().chain(b).zip(fw.iter().chain(fb)) {
                moved = moved.max(f64::from((a - c).abs()));
            }
        }
        assert!(
            moved > 1e-3,
            "{opt:?}: the schedule changed nothing ({moved:e})"
        );
    }
}

/// A batch of 4,100 rows on a context whose grids hold 32 workgroups per dimension: every product's row
/// blocks and every elementwise grid continue past the limit, and the column sums' row blocks grow to fit it.
/// Three Adam steps end where the f64 reference ends.
#[test]
fn batches_taller_than_the_grid_limit_train() {
    const TALL: usize = 4100;
    let small = common::small_grid_gpu();
    let opt = Optimizer::Adam(Adam::new(0.01));
    let loss = Loss::SoftmaxCrossEntropy;
    let mut net = Mlp::new(&small, &SIZES, &HIDDEN, loss, opt, 9).unwrap();
    let params = actgpu::nn::init_params(&SIZES, &HIDDEN, 9);
    let mut reference = ref_mlp::Mlp::new(&SIZES, &HIDDEN, loss, opt, &params);
    let (mut losses, mut ref_losses) = (Vec::new(), Vec::new());
    for s in 0..3 {
        let x = random_values(TALL * SIZES[0], 1.0, DType::F32, 60 + s);
        let t = labels(TALL, 3, 70 + s);
        net.train_step_classes(&x, &t).unwrap();
        losses.push(net.loss().unwrap());
        ref_losses.push(reference.train_step(&widen(&x), TALL, Target::Classes(&t)));
    }
    // The loss is a mean of 4,100 rows and dW sums 4,100 products: a few 1e-6 relative at most in practice;
    // Adam's steps are lr times a ratio that such errors move by about as much.
    assert_within("tall batch losses", &losses, &ref_losses, |i| {
        1e-5 * ref_losses[i]
    });
    for (l, (w, b)) in net.params().unwrap().iter().enumerate() {
        for (gv, rv) in [(w, &reference.weights[l]), (b, &reference.biases[l])] {
            assert_within(&format!("tall batch layer {l}"), gv, rv, |i| {
                2e-6 + 1e-5 * rv[i].abs()
            });
        }
    }
}

/// Predicting and evaluating between steps, on batches of other sizes, leaves training bit for bit as it was:
/// inference has buffers of its own.
#[test]
fn inference_between_steps_changes_no_training_bit() {
    let opt = Optimizer::Adam(Adam::new(0.01));
    let (plain, plain_losses) = train_gpu(opt, 9);
    let g = gpu();
    let mut net = Mlp::new(g, &SIZES, &HIDDEN, Loss::SoftmaxCrossEntropy, opt, 9).unwrap();
    let mut losses = Vec::new();
    for (s, (x, t)) in batches().into_iter().enumerate() {
        net.train_step_classes(&x, &t).unwrap();
        losses.push(net.loss().unwrap());
        let rows = [1, 7, BATCH][s % 3];
        let probe = upload(g, &x[..rows * SIZES[0]], &[rows, SIZES[0]]);
        let accuracy = net.evaluate(&probe, &t[..rows]).unwrap();
        assert!((0.0..=1.0).contains(&accuracy));
    }
    assert_same_training((&net, &losses), (&plain, &plain_losses));
}

#[test]
fn training_is_deterministic() {
    let adam = Optimizer::Adam(Adam::adamw(0.01));
    let (a, la) = train_gpu(adam, 5);
    let (b, lb) = train_gpu(adam, 5);
    assert_same_training((&a, &la), (&b, &lb));
    // Another seed starts elsewhere.
    let (c, _) = train_gpu(adam, 6);
    assert_ne!(
        bits(&a.params().unwrap()[0].0),
        bits(&c.params().unwrap()[0].0)
    );
}

#[test]
fn predict_and_evaluate_agree_with_the_reference() {
    let g = gpu();
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let mut net = Mlp::new(g, &SIZES, &HIDDEN, Loss::SoftmaxCrossEntropy, opt, 3).unwrap();
    let params = actgpu::nn::init_params(&SIZES, &HIDDEN, 3);
    let reference = ref_mlp::Mlp::new(&SIZES, &HIDDEN, Loss::SoftmaxCrossEntropy, opt, &params);
    // Batch sizes 1 and 7 on the same network (the workspace is rebuilt).
    // Passes of at most `rows` rows: 50 rows as 6 passes of 8 and one of 2 (a prefix of the pass buffers).
    for (batch, rows) in [(1usize, None), (7, None), (50, Some(8)), (7, Some(7))] {
        net.set_inference_rows(rows).unwrap();
        let x = random_values(batch * SIZES[0], 1.0, DType::F32, 70 + batch as u64);
        let out = net.predict(&upload(g, &x, &[batch, SIZES[0]])).unwrap();
        assert_eq!(out.shape(), [batch, 3]);
        let want = reference.predict(&widen(&x), batch);
        assert_within("predict", &out.read::<f32>().unwrap(), &want, |i| {
            1e-5 * (1.0 + want[i].abs())
        });
        let argmax: Vec<u32> = want
            .chunks(3)
            .map(|r| (0..3).fold(0, |b, j| if r[j] > r[b] { j } else { b }) as u32)
            .collect();
        let acc = net
            .evaluate(&upload(g, &x, &[batch, SIZES[0]]), &argmax)
            .unwrap();
        assert_eq!(acc, 1.0);
    }
}

#[test]
fn predicted_probabilities_are_the_loss_reading_of_the_outputs() {
    let g = gpu();
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let params = actgpu::nn::init_params(&SIZES, &HIDDEN, 3);
    let batch = 9;
    let x = random_values(batch * SIZES[0], 2.0, DType::F32, 91);
    // In one pass and in passes of 4 rows.
    for (loss, rows) in [
        (Loss::SoftmaxCrossEntropy, None),
        (Loss::SoftmaxCrossEntropy, Some(4)),
        (Loss::BceWithLogits, None),
    ] {
        let mut net = Mlp::new(g, &SIZES, &HIDDEN, loss, opt, 3).unwrap();
        net.set_inference_rows(rows).unwrap();
        let reference = ref_mlp::Mlp::new(&SIZES, &HIDDEN, loss, opt, &params);
        let logits = reference.predict(&widen(&x), batch);
        let want: Vec<f64> = match loss {
            Loss::SoftmaxCrossEntropy => {
                actgpu::cpu::softmax::forward(actgpu::SoftmaxKind::Softmax, &logits, 3)
            }
            _ => logits.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect(),
        };
        let got = net
            .predict_probabilities(&upload(g, &x, &[batch, SIZES[0]]))
            .unwrap();
        assert_eq!(got.shape(), [batch, 3]);
        // predict's own logits are within 1e-5 (1 + |z|); p moves by at most p times that through softmax
        // or sigmoid (the logits here are a few units at most).
        assert_within(loss.name(), &got.read::<f32>().unwrap(), &want, |i| {
            1e-4 * (1e-3 + want[i].abs())
        });
    }
    let mse = Mlp::new(g, &SIZES, &HIDDEN, Loss::Mse, opt, 3).unwrap();
    assert!(matches!(
        mse.predict_probabilities(&upload(g, &x, &[batch, SIZES[0]])),
        Err(Error::InvalidArgument {
            op: "Mlp::predict_probabilities",
            ..
        })
    ));
}

/// A tensor shaped like `like` in a host buffer with `STORAGE` usage only (no `COPY_SRC`).
fn storage_only(g: &Gpu, like: &Tensor) -> Tensor {
    let buffer = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: like.buffer().size(),
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    Tensor::from_buffer(g, buffer, like.shape(), DType::F32).unwrap()
}

/// Inference in passes: the outputs of a batch in passes equal one pass's within rounding (they can take
/// another kernel or split), `free_workspaces` drops the buffers and the next call allocates them again, a pass
/// of no rows is refused, and a batch in passes needs `COPY_SRC` on `x`.
#[test]
fn inference_in_passes_matches_one_pass() {
    let g = gpu();
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let mut net = Mlp::new(g, &SIZES, &HIDDEN, Loss::SoftmaxCrossEntropy, opt, 4).unwrap();
    let batch = 300;
    let x = upload(
        g,
        &random_values(batch * SIZES[0], 2.0, DType::F32, 9),
        &[batch, SIZES[0]],
    );
    let whole: Vec<f32> = net.predict(&x).unwrap().read().unwrap();
    net.set_inference_rows(Some(64)).unwrap();
    assert_eq!(net.inference_rows(), 64);
    net.free_workspaces();
    let parts: Vec<f32> = net.predict(&x).unwrap().read().unwrap();
    let whole = widen(&whole);
    assert_within("passes of 64 rows", &parts, &whole, |i| {
        1e-6 * (1.0 + whole[i].abs())
    });
    assert!(matches!(
        net.set_inference_rows(Some(0)),
        Err(Error::InvalidArgument { .. })
    ));
    net.set_inference_rows(None).unwrap();
    assert!(net.inference_rows() >= batch);
    // A host buffer without COPY_SRC runs in one pass, and is refused where it needs several.
    let own = storage_only(g, &x);
    net.predict(&own).unwrap();
    net.set_inference_rows(Some(100)).unwrap();
    assert!(matches!(
        net.predict(&own),
        Err(Error::MissingUsage {
            op: "Mlp::predict",
            ..
        })
    ));
}

/// The parameters of `a` and `b`, layer by layer, within `rel (1 + |p|)` of each other.
fn assert_same_params(what: &str, a: &Mlp, b: &Mlp, rel: f64) {
    for (l, ((wa, ba), (wb, bb))) in a
        .params()
        .unwrap()
        .iter()
        .zip(b.params().unwrap())
        .enumerate()
    {
        for (name, got, want) in [("W", &wb, wa), ("b", &bb, ba)] {
            let want = widen(want);
            assert_within(&format!("{what}: layer {l} {name}"), got, &want, |i| {
                rel * (1.0 + want[i].abs())
            });
        }
    }
}

/// A batch trained in passes of 8 rows (50 rows: six passes of 8 and one of 2, the last a prefix of the pass
/// buffers) reaches the parameters and losses of one pass, for cross-entropy with momentum and for MSE, with
/// the diagnostics' counts over the whole batch; a source without COPY_SRC is refused only where passes need it.
#[test]
fn training_in_passes_matches_one_pass() {
    let g = gpu();
    let batch = 50;
    let x = upload(
        g,
        &random_values(batch * SIZES[0], 1.0, DType::F32, 31),
        &[batch, SIZES[0]],
    );
    let classes = Labels::upload(g, &labels(batch, SIZES[3], 32), SIZES[3]).unwrap();
    let values: Vec<f32> = random_values(batch * SIZES[3], 0.5, DType::F32, 33);
    let values = upload(g, &values, &[batch, SIZES[3]]);
    let momentum = Optimizer::Sgd(Sgd {
        momentum: 0.9,
        ..Sgd::new(0.05)
    });
    for (loss, opt, targets) in [
        (
            Loss::SoftmaxCrossEntropy,
            momentum,
            Targets::Classes(&classes),
        ),
        (
            Loss::Mse,
            Optimizer::Sgd(Sgd::new(0.1)),
            Targets::Values(&values),
        ),
    ] {
        let mut whole = Mlp::new(g, &SIZES, &HIDDEN, loss, opt, 8).unwrap();
        let mut parts = Mlp::new(g, &SIZES, &HIDDEN, loss, opt, 8).unwrap();
        assert!(whole.train_rows() >= batch);
        parts.set_train_rows(Some(8)).unwrap();
        assert_eq!(parts.train_rows(), 8);
        for net in [&mut whole, &mut parts] {
            net.set_diagnostics(true).unwrap();
        }
        for step in 0..3 {
            whole.train_step(&x, targets).unwrap();
            parts.train_step(&x, targets).unwrap();
            let (a, b) = (whole.loss().unwrap(), parts.loss().unwrap());
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + a.abs()),
                "{loss:?} step {step}: loss {a} in one pass, {b} in passes"
            );
        }
        assert_same_params(&format!("{loss:?}"), &whole, &parts, 1e-5);
        let (dw, dp) = (whole.diagnostics().unwrap(), parts.diagnostics().unwrap());
        for (a, b) in dw.iter().zip(&dp) {
            let counts = |d: &actgpu::nn::LayerDiagnostics| {
                (
                    d.units,
                    d.dead,
                    d.saturated,
                    d.dead_neurons,
                    d.saturated_neurons,
                )
            };
            assert_eq!(counts(a), counts(b), "{loss:?}");
            assert!(
                (a.grad_norm() - b.grad_norm()).abs() <= 1e-5 * a.grad_norm(),
                "{loss:?}"
            );
        }
    }
    // A host buffer without COPY_SRC trains in one pass, and is refused where it needs several.
    let own = storage_only(g, &x);
    let ce = Loss::SoftmaxCrossEntropy;
    let mut net = Mlp::new(g, &SIZES, &HIDDEN, ce, momentum, 8).unwrap();
    net.train_step(&own, Targets::Classes(&classes)).unwrap();
    net.set_train_rows(Some(16)).unwrap();
    assert!(matches!(
        net.train_step(&own, Targets::Classes(&classes)),
        Err(Error::MissingUsage {
            op: "Mlp::train_step",
            ..
        })
    ));
    assert!(matches!(
        net.set_train_rows(Some(0)),
        Err(Error::InvalidArgument { .. })
    ));
    // Value targets must be f32 before any pass copies their rows.
    let mut mse = Mlp::new(g, &SIZES, &HIDDEN, Loss::Mse, momentum, 8).unwrap();
    mse.set_train_rows(Some(16)).unwrap();
    let half = g.zeros(&[batch, SIZES[3]], DType::F16).unwrap();
    assert!(matches!(
        mse.train_step(&x, Targets::Values(&half)),
        Err(Error::DTypeMismatch { .. })
    ));
}

#[test]
fn bad_network_arguments_are_typed_errors() {
    let g = gpu();
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let ce = Loss::SoftmaxCrossEntropy;
    assert!(matches!(
        Mlp::new(g, &[4], &[], ce, opt, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Mlp::new(g, &[4, 0, 2], &[Activation::Relu], ce, opt, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Mlp::new(g, &[4, 3, 2], &[], ce, opt, 0),
        Err(Error::InvalidArgument { .. })
    ));
    // A weight past one storage binding is refused before its host copy is drawn (4 TB here; and an element
    // count that overflows usize).
    for sizes in [[1_000_000, 1_000_000, 2], [2, usize::MAX, 2]] {
        assert!(matches!(
            Mlp::new(g, &sizes, &[Activation::Relu], ce, opt, 0),
            Err(Error::LimitExceeded {
                limit: "max_storage_buffer_binding_size",
                ..
            })
        ));
    }
    let mut net = Mlp::new(g, &[4, 3, 2], &[Activation::Relu], ce, opt, 0).unwrap();
    assert!(matches!(net.loss(), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        net.train_step_classes(&[0.0; 6], &[0]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        net.train_step_classes(&[0.0; 8], &[0]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        net.train_step_classes(&[0.0; 8], &[0, 2]),
        Err(Error::InvalidArgument { .. })
    ));
    let x = upload(g, &[0.0; 8], &[2, 4]);
    // Labels made for another class count: said so, not reported as a shape.
    let three = Labels::upload(g, &[0, 1], 3).unwrap();
    let e = net.train_step(&x, Targets::Classes(&three)).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { reason, .. } if reason.contains("3 classes")),
        "{e}"
    );
    let v = upload(g, &[0.0; 6], &[2, 3]);
    assert!(matches!(
        net.train_step(&x, Targets::Values(&v)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        net.evaluate(&x, &[0]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        net.evaluate(&x, &[0, 2]),
        Err(Error::InvalidArgument { .. })
    ));
    // An empty batch is said to be one, by every entry point (not a shape that asks for a row).
    let empty_batch = |what: &str, r: Result<(), Error>| {
        assert!(
            matches!(&r, Err(Error::InvalidArgument { reason, .. }) if reason.contains("empty batch")),
            "{what}: {r:?}"
        )
    };
    let none = g.zeros(&[0, 4], DType::F32).unwrap();
    let no_labels = Labels::upload(g, &[], 2).unwrap();
    empty_batch(
        "train_step",
        net.train_step(&none, Targets::Classes(&no_labels)),
    );
    empty_batch("train_step_classes", net.train_step_classes(&[], &[]));
    empty_batch("predict", net.predict(&none).map(drop));
    empty_batch("evaluate", net.evaluate(&none, &[]).map(drop));
    net.train_step_classes(&[0.0; 8], &[0, 1]).unwrap();
    assert!(net.loss().unwrap().is_finite());
}

/// `Mlp` is `Send + Sync` (a compile-time check): an `Arc<Mlp>` crosses threads.
#[test]
fn mlp_is_send_and_sync() {
    const fn send_sync<T: Send + Sync>() {}
    const _: () = send_sync::<Mlp>();
}

/// `predict` and `evaluate` take `&self`: through a shared borrow (while a weight is borrowed too), from four
/// threads at once in a scope and from two threads sharing an `Arc<Mlp>`, every output is the one a lone call
/// gives, bit for bit, in one pass and in passes (whose buffers a call takes for itself, or makes when another
/// call holds them); that lone output matches the f64 reference; and `free_workspaces` and
/// `set_inference_rows` still work on the network afterwards.
#[test]
fn predict_and_evaluate_through_a_shared_borrow_and_from_threads() {
    let g = gpu();
    let opt = Optimizer::Adam(Adam::new(0.01));
    let (mut net, _) = train_gpu(opt, 12);
    // Passes of at most 8 rows: 50 rows as six passes and a short one; 8, 7 and 1 rows in one pass.
    net.set_inference_rows(Some(8)).unwrap();
    let sets: Vec<(Vec<f32>, Tensor, Vec<u32>)> = [(50usize, 80u64), (7, 81), (1, 82), (8, 83)]
        .iter()
        .map(|&(rows, seed)| {
            let x = random_values(rows * SIZES[0], 2.0, DType::F32, seed);
            let xt = upload(g, &x, &[rows, SIZES[0]]);
            (x, xt, labels(rows, 3, seed + 100))
        })
        .collect();
    let run = |net: &Mlp| -> Vec<(Vec<u32>, f32)> {
        sets.iter()
            .map(|(_, x, t)| {
                let out = net.predict(x).unwrap().read::<f32>().unwrap();
                (bits(&out), net.evaluate(x, t).unwrap())
            })
            .collect()
    };
    let shared: &Mlp = &net;
    let (w0, _) = shared.layer(0).unwrap();
    let alone = run(shared);
    assert_eq!(w0.shape(), [SIZES[0], SIZES[1]]);

    // The lone outputs are the network's: against the f64 network trained the same way.
    let params = actgpu::nn::init_params(&SIZES, &HIDDEN, 12);
    let mut reference = ref_mlp::Mlp::new(&SIZES, &HIDDEN, Loss::SoftmaxCrossEntropy, opt, &params);
    for (x, t) in batches() {
        reference.train_step(&widen(&x), BATCH, Target::Classes(&t));
    }
    for ((x, _, _), (out, _)) in sets.iter().zip(&alone) {
        let want = reference.predict(&widen(x), x.len() / SIZES[0]);
        let got: Vec<f32> = out.iter().map(|&b| f32::from_bits(b)).collect();
        assert_within("predict through &Mlp", &got, &want, |i| {
            1e-4 * (1.0 + want[i].abs())
        });
    }

    // Four threads at once, each over the sets in its own order, three rounds.
    let from_threads: Vec<Vec<(usize, Vec<u32>, f32)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (net, sets) = (&net, &sets);
                scope.spawn(move || {
                    let mut got = Vec::new();
                    for round in 0..3 {
                        for k in 0..sets.len() {
                            let i = (k + t + round) % sets.len();
                            let (_, x, labels) = &sets[i];
                            let out = net.predict(x).unwrap().read::<f32>().unwrap();
                            got.push((i, bits(&out), net.evaluate(x, labels).unwrap()));
                        }
                    }
                    got
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, got) in from_threads.iter().enumerate() {
        for (i, out, acc) in got {
            assert!(
                *out == alone[*i].0 && *acc == alone[*i].1,
                "thread {t}, set {i}: another output than a lone call's"
            );
        }
    }

    // Two threads sharing an Arc<Mlp>, as a server would.
    let net = std::sync::Arc::new(net);
    let shared_sets = std::sync::Arc::new(sets.clone());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (net, sets) = (net.clone(), shared_sets.clone());
            std::thread::spawn(move || {
                sets.iter()
                    .map(|(_, x, t)| {
                        let out = net.predict(x).unwrap().read::<f32>().unwrap();
                        (bits(&out), net.evaluate(x, t).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        assert!(
            h.join().unwrap() == alone,
            "Arc<Mlp>: another output than a lone call's"
        );
    }

    // Back to one owner: the buffers can be dropped and the pass size changed, and outputs stay.
    let mut net = std::sync::Arc::try_unwrap(net).unwrap();
    net.free_workspaces();
    assert_eq!(run(&net), alone);
    net.set_inference_rows(None).unwrap();
    let whole = run(&net);
    for ((out, _), (want, _)) in whole.iter().zip(&alone) {
        let (out, want): (Vec<f32>, Vec<f32>) = (
            out.iter().map(|&b| f32::from_bits(b)).collect(),
            want.iter().map(|&b| f32::from_bits(b)).collect(),
        );
        let want = widen(&want);
        assert_within("one pass against passes of 8", &out, &want, |i| {
            1e-6 * (1.0 + want[i].abs())
        });
    }
}

/// A caller's mistake in a network's public calls comes back naming that call in `op`, not an internal step
/// (the optimizer's update, the loss kernel, the label upload, an activation's check).
#[test]
fn network_errors_name_the_public_call() {
    let g = gpu();
    let ce = Loss::SoftmaxCrossEntropy;
    let sgd = Optimizer::Sgd(Sgd::new(0.1));
    let relu = [Activation::Relu];
    let nan_lr = Optimizer::Adam(Adam {
        lr: f32::NAN,
        ..Adam::new(0.01)
    });
    let invalid = |r: actgpu::Result<Mlp>| match r {
        Err(Error::InvalidArgument { op, reason }) => (op, reason),
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    // A NaN learning rate: at construction and when the rate changes.
    let (op, reason) = invalid(Mlp::new(g, &[4, 3, 2], &relu, ce, nan_lr, 0));
    assert_eq!(op, "Mlp::new", "{reason}");
    assert!(reason.contains("lr"), "{reason}");
    let kinds = [actgpu::Hidden::Act(Activation::Relu)];
    let (op, _) = invalid(Mlp::with_layers(g, &[4, 3, 2], &kinds, ce, nan_lr, 0));
    assert_eq!(op, "Mlp::with_layers");
    let saved = Mlp::new(g, &[4, 3, 2], &relu, ce, sgd, 0)
        .unwrap()
        .to_safetensors_bytes()
        .unwrap();
    let (op, _) = invalid(Mlp::from_safetensors(g, &saved, ce, nan_lr));
    assert_eq!(op, "Mlp::from_safetensors");
    let mut net = Mlp::new(g, &[4, 3, 2], &relu, ce, sgd, 0).unwrap();
    for bad in [f32::NAN, -1.0] {
        assert!(
            matches!(
                net.set_lr(bad),
                Err(Error::InvalidArgument {
                    op: "Mlp::set_lr",
                    ..
                })
            ),
            "{bad}"
        );
    }
    // A layer's bad constant: the call in `op`, the layer and its kind in the reason.
    let celu = [Activation::Celu { alpha: 0.0 }];
    let (op, reason) = invalid(Mlp::new(g, &[4, 3, 2], &celu, ce, sgd, 0));
    assert_eq!(op, "Mlp::new");
    assert!(reason.contains("hidden layer 0 (celu(0))"), "{reason}");
    let prelu = [actgpu::Hidden::Learnable {
        kind: actgpu::Learnable::Prelu,
        init: f32::NAN,
        per_channel: false,
    }];
    let (op, reason) = invalid(Mlp::with_layers(g, &[4, 3, 2], &prelu, ce, sgd, 0));
    assert_eq!(op, "Mlp::with_layers");
    assert!(reason.contains("prelu"), "{reason}");
    assert_eq!(invalid(Mlp::new(g, &[4], &[], ce, sgd, 0)).0, "Mlp::new");

    // Inference: the wrong width, type or context, and a source without COPY_SRC where passes need it.
    let x = upload(g, &[0.5; 8], &[2, 4]);
    let wide = upload(g, &[0.5; 10], &[2, 5]);
    assert!(matches!(
        net.predict(&wide),
        Err(Error::ShapeMismatch {
            op: "Mlp::predict",
            ..
        })
    ));
    assert!(matches!(
        net.evaluate(&wide, &[0, 1]),
        Err(Error::ShapeMismatch {
            op: "Mlp::evaluate",
            ..
        })
    ));
    let half = g
        .upload_f32_as(&[0.5; 8], DType::F16)
        .unwrap()
        .reshape(&[2, 4])
        .unwrap();
    assert!(matches!(
        net.predict(&half),
        Err(Error::DTypeMismatch {
            op: "Mlp::predict",
            ..
        })
    ));
    let other = common::small_grid_gpu();
    let elsewhere = upload(&other, &[0.5; 8], &[2, 4]);
    assert!(matches!(
        net.evaluate(&elsewhere, &[0, 1]),
        Err(Error::DeviceMismatch {
            op: "Mlp::evaluate"
        })
    ));
    net.set_inference_rows(Some(1)).unwrap();
    let own = storage_only(g, &x);
    assert!(matches!(
        net.evaluate(&own, &[0, 1]),
        Err(Error::MissingUsage {
            op: "Mlp::evaluate",
            ..
        })
    ));

    // Training: the wrong width, targets of the wrong kind or context (the loss kernel's own errors would
    // name the loss), labels out of range or too few (the label upload's would name `Labels::upload`).
    let two = Labels::upload(g, &[0, 1], 2).unwrap();
    assert!(matches!(
        net.train_step(&wide, Targets::Classes(&two)),
        Err(Error::ShapeMismatch {
            op: "Mlp::train_step",
            ..
        })
    ));
    let values = upload(g, &[0.5; 4], &[2, 2]);
    assert!(matches!(
        net.train_step(&x, Targets::Values(&values)),
        Err(Error::InvalidArgument {
            op: "Mlp::train_step",
            ..
        })
    ));
    let two_elsewhere = Labels::upload(&other, &[0, 1], 2).unwrap();
    assert!(matches!(
        net.train_step(&x, Targets::Classes(&two_elsewhere)),
        Err(Error::DeviceMismatch {
            op: "Mlp::train_step"
        })
    ));
    let mut mse = Mlp::new(g, &[4, 3, 2], &relu, Loss::Mse, sgd, 0).unwrap();
    assert!(matches!(
        mse.train_step(&x, Targets::Classes(&two)),
        Err(Error::InvalidArgument {
            op: "Mlp::train_step",
            ..
        })
    ));
    let values_elsewhere = upload(&other, &[0.5; 4], &[2, 2]);
    assert!(matches!(
        mse.train_step(&x, Targets::Values(&values_elsewhere)),
        Err(Error::DeviceMismatch {
            op: "Mlp::train_step"
        })
    ));
    for (x, labels, what) in [
        (&[0.0f32; 8][..], &[0u32, 2][..], "a label out of range"),
        (&[0.0; 8], &[0], "too few labels"),
        (&[0.0; 6], &[0, 1], "a partial row"),
    ] {
        let e = net.train_step_classes(x, labels).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    op: "Mlp::train_step_classes",
                    ..
                } | Error::ShapeMismatch {
                    op: "Mlp::train_step_classes",
                    ..
                }
            ),
            "{what}: {e:?}"
        );
    }
    assert!(matches!(
        net.loss(),
        Err(Error::InvalidArgument {
            op: "Mlp::loss",
            ..
        })
    ));
    // None of them changed the network: it still trains.
    net.train_step_classes(&[0.0; 8], &[0, 1]).unwrap();
    mse.train_step(&x, Targets::Values(&values)).unwrap();
    assert!(net.loss().unwrap().is_finite() && mse.loss().unwrap().is_finite());
}
