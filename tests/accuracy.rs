//! The f32 accuracy survey (`actgpu::verify::survey`, `examples/accuracy.rs`, ACCURACY.md) at a CI-sized
//! stride: every activation, forward and backward, over 131,072 inputs spread through every binade of both
//! signs, the infinities and the NaN payloads, measured in ULP of f32 at the exact value.
//!
//! What the survey must show, and what the test holds it to:
//! - every result has the reference's class (NaN for NaN, the right infinity) and every element is written;
//! - the ops whose f32 result is one rounding of exact arithmetic are correctly rounded at every input;
//! - the algebraic ones (a division or two, no transcendental function) stay within a few ULP everywhere:
//!   hardswish' among them since its zero at -1.5 no longer cancels (it took 2,731 ULP there);
//! - the ones built on `exp`, `tanh` or `erf` are within 4 ULP on at least 98% of the line. WGSL lets `exp(v)`
//!   be `3 + 2 |v|` ULP off, which the tails (`|v|` up to 88) show, and a derivative evaluated near its zero
//!   (GELU' at -0.7518, SiLU' at -1.2785, Mish' at -1.1924) cancels; both together are about 1% of the line on
//!   lavapipe. A wrong coefficient or a broken range would spread errors over the bulk and fail here;
//! - every result in f32's normal range has a mixed error of at most `common::max_mixed_ulp()` (16 on CPU
//!   adapters, 32 on others): it is within that many ULP of the exact value, or is the exact value at an input
//!   within that many ULP of x. The large errors above are the function's conditioning, not the kernel's
//!   instability;
//! - every result below 2^-126 is within 1,024 units of 2^-149 (1.4e-42) of the exact value: lavapipe measured
//!   222 at most (ACCURACY.md); garbage there would be far more.
//!
//! The bounds of the exact and algebraic ops are those measured on CPU adapters; on others each WGSL division
//! may be 2.5 ULP off, so the algebraic ones get [`ALGEBRAIC_ANY`].

mod common;

use actgpu::verify::survey::{
    inputs_per_survey, survey_activation, survey_blocks, ulp_error, Survey,
};
use actgpu::verify::{run_activation_with, Dtypes, Pass};
use actgpu::{Activation, DType};
use common::{gpu, max_mixed_ulp, on_cpu_adapter};

/// 2^16 patterns per block, two inputs each: 131,072 inputs per activation and pass.
const STRIDE: u64 = 1 << 16;

/// Correctly rounded at every input: the result is one rounding of exact arithmetic on x (or exact).
const CORRECTLY_ROUNDED: [Activation; 9] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu {
        negative_slope: 0.01,
    },
    Activation::Hardtanh {
        min_val: -1.0,
        max_val: 1.0,
    },
    Activation::ReluSquared,
    Activation::Hardshrink { lambd: 0.5 },
    Activation::Softshrink { lambd: 0.5 },
    Activation::Threshold {
        threshold: 0.0,
        value: 0.0,
    },
];

/// Within this many ULP at every input on a CPU adapter (measured 3.5, 1.0 and 1.9 at most, ACCURACY.md).
const ALGEBRAIC: [(Activation, f64); 3] = [
    (Activation::Softsign, 4.0),
    (Activation::Hardsigmoid, 2.0),
    (Activation::Hardswish, 2.0),
];

/// The algebraic ops' bound on other adapters: two divisions at WGSL's 2.5 ULP each.
const ALGEBRAIC_ANY: f64 = 5.0;

/// The share of the line every activation must have within 4 ULP.
const BULK_WITHIN_4_ULP: f64 = 0.98;

/// The largest error of a result below 2^-126, in units of 2^-149.
const MAX_SUBNORMAL_ULP: f64 = 1024.0;

/// The bound on `act`'s largest error in ULP, where it has one of its own.
fn own_bound(act: Activation) -> Option<f64> {
    let algebraic = ALGEBRAIC.iter().find(|(a, _)| *a == act).map(|&(_, b)| b);
    if CORRECTLY_ROUNDED.contains(&act) {
        Some(0.5)
    } else if on_cpu_adapter() {
        algebraic
    } else {
        algebraic.map(|b| b.max(ALGEBRAIC_ANY))
    }
}

