//! The study's charts, built from the summaries with [`crate::study::plot`]: training loss and test accuracy
//! per epoch, ECE per activation, and the gradient norm per layer (at the first step and over training).

use crate::study::plot::{Bar, BarChart, LineChart, Series};
use crate::study::Study;

/// `(file name, SVG text)` of every chart of `study`.
pub fn figures(study: &Study) -> Vec<(&'static str, String)> {
    let s = &study.summaries;
    let curve = |f: fn(&crate::study::summary::Summary) -> &Vec<f64>| -> Vec<Series> {
        s.iter()
            .map(|x| Series {
                name: x.activation.name(),
                points: f(x)
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| ((i + 1) as f64, v))
                    .collect(),
            })
            .collect()
    };
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
        series: curve(|x| &x.train_loss_curve),
    };
    let accuracy = LineChart {
        title: format!("test accuracy, {dataset}{seeds}"),
        x_label: "epoch".into(),
        y_label: "test accuracy".into(),
        log_y: false,
        series: curve(|x| &x.test_acc_curve),
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
    let per_layer = |f: fn(&crate::study::summary::Summary) -> &Vec<f64>| -> Vec<Series> {
        s.iter()
            .map(|x| Series {
                name: x.activation.name(),
                points: f(x)
                    .iter()
                    .enumerate()
                    .map(|(l, &v)| ((l + 1) as f64, v))
                    .collect(),
            })
            .collect()
    };
    let grad = LineChart {
        title: format!(
            "gradient norm per layer, mean over each epoch's last full batch, {dataset}{seeds}"
        ),
        x_label: "layer (1 = input layer, last = linear output layer)".into(),
        y_label: "gradient norm sqrt(‖dW‖² + ‖db‖²) (log scale)".into(),
        log_y: true,
        series: per_layer(|x| &x.grad_norm),
    };
    let grad_init = LineChart {
        title: format!(
            "gradient norm per layer at the first step (initialisation), {dataset}{seeds}"
        ),
        series: per_layer(|x| &x.initial_grad_norm),
        ..grad.clone()
    };
    vec![
        ("loss.svg", loss.svg()),
        ("accuracy.svg", accuracy.svg()),
        ("ece.svg", ece.svg()),
        ("grad_norm.svg", grad.svg()),
        ("grad_norm_init.svg", grad_init.svg()),
    ]
}
