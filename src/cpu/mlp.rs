//! f64 reference of a whole training step of [`crate::nn::Mlp`]: forward through the dense layers, the loss
//! and its gradient, backward, and the optimizer update, from the same initial parameters.
//!
//! Gated and learnable hidden layers ([`Hidden`]) run their linear map as a dense layer without activation,
//! then the f64 references of the gated unit and the learnable activation ([`super::fused`]); backward forms
//! dZ with their backward references and the activation parameter's gradient `dp` with it. A randomized leaky
//! ReLU layer draws its training slopes as the GPU network does ([`crate::nn::rrelu_layer_seed`] of
//! [`Mlp::noise_seed`], the step and the layer, then [`super::rrelu`]), and evaluates at their mean.

use super::dense::{dense_backward, dense_forward, DenseGrads};
use super::fused::{
    gated_backward, gated_forward, join_halves, learnable_backward, learnable_forward, split_halves,
};
use super::optim::{update, State};
use crate::nn::Hidden;
use crate::ops::loss::Loss;
use crate::ops::optim::Optimizer;
use crate::Activation;

/// What the loss compares the output with.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Class indices, one per row (cross-entropy).
    Classes(&'a [u32]),
    /// Values shaped like the output (MSE, BCE).
    Values(&'a [f64]),
}

/// The mean loss and its gradient with respect to `pred [rows, cols]`.
///
/// # Panics
/// When the target's kind does not match the loss (a reference for tests, not a library entry point).
pub fn loss_and_grad(loss: Loss, pred: &[f64], cols: usize, target: Target) -> (f64, Vec<f64>) {
    match (loss, target) {
        (Loss::SoftmaxCrossEntropy, Target::Classes(t)) => {
            super::loss::softmax_cross_entropy(pred, t, cols)
        }
        (Loss::Mse, Target::Values(t)) => super::loss::mse(pred, t),
        (Loss::BceWithLogits, Target::Values(t)) => super::loss::bce_with_logits(pred, t),
        _ => panic!("target kind does not match {loss:?}"),
    }
}

/// An MLP in f64: layer sizes (input first), hidden activations, a linear output layer, a loss and an
/// optimizer.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Layer sizes, input first.
    pub sizes: Vec<usize>,
    /// One activation per hidden layer: the plain activation, [`Activation::Identity`] for a gated, learnable
    /// or randomized leaky ReLU layer (whose linear map runs without one; its kind is in `layers`).
    pub hidden: Vec<Activation>,
    /// Each hidden layer's kind.
    pub layers: Vec<Hidden>,
    /// The loss.
    pub loss: Loss,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// `W_l`, `[sizes[l], w_l]` row-major, `w_l` the layer's linear width (`sizes[l + 1]`, twice that for a
    /// gated layer).
    pub weights: Vec<Vec<f64>>,
    /// `b_l`, `[w_l]`.
    pub biases: Vec<Vec<f64>>,
    /// Optimizer state of each weight.
    pub weight_states: Vec<State>,
    /// Optimizer state of each bias.
    pub bias_states: Vec<State>,
    /// Each layer's learnable activation parameter (empty where it has none).
    pub act_params: Vec<Vec<f64>>,
    /// Optimizer state of each learnable activation parameter.
    pub act_param_states: Vec<State>,
    /// Updates done so far.
    pub step: u64,
    /// The seed of the randomized leaky ReLU layers' draws ([`crate::Mlp::noise_seed`]); 0 from the
    /// constructors.
    pub noise_seed: u64,
}

/// Every gradient of one step: the loss, each layer's dense gradients, and each layer's learnable activation
/// parameter gradient (empty where it has none).
#[derive(Debug, Clone)]
pub struct Gradients {
    /// The mean loss.
    pub loss: f64,
    /// `dW`, `db` of each linear map, and the gradient `dx` reaching its input.
    pub dense: Vec<DenseGrads>,
    /// `dp` of each layer's activation parameter.
    pub act_params: Vec<Vec<f64>>,
}

