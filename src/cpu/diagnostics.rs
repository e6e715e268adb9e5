//! f64 reference of [`crate::nn::diagnostics`]: each layer's gradient norms and the dead / saturated counts of
//! its pre-activation, from the reference network's own forward and backward pass.

use super::activation::derivative;
use super::mlp::{Mlp, Target};
use crate::nn::diagnostics::SATURATION_THRESHOLD;
use crate::Activation;

/// One layer's diagnostics in f64, with the elements whose class a rounding of z could change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerStats {
    /// `‖dW‖_2`.
    pub weight_grad_norm: f64,
    /// `‖db‖_2`.
    pub bias_grad_norm: f64,
    /// Elements of Z.
    pub units: u64,
    /// Elements with `f'(z) == 0`.
    pub dead: u64,
    /// Elements with `0 < abs(f'(z)) < SATURATION_THRESHOLD`.
    pub saturated: u64,
    /// Elements whose class differs somewhere in `z ± 1e-4 (1 + |z|)`, or whose derivative is below 1e-30 (where
    /// f32 underflows): an f32 computation of z may classify them either way.
    pub ambiguous: u64,
    /// Columns of Z (neurons) with `f'(z) == 0` (or NaN) in every row.
    pub dead_neurons: u64,
    /// Columns not dead with `0 < |f'(z)| < SATURATION_THRESHOLD` (or dead, or NaN) in every row.
    pub saturated_neurons: u64,
    /// Columns with an ambiguous element: an f32 computation may count them dead (or saturated) or not.
    pub ambiguous_neurons: u64,
}

/// `(dead, saturated)` of one pre-activation: `f'(z) == 0`, `0 < abs(f'(z)) < SATURATION_THRESHOLD`; NaN is
/// neither.
pub fn classify(act: Activation, z: f64) -> (bool, bool) {
    let d = derivative(act, z).abs();
    if z.is_nan() || d.is_nan() {
        return (false, false);
    }
    (d == 0.0, d > 0.0 && d < f64::from(SATURATION_THRESHOLD))
}

/// The statistics of one layer with activation `act`, pre-activation `z` (row-major, `cols` columns) and
/// gradients `dw`, `db`.
pub fn layer_stats(act: Activation, z: &[f64], cols: usize, dw: &[f64], db: &[f64]) -> LayerStats {
    let norm = |v: &[f64]| v.iter().map(|g| g * g).sum::<f64>().sqrt();
    let mut s = LayerStats {
        weight_grad_norm: norm(dw),
        bias_grad_norm: norm(db),
        units: z.len() as u64,
        dead: 0,
        saturated: 0,
        ambiguous: 0,
        dead_neurons: 0,
        saturated_neurons: 0,
        ambiguous_neurons: 0,
    };
    let cols = cols.max(1);
    let (mut active, mut unsure_col) = (vec![false; cols], vec![false; cols]);
    let mut steep = vec![false; cols];
    for (i, &v) in z.iter().enumerate() {
        let (dead, saturated) = classify(act, v);
        s.dead += u64::from(dead);
        s.saturated += u64::from(saturated);
        let e = 1e-4 * (1.0 + v.abs());
        let d = derivative(act, v).abs();
        let unsure = classify(act, v - e) != (dead, saturated)
            || classify(act, v + e) != (dead, saturated)
            || (d > 0.0 && d < 1e-30);
        s.ambiguous += u64::from(unsure);
        let counted = !v.is_nan() && !d.is_nan();
        active[i % cols] |= counted && d != 0.0;
        steep[i % cols] |= counted && d >= f64::from(SATURATION_THRESHOLD);
        unsure_col[i % cols] |= unsure;
    }
    if !z.is_empty() {
        s.dead_neurons = active.iter().filter(|&&a| !a).count() as u64;
        s.saturated_neurons = active.iter().zip(&steep).filter(|(&a, &t)| a && !t).count() as u64;
    }
    s.ambiguous_neurons = unsure_col.iter().filter(|&&u| u).count() as u64;
    s
}

impl Mlp {
    /// Every layer's [`LayerStats`] for the batch `x [batch, sizes[0]]` at the current parameters: what
    /// [`crate::Mlp::diagnostics`] reports after a step on this batch from the same parameters.
    pub fn diagnostics(&self, x: &[f64], batch: usize, target: Target) -> Vec<LayerStats> {
        // The pre-activations of the step: a randomized leaky ReLU layer at that step's draws, which the layers
        // after it see.
        let (_, zs) = self.forward_in(x, batch, Some(self.step + 1));
        let (_, grads) = self.loss_and_grads(x, batch, target);
        grads
            .iter()
            .enumerate()
            .map(|(l, g)| {
                let act = self.hidden.get(l).copied().unwrap_or(Activation::Identity);
                layer_stats(act, &zs[l], g.db.len(), &g.dw, &g.db)
            })
            .collect()
    }
}
