//! Training one network for the study and recording what happens: per-epoch losses, accuracies and
//! calibration, per-layer gradient flow, and the wall time of every training step.
//!
//! Each run trains `features -> hidden... -> classes` with one hidden-layer kind ([`Candidate`]: a plain, gated,
//! learnable or randomized activation) in every hidden layer, softmax
//! cross-entropy and the configured optimizer, from `seed`, on the same data for every activation. The seed is
//! never handed to a generator as it is: the initialisation ([`crate::nn::init`]) starts from
//! `derive(seed, Init)` and the batch order from `derive(seed, Shuffle)` ([`crate::study::seeds`]), so that the
//! weights, the batch order and the data (whose streams come from the data seed the same way) do not share a
//! random stream (what that guarantees, and for which seeds it is tested, is in [`crate::study::seeds`]).
//!
//! - Losses and accuracies at each epoch's end are over the whole training, test and validation sets, from
//!   logits read back after the epoch ([`Scores::of_logits`], f64 on the CPU), not the last batch's loss. The
//!   validation set is for choosing settings ([`crate::study::sweep`]); the reports quote the test set.
//! - Gradient flow: [`crate::Mlp::diagnostics`] of the first step (the gradients at initialisation) and of each
//!   epoch's last full-size step ([`diagnosed_chunk`]: the last batch of `batch` rows, not a smaller remainder
//!   batch, so that every epoch's numbers cover as many rows as the initial ones). Diagnostics are switched on
//!   only for those steps, so the timed steps are plain ones.
//! - Learnable activations: their parameters ([`crate::Mlp::activation_params`]) read back after the last epoch.
//! - Cost: each other step is timed from `train_step` to the device going idle (`Gpu::wait`), the batch already
//!   uploaded: the wall time of one step on this adapter, overheads of submission included.

use std::time::Instant;

use crate::datasets::Dataset;
use crate::nn::LayerDiagnostics;
use crate::study::candidate::Candidate;
use crate::study::metrics::Scores;
use crate::study::seeds::{derive, Purpose};
use crate::verify::Rng;
use crate::{Gpu, Hidden, Labels, Loss, Mlp, Optimizer, Result, Targets, Tensor};

/// The network and training schedule shared by every run of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Hidden layer widths `u` (each with the run's kind); input and output sizes come from the dataset.
    pub hidden: Vec<usize>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Rows per step (the last batch of an epoch may be smaller).
    pub batch: usize,
    /// The optimizer, with its learning rate (constant: no schedule).
    pub optimizer: Optimizer,
}

impl TrainConfig {
    /// Layer sizes for `dataset`: features, the hidden widths, classes.
    pub fn sizes(&self, dataset: &Dataset) -> Vec<usize> {
        let mut sizes = vec![dataset.features];
        sizes.extend(&self.hidden);
        sizes.push(dataset.classes);
        sizes
    }

    /// Steps in one epoch over `rows` training rows: `ceil(rows / batch)`.
    pub fn steps_per_epoch(&self, rows: usize) -> usize {
        rows.div_ceil(self.batch.max(1))
    }
}

/// The state after one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// Scores on the whole training set (its `nll` is the training loss).
    pub train: Scores,
    /// Scores on the whole test set.
    pub test: Scores,
    /// Scores on the whole validation set ([`Dataset::val_x`]).
    pub val: Scores,
    /// Diagnostics of the epoch's last full-size step ([`diagnosed_chunk`]), one per layer, input layer first
    /// (the output layer last).
    pub layers: Vec<LayerDiagnostics>,
    /// Rows of the batch `layers` were taken on (the batch size, unless no batch of an epoch is full).
    pub diagnosed_rows: usize,
}

/// Everything one run (one activation, one seed) recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The hidden layers' kind.
    pub activation: Candidate,
    /// The layer sizes, input first (the hidden widths may differ between kinds with `--match-params`).
    pub sizes: Vec<usize>,
    /// Trained parameters of the network: weights, biases and learnable activation parameters.
    pub params: usize,
    /// Each hidden layer's learnable activation parameter after training (empty for other kinds).
    pub act_params: Vec<Vec<f32>>,
    /// The run's seed, `1..=K`, from which the initialisation's and the batch order's seeds are derived
    /// ([`crate::study::seeds`]).
    pub seed: u64,
    /// Diagnostics of the first step: the gradient flow at initialisation.
    pub initial: Vec<LayerDiagnostics>,
    /// One record per epoch.
    pub epochs: Vec<EpochRecord>,
    /// Wall time of each timed step, in seconds: the full-size steps without diagnostics (all but each epoch's
    /// diagnosed one, [`diagnosed_chunk`], the first and the remainder batch); where there are none such, the
    /// remainder batches' (one full batch an epoch), or else every step (one batch an epoch).
    pub step_s: Vec<f64>,
    /// Wall time of the whole run, evaluation included, in seconds (its pipelines were created and first run
    /// before it, by [`warm_up`]).
    pub wall_s: f64,
}

