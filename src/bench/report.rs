//! Benchmark rows, the printed table and the JSON document of `bench --json`.
//!
//! The document is `{"adapter": {"name", "backend", "driver"}, "host_cpu" (a CPU adapter's processor,
//! [`super::host::host_cpu`]; `null` for other adapters), "clock", "launch": {"workgroup_size",
//! "units_per_thread"}, "streaming_launch": {...}, "f16_native": {"streaming", "arithmetic"} (the f16 path in effect per
//! kernel intensity: [`Gpu::f16_native_for`]),
//! "reduction_rows" ([`Gpu::reduction_rows`]), "matmul_kernel" (`direct`, `tiled`, ...), "ceilings": {"copy_bytes_per_s",
//! "fma_flops_per_s", "copy_kernel", "copy_buffer_to_buffer_bytes_per_s", "candidates": [...]}, "rows": [...],
//! "comparisons": [...], "dtype_ratios": [...]}` (fused against unfused, and 16-bit against f32:
//! [`crate::bench::dtype_ratio`]). A comparison has `kernel`, `pass`, `size`, `fused_median_s`, `unfused_median_s`,
//! `speedup` (`unfused_median_s / fused_median_s`), `round_ratio_median`, `round_ratio_min` and `round_ratio_max`
//! (the spread of the per-round ratios, unfused over fused sample of each round of the alternation), `target`,
//! `byte_ratio` (unfused over fused bytes, [`crate::bench::compare::Comparison::byte_ratio`]: the speed-up if both
//! sides moved memory at the same rate and dispatches were free, not a ceiling; `null` where FLOP decide), and
//! `fused_kernels` and `unfused_kernels` (kernels launched per run, [`crate::bench::compare::Comparison::kernels`]).
//! A row has `kernel`, `pass`, `dtype`, `elements` or `shape`, `median_s`, `min_s`, `max_s`, `samples`,
//! `reps_per_sample`, `clock` (the wall clock for work that submits itself, such as a training step), then `bytes_per_s` and `fraction_of_ceiling` (of the copy ceiling) for memory-bound
//! kernels, or `flops_per_s` and `fraction_of_ceiling` (of the FMA ceiling) for compute-bound ones. Rows with both
//! an amount of traffic and an (approximate) FLOP count also carry `flops_per_element`, `flops_per_s` and
//! `fraction_of_fma_ceiling`.
//!
//! The copy ceiling (`of_ceil` in the table, `fraction_of_ceiling` of a memory-bound row) is a copy: one read per
//! write. Rows that read two tensors per one written (every backward row, the gated forward's `a` and `g`) can
//! exceed it on real memory, where reads and writes do not cost alike, so a fraction above 1 there is not an error
//! of the count: on the H200 the identity, relu and gelu backward in f32 at 2^26 reached 1.044 of the ceiling
//! (docs/device/2026-11-29/bench-vulkan-sizes.md), and lavapipe's identity backward 1.011. Forward and backward
//! rows share the one scale, but the ceiling is exact only for the forward's one read per write.

use super::ceilings::{Ceiling, Ceilings};
use super::{Clock, Measurement};
use crate::{Gpu, LaunchConfig};

/// What a row's fraction is taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Bytes read plus written, against the copy ceiling.
    Bandwidth,
    /// FLOP, against the FMA ceiling.
    Arithmetic,
}

/// One measurement of one kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The op's name, e.g. `gelu`.
    pub kernel: String,
    /// `forward`, `backward` or `step`.
    pub pass: &'static str,
    /// Storage type, e.g. `f32`.
    pub dtype: &'static str,
    /// The problem size: elements of an elementwise op, or a shape.
    pub size: Size,
    /// Seconds per run.
    pub measurement: Measurement,
    /// Bytes read plus written per run, where counted.
    pub bytes: Option<f64>,
    /// FLOP per run, where counted (approximate for activations).
    pub flops: Option<f64>,
    /// Which ceiling the row is judged against.
    pub bound: Bound,
    /// `fused` or `unfused` for the two sides of a fused-against-unfused comparison
    /// ([`crate::bench::compare`]); `None` otherwise.
    pub variant: Option<&'static str>,
    /// On both sides of a comparison: median, min and max of the per-round ratios, unfused over fused
    /// ([`crate::bench::compare::round_ratios`]); `None` otherwise.
    pub round_ratios: Option<super::Stats>,
}

