//! Per-layer diagnostics against the f64 reference: gradient norms from the optimizer kernels' partial sums,
//! dead and saturated counts from the dZ pass (and from the fused backward's counting pass), on a ReLU network
//! with units dead by construction, on saturating sigmoid / tanh networks and on a network of every layer kind
//! (gated, learnable, randomized leaky ReLU beside plain ReLU); with diagnostics on, the step
//! computes the same bits as without; typed errors when they are off.

mod common;

use actgpu::cpu::diagnostics::LayerStats;
use actgpu::cpu::mlp::{self as ref_mlp, Target};
use actgpu::ops::dz_stats::{self, read_counts};
use actgpu::ops::optim::{norm_partials, sum_partials, NORM_PER_THREAD};
use actgpu::verify::fused::random_values;
use actgpu::{
    Activation, Adam, DType, Dense, DzMode, Error, Gated, Hidden, Learnable, Loss, Mlp, Optimizer,
    Rrelu, Sgd, Tensor,
};
use common::{assert_same_training, bits, gpu, labels, widen};

/// Unit roundoff of f32, 2^-24.
const U: f64 = 1.0 / 16_777_216.0;

/// Writes `params` (`(W [in, out], b)` per layer, the layout of [`Mlp::params`]) into `net`'s layers.
fn load(net: &Mlp, params: &[(Vec<f32>, Vec<f32>)]) {
    for (l, (w, b)) in params.iter().enumerate() {
        let (wt, bt) = net.layer(l).unwrap();
        wt.write(w).unwrap();
        bt.write(b).unwrap();
    }
}

/// The GPU's counts and norms against the reference's, layer by layer.
fn compare(what: &str, got: &[actgpu::nn::LayerDiagnostics], want: &[LayerStats]) {
    assert_eq!(got.len(), want.len(), "{what}: layers");
    for (l, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.units, w.units, "{what} layer {l}: units");
        // Dead and saturated counts, of neurons and of elements, each within the reference's ambiguous count.
        for (unit, (gd, gs), (wd, ws), ambiguous) in [
            (
                "neurons",
                (g.dead_neurons, g.saturated_neurons),
                (w.dead_neurons, w.saturated_neurons),
                w.ambiguous_neurons,
            ),
            (
                "elements",
                (g.dead, g.saturated),
                (w.dead, w.saturated),
                w.ambiguous,
            ),
        ] {
            assert!(
                gd.abs_diff(wd) <= ambiguous && gs.abs_diff(ws) <= ambiguous,
                "{what} layer {l}: {gd} dead / {gs} saturated {unit} on the GPU, {wd} / {ws} in f64 \
                 ({ambiguous} ambiguous)"
            );
        }
        // Gradients in f32 carry relative errors ~1e-6 of their terms' magnitudes; the norms far less than 1e-4.
        for (name, gn, wn) in [
            ("dW", g.weight_grad_norm, w.weight_grad_norm),
            ("db", g.bias_grad_norm, w.bias_grad_norm),
        ] {
            assert!(
                (gn - wn).abs() <= 1e-4 * wn + 1e-9,
                "{what} layer {l}: ‖{name}‖ {gn} on the GPU, {wn} in f64"
            );
        }
        let both = w.weight_grad_norm.hypot(w.bias_grad_norm);
        assert!((g.grad_norm() - both).abs() <= 1e-4 * both + 1e-9);
    }
}

struct Case {
    what: &'static str,
    sizes: Vec<usize>,
    hidden: Vec<Activation>,
    input_scale: f64,
    optimizer: Optimizer,
}

