//! 16-bit storage against f32: for every row of a 16-bit type, the f32 row of the same kernel, pass and size in the
//! same report, and the ratio of their element rates (`f32 median / 16-bit median`, since both process the same
//! number of elements). The target of 1.8x is the f16/bf16 issue's and concerns one kind of row: the forward pass
//! of a memory-bound activation (the streaming ones, [`crate::Activation::intensity`]: relu, hardswish, ...), where
//! half the bytes should give nearly twice the elements per second (the issue judged relu at 2^24 elements; at
//! sizes that fit a cache, or are launch-bound, bytes do not decide and the target reads as context only). Those
//! ratios carry it as `target`; backward passes, arithmetic-bound activations, fused ops and products have none
//! (their 16-bit rows convert more per byte saved, or are not bound by bytes).

use super::report::{json_num, json_str, secs, Report, Row, Size};

/// The speed-up a 16-bit forward pass of a memory-bound activation should reach over f32.
pub const TARGET_16BIT_SPEEDUP: f64 = 1.8;

/// One 16-bit row against its f32 counterpart.
#[derive(Debug, Clone, PartialEq)]
pub struct DtypeRatio {
    /// The op, e.g. `relu`.
    pub kernel: String,
    /// The pass, e.g. `forward`.
    pub pass: &'static str,
    /// The size.
    pub size: Size,
    /// The 16-bit type, `f16` or `bf16`.
    pub dtype: &'static str,
    /// Median seconds in f32.
    pub f32_s: f64,
    /// Median seconds in the 16-bit type.
    pub half_s: f64,
    /// [`TARGET_16BIT_SPEEDUP`] for the forward pass of a memory-bound activation ([`target_for`]); `None` for
    /// every other row.
    pub target: Option<f64>,
}

/// The 16-bit target of a row of `kernel` in `pass`: [`TARGET_16BIT_SPEEDUP`] where `kernel` names a plain
/// activation of [`crate::Intensity::Streaming`] and `pass` is `forward`, else `None`.
pub fn target_for(kernel: &str, pass: &str) -> Option<f64> {
    let act = crate::Activation::from_name(kernel)?;
    (pass == "forward" && act.intensity() == crate::Intensity::Streaming)
        .then_some(TARGET_16BIT_SPEEDUP)
}

impl DtypeRatio {
    /// Elements per second in the 16-bit type over elements per second in f32.
    pub fn speedup(&self) -> f64 {
        self.f32_s / self.half_s
    }
}

impl Report {
    /// Every 16-bit row that has an f32 row of the same kernel, pass and size (fused-against-unfused sides
    /// excluded), in row order.
    pub fn dtype_ratios(&self) -> Vec<DtypeRatio> {
        let median = |r: &Row| r.measurement.stats.median;
        self.rows
            .iter()
            .filter(|r| r.variant.is_none() && matches!(r.dtype, "f16" | "bf16"))
            .filter_map(|h| {
                let f = self.rows.iter().find(|f| {
                    f.variant.is_none()
                        && f.dtype == "f32"
                        && f.kernel == h.kernel
                        && f.pass == h.pass
                        && f.size == h.size
                })?;
                Some(DtypeRatio {
                    kernel: h.kernel.clone(),
                    pass: h.pass,
                    size: h.size.clone(),
                    dtype: h.dtype,
                    f32_s: median(f),
                    half_s: median(h),
                    target: target_for(&h.kernel, h.pass),
                })
            })
            .collect()
    }

    /// One line per [`DtypeRatio`]: op, pass, size, type, both medians, the speed-up and its target where the
    /// row has one.
    pub fn dtype_ratio_lines(&self) -> String {
        self.dtype_ratios()
            .iter()
            .map(|r| {
                let target = r
                    .target
                    .map_or(String::new(), |t| format!(" (target {t:.1}x)"));
                format!(
                    "16-bit vs f32: {} {} {} {}: {}, f32 {}, {:.2}x the elements/s{target}\n",
                    r.kernel,
                    r.pass,
                    r.size.text(),
                    r.dtype,
                    secs(r.half_s),
                    secs(r.f32_s),
                    r.speedup()
                )
            })
            .collect()
    }

    /// The ratios as a JSON array of `{"kernel", "pass", "size", "dtype", "median_s", "f32_median_s", "speedup",
    /// "target"}` (`target` null where the row has none).
    pub(super) fn dtype_ratios_json(&self) -> String {
        let items: Vec<String> = self
            .dtype_ratios()
            .iter()
            .map(|r| {
                format!(
                    "{{\"kernel\": {}, \"pass\": {}, \"size\": {}, \"dtype\": {}, \"median_s\": {}, \
                     \"f32_median_s\": {}, \"speedup\": {}, \"target\": {}}}",
                    json_str(&r.kernel),
                    json_str(r.pass),
                    json_str(&r.size.text()),
                    json_str(r.dtype),
                    json_num(r.half_s),
                    json_num(r.f32_s),
                    json_num(r.speedup()),
                    r.target.map_or("null".into(), json_num)
                )
            })
            .collect();
        format!("[\n  {}\n]", items.join(",\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{test_report, test_row};

    /// The 1.8x target marks the forward rows of memory-bound activations only.
    #[test]
    fn target_marks_memory_bound_forward_rows() {
        assert_eq!(target_for("relu", "forward"), Some(TARGET_16BIT_SPEEDUP));
        assert_eq!(
            target_for("hardswish", "forward"),
            Some(TARGET_16BIT_SPEEDUP)
        );
        for (kernel, pass) in [
            ("relu", "backward"),
            ("gelu", "forward"),
            ("bias_relu", "forward"),
            ("matmul", "forward"),
        ] {
            assert_eq!(target_for(kernel, pass), None, "{kernel} {pass}");
        }
        let size = || Size::Elements(1 << 24);
        let report = test_report(vec![
            test_row("relu", "forward", "f32", size(), None, 4e-3),
            test_row("relu", "forward", "f16", size(), None, 2e-3),
            test_row("relu", "backward", "f32", size(), None, 6e-3),
            test_row("relu", "backward", "f16", size(), None, 4e-3),
        ]);
        let lines = report.dtype_ratio_lines();
        assert!(
            lines.contains("2.00x the elements/s (target 1.8x)\n"),
            "{lines}"
        );
        assert!(lines.contains("1.50x the elements/s\n"), "{lines}");
        let json = report.dtype_ratios_json();
        assert!(json.contains("\"target\": 1.8e0") && json.contains("\"target\": null"));
    }
}
