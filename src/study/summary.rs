//! One activation's runs over several seeds reduced to the numbers the report shows: means and sample standard
//! deviations ([`mean_std`]) of the final scores, the convergence epoch, the median step time, mean curves and
//! the per-layer gradient flow, the parameter count and the learnable activations' trained parameters, and the
//! seed spreads of the pooled diagnostics and step time ([`SeedSpreads`]). Also the noise rule every comparison of
//! the reports goes by ([`noise`], [`near_best`], [`beats_baseline`]; floors [`NOISE_POINTS`], [`NOISE_EPOCHS`],
//! [`NOISE_SHARE`], [`NOISE_FACTOR`]).

use crate::study::candidate::Candidate;
use crate::study::metrics::{first_reaching, mean_std, mean_std_of_runs, median};
use crate::study::run::RunRecord;

/// Epochs at the end of a run whose test accuracies [`Summary::test_acc_tail`] averages (all of them in a shorter
/// run): a last-epoch spike moves the final accuracy of a run by several points (STUDY.md saw 0.993 to 0.917),
/// and a mean over the last few epochs shows where the run had settled.
pub const TAIL_EPOCHS: usize = 5;

/// The epochs [`Summary::test_acc_tail`] averages in a study of `epochs` epochs: [`TAIL_EPOCHS`], or all of them
/// in a shorter study (for the column title and the reading).
pub fn tail_epochs(epochs: usize) -> usize {
    TAIL_EPOCHS.min(epochs)
}

/// Mean and sample standard deviation over seeds (`None` without runs; an infinite or NaN mean when a run
/// diverged).
pub type Spread = Option<(f64, f64)>;

/// One hidden layer's learnable activation parameter after training, over its elements and the runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamStats {
    /// Mean over runs of the mean over the layer's elements (one, or one per unit).
    pub mean: f64,
    /// Smallest element in any run.
    pub min: f64,
    /// Largest element in any run.
    pub max: f64,
}

/// The study's numbers for one activation.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The hidden-layer kind.
    pub activation: Candidate,
    /// Runs summarised (one per seed).
    pub runs: usize,
    /// The layer sizes of its network, input first.
    pub sizes: Vec<usize>,
    /// Trained parameters of its network (weights, biases, learnable activation parameters).
    pub params: usize,
    /// Final test accuracy.
    pub test_acc: Spread,
    /// Per run, the mean test accuracy over its last [`TAIL_EPOCHS`] epochs; then mean and deviation over runs.
    pub test_acc_tail: Spread,
    /// Final test NLL (mean cross-entropy, nats).
    pub test_nll: Spread,
    /// Final test ECE.
    pub test_ece: Spread,
    /// Final validation accuracy (for choosing settings without the test set).
    pub val_acc: Spread,
    /// Final validation NLL.
    pub val_nll: Spread,
    /// Final training loss (over the whole training set).
    pub train_loss: Spread,
    /// Epochs until the test accuracy first reached the target, over the runs that reached it (so compare it
    /// only between kinds with the same [`Summary::reached`]: see [`fastest`]).
    pub epochs_to_target: Spread,
    /// How many runs reached the target (a run that [`Summary::diverged`] afterwards does not count).
    pub reached: usize,
    /// How many runs ended diverged: a non-finite training loss or test NLL after the last epoch (a NaN or
    /// infinite logit). Their final scores make the means infinite or NaN ([`mean_std_of_runs`]).
    pub diverged: usize,
    /// Median wall time of one training step over every timed step of every run, in seconds.
    pub step_s: Option<f64>,
    /// Mean over runs of the training loss after each epoch (not finite where a run's is not: `mean_columns`).
    pub train_loss_curve: Vec<f64>,
    /// Mean over runs of the test accuracy after each epoch.
    pub test_acc_curve: Vec<f64>,
    /// Mean over runs of each layer's gradient norm `sqrt(‖dW‖² + ‖db‖²)` at the first step (not finite where a
    /// run's is not).
    pub initial_grad_norm: Vec<f64>,
    /// Mean over runs and diagnosed steps (each epoch's last full-size one) of each layer's gradient norm (not
    /// finite where one of them is not).
    pub grad_norm: Vec<f64>,
    /// Mean over runs and diagnosed steps (each epoch's last full-size one) of the fraction of hidden
    /// pre-activations with `f'(z) = 0` ("dead" in [`crate::nn::diagnostics`]; all hidden layers together).
    /// `None` for gated, learnable and randomized kinds, whose layers the kernels do not count. Only steps whose
    /// diagnostics are finite ([`diagnostics_finite`]) count: a step that carried a NaN or infinity counted
    /// its non-finite rows as dead neurons but not as dead units (a diverged ReLU² read "0 % dead units,
    /// 100 % dead neurons"); `None` too when no step was finite.
    pub dead: Option<f64>,
    /// Mean over runs and diagnosed steps of the saturated fraction of the hidden units (`None` as for `dead`).
    pub saturated: Option<f64>,
    /// Mean over runs and diagnosed steps of the fraction of hidden neurons with `f'(z) = 0` for every row of the
    /// epoch's diagnosed batch (its last full-size one; the "dying" units; `None` as for `dead`).
    pub dead_neurons: Option<f64>,
    /// The same for hidden neurons not dead whose `|f'(z)|` stayed below 1e-3 on every row (`None` as for
    /// `dead`).
    pub saturated_neurons: Option<f64>,
    /// Each hidden layer's learnable activation parameter after training (empty for other kinds).
    pub act_params: Vec<ParamStats>,
    /// The seed-to-seed spreads of the dead and saturated shares, the gradient flow at initialisation and the
    /// step time, which the reading's noise rule needs beside the means above ([`SeedSpreads`]).
    pub spreads: SeedSpreads,
}

