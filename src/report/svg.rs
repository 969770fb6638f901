//! Charts as inline SVG, drawn by hand: a few bar and line shapes with axes need no plotting
//! crate (see README, "wxcc report"), and the output stays small, deterministic and free of
//! fonts or scripts. Every series is a `<g class="series" data-series="...">`, every mark
//! carries a `<title>` tooltip with its exact value.

use std::fmt::Write;

use super::charts::Kind;

/// Colour-blind-safe palette (Okabe-Ito), in series order.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round upper bound for an axis: 1, 2 or 5 times a power of ten.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * mag)
}

fn tick(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

fn value_text(v: f64) -> String {
    if v.fract() == 0.0 {
        tick(v)
    } else {
        format!("{v:.3}")
    }
}

/// Draws `series` over `cats`; empty when there is nothing to draw.
pub fn chart(id: &str, kind: Kind, cats: &[String], series: &[(String, Vec<f64>)]) -> String {
    if cats.is_empty() || series.is_empty() {
        return String::new();
    }
    match kind {
        Kind::Horizontal => horizontal(id, cats, series),
        Kind::Tiles => String::new(),
        _ => vertical(id, kind, cats, series),
    }
}

fn vertical(id: &str, kind: Kind, cats: &[String], series: &[(String, Vec<f64>)]) -> String {
    let n = cats.len();
    let max = match kind {
        Kind::Stacked => (0..n)
            .map(|i| series.iter().map(|s| s.1[i]).sum::<f64>())
            .fold(0.0, f64::max),
        _ => series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(0.0, f64::max),
    };
    let top = nice_max(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let band = plot_w / n as f64;
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    let mut s = open(id, WIDTH, HEIGHT);
    // Grid and y ticks.
    for k in 0..=4 {
        let v = top * k as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            tick(v)
        );
    }
    // X labels, thinned to about a dozen.
    let every = n.div_ceil(12).max(1);
    for (i, c) in cats.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            LEFT + band * (i as f64 + 0.5),
            HEIGHT - BOTTOM + 16.0,
            escape(&short(c))
        );
    }
    let mut base = vec![0.0; n];
    for (si, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let _ = write!(
            s,
            r#"<g class="series" data-series="{}" fill="{color}" stroke="{color}">"#,
            escape(name)
        );
        match kind {
            Kind::Lines => {
                let points: Vec<(f64, f64)> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (LEFT + band * (i as f64 + 0.5), y(*v)))
                    .collect();
                let d: Vec<String> = points
                    .iter()
                    .enumerate()
                    .map(|(i, (x, yy))| format!("{}{x:.1},{yy:.1}", if i == 0 { "M" } else { "L" }))
                    .collect();
                // Dashed every other line, so equal series stay visible on top of each other.
                let dash = if si % 2 == 1 {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                };
                let _ = write!(
                    s,
                    r#"<path d="{}" fill="none" stroke-width="2"{dash}/>"#,
                    d.join(" ")
                );
                for (i, (x, yy)) in points.iter().enumerate() {
                    let _ = write!(
                        s,
                        r#"<circle cx="{x:.1}" cy="{yy:.1}" r="3"><title>{}: {} = {}</title></circle>"#,
                        escape(&cats[i]),
                        escape(name),
                        value_text(values[i])
                    );
                }
            }
            _ => {
                let inner = band * 0.8;
                for (i, v) in values.iter().enumerate() {
                    let (x, w, y0) = if kind == Kind::Stacked {
                        (LEFT + band * i as f64 + band * 0.1, inner, base[i])
                    } else {
                        let w = inner / series.len() as f64;
                        (LEFT + band * i as f64 + band * 0.1 + w * si as f64, w, 0.0)
                    };
                    let (y1, y2) = (y(y0 + v), y(y0));
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" stroke="none"><title>{}: {} = {}</title></rect>"#,
                        (w - 0.5).max(0.5),
                        (y2 - y1).max(0.0),
                        escape(&cats[i]),
                        escape(name),
                        value_text(*v)
                    );
                    if kind == Kind::Stacked {
                        base[i] += v;
                    }
                }
            }
        }
        s.push_str("</g>");
    }
    axis(&mut s, TOP + plot_h);
    s.push_str("</svg>");
    s
}

