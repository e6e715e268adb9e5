//! Whether the device's native f32 -> f16 conversion rounds to nearest even, probed once.
//!
//! WGSL lets the conversion of an f32 that lies between two f16 values round to either of them (WGSL §15.7.3,
//! "floating point conversion"). The packed path rounds to nearest even in integer code on every device; the
//! native path (`shaders/activation_io_f16.wgsl`, which [`crate::F16Storage::Auto`] picks where it is faster)
//! stores through the built-in conversion. So `Auto` picks native only where this probe has seen the built-in
//! conversion round every probed value as `half` does: the f16 values of every binade in both signs, the
//! midpoints between neighbours (ties, which go to the even one), and the f32 values just either side of each
//! midpoint and a quarter of the way between neighbours; and whose built-in f16 -> f32 widening of every one of
//! the 65,536 f16 bit patterns gave the exact value (subnormals kept, which a device that flushes them on load
//! would not; any NaN for a NaN), as the packed path's decoding does.

use crate::probe::Probe;
use crate::{DType, Gpu, Result};

/// The probe kernel converting `from` to `to` (`f32` and `f16`, either way): `dst[i] = vec4<to>(src[i])`, the
/// built-in conversion the native kernels store with (their `narrow` maps only values beyond the f16 range
/// before it) or load with.
fn conversion_kernel(from: &str, to: &str) -> String {
    format!(
        "
enable f16;
@group(0) @binding(0) var<storage, read> src: array<vec4<{from}>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<{to}>>;
@compute @workgroup_size(64)
fn probe(@builtin(global_invocation_id) id: vec3<u32>) {{
    let i = id.x;
    if (i < min(arrayLength(&src), arrayLength(&dst))) {{
        dst[i] = vec4<{to}>(src[i]);
    }}
}}
"
    )
}

/// Whether every `got[i]` is `inputs[i]` widened exactly: the same f32 bits, or a NaN for a NaN.
pub(crate) fn widens_exactly(inputs: &[half::f16], got: &[f32]) -> bool {
    inputs.len() == got.len()
        && inputs.iter().zip(got).all(|(h, &g)| {
            let want = h.to_f32();
            if want.is_nan() {
                g.is_nan()
            } else {
                want.to_bits() == g.to_bits()
            }
        })
}

/// The probe's inputs: for every finite f16 `h >= 0` below the largest (so that `h` has a finite successor `s`),
/// `h`, the midpoint `m = (h + s) / 2` (exact in f32), the f32 neighbours of `m` and `h + (s - h) / 4`, each in
/// both signs; padded with zeros to whole `vec4`s.
pub(crate) fn probe_inputs() -> Vec<f32> {
    let mut v = Vec::new();
    for bits in 0..0x7bffu16 {
        let h = half::f16::from_bits(bits).to_f32();
        let s = half::f16::from_bits(bits + 1).to_f32();
        let m = (h + s) / 2.0;
        let below = f32::from_bits(m.to_bits() - 1);
        let above = f32::from_bits(m.to_bits() + 1);
        let quarter = h + (s - h) / 4.0;
        for x in [h, m, below, above, quarter] {
            v.extend([x, -x]);
        }
    }
    v.resize(v.len().next_multiple_of(4), 0.0);
    v
}

/// Whether every `got[i]` is `inputs[i]` rounded to nearest even, bit for bit (as `half::f16::from_f32` rounds).
pub(crate) fn rounds_to_nearest_even(inputs: &[f32], got: &[half::f16]) -> bool {
    inputs.len() == got.len()
        && inputs
            .iter()
            .zip(got)
            .all(|(&x, g)| half::f16::from_f32(x).to_bits() == g.to_bits())
}

/// Runs the conversion kernel f32 -> f16 on [`probe_inputs`] and f16 -> f32 on every f16 bit pattern:
/// `Ok(false)` where the device has no `SHADER_F16` (no native path), a store rounded any input otherwise than
/// to nearest even, or a load widened any pattern otherwise than exactly.
pub(crate) fn probe(gpu: &Gpu) -> Result<bool> {
    if !gpu.device().features().contains(wgpu::Features::SHADER_F16) {
        return Ok(false);
    }
    // Stores: the neighbourhood of every f16 value. Loads: every f16 bit pattern.
    let patterns: Vec<half::f16> = (0..=u16::MAX).map(half::f16::from_bits).collect();
    Ok(converts(
        gpu,
        "f16 rounding probe",
        &probe_inputs(),
        DType::F16,
        rounds_to_nearest_even,
    )? && converts(
        gpu,
        "f16 widening probe",
        &patterns,
        DType::F32,
        widens_exactly,
    )?)
}

