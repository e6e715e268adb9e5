//! Measure how accurate each f32 activation is on this machine's adapter, over the whole f32 line.
//!
//! What it does: runs every activation (or those `--only` names) forward and backward in f32 over every
//! `stride`-th bit pattern of f32, two inputs per block of `stride` patterns (the block's first and one drawn
//! from it; stride 1 runs all 2^32 patterns once), and measures each result's error against the f64 CPU
//! reference in units in the last place of f32 at the exact value (`actgpu::verify::survey`). The backward runs
//! at `dy = 1`, so it measures `f'(x)` itself. Where `validate` passes or fails each kernel against a tolerance,
//! this reports what the kernels reach:
//! - the share of results correctly rounded (within 0.5 ULP), and within 1 and 4 ULP;
//! - the largest error and the input it was measured at;
//! - the largest mixed error over results in f32's normal range: the smaller of the error in ULP of the result
//!   and the change of x, in ULP of x, that explains it, small where a large error is the function's own
//!   conditioning (near a zero, in a steep tail);
//! - the largest error of a result below 2^-126, in units of the subnormal spacing 2^-149;
//! - results a flushing device's rules accepted, and results of the wrong class (a number for NaN or the
//!   reverse, a wrong infinity), which there must be none of. NaN results for NaN inputs are counted apart.
//!
//! How to run: `cargo run --release --example accuracy [-- --stride 2^12] [--only gelu,silu] [--pass
//! forward|backward] [--json]`; `--only` takes constants too (`--only 'elu(0.5),softplus(2,20)'`). Pick the
//! backend with `WGPU_BACKEND=vulkan` or `WGPU_BACKEND=gl`. The default stride, 2^12, runs 2,097,152 inputs per
//! activation and pass, 4,096 in each binade of each sign: every activation in about 3 s with lavapipe on a
//! 2-core machine, 45 s at stride 2^8, and 2.5 to 4 minutes per activation and pass at stride 1.
//!
//! What it prints: the adapter, then a markdown table, a row per activation and pass as each is measured; or with
//! `--json` one document `{"adapter": {"name", "backend", "driver"}, "stride", "inputs_per_row",
//! "flushes_subnormals", "rows": [{"activation", "pass", "inputs", "nans", "measured", "histogram" (the measured
//! results by error: at most 0.5, 1, 2, 4, 16, 256 ULP, and above), "max_ulp", "worst", "max_mixed_ulp",
//! "worst_mixed", "max_subnormal_ulp", "worst_subnormal" (each worst `{"x", "got", "reference"}` or null),
//! "flushed", "class_mismatches", "unwritten", "error" (null, or why the row could not run)}]}`. Exits 1 when
//! any result has the wrong class or is left unwritten, or a row or the subnormal probe fails; 2 on a bad
//! argument or when no adapter can be had.

use std::process::ExitCode;

use actgpu::bench::report::{json_num, json_str};
use actgpu::nn::hidden::split_list;
use actgpu::verify::survey::{inputs_per_survey, survey_activation, Point, Survey};
use actgpu::verify::Pass;
use actgpu::{Activation, Gpu, Hidden};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/stdout.rs"]
mod stdout;
use stdout::say;

const USAGE: &str =
    "usage: accuracy [--stride N|2^k] [--only NAME[,NAME...]] [--pass forward|backward] [--json]";

/// The default stride: 2^20 blocks, two inputs each.
const DEFAULT_STRIDE: u64 = 1 << 12;

/// The seed that draws each block's second input.
const SEED: u64 = 0x5eed;

struct Args {
    json: bool,
    stride: u64,
    activations: Vec<Activation>,
    passes: Vec<Pass>,
}

