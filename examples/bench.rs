//! Benchmark every kernel on this machine's adapter against the adapter's own ceilings.
//!
//! What it does: measures the copy ceiling (the fastest of several 16-byte-access WGSL copy kernels over 256 MiB
//! buffers, bytes read plus written; `copy_buffer_to_buffer` alongside for comparison) and the FMA ceiling (a
//! compute-bound kernel of independent fused multiply-adds), then times every activation's forward and backward,
//! the fused kernels (bias + activation, gated units, learnable activations), matmul, a dense layer and an MLP
//! training step (these three against the FMA ceiling) on random inputs: warm-up, then
//! the median of many samples with min and max, on GPU timestamps where the adapter has them (else the wall
//! clock), rotating input buffers where they would fit in a cache. See `actgpu::bench`.
//!
//! How to run: `cargo run --release --example bench [-- OPTIONS]`; pick the backend with `WGPU_BACKEND=vulkan`
//! or `WGPU_BACKEND=gl`. A default run takes a few minutes on a software adapter. Options:
//! `--quick` (seconds: 2^16 elements, fused ops on 256x256, 3 samples, 32 MiB copy ceiling), `--json`,
//! `--kernels NAME[,NAME...]` (names such as `gelu`, `bias_gelu`, `swiglu`, `prelu`, `softmax`, `log_softmax`,
//! `matmul` (a dense layer's three products, each in its pass), `matmul_at_b` or `matmul_a_bt` (one of the
//! backward's), `dense_gelu`,
//! `dense_compare` (fused against unfused dense forward), `train_step`, `train_step_adam`, `cross_entropy`
//! (softmax cross-entropy with its gradient at 256 rows of 10, 1,000 and 32,000 classes), or `activations` /
//! `fused` / `training` / `compare` for the default sets),
//! `--pass forward|backward|both` (for the kernels that have both; for `matmul` the forward's `X W` and the
//! backward's `X^T dZ` (`matmul_at_b`) and `dZ W^T` (`matmul_a_bt`) at the same layer shapes; the dense
//! comparison, cross-entropy and the training steps run as they are whatever it says; a run left with nothing to
//! measure exits 2), `--sizes N[,N...]` (`65536` or
//! `2^16`), `--shape ROWSxCOLS` (the fused ops' input), `--dtypes f32,f16,bf16` (measured at every size; by default
//! f32 everywhere and f16, bf16 at the largest size and on the fused shape; the products' `X W` at the largest
//! product, the backward's products f32 only), `--samples N` (at most 10,000),
//! `--copy-mib N`,
//! `--clock timestamps|wall` (timestamps need the device feature `TIMESTAMP_QUERY`), `--launch WGxUNITS` (the elementwise kernels' workgroup size and 8-element units per
//! thread, e.g. `256x2`, instead of the adapter's default), `--reduction-rows N` (rows per row block of the
//! column reductions: bias + activation forward on the row grid and the bias backward's per-block partial column
//! sums, instead of the adapter's default; `GpuOptions::reduction_rows`), `--ce-wide-rows N` (classes from which
//! cross-entropy takes a workgroup per row: `GpuOptions::cross_entropy_wide_rows`), `--f16 auto|packed|native` (how the
//! kernels access all-f16 tensors: `GpuOptions::f16_storage`; by default `auto`, the faster path timed once),
//! `--matmul direct|tiled|tiled32|tiled_wide|subgroup|vec4` (the kernel of every product, dense layer and
//! training step: `GpuOptions::matmul_kernel`; by default the adapter's), `--matmul-shapes MxKxN[,MxKxN...]`
//! (the dense layers `[m, k, n]` whose products the matmul rows measure, instead of the run's: 1024^3,
//! 256x784x512 and 256x512x512, or 64^3 with `--quick`; `--kernels matmul --matmul-shapes 256x512x10` times a
//! classifier's output layer; each size as `--sizes` takes them, and no operand past its largest count),
//! `--markdown` (the report as Markdown,
//! for BENCHMARKS.md; not with `--json`). A name repeated in `--kernels`, `--sizes` (`2^16,65536` included) or
//! `--dtypes` is measured once, in the order first given; an option given twice is refused (status 2), as its
//! last value would silently win; `--sizes`, `--shape`, `--matmul`, `--matmul-shapes` or `--ce-wide-rows` where
//! no chosen kernel uses what it sets is noted on stderr (`Plan::ignored_options`). `--copy-mib` below 32 warns on
//! stderr: two buffers that small may fit a last-level cache, and the copy ceiling would then be the cache's.
//!
//! What it prints: the adapter (and a CPU adapter's host CPU: the same llvmpipe measured 7-8x apart on two hosts),
//! the clock, the launch shapes, the f16 path, reduction rows and matmul kernel in effect (the kernel that runs:
//! `--matmul tiled` runs `tiled32` on a device whose workgroups hold fewer than 256 threads), the two ceilings and
//! every copy candidate, then a table of kernel, pass, dtype, size, median/min/max time, GB/s, the
//! fraction of the copy ceiling, the approximate FLOP per element and the fraction of the FMA ceiling; or with
//! `--json` one document `{"adapter": {"name", "backend", "driver"}, "host_cpu", "clock", "launch", "streaming_launch",
//! "f16_native": {"streaming", "arithmetic"}, "reduction_rows", "matmul_kernel", "ceilings": {"copy_bytes_per_s", "fma_flops_per_s", ...}, "rows": [{"kernel",
//! "pass", "dtype", "elements" or "shape", "median_s", "min_s", "max_s", "bytes_per_s", "fraction_of_ceiling",
//! ...}], "comparisons": [...], "dtype_ratios": [...]}`. With `--json` or `--markdown` the table goes to stderr
//! as it is measured, so a run cut short still shows what it measured. Exits 1 when a measurement fails (a size past the
//! device's buffer limit included), 2 on bad arguments (`--clock timestamps` on a device without
//! `TIMESTAMP_QUERY` included) or when no adapter can be had; `--help` prints the usage
//! and exits 0. `--pass` also selects the fused-against-unfused comparisons (SwiGLU's needs both passes).

