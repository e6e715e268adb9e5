//! Hand-rolled SVG charts for the study's report: a line chart (axes, "nice" ticks, optional log-10 y axis,
//! a legend; one `<path class="series">` per series) and a bar chart (one `<rect class="bar">` per bar, with an
//! optional error bar). No plotting crate: the output is plain SVG 1.1 text that any browser renders.
//!
//! Tick spacing is the "nice number" rule: for a span `s` and about `n` ticks, the step is `m 10^k` with
//! `m` in {1, 2, 5, 10}, the smallest such value `>= s / n`; on an axis of whole numbers (epochs, layers) at
//! least 1, so that no tick falls between two of them. A log axis puts ticks at powers of ten, or at 1, 2 and 5
//! times them when the data span less than two decades.
//!
//! A line chart can carry horizontal guide lines ([`Guide`]: a baseline, a target), labelled on the plot and
//! inside its y range. A series without a point to draw (a diverged run, say, whose caller leaves its points
//! out) keeps its legend entry, so that its name, and what its caller says about it, stay on the chart.

use std::fmt::Write;

/// A named series of `(x, y)` points; non-finite points (and, on a log axis, non-positive y) break the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A horizontal line across a line chart at `y`, dashed grey, with its label on the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Guide {
    /// The text beside the line.
    pub label: String,
    /// Where it is drawn (kept inside the y range; left out if not finite, or not positive on a log axis).
    pub y: f64,
}

/// A line chart of several series sharing axes.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// Whether the y axis is logarithmic (base 10).
    pub log_y: bool,
    /// Whether the x values are whole numbers (epochs, layers): ticks then fall only on whole numbers.
    pub integer_x: bool,
    /// Horizontal guide lines, drawn under the series.
    pub guides: Vec<Guide>,
    /// The series, drawn in order, each in its own colour and dash pattern; one with no point to draw keeps
    /// its legend entry.
    pub series: Vec<Series>,
}

/// One bar: a label, a value and an optional half-width of an error bar (a standard deviation, say).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Height.
    pub value: f64,
    /// Error bar half-width, drawn from `value - err` to `value + err`.
    pub err: Option<f64>,
}

/// A vertical bar chart with a linear y axis starting at zero.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Title above the plot.
    pub title: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// The bars, left to right.
    pub bars: Vec<Bar>,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 40.0;
const PLOT_H: f64 = 420.0;
/// Vertical spacing of the line chart's legend entries, one per series beside the plot.
const LEGEND_STEP: f64 = 16.0;

/// The line chart's height for `series` legend entries: [`HEIGHT`], or taller when the legend (from `TOP + 8`,
/// one entry per [`LEGEND_STEP`]) would run past it (more than about 30 series), so every name is visible.
fn line_chart_height(series: usize) -> f64 {
    HEIGHT.max(TOP + 8.0 + LEGEND_STEP * series as f64 + 12.0)
}

/// Twelve distinguishable colours (Tableau 10 plus two); series past twelve reuse them dashed.
const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#79706e", "#17becf", "#222222",
];
const DASHES: [&str; 3] = ["", "6 3", "2 2"];

/// `s` with the five XML special characters escaped.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The nice tick step for `span` over about `n` ticks (see the module documentation).
pub fn nice_step(span: f64, n: usize) -> f64 {
    let raw = (span / n.max(1) as f64).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// Ticks covering `[lo, hi]` on a linear axis, returning the widened range and the tick values; on an axis of
/// whole numbers (`integer`), a step of at least 1 from a whole number.
fn linear_ticks(lo: f64, hi: f64, integer: bool) -> (f64, f64, Vec<f64>) {
    // A span of a few bits (two flat series one rounding apart) is flat too: spread over the whole height it
    // would draw noise as a difference, under ticks that all print alike. A single whole number gets its
    // neighbours, not half-way ticks.
    let pad = if integer { 1.0 } else { 0.5 };
    let (lo, hi) = if hi - lo > 1e-9 * lo.abs().max(hi.abs()) {
        (lo, hi)
    } else {
        (lo - pad, hi + pad)
    };
    let step = nice_step(hi - lo, 5);
    let step = if integer { step.max(1.0) } else { step };
    let start = (lo / step).floor() * step;
    let end = (hi / step).ceil() * step;
    let count = ((end - start) / step).round() as usize;
    let ticks = (0..=count).map(|i| start + i as f64 * step).collect();
    (start, end, ticks)
}

/// Ticks on a log-10 axis covering `[lo, hi]` (both positive): the range in log10 units and the tick values.
fn log_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    let a = lo.log10().floor();
    let b = hi.log10().ceil().max(a + 1.0);
    let mults: &[f64] = if b - a <= 2.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks = Vec::new();
    let mut k = a;
    while k <= b {
        for m in mults {
            let v = m * 10f64.powf(k);
            if v <= 10f64.powf(b) * (1.0 + 1e-9) {
                ticks.push(v);
            }
        }
        k += 1.0;
    }
    (a, b, ticks)
}

