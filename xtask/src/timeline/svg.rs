//! The picture of a [`Timeline`]: a title, a legend, then on one time axis an events lane (steps, scaling,
//! violations, fault windows and partitions as bars), one lane per instance in launch order (a bar coloured by
//! its role, markers for the events that touched it, span shading), then the quorum margin and the writes per
//! second (drawn by [`super::panels`]). Every bar and marker carries its details in a `<title>` tooltip, so a
//! run of 40 minutes with hundreds of events stays legible; text labels are drawn only where they fit. Pure: it
//! returns the document.

use std::fmt::Write as _;

use super::panels::{margin_panel, writes_panel};
use super::{Kind, Lane, Mark, Role, Timeline};
use crate::svg::{escape, trim_number};

const WIDTH: f64 = 1280.0;
pub(super) const LEFT: f64 = 130.0;
const RIGHT: f64 = 24.0;
pub(super) const PLOT: f64 = WIDTH - LEFT - RIGHT;
/// Height of an instance's lane (when there are few) and of a bar.
const LANE: f64 = 20.0;
const BAR: f64 = 12.0;
/// Up to this many lanes get the full height; beyond, lanes shrink to fit about as much, down to [`MIN_LANE`].
const FULL_LANES: usize = 24;
const MIN_LANE: f64 = 11.0;
/// Height of a row of span bars in the events lane.
const SPAN_ROW: f64 = 13.0;
const MAX_SPAN_ROWS: usize = 4;
/// About how wide a character of the 11 px font is.
const CHAR: f64 = 6.2;

/// Seconds → x on the plot, over an axis from `start` to `end` with ticks every `step`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Axis {
    pub start: f64,
    pub end: f64,
    step: f64,
}

impl Axis {
    /// An axis from the tick at or before `first` (the first thing recorded: the time a run spent building
    /// before its story began is left out) to `end`.
    fn new(first: f64, end: f64) -> Axis {
        let first = first.clamp(0.0, end);
        let span = (end - first).max(1.0);
        let step = [0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0]
            .into_iter()
            .find(|s| span / s <= 12.0)
            .unwrap_or(7200.0);
        let start = (first / step).floor() * step;
        Axis { start, end: end.max(start + 1.0), step }
    }

    /// The ticks: every multiple of the step from the start to the end.
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let (from, to) = ((self.start / self.step).round() as usize, (self.end / self.step + 1e-9).floor() as usize);
        (from..=to).map(|k| k as f64 * self.step)
    }

    pub(super) fn x(&self, t: f64) -> f64 {
        LEFT + (t.clamp(self.start, self.end) - self.start) / (self.end - self.start) * PLOT
    }

    fn label(&self, t: f64) -> String {
        if t == 0.0 {
            "0".into()
        } else if self.step >= 60.0 {
            format!("{} min", trim_number(t / 60.0))
        } else {
            format!("{} s", trim_number(t))
        }
    }
}

