//! Element-by-element comparison against the f64 reference, with error statistics.

use super::flush::FLUSH_UNDERFLOW;
use super::Tolerance;
use crate::DType;

/// One element that failed its check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Failure {
    /// Index in the checked slice.
    pub index: usize,
    /// The op's input x there.
    pub input: f32,
    /// What the GPU wrote.
    pub got: f32,
    /// The f64 reference.
    pub expected: f64,
}

/// What an element must satisfy to pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Criterion {
    /// Within `abs + rel |ref|` of the f64 reference.
    Tolerance(Tolerance),
    /// Within `max` units in the last place of `dtype` of the reference rounded to `dtype` (to nearest even).
    /// A 0 for a reference that is subnormal in f32 is as many ULPs off as it is: it passes only in
    /// [`compare_flushing`] given a flushed reference (a device that flushes), by that reference or by the
    /// `FLUSH_UNDERFLOW` rule.
    Ulp {
        /// The storage type whose ULPs count.
        dtype: DType,
        /// The largest distance that passes.
        max: u32,
    },
    /// Within a bound given per element (reductions, whose rounding scales with the sum of magnitudes).
    Bounds {
        /// Name of the rule that produced the bounds.
        name: &'static str,
    },
}

/// Error statistics of one comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The criterion applied.
    pub criterion: Criterion,
    /// Elements compared.
    pub count: usize,
    /// Elements out of tolerance (or of the wrong class: NaN, inf, finite).
    pub failures: usize,
    /// Largest `|got - ref|` over elements where the absolute term of the tolerance dominates
    /// (`rel |ref| < abs`), so that it is not swamped by the rounding of huge values.
    pub max_abs_err: f64,
    /// Largest `|got - ref| / |ref|` over elements where the relative term of the tolerance dominates
    /// (`rel |ref| >= abs`), so that it is not swamped by references near 0.
    pub max_rel_err: f64,
    /// Largest distance, in units in the last place of the storage type, between the result and the reference
    /// rounded to that type (finite elements).
    pub max_ulp_err: u32,
    /// The input whose error used the largest share of its allowance.
    pub worst_input: f32,
    /// That share: `|got - ref| / (abs + rel |ref|)`; at most 1 when everything passes.
    pub worst_ratio: f64,
    /// The first few failures, in index order.
    pub first_failures: Vec<Failure>,
    /// Elements that passed only by the rules for devices that flush subnormals (see [`compare_flushing`]).
    pub flush_accepted: usize,
}

/// One line: the criterion, the values compared and failed, the largest share of its allowance an error used
/// (and at which input, where the check has inputs), the elements accepted only as flushed subnormals, and the
/// first failure (its element index, and input where there is one).
impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.criterion {
            Criterion::Tolerance(t) => write!(f, "{} (abs {:e}, rel {:e})", t.name, t.abs, t.rel)?,
            Criterion::Ulp { dtype, max } => write!(f, "within {max} ulp of {}", dtype.name())?,
            Criterion::Bounds { name } => write!(f, "{name}")?,
        }
        write!(f, ": {} values, {} failed", self.count, self.failures)?;
        if self.worst_ratio > 0.0 {
            write!(f, ", worst {:.3} of its allowance", self.worst_ratio)?;
            if !self.worst_input.is_nan() {
                write!(f, " at x = {:?}", self.worst_input)?;
            }
        }
        if self.flush_accepted > 0 {
            write!(f, ", {} as flushed subnormals", self.flush_accepted)?;
        }
        if let Some(e) = self.first_failures.first() {
            write!(f, "; first failure, element {}", e.index)?;
            if !e.input.is_nan() {
                write!(f, " (x = {:?})", e.input)?;
            }
            write!(f, ": got {:?}, reference {:?}", e.got, e.expected)?;
        }
        Ok(())
    }
}

impl Check {
    /// A check under `criterion` that has compared nothing yet.
    pub(super) fn new(criterion: Criterion) -> Check {
        Check {
            criterion,
            count: 0,
            failures: 0,
            max_abs_err: 0.0,
            max_rel_err: 0.0,
            max_ulp_err: 0,
            worst_input: f32::NAN,
            worst_ratio: 0.0,
            first_failures: Vec::new(),
            flush_accepted: 0,
        }
    }

