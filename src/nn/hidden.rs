//! What a hidden layer of an [`crate::Mlp`] computes after its linear map `Z = X W + b`:
//!
//! | kind | layer output `Y` | linear width | parameters besides `W`, `b` |
//! |---|---|---|---|
//! | [`Hidden::Act`]`(f)` | `f(Z)`, fused into the matmul's epilogue | `u` | none |
//! | [`Hidden::Gated`]`(f)` | `Z = [A \| G]` split over its last dimension, `Y = A * f(G)` | `2u` | none |
//! | [`Hidden::Learnable`] | `f(Z; p)`, `p` of shape `[1]` or `[u]` (one per channel) | `u` | `p`, trained |
//! | [`Hidden::Rrelu`]`(r)` | training: `Z` with a random slope per negative element; evaluation: the leaky ReLU at the mean slope | `u` | none |
//!
//! `u` is the layer's size in [`crate::Mlp::sizes`]: the next layer always sees `u` inputs. A gated layer is
//! PyTorch's `Linear(in, 2u)` followed by the gated unit (`nn.GLU()` for [`Gated::GLU`]: the first half is the
//! value, the second the gate). A learnable layer's `p` is trained by the network's optimizer with its own
//! state; PyTorch's defaults start it at `0.25` (PReLU), `1` (Swish's beta) and `1` (ELU's alpha). A randomized
//! leaky ReLU layer draws new slopes every training step (from the network's noise seed, the step and the
//! layer: [`crate::Mlp::noise_seed`]), and evaluates, predicts and computes losses outside training with their
//! mean, as PyTorch's `nn.RReLU` in `eval()` mode.

use crate::nn::init::Init;
use crate::{Activation, Error, Gated, Learnable, Result, Rrelu};

/// One hidden layer's kind (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hidden {
    /// A plain activation `f(Z)`.
    Act(Activation),
    /// A gated unit over a linear map to twice the layer's width.
    Gated(Gated),
    /// An activation with a trained parameter.
    Learnable {
        /// Which activation.
        kind: Learnable,
        /// The parameter's initial value (every element).
        init: f32,
        /// One parameter per unit (`[u]`, as `nn.PReLU(num_parameters=u)`) instead of one shared (`[1]`).
        per_channel: bool,
    },
    /// The randomized leaky ReLU ([`Rrelu`]): random slopes in training, their mean in evaluation.
    Rrelu(Rrelu),
}

impl From<Activation> for Hidden {
    fn from(act: Activation) -> Self {
        Hidden::Act(act)
    }
}

impl From<Rrelu> for Hidden {
    fn from(r: Rrelu) -> Self {
        Hidden::Rrelu(r)
    }
}

impl From<Gated> for Hidden {
    fn from(gated: Gated) -> Self {
        Hidden::Gated(gated)
    }
}

/// One shared parameter at PyTorch's initial value ([`Hidden::default_init`]), as `nn.PReLU()`.
impl From<Learnable> for Hidden {
    fn from(kind: Learnable) -> Self {
        Hidden::learnable(kind, false)
    }
}

impl Hidden {
    /// A learnable layer at PyTorch's initial value, one parameter per unit when `per_channel`.
    pub const fn learnable(kind: Learnable, per_channel: bool) -> Hidden {
        Hidden::Learnable {
            kind,
            init: Hidden::default_init(kind),
            per_channel,
        }
    }

    /// PyTorch's initial parameter: `0.25` for PReLU (`nn.PReLU(init=0.25)`), `1` for Swish's beta (Swish-1 is
    /// SiLU) and ELU's alpha (`nn.ELU(alpha=1.0)`).
    pub const fn default_init(kind: Learnable) -> f32 {
        match kind {
            Learnable::Prelu => 0.25,
            Learnable::Swish | Learnable::Elu => 1.0,
        }
    }

    /// The plain activation of an [`Hidden::Act`] layer; `None` for gated, learnable and randomized leaky ReLU
    /// layers.
    pub const fn plain(self) -> Option<Activation> {
        match self {
            Hidden::Act(act) => Some(act),
            _ => None,
        }
    }

    /// The width of the linear map feeding a layer of `units` outputs: `2 units` when gated, else `units`
    /// (`usize::MAX` where `2 units` is past it: no layer that wide can be made, and the size checks say so).
    pub const fn linear_width(self, units: usize) -> usize {
        match self {
            Hidden::Gated(_) => units.saturating_mul(2),
            _ => units,
        }
    }

