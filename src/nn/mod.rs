//! Training on the GPU: a multi-layer perceptron ([`Mlp`]) built on the dense layer, the fused losses and the
//! optimizer kernels, its deterministic initialisation ([`init`]), per-layer training [`diagnostics`] gathered
//! by the kernels the step runs anyway, and its weights in safetensors files ([`checkpoint`]; with the
//! optimizer's state, to resume training, [`training_checkpoint`]; on the dependency-free reader and writer in
//! [`safetensors`]).

pub mod checkpoint;
pub mod diagnostics;
pub mod hidden;
pub mod init;
mod json;
pub mod mlp;
pub mod safetensors;
pub mod training_checkpoint;

pub use diagnostics::LayerDiagnostics;
pub use hidden::{rrelu_layer_seed, Hidden};
pub use init::{init_layers, init_params, Init};
pub use mlp::Mlp;