/// The whole document.
pub(super) fn render(t: &Timeline, title: &str, subtitle: &str) -> String {
    let axis = Axis::new(first(t), t.end);
    let lanes = t.lanes_in_order();
    let mut body = String::new();
    let mut y = legend(&mut body, 58.0);
    let top = y;
    y = events_lane(&mut body, y, &axis, &t.marks);
    y = instance_lanes(&mut body, y, &axis, &lanes, &t.marks, t.end);
    y = time_axis(&mut body, y, &axis);
    y = margin_panel(&mut body, y + 6.0, &axis, &t.margins, t.end);
    y = writes_panel(&mut body, y + 6.0, &axis, &t.writes.per_second(), t.end);
    let bottom = y;
    y = time_axis(&mut body, y, &axis) + 8.0;

    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{y:.0}" viewBox="0 0 {WIDTH:.0} {y:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, "<title>{}</title>", escape(title));
    s.push_str(concat!(
        "<defs>",
        r##"<pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f2c4c4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c0392b" stroke-width="2"/></pattern>"##,
        r##"<pattern id="stale" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect width="6" height="6" fill="#d8d8d8"/><line x1="0" y1="0" x2="0" y2="6" stroke="#7b241c" stroke-width="2.5"/></pattern>"##,
        r##"<pattern id="unknown" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f4f4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#cccccc" stroke-width="2"/></pattern>"##,
        "</defs>\n"
    ));
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(s, r#"<text x="16" y="24" font-size="16" font-weight="bold">{}</text>"#, escape(title));
    let _ = writeln!(s, r##"<text x="16" y="42" font-size="12" fill="#444444">{}</text>"##, escape(subtitle));
    grid(&mut s, &axis, top, bottom);
    s.push_str(&body);
    violations(&mut s, &axis, &t.marks, top, bottom);
    s.push_str("</svg>\n");
    s
}

/// The time of the first thing recorded (0 when nothing was).
fn first(t: &Timeline) -> f64 {
    let written = t.writes.per_second().iter().position(|[a, f]| a + f > 0).map(|s| s as f64);
    let times =
        t.lanes.iter().map(|l| l.first).chain(t.marks.iter().map(|m| m.at)).chain(t.margins.first().map(|m| m.0));
    let first = times.chain(written).fold(f64::INFINITY, f64::min);
    if first.is_finite() { first } else { 0.0 }
}

/// The fill of a role's bar (`None`: not drawn).
fn fill(role: Role) -> Option<&'static str> {
    Some(match role {
        Role::Leader => "#17407e",
        Role::Voter => "#5b9be6",
        Role::Learner => "#f0b43c",
        Role::Unstarted => "#c9b3e6",
        Role::Outside => "#a8dcb0",
        Role::Down => "url(#down)",
        Role::Stale => "url(#stale)",
        Role::Unknown => "url(#unknown)",
        Role::Gone => return None,
    })
}

/// The colour of a span's bar and shading.
fn span_colour(kind: Kind) -> &'static str {
    if kind == Kind::Partition { "#8e44ad" } else { "#e67e22" }
}

/// Where the next legend item goes; wraps at the right edge.
struct Flow {
    x: f64,
    y: f64,
}

impl Flow {
    /// An item: its icon (`width` wide, drawn by `draw` at its left centre), then `text`.
    fn item(&mut self, s: &mut String, width: f64, draw: impl Fn(&mut String, f64, f64), text: &str) {
        let w = width + 6.0 + text.chars().count() as f64 * CHAR + 16.0;
        if self.x + w > WIDTH - RIGHT {
            (self.x, self.y) = (16.0, self.y + 18.0);
        }
        draw(s, self.x, self.y);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, self.x + width + 6.0, self.y + 4.0, escape(text));
        self.x += w;
    }
}

/// The legend: the roles, then the events. Returns where the next part starts.
fn legend(s: &mut String, top: f64) -> f64 {
    let mut flow = Flow { x: 16.0, y: top };
    for role in Role::DRAWN {
        let draw = |s: &mut String, x: f64, y: f64| {
            let f = fill(role).unwrap_or("none");
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{:.1}" width="22" height="{BAR}" fill="{f}" stroke="#666666" stroke-width="0.4"/>"##,
                y - BAR / 2.0
            );
        };
        flow.item(s, 22.0, draw, role.describe());
    }
    flow = Flow { x: 16.0, y: flow.y + 20.0 };
    for kind in Kind::ALL {
        let draw = |s: &mut String, x: f64, y: f64| match kind {
            Kind::Fault | Kind::Partition => {
                let c = span_colour(kind);
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{:.1}" width="22" height="10" fill="{c}" fill-opacity="0.35"/>"#,
                    y - 5.0
                );
            }
            Kind::Step => {
                let _ = write!(
                    s,
                    r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#555555"/>"##,
                    x + 5.0,
                    y - 6.0,
                    y + 6.0
                );
            }
            _ => marker(s, kind, x + 5.0, y, None),
        };
        let width = if matches!(kind, Kind::Fault | Kind::Partition) { 22.0 } else { 10.0 };
        flow.item(s, width, draw, kind.describe());
    }
    flow.y + 16.0
}

