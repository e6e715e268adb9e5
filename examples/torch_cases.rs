//! Writes the cases that `scripts/torch_crosscheck.py` compares with PyTorch: an independent oracle for the
//! crate's claims "as PyTorch" (the activations' formulas, parameters, derivatives at kinks and values at
//! infinities, the gated halves, softmax's backward from its output, the losses' means, the optimizers' updates,
//! the safetensors names an
//! `nn.Sequential` loads), which the f64 CPU reference cannot check because it is this crate's own reading of
//! PyTorch.
//!
//! ```text
//! cargo run --release --example torch_cases -- OUT_DIR
//! python3 scripts/torch_crosscheck.py OUT_DIR      (needs torch, numpy and safetensors)
//! ```
//!
//! `OUT_DIR/cases.safetensors` holds every input the GPU saw and every output it wrote, as F32 (16-bit values
//! widened, which is exact), named `<group>/<case>/<tensor>`, with the parameters in the metadata;
//! `OUT_DIR/mlp_init.safetensors` and `OUT_DIR/mlp_trained.safetensors` hold a small MLP before and after
//! [`STEPS`] Adam steps on one batch (in the same file: the batch and the losses).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use actgpu::nn::safetensors::{serialize_f32, write_file, F32Tensor};
use actgpu::{
    Activation, Adam, DType, Gated, Gpu, Hidden, Labels, Learnable, Loss, Mlp, Optimizer, Sgd,
    SoftmaxKind, Targets, Tensor,
};

/// Adam steps of the MLP case, and updates of each optimizer case.
const STEPS: usize = 20;
/// Columns of the 2-D cases (bias, learnable, gated, losses): odd, so no kernel's 4- or 8-element units divide it.
const COLS: usize = 37;

/// A small deterministic generator (xorshift64*), so that a re-run writes the same file.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (hi - lo) * self.next_f64()) as f32)
            .collect()
    }
}

/// Edge values (zeros of both signs, subnormals, the thresholds of the piecewise formulas, overflow points,
/// infinities, NaN), then uniform values in [-12, 12), then magnitudes spread log-uniformly over 1e-30..1e30; and
/// how many edge values lead.
fn activation_inputs(rng: &mut Rng) -> (Vec<f32>, usize) {
    let magnitudes = [
        0.0f32,
        1e-45,
        1e-40,
        1.1754944e-38,
        1e-20,
        1e-7,
        0.5,
        1.0,
        1.5,
        2.9,
        3.0,
        3.1,
        5.0,
        6.0,
        10.0,
        15.0,
        20.0,
        30.0,
        40.0,
        80.0,
        88.7,
        89.0,
        100.0,
        1e4,
        1e10,
        1e30,
        f32::MAX,
        f32::INFINITY,
    ];
    let mut x: Vec<f32> = magnitudes.iter().flat_map(|&m| [m, -m]).collect();
    x.push(f32::NAN);
    let edges = x.len();
    x.extend(rng.uniform(4000, -12.0, 12.0));
    x.extend((0..1000).map(|_| {
        let m = 10f64.powf(rng.next_f64() * 60.0 - 30.0);
        (if rng.next_f64() < 0.5 { -m } else { m }) as f32
    }));
    (x, edges)
}

/// The activations compared: every built-in at its defaults and at the other parameters `validate` checks.
fn activations() -> Vec<Activation> {
    let mut all = Activation::ALL.to_vec();
    all.extend(actgpu::verify::OTHER_PARAMETERS);
    all
}

/// Tensors and metadata gathered for one file.
#[derive(Default)]
struct Cases {
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    metadata: Vec<(String, String)>,
}

impl Cases {
    fn add(&mut self, name: String, t: &Tensor) -> actgpu::Result<()> {
        self.tensors.push((name, t.shape().to_vec(), t.read_f32()?));
        Ok(())
    }

    fn add_host(&mut self, name: String, shape: &[usize], data: Vec<f32>) {
        self.tensors.push((name, shape.to_vec(), data));
    }

    fn note(&mut self, key: String, value: String) {
        self.metadata.push((key, value));
    }

    fn write(&self, path: &Path) -> actgpu::Result<()> {
        let tensors: Vec<F32Tensor> = self
            .tensors
            .iter()
            .map(|(name, shape, data)| F32Tensor { name, shape, data })
            .collect();
        let metadata: Vec<(&str, &str)> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        write_file(path, &serialize_f32(&tensors, &metadata)?)
    }
}

fn upload(gpu: &Gpu, data: &[f32], shape: &[usize], dtype: DType) -> actgpu::Result<Tensor> {
    gpu.upload_f32_as(data, dtype)?.reshape(shape)
}

