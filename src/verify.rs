//! Checking GPU results against the f64 reference: named tolerances, input sets, error statistics, and the
//! whole check of one activation that the tests and the `validate` example share.

use crate::{cpu, Activation, Gpu, Result, Tensor};

/// Which direction of an op is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    /// `y = f(x)`.
    Forward,
    /// `dx = dy * f'(x)`.
    Backward,
}

impl Pass {
    /// `forward` or `backward`, as `validate --json` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::Backward => "backward",
        }
    }
}

/// A named tolerance: an element passes when `|got - ref| <= abs + rel * |ref|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Name, for reports.
    pub name: &'static str,
    /// Absolute slack.
    pub abs: f64,
    /// Relative slack.
    pub rel: f64,
}

impl Tolerance {
    /// The bound on `|got - ref|` for this reference value.
    pub fn allowed(&self, reference: f64) -> f64 {
        self.abs + self.rel * reference.abs()
    }
}

/// f32 elementwise kernels on random, sweep and edge inputs: `1e-6 + 1e-5 |ref|`.
pub const F32_ELEMENTWISE: Tolerance = Tolerance {
    name: "f32_elementwise",
    abs: 1e-6,
    rel: 1e-5,
};

/// f32 elementwise kernels on inputs with `1e-8 <= |x| <= 1e-3`: relative error only, `1e-5 |ref|`.
pub const F32_SMALL_INPUT: Tolerance = Tolerance {
    name: "f32_small_input_relative",
    abs: 0.0,
    rel: 1e-5,
};

/// The tolerance of an activation in a pass on general inputs. Every activation meets [`F32_ELEMENTWISE`]
/// today; a looser one would be named here, next to the reason.
pub fn activation_tolerance(_act: Activation, _pass: Pass) -> Tolerance {
    F32_ELEMENTWISE
}

/// The value written into outputs before a kernel runs, so an element the kernel skips cannot pass: a finite,
/// huge, odd value that no activation produces from the test inputs.
pub const POISON: f32 = f32::from_bits(0x7f7f_dead);

/// A small deterministic generator (SplitMix64) for seeded test inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi), rounded to f32.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.unit()) as f32
    }
}

/// Edge values: zeros, subnormals, tiny and huge magnitudes, the f32 extremes, infinities and NaN.
pub fn edge_values() -> Vec<f32> {
    let magnitudes = [
        0.0,
        f32::from_bits(1),
        1e-40,
        f32::MIN_POSITIVE,
        1e-30,
        1e-8,
        1e-7,
        1e-6,
        1e-5,
        1e-4,
        1e-3,
        0.5,
        1.0,
        3.0,
        6.0,
        10.0,
        20.0,
        50.0,
        88.7,
        89.0,
        100.0,
        1e4,
        1e30,
        f32::MAX,
        f32::INFINITY,
    ];
    let mut v: Vec<f32> = magnitudes.iter().flat_map(|&m| [m, -m]).collect();
    v.push(f32::NAN);
    v
}

/// `n` seeded uniform values at each of the scales 1, 4, 30 and 1000.
pub fn random_inputs(seed: u64, n_per_scale: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    [1.0, 4.0, 30.0, 1000.0]
        .iter()
        .flat_map(|&s| {
            (0..n_per_scale)
                .map(|_| rng.uniform(-s, s))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `n` evenly spaced values over [lo, hi], both ends included.
pub fn sweep(lo: f64, hi: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (lo + (hi - lo) * i as f64 / (n.max(2) - 1) as f64) as f32)
        .collect()
}

/// `n` log-spaced magnitudes over [1e-8, 1e-3], each with both signs.
pub fn small_inputs(n: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let m = 10f64.powf(-8.0 + 5.0 * i as f64 / (n.max(2) - 1) as f64) as f32;
            [m, -m]
        })
        .collect()
}

/// One element that failed its check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Failure {
    /// Index in the checked slice.
    pub index: usize,
    /// The op's input x there.
    pub input: f32,
    /// What the GPU wrote.
    pub got: f32,
    /// The f64 reference.
    pub expected: f64,
}

/// Error statistics of one comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// Elements compared.
    pub count: usize,
    /// Elements out of tolerance (or of the wrong class: NaN, inf, finite).
    pub failures: usize,
    /// Largest `|got - ref|` over elements where the absolute term of the tolerance dominates
    /// (`rel |ref| < abs`), so that it is not swamped by the rounding of huge values.
    pub max_abs_err: f64,
    /// Largest `|got - ref| / |ref|` over elements where the relative term of the tolerance dominates
    /// (`rel |ref| >= abs`), so that it is not swamped by references near 0.
    pub max_rel_err: f64,
    /// The input whose error used the largest share of its allowance.
    pub worst_input: f32,
    /// That share: `|got - ref| / (abs + rel |ref|)`; at most 1 when everything passes.
    pub worst_ratio: f64,
    /// The first few failures, in index order.
    pub first_failures: Vec<Failure>,
}

impl Check {
    /// True when no element failed.
    pub fn ok(&self) -> bool {
        self.failures == 0
    }
}

