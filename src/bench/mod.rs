//! Measuring kernels against what the adapter can do: the tools behind `examples/bench.rs` and `benches/`.
//!
//! - [`Timer`] times recorded GPU work with timestamp queries where the device has them, else the wall clock.
//! - [`measure`] runs warm-up samples, then many samples, and summarises them as [`Stats`] (median, min, max).
//! - [`ceilings`] measures the adapter's copy bandwidth and FMA rate, the denominators of every fraction.
//! - [`activations`] sets up random operands (rotated when they would fit in a cache) and records an
//!   activation's forward or backward through its public launchers; [`fused`] does the same for bias +
//!   activation, gated units and learnable activations; [`training`] for matmul, the dense layer and an MLP
//!   training step.
//! - [`compare`] times fused kernels against the sequences of separate kernels they replace.
//! - [`dtype_ratio`] sets 16-bit rows against the f32 rows of the same kernel and size.
//! - [`plan`] says what a run measures (kernels, passes, types, sizes) and runs it, one row per measurement.
//! - [`report`] collects rows and prints the table, the JSON document or Markdown (for BENCHMARKS.md).
//!
//! Definitions used throughout: a rate is `amount per repetition / median seconds per repetition`, bandwidth counts
//! bytes read plus bytes written, a fused multiply-add counts 2 FLOP, and a fraction of a ceiling is
//! `rate / ceiling rate`.

pub mod activations;
pub mod ceilings;
pub mod compare;
pub mod dtype_ratio;
pub mod fused;
pub mod host;
mod markdown;
pub mod plan;
pub mod report;
mod stats;
mod timing;
pub mod training;

pub use stats::Stats;
pub use timing::{
    reps_per_submit, Clock, Sample, Timer, ALLOC_BUDGET_PER_SUBMIT, MAX_REPS_PER_SUBMIT,
};

use crate::{Gpu, Result};

/// How many samples to take and how long each lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Samples run and discarded before measuring (after the one-repetition calibration run).
    pub warmup: u32,
    /// Samples measured.
    pub samples: u32,
    /// Each sample repeats the work until it lasts at least this long (estimated from the calibration runs).
    pub min_sample_s: f64,
    /// Upper bound on the repetitions in one sample.
    pub max_reps: u32,
    /// The warm-up goes on past `warmup` samples until it has lasted this long (wall clock).
    pub min_warmup_s: f64,
}

impl Sampling {
    /// The default run: at least 2 warm-up samples and 100 ms of warm-up, 15 measured, each at least 20 ms.
    pub const DEFAULT: Sampling = Sampling {
        warmup: 2,
        samples: 15,
        min_sample_s: 0.02,
        max_reps: 1000,
        min_warmup_s: 0.1,
    };

    /// A quick run that only shows the code works: 1 warm-up sample, 3 measured, each at least 2 ms.
    pub const QUICK: Sampling = Sampling {
        warmup: 1,
        samples: 3,
        min_sample_s: 0.002,
        max_reps: 100,
        min_warmup_s: 0.0,
    };
}

/// The result of [`measure`]: statistics of the seconds per repetition, and how they were taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Seconds per repetition.
    pub stats: Stats,
    /// Repetitions in each sample.
    pub reps_per_sample: u32,
    /// The clock that was read.
    pub clock: Clock,
}

/// Checks that `elements` values of `bytes` each fit one buffer of `gpu` before any host vector of them is
/// filled: a size past the device's buffer limit is [`crate::Error::LimitExceeded`], not a host allocation of
/// that size.
pub fn check_elements(gpu: &Gpu, elements: usize, bytes: usize) -> Result<()> {
    let max = gpu.limits().max_buffer_size;
    let requested = (elements as u64).saturating_mul(bytes as u64);
    if requested > max {
        return Err(crate::Error::LimitExceeded {
            limit: "max_buffer_size",
            max,
            requested,
        });
    }
    Ok(())
}

/// Measures the work that `record(encoder, rep)` records: one cold repetition (pipeline creation, first touch of
/// the buffers), one calibration repetition, a second calibration sample of the length the first suggests (where
/// that is more than one repetition), discarded warm-up samples (`sampling.warmup`, and more until they have
/// lasted `sampling.min_warmup_s`), then `sampling.samples` samples of `reps` repetitions each, where `reps` is
/// the smallest count that makes a sample last `sampling.min_sample_s` by the second calibration's wall time
/// per repetition (at least 1, at most `sampling.max_reps`). `rep`
/// increases by one on every repetition, so `record` can rotate between buffers.
pub fn measure(
    timer: &Timer,
    sampling: &Sampling,
    record: &mut RecordFn<'_>,
) -> Result<Measurement> {
    measure_by(timer.clock(), sampling, &mut |reps, first| {
        timer.sample(reps, first, record)
    })
}

