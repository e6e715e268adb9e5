//! What the study compares: one hidden-layer kind per row, a plain [`Activation`], a [`Gated`] unit, a
//! [`Learnable`] activation or the randomized leaky ReLU, with the name it has on the command line and in every output, and the parameter
//! count of the network it makes.
//!
//! Names: every [`Activation`] name (the shrinkage functions, [`Activation::SHRINK`], are not in the default set
//! `plain` but in their own, `shrink`; `threshold`, PyTorch's `Threshold(0.1, 20)`, a replacement of values
//! rather than a hidden activation, is in none but `--all`); the gated units `glu`, `reglu`, `geglu`, `geglu_tanh`, `swiglu`
//! ([`Gated::ALL`]); the learnable ones `prelu`, `swish_learnable`, `elu_learnable` (one parameter shared by
//! the layer, as `nn.PReLU()`) and `prelu_channel`, `swish_learnable_channel`, `elu_learnable_channel` (one per
//! unit, as `nn.PReLU(num_parameters=u)`), each starting at PyTorch's value ([`Hidden::default_init`]); and
//! `rrelu`, PyTorch's `RReLU()` (slopes drawn in `[1/8, 1/3]` each training step, their mean in evaluation), in
//! `--all` and by name. A plain or gated activation, or `rrelu`, with constants other than its defaults is named
//! with them ([`Hidden::name`]: `leaky_relu(0.1)`, `rrelu(0.05,0.2)`, `gated(leaky_relu(0.1))`), by name only.

use std::fmt;

use crate::{Activation, Gated, Hidden, Learnable, Rrelu};

/// One hidden-layer kind the study trains (the same kind in every hidden layer of a run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate(pub Hidden);

impl Candidate {
    /// The learnable candidates of [`Candidate::extended`]: PReLU shared and per channel, Swish's beta and ELU's
    /// alpha shared.
    pub const LEARNABLE: [Candidate; 4] = [
        Candidate(Hidden::learnable(Learnable::Prelu, false)),
        Candidate(Hidden::learnable(Learnable::Prelu, true)),
        Candidate(Hidden::learnable(Learnable::Swish, false)),
        Candidate(Hidden::learnable(Learnable::Elu, false)),
    ];

    /// The plain activations the study compares by default: [`Activation::ALL`] but the shrinkage functions
    /// ([`Activation::SHRINK`]) and threshold, 22 kinds.
    pub fn plain_all() -> Vec<Candidate> {
        Activation::ALL
            .into_iter()
            .filter(|a| {
                !Activation::SHRINK.contains(a) && !matches!(a, Activation::Threshold { .. })
            })
            .map(Candidate::from)
            .collect()
    }

    /// The shrinkage functions ([`Activation::SHRINK`]): hardshrink, softshrink, tanhshrink.
    pub fn shrink() -> Vec<Candidate> {
        Activation::SHRINK
            .into_iter()
            .map(Candidate::from)
            .collect()
    }

    /// The gated units ([`Gated::ALL`]) and the learnable activations ([`Candidate::LEARNABLE`]).
    pub fn gated_and_learnable() -> Vec<Candidate> {
        Gated::ALL
            .into_iter()
            .map(Candidate::from)
            .chain(Candidate::LEARNABLE)
            .collect()
    }

    /// Every plain activation (the default set, then the shrinkage functions and threshold), the randomized
    /// leaky ReLU, then the gated and learnable ones (`--all`).
    pub fn extended() -> Vec<Candidate> {
        let mut all = Candidate::plain_all();
        all.extend(Candidate::shrink());
        all.push(Candidate::from(Activation::threshold()));
        all.push(Candidate(Hidden::Rrelu(Rrelu::DEFAULT)));
        all.extend(Candidate::gated_and_learnable());
        all
    }

    /// Every name [`Candidate::from_name`] accepts, plain activations first.
    pub fn names() -> Vec<String> {
        let mut names: Vec<String> = Candidate::extended().iter().map(|c| c.name()).collect();
        for kind in [Learnable::Swish, Learnable::Elu] {
            names.push(Candidate(Hidden::learnable(kind, true)).name());
        }
        names
    }

    /// The candidate with this name (see the module documentation; [`Hidden::from_name`]).
    pub fn from_name(name: &str) -> Option<Candidate> {
        Hidden::from_name(name).map(Candidate)
    }

    /// The layer kind.
    pub const fn hidden(self) -> Hidden {
        self.0
    }

    /// The name on the command line and in the outputs ([`Hidden::name`]): the activation's, the gated unit's,
    /// the learnable one's with `_channel` appended when it has a parameter per unit.
    pub fn name(self) -> String {
        self.0.name()
    }

