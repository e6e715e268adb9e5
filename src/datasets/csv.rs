//! A classification dataset from a CSV file: numeric features and one class label per row, split into training,
//! test and validation sets per class from a seed, the features standardised with the training set's statistics.
//!
//! The file format, kept to what a spreadsheet or `pandas.DataFrame.to_csv` writes for numeric data:
//! - fields separated by commas (or tabs, where the first row has a tab and no comma); a field may be wrapped in
//!   double quotes, which are dropped (a quoted field may not contain the separator); spaces around a field are
//!   ignored; empty lines, lines of empty fields (`,,,`) and lines starting with `#` are skipped;
//! - an optional header: the first row is one when none of its feature fields is a number, when its label is a
//!   word above a number in the next row, when its label is a word that no other row has while the other rows'
//!   labels repeat and its feature names are whole numbers (`400, 450, ..., species`: wavelengths), or when it
//!   numbers its columns as pandas names a frame's unnamed ones (`0, 1, 2, ...` over at least two features by
//!   their rank or by their column number, after an index column if there is one, with a word or the label's own
//!   number as the label: `pd.DataFrame(X).assign(label=y).to_csv(index=False)`, or `to_csv()` of an unnamed
//!   frame). So a file whose first label is a word (`unknown`) and second a number, or whose first row is the
//!   only one of its class under whole-number features, loses its first row to the header: give such labels a
//!   word in every row, or say whether there is a header ([`CsvFormat::header`]);
//! - row names: where the header's first name is empty, the label is another column and that column's values
//!   are distinct whole numbers or words (pandas' index, as `to_csv` writes it by default, or R's `write.csv`
//!   row names), the first column is dropped, not read as a feature (an unnamed column of fractions or repeated
//!   values stays a feature);
//! - one label column (the last, unless chosen): labels that are all numbers become classes by their sorted
//!   distinct values (`0..=9` stay `0..=9`; `1, 2` become `0, 1`, as do `1.0, 2.0`, `-1, 1` and `10, 20`; `3, 7, 9`
//!   become `0, 1, 2`; `1` and `1.0` are one class, `2.5` comes before `10.5`), and any other labels (`setosa`)
//!   by their sorted (byte) order, so that every class has rows and the same classes spelt differently make the
//!   same dataset. [`Table::class_names`] and the dataset's [`Dataset::class_names`] keep each class index's
//!   label (the study's report and `results.json` show which label became which class). At most
//!   [`MAX_CLASSES`] classes;
//! - a label column of near-distinct values is not a class: 3 or more distinct labels with 2 rows or fewer per
//!   label on average (distinct labels at least half the rows) is an error ([`CsvError::NotAClass`]) naming the
//!   column, since a class needs 3 rows to give training, test and validation one each (a measurement such as a
//!   price, or an identifier, chosen as the label). Two labels are classes however few the rows. A label that is
//!   empty or one of pandas' missing-value markers (`NA`, `nan`, `null`, ...) is an error naming the line
//!   ([`CsvError::MissingLabel`]), not a class of its own;
//! - every other field a finite number: a missing value, `NA` or `nan` is an error naming the line and column,
//!   not a silent zero.
//!
//! The split: each class's rows are shuffled from the seed, then [`TEST_FRACTION`] of them (rounded to nearest)
//! go to the test set, as many to the validation set, and the rest (at least one) to training; each set keeps
//! the file's row order. Then every feature `j` becomes `(x_j - mean_j) / std_j`, the training rows' mean and
//! population standard deviation (a constant feature is only centred), computed in f64 (without overflow for
//! values up to f64's largest); a standardised value beyond f32's range saturates at `±f32::MAX`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{DataSource, Dataset};
use crate::verify::Rng;

/// The largest finite f32, as f64: where standardised values saturate.
const F32_MAX: f64 = f32::MAX as f64;

/// The share of each class's rows in the test set, and again in the validation set.
pub const TEST_FRACTION: f64 = 0.2;

/// The most classes a file may have (each is an output unit; more is likely the wrong label column).
pub const MAX_CLASSES: usize = 10_000;

/// Why a CSV file could not become a dataset. Lines and columns count from 1, as editors show them. More
/// variants may come (as [`crate::Error`]'s may): match with a catch-all arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum CsvError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A feature field that is not a finite number.
    NotANumber {
        /// Line in the file.
        line: usize,
        /// Column (field) in the line.
        column: usize,
        /// The field as written.
        field: String,
    },
    /// A row with a different number of fields from the first.
    Ragged {
        /// Line in the file.
        line: usize,
        /// Fields of the first row.
        expected: usize,
        /// Fields of this one.
        got: usize,
    },
    /// The label column is not one of the rows' columns.
    LabelColumn {
        /// The column asked for (from 1).
        column: usize,
        /// Columns per row.
        columns: usize,
    },
    /// A row whose label field is empty or a missing-value marker (`NA`, `nan`, `null`: what pandas reads as
    /// missing).
    MissingLabel {
        /// Line in the file.
        line: usize,
        /// The label field as written (empty, or the marker).
        field: String,
    },
    /// More distinct labels than [`MAX_CLASSES`].
    TooManyClasses {
        /// Distinct labels in the file.
        classes: usize,
    },
    /// A label column of near-distinct values (see the module documentation): a measurement or an identifier, not
    /// a class.
    NotAClass {
        /// The label column (from 1).
        column: usize,
        /// Distinct labels.
        labels: usize,
        /// Rows.
        rows: usize,
        /// Whether the labels are all numbers (a measurement) rather than words (names of the rows).
        numeric: bool,
    },
    /// Too little data for a study: the message says what.
    TooSmall(String),
    /// A [`Table`] whose fields disagree (one built by hand rather than by [`parse`]): the message says how.
    InconsistentTable(String),
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsvError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CsvError::NotANumber {
                line,
                column,
                field,
            } => write!(
                f,
                "line {line}, column {column}: '{field}' is not a finite number (features must be numeric, \
                 with no missing values)"
            ),
            CsvError::Ragged {
                line,
                expected,
                got,
            } => write!(
                f,
                "line {line} has {got} fields where the first row has {expected}"
            ),
            CsvError::LabelColumn { column, columns } => write!(
                f,
                "label column {column} is past the {columns} columns of the rows"
            ),
            CsvError::MissingLabel { line, field } if field.is_empty() => {
                write!(f, "line {line}: the label is empty")
            }
            CsvError::MissingLabel { line, field } => write!(
                f,
                "line {line}: the label {field:?} is a missing value (one of pandas' default markers: NA, nan, \
                 null, None, ...), not a class"
            ),
            CsvError::TooManyClasses { classes } => write!(
                f,
                "{classes} distinct labels: more classes than {MAX_CLASSES} (is the label column the right one?)"
            ),
            CsvError::NotAClass {
                column,
                labels,
                rows,
                numeric,
            } => write!(
                f,
                "{labels} distinct labels in {rows} rows: the label column (column {column}) {}, not a class (2 \
                 rows or fewer per label on average, where a class needs 3 to give training, test and validation \
                 one each); choose the label column with --label-column",
                if *numeric {
                    "looks continuous"
                } else {
                    "looks like a name for each row"
                }
            ),
            CsvError::TooSmall(msg) => write!(f, "{msg}"),
            CsvError::InconsistentTable(msg) => write!(f, "inconsistent table: {msg}"),
        }
    }
}

