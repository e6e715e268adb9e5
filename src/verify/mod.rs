//! Checking GPU results against the f64 reference: named tolerances, input sets, error statistics, and the
//! whole check of one activation that the tests and the `validate` example share.

mod compare;
pub mod dy_edges;
pub mod finite_difference;
mod flush;
pub mod fused;
mod inputs;
pub mod mlp;
pub mod rrelu;
pub mod softmax;
pub mod survey;
pub mod training;

pub use compare::{
    compare, compare_bounded, compare_flushing, compare_storage, Check, Criterion, Failure,
};
pub(crate) use flush::probe as probe_flushing;
pub use flush::{flush_subnormal, flushed_reference, FLUSH_UNDERFLOW};
pub use inputs::{
    edge_values, every_bit_pattern, every_pattern_bits, random_inputs, round_to, small_inputs,
    sweep, Rng,
};

use crate::{cpu, Activation, DType, Gpu, Result, Tensor};

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

/// The tails of activations computed through `exp` (see [`tail_tolerance`]): relative only, `1e-4 |ref|`. WGSL's
/// `exp(v)` may be `3 + 2 |v|` ULP off, 2.1e-5 relative at `|v| = 88` where the tails end in f32 (GELU's
/// `e^(-x^2 / 2)` reaches it at `|x| = 13`); measured on lavapipe: GELU 1.8e-5, the tanh form 2.7e-5, SiLU' 1.2e-5.
pub const F32_TAIL: Tolerance = Tolerance {
    name: "f32_tail_relative",
    abs: 0.0,
    rel: 1e-4,
};

/// The relative tolerance of the tails check of [`check_activation`] for an activation in a pass: [`F32_TAIL`]
/// for those whose tails go through `exp` (the sigmoid, softplus, ELU and GELU families, mish, tanh, tanhshrink)
/// and for user-defined ones (whose formula is unknown); for the rest (piecewise linear or rational: ReLU and its
/// variants, hard*, hardshrink, softshrink, softsign, relu_squared, identity) the relative term of
/// [`activation_tolerance`], `1e-5 |ref|`, with no absolute term.
pub fn tail_tolerance(act: Activation, pass: Pass) -> Tolerance {
    // The activations without exp are the streaming ones (`Activation::intensity`).
    match act.intensity() {
        crate::dispatch::Intensity::Streaming => Tolerance {
            name: "f32_tail_relative",
            abs: 0.0,
            rel: activation_tolerance(act, pass).rel,
        },
        crate::dispatch::Intensity::Arithmetic => F32_TAIL,
    }
}

