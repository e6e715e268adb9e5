//! The randomized leaky ReLU's training mode against the f64 reference (`actgpu::verify::rrelu`), forward and
//! backward into poisoned outputs: random inputs and every pair of edge values in every storage type and a mix
//! of them; the draw itself (its range, mean and spread on the GPU, the same bits for the same seed, new slopes
//! for a new one); dispatch grids folded past their per-dimension limit and operands past the storage-binding
//! limit, which must draw what one launch draws; evaluation mode; the argument errors; and `Hidden::Rrelu` layers
//! of an `Mlp`: five steps against the f64 network (in one pass and in passes), the noise seed's determinism, a
//! training checkpoint's resumption and the weights file's layer specs.

mod common;

use actgpu::verify::fused::random_values;
use actgpu::verify::rrelu::{check, check_standard, RreluDtypes};
use actgpu::{
    Activation, Adam, DType, Error, Gpu, GpuOptions, Hidden, Loss, Mlp, Optimizer, Rrelu,
};
use common::{
    assert_checks_ok, assert_same_training, bits, capped_binding_gpu, gpu, small_grid_gpu,
};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

#[test]
fn random_inputs_and_edge_pairs_match_the_reference_in_every_storage_type() {
    for dtype in DTYPES {
        let checks = check_standard(gpu(), dtype).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        assert_checks_ok(dtype.name(), checks);
    }
}

#[test]
fn mixed_storage_types_match_the_reference() {
    let mixes = [
        (DType::BF16, DType::F16, DType::F32),
        (DType::F32, DType::BF16, DType::F16),
        (DType::F16, DType::F32, DType::BF16),
    ];
    for (i, (x, dy, out)) in mixes.into_iter().enumerate() {
        let dtypes = RreluDtypes { x, dy, out };
        let xs = random_values(1001, 8.0, x, 70 + i as u64);
        let dys = random_values(1001, 1.0, dy, 80 + i as u64);
        let checks = check(gpu(), Rrelu::DEFAULT, 3, dtypes, &xs, &dys, false)
            .unwrap_or_else(|e| panic!("{dtypes:?}: {e}"));
        assert_checks_ok(&format!("{dtypes:?}"), checks);
    }
}

/// The slopes a GPU forward draws at `x = -1`.
fn gpu_slopes(g: &Gpu, r: Rrelu, seed: u64, n: usize) -> Vec<f32> {
    let x = g.upload(&vec![-1.0f32; n]).unwrap();
    let y: Vec<f32> = r.forward(&x, seed).unwrap().read().unwrap();
    y.iter().map(|v| -v).collect()
}

#[test]
fn the_draw_is_uniform_over_the_range_and_follows_the_seed() {
    let r = Rrelu::new(0.25, 0.75).unwrap();
    let n = 200_000;
    let a = gpu_slopes(gpu(), r, 11, n);
    // (A slope may round to upper in f32.)
    assert!(
        a.iter().all(|&s| (0.25..=0.75).contains(&s)),
        "a slope outside [0.25, 0.75]"
    );
    let mean = a.iter().map(|&s| f64::from(s)).sum::<f64>() / n as f64;
    // The mean of n uniforms on [0.25, 0.75] has standard deviation 0.5 / sqrt(12 n) = 3.2e-4: 5 of them.
    assert!((mean - 0.5).abs() < 1.6e-3, "mean slope {mean}");
    // Twenty equal bins each hold n/20 +- 5 standard deviations (sqrt(n 0.05 0.95) = 97).
    let mut bins = [0usize; 20];
    for &s in &a {
        bins[(((f64::from(s) - 0.25) * 40.0) as usize).min(19)] += 1;
    }
    assert!(
        bins.iter().all(|&b| (b as f64 - 10_000.0).abs() < 490.0),
        "bins {bins:?}"
    );
    // Neighbouring elements are not correlated: the lag-1 correlation of n draws is within 5 / sqrt(n).
    let c = a.iter().map(|&s| f64::from(s) - mean);
    let lag: f64 = c.clone().zip(c.clone().skip(1)).map(|(u, v)| u * v).sum();
    let var: f64 = c.map(|u| u * u).sum();
    assert!(
        (lag / var).abs() < 0.0112,
        "lag-1 correlation {}",
        lag / var
    );
    // The same seed draws the same bits; another seed (in either word) draws new slopes almost everywhere.
    assert_eq!(gpu_slopes(gpu(), r, 11, n), a);
    for other in [12, 11 + (1 << 32)] {
        let b = gpu_slopes(gpu(), r, other, n);
        let same = a.iter().zip(&b).filter(|(u, v)| u == v).count();
        // Two independent draws on a 2^24-point grid agree with probability 2^-24.
        assert!(same < 10, "seed {other}: {same} of {n} slopes unchanged");
    }
}

