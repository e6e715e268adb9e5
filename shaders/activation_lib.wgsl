// The activation library: every activation's forward `f(x)` and backward `dy * f'(x)` in f32.
//
// Prepended by the host (src/shaders.rs): `const ACT_<NAME>: u32` for every `Activation` variant, generated from
// the Rust enum so the two cannot drift, and `custom_forward` / `custom_derivative` (a user-defined activation,
// selected by ACT_CUSTOM, or stubs). Overrides supplied per pipeline: `ACT` (which activation), `P0`, `P1`
// (its parameters, see `Activation::params`).
//
// Numerical policy (README.md, "Numerical policy"): WGSL gives no guarantee once inf or NaN meets arithmetic, so every
// transcendental call gets a finite, clamped argument; infinities are mapped to their limits by construction and
// NaN is restored at the end with a bit test (`x != x` is folded away on lavapipe).

override ACT: u32;
override P0: f32 = 0.0;
override P1: f32 = 0.0;

const QNAN_BITS: u32 = 0x7fc00000u;
const F32_MAX: f32 = 3.4028234663852886e38;
/// 2^126: past it the reciprocal of a number is subnormal, which some drivers flush to 0.
const F32_TWO_126: f32 = 8.507059173023462e37;

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

/// +-inf, tested on the bits (comparisons with infinities are not reliable under every driver's fast math).
fn is_inf(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}

fn nan_f32() -> f32 {
    return bitcast<f32>(QNAN_BITS);
}

// ---------------------------------------------------------------------------------------------------------------
// Elementary functions with error bounds the built-ins do not give.

/// `exp` of a clamped argument, with results in the f32 subnormal range kept: built-in `exp` flushes them to 0
/// on some drivers (lavapipe from -87.3), which loses products like x e^x that are normal again. Below -80 it
/// computes exp(x + 64 ln 2) 2^-64: the argument stays where exp is normal and the scaling by a power of two is
/// exact. Arguments are clamped to [-120, 88]: exp(-120) is 0 in f32 either way and exp(88) = 1.65e38 is
/// finite; callers never need more. One `exp` per call: the shift and the scale are selected around it.
fn exp_c(x: f32) -> f32 {
    let c = clamp(x, -120.0, 88.0);
    let tiny = c < -80.0;
    let e = exp(select(c, c + 44.3614195558365, tiny));
    return select(e, e * 5.421010862427522e-20, tiny);
}

/// expm1(x) / x = 1 + x/2 + x^2/6 + ... for |x| < 0.5: Taylor series to x^8 (expm1's to x^9, truncation < 1.1e-8
/// relative).
fn expm1_ratio(x: f32) -> f32 {
    let p = 1.0 / 362880.0;
    var s = x * p + 1.0 / 40320.0;
    s = s * x + 1.0 / 5040.0;
    s = s * x + 1.0 / 720.0;
    s = s * x + 1.0 / 120.0;
    s = s * x + 1.0 / 24.0;
    s = s * x + 1.0 / 6.0;
    s = s * x + 0.5;
    return s * x + 1.0;
}

/// expm1(x) = e^x - 1 with small relative error: x expm1_ratio(x) for |x| < 0.5, else exp(x) - 1 (no cancellation
/// left to lose digits to). Returns -1 for x <= -100.
fn expm1_f(x: f32) -> f32 {
    if (abs(x) < 0.5) {
        return expm1_ratio(x) * x;
    }
    return exp_c(x) - 1.0;
}

/// log1p(u) = ln(1 + u) for u in [0, 1], the only range the library needs (softplus of exp(-|x|)).
/// ln(1+u) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = u / (2 + u) in [0, 1/3]: series to s^17 (truncation
/// below 2e-10 relative). Avoids `log` near 1, where WGSL only bounds the absolute error by 2^-21.
fn log1p_unit(u: f32) -> f32 {
    let s = u / (2.0 + u);
    let s2 = s * s;
    var p = 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    return 2.0 * s * p;
}