/// Sample standard deviations over a kind's runs (one per seed) of the quantities that [`Summary`] keeps as one
/// pooled number: each run's own value, then their spread (NaN with fewer than two runs that have one: no
/// spread measured, so the noise rule falls back on its floor, [`noise`]). The shares are fractions, as
/// [`Summary::dead`]; the gradient flow and the step time, which vary by factors, are spread on a log scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedSpreads {
    /// Of each run's share of hidden pre-activations with `f'(z) = 0` ([`Summary::dead`] over that run alone).
    pub dead: f64,
    /// Of each run's share of hidden neurons with `f'(z) = 0` on every row ([`Summary::dead_neurons`]).
    pub dead_neurons: f64,
    /// Of each run's saturated share ([`Summary::saturated`]).
    pub saturated: f64,
    /// Of the natural logarithm of each run's `‖g_1‖ / ‖g_L‖` at the first step.
    pub log_init_flow: f64,
    /// Of the natural logarithm of each run's median step time.
    pub log_step: f64,
}

impl SeedSpreads {
    /// No spread measured (a single run).
    pub const NONE: SeedSpreads = SeedSpreads {
        dead: f64::NAN,
        dead_neurons: f64::NAN,
        saturated: f64::NAN,
        log_init_flow: f64::NAN,
        log_step: f64::NAN,
    };
}

/// The sample standard deviation of the finite `values` (NaN with fewer than two).
fn sd(values: impl IntoIterator<Item = f64>) -> f64 {
    mean_std(&values.into_iter().collect::<Vec<_>>()).map_or(f64::NAN, |(_, sd)| sd)
}

type Count = fn(&crate::nn::LayerDiagnostics) -> u64;

/// The fraction `f / of` over the hidden layers (all but the last) of every finite diagnosed step of `runs`
/// ([`diagnostics_finite`]); `None` when no step was finite.
fn hidden_fraction(runs: &[RunRecord], f: Count, of: Count) -> Option<f64> {
    let (mut hit, mut all, mut steps) = (0u64, 0u64, 0usize);
    for e in runs.iter().flat_map(|r| r.epochs.iter()) {
        if !diagnostics_finite(&e.layers) {
            continue;
        }
        steps += 1;
        let hidden = e.layers.len().saturating_sub(1);
        for l in &e.layers[..hidden] {
            hit += f(l);
            all += of(l);
        }
    }
    (steps > 0).then(|| hit as f64 / all.max(1) as f64)
}

/// `‖g_1‖ / ‖g_L‖` of one set of per-layer gradient norms, if there are two layers and the ratio is a positive
/// finite number.
fn flow_ratio(norms: &[f64]) -> Option<f64> {
    match (norms.first(), norms.last()) {
        (Some(&a), Some(&b)) if norms.len() > 1 => {
            Some(a / b).filter(|r| r.is_finite() && *r > 0.0)
        }
        _ => None,
    }
}

/// Whether a diagnosed step's counts describe a network: every layer's gradient norm is finite. A step whose
/// forward or backward carried a NaN or an infinity has non-finite norms, and its dead and saturated counts
/// are artefacts of the NaN rows (a NaN pre-activation is neither inside nor outside an activation's flat
/// region), so the reports show `-` (`null` in `results.json`) for them and leave them out of the means.
pub fn diagnostics_finite(layers: &[crate::nn::LayerDiagnostics]) -> bool {
    layers.iter().all(|l| l.grad_norm().is_finite())
}

/// Per-layer [`ParamStats`] of the runs' final learnable parameters (empty when no run has any). A NaN parameter
/// (a diverged run) makes the layer's mean, min and max NaN, so that it cannot vanish from them.
fn param_stats(runs: &[RunRecord]) -> Vec<ParamStats> {
    let layers = runs.iter().map(|r| r.act_params.len()).max().unwrap_or(0);
    (0..layers)
        .filter_map(|l| {
            let per_run: Vec<&Vec<f32>> = runs
                .iter()
                .filter_map(|r| r.act_params.get(l))
                .filter(|p| !p.is_empty())
                .collect();
            let means: Vec<f64> = per_run
                .iter()
                .map(|p| p.iter().map(|&v| f64::from(v)).sum::<f64>() / p.len() as f64)
                .collect();
            let all = per_run.iter().flat_map(|p| p.iter().map(|&v| f64::from(v)));
            let (min, max) = if all.clone().any(f64::is_nan) {
                (f64::NAN, f64::NAN)
            } else {
                all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                })
            };
            mean_std_of_runs(&means).map(|(mean, _)| ParamStats { mean, min, max })
        })
        .collect()
}

/// Mean of each position over several equally long rows, as [`mean_std_of_runs`] takes it: a non-finite entry
/// (a diverged run) makes that position's mean infinite or NaN rather than vanishing from it, so a curve titled
/// "mean of k seeds" is one at every point it shows (the charts leave non-finite points out); NaN where no row
/// has the position.
fn mean_columns(rows: &[Vec<f64>]) -> Vec<f64> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| {
            let col: Vec<f64> = rows.iter().filter_map(|r| r.get(i).copied()).collect();
            mean_std_of_runs(&col).map_or(f64::NAN, |(m, _)| m)
        })
        .collect()
}