/// A marker of `kind` centred at (`x`, `y`), with `tip` as its tooltip.
fn marker(s: &mut String, kind: Kind, x: f64, y: f64, tip: Option<&str>) {
    let shape = match kind {
        Kind::Launch => format!(
            r##"<path d="M{:.1},{:.1} L{:.1},{y:.1} L{:.1},{:.1} Z" fill="#1e8449" stroke="#ffffff" stroke-width="0.6"/>"##,
            x - 4.0,
            y - 5.0,
            x + 5.0,
            x - 4.0,
            y + 5.0
        ),
        Kind::Notice | Kind::ScaleDown => {
            let c = if kind == Kind::Notice { "#e67e00" } else { "#2e5cb8" };
            format!(
                r##"<path d="M{:.1},{:.1} L{:.1},{:.1} L{x:.1},{:.1} Z" fill="{c}" stroke="#ffffff" stroke-width="0.6"/>"##,
                x - 5.0,
                y - 5.0,
                x + 5.0,
                y - 5.0,
                y + 5.0
            )
        }
        Kind::ScaleUp => format!(
            r##"<path d="M{:.1},{:.1} L{:.1},{:.1} L{x:.1},{:.1} Z" fill="#1e8449" stroke="#ffffff" stroke-width="0.6"/>"##,
            x - 5.0,
            y + 5.0,
            x + 5.0,
            y + 5.0,
            y - 5.0
        ),
        Kind::Terminate | Kind::Kill => {
            let (c, w) = if kind == Kind::Kill { ("#c0392b", 2.6) } else { ("#333333", 1.8) };
            format!(
                r#"<path d="M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}" stroke="{c}" stroke-width="{w}"/>"#,
                x - 4.5,
                y - 4.5,
                x + 4.5,
                y + 4.5,
                x - 4.5,
                y + 4.5,
                x + 4.5,
                y - 4.5
            )
        }
        Kind::Reboot => format!(
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#ffffff" fill-opacity="0.6" stroke="#d35400" stroke-width="2"/>"##
        ),
        Kind::Run => {
            format!(r##"<circle cx="{x:.1}" cy="{y:.1}" r="2.6" fill="#222222" stroke="#ffffff" stroke-width="0.6"/>"##)
        }
        Kind::ProcessKilled => format!(
            r##"<path d="M{x:.1},{:.1} L{:.1},{y:.1} L{x:.1},{:.1} L{:.1},{y:.1} Z" fill="#c2185b" stroke="#ffffff" stroke-width="0.6"/>"##,
            y - 5.5,
            x + 4.5,
            y + 5.5,
            x - 4.5
        ),
        Kind::Violation => format!(
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="#d62728"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold" fill="#ffffff">!</text>"##,
            y + 4.0
        ),
        Kind::Step | Kind::Fault | Kind::Partition => format!(
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"##,
            if kind == Kind::Step { "#555555" } else { span_colour(kind) }
        ),
    };
    match tip {
        Some(tip) => {
            let _ = writeln!(s, "<g><title>{}</title>{shape}</g>", escape(tip));
        }
        None => s.push_str(&shape),
    }
}

/// `12.3 s` on the run's clock, with minutes and seconds past the first minute.
pub(super) fn clock(t: f64) -> String {
    if t < 60.0 { format!("{t:.1} s") } else { format!("{t:.1} s ({}:{:04.1})", (t / 60.0).floor(), t % 60.0) }
}

/// A mark's tooltip: when, what kind, its label.
fn tip(m: &Mark, end: f64) -> String {
    let when = match m.until {
        None => format!("{} – {} (still open)", clock(m.at), clock(end)),
        Some(until) if m.span || until > m.at => format!("{} – {}", clock(m.at), clock(until)),
        Some(_) => clock(m.at),
    };
    let who = if m.instances.is_empty() { String::new() } else { format!(" [{}]", m.instances.join(" ")) };
    format!("{when} — {}{who}: {}", m.kind.describe(), m.label)
}

/// The events lane: step ticks (numbered where the numbers fit), marks of the whole run and scaling, then the
/// spans packed in rows, labelled inside where the label fits.
fn events_lane(s: &mut String, top: f64, axis: &Axis, marks: &[Mark]) -> f64 {
    let end = axis.end;
    let spans: Vec<&Mark> = marks.iter().filter(|m| m.span).collect();
    let mut rows: Vec<f64> = Vec::new();
    let mut placed = Vec::new();
    for m in &spans {
        let (x0, x1) = (axis.x(m.at), axis.x(m.until.unwrap_or(end)).max(axis.x(m.at) + 2.0));
        let row = rows.iter().position(|r| *r <= x0).unwrap_or(rows.len().min(MAX_SPAN_ROWS - 1));
        if row == rows.len() {
            rows.push(x1);
        } else {
            rows[row] = rows[row].max(x1);
        }
        placed.push((m, x0, x1, row));
    }
    let height = 30.0 + rows.len() as f64 * SPAN_ROW + 4.0;
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{top:.1}" width="{PLOT:.1}" height="{height:.1}" fill="#fafafa" stroke="#dddddd" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">events</text>"##,
        LEFT - 8.0,
        top + 14.0
    );
    let mut last_label = f64::NEG_INFINITY;
    let mut step = 0;
    for m in marks.iter().filter(|m| m.kind == Kind::Step) {
        step += 1;
        let x = axis.x(m.at);
        let _ = write!(
            s,
            r##"<g><title>{}</title><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#555555" stroke-width="1.2"/></g>"##,
            escape(&tip(m, end)),
            top + 2.0,
            top + 10.0
        );
        let text = step.to_string();
        let w = text.len() as f64 * 5.5;
        if x - w / 2.0 > last_label + 3.0 {
            let _ = writeln!(
                s,
                r##"<text x="{x:.1}" y="{:.1}" font-size="9" text-anchor="middle" fill="#555555">{text}</text>"##,
                top + 19.0
            );
            last_label = x + w / 2.0;
        }
    }
    let global = |m: &&Mark| {
        !m.span
            && m.kind != Kind::Step
            && (m.instances.is_empty() || matches!(m.kind, Kind::ScaleUp | Kind::ScaleDown | Kind::Violation))
    };
    for m in marks.iter().filter(global) {
        marker(s, m.kind, axis.x(m.at), top + 26.0, Some(&tip(m, end)));
    }
    for (m, x0, x1, row) in placed {
        let y = top + 32.0 + row as f64 * SPAN_ROW;
        let c = span_colour(m.kind);
        let _ = write!(
            s,
            r#"<g><title>{}</title><rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{c}" fill-opacity="0.45" stroke="{c}" stroke-width="0.6"/></g>"#,
            escape(&tip(m, end)),
            x1 - x0,
            SPAN_ROW - 2.0
        );
        if let Some(text) = fitted(&m.label, x1 - x0 - 6.0) {
            let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" font-size="9">{}</text>"#, x0 + 3.0, y + 8.5, escape(&text));
        }
        s.push('\n');
    }
    top + height + 4.0
}

