//! f64 reference of every activation, forward, derivative and backward. Formulas as documented on
//! [`Activation`]; the limits at +-inf are explicit so that `inf * 0` never stands in for a limit.

use crate::{Activation, SELU_ALPHA, SELU_SCALE};

/// The user-defined activation `id` names. Panics where no `CustomActivation` registered it (an id made by hand),
/// as the reference does on other malformed input; the GPU path returns `InvalidArgument` there.
fn registered(id: u64) -> std::sync::Arc<crate::custom::Registered> {
    crate::custom::lookup(id).unwrap_or_else(|| {
        panic!(
            "custom activation {id:#x} is not registered: no CustomActivation was created with it"
        )
    })
}

/// sigmoid(x) = 1 / (1 + e^-x), evaluated without overflow.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// softplus(x) = ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|).
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Standard normal CDF, Phi(x) = erfc(-x / sqrt 2) / 2.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Standard normal density, phi(x) = e^(-x^2/2) / sqrt(2 pi).
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// sech^2(x) = 1 / cosh^2(x), without the cancellation of 1 - tanh^2.
fn sech2(x: f64) -> f64 {
    let c = x.cosh();
    1.0 / (c * c)
}

/// x * g for a gate g that vanishes as x -> -inf: where g is 0, a zero of x's sign (x * 0 in IEEE arithmetic,
/// as PyTorch's `x * g` gives for finite x), so the limit is not lost to inf * 0.
fn gated(x: f64, g: f64) -> f64 {
    if g == 0.0 {
        0.0f64.copysign(x)
    } else {
        x * g
    }
}

/// `sqrt(2/pi) (x + 0.044715 x^3)`, the argument of the tanh GELU.
fn gelu_tanh_u(x: f64) -> f64 {
    (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)
}

/// `p x` for a slope `p`; for `p = 0`, a zero of x's sign at every x (`0 * x` in IEEE arithmetic, and the limit
/// at x = -inf, where `0 * inf` would be NaN), as the kernels' `times_gate` takes it.
pub(crate) fn slope_times(p: f64, x: f64) -> f64 {
    if p == 0.0 {
        0.0f64.copysign(x)
    } else {
        p * x
    }
}

/// Forward `f(x)`.
pub fn forward(act: Activation, x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let [p0, p1] = act.params().map(f64::from);
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::LeakyRelu { .. } => {
            if x > 0.0 {
                x
            } else {
                slope_times(p0, x)
            }
        }
        Activation::Elu { .. } => elu(x, p0),
        Activation::Celu { .. } => {
            if x > 0.0 {
                x
            } else {
                p0 * (x / p0).exp_m1()
            }
        }
        Activation::Selu => SELU_SCALE * elu(x, SELU_ALPHA),
        Activation::Gelu => gated(x, normal_cdf(x)),
        Activation::GeluTanh => gated(x, sigmoid(2.0 * gelu_tanh_u(x))),
        Activation::QuickGelu => gated(x, sigmoid(1.702 * x)),
        Activation::Silu => gated(x, sigmoid(x)),
        Activation::Swish { .. } => swish(x, p0),
        Activation::Mish => gated(x, softplus(x).tanh()),
        Activation::Softplus { .. } => {
            let v = p0 * x;
            if v > p1 {
                x
            } else {
                softplus(v) / p0
            }
        }
        Activation::Softsign => {
            if x.is_infinite() {
                x.signum()
            } else {
                x / (1.0 + x.abs())
            }
        }
        Activation::Sigmoid => sigmoid(x),
        // PyTorch's form, min(x, 0) - ln(1 + e^-|x|) = -softplus(-x): +0, not -0, where the log term underflows.
        Activation::LogSigmoid => x.min(0.0) - (-x.abs()).exp().ln_1p(),
        Activation::Tanh => x.tanh(),
        Activation::Hardtanh { .. } => x.clamp(p0, p1),
        Activation::Hardsigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Hardswish => {
            // -0, as PyTorch's x * clamp(x + 3, 0, 6) / 6 gives it (x * +0 with x < 0); the limit at -inf.
            if x <= -3.0 {
                -0.0
            } else if x >= 3.0 {
                x
            } else {
                x * (x + 3.0) / 6.0
            }
        }
        Activation::ReluSquared => {
            let r = x.max(0.0);
            r * r
        }
        Activation::Hardshrink { .. } => {
            if x.abs() <= p0 {
                0.0
            } else {
                x
            }
        }
        Activation::Softshrink { .. } => {
            if x > p0 {
                x - p0
            } else if x < -p0 {
                x + p0
            } else {
                // A zero of x's sign, as PyTorch's scalar and CUDA `x * 0` (its vectorised CPU code gives +0;
                // hardshrink's is +0 everywhere).
                0.0f64.copysign(x)
            }
        }
        Activation::Tanhshrink => tanhshrink(x),
        Activation::Threshold { .. } => {
            if x <= p0 {
                p1
            } else {
                x
            }
        }
        Activation::Custom { id } => (registered(id).forward)(x),
    }
}

