//! Shared by the integration tests: one GPU context per test binary.
//!
//! There is no silent skip: without an adapter every GPU test fails with a message that says how to get one.

#![allow(dead_code)]

pub mod products;

use std::sync::OnceLock;

use actgpu::Gpu;

/// The test binary's context, on the backend `WGPU_BACKEND` names.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}")))
}

/// Formats the failures of a list of checks for an assertion message.
pub fn describe<T: std::fmt::Debug>(failures: &[T]) -> String {
    failures
        .iter()
        .map(|f| format!("{f:#?}"))
        .collect::<Vec<_>>()
        .join("\n")
}