impl Summary {
    /// Summarises `runs` (all with the same activation), counting a run as converged at the first epoch whose
    /// test accuracy is at least `target`.
    pub fn new(activation: Candidate, runs: &[RunRecord], target: f64) -> Summary {
        let last = |f: &dyn Fn(&RunRecord) -> Option<f64>| -> Spread {
            mean_std_of_runs(&runs.iter().filter_map(f).collect::<Vec<_>>())
        };
        let acc_curves: Vec<Vec<f64>> = runs
            .iter()
            .map(|r| r.epochs.iter().map(|e| e.test.accuracy).collect())
            .collect();
        let loss_curves: Vec<Vec<f64>> = runs
            .iter()
            .map(|r| r.epochs.iter().map(|e| e.train.nll).collect())
            .collect();
        let ended_diverged = |r: &RunRecord| {
            r.last()
                .is_some_and(|e| !(e.train.nll.is_finite() && e.test.nll.is_finite()))
        };
        let reached: Vec<f64> = acc_curves
            .iter()
            .zip(runs)
            .filter(|(_, r)| !ended_diverged(r))
            .filter_map(|(c, _)| first_reaching(c, target))
            .map(|e| e as f64)
            .collect();
        let steps: Vec<f64> = runs.iter().flat_map(|r| r.step_s.iter().copied()).collect();
        let initial: Vec<Vec<f64>> = runs
            .iter()
            .map(|r| r.initial.iter().map(|l| l.grad_norm()).collect())
            .collect();
        let every_epoch: Vec<Vec<f64>> = runs
            .iter()
            .flat_map(|r| r.epochs.iter())
            .map(|e| e.layers.iter().map(|l| l.grad_norm()).collect())
            .collect();
        let counted = activation.counts_dead();
        let fraction =
            |f: Count, of: Count| counted.then(|| hidden_fraction(runs, f, of)).flatten();
        // Each run's own fraction, then their spread.
        let fraction_sd = |f: Count, of: Count| {
            sd(runs
                .iter()
                .filter(|_| counted)
                .filter_map(|r| hidden_fraction(std::slice::from_ref(r), f, of)))
        };
        let spreads = SeedSpreads {
            dead: fraction_sd(|l| l.dead, |l| l.units),
            dead_neurons: fraction_sd(|l| l.dead_neurons, |l| l.neurons),
            saturated: fraction_sd(|l| l.saturated, |l| l.units),
            log_init_flow: sd(initial.iter().filter_map(|n| flow_ratio(n)).map(f64::ln)),
            log_step: sd(runs
                .iter()
                .filter_map(|r| median(&r.step_s))
                .filter(|&t| t > 0.0)
                .map(f64::ln)),
        };
        Summary {
            activation,
            runs: runs.len(),
            sizes: runs.first().map(|r| r.sizes.clone()).unwrap_or_default(),
            params: runs.first().map_or(0, |r| r.params),
            test_acc: last(&|r| r.last().map(|e| e.test.accuracy)),
            test_acc_tail: last(&|r| {
                let tail = &r.epochs[r.epochs.len().saturating_sub(TAIL_EPOCHS)..];
                (!tail.is_empty())
                    .then(|| tail.iter().map(|e| e.test.accuracy).sum::<f64>() / tail.len() as f64)
            }),
            test_nll: last(&|r| r.last().map(|e| e.test.nll)),
            test_ece: last(&|r| r.last().map(|e| e.test.ece)),
            val_acc: last(&|r| r.last().map(|e| e.val.accuracy)),
            val_nll: last(&|r| r.last().map(|e| e.val.nll)),
            train_loss: last(&|r| r.last().map(|e| e.train.nll)),
            epochs_to_target: mean_std(&reached),
            reached: reached.len(),
            diverged: runs.iter().filter(|r| ended_diverged(r)).count(),
            step_s: median(&steps),
            train_loss_curve: mean_columns(&loss_curves),
            test_acc_curve: mean_columns(&acc_curves),
            initial_grad_norm: mean_columns(&initial),
            grad_norm: mean_columns(&every_epoch),
            dead: fraction(|l| l.dead, |l| l.units),
            saturated: fraction(|l| l.saturated, |l| l.units),
            dead_neurons: fraction(|l| l.dead_neurons, |l| l.neurons),
            saturated_neurons: fraction(|l| l.saturated_neurons, |l| l.neurons),
            act_params: param_stats(runs),
            spreads,
        }
    }

    /// The key [`fastest`] ranks by, higher first: whether every run reached the target, how many did, and the
    /// negated mean epoch of those that did; `None` when none did.
    pub fn convergence_key(&self) -> Option<(bool, usize, f64)> {
        let (e, _) = self.epochs_to_target?;
        (self.reached > 0 && e.is_finite()).then_some((self.reached == self.runs, self.reached, -e))
    }

    /// The ranking key: mean final test accuracy (higher first), then mean test NLL (lower first); a missing
    /// or NaN value ranks last (a NaN's sign would otherwise decide where `total_cmp` puts it).
    pub fn rank_key(&self) -> (f64, f64) {
        (
            self.test_acc
                .map_or(f64::NEG_INFINITY, |(m, _)| m)
                .max(f64::NEG_INFINITY),
            -self
                .test_nll
                .map(|(m, _)| m)
                .filter(|m| !m.is_nan())
                .unwrap_or(f64::INFINITY),
        )
    }
}