impl Mlp {
    /// A network starting from `params` (`(W, b)` per layer, as [`crate::nn::init_params`] gives them).
    pub fn new(
        sizes: &[usize],
        hidden: &[Activation],
        loss: Loss,
        optimizer: Optimizer,
        params: &[(Vec<f32>, Vec<f32>)],
    ) -> Self {
        let layers: Vec<Hidden> = hidden.iter().map(|&a| Hidden::Act(a)).collect();
        Mlp::with_layers(sizes, &layers, loss, optimizer, params)
    }

    /// A network with hidden layer kinds `layers` starting from `params` (`(W, b)` per linear map, as
    /// [`crate::nn::init_layers`] gives them); learnable activation parameters start at their `init`.
    pub fn with_layers(
        sizes: &[usize],
        layers: &[Hidden],
        loss: Loss,
        optimizer: Optimizer,
        params: &[(Vec<f32>, Vec<f32>)],
    ) -> Self {
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let act_params: Vec<Vec<f64>> = (0..params.len())
            .map(|l| match layers.get(l) {
                Some(&k @ Hidden::Learnable { init, .. }) => {
                    vec![f64::from(init); k.param_len(sizes[l + 1])]
                }
                _ => Vec::new(),
            })
            .collect();
        Mlp {
            sizes: sizes.to_vec(),
            hidden: layers
                .iter()
                .map(|k| k.plain().unwrap_or(Activation::Identity))
                .collect(),
            layers: layers.to_vec(),
            loss,
            optimizer,
            weights: params.iter().map(|(w, _)| widen(w)).collect(),
            biases: params.iter().map(|(_, b)| widen(b)).collect(),
            weight_states: params.iter().map(|(w, _)| State::zeros(w.len())).collect(),
            bias_states: params.iter().map(|(_, b)| State::zeros(b.len())).collect(),
            act_param_states: act_params.iter().map(|p| State::zeros(p.len())).collect(),
            act_params,
            step: 0,
            noise_seed: 0,
        }
    }

    fn kind(&self, l: usize) -> Hidden {
        self.layers
            .get(l)
            .copied()
            .unwrap_or(Hidden::Act(Activation::Identity))
    }

    /// `(batch, fan_in, linear width)` of layer `l`'s linear map.
    fn dims(&self, l: usize, batch: usize) -> (usize, usize, usize) {
        let width = self.kind(l).linear_width(self.sizes[l + 1]);
        (batch, self.sizes[l], width)
    }

    /// Layer outputs `Y_l` and pre-activations `Z_l` (the linear maps' outputs, `[batch, 2u]` for a gated
    /// layer) for a batch `x [batch, sizes[0]]`, in evaluation mode (a randomized leaky ReLU at its mean slope).
    pub fn forward(&self, x: &[f64], batch: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        self.forward_in(x, batch, None)
    }

    /// The seed of layer `l`'s randomized leaky ReLU draws in training step `step`.
    fn draw_seed(&self, step: u64, l: usize) -> u64 {
        crate::nn::rrelu_layer_seed(self.noise_seed, step, l)
    }

