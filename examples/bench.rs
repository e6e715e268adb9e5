//! Benchmark every kernel on this machine's adapter against the adapter's own ceilings.
//!
//! What it does: measures the copy ceiling (the fastest of several 16-byte-access WGSL copy kernels over 256 MiB
//! buffers, bytes read plus written; `copy_buffer_to_buffer` alongside for comparison) and the FMA ceiling (a
//! compute-bound kernel of independent fused multiply-adds), then times every activation's forward and backward
//! on random f32 inputs at each size: warm-up, then the median of many samples with min and max, on GPU
//! timestamps where the adapter has them (else the wall clock), rotating input buffers where they would fit in
//! a cache. See `actgpu::bench`.
//!
//! How to run: `cargo run --release --example bench [-- OPTIONS]`; pick the backend with `WGPU_BACKEND=vulkan`
//! or `WGPU_BACKEND=gl`. Options: `--quick` (seconds: 2^16 elements, 3 samples, 32 MiB copy ceiling), `--json`,
//! `--kernels NAME[,NAME...]`, `--pass forward|backward|both`, `--sizes N[,N...]` (`65536` or `2^16`),
//! `--samples N`, `--copy-mib N`, `--clock timestamps|wall`, `--launch WGxUNITS` (the elementwise kernels'
//! workgroup size and 8-element units per thread, e.g. `256x2`, instead of the adapter's default).
//!
//! What it prints: the adapter, the clock, the two ceilings and every copy candidate, then a table of kernel,
//! pass, dtype, size, median/min/max time, GB/s, the fraction of the copy ceiling, the approximate FLOP per
//! element and the fraction of the FMA ceiling; or with `--json` one document `{"adapter": {"name", "backend",
//! "driver"}, "clock", "ceilings": {"copy_bytes_per_s", "fma_flops_per_s", ...}, "rows": [{"kernel", "pass",
//! "dtype", "elements", "median_s", "min_s", "max_s", "bytes_per_s", "fraction_of_ceiling", ...}]}`. Exits 1 when
//! a measurement fails, 2 on bad arguments or when no adapter can be had.

use std::process::ExitCode;

use actgpu::bench::activations::ElementwiseOperands;
use actgpu::bench::ceilings::{measure_ceilings, CeilingConfig};
use actgpu::bench::report::{Bound, Report, Row, Size};
use actgpu::bench::{measure, Clock, Sampling, Timer};
use actgpu::verify::Pass;
use actgpu::{Activation, DType, Gpu, GpuOptions, LaunchConfig};

const USAGE: &str =
    "usage: bench [--quick] [--json] [--kernels NAME[,NAME...]] [--pass forward|backward|both] \
                     [--sizes N[,N...]] [--samples N] [--copy-mib N] [--clock timestamps|wall] [--launch WGxUNITS]";

struct Args {
    json: bool,
    kernels: Vec<Activation>,
    passes: Vec<Pass>,
    sizes: Vec<usize>,
    sampling: Sampling,
    ceilings: CeilingConfig,
    clock: Option<Clock>,
    launch: Option<LaunchConfig>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let bad = || format!("bad size {s:?}: give elements, e.g. 65536 or 2^16");
    match s.split_once('^') {
        Some(("2", k)) => {
            let k: u32 = k.parse().map_err(|_| bad())?;
            1usize.checked_shl(k).filter(|_| k < 48).ok_or_else(bad)
        }
        Some(_) => Err(bad()),
        None => s.parse().map_err(|_| bad()),
    }
}

