//! A learning-rate sweep: the whole study once per learning rate, and each kind at its best rate.
//!
//! One learning rate for every activation favours the ones it happens to suit; a comparison at each kind's own
//! best rate answers a fairer question. [`Sweep`] holds one [`Study`] per rate (the same data, networks and
//! seeds; only the rate differs) and tabulates each kind's mean final test accuracy at every rate, its best rate
//! and its accuracy there, ranked.
//!
//! The best rate, and the ranking, go by the **validation** set ([`crate::datasets::Dataset::val_x`]): highest
//! mean final validation accuracy, ties to the lower validation NLL, then the earlier rate. The test accuracy
//! quoted at that rate was not used to choose it (the maximum over rates of the test accuracies would be
//! inflated by the choice). How independent the two sets are depends on the data: a CSV file's are disjoint rows;
//! `moons`, `circles` and `checkerboard` draw them from seeds of their own; `spirals` draws only its angle noise,
//! on the radius grid `(i + 1) / n`, so its validation and test sets (the same size) share every radius and label
//! and differ only in that noise, and the test accuracy at the chosen rate is correspondingly less independent of
//! the choice. Differences within the seed-to-seed spread are not evidence.
//!
//! A rate is a candidate for a kind's best rate only where the kind learned something there, by the reading's
//! own test ([`crate::study::summary::beats_baseline`], written once for both): no run diverged, and the mean
//! validation accuracy is above always predicting the most frequent training class
//! ([`crate::datasets::Dataset::majority_accuracy`] on the validation labels) by more than the noise, more than
//! [`crate::study::summary::NOISE_POINTS`] validation points and more than the kind's seed spread. A kind with no
//! such rate has no best rate, and the table and `lr_sweep.md` say that it diverged, or stayed at that baseline
//! (within the noise), at every rate (rather than quoting a "best" rate at which it learned nothing). Cells where
//! runs diverged say so.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::bench::report::{json_num, json_str};
use crate::study::candidate::Candidate;
use crate::study::report::{aligned, markdown_grid, spread, write, write_outputs};
use crate::study::results_json::json_spread;
use crate::study::summary::{
    beats_baseline, point_floor, ranks_above, sort_best_first, Spread, Summary, NOISE_POINTS,
    ROUNDING,
};
use crate::study::{Study, StudyError};

/// The studies of a sweep, one per learning rate, in the order they ran.
#[derive(Debug)]
pub struct Sweep {
    /// `(learning rate, the study at that rate)`.
    pub studies: Vec<(f32, Study)>,
}

/// One kind's results across the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    /// The hidden-layer kind.
    pub activation: Candidate,
    /// Its final test accuracy (mean, standard deviation over seeds) at each rate, in the sweep's order.
    pub test_acc: Vec<Spread>,
    /// Its final test NLL at each rate.
    pub test_nll: Vec<Spread>,
    /// Its final validation accuracy at each rate.
    pub val_acc: Vec<Spread>,
    /// Its final validation NLL at each rate.
    pub val_nll: Vec<Spread>,
    /// Its runs at each rate (one per seed; 0 where that study did not run it).
    pub runs: Vec<usize>,
    /// How many of them diverged at each rate ([`Summary::diverged`]).
    pub diverged: Vec<usize>,
    /// The validation accuracy of always predicting the most frequent training class: a rate must beat it by
    /// more than the noise to be a candidate for [`SweepRow::best`] ([`SweepRow::learned`]).
    pub baseline: f64,
    /// [`crate::study::summary::NOISE_POINTS`] validation points as a fraction of the validation set: the least a
    /// rate's mean validation accuracy must be above [`SweepRow::baseline`] by (with the seed spread, where larger).
    pub floor: f64,
    /// The index of its best rate among those where it learned ([`SweepRow::learned`]: no run diverged and the
    /// mean validation accuracy is above [`SweepRow::baseline`] by more than the noise): highest mean validation
    /// accuracy, ties to the lower mean validation NLL, then the earlier rate. `None` where no rate is such
    /// ([`SweepRow::no_best`] says why).
    pub best: Option<usize>,
    /// The rate the ranking goes by: [`SweepRow::best`], or without one the rate with the highest validation
    /// accuracy (ties as for the best).
    top: usize,
}

impl SweepRow {
    /// Mean final validation accuracy at the best rate (what the ranking goes by); NaN without a best rate.
    pub fn best_val_acc(&self) -> f64 {
        self.best
            .and_then(|b| mean(self.val_acc[b]))
            .unwrap_or(f64::NAN)
    }

    /// Mean final test accuracy at the best rate; NaN without a best rate.
    pub fn best_test_acc(&self) -> f64 {
        self.best
            .and_then(|b| mean(self.test_acc[b]))
            .unwrap_or(f64::NAN)
    }

