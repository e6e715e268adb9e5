//! Checking the randomized leaky ReLU's training mode ([`crate::Rrelu`]) against the f64 reference
//! ([`crate::cpu::rrelu`]): forward and backward into poisoned outputs, each element at the slope the reference
//! draws for its index, under the fused ops' criterion ([`super::fused::check_values`]: the f32 tolerance, or
//! 1 ULP of a 16-bit output).

use super::fused::{poisoned_shaped, read_as, values, FusedCheck};
use super::Pass;
use crate::{cpu, DType, Gpu, Result, Rrelu};

/// The storage types of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RreluDtypes {
    /// x.
    pub x: DType,
    /// dy.
    pub dy: DType,
    /// y forward, dx backward.
    pub out: DType,
}

impl RreluDtypes {
    /// Every operand in `dtype`.
    pub const fn all(dtype: DType) -> Self {
        RreluDtypes {
            x: dtype,
            dy: dtype,
            out: dtype,
        }
    }
}

/// Runs `r` forward on `x` (rounded to `dtypes.x`) with `seed` into a poisoned `y`, then backward with `dy`
/// (rounded to `dtypes.dy`) into a poisoned `dx`, and checks both against the reference at the stored inputs
/// (and, where `gpu` flushes subnormals, at the inputs as it reads them); unwritten elements count as
/// failures. The checks are named `rrelu`, `_edges` appended for `edges` inputs.
pub fn check(
    gpu: &Gpu,
    r: Rrelu,
    seed: u64,
    dtypes: RreluDtypes,
    x: &[f32],
    dy: &[f32],
    edges: bool,
) -> Result<Vec<FusedCheck>> {
    let shape = [x.len()];
    let xt = gpu.upload_f32_as(x, dtypes.x)?;
    let dyt = gpu.upload_f32_as(dy, dtypes.dy)?;
    let y = poisoned_shaped(gpu, &shape, dtypes.out)?;
    r.forward_into(&xt, seed, &y)?;
    let dx = poisoned_shaped(gpu, &shape, dtypes.out)?;
    r.backward_into(&xt, &dyt, seed, &dx)?;
    let (xs, dys) = (xt.read_f32()?, dyt.read_f32()?);
    let [x_exact, x_flushed] = [false, true].map(|f| read_as(&xs, f));
    let [dy_exact, dy_flushed] = [false, true].map(|f| read_as(&dys, f));
    let y_refs = [&x_exact, &x_flushed].map(|x| cpu::rrelu::forward_all(r, seed, x));
    let dx_refs = [(&x_exact, &dy_exact), (&x_flushed, &dy_flushed)]
        .map(|(x, dy)| cpu::rrelu::backward_all(r, seed, x, dy));
    let forward = values(gpu, dtypes.out, &xs, &y, [&y_refs[0], &y_refs[1]])?;
    let backward = values(gpu, dtypes.out, &xs, &dx, [&dx_refs[0], &dx_refs[1]])?;
    let op = format!("{}{}", Rrelu::NAME, if edges { "_edges" } else { "" });
    Ok(vec![
        FusedCheck {
            op: op.clone(),
            pass: Pass::Forward,
            output: "y",
            dtype: dtypes.out,
            check: forward,
        },
        FusedCheck {
            op,
            pass: Pass::Backward,
            output: "dx",
            dtype: dtypes.out,
            check: backward,
        },
    ])
}

/// The check `validate` and the tests run in one storage type: PyTorch's default range and a wide one
/// (`[0, 1]`) on seeded random x in `[-8, 8)` of an odd length, and on the edge values
/// ([`super::fused::FUSED_EDGES`]), each x beside each of them as dy, the default range and a slope of 0
/// (`[0, 0]`: a zero of x's sign forward, the limit at `-inf`, and `inf * 0` = NaN backward).
pub fn check_standard(gpu: &Gpu, dtype: DType) -> Result<Vec<FusedCheck>> {
    let dtypes = RreluDtypes::all(dtype);
    let mut out = Vec::new();
    for (i, r) in [Rrelu::DEFAULT, Rrelu::new(0.0, 1.0)?]
        .into_iter()
        .enumerate()
    {
        let seed = 0x5eed_0000_0000_0001 + i as u64;
        let x = super::fused::random_values(10_007, 8.0, dtype, 31 + i as u64);
        let dy = super::fused::random_values(x.len(), 1.0, dtype, 41 + i as u64);
        out.extend(check(gpu, r, seed, dtypes, &x, &dy, false)?);
    }
    let (x, dy) = edge_pairs();
    for r in [Rrelu::DEFAULT, Rrelu::new(0.0, 0.0)?] {
        out.extend(check(gpu, r, 9, dtypes, &x, &dy, true)?);
    }
    Ok(out)
}

/// Every pair of [`super::fused::FUSED_EDGES`]: `(x, dy)`, x-major.
pub fn edge_pairs() -> (Vec<f32>, Vec<f32>) {
    let edges = super::fused::FUSED_EDGES;
    edges
        .iter()
        .flat_map(|&x| edges.iter().map(move |&dy| (x, dy)))
        .unzip()
}
