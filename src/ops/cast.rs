//! Type conversion on the GPU: the identity kernel with different input and output storage types.

use super::recording::Recording;
use crate::{Activation, DType, Result, Tensor};

impl Tensor {
    /// Records a conversion of `self` into `out` (same shape, any types): rounding to nearest even, overflow to
    /// +-inf, NaN kept NaN.
    pub fn record_cast(&self, encoder: &mut wgpu::CommandEncoder, out: &Tensor) -> Result<()> {
        Recording::atomic(encoder, |rec| self.plan_cast(rec, out))
    }

    /// The commands of [`Self::record_cast`], planned into `encoder`.
    pub(crate) fn plan_cast(&self, encoder: &mut Recording, out: &Tensor) -> Result<()> {
        Activation::Identity.plan_forward(encoder, self, out)
    }

    /// A copy converted to `dtype` on the GPU; submits and waits.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        let out = self.gpu().zeros(self.shape(), dtype)?;
        Activation::Identity.forward_into(self, &out)?;
        Ok(out)
    }
}
