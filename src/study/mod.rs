//! The activation study: trains the same network on the same data with every activation (and several seeds
//! when asked), and reports convergence, accuracy, calibration, gradient flow and cost, with plots.
//!
//! Behind the cargo feature `study` (off by default, so the library's default build stays lean):
//! `cargo run --release --features study --example study -- --help` runs it. The pieces, each usable on its own:
//!
//! | module | what |
//! |---|---|
//! | [`candidate`] | what is compared: a plain activation, a gated unit, a learnable activation or the randomized leaky ReLU, its name and parameter count |
//! | [`crate::datasets`] | built-in 2-D classification datasets from a seed, with a train / test split, and CSV files split per class and standardised (always built: `examples/train.rs` uses them too) |
//! | [`metrics`] | accuracy, NLL and ECE from logits in f64, the convergence epoch, mean and spread |
//! | [`seeds`] | the seed of each random stream (data, initialisation, batch order), derived from the user's seeds per purpose |
//! | [`run`] | training one network and recording its epochs, gradient flow and step times |
//! | [`summary`] | one activation's runs reduced to means, spreads and curves; the ranking |
//! | [`options`] | the command line |
//! | [`report`] | the text table and `report.md`, and writing every output into a directory |
//! | [`reading`] | the automatic reading of the results under the table |
//! | [`results_json`] | `results.json`, every number |
//! | [`sweep`] | a learning-rate sweep: the study at several rates, each kind at its best |
//! | [`figures`] and [`plot`] | the SVG charts, written by hand |
//!
//! Seeds: the study never gives a user's seed (`--data-seed`, or a run's seed `1..=K`) to a generator as it is.
//! The training, test and validation points, each run's initial weights and each run's batch order start from
//! `mix(seed ^ tag)`, SplitMix64's finalizer applied to the seed XOR a constant of that purpose
//! ([`seeds::derive`]), so that the data and the weights never come from the same draws, and no run seed
//! reproduces the test or validation stream (which [`crate::datasets::Dataset::new`] would take from
//! `seed + 1000` and `seed + 2000`).
//!
//! Everything runs on the public API ([`crate::Mlp`] and its diagnostics); nothing here touches a kernel.

pub mod candidate;
pub mod figures;
pub mod metrics;
pub mod options;
pub mod plot;
pub mod reading;
pub mod report;
pub mod results_json;
pub mod run;
pub mod seeds;
pub mod summary;
pub mod sweep;

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use crate::datasets::Dataset;
use crate::study::candidate::Candidate;
use crate::study::options::Options;
use crate::study::run::{train_one, DeviceData, EpochRecord, RunRecord};
use crate::study::summary::{ranked, Summary};
use crate::Gpu;

/// What can go wrong in the study.
#[derive(Debug)]
pub enum StudyError {
    /// The command line was not understood (the message says what; the caller prints the usage).
    Usage(String),
    /// The GPU or the network failed.
    Gpu(crate::Error),
    /// The dataset file could not be read or used.
    Data(crate::datasets::csv::CsvError),
    /// Writing an output file failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl fmt::Display for StudyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StudyError::Usage(msg) => write!(f, "{msg}"),
            StudyError::Gpu(e) => write!(f, "{e}"),
            StudyError::Data(e) => write!(f, "dataset: {e}"),
            StudyError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for StudyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StudyError::Usage(_) => None,
            StudyError::Gpu(e) => Some(e),
            StudyError::Data(e) => Some(e),
            StudyError::Io { source, .. } => Some(source),
        }
    }
}

impl From<crate::Error> for StudyError {
    fn from(e: crate::Error) -> Self {
        StudyError::Gpu(e)
    }
}

/// A finished study: what ran, where, and what it found.
#[derive(Debug, Clone)]
pub struct Study {
    /// The options it ran with.
    pub options: Options,
    /// The command line, as typed (for the report).
    pub command: String,
    /// The adapter line ([`Gpu::adapter_line`]).
    pub adapter: String,
    /// The host processor of a CPU adapter ([`Gpu::host_cpu`]), on which its costs depend; `None` for others.
    pub host_cpu: Option<String>,
    /// When it finished, as `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// The data every run trained on.
    pub dataset: Dataset,
    /// Every run, in the order they ran (activation-major, then seed).
    pub runs: Vec<RunRecord>,
    /// One summary per activation, best first.
    pub summaries: Vec<Summary>,
    /// Wall time of the whole study, in seconds.
    pub wall_s: f64,
    /// Time spent creating pipelines ([`crate::pipeline::PipelineCache::compile_time`]), in seconds, summed over
    /// the threads that created them in parallel before the runs (so it can exceed the wall time it took).
    pub compile_s: f64,
}

