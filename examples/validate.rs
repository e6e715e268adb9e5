//! Validate every kernel on this machine's adapter against the f64 CPU reference.
//!
//! What it does: runs every activation forward and backward, each into a poisoned output, and compares with
//! `actgpu::cpu`. In f32: random inputs at several scales, a dense sweep of [-20, 20], tiny magnitudes
//! (1e-8..1e-3, relative error only) and the edge values (0, -0, subnormals, huge magnitudes, +-inf, NaN),
//! within `1e-6 + 1e-5 |ref|`. In f16 and bf16: every one of the 65,536 input bit patterns, within 1 ULP of the
//! reference rounded to the storage type.
//!
//! How to run: `cargo run --release --example validate [-- --json] [--only NAME] [--dtype f32|f16|bf16]
//! [--minimum-limits]`; pick the backend with `WGPU_BACKEND=vulkan` or `WGPU_BACKEND=gl`. `--only` checks one
//! op in every chosen type and nothing else: a plain activation (`gelu`), bias + an activation (`bias_gelu`:
//! random and edge inputs, and a width without the fused column sums), a gated unit (`swiglu`: both
//! layouts, random and edge inputs), a learnable activation (`prelu`, `swish_learnable`, `elu_learnable`:
//! shared and per-channel parameters, random and edge inputs), `softmax` / `log_softmax` (rows of 10 and 1,000
//! columns and rows of edge values, forward and backward) or `rrelu` (the randomized leaky ReLU's training mode:
//! two slope ranges on random inputs, every pair of edge values as x and dy at two ranges, one of slope 0), as `bench --kernels` names them. `--minimum-limits`
//! caps the device at `Gpu::MINIMUM_LIMITS` (128 invocations per workgroup, 6 storage buffers per stage), so
//! every check runs as it would on the smallest device actgpu supports.
//!
//! The fused ops follow in each type: softmax and log-softmax over rows (y and dx, under per-element bounds of
//! their f32 arithmetic, `actgpu::verify::softmax`), the randomized leaky ReLU's training mode (y and dx at the
//! slopes the reference draws, `actgpu::verify::rrelu`), bias + every activation (y, dx and db), the gated units in
//! both layouts, the learnable activations (y, dx and dp), against `actgpu::cpu`. Then the training kernels
//! (`actgpu::verify::training`): the three product forms with operands in each type, and in f32 the dense layer
//! forward (y, z) and backward (dw, db, dx), the three losses with their gradients, and six optimizer
//! configurations over five steps, each within a stated worst-case rounding bound.
//!
//! What it prints: a table (op, output, dtype, pass, max abs error, max relative error, max ULP error in the
//! storage type, worst input, ok; an f32 activation's errors are those of its general and small-input checks,
//! under the tolerances above, while its tails and dy-edge checks, under rules of their own, count in ok), per
//! 16-bit type the largest ULP error over its checks and how many were exact, and a one-line verdict (naming the subset `--only` or `--dtype` chose, and `--minimum-limits`), or with
//! `--json` one document `{"adapter": {"name", "backend", "driver"}, "subset" (null, or the same names as an
//! array), "minimum_limits", "flushes_subnormals", "native_f16_rounds_to_nearest_even", "ulp_by_dtype": {"f16": {"checks",
//! "max_ulp_err", "exact"}, "bf16": {...}}, "results": [{"op", "output", "dtype", "pass", "max_abs_err",
//! "max_rel_err", "max_ulp_err", "worst_input", "flush_accepted", "ok"}]}` (an f32 activation's errors and worst
//! input as in the table: its general and small-input checks, since 2026-12-01; earlier files took them over
//! every part), where `flush_accepted` counts the
//! elements that passed only because the device flushes subnormals (see `actgpu::verify::FLUSH_UNDERFLOW`;
//! always 0 on a device that keeps them) and `native_f16_rounds_to_nearest_even` is the probe that lets the
//! native f16 path be chosen (`Gpu::native_f16_rounds_to_nearest_even`). Exits 1 when any op is out of
//! tolerance, 2 when no adapter can be had.

