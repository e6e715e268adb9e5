//! The study's outputs: the ranked table (text and Markdown), an automatic reading of it, `results.json` with
//! every number, and [`write_outputs`] which puts them and the charts in a directory.
//!
//! Table columns: the network's trained parameters (weights, biases, learnable activation parameters; a gated
//! layer's linear map is twice as wide, so without `--match-params` a gated network has about twice as many),
//! final test accuracy, test NLL and ECE (see [`crate::study::metrics`]), final training loss
//! (over the whole training set), epochs until the test accuracy first reached the target (with how many runs
//! reached it), median wall time per training step, the fractions of hidden pre-activations with `f'(z) = 0`
//! ("dead" in [`crate::nn::diagnostics`]: no gradient flows through them on that batch; for the ReLU family
//! this includes every inactive unit, not only units dead for good) and with `0 < |f'(z)| < 1e-3`
//! (saturated), over every epoch's last step (`-` for gated and learnable kinds: the kernels count them only
//! for plain activations; `null` in `results.json`), and the gradient flow at initialisation:
//! `‖g_1‖ / ‖g_L‖`, the first layer's gradient norm over the output layer's at the first step (well below 1:
//! the gradient shrinks on its way to the input).

use std::fmt::Write;
use std::path::Path;

use crate::bench::report::{json_num, json_str};
use crate::nn::LayerDiagnostics;
use crate::study::figures::figures;
use crate::study::summary::{ParamStats, Spread, Summary};
use crate::study::{Study, StudyError};

/// The table's column titles.
pub const COLUMNS: [&str; 12] = [
    "#",
    "activation",
    "params",
    "test acc",
    "test NLL",
    "ECE",
    "train loss",
    "epochs to target",
    "ms/step",
    "f'=0 %",
    "sat %",
    "‖g1‖/‖gL‖ init",
];

pub(crate) fn spread(s: Spread, digits: usize, with_sd: bool) -> String {
    match s {
        None => "-".into(),
        Some((m, sd)) if with_sd => format!("{m:.digits$} ± {sd:.digits$}"),
        Some((m, _)) => format!("{m:.digits$}"),
    }
}

