//! Validate every kernel on this machine's adapter against the f64 CPU reference.
//!
//! What it does: runs every activation forward and backward on random inputs at several scales, a dense sweep of
//! [-20, 20], tiny magnitudes (1e-8..1e-3, relative error only) and the edge values (0, -0, subnormals, huge
//! magnitudes, +-inf, NaN), each into a poisoned output, and compares with `actgpu::cpu`.
//!
//! How to run: `cargo run --release --example validate [-- --json] [--only NAME]`; pick the backend with
//! `WGPU_BACKEND=vulkan` or `WGPU_BACKEND=gl`.
//!
//! What it prints: a table (op, dtype, pass, max abs error, max relative error, worst input, ok) and a one-line
//! verdict, or with `--json` one document
//! `{"adapter": {"name", "backend", "driver"}, "results": [{"op", "dtype", "pass", "max_abs_err", "max_rel_err",
//! "worst_input", "ok"}]}`. Exits 1 when any op is out of tolerance, 2 when no adapter can be had.

use std::process::ExitCode;

use actgpu::verify::{check_activation, ActivationCheck, Pass};
use actgpu::{Activation, DType, Gpu};

struct Args {
    json: bool,
    only: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        json: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => args.json = true,
            "--only" => args.only = Some(it.next().ok_or("--only needs an activation name")?),
            "-h" | "--help" => {
                return Err("usage: validate [--json] [--only NAME]".into());
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

/// The row's max relative error: over the general inputs (where the relative term dominates) and the small ones.
fn max_rel(r: &ActivationCheck) -> f64 {
    r.general.max_rel_err.max(r.small.max_rel_err)
}

/// The worst input of the two checks, by share of the allowance used.
fn worst_input(r: &ActivationCheck) -> f32 {
    if r.small.worst_ratio > r.general.worst_ratio {
        r.small.worst_input
    } else {
        r.general.worst_input
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
    for act in acts {
        for pass in [Pass::Forward, Pass::Backward] {
            match check_activation(&gpu, act, pass, 0x5eed_0000 + u64::from(act.id())) {
                Ok(r) => results.push(r),
                Err(e) => {
                    eprintln!("validate: {act} {}: {e}", pass.name());
                    return ExitCode::from(1);
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
                    "{{\"op\": {}, \"dtype\": {}, \"pass\": {}, \"max_abs_err\": {}, \"max_rel_err\": {}, \"worst_input\": {}, \"ok\": {}}}",
                    json_str(r.activation.name()),
                    json_str(DType::F32.name()),
                    json_str(r.pass.name()),
                    json_num(r.general.max_abs_err.max(r.small.max_abs_err)),
                    json_num(max_rel(r)),
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
        println!("adapter: {}", gpu.adapter_line());
        println!(
            "{:<13} {:<5} {:<9} {:>11} {:>11} {:>14} {:>4}",
            "op", "dtype", "pass", "max_abs_err", "max_rel_err", "worst_input", "ok"
        );
        for r in &results {
            println!(
                "{:<13} {:<5} {:<9} {:>11.3e} {:>11.3e} {:>14.6e} {:>4}",
                r.activation.name(),
                DType::F32.name(),
                r.pass.name(),
                r.general.max_abs_err.max(r.small.max_abs_err),
                max_rel(r),
                worst_input(r),
                if r.ok() { "ok" } else { "FAIL" }
            );
            for f in r
                .general
                .first_failures
                .iter()
                .chain(&r.small.first_failures)
            {
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