/// One fused-against-unfused comparison of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Speedup {
    /// The op, e.g. `bias_gelu`.
    pub kernel: String,
    /// The pass, e.g. `backward`.
    pub pass: &'static str,
    /// The shape.
    pub size: Size,
    /// Median seconds of the fused kernel.
    pub fused_s: f64,
    /// Median seconds of the unfused sequence.
    pub unfused_s: f64,
    /// The target speed-up.
    pub target: f64,
    /// Unfused bytes over fused bytes ([`super::compare::Comparison::byte_ratio`]), where bytes decide: the
    /// speed-up if both sides moved memory at the same rate and dispatches were free.
    pub byte_ratio: Option<f64>,
    /// `(fused, unfused)` kernels launched per run ([`super::compare::Comparison::kernels`]).
    pub kernels: Option<(u32, u32)>,
    /// Median, min and max of the per-round ratios ([`Row::round_ratios`]).
    pub round_ratios: Option<super::Stats>,
}

impl Speedup {
    /// `unfused_s / fused_s`.
    pub fn speedup(&self) -> f64 {
        self.unfused_s / self.fused_s
    }
}

/// A problem size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Size {
    /// Elements of an elementwise op.
    Elements(usize),
    /// A shape, e.g. `[m, k, n]` of a matmul.
    Shape(Vec<usize>),
}

impl Size {
    /// `2^k` for powers of two from 1024, the count otherwise, `RxC` for shapes.
    pub fn text(&self) -> String {
        match self {
            Size::Elements(n) if n.is_power_of_two() && *n >= 1024 => {
                format!("2^{}", n.trailing_zeros())
            }
            Size::Elements(n) => n.to_string(),
            Size::Shape(s) => s
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x"),
        }
    }
}

impl Row {
    /// Bytes per second at the median time, where bytes are counted.
    pub fn bytes_per_s(&self) -> Option<f64> {
        self.bytes.map(|b| self.measurement.stats.rate(b))
    }

    /// FLOP per second at the median time, where FLOP are counted.
    pub fn flops_per_s(&self) -> Option<f64> {
        self.flops.map(|f| self.measurement.stats.rate(f))
    }

    /// The row's rate over its ceiling: bytes/s over the copy ceiling ([`Bound::Bandwidth`]) or FLOP/s over the
    /// FMA ceiling ([`Bound::Arithmetic`]).
    pub fn fraction_of_ceiling(&self, ceilings: &Ceilings) -> Option<f64> {
        match self.bound {
            Bound::Bandwidth => self.bytes_per_s().map(|r| r / ceilings.copy.rate),
            Bound::Arithmetic => self.fraction_of_fma_ceiling(ceilings),
        }
    }

    /// FLOP/s over the FMA ceiling, where FLOP are counted.
    pub fn fraction_of_fma_ceiling(&self, ceilings: &Ceilings) -> Option<f64> {
        self.flops_per_s().map(|r| r / ceilings.fma.rate)
    }

    /// `amount` per element: of the elementwise op, or of the shape (the input `x` of a fused op); none for
    /// compute-bound rows, whose shapes are not element counts.
    pub(super) fn per_element(&self, amount: Option<f64>) -> Option<f64> {
        if self.bound == Bound::Arithmetic {
            return None;
        }
        let n = match &self.size {
            Size::Elements(n) => *n,
            Size::Shape(s) => s.iter().product(),
        };
        amount.filter(|_| n > 0).map(|a| a / n as f64)
    }
}

/// A whole run: the adapter, the clock, the ceilings and the rows.
#[derive(Debug, Clone)]
pub struct Report {
    /// Adapter name.
    pub adapter_name: String,
    /// Backend, as wgpu prints it.
    pub backend: String,
    /// Driver and driver info.
    pub driver: String,
    /// One line naming the adapter (see [`Gpu::adapter_line`]).
    pub adapter_line: String,
    /// The host CPU of a CPU adapter ([`super::host::host_cpu`]), which runs the kernels; `None` for other adapters.
    pub host_cpu: Option<String>,
    /// Workgroup size and work per thread of the arithmetic-bound elementwise kernels.
    pub launch: LaunchConfig,
    /// The same for the streaming (memory-bound) activation kernels ([`crate::Intensity`]).
    pub streaming_launch: LaunchConfig,
    /// True when all-f16 kernels use WGSL's native `f16` rather than packed words, for the streaming and the
    /// arithmetic activations ([`Gpu::f16_native_for`]).
    pub f16_native: [bool; 2],
    /// Rows per row block of the column reductions ([`Gpu::reduction_rows`]).
    pub reduction_rows: usize,
    /// The matmul kernel of the products, dense layers and training steps: [`crate::MatmulKernel::for_gpu`] as it
    /// runs on the device ([`crate::MatmulKernel::on_device`]).
    pub matmul_kernel: crate::MatmulKernel,
    /// The clock the timer read.
    pub clock: Clock,
    /// The ceilings measured at the start of the run.
    pub ceilings: Ceilings,
    /// The measurements.
    pub rows: Vec<Row>,
}

