//! The event timeline of one replacement as a hand-written SVG: a horizontal time axis, one bar per phase
//! (what took the time) and one labelled marker per event, so a reader sees where the seconds go. Pure: the
//! caller supplies the times and writes the file.

use std::fmt::Write as _;

use crate::svg::{escape, tick_step, trim_number};

/// Something that happened, `at` seconds after the timeline's zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub label: String,
    pub at: f64,
}

/// A phase from `from` to `to` seconds; `idle` phases (waits imposed by the bench, not by the product) are
/// drawn hatched grey.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub label: String,
    pub from: f64,
    pub to: f64,
    pub idle: bool,
}

const WIDTH: f64 = 980.0;
const LEFT: f64 = 30.0;
const RIGHT: f64 = 30.0;
const BAR: f64 = 22.0;
const GAP: f64 = 6.0;
const LINE: f64 = 17.0;
const COLOURS: [&str; 6] = ["#3b7dd8", "#d8833b", "#3bb36b", "#b33b9e", "#c9b11e", "#3bb3b3"];

/// One timeline on its own axis: a heading, stacked bars for `spans`, markers for `events`.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub heading: String,
    pub events: Vec<Event>,
    pub spans: Vec<Span>,
}

/// The SVG document: `title` and `subtitle` on top, then each panel below the other (e.g. the whole story, then
/// a zoom on its fast part).
pub fn timeline(title: &str, subtitle: &str, panels: &[Panel]) -> String {
    let mut body = String::new();
    let mut y = 48.0;
    for p in panels {
        y = panel(&mut body, y, p) + 12.0;
    }
    let height = y + 4.0;
    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, "<title>{}</title>", escape(title));
    s.push_str(concat!(
        r#"<defs><pattern id="idle" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">"#,
        r##"<rect width="6" height="6" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbbbbb" stroke-width="3"/>"##,
        "</pattern></defs>\n"
    ));
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(s, r#"<text x="{LEFT}" y="22" font-size="16" font-weight="bold">{}</text>"#, escape(title));
    let _ = writeln!(s, r##"<text x="{LEFT}" y="40" fill="#555555">{}</text>"##, escape(subtitle));
    s.push_str(&body);
    s.push_str("</svg>\n");
    s
}

/// Draws one panel starting at height `top`; returns the height where it ends.
fn panel(s: &mut String, top: f64, p: &Panel) -> f64 {
    let (events, spans) = (&p.events, &p.spans);
    let start = events.iter().map(|e| e.at).chain(spans.iter().map(|s| s.from)).fold(f64::INFINITY, f64::min);
    let start = if start.is_finite() { start } else { 0.0 };
    let end = events.iter().map(|e| e.at).chain(spans.iter().map(|s| s.to)).fold(start, f64::max);
    let step = tick_step((end - start).max(1e-3));
    let (start, end) = ((start / step).floor() * step, ((end / step).ceil() * step).max(start + step));
    let scale = (WIDTH - LEFT - RIGHT) / (end - start);
    let x = |t: f64| LEFT + (t - start).max(0.0) * scale;
    let _ = writeln!(s, r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text>"#, top + 14.0, escape(&p.heading));
    let bars = top + 24.0;
    let axis = bars + spans.len() as f64 * (BAR + GAP) + 14.0;

    for (i, span) in spans.iter().enumerate() {
        let y = bars + i as f64 * (BAR + GAP);
        let (x0, x1) = (x(span.from), x(span.to.max(span.from)));
        let fill = if span.idle { "url(#idle)".to_string() } else { COLOURS[i % COLOURS.len()].to_string() };
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{BAR}" fill="{fill}" stroke="#333333" stroke-width="0.5"/>"##,
            (x1 - x0).max(1.0)
        );
        let label = format!("{} ({})", span.label, duration(span.to - span.from));
        // Inside the bar when it fits (about 6.5 px a character), else beside it.
        let width = label.chars().count() as f64 * 6.5;
        let (tx, colour, anchor) = if (x1 - x0) > width + 8.0 {
            (x0 + 4.0, if span.idle { "#333333" } else { "#ffffff" }, "start")
        } else if x1 + 4.0 + width < WIDTH {
            (x1 + 4.0, "#333333", "start")
        } else {
            (x0 - 4.0, "#333333", "end")
        };
        let _ = writeln!(
            s,
            r#"<text x="{tx:.1}" y="{:.1}" fill="{colour}" text-anchor="{anchor}">{}</text>"#,
            y + BAR / 2.0 + 4.0,
            escape(&label)
        );
    }

    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{axis:.1}" x2="{:.1}" y2="{axis:.1}" stroke="#000000" stroke-width="1.2"/>"##,
        x(end)
    );
    let ticks = ((end - start) / step).round() as usize;
    for k in 0..=ticks {
        let t = start + k as f64 * step;
        let tx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{tx:.1}" y1="{axis:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#000000"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#333333">{} s</text>"##,
            axis + 5.0,
            axis + 17.0,
            trim_number(t)
        );
    }

    for (i, e) in events.iter().enumerate() {
        let ex = x(e.at);
        let ly = axis + 34.0 + i as f64 * LINE;
        let _ = writeln!(
            s,
            r##"<line x1="{ex:.1}" y1="{bars:.1}" x2="{ex:.1}" y2="{:.1}" stroke="#cc0000" stroke-width="0.8" stroke-dasharray="3,3"/>"##,
            ly - 4.0
        );
        let _ = writeln!(s, r##"<circle cx="{ex:.1}" cy="{axis:.1}" r="3.5" fill="#cc0000"/>"##);
        let label = format!("{:.3} s  {}", e.at, e.label);
        let right = ex + 6.0 + label.chars().count() as f64 * 6.5 > WIDTH;
        let (tx, anchor) = if right { (ex - 6.0, "end") } else { (ex + 6.0, "start") };
        let _ = writeln!(s, r#"<text x="{tx:.1}" y="{ly:.1}" text-anchor="{anchor}">{}</text>"#, escape(&label));
    }
    axis + 34.0 + events.len() as f64 * LINE
}

/// A duration for a bar label: milliseconds below a second.
fn duration(secs: f64) -> String {
    if secs < 1.0 { format!("{:.0} ms", secs * 1000.0) } else { format!("{secs:.2} s") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svg::well_formed;

    fn sample() -> String {
        let events: Vec<Event> = [
            ("spot notice (IMDS)", 0.0),
            ("member removed", 2.71),
            ("replacement launched", 9.0),
            ("discover done: added as learner", 9.4),
            ("etcd healthy", 10.2),
            ("promoted to voter <&> \"quoted\"", 12.9),
        ]
        .iter()
        .map(|(l, t)| Event { label: l.to_string(), at: *t })
        .collect();
        let spans = vec![
            Span { label: "terminate --watch".into(), from: 0.0, to: 2.71, idle: false },
            Span { label: "bench wait".into(), from: 2.71, to: 9.0, idle: true },
            Span { label: "discover".into(), from: 9.0, to: 9.4, idle: false },
        ];
        let zoom = Panel { heading: "zoom".into(), events: events[2..].to_vec(), spans: spans[2..].to_vec() };
        timeline("One replacement", "etcd 3.4 & loopback", &[Panel { heading: "all".into(), events, spans }, zoom])
    }

    #[test]
    fn the_timeline_is_well_formed_svg_with_every_event_and_phase() {
        let svg = sample();
        let names = well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        assert_eq!(names.iter().filter(|n| *n == "circle").count(), 6 + 4, "one marker per event and panel");
        for label in ["spot notice (IMDS)", "member removed", "discover done: added as learner", "etcd healthy"] {
            assert!(svg.contains(label), "{label} missing:\n{svg}");
        }
        assert!(svg.contains("promoted to voter &lt;&amp;&gt; &quot;quoted&quot;"), "{svg}");
        assert!(svg.contains("terminate --watch (2.71 s)") && svg.contains("discover (400 ms)"), "{svg}");
        assert!(svg.contains("url(#idle)") && svg.contains(">12.900 s  promoted"), "{svg}");
    }
}
