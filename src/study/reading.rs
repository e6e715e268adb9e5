//! The automatic reading of a study's results: one Markdown bullet each for the best and worst kinds,
//! convergence, calibration, dead and saturated units, gradient flow, cost, parameter counts, the learnable
//! kinds' trained parameters, and what the setup cannot show. `report.md` and the `study` example print it under
//! the table ([`crate::study::report`]).

use std::fmt::Write;

use crate::study::report::{arch, init_flow, optimizer_text, scale_text};
use crate::study::summary::{fastest, tail_epochs, Spread, Summary};
use crate::study::Study;

/// How far a kind's final test accuracy may sit below its mean over the last epochs before the reading names it
/// as a late drop: 0.02, six points of a 300-point test set (compared with [`within`]'s rounding allowance, so
/// that a gap of exactly six points, 0.020000000000000018 in f64, is not a drop).
const LATE_DROP: f64 = 0.02;

fn mean(s: Spread) -> Option<f64> {
    s.map(|(m, _)| m)
}

/// A fraction as a percentage without trailing zeros: 0.9 -> `90`, 0.905 -> `90.5`, 0.999 -> `99.9`.
fn percent(fraction: f64) -> String {
    let p = format!("{:.4}", 100.0 * fraction);
    p.trim_end_matches('0').trim_end_matches('.').to_string()
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

/// Whether accuracy `a` is within `tol` of the best, `b`. Accuracies are fractions of the test set, and
/// `1.0 - 0.99` is `0.010000000000000009` in f64, so the comparison allows 1e-9 (far below one test point, or
/// one point over several seeds) for the rounding.
pub fn within(b: f64, a: f64, tol: f64) -> bool {
    b - a <= tol + 1e-9
}

/// A short automatic reading of the results: best and worst, convergence, calibration, dead and saturated
/// units, gradient flow and cost, and what the setup cannot show. One Markdown bullet per line.
pub fn reading(study: &Study) -> Vec<String> {
    let o = &study.options;
    let mut lines = Vec::new();
    let s = &study.summaries;
    let diverged: Vec<String> = s
        .iter()
        .filter(|x| x.diverged > 0)
        .map(|x| format!("{} ({}/{})", x.activation, x.diverged, x.runs))
        .collect();
    if !diverged.is_empty() {
        lines.push(format!(
            "**Diverged** (a NaN or infinite output after the last epoch; such a run's accuracy counts its \
             non-finite rows as wrong, its NLL and ECE are not numbers, and it does not count as having reached \
             the target): {}.",
            diverged.join(", ")
        ));
    }
    if let (Some(best), Some(worst)) = (s.first(), s.last()) {
        let (b, w) = (
            mean(best.test_acc).unwrap_or(f64::NAN),
            mean(worst.test_acc).unwrap_or(f64::NAN),
        );
        let close: Vec<String> = s
            .iter()
            .filter(|x| mean(x.test_acc).is_some_and(|a| within(b, a, 0.01)))
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
    if let Some((top, v)) = extreme(study, |x| mean(x.test_acc_tail), true) {
        let dropped: Vec<String> = s
            .iter()
            .filter_map(|x| {
                let (fin, tail) = (mean(x.test_acc)?, mean(x.test_acc_tail)?);
                (!within(tail, fin, LATE_DROP))
                    .then(|| format!("{} ({fin:.3} final, {tail:.3})", x.activation))
            })
            .collect();
        let mut line = format!(
            "Highest mean test accuracy over the last {} epochs (where the runs had settled, whatever \
             their last epoch did): **{}** ({v:.3}).",
            tail_epochs(o.epochs),
            top.activation
        );
        if !dropped.is_empty() {
            let _ = write!(
                line,
                " Ending more than {LATE_DROP} below their own mean over those epochs (a late drop that the \
                 ranking by final accuracy counts in full): {}.",
                dropped.join(", ")
            );
        }
        lines.push(line);
    }
    let best = fastest(s);
    if let Some(&first) = best.first() {
        let e = mean(first.epochs_to_target).unwrap_or(f64::NAN);
        let names: Vec<String> = best.iter().map(|x| x.activation.name()).collect();
        // A run that reached the target and then diverged does not count as having reached it.
        let never: Vec<String> = s
            .iter()
            .filter(|x| x.reached == 0)
            .map(|x| match x.diverged {
                0 => x.activation.name(),
                d => format!("{} ({d}/{} ended diverged)", x.activation, x.runs),
            })
            .collect();
        let some: Vec<String> = s
            .iter()
            .filter(|x| {
                x.reached > 0 && x.reached < x.runs && !names.contains(&x.activation.name())
            })
            .map(|x| format!("{} ({}/{})", x.activation, x.reached, x.runs))
            .collect();
        lines.push(format!(
            "Fastest to {}% test accuracy: {} ({e:.1} epochs, {} steps of at most {} rows; reached in {}/{} \
             run{}){}.{}{}{}",
            percent(o.target),
            names.join(", "),
            (e * o
                .train_config()
                .steps_per_epoch(study.dataset.train_y.len()) as f64)
                .round(),
            o.batch,
            first.reached,
            first.runs,
            if first.runs == 1 { "" } else { "s" },
            if names.len() > 1 { ", tied" } else { "" },
            if first.reached < first.runs {
                " No kind reached it in every run, so this ranks by how many runs did, then by the mean epoch of \
                 those runs."
            } else {
                ""
            },
            if some.is_empty() {
                String::new()
            } else {
                format!(
                    " Also reached it in some runs only (their mean epoch is over those runs, not comparable): {}.",
                    some.join(", ")
                )
            },
            if never.is_empty() {
                String::new()
            } else {
                format!(
                    " Never reached it in {} epochs (or only before ending diverged): {}.",
                    o.epochs,
                    never.join(", ")
                )
            }
        ));
    } else {
        lines.push(format!(
            "No activation reached {}% test accuracy in {} epochs.",
            percent(o.target),
            o.epochs
        ));
    }
    if let (Some((lo, l)), Some((hi, h))) = (
        extreme(study, |x| mean(x.test_ece), false),
        extreme(study, |x| mean(x.test_ece), true),
    ) {
        let none: Vec<String> = s
            .iter()
            .filter(|x| !mean(x.test_ece).is_some_and(f64::is_finite))
            .map(|x| x.activation.name())
            .collect();
        lines.push(format!(
            "Best calibrated (lowest ECE): {} ({l:.3}); worst: {} ({h:.3}){}.",
            lo.activation,
            hi.activation,
            if none.is_empty() {
                String::new()
            } else {
                format!(
                    ", of those with a calibration to measure (not {}: non-finite outputs)",
                    none.join(", ")
                )
            }
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
                 last full batch; for ReLU-like units that is every inactive unit, not only units dead for good): {} \
                 ({:.1}%). At least 5%: {}.",
                d.activation,
                100.0 * v,
                if any.is_empty() { "none".into() } else { any.join(", ") }
            )
        } else {
            "No activation had hidden pre-activations with f'(z) = 0.".into()
        });
        if let (Some((d, v)), Some(last)) =
            (extreme(study, |x| x.dead_neurons, true), lines.last_mut())
        {
            let _ = write!(
                last,
                " Neurons with f'(z) = 0 for every row of the batch (dead for that batch, the \"dying\" units): \
                 most in {} ({:.1}% of the hidden neurons){}.",
                d.activation,
                100.0 * v,
                if v == 0.0 { ", so none anywhere" } else { "" }
            );
        }
        let uncounted: Vec<String> = s
            .iter()
            .filter(|x| !x.activation.counts_dead())
            .map(|x| x.activation.name())
            .collect();
        let non_finite: Vec<String> = s
            .iter()
            .filter(|x| x.activation.counts_dead() && x.dead.is_none())
            .map(|x| x.activation.name())
            .collect();
        if !non_finite.is_empty() {
            if let Some(last) = lines.last_mut() {
                let _ = write!(
                    last,
                    " No finite diagnosed step, so nothing to count (\"-\" in the table): {}.",
                    non_finite.join(", ")
                );
            }
        }
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
        "Scope: one {} dataset of {} training points{}, {}, {}, {} epochs, {} \
         seed{}. {}Differences smaller than the seed-to-seed spread, or than a few test points ({} points: one \
         is {:.3} of accuracy), are not evidence of a difference between activations.",
        study.dataset.source,
        study.dataset.train_y.len(),
        scale_text(o.input_scale),
        match arch(study) {
            a if a.contains('(') => format!("architectures {a}"),
            a => format!("one architecture ({a})"),
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::report::tests::study_of;
    use crate::Activation;

    #[test]
    fn within_a_hundredth_is_exact_for_fractions_of_the_test_set() {
        // 1.0 - 0.99 = 0.010000000000000009 in f64: still within 0.01.
        let (best, next) = (1.0f64, 0.99f64);
        assert_eq!(best - next, 0.010000000000000009);
        assert!(within(1.0, 0.99, 0.01));
        assert!(within(1.0, 297.0 / 300.0, 0.01));
        assert!(!within(1.0, 296.0 / 300.0, 0.01));
        let mut s = study_of(
            1,
            vec![
                Activation::Relu.into(),
                Activation::Gelu.into(),
                Activation::Tanh.into(),
            ],
        );
        s.summaries[0].test_acc = Some((1.0, f64::NAN));
        s.summaries[1].test_acc = Some((0.99, f64::NAN));
        let first = &reading(&s)[0];
        assert!(
            first.contains("2 within 0.01 of it: relu, gelu."),
            "{first}"
        );
    }

    #[test]
    fn a_late_drop_is_named_beside_the_best_tail_mean() {
        let mut s = study_of(1, vec![Activation::Relu.into(), Activation::Gelu.into()]);
        s.summaries[0].test_acc = Some((0.99, f64::NAN));
        s.summaries[0].test_acc_tail = Some((0.985, f64::NAN));
        s.summaries[1].test_acc = Some((0.917, f64::NAN));
        s.summaries[1].test_acc_tail = Some((0.98, f64::NAN));
        let line = reading(&s)
            .into_iter()
            .find(|l| l.starts_with("Highest mean test accuracy over the last 3 epochs"))
            .unwrap();
        assert!(line.contains("**relu** (0.985)"), "{line}");
        assert!(
            line.contains("0.02 below their own mean")
                && line.contains(": gelu (0.917 final, 0.980)."),
            "{line}"
        );
        // A gap of exactly 0.02 (6 of 300 points: 0.020000000000000018 in f64) is not more than 0.02.
        let (fin, tail) = (106.0 / 300.0, 112.0 / 300.0);
        assert_eq!(tail - fin, 0.020000000000000018);
        s.summaries[1].test_acc = Some((fin, f64::NAN));
        s.summaries[1].test_acc_tail = Some((tail, f64::NAN));
        let line = reading(&s)
            .into_iter()
            .find(|l| l.starts_with("Highest mean test accuracy"))
            .unwrap();
        assert!(!line.contains("late drop"), "{line}");
        // No drop, no second sentence.
        s.summaries[1].test_acc = Some((0.917, f64::NAN));
        s.summaries[1].test_acc_tail = Some((0.93, f64::NAN));
        let line = reading(&s)
            .into_iter()
            .find(|l| l.starts_with("Highest mean test accuracy"))
            .unwrap();
        assert!(!line.contains("late drop"), "{line}");
    }

    #[test]
    fn a_kind_without_a_finite_diagnosed_step_is_not_called_uncounted() {
        let mut s = study_of(
            1,
            vec![Activation::Relu.into(), Activation::ReluSquared.into()],
        );
        (s.summaries[1].dead, s.summaries[1].dead_neurons) = (None, None);
        let line = reading(&s)
            .into_iter()
            .find(|l| l.starts_with("Largest share"))
            .unwrap();
        assert!(
            line.ends_with(
                "No finite diagnosed step, so nothing to count (\"-\" in the table): relu_squared."
            ) && !line.contains("Not counted"),
            "{line}"
        );
    }

    #[test]
    fn fastest_says_how_many_runs_reached_the_target() {
        let mut s = study_of(
            5,
            vec![
                Activation::Relu.into(),
                Activation::Gelu.into(),
                Activation::Tanh.into(),
            ],
        );
        // relu reached it in 1 of 5 runs, faster; gelu in all 5.
        s.summaries[0].epochs_to_target = Some((1.0, f64::NAN));
        s.summaries[0].reached = 1;
        s.summaries[1].epochs_to_target = Some((4.0, 0.5));
        s.summaries[1].reached = 5;
        let line = reading(&s)
            .into_iter()
            .find(|l| l.starts_with("Fastest"))
            .unwrap();
        assert!(
            line.starts_with("Fastest to 90% test accuracy: gelu (4.0 epochs,")
                && line.contains("reached in 5/5 runs)")
                && line.contains("some runs only (their mean epoch is over those runs, not comparable): relu (1/5)"),
            "{line}"
        );
    }

    #[test]
    fn a_diverged_kind_is_named_in_the_convergence_and_calibration_lines() {
        let mut s = study_of(1, vec![Activation::Relu.into(), Activation::Gelu.into()]);
        s.options.target = 0.905;
        s.summaries[0].epochs_to_target = Some((3.0, f64::NAN));
        s.summaries[0].reached = 1;
        s.summaries[0].test_ece = Some((0.02, f64::NAN));
        // gelu reached the target and then diverged: no epoch to the target, no calibration.
        s.summaries[1].reached = 0;
        s.summaries[1].diverged = 1;
        s.summaries[1].test_ece = Some((f64::NAN, f64::NAN));
        let lines = reading(&s);
        let fastest = lines.iter().find(|l| l.starts_with("Fastest")).unwrap();
        assert!(
            fastest.starts_with("Fastest to 90.5% test accuracy: relu")
                && fastest.contains("(or only before ending diverged): gelu (1/1 ended diverged)."),
            "{fastest}"
        );
        let calibration = lines
            .iter()
            .find(|l| l.starts_with("Best calibrated"))
            .unwrap();
        assert!(
            calibration.contains("(not gelu: non-finite outputs)"),
            "{calibration}"
        );
        assert_eq!(
            [0.9, 0.905, 0.999, 1.0, 0.5].map(percent),
            ["90", "90.5", "99.9", "100", "50"]
        );
    }
}
