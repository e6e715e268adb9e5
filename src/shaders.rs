//! The one registry of WGSL sources: every `include_str!` of the crate lives here.

use crate::Activation;

/// A shader module the crate compiles. Part of [`crate::pipeline::PipelineKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShaderId {
    /// Elementwise activation forward and backward (`shaders/activation.wgsl`), operands of any storage type
    /// packed in `u32` words (`shaders/activation_io_packed.wgsl`).
    Activation,
    /// The same kernels with native `f16` operands (`shaders/activation_io_f16.wgsl`); needs `SHADER_F16`.
    ActivationNativeF16,
    /// Bias + activation forward and backward with the bias gradient (`shaders/bias_activation.wgsl`).
    BiasActivation,
    /// Gated units `a * f(g)`, forward and backward (`shaders/gated.wgsl`).
    Gated,
    /// Activations with a learnable parameter (`shaders/learnable.wgsl`, on top of bias_activation.wgsl).
    Learnable,
}

const STORAGE: &str = include_str!("../shaders/storage.wgsl");
const ACTIVATION_LIB: &str = include_str!("../shaders/activation_lib.wgsl");
const ACTIVATION_IO_PACKED: &str = include_str!("../shaders/activation_io_packed.wgsl");
const ACTIVATION_IO_F16: &str = include_str!("../shaders/activation_io_f16.wgsl");
const ACTIVATION_KERNELS: &str = include_str!("../shaders/activation.wgsl");
const BIAS_ACTIVATION: &str = include_str!("../shaders/bias_activation.wgsl");
const GATED: &str = include_str!("../shaders/gated.wgsl");
const LEARNABLE: &str = include_str!("../shaders/learnable.wgsl");

impl ShaderId {
    /// A label for wgpu objects and error messages.
    pub const fn label(self) -> &'static str {
        match self {
            ShaderId::Activation => "actgpu.activation",
            ShaderId::ActivationNativeF16 => "actgpu.activation_native_f16",
            ShaderId::BiasActivation => "actgpu.bias_activation",
            ShaderId::Gated => "actgpu.gated",
            ShaderId::Learnable => "actgpu.learnable",
        }
    }

    /// The complete WGSL source: enables, generated constants, the storage codecs, the activation library, the
    /// operand access, the kernels.
    pub fn source(self) -> String {
        match self {
            ShaderId::Activation => format!(
                "{}\n{STORAGE}\n{ACTIVATION_LIB}\n{ACTIVATION_IO_PACKED}\n{ACTIVATION_KERNELS}",
                Activation::wgsl_ids()
            ),
            ShaderId::BiasActivation => format!(
                "{}\n{STORAGE}\n{ACTIVATION_LIB}\n{ACTIVATION_IO_PACKED}\n{BIAS_ACTIVATION}",
                Activation::wgsl_ids()
            ),
            ShaderId::Gated => format!(
                "{}\n{STORAGE}\n{ACTIVATION_LIB}\n{ACTIVATION_IO_PACKED}\n{GATED}",
                Activation::wgsl_ids()
            ),
            ShaderId::Learnable => format!(
                "{}\n{STORAGE}\n{ACTIVATION_LIB}\n{ACTIVATION_IO_PACKED}\n{BIAS_ACTIVATION}\n{LEARNABLE}",
                Activation::wgsl_ids()
            ),
            ShaderId::ActivationNativeF16 => format!(
                "enable f16;\n{}\n{STORAGE}\n{ACTIVATION_LIB}\n{ACTIVATION_IO_F16}\n{ACTIVATION_KERNELS}",
                Activation::wgsl_ids()
            ),
        }
    }
}