/// sigmoid(x) = 1 / (1 + e^-x), with e = exp(-|x|): 1/(1+e) for x >= 0, e/(1+e) otherwise. No overflow anywhere.
fn sigmoid_f(x: f32) -> f32 {
    let e = exp_c(-abs(x));
    let r = 1.0 / (1.0 + e);
    return select(e * r, r, x >= 0.0);
}

/// sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2 with e = exp(-|x|): no cancellation. Capped at its
/// maximum, 1/4: for |x| below about 6e-4 (e just below 1) the rounding of the quotient gave 1/4 (1 + 2^-23).
fn sigmoid_grad(x: f32) -> f32 {
    let e = exp_c(-abs(x));
    let r = 1.0 / (1.0 + e);
    return min(e * r * r, 0.25);
}

/// (sigmoid(v), sigmoid'(v)) from one exp: e = exp(-|v|), r = 1 / (1 + e), sigmoid = e r or r, sigmoid' = e r^2
/// capped at 1/4 as in sigmoid_grad.
fn sigmoid_and_grad(v: f32) -> vec2<f32> {
    let e = exp_c(-abs(v));
    let r = 1.0 / (1.0 + e);
    return vec2<f32>(select(e * r, r, v >= 0.0), min(e * r * r, 0.25));
}

/// Swish's beta x, 0 for beta = 0 at every x: 0 * +-inf would be NaN where the limit is x / 2 (and f' = 1/2).
fn swish_arg(beta: f32, x: f32) -> f32 {
    return select(beta * x, 0.0, beta == 0.0);
}

/// Swish, x sigmoid(beta x). Where v = beta x < -80, sigmoid(v) = e^v in f32 (1 + e^v rounds to 1) and is
/// subnormal past -87, while x e^v can be normal again for a small beta (beta = 1e-6, x = -1.04e8: -7.1e-38): it
/// is formed as ((x 2^-64) h) h with h = e^(v/2) 2^32 = exp(v/2 + 32 ln 2), normal down to v = -219 (past which
/// the result is 0 for every finite x). One constant factor, so a compiler that moves it outward (GL's does)
/// computes (x h h) 2^-64, which neither overflows nor leaves the normal range early. x = +-inf there has the
/// limit 0 (a zero of x's sign, as times_gate gives). Elsewhere, and for NaN, x sigmoid(v) as the other gates.
fn swish_f(beta: f32, x: f32) -> f32 {
    let v = swish_arg(beta, x);
    if (v < -80.0) {
        let h = exp(0.5 * max(v, -250.0) + 22.18070977791825);
        let zero = bitcast<f32>(bitcast<u32>(x) & 0x80000000u);
        return select(((x * 5.421010862427522e-20) * h) * h, zero, is_inf(x));
    }
    return times_gate(x, sigmoid_f(v));
}

/// d/dv [v sigmoid(v)] = sigmoid(v) + v sigmoid'(v), one exp; v is clamped to +-120, where sigmoid' is 0 and
/// sigmoid is 0 or 1, so that +-inf gives the limits 0 and 1 without inf * 0.
fn swish_grad(v: f32) -> f32 {
    let c = clamp(v, -120.0, 120.0);
    let s = sigmoid_and_grad(c);
    return s.x + c * s.y;
}

/// softplus(v) = ln(1 + e^v) = max(v, 0) + log1p(e^-|v|).
fn softplus_f(v: f32) -> f32 {
    return max(v, 0.0) + log1p_unit(exp_c(-abs(v)));
}

