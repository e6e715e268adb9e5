//! Launchers: one module per kernel family, each recording into a caller's `wgpu::CommandEncoder`.

pub mod activation;
mod cast;
mod elementwise;