    /// [`Mlp::forward`] in training mode when `train_step` is given (the step whose draws the randomized leaky
    /// ReLU layers take), else in evaluation mode.
    pub(crate) fn forward_in(
        &self,
        x: &[f64],
        batch: usize,
        train_step: Option<u64>,
    ) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let (mut ys, mut zs): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
        for l in 0..self.weights.len() {
            let input: &[f64] = if l == 0 { x } else { &ys[l - 1] };
            let kind = self.kind(l);
            let act = kind.plain().unwrap_or(Activation::Identity);
            let bias = Some(&self.biases[l][..]);
            let (y, z) = dense_forward(act, input, &self.weights[l], bias, self.dims(l, batch));
            let y = match kind {
                Hidden::Act(_) => y,
                Hidden::Gated(g) => {
                    let (a, gate) = split_halves(&z, self.sizes[l + 1]);
                    gated_forward(g.gate, &a, &gate)
                }
                Hidden::Learnable { kind, .. } => learnable_forward(kind, &z, &self.act_params[l]),
                Hidden::Rrelu(r) => match train_step {
                    Some(step) => super::rrelu::forward_all(r, self.draw_seed(step, l), &z),
                    None => {
                        let act = r.eval_activation();
                        z.iter()
                            .map(|&v| super::activation::forward(act, v))
                            .collect()
                    }
                },
            };
            ys.push(y);
            zs.push(z);
        }
        (ys, zs)
    }

    /// The network's output (logits) for `x [batch, sizes[0]]`.
    pub fn predict(&self, x: &[f64], batch: usize) -> Vec<f64> {
        self.forward(x, batch).0.pop().unwrap_or_default()
    }

    /// The mean loss and every layer's gradients (`dW`, `db`; `dx` is the gradient reaching its input).
    pub fn loss_and_grads(
        &self,
        x: &[f64],
        batch: usize,
        target: Target,
    ) -> (f64, Vec<DenseGrads>) {
        let g = self.gradients(x, batch, target);
        (g.loss, g.dense)
    }

    /// The mean loss and every gradient, the learnable activation parameters' included, as the next training
    /// step (`step + 1`) forms them: a randomized leaky ReLU layer at that step's draws.
    pub fn gradients(&self, x: &[f64], batch: usize, target: Target) -> Gradients {
        let next = self.step + 1;
        let (ys, zs) = self.forward_in(x, batch, Some(next));
        let out = *self.sizes.last().unwrap_or(&0);
        let (loss, mut dy) = loss_and_grad(self.loss, &ys[ys.len() - 1], out, target);
        let layers = self.weights.len();
        let mut dense = Vec::with_capacity(layers);
        let mut act_params = vec![Vec::new(); layers];
        for l in (0..layers).rev() {
            let input: &[f64] = if l == 0 { x } else { &ys[l - 1] };
            let dims = self.dims(l, batch);
            // dZ of a gated, learnable or rrelu layer from its own backward; a plain layer's from dense_backward.
            let dz = match self.kind(l) {
                Hidden::Act(_) => None,
                Hidden::Gated(g) => {
                    let units = self.sizes[l + 1];
                    let (a, gate) = split_halves(&zs[l], units);
                    let (da, dg) = gated_backward(g.gate, &a, &gate, &dy);
                    Some(join_halves(&da, &dg, units))
                }
                Hidden::Learnable { kind, .. } => {
                    let (dz, dp) = learnable_backward(kind, &zs[l], &self.act_params[l], &dy);
                    act_params[l] = dp;
                    Some(dz)
                }
                Hidden::Rrelu(r) => Some(super::rrelu::backward_all(
                    r,
                    self.draw_seed(next, l),
                    &zs[l],
                    &dy,
                )),
            };
            let w = &self.weights[l];
            let g = match dz {
                None => {
                    let act = self.kind(l).plain().unwrap_or(Activation::Identity);
                    dense_backward(act, input, w, &zs[l], &dy, dims)
                }
                Some(dz) => dense_backward(Activation::Identity, input, w, &zs[l], &dz, dims),
            };
            dy = g.dx.clone();
            dense.push(g);
        }
        dense.reverse();
        Gradients {
            loss,
            dense,
            act_params,
        }
    }

    /// One step: gradients at the current parameters, then the optimizer's update of every weight, bias and
    /// learnable activation parameter. Returns the loss before it.
    pub fn train_step(&mut self, x: &[f64], batch: usize, target: Target) -> f64 {
        let grads = self.gradients(x, batch, target);
        self.step += 1;
        let opt = self.optimizer;
        for (l, g) in grads.dense.iter().enumerate() {
            update(
                &opt,
                &mut self.weights[l],
                &g.dw,
                &mut self.weight_states[l],
                self.step,
            );
            update(
                &opt,
                &mut self.biases[l],
                &g.db,
                &mut self.bias_states[l],
                self.step,
            );
            if !self.act_params[l].is_empty() {
                let dp = &grads.act_params[l];
                let state = &mut self.act_param_states[l];
                update(&opt, &mut self.act_params[l], dp, state, self.step);
            }
        }
        grads.loss
    }
}
