//! Training on the GPU: a multi-layer perceptron ([`Mlp`]) built on the dense layer, the fused losses and the
//! optimizer kernels, and its deterministic initialisation ([`init`]).

pub mod init;
pub mod mlp;

pub use init::{init_params, Init};
pub use mlp::Mlp;
