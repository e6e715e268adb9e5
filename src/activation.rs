//! The activation functions: one enum, PyTorch's definitions and defaults.
//!
//! Each formula lives twice, and only twice: in `shaders/activation_lib.wgsl` and in [`crate::cpu::activation`].
//! Tests walk [`Activation::ALL`] through both.

use crate::{DType, Error, Intensity, Result};

/// An activation function with its parameters. Constructors with PyTorch's defaults: [`Activation::leaky_relu`],
/// [`Activation::elu`], [`Activation::celu`], [`Activation::swish`], [`Activation::softplus`],
/// [`Activation::hardtanh`], [`Activation::hardshrink`], [`Activation::softshrink`]; and
/// [`Activation::threshold`] with the parameters of PyTorch's documentation example (its `Threshold` has no
/// defaults).
///
/// Backward always means `dx = dy * f'(x)`, with the derivative at kinks as PyTorch defines it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `f(x) = x`; `f'(x) = 1`.
    Identity,
    /// `f(x) = max(x, 0)`; `f'(x) = 1 if x > 0 else 0`.
    Relu,
    /// `f(x) = min(max(x, 0), 6)`; `f'(x) = 1 if 0 < x < 6 else 0`.
    Relu6,
    /// `f(x) = x if x > 0 else negative_slope * x` (default slope 0.01); `f'(x) = 1 if x > 0 else negative_slope`.
    LeakyRelu {
        /// Slope for x <= 0.
        negative_slope: f32,
    },
    /// `f(x) = x if x > 0 else alpha (e^x - 1)` (default alpha 1); `f'(x) = 1 if x > 0 else alpha e^x`.
    Elu {
        /// Scale of the negative branch.
        alpha: f32,
    },
    /// `f(x) = x if x > 0 else alpha (e^(x/alpha) - 1)` (default alpha 1, must be nonzero);
    /// `f'(x) = 1 if x > 0 else e^(x/alpha)`.
    Celu {
        /// Scale of the negative branch.
        alpha: f32,
    },
    /// `f(x) = scale * (x if x > 0 else alpha (e^x - 1))`, alpha = 1.6732632423543772,
    /// scale = 1.0507009873554805; `f'(x) = scale * (1 if x > 0 else alpha e^x)`.
    Selu,
    /// Exact GELU: `f(x) = x Phi(x)`, `Phi(x) = (1 + erf(x / sqrt 2)) / 2`; `f'(x) = Phi(x) + x phi(x)`,
    /// `phi(x) = e^(-x^2/2) / sqrt(2 pi)` (the exact derivative, not the tanh approximation's).
    Gelu,
    /// GELU, tanh approximation: `f(x) = x/2 (1 + tanh(u))`, `u = sqrt(2/pi) (x + 0.044715 x^3)`;
    /// `f'(x) = (1 + tanh u)/2 + x/2 sech^2(u) u'(x)`.
    GeluTanh,
    /// `f(x) = x sigmoid(1.702 x)`; `f'(x) = s + 1.702 x s (1 - s)`, `s = sigmoid(1.702 x)`.
    QuickGelu,
    /// SiLU: `f(x) = x sigmoid(x)`; `f'(x) = s (1 + x (1 - s))`, `s = sigmoid(x)`.
    Silu,
    /// Swish: `f(x) = x sigmoid(beta x)` (default beta 1, which is SiLU); `f'(x) = s + beta x s (1 - s)`.
    Swish {
        /// Slope inside the sigmoid.
        beta: f32,
    },
    /// Mish: `f(x) = x tanh(softplus(x))`; `f'(x) = tanh(sp) + x sech^2(sp) sigmoid(x)`, `sp = softplus(x)`.
    Mish,
    /// `f(x) = ln(1 + e^(beta x)) / beta`, and `x` where `beta x > threshold` (defaults beta 1, threshold 20);
    /// `f'(x) = sigmoid(beta x)`, and 1 where `beta x > threshold`. beta must be positive.
    Softplus {
        /// Sharpness.
        beta: f32,
        /// Above `beta x > threshold` the function is taken as linear.
        threshold: f32,
    },
    /// `f(x) = x / (1 + |x|)`; `f'(x) = 1 / (1 + |x|)^2`.
    Softsign,
    /// `f(x) = 1 / (1 + e^-x)`; `f'(x) = f(x) (1 - f(x))`.
    Sigmoid,
    /// `f(x) = ln(sigmoid(x)) = -softplus(-x)`; `f'(x) = sigmoid(-x)`.
    LogSigmoid,
    /// `f(x) = tanh(x)`; `f'(x) = 1 - tanh^2(x)`.
    Tanh,
    /// `f(x) = min(max(x, min_val), max_val)` (defaults -1, 1); `f'(x) = 1 if min_val < x < max_val else 0`.
    Hardtanh {
        /// Lower clip.
        min_val: f32,
        /// Upper clip.
        max_val: f32,
    },
    /// `f(x) = min(max(x + 3, 0), 6) / 6`; `f'(x) = 1/6 if -3 < x < 3 else 0`.
    Hardsigmoid,
    /// `f(x) = x min(max(x + 3, 0), 6) / 6`; `f'(x) = 0 if x <= -3, x/3 + 1/2 if x < 3, else 1`
    /// (current PyTorch's choice at the kinks).
    Hardswish,
    /// Squared ReLU: `f(x) = max(x, 0)^2`; `f'(x) = 2 max(x, 0)`.
    ReluSquared,
    /// Hard shrinkage: `f(x) = 0 if |x| <= lambd else x` (default lambd 0.5); `f'(x) = 0 if |x| <= lambd else 1`
    /// (PyTorch's mask, closed at `+-lambd`). One of the shrinkage functions ([`Activation::SHRINK`]).
    Hardshrink {
        /// Half-width of the interval mapped to 0.
        lambd: f32,
    },
    /// Soft shrinkage: `f(x) = x - lambd if x > lambd, x + lambd if x < -lambd, else 0` (a zero of x's sign, as
    /// PyTorch's scalar and CUDA code give it, where its vectorised CPU code gives +0; default lambd 0.5, which
    /// must not be negative); `f'(x) = 0 if |x| <= lambd else 1`. One of the shrinkage functions.
    Softshrink {
        /// The amount every value is moved towards 0 (and the half-width of the interval mapped to 0).
        lambd: f32,
    },
    /// `f(x) = x - tanh(x)`; `f'(x) = tanh^2(x)`. Computed without the cancellation of the difference near 0, where
    /// `f(x) = x^3/3 - 2 x^5/15 + ...` (PyTorch's `x - tanh(x)` in f32 loses every digit below `|x|` = 1e-4), and
    /// odd: a zero of x's sign for a tiny x (PyTorch's difference gives +0). One of the shrinkage functions.
    Tanhshrink,
    /// PyTorch's `Threshold`: `f(x) = x if x > threshold else value`; `f'(x) = 1 if x > threshold else 0`
    /// (its mask: `x <= threshold` gives `value` and a zero derivative). `threshold = value = 0` is ReLU. PyTorch
    /// gives no defaults; [`Activation::threshold`] takes its documentation's example, `Threshold(0.1, 20)`.
    Threshold {
        /// Inputs at or below it are replaced.
        threshold: f32,
        /// What replaces them.
        value: f32,
    },
    /// A user-defined activation, made by [`crate::CustomActivation::activation`]: its WGSL, its f64 reference
    /// and its name ([`Activation::name`]) are looked up by `id`. Not in [`Activation::ALL`].
    Custom {
        /// The registered activation's id.
        id: u64,
    },
}