/// Trains `steps` steps on the GPU with diagnostics and on the reference, comparing the diagnostics of each
/// step; returns the GPU diagnostics of the last.
fn run(
    case: &Case,
    edit: impl Fn(&mut Vec<(Vec<f32>, Vec<f32>)>),
    steps: u64,
) -> Vec<actgpu::nn::LayerDiagnostics> {
    const BATCH: usize = 40;
    let g = gpu();
    let loss = Loss::SoftmaxCrossEntropy;
    let out = case.sizes[case.sizes.len() - 1];
    let mut params = actgpu::nn::init_params(&case.sizes, &case.hidden, 11);
    edit(&mut params);
    let mut net = Mlp::new(g, &case.sizes, &case.hidden, loss, case.optimizer, 1).unwrap();
    load(&net, &params);
    net.set_diagnostics(true).unwrap();
    let mut reference = ref_mlp::Mlp::new(&case.sizes, &case.hidden, loss, case.optimizer, &params);
    let mut last = Vec::new();
    for s in 0..steps {
        let x = random_values(BATCH * case.sizes[0], case.input_scale, DType::F32, 60 + s);
        let t = labels(BATCH, out, 70 + s);
        let want = reference.diagnostics(&widen(&x), BATCH, Target::Classes(&t));
        reference.train_step(&widen(&x), BATCH, Target::Classes(&t));
        net.train_step_classes(&x, &t).unwrap();
        last = net.diagnostics().unwrap();
        compare(&format!("{} step {}", case.what, s + 1), &last, &want);
        // The output layer is linear: never dead, never saturated.
        let top = last[last.len() - 1];
        assert_eq!((top.dead, top.saturated, top.dead_neurons), (0, 0, 0));
    }
    last
}

#[test]
fn a_relu_network_counts_its_dead_units() {
    // Units 0..5 of the first hidden layer get a bias of -50: dead for every input of this scale.
    let case = Case {
        what: "relu",
        sizes: vec![6, 24, 16, 3],
        hidden: vec![Activation::Relu, Activation::Relu],
        input_scale: 1.0,
        optimizer: Optimizer::Sgd(Sgd {
            momentum: 0.9,
            ..Sgd::new(0.05)
        }),
    };
    let d = run(
        &case,
        |p| p[0].1[..5].iter_mut().for_each(|b| *b = -50.0),
        3,
    );
    let batch = d[0].units / 24;
    assert!(d[0].dead >= 5 * batch, "{d:?}");
    // Those five neurons are dead for the whole batch; the zero-bias ones live on some of its rows.
    assert_eq!(d[0].neurons, 24);
    assert!((5..=7).contains(&d[0].dead_neurons), "{d:?}");
    // Zero-bias ReLU units are dead for about half the inputs, but (almost) no neuron for all of them.
    assert!((0.3..0.8).contains(&d[1].dead_fraction()), "{d:?}");
    assert!(d[1].dead_neuron_fraction() < 0.2, "{d:?}");
    assert_eq!(d[0].saturated + d[1].saturated, 0);
    assert!(d
        .iter()
        .all(|l| l.weight_grad_norm > 0.0 && l.bias_grad_norm > 0.0));
}

#[test]
fn a_sigmoid_network_counts_its_saturated_neurons() {
    // Units 0..5 get a bias of +40: sigmoid'(z) near e^-40, nonzero but far below 1e-3, on every row.
    let case = Case {
        what: "sigmoid, biased",
        sizes: vec![6, 24, 3],
        hidden: vec![Activation::Sigmoid],
        input_scale: 1.0,
        optimizer: Optimizer::Adam(Adam::new(0.01)),
    };
    let d = run(&case, |p| p[0].1[..5].iter_mut().for_each(|b| *b = 40.0), 2);
    assert_eq!(d[0].dead_neurons, 0, "{d:?}");
    assert!((5..=7).contains(&d[0].saturated_neurons), "{d:?}");
    assert!(
        (d[0].saturated_neuron_fraction() - d[0].saturated_neurons as f64 / 24.0).abs() < 1e-12
    );
}

#[test]
fn saturating_networks_count_saturated_units() {
    for (hidden, what) in [
        (vec![Activation::Sigmoid], "sigmoid"),
        (vec![Activation::Tanh, Activation::Gelu], "tanh, gelu"),
        (
            vec![Activation::Hardtanh {
                min_val: -1.0,
                max_val: 1.0,
            }],
            "hardtanh",
        ),
    ] {
        let mut sizes = vec![8];
        sizes.extend(std::iter::repeat_n(20, hidden.len()));
        sizes.push(4);
        let case = Case {
            what,
            sizes,
            hidden,
            input_scale: 20.0,
            optimizer: Optimizer::Adam(Adam::new(0.01)),
        };
        let d = run(&case, |_| {}, 2);
        let flat = d[0].dead + d[0].saturated;
        assert!(flat > d[0].units / 20, "{what}: {d:?}");
    }
}

