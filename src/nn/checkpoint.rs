//! An [`Mlp`]'s weights in a safetensors file, named and shaped as PyTorch names the state dict of
//!
//! ```text
//! torch.nn.Sequential(Linear(sizes[0], sizes[1]), Act_0(), Linear(sizes[1], sizes[2]), Act_1(), ..., Linear(.., sizes[L]))
//! ```
//!
//! Layer `l`'s weight is `"{2l}.weight"`, shape `[sizes[l + 1], sizes[l]]` (`[out_features, in_features]`,
//! the transpose of this crate's `W [in, out]`: the transpose is taken on save and undone on load), and its
//! bias is `"{2l}.bias"`, shape `[sizes[l + 1]]`. Every activation occupies one index between the linear layers,
//! whether or not PyTorch has a module for it, so `Linear` sits at the even indices. Files are F32; loading
//! also accepts F16, BF16 (exact) and F64 (rounded to nearest).
//!
//! Gated and learnable hidden layers ([`crate::nn::Hidden`]):
//!
//! | layer `l` | tensors |
//! |---|---|
//! | gated, `u` units | `"{2l}.weight" [2u, sizes[l]]`, `"{2l}.bias" [2u]`: PyTorch's `Linear(sizes[l], 2u)` before `nn.GLU()` (value half first, gate half second) |
//! | PReLU | the linear map as usual, and `"{2l + 1}.weight"` of shape `[1]` or `[u]`, as `nn.PReLU(num_parameters)` names its slope |
//! | Swish with learnable beta | `"{2l + 1}.beta"`, `[1]` or `[u]` (a module with a parameter named `beta`) |
//! | ELU with learnable alpha | `"{2l + 1}.alpha"`, `[1]` or `[u]` |
//!
//! The metadata records what the tensors cannot say (safetensors metadata values are strings):
//!
//! | key | value |
//! |---|---|
//! | `format` | `pt`, as `safetensors.torch` writes it |
//! | `actgpu.sizes` | layer sizes, input first, comma-separated: `2,64,64,3` |
//! | `actgpu.activations` | each hidden layer's kind by name with its parameters: `gelu,leaky_relu(0.01),softplus(1,20)`; gated units as `glu`, `reglu`, `geglu`, `geglu_tanh`, `swiglu` or `gated(<activation>)` for another gate; learnable activations as `prelu(n)`, `swish_learnable(n)`, `elu_learnable(n)` with `n` the parameter's length (1: shared); a randomized leaky ReLU as `rrelu(lower,upper)` (a bare `rrelu` reads as PyTorch's range); a user-defined activation as `custom(<name>)`, its [`crate::CustomActivation`]'s name (`gated(custom(<name>))` as a gate) |
//!
//! So that a model trained here loads in PyTorch (with the matching activation modules):
//!
//! ```text
//! model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.GELU(), torch.nn.Linear(64, 3))
//! model.load_state_dict(safetensors.torch.load_file("model.safetensors"))
//! ```
//!
//! and a PyTorch model's `save_file(model.state_dict(), path)` loads here with [`Mlp::load_safetensors`]: every
//! `nn.Linear` with its bias (one built with `bias=False` has no `"{2l}.bias"`, which is
//! [`Error::MissingTensor`]; save zeros under that name to load it), the modules numbered as above (a
//! `Dropout` between them, or `DataParallel`'s `module.` prefix, moves the names).
//!
//! A user-defined activation's WGSL and reference are not in the file, only its name: [`Mlp::from_safetensors`]
//! rebuilds the layer from the [`crate::CustomActivation`] registered under that name in the loading process
//! (create it first, with the same name and code), and returns [`Error::UnresolvedCustomActivation`] naming it
//! when there is none (or several with different WGSL). The `custom(..)` mark keeps its name apart from the
//! built-in names, which [`crate::CustomActivation::new`] refuses anyway: `relu` in a file is always
//! [`Activation::Relu`]. Files written before user-defined names were recorded say only `custom`; they load
//! through [`Mlp::load_weights`] into a network built with the activation.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::safetensors::{
    read_file, serialize_f32, write_file, F32Tensor, SafeTensors, TensorView,
};
use super::training_checkpoint::is_state;
use crate::nn::Hidden;
use crate::ops::loss::Loss;
use crate::ops::optim::Optimizer;
use crate::{Activation, Error, Gated, Gpu, Learnable, Mlp, Result, Rrelu};

