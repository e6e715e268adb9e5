//! Timing GPU work: timestamp queries where the device has `TIMESTAMP_QUERY`, the wall clock otherwise.
//!
//! A sample records `reps` repetitions of the work into command encoders (at most [`MAX_REPS_PER_SUBMIT`] per
//! submission, fewer for work that allocates: see below), submits them and waits. Its time per repetition is
//!
//! - with timestamps: `(t_end - t_begin) * timestamp_period / reps`, where `t_begin` and `t_end` are written by two
//!   empty marker compute passes that bracket the recorded work (`TIMESTAMP_QUERY` allows timestamps at pass
//!   boundaries only, and the launchers open their own passes);
//! - with the wall clock: the time from just before `Queue::submit` to the return of a blocking
//!   `Device::poll`, divided by `reps`. Recording happens before the clock starts, so only submission and
//!   execution are timed; batching many repetitions per submission keeps submission overhead small.
//!
//! Work that allocates a buffer on every call (a learnable activation's backward at a width that is not a multiple
//! of 8 allocates an f32 tensor of x's shape, cross-entropy its partial sums, a product of 16-bit operands on the
//! vec4 kernels f32 copies of them) is timed unevenly by the two clocks: wgpu zero-fills a new buffer in a command
//! buffer of its own before the submission, outside the timestamps but inside the wall clock, and every buffer a
//! submission's repetitions allocate stays alive until it completes. [`Timer::allocating`] therefore caps the
//! repetitions per submission so that `bytes allocated per repetition x repetitions` stays within
//! [`ALLOC_BUDGET_PER_SUBMIT`] (at least one repetition per submission); the bench's operand types give a
//! conservative estimate of their per-call allocation (`alloc_bytes_per_rep`). The bench's own operands (outputs,
//! the dense backward's dZ) are allocated once and rotated, never per repetition.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Error, Gpu, Result};

/// Repetitions recorded into one command encoder at most; larger samples are split over several submissions.
pub const MAX_REPS_PER_SUBMIT: u32 = 256;

/// Bytes that the repetitions of one submission may allocate in all, by their estimate
/// ([`Timer::allocating`]): 1 GiB.
pub const ALLOC_BUDGET_PER_SUBMIT: u64 = 1 << 30;

/// The repetitions per submission for work that allocates `alloc_bytes_per_rep` bytes per repetition: as many as
/// fit [`ALLOC_BUDGET_PER_SUBMIT`], at least 1 and at most [`MAX_REPS_PER_SUBMIT`].
pub fn reps_per_submit(alloc_bytes_per_rep: u64) -> u32 {
    let fit = ALLOC_BUDGET_PER_SUBMIT / alloc_bytes_per_rep.max(1);
    fit.clamp(1, u64::from(MAX_REPS_PER_SUBMIT)) as u32
}

/// Which clock a [`Timer`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamp queries written at compute-pass boundaries.
    Timestamps,
    /// Host wall clock around submit and a blocking poll.
    WallClock,
}

impl Clock {
    /// `timestamps` or `wall_clock`, as `bench --json` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Clock::Timestamps => "timestamps",
            Clock::WallClock => "wall_clock",
        }
    }
}

/// One timed sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds per repetition on the timer's clock.
    pub seconds: f64,
    /// Seconds per repetition on the wall clock (submission, execution and the blocking poll, not the readback of
    /// the queries); equal to `seconds` for [`Clock::WallClock`].
    pub wall_seconds: f64,
}

/// The query set and buffers of one pair of timestamps.
#[derive(Clone)]
struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f64,
}

/// Times work recorded into command encoders. See the module documentation for the definitions.
#[derive(Clone)]
pub struct Timer {
    gpu: Gpu,
    queries: Option<Queries>,
    /// Repetitions recorded into one submission at most ([`Timer::allocating`]).
    max_reps_per_submit: u32,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("clock", &self.clock())
            .field("max_reps_per_submit", &self.max_reps_per_submit)
            .finish()
    }
}