impl RunRecord {
    /// The last epoch's record, if any epoch ran.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }
}

/// The index of the batch whose step an epoch diagnoses, among the lengths of its batches in order: the last one
/// of the full size `batch`, so that a small remainder batch (900 rows in batches of 64 end with one of 4) does
/// not stand for the epoch; the last one when none is full. 0 when there are none.
pub fn diagnosed_chunk(lengths: &[usize], batch: usize) -> usize {
    lengths
        .iter()
        .rposition(|&n| n == batch)
        .unwrap_or(lengths.len().saturating_sub(1))
}

/// The dataset uploaded once for evaluation.
#[derive(Debug)]
pub struct DeviceData {
    train_x: Tensor,
    test_x: Tensor,
    val_x: Tensor,
}

impl DeviceData {
    /// Uploads the training, test and validation points of `dataset`.
    pub fn upload(gpu: &Gpu, dataset: &Dataset) -> Result<Self> {
        let f = dataset.features;
        Ok(DeviceData {
            train_x: gpu.upload_shaped(&dataset.train_x, &[dataset.train_y.len(), f])?,
            test_x: gpu.upload_shaped(&dataset.test_x, &[dataset.test_y.len(), f])?,
            val_x: gpu.upload_shaped(&dataset.val_x, &[dataset.val_y.len(), f])?,
        })
    }
}

/// Logits of `x` read back and scored against `labels`.
fn score(net: &Mlp, x: &Tensor, labels: &[u32], classes: usize) -> Result<Scores> {
    let logits: Vec<f32> = net.predict(x)?.read()?;
    Ok(Scores::of_logits(&logits, classes, labels))
}

/// The network of a run: `config`'s sizes for `dataset`, `activation` in every hidden layer, softmax
/// cross-entropy, `config`'s optimizer, initialised from `init_seed` (as given: the caller derives it).
fn network(
    gpu: &Gpu,
    dataset: &Dataset,
    config: &TrainConfig,
    activation: Candidate,
    init_seed: u64,
) -> Result<Mlp> {
    let hidden: Vec<Hidden> = vec![activation.hidden(); config.hidden.len()];
    Mlp::with_layers(
        gpu,
        &config.sizes(dataset),
        &hidden,
        Loss::SoftmaxCrossEntropy,
        config.optimizer,
        init_seed,
    )
}

/// The training points `rows` of `dataset` and their labels, uploaded.
fn upload_batch(gpu: &Gpu, dataset: &Dataset, rows: &[usize]) -> Result<(Tensor, Labels)> {
    let f = dataset.features;
    let x: Vec<f32> = rows
        .iter()
        .flat_map(|&r| dataset.train_x[f * r..f * (r + 1)].iter().copied())
        .collect();
    let y: Vec<u32> = rows.iter().map(|&r| dataset.train_y[r]).collect();
    Ok((
        gpu.upload_shaped(&x, &[rows.len(), f])?,
        Labels::upload(gpu, &y, dataset.classes)?,
    ))
}

/// Creates, and runs once, every pipeline a run of `activation` ([`train_one`]) uses, on a throwaway network:
/// steps with and without diagnostics on a full batch and on the epoch's last (smaller) batch, and the
/// evaluation of the training, test and validation sets. The study calls it for every kind on several threads
/// before the runs, so that compilation happens in parallel and outside the timed steps; the runs' results do
/// not depend on it (their networks, data and arithmetic are their own).
pub fn warm_up(
    gpu: &Gpu,
    dataset: &Dataset,
    data: &DeviceData,
    config: &TrainConfig,
    activation: Candidate,
) -> Result<()> {
    let mut net = network(gpu, dataset, config, activation, 0)?;
    let rows = dataset.train_y.len();
    let batch = config.batch.max(1).min(rows);
    let mut sizes = Vec::new();
    if batch > 0 {
        sizes.push(batch);
        if !rows.is_multiple_of(batch) {
            sizes.push(rows % batch);
        }
    }
    for n in sizes {
        let order: Vec<usize> = (0..n).collect();
        let (x, labels) = upload_batch(gpu, dataset, &order)?;
        for diagnose in [true, false] {
            net.set_diagnostics(diagnose)?;
            net.train_step(&x, Targets::Classes(&labels))?;
            if diagnose {
                net.diagnostics()?;
            }
        }
    }
    net.set_diagnostics(false)?;
    net.predict(&data.train_x)?.read::<f32>()?;
    net.predict(&data.test_x)?.read::<f32>()?;
    net.predict(&data.val_x)?.read::<f32>()?;
    Ok(())
}

