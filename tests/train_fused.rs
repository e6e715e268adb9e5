//! An MLP with gated (SwiGLU, GeGLU) and learnable (PReLU per channel, Swish-beta, ELU-alpha) hidden layers,
//! against the f64 reference: the reference's gradients, the activation parameters' included, against central
//! finite differences; the GPU network against the f64 network after 20 steps of SGD and of Adam; predictions;
//! determinism; the diagnostics' gradient norms; the safetensors round trip; typed errors.

mod common;

use actgpu::cpu::mlp::{self as ref_mlp, Target};
use actgpu::nn::safetensors::SafeTensors;
use actgpu::nn::{init_layers, Hidden};
use actgpu::verify::fused::random_values;
use actgpu::{Adam, DType, Error, Gated, Learnable, Loss, Mlp, Optimizer, Sgd};
use common::{assert_same_training, assert_within, bits, gpu, labels, widen};

/// 8 -> SwiGLU 12 -> GeGLU 10 -> PReLU (per channel) 16 -> Swish-beta (shared) 9 -> 3. PReLU's 16 columns take
/// the learnable backward's one-pass reduction and the shared Swish parameter its scalar one (the two-pass
/// reduction of a per-channel layer whose width is not a multiple of 8 runs in
/// `other_gated_and_learnable_kinds_match_the_f64_mlp_over_changing_batches`).
const SIZES: [usize; 6] = [8, 12, 10, 16, 9, 3];
const HIDDEN: [Hidden; 4] = [
    Hidden::Gated(Gated::SWIGLU),
    Hidden::Gated(Gated::GEGLU),
    Hidden::learnable(Learnable::Prelu, true),
    Hidden::learnable(Learnable::Swish, false),
];
const BATCH: usize = 32;

/// A small network for the gradient checks, with every fused kind and nonzero biases and parameters away from
/// their defaults: 3 -> SwiGLU 4 -> GeGLU 3 -> PReLU/c 4 -> Swish 3 -> ELU/c 3 -> out.
fn small_net(loss: Loss, out: usize) -> ref_mlp::Mlp {
    let sizes = [3, 4, 3, 4, 3, 3, out];
    let hidden = [
        Hidden::Gated(Gated::SWIGLU),
        Hidden::Gated(Gated::GEGLU),
        Hidden::learnable(Learnable::Prelu, true),
        Hidden::Learnable {
            kind: Learnable::Swish,
            init: 1.3,
            per_channel: false,
        },
        Hidden::Learnable {
            kind: Learnable::Elu,
            init: 0.8,
            per_channel: true,
        },
    ];
    let params = init_layers(&sizes, &hidden, 7);
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let mut net = ref_mlp::Mlp::with_layers(&sizes, &hidden, loss, opt, &params);
    for (l, b) in net.biases.iter_mut().enumerate() {
        b.iter_mut()
            .enumerate()
            .for_each(|(j, v)| *v = 0.1 * (j as f64 - l as f64));
    }
    for p in net.act_params.iter_mut() {
        p.iter_mut()
            .enumerate()
            .for_each(|(j, v)| *v += 0.05 * j as f64);
    }
    net
}