/// A network of every layer kind, diagnostics against the reference for three steps: the gated, learnable and
/// randomized leaky ReLU layers report their linear maps' norms and count nothing, each learnable layer's
/// parameter gradient norm matches, and the ReLU layer after the randomized one counts the dead units of the
/// pre-activations that the step's training-mode draws gave.
#[test]
fn every_layer_kind_reports_as_the_reference() {
    const BATCH: usize = 40;
    let sizes = [6, 12, 10, 9, 11, 8, 4];
    let hidden = [
        Hidden::Gated(Gated::SWIGLU),
        Hidden::learnable(Learnable::Prelu, true),
        Hidden::Rrelu(Rrelu::DEFAULT),
        Hidden::Act(Activation::Relu),
        Hidden::learnable(Learnable::Elu, false),
    ];
    let relu_layer = 3;
    let (loss, opt) = (Loss::SoftmaxCrossEntropy, Optimizer::Sgd(Sgd::new(0.05)));
    let params = actgpu::nn::init_layers(&sizes, &hidden, 11);
    let mut net = Mlp::with_layers(gpu(), &sizes, &hidden, loss, opt, 1).unwrap();
    load(&net, &params);
    net.set_diagnostics(true).unwrap();
    let mut reference = ref_mlp::Mlp::with_layers(&sizes, &hidden, loss, opt, &params);
    reference.noise_seed = net.noise_seed();
    let norm = |v: &[f64]| v.iter().map(|g| g * g).sum::<f64>().sqrt();
    let mut relu_dead = 0;
    for s in 0..3 {
        let what = format!("step {}", s + 1);
        let x = random_values(BATCH * sizes[0], 2.0, DType::F32, 80 + s);
        let t = labels(BATCH, sizes[sizes.len() - 1], 90 + s);
        let want = reference.diagnostics(&widen(&x), BATCH, Target::Classes(&t));
        let want_dp = reference
            .gradients(&widen(&x), BATCH, Target::Classes(&t))
            .act_params;
        reference.train_step(&widen(&x), BATCH, Target::Classes(&t));
        net.train_step_classes(&x, &t).unwrap();
        let got = net.diagnostics().unwrap();
        compare(&what, &got, &want);
        for (l, d) in got.iter().enumerate().filter(|&(l, _)| l != relu_layer) {
            let counts = (d.dead, d.saturated, d.dead_neurons, d.saturated_neurons);
            assert_eq!(counts, (0, 0, 0, 0), "{what} layer {l} counted");
        }
        relu_dead += got[relu_layer].dead;
        let dp = net.activation_param_grad_norms().unwrap();
        assert_eq!(dp.len(), want_dp.len(), "{what}: layers");
        for (l, (g, w)) in dp.iter().zip(&want_dp).enumerate() {
            match g {
                None => assert!(w.is_empty(), "{what} layer {l}: no ‖dp‖ on the GPU"),
                Some(g) => {
                    let w = norm(w);
                    assert!(
                        (g - w).abs() <= 1e-4 * w + 1e-9,
                        "{what} layer {l}: ‖dp‖ {g} on the GPU, {w} in f64"
                    );
                }
            }
        }
        assert!(
            dp[1].is_some() && dp[4].is_some(),
            "{what}: learnable layers"
        );
    }
    // Half the ReLU's inputs are negative: the counts compared above are not all zero.
    assert!(relu_dead > 0, "the ReLU layer counted no dead unit");
}

#[test]
fn diagnostics_change_no_bit_of_the_step() {
    let g = gpu();
    // 16 units: with diagnostics off its dZ and bias gradient take the one-dispatch path (at most 128 rows, a
    // width that is a multiple of 8), on they take the counting dZ pass and the column sums; 13 and 9 take the
    // two passes either way.
    let sizes = [7, 13, 16, 9, 3];
    let hidden = [Activation::Gelu, Activation::Silu, Activation::Relu];
    let opt = Optimizer::Adam(Adam::adamw(0.01));
    let mut plain = Mlp::new(g, &sizes, &hidden, Loss::SoftmaxCrossEntropy, opt, 3).unwrap();
    let mut watched = Mlp::new(g, &sizes, &hidden, Loss::SoftmaxCrossEntropy, opt, 3).unwrap();
    assert!(!watched.diagnostics_enabled());
    assert!(matches!(
        watched.diagnostics(),
        Err(Error::InvalidArgument { .. })
    ));
    watched.set_diagnostics(true).unwrap();
    assert!(matches!(
        watched.diagnostics(),
        Err(Error::InvalidArgument { .. })
    ));
    for s in 0..4 {
        let x = random_values(33 * 7, 1.0, DType::F32, 80 + s);
        let t = labels(33, 3, 90 + s);
        plain.train_step_classes(&x, &t).unwrap();
        watched.train_step_classes(&x, &t).unwrap();
        assert_eq!(
            plain.loss().unwrap().to_bits(),
            watched.loss().unwrap().to_bits()
        );
    }
    assert_eq!(watched.diagnostics().unwrap().len(), 4);
    // The losses were compared step by step above.
    assert_same_training((&plain, &[]), (&watched, &[]));
    // Off again: nothing to read; back on: nothing until the next step.
    watched.set_diagnostics(false).unwrap();
    assert!(watched.diagnostics().is_err());
    watched.set_diagnostics(true).unwrap();
    assert!(watched.diagnostics().is_err());
}