/// Softplus's softplus(v) / beta, v = beta x, beta = P0 (PyTorch's Softplus below its threshold). Past v = -86,
/// softplus(v) is e^v in f32, subnormal past -87.34 (and 0 on a flushing device past -86.64, where log1p_unit's
/// quotient is), while e^v / beta is normal for a small beta (1e-6 at v = -100: 3.7e-38): for beta < 2^-7 it is
/// formed there as one exp, exp_c(v - ln beta), with ln beta a constant of the pipeline; its argument is at least
/// -87.3 wherever the result is normal, and exp_c keeps subnormal results. v is clamped to -250 (x = -inf gives 0);
/// the branch is taken only for beta >= 2.5e-37 (|v| <= beta F32_MAX), so ln of max(beta, 1e-37) is exact there.
/// For beta >= 2^-7, softplus_f(v) / beta as before: the result is below 2^-118 past -86.64, where the subnormal
/// e^v (and its half in log1p_unit) is within 2^-15 relative wherever the quotient is normal, and a flushing
/// device's 0 is within the checks' FLUSH_UNDERFLOW.
fn softplus_over_beta(v: f32) -> f32 {
    if (P0 < 0.0078125 && v < -86.0) {
        return exp_c(max(v, -250.0) - log(max(P0, 1e-37)));
    }
    return softplus_f(v) / P0;
}

/// tanh(x) = sign(x) t / (t + 2), t = expm1(2|x|) (relative accuracy near 0 from expm1); |x| is clamped to 10,
/// past which tanh rounds to +-1 in f32. The sign is x's sign bit, set on the quotient (which is +0 or more), so
/// that tanh(-0) = -0 as tanh is odd.
fn tanh_f(x: f32) -> f32 {
    let a = min(abs(x), 10.0);
    let t = expm1_f(2.0 * a);
    let r = t / (t + 2.0);
    return bitcast<f32>(bitcast<u32>(r) | (bitcast<u32>(x) & 0x80000000u));
}

/// tanh'(x) = sech^2(x) = 4 e / (1 + e)^2, e = exp(-2|x|): no `1 - tanh^2` cancellation. Capped at its maximum,
/// 1: for |x| below about 3e-4 (e just below 1) the rounding of the quotient gave 1 + 2^-23.
fn tanh_grad(x: f32) -> f32 {
    let e = exp_c(-2.0 * abs(x));
    let r = 1.0 / (1.0 + e);
    return min(4.0 * e * r * r, 1.0);
}

/// erfc(z) e^(z^2) / t for t = 1 / (1 + z/2), z in [0, 11] (t in [0.1538, 1]): a degree-10 polynomial in t,
/// Chebyshev-fitted to the exact function in 30-digit arithmetic (mpmath `chebyfit` on t in [0.15, 1]; relative
/// error 5.7e-9 before f32 rounding). Evaluated by Estrin's scheme, a chain of 4 dependent fmas rather than
/// Horner's 10: GELU forward 10-15% faster on lavapipe, where the chain's latency shows; 2.0e-7 relative
/// rounding error in f32 (Horner's: 1.4e-7; both emulated over 2e6 points of t).
fn erfcx_over_t(t: f32) -> f32 {
    let t2 = t * t;
    let t4 = t2 * t2;
    let t8 = t4 * t4;
    let p01 = fma(0.282237906012, t, 0.282089292481);
    let p23 = fma(0.185214281028, t, 0.245286306546);
    let p45 = fma(0.0361648601205, t, 0.0554005037708);
    let p67 = fma(-0.281892255389, t, -0.0262718774243);
    let p89 = fma(-0.187521672569, t, 0.374237557839);
    let q03 = fma(p23, t2, p01);
    let q47 = fma(p67, t2, p45);
    let q810 = fma(0.0350551000514, t2, p89);
    return fma(q810, t8, fma(q47, t4, q03));
}

/// The standard normal CDF and density, (Phi(x), phi(x)), from one exp: with z = |x| / sqrt 2 (clamped to 11,
/// where both have reached their limits in f32) and e = exp(-z^2), the tail Phi(-|x|) = erfc(z) / 2 =
/// t erfcx_over_t(t) e / 2 is computed directly (relative accuracy for x < 0), Phi(x) = 1 - tail for x > 0, and
/// phi(x) = e / sqrt(2 pi). Phi is exactly 0 below about -15.5 and exactly 1 above about 5.9.
fn normal_cdf_pdf(x: f32) -> vec2<f32> {
    let z = min(abs(x) * 0.70710678118654752, 11.0);
    let t = 1.0 / (1.0 + 0.5 * z);
    let e = exp_c(-z * z);
    let tail = 0.5 * t * erfcx_over_t(t) * e;
    return vec2<f32>(select(tail, 1.0 - tail, x > 0.0), 0.3989422804014327 * e);
}