#[test]
fn reference_gradients_match_central_finite_differences() {
    const BATCH: usize = 5;
    let x = widen(&random_values(BATCH * 3, 1.5, DType::F32, 800));
    let classes = labels(BATCH, 3, 801);
    let values = widen(&random_values(BATCH * 2, 1.0, DType::F32, 802));
    for (loss, out, target) in [
        (Loss::SoftmaxCrossEntropy, 3, Target::Classes(&classes)),
        (Loss::Mse, 2, Target::Values(&values)),
    ] {
        let net = small_net(loss, out);
        let grads = net.gradients(&x, BATCH, target);
        // Every kind of parameter gets a gradient (none of the checks below is vacuous).
        for l in 2..5 {
            assert!(grads.act_params[l].iter().any(|g| g.abs() > 1e-6), "{l}");
        }
        let h = 1e-6;
        let loss_at = |n: &ref_mlp::Mlp| n.loss_and_grads(&x, BATCH, target).0;
        for l in 0..net.weights.len() {
            let g = &grads.dense[l];
            for (which, analytic) in [(0, &g.dw), (1, &g.db), (2, &grads.act_params[l])] {
                for (i, &an) in analytic.iter().enumerate() {
                    let at = |delta: f64| {
                        let mut n = net.clone();
                        match which {
                            0 => n.weights[l][i] += delta,
                            1 => n.biases[l][i] += delta,
                            _ => n.act_params[l][i] += delta,
                        }
                        loss_at(&n)
                    };
                    let fd = (at(h) - at(-h)) / (2.0 * h);
                    assert!(
                        (fd - an).abs() <= 1e-8 + 1e-6 * an.abs(),
                        "{loss:?} layer {l} {} [{i}]: finite difference {fd} vs analytic {an}",
                        ["W", "b", "p"][which]
                    );
                }
            }
        }
    }
}

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

fn train_gpu(opt: Optimizer, seed: u64) -> (Mlp, Vec<f32>) {
    let g = gpu();
    let ce = Loss::SoftmaxCrossEntropy;
    let mut net = Mlp::with_layers(g, &SIZES, &HIDDEN, ce, opt, seed).unwrap();
    let mut losses = Vec::new();
    for (x, t) in batches() {
        net.train_step_classes(&x, &t).unwrap();
        losses.push(net.loss().unwrap());
    }
    (net, losses)
}

fn reference(opt: Optimizer, seed: u64) -> ref_mlp::Mlp {
    let params = init_layers(&SIZES, &HIDDEN, seed);
    ref_mlp::Mlp::with_layers(&SIZES, &HIDDEN, Loss::SoftmaxCrossEntropy, opt, &params)
}

#[test]
fn gpu_mlp_with_gated_and_learnable_layers_matches_the_f64_mlp_after_20_steps() {
    let sgd = Optimizer::Sgd(Sgd {
        momentum: 0.9,
        ..Sgd::new(0.05)
    });
    let adam = Optimizer::Adam(Adam::new(0.01));
    for opt in [sgd, adam] {
        let (net, losses) = train_gpu(opt, 42);
        let mut reference = reference(opt, 42);
        let mut ref_losses = Vec::new();
        for (x, t) in batches() {
            ref_losses.push(reference.train_step(&widen(&x), BATCH, Target::Classes(&t)));
        }
        // The same bounds as the plain network's test (tests/train.rs): losses within 1e-5 relative, parameters
        // within 2e-6 + 1e-5 |p| after 20 steps. The network is deeper (5 linear maps, dot products of <= 24
        // terms) and the gated units and learnable activations add a few roundings per element each.
        assert_within(&format!("{opt:?} losses"), &losses, &ref_losses, |i| {
            1e-5 * ref_losses[i]
        });
        let got = net.params().unwrap();
        let mut worst = 0.0f64;
        let mut check = |what: String, gv: &[f32], rv: &[f64]| {
            assert_within(&what, gv, rv, |i| 2e-6 + 1e-5 * rv[i].abs());
            for (a, r) in gv.iter().zip(rv) {
                worst = worst.max((f64::from(*a) - r).abs());
            }
        };
        for (l, (w, b)) in got.iter().enumerate() {
            check(format!("{opt:?} W{l}"), w, &reference.weights[l]);
            check(format!("{opt:?} b{l}"), b, &reference.biases[l]);
        }
        let act = net.activation_params().unwrap();
        for (l, p) in act.iter().enumerate() {
            check(format!("{opt:?} p{l}"), p, &reference.act_params[l]);
        }
        // The activation parameters did move away from their initial values.
        assert!(
            act[2].iter().any(|&p| (p - 0.25).abs() > 1e-4),
            "{:?}",
            act[2]
        );
        assert!((act[3][0] - 1.0).abs() > 1e-4, "{:?}", act[3]);
        eprintln!("{opt:?}: worst parameter difference after 20 steps {worst:.3e}");
    }
}