/// A Z larger than one dispatch grid holds (32 workgroups per dimension of 64 threads, 8 elements each: 524,288
/// elements) is counted in chunks, not refused: 4,100 rows of 128 units, every even unit dead in every row.
#[test]
fn counts_past_one_grid_run_in_chunks() {
    let g = common::small_grid_gpu();
    let (rows, cols) = (4100, 128);
    let z: Vec<f32> = (0..rows * cols)
        .map(|i| if i % 2 == 0 { -1.0 } else { 1.0 })
        .collect();
    let zt = g.upload_shaped(&z, &[rows, cols]).unwrap();
    let counts = dz_stats::counts_for(&zt).unwrap();
    g.submit_and_wait("test", |enc| {
        dz_stats::record(enc, Activation::Relu, &zt, None, &counts)
    })
    .unwrap();
    let got = read_counts(&counts).unwrap();
    assert_eq!((got.dead, got.saturated), ((rows * cols / 2) as u32, 0));
    assert_eq!(got.dead_units, (cols / 2) as u32);
}

#[test]
fn counts_by_hand_and_the_fused_backward_agrees_with_the_separate_one() {
    let g = gpu();
    // relu: dead at z <= 0; sigmoid: saturated where sigmoid'(z) < 1e-3, |z| > 6.907; NaN counts as neither.
    let z = [-1.0f32, 0.0, 1.0, 2.0, -7.0, 7.0, 6.5, f32::NAN, -0.0];
    let zt = g.upload(&z).unwrap();
    for (act, want) in [
        (Activation::Relu, [4, 0]),
        (Activation::Sigmoid, [0, 2]),
        (Activation::Relu6, [6, 0]),
        (
            Activation::LeakyRelu {
                negative_slope: 1e-4,
            },
            [0, 4],
        ),
    ] {
        let counts = dz_stats::counts_for(&zt).unwrap();
        let dy = g.upload(&[1.0f32; 9]).unwrap();
        let dz = zt.zeros_like().unwrap();
        g.submit_and_wait("test", |enc| {
            dz_stats::record(enc, act, &zt, Some((&dy, &dz)), &counts)?;
            // Counting again adds: the stats-only pass doubles the counts.
            dz_stats::record(enc, act, &zt, None, &counts)
        })
        .unwrap();
        let got = read_counts(&counts).unwrap();
        assert_eq!(
            [got.dead, got.saturated],
            [2 * want[0], 2 * want[1]],
            "{act}"
        );
        // z is one row of 9 units here: the dead elements' units are dead, and so is NaN's, which is no one's
        // gradient path.
        assert_eq!(got.dead_units, want[0] + 1, "{act}");
        // ... and the units of saturated elements are saturated.
        assert_eq!(got.saturated_units, want[1], "{act}");
        // dZ is what the elementwise backward writes, bit for bit.
        let reference = act.backward(&zt, &dy).unwrap();
        let read_bits = |t: &Tensor| bits(&t.read::<f32>().unwrap());
        assert_eq!(read_bits(&dz), read_bits(&reference), "{act}");
    }

    // A dense layer's backward, fused and separate: the same counts, and the f64 reference's within ambiguity.
    let (m, k, n) = (37, 11, 29);
    let x = g
        .upload_shaped(&random_values(m * k, 3.0, DType::F32, 5), &[m, k])
        .unwrap();
    let w = g
        .upload_shaped(&random_values(k * n, 1.0, DType::F32, 6), &[k, n])
        .unwrap();
    let dy = g
        .upload_shaped(&random_values(m * n, 1.0, DType::F32, 7), &[m, n])
        .unwrap();
    // Identity takes the separate mode's shortcut (dZ is dY), which must still count: every unit live.
    for act in [
        Activation::Relu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Identity,
    ] {
        let (_, z) = Dense::new(act).forward_train(&x, &w, None).unwrap();
        let want =
            actgpu::cpu::diagnostics::layer_stats(act, &widen(&z.read().unwrap()), n, &[], &[]);
        let mut seen = Vec::new();
        for mode in [DzMode::Separate, DzMode::Fused] {
            let dense = Dense {
                dz: mode,
                ..Dense::new(act)
            };
            let counts = dz_stats::counts_for(&z).unwrap();
            let dw = w.zeros_like().unwrap();
            g.submit_and_wait("test", |enc| {
                dense.record_backward_with_stats(
                    enc,
                    &x,
                    &w,
                    &z,
                    &dy,
                    &dw,
                    None,
                    None,
                    Some(&counts),
                )
            })
            .unwrap();
            seen.push(read_counts(&counts).unwrap());
        }
        assert_eq!(seen[0], seen[1], "{act}");
        // Z comes from the GPU here, so the f64 classification of the same values is exact.
        let c = seen[0];
        assert_eq!(
            [c.dead, c.saturated, c.dead_units, c.saturated_units],
            [
                want.dead as u32,
                want.saturated as u32,
                want.dead_neurons as u32,
                want.saturated_neurons as u32
            ],
            "{act}"
        );
        assert!(
            c.dead + c.saturated > 0 || matches!(act, Activation::Gelu | Activation::Identity),
            "{act}: {seen:?}"
        );
    }
}

