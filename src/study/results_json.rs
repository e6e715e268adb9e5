//! `results.json`: every number of a study, the adapter (and a CPU adapter's host processor, `host_cpu`, `null`
//! for others: its costs depend on it) and the command, as one JSON document (written by hand, like the bench
//! report's, so that the study needs no serialisation crate).

use std::fmt::Write;

use crate::bench::report::{json_num, json_str};
use crate::nn::LayerDiagnostics;
use crate::study::reading::{above_baseline, accuracy_floor, alias_of, baseline};
use crate::study::report::{backend_setting, init_flow, optimizer_text, within_noise_of_previous};
use crate::study::seeds::{derive, hex, Purpose};
use crate::study::summary::{
    diagnostics_finite, ParamStats, SeedSpreads, Spread, Summary, NOISE_EPOCHS, NOISE_FACTOR,
    NOISE_POINTS, NOISE_SHARE,
};
use crate::study::Study;

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

/// Per-layer diagnostics; the dead and saturated fractions (of pre-activations and of neurons) are `null` for the
/// hidden layers (all but the last) when `counted` is false (gated, learnable and randomized kinds, which the kernels
/// do not count), and for every layer of a step whose gradient norms are not finite ([`diagnostics_finite`]: its counts
/// describe NaN rows, not units).
fn json_layers(layers: &[LayerDiagnostics], counted: bool) -> String {
    let hidden = layers.len().saturating_sub(1);
    let finite = diagnostics_finite(layers);
    let v: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let counted = (counted || i >= hidden) && finite;
            format!(
                "{{\"weight_grad_norm\": {}, \"bias_grad_norm\": {}, \"dead_fraction\": {}, \"dead_neuron_fraction\": {}, \"saturated_fraction\": {}, \"saturated_neuron_fraction\": {}}}",
                json_num(l.weight_grad_norm),
                json_num(l.bias_grad_norm),
                json_opt(Some(l.dead_fraction()).filter(|_| counted)),
                json_opt(Some(l.dead_neuron_fraction()).filter(|_| counted)),
                json_opt(Some(l.saturated_fraction()).filter(|_| counted)),
                json_opt(Some(l.saturated_neuron_fraction()).filter(|_| counted))
            )
        })
        .collect();
    format!("[{}]", v.join(", "))
}

/// A row's [`SeedSpreads`] (of its `dead_fraction`, `dead_neuron_fraction`, `saturated_fraction`, and of the
/// logarithms of `init_flow` and `step_s_median`): `null` where not measured (one run, or a kind the kernels do
/// not count).
fn json_seed_spreads(s: &SeedSpreads) -> String {
    format!(
        "{{\"dead\": {}, \"dead_neurons\": {}, \"saturated\": {}, \"log_init_flow\": {}, \"log_step_s\": {}}}",
        json_num(s.dead),
        json_num(s.dead_neurons),
        json_num(s.saturated),
        json_num(s.log_init_flow),
        json_num(s.log_step)
    )
}