use std::process::ExitCode;

use actgpu::bench::ceilings::{measure_ceilings, CeilingConfig};
use actgpu::bench::compare::Comparison;
use actgpu::bench::fused::FusedOp;
use actgpu::bench::plan::{parse_size, Plan, MAX_SIZE};
use actgpu::bench::report::Report;
use actgpu::bench::{Clock, Timer};
use actgpu::ops::matmul::Form;
use actgpu::verify::Pass;
use actgpu::{
    Activation, DType, F16Storage, Gated, Gpu, GpuOptions, LaunchConfig, Learnable, MatmulKernel,
};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/stdout.rs"]
mod stdout;
use stdout::emit;

const USAGE: &str = "usage: bench [--quick] [--json] [--kernels NAME[,NAME...]] [--pass forward|backward|both] \
                     [--sizes N[,N...]] [--shape ROWSxCOLS] [--dtypes T[,T...]] [--samples N] [--copy-mib N] \
                     [--clock timestamps|wall] [--launch WGxUNITS] [--reduction-rows N] [--ce-wide-rows N] \
                     [--f16 auto|packed|native] [--matmul direct|tiled|tiled32|tiled_wide|subgroup|vec4] \
                     [--matmul-shapes MxKxN[,MxKxN...]] [--markdown]";

/// The most `--samples`: each lasts about 20 ms, so this is minutes per row already.
const MAX_SAMPLES: u64 = 10_000;

/// `--copy-mib` below this warns that the copy ceiling may be measured in a cache: two buffers of 32 MiB pass an
/// H200's 50 MB L2.
const MIN_COPY_MIB: u64 = 32;