/// Metadata key of the layer sizes.
pub const SIZES_KEY: &str = "actgpu.sizes";
/// Metadata key of the hidden activations.
pub const ACTIVATIONS_KEY: &str = "actgpu.activations";

/// The names of layer `l`'s weight and bias: `"{2l}.weight"`, `"{2l}.bias"`.
pub fn linear_names(l: usize) -> (String, String) {
    (format!("{}.weight", 2 * l), format!("{}.bias", 2 * l))
}

/// An activation as the metadata writes it: its name, with its parameters in parentheses where it has any
/// (`leaky_relu(0.01)`, `softplus(1,20)`). f32 values print as [`constant_spec`] writes them. A
/// user-defined activation is `custom(<its name>)` (`custom` alone for an id no [`crate::CustomActivation`]
/// registered, which nothing can read back).
pub fn activation_spec(act: Activation) -> String {
    let [p0, p1] = act.params();
    match act {
        Activation::Custom { id } => match crate::custom::name_of(id) {
            Some(name) => format!("{CUSTOM_PREFIX}{name})"),
            None => act.name().to_string(),
        },
        Activation::LeakyRelu { .. }
        | Activation::Elu { .. }
        | Activation::Celu { .. }
        | Activation::Swish { .. }
        | Activation::Hardshrink { .. }
        | Activation::Softshrink { .. } => format!("{}({})", act.name(), constant_spec(p0)),
        Activation::Softplus { .. }
        | Activation::Hardtanh { .. }
        | Activation::Threshold { .. } => {
            format!(
                "{}({},{})",
                act.name(),
                constant_spec(p0),
                constant_spec(p1)
            )
        }
        _ => act.name().to_string(),
    }
}