/// x * g where g -> 0 as x -> -inf: where g is 0 it returns a zero of x's sign, as x * 0 is in IEEE arithmetic
/// (PyTorch's x * g gives -0 there for finite x < 0), so that -inf * 0 never forms NaN (its limit, -0, instead).
fn times_gate(x: f32, g: f32) -> f32 {
    return select(x * g, bitcast<f32>(bitcast<u32>(x) & 0x80000000u), g == 0.0);
}

// ---------------------------------------------------------------------------------------------------------------
// Activations: forward. Formulas follow PyTorch; see `Activation` in src/activation.rs for the documented list.

fn hardtanh_f(x: f32, lo: f32, hi: f32) -> f32 {
    return clamp(x, lo, hi);
}

/// e^88 (rounded to f32): exp_c's largest result.
const E88: f32 = 1.6516362549940018e38;

/// e^v for CELU's v = x / alpha, which passes exp_c's clamp at 88 only where alpha < 0 (PyTorch allows any
/// nonzero alpha): e^88 e^(v - 88) past 88, so results up to the largest f32 stay finite and larger ones overflow
/// to inf as the true value does.
fn celu_exp(v: f32) -> f32 {
    return select(exp_c(v), E88 * exp_c(v - 88.0), v > 88.0);
}

/// CELU for x <= 0: alpha (e^v - 1), v = x / alpha. For |v| < 0.5, x expm1(v) / v = x expm1_ratio(v): alpha
/// expm1(v) scaled back a v that is subnormal for |x| < |alpha| 2^-126 (0 on a flushing device; 4.6% off at
/// x = -2^-126 for alpha = 1e6, 0 for |x| < 2e-7 at alpha = 3e38); for alpha = 1 (the default) both forms round
/// alike, and for another power of two wherever v is normal. Else alpha (exp_c(v) - 1) below exp_c's clamp; past
/// it (alpha < 0) e^v dwarfs the 1, and (alpha e^(v - 88)) e^88 overflows only where the result does up to
/// v = 176, where exp_c clamps again (beyond, which needs |alpha| < 1.6e-38, it stays at alpha e^176). Not
/// (alpha e^88) e^(v - 88): naga evaluates alpha e^88 when the pipeline is created, and for |alpha| > 2.06 that
/// infinite constant refused the pipeline of every such CELU, whatever x.
fn celu_negative(x: f32) -> f32 {
    let v = x / P0;
    if (abs(v) < 0.5) {
        return x * expm1_ratio(v);
    }
    return select(P0 * (exp_c(v) - 1.0), (P0 * exp_c(v - 88.0)) * E88, v > 88.0);
}

/// alpha e^x, ELU's derivative for x <= 0 (and a learnable ELU's df/dx). Past x = -87 e^x leaves the normal range
/// (subnormal, or 0 on a device that flushes), while alpha e^x is normal for a large alpha (1e6 at x = -100:
/// 3.7e-38; down to x = -176 for the largest f32): for |alpha| > 128 it is formed there as one exp,
/// sign(alpha) exp_c(x + ln|alpha|), whose argument is at least -87.3 wherever the result is normal (and which
/// keeps subnormal results, as exp_c(x) did, for a large dy to scale). No product of small factors, which a
/// compiler could reassociate (GL's formed e^x 2^64 as h h from ((alpha 2^-64) h) h, a subnormal past x = -131);
/// x is clamped to -250 (x = -inf gives 0), and an infinite alpha keeps alpha exp_c(x).
/// For |alpha| <= 128, alpha exp_c(x) as before: the result is below 2^-119 past -87.34, where the subnormal e^x
/// it multiplies is within 2^-17 relative wherever the product is normal, and a flushing device's 0 is within the
/// checks' FLUSH_UNDERFLOW (2^-118 for |dy| <= 2).
fn alpha_exp(alpha: f32, x: f32) -> f32 {
    if (x < -87.0 && abs(alpha) > 128.0 && !is_inf(alpha)) {
        let e = exp_c(max(x, -250.0) + log(abs(alpha)));
        return select(e, -e, alpha < 0.0);
    }
    return alpha * exp_c(x);
}

