//! What a benchmark run measures, and running it: every chosen kernel, pass, storage type and size, one
//! [`Row`] each.

use super::activations::ElementwiseOperands;
use super::fused::{FusedOp, FusedOperands};
use super::report::{Bound, Row, Size};
use super::{measure, Sampling, Timer};
use crate::verify::Pass;
use crate::{Activation, DType, Result};

/// The kernels, passes, types and sizes of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Plain activations, measured at every size of `sizes`.
    pub activations: Vec<Activation>,
    /// Fused ops, measured on `x` of shape `shape`.
    pub fused: Vec<FusedOp>,
    /// Passes of every kernel.
    pub passes: Vec<Pass>,
    /// Element counts of the plain activations.
    pub sizes: Vec<usize>,
    /// `[rows, cols]` of the fused ops' input.
    pub shape: [usize; 2],
    /// Storage types measured at every size and on the fused shape.
    pub dtypes: Vec<DType>,
    /// Further storage types measured only at the largest size and on the fused shape.
    pub large_only_dtypes: Vec<DType>,
    /// Samples per measurement.
    pub sampling: Sampling,
}

impl Plan {
    /// The default run: every activation at 2^16, 2^20 and 2^24 elements in f32 and at 2^24 in f16 and bf16;
    /// [`FusedOp::defaults`] on 4096 x 4096 in all three types; forward and backward; [`Sampling::DEFAULT`].
    pub fn default_run() -> Plan {
        Plan {
            activations: Activation::ALL.to_vec(),
            fused: FusedOp::defaults(),
            passes: vec![Pass::Forward, Pass::Backward],
            sizes: vec![1 << 16, 1 << 20, 1 << 24],
            shape: [4096, 4096],
            dtypes: vec![DType::F32],
            large_only_dtypes: vec![DType::F16, DType::BF16],
            sampling: Sampling::DEFAULT,
        }
    }

    /// A run of seconds that still runs every kernel: 2^16 elements, fused ops on 256 x 256, every type,
    /// [`Sampling::QUICK`].
    pub fn quick() -> Plan {
        Plan {
            sizes: vec![1 << 16],
            shape: [256, 256],
            sampling: Sampling::QUICK,
            ..Plan::default_run()
        }
    }

    /// Measures every row of the plan on `timer`, calling `on_row` as each is done.
    pub fn run(&self, timer: &Timer, on_row: &mut dyn FnMut(Row)) -> Result<()> {
        let gpu = timer.gpu();
        let largest = self.sizes.iter().copied().max();
        let mut seed = 0xbe_4c00;
        for &elements in &self.sizes {
            for dtype in self.dtypes_at(Some(elements) == largest) {
                seed += 1;
                let ops = ElementwiseOperands::new(gpu, elements, dtype, seed)?;
                for &act in &self.activations {
                    for &pass in &self.passes {
                        let m = measure(timer, &self.sampling, &mut |enc, rep| {
                            ops.record(enc, act, pass, rep)
                        })?;
                        on_row(Row {
                            kernel: act.name().into(),
                            pass: pass.name(),
                            dtype: dtype.name(),
                            size: Size::Elements(elements),
                            measurement: m,
                            bytes: Some(ops.bytes_moved(pass)),
                            flops: Some(ops.flops(act, pass)),
                            bound: Bound::Bandwidth,
                        });
                    }
                }
            }
        }
        let [rows, cols] = self.shape;
        for dtype in self.dtypes_at(true) {
            for &op in &self.fused {
                seed += 1;
                let ops = FusedOperands::new(gpu, op, rows, cols, dtype, seed)?;
                for &pass in &self.passes {
                    let m = measure(timer, &self.sampling, &mut |enc, rep| {
                        ops.record(enc, pass, rep)
                    })?;
                    on_row(Row {
                        kernel: op.name(),
                        pass: pass.name(),
                        dtype: dtype.name(),
                        size: Size::Shape(vec![rows, cols]),
                        measurement: m,
                        bytes: Some(ops.bytes_moved(pass)),
                        flops: Some(ops.flops(pass)),
                        bound: Bound::Bandwidth,
                    });
                }
            }
        }
        Ok(())
    }

    fn dtypes_at(&self, largest: bool) -> Vec<DType> {
        let mut d = self.dtypes.clone();
        if largest {
            d.extend(
                self.large_only_dtypes
                    .iter()
                    .filter(|t| !self.dtypes.contains(t)),
            );
        }
        d
    }
}
