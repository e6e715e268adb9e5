//! An accuracy survey of one f32 activation over the whole f32 line: how far its results are from the exact
//! value, in units in the last place, over every `stride`-th bit pattern (every pattern at stride 1).
//!
//! The checks of [`super::check_activation`] pass or fail against a tolerance on chosen inputs; a survey measures
//! instead, over inputs spread evenly through every binade, both signs, the infinities and the NaN payloads:
//!
//! - inputs: the bit patterns are cut into blocks of `stride`; each block gives its first pattern (so ±0, ±inf
//!   and every power of two are among them at strides up to 2^23) and one pattern drawn uniformly from the block
//!   by a seeded generator (so the low mantissa bits are not always zero, and the blocks above +-inf give NaN
//!   payloads). Stride 1 takes each of the 2^32 patterns once.
//! - the error of a result `g` against the exact `r` (the f64 reference): `|g - r| / ulp(r)`, [`ulp_error`]. A
//!   correctly rounded result is within 0.5; WGSL lets `exp`, `log` and friends be off by a few ULP, and a
//!   function evaluated near a root of itself loses the digits the cancellation takes.
//! - the backward is surveyed at `dy = 1`, so its result is `f'(x)` rounded once, with no product rounding.
//! - a large error in ULP can be the function's own conditioning rather than the kernel's doing: near a zero of
//!   `f` (GELU' at -0.7518) any relative error is, and in a steep tail (`exp(v)` at `v = -80`) one ULP of x moves
//!   the result by dozens of ULP. So each result also gets a mixed error, [`mixed_ulp_error`]: the smaller of
//!   its error in ULP of the result and the perturbation of x, in ULP of x, that the exact function needs to
//!   reach it (to first order, `|g - r| / |f'(x)| / ulp(x)`). A small mixed error says the result is the
//!   exact value, or the exact value at an input within that many ULP of x: the kernel is stable there, and only
//!   the problem is ill-conditioned. It is taken over results in f32's normal range; a result below 2^-126 is
//!   measured apart, in units of the subnormal spacing 2^-149 (an absolute error: a kernel that forms
//!   `x * sigmoid(x)` from a subnormal sigmoid keeps few of its digits, as PyTorch's does).
//! - a NaN result for a NaN reference is counted apart ([`Survey::nans`]), not as an exact result: it would
//!   inflate the shares of the histogram by the 0.4% of patterns that are NaN.
//! - on a device that flushes subnormals ([`crate::Gpu::flushes_subnormals`]), a result more than 1 ULP off is
//!   counted as flushed and left out of the error statistics where it is within 1 ULP of the reference at
//!   flushed inputs, or within [`FLUSH_UNDERFLOW`] of the exact value: the rules of [`super::compare_flushing`],
//!   at 1 ULP in place of its tolerance. On such a device the errors of results below about 2^-95 are
//!   therefore not measured; on one that keeps subnormals (Mesa's) every result is.

use super::{flush::FLUSH_UNDERFLOW, run_activation_with, Dtypes, Pass, Rng, POISON};
use crate::{Activation, DType, Gpu, Result};

/// Inputs per GPU run of a survey: 16 MiB of f32 each way.
pub const SURVEY_CHUNK: usize = 1 << 22;

/// Upper ends of the error histogram's buckets, in ULP: correctly rounded, faithful (within 1), then 2, 4, 16,
/// 256; the last bucket holds everything above 256.
pub const ULP_BUCKETS: [f64; 6] = [0.5, 1.0, 2.0, 4.0, 16.0, 256.0];

/// The spacing of f32 values at `v` (finite): `2^(e - 23)` for `|v|` in `[2^e, 2^(e+1))`, `e >= -126`, and the
/// subnormal spacing `2^-149` below `2^-126`. Beyond f32's range it continues the top binade's `2^104`.
pub fn f32_ulp_at(v: f64) -> f64 {
    let a = v.abs();
    if a < f64::from(f32::MIN_POSITIVE) {
        return 2f64.powi(-149);
    }
    let e = (((a.to_bits() >> 52) & 0x7ff) as i32 - 1023).min(127);
    2f64.powi(e - 23)
}

