//! # actgpu
//!
//! Activation functions, forward and backward, as WGSL compute kernels on wgpu, checked against an f64 CPU
//! reference ([`cpu`]). See README.md for the tour.
//!
//! ```no_run
//! use actgpu::{Activation, Gpu};
//! # fn main() -> actgpu::Result<()> {
//! let gpu = Gpu::new()?;
//! let x = gpu.upload(&[-1.0f32, 0.0, 2.0])?;
//! let y = Activation::Gelu.forward(&x)?;
//! println!("{:?}", y.read::<f32>()?);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod activation;
pub mod bench;
pub mod cpu;
mod custom;
pub mod datasets;
pub mod dispatch;
mod dtype;
mod error;
mod gpu;
pub mod nn;
pub mod ops;
pub mod pipeline;
mod probe;
pub mod shaders;
mod specialize;
#[cfg(feature = "study")]
pub mod study;
mod tensor;
pub mod verify;

pub use activation::{Activation, SELU_ALPHA, SELU_SCALE};
pub use custom::{CustomActivation, CustomCheck};
pub use dispatch::{Intensity, LaunchConfig};
pub use dtype::{DType, Element};
pub use error::{CustomBody, Error, Result, NO_ADAPTER_HINT};
pub use gpu::{F16Storage, Gpu, GpuOptions, MAX_BINDING_BYTES};
pub use nn::{Hidden, Mlp};
pub use ops::dense::{Dense, DenseGrads, DzMode};
pub use ops::gated::Gated;
pub use ops::learnable::Learnable;
pub use ops::loss::{Labels, Loss, Targets};
pub use ops::matmul::{matmul, matmul_a_bt, matmul_at_b, MatmulKernel};
pub use ops::optim::{Adam, OptimState, Optimizer, Sgd};
pub use ops::rrelu::Rrelu;
pub use ops::softmax::SoftmaxKind;
pub use tensor::{padded_bytes, Tensor, TENSOR_USAGE};

/// Re-export of the wgpu version actgpu is built on, for hosts that share their device.
pub use wgpu;

/// Re-export of the `half` version whose `f16` and `bf16` the tensors upload and read (`actgpu::half::f16`), so a
/// caller needs no dependency of its own to match it.
pub use half;

/// The README's code blocks, compiled and run as doctests so the quick start cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
