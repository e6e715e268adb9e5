//! Launchers: one module per kernel family, each recording into a caller's `wgpu::CommandEncoder`.

pub mod activation;
pub mod bias;
mod cast;
mod elementwise;
pub mod gated;
pub mod learnable;