/// A tick label: short, without trailing zeros, in exponent form for very large or small magnitudes; `n/a` for
/// NaN and infinities.
fn tick_label(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        // Three significant digits, trailing zeros dropped: 1.5e-4, not 2e-4.
        let e = format!("{v:.2e}");
        let (mantissa, exponent) = e.split_once('e').unwrap_or((&e, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    trim_zeros(&format!("{v:.4}"))
}

/// A linear axis's tick label at ticks `step` apart: [`tick_label`], with as many decimals as the step needs
/// where four are too few (ticks 5e-5 apart near 0.33 would all print `0.3333`).
fn axis_label(v: f64, step: f64) -> String {
    let a = v.abs();
    if step >= 1e-4 || !v.is_finite() || v == 0.0 || !(1e-3..1e5).contains(&a) {
        return tick_label(v);
    }
    let decimals = ((-step.log10()).ceil() as usize).min(15);
    trim_zeros(&format!("{v:.decimals$}"))
}

/// A decimal number without trailing zeros after its point (nor the point, if nothing is left after it).
fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Colour and dash pattern of series `i`.
fn style(i: usize) -> (&'static str, &'static str) {
    (
        PALETTE[i % PALETTE.len()],
        DASHES[(i / PALETTE.len()) % DASHES.len()],
    )
}

/// The width the legend's text needs at 12 px: about 7 px a character (sans-serif averages less), so that a long
/// name (`elu_learnable_channel (1/3 runs diverged)`) widens the chart rather than running off it.
const LEGEND_CHAR_W: f64 = 7.0;

/// The line chart's width for legend names of at most `chars` characters beginning at `text_x`: [`WIDTH`], or
/// wider where they would run past it.
fn line_chart_width(text_x: f64, chars: usize) -> f64 {
    WIDTH.max((text_x + LEGEND_CHAR_W * chars as f64 + 8.0).ceil())
}

fn header(out: &mut String, title: &str, width: f64, height: f64) {
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        width / 2.0,
        xml_escape(title)
    );
}

/// Draws the frame, the y ticks (values mapped by `y_of`) with grid lines and labels, and the y label.
fn y_axis(out: &mut String, plot_w: f64, ticks: &[f64], y_of: &dyn Fn(f64) -> f64, label: &str) {
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{PLOT_H}\" fill=\"none\" stroke=\"black\"/>"
    );
    let step = match ticks {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    for &t in ticks {
        let y = y_of(t);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.2}\" x2=\"{:.2}\" y2=\"{y:.2}\" stroke=\"#dddddd\"/>\
             <text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            xml_escape(&axis_label(t, step))
        );
    }
    let cy = TOP + PLOT_H / 2.0;
    let _ = writeln!(
        out,
        "<text x=\"18\" y=\"{cy}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {cy})\">{}</text>",
        xml_escape(label)
    );
}

