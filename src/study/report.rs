//! The study's outputs: the ranked table (text and Markdown), `report.md` (the setup with the crate version, the
//! `WGPU_BACKEND` setting, which label became which class index where a CSV file's labels are not already `0..k-1`
//! ([`class_mapping`]) and the majority baseline, the table, the reading of
//! [`crate::study::reading`] and the charts), and [`write_outputs`], which puts them, `results.json`
//! ([`crate::study::results_json`]) and the charts in a directory.
//!
//! Table columns: the network's trained parameters (weights, biases, learnable activation parameters; a gated
//! layer's linear map is twice as wide, so without `--match-params` a gated network has about twice as many),
//! final test accuracy, `~` where it is within noise of the row above's ([`within_noise_of_previous`]), final
//! validation accuracy (the one to choose a kind by: the ranking's test accuracy selects on the test set), the
//! mean test accuracy over the last [`crate::study::summary::TAIL_EPOCHS`] epochs
//! (where a run had settled, whatever its last epoch did), test NLL and ECE (see [`crate::study::metrics`]),
//! final training loss
//! (over the whole training set), epochs until the test accuracy first reached the target (with how many runs
//! reached it), median wall time per training step, the fractions of hidden pre-activations with `f'(z) = 0`
//! ("dead" in [`crate::nn::diagnostics`]: no gradient flows through them on that batch; for the ReLU family
//! this includes every inactive unit, not only units dead for good), of hidden neurons with `f'(z) = 0` for every
//! row of the batch (dead neurons: the dying units) and of pre-activations with `0 < |f'(z)| < 1e-3`
//! (saturated), over every epoch's last full-size step (the last batch of `batch` rows: see
//! [`crate::study::run::diagnosed_chunk`]; `-` for gated, learnable and randomized kinds, which the kernels count only
//! for plain activations, and where no diagnosed step was finite, see
//! [`crate::study::summary::diagnostics_finite`]; `null` in `results.json`), and the gradient flow at
//! initialisation:
//! `‖g_1‖ / ‖g_L‖`, the first layer's gradient norm over the output layer's at the first step (below 1 where
//! the gradient shrinks on its way to the input, above 1 where it grows; with several seeds, the ratio of the
//! two layers' mean norms, without a spread).

use std::fmt::Write;
use std::path::Path;

use crate::study::figures::figures;
use crate::study::reading::{accuracy_floor, baseline, reading};
use crate::study::results_json::json;
use crate::study::summary::{tail_epochs, within_noise, Spread, Summary};
use crate::study::{Study, StudyError};

/// The table's column titles ("acc last 5" reads "acc last N" in a study of N < 5 epochs). `~` marks a row
/// whose test accuracy is within noise of the row above's ([`within_noise_of_previous`]); `val acc` is the
/// validation accuracy, the one to choose a kind by (the ranking's test accuracy selects on the test set).
pub const COLUMNS: [&str; 16] = [
    "#",
    "activation",
    "params",
    "test acc",
    "~",
    "val acc",
    "acc last 5",
    "test NLL",
    "ECE",
    "train loss",
    "epochs to target",
    "ms/step",
    "f'=0 %",
    "dead neurons %",
    "sat %",
    "‖g1‖/‖gL‖ init",
];

/// A mean with its standard deviation when `with_sd` and the deviation is a number (one value, or a diverged
/// run, has none: the mean alone, never `± 0` or `± NaN`).
pub(crate) fn spread(s: Spread, digits: usize, with_sd: bool) -> String {
    match s {
        None => "-".into(),
        Some((m, sd)) if with_sd && sd.is_finite() => format!("{m:.digits$} ± {sd:.digits$}"),
        Some((m, _)) => format!("{m:.digits$}"),
    }
}

/// A gradient-flow ratio as the table and the reading print it: three decimals, or three significant figures
/// in scientific notation below 0.001, so that a vanishing flow (5.7e-9 through ten sigmoid layers) is not a
/// row of `0.000` that cannot be ranked by eye.
pub fn ratio_text(r: f64) -> String {
    if r != 0.0 && r.abs() < 1e-3 {
        format!("{r:.2e}")
    } else {
        format!("{r:.3}")
    }
}

