//! Whole training steps against the f64 reference: an [`Mlp`] with a plain, a gated, a learnable and a randomized
//! leaky ReLU hidden layer trained for a few steps on the GPU, in one pass per step and in passes of a few rows
//! ([`Mlp::set_train_rows`], which adds the passes' gradients with the `accumulate` kernel), and the same steps
//! of [`crate::cpu::mlp::Mlp`] from the same initialisation and noise seed: every weight, bias and activation
//! parameter, each step's loss, and the trained network's predictions (evaluation mode: the randomized leaky
//! ReLU at its mean slope).

use super::fused::{random_values, FusedCheck};
use super::{compare_bounded, Pass, Rng};
use crate::cpu::mlp::{self as ref_mlp, Target};
use crate::nn::{init_layers, Hidden};
use crate::{
    Activation, Adam, DType, Gated, Gpu, Learnable, Loss, Mlp, Optimizer, Result, Rrelu, Sgd,
};

/// 6 -> GELU 10 -> SwiGLU 8 -> PReLU (per channel) 7 -> RReLU 5 -> 3.
const SIZES: [usize; 6] = [6, 10, 8, 7, 5, 3];
const HIDDEN: [Hidden; 4] = [
    Hidden::Act(Activation::Gelu),
    Hidden::Gated(Gated::SWIGLU),
    Hidden::learnable(Learnable::Prelu, true),
    Hidden::Rrelu(Rrelu::DEFAULT),
];
const BATCH: usize = 23;
const STEPS: u64 = 5;

/// The bound on a parameter after [`STEPS`] steps, `2e-6 + 1e-5 |p|`: `tests/train.rs` derives it for 20 steps
/// (measured 1.7e-7 to 2.2e-7 there); a step whose update is off by about 1e-3 of its size fails it.
fn param_bound(p: f64) -> f64 {
    2e-6 + 1e-5 * p.abs()
}

/// Five steps of SGD with momentum and of Adam, each in one pass a step and in passes of 5 rows (four of 5 and
/// one of 3), against the f64 network: a check of the parameters, one of the losses and one of the predictions
/// per run.
pub fn check_training_steps(gpu: &Gpu) -> Result<Vec<FusedCheck>> {
    let momentum = Optimizer::Sgd(Sgd {
        momentum: 0.9,
        ..Sgd::new(0.05)
    });
    let mut out = Vec::new();
    for (name, opt) in [
        ("sgd_momentum", momentum),
        ("adam", Optimizer::Adam(Adam::new(0.01))),
    ] {
        for rows in [None, Some(5)] {
            let seed = 17;
            let loss = Loss::SoftmaxCrossEntropy;
            let mut net = Mlp::with_layers(gpu, &SIZES, &HIDDEN, loss, opt, seed)?;
            net.set_train_rows(rows)?;
            let params = init_layers(&SIZES, &HIDDEN, seed);
            let mut reference = ref_mlp::Mlp::with_layers(&SIZES, &HIDDEN, loss, opt, &params);
            reference.noise_seed = net.noise_seed();
            let (mut got_losses, mut want_losses) = (Vec::new(), Vec::new());
            for step in 0..STEPS {
                let x = random_values(BATCH * SIZES[0], 1.0, DType::F32, 500 + step);
                let mut rng = Rng::new(600 + step);
                let labels: Vec<u32> = (0..BATCH).map(|_| (rng.next_u64() % 3) as u32).collect();
                net.train_step_classes(&x, &labels)?;
                got_losses.push(net.loss()?);
                let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                want_losses.push(reference.train_step(&x, BATCH, Target::Classes(&labels)));
            }
            let op = match rows {
                None => format!("mlp_{name}"),
                Some(r) => format!("mlp_{name}_passes_of_{r}"),
            };
            let (mut got, mut want) = (Vec::new(), Vec::new());
            for (l, (w, b)) in net.params()?.into_iter().enumerate() {
                got.extend(w.into_iter().chain(b));
                want.extend(reference.weights[l].iter().chain(&reference.biases[l]));
            }
            for (l, p) in net.activation_params()?.into_iter().enumerate() {
                got.extend(p);
                want.extend(&reference.act_params[l]);
            }
            let bounds: Vec<f64> = want.iter().map(|&p| param_bound(p)).collect();
            let check = compare_bounded("mlp_params", &got, &want, &bounds);
            out.push(row(&op, "params", check));
            // Each step's mean cross-entropy within 1e-5 of its size (f32 forward passes of depth 4).
            let bounds: Vec<f64> = want_losses.iter().map(|l| 1e-5 * l.abs()).collect();
            let check = compare_bounded("mlp_loss", &got_losses, &want_losses, &bounds);
            out.push(row(&op, "loss", check));
            // The trained network's logits in evaluation mode, within 1e-6 + 1e-5 of their size.
            let x = random_values(BATCH * SIZES[0], 1.0, DType::F32, 700);
            let got: Vec<f32> = net
                .predict(&gpu.upload_shaped(&x, &[BATCH, SIZES[0]])?)?
                .read()?;
            let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let want = reference.predict(&x, BATCH);
            let bounds: Vec<f64> = want.iter().map(|l| 1e-6 + 1e-5 * l.abs()).collect();
            let check = compare_bounded("mlp_predict", &got, &want, &bounds);
            out.push(row(&op, "predict", check));
        }
    }
    Ok(out)
}

fn row(op: &str, output: &'static str, check: super::Check) -> FusedCheck {
    FusedCheck {
        op: op.to_string(),
        pass: Pass::Backward,
        output,
        dtype: DType::F32,
        check,
    }
}
