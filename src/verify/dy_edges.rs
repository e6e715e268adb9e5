//! The backward with the incoming gradient at its edges as well as x: every edge value of x ([`edge_values`])
//! against every value of [`DY_EDGES`] (zeros, subnormals, 1e30, `f32::MAX`, +-inf, NaN). The other checks draw
//! `dy` from [-2, 2], where no product `dy f'(x)` can overflow or lose a subnormal derivative's digits; here a
//! derivative has to hold at `dy = f32::MAX` too (relu_squared's `(dy r) 2` came out as NaN for `r = 0`, and CELU's
//! `dy e^v` for alpha < 0 as inf where it is finite, before this check existed).
//!
//! An element passes ([`F32_DY_EDGES`]) when
//!
//! ```text
//! reference NaN                     the result is NaN
//! dy = +-inf, 0 < |f'(x)| < 2^-126  also NaN passes: an f32 derivative that rounds to 0 gives inf * 0 = NaN, as
//!                                   PyTorch's f32 backward does
//! reference +-inf                   the result is that infinity
//! result +-inf                      the reference has its sign and is at least f32::MAX (1 - 1e-4)
//! otherwise                         |got - ref| <= 1e-6 min(|dy|, 1) + 1e-4 |ref| + s |dy| + 2^-149
//!                                   with s = 2^-143 where 0 < |f'(x)| < 2^-126, else 0
//! ```
//!
//! `s |dy|` is the derivative's own absolute error where it is subnormal (64 steps of 2^-149), and 2^-149 the
//! result's own rounding where it is subnormal. On a device that flushes subnormals, which may lose all of an
//! intermediate below 2^-126, s is 2^-118 ([`super::FLUSH_UNDERFLOW`] for `|dy| = 1`) where `0 < |f'| < 2^-104`,
//! and the result's rounding 2^-126. The relative term is [`super::F32_TAIL`]'s: at `|dy| = 1e30` a result of
//! ordinary size is `dy` times a tail of `f'`.

use super::compare::{check_lengths, share, Check, Criterion, Element};
use super::{edge_values, run_activation_with, Dtypes, Pass, Run, Tolerance};
use crate::{cpu, Activation, DType, Gpu, Result};

/// The gradients every edge value of x meets.
pub const DY_EDGES: [f32; 15] = [
    0.0,
    -0.0,
    f32::from_bits(1),
    -1e-40,
    1e-30,
    -0.5,
    1.0,
    -1.5,
    1e30,
    -1e30,
    f32::MAX,
    -f32::MAX,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
];

/// The tolerance of the check, for reports: `1e-6 min(|dy|, 1) + 1e-4 |ref|`, plus the derivative's subnormal
/// slack (module docs).
pub const F32_DY_EDGES: Tolerance = Tolerance {
    name: "f32_backward_dy_edges",
    abs: 1e-6,
    rel: 1e-4,
};

/// The derivative's absolute slack per unit of `|dy|` on a device that keeps subnormals: 64 steps of 2^-149.
const SUBNORMAL_DERIVATIVE: f64 = 64.0 * F32_SUBNORMAL_STEP;

/// The same on a device that flushes subnormals: 2^-118 ([`super::FLUSH_UNDERFLOW`]), where `|f'| < 2^-104`
/// (below which 2^-118 passes the relative term).
const FLUSHED_DERIVATIVE: f64 = super::FLUSH_UNDERFLOW;

/// Where the flushed derivative slack applies: `0 < |f'| < 2^-104`.
const FLUSHED_BAND: f64 = 1.0 / (1u128 << 104) as f64;

/// f32's smallest subnormal, 2^-149.
const F32_SUBNORMAL_STEP: f64 = f32::from_bits(1) as f64;

/// f32's smallest normal, 2^-126.
const F32_MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;

