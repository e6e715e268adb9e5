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

/// `(activation, x, f(x), f'(x))`, computed independently of the crate with Python's mpmath at 100 digits (40 lose 1 +
/// tanh(u) at x = -10) from the textbook formulas (GELU `x erfc(-x / sqrt 2) / 2`, the tanh form with 0.044715,
/// QuickGELU `x sigmoid(1.702 x)`, SELU's constants to 32 digits, leaky ReLU's slope the f32 0.01 the parameter holds,
/// softplus `ln(1 + e^x)`, mish `x tanh(softplus x)`, ...), `f'` by mpmath's numerical differentiation, then rounded to
/// f64; tanhshrink `x - tanh x`, which mpmath's digits keep exact at 1e-8. At the kinks (hardswish at +-3) `f'`
/// is current PyTorch's choice (pytorch/pytorch#147801, checked with 2.15): `x / 3 + 1/2` on `(-3, 3)`, 0 at -3
/// and 1 at 3. Every activation of `Activation::ALL`, and the
/// non-default parameters of `OTHER_PARAMETERS` with a closed form to pin.
#[rustfmt::skip]
const KNOWN: &[(Activation, f64, f64, f64)] = &[
    (Activation::Identity, -10.0, -10.0, 1.0),
    (Activation::Identity, -1.0, -1.0, 1.0),
    (Activation::Identity, 1.0, 1.0, 1.0),
    (Activation::Identity, 2.5, 2.5, 1.0),
    (Activation::Relu, -10.0, 0.0, 0.0),
    (Activation::Relu, -1.0, 0.0, 0.0),
    (Activation::Relu, 1.0, 1.0, 1.0),
    (Activation::Relu, 2.5, 2.5, 1.0),
    (Activation::Relu6, -1.0, 0.0, 0.0),
    (Activation::Relu6, 2.5, 2.5, 1.0),
    (Activation::Relu6, 7.0, 6.0, 0.0),
    (Activation::leaky_relu(), -10.0, -0.09999999776482582, 0.009999999776482582),
    (Activation::leaky_relu(), -1.0, -0.009999999776482582, 0.009999999776482582),
    (Activation::leaky_relu(), 1.0, 1.0, 1.0),
    (Activation::leaky_relu(), 2.5, 2.5, 1.0),
    (Activation::elu(), -10.0, -0.9999546000702375, 4.5399929762484854e-05),
    (Activation::elu(), -1.0, -0.6321205588285577, 0.36787944117144233),
    (Activation::elu(), 1.0, 1.0, 1.0),
    (Activation::elu(), 2.5, 2.5, 1.0),
    (Activation::Elu { alpha: 0.5 }, -10.0, -0.49997730003511875, 2.2699964881242427e-05),
    (Activation::Elu { alpha: 0.5 }, -1.0, -0.31606027941427883, 0.18393972058572117),
    (Activation::Elu { alpha: 0.5 }, 1.0, 1.0, 1.0),
    (Activation::Elu { alpha: 0.5 }, 2.5, 2.5, 1.0),
    (Activation::celu(), -10.0, -0.9999546000702375, 4.5399929762484854e-05),
    (Activation::celu(), -1.0, -0.6321205588285577, 0.36787944117144233),
    (Activation::celu(), 1.0, 1.0, 1.0),
    (Activation::celu(), 2.5, 2.5, 1.0),
    (Activation::Celu { alpha: 2.0 }, -10.0, -1.986524106001829, 0.006737946999085467),
    (Activation::Celu { alpha: 2.0 }, -1.0, -0.7869386805747332, 0.6065306597126334),
    (Activation::Celu { alpha: 2.0 }, 1.0, 1.0, 1.0),
    (Activation::Celu { alpha: 2.0 }, 2.5, 2.5, 1.0),
    (Activation::Celu { alpha: 3.0 }, -10.0, -2.892978019958243, 0.035673993347252395),
    (Activation::Celu { alpha: 3.0 }, -1.0, -0.8504060682786322, 0.7165313105737893),
    (Activation::Celu { alpha: 3.0 }, 2.5, 2.5, 1.0),
    (Activation::Selu, -10.0, -1.758019523260787, 7.981758658994182e-05),
    (Activation::Selu, -1.0, -1.1113307378125628, 0.6467686030348141),
    (Activation::Selu, 1.0, 1.0507009873554805, 1.0507009873554805),
    (Activation::Selu, 2.5, 2.6267524683887014, 1.0507009873554805),
    (Activation::Gelu, -10.0, -7.619853024160526e-23, -7.618400096464814e-22),
    (Activation::Gelu, -1.0, -0.15865525393145705, -0.0833154705876863),
    (Activation::Gelu, 1.0, 0.8413447460685429, 1.0833154705876864),
    (Activation::Gelu, 2.5, 2.4844758366855597, 1.037611085908145),
    (Activation::GeluTanh, -10.0, -1.204092348209806e-37, -2.7576380638540315e-36),
    (Activation::GeluTanh, -1.0, -0.1588080093917233, -0.08296408384578255),
    (Activation::GeluTanh, 1.0, 0.8411919906082767, 1.0829640838457826),
    (Activation::GeluTanh, 2.5, 2.484915733910001, 1.037951576212666),
    (Activation::QuickGelu, -10.0, -4.05796129485531e-07, -6.500853714089018e-07),
    (Activation::QuickGelu, -1.0, -0.1542042340671787, -0.06777960655633405),
    (Activation::QuickGelu, 1.0, 0.8457957659328212, 1.067779606556334),
    (Activation::QuickGelu, 2.5, 2.46501383495143, 1.0447186660813745),
    (Activation::Silu, -10.0, -0.00045397868702434395, -0.0004085602086570823),
    (Activation::Silu, -1.0, -0.2689414213699951, 0.07232948812851327),
    (Activation::Silu, 1.0, 0.7310585786300049, 0.9276705118714867),
    (Activation::Silu, 2.5, 2.310354549946891, 1.0994011113415267),
    (Activation::Swish { beta: 1.5 }, -10.0, -3.0590222692562474e-06, -4.28262977331616e-06),
    (Activation::Swish { beta: 1.5 }, -1.0, -0.18242552380635635, -0.041294154299142946),
    (Activation::Swish { beta: 1.5 }, 1.0, 0.8175744761936437, 1.041294154299143),
    (Activation::Swish { beta: 1.5 }, 2.5, 2.442556575224936, 1.0612079190226373),
    (Activation::Mish, -10.0, -0.00045398899185674697, -0.00040857978690299194),
    (Activation::Mish, -1.0, -0.3034014613741089, 0.05921675587739495),
    (Activation::Mish, 1.0, 0.8650983882673103, 1.0490362200997922),
    (Activation::Mish, 2.5, 2.471392304557881, 1.0411295301313532),
    (Activation::softplus(), -10.0, 4.539889921686465e-05, 4.5397868702434395e-05),
    (Activation::softplus(), -1.0, 0.3132616875182228, 0.2689414213699951),
    (Activation::softplus(), 1.0, 1.3132616875182228, 0.7310585786300049),
    (Activation::softplus(), 2.5, 2.5788897342925496, 0.9241418199787564),
    (Activation::Softplus { beta: 2.0, threshold: 10.0 }, -10.0, 1.0305768101571904e-09, 2.0611536181902037e-09),
    (Activation::Softplus { beta: 2.0, threshold: 10.0 }, -1.0, 0.06346400552148625, 0.11920292202211756),
    (Activation::Softplus { beta: 2.0, threshold: 10.0 }, 1.0, 1.0634640055214863, 0.8807970779778824),
    (Activation::Softplus { beta: 2.0, threshold: 10.0 }, 2.5, 2.503357674244559, 0.9933071490757152),
    (Activation::Softsign, -10.0, -0.9090909090909091, 0.008264462809917356),
    (Activation::Softsign, -1.0, -0.5, 0.25),
    (Activation::Softsign, 1.0, 0.5, 0.25),
    (Activation::Softsign, 2.5, 0.7142857142857143, 0.08163265306122448),
    (Activation::Sigmoid, -10.0, 4.5397868702434395e-05, 4.5395807735951673e-05),
    (Activation::Sigmoid, -1.0, 0.2689414213699951, 0.19661193324148185),
    (Activation::Sigmoid, 1.0, 0.7310585786300049, 0.19661193324148185),
    (Activation::Sigmoid, 2.5, 0.9241418199787564, 0.07010371654510816),
    (Activation::LogSigmoid, -10.0, -10.000045398899218, 0.9999546021312976),
    (Activation::LogSigmoid, -1.0, -1.3132616875182228, 0.7310585786300049),
    (Activation::LogSigmoid, 1.0, -0.3132616875182228, 0.2689414213699951),
    (Activation::LogSigmoid, 2.5, -0.07888973429254963, 0.07585818002124355),
    (Activation::Tanh, -10.0, -0.9999999958776927, 8.244614455767397e-09),
    (Activation::Tanh, -1.0, -0.7615941559557649, 0.4199743416140261),
    (Activation::Tanh, 1.0, 0.7615941559557649, 0.4199743416140261),
    (Activation::Tanh, 2.5, 0.9866142981514303, 0.02659222668316062),
    (Activation::hardtanh(), -2.0, -1.0, 0.0),
    (Activation::hardtanh(), 0.5, 0.5, 1.0),
    (Activation::hardtanh(), 2.0, 1.0, 0.0),
    (Activation::Hardtanh { min_val: -2.0, max_val: 3.0 }, -2.5, -2.0, 0.0),
    (Activation::Hardtanh { min_val: -2.0, max_val: 3.0 }, 1.5, 1.5, 1.0),
    (Activation::Hardtanh { min_val: -2.0, max_val: 3.0 }, 3.5, 3.0, 0.0),
    (Activation::Hardsigmoid, -4.0, 0.0, 0.0),
    (Activation::Hardsigmoid, 1.0, 0.6666666666666666, 0.16666666666666666),
    (Activation::Hardsigmoid, 4.0, 1.0, 0.0),
    (Activation::Hardswish, -3.0, 0.0, 0.0),
    (Activation::Hardswish, 3.0, 3.0, 1.0),
    (Activation::Hardswish, 1.0, 0.6666666666666666, 0.8333333333333334),
    (Activation::Hardswish, -1.5, -0.375, 0.0),
    (Activation::ReluSquared, -10.0, 0.0, 0.0),
    (Activation::ReluSquared, -1.0, 0.0, 0.0),
    (Activation::ReluSquared, 1.0, 1.0, 2.0),
    (Activation::ReluSquared, 2.5, 6.25, 5.0),
    (Activation::hardshrink(), -0.7, -0.7, 1.0),
    (Activation::hardshrink(), -0.5, 0.0, 0.0),
    (Activation::hardshrink(), 0.25, 0.0, 0.0),
    (Activation::hardshrink(), 0.5, 0.0, 0.0),
    (Activation::hardshrink(), 2.5, 2.5, 1.0),
    (Activation::softshrink(), -10.0, -9.5, 1.0),
    (Activation::softshrink(), -0.5, 0.0, 0.0),
    (Activation::softshrink(), 0.25, 0.0, 0.0),
    (Activation::softshrink(), 0.5, 0.0, 0.0),
    (Activation::softshrink(), 2.5, 2.0, 1.0),
    (Activation::Tanhshrink, -10.0, -9.000000004122308, 0.9999999917553856),
    (Activation::Tanhshrink, -1.0, -0.23840584404423512, 0.580025658385974),
    (Activation::Tanhshrink, -0.05, -4.1625042120027805e-05, 0.002495839228432129),
    (Activation::Tanhshrink, 1e-4, 3.33333332e-13, 9.999999933333334e-09),
    (Activation::Tanhshrink, 1e-8, 3.333333333333333e-25, 1e-16),
    (Activation::Tanhshrink, 2.5, 1.5133857018485697, 0.9734077733168394),
    // Threshold(0.1, 20): the f32 threshold is 0.100000001490116..., so x = 0.1 in f64 lies below it.
    (Activation::threshold(), -1.0, 20.0, 0.0),
    (Activation::threshold(), 0.1, 20.0, 0.0),
    (Activation::threshold(), 0.1f32 as f64, 20.0, 0.0),
    (Activation::threshold(), 0.5, 0.5, 1.0),
    (Activation::threshold(), 30.0, 30.0, 1.0),
];