/// The inputs of the tails check: `|x|` in [2, 130], both signs, 8,000 values.
pub fn tail_inputs() -> Vec<f32> {
    (0..8_000)
        .map(|i| (2.0 + 128.0 * (i / 2) as f32 / 4_000.0) * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect()
}

/// The parameterised activations with parameters other than PyTorch's defaults (including the edge cases
/// `beta = 0` of Swish, which is `x / 2`, a leaky ReLU of slope 0, which is ReLU and must give 0 at -inf, not
/// `0 * -inf`, and a hardshrink with a negative lambd, which maps nothing to 0), so that tests exercise the
/// parameters as well as the defaults. (Softshrink with `lambd = 0` is the identity with `f'(0) = 0`, PyTorch's
/// mask, which no finite difference gives: `tests/activations.rs` checks it apart.)
pub const OTHER_PARAMETERS: [Activation; 14] = [
    Activation::LeakyRelu {
        negative_slope: 0.2,
    },
    Activation::LeakyRelu {
        negative_slope: 0.0,
    },
    Activation::Elu { alpha: 0.5 },
    Activation::Celu { alpha: 2.0 },
    Activation::Celu { alpha: -0.5 },
    // Past |alpha| = 2.06, alpha e^88 overflows f32: a form that multiplied it out was refused by naga when the
    // pipeline was created ('Float literal is infinite'), which no alpha of 2 or below showed.
    Activation::Celu { alpha: 3.0 },
    Activation::Swish { beta: 1.5 },
    Activation::Swish { beta: 0.0 },
    Activation::Softplus {
        beta: 2.0,
        threshold: 10.0,
    },
    Activation::Hardtanh {
        min_val: -2.0,
        max_val: 3.0,
    },
    Activation::Hardshrink { lambd: 1.5 },
    Activation::Hardshrink { lambd: -1.0 },
    Activation::Softshrink { lambd: 2.0 },
    Activation::Threshold {
        threshold: -1.0,
        value: -2.5,
    },
];

/// The tolerance of an activation in a pass on general inputs. Every activation meets [`F32_ELEMENTWISE`]
/// today; a looser one would be named here, next to the reason.
pub fn activation_tolerance(_act: Activation, _pass: Pass) -> Tolerance {
    F32_ELEMENTWISE
}

/// The value written into f32 outputs before a kernel runs, so an element the kernel skips cannot pass: a
/// finite, huge, odd value that no activation produces from the test inputs.
pub const POISON: f32 = f32::from_bits(0x7f7f_dead);

/// The bits written into 16-bit outputs before a kernel runs: a signalling NaN. Kernels that compute store only
/// quiet NaNs, so an element still holding these bits was not written; the exact paths (identity, relu, relu6,
/// hardtanh, hardshrink and threshold on 16-bit bits, softshrink's backward) copy an input's bits, a signalling NaN
/// included, so a check that fed them these very bits would read its own input as unwritten. The checks' inputs
/// come through `half`'s conversions, which quiet every NaN, so they never do (and the decoders never see a
/// signalling NaN in them).
pub const fn poison_bits(dtype: DType) -> u16 {
    match dtype {
        DType::F16 => 0x7d55,
        DType::F32 | DType::BF16 => 0x7f95,
    }
}

/// Storage types of an op's operands: input, incoming gradient (backward only), output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtypes {
    /// Type of x.
    pub x: DType,
    /// Type of dy.
    pub dy: DType,
    /// Type of y or dx.
    pub out: DType,
}

impl Dtypes {
    /// Every operand in `dtype`.
    pub const fn all(dtype: DType) -> Self {
        Dtypes {
            x: dtype,
            dy: dtype,
            out: dtype,
        }
    }
}

/// The result of checking one activation in one pass.
#[derive(Debug, Clone)]
pub struct ActivationCheck {
    /// The activation.
    pub activation: Activation,
    /// The pass.
    pub pass: Pass,
    /// The operands' storage types.
    pub dtypes: Dtypes,
    /// f32: random, sweep and edge inputs under [`activation_tolerance`]. 16-bit: every bit pattern of x,
    /// within 1 ULP of the output type.
    pub general: Check,
    /// f32 only: inputs with `1e-8 <= |x| <= 1e-3` under [`F32_SMALL_INPUT`], where the reference is nonzero.
    pub small: Option<Check>,
    /// f32 only: the tails, relative only ([`tail_tolerance`]): every result of the general and tail inputs
    /// ([`tail_inputs`]) with `|x| >= 2` whose reference is at least f32's smallest normal in magnitude, where the
    /// absolute term of the general tolerance would accept 0 or the wrong sign (sigmoid(-20) = 2.1e-9).
    pub tail: Option<Check>,
    /// f32 backward only: every edge value of x against every edge value of dy ([`dy_edges`]), where `dy f'(x)`
    /// may overflow, underflow, or meet an infinite or zero gradient.
    pub dy_edges: Option<Check>,
    /// Output elements the kernel left unwritten (still poisoned).
    pub unwritten: usize,
}

impl ActivationCheck {
    /// True when every check passed and every element was written.
    pub fn ok(&self) -> bool {
        self.general.ok()
            && self.small.as_ref().is_none_or(Check::ok)
            && self.tail.as_ref().is_none_or(Check::ok)
            && self.dy_edges.as_ref().is_none_or(Check::ok)
            && self.unwritten == 0
    }
}

/// A verdict line (`gelu backward, x f32 dy f32 out f32: ok`) and one indented line per part checked.
impl std::fmt::Display for ActivationCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.dtypes;
        write!(
            f,
            "{} {}, x {} dy {} out {}: {}",
            self.activation,
            self.pass.name(),
            d.x.name(),
            d.dy.name(),
            d.out.name(),
            if self.ok() { "ok" } else { "FAILED" }
        )?;
        write!(f, "\n  general: {}", self.general)?;
        for (part, check) in [
            ("small inputs", &self.small),
            ("tails", &self.tail),
            ("dy edges", &self.dy_edges),
        ] {
            if let Some(c) = check {
                write!(f, "\n  {part}: {c}")?;
            }
        }
        if self.unwritten > 0 {
            write!(f, "\n  unwritten: {} elements", self.unwritten)?;
        }
        Ok(())
    }
}

