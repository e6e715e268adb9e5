//! The study's command line: defaults, `--quick`, and parsing that returns a usage error instead of panicking.

use std::path::PathBuf;

use crate::datasets::{DataSource, Dataset, DatasetKind};
use crate::study::candidate::Candidate;
use crate::study::run::TrainConfig;
use crate::study::StudyError;
use crate::{Activation, Adam, Optimizer, Sgd};

/// The usage text printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage: cargo run --release --features study --example study -- [options]

Trains the same MLP with every activation on one dataset and reports accuracy, convergence, calibration,
gradient flow and cost; ranks the activations by final test accuracy.

  --dataset NAME|FILE   spirals (default), moons, circles, checkerboard, or a CSV file (a name ending in
                        .csv or .tsv, or any existing file): numeric features, a class label in the last
                        column, an optional header; each class's rows split 60/20/20 into training, test and
                        validation from the data seed, features standardised by the training rows
  --label-column N      with a CSV file: the label is column N, counting from 1 (default: the last)
  --header YES|NO       with a CSV file: whether the first row is a header, yes or no (default: detected)
  --activations A,B,..  names and sets, in order (default: plain, the 22 plain activations, identity as the
                        linear baseline). Names: every activation (relu, gelu, silu, tanh, ...); the gated
                        units glu, reglu, geglu, geglu_tanh, swiglu (a layer of u units is a Linear to 2u,
                        then value * gate(g)); the learnable ones prelu (one slope per layer, from 0.25),
                        prelu_channel (one slope per unit), swish_learnable (x sigmoid(beta x), beta from 1),
                        elu_learnable (alpha from 1), swish_learnable_channel, elu_learnable_channel;
                        rrelu (slopes drawn in [1/8, 1/3] each step, their mean in evaluation). A plain
                        or gated activation, or rrelu, may carry its constants, to compare them:
                        leaky_relu(0.1), elu(0.5), softplus(2,20), rrelu(0.05,0.2), gated(tanh).
                        Sets: plain, shrink (hardshrink, softshrink, tanhshrink: the shrinkage functions,
                        not in plain), gated (the 5 gated units), learnable (prelu, prelu_channel,
                        swish_learnable, elu_learnable), all (plain + shrink + threshold + rrelu + gated +
                        learnable: 36)
  --all                 every plain activation, shrinkage function, threshold, rrelu, gated and learnable kind
                        (--activations all; not with --activations)
  --match-params        shrink the gated layers' widths (one common factor) so their network has about as
                        many parameters as the plain one; without it every kind has the same widths u, so a
                        gated network has about twice the parameters (without a gated kind it changes
                        nothing, and the study says so)
  --epochs N            passes over the training set (default 30)
  --seeds K             runs per activation, seeds 1..=K; mean and standard deviation (default 1). Each
                        run's initialisation and batch order start from seeds derived from its seed, and
                        the data's from the data seed, one per purpose, so that no two share a stream
  --hidden W,W,..       hidden layer widths (default 64,64,64)
  --points N            training points per class of a built-in dataset (default 300; the test and
                        validation sets have ceil(N / 3) unless --test-points says)
  --test-points N       test (and validation) points per class of a built-in dataset
  --data-seed N         the seed of the data (default 1; the same for every run)
  --batch N             rows per step (default 64)
  --lr X                learning rate (default 0.005 for Adam, 0.1 for SGD)
  --lr-sweep X,Y,..     run the whole study once per learning rate and rank the kinds at their own best rate
                        (lr_sweep.md; with --out, each rate's outputs go to DIR/lr-X/); one rate is one
                        study, written as a sweep
  --sgd                 SGD with momentum 0.9 instead of Adam
  --target X            test accuracy that counts as converged, in (0, 1] (default 0.9)
  --input-scale X       multiply every feature, training and test, by X (default 1: the built-in datasets lie
                        within about [-1.5, 1.5], where tanh-like units at their usual initialisation start
                        nearly linear; a larger scale tests how much an activation's result depends on that;
                        1e-6 to 1e6)
  --out DIR             write results.json, report.md and SVG plots to DIR (created if missing; the study
                        warns if it holds another study's outputs that it will not overwrite)
  --quick               3 activations, 2 epochs, a tiny dataset (of a CSV file, at most 40 training and 20
                        test and validation rows of each class): a smoke test in seconds
  -h, --help            this text
";

/// The largest `--epochs`.
const MAX_EPOCHS: usize = 1_000_000;
/// The largest `--seeds`.
const MAX_SEEDS: usize = 10_000;
/// The largest `--points`, `--test-points` and `--batch`.
const MAX_POINTS: usize = 10_000_000;
/// The largest hidden width.
const MAX_WIDTH: usize = 65_536;

/// Everything the study's command line sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The dataset: a built-in one or a CSV file.
    pub dataset: DataSource,
    /// With a CSV file: its label column and header, as far as the command line gave them.
    pub csv: crate::datasets::csv::CsvFormat,
    /// The hidden-layer kinds compared, in the order they run.
    pub activations: Vec<Candidate>,
    /// Whether gated layers get narrower widths so their networks have about the plain network's parameter
    /// count ([`Candidate::matched_hidden`]); otherwise every kind uses [`Options::hidden`].
    pub match_params: bool,
    /// Runs per activation, with seeds `1..=seeds`.
    pub seeds: u64,
    /// Passes over the training set.
    pub epochs: usize,
    /// Training points per class.
    pub points: usize,
    /// Test points per class.
    pub test_points: usize,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Rows per step.
    pub batch: usize,
    /// Learning rate; `None` takes the optimizer's default.
    pub lr: Option<f32>,
    /// Learning rates of a sweep ([`crate::study::sweep`]); empty for a single study at [`Options::lr`].
    pub lr_sweep: Vec<f32>,
    /// SGD with momentum 0.9 instead of Adam.
    pub sgd: bool,
    /// Test accuracy that counts as converged.
    pub target: f64,
    /// The seed of the data (the same for every run), from which the training, test and validation streams are
    /// derived ([`crate::study::seeds`]).
    pub data_seed: u64,
    /// Every feature, training and test, is multiplied by this (1 leaves the data as generated).
    pub input_scale: f32,
    /// Where to write the report files, if anywhere.
    pub out: Option<PathBuf>,
    /// Whether `--quick` was given.
    pub quick: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dataset: DataSource::Builtin(DatasetKind::Spirals),
            csv: crate::datasets::csv::CsvFormat::default(),
            activations: Candidate::plain_all(),
            match_params: false,
            seeds: 1,
            epochs: 30,
            points: 300,
            test_points: 100,
            hidden: vec![64, 64, 64],
            batch: 64,
            lr: None,
            lr_sweep: Vec::new(),
            sgd: false,
            target: 0.9,
            data_seed: 1,
            input_scale: 1.0,
            out: None,
            quick: false,
        }
    }
}