/// `‖g_1‖ / ‖g_L‖` at the first step, if both are there and the last is not zero.
pub fn init_flow(s: &Summary) -> Option<f64> {
    let g = &s.initial_grad_norm;
    match (g.first(), g.last()) {
        (Some(&a), Some(&b)) if g.len() > 1 && b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

/// The cells of one row (rank is 1-based).
pub fn cells(study: &Study, rank: usize, s: &Summary) -> [String; 12] {
    let sd = study.options.seeds > 1;
    let to_target = match s.epochs_to_target {
        None => format!("never (0/{})", s.runs),
        Some((m, d)) if sd => format!("{m:.1} ± {d:.1} ({}/{})", s.reached, s.runs),
        Some((m, _)) => format!("{m:.0}"),
    };
    [
        rank.to_string(),
        s.activation.name(),
        s.params.to_string(),
        spread(s.test_acc, 3, sd),
        spread(s.test_nll, 3, sd),
        spread(s.test_ece, 3, sd),
        spread(s.train_loss, 3, sd),
        to_target,
        s.step_s.map_or("-".into(), |t| format!("{:.2}", t * 1e3)),
        s.dead.map_or("-".into(), |d| format!("{:.1}", 100.0 * d)),
        s.saturated
            .map_or("-".into(), |d| format!("{:.1}", 100.0 * d)),
        init_flow(s).map_or("-".into(), |r| format!("{r:.3}")),
    ]
}

/// The ranked table as aligned text.
pub fn table(study: &Study) -> String {
    aligned(&header_and_rows(study))
}

/// The column titles, then one row of cells per summary, best first.
fn header_and_rows(study: &Study) -> Vec<[String; 12]> {
    let mut rows: Vec<[String; 12]> = vec![COLUMNS.map(String::from)];
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

fn mean(s: Spread) -> Option<f64> {
    s.map(|(m, _)| m)
}

/// The summary with the smallest (`largest == false`) or largest value of `key`, skipping missing ones.
fn extreme(
    study: &Study,
    key: impl Fn(&Summary) -> Option<f64>,
    largest: bool,
) -> Option<(&Summary, f64)> {
    study
        .summaries
        .iter()
        .filter_map(|s| key(s).filter(|v| v.is_finite()).map(|v| (s, v)))
        .reduce(|a, b| {
            let better = if largest { b.1 > a.1 } else { b.1 < a.1 };
            if better {
                b
            } else {
                a
            }
        })
}

/// A short automatic reading of the results: best and worst, convergence, calibration, dead and saturated
/// units, gradient flow and cost, and what the setup cannot show. One Markdown bullet per line.
pub fn reading(study: &Study) -> Vec<String> {
    let o = &study.options;
    let mut lines = Vec::new();
    let s = &study.summaries;
    if let (Some(best), Some(worst)) = (s.first(), s.last()) {
        let (b, w) = (
            mean(best.test_acc).unwrap_or(f64::NAN),
            mean(worst.test_acc).unwrap_or(f64::NAN),
        );
        let close: Vec<String> = s
            .iter()
            .filter(|x| mean(x.test_acc).is_some_and(|a| b - a <= 0.01))
            .map(|x| x.activation.name())
            .collect();
        lines.push(format!(
            "Highest final test accuracy: **{}** ({b:.3}); {} within 0.01 of it: {}. Lowest: **{}** ({w:.3}).",
            best.activation,
            close.len(),
            close.join(", "),
            worst.activation
        ));
    }
    let reached: Vec<&Summary> = s.iter().filter(|x| x.reached > 0).collect();
    if let Some((_, e)) = extreme(study, |x| mean(x.epochs_to_target), false) {
        let never: Vec<String> = s
            .iter()
            .filter(|x| x.reached == 0)
            .map(|x| x.activation.name())
            .collect();
        let ties: Vec<String> = reached
            .iter()
            .filter(|x| mean(x.epochs_to_target) == Some(e))
            .map(|x| x.activation.name())
            .collect();
        lines.push(format!(
            "Fastest to {:.0}% test accuracy: {} ({e:.1} epochs, {} steps of {}){}.{}",
            100.0 * o.target,
            ties.join(", "),
            (e * o
                .train_config()
                .steps_per_epoch(study.dataset.train_y.len()) as f64)
                .round(),
            o.batch,
            if ties.len() > 1 { ", tied" } else { "" },
            if never.is_empty() {
                String::new()
            } else {
                format!(
                    " Never reached it in {} epochs: {}.",
                    o.epochs,
                    never.join(", ")
                )
            }
        ));
    } else {
        lines.push(format!(
            "No activation reached {:.0}% test accuracy in {} epochs.",
            100.0 * o.target,
            o.epochs
        ));
    }
    if let (Some((lo, l)), Some((hi, h))) = (
        extreme(study, |x| mean(x.test_ece), false),
        extreme(study, |x| mean(x.test_ece), true),
    ) {
        lines.push(format!(
            "Best calibrated (lowest ECE): {} ({l:.3}); worst: {} ({h:.3}).",
            lo.activation, hi.activation
        ));
    }
    if let Some((d, v)) = extreme(study, |x| x.dead, true) {
        let any: Vec<String> = s
            .iter()
            .filter_map(|x| x.dead.filter(|&d| d >= 0.05).map(|d| (x, d)))
            .map(|(x, d)| format!("{} {:.0}%", x.activation, 100.0 * d))
            .collect();
        lines.push(if v > 0.0 {
            format!(
                "Largest share of hidden pre-activations with f'(z) = 0 (no gradient through them on the epoch's \
                 last batch; for ReLU-like units that is every inactive unit, not only units dead for good): {} \
                 ({:.1}%). At least 5%: {}.",
                d.activation,
                100.0 * v,
                if any.is_empty() { "none".into() } else { any.join(", ") }
            )
        } else {
            "No activation had hidden pre-activations with f'(z) = 0.".into()
        });
        let uncounted: Vec<String> = s
            .iter()
            .filter(|x| x.dead.is_none())
            .map(|x| x.activation.name())
            .collect();
        if !uncounted.is_empty() {
            if let Some(last) = lines.last_mut() {
                let _ = write!(
                    last,
                    " Not counted (the kernels count plain activations only; \"-\" in the table): {}.",
                    uncounted.join(", ")
                );
            }
        }
    }
    if let Some((d, v)) = extreme(study, |x| x.saturated, true) {
        if v > 0.0 {
            lines.push(format!(
                "Most saturated hidden units (0 < |f'(z)| < 1e-3): {} ({:.1}%).",
                d.activation,
                100.0 * v
            ));
        }
    }
    if let (Some((lo, l)), Some((hi, h))) = (
        extreme(study, init_flow, false),
        extreme(study, init_flow, true),
    ) {
        lines.push(format!(
            "Gradient reaching the first layer at initialisation, relative to the output layer: smallest for {} \
             ({l:.3}), largest for {} ({h:.3}).",
            lo.activation, hi.activation
        ));
    }
    if let Some(line) = parameters_line(study) {
        lines.push(line);
    }
    if let Some(line) = learnable_line(study) {
        lines.push(line);
    }
    if let (Some((lo, l)), Some((hi, h))) = (
        extreme(study, |x| x.step_s, false),
        extreme(study, |x| x.step_s, true),
    ) {
        lines.push(format!(
            "Cost: the cheapest step was {} ({:.2} ms), the dearest {} ({:.2} ms), {:.2}x; at this size a step is \
             mostly fixed overhead (submission, dispatches, waiting), so these times say little about the \
             activation's own arithmetic (see BENCHMARKS.md for that).",
            lo.activation,
            l * 1e3,
            hi.activation,
            h * 1e3,
            h / l
        ));
    }
    lines.push(format!(
        "Scope: one {} dataset of {} training points{}, one architecture ({}), {}, {} epochs, {} \
         seed{}. {}Differences smaller than the seed-to-seed spread, or than a few test points ({} points: one \
         is {:.3} of accuracy), are not evidence of a difference between activations.",
        study.dataset.kind,
        study.dataset.train_y.len(),
        scale_text(o.input_scale),
        arch(study),
        optimizer_text(study),
        o.epochs,
        o.seeds,
        if o.seeds == 1 { "" } else { "s" },
        if o.seeds == 1 {
            "With one seed there is no spread to compare against. "
        } else {
            ""
        },
        study.dataset.test_y.len(),
        1.0 / study.dataset.test_y.len().max(1) as f64
    ));
    lines
}

/// The reading's line on parameter counts when the study mixes plain and gated kinds: what a gated layer
/// costs and whether `--match-params` evened it out.
fn parameters_line(study: &Study) -> Option<String> {
    let s = &study.summaries;
    let plain = s.iter().find(|x| x.activation.family() == "plain")?;
    let gated = s.iter().find(|x| x.activation.family() == "gated")?;
    let widths = |x: &Summary| {
        x.sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-")
    };
    let ratio = gated.params as f64 / plain.params.max(1) as f64;
    Some(if study.options.match_params {
        format!(
            "Parameters: with --match-params the gated networks are {} ({} parameters, {ratio:.2}x the plain \
             {} network's {}): every hidden width scaled by one factor so the counts match, so they are narrower \
             rather than bigger. Learnable kinds keep the plain widths (one extra parameter per layer, or one per \
             unit).",
            widths(gated),
            gated.params,
            widths(plain),
            plain.params
        )
    } else {
        format!(
            "Parameters: every kind has the same widths u, and a gated layer's linear map is 2u wide, so the \
             gated networks have {} parameters against {} for the plain ones ({ratio:.2}x): any edge they show \
             may come from size alone (--match-params compares them at about the same count). Learnable kinds \
             add one parameter per layer, or one per unit.",
            gated.params, plain.params
        )
    })
}

/// The reading's line on the learnable activations' trained parameters (mean per hidden layer, from the
/// initial value), when any learnable kind ran.
fn learnable_line(study: &Study) -> Option<String> {
    let parts: Vec<String> = study
        .summaries
        .iter()
        .filter(|x| !x.act_params.is_empty())
        .filter_map(|x| {
            let label = x.activation.param_label()?;
            let crate::Hidden::Learnable { init, .. } = x.activation.hidden() else {
                return None;
            };
            let means: Vec<String> = x
                .act_params
                .iter()
                .map(|p| format!("{:.3}", p.mean))
                .collect();
            Some(format!(
                "{} {label} {init} -> {}",
                x.activation,
                means.join(", ")
            ))
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "Learnable parameters after training (mean per hidden layer, input side first, from their initial \
         value): {}. These are the values the optimizer reached on this one task and schedule, not evidence \
         of a better fixed setting.",
        parts.join("; ")
    ))
}

/// `2-64-64-64-3`: the layer sizes.
pub fn arch(study: &Study) -> String {
    let sizes = study.options.train_config().sizes(&study.dataset);
    sizes
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("-")
}

/// ", features scaled by S" for an `--input-scale` other than 1, else nothing.
fn scale_text(scale: f32) -> String {
    if scale == 1.0 {
        String::new()
    } else {
        format!(", features scaled by {scale}")
    }
}

fn optimizer_text(study: &Study) -> String {
    match study.options.optimizer() {
        crate::Optimizer::Adam(a) => format!("Adam at lr {}", a.lr),
        crate::Optimizer::Sgd(s) => format!("SGD (momentum {}) at lr {}", s.momentum, s.lr),
    }
}

/// `report.md`: the setup, the table, the reading and links to the charts.
pub fn markdown(study: &Study) -> String {
    let mut out = String::from("# Activation study\n\n");
    let _ = writeln!(out, "- command: `{}`", study.command);
    let _ = writeln!(out, "- adapter: {}", study.adapter);
    let _ = writeln!(
        out,
        "- date: {}; the whole study took {:.0} s; creating its pipelines took {:.0} s of thread time, in \
         parallel before the runs",
        study.date, study.wall_s, study.compile_s
    );
    let _ = writeln!(
        out,
        "- data: {} ({} classes), {} training and {} test points, data seed {}{}",
        study.dataset.kind,
        study.dataset.classes,
        study.dataset.train_y.len(),
        study.dataset.test_y.len(),
        study.options.data_seed,
        scale_text(study.options.input_scale)
    );
    let _ = writeln!(
        out,
        "- network: {} MLP (same activation in every hidden layer, linear output; a gated layer of u units is a \
         Linear to 2u and the gated unit{}), softmax cross-entropy, {}, batch {}, {} epochs, seeds 1..={}; \
         initialisation per activation as `actgpu::nn::init` prescribes",
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
    out.push_str("\nRanked by final test accuracy (then test NLL).");
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

fn json_array(values: &[f64]) -> String {
    let v: Vec<String> = values.iter().map(|&x| json_num(x)).collect();
    format!("[{}]", v.join(", "))
}

pub(crate) fn json_spread(s: Spread) -> String {
    match s {
        Some((m, sd)) => format!("{{\"mean\": {}, \"std\": {}}}", json_num(m), json_num(sd)),
        None => "null".into(),
    }
}

fn json_opt(v: Option<f64>) -> String {
    v.map_or("null".into(), json_num)
}

/// Per-layer diagnostics; `dead_fraction` and `saturated_fraction` are `null` for the hidden layers (all but the
/// last) when `counted` is false (gated and learnable kinds, which the kernels do not count).
fn json_layers(layers: &[LayerDiagnostics], counted: bool) -> String {
    let hidden = layers.len().saturating_sub(1);
    let v: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let counted = counted || i >= hidden;
            format!(
                "{{\"weight_grad_norm\": {}, \"bias_grad_norm\": {}, \"dead_fraction\": {}, \"saturated_fraction\": {}}}",
                json_num(l.weight_grad_norm),
                json_num(l.bias_grad_norm),
                json_opt(Some(l.dead_fraction()).filter(|_| counted)),
                json_opt(Some(l.saturated_fraction()).filter(|_| counted))
            )
        })
        .collect();
    format!("[{}]", v.join(", "))
}

fn json_usizes(values: &[usize]) -> String {
    let v: Vec<String> = values.iter().map(usize::to_string).collect();
    format!("[{}]", v.join(", "))
}

/// A row's learnable parameters: `null`, or one `{name, init, mean, min, max}` per hidden layer.
fn json_act_params(s: &Summary) -> String {
    let (Some(label), crate::Hidden::Learnable { init, .. }) =
        (s.activation.param_label(), s.activation.hidden())
    else {
        return "null".into();
    };
    let v: Vec<String> = s
        .act_params
        .iter()
        .map(|p: &ParamStats| {
            format!(
                "{{\"name\": {}, \"init\": {}, \"mean\": {}, \"min\": {}, \"max\": {}}}",
                json_str(label),
                json_num(f64::from(init)),
                json_num(p.mean),
                json_num(p.min),
                json_num(p.max)
            )
        })
        .collect();
    format!("[{}]", v.join(", "))
}

/// `results.json`: the setup, one row per activation (ranked) with its summary, and every run's epochs.
pub fn json(study: &Study) -> String {
    let o = &study.options;
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"command\": {},", json_str(&study.command));
    let _ = writeln!(out, "  \"adapter\": {},", json_str(&study.adapter));
    let _ = writeln!(out, "  \"date\": {},", json_str(&study.date));
    let _ = writeln!(out, "  \"wall_s\": {},", json_num(study.wall_s));
    let _ = writeln!(out, "  \"compile_s\": {},", json_num(study.compile_s));
    let _ = writeln!(
        out,
        "  \"dataset\": {{\"name\": {}, \"classes\": {}, \"train_points\": {}, \"test_points\": {}, \"seed\": {}, \
         \"input_scale\": {}}},",
        json_str(study.dataset.kind.name()),
        study.dataset.classes,
        study.dataset.train_y.len(),
        study.dataset.test_y.len(),
        o.data_seed,
        json_num(f64::from(o.input_scale))
    );
    let _ = writeln!(
        out,
        "  \"config\": {{\"sizes\": {}, \"optimizer\": {}, \"batch\": {}, \"epochs\": {}, \"seeds\": {}, \"target\": {}, \"steps_per_epoch\": {}, \"match_params\": {}}},",
        json_array(&o.train_config().sizes(&study.dataset).iter().map(|&v| v as f64).collect::<Vec<_>>()),
        json_str(&optimizer_text(study)),
        o.batch,
        o.epochs,
        o.seeds,
        json_num(o.target),
        o.train_config().steps_per_epoch(study.dataset.train_y.len()),
        o.match_params
    );
    out.push_str("  \"rows\": [\n");
    let rows: Vec<String> = study
        .summaries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "    {{\"rank\": {}, \"activation\": {}, \"family\": {}, \"sizes\": {}, \"params\": {}, \"runs\": {}, \"test_acc\": {}, \"test_nll\": {}, \"test_ece\": {}, \
                 \"val_acc\": {}, \"val_nll\": {}, \"train_loss\": {}, \"epochs_to_target\": {}, \"reached_target\": {}, \"step_s_median\": {}, \
                 \"dead_fraction\": {}, \"saturated_fraction\": {}, \"init_flow\": {}, \"train_loss_curve\": {}, \
                 \"test_acc_curve\": {}, \"initial_grad_norm\": {}, \"grad_norm\": {}, \"activation_params\": {}}}",
                i + 1,
                json_str(&s.activation.name()),
                json_str(s.activation.family()),
                json_usizes(&s.sizes),
                s.params,
                s.runs,
                json_spread(s.test_acc),
                json_spread(s.test_nll),
                json_spread(s.test_ece),
                json_spread(s.val_acc),
                json_spread(s.val_nll),
                json_spread(s.train_loss),
                json_spread(s.epochs_to_target),
                s.reached,
                s.step_s.map_or("null".into(), json_num),
                json_opt(s.dead),
                json_opt(s.saturated),
                init_flow(s).map_or("null".into(), json_num),
                json_array(&s.train_loss_curve),
                json_array(&s.test_acc_curve),
                json_array(&s.initial_grad_norm),
                json_array(&s.grad_norm),
                json_act_params(s)
            )
        })
        .collect();
    out.push_str(&rows.join(",\n"));
    out.push_str("\n  ],\n  \"runs\": [\n");
    let runs: Vec<String> = study
        .runs
        .iter()
        .map(|r| {
            let epochs: Vec<String> = r
                .epochs
                .iter()
                .enumerate()
                .map(|(e, x)| {
                    format!(
                        "{{\"epoch\": {}, \"train_loss\": {}, \"train_acc\": {}, \"test_nll\": {}, \"test_acc\": {}, \
                         \"test_ece\": {}, \"val_nll\": {}, \"val_acc\": {}, \"layers\": {}}}",
                        e + 1,
                        json_num(x.train.nll),
                        json_num(x.train.accuracy),
                        json_num(x.test.nll),
                        json_num(x.test.accuracy),
                        json_num(x.test.ece),
                        json_num(x.val.nll),
                        json_num(x.val.accuracy),
                        json_layers(&x.layers, r.activation.counts_dead())
                    )
                })
                .collect();
            let act_params = if r.act_params.is_empty() {
                "null".to_string()
            } else {
                let layers: Vec<String> = r
                    .act_params
                    .iter()
                    .map(|p| json_array(&p.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()))
                    .collect();
                format!("[{}]", layers.join(", "))
            };
            format!(
                "    {{\"activation\": {}, \"seed\": {}, \"params\": {}, \"activation_params\": {}, \"wall_s\": {}, \
                 \"step_s_median\": {}, \"timed_steps\": {}, \"initial_layers\": {}, \"epochs\": [\n      {}\n    ]}}",
                json_str(&r.activation.name()),
                r.seed,
                r.params,
                act_params,
                json_num(r.wall_s),
                crate::study::metrics::median(&r.step_s).map_or("null".into(), json_num),
                r.step_s.len(),
                json_layers(&r.initial, r.activation.counts_dead()),
                epochs.join(",\n      ")
            )
        })
        .collect();
    out.push_str(&runs.join(",\n"));
    out.push_str("\n  ]\n}\n");
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
            date: "2026-01-01 00:00 UTC".into(),
            runs,
            summaries: ranked(summaries),
            wall_s: 2.0,
            compile_s: 0.5,
        }
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
            let reading = reading(&s);
            assert!(reading[0].contains("**relu**"), "{reading:?}");
            assert!(reading
                .iter()
                .any(|l| l.contains("Never reached it") && l.contains("sigmoid")));
            assert_eq!(seeds > 1, t.contains('±'));
        }
    }

    #[test]
    fn json_has_a_row_per_activation_and_balanced_brackets() {
        let s = study(2);
        let j = json(&s);
        assert_eq!(j.matches("\"rank\":").count(), 2);
        assert_eq!(j.matches("\"timed_steps\": ").count(), 4);
        assert!(j.contains("\"command\": \"study --quick \\\"x\\\"\""));
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