/// The inputs [`check_activation`] uses: general (random, sweep of [-20, 20], edges) and small magnitudes.
pub fn standard_inputs(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut general = random_inputs(seed, 25_000);
    general.extend(sweep(-20.0, 20.0, 200_001));
    general.extend(edge_values());
    (general, small_inputs(2_000))
}

/// One run of a kernel over a set of inputs.
#[derive(Debug, Clone)]
pub struct Run {
    /// The inputs as stored (rounded to the input type).
    pub x: Vec<f32>,
    /// The output, converted exactly to f32.
    pub got: Vec<f32>,
    /// The f64 reference computed from the stored inputs.
    pub reference: Vec<f64>,
    /// On a device that flushes subnormals: the reference at the inputs as the device reads them, subnormals as
    /// zeros (see [`flushed_reference`]); `None` on a device that keeps them.
    pub flushed: Option<Vec<f64>>,
    /// Output elements still poisoned after the run.
    pub unwritten: usize,
}

/// A tensor of `n` poisoned elements of `dtype`.
fn poisoned(gpu: &Gpu, dtype: DType, n: usize) -> Result<Tensor> {
    match dtype {
        DType::F32 => gpu.upload(&vec![POISON; n]),
        DType::F16 => gpu.upload(&vec![half::f16::from_bits(poison_bits(dtype)); n]),
        DType::BF16 => gpu.upload(&vec![half::bf16::from_bits(poison_bits(dtype)); n]),
    }
}

/// Reads `t` back as exact f32 values and counts elements still holding the poison.
fn read_checked(t: &Tensor) -> Result<(Vec<f32>, usize)> {
    let (got, unwritten) = match t.dtype() {
        DType::F32 => {
            let v: Vec<f32> = t.read()?;
            let n = v.iter().filter(|x| x.to_bits() == POISON.to_bits()).count();
            (v, n)
        }
        DType::F16 => {
            let v: Vec<half::f16> = t.read()?;
            let n = v
                .iter()
                .filter(|h| h.to_bits() == poison_bits(DType::F16))
                .count();
            (v.iter().map(|h| h.to_f32()).collect(), n)
        }
        DType::BF16 => {
            let v: Vec<half::bf16> = t.read()?;
            let n = v
                .iter()
                .filter(|h| h.to_bits() == poison_bits(DType::BF16))
                .count();
            (v.iter().map(|h| h.to_f32()).collect(), n)
        }
    };
    Ok((got, unwritten))
}

/// Runs `act` in `pass` on the GPU over `inputs` (rounded to `dtypes.x`; with a seeded random `dy` for the
/// backward, plus a few NaN gradients) into a poisoned output.
pub fn run_activation(
    gpu: &Gpu,
    act: Activation,
    pass: Pass,
    inputs: &[f32],
    seed: u64,
    dtypes: Dtypes,
) -> Result<Run> {
    let dy = match pass {
        Pass::Forward => Vec::new(),
        Pass::Backward => {
            let mut rng = Rng::new(seed ^ 0xd1b5_4a32_d192_ed03);
            let mut dy: Vec<f32> = (0..inputs.len()).map(|_| rng.uniform(-2.0, 2.0)).collect();
            // A NaN gradient must come out as NaN whatever x is.
            for d in dy.iter_mut().skip(7).step_by(10_007) {
                *d = f32::NAN;
            }
            dy
        }
    };
    run_activation_with(gpu, act, pass, inputs, &dy, dtypes)
}