struct Args {
    json: bool,
    markdown: bool,
    plan: Plan,
    ceilings: CeilingConfig,
    clock: Option<Clock>,
    launch: Option<LaunchConfig>,
    reduction_rows: Option<usize>,
    /// `--ce-wide-rows N`: `GpuOptions::cross_entropy_wide_rows`.
    ce_wide_rows: Option<usize>,
    matmul_kernel: Option<MatmulKernel>,
    f16_storage: F16Storage,
}

/// `AxB` as two positive integers.
fn parse_pair(flag: &str, v: &str) -> Result<(u32, u32), String> {
    v.split_once('x')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .filter(|&(a, b)| a > 0 && b > 0)
        .ok_or(format!(
            "{flag} needs AxB with positive integers, got {v:?}"
        ))
}

/// A dense layer's `[m, k, n]` from `MxKxN`, each size as `--sizes` takes it (`256` or `2^8`), and no operand
/// (`m k`, `k n`, `m n` elements) past the largest element count `--sizes` takes.
fn parse_triple(flag: &str, v: &str) -> Result<[usize; 3], String> {
    let parts: Vec<&str> = v.split('x').collect();
    let [m, k, n] = parts[..] else {
        return Err(format!("{flag} needs MxKxN, got {v:?}"));
    };
    let size = |d: &str| parse_size(d).map_err(|e| format!("{flag} {v:?}: {e}"));
    let [m, k, n] = [size(m)?, size(k)?, size(n)?];
    let fits = |a: usize, b: usize| a.checked_mul(b).is_some_and(|e| e as u64 <= MAX_SIZE);
    if fits(m, k) && fits(k, n) && fits(m, n) {
        Ok([m, k, n])
    } else {
        Err(format!(
            "{flag} {v:?}: an operand has more than {MAX_SIZE} elements"
        ))
    }
}

/// `forward`, `backward`, or `forward or backward`, as `--pass` chose.
fn pass_names(passes: &[Pass]) -> String {
    let names: Vec<&str> = passes.iter().map(|p| p.name()).collect();
    names.join(" or ")
}

fn positive(flag: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or(format!("{flag} needs a positive integer, got {v:?}"))
}

/// The backward's two products, each a kernel name of its own (`Form::name`: `matmul_at_b`, `matmul_a_bt`).
const BACKWARD_FORMS: [Form; 2] = [Form::AtB, Form::ABt];