fn elu_f(x: f32, alpha: f32) -> f32 {
    return select(alpha * expm1_f(x), x, x > 0.0);
}

fn gelu_f(x: f32) -> f32 {
    return times_gate(x, normal_cdf_pdf(x).x);
}

/// GELU, tanh form: x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3) (equal to 0.5 x (1 + tanh u)).
fn gelu_tanh_arg(x: f32) -> f32 {
    let c = clamp(x, -30.0, 30.0);
    return 1.5957691216057308 * (c + 0.044715 * c * c * c);
}

/// x - tanh(x). For |x| < 1, x^3 p(x^2) with p a degree-6 polynomial fitted to (x - tanh x) / x^3 on [0, 1] in
/// 40-digit arithmetic (mpmath `chebyfit`; 2.0e-8 absolute error, at most 9e-8 relative as p falls from 1/3 to
/// 1 - tanh 1 = 0.238, before f32 rounding; 2.4e-7 relative after it, emulated over 1e5 points): the difference
/// would cancel there, every digit below |x| = 1e-4 in f32. From |x| = 1 the difference, which cancels by at most
/// a factor of 3.2 there. +-inf gives itself, its limit.
fn tanhshrink_f(x: f32) -> f32 {
    let s = x * x;
    var p = fma(0.00042069549090228975, s, -0.0025104593951255083);
    p = fma(p, s, 0.008218921720981598);
    p = fma(p, s, -0.02166011556982994);
    p = fma(p, s, 0.053934790194034576);
    p = fma(p, s, -0.1333312839269638);
    p = fma(p, s, 0.3333333134651184);
    let small = (x * s) * p;
    return select(select(x - tanh_f(x), small, abs(x) < 1.0), x, is_inf(x));
}

fn mish_tsp(x: f32) -> f32 {
    // tanh(softplus(x)) = n / (n + 2), n = e^x (e^x + 2); exactly 1 in f32 past x = 20.
    let e = exp_c(min(x, 20.0));
    let n = e * (e + 2.0);
    return n / (n + 2.0);
}

