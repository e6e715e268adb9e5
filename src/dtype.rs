//! Element types of tensors.

/// The element type stored in a tensor's buffer. Kernels compute in f32 whatever the storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16 (`half::f16`), stored two to a `u32`.
    F16,
    /// bfloat16 (`half::bf16`, the upper half of an f32), stored two to a `u32`.
    BF16,
}

impl DType {
    /// Bytes per element.
    pub const fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Lower-case name, as `validate` and `bench` print it.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }

    /// The storage code the kernels' `X_T` / `DY_T` / `OUT_T` overrides take (`shaders/storage.wgsl`).
    pub const fn storage_code(self) -> u32 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::BF16 => 2,
        }
    }

    /// Bytes one work unit of the elementwise kernels occupies (8 elements).
    pub const fn unit_bytes(self) -> u64 {
        (self.size_bytes() * crate::dispatch::UNIT_ELEMENTS) as u64
    }

    /// `v` rounded to this type (to nearest even, as the kernels store it) and widened back to f32.
    pub fn round_f32(self, v: f32) -> f32 {
        match self {
            DType::F32 => v,
            DType::F16 => half::f16::from_f32(v).to_f32(),
            DType::BF16 => half::bf16::from_f32(v).to_f32(),
        }
    }

    /// The type named `f32`, `f16` or `bf16`.
    pub fn from_name(name: &str) -> Option<Self> {
        [DType::F32, DType::F16, DType::BF16]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

mod sealed {
    /// Keeps [`super::Element`] to the crate's own implementations: a host type whose size is not its `DTYPE`'s
    /// would make uploads truncate and writes run past a tensor in a larger host buffer.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// Host element types that can be uploaded to and read back from a tensor: `f32`, `half::f16` and `half::bf16`
/// (sealed: the size of each matches its [`DType`]).
pub trait Element: bytemuck::Pod + Copy + Send + 'static + sealed::Sealed {
    /// The tensor element type this host type maps to.
    const DTYPE: DType;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}

impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
}

impl Element for half::bf16 {
    const DTYPE: DType = DType::BF16;
}