impl std::error::Error for CsvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CsvError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The rows of a CSV file before the split: features row-major `[labels.len(), features]` in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Features per row.
    pub features: usize,
    /// The features, row-major.
    pub x: Vec<f64>,
    /// Each row's class index.
    pub labels: Vec<u32>,
    /// The label of each class index: as written, or for numeric labels the number (`1.0` and `1` are `1`).
    pub class_names: Vec<String>,
    /// The label's column in the file, from 0 (counting a row-name column).
    pub label_column: usize,
    /// Whether the labels are all numbers.
    pub numeric_labels: bool,
}

/// Splits a line into trimmed fields with one pair of surrounding double quotes dropped.
fn fields(line: &str, separator: char) -> Vec<&str> {
    line.split(separator)
        .map(|f| {
            let f = f.trim();
            f.strip_prefix('"')
                .and_then(|g| g.strip_suffix('"'))
                .unwrap_or(f)
        })
        .collect()
}

/// The fields pandas' `read_csv` reads as a missing value by default (`na_values`): a label that is one of them
/// is missing, as an empty one is, rather than a class of its own (`NA` beside `0, 1, 2` would be a fourth).
const MISSING_MARKERS: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// A finite number, or `None`.
fn finite(field: &str) -> Option<f64> {
    field.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Whether the first of `lines` is a header (see the module documentation). A row with some numbers among its
/// feature fields and none of the other signs (`1,NA,0`) is data, and its bad field an error, rather than a row
/// silently dropped.
fn is_header(lines: &[(usize, &str)], separator: char, label: usize) -> bool {
    let number = |f: &str| f.parse::<f64>().is_ok();
    let head = fields(lines[0].1, separator);
    let features = || head.iter().enumerate().filter(|&(c, _)| c != label);
    let no_number = features().all(|(_, f)| !number(f));
    // An empty first name over another label column is pandas' index (or R's row names): the frame's own
    // columns start after it.
    let index = usize::from(label != 0 && head[0].is_empty());
    let named = || features().filter(|&(c, _)| c >= index);
    // pandas numbers unnamed columns by their place in the frame: the features' ranks where the label was
    // appended or inserted, their column numbers where the frame held the label from the start.
    let numbered = |name: fn(usize, usize) -> usize| {
        named()
            .enumerate()
            .all(|(i, (c, f))| f.parse::<usize>() == Ok(name(i, c - index)))
    };
    let range_names = named().count() >= 2
        && (numbered(|rank, _| rank) || numbered(|_, column| column))
        && (!number(head[label]) || head[label].parse::<usize>() == Ok(label - index));
    let label_of = |l: &str| fields(l, separator).get(label).map(|f| f.to_string());
    // A missing-value marker is no word: `1,2,NA` above `3,4,0` is a data row with a missing label (an error),
    // not a header over a numeric label.
    let word = |f: &str| !number(f) && !MISSING_MARKERS.contains(&f);
    let label_word = word(head[label])
        && lines
            .get(1)
            .and_then(|(_, l)| label_of(l))
            .is_some_and(|f| number(&f));
    // A word label that no other row has (`species` above `setosa`, `virginica`, ...), where the other rows'
    // labels do repeat and the feature names are whole numbers (`400, 450`: wavelengths, years), names the column:
    // a class of one row on the first line is far less likely there.
    let whole_names = named().all(|(_, f)| f.parse::<i64>().is_ok());
    let label_alone = whole_names && word(head[label]) && {
        let others: Vec<Option<String>> = lines[1..].iter().map(|(_, l)| label_of(l)).collect();
        let distinct: std::collections::HashSet<&Option<String>> = others.iter().collect();
        distinct.len() < others.len() && !distinct.contains(&Some(head[label].to_string()))
    };
    no_number || range_names || label_word || label_alone
}

/// What the caller knows about a file's layout; the defaults detect it (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsvFormat {
    /// The label's column, counting from 0; `None` for the last.
    pub label_column: Option<usize>,
    /// Whether the first row is a header: `None` detects it, `Some` overrides the detection (for a file whose
    /// first row the rules would misread).
    pub header: Option<bool>,
}