impl Report {
    /// An empty report for `gpu`.
    pub fn new(gpu: &Gpu, clock: Clock, ceilings: Ceilings) -> Self {
        let info = gpu.adapter_info();
        Report {
            adapter_name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info),
            adapter_line: gpu.adapter_line(),
            host_cpu: gpu.host_cpu(),
            launch: gpu.launch_config(),
            streaming_launch: gpu.launch_for(crate::Intensity::Streaming),
            f16_native: [
                gpu.f16_native_for(crate::Intensity::Streaming),
                gpu.f16_native_for(crate::Intensity::Arithmetic),
            ],
            reduction_rows: gpu.reduction_rows(),
            // The kernel that runs, not the option as given: `--matmul tiled` runs Tiled32 on a device whose
            // workgroups hold fewer than 256 threads.
            matmul_kernel: crate::MatmulKernel::for_gpu(gpu).on_device(gpu.limits()),
            clock,
            ceilings,
            rows: Vec::new(),
        }
    }

    /// The f16 paths in effect, as the header names them: `streaming packed, arithmetic native`, say.
    pub fn f16_path(&self) -> String {
        let name = |native: bool| if native { "native" } else { "packed" };
        format!(
            "streaming {}, arithmetic {}",
            name(self.f16_native[0]),
            name(self.f16_native[1])
        )
    }

    /// The header lines: adapter, a CPU adapter's host CPU, clock, launch shapes, f16 path, reduction rows and
    /// ceilings, with every copy candidate.
    pub fn header(&self) -> String {
        let c = &self.ceilings;
        let mut out = format!(
            "adapter: {}\n{}clock: {}; elementwise launch (threads x 8-element units per thread): {}x{}, \
             streaming activations {}x{}; f16 path: {}; reduction rows per block: {}; matmul: {}\n",
            self.adapter_line,
            self.host_cpu
                .as_ref()
                .map_or(String::new(), |cpu| format!("host CPU: {cpu}\n")),
            self.clock.name(),
            self.launch.workgroup_size,
            self.launch.units_per_thread,
            self.streaming_launch.workgroup_size,
            self.streaming_launch.units_per_thread,
            self.f16_path(),
            self.reduction_rows,
            self.matmul_kernel.name()
        );
        out += &format!(
            "ceiling copy: {} (fastest of {} copy kernels: {}; {} MiB per buffer, bytes read + written)\n",
            gbs(c.copy.rate),
            c.copy_kernels.len(),
            c.copy.name,
            (c.copy.amount / 2.0 / f64::from(1u32 << 20)).round()
        );
        out += &format!(
            "ceiling fma:  {:.1} GFLOP/s ({})\n",
            c.fma.rate * 1e-9,
            c.fma.name
        );
        out += &format!(
            "for comparison: copy_buffer_to_buffer {}\n",
            gbs(c.copy_buffer_to_buffer.rate)
        );
        for k in &c.copy_kernels {
            out += &format!(
                "  {:<24} {}  (median {}, min {}, max {})\n",
                k.name,
                gbs(k.rate),
                secs(k.measurement.stats.median),
                secs(k.measurement.stats.min),
                secs(k.measurement.stats.max)
            );
        }
        out
    }

    /// The fused-against-unfused comparisons: each row marked `fused` paired with its `unfused` twin.
    pub fn speedups(&self) -> Vec<Speedup> {
        let median = |r: &Row| r.measurement.stats.median;
        self.rows
            .iter()
            .filter(|r| r.variant == Some("fused"))
            .filter_map(|f| {
                let u = self.rows.iter().find(|u| {
                    u.variant == Some("unfused")
                        && u.kernel == f.kernel
                        && u.pass == f.pass
                        && u.size == f.size
                })?;
                let comparison = super::compare::Comparison::from_name(&f.kernel, f.pass);
                let target = comparison.map_or(f64::NAN, |c| c.target());
                let byte_ratio = match (comparison, &f.size) {
                    (Some(c), Size::Shape(s)) if s.len() == 2 => c.byte_ratio(s[0], s[1]),
                    _ => None,
                };
                Some(Speedup {
                    kernel: f.kernel.clone(),
                    pass: f.pass,
                    size: f.size.clone(),
                    fused_s: median(f),
                    unfused_s: median(u),
                    target,
                    byte_ratio,
                    kernels: comparison.map(|c| c.kernels()),
                    round_ratios: f.round_ratios,
                })
            })
            .collect()
    }

    /// The fused-against-unfused lines: op, pass, size, both medians, the speed-up (ratio of the medians) with
    /// the per-round ratios' median and range, its target, the byte ratio where bytes decide and each side's
    /// kernels.
    pub fn speedup_lines(&self) -> String {
        self.speedups()
            .iter()
            .map(|s| {
                let rounds = s.round_ratios.map_or(String::new(), |r| {
                    format!(" (per round {:.2}x, {:.2}-{:.2}x)", r.median, r.min, r.max)
                });
                let bytes = s
                    .byte_ratio
                    .map_or(String::new(), |r| format!(", bytes {r:.2}x"));
                let kernels = s.kernels.map_or(String::new(), |(f, u)| {
                    format!(", kernels {f} fused, {u} unfused")
                });
                format!(
                    "fused vs unfused: {} {} {}: {} fused, {} unfused, {:.2}x{rounds} (target {:.1}x{bytes}{kernels})\n",
                    s.kernel,
                    s.pass,
                    s.size.text(),
                    secs(s.fused_s),
                    secs(s.unfused_s),
                    s.speedup(),
                    s.target
                )
            })
            .collect()
    }

    /// The table: [`Report::table_header`] and one [`Report::row_line`] per row.
    pub fn table(&self) -> String {
        let mut out = Self::table_header();
        for r in &self.rows {
            out += &self.row_line(r);
        }
        out
    }

    /// The table's column titles: kernel, pass, dtype, size, median/min/max time, rate, fraction of the matching
    /// ceiling, approximate FLOP per element, fraction of the FMA ceiling.
    pub fn table_header() -> String {
        format!(
            "{:<16} {:<8} {:<5} {:>14} {:>10} {:>10} {:>10} {:>12} {:>7} {:>7} {:>6}\n",
            "kernel",
            "pass",
            "dtype",
            "size",
            "median",
            "min",
            "max",
            "rate",
            "of_ceil",
            "flop/el",
            "of_fma"
        )
    }

    /// The eleven cells of a row, as both tables print them: kernel (with its variant), pass, dtype, size,
    /// median, min, max, rate, fraction of the matching ceiling, FLOP per element, fraction of the FMA ceiling.
    pub fn cells(&self, r: &Row) -> [String; 11] {
        let s = &r.measurement.stats;
        let rate = match r.bound {
            Bound::Bandwidth => r.bytes_per_s().map(gbs),
            Bound::Arithmetic => r.flops_per_s().map(|f| format!("{:.2} GFLOP/s", f * 1e-9)),
        };
        let opt = |v: Option<f64>, digits: usize| match v {
            Some(v) => format!("{v:.digits$}"),
            None => "-".into(),
        };
        [
            r.variant
                .map_or(r.kernel.clone(), |v| format!("{} ({v})", r.kernel)),
            r.pass.to_string(),
            r.dtype.to_string(),
            r.size.text(),
            secs(s.median),
            secs(s.min),
            secs(s.max),
            rate.unwrap_or_else(|| "-".into()),
            opt(r.fraction_of_ceiling(&self.ceilings), 3),
            opt(r.per_element(r.flops), 1),
            opt(r.fraction_of_fma_ceiling(&self.ceilings), 3),
        ]
    }

    /// One row of the table, with its fractions of this report's ceilings.
    pub fn row_line(&self, r: &Row) -> String {
        let [k, p, d, z, med, min, max, rate, ceil, flop, fma] = self.cells(r);
        format!(
            "{k:<16} {p:<8} {d:<5} {z:>14} {med:>10} {min:>10} {max:>10} {rate:>12} {ceil:>7} {flop:>7} {fma:>6}\n"
        )
    }

    /// The JSON document described in the module documentation.
    pub fn to_json(&self) -> String {
        let c = &self.ceilings;
        let candidates: Vec<String> = c
            .copy_kernels
            .iter()
            .chain([&c.copy_buffer_to_buffer, &c.fma])
            .map(ceiling_json)
            .collect();
        let rows: Vec<String> = self.rows.iter().map(|r| self.row_json(r)).collect();
        let comparisons: Vec<String> = self
            .speedups()
            .iter()
            .map(|s| {
                let opt = |v: Option<f64>| v.map_or("null".into(), json_num);
                let count = |v: Option<u32>| v.map_or("null".into(), |n| n.to_string());
                let r = s.round_ratios;
                format!(
                    "{{\"kernel\": {}, \"pass\": {}, \"size\": {}, \"fused_median_s\": {}, \"unfused_median_s\": {}, \
                     \"speedup\": {}, \"round_ratio_median\": {}, \"round_ratio_min\": {}, \"round_ratio_max\": {}, \
                     \"target\": {}, \"byte_ratio\": {}, \"fused_kernels\": {}, \"unfused_kernels\": {}}}",
                    json_str(&s.kernel),
                    json_str(s.pass),
                    json_str(&s.size.text()),
                    json_num(s.fused_s),
                    json_num(s.unfused_s),
                    json_num(s.speedup()),
                    opt(r.map(|r| r.median)),
                    opt(r.map(|r| r.min)),
                    opt(r.map(|r| r.max)),
                    json_num(s.target),
                    opt(s.byte_ratio),
                    count(s.kernels.map(|k| k.0)),
                    count(s.kernels.map(|k| k.1))
                )
            })
            .collect();
        format!(
            "{{\"adapter\": {{\"name\": {}, \"backend\": {}, \"driver\": {}}},\n\"host_cpu\": {},\n\"clock\": {},\n\
             \"launch\": {{\"workgroup_size\": {}, \"units_per_thread\": {}}},\n\
             \"streaming_launch\": {{\"workgroup_size\": {}, \"units_per_thread\": {}}},\n\
             \"f16_native\": {{\"streaming\": {}, \"arithmetic\": {}}},\n\"reduction_rows\": {},\n\"matmul_kernel\": {},\n\
             \"ceilings\": {{\"copy_bytes_per_s\": {}, \"fma_flops_per_s\": {}, \"copy_kernel\": {}, \
             \"copy_buffer_to_buffer_bytes_per_s\": {}, \"candidates\": [\n  {}\n]}},\n\"rows\": [\n  {}\n],\n\
             \"comparisons\": [\n  {}\n],\n\"dtype_ratios\": {}}}",
            json_str(&self.adapter_name),
            json_str(&self.backend),
            json_str(&self.driver),
            self.host_cpu.as_deref().map_or("null".into(), json_str),
            json_str(self.clock.name()),
            self.launch.workgroup_size,
            self.launch.units_per_thread,
            self.streaming_launch.workgroup_size,
            self.streaming_launch.units_per_thread,
            self.f16_native[0],
            self.f16_native[1],
            self.reduction_rows,
            json_str(self.matmul_kernel.name()),
            json_num(c.copy.rate),
            json_num(c.fma.rate),
            json_str(&c.copy.name),
            json_num(c.copy_buffer_to_buffer.rate),
            candidates.join(",\n  "),
            rows.join(",\n  "),
            comparisons.join(",\n  "),
            self.dtype_ratios_json()
        )
    }

    fn row_json(&self, r: &Row) -> String {
        let s = &r.measurement.stats;
        let size = match &r.size {
            Size::Elements(n) => format!("\"elements\": {n}"),
            Size::Shape(shape) => format!(
                "\"shape\": [{}]",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut fields = vec![
            format!("\"kernel\": {}", json_str(&r.kernel)),
            format!(
                "\"variant\": {}",
                r.variant.map_or("null".to_string(), json_str)
            ),
            format!("\"pass\": {}", json_str(r.pass)),
            format!("\"dtype\": {}", json_str(r.dtype)),
            size,
            format!("\"median_s\": {}", json_num(s.median)),
            format!("\"min_s\": {}", json_num(s.min)),
            format!("\"max_s\": {}", json_num(s.max)),
            format!("\"samples\": {}", s.samples),
            format!("\"reps_per_sample\": {}", r.measurement.reps_per_sample),
            format!("\"clock\": {}", json_str(r.measurement.clock.name())),
        ];
        if let Some(b) = r.bytes_per_s() {
            fields.push(format!("\"bytes_per_s\": {}", json_num(b)));
        }
        if let Some(f) = r.flops_per_s() {
            if let Some(per) = r.per_element(r.flops) {
                fields.push(format!("\"flops_per_element\": {}", json_num(per)));
            }
            fields.push(format!("\"flops_per_s\": {}", json_num(f)));
        }
        if let Some(f) = r.fraction_of_ceiling(&self.ceilings) {
            fields.push(format!("\"fraction_of_ceiling\": {}", json_num(f)));
        }
        if r.bound == Bound::Bandwidth {
            if let Some(f) = r.fraction_of_fma_ceiling(&self.ceilings) {
                fields.push(format!("\"fraction_of_fma_ceiling\": {}", json_num(f)));
            }
        }
        format!("{{{}}}", fields.join(", "))
    }
}

fn ceiling_json(c: &Ceiling) -> String {
    let s = &c.measurement.stats;
    format!(
        "{{\"name\": {}, \"rate_per_s\": {}, \"median_s\": {}, \"min_s\": {}, \"max_s\": {}}}",
        json_str(&c.name),
        json_num(c.rate),
        json_num(s.median),
        json_num(s.min),
        json_num(s.max)
    )
}

/// Bytes per second as `12.34 GB/s` (10^9 bytes).
pub(super) fn gbs(bytes_per_s: f64) -> String {
    format!("{:.2} GB/s", bytes_per_s * 1e-9)
}

/// Seconds with a unit that keeps 3-4 significant digits.
pub(super) fn secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.2} us", s * 1e6)
    }
}