/// A tensor of `shape` with values uniform in [lo, hi), rounded to `dtype`.
fn random(
    gpu: &Gpu,
    rng: &mut Rng,
    shape: &[usize],
    lo: f64,
    hi: f64,
    dtype: DType,
) -> actgpu::Result<Tensor> {
    upload(
        gpu,
        &rng.uniform(shape.iter().product(), lo, hi),
        shape,
        dtype,
    )
}

/// Every activation's forward and backward in each storage type; names `act/<spec>/<dtype>/{x,dy,y,dx}`.
fn activation_cases(
    gpu: &Gpu,
    cases: &mut Cases,
    rng: &mut Rng,
    dtypes: &[DType],
) -> actgpu::Result<()> {
    let (x, edges) = activation_inputs(rng);
    let mut dy = rng.uniform(x.len(), -2.0, 2.0);
    // A few non-finite upstream gradients, against random x past the edge values: NaN must come out, and an
    // infinite dy times a zero derivative is NaN too (the README's policy).
    for (i, v) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        dy[edges + 8 * i..edges + 8 * (i + 1)].fill(v);
    }
    for act in activations() {
        let spec = actgpu::nn::checkpoint::activation_spec(act);
        for &dtype in dtypes {
            let name = format!("act/{spec}/{}", dtype.name());
            let xt = upload(gpu, &x, &[x.len()], dtype)?;
            let dyt = upload(gpu, &dy, &[dy.len()], dtype)?;
            cases.add(format!("{name}/x"), &xt)?;
            cases.add(format!("{name}/dy"), &dyt)?;
            cases.add(format!("{name}/y"), &act.forward(&xt)?)?;
            cases.add(format!("{name}/dx"), &act.backward(&xt, &dyt)?)?;
        }
    }
    Ok(())
}

/// Bias + activation forward and backward (dx and db), f32; names `bias/<spec>/{x,b,dy,y,dx,db}`.
fn bias_cases(gpu: &Gpu, cases: &mut Cases, rng: &mut Rng) -> actgpu::Result<()> {
    let rows = 53;
    for act in [
        Activation::Gelu,
        Activation::Silu,
        Activation::Relu,
        Activation::Tanh,
    ] {
        let name = format!("bias/{}", act.name());
        let x = random(gpu, rng, &[rows, COLS], -5.0, 5.0, DType::F32)?;
        let b = random(gpu, rng, &[COLS], -1.0, 1.0, DType::F32)?;
        let dy = random(gpu, rng, &[rows, COLS], -1.0, 1.0, DType::F32)?;
        let (dx, db) = act.bias_backward(&x, &b, &dy)?;
        cases.add(format!("{name}/y"), &act.bias_forward(&x, &b)?)?;
        for (t, tensor) in [("x", &x), ("b", &b), ("dy", &dy), ("dx", &dx), ("db", &db)] {
            cases.add(format!("{name}/{t}"), tensor)?;
        }
    }
    Ok(())
}

/// Gated units in the `[a | g]` layout, forward and backward, f32 and bf16; names `gated/<name>/<dtype>/...`.
fn gated_cases(gpu: &Gpu, cases: &mut Cases, rng: &mut Rng) -> actgpu::Result<()> {
    let rows = 41;
    for gated in Gated::ALL {
        for dtype in [DType::F32, DType::BF16] {
            let name = format!("gated/{}/{}", gated.name(), dtype.name());
            let x = random(gpu, rng, &[rows, 2 * COLS], -6.0, 6.0, dtype)?;
            let dout = random(gpu, rng, &[rows, COLS], -1.0, 1.0, dtype)?;
            cases.add(format!("{name}/y"), &gated.forward(&x)?)?;
            cases.add(format!("{name}/dx"), &gated.backward(&x, &dout)?)?;
            cases.add(format!("{name}/x"), &x)?;
            cases.add(format!("{name}/dy"), &dout)?;
        }
    }
    Ok(())
}

/// Learnable activations (per-column PReLU slopes, a shared Swish beta and ELU alpha), forward and backward
/// with the parameter's gradient; names `learn/<name>/{x,p,dy,y,dx,dp}`.
fn learnable_cases(gpu: &Gpu, cases: &mut Cases, rng: &mut Rng) -> actgpu::Result<()> {
    let rows = 67;
    for (kind, p) in [
        (Learnable::Prelu, rng.uniform(COLS, -0.5, 0.5)),
        (Learnable::Swish, vec![1.3]),
        (Learnable::Elu, vec![0.7]),
    ] {
        let name = format!("learn/{}", kind.name());
        let x = random(gpu, rng, &[rows, COLS], -6.0, 6.0, DType::F32)?;
        let p = upload(gpu, &p, &[p.len()], DType::F32)?;
        let dy = random(gpu, rng, &[rows, COLS], -1.0, 1.0, DType::F32)?;
        let (dx, dp) = kind.backward(&x, &p, &dy)?;
        cases.add(format!("{name}/y"), &kind.forward(&x, &p)?)?;
        for (t, tensor) in [("x", &x), ("p", &p), ("dy", &dy), ("dx", &dx), ("dp", &dp)] {
            cases.add(format!("{name}/{t}"), tensor)?;
        }
    }
    Ok(())
}