#[test]
fn folded_grids_and_chunked_bindings_draw_what_one_launch_draws() {
    let n = 200_003;
    let x = random_values(n, 8.0, DType::F32, 5);
    let dy = random_values(n, 1.0, DType::F16, 6);
    let dtypes = RreluDtypes {
        x: DType::F32,
        dy: DType::F16,
        out: DType::BF16,
    };
    let small = small_grid_gpu();
    let capped = capped_binding_gpu(64 * 1024, GpuOptions::default());
    for (what, g) in [("folded grid", &small), ("64 KiB bindings", &capped)] {
        let checks = check(g, Rrelu::DEFAULT, 77, dtypes, &x, &dy, false)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_checks_ok(what, checks);
    }
    let whole = gpu_slopes(gpu(), Rrelu::DEFAULT, 77, n);
    assert_eq!(gpu_slopes(&capped, Rrelu::DEFAULT, 77, n), whole);
    assert_eq!(gpu_slopes(&small, Rrelu::DEFAULT, 77, n), whole);
}

#[test]
fn evaluation_mode_is_the_leaky_relu_at_the_mean_slope() {
    let r = Rrelu::DEFAULT;
    assert_eq!(r, Rrelu::default());
    assert_eq!(
        r.mean_slope(),
        ((0.125f64 + 1.0 / 3.0f32 as f64) / 2.0) as f32
    );
    assert_eq!(
        r.eval_activation(),
        Activation::LeakyRelu {
            negative_slope: r.mean_slope()
        }
    );
    // A degenerate range draws its one slope in training too.
    let fixed = Rrelu::new(0.2, 0.2).unwrap();
    assert!(gpu_slopes(gpu(), fixed, 1, 1000).iter().all(|&s| s == 0.2));
}

#[test]
fn empty_and_single_element_tensors() {
    let g = gpu();
    let empty = g.upload(&[] as &[f32]).unwrap();
    assert!(Rrelu::DEFAULT.forward(&empty, 1).unwrap().is_empty());
    let one = g.upload(&[-2.0f32]).unwrap();
    let y: Vec<f32> = Rrelu::DEFAULT.forward(&one, 1).unwrap().read().unwrap();
    // Within the last bit of the slope: a driver may fuse the slope's multiply-add.
    let want = -2.0 * Rrelu::DEFAULT.slope(1, 0);
    assert!(
        (y[0] - want).abs() <= 2.0 * f32::EPSILON * want.abs(),
        "{y:?} {want}"
    );
}

#[test]
fn argument_errors_are_typed() {
    let g = gpu();
    for (lower, upper) in [(0.5, 0.25), (f32::NAN, 0.3), (0.1, f32::INFINITY)] {
        let e = Rrelu::new(lower, upper).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { op: "rrelu", .. }),
            "{e}"
        );
        let bad = Rrelu { lower, upper };
        let x = g.upload(&[1.0f32, -1.0]).unwrap();
        let e = bad.forward(&x, 0).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { op: "rrelu", .. }),
            "{e}"
        );
    }
    let x = g.upload(&[1.0f32, -1.0, 3.0]).unwrap();
    let short = g.upload(&[1.0f32, -1.0]).unwrap();
    let e = Rrelu::DEFAULT.backward(&x, &short, 0).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let e = Rrelu::DEFAULT.forward_into(&x, 0, &x).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let other = Gpu::new().unwrap();
    let y = other.zeros(&[3], DType::F32).unwrap();
    let e = Rrelu::DEFAULT.forward_into(&x, 0, &y).unwrap_err();
    assert!(matches!(e, Error::DeviceMismatch { .. }), "{e}");
}