impl LineChart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let plot_w = WIDTH - LEFT - 200.0;
        let usable =
            |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0);
        let pts = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|p| usable(p))
        };
        let (xmin, xmax) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
        let guide_ok = |g: &&Guide| g.y.is_finite() && (!self.log_y || g.y > 0.0);
        let (ymin, ymax) = pts()
            .map(|p| p.1)
            .chain(self.guides.iter().filter(guide_ok).map(|g| g.y))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
                (a.min(y), b.max(y))
            });
        let (xmin, xmax) = if xmin.is_finite() {
            (xmin, xmax)
        } else {
            (0.0, 1.0)
        };
        let (ymin, ymax) = match (ymin.is_finite(), self.log_y) {
            (true, _) => (ymin, ymax),
            (false, true) => (0.1, 1.0),
            (false, false) => (0.0, 1.0),
        };
        let (x0, x1, xticks) = linear_ticks(xmin, xmax, self.integer_x);
        let (y0, y1, yticks) = if self.log_y {
            log_ticks(ymin, ymax)
        } else {
            linear_ticks(ymin, ymax, false)
        };
        let log_y = self.log_y;
        let x_of = move |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
        let y_of = move |y: f64| {
            let v = if log_y { y.log10() } else { y };
            TOP + PLOT_H - (v - y0) / (y1 - y0) * PLOT_H
        };
        let mut out = String::new();
        let longest = self
            .series
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        header(
            &mut out,
            &self.title,
            line_chart_width(LEFT + plot_w + 44.0, longest),
            line_chart_height(self.series.len()),
        );
        y_axis(&mut out, plot_w, &yticks, &y_of, &self.y_label);
        for &t in &xticks {
            let x = x_of(t);
            let _ = writeln!(
                out,
                "<line x1=\"{x:.2}\" y1=\"{:.2}\" x2=\"{x:.2}\" y2=\"{:.2}\" stroke=\"black\"/>\
                 <text x=\"{x:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
                TOP + PLOT_H,
                TOP + PLOT_H + 5.0,
                TOP + PLOT_H + 18.0,
                xml_escape(&tick_label(t))
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
            LEFT + plot_w / 2.0,
            TOP + PLOT_H + 38.0,
            xml_escape(&self.x_label)
        );
        // Each guide's label sits above its line, or below it where it would overlap an earlier label (two
        // guides at about the same height: a baseline at the target, say).
        let mut labels_at: Vec<f64> = Vec::new();
        for g in self.guides.iter().filter(guide_ok) {
            let y = y_of(g.y);
            let above = y - 4.0;
            let ly = if labels_at.iter().any(|&l| (l - above).abs() < 14.0) {
                y + 14.0
            } else {
                above
            };
            labels_at.push(ly);
            let _ = writeln!(
                out,
                "<line class=\"guide\" x1=\"{LEFT}\" y1=\"{y:.2}\" x2=\"{:.2}\" y2=\"{y:.2}\" stroke=\"#777777\" \
                 stroke-width=\"1.2\" stroke-dasharray=\"5 4\"/><text x=\"{:.2}\" y=\"{ly:.2}\" \
                 text-anchor=\"end\" fill=\"#555555\">{}</text>",
                LEFT + plot_w,
                LEFT + plot_w - 6.0,
                xml_escape(&g.label)
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let (colour, dash) = style(i);
            let mut d = String::new();
            let mut pen_down = false;
            for p in &s.points {
                if usable(p) {
                    let _ = write!(
                        d,
                        "{}{:.2} {:.2} ",
                        if pen_down { "L" } else { "M" },
                        x_of(p.0),
                        y_of(p.1)
                    );
                    pen_down = true;
                } else {
                    pen_down = false;
                }
            }
            // Nothing to draw (no usable point): no path, but the legend entry stays.
            if !d.is_empty() {
                let _ = writeln!(
                    out,
                    "<path class=\"series\" d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" \
                     stroke-dasharray=\"{dash}\"><title>{}</title></path>",
                    d.trim_end(),
                    xml_escape(&s.name)
                );
            }
            let ly = TOP + 8.0 + LEGEND_STEP * i as f64;
            let lx = LEFT + plot_w + 14.0;
            let _ = writeln!(
                out,
                "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\" \
                 stroke-dasharray=\"{dash}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                lx + 24.0,
                lx + 30.0,
                ly + 4.0,
                xml_escape(&s.name)
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

impl BarChart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let plot_w = WIDTH - LEFT - 40.0;
        let top = self
            .bars
            .iter()
            .map(|b| b.value + b.err.unwrap_or(0.0))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let (y0, y1, yticks) = linear_ticks(0.0, if top > 0.0 { top } else { 1.0 }, false);
        let y_of = move |y: f64| TOP + PLOT_H - (y - y0) / (y1 - y0) * PLOT_H;
        let mut out = String::new();
        header(&mut out, &self.title, WIDTH, HEIGHT);
        y_axis(&mut out, plot_w, &yticks, &y_of, &self.y_label);
        let slot = plot_w / self.bars.len().max(1) as f64;
        for (i, b) in self.bars.iter().enumerate() {
            let x = LEFT + slot * i as f64 + slot * 0.15;
            let w = slot * 0.7;
            let v = if b.value.is_finite() {
                b.value.max(0.0)
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "<rect class=\"bar\" x=\"{x:.2}\" y=\"{:.2}\" width=\"{w:.2}\" height=\"{:.2}\" fill=\"{}\">\
                 <title>{}: {}</title></rect>",
                y_of(v),
                y_of(0.0) - y_of(v),
                PALETTE[0],
                xml_escape(&b.label),
                tick_label(b.value)
            );
            if !b.value.is_finite() {
                // No bar for a value that is not a number (a diverged run's ECE): a zero-height slot would read
                // as the best value, so the slot says so.
                let _ = writeln!(
                    out,
                    "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\" fill=\"{}\">n/a</text>",
                    x + w / 2.0,
                    y_of(0.0) - 6.0,
                    PALETTE[1],
                );
            }
            if let Some(e) = b.err.filter(|e| e.is_finite() && *e > 0.0) {
                let cx = x + w / 2.0;
                let _ = writeln!(
                    out,
                    "<line x1=\"{cx:.2}\" y1=\"{:.2}\" x2=\"{cx:.2}\" y2=\"{:.2}\" stroke=\"black\"/>",
                    y_of((v - e).max(0.0)),
                    y_of(v + e)
                );
            }
            let lx = x + w / 2.0;
            let ly = TOP + PLOT_H + 12.0;
            let _ = writeln!(
                out,
                "<text x=\"{lx:.2}\" y=\"{ly:.2}\" text-anchor=\"end\" transform=\"rotate(-45 {lx:.2} {ly:.2})\">{}</text>",
                xml_escape(&b.label)
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `svg` is well-formed as far as a simple scan can tell: one XML declaration, every tag closed
    /// in order, attribute values quoted, no raw `&` outside an entity, no NaN or inf written as a number.
    pub(crate) fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<?xml version=\"1.0\""));
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg[svg.find("?>").unwrap() + 2..].trim_start();
        assert!(rest.starts_with("<svg"));
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "stray '>' in {text:?}");
            for (i, _) in text.match_indices('&') {
                let ent = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&ent),
                    "{ent}"
                );
            }
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in <{tag}>"
            );
            assert!(!tag.contains('<'), "'<' inside <{tag}>");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or("");
                assert!(
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                    "<{tag}>"
                );
                stack.push(name.to_string());
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert!(rest.trim().is_empty());
        for bad in ["NaN", "inf"] {
            assert!(!svg.contains(bad), "{bad} in the SVG");
        }
    }

    fn chart(log_y: bool) -> LineChart {
        LineChart {
            title: "loss <train> & test".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            log_y,
            integer_x: true,
            guides: Vec::new(),
            series: (0..14)
                .map(|i| Series {
                    name: format!("act{i}"),
                    points: (1..=5)
                        .map(|e| (e as f64, 1.0 / (e as f64 + i as f64)))
                        .chain([(6.0, f64::NAN), (7.0, 0.01)])
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn line_chart_is_well_formed_with_one_path_per_series() {
        for log_y in [false, true] {
            let c = chart(log_y);
            let svg = c.svg();
            assert_well_formed(&svg);
            assert_eq!(
                svg.matches("<path class=\"series\"").count(),
                c.series.len()
            );
            assert!(svg.contains("loss &lt;train&gt; &amp; test"));
            // The NaN point breaks the line: a second move-to in every path.
            let first = svg.split("<path class=\"series\" d=\"").nth(1).unwrap();
            assert_eq!(first[..first.find('"').unwrap()].matches('M').count(), 2);
        }
        let empty = LineChart {
            series: vec![],
            ..chart(true)
        };
        assert_well_formed(&empty.svg());
    }

    /// The `height` attribute of the root element, and the largest `y` of any `<text>`.
    fn height_and_lowest_text(svg: &str) -> (f64, f64) {
        let attr = |tag: &str, name: &str| -> Option<f64> {
            let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            tag[start..start + tag[start..].find('"')?].parse().ok()
        };
        let root = &svg[svg.find("<svg").unwrap()..];
        let height = attr(&root[..root.find('>').unwrap()], "height").unwrap();
        let lowest = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| attr(&t[..t.find('>').unwrap()], "y"))
            .fold(0.0, f64::max);
        (height, lowest)
    }

    #[test]
    fn the_legend_fits_however_many_series() {
        for n in [2, 14, 31, 40] {
            let mut c = chart(false);
            c.series = (0..n)
                .map(|i| Series {
                    name: format!("kind{i}"),
                    points: vec![(1.0, i as f64), (2.0, 1.0)],
                })
                .collect();
            let svg = c.svg();
            assert_well_formed(&svg);
            assert!(svg.contains(&format!(">kind{}</text>", n - 1)));
            let (height, lowest) = height_and_lowest_text(&svg);
            assert!(
                lowest + 4.0 <= height,
                "{n} series: text at y {lowest} on a {height} high canvas"
            );
            assert_eq!(height == HEIGHT, n <= 30, "{n} series: height {height}");
        }
    }

    #[test]
    fn bar_chart_is_well_formed_with_one_rect_per_bar() {
        let c = BarChart {
            title: "ECE".into(),
            y_label: "ECE".into(),
            bars: vec![
                Bar {
                    label: "relu".into(),
                    value: 0.05,
                    err: Some(0.01),
                },
                Bar {
                    label: "tanh".into(),
                    value: 0.02,
                    err: None,
                },
                Bar {
                    label: "bad".into(),
                    value: f64::NAN,
                    err: Some(f64::NAN),
                },
            ],
        };
        let svg = c.svg();
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3);
        // The NaN bar's slot says so, rather than showing the lowest (best) value.
        assert_eq!(svg.matches(">n/a</text>").count(), 1, "{svg}");
    }

    #[test]
    fn nice_steps_and_ticks() {
        assert_eq!(nice_step(10.0, 5), 2.0);
        assert_eq!(nice_step(1.0, 5), 0.2);
        assert_eq!(nice_step(0.07, 5), 0.02);
        assert_eq!(nice_step(30.0, 5), 10.0);
        let (lo, hi, t) = linear_ticks(0.13, 0.97, false);
        assert_eq!((lo, hi, t.len()), (0.0, 1.0, 6));
        let (a, b, t) = log_ticks(0.003, 20.0);
        assert_eq!((a, b), (-3.0, 2.0));
        assert_eq!(t.len(), 6);
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(1e-6), "1e-6");
        assert_eq!(
            [1.5e-4, 2.5e-4, 2.5e6].map(tick_label),
            ["1.5e-4", "2.5e-4", "2.5e6"]
        );
        // Two flat series one bit apart span no height of their own.
        let (lo, hi, _) = linear_ticks(0.9675023212627668, 0.967502321262767, false);
        assert!(lo < 0.5 && hi > 1.4, "{lo} {hi}");
        // Ticks finer than four decimals get the decimals they need.
        let (_, _, ticks) = linear_ticks(0.3332, 0.3334, false);
        let step = ticks[1] - ticks[0];
        let labels: Vec<String> = ticks.iter().map(|&t| axis_label(t, step)).collect();
        let mut distinct = labels.clone();
        distinct.dedup();
        assert_eq!(distinct, labels);
        assert_eq!(axis_label(0.33325, 5e-5), "0.33325");
    }

    /// The labels of the x axis's ticks (the `<text>` under each black tick mark).
    fn x_tick_labels(svg: &str) -> Vec<String> {
        svg.lines()
            .filter(|l| l.starts_with("<line x1=") && l.contains("stroke=\"black\""))
            .filter_map(|l| {
                let text = &l[l.find("<text")?..];
                Some(text[text.find('>')? + 1..text.find("</text>")?].to_string())
            })
            .collect()
    }

    #[test]
    fn whole_number_axes_tick_only_whole_numbers() {
        // Two epochs, three layers, one epoch, thirty: a step of at least 1 from a whole number.
        for (xs, want) in [
            (vec![1.0, 2.0], vec!["1", "2"]),
            (vec![1.0, 2.0, 3.0], vec!["1", "2", "3"]),
            (vec![1.0], vec!["0", "1", "2"]),
            (vec![1.0, 30.0], vec!["0", "10", "20", "30"]),
        ] {
            let c = LineChart {
                integer_x: true,
                series: vec![Series {
                    name: "relu".into(),
                    points: xs.iter().map(|&x| (x, 0.5)).collect(),
                }],
                ..chart(false)
            };
            assert_eq!(x_tick_labels(&c.svg()), want, "{xs:?}");
        }
        // A continuous axis over the same two points ticks between them.
        let c = LineChart {
            integer_x: false,
            series: vec![Series {
                name: "relu".into(),
                points: vec![(1.0, 0.5), (2.0, 0.6)],
            }],
            ..chart(false)
        };
        assert!(x_tick_labels(&c.svg()).contains(&"1.2".to_string()));
    }

    #[test]
    fn guides_are_drawn_labelled_and_in_range() {
        let c = LineChart {
            guides: vec![
                Guide {
                    label: "baseline (majority class)".into(),
                    y: 0.1,
                },
                Guide {
                    label: "target <0.9>".into(),
                    y: 0.9,
                },
                Guide {
                    label: "never".into(),
                    y: f64::NAN,
                },
            ],
            series: vec![Series {
                name: "relu".into(),
                points: vec![(1.0, 0.5), (2.0, 0.6)],
            }],
            ..chart(false)
        };
        let svg = c.svg();
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<line class=\"guide\"").count(), 2, "{svg}");
        assert!(
            svg.contains(">baseline (majority class)</text>")
                && svg.contains(">target &lt;0.9&gt;</text>")
        );
        assert!(!svg.contains(">never<"));
        // The y axis reaches both, though the series spans only 0.5 to 0.6.
        let labels: Vec<&str> = svg
            .lines()
            .filter(|l| l.contains("stroke=\"#dddddd\""))
            .filter_map(|l| l.split('>').nth(2)?.split('<').next())
            .collect();
        assert_eq!(labels.first().copied(), Some("0"), "{labels:?}");
        assert_eq!(labels.last().copied(), Some("1"), "{labels:?}");
        // Two guides at one height: the second label goes under the line, not over the first.
        let same = LineChart {
            guides: vec![
                Guide {
                    label: "a".into(),
                    y: 0.9,
                },
                Guide {
                    label: "b".into(),
                    y: 0.9,
                },
            ],
            ..c.clone()
        };
        let ys: Vec<f64> = same
            .svg()
            .lines()
            .filter(|l| l.starts_with("<line class=\"guide\""))
            .map(|l| {
                let t = &l[l.find("<text").unwrap()..];
                let y = &t[t.find(" y=\"").unwrap() + 4..];
                y[..y.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert!((ys[0] - ys[1]).abs() >= 14.0, "{ys:?}");
    }

    #[test]
    fn a_series_without_points_keeps_its_legend_entry() {
        let c = LineChart {
            series: vec![
                Series {
                    name: "relu".into(),
                    points: vec![(1.0, 0.5), (2.0, 0.6)],
                },
                Series {
                    name: "relu_squared (diverged)".into(),
                    points: Vec::new(),
                },
            ],
            ..chart(false)
        };
        let svg = c.svg();
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<path class=\"series\"").count(), 1);
        assert!(svg.contains(">relu_squared (diverged)</text>"), "{svg}");
    }

    #[test]
    fn a_long_legend_name_widens_the_chart() {
        let width = |names: &[&str]| -> f64 {
            let c = LineChart {
                series: names
                    .iter()
                    .map(|n| Series {
                        name: n.to_string(),
                        points: vec![(1.0, 0.5)],
                    })
                    .collect(),
                ..chart(false)
            };
            let svg = c.svg();
            assert_well_formed(&svg);
            let root = &svg[svg.find("<svg").unwrap()..];
            let w = &root[root.find(" width=\"").unwrap() + 8..];
            w[..w.find('"').unwrap()].parse().unwrap()
        };
        assert_eq!(width(&["relu", "gelu (diverged)"]), WIDTH);
        let name = "elu_learnable_channel (2/3 runs diverged)";
        let w = width(&["relu", name]);
        // The legend's text starts 44 px right of the plot (LEFT + 680) and needs about 7 px a character.
        assert!(w >= LEFT + 680.0 + 44.0 + 7.0 * name.len() as f64, "{w}");
    }
}