/// A stride: a power of two from 1 to 2^31, as a count (`4096`) or `2^k`.
fn parse_stride(s: &str) -> Result<u64, String> {
    let bad =
        || format!("bad stride {s:?}: give a power of two from 1 to 2^31 (4096 or 2^12); {USAGE}");
    let v = match s.strip_prefix("2^") {
        Some(k) => 1u64
            .checked_shl(k.parse().map_err(|_| bad())?)
            .ok_or_else(bad)?,
        None => s.parse().map_err(|_| bad())?,
    };
    if v.is_power_of_two() && v <= 1 << 31 {
        Ok(v)
    } else {
        Err(bad())
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        json: false,
        stride: DEFAULT_STRIDE,
        activations: Activation::ALL.to_vec(),
        passes: vec![Pass::Forward, Pass::Backward],
    };
    let mut it = std::env::args().skip(1);
    let mut seen = std::collections::HashSet::new();
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "--stride" | "--only" | "--pass") {
            cli::once(&mut seen, &a, USAGE)?;
        }
        match a.as_str() {
            "--json" => args.json = true,
            "--stride" => args.stride = parse_stride(&cli::value(&a, it.next(), USAGE)?)?,
            "--only" => {
                let names = cli::value(&a, it.next(), USAGE)?;
                args.activations = split_list(&names)
                    .ok_or(format!("--only {names}: unbalanced parentheses; {USAGE}"))?
                    .into_iter()
                    .map(parse_activation)
                    .collect::<Result<_, _>>()?;
            }
            "--pass" => {
                args.passes = match cli::value(&a, it.next(), USAGE)?.as_str() {
                    "forward" => vec![Pass::Forward],
                    "backward" => vec![Pass::Backward],
                    other => return Err(format!("unknown pass {other:?}; {USAGE}")),
                }
            }
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(args)
}

/// An activation by name, with constants where they are not the defaults (`gelu`, `elu(0.5)`,
/// `softplus(2,20)`), as `Hidden::parse_name` reads a plain activation; its reason where the constants are
/// invalid.
fn parse_activation(name: &str) -> Result<Activation, String> {
    match Hidden::parse_name(name) {
        Ok(Some(Hidden::Act(act))) => Ok(act),
        Ok(Some(other)) => Err(format!(
            "{other} is not a plain activation (the survey runs f and f' of one); {USAGE}"
        )),
        Ok(None) => Err(format!("unknown activation {:?}; {USAGE}", name.trim())),
        Err(e) => Err(format!("{}: {e}; {USAGE}", name.trim())),
    }
}

/// The activation's name as a row prints it, with its constants where they are not the defaults.
fn display_name(act: Activation) -> String {
    Hidden::Act(act).name()
}

/// A share as a percentage with enough digits to tell 100% from almost.
fn percent(share: Option<f64>) -> String {
    match share {
        Some(1.0) => "100%".to_string(),
        Some(s) if s >= 0.999 => format!("{:.4}%", 100.0 * s),
        Some(s) => format!("{:.2}%", 100.0 * s),
        None => "-".to_string(),
    }
}

/// A worst element as JSON, `null` where there is none or the error is 0.
fn json_worst(w: Option<Point>, err: f64) -> String {
    match w {
        Some(w) if err > 0.0 => format!(
            "{{\"x\": {}, \"got\": {}, \"reference\": {}}}",
            json_num(f64::from(w.x)),
            json_num(f64::from(w.got)),
            json_num(w.reference)
        ),
        _ => "null".to_string(),
    }
}

/// One row of the JSON document: the survey, or the error that stopped it.
fn json_row(act: Activation, pass: Pass, r: &Result<Survey, String>) -> String {
    let head = format!(
        "\"activation\": {}, \"pass\": {}",
        json_str(&display_name(act)),
        json_str(pass.name())
    );
    match r {
        Err(e) => format!("{{{head}, \"error\": {}}}", json_str(e)),
        Ok(s) => format!(
            "{{{head}, \"inputs\": {}, \"nans\": {}, \"measured\": {}, \"histogram\": [{}], \"max_ulp\": {}, \"worst\": {}, \"max_mixed_ulp\": {}, \"worst_mixed\": {}, \"max_subnormal_ulp\": {}, \"worst_subnormal\": {}, \"flushed\": {}, \"class_mismatches\": {}, \"unwritten\": {}, \"error\": null}}",
            s.inputs,
            s.nans,
            s.measured,
            s.histogram.map(|n| n.to_string()).join(", "),
            json_num(s.max_ulp),
            json_worst(s.worst, s.max_ulp),
            json_num(s.max_mixed_ulp),
            json_worst(s.worst_mixed, s.max_mixed_ulp),
            json_num(s.max_subnormal_ulp),
            json_worst(s.worst_subnormal, s.max_subnormal_ulp),
            s.flushed,
            s.class_mismatches,
            s.unwritten
        ),
    }
}