    /// `plain`, `gated`, `learnable` or `randomized`.
    pub const fn family(self) -> &'static str {
        match self.0 {
            Hidden::Act(_) => "plain",
            Hidden::Gated(_) => "gated",
            Hidden::Learnable { .. } => "learnable",
            Hidden::Rrelu(_) => "randomized",
        }
    }

    /// Whether the kernels count dead and saturated units for this kind (plain activations only).
    pub const fn counts_dead(self) -> bool {
        matches!(self.0, Hidden::Act(_))
    }

    /// What the learnable parameter is called in the report (`slope`, `beta`, `alpha`); `None` without one.
    pub const fn param_label(self) -> Option<&'static str> {
        match self.0 {
            Hidden::Learnable { kind, .. } => Some(match kind {
                Learnable::Prelu => "slope",
                Learnable::Swish => "beta",
                Learnable::Elu => "alpha",
            }),
            _ => None,
        }
    }

    /// Trained parameters of the network `sizes` (input first, output last) with this kind in every hidden
    /// layer: each linear map's weights and biases (`2u` wide for a gated layer of `u` units) plus the
    /// learnable activation's parameters.
    pub fn param_count(self, sizes: &[usize]) -> usize {
        let last = sizes.len().saturating_sub(2);
        sizes
            .windows(2)
            .enumerate()
            .map(|(l, w)| {
                let (fan_in, units) = (w[0], w[1]);
                if l < last {
                    let width = self.0.linear_width(units);
                    fan_in * width + width + self.0.param_len(units)
                } else {
                    fan_in * units + units
                }
            })
            .sum()
    }

    /// Hidden widths for this kind so that its network has about as many parameters as the plain network with
    /// `hidden` (`features` inputs, `classes` outputs): `hidden` itself for plain and learnable kinds (a
    /// learnable layer adds at most `u` parameters), and for gated kinds every width scaled by one common factor
    /// (rounded, at least 1), the factor chosen on a grid of 0.001 to come closest to the plain count.
    pub fn matched_hidden(self, features: usize, hidden: &[usize], classes: usize) -> Vec<usize> {
        let sizes = |h: &[usize]| -> Vec<usize> {
            std::iter::once(features)
                .chain(h.iter().copied())
                .chain(std::iter::once(classes))
                .collect()
        };
        if !matches!(self.0, Hidden::Gated(_)) {
            return hidden.to_vec();
        }
        let target = Candidate(Hidden::Act(Activation::Relu)).param_count(&sizes(hidden)) as i64;
        let mut best = (i64::MAX, hidden.to_vec());
        for i in 1..=1000 {
            let k = f64::from(i) / 1000.0;
            let h: Vec<usize> = hidden
                .iter()
                .map(|&w| ((w as f64 * k).round() as usize).max(1))
                .collect();
            let miss = (self.param_count(&sizes(&h)) as i64 - target).abs();
            if miss < best.0 {
                best = (miss, h);
            }
        }
        best.1
    }
}

impl From<Activation> for Candidate {
    fn from(act: Activation) -> Self {
        Candidate(Hidden::Act(act))
    }
}

impl From<Gated> for Candidate {
    fn from(g: Gated) -> Self {
        Candidate(Hidden::Gated(g))
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let names = Candidate::names();
        assert_eq!(names.len(), 22 + 3 + 1 + 1 + 5 + 4 + 2);
        for n in &names {
            assert_eq!(Candidate::from_name(n).map(|c| c.name()).as_ref(), Some(n));
            assert_eq!(names.iter().filter(|m| *m == n).count(), 1, "{n}");
        }
        assert_eq!(
            Candidate::from_name("prelu_channel"),
            Some(Candidate(Hidden::learnable(Learnable::Prelu, true)))
        );
        assert_eq!(
            Candidate::from_name("swiglu"),
            Some(Candidate::from(Gated::SWIGLU))
        );
        assert_eq!(Candidate::from_name("glu_channel"), None);
        assert_eq!(Candidate::extended().len(), 36);
        assert_eq!(Candidate::plain_all().len(), 22);
        assert!(Candidate::plain_all()
            .iter()
            .all(|c| !Candidate::shrink().contains(c)));
    }

    #[test]
    fn parameter_counts() {
        let sizes = [2, 64, 64, 64, 3];
        let relu = Candidate::from(Activation::Relu);
        assert_eq!(relu.param_count(&sizes), 192 + 2 * 4160 + 195);
        let glu = Candidate::from(Gated::GLU);
        // 2 -> 128, 64 -> 128 twice, 64 -> 3.
        assert_eq!(glu.param_count(&sizes), 384 + 2 * 8320 + 195);
        let prelu = Candidate(Hidden::learnable(Learnable::Prelu, false));
        let prelu_c = Candidate(Hidden::learnable(Learnable::Prelu, true));
        assert_eq!(prelu.param_count(&sizes), relu.param_count(&sizes) + 3);
        assert_eq!(prelu_c.param_count(&sizes), relu.param_count(&sizes) + 192);
    }

    #[test]
    fn matched_widths_come_close_to_the_plain_count() {
        let glu = Candidate::from(Gated::GLU);
        let h = glu.matched_hidden(2, &[64, 64, 64], 3);
        assert_eq!(h, vec![45, 45, 45]);
        let sizes = |h: &[usize]| [&[2][..], h, &[3]].concat();
        let plain = Candidate::from(Activation::Relu).param_count(&sizes(&[64, 64, 64])) as f64;
        let gated = glu.param_count(&sizes(&h)) as f64;
        assert!((gated / plain - 1.0).abs() < 0.02, "{gated} vs {plain}");
        let prelu = Candidate(Hidden::learnable(Learnable::Prelu, true));
        assert_eq!(prelu.matched_hidden(2, &[8, 4], 3), vec![8, 4]);
        assert_eq!(glu.matched_hidden(2, &[1], 3), vec![1]);
    }
}
