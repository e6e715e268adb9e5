//! The crate's one error type. Every variant carries the fields a caller needs to act on it.

use std::fmt;

use crate::DType;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in actgpu. Caller mistakes are reported here, never as panics (in the GPU API;
/// the f64 reference in [`crate::cpu`] expects well-formed inputs and panics otherwise).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Two tensors that must agree in shape do not.
    ShapeMismatch {
        /// The operation that checked.
        op: &'static str,
        /// The shape it required.
        expected: Vec<usize>,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// A tensor has an element type the operation does not take.
    DTypeMismatch {
        /// The operation that checked.
        op: &'static str,
        /// The type it required.
        expected: DType,
        /// The type it was given.
        got: DType,
    },
    /// A parameter is outside the range where the operation is defined.
    InvalidArgument {
        /// The operation that checked.
        op: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// A request exceeds a limit of the device (or of wgpu).
    LimitExceeded {
        /// Which limit, by its `wgpu::Limits` name where it has one.
        limit: &'static str,
        /// The device's value of that limit.
        max: u64,
        /// What the request needed.
        requested: u64,
    },
    /// A buffer lacks a usage flag the operation needs (for wrapped host buffers).
    MissingUsage {
        /// The operation that checked.
        op: &'static str,
        /// The missing flags, as wgpu prints them.
        missing: String,
    },
    /// Tensors from different `Gpu` contexts were mixed in one call.
    DeviceMismatch {
        /// The operation that checked.
        op: &'static str,
    },
    /// No adapter matched the request.
    NoAdapter {
        /// The backends that were searched (from `WGPU_BACKEND`, or all).
        backends: String,
        /// wgpu's own explanation.
        reason: String,
        /// How to get one on a machine without a GPU ([`NO_ADAPTER_HINT`]): a field, so that the `Debug` form a
        /// test's `unwrap` prints says it too.
        how_to_get_one: &'static str,
    },
    /// The adapter refused to create a device.
    RequestDevice {
        /// wgpu's explanation.
        reason: String,
    },
    /// The device was lost; every later call fails with this.
    DeviceLost {
        /// wgpu's explanation.
        reason: String,
    },
    /// Copying results back to the host failed.
    Readback {
        /// What failed.
        reason: String,
    },
    /// A user-defined activation's WGSL does not compile.
    CustomShader {
        /// The activation's name.
        name: String,
        /// The body the compiler points into, when it points into the user's code (both this and `line` are
        /// `Some`, or both `None`).
        body: Option<CustomBody>,
        /// The line of that body the compiler points at, 1 being its first line. An error the compiler places
        /// on the whole function (a missing `return`, a value of the wrong type) points at line 1.
        line: Option<usize>,
        /// The compiler's message.
        message: String,
    },
    /// A file names a user-defined activation (`custom(<name>)` in a saved network's metadata) that cannot be
    /// resolved: no [`crate::CustomActivation`] of that name is registered in this process, or several are
    /// whose WGSL differs. Create the one the file was saved with ([`crate::CustomActivation::new`], with the
    /// same name) before loading it.
    UnresolvedCustomActivation {
        /// The name the file gives.
        name: String,
        /// How many different activations (by their WGSL) are registered under that name: 0 when none is, 2
        /// or more when the file does not say which it means.
        candidates: usize,
    },
    /// wgpu reported an error (shader compilation, validation, out of memory) captured through an error scope.
    Wgpu {
        /// The operation during which it was captured.
        op: &'static str,
        /// wgpu's message.
        message: String,
    },
    /// A safetensors file is malformed: a bad header length, header JSON, dtype, shape or data offsets.
    InvalidSafetensors {
        /// What is wrong, in words.
        reason: String,
    },
    /// A tensor a model needs is not in a safetensors file.
    MissingTensor {
        /// The tensor's name, e.g. `2.weight`.
        name: String,
    },
    /// A tensor in a safetensors file has a different shape from the one the model needs.
    TensorShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A tensor in a safetensors file has an element type that cannot be converted to the one the model needs.
    TensorDTypeMismatch {
        /// The tensor's name.
        name: String,
        /// The types that are accepted, as safetensors spells them.
        expected: String,
        /// The type in the file.
        got: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: String,
        /// The operating system's explanation.
        reason: String,
    },
}

/// How to get an adapter on a machine without a GPU; part of the `NoAdapter` message.
pub const NO_ADAPTER_HINT: &str = "install a software driver: `apt-get install -y mesa-vulkan-drivers` for \
     Vulkan (lavapipe), or Mesa's EGL/llvmpipe (`apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri`) for \
     GL; choose one with WGPU_BACKEND=vulkan or WGPU_BACKEND=gl";

/// One of a user-defined activation's two WGSL bodies ([`crate::CustomActivation::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomBody {
    /// The body of `f(x)`.
    Forward,
    /// The body of `f'(x)`.
    Derivative,
}

impl CustomBody {
    /// `forward` or `derivative`.
    pub const fn name(self) -> &'static str {
        match self {
            CustomBody::Forward => "forward",
            CustomBody::Derivative => "derivative",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, expected, got } => {
                write!(
                    f,
                    "{op}: shape mismatch: expected {expected:?}, got {got:?}"
                )
            }
            Error::DTypeMismatch { op, expected, got } => {
                write!(
                    f,
                    "{op}: dtype mismatch: expected {expected:?}, got {got:?}"
                )
            }
            Error::InvalidArgument { op, reason } => write!(f, "{op}: invalid argument: {reason}"),
            Error::LimitExceeded {
                limit,
                max,
                requested,
            } => write!(
                f,
                "limit {limit} exceeded: requested {requested}, device maximum {max}"
            ),
            Error::MissingUsage { op, missing } => {
                write!(f, "{op}: buffer lacks usage {missing}")
            }
            Error::DeviceMismatch { op } => {
                write!(f, "{op}: tensors belong to different Gpu contexts")
            }
            Error::NoAdapter {
                backends,
                reason,
                how_to_get_one,
            } => write!(
                f,
                "no GPU adapter found on backends {backends} ({reason}); {how_to_get_one}"
            ),
            Error::RequestDevice { reason } => write!(f, "request_device failed: {reason}"),
            Error::DeviceLost { reason } => write!(f, "device lost: {reason}"),
            Error::Readback { reason } => write!(f, "readback failed: {reason}"),
            Error::CustomShader {
                name,
                body: Some(body),
                line: Some(line),
                message,
            } => write!(
                f,
                "custom activation {name}: WGSL error at line {line} of its {} code: {message}",
                body.name()
            ),
            Error::CustomShader { name, message, .. } => {
                write!(f, "custom activation {name}: WGSL error: {message}")
            }
            Error::UnresolvedCustomActivation {
                name,
                candidates: 0,
            } => write!(
                f,
                "custom activation {name:?} is not registered: create it with CustomActivation::new({name:?}, ..) \
                 before loading a network that uses it"
            ),
            Error::UnresolvedCustomActivation { name, candidates } => write!(
                f,
                "custom activation {name:?} is ambiguous: {candidates} activations with different WGSL are \
                 registered under that name"
            ),
            Error::Wgpu { op, message } => write!(f, "{op}: wgpu error: {message}"),
            Error::InvalidSafetensors { reason } => write!(f, "invalid safetensors file: {reason}"),
            Error::MissingTensor { name } => write!(f, "tensor {name:?} is missing from the file"),
            Error::TensorShapeMismatch {
                name,
                expected,
                got,
            } => write!(
                f,
                "tensor {name:?}: shape mismatch: expected {expected:?}, got {got:?}"
            ),
            Error::TensorDTypeMismatch {
                name,
                expected,
                got,
            } => write!(
                f,
                "tensor {name:?}: dtype {got} cannot be read as {expected}"
            ),
            Error::Io { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
