//! Classification datasets: built-in two-dimensional ones, generated from a seed (no downloads, the same bits on
//! every machine), and any numeric CSV file ([`csv`]). The built-ins come with a train / test split drawn
//! independently from the same distribution (for `spirals`, only the angle noise is drawn: its radii are the
//! fixed grid `(i + 1) / n` of each split's size, so two splits of sizes `n1` and `n2` share `gcd(n1, n2)` radii,
//! `r = 1` always; at the study's defaults, 300 and 100 per class, every test and validation point lies at the
//! radius of a training point of its class, differing only in angle noise).
//!
//! | dataset | classes | points of class `k` |
//! |---|---|---|
//! | `spirals` | 3 | three interleaved arms: radius `r = (i + 1) / n`, angle `2.5 pi r + 2 pi k / 3 + noise` |
//! | `moons` | 2 | two interleaving half circles (scikit-learn's `make_moons`), Gaussian-ish noise of std 0.15 |
//! | `circles` | 2 | two concentric rings of radius 1 (`k = 0`) and 0.5 (`k = 1`), noise of std 0.08 |
//! | `checkerboard` | 2 | uniform in `[-1, 1]^2` (1 itself once in about 2^26 draws, f64 rounded to f32), class = parity of the 4 x 4 grid cell |
//!
//! "Gaussian-ish" noise is the sum of three uniforms (Irwin-Hall), cheap and bounded: `(u1 + u2 + u3 - 1.5) * 2 s`
//! has standard deviation `s`.

pub mod csv;

use std::f64::consts::PI;
use std::fmt;
use std::path::PathBuf;

use crate::verify::Rng;

/// Which built-in dataset (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    /// Three interleaved spirals (the `train` example's dataset).
    Spirals,
    /// Two interleaving half circles.
    Moons,
    /// Two concentric rings.
    Circles,
    /// A 4 x 4 checkerboard of two classes.
    Checkerboard,
}