/// Keeps in `plan` only the kernels `v` names (the training rows keep the plan's shapes).
fn select_kernels(plan: &mut Plan, v: &str) -> Result<(), String> {
    let all = plan.clone();
    let dense_shape = all.dense.first().map_or([256, 784, 512], |d| d.1);
    plan.activations.clear();
    plan.fused.clear();
    plan.matmuls.clear();
    plan.matmul_forms.clear();
    plan.dense.clear();
    plan.mlps.clear();
    plan.losses.clear();
    plan.comparisons.clear();
    plan.dense_comparisons.clear();
    for name in v.split(',') {
        match name {
            "activations" => plan.activations.extend(Activation::ALL),
            "compare" => {
                plan.comparisons.extend(Comparison::ALL);
                plan.dense_comparisons.extend(&all.dense_comparisons);
            }
            "dense_compare" => plan.dense_comparisons.extend(&all.dense_comparisons),
            "fused" => {
                plan.fused.extend(FusedOp::defaults());
                plan.comparisons.extend(Comparison::ALL);
            }
            "training" => {
                plan.matmuls.extend(&all.matmuls);
                plan.matmul_forms.extend(&all.matmul_forms);
                plan.dense.extend(&all.dense);
                plan.dense_comparisons.extend(&all.dense_comparisons);
                plan.mlps.extend(all.mlps.iter().cloned());
            }
            "matmul" => {
                plan.matmuls.extend(&all.matmuls);
                plan.matmul_forms.extend(&all.matmul_forms);
            }
            _ if BACKWARD_FORMS.iter().any(|f| f.name() == name) => {
                plan.matmuls.extend(&all.matmuls);
                plan.matmul_forms
                    .extend(BACKWARD_FORMS.into_iter().filter(|f| f.name() == name));
            }
            "cross_entropy" => plan.losses.extend(&all.losses),
            "train_step" => plan.mlps.extend(all.mlps.iter().cloned()),
            _ => {
                if let Some(a) = Activation::from_name(name) {
                    plan.activations.push(a);
                } else if let Some(f) = FusedOp::from_name(name) {
                    plan.fused.push(f);
                } else if let Some(a) = name.strip_prefix("dense_").and_then(Activation::from_name)
                {
                    plan.dense.push((a, dense_shape));
                } else if all.mlps.iter().any(|m| m.name() == name) {
                    plan.mlps
                        .extend(all.mlps.iter().filter(|m| m.name() == name).cloned());
                } else {
                    let names = |v: Vec<String>| v.join(", ");
                    return Err(format!(
                        "unknown kernel {name:?}: a set (activations, fused, training, compare, dense_compare, \
                         matmul (its three products), cross_entropy, train_step, {}), an activation ({}), \
                         bias_ or dense_ and an activation's name, a gated unit ({}), a learnable activation \
                         ({}), softmax, log_softmax, or one product of the backward ({})",
                        names(all.mlps.iter().map(|m| m.name().to_string()).collect()),
                        names(Activation::ALL.map(|a| a.name().to_string()).to_vec()),
                        names(Gated::ALL.map(|g| g.name()).to_vec()),
                        names(Learnable::ALL.map(|l| l.name().to_string()).to_vec()),
                        names(BACKWARD_FORMS.map(|f| f.name().to_string()).to_vec()),
                    ));
                }
            }
        }
    }
    // Overlapping names (`training` and `matmul`, `train_step` and `train_step_adam`) measure once.
    dedup(&mut plan.activations);
    dedup(&mut plan.fused);
    dedup(&mut plan.matmuls);
    dedup(&mut plan.matmul_forms);
    dedup(&mut plan.dense);
    dedup(&mut plan.mlps);
    dedup(&mut plan.losses);
    dedup(&mut plan.comparisons);
    dedup(&mut plan.dense_comparisons);
    Ok(())
}