fn row(s: &Survey) -> String {
    let at = |w: Option<actgpu::verify::survey::Point>, err: f64| match w {
        Some(w) if err > 0.0 => format!("{:e} ({:e} for {:e})", w.x, w.got, w.reference),
        _ => "-".to_string(),
    };
    let mut notes = Vec::new();
    if let Some(m) = s.first_mismatches.first() {
        notes.push(format!(
            "{} wrong class, first x = {:e}: got {:e}, expected {:e}",
            s.class_mismatches, m.x, m.got, m.reference
        ));
    }
    if s.unwritten > 0 {
        notes.push(format!("{} unwritten", s.unwritten));
    }
    format!(
        "| {} | {} | {} | {} | {} | {} | {:.3} | {} | {:.3} | {} | {:.3} | {} | {} | {} |",
        display_name(s.activation),
        s.pass.name(),
        s.inputs,
        percent(s.share_within(0.5)),
        percent(s.share_within(1.0)),
        percent(s.share_within(4.0)),
        s.max_ulp,
        at(s.worst, s.max_ulp),
        s.max_mixed_ulp,
        at(s.worst_mixed, s.max_mixed_ulp),
        s.max_subnormal_ulp,
        at(s.worst_subnormal, s.max_subnormal_ulp),
        s.flushed,
        if notes.is_empty() {
            "ok".to_string()
        } else {
            notes.join("; ")
        },
    )
}

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        say!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("accuracy: {msg}");
            return ExitCode::from(2);
        }
    };
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("accuracy: {e}");
            return ExitCode::from(2);
        }
    };
    let flushes = match gpu.flushes_subnormals() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("accuracy: subnormal probe: {e}");
            return ExitCode::from(1);
        }
    };
    let inputs_per_row = inputs_per_survey(args.stride);
    if !args.json {
        say!("adapter: {}", gpu.adapter_line());
        say!(
            "stride {} ({inputs_per_row} inputs per row), f32, backward at dy = 1; flushes subnormals: {flushes}",
            args.stride
        );
        say!();
        say!("| activation | pass | inputs | <= 0.5 ULP | <= 1 ULP | <= 4 ULP | max ULP | at x (got for exact) | max mixed, normal | at x | max subnormal, 2^-149 | at x | flushed | classes |");
        say!("|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---|---:|---|");
    }
    let started = std::time::Instant::now();
    let mut bad = 0;
    let mut json_rows = Vec::new();
    for &act in &args.activations {
        for &pass in &args.passes {
            let r =
                survey_activation(&gpu, act, pass, args.stride, SEED).map_err(|e| e.to_string());
            if r.as_ref()
                .map_or(true, |s| s.class_mismatches > 0 || s.unwritten > 0)
            {
                bad += 1;
            }
            if args.json {
                json_rows.push(json_row(act, pass, &r));
                continue;
            }
            match r {
                Ok(s) => say!("{}", row(&s)),
                Err(e) => say!(
                    "| {} | {} | - | - | - | - | - | - | - | - | - | - | - | error: {e} |",
                    display_name(act),
                    pass.name()
                ),
            }
        }
    }
    if args.json {
        let info = gpu.adapter_info();
        say!(
            "{{\"adapter\": {{\"name\": {}, \"backend\": {}, \"driver\": {}}}, \"stride\": {}, \"inputs_per_row\": {inputs_per_row}, \"flushes_subnormals\": {flushes}, \"rows\": [\n  {}\n]}}",
            json_str(&info.name),
            json_str(&format!("{:?}", info.backend)),
            json_str(&format!("{} {}", info.driver, info.driver_info)),
            args.stride,
            json_rows.join(",\n  ")
        );
    } else {
        say!();
        say!(
            "{} rows in {:.1} s; {}",
            args.activations.len() * args.passes.len(),
            started.elapsed().as_secs_f64(),
            if bad == 0 {
                "every result has the reference's class".to_string()
            } else {
                format!("{bad} rows with wrong classes, unwritten elements or errors")
            }
        );
    }
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
