//! Launchers: one module per kernel family, each recording into a caller's `wgpu::CommandEncoder`.

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