impl DatasetKind {
    /// Every built-in dataset.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Spirals,
        DatasetKind::Moons,
        DatasetKind::Circles,
        DatasetKind::Checkerboard,
    ];

    /// The name used on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            DatasetKind::Spirals => "spirals",
            DatasetKind::Moons => "moons",
            DatasetKind::Circles => "circles",
            DatasetKind::Checkerboard => "checkerboard",
        }
    }

    /// The dataset called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Number of classes.
    pub const fn classes(self) -> usize {
        match self {
            DatasetKind::Spirals => 3,
            _ => 2,
        }
    }

    /// `n` points per class from `seed`: row-major `[classes * n, 2]` points and their class indices, classes
    /// interleaved (point `i` of every class, then point `i + 1`).
    pub fn generate(self, n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        match self {
            DatasetKind::Spirals => spirals(n, seed),
            DatasetKind::Moons => moons(n, seed),
            DatasetKind::Circles => circles(n, seed),
            DatasetKind::Checkerboard => checkerboard(n, seed),
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a dataset's points come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A built-in dataset, generated.
    Builtin(DatasetKind),
    /// A CSV file ([`csv`]).
    Csv(PathBuf),
}

impl DataSource {
    /// The name in reports: the built-in's name, or the file's name (without its directory).
    pub fn name(&self) -> String {
        match self {
            DataSource::Builtin(kind) => kind.name().to_string(),
            DataSource::Csv(path) => path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A dataset with its train / test split, features row-major `[rows, features]`.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Which dataset.
    pub source: DataSource,
    /// Features per point (2 for every built-in).
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
    /// Training points `[train_y.len(), features]`.
    pub train_x: Vec<f32>,
    /// Training labels.
    pub train_y: Vec<u32>,
    /// Test points `[test_y.len(), features]`.
    pub test_x: Vec<f32>,
    /// Test labels.
    pub test_y: Vec<u32>,
    /// Validation points `[val_y.len(), features]`, as many as the test set, for choosing settings (the study's
    /// learning-rate sweep) without looking at the test set.
    pub val_x: Vec<f32>,
    /// Validation labels.
    pub val_y: Vec<u32>,
    /// The label each class index stands for: `class_names[c]` is class `c`'s. A CSV file's labels become class
    /// indices by their sorted distinct values ([`csv::Table::class_names`]: labels `1, 2` are classes `0, 1`,
    /// `setosa, versicolor, virginica` are `0, 1, 2`); a built-in dataset's classes are their own labels
    /// (`"0"`, `"1"`, ...). [`Dataset::labels_are_indices`] says whether a reader needs to be told.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// `train_per_class` training and `test_per_class` test points of each class; the test set is drawn from
    /// `seed + 1000` (as the `train` example does), so it shares no draw with the training set, and a validation
    /// set of `test_per_class` points per class from `seed + 2000`.
    pub fn new(
        kind: DatasetKind,
        train_per_class: usize,
        test_per_class: usize,
        seed: u64,
    ) -> Self {
        let seeds = [seed, seed.wrapping_add(1000), seed.wrapping_add(2000)];
        Self::from_seeds(kind, train_per_class, test_per_class, seeds)
    }

    /// The training, test and validation sets drawn from the three seeds `[train, test, validation]` (the test
    /// and validation sets `test_per_class` points per class each).
    pub fn from_seeds(
        kind: DatasetKind,
        train_per_class: usize,
        test_per_class: usize,
        [train, test, validation]: [u64; 3],
    ) -> Self {
        let (train_x, train_y) = kind.generate(train_per_class, train);
        let (test_x, test_y) = kind.generate(test_per_class, test);
        let (val_x, val_y) = kind.generate(test_per_class, validation);
        Dataset {
            source: DataSource::Builtin(kind),
            features: 2,
            classes: kind.classes(),
            train_x,
            train_y,
            test_x,
            test_y,
            val_x,
            val_y,
            class_names: (0..kind.classes()).map(|c| c.to_string()).collect(),
        }
    }

    /// The label of class index `c` ([`Dataset::class_names`]), or the index itself where there is no name for it.
    pub fn class_label(&self, c: u32) -> String {
        self.class_names
            .get(c as usize)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    }

    /// Whether every class's label is its own index (`0`, `1`, ... in order): a built-in dataset, or a CSV file
    /// labelled `0..k-1` (or `0.0, 1.0, ...`). Where this is false, a class index means nothing to a reader until
    /// the report says which label it stands for.
    pub fn labels_are_indices(&self) -> bool {
        self.class_names
            .iter()
            .enumerate()
            .all(|(c, name)| *name == c.to_string())
    }

    /// The class a model that ignores its input would predict: the most frequent training label (the lowest
    /// such class on a tie), 0 without training points.
    pub fn majority_class(&self) -> u32 {
        let mut counts = vec![0usize; self.classes.max(1)];
        for &y in &self.train_y {
            if let Some(c) = counts.get_mut(y as usize) {
                *c += 1;
            }
        }
        // max_by_key keeps the last of equal maxima: reversed, the lowest class.
        (0..counts.len())
            .rev()
            .max_by_key(|&c| counts[c])
            .unwrap_or(0) as u32
    }

    /// The accuracy on `labels` (the test or validation labels) of always predicting
    /// [`Dataset::majority_class`]: the baseline a classifier must beat to have learned anything from its input
    /// (`1 / classes` on balanced classes; 0.9 where nine points in ten share a class). 0 for no labels.
    pub fn majority_accuracy(&self, labels: &[u32]) -> f64 {
        if labels.is_empty() {
            return 0.0;
        }
        let m = self.majority_class();
        labels.iter().filter(|&&y| y == m).count() as f64 / labels.len() as f64
    }

    /// At most `train_per_class` training rows of each class and at most `held_out_per_class` test and
    /// validation rows of each class: the first of each class in the order the sets hold them (a CSV file's sets
    /// are its random split, each in file order), the rest dropped. A smaller problem from the same split, for a
    /// smoke test (`study --quick` on a CSV file); the features, classes and class names are unchanged, and so is
    /// the standardisation a CSV file's features had from all of its training rows. (The fields are public: rows
    /// past the end of a set's features, which no dataset made here has, are dropped.)
    pub fn at_most_per_class(mut self, train_per_class: usize, held_out_per_class: usize) -> Self {
        let (f, classes) = (self.features, self.classes);
        let keep = |x: &mut Vec<f32>, y: &mut Vec<u32>, per_class: usize| {
            let mut taken = vec![0usize; classes];
            let (mut kept_x, mut kept_y) = (Vec::new(), Vec::new());
            for (i, &label) in y.iter().enumerate() {
                let start = i.checked_mul(f);
                let Some(row) = start.and_then(|s| x.get(s..s.checked_add(f)?)) else {
                    break;
                };
                // (A label past the classes, which no Dataset holds, would be kept rather than lost.)
                let keep_row = taken.get_mut(label as usize).is_none_or(|n| {
                    *n += 1;
                    *n <= per_class
                });
                if keep_row {
                    kept_y.push(label);
                    kept_x.extend_from_slice(row);
                }
            }
            *x = kept_x;
            *y = kept_y;
        };
        keep(&mut self.train_x, &mut self.train_y, train_per_class);
        keep(&mut self.test_x, &mut self.test_y, held_out_per_class);
        keep(&mut self.val_x, &mut self.val_y, held_out_per_class);
        self
    }

    /// The same points with every feature (training, test and validation) multiplied by `scale` (each product
    /// rounded once to f32; exact for a power of two, and a scale of 1 leaves every bit as it was). Labels are
    /// unchanged.
    pub fn scaled(mut self, scale: f32) -> Self {
        for v in self
            .train_x
            .iter_mut()
            .chain(self.test_x.iter_mut())
            .chain(self.val_x.iter_mut())
        {
            *v *= scale;
        }
        self
    }
}

/// Irwin-Hall noise of standard deviation `s`: `(u1 + u2 + u3 - 1.5) * 2 s`.
fn noise(rng: &mut Rng, s: f64) -> f64 {
    (rng.unit() + rng.unit() + rng.unit() - 1.5) * 2.0 * s
}

/// `n` points per class on three spiral arms: radius r in (0, 1], angle 2.5 pi r + 2 pi k / 3 (1.25 turns) plus
/// noise of up to 0.45 radians (std 0.15). Returns row-major `[3 n, 2]` points and their classes.
pub fn spirals(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    const CLASSES: usize = 3;
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(2 * CLASSES * n);
    let mut y = Vec::with_capacity(CLASSES * n);
    for i in 0..n {
        for k in 0..CLASSES {
            let r = (i as f64 + 1.0) / n as f64;
            let noise = (rng.unit() + rng.unit() + rng.unit() - 1.5) * 0.3;
            let t = 2.5 * PI * r + 2.0 * PI * k as f64 / CLASSES as f64 + noise;
            x.extend([(r * t.cos()) as f32, (r * t.sin()) as f32]);
            y.push(k as u32);
        }
    }
    (x, y)
}

/// Two moons: class 0 at `(cos t, sin t)`, class 1 at `(1 - cos t, 0.5 - sin t)`, `t` uniform in `[0, pi)`, plus
/// noise of std 0.15 on each coordinate; centred by subtracting `(0.5, 0.25)`.
pub fn moons(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(4 * n);
    let mut y = Vec::with_capacity(2 * n);
    for _ in 0..n {
        for k in 0..2u32 {
            let t = PI * rng.unit();
            let (px, py) = if k == 0 {
                (t.cos(), t.sin())
            } else {
                (1.0 - t.cos(), 0.5 - t.sin())
            };
            let (nx, ny) = (noise(&mut rng, 0.15), noise(&mut rng, 0.15));
            x.extend([(px + nx - 0.5) as f32, (py + ny - 0.25) as f32]);
            y.push(k);
        }
    }
    (x, y)
}

/// Two concentric rings: class 0 on radius 1, class 1 on radius 0.5, angle uniform, noise of std 0.08 on each
/// coordinate.
pub fn circles(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(4 * n);
    let mut y = Vec::with_capacity(2 * n);
    for _ in 0..n {
        for k in 0..2u32 {
            let t = 2.0 * PI * rng.unit();
            let r = if k == 0 { 1.0 } else { 0.5 };
            let (nx, ny) = (noise(&mut rng, 0.08), noise(&mut rng, 0.08));
            x.extend([(r * t.cos() + nx) as f32, (r * t.sin() + ny) as f32]);
            y.push(k);
        }
    }
    (x, y)
}

/// A 4 x 4 checkerboard on `[-1, 1)^2`: class `(floor(2 (x + 1)) + floor(2 (y + 1))) mod 2`. Points are drawn
/// uniformly and kept when their class is the one due, so each class has exactly `n` points.
pub fn checkerboard(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(4 * n);
    let mut y = Vec::with_capacity(2 * n);
    for _ in 0..n {
        for k in 0..2u32 {
            loop {
                let (px, py) = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
                if checker_class(px, py) == k {
                    x.extend([px, py]);
                    y.push(k);
                    break;
                }
            }
        }
    }
    (x, y)
}

/// The checkerboard's class of a point in `[-1, 1)^2`.
fn checker_class(px: f32, py: f32) -> u32 {
    let cell = |v: f32| ((f64::from(v) + 1.0) * 2.0).floor().clamp(0.0, 3.0) as u32;
    (cell(px) + cell(py)) % 2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The majority baseline: 1/3 on the balanced spirals; the training set's most frequent class, scored on
    /// other labels, on an unbalanced one; the lowest class on a tie.
    #[test]
    fn the_majority_baseline_predicts_the_most_frequent_training_class() {
        let d = Dataset::new(DatasetKind::Spirals, 10, 10, 1);
        assert_eq!(d.majority_class(), 0);
        assert!((d.majority_accuracy(&d.test_y) - 1.0 / 3.0).abs() < 1e-12);
        let mut d = d;
        d.train_y = vec![2, 1, 2, 0, 2];
        assert_eq!(d.majority_class(), 2);
        assert_eq!(d.majority_accuracy(&[2, 2, 1, 0]), 0.5);
        assert_eq!(d.majority_accuracy(&[]), 0.0);
        d.train_y = vec![1, 2, 2, 1];
        assert_eq!(d.majority_class(), 1);
    }

    #[test]
    fn a_built_in_datasets_classes_are_their_own_labels() {
        for kind in DatasetKind::ALL {
            let d = Dataset::new(kind, 5, 5, 1);
            assert_eq!(d.class_names.len(), kind.classes(), "{kind}");
            assert!(d.labels_are_indices(), "{kind}");
            assert_eq!(d.clone().scaled(2.0).class_names, d.class_names);
        }
        let mut d = Dataset::new(DatasetKind::Spirals, 5, 5, 1);
        d.class_names = vec!["b".into(), "a".into(), "c".into()];
        assert!(!d.labels_are_indices());
        assert_eq!(d.class_label(1), "a");
    }

    #[test]
    fn every_dataset_is_deterministic_balanced_and_bounded() {
        for kind in DatasetKind::ALL {
            let d = Dataset::new(kind, 50, 20, 7);
            assert_eq!(d.train_x.len(), 2 * d.train_y.len(), "{kind}");
            assert_eq!(d.train_y.len(), 50 * kind.classes(), "{kind}");
            assert_eq!(d.test_y.len(), 20 * kind.classes(), "{kind}");
            assert_eq!(d.val_y.len(), d.test_y.len(), "{kind}");
            assert_ne!(
                d.val_x, d.test_x,
                "{kind}: the validation set is a draw of its own"
            );
            for k in 0..kind.classes() as u32 {
                assert_eq!(d.train_y.iter().filter(|&&y| y == k).count(), 50, "{kind}");
            }
            assert!(
                d.train_x.iter().all(|v| v.is_finite() && v.abs() < 2.0),
                "{kind}"
            );
            let again = Dataset::new(kind, 50, 20, 7);
            assert_eq!(
                (d.train_x, d.test_x),
                (again.train_x, again.test_x),
                "{kind}"
            );
            assert_ne!(kind.generate(5, 1).0, kind.generate(5, 2).0, "{kind}");
            assert_eq!(DatasetKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(DatasetKind::from_name("mnist"), None);
    }

    #[test]
    fn checkerboard_labels_follow_the_cells() {
        let (x, y) = checkerboard(100, 3);
        for (p, &k) in x.chunks(2).zip(&y) {
            assert_eq!(checker_class(p[0], p[1]), k);
        }
        assert_eq!(checker_class(-0.9, -0.9), 0);
        assert_eq!(checker_class(-0.4, -0.9), 1);
    }
}