    /// Elements of the trained activation parameter of a layer of `units` outputs: 0 (none), 1 or `units`.
    pub const fn param_len(self, units: usize) -> usize {
        match self {
            Hidden::Learnable {
                per_channel: true, ..
            } => units,
            Hidden::Learnable { .. } => 1,
            _ => 0,
        }
    }

    /// The initialisation scheme of the linear map: a plain activation's ([`Init::for_activation`]), a gated
    /// unit's gate's, He for the learnable ones (PReLU, Swish and ELU are rectifier-like), and the randomized
    /// leaky ReLU's evaluation activation's (its leaky ReLU's).
    pub fn init(self) -> Init {
        match self {
            Hidden::Act(act) => Init::for_activation(act),
            Hidden::Gated(g) => Init::for_activation(g.gate),
            Hidden::Learnable { .. } => Init::He,
            Hidden::Rrelu(r) => Init::for_activation(r.eval_activation()),
        }
    }

    /// Checks the activation's constants and that a learnable parameter starts finite.
    pub fn validate(self) -> Result<()> {
        match self {
            Hidden::Act(act) => act.validate(),
            Hidden::Gated(g) => g.gate.validate(),
            Hidden::Learnable { kind, init, .. } if !init.is_finite() => {
                Err(Error::InvalidArgument {
                    op: kind.name(),
                    reason: format!("the initial parameter must be finite, got {init}"),
                })
            }
            Hidden::Learnable { .. } => Ok(()),
            Hidden::Rrelu(r) => r.validate(),
        }
    }

    /// A readable name: the activation's (`leaky_relu`), the gated unit's (`swiglu`; `gated_tanh` for a gate
    /// [`Gated::ALL`] does not name, as [`Gated::name`]), the learnable one's (`prelu`, with `_channel` appended
    /// for one parameter per unit: `prelu_channel`), or `rrelu`; with the constants where they are not the
    /// kind's defaults, as [`crate::nn::checkpoint::hidden_spec`] writes them (`leaky_relu(0.1)`,
    /// `rrelu(0.05,0.2)`, `gated(leaky_relu(0.1))`). A user-defined activation is its name (`isru`, and
    /// `gated_isru` as a gate). [`Hidden::from_name`] reads every valid kind's name back but a learnable
    /// layer's initial value (the name does not hold it).
    pub fn name(self) -> String {
        match self {
            Hidden::Learnable {
                kind,
                per_channel: true,
                ..
            } => format!("{}_channel", kind.name()),
            Hidden::Learnable { kind, .. } => kind.name().to_string(),
            Hidden::Act(act) if default_constants(act) => act.name().to_string(),
            Hidden::Gated(g) if default_constants(g.gate) => g.name(),
            Hidden::Gated(g) => format!("gated({})", Hidden::Act(g.gate).name()),
            Hidden::Rrelu(r) if r == Rrelu::DEFAULT => Rrelu::NAME.to_string(),
            Hidden::Act(_) | Hidden::Rrelu(_) => crate::nn::checkpoint::hidden_spec(self, 0),
        }
    }

    /// The kind a [`Hidden::name`] names (surrounding whitespace ignored): every [`Activation`] name (as
    /// [`Activation::from_name`]), a user-defined activation registered in this process by its name, the
    /// gated units of [`Gated::ALL`] (`glu`, `reglu`, `geglu`, `geglu_tanh`, `swiglu`) and `gated_<activation
    /// name>` for another gate, the learnable activations at PyTorch's initial value, shared (`prelu`,
    /// `swish_learnable`, `elu_learnable`) or per unit (`prelu_channel`, ...), and `rrelu` (PyTorch's range,
    /// [`Rrelu::DEFAULT`]), each with its default constants; or a plain or gated activation or `rrelu` with its
    /// constants, as [`crate::nn::checkpoint::parse_hidden_spec`] reads them (`leaky_relu(0.1)`,
    /// `softplus(2,20)`, `rrelu(0.05,0.2)`, `gated(tanh)`). `None` for any other name, for constants the kind
    /// refuses ([`Hidden::validate`]: `elu(inf)`, `leaky_relu(NaN)`), and for a learnable spec of
    /// `parse_hidden_spec` (`prelu(64)`: a parameter's length, which only a checkpoint knows the meaning of).
    pub fn from_name(name: &str) -> Option<Hidden> {
        Hidden::parse_name(name).ok().flatten()
    }