/// Parses CSV text (see the module documentation) laid out as `format` says.
pub fn parse(text: &str, format: &CsvFormat) -> Result<Table, CsvError> {
    let label_column = format.label_column;
    // A UTF-8 byte-order mark, as spreadsheet programs write one, is not part of the first field.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        // A row of empty fields (`,,,` as spreadsheets write for a formatted but empty row) is an empty line.
        .filter(|(_, l)| {
            !l.starts_with('#')
                && !l
                    .chars()
                    .all(|c| matches!(c, ',' | '\t' | '"') || c.is_whitespace())
        })
        .collect();
    let Some(&(_, first)) = lines.first() else {
        return Err(CsvError::TooSmall("the file has no rows".into()));
    };
    let separator = if first.contains('\t') && !first.contains(',') {
        '\t'
    } else {
        ','
    };
    let columns = fields(first, separator).len();
    if columns < 2 {
        return Err(CsvError::TooSmall(format!(
            "rows need a feature and a label; the first row has {columns} field"
        )));
    }
    let label = label_column.unwrap_or(columns - 1);
    if label >= columns {
        return Err(CsvError::LabelColumn {
            column: label.saturating_add(1),
            columns,
        });
    }
    let header = format
        .header
        .unwrap_or_else(|| is_header(&lines, separator, label));
    let rows = if header { &lines[1..] } else { &lines[..] };
    // A header whose first name is empty sits above row names: pandas' index (`to_csv` keeps it by default) or
    // R's `write.csv` row names. They number or name the rows, and a class-sorted file's row numbers would
    // predict its labels, so they are not a feature; a column that holds anything else (a repeated value, a
    // fraction) is a feature without a name.
    let row_names = header && label != 0 && fields(first, separator)[0].is_empty() && {
        let names: Vec<&str> = rows
            .iter()
            .filter_map(|(_, l)| fields(l, separator).first().copied())
            .collect();
        let distinct: std::collections::HashSet<&&str> = names.iter().collect();
        distinct.len() == names.len()
            && names
                .iter()
                .all(|f| f.parse::<i64>().is_ok() || f.parse::<f64>().is_err())
    };
    let features = columns - 1 - usize::from(row_names);
    if features == 0 {
        return Err(CsvError::TooSmall(
            "rows need a feature and a label; the file has only row names and a label".into(),
        ));
    }
    // Grown as rows pass their checks: a large file that is not CSV fails at its first bad row, not on a
    // reservation sized from its line count.
    let mut x = Vec::new();
    let mut raw_labels = Vec::new();
    for &(line, text) in rows {
        let row = fields(text, separator);
        if row.len() != columns {
            return Err(CsvError::Ragged {
                line,
                expected: columns,
                got: row.len(),
            });
        }
        for (c, f) in row.iter().enumerate() {
            if row_names && c == 0 {
                continue;
            }
            if c == label {
                if MISSING_MARKERS.contains(f) {
                    return Err(CsvError::MissingLabel {
                        line,
                        field: f.to_string(),
                    });
                }
                raw_labels.push((line, f.to_string()));
            } else {
                x.push(finite(f).ok_or_else(|| CsvError::NotANumber {
                    line,
                    column: c + 1,
                    field: f.to_string(),
                })?);
            }
        }
    }
    if raw_labels.is_empty() {
        return Err(CsvError::TooSmall(
            "the file has a header but no rows".into(),
        ));
    }
    let numeric_labels = raw_labels.iter().all(|(_, s)| finite(s).is_some());
    let (labels, class_names) = class_indices(&raw_labels, numeric_labels);
    let classes = class_names.len();
    if classes > MAX_CLASSES {
        // So many labels in about as many rows are a measurement or an identifier: say that, not "too many".
        return Err(
            match not_a_class(label, classes, raw_labels.len(), numeric_labels) {
                Some(e) => e,
                None => CsvError::TooManyClasses { classes },
            },
        );
    }
    Ok(Table {
        features,
        x,
        labels,
        class_names,
        label_column: label,
        numeric_labels,
    })
}

/// Class indices and names of the labels (see the module documentation): numbers by their sorted distinct
/// values, anything else by sorted (byte) rank; every class index has a row.
fn class_indices(raw: &[(usize, String)], numeric: bool) -> (Vec<u32>, Vec<String>) {
    if numeric {
        // `+ 0.0` makes -0 zero, one class with 0 under `total_cmp`.
        let values: Vec<f64> = raw
            .iter()
            .map(|(_, s)| finite(s).map_or(0.0, |v| v + 0.0))
            .collect();
        let mut distinct = values.clone();
        distinct.sort_unstable_by(f64::total_cmp);
        distinct.dedup();
        let labels = values
            .iter()
            .map(|v| distinct.binary_search_by(|d| d.total_cmp(v)).unwrap_or(0) as u32)
            .collect();
        // f64's shortest form: `1.0` is `1`, as whole numbers were always named; `1e20` in full.
        return (labels, distinct.iter().map(f64::to_string).collect());
    }
    let mut names: Vec<String> = raw.iter().map(|(_, s)| s.clone()).collect();
    names.sort();
    names.dedup();
    let labels = raw
        .iter()
        .map(|(_, s)| names.binary_search(s).unwrap_or(0) as u32)
        .collect();
    (labels, names)
}

/// [`CsvError::NotAClass`] where `labels` distinct labels in `rows` rows are no class column (see the module
/// documentation): 3 or more labels, with 2 rows or fewer per label on average.
fn not_a_class(column: usize, labels: usize, rows: usize, numeric: bool) -> Option<CsvError> {
    (labels >= 3 && 2 * labels >= rows).then_some(CsvError::NotAClass {
        column: column.saturating_add(1),
        labels,
        rows,
        numeric,
    })
}

/// Rows of each split, in file order.
struct Split {
    train: Vec<usize>,
    test: Vec<usize>,
    validation: Vec<usize>,
}