/// Softmax and log-softmax over rows, forward and backward (from the output, as PyTorch's backward takes it), in
/// f32 and bf16; names `softmax/<kind>/<dtype>/{x,dy,y,dx}`. Logits in [-30, 30), so that some rows are nearly
/// certain, and a first row of +-1e30 with ties at the maximum.
fn softmax_cases(gpu: &Gpu, cases: &mut Cases, rng: &mut Rng) -> actgpu::Result<()> {
    let rows = 23;
    for kind in SoftmaxKind::ALL {
        for dtype in [DType::F32, DType::BF16] {
            let name = format!("softmax/{}/{}", kind.name(), dtype.name());
            let mut data = rng.uniform(rows * COLS, -30.0, 30.0);
            for (j, v) in data[..COLS].iter_mut().enumerate() {
                *v = [1e30, -1e30, *v][j % 3];
            }
            let x = upload(gpu, &data, &[rows, COLS], dtype)?;
            let dy = random(gpu, rng, &[rows, COLS], -1.0, 1.0, dtype)?;
            let y = kind.forward(&x)?;
            cases.add(format!("{name}/dx"), &kind.backward(&y, &dy)?)?;
            cases.add(format!("{name}/y"), &y)?;
            cases.add(format!("{name}/x"), &x)?;
            cases.add(format!("{name}/dy"), &dy)?;
        }
    }
    Ok(())
}

/// The three losses and their gradients; names `loss/<name>/{pred,target,loss,grad}` (class indices as f32).
fn loss_cases(gpu: &Gpu, cases: &mut Cases, rng: &mut Rng) -> actgpu::Result<()> {
    let rows = 29;
    // Logits up to +-60 so that some rows are nearly certain, as after a long training run.
    let pred = random(gpu, rng, &[rows, COLS], -60.0, 60.0, DType::F32)?;
    let classes: Vec<u32> = (0..rows)
        .map(|_| (rng.next_f64() * COLS as f64) as u32)
        .collect();
    let labels = Labels::upload(gpu, &classes, COLS)?;
    let values = random(gpu, rng, &[rows, COLS], 0.0, 1.0, DType::F32)?;
    for (loss, targets) in [
        (Loss::SoftmaxCrossEntropy, Targets::Classes(&labels)),
        (Loss::Mse, Targets::Values(&values)),
        (Loss::BceWithLogits, Targets::Values(&values)),
    ] {
        let name = format!("loss/{}", loss.name());
        let (value, grad) = loss.compute(&pred, targets)?;
        cases.add(format!("{name}/pred"), &pred)?;
        cases.add(format!("{name}/loss"), &value)?;
        cases.add(format!("{name}/grad"), &grad)?;
        match targets {
            Targets::Classes(_) => cases.add_host(
                format!("{name}/target"),
                &[rows],
                classes.iter().map(|&c| c as f32).collect(),
            ),
            Targets::Values(v) => cases.add(format!("{name}/target"), v)?,
        }
    }
    Ok(())
}

/// Each optimizer over [`STEPS`] updates of one parameter tensor from a fixed sequence of gradients; names
/// `optim/<case>/{p0,grads,p}`, the hyperparameters in the metadata key `optim/<case>`.
fn optimizer_cases(gpu: &Gpu, cases: &mut Cases, rng: &mut Rng) -> actgpu::Result<()> {
    let n = 1001;
    let sgd = |lr, momentum, dampening, weight_decay, nesterov| {
        Optimizer::Sgd(Sgd {
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
        })
    };
    let adam = |lr, weight_decay, decoupled| {
        Optimizer::Adam(Adam {
            weight_decay,
            decoupled,
            ..Adam::new(lr)
        })
    };
    let optimizers = [
        ("sgd", sgd(0.1, 0.0, 0.0, 0.0, false)),
        ("sgd_momentum", sgd(0.05, 0.9, 0.1, 0.01, false)),
        ("sgd_nesterov", sgd(0.05, 0.9, 0.0, 0.001, true)),
        ("adam", adam(0.01, 0.0, false)),
        ("adam_l2", adam(0.01, 0.05, false)),
        ("adamw", adam(0.01, 0.1, true)),
    ];
    let p0 = rng.uniform(n, -1.0, 1.0);
    // Gradients of mixed scales (1e-6 to 1e2), as different layers see.
    let grads: Vec<f32> = (0..STEPS * n)
        .map(|i| (rng.next_f64() * 2.0 - 1.0) as f32 * 10f32.powi((i % 9) as i32 - 6))
        .collect();
    for (name, opt) in optimizers {
        let param = upload(gpu, &p0, &[n], DType::F32)?;
        let state = opt.init_state(&param)?;
        for step in 0..STEPS {
            let grad = upload(gpu, &grads[step * n..(step + 1) * n], &[n], DType::F32)?;
            opt.update(gpu, &param, &grad, &state, step as u64 + 1)?;
        }
        cases.note(format!("optim/{name}"), optimizer_json(&opt));
        cases.add_host(format!("optim/{name}/p0"), &[n], p0.clone());
        cases.add_host(format!("optim/{name}/grads"), &[STEPS, n], grads.clone());
        cases.add(format!("optim/{name}/p"), &param)?;
    }
    Ok(())
}