    /// [`Hidden::from_name`] with the reason for a refusal: `Ok(None)` for a name of no kind, the kind's
    /// [`Hidden::validate`] error for constants it refuses (`elu(inf)`: what a command line should print).
    pub fn parse_name(name: &str) -> Result<Option<Hidden>> {
        use crate::nn::checkpoint::{parse_activation_spec, parse_hidden_spec};
        let name = name.trim();
        let learnable = || {
            Learnable::ALL
                .into_iter()
                .flat_map(|kind| {
                    [false, true].map(|per_channel| Hidden::learnable(kind, per_channel))
                })
                .find(|h| h.name() == name)
        };
        let spec = || parse_hidden_spec(name).filter(|h| !matches!(h, Hidden::Learnable { .. }));
        // `gated_<activation name>`, as Gated::name writes a gate Gated::ALL does not name.
        let other_gate = || {
            let gate = name.strip_prefix("gated_")?;
            let gate = parse_activation_spec(gate).or_else(|| crate::custom::by_name(gate).ok())?;
            Some(Hidden::Gated(Gated { gate }))
        };
        // Last: a registration under a built-in's name (refused when used) does not hide the built-in.
        let custom = || crate::custom::by_name(name).ok().map(Hidden::Act);
        let Some(kind) = learnable()
            .or_else(spec)
            .or_else(other_gate)
            .or_else(custom)
        else {
            return Ok(None);
        };
        kind.validate()?;
        Ok(Some(kind))
    }

    /// The name of the trained parameter in a safetensors file, after the module index: `weight` for PReLU (as
    /// `nn.PReLU` names it), `beta` for Swish and `alpha` for ELU; `None` without one.
    pub const fn param_name(self) -> Option<&'static str> {
        match self {
            Hidden::Learnable { kind, .. } => Some(match kind {
                Learnable::Prelu => "weight",
                Learnable::Swish => "beta",
                Learnable::Elu => "alpha",
            }),
            _ => None,
        }
    }
}

/// Whether `act` has its kind's default constants (a user-defined activation has none): what
/// [`Activation::from_name`] gives for its name.
fn default_constants(act: Activation) -> bool {
    matches!(act, Activation::Custom { .. }) || Activation::from_name(act.name()) == Some(act)
}

/// The printed name, [`Hidden::name`].
impl std::fmt::Display for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The items of a comma-separated list whose items may hold commas inside parentheses (`relu,rrelu(0.1,0.3)` is
/// two items), untrimmed and empty ones kept; `None` where the parentheses do not balance. How the study's
/// `--activations`, `examples/accuracy.rs`'s `--only` and a checkpoint's list of hidden-layer specs split.
pub fn split_list(list: &str) -> Option<Vec<&str>> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, ch) in list.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    items.push(&list[start..]);
    Some(items)
}

