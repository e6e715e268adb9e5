//! Activation workloads: random operands, rotated when small, recorded through the public launchers.
//!
//! Memory traffic per element ([`bytes_per_element`]): forward reads `x` and writes `y`, 2 elements (8 bytes in
//! f32, 4 in f16/bf16); backward reads `x` and `dy` and writes `dx`, 3 elements (12 bytes in f32, 6 in f16/bf16).
//!
//! Arithmetic per element ([`flops_per_element`]) is an estimate counted from `shaders/activation_lib.wgsl`:
//! every add, subtract, multiply, divide, min, max, abs, comparison and select counts 1 FLOP, a clamp 2, a
//! multiply-add step of a polynomial 2, and each `exp` 16 (a software adapter evaluates it as a range reduction,
//! a degree-5 polynomial and an exponent scaling; a GPU's special-function unit is far cheaper). Both sides of a
//! data-dependent branch count, since random signs make SIMD lanes diverge. The NaN handling adds 3 FLOP
//! forward (bit test and select) and 7 backward (two bit tests, the product with `dy`, select).
//!
//! | activation | forward | backward | | activation | forward | backward |
//! |---|---:|---:|---|---|---:|---:|
//! | identity | 3 | 7 | | swish | 32 | 39 |
//! | relu | 4 | 9 | | mish | 29 | 64 |
//! | relu6 | 5 | 11 | | softplus | 50 | 36 |
//! | leaky_relu | 6 | 9 | | softsign | 8 | 12 |
//! | elu | 46 | 28 | | sigmoid | 28 | 31 |
//! | celu | 47 | 28 | | log_sigmoid | 46 | 33 |
//! | selu | 47 | 29 | | tanh | 51 | 32 |
//! | gelu | 63 | 68 | | hardtanh | 5 | 11 |
//! | gelu_tanh | 38 | 50 | | hardsigmoid | 7 | 11 |
//! | quick_gelu | 32 | 39 | | hardswish | 10 | 13 |
//! | silu | 31 | 38 | | relu_squared | 5 | 9 |
//! | hardshrink | 6 | 10 | | softshrink | 12 | 10 |
//! | tanhshrink | 72 | 56 | | threshold | 5 | 9 |

use crate::verify::{Pass, Rng};
use crate::{Activation, DType, Gpu, Result, Tensor};

/// Operand sets are rotated until the bytes one pass touches over all of them reach this, so that repeated runs
/// on small tensors do not measure a cache: twice the 50 MB L2 of an NVIDIA H200, far past a CPU's caches.
pub const ROTATION_BYTES: u64 = 128 << 20;

/// At most this many operand sets are rotated (2^16 f32 elements take all of them: 256 x 512 KiB forward).
/// Smaller rows rotate less than [`ROTATION_BYTES`]: 16-bit at 2^16 elements 64 MiB forward (as `--quick` runs
/// them), f32 at 2^14 32 MiB, at 2^12 8 MiB, which a large GPU's L2 or a CPU's L3 holds: such rows measure a
/// cache in part.
pub const MAX_SETS: usize = 256;

/// Bytes read plus written per element: 2 elements forward (`x` in, `y` out), 3 backward (`x`, `dy` in, `dx`
/// out), each `dtype.size_bytes()`; in f32, 8 and 12.
pub const fn bytes_per_element(pass: Pass, dtype: DType) -> u64 {
    let tensors = match pass {
        Pass::Forward => 2,
        Pass::Backward => 3,
    };
    tensors * dtype.size_bytes() as u64
}

/// Approximate FLOP per element of the activation's kernel in this pass; see the module documentation for how
/// they are counted.
pub const fn flops_per_element(act: Activation, pass: Pass) -> u32 {
    // (f(x) alone, f'(x) alone), before the NaN handling.
    let (f, d) = match act {
        Activation::Identity => (0, 0),
        Activation::Relu => (1, 2),
        Activation::Relu6 => (2, 4),
        Activation::LeakyRelu { .. } => (3, 2),
        Activation::Elu { .. } => (43, 21),
        Activation::Celu { .. } => (44, 21),
        Activation::Selu => (44, 22),
        Activation::Gelu => (60, 61),
        Activation::GeluTanh => (35, 43),
        Activation::QuickGelu => (29, 32),
        Activation::Silu => (28, 31),
        Activation::Swish { .. } => (29, 32),
        Activation::Mish => (26, 57),
        Activation::Softplus { .. } => (47, 29),
        Activation::Softsign => (5, 5),
        Activation::Sigmoid => (25, 24),
        Activation::LogSigmoid => (43, 26),
        Activation::Tanh => (48, 25),
        Activation::Hardtanh { .. } => (2, 4),
        Activation::Hardsigmoid => (4, 4),
        Activation::Hardswish => (7, 6),
        // Backward is (dy * max(x, 0)) * 2 with no separate product: one less than the others' overhead.
        Activation::ReluSquared => (2, 3),
        Activation::Hardshrink { .. } => (3, 3),
        // x +- lambd, its select, the infinity test and select, and the mask's abs, compare and select.
        Activation::Softshrink { .. } => (9, 3),
        // tanh, and the degree-6 polynomial of the small arguments beside it (both are evaluated); f' is tanh^2.
        Activation::Tanhshrink => (69, 49),
        // The compare and select of the mask, forward and backward.
        Activation::Threshold { .. } => (2, 2),
        // User code: unknown; counted as the NaN handling only.
        Activation::Custom { .. } => (0, 0),
    };
    match (pass, act) {
        (Pass::Forward, _) => f + 3,
        (Pass::Backward, Activation::ReluSquared) => d + 6,
        (Pass::Backward, _) => d + 7,
    }
}