fn act_forward(x: f32) -> f32 {
    var y: f32;
    switch ACT {
        case ACT_IDENTITY: { y = x; }
        case ACT_RELU: { y = max(x, 0.0); }
        case ACT_RELU6: { y = hardtanh_f(x, 0.0, 6.0); }
        // times_gate: a slope of 0 gives a zero of x's sign, and at x = -inf its limit -0, not 0 * -inf = NaN.
        case ACT_LEAKY_RELU: { y = select(times_gate(x, P0), x, x > 0.0); }
        case ACT_ELU: { y = elu_f(x, P0); }
        case ACT_CELU: { y = select(celu_negative(x), x, x > 0.0); }
        case ACT_SELU: { y = 1.0507009873554805 * elu_f(x, 1.6732632423543772); }
        case ACT_GELU: { y = gelu_f(x); }
        case ACT_GELU_TANH: { y = times_gate(x, sigmoid_f(gelu_tanh_arg(x))); }
        case ACT_QUICK_GELU: { y = times_gate(x, sigmoid_f(1.702 * x)); }
        case ACT_SILU: { y = times_gate(x, sigmoid_f(x)); }
        case ACT_SWISH: { y = swish_f(P0, x); }
        case ACT_MISH: { y = times_gate(x, mish_tsp(x)); }
        case ACT_SOFTPLUS: {
            // PyTorch: x when beta x > threshold, else softplus(beta x) / beta.
            let v = P0 * x;
            y = select(softplus_over_beta(v), x, v > P1);
        }
        case ACT_SOFTSIGN: {
            // x / (1 + |x|), and sign(x) past |x| = 2^126, where the quotient rounds to +-1 in f32: drivers that
            // divide by multiplying with a reciprocal flush 1/d to 0 for d > 2^126 (NVIDIA), which made the
            // quotient 0 there and for +-inf.
            let c = clamp(x, -F32_MAX, F32_MAX);
            let a = abs(c);
            y = select(c / (1.0 + a), sign(c), a > F32_TWO_126);
        }
        case ACT_SIGMOID: { y = sigmoid_f(x); }
        case ACT_LOG_SIGMOID: { y = min(x, 0.0) - log1p_unit(exp_c(-abs(x))); }
        case ACT_TANH: { y = tanh_f(x); }
        case ACT_HARDTANH: { y = hardtanh_f(x, P0, P1); }
        case ACT_HARDSIGMOID: { y = clamp(x + 3.0, 0.0, 6.0) / 6.0; }
        case ACT_HARDSWISH: {
            // -0 for x <= -3, as PyTorch's x * clamp(x + 3, 0, 6) / 6 gives (x * +0 with x < 0).
            y = select(select(x * (x + 3.0) / 6.0, x, x >= 3.0), bitcast<f32>(0x80000000u), x <= -3.0);
        }
        case ACT_RELU_SQUARED: {
            let r = max(x, 0.0);
            y = r * r;
        }
        // PyTorch's mask, closed at +-lambd: |x| <= lambd is x in [-lambd, lambd] (empty for lambd < 0), and
        // false at +-inf, which pass through.
        case ACT_HARDSHRINK: { y = select(x, 0.0, abs(x) <= P0); }
        case ACT_SOFTSHRINK: {
            // x - lambd sign(x) outside [-lambd, lambd] (lambd >= 0), one rounding; +-inf give themselves. Inside,
            // a zero of x's sign, as PyTorch's scalar and CUDA code give (x * 0; its vectorised CPU code gives
            // +0); hardshrink's is +0, PyTorch's constant.
            let moved = select(x + P0, x - P0, x > 0.0);
            let zero = bitcast<f32>(bitcast<u32>(x) & 0x80000000u);
            y = select(select(moved, x, is_inf(x)), zero, abs(x) <= P0);
        }
        case ACT_TANHSHRINK: { y = tanhshrink_f(x); }
        // PyTorch's mask: x <= threshold gives value; +inf passes, -inf gives value.
        case ACT_THRESHOLD: { y = select(x, P1, x <= P0); }
        case ACT_CUSTOM: { y = custom_forward(x); }
        default: { y = nan_f32(); }
    }
    return select(y, x, is_nan(x));
}

// ---------------------------------------------------------------------------------------------------------------
// Activations: backward, dx = dy * f'(x). Where PyTorch defines the derivative at a kink, we follow it.

