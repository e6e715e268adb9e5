//! Finite-difference estimates of `f'(x)` from f32 evaluations of `f`, for checking a derivative written by hand
//! (the user-defined activations' WGSL `f'` against their WGSL `f`).
//!
//! At each point `x` the estimates use two step sizes, `h` and `h / 8`, with `h = 2^(e - 7)`, `2^e <= max(1, |x|)`,
//! and at each step size three Richardson-extrapolated second-order formulas (truncation `O(s^3)` or better):
//!
//! ```text
//! central  C(s) = (f(x + s) - f(x - s)) / 2s                       R = (4 C(s/2) - C(s)) / 3    O(s^4)
//! right    P(s) = (-3 f(x) + 4 f(x + s) - f(x + 2s)) / 2s           R = (4 P(s/2) - P(s)) / 3    O(s^3)
//! left     M(s) = (3 f(x) - 4 f(x - s) + f(x - 2s)) / 2s            R = (4 M(s/2) - M(s)) / 3    O(s^3)
//! ```
//!
//! A derivative passes at `x` when it is within [`FD_TOLERANCE`] `(1 + |R|)` (2.5e-4) of any of the six it may
//! use. The one-sided formulas see only one side of `x`, so a correct derivative passes at and beside a kink (relu
//! at 0: the right formula gives 1, the left 0); the finer step serves functions of high curvature (`sin(30 x)`),
//! the coarser one keeps f32 rounding (about `u |f| / s`) small. Every estimate converges to `f'(x)` where `f` is
//! smooth over its stencil (`[x - s, x + s]` central, `[x, x + 2s]` right, `[x - 2s, x]` left), so a wrong
//! derivative matches none of those; an estimate whose stencil has a kink inside (or, for the central one, at
//! `x`) converges to neither side's derivative and would pass a wrong one (relu at `x = 0.00977`, `h = 2^-7`: the
//! left estimate gives 0.875). [`check_derivative`] leaves those out at the kinks that
//! [`crate::cpu::activation::kinks`] lists for a built-in activation; a user-defined activation declares none,
//! so within `2h` of a kink of its `f` a wrong derivative can still pass by a straddling estimate. The sample
//! points are snapped to multiples of `h / 16`, which makes every `x + k s` exact in f32.

/// The offsets, in units of the point's `h`, at which `f` is evaluated, in the order [`estimates`] takes them.
pub const OFFSETS: [f64; 13] = [
    0.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, -0.25, -0.125, -0.0625, 0.0625, 0.125, 0.25,
];

/// The tolerance of a match: `|f' - R| <= FD_TOLERANCE (1 + |R|)`. 2.5e-4 (1e-3 until 2026-11-30, which
/// passed exact GELU with the tanh form's derivative, off by up to 8.7e-4): the coarse estimates carry about
/// 3e-5 of f32 rounding at the sweep's |x| <= 8, and every built-in activation's GPU derivative passes against
/// its GPU forward (`tests/custom.rs`).
pub const FD_TOLERANCE: f64 = 2.5e-4;

/// The WGSL derivative of `act` against finite differences of its WGSL forward, both on `gpu`, at `points`
/// sweep points over [-8, 8] (snapped by [`point`]), each estimate whose stencil straddles one of `act`'s known
/// kinks left out ([`usable`]). Returns the largest distance to the nearest estimate (infinite where NaN) and the
/// points where no estimate is within [`FD_TOLERANCE`].
pub fn check_derivative(
    gpu: &crate::Gpu,
    act: crate::Activation,
    points: usize,
) -> crate::Result<(f64, Vec<f32>)> {
    let points: Vec<(f32, f32)> = super::inputs::sweep(-8.0, 8.0, points)
        .into_iter()
        .map(point)
        .collect();
    let at: Vec<f32> = points
        .iter()
        .flat_map(|&(x, h)| OFFSETS.iter().map(move |&k| x + k as f32 * h))
        .collect();
    let f = act.forward(&gpu.upload(&at)?)?.read::<f32>()?;
    let xs: Vec<f32> = points.iter().map(|&(x, _)| x).collect();
    let ones = gpu.upload(&vec![1.0f32; xs.len()])?;
    let d = act.backward(&gpu.upload(&xs)?, &ones)?.read::<f32>()?;
    let kinks = crate::cpu::activation::kinks(act);
    let mut max_err = 0.0f64;
    let mut mismatches = Vec::new();
    for (i, &(x, h)) in points.iter().enumerate() {
        let mut values = [0.0; OFFSETS.len()];
        for (v, &fv) in values.iter_mut().zip(&f[OFFSETS.len() * i..]) {
            *v = f64::from(fv);
        }
        let all = estimates(&values, f64::from(h));
        let (err, within) = nearest(f64::from(d[i]), &usable(&all, x.into(), h.into(), &kinks));
        // NaN (from either side) counts as a mismatch and as an infinite error.
        max_err = max_err.max(if err.is_nan() { f64::INFINITY } else { err });
        if !within {
            mismatches.push(x);
        }
    }
    Ok((max_err, mismatches))
}

