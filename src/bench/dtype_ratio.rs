//! 16-bit storage against f32: for every row of a 16-bit type, the f32 row of the same kernel, pass and size in the
//! same report, and the ratio of their element rates (`f32 median / 16-bit median`, since both process the same
//! number of elements). The target of 1.8x for a memory-bound activation's forward pass is the f16/bf16 issue's:
//! half the bytes should give nearly twice the elements per second.

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
                })
            })
            .collect()
    }

    /// One line per [`DtypeRatio`]: op, pass, size, type, both medians and the speed-up.
    pub fn dtype_ratio_lines(&self) -> String {
        self.dtype_ratios()
            .iter()
            .map(|r| {
                format!(
                    "16-bit vs f32: {} {} {} {}: {}, f32 {}, {:.2}x the elements/s\n",
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

    /// The ratios as a JSON array of `{"kernel", "pass", "size", "dtype", "median_s", "f32_median_s", "speedup"}`.
    pub(super) fn dtype_ratios_json(&self) -> String {
        let items: Vec<String> = self
            .dtype_ratios()
            .iter()
            .map(|r| {
                format!(
                    "{{\"kernel\": {}, \"pass\": {}, \"size\": {}, \"dtype\": {}, \"median_s\": {}, \
                     \"f32_median_s\": {}, \"speedup\": {}}}",
                    json_str(&r.kernel),
                    json_str(r.pass),
                    json_str(&r.size.text()),
                    json_str(r.dtype),
                    json_num(r.half_s),
                    json_num(r.f32_s),
                    json_num(r.speedup())
                )
            })
            .collect();
        format!("[\n  {}\n]", items.join(",\n  "))
    }
}