/// A network with randomized leaky ReLU hidden layers (one of them beside a plain one), trained `steps` steps of
/// 9 rows on fixed data with noise seed `noise_seed`: the network and its losses.
fn trained(steps: usize, noise_seed: u64, from: Option<&[u8]>) -> (Mlp, Vec<f32>) {
    let hidden = [
        Hidden::Rrelu(Rrelu::DEFAULT),
        Hidden::Act(Activation::Gelu),
        Hidden::Rrelu(Rrelu::new(0.0, 0.5).unwrap()),
    ];
    let opt = Optimizer::Adam(Adam::new(0.01));
    let ce = Loss::SoftmaxCrossEntropy;
    let mut net = Mlp::with_layers(gpu(), &[4, 12, 8, 6, 3], &hidden, ce, opt, 3).unwrap();
    net.set_noise_seed(noise_seed);
    if let Some(bytes) = from {
        net.load_training_checkpoint_bytes(bytes).unwrap();
    }
    let x = random_values(9 * 4, 2.0, DType::F32, 1);
    let labels: Vec<u32> = (0..9).map(|i| i % 3).collect();
    let mut losses = Vec::new();
    for _ in 0..steps {
        net.train_step_classes(&x, &labels).unwrap();
        losses.push(net.loss().unwrap());
    }
    (net, losses)
}

#[test]
fn an_mlp_with_an_rrelu_layer_trains_as_the_f64_reference() {
    let checks = actgpu::verify::mlp::check_training_steps(gpu()).unwrap();
    assert_eq!(checks.len(), 12);
    assert_checks_ok("mlp", checks);
}

#[test]
fn rrelu_layers_draw_by_the_noise_seed_and_resume_from_a_training_checkpoint() {
    // The same noise seed trains the same bits; another draws other slopes, and the training moves apart.
    let (a, losses_a) = trained(4, 5, None);
    let (b, losses_b) = trained(4, 5, None);
    assert_same_training((&a, &losses_a), (&b, &losses_b));
    let (c, _) = trained(4, 6, None);
    assert_ne!(
        bits(&a.params().unwrap()[0].0),
        bits(&c.params().unwrap()[0].0)
    );
    // (Evaluation mode at the mean slope is checked against the reference by verify::mlp's predictions.)
    let x = gpu().upload_shaped(&[-1.0f32; 8], &[2, 4]).unwrap();
    let p: Vec<f32> = a.predict(&x).unwrap().read().unwrap();
    // A training checkpoint keeps the noise seed: 2 steps, save, 2 more resume the 4-step run bit for bit, into
    // a network built with another noise seed.
    let (half, _) = trained(2, 5, None);
    let bytes = half.to_training_checkpoint_bytes().unwrap();
    let (resumed, losses_r) = trained(2, 99, Some(&bytes));
    assert_eq!(resumed.noise_seed(), 5);
    assert_same_training((&a, &losses_a[2..]), (&resumed, &losses_r));
    // The weights file names each layer's kind and range, and loads back as the same layers.
    let weights = a.to_safetensors_bytes().unwrap();
    let opt = Optimizer::Adam(Adam::new(0.01));
    let copy = Mlp::from_safetensors(gpu(), &weights, Loss::SoftmaxCrossEntropy, opt).unwrap();
    assert_eq!(copy.hidden(), a.hidden());
    assert_eq!(
        bits(&copy.predict(&x).unwrap().read::<f32>().unwrap()),
        bits(&p)
    );
}
