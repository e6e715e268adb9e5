//! Seeded and structured test inputs: random values, sweeps, small magnitudes, edge values, every 16-bit pattern.

use crate::DType;

/// A small deterministic generator (SplitMix64) for seeded test inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi), rounded to f32.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.unit()) as f32
    }
}

/// Edge values: zeros, subnormals, tiny and huge magnitudes, the f32 extremes, infinities and NaN.
pub fn edge_values() -> Vec<f32> {
    let magnitudes = [
        0.0,
        f32::from_bits(1),
        1e-40,
        f32::MIN_POSITIVE,
        1e-30,
        1e-8,
        1e-7,
        1e-6,
        1e-5,
        1e-4,
        1e-3,
        0.5,
        1.0,
        3.0,
        6.0,
        10.0,
        20.0,
        50.0,
        88.7,
        89.0,
        100.0,
        1e4,
        1e30,
        f32::MAX,
        f32::INFINITY,
    ];
    let mut v: Vec<f32> = magnitudes.iter().flat_map(|&m| [m, -m]).collect();
    v.push(f32::NAN);
    v
}

/// `n` seeded uniform values at each of the scales 1, 4, 30 and 1000.
pub fn random_inputs(seed: u64, n_per_scale: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    [1.0, 4.0, 30.0, 1000.0]
        .iter()
        .flat_map(|&s| {
            (0..n_per_scale)
                .map(|_| rng.uniform(-s, s))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `n` evenly spaced values over [lo, hi], both ends included.
pub fn sweep(lo: f64, hi: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (lo + (hi - lo) * i as f64 / (n.max(2) - 1) as f64) as f32)
        .collect()
}

/// `n` log-spaced magnitudes over [1e-8, 1e-3], each with both signs.
pub fn small_inputs(n: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let m = 10f64.powf(-8.0 + 5.0 * i as f64 / (n.max(2) - 1) as f64) as f32;
            [m, -m]
        })
        .collect()
}

/// The tail variable of the fused ops' tails checks ([`super::fused`]): every multiple of 2^-5 of magnitude in
/// [2, 130], ascending (8,194 values). Each needs at most 13 significant bits, so a bias in steps of 2^-10 below 1
/// in magnitude can be taken off and put back exactly in f32 (`(z - b) + b == z`): the kernel's pre-activation is
/// then the reference's, and a tail of `e^(-z^2 / 2)` is not blurred by the rounding of `x + b` (`z^2 2^-24`
/// relative, 1e-5 at `z = 13`).
pub fn fused_tail_grid() -> Vec<f32> {
    let steps = 128 * 32;
    let negative = (0..=steps).rev().map(|k| -(2.0 + k as f32 / 32.0));
    negative
        .chain((0..=steps).map(|k| 2.0 + k as f32 / 32.0))
        .collect()
}

/// Points near the underflow edges of `f` along the ascending `grid` of multiples of 2^-5: between neighbours
/// `u < w` where `|f|` crosses f32's smallest normal (finite at both, at least it at one and below it at the
/// other), the 31 points `u + k (w - u) / 32` (exact: steps of 2^-10 for neighbours of [`fused_tail_grid`]), so
/// that a check sees results just above the normal range (the grid alone may leave a factor of 1.5 there: GELU's
/// tail at 13 falls by `e^(-13 / 32)` per step).
pub fn underflow_edges(grid: &[f32], f: impl Fn(f32) -> f64) -> Vec<f32> {
    let normal = |v: f64| v.is_finite() && v.abs() >= f64::from(f32::MIN_POSITIVE);
    let values: Vec<f64> = grid.iter().map(|&v| f(v)).collect();
    let mut out = Vec::new();
    for (w, v) in grid.windows(2).zip(values.windows(2)) {
        if v[0].is_finite() && v[1].is_finite() && normal(v[0]) != normal(v[1]) {
            out.extend((1..32).map(|k| w[0] + (w[1] - w[0]) * k as f32 / 32.0));
        }
    }
    out
}

/// Every one of the 65,536 16-bit patterns, each once, in the order `0, 0xffff, 1, 0xfffe, ...`: each pattern
/// `p < 0x8000` beside `0xffff - p`, so that the two halves of every packed 32-bit word have opposite signs (and
/// one of each pair of NaNs is negative). In plain order the halves of a word would be neighbouring patterns of one
/// sign, and a kernel that mixed up the halves' signs or exponents could pass.
pub fn every_pattern_bits() -> Vec<u16> {
    (0..0x8000u16).flat_map(|p| [p, u16::MAX - p]).collect()
}

/// [`every_pattern_bits`] as values of a 16-bit type, in f32 (exact; NaN payloads as `half` widens them). Empty
/// for f32.
pub fn every_bit_pattern(dtype: DType) -> Vec<f32> {
    let bits = every_pattern_bits().into_iter();
    match dtype {
        DType::F32 => Vec::new(),
        DType::F16 => bits.map(|b| half::f16::from_bits(b).to_f32()).collect(),
        DType::BF16 => bits.map(|b| half::bf16::from_bits(b).to_f32()).collect(),
    }
}

/// `v` rounded to `dtype` (to nearest even, as the kernels store) and back to f32: [`DType::round_f32`].
pub fn round_to(dtype: DType, v: f32) -> f32 {
    dtype.round_f32(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tails grid is exact with a 2^-10 bias taken off and put back, and the edges of sigmoid (normal down to
    /// -87.34) fall between its neighbours, in steps of 2^-10.
    #[test]
    fn the_tails_grid_is_exact_and_its_edges_fall_between_neighbours() {
        let grid = fused_tail_grid();
        assert_eq!(grid.len(), 8_194);
        assert!(grid.windows(2).all(|w| w[0] < w[1]));
        for &z in &grid {
            for b in [-1023.0 / 1024.0, -0.5, 1.0 / 1024.0, 1023.0 / 1024.0f32] {
                assert_eq!((z - b) + b, z, "{z} {b}");
            }
        }
        let sigmoid = |v: f32| crate::cpu::activation::sigmoid(v.into());
        let edges = underflow_edges(&grid, sigmoid);
        let step = 1.0 / 1024.0;
        assert_eq!(edges.len(), 31);
        assert!(edges.windows(2).all(|w| w[1] - w[0] == step));
        let (below, above) = (edges[0] - step, edges[30] + step);
        assert!(grid.contains(&below) && grid.contains(&above));
        let normal = f64::from(f32::MIN_POSITIVE);
        assert!(
            sigmoid(below) < normal && sigmoid(above) >= normal,
            "{edges:?}"
        );
    }

    #[test]
    fn every_pattern_once_with_opposite_signs_in_every_word() {
        let bits = every_pattern_bits();
        let mut seen = vec![false; 1 << 16];
        for (i, pair) in bits.chunks(2).enumerate() {
            assert_eq!((pair[0] >> 15, pair[1] >> 15), (0, 1), "word {i}");
            for &b in pair {
                assert!(!seen[usize::from(b)], "{b:#06x} twice");
                seen[usize::from(b)] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        for dtype in [DType::F16, DType::BF16] {
            assert_eq!(every_bit_pattern(dtype).len(), 1 << 16);
        }
    }
}