/// Runs the conversion kernel from `S` to `to` over `inputs`, in chunks of at most 16,384 values that fit the
/// binding limit (whole 32-byte blocks, an upload's padding), and whether `exact` holds for every chunk.
fn converts<S: crate::Element, D: crate::Element>(
    gpu: &Gpu,
    label: &'static str,
    inputs: &[S],
    to: DType,
    exact: fn(&[S], &[D]) -> bool,
) -> Result<bool> {
    let wgsl = |t: DType| if t == DType::F16 { "f16" } else { "f32" };
    let probe = Probe::new(
        gpu,
        label,
        &conversion_kernel(wgsl(S::DTYPE), wgsl(to)),
        "probe",
    )?;
    let limit = gpu.limits().max_storage_buffer_binding_size;
    let chunk = ((limit / 32) as usize * 8).clamp(8, 16_384);
    for values in inputs.chunks(chunk) {
        let src = gpu.upload(values)?;
        let dst = gpu.zeros(&[values.len()], to)?;
        // 64 vec4s per workgroup: at most 64 workgroups.
        let groups = (values.len() / 4).div_ceil(64) as u32;
        probe.run(gpu, &[(0, src.buffer()), (1, dst.buffer())], groups)?;
        if !exact(values, &dst.read_polled()?) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inputs_hold_ties_and_their_neighbours() {
        let v = probe_inputs();
        assert_eq!(v.len() % 4, 0);
        // 1 + 2^-11 is the tie between 1 and its successor: it rounds to 1 (even), the f32 above it to the successor.
        let tie = 1.0 + 2f32.powi(-11);
        assert!(v.contains(&tie) && v.contains(&-tie));
        assert!(v.contains(&f32::from_bits(tie.to_bits() + 1)));
        // The tie below 65504, and the smallest subnormal's midpoint with 0.
        assert!(v.contains(&65488.0));
        assert!(v.contains(&2f32.powi(-25)));
    }

    /// Exact widening passes, a flushed subnormal fails, a NaN may come back as any NaN.
    #[test]
    fn a_widening_that_flushes_subnormals_is_caught() {
        let inputs: Vec<half::f16> = (0..=u16::MAX).map(half::f16::from_bits).collect();
        let exact: Vec<f32> = inputs.iter().map(|h| h.to_f32()).collect();
        assert!(widens_exactly(&inputs, &exact));
        let flushed: Vec<f32> = inputs
            .iter()
            .map(|h| {
                // An f16 subnormal: exponent bits 0, mantissa not.
                let b = h.to_bits();
                if b & 0x7c00 == 0 && b & 0x03ff != 0 {
                    0.0
                } else {
                    h.to_f32()
                }
            })
            .collect();
        assert!(!widens_exactly(&inputs, &flushed));
        let other_nan: Vec<f32> = exact
            .iter()
            .map(|&v| if v.is_nan() { f32::NAN } else { v })
            .collect();
        assert!(widens_exactly(&inputs, &other_nan));
    }

    #[test]
    fn a_conversion_that_truncates_is_caught() {
        let v = probe_inputs();
        let exact: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
        assert!(rounds_to_nearest_even(&v, &exact));
        // Round toward zero: the value below in magnitude, wherever it differs.
        let truncated: Vec<half::f16> = v
            .iter()
            .map(|&x| {
                let r = half::f16::from_f32(x);
                if r.to_f32().abs() > x.abs() {
                    half::f16::from_bits(r.to_bits() - 1)
                } else {
                    r
                }
            })
            .collect();
        assert!(!rounds_to_nearest_even(&v, &truncated));
        // Ties rounded away from zero instead of to even.
        let away: Vec<half::f16> = v
            .iter()
            .map(|&x| {
                let r = half::f16::from_f32(x);
                let up = half::f16::from_bits(r.to_bits() + 1);
                let (lo, hi) = (r.to_f32().abs(), up.to_f32().abs());
                if lo < x.abs() && (lo + hi) / 2.0 == x.abs() {
                    up
                } else {
                    r
                }
            })
            .collect();
        assert!(!rounds_to_nearest_even(&v, &away));
        // A short result fails.
        assert!(!rounds_to_nearest_even(&v, &exact[..1]));
    }
}