/// What the command line asked for.
// Made once per process: boxing the options would only make every caller unbox them.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the study.
    Run(Options),
    /// Print the usage.
    Help,
}

fn usage(msg: impl Into<String>) -> StudyError {
    StudyError::Usage(msg.into())
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, StudyError> {
    v.parse()
        .map_err(|_| usage(format!("{flag}: '{v}' is not a valid number")))
}

/// A learning rate: a finite number above 0.
fn learning_rate(flag: &str, v: &str) -> Result<f32, StudyError> {
    let lr: f32 = number(flag, v)?;
    if !(lr.is_finite() && lr > 0.0) {
        return Err(usage(format!(
            "{flag}: learning rates must be positive numbers"
        )));
    }
    Ok(lr)
}

fn positive(flag: &str, v: &str) -> Result<usize, StudyError> {
    match number::<usize>(flag, v)? {
        0 => Err(usage(format!("{flag} must be at least 1"))),
        n => Ok(n),
    }
}

/// [`positive`], and at most `max`: counts past it would only exhaust memory or time.
fn bounded(flag: &str, v: &str, max: usize) -> Result<usize, StudyError> {
    match positive(flag, v)? {
        n if n > max => Err(usage(format!("{flag} must be at most {max}, got {n}"))),
        n => Ok(n),
    }
}

/// The flags that take a value: the parser consumes the argument after each.
const VALUE_FLAGS: [&str; 16] = [
    "--dataset",
    "--label-column",
    "--header",
    "--activations",
    "--epochs",
    "--seeds",
    "--points",
    "--test-points",
    "--batch",
    "--hidden",
    "--lr",
    "--lr-sweep",
    "--target",
    "--data-seed",
    "--input-scale",
    "--out",
];

/// Whether `name` appears as a flag (not as the value of one that takes a value).
fn has_flag(args: &[String], name: &str) -> bool {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == name {
            return true;
        }
        if VALUE_FLAGS.contains(&a.as_str()) {
            it.next();
        }
    }
    false
}

/// `--dataset`'s value: a built-in dataset's name, or a CSV file (a name ending in `.csv` or `.tsv`, or any
/// existing file).
fn data_source(v: &str) -> Result<DataSource, StudyError> {
    if let Some(kind) = DatasetKind::from_name(v) {
        return Ok(DataSource::Builtin(kind));
    }
    let path = PathBuf::from(v);
    let csv_name = [".csv", ".tsv"]
        .iter()
        .any(|e| v.to_ascii_lowercase().ends_with(e));
    if csv_name || path.is_file() {
        return Ok(DataSource::Csv(path));
    }
    // Something is there, but not a file to read rows from (a directory, /dev/null): say so, not "unknown".
    if path.exists() {
        return Err(usage(format!(
            "--dataset '{v}' is not a regular file (a CSV file, or spirals, moons, circles, checkerboard)"
        )));
    }
    Err(usage(format!(
        "unknown dataset '{v}' (spirals, moons, circles, checkerboard, or a CSV file)"
    )))
}

/// `--out`'s value: a directory, or a path where one can be created. An existing file there (or in place of one
/// of its parent directories) is a usage error now, rather than an I/O error from creating it.
fn out_dir(v: &str) -> Result<PathBuf, StudyError> {
    // An empty path would write the outputs into the working directory, as `.` does.
    if v.is_empty() {
        return Err(usage(
            "--out needs a directory name (`--out .` for the working directory)".to_string(),
        ));
    }
    let path = PathBuf::from(v);
    if let Some(existing) = path.ancestors().find(|p| p.exists()) {
        if existing == path && !existing.is_dir() {
            return Err(usage(format!("--out {v} is not a directory")));
        }
        if !existing.is_dir() {
            return Err(usage(format!(
                "--out {v}: {} is not a directory",
                existing.display()
            )));
        }
    }
    Ok(path)
}

