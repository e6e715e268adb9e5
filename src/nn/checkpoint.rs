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
//! The metadata records what the tensors cannot say (safetensors metadata values are strings):
//!
//! | key | value |
//! |---|---|
//! | `format` | `pt`, as `safetensors.torch` writes it |
//! | `actgpu.sizes` | layer sizes, input first, comma-separated: `2,64,64,3` |
//! | `actgpu.activations` | each hidden layer's activation by name with its parameters: `gelu,leaky_relu(0.01),softplus(1,20)` |
//!
//! So that a model trained here loads in PyTorch (with the matching activation modules):
//!
//! ```text
//! model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.GELU(), torch.nn.Linear(64, 3))
//! model.load_state_dict(safetensors.torch.load_file("model.safetensors"))
//! ```
//!
//! and a PyTorch model's `save_file(model.state_dict(), path)` loads here with [`Mlp::load_safetensors`].

use std::path::Path;

use super::safetensors::{read_file, serialize_f32, write_file, F32Tensor, SafeTensors};
use crate::ops::loss::Loss;
use crate::ops::optim::Optimizer;
use crate::{Activation, Error, Gpu, Mlp, Result};

/// Metadata key of the layer sizes.
pub const SIZES_KEY: &str = "actgpu.sizes";
/// Metadata key of the hidden activations.
pub const ACTIVATIONS_KEY: &str = "actgpu.activations";

/// The names of layer `l`'s weight and bias: `"{2l}.weight"`, `"{2l}.bias"`.
pub fn linear_names(l: usize) -> (String, String) {
    (format!("{}.weight", 2 * l), format!("{}.bias", 2 * l))
}

/// An activation as the metadata writes it: its name, with its parameters in parentheses where it has any
/// (`leaky_relu(0.01)`, `softplus(1,20)`). f32 values print in the shortest form that reads back exactly.
pub fn activation_spec(act: Activation) -> String {
    let [p0, p1] = act.params();
    match act {
        Activation::LeakyRelu { .. }
        | Activation::Elu { .. }
        | Activation::Celu { .. }
        | Activation::Swish { .. } => format!("{}({p0})", act.name()),
        Activation::Softplus { .. } | Activation::Hardtanh { .. } => {
            format!("{}({p0},{p1})", act.name())
        }
        _ => act.name().to_string(),
    }
}

/// The activation an [`activation_spec`] names; `None` for an unknown name, wrong parameters or `custom`
/// (a user-defined activation's code is not in the file).
pub fn parse_activation_spec(spec: &str) -> Option<Activation> {
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
        (Activation::Softplus { .. }, &[beta, threshold]) => {
            Activation::Softplus { beta, threshold }
        }
        (Activation::Hardtanh { .. }, &[min_val, max_val]) => {
            Activation::Hardtanh { min_val, max_val }
        }
        (Activation::Custom { .. }, _) => return None,
        (act, []) => act,
        _ => return None,
    })
}

/// `[rows, cols]` row-major to `[cols, rows]`.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
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

