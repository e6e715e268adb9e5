//! Reference of the randomized leaky ReLU in training mode ([`crate::Rrelu`]): the same counter-based draw as
//! `shaders/rrelu.wgsl`, then the leaky ReLU of [`super::activation`] at each element's slope, in f64.

use super::activation::slope_times;
use crate::Rrelu;

/// pcg3d of Jarzynski and Olano, "Hash Functions for GPU Rendering" (JCGT 9(3), 2020), in wrapping u32
/// arithmetic: the kernels' `pcg3d`.
pub fn pcg3d([x, y, z]: [u32; 3]) -> [u32; 3] {
    let step = |v: u32| v.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    let (mut x, mut y, mut z) = (step(x), step(y), step(z));
    x = x.wrapping_add(y.wrapping_mul(z));
    y = y.wrapping_add(z.wrapping_mul(x));
    z = z.wrapping_add(x.wrapping_mul(y));
    x ^= x >> 16;
    y ^= y >> 16;
    z ^= z >> 16;
    x = x.wrapping_add(y.wrapping_mul(z));
    y = y.wrapping_add(z.wrapping_mul(x));
    z = z.wrapping_add(x.wrapping_mul(y));
    [x, y, z]
}

/// `u_e` in `[0, 1)`: the top 24 bits of `pcg3d(e, seed_lo, seed_hi).x`, times `2^-24` (exact in f32).
pub fn uniform(seed: u64, index: u32) -> f32 {
    let h = pcg3d([index, seed as u32, (seed >> 32) as u32])[0];
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Forward of element `index`: `x` if `x > 0`, else `a x` with `a` = [`Rrelu::slope`]; NaN gives NaN, and a
/// slope of 0 a zero of x's sign.
pub fn forward(r: Rrelu, seed: u64, index: u32, x: f64) -> f64 {
    if x.is_nan() || x > 0.0 {
        return x;
    }
    slope_times(f64::from(r.slope(seed, index)), x)
}

/// Backward of element `index`: `dy` if `x > 0`, else `a dy`; NaN where `x` or `dy` is NaN.
pub fn backward(r: Rrelu, seed: u64, index: u32, x: f64, dy: f64) -> f64 {
    if x.is_nan() || dy.is_nan() {
        return f64::NAN;
    }
    if x > 0.0 {
        dy
    } else {
        dy * f64::from(r.slope(seed, index))
    }
}

/// [`forward`] of every element of a tensor, element `i` drawn at index `i`.
pub fn forward_all(r: Rrelu, seed: u64, x: &[f64]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| forward(r, seed, i as u32, v))
        .collect()
}

/// [`backward`] of every element of a tensor, element `i` drawn at index `i`.
pub fn backward_all(r: Rrelu, seed: u64, x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(dy)
        .enumerate()
        .map(|(i, (&v, &d))| backward(r, seed, i as u32, v, d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from an independent implementation of the paper's code (Python integers masked to 32 bits): pins
    /// the function, so that a change of the kernels' draw is noticed.
    #[test]
    fn pcg3d_is_pinned() {
        assert_eq!(
            pcg3d([0, 0, 0]),
            [2_611_992_518, 2_833_812_075, 1_058_359_340]
        );
        assert_eq!(
            pcg3d([1, 2, 3]),
            [4_204_755_366, 1_223_881_804, 1_500_469_937]
        );
        assert_eq!(
            pcg3d([12_345, 0xdead_beef, 42]),
            [1_277_128_660, 1_023_536_275, 1_401_787_489]
        );
    }

    #[test]
    fn uniform_is_in_the_unit_interval_with_the_expected_mean() {
        let n = 100_000u32;
        let draws: Vec<f64> = (0..n).map(|i| f64::from(uniform(7, i))).collect();
        assert!(draws.iter().all(|&u| (0.0..1.0).contains(&u)));
        let mean = draws.iter().sum::<f64>() / f64::from(n);
        // The mean of n uniforms has standard deviation 1 / sqrt(12 n) = 9.1e-4: 5 of them.
        assert!((mean - 0.5).abs() < 4.6e-3, "mean {mean}");
        // Ten equal bins each hold n/10 +- 5 standard deviations (sqrt(n 0.1 0.9) = 95).
        let mut bins = [0usize; 10];
        for u in &draws {
            bins[(u * 10.0) as usize] += 1;
        }
        for b in bins {
            assert!((b as f64 - 10_000.0).abs() < 475.0, "bins {bins:?}");
        }
    }
}