/// Like [`measure`], for work that submits itself: `run(rep)` is called `reps` times per sample and the sample is
/// timed on the wall clock, from the first call to the return of a blocking poll after the last.
pub fn measure_submitted(
    timer: &Timer,
    sampling: &Sampling,
    run: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Measurement> {
    measure_by(Clock::WallClock, sampling, &mut |reps, first| {
        timer.sample_submitted(reps, first, run)
    })
}

/// Work to time: `record(encoder, rep)` records repetition `rep` into the encoder.
pub type RecordFn<'a> = dyn FnMut(&mut wgpu::CommandEncoder, u64) -> Result<()> + 'a;

/// A sampler: `sample(reps, first_rep)` times `reps` repetitions starting at `first_rep`.
type SampleFn<'a> = dyn FnMut(u32, u64) -> Result<Sample> + 'a;

/// Measures several pieces of work in alternation, for ratios between them (16-bit against f32, fused against
/// unfused): each is run cold, calibrated and warmed up as by [`measure`], then sample `i` of each is taken in
/// turn, so that a burst of other load on the machine, or a slow drift, falls on all of them alike. All take the
/// same repetitions per sample, the most any needs. Returns one measurement per `records` entry, in order.
pub fn measure_alternating(
    timer: &Timer,
    sampling: &Sampling,
    records: &mut [&mut RecordFn<'_>],
) -> Result<Vec<Measurement>> {
    Ok(measure_alternating_rounds(timer, sampling, records)?.0)
}

/// [`measure_alternating`], also returning every measured sample (seconds per repetition) of each piece of work,
/// in round order: `samples[j][i]` is round `i` of `records[j]`, taken right after round `i` of `records[j - 1]`,
/// for ratios taken round by round.
pub fn measure_alternating_rounds(
    timer: &Timer,
    sampling: &Sampling,
    records: &mut [&mut RecordFn<'_>],
) -> Result<(Vec<Measurement>, Vec<Vec<f64>>)> {
    let mut samplers: Vec<_> = records
        .iter_mut()
        .map(|record| move |reps, first| timer.sample(reps, first, &mut **record))
        .collect();
    let mut refs: Vec<&mut SampleFn<'_>> = samplers.iter_mut().map(|s| s as _).collect();
    measure_schedule(timer.clock(), sampling, &mut refs)
}

/// The sampling schedule of [`measure`] over any sampler `sample(reps, first_rep)`.
fn measure_by(clock: Clock, sampling: &Sampling, sample: &mut SampleFn<'_>) -> Result<Measurement> {
    let (mut one, _) = measure_schedule(clock, sampling, &mut [sample])?;
    Ok(one.remove(0))
}

/// The sampling schedule over samplers `sample(reps, first_rep)`, taken in alternation: a cold run and a
/// calibration run of each, their warm-up samples, then their measured samples in turn. Returns each sampler's
/// measurement and its measured samples in order.
fn measure_schedule(
    clock: Clock,
    sampling: &Sampling,
    samplers: &mut [&mut SampleFn<'_>],
) -> Result<(Vec<Measurement>, Vec<Vec<f64>>)> {
    // Calibrated on the wall clock: it includes the submission overhead that batching is there to amortise.
    let reps_for = |per_rep: f64| {
        ((sampling.min_sample_s / per_rep.max(1e-9)).ceil() as u32)
            .clamp(1, sampling.max_reps.max(1))
    };
    let mut needed = Vec::with_capacity(samplers.len());
    let mut rep = Vec::with_capacity(samplers.len());
    for sample in samplers.iter_mut() {
        sample(1, 0)?;
        let estimate = reps_for(sample(1, 1)?.wall_seconds);
        // One repetition's wall time includes a submission and a blocking poll that a sample of many pays once,
        // so where those dominate the estimate falls short (samples of about 1 ms of GPU work instead of 20 on
        // an H200): a sample of the estimated length gives the amortised time per repetition.
        if estimate > 1 {
            needed.push(reps_for(sample(estimate, 2)?.wall_seconds));
            rep.push(2 + u64::from(estimate));
        } else {
            needed.push(1);
            rep.push(2);
        }
    }
    // Every sampler repeats its work the same number of times per sample, the most any of them needs, so that the
    // two sides of a ratio run in bursts of one length (a kernel's time per dispatch can depend on the burst).
    let common = needed.iter().copied().max().unwrap_or(1);
    let reps = vec![common; samplers.len()];
    let mut seconds = vec![Vec::with_capacity(sampling.samples as usize); samplers.len()];
    // Warm-up rounds: at least `sampling.warmup`, and until they have kept the device busy for
    // `sampling.min_warmup_s` (a GPU that idled, or ran launch-bound work, runs its clocks down).
    let mut warm = 0.0;
    let mut round = 0;
    while round < sampling.warmup || warm < sampling.min_warmup_s {
        for (i, sample) in samplers.iter_mut().enumerate() {
            let s = sample(reps[i], rep[i])?;
            rep[i] += u64::from(reps[i]);
            warm += s.wall_seconds * f64::from(reps[i]);
        }
        round += 1;
        // A sample that reports no time would never end the warm-up.
        if round >= sampling.warmup.max(1) * 100 {
            break;
        }
    }
    for _ in 0..sampling.samples.max(1) {
        for (i, sample) in samplers.iter_mut().enumerate() {
            let s = sample(reps[i], rep[i])?;
            rep[i] += u64::from(reps[i]);
            seconds[i].push(s.seconds);
        }
    }
    let measurements = seconds
        .iter()
        .zip(reps)
        .map(|(secs, reps)| {
            let stats = Stats::from_samples(secs).ok_or(crate::Error::InvalidArgument {
                op: "bench::measure",
                reason: "every sample was NaN".into(),
            })?;
            Ok(Measurement {
                stats,
                reps_per_sample: reps,
                clock,
            })
        })
        .collect::<Result<_>>()?;
    Ok((measurements, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schedule runs each sampler cold and for calibration first, then their warm-up and measured samples in
    /// turn, and gives each its own statistics and repetition count.
    #[test]
    fn alternating_schedule_interleaves_and_keeps_each_result_apart() {
        let log = std::cell::RefCell::new(Vec::new());
        // Sampler `id` takes `per_rep` seconds per repetition (on both clocks).
        let sampler = |id: usize, per_rep: f64| {
            let log = &log;
            move |reps: u32, first: u64| -> Result<Sample> {
                log.borrow_mut().push((id, reps, first));
                Ok(Sample {
                    seconds: per_rep,
                    wall_seconds: per_rep,
                })
            }
        };
        let (mut a, mut b) = (sampler(0, 0.001), sampler(1, 0.004));
        let sampling = Sampling {
            warmup: 1,
            samples: 3,
            min_sample_s: 0.01,
            max_reps: 100,
            min_warmup_s: 0.0,
        };
        let (m, samples) =
            measure_schedule(Clock::WallClock, &sampling, &mut [&mut a, &mut b]).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(samples, [vec![0.001; 3], vec![0.004; 3]]);
        // Both take the 10 repetitions the faster one needs for 10 ms.
        assert_eq!((m[0].stats.median, m[0].reps_per_sample), (0.001, 10));
        assert_eq!((m[1].stats.median, m[1].reps_per_sample), (0.004, 10));
        let order: Vec<usize> = log.borrow().iter().map(|&(id, _, _)| id).collect();
        assert_eq!(order, [0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
        // Repetition numbers run on per sampler: cold 0, calibration 1, the second calibration's 3 from 2, then
        // blocks of 10.
        let firsts: Vec<u64> = log
            .borrow()
            .iter()
            .filter(|&&(id, _, _)| id == 1)
            .map(|&(_, _, first)| first)
            .collect();
        assert_eq!(firsts, [0, 1, 2, 5, 15, 25, 35]);
    }

    /// The warm-up lasts `min_warmup_s` of the samples' wall time when that takes more samples than `warmup`,
    /// and ends even where the samples report no time.
    #[test]
    fn warm_up_lasts_its_minimum_time() {
        let calls = std::cell::Cell::new(0u32);
        let mut ms = |_reps: u32, _first: u64| -> Result<Sample> {
            calls.set(calls.get() + 1);
            Ok(Sample {
                seconds: 0.001,
                wall_seconds: 0.001,
            })
        };
        let sampling = Sampling {
            warmup: 1,
            samples: 3,
            min_sample_s: 0.01,
            max_reps: 100,
            min_warmup_s: 0.05,
        };
        measure_schedule(Clock::WallClock, &sampling, &mut [&mut ms]).unwrap();
        // Cold, two calibrations, five warm-up samples of 10 ms, three measured.
        assert_eq!(calls.get(), 3 + 5 + 3);
        calls.set(0);
        let mut free = |_reps: u32, _first: u64| -> Result<Sample> {
            calls.set(calls.get() + 1);
            Ok(Sample {
                seconds: 0.0,
                wall_seconds: 0.0,
            })
        };
        measure_schedule(Clock::WallClock, &sampling, &mut [&mut free]).unwrap();
        assert!(calls.get() < 200, "{}", calls.get());
    }
}
