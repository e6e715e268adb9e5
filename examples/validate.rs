//! Validate every kernel on this machine's adapter against the f64 CPU reference.
//!
//! What it does: runs every activation forward and backward, each into a poisoned output, and compares with
//! `actgpu::cpu`. In f32: random inputs at several scales, a dense sweep of [-20, 20], tiny magnitudes
//! (1e-8..1e-3, relative error only) and the edge values (0, -0, subnormals, huge magnitudes, +-inf, NaN),
//! within `1e-6 + 1e-5 |ref|`. In f16 and bf16: every one of the 65,536 input bit patterns, within 1 ULP of the
//! reference rounded to the storage type.
//!
//! How to run: `cargo run --release --example validate [-- --json] [--only NAME] [--dtype f32|f16|bf16]`; pick
//! the backend with `WGPU_BACKEND=vulkan` or `WGPU_BACKEND=gl`.
//!
//! What it prints: a table (op, dtype, pass, max abs error, max relative error, max ULP error in the storage
//! type, worst input, ok) and a one-line verdict, or with `--json` one document
//! `{"adapter": {"name", "backend", "driver"}, "results": [{"op", "dtype", "pass", "max_abs_err", "max_rel_err",
//! "max_ulp_err", "worst_input", "ok"}]}`. Exits 1 when any op is out of tolerance, 2 when no adapter can be had.

use std::process::ExitCode;

use actgpu::verify::{
    check_activation, check_activation_exhaustive, ActivationCheck, Dtypes, Pass,
};
use actgpu::{Activation, DType, Gpu};

struct Args {
    json: bool,
    only: Option<String>,
    dtypes: Vec<DType>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        json: false,
        only: None,
        dtypes: vec![DType::F32, DType::F16, DType::BF16],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => args.json = true,
            "--only" => args.only = Some(it.next().ok_or("--only needs an activation name")?),
            "--dtype" => {
                let name = it.next().ok_or("--dtype needs f32, f16 or bf16")?;
                args.dtypes =
                    vec![DType::from_name(&name).ok_or(format!("unknown dtype {name:?}"))?];
            }
            "-h" | "--help" => {
                return Err("usage: validate [--json] [--only NAME] [--dtype f32|f16|bf16]".into());
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(args)
}

/// A JSON number, or null where JSON has none (NaN, inf).
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else {
        "null".into()
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The row's max absolute error: over the general and the small inputs.
fn max_abs(r: &ActivationCheck) -> f64 {
    r.small
        .as_ref()
        .map_or(0.0, |s| s.max_abs_err)
        .max(r.general.max_abs_err)
}

/// The row's max relative error: over the general inputs (where the relative term dominates) and the small ones.
fn max_rel(r: &ActivationCheck) -> f64 {
    r.small
        .as_ref()
        .map_or(0.0, |s| s.max_rel_err)
        .max(r.general.max_rel_err)
}

/// The worst input of the checks, by share of the allowance used.
fn worst_input(r: &ActivationCheck) -> f32 {
    match &r.small {
        Some(s) if s.worst_ratio > r.general.worst_ratio => s.worst_input,
        _ => r.general.worst_input,
    }
}

/// Checks one activation in one pass and storage type: f32 on the standard inputs, 16-bit exhaustively.
fn check(gpu: &Gpu, act: Activation, pass: Pass, dtype: DType) -> actgpu::Result<ActivationCheck> {
    let seed = 0x5eed_0000 + u64::from(act.id());
    match dtype {
        DType::F32 => check_activation(gpu, act, pass, seed),
        _ => check_activation_exhaustive(gpu, act, pass, Dtypes::all(dtype), 1, seed),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("validate: {e}");
            return ExitCode::from(2);
        }
    };
    let acts: Vec<Activation> = match &args.only {
        Some(name) => match Activation::from_name(name) {
            Some(a) => vec![a],
            None => {
                eprintln!("validate: unknown activation {name:?}");
                return ExitCode::from(2);
            }
        },
        None => Activation::ALL.to_vec(),
    };
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    for &dtype in &args.dtypes {
        for &act in &acts {
            for pass in [Pass::Forward, Pass::Backward] {
                match check(&gpu, act, pass, dtype) {
                    Ok(r) => results.push(r),
                    Err(e) => {
                        eprintln!("validate: {act} {} {}: {e}", dtype.name(), pass.name());
                        return ExitCode::from(1);
                    }
                }
            }
        }
    }
    let failed = results.iter().filter(|r| !r.ok()).count();
    let info = gpu.adapter_info();
    if args.json {
        let rows: Vec<String> = results
            .iter()
            .map(|r| {
                format!(
                    "{{\"op\": {}, \"dtype\": {}, \"pass\": {}, \"max_abs_err\": {}, \"max_rel_err\": {}, \"max_ulp_err\": {}, \"worst_input\": {}, \"ok\": {}}}",
                    json_str(r.activation.name()),
                    json_str(r.dtypes.out.name()),
                    json_str(r.pass.name()),
                    json_num(max_abs(r)),
                    json_num(max_rel(r)),
                    r.general.max_ulp_err,
                    json_num(f64::from(worst_input(r))),
                    r.ok()
                )
            })
            .collect();
        println!(
            "{{\"adapter\": {{\"name\": {}, \"backend\": {}, \"driver\": {}}}, \"results\": [\n  {}\n]}}",
            json_str(&info.name),
            json_str(&format!("{:?}", info.backend)),
            json_str(&format!("{} {}", info.driver, info.driver_info)),
            rows.join(",\n  ")
        );
    } else {
        println!(
            "adapter: {}; f16 storage: {}",
            gpu.adapter_line(),
            if gpu.f16_native() { "native" } else { "packed" }
        );
        println!(
            "{:<13} {:<5} {:<9} {:>11} {:>11} {:>7} {:>14} {:>4}",
            "op", "dtype", "pass", "max_abs_err", "max_rel_err", "max_ulp", "worst_input", "ok"
        );
        for r in &results {
            println!(
                "{:<13} {:<5} {:<9} {:>11.3e} {:>11.3e} {:>7} {:>14.6e} {:>4}",
                r.activation.name(),
                r.dtypes.out.name(),
                r.pass.name(),
                max_abs(r),
                max_rel(r),
                r.general.max_ulp_err,
                worst_input(r),
                if r.ok() { "ok" } else { "FAIL" }
            );
            if r.unwritten > 0 {
                println!("    {} output elements left unwritten", r.unwritten);
            }
            let small_failures = r.small.iter().flat_map(|s| &s.first_failures);
            for f in r.general.first_failures.iter().chain(small_failures) {
                println!(
                    "    x = {:e}: got {:e}, expected {:e}",
                    f.input, f.got, f.expected
                );
            }
        }
        println!(
            "verdict: {} of {} checks passed on {} in {:.1} s{}",
            results.len() - failed,
            results.len(),
            info.name,
            started.elapsed().as_secs_f64(),
            if failed == 0 {
                ""
            } else {
                " -- FAILURES above"
            }
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