impl Timer {
    /// A timer on the best clock the device offers: timestamps when its features contain `TIMESTAMP_QUERY`.
    pub fn new(gpu: &Gpu) -> Timer {
        let clock = if gpu
            .device()
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            Clock::Timestamps
        } else {
            Clock::WallClock
        };
        // Cannot fail: the feature was just checked.
        Self::with_clock(gpu, clock).unwrap_or(Timer {
            gpu: gpu.clone(),
            queries: None,
            max_reps_per_submit: MAX_REPS_PER_SUBMIT,
        })
    }

    /// A timer on the given clock; [`Error::InvalidArgument`] when timestamps are asked for and the device lacks
    /// `TIMESTAMP_QUERY`.
    pub fn with_clock(gpu: &Gpu, clock: Clock) -> Result<Timer> {
        let queries = match clock {
            Clock::WallClock => None,
            Clock::Timestamps => {
                if !gpu
                    .device()
                    .features()
                    .contains(wgpu::Features::TIMESTAMP_QUERY)
                {
                    return Err(Error::InvalidArgument {
                        op: "Timer::with_clock",
                        reason: "the device lacks TIMESTAMP_QUERY; time on the wall clock (Clock::WallClock, \
                                 bench --clock wall)"
                            .into(),
                    });
                }
                let device = gpu.device();
                // Scoped: a failure is this call's error, not one left for a caller's later wait (the f16 probe
                // times with a Timer).
                let (set, resolve, readback) = gpu.scoped("Timer::with_clock", || {
                    let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("actgpu.bench.timestamps"),
                        ty: wgpu::QueryType::Timestamp,
                        count: 2,
                    });
                    let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("actgpu.bench.resolve"),
                        size: 16,
                        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    });
                    let readback = device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("actgpu.bench.readback"),
                        size: 16,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    (set, resolve, readback)
                })?;
                Some(Queries {
                    set,
                    resolve,
                    readback,
                    period_ns: f64::from(gpu.queue().get_timestamp_period()),
                })
            }
        };
        Ok(Timer {
            gpu: gpu.clone(),
            queries,
            max_reps_per_submit: MAX_REPS_PER_SUBMIT,
        })
    }

    /// This timer (same clock and queries) for work that allocates about `alloc_bytes_per_rep` bytes of buffers
    /// on every repetition: at most [`reps_per_submit`] repetitions per submission, so that one submission keeps
    /// at most [`ALLOC_BUDGET_PER_SUBMIT`] of them alive (see the module documentation). 0 bytes: the default
    /// [`MAX_REPS_PER_SUBMIT`].
    pub fn allocating(&self, alloc_bytes_per_rep: u64) -> Timer {
        Timer {
            max_reps_per_submit: reps_per_submit(alloc_bytes_per_rep),
            ..self.clone()
        }
    }

    /// Repetitions recorded into one submission at most: [`MAX_REPS_PER_SUBMIT`], or less for a timer made by
    /// [`Timer::allocating`].
    pub fn max_reps_per_submit(&self) -> u32 {
        self.max_reps_per_submit
    }

    /// The clock this timer reads.
    pub fn clock(&self) -> Clock {
        if self.queries.is_some() {
            Clock::Timestamps
        } else {
            Clock::WallClock
        }
    }

    /// The context the timer submits to.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Times `reps` repetitions of the work that `record(encoder, rep)` records (`rep` counts from `first_rep`,
    /// so callers can rotate buffers). `reps` of 0 is taken as 1. wgpu validation errors are returned as
    /// [`Error::Wgpu`].
    pub fn sample(
        &self,
        reps: u32,
        first_rep: u64,
        record: &mut dyn FnMut(&mut wgpu::CommandEncoder, u64) -> Result<()>,
    ) -> Result<Sample> {
        let reps = reps.max(1);
        let mut seconds = 0.0;
        let mut wall = 0.0;
        let mut done = 0u32;
        while done < reps {
            let batch = (reps - done).min(self.max_reps_per_submit.max(1));
            let (s, w) = self.batch(batch, first_rep + u64::from(done), record)?;
            seconds += s;
            wall += w;
            done += batch;
        }
        let n = f64::from(reps);
        Ok(Sample {
            seconds: seconds / n,
            wall_seconds: wall / n,
        })
    }

    /// The total time of `iters` repetitions of `record`, as criterion's `iter_custom` wants it: one
    /// [`Timer::sample`] of `iters` repetitions (at most `u32::MAX` at once), scaled to `iters`.
    pub fn total(
        &self,
        iters: u64,
        record: &mut dyn FnMut(&mut wgpu::CommandEncoder, u64) -> Result<()>,
    ) -> Result<std::time::Duration> {
        let reps = iters.clamp(1, u64::from(u32::MAX)) as u32;
        let sample = self.sample(reps, 0, record)?;
        Ok(std::time::Duration::from_secs_f64(
            sample.seconds * iters as f64,
        ))
    }

    /// Times `reps` calls of `run(rep)` (`rep` from `first_rep`) for work that submits itself, on the wall clock:
    /// from the first call to the return of a blocking poll after the last. `reps` of 0 is taken as 1.
    pub fn sample_submitted(
        &self,
        reps: u32,
        first_rep: u64,
        run: &mut dyn FnMut(u64) -> Result<()>,
    ) -> Result<Sample> {
        let reps = reps.max(1);
        self.gpu.poll_until_idle()?;
        let started = Instant::now();
        for r in 0..u64::from(reps) {
            run(first_rep + r)?;
        }
        self.gpu.poll_until_idle()?;
        let seconds = started.elapsed().as_secs_f64() / f64::from(reps);
        Ok(Sample {
            seconds,
            wall_seconds: seconds,
        })
    }

    /// One submission of `reps` repetitions: `(clock seconds, wall seconds)` in total.
    fn batch(
        &self,
        reps: u32,
        first_rep: u64,
        record: &mut dyn FnMut(&mut wgpu::CommandEncoder, u64) -> Result<()>,
    ) -> Result<(f64, f64)> {
        self.gpu.check_lost()?;
        let device = self.gpu.device();
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("actgpu.bench"),
        });
        let mut recorded = Ok(());
        if let Some(q) = &self.queries {
            marker_pass(&mut encoder, &q.set, Some(0), None);
        }
        for r in 0..u64::from(reps) {
            recorded = record(&mut encoder, first_rep + r);
            if recorded.is_err() {
                break;
            }
        }
        if let Some(q) = &self.queries {
            marker_pass(&mut encoder, &q.set, None, Some(1));
            encoder.resolve_query_set(&q.set, 0..2, &q.resolve, 0);
            encoder.copy_buffer_to_buffer(&q.resolve, 0, &q.readback, 0, 16);
        }
        let commands = encoder.finish();
        let started = Instant::now();
        if recorded.is_ok() {
            self.gpu.queue().submit([commands]);
        }
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        recorded?;
        if let Some(err) = oom.or(validation) {
            return Err(Error::Wgpu {
                op: "bench",
                message: err.to_string(),
            });
        }
        self.gpu.poll_until_idle()?;
        let wall = started.elapsed().as_secs_f64();
        let seconds = match &self.queries {
            None => wall,
            Some(q) => self.read_timestamps(q)?,
        };
        Ok((seconds, wall))
    }

    /// Maps the readback buffer and returns `(t_end - t_begin)` in seconds.
    fn read_timestamps(&self, q: &Queries) -> Result<f64> {
        let (tx, rx) = mpsc::channel();
        q.readback
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        let device = self.gpu.device();
        let mapped = loop {
            let _ = device.poll(wgpu::PollType::wait_indefinitely());
            match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(r) => break r,
                Err(mpsc::RecvTimeoutError::Timeout) => self.gpu.check_lost()?,
                Err(mpsc::RecvTimeoutError::Disconnected) => break Err(wgpu::BufferAsyncError),
            }
        };
        mapped.map_err(|e| Error::Readback {
            reason: e.to_string(),
        })?;
        let ticks: [u64; 2] = {
            let view = q
                .readback
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Readback {
                    reason: e.to_string(),
                })?;
            bytemuck::pod_read_unaligned(&view[..16])
        };
        q.readback.unmap();
        let [begin, end] = ticks;
        // Equal stamps are no measurement either: some Metal drivers resolve the stamps of a pass with no dispatch
        // to 0 (gfx-rs/wgpu-native#625), which would report every kernel as taking no time.
        if end <= begin {
            return Err(Error::Readback {
                reason: format!(
                    "timestamps did not advance (begin {begin}, end {end}): this adapter's timestamps are \
                     unusable here; measure with --clock wall"
                ),
            });
        }
        Ok((end - begin) as f64 * q.period_ns * 1e-9)
    }
}