/// `summaries` sorted best first by [`Summary::rank_key`], accuracies that are the same count of test points
/// tied ([`SAME_ACCURACY`]) and ordered by NLL.
pub fn ranked(mut summaries: Vec<Summary>) -> Vec<Summary> {
    sort_best_first(&mut summaries, Summary::rank_key);
    summaries
}

/// Accuracies closer than this are equal. An accuracy is a count of test points over the set (a mean of such
/// over runs), so two different ones differ by at least `1 / (points x runs)`, far above this; the same total
/// reached by different runs (347 + 346 + 349 and 348 + 347 + 347 correct) can differ in the last bit of its
/// f64 mean, and an exact comparison then decided the order on that bit instead of on the NLL.
pub const SAME_ACCURACY: f64 = 1e-12;

/// Whether two accuracies (or their `-inf` stand-ins) count as equal ([`SAME_ACCURACY`]).
pub(crate) fn same_accuracy(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= SAME_ACCURACY
}

/// Whether the key `(accuracy, -nll)` `a` ranks above `b`: a higher accuracy, or the same one
/// ([`SAME_ACCURACY`]) and a lower NLL.
pub(crate) fn ranks_above(a: (f64, f64), b: (f64, f64)) -> bool {
    if same_accuracy(a.0, b.0) {
        a.1 > b.1
    } else {
        a.0 > b.0
    }
}

/// Sorts `items` best first by `key` = `(accuracy, -nll)` (no NaN: missing values are `-inf`): by accuracy,
/// then each run of accuracies equal within [`SAME_ACCURACY`] of its first by `-nll`. Two passes, so that the
/// order is total even though closeness is not transitive.
pub(crate) fn sort_best_first<T>(items: &mut [T], key: impl Fn(&T) -> (f64, f64)) {
    items.sort_by(|a, b| key(b).0.total_cmp(&key(a).0));
    let mut start = 0;
    while start < items.len() {
        let first = key(&items[start]).0;
        let end = start
            + items[start..]
                .iter()
                .take_while(|s| same_accuracy(first, key(s).0))
                .count();
        items[start..end].sort_by(|a, b| key(b).1.total_cmp(&key(a).1));
        start = end;
    }
}

/// How many test points two means must differ by, at least, before the reports tell the kinds apart
/// ([`noise`]): a single run's accuracy moves by a point or two between seeds, epochs and test draws, so a lead
/// of one or two points is no evidence. Three points of a 300-point test set are 0.01.
pub const NOISE_POINTS: usize = 3;

/// How many epochs two mean epochs to the target must differ by, at least, before the reports tell the kinds
/// apart: one run's test accuracy crosses a target an epoch earlier or later with the batch order alone.
pub const NOISE_EPOCHS: f64 = 1.0;

/// How far apart two kinds' shares of hidden units (pre-activations with `f'(z) = 0`, neurons with `f'(z) = 0` on
/// every row, saturated pre-activations) must be, at least, before the reading tells them apart: two percentage
/// points. The shares move between seeds with the initial weights and the diagnosed batches (ReLU's dead neurons
/// on the spirals: 7.8 % with seed 1, 10.3 % over seeds 1 to 3), so with one seed a smaller gap is no evidence.
pub const NOISE_SHARE: f64 = 0.02;

/// The factor by which two kinds' gradient flow at initialisation (`‖g_1‖ / ‖g_L‖`) or median step times must
/// differ, at least, before the reading tells them apart: 1.5 (compared as logarithms, with the seed spread of
/// the logarithm: [`SeedSpreads`]). The flow moves by up to about that factor between seeds' initial weights
/// (seed spreads of its logarithm up to 0.38 in the digits study), and a step's time with the load of a shared
/// machine.
pub const NOISE_FACTOR: f64 = 1.5;

/// f64 rounding allowance of every comparison with a tolerance: accuracies are fractions of the test set, and
/// `1.0 - 0.99` is `0.010000000000000009` in f64, so a difference of exactly the tolerance must pass. Far below
/// one test point, or one point over several seeds.
pub const ROUNDING: f64 = 1e-9;

/// [`NOISE_POINTS`] as a fraction of a test set of `test_points` points: the smallest difference of accuracies
/// (or of ECEs, which a few points move as much) that counts as more than noise.
pub fn point_floor(test_points: usize) -> f64 {
    NOISE_POINTS as f64 / test_points.max(1) as f64
}

/// The noise of a comparison of two kinds' means over seeds: the larger of `floor` and the two kinds' seed
/// spreads (sample standard deviations; a single run has none, and a diverged one's is not a number, so they add
/// nothing). The spread, not the standard error: the seeds share one test set, whose own noise the spread does
/// not show and averaging over seeds does not remove.
pub fn noise(floor: f64, a: Spread, b: Spread) -> f64 {
    [a, b]
        .into_iter()
        .flatten()
        .map(|(_, sd)| sd)
        .filter(|sd| sd.is_finite())
        .fold(floor, f64::max)
}

/// Whether a kind's mean accuracy `acc` is above the majority `baseline` by more than the noise: no run
/// diverged (a diverged run's accuracy counts its non-finite rows as wrong, and its spread says nothing about
/// noise), and the mean is above the baseline by more than the larger of `floor` ([`point_floor`]) and the kind's
/// seed spread ([`noise`]). The one test of "learned something from the input": the reading's
/// [`crate::study::reading::above_baseline`] applies it to the final test accuracy, and the learning-rate sweep's
/// [`crate::study::sweep::SweepRow::learned`] to the validation accuracy at each rate.
pub fn beats_baseline(acc: Spread, diverged: usize, baseline: f64, floor: f64) -> bool {
    diverged == 0
        && acc.is_some_and(|(a, _)| {
            a.is_finite() && a - baseline > noise(floor, acc, None) + ROUNDING
        })
}