/// The inputs: every pair of an edge value of x and one of [`DY_EDGES`], as `(x, dy)`.
pub fn dy_edge_inputs() -> (Vec<f32>, Vec<f32>) {
    let xs = edge_values();
    let x = xs
        .iter()
        .flat_map(|&v| DY_EDGES.iter().map(move |_| v))
        .collect();
    let dy = xs.iter().flat_map(|_| DY_EDGES).collect();
    (x, dy)
}

/// Runs `act`'s f32 backward over [`dy_edge_inputs`] into a poisoned output and checks it (module docs).
/// Returns the check and the number of output elements left unwritten.
pub fn check_dy_edges(gpu: &Gpu, act: Activation) -> Result<(Check, usize)> {
    let (x, dy) = dy_edge_inputs();
    let run = run_activation_with(gpu, act, Pass::Backward, &x, &dy, Dtypes::all(DType::F32))?;
    Ok((compare_dy_edges(act, &run, &dy), run.unwritten))
}

/// Checks a backward `run` over inputs `run.x` and gradients `dy` (module docs); on a device that flushes
/// subnormals (`run.flushed`) an element also passes against the reference at its flushed inputs, with the
/// flushed derivative slack.
pub fn compare_dy_edges(act: Activation, run: &Run, dy: &[f32]) -> Check {
    let mut c = Check::new(Criterion::Tolerance(F32_DY_EDGES));
    let flushing = run.flushed.is_some();
    check_lengths(
        &mut c,
        &[run.x.len(), run.got.len(), run.reference.len(), dy.len()],
    );
    let n = run
        .x
        .len()
        .min(run.got.len())
        .min(run.reference.len())
        .min(dy.len());
    for i in 0..n {
        let (x, d, g, r) = (run.x[i], dy[i], run.got[i], run.reference[i]);
        let derivative = cpu::activation::backward(act, f64::from(x), 1.0);
        let mut e = element(g, r, d, derivative, flushing);
        if !e.pass {
            if let Some(flushed) = &run.flushed {
                let alt = element(g, flushed[i], d, derivative, true);
                if alt.pass {
                    e = alt;
                    c.flush_accepted += 1;
                }
            }
        }
        c.add(i, x, g, r, &e);
    }
    c
}