/// What [`run_study`] reports while it works.
#[derive(Debug)]
pub enum Progress<'a> {
    /// An epoch of a run finished.
    Epoch {
        /// The hidden-layer kind.
        activation: Candidate,
        /// The seed.
        seed: u64,
        /// 1-based epoch.
        epoch: usize,
        /// Its record.
        record: &'a EpochRecord,
    },
    /// A run finished.
    Run(&'a RunRecord),
}

/// Runs the study `options` describes on `gpu`: every candidate's pipelines created and run once, on as many
/// threads as the machine has ([`run::warm_up`]), then every candidate with every seed, one run at a time, then
/// the summaries.
pub fn run_study(
    gpu: &Gpu,
    options: &Options,
    command: &str,
    progress: impl FnMut(Progress),
) -> Result<Study, StudyError> {
    run_study_on(gpu, options, options.dataset()?, command, progress)
}

/// [`run_study`] on a dataset the caller has already loaded (with [`Options::dataset`], say, before creating
/// the GPU, so that a bad CSV file fails before any GPU work; or once for several studies of one dataset).
/// `dataset` should be what `options.dataset()` gives: the report records the options' description of it.
pub fn run_study_on(
    gpu: &Gpu,
    options: &Options,
    dataset: Dataset,
    command: &str,
    mut progress: impl FnMut(Progress),
) -> Result<Study, StudyError> {
    let start = Instant::now();
    let compiled_before = gpu.pipelines().compile_time();
    let data = DeviceData::upload(gpu, &dataset)?;
    warm_up_all(gpu, options, &dataset, &data)?;
    let mut runs = Vec::new();
    let mut summaries = Vec::new();
    for &act in &options.activations {
        let config = options.config_for(act, &dataset);
        let mut mine = Vec::new();
        for seed in options.seed_list() {
            let run = train_one(gpu, &dataset, &data, &config, act, seed, |epoch, record| {
                progress(Progress::Epoch {
                    activation: act,
                    seed,
                    epoch,
                    record,
                })
            })?;
            progress(Progress::Run(&run));
            mine.push(run);
        }
        summaries.push(Summary::new(act, &mine, options.target));
        runs.extend(mine);
    }
    Ok(Study {
        options: options.clone(),
        command: command.to_string(),
        adapter: gpu.adapter_line(),
        host_cpu: gpu.host_cpu(),
        date: utc_now(),
        dataset,
        runs,
        summaries: ranked(summaries),
        wall_s: start.elapsed().as_secs_f64(),
        compile_s: (gpu.pipelines().compile_time() - compiled_before).as_secs_f64(),
    })
}

/// [`run::warm_up`] for every candidate, on as many threads as the machine runs at once: each candidate's
/// pipelines are created (compiled in parallel, see [`crate::pipeline::PipelineCache`]) and run once before any
/// timed step. On GL one thread: wgpu serialises GL calls behind one context lock, so threads would gain nothing,
/// and wgpu-hal panics when a thread waits more than 6 s for that lock, which a queue of first dispatches (where
/// llvmpipe compiles) could reach.
fn warm_up_all(
    gpu: &Gpu,
    options: &Options,
    dataset: &Dataset,
    data: &DeviceData,
) -> Result<(), StudyError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = if gpu.adapter_info().backend == wgpu::Backend::Gl {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(options.activations.len())
    };
    let worker = || -> crate::Result<()> {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&act) = options.activations.get(i) else {
                return Ok(());
            };
            run::warm_up(gpu, dataset, data, &options.config_for(act, dataset), act)?;
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<crate::Result<Vec<()>>>()
    })?;
    Ok(())
}

/// The current time as `YYYY-MM-DD HH:MM UTC` (civil date from days since the epoch, Howard Hinnant's algorithm).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil(secs)
}

/// `secs` since 1970-01-01 00:00 UTC as `YYYY-MM-DD HH:MM UTC`.
fn civil(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::civil(951_782_400 + 3_660), "2000-02-29 01:01 UTC");
        assert_eq!(super::civil(1_767_225_600), "2026-01-01 00:00 UTC");
    }
}