/// An empty compute pass that only writes timestamps.
fn marker_pass(
    encoder: &mut wgpu::CommandEncoder,
    set: &wgpu::QuerySet,
    begin: Option<u32>,
    end: Option<u32>,
) {
    drop(encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("actgpu.bench.marker"),
        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: begin,
            end_of_pass_write_index: end,
        }),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repetitions of one submission allocate at most the budget between them, with at least one repetition
    /// per submission, and work that allocates nothing keeps the default.
    #[test]
    fn allocation_caps_repetitions_per_submission() {
        assert_eq!(reps_per_submit(0), MAX_REPS_PER_SUBMIT);
        assert_eq!(reps_per_submit(1 << 20), MAX_REPS_PER_SUBMIT);
        // The audit's case: a 4096x4090 learnable backward's f32 tensor of x's shape, 64 MiB a repetition.
        let per_rep = 4 * 4096 * 4090;
        let reps = reps_per_submit(per_rep);
        assert_eq!(reps, 16);
        assert!(u64::from(reps) * per_rep <= ALLOC_BUDGET_PER_SUBMIT);
        assert_eq!(reps_per_submit(ALLOC_BUDGET_PER_SUBMIT * 4), 1);
        assert_eq!(reps_per_submit(u64::MAX), 1);
    }
}