/// An f32 constant as a spec writes it: the shortest decimal that reads back to the same f32 (`0.1`, not
/// `0.100000001`), in exponent form where the plain form would spell out runs of zeros, below 1e-4 or from 1e16
/// in magnitude (`1e-30`, `-2.5e20`, not 31 digits; `0.0001`, `5`, `-0`, `inf`, `NaN` stay plain). Rust's `str::parse`
/// reads both forms back, as [`parse_activation_spec`] does.
pub fn constant_spec(v: f32) -> String {
    let magnitude = v.abs();
    if magnitude.is_finite() && magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// How [`activation_spec`] opens a user-defined activation's spec, `custom(<name>)`.
const CUSTOM_PREFIX: &str = "custom(";

/// The name in a user-defined activation's spec, `custom(<name>)`.
fn custom_spec_name(spec: &str) -> Option<&str> {
    let name = spec.trim().strip_prefix(CUSTOM_PREFIX)?.strip_suffix(')')?;
    Some(name.trim())
}

/// The activation an [`activation_spec`] names; `None` for an unknown name or wrong parameters. A built-in's
/// name is always the built-in. `custom(<name>)` is the [`crate::CustomActivation`] registered under that name
/// in this process (the most recent one, when several with the same WGSL are), and `None` when none is, or
/// several with different WGSL are (the file holds the name, not the code); `custom` alone (an unregistered
/// id's spec, or a file written before names were recorded) is `None`.
pub fn parse_activation_spec(spec: &str) -> Option<Activation> {
    if let Some(name) = custom_spec_name(spec) {
        return crate::custom::by_name(name).ok();
    }
    let (name, args) = match spec.trim().split_once('(') {
        Some((name, rest)) => {
            let args = rest.strip_suffix(')')?.split(',');
            let args: Option<Vec<f32>> = args.map(|a| a.trim().parse().ok()).collect();
            (name, args?)
        }
        None => (spec.trim(), Vec::new()),
    };
    let act = Activation::from_name(name.trim())?;
    Some(match (act, &args[..]) {
        (Activation::LeakyRelu { .. }, &[negative_slope]) => {
            Activation::LeakyRelu { negative_slope }
        }
        (Activation::Elu { .. }, &[alpha]) => Activation::Elu { alpha },
        (Activation::Celu { .. }, &[alpha]) => Activation::Celu { alpha },
        (Activation::Swish { .. }, &[beta]) => Activation::Swish { beta },
        (Activation::Hardshrink { .. }, &[lambd]) => Activation::Hardshrink { lambd },
        (Activation::Softshrink { .. }, &[lambd]) => Activation::Softshrink { lambd },
        (Activation::Softplus { .. }, &[beta, threshold]) => {
            Activation::Softplus { beta, threshold }
        }
        (Activation::Hardtanh { .. }, &[min_val, max_val]) => {
            Activation::Hardtanh { min_val, max_val }
        }
        (Activation::Threshold { .. }, &[threshold, value]) => {
            Activation::Threshold { threshold, value }
        }
        (act, []) => act,
        _ => return None,
    })
}

/// A hidden layer's kind as the metadata writes it: [`activation_spec`] for a plain activation, the gated
/// unit's name (`swiglu`; `gated(<activation spec>)` for a gate without one), or the learnable activation's
/// name with the length of its parameter for a layer of `units` outputs (`prelu(64)`, `swish_learnable(1)`), or
/// the randomized leaky ReLU with its range (`rrelu(0.125,0.33333334)`).
pub fn hidden_spec(kind: Hidden, units: usize) -> String {
    match kind {
        Hidden::Act(act) => activation_spec(act),
        Hidden::Gated(g) if Gated::ALL.contains(&g) => g.name(),
        Hidden::Gated(g) => format!("gated({})", activation_spec(g.gate)),
        Hidden::Learnable { kind: k, .. } => format!("{}({})", k.name(), kind.param_len(units)),
        Hidden::Rrelu(r) => format!(
            "{}({},{})",
            Rrelu::NAME,
            constant_spec(r.lower),
            constant_spec(r.upper)
        ),
    }
}

/// The kind a [`hidden_spec`] names; `None` where [`parse_activation_spec`] would give `None`. A learnable
/// layer comes back at its default initial value (the file holds the parameter), per channel when its length
/// is not 1. A randomized leaky ReLU's range must be valid ([`Rrelu::new`]); a bare `rrelu` is PyTorch's.
pub fn parse_hidden_spec(spec: &str) -> Option<Hidden> {
    let spec = spec.trim();
    if spec == Rrelu::NAME {
        return Some(Hidden::Rrelu(Rrelu::DEFAULT));
    }
    if let Some(inner) = spec
        .strip_prefix("rrelu(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (lower, upper) = inner.split_once(',')?;
        let r = Rrelu::new(lower.trim().parse().ok()?, upper.trim().parse().ok()?).ok()?;
        return Some(Hidden::Rrelu(r));
    }
    if let Some(g) = Gated::ALL.into_iter().find(|g| g.name() == spec) {
        return Some(Hidden::Gated(g));
    }
    if let Some(inner) = spec
        .strip_prefix("gated(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return parse_activation_spec(inner).map(|gate| Hidden::Gated(Gated { gate }));
    }
    if let Some((name, rest)) = spec.split_once('(') {
        if let Some(kind) = Learnable::ALL.into_iter().find(|k| k.name() == name.trim()) {
            let n: usize = rest.strip_suffix(')')?.trim().parse().ok()?;
            return (n > 0).then_some(Hidden::learnable(kind, n != 1));
        }
    }
    parse_activation_spec(spec).map(Hidden::Act)
}

/// The name of layer `l`'s learnable activation parameter, `"{2l + 1}.{weight|beta|alpha}"`, where it has one.
pub fn activation_param_name(kind: Hidden, l: usize) -> Option<String> {
    kind.param_name().map(|n| format!("{}.{n}", 2 * l + 1))
}

/// `[rows, cols]` row-major to `[cols, rows]`.
pub(super) fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The file's tensors by name: one pass, where a lookup per layer through [`SafeTensors::tensor`] would take
/// time quadratic in the number of tensors (a hostile file may hold a million).
fn by_name<'f, 'a>(file: &'f SafeTensors<'a>) -> HashMap<&'f str, &'f TensorView<'a>> {
    file.tensors.iter().map(|t| (t.name.as_str(), t)).collect()
}