/// The reference's forward and derivative at known values, to 1e-15 relative (a few f64 roundings; 1e-14 in the
/// tail at |x| = 10): pins the
/// formulas themselves, which the other tests only compare with the GPU and with each other.
#[test]
fn reference_matches_independently_computed_values() {
    let mut pinned = std::collections::HashSet::new();
    for &(act, x, y, d) in KNOWN {
        // GELU's tail goes through libm's erfc, 8.8e-15 off at erfc(10 / sqrt 2): 1e-14 at |x| = 10.
        let rel = if x.abs() >= 10.0 { 1e-14 } else { 1e-15 };
        let close = |got: f64, want: f64| (got - want).abs() <= rel * want.abs();
        let got_y = cpu::activation::forward(act, x);
        let got_d = cpu::activation::derivative(act, x);
        assert!(close(got_y, y), "{act}({x}) = {got_y:e}, want {y:e}");
        assert!(close(got_d, d), "{act}'({x}) = {got_d:e}, want {d:e}");
        pinned.insert(act.id());
    }
    for act in Activation::ALL {
        assert!(pinned.contains(&act.id()), "{act} has no known value");
    }
    // Within an ulp or two of libm's erfc, which the table above bounds at 1e-15.
    let gelu_1 = cpu::activation::forward(Activation::Gelu, 1.0);
    assert!((gelu_1 - 0.8413447460685429).abs() <= 4e-16, "{gelu_1}");
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
        Activation::Softshrink { lambd: -0.5 },
        Activation::Hardshrink { lambd: f32::NAN },
        Activation::Threshold {
            threshold: f32::NAN,
            value: 0.0,
        },
        Activation::Threshold {
            threshold: 0.0,
            value: f32::NEG_INFINITY,
        },
    ] {
        assert!(
            matches!(act.validate(), Err(actgpu::Error::InvalidArgument { .. })),
            "{act:?}"
        );
    }
    // PyTorch takes any hardshrink lambd, a negative one too (nothing maps to 0), and a softshrink lambd of 0.
    for act in [
        Activation::Hardshrink { lambd: -1.0 },
        Activation::Softshrink { lambd: 0.0 },
    ] {
        act.validate().unwrap();
    }
}
