//! The study's charts, built from the summaries with [`crate::study::plot`]: training loss and test accuracy
//! per epoch, ECE per activation, and the gradient norm per layer (at the first step and over training).
//!
//! The test accuracy chart draws two guides: the majority-class baseline (the test accuracy of always predicting
//! the most frequent training class, [`crate::datasets::Dataset::majority_accuracy`]) and the target accuracy
//! (`--target`). A kind with a diverged run keeps its legend entry, marked `(diverged)` (or `(k/n runs
//! diverged)`), but its curves over training are not drawn: a diverged run's accuracy counts every non-finite
//! row as wrong, and a mean over runs with it would draw a plausible-looking curve. Its gradient norm at
//! initialisation, measured before any step, is drawn, with the legend saying that it diverged in training.

use crate::study::plot::{Bar, BarChart, Guide, LineChart, Series};
use crate::study::summary::Summary;
use crate::study::Study;

/// The charts' file names, in the order [`figures`] gives them.
pub const FILES: [&str; 5] = [
    "loss.svg",
    "accuracy.svg",
    "ece.svg",
    "grad_norm.svg",
    "grad_norm_init.svg",
];

/// What the legend adds to a kind's name for its diverged runs: nothing without one, ` (diverged)` when every
/// run diverged, ` (k/n runs diverged)` when some did; `when` follows `diverged` (` in training`).
pub fn diverged_mark(s: &Summary, when: &str) -> String {
    match (s.diverged, s.runs) {
        (0, _) => String::new(),
        (k, n) if k >= n => format!(" (diverged{when})"),
        (k, n) => format!(" ({k}/{n} runs diverged{when})"),
    }
}

/// One series per summary from `values` (entry `i` at x = `i + 1`: an epoch, a layer). A kind with a diverged
/// run has its name marked ([`diverged_mark`]) and no points, unless `before_training` (values measured before
/// the first step, which its divergence does not touch: drawn, the mark saying `in training`).
fn series(
    summaries: &[Summary],
    values: fn(&Summary) -> &Vec<f64>,
    before_training: bool,
) -> Vec<Series> {
    summaries
        .iter()
        .map(|x| {
            let mark = diverged_mark(x, if before_training { " in training" } else { "" });
            let draw = before_training || mark.is_empty();
            Series {
                name: format!("{}{mark}", x.activation.name()),
                points: values(x)
                    .iter()
                    .enumerate()
                    .filter(|_| draw)
                    .map(|(i, &v)| ((i + 1) as f64, v))
                    .collect(),
            }
        })
        .collect()
}