use std::process::ExitCode;

use actgpu::bench::fused::FusedOp;
use actgpu::bench::report::{json_num, json_str};
use actgpu::verify::fused::{check_bias, check_gated, check_learnable, FusedCheck, FusedInputs};
use actgpu::verify::training::{
    check_deep_products, check_dense, check_losses, check_optimizers, check_products,
};
use actgpu::verify::{
    check_activation, check_activation_exhaustive, ActivationCheck, Check, Criterion, Dtypes, Pass,
};
use actgpu::{Activation, DType, Gated, Gpu, GpuOptions, Learnable, SoftmaxKind};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/stdout.rs"]
mod stdout;
use stdout::say;

struct Args {
    json: bool,
    only: Option<String>,
    dtypes: Vec<DType>,
    minimum_limits: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        json: false,
        only: None,
        dtypes: vec![DType::F32, DType::F16, DType::BF16],
        minimum_limits: false,
    };
    let mut it = std::env::args().skip(1);
    let mut seen = std::collections::HashSet::new();
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "--only" | "--dtype") {
            cli::once(&mut seen, &a, USAGE)?;
        }
        match a.as_str() {
            "--json" => args.json = true,
            "--minimum-limits" => args.minimum_limits = true,
            "--only" => args.only = Some(cli::value(&a, it.next(), USAGE)?),
            "--dtype" => {
                let name = cli::value(&a, it.next(), USAGE)?;
                args.dtypes =
                    vec![DType::from_name(&name)
                        .ok_or(format!("unknown dtype {name:?}; {USAGE}"))?];
            }
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(args)
}

/// The part of the checks a run covers, for its verdict: empty for the whole set, else ", a subset (only NAME,
/// f16 only)," as the options chose; then ", at the minimum limits," where the device was capped.
fn subset(args: &Args) -> String {
    let parts = subset_parts(args);
    let mut clauses = Vec::new();
    if !parts.is_empty() {
        clauses.push(format!("a subset ({})", parts.join(", ")));
    }
    if args.minimum_limits {
        clauses.push("at the minimum limits".to_string());
    }
    if clauses.is_empty() {
        String::new()
    } else {
        format!(", {},", clauses.join(", "))
    }
}

/// [`subset`] for the JSON document: `null` for the whole set, else the parts as an array of strings.
fn subset_json(args: &Args) -> String {
    let parts = subset_parts(args);
    if parts.is_empty() {
        "null".to_string()
    } else {
        let quoted: Vec<String> = parts.iter().map(|p| json_str(p)).collect();
        format!("[{}]", quoted.join(", "))
    }
}

fn subset_parts(args: &Args) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(name) = &args.only {
        parts.push(format!("only {name}"));
    }
    if args.dtypes.len() == 1 {
        parts.push(format!("{} only", args.dtypes[0].name()));
    }
    parts
}

/// One line of the report.
struct Row {
    op: String,
    output: &'static str,
    dtype: DType,
    pass: Pass,
    max_abs_err: f64,
    max_rel_err: f64,
    max_ulp_err: u32,
    /// Whether the row was judged in ULPs of its storage type (16-bit elementwise outputs); sums and products
    /// are judged by bounds, and their `max_ulp_err` means nothing.
    in_ulps: bool,
    worst_input: f32,
    /// Elements that passed only by the rules for devices that flush subnormals.
    flush_accepted: usize,
    ok: bool,
    notes: Vec<String>,
}

