//! The activation study: trains the same MLP on the same data with every activation (and several seeds when
//! asked) and reports convergence, accuracy, calibration, gradient flow and cost, ranked by test accuracy.
//!
//! Run: `cargo run --release --features study --example study [-- --dataset spirals --epochs 30 --seeds 3 --out study-out]`
//! (`-- --help` lists every option; `-- --quick` is a smoke test in seconds; `WGPU_BACKEND=vulkan` or `gl`
//! picks the backend.)
//!
//! Prints the adapter and the setup (with which label became which class index, where a CSV file's labels are not
//! already `0..k-1`), one line per run, then the ranked table and a short reading. With
//! `--out DIR` it also writes `results.json` (every number), `report.md` (table and reading) and SVG charts of
//! the loss and accuracy curves, the ECE and the gradient norm per layer. With `--lr-sweep X,Y,..` it runs the
//! study once per learning rate and ranks the kinds at their own best rate (`lr_sweep.md`, `lr_sweep.json`).
//! The work lives in `actgpu::study`.
//!
//! Printing never stops the study: once standard output is closed (piped into `head`, say), the lines are dropped
//! and the runs go on to write their `--out` files, each study's as soon as it finishes.
//!
//! Exits 0 when the study ran, 2 on a bad option (hidden widths whose weights the adapter cannot bind included), a
//! dataset file that cannot be read or used, or no adapter (as `train`, `validate` and `bench` do), 1 when the GPU
//! fails during the runs or an output cannot be written.

use std::process::ExitCode;

use actgpu::datasets::Dataset;
use actgpu::study::options::{Command, Options, USAGE};
use actgpu::study::sweep::{stale_outputs, Sweep};
use actgpu::study::{report, run_study_on, Progress, Study, StudyError};
use actgpu::Gpu;

