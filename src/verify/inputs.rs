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