/// Whether the means of `a` and `b` are within [`noise`] of each other (both finite; [`ROUNDING`] allowed).
pub fn within_noise(a: Spread, b: Spread, floor: f64) -> bool {
    match (a, b) {
        (Some((x, _)), Some((y, _))) if x.is_finite() && y.is_finite() => {
            (x - y).abs() <= noise(floor, a, b) + ROUNDING
        }
        _ => false,
    }
}

/// The kinds whose `value` is within [`noise`] of the best one's (the highest when `higher`, else the lowest),
/// best first, the best included, and every kind ranked between two of them (a steady kind nearer the best is
/// not left out where a noisier one further away is within its spread); empty when no value is finite. One
/// kind alone means its lead over every other is larger than the noise; several mean the data do not tell
/// them apart.
pub fn near_best<'a>(
    summaries: impl IntoIterator<Item = &'a Summary>,
    value: impl Fn(&Summary) -> Spread,
    floor: f64,
    higher: bool,
) -> Vec<&'a Summary> {
    let sign = if higher { -1.0 } else { 1.0 };
    let mut keyed: Vec<(&Summary, f64)> = summaries
        .into_iter()
        .filter_map(|s| value(s).map(|(m, _)| (s, m)))
        .filter(|(_, m)| m.is_finite())
        .collect();
    // Stable: equal values keep the order they came in (the ranking's).
    keyed.sort_by(|a, b| (sign * a.1).total_cmp(&(sign * b.1)));
    let Some(&(best, _)) = keyed.first() else {
        return Vec::new();
    };
    let last = keyed
        .iter()
        .rposition(|&(s, _)| within_noise(value(best), value(s), floor))
        .unwrap_or(0);
    keyed.truncate(last + 1);
    keyed.into_iter().map(|(s, _)| s).collect()
}

/// The kinds of `group` further than the noise from every kind of `other` (and not among them): the far end of
/// a line that names both ends (the worst calibrated beside the best, the dearest step beside the cheapest), so
/// that no kind is named at an end it does not stand apart at.
pub fn apart_from<'a>(
    group: Vec<&'a Summary>,
    other: &[&Summary],
    value: impl Fn(&Summary) -> Spread,
    floor: f64,
) -> Vec<&'a Summary> {
    group
        .into_iter()
        .filter(|g| {
            !other
                .iter()
                .any(|o| g.activation == o.activation || within_noise(value(g), value(o), floor))
        })
        .collect()
}

