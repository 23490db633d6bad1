//! The two panels under the instance lanes of a timeline's picture: the quorum margin as a step line (0
//! drawn, below it red and filled, hatched where unknown) and the writes per second (acknowledged as green bars
//! up, failed as red bars down, in buckets of a few seconds on long runs). Pure: they append SVG elements.

use std::fmt::Write as _;

use super::svg::{Axis, LEFT, PLOT, clock};
use crate::svg::{escape, tick_step, trim_number};

const MARGIN_BODY: f64 = 64.0;
const ACKED_BODY: f64 = 60.0;
const FAILED_BODY: f64 = 26.0;

/// A panel's heading, left of the plot and above it.
fn heading(s: &mut String, y: f64, text: &str) {
    let _ = writeln!(s, r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text>"#, y + 12.0, escape(text));
}

/// The quorum margin as a step line: green above 0, amber at 0, red (and filled) below, hatched where unknown.
pub(super) fn margin_panel(s: &mut String, top: f64, axis: &Axis, margins: &[(f64, Option<i64>)], end: f64) -> f64 {
    heading(s, top, "quorum margin: started voters with etcd running, minus the quorum (below 0: no quorum)");
    let body = top + 20.0;
    let known = margins.iter().filter_map(|(_, m)| *m);
    let lo = known.clone().min().unwrap_or(0).min(-1);
    let hi = known.max().unwrap_or(0).max(2);
    let y = |v: i64| body + (hi - v) as f64 / (hi - lo) as f64 * MARGIN_BODY;
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{body:.1}" width="{PLOT:.1}" height="{MARGIN_BODY}" fill="#fcfcfc" stroke="#dddddd" stroke-width="0.5"/>"##
    );
    let every = if hi - lo <= 6 { 1 } else { (hi - lo) / 4 };
    for v in (lo..=hi).filter(|v| *v == 0 || *v == lo || *v == hi || v % every == 0) {
        let (stroke, w) = if v == 0 { ("#333333", 1.0) } else { ("#e0e0e0", 0.6) };
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="{stroke}" stroke-width="{w}"/><text x="{2:.1}" y="{3:.1}" text-anchor="end" fill="{4}">{v}</text>"#,
            y(v),
            LEFT + PLOT,
            LEFT - 6.0,
            y(v) + 4.0,
            if v < 0 { "#d62728" } else { "#333333" }
        );
    }
    let mut last: Option<(f64, i64)> = None;
    for (k, (from, m)) in margins.iter().enumerate() {
        let to = margins.get(k + 1).map_or(end, |(t, _)| *t);
        let (x0, x1) = (axis.x(*from), axis.x(to));
        let Some(v) = *m else {
            let _ = writeln!(
                s,
                r#"<g><title>{} – {}: no member list (margin unknown)</title><rect x="{x0:.1}" y="{body:.1}" width="{:.1}" height="{MARGIN_BODY}" fill="url(#unknown)"/></g>"#,
                clock(*from),
                clock(to),
                (x1 - x0).max(0.6)
            );
            last = None;
            continue;
        };
        let colour = match v {
            ..0 => "#d62728",
            0 => "#d68910",
            _ => "#1e8449",
        };
        if v < 0 {
            let _ = writeln!(
                s,
                r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#d62728" fill-opacity="0.3"/>"##,
                y(0),
                (x1 - x0).max(0.6),
                y(v) - y(0)
            );
        }
        if let Some((lx, lv)) = last {
            let _ = writeln!(
                s,
                r##"<line x1="{lx:.1}" y1="{:.1}" x2="{lx:.1}" y2="{:.1}" stroke="#999999"/>"##,
                y(lv),
                y(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<g><title>{} – {}: margin {v}</title><line x1="{x0:.1}" y1="{2:.1}" x2="{x1:.1}" y2="{2:.1}" stroke="{colour}" stroke-width="2.5"/></g>"#,
            clock(*from),
            clock(to),
            y(v)
        );
        last = Some((x1, v));
    }
    body + MARGIN_BODY + 4.0
}

/// Writes per second in buckets of a few seconds: acknowledged as green bars up, failed as red bars down.
pub(super) fn writes_panel(s: &mut String, top: f64, axis: &Axis, per_sec: &[[u32; 2]], end: f64) -> f64 {
    let span = end - axis.start;
    let bucket = [1usize, 2, 5, 10, 15, 30, 60].into_iter().find(|b| span / *b as f64 <= PLOT / 3.0).unwrap_or(120);
    let buckets: Vec<[f64; 2]> = per_sec
        .chunks(bucket)
        .map(|c| c.iter().fold([0.0, 0.0], |[a, f], [ok, bad]| [a + f64::from(*ok), f + f64::from(*bad)]))
        .map(|[a, f]| [a / bucket as f64, f / bucket as f64])
        .collect();
    let (acked, failed) =
        per_sec.iter().fold((0u64, 0u64), |(a, f), [ok, bad]| (a + u64::from(*ok), f + u64::from(*bad)));
    let per = if bucket == 1 { "per second".to_string() } else { format!("per second, averaged over {bucket} s") };
    heading(
        s,
        top,
        &format!("writes {per}: acknowledged up (green, {acked} in all), failed down (red, {failed} in all)"),
    );
    let base = top + 20.0 + ACKED_BODY;
    let max_a = buckets.iter().map(|b| b[0]).fold(0.0, f64::max);
    let max_f = buckets.iter().map(|b| b[1]).fold(0.0, f64::max);
    let round_up = |v: f64| {
        if v <= 0.0 {
            1.0
        } else {
            let st = tick_step(v) / 2.0;
            (v / st).ceil() * st
        }
    };
    let (top_a, top_f) = (round_up(max_a), round_up(max_f));
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{:.1}" width="{PLOT:.1}" height="{:.1}" fill="#fcfcfc" stroke="#dddddd" stroke-width="0.5"/><line x1="{LEFT}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}" stroke="#333333"/>"##,
        top + 20.0,
        ACKED_BODY + FAILED_BODY,
        LEFT + PLOT
    );
    let _ = writeln!(
        s,
        r##"<text x="{0:.1}" y="{1:.1}" text-anchor="end" fill="#1e8449">{2}/s</text><text x="{0:.1}" y="{3:.1}" text-anchor="end">0</text><text x="{0:.1}" y="{4:.1}" text-anchor="end" fill="#d62728">{5}/s</text>"##,
        LEFT - 6.0,
        top + 28.0,
        trim_number(top_a),
        base + 4.0,
        base + FAILED_BODY,
        trim_number(top_f)
    );
    for (k, [a, f]) in buckets.iter().enumerate() {
        let from = (k * bucket) as f64;
        if (*a == 0.0 && *f == 0.0) || from + bucket as f64 <= axis.start {
            continue;
        }
        let x = axis.x(from);
        let width = (axis.x(from + bucket as f64) - x).max(0.6);
        let ha = a / top_a * ACKED_BODY;
        let hf = f / top_f * FAILED_BODY;
        let _ = write!(
            s,
            r##"<g><title>{} – {}: {} acknowledged, {} failed per second</title><rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="{ha:.1}" fill="#4caf50"/>"##,
            clock(from),
            clock(from + bucket as f64),
            trim_number(*a),
            trim_number(*f),
            base - ha
        );
        if *f > 0.0 {
            let _ =
                write!(s, r##"<rect x="{x:.1}" y="{base:.1}" width="{width:.1}" height="{hf:.1}" fill="#d62728"/>"##);
        }
        s.push_str("</g>\n");
    }
    base + FAILED_BODY + 4.0
}