fn horizontal(id: &str, cats: &[String], series: &[(String, Vec<f64>)]) -> String {
    let label_w = 180.0;
    let bar_h = 12.0;
    let row_h = bar_h * series.len() as f64 + 8.0;
    let height = TOP + row_h * cats.len() as f64 + 24.0;
    let plot_w = WIDTH - label_w - RIGHT - 50.0;
    let max = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .fold(0.0, f64::max);
    let top = nice_max(max);
    let mut s = open(id, WIDTH, height);
    for (i, c) in cats.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
            label_w - 8.0,
            TOP + row_h * i as f64 + row_h / 2.0 + 2.0,
            escape(&truncate(c, 28))
        );
    }
    for (si, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let _ = write!(
            s,
            r#"<g class="series" data-series="{}" fill="{color}">"#,
            escape(name)
        );
        for (i, v) in values.iter().enumerate() {
            let yy = TOP + row_h * i as f64 + 4.0 + bar_h * si as f64;
            let w = v / top * plot_w;
            let _ = write!(
                s,
                r#"<rect x="{label_w}" y="{yy:.1}" width="{w:.1}" height="{:.1}"><title>{}: {} = {}</title></rect><text x="{:.1}" y="{:.1}" class="value">{}</text>"#,
                bar_h - 1.0,
                escape(&cats[i]),
                escape(name),
                value_text(*v),
                label_w + w + 4.0,
                yy + bar_h - 2.0,
                value_text(*v)
            );
        }
        s.push_str("</g>");
    }
    let _ = write!(
        s,
        r##"<line x1="{label_w}" x2="{label_w}" y1="{TOP}" y2="{:.1}" stroke="#444"/>"##,
        height - 24.0
    );
    s.push_str("</svg>");
    s
}

fn open(id: &str, w: f64, h: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{}" viewBox="0 0 {w} {h:.0}" width="{w}" height="{h:.0}" role="img">"#,
        escape(id)
    )
}

fn axis(s: &mut String, y: f64) {
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#444"/>"##,
        WIDTH - RIGHT
    );
}

/// Dates lose their year and timestamps their seconds on the axis (tooltips keep them whole).
fn short(label: &str) -> String {
    let b = label.as_bytes();
    if b.len() >= 16 && b.get(10).is_some_and(|c| *c == b'T' || *c == b' ') {
        format!("{} {}", &label[5..10], &label[11..16])
    } else if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        label[5..].to_owned()
    } else {
        truncate(label, 14)
    }
}

fn truncate(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_owned()
    } else {
        let mut t: String = label.chars().take(max - 1).collect();
        t.push('\u{2026}');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(130.0), 200.0);
        assert_eq!(nice_max(0.42), 0.5);
        assert_eq!(tick(37.5), "37.5");
        assert_eq!(tick(0.25), "0.25");
    }

    #[test]
    fn every_series_is_a_named_group_with_one_mark_per_category() {
        let cats = vec!["2026-01-05".to_owned(), "2026-01-06".to_owned()];
        let series = vec![
            ("telephony".to_owned(), vec![3.0, 4.0]),
            ("<chat>".to_owned(), vec![1.0, 0.0]),
        ];
        for kind in [Kind::Stacked, Kind::Grouped, Kind::Lines, Kind::Horizontal] {
            let svg = chart("c", kind, &cats, &series);
            assert!(
                svg.starts_with("<svg") && svg.ends_with("</svg>"),
                "{kind:?}"
            );
            assert!(svg.contains(r#"data-series="telephony""#), "{kind:?}");
            assert!(svg.contains(r#"data-series="&lt;chat&gt;""#), "{kind:?}");
            assert_eq!(svg.matches("<title>").count(), 4, "{kind:?}");
        }
        assert_eq!(chart("c", Kind::Stacked, &[], &series), "");
    }
}
