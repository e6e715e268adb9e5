//! The study's seeds: one random stream per purpose, derived from the user's seeds.
//!
//! The library's generators all start SplitMix64 ([`crate::verify::Rng`]) at the seed they are given:
//! [`crate::nn::init`] for the weights, [`crate::datasets`] for the points (and [`Dataset::new`] draws its test
//! and validation sets from `seed + 1000` and `seed + 2000`). Handing them the user's numbers directly would
//! make the data seed 1 and the run seed 1 the same stream (the first layer's initial weights an affine map of
//! the draws behind the first training points' noise), and a run seed of 1001 or 2001 the test or validation
//! set's stream. So the study never passes a user's seed to a generator: every stream starts at
//!
//! ```text
//! derive(seed, purpose) = mix(seed ^ purpose.tag())
//! ```
//!
//! where `mix` is SplitMix64's output function (its finalizer, [`mix`]) and each [`Purpose`] has its own
//! 64-bit tag (eight ASCII bytes, [`Purpose::tag`]). The training, test and validation points come from the
//! `--data-seed` (purposes [`Purpose::Train`], [`Purpose::Test`], [`Purpose::Validation`]); each run's initial
//! weights and its batch order from the run's seed `1..=K` ([`Purpose::Init`], [`Purpose::Shuffle`]).
//!
//! What that guarantees. `mix` is a bijection, so within one purpose different seeds always start different
//! streams. Across purposes, two streams coincide only when `seed_a ^ seed_b` equals the XOR of the two tags,
//! and overlap (one a shifted copy of the other) only when their starting states are a few draws apart on
//! SplitMix64's cycle. Within one study that does not happen for the seeds the tests check, run seeds
//! `1..=10000` (the largest `--seeds`) with data seeds `1..=100`, whose streams are all at least 2^32 draws
//! apart, far more than a run draws. It can for a data seed built to collide: `--data-seed` takes any 64-bit
//! number, and `1 ^ tag(data/trn) ^ tag(net/init)` = 721,702,176,469,687,067 gives training data drawn from run
//! seed 1's initial weights' stream (such seeds lie past 2^59, as the data and network tags differ in their first byte, so small data seeds are
//! safe). Across studies it can: the three data tags differ only in their last bytes,
//! so two data seeds whose XOR is 282 (`data/trn ^ data/tst`), 135,938 (`trn ^ val`) or 135,704 (`tst ^ val`)
//! share a stream between purposes: the test set of `--data-seed 1` is the training set of `--data-seed 283`.
//! A sweep over data seeds that compares studies as independent draws should skip such pairs (44 among 1..=300).
//! Mixing the tags first (`mix(seed ^ mix(tag))`) would remove them, at the price of every published study's
//! numbers, which come from these streams.
//!
//! `results.json` records the derived seeds (`dataset.derived_seeds`, and each run's `init_seed` and
//! `shuffle_seed`), as hexadecimal strings.

use crate::datasets::{Dataset, DatasetKind};

/// What a stream of random numbers is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Purpose {
    /// The training points, from the data seed.
    Train,
    /// The test points, from the data seed.
    Test,
    /// The validation points, from the data seed.
    Validation,
    /// A run's initial weights ([`crate::nn::init`]), from the run's seed.
    Init,
    /// A run's batch order (one Fisher-Yates shuffle per epoch), from the run's seed.
    Shuffle,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 5] = [
        Purpose::Train,
        Purpose::Test,
        Purpose::Validation,
        Purpose::Init,
        Purpose::Shuffle,
    ];

    /// The purpose's tag: eight ASCII bytes read big-endian (`"data/trn"`, `"data/tst"`, `"data/val"`,
    /// `"net/init"`, `"net/shuf"`).
    pub const fn tag(self) -> u64 {
        u64::from_be_bytes(*match self {
            Purpose::Train => b"data/trn",
            Purpose::Test => b"data/tst",
            Purpose::Validation => b"data/val",
            Purpose::Init => b"net/init",
            Purpose::Shuffle => b"net/shuf",
        })
    }
}

/// SplitMix64's finalizer (Stafford's "Mix13"): a bijection of the 64-bit words that spreads every input bit over
/// the output, the function [`crate::verify::Rng`] applies to its state to make each draw.
pub const fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed the generator for `purpose` starts from, given the user's `seed`: `mix(seed ^ purpose.tag())`.
pub const fn derive(seed: u64, purpose: Purpose) -> u64 {
    mix(seed ^ purpose.tag())
}

/// `n` as a JSON string of 16 hexadecimal digits (a JSON number would lose bits above 2^53 in many readers).
pub(crate) fn hex(n: u64) -> String {
    format!("\"0x{n:016x}\"")
}