/// The error of an f32 result `got` against the exact `reference` in f32 ULP at the reference,
/// `|got - reference| / ulp(reference)` ([`f32_ulp_at`]). The classes must match: where the reference rounds to
/// an infinity in f32, `got` must be that infinity (error 0); where it is NaN, `got` must be a NaN (error 0); a
/// NaN or an infinity against anything else is `None`.
pub fn ulp_error(got: f32, reference: f64) -> Option<f64> {
    let expected = reference as f32;
    if expected.is_nan() || got.is_nan() {
        return (expected.is_nan() && got.is_nan()).then_some(0.0);
    }
    if expected.is_infinite() || got.is_infinite() {
        return (got == expected).then_some(0.0);
    }
    Some((f64::from(got) - reference).abs() / f32_ulp_at(reference))
}

/// The mixed forward-backward error of `got` against the exact `reference` = f(x) where f has slope `slope` at
/// x: the smaller of its [`ulp_error`] and `|got - reference| / |slope| / ulp(x)`, the change of x in ULP of
/// f32 at x that moves f by the error, to first order (infinite where the slope is 0 or not finite). `None`
/// where the classes differ, as [`ulp_error`].
pub fn mixed_ulp_error(x: f32, got: f32, reference: f64, slope: f64) -> Option<f64> {
    let forward = ulp_error(got, reference)?;
    if forward == 0.0 || slope == 0.0 || !slope.is_finite() {
        return Some(forward);
    }
    let backward = (f64::from(got) - reference).abs() / slope.abs() / f32_ulp_at(f64::from(x));
    Some(forward.min(backward))
}

/// The slope at x of what `pass` computes: f'(x) for the forward (the reference's derivative), f''(x) for the
/// backward by a central difference of the f64 reference's f' (step `2^-20 |x|`, at least 2^-60: its error is
/// far below what the mixed error needs, a factor of two).
fn reference_slope(act: Activation, pass: Pass, x: f32) -> f64 {
    let x = f64::from(x);
    match pass {
        Pass::Forward => crate::cpu::activation::backward(act, x, 1.0),
        Pass::Backward => {
            let h = (x.abs() * 2f64.powi(-20)).max(2f64.powi(-60));
            let d = |v: f64| crate::cpu::activation::backward(act, v, 1.0);
            (d(x + h) - d(x - h)) / (2.0 * h)
        }
    }
}

/// One surveyed element: a worst error's, or one whose result's class differs from the reference's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The input.
    pub x: f32,
    /// The kernel's result.
    pub got: f32,
    /// The f64 reference.
    pub reference: f64,
}

/// What a survey measured for one activation and pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// The activation surveyed.
    pub activation: Activation,
    /// Forward `f(x)`, or backward `f'(x)` (at `dy = 1`).
    pub pass: Pass,
    /// Bit patterns per block of the input set (1: every pattern).
    pub stride: u64,
    /// Inputs run, NaN payloads included.
    pub inputs: u64,
    /// NaN results for NaN references (every NaN input's): right, and counted apart from `measured`.
    pub nans: u64,
    /// Numbers and infinities whose class matched and that the flushing rules did not take: the results the
    /// error statistics cover.
    pub measured: u64,
    /// `measured` by error, bucket `i` holding errors up to [`ULP_BUCKETS`]`[i]` (and above the bucket before);
    /// the last entry, errors above 256 ULP.
    pub histogram: [u64; 7],
    /// The largest error in ULP over the measured results.
    pub max_ulp: f64,
    /// Where `max_ulp` was measured: its input, the result and the reference there (the first input of that
    /// error in the order run).
    pub worst: Option<Point>,
    /// The largest mixed error ([`mixed_ulp_error`]) over the measured results whose reference is in f32's
    /// normal range (at least 2^-126 in magnitude).
    pub max_mixed_ulp: f64,
    /// Where `max_mixed_ulp` was measured.
    pub worst_mixed: Option<Point>,
    /// The largest error over the measured results whose reference is below 2^-126 in magnitude (0 included),
    /// in units of 2^-149, f32's subnormal spacing.
    pub max_subnormal_ulp: f64,
    /// Where `max_subnormal_ulp` was measured.
    pub worst_subnormal: Option<Point>,
    /// Results a flushing device's rules accepted (0 on a device that keeps subnormals).
    pub flushed: u64,
    /// Results whose class was wrong (a NaN for a number, a number for a NaN, an infinity off), counted.
    pub class_mismatches: u64,
    /// The first few of those.
    pub first_mismatches: Vec<Point>,
    /// Output elements a run left unwritten (still holding [`POISON`] where the reference is another value):
    /// must be 0.
    pub unwritten: u64,
}