/// `name` in `tensors`, or [`Error::MissingTensor`].
fn lookup<'f, 'a>(
    tensors: &HashMap<&str, &'f TensorView<'a>>,
    name: &str,
) -> Result<&'f TensorView<'a>> {
    tensors
        .get(name)
        .copied()
        .ok_or_else(|| Error::MissingTensor { name: name.into() })
}

/// Layer sizes from the tensors and the hidden layers' kinds: `0.weight [w0, s0]`, `2.weight [w1, s1]`, ... for
/// the `hidden.len() + 1` linear layers, where `w_l` is `s_{l+1}` (`2 s_{l+1}` for a gated layer).
fn sizes_from_shapes(file: &SafeTensors, hidden: &[Hidden]) -> Result<Vec<usize>> {
    let tensors = by_name(file);
    let mut sizes = Vec::new();
    for l in 0..=hidden.len() {
        let (w, _) = linear_names(l);
        let t = lookup(&tensors, &w)?;
        let gated = matches!(hidden.get(l), Some(Hidden::Gated(_)));
        match t.shape[..] {
            [out, inp]
                if (sizes.is_empty() || sizes.last() == Some(&inp))
                    && (!gated || out.is_multiple_of(2)) =>
            {
                if sizes.is_empty() {
                    sizes.push(inp);
                }
                sizes.push(if gated { out / 2 } else { out });
            }
            _ => {
                return Err(Error::TensorShapeMismatch {
                    name: w,
                    expected: vec![0, sizes.last().copied().unwrap_or(0)],
                    got: t.shape.clone(),
                })
            }
        }
    }
    // More linear layers than the metadata's activations account for: the metadata is what is wrong, not the
    // tensor that load_weights would later find unexpected.
    let (next, _) = linear_names(hidden.len() + 1);
    if tensors.contains_key(next.as_str()) {
        return Err(Error::InvalidSafetensors {
            reason: format!(
                "{ACTIVATIONS_KEY} lists {} hidden layers, but the file holds {next:?}, a linear layer past the \
                 {} they imply",
                hidden.len(),
                hidden.len() + 1
            ),
        });
    }
    Ok(sizes)
}

impl Mlp {
    /// The `actgpu.sizes` and `actgpu.activations` metadata of this network, as its files write them.
    pub(crate) fn architecture_metadata(&self) -> (String, String) {
        let sizes = self.sizes();
        let specs = self
            .hidden()
            .into_iter()
            .enumerate()
            .map(|(l, kind)| hidden_spec(kind, sizes[l + 1]));
        (join(sizes), join(specs))
    }