    /// Whether every run at rate `i` diverged (or none ran).
    pub fn all_diverged(&self, i: usize) -> bool {
        self.diverged[i] >= self.runs[i]
    }

    /// Whether rate `i` is a candidate for the best rate: the kind learned something there by the reading's test
    /// ([`beats_baseline`]): no run diverged, and the mean validation accuracy is above [`SweepRow::baseline`] by
    /// more than the noise ([`SweepRow::floor`] and the seed spread).
    pub fn learned(&self, i: usize) -> bool {
        beats_baseline(self.val_acc[i], self.diverged[i], self.baseline, self.floor)
    }

    /// Why the kind has no best rate, as a phrase (`None` when it has one): at every rate it diverged (every
    /// run), had a diverged run, or stayed at the majority-class baseline (not above it by more than the noise),
    /// or a mix of these, with how many rates each.
    pub fn no_best(&self) -> Option<String> {
        if self.best.is_some() {
            return None;
        }
        let n = self.runs.len();
        let all = (0..n).filter(|&i| self.all_diverged(i)).count();
        let some = (0..n)
            .filter(|&i| !self.all_diverged(i) && self.diverged[i] > 0)
            .count();
        let parts: Vec<(usize, &str)> = [
            (all, "diverged"),
            (some, "had a diverged run"),
            (n - all - some, "stayed at the majority-class baseline"),
        ]
        .into_iter()
        .filter(|&(k, _)| k > 0)
        .collect();
        Some(match parts.as_slice() {
            [] => "ran at no rate".to_string(),
            [(_, what)] => format!("{what} at every rate"),
            [init @ .., (k, what)] => {
                let init: Vec<String> = init.iter().map(|(k, w)| format!("{w} at {k}")).collect();
                format!("{} and {what} at {k} of the {n} rates", init.join(", "))
            }
        })
    }

    /// What the best rate is chosen by at rate `i`: mean validation accuracy, then negated mean validation NLL
    /// (missing values rank last).
    fn key(&self, i: usize) -> (f64, f64) {
        (
            mean(self.val_acc[i])
                .filter(|m| !m.is_nan())
                .unwrap_or(f64::NEG_INFINITY),
            -mean(self.val_nll[i])
                .filter(|m| !m.is_nan())
                .unwrap_or(f64::INFINITY),
        )
    }

    /// Whether every rate scored the same as the best one (accuracy and NLL): the rate made no difference, so
    /// the best rate being at an edge of the range says nothing.
    pub fn flat(&self) -> bool {
        (0..self.val_acc.len()).all(|i| !ranks_above(self.key(self.top), self.key(i)))
    }
}

fn mean(s: Spread) -> Option<f64> {
    s.map(|(m, _)| m).filter(|m| m.is_finite())
}

impl Sweep {
    /// The learning rates, in the sweep's order.
    pub fn lrs(&self) -> Vec<f32> {
        self.studies.iter().map(|(lr, _)| *lr).collect()
    }

    /// The validation accuracy of always predicting the most frequent training class (every study of a sweep
    /// trains on the same data): what a rate must beat by more than the noise to count ([`SweepRow::learned`]).
    pub fn baseline(&self) -> f64 {
        self.studies
            .first()
            .map_or(0.0, |(_, s)| s.dataset.majority_accuracy(&s.dataset.val_y))
    }

    /// [`crate::study::summary::NOISE_POINTS`] validation points as a fraction of the validation set
    /// ([`SweepRow::floor`]).
    pub fn floor(&self) -> f64 {
        self.studies
            .first()
            .map_or(0.0, |(_, s)| point_floor(s.dataset.val_y.len()))
    }