/// `(file name, SVG text)` of every chart of `study`, in the order of [`FILES`].
pub fn figures(study: &Study) -> Vec<(&'static str, String)> {
    let s = &study.summaries;
    let seeds = match study.options.seeds {
        1 => String::new(),
        k => format!(", mean of {k} seeds"),
    };
    let dataset = study.dataset.source.name();
    let loss = LineChart {
        title: format!("training loss (cross-entropy over the training set), {dataset}{seeds}"),
        x_label: "epoch".into(),
        y_label: "training loss (nats, log scale)".into(),
        log_y: true,
        integer_x: true,
        guides: Vec::new(),
        series: series(s, |x| &x.train_loss_curve, false),
    };
    let accuracy = LineChart {
        title: format!("test accuracy, {dataset}{seeds}"),
        x_label: "epoch".into(),
        y_label: "test accuracy".into(),
        log_y: false,
        integer_x: true,
        guides: vec![
            Guide {
                label: "baseline (majority class)".into(),
                y: study.dataset.majority_accuracy(&study.dataset.test_y),
            },
            Guide {
                label: format!("target accuracy ({})", study.options.target),
                y: study.options.target,
            },
        ],
        series: series(s, |x| &x.test_acc_curve, false),
    };
    let ece = BarChart {
        title: format!("expected calibration error on the test set (15 bins), {dataset}{seeds}, ranked by accuracy"),
        y_label: "ECE".into(),
        bars: s
            .iter()
            .map(|x| Bar {
                label: x.activation.name(),
                value: x.test_ece.map_or(f64::NAN, |(m, _)| m),
                err: x.test_ece.map(|(_, sd)| sd).filter(|_| study.options.seeds > 1),
            })
            .collect(),
    };
    let grad = LineChart {
        title: format!(
            "gradient norm per layer, mean over each epoch's last full batch, {dataset}{seeds}"
        ),
        x_label: "layer (1 = input layer, last = linear output layer)".into(),
        y_label: "gradient norm sqrt(‖dW‖² + ‖db‖²) (log scale)".into(),
        log_y: true,
        integer_x: true,
        guides: Vec::new(),
        series: series(s, |x| &x.grad_norm, false),
    };
    let grad_init = LineChart {
        title: format!(
            "gradient norm per layer at the first step (initialisation), {dataset}{seeds}"
        ),
        series: series(s, |x| &x.initial_grad_norm, true),
        ..grad.clone()
    };
    let svgs = [
        loss.svg(),
        accuracy.svg(),
        ece.svg(),
        grad.svg(),
        grad_init.svg(),
    ];
    FILES.into_iter().zip(svgs).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::report::tests::study_of;
    use crate::Activation;

    fn svg<'a>(figures: &'a [(&str, String)], name: &str) -> &'a str {
        &figures.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn accuracy_chart_draws_the_baseline_and_the_target() {
        let study = study_of(1, vec![Activation::Relu.into(), Activation::Sigmoid.into()]);
        let f = figures(&study);
        assert_eq!(f.iter().map(|(n, _)| *n).collect::<Vec<_>>(), FILES);
        let acc = svg(&f, "accuracy.svg");
        assert_eq!(acc.matches("<line class=\"guide\"").count(), 2, "{acc}");
        assert!(acc.contains(">baseline (majority class)</text>"), "{acc}");
        assert!(acc.contains(">target accuracy (0.9)</text>"), "{acc}");
        // No other chart has guides.
        for name in ["loss.svg", "grad_norm.svg", "grad_norm_init.svg"] {
            assert!(!svg(&f, name).contains("class=\"guide\""), "{name}");
        }
    }

    #[test]
    fn epochs_and_layers_tick_only_whole_numbers() {
        // study_of: 3 epochs, 3 layers; nice ticks over 1..3 would be 1, 1.5, 2, 2.5, 3.
        let study = study_of(1, vec![Activation::Relu.into()]);
        for (name, chart) in figures(&study) {
            if name == "ece.svg" {
                continue;
            }
            for l in chart
                .lines()
                .filter(|l| l.contains("stroke=\"black\"/><text"))
            {
                let label = &l[l.rfind("\">").unwrap() + 2..l.rfind("</text>").unwrap()];
                assert!(label.parse::<u32>().is_ok(), "{name}: tick {label}");
            }
        }
    }

    #[test]
    fn a_diverged_kind_is_named_but_not_drawn() {
        let mut study = study_of(2, vec![Activation::Relu.into(), Activation::Sigmoid.into()]);
        for x in &mut study.summaries {
            if x.activation == Activation::Sigmoid.into() {
                x.diverged = x.runs;
            }
        }
        let f = figures(&study);
        for name in ["loss.svg", "accuracy.svg", "grad_norm.svg"] {
            let chart = svg(&f, name);
            assert!(chart.contains(">sigmoid (diverged)</text>"), "{name}");
            assert_eq!(chart.matches("<path class=\"series\"").count(), 1, "{name}");
            assert!(!chart.contains("<title>sigmoid"), "{name}");
        }
        // Its gradient at initialisation, before any step, is drawn, and said to belong to a diverged kind.
        let init = svg(&f, "grad_norm_init.svg");
        assert_eq!(init.matches("<path class=\"series\"").count(), 2);
        assert!(init.contains(">sigmoid (diverged in training)</text>"));
        // One run of two.
        for x in &mut study.summaries {
            if x.activation == Activation::Sigmoid.into() {
                x.diverged = 1;
            }
        }
        let f = figures(&study);
        assert!(svg(&f, "accuracy.svg").contains(">sigmoid (1/2 runs diverged)</text>"));
    }
}