/// The activation id that selects a user-defined activation's `custom_forward` / `custom_derivative`.
pub const CUSTOM_ID: u32 = 1000;

/// SELU's alpha, as PyTorch defines it.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_284_817_042_991_671_7;
/// SELU's scale, as PyTorch defines it.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_493_419_334_985_294_6;

impl Activation {
    /// Every activation, each with PyTorch's default parameters, in id order.
    pub const ALL: [Activation; 26] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Relu6,
        Activation::leaky_relu(),
        Activation::elu(),
        Activation::celu(),
        Activation::Selu,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::QuickGelu,
        Activation::Silu,
        Activation::swish(),
        Activation::Mish,
        Activation::softplus(),
        Activation::Softsign,
        Activation::Sigmoid,
        Activation::LogSigmoid,
        Activation::Tanh,
        Activation::hardtanh(),
        Activation::Hardsigmoid,
        Activation::Hardswish,
        Activation::ReluSquared,
        Activation::hardshrink(),
        Activation::softshrink(),
        Activation::Tanhshrink,
        Activation::threshold(),
    ];

    /// The shrinkage functions, PyTorch's `Hardshrink`, `Softshrink` and `Tanhshrink` (defaults), ids 22 to 24
    /// of [`Activation::ALL`]. Operators of sparse coding and denoising more than hidden-layer activations: the
    /// activation study's default set leaves them out (its `shrink` set names them).
    pub const SHRINK: [Activation; 3] = [
        Activation::hardshrink(),
        Activation::softshrink(),
        Activation::Tanhshrink,
    ];

    /// Leaky ReLU with PyTorch's default slope 0.01.
    pub const fn leaky_relu() -> Self {
        Activation::LeakyRelu {
            negative_slope: 0.01,
        }
    }

    /// ELU with alpha 1.
    pub const fn elu() -> Self {
        Activation::Elu { alpha: 1.0 }
    }

    /// CELU with alpha 1.
    pub const fn celu() -> Self {
        Activation::Celu { alpha: 1.0 }
    }

    /// Swish with beta 1.
    pub const fn swish() -> Self {
        Activation::Swish { beta: 1.0 }
    }

    /// Softplus with beta 1, threshold 20.
    pub const fn softplus() -> Self {
        Activation::Softplus {
            beta: 1.0,
            threshold: 20.0,
        }
    }

    /// Hardtanh on [-1, 1].
    pub const fn hardtanh() -> Self {
        Activation::Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        }
    }

    /// Hard shrinkage with PyTorch's default lambd 0.5.
    pub const fn hardshrink() -> Self {
        Activation::Hardshrink { lambd: 0.5 }
    }

    /// Soft shrinkage with PyTorch's default lambd 0.5.
    pub const fn softshrink() -> Self {
        Activation::Softshrink { lambd: 0.5 }
    }

    /// `Threshold(0.1, 20)`, the example of PyTorch's documentation (PyTorch's `Threshold` has no defaults).
    pub const fn threshold() -> Self {
        Activation::Threshold {
            threshold: 0.1,
            value: 20.0,
        }
    }

    /// Stable numeric id, shared with the WGSL library through generated constants.
    pub const fn id(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Relu6 => 2,
            Activation::LeakyRelu { .. } => 3,
            Activation::Elu { .. } => 4,
            Activation::Celu { .. } => 5,
            Activation::Selu => 6,
            Activation::Gelu => 7,
            Activation::GeluTanh => 8,
            Activation::QuickGelu => 9,
            Activation::Silu => 10,
            Activation::Swish { .. } => 11,
            Activation::Mish => 12,
            Activation::Softplus { .. } => 13,
            Activation::Softsign => 14,
            Activation::Sigmoid => 15,
            Activation::LogSigmoid => 16,
            Activation::Tanh => 17,
            Activation::Hardtanh { .. } => 18,
            Activation::Hardsigmoid => 19,
            Activation::Hardswish => 20,
            Activation::ReluSquared => 21,
            Activation::Hardshrink { .. } => 22,
            Activation::Softshrink { .. } => 23,
            Activation::Tanhshrink => 24,
            Activation::Threshold { .. } => 25,
            Activation::Custom { .. } => CUSTOM_ID,
        }
    }

    /// What bounds this activation's kernels: [`Intensity::Streaming`] for the piecewise-linear and rational ones
    /// (a few operations per element, forward and backward), [`Intensity::Arithmetic`] for those with an
    /// exponential, a logarithm or erf (tens of operations per element) and for user-defined ones (unknown cost).
    pub const fn intensity(self) -> Intensity {
        match self {
            Activation::Identity
            | Activation::Relu
            | Activation::Relu6
            | Activation::LeakyRelu { .. }
            | Activation::Softsign
            | Activation::Hardtanh { .. }
            | Activation::Hardsigmoid
            | Activation::Hardswish
            | Activation::ReluSquared
            | Activation::Hardshrink { .. }
            | Activation::Softshrink { .. }
            | Activation::Threshold { .. } => Intensity::Streaming,
            _ => Intensity::Arithmetic,
        }
    }

    /// Whether every value a pass of this activation stores is exactly representable in the output type `out`,
    /// given that the operand carrying the value (`x` forward, `dy` backward) has type `value`. True for
    /// identity, relu, relu6, hardtanh, hardshrink and threshold when `value == out`: the forward returns its
    /// input, 0 or a constant (the hardtanh bounds and threshold's value must be representable in `out`), the
    /// backward `dy * f'(x)` with `f'` 0 or 1; and for softshrink's backward (its forward's `x -+ lambd`
    /// rounds). The 16-bit kernels then store without rounding, which would change nothing (a NaN stays a NaN: it
    /// is an input's or the kernel's quiet one).
    pub(crate) fn stores_exactly(self, backward: bool, value: DType, out: DType) -> bool {
        if value != out {
            return false;
        }
        match self {
            Activation::Identity
            | Activation::Relu
            | Activation::Relu6
            | Activation::Hardshrink { .. } => true,
            Activation::Softshrink { .. } => backward,
            Activation::Hardtanh { min_val, max_val } => {
                backward || (out.round_f32(min_val) == min_val && out.round_f32(max_val) == max_val)
            }
            Activation::Threshold { value: v, .. } => backward || out.round_f32(v) == v,
            _ => false,
        }
    }

    /// snake_case name, as PyTorch's functional API spells it (and as `validate` and `bench` print it); for
    /// [`Activation::Custom`], the name its [`crate::CustomActivation`] was created with, and `custom` for an id
    /// no `CustomActivation` registered. This is the name the crate prints (`Display`), puts in the `op` of the
    /// typed errors an activation's kernels return, and saves in a network's metadata, so a user-defined
    /// activation is named there as a built-in is. Not a `const fn`: a user-defined name is looked up in the
    /// registry (each distinct name is stored once, for the life of the process, so that it can be returned as
    /// `&'static str` like a built-in's).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
            Activation::Celu { .. } => "celu",
            Activation::Selu => "selu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::QuickGelu => "quick_gelu",
            Activation::Silu => "silu",
            Activation::Swish { .. } => "swish",
            Activation::Mish => "mish",
            Activation::Softplus { .. } => "softplus",
            Activation::Softsign => "softsign",
            Activation::Sigmoid => "sigmoid",
            Activation::LogSigmoid => "log_sigmoid",
            Activation::Tanh => "tanh",
            Activation::Hardtanh { .. } => "hardtanh",
            Activation::Hardsigmoid => "hardsigmoid",
            Activation::Hardswish => "hardswish",
            Activation::ReluSquared => "relu_squared",
            Activation::Hardshrink { .. } => "hardshrink",
            Activation::Softshrink { .. } => "softshrink",
            Activation::Tanhshrink => "tanhshrink",
            Activation::Threshold { .. } => "threshold",
            Activation::Custom { id } => match crate::custom::name_of(id) {
                Some(name) => name,
                None => "custom",
            },
        }
    }

    /// The registered id of a user-defined activation.
    pub const fn custom_id(self) -> Option<u64> {
        match self {
            Activation::Custom { id } => Some(id),
            _ => None,
        }
    }

    /// The built-in activation with this name and default parameters. A user-defined activation's name gives
    /// `None`: [`crate::CustomActivation::new`] refuses the built-ins' names, and a saved network marks its
    /// user-defined activations apart (`custom(<name>)`, [`crate::nn::checkpoint`]), so a name read back never
    /// means both.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The parameters passed to the kernel as the override constants `P0`, `P1` (0 where unused).
    ///
    /// A parameter the kernels divide by (CELU's alpha, softplus' beta) is computed as specified where its
    /// magnitude lies in [2^-126, 2^126] (1.2e-38 to 8.5e37): WGSL bounds division only for such divisors, and
    /// NVIDIA's drivers divide through a reciprocal that flushes to 0 past 2^126 (and flush a subnormal beta
    /// itself).
    pub const fn params(self) -> [f32; 2] {
        match self {
            Activation::LeakyRelu { negative_slope } => [negative_slope, 0.0],
            Activation::Elu { alpha } | Activation::Celu { alpha } => [alpha, 0.0],
            Activation::Swish { beta } => [beta, 0.0],
            Activation::Softplus { beta, threshold } => [beta, threshold],
            Activation::Hardtanh { min_val, max_val } => [min_val, max_val],
            Activation::Hardshrink { lambd } | Activation::Softshrink { lambd } => [lambd, 0.0],
            Activation::Threshold { threshold, value } => [threshold, value],
            _ => [0.0, 0.0],
        }
    }

    /// Checks the parameters: finite, `alpha != 0` for CELU, `beta > 0` for softplus, `min_val <= max_val`,
    /// `lambd >= 0` for softshrink (as PyTorch; hardshrink takes any lambd, a negative one maps nothing to 0), and
    /// for [`Activation::Custom`] an id that a [`crate::CustomActivation`] registered (so that `Mlp::new` refuses
    /// an unknown one rather than its first step) under a name it accepts (see [`crate::CustomActivation::new`];
    /// [`Error::InvalidArgument`] with `op` `"CustomActivation::new"` otherwise).
    pub fn validate(self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidArgument {
                op: self.name(),
                reason,
            })
        };
        let [p0, p1] = self.params();
        if !p0.is_finite() || !p1.is_finite() {
            return bad(format!("parameters must be finite, got {p0}, {p1}"));
        }
        match self {
            Activation::Celu { alpha: 0.0 } => bad("alpha must be nonzero".into()),
            Activation::Softplus { beta, .. } if beta <= 0.0 => {
                bad(format!("beta must be positive, got {beta}"))
            }
            Activation::Hardtanh { min_val, max_val } if min_val > max_val => bad(format!(
                "min_val {min_val} must not exceed max_val {max_val}"
            )),
            Activation::Softshrink { lambd } if lambd < 0.0 => {
                bad(format!("lambd must not be negative, got {lambd}"))
            }
            Activation::Custom { id } => match crate::custom::lookup(id) {
                None => bad(format!(
                    "custom activation {id:#x} is not registered: no CustomActivation was created with it"
                )),
                Some(registered) => match &registered.name_error {
                    Some(why) => Err(Error::InvalidArgument {
                        op: "CustomActivation::new",
                        reason: why.clone(),
                    }),
                    None => Ok(()),
                },
            },
            _ => Ok(()),
        }
    }

    /// The WGSL constants `const ACT_<NAME>: u32 = <id>u;` for every variant, and `ACT_CUSTOM` for a
    /// user-defined activation, prepended to the shader library.
    pub fn wgsl_ids() -> String {
        let mut ids: String = Self::ALL
            .iter()
            .map(|a| {
                format!(
                    "const ACT_{}: u32 = {}u;\n",
                    a.name().to_ascii_uppercase(),
                    a.id()
                )
            })
            .collect();
        ids.push_str(&format!("const ACT_CUSTOM: u32 = {CUSTOM_ID}u;\n"));
        ids
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