    /// One row per kind of the first study (the kinds every study ran), ranked by validation accuracy at the
    /// best rate, ties to the lower validation NLL there (as the best rate is chosen), best first; the kinds
    /// without a best rate ([`SweepRow::no_best`]) last, in the same order by their highest validation accuracy.
    pub fn rows(&self) -> Vec<SweepRow> {
        let Some((_, first)) = self.studies.first() else {
            return Vec::new();
        };
        let (baseline, floor) = (self.baseline(), self.floor());
        let mut rows: Vec<SweepRow> = first
            .options
            .activations
            .iter()
            .map(|&act| {
                let summaries: Vec<Option<&Summary>> = self
                    .studies
                    .iter()
                    .map(|(_, s)| s.summaries.iter().find(|x| x.activation == act))
                    .collect();
                let column = |f: fn(&Summary) -> Spread| {
                    summaries.iter().map(|s| s.and_then(f)).collect::<Vec<_>>()
                };
                let row = SweepRow {
                    activation: act,
                    test_acc: column(|s| s.test_acc),
                    test_nll: column(|s| s.test_nll),
                    val_acc: column(|s| s.val_acc),
                    val_nll: column(|s| s.val_nll),
                    runs: summaries.iter().map(|s| s.map_or(0, |s| s.runs)).collect(),
                    diverged: summaries
                        .iter()
                        .map(|s| s.map_or(0, |s| s.diverged))
                        .collect(),
                    baseline,
                    floor,
                    best: None,
                    top: 0,
                };
                let highest = |among: &dyn Fn(usize) -> bool| {
                    (0..row.val_acc.len()).filter(|&i| among(i)).reduce(|b, i| {
                        if ranks_above(row.key(i), row.key(b)) {
                            i
                        } else {
                            b
                        }
                    })
                };
                let best = highest(&|i| row.learned(i));
                let top = best.or_else(|| highest(&|_| true)).unwrap_or(0);
                SweepRow { best, top, ..row }
            })
            .collect();
        sort_best_first(&mut rows, |r| r.key(r.top));
        // Stable: the kinds without a best rate keep their order among themselves.
        rows.sort_by_key(|r| r.best.is_none());
        rows
    }

    /// Whether the studies ran more than one seed (the cells then show the standard deviation).
    fn seeds(&self) -> u64 {
        self.studies.first().map_or(1, |(_, s)| s.options.seeds)
    }

    fn header(&self) -> Vec<String> {
        let mut h = vec!["#".to_string(), "activation".to_string()];
        h.extend(self.lrs().iter().map(|lr| format!("lr {lr}")));
        h.extend([
            "best lr".to_string(),
            "val acc".to_string(),
            "test acc".to_string(),
        ]);
        h
    }

    /// The cells of each row: rank, name, test accuracy at each rate (`*` marks the best rate; `diverged` where
    /// every run did, `(k/n diverged)` after the accuracy where some did), the best rate, the validation and the
    /// test accuracy there (`-` without a best rate: [`Sweep::without_best`] says why).
    fn cells(&self) -> Vec<Vec<String>> {
        let lrs = self.lrs();
        let sd = self.seeds() > 1;
        self.rows()
            .iter()
            .enumerate()
            .map(|(rank, r)| {
                let mut c = vec![(rank + 1).to_string(), r.activation.to_string()];
                c.extend(r.test_acc.iter().enumerate().map(|(i, s)| {
                    let mark = if Some(i) == r.best && s.is_some() {
                        "*"
                    } else {
                        ""
                    };
                    match (r.runs[i], r.diverged[i]) {
                        (n, k) if n > 0 && k >= n => format!("diverged{mark}"),
                        (n, k) if k > 0 => {
                            format!("{}{mark} ({k}/{n} diverged)", spread(*s, 3, sd))
                        }
                        _ => format!("{}{mark}", spread(*s, 3, sd)),
                    }
                }));
                match r.best {
                    Some(b) => {
                        c.push(lrs[b].to_string());
                        c.push(format!("{:.3}", r.best_val_acc()));
                        c.push(format!("{:.3}", r.best_test_acc()));
                    }
                    None => c.extend(["-", "-", "-"].map(String::from)),
                }
                c
            })
            .collect()
    }

    /// The kinds without a best rate ([`SweepRow::no_best`]), as a sentence (`None` when every kind has one).
    pub fn without_best(&self) -> Option<String> {
        let parts: Vec<String> = self
            .rows()
            .iter()
            .filter_map(|r| Some(format!("{} {}", r.activation, r.no_best()?)))
            .collect();
        // On a validation set this small not even a perfect score is above the baseline by more than the noise
        // (the study's reading says the same of its test set).
        let too_small = 1.0 - self.baseline() <= self.floor() + ROUNDING;
        (!parts.is_empty()).then(|| {
            format!(
                "No best rate (no rate where no run diverged and the validation accuracy was above always \
                 predicting the most frequent class, {:.3}, by more than the noise: {NOISE_POINTS} validation \
                 points, {:.3}, and the seed spread): {}.{}",
                self.baseline(),
                self.floor(),
                parts.join("; "),
                if too_small {
                    " The validation set is too small to tell any kind from the baseline: not even a perfect \
                     score is above it by more than the noise, so no rate can show whether a kind learned \
                     (more points, `--points`, or a larger dataset can)."
                } else {
                    ""
                }
            )
        })
    }

    /// What to read under the table: [`Sweep::without_best`] and [`Sweep::at_the_edges`], one sentence each.
    pub fn notes(&self) -> Vec<String> {
        self.without_best()
            .into_iter()
            .chain(self.at_the_edges())
            .collect()
    }

