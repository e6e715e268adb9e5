//! The report as Markdown, for BENCHMARKS.md.

use super::report::{gbs, secs, Report};

impl Report {
    /// The run as Markdown: one paragraph naming the adapter (and a CPU adapter's host CPU), clock, launch shape,
    /// f16 path, reduction rows and ceilings (with every copy candidate), then one table row per measurement with
    /// the same columns as [`Report::table`].
    pub fn markdown(&self) -> String {
        let c = &self.ceilings;
        let candidates: Vec<String> = c
            .copy_kernels
            .iter()
            .map(|k| format!("{} {}", k.name, gbs(k.rate)))
            .collect();
        let mut out = format!(
            "Adapter: `{}`{}; clock: {}; elementwise launch (threads x 8-element units per thread): {}x{}, \
             streaming activations {}x{}; f16 path: {}; reduction rows per block: {}; matmul: {}.\n\n\
             Ceilings: **copy {}** (fastest of: {}; {} MiB per buffer, bytes read + written), \
             **FMA {:.1} GFLOP/s** ({}); for comparison `copy_buffer_to_buffer` {}.\n\n",
            self.adapter_line,
            self.host_cpu
                .as_ref()
                .map_or(String::new(), |cpu| format!("; host CPU: `{cpu}`")),
            self.clock.name(),
            self.launch.workgroup_size,
            self.launch.units_per_thread,
            self.streaming_launch.workgroup_size,
            self.streaming_launch.units_per_thread,
            self.f16_path(),
            self.reduction_rows,
            self.matmul_kernel.name(),
            gbs(c.copy.rate),
            candidates.join(", "),
            (c.copy.amount / 2.0 / f64::from(1u32 << 20)).round(),
            c.fma.rate * 1e-9,
            c.fma.name,
            gbs(c.copy_buffer_to_buffer.rate)
        );
        out += "| kernel | pass | dtype | size | median | min | max | rate | of ceiling | FLOP/el | of FMA |\n";
        out += "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
        for r in &self.rows {
            out += &format!("| {} |\n", self.cells(r).join(" | "));
        }
        let speedups = self.speedups();
        if !speedups.is_empty() {
            out += "\n| fused vs unfused | pass | size | fused | unfused | speed-up | per round (min-max) | target \
                    | bytes ratio | kernels |\n";
            out += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
            for s in speedups {
                out += &format!(
                    "| {} | {} | {} | {} | {} | {:.2}x | {} | {:.1}x | {} | {} |\n",
                    s.kernel,
                    s.pass,
                    s.size.text(),
                    secs(s.fused_s),
                    secs(s.unfused_s),
                    s.speedup(),
                    s.round_ratios.map_or("-".into(), |r| format!(
                        "{:.2}x ({:.2}-{:.2}x)",
                        r.median, r.min, r.max
                    )),
                    s.target,
                    s.byte_ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                    s.kernels.map_or("-".into(), |(f, u)| format!("{f} / {u}"))
                );
            }
            out += "\nSpeed-up: unfused median over fused median of samples taken in alternation; per round: the \
                    median (min-max) of each round's unfused over fused sample. Bytes ratio: the speed-up if both \
                    sides moved memory at the same rate and dispatches were free (each dispatch also costs a fixed \
                    time, so a speed-up can pass it). Kernels: launched per run, fused / unfused; the dense \
                    forward's unfused side is the product, a bias-add kernel and the activation kernel.\n";
        }
        let ratios = self.dtype_ratios();
        if !ratios.is_empty() {
            out +=
                "\n| 16-bit vs f32 | pass | size | type | time | f32 time | elements/s ratio | target |\n";
            out += "|---|---|---|---|---:|---:|---:|---:|\n";
            for r in ratios {
                out += &format!(
                    "| {} | {} | {} | {} | {} | {} | {:.2}x | {} |\n",
                    r.kernel,
                    r.pass,
                    r.size.text(),
                    r.dtype,
                    secs(r.half_s),
                    secs(r.f32_s),
                    r.speedup(),
                    r.target.map_or("-".into(), |t| format!("{t:.1}x"))
                );
            }
        }
        out
    }
}