/// The seed of layer `layer`'s randomized leaky ReLU draws in training step `step` (the first step is 1) of a
/// network whose noise seed is `noise_seed` ([`crate::Mlp::noise_seed`]): SplitMix64's finaliser applied in
/// turn to the noise seed (with a constant mixed in first: a network's noise seed is its initialisation's seed
/// by default, and [`crate::verify::Rng`], which draws the weights, is SplitMix64 too), then with the step,
/// then with the layer mixed in, so that every step and layer draws independent slopes. A step split into passes ([`crate::Mlp::set_train_rows`]) draws what one pass would:
/// elements are counted over the whole batch.
pub fn rrelu_layer_seed(noise_seed: u64, step: u64, layer: usize) -> u64 {
    fn mix(z: u64) -> u64 {
        let z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// "RReLU_ns" in ASCII: keeps the draws off the initialisation's stream.
    const DOMAIN: u64 = 0x5252_654c_555f_6e73;
    mix(mix(mix(noise_seed ^ DOMAIN) ^ step) ^ layer as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_outside_parentheses() {
        assert_eq!(
            split_list("relu,rrelu(0.1,0.3), gated(softplus(1,20)),"),
            Some(vec!["relu", "rrelu(0.1,0.3)", " gated(softplus(1,20))", ""])
        );
        assert_eq!(split_list(""), Some(vec![""]));
        for unbalanced in ["elu(1", "relu)", "a),(b"] {
            assert_eq!(split_list(unbalanced), None, "{unbalanced}");
        }
    }

    #[test]
    fn a_gated_layer_is_twice_as_wide_and_saturates() {
        let glu = Hidden::Gated(crate::Gated::GLU);
        assert_eq!(glu.linear_width(3), 6);
        assert_eq!(glu.linear_width(usize::MAX), usize::MAX);
        assert_eq!(Hidden::Act(crate::Activation::Relu).linear_width(3), 3);
    }

    #[test]
    fn every_kind_reads_back_from_its_name() {
        let learnable = Learnable::ALL
            .into_iter()
            .flat_map(|k| [false, true].map(|c| Hidden::learnable(k, c)));
        let kinds: Vec<Hidden> = Activation::ALL
            .into_iter()
            .map(Hidden::Act)
            .chain(Gated::ALL.map(Hidden::Gated))
            .chain(learnable)
            .chain([Hidden::Rrelu(Rrelu::DEFAULT)])
            .collect();
        let mut names: Vec<String> = kinds.iter().map(|h| h.name()).collect();
        for (h, name) in kinds.iter().zip(&names) {
            assert_eq!(Hidden::from_name(name), Some(*h), "{name}");
        }
        assert_eq!(
            Hidden::learnable(Learnable::Prelu, true).name(),
            "prelu_channel"
        );
        names.sort();
        names.dedup();
        assert_eq!(names.len(), kinds.len(), "two kinds share a name");
        for unknown in [
            "",
            "prelu_",
            "relu(0)",
            "swiglu_channel",
            "RELU",
            "prelu(4)",
            "rrelu(0.5,0.25)",
            "elu(inf)",
            "leaky_relu(NaN)",
            "gated_glu",
            "gated_prelu",
        ] {
            assert_eq!(Hidden::from_name(unknown), None, "{unknown}");
        }
        // Constants other than the defaults are in the name, and read back.
        let with_constants = [
            Hidden::Act(Activation::LeakyRelu {
                negative_slope: 0.1,
            }),
            Hidden::Act(Activation::Softplus {
                beta: 2.0,
                threshold: 20.0,
            }),
            Hidden::Gated(Gated {
                gate: Activation::Tanh,
            }),
            Hidden::Rrelu(Rrelu::new(0.05, 0.2).unwrap()),
        ];
        let names = with_constants.map(|h| h.name());
        assert_eq!(
            names,
            [
                "leaky_relu(0.1)",
                "softplus(2,20)",
                "gated_tanh",
                "rrelu(0.05,0.2)"
            ]
        );
        for (h, name) in with_constants.iter().zip(&names) {
            assert_eq!(Hidden::from_name(name), Some(*h), "{name}");
        }
        // A gate with constants; the other spellings of a gated unit; whitespace around a name.
        let leaky_gate = Hidden::Gated(Gated {
            gate: Activation::LeakyRelu {
                negative_slope: 0.1,
            },
        });
        assert_eq!(leaky_gate.name(), "gated(leaky_relu(0.1))");
        assert_eq!(leaky_gate.to_string(), "gated(leaky_relu(0.1))");
        // The parts print as the layers they make.
        assert_eq!(Gated::SWIGLU.to_string(), "swiglu");
        let Hidden::Gated(leaky) = leaky_gate else {
            unreachable!()
        };
        assert_eq!(leaky.to_string(), "gated(leaky_relu(0.1))");
        // The reason for invalid constants; a chain of prefixes is no name.
        assert!(matches!(
            Hidden::parse_name("elu(inf)"),
            Err(crate::Error::InvalidArgument { op: "elu", .. })
        ));
        assert!(matches!(Hidden::parse_name("elu(1)"), Ok(Some(_))));
        assert!(matches!(Hidden::parse_name("no_such"), Ok(None)));
        assert_eq!(Hidden::from_name("gated_gated_tanh"), None);
        assert_eq!(Learnable::Prelu.to_string(), "prelu");
        assert_eq!(Rrelu::DEFAULT.to_string(), "rrelu");
        assert_eq!(
            Rrelu::new(0.05, 0.2).unwrap().to_string(),
            "rrelu(0.05,0.2)"
        );
        // Extreme constants in exponent form, not 30 digits.
        let tiny = Hidden::Rrelu(Rrelu::new(1e-30, 0.5).unwrap());
        assert_eq!(tiny.name(), "rrelu(1e-30,0.5)");
        assert_eq!(Hidden::from_name(&tiny.name()), Some(tiny));
        assert_eq!(
            Hidden::from_name("gated(leaky_relu(0.1))"),
            Some(leaky_gate)
        );
        let tanh_gate = Some(with_constants[2]);
        assert_eq!(Hidden::from_name("gated(tanh)"), tanh_gate);
        assert_eq!(Hidden::from_name(" gated_tanh "), tanh_gate);
        assert_eq!(
            Hidden::from_name("gated_silu"),
            Some(Hidden::Gated(Gated::SWIGLU))
        );
        assert_eq!(
            Hidden::from_name(" prelu_channel\t"),
            Some(Hidden::learnable(Learnable::Prelu, true))
        );
    }
}
