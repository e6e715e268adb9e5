//! Trains a small MLP on the GPU on a built-in synthetic dataset: three interleaved spirals in the plane, generated
//! from a seed (no downloads), 2 -> 64 -> 64 -> 3 with GELU, softmax cross-entropy and Adam.
//!
//! Run: `cargo run --release --example train [-- --epochs 20 --seed 1 --sgd --activation gelu --diagnostics]`
//! (`WGPU_BACKEND=vulkan` or `gl` picks the backend; `--activation` takes any hidden-layer kind by name, as
//! `Hidden::from_name` reads it: every activation of `Activation::ALL`, the gated units `glu`, `reglu`, `geglu`,
//! `geglu_tanh`, `swiglu`, the learnable `prelu`, `swish_learnable`, `elu_learnable` (`_channel` appended for one
//! parameter per unit) and `rrelu`, or with its constants (`leaky_relu(0.1)`, `rrelu(0.1,0.3)`,
//! `gated(tanh)`); an unknown argument, a bad value or `--epochs`, `--seed` or `--activation` given twice exits
//! with status 2 and the usage.)
//!
//! Prints the adapter, then one line per epoch: the last batch's loss (the only value read back during the
//! epoch: each `train_step` is one submission and reads nothing), and the accuracy on the training set and on a
//! held-out test set drawn from the same spirals. With `--diagnostics`, each epoch's line is followed by one per
//! layer from the epoch's last step: the gradient norm `sqrt(|dW|^2 + |db|^2)`, the share of pre-activations with
//! `f'(z) = 0`, the neurons with `f'(z) = 0` in every row of the batch (dead neurons) and the share with
//! `0 < |f'(z)| < 1e-3` (saturated), gathered by the step's own kernels. Gated, learnable and randomized leaky
//! ReLU layers do not count dead and saturated units (`actgpu::nn::diagnostics`): their lines give the gradient
//! norm, and a learnable layer's the norm of its parameter's gradient, `|dp|`, too.
//!
//! `-- --time` instead times one `train_step` of a 784-512-512-10 GELU MLP at batch 256 with SGD and with Adam
//! (median of 5 after 2 warm-up steps, waiting for the device each time) and prints milliseconds per step.

use std::time::Instant;

use actgpu::datasets::spirals;
use actgpu::verify::Rng;
use actgpu::{Activation, Adam, Gpu, Hidden, Loss, Mlp, Optimizer, Sgd};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/stdout.rs"]
mod stdout;
use stdout::emit;

/// The spirals' classes ([`spirals`], shared with the activation study).
const CLASSES: usize = 3;

const USAGE: &str = "usage: train [--epochs N] [--seed N] [--sgd] [--activation NAME] [--diagnostics] | train --time";

/// The command line: epochs, seed, SGD instead of Adam, the hidden activation, diagnostics, time mode.
struct Args {
    epochs: u64,
    seed: u64,
    sgd: bool,
    activation: Hidden,
    diagnostics: bool,
    time: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        epochs: 20,
        seed: 1,
        sgd: false,
        activation: Hidden::Act(Activation::Gelu),
        diagnostics: false,
        time: false,
    };
    let mut it = std::env::args().skip(1);
    let mut training_flags = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "--epochs" | "--seed" | "--activation") {
            cli::once(&mut seen, &a, USAGE)?;
        }
        if a != "--time" {
            training_flags.push(a.clone());
        }
        let mut value = || cli::value(&a, it.next(), USAGE);
        let mut count = |max: u64| -> Result<u64, String> {
            let v = value()?;
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(format!(
                    "{a} needs an integer in 1..={max}, got {v:?}; {USAGE}"
                ))
        };
        match a.as_str() {
            "--epochs" => args.epochs = count(100_000)?,
            "--seed" => args.seed = count(u64::MAX / 2)?,
            "--sgd" => args.sgd = true,
            "--diagnostics" => args.diagnostics = true,
            "--time" => args.time = true,
            "--activation" => {
                let name = value()?;
                let kind = Hidden::parse_name(&name)
                    .map_err(|e| format!("--activation {name}: {e}; {USAGE}"))?;
                args.activation = kind.ok_or_else(|| {
                    format!(
                        "unknown activation {name:?} (an activation, gated unit, learnable activation or \
                         rrelu by name, as relu, swiglu, prelu_channel, or with its constants, as \
                         leaky_relu(0.1), rrelu(0.1,0.3)); {USAGE}"
                    )
                })?;
            }
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    // The timing runs its own network and steps: a training flag beside it would be ignored.
    if args.time && !training_flags.is_empty() {
        return Err(format!(
            "--time runs its own fixed network and takes no other flag, got {}; {USAGE}",
            training_flags.join(" ")
        ));
    }
    Ok(args)
}

/// `println!` to standard output through [`emit`]: a closed pipe (`train | head -1`) ends the run quietly.
macro_rules! out {
    ($($arg:tt)*) => { emit("train", &format!("{}\n", format_args!($($arg)*))) };
}

/// The optimizer as the run's header line names it.
fn describe(opt: &Optimizer) -> String {
    match opt {
        Optimizer::Sgd(s) => format!("SGD (lr {}, momentum {})", s.lr, s.momentum),
        Optimizer::Adam(a) => format!("Adam (lr {})", a.lr),
    }
}