/// Keeps the first of equal items, in order.
fn dedup<T: PartialEq + Clone>(items: &mut Vec<T>) {
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    *items = kept;
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let quick = raw.iter().any(|a| a == "--quick");
    let (mut plan, mut ceilings) = if quick {
        (Plan::quick(), CeilingConfig::quick())
    } else {
        (Plan::default_run(), CeilingConfig::default_run())
    };
    let mut args = Args {
        json: false,
        markdown: false,
        plan: plan.clone(),
        ceilings: ceilings.clone(),
        clock: None,
        launch: None,
        reduction_rows: None,
        ce_wide_rows: None,
        matmul_kernel: None,
        f16_storage: F16Storage::Auto,
    };
    let mut it = raw.iter();
    let mut kernels_given = false;
    let mut matmul_shapes = None;
    // A value flag given twice would silently keep its last value.
    let mut seen = std::collections::HashSet::new();
    while let Some(a) = it.next() {
        let repeatable = matches!(
            a.as_str(),
            "--quick" | "--json" | "--markdown" | "--kernels" | "--only"
        );
        if !repeatable {
            cli::once(&mut seen, a, USAGE)?;
        }
        let mut value = || cli::value(a, it.next(), USAGE);
        match a.as_str() {
            "--quick" => {}
            "--json" => args.json = true,
            "--markdown" => args.markdown = true,
            "--kernels" | "--only" => {
                if std::mem::replace(&mut kernels_given, true) {
                    return Err(format!(
                        "give {a} once, with the kernels comma-separated; {USAGE}"
                    ));
                }
                select_kernels(&mut plan, value()?)?
            }
            "--pass" => {
                plan.passes = match value()?.as_str() {
                    "forward" => vec![Pass::Forward],
                    "backward" => vec![Pass::Backward],
                    "both" => vec![Pass::Forward, Pass::Backward],
                    p => return Err(format!("unknown pass {p:?}; {USAGE}")),
                }
            }
            "--sizes" => {
                plan.sizes = value()?
                    .split(',')
                    .map(parse_size)
                    .collect::<Result<_, _>>()?;
                // `--sizes 2^16,65536` measures 2^16 once.
                dedup(&mut plan.sizes);
            }
            "--shape" => {
                let (r, c) = parse_pair("--shape", value()?)?;
                if c % 2 != 0 {
                    return Err(format!(
                        "--shape needs an even number of columns (the gated units split them), got {c}"
                    ));
                }
                plan.shape = [r as usize, c as usize];
            }
            "--dtypes" => {
                plan.dtypes = value()?
                    .split(',')
                    .map(|n| DType::from_name(n).ok_or(format!("unknown dtype {n:?}")))
                    .collect::<Result<_, _>>()?;
                dedup(&mut plan.dtypes);
                plan.large_only_dtypes.clear();
            }
            "--samples" => {
                let n = positive(a, value()?)?;
                if n > MAX_SAMPLES {
                    return Err(format!(
                        "{a} is at most {MAX_SAMPLES} (each sample lasts about 20 ms of every row), got {n}"
                    ));
                }
                plan.sampling.samples = n as u32;
                ceilings.sampling.samples = n as u32;
            }
            "--copy-mib" => {
                let mib = positive(a, value()?)?;
                ceilings.copy_bytes = mib
                    .checked_mul(1 << 20)
                    .ok_or(format!("{a} is too large: {mib}"))?;
            }
            "--clock" => {
                args.clock = Some(match value()?.as_str() {
                    "timestamps" => Clock::Timestamps,
                    "wall" => Clock::WallClock,
                    c => return Err(format!("unknown clock {c:?}; {USAGE}")),
                })
            }
            "--launch" => {
                let (workgroup_size, units_per_thread) = parse_pair(a, value()?)?;
                args.launch = Some(LaunchConfig {
                    workgroup_size,
                    units_per_thread,
                });
            }
            "--reduction-rows" => {
                let n = positive(a, value()?)?;
                args.reduction_rows =
                    Some(usize::try_from(n).map_err(|_| format!("{a} is too large: {n}"))?);
            }
            "--ce-wide-rows" => {
                let n = positive(a, value()?)?;
                args.ce_wide_rows =
                    Some(usize::try_from(n).map_err(|_| format!("{a} is too large: {n}"))?);
            }
            "--matmul" => {
                let name = value()?;
                args.matmul_kernel = Some(
                    MatmulKernel::from_name(name.as_str())
                        .ok_or(format!("unknown matmul kernel {name:?}; {USAGE}"))?,
                );
            }
            "--matmul-shapes" => {
                let mut shapes = value()?
                    .split(',')
                    .map(|v| parse_triple(a, v))
                    .collect::<Result<Vec<_>, _>>()?;
                dedup(&mut shapes);
                matmul_shapes = Some(shapes);
            }
            "--f16" => {
                args.f16_storage = match value()?.as_str() {
                    "auto" => F16Storage::Auto,
                    "packed" => F16Storage::Packed,
                    "native" => F16Storage::Native,
                    f => return Err(format!("unknown f16 path {f:?}; {USAGE}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    if args.json && args.markdown {
        return Err(format!(
            "give one of --json and --markdown: the report is printed in one format; {USAGE}"
        ));
    }
    // Two smaller buffers fit in the last-level cache of many GPUs and CPUs (an H200's L2 is 50 MB), where
    // the copy would time the cache, not memory, and every fraction of the copy ceiling would read low.
    let copy_mib = ceilings.copy_bytes >> 20;
    if copy_mib < MIN_COPY_MIB {
        eprintln!(
            "bench: warning: --copy-mib {copy_mib} is below {MIN_COPY_MIB}: the copy may run in a cache, and the \
             copy ceiling then measures the cache rather than memory"
        );
    }
    // The product rows' shapes, whichever of --kernels and --matmul-shapes came first; a plan without product rows
    // keeps none (Plan::ignored_options notes it).
    if let (Some(shapes), false) = (matmul_shapes, plan.matmuls.is_empty()) {
        plan.matmuls = shapes;
    }
    // An option that sets something no chosen kernel uses changes nothing: say so rather than let the run look
    // as if it had applied.
    let given: Vec<&str> = raw
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("--"))
        .collect();
    for (flag, what) in plan.ignored_options(&given) {
        eprintln!(
            "bench: note: {flag} sets {what}, which no chosen kernel uses: it changes nothing here"
        );
    }
    args.plan = plan;
    args.ceilings = ceilings;
    Ok(args)
}

fn run(args: &Args, gpu: &Gpu) -> actgpu::Result<Report> {
    let timer = match args.clock {
        Some(c) => Timer::with_clock(gpu, c)?,
        None => Timer::new(gpu),
    };
    let ceilings = measure_ceilings(&timer, &args.ceilings)?;
    let mut report = Report::new(gpu, timer.clock(), ceilings);
    let table = !args.json && !args.markdown;
    // The table goes to stdout as it is measured; with --json or --markdown, whose documents are printed at the
    // end, it goes to stderr instead, so that a run cut short (a timeout on a lent device) still leaves every
    // row it measured.
    let line = |text: &str| {
        if table {
            emit("bench", text);
        } else {
            progress(text);
        }
    };
    line(&format!("{}{}", report.header(), Report::table_header()));
    let mut rows = Vec::new();
    args.plan.run(&timer, &mut |row| {
        line(&report.row_line(&row));
        rows.push(row);
    })?;
    report.rows = rows;
    if table {
        emit("bench", &report.speedup_lines());
        emit("bench", &report.dtype_ratio_lines());
    }
    Ok(report)
}

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        emit("bench", &format!("{USAGE}\n"));
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let options = GpuOptions {
        launch: args.launch,
        reduction_rows: args.reduction_rows,
        f16_storage: args.f16_storage,
        matmul_kernel: args.matmul_kernel,
        cross_entropy_wide_rows: args.ce_wide_rows,
        ..GpuOptions::default()
    };
    let gpu = match Gpu::with_options(options) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    // An argument this device cannot honour is an argument problem (status 2), found before any measurement.
    if args.clock == Some(Clock::Timestamps)
        && !gpu
            .device()
            .features()
            .contains(actgpu::wgpu::Features::TIMESTAMP_QUERY)
    {
        eprintln!(
            "bench: --clock timestamps needs the device feature TIMESTAMP_QUERY, which {} lacks; use --clock wall",
            gpu.adapter_line()
        );
        return ExitCode::from(2);
    }
    let started = std::time::Instant::now();
    let report = match run(&args, &gpu) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(1);
        }
    };
    // The kernels chosen may have no pass of those --pass chose (dense_compare is a forward, matmul_at_b and
    // matmul_a_bt are backward): a run that measured nothing says so rather than reporting an empty table.
    if report.rows.is_empty() {
        eprintln!(
            "bench: nothing measured: the kernels chosen have no {} pass to time (the dense comparison times \
             the forward only, matmul_at_b and matmul_a_bt the backward; cross-entropy and the training steps \
             run whatever --pass says)",
            pass_names(&args.plan.passes)
        );
        return ExitCode::from(2);
    }
    if args.json {
        emit("bench", &format!("{}\n", report.to_json()));
    } else if args.markdown {
        emit("bench", &report.markdown());
    } else {
        emit(
            "bench",
            &format!(
                "{} measurements in {:.1} s\n",
                report.rows.len(),
                started.elapsed().as_secs_f64()
            ),
        );
    }
    ExitCode::SUCCESS
}

/// Writes `text` to stderr, as progress: a failed write is ignored (the report on stdout is what matters).
fn progress(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}