/// The layer kinds the 20-step test leaves out, under MSE and over batches of changing size (1 and 7 among
/// them, so the workspace is rebuilt between steps): 6 -> GLU 7 -> ReGLU 5 -> ELU (per channel, 5 columns: the
/// two-pass reduction) 5 -> PReLU (shared) 6 -> Swish (per channel) 4 -> GeGLU-tanh 3 -> 2, Adam, 12 steps,
/// against the f64 network within the 20-step test's bounds.
#[test]
fn other_gated_and_learnable_kinds_match_the_f64_mlp_over_changing_batches() {
    let sizes = [6, 7, 5, 5, 6, 4, 3, 2];
    let hidden = [
        Hidden::Gated(Gated::GLU),
        Hidden::Gated(Gated::REGLU),
        Hidden::learnable(Learnable::Elu, true),
        Hidden::learnable(Learnable::Prelu, false),
        Hidden::learnable(Learnable::Swish, true),
        Hidden::Gated(Gated::GEGLU_TANH),
    ];
    let (g, mse, opt) = (gpu(), Loss::Mse, Optimizer::Adam(Adam::new(0.01)));
    let mut net = Mlp::with_layers(g, &sizes, &hidden, mse, opt, 11).unwrap();
    let params = init_layers(&sizes, &hidden, 11);
    let mut reference = ref_mlp::Mlp::with_layers(&sizes, &hidden, mse, opt, &params);
    for (s, batch) in [32, 1, 7, 32, 5, 1, 16, 32, 3, 32, 9, 32]
        .into_iter()
        .enumerate()
    {
        let x = random_values(batch * sizes[0], 1.0, DType::F32, 700 + s as u64);
        let v = random_values(batch * 2, 1.0, DType::F32, 800 + s as u64);
        let (xt, vt) = (
            g.upload_shaped(&x, &[batch, sizes[0]]).unwrap(),
            g.upload_shaped(&v, &[batch, 2]).unwrap(),
        );
        net.train_step(&xt, actgpu::Targets::Values(&vt)).unwrap();
        let want = reference.train_step(&widen(&x), batch, Target::Values(&widen(&v)));
        let got = net.loss().unwrap();
        assert_within(&format!("step {s} loss"), &[got], &[want], |_| 1e-5 * want);
    }
    let got = net.params().unwrap();
    for (l, (w, b)) in got.iter().enumerate() {
        assert_within(&format!("W{l}"), w, &reference.weights[l], |i| {
            2e-6 + 1e-5 * reference.weights[l][i].abs()
        });
        assert_within(&format!("b{l}"), b, &reference.biases[l], |i| {
            2e-6 + 1e-5 * reference.biases[l][i].abs()
        });
    }
    for (l, p) in net.activation_params().unwrap().iter().enumerate() {
        assert_within(&format!("p{l}"), p, &reference.act_params[l], |i| {
            2e-6 + 1e-5 * reference.act_params[l][i].abs()
        });
    }
}

