//! The one registry of WGSL sources: every `include_str!` of the crate lives here.

use crate::Activation;

/// A shader module the crate compiles. Part of [`crate::pipeline::PipelineKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShaderId {
    /// Elementwise activation forward and backward (`shaders/activation.wgsl`).
    Activation,
}

const STORAGE: &str = include_str!("../shaders/storage.wgsl");
const ACTIVATION_LIB: &str = include_str!("../shaders/activation_lib.wgsl");
const ACTIVATION_KERNELS: &str = include_str!("../shaders/activation.wgsl");

impl ShaderId {
    /// A label for wgpu objects and error messages.
    pub const fn label(self) -> &'static str {
        match self {
            ShaderId::Activation => "actgpu.activation",
        }
    }

    /// The complete WGSL source: generated constants, the storage codecs, the activation library, the kernels.
    pub fn source(self) -> String {
        match self {
            ShaderId::Activation => {
                format!(
                    "{}\n{STORAGE}\n{ACTIVATION_LIB}\n{ACTIVATION_KERNELS}",
                    Activation::wgsl_ids()
                )
            }
        }
    }
}