/// A 10-24-24-5 MLP (GELU, then per-unit PReLU) saved, trained [`STEPS`] Adam steps on one batch, saved again;
/// the batch, labels and per-step losses go into `mlp_batch.safetensors`.
fn mlp_case(gpu: &Gpu, dir: &Path, rng: &mut Rng) -> actgpu::Result<()> {
    let (inputs, classes, rows) = (10, 5, 64);
    let hidden = [
        Hidden::Act(Activation::Gelu),
        Hidden::learnable(Learnable::Prelu, true),
    ];
    let mut net = Mlp::with_layers(
        gpu,
        &[inputs, 24, 24, classes],
        &hidden,
        Loss::SoftmaxCrossEntropy,
        Optimizer::Adam(Adam::new(0.01)),
        7,
    )?;
    net.save_safetensors(dir.join("mlp_init.safetensors"))?;
    let x = rng.uniform(rows * inputs, -2.0, 2.0);
    let labels: Vec<u32> = (0..rows)
        .map(|_| (rng.next_f64() * classes as f64) as u32)
        .collect();
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        net.train_step_classes(&x, &labels)?;
        losses.push(net.loss()?);
    }
    net.save_safetensors(dir.join("mlp_trained.safetensors"))?;
    let mut batch = Cases::default();
    batch.add_host("x".into(), &[rows, inputs], x);
    batch.add_host(
        "labels".into(),
        &[rows],
        labels.iter().map(|&c| c as f32).collect(),
    );
    batch.add_host("losses".into(), &[STEPS], losses);
    batch.note(
        "optimizer".into(),
        "Adam(lr=0.01), PyTorch defaults otherwise".into(),
    );
    batch.write(&dir.join("mlp_batch.safetensors"))
}

/// The hyperparameters as a JSON object, for the script to build the same `torch.optim` optimizer.
fn optimizer_json(opt: &Optimizer) -> String {
    match *opt {
        Optimizer::Sgd(s) => format!(
            r#"{{"kind":"sgd","lr":{},"momentum":{},"dampening":{},"weight_decay":{},"nesterov":{}}}"#,
            s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov
        ),
        Optimizer::Adam(a) => format!(
            r#"{{"kind":"{}","lr":{},"beta1":{},"beta2":{},"eps":{:e},"weight_decay":{}}}"#,
            if a.decoupled { "adamw" } else { "adam" },
            a.lr,
            a.beta1,
            a.beta2,
            a.eps,
            a.weight_decay
        ),
    }
}

fn run(dir: &Path) -> actgpu::Result<()> {
    let gpu = Gpu::new()?;
    eprintln!("{}", gpu.adapter_line());
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut cases = Cases::default();
    cases.note("adapter".into(), gpu.adapter_line());
    cases.note("version".into(), env!("CARGO_PKG_VERSION").into());
    activation_cases(
        &gpu,
        &mut cases,
        &mut rng,
        &[DType::F32, DType::F16, DType::BF16],
    )?;
    bias_cases(&gpu, &mut cases, &mut rng)?;
    gated_cases(&gpu, &mut cases, &mut rng)?;
    learnable_cases(&gpu, &mut cases, &mut rng)?;
    loss_cases(&gpu, &mut cases, &mut rng)?;
    softmax_cases(&gpu, &mut cases, &mut rng)?;
    optimizer_cases(&gpu, &mut cases, &mut rng)?;
    cases.write(&dir.join("cases.safetensors"))?;
    mlp_case(&gpu, dir, &mut rng)?;
    eprintln!(
        "wrote {} tensors into {}",
        cases.tensors.len(),
        dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = &args[..] else {
        eprintln!(
            "usage: torch_cases OUT_DIR   (then: python3 scripts/torch_crosscheck.py OUT_DIR)"
        );
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("torch_cases: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torch_cases: {e}");
            ExitCode::FAILURE
        }
    }
}
