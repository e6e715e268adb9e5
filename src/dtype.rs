//! Element types of tensors.

/// The element type stored in a tensor's buffer. Kernels compute in f32 whatever the storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// IEEE binary32.
    F32,
}

impl DType {
    /// Bytes per element.
    pub const fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
        }
    }

    /// Lower-case name, as `validate` and `bench` print it.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
        }
    }
}

/// Host element types that can be uploaded to and read back from a tensor.
pub trait Element: bytemuck::Pod + Copy + Send + 'static {
    /// The tensor element type this host type maps to.
    const DTYPE: DType;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