/// `‖g_1‖ / ‖g_L‖` at the first step, if both are there, finite, and the last is not zero (an overflowed
/// output gradient would make the ratio a plausible-looking 0).
pub fn init_flow(s: &Summary) -> Option<f64> {
    let g = &s.initial_grad_norm;
    match (g.first(), g.last()) {
        (Some(&a), Some(&b)) if g.len() > 1 && b > 0.0 && a.is_finite() && b.is_finite() => {
            Some(a / b)
        }
        _ => None,
    }
}

/// Whether the test accuracy of the `rank`-th kind (1-based, as ranked) is within noise of the kind ranked
/// above it: the two means no further apart than [`crate::study::summary::NOISE_POINTS`] test points or either
/// kind's seed spread ([`crate::study::summary::within_noise`]). False for the first, and where either kind has
/// a diverged run (its accuracy counts non-finite rows as wrong, and its spread says nothing about noise).
pub fn within_noise_of_previous(study: &Study, rank: usize) -> bool {
    let s = &study.summaries;
    match (
        rank.checked_sub(2).and_then(|i| s.get(i)),
        s.get(rank.wrapping_sub(1)),
    ) {
        (Some(prev), Some(this)) if prev.diverged == 0 && this.diverged == 0 => {
            within_noise(prev.test_acc, this.test_acc, accuracy_floor(study))
        }
        _ => false,
    }
}

/// The cells of one row (rank is 1-based: the kind's place in `study.summaries`, which the `~` cell compares
/// with the one above).
pub fn cells(study: &Study, rank: usize, s: &Summary) -> [String; 16] {
    let sd = study.options.seeds > 1;
    let to_target = match s.epochs_to_target {
        None => format!("never (0/{})", s.runs),
        Some((m, d)) if sd && d.is_finite() => {
            format!("{m:.1} ± {d:.1} ({}/{})", s.reached, s.runs)
        }
        Some((m, _)) if sd => format!("{m:.1} ({}/{})", s.reached, s.runs),
        Some((m, _)) => format!("{m:.0}"),
    };
    [
        rank.to_string(),
        s.activation.name(),
        s.params.to_string(),
        spread(s.test_acc, 3, sd),
        if within_noise_of_previous(study, rank) {
            "~".into()
        } else {
            String::new()
        },
        spread(s.val_acc, 3, sd),
        spread(s.test_acc_tail, 3, sd),
        spread(s.test_nll, 3, sd),
        spread(s.test_ece, 3, sd),
        spread(s.train_loss, 3, sd),
        to_target,
        s.step_s.map_or("-".into(), |t| format!("{:.2}", t * 1e3)),
        s.dead.map_or("-".into(), |d| format!("{:.1}", 100.0 * d)),
        s.dead_neurons
            .map_or("-".into(), |d| format!("{:.1}", 100.0 * d)),
        s.saturated
            .map_or("-".into(), |d| format!("{:.1}", 100.0 * d)),
        init_flow(s).map_or("-".into(), ratio_text),
    ]
}

/// The ranked table as aligned text.
pub fn table(study: &Study) -> String {
    aligned(&header_and_rows(study))
}

/// The column titles, then one row of cells per summary, best first.
fn header_and_rows(study: &Study) -> Vec<[String; 16]> {
    let mut titles = COLUMNS.map(String::from);
    titles[6] = format!("acc last {}", tail_epochs(study.options.epochs));
    let mut rows: Vec<[String; 16]> = vec![titles];
    rows.extend(
        study
            .summaries
            .iter()
            .enumerate()
            .map(|(i, s)| cells(study, i + 1, s)),
    );
    rows
}

