//! The one registry of WGSL sources: every `include_str!` of the crate lives here.

use crate::Activation;

/// An assembled WGSL source.
#[derive(Debug, Clone)]
pub struct Source {
    /// The whole module.
    pub text: String,
    /// The 1-based line where a user-defined activation's code begins, when one is compiled in.
    pub custom_first_line: Option<usize>,
}

/// The user-defined activation hooks of the activation library when none is supplied: never called, since no
/// built-in id selects them.
const CUSTOM_STUB: &str = "fn custom_forward(x: f32) -> f32 { return x; }\nfn custom_derivative(x: f32) -> f32 { return 1.0; }\n";

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
    /// Matrix products of the dense layer with a bias + activation epilogue (`shaders/matmul_common.wgsl`,
    /// `shaders/matmul.wgsl`), operands bound as `u32` words (`shaders/matmul_operands.wgsl`).
    Matmul,
    /// The same kernels with operands bound as `vec4<u32>`, for 16-byte loads
    /// (`shaders/matmul_operands_wide.wgsl`; [`crate::ops::matmul::MatmulKernel::TiledWide`]).
    MatmulWide,
    /// A generated matmul of CPU adapters (`shaders/matmul_common.wgsl` and `src/ops/matmul_subgroup.rs`) for
    /// one product form, rows per workgroup and invocations per workgroup: with subgroups (`matmul_subgroup`,
    /// needs `SUBGROUP`, `lanes` = the subgroup size) or without (`matmul_vec4`).
    MatmulGenerated {
        /// The product form.
        form: crate::ops::matmul::Form,
        /// Rows of C per invocation.
        rows: u32,
        /// Invocations per workgroup.
        lanes: u32,
        /// Whether the lanes share A through subgroup operations.
        subgroup: bool,
        /// Column blocks of four per invocation (1 with `subgroup`).
        vecs: u32,
        /// How B is loaded: `vec4`s, or scalars where its rows are not whole `vec4`s.
        b_load: crate::ops::matmul::BLoad,
    },
    /// Losses fused with their gradients, and the mean's reduction (`shaders/loss.wgsl`).
    Loss,
    /// Softmax and log-softmax over the last dimension, forward and backward (`shaders/softmax.wgsl`), operands
    /// of any storage type packed in `u32` words (`shaders/activation_io_packed.wgsl`).
    Softmax,
    /// The randomized leaky ReLU's training mode, forward and backward (`shaders/rrelu.wgsl`), operands of any
    /// storage type packed in `u32` words (`shaders/activation_io_packed.wgsl`).
    Rrelu,
    /// Optimizer updates: SGD with momentum / Nesterov, Adam, AdamW (`shaders/optim.wgsl`).
    Optim,
    /// The dense backward's dZ pass with dead / saturated derivative counts (`shaders/dz_stats.wgsl`).
    DzStats,
    /// Benchmark ceilings: copy and FMA-bound kernels (`shaders/ceilings.wgsl`, used by [`crate::bench`]).
    Ceilings,
}

/// The name of the WGSL constant for activation id `id` (`ACT_GELU`, `ACT_CUSTOM`), if it names one.
fn activation_constant(id: u32) -> Option<String> {
    if id == crate::activation::CUSTOM_ID {
        return Some("ACT_CUSTOM".to_string());
    }
    Activation::ALL
        .iter()
        .find(|a| a.id() == id)
        .map(|a| format!("ACT_{}", a.name().to_ascii_uppercase()))
}

const STORAGE: &str = include_str!("../shaders/storage.wgsl");
const ACTIVATION_LIB: &str = include_str!("../shaders/activation_lib.wgsl");
const ACTIVATION_IO_PACKED: &str = include_str!("../shaders/activation_io_packed.wgsl");
const ACTIVATION_IO_F16: &str = include_str!("../shaders/activation_io_f16.wgsl");
const ACTIVATION_KERNELS: &str = include_str!("../shaders/activation.wgsl");
const BIAS_ACTIVATION: &str = include_str!("../shaders/bias_activation.wgsl");
const GATED: &str = include_str!("../shaders/gated.wgsl");
const LEARNABLE: &str = include_str!("../shaders/learnable.wgsl");
const MATMUL_COMMON: &str = include_str!("../shaders/matmul_common.wgsl");
const MATMUL: &str = include_str!("../shaders/matmul.wgsl");
const MATMUL_OPERANDS: &str = include_str!("../shaders/matmul_operands.wgsl");
const MATMUL_OPERANDS_WIDE: &str = include_str!("../shaders/matmul_operands_wide.wgsl");
const LOSS: &str = include_str!("../shaders/loss.wgsl");
const SOFTMAX: &str = include_str!("../shaders/softmax.wgsl");
const RRELU: &str = include_str!("../shaders/rrelu.wgsl");
const OPTIM: &str = include_str!("../shaders/optim.wgsl");
const DZ_STATS: &str = include_str!("../shaders/dz_stats.wgsl");
const CEILINGS: &str = include_str!("../shaders/ceilings.wgsl");