    /// The sweep's table as aligned text: final test accuracy of every kind at every rate (`*` at its best rate
    /// by validation accuracy), and its validation and test accuracy at that rate.
    pub fn table(&self) -> String {
        let mut rows = vec![self.header()];
        rows.extend(self.cells());
        aligned(&rows)
    }

    /// `lr_sweep.md`: the setup, the table and what to read into it.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# Learning-rate sweep\n\n");
        if let Some((_, s)) = self.studies.first() {
            let _ = writeln!(out, "- adapter: {}", s.adapter);
            if let Some(host) = &s.host_cpu {
                let _ = writeln!(out, "- host CPU: {host}");
            }
            let _ = writeln!(
                out,
                "- data: {} ({} training points), {} epochs, {} seed{} per kind and rate",
                s.dataset.source,
                s.dataset.train_y.len(),
                s.options.epochs,
                s.options.seeds,
                if s.options.seeds == 1 { "" } else { "s" }
            );
            let _ = writeln!(
                out,
                "- majority-class baseline (always predicting the most frequent training class): validation \
                 accuracy {:.3}, test accuracy {:.3}",
                self.baseline(),
                s.dataset.majority_accuracy(&s.dataset.test_y)
            );
        }
        for (lr, s) in &self.studies {
            let _ = writeln!(out, "- lr {lr}: `{}` (`lr-{lr}/report.md`)", s.command);
        }
        let _ = write!(
            out,
            "\nFinal test accuracy (mean over seeds, ± the standard deviation with several seeds) at each rate; `*` \
             marks each kind's best rate, chosen on the validation set (highest mean validation accuracy, ties to \
             the lower validation NLL) among the rates where it learned (no run diverged, and the mean validation \
             accuracy is above the majority-class baseline by more than the noise, as the study's reading judges \
             it: more than {NOISE_POINTS} validation points, {:.3}, and more than the seed spread), which also \
             ranks the kinds; then the validation and the test accuracy at that rate.\n\n",
            self.floor()
        );
        let mut rows = vec![self.header()];
        rows.extend(
            self.cells()
                .into_iter()
                .map(|row| row.into_iter().map(|c| c.replace('*', "\\*")).collect()),
        );
        out.push_str(&markdown_grid(&rows));
        out.push_str(
            "\nThe best rate is chosen on the validation set, as large as the test set, so the test accuracy at \
             it was not used to choose it. On spirals the two sets share the radius grid and labels and differ only \
             in their angle noise, so there they are less independent than separate draws (or a CSV file's disjoint \
             rows) would be. Differences within the seed-to-seed spread are not evidence.\n",
        );
        for note in self.notes() {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }

    /// The kinds whose best rate is the lowest or the highest one tried, as a sentence (`None` when there are
    /// none, or fewer than two rates): they may do better outside the range. A kind that scored the same at
    /// every rate ([`SweepRow::flat`]), or has no best rate ([`Sweep::without_best`]), is not among them.
    pub fn at_the_edges(&self) -> Option<String> {
        let lrs = self.lrs();
        let (lo, hi) = (
            lrs.iter().copied().reduce(f32::min)?,
            lrs.iter().copied().reduce(f32::max)?,
        );
        if lrs.len() < 2 || lo == hi {
            return None;
        }
        let rows = self.rows();
        let at = |edge: f32| -> Vec<String> {
            rows.iter()
                .filter(|r| r.best.is_some_and(|b| lrs[b] == edge) && !r.flat())
                .map(|r| r.activation.to_string())
                .collect()
        };
        let mut parts = Vec::new();
        for (edge, kinds, side) in [(lo, at(lo), "lowest"), (hi, at(hi), "highest")] {
            if !kinds.is_empty() {
                parts.push(format!("{} at the {side}, {edge}", kinds.join(", ")));
            }
        }
        (!parts.is_empty()).then(|| {
            format!(
                "Best rate at the edge of the range tried (they may do better beyond it): {}.",
                parts.join("; ")
            )
        })
    }