/// The study's dataset from `data_seed`: `train_per_class` training points per class from
/// `derive(data_seed, Train)`, and `test_per_class` test and validation points per class from
/// `derive(data_seed, Test)` and `derive(data_seed, Validation)`. The same generators as [`Dataset::new`], which
/// takes `seed`, `seed + 1000` and `seed + 2000` instead.
pub fn dataset(
    kind: DatasetKind,
    train_per_class: usize,
    test_per_class: usize,
    data_seed: u64,
) -> Dataset {
    let seeds = [Purpose::Train, Purpose::Test, Purpose::Validation].map(|p| derive(data_seed, p));
    Dataset::from_seeds(kind, train_per_class, test_per_class, seeds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Rng;
    use std::collections::HashSet;

    /// The first `n` draws of the stream a generator started at `seed` makes.
    fn draws(seed: u64, n: usize) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.next_u64()).collect()
    }

    #[test]
    fn tags_are_distinct() {
        let tags: HashSet<u64> = Purpose::ALL.iter().map(|p| p.tag()).collect();
        assert_eq!(tags.len(), Purpose::ALL.len());
    }

    #[test]
    fn the_streams_differ_across_purposes_and_seeds() {
        // The seeds that collided before: data seed 1 with run seed 1 (data and initialisation), and run seeds
        // 1001 and 2001 with the test and validation sets of data seed 1.
        let seeds = [1u64, 1001, 2001];
        let mut streams = Vec::new();
        for &seed in &seeds {
            for purpose in Purpose::ALL {
                streams.push((seed, purpose, draws(derive(seed, purpose), 256)));
            }
        }
        // No draw of any of the 15 streams' first 256 equals another's (first draws included): no stream is
        // another's, nor a shifted copy of it within those draws.
        let mut seen = std::collections::HashMap::new();
        for (seed, purpose, d) in &streams {
            for (i, &x) in d.iter().enumerate() {
                if let Some((s, p, j)) = seen.insert(x, (*seed, *purpose, i)) {
                    panic!("draw {i} of ({seed}, {purpose:?}) equals draw {j} of ({s}, {p:?})");
                }
            }
        }
        // And none equals a stream the library's generators would start from the user's seeds directly: the
        // data seed's training, test and validation streams (`Dataset::new`) and the run seed's.
        for &seed in &seeds {
            for raw in [seed, seed + 1000, seed + 2000] {
                let first = draws(raw, 1)[0];
                assert!(
                    !seen.contains_key(&first),
                    "a derived stream is raw seed {raw}'s"
                );
            }
        }
    }

    /// Position of a SplitMix64 state on its cycle: the state after `k` draws from 0 is `k * gamma`, so a state
    /// `s` is `s * gamma^-1` draws from 0 (gamma is odd, hence invertible modulo 2^64).
    fn position(state: u64) -> u64 {
        const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut inv = GAMMA;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(GAMMA.wrapping_mul(inv)));
        }
        assert_eq!(GAMMA.wrapping_mul(inv), 1);
        state.wrapping_mul(inv)
    }

    #[test]
    fn no_two_streams_overlap_within_2_pow_32_draws() {
        // Run seeds 1..=10000 (the largest --seeds) and data seeds 1..=100: every stream's starting state on
        // SplitMix64's cycle, sorted; consecutive ones (cyclically) at least 2^32 draws apart means no stream
        // reaches a state another one passes through within its first 2^32 draws.
        let mut starts: Vec<(u64, u64, Purpose)> = Vec::new();
        for seed in 1..=10_000u64 {
            for purpose in [Purpose::Init, Purpose::Shuffle] {
                starts.push((position(derive(seed, purpose)), seed, purpose));
            }
        }
        for seed in 1..=100u64 {
            for purpose in [Purpose::Train, Purpose::Test, Purpose::Validation] {
                starts.push((position(derive(seed, purpose)), seed, purpose));
            }
        }
        starts.sort_unstable();
        let gap = |a: &(u64, u64, Purpose), b: &(u64, u64, Purpose)| b.0.wrapping_sub(a.0);
        let mut smallest = gap(starts.last().unwrap(), &starts[0]);
        for w in starts.windows(2) {
            let g = gap(&w[0], &w[1]);
            assert!(
                g >= 1 << 32,
                "{:?} and {:?} are {g} draws apart",
                w[0],
                w[1]
            );
            smallest = smallest.min(g);
        }
        assert!(smallest >= 1 << 32);
    }

    #[test]
    fn the_dataset_uses_the_derived_seeds() {
        let d = dataset(DatasetKind::Spirals, 5, 4, 1);
        let (x, y) = DatasetKind::Spirals.generate(5, derive(1, Purpose::Train));
        assert_eq!((&d.train_x, &d.train_y), (&x, &y));
        let (x, _) = DatasetKind::Spirals.generate(4, derive(1, Purpose::Test));
        assert_eq!(d.test_x, x);
        let (x, _) = DatasetKind::Spirals.generate(4, derive(1, Purpose::Validation));
        assert_eq!(d.val_x, x);
        // Not the streams `Dataset::new` takes from the same number.
        let raw = Dataset::new(DatasetKind::Spirals, 5, 4, 1);
        assert_ne!(d.train_x, raw.train_x);
        assert_ne!(d.test_x, raw.test_x);
        assert_ne!(d.val_x, raw.val_x);
        assert_eq!((d.features, d.classes), (raw.features, raw.classes));
    }
}