impl ShaderId {
    /// A label for wgpu objects and error messages.
    pub const fn label(self) -> &'static str {
        match self {
            ShaderId::Activation => "actgpu.activation",
            ShaderId::ActivationNativeF16 => "actgpu.activation_native_f16",
            ShaderId::BiasActivation => "actgpu.bias_activation",
            ShaderId::Gated => "actgpu.gated",
            ShaderId::Learnable => "actgpu.learnable",
            ShaderId::Matmul => "actgpu.matmul",
            ShaderId::MatmulWide => "actgpu.matmul_wide",
            ShaderId::MatmulGenerated { .. } => "actgpu.matmul_generated",
            ShaderId::Loss => "actgpu.loss",
            ShaderId::Softmax => "actgpu.softmax",
            ShaderId::Rrelu => "actgpu.rrelu",
            ShaderId::Optim => "actgpu.optim",
            ShaderId::DzStats => "actgpu.dz_stats",
            ShaderId::Ceilings => "actgpu.ceilings",
        }
    }

    /// The complete WGSL source with the built-in activations only.
    pub fn source(self) -> String {
        self.source_with(None).text
    }

    /// The complete WGSL source: enables, generated constants, the user-defined activation (`custom`, WGSL
    /// defining `custom_forward` and `custom_derivative`) or its stub, the storage codecs, the activation
    /// library, the operand access, the kernels.
    pub fn source_with(self, custom: Option<&str>) -> Source {
        self.source_for(custom, None)
    }

    /// [`ShaderId::source_with`] for pipelines whose override `ACT` is `act` (an [`Activation::id`]), when
    /// given: the activation library's `switch ACT` statements keep only the case that `act` selects (see
    /// `src/specialize.rs`; the same program for those pipelines, much less code for the driver to compile). An
    /// id that names no activation compiles the whole library.
    pub fn source_for(self, custom: Option<&str>, act: Option<u32>) -> Source {
        let specialized = act
            .and_then(activation_constant)
            .and_then(|c| crate::specialize::act_switches(ACTIVATION_LIB, &c));
        let library = specialized.as_deref().unwrap_or(ACTIVATION_LIB);
        let enable = if self == ShaderId::ActivationNativeF16 {
            "enable f16;\n"
        } else {
            ""
        };
        let header = format!("{enable}{}", Activation::wgsl_ids());
        let custom_first_line = custom.map(|_| header.lines().count() + 1);
        let hooks = custom.unwrap_or(CUSTOM_STUB);
        let parts: &[&str] = match self {
            ShaderId::Activation => &[STORAGE, library, ACTIVATION_IO_PACKED, ACTIVATION_KERNELS],
            ShaderId::ActivationNativeF16 => {
                &[STORAGE, library, ACTIVATION_IO_F16, ACTIVATION_KERNELS]
            }
            ShaderId::BiasActivation => &[STORAGE, library, ACTIVATION_IO_PACKED, BIAS_ACTIVATION],
            ShaderId::Gated => &[STORAGE, library, ACTIVATION_IO_PACKED, GATED],
            ShaderId::Learnable => &[
                STORAGE,
                library,
                ACTIVATION_IO_PACKED,
                BIAS_ACTIVATION,
                LEARNABLE,
            ],
            ShaderId::Matmul => &[STORAGE, library, MATMUL_COMMON, MATMUL_OPERANDS, MATMUL],
            ShaderId::MatmulWide => &[
                STORAGE,
                library,
                MATMUL_COMMON,
                MATMUL_OPERANDS_WIDE,
                MATMUL,
            ],
            ShaderId::MatmulGenerated {
                form,
                rows,
                lanes,
                subgroup,
                vecs,
                b_load,
            } => {
                let kernel = if subgroup {
                    crate::ops::matmul_subgroup::kernel_source(form, rows, lanes, b_load)
                } else {
                    crate::ops::matmul_subgroup::private_source(form, rows, lanes, vecs, b_load)
                };
                return Source {
                    text: format!(
                        "{header}{hooks}\n{}",
                        [STORAGE, library, MATMUL_COMMON, &kernel].join("\n")
                    ),
                    custom_first_line,
                };
            }
            ShaderId::Loss => &[STORAGE, library, LOSS],
            ShaderId::Softmax => &[STORAGE, library, ACTIVATION_IO_PACKED, SOFTMAX],
            ShaderId::Rrelu => &[STORAGE, library, ACTIVATION_IO_PACKED, RRELU],
            ShaderId::DzStats => &[STORAGE, library, DZ_STATS],
            ShaderId::Optim => {
                return Source {
                    text: OPTIM.to_string(),
                    custom_first_line: None,
                }
            }
            ShaderId::Ceilings => {
                return Source {
                    text: CEILINGS.to_string(),
                    custom_first_line: None,
                }
            }
        };
        Source {
            text: format!("{header}{hooks}\n{}", parts.join("\n")),
            custom_first_line,
        }
    }
}
