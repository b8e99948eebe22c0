//! Inline SVG charts, hand-written: a line chart (linear or log axes) and a grouped bar chart.
//! A plotting crate would add a build dependency for two chart types; these produce small,
//! deterministic, self-contained markup that needs no fonts or network.

use std::fmt::Write;

/// How an axis maps values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// log10(1 + v) for v ≥ 0, ticks at 0, 1, 10, 100, ...
    Log1p,
    /// log10(v) for v > 0, ticks at powers of ten.
    Log,
}

impl Scale {
    fn map(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log1p => (1.0 + v.max(0.0)).log10(),
            Scale::Log => v.max(1e-300).log10(),
        }
    }
}

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: String,
    /// Points in data units.
    pub points: Vec<(f64, f64)>,
    /// Draw as a step function (CDFs).
    pub step: bool,
}

const W: f64 = 460.0;
const H: f64 = 300.0;
const L: f64 = 62.0;
const R: f64 = 12.0;
const T: f64 = 30.0;
const B: f64 = 46.0;

/// XML-escapes text.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A compact tick label.
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

fn ticks(scale: Scale, lo: f64, hi: f64) -> Vec<(f64, String)> {
    match scale {
        Scale::Linear => {
            let span = (hi - lo).max(1e-300);
            let raw = span / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| span / s <= 6.0)
                .unwrap_or(10.0 * mag);
            let mut v = (lo / step).ceil() * step;
            let mut out = Vec::new();
            while v <= hi + step * 1e-9 && out.len() < 12 {
                out.push((v, fmt_num(v)));
                v += step;
            }
            out
        }
        Scale::Log1p | Scale::Log => {
            let mut out = Vec::new();
            if scale == Scale::Log1p && lo <= 0.0 {
                out.push((0.0, "0".to_string()));
            }
            let mut e = lo.floor() as i32;
            while (e as f64) <= hi && out.len() < 14 {
                if e as f64 >= lo {
                    let v = 10f64.powi(e);
                    let pos = if scale == Scale::Log1p {
                        (1.0 + v).log10()
                    } else {
                        e as f64
                    };
                    out.push((pos, fmt_num(v)));
                }
                e += 1;
            }
            if out.len() < 2 {
                // The range lies within one decade: label round values instead.
                let inv = |p: f64| match scale {
                    Scale::Log1p => 10f64.powf(p) - 1.0,
                    _ => 10f64.powf(p),
                };
                out = ticks(Scale::Linear, inv(lo), inv(hi))
                    .into_iter()
                    .filter(|(v, _)| *v > 0.0 || scale == Scale::Log1p)
                    .map(|(v, label)| (scale.map(v), label))
                    .collect();
            }
            out
        }
    }
}

/// A line chart with axes, ticks, labels and a legend.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: Scale,
    ys: Scale,
    series: &[Series],
) -> String {
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts() {
        let (x, y) = (xs.map(x), ys.map(y));
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    if !x0.is_finite() {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no data</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
        return s;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let px = |x: f64| L + (xs.map(x) - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - (ys.map(y) - y0) / (y1 - y0) * (H - T - B);
    let _ = write!(
        s,
        r##"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        W - L - R,
        H - T - B
    );
    for (v, label) in ticks(xs, x0, x1) {
        let x = L + (v - x0) / (x1 - x0) * (W - L - R);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{T}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            H - B,
            H - B + 14.0,
            esc(&label)
        );
    }
    for (v, label) in ticks(ys, y0, y1) {
        let y = H - B - (v - y0) / (y1 - y0) * (H - T - B);
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 4.0,
            y + 4.0,
            esc(&label)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        L + (W - L - R) / 2.0,
        H - 10.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        T + (H - T - B) / 2.0,
        T + (H - T - B) / 2.0,
        esc(y_label)
    );
    for (k, se) in series.iter().enumerate() {
        let mut d = String::new();
        let mut prev: Option<(f64, f64)> = None;
        for &(x, y) in se
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
        {
            let (sx, sy) = (px(x), py(y));
            match prev {
                None => {
                    let _ = write!(d, "M{sx:.1},{sy:.1}");
                }
                Some((_, py_prev)) if se.step => {
                    let _ = write!(d, "L{sx:.1},{py_prev:.1}L{sx:.1},{sy:.1}");
                }
                Some(_) => {
                    let _ = write!(d, "L{sx:.1},{sy:.1}");
                }
            }
            prev = Some((sx, sy));
        }
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6"/>"#,
            esc(&se.color)
        );
        let ly = T + 12.0 + 14.0 * k as f64;
        let _ = write!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            W - R - 120.0,
            W - R - 104.0,
            esc(&se.color),
            W - R - 100.0,
            ly + 4.0,
            esc(&se.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// A grouped bar chart: one group per category, one bar per series.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, String, Vec<f64>)],
) -> String {
    let ymax = series
        .iter()
        .flat_map(|s| s.2.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let _ = write!(
        s,
        r##"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        W - L - R,
        H - T - B
    );
    for (v, label) in ticks(Scale::Linear, 0.0, ymax) {
        let y = H - B - v / ymax * (H - T - B);
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 4.0,
            y + 4.0,
            esc(&label)
        );
    }
    let _ = write!(
        s,
        r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        T + (H - T - B) / 2.0,
        T + (H - T - B) / 2.0,
        esc(y_label)
    );
    let n = categories.len().max(1) as f64;
    let gw = (W - L - R) / n;
    let bw = gw * 0.8 / series.len().max(1) as f64;
    for (c, cat) in categories.iter().enumerate() {
        let gx = L + gw * c as f64 + gw * 0.1;
        for (k, (_, color, vals)) in series.iter().enumerate() {
            let v = vals
                .get(c)
                .copied()
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
            let h = v / ymax * (H - T - B);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                gx + bw * k as f64,
                H - B - h,
                bw,
                esc(color),
                esc(cat),
                fmt_num(v)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + gw * 0.4,
            H - B + 14.0,
            esc(cat)
        );
    }
    for (k, (name, color, _)) in series.iter().enumerate() {
        let ly = T + 12.0 + 14.0 * k as f64;
        let _ = write!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="8" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            W - R - 120.0,
            ly - 4.0,
            esc(color),
            W - R - 104.0,
            ly + 4.0,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axes_get_decade_ticks_or_round_values_within_one_decade() {
        let t = ticks(Scale::Log1p, 0.0, 2.5);
        let labels: Vec<&str> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(labels, ["0", "1", "10", "100"]);
        // 150..300 lies inside one decade.
        let t = ticks(
            Scale::Log1p,
            Scale::Log1p.map(150.0),
            Scale::Log1p.map(300.0),
        );
        assert!(t.len() >= 2, "{t:?}");
        assert!(t.iter().all(|(p, _)| *p >= Scale::Log1p.map(150.0) - 1e-9));
    }
}