    /// Where `file`'s `actgpu.sizes` or `actgpu.activations` (each where present) describe another network than
    /// this one: `Some((key, the file's, this network's))`. Compared layer by layer as parsed, then spelled as
    /// this crate writes them, so that a spelling the readers accept (`elu(1.0)`, spaces) is no difference; a
    /// layer whose spec does not parse is compared as text without whitespace, except the bare `custom` that
    /// files written before user-defined activations were named hold (`custom`, `gated(custom)`), which is not
    /// compared.
    pub(crate) fn architecture_difference(
        &self,
        file: &SafeTensors,
    ) -> Option<(&'static str, String, String)> {
        let (sizes, acts) = self.architecture_metadata();
        let bare = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        if let Some(theirs) = file.metadata(SIZES_KEY).filter(|t| bare(t) != sizes) {
            return Some((SIZES_KEY, theirs.to_string(), sizes));
        }
        let theirs = file.metadata(ACTIVATIONS_KEY)?;
        let units = self.sizes();
        let ours = self.hidden();
        let specs = split_layers(theirs);
        let same = specs.len() == ours.len()
            && specs
                .iter()
                .zip(&ours)
                .enumerate()
                .all(|(l, (&spec, &kind))| {
                    let written = hidden_spec(kind, units[l + 1]);
                    match parse_hidden_spec(spec) {
                        Some(k) => hidden_spec(k, units[l + 1]) == written,
                        None => {
                            matches!(bare(spec).as_str(), "custom" | "gated(custom)")
                                || bare(spec) == written
                        }
                    }
                });
        (!same).then(|| (ACTIVATIONS_KEY, theirs.to_string(), acts))
    }