/// [`run_activation`] with the backward's `dy` given (rounded to `dtypes.dy`; ignored by the forward).
pub fn run_activation_with(
    gpu: &Gpu,
    act: Activation,
    pass: Pass,
    inputs: &[f32],
    dy: &[f32],
    dtypes: Dtypes,
) -> Result<Run> {
    let x_host: Vec<f32> = inputs.iter().map(|&v| round_to(dtypes.x, v)).collect();
    let x = gpu.upload_f32_as(&x_host, dtypes.x)?;
    let out = poisoned(gpu, dtypes.out, x_host.len())?;
    let flushes = gpu.flushes_subnormals()?;
    let (reference, flushed) = match pass {
        Pass::Forward => {
            act.forward_into(&x, &out)?;
            let f = |v: f32, _: f32| cpu::activation::forward(act, f64::from(v));
            let reference = x_host.iter().map(|&v| f(v, 0.0)).collect();
            (reference, flushed_reference(flushes, &x_host, &[], f))
        }
        Pass::Backward => {
            if dy.len() != x_host.len() {
                return Err(crate::Error::ShapeMismatch {
                    op: "run_activation_with",
                    expected: vec![x_host.len()],
                    got: vec![dy.len()],
                });
            }
            let dy_host: Vec<f32> = dy.iter().map(|&d| round_to(dtypes.dy, d)).collect();
            let dy = gpu.upload_f32_as(&dy_host, dtypes.dy)?;
            act.backward_into(&x, &dy, &out)?;
            let f = |v: f32, d: f32| cpu::activation::backward(act, f64::from(v), f64::from(d));
            let reference = x_host
                .iter()
                .zip(&dy_host)
                .map(|(&v, &d)| f(v, d))
                .collect();
            (reference, flushed_reference(flushes, &x_host, &dy_host, f))
        }
    };
    let (got, unwritten) = read_checked(&out)?;
    Ok(Run {
        x: x_host,
        got,
        reference,
        flushed,
        unwritten,
    })
}

/// Checks `act` in `pass` with f32 operands against the f64 reference on [`standard_inputs`].
pub fn check_activation(
    gpu: &Gpu,
    act: Activation,
    pass: Pass,
    seed: u64,
) -> Result<ActivationCheck> {
    let (general_in, small_in) = standard_inputs(seed);
    let dtypes = Dtypes::all(DType::F32);
    let g = run_activation(gpu, act, pass, &general_in, seed, dtypes)?;
    let general = compare_flushing(
        Criterion::Tolerance(activation_tolerance(act, pass)),
        &g.x,
        &g.got,
        &g.reference,
        g.flushed.as_deref(),
    );
    let s = run_activation(gpu, act, pass, &small_in, seed, dtypes)?;
    let small = compare(&s.x, &s.got, &s.reference, F32_SMALL_INPUT, true);
    // The tails run's gradient has one sign (magnitudes in [0.5, 2)): tail_check leaves out the elements near a
    // sign change of the reference, and a random sign puts one between nearly every pair of inputs (the check
    // then saw 172 elements of sigmoid's backward tails and 40 of tanh's; 5,342 and 2,650 now). For the same
    // reason the general run, whose dy is random, joins only the forward's tails.
    let tails = tail_inputs();
    let mut rng = Rng::new(seed ^ 0x7a11);
    let dy: Vec<f32> = tails.iter().map(|_| rng.uniform(0.5, 2.0)).collect();
    let t = run_activation_with(gpu, act, pass, &tails, &dy, dtypes)?;
    let tail = match pass {
        Pass::Forward => tail_check(tail_tolerance(act, pass), &[&g, &t]),
        Pass::Backward => tail_check(tail_tolerance(act, pass), &[&t]),
    };
    let (dy_edges, e_unwritten) = match pass {
        Pass::Forward => (None, 0),
        Pass::Backward => {
            let (c, unwritten) = dy_edges::check_dy_edges(gpu, act)?;
            (Some(c), unwritten)
        }
    };
    Ok(ActivationCheck {
        activation: act,
        pass,
        dtypes,
        general,
        small: Some(small),
        tail: Some(tail),
        dy_edges,
        unwritten: g.unwritten + s.unwritten + t.unwritten + e_unwritten,
    })
}

/// How near (in x) to a sign change of the reference the tails check leaves elements out: a relative error bound
/// does not hold next to a root, where the result is small by cancellation, not by decay (Swish with beta 0.5
/// has f' = 0 at x = -2.557, and f' within 1e-4 of it is about 1e-5 with an absolute error of rounding size).
pub const TAIL_ROOT_MARGIN: f32 = 0.05;