#[test]
fn training_with_gated_and_learnable_layers_is_deterministic() {
    let adam = Optimizer::Adam(Adam::adamw(0.01));
    let (a, la) = train_gpu(adam, 5);
    let (b, lb) = train_gpu(adam, 5);
    assert_same_training((&a, &la), (&b, &lb));
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
    let ce = Loss::SoftmaxCrossEntropy;
    let mut net = Mlp::with_layers(g, &SIZES, &HIDDEN, ce, opt, 3).unwrap();
    let reference = reference(opt, 3);
    assert_eq!(net.hidden(), HIDDEN);
    assert_eq!(net.linear_width(0), Some(24));
    assert_eq!(net.layer(0).unwrap().0.shape(), [8, 24]);
    assert_eq!(net.activation_param(2).unwrap().shape(), [16]);
    assert_eq!(net.activation_param(3).unwrap().shape(), [1]);
    assert!(net.activation_param(0).is_none());
    // Passes of at most `rows` rows: 50 rows as 6 passes of 8 and one of 2 (a prefix of the pass buffers).
    for (batch, rows) in [(1usize, None), (7, None), (50, Some(8)), (7, Some(7))] {
        net.set_inference_rows(rows).unwrap();
        let x = random_values(batch * SIZES[0], 1.0, DType::F32, 70 + batch as u64);
        let xt = g.upload_shaped(&x, &[batch, SIZES[0]]).unwrap();
        let out = net.predict(&xt).unwrap();
        assert_eq!(out.shape(), [batch, 3]);
        let want = reference.predict(&widen(&x), batch);
        assert_within("predict", &out.read::<f32>().unwrap(), &want, |i| {
            1e-5 * (1.0 + want[i].abs())
        });
        let argmax: Vec<u32> = want
            .chunks(3)
            .map(|r| (0..3).fold(0, |b, j| if r[j] > r[b] { j } else { b }) as u32)
            .collect();
        assert_eq!(net.evaluate(&xt, &argmax).unwrap(), 1.0);
    }
}

#[test]
fn diagnostics_report_every_gradient_norm_and_no_counts_for_fused_layers() {
    let g = gpu();
    let opt = Optimizer::Sgd(Sgd::new(0.05));
    let ce = Loss::SoftmaxCrossEntropy;
    let mut net = Mlp::with_layers(g, &SIZES, &HIDDEN, ce, opt, 11).unwrap();
    assert!(net.activation_param_grad_norms().is_err());
    net.set_diagnostics(true).unwrap();
    let (x, t) = &batches()[0];
    net.train_step_classes(x, t).unwrap();
    let want = reference(opt, 11).gradients(&widen(x), BATCH, Target::Classes(t));
    let norm = |v: &[f64]| v.iter().map(|g| g * g).sum::<f64>().sqrt();
    let close = |what: &str, got: f64, want: f64| {
        assert!(
            (got - want).abs() <= 1e-4 * want + 1e-9,
            "{what}: {got} vs {want}"
        );
    };
    let diag = net.diagnostics().unwrap();
    for (l, d) in diag.iter().enumerate() {
        close(
            &format!("dW{l}"),
            d.weight_grad_norm,
            norm(&want.dense[l].dw),
        );
        close(&format!("db{l}"), d.bias_grad_norm, norm(&want.dense[l].db));
        let width = net.linear_width(l).unwrap();
        assert_eq!(d.units, (BATCH * width) as u64);
        assert_eq!((d.dead, d.saturated), (0, 0), "layer {l}");
    }
    let p = net.activation_param_grad_norms().unwrap();
    assert_eq!(p.len(), SIZES.len() - 1);
    assert!(p[0].is_none() && p[1].is_none() && p[4].is_none());
    close("dp2", p[2].unwrap(), norm(&want.act_params[2]));
    close("dp3", p[3].unwrap(), norm(&want.act_params[3]));
    // The gradients on the GPU are the reference's too.
    let dp = net.activation_param_grad(2).unwrap().read::<f32>().unwrap();
    assert_within("dp2", &dp, &want.act_params[2], |i| {
        1e-6 + 1e-4 * want.act_params[2][i].abs()
    });
}