fn parse_args() -> Result<Args, String> {
    let mut quick = false;
    let mut json = false;
    let mut kernels = Activation::ALL.to_vec();
    let mut passes = vec![Pass::Forward, Pass::Backward];
    let mut sizes = None;
    let mut samples = None;
    let mut copy_mib = None;
    let mut clock = None;
    let mut launch = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value; {USAGE}"));
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => json = true,
            "--kernels" | "--only" => {
                kernels = value()?
                    .split(',')
                    .map(|n| Activation::from_name(n).ok_or(format!("unknown kernel {n:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--pass" => {
                passes = match value()?.as_str() {
                    "forward" => vec![Pass::Forward],
                    "backward" => vec![Pass::Backward],
                    "both" => vec![Pass::Forward, Pass::Backward],
                    p => return Err(format!("unknown pass {p:?}; {USAGE}")),
                }
            }
            "--sizes" => {
                sizes = Some(
                    value()?
                        .split(',')
                        .map(parse_size)
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            "--samples" => {
                let v = value()?;
                samples = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--samples needs a positive integer, got {v:?}"))?,
                );
            }
            "--copy-mib" => {
                let v = value()?;
                copy_mib = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--copy-mib needs a positive integer, got {v:?}"))?,
                );
            }
            "--clock" => {
                clock = Some(match value()?.as_str() {
                    "timestamps" => Clock::Timestamps,
                    "wall" => Clock::WallClock,
                    c => return Err(format!("unknown clock {c:?}; {USAGE}")),
                })
            }
            "--launch" => {
                let v = value()?;
                let parsed = v
                    .split_once('x')
                    .and_then(|(w, u)| Some((w.parse().ok()?, u.parse().ok()?)))
                    .filter(|&(w, u)| w > 0 && u > 0);
                let (workgroup_size, units_per_thread) =
                    parsed.ok_or(format!("--launch needs WGxUNITS, e.g. 256x2, got {v:?}"))?;
                launch = Some(LaunchConfig {
                    workgroup_size,
                    units_per_thread,
                });
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    let (mut sampling, mut ceilings) = if quick {
        (Sampling::QUICK, CeilingConfig::quick())
    } else {
        (Sampling::DEFAULT, CeilingConfig::default_run())
    };
    if let Some(n) = samples {
        sampling.samples = n;
        ceilings.sampling.samples = n;
    }
    if let Some(m) = copy_mib {
        ceilings.copy_bytes = m << 20;
    }
    let default_sizes = if quick {
        vec![1 << 16]
    } else {
        vec![1 << 16, 1 << 20, 1 << 24]
    };
    Ok(Args {
        json,
        kernels,
        passes,
        sizes: sizes.unwrap_or(default_sizes),
        sampling,
        ceilings,
        clock,
        launch,
    })
}

fn run(args: &Args, gpu: &Gpu) -> actgpu::Result<Report> {
    let timer = match args.clock {
        Some(c) => Timer::with_clock(gpu, c)?,
        None => Timer::new(gpu),
    };
    let ceilings = measure_ceilings(&timer, &args.ceilings)?;
    let mut report = Report::new(gpu, timer.clock(), ceilings);
    for (i, &elements) in args.sizes.iter().enumerate() {
        let ops = ElementwiseOperands::new(gpu, elements, 0xbe_4c00 + i as u64)?;
        for &act in &args.kernels {
            for &pass in &args.passes {
                let m = measure(&timer, &args.sampling, &mut |enc, rep| {
                    ops.record(enc, act, pass, rep)
                })?;
                report.rows.push(Row {
                    kernel: act.name().into(),
                    pass: pass.name(),
                    dtype: DType::F32.name(),
                    size: Size::Elements(elements),
                    measurement: m,
                    bytes: Some(ops.bytes_moved(pass)),
                    flops: Some(ops.flops(act, pass)),
                    bound: Bound::Bandwidth,
                });
            }
        }
    }
    Ok(report)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let options = GpuOptions {
        launch: args.launch,
        ..GpuOptions::default()
    };
    let gpu = match Gpu::with_options(options) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let report = match run(&args, &gpu) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.header());
        print!("{}", report.table());
        println!(
            "{} measurements in {:.1} s",
            report.rows.len(),
            started.elapsed().as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}