/// The tails of `runs` under `tol`: the elements with `|x| >= 2` and a finite reference of at least f32's
/// smallest normal in magnitude, leaving out those within [`TAIL_ROOT_MARGIN`] of a sign change of the
/// reference between neighbouring inputs (a root of f or f', which a parameter or a user's formula can put past
/// 2), against the flushed reference too where the runs have one (on a device that flushes subnormals, results
/// below about 3e-36, `FLUSH_UNDERFLOW`, may then be 0).
pub fn tail_check(tol: Tolerance, runs: &[&Run]) -> Check {
    // Sign changes between neighbouring inputs, over every run's elements in x order.
    let mut points: Vec<(f32, f64)> = runs
        .iter()
        .flat_map(|r| r.x.iter().copied().zip(r.reference.iter().copied()))
        .filter(|(x, v)| x.is_finite() && v.is_finite() && *v != 0.0)
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let roots: Vec<f32> = points
        .windows(2)
        .filter(|w| (w[0].1 < 0.0) != (w[1].1 < 0.0))
        .map(|w| 0.5 * (w[0].0 + w[1].0))
        .collect();
    let near_root = |x: f32| {
        let i = roots.partition_point(|&r| r < x);
        [i.checked_sub(1), Some(i)]
            .into_iter()
            .flatten()
            .filter_map(|j| roots.get(j))
            .any(|&r| (r - x).abs() <= TAIL_ROOT_MARGIN)
    };
    let (mut x, mut got, mut reference, mut flushed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in runs {
        for i in 0..r.x.len().min(r.got.len()).min(r.reference.len()) {
            let v = r.reference[i].abs();
            if r.x[i].abs() >= 2.0
                && v >= f64::from(f32::MIN_POSITIVE)
                && v.is_finite()
                && !near_root(r.x[i])
            {
                x.push(r.x[i]);
                got.push(r.got[i]);
                reference.push(r.reference[i]);
                if let Some(f) = &r.flushed {
                    flushed.push(f[i]);
                }
            }
        }
    }
    let flushed = (flushed.len() == reference.len() && runs.iter().any(|r| r.flushed.is_some()))
        .then_some(&flushed[..]);
    compare_flushing(Criterion::Tolerance(tol), &x, &got, &reference, flushed)
}

/// Checks `act` in `pass` with 16-bit storage: x takes every one of the 65,536 bit patterns of `dtypes.x`, and
/// each result must be within `max_ulp` units in the last place of `dtypes.out` of the f64 reference rounded to
/// `dtypes.out`.
pub fn check_activation_exhaustive(
    gpu: &Gpu,
    act: Activation,
    pass: Pass,
    dtypes: Dtypes,
    max_ulp: u32,
    seed: u64,
) -> Result<ActivationCheck> {
    let inputs = every_bit_pattern(dtypes.x);
    let r = run_activation(gpu, act, pass, &inputs, seed, dtypes)?;
    Ok(ActivationCheck {
        activation: act,
        pass,
        dtypes,
        general: compare_flushing(
            Criterion::Ulp {
                dtype: dtypes.out,
                max: max_ulp,
            },
            &r.x,
            &r.got,
            &r.reference,
            r.flushed.as_deref(),
        ),
        small: None,
        tail: None,
        dy_edges: None,
        unwritten: r.unwritten,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 0 or a wrong sign for sigmoid(-20) = 2.06e-9 passes the general tolerance's absolute term and fails the
    /// tails check; the right value passes both; a reference below f32's smallest normal, or at |x| < 2, is left
    /// out of the tails.
    #[test]
    fn the_tails_check_rejects_zero_and_the_wrong_sign() {
        let r = cpu::activation::forward(Activation::Sigmoid, -20.0);
        let run = |got: f32| Run {
            x: vec![-20.0, -110.0, 1.5],
            got: vec![got, 0.0, 0.0],
            reference: vec![r, 1e-48, 1e-9],
            flushed: None,
            unwritten: 0,
        };
        let tol = tail_tolerance(Activation::Sigmoid, Pass::Forward);
        for bad in [0.0, -(r as f32)] {
            assert!(compare(&[-20.0], &[bad], &[r], F32_ELEMENTWISE, false).ok());
            let c = tail_check(tol, &[&run(bad)]);
            assert_eq!((c.count, c.failures), (1, 1));
        }
        assert!(tail_check(tol, &[&run(r as f32)]).ok());
    }
}