#[test]
fn safetensors_round_trip_keeps_every_kind_and_parameter() {
    let g = gpu();
    let opt = Optimizer::Adam(Adam::new(0.01));
    let (net, _) = train_gpu(opt, 9);
    let bytes = net.to_safetensors_bytes().unwrap();
    let file = SafeTensors::parse(&bytes).unwrap();
    for (name, shape) in [
        ("0.weight", vec![24, 8]),
        ("0.bias", vec![24]),
        ("2.weight", vec![20, 12]),
        ("4.weight", vec![16, 10]),
        ("5.weight", vec![16]),
        ("6.weight", vec![9, 16]),
        ("7.beta", vec![1]),
        ("8.weight", vec![3, 9]),
    ] {
        assert_eq!(file.tensor(name).unwrap().shape, shape, "{name}");
    }
    assert_eq!(file.tensors.len(), 12);
    assert_eq!(
        file.metadata("actgpu.activations"),
        Some("swiglu,geglu,prelu(16),swish_learnable(1)")
    );
    assert_eq!(file.metadata("actgpu.sizes"), Some("8,12,10,16,9,3"));
    let copy = Mlp::from_safetensors(g, &bytes, Loss::SoftmaxCrossEntropy, opt).unwrap();
    assert_eq!(copy.sizes(), SIZES);
    assert_eq!(copy.hidden(), HIDDEN);
    assert_eq!(copy.params().unwrap(), net.params().unwrap());
    assert_eq!(
        copy.activation_params().unwrap(),
        net.activation_params().unwrap()
    );
    // load_weights into a fresh network of the same kinds, then the same predictions, bit for bit.
    let ce = Loss::SoftmaxCrossEntropy;
    let mut fresh = Mlp::with_layers(g, &SIZES, &HIDDEN, ce, opt, 99).unwrap();
    fresh.load_weights(&bytes).unwrap();
    assert_eq!(
        fresh.activation_params().unwrap(),
        net.activation_params().unwrap()
    );
    let x = random_values(5 * SIZES[0], 1.0, DType::F32, 5);
    let xt = g.upload_shaped(&x, &[5, SIZES[0]]).unwrap();
    let (a, b) = (copy.predict(&xt).unwrap(), fresh.predict(&xt).unwrap());
    let c = net.predict(&xt).unwrap();
    assert_eq!(a.read::<f32>().unwrap(), c.read::<f32>().unwrap());
    assert_eq!(b.read::<f32>().unwrap(), c.read::<f32>().unwrap());
    // A network whose layer kinds differ refuses the file, and is unchanged.
    let other = [
        Hidden::Gated(Gated::SWIGLU),
        Hidden::Gated(Gated::GEGLU),
        Hidden::learnable(Learnable::Prelu, false),
        Hidden::learnable(Learnable::Swish, false),
    ];
    let mut wrong = Mlp::with_layers(g, &SIZES, &other, ce, opt, 1).unwrap();
    let before = wrong.params().unwrap();
    let err = wrong.load_weights(&bytes).unwrap_err();
    assert!(matches!(err, Error::TensorShapeMismatch { .. }), "{err}");
    assert_eq!(wrong.params().unwrap(), before);
    let plain = [actgpu::Activation::Relu; 4];
    let mut wrong = Mlp::new(g, &SIZES, &plain, ce, opt, 1).unwrap();
    let err = wrong.load_weights(&bytes).unwrap_err();
    assert!(matches!(err, Error::TensorShapeMismatch { .. }), "{err}");
}

#[test]
fn gated_with_any_gate_and_elu_alpha_round_trip_through_the_metadata() {
    let g = gpu();
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let hidden = [
        Hidden::Gated(Gated {
            gate: actgpu::Activation::LeakyRelu {
                negative_slope: 0.2,
            },
        }),
        Hidden::learnable(Learnable::Elu, true),
        Hidden::Gated(Gated::GLU),
    ];
    let sizes = [3, 5, 4, 2, 2];
    let mut net = Mlp::with_layers(g, &sizes, &hidden, Loss::Mse, opt, 2).unwrap();
    let y = g.upload_shaped(&[0.5f32, -0.5, 1.0, 0.0], &[2, 2]).unwrap();
    let x = g
        .upload_shaped(&[0.1f32, 0.2, 0.3, -0.4, 0.5, -0.6], &[2, 3])
        .unwrap();
    for _ in 0..3 {
        net.train_step(&x, actgpu::Targets::Values(&y)).unwrap();
    }
    let bytes = net.to_safetensors_bytes().unwrap();
    let file = SafeTensors::parse(&bytes).unwrap();
    assert_eq!(
        file.metadata("actgpu.activations"),
        Some("gated(leaky_relu(0.2)),elu_learnable(4),glu")
    );
    assert_eq!(file.tensor("3.alpha").unwrap().shape, [4]);
    let copy = Mlp::from_safetensors(g, &bytes, Loss::Mse, opt).unwrap();
    assert_eq!(copy.hidden(), hidden);
    assert_eq!(
        copy.activation_params().unwrap(),
        net.activation_params().unwrap()
    );
}

