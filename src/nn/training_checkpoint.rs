//! A training checkpoint: an [`Mlp`]'s weights and its optimizer's state in one safetensors file, so that
//! training resumes where it stopped, bit for bit, rather than restarting the optimizer (a network loaded from
//! weights alone starts again at step 1 with zero moments: Adam's first update after it moves every parameter
//! by about the learning rate, whatever its gradient).
//!
//! The file holds what [`Mlp::to_safetensors_bytes`] writes (the weights under PyTorch's names, the same
//! metadata), and beside each parameter tensor `"{name}"` its state under the names `torch.optim` gives them,
//! laid out as the parameter is in the file (a weight's state `[out, in]`, like the weight):
//!
//! | optimizer | state tensors |
//! |---|---|
//! | SGD without momentum | none |
//! | SGD with momentum (and Nesterov) | `"{name}.momentum_buffer"` |
//! | Adam, AdamW | `"{name}.exp_avg"` (`m`), `"{name}.exp_avg_sq"` (`v`) |
//!
//! and the metadata `actgpu.step` (the steps taken: the next is `step + 1`, which selects SGD's first momentum
//! step and Adam's bias correction) and `actgpu.optimizer` (`sgd`, `sgd_momentum` or `adam`: the kind of
//! state the file holds, which the loading network's optimizer must keep), and `actgpu.noise_seed`
//! ([`Mlp::noise_seed`], so that the randomized leaky ReLU layers draw on as they would have; a file without it
//! leaves the loading network's). The hyperparameters (learning rate,
//! betas, decay) are not saved: the network that loads the file keeps its own optimizer's. [`Mlp::load_weights`] and
//! [`Mlp::from_safetensors`] read such a file's weights and skip its state, as from a weights-only file.

use std::collections::HashSet;
use std::path::Path;

use super::checkpoint::{activation_param_name, linear_names, transpose};
use super::safetensors::{read_file, serialize_f32, write_file, F32Tensor, SafeTensors};
use crate::nn::Hidden;
use crate::ops::optim::OptimState;
use crate::{Activation, Error, Mlp, Result, Tensor};

/// Metadata key of the steps taken.
pub const STEP_KEY: &str = "actgpu.step";
/// Metadata key of the randomized leaky ReLU layers' noise seed.
pub const NOISE_SEED_KEY: &str = "actgpu.noise_seed";
/// Metadata key of the optimizer's kind.
pub const OPTIMIZER_KEY: &str = "actgpu.optimizer";

/// The suffixes of the state tensors: SGD's momentum buffer, Adam's first and second moments.
const MOMENTUM: &str = "momentum_buffer";
const EXP_AVG: &str = "exp_avg";
const EXP_AVG_SQ: &str = "exp_avg_sq";

/// One parameter tensor of the network: its name in the file, its shape there, whether the file holds it
/// transposed (`[out, in]` for this crate's `[in, out]`), the tensor and its optimizer state.
struct Slot<'a> {
    name: String,
    file_shape: Vec<usize>,
    /// `(rows, cols)` of the network's layout where the file holds the transpose.
    transposed: Option<(usize, usize)>,
    state: &'a OptimState,
}

impl Slot<'_> {
    /// The state tensors the optimizer keeps for this parameter, with their names in the file.
    fn states(&self) -> Vec<(String, &Tensor)> {
        let named = |suffix: &str| format!("{}.{suffix}", self.name);
        match (&self.state.m, &self.state.v) {
            (Some(m), Some(v)) => vec![(named(EXP_AVG), m), (named(EXP_AVG_SQ), v)],
            (Some(m), None) => vec![(named(MOMENTUM), m)],
            _ => Vec::new(),
        }
    }

    /// A state tensor's values in the file's layout.
    fn file_layout(&self, values: Vec<f32>) -> Vec<f32> {
        match self.transposed {
            Some((rows, cols)) => transpose(&values, rows, cols),
            None => values,
        }
    }

    /// A state tensor's values from the file's layout.
    fn network_layout(&self, values: Vec<f32>) -> Vec<f32> {
        match self.transposed {
            Some((rows, cols)) => transpose(&values, cols, rows),
            None => values,
        }
    }
}