/// Rows of cells as text columns two spaces apart: the second column (the name) left-aligned, the others
/// right-aligned.
pub(crate) fn aligned<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let width: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .as_ref()
            .iter()
            .zip(&width)
            .enumerate()
            .map(|(c, (cell, &w))| {
                let pad = w - cell.chars().count();
                if c == 1 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The ranked table in Markdown.
pub fn markdown_table(study: &Study) -> String {
    markdown_grid(&header_and_rows(study))
}

/// Rows of cells as a Markdown table, the first row the header: the second column (the name) left-aligned, the
/// others right-aligned.
pub(crate) fn markdown_grid<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(out, "| {} |", r.as_ref().join(" | "));
        if i == 0 {
            let align: Vec<&str> = (0..r.as_ref().len())
                .map(|c| if c == 1 { "---" } else { "---:" })
                .collect();
            let _ = writeln!(out, "|{}|", align.join("|"));
        }
    }
    out
}

/// How many classes [`class_mapping`] names before it says how many more there are (`results.json` names every
/// one).
pub const CLASSES_NAMED: usize = 20;

/// `text` as a Markdown code span: fenced by one backtick more than the longest run of them in it, and padded
/// with a space where it starts or ends with one.
pub(crate) fn code(text: &str) -> String {
    let run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(run + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Class `c` as a reader knows it: `2`, or where the dataset's labels are not their class indices
/// ([`crate::datasets::Dataset::labels_are_indices`]), ``2 (label `virginica`)``.
pub fn class_text(dataset: &crate::datasets::Dataset, c: u32) -> String {
    if dataset.labels_are_indices() {
        c.to_string()
    } else {
        format!("{c} (label {})", code(&dataset.class_label(c)))
    }
}

/// Which label became which class index, `` `setosa` -> 0, `versicolor` -> 1, `virginica` -> 2 `` (the first
/// [`CLASSES_NAMED`], then how many more), where a CSV file's labels are not already their indices (labels `1,
/// 2` are classes `0, 1`; words are numbered by their sorted order: [`crate::datasets::csv`]). `None` where they
/// are (a built-in dataset, or labels `0..k-1`), so that a report says nothing a reader does not need.
pub fn class_mapping(dataset: &crate::datasets::Dataset) -> Option<String> {
    if dataset.labels_are_indices() {
        return None;
    }
    let n = dataset.class_names.len();
    let mut named: Vec<String> = dataset
        .class_names
        .iter()
        .take(CLASSES_NAMED)
        .enumerate()
        .map(|(c, label)| format!("{} -> {c}", code(label)))
        .collect();
    if n > CLASSES_NAMED {
        named.push(format!(
            "and {} more (`results.json` names every one: `dataset.class_labels`)",
            n - CLASSES_NAMED
        ));
    }
    Some(named.join(", "))
}

/// The classes of `dataset` that have no test row (a class of one or two rows in a CSV file: the split holds
/// out a share of each class's rows, rounded), as [`class_text`] names them with their row counts (`2: 1 row`,
/// ``3 (label `7`): 2 rows``): the test
/// accuracy says nothing about them. Empty where every class is tested.
pub fn untested_classes(dataset: &crate::datasets::Dataset) -> Vec<String> {
    let count = |ys: &[u32], c: u32| ys.iter().filter(|&&y| y == c).count();
    (0..dataset.classes as u32)
        .filter(|&c| count(&dataset.test_y, c) == 0)
        .map(|c| {
            let rows = count(&dataset.train_y, c) + count(&dataset.val_y, c);
            format!(
                "{}: {rows} row{}",
                class_text(dataset, c),
                if rows == 1 { "" } else { "s" }
            )
        })
        .collect()
}

/// `2-64-64-64-3`: the layer sizes. Where kinds ran different widths (`--match-params` narrows the gated ones),
/// each architecture with the kinds that ran it: `2-64-64-64-3 (relu, gelu), 2-45-45-45-3 (swiglu)`.
pub fn arch(study: &Study) -> String {
    let text = |sizes: &[usize]| {
        sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-")
    };
    let mut groups: Vec<(&[usize], Vec<String>)> = Vec::new();
    for s in study.summaries.iter().filter(|s| !s.sizes.is_empty()) {
        match groups
            .iter_mut()
            .find(|(sizes, _)| *sizes == s.sizes.as_slice())
        {
            Some((_, names)) => names.push(s.activation.name()),
            None => groups.push((&s.sizes, vec![s.activation.name()])),
        }
    }
    match groups.as_slice() {
        [] => text(&study.options.train_config().sizes(&study.dataset)),
        [(sizes, _)] => text(sizes),
        _ => groups
            .iter()
            .map(|(sizes, names)| format!("{} ({})", text(sizes), names.join(", ")))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// ", features scaled by S" for an `--input-scale` other than 1, else nothing.
pub(crate) fn scale_text(scale: f32) -> String {
    if scale == 1.0 {
        String::new()
    } else {
        format!(", features scaled by {scale}")
    }
}

pub(crate) fn optimizer_text(study: &Study) -> String {
    match study.options.optimizer() {
        crate::Optimizer::Adam(a) => format!("Adam at lr {}", a.lr),
        crate::Optimizer::Sgd(s) => format!("SGD (momentum {}) at lr {}", s.momentum, s.lr),
    }
}

/// The backend the environment asked for: the value of `WGPU_BACKEND` when it is set and not empty, else
/// `default` (wgpu's choice among the backends built in). Read when the outputs are written, so in the process
/// that ran the study.
pub fn backend_setting() -> String {
    std::env::var("WGPU_BACKEND")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "default".into())
}

/// `report.md`: the setup, the table, the reading and links to the charts.
pub fn markdown(study: &Study) -> String {
    let mut out = String::from("# Activation study\n\n");
    let _ = writeln!(out, "- command: `{}`", study.command);
    let _ = writeln!(out, "- adapter: {}", study.adapter);
    if let Some(host) = &study.host_cpu {
        let _ = writeln!(out, "- host CPU: {host}");
    }
    let _ = writeln!(
        out,
        "- actgpu {}, WGPU_BACKEND: {}",
        env!("CARGO_PKG_VERSION"),
        backend_setting()
    );
    let _ = writeln!(
        out,
        "- date: {}; the whole study took {:.0} s; creating its pipelines took {:.0} s of thread time, in \
         parallel before the runs",
        study.date, study.wall_s, study.compile_s
    );
    let _ = writeln!(
        out,
        "- data: {} ({} classes), {} training and {} test points, data seed {}{}",
        study.dataset.source,
        study.dataset.classes,
        study.dataset.train_y.len(),
        study.dataset.test_y.len(),
        study.options.data_seed,
        scale_text(study.options.input_scale)
    );
    if let Some(mapping) = class_mapping(&study.dataset) {
        let _ = writeln!(
            out,
            "- classes (label -> class index, by the labels' sorted distinct values): {mapping}"
        );
    }
    let _ = writeln!(
        out,
        "- network: {} MLP (same activation in every hidden layer, linear output; a gated layer of u units is a \
         Linear to 2u and the gated unit{}), softmax cross-entropy, {}, batch {}, {} epochs, seeds 1..={}; \
         initialisation per activation as `actgpu::nn::init` prescribes; the data, each run's initialisation and \
         its batch order start from seeds derived per purpose from the data seed and the run's seed \
         (`actgpu::study::seeds`), so no two share a random stream",
        arch(study),
        if study.options.match_params {
            ", with widths shrunk to match the plain parameter count (--match-params)"
        } else {
            ", the same u as the others"
        },
        optimizer_text(study),
        study.options.batch,
        study.options.epochs,
        study.options.seeds
    );
    let _ = writeln!(
        out,
        "- majority baseline: {:.3} test accuracy (always predicting class {}, the most frequent in training); \
         a kind not above it by more than the noise learned nothing from the input",
        baseline(study),
        class_text(&study.dataset, study.dataset.majority_class())
    );
    out.push_str(
        "\nRanked by final test accuracy (then test NLL); ~ marks a row within noise of the row above (the \
         reading's noise rule). Choosing a kind by this ranking is selection on the test set: choose by val acc \
         (validation accuracy).",
    );
    if study.options.seeds > 1 {
        out.push_str(" Values are mean ± sample standard deviation over seeds.");
    }
    let _ = write!(
        out,
        " Target accuracy for convergence: {}.\n\n",
        study.options.target
    );
    out.push_str(&markdown_table(study));
    out.push_str("\n## Reading\n\n");
    for line in reading(study) {
        let _ = writeln!(out, "- {line}");
    }
    out.push_str("\n## Plots\n\n");
    for (name, _) in figures(study) {
        let _ = writeln!(out, "![{name}]({name})");
    }
    out
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), StudyError> {
    std::fs::write(path, text).map_err(|source| StudyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `results.json`, `report.md` and the SVG charts into `dir` (created if missing); returns the paths
/// written.
pub fn write_outputs(study: &Study, dir: &Path) -> Result<Vec<std::path::PathBuf>, StudyError> {
    std::fs::create_dir_all(dir).map_err(|source| StudyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = vec![
        ("results.json", json(study)),
        ("report.md", markdown(study)),
    ];
    files.extend(figures(study));
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        write(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::datasets::{Dataset, DatasetKind};
    use crate::nn::LayerDiagnostics;
    use crate::study::candidate::Candidate;
    use crate::study::metrics::Scores;
    use crate::study::options::Options;
    use crate::study::plot::tests::assert_well_formed;
    use crate::study::run::{EpochRecord, RunRecord};
    use crate::study::summary::ranked;
    use crate::{Activation, Gated, Hidden, Learnable};

    fn layer(norm: f64) -> LayerDiagnostics {
        LayerDiagnostics {
            weight_grad_norm: norm,
            bias_grad_norm: norm / 2.0,
            units: 8,
            dead: 2,
            saturated: 1,
            neurons: 4,
            dead_neurons: 1,
            saturated_neurons: 0,
        }
    }

    fn study(seeds: u64) -> Study {
        study_of(
            seeds,
            vec![Activation::Relu.into(), Activation::Sigmoid.into()],
        )
    }

    pub(crate) fn study_of(seeds: u64, activations: Vec<Candidate>) -> Study {
        let options = Options {
            activations,
            epochs: 3,
            seeds,
            points: 4,
            test_points: 2,
            hidden: vec![4, 4],
            ..Options::default()
        };
        let mut runs = Vec::new();
        let mut summaries = Vec::new();
        for (k, &act) in options.activations.iter().enumerate() {
            let mine: Vec<RunRecord> = options
                .seed_list()
                .map(|seed| RunRecord {
                    activation: act,
                    sizes: vec![2, 4, 4, 3],
                    params: act.param_count(&[2, 4, 4, 3]),
                    act_params: match act.hidden() {
                        Hidden::Learnable { .. } => vec![vec![0.5, 0.25], vec![0.125]],
                        _ => Vec::new(),
                    },
                    seed,
                    initial: vec![layer(0.1), layer(0.5), layer(1.0)],
                    epochs: (0..3)
                        .map(|e| {
                            let acc = 0.5 + 0.2 * e as f64 - 0.3 * k as f64 + 0.01 * seed as f64;
                            let s = Scores {
                                accuracy: acc,
                                nll: 1.0 - acc,
                                ece: 0.05,
                            };
                            EpochRecord {
                                train: s,
                                test: s,
                                val: s,
                                layers: vec![layer(0.2); 3],
                                diagnosed_rows: 2,
                            }
                        })
                        .collect(),
                    step_s: vec![1e-3 * (k + 1) as f64],
                    wall_s: 1.0,
                })
                .collect();
            summaries.push(Summary::new(act, &mine, options.target));
            runs.extend(mine);
        }
        Study {
            dataset: Dataset::new(DatasetKind::Spirals, 4, 2, 1),
            options,
            command: "study --quick \"x\"".into(),
            adapter: "test adapter".into(),
            host_cpu: Some("Test CPU (x86_64, 2 threads)".into()),
            date: "2026-01-01 00:00 UTC".into(),
            runs,
            summaries: ranked(summaries),
            wall_s: 2.0,
            compile_s: 0.5,
        }
    }

    /// `study` with a built-in test set of `per_class` points per class instead of `study_of`'s 2 (the runs
    /// keep their numbers): on 6 points the reading's noise floor of 3 test points is half the accuracy.
    pub(crate) fn with_test_points(mut study: Study, per_class: usize) -> Study {
        study.dataset = Dataset::new(DatasetKind::Spirals, 4, per_class, 1);
        study
    }

    #[test]
    fn classes_without_a_test_row_are_named_with_their_rows() {
        let mut d = Dataset::new(DatasetKind::Spirals, 4, 10, 1);
        assert!(untested_classes(&d).is_empty());
        // Class 2's test rows relabelled: it keeps its training and validation rows, and no test row.
        for y in d.test_y.iter_mut().filter(|y| **y == 2) {
            *y = 0;
        }
        let rows = d
            .train_y
            .iter()
            .chain(&d.val_y)
            .filter(|&&y| y == 2)
            .count();
        assert_eq!(untested_classes(&d), vec![format!("2: {rows} rows")]);
    }

    #[test]
    fn table_markdown_and_reading() {
        for seeds in [1, 2] {
            let s = study(seeds);
            let t = table(&s);
            assert_eq!(t.lines().count(), 3);
            assert!(t.lines().nth(1).unwrap().contains("relu"));
            let md = markdown(&s);
            assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 3);
            assert!(md.contains("![loss.svg](loss.svg)"));
            let provenance = format!(
                "- actgpu {}, WGPU_BACKEND: {}\n",
                env!("CARGO_PKG_VERSION"),
                backend_setting()
            );
            assert!(md.contains(&provenance), "{md}");
            assert!(
                md.contains("- adapter: test adapter\n- host CPU: Test CPU (x86_64, 2 threads)\n"),
                "{md}"
            );
            assert!(
                md.contains("- majority baseline: 0.333 test accuracy (always predicting class 0"),
                "{md}"
            );
            let reading = reading(&s);
            assert!(reading[0].starts_with("Noise: "), "{reading:?}");
            let wide = reading_of_wide(seeds);
            assert!(
                wide.iter()
                    .any(|l| l.starts_with("Highest final test accuracy: **relu**")),
                "{wide:?}"
            );
            assert!(reading
                .iter()
                .any(|l| l.contains("Never reached it") && l.contains("sigmoid")));
            assert_eq!(seeds > 1, t.contains('±'));
        }
    }

    /// The reading of `study(seeds)` on 300 test points, where 3 points are 0.01 of accuracy.
    fn reading_of_wide(seeds: u64) -> Vec<String> {
        reading(&with_test_points(study(seeds), 100))
    }

    /// A CSV file's labels become classes by their sorted values: where they are not already `0..k-1`, the report,
    /// the reading and `results.json` say which label each class index stands for.
    #[test]
    fn the_report_says_which_label_became_which_class() {
        let mut s = with_test_points(study(1), 100);
        let md = markdown(&s);
        assert!(
            !md.contains("- classes"),
            "spirals' classes are their labels: {md}"
        );
        assert_eq!(class_mapping(&s.dataset), None);
        assert!(json(&s).contains("\"classes\": 3, \"class_labels\": [\"0\", \"1\", \"2\"],"));
        s.dataset.class_names = vec!["setosa".into(), "versi`color".into(), "virginica".into()];
        let md = markdown(&s);
        assert!(
            md.contains(
                "- classes (label -> class index, by the labels' sorted distinct values): `setosa` -> 0, \
                 ``versi`color`` -> 1, `virginica` -> 2\n"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "(always predicting class 0 (label `setosa`), the most frequent in training)"
            ),
            "{md}"
        );
        let noise = &reading(&s)[0];
        assert!(
            noise.contains(
                "(always predicting the most frequent training class, 0 (label `setosa`)):"
            ),
            "{noise}"
        );
        let j = json(&s);
        assert!(
            j.contains("\"class_labels\": [\"setosa\", \"versi`color\", \"virginica\"]")
                && j.contains("\"class\": 0, \"label\": \"setosa\","),
            "{j}"
        );
        // Labels 1 and 2 are classes 0 and 1: a reader must be told, or "class 1" reads as label 1.
        s.dataset.class_names = vec!["1".into(), "2".into(), "3".into()];
        assert_eq!(
            class_mapping(&s.dataset).as_deref(),
            Some("`1` -> 0, `2` -> 1, `3` -> 2")
        );
        // Many classes: the first CLASSES_NAMED, then how many more.
        s.dataset.class_names = (1..=25).map(|c| c.to_string()).collect();
        let many = class_mapping(&s.dataset).unwrap();
        assert!(
            many.ends_with(
                "`20` -> 19, and 5 more (`results.json` names every one: `dataset.class_labels`)"
            ),
            "{many}"
        );
        assert_eq!(
            (code("a"), code("`a"), code("a``b")),
            ("`a`".into(), "`` `a ``".into(), "```a``b```".into())
        );
    }

    #[test]
    fn rows_within_noise_of_the_row_above_are_marked() {
        let mut s = with_test_points(
            study_of(
                1,
                vec![
                    Activation::Relu.into(),
                    Activation::Gelu.into(),
                    Activation::Tanh.into(),
                ],
            ),
            100,
        );
        // 1.0, then 0.99 (3 points below: noise), then 0.97 (6 points below 0.99: not).
        for (k, a) in [1.0, 0.99, 0.97].into_iter().enumerate() {
            s.summaries[k].test_acc = Some((a, f64::NAN));
            s.summaries[k].val_acc = Some((a - 0.5, f64::NAN));
        }
        let marks: Vec<String> = (1..=3)
            .map(|r| cells(&s, r, &s.summaries[r - 1])[4].clone())
            .collect();
        assert_eq!(marks, ["", "~", ""]);
        assert_eq!(cells(&s, 2, &s.summaries[1])[5], "0.490");
        let md = markdown_table(&s);
        assert!(
            md.starts_with("| # | activation | params | test acc | ~ | val acc | acc last 3 |"),
            "{md}"
        );
        assert!(md.contains("| 0.990 | ~ | 0.490 |"), "{md}");
        // With two seeds the spread counts: 0.97 with a deviation of 0.03 is within noise of 0.99.
        s.summaries[2].test_acc = Some((0.97, 0.03));
        assert!(within_noise_of_previous(&s, 3));
        assert!(!within_noise_of_previous(&s, 1) && !within_noise_of_previous(&s, 4));
    }

    #[test]
    fn arch_names_each_architecture_that_ran() {
        let mut s = study(1);
        assert_eq!(arch(&s), "2-4-4-3");
        // --match-params: the gated kind ran narrower layers, and the report must not claim one architecture.
        s.summaries[1].sizes = vec![2, 3, 3, 3];
        assert_eq!(arch(&s), "2-4-4-3 (relu), 2-3-3-3 (sigmoid)");
        assert!(reading(&s)
            .iter()
            .any(|l| l.contains("architectures 2-4-4-3 (relu)")));
    }

    #[test]
    fn a_single_value_shows_no_spread() {
        assert_eq!(spread(Some((0.5, f64::NAN)), 3, true), "0.500");
        assert_eq!(spread(Some((0.5, 0.1)), 3, true), "0.500 ± 0.100");
        assert_eq!(spread(Some((0.5, 0.1)), 3, false), "0.500");
        // Three seeds, one of which reached the target: its epoch alone, no "± NaN" or "± 0".
        let mut s = study(3);
        s.summaries[0].epochs_to_target = Some((8.0, f64::NAN));
        s.summaries[0].reached = 1;
        s.summaries[0].test_acc = Some((0.9, f64::NAN));
        let row = cells(&s, 1, &s.summaries[0]);
        assert_eq!((row[3].as_str(), row[10].as_str()), ("0.900", "8.0 (1/3)"));
        let t = table(&s);
        assert!(!t.contains("NaN") && !t.contains("± 0.0 "), "{t}");
    }

    #[test]
    fn json_has_a_row_per_activation_and_balanced_brackets() {
        let s = study(2);
        let j = json(&s);
        assert_eq!(j.matches("\"rank\":").count(), 2);
        assert_eq!(j.matches("\"timed_steps\": ").count(), 4);
        assert_eq!(j.matches("\"diagnosed_rows\": 2,").count(), 4 * 3);
        assert!(j.contains("\"command\": \"study --quick \\\"x\\\"\""));
        assert!(j.contains(&format!(
            "\"actgpu_version\": \"{}\",\n  \"wgpu_backend\": \"{}\",",
            env!("CARGO_PKG_VERSION"),
            backend_setting()
        )));
        // Outside strings, brackets and braces nest properly.
        let (mut stack, mut in_str, mut esc) = (Vec::new(), false, false);
        for c in j.chars() {
            match (in_str, esc, c) {
                (true, true, _) => esc = false,
                (true, false, '\\') => esc = true,
                (true, false, '"') | (false, _, '"') => in_str = !in_str,
                (false, _, '{' | '[') => stack.push(c),
                (false, _, '}') => assert_eq!(stack.pop(), Some('{')),
                (false, _, ']') => assert_eq!(stack.pop(), Some('[')),
                _ => {}
            }
        }
        assert!(stack.is_empty() && !in_str);
        assert!(!j.contains("NaN") && !j.contains("inf"));
    }

    #[test]
    fn gated_and_learnable_rows_have_params_and_null_dead_counts() {
        let prelu = Candidate(Hidden::learnable(Learnable::Prelu, false));
        let s = study_of(
            1,
            vec![Activation::Relu.into(), Gated::SWIGLU.into(), prelu],
        );
        let j = json(&s);
        // relu is counted, swiglu and prelu are not: 2 nulls each per row, and per run every hidden layer of
        // every epoch and of the first step (2 hidden layers x (3 epochs + 1) x 2 fields).
        assert_eq!(j.matches("\"dead_fraction\": null").count(), 2 + 2 * 2 * 4);
        assert_eq!(
            j.matches("\"saturated_fraction\": null").count(),
            2 + 2 * 2 * 4
        );
        assert!(j.contains("\"family\": \"gated\""));
        assert!(j.contains(&format!(
            "\"params\": {}",
            Candidate::from(Gated::SWIGLU).param_count(&[2, 4, 4, 3])
        )));
        assert!(j.contains(
            "\"activation_params\": [{\"name\": \"slope\", \"init\": 2.5e-1, \"mean\": 3.75e-1"
        ));
        assert_eq!(j.matches("\"activation_params\": null").count(), 2 + 2);
        let t = table(&s);
        let row = |name: &str| t.lines().find(|l| l.contains(name)).unwrap().to_string();
        assert!(
            row("swiglu").contains(" -  ") && row("prelu").contains(" -  "),
            "{t}"
        );
        assert!(!row("relu ").contains(" - "), "{t}");
        let reading = reading(&s);
        assert!(
            reading
                .iter()
                .any(|l| l.starts_with("Parameters:") && l.contains("same widths")),
            "{reading:?}"
        );
        assert!(
            reading
                .iter()
                .any(|l| l.contains("prelu slope 0.25 -> 0.375, 0.125")),
            "{reading:?}"
        );
        let plain_only = self::reading(&study(1));
        assert!(!plain_only
            .iter()
            .any(|l| l.starts_with("Parameters:") || l.starts_with("Learnable")));
    }

    #[test]
    fn figures_are_well_formed_svg() {
        let s = study(2);
        let figs = figures(&s);
        assert_eq!(figs.len(), 5);
        for (name, svg) in figs {
            assert_well_formed(&svg);
            if name != "ece.svg" {
                assert_eq!(svg.matches("<path class=\"series\"").count(), 2, "{name}");
            }
        }
    }
}