#[test]
fn update_kernels_write_the_gradients_sum_of_squares() {
    let g = gpu();
    let optimizers = [
        Optimizer::Sgd(Sgd::new(0.1)),
        Optimizer::Sgd(Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.1,
            ..Sgd::new(0.1)
        }),
        Optimizer::Adam(Adam::adamw(0.01)),
    ];
    let wg = g.launch_config().workgroup_size as usize;
    for n in [1, wg - 1, wg, wg + 1, 1000, 70_001] {
        for (o, opt) in optimizers.iter().enumerate() {
            let grad_host = random_values(n, 2.0, DType::F32, n as u64 + o as u64);
            let init = random_values(n, 1.0, DType::F32, 7 * n as u64);
            let grad = g.upload(&grad_host).unwrap();
            let p1 = g.upload(&init).unwrap();
            let p2 = g.upload(&init).unwrap();
            let s1 = opt.init_state(&p1).unwrap();
            let s2 = opt.init_state(&p2).unwrap();
            // Poisoned, and longer than needed: the tail must not reach the sum (a buffer reused from a
            // larger tensor).
            let partials = g
                .upload(&vec![1e30f32; norm_partials(g, n).unwrap() + 37])
                .unwrap();
            g.submit_and_wait("test", |enc| {
                for step in 1..=2 {
                    opt.record_update(enc, &p1, &grad, &s1, step)?;
                    opt.record_update_with_norm(enc, &p2, &grad, &s2, step, Some(&partials))?;
                }
                Ok(())
            })
            .unwrap();
            let want: f64 = grad_host.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let got = sum_partials(&partials.read::<f32>().unwrap());
            // Each partial is an f32 sum of NORM_PER_THREAD squares in order: relative error below
            // (NORM_PER_THREAD + 1) u.
            let bound = f64::from(NORM_PER_THREAD + 1) * U * want;
            assert!(
                (got - want).abs() <= bound,
                "n {n} {opt:?}: {got} vs {want}"
            );
            let read_bits = |t: &Tensor| bits(&t.read::<f32>().unwrap());
            assert_eq!(
                read_bits(&p1),
                read_bits(&p2),
                "n {n} {opt:?}: the update changed"
            );
        }
    }
    // A partials buffer too short is a typed error.
    let p = g.upload(&[0.0f32; 1000]).unwrap();
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let state = opt.init_state(&p).unwrap();
    let short = g.zeros(&[1], DType::F32).unwrap();
    let err = g.submit_and_wait("test", |enc| {
        opt.record_update_with_norm(enc, &p, &p.zeros_like()?, &state, 1, Some(&short))
    });
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
}