/// Per 16-bit storage type present in `rows`: `(dtype, checks, max ULP error, checks at 0 ULP)`, the ULP of that
/// type (f32 rows are judged by their absolute and relative tolerance, so they have no such summary).
fn ulp_summary(rows: &[Row]) -> Vec<(DType, usize, u32, usize)> {
    [DType::F16, DType::BF16]
        .into_iter()
        .filter_map(|dtype| {
            let ulps: Vec<u32> = rows
                .iter()
                .filter(|r| r.dtype == dtype && r.in_ulps)
                .map(|r| r.max_ulp_err)
                .collect();
            let max = ulps.iter().copied().max()?;
            let exact = ulps.iter().filter(|&&u| u == 0).count();
            Some((dtype, ulps.len(), max, exact))
        })
        .collect()
}

fn failure_notes(checks: &[&Check], unwritten: usize) -> Vec<String> {
    let mut notes: Vec<String> = checks
        .iter()
        .flat_map(|c| &c.first_failures)
        .map(|f| {
            let at = if f.input.is_nan() {
                format!("element {}", f.index)
            } else {
                format!("x = {:e}", f.input)
            };
            format!("{at}: got {:e}, expected {:e}", f.got, f.expected)
        })
        .collect();
    if unwritten > 0 {
        notes.push(format!("{unwritten} output elements left unwritten"));
    }
    notes
}

/// An activation's row: its errors and worst input over the general and small-input checks, the two under the
/// tolerance the table states (`1e-6 + 1e-5 |ref|`, and `1e-5` relative for `1e-8 <= |x| <= 1e-3`); the tails
/// and the dy-edge checks, each under its own rule (a 1.0 relative error is a subnormal product the dy-edge
/// rule allows), count in the row's verdict, its flushed count and its notes.
fn activation_row(r: &ActivationCheck) -> Row {
    let small = r.small.as_ref();
    let stated: Vec<&Check> = std::iter::once(&r.general).chain(small).collect();
    // The input of the worst ratio among the checks under the stated tolerance.
    let worst = stated
        .iter()
        .fold(&r.general, |w, c| {
            if c.worst_ratio > w.worst_ratio {
                c
            } else {
                w
            }
        })
        .worst_input;
    let checks: Vec<&Check> = std::iter::once(&r.general)
        .chain(small)
        .chain(r.tail.as_ref())
        .chain(r.dy_edges.as_ref())
        .collect();
    Row {
        op: r.activation.name().to_string(),
        output: if r.pass == Pass::Forward { "y" } else { "dx" },
        dtype: r.dtypes.out,
        pass: r.pass,
        max_abs_err: stated.iter().map(|c| c.max_abs_err).fold(0.0, f64::max),
        max_rel_err: stated.iter().map(|c| c.max_rel_err).fold(0.0, f64::max),
        max_ulp_err: r.general.max_ulp_err,
        in_ulps: matches!(r.general.criterion, Criterion::Ulp { .. }),
        worst_input: worst,
        flush_accepted: checks.iter().map(|c| c.flush_accepted).sum(),
        ok: r.ok(),
        notes: failure_notes(&checks, r.unwritten),
    }
}