    /// `lr_sweep.json`: the rates, the majority-class baseline, the noise a rate's validation accuracy must clear
    /// it by (`noise_val_acc`: [`crate::study::summary::NOISE_POINTS`] validation points, before the seed spread),
    /// and per kind its test and validation accuracy and NLL at each rate, its runs and diverged runs at each
    /// rate, and its best rate (`null` without one, with `no_best` saying why).
    pub fn json(&self) -> String {
        let lrs = self.lrs();
        let rows: Vec<String> = self
            .rows()
            .iter()
            .map(|r| {
                let list = |v: &[Spread]| v.iter().map(|&s| json_spread(s)).collect::<Vec<_>>().join(", ");
                let counts = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
                format!(
                    "    {{\"activation\": {}, \"best_lr\": {}, \"no_best\": {}, \"test_acc\": [{}], \
                     \"test_nll\": [{}], \"val_acc\": [{}], \"val_nll\": [{}], \"runs\": [{}], \
                     \"diverged\": [{}]}}",
                    json_str(&r.activation.to_string()),
                    r.best.map_or("null".to_string(), |b| lrs[b].to_string()),
                    r.no_best().map_or("null".to_string(), |w| json_str(&w)),
                    list(&r.test_acc),
                    list(&r.test_nll),
                    list(&r.val_acc),
                    list(&r.val_nll),
                    counts(&r.runs),
                    counts(&r.diverged)
                )
            })
            .collect();
        // An f32 rate's shortest decimal form (0.003, not 0.003000000026077032) is a JSON number.
        let lr_list: Vec<String> = lrs.iter().map(f32::to_string).collect();
        format!(
            "{{\n  \"lrs\": [{}],\n  \"majority_val_acc\": {},\n  \"noise_val_acc\": {},\n  \"rows\": [\n{}\n  ]\n}}\n",
            lr_list.join(", "),
            json_num(self.baseline()),
            json_num(self.floor()),
            rows.join(",\n")
        )
    }

    /// Writes every study's outputs into `dir/lr-<rate>/` ([`crate::study::report::write_outputs`]) and the
    /// sweep's `lr_sweep.md` and `lr_sweep.json` into `dir` ([`Sweep::write_summary`]); returns the paths
    /// written.
    pub fn write_outputs(&self, dir: &Path) -> Result<Vec<PathBuf>, StudyError> {
        let mut written = Vec::new();
        for (lr, study) in &self.studies {
            written.extend(write_outputs(study, &dir.join(format!("lr-{lr}")))?);
        }
        written.extend(self.write_summary(dir)?);
        Ok(written)
    }