/// Layer sizes from the tensors alone: `0.weight [s1, s0]`, `2.weight [s2, s1]`, ... until a weight is missing.
fn sizes_from_shapes(file: &SafeTensors) -> Result<Vec<usize>> {
    let mut sizes = Vec::new();
    for l in 0.. {
        let (w, _) = linear_names(l);
        let Ok(t) = file.tensor(&w) else { break };
        match t.shape[..] {
            [out, inp] if sizes.is_empty() || sizes.last() == Some(&inp) => {
                if sizes.is_empty() {
                    sizes.push(inp);
                }
                sizes.push(out);
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
    if sizes.is_empty() {
        return Err(Error::MissingTensor {
            name: linear_names(0).0,
        });
    }
    Ok(sizes)
}

impl Mlp {
    /// The weights as a safetensors file in memory (see the module documentation for names, shapes and
    /// metadata). Reads the parameters back from the GPU (blocks).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let sizes = self.sizes();
        let params = self.params()?;
        let names: Vec<(String, String)> = (0..params.len()).map(linear_names).collect();
        let shapes: Vec<[usize; 2]> = (0..params.len())
            .map(|l| [sizes[l + 1], sizes[l]])
            .collect();
        let weights: Vec<Vec<f32>> = params
            .iter()
            .enumerate()
            .map(|(l, (w, _))| transpose(w, sizes[l], sizes[l + 1]))
            .collect();
        let mut tensors = Vec::with_capacity(2 * params.len());
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
        }
        let sizes = join(sizes);
        let acts = join(self.activations().into_iter().map(activation_spec));
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

    /// Loads every weight and bias from a safetensors file in memory into this network, whose layer sizes must
    /// match the file's. Everything is checked before anything is written, so on error the network is
    /// unchanged: a malformed file ([`Error::InvalidSafetensors`]), a missing tensor ([`Error::MissingTensor`]),
    /// one of the wrong shape ([`Error::TensorShapeMismatch`]) or dtype ([`Error::TensorDTypeMismatch`]), or a
    /// tensor the network has no place for ([`Error::InvalidArgument`], as PyTorch's strict `load_state_dict`).
    /// Only the parameters change (as in PyTorch): the optimizer state, the step count and the activations
    /// stay as they are, whatever the file's metadata says.
    pub fn load_weights(&mut self, bytes: &[u8]) -> Result<()> {
        let file = SafeTensors::parse(bytes)?;
        let sizes = self.sizes().to_vec();
        let layers = sizes.len() - 1;
        let mut loaded = Vec::with_capacity(layers);
        for l in 0..layers {
            let (wn, bn) = linear_names(l);
            let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
            let w = file.tensor(&wn)?;
            let b = file.tensor(&bn)?;
            for (t, shape) in [(w, vec![fan_out, fan_in]), (b, vec![fan_out])] {
                if t.shape != shape {
                    return Err(Error::TensorShapeMismatch {
                        name: t.name.clone(),
                        expected: shape,
                        got: t.shape.clone(),
                    });
                }
            }
            loaded.push((transpose(&w.to_f32()?, fan_out, fan_in), b.to_f32()?));
        }
        let known: Vec<String> = (0..layers)
            .flat_map(|l| {
                let (w, b) = linear_names(l);
                [w, b]
            })
            .collect();
        if let Some(extra) = file.tensors.iter().find(|t| !known.contains(&t.name)) {
            return Err(Error::InvalidArgument {
                op: "Mlp::load_weights",
                reason: format!(
                    "unexpected tensor {:?}: the network has {layers} linear layers ({})",
                    extra.name,
                    known.join(", ")
                ),
            });
        }
        for (l, (w, b)) in loaded.iter().enumerate() {
            if let Some((wt, bt)) = self.layer(l) {
                wt.write(w)?;
                bt.write(b)?;
            }
        }
        Ok(())
    }

    /// [`Mlp::load_weights`] from the file at `path` ([`Error::Io`] when it cannot be read).
    pub fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_weights(&read_file(path.as_ref())?)
    }

    /// A new network from a safetensors file in memory: layer sizes from the weights' shapes, hidden
    /// activations from the `actgpu.activations` metadata (files written by [`Mlp::to_safetensors_bytes`];
    /// for others, build the network with [`Mlp::new`] and call [`Mlp::load_weights`]), every parameter from
    /// the file, trained with `loss` and `optimizer` from step 0.
    pub fn from_safetensors(
        gpu: &Gpu,
        bytes: &[u8],
        loss: Loss,
        optimizer: Optimizer,
    ) -> Result<Mlp> {
        const OP: &str = "Mlp::from_safetensors";
        let file = SafeTensors::parse(bytes)?;
        let sizes = sizes_from_shapes(&file)?;
        let spec = file.metadata(ACTIVATIONS_KEY).ok_or(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "no {ACTIVATIONS_KEY:?} metadata: create the network with Mlp::new and call load_weights"
            ),
        })?;
        let hidden: Vec<Activation> = if spec.is_empty() {
            Vec::new()
        } else {
            split_layers(spec)
                .into_iter()
                .map(|s| {
                    parse_activation_spec(s).ok_or_else(|| Error::InvalidArgument {
                        op: OP,
                        reason: format!(
                            "activation {s:?} cannot be rebuilt (a custom one?): create the network with \
                             Mlp::new and call load_weights"
                        ),
                    })
                })
                .collect::<Result<_>>()?
        };
        if let Some(recorded) = file.metadata(SIZES_KEY) {
            if recorded != join(&sizes) {
                return Err(bad_metadata(format!(
                    "{SIZES_KEY} is {recorded:?} but the weights' shapes say {}",
                    join(&sizes)
                )));
            }
        }
        let mut mlp = Mlp::new(gpu, &sizes, &hidden, loss, optimizer, 0)?;
        mlp.load_weights(bytes)?;
        Ok(mlp)
    }
}

/// `spec` split at the commas outside parentheses (`gelu,softplus(1,20)` is two layers).
fn split_layers(spec: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in spec.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

fn bad_metadata(reason: String) -> Error {
    Error::InvalidSafetensors { reason }
}