/// Trains one network with `activation` in every hidden layer from `seed` (see the module documentation: the
/// initialisation starts from `derive(seed, Init)`, the batch order from `derive(seed, Shuffle)`).
/// The network's sizes are `config.sizes(dataset)`.
/// `on_epoch` sees each epoch's record as it completes (for progress output).
pub fn train_one(
    gpu: &Gpu,
    dataset: &Dataset,
    data: &DeviceData,
    config: &TrainConfig,
    activation: Candidate,
    seed: u64,
    mut on_epoch: impl FnMut(usize, &EpochRecord),
) -> Result<RunRecord> {
    let start = Instant::now();
    let sizes = config.sizes(dataset);
    let mut net = network(
        gpu,
        dataset,
        config,
        activation,
        derive(seed, Purpose::Init),
    )?;
    let classes = dataset.classes;
    let rows = dataset.train_y.len();
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = Rng::new(derive(seed, Purpose::Shuffle));
    let batch = config.batch.max(1);
    let mut initial = Vec::new();
    let mut epochs = Vec::with_capacity(config.epochs);
    let (mut step_s, mut short_s, mut diagnosed_s) = (Vec::new(), Vec::new(), Vec::new());
    for epoch in 1..=config.epochs {
        // Fisher-Yates shuffle from the shuffle stream.
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let chunks: Vec<&[usize]> = order.chunks(batch).collect();
        let lengths: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        let diagnosed = diagnosed_chunk(&lengths, batch);
        let mut layers = Vec::new();
        for (c, rows) in chunks.iter().enumerate() {
            let (xt, labels) = upload_batch(gpu, dataset, rows)?;
            let first = net.steps() == 0;
            let last = c == diagnosed;
            let diagnose = first || last;
            net.set_diagnostics(diagnose)?;
            let t = Instant::now();
            net.train_step(&xt, Targets::Classes(&labels))?;
            gpu.wait()?;
            let elapsed = t.elapsed().as_secs_f64();
            if diagnose {
                let d = net.diagnostics()?;
                if first {
                    initial = d.clone();
                }
                if last {
                    layers = d;
                }
                diagnosed_s.push(elapsed);
            } else if rows.len() == batch {
                step_s.push(elapsed);
            } else {
                short_s.push(elapsed);
            }
        }
        net.set_diagnostics(false)?;
        let record = EpochRecord {
            train: score(&net, &data.train_x, &dataset.train_y, classes)?,
            test: score(&net, &data.test_x, &dataset.test_y, classes)?,
            val: score(&net, &data.val_x, &dataset.val_y, classes)?,
            layers,
            diagnosed_rows: lengths.get(diagnosed).copied().unwrap_or(0),
        };
        on_epoch(epoch, &record);
        epochs.push(record);
    }
    let mut params = 0;
    for l in 0..sizes.len() - 1 {
        if let Some((w, b)) = net.layer(l) {
            params += w.len() + b.len();
        }
        params += net.activation_param(l).map_or(0, Tensor::len);
    }
    let mut act_params = net.activation_params()?;
    act_params.truncate(config.hidden.len());
    if act_params.iter().all(Vec::is_empty) {
        act_params.clear();
    }
    Ok(RunRecord {
        activation,
        sizes,
        params,
        act_params,
        seed,
        initial,
        epochs,
        // Full batches without diagnostics; where there are none (an epoch of one full batch and a remainder),
        // the remainder batches; with one step an epoch every step gathers diagnostics: time those rather than
        // none.
        step_s: [step_s, short_s, diagnosed_s]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or_default(),
        wall_s: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diagnosed_batch_is_the_last_full_one() {
        // 900 rows in batches of 64: 14 full batches and a remainder of 4; the 14th (index 13) is diagnosed.
        let mut lengths = vec![64; 14];
        lengths.push(4);
        assert_eq!(diagnosed_chunk(&lengths, 64), 13);
        // Without a remainder the last batch is full.
        assert_eq!(diagnosed_chunk(&[64, 64, 64], 64), 2);
        // No full batch (fewer rows than the batch size): the last one.
        assert_eq!(diagnosed_chunk(&[30], 64), 0);
        assert_eq!(diagnosed_chunk(&[], 64), 0);
    }
}