impl Survey {
    fn new(activation: Activation, pass: Pass, stride: u64) -> Self {
        Survey {
            activation,
            pass,
            stride,
            inputs: 0,
            nans: 0,
            measured: 0,
            histogram: [0; 7],
            max_ulp: 0.0,
            worst: None,
            max_mixed_ulp: 0.0,
            worst_mixed: None,
            max_subnormal_ulp: 0.0,
            worst_subnormal: None,
            flushed: 0,
            class_mismatches: 0,
            first_mismatches: Vec::new(),
            unwritten: 0,
        }
    }

    /// The share of measured results within `ulp` ULP, `ulp` one of [`ULP_BUCKETS`] (`None` for another value
    /// or when nothing was measured).
    pub fn share_within(&self, ulp: f64) -> Option<f64> {
        let i = ULP_BUCKETS.iter().position(|&b| b == ulp)?;
        let n: u64 = self.histogram[..=i].iter().sum();
        (self.measured > 0).then(|| n as f64 / self.measured as f64)
    }

    /// Adds one element; `slope` gives the slope of the surveyed function at x, asked only where the error is
    /// above 1 ULP.
    fn add(
        &mut self,
        x: f32,
        got: f32,
        reference: f64,
        flushed: Option<f64>,
        slope: impl FnOnce() -> f64,
    ) {
        self.inputs += 1;
        let err = ulp_error(got, reference);
        if err.is_none_or(|e| e > 1.0) {
            if let Some(alt) = flushed {
                let by_flushed = ulp_error(got, alt).is_some_and(|e| e <= 1.0);
                let underflowed =
                    got.is_finite() && (f64::from(got) - reference).abs() <= FLUSH_UNDERFLOW;
                if by_flushed || underflowed {
                    self.flushed += 1;
                    return;
                }
            }
        }
        if got.is_nan() && reference.is_nan() {
            self.nans += 1;
            return;
        }
        let here = Point { x, got, reference };
        let Some(err) = err else {
            self.class_mismatches += 1;
            if self.first_mismatches.len() < 8 {
                self.first_mismatches.push(here);
            }
            return;
        };
        self.measured += 1;
        let bucket = ULP_BUCKETS
            .iter()
            .position(|&b| err <= b)
            .unwrap_or(ULP_BUCKETS.len());
        self.histogram[bucket] += 1;
        if err > self.max_ulp || self.worst.is_none() {
            self.max_ulp = err;
            self.worst = Some(here);
        }
        if reference.abs() < f64::from(f32::MIN_POSITIVE) {
            if err > self.max_subnormal_ulp || self.worst_subnormal.is_none() {
                self.max_subnormal_ulp = err;
                self.worst_subnormal = Some(here);
            }
            return;
        }
        let mixed = if err > 1.0 {
            mixed_ulp_error(x, got, reference, slope()).unwrap_or(err)
        } else {
            err
        };
        if mixed > self.max_mixed_ulp || self.worst_mixed.is_none() {
            self.max_mixed_ulp = mixed;
            self.worst_mixed = Some(here);
        }
    }
}