/// x - tanh(x): below |x| = 0.1 its Taylor series to x^15, `x^3/3 - 2 x^5/15 + 17 x^7/315 - ...` (the next term
/// is below 2e-17 of the sum there), where the difference would cancel (for |x| < 1e-8 every digit); above, the
/// difference, which loses at most 9 bits of f64 (x / (x - tanh x) = 300 at |x| = 0.1) and fewer beyond.
pub fn tanhshrink(x: f64) -> f64 {
    if x.abs() >= 0.1 {
        return x - x.tanh();
    }
    // tanh's Taylor coefficients past the first, negated: 1/3, -2/15, 17/315, -62/2835, 1382/155925, ...
    const C: [f64; 7] = [
        1.0 / 3.0,
        -2.0 / 15.0,
        17.0 / 315.0,
        -62.0 / 2835.0,
        1382.0 / 155_925.0,
        -21_844.0 / 6_081_075.0,
        929_569.0 / 638_512_875.0,
    ];
    let s = x * x;
    let p = C.iter().rev().fold(0.0, |acc, c| acc * s + c);
    x * s * p
}

fn elu(x: f64, alpha: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        alpha * x.exp_m1()
    }
}

fn swish(x: f64, beta: f64) -> f64 {
    if beta == 0.0 {
        return 0.5 * x;
    }
    let g = sigmoid(beta * x);
    gated(x, g)
}

/// `v sigmoid'(v)`, with its limit 0 at +-inf.
fn v_sigmoid_grad(v: f64) -> f64 {
    if v.is_infinite() {
        0.0
    } else {
        v * sigmoid(v) * sigmoid(-v)
    }
}

/// The derivative `f'(x)` (at kinks, the value PyTorch's backward uses).
pub fn derivative(act: Activation, x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let [p0, p1] = act.params().map(f64::from);
    let step = |c: bool| if c { 1.0 } else { 0.0 };
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => step(x > 0.0),
        Activation::Relu6 => step(x > 0.0 && x < 6.0),
        Activation::LeakyRelu { .. } => {
            if x > 0.0 {
                1.0
            } else {
                p0
            }
        }
        Activation::Elu { .. } => {
            if x > 0.0 {
                1.0
            } else {
                p0 * x.exp()
            }
        }
        Activation::Celu { .. } => {
            if x > 0.0 {
                1.0
            } else {
                (x / p0).exp()
            }
        }
        Activation::Selu => SELU_SCALE * if x > 0.0 { 1.0 } else { SELU_ALPHA * x.exp() },
        Activation::Gelu => {
            let tail = if x.is_infinite() {
                0.0
            } else {
                x * normal_pdf(x)
            };
            normal_cdf(x) + tail
        }
        Activation::GeluTanh => {
            let v = 2.0 * gelu_tanh_u(x);
            if x.is_infinite() {
                return sigmoid(v);
            }
            let dv = 2.0 * (2.0 / std::f64::consts::PI).sqrt() * (1.0 + 3.0 * 0.044715 * x * x);
            sigmoid(v) + x * dv * sigmoid(v) * sigmoid(-v)
        }
        Activation::QuickGelu => sigmoid(1.702 * x) + v_sigmoid_grad(1.702 * x),
        Activation::Silu => sigmoid(x) + v_sigmoid_grad(x),
        Activation::Swish { .. } => {
            if p0 == 0.0 {
                0.5
            } else {
                sigmoid(p0 * x) + v_sigmoid_grad(p0 * x)
            }
        }
        Activation::Mish => {
            let sp = softplus(x);
            if x.is_infinite() {
                return step(x > 0.0);
            }
            sp.tanh() + x * sech2(sp) * sigmoid(x)
        }
        Activation::Softplus { .. } => {
            let v = p0 * x;
            if v > p1 {
                1.0
            } else {
                sigmoid(v)
            }
        }
        Activation::Softsign => {
            let d = 1.0 / (1.0 + x.abs());
            d * d
        }
        Activation::Sigmoid => sigmoid(x) * sigmoid(-x),
        Activation::LogSigmoid => sigmoid(-x),
        Activation::Tanh => sech2(x),
        Activation::Hardtanh { .. } => step(x > p0 && x < p1),
        Activation::Hardsigmoid => step(x > -3.0 && x < 3.0) / 6.0,
        Activation::Hardswish => {
            if x <= -3.0 {
                0.0
            } else if x < 3.0 {
                x / 3.0 + 0.5
            } else {
                1.0
            }
        }
        Activation::ReluSquared => 2.0 * x.max(0.0),
        Activation::Hardshrink { .. } | Activation::Softshrink { .. } => step(x.abs() > p0),
        Activation::Tanhshrink => {
            let t = x.tanh();
            t * t
        }
        Activation::Threshold { .. } => step(x > p0),
        Activation::Custom { id } => (registered(id).derivative)(x),
    }
}

/// Backward `dx = dy * f'(x)`; NaN in either input gives NaN.
pub fn backward(act: Activation, x: f64, dy: f64) -> f64 {
    if x.is_nan() || dy.is_nan() {
        return f64::NAN;
    }
    dy * derivative(act, x)
}

/// The x values where `f` or `f'` is not smooth (kinks, branch switches); finite-difference checks avoid them.
pub fn kinks(act: Activation) -> Vec<f64> {
    let [p0, p1] = act.params().map(f64::from);
    match act {
        Activation::Relu
        | Activation::LeakyRelu { .. }
        | Activation::Elu { .. }
        | Activation::Celu { .. }
        | Activation::Selu
        | Activation::ReluSquared => vec![0.0],
        Activation::Relu6 => vec![0.0, 6.0],
        Activation::Hardtanh { .. } => vec![p0, p1],
        Activation::Hardsigmoid | Activation::Hardswish => vec![-3.0, 3.0],
        Activation::Softplus { .. } => vec![p1 / p0],
        Activation::Hardshrink { .. } | Activation::Softshrink { .. } => vec![-p0, p0],
        Activation::Threshold { .. } => vec![p0],
        _ => Vec::new(),
    }
}