/// `x` snapped to a multiple of `h / 16`, and `h`, so that `x + k h` is exact in f32 for every offset `k`.
pub fn point(x: f32) -> (f32, f32) {
    let e = x.abs().max(1.0).log2().floor() as i32;
    let h = 2f32.powi(e - 7);
    let grid = h / 16.0;
    ((x / grid).round() * grid, h)
}

/// The six Richardson estimates of `f'(x)` from `f` at `x + OFFSETS[i] h` (in that order): central, right,
/// left at step `h`, then the same at `h / 8`.
pub fn estimates(f: &[f64; 13], h: f64) -> [f64; 6] {
    let at = |scale: f64, offset: f64| {
        let k = offset * scale;
        let i = OFFSETS
            .iter()
            .position(|&o| o == k)
            .expect("offsets cover both scales");
        f[i]
    };
    let mut out = [0.0; 6];
    for (j, scale) in [1.0, 0.125].into_iter().enumerate() {
        let s = h * scale;
        let central = |t: f64| (at(scale, t) - at(scale, -t)) / (2.0 * t * s);
        let right =
            |t: f64| (-3.0 * f[0] + 4.0 * at(scale, t) - at(scale, 2.0 * t)) / (2.0 * t * s);
        let left =
            |t: f64| (3.0 * f[0] - 4.0 * at(scale, -t) + at(scale, -2.0 * t)) / (2.0 * t * s);
        let richardson = |d: &dyn Fn(f64) -> f64| (4.0 * d(0.5) - d(1.0)) / 3.0;
        out[3 * j] = richardson(&central);
        out[3 * j + 1] = richardson(&right);
        out[3 * j + 2] = richardson(&left);
    }
    out
}

/// `estimates` (from [`estimates`] at `x` with step `h`) with NaN for those whose stencil has a kink of `kinks`
/// inside: at each step `s` (`h`, `h / 8`) the central one where a kink lies in `(x - s, x + s)` (`x` itself
/// included: it averages the two sides), the right one in `(x, x + 2s)`, the left one in `(x - 2s, x)`. A kink
/// on a stencil's end leaves it usable: `f` is continuous there, smooth on the stencil's side. [`nearest`] skips
/// NaN estimates, and fails where none is left.
pub fn usable(estimates: &[f64; 6], x: f64, h: f64, kinks: &[f64]) -> [f64; 6] {
    let mut out = *estimates;
    for (j, scale) in [1.0, 0.125].into_iter().enumerate() {
        let s = h * scale;
        let inside = |lo: f64, hi: f64| kinks.iter().any(|&k| lo < k && k < hi);
        let cut = [
            inside(x - s, x + s),
            inside(x, x + 2.0 * s),
            inside(x - 2.0 * s, x),
        ];
        for (e, cut) in out[3 * j..3 * j + 3].iter_mut().zip(cut) {
            if cut {
                *e = f64::NAN;
            }
        }
    }
    out
}