/// Each class's rows (`by_class`, [`rows_by_class`]) shuffled from `seed` (Fisher-Yates), [`TEST_FRACTION`] to
/// test, as many to validation.
fn split(by_class: Vec<Vec<usize>>, seed: u64) -> Split {
    let mut rng = Rng::new(seed);
    let mut s = Split {
        train: Vec::new(),
        test: Vec::new(),
        validation: Vec::new(),
    };
    for mut rows in by_class {
        for i in (1..rows.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            rows.swap(i, j);
        }
        let held = (rows.len() as f64 * TEST_FRACTION).round() as usize;
        s.test.extend_from_slice(&rows[..held]);
        s.validation.extend_from_slice(&rows[held..2 * held]);
        s.train.extend_from_slice(&rows[2 * held..]);
    }
    for rows in [&mut s.train, &mut s.test, &mut s.validation] {
        rows.sort_unstable();
    }
    s
}

/// The rows of each class, in file order (one pass).
fn rows_by_class(labels: &[u32], classes: usize) -> Vec<Vec<usize>> {
    let mut rows = vec![Vec::new(); classes];
    for (r, &c) in labels.iter().enumerate() {
        rows[c as usize].push(r);
    }
    rows
}

impl Table {
    /// [`CsvError::InconsistentTable`] unless every label is a class index and `x` holds `features` values for
    /// each label (as [`parse`] makes them; the fields are public, so a table built by hand is checked).
    fn check_consistent(&self) -> Result<(), CsvError> {
        let classes = self.classes();
        if let Some(&label) = self.labels.iter().find(|&&l| l as usize >= classes) {
            return Err(CsvError::InconsistentTable(format!(
                "label {label} is not a class index: there are {classes} class names"
            )));
        }
        let want = self.labels.len().checked_mul(self.features);
        if want != Some(self.x.len()) {
            return Err(CsvError::InconsistentTable(format!(
                "{} feature values for {} rows of {} features",
                self.x.len(),
                self.labels.len(),
                self.features
            )));
        }
        Ok(())
    }

