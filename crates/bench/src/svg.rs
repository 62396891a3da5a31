//! A small line chart, drawn by hand (no plotting crate).

use std::fmt::Write;

/// One series of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// How the x axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// For concurrency (1 … 2000).
    Log,
    /// For time.
    Linear,
}

/// A line chart with a linear y axis from 0.
pub fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
    scale: Scale,
) -> String {
    let tx = |x: f64| {
        if scale == Scale::Log {
            x.max(1.0).ln()
        } else {
            x
        }
    };
    let (w, h, left, bottom, top, right) = (640.0, 360.0, 70.0, 50.0, 40.0, 20.0);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let lowest = if scale == Scale::Log { 1.0 } else { 0.0 };
    let (xmin, xmax) = (
        tx(xs.iter().cloned().fold(f64::INFINITY, f64::min).max(lowest)),
        tx(xs.iter().cloned().fold(1.0, f64::max)),
    );
    let ymax = ys.iter().cloned().fold(0.0, f64::max).max(1e-9) * 1.1;
    let px =
        |x: f64| left + (x.max(1.0).ln() - xmin) / (xmax - xmin).max(1e-9) * (w - left - right);
    let py = |y: f64| h - bottom - y / ymax * (h - bottom - top);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{title}</text>
<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{x_label}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{y_label}</text>
"#,
        w / 2.0,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom,
        (left + w - right) / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0
    );
    for i in 0..=4 {
        let y = ymax / 1.1 * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            py(y),
            w - right,
            left - 6.0,
            py(y) + 4.0,
            fmt_num(y)
        );
    }
    if let Some(first) = series.first().filter(|_| scale == Scale::Log) {
        for (x, _) in &first.points {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                px(*x),
                h - bottom + 16.0,
                x
            );
        }
    }
    if scale == Scale::Linear {
        for i in 0..=5 {
            let x = xmin + (xmax - xmin) * f64::from(i) / 5.0;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}</text>"#,
                px(x),
                h - bottom + 16.0,
                x
            );
        }
    }
    for (i, ser) in series.iter().enumerate() {
        let pts: Vec<String> = ser
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            ser.colour,
            pts.join(" ")
        );
        for p in &ser.points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                px(p.0),
                py(p.1),
                ser.colour
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{}">{}</text>"#,
            left + 12.0,
            top + 14.0 + 16.0 * i as f64,
            ser.colour,
            ser.name
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_num(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}