/// The items of a comma-separated list whose items may hold commas inside parentheses (`relu,rrelu(0.1,0.3)`),
/// trimmed, empty ones left out; `None` where the parentheses do not balance.
fn split_top_level(list: &str) -> Option<Vec<&str>> {
    let items = crate::nn::hidden::split_list(list)?;
    Some(
        items
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// Parses a comma-separated list of names and sets (see [`USAGE`]: `plain`, `shrink`, `gated`, `learnable`,
/// `all`), keeping the first occurrence of each candidate. A name may carry constants ([`Candidate::from_name`]:
/// `leaky_relu(0.1)`, `rrelu(0.1,0.3)`), whose commas do not split the list.
pub fn parse_activations(list: &str) -> Result<Vec<Candidate>, StudyError> {
    let mut acts = Vec::new();
    let names = split_top_level(list)
        .ok_or_else(|| usage(format!("--activations {list}: unbalanced parentheses")))?;
    for name in names {
        let found = match name {
            "plain" => Candidate::plain_all(),
            "shrink" => Candidate::shrink(),
            "gated" => crate::Gated::ALL.map(Candidate::from).to_vec(),
            "learnable" => Candidate::LEARNABLE.to_vec(),
            "all" => Candidate::extended(),
            _ => {
                let kind = crate::Hidden::parse_name(name)
                    .map_err(|e| usage(format!("--activations {name}: {e}")))?;
                let kind = kind.ok_or_else(|| {
                    usage(format!(
                        "unknown activation '{name}' (known: {}; sets: plain, shrink, gated, learnable, all; \
                         constants as leaky_relu(0.1), rrelu(0.05,0.2), each valid for its activation)",
                        Candidate::names().join(", ")
                    ))
                })?;
                vec![Candidate(kind)]
            }
        };
        for c in found {
            if !acts.contains(&c) {
                acts.push(c);
            }
        }
    }
    if acts.is_empty() {
        return Err(usage("--activations needs at least one name"));
    }
    Ok(acts)
}

impl Options {
    /// The `--quick` settings: ReLU, tanh and GELU, 2 epochs, 40 training and 20 test points per class (of a
    /// CSV file, at most that many rows of each class: [`Options::dataset`]), 32 wide.
    pub fn quick() -> Options {
        Options {
            activations: [Activation::Relu, Activation::Tanh, Activation::Gelu]
                .map(Candidate::from)
                .to_vec(),
            epochs: 2,
            points: 40,
            test_points: 20,
            hidden: vec![32, 32],
            batch: 16,
            quick: true,
            ..Options::default()
        }
    }

    /// Parses the arguments after the program name. `--quick` sets its defaults first, whatever its position;
    /// the other flags then override them.
    pub fn parse(args: &[String]) -> Result<Command, StudyError> {
        if has_flag(args, "-h") || has_flag(args, "--help") {
            return Ok(Command::Help);
        }
        let mut o = if has_flag(args, "--quick") {
            Options::quick()
        } else {
            Options::default()
        };
        let mut test_points_set = false;
        let mut points_set = false;
        // `--all` and `--activations` both choose the kinds: given together, one would silently lose.
        let (mut all_set, mut activations_set) = (false, false);
        // A value flag given twice would silently keep its last value.
        let mut seen = std::collections::HashSet::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if VALUE_FLAGS.contains(&flag.as_str()) && !seen.insert(flag.as_str()) {
                return Err(usage(format!(
                    "{flag} is given twice: give it once (its last value would silently win)"
                )));
            }
            match flag.as_str() {
                "--quick" => continue,
                "--sgd" => {
                    o.sgd = true;
                    continue;
                }
                "--all" => {
                    o.activations = Candidate::extended();
                    all_set = true;
                    continue;
                }
                "--match-params" => {
                    o.match_params = true;
                    continue;
                }
                _ => {}
            }
            // A value that is itself an option (`--out --quick`, `--out -h`) means the value was forgotten: taken
            // as one, it named a directory `--quick`. A path of that name is still reachable as `./--quick`.
            let value = |it: &mut std::slice::Iter<String>| match it.next() {
                Some(v) if v.starts_with("--") || v == "-h" => {
                    let path = if matches!(flag.as_str(), "--out" | "--dataset") {
                        format!(" (a path that starts with - can be given as ./{v})")
                    } else {
                        String::new()
                    };
                    Err(usage(format!(
                        "{flag} needs a value, not the option {v}{path}"
                    )))
                }
                Some(v) => Ok(v.clone()),
                None => Err(usage(format!("{flag} needs a value"))),
            };
            match flag.as_str() {
                "--dataset" => o.dataset = data_source(&value(&mut it)?)?,
                "--label-column" => {
                    o.csv.label_column = Some(bounded(flag, &value(&mut it)?, usize::MAX)? - 1);
                }
                "--header" => {
                    o.csv.header = Some(match value(&mut it)?.to_ascii_lowercase().as_str() {
                        "yes" => true,
                        "no" => false,
                        v => return Err(usage(format!("--header takes yes or no, not '{v}'"))),
                    });
                }
                "--activations" => {
                    o.activations = parse_activations(&value(&mut it)?)?;
                    activations_set = true;
                }
                "--epochs" => o.epochs = bounded(flag, &value(&mut it)?, MAX_EPOCHS)?,
                "--seeds" => o.seeds = bounded(flag, &value(&mut it)?, MAX_SEEDS)? as u64,
                "--points" => {
                    points_set = true;
                    o.points = bounded(flag, &value(&mut it)?, MAX_POINTS)?;
                    if !test_points_set {
                        o.test_points = o.points.div_ceil(3);
                    }
                }
                "--test-points" => {
                    o.test_points = bounded(flag, &value(&mut it)?, MAX_POINTS)?;
                    test_points_set = true;
                }
                "--batch" => o.batch = bounded(flag, &value(&mut it)?, MAX_POINTS)?,
                "--hidden" => {
                    let v = value(&mut it)?;
                    o.hidden = v
                        .split(',')
                        .map(|w| bounded(flag, w.trim(), MAX_WIDTH))
                        .collect::<Result<_, _>>()?;
                }
                "--lr" => o.lr = Some(learning_rate(flag, &value(&mut it)?)?),
                "--lr-sweep" => {
                    let v = value(&mut it)?;
                    let rates: Vec<f32> = v
                        .split(',')
                        .map(|x| learning_rate(flag, x.trim()))
                        .collect::<Result<_, _>>()?;
                    // Each rate once, in the order given.
                    o.lr_sweep.clear();
                    for r in rates {
                        if !o.lr_sweep.contains(&r) {
                            o.lr_sweep.push(r);
                        }
                    }
                }
                "--target" => {
                    let v = value(&mut it)?;
                    let t: f64 = number(flag, &v)?;
                    // At 0 every run that did not diverge would "converge" at its first epoch.
                    if !(t > 0.0 && t <= 1.0) {
                        return Err(usage("--target must be above 0 and at most 1"));
                    }
                    o.target = t;
                }
                "--data-seed" => o.data_seed = number(flag, &value(&mut it)?)?,
                "--input-scale" => {
                    let v = value(&mut it)?;
                    let scale: f32 = number(flag, &v)?;
                    // Past these the features overflow to inf or vanish into subnormals (which GPUs may flush):
                    // every run would diverge or sit at chance for a reason that is not the activation's.
                    if !(1e-6..=1e6).contains(&scale) {
                        return Err(usage("--input-scale must be in 1e-6..=1e6"));
                    }
                    o.input_scale = scale;
                }
                "--out" => o.out = Some(out_dir(&value(&mut it)?)?),
                other => return Err(usage(format!("unknown option '{other}'"))),
            }
        }
        if all_set && activations_set {
            return Err(usage(
                "--all and --activations exclude each other (--all is --activations all)",
            ));
        }
        if o.lr.is_some() && !o.lr_sweep.is_empty() {
            return Err(usage("--lr and --lr-sweep exclude each other"));
        }
        match o.dataset {
            DataSource::Csv(_) if points_set || test_points_set => return Err(usage(
                "--points and --test-points size a built-in dataset; a CSV file is split 60/20/20",
            )),
            DataSource::Builtin(_) if o.csv != crate::datasets::csv::CsvFormat::default() => {
                return Err(usage(
                    "--label-column and --header need a CSV file as --dataset",
                ))
            }
            _ => {}
        }
        Ok(Command::Run(o))
    }

    /// What the study should tell the user about these options before it runs, one sentence each (for standard
    /// error): `--match-params` without a gated kind changes nothing; `--lr-sweep` with one rate is one study.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.match_params
            && !self
                .activations
                .iter()
                .any(|c| matches!(c.hidden(), crate::Hidden::Gated(_)))
        {
            notes.push(
                "--match-params changes only gated kinds' widths, and none of the activations is gated: every \
                 kind runs at --hidden's widths"
                    .to_string(),
            );
        }
        if self.quick {
            if let DataSource::Csv(path) = &self.dataset {
                notes.push(format!(
                    "--quick keeps at most {} training and {} test and validation rows of each class of {} (drop \
                     --quick for the whole file)",
                    self.points,
                    self.test_points,
                    path.display()
                ));
            }
        }
        if let [lr] = self.lr_sweep[..] {
            let place = match &self.out {
                Some(dir) => format!(
                    " (written as a sweep's, to {} and lr_sweep.md)",
                    dir.join(format!("lr-{lr}")).display()
                ),
                None => String::new(),
            };
            notes.push(format!(
                "--lr-sweep {lr} has one rate: a single study at lr {lr}, with no other rate to compare it \
                 against{place}"
            ));
        }
        notes
    }

    /// The options of one study of the sweep: these, at learning rate `lr`, writing to `DIR/lr-<lr>` when
    /// there is an output directory.
    pub fn at_lr(&self, lr: f32) -> Options {
        Options {
            lr: Some(lr),
            lr_sweep: Vec::new(),
            out: self.out.as_ref().map(|d| d.join(format!("lr-{lr}"))),
            ..self.clone()
        }
    }

    /// The seeds of the runs: `1..=seeds`.
    pub fn seed_list(&self) -> impl Iterator<Item = u64> {
        1..=self.seeds
    }

    /// The optimizer: Adam (default learning rate 0.005) or SGD with momentum 0.9 (default 0.1).
    pub fn optimizer(&self) -> Optimizer {
        if self.sgd {
            Optimizer::Sgd(Sgd {
                momentum: 0.9,
                ..Sgd::new(self.lr.unwrap_or(0.1))
            })
        } else {
            Optimizer::Adam(Adam::new(self.lr.unwrap_or(0.005)))
        }
    }

    /// The network and schedule every run shares.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            hidden: self.hidden.clone(),
            epochs: self.epochs,
            batch: self.batch,
            optimizer: self.optimizer(),
        }
    }

    /// The hidden widths a run of `candidate` uses: [`Options::hidden`], or with `--match-params` the widths
    /// [`Candidate::matched_hidden`] gives for it on `dataset`.
    pub fn hidden_for(&self, candidate: Candidate, dataset: &Dataset) -> Vec<usize> {
        if self.match_params {
            candidate.matched_hidden(dataset.features, &self.hidden, dataset.classes)
        } else {
            self.hidden.clone()
        }
    }

    /// Whether every candidate's network fits a device whose largest storage binding is `max_binding` bytes:
    /// the products bind each layer's f32 weight `[fan_in, linear width]` whole. Checked once the adapter is
    /// known, before any run, so that widths it cannot hold are a usage error naming `--hidden` (status 2), not
    /// the first run's `Mlp::new` failing ([`crate::Error::LimitExceeded`], status 1).
    pub fn check_weights_fit(&self, dataset: &Dataset, max_binding: u64) -> Result<(), StudyError> {
        for &c in &self.activations {
            let widths = self.hidden_for(c, dataset);
            let kinds = vec![c.hidden(); widths.len()];
            let mut sizes = vec![dataset.features];
            sizes.extend(widths);
            sizes.push(dataset.classes);
            if let Some(w) = crate::nn::mlp::oversized_weight(&sizes, &kinds, max_binding) {
                let hidden: Vec<String> = self.hidden.iter().map(|w| w.to_string()).collect();
                return Err(usage(format!(
                    "--hidden {}: {c}'s layer {} has a weight of [{}, {}] f32, {} bytes, past the largest \
                     storage binding on this adapter ({max_binding} bytes)",
                    hidden.join(","),
                    w.layer + 1,
                    w.rows,
                    w.cols,
                    w.bytes
                )));
            }
        }
        Ok(())
    }

    /// The network and schedule of `candidate`'s runs: [`Options::train_config`] with
    /// [`Options::hidden_for`]'s widths.
    pub fn config_for(&self, candidate: Candidate, dataset: &Dataset) -> TrainConfig {
        TrainConfig {
            hidden: self.hidden_for(candidate, dataset),
            ..self.train_config()
        }
    }

    /// The dataset the options describe, scaled by `input_scale`: a built-in one from
    /// [`crate::study::seeds::dataset`] (training, test and validation points each from a seed derived from the
    /// data seed), or a CSV file read and split by [`crate::datasets::csv::load`] with the seed derived from the
    /// data seed for the test set (with `--quick`, only the first `points` training and `test_points` test and
    /// validation rows of each class: [`Dataset::at_most_per_class`]). [`StudyError::Data`] where the file cannot
    /// be read or used.
    pub fn dataset(&self) -> Result<Dataset, StudyError> {
        let dataset = match &self.dataset {
            DataSource::Builtin(kind) => {
                crate::study::seeds::dataset(*kind, self.points, self.test_points, self.data_seed)
            }
            DataSource::Csv(path) => {
                let seed =
                    crate::study::seeds::derive(self.data_seed, crate::study::seeds::Purpose::Test);
                let full =
                    crate::datasets::csv::load(path, &self.csv, seed).map_err(StudyError::Data)?;
                if self.quick {
                    full.at_most_per_class(self.points, self.test_points)
                } else {
                    full
                }
            }
        };
        Ok(dataset.scaled(self.input_scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hidden;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_quick_and_overrides() {
        assert_eq!(
            Options::parse(&args("")).unwrap(),
            Command::Run(Options::default())
        );
        let Command::Run(o) =
            Options::parse(&args("--epochs 3 --quick --activations relu,elu,relu")).unwrap()
        else {
            panic!("not a run")
        };
        assert!(o.quick);
        assert_eq!(o.epochs, 3);
        assert_eq!(
            o.activations,
            vec![Activation::Relu.into(), Activation::elu().into()]
        );
        let Command::Run(o) = Options::parse(&args(
            "--dataset moons --hidden 8,4 --points 30 --sgd --seeds 2",
        ))
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(
            (o.dataset.clone(), o.hidden.clone(), o.test_points),
            (DataSource::Builtin(DatasetKind::Moons), vec![8, 4], 10)
        );
        assert_eq!(o.seed_list().collect::<Vec<_>>(), vec![1, 2]);
        assert!(matches!(o.optimizer(), Optimizer::Sgd(s) if s.momentum == 0.9));
        assert_eq!(Options::parse(&args("--out x -h")).unwrap(), Command::Help);
    }

    #[test]
    fn names_with_constants_compare_one_activation_at_several_settings() {
        let list = "leaky_relu, leaky_relu(0.1),rrelu(0.05,0.2),leaky_relu(0.01),softplus(2,20),gated(tanh)";
        let got = parse_activations(list).unwrap();
        let names: Vec<String> = got.iter().map(|c| c.name()).collect();
        // leaky_relu(0.01) is leaky_relu at its default slope: the same candidate, kept once.
        assert_eq!(
            names,
            [
                "leaky_relu",
                "leaky_relu(0.1)",
                "rrelu(0.05,0.2)",
                "softplus(2,20)",
                "gated_tanh"
            ]
        );
        assert_eq!(
            got[1].hidden(),
            Hidden::Act(Activation::LeakyRelu {
                negative_slope: 0.1
            })
        );
        assert_eq!(
            split_top_level(" a ,b(1,2),, c"),
            Some(vec!["a", "b(1,2)", "c"])
        );
        let bad = [
            "rrelu(0.1,0.3",
            "relu)",
            "leaky_relu(x)",
            "prelu(4)",
            "rrelu(0.3,0.1)",
            "elu(inf)",
        ];
        for bad in bad {
            let e = parse_activations(bad).unwrap_err();
            assert!(matches!(e, StudyError::Usage(_)), "{bad}: {e:?}");
        }
    }

    #[test]
    fn gated_learnable_names_sets_and_flags() {
        let names =
            |o: &Options| -> Vec<String> { o.activations.iter().map(|c| c.name()).collect() };
        let Command::Run(o) = Options::parse(&args(
            "--activations relu,swiglu,prelu,prelu_channel,swish_learnable,elu_learnable,glu",
        ))
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(
            names(&o),
            [
                "relu",
                "swiglu",
                "prelu",
                "prelu_channel",
                "swish_learnable",
                "elu_learnable",
                "glu"
            ]
        );
        assert!(!o.match_params);
        let Command::Run(o) = Options::parse(&args(
            "--activations gelu,gated,learnable,geglu --match-params",
        ))
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(
            names(&o),
            [
                "gelu",
                "glu",
                "reglu",
                "geglu",
                "geglu_tanh",
                "swiglu",
                "prelu",
                "prelu_channel",
                "swish_learnable",
                "elu_learnable"
            ]
        );
        assert!(o.match_params);
        let d = o.dataset().unwrap();
        assert_eq!(o.hidden_for(o.activations[1], &d), vec![45, 45, 45]);
        assert_eq!(o.hidden_for(o.activations[0], &d), vec![64, 64, 64]);
        assert_eq!(o.config_for(o.activations[6], &d).hidden, vec![64, 64, 64]);
        for all in ["--all", "--activations all", "--quick --all"] {
            let Command::Run(o) = Options::parse(&args(all)).unwrap() else {
                panic!("not a run")
            };
            assert_eq!(o.activations, Candidate::extended(), "{all}");
            assert_eq!(o.activations.len(), 36);
        }
        let Command::Run(o) = Options::parse(&args("--activations plain")).unwrap() else {
            panic!("not a run")
        };
        assert_eq!(o.activations, Options::default().activations);
        assert_eq!(o.activations.len(), 22);
        let Command::Run(o) = Options::parse(&args("--activations shrink,relu")).unwrap() else {
            panic!("not a run")
        };
        let names: Vec<String> = o.activations.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["hardshrink", "softshrink", "tanhshrink", "relu"]);
    }

    #[test]
    fn lr_sweep_runs_one_study_per_rate() {
        let Command::Run(o) =
            Options::parse(&args("--quick --lr-sweep 0.001,0.01 --out x")).unwrap()
        else {
            panic!("not a run")
        };
        assert_eq!(o.lr_sweep, vec![0.001, 0.01]);
        let one = o.at_lr(0.01);
        assert_eq!((one.lr, one.lr_sweep.is_empty()), (Some(0.01), true));
        assert_eq!(one.out, Some(PathBuf::from("x").join("lr-0.01")));
        assert_eq!(one.optimizer(), Optimizer::Adam(Adam::new(0.01)));
        assert_eq!((one.epochs, one.activations), (o.epochs, o.activations));
    }

    #[test]
    fn input_scale_multiplies_every_feature() {
        let Command::Run(o) = Options::parse(&args("--quick --input-scale 4")).unwrap() else {
            panic!("not a run")
        };
        assert_eq!(o.input_scale, 4.0);
        let plain = Options::quick().dataset().unwrap();
        let scaled = o.dataset().unwrap();
        for (a, b) in [
            (&plain.train_x, &scaled.train_x),
            (&plain.test_x, &scaled.test_x),
        ] {
            assert_eq!(a.len(), b.len());
            assert!(a.iter().zip(b.iter()).all(|(&p, &q)| q == 4.0 * p));
        }
        assert_eq!(
            (&plain.train_y, &plain.test_y),
            (&scaled.train_y, &scaled.test_y)
        );
        // The default scale keeps the generated bits.
        let generated = crate::study::seeds::dataset(
            DatasetKind::Spirals,
            o.points,
            o.test_points,
            o.data_seed,
        );
        assert_eq!(plain.train_x, generated.train_x);
    }

    #[test]
    fn a_csv_file_is_a_dataset() {
        let dir = std::env::temp_dir().join(format!("actgpu-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("two blobs.txt");
        let mut text = String::from("class,a,b\n");
        for r in 0..50 {
            let c = r % 2;
            text += &format!(
                "{},{},{}\n",
                ["left", "right"][c],
                c as f64 * 4.0 + r as f64 * 0.01,
                -1.5
            );
        }
        std::fs::write(&file, text).unwrap();
        // Any existing file is a CSV file, whatever its extension; the label here is column 1.
        let argv: Vec<String> = [
            "--quick",
            "--dataset",
            &file.display().to_string(),
            "--label-column",
            "1",
            "--header",
            "YES",
        ]
        .map(String::from)
        .to_vec();
        let Command::Run(o) = Options::parse(&argv).unwrap() else {
            panic!("not a run")
        };
        assert_eq!(o.dataset, DataSource::Csv(file.clone()));
        assert_eq!((o.csv.label_column, o.csv.header), (Some(0), Some(true)));
        let d = o.dataset().unwrap();
        assert_eq!(
            (d.features, d.classes, d.source.name()),
            (2, 2, "two blobs.txt".to_string())
        );
        assert_eq!(
            (d.train_y.len(), d.test_y.len(), d.val_y.len()),
            (30, 10, 10)
        );
        // A file that is not there is a typed error when the study reads it.
        let Command::Run(missing) = Options::parse(&args("--dataset nowhere/d.csv")).unwrap()
        else {
            panic!("not a run")
        };
        assert!(matches!(missing.dataset(), Err(StudyError::Data(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `--quick` on a CSV file keeps at most its points per class of each set, says so in a note, and takes them
    /// from the same split as the whole file; without `--quick` every row is used.
    #[test]
    fn quick_on_a_csv_file_keeps_a_few_rows_of_each_class() {
        let dir = std::env::temp_dir().join(format!("actgpu-quick-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("three.csv");
        let mut text = String::new();
        for r in 0..600 {
            let c = r % 3;
            text += &format!("{},{},{c}\n", c as f64 + r as f64 * 1e-3, r as f64 * 0.5);
        }
        std::fs::write(&file, text).unwrap();
        let parse = |extra: &str| {
            let mut argv = vec!["--dataset".to_string(), file.display().to_string()];
            argv.extend(args(extra));
            let Command::Run(o) = Options::parse(&argv).unwrap() else {
                panic!("not a run")
            };
            o
        };
        let per_class = |y: &[u32]| -> Vec<usize> {
            (0..3)
                .map(|c| y.iter().filter(|&&l| l == c).count())
                .collect()
        };
        let whole = parse("").dataset().unwrap();
        assert_eq!(
            whole.train_y.len() + whole.test_y.len() + whole.val_y.len(),
            600
        );
        assert!(parse("").notes().is_empty());
        let quick = parse("--quick");
        let small = quick.dataset().unwrap();
        assert_eq!(per_class(&small.train_y), [40, 40, 40]);
        assert_eq!(per_class(&small.test_y), [20, 20, 20]);
        assert_eq!(per_class(&small.val_y), [20, 20, 20]);
        assert_eq!((small.features, small.classes), (2, 3));
        // The kept rows are rows of the whole file's split, features and all.
        let row = |x: &[f32], i: usize| x[2 * i..2 * i + 2].to_vec();
        let whole_rows: Vec<Vec<f32>> = (0..whole.train_y.len())
            .map(|i| row(&whole.train_x, i))
            .collect();
        assert!((0..small.train_y.len()).all(|i| whole_rows.contains(&row(&small.train_x, i))));
        let notes = quick.notes();
        assert!(
            notes.len() == 1 && notes[0].contains("at most 40 training and 20 test"),
            "{notes:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for bad in [
            "--epochs",
            "--epochs 0",
            "--epochs two",
            "--dataset mnist",
            "--activations relu,nope",
            "--activations glu_channel",
            "--activations prelu_shared",
            "--match-params 3",
            "--activations ,",
            "--hidden 8,,4",
            "--lr -1",
            "--lr nan",
            "--target 2",
            "--target 0",
            "--lr-sweep 0.01,0",
            "--lr-sweep 0.01,,0.1",
            "--lr 0.01 --lr-sweep 0.001,0.01",
            "--input-scale 0",
            "--input-scale -2",
            "--input-scale inf",
            "--input-scale 3e38",
            "--input-scale 1e-45",
            "--input-scale",
            "--frobnicate",
            "--epochs 18446744073709551615",
            "--epochs 3 --epochs 4",
            "--activations relu --quick --activations gelu",
            "--points 18446744073709551615",
            "--test-points 10000001",
            "--seeds 10001",
            "--hidden 64,70000",
            "--label-column 2",
            "--dataset d.csv --points 10",
            "--dataset d.csv --test-points 10",
            "--dataset d.csv --label-column 0",
            "--header yes",
            "--dataset d.csv --header maybe",
            "--all --activations relu",
            "--activations relu --all",
            "--quick --activations gelu --all",
            "--out Cargo.toml",
            "--out Cargo.toml/sub",
            "--out --quick",
            "--epochs --seeds 2",
        ] {
            assert!(
                matches!(Options::parse(&args(bad)), Err(StudyError::Usage(_))),
                "{bad}"
            );
        }
        // A path that exists but holds no rows is named as such.
        for v in ["/dev/null", "src"] {
            let Err(StudyError::Usage(why)) = Options::parse(&args(&format!("--dataset {v}")))
            else {
                panic!("--dataset {v} was accepted")
            };
            assert!(why.contains("is not a regular file"), "{why}");
        }
        // A forgotten value is named as such, not taken to be the next option.
        let Err(StudyError::Usage(why)) = Options::parse(&args("--quick --out --quick")) else {
            panic!("--out --quick was accepted")
        };
        assert!(
            why.contains("--out needs a value, not the option --quick"),
            "{why}"
        );
        // An empty --out would write into the working directory.
        assert!(matches!(
            Options::parse(&["--out".to_string(), String::new()]),
            Err(StudyError::Usage(_))
        ));
    }

    /// The flags the prescan skips a value after are exactly those the usage shows with a value (`--flag NAME`),
    /// and each of them, given no value, is a usage error: the list cannot drift from the parser.
    #[test]
    fn value_flags_match_the_usage_and_the_parser() {
        let shown: Vec<&str> = USAGE
            .lines()
            .filter_map(|l| {
                // `  --flag VALUE   description`: the value is one space after the flag, the description more.
                let rest = l.trim_start().strip_prefix("--")?;
                let (name, after) = rest.split_once(' ')?;
                let takes_value = after.starts_with(|c: char| c.is_ascii_uppercase());
                takes_value.then(|| &l.trim_start()[..name.len() + 2])
            })
            .collect();
        let mut listed = VALUE_FLAGS.to_vec();
        let mut shown_sorted = shown.clone();
        listed.sort_unstable();
        shown_sorted.sort_unstable();
        assert_eq!(listed, shown_sorted);
        for flag in VALUE_FLAGS {
            assert!(
                matches!(Options::parse(&args(flag)), Err(StudyError::Usage(_))),
                "{flag}"
            );
        }
    }

    #[test]
    fn widths_past_a_binding_are_a_usage_error_naming_hidden() {
        let o = Options::quick();
        let d = o.dataset().unwrap();
        o.check_weights_fit(&d, 128 << 20).unwrap();
        let Command::Run(wide) = Options::parse(&args("--quick --hidden 65536,65536")).unwrap()
        else {
            panic!("not a run")
        };
        // 65536 x 65536 f32 is 16 GiB; a 128 MiB binding holds neither it nor, for a gated kind, twice it.
        let Err(StudyError::Usage(why)) = wide.check_weights_fit(&d, 128 << 20) else {
            panic!("16 GiB weights fit a 128 MiB binding")
        };
        assert!(
            why.starts_with(
                "--hidden 65536,65536: relu's layer 2 has a weight of [65536, 65536] f32"
            ),
            "{why}"
        );
        // A gated layer's linear map is twice as wide: [2, 2u] must fit too.
        let Command::Run(gated) =
            Options::parse(&args("--quick --hidden 8 --activations glu")).unwrap()
        else {
            panic!("not a run")
        };
        gated.check_weights_fit(&d, 2 * 16 * 4).unwrap();
        assert!(gated.check_weights_fit(&d, 2 * 16 * 4 - 1).is_err());
    }

    #[test]
    fn sweep_rates_come_once_and_flag_values_are_not_flags() {
        let Ok(Command::Run(o)) = Options::parse(&args("--lr-sweep 0.01,0.003,0.01")) else {
            panic!("a sweep")
        };
        assert_eq!(o.lr_sweep, [0.01, 0.003]);
        // An option where a value belongs is refused (the value was forgotten; taken as a value, `--quick` named
        // a directory), and a directory of that name is still reachable as a path, without turning quick on.
        for forgotten in ["--out --quick", "--out -h", "--dataset --quick"] {
            assert!(
                matches!(Options::parse(&args(forgotten)), Err(StudyError::Usage(_))),
                "{forgotten}"
            );
        }
        let Ok(Command::Run(o)) = Options::parse(&args("--out ./--quick")) else {
            panic!("a run")
        };
        assert!(!o.quick);
        assert_eq!(o.out.as_deref(), Some(std::path::Path::new("./--quick")));
        assert!(matches!(
            Options::parse(&args("--epochs 3 --help")),
            Ok(Command::Help)
        ));
    }

    #[test]
    fn out_must_be_a_directory() {
        // Relative to the package root, where cargo runs the tests.
        let Err(StudyError::Usage(msg)) = Options::parse(&args("--out Cargo.toml")) else {
            panic!("an existing file as --out")
        };
        assert_eq!(msg, "--out Cargo.toml is not a directory");
        let Err(StudyError::Usage(msg)) = Options::parse(&args("--out Cargo.toml/x/y")) else {
            panic!("a file as a parent of --out")
        };
        assert!(msg.ends_with("Cargo.toml is not a directory"), "{msg}");
        // A directory, or a path where one can be made, is fine.
        for ok in ["src", "target/not-there-yet/study"] {
            assert!(
                matches!(
                    Options::parse(&args(&format!("--out {ok}"))),
                    Ok(Command::Run(_))
                ),
                "{ok}"
            );
        }
    }

    #[test]
    fn options_that_change_nothing_are_noted() {
        let notes = |a: &str| match Options::parse(&args(a)) {
            Ok(Command::Run(o)) => o.notes(),
            other => panic!("{a}: {other:?}"),
        };
        assert!(notes("--quick").is_empty());
        assert!(notes("--activations relu,swiglu --match-params").is_empty());
        assert!(notes("--lr-sweep 0.001,0.01").is_empty());
        let n = notes("--quick --match-params");
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("none of the activations is gated"), "{n:?}");
        let n = notes("--lr-sweep 0.01");
        assert_eq!(n.len(), 1);
        assert!(
            n[0].contains("one rate: a single study at lr 0.01"),
            "{n:?}"
        );
        // --all alone still takes every kind; with --activations it is a usage error (bad_input_is_a_usage_error).
        assert!(notes("--all --match-params").is_empty());
    }
}
