//! f64 reference of a whole training step of [`crate::nn::Mlp`]: forward through the dense layers, the loss
//! and its gradient, backward, and the optimizer update, from the same initial parameters.

use super::dense::{dense_backward, dense_forward, DenseGrads};
use super::optim::{update, State};
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
    /// One activation per hidden layer.
    pub hidden: Vec<Activation>,
    /// The loss.
    pub loss: Loss,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// `W_l`, `[sizes[l], sizes[l + 1]]` row-major.
    pub weights: Vec<Vec<f64>>,
    /// `b_l`, `[sizes[l + 1]]`.
    pub biases: Vec<Vec<f64>>,
    /// Optimizer state of each weight.
    pub weight_states: Vec<State>,
    /// Optimizer state of each bias.
    pub bias_states: Vec<State>,
    /// Updates done so far.
    pub step: u64,
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
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        Mlp {
            sizes: sizes.to_vec(),
            hidden: hidden.to_vec(),
            loss,
            optimizer,
            weights: params.iter().map(|(w, _)| widen(w)).collect(),
            biases: params.iter().map(|(_, b)| widen(b)).collect(),
            weight_states: params.iter().map(|(w, _)| State::zeros(w.len())).collect(),
            bias_states: params.iter().map(|(_, b)| State::zeros(b.len())).collect(),
            step: 0,
        }
    }

    fn act(&self, l: usize) -> Activation {
        self.hidden.get(l).copied().unwrap_or(Activation::Identity)
    }

    /// Layer outputs `Y_l` and pre-activations `Z_l` for a batch `x [batch, sizes[0]]`.
    pub fn forward(&self, x: &[f64], batch: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let (mut ys, mut zs): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
        for l in 0..self.weights.len() {
            let input: &[f64] = if l == 0 { x } else { &ys[l - 1] };
            let dims = (batch, self.sizes[l], self.sizes[l + 1]);
            let (y, z) = dense_forward(
                self.act(l),
                input,
                &self.weights[l],
                Some(&self.biases[l]),
                dims,
            );
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
        let (ys, zs) = self.forward(x, batch);
        let out = *self.sizes.last().unwrap_or(&0);
        let (loss, mut dy) = loss_and_grad(self.loss, &ys[ys.len() - 1], out, target);
        let mut grads = Vec::with_capacity(self.weights.len());
        for l in (0..self.weights.len()).rev() {
            let input: &[f64] = if l == 0 { x } else { &ys[l - 1] };
            let dims = (batch, self.sizes[l], self.sizes[l + 1]);
            let g = dense_backward(self.act(l), input, &self.weights[l], &zs[l], &dy, dims);
            dy = g.dx.clone();
            grads.push(g);
        }
        grads.reverse();
        (loss, grads)
    }

    /// One step: gradients at the current parameters, then the optimizer's update. Returns the loss before it.
    pub fn train_step(&mut self, x: &[f64], batch: usize, target: Target) -> f64 {
        let (loss, grads) = self.loss_and_grads(x, batch, target);
        self.step += 1;
        for (l, g) in grads.iter().enumerate() {
            update(
                &self.optimizer,
                &mut self.weights[l],
                &g.dw,
                &mut self.weight_states[l],
                self.step,
            );
            update(
                &self.optimizer,
                &mut self.biases[l],
                &g.db,
                &mut self.bias_states[l],
                self.step,
            );
        }
        loss
    }
}