/// Whether an output element still holding [`POISON`] was left unwritten: yes unless the poison is its answer
/// (at stride 1 the input 0x7f7fdead is among the inputs, and `f(x) = x` there for most activations). A kernel
/// that left such an element unwritten would go unseen, one pattern in 2^32.
pub fn is_unwritten(got: f32, reference: f64) -> bool {
    got.to_bits() == POISON.to_bits() && (reference as f32).to_bits() != POISON.to_bits()
}

/// Inputs a block of `stride` patterns gives ([`survey_inputs`]): its one pattern at stride 1, else two.
pub const fn inputs_per_block(stride: u64) -> u64 {
    if stride == 1 {
        1
    } else {
        2
    }
}

/// Inputs a survey of the whole line at `stride` (a power of two from 1 to 2^31) runs ([`survey_activation`]'s
/// [`Survey::inputs`]): `2^32` at stride 1, else two per block of `stride` patterns.
pub const fn inputs_per_survey(stride: u64) -> u64 {
    (1u64 << 32) / stride * inputs_per_block(stride)
}

/// The f32 inputs of a survey at `stride` (a power of two, 1 to 2^31), block `first .. first + count` of the
/// `2^32 / stride` blocks, as the module documentation describes: stride 1 gives each pattern of the blocks
/// once, a larger stride each block's first pattern and one drawn from the block (`seed` and the block's index
/// choose it, so any split into chunks gives the same inputs).
pub fn survey_inputs(stride: u64, first: u64, count: u64, seed: u64) -> Vec<f32> {
    let mut out = Vec::with_capacity((count * inputs_per_block(stride)) as usize);
    for block in first..first + count {
        let start = block * stride;
        out.push(f32::from_bits(start as u32));
        if inputs_per_block(stride) == 2 {
            let draw = Rng::new(seed ^ block.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64();
            out.push(f32::from_bits((start + draw % stride) as u32));
        }
    }
    out
}

/// Surveys `act` in `pass` with f32 storage at `stride` (a power of two from 1 to 2^31; [`survey_inputs`])
/// over the whole line, running [`SURVEY_CHUNK`] inputs at a time.
pub fn survey_activation(
    gpu: &Gpu,
    act: Activation,
    pass: Pass,
    stride: u64,
    seed: u64,
) -> Result<Survey> {
    // `max(1)`: a stride of 0 reaches survey_blocks' error, not a division by zero here.
    let blocks = (1u64 << 32) / stride.max(1);
    survey_blocks(gpu, act, pass, stride, 0..blocks, seed)
}

/// [`survey_activation`] over the blocks `blocks` of `stride` patterns only (block `b` starts at bit pattern
/// `b * stride`): every pattern of `(-2, -1]`, say, is the blocks `0xbf80_0000..0xc000_0000` at stride 1.
pub fn survey_blocks(
    gpu: &Gpu,
    act: Activation,
    pass: Pass,
    stride: u64,
    blocks: std::ops::Range<u64>,
    seed: u64,
) -> Result<Survey> {
    if !stride.is_power_of_two() || stride > 1 << 31 {
        return Err(crate::Error::InvalidArgument {
            op: "survey_activation",
            reason: format!("the stride must be a power of two from 1 to 2^31, not {stride}"),
        });
    }
    if blocks.end > (1u64 << 32) / stride {
        return Err(crate::Error::InvalidArgument {
            op: "survey_activation",
            reason: format!(
                "blocks {blocks:?} of {stride} patterns run past the 2^32 patterns of f32"
            ),
        });
    }
    let per_chunk = SURVEY_CHUNK as u64 / inputs_per_block(stride);
    let mut survey = Survey::new(act, pass, stride);
    let mut first = blocks.start;
    while first < blocks.end {
        let count = per_chunk.min(blocks.end - first);
        let x = survey_inputs(stride, first, count, seed);
        let dy = match pass {
            Pass::Forward => Vec::new(),
            Pass::Backward => vec![1.0; x.len()],
        };
        let run = run_activation_with(gpu, act, pass, &x, &dy, Dtypes::all(DType::F32))?;
        for i in 0..run.x.len() {
            // Counted here, not taken from `run.unwritten`, which counts every poisoned element.
            if is_unwritten(run.got[i], run.reference[i]) {
                survey.unwritten += 1;
            }
            let flushed = run.flushed.as_ref().map(|f| f[i]);
            let x = run.x[i];
            survey.add(x, run.got[i], run.reference[i], flushed, || {
                reference_slope(act, pass, x)
            });
        }
        first += count;
    }
    Ok(survey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulp_error_is_in_units_of_the_references_binade() {
        assert_eq!(f32_ulp_at(1.0), f64::from(f32::EPSILON));
        assert_eq!(f32_ulp_at(-1.5), f64::from(f32::EPSILON));
        assert_eq!(f32_ulp_at(0.0), 2f64.powi(-149));
        assert_eq!(f32_ulp_at(1e-40), 2f64.powi(-149));
        assert_eq!(f32_ulp_at(f64::from(f32::MIN_POSITIVE)), 2f64.powi(-149));
        assert_eq!(f32_ulp_at(f64::from(f32::MAX)), 2f64.powi(104));
        assert_eq!(f32_ulp_at(1e300), 2f64.powi(104));
        // The nearest f32 to 1/3 is within half an ULP; the next one up is 1.5 ULP off or less.
        let third = 1.0 / 3.0;
        assert!(ulp_error(third as f32, third).unwrap() <= 0.5);
        let next = f32::from_bits((third as f32).to_bits() + 1);
        let e = ulp_error(next, third).unwrap();
        assert!(e > 0.5 && e <= 1.5, "{e}");
        assert_eq!(ulp_error(2.0, 1.0), Some(2f64.powi(23)));
    }

    #[test]
    fn ulp_error_requires_the_references_class() {
        assert_eq!(ulp_error(f32::NAN, f64::NAN), Some(0.0));
        assert_eq!(ulp_error(1.0, f64::NAN), None);
        assert_eq!(ulp_error(f32::NAN, 1.0), None);
        assert_eq!(ulp_error(f32::INFINITY, 1e39), Some(0.0));
        assert_eq!(ulp_error(f32::MAX, 1e39), None);
        assert_eq!(ulp_error(f32::INFINITY, f64::from(f32::MAX)), None);
        assert_eq!(ulp_error(f32::NEG_INFINITY, f64::NEG_INFINITY), Some(0.0));
        assert_eq!(ulp_error(f32::NEG_INFINITY, f64::INFINITY), None);
    }

    #[test]
    fn inputs_cover_the_blocks_and_do_not_depend_on_the_chunking() {
        // Stride 1: every pattern of the blocks, in order.
        let every = survey_inputs(1, 5, 3, 0);
        assert_eq!(
            every.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            [5, 6, 7]
        );
        assert_eq!(
            (inputs_per_survey(1), inputs_per_survey(1 << 16)),
            (1 << 32, 131_072)
        );
        // Stride 2^23: each block's first pattern and one from inside it.
        let stride = 1u64 << 23;
        let all = survey_inputs(stride, 0, 512, 9);
        assert_eq!(all.len(), 1024);
        for (block, pair) in all.chunks(2).enumerate() {
            let (a, b) = (u64::from(pair[0].to_bits()), u64::from(pair[1].to_bits()));
            assert_eq!(a, block as u64 * stride);
            assert!((a..a + stride).contains(&b));
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let split = [
            survey_inputs(stride, 0, 100, 9),
            survey_inputs(stride, 100, 412, 9),
        ]
        .concat();
        assert_eq!(bits(&split), bits(&all));
        // The first patterns hold +-0, +-inf, 1 and the first NaN payload's block.
        for v in [0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1.0] {
            assert!(all.iter().any(|x| x.to_bits() == v.to_bits()), "{v}");
        }
        assert!(all.iter().any(|x| x.is_nan()));
    }

    #[test]
    fn the_histogram_and_the_worst_element() {
        let mut s = Survey::new(Activation::Relu, Pass::Forward, 1);
        let flat = || 0.0;
        s.add(1.0, 1.0, 1.0, None, flat);
        s.add(2.0, 1.0, 1.0 + 3.0 * f64::from(f32::EPSILON), None, flat);
        s.add(3.0, f32::NAN, 1.0, None, flat);
        s.add(3.5, f32::NAN, f64::NAN, None, flat);
        s.add(4.0, 0.0, 1e-45, Some(0.0), flat);
        assert_eq!((s.inputs, s.nans, s.measured, s.flushed), (5, 1, 3, 0));
        // 0 for 1e-45 is 0.71 ULP of the subnormal spacing: within 1, and measured apart.
        assert_eq!(s.histogram, [1, 1, 0, 1, 0, 0, 0]);
        assert_eq!(s.worst_subnormal.unwrap().x, 4.0);
        assert!((s.max_subnormal_ulp - 1e-45 / 2f64.powi(-149)).abs() < 1e-12);
        assert_eq!(s.max_ulp, 3.0);
        assert_eq!(s.worst.unwrap().x, 2.0);
        assert_eq!(s.class_mismatches, 1);
        assert_eq!(s.share_within(0.5), Some(1.0 / 3.0));
        assert_eq!(s.share_within(1.0), Some(2.0 / 3.0));
        assert_eq!(s.share_within(3.0), None);
        // A flushing device's zero for a subnormal result is counted apart.
        s.add(5.0, 0.0, 1e-40, Some(0.0), flat);
        assert_eq!((s.inputs, s.measured, s.flushed), (6, 3, 1));
        // Without a slope the mixed error is the error; a steep slope turns 1,000 ULP of the result into less
        // than one of x.
        assert_eq!((s.max_mixed_ulp, s.worst_mixed.unwrap().x), (3.0, 2.0));
        let r = 1.0 + 1000.0 * f64::from(f32::EPSILON);
        s.add(6.0, 1.0, r, None, || 1e6);
        assert!(s.max_ulp >= 1000.0 && s.max_mixed_ulp == 3.0);
        s.add(7.0, 1.0, r, None, || 1e-3);
        assert!(s.max_mixed_ulp >= 1000.0 && s.worst_mixed.unwrap().x == 7.0);
    }

    #[test]
    fn the_poison_is_unwritten_unless_it_is_the_answer() {
        let p = f64::from(POISON);
        assert!(is_unwritten(POISON, 1.0));
        assert!(is_unwritten(POISON, f64::NAN));
        assert!(!is_unwritten(POISON, p));
        assert!(!is_unwritten(1.0, 1.0));
        assert!(!is_unwritten(f32::NAN, 1.0));
    }

    #[test]
    fn the_mixed_error_is_the_smaller_of_the_two() {
        let eps = f64::from(f32::EPSILON);
        // 8 ULP of the result at 1; a slope of 4 at x = 1 makes that 2 ULP of x.
        assert_eq!(mixed_ulp_error(1.0, 1.0, 1.0 + 8.0 * eps, 4.0), Some(2.0));
        assert_eq!(mixed_ulp_error(1.0, 1.0, 1.0 + 8.0 * eps, 0.5), Some(8.0));
        assert_eq!(mixed_ulp_error(1.0, 1.0, 1.0 + 8.0 * eps, 0.0), Some(8.0));
        assert_eq!(
            mixed_ulp_error(1.0, 1.0, 1.0 + 8.0 * eps, f64::NAN),
            Some(8.0)
        );
        assert_eq!(mixed_ulp_error(1.0, f32::NAN, 1.0, 1.0), None);
        // The slope that matters for GELU' near its zero is f''(r) = 0.43.
        let e = mixed_ulp_error(-0.75191694, -5.415082e-5, -5.411199252422505e-5, 0.432).unwrap();
        assert!(e < 2.0, "{e}");
    }
}