/// Compares `got` with `reference` element by element. Where the reference rounded to f32 is NaN or +-inf, the
/// result must be NaN or that same infinity; elsewhere it must be finite and within `tol`. `skip_zero_reference`
/// leaves out elements whose reference is 0 (for the relative-only check of small inputs).
pub fn compare(
    inputs: &[f32],
    got: &[f32],
    reference: &[f64],
    tol: Tolerance,
    skip_zero_reference: bool,
) -> Check {
    let mut c = Check {
        tolerance: tol,
        count: 0,
        failures: 0,
        max_abs_err: 0.0,
        max_rel_err: 0.0,
        worst_input: f32::NAN,
        worst_ratio: 0.0,
        first_failures: Vec::new(),
    };
    for (i, ((&x, &g), &r)) in inputs.iter().zip(got).zip(reference).enumerate() {
        if skip_zero_reference && r == 0.0 {
            continue;
        }
        c.count += 1;
        let r32 = r as f32;
        let (pass, ratio) = if r32.is_nan() {
            (g.is_nan(), if g.is_nan() { 0.0 } else { f64::INFINITY })
        } else if r32.is_infinite() {
            (g == r32, if g == r32 { 0.0 } else { f64::INFINITY })
        } else if !g.is_finite() {
            (false, f64::INFINITY)
        } else {
            let err = (f64::from(g) - r).abs();
            let allowed = tol.allowed(r);
            if tol.rel * r.abs() < tol.abs {
                c.max_abs_err = c.max_abs_err.max(err);
            } else if r != 0.0 {
                c.max_rel_err = c.max_rel_err.max(err / r.abs());
            }
            let ratio = if allowed > 0.0 {
                err / allowed
            } else if err == 0.0 {
                0.0
            } else {
                f64::INFINITY
            };
            (err <= allowed, ratio)
        };
        if ratio > c.worst_ratio || c.worst_input.is_nan() && ratio > 0.0 {
            c.worst_ratio = ratio;
            c.worst_input = x;
        }
        if !pass {
            c.failures += 1;
            if c.first_failures.len() < 8 {
                c.first_failures.push(Failure {
                    index: i,
                    input: x,
                    got: g,
                    expected: r,
                });
            }
        }
    }
    c
}

/// The result of checking one activation in one pass.
#[derive(Debug, Clone)]
pub struct ActivationCheck {
    /// The activation.
    pub activation: Activation,
    /// The pass.
    pub pass: Pass,
    /// Random, sweep and edge inputs under [`activation_tolerance`].
    pub general: Check,
    /// Inputs with `1e-8 <= |x| <= 1e-3` under [`F32_SMALL_INPUT`], where the reference is nonzero.
    pub small: Check,
}

impl ActivationCheck {
    /// True when both checks passed.
    pub fn ok(&self) -> bool {
        self.general.ok() && self.small.ok()
    }
}

/// The inputs [`check_activation`] uses: general (random, sweep of [-20, 20], edges) and small magnitudes.
pub fn standard_inputs(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut general = random_inputs(seed, 25_000);
    general.extend(sweep(-20.0, 20.0, 200_001));
    general.extend(edge_values());
    (general, small_inputs(2_000))
}

/// Runs `act` in `pass` on the GPU over `inputs` (with a seeded random `dy` for the backward, plus a few NaN
/// gradients) into a poisoned output, and returns `(x, output, reference)`.
pub fn run_activation(
    gpu: &Gpu,
    act: Activation,
    pass: Pass,
    inputs: &[f32],
    seed: u64,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f64>)> {
    let x_host = inputs.to_vec();
    let x = gpu.upload(&x_host)?;
    let out = gpu.upload(&vec![POISON; x_host.len()])?;
    match pass {
        Pass::Forward => {
            act.forward_into(&x, &out)?;
            let reference = x_host
                .iter()
                .map(|&v| cpu::activation::forward(act, f64::from(v)))
                .collect();
            Ok((x_host, out.read()?, reference))
        }
        Pass::Backward => {
            let mut rng = Rng::new(seed ^ 0xd1b5_4a32_d192_ed03);
            let mut dy_host: Vec<f32> = (0..x_host.len()).map(|_| rng.uniform(-2.0, 2.0)).collect();
            // A NaN gradient must come out as NaN whatever x is.
            for d in dy_host.iter_mut().skip(7).step_by(10_007) {
                *d = f32::NAN;
            }
            let dy: Tensor = gpu.upload(&dy_host)?;
            act.backward_into(&x, &dy, &out)?;
            let reference = x_host
                .iter()
                .zip(&dy_host)
                .map(|(&v, &d)| cpu::activation::backward(act, f64::from(v), f64::from(d)))
                .collect();
            Ok((x_host, out.read()?, reference))
        }
    }
}

/// Checks `act` in `pass` against the f64 reference on [`standard_inputs`].
pub fn check_activation(
    gpu: &Gpu,
    act: Activation,
    pass: Pass,
    seed: u64,
) -> Result<ActivationCheck> {
    let (general_in, small_in) = standard_inputs(seed);
    let tol = activation_tolerance(act, pass);
    let (x, got, reference) = run_activation(gpu, act, pass, &general_in, seed)?;
    let general = compare(&x, &got, &reference, tol, false);
    let (x, got, reference) = run_activation(gpu, act, pass, &small_in, seed)?;
    let small = compare(&x, &got, &reference, F32_SMALL_INPUT, true);
    Ok(ActivationCheck {
        activation: act,
        pass,
        general,
        small,
    })
}
