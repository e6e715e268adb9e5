//! f64 reference of the optimizer updates ([`crate::ops::optim`]), with the same formulas; hyperparameters are
//! the f32 values the GPU sees, widened exactly.

use crate::ops::optim::Optimizer;

/// The optimizer state of one parameter: SGD's momentum buffer or Adam's moments (zeros before step 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// Momentum buffer, or Adam's first moment.
    pub m: Vec<f64>,
    /// Adam's second moment.
    pub v: Vec<f64>,
}

impl State {
    /// Zero state for `n` parameters.
    pub fn zeros(n: usize) -> Self {
        State {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }
}

/// `g + wd p`, the L2 decay in the gradient, skipped where `wd` is 0 as PyTorch skips it (so an infinite
/// parameter does not turn NaN through `0 * inf`).
fn l2(g: f64, wd: f64, p: f64) -> f64 {
    if wd == 0.0 {
        g
    } else {
        g + wd * p
    }
}

/// One update of `param` from `grad` at step `step` (>= 1), as [`Optimizer`] documents it.
pub fn update(opt: &Optimizer, param: &mut [f64], grad: &[f64], state: &mut State, step: u64) {
    match *opt {
        Optimizer::Sgd(s) => {
            let (lr, wd, mu, damp) = (
                f64::from(s.lr),
                f64::from(s.weight_decay),
                f64::from(s.momentum),
                f64::from(s.dampening),
            );
            for i in 0..param.len() {
                let mut g = l2(grad[i], wd, param[i]);
                if mu != 0.0 {
                    let b = if step == 1 {
                        g
                    } else {
                        mu * state.m[i] + (1.0 - damp) * g
                    };
                    state.m[i] = b;
                    g = if s.nesterov { g + mu * b } else { b };
                }
                param[i] -= lr * g;
            }
        }
        Optimizer::Adam(a) => {
            let (lr, b1, b2, eps, wd) = (
                f64::from(a.lr),
                f64::from(a.beta1),
                f64::from(a.beta2),
                f64::from(a.eps),
                f64::from(a.weight_decay),
            );
            let t = i32::try_from(step).unwrap_or(i32::MAX);
            let bc1 = 1.0 - b1.powi(t);
            let bc2 = 1.0 - b2.powi(t);
            for i in 0..param.len() {
                let mut g = grad[i];
                if a.decoupled {
                    param[i] *= 1.0 - lr * wd;
                } else {
                    g = l2(g, wd, param[i]);
                }
                state.m[i] = b1 * state.m[i] + (1.0 - b1) * g;
                state.v[i] = b2 * state.v[i] + (1.0 - b2) * g * g;
                let denom = state.v[i].sqrt() / bc2.sqrt() + eps;
                param[i] -= lr / bc1 * state.m[i] / denom;
            }
        }
    }
}