    /// Classes: the distinct labels.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// The dataset: split per class from `seed`, features standardised by the training rows (see the module
    /// documentation). At least two classes, a label column that is one ([`CsvError::NotAClass`]) and rows
    /// enough for a test and a validation row are needed.
    pub fn into_dataset(self, source: DataSource, seed: u64) -> Result<Dataset, CsvError> {
        self.check_consistent()?;
        let classes = self.classes();
        let by_class = rows_by_class(&self.labels, classes);
        let present = by_class.iter().filter(|rows| !rows.is_empty()).count();
        if present < 2 {
            return Err(CsvError::TooSmall(format!(
                "{} row(s) of {present} class: a classification study needs at least two classes",
                self.labels.len()
            )));
        }
        if let Some(e) = not_a_class(
            self.label_column,
            present,
            self.labels.len(),
            self.numeric_labels,
        ) {
            return Err(e);
        }
        let s = split(by_class, seed);
        if s.test.is_empty() {
            return Err(CsvError::TooSmall(format!(
                "{} rows: too few to hold out a test and a validation set ({TEST_FRACTION} of each class's rows, \
                 rounded, so at least 3 rows of some class)",
                self.labels.len()
            )));
        }
        let f = self.features;
        let row = |r: usize| &self.x[r * f..(r + 1) * f];
        let n = s.train.len() as f64;
        let (mut mean, mut var) = (vec![0.0f64; f], vec![0.0f64; f]);
        let (mut lo, mut hi) = (vec![f64::INFINITY; f], vec![f64::NEG_INFINITY; f]);
        for &r in &s.train {
            for (j, &v) in row(r).iter().enumerate() {
                // Term by term: a sum of values near f64::MAX would overflow before the division.
                mean[j] += v / n;
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        // Deviations of a feature whose values reach past 1e150 are taken in units of its largest magnitude:
        // squared as they are, those past 1.3e154 would overflow and make the feature's scale 0. (Other
        // features keep unit 1, so ordinary data standardises to the same bits as without the rescaling.)
        let unit: Vec<f64> = (0..f)
            .map(|j| match lo[j].abs().max(hi[j].abs()) {
                m if m > 1e150 => m,
                _ => 1.0,
            })
            .collect();
        for &r in &s.train {
            for (j, v) in row(r).iter().enumerate() {
                let d = v / unit[j] - mean[j] / unit[j];
                var[j] += d * d;
            }
        }
        // A feature constant over the training rows is only centred, on its value (its computed mean and
        // variance are rounding: a variance of 1e-34 for 0.1 in every row, whose root would blow a test row's
        // small difference up to 1e14).
        for j in 0..f {
            if hi[j] <= lo[j] {
                mean[j] = lo[j];
            }
        }
        // The factor on a deviation taken in units: 1 / std in units, or the unit itself for a feature that is
        // only centred.
        let scale: Vec<f64> = (0..f)
            .map(|j| {
                if hi[j] > lo[j] && var[j] > 0.0 {
                    1.0 / (var[j] / n).sqrt()
                } else {
                    unit[j]
                }
            })
            .collect();
        let take = |rows: &[usize]| -> (Vec<f32>, Vec<u32>) {
            let mut x = Vec::with_capacity(rows.len() * f);
            for &r in rows {
                x.extend(
                    row(r)
                        .iter()
                        .zip(&mean)
                        .zip(&scale)
                        // A test row further out than f32 holds saturates rather than becoming inf.
                        .zip(&unit)
                        .map(|(((v, m), k), u)| {
                            ((v / u - m / u) * k).clamp(-F32_MAX, F32_MAX) as f32
                        }),
                );
            }
            (x, rows.iter().map(|&r| self.labels[r]).collect())
        };
        let (train_x, train_y) = take(&s.train);
        let (test_x, test_y) = take(&s.test);
        let (val_x, val_y) = take(&s.validation);
        Ok(Dataset {
            source,
            features: f,
            classes,
            train_x,
            train_y,
            test_x,
            test_y,
            val_x,
            val_y,
            class_names: self.class_names,
        })
    }
}

/// Reads `path` and makes it a dataset: [`parse`], then [`Table::into_dataset`] with the split drawn from
/// `seed`. `label_column` counts from 0; `None` takes the last column. Each class index's label is in the
/// dataset's [`Dataset::class_names`].
pub fn load(path: &Path, format: &CsvFormat, seed: u64) -> Result<Dataset, CsvError> {
    load_named(path, format, seed).map(|loaded| loaded.dataset)
}

/// A dataset read from a CSV file, with the label each class index stands for.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The dataset ([`load`]'s), which carries the same names in [`Dataset::class_names`].
    pub dataset: Dataset,
    /// The label of class index `c` is `class_names[c]` ([`Table::class_names`]): `["1", "2"]` for a file
    /// labelled 1 and 2, whose classes are 0 and 1.
    pub class_names: Vec<String>,
}

/// [`load`], with each class index's label also beside the dataset (the same as its [`Dataset::class_names`]).
pub fn load_named(path: &Path, format: &CsvFormat, seed: u64) -> Result<Loaded, CsvError> {
    let text = std::fs::read_to_string(path).map_err(|source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dataset = parse(&text, format)?.into_dataset(DataSource::Csv(path.to_path_buf()), seed)?;
    Ok(Loaded {
        class_names: dataset.class_names.clone(),
        dataset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        parse(text, &CsvFormat::default()).unwrap()
    }

    fn label_at(column: usize) -> CsvFormat {
        CsvFormat {
            label_column: Some(column),
            header: None,
        }
    }

    #[test]
    fn headers_quotes_tabs_comments_and_string_labels() {
        let t = table("# iris-like\nsepal, width ,\"species\"\n5.1,3.5,setosa\n\n4.9,3.0,\"virginica\"\n6.0,2.2,setosa\n");
        assert_eq!(t.features, 2);
        assert_eq!(t.x, [5.1, 3.5, 4.9, 3.0, 6.0, 2.2]);
        assert_eq!(t.labels, [0, 1, 0]);
        assert_eq!(t.class_names, ["setosa", "virginica"]);
        // No header, tabs, the label first, whole-number labels kept as indices.
        let t = parse("1\t0.5\t1e3\r\n0\t-1\t7\r\n", &label_at(0)).unwrap();
        assert_eq!((t.features, t.x.clone()), (2, vec![0.5, 1e3, -1.0, 7.0]));
        assert_eq!((t.labels.clone(), t.classes()), (vec![1, 0], 2));
        // "1.0" is a whole number; labels from 1 are numbered from 0 (no empty class 0).
        assert_eq!(table("0.5,1.0\n0.25,0\n").labels, [1, 0]);
        let one_based = table("1,1\n2,3\n3,2\n");
        assert_eq!(
            (one_based.labels.clone(), one_based.classes()),
            (vec![0, 2, 1], 3)
        );
        assert_eq!(one_based.class_names, ["1", "2", "3"]);
        // Sparse or negative whole numbers are numbered in numeric order ("10" after "2"), not kept as indices.
        let sparse = table("1,10\n2,2\n3,-1\n4,10000\n");
        assert_eq!(sparse.labels, [2, 1, 0, 3]);
        assert_eq!(sparse.class_names, ["-1", "2", "10", "10000"]);
        // A byte-order mark does not make the first field a word.
        assert_eq!(table("\u{feff}5,1\n6,0\n").x, [5.0, 6.0]);
        // Whole numbers with a gap are ranked, not kept as indices with an empty class between.
        assert_eq!(table("1,0\n2,2\n").class_names, ["0", "2"]);
        assert_eq!(table("1,0\n2,2\n").labels, [0, 1]);
        // Headers as pandas writes them: numbered columns, a label name above numeric labels.
        let pandas = table("0,1,label\n0.5,0.25,1\n0.75,0.5,0\n");
        assert_eq!((pandas.labels.clone(), pandas.x.len()), (vec![1, 0], 4));
        let words = table("0,1,species\n0.5,0.25,setosa\n0.75,0.5,virginica\n");
        assert_eq!(words.class_names, ["setosa", "virginica"]);
        let unnamed = table("0,1,2\n0.5,0.25,1\n0.75,0.5,0\n");
        assert_eq!(unnamed.labels, [1, 0]);
        // Data that merely starts like that is data: one feature, or a label that is not the column's number.
        assert_eq!(table("0,1\n1,0\n2,1\n").labels, [1, 0, 1]);
        assert_eq!(table("0,1,1\n2,3,0\n").labels, [1, 0]);
        // pandas' numbered columns where the frame held the label first: the features are named 1, 2, 3.
        let label_first = parse("0,1,2,3\n1,0.5,0.25,0.125\n0,0.75,0.5,0\n", &label_at(0)).unwrap();
        assert_eq!(
            (label_first.labels.clone(), label_first.features),
            (vec![1, 0], 3)
        );
        // Numbers naming the features (wavelengths) above word labels: the header's label is in no other row.
        let numbered =
            table("400,450,species\n0.1,0.2,setosa\n0.3,0.4,virginica\n0.5,0.6,setosa\n");
        assert_eq!(numbered.class_names, ["setosa", "virginica"]);
        assert_eq!(numbered.x, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
        // Row names under an empty first header name (pandas' index, R's write.csv) are not a feature; rows of
        // empty fields, as spreadsheets leave them, are skipped.
        let indexed =
            table(",a,b,species\n0,5.1,3.5,setosa\n,,,\n1,4.9,3.0,virginica\n\"\",,\"\",\n");
        assert_eq!(
            (indexed.features, indexed.x.clone()),
            (2, vec![5.1, 3.5, 4.9, 3.0])
        );
        assert_eq!(table("5,1\n ,\n6,0\n").x, [5.0, 6.0]);
        // pandas' default to_csv of an unnamed frame: its index, then columns numbered from 0, the label last.
        let numbered_index = table(",0,1,2\n0,0.5,0.25,1\n1,0.75,0.5,0\n2,0.1,0.2,1\n");
        assert_eq!(numbered_index.features, 2);
        assert_eq!(numbered_index.labels, [1, 0, 1]);
        // A first data row whose word label is the only one of its class stays data where the features are not
        // whole numbers; an unnamed first column of fractions or repeated values is a feature, not row names.
        let alone = table("0.1,0.2,setosa\n0.3,0.4,virginica\n0.5,0.6,virginica\n");
        assert_eq!(alone.labels.len(), 3);
        let unnamed = table(",a,species\n0.5,1,setosa\n0.5,2,virginica\n0.25,3,setosa\n");
        assert_eq!((unnamed.features, unnamed.x[0]), (2, 0.5));
        // The caller can overrule the detection either way.
        let forced = |header| CsvFormat {
            label_column: None,
            header: Some(header),
        };
        assert_eq!(
            parse("0,1\n1,0\n2,1\n", &forced(true)).unwrap().labels,
            [0, 1]
        );
        assert_eq!(parse("a,b\n1,0\n", &forced(false)).unwrap_err().to_string(), "line 1, column 1: 'a' is not a finite number (features must be numeric, with no missing values)");
    }

    #[test]
    fn mistakes_are_typed_errors_naming_the_place() {
        let err = |text: &str, format: CsvFormat| parse(text, &format).unwrap_err();
        assert!(matches!(
            err("a,b,y\n1,2,0\n1,,1\n", CsvFormat::default()),
            CsvError::NotANumber {
                line: 3,
                column: 2,
                ..
            }
        ));
        assert!(matches!(
            err("1,nan,0\n", CsvFormat::default()),
            CsvError::NotANumber {
                line: 1,
                column: 2,
                ..
            }
        ));
        assert!(matches!(
            err("1,NA,0\n", CsvFormat::default()),
            CsvError::NotANumber {
                line: 1,
                column: 2,
                ..
            }
        ));
        assert!(matches!(
            err("1,2,0\n1,2\n", CsvFormat::default()),
            CsvError::Ragged {
                line: 2,
                expected: 3,
                got: 2
            }
        ));
        assert!(matches!(
            err("1,2,0\n", label_at(3)),
            CsvError::LabelColumn {
                column: 4,
                columns: 3
            }
        ));
        // The column is reported from 1 without overflowing at the largest index.
        assert!(matches!(
            err("1,2,0\n", label_at(usize::MAX)),
            CsvError::LabelColumn {
                column: usize::MAX,
                columns: 3
            }
        ));
        let many: String = (0..30_003)
            .map(|i| format!("{i}.5,c{}\n", i % 10_001))
            .collect();
        assert!(matches!(
            err(&many, CsvFormat::default()),
            CsvError::TooManyClasses { classes: 10_001 }
        ));
        // As many labels in barely more rows are no class column, whose error says so.
        let distinct: String = (0..10_001).map(|i| format!("{i}.5,{i}.25\n")).collect();
        assert!(matches!(
            err(&distinct, CsvFormat::default()),
            CsvError::NotAClass {
                column: 2,
                labels: 10_001,
                rows: 10_001,
                numeric: true
            }
        ));
        assert!(matches!(
            err("1,0\n2,\n", CsvFormat::default()),
            CsvError::MissingLabel { line: 2, .. }
        ));
        // A marker in the first row is no header word: the row is data, and its label missing.
        for marker in ["NA", "None", "null", "N/A"] {
            assert!(matches!(
                err(
                    &format!("1,2,{marker}\n3,4,0\n5,6,1\n"),
                    CsvFormat::default()
                ),
                CsvError::MissingLabel { line: 1, .. }
            ));
        }
        // A missing-value marker is a missing label, not a class of its own, among numbers or words.
        for marker in ["NA", "nan", "NaN", "null", "None", "N/A"] {
            assert!(matches!(
                err(&format!("1,0\n2,1\n3,{marker}\n"), CsvFormat::default()),
                CsvError::MissingLabel { line: 3, .. }
            ));
            assert!(matches!(
                err(&format!("1,cat\n2,dog\n3,{marker}\n"), CsvFormat::default()),
                CsvError::MissingLabel { line: 3, .. }
            ));
        }
        assert!(matches!(
            err("", CsvFormat::default()),
            CsvError::TooSmall(_)
        ));
        assert!(matches!(
            err("x,y\n", CsvFormat::default()),
            CsvError::TooSmall(_)
        ));
        assert!(matches!(
            err("1\n2\n", CsvFormat::default()),
            CsvError::TooSmall(_)
        ));
        let one_class = table("1,0\n2,0\n3,0\n4,0\n5,0\n");
        assert!(matches!(
            one_class.into_dataset(DataSource::Csv("t.csv".into()), 1),
            Err(CsvError::TooSmall(_))
        ));
        let tiny = table("1,0\n2,1\n");
        assert!(matches!(
            tiny.into_dataset(DataSource::Csv("t.csv".into()), 1),
            Err(CsvError::TooSmall(_))
        ));
    }

    #[test]
    fn the_split_is_stratified_deterministic_and_standardised_by_training_rows() {
        // 30 rows of class 0 and 10 of class 1, feature 0 = row number, feature 1 constant.
        let mut text = String::new();
        for r in 0..40 {
            text += &format!("{r},0.1,{}\n", u32::from(r % 4 == 3));
        }
        let d = table(&text)
            .into_dataset(DataSource::Csv("t.csv".into()), 9)
            .unwrap();
        assert_eq!((d.features, d.classes), (2, 2));
        let count = |y: &[u32], c: u32| y.iter().filter(|&&v| v == c).count();
        assert_eq!((count(&d.test_y, 0), count(&d.test_y, 1)), (6, 2));
        assert_eq!((count(&d.val_y, 0), count(&d.val_y, 1)), (6, 2));
        assert_eq!((count(&d.train_y, 0), count(&d.train_y, 1)), (18, 6));
        // Training features have mean 0 and variance 1; the constant feature is 0 everywhere.
        let col = |x: &[f32], j: usize| {
            x.iter()
                .skip(j)
                .step_by(2)
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>()
        };
        let f0 = col(&d.train_x, 0);
        let mean = f0.iter().sum::<f64>() / f0.len() as f64;
        let var = f0.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / f0.len() as f64;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
        for x in [&d.train_x, &d.test_x, &d.val_x] {
            assert!(x.iter().skip(1).step_by(2).all(|&v| v == 0.0), "{x:?}");
        }
        // Every row lands in exactly one set, and labels follow their rows.
        let mut rows: Vec<(u64, u32)> = [
            (&d.train_x, &d.train_y),
            (&d.test_x, &d.test_y),
            (&d.val_x, &d.val_y),
        ]
        .iter()
        .flat_map(|(x, y)| {
            col(x, 0)
                .into_iter()
                .zip(y.iter().copied())
                .map(|(v, c)| (v.to_bits(), c))
                .collect::<Vec<_>>()
        })
        .collect();
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), 40);
        let again = table(&text)
            .into_dataset(DataSource::Csv("t.csv".into()), 9)
            .unwrap();
        assert_eq!((&d.test_x, &d.train_y), (&again.test_x, &again.train_y));
        let other = table(&text)
            .into_dataset(DataSource::Csv("t.csv".into()), 10)
            .unwrap();
        assert_ne!(d.test_x, other.test_x, "another seed, another split");
    }

    #[test]
    fn features_past_1e154_standardise_to_finite_values() {
        // Squared deviations of 1e200 overflow f64; the feature must still come out with variance 1, and a
        // test value beyond f32's range saturates instead of becoming inf.
        let mut text = String::new();
        for r in 0..20 {
            let sign = if r % 2 == 0 { 1.0 } else { -1.0 };
            text += &format!("{},{},{}\n", sign * 1e200, r, r % 2);
        }
        let d = table(&text)
            .into_dataset(DataSource::Csv("t.csv".into()), 3)
            .unwrap();
        for x in [&d.train_x, &d.test_x, &d.val_x] {
            for v in x.iter().step_by(2) {
                assert!(v.is_finite() && (v.abs() - 1.0).abs() < 0.5, "{x:?}");
            }
        }
        let mut far = Table {
            features: 1,
            x: (0..10).map(f64::from).collect(),
            labels: (0..10).map(|r| r % 2).collect(),
            class_names: vec!["0".into(), "1".into()],
            label_column: 1,
            numeric_labels: true,
        };
        far.x[0] = 1e300;
        far.x[1] = 1e300;
        far.x[2] = 1e300;
        let d = far
            .into_dataset(DataSource::Csv("t.csv".into()), 3)
            .unwrap();
        let all = d.train_x.iter().chain(&d.test_x).chain(&d.val_x);
        assert!(all.clone().all(|v| v.is_finite()), "{d:?}");
        // Values of both signs near f64's largest: v - mean itself would overflow; in units it does not.
        let mut text = String::new();
        for r in 0..20 {
            let v = if r % 4 < 2 { 1.5e308 } else { -1.5e308 };
            text += &format!("{v:e},{r},{}\n", r % 2);
        }
        let d = table(&text)
            .into_dataset(DataSource::Csv("t.csv".into()), 5)
            .unwrap();
        for x in [&d.train_x, &d.test_x, &d.val_x] {
            for v in x.iter().step_by(2) {
                assert!(v.is_finite() && v.abs() < 10.0, "{x:?}");
            }
        }
    }

    /// `rows` rows of two features and the label `labels[r % labels.len()]`; the first feature is the row number,
    /// the second a fraction, so that no first row reads as a header.
    fn labelled(rows: usize, labels: &[&str]) -> String {
        (0..rows)
            .map(|r| format!("{r},{}.25,{}\n", r * r % 7, labels[r % labels.len()]))
            .collect()
    }

    #[test]
    fn numeric_labels_are_classes_by_their_sorted_distinct_values() {
        // Labels 1/2 (or 1.0/2.0) are two classes, as 0/1 and A/B are, not three with class 0 empty: the same
        // dataset, bit for bit, as any other spelling of two classes.
        let source = || DataSource::Csv("t.csv".into());
        let reference = table(&labelled(40, &["0", "1"]))
            .into_dataset(source(), 4)
            .unwrap();
        for labels in [
            ["1", "2"],
            ["1.0", "2.0"],
            ["A", "B"],
            ["3", "7"],
            ["-1", "1"],
        ] {
            let t = table(&labelled(40, &labels));
            assert_eq!(
                (t.classes(), &t.labels[..4]),
                (2, &[0, 1, 0, 1][..]),
                "{labels:?}"
            );
            let d = t.into_dataset(source(), 4).unwrap();
            assert_eq!(d.classes, 2, "{labels:?}");
            assert_eq!(
                (&d.train_x, &d.train_y, &d.test_x, &d.test_y, &d.val_x, &d.val_y),
                (
                    &reference.train_x,
                    &reference.train_y,
                    &reference.test_x,
                    &reference.test_y,
                    &reference.val_x,
                    &reference.val_y
                ),
                "{labels:?}"
            );
        }
        // 1..=3 become 0..=2, sparse 3/7/9 become 0/1/2; 0..=9 stay as they are.
        let one_based = table(&labelled(9, &["1", "2", "3", "2"]));
        assert_eq!(one_based.labels, [0, 1, 2, 1, 0, 1, 2, 1, 0]);
        assert_eq!(one_based.class_names, ["1", "2", "3"]);
        let sparse = table(&labelled(6, &["9", "3", "7"]));
        assert_eq!(sparse.labels, [2, 0, 1, 2, 0, 1]);
        assert_eq!(sparse.class_names, ["3", "7", "9"]);
        let digits: Vec<String> = (0..10).rev().map(|d| d.to_string()).collect();
        let digits: Vec<&str> = digits.iter().map(String::as_str).collect();
        let t = table(&labelled(20, &digits));
        assert_eq!(t.labels[..10], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(
            t.class_names,
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        );
        // Fractions are numbers too: in numeric order (10.5 after 2.5), and 0.5 and 0.50 are one class.
        let fractions = table(&labelled(8, &["10.5", "2.5", "0.5", "-1", "0.50", "2.5"]));
        assert_eq!(fractions.class_names, ["-1", "0.5", "2.5", "10.5"]);
        assert_eq!(fractions.labels, [3, 2, 1, 0, 1, 2, 3, 2]);
        // The dataset keeps each class index's label, so that a report can say which label became which class
        // where they are not the same.
        let sparse = table(&labelled(30, &["9", "3", "7"]))
            .into_dataset(source(), 4)
            .unwrap();
        assert_eq!(sparse.class_names, ["3", "7", "9"]);
        assert_eq!(
            (sparse.class_label(2), sparse.class_label(5)),
            ("9".into(), "5".into())
        );
        assert!(!sparse.labels_are_indices());
        assert!(reference.labels_are_indices());
        let decimal = table(&labelled(30, &["1.0", "0.0"]))
            .into_dataset(source(), 4)
            .unwrap();
        assert!(decimal.labels_are_indices(), "{:?}", decimal.class_names);
        let words = table(&labelled(30, &["setosa", "virginica"]))
            .into_dataset(source(), 4)
            .unwrap();
        assert_eq!(words.class_names, ["setosa", "virginica"]);
        assert!(!words.labels_are_indices());
    }

    #[test]
    fn a_label_column_of_near_distinct_values_is_not_a_class() {
        let source = || DataSource::Csv("t.csv".into());
        let error = |text: &str| {
            table(text)
                .into_dataset(source(), 1)
                .unwrap_err()
                .to_string()
        };
        // A measurement in [0, 10) as the last column: 200 distinct values in 200 rows, one row per "class".
        let continuous: String = (0..200)
            .map(|r| format!("{r},{}.5,{}\n", r % 3, (r * 37 % 200) as f64 / 20.0 + 0.01))
            .collect();
        let e = table(&continuous).into_dataset(source(), 1).unwrap_err();
        assert!(matches!(
            e,
            CsvError::NotAClass {
                column: 3,
                labels: 200,
                rows: 200,
                numeric: true
            }
        ));
        assert_eq!(
            error(&continuous),
            "200 distinct labels in 200 rows: the label column (column 3) looks continuous, not a class (2 rows \
             or fewer per label on average, where a class needs 3 to give training, test and validation one \
             each); choose the label column with --label-column"
        );
        // Rounded to one decimal it repeats, 2 rows per value on average: still no class column.
        let rounded: String = (0..200)
            .map(|r| format!("{r},{}.5,{:.1}\n", r % 3, (r * 37 % 200) as f64 / 20.0))
            .collect();
        assert!(error(&rounded).starts_with(
            "100 distinct labels in 200 rows: the label column (column 3) looks continuous"
        ));
        // A label column of names, one per row (an identifier), chosen as the first column.
        let names: String = (0..30)
            .map(|r| format!("row{r},{},{}.5\n", r % 4, r % 3))
            .collect();
        let e = parse(&names, &label_at(0))
            .unwrap()
            .into_dataset(source(), 1)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "30 distinct labels in 30 rows: the label column (column 1) looks like a name for each row, not a \
             class (2 rows or fewer per label on average, where a class needs 3 to give training, test and \
             validation one each); choose the label column with --label-column"
        );
        // Classes of 3 rows, or two classes however few rows, are classes: too few rows is the error there.
        assert!(table(&labelled(
            30,
            &["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
        ))
        .into_dataset(source(), 1)
        .is_ok());
        assert!(error(&labelled(4, &["1", "2"])).contains("too few to hold out"));
    }

    #[test]
    fn load_names_a_missing_file() {
        let e = load(Path::new("/nonexistent/data.csv"), &CsvFormat::default(), 1).unwrap_err();
        assert!(matches!(e, CsvError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/data.csv"));
    }

    /// A table built by hand whose fields disagree is a typed error, not an index out of bounds.
    #[test]
    fn an_inconsistent_table_is_an_error() {
        let table = Table {
            features: 2,
            x: vec![0.0; 12],
            labels: vec![0, 1, 0, 1, 0, 1],
            class_names: vec!["a".into(), "b".into()],
            label_column: 2,
            numeric_labels: false,
        };
        let source = DataSource::Csv("hand.csv".into());
        let bad = |t: Table| match t.into_dataset(source.clone(), 1) {
            Err(CsvError::InconsistentTable(msg)) => msg,
            other => panic!("{other:?}"),
        };
        let wrong_label = Table {
            labels: vec![0, 1, 5, 1, 0, 1],
            ..table.clone()
        };
        assert!(bad(wrong_label).contains("label 5"));
        let short = Table {
            x: vec![0.0; 11],
            ..table.clone()
        };
        assert!(bad(short).contains("11 feature values for 6 rows"));
        let wide = Table {
            features: usize::MAX,
            ..table.clone()
        };
        bad(wide);
        // The consistent table passes the check (whatever its size then allows).
        assert!(!matches!(
            table.into_dataset(source, 1),
            Err(CsvError::InconsistentTable(_))
        ));
    }
}