/// The derivative f'(x) of the activations whose backward is a plain product with dy.
fn act_derivative(x: f32) -> f32 {
    switch ACT {
        case ACT_IDENTITY: { return 1.0; }
        case ACT_RELU: { return select(0.0, 1.0, x > 0.0); }
        case ACT_RELU6: { return select(0.0, 1.0, x > 0.0 && x < 6.0); }
        case ACT_LEAKY_RELU: { return select(P0, 1.0, x > 0.0); }
        case ACT_ELU: { return select(alpha_exp(P0, x), 1.0, x > 0.0); }
        case ACT_CELU: { return select(celu_exp(x / P0), 1.0, x > 0.0); }
        case ACT_SELU: {
            return 1.0507009873554805 * select(1.6732632423543772 * exp_c(x), 1.0, x > 0.0);
        }
        case ACT_GELU: {
            // Exact: Phi(x) + x phi(x); x phi(x) -> 0 at +-inf, so x is clamped where phi(x) is 0 anyway.
            // One exp serves both terms (normal_cdf_pdf).
            let c = clamp(x, -20.0, 20.0);
            let p = normal_cdf_pdf(x);
            return p.x + c * p.y;
        }
        case ACT_GELU_TANH: {
            // d/dx [x sigmoid(2u)] = sigmoid(2u) + x sigmoid'(2u) 2u'(x), u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
            let c = clamp(x, -30.0, 30.0);
            let v = gelu_tanh_arg(c);
            let dv = 1.5957691216057308 * (1.0 + 0.134145 * c * c);
            let s = sigmoid_and_grad(v);
            return s.x + c * dv * s.y;
        }
        // d/dx [x sigmoid(k x)] = sigmoid(v) + v sigmoid'(v) with v = k x.
        case ACT_QUICK_GELU: { return swish_grad(1.702 * x); }
        case ACT_SILU: { return swish_grad(x); }
        case ACT_SWISH: { return swish_grad(swish_arg(P0, x)); }
        case ACT_MISH: {
            // mish'(x) = tsp + x sech^2(sp) sigmoid(x) = e w / d^2 with e = e^x, d = e^2 + 2e + 2 and
            // w = 4 (x + 1) + e (4x + 6 + e (4 + e)): one exp and one division, and the two terms of the first
            // form, which cancelled for x < -1 (11.5 ULP at x = -1.879, the survey of `examples/accuracy.rs`),
            // folded into w, whose only cancellation is at mish's own minimum, x = -1.1924. No overflow: past the
            // clamp at 20, e^3 and d^2 stay near 1e26 and 5.5e34.
            let c = clamp(x, -120.0, 20.0);
            let e = exp_c(c);
            let w = fma(e, fma(e, 4.0 + e, 4.0 * c + 6.0), 4.0 * c + 4.0);
            let r = 1.0 / fma(e, e + 2.0, 2.0);
            return e * w * r * r;
        }
        case ACT_SOFTPLUS: { return select(sigmoid_f(P0 * x), 1.0, P0 * x > P1); }
        case ACT_SOFTSIGN: {
            let d = 1.0 / (1.0 + min(abs(x), F32_MAX));
            return d * d;
        }
        case ACT_SIGMOID: { return sigmoid_grad(x); }
        case ACT_LOG_SIGMOID: { return sigmoid_f(-x); }
        case ACT_TANH: { return tanh_grad(x); }
        case ACT_HARDTANH: { return select(0.0, 1.0, x > P0 && x < P1); }
        case ACT_HARDSIGMOID: { return select(0.0, 1.0 / 6.0, x > -3.0 && x < 3.0); }
        case ACT_HARDSWISH: {
            // x/3 + 1/2 as (2x + 3) / 6: 2x + 3 is exact for x in [-3, -0.75] (Sterbenz), fused or not, so near the
            // zero the result is one division's rounding and 0 exactly at x = -1.5; above -0.75 the sum rounds
            // but no longer cancels. 1.7 ULP at most over the line (ACCURACY.md, lavapipe); x / 3 + 0.5 cancelled
            // towards the zero (2,731 ULP at x = -1.50026, and 1.5e-8 at x = -1.5 on a driver that forms
            // fma(x, 1/3, 0.5), NVIDIA's).
            // The kinks take current PyTorch's choice (pytorch/pytorch#147801): 0 at x = -3, 1 at x = 3.
            return select(select((x + x + 3.0) / 6.0, 1.0, x >= 3.0), 0.0, x <= -3.0);
        }
        // One case per activation, as tests/reference.rs counts them (src/specialize.rs would keep a shared one).
        case ACT_HARDSHRINK: { return select(1.0, 0.0, abs(x) <= P0); }
        case ACT_SOFTSHRINK: { return select(1.0, 0.0, abs(x) <= P0); }
        case ACT_TANHSHRINK: {
            let t = tanh_f(x);
            return t * t;
        }
        case ACT_THRESHOLD: { return select(1.0, 0.0, x <= P0); }
        case ACT_CUSTOM: { return custom_derivative(x); }
        default: { return nan_f32(); }
    }
}

