//! The CPU reference itself: derivatives against central finite differences, and every variant present in both
//! the reference and the WGSL library.

use actgpu::shaders::ShaderId;
use actgpu::verify::{Rng, OTHER_PARAMETERS};
use actgpu::{cpu, Activation};

#[test]
fn reference_derivatives_match_central_finite_differences() {
    let mut rng = Rng::new(11);
    for act in Activation::ALL.into_iter().chain(OTHER_PARAMETERS) {
        let kinks = cpu::activation::kinks(act);
        let mut checked = 0;
        for _ in 0..2_000 {
            let x = rng.unit() * 24.0 - 12.0;
            if kinks.iter().any(|k| (x - k).abs() < 1e-3) {
                continue;
            }
            let h = 1e-6 * x.abs().max(1.0);
            let fd = (cpu::activation::forward(act, x + h) - cpu::activation::forward(act, x - h))
                / (2.0 * h);
            let d = cpu::activation::derivative(act, x);
            assert!(
                (fd - d).abs() <= 1e-7 + 1e-6 * d.abs(),
                "{act}: f'({x}) = {d}, finite difference {fd}"
            );
            checked += 1;
        }
        assert!(checked > 1_900, "{act}: only {checked} points checked");
    }
}

#[test]
fn reference_limits_at_infinity_and_nan() {
    for act in Activation::ALL.into_iter().chain(OTHER_PARAMETERS) {
        for x in [f64::INFINITY, f64::NEG_INFINITY] {
            assert!(
                !cpu::activation::forward(act, x).is_nan(),
                "{act}({x}) is NaN"
            );
            assert!(
                !cpu::activation::derivative(act, x).is_nan(),
                "{act}'({x}) is NaN"
            );
        }
        assert!(cpu::activation::forward(act, f64::NAN).is_nan());
        assert!(cpu::activation::backward(act, 1.0, f64::NAN).is_nan());
        assert!(cpu::activation::backward(act, f64::NAN, 1.0).is_nan());
    }
    assert_eq!(
        cpu::activation::forward(Activation::Silu, f64::NEG_INFINITY),
        0.0
    );
    // A slope of 0 is ReLU: 0 at -inf, the limit (0 * -inf would be NaN); PReLU with p = 0 alike.
    let flat = Activation::LeakyRelu {
        negative_slope: 0.0,
    };
    assert_eq!(cpu::activation::forward(flat, f64::NEG_INFINITY), 0.0);
    assert_eq!(
        cpu::fused::learnable_f(actgpu::Learnable::Prelu, f64::NEG_INFINITY, 0.0),
        0.0
    );
    assert_eq!(
        cpu::activation::forward(Activation::Gelu, f64::NEG_INFINITY),
        0.0
    );
    assert_eq!(
        cpu::activation::forward(Activation::Mish, f64::NEG_INFINITY),
        0.0
    );
    assert_eq!(
        cpu::activation::forward(Activation::elu(), f64::NEG_INFINITY),
        -1.0
    );
    assert_eq!(
        cpu::activation::forward(Activation::Softsign, f64::INFINITY),
        1.0
    );
    assert_eq!(
        cpu::activation::derivative(Activation::Gelu, f64::INFINITY),
        1.0
    );
}

#[test]
fn every_variant_has_a_unique_id_name_and_wgsl_case() {
    let source = ShaderId::Activation.source();
    for (i, act) in Activation::ALL.into_iter().enumerate() {
        assert_eq!(act.id() as usize, i, "ALL is in id order");
        assert_eq!(Activation::from_name(act.name()), Some(act));
        act.validate().unwrap();
        let constant = format!("ACT_{}", act.name().to_ascii_uppercase());
        assert!(
            source.contains(&format!("const {constant}: u32 = {i}u;")),
            "{act}: no generated WGSL id"
        );
        assert!(
            source.contains(&format!("case {constant}:")),
            "{act}: no case in the WGSL library"
        );
    }
}

#[test]
fn modules_for_one_activation_keep_only_its_cases() {
    let whole = ShaderId::Matmul.source();
    let switches = whole.matches("switch ACT {").count();
    assert_eq!(switches, 2, "act_forward and act_derivative");
    // (The user-defined activation's case is kept the same way; tests/custom.rs runs it in every kernel family.)
    for act in Activation::ALL {
        let name = act.name().to_ascii_uppercase();
        let text = ShaderId::Matmul.source_for(None, Some(act.id())).text;
        // Every case of this activation is kept (relu_squared has none in act_derivative), and no other.
        let case = format!("case ACT_{name}:");
        let own = whole.matches(&case).count();
        assert!(own >= 1, "{name}");
        assert_eq!(text.matches(&case).count(), own, "{name}");
        assert_eq!(text.matches("case ACT_").count(), own, "{name}");
        assert_eq!(text.matches("default: {").count(), switches, "{name}");
        assert!(text.len() < whole.len(), "{name}");
    }
    // An id that names no activation keeps the whole library.
    assert_eq!(ShaderId::Matmul.source_for(None, Some(999)).text, whole);
}

#[test]
fn invalid_parameters_are_rejected() {
    for act in [
        Activation::Celu { alpha: 0.0 },
        Activation::Softplus {
            beta: -1.0,
            threshold: 20.0,
        },
        Activation::Hardtanh {
            min_val: 1.0,
            max_val: -1.0,
        },
        Activation::LeakyRelu {
            negative_slope: f32::NAN,
        },
        Activation::Elu {
            alpha: f32::INFINITY,
        },
    ] {
        assert!(
            matches!(act.validate(), Err(actgpu::Error::InvalidArgument { .. })),
            "{act:?}"
        );
    }
}
