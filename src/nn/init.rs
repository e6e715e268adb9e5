//! Seeded initialisation of a dense network's parameters, shared by the GPU [`crate::nn::Mlp`] and the f64
//! reference [`crate::cpu::mlp::Mlp`], so both start from the same bits.
//!
//! Weights are drawn uniformly from `[-a, a]` with the variance each scheme prescribes (`Var = a^2 / 3`), biases
//! start at zero. The scheme follows the activation that reads the layer's output (the output layer is linear):
//!
//! | scheme | variance | `a` | activations |
//! |---|---|---|---|
//! | He (Kaiming) | `2 / fan_in` | `sqrt(6 / fan_in)` | rectifier-like: ReLU, ReLU6, leaky ReLU, squared ReLU, ELU, CELU, GELU (both), QuickGELU, SiLU, Swish, Mish, Softplus, HardSwish |
//! | LeCun | `1 / fan_in` | `sqrt(3 / fan_in)` | SELU (self-normalising needs it) |
//! | Xavier (Glorot) | `2 / (fan_in + fan_out)` | `sqrt(6 / (fan_in + fan_out))` | everything else: identity (the output layer), tanh, sigmoid, softsign, hardtanh, hardsigmoid, log-sigmoid, custom |
//!
//! The draws come from SplitMix64 seeded with `seed`, layer by layer, row-major over `W [fan_in, fan_out]`,
//! computed in f64 and rounded once to f32: the same seed gives the same bits on every machine.
//!
//! A gated layer ([`Hidden::Gated`]) draws its `[fan_in, 2 units]` weight with the scheme of its gate's
//! activation; a learnable one ([`Hidden::Learnable`]) with He (see [`Hidden::init`]).

use crate::nn::Hidden;
use crate::verify::Rng;
use crate::Activation;

/// An initialisation scheme (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// `Var(w) = 2 / fan_in`.
    He,
    /// `Var(w) = 1 / fan_in`.
    LeCun,
    /// `Var(w) = 2 / (fan_in + fan_out)`.
    Xavier,
}

impl Init {
    /// The scheme for a layer whose output goes through `act`.
    pub fn for_activation(act: Activation) -> Init {
        use Activation::*;
        match act {
            Relu
            | Relu6
            | LeakyRelu { .. }
            | ReluSquared
            | Elu { .. }
            | Celu { .. }
            | Gelu
            | GeluTanh
            | QuickGelu
            | Silu
            | Swish { .. }
            | Mish
            | Softplus { .. }
            | Hardswish => Init::He,
            Selu => Init::LeCun,
            _ => Init::Xavier,
        }
    }

    /// Half-width `a` of the uniform distribution `U(-a, a)` for a `[fan_in, fan_out]` weight.
    pub fn bound(self, fan_in: usize, fan_out: usize) -> f64 {
        let (i, o) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        match self {
            Init::He => (6.0 / i).sqrt(),
            Init::LeCun => (3.0 / i).sqrt(),
            Init::Xavier => (6.0 / (i + o)).sqrt(),
        }
    }
}

/// `(W, b)` of every layer of a network with layer sizes `sizes` (input first) and `hidden` activations (one per
/// hidden layer; the output layer is linear), from `seed`: `W_l` is `[sizes[l], sizes[l + 1]]` row-major, `b_l`
/// zeros. `hidden` shorter than needed counts as identity. The same draws as [`init_layers`] with every layer
/// plain.
pub fn init_params(sizes: &[usize], hidden: &[Activation], seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
    let hidden: Vec<Hidden> = hidden.iter().map(|&a| Hidden::Act(a)).collect();
    init_layers(sizes, &hidden, seed)
}

/// `(W, b)` of every linear map of a network with layer kinds `hidden` ([`Hidden`]; the output layer is
/// linear, a missing kind counts as identity), from `seed`: `W_l` is `[sizes[l], w_l]` row-major with
/// `w_l = hidden[l].linear_width(sizes[l + 1])` (`2 sizes[l + 1]` for a gated layer, drawn with its gate's
/// scheme and `fan_out = w_l`), `b_l` zeros of length `w_l`. Learnable parameters are not drawn: they start at
/// their layer's `init`.
pub fn init_layers(sizes: &[usize], hidden: &[Hidden], seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    sizes
        .windows(2)
        .enumerate()
        .map(|(l, io)| {
            let kind = hidden
                .get(l)
                .copied()
                .unwrap_or(Hidden::Act(Activation::Identity));
            let (fan_in, fan_out) = (io[0], kind.linear_width(io[1]));
            let a = kind.init().bound(fan_in, fan_out);
            let w = (0..fan_in * fan_out).map(|_| rng.uniform(-a, a)).collect();
            (w, vec![0.0; fan_out])
        })
        .collect()
}