    /// The weights as a safetensors file in memory (see the module documentation for names, shapes and
    /// metadata). Reads the parameters back from the GPU (blocks). The optimizer's state (momentum, Adam's
    /// moments) and the step count are not saved: a network loaded from it starts training at step 1 with zero
    /// moments, as a PyTorch model loaded from a state dict without its optimizer's would.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let sizes = self.sizes();
        let params = self.params()?;
        let act_params = self.activation_params()?;
        let mut kinds = self.hidden();
        kinds.push(Hidden::Act(Activation::Identity));
        let widths: Vec<usize> = (0..params.len())
            .map(|l| kinds[l].linear_width(sizes[l + 1]))
            .collect();
        let names: Vec<(String, String)> = (0..params.len()).map(linear_names).collect();
        let shapes: Vec<[usize; 2]> = (0..params.len()).map(|l| [widths[l], sizes[l]]).collect();
        let weights: Vec<Vec<f32>> = params
            .iter()
            .enumerate()
            .map(|(l, (w, _))| transpose(w, sizes[l], widths[l]))
            .collect();
        let p_names: Vec<Option<String>> = (0..params.len())
            .map(|l| activation_param_name(kinds[l], l))
            .collect();
        let p_shapes: Vec<[usize; 1]> = act_params.iter().map(|p| [p.len()]).collect();
        let mut tensors = Vec::with_capacity(3 * params.len());
        for l in 0..params.len() {
            tensors.push(F32Tensor {
                name: &names[l].0,
                shape: &shapes[l],
                data: &weights[l],
            });
            tensors.push(F32Tensor {
                name: &names[l].1,
                shape: &shapes[l][..1],
                data: &params[l].1,
            });
            if let Some(name) = &p_names[l] {
                tensors.push(F32Tensor {
                    name,
                    shape: &p_shapes[l],
                    data: &act_params[l],
                });
            }
        }
        let (sizes, acts) = self.architecture_metadata();
        serialize_f32(
            &tensors,
            &[
                ("format", "pt"),
                (SIZES_KEY, &sizes),
                (ACTIVATIONS_KEY, &acts),
            ],
        )
    }

    /// Writes [`Mlp::to_safetensors_bytes`] to `path`.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), &self.to_safetensors_bytes()?)
    }

    /// Loads every weight and bias, and every learnable activation parameter, from a safetensors file in memory
    /// into this network, whose layer sizes and kinds must match the file's tensors. The file is checked
    /// before anything is written, so a bad file leaves the network unchanged (a device lost while writing can
    /// still leave it part written): a malformed file
    /// ([`Error::InvalidSafetensors`]), a missing tensor ([`Error::MissingTensor`]), one of the wrong shape
    /// ([`Error::TensorShapeMismatch`]) or dtype ([`Error::TensorDTypeMismatch`]), or a tensor the network has
    /// no place for ([`Error::InvalidArgument`], as PyTorch's strict `load_state_dict`; a training checkpoint's
    /// optimizer state tensors are skipped, so its weights load as a weights-only file's would).
    /// Only the parameters change (as in PyTorch): the optimizer state, the step count and the activations
    /// stay as they are, whatever the file's metadata says.
    pub fn load_weights(&mut self, bytes: &[u8]) -> Result<()> {
        let file = SafeTensors::parse(bytes)?;
        let tensors = by_name(&file);
        let sizes = self.sizes().to_vec();
        let layers = sizes.len() - 1;
        let mut kinds = self.hidden();
        kinds.push(Hidden::Act(Activation::Identity));
        let check = |t: &TensorView, shape: Vec<usize>| {
            if t.shape != shape {
                return Err(Error::TensorShapeMismatch {
                    name: t.name.clone(),
                    expected: shape,
                    got: t.shape.clone(),
                });
            }
            Ok(())
        };
        let mut loaded = Vec::with_capacity(layers);
        let mut known = Vec::with_capacity(3 * layers);
        for l in 0..layers {
            let (wn, bn) = linear_names(l);
            let (fan_in, width) = (sizes[l], kinds[l].linear_width(sizes[l + 1]));
            let w = lookup(&tensors, &wn)?;
            let b = lookup(&tensors, &bn)?;
            check(w, vec![width, fan_in])?;
            check(b, vec![width])?;
            let p = match activation_param_name(kinds[l], l) {
                Some(pn) => {
                    let p = lookup(&tensors, &pn)?;
                    check(p, vec![kinds[l].param_len(sizes[l + 1])])?;
                    known.push(pn);
                    Some(p.to_f32()?)
                }
                None => None,
            };
            loaded.push((transpose(&w.to_f32()?, width, fan_in), b.to_f32()?, p));
            known.extend([wn, bn]);
        }
        let known_set: HashSet<&str> = known.iter().map(String::as_str).collect();
        if let Some(extra) = file
            .tensors
            .iter()
            .find(|t| !known_set.contains(t.name.as_str()) && !state_of(&known_set, &t.name))
        {
            return Err(Error::InvalidArgument {
                op: "Mlp::load_weights",
                reason: format!(
                    "unexpected tensor {:?}: the network has {layers} linear layers ({})",
                    extra.name,
                    known.join(", ")
                ),
            });
        }
        for (l, (w, b, p)) in loaded.iter().enumerate() {
            if let Some((wt, bt)) = self.layer(l) {
                wt.write(w)?;
                bt.write(b)?;
            }
            if let (Some(pt), Some(p)) = (self.activation_param(l), p) {
                pt.write(p)?;
            }
        }
        Ok(())
    }

    /// [`Mlp::load_weights`] from the file at `path` ([`Error::Io`] when it cannot be read).
    pub fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_weights(&read_file(path.as_ref())?)
    }

    /// A new network from a safetensors file in memory: hidden layer kinds from the `actgpu.activations`
    /// metadata, layer sizes from the weights' shapes (files written by [`Mlp::to_safetensors_bytes`];
    /// for others, build the network with [`Mlp::new`] and call [`Mlp::load_weights`]), every parameter from
    /// the file, trained with `loss` and `optimizer` from step 0. The learnable layers' parameters are the file's,
    /// but their [`crate::Hidden::Learnable`] description is rebuilt from the metadata's kind names: `init` is the
    /// kind's default, and a per-channel layer one unit wide comes back as a shared one (the same single
    /// parameter), so [`Mlp::hidden`] may differ from the saved network's in those two fields. A user-defined
    /// activation (`custom(<name>)`) is the [`crate::CustomActivation`] registered under its name in this
    /// process (the most recent of several with the same WGSL), which must be created before loading:
    /// [`Error::UnresolvedCustomActivation`] naming it when none is (or several whose WGSL differs are). A file that says only `custom` (written before the names were
    /// recorded) is [`Error::InvalidArgument`]: build its network with [`Mlp::new`] and call [`Mlp::load_weights`].
    pub fn from_safetensors(
        gpu: &Gpu,
        bytes: &[u8],
        loss: Loss,
        optimizer: Optimizer,
    ) -> Result<Mlp> {
        const OP: &str = "Mlp::from_safetensors";
        let file = SafeTensors::parse(bytes)?;
        let spec = file.metadata(ACTIVATIONS_KEY).ok_or(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "no {ACTIVATIONS_KEY:?} metadata: create the network with Mlp::new or Mlp::with_layers and call load_weights"
            ),
        })?;
        let specs = if spec.is_empty() {
            Vec::new()
        } else {
            split_layers(spec)
        };
        let hidden: Vec<Hidden> = specs
            .iter()
            .map(|s| parse_hidden_spec(s).ok_or_else(|| unrebuildable(OP, s)))
            .collect::<Result<_>>()?;
        let sizes = sizes_from_shapes(&file, &hidden)?;
        // A dtype that cannot load is refused before the network (its host init and GPU buffers) is built.
        for t in &file.tensors {
            t.check_convertible()?;
        }
        // A learnable layer's parameter count must be the one its width gives (1, or one per unit).
        for (l, (&kind, s)) in hidden.iter().zip(&specs).enumerate() {
            let written: String = s.split_whitespace().collect();
            let expected = hidden_spec(kind, sizes[l + 1]);
            if matches!(kind, Hidden::Learnable { .. }) && written != expected {
                return Err(bad_metadata(format!(
                    "{ACTIVATIONS_KEY}: layer {l} is {written:?} but has {} units (expected {expected:?})",
                    sizes[l + 1]
                )));
            }
        }
        if let Some(recorded) = file.metadata(SIZES_KEY) {
            if recorded != join(&sizes) {
                return Err(bad_metadata(format!(
                    "{SIZES_KEY} is {recorded:?} but the weights' shapes say {}",
                    join(&sizes)
                )));
            }
        }
        let mut mlp = Mlp::build(OP, gpu, &sizes, &hidden, loss, optimizer, 0)?;
        mlp.load_weights(bytes)?;
        Ok(mlp)
    }
}