fn fused_row(f: &FusedCheck) -> Row {
    Row {
        op: f.op.clone(),
        output: f.output,
        dtype: f.dtype,
        pass: f.pass,
        max_abs_err: f.check.max_abs_err,
        max_rel_err: f.check.max_rel_err,
        max_ulp_err: f.check.max_ulp_err,
        in_ulps: matches!(f.check.criterion, Criterion::Ulp { .. }),
        worst_input: f.check.worst_input,
        flush_accepted: f.check.flush_accepted,
        ok: f.ok(),
        notes: failure_notes(&[&f.check], 0),
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

/// What `--only` chose.
enum Only {
    /// Every check.
    All,
    /// One plain activation, forward and backward.
    Activation(Activation),
    /// One fused op.
    Fused(FusedOp),
}

impl Only {
    /// `--only NAME`: a plain activation, or a fused op as `bench --kernels` names it.
    fn parse(name: Option<&str>) -> Result<Only, String> {
        let Some(name) = name else {
            return Ok(Only::All);
        };
        if let Some(act) = Activation::from_name(name) {
            return Ok(Only::Activation(act));
        }
        if let Some(op) = FusedOp::from_name(name) {
            return Ok(Only::Fused(op));
        }
        let plain: Vec<&str> = Activation::ALL.iter().map(|a| a.name()).collect();
        let gated: Vec<String> = Gated::ALL.iter().map(|g| g.name()).collect();
        let learnable: Vec<&str> = Learnable::ALL.iter().map(|l| l.name()).collect();
        Err(format!(
            "unknown op {name:?}: --only takes a plain activation ({}), bias_ and one of those (bias_gelu), a \
             gated unit ({}), a learnable activation ({}), softmax, log_softmax or rrelu",
            plain.join(", "),
            gated.join(", "),
            learnable.join(", ")
        ))
    }
}

/// The fused ops in `dtype` that `only` asks for. For the whole set: bias + each activation (fused db path, and
/// the fallback width once), the gated units in both layouts, the learnable activations with shared and
/// per-channel parameters, and each family once on edge inputs; in 16-bit types, whose arithmetic is the f32 one
/// already checked, a representative few bias and gated ops keep the run short: every pipeline compiled costs
/// time on a software adapter. For one fused op, its checks alone (random inputs, edge inputs, and for bias the
/// width without fused column sums) in every chosen type: in 16-bit types more than the whole set runs, which
/// keeps to the few above there. None for one plain activation.
fn check_fused(gpu: &Gpu, dtype: DType, only: &Only) -> actgpu::Result<Vec<FusedCheck>> {
    let (acts, units, learnables): (Vec<Activation>, Vec<Gated>, Vec<Learnable>) = match only {
        Only::All if dtype == DType::F32 => (
            Activation::ALL.to_vec(),
            Gated::ALL.to_vec(),
            Learnable::ALL.to_vec(),
        ),
        Only::All => (
            vec![Activation::Relu, Activation::Gelu, Activation::Silu],
            vec![Gated::GEGLU, Gated::SWIGLU],
            Learnable::ALL.to_vec(),
        ),
        Only::Fused(FusedOp::Bias(act)) => (vec![*act], vec![], vec![]),
        Only::Fused(FusedOp::Gated(unit)) => (vec![], vec![*unit], vec![]),
        Only::Fused(FusedOp::Learnable(kind)) => (vec![], vec![], vec![*kind]),
        Only::Fused(FusedOp::Softmax(kind)) => {
            return actgpu::verify::softmax::check_standard(gpu, *kind, dtype)
        }
        Only::Fused(FusedOp::Rrelu(_)) => return actgpu::verify::rrelu::check_standard(gpu, dtype),
        Only::Activation(_) => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    if matches!(only, Only::All) {
        for kind in SoftmaxKind::ALL {
            out.extend(actgpu::verify::softmax::check_standard(gpu, kind, dtype)?);
        }
        out.extend(actgpu::verify::rrelu::check_standard(gpu, dtype)?);
    }
    for &act in &acts {
        let seed = u64::from(act.id());
        out.extend(check_bias(
            gpu,
            act,
            129,
            24,
            dtype,
            dtype,
            FusedInputs::Random(seed),
        )?);
    }
    // A width that is not a multiple of 8 or 4 (the column sums as a second pass): GELU for the whole set, else
    // the chosen bias op's activation.
    let other_width = match only {
        Only::Fused(FusedOp::Bias(act)) => Some(*act),
        Only::All => Some(Activation::Gelu),
        _ => None,
    };
    if let Some(act) = other_width {
        out.extend(check_bias(
            gpu,
            act,
            33,
            13,
            dtype,
            dtype,
            FusedInputs::Random(99),
        )?);
    }
    for &unit in &units {
        out.extend(check_gated(
            gpu,
            unit,
            33,
            24,
            dtype,
            FusedInputs::Random(7),
        )?);
    }
    for &kind in &learnables {
        for shared in [true, false] {
            out.extend(check_learnable(
                gpu,
                kind,
                65,
                24,
                shared,
                dtype,
                DType::F32,
                FusedInputs::Random(11),
            )?);
        }
    }
    // Edge inputs (0, -0, subnormals, large, MAX, +-inf, NaN; +inf gradients) through each family once, the
    // learnable parameters in the tensors' own type.
    // For the whole set, in f32 every activation and every gated unit, in 16-bit types one of each family; the
    // one op `--only` chose in every type.
    let edges = FusedInputs::Edges(3);
    let (edge_acts, edge_units) = match only {
        Only::All if dtype != DType::F32 => (
            vec![Activation::Gelu, Activation::Relu],
            vec![Gated::SWIGLU],
        ),
        _ => (acts, units),
    };
    for act in edge_acts {
        out.extend(check_bias(gpu, act, 5, 24, dtype, DType::F32, edges)?);
    }
    for unit in edge_units {
        out.extend(check_gated(gpu, unit, 5, 24, dtype, edges)?);
    }
    for kind in learnables {
        out.extend(check_learnable(
            gpu, kind, 5, 24, false, dtype, dtype, edges,
        )?);
    }
    Ok(out)
}

/// The product forms with operands in each of `dtypes`; where f32 is among them, the dense layer, the losses,
/// the optimizers and whole training steps of a small MLP, in one pass and in passes (f32 kernels whose 16-bit
/// paths are the products and conversions already checked).
fn check_training(gpu: &Gpu, dtypes: &[DType]) -> actgpu::Result<Vec<FusedCheck>> {
    let mut out = Vec::new();
    for &dtype in dtypes {
        out.extend(check_products(gpu, dtype)?);
    }
    if dtypes.contains(&DType::F32) {
        out.extend(check_deep_products(gpu)?);
        out.extend(check_dense(gpu)?);
        out.extend(check_losses(gpu)?);
        out.extend(check_optimizers(gpu)?);
        out.extend(actgpu::verify::mlp::check_training_steps(gpu)?);
    }
    Ok(out)
}

const USAGE: &str =
    "usage: validate [--json] [--only NAME] [--dtype f32|f16|bf16] [--minimum-limits]";

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        say!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let only = match Only::parse(args.only.as_deref()) {
        Ok(only) => only,
        Err(msg) => {
            eprintln!("validate: {msg}");
            return ExitCode::from(2);
        }
    };
    let options = GpuOptions {
        cap_limits: args.minimum_limits.then_some(Gpu::MINIMUM_LIMITS),
        ..GpuOptions::default()
    };
    let gpu = match Gpu::with_options(options) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("validate: {e}");
            return ExitCode::from(2);
        }
    };
    let acts: Vec<Activation> = match only {
        Only::All => Activation::ALL.to_vec(),
        Only::Activation(act) => vec![act],
        Only::Fused(_) => Vec::new(),
    };
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    for &dtype in &args.dtypes {
        for &act in &acts {
            for pass in [Pass::Forward, Pass::Backward] {
                match check(&gpu, act, pass, dtype) {
                    Ok(r) => rows.push(activation_row(&r)),
                    Err(e) => {
                        eprintln!("validate: {act} {} {}: {e}", dtype.name(), pass.name());
                        return ExitCode::from(1);
                    }
                }
            }
        }
        if !matches!(only, Only::Activation(_)) {
            match check_fused(&gpu, dtype, &only) {
                Ok(checks) => rows.extend(checks.iter().map(fused_row)),
                Err(e) => {
                    eprintln!("validate: fused {}: {e}", dtype.name());
                    return ExitCode::from(1);
                }
            }
        }
    }
    if matches!(only, Only::All) {
        match check_training(&gpu, &args.dtypes) {
            Ok(checks) => rows.extend(checks.iter().map(fused_row)),
            Err(e) => {
                eprintln!("validate: training kernels: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    let info = gpu.adapter_info();
    let flushes = match gpu.flushes_subnormals() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("validate: subnormal probe: {e}");
            return ExitCode::from(1);
        }
    };
    let f16_rounding = match gpu.native_f16_rounds_to_nearest_even() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("validate: f16 rounding probe: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        let lines: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"op\": {}, \"output\": {}, \"dtype\": {}, \"pass\": {}, \"max_abs_err\": {}, \"max_rel_err\": {}, \"max_ulp_err\": {}, \"worst_input\": {}, \"flush_accepted\": {}, \"ok\": {}}}",
                    json_str(&r.op),
                    json_str(r.output),
                    json_str(r.dtype.name()),
                    json_str(r.pass.name()),
                    json_num(r.max_abs_err),
                    json_num(r.max_rel_err),
                    r.max_ulp_err,
                    json_num(f64::from(r.worst_input)),
                    r.flush_accepted,
                    r.ok
                )
            })
            .collect();
        let summary: Vec<String> = ulp_summary(&rows)
            .iter()
            .map(|(dtype, checks, max, exact)| {
                format!(
                    "{}: {{\"checks\": {checks}, \"max_ulp_err\": {max}, \"exact\": {exact}}}",
                    json_str(dtype.name())
                )
            })
            .collect();
        say!(
            "{{\"adapter\": {{\"name\": {}, \"backend\": {}, \"driver\": {}}}, \"subset\": {}, \"minimum_limits\": {}, \"flushes_subnormals\": {}, \"native_f16_rounds_to_nearest_even\": {}, \"ulp_by_dtype\": {{{}}}, \"results\": [\n  {}\n]}}",
            json_str(&info.name),
            json_str(&format!("{:?}", info.backend)),
            json_str(&format!("{} {}", info.driver, info.driver_info)),
            subset_json(&args),
            args.minimum_limits,
            flushes,
            f16_rounding,
            summary.join(", "),
            lines.join(",\n  ")
        );
    } else {
        say!(
            "adapter: {}; f16 storage: {}{}; subnormals: {}",
            gpu.adapter_line(),
            if gpu.f16_native() { "native" } else { "packed" },
            match (
                gpu.device()
                    .features()
                    .contains(actgpu::wgpu::Features::SHADER_F16),
                f16_rounding
            ) {
                (false, _) => "",
                (true, true) => " (native conversions exact: stores round to nearest even, loads widen every f16)",
                (true, false) => " (native conversions not exact: a store off nearest even, or a load not widened exactly)",
            },
            if flushes {
                "flushed (results that flushing explains pass; see actgpu::verify::FLUSH_UNDERFLOW)"
            } else {
                "kept"
            }
        );
        say!(
            "{:<26} {:<3} {:<5} {:<9} {:>11} {:>11} {:>7} {:>14} {:>4}",
            "op",
            "out",
            "dtype",
            "pass",
            "max_abs_err",
            "max_rel_err",
            "max_ulp",
            "worst_input",
            "ok"
        );
        for r in &rows {
            say!(
                "{:<26} {:<3} {:<5} {:<9} {:>11.3e} {:>11.3e} {:>7} {:>14.6e} {:>4}",
                r.op,
                r.output,
                r.dtype.name(),
                r.pass.name(),
                r.max_abs_err,
                r.max_rel_err,
                r.max_ulp_err,
                r.worst_input,
                if r.ok { "ok" } else { "FAIL" }
            );
            for note in &r.notes {
                say!("    {note}");
            }
        }
        for (dtype, checks, max, exact) in ulp_summary(&rows) {
            say!(
                "{}: max ULP error {max} over {checks} checks ({exact} exact)",
                dtype.name()
            );
        }
        say!(
            "verdict: {} of {} checks passed on {}{} in {:.1} s{}",
            rows.len() - failed,
            rows.len(),
            info.name,
            subset(&args),
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
