//! Launchers: one module per kernel family, each recording into a caller's `wgpu::CommandEncoder`.
//!
//! Every `record_*` function of these modules is all or nothing: it plans each pass first (pipelines compiled,
//! bind groups made, every chunk's grid and binding checked) and records them only when all succeeded, so one
//! that returns an error has left the encoder as it was, whichever step failed, and the encoder can still be
//! submitted with the caller's own work in it. (One mistake no planning step sees: a clear of a host buffer the
//! host destroyed, which wgpu reports when the encoder finishes, failing the whole encoder.)

pub mod activation;
pub mod bias;
mod cast;
pub mod dense;
pub mod dz_stats;
mod elementwise;
pub(crate) mod f16_rounding;
pub mod gated;
pub mod learnable;
pub mod loss;
pub mod matmul;
pub(crate) mod matmul_subgroup;
pub mod optim;
pub(crate) mod recording;
pub mod rrelu;
pub mod softmax;
