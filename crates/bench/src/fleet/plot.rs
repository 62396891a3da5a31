//! FLEET.md's plot: one panel per mode, each instance's connections over time (the
//! most it held at once in every quarter second, from its oracle), the fleet's total
//! against the fleet budget, and the schedule's events marked.

use std::fmt::Write as _;

use super::figures::Series;

/// A vertical marker: a phase's start.
#[derive(Debug, Clone)]
pub struct Event {
    pub t: f64,
    pub label: String,
    pub colour: &'static str,
}

/// One panel.
#[derive(Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub series: &'a Series,
    pub events: Vec<Event>,
}

const COLOURS: [&str; 7] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 110.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 36.0;
/// Points are the maxima of this many 100 ms buckets.
const STRIDE: usize = 3;

/// One line of a panel: `(bucket index, connections)` points.
struct Line<'a> {
    label: &'a str,
    colour: &'a str,
    width: f64,
    points: Vec<(usize, i64)>,
}

fn downsample(v: &[Option<i64>]) -> Vec<(usize, i64)> {
    v.chunks(STRIDE)
        .enumerate()
        .filter_map(|(i, c)| c.iter().flatten().max().map(|m| (i * STRIDE, *m)))
        .collect()
}

/// The SVG: the panels stacked, `budget` drawn as a line in each.
pub fn svg(panels: &[Panel<'_>], budget: u32) -> String {
    let mut s = String::new();
    let total_h = HEIGHT * panels.len() as f64;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total_h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>"#
    );
    for (k, panel) in panels.iter().enumerate() {
        draw(&mut s, panel, budget, HEIGHT * k as f64);
    }
    s.push_str("</svg>\n");
    s
}

fn draw(s: &mut String, panel: &Panel<'_>, budget: u32, y0: f64) {
    let series = panel.series;
    let tmax = series.t.last().copied().unwrap_or(1.0).max(1.0);
    let ymax =
        f64::from(budget + 6).max(series.total.iter().copied().max().unwrap_or(0) as f64 + 2.0);
    let px = |t: f64| LEFT + t / tmax * (WIDTH - LEFT - RIGHT);
    let py = |y: f64| y0 + HEIGHT - BOTTOM - y / ymax * (HEIGHT - BOTTOM - TOP);
    let (bottom, top) = (py(0.0), py(ymax));
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{}</text>
<line x1="{LEFT}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="black"/>
<line x1="{LEFT}" y1="{top:.1}" x2="{LEFT}" y2="{bottom:.1}" stroke="black"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds</text>
<text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">connections</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        y0 + 18.0,
        panel.title,
        WIDTH - RIGHT,
        (LEFT + WIDTH - RIGHT) / 2.0,
        bottom + 28.0,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0,
    );
    let step = if ymax > 20.0 { 10.0 } else { 2.0 };
    let mut y = 0.0;
    while y <= ymax {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#eee"/><text x="{2}" y="{3:.1}" text-anchor="end">{y}</text>"##,
            py(y),
            WIDTH - RIGHT,
            LEFT - 4.0,
            py(y) + 4.0
        );
        y += step;
    }
    let tstep = if tmax > 30.0 { 10.0 } else { 2.0 };
    let mut t = 0.0;
    while t <= tmax {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#,
            px(t),
            bottom + 14.0
        );
        t += tstep;
    }
    for (i, e) in panel.events.iter().enumerate() {
        let x = px(e.t);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="{}" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="{}">{}</text>"#,
            e.colour,
            x + 3.0,
            top + 10.0 + 11.0 * (i % 3) as f64,
            e.colour,
            e.label
        );
    }
    let b = py(f64::from(budget));
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{b:.1}" x2="{:.1}" y2="{b:.1}" stroke="#d62728" stroke-width="1.5"/><text x="{:.1}" y="{:.1}" fill="#d62728">fleet budget {budget}</text>"##,
        WIDTH - RIGHT,
        LEFT + 4.0,
        b - 4.0
    );
    let total: Vec<Option<i64>> = series.total.iter().map(|v| Some(*v)).collect();
    let mut lines: Vec<Line<'_>> = series
        .per_process
        .iter()
        .enumerate()
        .map(|(i, (label, v))| Line {
            label,
            colour: COLOURS[i % COLOURS.len()],
            width: 1.5,
            points: downsample(v),
        })
        .collect();
    lines.push(Line {
        label: "fleet total",
        colour: "black",
        width: 2.5,
        points: downsample(&total),
    });
    for (k, line) in lines.iter().enumerate() {
        let Line {
            label,
            colour,
            width,
            points,
        } = line;
        // Break the line where the process did not run.
        let mut segments: Vec<Vec<String>> = Vec::new();
        let mut last = None;
        for (i, v) in points {
            if last.is_none_or(|l| i - l > STRIDE) {
                segments.push(Vec::new());
            }
            if let Some(seg) = segments.last_mut() {
                seg.push(format!("{:.1},{:.1}", px(series.t[*i]), py(*v as f64)));
            }
            last = Some(*i);
        }
        for seg in segments {
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="{width}" points="{}"/>"#,
                seg.join(" ")
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{label}</text>"#,
            WIDTH - RIGHT + 4.0,
            top + 10.0 + 13.0 * k as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_did_not_run_leaves_a_gap_in_its_line() {
        let series = Series {
            t: (0..12).map(|i| f64::from(i) * 0.1).collect(),
            per_process: vec![(
                "B".into(),
                vec![
                    Some(1),
                    Some(2),
                    Some(3),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(4),
                    Some(4),
                    Some(4),
                ],
            )],
            total: vec![1; 12],
        };
        let out = svg(
            &[Panel {
                title: "t".into(),
                series: &series,
                events: vec![],
            }],
            8,
        );
        let lines = out.matches("<polyline").count();
        assert_eq!(
            lines, 3,
            "B before and after its gap, and the total:\n{out}"
        );
    }
}