    /// Counts element `index` (input `input`, result `got`, reference `expected`) with its verdict `e`.
    pub(super) fn add(&mut self, index: usize, input: f32, got: f32, expected: f64, e: &Element) {
        self.count += 1;
        self.max_abs_err = self.max_abs_err.max(e.abs_err);
        self.max_rel_err = self.max_rel_err.max(e.rel_err);
        self.max_ulp_err = self.max_ulp_err.max(e.ulp_err);
        if e.ratio > self.worst_ratio || self.worst_input.is_nan() && e.ratio > 0.0 {
            self.worst_ratio = e.ratio;
            self.worst_input = input;
        }
        if !e.pass {
            self.failures += 1;
            if self.first_failures.len() < 8 {
                self.first_failures.push(Failure {
                    index,
                    input,
                    got,
                    expected,
                });
            }
        }
    }

    /// True when no element failed.
    pub fn ok(&self) -> bool {
        self.failures == 0
    }

    /// One check summing several of the same output (on several shapes, say): counts and failures add, maxima
    /// and the worst input are taken over all, the first failures are kept in order. `None` for an empty list.
    pub fn merge(checks: Vec<Check>) -> Option<Check> {
        let mut iter = checks.into_iter();
        let mut acc = iter.next()?;
        for c in iter {
            acc.count += c.count;
            acc.failures += c.failures;
            acc.max_abs_err = acc.max_abs_err.max(c.max_abs_err);
            acc.max_rel_err = acc.max_rel_err.max(c.max_rel_err);
            acc.max_ulp_err = acc.max_ulp_err.max(c.max_ulp_err);
            acc.flush_accepted += c.flush_accepted;
            if c.worst_ratio > acc.worst_ratio {
                acc.worst_ratio = c.worst_ratio;
                acc.worst_input = c.worst_input;
            }
            let room = 8usize.saturating_sub(acc.first_failures.len());
            acc.first_failures
                .extend(c.first_failures.into_iter().take(room));
        }
        Some(acc)
    }
}

/// Compares `got` with `reference` element by element. Where the reference rounded to f32 is NaN or +-inf, the
/// result must be NaN or that same infinity; elsewhere it must be finite and within `tol`. `skip_zero_reference`
/// leaves out elements whose reference is 0 (for the relative-only check of small inputs).
pub fn compare(
    inputs: &[f32],
    got: &[f32],
    reference: &[f64],
    tol: Tolerance,
    skip_zero_reference: bool,
) -> Check {
    compare_with(
        Criterion::Tolerance(tol),
        inputs,
        got,
        reference,
        skip_zero_reference,
        None,
    )
}

/// Compares results stored in `dtype` (given as exact f32 values) with the reference rounded to `dtype`: NaN and
/// +-inf must match in class, finite values must be within `max_ulp` units in the last place of `dtype`.
pub fn compare_storage(
    dtype: DType,
    inputs: &[f32],
    got: &[f32],
    reference: &[f64],
    max_ulp: u32,
) -> Check {
    compare_with(
        Criterion::Ulp {
            dtype,
            max: max_ulp,
        },
        inputs,
        got,
        reference,
        false,
        None,
    )
}

/// [`compare_storage`] (for a [`Criterion::Ulp`]) or [`compare`] (for a [`Criterion::Tolerance`]) on a device that
/// may flush subnormals. With `flushed` (the reference at flushed inputs, from
/// [`super::flushed_reference`], given only where the device flushes) an element that fails
/// `criterion` against `reference` also passes when it meets it against `flushed`, or is finite and within
/// `FLUSH_UNDERFLOW` of `reference`; [`Check::flush_accepted`] counts those. `None` is the strict comparison.
pub fn compare_flushing(
    criterion: Criterion,
    inputs: &[f32],
    got: &[f32],
    reference: &[f64],
    flushed: Option<&[f64]>,
) -> Check {
    compare_with(criterion, inputs, got, reference, false, flushed)
}