/// Whether `name` is a training checkpoint's optimizer state of one of the `known` parameters
/// (`"{parameter}.exp_avg"` and the like): [`Mlp::load_weights`] skips those, and refuses state of parameters the
/// network does not have as it refuses any other unexpected tensor.
fn state_of(known: &HashSet<&str>, name: &str) -> bool {
    is_state(name)
        && name
            .rsplit_once('.')
            .is_some_and(|(base, _)| known.contains(base))
}

/// `spec` split at the commas outside parentheses (`gelu,softplus(1,20)` is two layers); one item, which no
/// spec parser reads, where the parentheses do not balance.
fn split_layers(spec: &str) -> Vec<&str> {
    crate::nn::hidden::split_list(spec).unwrap_or_else(|| vec![spec])
}

/// Why a hidden layer's spec (one that [`parse_hidden_spec`] refused) cannot be rebuilt: a user-defined
/// activation that is not registered, or ambiguous, is [`Error::UnresolvedCustomActivation`] naming it; any other
/// spec is [`Error::InvalidArgument`].
fn unrebuildable(op: &'static str, spec: &str) -> Error {
    let spec = spec.trim();
    let activation = spec
        .strip_prefix("gated(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(spec);
    if let Some(name) = custom_spec_name(activation) {
        if let Err(e) = crate::custom::by_name(name) {
            return e;
        }
    }
    let why = if activation.trim() == "custom" {
        "a user-defined activation saved without its name (by an older actgpu)"
    } else {
        "an unknown kind, or wrong parameters"
    };
    Error::InvalidArgument {
        op,
        reason: format!(
            "activation {spec:?} cannot be rebuilt ({why}): create the network with Mlp::new or \
             Mlp::with_layers and call load_weights"
        ),
    }
}

fn bad_metadata(reason: String) -> Error {
    Error::InvalidSafetensors { reason }
}
