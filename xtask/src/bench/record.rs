//! The bench's record of a run: the JSON document (`target/bench/*.json`) and the timeline SVG of one
//! replacement. Pure: no clock, no I/O.

use std::time::Duration;

use serde_json::{Value, json};

use super::churn::{Departure, Replacement};
use super::report::Figure;
use super::{Results, svg};

/// The JSON record of a run.
pub(super) fn document(
    machine: Value,
    settings: Value,
    started_unix: u64,
    took: Duration,
    r: &Results,
    figures: &[Figure],
    timeline: Option<&Replacement>,
) -> Value {
    let events = timeline.map_or(Value::Null, |c| {
        json!({
            "departure": c.departure,
            "victim": c.victim,
            "replacement": c.replacement,
            "events": c.events.iter().map(|e| json!({"at_s": e.at, "event": e.label})).collect::<Vec<_>>(),
            "phases": c.spans.iter().map(|s| json!({"from_s": s.from, "to_s": s.to, "phase": s.label, "bench_wait": s.idle})).collect::<Vec<_>>(),
        })
    });
    json!({
        "schema": "etcd-spot-bench/1",
        "started_unix": started_unix,
        "duration_s": took.as_secs_f64(),
        "machine": machine,
        "settings": settings,
        "figures": figures,
        "raw": r,
        "timeline": events,
        "errors": r.errors,
    })
}

/// The timeline of one replacement as an SVG.
pub(super) fn timeline_svg(c: &Replacement) -> String {
    let title = "etcd-spot: one departure and its replacement, on loopback with real etcd 3.4";
    let subtitle = format!(
        "{}: {} ({}) leaves, {} replaces it; times from the {}; hatched = the bench's own wait, not the product's",
        c.departure.describe(),
        c.victim,
        if c.victim_was_leader { "the leader" } else { "a follower" },
        c.replacement,
        if c.departure == Departure::Silent { "loss" } else { "notice" },
    );
    let mut events = c.events.clone();
    events.sort_by(|a, b| a.at.total_cmp(&b.at));
    let launch = c.spans.iter().find(|s| s.label.starts_with("replacement launch")).map(|s| (s.from, s.to));
    let mut panels =
        vec![svg::Panel { heading: "the whole story".into(), events: events.clone(), spans: c.spans.clone() }];
    let end = events.iter().map(|e| e.at).fold(0.0, f64::max);
    if let Some((from, to)) = launch
        && to - from < end * 0.2
    {
        panels.push(svg::Panel {
            heading: "zoom: replacement launch → voting member".into(),
            events: events.into_iter().filter(|e| e.at >= from).collect(),
            spans: c.spans.iter().filter(|s| s.from >= from && !s.idle).cloned().collect(),
        });
    }
    svg::timeline(title, &subtitle, &panels)
}