fn time_steps(gpu: &Gpu) -> actgpu::Result<()> {
    let sizes = [784, 512, 512, 10];
    let hidden = [Activation::Gelu, Activation::Gelu];
    let batch = 256;
    let mut rng = Rng::new(9);
    let x: Vec<f32> = (0..batch * 784).map(|_| rng.uniform(0.0, 1.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| (rng.next_u64() % 10) as u32).collect();
    let xt = gpu.upload_shaped(&x, &[batch, 784])?;
    let lt = actgpu::Labels::upload(gpu, &labels, 10)?;
    for (name, opt) in [
        ("SGD", Optimizer::Sgd(Sgd::new(0.01))),
        ("Adam", Optimizer::Adam(Adam::new(1e-3))),
    ] {
        let mut net = Mlp::new(gpu, &sizes, &hidden, Loss::SoftmaxCrossEntropy, opt, 1)?;
        let mut times = Vec::new();
        for rep in 0..7 {
            let start = Instant::now();
            net.train_step(&xt, actgpu::Targets::Classes(&lt))?;
            gpu.wait()?;
            if rep >= 2 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        out!(
            "784-512-512-10 GELU, batch 256, {name}: {:.1} ms per train_step (median of {}; min {:.1}, max {:.1}), loss {:.4}",
            times[times.len() / 2],
            times.len(),
            times[0],
            times[times.len() - 1],
            net.loss()?
        );
    }
    Ok(())
}

fn main() -> actgpu::Result<()> {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        out!("{USAGE}");
        return Ok(());
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("train: {msg}");
            std::process::exit(2);
        }
    };
    // No adapter is a message and exit status 2, as validate and bench give it, not a debug dump.
    let gpu = match Gpu::new() {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("train: {e}");
            std::process::exit(2);
        }
    };
    out!("adapter: {}", gpu.adapter_line());
    if args.time {
        return time_steps(&gpu);
    }
    let (epochs, seed, act, diagnostics) =
        (args.epochs, args.seed, args.activation, args.diagnostics);
    let (train_x, train_y) = spirals(300, seed);
    let (test_x, test_y) = spirals(100, seed + 1000);
    let opt = if args.sgd {
        Optimizer::Sgd(Sgd {
            momentum: 0.9,
            ..Sgd::new(0.1)
        })
    } else {
        Optimizer::Adam(Adam::new(0.01))
    };
    let sizes = [2, 64, 64, CLASSES];
    let hidden = [act, act];
    let mut net = Mlp::with_layers(&gpu, &sizes, &hidden, Loss::SoftmaxCrossEntropy, opt, seed)?;
    net.set_diagnostics(diagnostics)?;
    let train_t = gpu.upload_shaped(&train_x, &[train_y.len(), 2])?;
    let test_t = gpu.upload_shaped(&test_x, &[test_y.len(), 2])?;
    out!(
        "{} training points, {} test points, {act} hidden layers, {}",
        train_y.len(),
        test_y.len(),
        describe(&opt)
    );
    out!("epoch  loss(last batch)  train acc  test acc");
    let batch = 64;
    let mut order: Vec<usize> = (0..train_y.len()).collect();
    let mut rng = Rng::new(seed ^ 0x5eed);
    let start = Instant::now();
    let compiled_before = gpu.pipelines().compile_time();
    for epoch in 1..=epochs {
        // Fisher-Yates shuffle from the seed. The rows that do not fill a batch go first, as a smaller batch (any
        // batch size works), so that the epoch's last step, whose loss and diagnostics are printed, is a full one
        // (900 points in batches of 64 leave 4: a unit inactive on all of 4 rows is no news).
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let (short, full) = order.split_at(order.len() % batch);
        for rows in std::iter::once(short)
            .filter(|r| !r.is_empty())
            .chain(full.chunks(batch))
        {
            let x: Vec<f32> = rows
                .iter()
                .flat_map(|&r| [train_x[2 * r], train_x[2 * r + 1]])
                .collect();
            let y: Vec<u32> = rows.iter().map(|&r| train_y[r]).collect();
            net.train_step_classes(&x, &y)?;
        }
        let loss = net.loss()?;
        let train_acc = net.evaluate(&train_t, &train_y)?;
        let test_acc = net.evaluate(&test_t, &test_y)?;
        out!("{epoch:5}  {loss:16.5}  {train_acc:9.3}  {test_acc:8.3}");
        if diagnostics {
            let param_norms = net.activation_param_grad_norms()?;
            let layers = net.diagnostics()?;
            for (l, d) in layers.iter().enumerate() {
                let counted = l + 1 == layers.len() || act.plain().is_some();
                let rest = if counted {
                    format!(
                        "f'=0 {:5.1}%  dead neurons {:3}/{:<3}  saturated {:5.1}%",
                        100.0 * d.dead_fraction(),
                        d.dead_neurons,
                        d.neurons,
                        100.0 * d.saturated_fraction()
                    )
                } else {
                    let param = param_norms[l].map_or(String::new(), |n| format!("|dp| {n:.3e}  "));
                    format!(
                        "{param}dead and saturated units not counted for {}",
                        act.name()
                    )
                };
                out!("       layer {l}: |grad| {:.3e}  {rest}", d.grad_norm());
            }
        }
    }
    out!(
        "{epochs} epoch{} in {:.2} s ({:.2} s of it in creating {} pipelines)",
        if epochs == 1 { "" } else { "s" },
        start.elapsed().as_secs_f64(),
        (gpu.pipelines().compile_time() - compiled_before).as_secs_f64(),
        gpu.pipelines().len()
    );
    Ok(())
}