#[path = "common/stdout.rs"]
mod stdout;
use stdout::{say, tell};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Help) => {
            say!("{}", USAGE.trim_end_matches('\n'));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            tell!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let dataset = match prepare(&options) {
        Ok(dataset) => dataset,
        Err(e) => return failed(&e),
    };
    // No adapter (or none that makes a device) is status 2, as train, validate and bench give it.
    let gpu = match Gpu::new() {
        Ok(gpu) => gpu,
        Err(e) => {
            tell!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Widths this adapter cannot hold are the caller's mistake too, found before the first run.
    let max_binding = gpu.limits().max_storage_buffer_binding_size;
    if let Err(e) = options.check_weights_fit(&dataset, max_binding) {
        tell!("error: {e}");
        return ExitCode::from(2);
    }
    match study(&gpu, &options, &dataset, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e),
    }
}

/// Reports `e` and gives its exit status.
fn failed(e: &StudyError) -> ExitCode {
    tell!("error: {e}");
    match e {
        // A dataset file that cannot be read or used is the caller's input, like a bad option: status 2.
        StudyError::Data(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// What the study needs before the GPU starts: the notes on the options, the output directory and the dataset,
/// so that a mistake in any of them is reported in milliseconds, not after the adapter starts (seconds on a
/// software one).
fn prepare(options: &Options) -> Result<Dataset, StudyError> {
    for note in options.notes() {
        tell!("note: {note}");
    }
    if let Some(dir) = &options.out {
        // Another study's outputs that this one will not overwrite would read as part of it.
        let stale = stale_outputs(dir, &options.lr_sweep);
        if !stale.is_empty() {
            let names: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
            tell!(
                "warning: {} holds outputs of another study that this {} will not overwrite, and that will sit \
                 beside its own: {} (move them, or choose another --out)",
                dir.display(),
                if options.lr_sweep.is_empty() { "study" } else { "sweep" },
                names.join(", ")
            );
        }
        // An output directory that cannot be created fails now, not after the runs it was to hold.
        std::fs::create_dir_all(dir).map_err(|source| StudyError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    // So is a dataset file that cannot be read or used.
    let dataset = options.dataset()?;
    // A batch larger than the training set is one step an epoch over all of it, which the setup line's "batch"
    // would not say.
    let rows = dataset.train_y.len();
    if options.batch > rows {
        tell!(
            "note: --batch {} is more than the {rows} training rows: every step takes all of them, one step an \
             epoch",
            options.batch
        );
    }
    Ok(dataset)
}

/// Runs the study (or the learning-rate sweep) of `options` on `dataset`, printing as it goes.
fn study(
    gpu: &Gpu,
    options: &Options,
    dataset: &Dataset,
    args: &[String],
) -> Result<(), StudyError> {
    say!("adapter: {}", gpu.adapter_line());
    if let Some(host) = gpu.host_cpu() {
        say!("host CPU: {host}");
    }
    // A CSV file's labels become class indices by their sorted values: say which is which, where they differ.
    if let Some(mapping) = report::class_mapping(dataset) {
        say!("classes (label -> class index): {mapping}");
    }
    let untested = report::untested_classes(dataset);
    if !untested.is_empty() {
        tell!(
            "warning: too few rows to hold out a test row, so the test accuracy says nothing about class {}",
            untested.join("; class ")
        );
    }
    let (wall, compiled) = if options.lr_sweep.is_empty() {
        let study = one(gpu, options, dataset, &command(args))?;
        (study.wall_s, study.compile_s)
    } else {
        let mut studies = Vec::new();
        for &lr in &options.lr_sweep {
            say!("\n=== learning rate {lr}");
            let single = options.at_lr(lr);
            let command = command(&at_lr(args, &single));
            // Each study writes its outputs (to DIR/lr-X/) as it finishes, so a later failure keeps them.
            let study = one(gpu, &single, dataset, &command)?;
            studies.push((lr, study));
        }
        let sweep = Sweep { studies };
        say!("\n=== final test accuracy at each learning rate (* at each kind's best)\n");
        say!("{}", sweep.table().trim_end_matches('\n'));
        for note in sweep.notes() {
            say!("\n{note}");
        }
        if let Some(dir) = &options.out {
            let files = sweep.write_summary(dir)?;
            say!("\nwrote {} files to {}", files.len(), dir.display());
        }
        let wall = sweep.studies.iter().map(|(_, s)| s.wall_s).sum();
        let compiled = sweep.studies.iter().map(|(_, s)| s.compile_s).sum();
        (wall, compiled)
    };
    say!(
        "study took {wall:.1} s; creating its {} pipelines took {compiled:.1} s of thread time, in parallel \
         before the runs",
        gpu.pipelines().len()
    );
    Ok(())
}

/// The command line that runs the study of `args`, each argument quoted for a POSIX shell where it needs it
/// (`--dataset 'two blobs.csv'`), so that the recorded command runs as it reads.
fn command(args: &[String]) -> String {
    std::iter::once("cargo run --release --features study --example study --".to_string())
        .chain(args.iter().map(|a| shell_word(a)))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end()
        .to_string()
}

/// `arg` as one POSIX shell word: as it is when it holds only characters no shell treats specially, else in
/// single quotes (a single quote inside as `'\''`).
fn shell_word(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,/=:+^@%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// `args` with `--lr-sweep X,Y,..` replaced by `--lr` and the rate of `single` (a study of the sweep), and `--out
/// DIR` by its directory: the command that runs that one study alone, with the same results.
fn at_lr(args: &[String], single: &Options) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--lr-sweep" => {
                it.next();
                out.push("--lr".to_string());
                out.push(single.lr.map_or_else(String::new, |lr| lr.to_string()));
            }
            "--out" => {
                it.next();
                out.push(a.clone());
                out.extend(single.out.as_ref().map(|d| d.display().to_string()));
            }
            _ => out.push(a.clone()),
        }
    }
    out
}

/// Runs one study, printing each run, then the ranked table and the reading; writes its outputs to `--out`
/// first, if there is one, so that nothing printed can stand between the runs and the files.
fn one(
    gpu: &Gpu,
    options: &Options,
    dataset: &Dataset,
    command: &str,
) -> Result<Study, StudyError> {
    say!(
        "{} activations x {} seed(s) on {}, {} epoch{}",
        options.activations.len(),
        options.seeds,
        options.dataset,
        options.epochs,
        if options.epochs == 1 { "" } else { "s" }
    );
    let study = run_study_on(gpu, options, dataset.clone(), command, |p| {
        if let Progress::Run(r) = p {
            if let Some(e) = r.last() {
                say!(
                    "  {:<15} seed {}: test acc {:.3}, NLL {:.3}, ECE {:.3} ({:.1} s)",
                    r.activation,
                    r.seed,
                    e.test.accuracy,
                    e.test.nll,
                    e.test.ece,
                    r.wall_s
                );
            }
        }
    })?;
    let written = match &options.out {
        Some(dir) => Some((report::write_outputs(&study, dir)?.len(), dir)),
        None => None,
    };
    say!("\n{}", report::table(&study));
    for line in actgpu::study::reading::reading(&study) {
        say!("- {}", line.replace("**", ""));
    }
    if let Some((files, dir)) = written {
        say!("\nwrote {files} files to {}", dir.display());
    }
    Ok(study)
}