/// One set of operands: `x`, `dy` (random) and an output.
#[derive(Debug)]
struct Operands {
    x: Tensor,
    dy: Tensor,
    out: Tensor,
}

/// How many operand sets of `set_bytes` each to rotate: enough to span [`ROTATION_BYTES`], 1 to [`MAX_SETS`].
pub fn rotation_sets(set_bytes: u64) -> usize {
    ROTATION_BYTES
        .div_ceil(set_bytes.max(1))
        .clamp(1, MAX_SETS as u64) as usize
}

/// `n` random values uniform in [lo, hi).
pub fn random_values(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(lo, hi)).collect()
}

/// Random operands for elementwise kernels of one length and storage type: enough sets that, rotated, they span
/// [`ROTATION_BYTES`] (see [`rotation_sets`]).
///
/// `x` is uniform in [-4, 4) (both signs, every branch of every activation), `dy` uniform in [-1, 1); sets share
/// values but not buffers.
#[derive(Debug)]
pub struct ElementwiseOperands {
    elements: usize,
    dtype: DType,
    sets: Vec<Operands>,
}

impl ElementwiseOperands {
    /// Allocates and fills the sets for tensors of `elements` elements of `dtype`.
    pub fn new(gpu: &Gpu, elements: usize, dtype: DType, seed: u64) -> Result<Self> {
        super::check_elements(gpu, elements, 4)?;
        let mut rng = Rng::new(seed);
        let x = random_values(&mut rng, elements, -4.0, 4.0);
        let dy = random_values(&mut rng, elements, -1.0, 1.0);
        // Sized by the forward pass, which touches two of the three tensors (the backward touches all three).
        let count = rotation_sets(2 * elements as u64 * dtype.size_bytes() as u64);
        let mut sets = Vec::with_capacity(count);
        for _ in 0..count {
            let x = gpu.upload_f32_as(&x, dtype)?;
            let out = x.zeros_like()?;
            sets.push(Operands {
                x,
                dy: gpu.upload_f32_as(&dy, dtype)?,
                out,
            });
        }
        Ok(ElementwiseOperands {
            elements,
            dtype,
            sets,
        })
    }

    /// Elements per tensor.
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// The storage type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of operand sets rotated.
    pub fn sets(&self) -> usize {
        self.sets.len()
    }

    /// Records `act` in `pass` on operand set `rep % sets`: forward `y = f(x)`, backward `dx = dy * f'(x)`,
    /// through [`Activation::record_forward`] and [`Activation::record_backward`].
    pub fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        pass: Pass,
        rep: u64,
    ) -> Result<()> {
        let s = &self.sets[(rep % self.sets.len() as u64) as usize];
        match pass {
            Pass::Forward => act.record_forward(encoder, &s.x, &s.out),
            Pass::Backward => act.record_backward(encoder, &s.x, &s.dy, &s.out),
        }
    }

    /// Bytes read plus written by one run of a kernel in `pass`.
    pub fn bytes_moved(&self, pass: Pass) -> f64 {
        self.elements as f64 * bytes_per_element(pass, self.dtype) as f64
    }

    /// Approximate FLOP of one run of `act` in `pass`.
    pub fn flops(&self, act: Activation, pass: Pass) -> f64 {
        self.elements as f64 * f64::from(flops_per_element(act, pass))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_table_matches_the_doc_table() {
        let doc = include_str!("activations.rs");
        for act in Activation::ALL {
            let row = format!(
                "| {} | {} | {} |",
                act.name(),
                flops_per_element(act, Pass::Forward),
                flops_per_element(act, Pass::Backward)
            );
            assert!(doc.contains(&row), "doc table lacks {row}");
        }
    }
}