/// One element's verdict ([`Element`], no ULPs) under the rule of the module docs.
fn element(g: f32, r: f64, dy: f32, derivative: f64, flushing: bool) -> Element {
    let class = |pass: bool| Element {
        ratio: if pass { 0.0 } else { f64::INFINITY },
        pass,
        ..Element::exact()
    };
    if r.is_nan() {
        return class(g.is_nan());
    }
    if g.is_nan() {
        let underflowed = derivative != 0.0 && derivative.abs() < F32_MIN_NORMAL;
        return class(dy.is_infinite() && underflowed);
    }
    if r.is_infinite() {
        return class(f64::from(g) == r);
    }
    if g.is_infinite() {
        let at_overflow = r.abs() >= f64::from(f32::MAX) * (1.0 - F32_DY_EDGES.rel);
        return class(at_overflow && (f64::from(g) > 0.0) == (r > 0.0));
    }
    let d = f64::from(dy).abs();
    // The derivative's own absolute error, only where it is small enough for that to pass the relative term, and
    // the result's rounding where it is subnormal (module docs).
    let (band, slack, output) = if flushing {
        (FLUSHED_BAND, FLUSHED_DERIVATIVE, F32_MIN_NORMAL)
    } else {
        (F32_MIN_NORMAL, SUBNORMAL_DERIVATIVE, F32_SUBNORMAL_STEP)
    };
    let in_band = derivative != 0.0 && derivative.abs() < band;
    let derivative_slack = if in_band { d * slack } else { 0.0 };
    let allowed =
        F32_DY_EDGES.abs * d.min(1.0) + F32_DY_EDGES.rel * r.abs() + derivative_slack + output;
    let err = (f64::from(g) - r).abs();
    let pass = err <= allowed;
    let ratio = share(err, allowed);
    let relative = F32_DY_EDGES.rel * r.abs() >= F32_DY_EDGES.abs * d.min(1.0);
    Element {
        pass,
        ratio,
        abs_err: if relative { 0.0 } else { err },
        rel_err: if relative && r != 0.0 {
            err / r.abs()
        } else {
            0.0
        },
        ulp_err: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(x: f32, got: f32, reference: f64) -> Run {
        Run {
            x: vec![x],
            got: vec![got],
            reference: vec![reference],
            flushed: None,
            unwritten: 0,
        }
    }

    /// relu_squared at r = 0 with dy = f32::MAX: the NaN the kernel gave before its fix fails, 0 passes.
    #[test]
    fn a_nan_for_a_finite_product_fails() {
        let act = Activation::ReluSquared;
        let r = cpu::activation::backward(act, 0.0, f64::from(f32::MAX));
        assert_eq!(r, 0.0);
        assert!(!compare_dy_edges(act, &run(0.0, f32::NAN, r), &[f32::MAX]).ok());
        assert!(compare_dy_edges(act, &run(0.0, 0.0, r), &[f32::MAX]).ok());
    }

    /// An infinite dy times a derivative that underflows f32 may be NaN (PyTorch's inf * 0) or the limit; times a
    /// normal derivative it must be the limit; an infinity for a finite product fails.
    #[test]
    fn nan_is_accepted_only_where_the_derivative_underflows() {
        let act = Activation::Gelu;
        let inf = f32::INFINITY;
        let tail = cpu::activation::backward(act, -20.0, f64::from(inf));
        assert_eq!(tail, f64::NEG_INFINITY);
        assert!(compare_dy_edges(act, &run(-20.0, f32::NAN, tail), &[inf]).ok());
        assert!(compare_dy_edges(act, &run(-20.0, -inf, tail), &[inf]).ok());
        let body = cpu::activation::backward(act, -1.0, f64::from(inf));
        assert!(!compare_dy_edges(act, &run(-1.0, f32::NAN, body), &[inf]).ok());
        let finite = cpu::activation::backward(act, -1.0, 1e30);
        assert!(!compare_dy_edges(act, &run(-1.0, -inf, finite), &[1e30]).ok());
        assert!(compare_dy_edges(act, &run(-1.0, finite as f32, finite), &[1e30]).ok());
    }

    /// A finite result for an infinite reference fails (dy = inf: the derivative's slack, scaled by |dy|, once
    /// let any finite result through); on a flushing device the derivative's slack applies only where f' is tiny.
    #[test]
    fn the_slacks_do_not_swallow_wrong_results() {
        let (inf, max) = (f32::INFINITY, f32::MAX);
        let limit = cpu::activation::backward(Activation::Gelu, -1.0, f64::from(inf));
        assert_eq!(limit, f64::NEG_INFINITY);
        for wrong in [0.0, 1.0, -1.0, 12345.0] {
            assert!(!compare_dy_edges(Activation::Gelu, &run(-1.0, wrong, limit), &[inf]).ok());
        }
        let zero = cpu::activation::backward(Activation::Relu, -1.0, f64::from(max));
        let mut flushed = run(-1.0, 900.0, zero);
        flushed.flushed = Some(vec![zero]);
        assert!(!compare_dy_edges(Activation::Relu, &flushed, &[max]).ok());
        flushed.got = vec![0.0];
        assert!(compare_dy_edges(Activation::Relu, &flushed, &[max]).ok());
    }

    #[test]
    fn every_pair_is_an_input() {
        let (x, dy) = dy_edge_inputs();
        assert_eq!(x.len(), edge_values().len() * DY_EDGES.len());
        assert_eq!(x.len(), dy.len());
        assert!(dy.iter().any(|d| d.is_nan()) && dy.contains(&f32::MAX));
    }
}