/// Whether `name` is a state tensor's (by its suffix).
pub(crate) fn is_state(name: &str) -> bool {
    [MOMENTUM, EXP_AVG, EXP_AVG_SQ]
        .iter()
        .any(|s| name.strip_suffix(s).is_some_and(|n| n.ends_with('.')))
}

impl Mlp {
    /// Every parameter tensor with its name, file shape and state, in the order of
    /// [`Mlp::optimizer_states`].
    fn slots(&self) -> Vec<Slot<'_>> {
        let sizes = self.sizes();
        let mut kinds = self.hidden();
        kinds.push(Hidden::Act(Activation::Identity));
        let mut names = Vec::new();
        for (l, &kind) in kinds.iter().enumerate() {
            let (inputs, width) = (sizes[l], kind.linear_width(sizes[l + 1]));
            let (w, b) = linear_names(l);
            names.push((w, vec![width, inputs], Some((inputs, width))));
            names.push((b, vec![width], None));
            if let Some(p) = activation_param_name(kind, l) {
                names.push((p, vec![kind.param_len(sizes[l + 1])], None));
            }
        }
        names
            .into_iter()
            .zip(self.optimizer_states())
            .map(|((name, file_shape, transposed), (_, state))| Slot {
                name,
                file_shape,
                transposed,
                state,
            })
            .collect()
    }

    /// The weights and the optimizer's state as a safetensors file in memory (see the module documentation).
    /// Reads them back from the GPU (blocks).
    pub fn to_training_checkpoint_bytes(&self) -> Result<Vec<u8>> {
        let weights = self.to_safetensors_bytes()?;
        let file = SafeTensors::parse(&weights)?;
        let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = file
            .tensors
            .iter()
            .map(|t| Ok((t.name.clone(), t.shape.clone(), t.to_f32()?)))
            .collect::<Result<_>>()?;
        for slot in self.slots() {
            for (name, t) in slot.states() {
                owned.push((name, slot.file_shape.clone(), slot.file_layout(t.read()?)));
            }
        }
        let tensors: Vec<F32Tensor> = owned
            .iter()
            .map(|(name, shape, data)| F32Tensor { name, shape, data })
            .collect();
        let step = self.steps().to_string();
        let noise_seed = self.noise_seed().to_string();
        let kind = self.state_kind();
        let mut metadata: Vec<(&str, &str)> = file
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        metadata.extend([
            (STEP_KEY, step.as_str()),
            (OPTIMIZER_KEY, kind),
            (NOISE_SEED_KEY, noise_seed.as_str()),
        ]);
        serialize_f32(&tensors, &metadata)
    }

    /// What the optimizer keeps, as `actgpu.optimizer` names it: `adam` (Adam and AdamW), `sgd_momentum`, `sgd`.
    fn state_kind(&self) -> &'static str {
        match self.optimizer_states().first().map(|(_, s)| (&s.m, &s.v)) {
            Some((Some(_), Some(_))) => "adam",
            Some((Some(_), None)) => "sgd_momentum",
            _ => "sgd",
        }
    }

    /// Writes [`Mlp::to_training_checkpoint_bytes`] to `path`.
    pub fn save_training_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), &self.to_training_checkpoint_bytes()?)
    }

    /// Loads the weights ([`Mlp::load_weights`]'s rules), the optimizer's state and the step count from a
    /// training checkpoint in memory, so that the next [`Mlp::train_step`] continues the saved run. The
    /// network's optimizer must keep the state the file holds (the same kind: SGD with momentum, or Adam /
    /// AdamW); its hyperparameters stay its own. Everything is checked before anything is written: no
    /// `actgpu.step` or a bad one (not a whole number up to `u32::MAX`) is [`Error::InvalidSafetensors`]; a file
    /// saved from another network (its `actgpu.sizes` or `actgpu.activations` differing from this one's: a
    /// checkpoint resumes the run it was saved from) or for another kind of optimizer (`actgpu.optimizer`)
    /// [`Error::InvalidArgument`] naming both;
    /// a missing state tensor [`Error::MissingTensor`], one of the wrong shape [`Error::TensorShapeMismatch`],
    /// and a state tensor this network's optimizer does not keep [`Error::InvalidArgument`].
    pub fn load_training_checkpoint_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        const OP: &str = "Mlp::load_training_checkpoint";
        let file = SafeTensors::parse(bytes)?;
        let step: u64 = file
            .metadata(STEP_KEY)
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::InvalidSafetensors {
                reason: format!(
                    "no {STEP_KEY:?} metadata with the steps taken: not a training checkpoint"
                ),
            })?;
        let noise_seed = match file.metadata(NOISE_SEED_KEY) {
            None => None,
            Some(s) => Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| Error::InvalidSafetensors {
                        reason: format!(
                            "{NOISE_SEED_KEY:?} is {s:?}, not an unsigned 64-bit integer"
                        ),
                    })?,
            ),
        };
        // The optimizers count steps in a u32 (Adam's bias correction, SGD's first step): a file past that count
        // was not saved by this crate. One at u32::MAX loads (to evaluate, say); the next train_step refuses.
        if step > u64::from(u32::MAX) {
            return Err(Error::InvalidSafetensors {
                reason: format!(
                    "{STEP_KEY:?} is {step}: the optimizers count at most {} steps",
                    u32::MAX
                ),
            });
        }
        if let Some((key, theirs, ours)) = self.architecture_difference(&file) {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!(
                    "the file's {key} is {theirs:?} and this network's {ours:?}: a training checkpoint resumes \
                     the network it was saved from (load_weights takes weights alone)"
                ),
            });
        }
        let kind = self.state_kind();
        if let Some(theirs) = file.metadata(OPTIMIZER_KEY).filter(|t| t.trim() != kind) {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!(
                    "the file holds optimizer state of kind {theirs:?} and this network's optimizer keeps \
                     {kind:?}: build the network with the optimizer the checkpoint was saved with"
                ),
            });
        }
        let by_name: std::collections::HashMap<&str, _> =
            file.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut states = Vec::new();
        let mut expected = HashSet::new();
        for slot in self.slots() {
            for (name, t) in slot.states() {
                let view = by_name
                    .get(name.as_str())
                    .ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
                if view.shape != slot.file_shape {
                    return Err(Error::TensorShapeMismatch {
                        name,
                        expected: slot.file_shape.clone(),
                        got: view.shape.clone(),
                    });
                }
                states.push((t.clone(), slot.network_layout(view.to_f32()?)));
                expected.insert(name);
            }
        }
        if let Some(extra) = file
            .tensors
            .iter()
            .find(|t| is_state(&t.name) && !expected.contains(&t.name))
        {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!(
                    "state tensor {:?} is not kept by this network's optimizer (the file's: {}): it was saved \
                     with another kind of optimizer, or for a layer this network does not have",
                    extra.name,
                    file.metadata(OPTIMIZER_KEY).unwrap_or("unknown")
                ),
            });
        }
        // The weights, checked before any is written: load_weights skips the state tensors of the network's
        // parameters, every one of which was checked above.
        self.load_weights(bytes)?;
        for (t, values) in states {
            t.write(&values)?;
        }
        self.set_steps(step);
        if let Some(seed) = noise_seed {
            self.set_noise_seed(seed);
        }
        Ok(())
    }

    /// [`Mlp::load_training_checkpoint_bytes`] from the file at `path` ([`Error::Io`] when it cannot be read).
    pub fn load_training_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_training_checkpoint_bytes(&read_file(path.as_ref())?)
    }
}
