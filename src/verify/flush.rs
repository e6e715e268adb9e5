//! Devices that flush f32 subnormals to zero, and what the checks accept from them.
//!
//! WGSL lets an implementation flush subnormal f32 values to zero, on input and on output of any operation
//! (WGSL §15.7.2). The software adapters here keep them; NVIDIA's Vulkan driver flushes (seen on an H200, driver
//! 580: `x > 0.0` is false for `x = 2^-149`, and `exp(-87.5)` comes out as 0). On such a device the checks accept,
//! besides results that meet the criterion against the exact reference:
//!
//! - the result the reference gives with every subnormal input (x, and dy in a backward) replaced by a zero of the
//!   same sign, within the same criterion ([`flushed_reference`]);
//! - a result within [`FLUSH_UNDERFLOW`] = 2^-118 of the exact one: an intermediate below 2^-126 (an `exp` that
//!   underflows, a squared reciprocal) becomes 0, which moves the result by at most that intermediate times the
//!   factors applied after it, at most 256 in magnitude in the activations and the checks: x in SiLU, Mish and
//!   GELU's tail, whose intermediates underflow only for |x| < 105; 4 in tanh'; and |dy| <= 2 in the checks'
//!   gradients. Seen on the H200: SiLU' at x = -87.5 stored as 0 for -1.5e-36, GELU' at -13 off by 1e-38.
//!
//! Devices that keep subnormals get none of this: [`crate::Gpu::flushes_subnormals`] probes the device once.

use crate::probe::Probe;
use crate::{Error, Gpu, Result};

/// The extra absolute error allowed on a device that flushes subnormals: `2^-118 = 256 * 2^-126` (module docs).
pub const FLUSH_UNDERFLOW: f64 = 3.009_265_538_105_056e-36;

/// `v` with a subnormal replaced by a zero of the same sign, as a flushing device reads it.
pub fn flush_subnormal(v: f32) -> f32 {
    if v != 0.0 && v.abs() < f32::MIN_POSITIVE {
        0.0f32.copysign(v)
    } else {
        v
    }
}

/// The reference at flushed inputs where the device flushes subnormals, else `None`:
/// `reference(flush(x_i), flush(dy_i))` for every element (`dy` empty for a forward pass). Where no input is
/// subnormal it equals the exact reference, and its `Some` still turns on the underflow rule of
/// [`super::compare_flushing`].
pub fn flushed_reference(
    flushes: bool,
    x: &[f32],
    dy: &[f32],
    reference: impl Fn(f32, f32) -> f64,
) -> Option<Vec<f64>> {
    flushes.then(|| {
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let d = dy.get(i).copied().unwrap_or(0.0);
                reference(flush_subnormal(v), flush_subnormal(d))
            })
            .collect()
    })
}

/// The probe kernel: `v[2] = v[0] * v[1]` and `v[3] = (v[0] > 0)` with `v[0] = 2^-140`, `v[1] = 1`, both read
/// from memory so that no compiler can fold them.
const PROBE: &str = "
@group(0) @binding(0) var<storage, read_write> v: array<f32, 4>;
@compute @workgroup_size(1)
fn probe() {
    let s = v[0];
    v[2] = s * v[1];
    v[3] = select(0.0, 1.0, s > 0.0);
}
";

/// Runs [`PROBE`] once on `gpu`: true when either the product or the comparison flushed the subnormal.
pub(crate) fn probe(gpu: &Gpu) -> Result<bool> {
    let tiny = f32::from_bits(1 << 9); // 2^-140
    let t = gpu.upload(&[tiny, 1.0, -1.0, -1.0])?;
    Probe::new(gpu, "subnormal probe", PROBE, "probe")?.run(gpu, &[(0, t.buffer())], 1)?;
    let v: Vec<f32> = t.read_polled()?;
    match (v[2], v[3]) {
        (p, c) if p == tiny && c == 1.0 => Ok(false),
        (p, c) if (p == tiny || p == 0.0) && (c == 1.0 || c == 0.0) => Ok(true),
        (p, c) => Err(Error::Wgpu {
            op: "subnormal probe",
            message: format!("unexpected results {p:e} and {c}"),
        }),
    }
}