/// Compares `got` with `reference` element by element against per-element bounds `|got - ref| <= bounds[i]`;
/// NaN and +-inf must match in class.
pub fn compare_bounded(
    name: &'static str,
    got: &[f32],
    reference: &[f64],
    bounds: &[f64],
) -> Check {
    let mut c = Check::new(Criterion::Bounds { name });
    check_lengths(&mut c, &[got.len(), reference.len(), bounds.len()]);
    for (i, ((&g, &r), &b)) in got.iter().zip(reference).zip(bounds).enumerate() {
        c.count += 1;
        let expected = r as f32;
        let (pass, ratio) = if expected.is_nan() || expected.is_infinite() || !g.is_finite() {
            let same = g == expected || g.is_nan() && expected.is_nan();
            (same, if same { 0.0 } else { f64::INFINITY })
        } else {
            let err = (f64::from(g) - r).abs();
            c.max_abs_err = c.max_abs_err.max(err);
            if r != 0.0 {
                c.max_rel_err = c.max_rel_err.max(err / r.abs());
            }
            (err <= b, share(err, b))
        };
        // The elements of a bounded comparison (sums, products) have no single input: NaN says so, and the
        // failures carry their index.
        if ratio > c.worst_ratio {
            c.worst_ratio = ratio;
        }
        if !pass {
            c.failures += 1;
            if c.first_failures.len() < 8 {
                c.first_failures.push(Failure {
                    index: i,
                    input: f32::NAN,
                    got: g,
                    expected: r,
                });
            }
        }
    }
    c
}

/// Counts one failure (at the shortest length's index, with NaN values) where the slices of a comparison differ in
/// length: the element-by-element walk stops at the shortest, so the elements past it would go unchecked.
pub(super) fn check_lengths(c: &mut Check, lens: &[usize]) {
    let shortest = lens.iter().copied().min().unwrap_or(0);
    if lens.iter().any(|&l| l != shortest) {
        c.failures += 1;
        c.first_failures.push(Failure {
            index: shortest,
            input: f32::NAN,
            got: f32::NAN,
            expected: f64::NAN,
        });
    }
}

/// The reference rounded to `dtype` (to nearest even, overflow to +-inf), as f32. For the 16-bit types the f64 is
/// first rounded to f32 to odd (truncated, the last bit set where anything was cut off), then to the 16-bit type
/// to nearest even: with the f32 step keeping at least two bits more than the 16-bit type, that is the correct
/// rounding of the f64 (`half`'s `from_f64` rounds through f32 to nearest, or truncates bf16's extra bits, and
/// can land one encoding off near a tie).
pub(super) fn rounded(dtype: DType, r: f64) -> f32 {
    match dtype {
        DType::F32 => r as f32,
        DType::F16 => half::f16::from_f32(round_to_odd_f32(r)).to_f32(),
        DType::BF16 => half::bf16::from_f32(round_to_odd_f32(r)).to_f32(),
    }
}