#[test]
fn bad_layer_kinds_are_typed_errors() {
    let g = gpu();
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let ce = Loss::SoftmaxCrossEntropy;
    let nan = Hidden::Learnable {
        kind: Learnable::Prelu,
        init: f32::NAN,
        per_channel: false,
    };
    assert!(matches!(
        Mlp::with_layers(g, &[4, 3, 2], &[nan], ce, opt, 0),
        Err(Error::InvalidArgument { .. })
    ));
    let bad_gate = Hidden::Gated(Gated {
        gate: actgpu::Activation::LeakyRelu {
            negative_slope: f32::INFINITY,
        },
    });
    assert!(matches!(
        Mlp::with_layers(g, &[4, 3, 2], &[bad_gate], ce, opt, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Mlp::with_layers(g, &[4, 3, 2], &[], ce, opt, 0),
        Err(Error::InvalidArgument { .. })
    ));
    let mut net =
        Mlp::with_layers(g, &[4, 3, 2], &[Hidden::from(Learnable::Swish)], ce, opt, 0).unwrap();
    assert!(matches!(
        net.train_step_classes(&[0.0; 6], &[0]),
        Err(Error::ShapeMismatch { .. })
    ));
    net.train_step_classes(&[0.1; 8], &[0, 1]).unwrap();
    assert!(net.loss().unwrap().is_finite());
    assert!(matches!(
        net.activation_param_grad_norms(),
        Err(Error::InvalidArgument { .. })
    ));
}

/// The gated and learnable layers trained in passes (45 rows: six passes of 7 and one of 3) reach the weights
/// and activation parameters of one pass: their backward kernels' dZ and dp are per pass, then added up.
#[test]
fn gated_and_learnable_layers_train_in_passes_as_in_one() {
    let g = gpu();
    let opt = Optimizer::Sgd(Sgd {
        momentum: 0.9,
        ..Sgd::new(0.05)
    });
    let ce = Loss::SoftmaxCrossEntropy;
    let mut whole = Mlp::with_layers(g, &SIZES, &HIDDEN, ce, opt, 12).unwrap();
    let mut parts = Mlp::with_layers(g, &SIZES, &HIDDEN, ce, opt, 12).unwrap();
    parts.set_train_rows(Some(7)).unwrap();
    let batch = 45;
    let x = random_values(batch * SIZES[0], 1.0, DType::F32, 81);
    let t = labels(batch, 3, 82);
    for _ in 0..3 {
        whole.train_step_classes(&x, &t).unwrap();
        parts.train_step_classes(&x, &t).unwrap();
    }
    let close = |what: String, got: &[f32], want: &[f32]| {
        let want = widen(want);
        assert_within(&what, got, &want, |i| 1e-5 * (1.0 + want[i].abs()));
    };
    for (l, ((wa, ba), (wb, bb))) in whole
        .params()
        .unwrap()
        .iter()
        .zip(parts.params().unwrap())
        .enumerate()
    {
        close(format!("layer {l} W"), &wb, wa);
        close(format!("layer {l} b"), &bb, ba);
        if let (Some(pa), Some(pb)) = (whole.activation_param(l), parts.activation_param(l)) {
            let (pa, pb) = (pa.read::<f32>().unwrap(), pb.read::<f32>().unwrap());
            close(format!("layer {l} p"), &pb, &pa);
        }
    }
    let (a, b) = (whole.loss().unwrap(), parts.loss().unwrap());
    assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{a} {b}");
}