/// `label` in 9 px text within `width`: whole, cut short with `…`, or `None` when not even 8 characters fit.
fn fitted(label: &str, width: f64) -> Option<String> {
    let fits = (width / 5.0).floor().max(0.0) as usize;
    let n = label.chars().count();
    if n <= fits {
        Some(label.to_string())
    } else if fits >= 8 {
        Some(format!("{}…", label.chars().take(fits - 1).collect::<String>()))
    } else {
        None
    }
}

/// One lane per instance: the name (and address), span shading, the role bars, the markers of its events.
fn instance_lanes(s: &mut String, top: f64, axis: &Axis, lanes: &[&Lane], marks: &[Mark], end: f64) -> f64 {
    let row = |id: &str| lanes.iter().position(|l| l.id == id);
    let lane =
        if lanes.len() <= FULL_LANES { LANE } else { (LANE * FULL_LANES as f64 / lanes.len() as f64).max(MIN_LANE) };
    let bar = (lane * 0.6).round();
    let font = if lane < 16.0 { 9.0 } else { 11.0 };
    let mid = |r: usize| top + r as f64 * lane + lane / 2.0;
    for (i, l) in lanes.iter().enumerate() {
        let y = top + i as f64 * lane;
        if i % 2 == 1 {
            let _ =
                writeln!(s, r##"<rect x="{LEFT}" y="{y:.1}" width="{PLOT:.1}" height="{lane:.1}" fill="#f5f7fa"/>"##);
        }
        let addr = l.address.map_or_else(String::new, |a| format!(" .{}", a.octets()[3]));
        let full = l.address.map_or_else(String::new, |a| format!(" on {a}"));
        let _ = writeln!(
            s,
            r##"<g><title>{}{}, first seen at {}</title><text x="{:.1}" y="{:.1}" text-anchor="end" font-family="monospace" font-size="{font}">{}<tspan fill="#888888">{}</tspan></text></g>"##,
            escape(&l.id),
            escape(&full),
            clock(l.first),
            LEFT - 8.0,
            mid(i) + font / 3.0,
            escape(&l.id),
            escape(&addr)
        );
    }
    for m in marks.iter().filter(|m| m.span) {
        let (x0, x1) = (axis.x(m.at), axis.x(m.until.unwrap_or(end)));
        let rows: Vec<usize> = if m.instances.is_empty() {
            (0..lanes.len()).collect()
        } else {
            m.instances.iter().filter_map(|id| row(id)).collect()
        };
        for r in rows {
            let _ = writeln!(
                s,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{lane:.1}" fill="{}" fill-opacity="0.14"/>"#,
                top + r as f64 * lane,
                (x1 - x0).max(1.0),
                span_colour(m.kind)
            );
        }
    }
    for (i, l) in lanes.iter().enumerate() {
        let y = mid(i) - bar / 2.0;
        for (k, (from, role)) in l.runs.iter().enumerate() {
            let to = l.runs.get(k + 1).map_or(end, |(t, _)| *t);
            let Some(f) = fill(*role) else { continue };
            let (x0, x1) = (axis.x(*from), axis.x(to));
            let _ = writeln!(
                s,
                r#"<g><title>{}: {}, {} – {}</title><rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{bar:.1}" fill="{f}"/></g>"#,
                escape(&l.id),
                role.describe(),
                clock(*from),
                clock(to),
                (x1 - x0).max(0.6)
            );
        }
    }
    for m in marks.iter().filter(|m| !m.span) {
        let (x0, x1) = (axis.x(m.at), axis.x(m.until.unwrap_or(m.at)));
        for r in m.instances.iter().filter_map(|id| row(id)) {
            if x1 - x0 >= 1.0 {
                let _ = writeln!(
                    s,
                    r##"<line x1="{x0:.1}" y1="{0:.1}" x2="{x1:.1}" y2="{0:.1}" stroke="#222222" stroke-width="1.2"/>"##,
                    mid(r)
                );
            }
            marker(s, m.kind, x1, mid(r), Some(&tip(m, end)));
        }
    }
    top + lanes.len() as f64 * lane + 2.0
}

/// Vertical grid lines at the ticks from `top` to `bottom`.
fn grid(s: &mut String, axis: &Axis, top: f64, bottom: f64) {
    for t in axis.ticks() {
        let x = axis.x(t);
        let _ = writeln!(s, r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#e6e6e6"/>"##);
    }
}

/// The time axis at `y`, with its tick labels; returns where the next part starts.
fn time_axis(s: &mut String, y: f64, axis: &Axis) -> f64 {
    let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#000000"/>"##, LEFT + PLOT);
    for t in axis.ticks() {
        let x = axis.x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{y:.1}" x2="{x:.1}" y2="{:.1}" stroke="#000000"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#333333">{}</text>"##,
            y + 4.0,
            y + 15.0,
            axis.label(t)
        );
    }
    y + 22.0
}

/// A red dashed line through every panel at each violation, on top of everything.
fn violations(s: &mut String, axis: &Axis, marks: &[Mark], top: f64, bottom: f64) {
    for m in marks.iter().filter(|m| m.kind == Kind::Violation) {
        let x = axis.x(m.at);
        let _ = writeln!(
            s,
            r##"<g><title>{}</title><line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="5,3"/></g>"##,
            escape(&tip(m, axis.end))
        );
    }
}
