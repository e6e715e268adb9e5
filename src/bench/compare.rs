//! Fused against unfused: the same math run as this crate's fused kernel and as the sequence of this crate's
//! separate kernels that a library without fusion would run, on the same operands, in the same run.
//!
//! | comparison | fused | unfused |
//! |---|---|---|
//! | `bias_gelu` forward | `y = gelu(x + b)` | `z = x + b` (bias with identity), `y = gelu(z)` |
//! | `bias_gelu` backward | `dx = dy gelu'(x + b)`, `db = sum dx` | `dx = gelu_backward(z, dy)`, `db = column_sums(dx)` |
//! | `swiglu` forward + backward | `out = a silu(g)`; `da`, `dg` in one pass | `s = silu(g)`, `out = a s`; `da = dout s`, `t = dout a`, `dg = silu_backward(g, t)` |
//!
//! The unfused backward of `bias_gelu` reads the pre-activation `z` that its forward wrote; the unfused SwiGLU
//! backward reads `s` from its forward. Products `a s` run as the gated kernel with the identity gate.

use super::{measure, Measurement, Sampling, Timer};
use crate::ops::bias::record_column_sums;
use crate::verify::Rng;
use crate::{Activation, DType, Gated, Result, Tensor};

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Bias + GELU forward.
    BiasGeluForward,
    /// Bias + GELU backward, dx and db.
    BiasGeluBackward,
    /// SwiGLU forward then backward.
    SwigluForwardBackward,
}

impl Comparison {
    /// Every comparison.
    pub const ALL: [Comparison; 3] = [
        Comparison::BiasGeluForward,
        Comparison::BiasGeluBackward,
        Comparison::SwigluForwardBackward,
    ];

    /// `(kernel, pass)` as the report names them.
    pub const fn name(self) -> (&'static str, &'static str) {
        match self {
            Comparison::BiasGeluForward => ("bias_gelu", "forward"),
            Comparison::BiasGeluBackward => ("bias_gelu", "backward"),
            Comparison::SwigluForwardBackward => ("swiglu", "forward+backward"),
        }
    }

    /// Bytes the fused version reads and writes on `[rows, cols]` f32 operands, counted for both versions so
    /// their rates compare: bias + GELU forward `8 N + 4 cols`, backward `12 N + 8 cols`; SwiGLU forward + backward
    /// `12 N + 20 N` (a, g in, out; a, g, dout in, da, dg out), `N = rows cols`.
    pub fn useful_bytes(self, rows: usize, cols: usize) -> f64 {
        let (n, c) = ((rows * cols) as f64, cols as f64);
        match self {
            Comparison::BiasGeluForward => 8.0 * n + 4.0 * c,
            Comparison::BiasGeluBackward => 12.0 * n + 8.0 * c,
            Comparison::SwigluForwardBackward => 32.0 * n,
        }
    }

    /// The target speed-up of fused over unfused.
    pub const fn target(self) -> f64 {
        match self {
            Comparison::BiasGeluForward => 1.8,
            Comparison::BiasGeluBackward | Comparison::SwigluForwardBackward => 1.5,
        }
    }
}

/// The operands of every comparison on `[rows, cols]` f32 tensors (for SwiGLU, a and g are each `[rows, cols]`).
pub struct CompareOperands {
    x: Tensor,
    b: Tensor,
    dy: Tensor,
    z: Tensor,
    y: Tensor,
    dx: Tensor,
    db: Tensor,
    s: Tensor,
    t: Tensor,
    dg: Tensor,
}

impl CompareOperands {
    /// Random operands (x in [-4, 4], the rest in [-2, 2]) for `[rows, cols]`.
    pub fn new(gpu: &crate::Gpu, rows: usize, cols: usize, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let mut matrix = |scale: f64| -> Result<Tensor> {
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| rng.uniform(-scale, scale))
                .collect();
            gpu.upload_shaped(&v, &[rows, cols])
        };
        let (x, dy, z, y, dx, s, t, dg) = (
            matrix(4.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
            matrix(2.0)?,
        );
        let b = gpu.upload(&(0..cols).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<_>>())?;
        let db = gpu.zeros(&[cols], DType::F32)?;
        Ok(CompareOperands {
            x,
            b,
            dy,
            z,
            y,
            dx,
            db,
            s,
            t,
            dg,
        })
    }

    /// Records the fused version of `c`.
    pub fn record_fused(&self, c: Comparison, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let o = self;
        match c {
            Comparison::BiasGeluForward => {
                Activation::Gelu.record_bias_forward(enc, &o.x, &o.b, &o.y)
            }
            Comparison::BiasGeluBackward => {
                Activation::Gelu.record_bias_backward(enc, &o.x, &o.b, &o.dy, &o.dx, &o.db)
            }
            Comparison::SwigluForwardBackward => {
                // a = x, g = z, dout = dy; out -> y, da -> dx, dg -> dg.
                Gated::SWIGLU.record_forward_pair(enc, &o.x, &o.z, &o.y)?;
                Gated::SWIGLU.record_backward_pair(enc, &o.x, &o.z, &o.dy, &o.dx, &o.dg)
            }
        }
    }

    /// Records the unfused version of `c`.
    pub fn record_unfused(&self, c: Comparison, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let o = self;
        let multiply = Gated {
            gate: Activation::Identity,
        };
        match c {
            Comparison::BiasGeluForward => {
                Activation::Identity.record_bias_forward(enc, &o.x, &o.b, &o.z)?;
                Activation::Gelu.record_forward(enc, &o.z, &o.y)
            }
            Comparison::BiasGeluBackward => {
                Activation::Gelu.record_backward(enc, &o.z, &o.dy, &o.dx)?;
                record_column_sums(enc, &o.dx, &o.db)
            }
            Comparison::SwigluForwardBackward => {
                Activation::Silu.record_forward(enc, &o.z, &o.s)?;
                multiply.record_forward_pair(enc, &o.x, &o.s, &o.y)?;
                multiply.record_forward_pair(enc, &o.dy, &o.s, &o.dx)?;
                multiply.record_forward_pair(enc, &o.dy, &o.x, &o.t)?;
                Activation::Silu.record_backward(enc, &o.z, &o.t, &o.dg)
            }
        }
    }
}

/// Times the fused and the unfused version of `c`, one after the other: `(fused, unfused)`.
pub fn measure_comparison(
    timer: &Timer,
    sampling: &Sampling,
    operands: &CompareOperands,
    c: Comparison,
) -> Result<(Measurement, Measurement)> {
    let fused = measure(timer, sampling, &mut |enc, _| operands.record_fused(c, enc))?;
    let unfused = measure(timer, sampling, &mut |enc, _| {
        operands.record_unfused(c, enc)
    })?;
    Ok((fused, unfused))
}