/// The kinds fastest to the target (empty when no run reached it), fastest first, with those within noise of
/// the fastest: a mean epoch within the larger of `floor` epochs (the reports use [`NOISE_EPOCHS`]) and the two
/// kinds' seed spreads ([`noise`]; a floor of 0 keeps only exact ties where there is no spread). A mean epoch over the runs that reached the target
/// says nothing about those that did not, so a kind counts as fastest only among the kinds whose runs all
/// reached it; when no kind's did, among those with the most runs that reached it; then by the mean epoch
/// ([`Summary::convergence_key`]).
pub fn fastest<'a>(
    summaries: impl IntoIterator<Item = &'a Summary>,
    floor: f64,
) -> Vec<&'a Summary> {
    let keyed: Vec<(&Summary, (bool, usize))> = summaries
        .into_iter()
        .filter_map(|s| s.convergence_key().map(|k| (s, (k.0, k.1))))
        .collect();
    // The most complete reach first; among those kinds, the lowest mean epoch and those within noise of it
    // ([`near_best`], lower first).
    let Some(top) = keyed.iter().map(|&(_, k)| k).max() else {
        return Vec::new();
    };
    near_best(
        keyed.iter().filter(|&&(_, k)| k == top).map(|&(s, _)| s),
        |s| s.epochs_to_target,
        floor,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::LayerDiagnostics;
    use crate::study::metrics::Scores;
    use crate::study::run::EpochRecord;
    use crate::{Activation, Gated, Hidden, Learnable};

    fn layer(norm: f64, dead: u64) -> LayerDiagnostics {
        LayerDiagnostics {
            weight_grad_norm: norm,
            bias_grad_norm: 0.0,
            units: 10,
            dead,
            saturated: 0,
            neurons: 5,
            dead_neurons: dead / 5,
            saturated_neurons: 0,
        }
    }

    fn run(seed: u64, accs: &[f64]) -> RunRecord {
        let s = |a: f64| Scores {
            accuracy: a,
            nll: 1.0 - a,
            ece: 0.1,
        };
        RunRecord {
            activation: Activation::Relu.into(),
            sizes: vec![2, 10, 3],
            params: 63,
            act_params: Vec::new(),
            seed,
            initial: vec![layer(2.0, 0), layer(1.0, 0)],
            epochs: accs
                .iter()
                .map(|&a| EpochRecord {
                    train: s(a),
                    test: s(a),
                    val: s(a - 0.1),
                    layers: vec![layer(1.0, 5), layer(3.0, 0)],
                    diagnosed_rows: 64,
                })
                .collect(),
            step_s: vec![seed as f64],
            wall_s: 1.0,
        }
    }

    #[test]
    fn summary_over_seeds() {
        let runs = [run(1, &[0.5, 0.9, 0.95]), run(3, &[0.4, 0.6, 0.85])];
        let s = Summary::new(Activation::Relu.into(), &runs, 0.9);
        let (m, sd) = s.test_acc.unwrap();
        assert!((m - 0.9).abs() < 1e-12 && (sd - 0.05f64.hypot(0.05)).abs() < 1e-12);
        let (val, _) = s.val_acc.unwrap();
        assert!(
            (val - 0.8).abs() < 1e-12,
            "the final validation accuracy, not the test's"
        );
        // One run reached the target: its epoch, and no standard deviation of a single value.
        let (e, sd) = s.epochs_to_target.unwrap();
        assert!(s.reached == 1 && e == 2.0 && sd.is_nan());
        assert_eq!(s.step_s, Some(2.0));
        assert_eq!(s.test_acc_curve.len(), 3);
        assert!((s.test_acc_curve[0] - 0.45).abs() < 1e-12);
        assert_eq!(
            (s.initial_grad_norm.clone(), s.grad_norm.clone()),
            (vec![2.0, 1.0], vec![1.0, 3.0])
        );
        // Only the hidden layer counts: 5 of 10 dead in every epoch, and 1 of its 5 neurons.
        assert_eq!((s.dead, s.saturated), (Some(0.5), Some(0.0)));
        assert_eq!(s.dead_neurons, Some(0.2));
        assert_eq!((s.params, s.act_params.len()), (63, 0));
        let worse = Summary::new(Activation::Tanh.into(), &[run(1, &[0.2])], 0.9);
        let order = ranked(vec![worse, s]);
        assert_eq!(order[0].activation, Activation::Relu.into());
    }

    #[test]
    fn the_same_count_of_test_points_ranks_by_nll() {
        // The digits study's case: 348 + 347 + 347 and 347 + 346 + 349 of 359 points are the same total, but
        // their f64 means differ in the last bit; the lower NLL must decide, not that bit.
        let mean = |c: [f64; 3]| c.iter().map(|c| c / 359.0).sum::<f64>() / 3.0;
        let (a, b) = (mean([348.0, 347.0, 347.0]), mean([347.0, 346.0, 349.0]));
        assert!(a > b, "the case needs means one bit apart: {a} {b}");
        let with = |kind: Activation, acc: f64, nll: f64| {
            let mut s = Summary::new(kind.into(), &[run(1, &[0.5])], 0.9);
            (s.test_acc, s.test_nll) = (Some((acc, 0.0)), Some((nll, 0.0)));
            s
        };
        // A NaN NLL (a diverged run) ranks after every number at the same accuracy, whatever its sign bit.
        let order = ranked(vec![
            with(Activation::LogSigmoid, a, 0.174),
            with(Activation::Sigmoid, 0.5, 0.01),
            with(Activation::Relu, b, -f64::NAN),
            with(Activation::Tanh, b, 0.095),
        ]);
        let kinds: Vec<Candidate> = order.iter().map(|s| s.activation).collect();
        let expected: Vec<Candidate> = [
            Activation::Tanh,
            Activation::LogSigmoid,
            Activation::Relu,
            Activation::Sigmoid,
        ]
        .map(Candidate::from)
        .to_vec();
        assert_eq!(kinds, expected);
    }

    #[test]
    fn the_tail_mean_covers_the_last_epochs_of_each_run() {
        // Seed 1 settles at 0.99 and drops to 0.9 in its last epoch; seed 2 ran only 2 epochs (its whole run).
        let settled = [0.5, 0.6, 0.99, 0.99, 0.99, 0.99, 0.9];
        let runs = [run(1, &settled), run(2, &[0.7, 0.9])];
        let s = Summary::new(Activation::Relu.into(), &runs, 0.9);
        let (tail, sd) = s.test_acc_tail.unwrap();
        let one = (0.99 * 4.0 + 0.9) / 5.0;
        assert!((tail - (one + 0.8) / 2.0).abs() < 1e-12, "{tail}");
        assert!((sd - (one - 0.8f64).abs() / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.test_acc.unwrap().0, 0.9);
        let none = Summary::new(Activation::Relu.into(), &[run(1, &[])], 0.9);
        assert_eq!(none.test_acc_tail, None);
    }

    #[test]
    fn a_diverged_seed_shows_in_the_mean_curves() {
        let mut runs = [run(1, &[0.5, 0.9]), run(2, &[0.6, 0.8])];
        runs[1].epochs[1].train.nll = f64::INFINITY;
        runs[1].epochs[1].layers[0].weight_grad_norm = f64::NAN;
        let s = Summary::new(Activation::Relu.into(), &runs, 0.9);
        // Epoch 1 is the mean of both seeds; at epoch 2 one seed diverged, so the mean is not a number to plot,
        // not the other seed's value under the title "mean of 2 seeds".
        assert!((s.train_loss_curve[0] - 0.45).abs() < 1e-12);
        assert!(s.train_loss_curve[1].is_infinite());
        assert!(s.grad_norm[0].is_nan() && s.grad_norm[1] == 3.0);
        assert!((s.test_acc_curve[1] - 0.85).abs() < 1e-12);
    }

    #[test]
    fn a_run_that_reached_the_target_and_then_diverged_has_not_converged() {
        let mut runs = [run(1, &[0.5, 0.95, 0.0]), run(2, &[0.5, 0.95, 0.95])];
        runs[0].epochs[2].test.nll = f64::INFINITY;
        runs[0].epochs[2].test.ece = f64::NAN;
        runs[0].act_params = vec![vec![f32::NAN]];
        runs[1].act_params = vec![vec![0.1]];
        let s = Summary::new(Activation::Relu.into(), &runs, 0.9);
        assert_eq!((s.diverged, s.reached), (1, 1));
        assert_eq!(s.convergence_key(), Some((false, 1, -2.0)));
        assert!(s.test_ece.unwrap().0.is_nan());
        // The NaN parameter shows in the mean, min and max rather than leaving the other run's 0.1.
        let p = s.act_params[0];
        assert!(p.mean.is_nan() && p.min.is_nan() && p.max.is_nan(), "{p:?}");
        let fine = Summary::new(Activation::Relu.into(), &runs[1..], 0.9);
        assert_eq!((fine.diverged, fine.reached), (0, 1));
        assert_eq!(fine.act_params[0].mean, f64::from(0.1f32));
    }

    #[test]
    fn fastest_counts_only_kinds_that_always_reached_the_target() {
        // relu reached 0.9 in 1 of 2 seeds, at epoch 1; tanh in both, at epochs 2 and 3.
        let relu = Summary::new(
            Activation::Relu.into(),
            &[run(1, &[0.95, 0.95, 0.95]), run(2, &[0.5, 0.5, 0.5])],
            0.9,
        );
        let tanh = Summary::new(
            Activation::Tanh.into(),
            &[run(1, &[0.5, 0.95, 0.95]), run(2, &[0.5, 0.5, 0.95])],
            0.9,
        );
        let gelu = Summary::new(
            Activation::Gelu.into(),
            &[run(1, &[0.5, 0.5, 0.95]), run(2, &[0.5, 0.95, 0.95])],
            0.9,
        );
        let never = Summary::new(
            Activation::Sigmoid.into(),
            &[run(1, &[0.5; 3]), run(2, &[0.5; 3])],
            0.9,
        );
        let all = [relu.clone(), tanh.clone(), gelu.clone(), never.clone()];
        let names = |v: Vec<&Summary>| v.iter().map(|s| s.activation.name()).collect::<Vec<_>>();
        // relu's mean over its one run (1.0) is lower, but tanh and gelu reached it every time: they tie at 2.5.
        assert_eq!(names(fastest(&all, 0.0)), ["tanh", "gelu"]);
        // With no kind reaching it in every run, the one reaching it most often, then the earlier epoch.
        let partial = Summary::new(
            Activation::Mish.into(),
            &[run(1, &[0.5, 0.5, 0.95]), run(2, &[0.5; 3])],
            0.9,
        );
        assert_eq!(
            names(fastest(&[partial.clone(), relu.clone()], 0.0)),
            ["relu"]
        );
        assert_eq!(fastest(std::slice::from_ref(&never), 0.0).len(), 0);
        assert_eq!(never.convergence_key(), None);
        assert_eq!(relu.convergence_key(), Some((false, 1, -1.0)));
    }

    #[test]
    fn non_finite_diagnosed_steps_leave_the_dead_counts() {
        // Seed 1 diverged in its second epoch: its diagnosed step's norms are NaN, and the kernels counted its
        // NaN rows as dead neurons (all 5) but as no dead units.
        let mut runs = [run(1, &[0.5, 0.6]), run(2, &[0.5, 0.6])];
        let nan = &mut runs[0].epochs[1].layers;
        nan[1].weight_grad_norm = f64::NAN;
        (nan[0].dead, nan[0].dead_neurons) = (0, 5);
        let s = Summary::new(Activation::Relu.into(), &runs, 0.9);
        // Only the three finite steps count: 5 of 10 units and 1 of 5 neurons in each.
        assert_eq!((s.dead, s.dead_neurons), (Some(0.5), Some(0.2)));
        // Diverged from the first step: nothing to count, not "0 % dead units, 100 % dead neurons".
        let mut all = [run(1, &[0.0, 0.0])];
        for e in &mut all[0].epochs {
            e.layers[0].bias_grad_norm = f64::INFINITY;
            (e.layers[0].dead, e.layers[0].dead_neurons) = (0, 5);
        }
        let s = Summary::new(Activation::ReluSquared.into(), &all, 0.9);
        assert_eq!((s.dead, s.dead_neurons, s.saturated), (None, None, None));
        assert!(diagnostics_finite(&runs[1].epochs[1].layers));
    }

    #[test]
    fn noise_is_the_larger_of_the_floor_and_the_spreads() {
        let floor = point_floor(300);
        assert_eq!(floor, 0.01);
        assert_eq!(noise(floor, Some((0.9, f64::NAN)), None), 0.01);
        assert_eq!(noise(floor, Some((0.9, 0.02)), Some((0.8, 0.005))), 0.02);
        // 3 points of 300 apart is within noise (0.010000000000000009 in f64), 4 is not.
        let at = |a: f64| Some((a, f64::NAN));
        assert!(within_noise(at(1.0), at(297.0 / 300.0), floor));
        assert!(!within_noise(at(1.0), at(296.0 / 300.0), floor));
        assert!(!within_noise(at(f64::NAN), at(1.0), floor));
        let with = |kind: Activation, acc: Spread| {
            let mut s = Summary::new(kind.into(), &[run(1, &[0.5])], 0.9);
            s.test_acc = acc;
            s
        };
        let all = [
            with(Activation::Relu, Some((0.95, 0.002))),
            with(Activation::Gelu, Some((0.97, 0.002))),
            with(Activation::Tanh, Some((0.955, 0.02))),
            with(Activation::Sigmoid, Some((0.5, 0.0))),
            with(Activation::Mish, None),
        ];
        let names = |v: Vec<&Summary>| v.iter().map(|s| s.activation.name()).collect::<Vec<_>>();
        // gelu is best; tanh's spread (0.02) covers its 0.015 gap, relu's 0.002 does not cover 0.02.
        assert_eq!(
            names(near_best(&all, |s| s.test_acc, floor, true)),
            ["gelu", "tanh"]
        );
        assert_eq!(
            names(near_best(&all, |s| s.test_acc, floor, false)),
            ["sigmoid"]
        );
        assert_eq!(near_best(&all[4..], |s| s.test_acc, floor, true).len(), 0);
        // The published depth study's case: a noisy kind further down within noise of the best, a steady one
        // between it and the best not: the group runs from the best to the noisy one, the steady one included.
        let at = |kind: Activation, m: f64, sd: f64| {
            let mut s = Summary::new(kind.into(), &[run(1, &[0.95]), run(2, &[0.95])], 0.9);
            s.test_acc = Some((m, sd));
            s
        };
        let depth = [
            at(Activation::Gelu, 0.998, 0.002),
            at(
                Activation::LeakyRelu {
                    negative_slope: 0.01,
                },
                0.980,
                0.013,
            ),
            at(Activation::QuickGelu, 0.963, 0.045),
            at(Activation::Tanh, 0.90, 0.01),
        ];
        assert_eq!(
            names(near_best(&depth, |s| s.test_acc, floor, true)),
            ["gelu", "leaky_relu", "quick_gelu"]
        );
    }

    #[test]
    fn seed_spreads_are_of_each_runs_own_value() {
        // Seed 1: 5 of 10 hidden units dead each epoch, a flow of 2 at the first step, steps of 1 s; seed 2: 3 of
        // 10, a flow of 4, steps of 4 s.
        let mut runs = [run(1, &[0.5, 0.6]), run(2, &[0.5, 0.6])];
        for e in &mut runs[1].epochs {
            e.layers[0].dead = 3;
        }
        runs[1].initial[0].weight_grad_norm = 4.0;
        runs[1].step_s = vec![4.0];
        let s = Summary::new(Activation::Relu.into(), &runs, 0.9);
        let root2 = 2f64.sqrt();
        assert!((s.dead.unwrap() - 0.4).abs() < 1e-12);
        assert!(
            (s.spreads.dead - 0.2 / root2).abs() < 1e-12,
            "{:?}",
            s.spreads
        );
        assert_eq!(s.spreads.dead_neurons, 0.0);
        assert!((s.spreads.log_init_flow - 2f64.ln() / root2).abs() < 1e-12);
        assert!((s.spreads.log_step - 4f64.ln() / root2).abs() < 1e-12);
        // One run has no spread; a kind the kernels do not count has no share to spread.
        let one = Summary::new(Activation::Relu.into(), &runs[..1], 0.9).spreads;
        assert!([
            one.dead,
            one.dead_neurons,
            one.saturated,
            one.log_init_flow,
            one.log_step
        ]
        .iter()
        .all(|v| v.is_nan()));
        let glu = Summary::new(Gated::GLU.into(), &runs, 0.9).spreads;
        assert!(glu.dead.is_nan() && glu.saturated.is_nan() && glu.log_step.is_finite());
    }

    #[test]
    fn the_fastest_group_takes_kinds_within_the_epoch_floor() {
        let at = |kind: Activation, epoch: f64, sd: f64| {
            let mut s = Summary::new(kind.into(), &[run(1, &[0.95]), run(2, &[0.95])], 0.9);
            s.epochs_to_target = Some((epoch, sd));
            s
        };
        let all = [
            at(Activation::Relu, 5.0, 0.0),
            at(Activation::Gelu, 4.0, 0.0),
            at(Activation::Tanh, 6.0, 2.0),
            at(Activation::Mish, 5.5, 0.0),
        ];
        let names = |v: Vec<&Summary>| v.iter().map(|s| s.activation.name()).collect::<Vec<_>>();
        // No floor: tanh's spread of 2 epochs still covers its 2 epochs behind gelu, and the kinds ranked
        // between (relu at 5, mish at 5.5) are named too: a steadier kind nearer the fastest is not left out.
        assert_eq!(names(fastest(&all, 0.0)), ["gelu", "relu", "mish", "tanh"]);
        assert_eq!(
            names(fastest(&all[..2], 0.0)),
            ["gelu"],
            "relu, 1 epoch later without a spread, is not within noise without a floor"
        );
        assert_eq!(names(fastest(&all[..2], NOISE_EPOCHS)), ["gelu", "relu"]);
    }

    #[test]
    fn gated_and_learnable_runs_have_no_dead_count_and_learnable_ones_report_parameters() {
        let glu = Summary::new(Gated::GLU.into(), &[run(1, &[0.5])], 0.9);
        assert_eq!((glu.dead, glu.saturated), (None, None));
        let prelu = Candidate(Hidden::learnable(Learnable::Prelu, true));
        let mut runs = [run(1, &[0.5]), run(2, &[0.6])];
        runs[0].act_params = vec![vec![0.1, 0.3]];
        runs[1].act_params = vec![vec![0.4, 0.0]];
        let s = Summary::new(prelu, &runs, 0.9);
        assert_eq!((s.dead, s.saturated), (None, None));
        assert_eq!(s.act_params.len(), 1);
        let p = s.act_params[0];
        assert!((p.mean - 0.2).abs() < 1e-6 && p.min == 0.0 && (p.max - 0.4).abs() < 1e-6);
    }
}