fn json_strings(values: &[String]) -> String {
    let v: Vec<String> = values.iter().map(|s| json_str(s)).collect();
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

/// `results.json`: the crate version and the `WGPU_BACKEND` setting
/// ([`crate::study::report::backend_setting`]), the setup, one row per activation (ranked) with its summary, and every run's epochs (each with
/// `diagnosed_rows`, the rows of the batch its `layers` diagnostics were taken on: the epoch's last full one).
/// The seeds the generators started from ([`crate::study::seeds`]) are in `dataset.derived_seeds` and in each
/// run's `init_seed` and `shuffle_seed`, as hexadecimal strings. `dataset.train_points` and `test_points` count
/// every class's points (the command line's `--points` is per class); a row's `test_acc_last5` averages the last
/// 5 epochs, or all of a shorter run's; `diverged_runs` counts the runs that ended with a NaN or infinite output
/// (their `test_nll` and `test_ece` are then null). `dataset.class_labels[c]` is the label class index `c`
/// stands for (a CSV file's labels by their sorted distinct values; a built-in dataset's classes are their own
/// labels, `"0"`, `"1"`, ...). `baseline` is the majority baseline (always the most frequent training class, its
/// index and its label) on the test and validation sets, `noise` the rule the reading tells kinds apart by
/// (accuracy, epochs, and for the diagnostics and cost `share` and `factor`; each row's `seed_spreads` holds
/// the spreads that rule compares with);
/// a row's `above_baseline` says whether its test accuracy beats the baseline by more than that noise,
/// `within_noise_of_previous` whether it is within noise of the row above (`~` in the table), and
/// `same_function_as` names the kind it computes the same function as (celu at alpha 1 is elu), or is null.
pub fn json(study: &Study) -> String {
    let o = &study.options;
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"command\": {},", json_str(&study.command));
    let _ = writeln!(out, "  \"adapter\": {},", json_str(&study.adapter));
    let host = study.host_cpu.as_deref().map_or("null".into(), json_str);
    let _ = writeln!(out, "  \"host_cpu\": {host},");
    let _ = writeln!(
        out,
        "  \"actgpu_version\": {},",
        json_str(env!("CARGO_PKG_VERSION"))
    );
    let _ = writeln!(out, "  \"wgpu_backend\": {},", json_str(&backend_setting()));
    let _ = writeln!(out, "  \"date\": {},", json_str(&study.date));
    let _ = writeln!(out, "  \"wall_s\": {},", json_num(study.wall_s));
    let _ = writeln!(out, "  \"compile_s\": {},", json_num(study.compile_s));
    let _ = writeln!(
        out,
        "  \"dataset\": {{\"name\": {}, \"features\": {}, \"classes\": {}, \"class_labels\": {}, \"train_points\": {}, \"test_points\": {}, \"seed\": {}, \
         \"derived_seeds\": {{\"rule\": {}, \"train\": {}, \"test\": {}, \"val\": {}}}, \"input_scale\": {}}},",
        json_str(&study.dataset.source.name()),
        study.dataset.features,
        study.dataset.classes,
        json_strings(&study.dataset.class_names),
        study.dataset.train_y.len(),
        study.dataset.test_y.len(),
        o.data_seed,
        json_str(match study.dataset.source {
            crate::datasets::DataSource::Builtin(_) => {
                "splitmix64_mix(seed ^ tag), one tag per purpose (actgpu::study::seeds)"
            }
            crate::datasets::DataSource::Csv(_) => {
                "a CSV file: its rows are split per class from the test seed alone (train and val unused)"
            }
        }),
        hex(derive(o.data_seed, Purpose::Train)),
        hex(derive(o.data_seed, Purpose::Test)),
        hex(derive(o.data_seed, Purpose::Validation)),
        json_num(f64::from(o.input_scale))
    );
    let _ = writeln!(
        out,
        "  \"config\": {{\"sizes\": {}, \"optimizer\": {}, \"batch\": {}, \"epochs\": {}, \"seeds\": {}, \"target\": {}, \"steps_per_epoch\": {}, \"match_params\": {}}},",
        json_usizes(&o.train_config().sizes(&study.dataset)),
        json_str(&optimizer_text(study)),
        o.batch,
        o.epochs,
        o.seeds,
        json_num(o.target),
        o.train_config().steps_per_epoch(study.dataset.train_y.len()),
        o.match_params
    );
    let _ = writeln!(
        out,
        "  \"baseline\": {{\"rule\": \"always the most frequent training class\", \"class\": {}, \"label\": {}, \"test_acc\": {}, \"val_acc\": {}}},",
        study.dataset.majority_class(),
        json_str(&study.dataset.class_label(study.dataset.majority_class())),
        json_num(baseline(study)),
        json_num(study.dataset.majority_accuracy(&study.dataset.val_y))
    );
    let _ = writeln!(
        out,
        "  \"noise\": {{\"rule\": {}, \"test_points\": {}, \"accuracy\": {}, \"epochs\": {}, \"share\": {}, \"factor\": {}}},",
        json_str(
            "two kinds' means differ when further apart than accuracy (test_points of the test set) and than \
             either kind's seed standard deviation; mean epochs to the target, than epochs and either deviation; \
             dead, dead-neuron and saturated fractions, than share and either kind's seed_spreads; init_flow and \
             step_s_median, when one is more than factor times the other and their logarithms are further apart \
             than either kind's seed_spreads (of the logarithm)"
        ),
        NOISE_POINTS,
        json_num(accuracy_floor(study)),
        json_num(NOISE_EPOCHS),
        json_num(NOISE_SHARE),
        json_num(NOISE_FACTOR)
    );
    out.push_str("  \"rows\": [\n");
    let rows: Vec<String> = study
        .summaries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "    {{\"rank\": {}, \"activation\": {}, \"family\": {}, \"sizes\": {}, \"params\": {}, \"runs\": {}, \"test_acc\": {}, \"test_acc_last5\": {}, \"test_nll\": {}, \"test_ece\": {}, \
                 \"val_acc\": {}, \"val_nll\": {}, \"train_loss\": {}, \"epochs_to_target\": {}, \"reached_target\": {}, \"diverged_runs\": {}, \"step_s_median\": {}, \
                 \"dead_fraction\": {}, \"dead_neuron_fraction\": {}, \"saturated_fraction\": {}, \"saturated_neuron_fraction\": {}, \"init_flow\": {}, \"train_loss_curve\": {}, \
                 \"test_acc_curve\": {}, \"initial_grad_norm\": {}, \"grad_norm\": {}, \"activation_params\": {}, \"above_baseline\": {}, \
                 \"within_noise_of_previous\": {}, \"same_function_as\": {}, \"seed_spreads\": {}}}",
                i + 1,
                json_str(&s.activation.name()),
                json_str(s.activation.family()),
                json_usizes(&s.sizes),
                s.params,
                s.runs,
                json_spread(s.test_acc),
                json_spread(s.test_acc_tail),
                json_spread(s.test_nll),
                json_spread(s.test_ece),
                json_spread(s.val_acc),
                json_spread(s.val_nll),
                json_spread(s.train_loss),
                json_spread(s.epochs_to_target),
                s.reached,
                s.diverged,
                s.step_s.map_or("null".into(), json_num),
                json_opt(s.dead),
                json_opt(s.dead_neurons),
                json_opt(s.saturated),
                json_opt(s.saturated_neurons),
                init_flow(s).map_or("null".into(), json_num),
                json_array(&s.train_loss_curve),
                json_array(&s.test_acc_curve),
                json_array(&s.initial_grad_norm),
                json_array(&s.grad_norm),
                json_act_params(s),
                above_baseline(study, s),
                within_noise_of_previous(study, i + 1),
                alias_of(s.activation).map_or("null".into(), |(f, _)| json_str(&f.name())),
                json_seed_spreads(&s.spreads)
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
                         \"test_ece\": {}, \"val_nll\": {}, \"val_acc\": {}, \"diagnosed_rows\": {}, \"layers\": {}}}",
                        e + 1,
                        json_num(x.train.nll),
                        json_num(x.train.accuracy),
                        json_num(x.test.nll),
                        json_num(x.test.accuracy),
                        json_num(x.test.ece),
                        json_num(x.val.nll),
                        json_num(x.val.accuracy),
                        x.diagnosed_rows,
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
                "    {{\"activation\": {}, \"seed\": {}, \"init_seed\": {}, \"shuffle_seed\": {}, \"params\": {}, \
                 \"activation_params\": {}, \"wall_s\": {}, \
                 \"step_s_median\": {}, \"timed_steps\": {}, \"initial_layers\": {}, \"epochs\": [\n      {}\n    ]}}",
                json_str(&r.activation.name()),
                r.seed,
                hex(derive(r.seed, Purpose::Init)),
                hex(derive(r.seed, Purpose::Shuffle)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::report::tests::study_of;
    use crate::study::summary::Summary;
    use crate::Activation;

    #[test]
    fn the_baseline_the_noise_rule_and_aliases_are_fields() {
        let s = crate::study::report::tests::with_test_points(
            study_of(1, vec![Activation::Silu.into(), Activation::swish().into()]),
            100,
        );
        let j = json(&s);
        assert!(
            j.contains("  \"adapter\": \"test adapter\",\n  \"host_cpu\": \"Test CPU (x86_64, 2 threads)\",\n"),
            "{j}"
        );
        let mut other = s.clone();
        other.host_cpu = None;
        assert!(json(&other).contains("  \"host_cpu\": null,\n"));
        assert!(
            j.contains("\"baseline\": {\"rule\": \"always the most frequent training class\", \"class\": 0, \"label\": \"0\", \"test_acc\": 3.333333333333333e-1, \"val_acc\": 3.333333333333333e-1},"),
            "{j}"
        );
        assert!(
            j.contains("\"test_points\": 3, \"accuracy\": 1e-2, \"epochs\": 1e0, \"share\": 2e-2, \"factor\": 1.5e0}"),
            "{j}"
        );
        // silu at 0.91 is above 1/3; swish at 0.61 is too, and 30 points below silu: not within noise.
        assert!(j.contains("\"above_baseline\": true, \"within_noise_of_previous\": false, \"same_function_as\": null, \"seed_spreads\": {\"dead\": null,"));
        assert!(j.contains("\"above_baseline\": true, \"within_noise_of_previous\": false, \"same_function_as\": \"silu\", \"seed_spreads\": {"));
        // Two seeds of the same numbers: spreads of 0, not null.
        let two = json(&study_of(2, vec![Activation::Relu.into()]));
        assert!(
            two.contains("\"seed_spreads\": {\"dead\": 0e0, \"dead_neurons\": 0e0, \"saturated\": 0e0, \"log_init_flow\": 0e0, \"log_step_s\": 0e0}"),
            "{two}"
        );
    }

    #[test]
    fn a_non_finite_step_has_no_dead_counts() {
        let mut s = study_of(1, vec![Activation::ReluSquared.into()]);
        let finite = json(&s);
        assert_eq!(finite.matches("\"dead_neuron_fraction\": null").count(), 0);
        // The second epoch's diagnosed step carried a NaN: its 3 layers' counts are null, the others stay.
        s.runs[0].epochs[1].layers[2].weight_grad_norm = f64::NAN;
        s.summaries[0] = Summary::new(s.runs[0].activation, &s.runs, s.options.target);
        let j = json(&s);
        assert_eq!(j.matches("\"dead_neuron_fraction\": null").count(), 3);
        assert_eq!(j.matches("\"dead_fraction\": null").count(), 3);
        // Every step non-finite: the row's fractions are null too.
        for e in &mut s.runs[0].epochs {
            e.layers[0].bias_grad_norm = f64::INFINITY;
        }
        s.summaries[0] = Summary::new(s.runs[0].activation, &s.runs, s.options.target);
        let j = json(&s);
        assert!(
            j.contains("\"dead_fraction\": null, \"dead_neuron_fraction\": null, \"saturated_fraction\": null"),
            "{j}"
        );
    }
}