/// A JSON number, or null where JSON has none (NaN, inf).
pub fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else {
        "null".into()
    }
}

/// A JSON string literal with quotes, backslashes and control characters escaped.
pub fn json_str(s: &str) -> String {
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

/// A report of `rows` with made-up ceilings (copy 100 GB/s, FMA 1 TFLOP/s) and no adapter, for the tests of the
/// report's text.
#[cfg(test)]
pub(super) fn test_report(rows: Vec<Row>) -> Report {
    let ceiling = |name: &str, rate: f64| Ceiling {
        name: name.into(),
        measurement: test_measurement(1e-3),
        amount: rate * 1e-3,
        rate,
    };
    Report {
        adapter_name: "test".into(),
        backend: "Noop".into(),
        driver: String::new(),
        adapter_line: "test".into(),
        host_cpu: None,
        launch: LaunchConfig {
            workgroup_size: 256,
            units_per_thread: 1,
        },
        streaming_launch: LaunchConfig {
            workgroup_size: 256,
            units_per_thread: 1,
        },
        f16_native: [false, false],
        reduction_rows: 64,
        matmul_kernel: crate::MatmulKernel::Tiled,
        clock: Clock::Timestamps,
        ceilings: Ceilings {
            copy: ceiling("copy", 1e11),
            copy_kernels: vec![ceiling("copy", 1e11)],
            copy_buffer_to_buffer: ceiling("copy_buffer_to_buffer", 1e11),
            fma: ceiling("fma", 1e12),
        },
        rows,
    }
}

/// A measurement whose samples all took `median` seconds.
#[cfg(test)]
pub(super) fn test_measurement(median: f64) -> Measurement {
    Measurement {
        stats: super::Stats {
            median,
            min: median,
            max: median,
            samples: 3,
        },
        reps_per_sample: 1,
        clock: Clock::Timestamps,
    }
}

/// A row of `kernel` in `pass`, `dtype` on `size`, `variant`, taking `median` seconds.
#[cfg(test)]
pub(super) fn test_row(
    kernel: &str,
    pass: &'static str,
    dtype: &'static str,
    size: Size,
    variant: Option<&'static str>,
    median: f64,
) -> Row {
    Row {
        kernel: kernel.into(),
        pass,
        dtype,
        size,
        measurement: test_measurement(median),
        bytes: Some(1e6),
        flops: None,
        bound: Bound::Bandwidth,
        variant,
        round_ratios: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The comparison and 16-bit lines print times as the table does: 42 us is `42.00 us`, not `0.042 ms`.
    #[test]
    fn text_lines_keep_significant_digits() {
        let shape = || Size::Shape(vec![4096, 4096]);
        let report = test_report(vec![
            test_row("bias_gelu", "forward", "f32", shape(), Some("fused"), 42e-6),
            test_row(
                "bias_gelu",
                "forward",
                "f32",
                shape(),
                Some("unfused"),
                84e-6,
            ),
            test_row("relu", "forward", "f32", shape(), None, 42e-6),
            test_row("relu", "forward", "f16", shape(), None, 24e-6),
        ]);
        let lines = report.speedup_lines();
        assert!(
            lines.contains("42.00 us fused, 84.00 us unfused, 2.00x"),
            "{lines}"
        );
        let lines = report.dtype_ratio_lines();
        assert!(lines.contains("24.00 us, f32 42.00 us, 1.75x"), "{lines}");
    }

    /// A CPU adapter's report names the host CPU in the header, the JSON and the Markdown; another's says nothing
    /// in the text and `null` in the JSON.
    #[test]
    fn the_host_cpu_is_named_where_it_is_known() {
        let mut report = test_report(vec![]);
        assert!(!report.header().contains("host CPU"));
        assert!(!report.markdown().contains("host CPU"));
        assert!(report.to_json().contains("\"host_cpu\": null,"));
        report.host_cpu = Some("AMD EPYC (x86_64, 2 threads; avx2 fma, no avx512f)".into());
        assert!(report
            .header()
            .contains("\nhost CPU: AMD EPYC (x86_64, 2 threads; avx2 fma, no avx512f)\n"));
        assert!(report
            .markdown()
            .contains("Adapter: `test`; host CPU: `AMD EPYC (x86_64, 2 threads; avx2 fma, no avx512f)`; clock: "));
        assert!(report
            .to_json()
            .contains("\"host_cpu\": \"AMD EPYC (x86_64, 2 threads; avx2 fma, no avx512f)\","));
    }

    #[test]
    fn json_helpers() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        assert_eq!(json_num(f64::NAN), "null");
        assert_eq!(json_num(1.5), "1.5e0");
        assert_eq!(Size::Elements(1 << 24).text(), "2^24");
        assert_eq!(Size::Elements(1000).text(), "1000");
        assert_eq!(Size::Shape(vec![2, 3]).text(), "2x3");
    }

    /// A comparison reports the spread of its per-round ratios and each side's kernels beside the ratio of the
    /// medians, in the lines, the JSON and the Markdown.
    #[test]
    fn comparisons_carry_round_ratios_and_kernels() {
        let shape = || Size::Shape(vec![4096, 4096]);
        let spread = super::super::Stats {
            median: 1.36,
            min: 1.30,
            max: 1.41,
            samples: 15,
        };
        let mut rows = vec![
            test_row("bias_gelu", "backward", "f32", shape(), Some("fused"), 1e-3),
            test_row(
                "bias_gelu",
                "backward",
                "f32",
                shape(),
                Some("unfused"),
                1.35e-3,
            ),
        ];
        for r in &mut rows {
            r.round_ratios = Some(spread);
        }
        let report = test_report(rows);
        let s = &report.speedups()[0];
        assert_eq!(s.kernels, Some((1, 2)));
        assert_eq!(s.round_ratios, Some(spread));
        let lines = report.speedup_lines();
        let want = "1.35x (per round 1.36x, 1.30-1.41x) (target 1.5x, bytes 1.33x, kernels 1 fused, 2 unfused)";
        assert!(lines.contains(want), "{lines}");
        let json = report.to_json();
        for key in [
            "\"round_ratio_median\": 1.36e0",
            "\"round_ratio_min\": 1.3e0",
            "\"round_ratio_max\": 1.41e0",
            "\"fused_kernels\": 1",
            "\"unfused_kernels\": 2",
        ] {
            assert!(json.contains(key), "{key} missing from {json}");
        }
        let md = report.markdown();
        let want = "| 1.35x | 1.36x (1.30-1.41x) | 1.5x | 1.33x | 1 / 2 |";
        assert!(md.contains(want), "{md}");
    }
}