fn describe(s: &Survey) -> String {
    format!(
        "{} {:?}: max {:.3} ULP at {:?}, max mixed {:.3} at {:?}, max subnormal {:.1} at {:?}, within 4 ULP {:?}, \
         {} wrong classes (first {:?}), {} unwritten",
        s.activation,
        s.pass,
        s.max_ulp,
        s.worst,
        s.max_mixed_ulp,
        s.worst_mixed,
        s.max_subnormal_ulp,
        s.worst_subnormal,
        s.share_within(4.0),
        s.class_mismatches,
        s.first_mismatches.first(),
        s.unwritten
    )
}

#[test]
fn every_activation_keeps_its_class_and_its_bounds_over_the_whole_line() {
    let defaults = Activation::ALL;
    // The exact ops at constants of their own, beside the defaults.
    let acts = defaults.into_iter().chain(
        CORRECTLY_ROUNDED
            .into_iter()
            .filter(|a| !defaults.contains(a)),
    );
    let mut failures = Vec::new();
    for act in acts {
        for pass in [Pass::Forward, Pass::Backward] {
            let s = survey_activation(gpu(), act, pass, STRIDE, 11)
                .unwrap_or_else(|e| panic!("{act} {pass:?}: {e}"));
            assert_eq!(s.inputs, inputs_per_survey(STRIDE));
            // Every NaN input's result is NaN; the rest are measured, none of them flushed on Mesa.
            assert!(
                s.nans > 0 && s.measured + s.nans + s.flushed == s.inputs,
                "{act} {pass:?}"
            );
            let bulk_ok = s.share_within(4.0).is_some_and(|w| w >= BULK_WITHIN_4_ULP);
            let own_ok = own_bound(act).is_none_or(|b| s.max_ulp <= b);
            if s.class_mismatches > 0
                || s.unwritten > 0
                || !bulk_ok
                || !own_ok
                || s.max_mixed_ulp > max_mixed_ulp()
                || s.max_subnormal_ulp > MAX_SUBNORMAL_ULP
            {
                failures.push(format!("bound {:?}: {}", own_bound(act), describe(&s)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// hardswish' near its zero at -1.5, pattern by pattern: every f32 within 2^12 patterns of -1.5 on both sides,
/// within one division's rounding (2.5 ULP on any adapter; 1.7 measured on lavapipe), and exactly +0 at -1.5.
#[test]
fn hardswish_derivative_does_not_cancel_at_its_zero() {
    let center = (-1.5f32).to_bits();
    let x: Vec<f32> = (center - 4096..=center + 4096)
        .map(f32::from_bits)
        .collect();
    let dy = vec![1.0; x.len()];
    let run = run_activation_with(
        gpu(),
        Activation::Hardswish,
        Pass::Backward,
        &x,
        &dy,
        Dtypes::all(DType::F32),
    )
    .unwrap();
    assert_eq!(run.unwritten, 0);
    let bound = if on_cpu_adapter() { 2.0 } else { 2.5 };
    for ((&x, &got), &reference) in x.iter().zip(&run.got).zip(&run.reference) {
        let e = ulp_error(got, reference).unwrap();
        assert!(
            e <= bound,
            "x = {x:e}: got {got:e} for {reference:e}, {e} ULP"
        );
    }
    assert_eq!(run.got[4096].to_bits(), 0, "exactly +0 at -1.5");
}

/// Every pattern around 0x7f7fdead, the poison the outputs hold before a kernel runs: identity returns it for
/// that input, which is a written element, not an unwritten one.
#[test]
fn an_answer_equal_to_the_poison_is_not_unwritten() {
    let poison = u64::from(actgpu::verify::POISON.to_bits());
    for act in [Activation::Identity, Activation::Gelu, Activation::Relu] {
        let s = survey_blocks(gpu(), act, Pass::Forward, 1, poison - 100..poison + 100, 3).unwrap();
        assert_eq!(
            (s.inputs, s.unwritten, s.class_mismatches),
            (200, 0, 0),
            "{act}"
        );
    }
    let bad = survey_blocks(
        gpu(),
        Activation::Relu,
        Pass::Forward,
        1,
        0..(1 << 32) + 1,
        3,
    );
    assert!(bad.is_err());
}