/// How far `derivative` is from the nearest of `estimates` (NaN where it or every estimate is NaN), and whether
/// that is within [`FD_TOLERANCE`].
pub fn nearest(derivative: f64, estimates: &[f64; 6]) -> (f64, bool) {
    estimates
        .iter()
        .map(|&e| {
            let err = (derivative - e).abs();
            (err, err <= FD_TOLERANCE * (1.0 + e.abs()))
        })
        .fold((f64::NAN, false), |(best, ok), (err, within)| {
            (
                if best.is_nan() || err < best {
                    err
                } else {
                    best
                },
                ok || within,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The estimates of `f` (evaluated in f32, as the GPU does) at `x`, and the nearest one to `d`.
    fn check(f: impl Fn(f64) -> f64, d: f64, x: f32) -> (f64, bool) {
        let (x, h) = point(x);
        let mut values = [0.0; 13];
        for (v, k) in values.iter_mut().zip(OFFSETS) {
            let p = x + k as f32 * h;
            assert_eq!(f64::from(p), f64::from(x) + k * f64::from(h), "exact point");
            *v = f64::from(f(f64::from(p)) as f32);
        }
        nearest(d, &estimates(&values, f64::from(h)))
    }

    #[test]
    fn smooth_functions_pass_and_wrong_derivatives_fail() {
        for i in 0..=160 {
            let x = -8.0 + 0.1 * i as f32;
            let xd = f64::from(point(x).0);
            let isru = |x: f64| x / (1.0 + x * x).sqrt();
            assert!(check(isru, (1.0 + xd * xd).powf(-1.5), x).1, "isru at {x}");
            assert!(!check(isru, 1.0 / (1.0 + xd * xd).sqrt(), x).1 || xd.abs() < 0.11);
            // High curvature: sin(30 x), whose central difference at h = 2^-7 alone is off by ~1e-2.
            let siren = |x: f64| (30.0 * x).sin();
            assert!(
                check(siren, 30.0 * (30.0 * xd).cos(), x).1,
                "sin(30 x) at {x}"
            );
            assert!(!check(siren, 29.0 * (30.0 * xd).cos(), x).1 || (30.0 * xd).cos().abs() < 0.05);
        }
    }

    #[test]
    fn kinks_pass_with_either_one_sided_derivative() {
        let relu = |x: f64| x.max(0.0);
        for x in [0.0f32, 1e-3, -1e-3, 0.004, -0.004] {
            let d = if point(x).0 > 0.0 { 1.0 } else { 0.0 };
            assert!(check(relu, d, x).1, "relu at {x}");
            assert!(!check(relu, 2.0 + d, x).1, "a wrong relu' at {x}");
        }
        let abs = |x: f64| x.abs();
        assert!(check(abs, 1.0, 0.0).1 && check(abs, -1.0, 0.0).1);
    }

    /// Within `2h` of a kink a straddling estimate matches a wrong derivative (relu at 0.00977, `h = 2^-7`: the
    /// left one gives 0.875); with the kink known, only the estimates on its smooth side count.
    #[test]
    fn estimates_straddling_a_known_kink_are_left_out() {
        let relu = |x: f64| x.max(0.0);
        let (x, h) = point(0.00977);
        let mut values = [0.0; 13];
        for (v, k) in values.iter_mut().zip(OFFSETS) {
            *v = f64::from(relu(f64::from(x + k as f32 * h)) as f32);
        }
        let all = estimates(&values, f64::from(h));
        assert!(
            nearest(0.875, &all).1,
            "the straddling estimate passes 0.875"
        );
        let kept = usable(&all, x.into(), h.into(), &[0.0]);
        assert!(
            !nearest(0.875, &kept).1,
            "0.875 must fail with the kink known"
        );
        assert!(nearest(1.0, &kept).1);
        // On the kink both one-sided derivatives pass and the central average does not.
        let mut at_kink = [0.0; 13];
        for (v, k) in at_kink.iter_mut().zip(OFFSETS) {
            *v = relu(k / 128.0);
        }
        let kept = usable(&estimates(&at_kink, 1.0 / 128.0), 0.0, 1.0 / 128.0, &[0.0]);
        assert!(nearest(1.0, &kept).1 && nearest(0.0, &kept).1 && !nearest(0.5, &kept).1);
    }

    #[test]
    fn nan_never_passes() {
        assert!(!nearest(f64::NAN, &[1.0; 6]).1);
        assert!(!nearest(1.0, &[f64::NAN; 6]).1);
        assert!(nearest(1.0, &[f64::NAN, 1.0, 5.0, 5.0, 5.0, 5.0]).1);
    }
}
