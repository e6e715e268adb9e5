//! The activation study: trains the same MLP on the same data with every activation (and several seeds when
//! asked) and reports convergence, accuracy, calibration, gradient flow and cost, ranked by test accuracy.
//!
//! Run: `cargo run --release --features study --example study [-- --dataset spirals --epochs 30 --seeds 3 --out study-out]`
//! (`-- --help` lists every option; `-- --quick` is a smoke test in seconds; `WGPU_BACKEND=vulkan` or `gl`
//! picks the backend.)
//!
//! Prints the adapter and the setup, one line per run, then the ranked table and a short reading. With
//! `--out DIR` it also writes `results.json` (every number), `report.md` (table and reading) and SVG charts of
//! the loss and accuracy curves, the ECE and the gradient norm per layer. The work lives in `actgpu::study`.

use std::process::ExitCode;

use actgpu::study::options::{Command, Options, USAGE};
use actgpu::study::{report, run_study, Progress, StudyError};
use actgpu::Gpu;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match study(&options, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn study(options: &Options, args: &[String]) -> Result<(), StudyError> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.adapter_line());
    let command =
        std::iter::once("cargo run --release --features study --example study --".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
    println!(
        "{} activations x {} seed(s) on {}, {} epochs",
        options.activations.len(),
        options.seeds,
        options.dataset,
        options.epochs
    );
    let study = run_study(&gpu, options, command.trim_end(), |p| {
        if let Progress::Run(r) = p {
            if let Some(e) = r.last() {
                println!(
                    "  {:<15} seed {}: test acc {:.3}, NLL {:.3}, ECE {:.3} ({:.1} s)",
                    r.activation, r.seed, e.test.accuracy, e.test.nll, e.test.ece, r.wall_s
                );
            }
        }
    })?;
    println!("\n{}", report::table(&study));
    for line in report::reading(&study) {
        println!("- {}", line.replace("**", ""));
    }
    if let Some(dir) = &options.out {
        let files = report::write_outputs(&study, dir)?;
        println!("\nwrote {} files to {}", files.len(), dir.display());
    }
    println!(
        "study took {:.1} s; creating its {} pipelines took {:.1} s of thread time, in parallel before the runs",
        study.wall_s,
        gpu.pipelines().len(),
        study.compile_s
    );
    Ok(())
}
