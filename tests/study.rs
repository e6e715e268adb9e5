//! The activation study's warm-up: it creates every pipeline a run uses, so that no timed step compiles, and the
//! runs' results do not depend on it; and a run's per-epoch diagnostics come from a full-size batch.
#![cfg(feature = "study")]

use actgpu::datasets::{Dataset, DatasetKind};
use actgpu::study::candidate::Candidate;
use actgpu::study::options::Options;
use actgpu::study::run::{train_one, warm_up, DeviceData};
use actgpu::{Activation, Gated, Gpu, GpuOptions};

#[test]
fn warm_up_creates_every_pipeline_a_run_uses() {
    // 60 training points in batches of 16: full batches and a last one of 12.
    let dataset = Dataset::new(DatasetKind::Spirals, 20, 7, 1);
    let options = Options {
        epochs: 2,
        batch: 16,
        hidden: vec![8, 8],
        ..Options::default()
    };
    let kinds = [
        Candidate::from(Activation::Gelu),
        Candidate::from(Gated::SWIGLU),
        Candidate::LEARNABLE[0],
    ];
    let gpu = Gpu::with_options(GpuOptions::default()).unwrap();
    let cold = Gpu::with_options(GpuOptions::default()).unwrap();
    let (data, cold_data) = (
        DeviceData::upload(&gpu, &dataset).unwrap(),
        DeviceData::upload(&cold, &dataset).unwrap(),
    );
    for kind in kinds {
        let config = options.config_for(kind, &dataset);
        warm_up(&gpu, &dataset, &data, &config, kind).unwrap();
        let created = gpu.pipelines().len();
        let run = train_one(&gpu, &dataset, &data, &config, kind, 3, |_, _| {}).unwrap();
        assert_eq!(
            gpu.pipelines().len(),
            created,
            "{kind}: the run created pipelines the warm-up did not"
        );
        // The same run on a context that was never warmed up.
        let again = train_one(&cold, &dataset, &cold_data, &config, kind, 3, |_, _| {}).unwrap();
        assert_eq!(
            run.epochs, again.epochs,
            "{kind}: the warm-up changed a result"
        );
        assert_eq!(run.initial, again.initial, "{kind}");
        // Timed: the full batches without diagnostics, 1 in epoch 1 (the first step and the third are
        // diagnosed) and 2 in epoch 2; not the remainders of 12 rows, which would pull the median down.
        assert_eq!(run.step_s.len(), 3, "{kind}");
        // Each epoch is diagnosed on its last full batch (16 rows), not on the remainder of 12.
        for e in &run.epochs {
            assert_eq!(e.diagnosed_rows, 16, "{kind}");
            let l = &e.layers[0];
            assert_eq!(l.units, 16 * l.neurons, "{kind}: batch x width");
        }
    }
}

/// The study on a CSV file: the 64-feature, 10-class digits shipped in `data/`, read, split, standardised and
/// trained on, with the dataset's name and shape in the results.
#[test]
fn a_study_runs_on_a_csv_file() {
    // Relative to the working directory where it is there (cargo test runs in the package root, and the device
    // scripts run the test binaries from the repository root, whose absolute path is not this machine's).
    let relative = std::path::Path::new("data/digits.csv");
    let path = if relative.exists() {
        relative.to_path_buf()
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
    };
    let options = Options {
        dataset: actgpu::datasets::DataSource::Csv(path),
        activations: vec![Candidate::from(Activation::Relu)],
        epochs: 2,
        hidden: vec![32],
        batch: 32,
        ..Options::default()
    };
    let gpu = Gpu::with_options(GpuOptions::default()).unwrap();
    let study = actgpu::study::run_study(&gpu, &options, "test", |_| {}).unwrap();
    let d = &study.dataset;
    assert_eq!((d.features, d.classes), (64, 10));
    // 1,797 rows, about 20% of each class held out for test and again for validation.
    assert_eq!(d.train_y.len() + d.test_y.len() + d.val_y.len(), 1797);
    assert!((350..=370).contains(&d.test_y.len()), "{}", d.test_y.len());
    assert_eq!(study.runs[0].sizes, [64, 32, 10]);
    let acc = study.runs[0].last().unwrap().test.accuracy;
    assert!(
        acc > 0.8,
        "two epochs of a 64-32-10 ReLU net on digits: {acc}"
    );
    let json = actgpu::study::results_json::json(&study);
    assert!(
        json.contains("\"name\": \"digits.csv\", \"features\": 64, \"classes\": 10"),
        "{json}"
    );
}

/// The study's CSV path (`Options::dataset`, no GPU): labels numbered from 1 make the same two classes as labels
/// from 0 (no empty class 0), the dataset (and [`actgpu::datasets::csv::load_named`]) says which label each class
/// is, the report's mapping shows it where the labels are not their indices, and a label
/// column of distinct measurements is named as such rather than as a file too small to split.
#[test]
fn csv_labels_from_one_and_a_continuous_label_column() {
    use actgpu::datasets::csv::{load_named, CsvError, CsvFormat};
    use actgpu::datasets::DataSource;
    use actgpu::study::StudyError;
    let dir = std::env::temp_dir().join(format!("actgpu-csv-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, label: &dyn Fn(usize) -> String| {
        let text: String = (0..60)
            .map(|r| format!("{},{}.5,{}\n", r % 7, r % 2 * 3, label(r)))
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let dataset = |path: &std::path::Path| {
        Options {
            dataset: DataSource::Csv(path.to_path_buf()),
            ..Options::default()
        }
        .dataset()
    };
    let zero = dataset(&write("zero.csv", &|r| (r % 2).to_string())).unwrap();
    let one_path = write("one.csv", &|r| format!("{}.0", r % 2 + 1));
    let one = dataset(&one_path).unwrap();
    assert_eq!((zero.classes, one.classes), (2, 2));
    assert_eq!(
        (&one.train_x, &one.train_y, &one.test_y, &one.val_y),
        (&zero.train_x, &zero.train_y, &zero.test_y, &zero.val_y)
    );
    let named = load_named(&one_path, &CsvFormat::default(), 1).unwrap();
    assert_eq!(named.class_names, ["1", "2"]);
    assert_eq!(named.dataset.classes, 2);
    // The study's dataset keeps the labels, and the report says which became which class where they differ.
    assert_eq!(one.class_names, ["1", "2"]);
    assert_eq!(
        actgpu::study::report::class_mapping(&one).as_deref(),
        Some("`1` -> 0, `2` -> 1")
    );
    assert_eq!(actgpu::study::report::class_mapping(&zero), None);
    let words = dataset(&write("words.csv", &|r| {
        ["setosa", "virginica"][r % 2].into()
    }))
    .unwrap();
    assert_eq!(
        actgpu::study::report::class_text(&words, words.majority_class()),
        "0 (label `setosa`)"
    );
    let continuous = write("continuous.csv", &|r| format!("{}", r as f64 / 6.0));
    let e = dataset(&continuous).unwrap_err();
    assert!(
        matches!(
            e,
            StudyError::Data(CsvError::NotAClass {
                column: 3,
                labels: 60,
                rows: 60,
                numeric: true
            })
        ),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(
            "dataset: 60 distinct labels in 60 rows: the label column (column 3) looks continuous"
        ),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