    /// Writes only the sweep's own `lr_sweep.md` and `lr_sweep.json` into `dir` (created if missing), for a
    /// caller that wrote each study's outputs as it finished; returns the paths written.
    pub fn write_summary(&self, dir: &Path) -> Result<Vec<PathBuf>, StudyError> {
        std::fs::create_dir_all(dir).map_err(|source| StudyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut written = Vec::new();
        for (name, text) in [
            ("lr_sweep.md", self.markdown()),
            ("lr_sweep.json", self.json()),
        ] {
            let path = dir.join(name);
            write(&path, &text)?;
            written.push(path);
        }
        Ok(written)
    }
}

/// What `dir` holds from another kind of study that a run writing there will not overwrite, sorted by name:
/// for a single study (`lrs` empty), a sweep's `lr_sweep.md`, `lr_sweep.json` and `lr-*` folders; for a sweep
/// over `lrs`, a single study's `report.md`, `results.json` and charts at the top level, and `lr-*` folders of
/// rates not in `lrs`. Each would sit beside the new outputs as if it belonged to them; the study warns about
/// them rather than deleting what may be the user's. Empty when `dir` does not exist or cannot be read.
pub fn stale_outputs(dir: &Path, lrs: &[f32]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let single = crate::study::figures::FILES
        .iter()
        .chain(&["report.md", "results.json"])
        .copied()
        .collect::<Vec<_>>();
    let ours: Vec<String> = lrs.iter().map(|lr| format!("lr-{lr}")).collect();
    let mut stale: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // A rate's folder is `lr-` and a number: another study's own --out folder beside them (the
            // published docs/study/lr-sweep beside docs/study's single study) is not one.
            let rate_folder = name
                .strip_prefix("lr-")
                .is_some_and(|rate| rate.parse::<f32>().is_ok())
                && e.path().is_dir();
            if lrs.is_empty() {
                rate_folder || name == "lr_sweep.md" || name == "lr_sweep.json"
            } else {
                (rate_folder && !ours.contains(&name)) || single.contains(&name.as_str())
            }
        })
        .map(|e| e.path())
        .collect();
    stale.sort();
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::reading::above_baseline;
    use crate::study::report::tests::{study_of, with_test_points};
    use crate::Activation;

    /// Two studies of relu and sigmoid on 300 validation (and test) points; at the second rate sigmoid's
    /// validation accuracy is `sigmoid_val` and its test accuracy 0.5.
    fn sweep(seeds: u64, sigmoid_val: f64) -> Sweep {
        let kinds = vec![Activation::Relu.into(), Activation::Sigmoid.into()];
        let first = with_test_points(study_of(seeds, kinds.clone()), 100);
        let mut second = with_test_points(study_of(seeds, kinds), 100);
        for s in &mut second.summaries {
            if s.activation == Activation::Sigmoid.into() {
                s.val_acc = Some((sigmoid_val, 0.01));
                s.test_acc = Some((0.5, 0.01));
            }
        }
        Sweep {
            studies: vec![(0.001, first), (0.01, second)],
        }
    }

    #[test]
    fn each_kind_is_chosen_and_ranked_by_validation() {
        // study_of gives relu 0.91 (+0.01 per seed) and sigmoid 0.61 at both rates, validation and test alike,
        // unless changed.
        let s = sweep(1, 0.95);
        let rows = s.rows();
        // Chosen and ranked by validation accuracy; the test accuracy at the chosen rate is what it is.
        assert_eq!(rows[0].activation, Activation::Sigmoid.into());
        assert_eq!(rows[0].best, Some(1));
        assert_eq!(
            (rows[0].best_val_acc(), rows[0].best_test_acc()),
            (0.95, 0.5)
        );
        // relu ties across rates (same accuracy and NLL): the earlier rate.
        assert_eq!(rows[1].best, Some(0));
        let t = s.table();
        assert_eq!(t.lines().count(), 3);
        assert!(
            t.lines().nth(1).unwrap().contains("sigmoid") && t.contains("0.500*"),
            "{t}"
        );
        // Below relu's validation accuracy, sigmoid ranks second and keeps its better rate.
        let rows = sweep(1, 0.7).rows();
        assert_eq!(rows[1].activation, Activation::Sigmoid.into());
        assert_eq!(rows[1].best, Some(1));
    }

    #[test]
    fn equal_validation_accuracy_ranks_by_validation_nll() {
        // Both kinds at 0.95 validation accuracy at the second rate; sigmoid with the lower NLL ranks first,
        // though relu comes first in the studies' order.
        let mut s = sweep(1, 0.95);
        for (_, study) in &mut s.studies {
            for x in &mut study.summaries {
                let sigmoid = x.activation == Activation::Sigmoid.into();
                x.val_acc = Some((if sigmoid { 0.9 } else { 0.95 }, f64::NAN));
                x.val_nll = Some((0.3, f64::NAN));
            }
        }
        for x in &mut s.studies[1].1.summaries {
            x.val_acc = Some((0.95, f64::NAN));
            if x.activation == Activation::Sigmoid.into() {
                x.val_nll = Some((0.1, f64::NAN));
            }
        }
        let rows = s.rows();
        assert_eq!(rows[0].activation, Activation::Sigmoid.into());
        assert_eq!((rows[0].best, rows[1].best), (Some(1), Some(0)));
        // With the NLLs equal too, the studies' order stands.
        for x in &mut s.studies[1].1.summaries {
            x.val_nll = Some((0.3, f64::NAN));
        }
        assert_eq!(s.rows()[0].activation, Activation::Relu.into());
    }

    #[test]
    fn markdown_and_json_carry_every_rate() {
        let s = sweep(2, 0.95);
        let md = s.markdown();
        assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 3);
        assert!(
            md.contains("| lr 0.001 | lr 0.01 |") && md.contains("\\*"),
            "{md}"
        );
        assert!(md.contains('±'));
        assert!(
            md.contains("- adapter: test adapter\n- host CPU: Test CPU (x86_64, 2 threads)\n"),
            "{md}"
        );
        let json = s.json();
        assert!(json.contains("\"lrs\": [0.001, 0.01]"), "{json}");
        assert!(
            json.contains("\"best_lr\": 0.01") && json.contains("\"val_acc\": ["),
            "{json}"
        );
        assert_eq!(json.matches("\"activation\"").count(), 2);
        // sigmoid's best is the highest rate; relu's is the lowest only as a tie (the same scores at both rates),
        // which says nothing about rates beyond the range.
        assert!(s.rows()[1].flat() && !s.rows()[0].flat());
        assert_eq!(
            s.at_the_edges().as_deref(),
            Some(
                "Best rate at the edge of the range tried (they may do better beyond it): sigmoid at the \
                 highest, 0.01."
            )
        );
        assert!(md.contains("sigmoid at the highest, 0.01"));
        // Once relu does better at the lower rate, it is at the edge.
        let mut better_low = sweep(2, 0.95);
        for x in &mut better_low.studies[0].1.summaries {
            if x.activation == Activation::Relu.into() {
                x.val_acc = Some((0.99, 0.0));
            }
        }
        let edge = better_low.at_the_edges().unwrap();
        assert!(edge.contains("relu at the lowest, 0.001"), "{edge}");
        // One rate has no edges to speak of.
        let one = Sweep {
            studies: s.studies.into_iter().take(1).collect(),
        };
        assert_eq!(one.at_the_edges(), None);
    }

    #[test]
    fn a_validation_set_too_small_to_tell_is_said_to_be() {
        // One point per class: a perfect validation score is within the 3-point noise of 1/3.
        let kinds = vec![Activation::Relu.into(), Activation::Sigmoid.into()];
        let tiny = |lr| (lr, with_test_points(study_of(1, kinds.clone()), 1));
        let mut s = Sweep {
            studies: vec![tiny(0.001), tiny(0.01)],
        };
        for (_, study) in &mut s.studies {
            for x in &mut study.summaries {
                x.val_acc = Some((1.0, f64::NAN));
            }
        }
        assert!(s.rows().iter().all(|r| r.best.is_none()));
        let note = s.without_best().unwrap();
        assert!(
            note.ends_with(
                "The validation set is too small to tell any kind from the baseline: not even a perfect score \
                 is above it by more than the noise, so no rate can show whether a kind learned (more points, \
                 `--points`, or a larger dataset can)."
            ),
            "{note}"
        );
        // On 300 validation points the kinds without a best rate are not put down to the set's size.
        let note = sweep_at_baseline().without_best().unwrap();
        assert!(!note.contains("too small"), "{note}");
    }

    /// [`sweep`] with every kind at the majority baseline at both rates (300 validation points).
    fn sweep_at_baseline() -> Sweep {
        let mut s = sweep(1, 0.95);
        let baseline = s.baseline();
        for (_, study) in &mut s.studies {
            for x in &mut study.summaries {
                x.val_acc = Some((baseline, f64::NAN));
            }
        }
        s
    }

    #[test]
    fn diverged_and_baseline_kinds_have_no_best_rate() {
        // relu diverges at every rate (its accuracy then counts every row wrong: 0); sigmoid stays at the
        // majority-class baseline (1/3 on the balanced spirals) at every rate.
        let mut s = sweep(1, 0.95);
        let baseline = s.baseline();
        assert!((baseline - 1.0 / 3.0).abs() < 1e-12, "{baseline}");
        for (_, study) in &mut s.studies {
            for x in &mut study.summaries {
                if x.activation == Activation::Relu.into() {
                    x.diverged = x.runs;
                    x.test_acc = Some((0.0, f64::NAN));
                    x.val_acc = Some((0.0, f64::NAN));
                    x.val_nll = Some((f64::INFINITY, f64::NAN));
                } else {
                    x.test_acc = Some((baseline, f64::NAN));
                    x.val_acc = Some((baseline, f64::NAN));
                }
            }
        }
        let rows = s.rows();
        assert!(rows.iter().all(|r| r.best.is_none()), "{rows:?}");
        // The one at the baseline ranks above the diverged one.
        assert_eq!(rows[0].activation, Activation::Sigmoid.into());
        assert_eq!(
            rows[0].no_best().as_deref(),
            Some("stayed at the majority-class baseline at every rate")
        );
        assert_eq!(rows[1].no_best().as_deref(), Some("diverged at every rate"));
        let t = s.table();
        let relu = t.lines().find(|l| l.contains("relu")).unwrap();
        assert!(
            relu.contains("diverged") && !relu.contains('*') && !relu.contains("0.001"),
            "{t}"
        );
        assert!(!t.contains('*'), "no best rate to mark: {t}");
        // Neither gets an edge warning ("may do better beyond it"); both are named as having no best rate.
        assert_eq!(s.at_the_edges(), None);
        let note = s.without_best().unwrap();
        assert!(
            note.contains("relu diverged at every rate")
                && note.contains("sigmoid stayed at the majority-class baseline at every rate")
                && note.contains("0.333"),
            "{note}"
        );
        let md = s.markdown();
        assert!(
            md.contains(&note) && md.contains("| diverged | diverged |"),
            "{md}"
        );
        assert!(md.contains("validation accuracy 0.333"), "{md}");
        let json = s.json();
        assert!(
            json.contains("\"best_lr\": null, \"no_best\": \"diverged at every rate\"")
                && json.contains("\"diverged\": [1, 1]")
                && json.contains("\"majority_val_acc\": 3.333"),
            "{json}"
        );
        // A rate where the kind learned is its best, though it diverged at the other; some of several seeds
        // diverging is marked beside the accuracy.
        for x in &mut s.studies[1].1.summaries {
            if x.activation == Activation::Relu.into() {
                x.diverged = 0;
                x.val_acc = Some((0.8, f64::NAN));
                x.val_nll = Some((0.5, f64::NAN));
                x.test_acc = Some((0.75, f64::NAN));
            }
        }
        for x in &mut s.studies[0].1.summaries {
            if x.activation == Activation::Relu.into() {
                x.runs = 3;
                x.diverged = 1;
                x.test_acc = Some((0.5, 0.4));
            }
        }
        let rows = s.rows();
        assert_eq!(
            (rows[0].activation, rows[0].best),
            (Activation::Relu.into(), Some(1))
        );
        let t = s.table();
        assert!(
            t.contains("0.500 (1/3 diverged)") && t.contains("0.750*"),
            "{t}"
        );
        assert!(s
            .at_the_edges()
            .unwrap()
            .contains("relu at the highest, 0.01"));
    }

    /// A rate is a candidate for the best only where the kind learned there by the reading's test: no run
    /// diverged, and the validation accuracy above the majority baseline by more than the noise (3 points of the
    /// 300, and the seed spread). The sweep and the reading judge the same numbers alike.
    #[test]
    fn a_rate_counts_only_above_the_baseline_by_more_than_the_noise() {
        let third = 1.0 / 3.0;
        for (acc, sd, diverged, learned) in [
            // 2 points above the baseline: within the 3-point floor (the sweep used to take any gap).
            (third + 2.0 / 300.0, f64::NAN, 0, false),
            (third + 3.0 / 300.0, 0.0, 0, false),
            (third + 4.0 / 300.0, 0.0, 0, true),
            // 20 points above, but the seeds spread by 25.
            (0.533, 0.25, 0, false),
            (0.533, 0.15, 0, true),
            // A diverged run: its accuracy counts non-finite rows as wrong; the rate is not a candidate.
            (0.95, 0.01, 1, false),
        ] {
            let mut s = sweep(3, 0.95);
            for x in &mut s.studies[1].1.summaries {
                if x.activation == Activation::Sigmoid.into() {
                    (x.val_acc, x.test_acc, x.diverged) =
                        (Some((acc, sd)), Some((acc, sd)), diverged);
                }
            }
            let rows = s.rows();
            let sigmoid = rows
                .iter()
                .find(|r| r.activation == Activation::Sigmoid.into())
                .unwrap();
            assert_eq!(
                sigmoid.learned(1),
                learned,
                "{acc} ± {sd}, {diverged} diverged"
            );
            // The reading of that rate's study says the same of the test accuracy (the test and validation sets
            // have the same size and the same baseline here).
            let study = &s.studies[1].1;
            let x = study
                .summaries
                .iter()
                .find(|x| x.activation == Activation::Sigmoid.into())
                .unwrap();
            assert_eq!(above_baseline(study, x), learned, "{acc} ± {sd}");
            // Not learned at the second rate: the first (0.62) is its best.
            if !learned {
                assert_eq!(sigmoid.best, Some(0), "{acc}");
            }
        }
        // Both rates out: why, rate by rate.
        let mut s = sweep(3, 0.95);
        for (i, (_, study)) in s.studies.iter_mut().enumerate() {
            for x in &mut study.summaries {
                if x.activation == Activation::Sigmoid.into() {
                    x.diverged = [3, 1][i];
                }
            }
        }
        let rows = s.rows();
        let sigmoid = rows
            .iter()
            .find(|r| r.activation == Activation::Sigmoid.into())
            .unwrap();
        assert_eq!(
            sigmoid.no_best().as_deref(),
            Some("diverged at 1 and had a diverged run at 1 of the 2 rates")
        );
        let md = s.markdown();
        assert!(
            md.contains("by more than the noise, as the study's reading judges it: more than 3 validation points, 0.010"),
            "{md}"
        );
        assert!(
            s.json().contains("\"noise_val_acc\": 1e-2,"),
            "{}",
            s.json()
        );
    }

    #[test]
    fn another_studys_outputs_are_found_not_ours() {
        let dir = std::env::temp_dir().join(format!("actgpu-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(stale_outputs(&dir, &[]).is_empty(), "no directory yet");
        for sub in ["lr-0.001", "lr-0.1", "lr-sweep", "notes"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for file in [
            "report.md",
            "results.json",
            "loss.svg",
            "lr_sweep.md",
            "lr_sweep.json",
            "lr-readme.txt",
            "mine.txt",
        ] {
            std::fs::write(dir.join(file), "x").unwrap();
        }
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        // A single study overwrites report.md, results.json and the charts; a sweep's files are another's.
        assert_eq!(
            names(stale_outputs(&dir, &[])),
            ["lr-0.001", "lr-0.1", "lr_sweep.json", "lr_sweep.md"]
        );
        // A sweep over 0.001 and 0.01 overwrites lr-0.001 and the sweep's files; a single study's outputs and
        // the folder of a rate it does not run are another's.
        assert_eq!(
            names(stale_outputs(&dir, &[0.001, 0.01])),
            ["loss.svg", "lr-0.1", "report.md", "results.json"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