/// `r` rounded to f32 to odd: exact values and NaN unchanged; otherwise the f32 next to `r` towards zero, with its
/// lowest significand bit set (past the largest f32, the largest f32, whose lowest bit is set).
fn round_to_odd_f32(r: f64) -> f32 {
    let nearest = r as f32;
    if r.is_nan() || f64::from(nearest) == r {
        return nearest;
    }
    let mut bits = nearest.to_bits();
    if nearest.is_infinite() || f64::from(nearest).abs() > r.abs() {
        // Rounded away from zero (or overflowed): one step back towards zero.
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

/// Position of a finite value on the integer line of `dtype`'s encodings, so that neighbours differ by 1 and
/// -0 and +0 coincide.
fn ordinal(dtype: DType, v: f32) -> i64 {
    let (bits, sign_bit) = match dtype {
        DType::F32 => (u64::from(v.to_bits()), 1u64 << 31),
        DType::F16 => (u64::from(half::f16::from_f32(v).to_bits()), 1 << 15),
        DType::BF16 => (u64::from(half::bf16::from_f32(v).to_bits()), 1 << 15),
    };
    let magnitude = (bits & (sign_bit - 1)) as i64;
    if bits & sign_bit != 0 {
        -magnitude
    } else {
        magnitude
    }
}

fn compare_with(
    criterion: Criterion,
    inputs: &[f32],
    got: &[f32],
    reference: &[f64],
    skip_zero_reference: bool,
    flushed: Option<&[f64]>,
) -> Check {
    let mut c = Check::new(criterion);
    let storage = match criterion {
        Criterion::Ulp { dtype, .. } => dtype,
        _ => DType::F32,
    };
    // The absolute/relative split of the reported errors; for ULP checks the f32 elementwise tolerance's.
    let split = match criterion {
        Criterion::Tolerance(t) => t,
        _ => super::F32_ELEMENTWISE,
    };
    check_lengths(&mut c, &[inputs.len(), got.len(), reference.len()]);
    for (i, ((&x, &g), &r)) in inputs.iter().zip(got).zip(reference).enumerate() {
        if skip_zero_reference && r == 0.0 {
            continue;
        }
        let mut e = element(criterion, storage, split, g, r);
        if !e.pass {
            if let Some(alt) = flushed {
                let against_flushed = element(criterion, storage, split, g, alt[i]);
                if against_flushed.pass {
                    e = against_flushed;
                    c.flush_accepted += 1;
                } else if g.is_finite() && (f64::from(g) - r).abs() <= FLUSH_UNDERFLOW {
                    e = Element::exact();
                    c.flush_accepted += 1;
                }
            }
        }
        c.add(i, x, g, r, &e);
    }
    c
}

/// The share `err / allowed` of an element's allowance that its error uses: 0 for an exact result under no
/// allowance, infinite for any other.
pub(super) fn share(err: f64, allowed: f64) -> f64 {
    if allowed > 0.0 {
        err / allowed
    } else if err == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The verdict on one element and its errors (zero where not measured).
pub(super) struct Element {
    pub(super) pass: bool,
    /// Share of the allowance used (0 for a pass by class, infinite for a wrong class).
    pub(super) ratio: f64,
    pub(super) abs_err: f64,
    pub(super) rel_err: f64,
    pub(super) ulp_err: u32,
}

impl Element {
    /// An exact match.
    pub(super) fn exact() -> Element {
        Element {
            pass: true,
            ratio: 0.0,
            abs_err: 0.0,
            rel_err: 0.0,
            ulp_err: 0,
        }
    }
}

/// Checks one result `g` against the reference `r` under `criterion` (ULPs of `storage`; the absolute/relative
/// split of the reported errors from `split`).
fn element(criterion: Criterion, storage: DType, split: Tolerance, g: f32, r: f64) -> Element {
    let mut e = Element::exact();
    let expected = rounded(storage, r);
    let (pass, ratio) = if expected.is_nan() {
        (g.is_nan(), if g.is_nan() { 0.0 } else { f64::INFINITY })
    } else if expected.is_infinite() {
        (
            g == expected,
            if g == expected { 0.0 } else { f64::INFINITY },
        )
    } else if !g.is_finite() {
        (false, f64::INFINITY)
    } else {
        let err = (f64::from(g) - r).abs();
        if split.rel * r.abs() < split.abs {
            e.abs_err = err;
        } else if r != 0.0 {
            e.rel_err = err / r.abs();
        }
        let ulps = (ordinal(storage, g) - ordinal(storage, expected)).unsigned_abs();
        e.ulp_err = ulps.min(u64::from(u32::MAX)) as u32;
        match criterion {
            Criterion::Tolerance(tol) => {
                let allowed = tol.allowed(r);
                (err <= allowed, share(err, allowed))
            }
            Criterion::Bounds { .. } => (false, f64::INFINITY),
            // A flushed subnormal is accepted only on a device that flushes, by `compare_with`'s fallback, which
            // counts it; here a 0 for a nonzero expected value is as many ULPs away as it is.
            Criterion::Ulp { max, .. } => {
                (ulps <= u64::from(max), ulps as f64 / f64::from(max.max(1)))
            }
        }
    };
    e.pass = pass;
    e.ratio = ratio;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const ULP1: Criterion = Criterion::Ulp {
        dtype: DType::BF16,
        max: 1,
    };

    #[test]
    fn slices_of_different_lengths_fail() {
        let short = compare_bounded("b", &[1.0], &[1.0, 2.0], &[0.0, 0.0]);
        assert_eq!((short.count, short.failures), (1, 1));
        assert_eq!(short.first_failures[0].index, 1);
        let bounds_short = compare_bounded("b", &[1.0, 2.0], &[1.0, 2.0], &[0.0]);
        assert!(!bounds_short.ok());
        let ulp = compare_flushing(ULP1, &[1.0, 2.0], &[1.0], &[1.0], None);
        assert!(!ulp.ok());
        assert!(compare_bounded("b", &[1.0, 2.0], &[1.0, 2.0], &[0.0, 0.0]).ok());
    }

    #[test]
    fn flushing_rules_apply_only_with_a_flushed_reference() {
        // 2^-149, so relu'(subnormal) * dy read as relu'(0) * dy; an underflowed 4e-38; an honest error.
        let sub = f32::from_bits(1);
        let inputs = [sub, -13.0, 1.0];
        let got = [0.0, 0.0, 1.5];
        let reference = [0.75, 4e-38, 1.0];
        let flushed = [0.0, 4e-38, 1.0];
        let strict = compare_flushing(ULP1, &inputs, &got, &reference, None);
        assert_eq!((strict.failures, strict.flush_accepted), (3, 0));
        let lenient = compare_flushing(ULP1, &inputs, &got, &reference, Some(&flushed));
        assert_eq!((lenient.failures, lenient.flush_accepted), (1, 2));
        assert_eq!(lenient.first_failures[0].index, 2);
        // Errors are reported from the comparison that passed: the flushed elements add none.
        let lenient_ok = compare_flushing(
            ULP1,
            &inputs[..2],
            &got[..2],
            &reference[..2],
            Some(&flushed[..2]),
        );
        assert!(lenient_ok.ok());
        assert_eq!(lenient_ok.max_ulp_err, 0);
        // Past 2^-118 a zero is an error even on a flushing device.
        let big = compare_flushing(ULP1, &[-13.0], &[0.0], &[4e-36], Some(&[4e-36]));
        assert_eq!(big.failures, 1);
        // A bf16 value that is subnormal in f32 (2^-127, 64 encodings above 0) read back as 0: an error on a
        // device that keeps subnormals, accepted and counted, with no ULP error, on one that flushes.
        let tiny = f64::from(half::bf16::from_bits(0x0040).to_f32());
        let strict = compare_flushing(ULP1, &[1.0], &[0.0], &[tiny], None);
        assert_eq!((strict.failures, strict.flush_accepted), (1, 0));
        let lenient = compare_flushing(ULP1, &[1.0], &[0.0], &[tiny], Some(&[tiny]));
        assert_eq!(
            (
                lenient.failures,
                lenient.flush_accepted,
                lenient.max_ulp_err
            ),
            (0, 1, 0)
        );
    }

    /// The reference is rounded once, to nearest even, from its f64 value: just past a tie it goes up.
    #[test]
    fn references_round_once_to_the_storage_type() {
        let f16 = 1.0 + 2f64.powi(-11) + 2f64.powi(-30);
        assert_eq!(
            rounded(DType::F16, f16).to_bits(),
            half::f16::from_bits(0x3c01).to_f32().to_bits()
        );
        let bf16 = 1.0 + 2f64.powi(-8) + 2f64.powi(-40);
        assert_eq!(
            rounded(DType::BF16, bf16).to_bits(),
            half::bf16::from_bits(0x3f81).to_f32().to_bits()
        );
        // Exactly on a tie: to even.
        assert_eq!(rounded(DType::F16, 1.0 + 2f64.powi(-11)), 1.0);
        assert_eq!(rounded(DType::BF16, 1.0 + 2f64.powi(-8)), 1.0);
        // Overflow, NaN, and a value past f32's range.
        assert!(rounded(DType::F16, 70_000.0).is_infinite());
        assert!(rounded(DType::BF16, f64::NAN).is_nan());
        assert!(rounded(DType::BF16, 1e300).is_infinite());
        assert_eq!(rounded(DType::BF16, -1e-300), 0.0);
    }
}