/// 2 v exactly for |v| < 2^127, formed on the bits (the exponent raised by one, or a subnormal's bits shifted,
/// which carries into the exponent exactly) so that no compiler can merge the factor 2 into a neighbouring
/// product: Mesa turned (dy r) 2 into (dy 2) r, which overflows where the true product does not (dy = f32::MAX
/// and r = 0 gave inf * 0 = NaN).
fn twice(v: f32) -> f32 {
    let b = bitcast<u32>(v);
    let mag = b & 0x7fffffffu;
    return bitcast<f32>((b & 0x80000000u) | select(mag + 0x00800000u, mag << 1u, mag < 0x00800000u));
}

/// 2^127: from here 2 v overflows f32.
const F32_TWO_127: f32 = 1.7014118346046923e38;

/// 2^-126, f32's smallest normal.
const F32_MIN_NORMAL: f32 = 1.1754943508222875e-38;

/// dy e^v for v > 88 (CELU's f' with alpha < 0): e^v passes f32 from v = 88.73, while dy e^v is finite for a small
/// enough |dy| up to v = 192 (dy = 2^-149). As ((dy e^a) e^b) e^88 with e^v = e^a e^b e^88, a = min(v - 88, 88) and
/// b = v - 176 past 176 (else 1, exactly): each factor applied to a product that is not a constant, so no compiler
/// can fold the e^88s into one infinite constant; past v = 264 no nonzero f32 dy gives a finite result. A
/// subnormal dy takes the factors the other way round, e^88 first: dy e^a would be subnormal again, rounded to a
/// few digits before e^88 scales it up (2% off at v = 89, dy = 3 2^-149). dy = 0 gives 0 while e^v is finite in
/// f64 (v up to ln f64::MAX = 709.7827, as the f64 reference), NaN past it.
fn dy_exp_past_88(dy: f32, v: f32) -> f32 {
    let w = min(v, 264.0) - 88.0;
    let a = exp_c(min(w, 88.0));
    let b = select(1.0, exp_c(w - 88.0), w > 88.0);
    let tiny = abs(dy) < F32_MIN_NORMAL;
    let dx = ((dy * select(a, E88, tiny)) * select(b, a, tiny)) * select(E88, b, tiny);
    // 709.78265: the largest f32 below ln f64::MAX.
    return select(dx, dy * select(0.0, bitcast<f32>(0x7f800000u), v > 709.7826538085938), dy == 0.0);
}

fn act_backward(x: f32, dy: f32) -> f32 {
    var dx: f32;
    if (ACT == ACT_RELU_SQUARED) {
        // d/dx relu(x)^2 = 2 relu(x), times dy in one rounding: dy (2 r) with 2 r exact; past r = 2^127, where
        // 2 r overflows, (2 dy) r for |dy| < 2^127, else dy r, which overflows as the true result does.
        let r = max(x, 0.0);
        let huge = select(twice(dy) * r, dy * r, abs(dy) >= F32_TWO_127);
        dx = select(dy * twice(r), huge, r >= F32_TWO_127);
    } else if (ACT == ACT_CELU && x <= 0.0 && x / P0 > 88.0) {
        // alpha < 0 and e^(x / alpha) past exp_c's clamp: f' alone overflows where dy f' may be finite.
        dx = dy_exp_past_88(dy, x / P0);
    } else {
        dx = dy * act_derivative(x);
    }
    return select(dx, nan_f32(), is_nan(x) || is_nan(dy));
}

// ---------------------------------------------------------------------------------------------------------------
// Eight elements at a time (an `Oct`, see storage.wgsl).

fn fwd4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act_forward(v.x), act_forward(v.y), act_forward(v.z), act_forward(v.w));
}

fn bwd4(v: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(act_backward(v.x, g.x), act_backward(v.y, g.y), act_backward(v.z, g.z), act_backward(v.w, g.w));
}

fn fwd8(v: Oct) -> Oct {
    return Oct(fwd4(v.a), fwd4(v.b));
}

fn bwd8(v: Oct, g: Oct) -> Oct {
    return Oct(bwd4(v.a, g.a), bwd4(v.b, g.b));
}
